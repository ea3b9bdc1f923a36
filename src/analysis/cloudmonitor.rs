//! The `cloudMonitor` provider: Alibaba CloudMonitor's DescribeMetricLast (the latest
//! datapoint) or DescribeMetricList (every datapoint of the last `window`), sent through
//! the rollout's [`CloudApi`], so it is signed with the rollout's credentials (V3), rate
//! limited, retried, traced and counted like every other cloud call.
//!
//! The result is a number when one datapoint answers (one service), a list of numbers
//! otherwise (several services, or the datapoints of a window, oldest first). No datapoint
//! at all is an error, never a pass: a metric with no data proves nothing.
//!
//! Note: CloudMonitor's EAS metrics (`acs_pai_eas`) are per service, not per revision: during
//! an in-place EAS rollout they mix the old and the new version.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Provider, ProviderError};
use crate::cloud::api::CloudApi;
use crate::cloud::config::parse_duration;
use crate::cloud::model::{DescribeMetricRequest, DescribeMetricResponse};
use crate::crd::analysis::CloudMonitorMetric;

/// The namespace of the PAI-EAS service metrics, the default.
pub const EAS_NAMESPACE: &str = "acs_pai_eas";
/// The statistic taken from each datapoint by default.
pub const DEFAULT_STATISTIC: &str = "Average";
/// The period asked for by default, in seconds.
pub const DEFAULT_PERIOD: i32 = 60;
/// Most pages of DescribeMetricList followed for one measurement.
const MAX_PAGES: usize = 10;

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

    fn namespace(&self) -> &str {
        self.metric.namespace.as_deref().unwrap_or(EAS_NAMESPACE)
    }

    /// The request without times: namespace, metric, period and dimensions.
    fn request(&self) -> DescribeMetricRequest {
        DescribeMetricRequest {
            namespace: self.namespace().to_string(),
            metric_name: self.metric.metric_name.clone(),
            period: Some(self.metric.period.unwrap_or(DEFAULT_PERIOD).to_string()),
            dimensions: dimensions_json(&self.metric.dimensions),
            ..DescribeMetricRequest::default()
        }
    }

    async fn take(&self, now: jiff::Timestamp) -> Result<Value, ProviderError> {
        let region = self.metric.region.as_deref().filter(|r| !r.is_empty());
        let region = region.ok_or_else(|| {
            ProviderError::Failed("cloudMonitor: no region (set region on the metric)".into())
        })?;
        let statistic = self
            .metric
            .statistic
            .as_deref()
            .unwrap_or(DEFAULT_STATISTIC);
        let points = match self.metric.window.as_deref() {
            None => {
                let answer = self
                    .cloud
                    .describe_metric_last(region, &self.request())
                    .await
                    .map_err(|e| ProviderError::Failed(format!("DescribeMetricLast: {e}")))?;
                datapoints(&answer)?
            }
            Some(window) => self.list(region, window, now).await?,
        };
        let values = values(&points, statistic)?;
        match (values.as_slice(), self.metric.window.is_some()) {
            ([], _) => Err(ProviderError::Failed(format!(
                "cloudMonitor: no datapoints for {}",
                self.query()
            ))),
            ([one], false) => Ok(Value::from(*one)),
            (many, _) => Ok(Value::from(many.to_vec())),
        }
    }

    /// Every datapoint of the last `window`, oldest first.
    async fn list(
        &self,
        region: &str,
        window: &str,
        now: jiff::Timestamp,
    ) -> Result<Vec<Map<String, Value>>, ProviderError> {
        let span = parse_duration(window)
            .map_err(|e| ProviderError::Failed(format!("cloudMonitor: window: {e}")))?;
        let span_ms = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
        let end = now.as_millisecond();
        let mut request = self.request();
        request.start_time = Some(end.saturating_sub(span_ms).to_string());
        request.end_time = Some(end.to_string());
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self
                .cloud
                .describe_metric_list(region, &request)
                .await
                .map_err(|e| ProviderError::Failed(format!("DescribeMetricList: {e}")))?;
            all.extend(datapoints(&answer)?);
            match answer.next_token.filter(|t| !t.is_empty()) {
                Some(token) => request.next_token = Some(token),
                None => break,
            }
        }
        all.sort_by_key(|p| p.get("timestamp").and_then(Value::as_i64).unwrap_or(0));
        Ok(all)
    }
}

