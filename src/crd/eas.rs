//! `EasServiceRollout`: a PAI-EAS service rollout (partition or batch strategy).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, SecretRef};

/// Desired rollout of one PAI-EAS service.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "EasServiceRollout",
    namespaced,
    status = "EasServiceRolloutStatus",
    shortname = "easro",
    category = "alicloud-rollouts"
)]
#[serde(rename_all = "camelCase")]
pub struct EasServiceRolloutSpec {
    /// EAS region (the ClusterId in API paths), e.g. cn-shanghai.
    pub region: String,
    /// Name of the EAS service.
    pub service_name: String,
    /// How new versions roll out: exactly one of `partition` or `batch`.
    pub strategy: EasStrategy,
    /// Suspend progress without changing the strategy.
    #[serde(default)]
    pub paused: bool,
    /// `Retain` (default) leaves the cloud rollout when this resource is deleted; `Delete`
    /// deletes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Secret with credentials for this resource; otherwise the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// EAS service config (JSON object). When it changes the operator pushes it with
    /// UpdateService, which starts a new version rolled out under `strategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_config: Option<serde_json::Value>,
}

/// Exactly one of the two strategies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EasStrategy {
    /// Replicas kept on the OLD version: an integer ("2") or a percentage ("50%").
    /// Lowering it advances the rollout, "0" completes it, raising it rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Roll out in batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchStrategy>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchStrategy {
    /// Replicas updated per batch: an integer or a percentage. Default "25%".
    #[serde(default = "default_batch_size")]
    pub size: String,
    /// Wait between batches ("60s", "5m", "1h").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

fn default_batch_size() -> String {
    "25%".to_string()
}

/// Observed state, mirrored from DescribeServiceRollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EasServiceRolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Cloud phase: Pending, Running, Paused, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Strategy the cloud reports, e.g. "partition=2" or "batch=25%/5m".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// When the cloud starts the next batch (as the cloud reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_batch_start_time: Option<String>,
    /// Hash of the last `serviceConfig` pushed with UpdateService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_service_config_hash: Option<String>,
    /// The Paused flag last sent to the cloud (DescribeServiceRollout does not report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_paused: Option<bool>,
    /// Cloud identity this resource manages, recorded at first contact ("region/service").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_ref: Option<String>,
    /// RequestId of the last cloud call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_id: Option<String>,
    /// Human-readable summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
