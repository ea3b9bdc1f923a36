//! End-to-end harness: the local API server, an in-process simulator, and the operator
//! binary (`alicloud-rollouts run`) as a child process, driven with kubectl.
//!
//! Each test gets its own namespace, simulator and operator (watching only that
//! namespace), so tests run in parallel without seeing each other. Every wait is bounded;
//! the operator is killed on drop.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use alicloud_rollouts::simulator::seed::Seed;
use alicloud_rollouts::simulator::{SimConfig, SimulatorHandle, start};
use serde_json::Value;

use super::apiserver::{self, ApiServer};

/// The simulator's default access key pair.
pub const SIM_KEY_ID: &str = "testid";
pub const SIM_KEY_SECRET: &str = "testsecret";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The API server with this crate's CRDs installed and Established (once per test binary).
pub fn cluster() -> ApiServer {
    static READY: OnceLock<ApiServer> = OnceLock::new();
    READY
        .get_or_init(|| {
            let api = apiserver::ensure();
            let out = api
                .kubectl()
                .args([
                    "apply",
                    "--validate=false",
                    "--server-side",
                    "--force-conflicts",
                    "-f",
                ])
                .arg(repo_root().join("crds"))
                .output()
                .expect("kubectl runs");
            assert!(out.status.success(), "installing crds/: {}", text(&out));
            let out = api
                .kubectl()
                .args([
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "crd/easservicerollouts.rollouts.alicloud.dev",
                    "crd/esaroutinerollouts.rollouts.alicloud.dev",
                    "crd/esacontainerapprollouts.rollouts.alicloud.dev",
                    "crd/cloudaccounts.rollouts.alicloud.dev",
                ])
                .output()
                .expect("kubectl runs");
            assert!(out.status.success(), "CRDs not Established: {}", text(&out));
            api
        })
        .clone()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Poll `f` every 250 ms until it returns `Some`, at most `timeout`; panics with `what`
/// and the last observation (from `f`'s `Err`) otherwise.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A lag in seconds from the environment variable `name`; zero when unset.
fn lag_from_env(name: &str) -> Duration {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            let secs: f64 = v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v:?}: expected seconds"));
            alicloud_rollouts::simulator::lag::lag_from_secs(secs, name)
                .unwrap_or_else(|e| panic!("{e}"))
        }
        _ => Duration::ZERO,
    }
}

/// An in-process simulator with its admin API.
pub struct Sim {
    pub handle: SimulatorHandle,
    http: reqwest::Client,
}

impl Sim {
    /// Start with `seed` (YAML, the seed-file shape) at `time_scale`.
    pub async fn start(seed: &str, time_scale: f64) -> Sim {
        Sim::start_with_keys(seed, time_scale, Vec::new()).await
    }

    /// Same, accepting only `keys` (id, secret) instead of the default test pair.
    pub async fn start_with_keys(seed: &str, time_scale: f64, keys: Vec<(String, String)>) -> Sim {
        Sim::start_with(
            seed,
            SimConfig {
                time_scale,
                access_keys: keys,
                ..SimConfig::default()
            },
        )
        .await
    }

    /// Start with `seed` and every other setting from `config` (e.g. `read_lag`,
    /// `pause_lag`). Where `config` leaves a lag at zero, the environment variables
    /// `ALICLOUD_ROLLOUTS_SIM_READ_LAG` / `ALICLOUD_ROLLOUTS_SIM_PAUSE_LAG` (seconds) set
    /// it, so a whole end-to-end run repeats against an eventually consistent cloud:
    /// `ALICLOUD_ROLLOUTS_SIM_READ_LAG=3 ALICLOUD_ROLLOUTS_SIM_PAUSE_LAG=5 cargo test --test e2e_eas`.
    pub async fn start_with(seed: &str, mut config: SimConfig) -> Sim {
        config.seed = Some(Seed::parse(seed).expect("test seed parses"));
        if config.read_lag.is_zero() {
            config.read_lag = lag_from_env("ALICLOUD_ROLLOUTS_SIM_READ_LAG");
        }
        if config.pause_lag.is_zero() {
            config.pause_lag = lag_from_env("ALICLOUD_ROLLOUTS_SIM_PAUSE_LAG");
        }
        let handle = start(config).await.expect("simulator starts");
        Sim {
            handle,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.handle.addr())
    }

