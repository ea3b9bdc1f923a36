//! The percentage progression shared by `EsaRoutineRollout.spec.canary` and
//! `EsaContainerAppRollout.spec.steps`, as a pure function of the validated steps, the
//! previous status, what the cloud shows and `now`.
//!
//! Rules (each one has a test below):
//! - Step `i` wants `steps[i].percentage` on the new version. After the last step the new
//!   version gets 100%; that final state has index `steps.len()` (so `currentStep ==
//!   steps.len()` means "past the last step"). A last step at 100% is followed by the
//!   final state with nothing sent again.
//! - A step's timer starts when the cloud is first seen settled AT that step's percentage;
//!   time spent applying it (or failing to) does not count. A recorded timer is kept only
//!   while the status also recorded the cloud at that percentage, so a timer started for
//!   another step list (steps edited) never shortens this step's pause.
//! - A step with `pause` holds that long; a step without `pause` is a manual gate that holds
//!   until the approval for THIS version reaches its index (`approved_step >= i`; the kind
//!   passes None when the spec's approval names another version, so a new version starts
//!   with every gate closed). No step is left while any manual gate up to it is closed, so
//!   withdrawing an approval holds the progression where it is.
//! - A step with `analysis` is left only once the analysis of THIS step for THIS version
//!   is Successful ([`StepInput::analysis`]); while it runs, or after any other verdict,
//!   the step holds (WaitingForAnalysis) and the kind's shell acts on the verdict (a
//!   Failed analysis rolls back, an Inconclusive one pauses). With a `pause` too, both must
//!   hold: the pause has elapsed (the analysis runs during it) and the analysis passed. A
//!   manual gate with an analysis waits for the analysis first, then for the approval.
//! - `paused` holds: nothing is sent, neither the next step nor a re-send of the current one.
//!   It does not stop the clock: once unpaused, a step whose pause already elapsed advances.
//! - One step at a time: after advancing, the next step's percentage must be seen in the
//!   cloud before its own timer starts.
//! - Which step is current: the previous status's `currentStep` when the cloud is exactly at
//!   that step's percentage (past a closed gate, only while the cloud is settled there:
//!   such a step is held, never re-sent). It is also kept in the "advanced, not yet seen" state
//!   (`stepAdvancedAt` recorded, no `stepStartedAt`, the cloud at the previous step's
//!   percentage), but only while every gate below it is still open for this version and
//!   the spec has not changed since the status was written. The advance is recorded
//!   explicitly because a status that moved DOWN to a step (or a finished canary) looks
//!   the same otherwise, and reading it as an advance would raise the cloud. Otherwise (status lost, steps edited,
//!   the split changed outside the operator, another version) it is derived from the cloud:
//!   the HIGHEST step whose percentage is at or below the new version's share (step 0 when
//!   the share is below every step or the version is absent; the final 100% state only
//!   when the share is 100), and never past the first manual gate not approved for this
//!   version (except 100% with no status at all: a finished canary whose status was lost
//!   stays finished). When the cloud shows more than
//!   the derived step's percentage the operator moves DOWN to it (the spec and its
//!   approvals are what is allowed; a share set by hand above them is not kept), and it
//!   never moves up past an unapproved gate. A derived step starts its timer afresh, so a
//!   restart never shortens a pause.
//! - The steps are parsed once ([`Steps::parse`]): percentages 1-100 and strictly
//!   increasing, pauses in the CRD's duration grammar and at most ten years; otherwise a
//!   [`StepError`] that the reconciler reports as an invalid spec.

use jiff::{SignedDuration, Timestamp};

use super::outcome::{Outcome, PHASE_COMPLETED, PHASE_PAUSED, PHASE_PROGRESSING};
use super::plan::Requeue;
use super::requeue::until;
use crate::crd::common::CanaryStep;
use crate::crd::validation::{DurationError, parse_duration};

/// The longest pause a step may have: ten years (a longer one could not be added to a
/// point in time).
const MAX_PAUSE: SignedDuration = SignedDuration::from_hours(24 * 3650);

