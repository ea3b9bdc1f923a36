//! The `cloudMonitor` provider (owned by the `cms` helper; this is the engine's placeholder).

use std::sync::Arc;
use std::time::Duration;

use super::{Provider, ProviderError};
use crate::cloud::api::CloudApi;
use crate::crd::analysis::CloudMonitorMetric;

/// A CloudMonitor metric with its arguments substituted, asked through the rollout's
/// CloudApi (signed with its credentials).
pub struct CloudMonitorProvider {
    pub metric: CloudMonitorMetric,
    pub cloud: Arc<dyn CloudApi>,
    pub timeout: Duration,
}

impl CloudMonitorProvider {
    /// What the engine calls; `metric` has `{{args.x}}` already replaced.
    pub fn new(metric: CloudMonitorMetric, cloud: Arc<dyn CloudApi>, timeout: Duration) -> Self {
        CloudMonitorProvider {
            metric,
            cloud,
            timeout,
        }
    }
}

#[async_trait::async_trait]
impl Provider for CloudMonitorProvider {
    async fn measure(&self) -> Result<serde_json::Value, ProviderError> {
        let _ = (&self.cloud, self.timeout);
        Err(ProviderError::Failed(
            "the cloudMonitor provider is not implemented yet".to_string(),
        ))
    }

    fn query(&self) -> String {
        let m = &self.metric;
        let dims: Vec<String> = m
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}/{}{{{}}}",
            m.namespace.as_deref().unwrap_or("acs_pai_eas"),
            m.metric_name,
            dims.join(",")
        )
    }
}
