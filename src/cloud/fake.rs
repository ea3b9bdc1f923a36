//! [`FakeCloud`]: the in-memory [`CloudApi`], the test double of the cloud.
//!
//! It keeps EAS services and rollouts, ESA routines and ESA container apps per region,
//! answers every call of [`CloudApi`] from that state as the simulator (`src/simulator/`)
//! and the real cloud do, logs every call, and fails calls on request. Nothing moves with
//! time: a rollout stays where the last call (or the test, through the setters) put it.
//! It is not behind `cfg(test)` so that integration tests can use it too.
//!
//! ```
//! use alicloud_rollouts::cloud::model::ServiceRolloutRequest;
//! use alicloud_rollouts::cloud::{CloudApi, FakeCloud};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let fake = FakeCloud::new();
//! fake.set_service_config("cn-shanghai", "llm", serde_json::json!({"metadata": {"instance": 4}}));
//! let cloud: &dyn CloudApi = fake.as_ref();
//! let ack = cloud
//!     .create_service_rollout("cn-shanghai", "llm", &ServiceRolloutRequest::default())
//!     .await
//!     .unwrap();
//! assert!(ack.request_id.starts_with("fake-req-"));
//! assert_eq!(fake.mutations()[0].api, "CreateServiceRollout");
//! # });
//! ```
//!
//! # The state machine
//!
//! EAS, per `(region, service)`:
//! - A service exists once seeded ([`FakeCloud::set_service_config`], or
//!   [`FakeCloud::set_rollout`] which creates it with the config `{}`). Every EAS call on
//!   another service fails with 404 `InvalidService.NotFound`, as the simulator does.
//! - CreateServiceRollout on a service with a rollout fails with 400
//!   `InvalidRollout.AlreadyExists`; otherwise it records the strategy (Partition, or Batch
//!   with the simulator's defaults `25%`/`60s` for what is not given) and a status whose
//!   phase is `Paused` when `Paused` is true, else `Running` if a new revision is in flight
//!   (never the case for a fresh rollout), else `Completed`. Replicas: `metadata.instance`
//!   of the config, else [`DEFAULT_REPLICAS`]; revisions are `<service>-v<version>`.
//! - Describe/Update/DeleteServiceRollout without a rollout fail with 404
//!   `InvalidRollout.NotFound` ([`CloudError::is_not_found`] is true). Update changes the
//!   strategy given (a Batch update keeps the fields it leaves out); `Paused: true` makes
//!   the phase `Paused`, `Paused: false` on a paused rollout makes it `Running` or
//!   `Completed` as above. Delete removes the rollout and leaves the service as it is.
//! - UpdateService merges (RFC 7396, [`super::model::merge_patch`]) or replaces the config
//!   and makes a new version; if the service has a rollout, its status restarts on the new
//!   revision: `UpdateRevision` the new one, `CurrentRevision` the stable one, no replica
//!   updated, phase `Running` (`Paused` if it was paused). The fake skips `Pending`.
//! - DescribeService answers the config (as the JSON string the cloud sends), the version
//!   and the image (`containers[0].image`).
//!
//! ESA routines, per `(region, routine)`, seeded with [`FakeCloud::set_routine`]:
//! - GetRoutine / CreateRoutineCodeDeployment on an unknown routine fail with 400
//!   `RoutineNotExist` (a not-found code).
//! - CreateRoutineCodeDeployment checks what the simulator checks of the split (Env
//!   `staging`/`production`, Strategy `percentage`, one or two versions of 1-100 % adding up
//!   to 100, no version twice: 400 `InvalidParameter`), but not that the code versions
//!   exist (the fake does not keep a routine's code versions). It replaces the env's
//!   `CodeDeploy` and answers a deployment id (`"1"`, `"2"`, ... across the fake).
//!
//! ESA container apps, per `(region, app id, env)`, seeded with [`FakeCloud::set_app_status`]:
//! - An app exists once one of its envs is seeded; calls on another app fail with 404
//!   `InvalidApp.NotFound`. GetEdgeContainerAppStatus of an env not seeded answers
//!   `DeployStatus: undeploy`, as the simulator does.
//! - PublishEdgeContainerAppVersion validates PublishEnv (`prod`/`staging`), Percentage
//!   (1-100) and PublishType (`percentage`, or `region` with Regions) with the simulator's
//!   codes, then goes straight to where the simulator ends: `published`/`deployed` with the
//!   version at the percentage (100 for a full region release), the type, regions and full
//!   release recorded; the previously deployed version becomes the baseline if there was
//!   none, and a 100 % (or full region) release makes the new version the baseline. Version
//!   ids are not checked (the fake does not keep an app's versions).
//! - RollbackEdgeContainerAppVersion (VersionId is the version to return TO) goes straight
//!   to `rollbacked`: every env of the app serving or publishing another version gets it as
//!   publishing, deployed and baseline version at Percentage (when `UsedPercent`, which
//!   defaults to whether Percentage is given) or 100.
//!
//! Calls the real client rejects before sending (an empty name, a bad region, Partition
//! with Batch...) are rejected here by the same request builders, with the same
//! [`CloudError::InvalidRequest`]; they never reach the fake cloud: they are not logged and
//! consume no injected failure.
//!
//! # Call log and failures
//!
//! Every call that reaches the fake cloud is logged as a [`FakeCall`] ([`FakeCloud::calls`],
//! [`FakeCloud::mutations`]) and answered with a fresh RequestId `fake-req-N` (errors of the
//! state machine carry it too). [`FakeCloud::fail_next`] makes the next call of an API fail
//! before it changes anything; [`FakeCloud::fail_after`] lets it change the state and then
//! fail (a mutation whose answer was lost). Both queue: each queued error is used once, in
//! order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use super::api::CloudApi;
use super::credentials::Credentials;
use super::error::{CloudError, CloudResult};
use super::model::*;
use super::request::requests;

/// The access key id of calls made through [`FakeCloud::new`]'s handle.
pub const DEFAULT_ACCESS_KEY_ID: &str = "fake-default";

/// The account of every access key not given another with [`FakeCloud::set_account`].
pub const DEFAULT_ACCOUNT: &str = "1000000000000001";

/// Replicas of a service whose config does not say (`metadata.instance`).
pub const DEFAULT_REPLICAS: i64 = 4;

/// Every API of [`CloudApi`], and whether it changes the cloud.
pub const APIS: [(&str, bool); 15] = [
    ("CreateServiceRollout", true),
    ("UpdateServiceRollout", true),
    ("DescribeServiceRollout", false),
    ("DeleteServiceRollout", true),
    ("DescribeService", false),
    ("UpdateService", true),
    ("UpdateServiceLabel", true),
    ("DeleteServiceLabel", true),
    ("CreateRoutineCodeDeployment", true),
    ("GetRoutine", false),
    ("PublishEdgeContainerAppVersion", true),
    ("GetEdgeContainerAppStatus", false),
    ("RollbackEdgeContainerAppVersion", true),
    ("DescribeMetricLast", false),
    ("DescribeMetricList", false),
];

/// One call that reached the fake cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    /// The cloud's action name, e.g. `"CreateServiceRollout"`.
    pub api: &'static str,
    pub region: String,
    /// The EAS service, the ESA routine or the ESA app id.
    pub target: String,
    /// The routine env or the app's PublishEnv, for the calls that name one.
    pub env: Option<String>,
    /// Whether the API changes the cloud (whatever the outcome of this call).
    pub mutation: bool,
    /// The access key id the call was made with.
    pub access_key_id: String,
    /// The RequestId of the answer (`fake-req-N`).
    pub request_id: String,
    /// `Ok`, or the code of the error returned ([`CloudError::code`]).
    pub outcome: Result<(), String>,
    /// Whether the call changed the state (a successful mutation, or one failed by
    /// [`FakeCloud::fail_after`]).
    pub applied: bool,
}

