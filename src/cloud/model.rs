//! Wire types of the EAS and ESA APIs, shared by the client and the simulator.
//!
//! Field names are the cloud's (PascalCase). Every response field is optional or
//! defaulted, so an answer with fields missing or added still parses.

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- common

/// `{RequestId, Message}`: the answer of most mutations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ack {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The error body both API styles send with 4xx/5xx.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub host_id: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

// ---------------------------------------------------------------- STS

/// STS `GetCallerIdentity`: who the credentials of a call belong to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct CallerIdentity {
    #[serde(default)]
    pub request_id: String,
    /// The Alibaba Cloud account the caller belongs to (every kind of caller has one).
    #[serde(default)]
    pub account_id: String,
    /// `Account`, `RAMUser` or `AssumedRoleUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
}

/// STS `AssumeRole`: temporary credentials of a RAM role. `Debug` prints no secret.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub credentials: Option<AssumedCredentials>,
}

/// The `Credentials` of an AssumeRole answer.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AssumedCredentials {
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default)]
    pub access_key_secret: String,
    #[serde(default)]
    pub security_token: String,
    /// `2026-05-08T17:00:00Z`.
    #[serde(default)]
    pub expiration: String,
}

impl std::fmt::Debug for AssumeRoleResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRoleResponse")
            .field("request_id", &self.request_id)
            .field(
                "access_key_id",
                &self.credentials.as_ref().map(|c| c.access_key_id.as_str()),
            )
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------- EAS (ROA)

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PartitionConfig {
    pub partition: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct BatchConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// Body of CreateServiceRollout and UpdateServiceRollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRolloutRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RolloutStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchConfig>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RolloutStatus {
    /// Pending, Running, Paused, Completed, Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// "2026/05/08 16:10:56" as the cloud formats it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_batch_start_time: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Rollout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RolloutStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RolloutStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeServiceRolloutResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// DescribeService answers with the service object itself (plus RequestId).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_instance: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_instance: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_instance: Option<i64>,
    /// The service config as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// The service's labels (UpdateServiceLabel / DeleteServiceLabel), as a list of
    /// `{LabelKey, LabelValue}`; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<ServiceLabel>>,
}

impl Service {
    /// The value of label `key`, if the service carries it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .as_deref()?
            .iter()
            .find(|l| l.label_key.as_deref() == Some(key))
            .and_then(|l| l.label_value.as_deref())
    }
}

/// One service label as DescribeService lists it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceLabel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_value: Option<String>,
}

/// UpdateServiceLabel's body: the labels to add or overwrite (the others stay).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateServiceLabelRequest {
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `UpdateType` query parameter of UpdateService.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpdateType {
    #[default]
    Merge,
    Replace,
}

impl UpdateType {
    pub fn as_str(&self) -> &'static str {
        match self {
            UpdateType::Merge => "merge",
            UpdateType::Replace => "replace",
        }
    }
}

/// What UpdateService with `UpdateType=merge` does to the service config: an RFC 7396
/// JSON merge patch (objects merge key by key, `null` removes a key, anything else
/// replaces).
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_available: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ListServiceVersionsResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub versions: Vec<ServiceVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
}

