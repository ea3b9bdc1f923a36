//! What GitOps tools read from the objects the operator writes (issue 11), judged by the
//! real parts those tools run: Flux's kstatus library (cli-utils, built from its Go module
//! as hack/kstatus) and our Argo CD health checks and actions run in gopher-lua, the Lua VM
//! Argo CD embeds (hack/argocd-lua). The objects come from a real API server while the
//! operator drives the simulator; actions are applied back as Argo CD applies them (a patch
//! of what the script changed) and must move the rollout.
//!
//! `ALICLOUD_ROLLOUTS_CAPTURE_ARGOCD=1 cargo test --test e2e_gitops` rewrites the Argo CD
//! test data under deploy/argocd/ from the objects of the run (the expected health and
//! actions come from these scenarios, not from the scripts).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use support::e2e::{Env, condition, repo_root, text};

const GROUP: &str = "rollouts.alicloud.dev";
const A: &str = "1723599747213377175";
const B: &str = "1723688023417750321";

const SEED: &str = r#"
routines:
  - name: edge-fn
    codeVersions: ["1723599747213377175", "1723688023417750321"]
    deployed: "1723599747213377175"
apps:
  - id: app-880688675783794688
    versions: [ver-879626371616514000, ver-879626371616514048]
    deployed: ver-879626371616514000
services:
  - name: llm
    region: cn-hangzhou
    replicas: 4
    config:
      metadata: {instance: 4, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "llm:v1"}]
  - name: bert_embeddings
    region: cn-hangzhou
    replicas: 5
    config:
      metadata: {instance: 5, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "registry-vpc.cn-hangzhou.aliyuncs.com/ml-team/bert-embeddings:2.4.0", port: 8000}]
"#;

/// The simulator's clock runs 100x (step pauses are the operator's own wall-clock time).
const SCALE: f64 = 100.0;
const WAIT: Duration = Duration::from_secs(60);

/// A Go tool from hack/, built and cached by scripts/go-tool.sh.
fn tool(name: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/go-tool.sh"))
        .args([name, "path"])
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "building hack/{name}: {}", text(&out));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn kind_dir(kind: &str) -> PathBuf {
    repo_root()
        .join("deploy/argocd/resource_customizations")
        .join(GROUP)
        .join(kind)
}

fn capturing() -> bool {
    std::env::var_os("ALICLOUD_ROLLOUTS_CAPTURE_ARGOCD").is_some_and(|v| v == "1")
}