/// Why a step list cannot be followed. `Display` names the field relative to the step
/// list (`steps[1].pause: ...`); prefix it with `spec.canary.` or `spec.`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("steps[{index}].pause: {source}")]
    InvalidPause { index: usize, source: DurationError },
    #[error("steps[{index}].pause: {value:?} is too long (at most ten years)")]
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

/// One step, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub percentage: i32,
    /// None: a manual gate.
    pub pause: Option<SignedDuration>,
    /// The step carries an analysis that must pass before it is left.
    pub analysis: bool,
}

/// A step list that can be followed: percentages 1-100, strictly increasing, pauses
/// parsed and bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steps(Vec<Step>);

impl Steps {
    pub fn parse(steps: &[CanaryStep]) -> Result<Steps, StepError> {
        let mut out: Vec<Step> = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            if !(1..=100).contains(&step.percentage) {
                return Err(StepError::PercentageOutOfRange {
                    index,
                    percentage: step.percentage,
                });
            }
            if let Some(previous) = out.last().map(|s| s.percentage)
                && step.percentage <= previous
            {
                return Err(StepError::NotIncreasing {
                    index,
                    percentage: step.percentage,
                    previous,
                });
            }
            let pause = match &step.pause {
                None => None,
                Some(value) => {
                    let d = parse_duration(value)
                        .map_err(|source| StepError::InvalidPause { index, source })?;
                    let too_long = || StepError::PauseTooLong {
                        index,
                        value: value.clone(),
                    };
                    let d = SignedDuration::try_from(d).map_err(|_| too_long())?;
                    if d > MAX_PAUSE {
                        return Err(too_long());
                    }
                    Some(d)
                }
            };
            out.push(Step {
                percentage: step.percentage,
                pause,
                analysis: step.analysis.is_some(),
            });
        }
        Ok(Steps(out))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether step `i` carries an analysis.
    pub fn has_analysis(&self, i: usize) -> bool {
        self.0.get(i).is_some_and(|s| s.analysis)
    }

    /// The new version's percentage at step `i` (100 past the last step).
    fn percentage(&self, i: usize) -> i32 {
        self.0.get(i).map_or(100, |s| s.percentage)
    }
}

/// A person's approval of the manual gates up to `step`, for one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub version: String,
    pub step: i32,
}

impl Approval {
    /// The approved step index when this approval names `version`; None otherwise, so an
    /// approval never opens the gates of another version.
    pub fn for_version(approval: Option<&Approval>, version: &str) -> Option<i32> {
        approval.filter(|a| a.version == version).map(|a| a.step)
    }

    /// A note for the holding message when the approval names another version.
    pub fn stale_note(approval: Option<&Approval>, version: &str) -> String {
        match approval {
            Some(a) if a.version != version => format!(
                " (the approval in the spec names {}, not {version}, so it opens no gate)",
                a.version
            ),
            _ => String::new(),
        }
    }
}

/// What the analysis of a step concluded, as the step engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepVerdict {
    /// Not finished (or not started).
    Running,
    Successful,
    /// Failed, Inconclusive or Error: the step holds; the shell acts on it.
    Stopped,
}

