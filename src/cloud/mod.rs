//! The cloud side: typed EAS and ESA calls behind one trait.
//!
//! [`CloudApi`] is the seam between the controller and the cloud. The real
//! implementation signs requests (V3), retries transient failures with jittered backoff,
//! shares a rate limiter, and traces and counts every call.
//!
//! Wiring it up in the operator (environment read once, at start-up):
//!
//! ```no_run
//! # async fn wire() -> Result<(), alicloud_rollouts::cloud::CloudError> {
//! use alicloud_rollouts::cloud::{ClientConfig, CloudApi, CloudClient, Metrics};
//! let metrics = Metrics::new(); // serve metrics.encode() on /metrics
//! let client = CloudClient::from_environment(ClientConfig::default(), metrics)?;
//! // Per resource, with the credentials of its Secret:
//! // let api = client.with_credentials(Credentials::from_secret_data(&secret.data)?);
//! let svc = client.describe_service("cn-shanghai", "llm-chat").await?;
//! # let _ = svc; Ok(()) }
//! ```
//!
//! Retries cover transient and throttled errors of every call, mutations included: a
//! mutation whose answer was lost may have taken effect, so callers treat
//! "already exists"/"nothing to change" answers after a retry as success where it matters.

pub mod client;
pub mod config;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod metrics;
pub mod model;
pub mod provider;
pub mod ratelimit;
pub mod retry;
pub mod sign;

use std::sync::Arc;

use async_trait::async_trait;

pub use client::CloudClient;
pub use config::ClientConfig;
pub use credentials::Credentials;
pub use endpoint::Product;
pub use error::{CloudError, ErrorKind};
pub use metrics::Metrics;
use model::*;
pub use provider::{CredentialsEnv, CredentialsProvider, RrsaProvider, StaticProvider};

pub type CloudResult<T> = Result<T, CloudError>;

/// Every EAS and ESA call the operator makes.
///
/// EAS calls take the region (it is both the endpoint's region and the `ClusterId` in the
/// path). ESA calls take the ESA endpoint region (`cn-hangzhou` or `ap-southeast-1`).
#[async_trait]
pub trait CloudApi: Send + Sync {
    /// The same client (sharing connections, rate limiter and metrics) acting with other
    /// credentials, e.g. those from a resource's Secret.
    fn with_credentials(&self, credentials: Credentials) -> Arc<dyn CloudApi>;

    // ------------------------------------------------------------ EAS
    async fn create_service_rollout(
        &self,
        region: &str,
        service: &str,
        request: &ServiceRolloutRequest,
    ) -> CloudResult<Ack>;
    async fn update_service_rollout(
        &self,
        region: &str,
        service: &str,
        request: &ServiceRolloutRequest,
    ) -> CloudResult<Ack>;
    async fn describe_service_rollout(
        &self,
        region: &str,
        service: &str,
    ) -> CloudResult<DescribeServiceRolloutResponse>;
    async fn delete_service_rollout(&self, region: &str, service: &str) -> CloudResult<Ack>;
    async fn describe_service(&self, region: &str, service: &str) -> CloudResult<Service>;
    async fn update_service(
        &self,
        region: &str,
        service: &str,
        config: &serde_json::Value,
        update_type: UpdateType,
    ) -> CloudResult<Ack>;
    async fn list_service_versions(
        &self,
        region: &str,
        service: &str,
        page_number: Option<i64>,
        page_size: Option<i64>,
    ) -> CloudResult<ListServiceVersionsResponse>;
    async fn update_service_version(
        &self,
        region: &str,
        service: &str,
        version: i64,
    ) -> CloudResult<Ack>;

    // ------------------------------------------------------------ ESA
    async fn create_routine_code_deployment(
        &self,
        region: &str,
        request: &CreateRoutineCodeDeploymentRequest,
    ) -> CloudResult<CreateRoutineCodeDeploymentResponse>;
    async fn get_routine(&self, region: &str, name: &str) -> CloudResult<GetRoutineResponse>;
    async fn list_routine_code_versions(
        &self,
        region: &str,
        request: &ListRoutineCodeVersionsRequest,
    ) -> CloudResult<ListRoutineCodeVersionsResponse>;
    async fn publish_edge_container_app_version(
        &self,
        region: &str,
        request: &PublishEdgeContainerAppVersionRequest,
    ) -> CloudResult<Ack>;
    async fn get_edge_container_app_status(
        &self,
        region: &str,
        app_id: &str,
        publish_env: &str,
    ) -> CloudResult<GetEdgeContainerAppStatusResponse>;
    async fn rollback_edge_container_app_version(
        &self,
        region: &str,
        request: &RollbackEdgeContainerAppVersionRequest,
    ) -> CloudResult<Ack>;
    async fn list_edge_container_app_versions(
        &self,
        region: &str,
        request: &ListEdgeContainerAppVersionsRequest,
    ) -> CloudResult<ListEdgeContainerAppVersionsResponse>;
}
