//! `EsaContainerAppRollout` reconciler: GetEdgeContainerAppStatus,
//! [`plan`](super::app_plan::plan), PublishEdgeContainerAppVersion or
//! RollbackEdgeContainerAppVersion, status.

use std::sync::Arc;

use async_trait::async_trait;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::app_plan::{self, AppAction, AppInput};
use super::context::{Context, jitter, write_status};
use super::error::Error;
use super::runner::{Reconciled, esa_requeue, local_degraded};
use crate::crd::{EsaContainerAppRollout, EsaContainerAppRolloutStatus};

#[async_trait]
impl Reconciled for EsaContainerAppRollout {
    const LABEL: &'static str = "containerapp";
    // Deleting the resource leaves the published version as it is.
    const NEEDS_FINALIZER: bool = false;
    type Status = EsaContainerAppRolloutStatus;

    async fn apply(obj: Arc<Self>, cx: &Context) -> Result<Requeue, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let spec = &obj.spec;
        let region = spec.region.unwrap_or_default().as_str();
        let cloud = cx
            .cloud_for(&namespace, spec.credentials_secret_ref.as_ref())
            .await?;
        let answer = cloud
            .get_edge_container_app_status(region, &spec.app_id, spec.env.app_wire())
            .await
            .map_err(|e| Error::cloud("GetEdgeContainerAppStatus", e))?;
        let plan = app_plan::plan(&AppInput {
            spec,
            generation: obj.metadata.generation,
            status: obj.status.as_ref(),
            observed: answer.app_status.as_ref(),
            now: jiff::Timestamp::now(),
        });
        let mut status = plan.status;
        for action in &plan.actions {
            let (name, what, result) = match action {
                AppAction::Publish(r) => {
                    let target = match (&r.regions, r.percentage) {
                        (Some(regions), _) => format!(
                            "regions {}{}",
                            regions.join(","),
                            if r.full_release == Some(true) {
                                " (full release)"
                            } else {
                                ""
                            }
                        ),
                        (None, Some(p)) => format!("{p}%"),
                        (None, None) => "100%".to_string(),
                    };
                    (
                        "PublishEdgeContainerAppVersion",
                        format!(
                            "published {} of {} to {} ({target})",
                            r.version_id, r.app_id, r.publish_env
                        ),
                        cloud.publish_edge_container_app_version(region, r).await,
                    )
                }
                AppAction::Rollback(r) => (
                    "RollbackEdgeContainerAppVersion",
                    format!("rolled back {} of {}", r.version_id, r.app_id),
                    cloud.rollback_edge_container_app_version(region, r).await,
                ),
            };
            let ack = result.map_err(|e| Error::cloud(name, e))?;
            cx.metrics.mutation(Self::LABEL, name);
            tracing::info!(request_id = %ack.request_id, "{what}");
            cx.event(
                obj.as_ref(),
                EventType::Normal,
                name,
                name,
                format!("{what} (RequestId {})", ack.request_id),
            )
            .await;
            status.last_request_id = Some(ack.request_id);
        }
        if obj.status.as_ref() != Some(&status) {
            let api: Api<Self> = Api::namespaced(cx.client.clone(), &namespace);
            write_status(&api, obj.as_ref(), &status).await?;
        }
        let requeue = esa_requeue(!plan.actions.is_empty(), plan.requeue_after, cx.timing);
        Ok(Requeue::requeue(jitter(requeue)))
    }

    async fn cleanup(_obj: Arc<Self>, _cx: &Context) -> Result<Requeue, Error> {
        Ok(Requeue::await_change())
    }

    fn degraded_status(&self, err: &Error, now: jiff::Timestamp) -> EsaContainerAppRolloutStatus {
        match err {
            Error::Cloud { source, .. } => app_plan::degraded_status(
                self.status.as_ref(),
                self.metadata.generation,
                source,
                now,
            ),
            other => {
                let mut st = self.status.clone().unwrap_or_default();
                st.conditions =
                    local_degraded(&st.conditions, self.metadata.generation, other, now);
                st.observed_generation = self.metadata.generation;
                st.phase = Some(super::steps::PHASE_DEGRADED.to_string());
                st.message = Some(other.to_string());
                st
            }
        }
    }
}
