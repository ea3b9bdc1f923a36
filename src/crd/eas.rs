//! `EasServiceRollout`: a PAI-EAS service rollout (partition or batch strategy).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::account::AccountRef;
use super::common::{
    DeletionPolicy, MAX_STATUS_MESSAGE, MAX_STATUS_TEXT, SecretRef, conditions_schema,
};
use super::validation::{
    DURATION_PATTERN, INT_OR_PERCENT_PATTERN, POSITIVE_INT_OR_PERCENT_PATTERN, REGION_ID_PATTERN,
    immutable, rule, rule_at,
};

/// Desired rollout of one PAI-EAS service.
// Printer columns repeat `type_ = "string"`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "EasServiceRollout",
    namespaced,
    status = "EasServiceRolloutStatus",
    shortname = "easro",
    category = "alicloud-rollouts",
    doc = "The progressive rollout of one PAI-EAS service: how new versions of the service replace \
           the old one (a partition of replicas kept on the old version, or batches), whether the \
           rollout is paused, and optionally the service config whose changes start new versions.",
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".spec.serviceName",
        description = "EAS service name"
    ),
    printcolumn(
        name = "Region",
        type_ = "string",
        json_path = ".spec.region",
        priority = "1",
        description = "EAS region"
    ),
    printcolumn(
        name = "Strategy",
        type_ = "string",
        json_path = ".status.cloudStrategy",
        description = "Strategy the cloud reports, e.g. partition=2 or batch=25%/5m"
    ),
    printcolumn(
        name = "Paused",
        type_ = "boolean",
        json_path = ".spec.paused",
        priority = "1",
        description = "Whether progress is suspended"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Cloud rollout phase"
    ),
    printcolumn(
        name = "Updated",
        type_ = "integer",
        json_path = ".status.updatedReplicas",
        description = "Replicas on the new version"
    ),
    printcolumn(
        name = "Total",
        type_ = "integer",
        json_path = ".status.totalReplicas",
        description = "All replicas"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.configVersion",
        priority = "1",
        description = "Version of the declared serviceConfig (what promotion.version names)"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Ready condition"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule(
        "!has(self.accountRef) || !has(self.credentialsSecretRef)",
        "set at most one of accountRef (a CloudAccount an administrator grants) and credentialsSecretRef (this namespace's own keys)",
    ),
    rule_at(
        "!has(self.serviceConfig) || !has(self.strategy.partition) || !self.strategy.partition.matches('^0%?$')",
        "with serviceConfig, strategy.partition is where every new version starts and must keep replicas on the old version: to complete one version set promotion: {version: <status.configVersion>, partition: \"0\"}; to replace every replica at once use the batch strategy",
        ".strategy.partition",
    ),
    rule_at(
        "!has(self.promotion) || (has(self.strategy.partition) && has(self.serviceConfig))",
        "promotion only applies to the partition strategy with a serviceConfig (it names a version of serviceConfig): set both or remove promotion",
        ".promotion",
    ),
]))]
pub struct EasServiceRolloutSpec {
    /// EAS region (the ClusterId in API paths), e.g. cn-shanghai. Immutable.
    #[schemars(length(min = 1, max = 64), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{REGION_ID_PATTERN}')"),
            "region must be an Alibaba Cloud region id such as cn-shanghai",
        ),
        immutable("region", "region"),
    ]))]
    pub region: String,
    /// Name of the EAS service. Immutable.
    #[schemars(length(min = 1, max = 128), extend("x-kubernetes-validations" = [
        rule(
            "self.matches('^[A-Za-z0-9_-]+$')",
            "serviceName must be an EAS service name: letters, digits, '_' and '-' only",
        ),
        immutable("serviceName", "service"),
    ]))]
    pub service_name: String,
    /// How new versions roll out: exactly one of `partition` or `batch`.
    pub strategy: EasStrategy,
    /// Suspend progress without changing the strategy.
    #[serde(default)]
    pub paused: bool,
    /// Retry token: change it (e.g. add 1) to have the operator look again now after
    /// Degraded or Stalled: the wait for a person and the backoff are cleared, and a mutation
    /// held as not visible is sent again. `kubectl alicloud-rollouts retry` increments it.
    /// Leave it out of manifests kept in Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub retry: Option<i64>,
    /// `Retain` (default) leaves the cloud rollout when this resource is deleted; `Delete`
    /// deletes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Secret with credentials for this resource; otherwise the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// The CloudAccount (cluster-scoped) whose credentials this rollout uses; without it,
    /// and without `credentialsSecretRef`, the account marked default. The account must
    /// grant this namespace and this cloud object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,
    /// Take the service over from the owner its ownership marker names (the service label
    /// `alicloud-rollouts.owner`, value `<cluster id>/<namespace>/<kind>/<name>`): the
    /// operator does so only while the marker carries exactly this value, so the same
    /// manifest applied by two clusters never makes them take the service from each other.
    /// An intent: leave it out of manifests kept in Git (see docs/ownership.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub adopt_from: Option<String>,
    /// How long the rollout may go without progress while progress is expected ("30s",
    /// "10m", "1h"; default 30m): then it turns Stalled with reason
    /// ProgressDeadlineExceeded and a Warning Event. Manual gates, pauses, timed steps and
    /// batch intervals do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{DURATION_PATTERN}')"),
            "progressDeadline must be a whole number of seconds, minutes or hours, such as \"90s\", \"10m\" or \"1h\"",
        ),
        rule(
            "!self.matches('^0+(s|m|h)$')",
            "progressDeadline must be longer than zero, such as \"10m\"; leave it out for the kind's default",
        ),
    ]))]
    pub progress_deadline: Option<String>,
    /// EAS service config: the fields of the EAS service config reference, each bounded
    /// (docs/custom-resources.md, Bounds). When it changes the operator pushes it with
    /// UpdateService (merge), which starts a new version rolled out under `strategy`;
    /// fields left out keep their value in the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "service_config")]
    pub service_config: Option<serde_json::Value>,
    /// Partition strategy with a `serviceConfig`: the partition approved for ONE version of
    /// the service config, named by `version` (`status.configVersion`). While `version`
    /// names the declared `serviceConfig`, this partition replaces `strategy.partition`;
    /// an approval naming another version approves nothing, so every new version starts at
    /// `strategy.partition`. Set it with `kubectl patch` and leave it out of manifests kept
    /// in Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<EasPromotion>,
    /// A background analysis run while each new version of `serviceConfig` rolls out:
    /// when it fails, the version is rolled back (the partition raised to every replica, so
    /// all of them serve the old version); when it is inconclusive, the rollout pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::analysis::AnalysisRef>,
    /// Webhooks told about this rollout's transitions (step reached, paused, analysis
    /// failed, rolled back, completed); at most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub notifications: Vec<super::common::Notification>,
}

