//! Client-side rate limits: one token bucket per (product, API action), shared by every
//! clone of the client, so the operator stays well below the cloud's per-API quota.
//!
//! Two things make the limits work at scale:
//! - [`RateLimits::acquire`] returns how long it waited. The client does not count that
//!   wait against a call's deadline (the deadline starts when the call is sent), so a mass
//!   reconcile at start-up or failover queues on the limiter instead of failing in waves
//!   reported as timeouts.
//! - Callers have a [`Priority`], set for a whole reconcile with [`with_priority`]. A
//!   settled poll takes a token only while no active rollout (moving, or with a step due)
//!   is waiting for one of the same bucket, so active rollouts are served first.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use super::endpoint::Product;

/// Who is waiting for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A rollout that moves or has a step due, a spec change, a deletion: served first.
    Active,
    /// A poll of a settled rollout: waits while any active caller waits.
    Settled,
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Run `f` with every cloud call it makes at `priority` (a call made outside any
/// [`with_priority`] is [`Priority::Active`]).
pub async fn with_priority<F: Future>(priority: Priority, f: F) -> F::Output {
    PRIORITY.scope(priority, f).await
}

/// The priority of the calling task.
pub fn current_priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::Active)
}

/// One API's bucket and the active callers waiting on it.
#[derive(Debug)]
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    active_waiting: AtomicUsize,
    /// Signalled when the last active waiter got its token (or gave up).
    no_active: Notify,
}

/// Counts an active waiter for as long as it lives (a cancelled wait included).
struct ActiveWaiter<'a>(&'a Bucket);

impl<'a> ActiveWaiter<'a> {
    fn new(bucket: &'a Bucket) -> Self {
        bucket.active_waiting.fetch_add(1, Ordering::SeqCst);
        ActiveWaiter(bucket)
    }
}

impl Drop for ActiveWaiter<'_> {
    fn drop(&mut self) {
        if self.0.active_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.no_active.notify_waiters();
        }
    }
}

/// The set of per-API buckets.
#[derive(Debug)]
pub struct RateLimits {
    quota: Option<Quota>,
    buckets: Mutex<HashMap<(Product, &'static str), Arc<Bucket>>>,
}

impl RateLimits {
    /// `per_second` requests per second per API with bursts of `burst`; 0 disables limiting.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let quota = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        });
        RateLimits {
            quota,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn bucket(&self, product: Product, action: &'static str) -> Option<Arc<Bucket>> {
        let quota = self.quota?;
        // A poisoned lock only means another thread panicked while inserting; the map
        // itself is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            buckets
                .entry((product, action))
                .or_insert_with(|| {
                    Arc::new(Bucket {
                        limiter: RateLimiter::direct(quota),
                        active_waiting: AtomicUsize::new(0),
                        no_active: Notify::new(),
                    })
                })
                .clone(),
        )
    }

    /// Wait for a token of this API's bucket, at the calling task's [`Priority`]; returns
    /// how long that took (not part of any call's deadline).
    pub async fn acquire(&self, product: Product, action: &'static str) -> Duration {
        let started = Instant::now();
        let Some(bucket) = self.bucket(product, action) else {
            return Duration::ZERO;
        };
        match current_priority() {
            Priority::Active => {
                let _waiting = ActiveWaiter::new(&bucket);
                bucket.limiter.until_ready().await;
            }
            Priority::Settled => loop {
                let no_active = bucket.no_active.notified();
                let mut no_active = std::pin::pin!(no_active);
                // Registered before the check, so a wake-up between the two is not lost.
                no_active.as_mut().enable();
                if bucket.active_waiting.load(Ordering::SeqCst) > 0 {
                    no_active.await;
                    continue;
                }
                match bucket.limiter.check() {
                    Ok(()) => break,
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        // Wake at the next token, or earlier if an active caller came and
                        // went; then look again.
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = no_active => {}
                        }
                    }
                }
            },
        }
        started.elapsed()
    }

    /// Take a token if one is free now (tests and diagnostics).
    pub fn try_acquire(&self, product: Product, action: &'static str) -> bool {
        match self.bucket(product, action) {
            Some(bucket) => bucket.limiter.check().is_ok(),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_per_api_and_bounded_by_burst() {
        let limits = RateLimits::new(1, 3);
        for _ in 0..3 {
            assert!(limits.try_acquire(Product::Eas, "DescribeService"));
        }
        assert!(!limits.try_acquire(Product::Eas, "DescribeService"));
        // Other APIs have their own budget.
        assert!(limits.try_acquire(Product::Eas, "UpdateService"));
        assert!(limits.try_acquire(Product::Esa, "DescribeService"));
    }

    #[test]
    fn zero_disables() {
        let limits = RateLimits::new(0, 0);
        for _ in 0..1000 {
            assert!(limits.try_acquire(Product::Esa, "GetRoutine"));
        }
    }

    #[tokio::test]
    async fn acquire_waits_for_a_token() {
        let limits = RateLimits::new(10, 1);
        let start = std::time::Instant::now();
        for _ in 0..3 {
            limits.acquire(Product::Eas, "X").await;
        }
        // One free token, then two more at 100 ms intervals.
        let took = start.elapsed();
        assert!(took >= std::time::Duration::from_millis(150), "{took:?}");
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    }

    #[tokio::test]
    async fn acquire_reports_how_long_it_waited() {
        let limits = RateLimits::new(10, 1);
        assert!(limits.acquire(Product::Eas, "X").await < Duration::from_millis(50));
        // The next token comes 100 ms after the first.
        let waited = limits.acquire(Product::Eas, "X").await;
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert_eq!(
            RateLimits::new(0, 0).acquire(Product::Eas, "X").await,
            Duration::ZERO
        );
    }

    #[tokio::test]
    async fn settled_polls_wait_while_active_callers_wait() {
        let limits = Arc::new(RateLimits::new(20, 1));
        assert!(limits.try_acquire(Product::Esa, "GetRoutine"));
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |priority: Priority, name: &'static str| {
            let (limits, order) = (limits.clone(), order.clone());
            tokio::spawn(with_priority(priority, async move {
                limits.acquire(Product::Esa, "GetRoutine").await;
                order.lock().unwrap().push(name);
            }))
        };
        // The settled polls queue first; the active callers come later and still go first.
        let settled = [
            spawn(Priority::Settled, "s1"),
            spawn(Priority::Settled, "s2"),
        ];
        tokio::time::sleep(Duration::from_millis(10)).await;
        let active = [
            spawn(Priority::Active, "a1"),
            spawn(Priority::Active, "a2"),
            spawn(Priority::Active, "a3"),
        ];
        for task in active.into_iter().chain(settled) {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), 5);
        assert!(
            order[..3].iter().all(|n| n.starts_with('a')),
            "active callers first: {order:?}"
        );
    }

    #[tokio::test]
    async fn a_settled_poll_alone_is_not_held_back() {
        let limits = RateLimits::new(20, 2);
        let waited = with_priority(
            Priority::Settled,
            limits.acquire(Product::Eas, "DescribeService"),
        )
        .await;
        assert!(waited < Duration::from_millis(50), "{waited:?}");
        assert_eq!(current_priority(), Priority::Active);
        assert_eq!(
            with_priority(Priority::Settled, async { current_priority() }).await,
            Priority::Settled
        );
    }
}
