//! Metric analysis and automatic rollback end to end: the real API server, the simulator,
//! the operator binary, and a local HTTP server in the test playing the metrics source (a
//! `web` metric answering per version) and the webhook receiver of the notifications.
//!
//! Assertions follow the order of events and the simulator's call log, not wall-clock
//! windows: a bad version's rollback is the next mutation after the step it failed at,
//! with nothing sent in between, and with no one touching the resource.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use support::e2e::{Env, condition, repo_root};

const STABLE: &str = "1723599747213377175";
const CANARY: &str = "1723688023417750321";

const SEED: &str = r#"
routines:
  - name: checkout-edge
    codeVersions: ["1723599747213377175", "1723688023417750321"]
    deployed: "1723599747213377175"
"#;

/// What the test's HTTP server knows and saw.
#[derive(Default)]
struct Fake {
    /// Error ratio answered per version.
    ratio: BTreeMap<String, f64>,
    /// Webhook calls: (query string, body).
    hooks: Vec<(BTreeMap<String, String>, Value)>,
}

type Shared = Arc<Mutex<Fake>>;

async fn ratio(State(s): State<Shared>, Path(version): Path<String>) -> axum::Json<Value> {
    let r = s
        .lock()
        .map(|f| f.ratio.get(&version).copied().unwrap_or(1.0))
        .unwrap_or(1.0);
    axum::Json(json!({"data": {"errorRatio": r}}))
}

async fn hook(
    State(s): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
    body: axum::Json<Value>,
) -> axum::Json<Value> {
    if let Ok(mut f) = s.lock() {
        f.hooks.push((q, body.0));
    }
    axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
}

