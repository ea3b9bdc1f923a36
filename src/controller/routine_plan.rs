//! `EsaRoutineRollout`: what to send to the cloud and what status to write, as a pure
//! function of the spec, the previous status, the routine environment GetRoutine reports
//! and `now`.
//!
//! - `spec.codeVersions`: the cloud's split must equal it (order does not matter);
//!   otherwise one CreateRoutineCodeDeployment with exactly that split.
//! - `spec.canary`: at step `i` the canary has `steps[i].percentage` and the stable version
//!   the rest; after the last step the canary has 100% (one entry). The progression is
//!   [`super::steps::plan_steps`]; the canary's share and whether the rest is on the stable
//!   version are read from the cloud, so a lost status resumes where the cloud is.
//! - `spec.rollback` (with `canary`): 100% on `stableVersion`. It wins over `paused`.
//! - `spec.paused`: nothing is sent (neither a step nor a correction).
//! - Invalid spec (both or neither of codeVersions/canary, bad splits, bad steps):
//!   phase Degraded, Degraded=True reason InvalidSpec, nothing sent, no requeue (a spec
//!   change triggers the next reconcile).

use std::time::Duration;

use jiff::Timestamp;

use super::conditions::merge;
use super::steps::{
    self, Outcome, PHASE_COMPLETED, PHASE_PAUSED, PHASE_PROGRESSING, PHASE_ROLLED_BACK,
    POLL_IN_FLIGHT, StepInput, StepState,
};
use crate::cloud::error::CloudError;
use crate::cloud::model::{
    CodeVersionSplit, CreateRoutineCodeDeploymentRequest, CreateRoutineCodeDeploymentResponse,
    GetRoutineResponse, RoutineEnv,
};
use crate::crd::common::EsaEnv;
use crate::crd::routine::{
    CodeVersionWeight, EsaRoutineRolloutSpec, EsaRoutineRolloutStatus, RoutineCanary,
};

/// The strategy CreateRoutineCodeDeployment accepts today.
pub const STRATEGY_PERCENTAGE: &str = "percentage";

/// Everything a routine plan depends on.
#[derive(Debug, Clone)]
pub struct RoutineInput<'a> {
    pub spec: &'a EsaRoutineRolloutSpec,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The status as last written (None for a new object).
    pub status: Option<&'a EsaRoutineRolloutStatus>,
    /// GetRoutine's entry for `spec.env.routine_wire()`; None when the environment has no
    /// deployment (or no entry at all).
    pub observed: Option<&'a RoutineEnv>,
    pub now: Timestamp,
}

/// A cloud call the reconciler must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutineAction {
    CreateRoutineCodeDeployment(CreateRoutineCodeDeploymentRequest),
}

/// The decision: at most one action, the status to write (describing the cloud as read,
/// before the action), and when to look again (None: settled, use the slow resync).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutinePlan {
    pub actions: Vec<RoutineAction>,
    pub status: EsaRoutineRolloutStatus,
    pub requeue_after: Option<Duration>,
}

/// The entry of GetRoutine's answer for `env`, when it has a deployment: what
/// [`RoutineInput::observed`] wants.
pub fn observed_env(resp: &GetRoutineResponse, env: EsaEnv) -> Option<&RoutineEnv> {
    resp.envs
        .iter()
        .find(|e| e.env.eq_ignore_ascii_case(env.routine_wire()))
        .filter(|e| e.code_deploy.is_some())
}

/// A split as (version, percentage) sorted by version, entries at 0% dropped: the form in
/// which two splits are compared.
fn normalized<'a>(entries: impl Iterator<Item = (&'a str, i32)>) -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = entries
        .filter(|(_, p)| *p > 0)
        .map(|(n, p)| (n.to_string(), p))
        .collect();
    v.sort();
    v
}

fn render(split: &[CodeVersionSplit]) -> String {
    if split.is_empty() {
        return "no deployment".to_string();
    }
    split
        .iter()
        .map(|c| format!("{}:{}", c.code_version, c.percentage))
        .collect::<Vec<_>>()
        .join(",")
}

fn split(entries: &[(&str, i32)]) -> Vec<CodeVersionSplit> {
    entries
        .iter()
        .map(|(v, p)| CodeVersionSplit {
            code_version: (*v).to_string(),
            percentage: *p,
        })
        .collect()
}

/// The split for `percentage` on the canary: canary first, the stable version the rest.
fn canary_split(c: &RoutineCanary, percentage: i32) -> Vec<CodeVersionSplit> {
    if percentage >= 100 {
        split(&[(&c.canary_version, 100)])
    } else {
        split(&[
            (&c.canary_version, percentage),
            (&c.stable_version, 100 - percentage),
        ])
    }
}

fn same(a: &[CodeVersionSplit], b: &[CodeVersionSplit]) -> bool {
    normalized(a.iter().map(|c| (c.code_version.as_str(), c.percentage)))
        == normalized(b.iter().map(|c| (c.code_version.as_str(), c.percentage)))
}

