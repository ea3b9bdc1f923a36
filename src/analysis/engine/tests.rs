//! The phase rules, one test per rule, with scripted provider answers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::*;
use crate::analysis::args::{Args, substitute};
use crate::analysis::next_due;
use crate::crd::analysis::{MetricProvider, PrometheusMetric};

type Script = Arc<Mutex<VecDeque<Result<Value, ProviderError>>>>;

/// Answers from a script; the query is the metric's with arguments substituted.
struct Scripted {
    scripts: BTreeMap<String, Script>,
}

struct ScriptedProvider {
    script: Script,
    query: String,
}

#[async_trait::async_trait]
impl Provider for ScriptedProvider {
    async fn measure(&self) -> Result<Value, ProviderError> {
        let next = self.script.lock().map(|mut s| s.pop_front()).ok().flatten();
        next.unwrap_or_else(|| Err(ProviderError::Failed("script exhausted".into())))
    }
    fn query(&self) -> String {
        self.query.clone()
    }
}

impl MakeProvider for Scripted {
    fn make(&self, metric: &Metric, args: &Args) -> Result<Box<dyn Provider>, String> {
        let query = metric.provider.prometheus.as_ref().map_or("", |p| &p.query);
        Ok(Box::new(ScriptedProvider {
            script: self.scripts.get(&metric.name).cloned().unwrap_or_default(),
            query: substitute(query, args)?,
        }))
    }
}

fn scripted(metrics: &[(&str, Vec<Result<Value, ProviderError>>)]) -> Scripted {
    let scripts = metrics
        .iter()
        .map(|(n, s)| (n.to_string(), Arc::new(Mutex::new(s.clone().into()))))
        .collect();
    Scripted { scripts }
}

fn left(s: &Scripted, metric: &str) -> usize {
    s.scripts[metric].lock().map(|q| q.len()).unwrap_or(0)
}

fn metric(name: &str) -> Metric {
    Metric {
        name: name.into(),
        provider: MetricProvider {
            prometheus: Some(PrometheusMetric {
                address: "http://prom".into(),
                query: "errors{service=\"{{args.service}}\"}".into(),
                auth_secret_ref: None,
                timeout: None,
            }),
            web: None,
            cloud_monitor: None,
        },
        interval: Some("1m".into()),
        count: None,
        initial_delay: None,
        failure_limit: None,
        inconclusive_limit: None,
        consecutive_error_limit: None,
        success_condition: Some("result < 0.1".into()),
        failure_condition: None,
    }
}

fn spec(metrics: Vec<Metric>) -> AnalysisTemplateSpec {
    AnalysisTemplateSpec {
        args: vec![],
        metrics,
    }
}

fn args() -> Args {
    Args::new(
        BTreeMap::from([("service".to_string(), "shop".to_string())]),
        vec![],
    )
}

fn t0() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

fn at(minutes: i64) -> Timestamp {
    t0() + SignedDuration::from_mins(minutes)
}

fn fail(msg: &str) -> Result<Value, ProviderError> {
    Err(ProviderError::Failed(msg.into()))
}

const T: &str = "AnalysisTemplate/t";

/// Advance at each minute in `minutes`, feeding each status into the next.
async fn walk(
    spec: &AnalysisTemplateSpec,
    make: &Scripted,
    minutes: &[i64],
) -> Vec<AnalysisStatus> {
    let mut out: Vec<AnalysisStatus> = Vec::new();
    for &m in minutes {
        let s = run(T, spec, &args(), make, out.last(), at(m)).await;
        out.push(s);
    }
    out
}