    /// Calls per action since start (or the last reset), rejected ones included.
    pub async fn calls(&self) -> BTreeMap<String, u64> {
        self.http
            .get(format!("{}/_sim/calls", self.url()))
            .send()
            .await
            .expect("sim admin answers")
            .json()
            .await
            .expect("calls JSON")
    }

    /// Every API call in order: `{"action", "accessKeyId", "status", "target", "mutation",
    /// "applied", "digest", "faults"}` (docs/simulator.md, "The call log").
    pub async fn call_log(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/_sim/calllog", self.url()))
            .send()
            .await
            .expect("sim admin answers")
            .json()
            .await
            .expect("call log JSON")
    }

    pub async fn count(&self, action: &str) -> u64 {
        self.calls().await.get(action).copied().unwrap_or(0)
    }

    pub async fn state(&self) -> Value {
        self.http
            .get(format!("{}/_sim/state", self.url()))
            .send()
            .await
            .expect("sim admin answers")
            .json()
            .await
            .expect("state JSON")
    }

    /// Add objects to the cloud (the seed-file shape), as another tool would create them.
    pub async fn seed(&self, yaml: &str) {
        let r = self
            .http
            .post(format!("{}/_sim/seed", self.url()))
            .body(yaml.to_string())
            .send()
            .await
            .expect("sim admin answers");
        assert!(r.status().is_success(), "seed rejected: {}", r.status());
    }

    /// Add a fault (see docs/simulator.md, "Admin API").
    pub async fn fault(&self, fault: Value) {
        let r = self
            .http
            .post(format!("{}/_sim/faults", self.url()))
            .json(&fault)
            .send()
            .await
            .expect("sim admin answers");
        assert!(r.status().is_success(), "fault rejected: {}", r.status());
    }

    /// Every fault, each with how often it `fired`.
    pub async fn faults(&self) -> Value {
        self.http
            .get(format!("{}/_sim/faults", self.url()))
            .send()
            .await
            .expect("sim admin answers")
            .json()
            .await
            .expect("faults JSON")
    }

    pub async fn clear_faults(&self) {
        self.http
            .delete(format!("{}/_sim/faults", self.url()))
            .send()
            .await
            .expect("sim admin answers");
    }
}

/// The label that ties a test's CloudAccounts to its operator (`--account-selector`):
/// CloudAccounts are cluster-wide, and tests run side by side on one API server.
pub const ACCOUNT_LABEL: &str = "e2e.alicloud-rollouts.dev/operator";

/// Create (or replace) the cluster-scoped CloudAccount `name` with `spec`, seen only by the
/// operator of test namespace `owner`.
pub fn apply_account(api: &ApiServer, owner: &str, name: &str, spec: Value) {
    let account = serde_json::json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "CloudAccount",
        "metadata": {"name": name, "labels": {ACCOUNT_LABEL: owner}},
        "spec": spec,
    });
    let mut child = api
        .kubectl()
        .args(["--request-timeout=30s", "apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(account.to_string().as_bytes())
        .expect("account written");
    let out = child.wait_with_output().expect("kubectl finishes");
    assert!(
        out.status.success(),
        "applying CloudAccount {name}: {}",
        text(&out)
    );
}

/// Delete CloudAccount `name` (not waiting).
pub fn delete_account(api: &ApiServer, name: &str) {
    let _ = api
        .kubectl()
        .args([
            "--request-timeout=30s",
            "delete",
            "cloudaccount",
            name,
            "--ignore-not-found",
            "--wait=false",
        ])
        .output();
}

/// The operator binary, watching one namespace, pointed at a simulator.
pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
    args: Vec<String>,
    kubeconfig: PathBuf,
    /// Whether the operator gets the simulator's access key pair in its environment.
    static_keys: bool,
    /// Another key pair than the simulator's default one.
    keys: Option<(String, String)>,
}

impl Operator {
    pub fn start(api: &ApiServer, sim: &Sim, namespace: &str, kinds: &str) -> Operator {
        Operator::start_with(api, sim, namespace, kinds, true)
    }

    /// Same, with `extra` arguments (e.g. a shorter `--unknown-after`).
    pub fn start_with_args(
        api: &ApiServer,
        sim: &Sim,
        namespace: &str,
        kinds: &str,
        extra: &[&str],
    ) -> Operator {
        let mut op = Operator::configure(api, sim, namespace, kinds, true);
        op.args.extend(extra.iter().map(|a| a.to_string()));
        op.spawn();
        op
    }

