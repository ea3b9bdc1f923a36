//! An `EsaRoutineRolloutSpec` parsed into what the routine planner consumes.

use crate::cloud::model::CodeVersionSplit;
use crate::controller::plan::ValidSpec;
use crate::controller::steps::{Approval, Steps};
use crate::crd::common::EsaEnv;
use crate::crd::routine::{
    CodeVersionWeight, EsaRoutineRollout, EsaRoutineRolloutSpec, RoutineCanary,
};

/// The spec, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutineSpec {
    /// The ESA endpoint region.
    pub region: &'static str,
    pub routine: String,
    pub env: EsaEnv,
    pub paused: bool,
    pub mode: Mode,
}

/// What the routine's environment should serve.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Exactly this split (`spec.codeVersions`).
    Fixed(Vec<CodeVersionSplit>),
    /// A stepped canary (`spec.canary`).
    Canary(Canary),
    /// 100% back on the stable version (`spec.rollback` with `spec.canary`).
    Rollback { stable: String, canary: String },
}

/// A canary between two versions.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    pub stable: String,
    pub canary: String,
    pub steps: Steps,
    /// `canary.promotion`, whichever version it names.
    pub promotion: Option<Approval>,
}

/// Why an object stored before `promotion` replaced `promotedStep` is not followed: an
/// approval that does not name its version cannot be applied safely to any version.
pub const PROMOTED_STEP_REMOVED: &str = "spec.canary.promotedStep was replaced by spec.canary.promotion, which names the version it approves: remove promotedStep and set promotion: {version: <canaryVersion>, step: <index>}";

/// Parse the spec, or say what to fix.
pub fn validate(spec: &EsaRoutineRolloutSpec) -> Result<RoutineSpec, String> {
    let mode = match (&spec.code_versions, &spec.canary) {
        (Some(_), Some(_)) | (None, None) => {
            return Err("set exactly one of spec.codeVersions and spec.canary".to_string());
        }
        (Some(_), None) if spec.rollback => {
            return Err(
                "spec.rollback needs spec.canary (it puts 100% back on canary.stableVersion)"
                    .to_string(),
            );
        }
        (Some(cv), None) => Mode::Fixed(code_versions(cv)?),
        (None, Some(c)) => {
            versions(c)?;
            if spec.rollback {
                // A rollback never depends on the step list being followable.
                Mode::Rollback {
                    stable: c.stable_version.clone(),
                    canary: c.canary_version.clone(),
                }
            } else {
                if c.promoted_step.is_some() {
                    return Err(PROMOTED_STEP_REMOVED.to_string());
                }
                Mode::Canary(Canary {
                    stable: c.stable_version.clone(),
                    canary: c.canary_version.clone(),
                    steps: Steps::parse(&c.steps).map_err(|e| format!("spec.canary.{e}"))?,
                    promotion: c.promotion.as_ref().map(|p| Approval {
                        version: p.version.clone(),
                        step: p.step,
                    }),
                })
            }
        }
    };
    Ok(RoutineSpec {
        region: spec.region.unwrap_or_default().as_str(),
        routine: spec.routine.clone(),
        env: spec.env,
        paused: spec.paused,
        mode,
    })
}

fn code_versions(cv: &[CodeVersionWeight]) -> Result<Vec<CodeVersionSplit>, String> {
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
    Ok(cv
        .iter()
        .map(|c| CodeVersionSplit {
            code_version: c.code_version.clone(),
            percentage: c.percentage,
        })
        .collect())
}

fn versions(c: &RoutineCanary) -> Result<(), String> {
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

impl ValidSpec<EsaRoutineRollout> for RoutineSpec {
    /// A canary version the operator rolled back on its own (`status.aborted`) stays
    /// rolled back until the spec names another canary version; one whose analysis is
    /// Inconclusive is held as if paused.
    fn parse(obj: &EsaRoutineRollout) -> Result<Self, String> {
        let mut spec = validate(&obj.spec)?;
        // A changed spec.retry releases it (the loop clears the record in this reconcile).
        let aborted = obj
            .status
            .as_ref()
            .filter(|s| s.observed_retry == obj.spec.retry)
            .and_then(|s| s.aborted.as_ref());
        if let (Mode::Canary(c), Some(a)) = (&spec.mode, aborted)
            && a.version == c.canary
        {
            spec.mode = Mode::Rollback {
                stable: c.stable.clone(),
                canary: c.canary.clone(),
            };
        }
        // An Inconclusive analysis of this canary holds it as if paused.
        if let (Mode::Canary(c), Some(s)) = (&spec.mode, obj.status.as_ref())
            && crate::controller::analysis::holds(
                s.analysis.as_ref(),
                &c.canary,
                s.observed_retry,
                obj.spec.retry,
            )
        {
            spec.paused = true;
        }
        Ok(spec)
    }

    /// "region/routine/env": the cloud identity a routine rollout manages.
    fn cloud_ref(&self) -> String {
        format!(
            "{}/{}/{}",
            self.region,
            self.routine,
            self.env.routine_wire()
        )
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::crd::common::{CanaryStep, EsaEnv};
    use crate::crd::routine::{CodeVersionWeight, EsaRoutineRolloutSpec, RoutineCanary};

    pub const STABLE: &str = "1710000000000000001";
    pub const CANARY: &str = "1710000000000000002";

    pub fn spec_canary(steps: Vec<CanaryStep>) -> EsaRoutineRolloutSpec {
        EsaRoutineRolloutSpec {
            routine: "edge-fn".into(),
            env: EsaEnv::Production,
            region: None,
            code_versions: None,
            canary: Some(RoutineCanary {
                stable_version: STABLE.into(),
                canary_version: CANARY.into(),
                steps,
                promotion: None,
                promoted_step: None,
            }),
            paused: false,
            retry: None,
            rollback: false,
            credentials_secret_ref: None,
            account_ref: None,
            progress_deadline: None,
            progress_deadline_abort: false,
            notifications: vec![],
        }
    }

    /// 10% for 5m, 25% manual gate, 50% for 1h.
    pub fn three() -> EsaRoutineRolloutSpec {
        spec_canary(vec![
            CanaryStep {
                percentage: 10,
                pause: Some("5m".into()),
                analysis: None,
            },
            CanaryStep {
                percentage: 25,
                pause: None,
                analysis: None,
            },
            CanaryStep {
                percentage: 50,
                pause: Some("1h".into()),
                analysis: None,
            },
        ])
    }

    pub fn spec_fixed(cv: &[(&str, i32)]) -> EsaRoutineRolloutSpec {
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
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn invalid_specs_say_what_to_fix() {
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
        for (spec, want) in cases {
            let err = validate(&spec).expect_err(want);
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn a_rollback_does_not_depend_on_the_steps() {
        let mut spec = three();
        spec.rollback = true;
        if let Some(c) = spec.canary.as_mut() {
            c.steps[0].percentage = 0;
        }
        let v = validate(&spec).expect("a rollback is always possible");
        assert_eq!(
            v.mode,
            Mode::Rollback {
                stable: STABLE.into(),
                canary: CANARY.into()
            }
        );
        assert_eq!(v.cloud_ref(), "cn-hangzhou/edge-fn/production");
    }
}
