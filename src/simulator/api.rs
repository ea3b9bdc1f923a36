//! The cloud's operations: parameter parsing and validation, dispatched onto the state.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use super::clock::parse_iso_time;
use super::eas::{self, EasService};
use super::error::{ApiError, ApiResult};
use super::esa::{self, App, Publish, Routine};
use super::lag::{self, History, Lag};
use super::seed::Seed;
use super::traffic::{self, Share, Traffic};
use crate::cloud::model::{Ack, GetEdgeContainerAppStatusResponse};

pub const EAS_VERSION: &str = "2021-07-01";
pub const ESA_VERSION: &str = "2024-09-10";
pub const STS_VERSION: &str = "2015-04-01";
/// Everything the simulator knows about the cloud.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    /// Keyed by "region/name".
    pub services: BTreeMap<String, EasService>,
    pub routines: BTreeMap<String, Routine>,
    pub apps: BTreeMap<String, App>,
    pub next_deployment_id: u64,
    /// What the lagging read replica can still show (see [`lag`]).
    #[serde(skip)]
    pub history: Histories,
    /// The simulated users' requests to every version (`GET /metrics`, CloudMonitor).
    #[serde(skip)]
    pub traffic: Traffic,
}

/// Per object, its states right after its recent mutations (same keys as [`World`]).
#[derive(Debug, Default)]
pub struct Histories {
    pub services: BTreeMap<String, History<EasService>>,
    pub routines: BTreeMap<String, History<Routine>>,
    pub apps: BTreeMap<String, History<App>>,
}

/// The consistency in force for one request, and what it did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consistency {
    /// The lag this request sees (reads) or leaves behind (pauses).
    pub lag: Lag,
    /// How far back any read may look (the largest read lag configured): how much
    /// history a mutation must keep.
    pub keep: Duration,
    /// Set when this request accepted a pause whose `Paused` phase is held back.
    pub pause_delayed: bool,
    /// Set when this read was answered from the lagging view.
    pub read_lagged: bool,
}

impl Consistency {
    /// The object as the read replica shows it: its state at `now - lag.read`, moved on
    /// to that instant by `advance`; the live object when there is no read lag. Answers
    /// the state and the instant it is as of.
    fn view<'a, T: Clone>(
        &mut self,
        history: Option<&History<T>>,
        live: &'a T,
        now: Timestamp,
        advance: impl FnOnce(&mut T, Timestamp),
    ) -> (Cow<'a, T>, Timestamp) {
        if self.lag.read.is_zero() {
            return (Cow::Borrowed(live), now);
        }
        self.read_lagged = true;
        let at = lag::before(now, self.lag.read);
        let mut state = history
            .and_then(|h| h.at(at))
            .cloned()
            .unwrap_or_else(|| live.clone());
        advance(&mut state, at);
        (Cow::Owned(state), at)
    }
}

/// Remember `state` as the object `key` right after a mutation at `now`.
fn record<T: Clone>(
    histories: &mut BTreeMap<String, History<T>>,
    key: &str,
    state: &T,
    now: Timestamp,
    keep: Duration,
) {
    match histories.get_mut(key) {
        Some(h) => h.record(now, state.clone(), keep),
        None => {
            histories.insert(key.to_string(), History::new(now, state.clone()));
        }
    }
}

impl World {
    /// Bring every object to `now`, counting the traffic each version served on the way
    /// (in sub-steps, so a share that changed in between is counted as it was).
    pub fn advance(&mut self, now: Timestamp, scale: f64) {
        for (end, seconds) in self.traffic.steps(now) {
            let shares = self.shares();
            self.traffic.accrue(&shares, seconds, end);
            self.advance_objects(end, scale);
        }
        self.advance_objects(now, scale);
        if self.traffic.last.is_none() {
            self.traffic.last = Some(now);
        }
    }

    /// Every version's current share of its object's traffic.
    pub fn shares(&self) -> Vec<Share> {
        let mut out = Vec::new();
        let marked = &self.traffic.marked_bad;
        for s in self.services.values() {
            out.extend(traffic::eas_shares(s, marked));
        }
        for r in self.routines.values() {
            out.extend(traffic::routine_shares(r, marked));
        }
        for a in self.apps.values() {
            out.extend(traffic::app_shares(a, marked));
        }
        out
    }

