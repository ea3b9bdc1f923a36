//! The commands that change a rollout, as pure functions from the object to the spec
//! fields to set.
//!
//! Every change is a spec field (the operator never writes spec; GitOps tools see the
//! drift), written with server-side apply under [`FIELD_MANAGER`]. Server-side apply
//! treats what a manager applies as everything it wants: a field it applied before and
//! leaves out is removed. So each apply carries, with their current values, the intent
//! fields this manager already owns ([`owned_intent_fields`]), and a `promote` after a
//! `pause` leaves the rollout paused.

use serde_json::{Map, Value, json};

use super::rollout::{AnyRollout, Kind, StepsView};
use crate::crd::{GROUP, VERSION};

/// The field manager of every change the plugin makes.
pub const FIELD_MANAGER: &str = "kubectl-alicloud-rollouts";

/// A command that changes a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Pause,
    Resume,
    /// Approve the next manual gate (`full`: every gate) of the version being rolled out.
    Promote {
        full: bool,
    },
    Abort,
    Retry,
}

impl Intent {
    pub fn verb(self) -> &'static str {
        match self {
            Intent::Pause => "pause",
            Intent::Resume => "resume",
            Intent::Promote { full: false } => "promote",
            Intent::Promote { full: true } => "promote --full",
            Intent::Abort => "abort",
            Intent::Retry => "retry",
        }
    }
}

/// One spec field a command sets.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// JSON path below the object, e.g. `["spec", "canary", "promotion"]`.
    pub path: &'static [&'static str],
    pub before: Option<Value>,
    pub after: Value,
}

impl FieldChange {
    /// `spec.paused: false -> true`.
    pub fn describe(&self) -> String {
        let show = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let before = self.before.as_ref().map_or("(unset)".to_string(), show);
        let after = show(&self.after);
        if self.before.as_ref() == Some(&self.after) {
            format!("{}: {after} (unchanged)", self.path.join("."))
        } else {
            format!("{}: {before} -> {after}", self.path.join("."))
        }
    }
}

/// What a command does to one rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub fields: Vec<FieldChange>,
    /// What the change means, for a person ("approves the gate at step 2/3 (50%)").
    pub note: Option<String>,
}

/// Why a command cannot act on a rollout.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{verb} {reference}: {why}")]
pub struct Refused {
    pub verb: &'static str,
    pub reference: String,
    pub why: String,
}

const PAUSED: &[&str] = &["spec", "paused"];
const ROLLBACK: &[&str] = &["spec", "rollback"];
const RETRY: &[&str] = &["spec", "retry"];
const APP_PROMOTION: &[&str] = &["spec", "promotion"];
/// The same path: an EAS approval is `spec.promotion: {version, partition}`.
const EAS_PROMOTION: &[&str] = APP_PROMOTION;
const ROUTINE_PROMOTION: &[&str] = &["spec", "canary", "promotion"];

/// Every spec field any command sets.
pub const INTENT_FIELDS: &[&[&str]] = &[PAUSED, ROLLBACK, RETRY, APP_PROMOTION, ROUTINE_PROMOTION];

/// The value at `path` in `value`.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// The version an EAS approval names: a partition rollout of a `serviceConfig` whose
/// version the operator has shown (`status.configVersion`); or why there is none.
fn eas_version(o: &crate::crd::EasServiceRollout) -> Result<String, String> {
    if o.spec.strategy.partition.is_none() {
        return Err(
            "it rolls out in batches, which go on by themselves (`resume` it if it is \
                    paused); only a partition rollout has a gate to approve"
                .to_string(),
        );
    }
    if o.spec.service_config.is_none() {
        return Err(
            "it declares no spec.serviceConfig: its partition is spec.strategy.partition \
                    itself, kept in Git; lower it there"
                .to_string(),
        );
    }
    // A configVersion from before the last spec edit names the previous serviceConfig: an
    // approval of it would approve nothing of what the spec now declares.
    let observed = o.status.as_ref().and_then(|s| s.observed_generation);
    if o.metadata.generation.is_some() && observed != o.metadata.generation {
        return Err(
            "the operator has not acted on the latest spec yet, so status.configVersion \
                    may name the previous serviceConfig: try again in a moment"
                .to_string(),
        );
    }
    o.status
        .as_ref()
        .and_then(|s| s.config_version.clone())
        .ok_or_else(|| {
            "the operator has not shown the version of its serviceConfig yet \
             (status.configVersion): try again in a moment"
                .to_string()
        })
}

