//! The HTTP side: routing, authentication, faults, rate limits and the admin API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::auth::{self, AuthState, SignedRequest, StsCredential};
use super::clock::{Clock, add, iso_time, lock, parse_iso_time};
use super::eas::{self, EasService};
use super::error::{ApiError, ApiResult};
use super::esa::{self, App, Publish, Routine};
use super::seed::Seed;
use crate::cloud::model::{Ack, ErrorBody, GetEdgeContainerAppStatusResponse};

pub const EAS_VERSION: &str = "2021-07-01";
pub const ESA_VERSION: &str = "2024-09-10";
pub const STS_VERSION: &str = "2015-04-01";
const MAX_BODY: usize = 1 << 20;

/// Everything the simulator knows about the cloud.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    /// Keyed by "region/name".
    pub services: BTreeMap<String, EasService>,
    pub routines: BTreeMap<String, Routine>,
    pub apps: BTreeMap<String, App>,
    pub next_deployment_id: u64,
}

impl World {
    pub fn advance(&mut self, now: Timestamp, scale: f64) {
        for s in self.services.values_mut() {
            s.advance(now, scale);
        }
        for a in self.apps.values_mut() {
            a.advance(now, scale);
        }
    }

    pub fn apply_seed(&mut self, seed: &Seed, now: Timestamp) -> ApiResult<()> {
        for s in &seed.services {
            if s.name.is_empty() || s.region.is_empty() || !(0..=10_000).contains(&s.replicas) {
                return Err(ApiError::invalid(format!(
                    "seed service {:?}: name and region are required, replicas 0..=10000",
                    s.name
                )));
            }
            self.services.insert(
                format!("{}/{}", s.region, s.name),
                EasService::new(
                    &s.name,
                    &s.region,
                    s.replicas,
                    s.rollout_enabled,
                    s.config.clone(),
                    now,
                ),
            );
        }
        for r in &seed.routines {
            let mut routine = Routine::new(&r.name, &r.code_versions, now);
            if let Some(v) = &r.deployed {
                for env in esa::ROUTINE_ENVS {
                    self.next_deployment_id += 1;
                    routine.deploy(
                        env,
                        "percentage",
                        vec![crate::cloud::model::CodeVersionSplit {
                            code_version: v.clone(),
                            percentage: 100,
                        }],
                        self.next_deployment_id,
                        now,
                    )?;
                }
            }
            self.routines.insert(r.name.clone(), routine);
        }
        for a in &seed.apps {
            if !esa::valid_app_id(&a.id) {
                return Err(ApiError::invalid(format!(
                    "seed app {:?}: the id must be app- followed by digits",
                    a.id
                )));
            }
            if let Some(v) = &a.deployed
                && !a.versions.contains(v)
            {
                return Err(ApiError::invalid(format!(
                    "seed app {}: deployed version {v} is not in versions",
                    a.id
                )));
            }
            self.apps.insert(
                a.id.clone(),
                App::new(&a.id, &a.versions, a.deployed.as_deref(), now),
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- faults

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    #[default]
    Error,
    Throttle,
    Latency,
    Drop,
}

/// One injected fault (see docs/simulator.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// Action name, or "*"/absent for every action.
    #[serde(default)]
    pub action: Option<String>,
    pub kind: FaultKind,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Adds `x-acs-retry-after`, sent in MILLISECONDS (seconds x 1000), the unit the
    /// official SDKs read.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Probability per request, 0..=1 (default 1).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Fire at most this many times.
    #[serde(default)]
    pub count: Option<u64>,
}

impl FaultSpec {
    fn retry_after(&self) -> Option<u64> {
        self.retry_after_seconds.map(|s| s.saturating_mul(1000))
    }

    fn validate(&self) -> ApiResult<()> {
        if let Some(r) = self.rate
            && !(0.0..=1.0).contains(&r)
        {
            return Err(ApiError::invalid("rate must be within 0..=1"));
        }
        if let Some(s) = self.status
            && !(400..=599).contains(&s)
        {
            return Err(ApiError::invalid("status must be within 400..=599"));
        }
        if self.latency_ms.is_some_and(|l| l > 120_000) {
            return Err(ApiError::invalid("latencyMs must be at most 120000"));
        }
        if self.kind == FaultKind::Latency && self.latency_ms.is_none() {
            return Err(ApiError::invalid("kind latency needs latencyMs"));
        }
        Ok(())
    }

    fn matches(&self, action: &str) -> bool {
        match self.action.as_deref() {
            None | Some("*") | Some("") => true,
            Some(a) => a == action,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultSpec,
    pub fired: u64,
}

/// What the faults decided for one request.
#[derive(Debug, Default)]
struct FaultOutcome {
    delay: Duration,
    error: Option<ApiError>,
    drop: bool,
}

// ---------------------------------------------------------------- the simulator

/// Static settings of a running simulator.
#[derive(Debug, Clone)]
pub struct Settings {
    pub keys: HashMap<String, String>,
    pub time_scale: f64,
    /// Requests per second per action; 0 disables.
    pub rate_limit: u32,
}

/// Shared state behind the HTTP server.
#[derive(Debug)]
pub struct Sim {
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub world: Mutex<World>,
    auth: Mutex<AuthState>,
    faults: Mutex<(u64, Vec<Fault>)>,
    calls: Mutex<BTreeMap<String, u64>>,
    limiter: Mutex<HashMap<String, (u64, u32)>>,
    origin: Instant,
}

/// A request as received.
struct Incoming<'a> {
    method: &'a Method,
    raw_path: &'a str,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: &'a Bytes,
}

impl Incoming<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Which API a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Eas {
        action: &'static str,
        region: String,
        service: String,
    },
    Rpc(String),
    Unknown,
}

impl Route {
    fn action(&self) -> &str {
        match self {
            Route::Eas { action, .. } => action,
            Route::Rpc(a) if a == "AssumeRoleWithOIDC" || esa_action(a) => a,
            Route::Rpc(_) | Route::Unknown => "Unknown",
        }
    }
}

/// RPC parameters from the query and the form body.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    fn req(&self, name: &str) -> ApiResult<&str> {
        self.opt(name).ok_or_else(|| ApiError::missing(name))
    }

