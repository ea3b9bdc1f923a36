//! `EasServiceRollout` reconciler: read the cloud, [`plan`](super::eas_plan::plan), execute
//! the actions, write the status.

use std::sync::Arc;

use async_trait::async_trait;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::context::{Context, jitter, write_status};
use super::eas_plan::{self, Action, Observed};
use super::error::Error;
use super::runner::Reconciled;
use crate::cloud::CloudApi;
use crate::crd::{DeletionPolicy, EasServiceRollout, EasServiceRolloutStatus};

#[async_trait]
impl Reconciled for EasServiceRollout {
    const LABEL: &'static str = "eas";
    type Status = EasServiceRolloutStatus;

    async fn apply(obj: Arc<Self>, cx: &Context) -> Result<Requeue, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let spec = &obj.spec;
        let prev = obj.status.clone().unwrap_or_default();
        eas_plan::validate(spec, &prev).map_err(Error::InvalidSpec)?;
        let cloud = cx
            .cloud_for(&namespace, spec.credentials_secret_ref.as_ref())
            .await?;
        let region = spec.region.trim();
        let service = spec.service_name.trim();

        let observed = read(cloud.as_ref(), spec, &prev, region, service).await?;
        let plan = eas_plan::plan(
            spec,
            obj.metadata.generation,
            &prev,
            &observed,
            jiff::Timestamp::now(),
            cx.timing,
        )
        .map_err(Error::InvalidSpec)?;

        let mut status = plan.status;
        for action in &plan.actions {
            let request_id = execute(cloud.as_ref(), region, service, action).await?;
            cx.metrics.mutation(Self::LABEL, action.name());
            tracing::info!(action = action.name(), request_id = %request_id, "{}", action.describe());
            cx.event(
                obj.as_ref(),
                EventType::Normal,
                action.name(),
                action.name(),
                format!("{} (RequestId {request_id})", action.describe()),
            )
            .await;
            status.last_request_id = Some(request_id);
        }

        if obj.status.as_ref() != Some(&status) {
            let api: Api<Self> = Api::namespaced(cx.client.clone(), &namespace);
            write_status(&api, obj.as_ref(), &status).await?;
        }
        Ok(Requeue::requeue(jitter(plan.requeue)))
    }

    async fn cleanup(obj: Arc<Self>, cx: &Context) -> Result<Requeue, Error> {
        let prev = obj.status.clone().unwrap_or_default();
        let recorded = prev
            .cloud_ref
            .as_deref()
            .and_then(eas_plan::split_cloud_ref);
        match (obj.spec.deletion_policy, recorded) {
            (DeletionPolicy::Retain, Some((region, service))) => {
                cx.event(
                    obj.as_ref(),
                    EventType::Normal,
                    "Retained",
                    "Cleanup",
                    format!(
                        "deletionPolicy Retain: left the rollout of {region}/{service} in the cloud"
                    ),
                )
                .await;
            }
            (DeletionPolicy::Delete, Some((region, service))) => {
                let namespace = obj.namespace().unwrap_or_default();
                let cloud = match cx
                    .cloud_for(&namespace, obj.spec.credentials_secret_ref.as_ref())
                    .await
                {
                    Ok(cloud) => cloud,
                    // The credentials Secret went first (e.g. the whole namespace is being
                    // deleted): holding the finalizer would block the deletion forever, so
                    // let go and say what is left in the cloud.
                    Err(e @ Error::Credentials(_)) => {
                        cx.event(
                            obj.as_ref(),
                            EventType::Warning,
                            "CleanupSkipped",
                            "Cleanup",
                            format!(
                                "could not delete the rollout of {region}/{service}: {e}; it is left in the cloud"
                            ),
                        )
                        .await;
                        return Ok(Requeue::await_change());
                    }
                    Err(e) => return Err(e),
                };
                match cloud.delete_service_rollout(region, service).await {
                    Ok(ack) => {
                        cx.metrics.mutation(Self::LABEL, "DeleteServiceRollout");
                        cx.event(
                            obj.as_ref(),
                            EventType::Normal,
                            "DeleteServiceRollout",
                            "DeleteServiceRollout",
                            format!(
                                "deleted the rollout of {region}/{service} (RequestId {})",
                                ack.request_id
                            ),
                        )
                        .await;
                    }
                    Err(e) if e.is_not_found() => {
                        tracing::info!(%region, %service, "the cloud rollout is already gone");
                    }
                    Err(e) => return Err(Error::cloud("DeleteServiceRollout", e)),
                }
            }
            // Never reached the cloud: nothing of ours to clean up.
            (_, None) => {}
        }
        Ok(Requeue::await_change())
    }

    fn degraded_status(&self, err: &Error, now: jiff::Timestamp) -> EasServiceRolloutStatus {
        let mut prev = self.status.clone().unwrap_or_default();
        // A cloud call failed, so this target was reached and something may have been
        // created in it before the failure (a CreateServiceRollout followed by a refused
        // UpdateService): record the ownership, so cleanup and the immutability check
        // still know the cloud object.
        if prev.cloud_ref.is_none() && matches!(err, Error::Cloud { .. }) {
            prev.cloud_ref = Some(eas_plan::cloud_ref(&self.spec));
        }
        eas_plan::degraded_status(
            &prev,
            self.metadata.generation,
            &err.reason(),
            &err.to_string(),
            err.request_id(),
            now,
        )
    }
}

async fn read(
    cloud: &dyn CloudApi,
    spec: &crate::crd::EasServiceRolloutSpec,
    prev: &EasServiceRolloutStatus,
    region: &str,
    service: &str,
) -> Result<Observed, Error> {
    let mut observed = Observed::default();
    match cloud.describe_service_rollout(region, service).await {
        Ok(answer) => {
            observed.rollout = answer.rollout;
            observed.request_id = Some(answer.request_id);
        }
        Err(e) if e.is_not_found() => {
            observed.request_id = e.request_id().map(str::to_string);
        }
        Err(e) => return Err(Error::cloud("DescribeServiceRollout", e)),
    }
    if eas_plan::needs_service_config(spec, prev) {
        let service = cloud
            .describe_service(region, service)
            .await
            .map_err(|e| Error::cloud("DescribeService", e))?;
        observed.service_config = service
            .service_config
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        observed.request_id = Some(service.request_id);
    }
    Ok(observed)
}

async fn execute(
    cloud: &dyn CloudApi,
    region: &str,
    service: &str,
    action: &Action,
) -> Result<String, Error> {
    let ack = match action {
        Action::CreateRollout(request) => {
            match cloud.create_service_rollout(region, service, request).await {
                // A retried create whose first answer was lost: it exists, as wanted; the
                // next reconcile reads it and corrects strategy or pause if needed.
                Err(e) if e.code().ends_with("AlreadyExists") => {
                    return Ok(e.request_id().unwrap_or_default().to_string());
                }
                other => other,
            }
        }
        Action::UpdateRollout(request) => {
            cloud.update_service_rollout(region, service, request).await
        }
        Action::UpdateService { config, .. } => {
            cloud
                .update_service(
                    region,
                    service,
                    config,
                    crate::cloud::model::UpdateType::Merge,
                )
                .await
        }
    }
    .map_err(|e| Error::cloud(action.name(), e))?;
    Ok(ack.request_id)
}
