//! The phase rules, with the providers behind [`MakeProvider`] so they are tested with
//! scripted values.
//!
//! Rules (Argo-Rollouts-like):
//! 1. A measurement is Failed when failureCondition holds, else Successful when
//!    successCondition holds. When both are given and neither holds it is Inconclusive;
//!    with only successCondition, false is Failed; with only failureCondition, false is
//!    Successful; with neither (a web gate without jsonPath) `true` is Successful.
//! 2. A provider error, or a condition that cannot be evaluated on the result (a list where
//!    a number was expected, `null` from NaN), is an Error measurement: it never passes.
//! 3. A metric Fails when failed > failureLimit (default 0); is Inconclusive when
//!    inconclusive > inconclusiveLimit (default 0) or consecutive errors >
//!    consecutiveErrorLimit (default 4); is Successful when `count` (default 1) measurements
//!    other than errors were taken without the above; else it is Running.
//! 4. The first measurement is due `initialDelay` after the analysis started, the next
//!    `interval` after the previous one (30s when a retry is needed and no interval is set).
//! 5. The analysis is Failed if any metric Failed, else Inconclusive if any metric is,
//!    else Successful when all are, else Running. Once finished, no more measurements.

use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;

use super::args::{Args, substitute};
use super::cel::{Condition, compile};
use super::{Provider, ProviderError, shorten, timeout_of};
use crate::crd::analysis::{
    AnalysisPhase, AnalysisStatus, AnalysisTemplateSpec, MAX_MEASUREMENTS, Measurement,
    MeasurementPhase, Metric, MetricStatus,
};
use crate::crd::common::MAX_STATUS_TEXT;

/// The wait before another measurement when the metric has no `interval`.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(30);
/// Default consecutiveErrorLimit.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;

/// Builds the provider of a metric from its spec and resolved arguments.
pub trait MakeProvider: Send + Sync {
    /// `args` are either the real ones (to measure) or the masked ones (to show the query).
    fn make(&self, metric: &Metric, args: &Args) -> Result<Box<dyn Provider>, String>;
}

/// A metric ready to measure.
struct Plan<'a> {
    metric: &'a Metric,
    success: Option<Condition>,
    failure: Option<Condition>,
    provider: Box<dyn Provider>,
    /// The query with Secret values masked.
    shown: String,
    kind: &'static str,
}

/// Advance `spec` (already read, arguments resolved) at `now`.
pub async fn run(
    template: &str,
    spec: &AnalysisTemplateSpec,
    args: &Args,
    make: &dyn MakeProvider,
    prior: Option<&AnalysisStatus>,
    now: Timestamp,
) -> AnalysisStatus {
    let prior = prior.filter(|p| p.template == template);
    let mut status = base_status(template, prior, now);
    let started = status.started_at.parse().unwrap_or(now);
    let mut plans = Vec::with_capacity(spec.metrics.len());
    for metric in &spec.metrics {
        match plan(metric, args, make) {
            Ok(p) => plans.push(p),
            Err(message) => return error_status(template, prior, now, args.mask_text(&message)),
        }
    }
    let steps = plans.iter().map(|p| {
        let before = prior.and_then(|s| s.metrics.iter().find(|m| m.name == p.metric.name));
        step_metric(p, before, args, started, now)
    });
    status.metrics = join_all(steps).await;
    (status.phase, status.message) = overall(&status.metrics);
    status
}

fn base_status(template: &str, prior: Option<&AnalysisStatus>, now: Timestamp) -> AnalysisStatus {
    AnalysisStatus {
        template: template.to_string(),
        phase: AnalysisPhase::Running,
        message: None,
        started_at: prior.map_or_else(|| now.to_string(), |p| p.started_at.clone()),
        step: prior.and_then(|p| p.step),
        version: prior.and_then(|p| p.version.clone()),
        metrics: Vec::new(),
    }
}

/// Phase Error with `message`, keeping what `prior` measured.
pub fn error_status(
    template: &str,
    prior: Option<&AnalysisStatus>,
    now: Timestamp,
    message: String,
) -> AnalysisStatus {
    let mut status = base_status(template, prior, now);
    status.phase = AnalysisPhase::Error;
    status.message = Some(shorten(&message, MAX_STATUS_TEXT as usize));
    status.metrics = prior.map(|p| p.metrics.clone()).unwrap_or_default();
    for m in &mut status.metrics {
        m.next_at = None;
    }
    status
}

