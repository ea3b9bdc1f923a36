//! The ownership marker in the cloud end to end (issue 14, item 4): an EAS service marked
//! by another cluster is left alone (Degraded OwnedElsewhere, no mutation in the
//! simulator's call log) until the resource adopts it; a resource recreated without its
//! status goes on with its own marker; `deletionPolicy: Delete` removes the marker.
//!
//! Each runs the operator binary (with `--cluster-id`) against the real API server and the
//! simulator, driven with kubectl; "another cluster" is a second operator with another
//! cluster id against the same simulator, or a marker seeded in the simulator.

mod support;

use std::time::Duration;

use alicloud_rollouts::simulator::SimConfig;
use serde_json::{Value, json};
use support::e2e::{Env, Kubectl, Operator, cluster, condition, namespace};

const KEY: &str = "alicloud-rollouts.owner";

fn seed(marker: Option<&str>) -> String {
    let labels = marker
        .map(|m| format!("    labels: {{\"{KEY}\": \"{m}\"}}\n"))
        .unwrap_or_default();
    format!(
        "services:\n  - name: llm-chat\n    region: cn-shanghai\n    replicas: 4\n    config:\n      \
         metadata: {{instance: 4, labels: {{\"eas.aliyun.com/enable-rollout\": \"true\"}}}}\n      \
         containers: [{{image: \"llm:v1\"}}]\n{labels}"
    )
}

fn manifest(name: &str, partition: &str, extra: Value) -> String {
    let mut spec = json!({
        "region": "cn-shanghai",
        "serviceName": "llm-chat",
        "strategy": {"partition": partition}
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": name},
        "spec": spec
    })
    .to_string()
}

fn ready(o: &Value) -> Result<(), String> {
    match condition(o, "Ready") {
        Some((s, _)) if s == "True" => Ok(()),
        other => Err(format!("Ready {other:?}")),
    }
}

fn owned_elsewhere(o: &Value) -> Result<(), String> {
    match condition(o, "Degraded") {
        Some((s, r)) if s == "True" && r == "OwnedElsewhere" => Ok(()),
        other => Err(format!("Degraded {other:?}")),
    }
}

async fn marker(env: &Env) -> Value {
    env.sim.state().await["services"]["cn-shanghai/llm-chat"]["labels"][KEY].clone()
}

/// The mutations the simulator applied, in order, as action names.
async fn mutations(env: &Env) -> Vec<String> {
    env.sim
        .call_log()
        .await
        .iter()
        .filter(|c| c["mutation"] == true && c["applied"] == true)
        .filter_map(|c| c["action"].as_str().map(str::to_string))
        .collect()
}

async fn start(test: &str, marker: Option<&str>, cluster_id: &str) -> Env {
    Env::start_with_args(
        test,
        &seed(marker),
        SimConfig {
            time_scale: 100.0,
            ..SimConfig::default()
        },
        "eas",
        &["--cluster-id", cluster_id],
    )
    .await
}

