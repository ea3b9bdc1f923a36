//! The three kinds as the plugin sees them: one enum, so each command is written once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::core::ApiResource;
use kube::{CustomResourceExt, Resource};

use crate::crd::common::{
    CONDITION_DEGRADED, CONDITION_PAUSED, CONDITION_PROGRESSING, CONDITION_READY,
    CONDITION_STALLED, CanaryStep,
};
use crate::crd::{EasServiceRollout, EsaContainerAppRollout, EsaRoutineRollout, GROUP};

/// One of the kinds this operator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Eas,
    Routine,
    App,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Eas, Kind::Routine, Kind::App];

    /// `EsaRoutineRollout`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Eas => "EasServiceRollout",
            Kind::Routine => "EsaRoutineRollout",
            Kind::App => "EsaContainerAppRollout",
        }
    }

    /// `esaroutinerollout`: how kubectl names one object (`esaroutinerollout/NAME`).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Eas => "easservicerollout",
            Kind::Routine => "esaroutinerollout",
            Kind::App => "esacontainerapprollout",
        }
    }

    /// The short name the CRD declares (`esarr`).
    pub fn short(self) -> &'static str {
        match self {
            Kind::Eas => "easro",
            Kind::Routine => "esarr",
            Kind::App => "esacr",
        }
    }

    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::Eas => ApiResource::erase::<EasServiceRollout>(&()),
            Kind::Routine => ApiResource::erase::<EsaRoutineRollout>(&()),
            Kind::App => ApiResource::erase::<EsaContainerAppRollout>(&()),
        }
    }

    /// Whatever kubectl accepts for the kind: the kind, its singular, plural or short
    /// name, any of them with `.rollouts.alicloud.dev` (case-insensitive).
    pub fn parse(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        let bare = lower
            .strip_suffix(&format!(".{GROUP}"))
            .unwrap_or(lower.as_str());
        Kind::ALL.into_iter().find(|k| {
            let crd = match k {
                Kind::Eas => EasServiceRollout::crd(),
                Kind::Routine => EsaRoutineRollout::crd(),
                Kind::App => EsaContainerAppRollout::crd(),
            };
            bare == k.singular()
                || bare == crd.spec.names.plural
                || bare == k.short()
                || bare == k.name().to_ascii_lowercase()
        })
    }
}

/// What a command names: `KIND/NAME`, or a bare `NAME` looked up in every kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Option<Kind>,
    pub name: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, String> {
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) => {
                let kind = Kind::parse(kind).ok_or_else(|| {
                    format!(
                        "{kind:?} is not a kind of this operator: use easservicerollout (easro), \
                         esaroutinerollout (esarr) or esacontainerapprollout (esacr)"
                    )
                })?;
                (Some(kind), name)
            }
            None => (None, text),
        };
        if name.is_empty() || name.contains('/') {
            return Err(format!(
                "{text:?}: name a rollout as NAME or KIND/NAME, e.g. esarr/edge-fn"
            ));
        }
        Ok(Target {
            kind,
            name: name.to_string(),
        })
    }
}

/// An object of one of the three kinds.
#[derive(Clone, Debug)]
pub enum AnyRollout {
    Eas(EasServiceRollout),
    Routine(EsaRoutineRollout),
    App(EsaContainerAppRollout),
}

/// How a rollout stands, in one word (from its conditions and observedGeneration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No status yet, or the status is for an older generation.
    Pending,
    Ready,
    Progressing,
    /// Held at a manual gate, waiting for `promote`.
    WaitingForPromotion,
    Paused,
    Degraded,
    Stalled,
}

impl Health {
    pub fn icon(self) -> &'static str {
        match self {
            Health::Pending => "…",
            Health::Ready => "✔",
            Health::Progressing => "◌",
            Health::WaitingForPromotion => "⏸",
            Health::Paused => "॥",
            Health::Degraded => "✖",
            Health::Stalled => "⚠",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Health::Pending => "Pending",
            Health::Ready => "Ready",
            Health::Progressing => "Progressing",
            Health::WaitingForPromotion => "WaitingForPromotion",
            Health::Paused => "Paused",
            Health::Degraded => "Degraded",
            Health::Stalled => "Stalled",
        }
    }

    /// Where `get --watch` stops: the rollout is done, or a person is needed.
    pub fn is_final(self) -> bool {
        matches!(self, Health::Ready | Health::Degraded | Health::Stalled)
    }
}

