//! `AnalysisTemplate` and `ClusterAnalysisTemplate`: the metrics a rollout checks before it
//! moves on, and the types a rollout uses to name a template (`AnalysisRef`) and to keep the
//! verdict (`AnalysisStatus`).
//!
//! The schema checks what it can (one provider per metric, durations, limits, at least one
//! condition); the CEL of `successCondition` / `failureCondition` is compiled by the
//! operator, which names the metric and the position of the error.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{MAX_STATUS_MESSAGE, MAX_STATUS_TEXT};
use super::validation::{DNS_SUBDOMAIN_PATTERN, DURATION_PATTERN, rule, rule_at};

/// Most arguments a template declares.
pub const MAX_ARGS: u32 = 32;
/// Most metrics a template declares.
pub const MAX_METRICS: u32 = 16;
/// Most measurements kept per metric in `status.analysis`.
pub const MAX_MEASUREMENTS: usize = 10;
/// Longest query, URL or body a template may carry.
pub const MAX_QUERY: u32 = 4096;
/// Longest CEL condition.
pub const MAX_CONDITION: u32 = 1024;
/// Most measurements one metric may take (`count`).
pub const MAX_COUNT: i32 = 10_000;

/// An argument name: what `{{args.NAME}}` refers to.
pub const ARG_NAME_PATTERN: &str = "^[a-zA-Z][a-zA-Z0-9_]*$";
/// A metric name (a DNS label, as it appears in Events and status).
pub const METRIC_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// An absolute http(s) URL (it may hold `{{args.x}}` placeholders after the host part).
/// An http(s) URL, or one that starts with an argument (`{{args.prometheus}}/...`), so that a
/// template shared by teams can take its address from the rollout.
pub const HTTP_URL_OR_ARG_PATTERN: &str =
    "^(https?://[^ ]+|[{][{] *args[.][A-Za-z0-9_-]+ *[}][}][^ ]*)$";
/// An HTTP header name (RFC 9110 token).
pub const HEADER_NAME_PATTERN: &str = "^[-!#$%&'*+.^_`|~0-9A-Za-z]+$";

fn duration_rule(field: &str) -> serde_json::Value {
    rule(
        &format!("self.matches('{DURATION_PATTERN}')"),
        &format!(
            "{field} must be a whole number of seconds, minutes or hours, such as \"30s\", \"5m\" or \"1h\""
        ),
    )
}

fn secret_name_rule() -> serde_json::Value {
    rule(
        &format!("self.matches('{DNS_SUBDOMAIN_PATTERN}')"),
        "the Secret name must be a valid Secret name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    )
}

/// The metrics a rollout checks, in the rollout's namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    doc = "Metrics a rollout checks before it moves on: each metric queries a provider \
           (Prometheus, an HTTP endpoint, Alibaba CloudMonitor) and judges the result with CEL.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Arguments the queries use as `{{args.NAME}}`. A rollout fills them (its own values
    /// and the built-ins such as `service`, `version`, `canaryVersion`); an argument may have a
    /// default `value`, or take its value from a Secret key (`valueFrom`, e.g. a token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ARGS), extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"],
    ))]
    pub args: Vec<Argument>,
    /// The metrics, 1 to 16, each with a unique name.
    #[schemars(length(min = 1, max = MAX_METRICS), extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"],
    ))]
    pub metrics: Vec<Metric>,
}

/// The same as an `AnalysisTemplate`, cluster-wide: any namespace's rollouts may use it.
/// Its Secrets (`valueFrom`, `authSecretRef`) are read in the operator's namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    doc = "Metrics any namespace's rollouts may check (the cluster-wide AnalysisTemplate); \
           its Secrets are read in the operator's namespace.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct ClusterAnalysisTemplateSpec(pub AnalysisTemplateSpec);

impl std::ops::Deref for ClusterAnalysisTemplateSpec {
    type Target = AnalysisTemplateSpec;
    fn deref(&self) -> &AnalysisTemplateSpec {
        &self.0
    }
}

/// One argument of a template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule(
        "!(has(self.value) && has(self.valueFrom))",
        "an argument takes either a default value or valueFrom (a Secret key), not both",
    ),
]))]
pub struct Argument {
    /// Name used as `{{args.NAME}}`: a letter, then letters, digits or '_'.
    #[schemars(length(min = 1, max = 63), regex(pattern = ARG_NAME_PATTERN))]
    pub name: String,
    /// Default value, used when the rollout does not give one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_QUERY))]
    pub value: Option<String>,
    /// Take the value from a Secret key (the rollout's namespace; for a
    /// ClusterAnalysisTemplate, the operator's namespace). Its value is masked in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgValueFrom>,
}

/// Where an argument's value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgValueFrom {
    /// A key of a Secret.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [secret_name_rule()]))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = "^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// An HTTP header whose value is a Secret key: `<header>: <prefix><secret value>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [secret_name_rule()]))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = "^[-._a-zA-Z0-9]+$"))]
    pub key: String,
    /// Header name (default `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = HEADER_NAME_PATTERN))]
    pub header: Option<String>,
    /// Text put before the secret value (default `Bearer `; `""` for a bare token,
    /// `Basic ` for a base64 user:password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub prefix: Option<String>,
}

