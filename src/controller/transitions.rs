//! A rollout's transitions sent to its `spec.notifications` (see [`crate::notify`]): found
//! by comparing the status as stored with the one about to be written, or told by the
//! analysis code at the moment it acts. Sending never blocks the reconcile.

use kube::ResourceExt;

use super::context::Context;
use super::runner::Rollout;
use super::status::RolloutStatus;

use crate::crd::analysis::AnalysisPhase;
use crate::crd::common::{CONDITION_PAUSED, CONDITION_READY};
use crate::notify::{self, Message, Transition};

fn send<K: Rollout>(
    obj: &K,
    cx: &Context,
    event: Transition,
    version: Option<&str>,
    step: Option<i32>,
    message: &str,
) {
    let list = obj.notifications();
    if list.is_empty() {
        return;
    }
    let namespace = obj.namespace().unwrap_or_default();
    let m = Message {
        kind: K::kind(&()).to_string(),
        namespace: namespace.clone(),
        name: obj.name_any(),
        event,
        version: version.map(str::to_string),
        step,
        message: message.to_string(),
        at: jiff::Timestamp::now().to_string(),
    };
    notify::send(cx.secrets.clone(), &namespace, list, m);
}

/// The analysis of `version` failed; the rollback starts.
pub fn analysis_failed<K: Rollout>(
    obj: &K,
    cx: &Context,
    version: &str,
    step: Option<i32>,
    message: &str,
) {
    send(
        obj,
        cx,
        Transition::AnalysisFailed,
        Some(version),
        step,
        message,
    );
}

/// The rollout holds on an analysis verdict.
pub fn paused<K: Rollout>(
    obj: &K,
    cx: &Context,
    version: Option<&str>,
    step: Option<i32>,
    message: &str,
) {
    send(obj, cx, Transition::Paused, version, step, message);
}

fn condition(s: Option<&impl RolloutStatus>, type_: &str) -> bool {
    s.is_some_and(|s| super::conditions::is_true(s.conditions(), type_))
}

/// What changed between `stored` and `status` that people asked to hear about: a step
/// reached, Paused turning True, the automatic rollback done, the rollout completed.
pub fn detect<S: RolloutStatus>(
    stored: Option<&S>,
    status: &S,
    step: impl Fn(&S) -> Option<i32>,
) -> Vec<(Transition, Option<i32>)> {
    let mut out = Vec::new();
    let now_step = step(status);
    if now_step.is_some() && stored.and_then(&step) != now_step {
        out.push((Transition::StepReached, now_step));
    }
    if condition(Some(status), CONDITION_PAUSED) && !condition(stored, CONDITION_PAUSED) {
        out.push((Transition::Paused, now_step));
    }
    let rolled_back = |s: &S| {
        s.aborted().is_some_and(|a| {
            s.message()
                .is_some_and(|m| m.starts_with(&format!("{} rolled back automatically", a.version)))
        })
    };
    if rolled_back(status) && !stored.is_some_and(rolled_back) {
        out.push((Transition::RolledBack, None));
    }
    let complete = |s: &S| {
        condition(Some(s), CONDITION_READY)
            && s.aborted().is_none()
            && s.phase().is_some_and(|p| p == "Completed")
    };
    if complete(status) && !stored.is_some_and(complete) {
        out.push((Transition::Completed, None));
    }
    out
}

/// Send what [`detect`] finds (the Paused of an analysis hold is sent by the analysis).
pub fn notify<K: Rollout>(
    obj: &K,
    cx: &Context,
    stored: Option<&K::Status>,
    status: &K::Status,
    version: Option<&str>,
) {
    if obj.notifications().is_empty() {
        return;
    }
    let message = status.message().unwrap_or_default().to_string();
    let held = status
        .analysis()
        .is_some_and(|a| matches!(a.phase, AnalysisPhase::Inconclusive | AnalysisPhase::Error));
    for (t, step) in detect(stored, status, K::current_step) {
        if t == Transition::Paused && held {
            continue;
        }
        send(obj, cx, t, version, step, &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::outcome::{Outcome, PHASE_COMPLETED, PHASE_PROGRESSING};
    use crate::controller::status::settle;
    use crate::crd::EsaRoutineRolloutStatus;
    use crate::crd::common::Aborted;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }

    fn status(step: i32, outcome: &Outcome) -> EsaRoutineRolloutStatus {
        let mut s = EsaRoutineRolloutStatus {
            current_step: Some(step),
            ..Default::default()
        };
        settle(&mut s, None, outcome, Some(1), ts(0));
        s
    }

    fn found(a: Option<&EsaRoutineRolloutStatus>, b: &EsaRoutineRolloutStatus) -> Vec<Transition> {
        detect(a, b, |s| s.current_step)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    #[test]
    fn transitions_are_told_once() {
        let moving = Outcome::moving(PHASE_PROGRESSING, "Step2", "step 2/2");
        let at0 = status(0, &moving);
        let at1 = status(1, &moving);
        assert_eq!(found(None, &at0), [Transition::StepReached]);
        assert_eq!(found(Some(&at0), &at1), [Transition::StepReached]);
        assert!(found(Some(&at1), &at1).is_empty(), "nothing new");
        let done = status(2, &Outcome::done(PHASE_COMPLETED, "Completed", "v2 100%"));
        assert_eq!(
            found(Some(&at1), &done),
            [Transition::StepReached, Transition::Completed]
        );
        assert!(found(Some(&done), &done).is_empty());
        let mut paused = at1.clone();
        let mut o = moving.clone();
        o.paused = true;
        settle(&mut paused, Some(&at1), &o, Some(1), ts(1));
        assert_eq!(found(Some(&at1), &paused), [Transition::Paused]);
        // The automatic rollback once it is done (keep_aborted's message).
        let mut rolled = done.clone();
        rolled.aborted = Some(Aborted {
            version: "v2".into(),
            reason: "AnalysisFailed".into(),
            at: ts(5).to_string(),
        });
        rolled.message = Some("v2 rolled back automatically (AnalysisFailed at ...)".into());
        rolled.phase = Some("Degraded".into());
        assert_eq!(found(Some(&done), &rolled), [Transition::RolledBack]);
        assert!(found(Some(&rolled), &rolled).is_empty());
    }
}
