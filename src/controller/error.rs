//! Errors of a reconcile, each knowing how the controller should react to it.

use std::time::Duration;

use crate::cloud::{CloudError, ErrorKind};

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cloud call failed; the error says whether it is worth retrying.
    #[error("{action}: {source}")]
    Cloud {
        /// The cloud action that failed (e.g. `CreateServiceRollout`).
        action: &'static str,
        #[source]
        source: CloudError,
    },
    /// The spec cannot be acted upon as it is; waits for a change of the spec.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The resource's credentials Secret could not be used.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The resource's credentials now belong to another account than the one whose object
    /// it manages: nothing is changed there until a person sets the credentials back (or
    /// replaces the resource).
    #[error(
        "this resource manages {object} in account {recorded}, but its credentials now belong to account {now}; \
         nothing is changed in account {now}: restore the credentials of account {recorded}, or delete this \
         resource and create a new one for account {now}"
    )]
    AccountChanged {
        object: String,
        recorded: String,
        now: String,
    },
    /// Another resource in the cluster already manages the cloud object this one names.
    #[error(
        "{object} is already managed by {kind} {owner}; this resource makes no call for it: delete one of \
         the two, or point this one at another object"
    )]
    AlreadyManaged {
        kind: String,
        object: String,
        /// namespace/name of the owner.
        owner: String,
    },
    /// The cloud object carries another owner's ownership marker (another cluster, or
    /// another resource): no mutation until a person decides (see `controller::marker`).
    #[error("{}", owned_elsewhere(object, owner, adopt.as_deref()))]
    OwnedElsewhere {
        object: String,
        /// The marker found: `<cluster id>/<namespace>/<kind>/<name>`.
        owner: String,
        /// `spec.adoptFrom`, when it names another owner.
        adopt: Option<String>,
    },
    /// `deletionPolicy: Delete` while the cloud rollout is in progress: deleting it now
    /// would change what the service serves (EAS finishes whatever is in flight at once),
    /// so the deletion waits.
    #[error(
        "deletionPolicy Delete: the rollout of {object} is in progress ({state}); deleting it now \
         would replace the remaining replicas at once, so this resource is deleted only once \
         the rollout is Completed. Let it complete, or set deletionPolicy: Retain to delete this \
         resource now and leave the rollout as it is in the cloud"
    )]
    DeletionWaitsForRollout { object: String, state: String },
    /// A cleanup that failed was reported; the deletion is not done (the finalizer stays),
    /// and is tried again after `after`.
    #[error("the cleanup is not done; tried again in {after:?}")]
    CleanupNotDone { after: Duration },
    /// A Kubernetes API call failed (status write, finalizer patch...).
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer machinery failed around the apply/cleanup branches.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// The cloud account the rollout resolves to refuses it (see [`super::tenancy`]): no
    /// cloud call is made; an administrator's change (or the rollout's) is awaited.
    #[error("{message}")]
    AccountRefused {
        /// `NoCloudAccount`, `AccountNotFound`, `NamespaceNotGranted`, ...
        reason: &'static str,
        message: String,
    },
    /// This replica does not hold the leader-election Lease (any more): it sends nothing
    /// to the cloud; the leader does.
    #[error("not the leader: no cloud mutation is sent from this replica")]
    NotLeader,
}

fn owned_elsewhere(object: &str, owner: &str, adopt: Option<&str>) -> String {
    let adopt = match adopt {
        Some(a) => format!(" (spec.adoptFrom names {a}, not the owner marked now)"),
        None => String::new(),
    };
    format!(
        "{object} is owned by {owner} (its ownership marker, label {}); this resource makes no \
         change to it{adopt}. To take it over, set spec.adoptFrom: \"{owner}\"; otherwise delete \
         this resource or point it at another object",
        super::marker::MARKER_KEY
    )
}

/// How to react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// The spec (or the input the cloud refused) must change: say why in a Degraded
    /// condition and wait for a spec change.
    WaitForChange,
    /// Something outside the spec needs a person (a cloud object not found, a permission,
    /// credentials): say so (Degraded, Stalled) and look again on a slow timer, so that a
    /// fix made elsewhere is picked up without touching the spec.
    NeedsPerson,
    /// Retry with a short jittered backoff that grows per object.
    Retry,
    /// Retry, backing off harder.
    RetryThrottled,
}

impl Error {
    pub fn cloud(action: &'static str, source: CloudError) -> Self {
        Error::Cloud { action, source }
    }

    pub fn reaction(&self) -> Reaction {
        match self {
            Error::Cloud { source, .. } => match source.kind() {
                ErrorKind::Terminal if input_refused(source) => Reaction::WaitForChange,
                ErrorKind::Terminal => Reaction::NeedsPerson,
                ErrorKind::Transient => Reaction::Retry,
                ErrorKind::Throttled => Reaction::RetryThrottled,
            },
            Error::InvalidSpec(_) | Error::AccountRefused { .. } => Reaction::WaitForChange,
            Error::Credentials(_)
            | Error::AccountChanged { .. }
            | Error::AlreadyManaged { .. }
            | Error::OwnedElsewhere { .. }
            | Error::DeletionWaitsForRollout { .. } => Reaction::NeedsPerson,
            Error::Kube(_)
            | Error::Finalizer(_)
            | Error::NotLeader
            | Error::CleanupNotDone { .. } => Reaction::Retry,
        }
    }

