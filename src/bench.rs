//! `alicloud-rollouts bench`: the operator measured against targets, on a real API server
//! (KUBECONFIG, e.g. `scripts/local-apiserver.sh up`) and the simulator, both local.
//!
//! The driver starts the simulator (enforcing the cloud's 100 requests per second per
//! API) and the operator as child processes of this same binary, creates the resources
//! with kube-rs, follows them with watchers, and reads the simulator's call log (every
//! call with its receive time, target and, for mutations, what it asked for). Phases:
//!
//! 1. scale: N resources (a third of each kind) created at once, then the operator
//!    started: the time until all are Ready against the bound the rate limits set (for
//!    each API, its calls divided by the allowed rate; the slowest API bounds), the calls
//!    per rollout of each kind, throttling answers, reconcile failures, Warning Events;
//! 2. failover: the operator killed (SIGKILL), every spec changed, a new operator
//!    started: the same figures for N rollouts at once after a restart;
//! 3. idle: the operator restarted with everything settled, at default settings: cloud
//!    calls per settled resource per hour and the CPU used, over a window;
//! 4. reaction: spec changes one at a time on the routines, each timed from just before
//!    the change is sent to the moment the simulator received the mutation it caused,
//!    next to the floor measured in the same run: this driver's own no-op watcher's
//!    delay for the same change plus one loopback HTTP round trip to the simulator.
//!
//! Prints a table (figure, measured, target, met?) and writes the same as JSON.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cloud::config::parse_duration;
use crate::crd::{EasServiceRollout, EsaContainerAppRollout, EsaRoutineRollout};

/// Options of `alicloud-rollouts bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Resources created at once (mixed kinds: a third each of EAS services, routines,
    /// container apps).
    #[arg(long, default_value_t = 5000)]
    pub resources: usize,
    /// Spec changes timed for the reaction latency.
    #[arg(long, default_value_t = 500)]
    pub changes: usize,
    /// Least time between two timed spec changes: each change costs two reads of its API
    /// (before and after the mutation), which must stay under the operator's per-API rate
    /// (20/s) together with the settled polls, or the figure measures the rate limiter.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub change_interval: Duration,
    /// How long settled calls and idle CPU are counted.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub idle_window: Duration,
    /// Namespace of the resources (created; must not exist yet or be empty).
    #[arg(long, default_value = "bench")]
    pub namespace: String,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench.json")]
    pub out: PathBuf,
    /// Where the simulator's and operator's logs go.
    #[arg(long, default_value = "bench-logs")]
    pub log_dir: PathBuf,
    /// The simulator's time scale (its rollouts take this many times less time).
    #[arg(long, default_value_t = 60.0)]
    pub time_scale: f64,
    /// Longest wait for a phase (all Ready).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub phase_timeout: Duration,
    /// Run the fault campaign for this long instead of the benchmark: rounds of spec
    /// changes, each followed by one fault (the operator SIGKILLed at a random moment,
    /// the API server or etcd restarted).
    #[arg(long, value_parser = parse_duration)]
    pub soak: Option<Duration>,
    /// Resources of the soak (routines and container apps).
    #[arg(long, default_value_t = 60)]
    pub soak_resources: usize,
    /// scripts/local-apiserver.sh, to restart the API server and etcd (soak).
    #[arg(long)]
    pub control_plane_script: Option<PathBuf>,
}

/// The operator's default per-API rate (`--cloud-rate-limit`).
fn operator_rate() -> f64 {
    f64::from(crate::cloud::ClientConfig::default().rate_limit_per_api)
}

const KINDS: [Kind; 3] = [Kind::Eas, Kind::Routine, Kind::App];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Eas,
    Routine,
    App,
}

impl Kind {
    fn of(i: usize) -> Kind {
        KINDS[i % 3]
    }
    fn resource(self) -> ApiResource {
        match self {
            Kind::Eas => ApiResource::erase::<EasServiceRollout>(&()),
            Kind::Routine => ApiResource::erase::<EsaRoutineRollout>(&()),
            Kind::App => ApiResource::erase::<EsaContainerAppRollout>(&()),
        }
    }
    /// The kind a cloud action belongs to (`None`: shared, e.g. GetCallerIdentity).
    fn of_action(action: &str) -> Option<Kind> {
        if action.contains("EdgeContainerApp") {
            Some(Kind::App)
        } else if action.contains("Routine") {
            Some(Kind::Routine)
        } else if action.contains("Service") {
            Some(Kind::Eas)
        } else {
            None
        }
    }
}