fn plan<'a>(metric: &'a Metric, args: &Args, make: &dyn MakeProvider) -> Result<Plan<'a>, String> {
    // Conditions may use arguments too (`result < {{args.threshold}}`).
    let cond = |field, source: &Option<String>| -> Result<Option<Condition>, String> {
        let Some(source) = source else {
            return Ok(None);
        };
        let source = substitute(source, args)
            .map_err(|e| format!("metric {}: {field}: {e}", metric.name))?;
        compile(&metric.name, field, &source).map(Some)
    };
    let success = cond("successCondition", &metric.success_condition)?;
    let failure = cond("failureCondition", &metric.failure_condition)?;
    let in_metric = |e: String| format!("metric {}: {e}", metric.name);
    let shown = make
        .make(metric, &args.masked())
        .map_err(in_metric)?
        .query();
    let provider = make.make(metric, args).map_err(in_metric)?;
    let p = &metric.provider;
    let kind = if p.prometheus.is_some() {
        "prometheus"
    } else if p.web.is_some() {
        "web"
    } else {
        "cloudMonitor"
    };
    Ok(Plan {
        metric,
        success,
        failure,
        provider,
        shown: args.mask_text(&shown),
        kind,
    })
}

fn new_metric(plan: &Plan<'_>, started: Timestamp) -> MetricStatus {
    let delay = plan
        .metric
        .initial_delay
        .as_deref()
        .map(duration)
        .unwrap_or_default();
    MetricStatus {
        name: plan.metric.name.clone(),
        provider: plan.kind.to_string(),
        query: String::new(),
        phase: AnalysisPhase::Running,
        message: None,
        count: 0,
        successful: 0,
        failed: 0,
        inconclusive: 0,
        errors: 0,
        consecutive_errors: 0,
        measurements: Vec::new(),
        next_at: Some(add(started, delay).to_string()),
    }
}

async fn step_metric(
    plan: &Plan<'_>,
    before: Option<&MetricStatus>,
    args: &Args,
    started: Timestamp,
    now: Timestamp,
) -> MetricStatus {
    let mut ms = before.cloned().unwrap_or_else(|| new_metric(plan, started));
    ms.query = shorten(&plan.shown, 8000);
    if ms.phase.is_finished() {
        ms.next_at = None;
        return ms;
    }
    let due_at = ms
        .next_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    if due_at.is_none_or(|t| t <= now) {
        let m = measure(plan, args, now).await;
        record(&mut ms, m);
        let wait = plan
            .metric
            .interval
            .as_deref()
            .map_or(DEFAULT_RETRY, duration);
        ms.next_at = Some(add(now, wait).to_string());
    }
    let (phase, message) = metric_phase(plan.metric, &ms);
    ms.phase = phase;
    if message.is_some() {
        ms.message = message;
    }
    if phase.is_finished() {
        ms.next_at = None;
    }
    ms
}

async fn measure(plan: &Plan<'_>, args: &Args, now: Timestamp) -> Measurement {
    // The providers bound their own calls; this is the engine's backstop.
    let limit = timeout_of(timeout_field(plan.metric)) + Duration::from_secs(2);
    let outcome = match tokio::time::timeout(limit, plan.provider.measure()).await {
        Ok(outcome) => outcome,
        Err(_) => Err(ProviderError::Timeout(limit)),
    };
    let text = |t: String| Some(shorten(&args.mask_text(&t), MAX_STATUS_TEXT as usize - 16));
    match outcome {
        Err(e) => Measurement {
            at: now.to_string(),
            phase: MeasurementPhase::Error,
            value: None,
            message: text(e.to_string()),
        },
        Ok(value) => {
            let (phase, message) = judge(plan, &value);
            Measurement {
                at: now.to_string(),
                phase,
                value: text(value.to_string()),
                message: message.and_then(text),
            }
        }
    }
}

fn timeout_field(metric: &Metric) -> Option<&str> {
    let p = &metric.provider;
    p.prometheus
        .as_ref()
        .and_then(|m| m.timeout.as_deref())
        .or(p.web.as_ref().and_then(|m| m.timeout.as_deref()))
        .or(p.cloud_monitor.as_ref().and_then(|m| m.timeout.as_deref()))
}

/// Rule 1 and 2: the phase of one measurement of `value`.
fn judge(plan: &Plan<'_>, value: &serde_json::Value) -> (MeasurementPhase, Option<String>) {
    let eval = |c: &Option<Condition>| c.as_ref().map(|c| c.eval(value)).transpose();
    let (failed, succeeded) = match (eval(&plan.failure), eval(&plan.success)) {
        (Ok(f), Ok(s)) => (f, s),
        (Err(e), _) | (_, Err(e)) => return (MeasurementPhase::Error, Some(e)),
    };
    let phase = match (failed, succeeded) {
        (Some(true), _) => MeasurementPhase::Failed,
        (_, Some(true)) => MeasurementPhase::Successful,
        (Some(false), Some(false)) => MeasurementPhase::Inconclusive,
        (None, Some(false)) => MeasurementPhase::Failed,
        (Some(false), None) => MeasurementPhase::Successful,
        (None, None) if *value == serde_json::Value::Bool(true) => MeasurementPhase::Successful,
        (None, None) => MeasurementPhase::Inconclusive,
    };
    (phase, None)
}

