//! The percentage progression shared by `EsaRoutineRollout.spec.canary` and
//! `EsaContainerAppRollout.spec.steps`, as a pure function of spec, previous status, what
//! the cloud shows and `now`.
//!
//! Rules (each one has a test below):
//! - Step `i` wants `steps[i].percentage` on the new version. After the last step the new
//!   version gets 100%; that final state has index `steps.len()` (so `currentStep ==
//!   steps.len()` means "past the last step").
//! - A step's timer starts when the cloud is first seen settled AT that step's percentage;
//!   time spent applying it (or failing to) does not count.
//! - A step with `pause` holds that long; a step without `pause` is a manual gate that holds
//!   until `promotedStep >= i` (so raising `promotedStep` in the spec promotes it).
//! - `paused` holds: nothing is sent, neither the next step nor a re-send of the current one.
//!   It does not stop the clock: once unpaused, a step whose pause already elapsed advances.
//! - One step at a time: after advancing, the next step's percentage must be seen in the
//!   cloud before its own timer starts.
//! - Which step is current: the previous status's `currentStep` when it agrees with the cloud
//!   (the cloud is at that step's percentage, or at the previous step's percentage with no
//!   `stepStartedAt`, which is the "advanced, not yet seen" state). Otherwise (status lost,
//!   steps list edited, someone else changed the cloud) it is derived from the cloud: the
//!   first step whose percentage is >= the new version's share in the cloud (0 when the new
//!   version is absent; past the last step when the share exceeds every step). A derived step
//!   starts its timer afresh, so a restart never shortens a pause.
//! - Percentages must be 1-100 and strictly increasing, and pauses must parse
//!   ([`parse_duration`]); otherwise a [`StepError`] (never a panic) that the reconciler
//!   shows as `Degraded` with reason `InvalidSpec`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::conditions::{Desired, merge};
use crate::cloud::error::CloudError;
use crate::crd::common::{
    CONDITION_DEGRADED, CONDITION_PAUSED, CONDITION_PROGRESSING, CONDITION_READY, CanaryStep,
};

/// Requeue while a mutation is in flight (or was just sent), to confirm it took effect.
pub const POLL_IN_FLIGHT: Duration = Duration::from_secs(10);

/// Phases written to `status.phase` by both ESA kinds.
pub const PHASE_PROGRESSING: &str = "Progressing";
pub const PHASE_PAUSED: &str = "Paused";
pub const PHASE_COMPLETED: &str = "Completed";
pub const PHASE_ROLLED_BACK: &str = "RolledBack";
pub const PHASE_DEGRADED: &str = "Degraded";

/// Condition reason for a spec the operator cannot act on.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// A duration string the CRD schema would not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (use one number and one unit, e.g. 30s, 5m, 1h, 90m)")]
pub struct DurationError(pub String);

/// Parse a step pause: the grammar of the CRD schema (`crd::validation::DURATION_PATTERN`,
/// "30s", "5m", "1h"), so the operator accepts exactly what the API server admits; one
/// that slipped past admission anyway is an error the reconciler reports, never a panic.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    crate::crd::validation::parse_duration(s).ok_or_else(|| DurationError(s.to_string()))
}

/// Why a step list cannot be followed. `Display` names the field relative to the step
/// list (`steps[1].pause: ...`); prefix it with `spec.canary.` or `spec.`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("steps[{index}].pause: {source}")]
    InvalidPause { index: usize, source: DurationError },
    #[error("steps[{index}].pause: {value:?} is too long")]
    PauseTooLong { index: usize, value: String },
    #[error("steps[{index}].percentage: {percentage} is outside 1-100")]
    PercentageOutOfRange { index: usize, percentage: i32 },
    #[error(
        "steps[{index}].percentage: {percentage} must be greater than the step before ({previous})"
    )]
    NotIncreasing {
        index: usize,
        percentage: i32,
        previous: i32,
    },
}

