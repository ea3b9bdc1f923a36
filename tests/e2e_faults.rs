//! The cloud-side fault campaign (issue 10, item 4), at small size: one test per fault the
//! simulator can inject (5xx bursts, throttling, latency spikes, dropped connections,
//! headers then a stall, truncated, wrongly typed and enormous bodies), each against the
//! real API server and the operator binary with one rollout of every kind.
//!
//! Every fault is injected twice over: on every call for a while (reads and mutations
//! alike, before the call takes effect), and once on each mutation the rollouts need, after
//! the call took effect where the fault allows it (the answer lost or damaged on its way
//! back, so the operator cannot know whether the mutation happened). After the faults:
//! - every rollout reaches the state its spec declares (Ready for its generation, and the
//!   simulator's state shows it);
//! - the simulator's call log shows each mutation applied exactly once: no duplicate, and
//!   nothing the spec did not ask for;
//! - the test prints how many faults were injected and survived.
//!
//! A longer soak is the same faults with a `rate` and no `count` (docs/simulator.md).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use alicloud_rollouts::simulator::SimConfig;
use serde_json::{Value, json};
use support::e2e::{Env, condition};

const CANARY: &str = "1723688023417750321";
const APP: &str = "app-880688675783794688";
const V2: &str = "ver-879626371616514048";

const SEED: &str = r#"
services:
  - name: svc
    region: cn-hangzhou
    replicas: 2
    config:
      metadata: {instance: 2, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "svc:v1"}]
routines:
  - name: fn
    codeVersions: ["1723599747213377175", "1723688023417750321"]
    deployed: "1723599747213377175"
apps:
  - id: app-880688675783794688
    versions: [ver-879626371616514000, ver-879626371616514048]
    deployed: ver-879626371616514000
"#;

/// The mutations the three rollouts need, each exactly once.
const MUTATIONS: [&str; 5] = [
    // The ownership marker, set before the service's first change (docs/ownership.md).
    "UpdateServiceLabel",
    "CreateServiceRollout",
    "UpdateService",
    "CreateRoutineCodeDeployment",
    "PublishEdgeContainerAppVersion",
];

const RESOURCES: [&str; 3] = [
    "easservicerollout/svc",
    "esaroutinerollout/fn",
    "esacontainerapprollout/app",
];

fn manifests() -> [Value; 3] {
    [
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "svc"},
            "spec": {
                "region": "cn-hangzhou",
                "serviceName": "svc",
                "strategy": {"batch": {"size": "100%"}},
                "serviceConfig": {
                    "metadata": {"instance": 2, "labels": {"eas.aliyun.com/enable-rollout": "true"}},
                    "containers": [{"image": "svc:v2"}],
                },
            },
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaRoutineRollout",
            "metadata": {"name": "fn"},
            "spec": {
                "routine": "fn",
                "env": "production",
                "codeVersions": [{"codeVersion": CANARY, "percentage": 100}],
            },
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaContainerAppRollout",
            "metadata": {"name": "app"},
            "spec": {"appId": APP, "versionId": V2, "env": "production", "percentage": 100},
        }),
    ]
}

