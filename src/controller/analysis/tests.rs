//! The analysis verdicts through the pure parts: what the step engine sees, what holds a
//! rollout, the requeue, and each kind's `parse` turning a verdict into a rollback or a
//! hold, and the routine planner walking (or not) past an analysed step. The engine is
//! faked by writing its verdict into the status.

use super::*;
use crate::cloud::model::{CodeDeploy, DeployedCodeVersion, RoutineEnv};
use crate::controller::conditions::is_true;
use crate::controller::plan::{Input, Plan, ValidSpec};
use crate::controller::routine::plan::{RoutineAction, plan as routine_plan};
use crate::controller::routine::spec::fixtures::{CANARY, STABLE, spec_canary};
use crate::controller::routine::spec::{Mode, RoutineSpec};
use crate::crd::analysis::{MeasurementPhase, MetricStatus, TemplateRef};
use crate::crd::common::{CONDITION_PROGRESSING, CanaryStep};
use crate::crd::{EsaRoutineRollout, EsaRoutineRolloutSpec, EsaRoutineRolloutStatus};

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("valid")
}

fn aref() -> AnalysisRef {
    AnalysisRef {
        template_ref: TemplateRef {
            name: "error-ratio".into(),
            cluster_scope: false,
        },
        args: vec![],
    }
}

fn verdict(phase: AnalysisPhase, step: Option<i32>, version: &str) -> AnalysisStatus {
    AnalysisStatus {
        template: "AnalysisTemplate/error-ratio".into(),
        phase,
        message: Some(format!("{phase:?}")),
        started_at: ts(0).to_string(),
        step,
        version: Some(version.into()),
        metrics: vec![MetricStatus {
            name: "error-ratio".into(),
            provider: "prometheus".into(),
            query: "sum(rate(errors[1m]))".into(),
            phase,
            message: None,
            count: 2,
            successful: 0,
            failed: 2,
            inconclusive: 0,
            errors: 0,
            consecutive_errors: 0,
            measurements: vec![crate::crd::analysis::Measurement {
                at: ts(10).to_string(),
                phase: MeasurementPhase::Failed,
                value: Some("0.5".into()),
                message: None,
            }],
            next_at: Some(ts(70).to_string()),
        }],
    }
}

#[test]
fn the_step_engine_sees_only_this_versions_verdict() {
    let ok = verdict(AnalysisPhase::Successful, Some(1), CANARY);
    assert_eq!(
        step_verdict(Some(&ok), CANARY),
        Some((1, StepVerdict::Successful))
    );
    assert_eq!(step_verdict(Some(&ok), "another"), None);
    for phase in [
        AnalysisPhase::Failed,
        AnalysisPhase::Inconclusive,
        AnalysisPhase::Error,
    ] {
        let v = verdict(phase, Some(0), CANARY);
        assert_eq!(
            step_verdict(Some(&v), CANARY),
            Some((0, StepVerdict::Stopped)),
            "{phase:?} never passes a step"
        );
    }
    let background = verdict(AnalysisPhase::Successful, None, CANARY);
    assert_eq!(step_verdict(Some(&background), CANARY), None);
}

#[test]
fn only_an_inconclusive_verdict_of_this_version_holds_until_a_retry() {
    let v = verdict(AnalysisPhase::Inconclusive, Some(0), CANARY);
    assert!(holds(Some(&v), CANARY, Some(1), Some(1)));
    assert!(!holds(Some(&v), "another", Some(1), Some(1)));
    assert!(
        !holds(Some(&v), CANARY, Some(1), Some(2)),
        "a retry not yet acted on releases it"
    );
    let failed = verdict(AnalysisPhase::Failed, Some(0), CANARY);
    assert!(!holds(Some(&failed), CANARY, None, None));
}

