//! The real cloud client against the in-process simulator over real HTTP: every operation,
//! full EAS rollouts (batch and partition; pause, resume, rollback by raising the
//! partition), routine splits and container app publishing, injected faults, and RRSA.
//!
//! The simulator runs on a manual clock that starts at the wall-clock time (the client
//! signs with the wall clock, which the simulator accepts within 15 minutes), so every
//! step of a rollout is driven explicitly and nothing depends on sleeping.

use std::sync::Arc;
use std::time::Duration;

use alicloud_rollouts::cloud::model::*;
use alicloud_rollouts::cloud::provider::{CredentialsProvider, RrsaConfig};
use alicloud_rollouts::cloud::{
    ClientConfig, CloudApi, CloudClient, CloudError, Credentials, ErrorKind, RrsaProvider,
    StaticProvider, endpoint::Endpoint,
};
use alicloud_rollouts::simulator::{
    self, Clock, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, FaultKind, FaultSpec,
    ManualClock, SimConfig, SimulatorHandle,
};

const REGION: &str = "cn-shanghai";
const ESA: &str = "cn-hangzhou";
const SVC: &str = "llm-chat";
const ROUTINE: &str = "edge-auth";
const APP: &str = "app-8806886757837900";
const V100: &str = "ver-8796263716165100";
const V101: &str = "ver-8796263716165101";

struct Env {
    sim: SimulatorHandle,
    clock: ManualClock,
    client: CloudClient,
}

impl Env {
    async fn start() -> Env {
        let clock = ManualClock::starting_now();
        let sim = tokio::time::timeout(
            Duration::from_secs(10),
            simulator::start(SimConfig {
                demo: true,
                rate_limit: 0,
                clock: Some(Arc::new(clock.clone())),
                ..SimConfig::default()
            }),
        )
        .await
        .expect("simulator starts in time")
        .expect("simulator starts");
        let client = CloudClient::new(
            ClientConfig {
                eas_endpoint: Some(sim.endpoint()),
                esa_endpoint: Some(sim.base_url()),
                sts_endpoint: Some(sim.base_url()),
                call_timeout: Duration::from_secs(5),
                call_deadline: Duration::from_secs(10),
                max_retries: 3,
                retry_base: Duration::from_millis(10),
                retry_max: Duration::from_millis(50),
                ..ClientConfig::default()
            },
            Arc::new(StaticProvider(Credentials::new(
                DEFAULT_ACCESS_KEY_ID,
                DEFAULT_ACCESS_KEY_SECRET,
            ))),
        )
        .expect("client");
        Env { sim, clock, client }
    }

    fn advance(&self, secs: u64) {
        assert!(self.clock.advance(Duration::from_secs(secs)));
    }

    async fn rollout_status(&self) -> RolloutStatus {
        self.client
            .describe_service_rollout(REGION, SVC)
            .await
            .expect("describe rollout")
            .rollout
            .and_then(|r| r.status)
            .expect("rollout status")
    }

    /// Advance one second at a time (bounded) until `done` holds for the rollout status.
    async fn advance_until(
        &self,
        max_secs: u64,
        done: impl Fn(&RolloutStatus) -> bool,
    ) -> RolloutStatus {
        self.advance_by_until(1, max_secs, done).await
    }

    /// Advance `step` seconds at a time, at most `max_secs` in all, until `done` holds.
    async fn advance_by_until(
        &self,
        step: u64,
        max_secs: u64,
        done: impl Fn(&RolloutStatus) -> bool,
    ) -> RolloutStatus {
        for _ in 0..max_secs / step {
            let s = self.rollout_status().await;
            if done(&s) {
                return s;
            }
            self.advance(step);
        }
        let s = self.rollout_status().await;
        assert!(done(&s), "not reached after {max_secs}s: {s:?}");
        s
    }
}

fn image_config(tag: &str) -> serde_json::Value {
    serde_json::json!({"containers": [{"image": format!("registry.cn-shanghai.aliyuncs.com/demo/llm-chat:{tag}")}]})
}

fn phase(s: &RolloutStatus) -> &str {
    s.phase.as_deref().unwrap_or("")
}

