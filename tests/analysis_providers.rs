//! The prometheus and web providers against a local HTTP server: answers that pass, 5xx,
//! timeouts, bodies that are not JSON, bodies too large to read; and the engine on top of
//! them, where an unreachable provider ends Inconclusive, never Successful.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alicloud_rollouts::analysis::args::Args;
use alicloud_rollouts::analysis::prometheus::PrometheusProvider;
use alicloud_rollouts::analysis::web::WebProvider;
use alicloud_rollouts::analysis::{MAX_BODY_BYTES, MakeProvider, Provider, ProviderError, run};
use alicloud_rollouts::crd::analysis::{
    AnalysisPhase, AnalysisTemplateSpec, Metric, MetricProvider, PrometheusMetric, WebMethod,
};
use axum::Router;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

fn vector(values: &[&str]) -> Value {
    let result: Vec<Value> = values
        .iter()
        .map(|v| json!({"metric": {"version": "v2"}, "value": [1_700_000_000.0, v]}))
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

fn huge() -> String {
    "x".repeat(MAX_BODY_BYTES + 1)
}

/// A stream of 64 KiB chunks without a Content-Length, longer than the bound.
fn huge_chunked() -> Response {
    let chunks = (0..(MAX_BODY_BYTES / 65536 + 2))
        .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 65536])));
    Body::from_stream(futures::stream::iter(chunks)).into_response()
}

async fn prometheus(headers: HeaderMap, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let query = q.get("query").map(String::as_str).unwrap_or_default();
    match query {
        "one" => axum::Json(vector(&["0.005"])).into_response(),
        "two" => axum::Json(vector(&["0.1", "0.2"])).into_response(),
        "refused" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "error", "errorType": "bad_data", "error": "parse error"})),
        )
            .into_response(),
        "boom" => (StatusCode::INTERNAL_SERVER_ERROR, "internal trouble").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            axum::Json(vector(&["1"])).into_response()
        }
        "garbage" => "this is not json".into_response(),
        "huge" => huge().into_response(),
        "chunked" => huge_chunked(),
        "auth" => match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Bearer tok3n") => axum::Json(vector(&["1"])).into_response(),
            _ => (StatusCode::UNAUTHORIZED, "no").into_response(),
        },
        other => (StatusCode::BAD_REQUEST, format!("unknown query {other}")).into_response(),
    }
}

