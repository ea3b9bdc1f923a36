//! What the three controllers share: the watch, the finalizer branch, error handling,
//! backoff, metrics, Events and the tracing span around each reconcile.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::context::{Context, FINALIZER, jitter, write_status};
use super::error::{Error, Reaction};

/// One custom resource kind driven by this operator.
#[async_trait]
pub trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// Label used in metrics, logs and `--kinds`.
    const LABEL: &'static str;
    /// Whether deletion needs the operator (a cloud cleanup); without it no finalizer is
    /// added and deleting the resource leaves the cloud as it is.
    const NEEDS_FINALIZER: bool = true;
    type Status: Serialize + Send + Sync;

    /// Bring the cloud in line with the spec and write the status.
    async fn apply(obj: Arc<Self>, cx: &Context) -> Result<Action, Error>;
    /// The resource is being deleted: honour its deletion policy.
    async fn cleanup(obj: Arc<Self>, cx: &Context) -> Result<Action, Error>;
    /// The status to write when a reconcile failed and waits for a spec change.
    fn degraded_status(&self, err: &Error, now: jiff::Timestamp) -> Self::Status;
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// One reconcile: the finalizer is the one top-level branch (apply or cleanup).
pub async fn reconcile<K: Reconciled>(obj: Arc<K>, cx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let span = tracing::info_span!("reconcile", kind = K::LABEL, %namespace, %name);
    async move {
        let started = Instant::now();
        cx.metrics.reconcile(K::LABEL);
        let api: Api<K> = Api::namespaced(cx.client.clone(), &namespace);
        let result = if K::NEEDS_FINALIZER {
            finalizer(&api, FINALIZER, obj.clone(), |event| async {
                match event {
                    FinalizerEvent::Apply(o) => K::apply(o, &cx).await,
                    FinalizerEvent::Cleanup(o) => K::cleanup(o, &cx).await,
                }
            })
            .await
            .map_err(Error::from)
        } else if obj.meta().deletion_timestamp.is_some() {
            Ok(Action::await_change())
        } else {
            K::apply(obj.clone(), &cx).await
        };
        cx.metrics.observe(K::LABEL, started.elapsed());
        match result {
            Ok(action) => {
                cx.clear_failures(&key(obj.as_ref()));
                Ok(action)
            }
            Err(err) => {
                let reason = err.reason();
                cx.metrics.failure(K::LABEL, &reason);
                let note = match err.request_id() {
                    Some(id) => format!("{err} (RequestId {id})"),
                    None => err.to_string(),
                };
                tracing::warn!(error = %err, %reason, "reconcile failed");
                cx.event(obj.as_ref(), EventType::Warning, &reason, "Reconcile", note)
                    .await;
                if err.reaction() == Reaction::WaitForChange {
                    // Say why and wait for a spec change; look again only slowly.
                    let status = obj.degraded_status(&err, jiff::Timestamp::now());
                    if let Err(e) = write_status(&api, obj.as_ref(), &status).await {
                        tracing::warn!(error = %e, "could not write the Degraded status");
                        return Err(e);
                    }
                    cx.clear_failures(&key(obj.as_ref()));
                    Ok(after_terminal(&err, cx.timing.settled))
                } else {
                    Err(err)
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Conditions for a failure that is not the cloud's (credentials, invalid spec): Ready
/// False and Degraded True with the error's reason.
pub fn local_degraded(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    generation: Option<i64>,
    err: &Error,
    now: jiff::Timestamp,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    use super::conditions::{Desired, merge};
    use crate::crd::{CONDITION_DEGRADED, CONDITION_READY};
    let reason = err.reason();
    let message = err.to_string();
    merge(
        previous,
        &[
            Desired::new(CONDITION_READY, false, reason.clone(), message.clone()),
            Desired::new(CONDITION_DEGRADED, true, reason, message),
        ],
        generation,
        now,
    )
}

/// When to look again at an ESA rollout: the planner's due time (a step's pause), the
/// operator's active poll while a mutation was just sent or one is in flight (the planner's
/// in-flight poll is capped by `--active-poll`), the settled poll otherwise.
pub fn esa_requeue(
    sent: bool,
    planned: Option<std::time::Duration>,
    timing: super::eas_plan::Timing,
) -> std::time::Duration {
    match planned {
        _ if sent => planned.unwrap_or(timing.active).min(timing.active),
        Some(d) if d == super::steps::POLL_IN_FLIGHT => d.min(timing.active),
        Some(d) => d,
        None => timing.settled,
    }
}

/// After a failure that waits for a change: the cloud rejected this exact input, so only a
/// spec change (which the watch delivers) can help; an unreadable credentials Secret can
/// be fixed without touching the spec, so that is looked at again at the slow interval.
pub fn after_terminal(err: &Error, settled: std::time::Duration) -> Action {
    match err {
        Error::Credentials(_) => Action::requeue(jitter(settled)),
        _ => Action::await_change(),
    }
}

/// After a failed reconcile: back off per object, harder when throttled.
pub fn error_policy<K: Reconciled>(obj: Arc<K>, err: &Error, cx: Arc<Context>) -> Action {
    let delay = cx.next_retry(&key(obj.as_ref()), err.reaction(), err.retry_after());
    tracing::debug!(kind = K::LABEL, name = %obj.name_any(), ?delay, "retrying later");
    Action::requeue(delay)
}

/// Watch `K` (in `namespace`, or everywhere), skipping objects that do not parse as `K`
/// so that one malformed object never stops the watch for the others. A skipped object is
/// not silent: it is logged and gets a Warning Event and a Degraded condition saying what
/// to fix (once per generation). Only generation (spec, deletion) and finalizer changes
/// trigger a reconcile, so status writes do not loop.
pub fn watch<K: Reconciled>(
    cx: Arc<Context>,
    namespace: Option<&str>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) {
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(cx.client.clone(), ns, &ar),
        None => Api::all_with(cx.client.clone(), &ar),
    };
    let reported: Arc<std::sync::Mutex<HashSet<(String, i64)>>> = Arc::default();
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let cx = cx.clone();
            let reported = reported.clone();
            async move {
                match event {
                    Ok(e) => typed_event::<K>(e, &|obj, error| {
                        report_malformed::<K>(&cx, &reported, obj, error)
                    })
                    .map(Ok),
                    Err(e) => Some(Err(e)),
                }
            }
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        );
    (reader, stream)
}

fn object_id(obj: &DynamicObject) -> String {
    format!(
        "{}/{}",
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        obj.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `obj` as `K`, or the reason it is not one.
fn parse<K: Reconciled>(obj: &DynamicObject) -> Result<K, String> {
    obj.clone().try_parse::<K>().map_err(|e| e.to_string())
}

/// The watch event as `K`; an object that does not parse is handed to `malformed` (when
/// it is created or changed) and left out.
fn typed_event<K: Reconciled>(
    event: watcher::Event<DynamicObject>,
    malformed: &dyn Fn(&DynamicObject, &str),
) -> Option<watcher::Event<K>> {
    let apply = |o: DynamicObject| match parse::<K>(&o) {
        Ok(k) => Some(k),
        Err(e) => {
            malformed(&o, &e);
            None
        }
    };
    Some(match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(apply(o)?),
        watcher::Event::InitApply(o) => watcher::Event::InitApply(apply(o)?),
        watcher::Event::Delete(o) => watcher::Event::Delete(parse::<K>(&o).ok()?),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    })
}

/// The status patch that marks an object the operator cannot read.
fn malformed_status(
    kind: &str,
    generation: Option<i64>,
    error: &str,
    now: jiff::Timestamp,
) -> serde_json::Value {
    let message = format!(
        "this {kind} does not match the schema the operator understands ({error}); it was probably \
         stored before the CRD's validation was installed: fix the spec and apply it again"
    );
    let condition = |type_: &str, status: &str| {
        serde_json::json!({
            "type": type_,
            "status": status,
            "reason": "InvalidObject",
            "message": message,
            "lastTransitionTime": now.to_string(),
            "observedGeneration": generation,
        })
    };
    serde_json::json!({
        "status": {
            "observedGeneration": generation,
            "phase": "Degraded",
            "message": message,
            "conditions": [
                condition("Ready", "False"),
                condition("Progressing", "False"),
                condition("Degraded", "True"),
            ],
        }
    })
}

/// Log, Event and Degraded condition for an object that does not parse, once per
/// generation; the writes run in the background so the watch never waits on them.
fn report_malformed<K: Reconciled>(
    cx: &Arc<Context>,
    reported: &std::sync::Mutex<HashSet<(String, i64)>>,
    obj: &DynamicObject,
    error: &str,
) {
    let id = object_id(obj);
    let generation = obj.metadata.generation;
    tracing::warn!(kind = K::LABEL, object = %id, error = %error, "skipping an object that does not parse");
    let key = (
        obj.metadata.uid.clone().unwrap_or_else(|| id.clone()),
        generation.unwrap_or_default(),
    );
    {
        let mut seen = reported.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.insert(key) {
            return;
        }
    }
    let (Some(namespace), Some(name)) = (obj.metadata.namespace.clone(), obj.metadata.name.clone())
    else {
        return;
    };
    let cx = cx.clone();
    let obj = obj.clone();
    let error = error.to_string();
    tokio::spawn(async move {
        let ar = ApiResource::erase::<K>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), &namespace, &ar);
        let kind = K::kind(&()).to_string();
        let patch = malformed_status(&kind, generation, &error, jiff::Timestamp::now());
        if let Err(e) = api
            .patch_status(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(kind = K::LABEL, object = %format!("{namespace}/{name}"), error = %e, "could not mark a malformed object Degraded");
        }
        let reference = obj.object_ref(&ar);
        let ev = kube::runtime::events::Event {
            type_: EventType::Warning,
            reason: "InvalidObject".to_string(),
            note: Some(format!(
                "does not match the {kind} schema the operator understands: {}",
                error.chars().take(800).collect::<String>()
            )),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = cx.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    });
}

/// Run the controller for `K` until shutdown.
pub async fn run_controller<K: Reconciled>(cx: Arc<Context>, namespace: Option<String>) {
    let (reader, stream) = watch::<K>(cx.clone(), namespace.as_deref());
    tracing::info!(
        kind = K::LABEL,
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "starting controller"
    );
    Controller::for_stream(stream, reader)
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, cx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(kind = K::LABEL, error = %e, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::CloudError;
    use std::time::Duration;

    #[test]
    fn terminal_cloud_errors_wait_for_a_change_and_credentials_are_rechecked_slowly() {
        let settled = Duration::from_secs(300);
        let refused = Error::cloud(
            "RollbackEdgeContainerAppVersion",
            CloudError::Api {
                status: 400,
                code: "InvalidParameter".into(),
                message: "no".into(),
                request_id: None,
                retry_after: None,
            },
        );
        assert_eq!(after_terminal(&refused, settled), Action::await_change());
        assert_eq!(
            after_terminal(&Error::InvalidSpec("x".into()), settled),
            Action::await_change()
        );
        assert_ne!(
            after_terminal(&Error::Credentials("x".into()), settled),
            Action::await_change()
        );
    }

    #[test]
    fn esa_requeue_table() {
        use super::super::eas_plan::Timing;
        use super::super::steps::POLL_IN_FLIGHT;
        let t = Timing {
            active: Duration::from_secs(2),
            settled: Duration::from_secs(300),
        };
        let cases = [
            (true, None, t.active),
            (true, Some(Duration::from_secs(60)), t.active),
            (false, Some(POLL_IN_FLIGHT), t.active),
            (
                false,
                Some(Duration::from_secs(42)),
                Duration::from_secs(42),
            ),
            (false, None, t.settled),
        ];
        for (sent, planned, want) in cases {
            assert_eq!(esa_requeue(sent, planned, t), want, "{sent} {planned:?}");
        }
    }

    fn dynamic(name: &str, spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": spec,
        }))
        .expect("a dynamic object")
    }

    #[test]
    fn a_malformed_object_is_marked_degraded_with_what_to_fix() {
        let now = jiff::Timestamp::from_second(1_800_000_000).expect("valid");
        let patch = malformed_status("EasServiceRollout", Some(3), "invalid type: string", now);
        let status = &patch["status"];
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(status["phase"], "Degraded");
        let conditions = status["conditions"].as_array().expect("conditions");
        let get = |t: &str| {
            conditions
                .iter()
                .find(|c| c["type"] == t)
                .expect("condition present")
        };
        assert_eq!(get("Degraded")["status"], "True");
        assert_eq!(get("Ready")["status"], "False");
        assert_eq!(get("Degraded")["reason"], "InvalidObject");
        let message = get("Degraded")["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("invalid type: string") && message.contains("fix the spec"),
            "{message}"
        );
    }

    #[test]
    fn objects_that_do_not_parse_are_skipped_and_the_rest_pass() {
        use crate::crd::EasServiceRollout;
        let good = dynamic(
            "good",
            serde_json::json!({"region": "cn-shanghai", "serviceName": "s", "strategy": {"partition": "1"}}),
        );
        let bad = dynamic(
            "bad",
            serde_json::json!({"region": 7, "strategy": "all at once"}),
        );
        let seen = std::cell::RefCell::new(Vec::new());
        let note = |o: &DynamicObject, e: &str| {
            seen.borrow_mut()
                .push((o.metadata.name.clone().unwrap_or_default(), e.to_string()))
        };
        match typed_event::<EasServiceRollout>(watcher::Event::Apply(good.clone()), &note) {
            Some(watcher::Event::Apply(o)) => assert_eq!(o.metadata.name.as_deref(), Some("good")),
            other => panic!("good object dropped: {other:?}"),
        }
        assert!(seen.borrow().is_empty(), "a good object is not reported");
        assert!(
            typed_event::<EasServiceRollout>(watcher::Event::Apply(bad.clone()), &note).is_none()
        );
        assert!(
            typed_event::<EasServiceRollout>(watcher::Event::InitApply(bad.clone()), &note)
                .is_none()
        );
        assert!(typed_event::<EasServiceRollout>(watcher::Event::Delete(bad), &note).is_none());
        let reported = seen.borrow();
        assert_eq!(
            reported.len(),
            2,
            "created/changed malformed objects are reported, deletions not"
        );
        assert!(
            reported
                .iter()
                .all(|(name, e)| name == "bad" && e.contains("invalid type")),
            "{reported:?}"
        );
        assert!(matches!(
            typed_event::<EasServiceRollout>(watcher::Event::InitDone, &note),
            Some(watcher::Event::InitDone)
        ));
    }
}
