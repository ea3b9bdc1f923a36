//! The outcome vocabulary every planner speaks: a phase, the standard conditions and a
//! message, built from a few named situations (done, moving, waiting, paused, needs a
//! person), so that the three kinds report the same situation the same way.

use super::conditions::Desired;
use super::plan::Requeue;
use crate::crd::common::{
    CONDITION_DEGRADED, CONDITION_PAUSED, CONDITION_PROGRESSING, CONDITION_READY,
    CONDITION_RECONCILING, CONDITION_STALLED,
};

/// Phases written to `status.phase` by the ESA kinds (an EAS rollout mirrors the cloud's
/// phase instead, and uses [`PHASE_DEGRADED`] when a person is needed).
pub const PHASE_PROGRESSING: &str = "Progressing";
pub const PHASE_PAUSED: &str = "Paused";
pub const PHASE_COMPLETED: &str = "Completed";
pub const PHASE_ROLLED_BACK: &str = "RolledBack";
pub const PHASE_DEGRADED: &str = "Degraded";

/// Condition reason for a spec the operator cannot act on.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// What a planner concluded, before it becomes conditions and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub phase: String,
    pub ready: bool,
    pub ready_reason: String,
    pub progressing: bool,
    pub progressing_reason: String,
    /// `spec.paused`.
    pub paused: bool,
    /// Degraded=True with this reason: a person is needed.
    pub degraded: Option<String>,
    pub message: String,
    pub requeue: Requeue,
}

impl Outcome {
    /// Settled in `phase`: neither ready nor moving.
    pub fn new(phase: &str, message: impl Into<String>) -> Self {
        Outcome {
            phase: phase.to_string(),
            ready: false,
            ready_reason: phase.to_string(),
            progressing: false,
            progressing_reason: phase.to_string(),
            paused: false,
            degraded: None,
            message: message.into(),
            requeue: Requeue::Settled,
        }
    }

    /// The cloud shows what the spec declares: Ready=True with `reason`.
    pub fn done(phase: &str, reason: &str, message: impl Into<String>) -> Self {
        let mut o = Outcome::new(phase, message);
        o.ready = true;
        o.ready_reason = reason.to_string();
        o
    }

    /// Moving toward the target (a mutation sent or in flight): Progressing=True with
    /// `reason`, looked at again at the active pace.
    pub fn moving(phase: &str, reason: &str, message: impl Into<String>) -> Self {
        let mut o = Outcome::new(phase, message);
        o.progressing = true;
        o.progressing_reason = reason.to_string();
        o.ready_reason = reason.to_string();
        o.requeue = Requeue::Active;
        o
    }

    /// Holding on purpose (a step's pause, a manual gate, a batch interval): Progressing
    /// stays True with `reason`, and the next look is `requeue`.
    pub fn waiting(
        phase: &str,
        reason: &str,
        message: impl Into<String>,
        requeue: Requeue,
    ) -> Self {
        let mut o = Outcome::moving(phase, reason, message);
        o.requeue = requeue;
        o
    }

    /// The declared state cannot be reached without a person: Degraded=True with `reason`.
    pub fn needs_person(reason: &str, message: impl Into<String>) -> Self {
        let mut o = Outcome::new(PHASE_DEGRADED, message);
        o.ready_reason = reason.to_string();
        o.progressing_reason = reason.to_string();
        o.degraded = Some(reason.to_string());
        o
    }