/// One metric: a provider query, how often, and how its result is judged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule(
        "has(self.successCondition) || has(self.failureCondition) || (has(self.provider.web) && !has(self.provider.web.jsonPath))",
        "a metric needs successCondition or failureCondition (or both); only a web metric without jsonPath may omit them (any 2xx answer passes)",
    ),
    rule_at(
        "!has(self.count) || self.count <= 1 || has(self.interval)",
        "interval is required when count is more than 1 (the time between two measurements)",
        ".interval",
    ),
]))]
pub struct Metric {
    /// Name of the metric (a lowercase DNS label), unique in the template.
    #[schemars(length(min = 1, max = 63), regex(pattern = METRIC_NAME_PATTERN))]
    pub name: String,
    /// Where the value comes from: exactly one provider.
    pub provider: MetricProvider,
    /// Time between two measurements ("30s", "1m"); required when count > 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [duration_rule("interval")]))]
    pub interval: Option<String>,
    /// Measurements to take (default 1); the metric is Successful after this many without
    /// exceeding a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_COUNT))]
    pub count: Option<i32>,
    /// Wait this long after the analysis starts before the first measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [duration_rule("initialDelay")]))]
    pub initial_delay: Option<String>,
    /// Failed measurements tolerated (default 0): one more fails the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_COUNT))]
    pub failure_limit: Option<i32>,
    /// Inconclusive measurements tolerated (default 0): one more makes the metric Inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_COUNT))]
    pub inconclusive_limit: Option<i32>,
    /// Provider errors in a row tolerated (default 4): one more makes the metric
    /// Inconclusive (an error never passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_COUNT))]
    pub consecutive_error_limit: Option<i32>,
    /// CEL over `result` (a number, a list or a map) that makes a measurement Successful,
    /// e.g. `result < 0.01` or `result.all(x, x < 0.5)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_CONDITION))]
    pub success_condition: Option<String>,
    /// CEL over `result` that makes a measurement Failed (it wins over successCondition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_CONDITION))]
    pub failure_condition: Option<String>,
}

/// Exactly one of the providers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule(
        "[has(self.prometheus), has(self.web), has(self.cloudMonitor)].filter(x, x).size() == 1",
        "set exactly one provider: prometheus, web or cloudMonitor",
    ),
]))]
pub struct MetricProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_monitor: Option<CloudMonitorMetric>,
}

/// An instant query to a Prometheus HTTP API (`<address>/api/v1/query`): self-hosted, or
/// Alibaba Cloud's managed Prometheus in ARMS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`; may
    /// start with `{{args.NAME}}`.
    #[schemars(length(min = 1, max = 2048), extend("x-kubernetes-validations" = [
        rule(&format!("self.matches('{HTTP_URL_OR_ARG_PATTERN}')"), "address must be an http:// or https:// URL, or start with {{args.NAME}}"),
    ]))]
    pub address: String,
    /// PromQL; may use `{{args.NAME}}`. One sample gives a number, several a list.
    #[schemars(length(min = 1, max = MAX_QUERY))]
    pub query: String,
    /// A header (default `Authorization: Bearer <value>`) from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<AuthSecretRef>,
    /// Longest wait for the answer (default 10s, at most 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [duration_rule("timeout")]))]
    pub timeout: Option<String>,
}

/// HTTP method of a web metric.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WebMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

/// A plain HTTP header of a web metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebHeader {
    #[schemars(length(min = 1, max = 128), regex(pattern = HEADER_NAME_PATTERN))]
    pub name: String,
    /// Value; may use `{{args.NAME}}` (a Secret-backed argument stays out of status).
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// An HTTP GET or POST answering JSON; the value is picked with JSONPath. A 2xx answer
/// with no `jsonPath` is a pass (the value is `true`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule_at(
        "!has(self.body) || (has(self.method) && self.method == 'POST')",
        "body needs method: POST",
        ".body",
    ),
]))]
pub struct WebMetric {
    /// URL; may use `{{args.NAME}}`.
    #[schemars(length(min = 1, max = MAX_QUERY), extend("x-kubernetes-validations" = [
        rule(&format!("self.matches('{HTTP_URL_OR_ARG_PATTERN}')"), "url must be an http:// or https:// URL, or start with {{args.NAME}}"),
    ]))]
    pub url: String,
    /// GET (default) or POST.
    #[serde(default)]
    #[schemars(extend("default" = "GET"))]
    pub method: WebMethod,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<WebHeader>,
    /// Request body of a POST; may use `{{args.NAME}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_QUERY))]
    pub body: Option<String>,
    /// JSONPath (RFC 9535) of the value in the answer, e.g. `$.data.errorRate`. One match
    /// gives that value, several a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub json_path: Option<String>,
    /// A header (default `Authorization: Bearer <value>`) from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<AuthSecretRef>,
    /// Longest wait for the answer (default 10s, at most 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [duration_rule("timeout")]))]
    pub timeout: Option<String>,
}

