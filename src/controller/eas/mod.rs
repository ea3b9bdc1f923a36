//! `EasServiceRollout`: a PAI-EAS service's rollout (partition or batch), and the
//! service config pushed with it.
//!
//! The four pieces of the [`Rollout`] contract: [`read`](Rollout::read) calls
//! DescribeServiceRollout (and DescribeService while a config push is not recorded),
//! [`plan`] decides, [`execute`](Rollout::execute) makes one of CreateServiceRollout,
//! UpdateServiceRollout or UpdateService, and [`cleanup`](Rollout::cleanup) honours
//! `deletionPolicy` (DeleteServiceRollout on the recorded target).

#[cfg(test)]
mod fencing_tests;
#[cfg(test)]
mod ownership_tests;
pub mod plan;
pub mod spec;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use self::plan::{EasAction, EasInput, Observed, needs_service_config};
use self::spec::{EasSpec, split_cloud_ref};
use super::analysis;
use super::context::{Claim, Context};
use super::error::Error;
use super::plan::Plan;
use super::progress::Deadline;
use super::runner::Rollout;
use crate::cloud::CloudApi;
use crate::cloud::model::UpdateType;
use crate::crd::{DeletionPolicy, EasServiceRollout, EasServiceRolloutStatus};
use std::time::Duration;

#[async_trait]
impl Rollout for EasServiceRollout {
    const LABEL: &'static str = "eas";
    const NEEDS_FINALIZER: bool = true;
    type Spec = EasSpec;
    type Observed = Observed;
    type Action = EasAction;

    /// 30 minutes: an EAS batch pulls images and loads models, often several minutes per
    /// replica, and a large service takes many batches.
    fn deadline(&self) -> Deadline {
        Deadline::from_spec(
            self.spec.progress_deadline.as_deref(),
            Duration::from_secs(30 * 60),
            false,
        )
    }

