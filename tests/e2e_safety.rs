//! Rollout safety end to end (real API server, simulator, operator binary, kubectl): the
//! operator never claims more than the cloud shows, and pushes what the user declares.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::e2e::{Env, Operator, condition};

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

/// A Warning that repeats on the same object (here: credentials that stay missing, looked
/// at again on the stalled timer) is one Event series, not a new Event object per look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_warning_is_one_event_series() {
    let env = Env::start("safety-series", "services: []\n", 1.0, "routine").await;
    env.kubectl.apply(
        &json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaRoutineRollout",
            "metadata": {"name": "no-keys"},
            "spec": {
                "routine": "fn",
                "env": "production",
                "credentialsSecretRef": {"name": "missing"},
                "codeVersions": [{"codeVersion": "1723599747213377175", "percentage": 100}],
            },
        })
        .to_string(),
    );
    // The stalled timer is 2 s in these tests: wait for several looks.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = env.kubectl.get("events.events.k8s.io");
        let repeated: Vec<&Value> = events["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|e| {
                        e["regarding"]["name"] == "no-keys"
                            && e["reason"] == "CredentialsUnavailable"
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            repeated.len() <= 1,
            "one Event object per repeated Warning, got {}: {repeated:?}",
            repeated.len()
        );
        let count = repeated
            .first()
            .and_then(|e| e["series"]["count"].as_i64())
            .unwrap_or(0);
        if count >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Warning did not repeat as a series: {repeated:?}\n{}",
            env.operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The new version in the simulator: (image of the version being rolled out, replicas on
/// it, whether every replica runs it).
async fn rolling(env: &Env) -> (Value, i64, bool) {
    let state = env.sim.state().await;
    let svc = &state["services"]["cn-hangzhou/llm"];
    let target = svc["target"].as_i64().unwrap_or_default();
    let image = svc["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["version"] == target))
        .map(|v| v["config"]["containers"][0]["image"].clone())
        .unwrap_or_default();
    (
        image,
        svc["updated"].as_i64().unwrap_or_default(),
        svc["stable"] == svc["target"],
    )
}

/// Invariant: a partition applies to the version it was approved for. A partition
/// rollout completed with an approval ("0") for v2 does not let the next serviceConfig
/// push (v3, the approval left in the object as GitOps tools leave it) replace every
/// replica at once: v3 starts at `strategy.partition` (one of four replicas) and holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_partition_rollout_does_not_release_the_next_version_at_once() {
    let env = Env::start("safety-partition", SEED, 100.0, "eas").await;
    let manifest = |image: &str| {
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "llm"},
            "spec": {
                "region": "cn-hangzhou",
                "serviceName": "llm",
                "strategy": {"partition": "3"},
                "serviceConfig": {
                    "metadata": {"instance": 4, "labels": {"eas.aliyun.com/enable-rollout": "true"}},
                    "containers": [{"image": image}],
                },
            },
        })
        .to_string()
    };
    env.kubectl.apply(&manifest("llm:v2"));
    let held = ready(&env, 1).await;
    assert_eq!(held["status"]["updatedReplicas"], 1, "{}", held["status"]);
    let v2 = held["status"]["configVersion"]
        .as_str()
        .expect("status names the config version")
        .to_string();

    // A person approves "0" for v2: it completes.
    env.kubectl.patch(
        RES,
        &json!({"spec": {"promotion": {"version": v2, "partition": "0"}}}).to_string(),
    );
    let done = ready(&env, 2).await;
    assert_eq!(done["status"]["updatedReplicas"], 4, "{}", done["status"]);
    assert_eq!(rolling(&env).await, (json!("llm:v2"), 4, true));

    // The next release from Git: only the image changes; the approval for v2 stays.
    env.kubectl.apply(&manifest("llm:v3"));
    let deadline = Instant::now() + Duration::from_secs(90);
    let obj = loop {
        let (image, updated, everywhere) = rolling(&env).await;
        if image == "llm:v3" {
            assert!(
                updated <= 1 && !everywhere,
                "v3 went to {updated} replicas without an approval for it\n{}",
                env.operator.log_tail()
            );
        }
        let obj = env.kubectl.get(RES);
        if ready_for(&obj, 3) {
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
    assert_eq!(rolling(&env).await, (json!("llm:v3"), 1, false));
    assert_eq!(obj["status"]["cloudStrategy"], "partition=3");
    let v3 = obj["status"]["configVersion"].as_str().unwrap_or_default();
    assert_ne!(v3, v2);
    let message = obj["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("version: {v3}")), "{message}");

    // Approved for v3, it completes too.
    env.kubectl.patch(
        RES,
        &json!({"spec": {"promotion": {"version": v3, "partition": "0"}}}).to_string(),
    );
    ready(&env, 4).await;
    assert_eq!(rolling(&env).await, (json!("llm:v3"), 4, true));
}

/// Deleting a resource under `deletionPolicy: Delete` while its rollout is in progress
/// (here held at a partition: one of four replicas on v2) would let EAS finish the rollout
/// at once. The deletion waits and says why; switching to `Retain` lets it finish and
/// leaves the rollout where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_resource_mid_rollout_never_releases_the_rest_of_the_replicas() {
    let env = Env::start("safety-delete", SEED, 100.0, "eas").await;
    let manifest = json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": "llm"},
        "spec": {
            "region": "cn-hangzhou",
            "serviceName": "llm",
            "strategy": {"partition": "3"},
            "deletionPolicy": "Delete",
            "serviceConfig": {
                "metadata": {"instance": 4, "labels": {"eas.aliyun.com/enable-rollout": "true"}},
                "containers": [{"image": "llm:v2"}],
            },
        },
    });
    env.kubectl.apply(&manifest.to_string());
    let held = ready(&env, 1).await;
    assert_eq!(held["status"]["updatedReplicas"], 1, "{}", held["status"]);

    env.kubectl.must(&["delete", RES, "--wait=false"]);
    let waiting = env
        .wait_obj(
            "the deletion waits",
            RES,
            Duration::from_secs(30),
            |o| match condition(o, "Degraded") {
                Some((s, r)) if s == "True" && r == "DeletionWaitsForRollout" => Ok(()),
                other => Err(format!("Degraded {other:?}")),
            },
        )
        .await;
    assert!(
        waiting["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deletionPolicy: Retain"),
        "{}",
        waiting["status"]
    );
    // Several cleanup attempts later, still nothing deleted and nothing moved.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(env.kubectl.try_get(RES).is_some(), "the resource went");
    assert_eq!(env.sim.count("DeleteServiceRollout").await, 0);
    assert_eq!(rolling(&env).await, (json!("llm:v2"), 1, false));

    // Retain: the resource goes, the rollout stays held at its partition.
    env.kubectl
        .patch(RES, r#"{"spec":{"deletionPolicy":"Retain"}}"#);
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.kubectl.try_get(RES).is_some() {
        assert!(
            Instant::now() < deadline,
            "not deleted after Retain\n{}",
            env.operator.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(env.sim.count("DeleteServiceRollout").await, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rolling(&env).await, (json!("llm:v2"), 1, false));
}

/// A long run of 5xx answers does not leave an old Ready=True standing: after
/// `--unknown-after` (3 s here) Ready is Unknown with reason CloudUnreadable; once the
/// cloud answers again it is True again, without a spec change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_unknown_while_the_cloud_keeps_failing() {
    let mut env = Env::start("safety-unknown", SEED, 100.0, "eas").await;
    env.operator = Operator::start_with_args(
        &env.api,
        &env.sim,
        &env.namespace,
        "eas",
        &["--unknown-after", "3s"],
    );
    env.kubectl.apply(&manifest("llm:v2", json!({})));
    ready(&env, 1).await;

    // Every read fails from now on (the client's own retries included).
    env.sim
        .fault(json!({"action": "DescribeServiceRollout", "kind": "error", "status": 503, "code": "ServiceUnavailable"}))
        .await;
    let unknown = env
        .wait_obj(
            "Ready Unknown",
            RES,
            Duration::from_secs(60),
            |o| match condition(o, "Ready") {
                Some((s, r)) if s == "Unknown" && r == "CloudUnreadable" => Ok(()),
                other => Err(format!("Ready {other:?}")),
            },
        )
        .await;
    assert_eq!(unknown["metadata"]["generation"], 1);
    assert_eq!(
        condition(&unknown, "Reconciling"),
        Some(("True".to_string(), "CloudUnreadable".to_string())),
        "{}",
        unknown["status"]
    );

    env.sim.clear_faults().await;
    ready(&env, 1).await;
}

/// One mutation per intent: while the cloud acknowledges a pause but still reports Running
/// (the simulator's pause lag), the pause is sent once, not at every poll, and makes one
/// Event, not one per poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_pause_is_sent_once_while_the_cloud_still_reports_running() {
    let env = Env::start("safety-pause", SEED, 100.0, "eas").await;
    let manifest = |paused: bool| {
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "llm"},
            "spec": {
                "region": "cn-hangzhou",
                "serviceName": "llm",
                "paused": paused,
                // One replica per 36 s at this time scale: the rollout keeps Running.
                "strategy": {"batch": {"size": "1", "interval": "1h"}},
                "serviceConfig": {
                    "metadata": {"instance": 4, "labels": {"eas.aliyun.com/enable-rollout": "true"}},
                    "containers": [{"image": "llm:v2"}],
                },
            },
        })
        .to_string()
    };
    env.kubectl.apply(&manifest(false));
    env.wait_obj("Running", RES, Duration::from_secs(60), |o| {
        (o["status"]["phase"] == "Running")
            .then_some(())
            .ok_or_else(|| format!("phase {}", o["status"]["phase"]))
    })
    .await;
    env.sim
        .fault(json!({"kind": "pauseLag", "lagSeconds": 20}))
        .await;
    let before = env.sim.count("UpdateServiceRollout").await;
    env.kubectl.apply(&manifest(true));
    // Ten seconds of active polls (every second here) while the cloud reports Running.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let obj = env.kubectl.get(RES);
    assert_eq!(obj["status"]["phase"], "Running", "{}", obj["status"]);
    assert_eq!(
        env.sim.count("UpdateServiceRollout").await,
        before + 1,
        "the pause is sent once\n{}",
        env.operator.log_tail()
    );
    let events = env.kubectl.get("events.events.k8s.io");
    let pauses = events["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|e| {
                    e["reason"] == "UpdateServiceRollout"
                        && e["note"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("paused=true")
                })
                .count()
        })
        .unwrap_or_default();
    assert_eq!(pauses, 1, "{events}");
}