/// The object as a tool receives it, without the bookkeeping that only adds noise.
fn clean(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        for k in [
            "managedFields",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            m.remove(k);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    o
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("tool runs");
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the tools over objects of one kind, and keeps what a capture run writes.
struct Judge {
    kind: &'static str,
    kstatus: PathBuf,
    lua: PathBuf,
    scratch: tempfile::TempDir,
    health_tests: Mutex<Vec<Value>>,
    discovery_tests: Mutex<Vec<Value>>,
    action_tests: Mutex<Vec<Value>>,
}

impl Judge {
    fn new(kind: &'static str) -> Judge {
        Judge {
            kind,
            kstatus: tool("kstatus"),
            lua: tool("argocd-lua"),
            scratch: tempfile::tempdir().expect("temp dir"),
            health_tests: Mutex::default(),
            discovery_tests: Mutex::default(),
            action_tests: Mutex::default(),
        }
    }

    fn write(&self, name: &str, obj: &Value) -> PathBuf {
        let path = self.scratch.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(obj).expect("json")).expect("write");
        path
    }

    /// kstatus's verdict and Argo CD's health for `obj`, asserted, and (capturing) kept
    /// as Argo CD test data named `label`.
    fn judge(&self, label: &str, obj: &Value, want_kstatus: &str, want_health: &str) {
        let obj = clean(obj);
        let file = self.write(label, &obj);
        let k: Value = serde_json::from_str(&run(Command::new(&self.kstatus).arg(&file)))
            .expect("kstatus prints JSON");
        assert_eq!(
            k["status"], want_kstatus,
            "{}: kstatus says {k} for status {}",
            label, obj["status"]
        );
        let h: Value = serde_json::from_str(&run(Command::new(&self.lua).args([
            Path::new("health"),
            &kind_dir(self.kind),
            &file,
        ])))
        .expect("argocd-lua prints JSON");
        assert_eq!(
            h["status"], want_health,
            "{}: Argo CD health {h} for status {}",
            label, obj["status"]
        );
        if capturing() {
            let rel = format!("testdata/{label}.yaml");
            save(&kind_dir(self.kind).join(&rel), &obj);
            self.health_tests.lock().expect("lock").push(json!({
                "healthStatus": {"status": want_health, "message": h["message"]},
                "inputPath": rel,
            }));
        }
    }

    /// Which actions Argo CD offers (enabled) for `obj`; asserted against `enabled`.
    fn discover(&self, label: &str, obj: &Value, enabled: &[&str]) {
        let obj = clean(obj);
        let file = self.write(&format!("{label}-discovery"), &obj);
        let got: Value = serde_json::from_str(&run(Command::new(&self.lua).args([
            Path::new("discovery"),
            &kind_dir(self.kind),
            &file,
        ])))
        .expect("argocd-lua prints JSON");
        let on: Vec<&str> = got
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["disabled"] == false)
            .filter_map(|a| a["name"].as_str())
            .collect();
        let mut want: Vec<&str> = enabled.to_vec();
        want.sort_unstable();
        assert_eq!(on, want, "{label}: actions offered for {}", obj["status"]);
        if capturing() {
            let rel = format!("testdata/{label}.yaml");
            save(&kind_dir(self.kind).join("actions").join(&rel), &obj);
            self.discovery_tests.lock().expect("lock").push(json!({
                "inputPath": rel,
                "result": got,
            }));
        }
    }

    /// Run action `name` on `obj` and check that it changed exactly `spec_change` (a merge
    /// patch of the spec, computed here and not by the script). Returns the merge patch
    /// Argo CD would send.
    fn action(&self, label: &str, obj: &Value, name: &str, spec_change: Value) -> Value {
        let obj = clean(obj);
        let file = self.write(&format!("{label}-{name}-in"), &obj);
        let got: Value = serde_json::from_str(&run(Command::new(&self.lua).args([
            Path::new("action"),
            &kind_dir(self.kind),
            Path::new(name),
            &file,
        ])))
        .expect("argocd-lua prints JSON");
        let mut want = obj.clone();
        merge(&mut want["spec"], &spec_change);
        assert_eq!(got, want, "{label}: action {name}");
        if capturing() {
            let input = format!("testdata/{label}.yaml");
            let output = format!("testdata/{label}-{name}.yaml");
            let actions = kind_dir(self.kind).join("actions");
            save(&actions.join(&input), &obj);
            save(&actions.join(&output), &want);
            self.action_tests.lock().expect("lock").push(json!({
                "action": name,
                "inputPath": input,
                "expectedOutputPath": output,
            }));
        }
        json!({ "spec": spec_change })
    }

    /// Capturing: write health_test.yaml and actions/action_test.yaml for this kind.
    fn finish(&self) {
        if !capturing() {
            return;
        }
        let dir = kind_dir(self.kind);
        let health = json!({"tests": *self.health_tests.lock().expect("lock")});
        save(&dir.join("health_test.yaml"), &health);
        let actions = json!({
            "discoveryTests": *self.discovery_tests.lock().expect("lock"),
            "actionTests": *self.action_tests.lock().expect("lock"),
        });
        save(&dir.join("actions/action_test.yaml"), &actions);
    }
}

/// A JSON merge patch (RFC 7386) applied to `target`: what Argo CD sends for an action.
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in fields {
        if v.is_null() {
            if let Some(t) = target.as_object_mut() {
                t.remove(k);
            }
        } else {
            merge(&mut target[k], v);
        }
    }
}

fn save(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let body = serde_yaml::to_string(v).expect("yaml");
    std::fs::write(
        path,
        format!("# Written by tests/e2e_gitops.rs from a real run.\n{body}"),
    )
    .expect("write test data");
}

fn reason(obj: &Value, type_: &str) -> String {
    condition(obj, type_).map(|c| c.1).unwrap_or_default()
}

fn is_true(obj: &Value, type_: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c.0 == "True")
}