    /// Ready, Progressing, Paused, Degraded, Stalled and Reconciling, in that order.
    ///
    /// Stalled and Reconciling are kstatus's abnormal-true pair: a tool that knows nothing
    /// of this kind (Flux, `kubectl wait`, cli-utils) reads Failed from Stalled=True,
    /// InProgress from Reconciling=True, and Current only when neither is set.
    pub fn conditions(&self) -> Vec<Desired> {
        let msg = bounded_message(self.message.clone());
        let (paused_reason, paused_msg) = if self.paused {
            (
                "PausedBySpec",
                "spec.paused is true: set it to false to continue",
            )
        } else {
            ("NotPaused", "")
        };
        let (degraded, degraded_reason, degraded_msg) = match &self.degraded {
            Some(reason) => (true, condition_reason(reason), msg.clone()),
            None => (false, "AsExpected".to_string(), String::new()),
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
            Desired::new(CONDITION_PAUSED, self.paused, paused_reason, paused_msg),
            Desired::new(
                CONDITION_DEGRADED,
                degraded,
                degraded_reason.clone(),
                degraded_msg.clone(),
            ),
            // A person is needed: kstatus's Stalled.
            Desired::new(CONDITION_STALLED, degraded, degraded_reason, degraded_msg),
            // Not there yet and no person needed: still working (kstatus InProgress).
            Desired::new(
                CONDITION_RECONCILING,
                !self.ready && !degraded,
                condition_reason(if self.ready || degraded {
                    "AsExpected"
                } else {
                    &self.progressing_reason
                }),
                if self.ready || degraded {
                    String::new()
                } else {
                    bounded_message(self.message.clone())
                },
            ),
        ]
    }
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

/// Keep a condition or status message within bounds (the API server allows 32768 bytes).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(c: &'a [Desired], t: &str) -> &'a Desired {
        c.iter().find(|d| d.type_ == t).expect("condition present")
    }

    #[test]
    fn each_situation_sets_the_conditions_a_tool_reads() {
        let done = Outcome::done(PHASE_COMPLETED, "Completed", "ok").conditions();
        assert!(find(&done, CONDITION_READY).status);
        assert!(!find(&done, CONDITION_PROGRESSING).status);
        assert!(!find(&done, CONDITION_DEGRADED).status);
        assert!(!find(&done, CONDITION_RECONCILING).status);
        assert!(!find(&done, CONDITION_STALLED).status);

        let moving = Outcome::moving(PHASE_PROGRESSING, "Step1", "10%");
        assert_eq!(moving.requeue, Requeue::Active);
        let c = moving.conditions();
        assert!(!find(&c, CONDITION_READY).status);
        assert!(find(&c, CONDITION_PROGRESSING).status);
        assert_eq!(find(&c, CONDITION_PROGRESSING).reason, "Step1");
        assert!(find(&c, CONDITION_RECONCILING).status);
        assert_eq!(find(&c, CONDITION_RECONCILING).reason, "Step1");

        // Holding at a gate is still work in progress for kstatus, not Current.
        let gate = Outcome::waiting(
            PHASE_PAUSED,
            "WaitingForPromotion",
            "gate",
            Requeue::Settled,
        );
        let c = gate.conditions();
        assert!(find(&c, CONDITION_RECONCILING).status);
        assert!(!find(&c, CONDITION_STALLED).status);

        let mut stuck = Outcome::needs_person("InvalidApp.NotFound", "gone");
        stuck.paused = true;
        let c = stuck.conditions();
        assert!(find(&c, CONDITION_DEGRADED).status);
        assert_eq!(find(&c, CONDITION_DEGRADED).reason, "InvalidApp_NotFound");
        assert_eq!(find(&c, CONDITION_DEGRADED).message, "gone");
        assert!(find(&c, CONDITION_PAUSED).status);
        assert!(find(&c, CONDITION_STALLED).status);
        assert!(!find(&c, CONDITION_RECONCILING).status);
        assert_eq!(stuck.phase, PHASE_DEGRADED);
    }

    #[test]
    fn reasons_are_made_valid() {
        assert_eq!(
            condition_reason("InvalidApp.NotFound"),
            "InvalidApp_NotFound"
        );
        assert_eq!(condition_reason("403"), "Cloud403");
        assert_eq!(condition_reason("Step2"), "Step2");
        assert_eq!(condition_reason("a:"), "a");
    }

    #[test]
    fn messages_are_bounded_on_a_char_boundary() {
        let long = "é".repeat(5000);
        let b = bounded_message(long);
        assert!(b.len() <= 4096 + 3 && b.ends_with("..."));
        assert_eq!(bounded_message("short".into()), "short");
    }
}