/// An approval of a partition for one version of the service config.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EasPromotion {
    /// The version approved: `status.configVersion` of the `serviceConfig` it approves (the
    /// first 12 hex digits of the SHA-256 of its canonical JSON).
    #[schemars(extend("x-kubernetes-validations" = [
        rule(
            "self.matches('^[0-9a-f]{12}$')",
            "promotion.version must be a configVersion as status shows it: 12 hex digits such as \"3f9a1c0e7b2d\"",
        ),
    ]))]
    #[schemars(length(max = 12))]
    pub version: String,
    /// Replicas kept on the old version for that version: an integer or a percentage;
    /// "0" completes it.
    #[schemars(length(max = 12), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{INT_OR_PERCENT_PATTERN}')"),
            "promotion.partition must be a replica count such as \"2\" or a percentage from 0% to 100% such as \"50%\"",
        ),
    ]))]
    pub partition: String,
}

/// Exactly one of the two strategies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule(
        "has(self.partition) != has(self.batch)",
        "strategy must set exactly one of partition (replicas kept on the old version) or batch",
    ),
]))]
pub struct EasStrategy {
    /// Replicas kept on the OLD version: an integer ("2") or a percentage ("50%").
    /// Lowering it advances the rollout, "0" completes it, raising it rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{INT_OR_PERCENT_PATTERN}')"),
            "partition must be a replica count such as \"2\" (at most 999999999) or a percentage from 0% to 100% such as \"50%\"",
        ),
    ]))]
    pub partition: Option<String>,
    /// Roll out in batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchStrategy>,
}

