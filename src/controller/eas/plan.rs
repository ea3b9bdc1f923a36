//! What to do for one `EasServiceRollout`, as a pure function of what was read.
//!
//! - The rollout object: created when the cloud has none (with the strategy and
//!   `paused`), otherwise brought in line: a strategy that differs is sent, and `paused`
//!   when the cloud's phase (or, when the phase does not tell, the flag last sent) differs.
//! - The service config: pushed once (UpdateService, merge), never the same twice: the
//!   hash of the last pushed config is recorded; a config not recorded is compared with
//!   the cloud's (a crash between the push and the status write does not push again).
//! - The status mirrors the cloud (phase, replicas, revisions, next batch, strategy).
//!   Ready when the cloud reports Completed, or holds at the declared partition; Degraded
//!   when it reports Failed; the next look is when the next batch is due, or the active
//!   poll while moving.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::spec::{EasSpec, Strategy};
use crate::cloud::model::wire::{
    EAS_PHASE_COMPLETED, EAS_PHASE_FAILED, EAS_PHASE_PAUSED, EAS_PHASE_RUNNING,
};
use crate::cloud::model::{
    BatchConfig, PartitionConfig, Rollout, RolloutStatus, ServiceRolloutRequest,
};
use crate::controller::outcome::{Outcome, PHASE_COMPLETED, PHASE_PAUSED, PHASE_PROGRESSING};
use crate::controller::plan::{CloudAction, Input, Plan, Requeue};
use crate::controller::status::settle;
use crate::crd::EasServiceRolloutStatus;
use crate::crd::validation::{IntOrPercent, parse_duration};

/// What the shell read from the cloud.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// DescribeServiceRollout's `Rollout`; `None` when the service has no rollout.
    pub rollout: Option<Rollout>,
    /// DescribeService's `ServiceConfig`, parsed. Read only when [`needs_service_config`].
    pub service_config: Option<Value>,
}

/// One cloud mutation.
#[derive(Debug, Clone, PartialEq)]
pub enum EasAction {
    /// CreateServiceRollout.
    CreateRollout(ServiceRolloutRequest),
    /// UpdateServiceRollout with only the fields that differ.
    UpdateRollout(ServiceRolloutRequest),
    /// UpdateService (merge) with the spec's config, whose hash is `hash`.
    UpdateService { config: Value, hash: String },
}

impl CloudAction for EasAction {
    fn name(&self) -> &'static str {
        match self {
            EasAction::CreateRollout(_) => "CreateServiceRollout",
            EasAction::UpdateRollout(_) => "UpdateServiceRollout",
            EasAction::UpdateService { .. } => "UpdateService",
        }
    }

    fn describe(&self) -> String {
        match self {
            EasAction::CreateRollout(r) => format!("created the rollout ({})", describe_request(r)),
            EasAction::UpdateRollout(r) => format!("updated the rollout ({})", describe_request(r)),
            EasAction::UpdateService { hash, .. } => {
                format!("pushed the service config (sha256 {})", short(hash))
            }
        }
    }
}

pub type EasInput<'a> = Input<'a, EasSpec, EasServiceRolloutStatus, Observed>;

/// Does the planner need DescribeService's config (a config not yet recorded as pushed)?
pub fn needs_service_config(spec: &EasSpec, prev: Option<&EasServiceRolloutStatus>) -> bool {
    spec.service_config.as_ref().is_some_and(|config| {
        prev.and_then(|p| p.applied_service_config_hash.as_deref()) != Some(config.hash.as_str())
    })
}

/// Decide. Pure: the same input always gives the same plan.
pub fn plan(input: &EasInput<'_>) -> Plan<EasAction, EasServiceRolloutStatus> {
    let spec = input.spec;
    let prev = input.status;
    let rollout = input.observed.rollout.as_ref();
    let config = config_action(spec, prev, input.observed);
    let strategy = strategy_in_force(spec, &config);
    let actions: Vec<EasAction> = rollout_action(spec, &strategy, rollout, prev)
        .into_iter()
        .chain(config.push.clone())
        .collect();
    let mut status = mirror(rollout);
    status.config_version = spec
        .service_config
        .as_ref()
        .map(|c| c.version().to_string());
    status.applied_paused = Some(spec.paused);
    status.applied_service_config_hash = config.hash.clone();
    status.applied_service_config_keys = config.keys.clone();
    status.revision_before_push = config.revision_before_push.clone();
    let outcome = outcome(spec, &strategy, &actions, rollout, &config, input.now);
    settle(&mut status, prev, &outcome, input.generation, input.now);
    Plan {
        actions,
        status,
        requeue: outcome.requeue,
    }
}

/// The strategy the cloud must have now. Under the partition strategy the partition
/// applies to one version: `promotion.partition` once the declared service config is the
/// one pushed and the promotion names it; `strategy.partition` (where every new version
/// starts) otherwise, and always while a new config is being pushed, so that a partition
/// approved for the previous version ("0" that completed it) never carries over to the
/// next one.
fn strategy_in_force(spec: &EasSpec, config: &ConfigPush) -> Strategy {
    if config.push.is_some() || config.deferred {
        return spec.strategy.clone();
    }
    match spec.approved_partition() {
        Some(p) => Strategy::Partition(p),
        None => spec.strategy.clone(),
    }
}

