//! Progress deadlines: a rollout that is expected to move and does not, for longer than
//! its `spec.progressDeadline`, says so (Stalled, reason ProgressDeadlineExceeded, one
//! Warning Event) instead of waiting forever; with `progressDeadlineAbort` it is also
//! rolled back, and that version is not pushed again until the spec names another one.
//!
//! Progress is expected only while the plan is moving (its requeue class is Active): a
//! manual gate, a spec pause, a timed step, a batch interval or a scheduled start hold on
//! purpose and stop the clock. Progress is a mutation sent, or a change in what the cloud
//! shows (each kind names the status fields that say it, [`super::runner::Rollout`]).

use std::time::Duration;

use jiff::Timestamp;

use crate::crd::validation::parse_duration;

/// Condition reason and Event reason of a passed deadline.
pub const REASON_PROGRESS_DEADLINE: &str = "ProgressDeadlineExceeded";

/// A rollout's deadline, from its spec or its kind's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    pub after: Duration,
    /// Roll the version back when it passes.
    pub abort: bool,
}

impl Deadline {
    /// `text` (the spec's progressDeadline) or `default`; a text the schema should have
    /// refused falls back to the default rather than failing the rollout.
    pub fn from_spec(text: Option<&str>, default: Duration, abort: bool) -> Deadline {
        let after = text
            .and_then(|t| parse_duration(t).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(default);
        Deadline { after, abort }
    }
}

/// Where a rollout stands against its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No progress is expected: the clock is off (`status.lastProgressAt` cleared).
    Off,
    /// Progress is expected; the last was seen at `since`.
    Running { since: Timestamp },
    /// No progress since `since`, longer than the deadline.
    Exceeded { since: Timestamp },
}

impl Verdict {
    /// What `status.lastProgressAt` records.
    pub fn last_progress_at(&self) -> Option<String> {
        match self {
            Verdict::Off => None,
            Verdict::Running { since } | Verdict::Exceeded { since } => Some(since.to_string()),
        }
    }
}

/// Judge one reconcile: `expected` (the plan is moving), `moved` (a mutation is sent or
/// the cloud's view changed), `last` (`status.lastProgressAt` as recorded).
pub fn judge(
    deadline: &Deadline,
    expected: bool,
    moved: bool,
    last: Option<&str>,
    now: Timestamp,
) -> Verdict {
    if !expected {
        return Verdict::Off;
    }
    if moved {
        return Verdict::Running { since: now };
    }
    // A record that does not parse (edited by hand) starts the clock again.
    let since = last
        .and_then(|t| t.parse::<Timestamp>().ok())
        .filter(|t| *t <= now)
        .unwrap_or(now);
    let waited = now.duration_since(since).unsigned_abs();
    if waited > deadline.after {
        Verdict::Exceeded { since }
    } else {
        Verdict::Running { since }
    }
}

/// The condition message of a passed deadline.
pub fn message(deadline: &Deadline, since: Timestamp, what: &str, aborting: bool) -> String {
    let secs = deadline.after.as_secs();
    let next = if aborting {
        "rolling the version back (progressDeadlineAbort); it is not pushed again until the spec names another version"
    } else {
        "a person is needed: look at the cloud, then fix the spec or the service"
    };
    format!("no progress since {since} (progressDeadline {secs}s) while {what}; {next}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }

    const TEN: Deadline = Deadline {
        after: Duration::from_secs(10),
        abort: false,
    };

    #[test]
    fn the_clock_runs_only_while_progress_is_expected() {
        let since = ts(0).to_string();
        // Held on purpose (gate, pause, timed step): off, however long.
        assert_eq!(
            judge(&TEN, false, false, Some(&since), ts(3600)),
            Verdict::Off
        );
        // Expected, first look: the clock starts now.
        assert_eq!(
            judge(&TEN, true, false, None, ts(5)),
            Verdict::Running { since: ts(5) }
        );
        // Expected, within the deadline: it keeps its start.
        assert_eq!(
            judge(&TEN, true, false, Some(&since), ts(10)),
            Verdict::Running { since: ts(0) }
        );
        // Past it.
        assert_eq!(
            judge(&TEN, true, false, Some(&since), ts(11)),
            Verdict::Exceeded { since: ts(0) }
        );
        // Any progress restarts it, even after it passed.
        assert_eq!(
            judge(&TEN, true, true, Some(&since), ts(60)),
            Verdict::Running { since: ts(60) }
        );
    }

    #[test]
    fn a_bad_record_restarts_the_clock_rather_than_stalling() {
        assert_eq!(
            judge(&TEN, true, false, Some("yesterday"), ts(7)),
            Verdict::Running { since: ts(7) }
        );
        // A record in the future (clock skew) is not trusted either.
        let future = ts(100).to_string();
        assert_eq!(
            judge(&TEN, true, false, Some(&future), ts(7)),
            Verdict::Running { since: ts(7) }
        );
    }

    #[test]
    fn the_deadline_comes_from_the_spec_or_the_default() {
        let d = Duration::from_secs(600);
        assert_eq!(
            Deadline::from_spec(Some("90s"), d, true).after,
            Duration::from_secs(90)
        );
        assert!(Deadline::from_spec(Some("90s"), d, true).abort);
        assert_eq!(Deadline::from_spec(None, d, false).after, d);
        assert_eq!(Deadline::from_spec(Some("0s"), d, false).after, d);
        assert_eq!(Deadline::from_spec(Some("soon"), d, false).after, d);
    }
}