fn record(ms: &mut MetricStatus, m: Measurement) {
    ms.count = ms.count.saturating_add(1);
    let counter = match m.phase {
        MeasurementPhase::Successful => &mut ms.successful,
        MeasurementPhase::Failed => &mut ms.failed,
        MeasurementPhase::Inconclusive => &mut ms.inconclusive,
        MeasurementPhase::Error => &mut ms.errors,
    };
    *counter = counter.saturating_add(1);
    if m.phase == MeasurementPhase::Error {
        ms.consecutive_errors = ms.consecutive_errors.saturating_add(1);
        ms.message = m.message.clone();
    } else {
        ms.consecutive_errors = 0;
        ms.message = None;
    }
    ms.measurements.push(m);
    let extra = ms.measurements.len().saturating_sub(MAX_MEASUREMENTS);
    ms.measurements.drain(..extra);
}

/// Rule 3: the phase of a metric from its counters.
pub fn metric_phase(metric: &Metric, ms: &MetricStatus) -> (AnalysisPhase, Option<String>) {
    let name = &metric.name;
    let failure_limit = metric.failure_limit.unwrap_or(0);
    let inconclusive_limit = metric.inconclusive_limit.unwrap_or(0);
    let error_limit = metric
        .consecutive_error_limit
        .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT);
    if ms.failed > failure_limit {
        let values = values_of(ms, MeasurementPhase::Failed);
        return (
            AnalysisPhase::Failed,
            Some(format!(
                "metric {name} failed: {} failed measurements, more than failureLimit {failure_limit} (values: {values}; query: {})",
                ms.failed, ms.query
            )),
        );
    }
    if ms.consecutive_errors > error_limit {
        let last = ms.message.as_deref().unwrap_or("unknown error");
        return (
            AnalysisPhase::Inconclusive,
            Some(format!(
                "metric {name}: {} provider errors in a row, more than consecutiveErrorLimit {error_limit} (last: {last})",
                ms.consecutive_errors
            )),
        );
    }
    if ms.inconclusive > inconclusive_limit {
        let values = values_of(ms, MeasurementPhase::Inconclusive);
        return (
            AnalysisPhase::Inconclusive,
            Some(format!(
                "metric {name}: {} inconclusive measurements (neither condition held), more than inconclusiveLimit {inconclusive_limit} (values: {values})",
                ms.inconclusive
            )),
        );
    }
    let judged = ms.successful + ms.failed + ms.inconclusive;
    if judged >= metric.count.unwrap_or(1) {
        return (AnalysisPhase::Successful, None);
    }
    (AnalysisPhase::Running, None)
}

fn values_of(ms: &MetricStatus, phase: MeasurementPhase) -> String {
    let values: Vec<&str> = ms
        .measurements
        .iter()
        .filter(|m| m.phase == phase)
        .filter_map(|m| m.value.as_deref())
        .map(|v| if v.len() > 64 { "(long)" } else { v })
        .collect();
    values.join(", ")
}

/// Rule 5: the analysis from its metrics.
fn overall(metrics: &[MetricStatus]) -> (AnalysisPhase, Option<String>) {
    let messages = |phase| {
        let m: Vec<&str> = metrics
            .iter()
            .filter(|m| m.phase == phase)
            .filter_map(|m| m.message.as_deref())
            .collect();
        Some(shorten(&m.join("; "), MAX_STATUS_TEXT as usize * 4))
    };
    let any = |phase| metrics.iter().any(|m| m.phase == phase);
    if any(AnalysisPhase::Failed) {
        (AnalysisPhase::Failed, messages(AnalysisPhase::Failed))
    } else if any(AnalysisPhase::Inconclusive) {
        (
            AnalysisPhase::Inconclusive,
            messages(AnalysisPhase::Inconclusive),
        )
    } else if metrics.iter().all(|m| m.phase == AnalysisPhase::Successful) {
        let n = metrics.len();
        (
            AnalysisPhase::Successful,
            Some(format!("{n} of {n} metrics successful")),
        )
    } else {
        (AnalysisPhase::Running, None)
    }
}

fn duration(text: &str) -> Duration {
    crate::crd::validation::parse_duration(text).unwrap_or(DEFAULT_RETRY)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests;
