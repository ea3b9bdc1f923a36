//! What to do for one `EasServiceRollout`, as a pure function of what was read.
//!
//! `plan(spec, generation, previous status, observed cloud state, now)` returns the cloud
//! mutations to make (in order), the status to write and when to look again. No I/O, no
//! clock: the reconciler reads, calls this, executes the actions and writes the status.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::conditions::{self, Desired};
use crate::cloud::model::{BatchConfig, PartitionConfig, Rollout, ServiceRolloutRequest};
use crate::crd::{
    CONDITION_DEGRADED, CONDITION_PAUSED, CONDITION_PROGRESSING, CONDITION_READY,
    EasServiceRolloutSpec, EasServiceRolloutStatus,
};

/// How often to look at the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// While a rollout moves.
    pub active: Duration,
    /// Once it has settled (completed, paused, failed).
    pub settled: Duration,
}

/// What the reconciler read from the cloud.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// DescribeServiceRollout's `Rollout`; `None` when the service has no rollout.
    pub rollout: Option<Rollout>,
    /// DescribeService's `ServiceConfig`, parsed. Read only when [`needs_service_config`].
    pub service_config: Option<Value>,
    /// RequestId of the last read.
    pub request_id: Option<String>,
}

/// One cloud mutation.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// CreateServiceRollout.
    CreateRollout(ServiceRolloutRequest),
    /// UpdateServiceRollout with only the fields that differ.
    UpdateRollout(ServiceRolloutRequest),
    /// UpdateService (merge) with the spec's config, whose hash is `hash`.
    UpdateService { config: Value, hash: String },
}

impl Action {
    /// The cloud action's name (Event action, metric label).
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateRollout(_) => "CreateServiceRollout",
            Action::UpdateRollout(_) => "UpdateServiceRollout",
            Action::UpdateService { .. } => "UpdateService",
        }
    }

    /// What the action does, for Events and logs (never carries secrets: the service
    /// config is summarised by its hash).
    pub fn describe(&self) -> String {
        match self {
            Action::CreateRollout(r) => format!("created the rollout ({})", describe_request(r)),
            Action::UpdateRollout(r) => format!("updated the rollout ({})", describe_request(r)),
            Action::UpdateService { hash, .. } => {
                format!("pushed the service config (sha256 {})", short(hash))
            }
        }
    }
}

/// The decision for one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Status to write once every action succeeded.
    pub status: EasServiceRolloutStatus,
    /// When to look again (before jitter).
    pub requeue: Duration,
}

/// The spec's strategy as the cloud wants it, or why the spec cannot be used.
pub fn validate(
    spec: &EasServiceRolloutSpec,
    prev: &EasServiceRolloutStatus,
) -> Result<ServiceRolloutRequest, String> {
    if spec.region.trim().is_empty() {
        return Err("region must not be empty".into());
    }
    if spec.service_name.trim().is_empty() {
        return Err("serviceName must not be empty".into());
    }
    let cloud_ref = cloud_ref(spec);
    if let Some(recorded) = &prev.cloud_ref
        && *recorded != cloud_ref
    {
        return Err(format!(
            "this resource manages {recorded}; region/serviceName now say {cloud_ref}. \
             The target of a rollout cannot change: create a new resource instead"
        ));
    }
    if let Some(config) = &spec.service_config
        && !config.is_object()
    {
        return Err("serviceConfig must be a JSON object".into());
    }
    let request = match (&spec.strategy.partition, &spec.strategy.batch) {
        (Some(p), None) => {
            if !is_count_or_percent(p, true) {
                return Err(format!(
                    "strategy.partition {p:?} must be an integer >= 0 or a percentage 0%-100%"
                ));
            }
            ServiceRolloutRequest {
                partition: Some(PartitionConfig {
                    partition: p.trim().to_string(),
                }),
                ..Default::default()
            }
        }
        (None, Some(b)) => {
            if !is_count_or_percent(&b.size, false) {
                return Err(format!(
                    "strategy.batch.size {:?} must be an integer >= 1 or a percentage 1%-100%",
                    b.size
                ));
            }
            if let Some(i) = &b.interval
                && parse_interval(i).is_none()
            {
                return Err(format!(
                    "strategy.batch.interval {i:?} must be a number followed by s, m or h"
                ));
            }
            ServiceRolloutRequest {
                batch: Some(BatchConfig {
                    batch_size: Some(b.size.trim().to_string()),
                    interval: b.interval.as_ref().map(|i| i.trim().to_string()),
                }),
                ..Default::default()
            }
        }
        _ => return Err("strategy must set exactly one of partition or batch".into()),
    };
    Ok(request)
}

