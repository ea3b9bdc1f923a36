//! `EsaRoutineRollout`: what to send to the cloud and what status to write, as a pure
//! function of the validated spec, the previous status, the routine environment GetRoutine
//! reports and `now`.
//!
//! - A fixed split (`codeVersions`): the cloud's split must equal it (order does not
//!   matter); otherwise one CreateRoutineCodeDeployment with exactly that split.
//! - A canary: at step `i` the canary has `steps[i].percentage` and the stable version the
//!   rest; after the last step the canary has 100% (one entry). The progression is
//!   [`plan_steps`]; the canary's share and whether the rest is on the stable version are
//!   read from the cloud, so a lost status resumes where the cloud is.
//! - A rollback: 100% on the stable version. It wins over `paused`.
//! - `paused`: nothing is sent (neither a step nor a correction).

use super::spec::{Canary, Mode, RoutineSpec};
use crate::cloud::model::wire::ROUTINE_STRATEGY_PERCENTAGE;
use crate::cloud::model::{
    CodeVersionSplit, CreateRoutineCodeDeploymentRequest, CreateRoutineCodeDeploymentResponse,
    GetRoutineResponse, RoutineEnv,
};
use crate::controller::outcome::{
    Outcome, PHASE_COMPLETED, PHASE_PAUSED, PHASE_PROGRESSING, PHASE_ROLLED_BACK,
};
use crate::controller::plan::{CloudAction, Decision, Input, Plan};
use crate::controller::status::settle;
use crate::controller::steps::{Approval, StepInput, Wording, plan_steps};
use crate::crd::common::EsaEnv;
use crate::crd::routine::{CodeVersionWeight, EsaRoutineRolloutStatus};

/// What the shell read: GetRoutine's entry for the spec's environment, when it has a
/// deployment.
pub type Observed = Option<RoutineEnv>;

/// The one cloud mutation of this kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutineAction {
    Deploy(CreateRoutineCodeDeploymentRequest),
}

impl CloudAction for RoutineAction {
    fn name(&self) -> &'static str {
        "CreateRoutineCodeDeployment"
    }

    fn describe(&self) -> String {
        let RoutineAction::Deploy(r) = self;
        format!(
            "deployed {} to {} of routine {}",
            render(&r.code_versions),
            r.env,
            r.name
        )
    }
}

pub type RoutineInput<'a> = Input<'a, RoutineSpec, EsaRoutineRolloutStatus, Observed>;

/// The entry of GetRoutine's answer for `env`, when it has a deployment.
pub fn observed_env(resp: GetRoutineResponse, env: EsaEnv) -> Observed {
    resp.envs
        .into_iter()
        .find(|e| e.env.eq_ignore_ascii_case(env.routine_wire()))
        .filter(|e| e.code_deploy.is_some())
}

/// Decide. Pure: the same input always gives the same plan.
pub fn plan(input: &RoutineInput<'_>) -> Plan<RoutineAction, EsaRoutineRolloutStatus> {
    let spec = input.spec;
    let cloud = cloud_split(input.observed);
    let mut d = match &spec.mode {
        Mode::Fixed(want) => fixed(spec, want, &cloud),
        Mode::Canary(c) => canary(input, c, &cloud),
        Mode::Rollback { stable, canary } => rollback(spec, stable, canary, &cloud),
    };
    d.outcome.paused = spec.paused;
    let mut status = EsaRoutineRolloutStatus {
        current_step: d.steps.current_step,
        step_started_at: d.steps.step_started_at.clone(),
        next_step_at: d.steps.next_step_at.clone(),
        step_advanced_at: d.steps.step_advanced_at.clone(),
        deployment_id: input
            .observed
            .as_ref()
            .and_then(|e| e.code_deploy.as_ref())
            .and_then(|cd| cd.deploy_id.clone()),
        code_versions: weights(&cloud),
        split: (!cloud.is_empty()).then(|| render(&cloud)),
        ..Default::default()
    };
    settle(
        &mut status,
        input.status,
        &d.outcome,
        input.generation,
        input.now,
    );
    let actions = d
        .action
        .map(|code_versions| {
            RoutineAction::Deploy(CreateRoutineCodeDeploymentRequest {
                name: spec.routine.clone(),
                env: spec.env.routine_wire().to_string(),
                strategy: ROUTINE_STRATEGY_PERCENTAGE.to_string(),
                code_versions,
            })
        })
        .into_iter()
        .collect();
    Plan {
        actions,
        status,
        requeue: d.outcome.requeue,
    }
}

type RoutineDecision = Decision<Vec<CodeVersionSplit>>;

