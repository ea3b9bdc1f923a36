//! Per-resource credentials (`spec.credentialsSecretRef`) against the real API server and
//! the simulator: the operator binary reading a real Secret, and, reconciled in-process
//! with a test double for the Secrets, a good, a missing and a stale Secret side by side.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
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
use serde_json::json;
use support::e2e::{Env, Kubectl, Operator, Sim, cluster, condition, namespace};

const SEED: &str = r#"
services:
  - name: bert_embeddings
    region: cn-hangzhou
    replicas: 2
    config: {containers: [{image: "bert:v1"}]}
"#;

/// Secrets as the operator would read them, keyed by (namespace, name).
struct FakeSecrets(BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>);

#[async_trait]
impl SecretSource for FakeSecrets {
    async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok(self
            .0
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
}

/// A rollout of `bert_embeddings` to `bert:v2` with the credentials of Secret `secret`.
fn manifest(name: &str, secret: &str) -> String {
    json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": name},
        "spec": {
            "region": "cn-hangzhou",
            "serviceName": "bert_embeddings",
            "strategy": {"batch": {"size": "100%"}},
            "credentialsSecretRef": {"name": secret},
            "serviceConfig": {"containers": [{"image": "bert:v2"}]}
        }
    })
    .to_string()
}

/// The operator binary has no keys of its own; the simulator accepts only the tenant's,
/// which are in a real Secret next to the rollout. The rollout completes with them, and
/// the secret half of the pair shows nowhere: not in status, Events or the operator's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_rolls_out_with_the_keys_of_a_real_secret() {
    let api = cluster();
    let ns = namespace("creds-secret");
    let kubectl = Kubectl::new(&api, &ns);
    let secret_value = "tenant-secret-f3a9c1";
    let sim =
        Sim::start_with_keys(SEED, 100.0, vec![("tenant-id".into(), secret_value.into())]).await;
    kubectl.must(&[
        "create",
        "secret",
        "generic",
        "tenant",
        "--from-literal=accessKeyId=tenant-id",
        &format!("--from-literal=accessKeySecret={secret_value}"),
    ]);
    let operator = Operator::start_without_keys(&api, &sim, &ns, "eas");
    let env = Env {
        api,
        sim,
        operator,
        kubectl,
        namespace: ns,
    };
    env.kubectl.apply(&manifest("with-secret", "tenant"));

    let done = env
        .wait_obj(
            "Ready with the Secret's keys",
            "easservicerollout/with-secret",
            Duration::from_secs(120),
            |o| match condition(o, "Ready") {
                Some((status, _)) if status == "True" => Ok(()),
                other => Err(format!("Ready is {other:?}")),
            },
        )
        .await;
    assert_eq!(done["status"]["phase"], "Completed", "{done}");
    assert_eq!(env.sim.count("UpdateService").await, 1);
    let state = env.sim.state().await.to_string();
    assert!(
        state.contains("bert:v2"),
        "the cloud runs the new image: {state}"
    );

    let events = env
        .kubectl
        .must(&["get", "events.events.k8s.io", "-o", "json"]);
    let log = std::fs::read_to_string(&env.operator.log).expect("operator log readable");
    for (what, text) in [
        ("status", done.to_string()),
        ("Events", events),
        ("the operator's log", log),
    ] {
        assert!(
            !text.contains(secret_value),
            "the access key secret appears in {what}"
        );
    }
}

fn secret(id: &str, key: &str) -> BTreeMap<String, Vec<u8>> {
    [("accessKeyId", id), ("accessKeySecret", key)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_uses_its_secret_and_a_bad_or_missing_secret_degrades() {
    let api = cluster();
    let ns = namespace("creds");
    let kubectl = Kubectl::new(&api, &ns);
    // The simulator knows only the tenant's key; the operator itself has none.
    let sim = Sim::start_with_keys(
        SEED,
        100.0,
        vec![("tenant-id".into(), "tenant-secret".into())],
    )
    .await;
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
    let mut secrets = BTreeMap::new();
    secrets.insert(
        (ns.clone(), "good".to_string()),
        secret("tenant-id", "tenant-secret"),
    );
    secrets.insert(
        (ns.clone(), "stale".to_string()),
        secret("old-id", "old-secret"),
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let cx = Arc::new(Context::new(
        client.clone(),
        Arc::new(cloud),
        Arc::new(FakeSecrets(secrets)),
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
            grace: Duration::from_secs(30),
            recheck: Duration::from_secs(60),
            unknown_after: Duration::from_secs(300),
        },
        RetryPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(1),
        },
    ));
    let rollouts: Api<EasServiceRollout> = Api::namespaced(client, &ns);
    kubectl.apply(&manifest("with-good", "good"));
    kubectl.apply(&manifest("with-missing", "missing"));
    kubectl.apply(&manifest("with-stale", "stale"));

    // Reconcile by hand (no watch) until each settles.
    let drive = |name: &'static str, done: fn(&serde_json::Value) -> bool| {
        let rollouts = rollouts.clone();
        let cx = cx.clone();
        let kubectl = &kubectl;
        async move {
            for _ in 0..60 {
                let obj = rollouts.get(name).await.expect("object readable");
                let _ = reconcile(Arc::new(obj), cx.clone()).await;
                let seen = kubectl.get(&format!("easservicerollout/{name}"));
                if done(&seen) {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            panic!(
                "{name} did not settle: {}",
                kubectl.get(&format!("easservicerollout/{name}"))
            );
        }
    };

    let good = drive("with-good", |o| {
        condition(o, "Ready").map(|c| c.0).as_deref() == Some("True")
    })
    .await;
    assert_eq!(good["status"]["phase"], "Completed", "{good}");
    assert_eq!(sim.count("UpdateService").await, 1);

    let missing = drive("with-missing", |o| {
        condition(o, "Degraded").map(|c| c.0).as_deref() == Some("True")
    })
    .await;
    let (_, reason) = condition(&missing, "Degraded").expect("Degraded");
    assert_eq!(reason, "CredentialsUnavailable", "{missing}");
    assert!(
        missing["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"missing\""),
        "{missing}"
    );

    let stale = drive("with-stale", |o| {
        condition(o, "Degraded").map(|c| c.0).as_deref() == Some("True")
    })
    .await;
    let (_, reason) = condition(&stale, "Degraded").expect("Degraded");
    // The cloud's code, made a valid condition reason (no dots).
    assert_eq!(
        reason, "InvalidAccessKeyId_NotFound",
        "the cloud's code: {stale}"
    );
    assert!(
        !stale.to_string().contains("old-secret"),
        "no secret in status: {stale}"
    );
    // Only the good resource changed anything in the cloud.
    assert_eq!(sim.count("UpdateService").await, 1);
    // The stale key is refused at its first read: nothing was created for it.
    assert_eq!(sim.count("CreateServiceRollout").await, 1);
}
