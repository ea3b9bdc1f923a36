//! The real [`CloudApi`]: sends each call built by [`super::request`] over HTTP, signed
//! with the caller's credentials, retries transient failures, rate-limits per API, and
//! traces and counts every call. Answers are read by [`super::response`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::header::HeaderMap;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::api::CloudApi;
use super::config::ClientConfig;
use super::credentials::Credentials;
use super::endpoint::{Endpoint, Product, default_endpoint};
use super::error::{CloudError, CloudResult, ErrorKind};
use super::metrics::{CallLabels, Metrics};
use super::model::*;
use super::provider::{CredentialsEnv, CredentialsProvider, StaticProvider};
use super::ratelimit::RateLimits;
use super::request::{ApiRequest, acs_date, new_nonce, requests, sign_request};
use super::response::{decode, parse_error_response, read_body, success_request_id};
use super::retry::{RetryPolicy, delay_after};

struct Shared {
    http: reqwest::Client,
    config: ClientConfig,
    eas_override: Option<Endpoint>,
    esa_override: Option<Endpoint>,
    sts_override: Option<Endpoint>,
    cms_override: Option<Endpoint>,
    /// Access key id -> account, from GetCallerIdentity (bounded: see `caller_account`).
    accounts: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Held while an account is looked up, so that the reconciles that all start at once
    /// after a restart send one GetCallerIdentity per key, not one each.
    account_lookup: tokio::sync::Mutex<()>,
    limits: RateLimits,
    metrics: Metrics,
}

/// The real [`CloudApi`].
#[derive(Clone)]
pub struct CloudClient {
    shared: Arc<Shared>,
    credentials: Arc<dyn CredentialsProvider>,
}

impl std::fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudClient")
            .field("config", &self.shared.config)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// The HTTP client the cloud client and STS exchange share.
pub fn http_client() -> CloudResult<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("alicloud-rollouts/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| CloudError::Transport(format!("cannot build the HTTP client: {e}")))
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: bytes::Bytes,
}

/// Why an attempt got no answer, and whether the request may have reached the cloud.
enum Failed {
    /// Nothing was sent (no credentials, the connection could not be made).
    NotSent(CloudError),
    /// The request may have been received (and applied): a timeout, a connection that
    /// dropped, a body that could not be read.
    MaybeApplied(CloudError),
}

/// Classify an error of `send()`: a failed connection sent nothing; anything later (a
/// timeout, a reset, a connection closed before the answer) may follow a received request.
fn send_failure(e: reqwest::Error) -> Failed {
    let connect = e.is_connect();
    // Without the URL: it may carry parameters; the chain names the cause.
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    let err = CloudError::Transport(msg);
    if connect {
        Failed::NotSent(err)
    } else {
        Failed::MaybeApplied(err)
    }
}

impl CloudClient {
    /// A client with its own metrics registry.
    pub fn new(
        config: ClientConfig,
        credentials: Arc<dyn CredentialsProvider>,
    ) -> CloudResult<Self> {
        Self::with_metrics(config, credentials, Metrics::new())
    }

    /// The operator's client: credentials from the environment (read once, here: static
    /// keys, else RRSA, else none so that every call needs `with_credentials`).
    pub fn from_environment(config: ClientConfig, metrics: Metrics) -> CloudResult<Self> {
        let env = CredentialsEnv::from_env()?;
        let provider = env.provider(
            http_client()?,
            config.sts_endpoint.as_deref(),
            config.call_timeout,
        )?;
        Self::with_metrics(config, provider, metrics)
    }

    /// A client counting into `metrics`.
    pub fn with_metrics(
        config: ClientConfig,
        credentials: Arc<dyn CredentialsProvider>,
        metrics: Metrics,
    ) -> CloudResult<Self> {
        let parse = |v: &Option<String>| v.as_deref().map(Endpoint::parse).transpose();
        let eas_override = parse(&config.eas_endpoint)?;
        let esa_override = parse(&config.esa_endpoint)?;
        let sts_override = parse(&config.sts_endpoint)?;
        let cms_override = parse(&config.cms_endpoint)?;
        Ok(CloudClient {
            shared: Arc::new(Shared {
                http: http_client()?,
                limits: RateLimits::new(config.rate_limit_per_api, config.rate_limit_burst),
                config,
                eas_override,
                esa_override,
                sts_override,
                cms_override,
                accounts: Default::default(),
                account_lookup: Default::default(),
                metrics,
            }),
            credentials,
        })
    }

