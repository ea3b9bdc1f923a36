//! Who is served first when thousands of rollouts share the cloud's quota.
//!
//! - A rollout is [`Priority::Active`] (new, spec changed, moving, a mutation in flight, a
//!   step due, being deleted, failing) or [`Priority::Settled`] (Ready at its current
//!   generation). Its reconcile runs at that priority: the cloud client's rate limiter
//!   serves active callers before settled polls (see [`crate::cloud::ratelimit`]).
//! - Settled polls may use at most half of the reconcile slots, so a burst of them never
//!   keeps an active rollout waiting for a slot: a settled poll that finds no slot free
//!   comes back a few seconds later without calling the cloud.
//! - After a start (or a failover), settled rollouts are not all read at once: each is
//!   first read at its own stable moment within one settled-poll interval from the start
//!   (an offset derived from its uid), so the polls of thousands of rollouts are spread
//!   evenly instead of bunched behind the initial list.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kube::Resource;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::cloud::ratelimit::Priority;

use super::status::{RolloutObject, RolloutStatus};

/// How a settled poll that found no slot free is put off (before jitter).
pub const NO_SLOT_RETRY: Duration = Duration::from_secs(2);

/// The priority of `obj` from what it says about itself.
pub fn priority_of<K: RolloutObject + Resource>(obj: &K) -> Priority {
    let meta = obj.meta();
    if meta.deletion_timestamp.is_some() {
        return Priority::Active;
    }
    let Some(status) = obj.status() else {
        return Priority::Active;
    };
    if !status.mutations_in_flight().is_empty() {
        return Priority::Active;
    }
    let ready_now = status.conditions().iter().any(|c| {
        c.type_ == "Ready" && c.status == "True" && c.observed_generation == meta.generation
    });
    if ready_now {
        Priority::Settled
    } else {
        Priority::Active
    }
}

/// Where in `period` the object with `uid` is first polled after a start: a stable
/// fraction of the period derived from the uid, so that objects spread evenly.
pub fn first_poll_offset(uid: &str, period: Duration) -> Duration {
    let digest = Sha256::digest(uid.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let fraction = u64::from_be_bytes(head) as f64 / (u64::MAX as f64 + 1.0);
    period.mul_f64(fraction)
}

/// The shared scheduling state of the controllers.
#[derive(Debug)]
pub struct Schedule {
    /// Reconciles one controller runs at once (`--max-concurrent-reconciles`); 0: no bound.
    pub concurrency: u16,
    /// Slots for settled polls (half of `concurrency`); `None` when unbounded.
    settled_slots: Option<Arc<Semaphore>>,
    /// When the controllers started (after winning the Lease, with leader election).
    started: OnceLock<Instant>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::new(0)
    }
}

impl Schedule {
    pub fn new(concurrency: u16) -> Self {
        Schedule {
            concurrency,
            settled_slots: (concurrency > 0)
                .then(|| Arc::new(Semaphore::new(usize::from(concurrency / 2).max(1)))),
            started: OnceLock::new(),
        }
    }

    /// The controllers start now (the first call counts).
    pub fn mark_started(&self, now: Instant) {
        let _ = self.started.set(now);
    }

    /// How long a settled object with `uid` waits before its first poll since the start,
    /// or `None` when its moment has come (or the start was not marked).
    pub fn hold_settled(&self, uid: &str, period: Duration, now: Instant) -> Option<Duration> {
        let started = *self.started.get()?;
        let due = started + first_poll_offset(uid, period);
        let wait = due.saturating_duration_since(now);
        (!wait.is_zero()).then_some(wait)
    }

    /// A slot for a settled poll, held until dropped; `None` when they are all taken.
    /// Always granted when reconciles are unbounded.
    pub fn settled_slot(&self) -> Option<SettledSlot> {
        match &self.settled_slots {
            None => Some(SettledSlot(None)),
            Some(slots) => slots
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|p| SettledSlot(Some(p))),
        }
    }
}

