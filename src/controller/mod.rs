//! The reconcilers, one per kind (`alicloud-rollouts run`).
//!
//! One kube-rs controller per kind, all sharing one cloud client (one rate limiter, one
//! credential chain), one event recorder and one metrics registry.

pub mod accounts;
pub mod analysis;
pub mod conditions;
pub mod container_app;
pub mod context;
pub mod eas;
pub mod error;
pub mod health;
pub mod intent;
pub mod leader;
pub mod marker;
pub mod metrics;
pub mod outcome;
pub mod owners;
pub mod plan;
pub mod progress;
pub mod requeue;
pub mod retry;
pub mod routine;
pub mod runner;
#[cfg(test)]
mod safety_props;
pub mod schedule;
pub mod status;
pub mod steps;
pub mod tenancy;
#[cfg(test)]
pub(crate) mod testing;
pub mod transitions;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::runtime::events::Reporter;
use prometheus_client::registry::Registry;

use crate::cloud::config::parse_duration;
use crate::cloud::{ClientConfig, CloudApi, CloudClient};
use crate::crd::{EasServiceRollout, EsaContainerAppRollout, EsaRoutineRollout};
use context::{Context, KubeSecrets, KubeWrites, RetryPolicy};
use requeue::Timing;

/// A kind this operator can run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// EasServiceRollout.
    Eas,
    /// EsaRoutineRollout.
    Routine,
    /// EsaContainerAppRollout.
    Containerapp,
}

/// Log output format.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Command-line options of `alicloud-rollouts run` (each also read from the environment).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Kinds to run, comma-separated.
    #[arg(
        long,
        env = "ALICLOUD_ROLLOUTS_KINDS",
        value_enum,
        value_delimiter = ',',
        default_value = "eas,routine,containerapp"
    )]
    pub kinds: Vec<Kind>,

    /// Namespaces to watch, comma-separated; all namespaces when not given.
    #[arg(
        long = "namespaces",
        env = "ALICLOUD_ROLLOUTS_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,

    /// How often to look at a rollout that is moving.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_ACTIVE_POLL", default_value = "5s", value_parser = parse_duration)]
    pub active_poll: Duration,

    /// How often to look at a rollout that has settled (completed, paused, failed).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_SETTLED_POLL", default_value = "15m", value_parser = parse_duration)]
    pub settled_poll: Duration,

    /// How long the cloud has to show a mutation it accepted: until then the same call is
    /// not sent again (a lagging read is not a lost mutation); after it, it is sent once
    /// more, with a Warning Event.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_MUTATION_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub mutation_grace: Duration,

    /// How soon a rollout that needs a person (a cloud object not found, a permission or
    /// credentials refused) is looked at again; doubles per consecutive look, up to 8x.
    /// A fix made outside the spec is picked up then. An invalid spec waits for a change.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_STALLED_RECHECK", default_value = "3m", value_parser = parse_duration)]
    pub stalled_recheck: Duration,

    /// How long the cloud may keep failing to answer usably (5xx, timeouts, throttling,
    /// answers that do not decode) before a resource's conditions stop claiming what was
    /// last seen: Ready turns Unknown (reason `CloudUnreadable`) until the cloud is read
    /// again.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_UNKNOWN_AFTER", default_value = "5m", value_parser = parse_duration)]
    pub unknown_after: Duration,

    /// First delay before reconciling a resource again after a transient failure (doubles
    /// per consecutive failure of that resource; four times higher when throttled).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_REQUEUE_BASE", default_value = "2s", value_parser = parse_duration)]
    pub requeue_base: Duration,

    /// Longest delay before reconciling a failing resource again.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_REQUEUE_MAX", default_value = "5m", value_parser = parse_duration)]
    pub requeue_max: Duration,

    /// Reconciles each controller (one per kind and namespace) runs at once. Settled
    /// polls get at most half of them, so active rollouts always find a slot. 0: no bound.
    #[arg(
        long,
        env = "ALICLOUD_ROLLOUTS_MAX_CONCURRENT_RECONCILES",
        default_value_t = 32
    )]
    pub max_concurrent_reconciles: u16,

    /// Log format.
    #[arg(
        long,
        env = "ALICLOUD_ROLLOUTS_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Name reported as the Events' reporting controller instance (e.g. the pod name).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_INSTANCE")]
    pub instance: Option<String>,

    /// This cluster's id in the ownership markers kept on cloud objects (docs/ownership.md):
    /// 1 to 40 of A-Z a-z 0-9 . _ -. Default: the uid of the kube-system namespace, read
    /// once at start. Set it when the cluster may be rebuilt from a backup into a new
    /// control plane (a new kube-system uid would find its own markers foreign).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// Run the controllers only while holding the Lease `alicloud-rollouts` (for more
    /// than one replica).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// How long the Lease holds without renewal: how long a follower waits before it
    /// takes over from a leader that stopped renewing (client-go's default).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,

    /// How long the leader keeps acting without a confirmed renew of the Lease; it then
    /// stops every reconcile and exits. Must be shorter than the lease duration.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,

    /// How often the leader renews the Lease and a follower tries to acquire it.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,

    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(
        long,
        env = "ALICLOUD_ROLLOUTS_LEADER_ELECTION_NAMESPACE",
        default_value = "default"
    )]
    pub leader_election_namespace: String,

    /// The operator's own namespace: what a cleanup leaves in the cloud is reported there
    /// (a Warning Event) when the resource's namespace is being deleted. Default: the
    /// namespace of the Kubernetes configuration (in a Pod, its own).
    #[arg(long, env = "ALICLOUD_ROLLOUTS_OPERATOR_NAMESPACE")]
    pub operator_namespace: Option<String>,

    /// Only CloudAccounts with these labels are considered (a label selector such as
    /// `operator=team-platform`): lets two installs of the operator in one cluster keep
    /// their accounts apart. Default: every CloudAccount.
    #[arg(long, env = "ALICLOUD_ROLLOUTS_ACCOUNT_SELECTOR")]
    pub account_selector: Option<String>,

    /// The cloud client: endpoints, timeouts, retries, rate limits.
    #[command(flatten)]
    pub client: ClientConfig,
}

