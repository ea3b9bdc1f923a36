//! Arguments: which value each `{{args.NAME}}` takes, substitution, and masking of the
//! values that come from Secrets.
//!
//! Precedence, lowest first: the template's default `value`, the caller's built-ins, the
//! rollout's `analysis.args`. An argument declared with `valueFrom` always takes its Secret
//! value, and a rollout may not set it (a Secret-backed value is never in a spec).

use std::collections::BTreeMap;

use crate::crd::analysis::{ArgValue, Argument};

/// What a masked Secret value is shown as.
pub const MASK: &str = "***";

/// The resolved arguments of one analysis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    values: BTreeMap<String, String>,
    /// Names of the arguments whose value came from a Secret.
    secret: Vec<String>,
    /// Other Secret values (auth headers) to mask in messages.
    hidden: Vec<String>,
}

impl Args {
    /// Build from plain values and Secret values (tests and [`resolve`]).
    pub fn new(values: BTreeMap<String, String>, secret: Vec<String>) -> Self {
        Args {
            values,
            secret,
            hidden: Vec::new(),
        }
    }

    /// Also mask `value` (a Secret value that is no argument, e.g. an auth header's).
    pub fn hide(&mut self, value: &str) {
        if !value.is_empty() {
            self.hidden.push(value.to_string());
        }
    }

    /// The value of one argument.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The same arguments with every Secret value replaced by [`MASK`]: what status shows.
    pub fn masked(&self) -> Args {
        let mut values = self.values.clone();
        for name in &self.secret {
            if let Some(v) = values.get_mut(name) {
                *v = MASK.to_string();
            }
        }
        Args {
            values,
            secret: self.secret.clone(),
            hidden: self.hidden.clone(),
        }
    }

    /// Replace every Secret value found in `text` (e.g. an error that quotes a URL).
    pub fn mask_text(&self, text: &str) -> String {
        let mut secrets: Vec<&str> = self
            .secret
            .iter()
            .filter_map(|n| self.get(n))
            .chain(self.hidden.iter().map(String::as_str))
            .filter(|v| !v.is_empty())
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in secrets {
            out = out.replace(s, MASK);
        }
        out
    }
}

/// Where a `valueFrom` Secret key is: `(secret name, key)`.
pub type SecretKey = (String, String);

/// The Secret keys the template's arguments need.
pub fn secret_keys(declared: &[Argument]) -> Vec<SecretKey> {
    declared
        .iter()
        .filter_map(|a| a.value_from.as_ref())
        .map(|f| (f.secret_key_ref.name.clone(), f.secret_key_ref.key.clone()))
        .collect()
}

/// Resolve every argument. `secrets` holds the values of [`secret_keys`].
pub fn resolve(
    declared: &[Argument],
    given: &[ArgValue],
    builtins: &BTreeMap<String, String>,
    secrets: &BTreeMap<SecretKey, String>,
) -> Result<Args, String> {
    let mut values = builtins.clone();
    let mut secret = Vec::new();
    for arg in declared {
        if let Some(from) = &arg.value_from {
            let r = &from.secret_key_ref;
            let key = (r.name.clone(), r.key.clone());
            let value = secrets.get(&key).ok_or_else(|| {
                format!(
                    "argument {}: Secret {} has no key {}",
                    arg.name, r.name, r.key
                )
            })?;
            if given.iter().any(|g| g.name == arg.name) {
                return Err(format!(
                    "argument {} comes from a Secret in the template: the rollout cannot set it",
                    arg.name
                ));
            }
            values.insert(arg.name.clone(), value.clone());
            secret.push(arg.name.clone());
        } else if let Some(v) = &arg.value {
            values.entry(arg.name.clone()).or_insert_with(|| v.clone());
        }
    }
    for g in given {
        if !secret.contains(&g.name) {
            values.insert(g.name.clone(), g.value.clone());
        }
    }
    if let Some(missing) = declared.iter().find(|a| !values.contains_key(&a.name)) {
        return Err(format!(
            "argument {} has no value: set it in the rollout's analysis.args or give it a default value in the template",
            missing.name
        ));
    }
    Ok(Args::new(values, secret))
}

