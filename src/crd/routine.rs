//! `EsaRoutineRollout`: the code-version split of an ESA edge routine in one environment.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CanaryStep, EsaEnv, EsaRegion, SecretRef};

/// Desired code-version split of one routine environment.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "EsaRoutineRollout",
    namespaced,
    status = "EsaRoutineRolloutStatus",
    shortname = "esarr",
    category = "alicloud-rollouts"
)]
#[serde(rename_all = "camelCase")]
pub struct EsaRoutineRolloutSpec {
    /// Routine name.
    pub routine: String,
    /// `staging` or `production`.
    pub env: EsaEnv,
    /// ESA endpoint region (default cn-hangzhou).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<EsaRegion>,
    /// A fixed split: 1 or 2 code versions whose percentages sum to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_versions: Option<Vec<CodeVersionWeight>>,
    /// An operator-driven progression from a stable to a canary version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<RoutineCanary>,
    /// Hold the current step.
    #[serde(default)]
    pub paused: bool,
    /// Put 100% back on `canary.stableVersion`.
    #[serde(default)]
    pub rollback: bool,
    /// Secret with credentials for this resource; otherwise the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeVersionWeight {
    pub code_version: String,
    /// 1-100.
    pub percentage: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutineCanary {
    /// Version that serves the rest of the traffic, and all of it after a rollback.
    pub stable_version: String,
    /// Version being rolled out.
    pub canary_version: String,
    /// Percentages on the canary version, increasing. After the last step the canary gets 100%.
    pub steps: Vec<CanaryStep>,
    /// Steps up to this index (0-based) are approved by hand: a step without `pause` holds
    /// until this reaches its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_step: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EsaRoutineRolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Summary: Progressing, Paused, Completed, RolledBack, Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Index of the current canary step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<i32>,
    /// When the current step's split was first seen in the cloud (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
    /// When the next step is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_at: Option<String>,
    /// The cloud's deployment id for this env.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The split the cloud reports for this env.
    #[serde(default)]
    pub code_versions: Vec<CodeVersionWeight>,
    /// Split rendered for printing, e.g. "v2:10,v1:90".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