/// Everything the progression depends on.
#[derive(Debug, Clone)]
pub struct StepInput<'a> {
    pub steps: &'a [CanaryStep],
    pub promoted_step: Option<i32>,
    pub paused: bool,
    /// `status.currentStep` as last written.
    pub prev_step: Option<i32>,
    /// `status.stepStartedAt` as last written (RFC 3339).
    pub prev_started_at: Option<&'a str>,
    /// The new version's share of traffic as the cloud shows it (or is moving to); None
    /// when the new version is not there at all.
    pub cloud_percentage: Option<i32>,
    /// The cloud is exactly in the state this progression would have produced for
    /// `cloud_percentage` (for routines: the rest is on the stable version; for apps:
    /// published, by percentage, nothing in flight).
    pub cloud_settled: bool,
    pub now: Timestamp,
}

/// What to do about the progression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// The cloud is not at the current step's percentage: send it.
    Apply,
    /// Step `from` just finished: send the next step's percentage (already in `target`).
    Advanced { from: usize },
    /// At the step, holding until `due`.
    WaitingForPause { due: Timestamp },
    /// At a step without `pause`, holding until `promotedStep` reaches it.
    WaitingForPromotion,
    /// `paused` holds; nothing is sent.
    Paused,
    /// The new version has 100%.
    Complete,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    /// Index of the current step; `total` means the final 100% state.
    pub current: usize,
    /// Number of steps in the spec.
    pub total: usize,
    /// The new version's percentage wanted now.
    pub target: i32,
    /// The cloud is settled at `target`.
    pub at_target: bool,
    /// When the cloud was first seen at the current step (None until it is).
    pub started_at: Option<Timestamp>,
    /// When the current step's pause ends (None for manual gates and before the timer
    /// starts).
    pub next_step_at: Option<Timestamp>,
    pub state: StepState,
}

impl StepPlan {
    /// Whether the reconciler should send `target` to the cloud.
    pub fn wants_mutation(&self) -> bool {
        matches!(self.state, StepState::Apply | StepState::Advanced { .. })
    }

    /// "step 2/4", or "final step" for the 100% state.
    pub fn label(&self) -> String {
        step_label(self.current, self.total)
    }

    /// Condition reason while moving to the current step: `Step2` (1-based, as in the
    /// messages) or `FullRollout` for the final 100%.
    pub fn step_reason(&self) -> String {
        if self.current < self.total {
            format!("Step{}", self.current + 1)
        } else {
            "FullRollout".to_string()
        }
    }
}

/// "step 2/4" (1-based) or "final step (100%)".
pub fn step_label(current: usize, total: usize) -> String {
    if current < total {
        format!("step {}/{}", current + 1, total)
    } else {
        "final step (100%)".to_string()
    }
}

/// Validate the steps and return each step's pause.
pub fn validate_steps(steps: &[CanaryStep]) -> Result<Vec<Option<SignedDuration>>, StepError> {
    let mut pauses = Vec::with_capacity(steps.len());
    for (index, step) in steps.iter().enumerate() {
        if !(1..=100).contains(&step.percentage) {
            return Err(StepError::PercentageOutOfRange {
                index,
                percentage: step.percentage,
            });
        }
        if index > 0 {
            let previous = steps[index - 1].percentage;
            if step.percentage <= previous {
                return Err(StepError::NotIncreasing {
                    index,
                    percentage: step.percentage,
                    previous,
                });
            }
        }
        let pause = match &step.pause {
            None => None,
            Some(value) => {
                let d = parse_duration(value)
                    .map_err(|source| StepError::InvalidPause { index, source })?;
                Some(
                    SignedDuration::try_from(d).map_err(|_| StepError::PauseTooLong {
                        index,
                        value: value.clone(),
                    })?,
                )
            }
        };
        pauses.push(pause);
    }
    Ok(pauses)
}