/// Run the campaign of one fault: `on_all` fires on the first `count` calls of any
/// action; `on_mutation` once on each mutation the rollouts need.
async fn campaign(name: &str, on_all: Value, count: u64, on_mutation: Value) {
    let env = Env::start_with_args(
        &format!("faults-{}", name.to_ascii_lowercase()),
        SEED,
        SimConfig {
            time_scale: 100.0,
            ..SimConfig::default()
        },
        "eas,routine,containerapp",
        // Short enough that a stall or a latency spike times out, and that a mutation
        // with an unknown outcome is looked at again within seconds.
        &["--cloud-call-timeout", "1s", "--mutation-grace", "3s"],
    )
    .await;
    // The mutation faults first: where both match, the first added fires.
    for action in MUTATIONS {
        let mut fault = on_mutation.clone();
        fault["action"] = json!(action);
        fault["count"] = json!(1);
        env.sim.fault(fault).await;
    }
    let mut burst = on_all;
    burst["count"] = json!(count);
    env.sim.fault(burst).await;

    for manifest in manifests() {
        env.kubectl.apply(&manifest.to_string());
    }
    for resource in RESOURCES {
        env.wait_obj(
            "Ready for its generation",
            resource,
            Duration::from_secs(150),
            |o| {
                let ready = condition(o, "Ready").map(|c| c.0);
                (ready.as_deref() == Some("True")
                    && o["status"]["observedGeneration"] == o["metadata"]["generation"])
                    .then_some(())
                    .ok_or_else(|| format!("Ready {ready:?}"))
            },
        )
        .await;
    }

    // The cloud shows what each spec declares.
    let state = env.sim.state().await;
    let service = &state["services"]["cn-hangzhou/svc"];
    let newest = service["versions"]
        .as_array()
        .and_then(|v| v.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        newest["config"]["containers"][0]["image"], "svc:v2",
        "{name}: {service}"
    );
    let state_text = state.to_string();
    assert!(
        state_text.contains(CANARY) && state_text.contains(V2),
        "{name}: {state}"
    );
    for resource in RESOURCES {
        let obj = env.kubectl.get(resource);
        assert_eq!(
            condition(&obj, "Degraded").map(|c| c.0).as_deref(),
            Some("False"),
            "{name}: {resource}: {}",
            obj["status"]
        );
    }
    let routine = env.kubectl.get("esaroutinerollout/fn");
    assert_eq!(
        routine["status"]["codeVersions"],
        json!([{"codeVersion": CANARY, "percentage": 100}]),
        "{name}: {}",
        routine["status"]
    );
    let app = env.kubectl.get("esacontainerapprollout/app");
    assert!(
        app["status"].to_string().contains(V2),
        "{name}: {}",
        app["status"]
    );

    // The call log: each mutation applied exactly once, none twice, nothing else applied.
    let log = env.sim.call_log().await;
    let applied: Vec<&Value> = log.iter().filter(|r| r["applied"] == true).collect();
    let mut by_request: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut by_action: BTreeMap<String, usize> = BTreeMap::new();
    for r in &applied {
        let key = (
            r["action"].as_str().unwrap_or_default().to_string(),
            r["target"].as_str().unwrap_or_default().to_string(),
            r["digest"].as_str().unwrap_or_default().to_string(),
        );
        *by_request.entry(key).or_default() += 1;
        *by_action
            .entry(r["action"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let duplicated: Vec<_> = by_request.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "{name}: a mutation was applied twice: {duplicated:?}"
    );
    let want: BTreeMap<String, usize> = MUTATIONS.iter().map(|a| (a.to_string(), 1)).collect();
    assert_eq!(
        by_action, want,
        "{name}: the applied mutations are the ones the specs ask for"
    );

    // Every fault fired; all of them survived.
    let faults = env
        .sim
        .faults()
        .await
        .as_array()
        .cloned()
        .unwrap_or_default();
    let injected: u64 = faults.iter().filter_map(|f| f["fired"].as_u64()).sum();
    for f in &faults {
        assert!(
            f["fired"].as_u64().unwrap_or(0) >= 1,
            "{name}: a fault never fired: {f}"
        );
    }
    let on_mutations = log
        .iter()
        .filter(|r| r["mutation"] == true && r["faults"].as_array().is_some_and(|f| !f.is_empty()))
        .count();
    println!(
        "fault campaign {name}: {injected} faults injected ({on_mutations} on mutations), {injected} survived: \
         {} rollouts reached their declared state, {} calls, {} mutations applied once each",
        RESOURCES.len(),
        log.len(),
        applied.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_bursts() {
    campaign(
        "5xx",
        json!({"kind": "error", "status": 503}),
        12,
        json!({"kind": "error", "status": 500, "after": true}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling() {
    campaign(
        "throttle",
        json!({"kind": "throttle", "retryAfterSeconds": 1}),
        12,
        json!({"kind": "throttle"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_spikes() {
    // Longer than the operator's 1 s call timeout: the call times out. A mutation takes
    // effect only 2.5 s after it was sent, well after the operator gave up on it and
    // (without the in-flight record) after the next reconcile has read the cloud.
    campaign(
        "latency",
        json!({"kind": "latency", "latencyMs": 1500}),
        8,
        json!({"kind": "latency", "latencyMs": 2500}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections() {
    campaign(
        "drop",
        json!({"kind": "drop"}),
        12,
        json!({"kind": "drop", "after": true}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_then_a_stall() {
    campaign(
        "stall",
        json!({"kind": "stall", "latencyMs": 3000}),
        6,
        json!({"kind": "stall", "latencyMs": 3000, "after": true}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bodies() {
    campaign(
        "truncate",
        json!({"kind": "truncate"}),
        12,
        json!({"kind": "truncate"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongly_typed_bodies() {
    campaign(
        "wrongType",
        json!({"kind": "wrongType"}),
        12,
        json!({"kind": "wrongType"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enormous_bodies() {
    // 6 MiB, over the operator's 4 MiB cap.
    campaign(
        "huge",
        json!({"kind": "huge", "bytes": 6 << 20}),
        6,
        json!({"kind": "huge", "bytes": 6 << 20}),
    )
    .await;
}
