//! `EsaContainerAppRollout`: publishing a version of an ESA edge container app.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::account::AccountRef;
use super::common::{
    CanaryStep, EsaEnv, EsaRegion, MAX_STATUS_MESSAGE, MAX_STATUS_TEXT, SecretRef,
    conditions_schema, esa_region_schema,
};
use super::validation::{
    DURATION_PATTERN, MAX_STEPS, UTC_TIMESTAMP_PATTERN, immutable, rule, rule_at, steps_rules,
};

/// Desired published version of one edge container app environment.
// Printer columns repeat `type_ = "string"`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "EsaContainerAppRollout",
    namespaced,
    status = "EsaContainerAppRolloutStatus",
    shortname = "esacr",
    category = "alicloud-rollouts",
    doc = "The published version of one ESA edge container app in one environment: publish a \
           version to a share of traffic, to chosen regions, or through operator-driven steps, \
           and roll it back.",
    printcolumn(
        name = "App",
        type_ = "string",
        json_path = ".spec.appId",
        description = "Edge container app id"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.versionId",
        description = "Version being published"
    ),
    printcolumn(
        name = "Env",
        type_ = "string",
        json_path = ".spec.env",
        description = "staging or production"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Progressing, Paused, Completed, RolledBack or Degraded"
    ),
    printcolumn(
        name = "Publish Status",
        type_ = "string",
        json_path = ".status.publishStatus",
        description = "publishing, published, rollbacking or rollbacked"
    ),
    printcolumn(
        name = "Percent",
        type_ = "integer",
        json_path = ".status.publishPercentage",
        description = "Share of traffic on the published version"
    ),
    printcolumn(
        name = "Step",
        type_ = "integer",
        json_path = ".status.currentStep",
        priority = "1",
        description = "Index of the current step"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = "1",
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
    rule(
        "[has(self.percentage), has(self.regions), has(self.steps)].filter(x, x).size() <= 1",
        "set at most one of percentage, regions or steps (none publishes to 100% of traffic)",
    ),
    rule_at(
        "!has(self.fullRelease) || has(self.regions)",
        "fullRelease only applies to a publish by regions: set regions or remove fullRelease",
        ".fullRelease",
    ),
    rule_at(
        "!has(self.rollbackPercentage) || self.rollback",
        "rollbackPercentage only applies with rollback: true: set rollback or remove rollbackPercentage",
        ".rollbackPercentage",
    ),
    rule_at(
        "!has(self.promotedStep)",
        "promotedStep was replaced by promotion, which names the version it approves: remove promotedStep and set promotion: {versionId: <versionId>, step: <index>}",
        ".promotedStep",
    ),
    rule_at(
        "!has(self.promotion) || has(self.steps)",
        "promotion only applies with steps: add steps or remove promotion",
        ".promotion",
    ),
    rule_at(
        "!has(self.promotion) || !has(self.steps) || self.promotion.step < size(self.steps)",
        "promotion.step must be the index of one of the steps (0 up to the number of steps - 1)",
        ".promotion.step",
    ),
]))]
pub struct EsaContainerAppRolloutSpec {
    /// Edge container app id (app-...). Immutable.
    #[schemars(length(min = 1, max = 64), extend("x-kubernetes-validations" = [
        immutable("appId", "app"),
    ]))]
    pub app_id: String,
    /// Version to publish (ver-...).
    #[schemars(length(max = 64), extend("x-kubernetes-validations" = [
        rule(
            "self.startsWith('ver-') && size(self) > 4",
            "versionId must be an edge container app version id starting with ver-, e.g. ver-8796263716165123",
        ),
    ]))]
    pub version_id: String,
    /// `staging` or `production` (sent as `prod`). Immutable.
    #[schemars(extend("x-kubernetes-validations" = [immutable("env", "environment")]))]
    pub env: EsaEnv,
    /// ESA endpoint region: cn-hangzhou (default) or ap-southeast-1. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "esa_region_schema")]
    pub region: Option<EsaRegion>,
    /// Publish to this share of traffic, 1-100. At most one of `percentage`, `regions` and
    /// `steps`; with none of them the version is published to 100%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percentage: Option<i32>,
    /// Publish to these regions (region names as GetEdgeContainerDeployRegions lists them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        inner(length(min = 1, max = 64)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub regions: Option<Vec<String>>,
    /// With `regions`: release fully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_release: Option<bool>,
    /// Start publishing at this time (RFC 3339, UTC, e.g. 2026-06-05T16:00:00Z).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{UTC_TIMESTAMP_PATTERN}')"),
            "startTime must be a UTC time in RFC 3339 form ending in Z, e.g. 2026-06-05T16:00:00Z",
        ),
    ]))]
    pub start_time: Option<String>,
    /// Note recorded with the publish (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub remarks: Option<String>,
    /// Operator-driven percentage progression (instead of `percentage`/`regions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_STEPS), extend("x-kubernetes-validations" = steps_rules("steps")))]
    pub steps: Option<Vec<CanaryStep>>,
    /// Manual approval of the gates of one version: a step without `pause` holds until
    /// `promotion.versionId` is `versionId` and `promotion.step` reaches its index. Set it
    /// with `kubectl patch` and leave it out of manifests kept in Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<AppPromotion>,
    /// Removed: an approval that did not name its version carried over to the next
    /// version. Refused; use `promotion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub promoted_step: Option<i32>,
    /// Hold the current step.
    #[serde(default)]
    pub paused: bool,
    /// Retry token: change it (e.g. add 1) to have the operator look again now after
    /// Degraded or Stalled: the wait for a person and the backoff are cleared, and a mutation
    /// held as not visible is sent again. `kubectl alicloud-rollouts retry` increments it.
    /// Leave it out of manifests kept in Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub retry: Option<i64>,
    /// Roll the version back (RollbackEdgeContainerAppVersion).
    #[serde(default)]
    pub rollback: bool,
    /// With `rollback`: leave the version returned to on this share of traffic, 1-100
    /// (`UsedPercent` with `Percentage`); without it, on all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub rollback_percentage: Option<i32>,
    /// Secret with credentials for this resource; otherwise the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// The CloudAccount (cluster-scoped) whose credentials this rollout uses; without it,
    /// and without `credentialsSecretRef`, the account marked default. The account must
    /// grant this namespace and this cloud object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,
    /// How long the rollout may go without progress while progress is expected ("30s",
    /// "10m", "1h"; default 20m): then it turns Stalled with reason
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
    /// With progressDeadline: also roll the version back when the deadline passes, and do
    /// not push that version again until the spec names another one.
    #[serde(default)]
    pub progress_deadline_abort: bool,
    /// Webhooks told about this rollout's transitions (step reached, paused, analysis
    /// failed, rolled back, completed); at most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub notifications: Vec<super::common::Notification>,
}

