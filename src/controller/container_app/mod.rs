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
use super::error::Error;
use super::plan::{CloudAction, Plan};
use super::runner::Rollout;
use crate::cloud::CloudApi;
use crate::crd::{EsaContainerAppRollout, EsaContainerAppRolloutStatus};

#[async_trait]
impl Rollout for EsaContainerAppRollout {
    const LABEL: &'static str = "containerapp";
    type Spec = AppSpec;
    type Observed = Observed;
    type Action = AppAction;

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