fn validate_code_versions(cv: &[CodeVersionWeight]) -> Result<(), String> {
    if cv.is_empty() || cv.len() > 2 {
        return Err(format!(
            "spec.codeVersions must have 1 or 2 entries, not {}",
            cv.len()
        ));
    }
    for (i, c) in cv.iter().enumerate() {
        if c.code_version.is_empty() {
            return Err(format!("spec.codeVersions[{i}].codeVersion is empty"));
        }
        if !(1..=100).contains(&c.percentage) {
            return Err(format!(
                "spec.codeVersions[{i}].percentage: {} is outside 1-100",
                c.percentage
            ));
        }
    }
    if cv.len() == 2 && cv[0].code_version == cv[1].code_version {
        return Err(format!(
            "spec.codeVersions names {} twice",
            cv[0].code_version
        ));
    }
    let sum: i32 = cv.iter().map(|c| c.percentage).sum();
    if sum != 100 {
        return Err(format!(
            "spec.codeVersions percentages sum to {sum}, not 100"
        ));
    }
    Ok(())
}

fn validate_canary(c: &RoutineCanary) -> Result<(), String> {
    if c.stable_version.is_empty() || c.canary_version.is_empty() {
        return Err("spec.canary.stableVersion and canaryVersion must be set".to_string());
    }
    if c.stable_version == c.canary_version {
        return Err(format!(
            "spec.canary.stableVersion and canaryVersion are both {}",
            c.stable_version
        ));
    }
    Ok(())
}

/// What the planner decided before it is turned into a status.
struct Decision {
    outcome: Outcome,
    send: Option<Vec<CodeVersionSplit>>,
    current_step: Option<i32>,
    step_started_at: Option<Timestamp>,
    next_step_at: Option<Timestamp>,
}

impl Decision {
    fn settled(outcome: Outcome) -> Self {
        Decision {
            outcome,
            send: None,
            current_step: None,
            step_started_at: None,
            next_step_at: None,
        }
    }
}

/// Decide. Pure: the same input always gives the same plan.
pub fn plan(input: &RoutineInput<'_>) -> RoutinePlan {
    let spec = input.spec;
    let deploy = input.observed.and_then(|e| e.code_deploy.as_ref());
    let cloud: Vec<CodeVersionSplit> = deploy
        .map(|d| {
            d.code_versions
                .iter()
                .map(|c| CodeVersionSplit {
                    code_version: c.code_version.clone(),
                    percentage: c.percentage,
                })
                .collect()
        })
        .unwrap_or_default();

    let mut d = match (&spec.code_versions, &spec.canary) {
        (Some(_), Some(_)) | (None, None) => Decision::settled(Outcome::invalid(
            "set exactly one of spec.codeVersions and spec.canary".to_string(),
        )),
        (Some(cv), None) => match validate_code_versions(cv) {
            Err(m) => Decision::settled(Outcome::invalid(m)),
            Ok(()) if spec.rollback => Decision::settled(Outcome::invalid(
                "spec.rollback needs spec.canary (it puts 100% back on canary.stableVersion)"
                    .to_string(),
            )),
            Ok(()) => fixed(spec, cv, &cloud),
        },
        (None, Some(c)) => match validate_canary(c) {
            Err(m) => Decision::settled(Outcome::invalid(m)),
            Ok(()) if spec.rollback => rollback(spec, c, &cloud),
            Ok(()) => canary(input, c, &cloud),
        },
    };
    d.outcome.paused = spec.paused;

    let prev = input.status.cloned().unwrap_or_default();
    let conditions = merge(
        &prev.conditions,
        &d.outcome.conditions(),
        input.generation,
        input.now,
    );
    let status = EsaRoutineRolloutStatus {
        observed_generation: input.generation,
        conditions,
        phase: Some(d.outcome.phase.to_string()),
        current_step: d.current_step,
        step_started_at: d.step_started_at.map(|t| t.to_string()),
        next_step_at: d.next_step_at.map(|t| t.to_string()),
        deployment_id: deploy.and_then(|cd| cd.deploy_id.clone()),
        code_versions: cloud
            .iter()
            .map(|c| CodeVersionWeight {
                code_version: c.code_version.clone(),
                percentage: c.percentage,
            })
            .collect(),
        split: (!cloud.is_empty()).then(|| render(&cloud)),
        last_request_id: prev.last_request_id,
        message: Some(steps::bounded_message(d.outcome.message.clone())),
    };
    let actions = d
        .send
        .map(|code_versions| {
            RoutineAction::CreateRoutineCodeDeployment(CreateRoutineCodeDeploymentRequest {
                name: spec.routine.clone(),
                env: spec.env.routine_wire().to_string(),
                strategy: STRATEGY_PERCENTAGE.to_string(),
                code_versions,
            })
        })
        .into_iter()
        .collect();
    RoutinePlan {
        actions,
        status,
        requeue_after: d.outcome.requeue_after,
    }
}

