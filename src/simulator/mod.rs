//! A local stand-in for the EAS and ESA endpoints (`alicloud-rollouts simulator`).
//!
//! One port speaks the cloud's wire protocol: PAI-EAS (ROA, `/api/v2/services/...`),
//! ESA (RPC on `/` with `x-acs-action`) and STS `AssumeRoleWithOIDC`, verifying every V3
//! signature like the cloud's gateway. State lives in memory and moves with time (a
//! [`Clock`] that tests can drive by hand). An unsigned admin API under `/_sim/` seeds
//! state, injects faults and counts calls. The full contract is in `docs/simulator.md`.

pub mod api;
pub mod auth;
pub mod clock;
pub mod cms;
pub mod eas;
pub mod error;
pub mod esa;
pub mod faults;
pub mod lag;
pub mod seed;
pub mod server;
pub mod traffic;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use clock::{Clock, ManualClock, SystemClock};
pub use seed::Seed;
pub use server::{FaultKind, FaultSpec, LagFaultSpec, LagKind, Sim};

/// The access key accepted when none is configured.
pub const DEFAULT_ACCESS_KEY_ID: &str = "testid";
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "testsecret";

/// Command-line options of `alicloud-rollouts simulator`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulatorArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// An accepted access key as ID:SECRET (repeatable). Default: testid:testsecret.
    #[arg(long = "access-key", value_name = "ID:SECRET")]
    pub access_keys: Vec<String>,
    /// Make every simulated delay and interval N times shorter.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Requests per second allowed per action (0: unlimited). The cloud allows 100.
    #[arg(long, default_value_t = 100)]
    pub rate_limit: u32,
    /// Load the demo objects (llm-chat, edge-auth, app-8806886757837900).
    #[arg(long)]
    pub demo: bool,
    /// Load initial objects from a YAML or JSON seed file.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Eventual consistency: Describe/Get answers show each object as it was SECONDS ago
    /// (on the simulator's clock, not divided by --time-scale). 0: read-after-write.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub read_lag: f64,
    /// An accepted pause is reported as Running (the unpaused phase) by
    /// DescribeServiceRollout for SECONDS before Paused shows (not divided by --time-scale).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub pause_lag: f64,
}

/// Everything needed to start a simulator in-process.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    /// Accepted `(id, secret)` pairs; empty means the default test pair.
    pub access_keys: Vec<(String, String)>,
    pub time_scale: f64,
    pub rate_limit: u32,
    pub demo: bool,
    pub seed: Option<Seed>,
    /// Defaults to the wall clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// Describe/Get answers show each object as it was this long ago, on `clock`
    /// (not divided by `time_scale`); at most [`lag::MAX_LAG`]. Zero: read-after-write.
    pub read_lag: std::time::Duration,
    /// DescribeServiceRollout reports an accepted pause as the unpaused phase this long.
    pub pause_lag: std::time::Duration,
    /// Every key pair of `access_keys` belongs to one account (that of the smallest key
    /// id), like several RAM users of one account: callers share one cloud and are still
    /// told apart by key in the call log.
    pub one_account: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_keys: Vec::new(),
            time_scale: 1.0,
            rate_limit: 100,
            demo: false,
            seed: None,
            clock: None,
            read_lag: std::time::Duration::ZERO,
            pause_lag: std::time::Duration::ZERO,
            one_account: false,
        }
    }
}

impl SimConfig {
    /// Build from command-line options (reads the seed file).
    pub fn from_args(args: &SimulatorArgs) -> anyhow::Result<Self> {
        let mut access_keys = Vec::new();
        for pair in &args.access_keys {
            let (id, secret) = pair
                .split_once(':')
                .filter(|(id, s)| !id.is_empty() && !s.is_empty())
                .context("--access-key must be ID:SECRET")?;
            access_keys.push((id.to_string(), secret.to_string()));
        }
        if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
            anyhow::bail!("--time-scale must be a positive number");
        }
        let read_lag =
            lag::lag_from_secs(args.read_lag, "--read-lag").map_err(anyhow::Error::msg)?;
        let pause_lag =
            lag::lag_from_secs(args.pause_lag, "--pause-lag").map_err(anyhow::Error::msg)?;
        let seed = match &args.seed {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading seed file {}", path.display()))?;
                Some(
                    Seed::parse(&text)
                        .with_context(|| format!("parsing seed file {}", path.display()))?,
                )
            }
            None => None,
        };
        Ok(SimConfig {
            listen: args.listen,
            access_keys,
            time_scale: args.time_scale,
            rate_limit: args.rate_limit,
            demo: args.demo,
            seed,
            clock: None,
            read_lag,
            pause_lag,
            one_account: false,
        })
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimulatorHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SimulatorHandle {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, the form the SDKs take as `endpoint`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulator's clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.sim.now()
    }

    /// Move a manual clock forward; `false` when the simulator follows real time.
    pub fn advance(&self, by: std::time::Duration) -> bool {
        self.sim.clock.advance(by)
    }

    /// Direct access to the state, faults and counters (what `/_sim/` serves).
    pub fn sim(&self) -> &Arc<Sim> {
        &self.sim
    }

    /// Stop accepting and close open connections.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Start a simulator in the background (listening on `config.listen`, port 0 allowed).