/// Where kube's client logs a response it could not decode: the whole body, every
/// object's spec included. The operator reads list and watch bodies leniently so this
/// should not happen; should it, the body stays out of the log unless RUST_LOG names
/// this target.
const KUBE_CLIENT_TARGET: &str = "kube_client::client";

/// The log filter: `RUST_LOG` (default `info`), with kube's client held to errors unless
/// `RUST_LOG` names it.
fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let directives = rust_log.map(str::trim).filter(|d| !d.is_empty());
    let mut filter = directives
        .and_then(|d| tracing_subscriber::EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    if !directives.is_some_and(|d| d.contains("kube_client"))
        && let Ok(quiet) = format!("{KUBE_CLIENT_TARGET}=error").parse()
    {
        filter = filter.add_directive(quiet);
    }
    filter
}

fn init_logging(format: LogFormat) {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    // A second initialisation (e.g. in-process tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Build the one shared cloud client: its credentials come from the environment
/// (static keys, then RRSA), read once here.
/// The cluster id of the ownership markers: `--cluster-id`, else the uid of namespace
/// kube-system (stable for the life of the cluster, also across an etcd restore).
async fn marker_cluster_id(flag: Option<&str>, client: &kube::Client) -> anyhow::Result<String> {
    if let Some(id) = flag {
        return marker::check_cluster_id(id).map(|()| id.to_string());
    }
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    let uid = namespaces
        .get("kube-system")
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "reading the uid of namespace kube-system, the default cluster id of ownership \
                 markers: {e}; grant get on namespaces/kube-system, or set --cluster-id"
            )
        })?
        .metadata
        .uid;
    uid.filter(|u| marker::check_cluster_id(u).is_ok())
        .ok_or_else(|| anyhow::anyhow!("namespace kube-system has no usable uid: set --cluster-id"))
}

fn build_cloud(args: &RunArgs) -> anyhow::Result<CloudClient> {
    CloudClient::from_environment(args.client.clone(), crate::cloud::Metrics::new())
        .context("setting up the cloud client and its credentials")
}