fn name(i: usize) -> String {
    match Kind::of(i) {
        Kind::Eas => format!("svc-{i}"),
        Kind::Routine => format!("routine-{i}"),
        Kind::App => format!("app-{}", 1_000_000 + i),
    }
}

/// The spec of resource `i` in wave `wave` (0: created; 1: the failover's change).
fn spec(i: usize, wave: u32) -> Value {
    let n = name(i);
    let share = 10 + 10 * wave as i64;
    match Kind::of(i) {
        Kind::Eas => json!({
            "region": "cn-shanghai", "serviceName": n,
            "strategy": {"partition": if wave == 0 { "0" } else { "1" }},
        }),
        Kind::Routine => routine_spec(&n, share),
        Kind::App => json!({
            "appId": n, "versionId": "ver-2", "env": "production", "percentage": share,
        }),
    }
}

fn routine_spec(name: &str, share: i64) -> Value {
    json!({
        "routine": name, "env": "production",
        "codeVersions": [
            {"codeVersion": "2", "percentage": share},
            {"codeVersion": "1", "percentage": 100 - share},
        ],
    })
}

fn seed(n: usize) -> Value {
    let (mut services, mut routines, mut apps) = (vec![], vec![], vec![]);
    for i in 0..n {
        match Kind::of(i) {
            Kind::Eas => {
                services.push(json!({"name": name(i), "region": "cn-shanghai", "replicas": 4}))
            }
            Kind::Routine => {
                routines.push(json!({"name": name(i), "codeVersions": ["1", "2"], "deployed": "1"}))
            }
            Kind::App => apps
                .push(json!({"id": name(i), "versions": ["ver-1", "ver-2"], "deployed": "ver-1"})),
        }
    }
    json!({"services": services, "routines": routines, "apps": apps})
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process, SIGKILLed when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// Peak and current resident memory (KiB) and CPU time (seconds) from /proc.
    fn usage(&self) -> Usage {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command (which may hold spaces) start after the last ')'.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after ')'.
        Usage {
            peak_kib: kib("VmHWM:"),
            rss_kib: kib("VmRSS:"),
            cpu_seconds: (ticks(11) + ticks(12)) as f64 / 100.0,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    peak_kib: u64,
    rss_kib: u64,
    cpu_seconds: f64,
}

/// One call of the simulator's log.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Call {
    action: String,
    status: u16,
    at_micros: u64,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    request: Option<String>,
    /// The error code of a failed call.
    #[serde(default)]
    code: Option<String>,
}

struct Simulator {
    url: String,
    http: reqwest::Client,
    /// How many calls of the log were read already.
    read: Mutex<usize>,
    _proc: Proc,
}

impl Simulator {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The calls logged since the last read.
    async fn new_calls(&self) -> anyhow::Result<Vec<Call>> {
        let since = *self.read.lock().unwrap_or_else(|p| p.into_inner());
        let calls: Vec<Call> =
            serde_json::from_value(self.get(&format!("/_sim/calllog?since={since}")).await?)?;
        *self.read.lock().unwrap_or_else(|p| p.into_inner()) = since + calls.len();
        Ok(calls)
    }

    /// One loopback round trip (a cheap admin read).
    async fn round_trip(&self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        self.get("/_sim/time").await?;
        Ok(t.elapsed())
    }
}

/// What the driver's watchers know of each resource.
#[derive(Debug, Default)]
struct Seen {
    /// (kind, name) -> (generation, Ready at that generation).
    objects: HashMap<(Kind, String), (i64, bool)>,
    /// (name, generation) -> when this driver's watcher first saw it (µs).
    first_seen: HashMap<(String, i64), u64>,
}

impl Seen {
    fn ready(&self, kind: Option<Kind>, generation_at_least: i64) -> usize {
        self.objects
            .iter()
            .filter(|((k, _), (g, ready))| {
                kind.is_none_or(|want| *k == want) && *ready && *g >= generation_at_least
            })
            .count()
    }
}

fn ready_now(obj: &DynamicObject) -> bool {
    let generation = obj.metadata.generation;
    obj.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Ready"
                && c["status"] == "True"
                && c["observedGeneration"].as_i64() == generation
        })
}