pub async fn start(config: SimConfig) -> anyhow::Result<SimulatorHandle> {
    let mut keys: HashMap<String, String> = config.access_keys.iter().cloned().collect();
    if keys.is_empty() {
        keys.insert(
            DEFAULT_ACCESS_KEY_ID.to_string(),
            DEFAULT_ACCESS_KEY_SECRET.to_string(),
        );
    }
    let accounts: HashMap<String, String> = match keys.keys().min() {
        Some(first) if config.one_account => {
            let account = auth::account_of_key(first);
            keys.keys()
                .map(|id| (id.clone(), account.clone()))
                .collect()
        }
        _ => HashMap::new(),
    };
    let clock = config
        .clock
        .clone()
        .unwrap_or_else(|| Arc::new(SystemClock));
    let sim = Arc::new(Sim::new(
        clock,
        server::Settings {
            accounts,
            keys,
            time_scale: if config.time_scale.is_finite() && config.time_scale > 0.0 {
                config.time_scale
            } else {
                1.0
            },
            rate_limit: config.rate_limit,
            lag: lag::Lag {
                read: config.read_lag.min(lag::MAX_LAG),
                pause: config.pause_lag.min(lag::MAX_LAG),
            },
        },
    ));
    if config.demo {
        sim.seed(&Seed::demo())
            .map_err(|e| anyhow::anyhow!("demo seed: {}", e.message))?;
    }
    if let Some(seed) = &config.seed {
        sim.seed(seed)
            .map_err(|e| anyhow::anyhow!("seed: {}", e.message))?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, sim.clone(), rx));
    Ok(SimulatorHandle {
        addr,
        sim,
        shutdown: tx,
        task: Some(task),
    })
}

async fn accept_loop(listener: TcpListener, sim: Arc<Sim>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(serve_connection(stream, sim.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "simulator: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    sim: Arc<Sim>,
    mut shutdown: watch::Receiver<bool>,
) {
    let kill = Arc::new(Notify::new());
    let kill_for_service = kill.clone();
    let service = hyper::service::service_fn(move |req| {
        let sim = sim.clone();
        let kill = kill_for_service.clone();
        async move {
            // On its own task: a call runs to its end even if the client goes away.
            match tokio::spawn(sim.handle(req)).await {
                Ok(Some(response)) => Ok::<_, Infallible>(response),
                Ok(None) => {
                    kill.notify_one();
                    std::future::pending().await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "simulator: a request handler failed");
                    let mut r = http::Response::new(axum::body::Body::empty());
                    *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                    Ok(r)
                }
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "simulator: connection ended with an error");
            }
        }
        _ = kill.notified() => {}
        _ = shutdown.changed() => {}
    }
}

/// Wait for Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}

/// Run the simulator until interrupted.
pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let config = SimConfig::from_args(&args)?;
    let handle = start(config).await?;
    tracing::info!(
        listen = %handle.addr(),
        time_scale = args.time_scale,
        rate_limit = args.rate_limit,
        demo = args.demo,
        read_lag = args.read_lag,
        pause_lag = args.pause_lag,
        "simulator listening (EAS, ESA, STS on one port; admin under /_sim/)"
    );
    shutdown_signal().await?;
    tracing::info!("simulator stopping");
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimulatorArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<SimConfig> {
        let cli = Cli::try_parse_from(std::iter::once("simulator").chain(args.iter().copied()))?;
        SimConfig::from_args(&cli.sim)
    }

    #[test]
    fn lag_flags_default_to_read_after_write_and_are_validated() {
        let c = config(&[]).unwrap();
        assert_eq!((c.read_lag, c.pause_lag), (Duration::ZERO, Duration::ZERO));
        assert_eq!(SimConfig::default().read_lag, Duration::ZERO);
        let c = config(&["--read-lag", "2.5", "--pause-lag", "30"]).unwrap();
        assert_eq!(c.read_lag, Duration::from_millis(2500));
        assert_eq!(c.pause_lag, Duration::from_secs(30));
        for bad in [
            &["--read-lag", "-1"][..],
            &["--pause-lag", "3601"],
            &["--read-lag", "NaN"],
        ] {
            assert!(config(bad).is_err(), "{bad:?}");
        }
    }
}
