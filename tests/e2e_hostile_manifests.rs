//! Hostile manifests beyond the schema corpus (issue 10, item 5), end to end: what the API
//! server admits at its limits (unicode in every free string field, every bounded string
//! at its longest in four-byte characters, the most steps a progression may have) is
//! rolled out to the end, with the cloud receiving every value exactly as written, and the
//! operator never panics, never restarts and keeps its status messages bounded.
//!
//! What the API server refuses (unicode where an id is ASCII, a string one character too
//! long, a count beyond any service) is in tests/bad-manifests, applied by `crd_schema`.

mod support;

use std::time::Duration;

use alicloud_rollouts::simulator::SimConfig;
use serde_json::{Value, json};
use support::e2e::{Env, condition};

const CANARY: &str = "1723688023417750321";
const STABLE: &str = "1723599747213377175";

/// `n` characters cycling through scripts and sizes (2-, 3- and 4-byte UTF-8, combining
/// marks, right-to-left text), ending with `tail` so values stay distinct.
fn unicode(n: usize, tail: &str) -> String {
    const PIECES: [&str; 8] = ["é", "模", "型", "🚀", "ا", "ß", "e\u{301}", "ℌ"];
    let mut s: String = PIECES
        .iter()
        .cycle()
        .flat_map(|p| p.chars())
        .take(n)
        .collect();
    let keep = n.saturating_sub(tail.chars().count());
    s = s.chars().take(keep).collect();
    s.push_str(tail);
    s
}

fn ready(obj: &Value) -> Result<(), String> {
    let ready = condition(obj, "Ready").map(|c| c.0);
    (ready.as_deref() == Some("True")
        && obj["status"]["observedGeneration"] == obj["metadata"]["generation"])
        .then_some(())
        .ok_or_else(|| format!("Ready {ready:?}"))
}

fn assert_operator_sound(env: &mut Env) {
    assert!(
        env.operator.running(),
        "the operator exited:\n{}",
        env.operator.log_tail()
    );
    let log = std::fs::read_to_string(&env.operator.log).unwrap_or_default();
    assert!(!log.contains("panicked"), "{}", env.operator.log_tail());
    assert_eq!(
        log.matches("----- restarted").count(),
        0,
        "restarted by the test only"
    );
}

