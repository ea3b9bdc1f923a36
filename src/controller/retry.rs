//! `spec.retry`: a person's "look again now" after Degraded or Stalled.
//!
//! The token is a number in the spec, so changing it changes the generation and the watch
//! fires a reconcile at once (an annotation would not: the watch filters on generation).
//! The token the operator last acted on is kept in `status.observedRetry`. When the spec's
//! token differs from it:
//! - the object's failure count is forgotten, so the next wait for a person (or backoff)
//!   starts again from the shortest one;
//! - `status.nextCheckAt` is cleared: this reconcile is that check;
//! - a mutation held as stuck (sent twice, still not shown by the cloud) is dropped from
//!   `status.mutationsInFlight`, so it is sent once more: the person asked for exactly that.
//!   A mutation still inside its grace period stays held (one mutation per intent);
//! - a version the operator rolled back on its own (`status.aborted`, a passed progress
//!   deadline or a failed analysis) may be pushed again, an analysis verdict (an
//!   Inconclusive hold) is forgotten so the analysis runs again, and the progress
//!   deadline's clock starts again.

use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::events::EventType;

use super::context::Context;
use super::error::Error;
use super::intent::{self, Intent};
use super::runner::Rollout;
use super::status::RolloutStatus;

/// Whether the spec's retry token is one the operator has not acted on yet.
pub fn requested<S: RolloutStatus>(token: Option<i64>, status: Option<&S>) -> bool {
    token != status.and_then(RolloutStatus::observed_retry)
}

/// The status once the retry `token` is acted on (see the module documentation).
pub fn look_again<S: RolloutStatus>(
    status: &mut S,
    token: Option<i64>,
    now: Timestamp,
    grace: Duration,
) {
    let s = status.shared();
    s.mutations_in_flight
        .retain(|m| !matches!(intent::decide(Some(m), now, grace), Intent::Stuck { .. }));
    *s.next_check_at = None;
    *s.aborted = None;
    // A verdict is measured afresh: an Inconclusive hold is released.
    *s.analysis = None;
    *s.last_progress_at = None;
    *s.observed_retry = token;
}

/// Act on a changed retry token before reconciling `obj` (`key` names it for the failure
/// count): forget its failures, and record the token with [`look_again`] in the status,
/// which `stored` then holds.
pub async fn honour<K: Rollout>(
    obj: &K,
    cx: &Context,
    key: &str,
    stored: &mut Option<K::Status>,
) -> Result<(), Error> {
    let token = obj.retry_token();
    if !requested(token, stored.as_ref()) {
        return Ok(());
    }
    cx.clear_failures(key);
    let Some(status) = stored.as_ref() else {
        return Ok(());
    };
    // What the operator remembers in memory counts as well as the status (a status write
    // lost after a mutation): a stuck record kept there would hold the mutation the person
    // asked to send again.
    let memory = super::runner::memory_key(obj);
    let mut next = status.clone();
    *next.shared().mutations_in_flight = intent::merge(
        status.mutations_in_flight(),
        &cx.remembered_in_flight(&memory),
    );
    look_again(&mut next, token, Timestamp::now(), cx.timing.grace);
    cx.remember_in_flight(&memory, next.mutations_in_flight().to_vec());
    tracing::info!(retry = ?token, "spec.retry changed: looking again now");
    cx.event(
        obj,
        EventType::Normal,
        "RetryRequested",
        "Retry",
        format!(
            "spec.retry is now {}: looking at the cloud again now",
            token.map_or_else(|| "unset".to_string(), |t| t.to_string())
        ),
    )
    .await;
    cx.write_status(obj, &next).await?;
    *stored = Some(next);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EsaRoutineRolloutStatus;
    use crate::crd::common::MutationInFlight;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }

    fn in_flight(action: &str, accepted: i64, resent: bool) -> MutationInFlight {
        intent::accepted(action, "req", ts(accepted), resent)
    }

    const GRACE: Duration = Duration::from_secs(60);

    #[test]
    fn a_token_differs_from_the_one_acted_on() {
        let seen = EsaRoutineRolloutStatus {
            observed_retry: Some(2),
            ..Default::default()
        };
        assert!(!requested(Some(2), Some(&seen)));
        assert!(requested(Some(3), Some(&seen)));
        assert!(
            requested(None, Some(&seen)),
            "removing the token is a change too"
        );
        // Before any retry: no token and none recorded (also a status written before the
        // field existed) is nothing to act on.
        let old = EsaRoutineRolloutStatus::default();
        assert!(!requested(None, Some(&old)));
        assert!(!requested::<EsaRoutineRolloutStatus>(None, None));
        assert!(requested(Some(1), Some(&old)));
    }

    #[test]
    fn looking_again_drops_only_stuck_mutations_and_the_wait() {
        let mut status = EsaRoutineRolloutStatus {
            next_check_at: Some(ts(600).to_string()),
            mutations_in_flight: vec![
                // Sent twice, grace long past: stuck, sent again after the retry.
                in_flight("Stuck", 0, true),
                // Sent once, grace past: resent by the planner anyway; kept as is.
                in_flight("Resend", 0, false),
                // Sent twice, inside the grace period: still held.
                in_flight("Held", 290, true),
            ],
            observed_retry: Some(1),
            aborted: Some(crate::crd::common::Aborted {
                version: "v2".into(),
                reason: "ProgressDeadlineExceeded".into(),
                at: ts(100).to_string(),
            }),
            last_progress_at: Some(ts(100).to_string()),
            ..Default::default()
        };
        look_again(&mut status, Some(2), ts(300), GRACE);
        // The automatic rollback is released and the deadline's clock starts again.
        assert_eq!(status.aborted, None);
        assert_eq!(status.last_progress_at, None);
        let left: Vec<&str> = status
            .mutations_in_flight
            .iter()
            .map(|m| m.action.as_str())
            .collect();
        assert_eq!(left, ["Resend", "Held"]);
        assert_eq!(status.next_check_at, None);
        assert_eq!(status.observed_retry, Some(2));
        assert!(!requested(Some(2), Some(&status)));
    }
}
