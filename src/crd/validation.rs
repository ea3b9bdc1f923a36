//! Validation shared by the schemas of the three kinds, and the pure parsers that read the
//! same formats on the controller side.
//!
//! The API server enforces every rule here (OpenAPI constraints plus CEL
//! `x-kubernetes-validations`), so a controller only ever sees specs that passed them. The
//! regular expressions are RE2 syntax (what CEL's `matches` uses) written without
//! backslashes so they can be embedded in CEL string literals as they are. Every string or
//! list a rule looks at has a `maxLength`/`maxItems`, which keeps the rules within the API
//! server's CEL cost budget.

use std::time::Duration;

use serde_json::{Value, json};

/// A duration as the cloud writes it: a whole number of seconds, minutes or hours.
pub const DURATION_PATTERN: &str = "^[0-9]+(s|m|h)$";

/// A replica count ("0", "3") or a percentage from 0% to 100% ("50%"). Counts have at most
/// [`MAX_COUNT_DIGITS`] digits, so every count the API server admits fits the parser's type.
pub const INT_OR_PERCENT_PATTERN: &str = "^(0|[1-9][0-9]{0,8}|([0-9]|[1-9][0-9]|100)%)$";

/// A positive replica count ("1", "3") or a percentage from 1% to 100% ("25%").
pub const POSITIVE_INT_OR_PERCENT_PATTERN: &str = "^([1-9][0-9]{0,8}|([1-9]|[1-9][0-9]|100)%)$";

/// Most digits of a replica count (999,999,999 replicas, far beyond any service).
pub const MAX_COUNT_DIGITS: usize = 9;

/// A Kubernetes object name that is a DNS subdomain (what a Secret name must be).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// An Alibaba Cloud region id such as `cn-shanghai` or `ap-southeast-1`.
pub const REGION_ID_PATTERN: &str = "^[a-z]+(-[a-z0-9]+)+$";

/// A UTC timestamp in the form the edge container app API takes: `yyyy-MM-ddTHH:mm:ssZ`.
pub const UTC_TIMESTAMP_PATTERN: &str =
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$";

/// Most steps a progression may have.
pub const MAX_STEPS: u32 = 20;

/// One CEL rule with the message the user sees when it fails.
pub fn rule(rule: &str, message: &str) -> Value {
    json!({ "rule": rule, "message": message })
}

/// A rule reported against `field_path` (relative to the object carrying the rule), so the
/// error points at the field to fix rather than at its parent.
pub fn rule_at(rule: &str, message: &str, field_path: &str) -> Value {
    json!({ "rule": rule, "message": message, "fieldPath": field_path })
}

/// The transition rule that makes a field immutable once the object exists.
pub fn immutable(field: &str, what: &str) -> Value {
    rule(
        "self == oldSelf",
        &format!("{field} is immutable: delete and recreate the resource to target another {what}"),
    )
}

/// Rules for an operator-driven list of steps (`canary.steps`, container app `steps`).
pub fn steps_rules(field: &str) -> Value {
    json!([rule(
        "self.map(s, s.percentage).isSorted() && self.all(a, self.exists_one(b, b.percentage == a.percentage))",
        &format!(
            "{field} percentages must be strictly increasing, e.g. 10, 50, 100 (no step may repeat or lower the previous one)"
        ),
    )])
}

/// A duration the CRD's grammar does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (use one number and one unit, e.g. 30s, 5m, 1h, 90m)")]
pub struct DurationError(pub String);

/// Parse a duration written as [`DURATION_PATTERN`] ("30s", "5m", "1h"): the one duration
/// grammar of every spec field (step pauses, batch intervals), so the operator accepts
/// exactly what the API server admits. Anything else, or a value that does not fit in a
/// `Duration`, is an error (never a panic).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    parse_duration_opt(text).ok_or_else(|| DurationError(text.to_string()))
}

fn parse_duration_opt(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let seconds = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// A replica count or a percentage of the replicas, as EAS's `Partition` and `BatchSize` take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    /// A number of replicas.
    Count(u32),
    /// A percentage of the replicas, 0-100.
    Percent(u8),
}

impl IntOrPercent {
    /// Parse a value written as [`INT_OR_PERCENT_PATTERN`] ("3", "50%").
    pub fn parse(text: &str) -> Option<IntOrPercent> {
        // Digits without a leading zero ("05" is refused, as by the schema), at most
        // MAX_COUNT_DIGITS of them.
        let number = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_COUNT_DIGITS
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s == "0" || !s.starts_with('0'))
        };
        match text.strip_suffix('%') {
            Some(p) if number(p) => {
                let n: u8 = p.parse().ok()?;
                (n <= 100).then_some(IntOrPercent::Percent(n))
            }
            Some(_) => None,
            None if number(text) => text.parse().ok().map(IntOrPercent::Count),
            None => None,
        }
    }

    /// The number of replicas out of `total` (percentages round up, as EAS and Kubernetes
    /// do for surge-like values).
    pub fn replicas_of(&self, total: u32) -> u32 {
        match *self {
            IntOrPercent::Count(n) => n,
            IntOrPercent::Percent(p) => {
                let scaled = u64::from(total) * u64::from(p);
                u32::try_from(scaled.div_ceil(100)).unwrap_or(u32::MAX)
            }
        }
    }
}