// ---------------------------------------------------------------- ESA (RPC)

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct CodeVersionSplit {
    pub code_version: String,
    pub percentage: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRoutineCodeDeploymentRequest {
    pub name: String,
    /// `staging` or `production`.
    pub env: String,
    /// Always `percentage` today.
    pub strategy: String,
    pub code_versions: Vec<CodeVersionSplit>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRoutineCodeDeploymentResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(default)]
    pub code_versions: Vec<CodeVersionSplit>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct DeployedCodeVersion {
    pub code_version: String,
    pub percentage: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct CodeDeploy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default)]
    pub code_versions: Vec<DeployedCodeVersion>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RoutineEnv {
    pub env: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_deploy: Option<CodeDeploy>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct GetRoutineResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub envs: Vec<RoutineEnv>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_related_record: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRoutineCodeVersionsRequest {
    pub name: String,
    pub page_number: Option<i64>,
    /// 1-20.
    pub page_size: Option<i64>,
    pub search_key_word: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RoutineCodeVersion {
    pub code_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ListRoutineCodeVersionsResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub code_versions: Vec<RoutineCodeVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishEdgeContainerAppVersionRequest {
    pub app_id: String,
    pub version_id: String,
    /// `prod` or `staging`.
    pub publish_env: String,
    /// `percentage` or `region`.
    pub publish_type: Option<String>,
    pub percentage: Option<i32>,
    pub regions: Option<Vec<String>>,
    pub full_release: Option<bool>,
    /// `yyyy-MM-ddTHH:mm:ssZ`, UTC.
    pub start_time: Option<String>,
    pub remarks: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AppRegions {
    #[serde(default)]
    pub region: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AppStatus {
    /// publishing, published, rollbacking, rollbacked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_status: Option<String>,
    /// undeploy, deploying, deployed, undeploying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishing_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_line_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_percentage: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_percentage: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_release: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<AppRegions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub un_deploy_time: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct GetEdgeContainerAppStatusResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_status: Option<AppStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollbackEdgeContainerAppVersionRequest {
    pub app_id: String,
    pub version_id: String,
    pub percentage: Option<i32>,
    pub used_percent: Option<bool>,
    pub remarks: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListEdgeContainerAppVersionsRequest {
    pub app_id: String,
    pub page_number: Option<i64>,
    pub page_size: Option<i64>,
    pub order_key: Option<String>,
    pub order_type: Option<String>,
    pub search_key: Option<String>,
    pub search_type: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AppVersion {
    pub version_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// created, creating, failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_time: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ListEdgeContainerAppVersionsResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub versions: Vec<AppVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
}

/// Wire values the operator reads or sends, named once.
pub mod wire {
    /// Phases of an EAS rollout (DescribeServiceRollout's `Status.Phase`).
    pub const EAS_PHASE_RUNNING: &str = "Running";
    pub const EAS_PHASE_PAUSED: &str = "Paused";
    pub const EAS_PHASE_COMPLETED: &str = "Completed";
    pub const EAS_PHASE_FAILED: &str = "Failed";
    /// The only `Strategy` CreateRoutineCodeDeployment accepts.
    pub const ROUTINE_STRATEGY_PERCENTAGE: &str = "percentage";
    /// `PublishType` of PublishEdgeContainerAppVersion and GetEdgeContainerAppStatus.
    pub const PUBLISH_TYPE_PERCENTAGE: &str = "percentage";
    pub const PUBLISH_TYPE_REGION: &str = "region";
    /// `PublishStatus` of GetEdgeContainerAppStatus.
    pub const PUBLISH_STATUS_PUBLISHING: &str = "publishing";
    pub const PUBLISH_STATUS_PUBLISHED: &str = "published";
    pub const PUBLISH_STATUS_ROLLBACKING: &str = "rollbacking";
    pub const PUBLISH_STATUS_ROLLBACKED: &str = "rollbacked";
}

// ---------------------------------------------------------------- CloudMonitor

/// DescribeMetricLast / DescribeMetricList (CloudMonitor `cms` 2019-01-01): one metric of a
/// namespace (`acs_pai_eas` for the EAS service metrics), for the resources `Dimensions`
/// names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescribeMetricRequest {
    pub namespace: String,
    pub metric_name: String,
    /// Seconds (`60`); the metric's reporting period when absent.
    pub period: Option<String>,
    /// Milliseconds since the epoch, or `yyyy-MM-dd HH:mm:ss`.
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// A JSON string: `[{"serviceName":"llm-chat"}]`.
    pub dimensions: Option<String>,
    pub express: Option<String>,
    pub length: Option<i64>,
    pub next_token: Option<String>,
}

/// The answer of DescribeMetricLast and DescribeMetricList. CloudMonitor can answer HTTP
/// 200 with `Success: false`: see [`DescribeMetricResponse::points`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeMetricResponse {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// A JSON string holding an array of datapoints (objects with `timestamp`, the
    /// dimensions, and statistics such as `Average`, `Maximum`, `Minimum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints: Option<String>,
}

impl DescribeMetricResponse {
    /// The datapoints, or why there are none to trust: `Success: false` (with its code and
    /// message) or a `Datapoints` that is not a JSON array of objects.
    pub fn points(&self) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
        if self.success == Some(false) {
            return Err(format!(
                "CloudMonitor answered {}: {}",
                self.code.as_deref().unwrap_or("an error"),
                self.message.as_deref().unwrap_or_default()
            ));
        }
        let raw = match self.datapoints.as_deref().map(str::trim) {
            None | Some("") => return Ok(Vec::new()),
            Some(raw) => raw,
        };
        let items: Vec<serde_json::Value> = serde_json::from_str(raw)
            .map_err(|e| format!("Datapoints is not a JSON array: {e}"))?;
        items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::Object(m) => Ok(m),
                other => Err(format!("a datapoint is not an object: {other}")),
            })
            .collect()
    }
}