/// Create the rollout, or bring its strategy and pause in line.
fn rollout_action(
    spec: &EasSpec,
    strategy: &Strategy,
    rollout: Option<&Rollout>,
    prev: Option<&EasServiceRolloutStatus>,
) -> Option<EasAction> {
    let want = strategy.request();
    let Some(rollout) = rollout else {
        return Some(EasAction::CreateRollout(ServiceRolloutRequest {
            paused: Some(spec.paused),
            ..want
        }));
    };
    let mut update = ServiceRolloutRequest::default();
    if strategy_differs(strategy, rollout) {
        update.partition = want.partition;
        update.batch = want.batch;
    }
    let cloud_paused = match phase(rollout) {
        Some(EAS_PHASE_PAUSED) => Some(true),
        Some(EAS_PHASE_RUNNING) => Some(false),
        _ => prev.and_then(|p| p.applied_paused),
    };
    if cloud_paused.unwrap_or(false) != spec.paused {
        update.paused = Some(spec.paused);
    }
    (update != ServiceRolloutRequest::default()).then_some(EasAction::UpdateRollout(update))
}

/// What the planner decided about the service config, and what status records of it.
struct ConfigPush {
    push: Option<EasAction>,
    /// Hash of the config last pushed (or found already applied).
    hash: Option<String>,
    /// The leaf paths of that config, so that a field removed from the spec later is
    /// removed from the service too.
    keys: Vec<String>,
    /// The rollout's revision when the config was pushed, until the cloud reports another.
    revision_before_push: Option<String>,
    /// A push is due but waits for the rollout's revision.
    deferred: bool,
}

/// The config push, if one is due. A push waits until the rollout exists and reports its
/// revision, so that "the new version is out" can be told from the previous one's
/// Completed (a revision is opaque: new means different from the one before the push).
fn config_action(
    spec: &EasSpec,
    prev: Option<&EasServiceRolloutStatus>,
    observed: &Observed,
) -> ConfigPush {
    let revision = observed
        .rollout
        .as_ref()
        .and_then(|r| r.status.as_ref())
        .and_then(|s| s.update_revision.clone());
    let mut out = ConfigPush {
        push: None,
        hash: prev.and_then(|p| p.applied_service_config_hash.clone()),
        keys: prev
            .map(|p| p.applied_service_config_keys.clone())
            .unwrap_or_default(),
        // Kept until the cloud shows another revision (or while it shows none).
        revision_before_push: prev
            .and_then(|p| p.revision_before_push.clone())
            .filter(|before| revision.as_ref().is_none_or(|r| r == before)),
        deferred: false,
    };
    let Some(config) = &spec.service_config else {
        return out;
    };
    if out.hash.as_deref() == Some(config.hash.as_str()) {
        return out;
    }
    let patch = removal_patch(&config.document, &out.keys);
    let applied = observed
        .service_config
        .as_ref()
        .is_some_and(|cloud| is_applied(&patch, cloud));
    if !applied {
        let Some(before) = revision else {
            // Not yet: the rollout is created (or reports a revision) first.
            out.deferred = true;
            return out;
        };
        out.push = Some(EasAction::UpdateService {
            config: patch,
            hash: config.hash.clone(),
        });
        out.revision_before_push = Some(before);
    }
    out.hash = Some(config.hash.clone());
    out.keys = leaf_paths(&config.document);
    out
}

/// The JSON pointers of `doc`'s leaves: members whose value is not an object (an array is
/// a leaf: a merge replaces it whole).
pub fn leaf_paths(doc: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    let token = k.replace('~', "~0").replace('/', "~1");
                    walk(child, &format!("{prefix}/{token}"), out);
                }
            }
            _ if prefix.is_empty() => {}
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(doc, "", &mut out);
    out
}

/// `doc` as a merge patch that also removes what an earlier push set and `doc` no longer
/// declares: each such leaf (`applied`, JSON pointers) is sent as `null`. Leaves under a
/// member `doc` now sets to a non-object are left to that member's new value; members
/// never pushed by the operator are left alone.
pub fn removal_patch(doc: &Value, applied: &[String]) -> Value {
    let mut patch = doc.clone();
    for path in applied {
        if doc.pointer(path).is_some() {
            continue;
        }
        let tokens: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        let Some((last, parents)) = tokens.split_last() else {
            continue;
        };
        let mut at = &mut patch;
        let mut blocked = false;
        for t in parents {
            let Value::Object(map) = at else {
                blocked = true;
                break;
            };
            at = map
                .entry(t.clone())
                .or_insert_with(|| Value::Object(Default::default()));
        }
        if let (false, Value::Object(map)) = (blocked, at) {
            map.insert(last.clone(), Value::Null);
        }
    }
    patch
}

/// Has the cloud's config taken the merge patch `patch`: every value present and equal,
/// every `null` member absent?
pub fn is_applied(patch: &Value, cloud: &Value) -> bool {
    match (patch, cloud) {
        (Value::Object(p), Value::Object(c)) => p.iter().all(|(k, v)| match (v, c.get(k)) {
            (Value::Null, None | Some(Value::Null)) => true,
            (Value::Null, Some(_)) => false,
            (_, Some(cv)) => is_applied(v, cv),
            (_, None) => only_removals(v),
        }),
        (Value::Object(_), _) => only_removals(patch),
        _ => is_subset(patch, cloud),
    }
}

/// A patch value that only removes (nulls, or objects of nothing but removals): applied
/// where the member is absent.
fn only_removals(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(map) => map.values().all(only_removals),
        _ => false,
    }
}

/// The cloud's view of the rollout, as status shows it.
fn mirror(rollout: Option<&Rollout>) -> EasServiceRolloutStatus {
    let mut status = EasServiceRolloutStatus::default();
    if let Some(s) = rollout.and_then(|r| r.status.as_ref()) {
        status.total_replicas = s.total_replicas;
        status.updated_replicas = s.updated_replicas;
        status.current_revision = s.current_revision.clone();
        status.update_revision = s.update_revision.clone();
        status.next_batch_start_time = s.next_batch_start_time.clone();
    }
    status.cloud_strategy = rollout
        .and_then(|r| r.strategy.as_ref())
        .and_then(|s| render_strategy(s.partition.as_ref(), s.batch.as_ref()));
    status
}

