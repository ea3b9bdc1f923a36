//! An `EsaContainerAppRolloutSpec` parsed into what the container app planner consumes.

use jiff::Timestamp;

use crate::controller::plan::ValidSpec;
use crate::controller::steps::{Approval, Steps};
use crate::crd::common::EsaEnv;
use crate::crd::container_app::{EsaContainerAppRollout, EsaContainerAppRolloutSpec};

/// The spec, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    /// The ESA endpoint region.
    pub region: &'static str,
    pub app_id: String,
    pub version_id: String,
    pub env: EsaEnv,
    pub paused: bool,
    /// `startTime`, parsed.
    pub start_time: Option<Timestamp>,
    pub remarks: Option<String>,
    pub mode: Mode,
}

/// What the environment should show.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Published to a fixed target (`percentage`, default 100, or `regions`).
    Fixed(Target),
    /// Published by steps of percentage (`steps`).
    Steps {
        steps: Steps,
        /// `spec.promotion`, whichever version it names.
        promotion: Option<Approval>,
    },
    /// Rolled back to the version before (`rollback`), on `percentage` of the traffic
    /// (`rollbackPercentage`) or all of it.
    Rollback { percentage: Option<i32> },
}

/// A publish target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Percentage(i32),
    Regions {
        /// Sorted, without duplicates.
        regions: Vec<String>,
        full_release: bool,
    },
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Percentage(p) => format!("{p}%"),
            Target::Regions {
                regions,
                full_release,
            } => format!(
                "regions {}{}",
                regions.join(","),
                if *full_release { " (full release)" } else { "" }
            ),
        }
    }
}