    fn int(&self, name: &str, code: &str) -> ApiResult<Option<i64>> {
        self.opt(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad(code, format!("{name} must be an integer, got {v:?}."))
                })
            })
            .transpose()
    }

    fn boolean(&self, name: &str) -> ApiResult<Option<bool>> {
        self.opt(name)
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::invalid(format!(
                    "{name} must be true or false, got {v:?}."
                ))),
            })
            .transpose()
    }

    fn page(&self, default_size: i64, max_size: i64) -> ApiResult<(i64, i64)> {
        let page = self.int("PageNumber", "InvalidParameter")?.unwrap_or(1);
        let size = self
            .int("PageSize", "InvalidParameter")?
            .unwrap_or(default_size);
        if !(1..=1_000_000).contains(&page) {
            return Err(ApiError::invalid("PageNumber must be at least 1."));
        }
        if !(1..=max_size).contains(&size) {
            return Err(ApiError::invalid(format!(
                "PageSize must be within 1..={max_size}."
            )));
        }
        Ok((page, size))
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Split a raw query into decoded pairs. `+` means a space: the official SDKs build the URL
/// with form encoding (space as `+`) while signing `%20`; a literal plus arrives as `%2B`.
fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let form = |s: &str| decode(&s.replace('+', " "));
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (form(k), form(v)),
            None => (form(p), String::new()),
        })
        .collect()
}

fn route(method: &Method, raw_path: &str, action_hint: Option<&str>) -> Route {
    if raw_path == "/" || raw_path.is_empty() {
        return match action_hint {
            Some(a) if !a.is_empty() => Route::Rpc(a.to_string()),
            _ => Route::Unknown,
        };
    }
    let segs: Vec<String> = raw_path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let [api, v2, services, region, service, rest @ ..] = segs.as_slice() else {
        return Route::Unknown;
    };
    if api != "api"
        || v2 != "v2"
        || services != "services"
        || region.is_empty()
        || service.is_empty()
    {
        return Route::Unknown;
    }
    let action = match (rest, method.as_str()) {
        ([], "GET") => "DescribeService",
        ([], "PUT") => "UpdateService",
        ([r], "POST") if r == "rollout" => "CreateServiceRollout",
        ([r], "PUT") if r == "rollout" => "UpdateServiceRollout",
        ([r], "GET") if r == "rollout" => "DescribeServiceRollout",
        ([r], "DELETE") if r == "rollout" => "DeleteServiceRollout",
        ([r], "GET") if r == "versions" => "ListServiceVersions",
        ([r], "PUT") if r == "version" => "UpdateServiceVersion",
        _ => return Route::Unknown,
    };
    Route::Eas {
        action,
        region: region.clone(),
        service: service.clone(),
    }
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_ascii_uppercase()
}

fn json_response(
    status: StatusCode,
    request_id: &str,
    body: &Value,
    retry_after: Option<u64>,
) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-acs-request-id", v);
    }
    if let Some(ms) = retry_after
        && let Ok(v) = HeaderValue::from_str(&ms.to_string())
    {
        h.insert("x-acs-retry-after", v);
    }
    resp
}

