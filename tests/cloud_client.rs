//! The real cloud client over loopback HTTP against small local stubs: the exact requests
//! it sends for every action (and that their V3 signatures verify), retries, throttling,
//! deadlines, rate limits shared between clones, RRSA token exchange, and that secrets
//! never reach logs.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alicloud_rollouts::cloud::endpoint::Endpoint;
use alicloud_rollouts::cloud::model::*;
use alicloud_rollouts::cloud::provider::{CredentialsProvider, RrsaConfig};
use alicloud_rollouts::cloud::request::CONTENT_TYPE_FORM;
use alicloud_rollouts::cloud::{
    ClientConfig, CloudApi, CloudClient, CloudError, Credentials, ErrorKind, RrsaProvider,
    StaticProvider, sign,
};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const AK: &str = "test-ak";
const SK: &str = "test-secret-7f3a9c";

/// One request as the stub received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Raw (percent-encoded) path.
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The Authorization header verifies against [`SK`] (or the given secret).
    signature_ok: bool,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn action(&self) -> String {
        self.header("x-acs-action").unwrap_or_default().to_string()
    }
    fn form(&self) -> Vec<(String, String)> {
        assert_eq!(self.header("content-type"), Some(CONTENT_TYPE_FORM));
        serde_urlencoded::from_bytes(&self.body).unwrap()
    }
    fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Answer = (u16, Vec<(&'static str, String)>, String);
type Script = Arc<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

struct Stub {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stub {
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn verify(seen: &Seen, secret: &str) -> bool {
    let Some(auth) = seen.header("authorization") else {
        return false;
    };
    let Some(parsed) = sign::parse_authorization(auth) else {
        return false;
    };
    let expected = sign::authorization(
        &parsed.access_key_id,
        secret,
        &sign::CanonicalInput {
            method: &seen.method,
            canonical_uri: &seen.path,
            query: &seen.query,
            headers: &seen.headers,
            signed_headers: &parsed.signed_headers,
            hashed_payload: &sign::sha256_hex(&seen.body),
        },
    );
    expected == auth
}

/// A server on 127.0.0.1:0 that records each request and answers with `script(request,
/// index of this request among those with the same action)`; `delay` is waited first.
async fn stub(script: Script, delay: Duration) -> Stub {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let recorded = seen.clone();
    let handler = move |req: Request| {
        let recorded = recorded.clone();
        let script = script.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
            let query: Vec<(String, String)> = parts
                .uri
                .query()
                .map(|q| serde_urlencoded::from_str(q).unwrap())
                .unwrap_or_default();
            let headers = parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
                .collect();
            let mut s = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query,
                headers,
                body,
                signature_ok: false,
            };
            s.signature_ok = verify(&s, SK);
            let n = {
                let mut all = recorded.lock().unwrap();
                let n = all.iter().filter(|o| o.action() == s.action()).count();
                all.push(s.clone());
                n
            };
            tokio::time::sleep(delay).await;
            let (status, headers, body) = script(&s, n);
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                response
                    .headers_mut()
                    .insert(k, HeaderValue::from_str(&v).unwrap());
            }
            response.into_response()
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Stub { addr, seen, task }
}

fn ok(body: serde_json::Value) -> Answer {
    (
        200,
        vec![("x-acs-request-id", "req-ok".to_string())],
        body.to_string(),
    )
}

fn err(status: u16, code: &str) -> Answer {
    (
        status,
        vec![],
        serde_json::json!({"RequestId": "req-err", "HostId": "h", "Code": code, "Message": format!("{code} happened")})
            .to_string(),
    )
}

fn config(endpoint: &str) -> ClientConfig {
    ClientConfig {
        eas_endpoint: Some(endpoint.to_string()),
        esa_endpoint: Some(format!("http://{endpoint}")),
        call_timeout: Duration::from_secs(5),
        call_deadline: Duration::from_secs(10),
        max_retries: 3,
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        rate_limit_per_api: 0,
        ..ClientConfig::default()
    }
}

fn client(cfg: ClientConfig) -> CloudClient {
    CloudClient::new(cfg, Arc::new(StaticProvider(Credentials::new(AK, SK)))).unwrap()
}

fn canned(seen: &Seen, _n: usize) -> Answer {
    match seen.action().as_str() {
        "DescribeServiceRollout" => ok(serde_json::json!({
            "RequestId": "r1",
            "Rollout": {"Strategy": {"Partition": {"Partition": "2"}},
                        "Status": {"Phase": "Paused", "TotalReplicas": 8, "UpdatedReplicas": 6,
                                   "CurrentRevision": "svc-a-v1", "UpdateRevision": "svc-b-v2"}}})),
        "DescribeService" => ok(serde_json::json!({
            "RequestId": "r2", "ServiceName": "llm chat", "Status": "Running", "CurrentVersion": 2,
            "LatestVersion": 3, "TotalInstance": 8, "RunningInstance": 8,
            "ServiceConfig": "{\"containers\":[]}"})),
        "ListServiceVersions" => ok(serde_json::json!({
            "RequestId": "r3", "TotalCount": 2, "PageNumber": 1, "PageSize": 10,
            "Versions": [{"ImageId": 2, "BuildTime": "t2"}, {"ImageId": 1, "BuildTime": "t1"}]})),
        "CreateRoutineCodeDeployment" => ok(serde_json::json!({
            "RequestId": "r4", "Strategy": "percentage", "DeploymentId": "77",
            "CodeVersions": [{"CodeVersion": "2", "Percentage": 10}, {"CodeVersion": "1", "Percentage": 90}]})),
        "GetRoutine" => ok(serde_json::json!({
            "RequestId": "r5", "Envs": [{"Env": "production", "CodeDeploy": {"DeployId": "77", "Strategy": "percentage",
              "CodeVersions": [{"CodeVersion": "1", "Percentage": 100}]}}]})),
        "ListRoutineCodeVersions" => ok(serde_json::json!({
            "RequestId": "r6", "TotalCount": 1, "CodeVersions": [{"CodeVersion": "1", "Status": "init"}]})),
        "GetEdgeContainerAppStatus" => ok(serde_json::json!({
            "RequestId": "r7", "AppStatus": {"PublishStatus": "publishing", "PublishPercentage": 25,
              "ExpectPercentage": 50, "PublishingVersion": "ver-2", "BaseLineVersion": "ver-1"}})),
        "ListEdgeContainerAppVersions" => ok(serde_json::json!({
            "RequestId": "r8", "TotalCount": 1, "Versions": [{"VersionId": "ver-2", "Status": "created"}]})),
        _ => ok(serde_json::json!({"RequestId": "ack", "Message": "ok"})),
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn every_operation_goes_out_signed_and_shaped_as_documented() {
    let s = stub(Arc::new(canned), Duration::ZERO).await;
    let c = client(config(&s.endpoint()));
    let r = "cn-shanghai";
    let svc = "llm chat";
    let batch = ServiceRolloutRequest {
        batch: Some(BatchConfig {
            batch_size: Some("2".into()),
            interval: Some("60s".into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        c.create_service_rollout(r, svc, &batch)
            .await
            .unwrap()
            .request_id,
        "ack"
    );
    let partition = ServiceRolloutRequest {
        partition: Some(PartitionConfig {
            partition: "2".into(),
        }),
        paused: Some(true),
        ..Default::default()
    };
    c.update_service_rollout(r, svc, &partition).await.unwrap();
    let d = c.describe_service_rollout(r, svc).await.unwrap();
    let status = d.rollout.unwrap().status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Paused"));
    assert_eq!(status.updated_replicas, Some(6));
    c.delete_service_rollout(r, svc).await.unwrap();
    let service = c.describe_service(r, svc).await.unwrap();
    assert_eq!(
        (service.current_version, service.latest_version),
        (Some(2), Some(3))
    );
    let cfg = serde_json::json!({"containers": [{"image": "repo/llm:v3"}]});
    c.update_service(r, svc, &cfg, UpdateType::Merge)
        .await
        .unwrap();
    let versions = c
        .list_service_versions(r, svc, Some(1), Some(10))
        .await
        .unwrap();
    assert_eq!(versions.versions[0].image_id, Some(2));
    c.update_service_version(r, svc, 1).await.unwrap();

    let esa = "cn-hangzhou";
    let dep = c
        .create_routine_code_deployment(
            esa,
            &CreateRoutineCodeDeploymentRequest {
                name: "edge-auth".into(),
                env: "production".into(),
                strategy: "percentage".into(),
                code_versions: vec![
                    CodeVersionSplit {
                        code_version: "2".into(),
                        percentage: 10,
                    },
                    CodeVersionSplit {
                        code_version: "1".into(),
                        percentage: 90,
                    },
                ],
            },
        )
        .await
        .unwrap();
    assert_eq!(dep.deployment_id.as_deref(), Some("77"));
    let routine = c.get_routine(esa, "edge-auth").await.unwrap();
    assert_eq!(routine.envs[0].env, "production");
    let codes = c
        .list_routine_code_versions(
            esa,
            &ListRoutineCodeVersionsRequest {
                name: "edge-auth".into(),
                page_size: Some(20),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(codes.code_versions[0].code_version, "1");
    // The same client with a Secret's STS credentials.
    let sts = c.with_credentials(Credentials::new(AK, SK).with_security_token("sts-token-1"));
    sts.publish_edge_container_app_version(
        esa,
        &PublishEdgeContainerAppVersionRequest {
            app_id: "app-1".into(),
            version_id: "ver-2".into(),
            publish_env: "prod".into(),
            publish_type: Some("percentage".into()),
            percentage: Some(50),
            regions: Some(vec!["jiangsu".into()]),
            full_release: Some(false),
            start_time: None,
            remarks: Some("canary 50%".into()),
        },
    )
    .await
    .unwrap();
    let app = c
        .get_edge_container_app_status(esa, "app-1", "prod")
        .await
        .unwrap();
    assert_eq!(
        app.app_status.unwrap().publish_percentage,
        Some(25),
        "answer parsed"
    );
    c.rollback_edge_container_app_version(
        esa,
        &RollbackEdgeContainerAppVersionRequest {
            app_id: "app-1".into(),
            version_id: "ver-1".into(),
            percentage: Some(100),
            used_percent: Some(true),
            remarks: None,
        },
    )
    .await
    .unwrap();
    let apps = c
        .list_edge_container_app_versions(
            esa,
            &ListEdgeContainerAppVersionsRequest {
                app_id: "app-1".into(),
                page_number: Some(1),
                page_size: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(apps.versions[0].version_id, "ver-2");

    let seen = s.seen();
    let want: Vec<(&str, &str, &str)> = vec![
        (
            "CreateServiceRollout",
            "POST",
            "/api/v2/services/cn-shanghai/llm%20chat/rollout",
        ),
        (
            "UpdateServiceRollout",
            "PUT",
            "/api/v2/services/cn-shanghai/llm%20chat/rollout",
        ),
        (
            "DescribeServiceRollout",
            "GET",
            "/api/v2/services/cn-shanghai/llm%20chat/rollout",
        ),
        (
            "DeleteServiceRollout",
            "DELETE",
            "/api/v2/services/cn-shanghai/llm%20chat/rollout",
        ),
        (
            "DescribeService",
            "GET",
            "/api/v2/services/cn-shanghai/llm%20chat",
        ),
        (
            "UpdateService",
            "PUT",
            "/api/v2/services/cn-shanghai/llm%20chat",
        ),
        (
            "ListServiceVersions",
            "GET",
            "/api/v2/services/cn-shanghai/llm%20chat/versions",
        ),
        (
            "UpdateServiceVersion",
            "PUT",
            "/api/v2/services/cn-shanghai/llm%20chat/version",
        ),
        ("CreateRoutineCodeDeployment", "POST", "/"),
        ("GetRoutine", "POST", "/"),
        ("ListRoutineCodeVersions", "POST", "/"),
        ("PublishEdgeContainerAppVersion", "POST", "/"),
        ("GetEdgeContainerAppStatus", "POST", "/"),
        ("RollbackEdgeContainerAppVersion", "POST", "/"),
        ("ListEdgeContainerAppVersions", "GET", "/"),
    ];
    assert_eq!(seen.len(), want.len());
    let mut nonces = HashSet::new();
    for (s_, (action, method, path)) in seen.iter().zip(&want) {
        assert_eq!(
            (s_.action().as_str(), s_.method.as_str(), s_.path.as_str()),
            (*action, *method, *path)
        );
        assert!(s_.signature_ok, "{action}: signature does not verify");
        assert_eq!(s_.header("host"), Some(s.endpoint().as_str()), "{action}");
        let version = if path.starts_with("/api") {
            "2021-07-01"
        } else {
            "2024-09-10"
        };
        assert_eq!(s_.header("x-acs-version"), Some(version), "{action}");
        let date = s_.header("x-acs-date").unwrap();
        assert!(
            date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
            "{date}"
        );
        let drift = jiff::Timestamp::now()
            .duration_since(date.parse::<jiff::Timestamp>().unwrap())
            .abs();
        assert!(drift < jiff::SignedDuration::from_secs(60), "{drift:?}");
        assert!(nonces.insert(s_.header("x-acs-signature-nonce").unwrap().to_string()));
        assert_eq!(
            s_.header("x-acs-content-sha256").map(str::to_string),
            Some(sign::sha256_hex(&s_.body))
        );
        let auth = sign::parse_authorization(s_.header("authorization").unwrap()).unwrap();
        assert_eq!(auth.access_key_id, AK);
        for h in [
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
        ] {
            assert!(auth.signed_headers.iter().any(|n| n == h), "{action}: {h}");
        }
        if s_.body.is_empty() {
            assert_eq!(s_.header("content-type"), None, "{action}");
        } else {
            assert!(
                auth.signed_headers.iter().any(|n| n == "content-type"),
                "{action}"
            );
        }
        let sts = *action == "PublishEdgeContainerAppVersion";
        assert_eq!(
            s_.header("x-acs-security-token"),
            sts.then_some("sts-token-1"),
            "{action}"
        );
        assert_eq!(
            auth.signed_headers
                .iter()
                .any(|n| n == "x-acs-security-token"),
            sts
        );
    }
    // Bodies and parameters.
    assert_eq!(
        seen[0].json(),
        serde_json::json!({"Batch": {"BatchSize": "2", "Interval": "60s"}})
    );
    assert_eq!(
        seen[1].json(),
        serde_json::json!({"Partition": {"Partition": "2"}, "Paused": true})
    );
    assert!(seen[2].body.is_empty() && seen[3].body.is_empty() && seen[4].body.is_empty());
    assert_eq!(seen[5].query, pairs(&[("UpdateType", "merge")]));
    assert_eq!(seen[5].json(), cfg);
    assert_eq!(
        seen[6].query,
        pairs(&[("PageNumber", "1"), ("PageSize", "10")])
    );
    assert_eq!(seen[7].json(), serde_json::json!({"Version": 1}));
    assert_eq!(
        seen[8].form(),
        pairs(&[
            ("Name", "edge-auth"),
            ("Env", "production"),
            ("Strategy", "percentage"),
            (
                "CodeVersions",
                r#"[{"CodeVersion":"2","Percentage":10},{"CodeVersion":"1","Percentage":90}]"#
            ),
        ])
    );
    assert!(seen[8].query.is_empty());
    assert_eq!(seen[9].form(), pairs(&[("Name", "edge-auth")]));
    assert_eq!(
        seen[10].form(),
        pairs(&[("Name", "edge-auth"), ("PageSize", "20")])
    );
    let mut q = seen[11].query.clone();
    q.sort();
    assert_eq!(
        q,
        pairs(&[
            ("FullRelease", "False"),
            ("PublishType", "percentage"),
            ("Regions", r#"["jiangsu"]"#),
            ("VersionId", "ver-2"),
        ])
    );
    assert_eq!(
        seen[11].form(),
        pairs(&[
            ("AppId", "app-1"),
            ("PublishEnv", "prod"),
            ("Percentage", "50"),
            ("Remarks", "canary 50%"),
        ])
    );
    assert_eq!(
        seen[12].query,
        pairs(&[("AppId", "app-1"), ("PublishEnv", "prod")])
    );
    assert!(seen[12].body.is_empty());
    let mut q = seen[13].query.clone();
    q.sort();
    assert_eq!(
        q,
        pairs(&[
            ("Percentage", "100"),
            ("UsedPercent", "True"),
            ("VersionId", "ver-1")
        ])
    );
    assert_eq!(seen[13].form(), pairs(&[("AppId", "app-1")]));
    let mut q = seen[14].query.clone();
    q.sort();
    assert_eq!(
        q,
        pairs(&[("AppId", "app-1"), ("PageNumber", "1"), ("PageSize", "5")])
    );
    // Every call counted once as a success.
    assert_eq!(c.metrics().call_count("esa", "GetRoutine", "success"), 1);
    assert_eq!(
        c.metrics()
            .call_count("esa", "PublishEdgeContainerAppVersion", "success"),
        1,
        "clones count into the same metrics"
    );
    let text = c.metrics().encode();
    assert!(
        text.contains(r#"alicloud_rollouts_cloud_calls_total{product="eas",action="UpdateService",outcome="success"} 1"#),
        "{text}"
    );
}

fn fail_then_ok(failures: usize, failure: Answer) -> Script {
    Arc::new(move |_s, n| {
        if n < failures {
            failure.clone()
        } else {
            ok(serde_json::json!({"RequestId": "fine"}))
        }
    })
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let s = stub(
        fail_then_ok(2, err(503, "ServiceUnavailable")),
        Duration::ZERO,
    )
    .await;
    let c = client(config(&s.endpoint()));
    let answer = c
        .describe_service_rollout("cn-shanghai", "svc")
        .await
        .unwrap();
    assert_eq!(answer.request_id, "fine");
    assert_eq!(s.seen().len(), 3);
    let nonces: HashSet<_> = s
        .seen()
        .iter()
        .map(|x| x.header("x-acs-signature-nonce").unwrap().to_string())
        .collect();
    assert_eq!(nonces.len(), 3, "each attempt is signed afresh");
    assert_eq!(c.metrics().retry_count("eas", "DescribeServiceRollout"), 2);
    assert_eq!(
        c.metrics()
            .call_count("eas", "DescribeServiceRollout", "success"),
        1
    );

    // A proxy's HTML 502 is transient too.
    let html = (502, vec![], "<html>Bad Gateway</html>".to_string());
    let s = stub(fail_then_ok(1, html), Duration::ZERO).await;
    let c = client(config(&s.endpoint()));
    c.get_routine("cn-hangzhou", "r").await.unwrap();
    assert_eq!(s.seen().len(), 2);
}

#[tokio::test]
async fn retries_stop_after_max_retries_and_terminal_errors_are_not_retried() {
    let s = stub(
        fail_then_ok(usize::MAX, err(500, "InternalError")),
        Duration::ZERO,
    )
    .await;
    let c = client(config(&s.endpoint()));
    let e = c.describe_service("cn-shanghai", "svc").await.unwrap_err();
    assert_eq!(
        (e.code(), e.kind()),
        ("InternalError", ErrorKind::Transient)
    );
    assert_eq!(e.request_id(), Some("req-err"));
    assert_eq!(s.seen().len(), 4, "1 attempt + max_retries (3)");
    assert_eq!(
        c.metrics()
            .call_count("eas", "DescribeService", "InternalError"),
        1
    );

    let s = stub(
        fail_then_ok(usize::MAX, err(400, "InvalidParameter.Percentage")),
        Duration::ZERO,
    )
    .await;
    let c = client(config(&s.endpoint()));
    let e = c
        .get_edge_container_app_status("cn-hangzhou", "app-1", "prod")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Terminal);
    assert!(
        matches!(&e, CloudError::Api { status: 400, message, .. } if message == "InvalidParameter.Percentage happened")
    );
    assert_eq!(s.seen().len(), 1);

    let s = stub(
        fail_then_ok(usize::MAX, err(404, "InvalidService.NotFound")),
        Duration::ZERO,
    )
    .await;
    let c = client(config(&s.endpoint()));
    let e = c.describe_service("cn-shanghai", "gone").await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(s.seen().len(), 1);
}

#[tokio::test]
async fn throttling_waits_at_least_retry_after() {
    let mut throttle = err(400, "Throttling.User");
    throttle.1.push(("x-acs-retry-after", "400".to_string()));
    let s = stub(fail_then_ok(1, throttle), Duration::ZERO).await;
    let c = client(config(&s.endpoint()));
    let start = Instant::now();
    c.get_routine("cn-hangzhou", "edge-auth").await.unwrap();
    let took = start.elapsed();
    // Backoff alone would be 20-40 ms; the cloud asked for 400 ms.
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(s.seen().len(), 2);
    assert_eq!(c.metrics().throttled_count("esa", "GetRoutine"), 1);
}

#[tokio::test]
async fn the_overall_deadline_bounds_retries() {
    let s = stub(
        fail_then_ok(usize::MAX, err(503, "ServiceUnavailable")),
        Duration::ZERO,
    )
    .await;
    let c = client(ClientConfig {
        max_retries: 50,
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(100),
        call_deadline: Duration::from_millis(500),
        ..config(&s.endpoint())
    });
    let start = Instant::now();
    let e = c.describe_service("cn-shanghai", "svc").await.unwrap_err();
    assert_eq!(e.code(), "ServiceUnavailable");
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    let n = s.seen().len();
    assert!(
        (2..=5).contains(&n),
        "{n} attempts within 500 ms at >= 100 ms apart"
    );
}

#[tokio::test]
async fn slow_answers_time_out_per_attempt() {
    let s = stub(Arc::new(canned), Duration::from_secs(3)).await;
    let c = client(ClientConfig {
        call_timeout: Duration::from_millis(200),
        max_retries: 1,
        ..config(&s.endpoint())
    });
    let start = Instant::now();
    let e = c.describe_service("cn-shanghai", "svc").await.unwrap_err();
    assert!(
        matches!(e, CloudError::Timeout(d) if d == Duration::from_millis(200)),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert_eq!(s.seen().len(), 2, "timed out twice (1 retry)");
    assert_eq!(
        c.metrics().call_count("eas", "DescribeService", "Timeout"),
        1
    );
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = client(ClientConfig {
        max_retries: 1,
        ..config(&format!("127.0.0.1:{port}"))
    });
    let e = c.get_routine("cn-hangzhou", "x").await.unwrap_err();
    assert!(matches!(e, CloudError::Transport(_)), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn default_endpoints_reject_unknown_esa_regions_before_sending() {
    let c = client(ClientConfig::default());
    let e = c.get_routine("cn-shanghai", "x").await.unwrap_err();
    assert!(matches!(e, CloudError::InvalidRequest(_)), "{e:?}");
    assert_eq!(
        c.endpoint(alicloud_rollouts::cloud::Product::Eas, "cn-shanghai")
            .unwrap(),
        Endpoint::https("pai-eas.cn-shanghai.aliyuncs.com")
    );
}

#[tokio::test]
async fn rate_limit_is_per_api_and_shared_by_clones() {
    let s = stub(Arc::new(canned), Duration::ZERO).await;
    let c = client(ClientConfig {
        rate_limit_per_api: 5,
        rate_limit_burst: 1,
        ..config(&s.endpoint())
    });
    let other = c.with_credentials(Credentials::new(AK, SK));
    let start = Instant::now();
    for i in 0..4 {
        if i % 2 == 0 {
            c.get_routine("cn-hangzhou", "r").await.unwrap();
        } else {
            other.get_routine("cn-hangzhou", "r").await.unwrap();
        }
    }
    // One token at once, then one per 200 ms, whichever clone asks.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(550), "{took:?}");
    // Another API has its own bucket: no wait.
    let start = Instant::now();
    other
        .get_edge_container_app_status("cn-hangzhou", "app-1", "prod")
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_millis(150));
}

// ---------------------------------------------------------------- unknown outcomes

fn unknown_inner(e: &CloudError) -> &CloudError {
    match e {
        CloudError::OutcomeUnknown(inner) => inner,
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
}

/// A mutation that may have reached the cloud is sent once: a 5xx, a timeout or a garbled
/// success leave its outcome unknown, and the error says so. What surely did not reach the
/// cloud (throttling) is retried, and reads are retried after anything transient.
#[tokio::test]
async fn a_mutation_whose_outcome_is_unknown_is_sent_once() {
    let update = |c: &CloudClient| {
        let c = c.clone();
        async move {
            c.update_service(
                "cn-shanghai",
                "svc",
                &serde_json::json!({"containers": [{"image": "m:2"}]}),
                UpdateType::Merge,
            )
            .await
        }
    };
    // 5xx.
    let s = stub(
        fail_then_ok(usize::MAX, err(503, "ServiceUnavailable")),
        Duration::ZERO,
    )
    .await;
    let c = client(config(&s.endpoint()));
    let e = update(&c).await.unwrap_err();
    assert_eq!(unknown_inner(&e).code(), "ServiceUnavailable");
    assert!(e.outcome_unknown());
    assert!(e.to_string().contains("outcome unknown"), "{e}");
    assert_eq!(e.request_id(), Some("req-err"));
    assert_eq!(s.seen().len(), 1, "sent once");
    assert_eq!(c.metrics().retry_count("eas", "UpdateService"), 0);

    // A timeout.
    let s = stub(Arc::new(canned), Duration::from_secs(3)).await;
    let c = client(ClientConfig {
        call_timeout: Duration::from_millis(200),
        ..config(&s.endpoint())
    });
    let e = update(&c).await.unwrap_err();
    assert!(matches!(unknown_inner(&e), CloudError::Timeout(_)), "{e:?}");
    assert_eq!(s.seen().len(), 1, "sent once");

    // A success whose body cannot be read as the answer.
    let s = stub(
        Arc::new(|_s, _n| (200, vec![], "<html>gateway</html>".to_string())),
        Duration::ZERO,
    )
    .await;
    let c = client(config(&s.endpoint()));
    let e = c
        .publish_edge_container_app_version(
            "cn-hangzhou",
            &PublishEdgeContainerAppVersionRequest {
                app_id: "app-1".into(),
                version_id: "ver-2".into(),
                publish_env: "prod".into(),
                percentage: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(unknown_inner(&e), CloudError::Decode(_)), "{e:?}");
    assert_eq!(s.seen().len(), 1);

    // Throttled: the cloud did not act, so the mutation is sent again.
    let s = stub(fail_then_ok(1, err(400, "Throttling.User")), Duration::ZERO).await;
    let c = client(config(&s.endpoint()));
    update(&c).await.unwrap();
    assert_eq!(s.seen().len(), 2);
}

/// What a raw TCP server does once it has read a whole request.
#[derive(Clone, Copy, Debug)]
enum Raw {
    /// Close the connection without answering.
    Drop,
    /// Send the headers of a 200 with a body, then nothing.
    Stall,
    /// Send the headers of a 100-byte body, 17 bytes of it, and close.
    Truncate,
    /// A chunked body that never ends (until the client goes away).
    Endless,
    /// Declare a 1 GiB body.
    Declared,
}

struct RawStub {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    /// Body bytes written to the client (Endless).
    written: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_stub(act: Raw) -> RawStub {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicUsize::new(0));
    let (count, bytes) = (requests.clone(), written.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (count, bytes) = (count.clone(), bytes.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The headers, then the body by its Content-Length.
                let end = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + length {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                count.fetch_add(1, Ordering::SeqCst);
                match act {
                    Raw::Drop => {}
                    Raw::Stall => {
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n")
                            .await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Raw::Truncate => {
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"RequestId\":\"x\"")
                            .await;
                    }
                    Raw::Endless => {
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                            .await;
                        let piece = vec![b' '; 64 * 1024];
                        let frame = [
                            format!("{:x}\r\n", piece.len()).into_bytes(),
                            piece,
                            b"\r\n".to_vec(),
                        ]
                        .concat();
                        // At most 1 GiB: the client must stop reading long before.
                        for _ in 0..16 * 1024 {
                            if conn.write_all(&frame).await.is_err() {
                                break;
                            }
                            bytes.fetch_add(64 * 1024, Ordering::SeqCst);
                        }
                    }
                    Raw::Declared => {
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n{")
                            .await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    RawStub {
        endpoint,
        requests,
        written,
        task,
    }
}

fn raw_client(endpoint: &str) -> CloudClient {
    client(ClientConfig {
        call_timeout: Duration::from_millis(500),
        call_deadline: Duration::from_secs(5),
        max_retries: 2,
        max_response_bytes: 1 << 20,
        ..config(endpoint)
    })
}

/// A connection dropped after the request was sent, or cut in the middle of the answer:
/// a read is retried, a mutation is sent once and its outcome is unknown.
#[tokio::test]
async fn dropped_and_truncated_answers_retry_reads_and_never_resend_mutations() {
    for act in [Raw::Drop, Raw::Truncate] {
        let s = raw_stub(act).await;
        let c = raw_client(&s.endpoint);
        let e = c.get_routine("cn-hangzhou", "r").await.unwrap_err();
        assert!(matches!(e, CloudError::Transport(_)), "{act:?}: {e:?}");
        assert_eq!(
            s.requests.load(Ordering::SeqCst),
            3,
            "{act:?}: 1 + 2 retries"
        );

        let s = raw_stub(act).await;
        let c = raw_client(&s.endpoint);
        let e = c
            .delete_service_rollout("cn-shanghai", "svc")
            .await
            .unwrap_err();
        assert!(
            matches!(unknown_inner(&e), CloudError::Transport(_)),
            "{act:?}: {e:?}"
        );
        assert_eq!(s.requests.load(Ordering::SeqCst), 1, "{act:?}: sent once");
    }
}

/// Headers, then a stall: every attempt ends at its timeout, the whole call within its
/// deadline; a mutation is not sent again.
#[tokio::test]
async fn a_body_that_stalls_after_the_headers_times_out() {
    let s = raw_stub(Raw::Stall).await;
    let c = raw_client(&s.endpoint);
    let start = Instant::now();
    let e = c.describe_service("cn-shanghai", "svc").await.unwrap_err();
    assert!(matches!(e, CloudError::Timeout(_)), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.requests.load(Ordering::SeqCst), 3);

    let s = raw_stub(Raw::Stall).await;
    let c = raw_client(&s.endpoint);
    let start = Instant::now();
    let e = c
        .update_service_rollout(
            "cn-shanghai",
            "svc",
            &ServiceRolloutRequest {
                paused: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(unknown_inner(&e), CloudError::Timeout(_)), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.requests.load(Ordering::SeqCst), 1);
}

/// An answer larger than the cap fails with an error naming the cap, and reading stops
/// there: a declared length is refused before reading, an endless body soon after the cap.
#[tokio::test]
async fn an_enormous_answer_is_refused_at_the_cap_with_bounded_reading() {
    let s = raw_stub(Raw::Endless).await;
    let c = client(ClientConfig {
        max_retries: 0,
        max_response_bytes: 1 << 20,
        ..config(&s.endpoint)
    });
    let e = c.describe_service("cn-shanghai", "svc").await.unwrap_err();
    assert!(
        matches!(e, CloudError::ResponseTooLarge(n) if n == 1 << 20),
        "{e:?}"
    );
    assert!(e.to_string().contains("--cloud-max-response-bytes"), "{e}");
    assert_eq!(e.code(), "ResponseTooLarge");
    // The client stopped reading: what the server got out is the cap plus what the
    // sockets buffer, far from the 1 GiB it had to send.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = s.written.load(Ordering::SeqCst);
    assert!(written < 64 << 20, "{written} bytes were written");

    let s = raw_stub(Raw::Declared).await;
    let c = client(ClientConfig {
        max_retries: 0,
        max_response_bytes: 1 << 20,
        ..config(&s.endpoint)
    });
    let start = Instant::now();
    let e = c.get_routine("cn-hangzhou", "r").await.unwrap_err();
    assert!(matches!(e, CloudError::ResponseTooLarge(_)), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// `x-acs-retry-after` is honoured up to a cap: a day in the header is a minute.
#[tokio::test]
async fn retry_after_is_capped() {
    let mut throttle = err(400, "Throttling.User");
    throttle
        .1
        .push(("x-acs-retry-after", "86400000".to_string()));
    let s = stub(fail_then_ok(usize::MAX, throttle), Duration::ZERO).await;
    let c = client(config(&s.endpoint()));
    let start = Instant::now();
    let e = c.get_routine("cn-hangzhou", "edge-auth").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(
        e.retry_after(),
        Some(alicloud_rollouts::cloud::response::MAX_RETRY_AFTER)
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// A mass reconcile queues on the rate limiter: the wait is not part of a call's
/// deadline, so every call succeeds instead of failing as a timeout.
#[tokio::test]
async fn waits_on_the_rate_limiter_do_not_count_against_the_deadline() {
    let s = stub(Arc::new(canned), Duration::ZERO).await;
    let c = client(ClientConfig {
        rate_limit_per_api: 10,
        rate_limit_burst: 1,
        call_deadline: Duration::from_millis(250),
        ..config(&s.endpoint())
    });
    // Ten calls at once at 10 per second: the last one waits about 900 ms for its token,
    // far past the 250 ms deadline, and is still sent and answered.
    let calls = (0..10).map(|_| c.get_routine("cn-hangzhou", "r"));
    let start = Instant::now();
    let results = futures::future::join_all(calls).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(start.elapsed() >= Duration::from_millis(800));
    assert_eq!(s.seen().len(), 10);
}

// ---------------------------------------------------------------- RRSA

#[derive(Clone)]
struct TestClock(Arc<Mutex<jiff::Timestamp>>);

impl TestClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().unwrap()
    }
    fn advance(&self, minutes: i64) {
        let mut t = self.0.lock().unwrap();
        *t = t
            .checked_add(jiff::SignedDuration::from_mins(minutes))
            .unwrap();
    }
}

#[tokio::test]
async fn rrsa_exchanges_the_token_caches_and_refreshes_early() {
    let clock = TestClock(Arc::new(Mutex::new(
        "2026-05-08T10:00:00Z".parse().unwrap(),
    )));
    let issued = Arc::new(AtomicUsize::new(0));
    let sts_clock = clock.clone();
    let counter = issued.clone();
    let sts = stub(
        Arc::new(move |_s, _n| {
            let i = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let exp = sts_clock
                .now()
                .checked_add(jiff::SignedDuration::from_hours(1))
                .unwrap();
            ok(serde_json::json!({
                "RequestId": "sts",
                "Credentials": {"AccessKeyId": format!("STS.id{i}"), "AccessKeySecret": SK,
                                "SecurityToken": format!("sec-token-{i}"),
                                "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}}))
        }),
        Duration::ZERO,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "oidc-token-1\n").unwrap();
    let provider_clock = clock.clone();
    let provider = RrsaProvider::new(
        RrsaConfig {
            role_arn: "acs:ram::123:role/rollouts".into(),
            oidc_provider_arn: "acs:ram::123:oidc-provider/ack".into(),
            oidc_token_file: token_file.clone(),
            role_session_name: "alicloud-rollouts".into(),
            sts_region: None,
            vpc_endpoint: false,
            sts_endpoint: None,
            duration: Duration::from_secs(3600),
        },
        Endpoint::parse(&sts.endpoint()).unwrap(),
        reqwest::Client::new(),
        Duration::from_secs(5),
    )
    .with_clock(move || provider_clock.now());

    let first = provider.credentials().await.unwrap();
    assert_eq!(first.access_key_id, "STS.id1");
    assert_eq!(first.security_token.as_deref(), Some("sec-token-1"));
    let seen = sts.seen();
    assert_eq!(seen.len(), 1);
    let mut query = seen[0].query.clone();
    query.sort();
    assert_eq!(
        query,
        pairs(&[
            ("Action", "AssumeRoleWithOIDC"),
            ("Format", "JSON"),
            ("Timestamp", "2026-05-08T10:00:00Z"),
            ("Version", "2015-04-01"),
        ])
    );
    let form: BTreeMap<String, String> = seen[0].form().into_iter().collect();
    assert_eq!(form["RoleArn"], "acs:ram::123:role/rollouts");
    assert_eq!(form["OIDCProviderArn"], "acs:ram::123:oidc-provider/ack");
    assert_eq!(form["OIDCToken"], "oidc-token-1");
    assert_eq!(form["RoleSessionName"], "alicloud-rollouts");
    assert_eq!(form["DurationSeconds"], "3600");
    assert_eq!(seen[0].header("authorization"), None, "no signature");

    // Cached until 15 minutes before expiry.
    clock.advance(44);
    assert_eq!(provider.credentials().await.unwrap(), first);
    assert_eq!(issued.load(Ordering::SeqCst), 1);

    // The kubelet rotated the token; the refresh reads the file again. The call that finds
    // the credentials due for refresh still gets the valid ones; the refresh runs aside.
    std::fs::write(&token_file, "oidc-token-2").unwrap();
    clock.advance(2);
    assert_eq!(provider.credentials().await.unwrap(), first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let second = loop {
        let c = provider.credentials().await.unwrap();
        if c != first || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(second.access_key_id, "STS.id2");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let form: BTreeMap<String, String> = sts.seen()[1].form().into_iter().collect();
    assert_eq!(form["OIDCToken"], "oidc-token-2");

    // The client signs with the STS credentials and sends the token.
    let api = stub(Arc::new(canned), Duration::ZERO).await;
    let c = CloudClient::new(config(&api.endpoint()), Arc::new(provider)).unwrap();
    c.get_routine("cn-hangzhou", "r").await.unwrap();
    let sent = &api.seen()[0];
    assert!(sent.signature_ok);
    assert_eq!(sent.header("x-acs-security-token"), Some("sec-token-2"));
    assert!(
        sent.header("authorization")
            .unwrap()
            .contains("Credential=STS.id2,")
    );
}

fn rrsa_config(token_file: std::path::PathBuf) -> RrsaConfig {
    RrsaConfig {
        role_arn: "acs:ram::123:role/rollouts".into(),
        oidc_provider_arn: "acs:ram::123:oidc-provider/ack".into(),
        oidc_token_file: token_file,
        role_session_name: "alicloud-rollouts".into(),
        sts_region: None,
        vpc_endpoint: false,
        sts_endpoint: None,
        duration: Duration::from_secs(3600),
    }
}

/// An STS that answers after `delay`, each
/// time with new credentials valid for an hour of `clock`.
async fn slow_sts(clock: TestClock, delay: Duration) -> (Stub, Arc<AtomicUsize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    let sts = stub(
        Arc::new(move |_s, _n| {
            let i = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let exp = clock
                .now()
                .checked_add(jiff::SignedDuration::from_hours(1))
                .unwrap();
            ok(serde_json::json!({
                "RequestId": "sts",
                "Credentials": {"AccessKeyId": format!("STS.id{i}"), "AccessKeySecret": SK,
                                "SecurityToken": format!("sec-token-{i}"),
                                "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}}))
        }),
        delay,
    )
    .await;
    (sts, issued)
}

/// Many callers, one exchange; while the credentials are still valid a slow refresh holds
/// nobody up; and a caller with nothing valid waits at most the timeout.
#[tokio::test]
async fn rrsa_refresh_is_single_flight_bounded_and_never_blocks_valid_credentials() {
    let clock = TestClock(Arc::new(Mutex::new(
        "2026-05-08T10:00:00Z".parse().unwrap(),
    )));
    let (sts, issued) = slow_sts(clock.clone(), Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "oidc-token").unwrap();
    let provider_clock = clock.clone();
    let provider = Arc::new(
        RrsaProvider::new(
            rrsa_config(token_file.clone()),
            Endpoint::parse(&sts.endpoint()).unwrap(),
            reqwest::Client::new(),
            Duration::from_secs(2),
        )
        .with_clock(move || provider_clock.now()),
    );

    // 20 callers at once with nothing cached: one exchange, every one gets its answer.
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.credentials().await })
        })
        .collect();
    for c in callers {
        assert_eq!(c.await.unwrap().unwrap().access_key_id, "STS.id1");
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1);

    // Due for refresh (inside the 15-minute margin), with an STS taking 300 ms: 20 callers
    // get the still-valid credentials at once, and one exchange runs.
    clock.advance(50);
    let start = Instant::now();
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.credentials().await })
        })
        .collect();
    for c in callers {
        assert_eq!(c.await.unwrap().unwrap().access_key_id, "STS.id1");
    }
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "callers waited on the refresh: {:?}",
        start.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "one refresh for 20 callers"
    );
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.id2"
    );

    // An STS that stalls: with nothing valid, a caller waits at most the timeout.
    let (stalled, _) = slow_sts(clock.clone(), Duration::from_secs(30)).await;
    let provider_clock = clock.clone();
    let provider = RrsaProvider::new(
        rrsa_config(token_file),
        Endpoint::parse(&stalled.endpoint()).unwrap(),
        reqwest::Client::new(),
        Duration::from_millis(300),
    )
    .with_clock(move || provider_clock.now());
    let start = Instant::now();
    let e = provider.credentials().await.unwrap_err();
    assert!(matches!(e, CloudError::Timeout(_)), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn rrsa_errors_are_reported_without_secrets() {
    let sts = stub(
        Arc::new(|_s, _n| err(400, "AuthenticationFail.OIDCToken.Invalid")),
        Duration::ZERO,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "very-private-oidc-token").unwrap();
    let cfg = RrsaConfig {
        role_arn: "acs:ram::1:role/r".into(),
        oidc_provider_arn: "acs:ram::1:oidc-provider/p".into(),
        oidc_token_file: token_file.clone(),
        role_session_name: "s".into(),
        sts_region: None,
        vpc_endpoint: false,
        sts_endpoint: None,
        duration: Duration::from_secs(3600),
    };
    let provider = RrsaProvider::new(
        cfg.clone(),
        Endpoint::parse(&sts.endpoint()).unwrap(),
        reqwest::Client::new(),
        Duration::from_secs(5),
    );
    let e = provider.credentials().await.unwrap_err();
    assert_eq!(e.code(), "AuthenticationFail.OIDCToken.Invalid");
    assert!(!format!("{e} {e:?} {provider:?}").contains("very-private"));

    let missing = RrsaProvider::new(
        RrsaConfig {
            oidc_token_file: dir.path().join("absent"),
            ..cfg
        },
        Endpoint::parse(&sts.endpoint()).unwrap(),
        reqwest::Client::new(),
        Duration::from_secs(5),
    );
    let e = missing.credentials().await.unwrap_err();
    assert!(
        matches!(e, CloudError::Credentials(ref m) if m.contains("absent")),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- secrets in logs

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_logs_or_debug_output() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = stub(fail_then_ok(1, err(500, "InternalError")), Duration::ZERO).await;
    let secret = "top-secret-key-material";
    let token = "sts-security-token-material";
    let c = CloudClient::new(
        config(&s.endpoint()),
        Arc::new(StaticProvider(
            Credentials::new("LTAIvisible", secret).with_security_token(token),
        )),
    )
    .unwrap();
    c.describe_service("cn-shanghai", "svc").await.unwrap();
    let failing = stub(
        fail_then_ok(usize::MAX, err(400, "InvalidParameter")),
        Duration::ZERO,
    )
    .await;
    let c2 = CloudClient::new(
        config(&failing.endpoint()),
        Arc::new(StaticProvider(
            Credentials::new("LTAIvisible", secret).with_security_token(token),
        )),
    )
    .unwrap();
    let e = c2.describe_service("cn-shanghai", "svc").await.unwrap_err();
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("DescribeService"),
        "logs were captured: {text}"
    );
    assert!(text.contains("retrying"), "{text}");
    let debug = format!("{c:?} {c2:?} {e:?} {e}");
    for shown in [&text, &debug] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains(token), "{shown}");
    }
}
