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

use super::api::{
    self, Consistency, EAS_VERSION, ESA_VERSION, LAGGING_READS, PAUSING_ACTIONS, Params,
    STS_VERSION, World, esa_action, rpc_params, to_json,
};
use super::auth::{self, AuthState, SignedRequest, StsCredential};
use super::clock::{Clock, add, iso_time, lock};
use super::cms::{self, CMS_VERSION, cms_action};
use super::error::{ApiError, ApiResult};
use super::faults;
use super::lag::{Lag, lag_from_secs};
use super::seed::Seed;
use crate::cloud::model::ErrorBody;

const MAX_BODY: usize = 1 << 20;

// ---------------------------------------------------------------- faults

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    #[default]
    Error,
    Throttle,
    Latency,
    Drop,
    /// Send the status line and headers of the answer, then nothing for `latencyMs`
    /// (default [`DEFAULT_STALL_MS`]), then close the connection.
    Stall,
    /// The call takes effect; its answer's headers promise the whole body, half of it is
    /// sent, and the connection closes.
    Truncate,
    /// The call takes effect; its answer comes back with every field of the wrong JSON
    /// type (a string for an object, a number for a string...).
    #[serde(rename = "wrongType")]
    WrongType,
    /// The call takes effect; its answer is replaced by a body of `bytes` (default
    /// [`DEFAULT_HUGE_BYTES`]), streamed without a length.
    Huge,
}

impl FaultKind {
    /// Kinds that damage the answer of a call that took effect (`after` is implied).
    fn damages_answer(self) -> bool {
        matches!(
            self,
            FaultKind::Truncate | FaultKind::WrongType | FaultKind::Huge
        )
    }
}

/// How long a `stall` fault holds the connection when `latencyMs` is not given.
pub const DEFAULT_STALL_MS: u64 = 60_000;
/// Size of a `huge` body when `bytes` is not given: 64 MiB.
pub const DEFAULT_HUGE_BYTES: u64 = 64 << 20;
/// Largest `huge` body: 1 GiB.
pub const MAX_HUGE_BYTES: u64 = 1 << 30;

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
    /// The call takes effect first and the fault then answers in its place (an answer
    /// lost or damaged on the way back: for the caller, a mutation whose outcome is
    /// unknown). For `error`, `latency`, `drop` and `stall`; implied by `truncate`,
    /// `wrongType` and `huge`; not for `throttle` (a throttled call never takes effect).
    #[serde(default)]
    pub after: bool,
    /// Size of a `huge` body.
    #[serde(default)]
    pub bytes: Option<u64>,
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
        if self.kind == FaultKind::Throttle && self.after {
            return Err(ApiError::invalid(
                "a throttled call never takes effect: kind throttle cannot be after",
            ));
        }
        if self.bytes.is_some_and(|b| b > MAX_HUGE_BYTES) {
            return Err(ApiError::invalid("bytes must be at most 1073741824"));
        }
        if self.bytes.is_some() && self.kind != FaultKind::Huge {
            return Err(ApiError::invalid("bytes is for kind huge only"));
        }
        Ok(())
    }

    /// Whether the fault acts once the call took effect.
    fn acts_after(&self) -> bool {
        self.after || self.kind.damages_answer()
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

/// Which lag a consistency fault adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LagKind {
    /// The read APIs answer with the state as of `lagSeconds` ago.
    #[serde(rename = "readLag")]
    Read,
    /// An accepted pause reads as the unpaused phase for `lagSeconds`.
    #[serde(rename = "pauseLag")]
    Pause,
}

/// A consistency fault: more read or pause lag than the flags set, while it exists
/// (see docs/simulator.md, "Eventual consistency").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LagFaultSpec {
    /// `readLag`: one of the lagging reads; `pauseLag`: CreateServiceRollout or
    /// UpdateServiceRollout; "*"/absent: all of them.
    #[serde(default)]
    pub action: Option<String>,
    pub kind: LagKind,
    pub lag_seconds: f64,
}

