//! Types shared by the three kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{DNS_SUBDOMAIN_PATTERN, DURATION_PATTERN, immutable, rule};

/// Reference to a Secret in the resource's namespace holding Alibaba Cloud credentials
/// (keys `accessKeyId`, `accessKeySecret`, optional `securityToken`). Without it the
/// operator uses its own credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret (a lowercase DNS subdomain name).
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{DNS_SUBDOMAIN_PATTERN}')"),
            "credentialsSecretRef.name must be a valid Secret name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        ),
    ]))]
    pub name: String,
}

/// What happens to the cloud object when the Kubernetes resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the cloud object untouched.
    #[default]
    Retain,
    /// Delete the cloud object.
    Delete,
}

/// ESA endpoint region: `cn-hangzhou` (the China site) or `ap-southeast-1` (the
/// international site).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EsaRegion {
    #[default]
    #[serde(rename = "cn-hangzhou")]
    CnHangzhou,
    #[serde(rename = "ap-southeast-1")]
    ApSoutheast1,
}

/// Schema of the ESA kinds' `region`: one of the two sites, defaulted to cn-hangzhou by the
/// API server (so it is always set on stored objects) and immutable.
pub fn esa_region_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "ESA endpoint region: cn-hangzhou (the China site, default) or ap-southeast-1 (the international site). Immutable.",
        "type": "string",
        "enum": ["cn-hangzhou", "ap-southeast-1"],
        "default": "cn-hangzhou",
        "x-kubernetes-validations": [immutable("region", "ESA site")],
    })
}

impl EsaRegion {
    pub fn as_str(&self) -> &'static str {
        match self {
            EsaRegion::CnHangzhou => "cn-hangzhou",
            EsaRegion::ApSoutheast1 => "ap-southeast-1",
        }
    }
}

/// ESA environment: `staging` or `production`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EsaEnv {
    Staging,
    Production,
}

impl EsaEnv {
    /// Spelling used by the routine APIs.
    pub fn routine_wire(&self) -> &'static str {
        match self {
            EsaEnv::Staging => "staging",
            EsaEnv::Production => "production",
        }
    }
    /// Spelling used by the edge container app APIs.
    pub fn app_wire(&self) -> &'static str {
        match self {
            EsaEnv::Staging => "staging",
            EsaEnv::Production => "prod",
        }
    }
}

/// One step of an operator-driven percentage progression.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Share of traffic on the new version at this step, 1-100.
    #[schemars(range(min = 1, max = 100))]
    pub percentage: i32,
    /// How long to hold this step before moving on ("30s", "5m", "1h"). Without it the
    /// step is a manual gate: it holds until `promotedStep` reaches its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{DURATION_PATTERN}')"),
            "pause must be a whole number of seconds, minutes or hours, such as \"30s\", \"5m\" or \"1h\"",
        ),
    ]))]
    pub pause: Option<String>,
    /// A metric analysis run while at this step: the step is left only once it is
    /// Successful (with `pause`, once the pause has elapsed too; on a manual gate, before
    /// the approval counts). Failed rolls the version back; Inconclusive pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::analysis::AnalysisRef>,
}

/// Where a rollout sends its transitions (`spec.notifications[]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `dingTalk` (a DingTalk custom robot, signed when the Secret has a `secret`) or
    /// `json` (a generic JSON document).
    pub format: NotificationFormat,
    /// Secret in the resource's namespace holding the webhook: key `url` (the webhook URL,
    /// for DingTalk with its access token) and, for DingTalk, optional key `secret` (the
    /// robot's signing secret). Neither is ever written to status, Events or logs.
    pub secret_ref: SecretRef,
    /// Which transitions to send: stepReached, paused, analysisFailed, rolledBack,
    /// completed. Empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 5),
        inner(
            length(max = 32),
            regex(pattern = r"^(stepReached|paused|analysisFailed|rolledBack|completed)$")
        )
    )]
    pub events: Vec<String>,
}

/// Format of a notification.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NotificationFormat {
    #[serde(rename = "dingTalk")]
    DingTalk,
    #[serde(rename = "json")]
    Json,
}

/// A mutation the cloud accepted and has not shown yet in its reads: the same call is not
/// sent again within the operator's grace period (`--mutation-grace`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MutationInFlight {
    /// The cloud action, e.g. `UpdateServiceRollout`.
    #[schemars(length(max = 64))]
    pub action: String,
    /// What was sent, as its Event says it.
    #[schemars(length(max = 1024))]
    pub request: String,
    /// When the cloud accepted it (RFC 3339).
    #[schemars(length(max = 64))]
    pub accepted_at: String,
    /// Whether it has been sent a second time already.
    #[serde(default)]
    pub resent: bool,
}

/// What the operator records when it rolled a version back on its own (a progress
/// deadline, later an analysis): it does not push that version again until the spec names
/// another one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aborted {
    /// The declared version that was rolled back.
    #[schemars(length(max = 128))]
    pub version: String,
    /// Why, as a condition reason (e.g. ProgressDeadlineExceeded).
    #[schemars(length(max = 128))]
    pub reason: String,
    /// When (RFC 3339).
    #[schemars(length(max = 64))]
    pub at: String,
}

/// Standard condition types.
pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_PROGRESSING: &str = "Progressing";
pub const CONDITION_PAUSED: &str = "Paused";
pub const CONDITION_DEGRADED: &str = "Degraded";
/// kstatus's abnormal-true condition: the rollout cannot make progress without a person.
pub const CONDITION_STALLED: &str = "Stalled";
/// kstatus's other abnormal-true condition: the operator is still working toward the
/// declared state (moving, holding at a step, or waiting for the cloud to show it).
pub const CONDITION_RECONCILING: &str = "Reconciling";

/// The condition list type used in every status (list map keyed by `type`).
pub type Conditions = Vec<Condition>;

/// Longest text the operator writes in a status field (ids, revisions, phases, splits).
pub const MAX_STATUS_TEXT: u32 = 1024;
/// Longest status or condition message (as for Kubernetes' own conditions).
pub const MAX_STATUS_MESSAGE: u32 = 32768;
/// Most conditions in a status.
pub const MAX_CONDITIONS: u32 = 16;

/// Schema of `status.conditions`: the standard condition list (a list map keyed by
/// `type`), with the bounds Kubernetes' own condition type declares.
pub fn conditions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Standard conditions (Ready, Progressing, Paused, Degraded), one per type.",
        "type": "array",
        "default": [],
        "maxItems": MAX_CONDITIONS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "type": {"type": "string", "maxLength": 316, "description": "Condition type, e.g. Ready."},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "reason": {"type": "string", "maxLength": 1024, "description": "CamelCase reason of the last transition."},
                "message": {"type": "string", "maxLength": MAX_STATUS_MESSAGE, "description": "Human-readable details."},
                "lastTransitionTime": {"type": "string", "format": "date-time", "maxLength": 64},
                "observedGeneration": {"type": "integer", "format": "int64"},
            },
        },
    })
}
