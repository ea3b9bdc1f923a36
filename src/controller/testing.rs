//! Test support for the kinds' shells: a context whose cloud is the in-memory
//! [`FakeCloud`] and whose status writes and Events are recorded (and can be made to
//! fail), so that the reconcile loop runs in `cargo test` with no API server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use serde_json::Value;

use super::context::{ClusterWrites, Context, RetryPolicy, SecretSource, StatusTarget};
use super::metrics::Metrics;
use super::requeue::Timing;
use crate::cloud::{CloudApi, FakeCloud};

/// One status write, with how many cloud mutations had been made before it.
#[derive(Debug, Clone)]
pub struct Written {
    pub status: Value,
    pub mutations_before: usize,
}

/// Records status writes and Events.
pub struct RecordingWrites {
    cloud: Arc<FakeCloud>,
    statuses: Mutex<Vec<Written>>,
    events: Mutex<Vec<(EventType, String, String)>>,
    /// 1-based numbers of the status writes that fail.
    failing: Mutex<BTreeSet<usize>>,
}

impl RecordingWrites {
    pub fn statuses(&self) -> Vec<Written> {
        self.statuses.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// (type, reason, note) of every Event, in order.
    pub fn events(&self) -> Vec<(EventType, String, String)> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Make the `n`-th status write (1-based, counting from the first) fail.
    pub fn fail_status_write(&self, n: usize) {
        if let Ok(mut f) = self.failing.lock() {
            f.insert(n);
        }
    }

    /// The last status written, as the API server would now hold it.
    pub fn last_status(&self) -> Option<Value> {
        self.statuses()
            .into_iter()
            .rev()
            .find(|w| !w.status.is_null())
            .map(|w| w.status)
    }
}

#[async_trait]
impl ClusterWrites for RecordingWrites {
    async fn write_status(&self, _: &StatusTarget, status: Value) -> Result<(), kube::Error> {
        let mut written = self.statuses.lock().map_err(|_| poisoned())?;
        let n = written.len() + 1;
        if self.failing.lock().map_err(|_| poisoned())?.contains(&n) {
            // A failed write does not count as written, but keeps its number.
            written.push(Written {
                status: Value::Null,
                mutations_before: self.cloud.mutations().len(),
            });
            return Err(kube::Error::Api(
                kube::core::Status::failure("injected status write failure", "InternalError")
                    .with_code(500)
                    .boxed(),
            ));
        }
        written.push(Written {
            status,
            mutations_before: self.cloud.mutations().len(),
        });
        Ok(())
    }

    async fn publish(&self, _: &ObjectReference, event: &Event) -> Result<(), kube::Error> {
        if let Ok(mut e) = self.events.lock() {
            e.push((
                event.type_,
                event.reason.clone(),
                event.note.clone().unwrap_or_default(),
            ));
        }
        Ok(())
    }
}

fn poisoned() -> kube::Error {
    kube::Error::Api(kube::core::Status::failure("poisoned", "InternalError").boxed())
}

/// No Secrets at all.
pub struct NoSecrets;

#[async_trait]
impl SecretSource for NoSecrets {
    async fn read(&self, _: &str, _: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok(None)
    }
}

/// A shell under test: the context, the fake cloud and the recorded writes.
pub struct Harness {
    pub cx: Context,
    pub cloud: Arc<FakeCloud>,
    pub writes: Arc<RecordingWrites>,
}

impl Harness {
    pub fn new() -> Self {
        Harness::with_grace(Duration::from_secs(30))
    }

    /// A harness whose cloud has `grace` to show an accepted mutation.
    pub fn with_grace(grace: Duration) -> Self {
        let cloud = FakeCloud::new();
        let writes = Arc::new(RecordingWrites {
            cloud: cloud.clone(),
            statuses: Mutex::default(),
            events: Mutex::default(),
            failing: Mutex::default(),
        });
        // Never used for requests: status and Events go to `writes`, and the shells under
        // test are called without the finalizer.
        let config = kube::Config::new(
            "http://127.0.0.1:9"
                .parse()
                .unwrap_or_else(|_| http::Uri::from_static("http://127.0.0.1:9")),
        );
        let client = kube::Client::try_from(config).unwrap_or_else(|e| panic!("client: {e}"));
        let mut registry = prometheus_client::registry::Registry::default();
        let mut cx = Context::new(
            client,
            cloud.clone() as Arc<dyn CloudApi>,
            Arc::new(NoSecrets),
            writes.clone(),
            Arc::new(Metrics::new(&mut registry)),
            Timing {
                active: Duration::from_secs(5),
                settled: Duration::from_secs(300),
                grace,
                recheck: Duration::from_secs(60),
                unknown_after: Duration::from_secs(3600),
            },
            RetryPolicy {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(60),
            },
        );
        cx.accounts = Arc::new(super::accounts::Accounts::with_view(Arc::new(
            open_default_account(),
        )));
        Harness { cx, cloud, writes }
    }