/// The situation, in the shared vocabulary; the phase is the cloud's when it reports one.
fn outcome(
    spec: &EasSpec,
    strategy: &Strategy,
    actions: &[EasAction],
    rollout: Option<&Rollout>,
    config: &ConfigPush,
    now: Timestamp,
) -> Outcome {
    let cloud = rollout.and_then(|r| r.status.as_ref());
    let phase_name = cloud.and_then(|s| s.phase.as_deref()).unwrap_or_default();
    let replicas = match cloud.map(|s| (s.updated_replicas, s.total_replicas)) {
        Some((Some(u), Some(t))) => format!("{u}/{t} replicas updated"),
        _ => "replica counts not reported yet".to_string(),
    };
    let mut o = if !actions.is_empty() {
        let what: Vec<String> = actions.iter().map(CloudAction::describe).collect();
        Outcome::moving(PHASE_PROGRESSING, "Applying", what.join("; "))
    } else if phase_name == EAS_PHASE_FAILED {
        Outcome::needs_person(
            "RolloutFailed",
            format!("the cloud reports the rollout Failed ({replicas})"),
        )
    } else if phase_name == EAS_PHASE_PAUSED || (spec.paused && phase_name != EAS_PHASE_COMPLETED) {
        Outcome::new(PHASE_PAUSED, format!("paused ({replicas})"))
    } else if let Some(before) = &config.revision_before_push {
        // What the cloud reports is still the version before the push: not this
        // generation's target, whatever its phase.
        Outcome::moving(
            PHASE_PROGRESSING,
            "WaitingForNewRevision",
            format!(
                "the service config was pushed; waiting for the cloud to start a new revision (it reports {before}, {replicas})"
            ),
        )
    } else if spec.service_config.is_some()
        && cloud.and_then(|s| s.update_revision.as_ref()).is_none()
    {
        Outcome::moving(
            PHASE_PROGRESSING,
            "WaitingForRevision",
            "waiting for the rollout to report its revision before pushing the service config",
        )
    } else if phase_name == EAS_PHASE_COMPLETED {
        Outcome::done(
            PHASE_COMPLETED,
            "Completed",
            format!("rollout completed ({replicas})"),
        )
    } else if partition_reached(strategy, cloud) {
        Outcome::done(
            PHASE_PROGRESSING,
            "PartitionReached",
            format!(
                "holding at the declared partition ({replicas}){}",
                approval_note(spec)
            ),
        )
    } else {
        let requeue = next_batch_due(cloud.and_then(|s| s.next_batch_start_time.as_deref()), now)
            .map(|due| Requeue::After(due + Duration::from_millis(500)))
            .unwrap_or(Requeue::Active);
        Outcome::waiting(
            PHASE_PROGRESSING,
            "RollingOut",
            format!("rolling out ({replicas})"),
            requeue,
        )
    };
    o.paused = spec.paused;
    if !phase_name.is_empty() {
        o.phase = phase_name.to_string();
    }
    o
}

/// Under the partition strategy with a service config: how to approve another partition
/// for this version, and why an approval in the spec does not apply.
fn approval_note(spec: &EasSpec) -> String {
    let (Strategy::Partition(_), Some(config)) = (&spec.strategy, &spec.service_config) else {
        return String::new();
    };
    let version = config.version();
    match &spec.promotion {
        Some(p) if p.version == version => String::new(),
        Some(p) => format!(
            "; promotion names version {}, not this one ({version}): it approves nothing here; \
             approve with promotion: {{version: {version}, partition: ...}}",
            p.version
        ),
        None => format!(
            "; version {version} holds at strategy.partition until promotion: {{version: \
             {version}, partition: ...}} approves more"
        ),
    }
}

/// Is every field of `want` present with the same value in `have` (objects compared
/// key by key, arrays element by element)? That is what a merge-update of `want` leaves.
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| is_subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == have,
    }
}

