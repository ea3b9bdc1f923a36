//! The EAS shell (read, execute, cleanup inside the shared loop) against the in-memory
//! cloud and a recording status writer.

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use crate::cloud::model::{PartitionConfig, Rollout, RolloutStrategy};
use crate::controller::runner::{Rollout as _, apply};
use crate::controller::testing::{
    Harness, api_error, assert_invalid_spec_path, mutation_request_id, object,
};
use crate::crd::EasServiceRollout;

const REGION: &str = "cn-shanghai";
const SERVICE: &str = "svc";

fn eas(spec: Value) -> EasServiceRollout {
    object("EasServiceRollout", spec)
}

fn partition(p: &str, extra: Value) -> EasServiceRollout {
    let mut spec = json!({"region": REGION, "serviceName": SERVICE, "strategy": {"partition": p}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    eas(spec)
}

fn seeded() -> Harness {
    let h = Harness::new();
    h.cloud
        .set_service_config(REGION, SERVICE, json!({"metadata": {"instance": 4}}));
    h
}

#[tokio::test]
async fn ownership_is_recorded_before_the_create_and_each_mutation_is_reported() {
    let h = seeded();
    let obj = partition("1", json!({}));
    apply(&obj, &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateServiceRollout"]);
    let writes = h.writes.statuses();
    assert_eq!(writes.len(), 2, "ownership, then the planned status");
    assert_eq!(writes[0].mutations_before, 0, "ownership comes first");
    assert_eq!(writes[0].status["cloudRef"], "cn-shanghai/svc");
    assert_eq!(writes[1].status["cloudRef"], "cn-shanghai/svc");
    // Mutation 0 is the ownership marker (UpdateServiceLabel), 1 the create.
    let id = mutation_request_id(&h.cloud, 1);
    assert_eq!(writes[1].status["lastRequestId"], id.as_str());
    // The ownership marker's own Event is checked in controller::marker.
    let events: Vec<_> = h
        .writes
        .events()
        .into_iter()
        .filter(|e| e.1 != "UpdateServiceLabel")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, EventType::Normal);
    assert_eq!(events[0].1, "CreateServiceRollout");
    assert!(events[0].2.contains(&id), "{events:?}");
    // The next reconcile reads the rollout and has nothing to do.
    apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateServiceRollout"]);
}

#[tokio::test]
async fn already_exists_on_create_is_the_create_that_was_wanted() {
    let h = seeded();
    h.cloud.set_rollout(
        REGION,
        SERVICE,
        Rollout {
            strategy: Some(RolloutStrategy {
                partition: Some(PartitionConfig {
                    partition: "1".into(),
                }),
                batch: None,
            }),
            status: None,
        },
    );
    // The read did not see it (a lost answer, a lagging view): the create is refused.
    h.cloud.fail_next(
        "DescribeServiceRollout",
        api_error(404, "InvalidRollout.NotFound"),
    );
    let obj = partition("1", json!({}));
    apply(&obj, &h.cx)
        .await
        .expect("an existing rollout is no failure");
    let create: Vec<_> = h
        .cloud
        .calls()
        .into_iter()
        .filter(|c| c.api == "CreateServiceRollout")
        .collect();
    assert_eq!(create.len(), 1);
    assert_eq!(
        create[0].outcome,
        Err("InvalidRollout.AlreadyExists".to_string())
    );
    assert!(
        h.writes.events().iter().all(|e| e.0 == EventType::Normal),
        "no Warning: {:?}",
        h.writes.events()
    );
    let status = h.writes.last_status().expect("status written");
    assert_ne!(status["phase"], "Degraded", "{status}");
}

#[tokio::test]
async fn a_failed_status_write_after_the_mutations_does_not_repeat_them() {
    let h = seeded();
    let obj = partition(
        "1",
        json!({"serviceConfig": {"containers": [{"image": "repo/model:v2"}]}}),
    );
    // Writes 1 (ownership) and 2 succeed with the create; write 3, after the push, fails.
    h.writes.fail_status_write(3);
    apply(&obj, &h.cx).await.expect("created");
    let err = apply(&h.reread(&obj), &h.cx)
        .await
        .expect_err("the status write failed");
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(h.mutations(), ["CreateServiceRollout", "UpdateService"]);
    // The next reconcile sees the status from before the push; it reads the cloud and
    // neither repeats nor undoes what was done.
    let again = h.reread(&obj);
    assert_eq!(
        again
            .status
            .as_ref()
            .and_then(|s| s.applied_service_config_hash.clone()),
        None
    );
    apply(&again, &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateServiceRollout", "UpdateService"]);
    let status = h.writes.last_status().expect("status written");
    assert!(status["appliedServiceConfigHash"].is_string(), "{status}");
}

/// Deleting the resource under `deletionPolicy: Delete` while its rollout is in progress
/// would let EAS finish it at once (DeleteServiceRollout): the deletion waits until the
/// rollout is Completed, and says so.
#[tokio::test]
async fn a_delete_cleanup_waits_while_the_rollout_is_in_progress() {
    let h = seeded();
    let obj = partition(
        "3",
        json!({"deletionPolicy": "Delete", "serviceConfig": {"containers": [{"image": "repo/model:v2"}]}}),
    );
    apply(&obj, &h.cx).await.expect("created");
    apply(&h.reread(&obj), &h.cx).await.expect("pushed");
    let owned = h.reread(&obj);
    let in_flight = h.cloud.rollout(REGION, SERVICE).expect("a rollout");
    let status = in_flight.status.as_ref().expect("rollout status");
    assert_ne!(
        status.current_revision, status.update_revision,
        "{status:?}"
    );
    let err = owned.cleanup(&h.cx).await.expect_err("waits");
    assert_eq!(err.reason(), "DeletionWaitsForRollout");
    assert!(err.to_string().contains("deletionPolicy: Retain"), "{err}");
    assert!(
        h.cloud
            .mutations()
            .iter()
            .all(|c| c.api != "DeleteServiceRollout"),
        "{:?}",
        h.cloud.mutations()
    );
    // Once it is Completed, the deletion goes ahead.
    h.cloud.finish_rollout(REGION, SERVICE);
    owned.cleanup(&h.cx).await.expect("deleted");
    assert!(h.cloud.rollout(REGION, SERVICE).is_none());
}

#[tokio::test]
async fn cleanup_follows_the_deletion_policy_on_the_recorded_target() {
    for (policy, deletes) in [("Retain", false), ("Delete", true)] {
        let h = seeded();
        let obj = partition("1", json!({"deletionPolicy": policy}));
        apply(&obj, &h.cx).await.expect("reconciled");
        let owned = h.reread(&obj);
        owned.cleanup(&h.cx).await.expect("cleaned up");
        let deleted: Vec<_> = h
            .cloud
            .mutations()
            .into_iter()
            .filter(|c| c.api == "DeleteServiceRollout")
            .collect();
        assert_eq!(deleted.len(), usize::from(deletes), "{policy}");
        assert_eq!(
            h.cloud.rollout(REGION, SERVICE).is_none(),
            deletes,
            "{policy}"
        );
        let reason = if deletes {
            "DeleteServiceRollout"
        } else {
            "Retained"
        };
        assert!(
            h.writes.events().iter().any(|e| e.1 == reason),
            "{policy}: {:?}",
            h.writes.events()
        );
        if deletes {
            assert_eq!(
                (deleted[0].region.as_str(), deleted[0].target.as_str()),
                (REGION, SERVICE)
            );
            // Already gone is success.
            owned.cleanup(&h.cx).await.expect("idempotent");
        }
    }
    // A resource that never reached the cloud has nothing to clean up.
    let h = seeded();
    partition("1", json!({"deletionPolicy": "Delete"}))
        .cleanup(&h.cx)
        .await
        .expect("nothing to do");
    assert!(h.cloud.calls().is_empty());
}

#[tokio::test]
async fn a_terminal_cloud_error_degrades_with_the_cloud_code_and_waits() {
    let h = seeded();
    h.cloud
        .fail_next("CreateServiceRollout", api_error(400, "InvalidParameter"));
    let obj = partition("1", json!({}));
    let action = apply(&obj, &h.cx).await.expect("reported, not retried");
    assert_eq!(action, Action::await_change());
    let status = h.writes.last_status().expect("status written");
    assert_eq!(status["phase"], "Degraded");
    assert_eq!(
        status["cloudRef"], "cn-shanghai/svc",
        "ownership survives: {status}"
    );
    assert_eq!(status["lastRequestId"], "injected-req");
    let warnings: Vec<_> = h
        .writes
        .events()
        .into_iter()
        .filter(|e| e.0 == EventType::Warning)
        .collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].1, "InvalidParameter");
}

#[tokio::test]
async fn an_invalid_spec_takes_the_one_invalid_spec_path() {
    assert_invalid_spec_path(partition("two", json!({})), "strategy.partition").await;
}

#[tokio::test]
async fn the_target_of_a_resource_cannot_move() {
    let h = seeded();
    let obj = partition("1", json!({}));
    apply(&obj, &h.cx).await.expect("reconciled");
    let mut moved = h.reread(&obj);
    moved.spec.service_name = "other".into();
    let calls = h.cloud.calls().len();
    apply(&moved, &h.cx).await.expect("reported");
    assert_eq!(h.cloud.calls().len(), calls, "no call for another target");
    let status = h.writes.last_status().expect("status");
    assert_eq!(status["cloudRef"], "cn-shanghai/svc");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot change"),
        "{status}"
    );
}