fn fixed(
    spec: &RoutineSpec,
    want: &[CodeVersionSplit],
    cloud: &[CodeVersionSplit],
) -> RoutineDecision {
    if same(want, cloud) {
        return Decision::hold(Outcome::done(
            PHASE_COMPLETED,
            "Completed",
            format!("{} serves {}", spec.env.routine_wire(), render(cloud)),
        ));
    }
    if spec.paused {
        return Decision::hold(Outcome::new(
            PHASE_PAUSED,
            format!(
                "paused: cloud has {}, spec wants {}; set spec.paused: false to deploy",
                render(cloud),
                render(want)
            ),
        ));
    }
    Decision::send(
        Outcome::moving(
            PHASE_PROGRESSING,
            "Deploying",
            format!("deploying {} (cloud has {})", render(want), render(cloud)),
        ),
        want.to_vec(),
    )
}

fn rollback(
    spec: &RoutineSpec,
    stable: &str,
    canary: &str,
    cloud: &[CodeVersionSplit],
) -> RoutineDecision {
    let want = split(&[(stable, 100)]);
    if same(&want, cloud) {
        return Decision::hold(Outcome::done(
            PHASE_ROLLED_BACK,
            "RolledBack",
            format!(
                "rolled back: {stable} serves 100% of {}; set spec.rollback: false to roll out {canary} again",
                spec.env.routine_wire(),
            ),
        ));
    }
    Decision::send(
        Outcome::moving(
            PHASE_PROGRESSING,
            "RollingBack",
            format!("rolling back to {stable} (cloud has {})", render(cloud)),
        ),
        want,
    )
}

fn canary(input: &RoutineInput<'_>, c: &Canary, cloud: &[CodeVersionSplit]) -> RoutineDecision {
    let share: i32 = cloud
        .iter()
        .filter(|e| e.code_version == c.canary)
        .map(|e| e.percentage)
        .sum();
    let share = (share > 0).then_some(share);
    let prev = input.status;
    let sp = plan_steps(&StepInput {
        steps: &c.steps,
        approved_step: Approval::for_version(c.promotion.as_ref(), &c.canary),
        paused: input.spec.paused,
        prev_step: prev.and_then(|s| s.current_step),
        prev_started_at: prev.and_then(|s| s.step_started_at.as_deref()),
        prev_advanced_at: prev.and_then(|s| s.step_advanced_at.as_deref()),
        prev_same_generation: prev.is_some_and(|s| s.observed_generation == input.generation),
        prev_percentage: prev.map(|s| {
            s.code_versions
                .iter()
                .filter(|w| w.code_version == c.canary)
                .map(|w| w.percentage)
                .sum()
        }),
        cloud_percentage: share,
        cloud_settled: share.is_some_and(|p| same(&canary_split(c, p), cloud)),
        analysis: crate::controller::analysis::step_verdict(
            prev.and_then(|s| s.analysis.as_ref()),
            &c.canary,
        ),
        now: input.now,
    });
    let want = canary_split(c, sp.target);
    let wording = Wording {
        at: format!("{}% on {}", sp.target, c.canary),
        promote: format!(
            "spec.canary.promotion: {{version: \"{}\", step: {}}}{}",
            c.canary,
            sp.current,
            Approval::stale_note(c.promotion.as_ref(), &c.canary)
        ),
        cloud: format!("cloud has {}", render(cloud)),
        complete: format!(
            "{} serves 100% of {} after {} steps",
            c.canary,
            input.spec.env.routine_wire(),
            sp.total
        ),
    };
    let mut d = match sp.holding(&wording, input.now) {
        Some(outcome) => Decision::hold(outcome),
        None => {
            let message = format!(
                "{} (sending {}; cloud has {})",
                sp.head(&wording.at),
                render(&want),
                render(cloud)
            );
            Decision::send(
                Outcome::moving(PHASE_PROGRESSING, &sp.step_reason(), message),
                want,
            )
        }
    };
    d.steps = sp.record();
    d
}

/// Fold a successful CreateRoutineCodeDeployment answer into the status about to be
/// written, so it shows the split just sent without waiting for the next read.
pub fn record_deployment(
    status: &mut EsaRoutineRolloutStatus,
    resp: &CreateRoutineCodeDeploymentResponse,
) {
    if let Some(id) = &resp.deployment_id {
        status.deployment_id = Some(id.clone());
    }
    if !resp.code_versions.is_empty() {
        status.code_versions = weights(&resp.code_versions);
        status.split = Some(render(&resp.code_versions));
    }
}