fn fixed(
    spec: &EsaRoutineRolloutSpec,
    cv: &[CodeVersionWeight],
    cloud: &[CodeVersionSplit],
) -> Decision {
    let want = split(
        &cv.iter()
            .map(|c| (c.code_version.as_str(), c.percentage))
            .collect::<Vec<_>>(),
    );
    if same(&want, cloud) {
        let mut o = Outcome::new(
            PHASE_COMPLETED,
            format!("{} serves {}", spec.env.routine_wire(), render(cloud)),
        );
        o.ready = true;
        return Decision::settled(o);
    }
    if spec.paused {
        return Decision::settled(Outcome::new(
            PHASE_PAUSED,
            format!(
                "paused: cloud has {}, spec wants {}; set spec.paused: false to deploy",
                render(cloud),
                render(&want)
            ),
        ));
    }
    let mut o = Outcome::new(
        PHASE_PROGRESSING,
        format!("deploying {} (cloud has {})", render(&want), render(cloud)),
    );
    o.progressing = true;
    o.progressing_reason = "Deploying".to_string();
    o.ready_reason = "Deploying".to_string();
    o.requeue_after = Some(POLL_IN_FLIGHT);
    Decision {
        send: Some(want),
        ..Decision::settled(o)
    }
}

fn rollback(
    spec: &EsaRoutineRolloutSpec,
    c: &RoutineCanary,
    cloud: &[CodeVersionSplit],
) -> Decision {
    let want = canary_split(
        &RoutineCanary {
            canary_version: c.stable_version.clone(),
            ..c.clone()
        },
        100,
    );
    if same(&want, cloud) {
        let mut o = Outcome::new(
            PHASE_ROLLED_BACK,
            format!(
                "rolled back: {} serves 100% of {}; set spec.rollback: false to roll out {} again",
                c.stable_version,
                spec.env.routine_wire(),
                c.canary_version
            ),
        );
        o.ready = true;
        o.ready_reason = "RolledBack".to_string();
        return Decision::settled(o);
    }
    let mut o = Outcome::new(
        PHASE_PROGRESSING,
        format!(
            "rolling back to {} (cloud has {})",
            c.stable_version,
            render(cloud)
        ),
    );
    o.progressing = true;
    o.progressing_reason = "RollingBack".to_string();
    o.ready_reason = "RollingBack".to_string();
    o.requeue_after = Some(POLL_IN_FLIGHT);
    Decision {
        send: Some(want),
        ..Decision::settled(o)
    }
}

fn canary(input: &RoutineInput<'_>, c: &RoutineCanary, cloud: &[CodeVersionSplit]) -> Decision {
    let share = cloud
        .iter()
        .filter(|e| e.code_version == c.canary_version)
        .map(|e| e.percentage)
        .sum::<i32>();
    let share = (share > 0).then_some(share);
    let settled = share.is_some_and(|p| same(&canary_split(c, p), cloud));
    let prev = input.status;
    let step_input = StepInput {
        steps: &c.steps,
        promoted_step: c.promoted_step,
        paused: input.spec.paused,
        prev_step: prev.and_then(|s| s.current_step),
        prev_started_at: prev.and_then(|s| s.step_started_at.as_deref()),
        cloud_percentage: share,
        cloud_settled: settled,
        now: input.now,
    };
    let sp = match steps::plan_steps(&step_input) {
        Ok(sp) => sp,
        Err(e) => return Decision::settled(Outcome::invalid(format!("spec.canary.{e}"))),
    };
    let want = canary_split(c, sp.target);
    let label = sp.label();
    let at = format!("{}% on {}", sp.target, c.canary_version);
    let mut send = None;
    let o = match sp.state {
        StepState::Apply | StepState::Advanced { .. } => {
            let head = match sp.state {
                StepState::Advanced { from } => format!(
                    "{} done; moving to {label}: {at}",
                    steps::step_label(from, sp.total)
                ),
                _ => format!("{label}: {at}"),
            };
            send = Some(want.clone());
            let mut o = Outcome::new(
                PHASE_PROGRESSING,
                format!(
                    "{head} (sending {}; cloud has {})",
                    render(&want),
                    render(cloud)
                ),
            );
            o.progressing = true;
            o.progressing_reason = sp.step_reason();
            o.ready_reason = "Progressing".to_string();
            o.requeue_after = Some(POLL_IN_FLIGHT);
            o
        }
        StepState::WaitingForPause { due } => Outcome::waiting_for_pause(
            format!(
                "{label} at {at} since {}; next step at {due}",
                sp.started_at.unwrap_or(input.now)
            ),
            input.now,
            due,
        ),
        StepState::WaitingForPromotion => Outcome::waiting_for_promotion(format!(
            "{label} at {at} holds for manual promotion: set spec.canary.promotedStep: {}",
            sp.current
        )),
        StepState::Paused => {
            let where_ = if sp.at_target {
                format!("at {label} ({at})")
            } else {
                format!(
                    "before {label} ({at} not sent; cloud has {})",
                    render(cloud)
                )
            };
            let due = sp
                .next_step_at
                .map(|d| format!("; its pause ends at {d}"))
                .unwrap_or_default();
            Outcome::new(
                PHASE_PAUSED,
                format!("paused {where_}{due}; set spec.paused: false to continue"),
            )
        }
        StepState::Complete => {
            let mut o = Outcome::new(
                PHASE_COMPLETED,
                format!(
                    "{} serves 100% of {} after {} steps",
                    c.canary_version,
                    input.spec.env.routine_wire(),
                    sp.total
                ),
            );
            o.ready = true;
            o
        }
    };
    Decision {
        outcome: o,
        send,
        current_step: i32::try_from(sp.current).ok(),
        step_started_at: sp.started_at,
        next_step_at: sp.next_step_at,
    }
}