/// Does the reconciler need DescribeService's config to decide (a config not yet recorded
/// as pushed)?
pub fn needs_service_config(spec: &EasServiceRolloutSpec, prev: &EasServiceRolloutStatus) -> bool {
    match &spec.service_config {
        Some(config) => prev.applied_service_config_hash.as_deref() != Some(&config_hash(config)),
        None => false,
    }
}

/// Decide. `spec` must have passed [`validate`] against `prev`.
pub fn plan(
    spec: &EasServiceRolloutSpec,
    generation: Option<i64>,
    prev: &EasServiceRolloutStatus,
    observed: &Observed,
    now: Timestamp,
    timing: Timing,
) -> Result<Plan, String> {
    let strategy = validate(spec, prev)?;
    let mut actions = Vec::new();
    let mut status = EasServiceRolloutStatus {
        observed_generation: generation,
        cloud_ref: Some(cloud_ref(spec)),
        applied_service_config_hash: prev.applied_service_config_hash.clone(),
        applied_paused: prev.applied_paused,
        // Only mutations (and failures) change it: reads alone never rewrite the status.
        last_request_id: prev.last_request_id.clone(),
        ..Default::default()
    };

    // 1. The rollout object: create it, or bring strategy and pause in line.
    match &observed.rollout {
        None => {
            actions.push(Action::CreateRollout(ServiceRolloutRequest {
                paused: Some(spec.paused),
                ..strategy.clone()
            }));
            status.applied_paused = Some(spec.paused);
        }
        Some(rollout) => {
            let mut update = ServiceRolloutRequest::default();
            if strategy_differs(&strategy, rollout) {
                update.partition = strategy.partition.clone();
                update.batch = strategy.batch.clone();
            }
            let cloud_paused = match phase(rollout) {
                Some("Paused") => Some(true),
                Some("Running") => Some(false),
                _ => prev.applied_paused,
            };
            if cloud_paused.unwrap_or(false) != spec.paused {
                update.paused = Some(spec.paused);
            }
            if update != ServiceRolloutRequest::default() {
                actions.push(Action::UpdateRollout(update));
            }
            status.applied_paused = Some(spec.paused);
        }
    }

    // 2. The service config: push it once, never the same twice.
    if let Some(config) = &spec.service_config {
        let hash = config_hash(config);
        if prev.applied_service_config_hash.as_deref() != Some(hash.as_str()) {
            let already = observed
                .service_config
                .as_ref()
                .is_some_and(|cloud| is_subset(config, cloud));
            if !already {
                actions.push(Action::UpdateService {
                    config: config.clone(),
                    hash: hash.clone(),
                });
            }
            status.applied_service_config_hash = Some(hash);
        }
    }

    // 3. Mirror the cloud.
    let rollout_status = observed.rollout.as_ref().and_then(|r| r.status.clone());
    if let Some(s) = &rollout_status {
        status.phase = s.phase.clone();
        status.total_replicas = s.total_replicas;
        status.updated_replicas = s.updated_replicas;
        status.current_revision = s.current_revision.clone();
        status.update_revision = s.update_revision.clone();
        status.next_batch_start_time = s.next_batch_start_time.clone();
    }
    status.cloud_strategy = observed
        .rollout
        .as_ref()
        .and_then(|r| r.strategy.as_ref())
        .and_then(|s| render_strategy(s.partition.as_ref(), s.batch.as_ref()));

    // 4. Conditions, message and the next look.
    let replicas = match (status.updated_replicas, status.total_replicas) {
        (Some(u), Some(t)) => format!("{u}/{t} replicas updated"),
        _ => "replica counts not reported yet".to_string(),
    };
    let phase_name = status.phase.clone().unwrap_or_default();
    let paused_cond = if spec.paused {
        Desired::new(
            CONDITION_PAUSED,
            true,
            "PausedBySpec",
            "spec.paused is true",
        )
    } else {
        Desired::new(CONDITION_PAUSED, false, "NotPaused", "spec.paused is false")
    };
    let not_degraded = Desired::new(CONDITION_DEGRADED, false, "AsExpected", "");
    let (ready, progressing, degraded, message, requeue) = if !actions.is_empty() {
        let what = actions
            .iter()
            .map(Action::describe)
            .collect::<Vec<_>>()
            .join("; ");
        (
            Desired::new(CONDITION_READY, false, "Applying", what.clone()),
            Desired::new(CONDITION_PROGRESSING, true, "Applying", what.clone()),
            not_degraded,
            what,
            timing.active,
        )
    } else if phase_name == "Failed" {
        let msg = format!("the cloud reports the rollout Failed ({replicas})");
        (
            Desired::new(CONDITION_READY, false, "RolloutFailed", msg.clone()),
            Desired::new(CONDITION_PROGRESSING, false, "RolloutFailed", msg.clone()),
            Desired::new(CONDITION_DEGRADED, true, "RolloutFailed", msg.clone()),
            msg,
            timing.settled,
        )
    } else if phase_name == "Paused" || (spec.paused && phase_name != "Completed") {
        let msg = format!("paused ({replicas})");
        (
            Desired::new(CONDITION_READY, false, "Paused", msg.clone()),
            Desired::new(CONDITION_PROGRESSING, false, "Paused", msg.clone()),
            not_degraded,
            msg,
            timing.settled,
        )
    } else if phase_name == "Completed" {
        let msg = format!("rollout completed ({replicas})");
        (
            Desired::new(CONDITION_READY, true, "Completed", msg.clone()),
            Desired::new(CONDITION_PROGRESSING, false, "Completed", msg.clone()),
            not_degraded,
            msg,
            timing.settled,
        )
    } else if partition_reached(&strategy, rollout_status.as_ref()) {
        let msg = format!("holding at the declared partition ({replicas})");
        (
            Desired::new(CONDITION_READY, true, "PartitionReached", msg.clone()),
            Desired::new(
                CONDITION_PROGRESSING,
                false,
                "PartitionReached",
                msg.clone(),
            ),
            not_degraded,
            msg,
            timing.settled,
        )
    } else {
        let msg = format!("rolling out ({replicas})");
        let requeue = next_batch_due(status.next_batch_start_time.as_deref(), now)
            .map(|due| {
                (due + Duration::from_millis(500)).clamp(Duration::from_secs(1), timing.settled)
            })
            .unwrap_or(timing.active);
        (
            Desired::new(CONDITION_READY, false, "RollingOut", msg.clone()),
            Desired::new(CONDITION_PROGRESSING, true, "RollingOut", msg.clone()),
            not_degraded,
            msg,
            requeue,
        )
    };
    status.message = Some(message);
    status.conditions = conditions::merge(
        &prev.conditions,
        &[ready, progressing, paused_cond, degraded],
        generation,
        now,
    );
    Ok(Plan {
        actions,
        status,
        requeue,
    })
}