/// Decide the progression. See the module documentation for the rules.
pub fn plan_steps(input: &StepInput<'_>) -> Result<StepPlan, StepError> {
    let steps = input.steps;
    let pauses = validate_steps(steps)?;
    let total = steps.len();
    let pct = |i: usize| if i < total { steps[i].percentage } else { 100 };
    let cloud = input.cloud_percentage.unwrap_or(0);

    let current = resolve_current(input, total, &pct, cloud);
    let at_target = input.cloud_settled && cloud == pct(current);
    let mut plan = StepPlan {
        current,
        total,
        target: pct(current),
        at_target,
        started_at: None,
        next_step_at: None,
        state: StepState::Apply,
    };
    if !at_target {
        if input.paused {
            plan.state = StepState::Paused;
        }
        return Ok(plan);
    }
    if current == total {
        plan.state = StepState::Complete;
        return Ok(plan);
    }

    // At the step: the timer runs from the first time we saw it here.
    let started = if input.prev_step == i32::try_from(current).ok() {
        input
            .prev_started_at
            .and_then(|s| s.parse::<Timestamp>().ok())
            .unwrap_or(input.now)
    } else {
        input.now
    };
    plan.started_at = Some(started);

    let done = match pauses[current] {
        Some(pause) => {
            let due = started
                .checked_add(pause)
                .map_err(|_| StepError::PauseTooLong {
                    index: current,
                    value: steps[current].pause.clone().unwrap_or_default(),
                })?;
            plan.next_step_at = Some(due);
            if input.now < due {
                plan.state = StepState::WaitingForPause { due };
            }
            input.now >= due
        }
        None => {
            let approved = input
                .promoted_step
                .is_some_and(|p| i64::from(p) >= current as i64);
            if !approved {
                plan.state = StepState::WaitingForPromotion;
            }
            approved
        }
    };
    if input.paused {
        plan.state = StepState::Paused;
        return Ok(plan);
    }
    if !done {
        return Ok(plan);
    }

    // Advance one step.
    let next = current + 1;
    Ok(StepPlan {
        current: next,
        total,
        target: pct(next),
        at_target: false,
        started_at: None,
        next_step_at: None,
        state: StepState::Advanced { from: current },
    })
}

fn resolve_current(
    input: &StepInput<'_>,
    total: usize,
    pct: &dyn Fn(usize) -> i32,
    cloud: i32,
) -> usize {
    if let Some(prev) = input.prev_step.and_then(|p| usize::try_from(p).ok())
        && prev <= total
    {
        let at = cloud == pct(prev);
        let before = if prev == 0 { 0 } else { pct(prev - 1) };
        let advanced_not_seen = input.prev_started_at.is_none() && cloud == before;
        if at || advanced_not_seen {
            return prev;
        }
    }
    if cloud <= 0 {
        return 0;
    }
    (0..total).find(|&j| pct(j) >= cloud).unwrap_or(total)
}

/// How long from `now` until `due`, rounded up to whole seconds, at least one second.
pub fn until(now: Timestamp, due: Timestamp) -> Duration {
    let d = due.duration_since(now);
    let secs = d.as_secs() + i64::from(d.subsec_nanos() > 0);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0).max(1))
}

/// Make a string usable as a condition `reason` (`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`,
/// at most 1024 characters): the cloud's codes contain dots (`InvalidApp.NotFound`).
pub fn condition_reason(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| c.is_ascii())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ',' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .take(1000)
        .collect();
    while out.ends_with([',', ':']) {
        out.pop();
    }
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, "Cloud");
    }
    out
}

/// Keep a condition or status message within the API server's limit (32768 bytes).
pub fn bounded_message(s: String) -> String {
    const MAX: usize = 4096;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The cloud's message and request id, for `Degraded` conditions.
pub fn cloud_error_message(err: &CloudError) -> String {
    let text = match err {
        CloudError::Api {
            code,
            message,
            request_id,
            ..
        } => format!(
            "{code}: {message} (RequestId {})",
            request_id.as_deref().unwrap_or("-")
        ),
        other => other.to_string(),
    };
    bounded_message(text)
}

/// The summary both ESA planners compute before turning it into status and conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub phase: &'static str,
    pub ready: bool,
    pub ready_reason: String,
    pub progressing: bool,
    pub progressing_reason: String,
    /// `spec.paused`.
    pub paused: bool,
    /// The spec cannot be acted on: Degraded=True with reason `InvalidSpec`.
    pub invalid_spec: bool,
    pub message: String,
    pub requeue_after: Option<Duration>,
}