/// Everything the progression depends on.
#[derive(Debug, Clone)]
pub struct StepInput<'a> {
    pub steps: &'a Steps,
    /// Manual gates up to this index (0-based) are approved for the version being rolled
    /// out; None when nothing is approved for it (no approval, or one naming another
    /// version).
    pub approved_step: Option<i32>,
    pub paused: bool,
    /// `status.currentStep` as last written.
    pub prev_step: Option<i32>,
    /// `status.stepStartedAt` as last written (RFC 3339).
    pub prev_started_at: Option<&'a str>,
    /// `status.stepAdvancedAt` as last written: the operator sent `prev_step` after the
    /// step before it finished, and the cloud has not shown it yet.
    pub prev_advanced_at: Option<&'a str>,
    /// The status was last written for the spec's current generation: nothing in the spec
    /// (steps, version, approvals) changed since.
    pub prev_same_generation: bool,
    /// The new version's share of traffic as the last written status recorded it (the
    /// kind's mirror of the cloud): a recorded timer belongs to the step only when this is
    /// the step's percentage (otherwise it was started for another step list).
    pub prev_percentage: Option<i32>,
    /// The new version's share of traffic as the cloud shows it (or is moving to); None
    /// when the new version is not there at all.
    pub cloud_percentage: Option<i32>,
    /// The cloud is exactly in the state this progression would have produced for
    /// `cloud_percentage` (for routines: the rest is on the stable version; for apps:
    /// published, by percentage, nothing in flight).
    pub cloud_settled: bool,
    /// The analysis recorded in the status for this version: (step index, verdict).
    pub analysis: Option<(usize, StepVerdict)>,
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
    /// At a step without `pause`, holding until an approval for this version reaches it.
    WaitingForPromotion,
    /// At a step with `analysis`, holding until its analysis is Successful.
    WaitingForAnalysis,
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
    /// When the operator advanced to the current step, until the cloud shows it.
    pub advanced_at: Option<Timestamp>,
    pub state: StepState,
}

/// What a status records of a progression.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepRecord {
    pub current_step: Option<i32>,
    pub step_started_at: Option<String>,
    pub next_step_at: Option<String>,
    pub step_advanced_at: Option<String>,
}

/// How a kind words the progression's situations.
#[derive(Debug, Clone)]
pub struct Wording {
    /// The current step's target, e.g. "10% on v2".
    pub at: String,
    /// What a person sets to pass the current manual gate, e.g.
    /// `spec.canary.promotion: {version: "v2", step: 1}`.
    pub promote: String,
    /// What the cloud shows now, e.g. "cloud has v1:100".
    pub cloud: String,
    /// The message once the new version has 100%.
    pub complete: String,
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

    /// What the status records.
    pub fn record(&self) -> StepRecord {
        StepRecord {
            current_step: i32::try_from(self.current).ok(),
            step_started_at: self.started_at.map(|t| t.to_string()),
            next_step_at: self.next_step_at.map(|t| t.to_string()),
            step_advanced_at: self.advanced_at.map(|t| t.to_string()),
        }
    }

    /// "step 1/3 done; step 2/3: <what>" after advancing, "step 1/3: <what>" otherwise.
    pub fn head(&self, what: &str) -> String {
        match self.state {
            StepState::Advanced { from } => format!(
                "{} done; {}: {what}",
                step_label(from, self.total),
                self.label()
            ),
            _ => format!("{}: {what}", self.label()),
        }
    }