#[test]
fn a_running_analysis_brings_the_next_look_forward() {
    let running = verdict(AnalysisPhase::Running, Some(0), CANARY);
    let now = ts(40);
    assert_eq!(
        requeue(Requeue::Settled, Some(&running), now),
        Requeue::After(Duration::from_secs(30))
    );
    assert_eq!(
        requeue(Requeue::After(Duration::from_secs(5)), Some(&running), now),
        Requeue::After(Duration::from_secs(5))
    );
    assert_eq!(
        requeue(Requeue::Active, Some(&running), now),
        Requeue::Active
    );
    let done = verdict(AnalysisPhase::Successful, Some(0), CANARY);
    assert_eq!(
        requeue(Requeue::Settled, Some(&done), now),
        Requeue::Settled
    );
}

#[test]
fn the_measurements_are_told() {
    let text = measurements(&verdict(AnalysisPhase::Failed, Some(0), CANARY));
    assert!(
        text.contains("error-ratio (prometheus `sum(rate(errors[1m]))`)"),
        "{text}"
    );
    assert!(text.contains("latest values [0.5]"), "{text}");
}

fn routine(spec: EsaRoutineRolloutSpec, status: EsaRoutineRolloutStatus) -> EsaRoutineRollout {
    let mut obj = EsaRoutineRollout::new("edge", spec);
    obj.status = Some(status);
    obj
}

fn analysed_steps() -> EsaRoutineRolloutSpec {
    spec_canary(vec![
        CanaryStep {
            percentage: 10,
            pause: Some("1m".into()),
            analysis: Some(aref()),
        },
        CanaryStep {
            percentage: 50,
            pause: Some("1m".into()),
            analysis: None,
        },
    ])
}

/// Failed: the canary is recorded as aborted, and `parse` then turns the spec into the
/// rollback (100% on the stable version), until the spec names another canary or the
/// retry token changes.
#[test]
fn a_recorded_abort_parses_as_the_rollback() {
    let status = EsaRoutineRolloutStatus {
        aborted: Some(Aborted {
            version: CANARY.into(),
            reason: REASON_FAILED.into(),
            at: ts(0).to_string(),
        }),
        analysis: Some(verdict(AnalysisPhase::Failed, Some(0), CANARY)),
        ..Default::default()
    };
    let spec = RoutineSpec::parse(&routine(analysed_steps(), status.clone())).expect("valid");
    assert_eq!(
        spec.mode,
        Mode::Rollback {
            stable: STABLE.into(),
            canary: CANARY.into()
        }
    );
    let mut retried = analysed_steps();
    retried.retry = Some(1);
    let spec = RoutineSpec::parse(&routine(retried, status)).expect("valid");
    assert!(matches!(spec.mode, Mode::Canary(_)));
}