/// Decide what `intent` changes in `obj` (as typed and as JSON), or why it cannot.
pub fn plan(intent: Intent, obj: &AnyRollout, json: &Value) -> Result<Change, Refused> {
    let refuse = |why: String| Refused {
        verb: intent.verb(),
        reference: obj.reference(),
        why,
    };
    let set = |path: &'static [&'static str], after: Value| FieldChange {
        path,
        before: at(json, path).cloned(),
        after,
    };
    match intent {
        Intent::Pause | Intent::Resume => {
            let pause = intent == Intent::Pause;
            let note = if obj.paused() == pause {
                Some(format!(
                    "it was already {}",
                    if pause { "paused" } else { "not paused" }
                ))
            } else {
                None
            };
            Ok(Change {
                fields: vec![set(PAUSED, json!(pause))],
                note,
            })
        }
        Intent::Retry => {
            let next = obj.retry().unwrap_or(0).saturating_add(1);
            let health = obj.health();
            let note = if matches!(
                health,
                super::rollout::Health::Degraded | super::rollout::Health::Stalled
            ) {
                format!(
                    "the operator looks at the cloud again now ({} until this retry)",
                    health.word()
                )
            } else {
                format!(
                    "the operator looks at the cloud again now (it was {}, not Degraded or \
                     Stalled)",
                    health.word()
                )
            };
            Ok(Change {
                fields: vec![set(RETRY, json!(next))],
                note: Some(note),
            })
        }
        Intent::Abort => match obj {
            AnyRollout::Eas(o) => {
                let version = eas_version(o).map_err(refuse)?;
                Ok(Change {
                    note: Some(format!(
                        "every replica goes back to (or stays on) the previous version: the \
                         partition approved for {version} is 100%; to drop the new version, put \
                         the previous spec.serviceConfig back (in Git if a GitOps tool manages it)"
                    )),
                    fields: vec![set(
                        EAS_PROMOTION,
                        json!({"version": version, "partition": "100%"}),
                    )],
                })
            }
            AnyRollout::Routine(o) if o.spec.canary.is_none() => Err(refuse(
                "it is a fixed split (spec.codeVersions): there is no stable version to return \
                 to; edit spec.codeVersions instead"
                    .to_string(),
            )),
            AnyRollout::Routine(o) => Ok(Change {
                note: Some(format!(
                    "the operator puts 100% back on the stable version {}",
                    o.spec
                        .canary
                        .as_ref()
                        .map(|c| c.stable_version.as_str())
                        .unwrap_or_default()
                )),
                fields: vec![set(ROLLBACK, json!(true))],
            }),
            AnyRollout::App(o) => Ok(Change {
                note: Some(
                    match o
                        .status
                        .as_ref()
                        .and_then(|s| s.rollback_version.as_deref())
                    {
                        Some(v) => format!(
                            "the operator rolls {} back to {v} (RollbackEdgeContainerAppVersion)",
                            o.spec.version_id
                        ),
                        None => format!(
                            "the operator rolls {} back (RollbackEdgeContainerAppVersion)",
                            o.spec.version_id
                        ),
                    },
                ),
                fields: vec![set(ROLLBACK, json!(true))],
            }),
        },
        Intent::Promote { full } => {
            let steps = match obj {
                AnyRollout::Eas(o) => {
                    // One gate per version: the declared partition. Promoting completes it.
                    let version = eas_version(o).map_err(refuse)?;
                    return Ok(Change {
                        note: Some(format!(
                            "every replica moves to version {version} (partition 0 approved \
                             for it); the next serviceConfig starts again at \
                             spec.strategy.partition"
                        )),
                        fields: vec![set(
                            EAS_PROMOTION,
                            json!({"version": version, "partition": "0"}),
                        )],
                    });
                }
                _ => obj.steps().ok_or_else(|| {
                    refuse(match obj.kind() {
                        Kind::Routine => "it is a fixed split (spec.codeVersions), not a canary \
                                          with steps: there is no gate to approve; edit \
                                          spec.codeVersions instead"
                            .to_string(),
                        _ => "it publishes without steps (spec.percentage, spec.regions or 100%): \
                              there is no gate to approve"
                            .to_string(),
                    })
                })?,
            };
            let (step, note) = next_approval(&steps, full).map_err(refuse)?;
            let (path, value) = match obj {
                AnyRollout::Routine(_) => (
                    ROUTINE_PROMOTION,
                    json!({"version": steps.version, "step": step}),
                ),
                _ => (
                    APP_PROMOTION,
                    json!({"versionId": steps.version, "step": step}),
                ),
            };
            Ok(Change {
                fields: vec![set(path, value)],
                note: Some(note),
            })
        }
    }
}