/// A service another cluster marked: Degraded naming that owner, nothing sent; then
/// `adoptFrom` naming exactly that marker takes it over: the marker is rewritten first,
/// then the rollout proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_marked_by_another_cluster_is_left_alone_until_adopted() {
    let theirs = "cluster-b/team-a/eas/chat";
    let env = start("cloud-owner-adopt", Some(theirs), "cluster-a").await;
    env.kubectl
        .apply(&manifest("chat", "1", json!({"deletionPolicy": "Delete"})));
    let obj = env
        .wait_obj(
            "Degraded OwnedElsewhere",
            "easservicerollout/chat",
            Duration::from_secs(60),
            owned_elsewhere,
        )
        .await;
    let message = obj["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(theirs), "the owner is named: {obj}");
    assert!(message.contains("adoptFrom"), "the way out is named: {obj}");
    // Several reconciles later (stalled recheck 2s): still nothing sent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(mutations(&env).await, Vec::<String>::new());
    assert_eq!(marker(&env).await, theirs);

    // An adoptFrom naming another owner takes nothing.
    env.kubectl.patch(
        "easservicerollout/chat",
        r#"{"spec":{"adoptFrom":"cluster-c/team-a/eas/chat"}}"#,
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(mutations(&env).await, Vec::<String>::new());

    let patch = json!({"spec": {"adoptFrom": theirs}}).to_string();
    env.kubectl.patch("easservicerollout/chat", &patch);
    let obj = env
        .wait_obj(
            "Ready after adopting",
            "easservicerollout/chat",
            Duration::from_secs(90),
            ready,
        )
        .await;
    let mine = format!("cluster-a/{}/eas/chat", env.namespace);
    assert_eq!(marker(&env).await, mine.as_str());
    assert_eq!(obj["status"]["cloudOwner"], mine.as_str(), "{obj}");
    let sent = mutations(&env).await;
    assert_eq!(
        sent.first().map(String::as_str),
        Some("UpdateServiceLabel"),
        "the marker is set before any other mutation: {sent:?}"
    );
    assert_eq!(
        sent.iter().filter(|a| *a == "UpdateServiceLabel").count(),
        1,
        "{sent:?}"
    );

    // deletionPolicy Delete: the rollout and the marker go with the resource.
    env.kubectl
        .must(&["delete", "easservicerollout/chat", "--wait=false"]);
    support::e2e::wait_for("the marker removed", Duration::from_secs(60), || async {
        let m = marker(&env).await;
        if m.is_null() {
            Ok(())
        } else {
            Err(m.to_string())
        }
    })
    .await;
    assert!(
        mutations(&env)
            .await
            .contains(&"DeleteServiceLabel".to_string())
    );
}

/// Two clusters (two operators with their own cluster ids, one simulator): the first takes
/// the service and marks it; the second stays out, naming the first, and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_cluster_leaves_the_first_clusters_service_alone() {
    let env = start("cloud-owner-two", None, "cluster-a").await;
    env.kubectl.apply(&manifest("chat", "1", json!({})));
    env.wait_obj(
        "Ready in cluster a",
        "easservicerollout/chat",
        Duration::from_secs(90),
        ready,
    )
    .await;
    let first = format!("cluster-a/{}/eas/chat", env.namespace);
    assert_eq!(marker(&env).await, first.as_str());
    let before = mutations(&env).await;

    let api = cluster();
    let ns_b = namespace("cloud-owner-two-b");
    let operator_b =
        Operator::start_with_args(&api, &env.sim, &ns_b, "eas", &["--cluster-id", "cluster-b"]);
    let kubectl_b = Kubectl::new(&api, &ns_b);
    kubectl_b.apply(&manifest("chat", "3", json!({})));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let obj = loop {
        let obj = kubectl_b.get("easservicerollout/chat");
        if owned_elsewhere(&obj).is_ok() {
            break obj;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cluster b never turned OwnedElsewhere: {obj}\n{}",
            operator_b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let message = obj["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&first), "cluster a is named: {obj}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        mutations(&env).await,
        before,
        "nothing sent since cluster b appeared\n{}",
        operator_b.log_tail()
    );
    assert_eq!(marker(&env).await, first.as_str());
    let state = env.sim.state().await;
    let rollout = state["services"]["cn-shanghai/llm-chat"]["rollout"].to_string();
    assert!(
        rollout.contains("\"1\""),
        "cluster a's partition holds: {rollout}"
    );
}

/// A resource recreated without its status (as from a backup that keeps no status) finds
/// its own marker and goes on: no OwnedElsewhere, the marker is not written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_restored_without_status_goes_on_with_its_own_marker() {
    let env = start("cloud-owner-restore", None, "cluster-a").await;
    env.kubectl.apply(&manifest("chat", "1", json!({})));
    env.wait_obj(
        "Ready",
        "easservicerollout/chat",
        Duration::from_secs(90),
        ready,
    )
    .await;
    let mine = format!("cluster-a/{}/eas/chat", env.namespace);
    assert_eq!(marker(&env).await, mine.as_str());

    // deletionPolicy Retain (the default): the marker stays with the service.
    env.kubectl.must(&["delete", "easservicerollout/chat"]);
    assert_eq!(marker(&env).await, mine.as_str());
    env.kubectl.apply(&manifest("chat", "2", json!({})));
    let obj = env
        .wait_obj(
            "Ready on partition 2",
            "easservicerollout/chat",
            Duration::from_secs(90),
            |o| {
                ready(o)?;
                if o["spec"]["strategy"]["partition"] != "2" || owned_elsewhere(o).is_ok() {
                    return Err(format!("not yet: {}", o["status"]));
                }
                Ok(())
            },
        )
        .await;
    assert_eq!(obj["status"]["cloudOwner"], mine.as_str(), "{obj}");
    support::e2e::wait_for("partition 2 sent", Duration::from_secs(60), || async {
        let s = env.sim.state().await["services"]["cn-shanghai/llm-chat"]["rollout"].to_string();
        if s.contains("\"2\"") { Ok(()) } else { Err(s) }
    })
    .await;
    let sent = mutations(&env).await;
    assert_eq!(
        sent.iter().filter(|a| *a == "UpdateServiceLabel").count(),
        1,
        "the marker is written once, by the first resource: {sent:?}"
    );
}
