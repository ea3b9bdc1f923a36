//! Client-side rate limits: one token bucket per (product, API action), shared by every
//! clone of the client, so the operator stays well below the cloud's per-API quota.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::endpoint::Product;

/// The set of per-API buckets.
#[derive(Debug)]
pub struct RateLimits {
    quota: Option<Quota>,
    buckets: Mutex<HashMap<(Product, &'static str), Arc<DefaultDirectRateLimiter>>>,
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

    fn bucket(
        &self,
        product: Product,
        action: &'static str,
    ) -> Option<Arc<DefaultDirectRateLimiter>> {
        let quota = self.quota?;
        // A poisoned lock only means another thread panicked while inserting; the map
        // itself is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            buckets
                .entry((product, action))
                .or_insert_with(|| Arc::new(RateLimiter::direct(quota)))
                .clone(),
        )
    }

    /// Wait for a token of this API's bucket.
    pub async fn acquire(&self, product: Product, action: &'static str) {
        if let Some(bucket) = self.bucket(product, action) {
            bucket.until_ready().await;
        }
    }

    /// Take a token if one is free now (tests and diagnostics).
    pub fn try_acquire(&self, product: Product, action: &'static str) -> bool {
        match self.bucket(product, action) {
            Some(bucket) => bucket.check().is_ok(),
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
}
