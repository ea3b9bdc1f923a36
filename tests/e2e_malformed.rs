//! An object that slipped past validation (stored before the CRD's schema was installed)
//! never stops the operator: it gets a Degraded condition and a Warning Event saying what
//! to fix, and the other objects keep rolling out. (When the API server refuses any write
//! to such an object, because a CEL rule cannot even evaluate it, only the Event and the
//! log can say so; the operator goes on all the same.)
//!
//! This binary loosens the EasServiceRollout CRD for a moment, so it holds one test only
//! (test binaries run one after another) and restores the real CRD before going on.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::e2e::{Env, apply_crd, condition, permissive_crd, repo_root, until_apply};

const SEED: &str = r#"
services:
  - name: qwen_chat_prod
    region: cn-shanghai
    replicas: 4
    config:
      metadata: {instance: 4, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "registry.cn-shanghai.aliyuncs.com/llm/qwen-chat:1.0"}]
"#;

const BROKEN: &str = r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: broken
spec:
  region: cn-shanghai
  serviceName: qwen_chat_prod
  strategy:
    partition: "0"
  paused: "yes"
"#;

const GOOD: &str = r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: good
spec:
  region: cn-shanghai
  serviceName: qwen_chat_prod
  strategy:
    partition: "0"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_object_is_reported_and_never_stops_the_others() {
    let env = Env::start("malformed", SEED, 1.0, "eas").await;

    // Store an object the operator cannot read, as an older CRD without validation would have.
    let permissive = serde_json::to_string(&permissive_crd()).expect("JSON");
    apply_crd(&env, &permissive);
    until_apply(&env, BROKEN, true).await;
    let real = std::fs::read_to_string(repo_root().join("crds/easservicerollouts.yaml"))
        .expect("generated CRD readable");
    apply_crd(&env, &real);
    // The real schema is back: the same manifest is refused now.
    until_apply(
        &env,
        &BROKEN.replace("name: broken", "name: broken-again"),
        false,
    )
    .await;

    env.kubectl.apply(GOOD);
    env.wait_obj(
        "good rollout Ready",
        "easservicerollout/good",
        Duration::from_secs(60),
        |o| match condition(o, "Ready") {
            Some((s, _)) if s == "True" => Ok(()),
            other => Err(format!("Ready {other:?}")),
        },
    )
    .await;

    let broken = env
        .wait_obj(
            "broken marked Degraded",
            "easservicerollout/broken",
            Duration::from_secs(30),
            |o| match condition(o, "Degraded") {
                Some((s, r)) if s == "True" && r == "InvalidObject" => Ok(()),
                other => Err(format!("Degraded {other:?}")),
            },
        )
        .await;
    let message = broken["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("invalid type") && message.contains("fix the spec"),
        "the message says what is wrong and what to do: {message}"
    );

    let events: Value =
        serde_json::from_str(
            &env.kubectl
                .must(&["get", "events.events.k8s.io", "-o", "json"]),
        )
        .expect("events as JSON");
    let warned = events["items"].as_array().into_iter().flatten().any(|e| {
        e["regarding"]["name"] == "broken"
            && e["reason"] == "InvalidObject"
            && e["type"] == "Warning"
    });
    assert!(warned, "a Warning Event names the broken object: {events}");

    // The operator is still up, and the broken object reached no cloud call.
    assert!(
        env.operator
            .log_tail()
            .contains("skipping an object that does not parse")
    );
    assert_eq!(
        env.sim.count("CreateServiceRollout").await,
        1,
        "only the good object"
    );
    env.kubectl
        .must(&["delete", "easservicerollout/broken", "--wait=false"]);
}