impl Outcome {
    pub fn new(phase: &'static str, message: String) -> Self {
        Outcome {
            phase,
            ready: false,
            ready_reason: phase.to_string(),
            progressing: false,
            progressing_reason: phase.to_string(),
            paused: false,
            invalid_spec: false,
            message,
            requeue_after: None,
        }
    }

    /// Holding at a step until its pause ends at `due`.
    pub fn waiting_for_pause(message: String, now: Timestamp, due: Timestamp) -> Self {
        let mut o = Outcome::new(PHASE_PROGRESSING, message);
        o.progressing = true;
        o.progressing_reason = "WaitingForPause".to_string();
        o.ready_reason = "Progressing".to_string();
        o.requeue_after = Some(until(now, due));
        o
    }

    /// Holding at a manual gate until `promotedStep` reaches it.
    pub fn waiting_for_promotion(message: String) -> Self {
        let mut o = Outcome::new(PHASE_PROGRESSING, message);
        o.progressing = true;
        o.progressing_reason = "WaitingForPromotion".to_string();
        o.ready_reason = "Progressing".to_string();
        o
    }

    pub fn invalid(message: String) -> Self {
        let mut o = Outcome::new(PHASE_DEGRADED, message);
        o.ready_reason = REASON_INVALID_SPEC.to_string();
        o.progressing_reason = REASON_INVALID_SPEC.to_string();
        o.invalid_spec = true;
        o
    }

    /// Ready, Progressing, Paused and Degraded, in that order.
    pub fn conditions(&self) -> Vec<Desired> {
        let msg = bounded_message(self.message.clone());
        let paused_msg = if self.paused {
            "spec.paused is true: set it to false to continue"
        } else {
            ""
        };
        let (degraded_reason, degraded_msg) = if self.invalid_spec {
            (REASON_INVALID_SPEC, msg.clone())
        } else {
            ("AsExpected", String::new())
        };
        vec![
            Desired::new(
                CONDITION_READY,
                self.ready,
                condition_reason(&self.ready_reason),
                msg.clone(),
            ),
            Desired::new(
                CONDITION_PROGRESSING,
                self.progressing,
                condition_reason(&self.progressing_reason),
                msg,
            ),
            Desired::new(
                CONDITION_PAUSED,
                self.paused,
                if self.paused {
                    "PausedBySpec"
                } else {
                    "NotPaused"
                },
                paused_msg,
            ),
            Desired::new(
                CONDITION_DEGRADED,
                self.invalid_spec,
                degraded_reason,
                degraded_msg,
            ),
        ]
    }
}

