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
use self::spec::Mode;
use self::spec::RoutineSpec;
use super::analysis;
use super::error::Error;
use super::plan::Plan;
use super::progress::Deadline;
use super::runner::Rollout;
use crate::cloud::CloudApi;
use crate::crd::{EsaRoutineRollout, EsaRoutineRolloutStatus};
use std::time::Duration;

#[async_trait]
impl Rollout for EsaRoutineRollout {
    const LABEL: &'static str = "routine";
    type Spec = RoutineSpec;
    type Observed = Observed;
    type Action = RoutineAction;

    /// 10 minutes: a routine code deployment reaches the edge in seconds to a minute or
    /// two; ten minutes without a change means the cloud is not applying it.
    fn deadline(&self) -> Deadline {
        Deadline::from_spec(
            self.spec.progress_deadline.as_deref(),
            Duration::from_secs(10 * 60),
            self.spec.progress_deadline_abort,
        )
    }

    /// The canary version (a fixed split has nothing to roll back to).
    fn abort_version(spec: &RoutineSpec) -> Option<String> {
        match &spec.mode {
            Mode::Canary(c) => Some(c.canary.clone()),
            Mode::Rollback { canary, .. } => Some(canary.clone()),
            Mode::Fixed(_) => None,
        }
    }

    /// The analysis of the canary step the cloud is at (recorded by the last reconcile).
    fn analysis_request(
        &self,
        spec: &RoutineSpec,
        status: Option<&EsaRoutineRolloutStatus>,
    ) -> Option<analysis::Request> {
        let Mode::Canary(c) = &spec.mode else {
            return None;
        };
        let status = status?;
        status.step_started_at.as_ref()?;
        let step = status.current_step?;
        let declared = self.spec.canary.as_ref()?;
        let aref = declared
            .steps
            .get(usize::try_from(step).ok()?)?
            .analysis
            .clone()?;
        let builtins = analysis::builtins(
            self,
            &[
                ("routine", spec.routine.as_str()),
                ("env", spec.env.routine_wire()),
                ("region", spec.region),
                ("stableVersion", c.stable.as_str()),
                ("canaryVersion", c.canary.as_str()),
                ("version", c.canary.as_str()),
            ],
        );
        Some(analysis::Request {
            aref,
            step: Some(step),
            version: c.canary.clone(),
            builtins,
        })
    }

    fn current_step(status: &EsaRoutineRolloutStatus) -> Option<i32> {
        status.current_step
    }

    fn progress_marker(status: &EsaRoutineRolloutStatus) -> String {
        format!(
            "{:?}/{:?}/{:?}",
            status.split, status.current_step, status.deployment_id
        )
    }

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