fn with_request_id(mut v: Value, request_id: &str) -> Value {
    if let Value::Object(map) = &mut v {
        map.insert("RequestId".into(), Value::String(request_id.to_string()));
    }
    v
}

fn to_json<T: Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::new(500, "InternalError", e.to_string()))
}

fn ack(message: Option<String>) -> ApiResult<Value> {
    to_json(&Ack {
        request_id: String::new(),
        message,
    })
}

impl Sim {
    pub fn new(clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Sim {
            clock,
            settings,
            world: Mutex::new(World::default()),
            auth: Mutex::new(AuthState::default()),
            faults: Mutex::new((0, Vec::new())),
            calls: Mutex::new(BTreeMap::new()),
            limiter: Mutex::new(HashMap::new()),
            origin: Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn seed(&self, seed: &Seed) -> ApiResult<()> {
        let now = self.now();
        let mut w = lock(&self.world);
        w.advance(now, self.settings.time_scale);
        w.apply_seed(seed, now)
    }

    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.calls).clone()
    }

    pub fn add_fault(&self, spec: FaultSpec) -> ApiResult<u64> {
        spec.validate()?;
        let mut f = lock(&self.faults);
        f.0 += 1;
        let id = f.0;
        f.1.push(Fault { id, spec, fired: 0 });
        Ok(id)
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).1.clear();
    }

    /// The state after advancing it to now, as JSON.
    pub fn dump(&self) -> Value {
        let now = self.now();
        let mut w = lock(&self.world);
        w.advance(now, self.settings.time_scale);
        serde_json::to_value(&*w).unwrap_or(Value::Null)
    }

    fn evaluate_faults(&self, action: &str) -> FaultOutcome {
        let mut out = FaultOutcome::default();
        let mut guard = lock(&self.faults);
        for f in guard.1.iter_mut() {
            if !f.spec.matches(action) {
                continue;
            }
            if f.spec.count.is_some_and(|c| f.fired >= c) {
                continue;
            }
            let rate = f.spec.rate.unwrap_or(1.0);
            if rate < 1.0 && rand::random::<f64>() >= rate {
                continue;
            }
            match f.spec.kind {
                FaultKind::Latency => {
                    out.delay += Duration::from_millis(f.spec.latency_ms.unwrap_or(0));
                }
                _ if out.error.is_some() || out.drop => continue,
                FaultKind::Drop => out.drop = true,
                FaultKind::Throttle => {
                    let mut e = ApiError::throttled();
                    if let Some(code) = &f.spec.code {
                        e.code = code.clone();
                    }
                    if let Some(s) = f.spec.status {
                        e = ApiError::new(s, &e.code, e.message);
                    }
                    e.retry_after = f.spec.retry_after();
                    out.error = Some(e);
                }
                FaultKind::Error => {
                    let status = f.spec.status.unwrap_or(500);
                    let default_code = if status == 503 {
                        "ServiceUnavailable"
                    } else {
                        "InternalError"
                    };
                    let code = f.spec.code.as_deref().unwrap_or(default_code);
                    let message = f.spec.message.clone().unwrap_or_else(|| {
                        "The request processing has failed due to some unknown error, exception or failure.".into()
                    });
                    let mut e = ApiError::new(status, code, message);
                    e.retry_after = f.spec.retry_after();
                    out.error = Some(e);
                }
            }
            f.fired += 1;
        }
        out
    }

    fn over_rate_limit(&self, action: &str) -> bool {
        let limit = self.settings.rate_limit;
        if limit == 0 {
            return false;
        }
        let second = self.origin.elapsed().as_secs();
        let mut l = lock(&self.limiter);
        let entry = l.entry(action.to_string()).or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 > limit
    }

    /// Answer one HTTP request. `kill` closes the connection without an answer.
    pub async fn handle(
        self: Arc<Self>,
        req: http::Request<hyper::body::Incoming>,
        kill: Arc<Notify>,
    ) -> Response<Body> {
        let request_id = new_request_id();
        let (parts, body) = req.into_parts();
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("simulator")
            .to_string();
        let body = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                let e = ApiError::invalid("The request body is unreadable or larger than 1 MiB.");
                return self.error_response(&request_id, &host, "Unknown", e);
            }
        };
        let raw_path = parts.uri.path().to_string();
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let incoming = Incoming {
            method: &parts.method,
            raw_path: &raw_path,
            query: parse_query(parts.uri.query()),
            headers,
            body: &body,
        };

        if raw_path == "/_sim" || raw_path.starts_with("/_sim/") {
            let (status, value) = self.admin(&incoming);
            return json_response(status, &request_id, &value, None);
        }

        let action_hint = incoming
            .header("x-acs-action")
            .map(str::to_string)
            .or_else(|| {
                incoming
                    .query
                    .iter()
                    .find(|(k, _)| k == "Action")
                    .map(|(_, v)| v.clone())
            });
        let route = route(incoming.method, &raw_path, action_hint.as_deref());
        let action = route.action().to_string();
        *lock(&self.calls).entry(action.clone()).or_insert(0) += 1;

        let faults = self.evaluate_faults(&action);
        if !faults.delay.is_zero() {
            tokio::time::sleep(faults.delay).await;
        }
        if faults.drop {
            tracing::info!(action = %action, request_id = %request_id, "simulator: dropping the connection (fault)");
            kill.notify_one();
            return std::future::pending().await;
        }
        if let Some(e) = faults.error {
            return self.error_response(&request_id, &host, &action, e);
        }
        if self.over_rate_limit(&action) {
            return self.error_response(&request_id, &host, &action, ApiError::throttled());
        }

        match self.dispatch(&route, &incoming) {
            Ok(value) => {
                tracing::info!(action = %action, status = 200, request_id = %request_id, "simulator: ok");
                json_response(
                    StatusCode::OK,
                    &request_id,
                    &with_request_id(value, &request_id),
                    None,
                )
            }
            Err(e) => self.error_response(&request_id, &host, &action, e),
        }
    }

    fn error_response(
        &self,
        request_id: &str,
        host: &str,
        action: &str,
        e: ApiError,
    ) -> Response<Body> {
        tracing::info!(
            action = %action,
            status = e.status.as_u16(),
            code = %e.code,
            request_id = %request_id,
            "simulator: error"
        );
        let body = ErrorBody {
            request_id: request_id.to_string(),
            host_id: host.to_string(),
            code: e.code.clone(),
            message: e.message.clone(),
        };
        let value = serde_json::to_value(&body).unwrap_or(Value::Null);
        json_response(e.status, request_id, &value, e.retry_after)
    }

    fn dispatch(&self, route: &Route, req: &Incoming<'_>) -> ApiResult<Value> {
        let (product_version, action) = match route {
            Route::Unknown => {
                return Err(ApiError::not_found(
                    "InvalidAction.NotFound",
                    format!(
                        "Specified api is not found, please check your url and method: {} {}",
                        req.method, req.raw_path
                    ),
                ));
            }
            Route::Eas { action, .. } => (EAS_VERSION, *action),
            Route::Rpc(a) if a == "AssumeRoleWithOIDC" => (STS_VERSION, a.as_str()),
            Route::Rpc(a) if esa_action(a) => (ESA_VERSION, a.as_str()),
            Route::Rpc(a) => {
                return Err(ApiError::not_found(
                    "InvalidAction.NotFound",
                    format!("Specified api is not found, please check your url and method: {a}"),
                ));
            }
        };
        let version = req.header("x-acs-version").map(str::to_string).or_else(|| {
            req.query
                .iter()
                .find(|(k, _)| k == "Version")
                .map(|(_, v)| v.clone())
        });
        match version {
            Some(v) if v != product_version => {
                return Err(ApiError::bad(
                    "InvalidVersion",
                    format!(
                        "Specified parameter Version {v:?} is not valid for {action} (expected {product_version})."
                    ),
                ));
            }
            None if matches!(route, Route::Rpc(_)) => return Err(ApiError::missing("Version")),
            _ => {}
        }
        let now = self.now();
        if action == "AssumeRoleWithOIDC" {
            let params = rpc_params(req)?;
            return self.assume_role_with_oidc(&params, now);
        }
        {
            let signed = SignedRequest {
                method: req.method.as_str(),
                raw_path: req.raw_path,
                query: &req.query,
                headers: &req.headers,
                body: req.body,
            };
            let mut a = lock(&self.auth);
            auth::verify(&self.settings.keys, &mut a, &signed, now)?;
        }
        let scale = self.settings.time_scale;
        let mut world = lock(&self.world);
        world.advance(now, scale);
        match route {
            Route::Eas {
                action,
                region,
                service,
            } => eas_action(&mut world, action, region, service, req, now, scale),
            Route::Rpc(a) => {
                let params = rpc_params(req)?;
                esa_dispatch(&mut world, a, &params, now, scale)
            }
            Route::Unknown => Err(ApiError::not_found("InvalidAction.NotFound", "unknown")),
        }
    }

    fn assume_role_with_oidc(&self, p: &Params, now: Timestamp) -> ApiResult<Value> {
        let role_arn = p.req("RoleArn")?;
        let provider_arn = p.req("OIDCProviderArn")?;
        let token = p.req("OIDCToken")?;
        if !role_arn.starts_with("acs:ram::") {
            return Err(ApiError::bad(
                "InvalidParameter.RoleArn",
                "RoleArn must look like acs:ram::<account>:role/<name>.",
            ));
        }
        if !provider_arn.starts_with("acs:ram::") {
            return Err(ApiError::bad(
                "InvalidParameter.OIDCProviderArn",
                "OIDCProviderArn must look like acs:ram::<account>:oidc-provider/<name>.",
            ));
        }
        if token.len() > 16_384 || token.starts_with("invalid") {
            return Err(ApiError::bad(
                "InvalidParameter.OIDCToken",
                "The OIDC token is invalid.",
            ));
        }
        let duration = p
            .int("DurationSeconds", "InvalidParameter.DurationSeconds")?
            .unwrap_or(3600);
        if !(900..=43_200).contains(&duration) {
            return Err(ApiError::bad(
                "InvalidParameter.DurationSeconds",
                "DurationSeconds must be within 900..=43200.",
            ));
        }
        let session = p.opt("RoleSessionName").unwrap_or("session").to_string();
        let expires = add(now, Duration::from_secs(duration.unsigned_abs()));
        let access_key_id = format!("STS.{}", auth::random_hex(12));
        let cred = StsCredential {
            secret: auth::random_hex(16),
            token: format!("CAIS{}", auth::random_hex(48)),
            expires,
        };
        let body = json!({
            "AssumedRoleUser": {
                "AssumedRoleId": format!("300000000000000000:{session}"),
                "Arn": format!("{role_arn}/{session}"),
            },
            "OIDCTokenInfo": {"ClientIds": "sts.aliyuncs.com", "Issuer": "simulator", "Subject": "simulator"},
            "Credentials": {
                "AccessKeyId": access_key_id,
                "AccessKeySecret": cred.secret,
                "SecurityToken": cred.token,
                "Expiration": iso_time(expires),
            },
        });
        lock(&self.auth).sts.insert(access_key_id, cred);
        Ok(body)
    }

    fn admin(&self, req: &Incoming<'_>) -> (StatusCode, Value) {
        let result: ApiResult<Value> = match (req.method.as_str(), req.raw_path) {
            ("GET", "/_sim/state") => Ok(self.dump()),
            ("POST", "/_sim/seed") => serde_yaml::from_slice::<Seed>(req.body)
                .map_err(|e| ApiError::invalid(format!("bad seed: {e}")))
                .and_then(|s| self.seed(&s))
                .map(|_| json!({"ok": true})),
            ("POST", "/_sim/reset") => {
                *lock(&self.world) = World::default();
                lock(&self.calls).clear();
                self.clear_faults();
                Ok(json!({"ok": true}))
            }
            ("GET", "/_sim/calls") => to_json(&self.calls()),
            ("DELETE", "/_sim/calls") => {
                lock(&self.calls).clear();
                Ok(json!({"ok": true}))
            }
            ("GET", "/_sim/faults") => to_json(&lock(&self.faults).1),
            ("POST", "/_sim/faults") => serde_json::from_slice::<FaultSpec>(req.body)
                .map_err(|e| ApiError::invalid(format!("bad fault: {e}")))
                .and_then(|f| self.add_fault(f))
                .map(|id| json!({"id": id})),
            ("DELETE", "/_sim/faults") => {
                self.clear_faults();
                Ok(json!({"ok": true}))
            }
            ("POST", "/_sim/time") => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Advance {
                    advance_seconds: f64,
                }
                serde_json::from_slice::<Advance>(req.body)
                    .map_err(|e| ApiError::invalid(format!("bad body: {e}")))
                    .and_then(|a| {
                        let d = Duration::try_from_secs_f64(a.advance_seconds)
                            .map_err(|_| ApiError::invalid("advanceSeconds must be >= 0"))?;
                        if self.clock.advance(d) {
                            Ok(json!({"now": iso_time(self.now())}))
                        } else {
                            Err(ApiError::invalid(
                                "the simulator follows real time; only a manual clock can be advanced",
                            ))
                        }
                    })
            }
            ("GET", "/_sim/time") => Ok(json!({"now": iso_time(self.now())})),
            _ => Err(ApiError::not_found(
                "InvalidAction.NotFound",
                format!("no admin endpoint {} {}", req.method, req.raw_path),
            )),
        };
        match result {
            Ok(v) => (StatusCode::OK, v),
            Err(e) => (e.status, json!({"Code": e.code, "Message": e.message})),
        }
    }
}