fn current(obj: &Value) -> Result<(), String> {
    let fresh = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
    fresh
        .then_some(())
        .ok_or_else(|| "status not for this generation yet".to_string())
}

/// Observed by the operator and Progressing with `reason`.
fn progressing_with(reason_: &'static str) -> impl Fn(&Value) -> Result<(), String> {
    move |o| {
        current(o)?;
        (reason(o, "Progressing") == reason_)
            .then_some(())
            .ok_or_else(|| format!("Progressing is not {reason_}"))
    }
}

/// Observed by the operator and condition `type_` True.
fn condition_true(type_: &'static str) -> impl Fn(&Value) -> Result<(), String> {
    move |o| {
        current(o)?;
        is_true(o, type_)
            .then_some(())
            .ok_or_else(|| format!("{type_} is not True"))
    }
}

/// A stepped rollout (a timed 10% step, then a manual gate) seen moving, then held at its
/// gate, each judged by kstatus and Argo CD; returns both objects.
async fn moving_then_gate(j: &Judge, env: &Env, res: &str) -> (Value, Value) {
    let moving = env
        .wait_obj(
            "the 10% step's pause",
            res,
            WAIT,
            progressing_with("WaitingForPause"),
        )
        .await;
    j.judge("progressing", &moving, "InProgress", "Progressing");
    j.discover("progressing", &moving, &["abort", "pause", "promote-full"]);
    let gate = env
        .wait_obj(
            "the 50% gate",
            res,
            WAIT,
            progressing_with("WaitingForPromotion"),
        )
        .await;
    j.judge("gate", &gate, "InProgress", "Suspended");
    j.discover(
        "gate",
        &gate,
        &["abort", "pause", "promote", "promote-full"],
    );
    (moving, gate)
}

fn patch(env: &Env, resource: &str, patch: &Value) {
    env.kubectl.patch(resource, &patch.to_string());
}

fn routine_manifest(name: &str, routine: &str) -> String {
    format!(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata:
  name: {name}
spec:
  routine: {routine}
  env: staging
  canary:
    stableVersion: "{A}"
    canaryVersion: "{B}"
    steps:
      - percentage: 10
        pause: 4s
      - percentage: 50
"#
    )
}

/// A routine canary walked through every state a GitOps tool shows: moving, held at a
/// gate, paused, a generation the operator has not seen, done, and needing a person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_states_read_right_in_kstatus_and_argocd() {
    let j = Judge::new("EsaRoutineRollout");
    let mut env = Env::start("gitops-routine", SEED, SCALE, "routine").await;
    let res = "esaroutinerollout/edge-fn";
    env.kubectl.apply(&routine_manifest("edge-fn", "edge-fn"));

    let (moving, gate) = moving_then_gate(&j, &env, res).await;
    assert!(is_true(&moving, "Reconciling"), "{}", moving["status"]);

    // Pause through the Argo CD action, applied as Argo CD applies it.
    let p = j.action("gate", &gate, "pause", json!({"paused": true}));
    patch(&env, res, &p);
    let paused = env
        .wait_obj("paused", res, WAIT, condition_true("Paused"))
        .await;
    j.judge("paused", &paused, "InProgress", "Suspended");
    j.discover("paused", &paused, &["abort", "promote-full", "resume"]);

    // A spec change the operator has not seen yet (it is stopped): still in progress.
    env.operator.kill();
    let p = j.action("paused", &paused, "resume", json!({"paused": false}));
    patch(&env, res, &p);
    let lagging = env.kubectl.get(res);
    assert!(current(&lagging).is_err(), "{}", lagging["status"]);
    j.judge(
        "generation-not-observed",
        &lagging,
        "InProgress",
        "Progressing",
    );
    env.operator.restart();
    let gate = env
        .wait_obj(
            "back at the gate",
            res,
            WAIT,
            progressing_with("WaitingForPromotion"),
        )
        .await;

    // Promote: approves the gate at the current step for this canary version.
    let step = gate["status"]["currentStep"]
        .as_i64()
        .expect("current step");
    let p = j.action(
        "gate-after-resume",
        &gate,
        "promote",
        json!({"canary": {"promotion": {"version": B, "step": step}}}),
    );
    j.action(
        "gate-after-resume",
        &gate,
        "promote-full",
        json!({"canary": {"promotion": {"version": B, "step": 1}}}),
    );
    patch(&env, res, &p);
    let done = env
        .wait_obj("the canary at 100%", res, WAIT, condition_true("Ready"))
        .await;
    assert!(!is_true(&done, "Reconciling"), "{}", done["status"]);
    j.judge("ready", &done, "Current", "Healthy");
    j.discover("ready", &done, &["abort", "pause"]);

    // A routine that does not exist: a person is needed.
    env.kubectl
        .apply(&routine_manifest("missing", "no-such-routine"));
    let stuck = env
        .wait_obj(
            "Degraded",
            "esaroutinerollout/missing",
            WAIT,
            condition_true("Stalled"),
        )
        .await;
    j.judge("degraded", &stuck, "Failed", "Degraded");
    j.discover(
        "degraded",
        &stuck,
        &["abort", "pause", "promote-full", "retry"],
    );
    j.action("degraded", &stuck, "retry", json!({"retry": 1}));

    // Abort: the rollback action rolls the canary back to the stable version.
    let p = j.action("ready", &done, "abort", json!({"rollback": true}));
    patch(&env, res, &p);
    env.wait_obj("rolled back", res, WAIT, |o| {
        current(o)?;
        let all_stable = o["status"]["codeVersions"]
            .as_array()
            .is_some_and(|v| v.len() == 1 && v[0]["codeVersion"] == A);
        (all_stable && is_true(o, "Ready"))
            .then_some(())
            .ok_or_else(|| "not back on the stable version".into())
    })
    .await;
    assert!(
        env.sim.count("CreateRoutineCodeDeployment").await >= 3,
        "10%, 50%, 100% and the rollback were sent"
    );
    j.finish();
}