    /// The metrics of every clone of this client.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The per-API rate limiter shared by every clone.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.shared.limits
    }

    /// The same client with fixed credentials.
    pub fn with_static_credentials(&self, credentials: Credentials) -> CloudClient {
        CloudClient {
            shared: self.shared.clone(),
            credentials: Arc::new(StaticProvider(credentials)),
        }
    }

    /// Where `product` is reached in `region`.
    pub fn endpoint(&self, product: Product, region: &str) -> CloudResult<Endpoint> {
        let o = match product {
            Product::Eas => &self.shared.eas_override,
            Product::Esa => &self.shared.esa_override,
            Product::Sts => &self.shared.sts_override,
            Product::Cms => &self.shared.cms_override,
        };
        match o {
            Some(e) => Ok(e.clone()),
            None => default_endpoint(product, region, self.shared.config.vpc_endpoints),
        }
    }

    fn policy(&self) -> RetryPolicy {
        let c = &self.shared.config;
        RetryPolicy {
            max_retries: c.max_retries,
            base: c.retry_base,
            max: c.retry_max,
        }
    }

    /// One HTTP exchange, bounded by `timeout` as a whole: connecting, sending, the
    /// headers and the body (a body that stalls after the headers times out too), and by
    /// [`ClientConfig::max_response_bytes`] in memory.
    async fn attempt(
        &self,
        req: &ApiRequest,
        endpoint: &Endpoint,
        timeout: Duration,
    ) -> Result<Answer, Failed> {
        let credentials = self
            .credentials
            .credentials()
            .await
            .map_err(Failed::NotSent)?;
        let signed = sign_request(
            req,
            endpoint,
            &credentials,
            &acs_date(jiff::Timestamp::now()),
            &new_nonce(),
        );
        let mut builder = self.shared.http.request(signed.method, &signed.url);
        for (k, v) in &signed.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if !signed.body.is_empty() {
            builder = builder.body(signed.body);
        }
        let limit = self.shared.config.max_response_bytes;
        let exchange = async {
            let response = builder.send().await.map_err(send_failure)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            // From here on the cloud has the request: any failure leaves its outcome unknown.
            let body = read_body(response, limit)
                .await
                .map_err(Failed::MaybeApplied)?;
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Failed::MaybeApplied(CloudError::Timeout(timeout))),
        }
    }

    /// Send `req` with rate limiting and retries; decode the answer as `T`.
    pub async fn call<T: DeserializeOwned>(&self, region: &str, req: ApiRequest) -> CloudResult<T> {
        let span = tracing::info_span!(
            "cloud_call",
            product = req.product.as_str(),
            action = req.action,
            region,
            request_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            attempt = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let (result, attempts) = self
            .call_with_retries::<T>(region, &req)
            .instrument(span.clone())
            .await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(_) => "success".to_string(),
            Err(e) => e.code().to_string(),
        };
        let m = &self.shared.metrics;
        let product = req.product.as_str();
        m.calls
            .get_or_create(&CallLabels {
                product: product.into(),
                action: req.action.into(),
                outcome: outcome.clone(),
            })
            .inc();
        m.latency
            .get_or_create(&Metrics::api(product, req.action))
            .observe(elapsed.as_secs_f64());
        span.record("outcome", outcome.as_str());
        span.record("attempt", attempts);
        span.record("latency_ms", elapsed.as_millis() as u64);
        match &result {
            Ok(_) => tracing::debug!(parent: &span, "cloud call succeeded"),
            Err(e) => {
                if let Some(id) = e.request_id() {
                    span.record("request_id", id);
                }
                tracing::info!(parent: &span, error = %e, kind = ?e.kind(), "cloud call failed")
            }
        }
        result.map(|(value, _)| value)
    }

    async fn call_with_retries<T: DeserializeOwned>(
        &self,
        region: &str,
        req: &ApiRequest,
    ) -> (CloudResult<(T, Option<String>)>, u32) {
        let config = &self.shared.config;
        let endpoint = match self.endpoint(req.product, region) {
            Ok(e) => e,
            Err(e) => return (Err(e), 0),
        };
        // The deadline runs from the moment the call is sent: waits on the rate limiter
        // push it back (see `RateLimits::acquire`).
        let mut deadline = Instant::now() + config.call_deadline;
        let mut backoff = self.policy().backoff();
        let labels = Metrics::api(req.product.as_str(), req.action);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            deadline += self.shared.limits.acquire(req.product, req.action).await;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (Err(CloudError::Timeout(config.call_deadline)), attempt);
            }
            let timeout = config.call_timeout.min(left);
            // A mutation that may have reached the cloud is never sent again from here: the
            // caller reads the cloud and decides (one mutation per intent).
            let unknown =
                |err: CloudError| (Err(CloudError::OutcomeUnknown(Box::new(err))), attempt);
            let err = match self.attempt(req, &endpoint, timeout).await {
                Ok(answer) if answer.status < 300 => {
                    let request_id = success_request_id(&answer.headers, &answer.body);
                    if let Some(id) = &request_id {
                        tracing::Span::current().record("request_id", id.as_str());
                    }
                    // A garbled success of a mutation is not sent again: it took effect (or
                    // may have); a read is.
                    match decode::<T>(&answer.body) {
                        Ok(v) => return (Ok((v, request_id)), attempt),
                        Err(e) if req.is_mutation() => return unknown(e),
                        Err(e) => e,
                    }
                }
                Ok(answer) => {
                    let err = parse_error_response(answer.status, &answer.headers, &answer.body);
                    if req.is_mutation() && answer.status >= 500 {
                        return unknown(err);
                    }
                    err
                }
                Err(Failed::MaybeApplied(err)) if req.is_mutation() => return unknown(err),
                Err(Failed::MaybeApplied(err) | Failed::NotSent(err)) => err,
            };
            if err.kind() == ErrorKind::Throttled {
                self.shared.metrics.throttled.get_or_create(&labels).inc();
            }
            let Some(next) = backoff.next() else {
                return (Err(err), attempt);
            };
            let Some(delay) = delay_after(&err, next) else {
                return (Err(err), attempt);
            };
            if Instant::now() + delay >= deadline {
                return (Err(err), attempt);
            }
            tracing::debug!(error = %err, attempt, delay_ms = delay.as_millis() as u64, "retrying cloud call");
            self.shared.metrics.retries.get_or_create(&labels).inc();
            tokio::time::sleep(delay).await;
        }
    }
}