/// An approval of a container app's manual step gates, for one version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPromotion {
    /// The version approved (`spec.versionId`). An approval naming another version
    /// approves nothing, so a new version starts with every gate closed.
    #[schemars(length(min = 1, max = 64))]
    pub version_id: String,
    /// Gates up to this step index (0-based) are approved.
    #[schemars(range(min = 0, max = 100))]
    pub step: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EsaContainerAppRolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Summary: Progressing, Paused, Completed, RolledBack, Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub phase: Option<String>,
    /// publishing, published, rollbacking, rollbacked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub publish_status: Option<String>,
    /// undeploy, deploying, deployed, undeploying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub deploy_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub publishing_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub deployed_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub baseline_version: Option<String>,
    /// The version `rollback: true` returns to: the last baseline the cloud reported that
    /// was not `spec.versionId` (kept after a full release makes ours the baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub rollback_version: Option<String>,
    /// A publish sent with a future `startTime` (version, environment, target and start),
    /// until that time: not sent again meanwhile, whatever else in the spec is edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub scheduled_publish: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_percentage: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_percentage: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub publish_type: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 512), inner(length(max = MAX_STATUS_TEXT)))]
    pub regions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub step_started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub next_step_at: Option<String>,
    /// When the operator sent the current step's percentage after the step before it
    /// finished; cleared once the cloud shows it (RFC 3339). It tells an advance not yet
    /// seen from a move down to a step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub step_advanced_at: Option<String>,
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
    /// ("region/appId/env").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub cloud_ref: Option<String>,
    /// The Alibaba Cloud account that object belongs to (STS GetCallerIdentity of the
    /// credentials in use), recorded with `cloudRef`; credentials that come to belong to
    /// another account make no change there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub cloud_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub last_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_MESSAGE))]
    pub message: Option<String>,
}