/// Batches of replicas replaced one after another.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchStrategy {
    /// Replicas updated per batch: an integer or a percentage. Default "25%".
    #[serde(default = "default_batch_size")]
    #[schemars(length(max = 12), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{POSITIVE_INT_OR_PERCENT_PATTERN}')"),
            "batch.size must be a replica count of at least 1 such as \"2\" (at most 999999999) or a percentage from 1% to 100% such as \"25%\"",
        ),
    ]))]
    pub size: String,
    /// Wait between batches ("60s", "5m", "1h").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{DURATION_PATTERN}')"),
            "batch.interval must be a whole number of seconds, minutes or hours, such as \"60s\", \"5m\" or \"1h\"",
        ),
    ]))]
    pub interval: Option<String>,
}

/// Schema of `serviceConfig`: the EAS service config, typed and bounded (see
/// [`super::eas_config`]).
fn service_config(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    match super::eas_config::service_config_schema() {
        serde_json::Value::Object(map) => map.into(),
        _ => schemars::Schema::default(),
    }
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
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Cloud phase: Pending, Running, Paused, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub phase: Option<String>,
    /// Strategy the cloud reports, e.g. "partition=2" or "batch=25%/5m".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub cloud_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub current_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub update_revision: Option<String>,
    /// When the cloud starts the next batch (as the cloud reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub next_batch_start_time: Option<String>,
    /// The version of the declared `serviceConfig` (12 hex digits of its SHA-256): what
    /// `promotion.version` names to approve a partition for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub config_version: Option<String>,
    /// Hash of the last `serviceConfig` pushed with UpdateService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub applied_service_config_hash: Option<String>,
    /// The leaf paths (JSON pointers) of the `serviceConfig` last pushed: a field removed
    /// from the spec later is removed from the service (sent as null in the merge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(max = MAX_STATUS_TEXT)))]
    pub applied_service_config_keys: Vec<String>,
    /// The rollout's revision when the current `serviceConfig` was pushed, until the cloud
    /// reports another one: until then the rollout is not Ready, whatever its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub revision_before_push: Option<String>,
    /// The Paused flag last sent to the cloud (DescribeServiceRollout does not report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_paused: Option<bool>,
    /// While a person is needed (Stalled): when the operator looks at the cloud again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub next_check_at: Option<String>,
    /// Since when progress has been expected and not seen (cleared while holding on purpose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub last_progress_at: Option<String>,
    /// A version the operator rolled back on its own, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<super::common::Aborted>,
    /// The metric analysis of the current step or version: its verdict, the queries and
    /// the recent measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::analysis::AnalysisStatus>,
    /// The `spec.retry` token the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_retry: Option<i64>,
    /// Mutations the cloud accepted and does not show yet (not sent again meanwhile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub mutations_in_flight: Vec<super::common::MutationInFlight>,
    /// Cloud identity this resource manages, recorded before its first mutation
    /// ("region/serviceName").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub cloud_ref: Option<String>,
    /// The Alibaba Cloud account that object belongs to (STS GetCallerIdentity of the
    /// credentials in use), recorded with `cloudRef`; credentials that come to belong to
    /// another account make no change there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub cloud_account: Option<String>,
    /// The ownership marker this resource found or set on the service (the value of its
    /// `alicloud-rollouts.owner` label), recorded before its first mutation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub cloud_owner: Option<String>,
    /// RequestId of the last cloud call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub last_request_id: Option<String>,
    /// Human-readable summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_MESSAGE))]
    pub message: Option<String>,
}
