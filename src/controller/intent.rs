//! One mutation per intent: a mutation the cloud accepted is not sent again while the
//! cloud has not had the grace period to show it (a read that lags behind the write is not
//! a lost mutation). After the grace period it is sent once more, with a Warning; if the
//! cloud still does not show it, a person is needed.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::crd::common::MutationInFlight;

/// What to do with a planned mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Not in flight: send it.
    Send,
    /// Accepted recently, not shown yet: do not send it again before `until`.
    Hold { until: Timestamp },
    /// Accepted more than the grace period ago and still not shown: send it once more.
    Resend { accepted_at: String },
    /// Sent twice, and the cloud still does not show it after the grace period.
    Stuck { accepted_at: String },
}

/// The in-flight record of the mutation named `action` with request `request`, if any.
pub fn find<'a>(
    in_flight: &'a [MutationInFlight],
    action: &str,
    request: &str,
) -> Option<&'a MutationInFlight> {
    in_flight
        .iter()
        .find(|m| m.action == action && m.request == request)
}

/// Decide for a planned mutation, given its in-flight record.
pub fn decide(record: Option<&MutationInFlight>, now: Timestamp, grace: Duration) -> Intent {
    let Some(record) = record else {
        return Intent::Send;
    };
    // A record that does not parse (edited by hand) counts as long past.
    let accepted = record
        .accepted_at
        .parse::<Timestamp>()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    let until = accepted.checked_add(grace).unwrap_or(Timestamp::MAX);
    if now < until {
        return Intent::Hold { until };
    }
    if record.resent {
        Intent::Stuck {
            accepted_at: record.accepted_at.clone(),
        }
    } else {
        Intent::Resend {
            accepted_at: record.accepted_at.clone(),
        }
    }
}

/// The record of a mutation the cloud accepted at `now`.
pub fn accepted(action: &str, request: &str, now: Timestamp, resent: bool) -> MutationInFlight {
    MutationInFlight {
        action: action.to_string(),
        request: request.to_string(),
        accepted_at: now.to_string(),
        resent,
    }
}

/// The in-flight records of an object: those its status holds and those the operator
/// remembers from its own last pass (a status write that failed after the mutations loses
/// them from status, not from memory); for the same call, the latest acceptance wins.
pub fn merge(
    stored: &[MutationInFlight],
    remembered: &[MutationInFlight],
) -> Vec<MutationInFlight> {
    let at = |m: &MutationInFlight| {
        m.accepted_at
            .parse::<Timestamp>()
            .unwrap_or(Timestamp::UNIX_EPOCH)
    };
    let mut out: Vec<MutationInFlight> = Vec::new();
    for m in stored.iter().chain(remembered) {
        match out
            .iter_mut()
            .find(|o| o.action == m.action && o.request == m.request)
        {
            Some(o) if at(m) > at(o) => *o = m.clone(),
            Some(_) => {}
            None => out.push(m.clone()),
        }
    }
    out
}

/// One reconcile's pass of its planned mutations, in order, through the in-flight records
/// (what the runner does, and what the property test models): [`Gate::decide`] for each
/// planned mutation, [`Gate::sent`] for each one the cloud accepted, then
/// [`Gate::records`] is what status keeps. The records of mutations this pass does not plan
/// are dropped: the cloud shows them (a call planned again later is a new intent, e.g. a
/// console change to undo, and is not held back).
#[derive(Debug, Clone)]
pub struct Gate<'a> {
    in_flight: &'a [MutationInFlight],
    grace: Duration,
    kept: Vec<MutationInFlight>,
}

impl<'a> Gate<'a> {
    pub fn new(in_flight: &'a [MutationInFlight], grace: Duration) -> Self {
        Gate {
            in_flight,
            grace,
            kept: Vec::new(),
        }
    }

    /// What to do with the planned mutation `action` (`request`) at `now`. A mutation held
    /// or stuck keeps its record.
    pub fn decide(&mut self, action: &str, request: &str, now: Timestamp) -> Intent {
        let record = find(self.in_flight, action, request);
        let intent = decide(record, now, self.grace);
        if matches!(intent, Intent::Hold { .. } | Intent::Stuck { .. }) {
            self.kept.extend(record.cloned());
        }
        intent
    }

    /// The cloud accepted `action` (`request`) at `now`; `resent` after a grace period.
    pub fn sent(&mut self, action: &str, request: &str, now: Timestamp, resent: bool) {
        self.kept.push(accepted(action, request, now, resent));
    }

    /// The in-flight records to keep.
    pub fn records(self) -> Vec<MutationInFlight> {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }

    #[test]
    fn a_mutation_is_held_for_the_grace_period_then_resent_once_then_stuck() {
        let grace = Duration::from_secs(30);
        assert_eq!(decide(None, ts(0), grace), Intent::Send);
        let first = accepted("UpdateServiceRollout", "paused=true", ts(0), false);
        assert_eq!(
            decide(Some(&first), ts(10), grace),
            Intent::Hold { until: ts(30) }
        );
        assert!(matches!(
            decide(Some(&first), ts(30), grace),
            Intent::Resend { .. }
        ));
        let second = accepted("UpdateServiceRollout", "paused=true", ts(30), true);
        assert_eq!(
            decide(Some(&second), ts(45), grace),
            Intent::Hold { until: ts(60) }
        );
        assert!(matches!(
            decide(Some(&second), ts(61), grace),
            Intent::Stuck { .. }
        ));
        let garbled = MutationInFlight {
            accepted_at: "yesterday".into(),
            ..first.clone()
        };
        assert!(matches!(
            decide(Some(&garbled), ts(0), grace),
            Intent::Resend { .. }
        ));
    }

    #[test]
    fn stored_and_remembered_records_merge_latest_first() {
        let old = accepted("A", "x", ts(0), false);
        let new = accepted("A", "x", ts(20), true);
        let other = accepted("B", "y", ts(5), false);
        assert_eq!(
            merge(&[old.clone(), other.clone()], std::slice::from_ref(&new)),
            vec![new.clone(), other.clone()]
        );
        assert_eq!(merge(std::slice::from_ref(&new), &[old]), vec![new.clone()]);
        assert_eq!(merge(&[], std::slice::from_ref(&other)), vec![other]);
    }

    #[test]
    fn records_match_on_action_and_request() {
        let list = vec![
            accepted("A", "x", ts(0), false),
            accepted("B", "y", ts(0), false),
        ];
        assert!(find(&list, "A", "x").is_some());
        assert!(find(&list, "A", "y").is_none());
        assert!(find(&list, "C", "x").is_none());
    }
}