fn cloud_split(env: &Option<RoutineEnv>) -> Vec<CodeVersionSplit> {
    env.as_ref()
        .and_then(|e| e.code_deploy.as_ref())
        .map(|d| {
            d.code_versions
                .iter()
                .map(|c| CodeVersionSplit {
                    code_version: c.code_version.clone(),
                    percentage: c.percentage,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn weights(split: &[CodeVersionSplit]) -> Vec<CodeVersionWeight> {
    split
        .iter()
        .map(|c| CodeVersionWeight {
            code_version: c.code_version.clone(),
            percentage: c.percentage,
        })
        .collect()
}

/// A split as (version, percentage) sorted by version, entries at 0% dropped: the form in
/// which two splits are compared.
fn normalized(split: &[CodeVersionSplit]) -> Vec<(&str, i32)> {
    let mut v: Vec<(&str, i32)> = split
        .iter()
        .filter(|c| c.percentage > 0)
        .map(|c| (c.code_version.as_str(), c.percentage))
        .collect();
    v.sort();
    v
}

fn same(a: &[CodeVersionSplit], b: &[CodeVersionSplit]) -> bool {
    normalized(a) == normalized(b)
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
fn canary_split(c: &Canary, percentage: i32) -> Vec<CodeVersionSplit> {
    if percentage >= 100 {
        split(&[(&c.canary, 100)])
    } else {
        split(&[(&c.canary, percentage), (&c.stable, 100 - percentage)])
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::fixtures::*;
    use super::super::spec::validate;
    use super::*;
    use crate::cloud::model::{CodeDeploy, DeployedCodeVersion};
    use crate::controller::conditions::is_true;
    use crate::controller::plan::{Requeue, decide};
    use crate::crd::common::{
        CONDITION_DEGRADED, CONDITION_PAUSED, CONDITION_PROGRESSING, CONDITION_READY, CanaryStep,
    };
    use crate::crd::routine::{EsaRoutineRolloutSpec, RoutinePromotion};
    use jiff::Timestamp;
    use std::time::Duration;

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

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid test timestamp")
    }

    type RoutinePlan = Plan<RoutineAction, EsaRoutineRolloutStatus>;

    fn run(
        spec: &EsaRoutineRolloutSpec,
        status: Option<&EsaRoutineRolloutStatus>,
        cloud: Option<&RoutineEnv>,
        now: i64,
    ) -> RoutinePlan {
        let observed: Observed = cloud.cloned();
        decide(
            plan,
            Input {
                spec: &validate(spec).expect("valid spec"),
                generation: Some(3),
                status,
                observed: &observed,
                now: ts(now),
            },
        )
    }

    /// The split sent, as (version, percentage) in request order.
    fn sent(p: &RoutinePlan) -> Option<Vec<(String, i32)>> {
        assert!(p.actions.len() <= 1, "at most one action");
        p.actions.first().map(|RoutineAction::Deploy(r)| {
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
                p.requeue != Requeue::Settled,
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
        assert_eq!(p.requeue, Requeue::Active);

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
        assert_eq!(p.requeue, Requeue::After(Duration::from_secs(300)));

        // t=200: still waiting.
        let p = step(&spec, &mut cloud, 200);
        assert_eq!(sent(&p), None);
        assert_eq!(p.requeue, Requeue::After(Duration::from_secs(110)));

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
            msg.contains("step 2/3")
                && msg.contains(&format!(
                    "set spec.canary.promotion: {{version: \"{CANARY}\", step: 1}}"
                )),
            "{msg}"
        );
        assert_eq!(
            p.requeue,
            Requeue::Settled,
            "a gate waits for a spec change"
        );

        // Much later, still gated.
        assert_eq!(sent(&step(&spec, &mut cloud, 90_000)), None);

        // Approved for this version: step 3/3 (50%).
        if let Some(c) = spec.canary.as_mut() {
            c.promotion = Some(RoutinePromotion {
                version: CANARY.into(),
                step: 1,
            });
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
            assert_eq!(p.requeue, Requeue::Settled);
        }
    }

    /// Invariant 1b for routines: an approval opens only the gates of the canary version it
    /// names; the next release starts at its first step with every gate closed.
    #[test]
    fn an_approval_opens_only_the_gates_of_the_version_it_names() {
        const NEXT: &str = "1710000000000000003";
        let gate = |percentage| CanaryStep {
            percentage,
            pause: None,
            analysis: None,
        };
        let mut spec = spec_canary(vec![gate(10), gate(50)]);
        let approve = |spec: &mut EsaRoutineRolloutSpec, version: &str, step| {
            if let Some(c) = spec.canary.as_mut() {
                c.promotion = Some(RoutinePromotion {
                    version: version.into(),
                    step,
                });
            }
        };
        approve(&mut spec, CANARY, 1);
        let finished = env(&[(CANARY, 100)]);
        let done = EsaRoutineRolloutStatus {
            current_step: Some(2),
            ..Default::default()
        };
        let p = run(&spec, Some(&done), Some(&finished), 0);
        assert_eq!(sent(&p), None);
        assert_eq!(p.status.phase.as_deref(), Some("Completed"));

        // The next release; the approval (not in Git) still names the previous version.
        if let Some(c) = spec.canary.as_mut() {
            c.stable_version = CANARY.into();
            c.canary_version = NEXT.into();
        }
        let p = run(&spec, Some(&p.status), Some(&finished), 10);
        assert_eq!(sent(&p), pairs(&[(NEXT, 10), (CANARY, 90)]));
        let at_gate = env(&[(NEXT, 10), (CANARY, 90)]);
        let p = run(&spec, Some(&p.status), Some(&at_gate), 20);
        assert_eq!(sent(&p), None, "the gate at 10% is closed for {NEXT}");
        assert_eq!(
            cond(&p.status, CONDITION_PROGRESSING),
            "WaitingForPromotion"
        );
        let msg = p.status.message.clone().unwrap_or_default();
        assert!(
            msg.contains(&format!("names {CANARY}, not {NEXT}")),
            "the message says why the approval opens no gate: {msg}"
        );
        // Much later, still closed; and a lost status does not open it either.
        assert_eq!(
            sent(&run(&spec, Some(&p.status), Some(&at_gate), 99_999)),
            None
        );
        assert_eq!(sent(&run(&spec, None, Some(&at_gate), 99_999)), None);

        // Approved for the new version: step 2 (50%).
        approve(&mut spec, NEXT, 0);
        let p = run(&spec, Some(&p.status), Some(&at_gate), 30);
        assert_eq!(sent(&p), pairs(&[(NEXT, 50), (CANARY, 50)]));
    }

    #[test]
    fn promoted_step_is_refused_except_for_a_rollback() {
        let mut spec = three();
        if let Some(c) = spec.canary.as_mut() {
            c.promoted_step = Some(1);
        }
        let err = validate(&spec).expect_err("promotedStep is refused");
        assert!(
            err.contains("replaced by spec.canary.promotion"),
            "the error names the replacement: {err}"
        );
        // A rollback never depends on approvals.
        spec.rollback = true;
        assert!(validate(&spec).is_ok());
    }

    #[test]
    fn restart_with_empty_status_mid_canary() {
        // The gate at step 2 (25%) was approved: that is how the cloud got to 50%.
        let mut spec = three();
        if let Some(c) = spec.canary.as_mut() {
            c.promotion = Some(RoutinePromotion {
                version: CANARY.into(),
                step: 1,
            });
        }
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
        // Without the approval, a cloud past the gate is brought back to it (1a).
        let p = run(&three(), None, Some(&cloud), 1000);
        assert_eq!(sent(&p), pairs(&[(CANARY, 25), (STABLE, 75)]));
        assert_eq!(p.status.current_step, Some(1));
        // Lost status at the manual gate: still gated.
        let cloud = env(&[(CANARY, 25), (STABLE, 75)]);
        let p = run(&three(), None, Some(&cloud), 1000);
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
        // As the operator wrote it when the timer started: with the cloud's split.
        let st = EsaRoutineRolloutStatus {
            current_step: Some(0),
            step_started_at: Some(ts(0).to_string()),
            code_versions: weights(&split(&[(CANARY, 10), (STABLE, 90)])),
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
        // Advanced to step 2 but the cloud still shows step 1 (e.g. the call failed); the
        // status was written for this generation and records the advance.
        let st = EsaRoutineRolloutStatus {
            current_step: Some(1),
            step_started_at: None,
            step_advanced_at: Some(ts(4000).to_string()),
            observed_generation: Some(3),
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
    fn the_next_plan_after_a_failure_clears_degraded() {
        let spec = three();
        let cloud = env(&[(CANARY, 10), (STABLE, 90)]);
        let st = run(&spec, None, Some(&cloud), 0).status;
        let d: EsaRoutineRolloutStatus = crate::controller::status::degraded(
            Some(&st),
            Some(4),
            "Site.ServiceBusy",
            "busy",
            Some("REQ-1"),
            ts(50),
        );
        assert_eq!(d.current_step, st.current_step);
        assert_eq!(d.split, st.split);
        let p = run(&spec, Some(&d), Some(&cloud), 60);
        assert!(!is_true(&p.status.conditions, CONDITION_DEGRADED));
        assert_eq!(p.status.last_request_id.as_deref(), Some("REQ-1"));
        assert_eq!(
            p.status.step_started_at, st.step_started_at,
            "the timer kept running"
        );
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
            observed_env(resp.clone(), EsaEnv::Production).map(|e| e.env),
            Some("production".to_string())
        );
        assert_eq!(observed_env(resp, EsaEnv::Staging), None, "no deployment");
    }
}
