//! The real EAS and ESA client: builds, signs (V3) and sends each call, retries transient
//! failures, rate-limits per API, and traces and counts every call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::Method;
use http::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::config::ClientConfig;
use super::endpoint::{Endpoint, Product, default_endpoint};
use super::metrics::{CallLabels, Metrics};
use super::model::*;
use super::provider::{CredentialsProvider, StaticProvider};
use super::ratelimit::RateLimits;
use super::retry::{RetryPolicy, delay_after};
use super::sign;
use super::{CloudApi, CloudError, CloudResult, Credentials};

pub const CONTENT_TYPE_JSON: &str = "application/json; charset=utf-8";
pub const CONTENT_TYPE_FORM: &str = "application/x-www-form-urlencoded";

/// The body of a request, already serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Empty,
    Json(Vec<u8>),
    Form(Vec<u8>),
}

impl Body {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Empty => &[],
            Body::Json(b) | Body::Form(b) => b,
        }
    }

    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Body::Empty => None,
            Body::Json(_) => Some(CONTENT_TYPE_JSON),
            Body::Form(_) => Some(CONTENT_TYPE_FORM),
        }
    }
}

/// One API call before signing: what the typed methods build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub product: Product,
    pub action: &'static str,
    pub method: Method,
    /// Percent-encoded path (`/` for RPC).
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    pub body: Body,
}

/// A request ready to send: every header, the signature included.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `yyyy-MM-ddTHH:mm:ssZ` in UTC, the `x-acs-date` format.
pub fn acs_date(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A fresh `x-acs-signature-nonce`.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Add the `x-acs-*` headers and the V3 `Authorization` to `req` for `endpoint`.
pub fn sign_request(
    req: &ApiRequest,
    endpoint: &Endpoint,
    credentials: &Credentials,
    date: &str,
    nonce: &str,
) -> SignedRequest {
    let body = req.body.bytes().to_vec();
    let hashed = sign::sha256_hex(&body);
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), endpoint.authority.clone()),
        ("x-acs-action".into(), req.action.into()),
        ("x-acs-version".into(), req.product.api_version().into()),
        ("x-acs-date".into(), date.into()),
        ("x-acs-signature-nonce".into(), nonce.into()),
        ("x-acs-content-sha256".into(), hashed.clone()),
    ];
    if let Some(ct) = req.body.content_type() {
        headers.push(("content-type".into(), ct.into()));
    }
    if let Some(token) = &credentials.security_token {
        headers.push(("x-acs-security-token".into(), token.clone()));
    }
    let signed = sign::default_signed_names(&headers);
    let authorization = sign::authorization(
        &credentials.access_key_id,
        &credentials.access_key_secret,
        &sign::CanonicalInput {
            method: req.method.as_str(),
            canonical_uri: &req.path,
            query: &req.query,
            headers: &headers,
            signed_headers: &signed,
            hashed_payload: &hashed,
        },
    );
    headers.push(("authorization".into(), authorization));
    headers.push(("accept".into(), "application/json".into()));
    let query = sign::canonical_query(&req.query);
    let url = if query.is_empty() {
        format!("{}{}", endpoint.base_url(), req.path)
    } else {
        format!("{}{}?{}", endpoint.base_url(), req.path, query)
    };
    SignedRequest {
        method: req.method.clone(),
        url,
        headers,
        body,
    }
}

#[derive(Deserialize, Default)]
struct WireError {
    #[serde(default, rename = "Code", alias = "code")]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "Message", alias = "message")]
    message: Option<String>,
    #[serde(default, rename = "RequestId", alias = "requestId")]
    request_id: Option<String>,
}

/// `x-acs-retry-after`, which the official SDK reads as an integer number of milliseconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-acs-retry-after")?.to_str().ok()?.trim();
    let ms: u64 = v.parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

fn header_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-acs-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Turn an error answer (status >= 300) into a [`CloudError::Api`], whatever its body.
pub fn parse_error_response(status: u16, headers: &HeaderMap, body: &[u8]) -> CloudError {
    let parsed: Option<WireError> = serde_json::from_slice(body).ok();
    let (code, message, request_id) = match parsed {
        Some(w) => {
            let code = match w.code {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            (code, w.message, w.request_id)
        }
        None => (None, None, None),
    };
    let code = code.unwrap_or_else(|| match status {
        429 => "TooManyRequests".to_string(),
        s if s >= 500 => "ServiceUnavailable".to_string(),
        s => format!("HTTP{s}"),
    });
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(200).collect();
        if text.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            format!("HTTP {status}: {text}")
        }
    });
    CloudError::Api {
        status,
        code,
        message,
        request_id: request_id
            .filter(|r| !r.is_empty())
            .or_else(|| header_request_id(headers)),
        retry_after: retry_after(headers),
    }
}

