//! The cloud's eventual consistency: read answers that trail accepted mutations.
//!
//! Reading: the read APIs (DescribeServiceRollout, DescribeService, GetRoutine,
//! GetEdgeContainerAppStatus) are served by a replica that is `read` behind, so an object
//! reads as the state it had at `now - read` (mutations and time-driven progress alike).
//! Each object keeps the states it had right after its recent mutations ([`History`]);
//! the view at an instant is the last of them at or before that instant, moved forward
//! to it. Objects lag independently, and a second mutation inside the window does not
//! hold back the first: each shows `read` after it was accepted, in order.
//!
//! Separately, `pause` delays only the `Paused` phase: a pause is accepted and takes
//! effect at once, but DescribeServiceRollout reports the phase it would have without the
//! pause until `pause` has passed (on top of `read`, since the replica shows what the
//! primary said at `now - read`). Both durations are on the simulator's clock and are NOT
//! divided by `--time-scale`: they model what a poller sees, and pollers wait wall time.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;

use super::clock::{add, since};

/// The longest lag the flags and the admin API accept (one hour).
pub const MAX_LAG: Duration = Duration::from_secs(3600);

/// How far behind the read APIs answer. Zero (the default) is read-after-write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// An object reads as its state at `now - read`.
    pub read: Duration,
    /// After an accepted pause, DescribeServiceRollout reports the unpaused phase this long.
    pub pause: Duration,
}

impl Lag {
    /// The larger of each component.
    pub fn max(self, other: Lag) -> Lag {
        Lag {
            read: self.read.max(other.read),
            pause: self.pause.max(other.pause),
        }
    }
}

/// Parse a lag given in seconds (a flag or an admin field): finite, 0..=3600.
pub fn lag_from_secs(secs: f64, what: &str) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{what} must be a number of seconds >= 0"));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX_LAG => Ok(d),
        _ => Err(format!(
            "{what} must be at most {} seconds",
            MAX_LAG.as_secs()
        )),
    }
}

/// `now - d`, or the earliest instant when that is out of range.
pub fn before(now: Timestamp, d: Duration) -> Timestamp {
    let sd = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    now.checked_sub(sd).unwrap_or(Timestamp::MIN)
}

/// The states an object had right after its recent mutations (oldest first, never empty).
#[derive(Debug, Clone)]
pub struct History<T> {
    entries: VecDeque<(Timestamp, T)>,
}

impl<T: Clone> History<T> {
    /// Start with the state an object was created (seeded) with.
    pub fn new(at: Timestamp, state: T) -> Self {
        History {
            entries: VecDeque::from([(at, state)]),
        }
    }

    /// Remember `state` as the object right after a mutation at `at`, keeping what a
    /// view up to `keep` behind `at` can still need.
    pub fn record(&mut self, at: Timestamp, state: T, keep: Duration) {
        self.entries.push_back((at, state));
        let horizon = before(at, keep);
        // The entry in force at the horizon must stay; anything older cannot be seen.
        while self.entries.len() > 1 && self.entries.get(1).is_some_and(|(t, _)| *t <= horizon) {
            self.entries.pop_front();
        }
    }

    /// The state in force at `at`: the last one recorded at or before it. When `at` is
    /// older than everything kept (a lag raised after the fact, or an object seeded
    /// later), the oldest kept state.
    pub fn at(&self, at: Timestamp) -> Option<&T> {
        self.entries
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .or_else(|| self.entries.front())
            .map(|(_, s)| s)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// When a pause accepted at `now` shows as `Paused`; `None` when it shows at once.
pub fn pause_visible_at(now: Timestamp, pause: Duration) -> Option<Timestamp> {
    (!pause.is_zero()).then(|| add(now, pause))
}

/// Is `at` still inside a window that ends at `until`?
pub fn hidden(at: Timestamp, until: Option<Timestamp>) -> bool {
    until.is_some_and(|u| since(u, at) > Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Timestamp {
        let t0: Timestamp = "2026-05-08T16:00:00Z".parse().unwrap();
        add(t0, Duration::from_secs(s))
    }

    #[test]
    fn view_is_the_state_in_force_at_the_instant() {
        let mut h = History::new(t(0), "seed");
        h.record(t(10), "first", Duration::from_secs(5));
        h.record(t(12), "second", Duration::from_secs(5));
        assert_eq!(h.at(t(9)), Some(&"seed"));
        assert_eq!(h.at(t(10)), Some(&"first"));
        assert_eq!(h.at(t(11)), Some(&"first"), "second not yet in force");
        assert_eq!(h.at(t(12)), Some(&"second"));
        assert_eq!(h.at(t(100)), Some(&"second"));
    }

    #[test]
    fn record_forgets_only_what_no_view_can_reach() {
        let keep = Duration::from_secs(5);
        let mut h = History::new(t(0), 0);
        for i in 1..=10 {
            h.record(t(i * 10), i, keep);
        }
        // Views reach back to t(95): the state recorded at t(90) is in force there.
        assert_eq!(h.len(), 2);
        assert_eq!(h.at(t(95)), Some(&9));
        assert_eq!(h.at(t(100)), Some(&10));
        // With no lag only the newest state is kept.
        h.record(t(200), 11, Duration::ZERO);
        assert_eq!(h.len(), 1);
        assert_eq!(
            h.at(t(0)),
            Some(&11),
            "older than anything kept: the oldest kept"
        );
    }

    #[test]
    fn lag_parsing_and_pause_window() {
        assert_eq!(lag_from_secs(0.0, "x"), Ok(Duration::ZERO));
        assert_eq!(lag_from_secs(2.5, "x"), Ok(Duration::from_millis(2500)));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 3600.5] {
            assert!(lag_from_secs(bad, "x").is_err(), "{bad}");
        }
        assert_eq!(pause_visible_at(t(0), Duration::ZERO), None);
        let until = pause_visible_at(t(0), Duration::from_secs(3));
        assert_eq!(until, Some(t(3)));
        assert!(hidden(t(2), until));
        assert!(!hidden(t(3), until));
        assert!(!hidden(t(2), None));
        let l = Lag {
            read: Duration::from_secs(1),
            pause: Duration::ZERO,
        }
        .max(Lag {
            read: Duration::ZERO,
            pause: Duration::from_secs(2),
        });
        assert_eq!(l.read, Duration::from_secs(1));
        assert_eq!(l.pause, Duration::from_secs(2));
    }
}