/// Follow every kind in the namespace (a no-op watcher: it only records).
fn watch_all(client: &kube::Client, namespace: &str, seen: Arc<Mutex<Seen>>) {
    for kind in KINDS {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &kind.resource());
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
            );
            while let Some(event) = events.next().await {
                let Ok(obj) = event else { continue };
                let at = now_micros();
                let name = obj.metadata.name.clone().unwrap_or_default();
                let generation = obj.metadata.generation.unwrap_or_default();
                let ready = ready_now(&obj);
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                s.first_seen.entry((name.clone(), generation)).or_insert(at);
                s.objects.insert((kind, name), (generation, ready));
            }
        });
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    figure: String,
    measured: String,
    target: String,
    /// `None`: a figure without a target (shown for context).
    met: Option<bool>,
}

fn row(figure: &str, measured: String, target: &str, met: Option<bool>) -> Row {
    Row {
        figure: figure.into(),
        measured,
        target: target.into(),
        met,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a wave of rollouts cost and how long it took.
#[derive(Debug, Clone, Serialize)]
struct Wave {
    seconds: f64,
    /// Until the first was Ready: the start, one rollout's own calls and waits.
    first_ready_seconds: f64,
    /// `first_ready_seconds` plus the busiest API's calls at the allowed rate.
    bound_seconds: f64,
    bound_api: String,
    calls: BTreeMap<String, u64>,
    calls_per_rollout: BTreeMap<Kind, f64>,
    throttled: u64,
    failures: u64,
    warnings: BTreeMap<String, u64>,
    duplicated_mutations: u64,
}

/// Calls per API, throttling answers, and mutations sent twice with the same request.
fn tally(calls: &[Call]) -> (BTreeMap<String, u64>, u64, u64) {
    let mut per_api = BTreeMap::new();
    let mut throttled = 0;
    let mut mutations: HashMap<(&str, &str, &str), u64> = HashMap::new();
    for c in calls {
        *per_api.entry(c.action.clone()).or_insert(0) += 1;
        if c.code
            .as_deref()
            .is_some_and(|code| code.starts_with("Throttling"))
        {
            throttled += 1;
        }
        if let (Some(t), Some(r)) = (&c.target, &c.request)
            && c.status < 300
        {
            *mutations.entry((&c.action, t, r)).or_insert(0) += 1;
        }
    }
    let duplicated = mutations.values().map(|n| n.saturating_sub(1)).sum();
    (per_api, throttled, duplicated)
}

struct Bench {
    args: BenchArgs,
    exe: PathBuf,
    client: kube::Client,
    sim: Simulator,
    seen: Arc<Mutex<Seen>>,
    op_port: u16,
    started: usize,
}

impl Bench {
    fn start_operator(&mut self) -> anyhow::Result<Proc> {
        self.started += 1;
        let log = std::fs::File::create(
            self.args
                .log_dir
                .join(format!("operator-{}.log", self.started)),
        )?;
        let child = Command::new(&self.exe)
            .args(["run", "--namespaces", &self.args.namespace])
            .args(["--eas-endpoint", &self.sim.url])
            .args(["--esa-endpoint", &self.sim.url])
            .args(["--sts-endpoint", &self.sim.url])
            .args(["--listen", &format!("127.0.0.1:{}", self.op_port)])
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                crate::simulator::DEFAULT_ACCESS_KEY_ID,
            )
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                crate::simulator::DEFAULT_ACCESS_KEY_SECRET,
            )
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the operator")?;
        Ok(Proc { child })
    }

    /// Reconcile failures the operator counted (from its /metrics).
    async fn failures(&self) -> u64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.op_port);
        let Ok(r) = self.sim.http.get(url).send().await else {
            return 0;
        };
        let text = r.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("alicloud_rollouts_reconcile_failures_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    async fn warnings(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), &self.args.namespace);
        let mut out = BTreeMap::new();
        for e in api.list(&ListParams::default()).await? {
            if e.type_.as_deref() == Some("Warning") {
                *out.entry(e.reason.unwrap_or_default()).or_insert(0) +=
                    u64::try_from(e.count.unwrap_or(1)).unwrap_or(1);
            }
        }
        Ok(out)
    }

    /// Seconds until the first and until all resources were Ready at `generation`.
    async fn wait_ready(&self, generation: i64, since: Instant) -> anyhow::Result<(f64, f64)> {
        let mut first = None;
        let n = self.args.resources;
        let all = self
            .wait_ready_n(n, generation, since, &mut |ready| {
                if ready > 0 && first.is_none() {
                    first = Some(since.elapsed().as_secs_f64());
                }
            })
            .await?;
        Ok((first.unwrap_or(all), all))
    }

    async fn wait_ready_n(
        &self,
        n: usize,
        generation: i64,
        since: Instant,
        progress: &mut dyn FnMut(usize),
    ) -> anyhow::Result<f64> {
        let mut last_report = Instant::now();
        loop {
            let ready = self
                .seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ready(None, generation);
            progress(ready);
            if ready >= n {
                return Ok(since.elapsed().as_secs_f64());
            }
            if since.elapsed() > self.args.phase_timeout {
                bail!(
                    "only {ready} of {n} Ready after {:?}",
                    self.args.phase_timeout
                );
            }
            if last_report.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "bench:   {ready}/{n} Ready after {:.0}s",
                    since.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Figures of a wave from the calls it made.
    async fn wave(&self, (first, seconds): (f64, f64), calls: &[Call]) -> anyhow::Result<Wave> {
        let (per_api, throttled, duplicated) = tally(calls);
        let (bound_api, bound_calls) = per_api
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(a, n)| (a.clone(), *n))
            .unwrap_or_default();
        let mut per_kind: BTreeMap<Kind, f64> = BTreeMap::new();
        for (action, n) in &per_api {
            if let Some(kind) = Kind::of_action(action) {
                *per_kind.entry(kind).or_insert(0.0) += *n as f64;
            }
        }
        let count = |k: Kind| {
            (0..self.args.resources)
                .filter(|i| Kind::of(*i) == k)
                .count()
        };
        for (kind, total) in per_kind.iter_mut() {
            *total /= count(*kind).max(1) as f64;
        }
        Ok(Wave {
            seconds,
            first_ready_seconds: first,
            bound_seconds: first + bound_calls as f64 / operator_rate(),
            bound_api,
            calls: per_api,
            calls_per_rollout: per_kind,
            throttled,
            failures: self.failures().await,
            warnings: self.warnings().await?,
            duplicated_mutations: duplicated,
        })
    }

    async fn create_all(&self) -> anyhow::Result<()> {
        let n = self.args.resources;
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
            .map(|i| {
                let client = self.client.clone();
                let ns = self.args.namespace.clone();
                async move {
                    let kind = Kind::of(i);
                    let ar = kind.resource();
                    let obj: DynamicObject = serde_json::from_value(json!({
                        "apiVersion": ar.api_version, "kind": ar.kind,
                        "metadata": {"name": name(i), "namespace": ns},
                        "spec": spec(i, 0),
                    }))?;
                    Api::<DynamicObject>::namespaced_with(client, &ns, &ar)
                        .create(&PostParams::default(), &obj)
                        .await
                        .with_context(|| format!("creating {}", name(i)))?;
                    Ok(())
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn change_all(&self, wave: u32) -> anyhow::Result<()> {
        let n = self.args.resources;
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
            .map(|i| {
                let client = self.client.clone();
                let ns = self.args.namespace.clone();
                async move {
                    let ar = Kind::of(i).resource();
                    Api::<DynamicObject>::namespaced_with(client, &ns, &ar)
                        .patch(
                            &name(i),
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": spec(i, wave)})),
                        )
                        .await
                        .with_context(|| format!("changing {}", name(i)))?;
                    Ok(())
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Spec changes one at a time on the routines: (latency, floor) in milliseconds.
    async fn reaction(&self) -> anyhow::Result<Vec<(f64, f64)>> {
        let routines: Vec<usize> = (0..self.args.resources)
            .filter(|i| Kind::of(*i) == Kind::Routine)
            .collect();
        if routines.is_empty() {
            bail!("no routines to change");
        }
        let api = Api::<DynamicObject>::namespaced_with(
            self.client.clone(),
            &self.args.namespace,
            &Kind::Routine.resource(),
        );
        self.sim.new_calls().await?;
        let mut samples = Vec::new();
        for j in 0..self.args.changes {
            let i = routines[j % routines.len()];
            let target = name(i);
            let paced = tokio::time::sleep(self.args.change_interval);
            // 21% after wave 2's 20%, one more on each visit: always a change.
            let share = 21 + ((j / routines.len()) % 70) as i64;
            let patch = Patch::Merge(json!({"spec": routine_spec(&target, share)}));
            let t0 = now_micros();
            let obj = api
                .patch(&target, &PatchParams::default(), &patch)
                .await
                .with_context(|| format!("reaction change {j}"))?;
            let generation = obj.metadata.generation.unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(30);
            let called = loop {
                let calls = self.sim.new_calls().await?;
                if let Some(c) = calls.iter().find(|c| {
                    c.action == "CreateRoutineCodeDeployment"
                        // The call log names a routine deployment `Name/Env`.
                        && c.target.as_deref().and_then(|t| t.split('/').next())
                            == Some(target.as_str())
                        && c.at_micros >= t0
                }) {
                    break c.at_micros;
                }
                if Instant::now() > deadline {
                    bail!("change {j} of {target} caused no CreateRoutineCodeDeployment in 30 s");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let watched = loop {
                if let Some(at) = self
                    .seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .first_seen
                    .get(&(target.clone(), generation))
                {
                    break *at;
                }
                if Instant::now() > deadline {
                    bail!("the driver's watcher never saw change {j} of {target}");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let rtt = self.sim.round_trip().await?;
            let latency = called.saturating_sub(t0) as f64 / 1000.0;
            let floor = watched.saturating_sub(t0) as f64 / 1000.0 + rtt.as_secs_f64() * 1000.0;
            samples.push((latency, floor));
            paced.await;
        }
        Ok(samples)
    }
}

impl Bench {
    /// The simulator (seeded for `args.resources`), the namespace and the watchers.
    async fn setup(args: &BenchArgs) -> anyhow::Result<Bench> {
        std::fs::create_dir_all(&args.log_dir)?;
        let exe = std::env::current_exe().context("locating this binary")?;
        let client = kube::Client::try_default()
            .await
            .context("no Kubernetes configuration (KUBECONFIG)")?;

        // The simulator, enforcing 100 requests per second per API like the cloud.
        let sim_port = free_port()?;
        let sim_log = std::fs::File::create(args.log_dir.join("simulator.log"))?;
        let sim_proc = Proc {
            child: Command::new(&exe)
                .args(["simulator", "--listen", &format!("127.0.0.1:{sim_port}")])
                .args([
                    "--time-scale",
                    &args.time_scale.to_string(),
                    "--rate-limit",
                    "100",
                ])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(sim_log.try_clone()?)
                .stderr(sim_log)
                .spawn()
                .context("starting the simulator")?,
        };
        let sim = Simulator {
            url: format!("http://127.0.0.1:{sim_port}"),
            http: reqwest::Client::new(),
            read: Mutex::new(0),
            _proc: sim_proc,
        };
        let up = Instant::now();
        while sim.get("/_sim/time").await.is_err() {
            if up.elapsed() > Duration::from_secs(30) {
                bail!("the simulator did not start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sim.http
            .post(format!("{}/_sim/seed", sim.url))
            .json(&seed(args.resources))
            .send()
            .await?
            .error_for_status()
            .context("seeding the simulator")?;

        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": args.namespace}}))?;
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).context("creating the namespace"),
        }

        let seen: Arc<Mutex<Seen>> = Arc::default();
        watch_all(&client, &args.namespace, seen.clone());
        Ok(Bench {
            args: args.clone(),
            exe,
            client,
            sim,
            seen,
            op_port: free_port()?,
            started: 0,
        })
    }
}

/// Run the benchmark (or the soak); prints the table and writes the JSON report.
pub async fn run(mut args: BenchArgs) -> anyhow::Result<()> {
    if let Some(duration) = args.soak {
        // Routines and container apps only: their declared share changes every round.
        args.resources = args.soak_resources.max(3);
        return soak(args, duration).await;
    }
    if args.resources < 3 {
        bail!("--resources must be at least 3 (one of each kind)");
    }
    let mut bench = Bench::setup(&args).await?;
    let n = args.resources;
    let mut rows = Vec::new();
    let mut peak_kib = 0u64;

    // 1. Scale: N new resources, then the operator.
    eprintln!("bench: creating {n} resources");
    bench.create_all().await?;
    bench.sim.new_calls().await?;
    eprintln!("bench: phase 1: starting the operator; waiting for all {n} Ready");
    let t = Instant::now();
    let op = bench.start_operator()?;
    let secs = bench.wait_ready(1, t).await?;
    let calls = bench.sim.new_calls().await?;
    let scale = bench.wave(secs, &calls).await?;
    peak_kib = peak_kib.max(op.usage().peak_kib);

    // 2. Failover: the operator killed, every spec changed, a new operator.
    eprintln!("bench: phase 2: SIGKILL, {n} spec changes, a new operator");
    op.kill();
    bench.change_all(1).await?;
    let t = Instant::now();
    let op = bench.start_operator()?;
    let secs = bench.wait_ready(2, t).await?;
    let calls = bench.sim.new_calls().await?;
    let failover = bench.wave(secs, &calls).await?;
    peak_kib = peak_kib.max(op.usage().peak_kib);

    // 3. Idle: a restart with everything settled, then a window at default settings.
    eprintln!(
        "bench: phase 3: restart with all settled; idle window {:?}",
        args.idle_window
    );
    op.kill();
    let op = bench.start_operator()?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    bench.sim.new_calls().await?;
    let before = op.usage();
    tokio::time::sleep(args.idle_window).await;
    let after = op.usage();
    let idle_calls = bench.sim.new_calls().await?;
    let (_, idle_throttled, _) = tally(&idle_calls);
    let window = args.idle_window.as_secs_f64();
    let per_hour = idle_calls.len() as f64 / n as f64 / window * 3600.0;
    let idle_cpu = (after.cpu_seconds - before.cpu_seconds) / window * 100.0;
    peak_kib = peak_kib.max(after.peak_kib);

    // 4. Reaction latency.
    eprintln!(
        "bench: phase 4: {} spec changes, one at a time",
        args.changes
    );
    let samples = bench.reaction().await?;
    peak_kib = peak_kib.max(op.usage().peak_kib);
    let restart_failures = bench.failures().await;
    op.kill();

    let mut latency: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let mut floor: Vec<f64> = samples.iter().map(|s| s.1).collect();
    latency.sort_by(f64::total_cmp);
    floor.sort_by(f64::total_cmp);
    let (l50, l99) = (percentile(&latency, 50.0), percentile(&latency, 99.0));
    let (f50, f99) = (percentile(&floor, 50.0), percentile(&floor, 99.0));

    rows.push(row(
        "reaction latency p50 / p99 (ms)",
        format!(
            "{l50:.1} / {l99:.1} ({} changes, {n} resources)",
            latency.len()
        ),
        "p99 < 100 ms and <= 2x floor",
        Some(l99 < 100.0 && l99 <= 2.0 * f99),
    ));
    rows.push(row(
        "  floor p50 / p99 (ms): watch delay + 1 loopback RTT",
        format!("{f50:.1} / {f99:.1}"),
        "",
        None,
    ));
    for kind in KINDS {
        let got = scale.calls_per_rollout.get(&kind).copied().unwrap_or(0.0);
        let min = minimum_calls(kind);
        rows.push(row(
            &format!("calls per rollout, creation to Ready: {kind:?}"),
            format!("{got:.2} (minimum {min})"),
            "<= 1.2x minimum",
            Some(got <= 1.2 * f64::from(min)),
        ));
    }
    rows.push(row(
        "cloud calls per settled resource per hour",
        format!("{per_hour:.2} (default --settled-poll)"),
        "a few (<= 5)",
        Some(per_hour <= 5.0),
    ));
    for (label, w) in [("scale", &scale), ("failover", &failover)] {
        let ratio = w.seconds / w.bound_seconds.max(f64::EPSILON);
        rows.push(row(
            &format!("{label}: time to all {n} Ready (s)"),
            format!(
                "{:.1} vs bound {:.1} (first Ready {:.1} + {} calls of {} at {}/s): {ratio:.2}x",
                w.seconds,
                w.bound_seconds,
                w.first_ready_seconds,
                w.calls.get(&w.bound_api).copied().unwrap_or(0),
                w.bound_api,
                operator_rate()
            ),
            "<= 1.25x bound",
            Some(ratio <= 1.25),
        ));
        let limiter_warnings: u64 = w
            .warnings
            .iter()
            .filter(|(r, _)| r.contains("Timeout") || r.contains("Throttl"))
            .map(|(_, n)| n)
            .sum();
        rows.push(row(
            &format!("{label}: throttled / failures / limiter Warnings / duplicate mutations"),
            format!(
                "{} / {} / {} / {}",
                w.throttled, w.failures, limiter_warnings, w.duplicated_mutations
            ),
            "0 / 0 / 0 / 0",
            Some(
                w.throttled == 0
                    && w.failures == 0
                    && limiter_warnings == 0
                    && w.duplicated_mutations == 0,
            ),
        ));
    }
    rows.push(row(
        "restart with all settled: throttled / failures",
        format!("{idle_throttled} / {restart_failures}"),
        "0 / 0",
        Some(idle_throttled == 0 && restart_failures == 0),
    ));
    rows.push(row(
        &format!("operator peak RSS at {n} resources (MiB)"),
        format!("{:.1}", peak_kib as f64 / 1024.0),
        "< 100 MiB",
        Some(peak_kib < 100 * 1024),
    ));
    rows.push(row(
        &format!("operator idle CPU at {n} resources (% of a core)"),
        format!("{idle_cpu:.2}"),
        "< 1%",
        Some(idle_cpu < 1.0),
    ));

    print_table(&rows);
    let report = json!({
        "resources": n,
        "changes": args.changes,
        "idleWindowSeconds": window,
        "operatorRatePerApi": operator_rate(),
        "rows": rows,
        "scale": scale,
        "failover": failover,
        "reaction": {"p50Ms": l50, "p99Ms": l99, "floorP50Ms": f50, "floorP99Ms": f99},
        "settledCallsPerResourcePerHour": per_hour,
        "idleCpuPercent": idle_cpu,
        "peakRssMiB": peak_kib as f64 / 1024.0,
        "idleRssMiB": after.rss_kib as f64 / 1024.0,
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("bench: wrote {}", args.out.display());
    Ok(())
}

/// The fewest calls a rollout of `kind` from creation to Ready can take with the specs
/// the benchmark declares (derivation in the README, "Performance"): one read of the
/// cloud's state before deciding, the one mutation, one read showing the target.
fn minimum_calls(kind: Kind) -> u32 {
    match kind {
        Kind::Eas | Kind::Routine | Kind::App => 3,
    }
}

fn print_table(rows: &[Row]) {
    let w0 = rows.iter().map(|r| r.figure.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.measured.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.target.len()).max().unwrap_or(0);
    println!(
        "{:w0$}  {:w1$}  {:w2$}  met?",
        "figure", "measured", "target"
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {met}",
            r.figure, r.measured, r.target
        );
    }
}

/// The spec of soak resource `i` (a routine or a container app) at `share` percent.
fn soak_spec(i: usize, share: i64) -> Value {
    match Kind::of(i) {
        Kind::App => json!({
            "appId": name(i), "versionId": "ver-2", "env": "production", "percentage": share,
        }),
        _ => routine_spec(&name(i), share),
    }
}

/// Apply `spec(i)` to each of `indices` (create or change), 32 at a time.
async fn apply_specs(
    client: &kube::Client,
    namespace: &str,
    indices: &[usize],
    spec: impl Fn(usize) -> Value,
) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(indices.iter().copied())
        .map(|i| {
            let ar = Kind::of(i).resource();
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ar);
            let obj = json!({
                "apiVersion": ar.api_version, "kind": ar.kind,
                "metadata": {"name": name(i)},
                "spec": spec(i),
            });
            async move {
                api.patch(
                    &name(i),
                    &PatchParams::apply("alicloud-rollouts-bench").force(),
                    &Patch::Apply(obj),
                )
                .await
                .with_context(|| format!("applying {}", name(i)))?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

/// The fault campaign: rounds of spec changes, each followed by one fault, until
/// `duration` has passed; after each, every rollout must reach its declared state with no
/// mutation sent twice.
async fn soak(args: BenchArgs, duration: Duration) -> anyhow::Result<()> {
    let script = args
        .control_plane_script
        .clone()
        .context("--soak needs --control-plane-script (scripts/bench.sh passes it)")?;
    let m = args.resources;
    // Routines and container apps: every index that is not an EAS service.
    let indices: Vec<usize> = (0..)
        .filter(|i| Kind::of(*i) != Kind::Eas)
        .take(m)
        .collect();
    let mut seed_args = args.clone();
    seed_args.resources = indices.last().copied().unwrap_or(0) + 1;
    let mut bench = Bench::setup(&seed_args).await?;
    let ns = args.namespace.clone();
    apply_specs(&bench.client, &ns, &indices, |i| soak_spec(i, 1)).await?;
    let mut op = bench.start_operator()?;
    bench
        .wait_ready_n(m, 1, Instant::now(), &mut |_| {})
        .await?;
    bench.sim.new_calls().await?;

    let started = Instant::now();
    let mut injected: BTreeMap<&str, u32> = BTreeMap::new();
    let mut survived: BTreeMap<&str, u32> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut round: i64 = 0;
    while started.elapsed() < duration {
        round += 1;
        let share = 1 + round % 98;
        apply_specs(&bench.client, &ns, &indices, |i| soak_spec(i, share)).await?;
        let fault = ["kill", "kill", "apiserver", "etcd"][rand::random_range(0..4)];
        *injected.entry(fault).or_default() += 1;
        match fault {
            "kill" => {
                let at = rand::random_range(0..2000);
                tokio::time::sleep(Duration::from_millis(at)).await;
                op.kill();
                op = bench.start_operator()?;
            }
            component => {
                let out = Command::new("bash")
                    .arg(&script)
                    .args(["restart", component])
                    .output()?;
                if !out.status.success() {
                    bail!(
                        "restarting {component}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        let t = Instant::now();
        let converged = bench.wait_ready_n(m, round + 1, t, &mut |_| {}).await;
        let calls = bench.sim.new_calls().await?;
        let (_, _, duplicated) = tally(&calls);
        match converged {
            Ok(secs) if duplicated == 0 => {
                *survived.entry(fault).or_default() += 1;
                eprintln!(
                    "bench: soak round {round}: {fault}: all {m} at {share}% after {secs:.1}s"
                );
            }
            Ok(_) => problems.push(format!(
                "round {round} ({fault}): {duplicated} mutations sent twice"
            )),
            Err(e) => problems.push(format!("round {round} ({fault}): {e}")),
        }
    }
    op.kill();
    let total: u32 = injected.values().sum();
    let ok: u32 = survived.values().sum();
    println!("fault      injected  survived");
    for (fault, n) in &injected {
        println!(
            "{fault:10} {n:8}  {:8}",
            survived.get(fault).copied().unwrap_or(0)
        );
    }
    println!("total      {total:8}  {ok:8}");
    for p in &problems {
        println!("problem: {p}");
    }
    let report = json!({
        "soakSeconds": started.elapsed().as_secs_f64(),
        "resources": m,
        "injected": injected,
        "survived": survived,
        "problems": problems,
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    if !problems.is_empty() {
        bail!("{} of {total} faults not survived", problems.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn tally_counts_throttling_and_repeated_mutations() {
        let call = |action: &str, status: u16, request: Option<&str>| Call {
            action: action.into(),
            status,
            at_micros: 0,
            target: Some("r".into()),
            request: request.map(str::to_string),
            code: (status == 400).then(|| "Throttling.User".to_string()),
        };
        let (per_api, throttled, duplicated) = tally(&[
            call("GetRoutine", 200, None),
            call("GetRoutine", 400, None),
            call("CreateRoutineCodeDeployment", 200, Some("a")),
            call("CreateRoutineCodeDeployment", 200, Some("a")),
            call("CreateRoutineCodeDeployment", 200, Some("b")),
        ]);
        assert_eq!(per_api["GetRoutine"], 2);
        assert_eq!(throttled, 1);
        assert_eq!(duplicated, 1);
    }

    #[test]
    fn every_action_of_the_operator_has_a_kind() {
        for (action, kind) in [
            ("DescribeServiceRollout", Some(Kind::Eas)),
            ("UpdateService", Some(Kind::Eas)),
            ("GetRoutine", Some(Kind::Routine)),
            ("CreateRoutineCodeDeployment", Some(Kind::Routine)),
            ("GetEdgeContainerAppStatus", Some(Kind::App)),
            ("PublishEdgeContainerAppVersion", Some(Kind::App)),
            ("GetCallerIdentity", None),
        ] {
            assert_eq!(Kind::of_action(action), kind, "{action}");
        }
    }
}
