//! The status fields every kind shares, and the one place that builds them from an
//! outcome or a failure.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::conditions::{Desired, merge};
use super::outcome::{Outcome, PHASE_DEGRADED, bounded_message, condition_reason};
use crate::crd::common::{
    CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_RECONCILING,
    CONDITION_STALLED, MutationInFlight,
};
use crate::crd::{
    EasServiceRollout, EasServiceRolloutStatus, EsaContainerAppRollout,
    EsaContainerAppRolloutStatus, EsaRoutineRollout, EsaRoutineRolloutStatus, SecretRef,
};

/// Mutable access to the fields every status has.
pub struct Shared<'a> {
    pub observed_generation: &'a mut Option<i64>,
    pub conditions: &'a mut Vec<Condition>,
    pub phase: &'a mut Option<String>,
    pub message: &'a mut Option<String>,
    pub last_request_id: &'a mut Option<String>,
    /// The cloud object this resource manages, recorded before its first mutation.
    pub cloud_ref: &'a mut Option<String>,
    /// The account of that object, recorded with it.
    pub cloud_account: &'a mut Option<String>,
    pub mutations_in_flight: &'a mut Vec<MutationInFlight>,
    /// While a person is needed: when the cloud is looked at again.
    pub next_check_at: &'a mut Option<String>,
    /// Since when progress has been expected and not seen.
    pub last_progress_at: &'a mut Option<String>,
    /// A version rolled back by the operator on its own.
    pub aborted: &'a mut Option<crate::crd::common::Aborted>,
    /// The `spec.retry` token last acted on.
    pub observed_retry: &'a mut Option<i64>,
    /// The metric analysis of the current step or version (the loop's record).
    pub analysis: &'a mut Option<crate::crd::analysis::AnalysisStatus>,
}

/// A kind's status.
pub trait RolloutStatus:
    Clone + Default + PartialEq + Serialize + DeserializeOwned + Debug + Send + Sync + 'static
{
    fn shared(&mut self) -> Shared<'_>;
    fn conditions(&self) -> &[Condition];
    fn cloud_ref(&self) -> Option<&str>;
    fn cloud_account(&self) -> Option<&str>;
    fn last_request_id(&self) -> Option<&str>;
    fn mutations_in_flight(&self) -> &[MutationInFlight];
    fn last_progress_at(&self) -> Option<&str>;
    fn aborted(&self) -> Option<&crate::crd::common::Aborted>;
    fn observed_retry(&self) -> Option<i64>;
    fn analysis(&self) -> Option<&crate::crd::analysis::AnalysisStatus>;
    fn message(&self) -> Option<&str>;
    fn phase(&self) -> Option<&str>;
}

/// The parts of a kind's object the shared loop reads.
pub trait RolloutObject {
    type Status: RolloutStatus;
    fn status(&self) -> Option<&Self::Status>;
    /// The Secret holding the resource's own credentials, if it names one.
    fn credentials(&self) -> Option<&SecretRef>;
    /// `spec.retry`: a person's "look again now".
    fn retry_token(&self) -> Option<i64>;
    /// `spec.accountRef.name`: the CloudAccount it names, if any.
    fn account(&self) -> Option<&str>;
    /// `spec.notifications`: where its transitions are sent.
    fn notifications(&self) -> &[crate::crd::common::Notification];
}

macro_rules! rollout_status {
    ($($o:ty => $t:ty),*) => {$(
        impl RolloutObject for $o {
            type Status = $t;
            fn status(&self) -> Option<&$t> {
                self.status.as_ref()
            }
            fn credentials(&self) -> Option<&SecretRef> {
                self.spec.credentials_secret_ref.as_ref()
            }
            fn retry_token(&self) -> Option<i64> {
                self.spec.retry
            }
            fn account(&self) -> Option<&str> {
                self.spec.account_ref.as_ref().map(|a| a.name.as_str())
            }
            fn notifications(&self) -> &[crate::crd::common::Notification] {
                &self.spec.notifications
            }
        }

        impl RolloutStatus for $t {
            fn shared(&mut self) -> Shared<'_> {
                Shared {
                    observed_generation: &mut self.observed_generation,
                    conditions: &mut self.conditions,
                    phase: &mut self.phase,
                    message: &mut self.message,
                    last_request_id: &mut self.last_request_id,
                    cloud_ref: &mut self.cloud_ref,
                    cloud_account: &mut self.cloud_account,
                    mutations_in_flight: &mut self.mutations_in_flight,
                    next_check_at: &mut self.next_check_at,
                    last_progress_at: &mut self.last_progress_at,
                    aborted: &mut self.aborted,
                    observed_retry: &mut self.observed_retry,
                    analysis: &mut self.analysis,
                }
            }
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn cloud_ref(&self) -> Option<&str> {
                self.cloud_ref.as_deref()
            }
            fn cloud_account(&self) -> Option<&str> {
                self.cloud_account.as_deref()
            }
            fn last_request_id(&self) -> Option<&str> {
                self.last_request_id.as_deref()
            }
            fn mutations_in_flight(&self) -> &[MutationInFlight] {
                &self.mutations_in_flight
            }
            fn last_progress_at(&self) -> Option<&str> {
                self.last_progress_at.as_deref()
            }
            fn aborted(&self) -> Option<&crate::crd::common::Aborted> {
                self.aborted.as_ref()
            }
            fn observed_retry(&self) -> Option<i64> {
                self.observed_retry
            }
            fn analysis(&self) -> Option<&crate::crd::analysis::AnalysisStatus> {
                self.analysis.as_ref()
            }
            fn message(&self) -> Option<&str> {
                self.message.as_deref()
            }
            fn phase(&self) -> Option<&str> {
                self.phase.as_deref()
            }
        }
    )*};
}