/// A step list as the kind declares it, with the approval that applies to this version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepsView<'a> {
    pub steps: &'a [CanaryStep],
    /// The version the steps roll out.
    pub version: &'a str,
    /// `status.currentStep` (steps.len() is the final 100% state).
    pub current: Option<i32>,
    /// Gates up to this index are approved for `version` (None: no approval for it).
    pub approved: Option<i32>,
    /// The approval in the spec names another version.
    pub stale_approval: Option<&'a str>,
}

impl StepsView<'_> {
    /// Indexes of the manual gates (steps without `pause`).
    pub fn gates(&self) -> Vec<usize> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pause.is_none())
            .map(|(i, _)| i)
            .collect()
    }

    pub fn is_approved(&self, index: usize) -> bool {
        self.approved
            .and_then(|a| usize::try_from(a).ok())
            .is_some_and(|a| a >= index)
    }
}

impl AnyRollout {
    /// Decode an object of `kind` from its JSON.
    pub fn from_value(kind: Kind, value: serde_json::Value) -> Result<AnyRollout, String> {
        let path = |e: serde_path_to_error::Error<serde_json::Error>| {
            format!("{}: {}", e.path(), e.inner())
        };
        Ok(match kind {
            Kind::Eas => AnyRollout::Eas(serde_path_to_error::deserialize(value).map_err(path)?),
            Kind::Routine => {
                AnyRollout::Routine(serde_path_to_error::deserialize(value).map_err(path)?)
            }
            Kind::App => AnyRollout::App(serde_path_to_error::deserialize(value).map_err(path)?),
        })
    }

    pub fn kind(&self) -> Kind {
        match self {
            AnyRollout::Eas(_) => Kind::Eas,
            AnyRollout::Routine(_) => Kind::Routine,
            AnyRollout::App(_) => Kind::App,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            AnyRollout::Eas(o) => o.meta(),
            AnyRollout::Routine(o) => o.meta(),
            AnyRollout::App(o) => o.meta(),
        }
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }

