//! Prometheus metrics of cloud calls. The operator serves [`Metrics::encode`] on /metrics.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub product: String,
    pub action: String,
    /// `success`, or the error code (`Throttling.User`, `Timeout`, ...).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub product: String,
    pub action: String,
}

/// Counters and histograms of every cloud call, in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub calls: Family<CallLabels, Counter>,
    pub latency: Family<ApiLabels, Histogram>,
    pub retries: Family<ApiLabels, Counter>,
    pub throttled: Family<ApiLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~41 s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    /// Metrics registered under the `alicloud_rollouts_cloud` prefix in a new registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("alicloud_rollouts_cloud");
        let calls = Family::<CallLabels, Counter>::default();
        let latency = Family::<ApiLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let retries = Family::<ApiLabels, Counter>::default();
        let throttled = Family::<ApiLabels, Counter>::default();
        registry.register(
            "calls",
            "Cloud API calls by product, action and outcome",
            calls.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Duration of cloud API calls, retries included",
            latency.clone(),
        );
        registry.register(
            "retries",
            "Retried attempts of cloud API calls",
            retries.clone(),
        );
        registry.register(
            "throttled",
            "Attempts the cloud answered as throttled",
            throttled.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            calls,
            latency,
            retries,
            throttled,
        }
    }

    /// The registry, e.g. to add the controller's own metrics to it.
    pub fn registry(&self) -> Arc<Mutex<Registry>> {
        self.registry.clone()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    pub(crate) fn api(product: &str, action: &str) -> ApiLabels {
        ApiLabels {
            product: product.to_string(),
            action: action.to_string(),
        }
    }

    /// Current value of the calls counter (tests and diagnostics).
    pub fn call_count(&self, product: &str, action: &str, outcome: &str) -> u64 {
        self.calls
            .get_or_create(&CallLabels {
                product: product.into(),
                action: action.into(),
                outcome: outcome.into(),
            })
            .get()
    }

    pub fn retry_count(&self, product: &str, action: &str) -> u64 {
        self.retries
            .get_or_create(&Self::api(product, action))
            .get()
    }

    pub fn throttled_count(&self, product: &str, action: &str) -> u64 {
        self.throttled
            .get_or_create(&Self::api(product, action))
            .get()
    }
}