/// An Alibaba CloudMonitor metric (DescribeMetricLast, or DescribeMetricList over `window`),
/// signed with the rollout's credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudMonitorMetric {
    /// CloudMonitor namespace (default `acs_pai_eas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub namespace: Option<String>,
    /// Metric name in that namespace, e.g. the 5xx ratio or a response-time percentile.
    #[schemars(length(min = 1, max = 256))]
    pub metric_name: String,
    /// Dimensions selecting the series, e.g. `serviceName: "{{args.service}}"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub dimensions: BTreeMap<String, String>,
    /// Aggregation period in seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub period: Option<i32>,
    /// Field of a datapoint to take: `Average` (default), `Maximum`, `Minimum`, `Sum`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub statistic: Option<String>,
    /// Without it the latest datapoint (DescribeMetricLast) is taken; with it every
    /// datapoint of the last `window` (DescribeMetricList), as a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [duration_rule("window")]))]
    pub window: Option<String>,
    /// Region of the CloudMonitor endpoint (default: the rollout's region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// Longest wait for the answer (default 10s, at most 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [duration_rule("timeout")]))]
    pub timeout: Option<String>,
}

// ----------------------------------------------------------------- what a rollout names

/// What a rollout names (an ESA step's `analysis`, EAS `spec.analysis`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRef {
    /// The template.
    pub template_ref: TemplateRef,
    /// Values of the template's arguments (over its defaults and the built-ins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ARGS), extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"],
    ))]
    pub args: Vec<ArgValue>,
}

/// A template by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Name of the AnalysisTemplate (in the rollout's namespace) or ClusterAnalysisTemplate.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// A ClusterAnalysisTemplate rather than an AnalysisTemplate.
    #[serde(default)]
    pub cluster_scope: bool,
}

/// The value of one argument.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgValue {
    #[schemars(length(min = 1, max = 63), regex(pattern = ARG_NAME_PATTERN))]
    pub name: String,
    #[schemars(length(max = MAX_QUERY))]
    pub value: String,
}

// ----------------------------------------------------------------------------- status

/// Phase of an analysis or of one metric.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AnalysisPhase {
    /// Measurements are still due.
    #[default]
    Running,
    /// Every metric took its measurements within its limits.
    Successful,
    /// A metric had more failed measurements than its failureLimit.
    Failed,
    /// A metric had more inconclusive measurements, or provider errors in a row, than its
    /// limit: a person decides.
    Inconclusive,
    /// The analysis cannot run as written (missing template, argument or Secret, a CEL
    /// condition that does not compile): the message says what to fix.
    Error,
}

impl AnalysisPhase {
    /// Whether no more measurements will be taken.
    pub fn is_finished(self) -> bool {
        !matches!(self, AnalysisPhase::Running)
    }
}

/// Outcome of one measurement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MeasurementPhase {
    Successful,
    Failed,
    Inconclusive,
    /// The provider could not be asked or answered badly.
    Error,
}

/// Kept in `status.analysis` of a rollout; bounded (at most 10 measurements per metric).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// `AnalysisTemplate/name` or `ClusterAnalysisTemplate/name`.
    #[schemars(length(max = 300))]
    pub template: String,
    pub phase: AnalysisPhase,
    /// Why (Failed: which metric and its values; Error: what to fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_MESSAGE))]
    pub message: Option<String>,
    /// When the analysis started (RFC 3339).
    #[schemars(length(max = 64))]
    pub started_at: String,
    /// The canary step under analysis (set by the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// The version under analysis (set by the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub version: Option<String>,
    /// One entry per metric.
    #[serde(default)]
    #[schemars(length(max = MAX_METRICS))]
    pub metrics: Vec<MetricStatus>,
}

/// Progress of one metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    #[schemars(length(max = 63))]
    pub name: String,
    /// `prometheus`, `web` or `cloudMonitor`.
    #[schemars(length(max = 32))]
    pub provider: String,
    /// The query as sent, with Secret-backed arguments masked.
    #[schemars(length(max = 8192))]
    pub query: String,
    pub phase: AnalysisPhase,
    /// Why the metric is where it is (its last error, the limit reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub message: Option<String>,
    /// Measurements taken.
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub successful: i32,
    #[serde(default)]
    pub failed: i32,
    #[serde(default)]
    pub inconclusive: i32,
    #[serde(default)]
    pub errors: i32,
    #[serde(default)]
    pub consecutive_errors: i32,
    /// The most recent measurements, oldest first (at most 10).
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub measurements: Vec<Measurement>,
    /// When the next measurement is due (RFC 3339); none when the metric is finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub next_at: Option<String>,
}

/// One measurement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// When it was taken (RFC 3339).
    #[schemars(length(max = 64))]
    pub at: String,
    pub phase: MeasurementPhase,
    /// The result as JSON (shortened when long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub value: Option<String>,
    /// Why (an Error's cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub message: Option<String>,
}