    /// The names of the mutations the cloud received, in order, without the ownership
    /// marker's label calls (their own tests are in `controller::marker`; see
    /// [`Harness::all_mutations`]).
    pub fn mutations(&self) -> Vec<&'static str> {
        self.all_mutations()
            .into_iter()
            .filter(|a| !matches!(*a, "UpdateServiceLabel" | "DeleteServiceLabel"))
            .collect()
    }

    /// The names of every mutation the cloud received, in order.
    pub fn all_mutations(&self) -> Vec<&'static str> {
        self.cloud.mutations().iter().map(|c| c.api).collect()
    }

    /// `obj` with the status the API server now holds (what the next reconcile sees).
    pub fn reread<K>(&self, obj: &K) -> K
    where
        K: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut v = serde_json::to_value(obj).unwrap_or_else(|e| panic!("serialise: {e}"));
        if let Some(status) = self.writes.last_status() {
            v["status"] = status;
        }
        serde_json::from_value(v).unwrap_or_else(|e| panic!("deserialise: {e}"))
    }
}

/// A cloud error as the cloud answers it.
pub fn api_error(status: u16, code: &str) -> crate::cloud::CloudError {
    crate::cloud::CloudError::Api {
        status,
        code: code.into(),
        message: "injected".into(),
        request_id: Some("injected-req".into()),
        retry_after: None,
    }
}

/// An object of kind `K` from its spec, as the API server would hand it over.
pub fn object<K: serde::de::DeserializeOwned>(kind: &str, spec: Value) -> K {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "r", "namespace": "ns", "generation": 2, "uid": "u-1"},
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("a {kind}: {e}"))
}

/// The one path of an invalid spec, the same for every kind: no cloud call at all, a
/// Warning Event, Degraded with reason InvalidSpec and what to fix, and a wait for a spec
/// change.
pub async fn assert_invalid_spec_path<K: super::runner::Rollout>(obj: K, what: &str) {
    let h = Harness::new();
    let action = super::runner::apply(&obj, &h.cx)
        .await
        .unwrap_or_else(|e| panic!("an invalid spec is reported, not retried: {e}"));
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert!(
        h.cloud.calls().is_empty(),
        "no cloud call: {:?}",
        h.cloud.calls()
    );
    let events = h.writes.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, EventType::Warning);
    assert_eq!(events[0].1, "InvalidSpec");
    assert!(events[0].2.contains(what), "{events:?}");
    let status = h
        .writes
        .last_status()
        .unwrap_or_else(|| panic!("a status is written"));
    assert_eq!(status["phase"], "Degraded");
    let degraded = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(degraded["status"], "True", "{status}");
    assert_eq!(degraded["reason"], "InvalidSpec", "{status}");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap_or_default()
            .contains(what),
        "{status}"
    );
    assert_eq!(status["observedGeneration"], 2);
}

/// The RequestId of the `n`-th mutation the fake cloud received.
pub fn mutation_request_id(cloud: &FakeCloud, n: usize) -> String {
    cloud
        .mutations()
        .get(n)
        .map(|c| c.request_id.clone())
        .unwrap_or_default()
}

/// One default account with the operator's own identity, granting every namespace (what
/// the shells' tests assume, as a migrated install would).
pub fn open_default_account() -> super::accounts::StaticView {
    let account: crate::crd::CloudAccount = serde_json::from_value(serde_json::json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "CloudAccount",
        "metadata": {"name": "everyone"},
        "spec": {"operatorIdentity": {}, "namespaces": {"selector": {}}, "default": true},
    }))
    .unwrap_or_else(|e| panic!("account: {e}"));
    super::accounts::StaticView {
        accounts: vec![Arc::new(account)],
        labels: BTreeMap::new(),
    }
}
