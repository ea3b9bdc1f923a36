//! Process-level faults, end to end: the operator killed (SIGKILL) at random moments
//! mid-rollout, the API server restarted, etcd restarted. After each, every rollout
//! reaches the state its spec declares, no spec change is lost, and the simulator's call
//! log shows no mutation sent twice. (The longer soak is `scripts/bench.sh --soak`.)
//!
//! The tests restart parts of the control plane this test binary shares, so they run one
//! at a time.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use support::e2e::{Env, condition, repo_root, text};

const SEED: &str = r#"
routines:
  - name: fault-r1
    codeVersions: ["1", "2"]
    deployed: "1"
  - name: fault-r2
    codeVersions: ["1", "2"]
    deployed: "1"
apps:
  - id: app-9100000001
    versions: [ver-1, ver-2]
    deployed: ver-1
  - id: app-9100000002
    versions: [ver-1, ver-2]
    deployed: ver-1
"#;

/// One test at a time: they restart the shared API server and etcd.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// (resource, manifest for a canary share of `share` percent).
fn manifests(share: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in ["fault-r1", "fault-r2"] {
        out.push((
            format!("esaroutinerollout/{r}"),
            format!(
                r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata: {{name: {r}}}
spec:
  routine: {r}
  env: production
  codeVersions:
    - {{codeVersion: "2", percentage: {share}}}
    - {{codeVersion: "1", percentage: {}}}
"#,
                100 - share
            ),
        ));
    }
    for app in ["app-9100000001", "app-9100000002"] {
        out.push((
            format!("esacontainerapprollout/{app}"),
            format!(
                r#"apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaContainerAppRollout
metadata: {{name: {app}}}
spec: {{appId: {app}, versionId: ver-2, env: production, percentage: {share}}}
"#
            ),
        ));
    }
    out
}

/// Apply every resource at `share`; the generation each one has now.
fn declare(env: &Env, share: i64) -> BTreeMap<String, i64> {
    let mut generations = BTreeMap::new();
    for (resource, manifest) in manifests(share) {
        env.kubectl.apply(&manifest);
        let obj = env.kubectl.get(&resource);
        generations.insert(
            resource,
            obj["metadata"]["generation"].as_i64().unwrap_or(0),
        );
    }
    generations
}

/// The share the status shows the cloud serving.
fn share_shown(obj: &Value) -> Option<i64> {
    if let Some(p) = obj["status"]["publishPercentage"].as_i64() {
        return Some(p);
    }
    obj["status"]["codeVersions"]
        .as_array()?
        .iter()
        .find(|c| c["codeVersion"] == "2")?["percentage"]
        .as_i64()
}

/// Every resource Ready at (at least) its declared generation, the cloud serving `share`.
async fn converged(env: &Env, generations: &BTreeMap<String, i64>, share: i64) {
    for (resource, generation) in generations {
        env.wait_obj(
            &format!("{share}% Ready at generation {generation}"),
            resource,
            Duration::from_secs(120),
            |o| {
                let ready = condition(o, "Ready").is_some_and(|c| c.0 == "True");
                let observed = o["status"]["observedGeneration"].as_i64().unwrap_or(0);
                match (ready, observed >= *generation, share_shown(o)) {
                    (true, true, Some(s)) if s == share => Ok(()),
                    other => Err(format!("ready/observed/share: {other:?}")),
                }
            },
        )
        .await;
    }
}

/// The same mutation (action, target, request) accepted more than once; fails the test
/// when the log shows fewer accepted mutations than `at_least`.
async fn duplicated_mutations(env: &Env, at_least: usize) -> Vec<String> {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for call in env.sim.call_log().await {
        let (Some(request), Some(status)) = (call["request"].as_str(), call["status"].as_u64())
        else {
            continue;
        };
        if status < 300 {
            let key = format!(
                "{} {} {request}",
                call["action"].as_str().unwrap_or_default(),
                call["target"].as_str().unwrap_or_default()
            );
            *seen.entry(key).or_default() += 1;
        }
    }
    let accepted: u32 = seen.values().sum();
    assert!(
        accepted as usize >= at_least,
        "only {accepted} mutations in the call log, expected at least {at_least}"
    );
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, n)| format!("{n}x {k}"))
        .collect()
}

fn restart(component: &str) {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/local-apiserver.sh"))
        .args(["restart", component])
        .output()
        .expect("scripts/local-apiserver.sh runs");
    assert!(out.status.success(), "restart {component}: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_at_random_moments_mid_rollout_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut env = Env::start("fault-kill", SEED, 10.0, "routine,containerapp").await;
    converged(&env, &declare(&env, 10), 10).await;
    let rounds = 4;
    let mut survived = 0;
    let mut generations = BTreeMap::new();
    for round in 1..=rounds {
        let share = 10 + 10 * round;
        generations = declare(&env, share);
        // Somewhere between before the first reconcile and after the mutations.
        let at = rand::rng().random_range(0..1500);
        tokio::time::sleep(Duration::from_millis(at)).await;
        env.operator.restart();
        survived += 1;
        eprintln!("fault {round}: operator SIGKILLed {at} ms after the spec changes");
    }
    let last = 10 + 10 * rounds;
    converged(&env, &generations, last).await;
    // At least the first and the last declared state of each resource were sent.
    let duplicated = duplicated_mutations(&env, 2 * generations.len()).await;
    assert!(
        duplicated.is_empty(),
        "mutations sent twice: {duplicated:?}"
    );
    eprintln!("faults injected: {rounds}, survived: {survived}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restarted_mid_rollout_loses_nothing() {
    let _serial = SERIAL.lock().await;
    control_plane_restart("fault-apiserver", "apiserver").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restarted_mid_rollout_loses_nothing() {
    let _serial = SERIAL.lock().await;
    control_plane_restart("fault-etcd", "etcd").await;
}

/// A spec change, `component` killed and restarted right after it, then another change:
/// both reach the cloud (the watch resumes), nothing is sent twice.
async fn control_plane_restart(test: &str, component: &str) {
    let env = Env::start(test, SEED, 10.0, "routine,containerapp").await;
    converged(&env, &declare(&env, 10), 10).await;
    let generations = declare(&env, 30);
    restart(component);
    converged(&env, &generations, 30).await;
    // A change made after the restart is seen too: the watch came back.
    let generations = declare(&env, 40);
    converged(&env, &generations, 40).await;
    let duplicated = duplicated_mutations(&env, 3 * generations.len()).await;
    assert!(
        duplicated.is_empty(),
        "mutations sent twice: {duplicated:?}"
    );
    eprintln!("faults injected: 1 ({component} restart), survived: 1");
}