    /// Same, with no access keys in the operator's environment: only per-resource
    /// credentials (`spec.credentialsSecretRef`) can work.
    pub fn start_without_keys(
        api: &ApiServer,
        sim: &Sim,
        namespace: &str,
        kinds: &str,
    ) -> Operator {
        Operator::start_with(api, sim, namespace, kinds, false)
    }

    /// Same as `start_without_keys`, but authenticated by `kubeconfig` (e.g. a
    /// ServiceAccount's token) and with `extra` arguments.
    pub fn start_as(
        api: &ApiServer,
        sim: &Sim,
        namespace: &str,
        kinds: &str,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> Operator {
        let mut op = Operator::configure(api, sim, namespace, kinds, false);
        op.kubeconfig = kubeconfig.to_path_buf();
        op.args.extend(extra.iter().map(|a| a.to_string()));
        op.spawn();
        op
    }

    /// Same as `start`, with some of the harness's flag values replaced, e.g.
    /// `&[("--stalled-recheck", "10m")]` (a flag the harness does not set is added).
    pub fn start_overriding(
        api: &ApiServer,
        sim: &Sim,
        namespace: &str,
        kinds: &str,
        overrides: &[(&str, &str)],
    ) -> Operator {
        let mut op = Operator::configure(api, sim, namespace, kinds, true);
        for (flag, value) in overrides {
            match op.args.iter().position(|a| a == flag) {
                Some(i) if i + 1 < op.args.len() => op.args[i + 1] = value.to_string(),
                _ => op.args.extend([flag.to_string(), value.to_string()]),
            }
        }
        op.spawn();
        op
    }

    fn start_with(
        api: &ApiServer,
        sim: &Sim,
        namespace: &str,
        kinds: &str,
        static_keys: bool,
    ) -> Operator {
        let mut op = Operator::configure(api, sim, namespace, kinds, static_keys);
        op.spawn();
        op
    }

    /// Same as [`Operator::configure`], and a default CloudAccount with the operator's own
    /// identity for every namespace (what an install before CloudAccounts did), seen by
    /// this operator only.
    fn configure(
        api: &ApiServer,
        sim: &Sim,
        namespace: &str,
        kinds: &str,
        static_keys: bool,
    ) -> Operator {
        let op = Operator::configure_bare(api, sim, namespace, kinds, static_keys);
        // Left behind with the test's namespace (replicas of one test share it); only
        // this test's operator sees it.
        let name = format!("e2e-{namespace}");
        apply_account(
            api,
            namespace,
            &name,
            serde_json::json!({
                "operatorIdentity": {},
                "namespaces": {"selector": {}},
                "default": true,
            }),
        );
        op
    }

    /// The operator with no CloudAccount: it sees only the accounts a test makes with
    /// [`apply_account`] for `namespace`.
    pub fn start_bare(api: &ApiServer, sim: &Sim, namespace: &str, kinds: &str) -> Operator {
        let mut op = Operator::configure_bare(api, sim, namespace, kinds, true);
        op.spawn();
        op
    }

    fn configure_bare(
        api: &ApiServer,
        sim: &Sim,
        namespace: &str,
        kinds: &str,
        static_keys: bool,
    ) -> Operator {
        let dir = std::env::temp_dir().join("alicloud-rollouts-e2e");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("operator-{namespace}.log"));
        let args = vec![
            "run".to_string(),
            "--kinds".into(),
            kinds.into(),
            "--namespaces".into(),
            namespace.into(),
            "--eas-endpoint".into(),
            sim.url(),
            "--esa-endpoint".into(),
            sim.url(),
            "--sts-endpoint".into(),
            sim.url(),
            "--cms-endpoint".into(),
            sim.url(),
            "--active-poll".into(),
            "1s".into(),
            "--settled-poll".into(),
            "5s".into(),
            "--stalled-recheck".into(),
            "2s".into(),
            "--requeue-base".into(),
            "500ms".into(),
            "--requeue-max".into(),
            "5s".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--account-selector".into(),
            format!("{ACCOUNT_LABEL}={namespace}"),
        ];
        Operator {
            child: None,
            log,
            args,
            kubeconfig: api.kubeconfig.clone(),
            static_keys,
            keys: None,
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("operator log opens");
        let err = log.try_clone().expect("log handle");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_alicloud-rollouts"));
        if let Some((id, secret)) = &self.keys {
            cmd.env("ALIBABA_CLOUD_ACCESS_KEY_ID", id)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret);
        } else if self.static_keys {
            cmd.env("ALIBABA_CLOUD_ACCESS_KEY_ID", SIM_KEY_ID)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SIM_KEY_SECRET);
        } else {
            use alicloud_rollouts::cloud::provider as p;
            for var in [
                p::ENV_ACCESS_KEY_ID,
                p::ENV_ACCESS_KEY_SECRET,
                p::ENV_SECURITY_TOKEN,
                p::ENV_ROLE_ARN,
                p::ENV_OIDC_PROVIDER_ARN,
                p::ENV_OIDC_TOKEN_FILE,
            ] {
                cmd.env_remove(var);
            }
        }
        let child = cmd
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,alicloud_rollouts=debug")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("operator starts");
        self.child = Some(child);
    }

    /// One of several replicas with leader election: its own identity (`--instance`),
    /// key pair (so the simulator's call log tells the replicas apart), log file and
    /// `extra` arguments.
    pub fn start_replica(
        api: &ApiServer,
        sim: &Sim,
        namespace: &str,
        kinds: &str,
        identity: &str,
        key: (&str, &str),
        extra: &[&str],
    ) -> Operator {
        let mut op = Operator::configure(api, sim, namespace, kinds, false);
        op.log = op
            .log
            .with_file_name(format!("operator-{namespace}-{identity}.log"));
        let _ = std::fs::remove_file(&op.log);
        op.keys = Some((key.0.to_string(), key.1.to_string()));
        op.args.extend(
            [
                "--leader-elect",
                "--leader-election-namespace",
                namespace,
                "--instance",
                identity,
            ]
            .iter()
            .chain(extra)
            .map(|a| a.to_string()),
        );
        op.spawn();
        op
    }

    /// Send a signal (`"STOP"`, `"CONT"`, `"TERM"`) to the operator process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("operator running").id();
        let out = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .output()
            .expect("kill runs");
        assert!(out.status.success(), "kill -{signal}: {}", text(&out));
    }

    /// Wait (bounded) for the process to exit on its own; its exit status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("operator started");
            if let Some(status) = child.try_wait().expect("wait works") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not exit within {timeout:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// GET `path` (e.g. `/readyz`) on the operator's listen address: status and body.
    pub async fn probe(&self, path: &str) -> (u16, String) {
        let addr = self.metrics_addr().await;
        match reqwest::get(format!("http://{addr}{path}")).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&self.log) {
            let _ = writeln!(f, "----- restarted by the test -----");
        }
        self.spawn();
    }

    /// Where the operator serves /metrics and /healthz (from its start-up log line).
    pub async fn metrics_addr(&self) -> String {
        wait_for(
            "the operator's listen address",
            Duration::from_secs(30),
            || async {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                log.lines()
                    .rev()
                    .find(|l| l.contains("serving /metrics"))
                    .and_then(|l| l.split("addr=").nth(1))
                    .map(|a| a.split_whitespace().next().unwrap_or_default().to_string())
                    .ok_or_else(|| "not logged yet".to_string())
            },
        )
        .await
    }

    /// The last lines of the operator's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let all = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// kubectl in one namespace.
