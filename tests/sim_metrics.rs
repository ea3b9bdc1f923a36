//! The simulator's traffic model from the outside: CloudMonitor (DescribeMetricLast and
//! DescribeMetricList through the real, signed cloud client) and a real Prometheus
//! (Debian's package) scraping `GET /metrics`, where a version seeded as bad shows a high
//! error ratio and a good one a low one.

mod support;

use std::sync::Arc;
use std::time::Duration;

use alicloud_rollouts::cloud::model::*;
use alicloud_rollouts::cloud::{ClientConfig, CloudApi, CloudClient, Credentials, StaticProvider};
use alicloud_rollouts::simulator::seed::{Seed, SeedRoutine, SeedService};
use alicloud_rollouts::simulator::{
    self, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, ManualClock, SimConfig, SimulatorHandle,
};
use serde_json::json;
use support::prometheus::Prometheus;

const REGION: &str = "cn-shanghai";
const ESA: &str = "cn-hangzhou";

fn seed() -> Seed {
    let service = |name: &str, image: &str| SeedService {
        name: name.into(),
        region: REGION.into(),
        replicas: 4,
        rollout_enabled: true,
        config: Some(json!({
            "metadata": {"name": name, "instance": 4},
            "containers": [{"image": image}],
        })),
        labels: Default::default(),
    };
    Seed {
        services: vec![
            service("good-svc", "registry/demo/good:v1"),
            service("bad-svc", "registry/demo/bad-svc:v2-bad"),
        ],
        routines: vec![SeedRoutine {
            name: "edge-auth".into(),
            code_versions: vec!["v1".into(), "v2-bad".into()],
            deployed: Some("v1".into()),
        }],
        apps: Vec::new(),
    }
}