fn phase(rollout: &Rollout) -> Option<&str> {
    rollout.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn strategy_differs(want: &Strategy, have: &Rollout) -> bool {
    let Some(cloud) = &have.strategy else {
        return false;
    };
    if cloud.partition.is_none() && cloud.batch.is_none() {
        return false;
    }
    let parse = |s: Option<&str>| s.and_then(|s| IntOrPercent::parse(s.trim()));
    match want {
        Strategy::Partition(p) => {
            parse(cloud.partition.as_ref().map(|c| c.partition.as_str())) != Some(*p)
        }
        Strategy::Batch { size, interval } => match &cloud.batch {
            None => true,
            Some(c) => {
                let size_differs = parse(c.batch_size.as_deref()) != Some(*size);
                let interval_differs = interval.as_ref().is_some_and(|i| {
                    c.interval
                        .as_deref()
                        .and_then(|t| parse_duration(t.trim()).ok())
                        != Some(i.duration)
                });
                size_differs || interval_differs
            }
        },
    }
}

fn render_strategy(p: Option<&PartitionConfig>, b: Option<&BatchConfig>) -> Option<String> {
    match (p, b) {
        (Some(p), _) => Some(format!("partition={}", p.partition)),
        (None, Some(b)) => {
            let size = b.batch_size.as_deref().unwrap_or("25%");
            Some(match &b.interval {
                Some(i) => format!("batch={size}/{i}"),
                None => format!("batch={size}"),
            })
        }
        (None, None) => None,
    }
}

fn describe_request(r: &ServiceRolloutRequest) -> String {
    let mut parts = Vec::new();
    if let Some(s) = render_strategy(r.partition.as_ref(), r.batch.as_ref()) {
        parts.push(s);
    }
    if let Some(p) = r.paused {
        parts.push(format!("paused={p}"));
    }
    parts.join(", ")
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// With a partition strategy, have the replicas not kept on the old version all been
/// updated?
fn partition_reached(strategy: &Strategy, status: Option<&RolloutStatus>) -> bool {
    let (Strategy::Partition(p), Some(s)) = (strategy, status) else {
        return false;
    };
    let (Some(total), Some(updated)) = (s.total_replicas, s.updated_replicas) else {
        return false;
    };
    if s.current_revision.is_some() && s.current_revision == s.update_revision {
        return false;
    }
    let Ok(total_u32) = u32::try_from(total) else {
        return false;
    };
    // The cloud keeps ceil(percentage of total) replicas on the old version.
    let keep = i64::from(p.replicas_of(total_u32).min(total_u32));
    keep > 0 && updated >= total - keep
}

/// How long until the cloud's NextBatchStartTime, when it is in the future. The cloud
/// writes "2026/05/08 16:10:56" (read as UTC); RFC 3339 is accepted too.
fn next_batch_due(next: Option<&str>, now: Timestamp) -> Option<Duration> {
    let next = next?.trim();
    let at = next.parse::<Timestamp>().ok().or_else(|| {
        jiff::civil::DateTime::strptime("%Y/%m/%d %H:%M:%S", next)
            .ok()
            .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt).ok())
    })?;
    let due = at.duration_since(now);
    if due.is_negative() || due.is_zero() {
        return None;
    }
    Duration::try_from(due).ok()
}

