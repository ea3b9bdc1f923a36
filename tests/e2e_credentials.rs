//! Per-resource credentials (`spec.credentialsSecretRef`), reconciled in-process against
//! the real API server and the simulator. The local API server serves no Secrets, so the
//! Secret source is a test double; everything else (the cloud client, its signing, the
//! status writes, the finalizer) is the real thing.

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
use support::e2e::{Kubectl, Sim, cluster, condition, namespace};

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
        },
        RetryPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(1),
        },
    ));
    let rollouts: Api<EasServiceRollout> = Api::namespaced(client, &ns);
    let manifest = |name: &str, secret: &str| {
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": name},
            "spec": {
                "region": "cn-hangzhou",
                "serviceName": "bert_embeddings",
                "strategy": {"partition": "0"},
                "credentialsSecretRef": {"name": secret},
                "serviceConfig": {"containers": [{"image": "bert:v2"}]}
            }
        })
        .to_string()
    };
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
