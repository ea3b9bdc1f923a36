//! The schema of `EasServiceRollout.spec.serviceConfig`: the EAS service config, typed.
//!
//! The config is an object the operator passes to UpdateService. A free-form object
//! (`x-kubernetes-preserve-unknown-fields`) cannot be bounded by the API server: a
//! structural schema has no way to limit the depth or size of what it does not describe,
//! and CEL does not see unknown fields. So the fields of the EAS service config reference
//! are described here, each string with a `maxLength`, each list with a `maxItems` and each
//! map with a `maxProperties` (and a CEL rule on its key length). The depth is then the
//! schema's own (at most 5 levels below `serviceConfig`) and the size has a ceiling
//! ([`max_json_chars`] computes it; docs/custom-resources.md lists every bound).
//!
//! A field the schema does not know is refused under strict field validation (kubectl's
//! default) and dropped with a warning otherwise, as everywhere else in the three kinds.
//! Because UpdateService merges, a field left out of `serviceConfig` keeps whatever value
//! the service has in the cloud.

use serde_json::{Map, Value, json};

use super::validation::rule;

/// Most containers in `containers`.
pub const MAX_CONTAINERS: u64 = 4;
/// Most environment variables per container.
pub const MAX_ENV: u64 = 32;
/// Most mounts in `storage`.
pub const MAX_STORAGE: u64 = 16;
/// Most entries in a map of labels or features.
pub const MAX_MAP_ENTRIES: u64 = 64;
/// Longest key of a map of labels or features (a Kubernetes qualified name with prefix).
pub const MAX_MAP_KEY: u64 = 253;
/// Longest value in a map of labels or features.
pub const MAX_MAP_VALUE: u64 = 256;
/// Longest name or identifier (service, workspace, resource group, instance type...).
pub const MAX_NAME: u64 = 128;
/// Longest path, URL or image reference.
pub const MAX_PATH: u64 = 1024;
/// Longest command or script line.
pub const MAX_SCRIPT: u64 = 4096;
/// Longest environment variable value.
pub const MAX_ENV_VALUE: u64 = 1024;
/// Longest `model_config` (text handed to the processor).
pub const MAX_MODEL_CONFIG: u64 = 8192;
/// Most items in a short list (instance types, scale strategies, Python requirements).
pub const MAX_SHORT_LIST: u64 = 16;

fn string(max: u64) -> Value {
    json!({"type": "string", "maxLength": max})
}