#[test]
fn an_inconclusive_verdict_parses_as_paused() {
    let status = EsaRoutineRolloutStatus {
        analysis: Some(verdict(AnalysisPhase::Inconclusive, Some(0), CANARY)),
        ..Default::default()
    };
    let spec = RoutineSpec::parse(&routine(analysed_steps(), status.clone())).expect("valid");
    assert!(spec.paused);
    assert!(matches!(spec.mode, Mode::Canary(_)));
    let mut retried = analysed_steps();
    retried.retry = Some(7);
    assert!(
        !RoutineSpec::parse(&routine(retried, status))
            .expect("valid")
            .paused
    );
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

fn plan_at(
    status: &EsaRoutineRolloutStatus,
    paused: bool,
    now: i64,
) -> Plan<RoutineAction, EsaRoutineRolloutStatus> {
    let mut spec = crate::controller::routine::spec::validate(&analysed_steps()).expect("valid");
    spec.paused = paused;
    let observed = Some(env(&[(CANARY, 10), (STABLE, 90)]));
    routine_plan(&Input {
        spec: &spec,
        generation: Some(1),
        status: Some(status),
        observed: &observed,
        now: ts(now),
    })
}

/// At the analysed 10% step: held while the analysis runs (no progress expected, so the
/// deadline's clock is off), advanced to 50% once it is Successful, and never advanced on
/// a Failed or Inconclusive verdict.
#[test]
fn the_routine_planner_leaves_an_analysed_step_only_on_success() {
    let at_step = |analysis: Option<AnalysisStatus>| EsaRoutineRolloutStatus {
        current_step: Some(0),
        step_started_at: Some(ts(0).to_string()),
        code_versions: vec![
            crate::crd::routine::CodeVersionWeight {
                code_version: CANARY.into(),
                percentage: 10,
            },
            crate::crd::routine::CodeVersionWeight {
                code_version: STABLE.into(),
                percentage: 90,
            },
        ],
        observed_generation: Some(1),
        analysis,
        ..Default::default()
    };
    for (analysis, name) in [
        (None, "not started"),
        (
            Some(verdict(AnalysisPhase::Running, Some(0), CANARY)),
            "running",
        ),
        (
            Some(verdict(AnalysisPhase::Failed, Some(0), CANARY)),
            "failed",
        ),
        (
            Some(verdict(
                AnalysisPhase::Successful,
                Some(0),
                "1710000000000000009",
            )),
            "passed for another version",
        ),
    ] {
        let p = plan_at(&at_step(analysis), false, 600);
        assert!(p.actions.is_empty(), "{name}: nothing sent");
        assert_ne!(p.requeue, Requeue::Active, "{name}: no progress expected");
        let reason = p
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_PROGRESSING)
            .map(|c| c.reason.clone());
        assert_eq!(reason.as_deref(), Some("WaitingForAnalysis"), "{name}");
    }
    // Inconclusive: parse holds it as paused; nothing is sent.
    let held = plan_at(
        &at_step(Some(verdict(AnalysisPhase::Inconclusive, Some(0), CANARY))),
        true,
        600,
    );
    assert!(held.actions.is_empty());
    assert_ne!(held.requeue, Requeue::Active);
    let passed = plan_at(
        &at_step(Some(verdict(AnalysisPhase::Successful, Some(0), CANARY))),
        false,
        600,
    );
    let RoutineAction::Deploy(sent) = passed.actions.first().expect("advances");
    assert!(
        sent.code_versions
            .iter()
            .any(|c| c.code_version == CANARY && c.percentage == 50),
        "{sent:?}"
    );
    assert!(!is_true(&passed.status.conditions, "Degraded"));
}

/// EAS: a rolled-back version of the service config is held with every replica on the
/// old version; an Inconclusive one is paused.
#[test]
fn eas_parse_follows_the_verdict() {
    use crate::controller::eas::spec::{EasSpec, ROLLED_BACK_PARTITION, Strategy, fixtures};
    let mut declared = fixtures::spec_partition("1");
    declared.service_config = Some(serde_json::json!({"containers": [{"image": "v2"}]}));
    declared.analysis = Some(aref());
    let version = crate::controller::eas::spec::validate(&declared)
        .expect("valid")
        .service_config
        .map(|c| c.version().to_string())
        .unwrap_or_default();
    let mut obj = crate::crd::EasServiceRollout::new("svc", declared);
    obj.status = Some(crate::crd::EasServiceRolloutStatus {
        aborted: Some(Aborted {
            version: version.clone(),
            reason: REASON_FAILED.into(),
            at: ts(0).to_string(),
        }),
        ..Default::default()
    });
    let spec = EasSpec::parse(&obj).expect("valid");
    assert_eq!(spec.strategy, Strategy::Partition(ROLLED_BACK_PARTITION));
    assert_eq!(spec.promotion, None);
    obj.status = Some(crate::crd::EasServiceRolloutStatus {
        analysis: Some(verdict(AnalysisPhase::Inconclusive, None, &version)),
        ..Default::default()
    });
    let spec = EasSpec::parse(&obj).expect("valid");
    assert!(spec.paused);
    assert_eq!(
        spec.strategy,
        Strategy::Partition(crate::crd::validation::IntOrPercent::Count(1))
    );
}
