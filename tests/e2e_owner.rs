//! Ownership of cloud objects end to end (issue 8, invariants 1g and 1h): two resources
//! naming one cloud object, credentials that come to belong to another account, and a
//! container app rollback that would move another environment.
//!
//! Each runs the operator binary against the real API server and the simulator, driven
//! with kubectl; the account test keeps its keys in a real Secret that it rewrites.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::e2e::{Env, Kubectl, Operator, Sim, cluster, condition, namespace};

const EAS_SEED: &str = r#"
services:
  - name: llm-chat
    region: cn-shanghai
    replicas: 4
    config:
      metadata: {instance: 4, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "llm:v1"}]
"#;

fn degraded(obj: &Value) -> Option<String> {
    condition(obj, "Degraded")
        .filter(|c| c.0 == "True")
        .map(|c| c.1)
}

fn ready(obj: &Value) -> bool {
    condition(obj, "Ready").map(|c| c.0).as_deref() == Some("True")
}

fn eas_manifest(name: &str, partition: &str, image: &str) -> String {
    json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": name},
        "spec": {
            "region": "cn-shanghai",
            "serviceName": "llm-chat",
            "strategy": {"partition": partition},
            "serviceConfig": {"containers": [{"image": image}]}
        }
    })
    .to_string()
}

/// The mutations the simulator has answered so far.
async fn mutations(sim: &Sim) -> u64 {
    let calls = sim.calls().await;
    [
        "CreateServiceRollout",
        "UpdateServiceRollout",
        "UpdateService",
        "DeleteServiceRollout",
    ]
    .iter()
    .map(|a| calls.get(*a).copied().unwrap_or(0))
    .sum()
}

/// Defect (i): two EasServiceRollouts naming the same region/service fought forever, each
/// pushing its own partition back. The second one now stays out: Degraded, naming the
/// owner, and nothing is sent for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_resource_naming_a_managed_service_stays_out() {
    let env = Env::start("owner-fight", EAS_SEED, 100.0, "eas").await;
    env.kubectl.apply(&eas_manifest("first", "1", "llm:v2"));
    let first = env
        .wait_obj(
            "first Ready",
            "easservicerollout/first",
            Duration::from_secs(60),
            |o| ready(o).then_some(()).ok_or_else(|| "not Ready".into()),
        )
        .await;
    assert_eq!(
        first["status"]["cloudRef"], "cn-shanghai/llm-chat",
        "{first}"
    );
    let before = mutations(&env.sim).await;
    let rollout_before =
        env.sim.state().await["services"]["cn-shanghai/llm-chat"]["rollout"].clone();

    env.kubectl.apply(&eas_manifest("second", "3", "llm:v3"));
    let second = env
        .wait_obj(
            "second Degraded AlreadyManaged",
            "easservicerollout/second",
            Duration::from_secs(30),
            |o| match degraded(o).as_deref() {
                Some("AlreadyManaged") => Ok(()),
                other => Err(format!("Degraded reason {other:?}")),
            },
        )
        .await;
    let message = second["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{}/first", env.namespace)),
        "the owner is named: {second}"
    );
    assert!(
        second["status"]["cloudRef"].is_null(),
        "the second resource records no ownership: {second}"
    );
    // Several polls later: nothing was sent for the second one, the first still holds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        mutations(&env.sim).await,
        before,
        "no mutation since the second resource appeared\n{}",
        env.operator.log_tail()
    );
    let state = env.sim.state().await;
    assert_eq!(
        state["services"]["cn-shanghai/llm-chat"]["rollout"], rollout_before,
        "the first resource's rollout is as it was"
    );
    let first = env.kubectl.get("easservicerollout/first");
    assert!(ready(&first), "the owner keeps working: {first}");
    assert_eq!(degraded(&first), None, "{first}");
}

const APP: &str = "app-880688675783794688";
const V1: &str = "ver-879626371616514000";
const V2: &str = "ver-879626371616514048";
const V3: &str = "ver-879626371616514096";

fn app_seed() -> String {
    format!("apps:\n  - id: {APP}\n    versions: [{V1}, {V2}, {V3}]\n    deployed: {V1}\n")
}

fn app_manifest(name: &str, env: &str, version: &str, percentage: i32, rollback: bool) -> String {
    json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EsaContainerAppRollout",
        "metadata": {"name": name},
        "spec": {
            "appId": APP,
            "versionId": version,
            "env": env,
            "percentage": percentage,
            "rollback": rollback
        }
    })
    .to_string()
}

