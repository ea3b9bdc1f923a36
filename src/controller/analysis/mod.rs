//! Metric analysis inside the rollout loop: which analysis runs now, taking its due
//! measurements (the engine in [`crate::analysis`]), and acting on its verdict.
//!
//! - Where it runs: each kind names it ([`super::runner::Rollout::analysis_request`]): an
//!   ESA canary step's `analysis` while the cloud is at that step (the step engine then
//!   leaves the step only on Successful), an EAS rollout's `spec.analysis` while a new
//!   version of its `serviceConfig` rolls out. The kind fills the built-in arguments.
//! - The record: `status.analysis` belongs to the loop, like `status.aborted` (planners build
//!   their status afresh). It names the step and the version it judged, so an analysis of
//!   another step or version never counts; a finished one (Successful, Failed,
//!   Inconclusive) is kept as the record and never measured again.
//! - Failed: the version is recorded in `status.aborted` (reason AnalysisFailed), so the
//!   kind's `parse` turns the spec into its rollback on the next reconcile (one cloud
//!   mutation, through the runner's intent records); this reconcile sends nothing. The
//!   status is Degraded with reason AnalysisFailed and a Warning Event carries the
//!   measurements. The same version is not pushed again until the spec names another
//!   version or `spec.retry` changes.
//! - Inconclusive: the kind's `parse` holds the rollout as if paused (nothing is sent, the
//!   version never advances), Paused and Stalled say why (reason AnalysisInconclusive),
//!   one Warning Event. `spec.retry` (which clears the record, so the analysis starts
//!   again) or a new version resumes it.
//! - Error (a template that is missing or does not compile): the step holds, Stalled says
//!   what to fix, and the analysis is started afresh at the next look.
//! - Time in a running analysis or an Inconclusive hold is no progress expected: the step
//!   engine holds with a timed or settled requeue, which stops the progress deadline.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::conditions::Desired;
use super::context::Context;
use super::plan::Requeue;
use super::requeue::until;
use super::runner::Rollout;
use super::status::RolloutStatus;
use super::steps::StepVerdict;
use crate::analysis::{AnalysisCx, Builtins};
use crate::cloud::CloudApi;
use crate::crd::analysis::{AnalysisPhase, AnalysisRef, AnalysisStatus};
use crate::crd::common::{Aborted, CONDITION_PAUSED, CONDITION_RECONCILING, CONDITION_STALLED};

/// Condition and Event reason of a failed analysis (and of the rollback it causes).
pub const REASON_FAILED: &str = "AnalysisFailed";
/// Condition and Event reason of an Inconclusive hold.
pub const REASON_INCONCLUSIVE: &str = "AnalysisInconclusive";
/// Condition and Event reason of an analysis that cannot run (template, arguments).
pub const REASON_ERROR: &str = "AnalysisError";

/// The analysis a rollout wants run now.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub aref: AnalysisRef,
    /// The ESA step index it judges (None: a background analysis).
    pub step: Option<i32>,
    /// The version under analysis.
    pub version: String,
    pub builtins: Builtins,
}

/// The built-in arguments every kind fills: `namespace`, `name`, plus `pairs`.
pub fn builtins<K: ResourceExt>(obj: &K, pairs: &[(&str, &str)]) -> Builtins {
    let mut b = Builtins::new();
    b.insert("namespace".into(), obj.namespace().unwrap_or_default());
    b.insert("name".into(), obj.name_any());
    for (k, v) in pairs {
        b.insert((*k).to_string(), (*v).to_string());
    }
    b
}

/// Whether `phase` is a verdict (nothing is measured any more).
pub fn finished(phase: AnalysisPhase) -> bool {
    matches!(
        phase,
        AnalysisPhase::Successful | AnalysisPhase::Failed | AnalysisPhase::Inconclusive
    )
}

/// Whether the record `a` judges what `req` asks for.
fn pertains(a: &AnalysisStatus, req: &Request) -> bool {
    a.step == req.step && a.version.as_deref() == Some(req.version.as_str())
}

/// Whether `a` (pertaining to the request) is to be advanced at `now`.
fn due(a: &AnalysisStatus, now: Timestamp) -> bool {
    if finished(a.phase) {
        return false;
    }
    crate::analysis::next_due(a).is_none_or(|t| t <= now)
}

/// What the step engine needs of the record for `version`: (step, verdict).
pub fn step_verdict(a: Option<&AnalysisStatus>, version: &str) -> Option<(usize, StepVerdict)> {
    let a = a.filter(|a| a.version.as_deref() == Some(version))?;
    let step = usize::try_from(a.step?).ok()?;
    let verdict = match a.phase {
        AnalysisPhase::Running => StepVerdict::Running,
        AnalysisPhase::Successful => StepVerdict::Successful,
        _ => StepVerdict::Stopped,
    };
    Some((step, verdict))
}

