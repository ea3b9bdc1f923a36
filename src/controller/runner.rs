//! What the three controllers share: the finalizer branch, error handling,
//! backoff, metrics, Events and the tracing span around each reconcile.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
use kube::core::NamespaceResourceScope;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::context::{Context, FINALIZER, jitter, write_status};
use super::error::{Error, Reaction};

/// One custom resource kind driven by this operator.
#[async_trait]
pub trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// Label used in metrics, logs and `--kinds`.
    const LABEL: &'static str;
    /// Whether deletion needs the operator (a cloud cleanup); without it no finalizer is
    /// added and deleting the resource leaves the cloud as it is.
    const NEEDS_FINALIZER: bool = true;
    type Status: Serialize + Send + Sync;

    /// Bring the cloud in line with the spec and write the status.
    async fn apply(obj: Arc<Self>, cx: &Context) -> Result<Action, Error>;
    /// The resource is being deleted: honour its deletion policy.
    async fn cleanup(obj: Arc<Self>, cx: &Context) -> Result<Action, Error>;
    /// The status to write when a reconcile failed and waits for a spec change.
    fn degraded_status(&self, err: &Error, now: jiff::Timestamp) -> Self::Status;
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// One reconcile: the finalizer is the one top-level branch (apply or cleanup).
pub async fn reconcile<K: Reconciled>(obj: Arc<K>, cx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let span = tracing::info_span!("reconcile", kind = K::LABEL, %namespace, %name);
    async move {
        let started = Instant::now();
        cx.metrics.reconcile(K::LABEL);
        let api: Api<K> = Api::namespaced(cx.client.clone(), &namespace);
        let result = if K::NEEDS_FINALIZER {
            finalizer(&api, FINALIZER, obj.clone(), |event| async {
                match event {
                    FinalizerEvent::Apply(o) => K::apply(o, &cx).await,
                    FinalizerEvent::Cleanup(o) => K::cleanup(o, &cx).await,
                }
            })
            .await
            .map_err(Error::from)
        } else if obj.meta().deletion_timestamp.is_some() {
            Ok(Action::await_change())
        } else {
            K::apply(obj.clone(), &cx).await
        };
        cx.metrics.observe(K::LABEL, started.elapsed());
        match result {
            Ok(action) => {
                cx.clear_failures(&key(obj.as_ref()));
                Ok(action)
            }
            Err(err) => {
                let reason = err.reason();
                cx.metrics.failure(K::LABEL, &reason);
                let note = match err.request_id() {
                    Some(id) => format!("{err} (RequestId {id})"),
                    None => err.to_string(),
                };
                tracing::warn!(error = %err, %reason, "reconcile failed");
                cx.event(obj.as_ref(), EventType::Warning, &reason, "Reconcile", note)
                    .await;
                if err.reaction() == Reaction::WaitForChange {
                    // Say why and wait for a spec change; look again only slowly.
                    let status = obj.degraded_status(&err, jiff::Timestamp::now());
                    if let Err(e) = write_status(&api, obj.as_ref(), &status).await {
                        tracing::warn!(error = %e, "could not write the Degraded status");
                        return Err(e);
                    }
                    cx.clear_failures(&key(obj.as_ref()));
                    Ok(after_terminal(&err, cx.timing.settled))
                } else {
                    Err(err)
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Conditions for a failure that is not the cloud's (credentials, invalid spec): Ready
/// False and Degraded True with the error's reason.
pub fn local_degraded(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    generation: Option<i64>,
    err: &Error,
    now: jiff::Timestamp,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    use super::conditions::{Desired, merge};
    use crate::crd::{CONDITION_DEGRADED, CONDITION_READY};
    let reason = err.reason();
    let message = err.to_string();
    merge(
        previous,
        &[
            Desired::new(CONDITION_READY, false, reason.clone(), message.clone()),
            Desired::new(CONDITION_DEGRADED, true, reason, message),
        ],
        generation,
        now,
    )
}

/// When to look again at an ESA rollout: the planner's due time (a step's pause), the
/// operator's active poll while a mutation was just sent or one is in flight (the planner's
/// in-flight poll is capped by `--active-poll`), the settled poll otherwise.
pub fn esa_requeue(
    sent: bool,
    planned: Option<std::time::Duration>,
    timing: super::eas_plan::Timing,
) -> std::time::Duration {
    match planned {
        _ if sent => planned.unwrap_or(timing.active).min(timing.active),
        Some(d) if d == super::steps::POLL_IN_FLIGHT => d.min(timing.active),
        Some(d) => d,
        None => timing.settled,
    }
}

/// After a failure that waits for a change: the cloud rejected this exact input, so only a
/// spec change (which the watch delivers) can help; an unreadable credentials Secret can
/// be fixed without touching the spec, so that is looked at again at the slow interval.
pub fn after_terminal(err: &Error, settled: std::time::Duration) -> Action {
    match err {
        Error::Credentials(_) => Action::requeue(jitter(settled)),
        _ => Action::await_change(),
    }
}

/// After a failed reconcile: back off per object, harder when throttled.
pub fn error_policy<K: Reconciled>(obj: Arc<K>, err: &Error, cx: Arc<Context>) -> Action {
    let delay = cx.next_retry(&key(obj.as_ref()), err.reaction(), err.retry_after());
    tracing::debug!(kind = K::LABEL, name = %obj.name_any(), ?delay, "retrying later");
    Action::requeue(delay)
}

/// Run the controller for `K` until shutdown.
pub async fn run_controller<K: Reconciled>(cx: Arc<Context>, namespace: Option<String>) {
    let (reader, stream) = super::watch::watch::<K>(cx.clone(), namespace.as_deref());
    tracing::info!(
        kind = K::LABEL,
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "starting controller"
    );
    Controller::for_stream(stream, reader)
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, cx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(kind = K::LABEL, error = %e, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::CloudError;
    use std::time::Duration;

    #[test]
    fn terminal_cloud_errors_wait_for_a_change_and_credentials_are_rechecked_slowly() {
        let settled = Duration::from_secs(300);
        let refused = Error::cloud(
            "RollbackEdgeContainerAppVersion",
            CloudError::Api {
                status: 400,
                code: "InvalidParameter".into(),
                message: "no".into(),
                request_id: None,
                retry_after: None,
            },
        );
        assert_eq!(after_terminal(&refused, settled), Action::await_change());
        assert_eq!(
            after_terminal(&Error::InvalidSpec("x".into()), settled),
            Action::await_change()
        );
        assert_ne!(
            after_terminal(&Error::Credentials("x".into()), settled),
            Action::await_change()
        );
    }

    #[test]
    fn esa_requeue_table() {
        use super::super::eas_plan::Timing;
        use super::super::steps::POLL_IN_FLIGHT;
        let t = Timing {
            active: Duration::from_secs(2),
            settled: Duration::from_secs(300),
        };
        let cases = [
            (true, None, t.active),
            (true, Some(Duration::from_secs(60)), t.active),
            (false, Some(POLL_IN_FLIGHT), t.active),
            (
                false,
                Some(Duration::from_secs(42)),
                Duration::from_secs(42),
            ),
            (false, None, t.settled),
        ];
        for (sent, planned, want) in cases {
            assert_eq!(esa_requeue(sent, planned, t), want, "{sent} {planned:?}");
        }
    }
}