fn esa_action(a: &str) -> bool {
    matches!(
        a,
        "CreateRoutineCodeDeployment"
            | "GetRoutine"
            | "ListRoutineCodeVersions"
            | "PublishRoutineCodeVersion"
            | "PublishEdgeContainerAppVersion"
            | "GetEdgeContainerAppStatus"
            | "RollbackEdgeContainerAppVersion"
            | "ListEdgeContainerAppVersions"
            | "GetEdgeContainerAppVersion"
    )
}

fn rpc_params(req: &Incoming<'_>) -> ApiResult<Params> {
    let mut all = req.query.clone();
    let has_body = !req.body.iter().all(u8::is_ascii_whitespace);
    if has_body {
        let ct = req
            .header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ct.starts_with("application/json") {
            let v: Value = serde_json::from_slice(req.body).map_err(|e| {
                ApiError::invalid(format!("The request body is not valid JSON: {e}"))
            })?;
            let Value::Object(map) = v else {
                return Err(ApiError::invalid("The request body must be a JSON object."));
            };
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                all.push((k, text));
            }
        } else {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(req.body)
                .map_err(|e| ApiError::invalid(format!("The form body is malformed: {e}")))?;
            all.extend(pairs);
        }
    }
    Ok(Params(all))
}

fn parse_json_body(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("The request body is not valid JSON: {e}")))
}

