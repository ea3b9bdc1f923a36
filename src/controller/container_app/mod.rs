//! `EsaContainerAppRollout`: publishing a version of an ESA edge container app by
//! percentage or region, optionally in steps, and rolling it back.
//!
//! The four pieces of the [`Rollout`] contract: [`read`](Rollout::read) calls
//! GetEdgeContainerAppStatus, [`plan`] decides, [`execute`](Rollout::execute) calls
//! PublishEdgeContainerAppVersion or RollbackEdgeContainerAppVersion, and there is no
//! cleanup: deleting the resource leaves the published version as it is (no finalizer).

pub mod plan;
pub mod spec;
#[cfg(test)]
mod tests;

use async_trait::async_trait;

use self::plan::other_env;
use self::plan::{AppAction, AppInput, Observed};
use self::spec::{AppSpec, Mode};
use super::analysis;
use super::error::Error;
use super::plan::{CloudAction, Plan};
use super::progress::Deadline;
use super::runner::Rollout;
use crate::cloud::CloudApi;
use crate::crd::{EsaContainerAppRollout, EsaContainerAppRolloutStatus};
use std::time::Duration;

#[async_trait]
impl Rollout for EsaContainerAppRollout {
    const LABEL: &'static str = "containerapp";
    type Spec = AppSpec;
    type Observed = Observed;
    type Action = AppAction;

    /// 20 minutes: a publish reaches every edge region in minutes; twenty without a change
    /// means it is stuck.
    fn deadline(&self) -> Deadline {
        Deadline::from_spec(
            self.spec.progress_deadline.as_deref(),
            Duration::from_secs(20 * 60),
            self.spec.progress_deadline_abort,
        )
    }

    fn abort_version(spec: &AppSpec) -> Option<String> {
        Some(spec.version_id.clone())
    }

    /// The analysis of the step the cloud is at (recorded by the last reconcile).
    fn analysis_request(
        &self,
        spec: &AppSpec,
        status: Option<&EsaContainerAppRolloutStatus>,
    ) -> Option<analysis::Request> {
        let Mode::Steps { .. } = &spec.mode else {
            return None;
        };
        let status = status?;
        status.step_started_at.as_ref()?;
        let step = status.current_step?;
        let aref = self
            .spec
            .steps
            .as_ref()?
            .get(usize::try_from(step).ok()?)?
            .analysis
            .clone()?;
        let builtins = analysis::builtins(
            self,
            &[
                ("app", spec.app_id.as_str()),
                ("env", spec.env.app_wire()),
                ("region", spec.region),
                ("version", spec.version_id.as_str()),
                ("canaryVersion", spec.version_id.as_str()),
            ],
        );
        Some(analysis::Request {
            aref,
            step: Some(step),
            version: spec.version_id.clone(),
            builtins,
        })
    }

    fn current_step(status: &EsaContainerAppRolloutStatus) -> Option<i32> {
        status.current_step
    }

    fn progress_marker(status: &EsaContainerAppRolloutStatus) -> String {
        format!(
            "{:?}/{:?}/{:?}/{:?}/{:?}/{:?}",
            status.publish_status,
            status.deploy_status,
            status.publish_percentage,
            status.deployed_version,
            status.publishing_version,
            status.current_step
        )
    }

    async fn read(
        spec: &AppSpec,
        _status: Option<&EsaContainerAppRolloutStatus>,
        cloud: &dyn CloudApi,
    ) -> Result<Observed, Error> {
        let read = |env: &'static str| async move {
            cloud
                .get_edge_container_app_status(spec.region, &spec.app_id, env)
                .await
                .map(|a| a.app_status)
                .map_err(|e| Error::cloud("GetEdgeContainerAppStatus", e))
        };
        let app = read(spec.env.app_wire()).await?;
        // RollbackEdgeContainerAppVersion names no environment: before one is sent, the
        // planner must see what it would do to the other one.
        let other_env = match spec.mode {
            Mode::Rollback { .. } => read(other_env(spec.env)).await?,
            _ => None,
        };
        Ok(Observed { app, other_env })
    }

    fn plan(input: &AppInput<'_>) -> Plan<AppAction, EsaContainerAppRolloutStatus> {
        plan::plan(input)
    }

    async fn execute(
        spec: &AppSpec,
        cloud: &dyn CloudApi,
        action: &AppAction,
        _status: &mut EsaContainerAppRolloutStatus,
    ) -> Result<String, Error> {
        let ack = match action {
            AppAction::Publish(r) => {
                cloud
                    .publish_edge_container_app_version(spec.region, r)
                    .await
            }
            AppAction::Rollback(r) => {
                cloud
                    .rollback_edge_container_app_version(spec.region, r)
                    .await
            }
        };
        Ok(ack.map_err(|e| Error::cloud(action.name(), e))?.request_id)
    }
}
