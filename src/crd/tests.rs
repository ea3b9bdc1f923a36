//! Pure checks of the generated CRDs: the rules users rely on are present, the schemas stay
//! within what the API server accepts, and `crds/` matches the Rust types.

use std::path::Path;

use serde_json::Value;

use super::*;

fn crd_json(kind: &str) -> Value {
    let crd = all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    serde_json::to_value(crd).unwrap()
}

fn version(kind: &str) -> Value {
    crd_json(kind)["spec"]["versions"][0].clone()
}

fn spec_schema(kind: &str) -> Value {
    version(kind)["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// The schema at a dotted path below `spec` (`[]` steps into list items).
fn at(schema: &Value, path: &str) -> Value {
    let mut node = schema.clone();
    for part in path.split('.') {
        node = if part == "[]" {
            node["items"].clone()
        } else {
            node["properties"][part].clone()
        };
        assert!(!node.is_null(), "no schema at {path}");
    }
    node
}

/// The (rule, message) pairs on a schema node.
fn rules(node: &Value) -> Vec<(String, String)> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    (
                        r["rule"].as_str().unwrap_or_default().to_string(),
                        r["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn has_message(node: &Value, fragment: &str) -> bool {
    rules(node).iter().any(|(_, m)| m.contains(fragment))
}

const KINDS: [&str; 3] = [
    "EasServiceRollout",
    "EsaRoutineRollout",
    "EsaContainerAppRollout",
];

#[test]
fn every_kind_is_namespaced_in_the_group_with_category_and_short_name() {
    let expected = [
        ("EasServiceRollout", "easservicerollouts", "easro"),
        ("EsaRoutineRollout", "esaroutinerollouts", "esarr"),
        ("EsaContainerAppRollout", "esacontainerapprollouts", "esacr"),
    ];
    for (kind, plural, short) in expected {
        let crd = crd_json(kind);
        assert_eq!(crd["metadata"]["name"], format!("{plural}.{GROUP}"));
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(
            crd["spec"]["names"]["categories"],
            serde_json::json!([CATEGORY])
        );
        assert_eq!(
            crd["spec"]["names"]["shortNames"],
            serde_json::json!([short])
        );
        let v = version(kind);
        assert_eq!(v["name"], VERSION);
        assert_eq!(v["subresources"]["status"], serde_json::json!({}));
        let description = v["schema"]["openAPIV3Schema"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            !description.is_empty() && !description.contains("Auto-generated"),
            "{kind} needs a real description, has {description:?}"
        );
    }
}

#[test]
fn printer_columns_show_what_users_look_for() {
    let expected: [(&str, &[(&str, &str)]); 3] = [
        (
            "EasServiceRollout",
            &[
                ("Service", ".spec.serviceName"),
                ("Strategy", ".status.cloudStrategy"),
                ("Phase", ".status.phase"),
                ("Updated", ".status.updatedReplicas"),
                ("Total", ".status.totalReplicas"),
                ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
                ("Age", ".metadata.creationTimestamp"),
            ],
        ),
        (
            "EsaRoutineRollout",
            &[
                ("Routine", ".spec.routine"),
                ("Env", ".spec.env"),
                ("Phase", ".status.phase"),
                ("Split", ".status.split"),
                ("Step", ".status.currentStep"),
                ("Age", ".metadata.creationTimestamp"),
            ],
        ),
        (
            "EsaContainerAppRollout",
            &[
                ("App", ".spec.appId"),
                ("Version", ".spec.versionId"),
                ("Env", ".spec.env"),
                ("Phase", ".status.phase"),
                ("Publish Status", ".status.publishStatus"),
                ("Percent", ".status.publishPercentage"),
                ("Age", ".metadata.creationTimestamp"),
            ],
        ),
    ];
    for (kind, columns) in expected {
        let v = version(kind);
        let have: Vec<(String, String)> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["jsonPath"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (name, path) in columns {
            assert!(
                have.iter().any(|(n, p)| n == name && p == path),
                "{kind} lacks column {name} = {path}; has {have:?}"
            );
        }
    }
}

#[test]
fn identifying_fields_are_immutable() {
    let cases = [
        ("EasServiceRollout", "region"),
        ("EasServiceRollout", "serviceName"),
        ("EsaRoutineRollout", "routine"),
        ("EsaRoutineRollout", "env"),
        ("EsaRoutineRollout", "region"),
        ("EsaContainerAppRollout", "appId"),
        ("EsaContainerAppRollout", "env"),
        ("EsaContainerAppRollout", "region"),
    ];
    for (kind, field) in cases {
        let node = at(&spec_schema(kind), field);
        assert!(
            rules(&node)
                .iter()
                .any(|(rule, message)| rule == "self == oldSelf"
                    && message.starts_with(&format!("{field} is immutable: delete and recreate"))),
            "{kind}.spec.{field} is not immutable: {:?}",
            rules(&node)
        );
    }
    // Fields that drive the rollout stay editable.
    for (kind, field) in [
        ("EasServiceRollout", "strategy"),
        ("EasServiceRollout", "paused"),
        ("EsaContainerAppRollout", "versionId"),
        ("EsaRoutineRollout", "canary"),
    ] {
        let node = at(&spec_schema(kind), field);
        assert!(
            !rules(&node)
                .iter()
                .any(|(rule, _)| rule.contains("oldSelf")),
            "{kind}.spec.{field} must stay editable"
        );
    }
}

#[test]
fn the_rules_the_cloud_enforces_are_in_the_schema() {
    let eas = spec_schema("EasServiceRollout");
    assert!(has_message(
        &at(&eas, "strategy"),
        "exactly one of partition"
    ));
    assert!(has_message(
        &at(&eas, "strategy.partition"),
        "percentage from 0% to 100%"
    ));
    assert!(has_message(&at(&eas, "strategy.batch.size"), "batch.size"));
    assert!(has_message(&at(&eas, "strategy.batch.interval"), "\"5m\""));
    assert_eq!(at(&eas, "strategy.batch.size")["default"], "25%");
    assert_eq!(at(&eas, "deletionPolicy")["default"], "Retain");
    assert_eq!(at(&eas, "paused")["default"], false);
    let config = at(&eas, "serviceConfig");
    assert_eq!(config["type"], "object");
    assert_eq!(config["properties"]["containers"]["type"], "array");

    let routine = spec_schema("EsaRoutineRollout");
    assert!(has_message(&routine, "exactly one of codeVersions"));
    assert!(has_message(&routine, "rollback needs canary"));
    let versions = at(&routine, "codeVersions");
    assert_eq!(versions["maxItems"], 2);
    assert_eq!(versions["minItems"], 1);
    assert!(has_message(&versions, "add up to 100"));
    assert!(has_message(&versions, "two different code versions"));
    assert_eq!(at(&routine, "codeVersions.[].percentage")["minimum"], 1.0);
    assert_eq!(at(&routine, "codeVersions.[].percentage")["maximum"], 100.0);
    assert!(has_message(&at(&routine, "canary"), "must differ"));
    assert!(has_message(
        &at(&routine, "canary"),
        "promotion.step must be the index"
    ));
    assert!(has_message(
        &at(&routine, "canary"),
        "promotedStep was replaced by canary.promotion"
    ));
    assert_eq!(at(&routine, "canary.promotion.version")["maxLength"], 64);
    assert!(has_message(
        &at(&routine, "canary.steps"),
        "strictly increasing"
    ));
    assert!(has_message(
        &at(&routine, "canary.steps.[].pause"),
        "pause must be"
    ));
    assert_eq!(
        at(&routine, "env")["enum"],
        serde_json::json!(["staging", "production"])
    );
    assert_eq!(
        at(&routine, "region")["enum"],
        serde_json::json!(["cn-hangzhou", "ap-southeast-1"])
    );
    assert_eq!(at(&routine, "region")["default"], "cn-hangzhou");

    let app = spec_schema("EsaContainerAppRollout");
    assert!(has_message(
        &app,
        "at most one of percentage, regions or steps"
    ));
    assert!(has_message(&app, "fullRelease only applies"));
    assert!(has_message(&app, "promotion only applies with steps"));
    assert!(has_message(&app, "promotion.step must be the index"));
    assert!(has_message(&app, "promotedStep was replaced by promotion"));
    assert_eq!(at(&app, "promotion.versionId")["maxLength"], 64);
    assert!(has_message(
        &app,
        "rollbackPercentage only applies with rollback"
    ));
    assert_eq!(at(&app, "rollbackPercentage")["minimum"], 1.0);
    assert_eq!(at(&app, "rollbackPercentage")["maximum"], 100.0);
    assert!(has_message(&at(&app, "versionId"), "starting with ver-"));
    assert!(has_message(&at(&app, "startTime"), "ending in Z"));
    assert!(has_message(&at(&app, "steps"), "strictly increasing"));
    assert_eq!(at(&app, "regions")["x-kubernetes-list-type"], "set");
    assert_eq!(at(&app, "regions.[]")["minLength"], 1);
    assert_eq!(at(&app, "appId")["minLength"], 1);
    assert!(at(&app, "remarks")["maxLength"].is_u64());
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    for kind in KINDS {
        let v = version(kind);
        let conditions =
            &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"]),
            "{kind}"
        );
        let required = conditions["items"]["required"].as_array().unwrap();
        assert!(required.contains(&Value::from("type")), "{kind}");
        for field in [
            "type",
            "status",
            "reason",
            "message",
            "lastTransitionTime",
            "observedGeneration",
        ] {
            assert!(
                !conditions["items"]["properties"][field].is_null(),
                "{kind} condition lacks {field}"
            );
        }
    }
}

/// Walk every schema node below `node`, calling `visit(path, node)`.
fn walk(path: &str, node: &Value, visit: &mut dyn FnMut(&str, &Value)) {
    visit(path, node);
    if let Some(props) = node["properties"].as_object() {
        for (name, child) in props {
            walk(&format!("{path}.{name}"), child, visit);
        }
    }
    if node["items"].is_object() {
        walk(&format!("{path}[]"), &node["items"], visit);
    }
    if node["additionalProperties"].is_object() {
        walk(&format!("{path}{{}}"), &node["additionalProperties"], visit);
    }
}

fn status_schema(kind: &str) -> Value {
    version(kind)["schema"]["openAPIV3Schema"]["properties"]["status"].clone()
}

/// The API server refuses CEL rules whose worst-case cost is unbounded, and an object
/// must stay small and shallow enough to read: every string, list and map in the spec and
/// the status is bounded, and every object has a fixed set of fields or is a bounded map.
#[test]
fn every_string_list_and_map_is_bounded() {
    for kind in KINDS {
        let mut unbounded = Vec::new();
        for (root, schema) in [("spec", spec_schema(kind)), ("status", status_schema(kind))] {
            walk(root, &schema, &mut |path, node| {
                let bounded = match node["type"].as_str() {
                    Some("string") => node["maxLength"].is_u64() || node["enum"].is_array(),
                    Some("array") => node["maxItems"].is_u64(),
                    Some("object") => {
                        node["properties"].is_object()
                            || (node["additionalProperties"].is_object()
                                && node["maxProperties"].is_u64())
                    }
                    _ => true,
                };
                if !bounded {
                    unbounded.push(path.to_string());
                }
            });
        }
        assert!(unbounded.is_empty(), "{kind}: unbounded {unbounded:?}");
    }
}

/// No field keeps what the schema does not describe (`serviceConfig` included): what is
/// stored is what the schema bounds.
#[test]
fn no_field_preserves_unknown_fields() {
    for kind in KINDS {
        for (root, schema) in [("spec", spec_schema(kind)), ("status", status_schema(kind))] {
            walk(root, &schema, &mut |path, node| {
                assert_ne!(
                    node["x-kubernetes-preserve-unknown-fields"], true,
                    "{kind} {path}"
                );
            });
        }
    }
}

/// The service config keeps the shape of today's manifests and is typed below.
#[test]
fn service_config_is_typed() {
    let config = at(&spec_schema("EasServiceRollout"), "serviceConfig");
    assert_eq!(config["type"], "object");
    for field in ["metadata", "containers", "storage", "cloud", "networking"] {
        assert!(config["properties"][field].is_object(), "{field}");
    }
    assert_eq!(config["properties"]["containers"]["maxItems"], 4);
}

/// Every CEL message names what to fix, never an empty string.
#[test]
fn every_rule_has_a_message() {
    for kind in KINDS {
        walk("spec", &spec_schema(kind), &mut |path, node| {
            for (rule, message) in rules(node) {
                assert!(
                    message.len() > 20,
                    "{kind} {path}: rule {rule} has message {message:?}"
                );
            }
        });
    }
}

#[test]
fn crds_directory_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let files = render_files().unwrap();
    let mut stale = Vec::new();
    for (file, body) in &files {
        match std::fs::read_to_string(dir.join(file)) {
            Ok(on_disk) if &on_disk == body => {}
            Ok(_) => stale.push(format!("{file} differs")),
            Err(e) => stale.push(format!("{file}: {e}")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !files.iter().any(|(f, _)| *f == name) {
                stale.push(format!("{name} is not generated from src/crd"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "crds/ is stale ({}); regenerate it with `{REGENERATE}`",
        stale.join("; ")
    );
}

#[test]
fn printed_stream_holds_every_generated_file() {
    let stream = render_yaml().unwrap();
    for (_, body) in render_files().unwrap() {
        let document = body.split_once("---\n").unwrap().1;
        assert!(stream.contains(document));
    }
    assert_eq!(stream.matches("kind: CustomResourceDefinition").count(), 4);
}

/// The examples are what users copy: each must read into its Rust type, which is what the
/// controllers will see (the API server checks the rest in tests/crd_schema.rs).
#[test]
fn examples_read_into_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: Value = serde_yaml::from_str(&text).unwrap();
        let kind = raw["kind"].as_str().unwrap_or_default().to_string();
        let parsed = match kind.as_str() {
            "EasServiceRollout" => serde_yaml::from_str::<EasServiceRollout>(&text).map(drop),
            "EsaRoutineRollout" => serde_yaml::from_str::<EsaRoutineRollout>(&text).map(drop),
            "EsaContainerAppRollout" => {
                serde_yaml::from_str::<EsaContainerAppRollout>(&text).map(drop)
            }
            other => panic!("{}: unknown kind {other:?}", path.display()),
        };
        parsed.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            raw["metadata"]["namespace"].is_null(),
            "{}: examples carry no namespace",
            path.display()
        );
        seen.insert(kind);
    }
    assert_eq!(seen.len(), 3, "an example for every kind: {seen:?}");
}
