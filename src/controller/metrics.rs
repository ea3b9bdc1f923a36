//! Prometheus metrics of the reconcilers, and the /metrics, /healthz and /readyz endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn new_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Counters and histograms shared by the reconcilers.
pub struct Metrics {
    reconciles: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    mutations: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    undecodable: Family<Labels, Gauge>,
    left_behind: Family<Labels, Counter>,
}

impl Metrics {
    /// Create the metrics and register them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics {
            reconciles: Family::default(),
            failures: Family::default(),
            mutations: Family::default(),
            duration: Family::new_with_constructor(new_histogram),
            undecodable: Family::default(),
            left_behind: Family::default(),
        };
        registry.register(
            "alicloud_rollouts_reconciles",
            "Reconciles started, by kind",
            m.reconciles.clone(),
        );
        registry.register(
            "alicloud_rollouts_reconcile_failures",
            "Reconciles that failed, by kind and reason (cloud error code or local cause)",
            m.failures.clone(),
        );
        registry.register(
            "alicloud_rollouts_cloud_mutations",
            "Cloud mutations made by the reconcilers, by kind and action",
            m.mutations.clone(),
        );
        registry.register(
            "alicloud_rollouts_reconcile_duration_seconds",
            "Time spent in one reconcile, by kind",
            m.duration.clone(),
        );
        registry.register(
            "alicloud_rollouts_undecodable_objects",
            "Objects the operator cannot read and skips (1 while so), by kind, namespace and name",
            m.undecodable.clone(),
        );
        registry.register(
            "alicloud_rollouts_cleanup_left_behind",
            "Deleted resources whose cloud object the cleanup had to leave in the cloud \
             (credentials gone, another account or owner), by kind",
            m.left_behind.clone(),
        );
        m
    }

    /// A cleanup left its cloud object in the cloud.
    pub fn left_behind(&self, kind: &str) {
        self.left_behind
            .get_or_create(&vec![("kind".into(), kind.into())])
            .inc();
    }

    fn object_labels(kind: &str, namespace: &str, name: &str) -> Labels {
        vec![
            ("kind".into(), kind.into()),
            ("namespace".into(), namespace.into()),
            ("name".into(), name.into()),
        ]
    }

    /// Mark an object as one the operator cannot read (`true`) or no longer so.
    pub fn undecodable(&self, kind: &str, namespace: &str, name: &str, undecodable: bool) {
        let labels = Self::object_labels(kind, namespace, name);
        if undecodable {
            self.undecodable.get_or_create(&labels).set(1);
        } else {
            self.undecodable.remove(&labels);
        }
    }

    pub fn reconcile(&self, kind: &str) {
        self.reconciles
            .get_or_create(&vec![("kind".into(), kind.into())])
            .inc();
    }

    pub fn failure(&self, kind: &str, reason: &str) {
        self.failures
            .get_or_create(&vec![
                ("kind".into(), kind.into()),
                ("reason".into(), reason.into()),
            ])
            .inc();
    }

    pub fn mutation(&self, kind: &str, action: &str) {
        self.mutations
            .get_or_create(&vec![
                ("kind".into(), kind.into()),
                ("action".into(), action.into()),
            ])
            .inc();
    }

    pub fn observe(&self, kind: &str, took: Duration) {
        self.duration
            .get_or_create(&vec![("kind".into(), kind.into())])
            .observe(took.as_secs_f64());
    }
}

/// Render the registry in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    encode(&mut out, registry)?;
    Ok(out)
}

/// What /metrics shows: the controller's metrics and the cloud client's.
#[derive(Clone)]
pub struct Exposition {
    pub controller: Arc<Registry>,
    pub cloud: crate::cloud::Metrics,
}

impl Exposition {
    /// Both registries as one exposition (one `# EOF` at the end).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mine = render(&self.controller)?;
        let mut out = mine.trim_end().trim_end_matches("# EOF").to_string();
        out.push_str(&self.cloud.encode());
        Ok(out)
    }
}

async fn metrics_handler(State(exposition): State<Exposition>) -> impl IntoResponse {
    match exposition.render() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// What /healthz and /readyz look at.
#[derive(Clone)]
pub struct Probes {
    pub health: Arc<super::health::Health>,
    pub leadership: super::leader::Leadership,
}

fn probe_answer(result: Result<(), String>) -> axum::response::Response {
    match result {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// The routes: /metrics, /healthz (the controller loops' heartbeats), /readyz (leadership
/// known, and the leader's caches synced).
pub fn router(exposition: Exposition, probes: Probes) -> Router {
    let (live, ready) = (probes.clone(), probes);
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route(
            "/healthz",
            get(move || async move { probe_answer(live.health.healthz()) }),
        )
        .route(
            "/readyz",
            get(move || async move { probe_answer(ready.health.readyz(&ready.leadership)) }),
        )
        .with_state(exposition)
}

/// Serve /metrics, /healthz and /readyz on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, exposition: Exposition, probes: Probes) -> anyhow::Result<()> {
    let app = router(exposition, probes);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_in_the_text_format() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        m.reconcile("eas");
        m.reconcile("eas");
        m.failure("eas", "Throttling.User");
        m.mutation("eas", "UpdateServiceRollout");
        m.observe("eas", Duration::from_millis(20));
        m.undecodable("eas", "team-a", "broken", true);
        m.undecodable("eas", "team-a", "fixed", true);
        m.undecodable("eas", "team-a", "fixed", false);
        let text = render(&registry).expect("encodes");
        assert!(
            text.contains(
                "alicloud_rollouts_undecodable_objects{kind=\"eas\",namespace=\"team-a\",name=\"broken\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("name=\"fixed\""), "{text}");
        assert!(
            text.contains("alicloud_rollouts_reconciles_total{kind=\"eas\"} 2"),
            "{text}"
        );
        assert!(text.contains("reason=\"Throttling.User\""), "{text}");
        assert!(text.contains("action=\"UpdateServiceRollout\""), "{text}");
        assert!(
            text.contains("alicloud_rollouts_reconcile_duration_seconds_count{kind=\"eas\"} 1"),
            "{text}"
        );
    }
}