#[tokio::test]
async fn eas_batch_rollout_with_pause_and_resume() {
    let env = Env::start().await;
    let c = &env.client;

    let svc = c.describe_service(REGION, SVC).await.unwrap();
    assert_eq!(svc.current_version, Some(1));
    assert_eq!(svc.total_instance, Some(8));
    assert!(!svc.request_id.is_empty());

    let e = c.describe_service_rollout(REGION, SVC).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Terminal);

    let batch = ServiceRolloutRequest {
        batch: Some(BatchConfig {
            batch_size: Some("2".into()),
            interval: Some("60s".into()),
        }),
        ..Default::default()
    };
    c.create_service_rollout(REGION, SVC, &batch).await.unwrap();
    let e = c
        .create_service_rollout(REGION, SVC, &batch)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Terminal, "{e:?}");
    let strategy = c
        .describe_service_rollout(REGION, SVC)
        .await
        .unwrap()
        .rollout
        .and_then(|r| r.strategy)
        .unwrap();
    assert_eq!(strategy.batch, batch.batch);

    c.update_service(REGION, SVC, &image_config("v2"), UpdateType::Merge)
        .await
        .unwrap();
    let svc = c.describe_service(REGION, SVC).await.unwrap();
    assert_eq!(svc.latest_version, Some(2));

    let s = env.rollout_status().await;
    assert_eq!(phase(&s), "Pending");
    assert_eq!((s.total_replicas, s.updated_replicas), (Some(8), Some(0)));
    assert_ne!(s.current_revision, s.update_revision);

    // First batch one second after the update.
    let s = env
        .advance_until(5, |s| s.updated_replicas == Some(2))
        .await;
    assert_eq!(phase(&s), "Running");
    assert!(s.next_batch_start_time.is_some(), "{s:?}");

    // Paused: time passes, nothing moves.
    c.update_service_rollout(
        REGION,
        SVC,
        &ServiceRolloutRequest {
            paused: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    env.advance(180);
    let s = env.rollout_status().await;
    assert_eq!(phase(&s), "Paused");
    assert_eq!(s.updated_replicas, Some(2));

    // Resumed: batches of 2 every 60 s until all 8 run the new version.
    c.update_service_rollout(
        REGION,
        SVC,
        &ServiceRolloutRequest {
            paused: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let prev = std::cell::Cell::new(2);
    let s = env
        .advance_by_until(10, 400, |s| {
            let u = s.updated_replicas.unwrap_or(0);
            assert!(u >= prev.get() && u <= 8, "never backwards: {s:?}");
            assert!(
                u - prev.get() <= 2,
                "at most one batch of 2 per step: {s:?}"
            );
            prev.set(u);
            u == 8 && s.phase.as_deref() == Some("Completed")
        })
        .await;
    assert_eq!(s.updated_replicas, Some(8));
    assert_eq!(s.current_revision, s.update_revision);
    let svc = c.describe_service(REGION, SVC).await.unwrap();
    assert_eq!(svc.current_version, Some(2));

    let versions = c
        .list_service_versions(REGION, SVC, Some(1), Some(10))
        .await
        .unwrap();
    let mut ids: Vec<i64> = versions
        .versions
        .iter()
        .filter_map(|v| v.image_id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2]);

    c.delete_service_rollout(REGION, SVC).await.unwrap();
    let e = c.describe_service_rollout(REGION, SVC).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    env.sim.shutdown().await;
}

#[tokio::test]
async fn eas_partition_rollout_forward_and_back() {
    let env = Env::start().await;
    let c = &env.client;
    let partition = |p: &str| ServiceRolloutRequest {
        partition: Some(PartitionConfig {
            partition: p.into(),
        }),
        ..Default::default()
    };
    c.create_service_rollout(REGION, SVC, &partition("6"))
        .await
        .unwrap();
    c.update_service(REGION, SVC, &image_config("v2"), UpdateType::Merge)
        .await
        .unwrap();
    // Partition 6 of 8 keeps six on the old version: two move.
    let s = env
        .advance_until(20, |s| s.updated_replicas == Some(2))
        .await;
    env.advance(10);
    assert_eq!(
        env.rollout_status().await.updated_replicas,
        Some(2),
        "{s:?}"
    );

    // Lowering the partition moves the rollout forward.
    c.update_service_rollout(REGION, SVC, &partition("25%"))
        .await
        .unwrap();
    env.advance_until(20, |s| s.updated_replicas == Some(6))
        .await;

    // Raising it rolls replicas back to the old version.
    c.update_service_rollout(REGION, SVC, &partition("7"))
        .await
        .unwrap();
    let s = env
        .advance_until(20, |s| s.updated_replicas == Some(1))
        .await;
    assert_ne!(s.current_revision, s.update_revision);

    // And setting the old version back returns every replica to it.
    c.update_service_version(REGION, SVC, 1).await.unwrap();
    c.update_service_rollout(REGION, SVC, &partition("0"))
        .await
        .unwrap();
    let s = env
        .advance_until(60, |s| {
            s.phase.as_deref() == Some("Completed") && s.current_revision == s.update_revision
        })
        .await;
    assert_eq!(s.updated_replicas, Some(8));
    let svc = c.describe_service(REGION, SVC).await.unwrap();
    assert_eq!(svc.current_version, Some(1), "{svc:?}");

    // Invalid updates are terminal and named.
    let e = c
        .update_service_rollout(REGION, SVC, &partition("lots"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.kind()),
        ("InvalidParameter", ErrorKind::Terminal)
    );
    let e = c
        .describe_service(REGION, "no-such-service")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    env.sim.shutdown().await;
}

#[tokio::test]
async fn esa_routine_code_deployments() {
    let env = Env::start().await;
    let c = &env.client;
    let routine = c.get_routine(ESA, ROUTINE).await.unwrap();
    let prod = routine.envs.iter().find(|e| e.env == "production").unwrap();
    let split = &prod.code_deploy.as_ref().unwrap().code_versions;
    assert_eq!(split.len(), 1);
    assert_eq!(
        (split[0].code_version.as_str(), split[0].percentage),
        ("1710000000000000001", 100)
    );

    let versions = c
        .list_routine_code_versions(
            ESA,
            &ListRoutineCodeVersionsRequest {
                name: ROUTINE.into(),
                page_number: Some(1),
                page_size: Some(20),
                search_key_word: None,
            },
        )
        .await
        .unwrap();
    let mut names: Vec<&str> = versions
        .code_versions
        .iter()
        .map(|v| v.code_version.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["1710000000000000001", "1710000000000000002"]);

    let canary = CreateRoutineCodeDeploymentRequest {
        name: ROUTINE.into(),
        env: "production".into(),
        strategy: "percentage".into(),
        code_versions: vec![
            CodeVersionSplit {
                code_version: "1710000000000000002".into(),
                percentage: 10,
            },
            CodeVersionSplit {
                code_version: "1710000000000000001".into(),
                percentage: 90,
            },
        ],
    };
    let dep = c
        .create_routine_code_deployment(ESA, &canary)
        .await
        .unwrap();
    assert!(dep.deployment_id.is_some());
    let routine = c.get_routine(ESA, ROUTINE).await.unwrap();
    let prod = routine.envs.iter().find(|e| e.env == "production").unwrap();
    let mut split: Vec<(String, i32)> = prod
        .code_deploy
        .as_ref()
        .unwrap()
        .code_versions
        .iter()
        .map(|v| (v.code_version.clone(), v.percentage))
        .collect();
    split.sort();
    assert_eq!(
        split,
        vec![
            ("1710000000000000001".to_string(), 90),
            ("1710000000000000002".to_string(), 10)
        ]
    );
    // Staging untouched.
    let staging = routine.envs.iter().find(|e| e.env == "staging").unwrap();
    assert_eq!(staging.code_deploy.as_ref().unwrap().code_versions.len(), 1);

    let mut bad = canary.clone();
    bad.code_versions[0].percentage = 50;
    let e = c
        .create_routine_code_deployment(ESA, &bad)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.kind()),
        ("InvalidParameter", ErrorKind::Terminal)
    );
    let e = c.get_routine(ESA, "no-such-routine").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    env.sim.shutdown().await;
}

