//! Requeue timing: how soon a rollout is looked at again.

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;

use super::plan::Requeue;

/// The shortest delay before looking again at a rollout.
const MIN_DELAY: Duration = Duration::from_secs(1);

/// How often to look at the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// While a rollout moves (`--active-poll`).
    pub active: Duration,
    /// Once it has settled: completed, paused, waiting, failed (`--settled-poll`).
    pub settled: Duration,
    /// How long the cloud has to show an accepted mutation before the same call is sent
    /// again, once (`--mutation-grace`).
    pub grace: Duration,
    /// The first delay before looking again at a rollout that needs a person
    /// (`--stalled-recheck`); it doubles per consecutive look, up to eight times.
    pub recheck: Duration,
    /// How long the cloud may fail to answer usably (5xx, throttling, undecodable answers)
    /// before the conditions stop claiming what was last seen: Ready turns Unknown
    /// (`--unknown-after`).
    pub unknown_after: Duration,
}

impl Timing {
    /// The delay before the `attempt`-th (1-based) look at a rollout that needs a person.
    pub fn recheck_after(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(3);
        self.recheck.saturating_mul(1u32 << exp)
    }
}

impl Timing {
    /// The delay (before jitter) for a plan's `requeue`. A reconcile that sent a mutation
    /// looks again at the active pace at the latest, to see it take effect. A known moment
    /// is never further away than the settled poll, so an object is always read at least
    /// that often, and never sooner than a second.
    pub fn delay(&self, requeue: Requeue, sent: bool) -> Duration {
        let planned = match requeue {
            Requeue::Active => self.active,
            Requeue::Settled => self.settled,
            Requeue::After(d) => d.clamp(MIN_DELAY, self.settled.max(MIN_DELAY)),
        };
        if sent {
            planned.min(self.active)
        } else {
            planned
        }
    }
}

/// `d` spread by +-10% so that many objects do not poll in lockstep.
pub fn jitter(d: Duration) -> Duration {
    let factor: f64 = rand::rng().random_range(0.9..1.1);
    d.mul_f64(factor)
}

/// How long from `now` until `due`, rounded up to whole seconds, at least one second.
pub fn until(now: Timestamp, due: Timestamp) -> Duration {
    let d = due.duration_since(now);
    let secs = d.as_secs() + i64::from(d.subsec_nanos() > 0);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        active: Duration::from_secs(2),
        settled: Duration::from_secs(300),
        grace: Duration::from_secs(30),
        recheck: Duration::from_secs(180),
        unknown_after: Duration::from_secs(300),
    };

    #[test]
    fn delay_table() {
        let s = Duration::from_secs;
        let cases = [
            (Requeue::Active, false, s(2)),
            (Requeue::Settled, false, s(300)),
            (Requeue::After(s(42)), false, s(42)),
            // A known moment beyond the settled poll is looked at sooner.
            (Requeue::After(s(3600)), false, s(300)),
            (Requeue::After(Duration::ZERO), false, s(1)),
            // A mutation was sent: look again soon to see it take effect.
            (Requeue::Settled, true, s(2)),
            (Requeue::After(s(60)), true, s(2)),
            (Requeue::After(s(1)), true, s(1)),
        ];
        for (requeue, sent, want) in cases {
            assert_eq!(T.delay(requeue, sent), want, "{requeue:?} sent={sent}");
        }
    }

    #[test]
    fn a_stalled_rollout_is_looked_at_again_less_and_less_often() {
        let got: Vec<u64> = (1..=6).map(|n| T.recheck_after(n).as_secs()).collect();
        assert_eq!(got, [180, 360, 720, 1440, 1440, 1440]);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
    }

    #[test]
    fn until_rounds_up_and_is_at_least_a_second() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).expect("valid");
        assert_eq!(until(t(0), t(90)), Duration::from_secs(90));
        assert_eq!(until(t(10), t(0)), Duration::from_secs(1));
        let half = t(0)
            .checked_add(jiff::SignedDuration::from_millis(1500))
            .expect("valid");
        assert_eq!(until(t(0), half), Duration::from_secs(2));
    }
}
