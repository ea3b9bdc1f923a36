//! The simulator over real HTTP on 127.0.0.1:0, driven by a tiny V3-signing client.

use std::sync::Arc;
use std::time::Duration;

use alicloud_rollouts::cloud::sign;
use alicloud_rollouts::simulator::{self, ManualClock, SimConfig, SimulatorHandle};
use serde_json::{Value, json};

const EAS: &str = "2021-07-01";
const ESA: &str = "2024-09-10";
const APP: &str = "app-8806886757837900";
const V0: &str = "ver-8796263716165100";
const V1: &str = "ver-8796263716165101";

/// What a test changes in an otherwise correctly signed request.
#[derive(Default, Clone)]
struct Tamper {
    secret: Option<String>,
    access_key_id: Option<String>,
    nonce: Option<String>,
    date: Option<String>,
    /// Body actually sent (the signature covers the original one).
    body_sent: Option<Vec<u8>>,
    unsigned: bool,
    token: Option<String>,
    /// Send spaces in the URL query as `+` (as the Python SDK does; it signs `%20`).
    plus_for_space: bool,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["Code"].as_str().unwrap_or("")
    }

    /// Every error carries the cloud's four fields and the request id header.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        for field in ["RequestId", "HostId", "Code", "Message"] {
            assert!(
                self.body[field].is_string(),
                "{field} missing in {}",
                self.body
            );
        }
        self.assert_request_id();
    }

    fn assert_ok(&self) {
        assert_eq!(self.status, 200, "body: {}", self.body);
        self.assert_request_id();
    }

    fn assert_request_id(&self) {
        let rid = self.body["RequestId"].as_str().expect("RequestId");
        assert_eq!(rid, rid.to_ascii_uppercase());
        assert_eq!(rid.len(), 36);
        assert_eq!(
            self.headers
                .get("x-acs-request-id")
                .and_then(|v| v.to_str().ok()),
            Some(rid)
        );
    }
}

struct Client {
    http: reqwest::Client,
    sim: SimulatorHandle,
    ak: String,
    secret: String,
    token: Option<String>,
}

