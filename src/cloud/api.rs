//! [`CloudApi`]: the seam between the controller and the cloud.
//!
//! It holds exactly the calls the operator makes. [`super::client::CloudClient`] is the
//! real implementation (it also has plain methods for the calls the operator does not
//! make); [`super::fake::FakeCloud`] is the in-memory test double.

use std::sync::Arc;

use async_trait::async_trait;

use super::credentials::Credentials;
use super::error::CloudResult;
use super::model::*;

/// Every EAS, ESA and CloudMonitor call the operator makes, and nothing else.
///
/// EAS calls take the region (it is both the endpoint's region and the `ClusterId` in the
/// path). ESA calls take the ESA endpoint region (`cn-hangzhou` or `ap-southeast-1`).
#[async_trait]
pub trait CloudApi: Send + Sync {
    /// The same client (sharing connections, rate limiter and metrics) acting with other
    /// credentials, e.g. those from a resource's Secret.
    fn with_credentials(&self, credentials: Credentials) -> Arc<dyn CloudApi>;

    // ------------------------------------------------------------ STS
    /// The account these credentials belong to (STS GetCallerIdentity's `AccountId`),
    /// looked up once per access key and then remembered: a resource's status records it,
    /// and credentials that come to belong to another account stop every change.
    async fn caller_account(&self) -> CloudResult<String>;

    /// STS AssumeRole with these credentials: temporary credentials of `role_arn`.
    async fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
        duration_seconds: u32,
    ) -> CloudResult<AssumeRoleResponse>;

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

    /// UpdateServiceLabel: add or overwrite labels; starts no new version (the ownership
    /// marker, see `controller::marker`).
    async fn update_service_label(
        &self,
        region: &str,
        service: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> CloudResult<Ack>;
    /// DeleteServiceLabel: remove the labels named.
    async fn delete_service_label(
        &self,
        region: &str,
        service: &str,
        keys: &[String],
    ) -> CloudResult<Ack>;

    // ------------------------------------------------------------ ESA
    async fn create_routine_code_deployment(
        &self,
        region: &str,
        request: &CreateRoutineCodeDeploymentRequest,
    ) -> CloudResult<CreateRoutineCodeDeploymentResponse>;
    async fn get_routine(&self, region: &str, name: &str) -> CloudResult<GetRoutineResponse>;
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

    // ------------------------------------------------------------ CloudMonitor
    /// DescribeMetricLast: the latest datapoint of a metric per resource (analysis with
    /// the `cloudMonitor` provider). `region` picks `metrics.{region}.aliyuncs.com`.
    async fn describe_metric_last(
        &self,
        region: &str,
        request: &DescribeMetricRequest,
    ) -> CloudResult<DescribeMetricResponse>;
    /// DescribeMetricList: the datapoints of a metric over a time range.
    async fn describe_metric_list(
        &self,
        region: &str,
        request: &DescribeMetricRequest,
    ) -> CloudResult<DescribeMetricResponse>;
}