#[tokio::test]
async fn count_measurements_at_interval_then_successful() {
    let mut m = metric("errors");
    m.count = Some(3);
    let make = scripted(&[(
        "errors",
        vec![Ok(json!(0.01)), Ok(json!(0.02)), Ok(json!(0.03))],
    )]);
    let s = walk(&spec(vec![m]), &make, &[0, 0, 1, 2]).await;
    assert_eq!(s[0].phase, AnalysisPhase::Running);
    assert_eq!(
        s[0].metrics[0].next_at.as_deref(),
        Some("2026-12-02T10:01:00Z")
    );
    // Not due again within the interval: nothing measured.
    assert_eq!(s[1].metrics[0].count, 1);
    assert_eq!(s[2].metrics[0].count, 2);
    assert_eq!(s[3].phase, AnalysisPhase::Successful, "{:?}", s[3]);
    assert_eq!(s[3].metrics[0].successful, 3);
    assert_eq!(next_due(&s[3]), None);
    assert_eq!(s[3].started_at, "2026-12-02T10:00:00Z");
    assert_eq!(s[3].metrics[0].query, "errors{service=\"shop\"}");
    assert_eq!(s[3].metrics[0].provider, "prometheus");
}

#[tokio::test]
async fn failed_beyond_failure_limit_fails_with_the_values() {
    let mut m = metric("errors");
    m.count = Some(5);
    m.failure_limit = Some(1);
    let make = scripted(&[(
        "errors",
        vec![Ok(json!(0.5)), Ok(json!(0.01)), Ok(json!(0.7))],
    )]);
    let s = walk(&spec(vec![m]), &make, &[0, 1, 2]).await;
    assert_eq!(
        s[0].phase,
        AnalysisPhase::Running,
        "one failure is within the limit"
    );
    assert_eq!(s[2].phase, AnalysisPhase::Failed);
    let msg = s[2].message.as_deref().unwrap_or_default();
    assert!(
        msg.contains("metric errors failed: 2 failed measurements, more than failureLimit 1"),
        "{msg}"
    );
    assert!(msg.contains("0.5, 0.7"), "{msg}");
    assert_eq!(next_due(&s[2]), None);
}

#[tokio::test]
async fn errors_in_a_row_beyond_the_limit_are_inconclusive_never_successful() {
    let mut m = metric("errors");
    m.consecutive_error_limit = Some(2);
    let make = scripted(&[("errors", vec![fail("connection refused"); 3])]);
    let s = walk(&spec(vec![m]), &make, &[0, 1, 2]).await;
    assert_eq!(s[1].phase, AnalysisPhase::Running);
    assert_eq!(s[2].phase, AnalysisPhase::Inconclusive);
    let msg = s[2].message.as_deref().unwrap_or_default();
    assert!(
        msg.contains("3 provider errors in a row, more than consecutiveErrorLimit 2"),
        "{msg}"
    );
    assert!(msg.contains("connection refused"), "{msg}");
    assert_eq!(s[2].metrics[0].errors, 3);
}

#[tokio::test]
async fn an_error_does_not_count_toward_count_and_a_success_resets_the_run() {
    let mut m = metric("errors");
    m.consecutive_error_limit = Some(1);
    m.count = Some(2);
    let make = scripted(&[(
        "errors",
        vec![fail("503"), Ok(json!(0.0)), fail("503"), Ok(json!(0.0))],
    )]);
    let s = walk(&spec(vec![m]), &make, &[0, 1, 2, 3]).await;
    assert_eq!(s[0].metrics[0].consecutive_errors, 1);
    assert_eq!(s[1].metrics[0].consecutive_errors, 0);
    assert_eq!(s[2].phase, AnalysisPhase::Running);
    assert_eq!(s[3].phase, AnalysisPhase::Successful);
    assert_eq!((s[3].metrics[0].count, s[3].metrics[0].errors), (4, 2));
}

#[tokio::test]
async fn the_default_error_limit_is_four() {
    let make = scripted(&[("errors", vec![fail("down"); 5])]);
    let s = walk(&spec(vec![metric("errors")]), &make, &[0, 1, 2, 3, 4]).await;
    assert_eq!(s[3].phase, AnalysisPhase::Running);
    assert_eq!(s[4].phase, AnalysisPhase::Inconclusive);
}

#[tokio::test]
async fn initial_delay_holds_the_first_measurement() {
    let mut m = metric("errors");
    m.initial_delay = Some("5m".into());
    let make = scripted(&[("errors", vec![Ok(json!(0.0))])]);
    let s = walk(&spec(vec![m]), &make, &[0, 4, 5]).await;
    assert_eq!(s[0].metrics[0].count, 0);
    assert_eq!(next_due(&s[0]), Some(at(5)));
    assert_eq!(s[1].metrics[0].count, 0);
    assert_eq!(s[2].phase, AnalysisPhase::Successful);
    assert_eq!(left(&make, "errors"), 0);
}