/// Regions sorted and deduplicated: the form in which two region lists are compared.
pub fn sorted(regions: &[String]) -> Vec<String> {
    let mut v: Vec<String> = regions.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Why an object stored before `promotion` replaced `promotedStep` is not followed: an
/// approval that does not name its version cannot be applied safely to any version.
pub const PROMOTED_STEP_REMOVED: &str = "spec.promotedStep was replaced by spec.promotion, which names the version it approves: remove promotedStep and set promotion: {versionId: <versionId>, step: <index>}";

/// Parse the spec, or say what to fix.
pub fn validate(spec: &EsaContainerAppRolloutSpec) -> Result<AppSpec, String> {
    if spec.app_id.is_empty() || spec.version_id.is_empty() {
        return Err("spec.appId and spec.versionId must be set".to_string());
    }
    if spec.percentage.is_some() && spec.regions.is_some() {
        return Err("set at most one of spec.percentage and spec.regions".to_string());
    }
    if spec.steps.is_some() && (spec.percentage.is_some() || spec.regions.is_some()) {
        return Err(
            "spec.steps drives the percentage itself: remove spec.percentage and spec.regions"
                .to_string(),
        );
    }
    let start_time = match &spec.start_time {
        None => None,
        Some(s) => Some(s.parse::<Timestamp>().map_err(|_| {
            format!("spec.startTime: {s:?} is not an RFC 3339 time (e.g. 2026-06-05T16:00:00Z)")
        })?),
    };
    Ok(AppSpec {
        region: spec.region.unwrap_or_default().as_str(),
        app_id: spec.app_id.clone(),
        version_id: spec.version_id.clone(),
        env: spec.env,
        paused: spec.paused,
        start_time,
        remarks: spec.remarks.clone(),
        mode: mode(spec)?,
    })
}

fn mode(spec: &EsaContainerAppRolloutSpec) -> Result<Mode, String> {
    if spec.rollback {
        return match spec.rollback_percentage {
            Some(p) if !(1..=100).contains(&p) => {
                Err(format!("spec.rollbackPercentage: {p} is outside 1-100"))
            }
            percentage => Ok(Mode::Rollback { percentage }),
        };
    }
    if spec.rollback_percentage.is_some() {
        return Err("spec.rollbackPercentage only applies with spec.rollback: true".to_string());
    }
    if spec.promoted_step.is_some() {
        return Err(PROMOTED_STEP_REMOVED.to_string());
    }
    if let Some(steps) = &spec.steps {
        return Ok(Mode::Steps {
            steps: Steps::parse(steps).map_err(|e| format!("spec.{e}"))?,
            promotion: spec.promotion.as_ref().map(|p| Approval {
                version: p.version_id.clone(),
                step: p.step,
            }),
        });
    }
    match (&spec.regions, spec.percentage) {
        (Some(r), _) if r.is_empty() => Err("spec.regions is empty".to_string()),
        (Some(r), _) => Ok(Mode::Fixed(Target::Regions {
            regions: sorted(r),
            full_release: spec.full_release.unwrap_or(false),
        })),
        (None, Some(p)) if !(1..=100).contains(&p) => {
            Err(format!("spec.percentage: {p} is outside 1-100"))
        }
        (None, p) => Ok(Mode::Fixed(Target::Percentage(p.unwrap_or(100)))),
    }
}

impl ValidSpec<EsaContainerAppRollout> for AppSpec {
    /// A version the operator rolled back on its own (`status.aborted`) stays rolled back
    /// until the spec names another version.
    fn parse(obj: &EsaContainerAppRollout) -> Result<Self, String> {
        let mut spec = validate(&obj.spec)?;
        // A changed spec.retry releases it (the loop clears the record in this reconcile).
        let aborted = obj
            .status
            .as_ref()
            .filter(|s| s.observed_retry == obj.spec.retry)
            .and_then(|s| s.aborted.as_ref());
        if aborted.is_some_and(|a| a.version == spec.version_id) {
            spec.mode = Mode::Rollback { percentage: None };
        }
        // An Inconclusive analysis of this version holds it as if paused.
        if let (Mode::Steps { .. }, Some(s)) = (&spec.mode, obj.status.as_ref())
            && crate::controller::analysis::holds(
                s.analysis.as_ref(),
                &spec.version_id,
                s.observed_retry,
                obj.spec.retry,
            )
        {
            spec.paused = true;
        }
        Ok(spec)
    }

    /// "region/appId/env": the cloud identity a container app rollout manages.
    fn cloud_ref(&self) -> String {
        format!("{}/{}/{}", self.region, self.app_id, self.env.app_wire())
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::crd::common::{CanaryStep, EsaEnv};
    use crate::crd::container_app::EsaContainerAppRolloutSpec;

    pub const OURS: &str = "ver-200";
    pub const OTHER: &str = "ver-100";

    pub fn spec() -> EsaContainerAppRolloutSpec {
        EsaContainerAppRolloutSpec {
            app_id: "app-1".into(),
            version_id: OURS.into(),
            env: EsaEnv::Production,
            region: None,
            percentage: None,
            regions: None,
            full_release: None,
            start_time: None,
            remarks: Some("by test".into()),
            steps: None,
            promotion: None,
            promoted_step: None,
            paused: false,
            retry: None,
            rollback: false,
            rollback_percentage: None,
            credentials_secret_ref: None,
            account_ref: None,
            progress_deadline: None,
            progress_deadline_abort: false,
            notifications: vec![],
        }
    }

    pub fn stepped() -> EsaContainerAppRolloutSpec {
        EsaContainerAppRolloutSpec {
            steps: Some(vec![
                CanaryStep {
                    percentage: 10,
                    pause: Some("5m".into()),
                    analysis: None,
                },
                CanaryStep {
                    percentage: 50,
                    pause: None,
                    analysis: None,
                },
            ]),
            ..spec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::crd::common::CanaryStep;

    #[test]
    fn invalid_specs_say_what_to_fix() {
        let cases = [
            (
                EsaContainerAppRolloutSpec {
                    percentage: Some(10),
                    regions: Some(vec!["a".into()]),
                    ..spec()
                },
                "at most one of spec.percentage and spec.regions",
            ),
            (
                EsaContainerAppRolloutSpec {
                    percentage: Some(10),
                    ..stepped()
                },
                "spec.steps drives the percentage",
            ),
            (
                EsaContainerAppRolloutSpec {
                    percentage: Some(0),
                    ..spec()
                },
                "spec.percentage: 0 is outside 1-100",
            ),
            (
                EsaContainerAppRolloutSpec {
                    regions: Some(vec![]),
                    ..spec()
                },
                "spec.regions is empty",
            ),
            (
                EsaContainerAppRolloutSpec {
                    start_time: Some("tomorrow".into()),
                    ..spec()
                },
                "spec.startTime: \"tomorrow\" is not an RFC 3339 time",
            ),
            (
                EsaContainerAppRolloutSpec {
                    steps: Some(vec![CanaryStep {
                        percentage: 10,
                        pause: Some("5 min".into()),
                        analysis: None,
                    }]),
                    ..spec()
                },
                "spec.steps[0].pause: \"5 min\" is not a duration",
            ),
        ];
        for (s, want) in cases {
            let err = validate(&s).expect_err(want);
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn modes_and_targets() {
        let v = validate(&spec()).expect("valid");
        assert_eq!(v.mode, Mode::Fixed(Target::Percentage(100)));
        assert_eq!(v.cloud_ref(), "cn-hangzhou/app-1/prod");
        let v = validate(&EsaContainerAppRolloutSpec {
            regions: Some(vec!["b".into(), "a".into(), "b".into()]),
            full_release: Some(true),
            ..spec()
        })
        .expect("valid");
        assert_eq!(
            v.mode,
            Mode::Fixed(Target::Regions {
                regions: vec!["a".into(), "b".into()],
                full_release: true
            })
        );
        let rollback = EsaContainerAppRolloutSpec {
            rollback: true,
            ..stepped()
        };
        assert_eq!(
            validate(&rollback).expect("valid").mode,
            Mode::Rollback { percentage: None }
        );
        let partial = EsaContainerAppRolloutSpec {
            rollback: true,
            rollback_percentage: Some(30),
            ..spec()
        };
        assert_eq!(
            validate(&partial).expect("valid").mode,
            Mode::Rollback {
                percentage: Some(30)
            }
        );
        for (bad, want) in [
            (
                EsaContainerAppRolloutSpec {
                    rollback_percentage: Some(30),
                    ..spec()
                },
                "only applies with spec.rollback",
            ),
            (
                EsaContainerAppRolloutSpec {
                    rollback: true,
                    rollback_percentage: Some(0),
                    ..spec()
                },
                "outside 1-100",
            ),
        ] {
            let err = validate(&bad).expect_err(want);
            assert!(err.contains(want), "{err}");
        }
    }
}
