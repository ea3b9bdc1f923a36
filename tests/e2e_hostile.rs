//! Issue 13: one hostile EasServiceRollout never blinds the operator. An object whose
//! serviceConfig nests 300 levels deep and carries 150 KB, stored while the CRD had no
//! bounds (the API server keeps what it stored), sits in the list the operator reads at
//! start-up. A valid resource beside it still rolls out end to end; the hostile one is
//! reported on itself (Warning Event, Degraded where the status can be written) and in
//! a metric; and the operator's log stays small and never repeats the object's content.
//!
//! This binary loosens the EasServiceRollout CRD for a moment, so it holds one test only
//! (test binaries run one after another) and restores the real CRD before going on.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
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

/// 100x: the simulator's rollout steps take a fraction of a second.
const SCALE: f64 = 100.0;

/// Text that is only in the hostile object's spec (and so in its managedFields and its
/// last-applied annotation): it must never reach the operator's log.
const MARKER: &str = "MARKER-issue13-env-value-do-not-log";

/// Bound on the operator's whole log after about a minute with the hostile object listed.
/// One copy of the hostile object is larger than this.
const LOG_BOUND: usize = 96 * 1024;

const GOOD: &str = r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: good
spec:
  region: cn-shanghai
  serviceName: qwen_chat_prod
  strategy:
    batch: {size: "100%"}
  serviceConfig:
    containers:
      - image: registry.cn-shanghai.aliyuncs.com/llm/qwen-chat:2.0
"#;

/// The hostile object: a serviceConfig whose `containers` nests lists 300 deep (no schema
/// pruning can remove that), the marker and 150 KB at the bottom, and a field EAS does not
/// have, nested 300 deep with the marker as a key (pruned on read, but still in the
/// object's managedFields).
fn hostile(name: &str) -> String {
    let leaf = format!("\"{MARKER} {}\"", "x".repeat(150 * 1024));
    let lists = format!("{}{leaf}{}", "[".repeat(300), "]".repeat(300));
    let keys = format!(
        "{}{{}}{}",
        format!("{{\"{MARKER}\": ").repeat(300),
        "}".repeat(300)
    );
    format!(
        r#"{{"apiVersion":"rollouts.alicloud.dev/v1alpha1","kind":"EasServiceRollout","metadata":{{"name":"{name}"}},"spec":{{"region":"cn-shanghai","serviceName":"qwen_chat_prod","strategy":{{"partition":"0"}},"serviceConfig":{{"containers":{lists},"n":{keys}}}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hostile_object_never_blinds_the_operator() {
    let mut env = Env::start("hostile", SEED, SCALE, "eas").await;

    // Store the hostile object as a CRD without bounds would have, then bring the real one
    // back: the API server keeps what it stored, and refuses the same manifest now.
    let permissive = serde_json::to_string(&permissive_crd()).expect("JSON");
    apply_crd(&env, &permissive);
    until_apply(&env, &hostile("hostile"), true).await;
    let real = std::fs::read_to_string(repo_root().join("crds/easservicerollouts.yaml"))
        .expect("generated CRD readable");
    apply_crd(&env, &real);
    until_apply(&env, &hostile("hostile-again"), false).await;

    // Start the operator afresh: its first list of EasServiceRollouts holds the hostile one.
    env.operator.restart();
    let restarted = Instant::now();
    env.kubectl.apply(GOOD);

    let good = env
        .wait_obj(
            "the good rollout completes and is Ready",
            "easservicerollout/good",
            Duration::from_secs(60),
            |o| {
                let ready = condition(o, "Ready").map(|c| c.0);
                (ready.as_deref() == Some("True")
                    && o["status"]["phase"] == "Completed"
                    && o["status"]["updatedReplicas"] == 4)
                    .then_some(())
                    .ok_or_else(|| format!("Ready {ready:?}"))
            },
        )
        .await;
    assert!(good["status"]["appliedServiceConfigHash"].is_string());
    assert_eq!(
        env.sim.count("UpdateService").await,
        1,
        "the good config only"
    );
    assert_eq!(
        env.sim.count("CreateServiceRollout").await,
        1,
        "the good object only"
    );

    // The hostile object says so on itself. (Its status is read alone: the whole object is
    // too deep for serde_json, which is the point.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let out = env.kubectl.run(&[
            "get",
            "easservicerollout/hostile",
            "-o",
            "jsonpath={.status}",
        ]);
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        match condition(&json!({ "status": status }), "Degraded") {
            Some((s, r)) if s == "True" && r == "InvalidObject" => break status,
            other => assert!(
                Instant::now() < deadline,
                "the hostile object is not marked Degraded: {other:?} {status}\n{}",
                env.operator.log_tail()
            ),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let hostile_obj = json!({ "status": status });
    let message = hostile_obj["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("spec.serviceConfig")
            && message.contains("nested more than 128 levels")
            && message.contains("fix the spec"),
        "the message says where, what and what to do: {message}"
    );
    assert!(!message.contains(MARKER), "{message}");

    let events: Value =
        serde_json::from_str(
            &env.kubectl
                .must(&["get", "events.events.k8s.io", "-o", "json"]),
        )
        .expect("events as JSON");
    let warnings: Vec<&Value> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["regarding"]["name"] == "hostile"
                && e["reason"] == "InvalidObject"
                && e["type"] == "Warning"
        })
        .collect();
    assert!(
        !warnings.is_empty(),
        "a Warning Event names the hostile object: {events}"
    );
    assert!(
        !events.to_string().contains(MARKER),
        "no Event repeats the spec"
    );

    // The metric names it.
    let addr = env.operator.metrics_addr().await;
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    let line = format!(
        "alicloud_rollouts_undecodable_objects{{kind=\"eas\",namespace=\"{}\",name=\"hostile\"}} 1",
        env.namespace
    );
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
    assert!(!metrics.contains("name=\"good\""), "{metrics}");

    // About a minute with the hostile object listed: the log stays small and clean.
    let minute = Duration::from_secs(60);
    if let Some(rest) = minute.checked_sub(restarted.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let log = std::fs::read_to_string(&env.operator.log).expect("operator log readable");
    assert!(
        !log.contains(MARKER),
        "the operator's log repeats the hostile object's spec"
    );
    assert!(
        log.len() < LOG_BOUND,
        "the operator's log holds {} bytes after a minute:\n{}",
        log.len(),
        env.operator.log_tail()
    );
    assert!(
        log.contains("skipping an object that does not parse") && log.contains("name=hostile"),
        "the log names the skipped object:\n{}",
        env.operator.log_tail()
    );
    // Every run of the operator listed every object, the hostile one included: no list or
    // watch failed to decode.
    assert!(
        !log.contains("recursion limit"),
        "{}",
        env.operator.log_tail()
    );

    env.kubectl
        .must(&["delete", "easservicerollout/hostile", "--wait=false"]);
}