pub struct Kubectl {
    pub api: ApiServer,
    pub namespace: String,
}

impl Kubectl {
    pub fn new(api: &ApiServer, namespace: &str) -> Kubectl {
        Kubectl {
            api: api.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// Every request is bounded (`kubectl wait` bounds itself with `--timeout`).
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.api.kubectl();
        cmd.arg("-n").arg(&self.namespace);
        if args.first() != Some(&"wait") {
            cmd.arg("--request-timeout=30s");
        }
        cmd.args(args).output().expect("kubectl runs")
    }

    pub fn must(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        text(&out)
    }

    /// `kubectl apply -f -` of a manifest.
    pub fn apply(&self, manifest: &str) {
        let mut child = self
            .api
            .kubectl()
            .args([
                "-n",
                &self.namespace,
                "--request-timeout=30s",
                "apply",
                "--validate=false",
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(manifest.as_bytes())
            .expect("manifest written");
        let out = child.wait_with_output().expect("kubectl finishes");
        assert!(out.status.success(), "kubectl apply: {}", text(&out));
    }

    pub fn apply_file(&self, path: &Path) {
        let manifest = std::fs::read_to_string(path).expect("manifest readable");
        self.apply(&manifest);
    }

    /// `kubectl patch --type merge`.
    pub fn patch(&self, resource: &str, patch: &str) {
        self.must(&["patch", resource, "--type", "merge", "-p", patch]);
    }

    /// The object as JSON.
    pub fn get(&self, resource: &str) -> Value {
        let out = self.must(&["get", resource, "-o", "json"]);
        serde_json::from_str(&out).expect("kubectl get -o json")
    }

    pub fn try_get(&self, resource: &str) -> Option<Value> {
        let out = self.run(&["get", resource, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }
}

/// A new namespace with a unique name for one test (created on the API server).
pub fn namespace(test: &str) -> String {
    let suffix: u32 = rand::random::<u32>() % 1_000_000;
    let name = format!("e2e-{test}-{suffix}");
    cluster().create_namespace(&name);
    name
}

/// `status.conditions[type]` of an object as (status, reason).
pub fn condition(obj: &Value, type_: &str) -> Option<(String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Everything the harness of one test holds; dropping it stops the operator and the
/// simulator.
pub struct Env {
    pub api: ApiServer,
    pub sim: Sim,
    pub operator: Operator,
    pub kubectl: Kubectl,
    pub namespace: String,
}

impl Env {
    pub async fn start(test: &str, seed: &str, time_scale: f64, kinds: &str) -> Env {
        Env::start_with(
            test,
            seed,
            SimConfig {
                time_scale,
                ..SimConfig::default()
            },
            kinds,
        )
        .await
    }

    /// Same, with every simulator setting from `config` (e.g. its read lag).
    pub async fn start_with(test: &str, seed: &str, config: SimConfig, kinds: &str) -> Env {
        Env::start_with_args(test, seed, config, kinds, &[]).await
    }

    /// Same, with `extra` arguments for the operator (e.g. `--mutation-grace 2s`).
    pub async fn start_with_args(
        test: &str,
        seed: &str,
        config: SimConfig,
        kinds: &str,
        extra: &[&str],
    ) -> Env {
        let api = cluster();
        let sim = Sim::start_with(seed, config).await;
        let namespace = namespace(test);
        let mut operator = Operator::configure(&api, &sim, &namespace, kinds, true);
        operator.args.extend(extra.iter().map(|a| a.to_string()));
        operator.spawn();
        let kubectl = Kubectl::new(&api, &namespace);
        Env {
            api,
            sim,
            operator,
            kubectl,
            namespace,
        }
    }

    /// Wait until `check(object)` holds; the error string says what was seen instead.
    pub async fn wait_obj<F>(
        &self,
        what: &str,
        resource: &str,
        timeout: Duration,
        check: F,
    ) -> Value
    where
        F: Fn(&Value) -> Result<(), String>,
    {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Some(obj) = self.kubectl.try_get(resource) {
                match check(&obj) {
                    Ok(()) => return obj,
                    Err(e) => last = format!("{e}; status: {}", obj["status"]),
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} on {resource}; last: {last}\n\
                     operator log:\n{}",
                    self.operator.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// The EAS CRD with a spec that accepts anything.
pub fn permissive_crd() -> Value {
    let mut crd = serde_json::to_value(
        <alicloud_rollouts::crd::EasServiceRollout as kube::CustomResourceExt>::crd(),
    )
    .expect("CRD serializes");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    crd
}

pub fn apply_crd(env: &Env, manifest: &str) {
    env.kubectl.apply(manifest);
    let out = env
        .api
        .kubectl()
        .args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/easservicerollouts.rollouts.alicloud.dev",
        ])
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "CRD not Established: {}", text(&out));
}

/// Retry `kubectl apply` of `manifest` until it succeeds (`want_ok`) or is refused.
pub async fn until_apply(env: &Env, manifest: &str, want_ok: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut child = env
            .api
            .kubectl()
            .args([
                "-n",
                &env.namespace,
                "--request-timeout=30s",
                "apply",
                "--validate=false",
                "-f",
                "-",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), manifest.as_bytes())
            .expect("manifest written");
        let out = child.wait_with_output().expect("kubectl finishes");
        if out.status.success() == want_ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "apply of the manifest: wanted success={want_ok}, got {}",
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