/// Defect: RollbackEdgeContainerAppVersion has no environment parameter, and a staging
/// resource's rollback moved production. It is now refused while production serves a
/// version the rollback would replace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_rollback_never_moves_production() {
    let env = Env::start("owner-rollback", &app_seed(), 1.0, "containerapp").await;
    let published = |o: &Value| {
        (o["status"]["publishStatus"] == "published" && ready(o))
            .then_some(())
            .ok_or_else(|| "not published".to_string())
    };
    env.kubectl
        .apply(&app_manifest("app-prod", "production", V3, 100, false));
    env.kubectl
        .apply(&app_manifest("app-staging", "staging", V2, 50, false));
    env.wait_obj(
        "production on V3",
        "esacontainerapprollout/app-prod",
        Duration::from_secs(40),
        published,
    )
    .await;
    env.wait_obj(
        "staging on V2",
        "esacontainerapprollout/app-staging",
        Duration::from_secs(40),
        published,
    )
    .await;

    env.kubectl.patch(
        "esacontainerapprollout/app-staging",
        r#"{"spec":{"rollback":true}}"#,
    );
    let staging = env
        .wait_obj(
            "staging rollback refused",
            "esacontainerapprollout/app-staging",
            Duration::from_secs(30),
            |o| match degraded(o).as_deref() {
                Some("RollbackWouldMoveOtherEnv") => Ok(()),
                other => Err(format!("Degraded reason {other:?}")),
            },
        )
        .await;
    let message = staging["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("prod") && message.contains(V3),
        "the message says what would move: {staging}"
    );
    // A few polls later: no rollback was sent, production still serves V3.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.sim.count("RollbackEdgeContainerAppVersion").await, 0);
    let state = env.sim.state().await;
    let prod = &state["apps"][APP]["envs"]["prod"];
    assert_eq!(prod["deployedVersion"], V3, "production untouched: {prod}");
    assert_eq!(prod["publishStatus"], "published", "{prod}");
    let p = env.kubectl.get("esacontainerapprollout/app-prod");
    assert!(ready(&p), "production's resource is still Ready: {p}");
}

/// A Secret `name` holding one key pair (replaced if it exists).
fn put_secret(kubectl: &Kubectl, name: &str, id: &str, secret: &str) {
    let _ = kubectl.run(&["delete", "secret", name, "--ignore-not-found"]);
    kubectl.must(&[
        "create",
        "secret",
        "generic",
        name,
        &format!("--from-literal=accessKeyId={id}"),
        &format!("--from-literal=accessKeySecret={secret}"),
    ]);
}

/// Defect (ii): a resource's Secret changed to another account's keys redirected every later
/// mutation, DeleteServiceRollout included, to that account's service of the same name. Now
/// the resource turns Degraded naming both accounts, and neither changes nor deletes
/// anything in the other account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_of_another_account_change_nothing_there() {
    let api = cluster();
    let ns = namespace("owner-account");
    let kubectl = Kubectl::new(&api, &ns);
    let sim = Sim::start_with_keys(
        EAS_SEED,
        100.0,
        vec![
            ("team-a-id".into(), "team-a-secret".into()),
            ("team-b-id".into(), "team-b-secret".into()),
        ],
    )
    .await;
    let account_a = sim.handle.sim().account_of_key("team-a-id");
    let account_b = sim.handle.sim().account_of_key("team-b-id");
    assert_ne!(account_a, account_b);
    put_secret(&kubectl, "creds", "team-a-id", "team-a-secret");
    // The operator has no keys of its own: only the Secret's.
    let operator = Operator::start_without_keys(&api, &sim, &ns, "eas");
    let env = Env {
        api,
        sim,
        operator,
        kubectl,
        namespace: ns,
    };
    let manifest = |image: &str| {
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "chat"},
            "spec": {
                "region": "cn-shanghai",
                "serviceName": "llm-chat",
                "strategy": {"batch": {"size": "100%"}},
                "deletionPolicy": "Delete",
                "credentialsSecretRef": {"name": "creds"},
                "serviceConfig": {"containers": [{"image": image}]}
            }
        })
        .to_string()
    };
    let service = |account: &str| {
        env.sim.handle.sim().dump_account(account)["services"]["cn-shanghai/llm-chat"].clone()
    };
    let b_before = service(&account_b);

    env.kubectl.apply(&manifest("llm:v2"));
    let recorded = env
        .wait_obj(
            "Ready in account A",
            "easservicerollout/chat",
            Duration::from_secs(60),
            |o| ready(o).then_some(()).ok_or_else(|| "not Ready".into()),
        )
        .await;
    assert!(
        service(&account_a)["rollout"].is_object(),
        "A has the rollout"
    );

    // The Secret now holds account B's keys, and a new version is declared.
    put_secret(&env.kubectl, "creds", "team-b-id", "team-b-secret");
    env.kubectl.apply(&manifest("llm:v3"));
    let obj = env
        .wait_obj(
            "Degraded AccountChanged",
            "easservicerollout/chat",
            Duration::from_secs(60),
            |o| match degraded(o).as_deref() {
                Some("AccountChanged") => Ok(()),
                other => Err(format!("Degraded reason {other:?}")),
            },
        )
        .await;
    let message = obj["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&account_a) && message.contains(&account_b),
        "both accounts are named: {obj}"
    );
    assert!(
        !obj.to_string().contains("team-b-secret"),
        "no secret in status"
    );
    assert_eq!(
        service(&account_b),
        b_before,
        "nothing changed in account B"
    );

    // Deleting the resource (deletionPolicy Delete) deletes nothing in account B, and
    // leaves A's rollout where it is (its credentials are no longer at hand).
    env.kubectl
        .must(&["delete", "easservicerollout/chat", "--timeout=60s"]);
    assert_eq!(
        env.sim.count("DeleteServiceRollout").await,
        0,
        "no deletion anywhere\n{}",
        env.operator.log_tail()
    );
    assert_eq!(service(&account_b), b_before, "account B untouched");
    assert!(
        service(&account_a)["rollout"].is_object(),
        "account A's rollout is left in place"
    );
    // What the status had recorded: the account, with the object.
    assert_eq!(
        recorded["status"]["cloudAccount"],
        account_a.as_str(),
        "{recorded}"
    );
}