    fn advance_objects(&mut self, now: Timestamp, scale: f64) {
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
            let key = format!("{}/{}", s.region, s.name);
            let mut svc = EasService::new(
                &s.name,
                &s.region,
                s.replicas,
                s.rollout_enabled,
                s.config.clone(),
                now,
            );
            svc.labels = s.labels.clone();
            // A seed is no mutation: it reads at once, also in the past.
            self.history
                .services
                .insert(key.clone(), History::new(now, svc.clone()));
            self.services.insert(key, svc);
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
            self.history
                .routines
                .insert(r.name.clone(), History::new(now, routine.clone()));
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
            let app = App::new(&a.id, &a.versions, a.deployed.as_deref(), now);
            self.history
                .apps
                .insert(a.id.clone(), History::new(now, app.clone()));
            self.apps.insert(a.id.clone(), app);
        }
        Ok(())
    }
}

/// RPC parameters from the query and the form body.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub(crate) fn opt(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub(crate) fn req(&self, name: &str) -> ApiResult<&str> {
        self.opt(name).ok_or_else(|| ApiError::missing(name))
    }

    pub(crate) fn int(&self, name: &str, code: &str) -> ApiResult<Option<i64>> {
        self.opt(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad(code, format!("{name} must be an integer, got {v:?}."))
                })
            })
            .transpose()
    }

    pub(crate) fn boolean(&self, name: &str) -> ApiResult<Option<bool>> {
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

    pub(crate) fn page(&self, default_size: i64, max_size: i64) -> ApiResult<(i64, i64)> {
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

pub(crate) fn to_json<T: Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::new(500, "InternalError", e.to_string()))
}

fn ack(message: Option<String>) -> ApiResult<Value> {
    to_json(&Ack {
        request_id: String::new(),
        message,
    })
}

