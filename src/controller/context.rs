//! What every reconciler shares: the Kubernetes client, the one cloud client, the event
//! recorder, metrics, timing, and per-object failure counts for backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use rand::Rng;
use serde::Serialize;

use super::eas_plan::Timing;
use super::error::{Error, Reaction, backoff};
use super::metrics::Metrics;
use crate::cloud::{CloudApi, Credentials};
use crate::crd::SecretRef;

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "alicloud-rollouts";
/// The finalizer that lets the operator clean up the cloud side before a resource goes.
pub const FINALIZER: &str = "rollouts.alicloud.dev/cleanup";

/// Where per-resource credentials come from (a Secret in the resource's namespace).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The Secret's data, `Ok(None)` when it does not exist, `Err` with a reason when it
    /// cannot be read.
    async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String>;
}

/// Secrets read from the Kubernetes API.
pub struct KubeSecrets(pub kube::Client);

#[async_trait]
impl SecretSource for KubeSecrets {
    async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let api: Api<Secret> = Api::namespaced(self.0.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(Some(
                secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            )),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Retry timing for failed reconciles.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

/// Shared by every reconcile of every kind.
pub struct Context {
    pub client: kube::Client,
    pub cloud: Arc<dyn CloudApi>,
    pub secrets: Arc<dyn SecretSource>,
    /// Records failures: a failure repeated within minutes becomes one Event with a count.
    pub recorder: Recorder,
    reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub timing: Timing,
    pub retry: RetryPolicy,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        cloud: Arc<dyn CloudApi>,
        secrets: Arc<dyn SecretSource>,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        timing: Timing,
        retry: RetryPolicy,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client,
            cloud,
            secrets,
            reporter,
            metrics,
            timing,
            retry,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The cloud client to use for a resource: the operator's own, or the same client
    /// with the credentials of the resource's Secret.
    pub async fn cloud_for(
        &self,
        namespace: &str,
        secret_ref: Option<&SecretRef>,
    ) -> Result<Arc<dyn CloudApi>, Error> {
        let Some(secret_ref) = secret_ref else {
            return Ok(self.cloud.clone());
        };
        let credentials = credentials_from_secret(
            &secret_ref.name,
            self.secrets.read(namespace, &secret_ref.name).await,
        )?;
        Ok(self.cloud.with_credentials(credentials))
    }

    /// Delay before retrying `key` after a failure; grows with each consecutive failure.
    pub fn next_retry(
        &self,
        key: &str,
        reaction: Reaction,
        at_least: Option<Duration>,
    ) -> Duration {
        let attempt = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = backoff(reaction, attempt, self.retry.base, self.retry.cap);
        jitter(delay.max(at_least.unwrap_or_default()))
    }

    /// Forget the failures of `key` after a successful reconcile.
    pub fn clear_failures(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }

    /// Publish an Event about `obj`; a failure to publish is logged, never fatal.
    pub async fn event<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let ev = Event {
            type_,
            reason: truncate(reason, 128),
            note: Some(truncate(&note, 1000)),
            action: truncate(action, 128),
            secondary: None,
        };
        // Each mutation gets its own Event: the shared recorder would fold a second
        // mutation with the same reason into the first one's series, keeping the first
        // note (and so the wrong RequestId).
        let recorder = match type_ {
            EventType::Normal => Recorder::new(self.client.clone(), self.reporter.clone()),
            EventType::Warning => self.recorder.clone(),
        };
        if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }
}

/// Write `status` with server-side apply under [`FIELD_MANAGER`].
pub async fn write_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = kube::api::PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&obj.name_any(), &params, &kube::api::Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Credentials from a Secret's data (`accessKeyId`, `accessKeySecret`, optional
/// `securityToken`), or why they cannot be had. Never puts a secret in the message.
/// Pure, so the path is tested without an API server (the local one has no Secrets).
pub fn credentials_from_secret(
    name: &str,
    read: Result<Option<BTreeMap<String, Vec<u8>>>, String>,
) -> Result<Credentials, Error> {
    let data = match read {
        Ok(Some(data)) => data,
        Ok(None) => {
            return Err(Error::Credentials(format!(
                "Secret {name:?} (spec.credentialsSecretRef) does not exist"
            )));
        }
        Err(e) => {
            return Err(Error::Credentials(format!(
                "Secret {name:?} (spec.credentialsSecretRef) cannot be read: {e}"
            )));
        }
    };
    Credentials::from_secret_data(&data).map_err(|e| {
        Error::Credentials(format!("Secret {name:?} (spec.credentialsSecretRef): {e}"))
    })
}

/// `d` spread by +-10% so that many objects do not poll in lockstep.
pub fn jitter(d: Duration) -> Duration {
    let factor: f64 = rand::rng().random_range(0.9..1.1);
    d.mul_f64(factor)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn credentials_from_a_complete_secret() {
        let c = credentials_from_secret(
            "creds",
            Ok(Some(data(&[
                ("accessKeyId", "AKID"),
                ("accessKeySecret", "s3cret\n"),
                ("securityToken", "tok"),
            ]))),
        )
        .expect("usable");
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.access_key_secret, "s3cret");
        assert_eq!(c.security_token.as_deref(), Some("tok"));
    }

    #[test]
    fn unusable_secrets_say_why_without_leaking() {
        let cases = [
            (Ok(None), "does not exist"),
            (
                Err("the server could not find the requested resource".to_string()),
                "cannot be read",
            ),
            (
                Ok(Some(data(&[("accessKeyId", "AKID")]))),
                "accessKeySecret",
            ),
            (
                Ok(Some(data(&[
                    ("accessKeyId", ""),
                    ("accessKeySecret", "s3cret"),
                ]))),
                "is empty",
            ),
        ];
        for (read, needle) in cases {
            let err = credentials_from_secret("creds", read).expect_err("unusable");
            let shown = err.to_string();
            assert!(shown.contains(needle), "{shown}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert_eq!(err.reaction(), Reaction::WaitForChange);
            assert_eq!(err.reason(), "CredentialsUnavailable");
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