/// Whether the record holds `version` (Inconclusive): the kinds' `parse` then holds the
/// rollout as if paused. `status_retry`/`spec_retry`: a retry not yet acted on releases it
/// (the loop clears the record in this reconcile).
pub fn holds(
    a: Option<&AnalysisStatus>,
    version: &str,
    status_retry: Option<i64>,
    spec_retry: Option<i64>,
) -> bool {
    status_retry == spec_retry
        && a.is_some_and(|a| {
            a.phase == AnalysisPhase::Inconclusive && a.version.as_deref() == Some(version)
        })
}

/// The shared engine context (the HTTP client is built once).
fn engine(cx: &Context) -> AnalysisCx {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    let http = HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default()
    });
    AnalysisCx {
        kube: cx.client.clone(),
        http: http.clone(),
        operator_namespace: cx.home.namespace.clone(),
    }
}

/// The analysis as of `now`: the measurements due are taken (the engine never fails: an
/// unreachable provider is an Error measurement). Without a request a verdict is kept as
/// the record and an unfinished one dropped.
pub async fn evaluate<K: Rollout>(
    obj: &K,
    cx: &Context,
    spec: &K::Spec,
    stored: Option<&K::Status>,
    cloud: &Arc<dyn CloudApi>,
    now: Timestamp,
) -> Option<AnalysisStatus> {
    let recorded = stored.and_then(|s| s.analysis()).cloned();
    let Some(req) = obj.analysis_request(spec, stored) else {
        return recorded.filter(|a| finished(a.phase));
    };
    // An Error starts afresh: the template may have been fixed since.
    let prior = recorded.filter(|a| pertains(a, &req) && a.phase != AnalysisPhase::Error);
    if let Some(p) = &prior
        && !due(p, now)
    {
        return prior;
    }
    let namespace = obj.namespace().unwrap_or_default();
    let mut next = crate::analysis::advance(
        &engine(cx),
        &namespace,
        &req.aref,
        &req.builtins,
        cloud,
        prior.as_ref(),
        now,
    )
    .await;
    next.step = req.step;
    next.version = Some(req.version);
    if prior.as_ref().map(|p| p.phase) != Some(next.phase) {
        tracing::info!(template = %next.template, phase = ?next.phase, "analysis");
    }
    Some(next)
}

/// `stored` with `analysis` in place of its record: what the planner reads.
pub fn seen<S: RolloutStatus>(stored: Option<&S>, analysis: Option<&AnalysisStatus>) -> Option<S> {
    let mut s = stored?.clone();
    *s.shared().analysis = analysis.cloned();
    Some(s)
}

/// The next look: no later than the analysis' next measurement while it runs.
pub fn requeue(plan: Requeue, a: Option<&AnalysisStatus>, now: Timestamp) -> Requeue {
    let Some(next) = a
        .filter(|a| !finished(a.phase))
        .and_then(crate::analysis::next_due)
    else {
        return plan;
    };
    let wait = until(now, next);
    match plan {
        Requeue::Active => Requeue::Active,
        Requeue::After(d) if d <= wait => plan,
        _ => Requeue::After(wait),
    }
}

/// Whether `status` (about to be written) reaches an analysis not started yet: the next
/// look starts it, at the active pace rather than the settled one.
pub fn pending<K: Rollout>(obj: &K, spec: &K::Spec, status: &K::Status) -> bool {
    obj.analysis_request(spec, Some(status))
        .is_some_and(|req| !status.analysis().is_some_and(|a| pertains(a, &req)))
}

/// What the verdict did to this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acted {
    /// Nothing to act on.
    None,
    /// The version is being rolled back: send nothing now, look again at once.
    Aborting,
    /// Held: Inconclusive or Error.
    Held,
}

/// A one-line account of each metric and its recent values, for Events and messages.
pub fn measurements(a: &AnalysisStatus) -> String {
    let metrics: Vec<String> = a
        .metrics
        .iter()
        .map(|m| {
            let values: Vec<&str> = m
                .measurements
                .iter()
                .rev()
                .take(5)
                .map(|x| x.value.as_deref().unwrap_or("-"))
                .collect();
            format!(
                "{} ({} `{}`): {:?}, {} failed, {} inconclusive, {} errors; latest values [{}]",
                m.name,
                m.provider,
                m.query,
                m.phase,
                m.failed,
                m.inconclusive,
                m.errors,
                values.join(", ")
            )
        })
        .collect();
    let head = a.message.clone().unwrap_or_default();
    if metrics.is_empty() {
        head
    } else {
        format!("{head}; {}", metrics.join("; "))
    }
}