/// Is this an ESA action the simulator serves?
pub fn esa_action(a: &str) -> bool {
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

/// The request as the operations see it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// RPC parameters: the query, then the form (or JSON) body.
pub(crate) fn rpc_params(req: &Request<'_>) -> ApiResult<Params> {
    let mut all = req.query.to_vec();
    let has_body = !req.body.iter().all(u8::is_ascii_whitespace);
    if has_body {
        let ct = req.content_type.unwrap_or_default().to_ascii_lowercase();
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

/// Does `action` change state (and so leave a history entry behind)?
pub(crate) fn mutates(action: &str) -> bool {
    matches!(
        action,
        "UpdateService"
            | "UpdateServiceVersion"
            | "CreateServiceRollout"
            | "UpdateServiceRollout"
            | "DeleteServiceRollout"
            | "UpdateServiceLabel"
            | "DeleteServiceLabel"
            | "CreateRoutineCodeDeployment"
            | "PublishRoutineCodeVersion"
            | "PublishEdgeContainerAppVersion"
            | "RollbackEdgeContainerAppVersion"
    )
}

/// The read actions answered from the lagging view.
pub const LAGGING_READS: [&str; 4] = [
    "DescribeServiceRollout",
    "DescribeService",
    "GetRoutine",
    "GetEdgeContainerAppStatus",
];

/// The actions that accept a pause (and so can hold its `Paused` phase back).
pub const PAUSING_ACTIONS: [&str; 2] = ["CreateServiceRollout", "UpdateServiceRollout"];

/// One EAS (ROA) operation on service `region/service`.
#[allow(clippy::too_many_arguments)]
pub fn eas_action(
    world: &mut World,
    action: &str,
    region: &str,
    service: &str,
    req: &Request<'_>,
    now: Timestamp,
    scale: f64,
    cx: &mut Consistency,
) -> ApiResult<Value> {
    let key = format!("{region}/{service}");
    let Some(svc) = world.services.get_mut(&key) else {
        return Err(ApiError::not_found(
            "InvalidService.NotFound",
            format!("Service {service} is not found in region {region}."),
        ));
    };
    let was_paused = svc.paused();
    let answer = eas_operation(
        svc,
        world.history.services.get(&key),
        action,
        req,
        now,
        scale,
        cx,
    )?;
    if mutates(action) {
        if PAUSING_ACTIONS.contains(&action)
            && !was_paused
            && svc.paused()
            && let Some(until) = lag::pause_visible_at(now, cx.lag.pause)
        {
            svc.pause_hidden_until = Some(until);
            cx.pause_delayed = true;
        }
        record(&mut world.history.services, &key, svc, now, cx.keep);
    }
    Ok(answer)
}

fn eas_operation(
    svc: &mut EasService,
    history: Option<&History<EasService>>,
    action: &str,
    req: &Request<'_>,
    now: Timestamp,
    scale: f64,
    cx: &mut Consistency,
) -> ApiResult<Value> {
    let query = Params(req.query.to_vec());
    match action {
        "DescribeService" => {
            let (view, _) = cx.view(history, svc, now, |s, at| s.advance(at, scale));
            to_json(&view.describe())
        }
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
            let (view, at) = cx.view(history, svc, now, |s, at| s.advance(at, scale));
            let rollout = view.describe_rollout_at(at)?;
            to_json(&crate::cloud::model::DescribeServiceRolloutResponse {
                request_id: String::new(),
                rollout: Some(rollout),
            })
        }
        "DeleteServiceRollout" => ack(Some(svc.delete_rollout(now, scale)?)),
        "UpdateServiceLabel" => ack(Some(svc.update_labels(&parse_json_body(req.body)?)?)),
        "DeleteServiceLabel" => ack(Some(svc.delete_labels(&label_keys(&query)?))),
        other => Err(ApiError::not_found(
            "InvalidAction.NotFound",
            format!("unknown action {other}"),
        )),
    }
}

/// DeleteServiceLabel's keys: `LabelKeys` (a JSON array, what the SDK sends), else the
/// deprecated `Keys` (comma-separated).
fn label_keys(query: &Params) -> ApiResult<Vec<String>> {
    if let Some(text) = query.opt("LabelKeys") {
        return serde_json::from_str::<Vec<String>>(text)
            .map_err(|_| ApiError::invalid("LabelKeys must be a JSON array of strings."));
    }
    match query.opt("Keys") {
        Some(text) => Ok(text.split(',').map(str::to_string).collect()),
        None => Err(ApiError::missing("LabelKeys")),
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

fn no_app(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidApp.NotFound",
        format!("The app {id} does not exist."),
    )
}

fn app_mut<'a>(world: &'a mut World, id: &str) -> ApiResult<&'a mut App> {
    world.apps.get_mut(id).ok_or_else(|| no_app(id))
}

fn no_routine() -> ApiError {
    ApiError::bad(
        "RoutineNotExist",
        "The routine name does not exist. Check the routine name and try again.",
    )
}

fn routine_mut<'a>(world: &'a mut World, name: &str) -> ApiResult<&'a mut Routine> {
    world.routines.get_mut(name).ok_or_else(no_routine)
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

/// One ESA (RPC) operation.
pub(crate) fn esa_dispatch(
    world: &mut World,
    action: &str,
    p: &Params,
    now: Timestamp,
    scale: f64,
    cx: &mut Consistency,
) -> ApiResult<Value> {
    let answer = esa_operation(world, action, p, now, scale, cx)?;
    if mutates(action) {
        if let Some(name) = p.opt("Name")
            && let Some(r) = world.routines.get(name)
            && action.contains("Routine")
        {
            record(&mut world.history.routines, name, r, now, cx.keep);
        }
        if let Some(id) = p.opt("AppId")
            && let Some(a) = world.apps.get(id)
            && action.contains("EdgeContainerApp")
        {
            record(&mut world.history.apps, id, a, now, cx.keep);
        }
    }
    Ok(answer)
}

fn esa_operation(
    world: &mut World,
    action: &str,
    p: &Params,
    now: Timestamp,
    scale: f64,
    cx: &mut Consistency,
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
            let live = world.routines.get(name).ok_or_else(no_routine)?;
            let (view, _) = cx.view(world.history.routines.get(name), live, now, |_, _| {});
            let mut v = to_json(&view.get())?;
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
            let live = world.apps.get(&id).ok_or_else(|| no_app(&id))?;
            let (view, _) = cx.view(world.history.apps.get(&id), live, now, |a, at| {
                a.advance(at, scale)
            });
            to_json(&GetEdgeContainerAppStatusResponse {
                request_id: String::new(),
                app_status: Some(view.status(&env)),
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