/// The cloud acknowledged a pause but its reads still say Running (a lagging view).
fn pretend_running(h: &Harness) {
    let mut r = h.cloud.rollout(REGION, SERVICE).expect("rollout");
    if let Some(st) = r.status.as_mut() {
        st.phase = Some("Running".into());
    }
    h.cloud.set_rollout(REGION, SERVICE, r);
}

#[tokio::test]
async fn an_accepted_pause_is_not_resent_while_the_cloud_catches_up() {
    let h = seeded();
    let obj = partition("1", json!({}));
    apply(&obj, &h.cx).await.expect("created");
    let mut paused = h.reread(&obj);
    paused.spec.paused = true;
    apply(&paused, &h.cx).await.expect("paused");
    assert_eq!(
        h.mutations(),
        ["CreateServiceRollout", "UpdateServiceRollout"]
    );
    for _ in 0..5 {
        pretend_running(&h);
        apply(&h.reread(&paused), &h.cx).await.expect("held");
    }
    assert_eq!(
        h.mutations(),
        ["CreateServiceRollout", "UpdateServiceRollout"],
        "one mutation per intent within the grace period"
    );
    let status = h.writes.last_status().expect("status");
    assert_eq!(
        status["mutationsInFlight"][0]["action"],
        "UpdateServiceRollout"
    );
    // Once the cloud shows it, nothing is in flight.
    let mut r = h.cloud.rollout(REGION, SERVICE).expect("rollout");
    if let Some(st) = r.status.as_mut() {
        st.phase = Some("Paused".into());
    }
    h.cloud.set_rollout(REGION, SERVICE, r);
    apply(&h.reread(&paused), &h.cx).await.expect("settled");
    let status = h.writes.last_status().expect("status");
    assert!(status.get("mutationsInFlight").is_none(), "{status}");
}