    /// The outcome of a progression that holds or is done, worded by `w`; None when it
    /// wants a mutation (the kind words that, since only it knows what is in flight).
    pub fn holding(&self, w: &Wording, now: Timestamp) -> Option<Outcome> {
        let label = self.label();
        Some(match self.state {
            StepState::Apply | StepState::Advanced { .. } => return None,
            StepState::WaitingForPause { due } => Outcome::waiting(
                PHASE_PROGRESSING,
                "WaitingForPause",
                format!(
                    "{label}: {} since {}; next step at {due}",
                    w.at,
                    self.started_at.unwrap_or(now)
                ),
                Requeue::After(until(now, due)),
            ),
            StepState::WaitingForPromotion => Outcome::waiting(
                PHASE_PROGRESSING,
                "WaitingForPromotion",
                format!(
                    "{label}: {} holds for manual promotion: set {}",
                    w.at, w.promote
                ),
                Requeue::Settled,
            ),
            StepState::WaitingForAnalysis => Outcome::waiting(
                PHASE_PROGRESSING,
                "WaitingForAnalysis",
                format!("{label}: {} holds until its analysis passes", w.at),
                Requeue::Settled,
            ),
            StepState::Paused => {
                let where_ = if self.at_target {
                    format!("at {label} ({})", w.at)
                } else {
                    format!("before {label} ({} not sent; {})", w.at, w.cloud)
                };
                let due = self
                    .next_step_at
                    .map(|d| format!("; its pause ends at {d}"))
                    .unwrap_or_default();
                Outcome::new(
                    PHASE_PAUSED,
                    format!("paused {where_}{due}; set spec.paused: false to continue"),
                )
            }
            StepState::Complete => Outcome::done(PHASE_COMPLETED, "Completed", w.complete.clone()),
        })
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

/// Decide the progression. See the module documentation for the rules.
pub fn plan_steps(input: &StepInput<'_>) -> StepPlan {
    let steps = input.steps;
    let total = steps.len();
    let cloud = input.cloud_percentage.unwrap_or(0);

    let (current, advanced_at) = resolve_current(input, cloud);
    let at_target = input.cloud_settled && cloud == steps.percentage(current);
    let mut plan = StepPlan {
        current,
        total,
        target: steps.percentage(current),
        at_target,
        started_at: None,
        next_step_at: None,
        advanced_at: None,
        state: StepState::Apply,
    };
    if !at_target {
        plan.advanced_at = advanced_at;
        if input.paused {
            plan.state = StepState::Paused;
        }
        return plan;
    }
    let Some(step) = steps.0.get(current) else {
        plan.state = StepState::Complete;
        return plan;
    };

    // At the step: the timer runs from the first time we saw it here.
    let started = if input.prev_step == i32::try_from(current).ok()
        && input.prev_percentage == Some(steps.percentage(current))
    {
        input
            .prev_started_at
            .and_then(|s| s.parse::<Timestamp>().ok())
            .unwrap_or(input.now)
    } else {
        input.now
    };
    plan.started_at = Some(started);
    let mut done = step_done(&mut plan, step, started, input);
    // Leaving a step needs every gate up to it open for this version: an approval withdrawn
    // (or one for another version) after a gate was passed holds the progression where it is.
    if done && current >= first_closed_gate(input) {
        plan.state = StepState::WaitingForPromotion;
        done = false;
    }
    if input.paused {
        plan.state = StepState::Paused;
        return plan;
    }
    if !done {
        return plan;
    }

    // Advance one step.
    let next = current + 1;
    if steps.percentage(next) == steps.percentage(current) {
        // A last step at 100% is the final state already: complete, nothing to send.
        return StepPlan {
            current: next,
            state: StepState::Complete,
            ..plan
        };
    }
    StepPlan {
        current: next,
        total,
        target: steps.percentage(next),
        at_target: false,
        started_at: None,
        next_step_at: None,
        advanced_at: Some(input.now),
        state: StepState::Advanced { from: current },
    }
}

/// Whether the current step, reached at `started`, is done: its pause has elapsed, or its
/// gate is approved for this version. Otherwise `plan` says what it waits for.
fn step_done(plan: &mut StepPlan, step: &Step, started: Timestamp, input: &StepInput<'_>) -> bool {
    let analysed =
        !step.analysis || input.analysis == Some((plan.current, StepVerdict::Successful));
    match step.pause {
        // A pause is at most ten years, so only a start time near the end of time can
        // overflow: such a step never ends by itself.
        Some(pause) => match started.checked_add(pause) {
            Ok(due) => {
                plan.next_step_at = Some(due);
                if input.now < due {
                    plan.state = StepState::WaitingForPause { due };
                    return false;
                }
                if !analysed {
                    plan.state = StepState::WaitingForAnalysis;
                }
                analysed
            }
            Err(_) => {
                plan.state = StepState::WaitingForPromotion;
                false
            }
        },
        None => {
            if !analysed {
                plan.state = StepState::WaitingForAnalysis;
                return false;
            }
            if !gate_open(input, plan.current) {
                plan.state = StepState::WaitingForPromotion;
                return false;
            }
            true
        }
    }
}

/// Whether step `i`'s manual gate is approved for this version (a timed step's gate is
/// its timer, which [`step_done`] checks).
fn approved(input: &StepInput<'_>, i: usize) -> bool {
    input
        .approved_step
        .and_then(|p| usize::try_from(p).ok())
        .is_some_and(|p| p >= i)
}

/// Whether step `i` may be left: a timed step (its timer is checked elsewhere) or an
/// approved manual gate.
fn gate_open(input: &StepInput<'_>, i: usize) -> bool {
    match input.steps.0.get(i) {
        Some(step) => step.pause.is_some() || approved(input, i),
        None => false,
    }
}

/// The first step whose manual gate is closed for this version (`total` when none is): the
/// highest step the progression may be at without a person.
fn first_closed_gate(input: &StepInput<'_>) -> usize {
    let total = input.steps.len();
    (0..total).find(|&i| !gate_open(input, i)).unwrap_or(total)
}

/// The current step, and when the operator advanced to it while that is not yet seen.
fn resolve_current(input: &StepInput<'_>, cloud: i32) -> (usize, Option<Timestamp>) {
    let steps = input.steps;
    let total = steps.len();
    let limit = first_closed_gate(input);
    let prev = input
        .prev_step
        .and_then(|p| usize::try_from(p).ok())
        .filter(|p| *p <= total);
    if let Some(prev) = prev {
        // The cloud is where the operator put it: hold there. Nothing is raised by this, so
        // no gate is passed (an approval withdrawn later holds the step, never moves it up).
        // Past a closed gate only while the cloud is settled there: re-sending that step
        // (the rest of the split changed, or the view is behind) could raise the cloud.
        if cloud == steps.percentage(prev) && (prev <= limit || input.cloud_settled) {
            return (prev, None);
        }
        // Advanced past step prev-1 (the status says so) and not yet seen: keep going (this
        // raises the cloud to step prev) only while every gate below it is open for this
        // version and the spec has not changed since (the step list may be another).
        let advanced_at = input
            .prev_advanced_at
            .map(|t| t.parse::<Timestamp>().unwrap_or(input.now));
        if let Some(at) = advanced_at
            && input.prev_started_at.is_none()
            && input.prev_same_generation
            && prev >= 1
            && prev <= limit
            && cloud == steps.percentage(prev - 1)
        {
            return (prev, Some(at));
        }
    }
    // Derived from the cloud: the highest step at or below its share...
    let derived = if cloud >= 100 {
        total
    } else {
        (0..total)
            .rev()
            .find(|&j| steps.percentage(j) <= cloud)
            .unwrap_or(0)
    };
    // With no status at all (a restart that lost it, a recreated object), 100% is the
    // finished canary: nothing is left to raise, and moving it back would shift traffic
    // nobody asked to shift.
    if prev.is_none() && derived == total {
        return (total, None);
    }
    // ...and never past a gate nobody approved for this version.
    (derived.min(limit), None)
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
            analysis: None,
        }
    }

