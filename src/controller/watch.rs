//! The watch of one kind: objects are decoded one by one, and one that does not parse
//! is skipped and reported on itself instead of stopping the watch for the others.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource};

use super::context::Context;
use super::runner::Rollout;

/// Watch `K` (in `namespace`, or everywhere), skipping objects that do not parse as `K`
/// so that one malformed object never stops the watch for the others. A skipped object is
/// not silent: it is logged and gets a Warning Event and a Degraded condition saying what
/// to fix (once per generation). Only generation (spec, deletion) and finalizer changes
/// trigger a reconcile, so status writes do not loop.
pub fn watch<K: Rollout>(
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
fn parse<K: Rollout>(obj: &DynamicObject) -> Result<K, String> {
    obj.clone().try_parse::<K>().map_err(|e| e.to_string())
}

/// The watch event as `K`; an object that does not parse is handed to `malformed` (when
/// it is created or changed) and left out.
fn typed_event<K: Rollout>(
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
fn report_malformed<K: Rollout>(
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
        if let Err(e) = cx.writes.publish(&reference, &ev).await {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