#[tokio::test]
async fn after_the_grace_period_a_mutation_is_resent_once_then_a_person_is_needed() {
    let h = Harness::with_grace(std::time::Duration::ZERO);
    h.cloud
        .set_service_config(REGION, SERVICE, json!({"metadata": {"instance": 4}}));
    let obj = partition("1", json!({}));
    apply(&obj, &h.cx).await.expect("created");
    let mut paused = h.reread(&obj);
    paused.spec.paused = true;
    apply(&paused, &h.cx).await.expect("paused");
    pretend_running(&h);
    apply(&h.reread(&paused), &h.cx).await.expect("resent");
    let warnings: Vec<_> = h
        .writes
        .events()
        .into_iter()
        .filter(|e| e.0 == EventType::Warning)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].1, "MutationNotVisible");
    for _ in 0..3 {
        pretend_running(&h);
        let action = apply(&h.reread(&paused), &h.cx).await.expect("stuck");
        assert_ne!(action, Action::await_change(), "looked at again later");
    }
    assert_eq!(
        h.mutations(),
        [
            "CreateServiceRollout",
            "UpdateServiceRollout",
            "UpdateServiceRollout"
        ],
        "sent once more, never again"
    );
    let status = h.writes.last_status().expect("status");
    assert_eq!(status["phase"], "Degraded", "{status}");
    let degraded = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(degraded["reason"], "MutationNotVisible");
}