#[cfg(test)]
mod tests {
    use super::super::spec::fixtures::{spec_batch, spec_partition};
    use super::super::spec::{config_hash, validate};
    use super::*;
    use crate::cloud::model::RolloutStrategy;
    use crate::controller::plan::decide;
    use crate::crd::EasServiceRolloutSpec;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-05-08T16:00:00Z".parse().expect("valid")
    }

    fn rollout(strategy: RolloutStrategy, phase: &str, updated: i64, total: i64) -> Rollout {
        Rollout {
            strategy: Some(strategy),
            status: Some(RolloutStatus {
                phase: Some(phase.into()),
                total_replicas: Some(total),
                updated_replicas: Some(updated),
                current_revision: Some("svc-v1".into()),
                update_revision: Some(if updated == total && phase == "Completed" {
                    "svc-v1".into()
                } else {
                    "svc-v2".into()
                }),
                next_batch_start_time: None,
            }),
        }
    }

    fn partition(p: &str) -> RolloutStrategy {
        RolloutStrategy {
            partition: Some(PartitionConfig {
                partition: p.into(),
            }),
            batch: None,
        }
    }

    fn batch(size: &str, interval: Option<&str>) -> RolloutStrategy {
        RolloutStrategy {
            partition: None,
            batch: Some(BatchConfig {
                batch_size: Some(size.into()),
                interval: interval.map(Into::into),
            }),
        }
    }

    fn observed(r: Option<Rollout>) -> Observed {
        Observed {
            rollout: r,
            service_config: None,
        }
    }

    fn cond<'a>(
        s: &'a EasServiceRolloutStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition present")
    }

    fn at(
        spec: &EasServiceRolloutSpec,
        generation: i64,
        prev: &EasServiceRolloutStatus,
        obs: &Observed,
        now: Timestamp,
    ) -> Plan<EasAction, EasServiceRolloutStatus> {
        decide(
            plan,
            Input {
                spec: &validate(spec).expect("valid spec"),
                generation: Some(generation),
                status: Some(prev),
                observed: obs,
                now,
            },
        )
    }

    fn run(
        spec: &EasServiceRolloutSpec,
        prev: &EasServiceRolloutStatus,
        obs: &Observed,
    ) -> Plan<EasAction, EasServiceRolloutStatus> {
        at(spec, 3, prev, obs, now())
    }

    #[test]
    fn creates_the_rollout_when_missing() {
        let mut spec = spec_batch("1", Some("5m"));
        spec.paused = true;
        let p = run(&spec, &Default::default(), &observed(None));
        assert_eq!(
            p.actions,
            vec![EasAction::CreateRollout(ServiceRolloutRequest {
                partition: None,
                batch: Some(BatchConfig {
                    batch_size: Some("1".into()),
                    interval: Some("5m".into())
                }),
                paused: Some(true),
            })]
        );
        assert_eq!(p.status.applied_paused, Some(true));
        assert_eq!(p.status.observed_generation, Some(3));
        assert_eq!(p.requeue, Requeue::Active);
        assert_eq!(cond(&p.status, "Ready").status, "False");
        assert_eq!(cond(&p.status, "Progressing").status, "True");
    }

    #[test]
    fn rollout_update_table() {
        // (spec, cloud rollout, applied_paused recorded, expected update)
        let cases: Vec<(
            EasServiceRolloutSpec,
            Rollout,
            Option<bool>,
            Option<ServiceRolloutRequest>,
        )> = vec![
            // In line: nothing.
            (
                spec_partition("2"),
                rollout(partition("2"), "Running", 1, 4),
                Some(false),
                None,
            ),
            // Lower partition: advance.
            (
                spec_partition("0"),
                rollout(partition("2"), "Running", 2, 4),
                Some(false),
                Some(ServiceRolloutRequest {
                    partition: Some(PartitionConfig {
                        partition: "0".into(),
                    }),
                    ..Default::default()
                }),
            ),
            // Raise partition: roll back.
            (
                spec_partition("4"),
                rollout(partition("1"), "Running", 3, 4),
                Some(false),
                Some(ServiceRolloutRequest {
                    partition: Some(PartitionConfig {
                        partition: "4".into(),
                    }),
                    ..Default::default()
                }),
            ),
            // Pause a running rollout.
            (
                {
                    let mut s = spec_batch("1", Some("5m"));
                    s.paused = true;
                    s
                },
                rollout(batch("1", Some("5m")), "Running", 1, 4),
                Some(false),
                Some(ServiceRolloutRequest {
                    paused: Some(true),
                    ..Default::default()
                }),
            ),
            // Already paused in the cloud: nothing, even without a record.
            (
                {
                    let mut s = spec_batch("1", Some("5m"));
                    s.paused = true;
                    s
                },
                rollout(batch("1", Some("5m")), "Paused", 1, 4),
                None,
                None,
            ),
            // Resume.
            (
                spec_batch("1", Some("5m")),
                rollout(batch("1", Some("5m")), "Paused", 1, 4),
                Some(true),
                Some(ServiceRolloutRequest {
                    paused: Some(false),
                    ..Default::default()
                }),
            ),
            // Completed and paused already sent: not sent again.
            (
                {
                    let mut s = spec_batch("1", None);
                    s.paused = true;
                    s
                },
                rollout(batch("1", None), "Completed", 4, 4),
                Some(true),
                None,
            ),
            // Completed, pause never sent: sent once.
            (
                {
                    let mut s = spec_batch("1", None);
                    s.paused = true;
                    s
                },
                rollout(batch("1", None), "Completed", 4, 4),
                Some(false),
                Some(ServiceRolloutRequest {
                    paused: Some(true),
                    ..Default::default()
                }),
            ),
            // Batch size change; the interval the cloud reports in another unit is the same.
            (
                spec_batch("2", Some("60s")),
                rollout(batch("1", Some("1m")), "Running", 1, 4),
                Some(false),
                Some(ServiceRolloutRequest {
                    batch: Some(BatchConfig {
                        batch_size: Some("2".into()),
                        interval: Some("60s".into()),
                    }),
                    ..Default::default()
                }),
            ),
            (
                spec_batch("1", Some("60s")),
                rollout(batch("1", Some("1m")), "Running", 1, 4),
                Some(false),
                None,
            ),
            // Batch -> partition: sends only the partition, never both.
            (
                spec_partition("1"),
                rollout(batch("1", None), "Running", 1, 4),
                Some(false),
                Some(ServiceRolloutRequest {
                    partition: Some(PartitionConfig {
                        partition: "1".into(),
                    }),
                    ..Default::default()
                }),
            ),
        ];
        for (i, (spec, cloud, applied_paused, want)) in cases.into_iter().enumerate() {
            let prev = EasServiceRolloutStatus {
                applied_paused,
                cloud_ref: Some("cn-shanghai/svc".into()),
                ..Default::default()
            };
            let p = run(&spec, &prev, &observed(Some(cloud)));
            let got = p.actions.first().cloned();
            assert_eq!(got, want.map(EasAction::UpdateRollout), "case {i}");
            assert!(p.actions.len() <= 1, "case {i}");
            assert_eq!(p.status.applied_paused, Some(spec.paused), "case {i}");
        }
    }

    #[test]
    fn service_config_is_pushed_once() {
        let mut spec = spec_partition("1");
        let config = json!({"containers": [{"image": "repo/model:v2"}]});
        spec.service_config = Some(config.clone());
        let hash = config_hash(&config);
        let cloud = Some(rollout(partition("1"), "Completed", 4, 4));
        let prev = EasServiceRolloutStatus {
            applied_paused: Some(false),
            ..Default::default()
        };
        assert!(needs_service_config(
            &validate(&spec).expect("valid"),
            Some(&prev)
        ));

        // The cloud runs v1: push.
        let obs = Observed {
            service_config: Some(
                json!({"name": "svc", "containers": [{"image": "repo/model:v1", "port": 8000}]}),
            ),
            ..observed(cloud.clone())
        };
        let p = run(&spec, &prev, &obs);
        assert_eq!(
            p.actions,
            vec![EasAction::UpdateService {
                config: config.clone(),
                hash: hash.clone()
            }]
        );
        assert_eq!(
            p.status.applied_service_config_hash.as_deref(),
            Some(hash.as_str())
        );
        assert_eq!(
            cond(&p.status, "Ready").status,
            "False",
            "a push is not Ready"
        );

        // Recorded: no read needed, nothing pushed.
        let recorded = EasServiceRolloutStatus {
            applied_service_config_hash: Some(hash.clone()),
            ..prev.clone()
        };
        assert!(!needs_service_config(
            &validate(&spec).expect("valid"),
            Some(&recorded)
        ));
        let p = run(&spec, &recorded, &observed(cloud.clone()));
        assert!(p.actions.is_empty());

        // Crash after the push, before the status write: the cloud already has it.
        let obs = Observed {
            service_config: Some(
                json!({"name": "svc", "containers": [{"image": "repo/model:v2", "port": 8000}]}),
            ),
            ..observed(cloud)
        };
        let p = run(&spec, &prev, &obs);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(
            p.status.applied_service_config_hash.as_deref(),
            Some(hash.as_str())
        );
    }

    #[test]
    fn reverted_config_is_pushed_again() {
        let v1 = json!({"containers": [{"image": "repo/model:v1"}]});
        let v2 = json!({"containers": [{"image": "repo/model:v2"}]});
        let mut spec = spec_partition("4");
        spec.service_config = Some(v1.clone());
        let prev = EasServiceRolloutStatus {
            applied_service_config_hash: Some(config_hash(&v2)),
            applied_paused: Some(false),
            ..Default::default()
        };
        let obs = Observed {
            service_config: Some(v2),
            ..observed(Some(rollout(partition("1"), "Running", 3, 4)))
        };
        let p = run(&spec, &prev, &obs);
        assert_eq!(p.actions.len(), 2);
        assert_eq!(p.actions[0].name(), "UpdateServiceRollout");
        assert_eq!(
            p.actions[1],
            EasAction::UpdateService {
                config: v1.clone(),
                hash: config_hash(&v1)
            }
        );
    }

    #[test]
    fn the_config_push_waits_for_the_created_rollouts_revision() {
        let mut spec = spec_batch("1", None);
        spec.service_config = Some(json!({"containers": [{"image": "x:v2"}]}));
        let cloud_config = Some(json!({"containers": [{"image": "x:v1"}]}));
        let obs = Observed {
            service_config: cloud_config.clone(),
            ..observed(None)
        };
        let p = run(&spec, &Default::default(), &obs);
        let names: Vec<_> = p.actions.iter().map(EasAction::name).collect();
        assert_eq!(names, ["CreateServiceRollout"], "the push waits");
        assert_eq!(p.status.applied_service_config_hash, None);
        assert!(p.status.revision_before_push.is_none());
        // The created rollout reports its revision: the push goes, recording it.
        let obs = Observed {
            service_config: cloud_config,
            ..observed(Some(rollout(batch("1", None), "Completed", 4, 4)))
        };
        let p = run(&spec, &p.status, &obs);
        let names: Vec<_> = p.actions.iter().map(EasAction::name).collect();
        assert_eq!(names, ["UpdateService"]);
        assert_eq!(p.status.revision_before_push.as_deref(), Some("svc-v1"));
        assert_eq!(p.status.applied_service_config_keys, ["/containers"]);
    }

    /// Invariant: Ready for a generation only when the cloud shows that generation's target.
    /// After a push, the previous version's Completed is not it.
    #[test]
    fn ready_only_once_the_pushed_version_is_out() {
        let mut spec = spec_batch("1", None);
        let config = json!({"containers": [{"image": "x:v2"}]});
        spec.service_config = Some(config.clone());
        let pushed = EasServiceRolloutStatus {
            applied_paused: Some(false),
            applied_service_config_hash: Some(config_hash(&config)),
            applied_service_config_keys: vec!["/containers".into()],
            revision_before_push: Some("svc-v1".into()),
            ..Default::default()
        };
        // The cloud still reports the previous rollout, Completed (a lagging view).
        let stale = run(
            &spec,
            &pushed,
            &observed(Some(rollout(batch("1", None), "Completed", 4, 4))),
        );
        assert!(
            stale.actions.is_empty(),
            "not pushed again: {:?}",
            stale.actions
        );
        assert_eq!(cond(&stale.status, "Ready").status, "False");
        assert_eq!(
            cond(&stale.status, "Progressing").reason,
            "WaitingForNewRevision"
        );
        assert_eq!(stale.status.revision_before_push.as_deref(), Some("svc-v1"));
        assert_eq!(stale.requeue, Requeue::Active);
        // The new revision shows up: the record goes, the rollout is followed as usual.
        let moving = run(
            &spec,
            &stale.status,
            &observed(Some(rollout(batch("1", None), "Running", 1, 4))),
        );
        assert_eq!(moving.status.revision_before_push, None);
        assert_eq!(cond(&moving.status, "Ready").status, "False");
        let mut done = rollout(batch("1", None), "Completed", 4, 4);
        if let Some(st) = done.status.as_mut() {
            st.current_revision = Some("svc-v2".into());
            st.update_revision = Some("svc-v2".into());
        }
        let done = run(&spec, &moving.status, &observed(Some(done)));
        assert_eq!(cond(&done.status, "Ready").status, "True");
    }

    /// Invariant: the operator pushes the declared config, removals included.
    #[test]
    fn a_field_removed_from_the_spec_is_removed_from_the_service() {
        let before =
            json!({"containers": [{"image": "x:v1"}], "metadata": {"instance": 2, "gpu": 1}});
        let after = json!({"containers": [{"image": "x:v1"}], "metadata": {"instance": 2}});
        let mut spec = spec_batch("1", None);
        spec.service_config = Some(after.clone());
        let prev = EasServiceRolloutStatus {
            applied_paused: Some(false),
            applied_service_config_hash: Some(config_hash(&before)),
            applied_service_config_keys: leaf_paths(&before),
            ..Default::default()
        };
        let cloud = Rollout {
            ..rollout(batch("1", None), "Completed", 4, 4)
        };
        // The cloud has the old config plus a field set in the console.
        let mut in_cloud = before.clone();
        in_cloud["metadata"]["cpu"] = json!(8);
        let obs = Observed {
            service_config: Some(in_cloud),
            ..observed(Some(cloud.clone()))
        };
        let p = run(&spec, &prev, &obs);
        let want =
            json!({"containers": [{"image": "x:v1"}], "metadata": {"instance": 2, "gpu": null}});
        assert_eq!(
            p.actions,
            vec![EasAction::UpdateService {
                config: want,
                hash: config_hash(&after)
            }],
            "the removal is sent; the console's field is left alone"
        );
        assert!(
            !p.status
                .applied_service_config_keys
                .contains(&"/metadata/gpu".to_string())
        );
        // Pushed but the status write was lost: the cloud already shows it, nothing is sent.
        let obs = Observed {
            service_config: Some(
                json!({"containers": [{"image": "x:v1"}], "metadata": {"instance": 2, "cpu": 8}}),
            ),
            ..observed(Some(cloud))
        };
        let p = run(&spec, &prev, &obs);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(
            p.status.applied_service_config_hash,
            Some(config_hash(&after))
        );
    }

    #[test]
    fn removal_patches() {
        let doc = json!({"a": {"b": 1}, "c": [1], "e/f": 2});
        let mut paths = leaf_paths(&doc);
        paths.sort();
        assert_eq!(paths, ["/a/b", "/c", "/e~1f"]);
        let applied = vec![
            "/a/b".into(),
            "/a/x".into(),
            "/c".into(),
            "/gone/deep".into(),
            "/e~1f".into(),
        ];
        assert_eq!(
            removal_patch(&json!({"a": {"b": 1}, "c": [2]}), &applied),
            json!({"a": {"b": 1, "x": null}, "c": [2], "gone": {"deep": null}, "e/f": null})
        );
        // A member that is now a value takes that value; nothing under it is nulled.
        assert_eq!(
            removal_patch(&json!({"a": 5}), &["/a/b".to_string()]),
            json!({"a": 5})
        );
        assert!(is_applied(
            &json!({"a": {"x": null}, "b": 1}),
            &json!({"a": {}, "b": 1.0})
        ));
        assert!(!is_applied(
            &json!({"a": {"x": null}}),
            &json!({"a": {"x": 1}})
        ));
        assert!(is_applied(&json!({"gone": {"deep": null}}), &json!({})));
    }

    #[test]
    fn conditions_and_requeue_follow_the_phase() {
        let prev = EasServiceRolloutStatus {
            applied_paused: Some(false),
            ..Default::default()
        };
        // (spec, rollout, Ready, Progressing, Degraded, requeue)
        let mut paused_spec = spec_batch("1", Some("5m"));
        paused_spec.paused = true;
        let cases = [
            (
                spec_batch("1", Some("5m")),
                rollout(batch("1", Some("5m")), "Running", 1, 4),
                "False",
                "True",
                "False",
                Requeue::Active,
            ),
            (
                spec_batch("1", Some("5m")),
                rollout(batch("1", Some("5m")), "Completed", 4, 4),
                "True",
                "False",
                "False",
                Requeue::Settled,
            ),
            (
                spec_batch("1", Some("5m")),
                rollout(batch("1", Some("5m")), "Failed", 1, 4),
                "False",
                "False",
                "True",
                Requeue::Settled,
            ),
            (
                paused_spec,
                rollout(batch("1", Some("5m")), "Paused", 1, 4),
                "False",
                "False",
                "False",
                Requeue::Settled,
            ),
            (
                spec_partition("2"),
                rollout(partition("2"), "Running", 2, 4),
                "True",
                "False",
                "False",
                Requeue::Settled,
            ),
            (
                spec_partition("2"),
                rollout(partition("2"), "Running", 1, 4),
                "False",
                "True",
                "False",
                Requeue::Active,
            ),
            (
                spec_partition("50%"),
                rollout(partition("50%"), "Running", 2, 4),
                "True",
                "False",
                "False",
                Requeue::Settled,
            ),
        ];
        for (i, (spec, cloud, ready, progressing, degraded, requeue)) in
            cases.into_iter().enumerate()
        {
            let prev = EasServiceRolloutStatus {
                applied_paused: Some(spec.paused),
                ..prev.clone()
            };
            let p = run(&spec, &prev, &observed(Some(cloud)));
            assert!(p.actions.is_empty(), "case {i}: {:?}", p.actions);
            assert_eq!(cond(&p.status, "Ready").status, ready, "case {i}");
            assert_eq!(
                cond(&p.status, "Progressing").status,
                progressing,
                "case {i}"
            );
            assert_eq!(cond(&p.status, "Degraded").status, degraded, "case {i}");
            assert_eq!(
                cond(&p.status, "Paused").status,
                if spec.paused { "True" } else { "False" },
                "case {i}"
            );
            assert_eq!(p.requeue, requeue, "case {i}");
        }
    }

    #[test]
    fn mirrors_the_cloud_status() {
        let mut cloud = rollout(batch("25%", Some("5m")), "Running", 1, 4);
        if let Some(s) = cloud.status.as_mut() {
            s.next_batch_start_time = Some("2026/05/08 16:00:40".into());
        }
        let prev = EasServiceRolloutStatus {
            applied_paused: Some(false),
            ..Default::default()
        };
        let p = run(
            &spec_batch("25%", Some("5m")),
            &prev,
            &observed(Some(cloud)),
        );
        assert_eq!(p.status.phase.as_deref(), Some("Running"));
        assert_eq!(p.status.updated_replicas, Some(1));
        assert_eq!(p.status.total_replicas, Some(4));
        assert_eq!(p.status.current_revision.as_deref(), Some("svc-v1"));
        assert_eq!(p.status.update_revision.as_deref(), Some("svc-v2"));
        assert_eq!(p.status.cloud_strategy.as_deref(), Some("batch=25%/5m"));
        assert_eq!(
            p.status.next_batch_start_time.as_deref(),
            Some("2026/05/08 16:00:40")
        );
        assert_eq!(
            p.status.last_request_id, None,
            "a read does not rewrite the status"
        );
        // The next batch is due in 40 s: look then, not every 5 s.
        assert_eq!(p.requeue, Requeue::After(Duration::from_millis(40_500)));
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let spec = spec_batch("1", None);
        let prev = EasServiceRolloutStatus {
            applied_paused: Some(false),
            ..Default::default()
        };
        let first = at(
            &spec,
            1,
            &prev,
            &observed(Some(rollout(batch("1", None), "Running", 1, 4))),
            now(),
        );
        let later = now() + jiff::SignedDuration::from_secs(60);
        let second = at(
            &spec,
            1,
            &first.status,
            &observed(Some(rollout(batch("1", None), "Running", 2, 4))),
            later,
        );
        assert_eq!(
            cond(&first.status, "Progressing").last_transition_time,
            cond(&second.status, "Progressing").last_transition_time
        );
        let done = at(
            &spec,
            1,
            &second.status,
            &observed(Some(rollout(batch("1", None), "Completed", 4, 4))),
            later,
        );
        assert_eq!(cond(&done.status, "Ready").status, "True");
        assert_eq!(cond(&done.status, "Ready").last_transition_time.0, later);
    }

    /// Invariant: a partition approved for one version applies to that version only. A
    /// finished partition rollout (approved to "0") does not let the next service config
    /// replace every replica at once: the next version starts at `strategy.partition`.
    #[test]
    fn a_partition_approved_for_one_version_does_not_carry_over() {
        use crate::crd::EasPromotion;
        let a = json!({"containers": [{"image": "x:a"}]});
        let b = json!({"containers": [{"image": "x:b"}]});
        let version = |c: &Value| config_hash(c)[..12].to_string();
        let approve = |c: &Value, p: &str| {
            Some(EasPromotion {
                version: version(c),
                partition: p.into(),
            })
        };
        let applied = |c: &Value| EasServiceRolloutStatus {
            applied_paused: Some(false),
            applied_service_config_hash: Some(config_hash(c)),
            applied_service_config_keys: leaf_paths(c),
            ..Default::default()
        };
        let to = |p: &str| {
            EasAction::UpdateRollout(ServiceRolloutRequest {
                partition: Some(PartitionConfig {
                    partition: p.into(),
                }),
                ..Default::default()
            })
        };
        let push = |c: &Value| EasAction::UpdateService {
            config: c.clone(),
            hash: config_hash(c),
        };
        let completed = rollout(partition("0"), "Completed", 4, 4);
        // (declared config, promotion, status, cloud config, cloud rollout, actions, Ready)
        type Case<'a> = (
            &'a Value,
            Option<EasPromotion>,
            EasServiceRolloutStatus,
            &'a Value,
            Rollout,
            Vec<EasAction>,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            // A completed with an approval for A; B is declared: the partition goes back to
            // where new versions start BEFORE B is pushed.
            (
                &b,
                approve(&a, "0"),
                applied(&a),
                &a,
                completed.clone(),
                vec![to("3"), push(&b)],
                "False",
            ),
            // The same without any approval left in the spec (removed after A finished).
            (
                &b,
                None,
                applied(&a),
                &a,
                completed.clone(),
                vec![to("3"), push(&b)],
                "False",
            ),
            // B pushed and held at the start: the approval for A approves nothing.
            (
                &b,
                approve(&a, "0"),
                applied(&b),
                &b,
                rollout(partition("3"), "Running", 1, 4),
                vec![],
                "True",
            ),
            // Approved for B: B goes to the approved partition.
            (
                &b,
                approve(&b, "0"),
                applied(&b),
                &b,
                rollout(partition("3"), "Running", 1, 4),
                vec![to("0")],
                "False",
            ),
            (
                &b,
                approve(&b, "2"),
                applied(&b),
                &b,
                rollout(partition("3"), "Running", 1, 4),
                vec![to("2")],
                "False",
            ),
            // Approved for B in the same edit that declares B: still pushed at the start,
            // the approval applies once B is out (a push that fails halfway never completes
            // the previous version).
            (
                &b,
                approve(&b, "0"),
                applied(&a),
                &a,
                completed.clone(),
                vec![to("3"), push(&b)],
                "False",
            ),
            // The status write after B's push was lost: the cloud has B; the approval for
            // A still approves nothing.
            (
                &b,
                approve(&a, "0"),
                EasServiceRolloutStatus {
                    applied_paused: Some(false),
                    ..Default::default()
                },
                &b,
                rollout(partition("3"), "Running", 1, 4),
                vec![],
                "True",
            ),
        ];
        for (i, (config, promotion, prev, cloud_config, cloud, want, ready)) in
            cases.into_iter().enumerate()
        {
            let mut spec = spec_partition("3");
            spec.service_config = Some(config.clone());
            spec.promotion = promotion;
            let obs = Observed {
                rollout: Some(cloud),
                service_config: Some(cloud_config.clone()),
            };
            let p = run(&spec, &prev, &obs);
            assert_eq!(p.actions, want, "case {i}");
            assert_eq!(cond(&p.status, "Ready").status, ready, "case {i}");
            assert_eq!(
                p.status.config_version.as_deref(),
                Some(version(config).as_str()),
                "case {i}"
            );
        }
        // Held at the start, the message says how to approve this version.
        let mut spec = spec_partition("3");
        spec.service_config = Some(b.clone());
        spec.promotion = approve(&a, "0");
        let p = run(
            &spec,
            &applied(&b),
            &observed(Some(rollout(partition("3"), "Running", 1, 4))),
        );
        let msg = p.status.message.clone().unwrap_or_default();
        assert!(
            msg.contains(&format!("promotion names version {}", version(&a)))
                && msg.contains(&format!("version: {}", version(&b))),
            "{msg}"
        );
    }

    #[test]
    fn subsets() {
        assert!(is_subset(
            &json!({"a": {"b": 1}}),
            &json!({"a": {"b": 1.0, "c": 2}, "d": 3})
        ));
        assert!(!is_subset(&json!({"a": [1, 2]}), &json!({"a": [1]})));
    }
}