/// The status to write when a reconcile failed in a way that waits for a spec change:
/// what was there before, plus Degraded with the reason.
pub fn degraded_status(
    prev: &EasServiceRolloutStatus,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    request_id: Option<&str>,
    now: Timestamp,
) -> EasServiceRolloutStatus {
    let mut status = prev.clone();
    status.observed_generation = generation;
    status.message = Some(message.to_string());
    if let Some(id) = request_id {
        status.last_request_id = Some(id.to_string());
    }
    status.conditions = conditions::merge(
        &prev.conditions,
        &[
            Desired::new(CONDITION_READY, false, reason, message),
            Desired::new(CONDITION_PROGRESSING, false, reason, message),
            Desired::new(CONDITION_DEGRADED, true, reason, message),
        ],
        generation,
        now,
    );
    status
}

/// "region/serviceName": the cloud identity of the rollout.
pub fn cloud_ref(spec: &EasServiceRolloutSpec) -> String {
    format!("{}/{}", spec.region.trim(), spec.service_name.trim())
}

/// Split a recorded cloud ref back into (region, service).
pub fn split_cloud_ref(cloud_ref: &str) -> Option<(&str, &str)> {
    let (region, service) = cloud_ref.split_once('/')?;
    (!region.is_empty() && !service.is_empty()).then_some((region, service))
}

