//! Tenancy: which CloudAccount a rollout resolves to, and whether that account grants its
//! namespace and its cloud object. Pure: the accounts and the namespace's labels are
//! passed in, so every rule is a table test.
//!
//! The rules, in the order they are checked (the first that refuses is the one named):
//! 1. A rollout with `credentialsSecretRef` uses its own namespace's keys and needs no
//!    account (it is not checked here).
//! 2. `spec.accountRef` names an account: it must exist (`AccountNotFound`).
//!    Without it, the one account marked `default` is used (`NoCloudAccount` when there
//!    is none: the operator's own identity is used only through an account).
//! 3. While two accounts are marked default, every rollout resolved to either of them is
//!    refused (`DefaultAccountConflict`): which one was meant cannot be told.
//! 4. The account must grant the rollout's namespace, by name or by its label selector
//!    (`NamespaceNotGranted`).
//! 5. With `spec.resources`, the cloud object (region and name) must match a pattern of
//!    its product (`ObjectNotGranted`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use super::error::Error;
use crate::crd::{CloudAccount, ObjectPattern, glob_matches};

/// The products a CloudAccount's `resources` distinguishes, by the kind's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    EasService,
    EsaRoutine,
    EsaContainerApp,
}

impl Product {
    /// The product of a kind, from its label (`eas`, `routine`, `containerapp`).
    pub fn of_label(label: &str) -> Product {
        match label {
            "routine" => Product::EsaRoutine,
            "containerapp" => Product::EsaContainerApp,
            _ => Product::EasService,
        }
    }

    fn field(&self) -> &'static str {
        match self {
            Product::EasService => "easServices",
            Product::EsaRoutine => "esaRoutines",
            Product::EsaContainerApp => "esaContainerApps",
        }
    }

    fn noun(&self) -> &'static str {
        match self {
            Product::EasService => "EAS service",
            Product::EsaRoutine => "ESA routine",
            Product::EsaContainerApp => "ESA container app",
        }
    }
}

/// The cloud object a rollout drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub product: Product,
    pub region: String,
    pub name: String,
}

impl Target {
    /// From a kind's label and its cloud reference (`region/name[/env]`).
    pub fn from_cloud_ref(label: &str, cloud_ref: &str) -> Target {
        let mut parts = cloud_ref.splitn(3, '/');
        Target {
            product: Product::of_label(label),
            region: parts.next().unwrap_or_default().to_string(),
            name: parts.next().unwrap_or_default().to_string(),
        }
    }
}

/// What a rollout asks for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub namespace: &'a str,
    /// `spec.accountRef.name`.
    pub account: Option<&'a str>,
    pub target: &'a Target,
}

fn refused(reason: &'static str, message: String) -> Error {
    Error::AccountRefused { reason, message }
}

/// The account `request` resolves to, if it grants the request (see the module's rules).
/// `labels` are the labels of the rollout's namespace (`None` when not known yet).
pub fn resolve(
    accounts: &[Arc<CloudAccount>],
    labels: Option<&BTreeMap<String, String>>,
    request: &Request<'_>,
) -> Result<Arc<CloudAccount>, Error> {
    let defaults: Vec<&Arc<CloudAccount>> = accounts.iter().filter(|a| a.spec.default).collect();
    let account = match request.account {
        Some(name) => accounts
            .iter()
            .find(|a| a.name_any() == name)
            .ok_or_else(|| {
                refused(
                    "AccountNotFound",
                    format!(
                        "CloudAccount {name:?} (spec.accountRef) does not exist; no cloud call is \
                         made: ask an administrator for an account that grants namespace {:?}",
                        request.namespace
                    ),
                )
            })?,
        None => match defaults.first() {
            Some(a) => *a,
            None => {
                return Err(refused(
                    "NoCloudAccount",
                    "this rollout names no CloudAccount (spec.accountRef) and no account is marked \
                     default; the operator's own identity is used only through an account, so no \
                     cloud call is made: set spec.accountRef, or spec.credentialsSecretRef to use \
                     this namespace's own keys"
                        .to_string(),
                ));
            }
        },
    };
    if account.spec.default && defaults.len() > 1 {
        let names: Vec<String> = defaults.iter().map(|a| a.name_any()).collect();
        return Err(refused(
            "DefaultAccountConflict",
            format!(
                "CloudAccounts {} are all marked default (spec.default); at most one may be, so \
                 none of them is used until an administrator unmarks all but one",
                names.join(", ")
            ),
        ));
    }
    grants_namespace(account, labels, request.namespace)?;
    grants_object(account, request.target)?;
    Ok(account.clone())
}