fn app_manifest() -> String {
    r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaContainerAppRollout
metadata:
  name: recommendation
spec:
  appId: app-880688675783794688
  versionId: ver-879626371616514048
  env: staging
  steps:
    - percentage: 10
      pause: 4s
    - percentage: 50
"#
    .to_string()
}

/// A container app's steps: moving, held at a gate, promoted to done, rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_app_states_read_right_in_kstatus_and_argocd() {
    let j = Judge::new("EsaContainerAppRollout");
    let env = Env::start("gitops-app", SEED, SCALE, "containerapp").await;
    let res = "esacontainerapprollout/recommendation";
    env.kubectl.apply(&app_manifest());

    let (_, gate) = moving_then_gate(&j, &env, res).await;
    let step = gate["status"]["currentStep"]
        .as_i64()
        .expect("current step");
    let version = "ver-879626371616514048";
    let p = j.action(
        "gate",
        &gate,
        "promote",
        json!({"promotion": {"versionId": version, "step": step}}),
    );
    patch(&env, res, &p);
    let done = env
        .wait_obj("done", res, WAIT, condition_true("Ready"))
        .await;
    j.judge("ready", &done, "Current", "Healthy");
    j.discover("ready", &done, &["abort", "pause"]);

    let p = j.action("ready", &done, "abort", json!({"rollback": true}));
    patch(&env, res, &p);
    env.wait_obj("rolled back", res, WAIT, |o| {
        current(o)?;
        (o["status"]["phase"] == "RolledBack")
            .then_some(())
            .ok_or_else(|| "not rolled back".into())
    })
    .await;
    assert_eq!(
        env.sim.count("RollbackEdgeContainerAppVersion").await,
        1,
        "the abort action rolled back once"
    );
    j.finish();
}