#[tokio::test]
async fn neither_condition_is_inconclusive_beyond_the_limit() {
    let mut m = metric("errors");
    m.failure_condition = Some("result > 0.5".into());
    m.inconclusive_limit = Some(1);
    m.count = Some(3);
    let make = scripted(&[("errors", vec![Ok(json!(0.3)), Ok(json!(0.3))])]);
    let s = walk(&spec(vec![m]), &make, &[0, 1]).await;
    assert_eq!(s[0].phase, AnalysisPhase::Running);
    assert_eq!(s[1].phase, AnalysisPhase::Inconclusive);
    let msg = s[1].message.as_deref().unwrap_or_default();
    assert!(msg.contains("neither condition held"), "{msg}");
}

#[tokio::test]
async fn one_condition_alone_decides_both_ways() {
    let mut only_success = metric("a");
    only_success.count = Some(1);
    let mut only_failure = metric("b");
    only_failure.success_condition = None;
    only_failure.failure_condition = Some("result > 0.5".into());
    let make = scripted(&[("a", vec![Ok(json!(0.9))]), ("b", vec![Ok(json!(0.2))])]);
    let s = walk(&spec(vec![only_success, only_failure]), &make, &[0]).await;
    assert_eq!(s[0].metrics[0].phase, AnalysisPhase::Failed);
    assert_eq!(s[0].metrics[1].phase, AnalysisPhase::Successful);
    assert_eq!(
        s[0].phase,
        AnalysisPhase::Failed,
        "any failed metric fails the analysis"
    );
}

#[tokio::test]
async fn failure_wins_when_both_conditions_hold() {
    let mut m = metric("errors");
    m.success_condition = Some("result >= 0".into());
    m.failure_condition = Some("result > 0.5".into());
    let make = scripted(&[("errors", vec![Ok(json!(0.9))])]);
    let s = walk(&spec(vec![m]), &make, &[0]).await;
    assert_eq!(s[0].phase, AnalysisPhase::Failed);
}

#[tokio::test]
async fn a_condition_that_cannot_evaluate_is_an_error_measurement() {
    let mut m = metric("errors");
    m.consecutive_error_limit = Some(0);
    // NaN from Prometheus arrives as null: `null < 0.1` must not pass.
    let make = scripted(&[("errors", vec![Ok(Value::Null)])]);
    let s = walk(&spec(vec![m]), &make, &[0]).await;
    assert_eq!(
        s[0].metrics[0].measurements[0].phase,
        MeasurementPhase::Error
    );
    assert_eq!(s[0].phase, AnalysisPhase::Inconclusive);
}

#[tokio::test]
async fn a_web_gate_without_conditions_passes_on_true() {
    let mut m = metric("gate");
    m.success_condition = None;
    let make = scripted(&[("gate", vec![Ok(json!(true))])]);
    let s = walk(&spec(vec![m]), &make, &[0]).await;
    assert_eq!(s[0].phase, AnalysisPhase::Successful);
}

#[tokio::test]
async fn a_condition_that_does_not_compile_is_an_error_naming_the_metric() {
    let mut m = metric("latency");
    m.success_condition = Some("result <".into());
    let make = scripted(&[("latency", vec![Ok(json!(1))])]);
    let s = walk(&spec(vec![m]), &make, &[0]).await;
    assert_eq!(s[0].phase, AnalysisPhase::Error);
    let msg = s[0].message.as_deref().unwrap_or_default();
    assert!(msg.starts_with("metric latency: successCondition"), "{msg}");
    assert_eq!(left(&make, "latency"), 1, "nothing measured");
}

#[tokio::test]
async fn a_missing_argument_is_an_error_naming_it() {
    let mut m = metric("errors");
    if let Some(p) = m.provider.prometheus.as_mut() {
        p.query = "x{v=\"{{args.canaryVersion}}\"}".into();
    }
    let make = scripted(&[("errors", vec![])]);
    let s = walk(&spec(vec![m]), &make, &[0]).await;
    assert_eq!(s[0].phase, AnalysisPhase::Error);
    let msg = s[0].message.as_deref().unwrap_or_default();
    assert!(
        msg.contains("metric errors: {{args.canaryVersion}} names no argument"),
        "{msg}"
    );
}