// ---------------------------------------------------------------- request builders

/// Builders of every call, pure so tests can check each request exactly.
pub mod requests {
    use super::*;
    use sign::percent_encode as enc;

    fn eas(
        action: &'static str,
        method: Method,
        region: &str,
        service: &str,
        suffix: &str,
    ) -> CloudResult<ApiRequest> {
        if service.is_empty() {
            return Err(CloudError::InvalidRequest("empty EAS service name".into()));
        }
        super::super::endpoint::validate_region(region)?;
        Ok(ApiRequest {
            product: Product::Eas,
            action,
            method,
            path: format!("/api/v2/services/{}/{}{suffix}", enc(region), enc(service)),
            query: Vec::new(),
            body: Body::Empty,
        })
    }

    fn json(value: &impl serde::Serialize) -> CloudResult<Body> {
        serde_json::to_vec(value)
            .map(Body::Json)
            .map_err(|e| CloudError::InvalidRequest(format!("cannot encode body: {e}")))
    }

    fn check_rollout(r: &ServiceRolloutRequest) -> CloudResult<()> {
        if r.partition.is_some() && r.batch.is_some() {
            return Err(CloudError::InvalidRequest(
                "a rollout has Partition or Batch, not both".into(),
            ));
        }
        Ok(())
    }

    pub fn create_service_rollout(
        region: &str,
        service: &str,
        r: &ServiceRolloutRequest,
    ) -> CloudResult<ApiRequest> {
        check_rollout(r)?;
        let mut req = eas(
            "CreateServiceRollout",
            Method::POST,
            region,
            service,
            "/rollout",
        )?;
        req.body = json(r)?;
        Ok(req)
    }

    pub fn update_service_rollout(
        region: &str,
        service: &str,
        r: &ServiceRolloutRequest,
    ) -> CloudResult<ApiRequest> {
        check_rollout(r)?;
        if r.partition.is_none() && r.batch.is_none() && r.paused.is_none() {
            return Err(CloudError::InvalidRequest(
                "UpdateServiceRollout needs Partition, Batch or Paused".into(),
            ));
        }
        let mut req = eas(
            "UpdateServiceRollout",
            Method::PUT,
            region,
            service,
            "/rollout",
        )?;
        req.body = json(r)?;
        Ok(req)
    }

    pub fn describe_service_rollout(region: &str, service: &str) -> CloudResult<ApiRequest> {
        eas(
            "DescribeServiceRollout",
            Method::GET,
            region,
            service,
            "/rollout",
        )
    }

    pub fn delete_service_rollout(region: &str, service: &str) -> CloudResult<ApiRequest> {
        eas(
            "DeleteServiceRollout",
            Method::DELETE,
            region,
            service,
            "/rollout",
        )
    }

    pub fn describe_service(region: &str, service: &str) -> CloudResult<ApiRequest> {
        eas("DescribeService", Method::GET, region, service, "")
    }

    pub fn update_service(
        region: &str,
        service: &str,
        config: &serde_json::Value,
        update_type: UpdateType,
    ) -> CloudResult<ApiRequest> {
        if !config.is_object() {
            return Err(CloudError::InvalidRequest(
                "the service config must be a JSON object".into(),
            ));
        }
        let mut req = eas("UpdateService", Method::PUT, region, service, "")?;
        req.query
            .push(("UpdateType".into(), update_type.as_str().into()));
        req.body = json(config)?;
        Ok(req)
    }

    pub fn list_service_versions(
        region: &str,
        service: &str,
        page_number: Option<i64>,
        page_size: Option<i64>,
    ) -> CloudResult<ApiRequest> {
        let mut req = eas(
            "ListServiceVersions",
            Method::GET,
            region,
            service,
            "/versions",
        )?;
        if let Some(n) = page_number {
            req.query.push(("PageNumber".into(), n.to_string()));
        }
        if let Some(n) = page_size {
            req.query.push(("PageSize".into(), n.to_string()));
        }
        Ok(req)
    }

    pub fn update_service_version(
        region: &str,
        service: &str,
        version: i64,
    ) -> CloudResult<ApiRequest> {
        if version <= 0 {
            return Err(CloudError::InvalidRequest(format!(
                "service version must be positive, got {version}"
            )));
        }
        let mut req = eas(
            "UpdateServiceVersion",
            Method::PUT,
            region,
            service,
            "/version",
        )?;
        req.body = json(&serde_json::json!({ "Version": version }))?;
        Ok(req)
    }