fn eas_action(
    world: &mut World,
    action: &str,
    region: &str,
    service: &str,
    req: &Incoming<'_>,
    now: Timestamp,
    scale: f64,
) -> ApiResult<Value> {
    let key = format!("{region}/{service}");
    let Some(svc) = world.services.get_mut(&key) else {
        return Err(ApiError::not_found(
            "InvalidService.NotFound",
            format!("Service {service} is not found in region {region}."),
        ));
    };
    let query = Params(req.query.clone());
    match action {
        "DescribeService" => to_json(&svc.describe()),
        "UpdateService" => {
            let replace = match query
                .opt("UpdateType")
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("merge") => false,
                Some("replace") => true,
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "UpdateType must be merge or replace, got {other:?}."
                    )));
                }
            };
            let body = parse_json_body(req.body)?;
            ack(Some(svc.update(&body, replace, now, scale)?))
        }
        "ListServiceVersions" => {
            let (page, size) = query.page(100, 100)?;
            let v = to_json(&svc.list_versions(page, size))?;
            Ok(extend_items(v, "Versions", |_| {
                vec![("ServiceRunnable", json!("true"))]
            }))
        }
        "UpdateServiceVersion" => {
            let body = parse_json_body(req.body)?;
            let version = match body.get("Version") {
                None | Some(Value::Null) => return Err(ApiError::missing("Version")),
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
                Some(_) => None,
            };
            let Some(version) = version else {
                return Err(ApiError::invalid("Version must be an integer."));
            };
            ack(Some(svc.update_version(version, now, scale)?))
        }
        "CreateServiceRollout" => {
            let r = eas::parse_rollout_body(req.body)?;
            ack(Some(svc.create_rollout(&r, now, scale)?))
        }
        "UpdateServiceRollout" => {
            let r = eas::parse_rollout_body(req.body)?;
            ack(Some(svc.update_rollout(&r, now, scale)?))
        }
        "DescribeServiceRollout" => {
            let rollout = svc.describe_rollout()?;
            to_json(&crate::cloud::model::DescribeServiceRolloutResponse {
                request_id: String::new(),
                rollout: Some(rollout),
            })
        }
        "DeleteServiceRollout" => ack(Some(svc.delete_rollout(now, scale)?)),
        other => Err(ApiError::not_found(
            "InvalidAction.NotFound",
            format!("unknown action {other}"),
        )),
    }
}

