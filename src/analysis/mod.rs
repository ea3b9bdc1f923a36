//! The analysis engine: takes the measurements of an [`AnalysisTemplate`] that are due,
//! judges them with CEL and folds them into an [`AnalysisStatus`].
//!
//! The caller (a rollout's reconciler) calls [`advance`] on each reconcile while the
//! analysis runs and requeues at [`next_due`]. The engine never panics and never lets an
//! error pass: a provider that cannot be reached counts Error measurements, and too many in
//! a row make the metric Inconclusive.
//!
//! [`AnalysisTemplate`]: crate::crd::analysis::AnalysisTemplate

pub mod cloudmonitor;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::cloud::api::CloudApi;
use crate::crd::analysis::{AnalysisPhase, AnalysisRef, AnalysisStatus};

/// What the engine needs from the operator; cheap to clone.
#[derive(Clone)]
pub struct AnalysisCx {
    /// Reads templates and Secrets (GET, no watch on Secrets).
    pub kube: kube::Client,
    /// Prometheus and web calls (rustls; every call also has the metric's own timeout).
    pub http: reqwest::Client,
    /// Where a ClusterAnalysisTemplate's Secrets are read.
    pub operator_namespace: String,
}

/// Built-in arguments the caller fills from the rollout, e.g. "service", "region",
/// "routine", "app", "env", "stableVersion", "canaryVersion", "version", "namespace", "name".
pub type Builtins = BTreeMap<String, String>;

/// Default timeout of one provider call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest timeout a metric may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest response body read from a provider; a longer one is an Error measurement.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a provider gave no value. The message may be shown to users (it is masked for
/// Secret-backed arguments by the engine before it reaches status or Events).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Any other failure: connection refused, non-2xx, a body that is not the expected JSON.
    #[error("{0}")]
    Failed(String),
}

/// One metric's source, with its arguments already substituted.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Take one measurement: a number, a list or a map (the CEL `result`).
    async fn measure(&self) -> Result<serde_json::Value, ProviderError>;
    /// The query as shown in status (the engine masks Secret values in it).
    fn query(&self) -> String;
}

/// Take the measurements that are due at `now` and return the new status. Pure in its
/// inputs except for the provider calls; never panics; an unreachable provider counts an
/// Error measurement (consecutiveErrorLimit reached -> phase Inconclusive, never Successful).
pub async fn advance(
    _cx: &AnalysisCx,
    _namespace: &str,
    aref: &AnalysisRef,
    _builtins: &Builtins,
    _cloud: &Arc<dyn CloudApi>,
    prior: Option<&AnalysisStatus>,
    now: jiff::Timestamp,
) -> AnalysisStatus {
    let kind = if aref.template_ref.cluster_scope {
        "ClusterAnalysisTemplate"
    } else {
        "AnalysisTemplate"
    };
    AnalysisStatus {
        template: format!("{kind}/{}", aref.template_ref.name),
        phase: AnalysisPhase::Error,
        message: Some("analysis is not implemented yet".to_string()),
        started_at: prior.map_or_else(|| now.to_string(), |p| p.started_at.clone()),
        step: prior.and_then(|p| p.step),
        version: prior.and_then(|p| p.version.clone()),
        metrics: Vec::new(),
    }
}

/// When the caller should look again (the earliest `next_at`), None when finished.
pub fn next_due(status: &AnalysisStatus) -> Option<jiff::Timestamp> {
    if status.phase.is_finished() {
        return None;
    }
    status
        .metrics
        .iter()
        .filter_map(|m| m.next_at.as_deref())
        .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
        .min()
}