    /// RPC parameters: query and form body, in the order given.
    #[derive(Default)]
    struct Rpc {
        query: Vec<(String, String)>,
        form: Vec<(String, String)>,
    }

    impl Rpc {
        fn q(&mut self, k: &str, v: impl ToString) -> &mut Self {
            self.query.push((k.into(), v.to_string()));
            self
        }
        fn f(&mut self, k: &str, v: impl ToString) -> &mut Self {
            self.form.push((k.into(), v.to_string()));
            self
        }
        fn build(self, action: &'static str, method: Method) -> CloudResult<ApiRequest> {
            let body = if self.form.is_empty() {
                Body::Empty
            } else {
                Body::Form(
                    serde_urlencoded::to_string(&self.form)
                        .map_err(|e| CloudError::InvalidRequest(e.to_string()))?
                        .into_bytes(),
                )
            };
            Ok(ApiRequest {
                product: Product::Esa,
                action,
                method,
                path: "/".into(),
                query: self.query,
                body,
            })
        }
    }

    /// Booleans as the official Python SDK writes them.
    fn py_bool(b: bool) -> &'static str {
        if b { "True" } else { "False" }
    }

    fn required(name: &str, value: &str) -> CloudResult<()> {
        if value.is_empty() {
            Err(CloudError::InvalidRequest(format!("{name} is required")))
        } else {
            Ok(())
        }
    }

    pub fn create_routine_code_deployment(
        r: &CreateRoutineCodeDeploymentRequest,
    ) -> CloudResult<ApiRequest> {
        required("Name", &r.name)?;
        required("Env", &r.env)?;
        let versions = serde_json::to_string(&r.code_versions)
            .map_err(|e| CloudError::InvalidRequest(e.to_string()))?;
        let mut p = Rpc::default();
        p.f("Name", &r.name)
            .f("Env", &r.env)
            .f("Strategy", &r.strategy)
            .f("CodeVersions", versions);
        p.build("CreateRoutineCodeDeployment", Method::POST)
    }

    pub fn get_routine(name: &str) -> CloudResult<ApiRequest> {
        required("Name", name)?;
        let mut p = Rpc::default();
        p.f("Name", name);
        p.build("GetRoutine", Method::POST)
    }

    pub fn list_routine_code_versions(
        r: &ListRoutineCodeVersionsRequest,
    ) -> CloudResult<ApiRequest> {
        required("Name", &r.name)?;
        let mut p = Rpc::default();
        p.f("Name", &r.name);
        if let Some(n) = r.page_number {
            p.f("PageNumber", n);
        }
        if let Some(n) = r.page_size {
            p.f("PageSize", n);
        }
        if let Some(s) = &r.search_key_word {
            p.f("SearchKeyWord", s);
        }
        p.build("ListRoutineCodeVersions", Method::POST)
    }

    pub fn publish_edge_container_app_version(
        r: &PublishEdgeContainerAppVersionRequest,
    ) -> CloudResult<ApiRequest> {
        required("AppId", &r.app_id)?;
        required("VersionId", &r.version_id)?;
        required("PublishEnv", &r.publish_env)?;
        let mut p = Rpc::default();
        p.q("VersionId", &r.version_id);
        if let Some(t) = &r.publish_type {
            p.q("PublishType", t);
        }
        if let Some(regions) = &r.regions {
            let json = serde_json::to_string(regions)
                .map_err(|e| CloudError::InvalidRequest(e.to_string()))?;
            p.q("Regions", json);
        }
        if let Some(b) = r.full_release {
            p.q("FullRelease", py_bool(b));
        }
        p.f("AppId", &r.app_id).f("PublishEnv", &r.publish_env);
        if let Some(n) = r.percentage {
            p.f("Percentage", n);
        }
        if let Some(t) = &r.start_time {
            p.f("StartTime", t);
        }
        if let Some(t) = &r.remarks {
            p.f("Remarks", t);
        }
        p.build("PublishEdgeContainerAppVersion", Method::POST)
    }

    pub fn get_edge_container_app_status(
        app_id: &str,
        publish_env: &str,
    ) -> CloudResult<ApiRequest> {
        required("AppId", app_id)?;
        required("PublishEnv", publish_env)?;
        let mut p = Rpc::default();
        p.q("AppId", app_id).q("PublishEnv", publish_env);
        p.build("GetEdgeContainerAppStatus", Method::POST)
    }

    pub fn rollback_edge_container_app_version(
        r: &RollbackEdgeContainerAppVersionRequest,
    ) -> CloudResult<ApiRequest> {
        required("AppId", &r.app_id)?;
        required("VersionId", &r.version_id)?;
        let mut p = Rpc::default();
        p.q("VersionId", &r.version_id);
        if let Some(n) = r.percentage {
            p.q("Percentage", n);
        }
        if let Some(b) = r.used_percent {
            p.q("UsedPercent", py_bool(b));
        }
        p.f("AppId", &r.app_id);
        if let Some(t) = &r.remarks {
            p.f("Remarks", t);
        }
        p.build("RollbackEdgeContainerAppVersion", Method::POST)
    }

    pub fn list_edge_container_app_versions(
        r: &ListEdgeContainerAppVersionsRequest,
    ) -> CloudResult<ApiRequest> {
        required("AppId", &r.app_id)?;
        let mut p = Rpc::default();
        p.q("AppId", &r.app_id);
        if let Some(n) = r.page_number {
            p.q("PageNumber", n);
        }
        if let Some(n) = r.page_size {
            p.q("PageSize", n);
        }
        for (k, v) in [
            ("OrderKey", &r.order_key),
            ("OrderType", &r.order_type),
            ("SearchKey", &r.search_key),
            ("SearchType", &r.search_type),
        ] {
            if let Some(v) = v {
                p.q(k, v);
            }
        }
        p.build("ListEdgeContainerAppVersions", Method::GET)
    }
}