/// The status to write when a cloud call failed: everything last observed is kept,
/// phase Degraded, Ready=False and Degraded=True with the cloud's code as reason and its
/// message with the RequestId. Pass the status read at the start of the reconcile (not the
/// plan's), so that a failed mutation does not look as if it had been made.
pub fn degraded_status(
    prev: Option<&EsaRoutineRolloutStatus>,
    generation: Option<i64>,
    err: &CloudError,
    now: Timestamp,
) -> EsaRoutineRolloutStatus {
    let mut st = prev.cloned().unwrap_or_default();
    let (conditions, message) = steps::degraded_conditions(&st.conditions, generation, err, now);
    st.conditions = conditions;
    st.observed_generation = generation;
    st.phase = Some(steps::PHASE_DEGRADED.to_string());
    st.message = Some(message);
    if let Some(id) = err.request_id() {
        st.last_request_id = Some(id.to_string());
    }
    st
}

/// Fold a successful CreateRoutineCodeDeployment answer into the plan's status, so the
/// status shows the split just sent without waiting for the next read.
pub fn record_deployment(
    status: &mut EsaRoutineRolloutStatus,
    resp: &CreateRoutineCodeDeploymentResponse,
) {
    if !resp.request_id.is_empty() {
        status.last_request_id = Some(resp.request_id.clone());
    }
    if let Some(id) = &resp.deployment_id {
        status.deployment_id = Some(id.clone());
    }
    if !resp.code_versions.is_empty() {
        status.code_versions = resp
            .code_versions
            .iter()
            .map(|c| CodeVersionWeight {
                code_version: c.code_version.clone(),
                percentage: c.percentage,
            })
            .collect();
        status.split = Some(render(&resp.code_versions));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::model::{CodeDeploy, DeployedCodeVersion};
    use crate::controller::conditions::is_true;
    use crate::crd::common::{
        CONDITION_DEGRADED, CONDITION_PAUSED, CONDITION_PROGRESSING, CONDITION_READY, CanaryStep,
    };

    const STABLE: &str = "1710000000000000001";
    const CANARY: &str = "1710000000000000002";

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid test timestamp")
    }

    fn spec_canary(steps: Vec<CanaryStep>) -> EsaRoutineRolloutSpec {
        EsaRoutineRolloutSpec {
            routine: "edge-fn".into(),
            env: EsaEnv::Production,
            region: None,
            code_versions: None,
            canary: Some(RoutineCanary {
                stable_version: STABLE.into(),
                canary_version: CANARY.into(),
                steps,
                promoted_step: None,
            }),
            paused: false,
            rollback: false,
            credentials_secret_ref: None,
        }
    }

    /// 10% for 5m, 25% manual gate, 50% for 1h.
    fn three() -> EsaRoutineRolloutSpec {
        spec_canary(vec![
            CanaryStep {
                percentage: 10,
                pause: Some("5m".into()),
            },
            CanaryStep {
                percentage: 25,
                pause: None,
            },
            CanaryStep {
                percentage: 50,
                pause: Some("1h".into()),
            },
        ])
    }

    fn spec_fixed(cv: &[(&str, i32)]) -> EsaRoutineRolloutSpec {
        EsaRoutineRolloutSpec {
            code_versions: Some(
                cv.iter()
                    .map(|(v, p)| CodeVersionWeight {
                        code_version: (*v).into(),
                        percentage: *p,
                    })
                    .collect(),
            ),
            canary: None,
            ..three()
        }
    }

    fn env(split: &[(&str, i32)]) -> RoutineEnv {
        RoutineEnv {
            env: "production".into(),
            code_deploy: Some(CodeDeploy {
                deploy_id: Some("dep-1".into()),
                strategy: Some("percentage".into()),
                creation_time: None,
                code_versions: split
                    .iter()
                    .map(|(v, p)| DeployedCodeVersion {
                        code_version: (*v).into(),
                        percentage: *p,
                        create_time: None,
                        description: None,
                    })
                    .collect(),
            }),
        }
    }

    fn run(
        spec: &EsaRoutineRolloutSpec,
        status: Option<&EsaRoutineRolloutStatus>,
        cloud: Option<&RoutineEnv>,
        now: i64,
    ) -> RoutinePlan {
        let input = RoutineInput {
            spec,
            generation: Some(3),
            status,
            observed: cloud,
            now: ts(now),
        };
        let p = plan(&input);
        assert_eq!(plan(&input), p, "the same input gives the same plan");
        p
    }

    /// The split sent, as (version, percentage) in request order.
    fn sent(p: &RoutinePlan) -> Option<Vec<(String, i32)>> {
        assert!(p.actions.len() <= 1, "at most one action");
        p.actions
            .first()
            .map(|RoutineAction::CreateRoutineCodeDeployment(r)| {
                assert_eq!(r.name, "edge-fn");
                assert_eq!(r.env, "production");
                assert_eq!(r.strategy, "percentage");
                r.code_versions
                    .iter()
                    .map(|c| (c.code_version.clone(), c.percentage))
                    .collect()
            })
    }

    fn pairs(v: &[(&str, i32)]) -> Option<Vec<(String, i32)>> {
        Some(v.iter().map(|(a, b)| ((*a).to_string(), *b)).collect())
    }

    fn cond<'a>(s: &'a EsaRoutineRolloutStatus, t: &str) -> &'a str {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.reason.as_str())
            .unwrap_or("")
    }

    #[test]
    fn fixed_split_table() {
        struct Case {
            name: &'static str,
            spec: Vec<(&'static str, i32)>,
            paused: bool,
            cloud: Option<Vec<(&'static str, i32)>>,
            send: Option<Vec<(&'static str, i32)>>,
            phase: &'static str,
            ready: bool,
        }
        let cases = [
            Case {
                name: "same split in another order: nothing to do",
                spec: vec![("a", 90), ("b", 10)],
                paused: false,
                cloud: Some(vec![("b", 10), ("a", 90)]),
                send: None,
                phase: "Completed",
                ready: true,
            },
            Case {
                name: "different percentages: send the spec's split",
                spec: vec![("a", 90), ("b", 10)],
                paused: false,
                cloud: Some(vec![("a", 50), ("b", 50)]),
                send: Some(vec![("a", 90), ("b", 10)]),
                phase: "Progressing",
                ready: false,
            },
            Case {
                name: "no deployment yet",
                spec: vec![("a", 100)],
                paused: false,
                cloud: None,
                send: Some(vec![("a", 100)]),
                phase: "Progressing",
                ready: false,
            },
            Case {
                name: "single version at 100% already there",
                spec: vec![("a", 100)],
                paused: false,
                cloud: Some(vec![("a", 100)]),
                send: None,
                phase: "Completed",
                ready: true,
            },
            Case {
                name: "another version at 100%",
                spec: vec![("a", 100)],
                paused: false,
                cloud: Some(vec![("z", 100)]),
                send: Some(vec![("a", 100)]),
                phase: "Progressing",
                ready: false,
            },
            Case {
                name: "paused holds a difference",
                spec: vec![("a", 100)],
                paused: true,
                cloud: Some(vec![("z", 100)]),
                send: None,
                phase: "Paused",
                ready: false,
            },
        ];
        for c in cases {
            let spec = EsaRoutineRolloutSpec {
                paused: c.paused,
                ..spec_fixed(&c.spec)
            };
            let cloud = c.cloud.as_deref().map(env);
            let p = run(&spec, None, cloud.as_ref(), 0);
            assert_eq!(sent(&p), c.send.as_deref().and_then(pairs), "{}", c.name);
            assert_eq!(p.status.phase.as_deref(), Some(c.phase), "{}", c.name);
            assert_eq!(
                is_true(&p.status.conditions, CONDITION_READY),
                c.ready,
                "{}",
                c.name
            );
            assert_eq!(
                is_true(&p.status.conditions, CONDITION_PAUSED),
                c.paused,
                "{}",
                c.name
            );
            assert_eq!(p.status.observed_generation, Some(3));
            assert_eq!(
                p.requeue_after.is_some(),
                c.send.is_some(),
                "{}: poll only after a mutation",
                c.name
            );
        }
    }

    /// Drive a whole canary against a fake cloud that applies each deployment at once,
    /// feeding each plan's status into the next, as the reconciler does.
    #[test]
    fn canary_walkthrough() {
        let mut spec = three();
        let mut cloud: Option<RoutineEnv> = None;
        let mut status: Option<EsaRoutineRolloutStatus> = None;
        let mut step = |spec: &EsaRoutineRolloutSpec,
                        cloud: &mut Option<RoutineEnv>,
                        now: i64|
         -> RoutinePlan {
            let p = run(spec, status.as_ref(), cloud.as_ref(), now);
            if let Some(split) = sent(&p) {
                let v: Vec<(&str, i32)> = split.iter().map(|(a, b)| (a.as_str(), *b)).collect();
                *cloud = Some(env(&v));
            }
            status = Some(p.status.clone());
            p
        };

        // t=0: nothing deployed: step 1/3.
        let p = step(&spec, &mut cloud, 0);
        assert_eq!(sent(&p), pairs(&[(CANARY, 10), (STABLE, 90)]));
        assert_eq!(p.status.current_step, Some(0));
        assert_eq!(
            p.status.step_started_at, None,
            "timer not started before the cloud shows it"
        );
        assert_eq!(cond(&p.status, CONDITION_PROGRESSING), "Step1");
        assert_eq!(p.requeue_after, Some(POLL_IN_FLIGHT));

        // t=10: the cloud shows 10%: timer starts, nothing new is sent.
        let p = step(&spec, &mut cloud, 10);
        assert_eq!(sent(&p), None, "nothing new right after its own mutation");
        assert_eq!(p.status.step_started_at, Some(ts(10).to_string()));
        assert_eq!(p.status.next_step_at, Some(ts(310).to_string()));
        assert_eq!(
            p.status.split.as_deref(),
            Some(&*format!("{CANARY}:10,{STABLE}:90"))
        );
        assert_eq!(cond(&p.status, CONDITION_PROGRESSING), "WaitingForPause");
        assert_eq!(p.requeue_after, Some(Duration::from_secs(300)));

        // t=200: still waiting.
        let p = step(&spec, &mut cloud, 200);
        assert_eq!(sent(&p), None);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(110)));

        // t=310: step 2/3 (25%).
        let p = step(&spec, &mut cloud, 310);
        assert_eq!(sent(&p), pairs(&[(CANARY, 25), (STABLE, 75)]));
        assert_eq!(p.status.current_step, Some(1));

        // t=320: manual gate.
        let p = step(&spec, &mut cloud, 320);
        assert_eq!(sent(&p), None);
        assert_eq!(
            cond(&p.status, CONDITION_PROGRESSING),
            "WaitingForPromotion"
        );
        let msg = p.status.message.clone().unwrap_or_default();
        assert!(
            msg.contains("step 2/3") && msg.contains("set spec.canary.promotedStep: 1"),
            "{msg}"
        );
        assert_eq!(p.requeue_after, None, "a gate waits for a spec change");

        // Much later, still gated.
        assert_eq!(sent(&step(&spec, &mut cloud, 90_000)), None);

        // promotedStep raised: step 3/3 (50%).
        if let Some(c) = spec.canary.as_mut() {
            c.promoted_step = Some(1);
        }
        let p = step(&spec, &mut cloud, 90_010);
        assert_eq!(sent(&p), pairs(&[(CANARY, 50), (STABLE, 50)]));
        let p = step(&spec, &mut cloud, 90_020);
        assert_eq!(sent(&p), None);
        assert_eq!(p.status.step_started_at, Some(ts(90_020).to_string()));

        // After the hour: canary 100%, one entry.
        let p = step(&spec, &mut cloud, 90_020 + 3600);
        assert_eq!(sent(&p), pairs(&[(CANARY, 100)]));
        assert_eq!(p.status.current_step, Some(3));
        assert_eq!(cond(&p.status, CONDITION_PROGRESSING), "FullRollout");

        // Completed and stays so.
        for t in [90_020 + 3610, 200_000] {
            let p = step(&spec, &mut cloud, t);
            assert_eq!(sent(&p), None);
            assert_eq!(p.status.phase.as_deref(), Some("Completed"));
            assert!(is_true(&p.status.conditions, CONDITION_READY));
            assert!(!is_true(&p.status.conditions, CONDITION_PROGRESSING));
            assert_eq!(p.requeue_after, None);
        }
    }

    #[test]
    fn restart_with_empty_status_mid_canary() {
        let spec = three();
        // The cloud is at step 3 (50%); status was lost.
        let cloud = env(&[(STABLE, 50), (CANARY, 50)]);
        let p = run(&spec, None, Some(&cloud), 1000);
        assert_eq!(sent(&p), None, "no contradicting mutation");
        assert_eq!(p.status.current_step, Some(2));
        assert_eq!(p.status.step_started_at, Some(ts(1000).to_string()));
        assert_eq!(p.status.next_step_at, Some(ts(4600).to_string()));
        // Status present but stale (says step 1) while the cloud is at step 3.
        let stale = EsaRoutineRolloutStatus {
            current_step: Some(0),
            step_started_at: Some(ts(0).to_string()),
            ..Default::default()
        };
        let p = run(&spec, Some(&stale), Some(&cloud), 1000);
        assert_eq!(sent(&p), None);
        assert_eq!(p.status.current_step, Some(2));
        // Lost status at the manual gate: still gated.
        let cloud = env(&[(CANARY, 25), (STABLE, 75)]);
        let p = run(&spec, None, Some(&cloud), 1000);
        assert_eq!(sent(&p), None);
        assert_eq!(p.status.current_step, Some(1));
        assert_eq!(
            cond(&p.status, CONDITION_PROGRESSING),
            "WaitingForPromotion"
        );
    }

    #[test]
    fn paused_mid_step_holds_and_resumes() {
        let mut spec = three();
        spec.paused = true;
        let cloud = env(&[(CANARY, 10), (STABLE, 90)]);
        let st = EsaRoutineRolloutStatus {
            current_step: Some(0),
            step_started_at: Some(ts(0).to_string()),
            ..Default::default()
        };
        for now in [100, 10_000] {
            let p = run(&spec, Some(&st), Some(&cloud), now);
            assert_eq!(sent(&p), None, "paused at t={now}");
            assert_eq!(p.status.phase.as_deref(), Some("Paused"));
            assert!(is_true(&p.status.conditions, CONDITION_PAUSED));
            assert_eq!(p.status.current_step, Some(0));
            assert_eq!(p.status.step_started_at, Some(ts(0).to_string()));
        }
        // Paused before the cloud reached the step: nothing is sent either.
        let p = run(&spec, None, None, 0);
        assert_eq!(sent(&p), None);
        // Unpaused after the pause elapsed: advance at once.
        spec.paused = false;
        let p = run(&spec, Some(&st), Some(&cloud), 10_000);
        assert_eq!(sent(&p), pairs(&[(CANARY, 25), (STABLE, 75)]));
        assert!(!is_true(&p.status.conditions, CONDITION_PAUSED));
    }

    #[test]
    fn timer_waits_for_the_cloud() {
        let spec = three();
        // Advanced to step 2 but the cloud still shows step 1 (e.g. the call failed).
        let st = EsaRoutineRolloutStatus {
            current_step: Some(1),
            step_started_at: None,
            ..Default::default()
        };
        let cloud = env(&[(CANARY, 10), (STABLE, 90)]);
        let p = run(&spec, Some(&st), Some(&cloud), 5000);
        assert_eq!(
            sent(&p),
            pairs(&[(CANARY, 25), (STABLE, 75)]),
            "re-send step 2"
        );
        assert_eq!(p.status.current_step, Some(1));
        assert_eq!(p.status.step_started_at, None);
        let cloud = env(&[(CANARY, 25), (STABLE, 75)]);
        let p = run(&spec, Some(&p.status), Some(&cloud), 6000);
        assert_eq!(p.status.step_started_at, Some(ts(6000).to_string()));
    }

    #[test]
    fn changed_stable_version_is_corrected_at_the_same_step() {
        let spec = three();
        let st = EsaRoutineRolloutStatus {
            current_step: Some(1),
            step_started_at: Some(ts(0).to_string()),
            ..Default::default()
        };
        let cloud = env(&[(CANARY, 25), ("1700000000000000000", 75)]);
        let p = run(&spec, Some(&st), Some(&cloud), 10);
        assert_eq!(sent(&p), pairs(&[(CANARY, 25), (STABLE, 75)]));
        assert_eq!(p.status.current_step, Some(1));
    }

    #[test]
    fn rollback_from_any_step() {
        let mut spec = three();
        spec.rollback = true;
        let clouds: Vec<Option<Vec<(&str, i32)>>> = vec![
            None,
            Some(vec![(CANARY, 10), (STABLE, 90)]),
            Some(vec![(CANARY, 25), (STABLE, 75)]),
            Some(vec![(CANARY, 50), (STABLE, 50)]),
            Some(vec![(CANARY, 100)]),
        ];
        for (i, c) in clouds.iter().enumerate() {
            for paused in [false, true] {
                spec.paused = paused;
                let st = EsaRoutineRolloutStatus {
                    current_step: Some(i32::try_from(i).unwrap_or(0)),
                    step_started_at: Some(ts(0).to_string()),
                    ..Default::default()
                };
                let cloud = c.as_deref().map(env);
                let p = run(&spec, Some(&st), cloud.as_ref(), 100);
                assert_eq!(
                    sent(&p),
                    pairs(&[(STABLE, 100)]),
                    "cloud {c:?} paused {paused}"
                );
                assert_eq!(cond(&p.status, CONDITION_PROGRESSING), "RollingBack");
                assert_eq!(p.status.current_step, None);
            }
        }
        let cloud = env(&[(STABLE, 100)]);
        let p = run(&spec, None, Some(&cloud), 100);
        assert_eq!(sent(&p), None, "rolled back: nothing more");
        assert_eq!(p.status.phase.as_deref(), Some("RolledBack"));
        assert!(is_true(&p.status.conditions, CONDITION_READY));
        assert_eq!(cond(&p.status, CONDITION_READY), "RolledBack");
        // Undo the rollback: the canary starts over at step 1.
        spec.rollback = false;
        spec.paused = false;
        let p = run(&spec, Some(&p.status), Some(&cloud), 200);
        assert_eq!(sent(&p), pairs(&[(CANARY, 10), (STABLE, 90)]));
    }

    #[test]
    fn invalid_specs_are_reported_not_acted_on() {
        let mut both = three();
        both.code_versions = Some(vec![CodeVersionWeight {
            code_version: "a".into(),
            percentage: 100,
        }]);
        let mut neither = three();
        neither.canary = None;
        let mut bad_pause = three();
        if let Some(c) = bad_pause.canary.as_mut() {
            c.steps[2].pause = Some("1 hour".into());
        }
        let mut same_versions = three();
        if let Some(c) = same_versions.canary.as_mut() {
            c.canary_version = STABLE.into();
        }
        let rollback_fixed = EsaRoutineRolloutSpec {
            rollback: true,
            ..spec_fixed(&[("a", 100)])
        };
        let cases = [
            (both, "exactly one of"),
            (neither, "exactly one of"),
            (
                bad_pause,
                "spec.canary.steps[2].pause: \"1 hour\" is not a duration",
            ),
            (same_versions, "are both"),
            (spec_fixed(&[("a", 60), ("b", 30)]), "sum to 90"),
            (spec_fixed(&[("a", 50), ("a", 50)]), "twice"),
            (
                spec_fixed(&[("a", 40), ("b", 30), ("c", 30)]),
                "1 or 2 entries",
            ),
            (rollback_fixed, "spec.rollback needs spec.canary"),
        ];
        let cloud = env(&[(CANARY, 10), (STABLE, 90)]);
        for (spec, want) in cases {
            let p = run(&spec, None, Some(&cloud), 0);
            assert_eq!(sent(&p), None, "{want}");
            assert_eq!(p.status.phase.as_deref(), Some("Degraded"), "{want}");
            assert!(is_true(&p.status.conditions, CONDITION_DEGRADED), "{want}");
            assert_eq!(cond(&p.status, CONDITION_DEGRADED), "InvalidSpec");
            let msg = p.status.message.clone().unwrap_or_default();
            assert!(msg.contains(want), "{msg} should contain {want}");
            assert_eq!(p.requeue_after, None);
            // The cloud's split is still shown.
            assert_eq!(p.status.code_versions.len(), 2);
        }
    }

    #[test]
    fn degraded_status_keeps_observed_fields() {
        let spec = three();
        let cloud = env(&[(CANARY, 10), (STABLE, 90)]);
        let st = run(&spec, None, Some(&cloud), 0).status;
        let err = CloudError::Api {
            status: 400,
            code: "Site.ServiceBusy".into(),
            message: "The site is busy.".into(),
            request_id: Some("REQ-1".into()),
            retry_after: None,
        };
        let d = degraded_status(Some(&st), Some(4), &err, ts(50));
        assert_eq!(d.phase.as_deref(), Some("Degraded"));
        assert_eq!(d.observed_generation, Some(4));
        assert_eq!(d.current_step, st.current_step);
        assert_eq!(d.step_started_at, st.step_started_at);
        assert_eq!(d.code_versions, st.code_versions);
        assert_eq!(d.split, st.split);
        assert_eq!(d.last_request_id.as_deref(), Some("REQ-1"));
        assert!(is_true(&d.conditions, CONDITION_DEGRADED));
        assert!(!is_true(&d.conditions, CONDITION_READY));
        assert_eq!(cond(&d, CONDITION_DEGRADED), "Site_ServiceBusy");
        let msg = d.message.clone().unwrap_or_default();
        assert!(
            msg.contains("The site is busy.") && msg.contains("REQ-1"),
            "{msg}"
        );
        // Progressing is left as the last plan wrote it.
        assert_eq!(cond(&d, CONDITION_PROGRESSING), "WaitingForPause");
        // The next successful plan clears Degraded.
        let p = run(&spec, Some(&d), Some(&cloud), 60);
        assert!(!is_true(&p.status.conditions, CONDITION_DEGRADED));
        assert_eq!(p.status.last_request_id.as_deref(), Some("REQ-1"));
    }

    #[test]
    fn record_deployment_updates_the_split() {
        let spec = three();
        let mut p = run(&spec, None, None, 0);
        record_deployment(
            &mut p.status,
            &CreateRoutineCodeDeploymentResponse {
                request_id: "REQ-2".into(),
                strategy: Some("percentage".into()),
                deployment_id: Some("234".into()),
                code_versions: vec![
                    CodeVersionSplit {
                        code_version: CANARY.into(),
                        percentage: 10,
                    },
                    CodeVersionSplit {
                        code_version: STABLE.into(),
                        percentage: 90,
                    },
                ],
            },
        );
        assert_eq!(p.status.deployment_id.as_deref(), Some("234"));
        assert_eq!(p.status.last_request_id.as_deref(), Some("REQ-2"));
        assert_eq!(
            p.status.split.as_deref(),
            Some(&*format!("{CANARY}:10,{STABLE}:90"))
        );
    }

    #[test]
    fn observed_env_picks_the_spec_env() {
        let resp = GetRoutineResponse {
            envs: vec![
                RoutineEnv {
                    env: "staging".into(),
                    code_deploy: None,
                },
                env(&[(STABLE, 100)]),
            ],
            ..Default::default()
        };
        assert_eq!(
            observed_env(&resp, EsaEnv::Production).map(|e| e.env.as_str()),
            Some("production")
        );
        assert_eq!(observed_env(&resp, EsaEnv::Staging), None, "no deployment");
    }
}