/// An EAS rollout: moving in batches, paused, done, and a service that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eas_states_read_right_in_kstatus_and_argocd() {
    let j = Judge::new("EasServiceRollout");
    // 30x: the 5-minute batch interval takes 10 s, time enough to see it move and pause it.
    let env = Env::start("gitops-eas", SEED, 30.0, "eas").await;
    let res = "easservicerollout/bert-embeddings";
    let manifest = std::fs::read_to_string(repo_root().join("examples/eas-batch.yaml"))
        .expect("example readable");
    env.kubectl.apply(&manifest);

    let moving = env
        .wait_obj("the first batch", res, WAIT, |o| {
            current(o)?;
            let updated = o["status"]["updatedReplicas"].as_i64().unwrap_or(0);
            (is_true(o, "Progressing") && (1..5).contains(&updated))
                .then_some(())
                .ok_or_else(|| "not between batches".into())
        })
        .await;
    j.judge("progressing", &moving, "InProgress", "Progressing");
    j.discover("progressing", &moving, &["pause"]);

    let p = j.action("progressing", &moving, "pause", json!({"paused": true}));
    patch(&env, res, &p);
    let paused = env
        .wait_obj("paused", res, WAIT, |o| {
            current(o)?;
            (is_true(o, "Paused") && o["status"]["phase"] == "Paused")
                .then_some(())
                .ok_or_else(|| "not paused".into())
        })
        .await;
    j.judge("paused", &paused, "InProgress", "Suspended");
    j.discover("paused", &paused, &["resume"]);

    let p = j.action("paused", &paused, "resume", json!({"paused": false}));
    patch(&env, res, &p);
    let done = env
        .wait_obj(
            "Completed",
            res,
            Duration::from_secs(180),
            condition_true("Ready"),
        )
        .await;
    j.judge("ready", &done, "Current", "Healthy");

    env.kubectl.apply(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: missing
spec:
  region: cn-hangzhou
  serviceName: no_such_service
  strategy:
    partition: "1"
"#,
    );
    let stuck = env
        .wait_obj(
            "Degraded",
            "easservicerollout/missing",
            WAIT,
            condition_true("Stalled"),
        )
        .await;
    j.judge("degraded", &stuck, "Failed", "Degraded");
    j.discover("degraded", &stuck, &["pause", "retry"]);
    j.action("degraded", &stuck, "retry", json!({"retry": 1}));

    // A partition rollout of a serviceConfig holds each version at strategy.partition
    // (Ready: what is declared); its one gate is approved by promote, for that version.
    let llm = "easservicerollout/llm";
    env.kubectl.apply(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: llm
spec:
  region: cn-hangzhou
  serviceName: llm
  strategy:
    partition: "3"
  serviceConfig:
    metadata: {instance: 4, labels: {"eas.aliyun.com/enable-rollout": "true"}}
    containers: [{image: "llm:v2"}]
"#,
    );
    let held = env
        .wait_obj("held at the partition", llm, WAIT, |o| {
            condition_true("Ready")(o)?;
            (o["status"]["updatedReplicas"] == 1 && o["status"]["configVersion"].is_string())
                .then_some(())
                .ok_or_else(|| "not held at partition 3".into())
        })
        .await;
    j.judge("partition-held", &held, "Current", "Healthy");
    j.discover(
        "partition-held",
        &held,
        &["abort", "pause", "promote", "promote-full"],
    );
    let version = held["status"]["configVersion"].clone();
    j.action(
        "partition-held",
        &held,
        "abort",
        json!({"promotion": {"version": version, "partition": "100%"}}),
    );
    let p = j.action(
        "partition-held",
        &held,
        "promote",
        json!({"promotion": {"version": version, "partition": "0"}}),
    );
    patch(&env, llm, &p);
    let done = env
        .wait_obj("every replica on the new version", llm, WAIT, |o| {
            condition_true("Ready")(o)?;
            (o["status"]["updatedReplicas"] == 4)
                .then_some(())
                .ok_or_else(|| "not complete".into())
        })
        .await;
    j.judge("partition-complete", &done, "Current", "Healthy");
    j.discover("partition-complete", &done, &["abort", "pause"]);
    j.finish();
}

/// The Argo CD test files shipped beside the scripts (health_test.yaml,
/// actions/action_test.yaml, over objects captured from real runs) pass in gopher-lua.
#[test]
fn argocd_customizations_pass_their_own_tests() {
    let lua = tool("argocd-lua");
    let root = repo_root().join("deploy/argocd/resource_customizations");
    let out = run(Command::new(&lua).arg("test").arg(&root));
    let mut cases: BTreeMap<&str, usize> = BTreeMap::new();
    for line in out.lines() {
        if let Some(kind) = line.strip_prefix("ok   ").and_then(|l| l.split('/').nth(1)) {
            *cases
                .entry(kind.split_whitespace().next().unwrap_or(kind))
                .or_default() += 1;
        }
    }
    for kind in [
        "EasServiceRollout",
        "EsaRoutineRollout",
        "EsaContainerAppRollout",
    ] {
        assert!(
            cases.get(kind).copied().unwrap_or(0) >= 4,
            "{kind} has too few Argo CD test cases: {out}"
        );
    }
}

