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
        let seed = Seed::parse(seed).expect("test seed parses");
        let handle = start(SimConfig {
            time_scale,
            seed: Some(seed),
            access_keys: keys,
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
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

    /// Add a fault (see notes/sim-api.md).
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

    pub async fn clear_faults(&self) {
        self.http
            .delete(format!("{}/_sim/faults", self.url()))
            .send()
            .await
            .expect("sim admin answers");
    }
}

/// The operator binary, watching one namespace, pointed at a simulator.
pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
    args: Vec<String>,
    kubeconfig: PathBuf,
}

impl Operator {
    pub fn start(api: &ApiServer, sim: &Sim, namespace: &str, kinds: &str) -> Operator {
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
            "--active-poll".into(),
            "1s".into(),
            "--settled-poll".into(),
            "5s".into(),
            "--requeue-base".into(),
            "500ms".into(),
            "--requeue-max".into(),
            "5s".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        let mut op = Operator {
            child: None,
            log,
            args,
            kubeconfig: api.kubeconfig.clone(),
        };
        op.spawn();
        op
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("operator log opens");
        let err = log.try_clone().expect("log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_alicloud-rollouts"))
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", SIM_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SIM_KEY_SECRET)
            .env("RUST_LOG", "info,alicloud_rollouts=debug")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("operator starts");
        self.child = Some(child);
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
                    .find(|l| l.contains("serving /metrics and /healthz"))
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

/// A unique namespace name for one test.
pub fn namespace(test: &str) -> String {
    let suffix: u32 = rand::random::<u32>() % 1_000_000;
    format!("e2e-{test}-{suffix}")
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
        let api = cluster();
        let sim = Sim::start(seed, time_scale).await;
        let namespace = namespace(test);
        let operator = Operator::start(&api, &sim, &namespace, kinds);
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
