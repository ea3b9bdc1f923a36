//! The routine shell (read, execute inside the shared loop) against the in-memory cloud
//! and a recording status writer.

use serde_json::{Value, json};

use crate::cloud::model::GetRoutineResponse;
use crate::controller::runner::apply;
use crate::controller::testing::{Harness, assert_invalid_spec_path, mutation_request_id, object};
use crate::crd::EsaRoutineRollout;

const REGION: &str = "cn-hangzhou";
const STABLE: &str = "1710000000000000001";
const CANARY: &str = "1710000000000000002";

fn routine(spec: Value) -> EsaRoutineRollout {
    object("EsaRoutineRollout", spec)
}

fn canary() -> EsaRoutineRollout {
    routine(json!({
        "routine": "edge-fn", "env": "production", "region": REGION,
        "canary": {"stableVersion": STABLE, "canaryVersion": CANARY,
                   "steps": [{"percentage": 10}, {"percentage": 50}]},
    }))
}

fn seeded() -> Harness {
    let h = Harness::new();
    h.cloud
        .set_routine(REGION, "edge-fn", GetRoutineResponse::default());
    h
}

/// The split the cloud serves in production, as (version, percentage).
fn served(h: &Harness) -> Vec<(String, i32)> {
    h.cloud
        .routine(REGION, "edge-fn")
        .and_then(|r| r.envs.into_iter().find(|e| e.env == "production"))
        .and_then(|e| e.code_deploy)
        .map(|d| {
            d.code_versions
                .into_iter()
                .map(|c| (c.code_version, c.percentage))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_first_step_is_deployed_once_after_ownership_is_recorded() {
    let h = seeded();
    let obj = canary();
    apply(&obj, &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateRoutineCodeDeployment"]);
    assert_eq!(
        served(&h),
        [(CANARY.to_string(), 10), (STABLE.to_string(), 90)]
    );
    let writes = h.writes.statuses();
    assert_eq!(writes[0].mutations_before, 0);
    assert_eq!(
        writes[0].status["cloudRef"],
        "cn-hangzhou/edge-fn/production"
    );
    let last = h.writes.last_status().expect("status");
    assert_eq!(
        last["lastRequestId"],
        mutation_request_id(&h.cloud, 0).as_str()
    );
    assert_eq!(last["currentStep"], 0);
    // The deployment's answer is in the status at once.
    assert_eq!(last["split"], format!("{CANARY}:10,{STABLE}:90").as_str());
    // At the manual gate: nothing more, however often it is looked at.
    for _ in 0..3 {
        apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    }
    assert_eq!(h.mutations(), ["CreateRoutineCodeDeployment"]);
    let last = h.writes.last_status().expect("status");
    let progressing = last["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(progressing["reason"], "WaitingForPromotion", "{last}");
}

#[tokio::test]
async fn a_failed_status_write_after_a_deployment_does_not_repeat_it() {
    let h = seeded();
    h.writes.fail_status_write(2);
    let obj = canary();
    apply(&obj, &h.cx)
        .await
        .expect_err("the status write failed");
    apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateRoutineCodeDeployment"]);
    let last = h.writes.last_status().expect("status");
    assert_eq!(last["currentStep"], 0, "resumed where the cloud is: {last}");
}

#[tokio::test]
async fn a_missing_routine_needs_a_person_and_is_looked_at_again_until_it_exists() {
    let h = Harness::new();
    let obj = canary();
    let action = apply(&obj, &h.cx).await.expect("reported");
    assert_ne!(
        action,
        kube::runtime::controller::Action::await_change(),
        "not found is looked at again without a spec change"
    );
    assert!(h.mutations().is_empty());
    let status = h.writes.last_status().expect("status");
    assert_eq!(status["phase"], "Degraded");
    assert_eq!(
        status["cloudRef"],
        Value::Null,
        "nothing was changed, nothing is owned"
    );
    let stalled = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Stalled"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(stalled["status"], "True", "{status}");
    assert_eq!(stalled["reason"], "RoutineNotExist", "{status}");
    assert!(status["nextCheckAt"].is_string(), "{status}");
    // The routine appears (created by another tool): the next look deploys, with no
    // spec change, and the Stalled condition and the next check go.
    h.cloud
        .set_routine(REGION, "edge-fn", GetRoutineResponse::default());
    apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateRoutineCodeDeployment"]);
    let status = h.writes.last_status().expect("status");
    assert!(status.get("nextCheckAt").is_none(), "{status}");
    let stalled = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Stalled"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(stalled["status"], "False", "{status}");
}

#[tokio::test]
async fn an_invalid_spec_takes_the_one_invalid_spec_path() {
    let obj = routine(json!({
        "routine": "edge-fn", "env": "production",
        "codeVersions": [{"codeVersion": STABLE, "percentage": 60}, {"codeVersion": CANARY, "percentage": 30}],
    }));
    assert_invalid_spec_path(obj, "sum to 90").await;
}
