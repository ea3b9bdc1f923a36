//! PAI-EAS services, versions and rollouts, moving with time.
//!
//! Model: a service has `replicas`; `updated` of them run the target version
//! (`UpdateRevision`), the rest the stable one (`CurrentRevision`). Progress is computed
//! lazily: [`EasService::advance`] replays every step due up to "now".

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

use super::clock::{add, eas_time, iso_time, since};
use super::error::{ApiError, ApiResult};
use crate::cloud::model::{
    BatchConfig, ListServiceVersionsResponse, PartitionConfig, Rollout, RolloutStatus,
    RolloutStrategy, Service, ServiceLabel, ServiceRolloutRequest, ServiceVersion,
};

/// Delay before the replicas are replaced when the service has no rollout.
pub const ALL_AT_ONCE_DELAY: Duration = Duration::from_secs(2);
/// Delay before the first batch of a rollout, and between partition moves.
pub const TICK: Duration = Duration::from_secs(1);
pub const DEFAULT_BATCH_SIZE: &str = "25%";
pub const DEFAULT_INTERVAL: &str = "60s";
pub const ROLLOUT_LABEL: &str = "eas.aliyun.com/enable-rollout";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRec {
    pub version: i64,
    pub revision: String,
    pub config: Value,
    pub build_time: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Strategy {
    Partition(String),
    Batch { size: String, interval: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCfg {
    pub strategy: Strategy,
    pub paused: bool,
    /// Time left to the next step when paused.
    #[serde(skip)]
    pub paused_remaining: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EasService {
    pub name: String,
    pub region: String,
    pub replicas: i64,
    pub rollout_enabled: bool,
    pub versions: Vec<VersionRec>,
    /// Version all non-updated replicas run.
    pub stable: i64,
    /// Version being rolled out (equal to `stable` when settled).
    pub target: i64,
    /// Replicas on `target`.
    pub updated: i64,
    pub rollout: Option<RolloutCfg>,
    pub next_step_at: Option<Timestamp>,
    /// Steps taken toward the current target (0: Pending).
    pub steps: u64,
    pub failed: bool,
    /// An accepted pause reads as the unpaused phase until then (`--pause-lag`).
    pub pause_hidden_until: Option<Timestamp>,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
    /// Service labels (UpdateServiceLabel / DeleteServiceLabel): no version, no rollout.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The longest label key or value the simulator accepts, in bytes (see
/// docs/simulator.md: the reading of PAI's label limits).
pub const MAX_LABEL_BYTES: usize = 128;

/// Parse "5" or "50%" into the replica count it means for `total` (percentages round up).
pub fn resolve_int_or_percent(v: &str, total: i64) -> Option<i64> {
    let v = v.trim();
    if let Some(p) = v.strip_suffix('%') {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
            return None;
        }
        let p: i64 = p.parse().ok()?;
        if p > 100 {
            return None;
        }
        Some((total * p + 99) / 100)
    } else {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 9 {
            return None;
        }
        v.parse().ok()
    }
}

/// Parse "60s", "5m", "1h" (positive).
pub fn parse_interval(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.len() < 2 || v.len() > 10 || !v.is_ascii() {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    if !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn revision(name: &str, version: i64, config: &Value) -> String {
    let hash = crate::cloud::sign::sha256_hex(config.to_string().as_bytes());
    format!("{name}-{}-v{version}", &hash[..6])
}

/// What `UpdateType=merge` does to a service config (shared with the in-memory fake).
pub use crate::cloud::model::merge_patch;

fn config_replicas(config: &Value) -> Option<i64> {
    config
        .pointer("/metadata/instance")
        .and_then(Value::as_i64)
        .filter(|n| (0..=10_000).contains(n))
}

fn config_enables_rollout(config: &Value) -> bool {
    let label = config
        .pointer("/metadata/labels")
        .or_else(|| config.get("labels"))
        .and_then(|l| l.get(ROLLOUT_LABEL));
    matches!(label, Some(Value::String(s)) if s == "true")
        || matches!(label, Some(Value::Bool(true)))
}

pub(crate) fn image_of(config: &Value) -> Option<String> {
    config
        .pointer("/containers/0/image")
        .or_else(|| config.get("processor_entry"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl EasService {
    pub fn new(
        name: &str,
        region: &str,
        replicas: i64,
        rollout_enabled: bool,
        config: Option<Value>,
        now: Timestamp,
    ) -> Self {
        let config = config.unwrap_or_else(|| {
            serde_json::json!({
                "metadata": {"name": name, "instance": replicas},
                "containers": [{"image": format!("registry.{region}.aliyuncs.com/demo/{name}:v1")}],
            })
        });
        let replicas = config_replicas(&config).unwrap_or(replicas).max(0);
        let rollout_enabled = rollout_enabled || config_enables_rollout(&config);
        EasService {
            name: name.to_string(),
            region: region.to_string(),
            replicas,
            rollout_enabled,
            versions: vec![VersionRec {
                version: 1,
                revision: revision(name, 1, &config),
                config,
                build_time: now,
            }],
            stable: 1,
            target: 1,
            updated: replicas,
            rollout: None,
            next_step_at: None,
            steps: 1,
            failed: false,
            pause_hidden_until: None,
            create_time: now,
            update_time: now,
            labels: BTreeMap::new(),
        }
    }

    /// UpdateServiceLabel: add or overwrite labels (body `{"Labels": {k: v}}`).
    pub fn update_labels(&mut self, body: &Value) -> ApiResult<String> {
        let Some(labels) = body.get("Labels").and_then(Value::as_object) else {
            return Err(ApiError::missing("Labels"));
        };
        if labels.is_empty() {
            return Err(ApiError::invalid("Labels must name at least one label."));
        }
        let mut parsed = Vec::new();
        for (k, v) in labels {
            let Some(v) = v.as_str() else {
                return Err(ApiError::invalid(format!(
                    "label {k:?}: the value must be a string."
                )));
            };
            check_label(k, v)?;
            parsed.push((k.clone(), v.to_string()));
        }
        self.labels.extend(parsed);
        Ok(format!("Succeed to update service [{}] labels.", self.name))
    }

    /// DeleteServiceLabel: remove the labels named (keys not there are ignored).
    pub fn delete_labels(&mut self, keys: &[String]) -> String {
        for k in keys {
            self.labels.remove(k);
        }
        format!("Succeed to delete service [{}] labels.", self.name)
    }

    fn version(&self, v: i64) -> Option<&VersionRec> {
        self.versions.iter().find(|r| r.version == v)
    }

    fn latest(&self) -> i64 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0)
    }

    fn target_fails(&self) -> bool {
        self.version(self.target)
            .and_then(|v| image_of(&v.config))
            .is_some_and(|img| img.contains("fail"))
    }

    /// How many replicas should end on the target under the current strategy.
    fn goal(&self) -> i64 {
        if self.target == self.stable {
            return self.replicas;
        }
        match self.rollout.as_ref().map(|r| &r.strategy) {
            Some(Strategy::Partition(p)) => {
                let keep = resolve_int_or_percent(p, self.replicas).unwrap_or(0);
                (self.replicas - keep).clamp(0, self.replicas)
            }
            _ => self.replicas,
        }
    }

    fn step_gap(&self, scale: f64) -> Duration {
        let d = match self.rollout.as_ref().map(|r| &r.strategy) {
            None => ALL_AT_ONCE_DELAY,
            Some(Strategy::Partition(_)) => TICK,
            Some(Strategy::Batch { interval, .. }) => parse_interval(interval).unwrap_or(TICK),
        };
        scaled(d, scale)
    }

    pub(crate) fn paused(&self) -> bool {
        self.rollout.as_ref().is_some_and(|r| r.paused)
    }

    /// Schedule a step soon if there is something to do and nothing is scheduled.
    fn wake(&mut self, now: Timestamp, delay: Duration) {
        if self.updated != self.goal() && self.next_step_at.is_none() && !self.failed {
            self.next_step_at = Some(add(now, delay));
        }
    }

    /// Replay every step due at or before `now`.
    pub fn advance(&mut self, now: Timestamp, scale: f64) {
        // Bounded: each iteration moves at least one replica or stops.
        for _ in 0..100_000 {
            if self.paused() || self.failed {
                return;
            }
            let Some(at) = self.next_step_at else { return };
            if at > now {
                return;
            }
            if self.target_fails() {
                self.failed = true;
                self.next_step_at = None;
                return;
            }
            let goal = self.goal();
            let batch = match self.rollout.as_ref().map(|r| &r.strategy) {
                Some(Strategy::Batch { size, .. }) => resolve_int_or_percent(size, self.replicas)
                    .unwrap_or(1)
                    .max(1),
                Some(Strategy::Partition(_)) => 1,
                None => self.replicas.max(1),
            };
            if self.updated < goal {
                self.updated = (self.updated + batch).min(goal);
            } else if self.updated > goal {
                self.updated = (self.updated - batch).max(goal);
            }
            self.steps += 1;
            self.update_time = at;
            if self.updated >= self.replicas {
                self.updated = self.replicas;
                self.stable = self.target;
                self.next_step_at = None;
                return;
            }
            if self.updated == self.goal() {
                self.next_step_at = None;
                return;
            }
            self.next_step_at = Some(add(at, self.step_gap(scale)));
        }
    }

    /// Start moving to `version` (a new one or an older one).
    fn retarget(&mut self, version: i64, now: Timestamp, scale: f64) {
        if version == self.target {
            return;
        }
        self.updated = if version == self.stable {
            self.replicas - self.updated
        } else {
            0
        };
        self.target = version;
        self.steps = 0;
        self.failed = false;
        self.next_step_at = None;
        if self.updated >= self.replicas {
            self.updated = self.replicas;
            self.stable = self.target;
            return;
        }
        let first = if self.rollout.is_some() {
            TICK
        } else {
            ALL_AT_ONCE_DELAY
        };
        self.wake(now, scaled(first, scale));
        if let Some(r) = self.rollout.as_mut().filter(|r| r.paused) {
            r.paused_remaining = Some(scaled(first, scale));
        }
    }

    // ------------------------------------------------------------ actions

    pub fn describe(&self) -> Service {
        let cfg = self.version(self.target).map(|v| &v.config);
        let (status, reason) = if self.failed {
            ("Failed", "The new revision failed to start.")
        } else if self.updated != self.replicas {
            ("Updating", "The service is being updated.")
        } else {
            ("Running", "The service is running.")
        };
        Service {
            request_id: String::new(),
            service_name: Some(self.name.clone()),
            region: Some(self.region.clone()),
            status: Some(status.to_string()),
            reason: Some(status.to_ascii_uppercase()),
            message: Some(reason.to_string()),
            image: cfg.and_then(image_of),
            current_version: Some(self.target),
            latest_version: Some(self.latest()),
            total_instance: Some(self.replicas),
            running_instance: Some(self.replicas),
            pending_instance: Some(0),
            service_config: cfg.map(Value::to_string),
            update_time: Some(iso_time(self.update_time)),
            create_time: Some(iso_time(self.create_time)),
            labels: (!self.labels.is_empty()).then(|| {
                self.labels
                    .iter()
                    .map(|(k, v)| ServiceLabel {
                        label_key: Some(k.clone()),
                        label_value: Some(v.clone()),
                    })
                    .collect()
            }),
        }
    }

    /// UpdateService: a new version from the merged or replaced config.
    pub fn update(
        &mut self,
        body: &Value,
        replace: bool,
        now: Timestamp,
        scale: f64,
    ) -> ApiResult<String> {
        if !body.is_object() {
            return Err(ApiError::invalid(
                "The service config must be a JSON object.",
            ));
        }
        if body.as_object().is_some_and(Map::is_empty) {
            return Err(ApiError::invalid("The service config is empty."));
        }
        let mut config = if replace {
            body.clone()
        } else {
            self.version(self.target)
                .map(|v| v.config.clone())
                .unwrap_or_else(|| Value::Object(Map::new()))
        };
        if !replace {
            merge_patch(&mut config, body);
        }
        if let Some(n) = config_replicas(&config) {
            self.replicas = n;
            self.updated = self.updated.min(n);
        }
        let version = self.latest() + 1;
        self.versions.push(VersionRec {
            version,
            revision: revision(&self.name, version, &config),
            config,
            build_time: now,
        });
        self.update_time = now;
        self.retarget(version, now, scale);
        Ok(format!(
            "Service [{}] is updating to version {version}",
            self.name
        ))
    }

    pub fn list_versions(&self, page: i64, size: i64) -> ListServiceVersionsResponse {
        let mut all: Vec<&VersionRec> = self.versions.iter().collect();
        all.sort_by_key(|v| std::cmp::Reverse(v.version));
        let skip = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
        let take = usize::try_from(size).unwrap_or(0);
        ListServiceVersionsResponse {
            request_id: String::new(),
            versions: all
                .into_iter()
                .skip(skip)
                .take(take)
                .map(|v| ServiceVersion {
                    image_id: Some(v.version),
                    image_available: Some("true".into()),
                    build_time: Some(iso_time(v.build_time)),
                    service_config: Some(v.config.to_string()),
                    message: Some(v.revision.clone()),
                })
                .collect(),
            total_count: Some(self.versions.len() as i64),
            page_number: Some(page),
            page_size: Some(size),
        }
    }

    pub fn update_version(
        &mut self,
        version: i64,
        now: Timestamp,
        scale: f64,
    ) -> ApiResult<String> {
        if version <= 0 || self.version(version).is_none() {
            return Err(ApiError::invalid(format!(
                "Version {version} does not exist for service {} (1..={}).",
                self.name,
                self.latest()
            )));
        }
        self.update_time = now;
        self.retarget(version, now, scale);
        Ok(format!(
            "Service [{}] is updating to version {version}",
            self.name
        ))
    }

    fn rollout_or_404(&self) -> ApiResult<&RolloutCfg> {
        self.rollout.as_ref().ok_or_else(|| {
            ApiError::not_found(
                "InvalidRollout.NotFound",
                format!("Service {} has no rollout.", self.name),
            )
        })
    }

    pub fn create_rollout(
        &mut self,
        req: &ServiceRolloutRequest,
        now: Timestamp,
        scale: f64,
    ) -> ApiResult<String> {
        if !self.rollout_enabled {
            return Err(ApiError::bad(
                "InvalidRollout.NotEnabled",
                format!(
                    "The rollout feature is not enabled for service {} (label {ROLLOUT_LABEL}).",
                    self.name
                ),
            ));
        }
        if self.rollout.is_some() {
            return Err(ApiError::bad(
                "InvalidRollout.AlreadyExists",
                format!("Service {} already has a rollout.", self.name),
            ));
        }
        validate_rollout_request(req, false)?;
        let strategy = match (&req.partition, &req.batch) {
            (Some(p), _) => Strategy::Partition(p.partition.trim().to_string()),
            (None, b) => batch_strategy(b.as_ref(), None),
        };
        let paused = req.paused.unwrap_or(false);
        self.rollout = Some(RolloutCfg {
            strategy,
            paused,
            paused_remaining: None,
        });
        self.next_step_at = None;
        self.wake(now, scaled(TICK, scale));
        if paused {
            self.pause(now);
        }
        Ok("Rollout created successfully".to_string())
    }

    fn pause(&mut self, now: Timestamp) {
        let remaining = self.next_step_at.map(|at| since(at, now));
        if let Some(r) = self.rollout.as_mut() {
            r.paused = true;
            r.paused_remaining = remaining;
        }
    }

    fn resume(&mut self, now: Timestamp, scale: f64) {
        self.pause_hidden_until = None;
        let remaining = self.rollout.as_mut().and_then(|r| {
            r.paused = false;
            r.paused_remaining.take()
        });
        self.next_step_at = remaining.map(|d| add(now, d));
        self.wake(now, scaled(TICK, scale));
    }

    pub fn update_rollout(
        &mut self,
        req: &ServiceRolloutRequest,
        now: Timestamp,
        scale: f64,
    ) -> ApiResult<String> {
        let current = self.rollout_or_404()?.clone();
        validate_rollout_request(req, true)?;
        let mut message = "Rollout updated successfully";
        if let Some(p) = &req.partition {
            self.rollout_mut().strategy = Strategy::Partition(p.partition.trim().to_string());
            self.next_step_at = None;
        } else if let Some(b) = &req.batch {
            let previous = match &current.strategy {
                Strategy::Batch { size, interval } => Some((size.clone(), interval.clone())),
                Strategy::Partition(_) => None,
            };
            let was_batch = previous.is_some();
            self.rollout_mut().strategy = batch_strategy(Some(b), previous);
            if !was_batch {
                self.next_step_at = None;
            }
        }
        match req.paused {
            Some(true) if !current.paused => {
                if req.partition.is_some() || req.batch.is_some() {
                    self.wake(now, scaled(TICK, scale));
                }
                self.pause(now);
                message = "Rollout paused successfully";
            }
            Some(false) if current.paused => {
                self.resume(now, scale);
                message = "Rollout resumed successfully";
            }
            _ => {
                if self.paused() {
                    if self.next_step_at.is_none() {
                        self.wake(now, scaled(TICK, scale));
                        self.pause(now);
                    }
                } else {
                    self.wake(now, scaled(TICK, scale));
                }
            }
        }
        Ok(message.to_string())
    }

    fn rollout_mut(&mut self) -> &mut RolloutCfg {
        self.rollout.get_or_insert_with(|| RolloutCfg {
            strategy: Strategy::Partition("0".into()),
            paused: false,
            paused_remaining: None,
        })
    }

    /// DescribeServiceRollout as the cloud's primary sees it (every pause visible).
    pub fn describe_rollout(&self) -> ApiResult<Rollout> {
        self.describe_rollout_at(Timestamp::MAX)
    }

    /// DescribeServiceRollout at `at`: a pause still inside its `--pause-lag` window reads
    /// as the phase the rollout would have without it.
    pub fn describe_rollout_at(&self, at: Timestamp) -> ApiResult<Rollout> {
        let r = self.rollout_or_404()?;
        let paused = r.paused && !super::lag::hidden(at, self.pause_hidden_until);
        let phase = if paused {
            "Paused"
        } else if self.failed {
            "Failed"
        } else if self.updated >= self.replicas {
            "Completed"
        } else if self.steps == 0 {
            "Pending"
        } else {
            "Running"
        };
        let strategy = match &r.strategy {
            Strategy::Partition(p) => RolloutStrategy {
                partition: Some(PartitionConfig {
                    partition: p.clone(),
                }),
                batch: None,
            },
            Strategy::Batch { size, interval } => RolloutStrategy {
                partition: None,
                batch: Some(BatchConfig {
                    batch_size: Some(size.clone()),
                    interval: Some(interval.clone()),
                }),
            },
        };
        let next = match (&r.strategy, paused) {
            (Strategy::Batch { .. }, false) => self.next_step_at.map(eas_time),
            _ => None,
        };
        Ok(Rollout {
            strategy: Some(strategy),
            status: Some(RolloutStatus {
                phase: Some(phase.to_string()),
                total_replicas: Some(self.replicas),
                updated_replicas: Some(self.updated),
                current_revision: self.version(self.stable).map(|v| v.revision.clone()),
                update_revision: self.version(self.target).map(|v| v.revision.clone()),
                next_batch_start_time: next,
            }),
        })
    }

    pub fn delete_rollout(&mut self, now: Timestamp, scale: f64) -> ApiResult<String> {
        self.rollout_or_404()?;
        self.rollout = None;
        self.pause_hidden_until = None;
        // Whatever is in flight now finishes all at once.
        self.next_step_at = None;
        self.wake(now, scaled(ALL_AT_ONCE_DELAY, scale));
        Ok("Rollout deleted successfully".to_string())
    }
}

fn batch_strategy(b: Option<&BatchConfig>, previous: Option<(String, String)>) -> Strategy {
    let (prev_size, prev_interval) =
        previous.unwrap_or_else(|| (DEFAULT_BATCH_SIZE.to_string(), DEFAULT_INTERVAL.to_string()));
    Strategy::Batch {
        size: b
            .and_then(|b| b.batch_size.clone())
            .map(|s| s.trim().to_string())
            .unwrap_or(prev_size),
        interval: b
            .and_then(|b| b.interval.clone())
            .map(|s| s.trim().to_string())
            .unwrap_or(prev_interval),
    }
}

/// The cloud's checks on CreateServiceRollout / UpdateServiceRollout bodies.
pub fn validate_rollout_request(req: &ServiceRolloutRequest, update: bool) -> ApiResult<()> {
    if req.partition.is_some() && req.batch.is_some() {
        return Err(ApiError::invalid(
            "Partition and Batch are mutually exclusive: specify only one of them.",
        ));
    }
    if update && req.partition.is_none() && req.batch.is_none() && req.paused.is_none() {
        return Err(ApiError::invalid(
            "Specify at least one of Partition, Batch or Paused.",
        ));
    }
    if let Some(p) = &req.partition
        && resolve_int_or_percent(&p.partition, 100).is_none()
    {
        return Err(ApiError::invalid(format!(
            "Partition {:?} is invalid: use an integer (\"5\") or a percentage (\"50%\").",
            p.partition
        )));
    }
    if let Some(b) = &req.batch {
        if let Some(size) = &b.batch_size {
            match resolve_int_or_percent(size, 100) {
                Some(n) if n > 0 => {}
                _ => {
                    return Err(ApiError::invalid(format!(
                        "BatchSize {size:?} is invalid: use a positive integer (\"1\") or a percentage (\"25%\")."
                    )));
                }
            }
        }
        if let Some(interval) = &b.interval
            && parse_interval(interval).is_none()
        {
            return Err(ApiError::invalid(format!(
                "Interval {interval:?} is invalid: use a positive number with s, m or h (\"60s\", \"5m\", \"1h\")."
            )));
        }
    }
    Ok(())
}

/// Parse a rollout body leniently about JSON types (numbers or strings, "true"/"false").
pub fn parse_rollout_body(body: &[u8]) -> ApiResult<ServiceRolloutRequest> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("The request body is not valid JSON: {e}")))?
    };
    let Value::Object(obj) = value else {
        return Err(ApiError::invalid("The request body must be a JSON object."));
    };
    let text = |v: &Value, what: &str| -> ApiResult<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(ApiError::invalid(format!("{what} must be a string."))),
        }
    };
    let mut req = ServiceRolloutRequest::default();
    if let Some(p) = obj.get("Partition").filter(|v| !v.is_null()) {
        let Some(inner) = p.as_object() else {
            return Err(ApiError::invalid(
                "Partition must be an object {\"Partition\": \"1\"}.",
            ));
        };
        let Some(v) = inner.get("Partition").filter(|v| !v.is_null()) else {
            return Err(ApiError::missing("Partition.Partition"));
        };
        req.partition = Some(PartitionConfig {
            partition: text(v, "Partition.Partition")?,
        });
    }
    if let Some(b) = obj.get("Batch").filter(|v| !v.is_null()) {
        let Some(inner) = b.as_object() else {
            return Err(ApiError::invalid(
                "Batch must be an object {\"BatchSize\": \"1\", \"Interval\": \"5m\"}.",
            ));
        };
        let field = |name: &str| -> ApiResult<Option<String>> {
            inner
                .get(name)
                .filter(|v| !v.is_null())
                .map(|v| text(v, &format!("Batch.{name}")))
                .transpose()
        };
        req.batch = Some(BatchConfig {
            batch_size: field("BatchSize")?,
            interval: field("Interval")?,
        });
    }
    if let Some(p) = obj.get("Paused").filter(|v| !v.is_null()) {
        req.paused = Some(match p {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            _ => return Err(ApiError::invalid("Paused must be a boolean.")),
        });
    }
    Ok(req)
}

/// `d / scale`, at least one millisecond.
pub fn scaled(d: Duration, scale: f64) -> Duration {
    if !(scale.is_finite() && scale > 0.0) {
        return d;
    }
    let secs = d.as_secs_f64() / scale;
    Duration::try_from_secs_f64(secs)
        .unwrap_or(d)
        .max(Duration::from_millis(1))
}

/// A label the simulator accepts: a key of 1 to [`MAX_LABEL_BYTES`] bytes, a value of at
/// most that, neither holding `=` or `,`.
fn check_label(key: &str, value: &str) -> ApiResult<()> {
    let bad = |s: &str| s.contains('=') || s.contains(',');
    if key.is_empty() || key.len() > MAX_LABEL_BYTES || bad(key) {
        return Err(ApiError::invalid(format!(
            "label key {key:?}: 1 to {MAX_LABEL_BYTES} bytes, without '=' or ','."
        )));
    }
    if value.len() > MAX_LABEL_BYTES || bad(value) {
        return Err(ApiError::invalid(format!(
            "label {key:?}: the value is at most {MAX_LABEL_BYTES} bytes, without '=' or ','."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2026-05-08T16:00:00Z".parse().unwrap()
    }

    fn at(s: u64) -> Timestamp {
        add(t0(), Duration::from_secs(s))
    }

    fn svc(replicas: i64) -> EasService {
        EasService::new("llm-chat", "cn-shanghai", replicas, true, None, t0())
    }

    fn req(body: &str) -> ServiceRolloutRequest {
        parse_rollout_body(body.as_bytes()).unwrap()
    }

    fn image(tag: &str) -> Value {
        serde_json::json!({"containers": [{"image": format!("repo/llm-chat:{tag}")}]})
    }

    fn status(s: &EasService) -> RolloutStatus {
        s.describe_rollout().unwrap().status.unwrap()
    }

    #[test]
    fn int_or_percent_and_interval_parsing() {
        assert_eq!(resolve_int_or_percent("5", 8), Some(5));
        assert_eq!(resolve_int_or_percent("25%", 8), Some(2));
        assert_eq!(resolve_int_or_percent("30%", 8), Some(3)); // 2.4 rounds up
        assert_eq!(resolve_int_or_percent("0%", 8), Some(0));
        for bad in [
            "",
            "%",
            "-1",
            "1.5",
            "101%",
            "abc",
            "5 %",
            "99999999999",
            "5µ%",
            "µ",
        ] {
            assert_eq!(resolve_int_or_percent(bad, 8), None, "{bad}");
        }
        assert_eq!(parse_interval("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_interval("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h"), Some(Duration::from_secs(3600)));
        for bad in [
            "",
            "5",
            "m",
            "0s",
            "5d",
            "-5m",
            "1.5m",
            "99999999999h",
            "5µ",
            "µs",
        ] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }

    #[test]
    fn batch_rollout_advances_one_batch_per_interval() {
        let mut s = svc(8);
        s.create_rollout(
            &req(r#"{"Batch":{"BatchSize":"25%","Interval":"5m"}}"#),
            t0(),
            1.0,
        )
        .unwrap();
        s.update(&image("v2"), false, t0(), 1.0).unwrap();
        let st = status(&s);
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(st.updated_replicas, Some(0));
        assert_ne!(st.current_revision, st.update_revision);
        assert!(st.update_revision.as_deref().unwrap().ends_with("-v2"));

        s.advance(at(1), 1.0);
        let st = status(&s);
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.updated_replicas, Some(2));
        assert_eq!(
            st.next_batch_start_time.as_deref(),
            Some("2026/05/08 16:05:01")
        );

        s.advance(at(300), 1.0);
        assert_eq!(status(&s).updated_replicas, Some(2), "not yet due");
        s.advance(at(301), 1.0);
        assert_eq!(status(&s).updated_replicas, Some(4));
        s.advance(at(1000), 1.0); // catches up two more intervals
        let st = status(&s);
        assert_eq!(st.updated_replicas, Some(8));
        assert_eq!(st.phase.as_deref(), Some("Completed"));
        assert_eq!(st.current_revision, st.update_revision);
        assert_eq!(st.next_batch_start_time, None);
        assert_eq!(s.describe().current_version, Some(2));
    }

    #[test]
    fn partition_converges_and_rolls_back_when_raised() {
        let mut s = svc(8);
        s.create_rollout(&req(r#"{"Partition":{"Partition":"6"}}"#), t0(), 1.0)
            .unwrap();
        s.update(&image("v2"), false, t0(), 1.0).unwrap();
        s.advance(at(60), 1.0);
        let st = status(&s);
        assert_eq!(st.updated_replicas, Some(2), "keeps 6 old");
        assert_eq!(st.phase.as_deref(), Some("Running"));

        s.update_rollout(&req(r#"{"Partition":{"Partition":"50%"}}"#), at(60), 1.0)
            .unwrap();
        s.advance(at(61), 1.0);
        assert_eq!(status(&s).updated_replicas, Some(3));
        s.advance(at(70), 1.0);
        assert_eq!(status(&s).updated_replicas, Some(4));

        s.update_rollout(&req(r#"{"Partition":{"Partition":"7"}}"#), at(70), 1.0)
            .unwrap();
        s.advance(at(100), 1.0);
        assert_eq!(status(&s).updated_replicas, Some(1), "moved back to old");

        s.update_rollout(&req(r#"{"Partition":{"Partition":"0"}}"#), at(100), 1.0)
            .unwrap();
        s.advance(at(200), 1.0);
        assert_eq!(status(&s).phase.as_deref(), Some("Completed"));
    }

    #[test]
    fn pause_freezes_and_resume_continues() {
        let mut s = svc(4);
        s.create_rollout(
            &req(r#"{"Batch":{"BatchSize":"1","Interval":"10s"}}"#),
            t0(),
            1.0,
        )
        .unwrap();
        s.update(&image("v2"), false, t0(), 1.0).unwrap();
        s.advance(at(1), 1.0);
        assert_eq!(status(&s).updated_replicas, Some(1));
        assert_eq!(
            s.update_rollout(&req(r#"{"Paused":true}"#), at(5), 1.0)
                .unwrap(),
            "Rollout paused successfully"
        );
        s.advance(at(500), 1.0);
        let st = status(&s);
        assert_eq!(st.updated_replicas, Some(1));
        assert_eq!(st.phase.as_deref(), Some("Paused"));
        let r = s.describe_rollout().unwrap();
        assert!(r.strategy.unwrap().batch.is_some(), "strategy kept");
        s.update_rollout(&req(r#"{"Paused":false}"#), at(500), 1.0)
            .unwrap();
        s.advance(at(505), 1.0); // 6 s were left before pausing
        assert_eq!(status(&s).updated_replicas, Some(1));
        s.advance(at(506), 1.0);
        assert_eq!(status(&s).updated_replicas, Some(2));
    }

    #[test]
    fn no_rollout_replaces_all_at_once_and_rollback_by_version() {
        let mut s = svc(4);
        assert_eq!(
            s.describe_rollout().unwrap_err().code,
            "InvalidRollout.NotFound"
        );
        s.update(&image("v2"), false, t0(), 1.0).unwrap();
        assert_eq!(s.describe().status.as_deref(), Some("Updating"));
        s.advance(at(2), 1.0);
        let d = s.describe();
        assert_eq!(d.status.as_deref(), Some("Running"));
        assert_eq!(d.current_version, Some(2));
        assert_eq!(d.latest_version, Some(2));
        assert!(d.image.unwrap().ends_with(":v2"));
        // merge kept metadata
        assert!(d.service_config.unwrap().contains("metadata"));

        s.update_version(1, at(10), 1.0).unwrap();
        s.advance(at(20), 1.0);
        let d = s.describe();
        assert_eq!(d.current_version, Some(1));
        assert_eq!(d.latest_version, Some(2));
        assert!(s.update_version(7, at(20), 1.0).is_err());
        assert!(s.update_version(0, at(20), 1.0).is_err());
        assert_eq!(s.list_versions(1, 10).versions.len(), 2);
    }

    #[test]
    fn failing_image_fails_the_rollout() {
        let mut s = svc(4);
        s.create_rollout(&req(r#"{"Partition":{"Partition":"0"}}"#), t0(), 1.0)
            .unwrap();
        s.update(&image("fail"), false, t0(), 1.0).unwrap();
        s.advance(at(30), 1.0);
        assert_eq!(status(&s).phase.as_deref(), Some("Failed"));
        assert_eq!(s.describe().status.as_deref(), Some("Failed"));
        // A new good version recovers.
        s.update(&image("v3"), false, at(30), 1.0).unwrap();
        s.advance(at(60), 1.0);
        assert_eq!(status(&s).phase.as_deref(), Some("Completed"));
    }

    #[test]
    fn request_validation() {
        let bad = [
            r#"{"Partition":{"Partition":"1"},"Batch":{"BatchSize":"1"}}"#,
            r#"{"Partition":{"Partition":"x"}}"#,
            r#"{"Batch":{"BatchSize":"0"}}"#,
            r#"{"Batch":{"Interval":"5 minutes"}}"#,
        ];
        for b in bad {
            let r = parse_rollout_body(b.as_bytes()).unwrap();
            assert_eq!(
                validate_rollout_request(&r, true).unwrap_err().code,
                "InvalidParameter",
                "{b}"
            );
        }
        assert!(validate_rollout_request(&req("{}"), true).is_err());
        assert!(validate_rollout_request(&req("{}"), false).is_ok());
        for garbage in [
            "[",
            "[]",
            "1",
            "{\"Partition\":3}",
            "{\"Paused\":\"maybe\"}",
            "\u{0}",
        ] {
            assert!(parse_rollout_body(garbage.as_bytes()).is_err(), "{garbage}");
        }
        let mut s = svc(2);
        s.rollout_enabled = false;
        assert_eq!(
            s.create_rollout(&req("{}"), t0(), 1.0).unwrap_err().code,
            "InvalidRollout.NotEnabled"
        );
    }

    #[test]
    fn time_scale_divides_intervals() {
        assert_eq!(
            scaled(Duration::from_secs(300), 60.0),
            Duration::from_secs(5)
        );
        assert_eq!(scaled(Duration::from_secs(3), 0.0), Duration::from_secs(3));
        let mut s = svc(2);
        s.create_rollout(
            &req(r#"{"Batch":{"BatchSize":"1","Interval":"5m"}}"#),
            t0(),
            60.0,
        )
        .unwrap();
        s.update(&image("v2"), false, t0(), 60.0).unwrap();
        s.advance(at(1), 60.0);
        assert_eq!(status(&s).updated_replicas, Some(1));
        s.advance(at(6), 60.0);
        assert_eq!(status(&s).updated_replicas, Some(2));
    }

    /// Random operation sequences keep the invariants users rely on, and never panic.
    #[test]
    fn random_operation_sequences_keep_invariants() {
        use rand::{Rng, SeedableRng};
        let sizes = ["1", "2", "25%", "50%", "100%", "0", "x"];
        let intervals = ["1s", "30s", "5m", "1h", "0s", "bad"];
        let partitions = ["0", "1", "3", "8", "50%", "100%", "150%", "-1"];
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut s = svc(rng.random_range(0..10));
            let mut now = t0();
            for step in 0..60 {
                let body = match rng.random_range(0..4) {
                    0 => format!(
                        r#"{{"Partition":{{"Partition":"{}"}}}}"#,
                        partitions[rng.random_range(0..partitions.len())]
                    ),
                    1 => format!(
                        r#"{{"Batch":{{"BatchSize":"{}","Interval":"{}"}}}}"#,
                        sizes[rng.random_range(0..sizes.len())],
                        intervals[rng.random_range(0..intervals.len())]
                    ),
                    2 => format!(r#"{{"Paused":{}}}"#, rng.random_bool(0.5)),
                    _ => "{}".to_string(),
                };
                let req = parse_rollout_body(body.as_bytes()).unwrap();
                let _ = match rng.random_range(0..8) {
                    0 => s.create_rollout(&req, now, 1.0),
                    1 | 2 => s.update_rollout(&req, now, 1.0),
                    3 => s.delete_rollout(now, 1.0),
                    4 => s.update(&image(&format!("v{step}")), rng.random_bool(0.2), now, 1.0),
                    5 => s.update_version(rng.random_range(0..4), now, 1.0),
                    6 => s.update(&image("fail"), false, now, 1.0),
                    _ => Ok(String::new()),
                };
                now = add(now, Duration::from_secs(rng.random_range(0..400)));
                s.advance(now, 1.0);
                assert!((0..=s.replicas).contains(&s.updated), "seed {seed}: {s:?}");
                let d = s.describe();
                assert!(d.current_version.unwrap() <= d.latest_version.unwrap());
                if let Ok(r) = s.describe_rollout() {
                    let st = r.status.unwrap();
                    let complete = st.updated_replicas == st.total_replicas;
                    match st.phase.as_deref() {
                        Some("Completed") => {
                            assert!(complete, "seed {seed}");
                            assert_eq!(st.current_revision, st.update_revision, "seed {seed}");
                        }
                        Some("Paused") | Some("Failed") => {}
                        Some("Pending") | Some("Running") => assert!(!complete, "seed {seed}"),
                        other => panic!("seed {seed}: phase {other:?}"),
                    }
                    let s_ok = r.strategy.unwrap();
                    assert!(s_ok.partition.is_some() != s_ok.batch.is_some());
                }
                // Left alone without a pause, every rollout settles.
                if !s.paused() && !s.failed {
                    let mut probe = s.clone();
                    probe.advance(add(now, Duration::from_secs(30 * 24 * 3600)), 1.0);
                    assert!(
                        probe.next_step_at.is_none(),
                        "seed {seed}: still moving after 30 days: {probe:?}"
                    );
                }
            }
        }
    }
}