/// The approval `promote` sets: the next closed gate at or after the current step (`full`:
/// the last gate), with what it means; or why there is none.
pub fn next_approval(steps: &StepsView<'_>, full: bool) -> Result<(usize, String), String> {
    let total = steps.steps.len();
    let current = steps
        .current
        .and_then(|c| usize::try_from(c).ok())
        .unwrap_or(0);
    if current >= total {
        return Err(format!(
            "{} is past its last step already (100%): there is no gate left to approve",
            steps.version
        ));
    }
    let closed: Vec<usize> = steps
        .gates()
        .into_iter()
        .filter(|&g| g >= current && !steps.is_approved(g))
        .collect();
    let Some(&first) = closed.first() else {
        return Err(format!(
            "no manual gate of {} is left to approve from step {}/{total} on{}: the steps ahead \
             have timed pauses",
            steps.version,
            current + 1,
            if steps.gates().is_empty() {
                " (no step is a manual gate)"
            } else {
                " (every gate ahead is approved already)"
            }
        ));
    };
    let gate = |g: usize| {
        format!(
            "step {}/{total} ({}%)",
            g + 1,
            steps.steps.get(g).map_or(100, |s| s.percentage)
        )
    };
    if full {
        let last = closed.last().copied().unwrap_or(first);
        let list: Vec<String> = closed.iter().map(|&g| gate(g)).collect();
        Ok((
            last,
            format!(
                "approves every remaining gate of {}: {}",
                steps.version,
                list.join(", ")
            ),
        ))
    } else {
        let ahead = match first - current {
            0 => "",
            1 => " (the timed step before it still holds its pause)",
            _ => " (the timed steps before it still hold their pauses)",
        };
        Ok((
            first,
            format!(
                "approves the gate at {} for {}{ahead}",
                gate(first),
                steps.version
            ),
        ))
    }
}

/// The intent fields `FIELD_MANAGER` owns through server-side apply, read from
/// `metadata.managedFields` of the object's JSON.
pub fn owned_intent_fields(json: &Value) -> Vec<&'static [&'static str]> {
    let mut owned = Vec::new();
    let entries = json
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| {
            m.get("manager").and_then(Value::as_str) == Some(FIELD_MANAGER)
                && m.get("operation").and_then(Value::as_str) == Some("Apply")
        });
    for entry in entries {
        let Some(fields) = entry.get("fieldsV1") else {
            continue;
        };
        for path in INTENT_FIELDS {
            let keys: Vec<String> = path.iter().map(|k| format!("f:{k}")).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            if at(fields, &keys).is_some() && !owned.contains(path) {
                owned.push(*path);
            }
        }
    }
    owned
}

/// The server-side apply body for `change` on the object `json`: the intent fields the
/// plugin already owns, at their current values, then the fields `change` sets.
pub fn apply_body(kind: Kind, json: &Value, change: &Change) -> Value {
    let mut body = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": kind.name(),
        "metadata": {
            "name": at(json, &["metadata", "name"]).cloned().unwrap_or(Value::Null),
            "namespace": at(json, &["metadata", "namespace"]).cloned().unwrap_or(Value::Null),
        },
    });
    for path in owned_intent_fields(json) {
        if let Some(value) = at(json, path) {
            put(&mut body, path, value.clone());
        }
    }
    for field in &change.fields {
        put(&mut body, field.path, field.after.clone());
    }
    body
}

fn put(body: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = body;
    for key in parents {
        if !here.is_object() {
            *here = Value::Object(Map::new());
        }
        let Some(map) = here.as_object_mut() else {
            return;
        };
        here = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(map) = here.as_object_mut() {
        map.insert(last.to_string(), value);
    }
}
