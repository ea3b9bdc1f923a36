//! The container app shell (read, execute inside the shared loop) against the in-memory
//! cloud and a recording status writer.

use serde_json::{Value, json};

use crate::cloud::model::AppStatus;
use crate::controller::runner::apply;
use crate::controller::testing::{Harness, assert_invalid_spec_path, mutation_request_id, object};
use crate::crd::EsaContainerAppRollout;

const REGION: &str = "cn-hangzhou";

fn app(spec: Value) -> EsaContainerAppRollout {
    object("EsaContainerAppRollout", spec)
}

fn seeded() -> Harness {
    let h = Harness::new();
    h.cloud.set_app_status(
        REGION,
        "app-1",
        "prod",
        AppStatus {
            publish_status: Some("published".into()),
            deploy_status: Some("deployed".into()),
            deployed_version: Some("ver-100".into()),
            base_line_version: Some("ver-100".into()),
            publish_percentage: Some(100),
            publish_type: Some("percentage".into()),
            ..Default::default()
        },
    );
    h
}

fn half() -> EsaContainerAppRollout {
    app(json!({"appId": "app-1", "versionId": "ver-200", "env": "production", "percentage": 50}))
}

#[tokio::test]
async fn a_publish_is_sent_once_after_ownership_is_recorded() {
    let h = seeded();
    let obj = half();
    apply(&obj, &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["PublishEdgeContainerAppVersion"]);
    let writes = h.writes.statuses();
    assert_eq!(writes[0].mutations_before, 0);
    assert_eq!(writes[0].status["cloudRef"], "cn-hangzhou/app-1/prod");
    let last = h.writes.last_status().expect("status");
    assert_eq!(
        last["lastRequestId"],
        mutation_request_id(&h.cloud, 0).as_str()
    );
    apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["PublishEdgeContainerAppVersion"]);
    let last = h.writes.last_status().expect("status");
    assert_eq!(last["phase"], "Completed", "{last}");
}

#[tokio::test]
async fn a_failed_status_write_after_a_publish_does_not_repeat_it() {
    let h = seeded();
    h.writes.fail_status_write(2);
    let obj = half();
    apply(&obj, &h.cx)
        .await
        .expect_err("the status write failed");
    apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["PublishEdgeContainerAppVersion"]);
}

#[tokio::test]
async fn a_rollback_returns_to_the_baseline_once() {
    let h = seeded();
    let obj = half();
    apply(&obj, &h.cx).await.expect("published");
    let mut back = h.reread(&obj);
    back.spec.rollback = true;
    apply(&back, &h.cx).await.expect("rolled back");
    apply(&h.reread(&back), &h.cx).await.expect("settled");
    assert_eq!(
        h.mutations(),
        [
            "PublishEdgeContainerAppVersion",
            "RollbackEdgeContainerAppVersion"
        ]
    );
    let rollback = h
        .cloud
        .mutations()
        .into_iter()
        .nth(1)
        .expect("rollback call");
    assert_eq!(rollback.target, "app-1");
    let served = h.cloud.app_status(REGION, "app-1", "prod").expect("app");
    assert_eq!(served.publishing_version.as_deref(), Some("ver-100"));
}

#[tokio::test]
async fn an_invalid_spec_takes_the_one_invalid_spec_path() {
    let obj = app(json!({
        "appId": "app-1", "versionId": "ver-200", "env": "production",
        "percentage": 10, "regions": ["a"],
    }));
    assert_invalid_spec_path(obj, "at most one of spec.percentage and spec.regions").await;
}

/// A staging rollback reads production first and sends nothing while production serves a
/// version the rollback would replace (RollbackEdgeContainerAppVersion has no PublishEnv).
#[tokio::test]
async fn a_staging_rollback_that_would_move_production_is_refused_without_a_call() {
    let h = seeded();
    // Production (seeded) serves ver-100; staging publishes ver-200 over ver-300.
    let staging = |v: &str, baseline: &str| AppStatus {
        publish_status: Some("published".into()),
        deploy_status: Some("deployed".into()),
        publishing_version: Some(v.into()),
        deployed_version: Some(v.into()),
        base_line_version: Some(baseline.into()),
        publish_percentage: Some(50),
        expect_percentage: Some(50),
        publish_type: Some("percentage".into()),
        ..Default::default()
    };
    h.cloud
        .set_app_status(REGION, "app-1", "staging", staging("ver-200", "ver-300"));
    let obj =
        app(json!({"appId": "app-1", "versionId": "ver-200", "env": "staging", "rollback": true}));
    apply(&obj, &h.cx).await.expect("reported");
    assert!(h.mutations().is_empty(), "{:?}", h.mutations());
    let envs: Vec<Option<String>> = h.cloud.calls().into_iter().map(|c| c.env).collect();
    assert_eq!(envs, [Some("staging".into()), Some("prod".into())]);
    let status = h.writes.last_status().expect("status");
    assert_eq!(status["phase"], "Degraded", "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("would also move prod"), "{message}");
    // Once production serves the version returned to, the rollback goes ahead.
    h.cloud
        .set_app_status(REGION, "app-1", "staging", staging("ver-200", "ver-100"));
    apply(&h.reread(&obj), &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["RollbackEdgeContainerAppVersion"]);
}