    /// A short stable label: the metric label, and the condition/Event reason.
    pub fn reason(&self) -> String {
        match self {
            Error::Cloud { source, .. } => source.code().to_string(),
            Error::InvalidSpec(_) => "InvalidSpec".into(),
            Error::AccountRefused { reason, .. } => (*reason).into(),
            Error::Credentials(_) => "CredentialsUnavailable".into(),
            Error::AccountChanged { .. } => "AccountChanged".into(),
            Error::AlreadyManaged { .. } => "AlreadyManaged".into(),
            Error::OwnedElsewhere { .. } => super::marker::REASON_OWNED_ELSEWHERE.into(),
            Error::DeletionWaitsForRollout { .. } => "DeletionWaitsForRollout".into(),
            Error::CleanupNotDone { .. } => "CleanupNotDone".into(),
            Error::Kube(_) => "KubernetesApi".into(),
            Error::Finalizer(_) => "Finalizer".into(),
            Error::NotLeader => "NotLeader".into(),
        }
    }

    /// The cloud RequestId, when the cloud answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Cloud { source, .. } => source.request_id(),
            _ => None,
        }
    }

    /// What the cloud asked us to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Cloud { source, .. } => source.retry_after(),
            Error::CleanupNotDone { after } => Some(*after),
            _ => None,
        }
    }

    /// A cloud mutation that may have taken effect though it failed: it counts as in flight
    /// (the next reconcile reads the cloud before sending it again).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Error::Cloud { source, .. } if source.outcome_unknown())
    }
}

/// Did the cloud refuse this exact input (so only a spec change can help), rather than
/// miss an object, a permission or a credential (which can be fixed elsewhere)?
fn input_refused(err: &CloudError) -> bool {
    let code = err.code();
    let elsewhere = err.is_not_found()
        || matches!(err.http_status(), Some(401 | 403))
        || [
            "AccessKey",
            "Forbidden",
            "NoPermission",
            "Unauthorized",
            "Signature",
            "SecurityToken",
        ]
        .iter()
        .any(|c| code.contains(c))
        || matches!(err, CloudError::Credentials(_));
    !elsewhere
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner,
            F::AddFinalizer(k) | F::RemoveFinalizer(k) => Error::Kube(k),
            other => Error::Finalizer(other.to_string()),
        }
    }
}

/// Backoff before the next attempt after `attempt` consecutive failures (1-based), before
/// jitter: exponential from `base`, capped at `cap`; throttling starts four times higher.
pub fn backoff(reaction: Reaction, attempt: u32, base: Duration, cap: Duration) -> Duration {
    let start = match reaction {
        Reaction::RetryThrottled => base.saturating_mul(4),
        _ => base,
    };
    let exp = attempt.saturating_sub(1).min(16);
    start.saturating_mul(1u32 << exp).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> CloudError {
        CloudError::Api {
            status,
            code: code.into(),
            message: "m".into(),
            request_id: Some("req-1".into()),
            retry_after: None,
        }
    }

    #[test]
    fn reactions_follow_the_error_class() {
        let cases = [
            (
                Error::cloud("X", api(400, "InvalidParameter")),
                Reaction::WaitForChange,
            ),
            (
                Error::cloud("X", api(500, "InternalError")),
                Reaction::Retry,
            ),
            (
                Error::cloud("X", api(400, "Throttling.User")),
                Reaction::RetryThrottled,
            ),
            (
                Error::cloud("X", api(404, "InvalidService.NotFound")),
                Reaction::NeedsPerson,
            ),
            (
                Error::cloud("X", api(400, "RoutineNotExist")),
                Reaction::NeedsPerson,
            ),
            (
                Error::cloud("X", api(403, "Forbidden.RAM")),
                Reaction::NeedsPerson,
            ),
            (
                Error::cloud("X", api(404, "InvalidAccessKeyId.NotFound")),
                Reaction::NeedsPerson,
            ),
            (Error::InvalidSpec("x".into()), Reaction::WaitForChange),
            (Error::Credentials("x".into()), Reaction::NeedsPerson),
            (Error::Finalizer("x".into()), Reaction::Retry),
        ];
        for (err, want) in cases {
            assert_eq!(err.reaction(), want, "{err}");
        }
    }

    #[test]
    fn reason_is_the_cloud_code() {
        let e = Error::cloud("UpdateService", api(404, "InvalidService.NotFound"));
        assert_eq!(e.reason(), "InvalidService.NotFound");
        assert_eq!(e.request_id(), Some("req-1"));
        assert_eq!(
            Error::Credentials("x".into()).reason(),
            "CredentialsUnavailable"
        );
    }

    #[test]
    fn backoff_grows_and_caps_and_throttling_is_harder() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        assert_eq!(
            backoff(Reaction::Retry, 1, base, cap),
            Duration::from_secs(1)
        );
        assert_eq!(
            backoff(Reaction::Retry, 2, base, cap),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff(Reaction::Retry, 4, base, cap),
            Duration::from_secs(8)
        );
        assert_eq!(backoff(Reaction::Retry, 30, base, cap), cap);
        assert!(
            backoff(Reaction::RetryThrottled, 1, base, cap)
                > backoff(Reaction::Retry, 1, base, cap)
        );
    }
}