impl Client {
    fn new(sim: SimulatorHandle) -> Self {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            sim,
            ak: "testid".into(),
            secret: "testsecret".into(),
            token: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        action: &str,
        version: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
        t: Tamper,
    ) -> Answer {
        let host = self.sim.endpoint();
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let hash = sign::sha256_hex(&body);
        let date = t
            .date
            .clone()
            .unwrap_or_else(|| self.sim.now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        let nonce = t
            .nonce
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let mut headers = vec![
            ("host".to_string(), host.clone()),
            ("x-acs-action".to_string(), action.to_string()),
            ("x-acs-version".to_string(), version.to_string()),
            ("x-acs-date".to_string(), date),
            ("x-acs-signature-nonce".to_string(), nonce),
            ("x-acs-content-sha256".to_string(), hash.clone()),
        ];
        if let Some(ct) = content_type {
            headers.push(("content-type".to_string(), ct.to_string()));
        }
        if let Some(tok) = t.token.clone().or_else(|| self.token.clone()) {
            headers.push(("x-acs-security-token".to_string(), tok));
        }
        let names = sign::default_signed_names(&headers);
        let input = sign::CanonicalInput {
            method,
            canonical_uri: path,
            query: &query,
            headers: &headers,
            signed_headers: &names,
            hashed_payload: &hash,
        };
        let auth = sign::authorization(
            t.access_key_id.as_deref().unwrap_or(&self.ak),
            t.secret.as_deref().unwrap_or(&self.secret),
            &input,
        );
        if !t.unsigned {
            headers.push(("authorization".to_string(), auth));
        }
        let qs = query
            .iter()
            .map(|(k, v)| format!("{}={}", sign::percent_encode(k), sign::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let qs = if t.plus_for_space {
            qs.replace("%20", "+")
        } else {
            qs
        };
        let url = if qs.is_empty() {
            format!("http://{host}{path}")
        } else {
            format!("http://{host}{path}?{qs}")
        };
        let mut rb = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        for (k, v) in &headers {
            rb = rb.header(k, v);
        }
        let resp = rb
            .body(t.body_sent.clone().unwrap_or(body))
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("JSON answer");
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn rpc_t(&self, action: &str, params: &[(&str, &str)], t: Tamper) -> Answer {
        let body = serde_urlencoded::to_string(params).unwrap().into_bytes();
        self.send(
            "POST",
            "/",
            &[],
            action,
            ESA,
            body,
            Some("application/x-www-form-urlencoded"),
            t,
        )
        .await
    }

    async fn rpc(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        self.rpc_t(action, params, Tamper::default()).await
    }

    async fn eas(&self, method: &str, path: &str, action: &str, body: Option<Value>) -> Answer {
        let (bytes, ct) = match body {
            Some(v) => (v.to_string().into_bytes(), Some("application/json")),
            None => (Vec::new(), None),
        };
        self.send(method, path, &[], action, EAS, bytes, ct, Tamper::default())
            .await
    }

    async fn rollout(&self) -> Value {
        let a = self
            .eas(
                "GET",
                "/api/v2/services/cn-shanghai/llm-chat/rollout",
                "DescribeServiceRollout",
                None,
            )
            .await;
        a.assert_ok();
        a.body["Rollout"].clone()
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.sim.base_url());
        let mut rb = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        resp.json().await.unwrap()
    }

    fn advance(&self, secs: u64) {
        assert!(self.sim.sim().clock.advance(Duration::from_secs(secs)));
    }
}

async fn demo_manual() -> Client {
    let clock = ManualClock::starting_now();
    let sim = simulator::start(SimConfig {
        demo: true,
        clock: Some(Arc::new(clock)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    Client::new(sim)
}

#[tokio::test]
async fn good_signature_is_accepted_and_answers_carry_request_ids() {
    let c = demo_manual().await;
    let a = c.rpc("GetRoutine", &[("Name", "edge-auth")]).await;
    a.assert_ok();
    let prod = a.body["Envs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Env"] == "production")
        .unwrap()
        .clone();
    assert_eq!(
        prod["CodeDeploy"]["CodeVersions"][0]["CodeVersion"],
        "1710000000000000001"
    );
    // Query parameters are covered by the signature too (GET with query, ROA).
    let a = c
        .send(
            "GET",
            "/api/v2/services/cn-shanghai/llm-chat/versions",
            &[("PageNumber", "1"), ("PageSize", "10")],
            "ListServiceVersions",
            EAS,
            Vec::new(),
            None,
            Tamper::default(),
        )
        .await;
    a.assert_ok();
    assert_eq!(a.body["TotalCount"], 1);
    c.sim.shutdown().await;
}

#[tokio::test]
async fn bad_signatures_are_rejected_in_the_cloud_error_shape() {
    let c = demo_manual().await;
    let p = [("Name", "edge-auth")];
    let cases: Vec<(Tamper, u16, &str)> = vec![
        (
            Tamper {
                unsigned: true,
                ..Tamper::default()
            },
            400,
            "MissingAuthorization",
        ),
        (
            Tamper {
                secret: Some("wrong".into()),
                ..Tamper::default()
            },
            400,
            "SignatureDoesNotMatch",
        ),
        (
            Tamper {
                body_sent: Some(b"Name=other".to_vec()),
                ..Tamper::default()
            },
            400,
            "SignatureDoesNotMatch",
        ),
        (
            Tamper {
                date: Some("2020-01-01T00:00:00Z".into()),
                ..Tamper::default()
            },
            400,
            "InvalidTimeStamp.Expired",
        ),
        (
            Tamper {
                date: Some("yesterday".into()),
                ..Tamper::default()
            },
            400,
            "InvalidTimeStamp.Format",
        ),
        (
            Tamper {
                access_key_id: Some("nobody".into()),
                ..Tamper::default()
            },
            404,
            "InvalidAccessKeyId.NotFound",
        ),
    ];
    for (t, status, code) in cases {
        c.rpc_t("GetRoutine", &p, t)
            .await
            .assert_error(status, code);
    }
    let once = Tamper {
        nonce: Some("fixed-nonce-1".into()),
        ..Tamper::default()
    };
    c.rpc_t("GetRoutine", &p, once.clone()).await.assert_ok();
    c.rpc_t("GetRoutine", &p, once)
        .await
        .assert_error(400, "SignatureNonceUsed");
    // A date 16 minutes ahead of the simulator clock is also refused.
    let ahead = c.sim.now() + jiff::SignedDuration::from_secs(16 * 60);
    let t = Tamper {
        date: Some(ahead.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ..Tamper::default()
    };
    c.rpc_t("GetRoutine", &p, t)
        .await
        .assert_error(400, "InvalidTimeStamp.Expired");
    c.sim.shutdown().await;
}

#[tokio::test]
async fn malformed_input_and_unknown_actions_are_client_errors() {
    let c = demo_manual().await;
    let path = "/api/v2/services/cn-shanghai/llm-chat/rollout";
    for garbage in [
        &b"{"[..],
        b"[1,2]",
        b"\xff\xfe",
        b"null",
        b"{\"Partition\":7}",
    ] {
        let a = c
            .send(
                "POST",
                path,
                &[],
                "CreateServiceRollout",
                EAS,
                garbage.to_vec(),
                Some("application/json"),
                Tamper::default(),
            )
            .await;
        a.assert_error(400, "InvalidParameter");
    }
    let a = c
        .send(
            "POST",
            "/",
            &[],
            "GetRoutine",
            ESA,
            b"{not json".to_vec(),
            Some("application/json"),
            Tamper::default(),
        )
        .await;
    a.assert_error(400, "InvalidParameter");
    c.rpc("NoSuchAction", &[])
        .await
        .assert_error(404, "InvalidAction.NotFound");
    c.eas("PATCH", "/api/v2/services/cn-shanghai/llm-chat", "X", None)
        .await
        .assert_error(404, "InvalidAction.NotFound");
    c.eas("GET", "/nope/%ff%00", "X", None)
        .await
        .assert_error(404, "InvalidAction.NotFound");
    let a = c
        .send(
            "POST",
            "/",
            &[],
            "GetRoutine",
            "1999-01-01",
            Vec::new(),
            None,
            Tamper::default(),
        )
        .await;
    a.assert_error(400, "InvalidVersion");
    // Random bytes as a form body never crash the server.
    for seed in 0u8..20 {
        let body: Vec<u8> = (0..64)
            .map(|i: u8| seed.wrapping_mul(31).wrapping_add(i.wrapping_mul(7)))
            .collect();
        let a = c
            .send(
                "POST",
                "/",
                &[],
                "CreateRoutineCodeDeployment",
                ESA,
                body,
                Some("application/x-www-form-urlencoded"),
                Tamper::default(),
            )
            .await;
        assert!((400..500).contains(&a.status), "{}", a.body);
    }
    c.rpc("GetRoutine", &[("Name", "edge-auth")])
        .await
        .assert_ok();
    c.sim.shutdown().await;
}

#[tokio::test]
async fn parameters_are_validated_like_the_cloud() {
    let c = demo_manual().await;
    let cv = |v: &str| v.to_string();
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "CreateRoutineCodeDeployment",
            vec![
                ("Env", cv("production")),
                ("Strategy", cv("percentage")),
                ("CodeVersions", cv("[]")),
            ],
            400,
            "MissingParameter",
        ),
        (
            "CreateRoutineCodeDeployment",
            vec![
                ("Name", cv("edge-auth")),
                ("Env", cv("prod")),
                ("Strategy", cv("percentage")),
                (
                    "CodeVersions",
                    cv(r#"[{"CodeVersion":"1710000000000000001","Percentage":100}]"#),
                ),
            ],
            400,
            "InvalidParameter",
        ),
        (
            "CreateRoutineCodeDeployment",
            vec![
                ("Name", cv("edge-auth")),
                ("Env", cv("production")),
                ("Strategy", cv("percentage")),
                (
                    "CodeVersions",
                    cv(
                        r#"[{"CodeVersion":"1710000000000000001","Percentage":80},{"CodeVersion":"1710000000000000002","Percentage":10}]"#,
                    ),
                ),
            ],
            400,
            "InvalidParameter",
        ),
        (
            "CreateRoutineCodeDeployment",
            vec![
                ("Name", cv("edge-auth")),
                ("Env", cv("production")),
                ("Strategy", cv("percentage")),
                (
                    "CodeVersions",
                    cv(r#"[{"CodeVersion":"999","Percentage":100}]"#),
                ),
            ],
            400,
            "InvalidParameter",
        ),
        (
            "CreateRoutineCodeDeployment",
            vec![
                ("Name", cv("nope")),
                ("Env", cv("production")),
                ("Strategy", cv("percentage")),
                (
                    "CodeVersions",
                    cv(r#"[{"CodeVersion":"1","Percentage":100}]"#),
                ),
            ],
            400,
            "RoutineNotExist",
        ),
        (
            "PublishEdgeContainerAppVersion",
            vec![
                ("AppId", cv(APP)),
                ("VersionId", cv(V1)),
                ("PublishEnv", cv("production")),
            ],
            400,
            "InvalidParameter.PublishEnv",
        ),
        (
            "PublishEdgeContainerAppVersion",
            vec![
                ("AppId", cv(APP)),
                ("VersionId", cv(V1)),
                ("PublishEnv", cv("prod")),
                ("Percentage", cv("0")),
            ],
            400,
            "InvalidParameter.Percentage",
        ),
        (
            "PublishEdgeContainerAppVersion",
            vec![
                ("AppId", cv(APP)),
                ("VersionId", cv(V1)),
                ("PublishEnv", cv("prod")),
                ("Percentage", cv("101")),
            ],
            400,
            "InvalidParameter.Percentage",
        ),
        (
            "PublishEdgeContainerAppVersion",
            vec![
                ("AppId", cv(APP)),
                ("VersionId", cv("v1")),
                ("PublishEnv", cv("prod")),
            ],
            400,
            "InvalidParameter.VersionId",
        ),
        (
            "PublishEdgeContainerAppVersion",
            vec![
                ("AppId", cv("my-app")),
                ("VersionId", cv(V1)),
                ("PublishEnv", cv("prod")),
            ],
            400,
            "InvalidParameter.appid",
        ),
        (
            "PublishEdgeContainerAppVersion",
            vec![
                ("AppId", cv("app-1")),
                ("VersionId", cv(V1)),
                ("PublishEnv", cv("prod")),
            ],
            404,
            "InvalidApp.NotFound",
        ),
        (
            "PublishEdgeContainerAppVersion",
            vec![
                ("AppId", cv(APP)),
                ("VersionId", cv(V1)),
                ("PublishEnv", cv("prod")),
                ("StartTime", cv("tomorrow")),
            ],
            400,
            "InvalidParameter.StartTime",
        ),
        (
            "GetEdgeContainerAppStatus",
            vec![("AppId", cv(APP))],
            400,
            "MissingParameter",
        ),
        (
            "ListRoutineCodeVersions",
            vec![("Name", cv("edge-auth")), ("PageSize", cv("21"))],
            400,
            "InvalidParameter",
        ),
    ];
    for (action, params, status, code) in cases {
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = c.rpc(action, &p).await;
        assert_eq!(
            (a.status, a.code()),
            (status, code),
            "{action} {params:?}: {}",
            a.body
        );
        a.assert_error(status, code);
    }
    let eas_cases: Vec<(&str, &str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/api/v2/services/cn-shanghai/llm-chat/rollout",
            "CreateServiceRollout",
            json!({"Partition":{"Partition":"1"},"Batch":{"BatchSize":"1"}}),
            400,
            "InvalidParameter",
        ),
        (
            "POST",
            "/api/v2/services/cn-shanghai/llm-chat/rollout",
            "CreateServiceRollout",
            json!({"Batch":{"BatchSize":"1","Interval":"5 min"}}),
            400,
            "InvalidParameter",
        ),
        (
            "POST",
            "/api/v2/services/cn-shanghai/llm-chat/rollout",
            "CreateServiceRollout",
            json!({"Partition":{"Partition":"150%"}}),
            400,
            "InvalidParameter",
        ),
        (
            "PUT",
            "/api/v2/services/cn-shanghai/llm-chat/rollout",
            "UpdateServiceRollout",
            json!({"Paused":true}),
            404,
            "InvalidRollout.NotFound",
        ),
        (
            "POST",
            "/api/v2/services/cn-shanghai/nope/rollout",
            "CreateServiceRollout",
            json!({}),
            404,
            "InvalidService.NotFound",
        ),
        (
            "POST",
            "/api/v2/services/cn-beijing/llm-chat/rollout",
            "CreateServiceRollout",
            json!({}),
            404,
            "InvalidService.NotFound",
        ),
        (
            "POST",
            "/api/v2/services/cn-shanghai/llm-embed/rollout",
            "CreateServiceRollout",
            json!({}),
            400,
            "InvalidRollout.NotEnabled",
        ),
        (
            "PUT",
            "/api/v2/services/cn-shanghai/llm-chat/version",
            "UpdateServiceVersion",
            json!({"Version": 9}),
            400,
            "InvalidParameter",
        ),
    ];
    for (m, path, action, body, status, code) in eas_cases {
        c.eas(m, path, action, Some(body))
            .await
            .assert_error(status, code);
    }
    c.eas(
        "GET",
        "/api/v2/services/cn-shanghai/llm-chat/rollout",
        "DescribeServiceRollout",
        None,
    )
    .await
    .assert_error(404, "InvalidRollout.NotFound");
    // Creating, then updating with nothing, is refused; creating twice too.
    let path = "/api/v2/services/cn-shanghai/llm-chat/rollout";
    c.eas(
        "POST",
        path,
        "CreateServiceRollout",
        Some(json!({"Partition":{"Partition":"8"}})),
    )
    .await
    .assert_ok();
    c.eas("PUT", path, "UpdateServiceRollout", Some(json!({})))
        .await
        .assert_error(400, "InvalidParameter");
    c.eas("POST", path, "CreateServiceRollout", Some(json!({})))
        .await
        .assert_error(400, "InvalidRollout.AlreadyExists");
    c.sim.shutdown().await;
}

#[tokio::test]
async fn batch_rollout_advances_one_batch_per_interval() {
    let c = demo_manual().await;
    let svc = "/api/v2/services/cn-shanghai/llm-chat";
    let path = "/api/v2/services/cn-shanghai/llm-chat/rollout";
    let a = c
        .eas(
            "POST",
            path,
            "CreateServiceRollout",
            Some(json!({"Batch":{"BatchSize":"25%","Interval":"5m"}})),
        )
        .await;
    a.assert_ok();
    assert_eq!(a.body["Message"], "Rollout created successfully");
    let r = c.rollout().await;
    assert_eq!(r["Status"]["Phase"], "Completed", "nothing to roll out yet");
    assert_eq!(r["Strategy"]["Batch"]["Interval"], "5m");

    c.eas(
        "PUT",
        svc,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v2"}]})),
    )
    .await
    .assert_ok();
    let r = c.rollout().await;
    assert_eq!(r["Status"]["Phase"], "Pending");
    assert_eq!(r["Status"]["UpdatedReplicas"], 0);
    assert_eq!(r["Status"]["TotalReplicas"], 8);
    let (cur, upd) = (
        r["Status"]["CurrentRevision"].as_str().unwrap().to_string(),
        r["Status"]["UpdateRevision"].as_str().unwrap().to_string(),
    );
    assert!(
        cur.starts_with("llm-chat-") && cur.ends_with("-v1"),
        "{cur}"
    );
    assert!(
        upd.starts_with("llm-chat-") && upd.ends_with("-v2"),
        "{upd}"
    );

    c.advance(1);
    let r = c.rollout().await;
    assert_eq!(r["Status"]["Phase"], "Running");
    assert_eq!(r["Status"]["UpdatedReplicas"], 2);
    let expected_next = (c.sim.now() + jiff::SignedDuration::from_secs(300))
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string();
    assert_eq!(r["Status"]["NextBatchStartTime"], expected_next.as_str());

    c.advance(299);
    assert_eq!(c.rollout().await["Status"]["UpdatedReplicas"], 2);
    c.advance(1);
    assert_eq!(c.rollout().await["Status"]["UpdatedReplicas"], 4);
    c.advance(600);
    let r = c.rollout().await;
    assert_eq!(r["Status"]["UpdatedReplicas"], 8);
    assert_eq!(r["Status"]["Phase"], "Completed");
    assert_eq!(r["Status"]["CurrentRevision"], upd.as_str());
    let d = c.eas("GET", svc, "DescribeService", None).await;
    d.assert_ok();
    assert_eq!(d.body["CurrentVersion"], 2);
    assert_eq!(d.body["LatestVersion"], 2);
    let cfg: Value = serde_json::from_str(d.body["ServiceConfig"].as_str().unwrap()).unwrap();
    assert_eq!(cfg["containers"][0]["image"], "repo/llm-chat:v2");
    assert_eq!(cfg["metadata"]["instance"], 8, "merge keeps the rest");
    c.sim.shutdown().await;
}

#[tokio::test]
async fn partition_converges_rolls_back_when_raised_and_pause_freezes() {
    let c = demo_manual().await;
    let svc = "/api/v2/services/cn-shanghai/llm-chat";
    let path = "/api/v2/services/cn-shanghai/llm-chat/rollout";
    c.eas(
        "POST",
        path,
        "CreateServiceRollout",
        Some(json!({"Partition":{"Partition":"75%"}})),
    )
    .await
    .assert_ok();
    c.eas(
        "PUT",
        svc,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v2"}]})),
    )
    .await
    .assert_ok();
    c.advance(30);
    let r = c.rollout().await;
    assert_eq!(r["Status"]["UpdatedReplicas"], 2, "75% of 8 kept old");
    assert_eq!(r["Strategy"]["Partition"]["Partition"], "75%");

    let a = c
        .eas(
            "PUT",
            path,
            "UpdateServiceRollout",
            Some(json!({"Partition":{"Partition":"2"}})),
        )
        .await;
    a.assert_ok();
    c.advance(30);
    assert_eq!(c.rollout().await["Status"]["UpdatedReplicas"], 6);

    // Raising the partition moves replicas back to the old revision.
    c.eas(
        "PUT",
        path,
        "UpdateServiceRollout",
        Some(json!({"Partition":{"Partition":"7"}})),
    )
    .await
    .assert_ok();
    c.advance(30);
    assert_eq!(c.rollout().await["Status"]["UpdatedReplicas"], 1);

    // Paused: nothing moves, the strategy is kept.
    let a = c
        .eas(
            "PUT",
            path,
            "UpdateServiceRollout",
            Some(json!({"Paused": true, "Partition":{"Partition":"0"}})),
        )
        .await;
    a.assert_ok();
    assert_eq!(a.body["Message"], "Rollout paused successfully");
    c.advance(300);
    let r = c.rollout().await;
    assert_eq!(r["Status"]["Phase"], "Paused");
    assert_eq!(r["Status"]["UpdatedReplicas"], 1);
    assert_eq!(r["Strategy"]["Partition"]["Partition"], "0");
    let a = c
        .eas(
            "PUT",
            path,
            "UpdateServiceRollout",
            Some(json!({"Paused": false})),
        )
        .await;
    assert_eq!(a.body["Message"], "Rollout resumed successfully");
    c.advance(30);
    let r = c.rollout().await;
    assert_eq!(r["Status"]["Phase"], "Completed");
    assert_eq!(r["Status"]["UpdatedReplicas"], 8);

    // Roll back to version 1 by version, then delete the rollout: replaced at once.
    c.eas(
        "PUT",
        &format!("{svc}/version"),
        "UpdateServiceVersion",
        Some(json!({"Version": 1})),
    )
    .await
    .assert_ok();
    c.eas("DELETE", path, "DeleteServiceRollout", None)
        .await
        .assert_ok();
    c.advance(5);
    let d = c.eas("GET", svc, "DescribeService", None).await;
    assert_eq!(d.body["CurrentVersion"], 1);
    assert_eq!(d.body["Status"], "Running");
    c.eas("GET", path, "DescribeServiceRollout", None)
        .await
        .assert_error(404, "InvalidRollout.NotFound");
    let v = c
        .eas(
            "GET",
            &format!("{svc}/versions"),
            "ListServiceVersions",
            None,
        )
        .await;
    assert_eq!(v.body["TotalCount"], 2);
    c.sim.shutdown().await;
}

#[tokio::test]
async fn routine_deployment_replaces_the_split() {
    let c = demo_manual().await;
    let deploy = |cv: &'static str| {
        vec![
            ("Name", "edge-auth"),
            ("Env", "production"),
            ("Strategy", "percentage"),
            ("CodeVersions", cv),
        ]
    };
    let a = c
        .rpc(
            "CreateRoutineCodeDeployment",
            &deploy(r#"[{"CodeVersion":"1710000000000000001","Percentage":90},{"CodeVersion":"1710000000000000002","Percentage":10}]"#),
        )
        .await;
    a.assert_ok();
    let first: u64 = a.body["DeploymentId"].as_str().unwrap().parse().unwrap();
    assert_eq!(a.body["Strategy"], "percentage");
    assert_eq!(a.body["CodeVersions"].as_array().unwrap().len(), 2);
    let a = c
        .rpc(
            "CreateRoutineCodeDeployment",
            &deploy(r#"[{"CodeVersion":"1710000000000000002","Percentage":100}]"#),
        )
        .await;
    let second: u64 = a.body["DeploymentId"].as_str().unwrap().parse().unwrap();
    assert!(second > first);
    let g = c.rpc("GetRoutine", &[("Name", "edge-auth")]).await;
    let envs = g.body["Envs"].as_array().unwrap();
    let prod = envs.iter().find(|e| e["Env"] == "production").unwrap();
    assert_eq!(prod["CodeDeploy"]["DeployId"], second.to_string().as_str());
    assert_eq!(
        prod["CodeDeploy"]["CodeVersions"],
        json!([{"CodeVersion":"1710000000000000002","Percentage":100,
                "CreateTime": prod["CodeDeploy"]["CodeVersions"][0]["CreateTime"],
                "Description": prod["CodeDeploy"]["CodeVersions"][0]["Description"]}])
    );
    let staging = envs.iter().find(|e| e["Env"] == "staging").unwrap();
    assert_eq!(
        staging["CodeDeploy"]["CodeVersions"][0]["CodeVersion"], "1710000000000000001",
        "other env untouched"
    );
    let l = c
        .rpc(
            "ListRoutineCodeVersions",
            &[
                ("Name", "edge-auth"),
                ("PageNumber", "2"),
                ("PageSize", "1"),
            ],
        )
        .await;
    l.assert_ok();
    assert_eq!(l.body["TotalCount"], 2);
    assert_eq!(
        l.body["CodeVersions"][0]["CodeVersion"],
        "1710000000000000001"
    );
    assert_eq!(l.body["CodeVersions"][0]["DeployEnv"], "staging");
    assert_eq!(g.body["HasAssets"], false);
    c.sim.shutdown().await;
}

async fn app_status(c: &Client, env: &str) -> Value {
    let a = c
        .rpc(
            "GetEdgeContainerAppStatus",
            &[("AppId", APP), ("PublishEnv", env)],
        )
        .await;
    a.assert_ok();
    a.body["AppStatus"].clone()
}

#[tokio::test]
async fn app_publish_and_rollback_move_through_their_statuses() {
    let c = demo_manual().await;
    // Query-string parameters (as the SDK sends VersionId) and form parameters mix.
    let body =
        serde_urlencoded::to_string([("AppId", APP), ("PublishEnv", "prod"), ("Percentage", "50")])
            .unwrap();
    let a = c
        .send(
            "POST",
            "/",
            &[("VersionId", V1)],
            "PublishEdgeContainerAppVersion",
            ESA,
            body.into_bytes(),
            Some("application/x-www-form-urlencoded"),
            Tamper::default(),
        )
        .await;
    a.assert_ok();
    let s = app_status(&c, "prod").await;
    assert_eq!(s["PublishStatus"], "publishing");
    assert_eq!(s["ExpectPercentage"], 50);
    assert_eq!(s["BaseLineVersion"], V0);
    c.advance(1);
    assert_eq!(app_status(&c, "prod").await["PublishPercentage"], 25);
    c.advance(10);
    let s = app_status(&c, "prod").await;
    assert_eq!(s["PublishStatus"], "published");
    assert_eq!(s["DeployStatus"], "deployed");
    assert_eq!(s["PublishPercentage"], 50);
    assert_eq!(s["DeployedVersion"], V1);
    assert_eq!(s["BaseLineVersion"], V0);
    assert_eq!(app_status(&c, "staging").await["DeployedVersion"], V0);

    // VersionId names the version to return to; staging already serves it.
    c.rpc(
        "RollbackEdgeContainerAppVersion",
        &[("AppId", APP), ("VersionId", V0)],
    )
    .await
    .assert_ok();
    assert_eq!(app_status(&c, "prod").await["PublishStatus"], "rollbacking");
    assert_eq!(
        app_status(&c, "staging").await["PublishStatus"],
        "published"
    );
    c.advance(5);
    let s = app_status(&c, "prod").await;
    assert_eq!(s["PublishStatus"], "rollbacked");
    assert_eq!(s["DeployedVersion"], V0);

    // A StartTime in the future keeps it publishing until then.
    let start = (c.sim.now() + jiff::SignedDuration::from_secs(3600))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    c.rpc(
        "PublishEdgeContainerAppVersion",
        &[
            ("AppId", APP),
            ("VersionId", V1),
            ("PublishEnv", "prod"),
            ("StartTime", &start),
        ],
    )
    .await
    .assert_ok();
    c.advance(1800);
    let s = app_status(&c, "prod").await;
    assert_eq!(s["PublishStatus"], "publishing");
    assert_eq!(s["PublishPercentage"], 0);
    c.advance(1900);
    let s = app_status(&c, "prod").await;
    assert_eq!(s["PublishStatus"], "published");
    assert_eq!(
        s["BaseLineVersion"], V1,
        "a 100% publish becomes the baseline"
    );

    // Region publish with FullRelease.
    c.rpc(
        "PublishEdgeContainerAppVersion",
        &[
            ("AppId", APP),
            ("VersionId", V0),
            ("PublishEnv", "staging"),
            ("PublishType", "region"),
            ("Regions", r#"["jiangsu","zhejiang"]"#),
            ("FullRelease", "True"),
            ("Percentage", "10"),
        ],
    )
    .await
    .assert_ok();
    c.advance(10);
    let s = app_status(&c, "staging").await;
    assert_eq!(s["Regions"]["Region"], json!(["jiangsu", "zhejiang"]));
    assert_eq!(s["PublishPercentage"], 100);
    assert_eq!(s["FullRelease"], true);

    let l = c
        .send(
            "GET",
            "/",
            &[("AppId", APP), ("PageNumber", "1"), ("PageSize", "10")],
            "ListEdgeContainerAppVersions",
            ESA,
            Vec::new(),
            None,
            Tamper::default(),
        )
        .await;
    l.assert_ok();
    assert_eq!(l.body["Versions"].as_array().unwrap().len(), 2);
    assert_eq!(l.body["TotalCount"], 2);

    // A space sent as `+` in the URL (signed as %20) verifies and decodes to a space.
    let l = c
        .send(
            "GET",
            "/",
            &[("AppId", APP), ("SearchKey", "no such*version")],
            "ListEdgeContainerAppVersions",
            ESA,
            Vec::new(),
            None,
            Tamper {
                plus_for_space: true,
                ..Tamper::default()
            },
        )
        .await;
    l.assert_ok();
    assert_eq!(l.body["TotalCount"], 0);
    c.sim.shutdown().await;
}

#[tokio::test]
async fn faults_are_injected_and_calls_counted() {
    let c = demo_manual().await;
    let p = [("Name", "edge-auth")];
    let id = c
        .admin(
            "POST",
            "/_sim/faults",
            Some(json!({"action":"GetRoutine","kind":"error","status":503,"count":1})),
        )
        .await;
    assert!(id["id"].is_u64());
    c.rpc("GetRoutine", &p)
        .await
        .assert_error(503, "ServiceUnavailable");
    c.rpc("GetRoutine", &p).await.assert_ok();

    c.admin(
        "POST",
        "/_sim/faults",
        Some(json!({"kind":"throttle","retryAfterSeconds":2,"count":1})),
    )
    .await;
    let a = c.rpc("GetRoutine", &p).await;
    a.assert_error(400, "Throttling.User");
    assert_eq!(
        a.headers
            .get("x-acs-retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2000"),
        "milliseconds, as the SDK reads it"
    );

    c.admin(
        "POST",
        "/_sim/faults",
        Some(json!({"action":"GetRoutine","kind":"latency","latencyMs":300,"count":1})),
    )
    .await;
    let t = std::time::Instant::now();
    c.rpc("GetRoutine", &p).await.assert_ok();
    assert!(t.elapsed() >= Duration::from_millis(300));

    c.admin(
        "POST",
        "/_sim/faults",
        Some(json!({"action":"GetRoutine","kind":"drop","count":1})),
    )
    .await;
    let url = format!("{}/", c.sim.base_url());
    let err = c
        .http
        .post(url)
        .header("x-acs-action", "GetRoutine")
        .header("x-acs-version", ESA)
        .send()
        .await;
    assert!(err.is_err(), "the connection is closed without an answer");
    let faults = c.admin("GET", "/_sim/faults", None).await;
    assert_eq!(faults.as_array().unwrap().len(), 4);
    assert!(faults.as_array().unwrap().iter().all(|f| f["fired"] == 1));
    c.admin("DELETE", "/_sim/faults", None).await;

    let bad = c
        .admin(
            "POST",
            "/_sim/faults",
            Some(json!({"kind":"error","rate":2.0})),
        )
        .await;
    assert_eq!(bad["Code"], "InvalidParameter");

    let calls = c.admin("GET", "/_sim/calls", None).await;
    assert_eq!(calls["GetRoutine"], 5);
    c.admin("DELETE", "/_sim/calls", None).await;
    assert_eq!(c.admin("GET", "/_sim/calls", None).await, json!({}));
    c.sim.shutdown().await;
}

/// The faults that damage an answer, on the wire: headers then a stall, a body cut
/// short of its declared length, fields of the wrong type, and an enormous body.
#[tokio::test]
async fn damaging_faults_on_the_wire() {
    let c = demo_manual().await;
    let send = || {
        c.http
            .post(format!("{}/", c.sim.base_url()))
            .header("x-acs-action", "GetRoutine")
            .header("x-acs-version", ESA)
            .send()
    };
    let add = |fault: Value| c.admin("POST", "/_sim/faults", Some(fault));

    add(json!({"action": "GetRoutine", "kind": "stall", "latencyMs": 1500, "count": 1})).await;
    let start = std::time::Instant::now();
    let r = send().await.expect("the headers arrive");
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "then the connection closes without the body"
    );
    assert!(start.elapsed() >= Duration::from_millis(1400));

    add(json!({"action": "GetRoutine", "kind": "truncate", "count": 1})).await;
    let r = send().await.expect("the headers arrive");
    let declared = r.content_length().expect("a length is declared");
    assert!(declared > 10);
    assert!(r.bytes().await.is_err(), "fewer bytes than declared");

    add(json!({"action": "GetRoutine", "kind": "wrongType", "count": 1})).await;
    let r = send().await.unwrap();
    let body: Value = r.json().await.expect("still JSON");
    assert!(body["RequestId"].is_number(), "{body}");
    assert!(body["Code"].is_number(), "{body}");

    add(json!({"action": "GetRoutine", "kind": "huge", "bytes": 3 << 20, "count": 1})).await;
    let mut r = send().await.unwrap();
    assert_eq!(r.content_length(), None, "streamed without a length");
    let mut total = 0usize;
    while let Some(chunk) = r.chunk().await.unwrap() {
        total += chunk.len();
    }
    assert!((3 << 20..(3 << 20) + 65536).contains(&total), "{total}");

    let faults = c.admin("GET", "/_sim/faults", None).await;
    assert!(
        faults.as_array().unwrap().iter().all(|f| f["fired"] == 1),
        "{faults}"
    );
    let log = c.admin("GET", "/_sim/calllog", None).await;
    let fired: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["faults"].clone())
        .collect();
    assert_eq!(fired, vec![json!([1]), json!([2]), json!([3]), json!([4])]);
    c.sim.shutdown().await;
}

#[tokio::test]
async fn per_action_rate_limit_throttles() {
    let sim = simulator::start(SimConfig {
        demo: true,
        rate_limit: 5,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = Client::new(sim);
    // 40 concurrent calls: even on a loaded machine they span far fewer than 8 windows of 5.
    let started = std::time::Instant::now();
    let answers =
        futures::future::join_all((0..40).map(|_| c.rpc("GetRoutine", &[("Name", "edge-auth")])))
            .await;
    let mut throttled = 0;
    for a in &answers {
        if a.status == 400 && a.code() == "Throttling.User" {
            a.assert_error(400, "Throttling.User");
            throttled += 1;
        } else {
            a.assert_ok();
        }
    }
    let windows = started.elapsed().as_secs() + 1;
    assert!(
        throttled as u64 >= 40 - 5 * (windows + 1),
        "throttled {throttled} of 40 over {windows} one-second windows"
    );
    assert!(throttled > 0);
    // Another action has its own budget.
    c.rpc("ListRoutineCodeVersions", &[("Name", "edge-auth")])
        .await
        .assert_ok();
    c.sim.shutdown().await;
}

#[tokio::test]
async fn sts_credentials_from_oidc_are_accepted_until_they_expire() {
    let mut c = demo_manual().await;
    let url = format!(
        "{}/?Action=AssumeRoleWithOIDC&Version=2015-04-01&Format=JSON",
        c.sim.base_url()
    );
    let resp = c
        .http
        .post(&url)
        .form(&[
            ("RoleArn", "acs:ram::123:role/operator"),
            ("OIDCProviderArn", "acs:ram::123:oidc-provider/ack-rrsa"),
            ("OIDCToken", "eyJhbGciOi.eyJzdWIiOi.c2ln"),
            ("RoleSessionName", "alicloud-rollouts"),
            ("DurationSeconds", "900"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let cred = &body["Credentials"];
    for f in [
        "AccessKeyId",
        "AccessKeySecret",
        "SecurityToken",
        "Expiration",
    ] {
        assert!(cred[f].is_string(), "{f}: {body}");
    }
    c.ak = cred["AccessKeyId"].as_str().unwrap().to_string();
    c.secret = cred["AccessKeySecret"].as_str().unwrap().to_string();
    let token = cred["SecurityToken"].as_str().unwrap().to_string();

    c.rpc("GetRoutine", &[("Name", "edge-auth")])
        .await
        .assert_error(400, "InvalidSecurityToken.MismatchWithAccessKey");
    c.token = Some(token);
    c.rpc("GetRoutine", &[("Name", "edge-auth")])
        .await
        .assert_ok();
    c.advance(901);
    c.rpc("GetRoutine", &[("Name", "edge-auth")])
        .await
        .assert_error(400, "InvalidSecurityToken.Expired");

    // Missing parameters are reported; no signature is needed.
    let resp = c
        .http
        .post(&url)
        .form(&[("RoleArn", "acs:ram::1:role/x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["Code"], "MissingParameter");
    c.sim.shutdown().await;
}

#[tokio::test]
async fn time_scale_speeds_up_a_real_clock_rollout() {
    let sim = simulator::start(SimConfig {
        demo: true,
        time_scale: 600.0, // "5m" batches every 0.5 s
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = Client::new(sim);
    let path = "/api/v2/services/cn-shanghai/llm-chat/rollout";
    c.eas(
        "POST",
        path,
        "CreateServiceRollout",
        Some(json!({"Batch":{"BatchSize":"4","Interval":"5m"}})),
    )
    .await
    .assert_ok();
    c.eas(
        "PUT",
        "/api/v2/services/cn-shanghai/llm-chat",
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v2"}]})),
    )
    .await
    .assert_ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen_half = false;
    loop {
        let r = c.rollout().await;
        if r["Status"]["UpdatedReplicas"] == 4 {
            seen_half = true;
        }
        if r["Status"]["Phase"] == "Completed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not completed: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_half, "went through the half-way batch");
    c.sim.shutdown().await;
}

#[tokio::test]
async fn non_http_garbage_on_the_socket_does_not_stop_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = demo_manual().await;
    let garbage: [&[u8]; 4] = [
        b"\x00\x01\x02\xff\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /_sim/seed HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{{{{{",
    ];
    for g in garbage {
        let mut s = tokio::net::TcpStream::connect(c.sim.addr()).await.unwrap();
        s.write_all(g).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(500), s.read_to_end(&mut buf)).await;
    }
    c.rpc("GetRoutine", &[("Name", "edge-auth")])
        .await
        .assert_ok();
    c.sim.shutdown().await;
}

#[tokio::test]
async fn admin_api_resets_seeds_and_moves_a_manual_clock() {
    let c = demo_manual().await;
    let ok = c.admin("POST", "/_sim/reset", None).await;
    assert_eq!(ok["ok"], true);
    c.rpc("GetRoutine", &[("Name", "edge-auth")])
        .await
        .assert_error(400, "RoutineNotExist");

    let url = format!("{}/_sim/seed", c.sim.base_url());
    let yaml = "routines:\n  - name: r1\n    codeVersions: ['11', '12']\n    deployed: '12'\n\
                services:\n  - name: s1\n    region: cn-beijing\n    replicas: 3\n";
    let resp = c.http.post(&url).body(yaml).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let g = c.rpc("GetRoutine", &[("Name", "r1")]).await;
    g.assert_ok();
    assert_eq!(
        g.body["Envs"][0]["CodeDeploy"]["CodeVersions"][0]["CodeVersion"],
        "12"
    );
    let d = c
        .eas(
            "GET",
            "/api/v2/services/cn-beijing/s1",
            "DescribeService",
            None,
        )
        .await;
    d.assert_ok();
    assert_eq!(d.body["TotalInstance"], 3);
    let bad = c
        .http
        .post(&url)
        .body("services: [{name: x}]")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let before = c.admin("GET", "/_sim/time", None).await["now"]
        .as_str()
        .unwrap()
        .to_string();
    let after = c
        .admin("POST", "/_sim/time", Some(json!({"advanceSeconds": 3600})))
        .await;
    let (b, a): (jiff::Timestamp, jiff::Timestamp) = (
        before.parse().unwrap(),
        after["now"].as_str().unwrap().parse().unwrap(),
    );
    assert_eq!(a.duration_since(b), jiff::SignedDuration::from_secs(3600));

    let state = c.admin("GET", "/_sim/state", None).await;
    assert!(state["services"]["cn-beijing/s1"].is_object(), "{state}");
    assert!(state["routines"]["r1"].is_object());
    assert_eq!(state["apps"], json!({}));
    c.sim.shutdown().await;
}

/// The binary: flags, a seed file, the log line naming the port, and SIGTERM.
#[tokio::test]
async fn binary_serves_a_seed_file_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        "apps:\n  - id: app-42\n    versions: [ver-1, ver-2]\n    deployed: ver-1\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_alicloud-rollouts"))
        .args(["simulator", "--listen", "127.0.0.1:0", "--time-scale", "10"])
        .arg("--seed")
        .arg(&seed)
        .args(["--access-key", "ak1:sk1"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listen=").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        }
        panic!("the simulator exited without saying where it listens");
    })
    .await
    .expect("listening line within 20 s");
    let http = reqwest::Client::new();
    let state: Value = http
        .get(format!("http://{addr}/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(state["apps"]["app-42"].is_object(), "{state}");
    assert_eq!(
        state["services"],
        json!({}),
        "no demo objects without --demo"
    );
    // The default key is replaced by --access-key.
    let resp = http
        .post(format!("http://{addr}/"))
        .header("x-acs-action", "GetRoutine")
        .header("x-acs-version", ESA)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stops within 10 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

// ---------------------------------------------------------------- eventual consistency

async fn lagged_manual(read_lag: u64, pause_lag: u64) -> Client {
    let sim = simulator::start(SimConfig {
        demo: true,
        clock: Some(Arc::new(ManualClock::starting_now())),
        read_lag: Duration::from_secs(read_lag),
        pause_lag: Duration::from_secs(pause_lag),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    Client::new(sim)
}

const SVC: &str = "/api/v2/services/cn-shanghai/llm-chat";
const ROLLOUT: &str = "/api/v2/services/cn-shanghai/llm-chat/rollout";

async fn describe_service(c: &Client) -> Value {
    let a = c.eas("GET", SVC, "DescribeService", None).await;
    a.assert_ok();
    a.body
}

/// The production split GetRoutine reports, as (version, percentage) pairs.
async fn routine_split(c: &Client) -> Vec<(String, i64)> {
    let g = c.rpc("GetRoutine", &[("Name", "edge-auth")]).await;
    g.assert_ok();
    let envs = g.body["Envs"].as_array().unwrap();
    let prod = envs.iter().find(|e| e["Env"] == "production").unwrap();
    prod["CodeDeploy"]["CodeVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["CodeVersion"].as_str().unwrap().to_string(),
                v["Percentage"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn deploy_routine(c: &Client, split: &str) {
    c.rpc(
        "CreateRoutineCodeDeployment",
        &[
            ("Name", "edge-auth"),
            ("Env", "production"),
            ("Strategy", "percentage"),
            ("CodeVersions", split),
        ],
    )
    .await
    .assert_ok();
}

/// With a read lag, DescribeServiceRollout and DescribeService show the service as it was
/// `lag` seconds ago: its rollout, revision, versions and replica counts, time-driven
/// progress included; the state appears exactly when the lag has passed.
#[tokio::test]
async fn read_lag_holds_back_eas_mutations_until_the_lag_has_passed() {
    let c = lagged_manual(10, 0).await;
    c.eas(
        "POST",
        ROLLOUT,
        "CreateServiceRollout",
        Some(json!({"Batch":{"BatchSize":"25%","Interval":"5m"}})),
    )
    .await
    .assert_ok();
    // The replica has not seen the rollout yet: as before it, there is none.
    c.eas("GET", ROLLOUT, "DescribeServiceRollout", None)
        .await
        .assert_error(404, "InvalidRollout.NotFound");
    // The primary has: a second create is refused.
    c.eas("POST", ROLLOUT, "CreateServiceRollout", Some(json!({})))
        .await
        .assert_error(400, "InvalidRollout.AlreadyExists");
    c.advance(9);
    c.eas("GET", ROLLOUT, "DescribeServiceRollout", None)
        .await
        .assert_error(404, "InvalidRollout.NotFound");
    c.advance(1);
    let before = c.rollout().await;
    assert_eq!(before["Status"]["Phase"], "Completed");
    let v1 = before["Status"]["UpdateRevision"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(before["Status"]["CurrentRevision"], v1.as_str());

    c.eas(
        "PUT",
        SVC,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v2"}]})),
    )
    .await
    .assert_ok();
    // For 10 s: the previous revision, phase, versions and replica counts.
    for wait in [0, 5, 4] {
        c.advance(wait);
        let r = c.rollout().await;
        assert_eq!(r["Status"]["Phase"], "Completed", "after {wait}: {r}");
        assert_eq!(r["Status"]["UpdateRevision"], v1.as_str());
        assert_eq!(r["Status"]["UpdatedReplicas"], 8);
        let d = describe_service(&c).await;
        assert_eq!(d["CurrentVersion"], 1);
        assert_eq!(d["LatestVersion"], 1);
        assert_eq!(d["Status"], "Running");
        assert!(d["Image"].as_str().unwrap().ends_with(":v1"), "{d}");
    }
    // Meanwhile the primary (the admin view) moved on: the first batch is out.
    let state = c.admin("GET", "/_sim/state", None).await;
    assert_eq!(state["services"]["cn-shanghai/llm-chat"]["updated"], 2);

    // 10 s after the update: the update itself, as of its acceptance.
    c.advance(1);
    let r = c.rollout().await;
    assert_eq!(r["Status"]["Phase"], "Pending");
    assert_eq!(r["Status"]["UpdatedReplicas"], 0);
    assert_eq!(r["Status"]["CurrentRevision"], v1.as_str());
    let v2 = r["Status"]["UpdateRevision"].as_str().unwrap().to_string();
    assert!(v2.ends_with("-v2"), "{v2}");
    let d = describe_service(&c).await;
    assert_eq!(d["CurrentVersion"], 2);
    assert_eq!(d["Status"], "Updating");
    assert!(d["Image"].as_str().unwrap().ends_with(":v2"), "{d}");
    // Progress shows with the same delay: the first batch (1 s after the update) at 11 s.
    c.advance(1);
    let r = c.rollout().await;
    assert_eq!(r["Status"]["Phase"], "Running");
    assert_eq!(r["Status"]["UpdatedReplicas"], 2);
    c.sim.shutdown().await;
}

/// Objects lag one by one, and a second mutation inside the window does not hold the
/// first back: each appears `lag` after it was accepted, in order (a replica `lag` behind).
#[tokio::test]
async fn read_lag_is_per_object_and_each_mutation_appears_in_turn() {
    let c = lagged_manual(10, 0).await;
    let original = vec![("1710000000000000001".to_string(), 100)];
    let first = vec![
        ("1710000000000000001".to_string(), 90),
        ("1710000000000000002".to_string(), 10),
    ];
    let second = vec![
        ("1710000000000000001".to_string(), 50),
        ("1710000000000000002".to_string(), 50),
    ];
    deploy_routine(
        &c,
        r#"[{"CodeVersion":"1710000000000000001","Percentage":90},{"CodeVersion":"1710000000000000002","Percentage":10}]"#,
    )
    .await;
    c.advance(4);
    deploy_routine(
        &c,
        r#"[{"CodeVersion":"1710000000000000001","Percentage":50},{"CodeVersion":"1710000000000000002","Percentage":50}]"#,
    )
    .await;
    // Another object mutated later lags by itself.
    c.advance(1);
    c.eas(
        "PUT",
        SVC,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v2"}]})),
    )
    .await
    .assert_ok();

    let mut seen = Vec::new();
    for t in 5..=15 {
        seen.push((
            t,
            routine_split(&c).await,
            describe_service(&c).await["CurrentVersion"]
                .as_i64()
                .unwrap(),
        ));
        c.advance(1);
    }
    for (t, split, version) in seen {
        let want = match t {
            ..10 => &original,
            10..14 => &first,
            _ => &second,
        };
        assert_eq!(&split, want, "GetRoutine at {t} s");
        assert_eq!(
            version,
            if t < 15 { 1 } else { 2 },
            "DescribeService at {t} s"
        );
    }
    // Reads that are not lagged answer from the primary at once.
    let l = c
        .eas(
            "GET",
            &format!("{SVC}/versions"),
            "ListServiceVersions",
            None,
        )
        .await;
    assert_eq!(l.body["TotalCount"], 2);
    c.sim.shutdown().await;
}

/// GetEdgeContainerAppStatus lags like the others, publish progress included.
#[tokio::test]
async fn read_lag_holds_back_container_app_status() {
    let c = lagged_manual(10, 0).await;
    c.rpc(
        "PublishEdgeContainerAppVersion",
        &[
            ("AppId", APP),
            ("VersionId", V1),
            ("PublishEnv", "prod"),
            ("Percentage", "50"),
        ],
    )
    .await
    .assert_ok();
    c.advance(9);
    let s = app_status(&c, "prod").await;
    assert_eq!(s["PublishStatus"], "published", "{s}");
    assert_eq!(s["DeployedVersion"], V0);
    assert_eq!(s["PublishPercentage"], 100);
    c.advance(1);
    let s = app_status(&c, "prod").await;
    assert_eq!(s["PublishStatus"], "publishing", "{s}");
    assert_eq!(s["PublishingVersion"], V1);
    assert_eq!(s["PublishPercentage"], 0);
    c.advance(1);
    assert_eq!(app_status(&c, "prod").await["PublishPercentage"], 25);
    c.advance(1);
    let s = app_status(&c, "prod").await;
    assert_eq!(s["PublishStatus"], "published", "{s}");
    assert_eq!(s["DeployedVersion"], V1);
    assert_eq!(s["PublishPercentage"], 50);
    let staging = app_status(&c, "staging").await;
    assert_eq!(
        staging["DeployedVersion"], V0,
        "the other environment untouched"
    );
    c.sim.shutdown().await;
}

/// With a pause lag, a pause is acknowledged and takes effect (no replica moves), but
/// DescribeServiceRollout reports Running until the lag has passed, then Paused.
#[tokio::test]
async fn pause_lag_reports_running_after_an_accepted_pause_then_paused() {
    let c = lagged_manual(0, 30).await;
    c.eas(
        "POST",
        ROLLOUT,
        "CreateServiceRollout",
        Some(json!({"Batch":{"BatchSize":"1","Interval":"10s"}})),
    )
    .await
    .assert_ok();
    c.eas(
        "PUT",
        SVC,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v2"}]})),
    )
    .await
    .assert_ok();
    c.advance(1);
    assert_eq!(c.rollout().await["Status"]["UpdatedReplicas"], 1);
    let a = c
        .eas(
            "PUT",
            ROLLOUT,
            "UpdateServiceRollout",
            Some(json!({"Paused": true})),
        )
        .await;
    a.assert_ok();
    assert_eq!(a.body["Message"], "Rollout paused successfully");
    let mut phases = Vec::new();
    for step in 0..4 {
        let r = c.rollout().await;
        assert_eq!(r["Status"]["UpdatedReplicas"], 1, "the pause holds: {r}");
        phases.push(r["Status"]["Phase"].as_str().unwrap().to_string());
        if step == 1 {
            // Sent again while not shown (as a poller inferring the pause from the phase
            // would): acknowledged, and the window is not restarted.
            c.eas(
                "PUT",
                ROLLOUT,
                "UpdateServiceRollout",
                Some(json!({"Paused": true})),
            )
            .await
            .assert_ok();
        }
        c.advance(10);
    }
    assert_eq!(phases, ["Running", "Running", "Running", "Paused"]);
    // Resuming shows at once.
    let a = c
        .eas(
            "PUT",
            ROLLOUT,
            "UpdateServiceRollout",
            Some(json!({"Paused": false})),
        )
        .await;
    assert_eq!(a.body["Message"], "Rollout resumed successfully");
    assert_eq!(c.rollout().await["Status"]["Phase"], "Running");
    c.advance(10);
    assert_eq!(c.rollout().await["Status"]["UpdatedReplicas"], 2);
    assert_eq!(c.sim.sim().calls()["UpdateServiceRollout"], 3);
    c.sim.shutdown().await;
}

/// The same lags as admin faults, added and removed at run time; they only raise the
/// flags' values, name the reads (or pausing actions) they apply to, and are listed and
/// counted with the other faults.
#[tokio::test]
async fn lag_faults_come_and_go_through_the_admin_api() {
    let c = demo_manual().await;
    for (bad, why) in [
        (json!({"kind":"readLag","lagSeconds":-1}), "negative"),
        (json!({"kind":"readLag","lagSeconds":4000}), "over an hour"),
        (json!({"kind":"readLag"}), "no lagSeconds"),
        (
            json!({"kind":"readLag","lagSeconds":1,"action":"UpdateService"}),
            "not a lagging read",
        ),
        (
            json!({"kind":"pauseLag","lagSeconds":1,"action":"DescribeService"}),
            "not a pause",
        ),
        (
            json!({"kind":"readLag","lagSeconds":1,"rate":0.5}),
            "lags are deterministic",
        ),
    ] {
        let a = c.admin("POST", "/_sim/faults", Some(bad)).await;
        assert_eq!(a["Code"], "InvalidParameter", "{why}: {a}");
    }
    let id = c
        .admin(
            "POST",
            "/_sim/faults",
            Some(json!({"kind":"readLag","action":"DescribeService","lagSeconds":5})),
        )
        .await["id"]
        .as_u64()
        .unwrap();
    c.admin(
        "POST",
        "/_sim/faults",
        Some(json!({"kind":"pauseLag","lagSeconds":20})),
    )
    .await;
    c.eas(
        "PUT",
        SVC,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v2"}]})),
    )
    .await
    .assert_ok();
    assert_eq!(describe_service(&c).await["CurrentVersion"], 1, "lagged");
    c.advance(4);
    assert_eq!(describe_service(&c).await["CurrentVersion"], 1, "lagged");
    c.advance(1);
    assert_eq!(describe_service(&c).await["CurrentVersion"], 2);

    // DescribeServiceRollout is not named by the read fault: it answers at once, and
    // shows the pause fault's Running.
    c.eas(
        "POST",
        ROLLOUT,
        "CreateServiceRollout",
        Some(json!({"Batch":{"BatchSize":"1","Interval":"10s"}})),
    )
    .await
    .assert_ok();
    c.eas(
        "PUT",
        SVC,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v3"}]})),
    )
    .await
    .assert_ok();
    c.advance(1);
    c.eas(
        "PUT",
        ROLLOUT,
        "UpdateServiceRollout",
        Some(json!({"Paused": true})),
    )
    .await
    .assert_ok();
    assert_eq!(c.rollout().await["Status"]["Phase"], "Running");
    c.advance(20);
    assert_eq!(c.rollout().await["Status"]["Phase"], "Paused");

    let faults = c.admin("GET", "/_sim/faults", None).await;
    let faults = faults.as_array().unwrap();
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0]["id"], id);
    assert_eq!(faults[0]["kind"], "readLag");
    assert_eq!(faults[0]["lagSeconds"], 5.0);
    assert_eq!(
        faults[0]["fired"], 3,
        "three lagged DescribeService answers"
    );
    assert_eq!(faults[1]["kind"], "pauseLag");
    assert_eq!(faults[1]["fired"], 1, "one pause held back");

    // Cleared: back to the flags (no lag), reads see a mutation at once.
    c.admin("DELETE", "/_sim/faults", None).await;
    c.eas(
        "PUT",
        SVC,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v4"}]})),
    )
    .await
    .assert_ok();
    assert_eq!(describe_service(&c).await["CurrentVersion"], 4);
    c.sim.shutdown().await;
}

/// Under the real clock the lag is wall time and is not divided by the time scale (it
/// models what a poller sees, and pollers wait wall time).
#[tokio::test]
async fn read_lag_is_wall_time_under_a_real_clock_whatever_the_time_scale() {
    let lag = Duration::from_secs(2);
    let sim = simulator::start(SimConfig {
        demo: true,
        time_scale: 100.0,
        read_lag: lag,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = Client::new(sim);
    let sent = std::time::Instant::now();
    c.eas(
        "PUT",
        SVC,
        "UpdateService",
        Some(json!({"containers":[{"image":"repo/llm-chat:v2"}]})),
    )
    .await
    .assert_ok();
    loop {
        let seen = describe_service(&c).await["CurrentVersion"]
            .as_i64()
            .unwrap();
        let elapsed = sent.elapsed();
        if seen == 2 {
            assert!(elapsed >= lag, "shown after {elapsed:?}, before the lag");
            break;
        }
        assert_eq!(seen, 1);
        assert!(elapsed < Duration::from_secs(15), "never shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.sim.shutdown().await;
}
