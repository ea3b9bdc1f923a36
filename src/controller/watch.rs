//! The watch of one kind: objects are decoded one by one, and one that does not parse
//! is skipped and reported on itself instead of stopping the watch for the others.
//!
//! The list and watch bodies are read as [`RawObject`]s: metadata without `managedFields`,
//! and `spec`/`status` kept as raw JSON text. serde_json skips a raw value without
//! recursing, so an object nested deeper than serde_json's recursion limit (128 levels)
//! no longer fails the whole list; it fails on its own when it is read as `K`, and only
//! that object is skipped. `managedFields` mirrors the shape of the spec (its depth
//! included) and the operator never reads it, so it is skipped as well, which also keeps
//! it out of the cache; so is kubectl's last-applied annotation (a copy of the manifest).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::context::Context;
use super::runner::Rollout;

/// Longest error text the operator writes in a log line, an Event or a status message
/// about an object it cannot read.
const MAX_ERROR_CHARS: usize = 400;

/// An object of kind `K` as it comes off the wire, before it is read as `K`: its
/// metadata (without `managedFields`) and its `spec` and `status` as raw JSON text.
pub struct RawObject<K> {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: ObjectMeta,
    pub spec: Option<Box<RawValue>>,
    pub status: Option<Box<RawValue>>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for RawObject<K> {
    fn clone(&self) -> Self {
        RawObject {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
            status: self.status.clone(),
            _kind: PhantomData,
        }
    }
}

/// Names the object and the size of its parts, never their content.
impl<K> fmt::Debug for RawObject<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawObject")
            .field("kind", &self.kind)
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("spec_bytes", &self.spec.as_ref().map(|s| s.get().len()))
            .field("status_bytes", &self.status.as_ref().map(|s| s.get().len()))
            .finish()
    }
}

impl<K: Resource<DynamicType = ()>> Resource for RawObject<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// kubectl's copy of the whole manifest as last applied: never read by the operator, and
/// as large as the spec, so it is not kept in the cache either.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `metadata` without `managedFields` (skipped without being parsed) and without kubectl's
/// last-applied annotation.
struct LenientMeta(ObjectMeta);

impl<'de> de::Deserialize<'de> for LenientMeta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetaVisitor;
        impl<'de> Visitor<'de> for MetaVisitor {
            type Value = LenientMeta;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("object metadata")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LenientMeta, A::Error> {
                let mut fields = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "managedFields" {
                        map.next_value::<IgnoredAny>()?;
                    } else if key == "annotations" {
                        let mut annotations: serde_json::Map<String, serde_json::Value> =
                            map.next_value()?;
                        annotations.remove(LAST_APPLIED);
                        fields.insert(key, serde_json::Value::Object(annotations));
                    } else {
                        fields.insert(key, map.next_value()?);
                    }
                }
                serde_json::from_value(serde_json::Value::Object(fields))
                    .map(LenientMeta)
                    .map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_map(MetaVisitor)
    }
}