/// Hex SHA-256 of the config's canonical JSON (object keys sorted).
pub fn config_hash(config: &Value) -> String {
    let canonical = serde_json::to_string(config).unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
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

/// "5m" -> 300 s: the CRD's duration grammar (one number, one unit of s, m or h), also
/// applied to the interval the cloud reports. Never panics, whatever the text.
pub fn parse_interval(s: &str) -> Option<Duration> {
    crate::crd::validation::parse_duration(s.trim())
}

fn is_count_or_percent(s: &str, zero_ok: bool) -> bool {
    let s = s.trim();
    let min = if zero_ok { 0 } else { 1 };
    match s.strip_suffix('%') {
        Some(p) => p.parse::<u32>().is_ok_and(|v| v >= min && v <= 100),
        None => s.parse::<u64>().is_ok_and(|v| v >= u64::from(min)),
    }
}

fn phase(rollout: &Rollout) -> Option<&str> {
    rollout.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn strategy_differs(want: &ServiceRolloutRequest, have: &Rollout) -> bool {
    let Some(cloud) = &have.strategy else {
        return false;
    };
    if cloud.partition.is_none() && cloud.batch.is_none() {
        return false;
    }
    match (&want.partition, &want.batch) {
        (Some(p), _) => {
            cloud.partition.as_ref().map(|c| c.partition.trim()) != Some(p.partition.trim())
        }
        (None, Some(b)) => match &cloud.batch {
            None => true,
            Some(c) => {
                let size_differs = c.batch_size.as_deref().map(str::trim)
                    != b.batch_size.as_deref().map(str::trim);
                let interval_differs = b.interval.is_some()
                    && c.interval.as_deref().and_then(parse_interval)
                        != b.interval.as_deref().and_then(parse_interval);
                size_differs || interval_differs
            }
        },
        (None, None) => false,
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
fn partition_reached(
    strategy: &ServiceRolloutRequest,
    status: Option<&crate::cloud::model::RolloutStatus>,
) -> bool {
    let (Some(p), Some(s)) = (&strategy.partition, status) else {
        return false;
    };
    let (Some(total), Some(updated)) = (s.total_replicas, s.updated_replicas) else {
        return false;
    };
    if s.current_revision.is_some() && s.current_revision == s.update_revision {
        return false;
    }
    let keep = match p.partition.trim().strip_suffix('%') {
        Some(pct) => match pct.parse::<i64>() {
            // The cloud keeps ceil(percentage of total) replicas on the old version.
            Ok(v) => (total.saturating_mul(v) + 99) / 100,
            Err(_) => return false,
        },
        None => match p.partition.trim().parse::<i64>() {
            Ok(v) => v.min(total),
            Err(_) => return false,
        },
    };
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
    use super::*;
    use crate::cloud::model::{RolloutStatus, RolloutStrategy};
    use crate::crd::{BatchStrategy, DeletionPolicy, EasStrategy};
    use serde_json::json;

    const TIMING: Timing = Timing {
        active: Duration::from_secs(5),
        settled: Duration::from_secs(300),
    };

    fn now() -> Timestamp {
        "2026-05-08T16:00:00Z".parse().expect("valid")
    }

    fn spec_partition(p: &str) -> EasServiceRolloutSpec {
        EasServiceRolloutSpec {
            region: "cn-shanghai".into(),
            service_name: "svc".into(),
            strategy: EasStrategy {
                partition: Some(p.into()),
                batch: None,
            },
            paused: false,
            deletion_policy: DeletionPolicy::Retain,
            credentials_secret_ref: None,
            service_config: None,
        }
    }

    fn spec_batch(size: &str, interval: Option<&str>) -> EasServiceRolloutSpec {
        EasServiceRolloutSpec {
            strategy: EasStrategy {
                partition: None,
                batch: Some(BatchStrategy {
                    size: size.into(),
                    interval: interval.map(Into::into),
                }),
            },
            ..spec_partition("0")
        }
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
            request_id: Some("req-read".into()),
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

    fn run(spec: &EasServiceRolloutSpec, prev: &EasServiceRolloutStatus, obs: &Observed) -> Plan {
        plan(spec, Some(3), prev, obs, now(), TIMING).expect("valid spec")
    }

    #[test]
    fn validation_table() {
        let prev = EasServiceRolloutStatus::default();
        let ok = [
            spec_partition("0"),
            spec_partition("3"),
            spec_partition("50%"),
            spec_batch("1", None),
            spec_batch("25%", Some("5m")),
            spec_batch("2", Some("30s")),
        ];
        for s in ok {
            assert!(validate(&s, &prev).is_ok(), "{s:?}");
        }
        let mut both = spec_partition("1");
        both.strategy.batch = Some(BatchStrategy {
            size: "1".into(),
            interval: None,
        });
        let mut neither = spec_partition("1");
        neither.strategy.partition = None;
        let mut not_object = spec_partition("1");
        not_object.service_config = Some(json!("image:v2"));
        let mut empty_name = spec_partition("1");
        empty_name.service_name = " ".into();
        let bad = [
            (both, "exactly one"),
            (neither, "exactly one"),
            (spec_partition("-1"), "partition"),
            (spec_partition("150%"), "partition"),
            (spec_partition("two"), "partition"),
            (spec_batch("0", None), "batch.size"),
            (spec_batch("0%", None), "batch.size"),
            (spec_batch("1", Some("5 minutes")), "interval"),
            (not_object, "JSON object"),
            (empty_name, "serviceName"),
        ];
        for (s, needle) in bad {
            let err = validate(&s, &prev).expect_err("invalid");
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn target_cannot_change_once_recorded() {
        let prev = EasServiceRolloutStatus {
            cloud_ref: Some("cn-shanghai/other".into()),
            ..Default::default()
        };
        let err = validate(&spec_partition("1"), &prev).expect_err("target moved");
        assert!(err.contains("cn-shanghai/other"), "{err}");
        let same = EasServiceRolloutStatus {
            cloud_ref: Some("cn-shanghai/svc".into()),
            ..Default::default()
        };
        assert!(validate(&spec_partition("1"), &same).is_ok());
    }

    #[test]
    fn creates_the_rollout_when_missing_and_records_the_target() {
        let mut spec = spec_batch("1", Some("5m"));
        spec.paused = true;
        let p = run(&spec, &Default::default(), &observed(None));
        assert_eq!(
            p.actions,
            vec![Action::CreateRollout(ServiceRolloutRequest {
                partition: None,
                batch: Some(BatchConfig {
                    batch_size: Some("1".into()),
                    interval: Some("5m".into())
                }),
                paused: Some(true),
            })]
        );
        assert_eq!(p.status.cloud_ref.as_deref(), Some("cn-shanghai/svc"));
        assert_eq!(p.status.applied_paused, Some(true));
        assert_eq!(p.status.observed_generation, Some(3));
        assert_eq!(p.requeue, TIMING.active);
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
            assert_eq!(got, want.map(Action::UpdateRollout), "case {i}");
            assert!(p.actions.len() <= 1, "case {i}");
            assert_eq!(p.status.applied_paused, Some(spec.paused), "case {i}");
        }
    }

    #[test]
    fn service_config_is_pushed_once() {
        let mut spec = spec_partition("0");
        let config = json!({"containers": [{"image": "repo/model:v2"}]});
        spec.service_config = Some(config.clone());
        let hash = config_hash(&config);
        let cloud = Some(rollout(partition("0"), "Completed", 4, 4));
        let prev = EasServiceRolloutStatus {
            applied_paused: Some(false),
            ..Default::default()
        };
        assert!(needs_service_config(&spec, &prev));

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
            vec![Action::UpdateService {
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
        assert!(!needs_service_config(&spec, &recorded));
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
            Action::UpdateService {
                config: v1.clone(),
                hash: config_hash(&v1)
            }
        );
    }

    #[test]
    fn create_comes_before_the_config_push() {
        let mut spec = spec_batch("1", None);
        spec.service_config = Some(json!({"containers": [{"image": "x:v2"}]}));
        let obs = Observed {
            service_config: Some(json!({"containers": [{"image": "x:v1"}]})),
            ..observed(None)
        };
        let p = run(&spec, &Default::default(), &obs);
        let names: Vec<_> = p.actions.iter().map(Action::name).collect();
        assert_eq!(names, ["CreateServiceRollout", "UpdateService"]);
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
                TIMING.active,
            ),
            (
                spec_batch("1", Some("5m")),
                rollout(batch("1", Some("5m")), "Completed", 4, 4),
                "True",
                "False",
                "False",
                TIMING.settled,
            ),
            (
                spec_batch("1", Some("5m")),
                rollout(batch("1", Some("5m")), "Failed", 1, 4),
                "False",
                "False",
                "True",
                TIMING.settled,
            ),
            (
                paused_spec,
                rollout(batch("1", Some("5m")), "Paused", 1, 4),
                "False",
                "False",
                "False",
                TIMING.settled,
            ),
            (
                spec_partition("2"),
                rollout(partition("2"), "Running", 2, 4),
                "True",
                "False",
                "False",
                TIMING.settled,
            ),
            (
                spec_partition("2"),
                rollout(partition("2"), "Running", 1, 4),
                "False",
                "True",
                "False",
                TIMING.active,
            ),
            (
                spec_partition("50%"),
                rollout(partition("50%"), "Running", 2, 4),
                "True",
                "False",
                "False",
                TIMING.settled,
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
        assert_eq!(p.requeue, Duration::from_millis(40_500));
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let spec = spec_batch("1", None);
        let prev = EasServiceRolloutStatus {
            applied_paused: Some(false),
            ..Default::default()
        };
        let first = plan(
            &spec,
            Some(1),
            &prev,
            &observed(Some(rollout(batch("1", None), "Running", 1, 4))),
            now(),
            TIMING,
        )
        .expect("ok");
        let later = now() + jiff::SignedDuration::from_secs(60);
        let second = plan(
            &spec,
            Some(1),
            &first.status,
            &observed(Some(rollout(batch("1", None), "Running", 2, 4))),
            later,
            TIMING,
        )
        .expect("ok");
        assert_eq!(
            cond(&first.status, "Progressing").last_transition_time,
            cond(&second.status, "Progressing").last_transition_time
        );
        let done = plan(
            &spec,
            Some(1),
            &second.status,
            &observed(Some(rollout(batch("1", None), "Completed", 4, 4))),
            later,
            TIMING,
        )
        .expect("ok");
        assert_eq!(cond(&done.status, "Ready").status, "True");
        assert_eq!(cond(&done.status, "Ready").last_transition_time.0, later);
    }

    #[test]
    fn degraded_status_keeps_the_mirror_and_says_why() {
        let prev = EasServiceRolloutStatus {
            phase: Some("Running".into()),
            updated_replicas: Some(2),
            ..Default::default()
        };
        let s = degraded_status(
            &prev,
            Some(4),
            "InvalidService.NotFound",
            "no such service",
            Some("req-9"),
            now(),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.last_request_id.as_deref(), Some("req-9"));
        let d = cond(&s, "Degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "InvalidService.NotFound")
        );
        assert_eq!(cond(&s, "Ready").status, "False");
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_interval("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_interval("m"), None);
        assert_eq!(parse_interval(""), None);
        // Non-ASCII text (a stored object from before validation, or a cloud answer) is
        // refused, never a panic.
        for odd in ["5分", "5м", "é", "5 m", "-5m"] {
            assert_eq!(parse_interval(odd), None, "{odd}");
        }
        assert_eq!(
            split_cloud_ref("cn-shanghai/svc"),
            Some(("cn-shanghai", "svc"))
        );
        assert_eq!(split_cloud_ref("nope"), None);
        assert_eq!(
            config_hash(&json!({"b": 1, "a": 2})),
            config_hash(&json!({"a": 2, "b": 1}))
        );
        assert!(is_subset(
            &json!({"a": {"b": 1}}),
            &json!({"a": {"b": 1.0, "c": 2}, "d": 3})
        ));
        assert!(!is_subset(&json!({"a": [1, 2]}), &json!({"a": [1]})));
    }
}