fn number() -> Value {
    json!({"type": "number"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

/// A count such as `max_surge` that EAS takes as a number or a percentage string.
fn int_or_string() -> Value {
    json!({"x-kubernetes-int-or-string": true, "maxLength": 16})
}

fn object(properties: &[(&str, Value)]) -> Value {
    let properties: Map<String, Value> = properties
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    json!({"type": "object", "properties": properties})
}

fn list(items: Value, max: u64) -> Value {
    json!({"type": "array", "maxItems": max, "items": items})
}

/// A map of short strings (labels, features), keys bounded by a CEL rule since a schema
/// cannot bound map keys.
fn string_map(what: &str) -> Value {
    json!({
        "type": "object",
        "maxProperties": MAX_MAP_ENTRIES,
        "additionalProperties": string(MAX_MAP_VALUE),
        "x-kubernetes-validations": [rule(
            &format!("self.all(k, size(k) <= {MAX_MAP_KEY})"),
            &format!("{what} keys must be at most {MAX_MAP_KEY} characters"),
        )],
    })
}

fn metadata() -> Value {
    let name = || string(MAX_NAME);
    object(&[
        ("name", name()),
        ("instance", number()),
        ("workspace_id", name()),
        ("group", name()),
        ("role", name()),
        ("type", name()),
        ("qos", name()),
        ("resource", name()),
        ("resource_burstable", boolean()),
        ("workload_type", name()),
        ("quota_id", name()),
        ("cpu", number()),
        ("memory", number()),
        ("gpu", number()),
        ("gpu_memory", number()),
        ("gpu_core_percentage", number()),
        ("cuda", name()),
        ("disk", name()),
        ("shm_size", number()),
        ("rdma", number()),
        ("enable_grpc", boolean()),
        ("enable_webservice", boolean()),
        ("rpc.batching", boolean()),
        ("rpc.keepalive", number()),
        ("rpc.io_threads", number()),
        ("rpc.max_batch_size", number()),
        ("rpc.max_batch_timeout", number()),
        ("rpc.max_queue_size", number()),
        ("rpc.worker_threads", number()),
        ("rpc.rate_limit", number()),
        ("rpc.enable_sigterm", boolean()),
        ("eas.termination_grace_period", number()),
        ("resource_rebalancing", boolean()),
        (
            "rolling_strategy",
            object(&[
                ("max_surge", int_or_string()),
                ("max_unavailable", int_or_string()),
            ]),
        ),
        ("labels", string_map("serviceConfig.metadata.labels")),
    ])
}

fn container() -> Value {
    object(&[
        ("image", string(MAX_PATH)),
        ("script", string(MAX_SCRIPT)),
        ("command", string(MAX_SCRIPT)),
        ("port", number()),
        (
            "env",
            list(
                object(&[("name", string(MAX_NAME)), ("value", string(MAX_ENV_VALUE))]),
                MAX_ENV,
            ),
        ),
        (
            "prepare",
            object(&[
                (
                    "pythonRequirements",
                    list(string(MAX_NAME), MAX_SHORT_LIST * 4),
                ),
                ("pythonRequirementsPath", string(MAX_PATH)),
            ]),
        ),
    ])
}

fn mount() -> Value {
    let path = || string(MAX_PATH);
    let name = || string(MAX_NAME);
    object(&[
        ("mount_path", path()),
        (
            "oss",
            object(&[
                ("path", path()),
                ("endpoint", name()),
                ("readOnly", boolean()),
            ]),
        ),
        (
            "nfs",
            object(&[
                ("path", path()),
                ("server", name()),
                ("readOnly", boolean()),
            ]),
        ),
        (
            "git",
            object(&[
                ("repo", path()),
                ("branch", name()),
                ("commit", name()),
                ("username", name()),
                ("password", name()),
            ]),
        ),
        ("image", object(&[("image", path()), ("path", path())])),
        (
            "empty_dir",
            object(&[("medium", name()), ("size_limit", number())]),
        ),
        (
            "model",
            object(&[("model_id", name()), ("version", name())]),
        ),
        ("dataset", object(&[("id", name()), ("version", name())])),
    ])
}

fn cloud() -> Value {
    let name = || string(MAX_NAME);
    object(&[
        (
            "computing",
            object(&[
                ("instance_type", name()),
                (
                    "instances",
                    list(
                        object(&[
                            ("type", name()),
                            ("capacity", int_or_string()),
                            ("spot_price_limit", number()),
                        ]),
                        MAX_SHORT_LIST,
                    ),
                ),
                ("disable_spot_protection_period", boolean()),
            ]),
        ),
        (
            "networking",
            object(&[
                ("vpc_id", name()),
                ("vswitch_id", name()),
                ("security_group_id", name()),
                ("default_route", name()),
                ("destination_cidrs", string(MAX_PATH)),
            ]),
        ),
    ])
}

/// The `serviceConfig` schema: the EAS service config, every part bounded.
pub fn service_config_schema() -> Value {
    let name = || string(MAX_NAME);
    let path = || string(MAX_PATH);
    let mut schema = object(&[
        ("name", name()),
        ("token", string(256)),
        ("model_path", path()),
        ("oss_endpoint", name()),
        ("model_entry", path()),
        ("model_config", string(MAX_MODEL_CONFIG)),
        ("processor", path()),
        ("processor_path", path()),
        ("processor_entry", path()),
        ("processor_mainclass", path()),
        ("processor_type", name()),
        ("warm_up_data_path", path()),
        ("dockerAuth", string(MAX_PATH)),
        ("metadata", metadata()),
        ("cloud", cloud()),
        ("containers", list(container(), MAX_CONTAINERS)),
        ("storage", list(mount(), MAX_STORAGE)),
        (
            "networking",
            object(&[
                ("disable_internet_endpoint", boolean()),
                ("gateway", name()),
                ("path", path()),
            ]),
        ),
        (
            "autoscaler",
            object(&[
                ("min", number()),
                ("max", number()),
                (
                    "scaleStrategies",
                    list(
                        object(&[
                            ("metricName", name()),
                            ("threshold", number()),
                            ("service", name()),
                        ]),
                        MAX_SHORT_LIST,
                    ),
                ),
            ]),
        ),
        ("runtime", object(&[("enable_crash_block", boolean())])),
        ("features", string_map("serviceConfig.features")),
        ("labels", string_map("serviceConfig.labels")),
        ("unit", object(&[("specification", name())])),
    ]);
    schema["nullable"] = json!(true);
    schema["description"] = json!(
        "EAS service config (as for UpdateService): the fields of the EAS service config \
         reference, each bounded (see docs/custom-resources.md). When it changes the operator \
         pushes it with UpdateService, which starts a new version rolled out under `strategy`; \
         fields left out keep their value in the cloud."
    );
    schema
}

/// The longest the JSON text of a value admitted by `schema` can be, in characters, with
/// numbers and map keys at their longest (numbers as 32 characters). Strings count their
/// characters plus quotes; escaping can make the bytes on the wire longer.
pub fn max_json_chars(schema: &Value) -> u64 {
    const NUMBER: u64 = 32;
    if schema["x-kubernetes-int-or-string"] == true {
        return schema["maxLength"].as_u64().unwrap_or(NUMBER).max(NUMBER) + 2;
    }
    match schema["type"].as_str() {
        Some("string") => schema["maxLength"].as_u64().unwrap_or(u64::MAX / 4) + 2,
        Some("number") | Some("integer") => NUMBER,
        Some("boolean") => 5,
        Some("array") => {
            let n = schema["maxItems"].as_u64().unwrap_or(u64::MAX / 4);
            2 + n.saturating_mul(max_json_chars(&schema["items"]) + 1)
        }
        Some("object") => {
            if let Some(props) = schema["properties"].as_object() {
                2 + props
                    .iter()
                    .map(|(k, v)| k.chars().count() as u64 + 4 + max_json_chars(v))
                    .sum::<u64>()
            } else if schema["additionalProperties"].is_object() {
                let n = schema["maxProperties"].as_u64().unwrap_or(u64::MAX / 4);
                let value = max_json_chars(&schema["additionalProperties"]);
                2 + n.saturating_mul(MAX_MAP_KEY + 4 + value)
            } else {
                u64::MAX / 4
            }
        }
        _ => u64::MAX / 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nesting levels of objects and lists below the schema's root.
    fn depth(schema: &Value) -> u64 {
        let props = schema["properties"]
            .as_object()
            .map(|p| p.values().map(depth).max().unwrap_or(0) + 1)
            .unwrap_or(0);
        let items = if schema["items"].is_object() {
            depth(&schema["items"]) + 1
        } else {
            0
        };
        let map = if schema["additionalProperties"].is_object() {
            depth(&schema["additionalProperties"]) + 1
        } else {
            0
        };
        props.max(items).max(map)
    }

    #[test]
    fn the_service_config_is_shallow_and_small() {
        let schema = service_config_schema();
        assert!(depth(&schema) <= 5, "depth {}", depth(&schema));
        let chars = max_json_chars(&schema);
        println!("serviceConfig ceiling: {chars} characters");
        assert!(
            chars < 512 * 1024,
            "a service config can be {chars} characters"
        );
    }

    #[test]
    fn the_ceiling_counts_every_part() {
        assert_eq!(max_json_chars(&string(10)), 12);
        assert_eq!(max_json_chars(&list(string(1), 3)), 2 + 3 * 4);
        assert_eq!(max_json_chars(&object(&[("ab", boolean())])), 2 + 6 + 5);
        assert!(max_json_chars(&json!({"type": "object"})) > 1 << 40);
    }
}