#[async_trait]
impl CloudApi for CloudClient {
    fn with_credentials(&self, credentials: Credentials) -> Arc<dyn CloudApi> {
        Arc::new(self.with_static_credentials(credentials))
    }

    async fn caller_account(&self) -> CloudResult<String> {
        /// More distinct keys than this (RRSA rotates its key id) start the memory afresh.
        const REMEMBERED: usize = 1024;
        let key = self.credentials.credentials().await?.access_key_id;
        let known = |s: &Shared| {
            s.accounts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned()
        };
        if let Some(account) = known(&self.shared) {
            return Ok(account);
        }
        // Single flight: whoever waited here finds the answer of the one that asked.
        let _lookup = self.shared.account_lookup.lock().await;
        if let Some(account) = known(&self.shared) {
            return Ok(account);
        }
        let identity: CallerIdentity = self.call("", requests::get_caller_identity()?).await?;
        let account = identity.account_id.trim().to_string();
        if account.is_empty() {
            return Err(CloudError::Decode(
                "GetCallerIdentity answered no AccountId".into(),
            ));
        }
        let mut accounts = self
            .shared
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if accounts.len() >= REMEMBERED {
            accounts.clear();
        }
        accounts.insert(key, account.clone());
        Ok(account)
    }

    async fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
        duration_seconds: u32,
    ) -> CloudResult<AssumeRoleResponse> {
        self.call(
            "",
            requests::assume_role(role_arn, session_name, duration_seconds)?,
        )
        .await
    }

    async fn create_service_rollout(
        &self,
        region: &str,
        service: &str,
        request: &ServiceRolloutRequest,
    ) -> CloudResult<Ack> {
        self.call(
            region,
            requests::create_service_rollout(region, service, request)?,
        )
        .await
    }

    async fn update_service_rollout(
        &self,
        region: &str,
        service: &str,
        request: &ServiceRolloutRequest,
    ) -> CloudResult<Ack> {
        self.call(
            region,
            requests::update_service_rollout(region, service, request)?,
        )
        .await
    }

    async fn describe_service_rollout(
        &self,
        region: &str,
        service: &str,
    ) -> CloudResult<DescribeServiceRolloutResponse> {
        self.call(region, requests::describe_service_rollout(region, service)?)
            .await
    }

    async fn delete_service_rollout(&self, region: &str, service: &str) -> CloudResult<Ack> {
        self.call(region, requests::delete_service_rollout(region, service)?)
            .await
    }

    async fn describe_service(&self, region: &str, service: &str) -> CloudResult<Service> {
        self.call(region, requests::describe_service(region, service)?)
            .await
    }

    async fn update_service(
        &self,
        region: &str,
        service: &str,
        config: &serde_json::Value,
        update_type: UpdateType,
    ) -> CloudResult<Ack> {
        self.call(
            region,
            requests::update_service(region, service, config, update_type)?,
        )
        .await
    }

    async fn update_service_label(
        &self,
        region: &str,
        service: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> CloudResult<Ack> {
        self.call(
            region,
            requests::update_service_label(region, service, labels)?,
        )
        .await
    }

    async fn delete_service_label(
        &self,
        region: &str,
        service: &str,
        keys: &[String],
    ) -> CloudResult<Ack> {
        self.call(
            region,
            requests::delete_service_label(region, service, keys)?,
        )
        .await
    }

    async fn create_routine_code_deployment(
        &self,
        region: &str,
        request: &CreateRoutineCodeDeploymentRequest,
    ) -> CloudResult<CreateRoutineCodeDeploymentResponse> {
        self.call(region, requests::create_routine_code_deployment(request)?)
            .await
    }

    async fn get_routine(&self, region: &str, name: &str) -> CloudResult<GetRoutineResponse> {
        self.call(region, requests::get_routine(name)?).await
    }

    async fn publish_edge_container_app_version(
        &self,
        region: &str,
        request: &PublishEdgeContainerAppVersionRequest,
    ) -> CloudResult<Ack> {
        self.call(
            region,
            requests::publish_edge_container_app_version(request)?,
        )
        .await
    }

    async fn get_edge_container_app_status(
        &self,
        region: &str,
        app_id: &str,
        publish_env: &str,
    ) -> CloudResult<GetEdgeContainerAppStatusResponse> {
        self.call(
            region,
            requests::get_edge_container_app_status(app_id, publish_env)?,
        )
        .await
    }

    async fn rollback_edge_container_app_version(
        &self,
        region: &str,
        request: &RollbackEdgeContainerAppVersionRequest,
    ) -> CloudResult<Ack> {
        self.call(
            region,
            requests::rollback_edge_container_app_version(request)?,
        )
        .await
    }

    async fn describe_metric_last(
        &self,
        region: &str,
        request: &DescribeMetricRequest,
    ) -> CloudResult<DescribeMetricResponse> {
        self.call(
            region,
            requests::describe_metric("DescribeMetricLast", request)?,
        )
        .await
    }

    async fn describe_metric_list(
        &self,
        region: &str,
        request: &DescribeMetricRequest,
    ) -> CloudResult<DescribeMetricResponse> {
        self.call(
            region,
            requests::describe_metric("DescribeMetricList", request)?,
        )
        .await
    }
}