impl LagFaultSpec {
    fn actions(&self) -> &'static [&'static str] {
        match self.kind {
            LagKind::Read => &LAGGING_READS,
            LagKind::Pause => &PAUSING_ACTIONS,
        }
    }

    fn validate(&self) -> ApiResult<Duration> {
        if let Some(a) = self
            .action
            .as_deref()
            .filter(|a| !a.is_empty() && *a != "*")
            && !self.actions().contains(&a)
        {
            return Err(ApiError::invalid(format!(
                "action {a:?} cannot lag this way; use one of {:?} or \"*\"",
                self.actions()
            )));
        }
        lag_from_secs(self.lag_seconds, "lagSeconds").map_err(ApiError::invalid)
    }

    fn applies_to(&self, action: &str) -> bool {
        self.actions().contains(&action)
            && match self.action.as_deref() {
                None | Some("*") | Some("") => true,
                Some(a) => a == action,
            }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LagFault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: LagFaultSpec,
    #[serde(skip)]
    lag: Duration,
    /// Reads it served from the lagging view / pauses it held back.
    pub fired: u64,
}

/// What the faults decided for one request, before or after it takes effect.
#[derive(Debug, Default)]
struct FaultOutcome {
    delay: Duration,
    error: Option<ApiError>,
    drop: bool,
    /// Headers, then nothing for this long.
    stall: Option<Duration>,
    /// How the answer is damaged (after only).
    damage: Option<Damage>,
    /// The ids of the faults that fired.
    fired: Vec<u64>,
}

impl FaultOutcome {
    /// Whether the answer is taken over (not merely delayed).
    fn takes_over(&self) -> bool {
        self.error.is_some() || self.drop || self.stall.is_some() || self.damage.is_some()
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate,
    WrongType,
    Huge(u64),
}

// ---------------------------------------------------------------- the simulator

/// Static settings of a running simulator.
#[derive(Debug, Clone)]
pub struct Settings {
    pub keys: HashMap<String, String>,
    /// Key ids whose account is not their own (several RAM users of one account).
    pub accounts: HashMap<String, String>,
    pub time_scale: f64,
    /// Requests per second per action; 0 disables.
    pub rate_limit: u32,
    /// Read and pause lag when no consistency fault adds more (`--read-lag`, `--pause-lag`).
    pub lag: Lag,
}

impl Settings {
    /// The account of a configured key pair.
    pub fn account_of_key(&self, access_key_id: &str) -> String {
        self.accounts
            .get(access_key_id)
            .cloned()
            .unwrap_or_else(|| auth::account_of_key(access_key_id))
    }
}

/// One API call in the call log (`GET /_sim/calllog`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub action: String,
    /// The access key id of the Authorization header (as claimed; `status` says whether
    /// it was accepted).
    pub access_key_id: Option<String>,
    /// The account that access key acts in (for STS credentials, the account of the role
    /// assumed), so that a test sees which account each call ran as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The HTTP status the simulator decided (a fault that answers in its place included;
    /// the caller may have seen nothing of it: a truncated answer); 0 when the connection
    /// was closed without an answer.
    pub status: u16,
    /// What the call names: `region/service` for EAS, `Name` or `AppId` (with `/Env` or
    /// `/PublishEnv`) for ESA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the call changes the cloud (not a Describe, Get or List).
    pub mutation: bool,
    /// Whether the call took effect: a mutation the simulator executed, whatever answer
    /// the caller then got.
    pub applied: bool,
    /// SHA-256 of the request's method, path, query and body: two calls with the same
    /// digest asked for the same thing.
    pub digest: String,
    /// The ids of the faults that fired on this call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<u64>,
    /// When the request was received (wall clock, microseconds since the Unix epoch), so
    /// that a benchmark can measure the time from a spec change to the call it causes.
    pub at_micros: u64,
    /// What a mutation asked for (its business parameters, sorted), so that a duplicated
    /// or contradicting mutation can be told from the log; `None` for reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The error code answered (`Throttling.User`, ...); `None` on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Whether `action` changes the cloud.
fn is_mutation(action: &str) -> bool {
    !(["Describe", "Get", "List"]
        .iter()
        .any(|p| action.starts_with(p))
        || action.starts_with("AssumeRole")
        || action == "Unknown")
}

/// The error code of an error answer, carried to the call log.
#[derive(Debug, Clone)]
struct ErrorCode(String);

/// Longest `request` text the call log keeps per call.
const MAX_LOGGED_REQUEST: usize = 2048;

/// Parameters of every RPC call that say nothing about what is asked.
const COMMON_PARAMS: [&str; 10] = [
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "SecurityToken",
];

/// What a mutation asks for (its business parameters, sorted), for the call log.
fn call_summary(route: &Route, incoming: &Incoming<'_>, action: &str) -> Option<String> {
    if !api::mutates(action) {
        return None;
    }
    let mut text = match route {
        Route::Eas { .. } => String::from_utf8_lossy(incoming.body).into_owned(),
        Route::Rpc(_) => {
            let params = rpc_params(&incoming.operation()).ok()?;
            let mut pairs: Vec<String> = params
                .pairs()
                .iter()
                .filter(|(k, _)| !COMMON_PARAMS.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            pairs.sort();
            pairs.join("&")
        }
        Route::Unknown => return None,
    };
    if text.len() > MAX_LOGGED_REQUEST {
        let mut end = MAX_LOGGED_REQUEST;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Some(text)
}

/// Shared state behind the HTTP server.
#[derive(Debug)]
pub struct Sim {
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    /// One cloud per account: a key pair sees only its own account's objects.
    worlds: Mutex<BTreeMap<String, World>>,
    /// Every seed loaded, applied to each account (a new one too), so the same names
    /// exist in every account.
    seeds: Mutex<Vec<Seed>>,
    auth: Mutex<AuthState>,
    faults: Mutex<(u64, Vec<Fault>)>,
    lag_faults: Mutex<Vec<LagFault>>,
    calls: Mutex<BTreeMap<String, u64>>,
    /// Every API call in order: action, the access key id it claims, the HTTP status.
    call_log: Mutex<Vec<CallRecord>>,
    limiter: Mutex<HashMap<String, (u64, u32)>>,
    origin: Instant,
    /// Versions marked bad by name (`POST /_sim/bad`), for every account.
    marked_bad: Mutex<std::collections::BTreeSet<String>>,
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
    fn operation(&self) -> api::Request<'_> {
        api::Request {
            query: &self.query,
            content_type: self.header("content-type"),
            body: self.body,
        }
    }

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
            Route::Rpc(a) if sts_action(a) || esa_action(a) || cms_action(a) => a,
            Route::Rpc(_) | Route::Unknown => "Unknown",
        }
    }
}

