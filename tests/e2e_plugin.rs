//! The kubectl plugin end to end: the binary `kubectl-alicloud_rollouts` against the real
//! API server, with the operator and the simulator moving the rollouts it steers.
//!
//! Each command's change must land in spec under the field manager
//! `kubectl-alicloud-rollouts` (server-side apply), and the operator must act on it.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::e2e::{self, Env, Kubectl, Operator, Sim, condition, text};

const STABLE: &str = "1723599747213377175";
const CANARY: &str = "1723688023417750321";
const MANAGER: &str = "kubectl-alicloud-rollouts";

const SEED: &str = r#"
routines:
  - name: edge-fn
    codeVersions: ["1723599747213377175", "1723688023417750321"]
    deployed: "1723599747213377175"
"#;

/// A routine canary over two manual gates, 10% then 50%.
fn canary(name: &str, routine: &str) -> String {
    format!(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata:
  name: {name}
spec:
  routine: {routine}
  env: staging
  canary:
    stableVersion: "{STABLE}"
    canaryVersion: "{CANARY}"
    steps:
      - percentage: 10
      - percentage: 50
"#
    )
}

/// The plugin binary, as kubectl would run it, in `namespace`.
fn plugin(kubeconfig: &Path, namespace: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-alicloud_rollouts"))
        .env("KUBECONFIG", kubeconfig)
        .args(["-n", namespace])
        .args(args)
        .output()
        .expect("the plugin runs")
}

