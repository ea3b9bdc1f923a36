//! `CloudAccount`: which credentials the operator uses for which namespaces, and for which
//! cloud objects. Cluster-scoped: only an administrator creates one.
//!
//! A rollout names its account (`spec.accountRef`) or gets the account marked
//! `default`; the operator's own identity is reached only through an account. See the
//! README, "Tenancy: cloud accounts".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{DNS_SUBDOMAIN_PATTERN, rule, rule_at};

/// DNS label: a namespace name.
pub const NAMESPACE_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A RAM role ARN: `acs:ram::<account id>:role/<role name>`.
pub const ROLE_ARN_PATTERN: &str = "^acs:ram::[0-9]+:role/[A-Za-z0-9._@/-]+$";
/// What STS accepts as a RoleSessionName.
pub const SESSION_NAME_PATTERN: &str = "^[A-Za-z0-9.@_-]{2,64}$";

/// Credentials, namespaces and cloud objects an administrator grants.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.alicloud.dev",
    version = "v1alpha1",
    kind = "CloudAccount",
    shortname = "cloudacct",
    category = "alicloud-rollouts",
    doc = "An Alibaba Cloud account the operator may act in, created by an administrator: where \
           its credentials come from (the operator's own identity, a RAM role assumed with it, or \
           a Secret in the operator's namespace), which namespaces may use it, and optionally \
           which cloud objects (region and name patterns per product). Rollouts name it in \
           spec.accountRef; a rollout that names none uses the account marked default.",
    printcolumn(
        name = "Default",
        type_ = "boolean",
        json_path = ".spec.default",
        description = "Used by rollouts that name no account"
    ),
    printcolumn(
        name = "Role",
        type_ = "string",
        json_path = ".spec.assumeRole.roleArn",
        description = "RAM role assumed with the operator's identity"
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
        "[has(self.operatorIdentity), has(self.assumeRole), has(self.secretRef)].filter(x, x).size() == 1",
        "set exactly one credentials source: operatorIdentity: {}, assumeRole: {roleArn: ...} or secretRef: {name: ...}",
    ),
]))]
pub struct CloudAccountSpec {
    /// Use the operator's own credentials (its environment or RRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_identity: Option<OperatorIdentity>,
    /// Assume this RAM role (STS AssumeRole) with the operator's own credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRole>,
    /// A Secret in the operator's own namespace holding `accessKeyId`, `accessKeySecret`
    /// and optionally `securityToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AccountSecretRef>,
    /// Which namespaces may use this account: those named, and those the selector matches
    /// (an empty selector `{}` matches every namespace).
    pub namespaces: AccountNamespaces,
    /// Which cloud objects rollouts may drive with this account. Left out: every object
    /// the credentials reach. Given: only objects matching a pattern of their product; a
    /// product left out here gets no object at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<AccountResources>,
    /// Used by rollouts that name no account. At most one account may be default: while
    /// two are, every rollout resolved to either of them is refused.
    #[serde(default)]
    pub default: bool,
}

/// The operator's own identity (no settings).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct OperatorIdentity {}

/// A RAM role to assume with the operator's own identity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRole {
    /// `acs:ram::<account id>:role/<role name>`.
    #[schemars(length(min = 1, max = 256), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{ROLE_ARN_PATTERN}')"),
            "roleArn must be a RAM role ARN: acs:ram::<account id>:role/<role name>",
        ),
    ]))]
    pub role_arn: String,
    /// RoleSessionName (default `alicloud-rollouts`): shows in the account's audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{SESSION_NAME_PATTERN}')"),
            "sessionName must be 2-64 letters, digits, '.', '@', '_' or '-'",
        ),
    ]))]
    pub session_name: Option<String>,
    /// Lifetime of the credentials asked of STS, 900-43200 seconds (default 3600). They
    /// are refreshed 15 minutes before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 900, max = 43200))]
    pub duration_seconds: Option<u32>,
}

/// A Secret in the operator's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct AccountSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{DNS_SUBDOMAIN_PATTERN}')"),
            "secretRef.name must be a valid Secret name",
        ),
    ]))]
    pub name: String,
}

/// The namespaces granted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule(
        "has(self.names) || has(self.selector)",
        "grant namespaces by names, by a selector, or both (selector: {} grants every namespace)",
    ),
]))]
pub struct AccountNamespaces {
    /// Namespaces granted by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.all(n, n.matches('{NAMESPACE_PATTERN}'))"),
            "namespaces.names must be namespace names",
        ),
    ]))]
    pub names: Option<Vec<NamespaceName>>,
    /// Namespaces granted by their labels; `{}` matches every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A namespace name (a DNS label).
pub type NamespaceName = BoundedName;

/// A string of at most 63 characters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(transparent)]
pub struct BoundedName(pub String);

impl JsonSchema for BoundedName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BoundedName".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "minLength": 1, "maxLength": 63})
    }
}

/// Cloud objects per product.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountResources {
    /// EAS services (EasServiceRollout: region and serviceName).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub eas_services: Option<Vec<ObjectPattern>>,
    /// ESA routines (EsaRoutineRollout: region and routine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub esa_routines: Option<Vec<ObjectPattern>>,
    /// ESA container apps (EsaContainerAppRollout: region and appId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub esa_container_apps: Option<Vec<ObjectPattern>>,
}

/// Objects whose region and name match these glob patterns (`*` any run of characters,
/// `?` one character).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    rule_at(
        "self.name.size() > 0",
        "name must not be empty: use \"*\" for any name",
        ".name",
    ),
]))]
pub struct ObjectPattern {
    /// Region pattern (default `*`): the EAS region, or the ESA site (cn-hangzhou,
    /// ap-southeast-1).
    #[serde(default = "any", skip_serializing_if = "is_any")]
    #[schemars(length(max = 64), default = "any")]
    pub region: String,
    /// Name pattern: the service name, the routine name, or the container app id.
    #[schemars(length(max = 128))]
    pub name: String,
}

fn any() -> String {
    "*".to_string()
}

fn is_any(s: &str) -> bool {
    s == "*"
}

/// A rollout's choice of account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct AccountRef {
    /// Name of the CloudAccount.
    #[schemars(length(min = 1, max = 253), extend("x-kubernetes-validations" = [
        rule(
            &format!("self.matches('{DNS_SUBDOMAIN_PATTERN}')"),
            "accountRef.name must be a CloudAccount name: lowercase letters, digits, '-' and '.'",
        ),
    ]))]
    pub name: String,
}

/// Whether `text` matches the glob `pattern`: `*` matches any run of characters (none
/// included), `?` exactly one; everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("team-a-*", "team-a-chat", true),
            ("team-a-*", "team-b-chat", false),
            ("cn-*", "cn-shanghai", true),
            ("cn-?angzhou", "cn-hangzhou", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("*-prod", "chat-prod", true),
            ("*-prod", "chat-prod-2", false),
        ] {
            assert_eq!(glob_matches(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn a_pattern_defaults_to_any_region() {
        let p: ObjectPattern = serde_json::from_value(serde_json::json!({"name": "x"})).unwrap();
        assert_eq!(p.region, "*");
    }
}