/// Replace each `{{args.NAME}}` (spaces inside the braces allowed) in `text`. An unknown
/// argument, or a placeholder that is not `args.NAME`, is an error naming it.
pub fn substitute(text: &str, args: &Args) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed \"{{{{\" in {text:?}"))?;
        let inner = after[..end].trim();
        let name = inner.strip_prefix("args.").ok_or_else(|| {
            format!("{{{{{inner}}}}} is not an argument: write {{{{args.NAME}}}}")
        })?;
        let value = args.get(name).ok_or_else(|| {
            let known: Vec<&str> = args.values.keys().map(String::as_str).collect();
            format!(
                "{{{{args.{name}}}}} names no argument (known: {})",
                known.join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::analysis::{ArgValueFrom, SecretKeyRef};

    fn arg(name: &str, value: Option<&str>) -> Argument {
        Argument {
            name: name.into(),
            value: value.map(Into::into),
            value_from: None,
        }
    }

    fn secret_arg(name: &str) -> Argument {
        Argument {
            name: name.into(),
            value: None,
            value_from: Some(ArgValueFrom {
                secret_key_ref: SecretKeyRef {
                    name: "prom".into(),
                    key: "token".into(),
                },
            }),
        }
    }

    fn given(name: &str, value: &str) -> ArgValue {
        ArgValue {
            name: name.into(),
            value: value.into(),
        }
    }

    fn builtins() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("service".to_string(), "shop".to_string()),
            ("version".to_string(), "v2".to_string()),
        ])
    }

    fn secrets() -> BTreeMap<SecretKey, String> {
        BTreeMap::from([(("prom".into(), "token".into()), "s3cr3t".to_string())])
    }

    #[test]
    fn rollout_args_win_over_builtins_which_win_over_defaults() {
        let declared = [arg("service", Some("default")), arg("window", Some("5m"))];
        let args = resolve(&declared, &[given("window", "1m")], &builtins(), &secrets()).unwrap();
        assert_eq!(args.get("service"), Some("shop"));
        assert_eq!(args.get("window"), Some("1m"));
        assert_eq!(args.get("version"), Some("v2"));
    }

    #[test]
    fn a_declared_argument_without_any_value_is_an_error_naming_it() {
        let err = resolve(&[arg("threshold", None)], &[], &builtins(), &secrets()).unwrap_err();
        assert!(err.contains("argument threshold has no value"), "{err}");
    }

    #[test]
    fn secret_arguments_are_masked_and_cannot_be_set_by_the_rollout() {
        let declared = [secret_arg("token")];
        let args = resolve(&declared, &[], &builtins(), &secrets()).unwrap();
        assert_eq!(args.get("token"), Some("s3cr3t"));
        assert_eq!(args.masked().get("token"), Some(MASK));
        assert_eq!(args.masked().get("service"), Some("shop"));
        assert_eq!(
            args.mask_text("GET http://x/?t=s3cr3t failed"),
            "GET http://x/?t=*** failed"
        );
        let err = resolve(&declared, &[given("token", "x")], &builtins(), &secrets()).unwrap_err();
        assert!(err.contains("comes from a Secret"), "{err}");
        let err = resolve(&declared, &[], &builtins(), &BTreeMap::new()).unwrap_err();
        assert!(err.contains("Secret prom has no key token"), "{err}");
    }

    #[test]
    fn substitution_replaces_each_placeholder_and_names_unknown_ones() {
        let args = resolve(&[], &[], &builtins(), &secrets()).unwrap();
        let q = "rate(x{service=\"{{args.service}}\",v=\"{{ args.version }}\"}[1m])";
        assert_eq!(
            substitute(q, &args).unwrap(),
            "rate(x{service=\"shop\",v=\"v2\"}[1m])"
        );
        assert_eq!(
            substitute("no placeholder", &args).unwrap(),
            "no placeholder"
        );
        let err = substitute("{{args.nope}}", &args).unwrap_err();
        assert!(
            err.contains("{{args.nope}} names no argument (known: service, version)"),
            "{err}"
        );
        let err = substitute("{{service}}", &args).unwrap_err();
        assert!(err.contains("{{service}} is not an argument"), "{err}");
        assert!(
            substitute("{{args.service", &args)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
