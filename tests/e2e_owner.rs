//! Ownership of cloud objects end to end (issue 8, invariants 1g and 1h): two resources
//! naming one cloud object, credentials that come to belong to another account, and a
//! container app rollback that would move another environment.
//!
//! The first two run the operator binary against the real API server and the simulator,
//! driven with kubectl. The account test reconciles in-process like tests/e2e_credentials.rs:
//! the local API server serves no Secrets, so the Secret source is a test double whose keys
//! the test changes; everything else (the cloud client, its signing, STS, the status
//! writes, the finalizer) is the real thing.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alicloud_rollouts::cloud::provider::NoCredentials;
use alicloud_rollouts::cloud::{ClientConfig, CloudClient};
use alicloud_rollouts::controller::context::{Context, KubeWrites, RetryPolicy, SecretSource};
use alicloud_rollouts::controller::metrics::Metrics;
use alicloud_rollouts::controller::requeue::Timing;
use alicloud_rollouts::controller::runner::reconcile;
use alicloud_rollouts::crd::EasServiceRollout;
use async_trait::async_trait;
use kube::Api;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use support::e2e::{Env, Kubectl, Sim, cluster, condition, namespace};

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

/// Secrets as the operator would read them; the test changes them.
type SecretData = BTreeMap<String, Vec<u8>>;

#[derive(Default)]
struct Secrets(Mutex<BTreeMap<(String, String), SecretData>>);

impl Secrets {
    fn put(&self, namespace: &str, name: &str, id: &str, secret: &str) {
        let data = [("accessKeyId", id), ("accessKeySecret", secret)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        self.0
            .lock()
            .unwrap()
            .insert((namespace.to_string(), name.to_string()), data);
    }
}

#[async_trait]
impl SecretSource for Secrets {
    async fn read(&self, namespace: &str, name: &str) -> Result<Option<SecretData>, String> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
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
    let cloud = CloudClient::new(
        ClientConfig {
            eas_endpoint: Some(sim.url()),
            sts_endpoint: Some(sim.url()),
            ..ClientConfig::default()
        },
        Arc::new(NoCredentials),
    )
    .expect("cloud client");
    let client = api.client().await;
    let secrets = Arc::new(Secrets::default());
    secrets.put(&ns, "creds", "team-a-id", "team-a-secret");
    let mut registry = prometheus_client::registry::Registry::default();
    let cx = Arc::new(Context::new(
        client.clone(),
        Arc::new(cloud),
        secrets.clone(),
        Arc::new(KubeWrites::new(
            client.clone(),
            Reporter {
                controller: "alicloud-rollouts-test".into(),
                instance: None,
            },
        )),
        Arc::new(Metrics::new(&mut registry)),
        Timing {
            active: Duration::from_secs(1),
            settled: Duration::from_secs(5),
        },
        RetryPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(1),
        },
    ));
    let rollouts: Api<EasServiceRollout> = Api::namespaced(client, &ns);
    let manifest = |image: &str| {
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "chat"},
            "spec": {
                "region": "cn-shanghai",
                "serviceName": "llm-chat",
                "strategy": {"partition": "0"},
                "deletionPolicy": "Delete",
                "credentialsSecretRef": {"name": "creds"},
                "serviceConfig": {"containers": [{"image": image}]}
            }
        })
        .to_string()
    };
    // Reconcile by hand (no watch) until `done` holds.
    let drive = |what: &'static str, done: fn(&Value) -> bool| {
        let rollouts = rollouts.clone();
        let cx = cx.clone();
        let kubectl = &kubectl;
        async move {
            for _ in 0..60 {
                let Some(obj) = rollouts.get_opt("chat").await.expect("readable") else {
                    return Value::Null;
                };
                let _ = reconcile(Arc::new(obj), cx.clone()).await;
                let seen = kubectl
                    .try_get("easservicerollout/chat")
                    .unwrap_or(Value::Null);
                if done(&seen) {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            panic!("{what}: {}", kubectl.get("easservicerollout/chat"));
        }
    };
    let service = |account: &str| {
        sim.handle.sim().dump_account(account)["services"]["cn-shanghai/llm-chat"].clone()
    };
    let b_before = service(&account_b);

    kubectl.apply(&manifest("llm:v2"));
    let recorded = drive("Ready in account A", ready).await;
    assert!(
        service(&account_a)["rollout"].is_object(),
        "A has the rollout"
    );

    // The Secret now holds account B's keys, and a new version is declared.
    secrets.put(&ns, "creds", "team-b-id", "team-b-secret");
    kubectl.apply(&manifest("llm:v3"));
    let obj = drive("Degraded AccountChanged", |o| {
        degraded(o).as_deref() == Some("AccountChanged")
    })
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
    kubectl.must(&["delete", "easservicerollout/chat", "--wait=false"]);
    let gone = drive("deleted", |o| o.is_null()).await;
    assert!(gone.is_null());
    // What the status had recorded: the account, with the object.
    assert_eq!(
        recorded["status"]["cloudAccount"],
        account_a.as_str(),
        "{recorded}"
    );
    assert_eq!(
        sim.count("DeleteServiceRollout").await,
        0,
        "no deletion anywhere"
    );
    assert_eq!(service(&account_b), b_before, "account B untouched");
    assert!(
        service(&account_a)["rollout"].is_object(),
        "account A's rollout is left in place"
    );
}
