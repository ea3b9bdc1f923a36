//! `EsaRoutineRollout`: the split of an ESA edge routine's traffic between at most two
//! code versions in one environment, fixed or walked as a stepped canary.
//!
//! The four pieces of the [`Rollout`] contract: [`read`](Rollout::read) calls GetRoutine,
//! [`plan`] decides, [`execute`](Rollout::execute) calls CreateRoutineCodeDeployment,
//! and there is no cleanup: no API withdraws a deployment, so deleting the resource leaves
//! the cloud as it is (no finalizer).

pub mod plan;
pub mod spec;
#[cfg(test)]
mod tests;

use async_trait::async_trait;

use self::plan::{Observed, RoutineAction, RoutineInput, observed_env, record_deployment};
use self::spec::RoutineSpec;
use super::error::Error;
use super::plan::Plan;
use super::runner::Rollout;
use crate::cloud::CloudApi;
use crate::crd::{EsaRoutineRollout, EsaRoutineRolloutStatus};

#[async_trait]
impl Rollout for EsaRoutineRollout {
    const LABEL: &'static str = "routine";
    type Spec = RoutineSpec;
    type Observed = Observed;
    type Action = RoutineAction;

    async fn read(
        spec: &RoutineSpec,
        _status: Option<&EsaRoutineRolloutStatus>,
        cloud: &dyn CloudApi,
    ) -> Result<Observed, Error> {
        let routine = cloud
            .get_routine(spec.region, &spec.routine)
            .await
            .map_err(|e| Error::cloud("GetRoutine", e))?;
        Ok(observed_env(routine, spec.env))
    }

    fn plan(input: &RoutineInput<'_>) -> Plan<RoutineAction, EsaRoutineRolloutStatus> {
        plan::plan(input)
    }

    async fn execute(
        spec: &RoutineSpec,
        cloud: &dyn CloudApi,
        action: &RoutineAction,
        status: &mut EsaRoutineRolloutStatus,
    ) -> Result<String, Error> {
        let RoutineAction::Deploy(request) = action;
        let answer = cloud
            .create_routine_code_deployment(spec.region, request)
            .await
            .map_err(|e| Error::cloud("CreateRoutineCodeDeployment", e))?;
        record_deployment(status, &answer);
        Ok(answer.request_id)
    }
}