/// Only an invalid spec waits for a spec change: a permission refused (403, fixed later in
/// RAM) is Stalled, says when it is looked at again, and the rollout goes on once the
/// permission is there, with no one touching the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_fixed_later_is_picked_up_without_a_spec_change() {
    let env = Env::start("safety-forbidden", SEED, 100.0, "eas").await;
    env.sim
        .fault(json!({"action": "DescribeServiceRollout", "kind": "error", "status": 403, "code": "Forbidden.RAM"}))
        .await;
    env.kubectl.apply(&manifest("llm:v2", json!({})));
    let stalled = env
        .wait_obj("Stalled", RES, Duration::from_secs(30), |o| {
            match (condition(o, "Stalled"), condition(o, "Degraded")) {
                (Some((s, _)), Some((d, r)))
                    if s == "True" && d == "True" && r == "Forbidden_RAM" =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert!(
        stalled["status"]["nextCheckAt"].is_string(),
        "{}",
        stalled["status"]
    );
    assert_eq!(env.sim.count("UpdateService").await, 0);

    // The permission is granted in RAM.
    env.sim.clear_faults().await;
    let done = ready(&env, 1).await;
    assert_eq!(done["metadata"]["generation"], 1, "no spec change");
    assert_eq!(cloud_config(&env).await["containers"][0]["image"], "llm:v2");
}