impl<'de, K> de::Deserialize<'de> for RawObject<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<K>(PhantomData<fn() -> K>);
        impl<'de, K> Visitor<'de> for ObjectVisitor<K> {
            type Value = RawObject<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<K>, A::Error> {
                let mut object = RawObject {
                    api_version: None,
                    kind: None,
                    metadata: ObjectMeta::default(),
                    spec: None,
                    status: None,
                    _kind: PhantomData,
                };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "apiVersion" => object.api_version = map.next_value()?,
                        "kind" => object.kind = map.next_value()?,
                        "metadata" => object.metadata = map.next_value::<LenientMeta>()?.0,
                        "spec" => object.spec = map.next_value()?,
                        "status" => object.status = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// `raw` read as `K`, or why it cannot be (naming the field, never its value).
pub fn decode<K: Rollout>(raw: &RawObject<K>) -> Result<K, String> {
    let metadata = serde_json::to_string(&raw.metadata).map_err(|e| sanitize(&e.to_string()))?;
    let mut text = String::with_capacity(
        metadata.len()
            + raw.spec.as_ref().map_or(0, |s| s.get().len())
            + raw.status.as_ref().map_or(0, |s| s.get().len())
            + 128,
    );
    text.push_str("{\"metadata\":");
    text.push_str(&metadata);
    if let Some(spec) = &raw.spec {
        text.push_str(",\"spec\":");
        text.push_str(spec.get());
    }
    if let Some(status) = &raw.status {
        text.push_str(",\"status\":");
        text.push_str(status.get());
    }
    text.push('}');
    let mut json = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize::<_, K>(&mut json).map_err(|e| {
        let inner = e.inner();
        let path = short_path(&e.path().to_string());
        if inner.to_string().starts_with("recursion limit exceeded") {
            format!(
                "{path}: nested more than 128 levels deep, deeper than the operator reads \
                 (the schema allows only a few levels)"
            )
        } else {
            // serde_json appends "at line 1 column N" of the text built above: not the
            // user's manifest, so leave it out.
            let cause = inner.to_string();
            let cause = cause.split(" at line ").next().unwrap_or_default();
            sanitize(&format!("{path}: {cause}"))
        }
    })
}

/// The first few segments of a field path, at most 64 characters: enough to say where to
/// look, without the user's own keys deep inside a document.
fn short_path(path: &str) -> String {
    const SEGMENTS: usize = 4;
    const CHARS: usize = 64;
    let segments: Vec<&str> = path.split('.').collect();
    let head = segments[..segments.len().min(SEGMENTS)].join(".");
    let mut out: String = head.chars().take(CHARS).collect();
    if segments.len() > SEGMENTS || head.chars().count() > CHARS {
        out.push('…');
    }
    out
}

/// Error text fit for a log line, an Event or a status: quoted values (which may be a
/// user's data) are replaced by `"…"` and the whole is cut to [`MAX_ERROR_CHARS`].
pub fn sanitize(error: &str) -> String {
    let mut out = String::with_capacity(error.len().min(MAX_ERROR_CHARS + 4));
    let mut chars = error.chars();
    while let Some(c) = chars.next() {
        if c == '"' {
            // Skip to the closing quote, honouring backslash escapes.
            let mut escaped = false;
            for c in chars.by_ref() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => escaped = false,
                }
            }
            out.push_str("\"…\"");
        } else {
            out.push(c);
        }
        if out.chars().count() > MAX_ERROR_CHARS {
            out = out.chars().take(MAX_ERROR_CHARS).collect();
            out.push('…');
            break;
        }
    }
    out
}

/// What the watch remembers about the objects it could not read.
#[derive(Default)]
struct Skipped {
    /// (uid, generation) already reported with an Event and a status.
    reported: HashSet<(String, i64)>,
    /// (namespace, name) flagged in the metric now.
    flagged: HashSet<(String, String)>,
    /// (namespace, name) found unreadable since the last relist began.
    seen_in_relist: HashSet<(String, String)>,
}

