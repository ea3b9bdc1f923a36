//! Standard conditions, computed as plain values.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as a decision function wants it; `lastTransitionTime` is filled in by
/// [`merge`], which keeps the old time when the status did not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Desired {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Merge `desired` into `previous`: one entry per type, in the order of `desired`,
/// preserving `lastTransitionTime` when the status of a type did not change.
/// Types present in `previous` but not in `desired` are kept as they were.
pub fn merge(
    previous: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_string();
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.clone(),
                message: bounded(&d.message),
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect();
    for c in previous {
        if !out.iter().any(|o| o.type_ == c.type_) {
            out.push(c.clone());
        }
    }
    out
}

/// `message` cut to the schema's bound on condition messages, so a long cloud error can
/// never make the status write fail.
fn bounded(message: &str) -> String {
    let max = crate::crd::MAX_STATUS_MESSAGE as usize;
    if message.chars().count() <= max {
        return message.to_string();
    }
    let mut out: String = message.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The reason of condition `type_` when it is True.
pub fn reason_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.reason.as_str())
}

/// Is condition `type_` True?
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_fit_the_schema() {
        let max = crate::crd::MAX_STATUS_MESSAGE as usize;
        let long = "é".repeat(max + 10);
        let merged = super::merge(
            &[],
            &[super::Desired::new("Ready", false, "Failed", long)],
            None,
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert_eq!(merged[0].message.chars().count(), max);
        assert!(merged[0].message.ends_with('…'));
        assert_eq!(super::bounded("short"), "short");
    }

    use super::*;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).expect("valid test timestamp")
    }

    #[test]
    fn keeps_transition_time_when_status_unchanged() {
        let first = merge(
            &[],
            &[Desired::new("Ready", false, "Progressing", "1/4")],
            Some(1),
            ts(100),
        );
        let second = merge(
            &first,
            &[Desired::new("Ready", false, "Progressing", "2/4")],
            Some(2),
            ts(200),
        );
        assert_eq!(second[0].last_transition_time, Time(ts(100)));
        assert_eq!(second[0].message, "2/4");
        assert_eq!(second[0].observed_generation, Some(2));
        let third = merge(
            &second,
            &[Desired::new("Ready", true, "Completed", "done")],
            Some(2),
            ts(300),
        );
        assert_eq!(third[0].last_transition_time, Time(ts(300)));
        assert!(is_true(&third, "Ready"));
    }

    #[test]
    fn keeps_unrelated_types() {
        let prev = merge(&[], &[Desired::new("Custom", true, "X", "y")], None, ts(1));
        let next = merge(&prev, &[Desired::new("Ready", true, "R", "m")], None, ts(2));
        assert_eq!(next.len(), 2);
        assert_eq!(next[1].type_, "Custom");
    }
}