rollout_status!(
    EasServiceRollout => EasServiceRolloutStatus,
    EsaRoutineRollout => EsaRoutineRolloutStatus,
    EsaContainerAppRollout => EsaContainerAppRolloutStatus
);

/// Fill the shared fields of a planned `status` from `outcome`: conditions merged into the
/// previous ones (keeping transition times), phase, message, observed generation. The last
/// RequestId is carried over: only mutations and failures change it.
pub fn settle<S: RolloutStatus>(
    status: &mut S,
    prev: Option<&S>,
    outcome: &Outcome,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let previous = prev.map(RolloutStatus::conditions).unwrap_or_default();
    let conditions = merge(previous, &outcome.conditions(), generation, now);
    let last_request_id = prev.and_then(|p| p.last_request_id().map(str::to_string));
    let s = status.shared();
    *s.conditions = conditions;
    *s.phase = Some(outcome.phase.clone());
    *s.message = Some(bounded_message(outcome.message.clone()));
    *s.observed_generation = generation;
    *s.last_request_id = last_request_id;
}

/// The status after a failure that needs a person: what was there before (the last view
/// of the cloud is kept), phase Degraded, Ready and Progressing False and Degraded True
/// with `reason`, the message, and the failing call's RequestId when there was one.
pub fn degraded<S: RolloutStatus>(
    prev: Option<&S>,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    request_id: Option<&str>,
    now: jiff::Timestamp,
) -> S {
    let mut status = prev.cloned().unwrap_or_default();
    let reason = condition_reason(reason);
    let message = bounded_message(message.to_string());
    let s = status.shared();
    *s.conditions = merge(
        s.conditions,
        &[
            Desired::new(CONDITION_READY, false, reason.clone(), message.clone()),
            Desired::new(
                CONDITION_PROGRESSING,
                false,
                reason.clone(),
                message.clone(),
            ),
            Desired::new(CONDITION_DEGRADED, true, reason.clone(), message.clone()),
            Desired::new(CONDITION_STALLED, true, reason, message.clone()),
            Desired::new(CONDITION_RECONCILING, false, "AsExpected", ""),
        ],
        generation,
        now,
    );
    *s.observed_generation = generation;
    *s.phase = Some(PHASE_DEGRADED.to_string());
    *s.message = Some(message);
    *s.next_check_at = None;
    if let Some(id) = request_id {
        *s.last_request_id = Some(id.to_string());
    }
    status
}

/// Reason of `Ready=Unknown` while the cloud cannot be read.
pub const REASON_CLOUD_UNREADABLE: &str = "CloudUnreadable";