/// Watch `K` (in `namespace`, or everywhere), skipping objects that do not parse as `K`
/// so that one malformed object never stops the watch for the others. A skipped object is
/// not silent: it is logged (by name, with the cause), counted in the
/// `alicloud_rollouts_undecodable_objects` metric, and gets a Warning Event and a
/// Degraded condition saying what to fix (once per generation). Only generation (spec,
/// deletion) and finalizer changes trigger a reconcile, so status writes do not loop.
pub fn watch<K: Rollout>(
    cx: Arc<Context>,
    namespace: Option<&str>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) {
    let api: Api<RawObject<K>> = match namespace {
        Some(ns) => Api::namespaced(cx.client.clone(), ns),
        None => Api::all(cx.client.clone()),
    };
    let skipped: Arc<std::sync::Mutex<Skipped>> = Arc::default();
    let (reader, writer) = reflector::store();
    let known = reader.clone();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let cx = cx.clone();
            let skipped = skipped.clone();
            let known = known.clone();
            async move {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => return Some(Err(e)),
                };
                let previous = |o: &RawObject<K>| {
                    let name = o.metadata.name.as_deref()?;
                    let mut key = ObjectRef::<K>::new(name);
                    if let Some(ns) = o.metadata.namespace.as_deref() {
                        key = key.within(ns);
                    }
                    known.get(&key).map(|k| k.as_ref().clone())
                };
                let outcome = |seen: Seen<'_, K>| note_outcome::<K>(&cx, &skipped, seen);
                typed_event::<K>(event, &previous, &outcome).map(Ok)
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

fn object_id(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// What the watch saw, for the metric and the reports.
enum Seen<'a, K> {
    /// A relist begins (`true`) or ends (`false`).
    Relist(bool),
    /// An object, with the reason it cannot be read (`None` when it can).
    Object(&'a RawObject<K>, Option<&'a str>),
    /// An object was deleted.
    Deleted(&'a RawObject<K>),
}

/// The watch event as `K`. Each object is handed to `outcome` with the reason it cannot
/// be read (`None` when it can), and relist boundaries are passed on too. An object that
/// cannot be read is left out; if the cache holds an earlier, readable version
/// (`previous`), that version is removed from it, so the operator never acts on a spec that is no longer the object's.
fn typed_event<K: Rollout>(
    event: watcher::Event<RawObject<K>>,
    previous: &dyn Fn(&RawObject<K>) -> Option<K>,
    outcome: &dyn Fn(Seen<'_, K>),
) -> Option<watcher::Event<K>> {
    let read = |o: &RawObject<K>| match decode::<K>(o) {
        Ok(k) => {
            outcome(Seen::Object(o, None));
            Ok(k)
        }
        Err(e) => {
            outcome(Seen::Object(o, Some(&e)));
            Err(())
        }
    };
    Some(match event {
        watcher::Event::Apply(o) => match read(&o) {
            Ok(k) => watcher::Event::Apply(k),
            Err(()) => watcher::Event::Delete(previous(&o)?),
        },
        watcher::Event::InitApply(o) => watcher::Event::InitApply(read(&o).ok()?),
        watcher::Event::Delete(o) => {
            let gone = decode::<K>(&o).ok().or_else(|| previous(&o));
            outcome(Seen::Deleted(&o));
            watcher::Event::Delete(gone?)
        }
        watcher::Event::Init => {
            outcome(Seen::Relist(true));
            watcher::Event::Init
        }
        watcher::Event::InitDone => {
            outcome(Seen::Relist(false));
            watcher::Event::InitDone
        }
    })
}

/// Keep the metric, the log, the Event and the status in line with what the watch saw.
fn note_outcome<K: Rollout>(
    cx: &Arc<Context>,
    skipped: &std::sync::Mutex<Skipped>,
    seen: Seen<'_, K>,
) {
    let mut state = skipped.lock().unwrap_or_else(|p| p.into_inner());
    let (obj, error) = match seen {
        Seen::Relist(true) => {
            state.seen_in_relist.clear();
            return;
        }
        Seen::Relist(false) => {
            // Objects flagged before the relist and not found unreadable in it are gone
            // or fixed.
            let gone: Vec<_> = state
                .flagged
                .difference(&state.seen_in_relist)
                .cloned()
                .collect();
            for (ns, name) in gone {
                cx.metrics.undecodable(K::LABEL, &ns, &name, false);
                state.flagged.remove(&(ns, name));
            }
            return;
        }
        Seen::Deleted(obj) => {
            let id = object_id(&obj.metadata);
            if state.flagged.remove(&id) {
                cx.metrics.undecodable(K::LABEL, &id.0, &id.1, false);
            }
            if let Some(uid) = &obj.metadata.uid {
                state.reported.retain(|(reported, _)| reported != uid);
            }
            return;
        }
        Seen::Object(obj, error) => (obj, error),
    };
    let id = object_id(&obj.metadata);
    let Some(error) = error else {
        if state.flagged.remove(&id) {
            cx.metrics.undecodable(K::LABEL, &id.0, &id.1, false);
        }
        return;
    };
    cx.metrics.undecodable(K::LABEL, &id.0, &id.1, true);
    state.flagged.insert(id.clone());
    state.seen_in_relist.insert(id.clone());
    let key = (
        obj.metadata
            .uid
            .clone()
            .unwrap_or_else(|| format!("{}/{}", id.0, id.1)),
        obj.metadata.generation.unwrap_or_default(),
    );
    let first = state.reported.insert(key);
    drop(state);
    tracing::warn!(
        kind = K::LABEL,
        namespace = %id.0,
        name = %id.1,
        error = %error,
        "skipping an object that does not parse"
    );
    if first {
        report_malformed::<K>(cx, &obj.metadata, error);
    }
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

/// Event and Degraded condition for an object that does not parse; the writes run in
/// the background so the watch never waits on them.
fn report_malformed<K: Rollout>(cx: &Arc<Context>, meta: &ObjectMeta, error: &str) {
    let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
        return;
    };
    let cx = cx.clone();
    let meta = meta.clone();
    let generation = meta.generation;
    let error = sanitize(error);
    tokio::spawn(async move {
        // The answer is the whole object, as unreadable as before: read it leniently.
        let api: Api<RawObject<K>> = Api::namespaced(cx.client.clone(), &namespace);
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
            tracing::warn!(
                kind = K::LABEL,
                %namespace,
                %name,
                error = %sanitize(&e.to_string()),
                "could not mark an object that does not parse Degraded"
            );
        }
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(K::api_version(&()).to_string()),
            kind: Some(kind.clone()),
            namespace: Some(namespace.clone()),
            name: Some(name.clone()),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..Default::default()
        };
        let ev = kube::runtime::events::Event {
            type_: EventType::Warning,
            reason: "InvalidObject".to_string(),
            note: Some(format!(
                "does not match the {kind} schema the operator understands: {error}"
            )),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = cx.writes.publish(&reference, &ev).await {
            tracing::warn!(error = %sanitize(&e.to_string()), "could not publish an Event");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EasServiceRollout;
    use kube::core::ObjectList;
    use kube::core::WatchEvent;
    use serde_json::json;

    type Raw = RawObject<EasServiceRollout>;

    fn good_spec() -> serde_json::Value {
        json!({"region": "cn-shanghai", "serviceName": "s", "strategy": {"partition": "1"}})
    }

    fn item(name: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "generation": 1},
            "spec": spec,
        })
    }

    fn raw(name: &str, spec: serde_json::Value) -> Raw {
        serde_json::from_value(item(name, spec)).expect("a raw object")
    }

    /// `{"n":{"n":...}}` nested `levels` deep around `leaf`, as JSON text.
    fn nested(levels: usize, leaf: &str) -> String {
        format!("{}{leaf}{}", r#"{"n":"#.repeat(levels), "}".repeat(levels))
    }

    /// An item whose serviceConfig and managedFields both nest `levels` deep.
    fn deep_item_text(name: &str, levels: usize) -> String {
        let config = nested(levels, r#""MARKER-do-not-log""#);
        let fields = nested(levels, "{}");
        format!(
            r#"{{"apiVersion":"rollouts.alicloud.dev/v1alpha1","kind":"EasServiceRollout","metadata":{{"name":"{name}","namespace":"ns","uid":"uid-{name}","generation":2,"managedFields":[{{"manager":"kubectl","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{fields}}}]}},"spec":{{"region":"cn-shanghai","serviceName":"s","strategy":{{"partition":"1"}},"serviceConfig":{config}}}}}"#
        )
    }

    #[test]
    fn a_list_with_a_too_deep_object_still_parses_and_only_that_object_fails() {
        let good = item("good", good_spec()).to_string();
        let body = format!(
            r#"{{"apiVersion":"rollouts.alicloud.dev/v1alpha1","kind":"EasServiceRolloutList","metadata":{{"resourceVersion":"7"}},"items":[{good},{}]}}"#,
            deep_item_text("deep", 300)
        );
        // What the operator did before: the whole list fails on the recursion limit.
        let whole = serde_json::from_str::<ObjectList<kube::api::DynamicObject>>(&body)
            .expect_err("a dynamic list cannot hold the deep object");
        assert!(whole.to_string().contains("recursion limit"), "{whole}");

        let list: ObjectList<Raw> = serde_json::from_str(&body).expect("the raw list parses");
        assert_eq!(list.items.len(), 2);
        let good = decode::<EasServiceRollout>(&list.items[0]).expect("the good object reads");
        assert_eq!(good.spec.service_name, "s");
        assert_eq!(good.metadata.name.as_deref(), Some("good"));
        let deep = &list.items[1];
        assert_eq!(deep.metadata.name.as_deref(), Some("deep"));
        assert!(
            deep.metadata.managed_fields.is_none(),
            "managedFields are not kept"
        );
        let error = decode::<EasServiceRollout>(deep).expect_err("the deep object does not read");
        assert!(error.contains("nested more than 128 levels"), "{error}");
        assert!(error.starts_with("spec.serviceConfig"), "{error}");
        assert!(!error.contains("MARKER"), "{error}");
        let debug = format!("{deep:?}");
        assert!(
            !debug.contains("MARKER") && debug.contains("deep"),
            "{debug}"
        );
    }

    #[test]
    fn a_watch_event_with_a_too_deep_object_parses() {
        let line = format!(
            r#"{{"type":"MODIFIED","object":{}}}"#,
            deep_item_text("deep", 300)
        );
        match serde_json::from_str::<WatchEvent<Raw>>(&line).expect("the event parses") {
            WatchEvent::Modified(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some("deep"));
                assert!(decode::<EasServiceRollout>(&o).is_err());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_cache_keeps_neither_managed_fields_nor_the_last_applied_manifest() {
        let mut value = item("big", good_spec());
        value["metadata"]["annotations"] = json!({
            LAST_APPLIED: "x".repeat(10_000),
            "team": "search",
        });
        value["metadata"]["managedFields"] = json!([{"manager": "kubectl", "fieldsV1": {}}]);
        let raw: Raw = serde_json::from_value(value).expect("raw");
        let annotations = raw.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.len(), 1, "{annotations:?}");
        assert_eq!(annotations.get("team").map(String::as_str), Some("search"));
        assert!(raw.metadata.managed_fields.is_none());
        let obj = decode::<EasServiceRollout>(&raw).expect("decodes");
        assert!(!serde_json::to_string(&obj).expect("json").contains("xxxx"));
    }

    #[test]
    fn a_readable_object_reads_the_same_as_directly() {
        let mut value = item("good", good_spec());
        value["spec"]["serviceConfig"] = json!({"containers": [{"image": "x:2"}]});
        value["status"] = json!({"phase": "Running", "conditions": []});
        let direct: EasServiceRollout = serde_json::from_value(value.clone()).expect("direct");
        let via_raw =
            decode::<EasServiceRollout>(&serde_json::from_value::<Raw>(value).expect("raw"))
                .expect("decodes");
        assert_eq!(via_raw.spec, direct.spec);
        assert_eq!(via_raw.status, direct.status);
        assert_eq!(via_raw.metadata, direct.metadata);
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let bad = raw(
            "bad",
            json!({"region": "cn-shanghai", "serviceName": "s", "strategy": {"partition": "1"},
                   "paused": "secret-value-123"}),
        );
        let error = decode::<EasServiceRollout>(&bad).expect_err("paused is not a boolean");
        assert!(error.starts_with("spec.paused: invalid type"), "{error}");
        assert!(!error.contains("secret-value-123"), "{error}");
        assert!(!error.contains("line 1"), "{error}");
    }

    #[test]
    fn sanitize_hides_quoted_values_and_bounds_the_length() {
        assert_eq!(
            sanitize(r#"invalid type: string "p\"ss", expected a boolean"#),
            r#"invalid type: string "…", expected a boolean"#
        );
        let long = "x".repeat(10_000);
        assert!(sanitize(&long).chars().count() <= MAX_ERROR_CHARS + 1);
        assert_eq!(short_path("spec.a.b.c.d.e"), "spec.a.b.c…");
        assert_eq!(
            short_path(&format!("spec.c{}", "[0]".repeat(300)))
                .chars()
                .count(),
            65
        );
        assert_eq!(short_path("spec.paused"), "spec.paused");
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
        let good = raw("good", good_spec());
        let bad = raw("bad", json!({"region": 7, "strategy": "all at once"}));
        let seen = std::cell::RefCell::new(Vec::new());
        let note = |s: Seen<'_, EasServiceRollout>| match s {
            Seen::Object(o, e) => seen.borrow_mut().push((
                o.metadata.name.clone().unwrap_or_default(),
                e.map(str::to_string),
            )),
            Seen::Relist(begins) => seen.borrow_mut().push((format!("relist {begins}"), None)),
            Seen::Deleted(o) => seen.borrow_mut().push((
                format!("deleted {}", o.metadata.name.clone().unwrap_or_default()),
                None,
            )),
        };
        let nothing_cached = |_: &Raw| None;
        match typed_event(watcher::Event::Apply(good.clone()), &nothing_cached, &note) {
            Some(watcher::Event::Apply(o)) => assert_eq!(o.metadata.name.as_deref(), Some("good")),
            other => panic!("good object dropped: {other:?}"),
        }
        assert!(typed_event(watcher::Event::Apply(bad.clone()), &nothing_cached, &note).is_none());
        assert!(
            typed_event(
                watcher::Event::InitApply(bad.clone()),
                &nothing_cached,
                &note
            )
            .is_none()
        );
        assert!(typed_event(watcher::Event::Delete(bad.clone()), &nothing_cached, &note).is_none());
        assert!(matches!(
            typed_event(watcher::Event::InitDone, &nothing_cached, &note),
            Some(watcher::Event::InitDone)
        ));
        let seen = seen.borrow();
        let errors: Vec<_> = seen.iter().filter(|(_, e)| e.is_some()).collect();
        assert_eq!(
            errors.len(),
            2,
            "created/changed malformed objects are reported: {seen:?}"
        );
        assert!(
            errors.iter().all(|(name, e)| name == "bad"
                && e.as_deref().is_some_and(|e| e.contains("invalid type"))),
            "{seen:?}"
        );
        assert!(seen.contains(&("good".to_string(), None)));
        assert!(seen.contains(&("relist false".to_string(), None)));
        assert!(seen.contains(&("deleted bad".to_string(), None)));
    }

    #[test]
    fn an_object_that_turns_unreadable_leaves_the_cache() {
        let earlier: EasServiceRollout =
            serde_json::from_value(item("obj", good_spec())).expect("typed");
        let cached = |_: &Raw| Some(earlier.clone());
        let bad = raw("obj", json!({"region": 7}));
        match typed_event(watcher::Event::Apply(bad.clone()), &cached, &|_| {}) {
            Some(watcher::Event::Delete(o)) => assert_eq!(o.metadata.name.as_deref(), Some("obj")),
            other => panic!("the stale version stays cached: {other:?}"),
        }
        match typed_event(watcher::Event::Delete(bad), &cached, &|_| {}) {
            Some(watcher::Event::Delete(o)) => assert_eq!(o.metadata.name.as_deref(), Some("obj")),
            other => panic!("the deletion is lost: {other:?}"),
        }
    }
}
