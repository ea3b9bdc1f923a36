//! `EsaRoutineRollout`: the code-version split of an ESA edge routine in one environment.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::account::AccountRef;
use super::common::{
    CanaryStep, EsaEnv, EsaRegion, MAX_STATUS_MESSAGE, MAX_STATUS_TEXT, SecretRef,
    conditions_schema, esa_region_schema,
};
use super::validation::{DURATION_PATTERN, MAX_STEPS, immutable, rule, rule_at, steps_rules};

/// Desired code-version split of one routine environment.
// Printer columns repeat `type_ = "string"`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "EsaRoutineRollout",
    namespaced,
    status = "EsaRoutineRolloutStatus",
    shortname = "esarr",
    category = "alicloud-rollouts",
    doc = "The code-version split of one ESA edge routine in one environment: either a fixed \
           split over one or two code versions, or a stepped canary from a stable to a canary \
           version that the operator advances, pauses, gates and rolls back.",
    printcolumn(
        name = "Routine",
        type_ = "string",
        json_path = ".spec.routine",
        description = "Routine name"
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
        name = "Split",
        type_ = "string",
        json_path = ".status.split",
        description = "Split the cloud reports, e.g. v2:10,v1:90"
    ),
    printcolumn(
        name = "Step",
        type_ = "integer",
        json_path = ".status.currentStep",
        description = "Index of the current canary step"
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
        "has(self.codeVersions) != has(self.canary)",
        "set exactly one of codeVersions (a fixed split) or canary (a stepped rollout from stableVersion to canaryVersion)",
    ),
    rule_at(
        "!self.rollback || has(self.canary)",
        "rollback needs canary: it puts 100% back on canary.stableVersion (with codeVersions, edit the split instead)",
        ".rollback",
    ),
]))]
pub struct EsaRoutineRolloutSpec {
    /// Routine name. Immutable.
    #[schemars(length(min = 1, max = 128), extend("x-kubernetes-validations" = [
        immutable("routine", "routine"),
    ]))]
    pub routine: String,
    /// `staging` or `production`. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [immutable("env", "environment")]))]
    pub env: EsaEnv,
    /// ESA endpoint region: cn-hangzhou (default) or ap-southeast-1. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "esa_region_schema")]
    pub region: Option<EsaRegion>,
    /// A fixed split: 1 or 2 code versions whose percentages sum to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2), extend("x-kubernetes-validations" = [
        rule(
            "self.size() == 1 ? self[0].percentage == 100 : self[0].percentage + self[1].percentage == 100",
            "codeVersions percentages must add up to 100 (one version takes 100; two versions split it, e.g. 90 and 10)",
        ),
        rule(
            "self.size() < 2 || self[0].codeVersion != self[1].codeVersion",
            "codeVersions must name two different code versions",
        ),
    ]))]
    pub code_versions: Option<Vec<CodeVersionWeight>>,
    /// An operator-driven progression from a stable to a canary version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<RoutineCanary>,
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
    /// Put 100% back on `canary.stableVersion` (only with `canary`).
    #[serde(default)]
    pub rollback: bool,
    /// Secret with credentials for this resource; otherwise the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// The CloudAccount (cluster-scoped) whose credentials this rollout uses; without it,
    /// and without `credentialsSecretRef`, the account marked default. The account must
    /// grant this namespace and this cloud object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,
    /// How long the rollout may go without progress while progress is expected ("30s",
    /// "10m", "1h"; default 10m): then it turns Stalled with reason
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeVersionWeight {
    /// A code version of the routine, e.g. 1723599747213377175.
    #[schemars(length(min = 1, max = 64))]
    pub code_version: String,
    /// Share of traffic on this version, 1-100.
    #[schemars(range(min = 1, max = 100))]
    pub percentage: i32,
}

/// A stepped rollout from `stableVersion` to `canaryVersion`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule_at(
        "self.stableVersion != self.canaryVersion",
        "canary.canaryVersion must differ from canary.stableVersion",
        ".canaryVersion",
    ),
    rule_at(
        "!has(self.promotedStep)",
        "canary.promotedStep was replaced by canary.promotion, which names the version it approves: remove promotedStep and set promotion: {version: <canaryVersion>, step: <index>}",
        ".promotedStep",
    ),
    rule_at(
        "!has(self.promotion) || self.promotion.step < size(self.steps)",
        "canary.promotion.step must be the index of one of the steps (0 up to the number of steps - 1)",
        ".promotion.step",
    ),
]))]
pub struct RoutineCanary {
    /// Version that serves the rest of the traffic, and all of it after a rollback.
    #[schemars(length(min = 1, max = 64))]
    pub stable_version: String,
    /// Version being rolled out.
    #[schemars(length(min = 1, max = 64))]
    pub canary_version: String,
    /// Percentages on the canary version, strictly increasing. After the last step the canary
    /// gets 100%.
    #[schemars(length(min = 1, max = MAX_STEPS), extend("x-kubernetes-validations" = steps_rules("canary.steps")))]
    pub steps: Vec<CanaryStep>,
    /// Manual approval of the gates of one canary version: a step without `pause` holds
    /// until `promotion.version` is `canaryVersion` and `promotion.step` reaches its index.
    /// Set it with `kubectl patch` and leave it out of manifests kept in Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<RoutinePromotion>,
    /// Removed: an approval that did not name its version carried over to the next
    /// canary. Refused; use `promotion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub promoted_step: Option<i32>,
}

/// An approval of a routine canary's manual gates, for one canary version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutinePromotion {
    /// The canary version approved (`canary.canaryVersion`). An approval naming another
    /// version approves nothing, so a new canary version starts with every gate closed.
    #[schemars(length(min = 1, max = 64))]
    pub version: String,
    /// Gates up to this step index (0-based) are approved.
    #[schemars(range(min = 0, max = 100))]
    pub step: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EsaRoutineRolloutStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Summary: Progressing, Paused, Completed, RolledBack, Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub phase: Option<String>,
    /// Index of the current canary step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<i32>,
    /// When the current step's split was first seen in the cloud (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub step_started_at: Option<String>,
    /// When the next step is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub next_step_at: Option<String>,
    /// When the operator sent the current step's percentage after the step before it
    /// finished; cleared once the cloud shows it (RFC 3339). It tells an advance not yet
    /// seen from a move down to a step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub step_advanced_at: Option<String>,
    /// The cloud's deployment id for this env.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub deployment_id: Option<String>,
    /// The split the cloud reports for this env.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub code_versions: Vec<CodeVersionWeight>,
    /// Split rendered for printing, e.g. "v2:10,v1:90".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_STATUS_TEXT))]
    pub split: Option<String>,
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
    /// ("region/routine/env").
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
