//! Deleting a whole namespace on the real control plane: the namespace controller deletes
//! the credentials Secret and the rollouts in no order the operator can count on, and
//! refuses new objects (Events included) in the namespace while it terminates. The
//! deletion must complete (no finalizer left behind), and every cloud rollout under
//! `deletionPolicy: Delete` is either deleted or reported as left behind where a person
//! can see it: the operator's log, a metric, and a Warning Event in the operator's own
//! namespace.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::apiserver::ApiServer;
use support::e2e::{Kubectl, Operator, Sim, cluster, condition, namespace, wait_for};

const SEED: &str = r#"
services:
  - name: bert_embeddings
    region: cn-hangzhou
    replicas: 2
    config: {containers: [{image: "bert:v1"}]}
routines:
  - name: image-resizer
    codeVersions: ["1723599747213377175", "1723688023417750321"]
    deployed: "1723599747213377175"
apps:
  - id: app-880688675783794688
    versions: [ver-879626371616514000, ver-879626371616514048]
    deployed: ver-879626371616514000
"#;

const KEY_ID: &str = "tenant-id";
const KEY_SECRET: &str = "tenant-secret-7d1e";

/// One rollout of each kind, all with the credentials of Secret `tenant`; the EAS one
/// with `deletionPolicy: Delete` (the ESA kinds have no deletion policy: there is no API
/// to withdraw a deployment, so deleting them leaves the cloud as it is).
fn manifests() -> Vec<Value> {
    let creds = json!({"name": "tenant"});
    vec![
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "eas"},
            "spec": {
                "region": "cn-hangzhou",
                "serviceName": "bert_embeddings",
                "strategy": {"batch": {"size": "100%"}},
                "deletionPolicy": "Delete",
                "credentialsSecretRef": creds,
                "serviceConfig": {"containers": [{"image": "bert:v2"}]}
            }
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaRoutineRollout",
            "metadata": {"name": "routine"},
            "spec": {
                "routine": "image-resizer",
                "env": "production",
                "codeVersions": [
                    {"codeVersion": "1723688023417750321", "percentage": 10},
                    {"codeVersion": "1723599747213377175", "percentage": 90}
                ],
                "credentialsSecretRef": creds
            }
        }),
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaContainerAppRollout",
            "metadata": {"name": "app"},
            "spec": {
                "appId": "app-880688675783794688",
                "versionId": "ver-879626371616514048",
                "env": "production",
                "percentage": 50,
                "credentialsSecretRef": creds
            }
        }),
    ]
}

/// A namespace with the Secret and the three rollouts, all Ready.
async fn populated(
    test: &str,
    api: &ApiServer,
    sim: &Sim,
    operator_ns: &str,
) -> (Kubectl, Operator) {
    let ns = namespace(test);
    let kubectl = Kubectl::new(api, &ns);
    kubectl.must(&[
        "create",
        "secret",
        "generic",
        "tenant",
        &format!("--from-literal=accessKeyId={KEY_ID}"),
        &format!("--from-literal=accessKeySecret={KEY_SECRET}"),
    ]);
    let operator = Operator::start_as(
        api,
        sim,
        &ns,
        "eas,routine,containerapp",
        &api.kubeconfig,
        &["--operator-namespace", operator_ns],
    );
    for manifest in manifests() {
        kubectl.apply(&manifest.to_string());
    }
    for resource in [
        "easservicerollout/eas",
        "esaroutinerollout/routine",
        "esacontainerapprollout/app",
    ] {
        wait_for(
            &format!("{resource} Ready"),
            Duration::from_secs(120),
            || async {
                let obj = kubectl.try_get(resource).ok_or("not found")?;
                match condition(&obj, "Ready") {
                    Some((s, _)) if s == "True" => Ok(()),
                    other => Err(format!("Ready is {other:?}\n{}", operator.log_tail())),
                }
            },
        )
        .await;
    }
    (kubectl, operator)
}