#[tokio::test]
async fn esa_container_app_publish_percentage_and_full_release() {
    let env = Env::start().await;
    let c = &env.client;
    let versions = c
        .list_edge_container_app_versions(
            ESA,
            &ListEdgeContainerAppVersionsRequest {
                app_id: APP.into(),
                page_number: Some(1),
                page_size: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut ids: Vec<&str> = versions
        .versions
        .iter()
        .map(|v| v.version_id.as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, [V100, V101]);

    let status = |env: &'static str| async move {
        c.get_edge_container_app_status(ESA, APP, env)
            .await
            .unwrap()
            .app_status
            .unwrap()
    };
    let s = status("prod").await;
    assert_eq!(s.base_line_version.as_deref(), Some(V100));

    c.publish_edge_container_app_version(
        ESA,
        &PublishEdgeContainerAppVersionRequest {
            app_id: APP.into(),
            version_id: V101.into(),
            publish_env: "prod".into(),
            publish_type: Some("percentage".into()),
            percentage: Some(50),
            remarks: Some("canary 50%".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = status("prod").await;
    assert_eq!(s.publish_status.as_deref(), Some("publishing"));
    assert_eq!(s.publishing_version.as_deref(), Some(V101));
    assert_eq!(s.expect_percentage, Some(50));
    let mut seen = Vec::new();
    for _ in 0..10 {
        let s = status("prod").await;
        seen.push(s.publish_percentage.unwrap_or(0));
        if s.publish_status.as_deref() == Some("published") {
            break;
        }
        env.advance(1);
    }
    let s = status("prod").await;
    assert_eq!(s.publish_status.as_deref(), Some("published"), "{seen:?}");
    assert_eq!(s.publish_percentage, Some(50));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(
        s.base_line_version.as_deref(),
        Some(V100),
        "a 50% publish keeps the baseline"
    );
    assert_eq!(
        status("staging").await.publishing_version.as_deref(),
        Some(V100),
        "staging untouched"
    );

    // Full release makes the new version the baseline.
    c.publish_edge_container_app_version(
        ESA,
        &PublishEdgeContainerAppVersionRequest {
            app_id: APP.into(),
            version_id: V101.into(),
            publish_env: "prod".into(),
            percentage: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    env.advance(10);
    let s = status("prod").await;
    assert_eq!(
        (s.publish_status.as_deref(), s.base_line_version.as_deref()),
        (Some("published"), Some(V101))
    );

    // Errors as the cloud names them.
    let bad = |version: &str, env: &str, pct: Option<i32>| PublishEdgeContainerAppVersionRequest {
        app_id: APP.into(),
        version_id: version.into(),
        publish_env: env.into(),
        percentage: pct,
        ..Default::default()
    };
    let e = c
        .publish_edge_container_app_version(ESA, &bad("v1", "prod", None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameter.VersionId");
    let e = c
        .publish_edge_container_app_version(ESA, &bad(V101, "production", None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameter.PublishEnv");
    let e = c
        .publish_edge_container_app_version(ESA, &bad(V101, "prod", Some(101)))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.kind()),
        ("InvalidParameter.Percentage", ErrorKind::Terminal)
    );
    let e = c
        .get_edge_container_app_status(ESA, "app-1", "prod")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    env.sim.shutdown().await;
}

#[tokio::test]
async fn faults_retries_credentials_and_rrsa() {
    let env = Env::start().await;
    let c = &env.client;
    let sim = env.sim.sim();
    let fault = |action: &str, kind: FaultKind, count: u64| FaultSpec {
        action: Some(action.into()),
        kind,
        status: None,
        code: None,
        message: None,
        retry_after_seconds: None,
        latency_ms: None,
        rate: None,
        count: Some(count),
        after: false,
        bytes: None,
    };

    // Two 503s, then success: the client retries through them.
    sim.add_fault(FaultSpec {
        status: Some(503),
        ..fault("DescribeService", FaultKind::Error, 2)
    })
    .unwrap();
    let before = sim.calls().get("DescribeService").copied().unwrap_or(0);
    c.describe_service(REGION, SVC).await.unwrap();
    assert_eq!(
        sim.calls().get("DescribeService").copied().unwrap_or(0) - before,
        3
    );
    assert_eq!(c.metrics().retry_count("eas", "DescribeService"), 2);

    // Throttled once, then served.
    sim.add_fault(FaultSpec {
        retry_after_seconds: Some(1),
        ..fault("GetRoutine", FaultKind::Throttle, 1)
    })
    .unwrap();
    let started = std::time::Instant::now();
    c.get_routine(ESA, ROUTINE).await.unwrap();
    assert_eq!(c.metrics().throttled_count("esa", "GetRoutine"), 1);
    // The simulator asks for 1 s (x-acs-retry-after: 1000, in milliseconds).
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A dropped connection is a transport error, retried.
    sim.add_fault(fault("ListRoutineCodeVersions", FaultKind::Drop, 1))
        .unwrap();
    c.list_routine_code_versions(
        ESA,
        &ListRoutineCodeVersionsRequest {
            name: ROUTINE.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(c.metrics().retry_count("esa", "ListRoutineCodeVersions"), 1);

    // Slower than the per-attempt timeout, every time: a Timeout error.
    sim.add_fault(FaultSpec {
        latency_ms: Some(1500),
        ..fault("DescribeServiceRollout", FaultKind::Latency, 10)
    })
    .unwrap();
    let quick = CloudClient::new(
        ClientConfig {
            eas_endpoint: Some(env.sim.endpoint()),
            call_timeout: Duration::from_millis(300),
            max_retries: 1,
            retry_base: Duration::from_millis(10),
            ..ClientConfig::default()
        },
        Arc::new(StaticProvider(Credentials::new(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
        ))),
    )
    .unwrap();
    let e = quick
        .describe_service_rollout(REGION, SVC)
        .await
        .unwrap_err();
    assert!(matches!(e, CloudError::Timeout(_)), "{e:?}");
    sim.clear_faults();

    // Wrong secret / unknown key: terminal, never retried.
    let wrong = c.with_credentials(Credentials::new(DEFAULT_ACCESS_KEY_ID, "not-the-secret"));
    let e = wrong.describe_service(REGION, SVC).await.unwrap_err();
    assert_eq!(
        (e.code(), e.kind()),
        ("SignatureDoesNotMatch", ErrorKind::Terminal)
    );
    let unknown = c.with_credentials(Credentials::new("nobody", "x"));
    let e = unknown.describe_service(REGION, SVC).await.unwrap_err();
    assert_eq!(e.code(), "InvalidAccessKeyId.NotFound");

    // RRSA: exchange an OIDC token with the simulator's STS, then call EAS with the
    // temporary credentials and their security token.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.e30.sig").unwrap();
    let sim_clock = env.clock.clone();
    let rrsa = RrsaProvider::new(
        RrsaConfig {
            role_arn: "acs:ram::1234567890:role/rollouts".into(),
            oidc_provider_arn: "acs:ram::1234567890:oidc-provider/ack-rrsa".into(),
            oidc_token_file: token_file,
            role_session_name: "alicloud-rollouts".into(),
            sts_region: None,
            vpc_endpoint: false,
            sts_endpoint: None,
            duration: Duration::from_secs(3600),
        },
        Endpoint::parse(&env.sim.endpoint()).unwrap(),
        reqwest::Client::new(),
        Duration::from_secs(5),
    )
    .with_clock(move || sim_clock.now());
    let creds = rrsa.credentials().await.unwrap();
    assert!(creds.security_token.is_some());
    let sts_client = c.with_credentials(creds);
    let svc = sts_client.describe_service(REGION, SVC).await.unwrap();
    assert_eq!(svc.service_name.as_deref(), Some(SVC));
    let e = c
        .with_credentials(Credentials::new(
            rrsa.credentials().await.unwrap().access_key_id,
            rrsa.credentials().await.unwrap().access_key_secret,
        ))
        .describe_service(REGION, SVC)
        .await
        .unwrap_err();
    assert!(e.code().starts_with("InvalidSecurityToken"), "{e:?}");
    env.sim.shutdown().await;
}

/// RollbackEdgeContainerAppVersion's VersionId is the version to roll back TO (API
/// reference and SDK docstring), with Percentage the target version's share afterwards.
#[tokio::test]
async fn esa_container_app_rollback_to_the_baseline() {
    let env = Env::start().await;
    let c = &env.client;
    let status = |env: &'static str| async move {
        c.get_edge_container_app_status(ESA, APP, env)
            .await
            .unwrap()
            .app_status
            .unwrap()
    };
    c.publish_edge_container_app_version(
        ESA,
        &PublishEdgeContainerAppVersionRequest {
            app_id: APP.into(),
            version_id: V101.into(),
            publish_env: "prod".into(),
            percentage: Some(50),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    env.advance(5);
    let s = status("prod").await;
    assert_eq!(
        (s.publish_status.as_deref(), s.publishing_version.as_deref()),
        (Some("published"), Some(V101))
    );

    c.rollback_edge_container_app_version(
        ESA,
        &RollbackEdgeContainerAppVersionRequest {
            app_id: APP.into(),
            version_id: V100.into(),
            percentage: Some(100),
            used_percent: Some(true),
            remarks: Some("bad canary".into()),
        },
    )
    .await
    .unwrap();
    let s = status("prod").await;
    assert_eq!(s.publish_status.as_deref(), Some("rollbacking"));
    env.advance(3);
    let s = status("prod").await;
    assert_eq!(s.publish_status.as_deref(), Some("rollbacked"));
    assert_eq!(s.deployed_version.as_deref(), Some(V100));
    assert_eq!(s.base_line_version.as_deref(), Some(V100));

    let e = c
        .rollback_edge_container_app_version(
            ESA,
            &RollbackEdgeContainerAppVersionRequest {
                app_id: APP.into(),
                version_id: "ver-1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    env.sim.shutdown().await;
}

/// The same flow on the simulator's real clock, sped up 20 times: a 20 s batch interval
/// passes in about one second.
#[tokio::test]
async fn eas_batch_rollout_on_a_time_scaled_clock() {
    let sim = simulator::start(SimConfig {
        demo: true,
        time_scale: 20.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = CloudClient::new(
        ClientConfig {
            eas_endpoint: Some(sim.base_url()),
            ..ClientConfig::default()
        },
        Arc::new(StaticProvider(Credentials::new(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
        ))),
    )
    .unwrap();
    c.create_service_rollout(
        REGION,
        SVC,
        &ServiceRolloutRequest {
            batch: Some(BatchConfig {
                batch_size: Some("50%".into()),
                interval: Some("20s".into()),
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    c.update_service(REGION, SVC, &image_config("v3"), UpdateType::Replace)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let done = loop {
        let s = c
            .describe_service_rollout(REGION, SVC)
            .await
            .unwrap()
            .rollout
            .and_then(|r| r.status)
            .unwrap();
        let u = s.updated_replicas.unwrap_or(0);
        if seen.last() != Some(&u) {
            seen.push(u);
        }
        if phase(&s) == "Completed" && u == 8 {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not completed in time: {s:?} after {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.current_revision, done.update_revision);
    assert!(seen.contains(&4), "went through the 50% batch: {seen:?}");
    sim.shutdown().await;
}

/// STS GetCallerIdentity, signed like every other call: each key pair the simulator accepts
/// is an account of its own (the same on every run), and the account is what the client
/// remembers per access key.
#[tokio::test]
async fn caller_identity_names_the_account_of_the_credentials() {
    let env = Env::start().await;
    let c = &env.client;
    let account = c.caller_account().await.expect("GetCallerIdentity answers");
    assert_eq!(account.len(), 16, "{account}");
    assert!(account.bytes().all(|b| b.is_ascii_digit()), "{account}");
    assert_eq!(account, env.sim.sim().account_of_key(DEFAULT_ACCESS_KEY_ID));
    // Asked again: remembered, no second call.
    let before = env.sim.sim().calls().get("GetCallerIdentity").copied();
    assert_eq!(before, Some(1));
    assert_eq!(c.caller_account().await.unwrap(), account);
    assert_eq!(
        env.sim.sim().calls().get("GetCallerIdentity").copied(),
        Some(1)
    );
    // Another key pair is another account; a key the cloud does not know is refused as
    // elsewhere (the answer is remembered per key id: a key id belongs to one account).
    assert_ne!(env.sim.sim().account_of_key("someone-else"), account);
    let unknown = c.with_credentials(Credentials::new("nobody", "x"));
    let e = unknown.caller_account().await.unwrap_err();
    assert_eq!(e.code(), "InvalidAccessKeyId.NotFound");
    env.sim.shutdown().await;
}

/// The reconciles that all start together after a restart ask for the account at once:
/// one GetCallerIdentity goes out per key, the others wait for its answer.
#[tokio::test]
async fn concurrent_account_lookups_send_one_call() {
    let env = Env::start().await;
    let c = &env.client;
    let asks = (0..32).map(|_| c.caller_account());
    let answers = futures::future::join_all(asks).await;
    let expected = env.sim.sim().account_of_key(DEFAULT_ACCESS_KEY_ID);
    for a in answers {
        assert_eq!(a.expect("GetCallerIdentity answers"), expected);
    }
    assert_eq!(
        env.sim.sim().calls().get("GetCallerIdentity").copied(),
        Some(1)
    );
    env.sim.shutdown().await;
}

/// Each fault that takes an answer away after the call took effect (a 500, a dropped
/// connection, headers then a stall, a truncated, wrongly typed or enormous body): the
/// push is applied once, the client does not send it again and says its outcome is
/// unknown, and the call log shows one applied UpdateService with the fault that fired.
/// The same faults on a read are retried through.
#[tokio::test]
async fn answers_lost_after_a_mutation_took_effect_leave_one_push_and_an_unknown_outcome() {
    let env = Env::start().await;
    let sim = env.sim.sim();
    let c = CloudClient::new(
        ClientConfig {
            eas_endpoint: Some(env.sim.endpoint()),
            call_timeout: Duration::from_millis(500),
            call_deadline: Duration::from_secs(5),
            max_retries: 2,
            retry_base: Duration::from_millis(10),
            retry_max: Duration::from_millis(20),
            rate_limit_per_api: 0,
            ..ClientConfig::default()
        },
        Arc::new(StaticProvider(Credentials::new(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
        ))),
    )
    .unwrap();
    let faults = [
        serde_json::json!({"kind": "error", "status": 500, "after": true}),
        serde_json::json!({"kind": "drop", "after": true}),
        serde_json::json!({"kind": "stall", "latencyMs": 2000, "after": true}),
        serde_json::json!({"kind": "truncate"}),
        serde_json::json!({"kind": "wrongType"}),
        serde_json::json!({"kind": "huge", "bytes": 8 << 20}),
    ];
    for (n, fault) in faults.iter().enumerate() {
        let mut spec: FaultSpec = serde_json::from_value(fault.clone()).unwrap();
        spec.action = Some("UpdateService".into());
        spec.count = Some(1);
        let id = sim.add_fault(spec.clone()).unwrap();
        let tag = format!("fault-{n}");
        let e = c
            .update_service(REGION, SVC, &image_config(&tag), UpdateType::Merge)
            .await
            .unwrap_err();
        assert!(e.outcome_unknown(), "{fault}: {e:?}");
        let log: Vec<_> = sim
            .call_log()
            .into_iter()
            .filter(|r| r.action == "UpdateService")
            .collect();
        assert_eq!(log.len(), n + 1, "{fault}: sent once: {log:?}");
        let last = log.last().unwrap();
        assert!(last.applied && last.mutation, "{fault}: {last:?}");
        assert_eq!(last.faults, vec![id], "{fault}");
        assert_eq!(last.target.as_deref(), Some("cn-shanghai/llm-chat"));
        let svc = c.describe_service(REGION, SVC).await.unwrap();
        assert!(
            svc.service_config
                .as_deref()
                .unwrap_or_default()
                .contains(&tag),
            "{fault}: the push took effect: {svc:?}"
        );

        // The same fault on a read: retried through.
        spec.action = Some("DescribeService".into());
        sim.add_fault(spec).unwrap();
        c.describe_service(REGION, SVC).await.unwrap();
        sim.clear_faults();
    }
    // Distinct pushes have distinct digests.
    let digests: std::collections::BTreeSet<String> = sim
        .call_log()
        .into_iter()
        .filter(|r| r.action == "UpdateService")
        .map(|r| r.digest)
        .collect();
    assert_eq!(digests.len(), faults.len());
    assert_eq!(
        sim.duplicated_mutations(),
        serde_json::json!({"applied": faults.len(), "duplicates": []})
    );

    // A stall before the call takes effect: nothing applied, the outcome still unknown.
    sim.add_fault(
        serde_json::from_value(serde_json::json!({"action": "UpdateService", "kind": "stall", "latencyMs": 2000, "count": 1}))
            .unwrap(),
    )
    .unwrap();
    let e = c
        .update_service(REGION, SVC, &image_config("never"), UpdateType::Merge)
        .await
        .unwrap_err();
    assert!(e.outcome_unknown(), "{e:?}");
    let last = sim.call_log().into_iter().last().unwrap();
    assert!(!last.applied, "{last:?}");

    // What makes no sense is refused.
    for bad in [
        serde_json::json!({"kind": "throttle", "after": true}),
        serde_json::json!({"kind": "error", "bytes": 10}),
        serde_json::json!({"kind": "huge", "bytes": 2u64 << 30}),
    ] {
        let spec: FaultSpec = serde_json::from_value(bad.clone()).unwrap();
        assert!(sim.add_fault(spec).is_err(), "{bad}");
    }
    env.sim.shutdown().await;
}