fn routine_env(p: &Params) -> ApiResult<String> {
    let env = p.req("Env")?;
    if !esa::ROUTINE_ENVS.contains(&env) {
        return Err(ApiError::invalid(format!(
            "Env must be staging or production, got {env:?}."
        )));
    }
    Ok(env.to_string())
}

fn app_id(p: &Params) -> ApiResult<String> {
    let id = p.req("AppId")?;
    if !esa::valid_app_id(id) {
        return Err(ApiError::bad(
            "InvalidParameter.appid",
            format!("The AppId {id:?} is invalid: expected app- followed by digits."),
        ));
    }
    Ok(id.to_string())
}

fn version_id(p: &Params) -> ApiResult<String> {
    let v = p.req("VersionId")?;
    if !v.starts_with("ver-") || v.len() < 5 {
        return Err(ApiError::bad(
            "InvalidParameter.VersionId",
            format!("The VersionId {v:?} is invalid: it must start with ver-."),
        ));
    }
    Ok(v.to_string())
}

fn publish_env(p: &Params) -> ApiResult<String> {
    let env = p.req("PublishEnv")?;
    if !esa::APP_ENVS.contains(&env) {
        return Err(ApiError::bad(
            "InvalidParameter.PublishEnv",
            "The specified PublishEnv is invalid. It must be prod or staging.",
        ));
    }
    Ok(env.to_string())
}