    /// 10% for 5m, 25% manual gate, 50% for 1h.
    fn three() -> Vec<CanaryStep> {
        vec![step(10, Some("5m")), step(25, None), step(50, Some("1h"))]
    }

    struct Case<'a> {
        name: &'a str,
        approved: Option<i32>,
        paused: bool,
        prev_step: Option<i32>,
        prev_started: Option<String>,
        /// `stepAdvancedAt` in the status.
        prev_advanced: Option<String>,
        /// The status was written for this generation (default true).
        same_generation: bool,
        /// The share the status recorded (default: what the cloud shows now).
        prev_pct: Option<i32>,
        cloud: Option<i32>,
        settled: bool,
        /// The analysis verdict recorded for this version.
        analysis: Option<(usize, StepVerdict)>,
        now: i64,
        want_current: usize,
        want_state: StepState,
        want_started: Option<i64>,
    }

    fn run(steps: &[CanaryStep], c: &Case<'_>) -> StepPlan {
        plan_steps(&StepInput {
            steps: &Steps::parse(steps).expect("valid steps"),
            approved_step: c.approved,
            paused: c.paused,
            prev_step: c.prev_step,
            prev_started_at: c.prev_started.as_deref(),
            prev_advanced_at: c.prev_advanced.as_deref(),
            prev_same_generation: c.same_generation,
            prev_percentage: c.prev_pct.or(c.cloud),
            cloud_percentage: c.cloud,
            cloud_settled: c.settled,
            analysis: c.analysis,
            now: ts(c.now),
        })
    }

    fn base<'a>(name: &'a str) -> Case<'a> {
        Case {
            name,
            approved: None,
            paused: false,
            prev_step: None,
            prev_started: None,
            prev_advanced: None,
            same_generation: true,
            prev_pct: None,
            cloud: None,
            settled: false,
            analysis: None,
            now: 0,
            want_current: 0,
            want_state: StepState::Apply,
            want_started: None,
        }
    }

    fn analysed(percentage: i32, pause: Option<&str>) -> CanaryStep {
        CanaryStep {
            analysis: Some(crate::crd::analysis::AnalysisRef {
                template_ref: crate::crd::analysis::TemplateRef {
                    name: "error-ratio".into(),
                    cluster_scope: false,
                },
                args: vec![],
            }),
            ..step(percentage, pause)
        }
    }

    /// A step with an analysis is left only once the analysis of that step passed; with a
    /// pause both must hold; on a manual gate the analysis comes first, then the approval.
    #[test]
    fn analysis_gates_its_step() {
        // 10% analysed, 25% for 5m and analysed, 50% manual gate analysed.
        let steps = vec![
            analysed(10, None),
            analysed(25, Some("5m")),
            analysed(50, None),
        ];
        let s = |secs: i64| Some(ts(secs).to_string());
        let at = |step: i32, pct: i32| Case {
            prev_step: Some(step),
            prev_started: s(0),
            cloud: Some(pct),
            settled: true,
            now: 600,
            ..base("")
        };
        let cases = vec![
            Case {
                want_current: 0,
                want_state: StepState::WaitingForAnalysis,
                want_started: Some(0),
                ..Case {
                    name: "no verdict yet: holds",
                    ..at(0, 10)
                }
            },
            Case {
                analysis: Some((0, StepVerdict::Running)),
                want_current: 0,
                want_state: StepState::WaitingForAnalysis,
                want_started: Some(0),
                ..Case {
                    name: "running: holds",
                    ..at(0, 10)
                }
            },
            Case {
                analysis: Some((0, StepVerdict::Stopped)),
                want_current: 0,
                want_state: StepState::WaitingForAnalysis,
                want_started: Some(0),
                ..Case {
                    name: "failed or inconclusive: never advances",
                    ..at(0, 10)
                }
            },
            Case {
                analysis: Some((1, StepVerdict::Successful)),
                want_current: 0,
                want_state: StepState::WaitingForAnalysis,
                want_started: Some(0),
                ..Case {
                    name: "a pass of another step opens nothing",
                    ..at(0, 10)
                }
            },
            Case {
                analysis: Some((0, StepVerdict::Successful)),
                approved: Some(0),
                want_current: 1,
                want_state: StepState::Advanced { from: 0 },
                want_started: None,
                ..Case {
                    name: "passed (and its gate approved): advances",
                    ..at(0, 10)
                }
            },
            Case {
                analysis: Some((1, StepVerdict::Successful)),
                now: 200,
                want_current: 1,
                want_state: StepState::WaitingForPause { due: ts(300) },
                want_started: Some(0),
                ..Case {
                    name: "passed before the pause ends: the pause still holds",
                    ..at(1, 25)
                }
            },
            Case {
                analysis: Some((1, StepVerdict::Running)),
                want_current: 1,
                want_state: StepState::WaitingForAnalysis,
                want_started: Some(0),
                ..Case {
                    name: "pause over, analysis running: holds",
                    ..at(1, 25)
                }
            },
            Case {
                analysis: Some((2, StepVerdict::Running)),
                approved: Some(2),
                want_current: 2,
                want_state: StepState::WaitingForAnalysis,
                want_started: Some(0),
                ..Case {
                    name: "an approved gate waits for its analysis first",
                    ..at(2, 50)
                }
            },
            Case {
                analysis: Some((2, StepVerdict::Successful)),
                want_current: 2,
                want_state: StepState::WaitingForPromotion,
                want_started: Some(0),
                ..Case {
                    name: "then for its approval",
                    ..at(2, 50)
                }
            },
        ];
        for c in cases {
            let p = run(&steps, &c);
            assert_eq!(
                (p.current, p.state, p.started_at),
                (c.want_current, c.want_state, c.want_started.map(ts)),
                "{}",
                c.name
            );
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
                prev_advanced: s(307),
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
                approved: Some(0),
                prev_step: Some(1),
                prev_started: s(320),
                cloud: Some(25),
                settled: true,
                now: 99_999,
                want_current: 1,
                want_state: StepState::WaitingForPromotion,
                want_started: Some(320),
                ..base("approval below the gate still holds")
            },
            Case {
                approved: Some(1),
                prev_step: Some(1),
                prev_started: s(320),
                cloud: Some(25),
                settled: true,
                now: 400,
                want_current: 2,
                want_state: StepState::Advanced { from: 1 },
                ..base("approval raised: gate opens")
            },
            Case {
                approved: Some(1),
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
                approved: Some(1),
                cloud: Some(50),
                settled: true,
                now: 50,
                want_current: 2,
                want_state: StepState::WaitingForPause { due: ts(50 + 3600) },
                want_started: Some(50),
                ..base("status lost: derived step restarts its timer")
            },
            Case {
                cloud: Some(50),
                settled: true,
                now: 50,
                want_current: 1,
                want_state: StepState::Apply,
                ..base("status lost past a gate nobody approved: back to the gate")
            },
            Case {
                cloud: Some(30),
                settled: true,
                now: 50,
                want_current: 1,
                want_state: StepState::Apply,
                ..base("cloud between steps: the highest step at or below it (moving down)")
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

    /// Invariant 1a: the current step is the highest step at or below the cloud's share,
    /// never past a manual gate not approved for this version; the operator moves down to
    /// it and never raises past an unapproved gate.
    #[test]
    fn never_more_than_the_current_step_allows() {
        let s = |secs: i64| Some(ts(secs).to_string());
        let gate_then_50 = vec![step(10, None), step(50, Some("5m"))];
        let timed_then_gate = vec![step(10, Some("5m")), step(30, None)];
        let gate_then_25 = vec![step(10, None), step(25, Some("5m"))];
        let three_steps = three();
        // (name, steps, case, want (current, state, target))
        type Row<'a> = (
            &'a str,
            &'a Vec<CanaryStep>,
            Case<'a>,
            usize,
            StepState,
            i32,
        );
        let cases: Vec<Row<'_>> = vec![
            (
                "console raised the share at the unapproved first gate: back to the gate",
                &gate_then_50,
                Case {
                    prev_step: Some(0),
                    prev_started: s(0),
                    cloud: Some(30),
                    settled: true,
                    now: 100,
                    ..base("console")
                },
                0,
                StepState::Apply,
                10,
            ),
            (
                "steps edited from [10, 50] to [10, 30] at 50%: down to 30%, not 100%",
                &timed_then_gate,
                Case {
                    prev_step: Some(1),
                    prev_started: s(0),
                    cloud: Some(50),
                    settled: true,
                    now: 100,
                    ..base("edited")
                },
                1,
                StepState::Apply,
                30,
            ),
            (
                "status lost, cloud above every step and below 100: highest step at or below",
                &timed_then_gate,
                Case {
                    cloud: Some(70),
                    settled: true,
                    now: 100,
                    ..base("lost")
                },
                1,
                StepState::Apply,
                30,
            ),
            (
                "approved gate: a share between steps moves down, not up",
                &gate_then_50,
                Case {
                    approved: Some(0),
                    cloud: Some(30),
                    settled: true,
                    now: 100,
                    ..base("between")
                },
                0,
                StepState::Apply,
                10,
            ),
            (
                "approval withdrawn after the gate: a finished timer does not advance",
                &gate_then_25,
                Case {
                    prev_step: Some(1),
                    prev_started: s(0),
                    cloud: Some(25),
                    settled: true,
                    now: 10_000,
                    ..base("withdrawn")
                },
                1,
                StepState::WaitingForPromotion,
                25,
            ),
            (
                "advanced but not seen, approval withdrawn: the next step is not re-sent",
                &gate_then_25,
                Case {
                    prev_step: Some(1),
                    prev_advanced: s(90),
                    cloud: Some(10),
                    settled: true,
                    now: 100,
                    ..base("not seen")
                },
                0,
                StepState::WaitingForPromotion,
                10,
            ),
            (
                "advanced but not seen, approval still there: re-sent",
                &gate_then_25,
                Case {
                    approved: Some(0),
                    prev_step: Some(1),
                    prev_advanced: s(90),
                    cloud: Some(10),
                    settled: true,
                    now: 100,
                    ..base("not seen, approved")
                },
                1,
                StepState::Apply,
                25,
            ),
            (
                "moved down to a step (no advance recorded), cloud below it: not raised past it",
                &three_steps,
                Case {
                    prev_step: Some(1),
                    cloud: Some(10),
                    settled: true,
                    now: 100,
                    ..base("moved down")
                },
                0,
                StepState::WaitingForPause { due: ts(400) },
                10,
            ),
            (
                "advanced but not seen, spec changed since: derived from the cloud, timer afresh",
                &three_steps,
                Case {
                    prev_step: Some(1),
                    prev_advanced: s(90),
                    same_generation: false,
                    cloud: Some(10),
                    settled: true,
                    now: 100,
                    ..base("not seen, edited")
                },
                0,
                StepState::WaitingForPause { due: ts(400) },
                10,
            ),
            (
                "steps edited under a running timer: it restarts for the new step",
                &three_steps,
                Case {
                    prev_step: Some(0),
                    prev_started: s(0),
                    prev_pct: Some(25),
                    cloud: Some(10),
                    settled: true,
                    now: 290,
                    ..base("timer of another list")
                },
                0,
                StepState::WaitingForPause { due: ts(290 + 300) },
                10,
            ),
            (
                "status lost at 100%: a finished canary stays finished",
                &gate_then_25,
                Case {
                    cloud: Some(100),
                    settled: true,
                    ..base("finished")
                },
                2,
                StepState::Complete,
                100,
            ),
            (
                "status mid-canary and 100% set by hand past a closed gate: back to the gate",
                &gate_then_25,
                Case {
                    prev_step: Some(0),
                    prev_started: s(0),
                    cloud: Some(100),
                    settled: true,
                    ..base("hand 100")
                },
                0,
                StepState::Apply,
                10,
            ),
        ];
        for (name, steps, c, current, state, target) in cases {
            let got = run(steps, &c);
            assert_eq!(
                (got.current, got.state, got.target),
                (current, state, target),
                "{name}"
            );
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

    /// A last step at 100% is the final state already: when its pause ends the canary is
    /// complete with nothing sent (the kinds send on Advanced, and the same split again
    /// would be a duplicated mutation).
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
        assert_eq!(got.state, StepState::Complete);
        assert_eq!((got.current, got.target), (2, 100));
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
            let err = Steps::parse(&steps).expect_err("invalid steps");
            assert!(err.to_string().starts_with(want), "{err} vs {want}");
        }
        assert!(
            Steps::parse(&[step(10, Some("87600h"))]).is_ok(),
            "ten years is allowed"
        );
        let err = Steps::parse(&[step(10, Some("87601h"))]).expect_err("too long");
        assert!(err.to_string().contains("too long"), "{err}");
    }
}
