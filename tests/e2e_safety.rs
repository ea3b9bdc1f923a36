//! Rollout safety end to end (real API server, simulator, operator binary, kubectl): the
//! operator never claims more than the cloud shows, and pushes what the user declares.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::e2e::{Env, condition};

const SEED: &str = r#"
services:
  - name: llm
    region: cn-hangzhou
    replicas: 4
    config:
      metadata: {instance: 4, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "llm:v1"}]
"#;

const RES: &str = "easservicerollout/llm";

fn manifest(image: &str, extra_metadata: Value) -> String {
    let mut metadata = json!({"instance": 4, "labels": {"eas.aliyun.com/enable-rollout": "true"}});
    if let (Some(m), Some(e)) = (metadata.as_object_mut(), extra_metadata.as_object()) {
        m.extend(e.clone());
    }
    json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": "llm"},
        "spec": {
            "region": "cn-hangzhou",
            "serviceName": "llm",
            "strategy": {"batch": {"size": "2", "interval": "5m"}},
            "serviceConfig": {"metadata": metadata, "containers": [{"image": image}]},
        },
    })
    .to_string()
}

fn ready_for(obj: &Value, generation: i64) -> bool {
    obj["status"]["observedGeneration"] == generation
        && condition(obj, "Ready").map(|c| c.0).as_deref() == Some("True")
}

/// The config of the service's newest version in the simulator.
async fn cloud_config(env: &Env) -> Value {
    let state = env.sim.state().await;
    state["services"]["cn-hangzhou/llm"]["versions"]
        .as_array()
        .and_then(|v| v.last())
        .map(|v| v["config"].clone())
        .unwrap_or_default()
}

async fn ready(env: &Env, generation: i64) -> Value {
    env.wait_obj("Ready", RES, Duration::from_secs(90), |o| {
        ready_for(o, generation)
            .then_some(())
            .ok_or_else(|| "not Ready".to_string())
    })
    .await
}

/// Invariant: Ready=True for a generation only when the cloud shows that generation's
/// target. With a cloud whose reads lag behind its writes (as a read replica does), the
/// poll right after a push still sees the previous version Completed; that is not Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_for_the_pushed_version_behind_a_lagging_cloud() {
    let env = Env::start("safety-ready", SEED, 100.0, "eas").await;
    env.kubectl.apply(&manifest("llm:v2", json!({})));
    let first = ready(&env, 1).await;
    let old_revision = first["status"]["updateRevision"].clone();
    assert!(old_revision.is_string(), "{first}");

    // From now on every read shows the cloud as it was 4 s ago.
    env.sim
        .fault(json!({"kind": "readLag", "action": "*", "lagSeconds": 4}))
        .await;
    env.kubectl.apply(&manifest("llm:v3", json!({})));
    let deadline = Instant::now() + Duration::from_secs(90);
    let obj = loop {
        let obj = env.kubectl.get(RES);
        if ready_for(&obj, 2) {
            break obj;
        }
        assert!(
            Instant::now() < deadline,
            "never Ready: {}\n{}",
            obj["status"],
            env.operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(
        obj["status"]["updateRevision"], old_revision,
        "Ready while the cloud still showed the previous version: {}",
        obj["status"]
    );
    assert_eq!(obj["status"]["updatedReplicas"], 4, "{}", obj["status"]);
    let config = cloud_config(&env).await;
    assert_eq!(config["containers"][0]["image"], "llm:v3", "{config}");
}

/// Invariant: the operator pushes the serviceConfig the user declares, removals included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_removed_from_service_config_is_removed_from_the_service() {
    let env = Env::start("safety-removal", SEED, 100.0, "eas").await;
    env.kubectl.apply(&manifest("llm:v2", json!({"gpu": 1})));
    ready(&env, 1).await;
    assert_eq!(cloud_config(&env).await["metadata"]["gpu"], 1);
    let pushes = env.sim.count("UpdateService").await;

    // The same config without metadata.gpu.
    env.kubectl.apply(&manifest("llm:v2", json!({})));
    ready(&env, 2).await;
    let config = cloud_config(&env).await;
    assert!(
        config["metadata"].get("gpu").is_none(),
        "gpu is still set in the cloud: {config}"
    );
    assert_eq!(
        config["metadata"]["instance"], 4,
        "the rest stays: {config}"
    );
    assert_eq!(env.sim.count("UpdateService").await, pushes + 1, "one push");
}

/// Invariant: only an invalid spec waits for a spec change. A routine that does not exist
/// yet (another tool creates it a little later) is Stalled, says when it is looked at again,
/// and is rolled out once it exists, with no one touching the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routine_created_after_the_manifest_is_picked_up_without_a_spec_change() {
    let env = Env::start("safety-late", "services: []\n", 1.0, "routine").await;
    env.kubectl.apply(
        &json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaRoutineRollout",
            "metadata": {"name": "late"},
            "spec": {
                "routine": "late-fn",
                "env": "production",
                "codeVersions": [{"codeVersion": "1723599747213377175", "percentage": 100}],
            },
        })
        .to_string(),
    );
    let res = "esaroutinerollout/late";
    let stalled = env
        .wait_obj(
            "Stalled",
            res,
            Duration::from_secs(30),
            |o| match condition(o, "Stalled") {
                Some((s, _)) if s == "True" => Ok(()),
                other => Err(format!("Stalled {other:?}")),
            },
        )
        .await;
    assert!(
        stalled["status"]["nextCheckAt"].is_string(),
        "{}",
        stalled["status"]
    );
    assert_eq!(env.sim.count("CreateRoutineCodeDeployment").await, 0);
    let generation = stalled["metadata"]["generation"].clone();

    env.sim
        .seed("routines:\n  - name: late-fn\n    codeVersions: [\"1723599747213377175\"]\n")
        .await;
    let done = env
        .wait_obj("Ready", res, Duration::from_secs(60), |o| {
            (condition(o, "Ready").map(|c| c.0).as_deref() == Some("True"))
                .then_some(())
                .ok_or_else(|| "not Ready".to_string())
        })
        .await;
    assert_eq!(done["metadata"]["generation"], generation, "no spec change");
    assert_eq!(
        condition(&done, "Stalled").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(env.sim.count("CreateRoutineCodeDeployment").await, 1);
}