/// An EAS service: its config and version.
#[derive(Debug, Clone)]
struct ServiceState {
    config: Value,
    version: i64,
    rollout: Option<Rollout>,
    /// Service labels (UpdateServiceLabel); no version changes with them.
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct State {
    services: BTreeMap<(String, String), ServiceState>,
    routines: BTreeMap<(String, String), GetRoutineResponse>,
    apps: BTreeMap<(String, String, String), AppStatus>,
    calls: Vec<FakeCall>,
    fail_next: BTreeMap<String, VecDeque<CloudError>>,
    fail_after: BTreeMap<String, VecDeque<CloudError>>,
    requests: u64,
    deployments: u64,
    /// Access key id -> account, for GetCallerIdentity ([`FakeCloud::set_account`]).
    accounts: BTreeMap<String, String>,
    identity_lookups: u64,
    /// (region, namespace, metric) -> the datapoints CloudMonitor answers.
    metrics: BTreeMap<(String, String, String), Vec<Value>>,
    /// AssumeRole calls answered.
    assumed: u64,
}

/// The in-memory cloud. See the [module documentation](self) for what each call does.
#[derive(Debug)]
pub struct FakeCloud {
    state: Arc<Mutex<State>>,
    access_key_id: String,
}

/// What one call is about, for the log.
struct Target<'a> {
    api: &'static str,
    region: &'a str,
    target: &'a str,
    env: Option<&'a str>,
}

fn api_error(status: u16, code: &str, message: impl Into<String>) -> CloudError {
    CloudError::Api {
        status,
        code: code.to_string(),
        message: message.into(),
        request_id: None,
        retry_after: None,
    }
}

fn invalid(message: impl Into<String>) -> CloudError {
    api_error(400, "InvalidParameter", message)
}

fn is_mutation(api: &str) -> Option<bool> {
    APIS.iter().find(|(name, _)| *name == api).map(|(_, m)| *m)
}

fn revision(service: &str, version: i64) -> String {
    format!("{service}-v{version}")
}

/// The phase of a rollout that is not paused: `Running` while a new revision is in
/// flight, else `Completed`.
fn unpaused_phase(status: &RolloutStatus) -> &'static str {
    let in_flight = status.current_revision != status.update_revision
        || status.updated_replicas != status.total_replicas;
    if in_flight { "Running" } else { "Completed" }
}

fn key(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

impl ServiceState {
    fn new(config: Value) -> Self {
        ServiceState {
            config,
            version: 1,
            rollout: None,
            labels: BTreeMap::new(),
        }
    }

    fn replicas(&self) -> i64 {
        self.config
            .pointer("/metadata/instance")
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
            .unwrap_or(DEFAULT_REPLICAS)
    }

    fn rollout_mut(&mut self, service: &str) -> CloudResult<&mut Rollout> {
        self.rollout.as_mut().ok_or_else(|| {
            api_error(
                404,
                "InvalidRollout.NotFound",
                format!("Service {service} has no rollout."),
            )
        })
    }
}

impl FakeCloud {
    /// An empty cloud, called with the access key id [`DEFAULT_ACCESS_KEY_ID`].
    pub fn new() -> Arc<FakeCloud> {
        Arc::new(FakeCloud {
            state: Arc::default(),
            access_key_id: DEFAULT_ACCESS_KEY_ID.to_string(),
        })
    }

    /// The access key id this handle's calls are logged with.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Make `access_key_id` belong to `account` (every key belongs to
    /// [`DEFAULT_ACCOUNT`] until said otherwise).
    pub fn set_account(&self, access_key_id: &str, account: &str) {
        self.lock()
            .accounts
            .insert(access_key_id.to_string(), account.to_string());
    }

    /// How many times GetCallerIdentity was asked (it is not in [`FakeCloud::calls`]: it
    /// reads nothing of the cloud's objects).
    /// How many AssumeRole calls were answered.
    pub fn assumed_roles(&self) -> u64 {
        self.lock().assumed
    }

    pub fn identity_lookups(&self) -> u64 {
        self.lock().identity_lookups
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves a usable state behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ------------------------------------------------------------ seeding and reading

    /// Create the service `region/service`, or replace its config (its version and rollout
    /// stay).
    pub fn set_service_config(&self, region: &str, service: &str, config: Value) {
        let mut state = self.lock();
        match state.services.get_mut(&key(region, service)) {
            Some(s) => s.config = config,
            None => {
                state
                    .services
                    .insert(key(region, service), ServiceState::new(config));
            }
        }
    }

    /// Put label `key` = `value` on the service (created with the config `{}` if it does
    /// not exist), as another owner or a person would.
    pub fn set_service_label(&self, region: &str, service: &str, key_: &str, value: &str) {
        let mut state = self.lock();
        state
            .services
            .entry(key(region, service))
            .or_insert_with(|| ServiceState::new(Value::Object(Default::default())))
            .labels
            .insert(key_.to_string(), value.to_string());
    }

    /// The service's labels (empty if the service does not exist).
    pub fn service_labels(&self, region: &str, service: &str) -> BTreeMap<String, String> {
        let state = self.lock();
        state
            .services
            .get(&key(region, service))
            .map(|s| s.labels.clone())
            .unwrap_or_default()
    }

    /// The service's config, if the service exists.
    pub fn service_config(&self, region: &str, service: &str) -> Option<Value> {
        let state = self.lock();
        state
            .services
            .get(&key(region, service))
            .map(|s| s.config.clone())
    }

    /// Put `rollout` on the service (created with the config `{}` if it does not exist).
    pub fn set_rollout(&self, region: &str, service: &str, rollout: Rollout) {
        let mut state = self.lock();
        state
            .services
            .entry(key(region, service))
            .or_insert_with(|| ServiceState::new(Value::Object(Default::default())))
            .rollout = Some(rollout);
    }

    /// Remove the service's rollout (as if deleted outside the operator).
    pub fn remove_rollout(&self, region: &str, service: &str) {
        let mut state = self.lock();
        if let Some(s) = state.services.get_mut(&key(region, service)) {
            s.rollout = None;
        }
    }

    /// The service's rollout, if there is one.
    pub fn rollout(&self, region: &str, service: &str) -> Option<Rollout> {
        let state = self.lock();
        state
            .services
            .get(&key(region, service))
            .and_then(|s| s.rollout.clone())
    }

    /// What time would do to the service's rollout: every replica on the update revision,
    /// which becomes the current one, phase `Completed`. Does nothing without a rollout.
    pub fn finish_rollout(&self, region: &str, service: &str) {
        let mut state = self.lock();
        let Some(s) = state.services.get_mut(&key(region, service)) else {
            return;
        };
        let replicas = s.replicas();
        let current = revision(service, s.version);
        if let Some(r) = s.rollout.as_mut() {
            let status = r.status.get_or_insert_with(Default::default);
            status.total_replicas = Some(status.total_replicas.unwrap_or(replicas));
            status.updated_replicas = status.total_replicas;
            let target = status.update_revision.clone().unwrap_or(current);
            status.current_revision = Some(target.clone());
            status.update_revision = Some(target);
            status.next_batch_start_time = None;
            status.phase = Some("Completed".into());
        }
    }

    /// Create or replace the routine `region/name` (its `request_id` is ignored).
    pub fn set_routine(&self, region: &str, name: &str, routine: GetRoutineResponse) {
        self.lock().routines.insert(key(region, name), routine);
    }

    /// The routine as GetRoutine would answer it (without a RequestId).
    pub fn routine(&self, region: &str, name: &str) -> Option<GetRoutineResponse> {
        self.lock().routines.get(&key(region, name)).cloned()
    }

    /// Set the status of the app's `env` (`prod` or `staging`); the app exists from then on.
    pub fn set_app_status(&self, region: &str, app_id: &str, env: &str, status: AppStatus) {
        self.lock().apps.insert(
            (region.to_string(), app_id.to_string(), env.to_string()),
            status,
        );
    }

    /// The status of the app's `env`, if it was seeded or changed by a call.
    pub fn app_status(&self, region: &str, app_id: &str, env: &str) -> Option<AppStatus> {
        self.lock()
            .apps
            .get(&(region.to_string(), app_id.to_string(), env.to_string()))
            .cloned()
    }

    /// What DescribeMetricLast and DescribeMetricList answer for `metric` of `namespace`
    /// in `region`: these datapoints (objects such as
    /// `{"serviceName":"llm-chat","Average":1.5}`), whatever the dimensions and times asked.
    pub fn set_metric(&self, region: &str, namespace: &str, metric: &str, points: Vec<Value>) {
        self.lock().metrics.insert(
            (
                region.to_string(),
                namespace.to_string(),
                metric.to_string(),
            ),
            points,
        );
    }

    // ------------------------------------------------------------ log and failures

    /// Every call that reached the fake cloud, in order, from every handle.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    /// The calls of APIs that change the cloud (whatever their outcome; see
    /// [`FakeCall::applied`]).
    pub fn mutations(&self) -> Vec<FakeCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.mutation)
            .cloned()
            .collect()
    }

    /// Forget the calls logged so far.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The next call of `api` (a cloud action name, e.g. `"UpdateService"`) fails with
    /// `err` before it changes anything. Panics on a name that is not a [`CloudApi`] call.
    pub fn fail_next(&self, api: &str, err: CloudError) {
        Self::check_api(api);
        self.lock()
            .fail_next
            .entry(api.to_string())
            .or_default()
            .push_back(err);
    }

    /// The next call of `api` changes the state as it would have and then fails with `err`
    /// (an answer lost on the way back). Panics on a name that is not a [`CloudApi`] call.
    pub fn fail_after(&self, api: &str, err: CloudError) {
        Self::check_api(api);
        self.lock()
            .fail_after
            .entry(api.to_string())
            .or_default()
            .push_back(err);
    }

    fn check_api(api: &str) {
        assert!(
            is_mutation(api).is_some(),
            "{api:?} is not a CloudApi call; expected one of {:?}",
            APIS.map(|(name, _)| name)
        );
    }

    /// Run one call: injected failures, the state change `op`, the log and the RequestId.
    fn call<T>(
        &self,
        t: Target<'_>,
        op: impl FnOnce(&mut State, &str) -> CloudResult<T>,
    ) -> CloudResult<T> {
        let mut state = self.lock();
        state.requests += 1;
        let request_id = format!("fake-req-{}", state.requests);
        let mutation = is_mutation(t.api).unwrap_or(true);
        let injected = |q: &mut BTreeMap<String, VecDeque<CloudError>>| {
            q.get_mut(t.api).and_then(VecDeque::pop_front)
        };
        let (result, applied) = match injected(&mut state.fail_next) {
            Some(err) => (Err(err), false),
            None => match op(&mut state, &request_id) {
                Ok(value) => match injected(&mut state.fail_after) {
                    Some(err) => (Err(err), mutation),
                    None => (Ok(value), mutation),
                },
                Err(err) => (Err(err), false),
            },
        };
        // An error answer from the cloud carries the RequestId, as the real ones do.
        let result = result.map_err(|err| match err {
            CloudError::Api {
                status,
                code,
                message,
                request_id: None,
                retry_after,
            } => CloudError::Api {
                status,
                code,
                message,
                request_id: Some(request_id.clone()),
                retry_after,
            },
            other => other,
        });
        state.calls.push(FakeCall {
            api: t.api,
            region: t.region.to_string(),
            target: t.target.to_string(),
            env: t.env.map(str::to_string),
            mutation,
            access_key_id: self.access_key_id.clone(),
            request_id,
            outcome: result
                .as_ref()
                .map(|_| ())
                .map_err(|e| e.code().to_string()),
            applied,
        });
        result
    }
}