#[async_trait::async_trait]
impl Provider for CloudMonitorProvider {
    async fn measure(&self) -> Result<Value, ProviderError> {
        match tokio::time::timeout(self.timeout, self.take(jiff::Timestamp::now())).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Timeout(self.timeout)),
        }
    }

    fn query(&self) -> String {
        let m = &self.metric;
        let dims: Vec<String> = m
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut q = format!(
            "{}/{}{{{}}}",
            self.namespace(),
            m.metric_name,
            dims.join(",")
        );
        q.push_str(&format!(
            " {}",
            m.statistic.as_deref().unwrap_or(DEFAULT_STATISTIC)
        ));
        q.push_str(&format!(" period={}s", m.period.unwrap_or(DEFAULT_PERIOD)));
        if let Some(w) = &m.window {
            q.push_str(&format!(" window={w}"));
        }
        q
    }
}

/// `{"serviceName":"llm-chat"}` -> `[{"serviceName":"llm-chat"}]`; none -> `None`.
pub fn dimensions_json(dimensions: &BTreeMap<String, String>) -> Option<String> {
    if dimensions.is_empty() {
        return None;
    }
    let obj: Map<String, Value> = dimensions
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Some(Value::Array(vec![Value::Object(obj)]).to_string())
}

fn datapoints(answer: &DescribeMetricResponse) -> Result<Vec<Map<String, Value>>, ProviderError> {
    answer
        .points()
        .map_err(|e| ProviderError::Failed(format!("cloudMonitor: {e}")))
}

/// The `statistic` of each datapoint (a number, or a string holding one).
pub fn values(points: &[Map<String, Value>], statistic: &str) -> Result<Vec<f64>, ProviderError> {
    points
        .iter()
        .map(|p| {
            let v = p.get(statistic).ok_or_else(|| {
                let fields: Vec<&String> = p.keys().collect();
                ProviderError::Failed(format!(
                    "cloudMonitor: a datapoint has no {statistic:?} (it has {fields:?})"
                ))
            })?;
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            n.filter(|n| n.is_finite()).ok_or_else(|| {
                ProviderError::Failed(format!("cloudMonitor: {statistic} is not a number: {v}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::fake::FakeCloud;
    use serde_json::json;

    fn metric(window: Option<&str>) -> CloudMonitorMetric {
        serde_json::from_value(json!({
            "metricName": "5xxResponseRatio",
            "dimensions": {"serviceName": "llm-chat"},
            "region": "cn-shanghai",
            "window": window,
        }))
        .unwrap()
    }

    fn provider(fake: &Arc<FakeCloud>, window: Option<&str>) -> CloudMonitorProvider {
        CloudMonitorProvider::new(metric(window), fake.clone(), Duration::from_secs(5))
    }

    #[tokio::test]
    async fn the_latest_datapoint_is_a_number_and_no_data_is_an_error() {
        let fake = FakeCloud::new();
        let p = provider(&fake, None);
        assert!(
            matches!(p.measure().await, Err(ProviderError::Failed(m)) if m.contains("no datapoints"))
        );
        fake.set_metric(
            "cn-shanghai",
            EAS_NAMESPACE,
            "5xxResponseRatio",
            vec![json!({"serviceName": "llm-chat", "Average": 61.5, "Maximum": "70"})],
        );
        assert_eq!(p.measure().await.unwrap(), json!(61.5));
        let last = fake.calls().pop().unwrap();
        assert_eq!(
            (last.api, last.region.as_str()),
            ("DescribeMetricLast", "cn-shanghai")
        );
        assert_eq!(
            p.query(),
            "acs_pai_eas/5xxResponseRatio{serviceName=llm-chat} Average period=60s"
        );
    }

    #[tokio::test]
    async fn a_window_is_a_list_oldest_first_and_a_missing_statistic_is_an_error() {
        let fake = FakeCloud::new();
        fake.set_metric(
            "cn-shanghai",
            EAS_NAMESPACE,
            "5xxResponseRatio",
            vec![
                json!({"timestamp": 2000, "Average": 2.0}),
                json!({"timestamp": 1000, "Average": "1.0"}),
            ],
        );
        let p = provider(&fake, Some("5m"));
        assert_eq!(p.measure().await.unwrap(), json!([1.0, 2.0]));
        assert_eq!(fake.calls().pop().unwrap().api, "DescribeMetricList");
        let mut m = metric(None);
        m.statistic = Some("P99".into());
        let p = CloudMonitorProvider::new(m, fake.clone(), Duration::from_secs(5));
        assert!(matches!(p.measure().await, Err(ProviderError::Failed(e)) if e.contains("P99")));
    }

    #[test]
    fn dimensions_become_one_json_object_in_a_list() {
        let mut d = BTreeMap::new();
        assert_eq!(dimensions_json(&d), None);
        d.insert("serviceName".to_string(), "a\"b".to_string());
        assert_eq!(dimensions_json(&d).unwrap(), r#"[{"serviceName":"a\"b"}]"#);
    }
}