/// STS actions the simulator serves.
fn sts_action(a: &str) -> bool {
    a == "AssumeRoleWithOIDC" || a == "AssumeRole" || a == "GetCallerIdentity"
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
        ([r], "PUT") if r == "label" => "UpdateServiceLabel",
        ([r], "DELETE") if r == "label" => "DeleteServiceLabel",
        _ => return Route::Unknown,
    };
    Route::Eas {
        action,
        region: region.clone(),
        service: service.clone(),
    }
}

/// What a call names (see [`CallRecord::target`]).
fn target(route: &Route, req: &Incoming<'_>) -> Option<String> {
    match route {
        Route::Eas {
            region, service, ..
        } => Some(format!("{region}/{service}")),
        Route::Rpc(_) => {
            let params = rpc_params(&req.operation()).ok()?;
            let name = params.opt("Name").or_else(|| params.opt("AppId"))?;
            Some(
                match params.opt("Env").or_else(|| params.opt("PublishEnv")) {
                    Some(env) => format!("{name}/{env}"),
                    None => name.to_string(),
                },
            )
        }
        Route::Unknown => None,
    }
}

/// SHA-256 of what a call asks for: method, path, sorted query and body.
fn digest(req: &Incoming<'_>) -> String {
    let mut query = req.query.clone();
    query.sort();
    let mut text = format!("{} {}\n", req.method, req.raw_path).into_bytes();
    for (k, v) in &query {
        text.extend_from_slice(format!("{k}={v}\n").as_bytes());
    }
    text.extend_from_slice(req.body);
    crate::cloud::sign::sha256_hex(&text)
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

impl Sim {
    pub fn new(clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let worlds = settings
            .keys
            .keys()
            .map(|id| (settings.account_of_key(id), World::default()))
            .collect();
        Sim {
            clock,
            settings,
            worlds: Mutex::new(worlds),
            seeds: Mutex::new(Vec::new()),
            auth: Mutex::new(AuthState::default()),
            faults: Mutex::new((0, Vec::new())),
            lag_faults: Mutex::new(Vec::new()),
            calls: Mutex::new(BTreeMap::new()),
            call_log: Mutex::new(Vec::new()),
            limiter: Mutex::new(HashMap::new()),
            origin: Instant::now(),
            marked_bad: Mutex::new(Default::default()),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn seed(&self, seed: &Seed) -> ApiResult<()> {
        let now = self.now();
        let mut worlds = lock(&self.worlds);
        for w in worlds.values_mut() {
            w.advance(now, self.settings.time_scale);
            w.apply_seed(seed, now)?;
        }
        lock(&self.seeds).push(seed.clone());
        Ok(())
    }

    /// Mark versions bad by name in every account (`None`: unmark all), from now on: the
    /// traffic so far is counted first as it was.
    pub fn mark_bad(&self, versions: Option<&[String]>) {
        let now = self.now();
        let mut marked = lock(&self.marked_bad);
        match versions {
            Some(v) => marked.extend(v.iter().cloned()),
            None => marked.clear(),
        }
        for w in lock(&self.worlds).values_mut() {
            w.advance(now, self.settings.time_scale);
            w.traffic.marked_bad = marked.clone();
        }
    }

    /// The account of an access key the simulator accepts (see docs/simulator.md).
    pub fn account_of_key(&self, access_key_id: &str) -> String {
        self.settings.account_of_key(access_key_id)
    }

    /// Every API call so far, in order.
    pub fn call_log(&self) -> Vec<CallRecord> {
        lock(&self.call_log).clone()
    }

    /// Mutations that took effect more than once with the same action, target and digest
    /// (`GET /_sim/duplicates`): what a soak checks at its end without reading the whole log.
    pub fn duplicated_mutations(&self) -> Value {
        let mut seen: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        let mut applied = 0u64;
        for r in lock(&self.call_log).iter().filter(|r| r.applied) {
            applied += 1;
            let key = (
                r.action.clone(),
                r.target.clone().unwrap_or_default(),
                r.digest.clone(),
            );
            *seen.entry(key).or_default() += 1;
        }
        let duplicates: Vec<Value> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((action, target, digest), count)| {
                json!({"action": action, "target": target, "digest": digest, "count": count})
            })
            .collect();
        json!({"applied": applied, "duplicates": duplicates})
    }

    /// The account `/_sim/state` shows: the default test key's, else the first key's.
    pub fn default_account(&self) -> String {
        let id = if self
            .settings
            .keys
            .contains_key(super::DEFAULT_ACCESS_KEY_ID)
        {
            super::DEFAULT_ACCESS_KEY_ID.to_string()
        } else {
            self.settings.keys.keys().min().cloned().unwrap_or_default()
        };
        self.settings.account_of_key(&id)
    }

    /// Run `f` on `account`'s cloud, brought up to now (created from the seeds on first use).
    fn with_world<T>(&self, account: &str, f: impl FnOnce(&mut World) -> T) -> ApiResult<T> {
        let now = self.now();
        let mut worlds = lock(&self.worlds);
        if !worlds.contains_key(account) {
            let mut w = World::default();
            for seed in lock(&self.seeds).iter() {
                w.apply_seed(seed, now)?;
            }
            w.traffic.marked_bad = lock(&self.marked_bad).clone();
            worlds.insert(account.to_string(), w);
        }
        let w = worlds
            .get_mut(account)
            .ok_or_else(|| ApiError::new(500, "InternalError", "no world"))?;
        w.advance(now, self.settings.time_scale);
        Ok(f(w))
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

    /// Add a consistency fault (read or pause lag); same id sequence as [`Sim::add_fault`].
    pub fn add_lag_fault(&self, spec: LagFaultSpec) -> ApiResult<u64> {
        let lag = spec.validate()?;
        let id = {
            let mut f = lock(&self.faults);
            f.0 += 1;
            f.0
        };
        lock(&self.lag_faults).push(LagFault {
            id,
            spec,
            lag,
            fired: 0,
        });
        Ok(id)
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).1.clear();
        lock(&self.lag_faults).clear();
    }

    /// Every fault, in the order added, as the admin API lists them.
    fn list_faults(&self) -> ApiResult<Value> {
        let mut all: Vec<(u64, Value)> = Vec::new();
        for f in &lock(&self.faults).1 {
            all.push((f.id, to_json(f)?));
        }
        for f in lock(&self.lag_faults).iter() {
            all.push((f.id, to_json(f)?));
        }
        all.sort_by_key(|(id, _)| *id);
        Ok(Value::Array(all.into_iter().map(|(_, v)| v).collect()))
    }

    /// The lag in force for `action`: the flags', raised by matching consistency faults;
    /// with the ids of the read and pause faults that applied.
    fn consistency(&self, action: &str) -> (Consistency, Vec<u64>, Vec<u64>) {
        let base = self.settings.lag;
        let mut cx = Consistency {
            lag: base,
            keep: base.read,
            ..Consistency::default()
        };
        let (mut reads, mut pauses) = (Vec::new(), Vec::new());
        for f in lock(&self.lag_faults).iter() {
            if f.spec.kind == LagKind::Read {
                cx.keep = cx.keep.max(f.lag);
            }
            if !f.spec.applies_to(action) {
                continue;
            }
            let (add, ids) = match f.spec.kind {
                LagKind::Read => (
                    Lag {
                        read: f.lag,
                        pause: Duration::ZERO,
                    },
                    &mut reads,
                ),
                LagKind::Pause => (
                    Lag {
                        read: Duration::ZERO,
                        pause: f.lag,
                    },
                    &mut pauses,
                ),
            };
            cx.lag = cx.lag.max(add);
            ids.push(f.id);
        }
        (cx, reads, pauses)
    }

    /// Count what the consistency faults did for one request.
    fn count_lag(&self, cx: &Consistency, reads: &[u64], pauses: &[u64]) {
        let fired: Vec<u64> = match (cx.read_lagged, cx.pause_delayed) {
            (true, _) => reads.to_vec(),
            (_, true) => pauses.to_vec(),
            _ => return,
        };
        for f in lock(&self.lag_faults).iter_mut() {
            if fired.contains(&f.id) {
                f.fired += 1;
            }
        }
    }

    /// The default account's state after advancing it to now, as JSON.
    pub fn dump(&self) -> Value {
        self.dump_account(&self.default_account())
    }

    /// `account`'s state after advancing it to now, as JSON.
    pub fn dump_account(&self, account: &str) -> Value {
        self.with_world(account, |w| {
            serde_json::to_value(&*w).unwrap_or(Value::Null)
        })
        .unwrap_or(Value::Null)
    }

    /// The faults that fire on one call of `action`: those acting before it takes effect,
    /// and those acting after. Latencies add up; of the faults that take the answer over,
    /// the first one in each phase fires.
    fn evaluate_faults(&self, action: &str) -> (FaultOutcome, FaultOutcome) {
        let mut before = FaultOutcome::default();
        let mut after = FaultOutcome::default();
        let mut guard = lock(&self.faults);
        for f in guard.1.iter_mut() {
            if !f.spec.matches(action) {
                continue;
            }
            if f.spec.count.is_some_and(|c| f.fired >= c) {
                continue;
            }
            let out = if f.spec.acts_after() {
                &mut after
            } else {
                &mut before
            };
            if f.spec.kind != FaultKind::Latency && out.takes_over() {
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
                FaultKind::Drop => out.drop = true,
                FaultKind::Stall => {
                    out.stall = Some(Duration::from_millis(
                        f.spec.latency_ms.unwrap_or(DEFAULT_STALL_MS),
                    ));
                }
                FaultKind::Truncate => out.damage = Some(Damage::Truncate),
                FaultKind::WrongType => out.damage = Some(Damage::WrongType),
                FaultKind::Huge => {
                    out.damage = Some(Damage::Huge(f.spec.bytes.unwrap_or(DEFAULT_HUGE_BYTES)))
                }
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
            out.fired.push(f.id);
        }
        (before, after)
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

    /// Answer one HTTP request; `None`: close the connection without an answer (a `drop`
    /// fault). The caller runs it to the end even when the client goes away (a cloud does
    /// not undo a call because its caller stopped waiting).
    pub async fn handle(
        self: Arc<Self>,
        req: http::Request<hyper::body::Incoming>,
    ) -> Option<Response<Body>> {
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
                return Some(self.error_response(&request_id, &host, "Unknown", e));
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

        if raw_path == "/metrics" && parts.method == Method::GET {
            return Some(self.metrics_response(&incoming));
        }
        if raw_path == "/_sim" || raw_path.starts_with("/_sim/") {
            let (status, value) = self.admin(&incoming);
            return Some(json_response(status, &request_id, &value, None));
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
        let at_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let request = call_summary(&route, &incoming, &action);
        *lock(&self.calls).entry(action.clone()).or_insert(0) += 1;
        let access_key_id = incoming
            .header("authorization")
            .and_then(crate::cloud::sign::parse_authorization)
            .map(|p| p.access_key_id);
        let mut fired = Vec::new();
        // Logged before the answer goes out (a stalled answer never finishes).
        let (response, applied) = self
            .answer(&incoming, &route, &action, &request_id, &host, &mut fired)
            .await;
        let account = access_key_id
            .as_deref()
            .map(|key| match self.settings.accounts.get(key) {
                Some(account) => account.clone(),
                None => auth::account_of(&lock(&self.auth), key),
            });
        lock(&self.call_log).push(CallRecord {
            account,
            target: target(&route, &incoming),
            mutation: is_mutation(&action),
            applied,
            digest: digest(&incoming),
            faults: fired,
            action,
            access_key_id,
            status: response.as_ref().map_or(0, |r| r.status().as_u16()),
            at_micros,
            request,
            code: response
                .as_ref()
                .and_then(|r| r.extensions().get::<ErrorCode>())
                .map(|c| c.0.clone()),
        });
        response
    }

    /// `GET /metrics`: the simulated traffic of an account (`?account=`, default the
    /// default account's) in the Prometheus text format. Unsigned, like `/_sim/`, and not
    /// in the call log (a scraper polls it every second).
    fn metrics_response(&self, req: &Incoming<'_>) -> Response<Body> {
        let account = req
            .query
            .iter()
            .find(|(k, _)| k == "account")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| self.default_account());
        // Only an account that exists: an unsigned scrape creates nothing.
        let known = lock(&self.worlds).contains_key(&account);
        let text = if known {
            self.with_world(&account, |w| w.traffic.render())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut resp = Response::new(Body::from(text));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        resp
    }

    /// The answer to one call (`None`: close the connection without one), and whether
    /// the call took effect (a mutation executed).
    async fn answer(
        &self,
        incoming: &Incoming<'_>,
        route: &Route,
        action: &str,
        request_id: &str,
        host: &str,
        fired: &mut Vec<u64>,
    ) -> (Option<Response<Body>>, bool) {
        let (before, after) = self.evaluate_faults(action);
        fired.extend(before.fired.iter().chain(&after.fired));
        if let Some(r) = self
            .fault_answer(before, None, request_id, host, action)
            .await
        {
            return (r, false);
        }
        if self.over_rate_limit(action) {
            let e = ApiError::throttled();
            return (
                Some(self.error_response(request_id, host, action, e)),
                false,
            );
        }
        let result = self.dispatch(route, incoming);
        let applied = result.is_ok() && is_mutation(action);
        let (status, body, retry_after) = match result {
            Ok(value) => {
                tracing::info!(action = %action, status = 200, request_id = %request_id, "simulator: ok");
                (StatusCode::OK, with_request_id(value, request_id), None)
            }
            Err(e) => {
                let retry_after = e.retry_after;
                let status = e.status;
                (
                    status,
                    self.error_body(request_id, host, action, e),
                    retry_after,
                )
            }
        };
        let answer = (status, body, retry_after);
        if let Some(r) = self
            .fault_answer(after, Some(&answer), request_id, host, action)
            .await
        {
            return (r, applied);
        }
        let (status, body, retry_after) = answer;
        (
            Some(json_response(status, request_id, &body, retry_after)),
            applied,
        )
    }

    /// The answer the faults of one phase give instead of the real one, if they take it
    /// over (after a latency they add); `Some(None)` closes the connection without an
    /// answer. `real` is the real answer, for the faults that damage it (after the call
    /// took effect).
    async fn fault_answer(
        &self,
        faults: FaultOutcome,
        real: Option<&(StatusCode, Value, Option<u64>)>,
        request_id: &str,
        host: &str,
        action: &str,
    ) -> Option<Option<Response<Body>>> {
        if !faults.delay.is_zero() {
            tokio::time::sleep(faults.delay).await;
        }
        if faults.drop {
            tracing::info!(action = %action, request_id = %request_id, "simulator: dropping the connection (fault)");
            return Some(None);
        }
        if let Some(e) = faults.error {
            return Some(Some(self.error_response(request_id, host, action, e)));
        }
        let (status, body) = match real {
            Some((status, body, _)) => (*status, body.clone()),
            None => (StatusCode::OK, json!({"RequestId": request_id})),
        };
        if let Some(hold) = faults.stall {
            tracing::info!(action = %action, request_id = %request_id, "simulator: headers, then a stall (fault)");
            return Some(Some(faults::stalled(status, request_id, hold)));
        }
        let damage = faults.damage?;
        tracing::info!(action = %action, request_id = %request_id, ?damage, "simulator: damaged answer (fault)");
        Some(Some(match damage {
            Damage::Truncate => faults::truncated(status, request_id, &body),
            Damage::WrongType => {
                json_response(status, request_id, &faults::wrong_types(&body), None)
            }
            Damage::Huge(bytes) => faults::huge(status, request_id, bytes),
        }))
    }

    fn error_body(&self, request_id: &str, host: &str, action: &str, e: ApiError) -> Value {
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
            code: e.code,
            message: e.message,
        };
        serde_json::to_value(&body).unwrap_or(Value::Null)
    }

    fn error_response(
        &self,
        request_id: &str,
        host: &str,
        action: &str,
        e: ApiError,
    ) -> Response<Body> {
        let (status, retry_after, code) = (e.status, e.retry_after, e.code.clone());
        let value = self.error_body(request_id, host, action, e);
        let mut response = json_response(status, request_id, &value, retry_after);
        // For the call log.
        response.extensions_mut().insert(ErrorCode(code));
        response
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
            Route::Rpc(a) if sts_action(a) => (STS_VERSION, a.as_str()),
            Route::Rpc(a) if esa_action(a) => (ESA_VERSION, a.as_str()),
            Route::Rpc(a) if cms_action(a) => (CMS_VERSION, a.as_str()),
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
            let params = rpc_params(&req.operation())?;
            return self.assume_role_with_oidc(&params, now);
        }
        let account = {
            let signed = SignedRequest {
                method: req.method.as_str(),
                raw_path: req.raw_path,
                query: &req.query,
                headers: &req.headers,
                body: req.body,
            };
            let mut a = lock(&self.auth);
            let key = auth::verify(&self.settings.keys, &mut a, &signed, now)?;
            match self.settings.accounts.get(&key) {
                Some(account) => account.clone(),
                None => auth::account_of(&a, &key),
            }
        };
        if action == "AssumeRole" {
            let params = rpc_params(&req.operation())?;
            return self.assume_role(&params, now);
        }
        if action == "GetCallerIdentity" {
            return Ok(json!({
                "IdentityType": "RAMUser",
                "AccountId": account,
                "PrincipalId": format!("2{}", account.get(1..).unwrap_or_default()),
                "UserId": format!("2{}", account.get(1..).unwrap_or_default()),
                "Arn": format!("acs:ram::{account}:user/simulator"),
            }));
        }
        let scale = self.settings.time_scale;
        let (mut cx, reads, pauses) = self.consistency(action);
        let answer = self.with_world(&account, |world| match route {
            Route::Eas {
                action,
                region,
                service,
            } => api::eas_action(
                world,
                action,
                region,
                service,
                &req.operation(),
                now,
                scale,
                &mut cx,
            ),
            Route::Rpc(a) if cms_action(a) => {
                let params = rpc_params(&req.operation())?;
                cms::dispatch(world, a, &params, now, &account)
            }
            Route::Rpc(a) => {
                let params = rpc_params(&req.operation())?;
                api::esa_dispatch(world, a, &params, now, scale, &mut cx)
            }
            Route::Unknown => Err(ApiError::not_found("InvalidAction.NotFound", "unknown")),
        })?;
        self.count_lag(&cx, &reads, &pauses);
        answer
    }

    /// STS AssumeRole, signed by the caller's own key: credentials of the role's account
    /// (from its ARN), which the simulator then accepts and attributes to that account.
    /// Every caller may assume every role (no trust policies are modelled).
    fn assume_role(&self, p: &Params, now: Timestamp) -> ApiResult<Value> {
        let role_arn = p.req("RoleArn")?;
        let account = role_arn
            .strip_prefix("acs:ram::")
            .and_then(|r| r.split_once(":role/"))
            .filter(|(a, role)| {
                !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) && !role.is_empty()
            })
            .map(|(a, _)| a.to_string())
            .ok_or_else(|| {
                ApiError::bad(
                    "InvalidParameter.RoleArn",
                    "RoleArn must look like acs:ram::<account id>:role/<name>.",
                )
            })?;
        let session = p.req("RoleSessionName")?.to_string();
        if !(2..=64).contains(&session.len()) {
            return Err(ApiError::bad(
                "InvalidParameter.RoleSessionName",
                "RoleSessionName must be 2-64 characters.",
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
        let expires = add(now, Duration::from_secs(duration.unsigned_abs()));
        let access_key_id = format!("STS.{}", auth::random_hex(12));
        let cred = StsCredential {
            account: account.clone(),
            secret: auth::random_hex(16),
            token: format!("CAIS{}", auth::random_hex(48)),
            expires,
        };
        let body = json!({
            "AssumedRoleUser": {
                "AssumedRoleId": format!("300000000000000000:{session}"),
                "Arn": format!("acs:ram::{account}:assumed-role/{}/{session}",
                    role_arn.rsplit('/').next().unwrap_or_default()),
            },
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
        let account = role_arn
            .strip_prefix("acs:ram::")
            .and_then(|r| r.split(':').next())
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| self.default_account());
        let cred = StsCredential {
            account,
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

    /// `POST /_sim/faults`: a consistency fault (`kind` readLag/pauseLag) or another one.
    fn add_fault_json(&self, body: &[u8]) -> ApiResult<u64> {
        let bad = |e: serde_json::Error| ApiError::invalid(format!("bad fault: {e}"));
        let value: Value = serde_json::from_slice(body).map_err(bad)?;
        let is_lag = matches!(
            value.get("kind").and_then(Value::as_str),
            Some("readLag" | "pauseLag")
        );
        if is_lag {
            self.add_lag_fault(serde_json::from_value(value).map_err(bad)?)
        } else {
            self.add_fault(serde_json::from_value(value).map_err(bad)?)
        }
    }

    fn admin(&self, req: &Incoming<'_>) -> (StatusCode, Value) {
        let result: ApiResult<Value> = match (req.method.as_str(), req.raw_path) {
            ("GET", "/_sim/state") => Ok(match req.query.iter().find(|(k, _)| k == "account") {
                Some((_, account)) => self.dump_account(account),
                None => self.dump(),
            }),
            ("GET", "/_sim/accounts") => {
                let accounts: BTreeMap<&String, String> = self
                    .settings
                    .keys
                    .keys()
                    .map(|id| (id, self.settings.account_of_key(id)))
                    .collect();
                to_json(&accounts)
            }
            ("POST", "/_sim/seed") => serde_yaml::from_slice::<Seed>(req.body)
                .map_err(|e| ApiError::invalid(format!("bad seed: {e}")))
                .and_then(|s| self.seed(&s))
                .map(|_| json!({"ok": true})),
            ("POST", "/_sim/reset") => {
                for w in lock(&self.worlds).values_mut() {
                    *w = World::default();
                }
                lock(&self.seeds).clear();
                lock(&self.marked_bad).clear();
                lock(&self.calls).clear();
                lock(&self.call_log).clear();
                self.clear_faults();
                Ok(json!({"ok": true}))
            }
            ("GET", "/_sim/calls") => to_json(&self.calls()),
            ("GET", "/_sim/calllog") => {
                // `?since=N`: only the calls after the first N (a reader that follows the
                // log does not fetch it whole each time).
                let since = req
                    .query
                    .iter()
                    .find(|(k, _)| k == "since")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let log = lock(&self.call_log);
                to_json(&log.get(since..).unwrap_or_default())
            }
            ("GET", "/_sim/duplicates") => Ok(self.duplicated_mutations()),
            ("DELETE", "/_sim/calls") => {
                lock(&self.calls).clear();
                lock(&self.call_log).clear();
                Ok(json!({"ok": true}))
            }
            ("GET", "/_sim/bad") => to_json(&*lock(&self.marked_bad)),
            ("POST", "/_sim/bad") => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Bad {
                    versions: Vec<String>,
                }
                serde_json::from_slice::<Bad>(req.body)
                    .map_err(|e| ApiError::invalid(format!("bad body: {e}")))
                    .map(|b| {
                        self.mark_bad(Some(&b.versions));
                        json!({"ok": true})
                    })
            }
            ("DELETE", "/_sim/bad") => {
                self.mark_bad(None);
                Ok(json!({"ok": true}))
            }
            ("GET", "/_sim/faults") => self.list_faults(),
            ("POST", "/_sim/faults") => self.add_fault_json(req.body).map(|id| json!({"id": id})),
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