    fn cloud_marker() -> Option<&'static dyn super::marker::CloudMarker<Self>> {
        Some(&super::marker::EAS_MARKER)
    }

    /// The declared version of the service config (rolled back by a failed analysis).
    fn abort_version(spec: &EasSpec) -> Option<String> {
        spec.service_config
            .as_ref()
            .map(|c| c.version().to_string())
    }

    /// `spec.analysis` in the background while the declared service config, once pushed,
    /// rolls out (not after it was rolled back).
    fn analysis_request(
        &self,
        spec: &EasSpec,
        status: Option<&EasServiceRolloutStatus>,
    ) -> Option<analysis::Request> {
        let aref = self.spec.analysis.clone()?;
        let config = spec.service_config.as_ref()?;
        let status = status?;
        if status.applied_service_config_hash.as_deref() != Some(config.hash.as_str()) {
            return None;
        }
        let version = config.version().to_string();
        if status
            .aborted
            .as_ref()
            .is_some_and(|a| a.version == version)
        {
            return None;
        }
        let builtins = analysis::builtins(
            self,
            &[
                ("service", spec.service.as_str()),
                ("region", spec.region.as_str()),
                ("version", version.as_str()),
                ("canaryVersion", version.as_str()),
                (
                    "canaryRevision",
                    status.update_revision.as_deref().unwrap_or_default(),
                ),
                (
                    "stableRevision",
                    status.current_revision.as_deref().unwrap_or_default(),
                ),
            ],
        );
        Some(analysis::Request {
            aref,
            step: None,
            version,
            builtins,
        })
    }

    fn progress_marker(status: &EasServiceRolloutStatus) -> String {
        format!(
            "{:?}/{:?}/{:?}/{:?}/{:?}",
            status.phase,
            status.updated_replicas,
            status.total_replicas,
            status.current_revision,
            status.update_revision
        )
    }

    async fn read(
        spec: &EasSpec,
        status: Option<&EasServiceRolloutStatus>,
        cloud: &dyn CloudApi,
    ) -> Result<Observed, Error> {
        let (region, service) = (spec.region.as_str(), spec.service.as_str());
        let rollout = match cloud.describe_service_rollout(region, service).await {
            Ok(answer) => answer.rollout,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(Error::cloud("DescribeServiceRollout", e)),
        };
        let service_config = if needs_service_config(spec, status) {
            let service = cloud
                .describe_service(region, service)
                .await
                .map_err(|e| Error::cloud("DescribeService", e))?;
            service
                .service_config
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
        } else {
            None
        };
        Ok(Observed {
            rollout,
            service_config,
        })
    }

    fn plan(input: &EasInput<'_>) -> Plan<EasAction, EasServiceRolloutStatus> {
        plan::plan(input)
    }

    async fn execute(
        spec: &EasSpec,
        cloud: &dyn CloudApi,
        action: &EasAction,
        _status: &mut EasServiceRolloutStatus,
    ) -> Result<String, Error> {
        let (region, service) = (spec.region.as_str(), spec.service.as_str());
        let ack = match action {
            EasAction::CreateRollout(request) => {
                match cloud.create_service_rollout(region, service, request).await {
                    // A retried create whose first answer was lost: it exists, as wanted;
                    // the next reconcile reads it and corrects strategy or pause if needed.
                    Err(e) if e.code().ends_with("AlreadyExists") => {
                        return Ok(e.request_id().unwrap_or_default().to_string());
                    }
                    other => other,
                }
            }
            EasAction::UpdateRollout(request) => {
                cloud.update_service_rollout(region, service, request).await
            }
            EasAction::UpdateService { config, .. } => {
                cloud
                    .update_service(region, service, config, UpdateType::Merge)
                    .await
            }
        };
        let name = super::plan::CloudAction::name(action);
        Ok(ack.map_err(|e| Error::cloud(name, e))?.request_id)
    }

    async fn cleanup(&self, cx: &Context) -> Result<(), Error> {
        let recorded = self
            .status
            .as_ref()
            .and_then(|s| s.cloud_ref.as_deref())
            .and_then(split_cloud_ref);
        // Never reached the cloud: nothing of ours to clean up.
        let Some((region, service)) = recorded else {
            return Ok(());
        };
        match self.spec.deletion_policy {
            DeletionPolicy::Retain => {
                let note = format!(
                    "deletionPolicy Retain: left the rollout of {region}/{service} in the cloud"
                );
                cx.event(self, EventType::Normal, "Retained", "Cleanup", note)
                    .await;
                Ok(())
            }
            DeletionPolicy::Delete => delete_rollout(self, cx, region, service).await,
        }
    }
}