async fn web_post(headers: HeaderMap, body: String) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    axum::Json(json!({"got": body, "contentType": content_type})).into_response()
}

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/api/v1/query", get(prometheus))
        .route(
            "/web/ok",
            get(|| async { axum::Json(json!({"data": {"rate": 0.02, "ok": [true, true]}})) }),
        )
        .route(
            "/web/503",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
        )
        .route(
            "/web/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .route("/web/garbage", get(|| async { "<html>" }))
        .route("/web/huge", get(|| async { huge() }))
        .route("/web/chunked", get(|| async { huge_chunked() }))
        .route("/web/post", post(web_post))
        .route(
            "/web/header",
            get(|headers: HeaderMap| async move {
                match headers.get("x-token").and_then(|v| v.to_str().ok()) {
                    Some("abc") => StatusCode::NO_CONTENT,
                    _ => StatusCode::FORBIDDEN,
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().build().expect("an HTTP client")
}

fn prom(addr: SocketAddr, query: &str) -> PrometheusProvider {
    PrometheusProvider {
        http: http(),
        address: format!("http://{addr}/"),
        query: query.into(),
        auth: None,
        timeout: Duration::from_secs(1),
    }
}

fn web(addr: SocketAddr, path: &str, json_path: Option<&str>) -> WebProvider {
    WebProvider {
        http: http(),
        method: WebMethod::Get,
        url: format!("http://{addr}{path}"),
        headers: vec![],
        body: None,
        json_path: json_path.map(Into::into),
        timeout: Duration::from_secs(1),
    }
}

fn failed(r: Result<Value, ProviderError>) -> String {
    match r {
        Err(ProviderError::Failed(m)) => m,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn prometheus_answers_become_numbers_and_lists() {
    let addr = serve().await;
    assert_eq!(prom(addr, "one").measure().await, Ok(json!(0.005)));
    assert_eq!(prom(addr, "two").measure().await, Ok(json!([0.1, 0.2])));
    assert_eq!(prom(addr, "one").query(), "one");
    let mut with_auth = prom(addr, "auth");
    assert!(failed(with_auth.measure().await).contains("HTTP 401"));
    with_auth.auth = Some(("Authorization".into(), "Bearer tok3n".into()));
    assert_eq!(with_auth.measure().await, Ok(json!(1.0)));
}

#[tokio::test]
async fn prometheus_errors_say_what_went_wrong() {
    let addr = serve().await;
    let refused = failed(prom(addr, "refused").measure().await);
    assert_eq!(refused, "HTTP 400: prometheus: bad_data: parse error");
    let boom = failed(prom(addr, "boom").measure().await);
    assert_eq!(boom, "HTTP 500: internal trouble");
    assert!(
        failed(prom(addr, "garbage").measure().await).contains("not a Prometheus API response")
    );
    assert!(failed(prom(addr, "huge").measure().await).contains("larger than"));
    assert!(failed(prom(addr, "chunked").measure().await).contains("larger than"));
    let started = Instant::now();
    let slow = prom(addr, "slow").measure().await;
    assert!(
        matches!(&slow, Err(ProviderError::Timeout(_)))
            || matches!(&slow, Err(ProviderError::Failed(m)) if m.contains("timed out")),
        "{slow:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout held"
    );
    // Nothing listens: a connection error, without the URL.
    let mut gone = prom("127.0.0.1:9".parse().expect("addr"), "one");
    gone.query = "secret-token-in-query".into();
    let msg = failed(gone.measure().await);
    assert!(!msg.contains("secret-token-in-query"), "{msg}");
}

#[tokio::test]
async fn web_answers_pass_on_2xx_and_pick_with_json_path() {
    let addr = serve().await;
    assert_eq!(web(addr, "/web/ok", None).measure().await, Ok(json!(true)));
    assert_eq!(
        web(addr, "/web/ok", Some("$.data.rate")).measure().await,
        Ok(json!(0.02))
    );
    assert_eq!(
        web(addr, "/web/ok", Some("$.data.ok[*]")).measure().await,
        Ok(json!([true, true]))
    );
    assert_eq!(
        web(addr, "/web/ok", Some("$.data.rate")).query(),
        format!("GET http://{addr}/web/ok $.data.rate")
    );
    let mut post = web(addr, "/web/post", Some("$"));
    post.method = WebMethod::Post;
    post.body = Some("{\"suite\":\"smoke\"}".into());
    assert_eq!(
        post.measure().await,
        Ok(json!({"got": "{\"suite\":\"smoke\"}", "contentType": "application/json"}))
    );
    let mut header = web(addr, "/web/header", None);
    assert!(failed(header.measure().await).contains("HTTP 403"));
    header.headers.push(("X-Token".into(), "abc".into()));
    assert_eq!(header.measure().await, Ok(json!(true)));
}

#[tokio::test]
async fn web_errors_say_what_went_wrong() {
    let addr = serve().await;
    assert_eq!(
        failed(web(addr, "/web/503", None).measure().await),
        "HTTP 503: down for maintenance"
    );
    assert!(failed(web(addr, "/web/garbage", Some("$.a")).measure().await).contains("not JSON"));
    assert!(
        failed(web(addr, "/web/ok", Some("$.nope")).measure().await).contains("matched nothing")
    );
    assert!(failed(web(addr, "/web/huge", None).measure().await).contains("larger than"));
    assert!(failed(web(addr, "/web/chunked", None).measure().await).contains("larger than"));
    let started = Instant::now();
    assert!(web(addr, "/web/slow", None).measure().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout held"
    );
}

/// The engine with real Prometheus providers built from the template.
struct Real {
    addr: SocketAddr,
}

impl MakeProvider for Real {
    fn make(&self, metric: &Metric, args: &Args) -> Result<Box<dyn Provider>, String> {
        let p = metric
            .provider
            .prometheus
            .as_ref()
            .ok_or("prometheus only")?;
        let mut provider = prom(
            self.addr,
            &alicloud_rollouts::analysis::args::substitute(&p.query, args)?,
        );
        provider.address = p.address.clone();
        Ok(Box::new(provider))
    }
}

fn template(address: String, query: &str) -> AnalysisTemplateSpec {
    AnalysisTemplateSpec {
        args: vec![],
        metrics: vec![Metric {
            name: "error-rate".into(),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric {
                    address,
                    query: query.into(),
                    auth_secret_ref: None,
                    timeout: Some("1s".into()),
                }),
                web: None,
                cloud_monitor: None,
            },
            interval: Some("10s".into()),
            count: Some(2),
            initial_delay: None,
            failure_limit: None,
            inconclusive_limit: None,
            consecutive_error_limit: Some(1),
            success_condition: Some("result < 0.01".into()),
            failure_condition: None,
        }],
    }
}

#[tokio::test]
async fn the_engine_passes_a_good_metric_and_never_passes_an_unreachable_one() {
    let addr = serve().await;
    let args = Args::new(BTreeMap::new(), vec![]);
    let t0: jiff::Timestamp = "2026-12-02T10:00:00Z".parse().expect("time");
    let later = t0 + jiff::SignedDuration::from_secs(10);
    let good = template(format!("http://{addr}"), "one");
    let make = Real { addr };
    let s = run("AnalysisTemplate/t", &good, &args, &make, None, t0).await;
    let s = run("AnalysisTemplate/t", &good, &args, &make, Some(&s), later).await;
    assert_eq!(s.phase, AnalysisPhase::Successful, "{s:?}");

    let down = template("http://127.0.0.1:9".into(), "one");
    let s = run("AnalysisTemplate/t", &down, &args, &make, None, t0).await;
    assert_eq!(s.phase, AnalysisPhase::Running);
    let s = run("AnalysisTemplate/t", &down, &args, &make, Some(&s), later).await;
    assert_eq!(s.phase, AnalysisPhase::Inconclusive, "{s:?}");
    assert_eq!(s.metrics[0].successful, 0);
    assert!(
        s.message
            .as_deref()
            .unwrap_or_default()
            .contains("provider errors in a row")
    );
}