/// A settled poll's slot (see [`Schedule::settled_slot`]).
#[derive(Debug)]
pub struct SettledSlot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EasServiceRollout;
    use serde_json::json;

    fn object(generation: i64, status: serde_json::Value) -> EasServiceRollout {
        serde_json::from_value(json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u", "generation": generation},
            "spec": {"region": "cn-shanghai", "serviceName": "s", "strategy": {"partition": "0"}},
            "status": status,
        }))
        .expect("an object")
    }

    fn ready(status: &str, generation: i64) -> serde_json::Value {
        json!({"type": "Ready", "status": status, "reason": "R", "message": "",
               "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": generation})
    }

    #[test]
    fn only_a_rollout_ready_at_its_generation_is_settled() {
        let in_flight = json!([{"action": "UpdateServiceRollout", "request": "x",
                                "acceptedAt": "2026-01-01T00:00:00Z"}]);
        let cases = [
            (
                object(2, json!(null)),
                Priority::Active,
                "new: no status yet",
            ),
            (
                object(2, json!({"conditions": [ready("True", 2)]})),
                Priority::Settled,
                "ready",
            ),
            (
                object(3, json!({"conditions": [ready("True", 2)]})),
                Priority::Active,
                "the spec changed since",
            ),
            (
                object(2, json!({"conditions": [ready("False", 2)]})),
                Priority::Active,
                "moving, paused at a step, or failing",
            ),
            (
                object(
                    2,
                    json!({"conditions": [ready("True", 2)], "mutationsInFlight": in_flight}),
                ),
                Priority::Active,
                "a mutation not yet seen in the cloud",
            ),
        ];
        for (obj, want, why) in cases {
            assert_eq!(priority_of(&obj), want, "{why}");
        }
        let mut deleting = object(2, json!({"conditions": [ready("True", 2)]}));
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert_eq!(priority_of(&deleting), Priority::Active, "being deleted");
    }

    #[test]
    fn first_polls_spread_evenly_over_the_period() {
        let period = Duration::from_secs(300);
        let mut buckets = [0u32; 10];
        for i in 0..5000 {
            let offset = first_poll_offset(&format!("{i:08x}-uid"), period);
            assert!(offset < period);
            buckets[(offset.as_secs_f64() / 30.0) as usize] += 1;
        }
        // 500 expected per tenth of the period.
        assert!(
            buckets.iter().all(|&n| (400..600).contains(&n)),
            "{buckets:?}"
        );
        // Stable: the same object gets the same moment.
        assert_eq!(
            first_poll_offset("abc", period),
            first_poll_offset("abc", period)
        );
    }

    #[test]
    fn settled_objects_are_held_until_their_moment_after_a_start() {
        let period = Duration::from_secs(300);
        let schedule = Schedule::new(8);
        let t0 = Instant::now();
        assert_eq!(schedule.hold_settled("u", period, t0), None, "not started");
        schedule.mark_started(t0);
        let offset = first_poll_offset("u", period);
        assert_eq!(
            schedule.hold_settled("u", period, t0),
            Some(offset).filter(|d| !d.is_zero())
        );
        assert_eq!(schedule.hold_settled("u", period, t0 + offset), None);
        assert_eq!(schedule.hold_settled("u", period, t0 + period), None);
        // A later mark does not move the start.
        schedule.mark_started(t0 + period);
        assert_eq!(schedule.hold_settled("u", period, t0 + offset), None);
    }

    #[test]
    fn settled_polls_use_at_most_half_of_the_slots() {
        let schedule = Schedule::new(8);
        let held: Vec<_> = (0..4).map(|_| schedule.settled_slot()).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(schedule.settled_slot().is_none());
        drop(held);
        assert!(schedule.settled_slot().is_some());
        assert!(Schedule::new(1).settled_slot().is_some());
        let unbounded = Schedule::new(0);
        let many: Vec<_> = (0..100).map(|_| unbounded.settled_slot()).collect();
        assert!(many.iter().all(Option::is_some));
    }
}
