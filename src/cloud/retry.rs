//! When and how long to wait before retrying a failed cloud call.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::error::{CloudError, ErrorKind};

/// Capped, jittered exponential backoff, bounded by a number of retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// First delay; doubled per retry.
    pub base: Duration,
    /// Cap of the delay before jitter (a jittered delay is below twice the cap).
    pub max: Duration,
}

impl RetryPolicy {
    /// The delays between attempts: the n-th is `d = min(base * 2^n, max)` plus a random
    /// jitter in `[0, d)`.
    pub fn backoff(&self) -> backon::ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max.max(self.base))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_retries as usize)
            .build()
    }
}

/// How long to wait after `err`, given the next backoff delay; `None` when the error is
/// not worth retrying.
///
/// Throttling backs off twice as hard and never waits less than the cloud's
/// `x-acs-retry-after`.
pub fn delay_after(err: &CloudError, backoff: Duration) -> Option<Duration> {
    match err.kind() {
        ErrorKind::Terminal => None,
        ErrorKind::Transient => Some(backoff),
        ErrorKind::Throttled => {
            let floor = match err {
                CloudError::Api { retry_after, .. } => retry_after.unwrap_or_default(),
                _ => Duration::ZERO,
            };
            Some((backoff * 2).max(floor))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, retry_after: Option<Duration>) -> CloudError {
        CloudError::Api {
            status,
            code: code.into(),
            message: String::new(),
            request_id: None,
            retry_after,
        }
    }

    #[test]
    fn backoff_is_capped_jittered_and_bounded() {
        let policy = RetryPolicy {
            max_retries: 6,
            base: Duration::from_millis(100),
            max: Duration::from_millis(800),
        };
        for _ in 0..50 {
            let delays: Vec<Duration> = policy.backoff().collect();
            assert_eq!(delays.len(), 6);
            for (n, d) in delays.iter().enumerate() {
                let nominal = Duration::from_millis((100u64 << n).min(800));
                assert!(*d >= nominal && *d < nominal * 2, "retry {n}: {d:?}");
            }
        }
        let none = RetryPolicy {
            max_retries: 0,
            ..policy
        };
        assert_eq!(none.backoff().count(), 0);
    }

    #[test]
    fn jitter_spreads_delays() {
        let policy = RetryPolicy {
            max_retries: 1,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let firsts: std::collections::BTreeSet<Duration> =
            (0..20).filter_map(|_| policy.backoff().next()).collect();
        assert!(firsts.len() > 1, "{firsts:?}");
    }

    #[test]
    fn delay_by_error_kind() {
        let b = Duration::from_millis(100);
        assert_eq!(delay_after(&api(400, "InvalidParameter", None), b), None);
        assert_eq!(delay_after(&api(404, "InvalidApp.NotFound", None), b), None);
        assert_eq!(delay_after(&api(500, "InternalError", None), b), Some(b));
        assert_eq!(
            delay_after(&CloudError::Timeout(Duration::from_secs(1)), b),
            Some(b)
        );
        assert_eq!(
            delay_after(&api(400, "Throttling.User", None), b),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            delay_after(
                &api(400, "Throttling.User", Some(Duration::from_secs(3))),
                b
            ),
            Some(Duration::from_secs(3))
        );
    }
}