#[tokio::test]
async fn secret_values_never_reach_the_status() {
    let mut m = metric("errors");
    if let Some(p) = m.provider.prometheus.as_mut() {
        p.query = "x{token=\"{{args.token}}\"}".into();
    }
    m.consecutive_error_limit = Some(0);
    let secret_args = Args::new(
        BTreeMap::from([("token".to_string(), "hunter2".to_string())]),
        vec!["token".to_string()],
    );
    let make = scripted(&[("errors", vec![fail("GET /q?token=hunter2: 401")])]);
    let s = run(T, &spec(vec![m]), &secret_args, &make, None, t0()).await;
    let text = serde_json::to_string(&s).unwrap_or_default();
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(s.metrics[0].query, "x{token=\"***\"}");
    assert!(text.contains("token=***: 401"), "{text}");
}

#[tokio::test]
async fn measurements_are_bounded_and_finished_metrics_are_not_measured_again() {
    let mut m = metric("errors");
    m.count = Some(12);
    let make = scripted(&[("errors", vec![Ok(json!(0.0)); 13])]);
    let minutes: Vec<i64> = (0..14).collect();
    let s = walk(&spec(vec![m]), &make, &minutes).await;
    assert_eq!(s[11].phase, AnalysisPhase::Successful);
    assert_eq!(s[11].metrics[0].measurements.len(), MAX_MEASUREMENTS);
    assert_eq!(s[11].metrics[0].measurements[0].at, "2026-12-02T10:02:00Z");
    assert_eq!(left(&make, "errors"), 1);
}

#[tokio::test]
async fn the_analysis_waits_for_every_metric_and_next_due_is_the_earliest() {
    let mut slow = metric("slow");
    slow.interval = Some("10m".into());
    slow.count = Some(2);
    let mut fast = metric("fast");
    fast.count = Some(2);
    let make = scripted(&[
        ("slow", vec![Ok(json!(0)); 2]),
        ("fast", vec![Ok(json!(0)); 2]),
    ]);
    let s = walk(&spec(vec![slow, fast]), &make, &[0, 1]).await;
    assert_eq!(s[0].phase, AnalysisPhase::Running);
    assert_eq!(next_due(&s[0]), Some(at(1)));
    assert_eq!(s[1].metrics[1].phase, AnalysisPhase::Successful);
    assert_eq!(s[1].phase, AnalysisPhase::Running);
    assert_eq!(next_due(&s[1]), Some(at(10)));
}

#[tokio::test]
async fn an_error_status_keeps_prior_measurements_and_the_caller_fields() {
    let make = scripted(&[("errors", vec![Ok(json!(0.0))])]);
    let mut m = metric("errors");
    m.count = Some(2);
    let mut first = run(T, &spec(vec![m]), &args(), &make, None, t0()).await;
    first.step = Some(2);
    first.version = Some("v2".into());
    let e = error_status(T, Some(&first), at(1), "Secret x not found".into());
    assert_eq!(e.phase, AnalysisPhase::Error);
    assert_eq!((e.step, e.version.as_deref()), (Some(2), Some("v2")));
    assert_eq!(e.metrics[0].count, 1);
    assert_eq!(e.started_at, first.started_at);
}

#[tokio::test]
async fn conditions_may_use_arguments() {
    let mut m = metric("errors");
    m.success_condition = Some("result < {{args.threshold}}".into());
    let args = Args::new(
        BTreeMap::from([
            ("threshold".to_string(), "0.5".to_string()),
            ("service".to_string(), "shop".to_string()),
        ]),
        vec![],
    );
    let make = scripted(&[("errors", vec![Ok(json!(0.3))])]);
    let s = run(T, &spec(vec![m]), &args, &make, None, t0()).await;
    assert_eq!(s.phase, AnalysisPhase::Successful, "{s:?}");
}