impl FakeCloud {
    fn describe_metric(
        &self,
        api: &'static str,
        region: &str,
        request: &DescribeMetricRequest,
    ) -> CloudResult<DescribeMetricResponse> {
        requests::describe_metric(api, request)?;
        let t = Target {
            api,
            region,
            target: &request.metric_name,
            env: None,
        };
        self.call(t, |state, request_id| {
            let key = (
                region.to_string(),
                request.namespace.clone(),
                request.metric_name.clone(),
            );
            let points = state.metrics.get(&key).cloned().unwrap_or_default();
            Ok(DescribeMetricResponse {
                request_id: request_id.to_string(),
                code: Some("200".into()),
                success: Some(true),
                period: Some(request.period.clone().unwrap_or_else(|| "60".into())),
                datapoints: Some(Value::Array(points).to_string()),
                ..DescribeMetricResponse::default()
            })
        })
    }
}

/// Labels as DescribeService lists them (absent when there are none).
fn labels_of(labels: &BTreeMap<String, String>) -> Option<Vec<ServiceLabel>> {
    (!labels.is_empty()).then(|| {
        labels
            .iter()
            .map(|(k, v)| ServiceLabel {
                label_key: Some(k.clone()),
                label_value: Some(v.clone()),
            })
            .collect()
    })
}

fn service_mut<'a>(
    state: &'a mut State,
    region: &str,
    service: &str,
) -> CloudResult<&'a mut ServiceState> {
    state
        .services
        .get_mut(&key(region, service))
        .ok_or_else(|| {
            api_error(
                404,
                "InvalidService.NotFound",
                format!("Service {service} is not found in region {region}."),
            )
        })
}

fn routine_mut<'a>(
    state: &'a mut State,
    region: &str,
    name: &str,
) -> CloudResult<&'a mut GetRoutineResponse> {
    state.routines.get_mut(&key(region, name)).ok_or_else(|| {
        api_error(
            400,
            "RoutineNotExist",
            "The routine name does not exist. Check the routine name and try again.",
        )
    })
}

/// The envs of app `region/app_id`, or 404 if none was ever seeded.
fn app_envs<'a>(
    state: &'a mut State,
    region: &str,
    app_id: &str,
) -> CloudResult<Vec<(&'a String, &'a mut AppStatus)>> {
    let envs: Vec<_> = state
        .apps
        .iter_mut()
        .filter(|((r, a, _), _)| r == region && a == app_id)
        .map(|((_, _, env), status)| (env, status))
        .collect();
    if envs.is_empty() {
        return Err(api_error(
            404,
            "InvalidApp.NotFound",
            format!("The app {app_id} does not exist."),
        ));
    }
    Ok(envs)
}

fn check_percentage(p: Option<i32>) -> CloudResult<()> {
    match p {
        Some(n) if !(1..=100).contains(&n) => Err(api_error(
            400,
            "InvalidParameter.Percentage",
            "The Percentage parameter is invalid: it must be within 1-100.",
        )),
        _ => Ok(()),
    }
}

fn check_split(r: &CreateRoutineCodeDeploymentRequest) -> CloudResult<()> {
    if r.env != "staging" && r.env != "production" {
        return Err(invalid(format!(
            "Env must be staging or production, got {:?}.",
            r.env
        )));
    }
    if r.strategy != "percentage" {
        return Err(invalid(format!(
            "Strategy must be percentage, got {:?}.",
            r.strategy
        )));
    }
    let splits = &r.code_versions;
    if splits.is_empty() || splits.len() > 2 {
        return Err(invalid("CodeVersions must contain one or two entries."));
    }
    if splits.iter().any(|s| !(1..=100).contains(&s.percentage)) {
        return Err(invalid(
            "Each CodeVersions Percentage must be an integer from 1 to 100.",
        ));
    }
    if splits.len() == 2 && splits[0].code_version == splits[1].code_version {
        return Err(invalid("CodeVersions lists a version twice."));
    }
    if splits.iter().map(|s| s.percentage).sum::<i32>() != 100 {
        return Err(invalid("The CodeVersions percentages must add up to 100."));
    }
    Ok(())
}

