//! `EsaRoutineRollout` reconciler: GetRoutine, [`plan`](super::routine_plan::plan),
//! CreateRoutineCodeDeployment, status.

use std::sync::Arc;

use async_trait::async_trait;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::context::{Context, jitter, write_status};
use super::error::Error;
use super::routine_plan::{self, RoutineAction, RoutineInput};
use super::runner::{Reconciled, esa_requeue, local_degraded};
use crate::crd::{EsaRoutineRollout, EsaRoutineRolloutStatus};

#[async_trait]
impl Reconciled for EsaRoutineRollout {
    const LABEL: &'static str = "routine";
    // There is no API to withdraw a routine deployment: deletion leaves the cloud as is.
    const NEEDS_FINALIZER: bool = false;
    type Status = EsaRoutineRolloutStatus;

    async fn apply(obj: Arc<Self>, cx: &Context) -> Result<Requeue, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let spec = &obj.spec;
        let region = spec.region.unwrap_or_default().as_str();
        let cloud = cx
            .cloud_for(&namespace, spec.credentials_secret_ref.as_ref())
            .await?;
        let routine = cloud
            .get_routine(region, &spec.routine)
            .await
            .map_err(|e| Error::cloud("GetRoutine", e))?;
        let env = routine_plan::observed_env(&routine, spec.env);
        let plan = routine_plan::plan(&RoutineInput {
            spec,
            generation: obj.metadata.generation,
            status: obj.status.as_ref(),
            observed: env,
            now: jiff::Timestamp::now(),
        });
        let mut status = plan.status;
        for action in &plan.actions {
            let RoutineAction::CreateRoutineCodeDeployment(request) = action;
            let answer = cloud
                .create_routine_code_deployment(region, request)
                .await
                .map_err(|e| Error::cloud("CreateRoutineCodeDeployment", e))?;
            let split = request
                .code_versions
                .iter()
                .map(|c| format!("{}:{}", c.code_version, c.percentage))
                .collect::<Vec<_>>()
                .join(",");
            cx.metrics
                .mutation(Self::LABEL, "CreateRoutineCodeDeployment");
            tracing::info!(request_id = %answer.request_id, %split, "deployed a code version split");
            cx.event(
                obj.as_ref(),
                EventType::Normal,
                "CreateRoutineCodeDeployment",
                "CreateRoutineCodeDeployment",
                format!(
                    "deployed {split} to {} of routine {} (RequestId {})",
                    request.env, request.name, answer.request_id
                ),
            )
            .await;
            routine_plan::record_deployment(&mut status, &answer);
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

    fn degraded_status(&self, err: &Error, now: jiff::Timestamp) -> EsaRoutineRolloutStatus {
        match err {
            Error::Cloud { source, .. } => routine_plan::degraded_status(
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