/// Rule 4: the namespace is named, or its labels match the selector.
fn grants_namespace(
    account: &CloudAccount,
    labels: Option<&BTreeMap<String, String>>,
    namespace: &str,
) -> Result<(), Error> {
    let ns = &account.spec.namespaces;
    let by_name = ns.names.iter().flatten().any(|n| n.0 == namespace);
    if by_name {
        return Ok(());
    }
    let empty = BTreeMap::new();
    let by_label = match &ns.selector {
        None => false,
        Some(selector) => match Selector::try_from(selector.clone()) {
            Ok(s) => s.matches(labels.unwrap_or(&empty)),
            Err(e) => {
                tracing::warn!(account = %account.name_any(), error = %e, "an unusable namespace selector grants nothing");
                false
            }
        },
    };
    if by_label {
        return Ok(());
    }
    Err(refused(
        "NamespaceNotGranted",
        format!(
            "CloudAccount {:?} does not grant namespace {namespace:?}: it is neither in \
             spec.namespaces.names nor matched by spec.namespaces.selector; no cloud call is made",
            account.name_any()
        ),
    ))
}

/// Rule 5: with `resources`, the object matches a pattern of its product.
fn grants_object(account: &CloudAccount, target: &Target) -> Result<(), Error> {
    let Some(resources) = &account.spec.resources else {
        return Ok(());
    };
    let patterns: &[ObjectPattern] = match target.product {
        Product::EasService => resources.eas_services.as_deref(),
        Product::EsaRoutine => resources.esa_routines.as_deref(),
        Product::EsaContainerApp => resources.esa_container_apps.as_deref(),
    }
    .unwrap_or_default();
    let granted = patterns
        .iter()
        .any(|p| glob_matches(&p.region, &target.region) && glob_matches(&p.name, &target.name));
    if granted {
        return Ok(());
    }
    let field = target.product.field();
    let listed = if patterns.is_empty() {
        format!(
            "spec.resources.{field} lists no pattern, so it grants no {}",
            target.product.noun()
        )
    } else {
        let shown: Vec<String> = patterns
            .iter()
            .map(|p| format!("{}/{}", p.region, p.name))
            .collect();
        format!(
            "it matches none of spec.resources.{field} ({})",
            shown.join(", ")
        )
    };
    Err(refused(
        "ObjectNotGranted",
        format!(
            "CloudAccount {:?} does not grant {} {}/{}: {listed}; no cloud call is made",
            account.name_any(),
            target.product.noun(),
            target.region,
            target.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account(name: &str, spec: serde_json::Value) -> Arc<CloudAccount> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "rollouts.alicloud.dev/v1alpha1",
                "kind": "CloudAccount",
                "metadata": {"name": name},
                "spec": spec,
            }))
            .expect("an account"),
        )
    }

    fn eas(region: &str, name: &str) -> Target {
        Target {
            product: Product::EasService,
            region: region.into(),
            name: name.into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn reason(r: Result<Arc<CloudAccount>, Error>) -> String {
        match r {
            Ok(a) => format!("ok:{}", a.name_any()),
            Err(e) => e.reason(),
        }
    }

    /// Accounts, the name asked, the namespace, its labels, the object, the outcome.
    type Case<'a> = (
        &'a [Arc<CloudAccount>],
        Option<&'a str>,
        &'a str,
        Option<&'a BTreeMap<String, String>>,
        Target,
        &'a str,
    );

    #[test]
    fn every_rule_refuses_with_its_reason() {
        let team_a = account(
            "team-a",
            json!({"assumeRole": {"roleArn": "acs:ram::111:role/a"},
                   "namespaces": {"names": ["team-a"], "selector": {"matchLabels": {"team": "a"}}},
                   "resources": {"easServices": [{"region": "cn-shanghai", "name": "a-*"}]}}),
        );
        let open = account(
            "open",
            json!({"operatorIdentity": {}, "namespaces": {"selector": {}}, "default": true}),
        );
        let both = [team_a.clone(), open.clone()];
        let a_svc = eas("cn-shanghai", "a-chat");
        let ns_a = labels(&[]);
        let ns_labelled = labels(&[("team", "a")]);
        let cases: Vec<Case<'_>> = vec![
            (
                &both,
                Some("team-a"),
                "team-a",
                Some(&ns_a),
                a_svc.clone(),
                "ok:team-a",
            ),
            (
                &both,
                Some("team-a"),
                "other",
                Some(&ns_labelled),
                a_svc.clone(),
                "ok:team-a",
            ),
            (
                &both,
                Some("team-a"),
                "team-b",
                Some(&ns_a),
                a_svc.clone(),
                "NamespaceNotGranted",
            ),
            (
                &both,
                Some("team-a"),
                "team-b",
                None,
                a_svc.clone(),
                "NamespaceNotGranted",
            ),
            (
                &both,
                Some("team-a"),
                "team-a",
                None,
                eas("cn-shanghai", "b-chat"),
                "ObjectNotGranted",
            ),
            (
                &both,
                Some("team-a"),
                "team-a",
                None,
                eas("cn-beijing", "a-chat"),
                "ObjectNotGranted",
            ),
            (
                &both,
                Some("team-a"),
                "team-a",
                None,
                Target {
                    product: Product::EsaRoutine,
                    region: "cn-hangzhou".into(),
                    name: "a-x".into(),
                },
                "ObjectNotGranted",
            ),
            (
                &both,
                Some("nope"),
                "team-a",
                None,
                a_svc.clone(),
                "AccountNotFound",
            ),
            (
                &both,
                None,
                "anything",
                None,
                eas("cn-beijing", "z"),
                "ok:open",
            ),
            (
                &both[..1],
                None,
                "team-a",
                None,
                a_svc.clone(),
                "NoCloudAccount",
            ),
        ];
        for (accounts, name, ns, labels, target, want) in cases {
            let got = reason(resolve(
                accounts,
                labels,
                &Request {
                    namespace: ns,
                    account: name,
                    target: &target,
                },
            ));
            assert_eq!(got, want, "{name:?} from {ns} for {target:?}");
        }
    }

    #[test]
    fn two_defaults_refuse_both_and_name_them() {
        let one = account(
            "one",
            json!({"operatorIdentity": {}, "namespaces": {"selector": {}}, "default": true}),
        );
        let two = account(
            "two",
            json!({"operatorIdentity": {}, "namespaces": {"selector": {}}, "default": true}),
        );
        let three = account(
            "three",
            json!({"operatorIdentity": {}, "namespaces": {"selector": {}}}),
        );
        let all = [one, two, three];
        let t = eas("cn-shanghai", "s");
        for name in [None, Some("one"), Some("two")] {
            let err = resolve(
                &all,
                None,
                &Request {
                    namespace: "ns",
                    account: name,
                    target: &t,
                },
            )
            .expect_err("refused");
            assert_eq!(err.reason(), "DefaultAccountConflict");
            let shown = err.to_string();
            assert!(shown.contains("one") && shown.contains("two"), "{shown}");
        }
        // An account that is not default is not concerned.
        let ok = resolve(
            &all,
            None,
            &Request {
                namespace: "ns",
                account: Some("three"),
                target: &t,
            },
        );
        assert_eq!(reason(ok), "ok:three");
    }

    #[test]
    fn resources_without_the_product_grant_none_of_it() {
        let a = account(
            "a",
            json!({"operatorIdentity": {}, "namespaces": {"names": ["ns"]},
                   "resources": {"esaRoutines": [{"name": "*"}]}}),
        );
        let err = resolve(
            std::slice::from_ref(&a),
            None,
            &Request {
                namespace: "ns",
                account: Some("a"),
                target: &eas("cn-shanghai", "s"),
            },
        )
        .expect_err("refused");
        assert!(
            err.to_string()
                .contains("spec.resources.easServices lists no pattern"),
            "{err}"
        );
        let routine = Target {
            product: Product::EsaRoutine,
            region: "ap-southeast-1".into(),
            name: "r".into(),
        };
        assert_eq!(
            reason(resolve(
                &[a],
                None,
                &Request {
                    namespace: "ns",
                    account: Some("a"),
                    target: &routine
                }
            )),
            "ok:a"
        );
    }

    #[test]
    fn selector_expressions_and_targets() {
        let a = account(
            "a",
            json!({"operatorIdentity": {}, "namespaces": {"selector": {"matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["prod", "staging"]}]}}}),
        );
        let t = eas("cn-shanghai", "s");
        let req = Request {
            namespace: "ns",
            account: Some("a"),
            target: &t,
        };
        assert_eq!(
            reason(resolve(
                std::slice::from_ref(&a),
                Some(&labels(&[("tier", "prod")])),
                &req
            )),
            "ok:a"
        );
        assert_eq!(
            reason(resolve(&[a], Some(&labels(&[("tier", "dev")])), &req)),
            "NamespaceNotGranted"
        );
        assert_eq!(
            Target::from_cloud_ref("containerapp", "cn-hangzhou/app-1/production"),
            Target {
                product: Product::EsaContainerApp,
                region: "cn-hangzhou".into(),
                name: "app-1".into()
            }
        );
    }
}
