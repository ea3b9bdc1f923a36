//! `EsaContainerAppRollout`: publishing a version of an ESA edge container app.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CanaryStep, EsaEnv, EsaRegion, SecretRef};

/// Desired published version of one edge container app environment.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "EsaContainerAppRollout",
    namespaced,
    status = "EsaContainerAppRolloutStatus",
    shortname = "esacr",
    category = "alicloud-rollouts"
)]
#[serde(rename_all = "camelCase")]
pub struct EsaContainerAppRolloutSpec {
    /// Edge container app id (app-...).
    pub app_id: String,
    /// Version to publish (ver-...).
    pub version_id: String,
    /// `staging` or `production` (sent as `prod`).
    pub env: EsaEnv,
    /// ESA endpoint region (default cn-hangzhou).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<EsaRegion>,
    /// Publish to this share of traffic, 1-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<i32>,
    /// Publish to these regions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    /// With `regions`: release fully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_release: Option<bool>,
    /// Start publishing at this time (RFC 3339, UTC, e.g. 2026-06-05T16:00:00Z).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    /// Operator-driven percentage progression (instead of `percentage`/`regions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<CanaryStep>>,
    /// Steps up to this index (0-based) are approved by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_step: Option<i32>,
    /// Hold the current step.
    #[serde(default)]
    pub paused: bool,
    /// Roll the version back (RollbackEdgeContainerAppVersion).
    #[serde(default)]
    pub rollback: bool,
    /// Secret with credentials for this resource; otherwise the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EsaContainerAppRolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Summary: Progressing, Paused, Completed, RolledBack, Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
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
    pub baseline_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_percentage: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_percentage: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_type: Option<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