fn apply_strategy(rollout: &mut Rollout, request: &ServiceRolloutRequest) {
    let strategy = rollout.strategy.get_or_insert_with(Default::default);
    if let Some(p) = &request.partition {
        strategy.partition = Some(PartitionConfig {
            partition: p.partition.trim().to_string(),
        });
        strategy.batch = None;
    } else if let Some(b) = &request.batch {
        let previous = strategy.batch.take().unwrap_or_else(|| BatchConfig {
            batch_size: Some("25%".into()),
            interval: Some("60s".into()),
        });
        strategy.batch = Some(BatchConfig {
            batch_size: b.batch_size.clone().or(previous.batch_size),
            interval: b.interval.clone().or(previous.interval),
        });
        strategy.partition = None;
    }
}

#[async_trait]
impl CloudApi for FakeCloud {
    fn with_credentials(&self, credentials: Credentials) -> Arc<dyn CloudApi> {
        Arc::new(FakeCloud {
            state: self.state.clone(),
            access_key_id: credentials.access_key_id,
        })
    }

    async fn caller_account(&self) -> CloudResult<String> {
        let mut state = self.lock();
        state.identity_lookups += 1;
        Ok(state
            .accounts
            .get(&self.access_key_id)
            .cloned()
            .unwrap_or_else(|| DEFAULT_ACCOUNT.to_string()))
    }

