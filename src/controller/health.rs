//! What /healthz and /readyz answer.
//!
//! /healthz is a heartbeat of the work: each controller loop beats at least every
//! [`BEAT_EVERY`], events or not, from the task that drives its reconciles; a loop that
//! ended or has not beaten for [`Health::stale_after`] makes the replica unhealthy (the
//! kubelet restarts it). An idle operator is healthy.
//!
//! /readyz: ready once leadership is known and, on the leader, every controller loop's
//! cache has synced. A follower that knows it follows is ready (it runs no loop), so a
//! PodDisruptionBudget and a rolling update are not held up by it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::leader::Leadership;

/// How often a controller loop beats.
pub const BEAT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct Loop {
    last_beat: Instant,
    synced: bool,
    ended: bool,
}

/// The controller loops' heartbeats and cache sync.
#[derive(Debug)]
pub struct Health {
    loops: Mutex<BTreeMap<String, Loop>>,
    /// How many loops this replica starts once it leads (until they all registered, the
    /// caches do not count as synced).
    expected: Mutex<usize>,
    /// A loop that has not beaten for this long has stopped making progress.
    pub stale_after: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(BEAT_EVERY * 6)
    }
}

impl Health {
    pub fn new(stale_after: Duration) -> Self {
        Health {
            loops: Mutex::new(BTreeMap::new()),
            expected: Mutex::new(0),
            stale_after,
        }
    }

    /// The number of controller loops about to start.
    pub fn expect(&self, loops: usize) {
        if let Ok(mut e) = self.expected.lock() {
            *e = loops;
        }
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Loop)) {
        if let Ok(mut loops) = self.loops.lock() {
            let entry = loops.entry(name.to_string()).or_insert(Loop {
                last_beat: Instant::now(),
                synced: false,
                ended: false,
            });
            change(entry);
        }
    }

    /// The loop `name` is alive and polled.
    pub fn beat(&self, name: &str) {
        self.update(name, |l| l.last_beat = Instant::now());
    }

    /// The cache of loop `name` has its first full list.
    pub fn synced(&self, name: &str) {
        self.update(name, |l| l.synced = true);
    }

    /// The loop `name` ended (it runs until shutdown, so this is a failure unless the
    /// process is stopping).
    pub fn ended(&self, name: &str) {
        self.update(name, |l| l.ended = true);
    }

    /// Ok, or what is wrong.
    pub fn healthz(&self) -> Result<(), String> {
        self.healthz_at(Instant::now())
    }

    fn healthz_at(&self, now: Instant) -> Result<(), String> {
        let loops = self.loops.lock().map_err(|_| "health state poisoned")?;
        let mut problems = Vec::new();
        for (name, l) in loops.iter() {
            if l.ended {
                problems.push(format!("controller {name} has stopped"));
            } else if now.saturating_duration_since(l.last_beat) > self.stale_after {
                problems.push(format!(
                    "controller {name} made no progress for {:?}",
                    now.saturating_duration_since(l.last_beat)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Ok, or why not ready yet.
    pub fn readyz(&self, leadership: &Leadership) -> Result<(), String> {
        if !leadership.is_known() {
            return Err("leadership not known yet".into());
        }
        if leadership.is_follower() {
            return Ok(());
        }
        let expected = self.expected.lock().map(|e| *e).unwrap_or(0);
        let loops = self.loops.lock().map_err(|_| "health state poisoned")?;
        let synced = loops.values().filter(|l| l.synced && !l.ended).count();
        if expected == 0 || synced < expected {
            return Err(format!(
                "caches synced for {synced} of {expected} controllers"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_loops_that_beat_are_healthy_stale_or_ended_ones_are_not() {
        let h = Health::new(Duration::from_secs(30));
        assert!(h.healthz().is_ok(), "no loop yet: healthy");
        h.beat("eas/*");
        h.beat("routine/*");
        let now = Instant::now();
        assert!(h.healthz_at(now + Duration::from_secs(29)).is_ok());
        let stale = h
            .healthz_at(now + Duration::from_secs(31))
            .expect_err("no beat for longer than stale_after");
        assert!(
            stale.contains("eas/*") && stale.contains("no progress"),
            "{stale}"
        );
        h.ended("routine/*");
        let ended = h.healthz().expect_err("an ended loop");
        assert!(
            ended.contains("routine/*") && ended.contains("stopped") && !ended.contains("eas/*"),
            "{ended}"
        );
    }

    #[test]
    fn ready_once_leadership_is_known_and_the_leaders_caches_synced() {
        let h = Health::default();
        let elected = Leadership::elected();
        assert!(h.readyz(&elected).is_err(), "leadership unknown");
        // The leader: ready only when every expected loop has synced.
        let always = Leadership::always();
        assert!(h.readyz(&always).is_err(), "no loop started yet");
        h.expect(2);
        h.beat("eas/*");
        h.synced("eas/*");
        h.beat("routine/*");
        let partial = h.readyz(&always).expect_err("one cache still listing");
        assert!(partial.contains("1 of 2"), "{partial}");
        h.synced("routine/*");
        assert!(h.readyz(&always).is_ok());
        h.ended("routine/*");
        assert!(h.readyz(&always).is_err(), "an ended loop serves nothing");
    }

    #[test]
    fn a_follower_that_knows_it_follows_is_ready() {
        let h = Health::default();
        let l = Leadership::elected();
        l.lose();
        assert!(
            h.readyz(&l).is_err(),
            "a replica that lost the Lease is leaving"
        );
        let follower = Leadership::elected();
        follower.follow();
        assert!(h.readyz(&follower).is_ok());
    }
}