/// `deletionPolicy: Delete`: DeleteServiceRollout on the recorded target. Already gone is
/// success. When the credentials Secret is gone (a namespace deletion deletes it with the
/// resource, often first) the credentials this resource last reconciled with are used;
/// when there are none either, the resource goes and what stays in the cloud is reported
/// ([`Context::left_behind`]), rather than holding the deletion forever.
async fn delete_rollout(
    obj: &EasServiceRollout,
    cx: &Context,
    region: &str,
    service: &str,
) -> Result<(), Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let cloud_ref = format!("{region}/{service}");
    let claim = Claim::of(obj, &namespace, EasServiceRollout::LABEL, &cloud_ref);
    let cloud = match cx.cloud_for(&claim).await {
        Ok(cloud) => cloud,
        // The account no longer grants this rollout (or is gone): no cloud call under it,
        // and the deletion does not wait for an administrator's change that may never
        // come. What stays in the cloud is reported.
        Err(e @ Error::AccountRefused { .. }) => {
            let note = format!(
                "did not delete the rollout of {region}/{service}: {e}; it is left in the cloud"
            );
            cx.left_behind(obj, EasServiceRollout::LABEL, note).await;
            return Ok(());
        }
        Err(e @ Error::Credentials(_)) => {
            match obj.uid().and_then(|uid| cx.remembered_cloud(&uid)) {
                Some(cloud) => {
                    tracing::info!(
                        "{e}; deleting the rollout of {region}/{service} with the credentials \
                         of the last successful reconcile"
                    );
                    cloud
                }
                None => {
                    let note = format!(
                        "could not delete the rollout of {region}/{service}: {e}; it is left in \
                         the cloud"
                    );
                    cx.left_behind(obj, EasServiceRollout::LABEL, note).await;
                    return Ok(());
                }
            }
        }
        Err(e) => return Err(e),
    };
    // Only in the account the rollout was recorded in, and only if it is ours.
    let account = cloud
        .caller_account()
        .await
        .map_err(|e| Error::cloud("GetCallerIdentity", e))?;
    let status = obj.status.as_ref();
    if let Some(recorded) = status.and_then(|s| s.cloud_account.as_deref())
        && recorded != account
    {
        let note = format!(
            "did not delete the rollout of {region}/{service}: it is in account {recorded}, and the \
             credentials now belong to account {account}; it is left in account {recorded}"
        );
        cx.left_behind(obj, EasServiceRollout::LABEL, note).await;
        return Ok(());
    }
    let me = super::owners::Entry::of(obj);
    if let Err(owner) = cx
        .owners
        .claim(EasServiceRollout::LABEL, &cloud_ref, &account, &me, false)
        .await
    {
        let note = format!(
            "did not delete the rollout of {cloud_ref}: {owner} manages it; it is left in the cloud"
        );
        cx.left_behind(obj, EasServiceRollout::LABEL, note).await;
        return Ok(());
    }
    // Nor when another cluster (or resource) has taken the service over since.
    if let Some(owner) = super::marker::other_owner(obj, cx, cloud.as_ref()).await? {
        let note = format!(
            "did not delete the rollout of {cloud_ref}: its ownership marker names {owner}; it is \
             left in the cloud"
        );
        cx.left_behind(obj, EasServiceRollout::LABEL, note).await;
        return Ok(());
    }
    // Never while the rollout is in progress: EAS finishes whatever is in flight at once
    // when its rollout is deleted, which would put more replicas on the new version than
    // the strategy and approvals allow.
    match cloud.describe_service_rollout(region, service).await {
        Ok(answer) => {
            if let Some(state) = answer.rollout.as_ref().and_then(in_progress) {
                return Err(Error::DeletionWaitsForRollout {
                    object: cloud_ref,
                    state,
                });
            }
        }
        Err(e) if e.is_not_found() => {
            tracing::info!(%region, %service, "the cloud rollout is already gone");
            super::marker::release(obj, cx, cloud.as_ref()).await;
            return Ok(());
        }
        Err(e) => return Err(Error::cloud("DescribeServiceRollout", e)),
    }
    match cloud.delete_service_rollout(region, service).await {
        Ok(ack) => {
            cx.metrics
                .mutation(EasServiceRollout::LABEL, "DeleteServiceRollout");
            let note = format!(
                "deleted the rollout of {region}/{service} (RequestId {})",
                ack.request_id
            );
            cx.event(
                obj,
                EventType::Normal,
                "DeleteServiceRollout",
                "DeleteServiceRollout",
                note,
            )
            .await;
            super::marker::release(obj, cx, cloud.as_ref()).await;
            Ok(())
        }
        Err(e) if e.is_not_found() => {
            tracing::info!(%region, %service, "the cloud rollout is already gone");
            super::marker::release(obj, cx, cloud.as_ref()).await;
            Ok(())
        }
        Err(e) => Err(Error::cloud("DeleteServiceRollout", e)),
    }
}

/// What the cloud shows of a rollout still in progress (replicas on two versions, or a
/// phase other than Completed), or `None` once it is settled.
fn in_progress(rollout: &crate::cloud::model::Rollout) -> Option<String> {
    let status = rollout.status.as_ref()?;
    let phase = status.phase.as_deref().unwrap_or("unknown phase");
    let two_versions = status.current_revision.is_some()
        && status.update_revision.is_some()
        && status.current_revision != status.update_revision;
    if phase == crate::cloud::model::wire::EAS_PHASE_COMPLETED && !two_versions {
        return None;
    }
    Some(match (status.updated_replicas, status.total_replicas) {
        (Some(u), Some(t)) => format!("{phase}, {u}/{t} replicas updated"),
        _ => phase.to_string(),
    })
}
