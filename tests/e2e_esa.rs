//! ESA routine and edge container app rollouts end to end: real API server, simulator,
//! operator binary, kubectl with the examples.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::e2e::{Env, condition, repo_root};

const STABLE: &str = "1723599747213377175";
const CANARY: &str = "1723688023417750321";

const SEED: &str = r#"
routines:
  - name: image-resizer
    codeVersions: ["1723599747213377175", "1723688023417750321"]
    deployed: "1723599747213377175"
apps:
  - id: app-880688675783794688
    versions: [ver-879626371616514000, ver-879626371616514048]
    deployed: ver-879626371616514000
  - id: app-880712094476242944
    versions: [ver-880712551003893000, ver-880712551003893760]
    deployed: ver-880712551003893000
"#;

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name)).expect("example readable")
}

fn phase(obj: &Value) -> String {
    obj["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ready(obj: &Value) -> bool {
    condition(obj, "Ready").map(|c| c.0).as_deref() == Some("True")
}

/// The routine's split in the status, as {version: percentage}.
fn split(obj: &Value) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = obj["status"]["codeVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["codeVersion"].as_str().unwrap_or_default().to_string(),
                c["percentage"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    v.sort();
    v
}

fn canary_share(obj: &Value) -> i64 {
    split(obj)
        .iter()
        .find(|(v, _)| v == CANARY)
        .map(|(_, p)| *p)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_canary_walks_its_steps_holds_at_the_gate_and_rolls_back() {
    let env = Env::start("routine-canary", SEED, 1.0, "routine").await;
    // The example's steps, with pauses of seconds instead of minutes.
    let manifest = example("routine-canary.yaml")
        .replace("pause: 10m", "pause: 2s")
        .replace("pause: 30m", "pause: 2s")
        .replace("pause: 1h", "pause: 2s");
    env.kubectl.apply(&manifest);
    let res = "esaroutinerollout/image-resizer-staging";

    // Steps 0 and 1 are approved (5%, 20%); step 2 (50%) is a manual gate.
    let mut seen = Vec::new();
    let obj = env
        .wait_obj(
            "holding at the 50% gate",
            res,
            Duration::from_secs(40),
            |o| {
                (canary_share(o) == 50)
                    .then_some(())
                    .ok_or_else(|| format!("canary at {}", canary_share(o)))
            },
        )
        .await;
    seen.push(canary_share(&obj));
    assert!(!ready(&obj), "a gate is not Ready: {obj}");
    assert_eq!(
        env.sim.count("CreateRoutineCodeDeployment").await,
        3,
        "5%, 20%, 50%: one deployment each"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let obj = env.kubectl.get(res);
    assert_eq!(canary_share(&obj), 50, "the gate holds: {obj}");
    assert_eq!(
        split(&obj),
        vec![(STABLE.to_string(), 50), (CANARY.to_string(), 50)]
    );

    // Promote past the gate: 80%, then 100% on the canary.
    env.kubectl.patch(
        res,
        &format!(r#"{{"spec":{{"canary":{{"promotion":{{"version":"{CANARY}","step":3}}}}}}}}"#),
    );
    let out = env
        .kubectl
        .run(&["wait", "--for=condition=Ready", "--timeout=60s", res]);
    assert!(
        out.status.success(),
        "{}\n{}",
        support::e2e::text(&out),
        env.operator.log_tail()
    );
    let obj = env.kubectl.get(res);
    assert_eq!(split(&obj), vec![(CANARY.to_string(), 100)], "{obj}");
    assert_eq!(phase(&obj), "Completed");
    assert_eq!(env.sim.count("CreateRoutineCodeDeployment").await, 5);

    // Roll back: 100% on the stable version.
    env.kubectl.patch(res, r#"{"spec":{"rollback":true}}"#);
    let obj = env
        .wait_obj("rolled back", res, Duration::from_secs(30), |o| {
            (split(o) == vec![(STABLE.to_string(), 100)] && phase(o) == "RolledBack")
                .then_some(())
                .ok_or_else(|| "not rolled back".into())
        })
        .await;
    assert_eq!(
        condition(&obj, "Degraded").map(|c| c.0).as_deref(),
        Some("False")
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.sim.count("CreateRoutineCodeDeployment").await,
        6,
        "rollback sent once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_app_publishes_by_percentage_widens_and_rolls_back() {
    let env = Env::start("app-percentage", SEED, 1.0, "containerapp").await;
    let res = "esacontainerapprollout/checkout-api";
    // The example reads credentials from a Secret; this API server has no Secrets.
    env.kubectl.apply(&example("containerapp-percentage.yaml"));
    env.wait_obj(
        "Degraded CredentialsUnavailable",
        res,
        Duration::from_secs(30),
        |o| match condition(o, "Degraded") {
            Some((s, r)) if s == "True" && r == "CredentialsUnavailable" => Ok(()),
            other => Err(format!("Degraded {other:?}")),
        },
    )
    .await;
    assert_eq!(
        env.sim.calls().await.values().sum::<u64>(),
        0,
        "no cloud call at all without credentials"
    );

    env.kubectl
        .patch(res, r#"{"spec":{"credentialsSecretRef":null}}"#);
    let obj = env
        .wait_obj("published at 10%", res, Duration::from_secs(40), |o| {
            (o["status"]["publishStatus"] == "published"
                && o["status"]["publishPercentage"] == 10
                && ready(o))
            .then_some(())
            .ok_or_else(|| "not published".into())
        })
        .await;
    assert_eq!(
        obj["status"]["publishingVersion"], "ver-879626371616514048",
        "{obj}"
    );

    env.kubectl.patch(res, r#"{"spec":{"percentage":50}}"#);
    env.wait_obj("published at 50%", res, Duration::from_secs(40), |o| {
        (o["status"]["publishStatus"] == "published"
            && o["status"]["publishPercentage"] == 50
            && ready(o))
        .then_some(())
        .ok_or_else(|| "not at 50%".into())
    })
    .await;
    assert_eq!(env.sim.count("PublishEdgeContainerAppVersion").await, 2);

    env.kubectl.patch(res, r#"{"spec":{"rollback":true}}"#);
    let obj = env
        .wait_obj("rolled back", res, Duration::from_secs(40), |o| {
            (o["status"]["publishStatus"] == "rollbacked" && phase(o) == "RolledBack")
                .then_some(())
                .ok_or_else(|| "not rolled back".into())
        })
        .await;
    assert_eq!(
        obj["status"]["deployedVersion"], "ver-879626371616514000",
        "baseline back: {obj}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.sim.count("RollbackEdgeContainerAppVersion").await,
        1,
        "rollback sent once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_app_publishes_by_region_and_rolls_back_after_a_full_release() {
    let env = Env::start("app-regions", SEED, 1.0, "containerapp").await;
    let res = "esacontainerapprollout/search-frontend";
    env.kubectl.apply(&example("containerapp-regions.yaml"));
    let obj = env
        .wait_obj(
            "published to the regions",
            res,
            Duration::from_secs(40),
            |o| {
                (o["status"]["publishStatus"] == "published" && ready(o))
                    .then_some(())
                    .ok_or_else(|| "not published".into())
            },
        )
        .await;
    assert_eq!(obj["status"]["publishType"], "region", "{obj}");
    let mut regions: Vec<String> = obj["status"]["regions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    regions.sort();
    assert_eq!(regions, ["jiangsu", "zhejiang"]);
    assert_eq!(env.sim.count("PublishEdgeContainerAppVersion").await, 1);

    assert_eq!(
        obj["status"]["rollbackVersion"], "ver-880712551003893000",
        "the version serving before the publish is kept for a rollback: {obj}"
    );

    // A full release made this version the baseline; a rollback still returns to the
    // version that served before it, recorded in status before the publish.
    env.kubectl.patch(res, r#"{"spec":{"rollback":true}}"#);
    let obj = env
        .wait_obj("rolled back", res, Duration::from_secs(40), |o| {
            (o["status"]["publishStatus"] == "rollbacked" && phase(o) == "RolledBack" && ready(o))
                .then_some(())
                .ok_or_else(|| "not rolled back".into())
        })
        .await;
    assert_eq!(
        obj["status"]["deployedVersion"], "ver-880712551003893000",
        "previous version back: {obj}"
    );
    // Longer than the operator's settled poll (5 s in these tests): sent once only.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(env.sim.count("RollbackEdgeContainerAppVersion").await, 1);
    assert_eq!(
        env.sim.count("PublishEdgeContainerAppVersion").await,
        1,
        "nothing re-published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_canary_survives_an_operator_restart_without_extra_deployments() {
    let mut env = Env::start("routine-restart", SEED, 1.0, "routine").await;
    // Every step approved, pauses of seconds.
    let manifest = example("routine-canary.yaml")
        .replace("pause: 10m", "pause: 2s")
        .replace("pause: 30m", "pause: 2s")
        .replace("pause: 1h", "pause: 2s")
        .replace(
            "  paused: false",
            &format!("    promotion: {{version: \"{CANARY}\", step: 3}}\n  paused: false"),
        );
    env.kubectl.apply(&manifest);
    let res = "esaroutinerollout/image-resizer-staging";
    // Mid-canary (not finished), so the restart really happens during the rollout.
    env.wait_obj("canary at 20-80%", res, Duration::from_secs(30), |o| {
        ((20..100).contains(&canary_share(o)) && !ready(o))
            .then_some(())
            .ok_or_else(|| format!("canary at {}", canary_share(o)))
    })
    .await;
    env.operator.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.operator.restart();
    let out = env
        .kubectl
        .run(&["wait", "--for=condition=Ready", "--timeout=60s", res]);
    assert!(
        out.status.success(),
        "{}\n{}",
        support::e2e::text(&out),
        env.operator.log_tail()
    );
    let obj = env.kubectl.get(res);
    assert_eq!(split(&obj), vec![(CANARY.to_string(), 100)], "{obj}");
    // 5%, 20%, 50%, 80%, 100%: one deployment each, none repeated by the new process.
    assert_eq!(env.sim.count("CreateRoutineCodeDeployment").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_app_steps_hold_at_the_gate_pause_and_finish() {
    const SEED_STEPS: &str = r#"
apps:
  - id: app-880745210937327616
    versions: [ver-880745731614552000, ver-880745731614552064]
    deployed: ver-880745731614552000
"#;
    let env = Env::start("app-steps", SEED_STEPS, 1.0, "containerapp").await;
    let manifest = example("containerapp-steps.yaml")
        .replace("pause: 15m", "pause: 2s")
        .replace("pause: 1h", "pause: 2s");
    env.kubectl.apply(&manifest);
    let res = "esacontainerapprollout/recommendation-svc";
    let pct = |o: &Value| o["status"]["publishPercentage"].as_i64().unwrap_or(-1);

    // 1% for 2 s, then the manual gate at 10%.
    let obj = env
        .wait_obj(
            "holding at the 10% gate",
            res,
            Duration::from_secs(40),
            |o| {
                (pct(o) == 10 && o["status"]["publishStatus"] == "published")
                    .then_some(())
                    .ok_or_else(|| format!("at {}%", pct(o)))
            },
        )
        .await;
    assert!(!ready(&obj), "a gate is not Ready: {obj}");
    assert_eq!(env.sim.count("PublishEdgeContainerAppVersion").await, 2);

    // Pause, then promote: nothing moves while paused.
    env.kubectl.patch(
        res,
        r#"{"spec":{"paused":true,"promotion":{"versionId":"ver-880745731614552064","step":3}}}"#,
    );
    env.wait_obj("Paused", res, Duration::from_secs(20), |o| {
        (condition(o, "Paused").map(|c| c.0).as_deref() == Some("True"))
            .then_some(())
            .ok_or_else(|| "not paused".into())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(pct(&env.kubectl.get(res)), 10, "no progress while paused");
    assert_eq!(env.sim.count("PublishEdgeContainerAppVersion").await, 2);

    // Resume: 50% for 2 s, then 100%.
    env.kubectl.patch(res, r#"{"spec":{"paused":false}}"#);
    let out = env
        .kubectl
        .run(&["wait", "--for=condition=Ready", "--timeout=60s", res]);
    assert!(
        out.status.success(),
        "{}\n{}",
        support::e2e::text(&out),
        env.operator.log_tail()
    );
    let obj = env.kubectl.get(res);
    assert_eq!(pct(&obj), 100, "{obj}");
    assert_eq!(phase(&obj), "Completed");
    assert_eq!(env.sim.count("PublishEdgeContainerAppVersion").await, 4);
}