/// Calls the operator does not make (tools, tests and the simulator comparison use them):
/// plain methods, outside the [`CloudApi`] seam.
impl CloudClient {
    /// ListServiceVersions: the versions of an EAS service, newest first.
    pub async fn list_service_versions(
        &self,
        region: &str,
        service: &str,
        page_number: Option<i64>,
        page_size: Option<i64>,
    ) -> CloudResult<ListServiceVersionsResponse> {
        self.call(
            region,
            requests::list_service_versions(region, service, page_number, page_size)?,
        )
        .await
    }

    /// UpdateServiceVersion: move an EAS service to one of its existing versions.
    pub async fn update_service_version(
        &self,
        region: &str,
        service: &str,
        version: i64,
    ) -> CloudResult<Ack> {
        self.call(
            region,
            requests::update_service_version(region, service, version)?,
        )
        .await
    }

    /// ListRoutineCodeVersions: the code versions of an ESA routine.
    pub async fn list_routine_code_versions(
        &self,
        region: &str,
        request: &ListRoutineCodeVersionsRequest,
    ) -> CloudResult<ListRoutineCodeVersionsResponse> {
        self.call(region, requests::list_routine_code_versions(request)?)
            .await
    }

    /// ListEdgeContainerAppVersions: the versions of an ESA edge container app.
    pub async fn list_edge_container_app_versions(
        &self,
        region: &str,
        request: &ListEdgeContainerAppVersionsRequest,
    ) -> CloudResult<ListEdgeContainerAppVersionsResponse> {
        self.call(region, requests::list_edge_container_app_versions(request)?)
            .await
    }
}
