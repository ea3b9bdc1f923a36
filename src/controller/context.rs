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

/// What a resource asks of [`Context::cloud_for`].
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub namespace: &'a str,
    /// `spec.credentialsSecretRef`.
    pub secret_ref: Option<&'a SecretRef>,
    /// `spec.accountRef.name`.
    pub account: Option<&'a str>,
    /// The cloud object it drives.
    pub target: super::tenancy::Target,
}

impl<'a> Claim<'a> {
    /// What `obj` asks for its cloud object `cloud_ref` (`region/name[/env]`).
    pub fn of<K>(obj: &'a K, namespace: &'a str, label: &str, cloud_ref: &str) -> Self
    where
        K: super::status::RolloutObject,
    {
        Claim {
            namespace,
            secret_ref: obj.credentials(),
            account: obj.account(),
            target: super::tenancy::Target::from_cloud_ref(label, cloud_ref),
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
    /// Where this replica runs: the operator's own namespace and its name there (the
    /// Pod's). What a cleanup leaves in the cloud is reported there when the resource's
    /// own namespace refuses Events (it is being deleted).
    pub home: Home,
    /// Reconcile concurrency, settled-poll slots and the start-up spread.
    pub schedule: super::schedule::Schedule,
    /// The CloudAccounts and the clients they give (none by default: every rollout
    /// without its own credentials Secret is refused).
    pub accounts: Arc<super::accounts::Accounts>,
    /// This cluster's id in ownership markers (`--cluster-id`, else the kube-system
    /// namespace's uid; see [`super::marker`]).
    pub cluster_id: String,
    failures: Mutex<HashMap<String, u32>>,
    /// The in-flight mutation records of each object as of this operator's last pass (see
    /// [`super::intent::merge`]): kept even when the status write after it failed.
    in_flight: Mutex<HashMap<String, Vec<crate::crd::common::MutationInFlight>>>,
    /// Since when each failing resource has failed without a success in between.
    failing_since: Mutex<HashMap<String, jiff::Timestamp>>,
    /// The cloud client (with the credentials of its Secret) each resource that needs a
    /// cleanup last reconciled with successfully, by uid: a namespace deletion deletes the
    /// Secret and the resource together, often the Secret first. In memory only; dropped
    /// when the cleanup is done.
    remembered: Mutex<HashMap<String, Arc<dyn CloudApi>>>,
}

/// The operator's own namespace and this replica's name in it.
#[derive(Debug, Clone)]
pub struct Home {
    pub namespace: String,
    pub instance: String,
}

impl Default for Home {
    fn default() -> Self {
        Home {
            namespace: "default".into(),
            instance: "alicloud-rollouts".into(),
        }
    }
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
            home: Home::default(),
            schedule: Default::default(),
            accounts: Default::default(),
            cluster_id: "local".to_string(),
            failures: Mutex::new(HashMap::new()),
            failing_since: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// Keep `cloud` as the client resource `uid` works with: its credentials proved good.
    pub fn remember_cloud(&self, uid: &str, cloud: Arc<dyn CloudApi>) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        remembered.insert(uid.to_string(), cloud);
    }

    /// The client resource `uid` last worked with, if this process saw one.
    pub fn remembered_cloud(&self, uid: &str) -> Option<Arc<dyn CloudApi>> {
        let remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        remembered.get(uid).cloned()
    }

    /// Forget the client of resource `uid` (it is gone).
    pub fn forget_cloud(&self, uid: &str) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        remembered.remove(uid);
    }