/// Run the operator until interrupted.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let client = kube::Client::try_default()
        .await
        .context("no usable Kubernetes configuration (KUBECONFIG or in-cluster)")?;
    let cloud = build_cloud(&args)?;
    let mut registry = Registry::default();
    let metrics = Arc::new(metrics::Metrics::new(&mut registry));
    let cloud_metrics = cloud.metrics().clone();
    let cloud: Arc<dyn CloudApi> = Arc::new(cloud);
    let reporter = Reporter {
        controller: "alicloud-rollouts".into(),
        instance: args.instance.clone(),
    };
    let leadership = if args.leader_elect {
        leader::Leadership::elected()
    } else {
        leader::Leadership::always()
    };
    let timing = leader::Timing {
        lease: args.leader_elect_lease_duration,
        renew_deadline: args.leader_elect_renew_deadline,
        retry: args.leader_elect_retry_period,
    };
    if args.leader_elect {
        timing
            .validate()
            .map_err(|e| anyhow::anyhow!("leader election: {e}"))?;
    }
    let mut context = Context::new(
        client.clone(),
        cloud,
        Arc::new(KubeSecrets(client.clone())),
        Arc::new(KubeWrites::new(client.clone(), reporter)),
        metrics,
        Timing {
            active: args.active_poll,
            settled: args.settled_poll,
            grace: args.mutation_grace,
            recheck: args.stalled_recheck,
            unknown_after: args.unknown_after,
        },
        RetryPolicy {
            base: args.requeue_base,
            cap: args.requeue_max,
        },
    );
    context.leadership = leadership.clone();
    context.home = context::Home {
        namespace: args
            .operator_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string()),
        instance: args
            .instance
            .clone()
            .unwrap_or_else(|| "alicloud-rollouts".to_string()),
    };
    context.schedule = schedule::Schedule::new(args.max_concurrent_reconciles);
    context.accounts = accounts::watch(client.clone(), args.account_selector.as_deref());
    context.cluster_id = marker_cluster_id(args.cluster_id.as_deref(), &client).await?;
    tracing::info!(cluster_id = %context.cluster_id, "ownership markers name this cluster");
    let cx = Arc::new(context);

    let exposition = metrics::Exposition {
        controller: Arc::new(registry),
        cloud: cloud_metrics,
    };
    let probes = metrics::Probes {
        health: cx.health.clone(),
        leadership: leadership.clone(),
    };
    let listen = args.listen;
    let mut server = tokio::spawn(async move { metrics::serve(listen, exposition, probes).await });

    // With leader election, wait for the Lease (serving the probes meanwhile: a follower
    // that knows it follows is ready), then keep it.
    let mut leadership_task: tokio::task::JoinHandle<()> = tokio::spawn(futures::future::pending());
    let mut elector = None;
    if args.leader_elect {
        let identity = args
            .instance
            .clone()
            .unwrap_or_else(|| format!("alicloud-rollouts-{}", uuid::Uuid::new_v4()));
        let candidate = leader::Elector::new(
            kube::Api::namespaced(client.clone(), &args.leader_election_namespace),
            "alicloud-rollouts",
            &identity,
            timing,
        );
        let acquired = tokio::select! {
            acquired = candidate.acquire(&leadership) => acquired,
            served = &mut server => return served_result(served, listen),
        };
        let (holder, held) = (candidate.clone(), leadership.clone());
        leadership_task = tokio::spawn(async move { holder.hold(&held, acquired).await });
        elector = Some(candidate);
    }

    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let kinds = dedup(&args.kinds);
    cx.health.expect(kinds.len() * namespaces.len());
    // Settled rollouts are first read at moments spread over one settled poll from now.
    cx.schedule.mark_started(std::time::Instant::now());
    let mut controllers = Vec::new();
    for kind in kinds {
        for ns in &namespaces {
            let cx = cx.clone();
            let ns = ns.clone();
            controllers.push(match kind {
                Kind::Eas => tokio::spawn(runner::run_controller::<EasServiceRollout>(cx, ns)),
                Kind::Routine => tokio::spawn(runner::run_controller::<EsaRoutineRollout>(cx, ns)),
                Kind::Containerapp => {
                    tokio::spawn(runner::run_controller::<EsaContainerAppRollout>(cx, ns))
                }
            });
        }
    }
    let aborts: Vec<_> = controllers.iter().map(|c| c.abort_handle()).collect();
    tokio::select! {
        _ = futures::future::join_all(controllers) => {
            // Shutdown (SIGTERM/SIGINT): the controllers finished their in-flight
            // reconciles; give the Lease up so that a follower takes over at once.
            tracing::info!("controllers stopped");
            if let Some(elector) = &elector {
                leadership_task.abort();
                match elector.release(&leadership).await {
                    Ok(()) => tracing::info!("released the leader-election Lease"),
                    Err(e) => tracing::warn!(error = %e, "could not release the leader-election Lease; a follower takes over when it expires"),
                }
            }
        }
        _ = &mut leadership_task => {
            // The fencing check already refuses every cloud mutation; stop every
            // reconcile now and exit, to come back as a follower.
            for abort in &aborts {
                abort.abort();
            }
            anyhow::bail!("lost the leader-election Lease; stopping so that another replica takes over");
        }
        served = &mut server => return served_result(served, listen),
    }
    Ok(())
}