// ---------------------------------------------------------------- the client

struct Shared {
    http: reqwest::Client,
    config: ClientConfig,
    eas_override: Option<Endpoint>,
    esa_override: Option<Endpoint>,
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
        let env = super::provider::CredentialsEnv::from_env()?;
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
        Ok(CloudClient {
            shared: Arc::new(Shared {
                http: http_client()?,
                limits: RateLimits::new(config.rate_limit_per_api, config.rate_limit_burst),
                config,
                eas_override,
                esa_override,
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

    async fn attempt(
        &self,
        req: &ApiRequest,
        endpoint: &Endpoint,
        timeout: Duration,
    ) -> CloudResult<Answer> {
        let credentials = self.credentials.credentials().await?;
        let signed = sign_request(
            req,
            endpoint,
            &credentials,
            &acs_date(jiff::Timestamp::now()),
            &new_nonce(),
        );
        let mut builder = self
            .shared
            .http
            .request(signed.method, &signed.url)
            .timeout(timeout);
        for (k, v) in &signed.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if !signed.body.is_empty() {
            builder = builder.body(signed.body);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                CloudError::Timeout(timeout)
            } else {
                // Without the URL: it may carry parameters; the chain names the cause.
                let e = e.without_url();
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    source = s.source();
                }
                CloudError::Transport(msg)
            }
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?;
        Ok(Answer {
            status,
            headers,
            body,
        })
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
        let deadline = Instant::now() + config.call_deadline;
        let mut backoff = self.policy().backoff();
        let labels = Metrics::api(req.product.as_str(), req.action);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let acquired = tokio::time::timeout_at(
                deadline.into(),
                self.shared.limits.acquire(req.product, req.action),
            )
            .await;
            if acquired.is_err() {
                return (Err(CloudError::Timeout(config.call_deadline)), attempt);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (Err(CloudError::Timeout(config.call_deadline)), attempt);
            }
            let timeout = config.call_timeout.min(left);
            let err = match self.attempt(req, &endpoint, timeout).await {
                Ok(answer) if answer.status < 300 => {
                    let request_id = header_request_id(&answer.headers).or_else(|| {
                        serde_json::from_slice::<WireError>(&answer.body)
                            .ok()
                            .and_then(|w| w.request_id)
                    });
                    if let Some(id) = &request_id {
                        tracing::Span::current().record("request_id", id.as_str());
                    }
                    // A garbled success is not retried: the call may have taken effect.
                    return (decode::<T>(&answer.body).map(|v| (v, request_id)), attempt);
                }
                Ok(answer) => parse_error_response(answer.status, &answer.headers, &answer.body),
                Err(e) => e,
            };
            if err.kind() == super::ErrorKind::Throttled {
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

fn decode<T: DeserializeOwned>(body: &[u8]) -> CloudResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| CloudError::Decode(e.to_string()))
}

#[async_trait]
impl CloudApi for CloudClient {
    fn with_credentials(&self, credentials: Credentials) -> Arc<dyn CloudApi> {
        Arc::new(self.with_static_credentials(credentials))
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

    async fn list_service_versions(
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

    async fn update_service_version(
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

    async fn list_routine_code_versions(
        &self,
        region: &str,
        request: &ListRoutineCodeVersionsRequest,
    ) -> CloudResult<ListRoutineCodeVersionsResponse> {
        self.call(region, requests::list_routine_code_versions(request)?)
            .await
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

    async fn list_edge_container_app_versions(
        &self,
        region: &str,
        request: &ListEdgeContainerAppVersionsRequest,
    ) -> CloudResult<ListEdgeContainerAppVersionsResponse> {
        self.call(region, requests::list_edge_container_app_versions(request)?)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn form(req: &ApiRequest) -> Vec<(String, String)> {
        match &req.body {
            Body::Form(b) => serde_urlencoded::from_bytes(b).unwrap(),
            other => panic!("expected a form body, got {other:?}"),
        }
    }

    fn json(req: &ApiRequest) -> serde_json::Value {
        match &req.body {
            Body::Json(b) => serde_json::from_slice(b).unwrap(),
            other => panic!("expected a JSON body, got {other:?}"),
        }
    }

    #[test]
    fn eas_rollout_requests() {
        let batch = ServiceRolloutRequest {
            batch: Some(BatchConfig {
                batch_size: Some("25%".into()),
                interval: Some("5m".into()),
            }),
            paused: Some(false),
            ..Default::default()
        };
        let r = requests::create_service_rollout("cn-shanghai", "llm chat/v2", &batch).unwrap();
        assert_eq!(
            (r.product, r.action, &r.method),
            (Product::Eas, "CreateServiceRollout", &Method::POST)
        );
        assert_eq!(
            r.path,
            "/api/v2/services/cn-shanghai/llm%20chat%2Fv2/rollout"
        );
        assert!(r.query.is_empty());
        assert_eq!(
            json(&r),
            serde_json::json!({"Batch": {"BatchSize": "25%", "Interval": "5m"}, "Paused": false})
        );

        let partition = ServiceRolloutRequest {
            partition: Some(PartitionConfig {
                partition: "3".into(),
            }),
            ..Default::default()
        };
        let r = requests::update_service_rollout("cn-shanghai", "svc", &partition).unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("UpdateServiceRollout", &Method::PUT)
        );
        assert_eq!(r.path, "/api/v2/services/cn-shanghai/svc/rollout");
        assert_eq!(
            json(&r),
            serde_json::json!({"Partition": {"Partition": "3"}})
        );

        let pause = ServiceRolloutRequest {
            paused: Some(true),
            ..Default::default()
        };
        assert_eq!(
            json(&requests::update_service_rollout("cn-shanghai", "svc", &pause).unwrap()),
            serde_json::json!({"Paused": true})
        );
        // Invalid combinations never reach the wire.
        assert!(
            requests::update_service_rollout(
                "cn-shanghai",
                "svc",
                &ServiceRolloutRequest::default()
            )
            .is_err()
        );
        let both = ServiceRolloutRequest {
            batch: batch.batch.clone(),
            ..partition.clone()
        };
        assert!(requests::create_service_rollout("cn-shanghai", "svc", &both).is_err());

        for (r, action, method) in [
            (
                requests::describe_service_rollout("cn-shanghai", "svc").unwrap(),
                "DescribeServiceRollout",
                Method::GET,
            ),
            (
                requests::delete_service_rollout("cn-shanghai", "svc").unwrap(),
                "DeleteServiceRollout",
                Method::DELETE,
            ),
        ] {
            assert_eq!((r.action, r.method), (action, method));
            assert_eq!(r.path, "/api/v2/services/cn-shanghai/svc/rollout");
            assert_eq!(r.body, Body::Empty);
            assert!(r.query.is_empty());
        }
    }

    #[test]
    fn eas_service_requests() {
        let r = requests::describe_service("cn-beijing", "svc").unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            (
                "DescribeService",
                &Method::GET,
                "/api/v2/services/cn-beijing/svc"
            )
        );
        assert_eq!(r.body, Body::Empty);

        let cfg = serde_json::json!({"containers": [{"image": "repo/x:v2"}]});
        let r = requests::update_service("cn-beijing", "svc", &cfg, UpdateType::Replace).unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            (
                "UpdateService",
                &Method::PUT,
                "/api/v2/services/cn-beijing/svc"
            )
        );
        assert_eq!(r.query, pairs(&[("UpdateType", "replace")]));
        assert_eq!(json(&r), cfg);
        let r = requests::update_service("cn-beijing", "svc", &cfg, UpdateType::Merge).unwrap();
        assert_eq!(r.query, pairs(&[("UpdateType", "merge")]));
        assert!(
            requests::update_service(
                "cn-beijing",
                "svc",
                &serde_json::json!([1]),
                UpdateType::Merge
            )
            .is_err()
        );

        let r = requests::list_service_versions("cn-beijing", "svc", Some(2), Some(50)).unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            (
                "ListServiceVersions",
                &Method::GET,
                "/api/v2/services/cn-beijing/svc/versions"
            )
        );
        assert_eq!(r.query, pairs(&[("PageNumber", "2"), ("PageSize", "50")]));
        assert!(
            requests::list_service_versions("cn-beijing", "svc", None, None)
                .unwrap()
                .query
                .is_empty()
        );

        let r = requests::update_service_version("cn-beijing", "svc", 3).unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            (
                "UpdateServiceVersion",
                &Method::PUT,
                "/api/v2/services/cn-beijing/svc/version"
            )
        );
        assert_eq!(json(&r), serde_json::json!({"Version": 3}));
        assert!(requests::update_service_version("cn-beijing", "svc", 0).is_err());
        assert!(requests::describe_service("cn-beijing", "").is_err());
        assert!(requests::describe_service("cn-beijing/../x", "svc").is_err());
    }

    #[test]
    fn esa_routine_requests() {
        let r = requests::create_routine_code_deployment(&CreateRoutineCodeDeploymentRequest {
            name: "edge-auth".into(),
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
        })
        .unwrap();
        assert_eq!(
            (r.product, r.action, &r.method, r.path.as_str()),
            (
                Product::Esa,
                "CreateRoutineCodeDeployment",
                &Method::POST,
                "/"
            )
        );
        assert!(r.query.is_empty());
        assert_eq!(
            form(&r),
            pairs(&[
                ("Name", "edge-auth"),
                ("Env", "production"),
                ("Strategy", "percentage"),
                (
                    "CodeVersions",
                    r#"[{"CodeVersion":"1710000000000000002","Percentage":10},{"CodeVersion":"1710000000000000001","Percentage":90}]"#
                ),
            ])
        );

        let r = requests::get_routine("edge-auth").unwrap();
        assert_eq!((r.action, &r.method), ("GetRoutine", &Method::POST));
        assert_eq!(form(&r), pairs(&[("Name", "edge-auth")]));
        assert!(requests::get_routine("").is_err());

        let r = requests::list_routine_code_versions(&ListRoutineCodeVersionsRequest {
            name: "edge-auth".into(),
            page_number: Some(1),
            page_size: Some(20),
            search_key_word: Some("a b".into()),
        })
        .unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("ListRoutineCodeVersions", &Method::POST)
        );
        assert!(r.query.is_empty());
        assert_eq!(
            form(&r),
            pairs(&[
                ("Name", "edge-auth"),
                ("PageNumber", "1"),
                ("PageSize", "20"),
                ("SearchKeyWord", "a b")
            ])
        );
    }

    #[test]
    fn esa_container_app_requests() {
        let r =
            requests::publish_edge_container_app_version(&PublishEdgeContainerAppVersionRequest {
                app_id: "app-88068867578379".into(),
                version_id: "ver-87962637161651".into(),
                publish_env: "prod".into(),
                publish_type: Some("region".into()),
                percentage: Some(50),
                regions: Some(vec!["jiangsu".into(), "beijing".into()]),
                full_release: Some(true),
                start_time: Some("2026-05-08T16:10:56Z".into()),
                remarks: Some("canary".into()),
            })
            .unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            ("PublishEdgeContainerAppVersion", &Method::POST, "/")
        );
        assert_eq!(
            r.query,
            pairs(&[
                ("VersionId", "ver-87962637161651"),
                ("PublishType", "region"),
                ("Regions", r#"["jiangsu","beijing"]"#),
                ("FullRelease", "True"),
            ])
        );
        assert_eq!(
            form(&r),
            pairs(&[
                ("AppId", "app-88068867578379"),
                ("PublishEnv", "prod"),
                ("Percentage", "50"),
                ("StartTime", "2026-05-08T16:10:56Z"),
                ("Remarks", "canary"),
            ])
        );
        let minimal =
            requests::publish_edge_container_app_version(&PublishEdgeContainerAppVersionRequest {
                app_id: "app-1".into(),
                version_id: "ver-1".into(),
                publish_env: "staging".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(minimal.query, pairs(&[("VersionId", "ver-1")]));
        assert_eq!(
            form(&minimal),
            pairs(&[("AppId", "app-1"), ("PublishEnv", "staging")])
        );

        let r = requests::get_edge_container_app_status("app-1", "prod").unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("GetEdgeContainerAppStatus", &Method::POST)
        );
        assert_eq!(
            r.query,
            pairs(&[("AppId", "app-1"), ("PublishEnv", "prod")])
        );
        assert_eq!(r.body, Body::Empty);

        let r = requests::rollback_edge_container_app_version(
            &RollbackEdgeContainerAppVersionRequest {
                app_id: "app-1".into(),
                version_id: "ver-1".into(),
                percentage: Some(100),
                used_percent: Some(false),
                remarks: Some("bad canary".into()),
            },
        )
        .unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("RollbackEdgeContainerAppVersion", &Method::POST)
        );
        assert_eq!(
            r.query,
            pairs(&[
                ("VersionId", "ver-1"),
                ("Percentage", "100"),
                ("UsedPercent", "False")
            ])
        );
        assert_eq!(
            form(&r),
            pairs(&[("AppId", "app-1"), ("Remarks", "bad canary")])
        );

        let r = requests::list_edge_container_app_versions(&ListEdgeContainerAppVersionsRequest {
            app_id: "app-1".into(),
            page_number: Some(1),
            page_size: Some(10),
            order_key: Some("CreateTime".into()),
            order_type: Some("DESC".into()),
            search_key: None,
            search_type: None,
        })
        .unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("ListEdgeContainerAppVersions", &Method::GET)
        );
        assert_eq!(
            r.query,
            pairs(&[
                ("AppId", "app-1"),
                ("PageNumber", "1"),
                ("PageSize", "10"),
                ("OrderKey", "CreateTime"),
                ("OrderType", "DESC")
            ])
        );
        assert_eq!(r.body, Body::Empty);
    }

    #[test]
    fn signed_headers_and_signature() {
        let req = requests::update_service_version("cn-shanghai", "svc", 2).unwrap();
        let endpoint = Endpoint::parse("127.0.0.1:18080").unwrap();
        let creds = Credentials::new("ak", "sk").with_security_token("sts-tok");
        let s = sign_request(&req, &endpoint, &creds, "2026-05-08T16:10:56Z", "nonce-1");
        assert_eq!(
            s.url,
            "http://127.0.0.1:18080/api/v2/services/cn-shanghai/svc/version"
        );
        assert_eq!(s.body, br#"{"Version":2}"#);
        let h = |name: &str| {
            s.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no header {name}"))
        };
        assert_eq!(h("host"), "127.0.0.1:18080");
        assert_eq!(h("x-acs-action"), "UpdateServiceVersion");
        assert_eq!(h("x-acs-version"), "2021-07-01");
        assert_eq!(h("x-acs-date"), "2026-05-08T16:10:56Z");
        assert_eq!(h("x-acs-signature-nonce"), "nonce-1");
        assert_eq!(
            h("x-acs-content-sha256"),
            sign::sha256_hex(br#"{"Version":2}"#)
        );
        assert_eq!(h("content-type"), CONTENT_TYPE_JSON);
        assert_eq!(h("x-acs-security-token"), "sts-tok");
        let auth = sign::parse_authorization(&h("authorization")).unwrap();
        assert_eq!(auth.access_key_id, "ak");
        assert_eq!(
            auth.signed_headers,
            [
                "content-type",
                "host",
                "x-acs-action",
                "x-acs-content-sha256",
                "x-acs-date",
                "x-acs-security-token",
                "x-acs-signature-nonce",
                "x-acs-version"
            ]
        );
        // Recompute as a server would.
        let sent: Vec<(String, String)> = s.headers.clone();
        let expected = sign::authorization(
            "ak",
            "sk",
            &sign::CanonicalInput {
                method: "PUT",
                canonical_uri: "/api/v2/services/cn-shanghai/svc/version",
                query: &[],
                headers: &sent,
                signed_headers: &auth.signed_headers,
                hashed_payload: &h("x-acs-content-sha256"),
            },
        );
        assert_eq!(h("authorization"), expected);

        // Without a body: no content-type, empty-body hash; without a token: no token header.
        let req = requests::get_edge_container_app_status("app-1", "prod").unwrap();
        let s = sign_request(
            &req,
            &Endpoint::https("esa.cn-hangzhou.aliyuncs.com"),
            &Credentials::new("ak", "sk"),
            "2026-05-08T16:10:56Z",
            "n2",
        );
        assert_eq!(
            s.url,
            "https://esa.cn-hangzhou.aliyuncs.com/?AppId=app-1&PublishEnv=prod"
        );
        assert!(
            s.headers
                .iter()
                .all(|(n, _)| n != "content-type" && n != "x-acs-security-token")
        );
        assert!(
            s.headers
                .contains(&("x-acs-content-sha256".into(), sign::EMPTY_SHA256.into()))
        );
        assert!(
            s.headers
                .contains(&("x-acs-version".into(), "2024-09-10".into()))
        );
        assert!(
            s.headers
                .contains(&("host".into(), "esa.cn-hangzhou.aliyuncs.com".into()))
        );
    }

    #[test]
    fn nonces_are_unique_and_dates_formatted() {
        let a: std::collections::HashSet<String> = (0..1000).map(|_| new_nonce()).collect();
        assert_eq!(a.len(), 1000);
        let t: jiff::Timestamp = "2026-05-08T16:10:56.789Z".parse().unwrap();
        assert_eq!(acs_date(t), "2026-05-08T16:10:56Z");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn error_bodies() {
        let e = parse_error_response(
            400,
            &HeaderMap::new(),
            br#"{"RequestId":"5F1A-1","HostId":"esa.cn-hangzhou.aliyuncs.com","Code":"InvalidParameter.Percentage","Message":"The Percentage is invalid."}"#,
        );
        match &e {
            CloudError::Api {
                status,
                code,
                message,
                request_id,
                retry_after,
            } => {
                assert_eq!(*status, 400);
                assert_eq!(code, "InvalidParameter.Percentage");
                assert_eq!(message, "The Percentage is invalid.");
                assert_eq!(request_id.as_deref(), Some("5F1A-1"));
                assert_eq!(*retry_after, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.kind(), super::super::ErrorKind::Terminal);

        let e = parse_error_response(
            400,
            &headers(&[("x-acs-retry-after", "1500")]),
            br#"{"RequestId":"r","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#,
        );
        assert_eq!(e.kind(), super::super::ErrorKind::Throttled);
        assert!(
            matches!(e, CloudError::Api { retry_after: Some(d), .. } if d == Duration::from_millis(1500))
        );

        let e = parse_error_response(
            404,
            &headers(&[("x-acs-request-id", "hdr-id")]),
            br#"{"Code":"InvalidService.NotFound","Message":"no"}"#,
        );
        assert!(e.is_not_found());
        assert_eq!(e.request_id(), Some("hdr-id"));

        // Lower-case keys (some ROA gateways) still parse.
        let e = parse_error_response(
            403,
            &HeaderMap::new(),
            br#"{"code":"Forbidden.RAM","message":"denied","requestId":"x"}"#,
        );
        assert_eq!((e.code(), e.request_id()), ("Forbidden.RAM", Some("x")));

        // An HTML page from a proxy.
        let e = parse_error_response(
            502,
            &HeaderMap::new(),
            b"<html><body>Bad Gateway</body></html>",
        );
        assert_eq!(e.code(), "ServiceUnavailable");
        assert!(e.to_string().contains("Bad Gateway"), "{e}");
        assert_eq!(e.kind(), super::super::ErrorKind::Transient);
        let e = parse_error_response(429, &HeaderMap::new(), b"");
        assert_eq!(e.kind(), super::super::ErrorKind::Throttled);
        let e = parse_error_response(400, &HeaderMap::new(), b"nope");
        assert_eq!(
            (e.code(), e.kind()),
            ("HTTP400", super::super::ErrorKind::Terminal)
        );
        // Garbage retry-after is ignored.
        let e = parse_error_response(500, &headers(&[("x-acs-retry-after", "soon")]), b"{}");
        assert!(matches!(
            e,
            CloudError::Api {
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn answers_decode_with_cloud_field_names() {
        let r: DescribeServiceRolloutResponse = decode(
            br#"{"RequestId":"r1","Rollout":{"Strategy":{"Batch":{"BatchSize":"2","Interval":"60s"}},
                "Status":{"Phase":"Running","TotalReplicas":8,"UpdatedReplicas":2,"CurrentRevision":"svc-v1",
                "UpdateRevision":"svc-v2","NextBatchStartTime":"2026/05/08 16:10:56"}}}"#,
        )
        .unwrap();
        let status = r.rollout.unwrap().status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.updated_replicas, Some(2));
        let r: GetEdgeContainerAppStatusResponse = decode(
            br#"{"RequestId":"r","AppStatus":{"PublishStatus":"publishing","PublishPercentage":50,"FullRelease":false,"Regions":{"Region":["jiangsu"]},"Unknown":1}}"#,
        )
        .unwrap();
        let s = r.app_status.unwrap();
        assert_eq!(s.publish_percentage, Some(50));
        assert_eq!(s.regions.unwrap().region, vec!["jiangsu".to_string()]);
        let a: Ack = decode(b"").unwrap();
        assert_eq!(a, Ack::default());
        assert!(matches!(
            decode::<Ack>(b"<html>"),
            Err(CloudError::Decode(_))
        ));
    }
}
