//! What every reconciler shares: the Kubernetes client, the one cloud client, the event
//! recorder, metrics, timing, and per-object failure counts for backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use super::error::{Error, Reaction, backoff};
use super::metrics::Metrics;
use super::requeue::{Timing, jitter};
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

/// The object a status is written to.
#[derive(Debug, Clone)]
pub struct StatusTarget {
    pub resource: ApiResource,
    pub namespace: String,
    pub name: String,
}

/// What the reconcilers write to the cluster besides finalizers: status and Events. A
/// seam, so that a kind's shell can be tested without an API server.
#[async_trait]
pub trait ClusterWrites: Send + Sync {
    /// Server-side apply `status` (the whole `status` object) under [`FIELD_MANAGER`].
    async fn write_status(
        &self,
        target: &StatusTarget,
        status: serde_json::Value,
    ) -> Result<(), kube::Error>;
    /// Publish an Event about `reference`.
    async fn publish(&self, reference: &ObjectReference, event: &Event) -> Result<(), kube::Error>;
}

/// Status and Events through the Kubernetes API.
pub struct KubeWrites {
    client: kube::Client,
    reporter: Reporter,
    /// Shared by Warnings, so that a failure repeated within minutes becomes one Event
    /// series with a count.
    recorder: Recorder,
}

impl KubeWrites {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        KubeWrites {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client,
            reporter,
        }
    }
}

#[async_trait]
impl ClusterWrites for KubeWrites {
    async fn write_status(
        &self,
        target: &StatusTarget,
        status: serde_json::Value,
    ) -> Result<(), kube::Error> {
        let patch = serde_json::json!({
            "apiVersion": target.resource.api_version,
            "kind": target.resource.kind,
            "status": status,
        });
        let params = kube::api::PatchParams::apply(FIELD_MANAGER).force();
        let url = DynamicObject::url_path(&target.resource, Some(&target.namespace));
        let request = kube::core::Request::new(url)
            .patch_subresource(
                "status",
                &target.name,
                &params,
                &kube::api::Patch::Apply(&patch),
            )
            .map_err(kube::Error::BuildRequest)?;
        // The answer (the whole object) is not decoded: an object nested deeper than the
        // JSON reader allows (stored before the schema bounded it) must not turn a status
        // write that succeeded into an error.
        self.client.request_text(request).await?;
        Ok(())
    }

    async fn publish(&self, reference: &ObjectReference, event: &Event) -> Result<(), kube::Error> {
        // Each mutation gets its own Event: the shared recorder would fold a second
        // mutation with the same reason into the first one's series, keeping the first
        // note (and so the wrong RequestId).
        match event.type_ {
            EventType::Normal => {
                Recorder::new(self.client.clone(), self.reporter.clone())
                    .publish(event, reference)
                    .await
            }
            EventType::Warning => self.recorder.publish(event, reference).await,
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
    /// Status writes and Events.
    pub writes: Arc<dyn ClusterWrites>,
    pub metrics: Arc<Metrics>,
    pub timing: Timing,
    pub retry: RetryPolicy,
    /// Which resource owns which cloud object.
    pub owners: super::owners::Owners,
    /// Whether this replica may mutate the cloud (always, without leader election).
    pub leadership: super::leader::Leadership,
    /// Heartbeats and cache sync of the controller loops (/healthz, /readyz).
    pub health: Arc<super::health::Health>,
    /// Reconcile concurrency, settled-poll slots and the start-up spread.
    pub schedule: super::schedule::Schedule,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        cloud: Arc<dyn CloudApi>,
        secrets: Arc<dyn SecretSource>,
        writes: Arc<dyn ClusterWrites>,
        metrics: Arc<Metrics>,
        timing: Timing,
        retry: RetryPolicy,
    ) -> Self {
        Context {
            client,
            cloud,
            secrets,
            writes,
            metrics,
            timing,
            retry,
            owners: Default::default(),
            leadership: Default::default(),
            health: Default::default(),
            schedule: Default::default(),
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

    /// Delay before looking again at `key`, which needs a person; grows with each look.
    pub fn next_recheck(&self, key: &str) -> Duration {
        let attempt = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        jitter(self.timing.recheck_after(attempt))
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
        // Without the resourceVersion: a repeated Warning stays one Event series even though
        // the object changed in between (each status write changes it).
        let mut reference = obj.object_ref(&());
        reference.resource_version = None;
        if let Err(e) = self.writes.publish(&reference, &ev).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }

    /// Write `obj`'s status (server-side apply under [`FIELD_MANAGER`]).
    pub async fn write_status<K, S>(&self, obj: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()>,
        S: Serialize,
    {
        let target = StatusTarget {
            resource: ApiResource::erase::<K>(&()),
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
        };
        let status = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
        self.writes.write_status(&target, status).await?;
        Ok(())
    }
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
            assert_eq!(err.reaction(), Reaction::NeedsPerson);
            assert_eq!(err.reason(), "CredentialsUnavailable");
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
