//! The ownership rules of the shared loop (issue 8, 1g), through the EAS shell against
//! the in-memory cloud: the account recorded with the object, credentials of another
//! account, a second resource naming an owned object, and an upgrade from a status
//! without an account.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use crate::cloud::fake::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCOUNT};
use crate::controller::owners::{Entry, Fixed};
use crate::controller::runner::{Rollout as _, apply};
use crate::controller::testing::{Harness, object};
use crate::crd::EasServiceRollout;

const REGION: &str = "cn-shanghai";
const SERVICE: &str = "svc";

fn seeded() -> Harness {
    let h = Harness::new();
    h.cloud
        .set_service_config(REGION, SERVICE, json!({"metadata": {"instance": 4}}));
    h
}

fn named(name: &str, partition: &str, extra: Value) -> EasServiceRollout {
    let mut v = serde_json::to_value(object::<EasServiceRollout>(
        "EasServiceRollout",
        json!({"region": REGION, "serviceName": SERVICE, "strategy": {"partition": partition}}),
    ))
    .unwrap_or_default();
    v["metadata"]["name"] = json!(name);
    v["metadata"]["uid"] = json!(format!("uid-{name}"));
    if let (Some(s), Some(e)) = (v["spec"].as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
}

fn degraded_reason(status: &Value) -> String {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
        .filter(|c| c["status"] == "True")
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_account_is_recorded_with_the_object_before_the_first_mutation() {
    let h = seeded();
    apply(&named("a", "1", json!({})), &h.cx)
        .await
        .expect("reconciled");
    let writes = h.writes.statuses();
    assert_eq!(writes[0].mutations_before, 0, "ownership comes first");
    assert_eq!(writes[0].status["cloudRef"], "cn-shanghai/svc");
    assert_eq!(writes[0].status["cloudAccount"], DEFAULT_ACCOUNT);
    assert_eq!(h.mutations(), ["CreateServiceRollout"]);
}

#[tokio::test]
async fn credentials_of_another_account_change_and_delete_nothing() {
    let h = seeded();
    let obj = named("a", "1", json!({"deletionPolicy": "Delete"}));
    apply(&obj, &h.cx).await.expect("reconciled");
    let owned = h.reread(&obj);
    let calls_before = h.cloud.calls().len();
    // The same credentials now answer for another account.
    h.cloud
        .set_account(DEFAULT_ACCESS_KEY_ID, "2000000000000002");
    let mut edited = owned.clone();
    edited.spec.strategy.partition = Some("0".into());
    let action = apply(&edited, &h.cx).await.expect("reported, not retried");
    assert_ne!(
        action,
        Action::await_change(),
        "looked at again: the Secret can be fixed without a spec change"
    );
    assert_eq!(
        h.cloud.calls().len(),
        calls_before,
        "not even a read: {:?}",
        h.cloud.calls()
    );
    let status = h.writes.last_status().expect("status written");
    assert_eq!(degraded_reason(&status), "AccountChanged", "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(DEFAULT_ACCOUNT) && message.contains("2000000000000002"),
        "{message}"
    );
    assert_eq!(status["cloudAccount"], DEFAULT_ACCOUNT, "the record stays");
    let warning = h.writes.events().into_iter().last().expect("an Event");
    assert_eq!(
        (warning.0, warning.1.as_str()),
        (EventType::Warning, "AccountChanged")
    );

    // Deletion under deletionPolicy Delete: nothing deleted, a Warning names what is left.
    h.reread(&edited).cleanup(&h.cx).await.expect("let go");
    assert!(
        h.cloud
            .mutations()
            .iter()
            .all(|c| c.api != "DeleteServiceRollout"),
        "{:?}",
        h.cloud.mutations()
    );
    assert!(h.cloud.rollout(REGION, SERVICE).is_some(), "left in place");
    let skipped = h.writes.events().into_iter().last().expect("an Event");
    assert_eq!(skipped.1, "CleanupSkipped");
    assert!(
        skipped.2.contains("cn-shanghai/svc") && skipped.2.contains(DEFAULT_ACCOUNT),
        "{skipped:?}"
    );
}

#[tokio::test]
async fn a_second_resource_naming_an_owned_object_makes_no_call_and_names_the_owner() {
    let h = seeded();
    let first = named("first", "1", json!({}));
    apply(&first, &h.cx).await.expect("reconciled");
    let first = h.reread(&first);
    // The controller's store now holds both; the second has recorded nothing.
    let second = named("second", "3", json!({"deletionPolicy": "Delete"}));
    h.cx.owners.add_source(
        EasServiceRollout::LABEL,
        Arc::new(Fixed(vec![Entry::of(&first), Entry::of(&second)])),
    );
    let calls_before = h.cloud.calls().len();
    let lookups_before = h.cloud.identity_lookups();
    apply(&second, &h.cx).await.expect("reported, not retried");
    assert_eq!(h.cloud.calls().len(), calls_before, "no call on the object");
    assert_eq!(
        h.cloud.identity_lookups(),
        lookups_before + 1,
        "only the account of its credentials was asked"
    );
    let status = h.writes.last_status().expect("status written");
    assert_eq!(degraded_reason(&status), "AlreadyManaged", "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ns/first"),
        "{status}"
    );
    assert!(
        status["cloudRef"].is_null(),
        "records no ownership: {status}"
    );
    // The owner keeps working.
    let mutations = h.mutations().len();
    let mut moved = first.clone();
    moved.spec.strategy.partition = Some("0".into());
    apply(&moved, &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations().len(), mutations + 1, "{:?}", h.mutations());
    let status = h.writes.last_status().expect("status written");
    assert_eq!(degraded_reason(&status), "", "{status}");
}

#[tokio::test]
async fn two_resources_reconciled_at_once_cannot_both_own_the_object() {
    let h = seeded();
    // No store knows either yet (both were just created): the in-process claim decides.
    let a = named("a", "1", json!({}));
    let b = named("b", "3", json!({}));
    apply(&a, &h.cx).await.expect("reconciled");
    apply(&b, &h.cx).await.expect("reported");
    assert_eq!(h.mutations(), ["CreateServiceRollout"], "only a's");
    let status = h.writes.last_status().expect("status written");
    assert_eq!(degraded_reason(&status), "AlreadyManaged", "{status}");
}

#[tokio::test]
async fn a_status_recorded_before_accounts_adopts_the_current_account() {
    let h = seeded();
    let obj = named("a", "1", json!({}));
    apply(&obj, &h.cx).await.expect("reconciled");
    // As an earlier operator version left it: cloudRef without cloudAccount.
    let mut old = h.reread(&obj);
    if let Some(s) = old.status.as_mut() {
        s.cloud_account = None;
    }
    h.cloud
        .set_account(DEFAULT_ACCESS_KEY_ID, "3000000000000003");
    let mut edited = old.clone();
    edited.spec.strategy.partition = Some("0".into());
    apply(&edited, &h.cx).await.expect("reconciled");
    assert_eq!(
        h.mutations(),
        ["CreateServiceRollout", "UpdateServiceRollout"],
        "it keeps working"
    );
    let status = h.writes.last_status().expect("status written");
    assert_eq!(status["cloudAccount"], "3000000000000003", "{status}");
    assert_eq!(degraded_reason(&status), "", "{status}");
}