/// Every free string field in unicode, every bounded one at its longest (in four-byte and
/// combining characters): the three kinds roll out, the cloud gets each value unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_at_the_longest_in_every_string_field_rolls_out_unchanged() {
    let routine = unicode(128, "-fn");
    // App ids are `app-` and digits in the cloud; the schema does not say so, so one in
    // another script reaches the cloud, which refuses it (below).
    let app = "app-880688675783794688".to_string();
    let foreign_app = unicode(64, "-app");
    let v1 = format!("ver-{}", unicode(60, "-1"));
    let v2 = format!("ver-{}", unicode(60, "-2"));
    let remarks = unicode(256, ".");
    let region_name = unicode(64, "-r");
    let image = format!("registry/{}:v2", unicode(1012, ""));
    let script = unicode(4096, "");
    let label = unicode(256, "");
    let env_value = unicode(1024, "");
    let seed = serde_yaml::to_string(&json!({
        "services": [{
            "name": "svc", "region": "cn-hangzhou", "replicas": 2,
            "config": {"metadata": {"instance": 2}, "containers": [{"image": "registry/svc:v1"}]},
        }],
        "routines": [{"name": routine, "codeVersions": [STABLE, CANARY], "deployed": STABLE}],
        "apps": [{"id": app, "versions": [v1, v2], "deployed": v1}],
    }))
    .expect("seed YAML");
    let mut env = Env::start_with(
        "hostile-unicode",
        &seed,
        SimConfig {
            time_scale: 100.0,
            ..SimConfig::default()
        },
        "eas,routine,containerapp",
    )
    .await;

    let service_config = json!({
        "metadata": {"instance": 2, "labels": {"team": label}},
        "containers": [{"image": image, "script": script, "env": [{"name": "GREETING", "value": env_value}]}],
    });
    let manifests = [
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EasServiceRollout",
            "metadata": {"name": "svc"},
            "spec": {"region": "cn-hangzhou", "serviceName": "svc", "strategy": {"batch": {"size": "100%"}},
                     "serviceConfig": service_config},
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaRoutineRollout",
            "metadata": {"name": "fn"},
            "spec": {"routine": routine, "env": "production",
                     "codeVersions": [{"codeVersion": CANARY, "percentage": 100}]},
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaContainerAppRollout",
            "metadata": {"name": "app"},
            "spec": {"appId": app, "versionId": v2, "env": "production",
                     "regions": [region_name], "remarks": remarks},
        }),
    ];
    for m in &manifests {
        env.kubectl.apply(&m.to_string());
    }
    env.kubectl.apply(
        &json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaContainerAppRollout",
            "metadata": {"name": "foreign"},
            "spec": {"appId": foreign_app, "versionId": v2, "env": "staging", "percentage": 10},
        })
        .to_string(),
    );
    for resource in [
        "easservicerollout/svc",
        "esaroutinerollout/fn",
        "esacontainerapprollout/app",
    ] {
        let obj = env
            .wait_obj("Ready", resource, Duration::from_secs(90), ready)
            .await;
        let status = obj["status"].to_string();
        assert!(
            status.len() < 16 * 1024,
            "{resource}: status of {} bytes",
            status.len()
        );
    }

    // The cloud got every value as written.
    let state = env.sim.state().await;
    let newest = state["services"]["cn-hangzhou/svc"]["versions"]
        .as_array()
        .and_then(|v| v.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(newest["config"]["containers"][0]["image"], json!(image));
    assert_eq!(newest["config"]["containers"][0]["script"], json!(script));
    assert_eq!(
        newest["config"]["containers"][0]["env"][0]["value"],
        json!(env_value)
    );
    assert_eq!(newest["config"]["metadata"]["labels"]["team"], json!(label));
    let text = state.to_string();
    for value in [&routine, &v2, &remarks, &region_name] {
        assert!(
            text.contains(value.as_str()),
            "{value} not in the cloud: {state}"
        );
    }
    // The id the cloud refuses: Degraded, saying what the cloud said, and waiting for a
    // spec change.
    let foreign = env
        .wait_obj(
            "Degraded",
            "esacontainerapprollout/foreign",
            Duration::from_secs(60),
            |o| match condition(o, "Degraded") {
                Some((s, _)) if s == "True" => Ok(()),
                other => Err(format!("Degraded {other:?}")),
            },
        )
        .await;
    let message = foreign["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("AppId"), "{message}");
    assert!(message.len() <= 4100, "{} bytes", message.len());

    let log = env.sim.call_log().await;
    let applied = log.iter().filter(|r| r["applied"] == true).count();
    assert_eq!(
        applied, 5,
        "the ownership marker, create, push, deployment, publish: {log:?}"
    );
    assert_operator_sound(&mut env);
}

/// The most steps a canary may have (20), each with a pause: walked to the end, one
/// deployment per step, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_steps_a_canary_may_have_are_walked_to_the_end() {
    let seed = format!(
        "routines:\n  - name: fn\n    codeVersions: [\"{STABLE}\", \"{CANARY}\"]\n    deployed: \"{STABLE}\"\n"
    );
    let mut env = Env::start("hostile-steps", &seed, 1.0, "routine").await;
    let steps: Vec<Value> = (1..=20)
        .map(|i| json!({"percentage": i * 5, "pause": "1s"}))
        .collect();
    env.kubectl.apply(
        &json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaRoutineRollout",
            "metadata": {"name": "fn"},
            "spec": {"routine": "fn", "env": "production",
                     "canary": {"stableVersion": STABLE, "canaryVersion": CANARY, "steps": steps}},
        })
        .to_string(),
    );
    let obj = env
        .wait_obj(
            "Ready",
            "esaroutinerollout/fn",
            Duration::from_secs(150),
            ready,
        )
        .await;
    assert_eq!(
        obj["status"]["codeVersions"],
        json!([{"codeVersion": CANARY, "percentage": 100}]),
        "{}",
        obj["status"]
    );
    let log = env.sim.call_log().await;
    let deployments: Vec<&Value> = log
        .iter()
        .filter(|r| r["action"] == "CreateRoutineCodeDeployment" && r["applied"] == true)
        .collect();
    let digests: std::collections::BTreeSet<&str> = deployments
        .iter()
        .filter_map(|r| r["digest"].as_str())
        .collect();
    assert_eq!(
        deployments.len(),
        20,
        "one deployment per step: {deployments:?}"
    );
    assert_eq!(digests.len(), 20, "none twice");
    assert_operator_sound(&mut env);
}