/// Start the test's HTTP server; its base URL and state.
async fn fake_server() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/ratio/{version}", get(ratio))
        .route("/hook", post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

/// A template judging the version's error ratio from the test's server: two measurements a
/// second apart, none failed allowed.
fn web_template(base: &str) -> String {
    format!(
        r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-ratio
spec:
  metrics:
    - name: error-ratio
      provider:
        web:
          url: "{base}/ratio/{{{{args.canaryVersion}}}}"
          jsonPath: $.data.errorRatio
      interval: 1s
      count: 2
      successCondition: result < 0.05
      failureCondition: result >= 0.05
"#
    )
}

/// A routine canary analysed at 10% and 50%, its transitions sent to the test's webhook.
fn routine(format: &str) -> String {
    format!(
        r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EsaRoutineRollout
metadata:
  name: checkout-edge
spec:
  routine: checkout-edge
  env: production
  canary:
    stableVersion: "{STABLE}"
    canaryVersion: "{CANARY}"
    steps:
      - percentage: 10
        pause: 1s
        analysis:
          templateRef:
            name: error-ratio
      - percentage: 50
        pause: 1s
        analysis:
          templateRef:
            name: error-ratio
  notifications:
    - format: {format}
      secretRef:
        name: webhook
"#
    )
}

const RES: &str = "esaroutinerollout/checkout-edge";

fn canary_share(obj: &Value) -> i64 {
    obj["status"]["codeVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["codeVersion"] == CANARY)
        .and_then(|c| c["percentage"].as_i64())
        .unwrap_or(0)
}

fn webhook_secret(env: &Env, base: &str, signing: Option<&str>) {
    let mut args = vec![
        "create".to_string(),
        "secret".into(),
        "generic".into(),
        "webhook".into(),
        format!("--from-literal=url={base}/hook?access_token=t0ken"),
    ];
    if let Some(s) = signing {
        args.push(format!("--from-literal=secret={s}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.kubectl.must(&args);
}

/// The simulator's applied mutations, in order.
async fn mutations(env: &Env) -> Vec<Value> {
    env.sim
        .call_log()
        .await
        .into_iter()
        .filter(|c| c["mutation"] == true && c["applied"] == true)
        .collect()
}

async fn hooks_seen(
    state: &Shared,
    what: &str,
    f: impl Fn(&[(BTreeMap<String, String>, Value)]) -> bool,
) {
    support::e2e::wait_for(what, Duration::from_secs(30), || async {
        let hooks = state.lock().map(|f| f.hooks.clone()).unwrap_or_default();
        if f(&hooks) {
            Ok(())
        } else {
            Err(format!(
                "{:?}",
                hooks.iter().map(|h| &h.1).collect::<Vec<_>>()
            ))
        }
    })
    .await;
}

fn events_of(hooks: &[(BTreeMap<String, String>, Value)]) -> Vec<String> {
    hooks
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A good version passes each analysis and walks every step to 100%; the webhook hears the
/// steps and the completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_walks_every_analysed_step() {
    let (base, state) = fake_server().await;
    if let Ok(mut f) = state.lock() {
        f.ratio.insert(CANARY.into(), 0.01);
    }
    let env = Env::start("analysis-good", SEED, 1.0, "routine").await;
    webhook_secret(&env, &base, None);
    env.kubectl.apply(&web_template(&base));
    env.kubectl.apply(&routine("json"));
    let obj = env
        .wait_obj("completed", RES, Duration::from_secs(90), |o| {
            (o["status"]["phase"] == "Completed")
                .then_some(())
                .ok_or_else(|| format!("canary at {}", canary_share(o)))
        })
        .await;
    assert_eq!(canary_share(&obj), 100, "{obj}");
    assert_eq!(obj["status"]["analysis"]["phase"], "Successful", "{obj}");
    assert_eq!(obj["status"]["analysis"]["step"], 1, "{obj}");
    assert!(obj["status"]["aborted"].is_null(), "{obj}");
    // 10%, 50%, 100%: one deployment each, nothing else.
    let sent = mutations(&env).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    hooks_seen(&state, "stepReached and completed", |h| {
        let e = events_of(h);
        e.iter().any(|x| x == "stepReached") && e.iter().any(|x| x == "completed")
    })
    .await;
}

/// A bad version fails the analysis at its first step and is rolled back with no one
/// touching it: the rollback (100% on the stable version) is the next mutation after the
/// 10% step, Degraded says AnalysisFailed, a Warning Event carries the measurements, and
/// the DingTalk webhook hears it, signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_is_rolled_back_automatically() {
    let (base, state) = fake_server().await;
    if let Ok(mut f) = state.lock() {
        f.ratio.insert(CANARY.into(), 0.5);
    }
    let env = Env::start("analysis-bad", SEED, 1.0, "routine").await;
    webhook_secret(&env, &base, Some("SECsigning"));
    env.kubectl.apply(&web_template(&base));
    env.kubectl.apply(&routine("dingTalk"));
    let obj = env
        .wait_obj("rolled back", RES, Duration::from_secs(90), |o| {
            let degraded = condition(o, "Degraded");
            (canary_share(o) == 0
                && o["status"]["aborted"]["reason"] == "AnalysisFailed"
                && degraded.as_ref().map(|c| c.0.as_str()) == Some("True"))
            .then_some(())
            .ok_or_else(|| format!("canary at {}, degraded {degraded:?}", canary_share(o)))
        })
        .await;
    assert_eq!(
        condition(&obj, "Degraded").map(|c| c.1).as_deref(),
        Some("AnalysisFailed")
    );
    assert_eq!(obj["status"]["analysis"]["phase"], "Failed", "{obj}");
    assert_eq!(obj["status"]["aborted"]["version"], CANARY);
    // The call log: the 10% step, then the rollback, nothing in between or after.
    let sent = mutations(&env).await;
    assert_eq!(sent.len(), 2, "step 10%, then the rollback: {sent:?}");
    assert!(
        sent.iter()
            .all(|c| c["action"] == "CreateRoutineCodeDeployment")
    );
    let state_now = env.sim.state().await;
    let text = state_now.to_string();
    assert!(text.contains(STABLE), "{text}");
    // The Warning Event carries the measurements.
    let events = env.kubectl.must(&[
        "get",
        "events.v1.events.k8s.io",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.note}{\"\\n\"}{end}",
    ]);
    let failed = events
        .lines()
        .find(|l| l.starts_with("AnalysisFailed:"))
        .unwrap_or_else(|| panic!("no AnalysisFailed Event: {events}"));
    assert!(
        failed.contains("0.5"),
        "the measurements are told: {failed}"
    );
    // Nothing more is sent for that version.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(mutations(&env).await.len(), 2);
    // The DingTalk robot heard it, signed, and the URL's token is nowhere in status.
    hooks_seen(&state, "analysisFailed and rolledBack", |h| {
        let titles: Vec<String> = h
            .iter()
            .map(|(_, b)| {
                b["markdown"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        titles.iter().any(|t| t.ends_with("analysisFailed"))
            && titles.iter().any(|t| t.ends_with("rolledBack"))
    })
    .await;
    let hooks = state.lock().map(|f| f.hooks.clone()).unwrap_or_default();
    for (q, _) in &hooks {
        let ts: i64 = q["timestamp"].parse().expect("timestamp");
        assert_eq!(
            q.get("sign").map(String::as_str),
            Some(alicloud_rollouts::notify::dingtalk_sign(ts, "SECsigning").as_str())
        );
    }
    let obj = env.kubectl.get(RES);
    assert!(!obj.to_string().contains("t0ken"));
}

/// A metrics source that cannot be reached never passes: the analysis turns
/// Inconclusive, the canary holds at its step (Paused, reason AnalysisInconclusive), and
/// nothing more is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_prometheus_pauses_and_never_passes() {
    let (base, state) = fake_server().await;
    let env = Env::start("analysis-unreachable", SEED, 1.0, "routine").await;
    webhook_secret(&env, &base, None);
    // A closed port: every measurement is a provider error.
    env.kubectl.apply(
        r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-ratio
spec:
  metrics:
    - name: error-ratio
      provider:
        prometheus:
          address: http://127.0.0.1:1
          query: sum(rate(http_requests_total{code=~"5.."}[1m]))
          timeout: 2s
      interval: 1s
      count: 5
      consecutiveErrorLimit: 1
      successCondition: result < 0.05
"#,
    );
    env.kubectl.apply(&routine("json"));
    let obj = env
        .wait_obj(
            "paused on the analysis",
            RES,
            Duration::from_secs(90),
            |o| {
                let paused = condition(o, "Paused");
                (paused.as_ref().map(|c| c.1.as_str()) == Some("AnalysisInconclusive"))
                    .then_some(())
                    .ok_or_else(|| format!("paused {paused:?}"))
            },
        )
        .await;
    assert_eq!(obj["status"]["analysis"]["phase"], "Inconclusive", "{obj}");
    assert_eq!(canary_share(&obj), 10, "held at its step: {obj}");
    assert!(obj["status"]["aborted"].is_null(), "not rolled back: {obj}");
    assert_eq!(mutations(&env).await.len(), 1, "only the 10% step");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let obj = env.kubectl.get(RES);
    assert_eq!(canary_share(&obj), 10, "never passes: {obj}");
    assert_eq!(mutations(&env).await.len(), 1);
    hooks_seen(&state, "paused", |h| {
        events_of(h).iter().any(|x| x == "paused")
    })
    .await;
}

/// The README section's examples apply as written (templates and rollouts of every kind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_analysis_examples_apply_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let section = readme
        .split("## Metric analysis and automatic rollback")
        .nth(1)
        .expect("the README has the section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let env = Env::start("analysis-readme", SEED, 1.0, "routine").await;
    let mut applied = 0;
    for name in ["routine.yaml", "containerapp.yaml", "eas.yaml"] {
        let file = std::fs::read_to_string(repo_root().join("examples/analysis").join(name))
            .expect("example readable");
        let body: String = file
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            section.contains(body.trim()),
            "the README shows examples/analysis/{name} as it is"
        );
        env.kubectl.apply(&file);
        applied += 1;
    }
    assert_eq!(applied, 3);
    for res in [
        "analysistemplate/routine-error-ratio",
        "analysistemplate/app-health",
        "analysistemplate/eas-5xx",
        "esaroutinerollout/checkout-edge",
        "esacontainerapprollout/storefront-prod",
        "easservicerollout/bert-embeddings",
    ] {
        assert!(env.kubectl.try_get(res).is_some(), "{res} was stored");
    }
}

const EAS_SEED: &str = r#"
services:
  - name: bert_embeddings
    region: cn-hangzhou
    replicas: 4
    config: {containers: [{image: "bert:v1"}]}
"#;

/// EAS: the background analysis of a new service config fails, and the rollout is rolled
/// back with no one touching it: the partition is raised to every replica (all traffic on
/// the old version), after the config push, and nothing else is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_eas_version_is_rolled_back_to_every_old_replica() {
    let (base, state) = fake_server().await;
    if let Ok(mut f) = state.lock() {
        f.ratio.insert("bad".into(), 0.5);
    }
    let env = Env::start("analysis-eas", EAS_SEED, 1.0, "eas").await;
    env.kubectl.apply(&format!(
        r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: service-errors
spec:
  args:
    - name: which
  metrics:
    - name: error-ratio
      provider:
        web:
          url: "{base}/ratio/{{{{args.which}}}}"
          jsonPath: $.data.errorRatio
      interval: 1s
      count: 2
      successCondition: result < 0.05
"#
    ));
    env.kubectl.apply(
        r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: bert
spec:
  region: cn-hangzhou
  serviceName: bert_embeddings
  strategy:
    partition: "2"
  serviceConfig:
    containers:
      - image: bert:v2
  analysis:
    templateRef:
      name: service-errors
    args:
      - name: which
        value: bad
"#,
    );
    let res = "easservicerollout/bert";
    let obj = env
        .wait_obj("rolled back", res, Duration::from_secs(120), |o| {
            (o["status"]["aborted"]["reason"] == "AnalysisFailed"
                && o["status"]["cloudStrategy"]
                    .as_str()
                    .is_some_and(|s| s.contains("100%")))
            .then_some(())
            .ok_or_else(|| "not rolled back".to_string())
        })
        .await;
    assert_eq!(obj["status"]["analysis"]["phase"], "Failed", "{obj}");
    let sent: Vec<String> = mutations(&env)
        .await
        .iter()
        .map(|c| c["action"].as_str().unwrap_or_default().to_string())
        .collect();
    let push = sent
        .iter()
        .position(|a| a == "UpdateService")
        .expect("the config was pushed");
    assert_eq!(
        sent.last().map(String::as_str),
        Some("UpdateServiceRollout"),
        "the rollback is the last mutation: {sent:?}"
    );
    assert!(push < sent.len() - 1, "{sent:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        mutations(&env).await.len(),
        sent.len(),
        "nothing more is sent"
    );
}