    /// `esaroutinerollout/edge-fn`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind().singular(), self.name())
    }

    pub fn conditions(&self) -> &[Condition] {
        match self {
            AnyRollout::Eas(o) => o.status.as_ref().map(|s| s.conditions.as_slice()),
            AnyRollout::Routine(o) => o.status.as_ref().map(|s| s.conditions.as_slice()),
            AnyRollout::App(o) => o.status.as_ref().map(|s| s.conditions.as_slice()),
        }
        .unwrap_or_default()
    }

    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }

    fn is_true(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }

    pub fn observed_generation(&self) -> Option<i64> {
        match self {
            AnyRollout::Eas(o) => o.status.as_ref().and_then(|s| s.observed_generation),
            AnyRollout::Routine(o) => o.status.as_ref().and_then(|s| s.observed_generation),
            AnyRollout::App(o) => o.status.as_ref().and_then(|s| s.observed_generation),
        }
    }

    pub fn phase(&self) -> Option<&str> {
        match self {
            AnyRollout::Eas(o) => o.status.as_ref().and_then(|s| s.phase.as_deref()),
            AnyRollout::Routine(o) => o.status.as_ref().and_then(|s| s.phase.as_deref()),
            AnyRollout::App(o) => o.status.as_ref().and_then(|s| s.phase.as_deref()),
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            AnyRollout::Eas(o) => o.status.as_ref().and_then(|s| s.message.as_deref()),
            AnyRollout::Routine(o) => o.status.as_ref().and_then(|s| s.message.as_deref()),
            AnyRollout::App(o) => o.status.as_ref().and_then(|s| s.message.as_deref()),
        }
    }

    pub fn last_request_id(&self) -> Option<&str> {
        match self {
            AnyRollout::Eas(o) => o.status.as_ref().and_then(|s| s.last_request_id.as_deref()),
            AnyRollout::Routine(o) => o.status.as_ref().and_then(|s| s.last_request_id.as_deref()),
            AnyRollout::App(o) => o.status.as_ref().and_then(|s| s.last_request_id.as_deref()),
        }
    }

    pub fn next_check_at(&self) -> Option<&str> {
        match self {
            AnyRollout::Eas(o) => o.status.as_ref().and_then(|s| s.next_check_at.as_deref()),
            AnyRollout::Routine(o) => o.status.as_ref().and_then(|s| s.next_check_at.as_deref()),
            AnyRollout::App(o) => o.status.as_ref().and_then(|s| s.next_check_at.as_deref()),
        }
    }

    pub fn paused(&self) -> bool {
        match self {
            AnyRollout::Eas(o) => o.spec.paused,
            AnyRollout::Routine(o) => o.spec.paused,
            AnyRollout::App(o) => o.spec.paused,
        }
    }

    pub fn retry(&self) -> Option<i64> {
        match self {
            AnyRollout::Eas(o) => o.spec.retry,
            AnyRollout::Routine(o) => o.spec.retry,
            AnyRollout::App(o) => o.spec.retry,
        }
    }

    /// The steps, for the kinds and variants that have them.
    pub fn steps(&self) -> Option<StepsView<'_>> {
        match self {
            AnyRollout::Eas(_) => None,
            AnyRollout::Routine(o) => {
                let canary = o.spec.canary.as_ref()?;
                let promotion = canary.promotion.as_ref();
                Some(StepsView {
                    steps: &canary.steps,
                    version: &canary.canary_version,
                    current: o.status.as_ref().and_then(|s| s.current_step),
                    approved: promotion
                        .filter(|p| p.version == canary.canary_version)
                        .map(|p| p.step),
                    stale_approval: promotion
                        .filter(|p| p.version != canary.canary_version)
                        .map(|p| p.version.as_str()),
                })
            }
            AnyRollout::App(o) => {
                let steps = o.spec.steps.as_ref()?;
                let promotion = o.spec.promotion.as_ref();
                Some(StepsView {
                    steps,
                    version: &o.spec.version_id,
                    current: o.status.as_ref().and_then(|s| s.current_step),
                    approved: promotion
                        .filter(|p| p.version_id == o.spec.version_id)
                        .map(|p| p.step),
                    stale_approval: promotion
                        .filter(|p| p.version_id != o.spec.version_id)
                        .map(|p| p.version_id.as_str()),
                })
            }
        }
    }

    /// When the next step is due, as the status says (RFC 3339 or as the cloud wrote it).
    pub fn next_step_at(&self) -> Option<&str> {
        match self {
            AnyRollout::Eas(o) => o
                .status
                .as_ref()
                .and_then(|s| s.next_batch_start_time.as_deref()),
            AnyRollout::Routine(o) => o.status.as_ref().and_then(|s| s.next_step_at.as_deref()),
            AnyRollout::App(o) => o.status.as_ref().and_then(|s| s.next_step_at.as_deref()),
        }
    }

    /// How the rollout stands. A status written for an older generation says nothing yet
    /// about the spec as it is now.
    pub fn health(&self) -> Health {
        let current = match (self.observed_generation(), self.meta().generation) {
            (Some(seen), Some(now)) => seen >= now,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !current || self.conditions().is_empty() {
            return Health::Pending;
        }
        if self.is_true(CONDITION_STALLED) {
            Health::Stalled
        } else if self.is_true(CONDITION_DEGRADED) {
            Health::Degraded
        } else if self.is_true(CONDITION_READY) {
            Health::Ready
        } else if self.is_true(CONDITION_PAUSED) {
            Health::Paused
        } else if self
            .condition(CONDITION_PROGRESSING)
            .is_some_and(|c| c.reason == "WaitingForPromotion")
            || self
                .condition(CONDITION_READY)
                .is_some_and(|c| c.reason == "WaitingForPromotion")
        {
            Health::WaitingForPromotion
        } else {
            Health::Progressing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_as_kubectl_spells_them() {
        for (text, kind) in [
            ("esarr", Kind::Routine),
            ("EsaRoutineRollout", Kind::Routine),
            ("esaroutinerollouts", Kind::Routine),
            ("esaroutinerollout.rollouts.alicloud.dev", Kind::Routine),
            ("easro", Kind::Eas),
            ("easservicerollout", Kind::Eas),
            ("esacr", Kind::App),
            ("esacontainerapprollouts.rollouts.alicloud.dev", Kind::App),
        ] {
            assert_eq!(Kind::parse(text), Some(kind), "{text}");
        }
        assert_eq!(Kind::parse("deployment"), None);
        assert_eq!(Kind::parse("esarr.apps"), None);
    }

    #[test]
    fn targets_name_a_kind_or_only_a_name() {
        assert_eq!(
            Target::parse("esarr/edge-fn"),
            Ok(Target {
                kind: Some(Kind::Routine),
                name: "edge-fn".into()
            })
        );
        assert_eq!(
            Target::parse("edge-fn"),
            Ok(Target {
                kind: None,
                name: "edge-fn".into()
            })
        );
        let err = Target::parse("deploy/web").expect_err("not our kind");
        assert!(err.contains("not a kind of this operator"), "{err}");
        assert!(Target::parse("esarr/").is_err());
        assert!(Target::parse("esarr/a/b").is_err());
    }
}