/// Delete the namespace and wait until it is gone: nothing in it held it (a finalizer
/// that is never removed keeps a namespace Terminating forever).
async fn delete_namespace_and_wait(api: &ApiServer, ns: &str, operator: &Operator) {
    api.delete_namespace(ns);
    wait_for(
        &format!("namespace {ns} to be gone"),
        Duration::from_secs(120),
        || async {
            let out = api
                .kubectl()
                .args(["get", "namespace", ns, "-o", "json", "--ignore-not-found"])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() && out.stdout.is_empty() {
                return Ok(());
            }
            let left = api
                .kubectl()
                .args([
                    "get",
                    "-n",
                    ns,
                    "easservicerollouts,esaroutinerollouts,esacontainerapprollouts",
                    "-o",
                    "jsonpath={range .items[*]}{.kind}/{.metadata.name} finalizers={.metadata.finalizers}{\"\\n\"}{end}",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            Err(format!(
                "still there; holding it: {left}\noperator log:\n{}",
                operator.log_tail()
            ))
        },
    )
    .await;
}

fn rollout_of(state: &Value) -> Value {
    state["services"]["cn-hangzhou/bert_embeddings"]["rollout"].clone()
}

/// Warning Events in `ns` about something left behind, from this operator.
fn left_behind_events(api: &ApiServer, ns: &str) -> Vec<Value> {
    let out = api
        .kubectl()
        .args(["get", "events.events.k8s.io", "-n", ns, "-o", "json"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Value = serde_json::from_slice(&out.stdout).expect("events JSON");
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reportingController"] == "alicloud-rollouts" && e["type"] == "Warning")
        .filter(|e| e["reason"] == "CleanupSkipped")
        .cloned()
        .collect()
}

/// The namespace controller deletes the Secret and the rollouts together, and the
/// Secret is gone first here (deleted by hand a moment before, as the namespace
/// controller may well do): the EAS cleanup still has the credentials it last used, and
/// deletes the cloud rollout. The namespace goes away; the ESA kinds' cloud state stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_takes_its_cloud_rollouts_with_it_even_when_the_secret_goes_first() {
    let api = cluster();
    let operator_ns = namespace("nsdel-operator");
    let sim = Sim::start_with_keys(SEED, 100.0, vec![(KEY_ID.into(), KEY_SECRET.into())]).await;
    let (kubectl, operator) = populated("nsdel", &api, &sim, &operator_ns).await;
    let state = sim.state().await;
    assert!(
        rollout_of(&state).is_object(),
        "the EAS rollout exists: {state}"
    );

    let calls_before = sim.call_log().await.len();
    kubectl.must(&["delete", "secret", "tenant", "--wait=true"]);
    delete_namespace_and_wait(&api, &kubectl.namespace, &operator).await;

    let state = sim.state().await;
    assert!(
        rollout_of(&state).is_null(),
        "deletionPolicy Delete removed the cloud rollout: {state}\n{}",
        operator.log_tail()
    );
    let after: Vec<Value> = sim.call_log().await.split_off(calls_before);
    let deletes: Vec<&Value> = after
        .iter()
        .filter(|c| c["action"] == "DeleteServiceRollout")
        .collect();
    assert_eq!(deletes.len(), 1, "one deletion: {after:?}");
    assert_eq!(deletes[0]["accessKeyId"], KEY_ID, "{deletes:?}");
    // The ESA kinds take no finalizer and leave the cloud as it is: besides that one
    // deletion and the removal of the service's ownership marker, the operator only read.
    for call in &after {
        let action = call["action"].as_str().unwrap_or_default();
        assert!(
            action == "DeleteServiceRollout"
                || action == "DeleteServiceLabel"
                || ["Get", "Describe", "List"]
                    .iter()
                    .any(|p| action.starts_with(p)),
            "no other mutation after the deletion began: {after:?}"
        );
    }
    assert!(
        left_behind_events(&api, &operator_ns).is_empty(),
        "nothing was left behind"
    );
    // The secret half of the key pair shows nowhere in the log.
    let log = std::fs::read_to_string(&operator.log).expect("operator log");
    assert!(!log.contains(KEY_SECRET), "the log shows the secret");
    api.delete_namespace(&operator_ns);
}

/// An operator that never reconciled the rollout with working credentials (here: a fresh
/// process, after the Secret was deleted with the namespace) cannot delete the cloud
/// rollout. It lets the namespace go rather than holding it forever, and says what it left
/// behind where a person looks: a Warning Event in the operator's own namespace (the
/// terminating one refuses Events), its log, and a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_namespace_deletion_leaves_in_the_cloud_is_reported_in_the_operators_namespace() {
    let api = cluster();
    let operator_ns = namespace("nsdel-left-operator");
    let sim = Sim::start_with_keys(SEED, 100.0, vec![(KEY_ID.into(), KEY_SECRET.into())]).await;
    let (kubectl, mut operator) = populated("nsdel-left", &api, &sim, &operator_ns).await;
    let ns = kubectl.namespace.clone();

    // The operator is down while the namespace is deleted: the Secret goes, the
    // rollouts wait for their finalizer.
    operator.kill();
    api.delete_namespace(&ns);
    wait_for(
        "the Secret to be deleted by the namespace controller",
        Duration::from_secs(60),
        || async {
            match kubectl.try_get("secret/tenant") {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        },
    )
    .await;
    operator.restart();
    delete_namespace_and_wait(&api, &ns, &operator).await;

    let state = sim.state().await;
    assert!(
        rollout_of(&state).is_object(),
        "without credentials nothing was deleted: {state}"
    );
    assert_eq!(sim.count("DeleteServiceRollout").await, 0);
    let events = left_behind_events(&api, &operator_ns);
    assert_eq!(
        events.len(),
        1,
        "one Warning for the one rollout: {events:?}"
    );
    let note = events[0]["note"].as_str().unwrap_or_default();
    for needle in ["cn-hangzhou/bert_embeddings", &format!("{ns}/eas"), "left"] {
        assert!(note.contains(needle), "the note names {needle:?}: {note}");
    }
    assert_eq!(
        events[0]["related"]["kind"], "EasServiceRollout",
        "{events:?}"
    );
    assert_eq!(events[0]["related"]["namespace"], ns.as_str(), "{events:?}");
    let log = std::fs::read_to_string(&operator.log).expect("operator log");
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("cn-hangzhou/bert_embeddings")
            && l.contains("left")),
        "the log says what was left behind:\n{}",
        operator.log_tail()
    );
    let (code, metrics) = operator.probe("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.lines().any(
            |l| l.starts_with("alicloud_rollouts_cleanup_left_behind_total{")
                && l.contains("kind=\"eas\"")
                && l.ends_with(" 1")
        ),
        "the metric counts it:\n{metrics}"
    );
    api.delete_namespace(&operator_ns);
}