/// Conditions for a failed cloud call: Ready=False and Degraded=True, both with the
/// cloud's code as reason; Progressing and Paused are left as they were.
pub(crate) fn degraded_conditions(
    previous: &[Condition],
    generation: Option<i64>,
    err: &CloudError,
    now: Timestamp,
) -> (Vec<Condition>, String) {
    let message = cloud_error_message(err);
    let reason = condition_reason(err.code());
    let desired = [
        Desired::new(CONDITION_READY, false, reason.clone(), message.clone()),
        Desired::new(CONDITION_DEGRADED, true, reason, message.clone()),
    ];
    (merge(previous, &desired, generation, now), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid test timestamp")
    }

    fn step(percentage: i32, pause: Option<&str>) -> CanaryStep {
        CanaryStep {
            percentage,
            pause: pause.map(str::to_string),
        }
    }

    /// 10% for 5m, 25% manual gate, 50% for 1h.
    fn three() -> Vec<CanaryStep> {
        vec![step(10, Some("5m")), step(25, None), step(50, Some("1h"))]
    }

    struct Case<'a> {
        name: &'a str,
        promoted: Option<i32>,
        paused: bool,
        prev_step: Option<i32>,
        prev_started: Option<String>,
        cloud: Option<i32>,
        settled: bool,
        now: i64,
        want_current: usize,
        want_state: StepState,
        want_started: Option<i64>,
    }

    fn run(steps: &[CanaryStep], c: &Case<'_>) -> StepPlan {
        plan_steps(&StepInput {
            steps,
            promoted_step: c.promoted,
            paused: c.paused,
            prev_step: c.prev_step,
            prev_started_at: c.prev_started.as_deref(),
            cloud_percentage: c.cloud,
            cloud_settled: c.settled,
            now: ts(c.now),
        })
        .expect("valid steps")
    }

    fn base<'a>(name: &'a str) -> Case<'a> {
        Case {
            name,
            promoted: None,
            paused: false,
            prev_step: None,
            prev_started: None,
            cloud: None,
            settled: false,
            now: 0,
            want_current: 0,
            want_state: StepState::Apply,
            want_started: None,
        }
    }

    #[test]
    fn progression_table() {
        let steps = three();
        let s = |secs: i64| Some(ts(secs).to_string());
        let cases = vec![
            Case {
                want_current: 0,
                want_state: StepState::Apply,
                ..base("fresh start sends step 0")
            },
            Case {
                prev_step: Some(0),
                cloud: Some(10),
                settled: false,
                want_state: StepState::Apply,
                ..base("cloud has the share but not the exact split: re-send, timer not started")
            },
            Case {
                prev_step: Some(0),
                cloud: Some(10),
                settled: true,
                now: 7,
                want_state: StepState::WaitingForPause { due: ts(7 + 300) },
                want_started: Some(7),
                ..base("timer starts when the cloud is first seen at the step")
            },
            Case {
                prev_step: Some(0),
                prev_started: s(7),
                cloud: Some(10),
                settled: true,
                now: 100,
                want_state: StepState::WaitingForPause { due: ts(307) },
                want_started: Some(7),
                ..base("timer keeps its start")
            },
            Case {
                prev_step: Some(0),
                prev_started: s(7),
                cloud: Some(10),
                settled: true,
                now: 307,
                want_current: 1,
                want_state: StepState::Advanced { from: 0 },
                ..base("pause elapsed: advance to the next step")
            },
            Case {
                prev_step: Some(1),
                cloud: Some(10),
                settled: true,
                now: 308,
                want_current: 1,
                want_state: StepState::Apply,
                ..base("advanced but not yet seen: keep the new step, re-send")
            },
            Case {
                prev_step: Some(1),
                cloud: Some(25),
                settled: true,
                now: 320,
                want_current: 1,
                want_state: StepState::WaitingForPromotion,
                want_started: Some(320),
                ..base("manual gate holds")
            },
            Case {
                promoted: Some(0),
                prev_step: Some(1),
                prev_started: s(320),
                cloud: Some(25),
                settled: true,
                now: 99_999,
                want_current: 1,
                want_state: StepState::WaitingForPromotion,
                want_started: Some(320),
                ..base("promotedStep below the gate still holds")
            },
            Case {
                promoted: Some(1),
                prev_step: Some(1),
                prev_started: s(320),
                cloud: Some(25),
                settled: true,
                now: 400,
                want_current: 2,
                want_state: StepState::Advanced { from: 1 },
                ..base("promotedStep raised: gate opens")
            },
            Case {
                prev_step: Some(2),
                prev_started: s(1000),
                cloud: Some(50),
                settled: true,
                now: 1000 + 3600,
                want_current: 3,
                want_state: StepState::Advanced { from: 2 },
                ..base("last step done: final 100%")
            },
            Case {
                prev_step: Some(3),
                cloud: Some(100),
                settled: true,
                now: 5000,
                want_current: 3,
                want_state: StepState::Complete,
                ..base("complete")
            },
            Case {
                paused: true,
                prev_step: Some(0),
                prev_started: s(0),
                cloud: Some(10),
                settled: true,
                now: 100,
                want_current: 0,
                want_state: StepState::Paused,
                want_started: Some(0),
                ..base("paused mid-step holds")
            },
            Case {
                paused: true,
                prev_step: Some(0),
                prev_started: s(0),
                cloud: Some(10),
                settled: true,
                now: 10_000,
                want_current: 0,
                want_state: StepState::Paused,
                want_started: Some(0),
                ..base("paused holds even after the pause elapsed")
            },
            Case {
                paused: true,
                want_state: StepState::Paused,
                ..base("paused before starting sends nothing")
            },
            Case {
                prev_step: Some(0),
                prev_started: s(0),
                cloud: Some(10),
                settled: true,
                now: 10_000,
                want_current: 1,
                want_state: StepState::Advanced { from: 0 },
                ..base("unpaused after the pause elapsed: advance at once")
            },
            Case {
                cloud: Some(25),
                settled: true,
                now: 50,
                want_current: 1,
                want_state: StepState::WaitingForPromotion,
                want_started: Some(50),
                ..base("status lost mid-canary: step derived from the cloud")
            },
            Case {
                cloud: Some(50),
                settled: true,
                now: 50,
                want_current: 2,
                want_state: StepState::WaitingForPause { due: ts(50 + 3600) },
                want_started: Some(50),
                ..base("status lost: derived step restarts its timer")
            },
            Case {
                cloud: Some(30),
                settled: true,
                now: 50,
                want_current: 2,
                want_state: StepState::Apply,
                ..base("cloud between steps: first step at or above it")
            },
            Case {
                cloud: Some(100),
                settled: true,
                want_current: 3,
                want_state: StepState::Complete,
                ..base("status lost after completion: stays complete")
            },
            Case {
                prev_step: Some(2),
                prev_started: s(0),
                cloud: None,
                want_current: 0,
                want_state: StepState::Apply,
                ..base("new version gone from the cloud: start over")
            },
            Case {
                prev_step: Some(0),
                prev_started: Some("garbage".into()),
                cloud: Some(10),
                settled: true,
                now: 9,
                want_state: StepState::WaitingForPause { due: ts(309) },
                want_started: Some(9),
                ..base("unreadable stepStartedAt restarts the timer")
            },
        ];
        for c in &cases {
            let got = run(&steps, c);
            assert_eq!(got.current, c.want_current, "{}: current", c.name);
            assert_eq!(got.state, c.want_state, "{}: state", c.name);
            assert_eq!(
                got.started_at,
                c.want_started.map(ts),
                "{}: started_at",
                c.name
            );
            let want_target = [10, 25, 50, 100][c.want_current];
            assert_eq!(got.target, want_target, "{}: target", c.name);
            // Pure: the same input gives the same answer.
            assert_eq!(run(&steps, c), got, "{}: idempotent", c.name);
        }
    }

    #[test]
    fn edited_steps_restart_from_the_cloud() {
        // Old list [10, 25, 50] at index 2 (50%) since t=0; the new list is [10, 50, 75].
        let new = vec![
            step(10, Some("5m")),
            step(50, Some("10m")),
            step(75, Some("5m")),
        ];
        let c = Case {
            prev_step: Some(2),
            prev_started: Some(ts(0).to_string()),
            cloud: Some(50),
            settled: true,
            now: 100,
            ..base("edited")
        };
        let got = run(&new, &c);
        assert_eq!(got.current, 1, "held at the new list's 50% step");
        assert_eq!(got.started_at, Some(ts(100)), "its timer starts now");
        assert_eq!(got.state, StepState::WaitingForPause { due: ts(700) });
    }

    #[test]
    fn longer_pause_extends_running_timer() {
        let steps = vec![step(10, Some("1h"))];
        let c = Case {
            prev_step: Some(0),
            prev_started: Some(ts(0).to_string()),
            cloud: Some(10),
            settled: true,
            now: 600,
            ..base("edited pause")
        };
        assert_eq!(
            run(&steps, &c).state,
            StepState::WaitingForPause { due: ts(3600) }
        );
    }

    #[test]
    fn last_step_at_100_completes_without_extra_move() {
        let steps = vec![step(50, Some("1m")), step(100, Some("1m"))];
        let c = Case {
            prev_step: Some(1),
            prev_started: Some(ts(0).to_string()),
            cloud: Some(100),
            settled: true,
            now: 61,
            ..base("100 step")
        };
        let got = run(&steps, &c);
        assert_eq!(got.state, StepState::Advanced { from: 1 });
        assert_eq!(got.target, 100);
        // The next plan, with the cloud still at 100 and the final index in status, is done.
        let c2 = Case {
            prev_step: Some(2),
            cloud: Some(100),
            settled: true,
            now: 62,
            ..base("100 step after")
        };
        assert_eq!(run(&steps, &c2).state, StepState::Complete);
    }

    #[test]
    fn empty_steps_go_straight_to_100() {
        let got = run(&[], &base("empty"));
        assert_eq!((got.current, got.target), (0, 100));
        assert_eq!(got.state, StepState::Apply);
    }

    #[test]
    fn invalid_steps_are_errors() {
        let cases: Vec<(Vec<CanaryStep>, &str)> = vec![
            (
                vec![step(10, Some("5x"))],
                "steps[0].pause: \"5x\" is not a duration",
            ),
            (
                vec![step(10, None), step(20, Some(""))],
                "steps[1].pause: \"\" is not a duration",
            ),
            (
                vec![step(0, None)],
                "steps[0].percentage: 0 is outside 1-100",
            ),
            (
                vec![step(50, None), step(101, None)],
                "steps[1].percentage: 101 is outside 1-100",
            ),
            (
                vec![step(50, None), step(50, None)],
                "steps[1].percentage: 50 must be greater than the step before (50)",
            ),
            (
                vec![step(10, Some("99999999999999999h"))],
                "steps[0].pause: \"99999999999999999h\"",
            ),
        ];
        for (steps, want) in cases {
            let err = plan_steps(&StepInput {
                steps: &steps,
                promoted_step: None,
                paused: false,
                prev_step: None,
                prev_started_at: None,
                cloud_percentage: None,
                cloud_settled: false,
                now: ts(0),
            })
            .expect_err("invalid steps");
            assert!(err.to_string().starts_with(want), "{err} vs {want}");
        }
    }

    #[test]
    fn duration_table() {
        let ok = [
            ("30s", 30),
            ("5m", 300),
            ("1h", 3600),
            ("90m", 5400),
            ("90s", 90),
            ("0s", 0),
        ];
        for (s, secs) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        let bad = [
            "", "5", "m", "5x", "1m1h", "1h1h", "-5m", "1.5h", "1h 30m", " 5m", "5ms", "PT1H",
            "1d", "1h30m", "1m30s",
        ];
        for s in bad {
            assert!(parse_duration(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn until_rounds_up() {
        assert_eq!(until(ts(0), ts(300)), Duration::from_secs(300));
        let half = ts(0)
            .checked_add(SignedDuration::from_millis(1500))
            .expect("in range");
        assert_eq!(until(ts(0), half), Duration::from_secs(2));
        assert_eq!(until(ts(10), ts(0)), Duration::from_secs(1));
    }

    #[test]
    fn reasons_are_valid_condition_reasons() {
        assert_eq!(
            condition_reason("InvalidApp.NotFound"),
            "InvalidApp_NotFound"
        );
        assert_eq!(condition_reason("Throttling.User"), "Throttling_User");
        assert_eq!(condition_reason(""), "Cloud");
        assert_eq!(condition_reason("500"), "Cloud500");
        assert_eq!(condition_reason("A:"), "A");
    }
}