/// `spec.retry` is a person asking to try again: a mutation held as stuck is sent once
/// more, and the token is recorded so the next reconcile does not send it yet again.
#[tokio::test]
async fn a_retry_sends_a_stuck_mutation_once_more() {
    let h = Harness::with_grace(std::time::Duration::ZERO);
    h.cloud
        .set_service_config(REGION, SERVICE, json!({"metadata": {"instance": 4}}));
    let obj = partition("1", json!({}));
    apply(&obj, &h.cx).await.expect("created");
    let mut paused = h.reread(&obj);
    paused.spec.paused = true;
    apply(&paused, &h.cx).await.expect("paused");
    for _ in 0..3 {
        pretend_running(&h);
        apply(&h.reread(&paused), &h.cx)
            .await
            .expect("resent, then stuck");
    }
    let stuck = h.mutations().len();
    assert_eq!(h.writes.last_status().expect("status")["phase"], "Degraded");

    paused.spec.retry = Some(1);
    pretend_running(&h);
    apply(&h.reread(&paused), &h.cx).await.expect("retried");
    assert_eq!(h.mutations().len(), stuck + 1, "sent once more");
    assert_eq!(h.mutations().last(), Some(&"UpdateServiceRollout"));
    let status = h.writes.last_status().expect("status");
    assert_eq!(status["observedRetry"], 1, "{status}");
    assert!(
        h.writes.events().iter().any(|e| e.1 == "RetryRequested"),
        "{:?}",
        h.writes.events()
    );
    // The same token again is no new retry.
    apply(&h.reread(&paused), &h.cx).await.expect("settled");
    let retries = h
        .writes
        .events()
        .iter()
        .filter(|e| e.1 == "RetryRequested")
        .count();
    assert_eq!(retries, 1);
}

/// A push whose outcome is unknown (the answer timed out: the cloud may have applied it,
/// and its reads may not show it yet) is in flight: the next reconcile reads the cloud and
/// does not send it again within the grace period; after it, once more.
#[tokio::test]
async fn a_push_whose_outcome_is_unknown_is_in_flight_and_not_sent_again() {
    let h = seeded();
    let obj = partition(
        "1",
        json!({"serviceConfig": {"containers": [{"image": "repo/model:v2"}]}}),
    );
    apply(&obj, &h.cx).await.expect("created");
    let unknown = crate::cloud::CloudError::OutcomeUnknown(Box::new(
        crate::cloud::CloudError::Timeout(std::time::Duration::from_secs(10)),
    ));
    h.cloud.fail_next("UpdateService", unknown);
    let err = apply(&h.reread(&obj), &h.cx)
        .await
        .expect_err("the push failed");
    assert!(err.outcome_unknown(), "{err}");
    assert!(err.to_string().contains("outcome unknown"), "{err}");
    let status = h.writes.last_status().expect("status written");
    let in_flight = status["mutationsInFlight"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        in_flight.iter().any(|m| m["action"] == "UpdateService"),
        "the push is recorded as in flight: {status}"
    );
    // The cloud does not show the push (it was lost, or its reads lag): held, not resent.
    apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateServiceRollout", "UpdateService"]);
}

/// Unknown outcomes in a row (a burst of 5xx) never make the push "stuck": after each
/// grace period it is sent again, until the cloud answers.
#[tokio::test]
async fn a_burst_of_unknown_outcomes_does_not_leave_the_push_stuck() {
    let h = Harness::with_grace(std::time::Duration::ZERO);
    h.cloud
        .set_service_config(REGION, SERVICE, json!({"metadata": {"instance": 4}}));
    let obj = partition(
        "1",
        json!({"serviceConfig": {"containers": [{"image": "repo/model:v2"}]}}),
    );
    apply(&obj, &h.cx).await.expect("created");
    for _ in 0..3 {
        h.cloud.fail_next(
            "UpdateService",
            crate::cloud::CloudError::OutcomeUnknown(Box::new(api_error(
                503,
                "ServiceUnavailable",
            ))),
        );
        let err = apply(&h.reread(&obj), &h.cx).await.expect_err("5xx");
        assert!(err.outcome_unknown(), "{err}");
    }
    apply(&h.reread(&obj), &h.cx).await.expect("pushed");
    assert_eq!(
        h.mutations(),
        [
            "CreateServiceRollout",
            "UpdateService",
            "UpdateService",
            "UpdateService",
            "UpdateService"
        ]
    );
    let status = h.writes.last_status().expect("status written");
    assert_ne!(status["phase"], "Degraded", "{status}");
    assert!(status["appliedServiceConfigHash"].is_string(), "{status}");
}

