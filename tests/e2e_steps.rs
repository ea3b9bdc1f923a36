//! Step safety end to end (issue 8, invariants 1a and 1b): real API server, simulator,
//! operator binary, kubectl. A routine canary never gets more traffic on the new version
//! than its current step allows, whether the steps are edited under it or someone changes
//! the split in the console, and an approval only opens the gates of the version it names.

mod support;

use std::sync::Arc;
use std::time::Duration;

use alicloud_rollouts::cloud::model::{CodeVersionSplit, CreateRoutineCodeDeploymentRequest};
use alicloud_rollouts::cloud::{ClientConfig, CloudApi, CloudClient, Credentials, StaticProvider};
use serde_json::Value;
use support::e2e::{Env, SIM_KEY_ID, SIM_KEY_SECRET, condition};

const A: &str = "1723599747213377175";
const B: &str = "1723688023417750321";
const C: &str = "1723700000000000001";
const ROUTINE: &str = "edge-fn";
const RES: &str = "esaroutinerollout/edge-fn";

const SEED: &str = r#"
routines:
  - name: edge-fn
    codeVersions: ["1723599747213377175", "1723688023417750321", "1723700000000000001"]
    deployed: "1723599747213377175"
"#;

/// A routine canary from `stable` to `canary` over `steps` (YAML flow list), in staging.
fn manifest(stable: &str, canary: &str, steps: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata:
  name: edge-fn
spec:
  routine: edge-fn
  env: staging
  canary:
    stableVersion: "{stable}"
    canaryVersion: "{canary}"
    steps: {steps}
{extra}"#
    )
}

/// The split the status mirrors from the cloud, sorted by version.
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

fn share(obj: &Value, version: &str) -> i64 {
    split(obj)
        .iter()
        .find(|(v, _)| v == version)
        .map(|(_, p)| *p)
        .unwrap_or(0)
}

fn progressing_reason(obj: &Value) -> String {
    condition(obj, "Progressing")
        .map(|c| c.1)
        .unwrap_or_default()
}

