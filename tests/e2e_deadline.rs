//! Progress deadlines end to end (issue 11): real API server, simulator, operator binary,
//! kubectl. A rollout whose cloud stops moving reports Stalled with reason
//! ProgressDeadlineExceeded and one Warning Event within its deadline; with
//! `progressDeadlineAbort` the version is rolled back and not pushed again until the spec
//! names another one. A manual gate held longer than the deadline is not a stall.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::e2e::{Env, condition};

const A: &str = "1723599747213377175";
const B: &str = "1723688023417750321";
const RES: &str = "esaroutinerollout/edge-fn";
const WAIT: Duration = Duration::from_secs(60);

const SEED: &str = r#"
routines:
  - name: edge-fn
    codeVersions: ["1723599747213377175", "1723688023417750321"]
    deployed: "1723599747213377175"
"#;

fn manifest(canary: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata:
  name: edge-fn
spec:
  routine: edge-fn
  env: staging
  progressDeadline: 3s
{extra}  canary:
    stableVersion: "{A}"
    canaryVersion: "{canary}"
    steps:
      - percentage: 10
      - percentage: 50
"#
    )
}

fn reason(obj: &Value, type_: &str) -> String {
    condition(obj, type_).map(|c| c.1).unwrap_or_default()
}

fn is_true(obj: &Value, type_: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c.0 == "True")
}

fn warnings(env: &Env, name: &str, reason: &str) -> usize {
    let events: Value =
        serde_json::from_str(
            &env.kubectl
                .must(&["get", "events.events.k8s.io", "-o", "json"]),
        )
        .expect("events JSON");
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name)
        .filter(|e| e["type"] == "Warning" && e["reason"] == reason)
        .count()
}

/// A manual gate held for longer than the deadline is a hold, not a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_held_past_the_deadline_is_not_a_stall() {
    let env = Env::start("deadline-gate", SEED, 1.0, "routine").await;
    env.kubectl.apply(&manifest(B, ""));
    env.wait_obj("the first gate", RES, WAIT, |o| {
        (reason(o, "Progressing") == "WaitingForPromotion")
            .then_some(())
            .ok_or_else(|| "not at the gate".into())
    })
    .await;
    // Three deadlines long.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let obj = env.kubectl.get(RES);
    assert!(!is_true(&obj, "Stalled"), "{}", obj["status"]);
    assert_eq!(reason(&obj, "Progressing"), "WaitingForPromotion");
    assert_eq!(warnings(&env, "edge-fn", "ProgressDeadlineExceeded"), 0);
}

const APP_SEED: &str = r#"
apps:
  - id: app-880688675783794688
    versions: [ver-879626371616514000, ver-879626371616514048, ver-879626371616514096]
    deployed: ver-879626371616514000
"#;
const APP: &str = "esacontainerapprollout/recommendation";
const V2: &str = "ver-879626371616514048";
const V3: &str = "ver-879626371616514096";

fn app_manifest(version: &str) -> String {
    format!(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaContainerAppRollout
metadata:
  name: recommendation
spec:
  appId: app-880688675783794688
  versionId: {version}
  env: staging
  progressDeadline: 3s
  progressDeadlineAbort: true
  steps:
    - percentage: 10
"#
    )
}

/// A publish that does not move (the cloud's clock runs at a tenth of real time, so one
/// publish tick takes 10 s): Stalled within the deadline with one Warning, rolled back
/// through RollbackEdgeContainerAppVersion, and not published again until spec.retry
/// changes or the spec names another version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_publish_stalls_and_is_rolled_back_once() {
    let env = Env::start("deadline-abort", APP_SEED, 0.1, "containerapp").await;
    env.kubectl.apply(&app_manifest(V2));

    let stalled = env
        .wait_obj(
            "Stalled by the deadline",
            APP,
            Duration::from_secs(30),
            |o| {
                (reason(o, "Stalled") == "ProgressDeadlineExceeded" && is_true(o, "Stalled"))
                    .then_some(())
                    .ok_or_else(|| "not stalled".into())
            },
        )
        .await;
    assert!(is_true(&stalled, "Degraded"), "{}", stalled["status"]);
    assert_eq!(stalled["status"]["aborted"]["version"], V2);
    assert_eq!(
        warnings(&env, "recommendation", "ProgressDeadlineExceeded"),
        1
    );

    // The rollback is sent once and, done, still says why and that a person must look.
    env.wait_obj("rolled back", APP, Duration::from_secs(90), |o| {
        (o["status"]["publishStatus"] == "rollbacked")
            .then_some(())
            .ok_or_else(|| "not rolled back yet".into())
    })
    .await;
    assert_eq!(env.sim.count("RollbackEdgeContainerAppVersion").await, 1);
    let rolled = env
        .wait_obj("Degraded after the rollback", APP, WAIT, |o| {
            (reason(o, "Degraded") == "ProgressDeadlineExceeded" && !is_true(o, "Ready"))
                .then_some(())
                .ok_or_else(|| "not Degraded".into())
        })
        .await;
    assert!(
        rolled["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("rolled back automatically"),
        "{}",
        rolled["status"]
    );
    assert_eq!(
        warnings(&env, "recommendation", "ProgressDeadlineExceeded"),
        1,
        "one Warning"
    );

    // Sticky: V2 is not published again, however long it waits.
    let publishes = "PublishEdgeContainerAppVersion";
    assert_eq!(env.sim.count(publishes).await, 1);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(env.sim.count(publishes).await, 1, "V2 published again");

    // spec.retry releases the abort: V2 is published once more.
    env.kubectl.patch(APP, r#"{"spec":{"retry":1}}"#);
    let deadline = std::time::Instant::now() + WAIT;
    while env.sim.count(publishes).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "V2 not published after the retry"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(env.sim.count(publishes).await, 2);

    // Naming another version starts a new rollout with its own deadline.
    env.kubectl.apply(&app_manifest(V3));
    env.wait_obj("V3 published", APP, WAIT, |o| {
        (o["status"]["publishingVersion"] == V3 && o["status"]["aborted"].is_null())
            .then_some(())
            .ok_or_else(|| "V3 not published".into())
    })
    .await;
    assert_eq!(
        env.sim.count(publishes).await,
        3,
        "V3 published once, V2 not again"
    );
}