/// A long run of failed reads (5xx, answers that do not decode) does not leave an old
/// Ready=True standing: after `--unknown-after`, Ready is Unknown; the next good read
/// writes it afresh.
#[tokio::test]
async fn ready_turns_unknown_when_the_cloud_cannot_be_read_for_long() {
    use crate::cloud::CloudError;
    let ready = |h: &Harness| {
        h.writes
            .last_status()
            .and_then(|s| {
                s["conditions"].as_array().and_then(|cs| {
                    cs.iter()
                        .find(|c| c["type"] == "Ready")
                        .map(|c| (c["status"].clone(), c["reason"].clone()))
                })
            })
            .unwrap_or_default()
    };
    let unavailable = || CloudError::Api {
        status: 503,
        code: "ServiceUnavailable".into(),
        message: "busy".into(),
        request_id: None,
        retry_after: None,
    };
    let mut h = seeded();
    let obj = partition("1", json!({}));
    apply(&obj, &h.cx).await.expect("created");
    h.cloud.finish_rollout(REGION, SERVICE);
    apply(&h.reread(&obj), &h.cx).await.expect("read");
    assert_eq!(ready(&h).0, "True");

    // Failing, but not for long yet: the status is left as it was.
    h.cx.timing.unknown_after = std::time::Duration::from_secs(3600);
    h.cloud.fail_next("DescribeServiceRollout", unavailable());
    apply(&h.reread(&obj), &h.cx).await.expect_err("503");
    assert_eq!(ready(&h).0, "True");

    // Still failing past the bound (here: any failure), with a 503 or an undecodable answer.
    h.cx.timing.unknown_after = std::time::Duration::ZERO;
    for err in [
        unavailable(),
        CloudError::Decode("expected a JSON object".into()),
    ] {
        h.cloud.fail_next("DescribeServiceRollout", err);
        apply(&h.reread(&obj), &h.cx)
            .await
            .expect_err("failed read");
        assert_eq!(
            ready(&h),
            (json!("Unknown"), json!("CloudUnreadable")),
            "{:?}",
            h.writes.last_status()
        );
    }
    let status = h.writes.last_status().unwrap_or_default();
    // Still being worked on for kstatus (InProgress), not a person's turn.
    let reconciling = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Reconciling"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(reconciling["status"], "True", "{status}");
    assert_eq!(reconciling["reason"], "CloudUnreadable", "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown"),
        "{status}"
    );

    // The cloud answers again: Ready is what it shows.
    apply(&h.reread(&obj), &h.cx).await.expect("read");
    assert_eq!(ready(&h), (json!("True"), json!("Completed")));
}

/// Tenancy in the shell: with no account to use, nothing at all is called in the cloud
/// and the status says why; an account that assumes a role runs the rollout in the role's
/// account, and the role is assumed once for several reconciles.
#[tokio::test]
async fn tenancy_refuses_before_any_call_and_assumes_roles_once() {
    use crate::controller::accounts::{Accounts, StaticView};
    use std::sync::Arc;
    let mut h = seeded();
    h.cx.accounts = Arc::new(Accounts::default());
    let obj = partition("1", json!({}));
    let action = apply(&obj, &h.cx).await.expect("reported");
    assert_eq!(action, Action::await_change());
    assert!(h.cloud.calls().is_empty(), "{:?}", h.cloud.calls());
    assert_eq!(h.cloud.identity_lookups(), 0, "not even GetCallerIdentity");
    let status = h.writes.last_status().expect("a status");
    let degraded = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(degraded["reason"], "NoCloudAccount", "{status}");

    let account: crate::crd::CloudAccount = serde_json::from_value(json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "CloudAccount",
        "metadata": {"name": "team"},
        "spec": {"assumeRole": {"roleArn": "acs:ram::2222:role/r"},
                 "namespaces": {"names": ["ns"]}},
    }))
    .expect("account");
    h.cx.accounts = Arc::new(Accounts::with_view(Arc::new(StaticView {
        accounts: vec![Arc::new(account)],
        labels: Default::default(),
    })));
    let obj = partition("1", json!({"accountRef": {"name": "team"}}));
    apply(&obj, &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateServiceRollout"]);
    let status = h.writes.last_status().expect("a status");
    assert_eq!(status["cloudAccount"], "2222", "{status}");
    apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    assert_eq!(h.cloud.assumed_roles(), 1, "cached for the next reconcile");
}