impl std::fmt::Display for IntOrPercent {
    /// The wire form: "3" or "50%".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrPercent::Count(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_each_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "", "s", "5", "5d", "1h30m", "-5m", "5 m", "5M", "1.5h", "+5s", "５m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn int_or_percent_parses_counts_and_percentages() {
        assert_eq!(IntOrPercent::parse("0"), Some(IntOrPercent::Count(0)));
        assert_eq!(IntOrPercent::parse("12"), Some(IntOrPercent::Count(12)));
        assert_eq!(IntOrPercent::parse("0%"), Some(IntOrPercent::Percent(0)));
        assert_eq!(IntOrPercent::parse("25%"), Some(IntOrPercent::Percent(25)));
        assert_eq!(
            IntOrPercent::parse("100%"),
            Some(IntOrPercent::Percent(100))
        );
        for bad in [
            "", "%", "101%", "-1", "1.5", "50 %", "x%", "5%%", "05%", "007",
        ] {
            assert_eq!(IntOrPercent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn percentages_of_replicas_round_up() {
        assert_eq!(IntOrPercent::Percent(25).replicas_of(10), 3);
        assert_eq!(IntOrPercent::Percent(50).replicas_of(4), 2);
        assert_eq!(IntOrPercent::Percent(0).replicas_of(4), 0);
        assert_eq!(IntOrPercent::Percent(100).replicas_of(7), 7);
        assert_eq!(IntOrPercent::Count(3).replicas_of(10), 3);
    }

    /// The schema's regular expressions and the parsers above must agree: whatever the API
    /// server admits, the controller can read, and nothing else.
    #[test]
    fn schema_patterns_agree_with_the_parsers() {
        let duration = regex::Regex::new(DURATION_PATTERN).unwrap();
        for text in [
            "30s", "5m", "1h", "0s", "", "5", "5d", "1h30m", "-5m", "5 m", "1.5h",
        ] {
            assert_eq!(
                duration.is_match(text),
                parse_duration(text).is_ok(),
                "{text:?}"
            );
        }
        let int_or_percent = regex::Regex::new(INT_OR_PERCENT_PATTERN).unwrap();
        let positive = regex::Regex::new(POSITIVE_INT_OR_PERCENT_PATTERN).unwrap();
        for text in [
            "0",
            "1",
            "12",
            "0%",
            "1%",
            "9%",
            "10%",
            "99%",
            "100%",
            "101%",
            "200%",
            "%",
            "",
            "-1",
            "1.5",
            "50 %",
            "05%",
            "05",
            "x",
            "999999999",
            "1000000000",
            "4294967296",
            "999999999999",
        ] {
            let parsed = IntOrPercent::parse(text);
            assert_eq!(int_or_percent.is_match(text), parsed.is_some(), "{text:?}");
            let is_positive = matches!(
                parsed,
                Some(IntOrPercent::Count(1..)) | Some(IntOrPercent::Percent(1..))
            );
            assert_eq!(positive.is_match(text), is_positive, "{text:?}");
        }
    }

    #[test]
    fn other_patterns_accept_real_values_only() {
        let region = regex::Regex::new(REGION_ID_PATTERN).unwrap();
        for ok in [
            "cn-shanghai",
            "ap-southeast-1",
            "cn-hangzhou-finance",
            "us-west-1",
        ] {
            assert!(region.is_match(ok), "{ok}");
        }
        for bad in ["", "shanghai", "CN-Shanghai", "cn_shanghai", "cn-", "-cn"] {
            assert!(!region.is_match(bad), "{bad}");
        }
        let secret = regex::Regex::new(DNS_SUBDOMAIN_PATTERN).unwrap();
        for ok in ["eas-creds", "a", "team.creds-1"] {
            assert!(secret.is_match(ok), "{ok}");
        }
        for bad in ["", "Creds", "-creds", "creds-", "creds_1", "a..b"] {
            assert!(!secret.is_match(bad), "{bad}");
        }
        let time = regex::Regex::new(UTC_TIMESTAMP_PATTERN).unwrap();
        for ok in ["2026-06-05T16:00:00Z", "2026-12-31T23:59:59Z"] {
            assert!(time.is_match(ok), "{ok}");
        }
        for bad in [
            "2026-06-05T16:00:00+08:00",
            "2026-06-05 16:00:00Z",
            "2026-13-05T16:00:00Z",
            "2026-06-05T24:00:00Z",
            "2026-06-05T16:00:00.123Z",
            "2026-06-05",
        ] {
            assert!(!time.is_match(bad), "{bad}");
        }
    }
}
