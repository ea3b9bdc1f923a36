//! The simulator's notion of "now", so tests can move time by hand.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// A source of the current instant.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
    /// Move a manual clock forward; `false` for a clock that follows real time.
    fn advance(&self, _by: Duration) -> bool {
        false
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (shared by clones).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    /// A manual clock starting at the current wall-clock second.
    pub fn starting_now() -> Self {
        let now = Timestamp::now();
        let secs = now.as_second();
        Self::new(Timestamp::from_second(secs).unwrap_or(now))
    }

    pub fn set(&self, to: Timestamp) {
        *lock(&self.0) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *lock(&self.0)
    }

    fn advance(&self, by: Duration) -> bool {
        let mut t = lock(&self.0);
        *t = add(*t, by);
        true
    }
}

/// Lock a mutex, recovering the data if a previous holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `t + d`, saturating at the far end of the timestamp range.
pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    let sd = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_add(sd).unwrap_or(Timestamp::MAX)
}

/// `a - b` as a duration, zero when `a` is before `b`.
pub(crate) fn since(a: Timestamp, b: Timestamp) -> Duration {
    let d = a.duration_since(b);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// "2026/05/08 16:10:56" (UTC), as EAS prints NextBatchStartTime.
pub(crate) fn eas_time(t: Timestamp) -> String {
    t.strftime("%Y/%m/%d %H:%M:%S").to_string()
}

/// "2026-05-08T16:10:56Z" (UTC).
pub(crate) fn iso_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parse exactly `yyyy-MM-ddTHH:mm:ssZ`.
pub(crate) fn parse_iso_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 20 || b[19] != b'Z' || b[10] != b'T' {
        return None;
    }
    s.parse::<Timestamp>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start: Timestamp = "2026-05-08T16:00:00Z".parse().unwrap();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        assert!(c.advance(Duration::from_secs(90)));
        assert_eq!(iso_time(c.now()), "2026-05-08T16:01:30Z");
        assert_eq!(eas_time(c.now()), "2026/05/08 16:01:30");
        assert!(!SystemClock.advance(Duration::from_secs(1)));
    }

    #[test]
    fn iso_parse_is_strict() {
        assert!(parse_iso_time("2026-05-08T16:00:00Z").is_some());
        for bad in [
            "",
            "2026-05-08 16:00:00Z",
            "2026-05-08T16:00:00+08:00",
            "2026-05-08T16:00:00.5Z",
            "2026-13-08T16:00:00Z",
            "garbage-garbage-garb",
        ] {
            assert!(parse_iso_time(bad).is_none(), "{bad}");
        }
    }
}