    /// A cleanup left `what` in the cloud (a sentence naming the cloud object and why):
    /// logged, counted, and a Warning Event `CleanupSkipped` about `obj`; when `obj`'s
    /// namespace refuses it (a namespace being deleted refuses new objects), the Event
    /// goes to the operator's own namespace, about this replica, naming `obj`.
    pub async fn left_behind<K>(&self, obj: &K, label: &str, what: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let object = format!(
            "{} {}/{}",
            K::kind(&()),
            obj.namespace().unwrap_or_default(),
            obj.name_any()
        );
        let note = format!("{object}: {what}");
        tracing::warn!(kind = label, %object, "cleanup left something in the cloud: {what}");
        self.metrics.left_behind(label);
        let mut reference = obj.object_ref(&());
        reference.resource_version = None;
        let event = Event {
            type_: EventType::Warning,
            reason: "CleanupSkipped".into(),
            note: Some(truncate(&note, 1000)),
            action: "Cleanup".into(),
            secondary: None,
        };
        let Err(e) = self.writes.publish(&reference, &event).await else {
            return;
        };
        tracing::debug!(error = %e, "the resource's namespace refused the Event; reporting in the operator's");
        let here = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(self.home.namespace.clone()),
            name: Some(self.home.instance.clone()),
            ..ObjectReference::default()
        };
        let event = Event {
            secondary: Some(reference),
            ..event
        };
        if let Err(e) = self.writes.publish(&here, &event).await {
            tracing::warn!(error = %e, "could not publish an Event in the operator's namespace");
        }
    }

    /// The cloud client to use for a resource: the operator's client with the
    /// credentials of the resource's own Secret (`credentialsSecretRef`: the namespace's
    /// own keys, no account needed); otherwise with those of the CloudAccount the rollout
    /// resolves to, which must grant its namespace and its cloud object (see
    /// [`super::tenancy`]). Refused: no client, so no cloud call.
    pub async fn cloud_for(&self, claim: &Claim<'_>) -> Result<Arc<dyn CloudApi>, Error> {
        if let Some(secret_ref) = claim.secret_ref {
            let credentials = credentials_from_secret(
                &secret_ref.name,
                self.secrets.read(claim.namespace, &secret_ref.name).await,
            )?;
            return Ok(self.cloud.with_credentials(credentials));
        }
        let view = self.accounts.view();
        let labels = view.labels(claim.namespace);
        let account = super::tenancy::resolve(
            &view.accounts(),
            labels.as_ref(),
            &super::tenancy::Request {
                namespace: claim.namespace,
                account: claim.account,
                target: &claim.target,
            },
        )?;
        self.accounts
            .cloud_of(
                &account,
                &self.cloud,
                self.secrets.as_ref(),
                &self.home.namespace,
            )
            .await
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

    /// The in-flight records remembered for object `key`.
    pub fn remembered_in_flight(&self, key: &str) -> Vec<crate::crd::common::MutationInFlight> {
        let map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).cloned().unwrap_or_default()
    }

    /// Remember the in-flight records of object `key` (none: forget it).
    pub fn remember_in_flight(
        &self,
        key: &str,
        records: Vec<crate::crd::common::MutationInFlight>,
    ) {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if records.is_empty() {
            map.remove(key);
        } else {
            map.insert(key.to_string(), records);
        }
    }

    /// When `key` started failing (now, for its first failure since its last success).
    pub fn failing_since(&self, key: &str, now: jiff::Timestamp) -> jiff::Timestamp {
        let mut since = self.failing_since.lock().unwrap_or_else(|p| p.into_inner());
        *since.entry(key.to_string()).or_insert(now)
    }

    /// Forget the failures of `key` after a successful reconcile.
    pub fn clear_failures(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
        let mut since = self.failing_since.lock().unwrap_or_else(|p| p.into_inner());
        since.remove(key);
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
    credentials_from_data(
        &format!("Secret {name:?} (spec.credentialsSecretRef)"),
        read,
    )
}

/// Same, for the Secret `what` names (e.g. a CloudAccount's).
pub fn credentials_from_data(
    what: &str,
    read: Result<Option<BTreeMap<String, Vec<u8>>>, String>,
) -> Result<Credentials, Error> {
    let data = match read {
        Ok(Some(data)) => data,
        Ok(None) => return Err(Error::Credentials(format!("{what} does not exist"))),
        Err(e) => return Err(Error::Credentials(format!("{what} cannot be read: {e}"))),
    };
    Credentials::from_secret_data(&data).map_err(|e| Error::Credentials(format!("{what}: {e}")))
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