fn served_result(
    served: Result<anyhow::Result<()>, tokio::task::JoinError>,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.context(format!("serving metrics on {listen}"))),
        Err(e) => anyhow::bail!("metrics server task failed: {e}"),
    }
}

fn dedup(kinds: &[Kind]) -> Vec<Kind> {
    let mut out = Vec::new();
    for k in kinds {
        if !out.contains(k) {
            out.push(*k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// kube's client logs a body it cannot decode at WARN under its own target: that target
    /// is held to errors by default and under any RUST_LOG that does not name it.
    #[test]
    fn kube_client_bodies_stay_out_of_the_log() {
        use tracing::Level;
        use tracing_subscriber::layer::SubscriberExt;
        let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        #[derive(Clone)]
        struct Sink(Arc<std::sync::Mutex<Vec<String>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut l) = self.0.lock() {
                    l.push(String::from_utf8_lossy(buf).into_owned());
                }
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for (rust_log, body_logged) in [
            (None, false),
            (Some("debug"), false),
            (Some("info,alicloud_rollouts=debug"), false),
            (Some("info,kube_client=warn"), true),
        ] {
            lines.lock().map(|mut l| l.clear()).ok();
            let sink = Sink(lines.clone());
            let subscriber = tracing_subscriber::registry()
                .with(log_filter(rust_log))
                .with(tracing_subscriber::fmt::layer().with_writer(move || sink.clone()));
            tracing::subscriber::with_default(subscriber, || {
                tracing::event!(target: "kube_client::client", Level::WARN, "BODY-TEXT");
                tracing::event!(target: "alicloud_rollouts::controller", Level::WARN, "ours");
            });
            let all = lines.lock().map(|l| l.concat()).unwrap_or_default();
            assert_eq!(
                all.contains("BODY-TEXT"),
                body_logged,
                "{rust_log:?}: {all}"
            );
            assert!(all.contains("ours"), "{rust_log:?}: {all}");
        }
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn defaults_and_flags() {
        let cli = Cli::try_parse_from(["x"]).expect("defaults parse");
        assert_eq!(
            cli.run.kinds,
            [Kind::Eas, Kind::Routine, Kind::Containerapp]
        );
        assert!(cli.run.namespaces.is_empty());
        assert_eq!(cli.run.active_poll, Duration::from_secs(5));
        assert_eq!(cli.run.settled_poll, Duration::from_secs(900));
        let cli = Cli::try_parse_from([
            "x",
            "--kinds",
            "eas",
            "--namespaces",
            "a,b",
            "--active-poll",
            "500ms",
            "--log-format",
            "json",
        ])
        .expect("flags parse");
        assert_eq!(cli.run.kinds, [Kind::Eas]);
        assert_eq!(cli.run.namespaces, ["a", "b"]);
        assert_eq!(cli.run.active_poll, Duration::from_millis(500));
        assert_eq!(cli.run.log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["x", "--active-poll", "soon"]).is_err());
    }
}