fn must(env: &Env, args: &[&str]) -> String {
    let out = plugin(&env.api.kubeconfig, &env.namespace, args);
    assert!(
        out.status.success(),
        "kubectl alicloud-rollouts {args:?}: {}\noperator:\n{}",
        text(&out),
        env.operator.log_tail()
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn share(obj: &Value) -> i64 {
    obj["status"]["codeVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["codeVersion"] == CANARY)
        .and_then(|c| c["percentage"].as_i64())
        .unwrap_or(0)
}

fn is(obj: &Value, type_: &str) -> bool {
    condition(obj, type_).map(|c| c.0).as_deref() == Some("True")
}

/// The status is for the spec as it is now.
fn caught_up(obj: &Value) -> bool {
    obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
}

/// The object with its managedFields (kubectl hides them by default).
fn get_full(env: &Env, res: &str) -> Value {
    let out = env
        .kubectl
        .must(&["get", res, "-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&out).expect("kubectl get -o json")
}

/// The spec fields the plugin's field manager owns through server-side apply.
fn owned_by_plugin(obj: &Value) -> Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["manager"] == MANAGER && m["operation"] == "Apply")
        .map(|m| m["fieldsV1"]["f:spec"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_pause_resume_and_watch_steer_a_routine_canary() {
    let env = Env::start("plugin-promote", SEED, 1.0, "routine").await;
    env.kubectl.apply(&canary("edge-fn", "edge-fn"));
    let res = "esaroutinerollout/edge-fn";
    env.wait_obj("held at the 10% gate", res, Duration::from_secs(40), |o| {
        (share(o) == 10 && caught_up(o) && o["status"]["currentStep"] == 0)
            .then_some(())
            .ok_or_else(|| format!("canary at {}", share(o)))
    })
    .await;

    // promote: the approval of the gate the rollout waits at, for its version.
    let out = must(&env, &["promote", "edge-fn"]);
    assert!(
        out.contains(
            "spec.canary.promotion: (unset) -> {\"step\":0,\"version\":\"1723688023417750321\"}"
        ),
        "{out}"
    );
    assert!(out.contains("step 1/2 (10%)"), "{out}");
    let obj = get_full(&env, res);
    assert_eq!(
        obj["spec"]["canary"]["promotion"],
        serde_json::json!({"version": CANARY, "step": 0})
    );
    assert!(
        owned_by_plugin(&obj)["f:canary"]["f:promotion"].is_object(),
        "the approval is the plugin's field: {}",
        obj["metadata"]["managedFields"]
    );
    // The operator moves on to the next gate.
    env.wait_obj("at the 50% gate", res, Duration::from_secs(40), |o| {
        (share(o) == 50 && caught_up(o))
            .then_some(())
            .ok_or_else(|| format!("canary at {}", share(o)))
    })
    .await;

    // pause, then promote: the second apply keeps the pause the first one set.
    let out = must(&env, &["pause", "esarr/edge-fn"]);
    assert!(out.contains("spec.paused: false -> true"), "{out}");
    let out = must(&env, &["promote", "esarr/edge-fn"]);
    assert!(out.contains("\"step\":1"), "{out}");
    let obj = env
        .wait_obj("paused at 50%", res, Duration::from_secs(30), |o| {
            (caught_up(o) && is(o, "Paused"))
                .then_some(())
                .ok_or_else(|| "not paused yet".to_string())
        })
        .await;
    assert_eq!(obj["spec"]["paused"], true, "promote kept the pause: {obj}");
    assert_eq!(obj["spec"]["canary"]["promotion"]["step"], 1);
    assert_eq!(share(&obj), 50, "paused: the approval does not move it");
    let spec = owned_by_plugin(&get_full(&env, res));
    assert!(
        spec["f:paused"].is_object() && spec["f:canary"]["f:promotion"].is_object(),
        "{spec}"
    );

    // get: the view names the step, the pause and the Events with their RequestIds.
    let view = must(&env, &["get", "edge-fn"]);
    assert!(view.contains("॥ Paused"), "{view}");
    assert!(view.contains("▶  2/2"), "{view}");
    assert!(view.contains("CreateRoutineCodeDeployment"), "{view}");
    let request_id = obj["status"]["lastRequestId"].as_str().unwrap_or_default();
    assert!(!request_id.is_empty(), "{obj}");
    assert!(
        view.lines()
            .filter(|l| l.contains("CreateRoutineCodeDeployment"))
            .any(|l| l.contains(request_id)),
        "the Event of the last deployment shows its RequestId {request_id}: {view}"
    );

    // resume, and watch it through to Ready.
    let out = must(&env, &["resume", "edge-fn"]);
    assert!(out.contains("spec.paused: true -> false"), "{out}");
    let watch = plugin(
        &env.api.kubeconfig,
        &env.namespace,
        &["get", "edge-fn", "--watch", "--timeout", "90s"],
    );
    let shown = String::from_utf8_lossy(&watch.stdout).to_string();
    assert_eq!(watch.status.code(), Some(0), "{}", text(&watch));
    assert!(shown.trim_end().ends_with("Rollout is Ready."), "{shown}");
    assert!(shown.contains("✔ Ready"), "{shown}");
    let obj = env.kubectl.get(res);
    assert_eq!(share(&obj), 100, "{obj}");

    // GitOps: re-applying the manifest from Git with server-side apply leaves the
    // plugin's fields alone.
    let manifest = canary("edge-fn", "edge-fn");
    let mut apply = env
        .api
        .kubectl()
        .args([
            "-n",
            &env.namespace,
            "apply",
            "--server-side",
            "--field-manager=gitops",
            "--validate=false",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    std::io::Write::write_all(&mut apply.stdin.take().expect("stdin"), manifest.as_bytes())
        .expect("manifest written");
    let out = apply.wait_with_output().expect("kubectl finishes");
    assert!(out.status.success(), "{}", text(&out));
    let obj = env.kubectl.get(res);
    assert_eq!(obj["spec"]["canary"]["promotion"]["step"], 1, "{obj}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_rolls_a_routine_canary_back() {
    let env = Env::start("plugin-abort", SEED, 1.0, "routine").await;
    env.kubectl.apply(&canary("edge-fn", "edge-fn"));
    let res = "esaroutinerollout/edge-fn";
    env.wait_obj("held at the 10% gate", res, Duration::from_secs(40), |o| {
        (share(o) == 10 && caught_up(o))
            .then_some(())
            .ok_or_else(|| format!("canary at {}", share(o)))
    })
    .await;
    let out = must(&env, &["abort", "edge-fn"]);
    assert!(out.contains("spec.rollback: false -> true"), "{out}");
    assert!(out.contains(STABLE), "names where it goes back to: {out}");
    let obj = env
        .wait_obj("rolled back", res, Duration::from_secs(40), |o| {
            (share(o) == 0 && o["status"]["phase"] == "RolledBack")
                .then_some(())
                .ok_or_else(|| format!("canary at {}", share(o)))
        })
        .await;
    assert!(
        owned_by_plugin(&get_full(&env, res))["f:rollback"].is_object(),
        "{obj}"
    );
    assert_eq!(obj["spec"]["rollback"], true);
}

/// `promote --full` on a container app with two manual gates: one approval of the last
/// gate, for the version being published, and the app goes to 100%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_full_takes_a_container_app_through_every_gate() {
    const APP_SEED: &str = r#"
apps:
  - id: app-880745210937327616
    versions: [ver-880745731614552000, ver-880745731614552064]
    deployed: ver-880745731614552000
"#;
    let env = Env::start("plugin-app", APP_SEED, 1.0, "containerapp").await;
    env.kubectl.apply(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaContainerAppRollout
metadata:
  name: recommendation-svc
spec:
  appId: app-880745210937327616
  versionId: ver-880745731614552064
  env: production
  steps:
    - percentage: 10
    - percentage: 50
"#,
    );
    let res = "esacontainerapprollout/recommendation-svc";
    let pct = |o: &Value| o["status"]["publishPercentage"].as_i64().unwrap_or(-1);
    env.wait_obj("held at the 10% gate", res, Duration::from_secs(40), |o| {
        (pct(o) == 10 && o["status"]["publishStatus"] == "published" && caught_up(o))
            .then_some(())
            .ok_or_else(|| format!("at {}%", pct(o)))
    })
    .await;
    let out = must(&env, &["promote", "--full", "esacr/recommendation-svc"]);
    assert!(
        out.contains(
            "spec.promotion: (unset) -> {\"step\":1,\"versionId\":\"ver-880745731614552064\"}"
        ),
        "{out}"
    );
    assert!(out.contains("every remaining gate"), "{out}");
    let obj = env
        .wait_obj("published to 100%", res, Duration::from_secs(60), |o| {
            (pct(o) == 100 && is(o, "Ready"))
                .then_some(())
                .ok_or_else(|| format!("at {}%", pct(o)))
        })
        .await;
    assert_eq!(obj["status"]["phase"], "Completed", "{obj}");
    assert!(
        owned_by_plugin(&get_full(&env, res))["f:promotion"].is_object(),
        "{obj}"
    );
    // Past the last step there is nothing left to approve.
    let again = plugin(
        &env.api.kubeconfig,
        &env.namespace,
        &["promote", "recommendation-svc"],
    );
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("past its last step"),
        "{}",
        text(&again)
    );
}

/// A rollout waiting for a person (its routine is missing) is looked at again at once
/// after `retry`, and the wait starts over from the shortest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_makes_the_operator_look_again_now() {
    let api = e2e::cluster();
    let sim = Sim::start("routines: []\n", 1.0).await;
    let namespace = e2e::namespace("plugin-retry");
    // A person-needed wait long enough that only the retry can explain a quick recovery.
    let operator = Operator::start_overriding(
        &api,
        &sim,
        &namespace,
        "routine",
        &[("--stalled-recheck", "10m")],
    );
    let kubectl = Kubectl::new(&api, &namespace);
    let env = Env {
        api,
        sim,
        operator,
        kubectl,
        namespace,
    };
    env.kubectl.apply(&canary("edge-fn", "edge-fn"));
    let res = "esaroutinerollout/edge-fn";
    env.wait_obj("stalled", res, Duration::from_secs(40), |o| {
        (is(o, "Stalled") && o["status"]["nextCheckAt"].is_string())
            .then_some(())
            .ok_or_else(|| "not stalled".to_string())
    })
    .await;

    // Still missing: the retry is a second look, and the next wait is the first one
    // again (10 minutes, not the doubled 20).
    let out = must(&env, &["retry", "edge-fn"]);
    assert!(out.contains("spec.retry: (unset) -> 1"), "{out}");
    let obj = env
        .wait_obj("retry 1 acted on", res, Duration::from_secs(40), |o| {
            (o["status"]["observedRetry"] == 1 && is(o, "Stalled"))
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        })
        .await;
    let next: jiff::Timestamp = obj["status"]["nextCheckAt"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .expect("nextCheckAt is a time");
    let wait = next.duration_since(jiff::Timestamp::now());
    assert!(
        wait < jiff::SignedDuration::from_mins(15),
        "after a retry the wait starts over: next look in {wait:#}"
    );

    // The routine appears; the next retry finds it at once.
    env.sim.seed(SEED).await;
    let out = must(&env, &["retry", "esarr/edge-fn"]);
    assert!(out.contains("spec.retry: 1 -> 2"), "{out}");
    let obj = env
        .wait_obj("moving again", res, Duration::from_secs(40), |o| {
            (share(o) == 10 && !is(o, "Stalled") && o["status"]["observedRetry"] == 2)
                .then_some(())
                .ok_or_else(|| format!("canary at {}", share(o)))
        })
        .await;
    assert!(
        owned_by_plugin(&get_full(&env, res))["f:retry"].is_object(),
        "{obj}"
    );
    let events = env
        .kubectl
        .must(&["get", "events.events.k8s.io", "-o", "json"]);
    assert!(events.contains("RetryRequested"), "{events}");
}

/// Clear errors with a non-zero exit: no such rollout, an ambiguous name, a kind without
/// the action; and `list` and `kubectl alicloud-rollouts` (plugin discovery on PATH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_cause_and_list_shows_every_kind() {
    let api = e2e::cluster();
    let namespace = e2e::namespace("plugin-errors");
    let kubectl = Kubectl::new(&api, &namespace);
    kubectl.apply(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata:
  name: split
spec:
  routine: auth
  env: production
  codeVersions:
    - codeVersion: "2"
      percentage: 100
---
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: bert
spec:
  region: cn-shanghai
  serviceName: bert
  strategy:
    partition: "2"
---
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaContainerAppRollout
metadata:
  name: split
spec:
  appId: app-1
  versionId: ver-2
  env: staging
"#,
    );
    let run = |args: &[&str]| plugin(&api.kubeconfig, &namespace, args);
    let fails = |args: &[&str], want: &str| {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "{args:?} should fail: {}",
            text(&out)
        );
        assert!(
            stderr.contains(want),
            "{args:?}: wanted {want:?} in {stderr}"
        );
    };
    fails(
        &["get", "esarr/nope"],
        "no EsaRoutineRollout named \"nope\"",
    );
    fails(&["pause", "nope"], "no rollout named \"nope\"");
    fails(&["get", "split"], "names more than one rollout");
    fails(&["get", "deploy/web"], "not a kind of this operator");
    fails(&["promote", "esarr/split"], "fixed split");
    fails(&["abort", "esarr/split"], "fixed split");
    fails(&["promote", "bert"], "no spec.serviceConfig");
    fails(&["abort", "easro/bert"], "no spec.serviceConfig");
    fails(&["promote", "esacr/split"], "without steps");
    // Refused changes change nothing.
    let out = kubectl.must(&[
        "get",
        "easservicerollout/bert",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let obj: Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        !obj["metadata"]["managedFields"]
            .to_string()
            .contains(MANAGER),
        "{obj}"
    );

    // Pause works on EAS too.
    let out = run(&["pause", "easro/bert"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        kubectl.get("easservicerollout/bert")["spec"]["paused"],
        true
    );

    // list, through kubectl's plugin discovery.
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-alicloud_rollouts"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = api
        .kubectl()
        .env("PATH", path)
        .args(["alicloud-rollouts", "list", "-n", &namespace])
        .output()
        .expect("kubectl runs");
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    for name in ["easro/bert", "esarr/split", "esacr/split"] {
        assert!(shown.contains(name), "{name} in {shown}");
    }
    let all = run(&["list", "-A"]);
    assert!(
        String::from_utf8_lossy(&all.stdout).contains(&namespace),
        "{}",
        text(&all)
    );
}

/// Without a cluster: a clear error and a non-zero exit, quickly.
#[test]
fn no_cluster_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let out = plugin(&missing, "default", &["list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no cluster"), "{stderr}");

    // A kubeconfig whose server does not answer.
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .expect("kubeconfig written");
    let out = plugin(&config, "default", &["get", "esarr/edge-fn"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the cluster at https://127.0.0.1:9"),
        "{stderr}"
    );
}
