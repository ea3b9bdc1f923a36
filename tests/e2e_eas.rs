//! EasServiceRollout end to end: real API server, simulator, operator binary, kubectl.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::e2e::{Env, condition, repo_root};

/// The services the examples point at, version 1 running.
const SEED: &str = r#"
services:
  - name: bert_embeddings
    region: cn-hangzhou
    replicas: 5
    config:
      metadata: {instance: 5, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "registry-vpc.cn-hangzhou.aliyuncs.com/ml-team/bert-embeddings:2.4.0", port: 8000}]
  - name: qwen_chat_prod
    region: cn-shanghai
    replicas: 8
    config:
      metadata: {instance: 8, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "qwen:v1"}]
"#;

/// 100x: the example's 5-minute batch interval takes 3 s.
const SCALE: f64 = 100.0;

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name)).expect("example readable")
}

fn updated(obj: &Value) -> i64 {
    obj["status"]["updatedReplicas"].as_i64().unwrap_or(-1)
}

fn phase(obj: &Value) -> String {
    obj["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn service<'a>(state: &'a Value, key: &str) -> &'a Value {
    &state["services"][key]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_rollout_follows_each_batch_pauses_resumes_and_becomes_ready() {
    let env = Env::start("eas-batch", SEED, SCALE, "eas").await;
    env.kubectl.apply(&example("eas-batch.yaml"));
    let res = "easservicerollout/bert-embeddings";

    // Status follows the batches: see at least two different partial counts.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "batches not seen: {seen:?}\n{}",
            env.operator.log_tail()
        );
        if let Some(obj) = env.kubectl.try_get(res) {
            let u = updated(&obj);
            if (1..5).contains(&u) {
                assert_eq!(phase(&obj), "Running", "{obj}");
                assert_eq!(
                    condition(&obj, "Progressing").map(|c| c.0).as_deref(),
                    Some("True")
                );
                assert_eq!(
                    condition(&obj, "Ready").map(|c| c.0).as_deref(),
                    Some("False")
                );
                seen.insert(u);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        env.sim.count("UpdateService").await,
        1,
        "the config is pushed once"
    );

    // Pause: no progress over several batch intervals.
    env.kubectl.patch(res, r#"{"spec":{"paused":true}}"#);
    let paused = env
        .wait_obj("Paused", res, Duration::from_secs(20), |o| {
            (phase(o) == "Paused" && condition(o, "Paused").map(|c| c.0).as_deref() == Some("True"))
                .then_some(())
                .ok_or_else(|| "not paused yet".into())
        })
        .await;
    let held = updated(&paused);
    assert!(held < 5, "paused before completion: {paused}");
    let cloud_before =
        service(&env.sim.state().await, "cn-hangzhou/bert_embeddings")["updated"].clone();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let obj = env.kubectl.get(res);
    assert_eq!(updated(&obj), held, "no progress while paused: {obj}");
    assert_eq!(
        service(&env.sim.state().await, "cn-hangzhou/bert_embeddings")["updated"],
        cloud_before,
        "the cloud holds while paused"
    );

    // Resume; `kubectl wait --for=condition=Ready` returns once the rollout completes.
    env.kubectl.patch(res, r#"{"spec":{"paused":false}}"#);
    let out = env
        .kubectl
        .run(&["wait", "--for=condition=Ready", "--timeout=90s", res]);
    assert!(
        out.status.success(),
        "kubectl wait: {}\n{}",
        support::e2e::text(&out),
        env.operator.log_tail()
    );
    let obj = env.kubectl.get(res);
    assert_eq!(phase(&obj), "Completed", "{obj}");
    assert_eq!(updated(&obj), 5);
    assert_eq!(
        obj["status"]["observedGeneration"],
        obj["metadata"]["generation"]
    );
    assert_eq!(obj["status"]["cloudRef"], "cn-hangzhou/bert_embeddings");
    assert_eq!(
        obj["status"]["currentRevision"],
        obj["status"]["updateRevision"]
    );

    let calls = env.sim.calls().await;
    assert_eq!(calls.get("CreateServiceRollout"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("UpdateService"), Some(&1), "{calls:?}");
    assert_eq!(
        calls.get("UpdateServiceRollout"),
        Some(&2),
        "pause + resume: {calls:?}"
    );

    // /healthz and /metrics: reconciles, mutations and the cloud client's calls.
    let addr = env.operator.metrics_addr().await;
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz answers");
    assert!(health.status().is_success());
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    for needle in [
        "alicloud_rollouts_reconciles_total{kind=\"eas\"}",
        "alicloud_rollouts_cloud_mutations_total{kind=\"eas\",action=\"UpdateService\"} 1",
        "alicloud_rollouts_reconcile_duration_seconds_bucket",
        "alicloud_rollouts_cloud_calls_total",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }

    // Events record each mutation with the cloud RequestId.
    let events = env
        .kubectl
        .must(&["get", "events.events.k8s.io", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).expect("events JSON");
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == "bert-embeddings")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for r in [
        "CreateServiceRollout",
        "UpdateService",
        "UpdateServiceRollout",
    ] {
        assert!(reasons.contains(&r), "event {r} missing: {reasons:?}");
    }
    // Pause and resume are two Events, each with its own note and RequestId.
    let notes: Vec<&str> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == "bert-embeddings")
        .filter(|e| e["reason"] == "UpdateServiceRollout")
        .filter_map(|e| e["note"].as_str())
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("paused=true")), "{notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("paused=false")),
        "{notes:?}"
    );
    assert!(notes.iter().all(|n| n.contains("RequestId")), "{notes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_advances_rolls_back_and_unreadable_credentials_degrade() {
    let env = Env::start("eas-partition", SEED, SCALE, "eas").await;
    let res = "easservicerollout/qwen-chat";

    // The example names a credentials Secret; this API server has none.
    env.kubectl.apply(&example("eas-partition.yaml"));
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

    // Use the operator's own credentials and push v2: 4 of 8 stay on v1.
    env.kubectl.patch(
        res,
        r#"{"spec":{"credentialsSecretRef":null,"serviceConfig":{"containers":[{"image":"qwen:v2"}]}}}"#,
    );
    let obj = env
        .wait_obj(
            "4 of 8 updated, Ready at the partition",
            res,
            Duration::from_secs(40),
            |o| {
                (updated(o) == 4 && condition(o, "Ready").map(|c| c.0).as_deref() == Some("True"))
                    .then_some(())
                    .ok_or_else(|| "not at the partition".into())
            },
        )
        .await;
    assert_eq!(
        condition(&obj, "Degraded").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(obj["status"]["cloudStrategy"], "partition=4");

    // Raise the partition to every replica: the updated ones go back to v1.
    env.kubectl
        .patch(res, r#"{"spec":{"strategy":{"partition":"8"}}}"#);
    env.wait_obj(
        "rolled back to 0 updated",
        res,
        Duration::from_secs(40),
        |o| {
            (updated(o) == 0)
                .then_some(())
                .ok_or_else(|| "still updated".into())
        },
    )
    .await;
    let state = env.sim.state().await;
    assert_eq!(service(&state, "cn-shanghai/qwen_chat_prod")["updated"], 0);

    // Approve "0" for this version: complete. (With a serviceConfig, strategy.partition is
    // where every new version starts; the partition of one version is approved by naming it.)
    let version = obj["status"]["configVersion"]
        .as_str()
        .expect("status names the config version")
        .to_string();
    env.kubectl.patch(
        res,
        &format!(r#"{{"spec":{{"promotion":{{"version":"{version}","partition":"0"}}}}}}"#),
    );
    let obj = env
        .wait_obj("Completed", res, Duration::from_secs(40), |o| {
            (phase(o) == "Completed" && updated(o) == 8)
                .then_some(())
                .ok_or_else(|| "not completed".into())
        })
        .await;
    assert_eq!(
        condition(&obj, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert_eq!(env.sim.count("UpdateService").await, 1);

    // A terminal cloud error: Degraded with the cloud's code and message, no retry until
    // the spec changes.
    env.sim
        .fault(json!({"action": "UpdateServiceRollout", "kind": "error", "status": 400, "code": "InvalidParameter", "count": 1}))
        .await;
    let before = env.sim.count("UpdateServiceRollout").await;
    env.kubectl
        .patch(res, r#"{"spec":{"promotion":{"partition":"2"}}}"#);
    let obj = env
        .wait_obj(
            "Degraded InvalidParameter",
            res,
            Duration::from_secs(30),
            |o| match condition(o, "Degraded") {
                Some((s, r)) if s == "True" && r == "InvalidParameter" => Ok(()),
                other => Err(format!("Degraded {other:?}")),
            },
        )
        .await;
    assert!(
        obj["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("InvalidParameter"),
        "{obj}"
    );
    assert!(obj["status"]["lastRequestId"].is_string(), "{obj}");
    // Longer than the settled poll (5 s here).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        env.sim.count("UpdateServiceRollout").await,
        before + 1,
        "no retry"
    );
    // A spec change is acted on (the rollout is complete, so only the strategy changes).
    env.kubectl
        .patch(res, r#"{"spec":{"promotion":{"partition":"3"}}}"#);
    let obj = env
        .wait_obj("partition 3 applied", res, Duration::from_secs(30), |o| {
            (o["status"]["cloudStrategy"] == "partition=3"
                && condition(o, "Degraded").map(|c| c.0).as_deref() == Some("False"))
            .then_some(())
            .ok_or_else(|| "not applied".into())
        })
        .await;
    assert_eq!(env.sim.count("UpdateServiceRollout").await, before + 2);
    assert_eq!(
        condition(&obj, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_delete_removes_the_cloud_rollout_and_retain_keeps_it() {
    let env = Env::start("eas-delete", SEED, SCALE, "eas").await;
    let manifest = |name: &str, service: &str, region: &str, policy: &str| {
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": name},
            "spec": {"region": region, "serviceName": service, "strategy": {"partition": "0"}, "deletionPolicy": policy}
        })
        .to_string()
    };
    env.kubectl.apply(&manifest(
        "gone",
        "bert_embeddings",
        "cn-hangzhou",
        "Delete",
    ));
    env.kubectl
        .apply(&manifest("kept", "qwen_chat_prod", "cn-shanghai", "Retain"));
    for res in ["easservicerollout/gone", "easservicerollout/kept"] {
        env.wait_obj("Ready", res, Duration::from_secs(30), |o| {
            (condition(o, "Ready").map(|c| c.0).as_deref() == Some("True"))
                .then_some(())
                .ok_or_else(|| "not ready".into())
        })
        .await;
    }
    let state = env.sim.state().await;
    assert!(!service(&state, "cn-hangzhou/bert_embeddings")["rollout"].is_null());
    assert!(!service(&state, "cn-shanghai/qwen_chat_prod")["rollout"].is_null());

    env.kubectl.must(&[
        "delete",
        "easservicerollout/gone",
        "easservicerollout/kept",
        "--timeout=30s",
    ]);
    let state = env.sim.state().await;
    assert!(
        service(&state, "cn-hangzhou/bert_embeddings")["rollout"].is_null(),
        "Delete removes the cloud rollout: {state}"
    );
    assert!(
        !service(&state, "cn-shanghai/qwen_chat_prod")["rollout"].is_null(),
        "Retain leaves it: {state}"
    );
    assert_eq!(env.sim.count("DeleteServiceRollout").await, 1);

    // A cloud rollout already gone never blocks deletion. The retained service still
    // carries the ownership marker of `kept`: a new resource takes it over only by naming
    // that marker in spec.adoptFrom, which the refusal shows.
    env.kubectl.apply(&manifest(
        "gone-twice",
        "qwen_chat_prod",
        "cn-shanghai",
        "Delete",
    ));
    let marker_of = |o: &serde_json::Value| {
        let message = o["status"]["message"].as_str().unwrap_or_default();
        message
            .split_once("spec.adoptFrom: \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(marker, _)| marker.to_string())
            .filter(|m| m.ends_with("/eas/kept"))
            .ok_or_else(|| format!("not refused yet: {message}"))
    };
    let refused = env
        .wait_obj(
            "OwnedElsewhere",
            "easservicerollout/gone-twice",
            Duration::from_secs(30),
            |o| marker_of(o).map(|_| ()),
        )
        .await;
    let marker = marker_of(&refused).expect("the refusal names the marker");
    env.kubectl.must(&[
        "patch",
        "easservicerollout/gone-twice",
        "--type",
        "merge",
        "-p",
        &serde_json::json!({"spec": {"adoptFrom": marker}}).to_string(),
    ]);
    env.wait_obj(
        "Ready",
        "easservicerollout/gone-twice",
        Duration::from_secs(30),
        |o| {
            (condition(o, "Ready").map(|c| c.0).as_deref() == Some("True"))
                .then_some(())
                .ok_or_else(|| "not ready".into())
        },
    )
    .await;
    // Someone removes the cloud rollout behind the operator's back (two resources can no
    // longer share one service: issue 8, 1g).
    let outside = alicloud_rollouts::cloud::CloudClient::new(
        alicloud_rollouts::cloud::ClientConfig {
            eas_endpoint: Some(env.sim.url()),
            ..Default::default()
        },
        std::sync::Arc::new(alicloud_rollouts::cloud::StaticProvider(
            alicloud_rollouts::cloud::Credentials::new(
                support::e2e::SIM_KEY_ID,
                support::e2e::SIM_KEY_SECRET,
            ),
        )),
    )
    .expect("a client");
    use alicloud_rollouts::cloud::CloudApi as _;
    outside
        .delete_service_rollout("cn-shanghai", "qwen_chat_prod")
        .await
        .expect("deleted outside the operator");
    assert!(service(&env.sim.state().await, "cn-shanghai/qwen_chat_prod")["rollout"].is_null());
    env.kubectl
        .must(&["delete", "easservicerollout/gone-twice", "--timeout=30s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_mid_rollout_finishes_without_duplicate_mutations() {
    let mut env = Env::start("eas-restart", SEED, SCALE, "eas").await;
    env.kubectl.apply(&example("eas-batch.yaml"));
    let res = "easservicerollout/bert-embeddings";
    env.wait_obj("mid-rollout", res, Duration::from_secs(40), |o| {
        (1..5)
            .contains(&updated(o))
            .then_some(())
            .ok_or_else(|| "not moving".into())
    })
    .await;
    env.operator.kill();
    // While it is down the cloud goes on; then a fresh process takes over.
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.operator.restart();
    let out = env
        .kubectl
        .run(&["wait", "--for=condition=Ready", "--timeout=90s", res]);
    assert!(
        out.status.success(),
        "{}\n{}",
        support::e2e::text(&out),
        env.operator.log_tail()
    );
    let calls = env.sim.calls().await;
    assert_eq!(calls.get("CreateServiceRollout"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("UpdateService"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("UpdateServiceRollout"), None, "{calls:?}");
    let state = env.sim.state().await;
    let versions = service(&state, "cn-hangzhou/bert_embeddings")["versions"]
        .as_array()
        .map(Vec::len);
    assert_eq!(versions, Some(2), "exactly one new version: {state}");

    // The worst case of a crash between the push and the status write: the status records
    // are lost. A fresh process reads the cloud's config and does not push it again.
    env.operator.kill();
    env.kubectl.must(&[
        "patch",
        res,
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"appliedServiceConfigHash":null,"appliedPaused":null}}"#,
    ]);
    let wiped = env.kubectl.get(res);
    assert!(
        wiped["status"]["appliedServiceConfigHash"].is_null(),
        "{wiped}"
    );
    env.operator.restart();
    env.wait_obj(
        "the hash recorded again",
        res,
        Duration::from_secs(30),
        |o| {
            o["status"]["appliedServiceConfigHash"]
                .is_string()
                .then_some(())
                .ok_or_else(|| "not recorded".into())
        },
    )
    .await;
    // Longer than the settled poll (5 s here): still one push, one create, no update.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let calls = env.sim.calls().await;
    assert_eq!(calls.get("UpdateService"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("CreateServiceRollout"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("UpdateServiceRollout"), None, "{calls:?}");
    assert!(
        calls.get("DescribeService").is_some_and(|n| *n >= 1),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_faults_delay_but_do_not_break_a_rollout() {
    // A 5xx on a mutation leaves its outcome unknown: it is sent again only after the
    // grace period, shortened here.
    let env = Env::start_with_args(
        "eas-faults",
        SEED,
        alicloud_rollouts::simulator::SimConfig {
            time_scale: SCALE,
            ..Default::default()
        },
        "eas",
        &["--mutation-grace", "2s"],
    )
    .await;
    // A burst of 5xx on every action, then throttling of the mutations.
    env.sim
        .fault(json!({"action": "*", "kind": "error", "status": 503, "count": 12}))
        .await;
    env.sim
        .fault(json!({"action": "UpdateService", "kind": "throttle", "retryAfterSeconds": 1, "count": 6}))
        .await;
    env.sim
        .fault(json!({"action": "CreateServiceRollout", "kind": "error", "status": 500, "code": "InternalError", "count": 6}))
        .await;
    env.kubectl.apply(&example("eas-batch.yaml"));
    let res = "easservicerollout/bert-embeddings";
    let out = env
        .kubectl
        .run(&["wait", "--for=condition=Ready", "--timeout=120s", res]);
    assert!(
        out.status.success(),
        "{}\n{}",
        support::e2e::text(&out),
        env.operator.log_tail()
    );
    let obj = env.kubectl.get(res);
    assert_eq!(phase(&obj), "Completed");
    assert_eq!(
        condition(&obj, "Degraded").map(|c| c.0).as_deref(),
        Some("False")
    );
    let state = env.sim.state().await;
    let versions = service(&state, "cn-hangzhou/bert_embeddings")["versions"]
        .as_array()
        .map(Vec::len);
    assert_eq!(
        versions,
        Some(2),
        "one new version despite retries: {state}"
    );
    // The faults really fired: rejected calls are counted too.
    let calls = env.sim.calls().await;
    assert!(
        calls
            .get("CreateServiceRollout")
            .copied()
            .unwrap_or_default()
            >= 7,
        "6 injected 500s, each followed by a read, then success: {calls:?}"
    );
    assert!(
        calls.get("UpdateService").copied().unwrap_or_default() >= 7,
        "6 throttled pushes then success: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_followed_by_a_failed_push_is_still_owned_and_cleaned_up() {
    let env = Env::start("eas-orphan", SEED, SCALE, "eas").await;
    // The config push is refused for good: the rollout created just before it must not be
    // forgotten by the resource.
    env.sim
        .fault(json!({"action": "UpdateService", "kind": "error", "status": 400, "code": "InvalidParameter"}))
        .await;
    env.kubectl.apply(&example("eas-batch.yaml"));
    let res = "easservicerollout/bert-embeddings";
    let obj = env
        .wait_obj(
            "Degraded by the push",
            res,
            Duration::from_secs(30),
            |o| match condition(o, "Degraded") {
                Some((s, r)) if s == "True" && r == "InvalidParameter" => Ok(()),
                other => Err(format!("Degraded {other:?}")),
            },
        )
        .await;
    assert_eq!(env.sim.count("CreateServiceRollout").await, 1);
    assert_eq!(
        obj["status"]["cloudRef"], "cn-hangzhou/bert_embeddings",
        "ownership recorded before the first mutation: {obj}"
    );
    // deletionPolicy Delete: deleting the resource removes the rollout it created.
    env.kubectl.must(&["delete", res, "--timeout=30s"]);
    assert_eq!(env.sim.count("DeleteServiceRollout").await, 1);
}