async fn start(clock: Option<ManualClock>) -> (SimulatorHandle, CloudClient) {
    let sim = simulator::start(SimConfig {
        seed: Some(seed()),
        rate_limit: 0,
        clock: clock.map(|c| Arc::new(c) as _),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let client = CloudClient::new(
        ClientConfig {
            eas_endpoint: Some(sim.base_url()),
            esa_endpoint: Some(sim.base_url()),
            cms_endpoint: Some(sim.endpoint()),
            max_retries: 0,
            ..ClientConfig::default()
        },
        Arc::new(StaticProvider(Credentials::new(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_ACCESS_KEY_SECRET,
        ))),
    )
    .expect("client");
    (sim, client)
}

fn metric(name: &str, service: &str) -> DescribeMetricRequest {
    DescribeMetricRequest {
        namespace: "acs_pai_eas".into(),
        metric_name: name.into(),
        period: Some("60".into()),
        dimensions: Some(json!([{"serviceName": service}]).to_string()),
        ..DescribeMetricRequest::default()
    }
}

async fn last(client: &CloudClient, name: &str, service: &str) -> f64 {
    let answer = client
        .describe_metric_last(REGION, &metric(name, service))
        .await
        .expect("DescribeMetricLast");
    let points = answer.points().expect("datapoints");
    assert_eq!(points.len(), 1, "{answer:?}");
    assert_eq!(points[0]["serviceName"], service);
    points[0]["Average"].as_f64().expect("Average")
}

#[tokio::test]
async fn cloud_monitor_answers_per_service_from_the_traffic_model() {
    let clock = ManualClock::starting_now();
    let (sim, client) = start(Some(clock.clone())).await;
    // Two minutes of traffic, counted as the clock moves.
    for _ in 0..12 {
        sim.advance(Duration::from_secs(10));
        client
            .describe_service(REGION, "good-svc")
            .await
            .expect("describe");
    }
    let qps = last(&client, "QueryPerSecondTotal", "good-svc").await;
    assert!((qps - 20.0).abs() < 1.0, "QPS {qps}");
    let good = last(&client, "5xxResponseRatio", "good-svc").await;
    let bad = last(&client, "5xxResponseRatio", "bad-svc").await;
    assert!(
        good < 5.0 && bad > 40.0,
        "5xx ratio good {good}% bad {bad}%"
    );
    let (good99, bad99) = (
        last(&client, "ResponseTimeTP99", "good-svc").await,
        last(&client, "ResponseTimeTP99", "bad-svc").await,
    );
    assert!(
        good99 < 300.0 && bad99 > 1000.0,
        "TP99 {good99}ms {bad99}ms"
    );

    let mut req = metric("5xxResponseRatio", "bad-svc");
    let end = sim.now().as_millisecond();
    req.start_time = Some((end - 120_000).to_string());
    req.end_time = Some(end.to_string());
    let answer = client
        .describe_metric_list(REGION, &req)
        .await
        .expect("DescribeMetricList");
    let points = answer.points().expect("datapoints");
    assert!(!points.is_empty() && points.len() <= 2, "{answer:?}");
    assert!(points.iter().all(|p| p["Average"].as_f64() > Some(40.0)));

    // A namespace the simulator does not serve is refused, not answered empty.
    let mut other = metric("cpu_idle", "good-svc");
    other.namespace = "acs_ecs_dashboard".into();
    let err = client
        .describe_metric_last(REGION, &other)
        .await
        .expect_err("unknown namespace");
    assert!(err.to_string().contains("acs_pai_eas"), "{err}");
    let calls = sim.sim().calls();
    assert_eq!(calls.get("DescribeMetricLast"), Some(&6), "{calls:?}");
    assert_eq!(calls.get("DescribeMetricList"), Some(&1), "{calls:?}");
}

#[tokio::test]
async fn marking_a_version_bad_by_name_counts_from_then_on() {
    let clock = ManualClock::starting_now();
    let (sim, client) = start(Some(clock.clone())).await;
    sim.advance(Duration::from_secs(60));
    let revision = sim.sim().dump()["services"]["cn-shanghai/good-svc"]["versions"][0]["revision"]
        .as_str()
        .expect("revision")
        .to_string();
    let http = reqwest::Client::new();
    let marked = http
        .post(format!("{}/_sim/bad", sim.base_url()))
        .json(&json!({"versions": [revision]}))
        .send()
        .await
        .expect("POST /_sim/bad");
    assert!(marked.status().is_success());
    for _ in 0..7 {
        sim.advance(Duration::from_secs(10));
        client
            .describe_service(REGION, "good-svc")
            .await
            .expect("describe");
    }
    let ratio = last(&client, "5xxResponseRatio", "good-svc").await;
    assert!(ratio > 40.0, "marked bad: {ratio}%");
    let text = http
        .get(format!("{}/metrics", sim.base_url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    let errors = text
        .lines()
        .find(|l| {
            l.starts_with(
                "sim_requests_total{kind=\"eas\",region=\"cn-shanghai\",target=\"good-svc\"",
            ) && l.contains("code=\"500\"")
        })
        .expect("a 500 series");
    let n: f64 = errors.rsplit(' ').next().unwrap().parse().unwrap();
    // 60s good (1% of 1200 = 12) then 70s bad (60% of 1400 = 840).
    assert!((800.0..900.0).contains(&n), "{errors}");
}

#[tokio::test]
async fn real_prometheus_sees_the_bad_version_of_a_split() {
    let (sim, client) = start(None).await;
    client
        .create_routine_code_deployment(
            ESA,
            &CreateRoutineCodeDeploymentRequest {
                name: "edge-auth".into(),
                env: "production".into(),
                strategy: "percentage".into(),
                code_versions: vec![
                    CodeVersionSplit {
                        code_version: "v1".into(),
                        percentage: 50,
                    },
                    CodeVersionSplit {
                        code_version: "v2-bad".into(),
                        percentage: 50,
                    },
                ],
            },
        )
        .await
        .expect("a 50/50 split");
    let prom = Prometheus::start(&sim.endpoint())
        .await
        .expect("prometheus starts");
    prom.wait_for_series("sim_requests_total", Duration::from_secs(60))
        .await
        .expect("scraped");
    let ratio = |version: &str| {
        format!(
            "sum(rate(sim_requests_total{{kind=\"routine\",target=\"edge-auth\",env=\"production\",version=\"{version}\",code=~\"5..\"}}[10s])) \
             / sum(rate(sim_requests_total{{kind=\"routine\",target=\"edge-auth\",env=\"production\",version=\"{version}\"}}[10s]))"
        )
    };
    let bad = prom
        .wait_for_value(&ratio("v2-bad"), Duration::from_secs(60), |v| v > 0.3)
        .await
        .expect("the bad version's error ratio is high");
    let good = prom
        .wait_for_value(&ratio("v1"), Duration::from_secs(30), |v| v.is_finite())
        .await
        .expect("the good version has a ratio");
    assert!(good < 0.1, "good {good}, bad {bad}");
    let p99 = |version: &str| {
        format!(
            "histogram_quantile(0.99, sum by (le) (rate(sim_request_duration_seconds_bucket{{kind=\"routine\",target=\"edge-auth\",version=\"{version}\"}}[10s])))"
        )
    };
    let slow = prom.query_value(&p99("v2-bad")).await.expect("p99 query");
    let fast = prom.query_value(&p99("v1")).await.expect("p99 query");
    assert!(
        slow > Some(1.0) && fast < Some(0.5),
        "p99 bad {slow:?} good {fast:?}"
    );
    let share = prom
        .query_value("sim_traffic_share{kind=\"routine\",env=\"production\",version=\"v2-bad\"}")
        .await
        .expect("share");
    assert_eq!(share, Some(0.5));
}