/// The routine's staging split as the cloud has it now, sorted by version.
async fn cloud_split(client: &CloudClient) -> Vec<(String, i64)> {
    let routine = client
        .get_routine("cn-hangzhou", ROUTINE)
        .await
        .expect("GetRoutine answers");
    let mut v: Vec<(String, i64)> = routine
        .envs
        .iter()
        .find(|e| e.env.eq_ignore_ascii_case("staging"))
        .and_then(|e| e.code_deploy.as_ref())
        .map(|d| {
            d.code_versions
                .iter()
                .map(|c| (c.code_version.clone(), i64::from(c.percentage)))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn cloud_share(split: &[(String, i64)], version: &str) -> i64 {
    split
        .iter()
        .find(|(v, _)| v == version)
        .map(|(_, p)| *p)
        .unwrap_or(0)
}

/// A cloud client with the simulator's keys: what a person in the console does.
fn console(env: &Env) -> CloudClient {
    CloudClient::new(
        ClientConfig {
            esa_endpoint: Some(env.sim.handle.base_url()),
            call_timeout: Duration::from_secs(5),
            call_deadline: Duration::from_secs(10),
            ..ClientConfig::default()
        },
        Arc::new(StaticProvider(Credentials::new(SIM_KEY_ID, SIM_KEY_SECRET))),
    )
    .expect("client")
}

/// Watch the cloud for `secs` seconds and return the highest share `version` had.
async fn highest_share_for(client: &CloudClient, version: &str, secs: u64) -> i64 {
    let mut highest = 0;
    for _ in 0..secs * 4 {
        highest = highest.max(cloud_share(&cloud_split(client).await, version));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    highest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_steps_edited_below_the_cloud_share_never_promote_fully() {
    let env = Env::start("steps-edited", SEED, 1.0, "routine").await;
    let client = console(&env);
    // 10% for 1 s, then a manual gate at 50%.
    env.kubectl.apply(&manifest(
        A,
        B,
        r#"[{percentage: 10, pause: 1s}, {percentage: 50}]"#,
        "",
    ));
    env.wait_obj(
        "holding at the 50% gate",
        RES,
        Duration::from_secs(40),
        |o| {
            (share(o, B) == 50 && progressing_reason(o) == "WaitingForPromotion")
                .then_some(())
                .ok_or_else(|| format!("canary at {}", share(o, B)))
        },
    )
    .await;
    let before = env.sim.count("CreateRoutineCodeDeployment").await;
    assert_eq!(before, 2, "10% then 50%");

    // The steps are edited to [10, 30]: the cloud's 50% is above every step, and the gate
    // at 30% is not approved. The operator moves down to 30% and holds there.
    env.kubectl.apply(&manifest(
        A,
        B,
        r#"[{percentage: 10, pause: 1s}, {percentage: 30}]"#,
        "",
    ));
    let highest = highest_share_for(&client, B, 6).await;
    assert!(
        highest <= 50,
        "the canary got {highest}% with no approval: {}",
        env.operator.log_tail()
    );
    let obj = env
        .wait_obj(
            "holding at the 30% gate",
            RES,
            Duration::from_secs(20),
            |o| {
                (share(o, B) == 30 && progressing_reason(o) == "WaitingForPromotion")
                    .then_some(())
                    .ok_or_else(|| format!("canary at {}", share(o, B)))
            },
        )
        .await;
    assert_eq!(obj["status"]["currentStep"], 1, "{obj}");
    assert_eq!(
        cloud_split(&client).await,
        vec![(A.to_string(), 70), (B.to_string(), 30)]
    );
    assert_eq!(
        env.sim.count("CreateRoutineCodeDeployment").await,
        before + 1,
        "one deployment, down to 30%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_split_raised_in_the_console_at_a_gate_is_not_pushed_further() {
    let env = Env::start("steps-console", SEED, 1.0, "routine").await;
    let client = console(&env);
    // A manual gate at 10%, then 50%.
    env.kubectl.apply(&manifest(
        A,
        B,
        r#"[{percentage: 10}, {percentage: 50, pause: 1s}]"#,
        "",
    ));
    env.wait_obj(
        "holding at the 10% gate",
        RES,
        Duration::from_secs(40),
        |o| {
            (share(o, B) == 10 && progressing_reason(o) == "WaitingForPromotion")
                .then_some(())
                .ok_or_else(|| format!("canary at {}", share(o, B)))
        },
    )
    .await;
    assert_eq!(env.sim.count("CreateRoutineCodeDeployment").await, 1);

    // Someone sets 30% in the console. Nobody approved the gate at 10%.
    client
        .create_routine_code_deployment(
            "cn-hangzhou",
            &CreateRoutineCodeDeploymentRequest {
                name: ROUTINE.into(),
                env: "staging".into(),
                strategy: "percentage".into(),
                code_versions: vec![
                    CodeVersionSplit {
                        code_version: B.into(),
                        percentage: 30,
                    },
                    CodeVersionSplit {
                        code_version: A.into(),
                        percentage: 70,
                    },
                ],
            },
        )
        .await
        .expect("the console's deployment is accepted");

    let highest = highest_share_for(&client, B, 6).await;
    assert!(
        highest <= 30,
        "the canary got {highest}% past the unapproved gate: {}",
        env.operator.log_tail()
    );
    // The operator brings the canary back to the step it is at (10%) and holds.
    let obj = env
        .wait_obj("back at the 10% gate", RES, Duration::from_secs(20), |o| {
            (share(o, B) == 10 && progressing_reason(o) == "WaitingForPromotion")
                .then_some(())
                .ok_or_else(|| format!("canary at {}", share(o, B)))
        })
        .await;
    assert_eq!(obj["status"]["currentStep"], 0, "{obj}");
    assert_eq!(
        env.sim.count("CreateRoutineCodeDeployment").await,
        3,
        "10%, the console's 30%, and one deployment back to 10%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_does_not_carry_over_to_the_next_canary_version() {
    let env = Env::start("steps-next-version", SEED, 1.0, "routine").await;
    let client = console(&env);
    // Two manual gates, both approved for B: B goes to 100%.
    env.kubectl.apply(&manifest(
        A,
        B,
        r#"[{percentage: 10}, {percentage: 50}]"#,
        "",
    ));
    env.kubectl.patch(
        RES,
        &format!(r#"{{"spec":{{"canary":{{"promotion":{{"version":"{B}","step":1}}}}}}}}"#),
    );
    let out = env
        .kubectl
        .run(&["wait", "--for=condition=Ready", "--timeout=60s", RES]);
    assert!(
        out.status.success(),
        "{}\n{}",
        support::e2e::text(&out),
        env.operator.log_tail()
    );
    assert_eq!(cloud_split(&client).await, vec![(B.to_string(), 100)]);
    let before = env.sim.count("CreateRoutineCodeDeployment").await;
    assert_eq!(before, 3, "10%, 50%, 100%");

    // The next release: stable B, canary C. The approval stays in the object (a GitOps
    // tool leaves fields it does not own alone) but it was given for B.
    env.kubectl.patch(
        RES,
        &format!(r#"{{"spec":{{"canary":{{"stableVersion":"{B}","canaryVersion":"{C}"}}}}}}"#),
    );
    let highest = highest_share_for(&client, C, 8).await;
    assert!(
        highest <= 10,
        "the new version got {highest}% with no approval for it: {}",
        env.operator.log_tail()
    );
    let obj = env
        .wait_obj(
            "C holding at the 10% gate",
            RES,
            Duration::from_secs(20),
            |o| {
                (share(o, C) == 10 && progressing_reason(o) == "WaitingForPromotion")
                    .then_some(())
                    .ok_or_else(|| format!("C at {}", share(o, C)))
            },
        )
        .await;
    assert_eq!(obj["status"]["currentStep"], 0, "{obj}");
    let message = obj["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("names {B}, not {C}")),
        "the message says why the approval opens no gate: {message}"
    );
    assert_eq!(
        env.sim.count("CreateRoutineCodeDeployment").await,
        before + 1,
        "only the first step of C"
    );

    // An approval for C opens C's gates.
    env.kubectl.patch(
        RES,
        &format!(r#"{{"spec":{{"canary":{{"promotion":{{"version":"{C}","step":1}}}}}}}}"#),
    );
    let out = env
        .kubectl
        .run(&["wait", "--for=condition=Ready", "--timeout=60s", RES]);
    assert!(out.status.success(), "{}", support::e2e::text(&out));
    assert_eq!(cloud_split(&client).await, vec![(C.to_string(), 100)]);

    // The index-only form that carried approvals over is refused, saying what replaces it.
    let out = env.kubectl.run(&[
        "patch",
        RES,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"canary":{"promotedStep":1}}}"#,
    ]);
    assert!(!out.status.success(), "promotedStep is refused");
    assert!(
        support::e2e::text(&out).contains("replaced by canary.promotion"),
        "{}",
        support::e2e::text(&out)
    );
}