/// `scripts/argocd-cm.sh` installs every script as Argo CD reads them: patched into a real
/// argocd-cm ConfigMap, each health check and action comes back byte for byte.
#[test]
fn the_argocd_cm_patch_carries_every_script() {
    let api = support::e2e::cluster();
    let ns = support::e2e::namespace("argocd-cm");
    let kubectl = support::e2e::Kubectl::new(&api, &ns);
    kubectl.must(&["create", "configmap", "argocd-cm"]);
    let out = run(Command::new("bash").arg(repo_root().join("scripts/argocd-cm.sh")));
    let patch = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(patch.path(), out).expect("write patch");
    let path = patch.path().to_string_lossy().to_string();
    kubectl.must(&["patch", "configmap", "argocd-cm", "--patch-file", &path]);
    let cm = kubectl.get("configmap/argocd-cm");
    let root = repo_root()
        .join("deploy/argocd/resource_customizations")
        .join(GROUP);
    for kind in [
        "EasServiceRollout",
        "EsaRoutineRollout",
        "EsaContainerAppRollout",
    ] {
        let dir = root.join(kind);
        let file = |p: &str| std::fs::read_to_string(dir.join(p)).expect("script readable");
        let key = format!("{GROUP}_{kind}");
        assert_eq!(
            cm["data"][format!("resource.customizations.health.{key}")],
            file("health.lua"),
            "{kind} health.lua"
        );
        let actions: Value = serde_yaml::from_str(
            cm["data"][format!("resource.customizations.actions.{key}")]
                .as_str()
                .expect("actions key"),
        )
        .expect("actions YAML");
        assert_eq!(actions["discovery.lua"], file("actions/discovery.lua"));
        let defs = actions["definitions"].as_array().expect("definitions");
        let names: Vec<&str> = defs.iter().filter_map(|d| d["name"].as_str()).collect();
        let mut on_disk: Vec<String> = std::fs::read_dir(dir.join("actions"))
            .expect("actions dir")
            .filter_map(Result::ok)
            .filter(|e| e.path().join("action.lua").is_file())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        on_disk.sort();
        let mut sorted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        sorted.sort();
        assert_eq!(sorted, on_disk, "{kind} actions");
        for d in defs {
            let name = d["name"].as_str().expect("name");
            assert_eq!(
                d["action.lua"],
                file(&format!("actions/{name}/action.lua")),
                "{kind} {name}"
            );
        }
    }
}

/// An EAS promote or abort on an object whose latest spec the operator has not acted on
/// is refused: its status.configVersion may name the previous serviceConfig, and an
/// approval of that would approve nothing the spec now declares.
#[test]
fn eas_approvals_are_refused_on_a_spec_the_operator_has_not_seen() {
    let lua = tool("argocd-lua");
    let dir = kind_dir("EasServiceRollout");
    let held = std::fs::read_to_string(dir.join("actions/testdata/partition-held.yaml"))
        .expect("captured test data");
    let mut obj: Value = serde_yaml::from_str(&held).expect("YAML");
    let generation = obj["metadata"]["generation"].as_i64().expect("generation");
    obj["metadata"]["generation"] = json!(generation + 1);
    let scratch = tempfile::tempdir().expect("temp dir");
    let file = scratch.path().join("lagging.json");
    std::fs::write(&file, obj.to_string()).expect("write");
    for action in ["promote", "promote-full", "abort"] {
        let out = Command::new(&lua)
            .arg("action")
            .arg(&dir)
            .arg(action)
            .arg(&file)
            .output()
            .expect("argocd-lua runs");
        assert!(
            !out.status.success(),
            "{action} approved a stale version: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("latest spec"),
            "{action}: {}",
            text(&out)
        );
    }
}