/// `prev` with `Ready=Unknown` (reason [`REASON_CLOUD_UNREADABLE`], `message`): the cloud
/// has not answered usably for a while, so what status last showed (a Ready=True, say)
/// may no longer hold. Everything else is kept: it is what was last seen.
pub fn unknown<S: RolloutStatus>(prev: &S, message: &str, now: jiff::Timestamp) -> S {
    let mut status = prev.clone();
    let message = bounded_message(message.to_string());
    let s = status.shared();
    let generation = s
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .and_then(|c| c.observed_generation)
        .or(*s.observed_generation);
    let ready = Condition {
        type_: CONDITION_READY.to_string(),
        status: "Unknown".to_string(),
        reason: REASON_CLOUD_UNREADABLE.to_string(),
        message: message.clone(),
        last_transition_time: s
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY && c.status == "Unknown")
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        observed_generation: generation,
    };
    // Not known to be there, and (unless a person is already needed) still being worked
    // on: Reconciling, as everywhere else Ready is not True.
    let stalled = s
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_STALLED && c.status == "True");
    let reconciling = Condition {
        type_: CONDITION_RECONCILING.to_string(),
        status: if stalled { "False" } else { "True" }.to_string(),
        reason: if stalled {
            "AsExpected".to_string()
        } else {
            REASON_CLOUD_UNREADABLE.to_string()
        },
        message: if stalled {
            String::new()
        } else {
            message.clone()
        },
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
        observed_generation: generation,
    };
    match s.conditions.iter_mut().find(|c| c.type_ == CONDITION_READY) {
        Some(c) => *c = ready,
        None => s.conditions.insert(0, ready),
    }
    match s
        .conditions
        .iter_mut()
        .find(|c| c.type_ == CONDITION_RECONCILING)
    {
        Some(c) if c.status == reconciling.status => {
            c.reason = reconciling.reason;
            c.message = reconciling.message;
        }
        Some(c) => *c = reconciling,
        None => s.conditions.push(reconciling),
    }
    *s.message = Some(message);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::is_true;
    use crate::controller::outcome::PHASE_COMPLETED;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }

    fn degrade<S: RolloutStatus>(prev: &S) -> S {
        degraded(
            Some(prev),
            Some(4),
            "InvalidApp.NotFound",
            "gone",
            Some("req-9"),
            ts(10),
        )
    }

    /// One builder serves every kind: the same failure reads the same on all three.
    #[test]
    fn degraded_is_built_the_same_for_every_kind() {
        let mut eas = EasServiceRolloutStatus {
            total_replicas: Some(4),
            ..Default::default()
        };
        settle(
            &mut eas,
            None,
            &Outcome::done(PHASE_COMPLETED, "Completed", "ok"),
            Some(3),
            ts(0),
        );
        let routine = EsaRoutineRolloutStatus {
            split: Some("v1:100".into()),
            ..Default::default()
        };
        let app = EsaContainerAppRolloutStatus::default();
        let e = degrade(&eas);
        let r = degrade(&routine);
        let a = degrade(&app);
        for (conditions, phase, message, id, generation) in [
            (
                &e.conditions,
                &e.phase,
                &e.message,
                &e.last_request_id,
                e.observed_generation,
            ),
            (
                &r.conditions,
                &r.phase,
                &r.message,
                &r.last_request_id,
                r.observed_generation,
            ),
            (
                &a.conditions,
                &a.phase,
                &a.message,
                &a.last_request_id,
                a.observed_generation,
            ),
        ] {
            assert!(is_true(conditions, CONDITION_DEGRADED));
            assert!(!is_true(conditions, CONDITION_READY));
            assert!(!is_true(conditions, CONDITION_PROGRESSING));
            assert!(is_true(conditions, CONDITION_STALLED));
            assert!(!is_true(conditions, CONDITION_RECONCILING));
            let d = conditions
                .iter()
                .find(|c| c.type_ == CONDITION_DEGRADED)
                .expect("set");
            assert_eq!(d.reason, "InvalidApp_NotFound");
            assert_eq!(phase.as_deref(), Some(PHASE_DEGRADED));
            assert_eq!(message.as_deref(), Some("gone"));
            assert_eq!(id.as_deref(), Some("req-9"));
            assert_eq!(generation, Some(4));
        }
        // What was last seen of the cloud stays.
        assert_eq!(e.total_replicas, Some(4));
        assert_eq!(r.split.as_deref(), Some("v1:100"));
        // Ready turned False at the failure, not before.
        let ready = e
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
            .expect("set");
        assert_eq!(ready.last_transition_time.0, ts(10));
    }

    #[test]
    fn settle_keeps_the_last_request_id_and_transition_times() {
        let mut prev = EsaRoutineRolloutStatus::default();
        settle(
            &mut prev,
            None,
            &Outcome::done(PHASE_COMPLETED, "Completed", "a"),
            Some(1),
            ts(0),
        );
        prev.last_request_id = Some("req-1".into());
        let mut next = EsaRoutineRolloutStatus::default();
        settle(
            &mut next,
            Some(&prev),
            &Outcome::done(PHASE_COMPLETED, "Completed", "b"),
            Some(2),
            ts(50),
        );
        assert_eq!(next.last_request_id.as_deref(), Some("req-1"));
        assert_eq!(next.observed_generation, Some(2));
        let ready = next
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
            .expect("set");
        assert_eq!(ready.last_transition_time.0, ts(0));
        assert_eq!(ready.message, "b");
    }
}