fn percentage(p: &Params) -> ApiResult<Option<i32>> {
    let bad = || {
        ApiError::bad(
            "InvalidParameter.Percentage",
            "The Percentage parameter is invalid: it must be within 1-100.",
        )
    };
    match p.int("Percentage", "InvalidParameter.Percentage")? {
        None => Ok(None),
        Some(n) if (1..=100).contains(&n) => Ok(Some(n as i32)),
        Some(_) => Err(bad()),
    }
}

fn app_mut<'a>(world: &'a mut World, id: &str) -> ApiResult<&'a mut App> {
    world.apps.get_mut(id).ok_or_else(|| {
        ApiError::not_found(
            "InvalidApp.NotFound",
            format!("The app {id} does not exist."),
        )
    })
}

fn routine_mut<'a>(world: &'a mut World, name: &str) -> ApiResult<&'a mut Routine> {
    world.routines.get_mut(name).ok_or_else(|| {
        ApiError::bad(
            "RoutineNotExist",
            "The routine name does not exist. Check the routine name and try again.",
        )
    })
}

/// Add, to each object of the array `list`, fields the official SDKs parse but the shared
/// wire model does not carry.
fn extend_items(
    mut v: Value,
    list: &str,
    extra: impl Fn(&Value) -> Vec<(&'static str, Value)>,
) -> Value {
    if let Some(Value::Array(items)) = v.get_mut(list) {
        for item in items.iter_mut() {
            let fields = extra(item);
            if let Value::Object(m) = item {
                for (k, val) in fields {
                    if !val.is_null() {
                        m.insert(k.to_string(), val);
                    }
                }
            }
        }
    }
    v
}

fn esa_dispatch(
    world: &mut World,
    action: &str,
    p: &Params,
    now: Timestamp,
    scale: f64,
) -> ApiResult<Value> {
    match action {
        "CreateRoutineCodeDeployment" => {
            let name = p.req("Name")?.to_string();
            let env = routine_env(p)?;
            let strategy = p.req("Strategy")?;
            if strategy != "percentage" {
                return Err(ApiError::invalid(format!(
                    "Strategy must be percentage, got {strategy:?}."
                )));
            }
            let splits = esa::parse_code_versions(p.req("CodeVersions")?)?;
            let id = world.next_deployment_id + 1;
            let resp = routine_mut(world, &name)?.deploy(&env, strategy, splits, id, now)?;
            world.next_deployment_id = id;
            to_json(&resp)
        }
        "GetRoutine" => {
            let name = p.req("Name")?;
            let mut v = to_json(&routine_mut(world, name)?.get())?;
            if let Value::Object(m) = &mut v {
                m.insert("HasAssets".into(), Value::Bool(false));
            }
            Ok(v)
        }
        "ListRoutineCodeVersions" => {
            let name = p.req("Name")?;
            let (page, size) = p.page(20, 20)?;
            let search = p.opt("SearchKeyWord");
            let routine = routine_mut(world, name)?;
            let deployed_in = |cv: &str| -> &'static str {
                let in_env = |env: &str| {
                    routine
                        .envs
                        .get(env)
                        .is_some_and(|d| d.splits.iter().any(|s| s.code_version == cv))
                };
                match (in_env("staging"), in_env("production")) {
                    (true, true) => "all",
                    (false, true) => "production",
                    (true, false) => "staging",
                    (false, false) => "none",
                }
            };
            let v = to_json(&routine.list_versions(page, size, search))?;
            Ok(extend_items(v, "CodeVersions", |item| {
                let cv = item["CodeVersion"].as_str().unwrap_or_default();
                vec![
                    ("DeployEnv", json!(deployed_in(cv))),
                    ("BuildId", json!(0)),
                    ("HasEnvVars", json!(false)),
                ]
            }))
        }
        "PublishRoutineCodeVersion" => {
            let name = p.req("Name")?.to_string();
            let env = routine_env(p)?;
            let version = p.req("CodeVersion")?.to_string();
            let id = world.next_deployment_id + 1;
            let split = vec![crate::cloud::model::CodeVersionSplit {
                code_version: version.clone(),
                percentage: 100,
            }];
            routine_mut(world, &name)?.deploy(&env, "percentage", split, id, now)?;
            world.next_deployment_id = id;
            Ok(json!({"CodeVersion": version}))
        }
        "PublishEdgeContainerAppVersion" => {
            let id = app_id(p)?;
            let version = version_id(p)?;
            let env = publish_env(p)?;
            let pct = percentage(p)?.unwrap_or(100);
            let publish_type = p.opt("PublishType").unwrap_or("percentage").to_string();
            if publish_type != "percentage" && publish_type != "region" {
                return Err(ApiError::bad(
                    "InvalidParameter.PublishType",
                    "PublishType must be percentage or region.",
                ));
            }
            let regions: Vec<String> = match p.opt("Regions") {
                None => Vec::new(),
                Some(raw) => serde_json::from_str(raw).map_err(|_| {
                    ApiError::bad(
                        "InvalidParameter.Regions",
                        "Regions must be a JSON array of region names.",
                    )
                })?,
            };
            if publish_type == "region" && regions.is_empty() {
                return Err(ApiError::missing("Regions"));
            }
            let full_release = p.boolean("FullRelease")?.unwrap_or(false);
            let start = match p.opt("StartTime") {
                None => None,
                Some(s) => Some(parse_iso_time(s).ok_or_else(|| {
                    ApiError::bad(
                        "InvalidParameter.StartTime",
                        "StartTime must be yyyy-MM-ddTHH:mm:ssZ (UTC).",
                    )
                })?),
            };
            let remarks = p.opt("Remarks").map(str::to_string);
            app_mut(world, &id)?.publish(
                Publish {
                    version_id: version,
                    env,
                    percentage: pct,
                    publish_type,
                    regions,
                    full_release,
                    start,
                    remarks,
                },
                now,
                scale,
            )?;
            ack(None)
        }
        "GetEdgeContainerAppStatus" => {
            let id = app_id(p)?;
            let env = publish_env(p)?;
            let app = app_mut(world, &id)?;
            to_json(&GetEdgeContainerAppStatusResponse {
                request_id: String::new(),
                app_status: Some(app.status(&env)),
            })
        }
        "RollbackEdgeContainerAppVersion" => {
            let id = app_id(p)?;
            let version = version_id(p)?;
            let pct = percentage(p)?;
            let used_percent = p.boolean("UsedPercent")?.unwrap_or(pct.is_some());
            let pct = if used_percent { pct } else { None };
            app_mut(world, &id)?.rollback(&version, pct, now, scale)?;
            ack(None)
        }
        "ListEdgeContainerAppVersions" => {
            let id = app_id(p)?;
            let (page, size) = p.page(20, 100)?;
            let search = p.opt("SearchKey");
            let v = to_json(&app_mut(world, &id)?.list_versions(page, size, search))?;
            Ok(extend_items(v, "Versions", |item| {
                vec![
                    ("AppId", json!(id)),
                    ("UpdateTime", item["CreateTime"].clone()),
                    ("LastPublishTime", item["PublishTime"].clone()),
                ]
            }))
        }
        "GetEdgeContainerAppVersion" => {
            let id = app_id(p)?;
            let version = version_id(p)?;
            let app = app_mut(world, &id)?;
            let list = app.list_versions(1, 1000, None);
            match list.versions.into_iter().find(|v| v.version_id == version) {
                Some(v) => Ok(json!({"Version": to_json(&v)?})),
                None => Err(ApiError::not_found(
                    "InvalidVersion.NotFound",
                    format!("Version {version} does not exist in app {id}."),
                )),
            }
        }
        other => Err(ApiError::not_found(
            "InvalidAction.NotFound",
            format!("unknown action {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = route(
            &Method::POST,
            "/api/v2/services/cn-shanghai/llm-chat/rollout",
            None,
        );
        assert_eq!(
            r,
            Route::Eas {
                action: "CreateServiceRollout",
                region: "cn-shanghai".into(),
                service: "llm-chat".into()
            }
        );
        assert_eq!(
            route(&Method::GET, "/api/v2/services/cn-shanghai/a%20b", None).action(),
            "DescribeService"
        );
        assert_eq!(
            route(&Method::POST, "/", Some("GetRoutine")).action(),
            "GetRoutine"
        );
        for (m, p) in [
            (Method::PATCH, "/api/v2/services/r/s"),
            (Method::GET, "/api/v2/services/r"),
            (Method::GET, "/api/v2/services/r/s/nope"),
            (Method::GET, "/api/v1/services/r/s"),
            (Method::GET, "/api/v2/services//s"),
            (Method::GET, "/%%%"),
        ] {
            assert_eq!(route(&m, p, None), Route::Unknown, "{m} {p}");
        }
        assert_eq!(route(&Method::POST, "/", None), Route::Unknown);
    }

    #[test]
    fn query_parsing_reads_plus_as_space_and_decodes_percent() {
        assert_eq!(
            parse_query(Some("a=1%2B1&b=x+y&c&=v&%ZZ=1")),
            vec![
                ("a".into(), "1+1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into()),
                ("".into(), "v".into()),
                ("%ZZ".into(), "1".into()),
            ]
        );
    }
}