    /// Credentials `STS.<n>` of the role's account (from its ARN, as the simulator does),
    /// valid for `duration_seconds`.
    async fn assume_role(
        &self,
        role_arn: &str,
        session_name: &str,
        duration_seconds: u32,
    ) -> CloudResult<AssumeRoleResponse> {
        requests::assume_role(role_arn, session_name, duration_seconds)?;
        let mut state = self.lock();
        state.assumed += 1;
        let id = format!("STS.{}", state.assumed);
        if let Some(account) = role_arn
            .strip_prefix("acs:ram::")
            .and_then(|r| r.split(':').next())
        {
            state.accounts.insert(id.clone(), account.to_string());
        }
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(i64::from(duration_seconds)))
            .unwrap_or(jiff::Timestamp::MAX);
        Ok(AssumeRoleResponse {
            request_id: format!("fake-assume-{}", state.assumed),
            credentials: Some(AssumedCredentials {
                access_key_id: id,
                access_key_secret: "fake-secret".into(),
                security_token: "fake-token".into(),
                expiration: expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }),
        })
    }

    async fn create_service_rollout(
        &self,
        region: &str,
        service: &str,
        request: &ServiceRolloutRequest,
    ) -> CloudResult<Ack> {
        requests::create_service_rollout(region, service, request)?;
        let t = Target {
            api: "CreateServiceRollout",
            region,
            target: service,
            env: None,
        };
        self.call(t, |state, request_id| {
            let s = service_mut(state, region, service)?;
            if s.rollout.is_some() {
                return Err(api_error(
                    400,
                    "InvalidRollout.AlreadyExists",
                    format!("Service {service} already has a rollout."),
                ));
            }
            let current = revision(service, s.version);
            let mut status = RolloutStatus {
                total_replicas: Some(s.replicas()),
                updated_replicas: Some(s.replicas()),
                current_revision: Some(current.clone()),
                update_revision: Some(current),
                ..Default::default()
            };
            status.phase = Some(if request.paused == Some(true) {
                "Paused".into()
            } else {
                unpaused_phase(&status).into()
            });
            let mut rollout = Rollout {
                strategy: None,
                status: Some(status),
            };
            if request.partition.is_none() && request.batch.is_none() {
                // Neither given: the cloud's default strategy, Batch.
                apply_strategy(
                    &mut rollout,
                    &ServiceRolloutRequest {
                        batch: Some(BatchConfig::default()),
                        ..Default::default()
                    },
                );
            } else {
                apply_strategy(&mut rollout, request);
            }
            s.rollout = Some(rollout);
            Ok(Ack {
                request_id: request_id.to_string(),
                message: Some("Rollout created successfully".into()),
            })
        })
    }

    async fn update_service_rollout(
        &self,
        region: &str,
        service: &str,
        request: &ServiceRolloutRequest,
    ) -> CloudResult<Ack> {
        requests::update_service_rollout(region, service, request)?;
        let t = Target {
            api: "UpdateServiceRollout",
            region,
            target: service,
            env: None,
        };
        self.call(t, |state, request_id| {
            let rollout = service_mut(state, region, service)?.rollout_mut(service)?;
            apply_strategy(rollout, request);
            let status = rollout.status.get_or_insert_with(Default::default);
            let was_paused = status.phase.as_deref() == Some("Paused");
            match request.paused {
                Some(true) => status.phase = Some("Paused".into()),
                Some(false) if was_paused => status.phase = Some(unpaused_phase(status).into()),
                _ => {}
            }
            Ok(Ack {
                request_id: request_id.to_string(),
                message: Some("Rollout updated successfully".into()),
            })
        })
    }

    async fn describe_service_rollout(
        &self,
        region: &str,
        service: &str,
    ) -> CloudResult<DescribeServiceRolloutResponse> {
        requests::describe_service_rollout(region, service)?;
        let t = Target {
            api: "DescribeServiceRollout",
            region,
            target: service,
            env: None,
        };
        self.call(t, |state, request_id| {
            let rollout = service_mut(state, region, service)?.rollout_mut(service)?;
            Ok(DescribeServiceRolloutResponse {
                request_id: request_id.to_string(),
                rollout: Some(rollout.clone()),
            })
        })
    }

    async fn delete_service_rollout(&self, region: &str, service: &str) -> CloudResult<Ack> {
        requests::delete_service_rollout(region, service)?;
        let t = Target {
            api: "DeleteServiceRollout",
            region,
            target: service,
            env: None,
        };
        self.call(t, |state, request_id| {
            let s = service_mut(state, region, service)?;
            s.rollout_mut(service)?;
            s.rollout = None;
            Ok(Ack {
                request_id: request_id.to_string(),
                message: Some("Rollout deleted successfully".into()),
            })
        })
    }

    async fn describe_service(&self, region: &str, service: &str) -> CloudResult<Service> {
        requests::describe_service(region, service)?;
        let t = Target {
            api: "DescribeService",
            region,
            target: service,
            env: None,
        };
        self.call(t, |state, request_id| {
            let s = service_mut(state, region, service)?;
            Ok(Service {
                request_id: request_id.to_string(),
                service_name: Some(service.to_string()),
                region: Some(region.to_string()),
                status: Some("Running".into()),
                image: s
                    .config
                    .pointer("/containers/0/image")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                current_version: Some(s.version),
                latest_version: Some(s.version),
                total_instance: Some(s.replicas()),
                service_config: Some(s.config.to_string()),
                labels: labels_of(&s.labels),
                ..Default::default()
            })
        })
    }

    async fn update_service_label(
        &self,
        region: &str,
        service: &str,
        labels: &BTreeMap<String, String>,
    ) -> CloudResult<Ack> {
        requests::update_service_label(region, service, labels)?;
        let t = Target {
            api: "UpdateServiceLabel",
            region,
            target: service,
            env: None,
        };
        self.call(t, |state, request_id| {
            let s = service_mut(state, region, service)?;
            s.labels
                .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(Ack {
                request_id: request_id.to_string(),
                message: Some(format!("Succeed to update service [{service}] labels.")),
            })
        })
    }

    async fn delete_service_label(
        &self,
        region: &str,
        service: &str,
        keys: &[String],
    ) -> CloudResult<Ack> {
        requests::delete_service_label(region, service, keys)?;
        let t = Target {
            api: "DeleteServiceLabel",
            region,
            target: service,
            env: None,
        };
        self.call(t, |state, request_id| {
            let s = service_mut(state, region, service)?;
            for k in keys {
                s.labels.remove(k);
            }
            Ok(Ack {
                request_id: request_id.to_string(),
                message: Some(format!("Succeed to delete service [{service}] labels.")),
            })
        })
    }

    async fn update_service(
        &self,
        region: &str,
        service: &str,
        config: &Value,
        update_type: UpdateType,
    ) -> CloudResult<Ack> {
        requests::update_service(region, service, config, update_type)?;
        let t = Target {
            api: "UpdateService",
            region,
            target: service,
            env: None,
        };
        self.call(t, |state, request_id| {
            let s = service_mut(state, region, service)?;
            if config.as_object().is_some_and(|o| o.is_empty()) {
                return Err(invalid("The service config is empty."));
            }
            match update_type {
                UpdateType::Merge => merge_patch(&mut s.config, config),
                UpdateType::Replace => s.config = config.clone(),
            }
            let stable = revision(service, s.version);
            s.version += 1;
            let replicas = s.replicas();
            let update = revision(service, s.version);
            if let Some(r) = s.rollout.as_mut() {
                let status = r.status.get_or_insert_with(Default::default);
                let paused = status.phase.as_deref() == Some("Paused");
                status.current_revision = Some(status.current_revision.clone().unwrap_or(stable));
                status.update_revision = Some(update);
                status.total_replicas = Some(replicas);
                status.updated_replicas = Some(0);
                status.next_batch_start_time = None;
                status.phase = Some(if paused { "Paused" } else { "Running" }.into());
            }
            Ok(Ack {
                request_id: request_id.to_string(),
                message: Some(format!(
                    "Service [{service}] is updating to version {}",
                    s.version
                )),
            })
        })
    }

    async fn create_routine_code_deployment(
        &self,
        region: &str,
        request: &CreateRoutineCodeDeploymentRequest,
    ) -> CloudResult<CreateRoutineCodeDeploymentResponse> {
        requests::create_routine_code_deployment(request)?;
        let t = Target {
            api: "CreateRoutineCodeDeployment",
            region,
            target: &request.name,
            env: Some(&request.env),
        };
        self.call(t, |state, request_id| {
            check_split(request)?;
            routine_mut(state, region, &request.name)?;
            state.deployments += 1;
            let id = state.deployments.to_string();
            let routine = routine_mut(state, region, &request.name)?;
            let deploy = CodeDeploy {
                deploy_id: Some(id.clone()),
                strategy: Some(request.strategy.clone()),
                creation_time: None,
                code_versions: request
                    .code_versions
                    .iter()
                    .map(|s| DeployedCodeVersion {
                        code_version: s.code_version.clone(),
                        percentage: s.percentage,
                        create_time: None,
                        description: None,
                    })
                    .collect(),
            };
            match routine.envs.iter_mut().find(|e| e.env == request.env) {
                Some(env) => env.code_deploy = Some(deploy),
                None => routine.envs.push(RoutineEnv {
                    env: request.env.clone(),
                    code_deploy: Some(deploy),
                }),
            }
            Ok(CreateRoutineCodeDeploymentResponse {
                request_id: request_id.to_string(),
                strategy: Some(request.strategy.clone()),
                deployment_id: Some(id),
                code_versions: request.code_versions.clone(),
            })
        })
    }

    async fn get_routine(&self, region: &str, name: &str) -> CloudResult<GetRoutineResponse> {
        requests::get_routine(name)?;
        let t = Target {
            api: "GetRoutine",
            region,
            target: name,
            env: None,
        };
        self.call(t, |state, request_id| {
            let routine = routine_mut(state, region, name)?;
            Ok(GetRoutineResponse {
                request_id: request_id.to_string(),
                ..routine.clone()
            })
        })
    }

    async fn publish_edge_container_app_version(
        &self,
        region: &str,
        request: &PublishEdgeContainerAppVersionRequest,
    ) -> CloudResult<Ack> {
        requests::publish_edge_container_app_version(request)?;
        let r = request;
        let t = Target {
            api: "PublishEdgeContainerAppVersion",
            region,
            target: &r.app_id,
            env: Some(&r.publish_env),
        };
        self.call(t, |state, request_id| {
            if r.publish_env != "prod" && r.publish_env != "staging" {
                return Err(api_error(
                    400,
                    "InvalidParameter.PublishEnv",
                    "The specified PublishEnv is invalid. It must be prod or staging.",
                ));
            }
            check_percentage(r.percentage)?;
            let publish_type = r.publish_type.clone().unwrap_or_else(|| "percentage".into());
            if publish_type != "percentage" && publish_type != "region" {
                return Err(api_error(
                    400,
                    "InvalidParameter.PublishType",
                    "PublishType must be percentage or region.",
                ));
            }
            let regions = r.regions.clone().unwrap_or_default();
            if publish_type == "region" && regions.is_empty() {
                return Err(api_error(
                    400,
                    "MissingParameter",
                    "The input parameter \"Regions\" that is mandatory for processing this request is not supplied.",
                ));
            }
            app_envs(state, region, &r.app_id)?;
            let full_release = r.full_release.unwrap_or(false);
            let full = publish_type == "region" && full_release;
            let percentage = if full { 100 } else { r.percentage.unwrap_or(100) };
            let status = state
                .apps
                .entry((region.to_string(), r.app_id.clone(), r.publish_env.clone()))
                .or_default();
            if status.publishing_version.as_deref() != Some(r.version_id.as_str())
                && status.base_line_version.is_none()
            {
                status.base_line_version = status.deployed_version.clone();
            }
            if full || percentage >= 100 {
                status.base_line_version = Some(r.version_id.clone());
            }
            status.publish_status = Some("published".into());
            status.deploy_status = Some("deployed".into());
            status.publishing_version = Some(r.version_id.clone());
            status.deployed_version = Some(r.version_id.clone());
            status.publish_percentage = Some(percentage);
            status.expect_percentage = Some(percentage);
            status.publish_type = Some(publish_type);
            status.full_release = Some(full_release);
            status.regions = Some(AppRegions { region: regions });
            status.publish_env = Some(r.publish_env.clone());
            status.publish_time = r.start_time.clone();
            Ok(Ack {
                request_id: request_id.to_string(),
                message: None,
            })
        })
    }

    async fn get_edge_container_app_status(
        &self,
        region: &str,
        app_id: &str,
        publish_env: &str,
    ) -> CloudResult<GetEdgeContainerAppStatusResponse> {
        requests::get_edge_container_app_status(app_id, publish_env)?;
        let t = Target {
            api: "GetEdgeContainerAppStatus",
            region,
            target: app_id,
            env: Some(publish_env),
        };
        self.call(t, |state, request_id| {
            let envs = app_envs(state, region, app_id)?;
            let status = envs
                .into_iter()
                .find(|(env, _)| env.as_str() == publish_env)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| AppStatus {
                    deploy_status: Some("undeploy".into()),
                    publish_env: Some(publish_env.to_string()),
                    ..Default::default()
                });
            Ok(GetEdgeContainerAppStatusResponse {
                request_id: request_id.to_string(),
                app_status: Some(status),
            })
        })
    }

    async fn describe_metric_last(
        &self,
        region: &str,
        request: &DescribeMetricRequest,
    ) -> CloudResult<DescribeMetricResponse> {
        self.describe_metric("DescribeMetricLast", region, request)
    }

    async fn describe_metric_list(
        &self,
        region: &str,
        request: &DescribeMetricRequest,
    ) -> CloudResult<DescribeMetricResponse> {
        self.describe_metric("DescribeMetricList", region, request)
    }

    async fn rollback_edge_container_app_version(
        &self,
        region: &str,
        request: &RollbackEdgeContainerAppVersionRequest,
    ) -> CloudResult<Ack> {
        requests::rollback_edge_container_app_version(request)?;
        let r = request;
        let t = Target {
            api: "RollbackEdgeContainerAppVersion",
            region,
            target: &r.app_id,
            env: None,
        };
        self.call(t, |state, request_id| {
            check_percentage(r.percentage)?;
            let used_percent = r.used_percent.unwrap_or(r.percentage.is_some());
            let percentage = if used_percent { r.percentage } else { None }.unwrap_or(100);
            let target = r.version_id.as_str();
            for (_, status) in app_envs(state, region, &r.app_id)? {
                let other = |v: &Option<String>| v.as_deref().is_some_and(|v| v != target);
                let serving_other = other(&status.publishing_version)
                    || other(&status.deployed_version)
                    || (status.publish_percentage.unwrap_or(100) < 100
                        && other(&status.base_line_version));
                if !serving_other {
                    continue;
                }
                status.publish_status = Some("rollbacked".into());
                status.deploy_status = Some("deployed".into());
                status.publishing_version = Some(target.to_string());
                status.deployed_version = Some(target.to_string());
                status.base_line_version = Some(target.to_string());
                status.publish_percentage = Some(percentage);
                status.expect_percentage = Some(percentage);
            }
            Ok(Ack {
                request_id: request_id.to_string(),
                message: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cloud::error::ErrorKind;

    const R: &str = "cn-shanghai";
    const SVC: &str = "llm";
    const ESA: &str = "cn-hangzhou";

    fn eas() -> Arc<FakeCloud> {
        let fake = FakeCloud::new();
        fake.set_service_config(
            R,
            SVC,
            serde_json::json!({"metadata": {"instance": 8}, "containers": [{"image": "repo/llm:v1"}]}),
        );
        fake
    }

    fn partition(p: &str) -> ServiceRolloutRequest {
        ServiceRolloutRequest {
            partition: Some(PartitionConfig {
                partition: p.into(),
            }),
            ..Default::default()
        }
    }

    fn paused(p: bool) -> ServiceRolloutRequest {
        ServiceRolloutRequest {
            paused: Some(p),
            ..Default::default()
        }
    }

    fn status(fake: &FakeCloud) -> RolloutStatus {
        fake.rollout(R, SVC).unwrap().status.unwrap()
    }

    fn phase(fake: &FakeCloud) -> String {
        status(fake).phase.unwrap()
    }

    fn timeout() -> CloudError {
        CloudError::Timeout(Duration::from_secs(1))
    }

    #[tokio::test]
    async fn create_records_strategy_and_phase_and_a_second_create_already_exists() {
        let fake = eas();
        let ack = fake
            .create_service_rollout(R, SVC, &partition("6"))
            .await
            .unwrap();
        assert!(ack.request_id.starts_with("fake-req-"), "{ack:?}");
        let rollout = fake.rollout(R, SVC).unwrap();
        assert_eq!(rollout.strategy.unwrap().partition.unwrap().partition, "6");
        let st = rollout.status.unwrap();
        assert_eq!(st.phase.as_deref(), Some("Completed"), "nothing in flight");
        assert_eq!((st.total_replicas, st.updated_replicas), (Some(8), Some(8)));

        let err = fake
            .create_service_rollout(R, SVC, &paused(true))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "InvalidRollout.AlreadyExists");
        assert_eq!(
            (err.http_status(), err.kind()),
            (Some(400), ErrorKind::Terminal)
        );
        assert!(!err.is_not_found());
        assert!(err.request_id().unwrap().starts_with("fake-req-"));
        assert_eq!(
            phase(&fake),
            "Completed",
            "the failed create changed nothing"
        );

        // Paused at creation; neither strategy given: Batch with the cloud's defaults.
        let other = eas();
        other
            .create_service_rollout(R, SVC, &paused(true))
            .await
            .unwrap();
        assert_eq!(phase(&other), "Paused");
        let batch = other
            .rollout(R, SVC)
            .unwrap()
            .strategy
            .unwrap()
            .batch
            .unwrap();
        assert_eq!(
            (batch.batch_size.as_deref(), batch.interval.as_deref()),
            (Some("25%"), Some("60s"))
        );
    }

    #[tokio::test]
    async fn a_missing_rollout_or_service_is_not_found() {
        let fake = eas();
        let err = fake.describe_service_rollout(R, SVC).await.unwrap_err();
        assert_eq!(err.code(), "InvalidRollout.NotFound");
        assert!(err.is_not_found());
        let err = fake
            .update_service_rollout(R, SVC, &paused(true))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let err = fake.delete_service_rollout(R, SVC).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        for err in [
            fake.describe_service(R, "nope").await.unwrap_err(),
            fake.describe_service_rollout(R, "nope").await.unwrap_err(),
            fake.describe_service("cn-beijing", SVC).await.unwrap_err(),
        ] {
            assert_eq!(err.code(), "InvalidService.NotFound");
            assert!(err.is_not_found());
        }
        assert_eq!(fake.rollout(R, SVC), None);
    }

    #[tokio::test]
    async fn update_changes_strategy_and_pause_and_delete_removes_the_rollout() {
        let fake = eas();
        fake.create_service_rollout(
            R,
            SVC,
            &ServiceRolloutRequest {
                batch: Some(BatchConfig {
                    batch_size: Some("2".into()),
                    interval: Some("5m".into()),
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        fake.update_service(
            R,
            SVC,
            &serde_json::json!({"containers": [{"image": "repo/llm:v2"}]}),
            UpdateType::Merge,
        )
        .await
        .unwrap();
        assert_eq!(phase(&fake), "Running");

        // A Batch update keeps the fields it leaves out.
        let size_only = ServiceRolloutRequest {
            batch: Some(BatchConfig {
                batch_size: Some("50%".into()),
                interval: None,
            }),
            ..Default::default()
        };
        fake.update_service_rollout(R, SVC, &size_only)
            .await
            .unwrap();
        let b = fake
            .rollout(R, SVC)
            .unwrap()
            .strategy
            .unwrap()
            .batch
            .unwrap();
        assert_eq!(
            (b.batch_size.as_deref(), b.interval.as_deref()),
            (Some("50%"), Some("5m"))
        );

        fake.update_service_rollout(R, SVC, &paused(true))
            .await
            .unwrap();
        assert_eq!(phase(&fake), "Paused");
        fake.update_service_rollout(R, SVC, &partition("3"))
            .await
            .unwrap();
        assert_eq!(phase(&fake), "Paused", "a strategy change keeps the pause");
        let s = fake.rollout(R, SVC).unwrap().strategy.unwrap();
        assert_eq!(
            (s.partition.unwrap().partition.as_str(), s.batch),
            ("3", None)
        );
        fake.update_service_rollout(R, SVC, &paused(false))
            .await
            .unwrap();
        assert_eq!(phase(&fake), "Running", "v2 still in flight");

        fake.finish_rollout(R, SVC);
        let st = status(&fake);
        assert_eq!(st.phase.as_deref(), Some("Completed"));
        assert_eq!(st.current_revision.as_deref(), Some("llm-v2"));
        fake.update_service_rollout(R, SVC, &paused(true))
            .await
            .unwrap();
        fake.update_service_rollout(R, SVC, &paused(false))
            .await
            .unwrap();
        assert_eq!(phase(&fake), "Completed");

        fake.delete_service_rollout(R, SVC).await.unwrap();
        assert_eq!(fake.rollout(R, SVC), None);
        assert!(fake.service_config(R, SVC).is_some(), "the service stays");
        assert!(
            fake.delete_service_rollout(R, SVC)
                .await
                .unwrap_err()
                .is_not_found()
        );
    }

    #[tokio::test]
    async fn update_service_merges_the_config_and_restarts_the_rollout_on_a_new_revision() {
        let fake = eas();
        fake.create_service_rollout(R, SVC, &partition("0"))
            .await
            .unwrap();
        let patch = serde_json::json!({"containers": [{"image": "repo/llm:v2"}], "metadata": {"instance": 6}});
        fake.update_service(R, SVC, &patch, UpdateType::Merge)
            .await
            .unwrap();
        let st = status(&fake);
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.current_revision.as_deref(), Some("llm-v1"));
        assert_eq!(st.update_revision.as_deref(), Some("llm-v2"));
        assert_eq!((st.updated_replicas, st.total_replicas), (Some(0), Some(6)));

        let svc = fake.describe_service(R, SVC).await.unwrap();
        assert_eq!(svc.image.as_deref(), Some("repo/llm:v2"));
        assert_eq!(
            (svc.current_version, svc.latest_version),
            (Some(2), Some(2))
        );
        let config: Value = serde_json::from_str(&svc.service_config.unwrap()).unwrap();
        assert_eq!(config, fake.service_config(R, SVC).unwrap());
        assert_eq!(config["metadata"]["instance"], 6, "merged");

        // Paused stays paused; an update in flight keeps the stable revision.
        fake.update_service_rollout(R, SVC, &paused(true))
            .await
            .unwrap();
        fake.update_service(R, SVC, &serde_json::json!({"a": 1}), UpdateType::Merge)
            .await
            .unwrap();
        let st = status(&fake);
        assert_eq!(st.phase.as_deref(), Some("Paused"));
        assert_eq!(
            (
                st.current_revision.as_deref(),
                st.update_revision.as_deref()
            ),
            (Some("llm-v1"), Some("llm-v3"))
        );

        // Replace drops what is not given; an empty config is refused by the cloud.
        fake.update_service(R, SVC, &serde_json::json!({"b": 2}), UpdateType::Replace)
            .await
            .unwrap();
        assert_eq!(
            fake.service_config(R, SVC).unwrap(),
            serde_json::json!({"b": 2})
        );
        let err = fake
            .update_service(R, SVC, &serde_json::json!({}), UpdateType::Merge)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "InvalidParameter");
        // Without a rollout the service just moves on.
        fake.delete_service_rollout(R, SVC).await.unwrap();
        fake.update_service(R, SVC, &serde_json::json!({"b": 3}), UpdateType::Merge)
            .await
            .unwrap();
        assert_eq!(fake.rollout(R, SVC), None);
    }

    fn split(versions: &[(&str, i32)]) -> CreateRoutineCodeDeploymentRequest {
        CreateRoutineCodeDeploymentRequest {
            name: "edge-auth".into(),
            env: "production".into(),
            strategy: "percentage".into(),
            code_versions: versions
                .iter()
                .map(|(v, p)| CodeVersionSplit {
                    code_version: v.to_string(),
                    percentage: *p,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn routine_deployments_replace_the_env_split() {
        let fake = FakeCloud::new();
        let err = fake.get_routine(ESA, "edge-auth").await.unwrap_err();
        assert_eq!(err.code(), "RoutineNotExist");
        assert!(err.is_not_found());
        assert!(
            fake.create_routine_code_deployment(ESA, &split(&[("1", 100)]))
                .await
                .unwrap_err()
                .is_not_found()
        );

        fake.set_routine(
            ESA,
            "edge-auth",
            GetRoutineResponse {
                envs: vec![RoutineEnv {
                    env: "staging".into(),
                    code_deploy: None,
                }],
                ..Default::default()
            },
        );
        let first = fake
            .create_routine_code_deployment(ESA, &split(&[("2", 10), ("1", 90)]))
            .await
            .unwrap();
        let second = fake
            .create_routine_code_deployment(ESA, &split(&[("2", 100)]))
            .await
            .unwrap();
        assert_ne!(first.deployment_id, second.deployment_id);
        assert_ne!(first.request_id, second.request_id);
        let routine = fake.get_routine(ESA, "edge-auth").await.unwrap();
        assert!(routine.request_id.starts_with("fake-req-"));
        let prod = routine.envs.iter().find(|e| e.env == "production").unwrap();
        let deploy = prod.code_deploy.as_ref().unwrap();
        assert_eq!(deploy.deploy_id, second.deployment_id);
        assert_eq!(
            deploy
                .code_versions
                .iter()
                .map(|c| (c.code_version.as_str(), c.percentage))
                .collect::<Vec<_>>(),
            [("2", 100)]
        );
        let staging = routine.envs.iter().find(|e| e.env == "staging").unwrap();
        assert_eq!(staging.code_deploy, None, "another env is left alone");
        assert_eq!(fake.routine(ESA, "edge-auth").unwrap().envs, routine.envs);

        for bad in [
            split(&[("2", 10), ("1", 80)]),
            split(&[("2", 50), ("2", 50)]),
            split(&[("2", 0), ("1", 100)]),
            CreateRoutineCodeDeploymentRequest {
                env: "dev".into(),
                ..split(&[("2", 100)])
            },
        ] {
            let err = fake
                .create_routine_code_deployment(ESA, &bad)
                .await
                .unwrap_err();
            assert_eq!(err.code(), "InvalidParameter", "{bad:?}");
        }
        assert_eq!(
            fake.routine(ESA, "edge-auth").unwrap().envs,
            routine.envs,
            "refused splits change nothing"
        );
    }

    const APP: &str = "app-1";

    fn serving(version: &str) -> AppStatus {
        AppStatus {
            publish_status: Some("published".into()),
            deploy_status: Some("deployed".into()),
            publishing_version: Some(version.into()),
            deployed_version: Some(version.into()),
            base_line_version: Some(version.into()),
            publish_percentage: Some(100),
            expect_percentage: Some(100),
            ..Default::default()
        }
    }

    fn publish(version: &str, percentage: Option<i32>) -> PublishEdgeContainerAppVersionRequest {
        PublishEdgeContainerAppVersionRequest {
            app_id: APP.into(),
            version_id: version.into(),
            publish_env: "prod".into(),
            publish_type: Some("percentage".into()),
            percentage,
            ..Default::default()
        }
    }

    fn rollback(version: &str) -> RollbackEdgeContainerAppVersionRequest {
        RollbackEdgeContainerAppVersionRequest {
            app_id: APP.into(),
            version_id: version.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn container_apps_publish_and_roll_back() {
        let fake = FakeCloud::new();
        let err = fake
            .get_edge_container_app_status(ESA, APP, "prod")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "InvalidApp.NotFound");
        assert!(err.is_not_found());
        assert!(
            fake.publish_edge_container_app_version(ESA, &publish("ver-2", Some(50)))
                .await
                .unwrap_err()
                .is_not_found()
        );

        fake.set_app_status(ESA, APP, "prod", serving("ver-1"));
        let staging = fake
            .get_edge_container_app_status(ESA, APP, "staging")
            .await
            .unwrap()
            .app_status
            .unwrap();
        assert_eq!(staging.deploy_status.as_deref(), Some("undeploy"));

        fake.publish_edge_container_app_version(ESA, &publish("ver-2", Some(50)))
            .await
            .unwrap();
        let s = fake.app_status(ESA, APP, "prod").unwrap();
        assert_eq!(s.publish_status.as_deref(), Some("published"));
        assert_eq!(s.publishing_version.as_deref(), Some("ver-2"));
        assert_eq!(
            (s.publish_percentage, s.expect_percentage),
            (Some(50), Some(50))
        );
        assert_eq!(
            s.base_line_version.as_deref(),
            Some("ver-1"),
            "old version stays baseline"
        );
        let answered = fake
            .get_edge_container_app_status(ESA, APP, "prod")
            .await
            .unwrap();
        assert_eq!(answered.app_status.as_ref(), Some(&s));

        // A full region release makes the new version the baseline.
        fake.publish_edge_container_app_version(
            ESA,
            &PublishEdgeContainerAppVersionRequest {
                publish_type: Some("region".into()),
                regions: Some(vec!["jiangsu".into()]),
                full_release: Some(true),
                ..publish("ver-2", None)
            },
        )
        .await
        .unwrap();
        let s = fake.app_status(ESA, APP, "prod").unwrap();
        assert_eq!(s.publish_percentage, Some(100));
        assert_eq!(s.regions.unwrap().region, ["jiangsu"]);
        assert_eq!(s.base_line_version.as_deref(), Some("ver-2"));

        // Rolled back to ver-1, at 100 % unless a percentage is used.
        fake.rollback_edge_container_app_version(ESA, &rollback("ver-1"))
            .await
            .unwrap();
        let s = fake.app_status(ESA, APP, "prod").unwrap();
        assert_eq!(s.publish_status.as_deref(), Some("rollbacked"));
        assert_eq!(
            (
                s.deployed_version.as_deref(),
                s.base_line_version.as_deref(),
                s.publish_percentage
            ),
            (Some("ver-1"), Some("ver-1"), Some(100))
        );
        assert_eq!(
            fake.app_status(ESA, APP, "staging"),
            None,
            "an env never seeded or published stays absent"
        );

        for (bad, code) in [
            (publish("ver-3", Some(0)), "InvalidParameter.Percentage"),
            (
                PublishEdgeContainerAppVersionRequest {
                    publish_env: "dev".into(),
                    ..publish("ver-3", None)
                },
                "InvalidParameter.PublishEnv",
            ),
            (
                PublishEdgeContainerAppVersionRequest {
                    publish_type: Some("region".into()),
                    ..publish("ver-3", None)
                },
                "MissingParameter",
            ),
        ] {
            let err = fake
                .publish_edge_container_app_version(ESA, &bad)
                .await
                .unwrap_err();
            assert_eq!(err.code(), code);
        }
        assert_eq!(
            fake.app_status(ESA, APP, "prod")
                .unwrap()
                .deployed_version
                .as_deref(),
            Some("ver-1")
        );
    }

    #[tokio::test]
    async fn every_call_is_logged_with_its_key_and_a_unique_request_id() {
        let fake = eas();
        let cloud: Arc<dyn CloudApi> = fake.clone();
        let tenant = cloud.with_credentials(Credentials::new("tenant-key", "secret"));
        cloud.describe_service_rollout(R, SVC).await.unwrap_err();
        tenant
            .create_service_rollout(R, SVC, &partition("2"))
            .await
            .unwrap();
        tenant.describe_service_rollout(R, SVC).await.unwrap();
        fake.set_app_status(ESA, APP, "prod", serving("ver-1"));
        cloud
            .publish_edge_container_app_version(ESA, &publish("ver-2", Some(10)))
            .await
            .unwrap();

        let calls = fake.calls();
        let summary: Vec<_> = calls
            .iter()
            .map(|c| {
                (
                    c.api,
                    c.region.as_str(),
                    c.target.as_str(),
                    c.env.as_deref(),
                    c.mutation,
                    c.access_key_id.as_str(),
                    c.outcome.clone(),
                    c.applied,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "DescribeServiceRollout",
                    R,
                    SVC,
                    None,
                    false,
                    DEFAULT_ACCESS_KEY_ID,
                    Err("InvalidRollout.NotFound".to_string()),
                    false
                ),
                (
                    "CreateServiceRollout",
                    R,
                    SVC,
                    None,
                    true,
                    "tenant-key",
                    Ok(()),
                    true
                ),
                (
                    "DescribeServiceRollout",
                    R,
                    SVC,
                    None,
                    false,
                    "tenant-key",
                    Ok(()),
                    false
                ),
                (
                    "PublishEdgeContainerAppVersion",
                    ESA,
                    APP,
                    Some("prod"),
                    true,
                    DEFAULT_ACCESS_KEY_ID,
                    Ok(()),
                    true
                ),
            ]
        );
        let ids: std::collections::BTreeSet<_> = calls.iter().map(|c| &c.request_id).collect();
        assert_eq!(ids.len(), calls.len());
        assert!(ids.iter().all(|id| id.starts_with("fake-req-")));
        assert_eq!(
            fake.mutations().iter().map(|c| c.api).collect::<Vec<_>>(),
            ["CreateServiceRollout", "PublishEdgeContainerAppVersion"]
        );

        // What the real client refuses before sending never reaches the fake cloud.
        let err = cloud
            .update_service_rollout(R, SVC, &ServiceRolloutRequest::default())
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::InvalidRequest(_)), "{err:?}");
        assert_eq!(fake.calls().len(), calls.len());
        fake.clear_calls();
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn fail_next_fails_before_any_change() {
        let fake = eas();
        fake.fail_next(
            "CreateServiceRollout",
            CloudError::Api {
                status: 503,
                code: "ServiceUnavailable".into(),
                message: "down".into(),
                request_id: None,
                retry_after: None,
            },
        );
        fake.fail_next("CreateServiceRollout", timeout());
        let err = fake
            .create_service_rollout(R, SVC, &partition("1"))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.kind()),
            ("ServiceUnavailable", ErrorKind::Transient)
        );
        assert!(
            err.request_id().unwrap().starts_with("fake-req-"),
            "{err:?}"
        );
        assert_eq!(fake.rollout(R, SVC), None);
        let err = fake
            .create_service_rollout(R, SVC, &partition("1"))
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::Timeout(_)), "queued in order");
        assert_eq!(fake.rollout(R, SVC), None);
        // Used up: the next call goes through; other APIs were never affected.
        fake.create_service_rollout(R, SVC, &partition("1"))
            .await
            .unwrap();
        assert!(fake.rollout(R, SVC).is_some());
        let applied: Vec<_> = fake.mutations().iter().map(|c| c.applied).collect();
        assert_eq!(applied, [false, false, true]);
    }

    #[tokio::test]
    async fn fail_after_changes_the_state_and_then_fails() {
        let fake = eas();
        fake.create_service_rollout(R, SVC, &partition("4"))
            .await
            .unwrap();
        fake.fail_after("UpdateService", timeout());
        let err = fake
            .update_service(R, SVC, &serde_json::json!({"x": 1}), UpdateType::Merge)
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::Timeout(_)), "{err:?}");
        assert_eq!(fake.service_config(R, SVC).unwrap()["x"], 1, "took effect");
        assert_eq!(phase(&fake), "Running");
        let last = fake.calls().pop().unwrap();
        assert_eq!((last.api, last.applied), ("UpdateService", true));
        assert_eq!(last.outcome, Err("Timeout".to_string()));

        // A lost create answer, then the retry: the rollout exists, the retry says so.
        let fresh = eas();
        fresh.fail_after("CreateServiceRollout", timeout());
        fresh
            .create_service_rollout(R, SVC, &partition("4"))
            .await
            .unwrap_err();
        assert!(fresh.rollout(R, SVC).is_some());
        let err = fresh
            .create_service_rollout(R, SVC, &partition("4"))
            .await
            .unwrap_err();
        assert!(err.code().ends_with("AlreadyExists"), "{err}");

        // A failing state change is reported as itself; the queued error waits.
        fresh.fail_after("DeleteServiceRollout", timeout());
        fresh.remove_rollout(R, SVC);
        let err = fresh.delete_service_rollout(R, SVC).await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        fresh.set_rollout(R, SVC, Rollout::default());
        let err = fresh.delete_service_rollout(R, SVC).await.unwrap_err();
        assert!(matches!(err, CloudError::Timeout(_)), "{err:?}");
        assert_eq!(fresh.rollout(R, SVC), None);
    }

    #[test]
    #[should_panic(expected = "not a CloudApi call")]
    fn failing_an_unknown_api_is_a_test_bug() {
        FakeCloud::new().fail_next("ListServiceVersions", timeout());
    }
}