fn label(a: &AnalysisStatus) -> String {
    let at = a
        .step
        .map(|s| format!(" at step {}", s + 1))
        .unwrap_or_default();
    format!(
        "analysis {} of {}{at}",
        a.template,
        a.version.as_deref().unwrap_or("?")
    )
}

/// Act on the verdict now in `status.analysis` (see the module documentation). `version`
/// is what the spec declares (the kind's abort version).
pub async fn act<K: Rollout>(
    obj: &K,
    cx: &Context,
    version: Option<&str>,
    stored: Option<&K::Status>,
    status: &mut K::Status,
    now: Timestamp,
) -> Acted {
    let Some(a) = status.analysis().cloned() else {
        return Acted::None;
    };
    if version.is_none() || a.version.as_deref() != version {
        return Acted::None;
    }
    let before = stored.and_then(|s| s.analysis()).map(|b| b.phase);
    match a.phase {
        AnalysisPhase::Failed => fail(obj, cx, &a, status, now).await,
        AnalysisPhase::Inconclusive | AnalysisPhase::Error => {
            hold(obj, cx, &a, before != Some(a.phase), status, now).await;
            Acted::Held
        }
        _ => Acted::None,
    }
}

async fn fail<K: Rollout>(
    obj: &K,
    cx: &Context,
    a: &AnalysisStatus,
    status: &mut K::Status,
    now: Timestamp,
) -> Acted {
    let version = a.version.clone().unwrap_or_default();
    if status.aborted().is_some_and(|x| x.version == version) {
        return Acted::None; // already rolled back (or rolling back): the loop keeps it
    }
    let message = format!(
        "{} failed: {}; rolling {version} back automatically. It is not pushed again until \
         the spec names another version or spec.retry changes",
        label(a),
        measurements(a)
    );
    cx.event(
        obj,
        EventType::Warning,
        REASON_FAILED,
        "Analysis",
        message.clone(),
    )
    .await;
    let kept = status.last_progress_at().map(str::to_string);
    *status = super::status::degraded(
        Some(&*status),
        obj.meta().generation,
        REASON_FAILED,
        &message,
        None,
        now,
    );
    *status.shared().last_progress_at = kept;
    *status.shared().aborted = Some(Aborted {
        version: version.clone(),
        reason: REASON_FAILED.to_string(),
        at: now.to_string(),
    });
    super::transitions::analysis_failed(obj, cx, &version, a.step, &message);
    Acted::Aborting
}

async fn hold<K: Rollout>(
    obj: &K,
    cx: &Context,
    a: &AnalysisStatus,
    new: bool,
    status: &mut K::Status,
    now: Timestamp,
) {
    let (reason, next) = if a.phase == AnalysisPhase::Error {
        (
            REASON_ERROR,
            "the step holds; fix the template or its arguments, it is started again at the next look",
        )
    } else {
        (
            REASON_INCONCLUSIVE,
            "the rollout is paused and never advances on it: set spec.retry to a new value to \
             analyse again, or declare another version",
        )
    };
    let message = format!("{} is {:?}: {}; {next}", label(a), a.phase, measurements(a));
    if new {
        cx.event(obj, EventType::Warning, reason, "Analysis", message.clone())
            .await;
        super::transitions::paused(obj, cx, a.version.as_deref(), a.step, &message);
    }
    let generation = obj.meta().generation;
    let s = status.shared();
    let mut wanted = vec![
        Desired::new(CONDITION_STALLED, true, reason, message.clone()),
        Desired::new(CONDITION_RECONCILING, false, "AsExpected", ""),
    ];
    if a.phase == AnalysisPhase::Inconclusive {
        wanted.push(Desired::new(
            CONDITION_PAUSED,
            true,
            reason,
            message.clone(),
        ));
    }
    for d in wanted {
        set_condition(&mut *s.conditions, d, generation, now);
    }
    *s.message = Some(super::outcome::bounded_message(message));
}

/// Set one condition in place (its position kept, its transition time kept when its status
/// did not change).
fn set_condition(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    d: Desired,
    generation: Option<i64>,
    now: Timestamp,
) {
    let merged = super::conditions::merge(conditions, &[d], generation, now);
    let Some(c) = merged.into_iter().next() else {
        return;
    };
    match conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) => *x = c,
        None => conditions.push(c),
    }
}

#[cfg(test)]
mod tests;
