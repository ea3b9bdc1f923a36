//! The one reconcile loop every kind runs.
//!
//! A kind supplies four pieces (see [`Rollout`]): `read` the cloud, `plan` (pure), `execute`
//! one action, and `cleanup` where it has one; plus `validate`, which parses the spec into
//! what the planner consumes. Everything around them lives here, once: the finalizer
//! branch, the tracing span, recording ownership before the first mutation, executing the
//! plan's actions (each counted, logged, and reported in one Event with its RequestId),
//! writing the status only when it changed, the jittered requeue, and the reaction to each
//! kind of failure (a Warning Event, the failure metric, Degraded, and a wait or a backoff).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
use kube::core::NamespaceResourceScope;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::analysis;
use super::context::{Context, FINALIZER};
use super::error::{Error, Reaction};
use super::intent::{self, Intent};
use super::plan::{CloudAction, Input, Plan, Requeue, ValidSpec};
use super::progress::{self, Deadline, REASON_PROGRESS_DEADLINE, Verdict};
use super::requeue::jitter;
use super::schedule::{self, Priority};
use super::status::{self, RolloutObject, RolloutStatus};
use crate::cloud::CloudApi;
use crate::cloud::ratelimit::with_priority;
use crate::crd::common::{Aborted, CONDITION_READY, CONDITION_STALLED};

/// One custom resource kind driven by this operator.
#[async_trait]
pub trait Rollout:
    RolloutObject
    + Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// Label used in metrics, logs and `--kinds`.
    const LABEL: &'static str;
    /// Whether deletion needs the operator (a cloud cleanup); without it no finalizer is
    /// added and deleting the resource leaves the cloud as it is.
    const NEEDS_FINALIZER: bool = false;
    /// The spec as the planner consumes it, parsed by [`Rollout::validate`].
    type Spec: ValidSpec<Self> + Send + Sync;
    /// What [`Rollout::read`] learns from the cloud.
    type Observed: Send + Sync;
    type Action: CloudAction + Send + Sync;

    /// Read what the planner needs from the cloud (the status as last written says what
    /// is already known).
    async fn read(
        spec: &Self::Spec,
        status: Option<&Self::Status>,
        cloud: &dyn CloudApi,
    ) -> Result<Self::Observed, Error>;
    /// Decide (pure).
    fn plan(
        input: &Input<'_, Self::Spec, Self::Status, Self::Observed>,
    ) -> Plan<Self::Action, Self::Status>;
    /// Make one cloud mutation; returns its RequestId, and may fold the cloud's answer into
    /// the status about to be written.
    async fn execute(
        spec: &Self::Spec,
        cloud: &dyn CloudApi,
        action: &Self::Action,
        status: &mut Self::Status,
    ) -> Result<String, Error>;
    /// `spec.progressDeadline` (or this kind's default) and `progressDeadlineAbort`.
    fn deadline(&self) -> Deadline;
    /// The declared version an automatic rollback names, where the kind can roll back on
    /// its own (its spec's `parse` then follows `status.aborted` for that version).
    fn abort_version(_spec: &Self::Spec) -> Option<String> {
        None
    }
    /// What in the status changes when the rollout moves (progress, for the deadline).
    fn progress_marker(status: &Self::Status) -> String;
    /// The ownership marker this kind keeps on its cloud object ([`super::marker`]);
    /// `None` where its product has none.
    fn cloud_marker() -> Option<&'static dyn super::marker::CloudMarker<Self>> {
        None
    }
    /// The metric analysis this rollout wants run now, from its spec and the status as
    /// last written (see [`super::analysis`]); None by default.
    fn analysis_request(
        &self,
        _spec: &Self::Spec,
        _status: Option<&Self::Status>,
    ) -> Option<super::analysis::Request> {
        None
    }
    /// The step a status records, for kinds with steps (notifications name it).
    fn current_step(_status: &Self::Status) -> Option<i32> {
        None
    }
    /// The resource is being deleted: honour its deletion policy (only called with
    /// [`Rollout::NEEDS_FINALIZER`]).
    async fn cleanup(&self, _cx: &Context) -> Result<(), Error> {
        Ok(())
    }
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The key under which this operator remembers `obj`'s mutations in flight (its uid
/// included: a recreated object is another intent).
pub(super) fn memory_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!("{}#{}", key(obj), obj.uid().unwrap_or_default())
}

/// One reconcile: the finalizer is the one top-level branch (apply or cleanup).
///
/// Settled rollouts are read at their own pace (see [`super::schedule`]): after a start,
/// each waits for its moment; and one that finds every settled-poll slot taken comes back
/// shortly, without calling the cloud. Everything the reconcile calls in the cloud waits
/// on the rate limiter at the rollout's priority.
pub async fn reconcile<K: Rollout>(obj: Arc<K>, cx: Arc<Context>) -> Result<Action, Error> {
    let priority = schedule::priority_of(obj.as_ref());
    let _slot = if priority == Priority::Settled {
        let uid = obj.uid().unwrap_or_default();
        if let Some(wait) = cx
            .schedule
            .hold_settled(&uid, cx.timing.settled, Instant::now())
        {
            return Ok(Action::requeue(wait));
        }
        match cx.schedule.settled_slot() {
            Some(slot) => Some(slot),
            None => return Ok(Action::requeue(jitter(schedule::NO_SLOT_RETRY))),
        }
    } else {
        None
    };
    with_priority(priority, reconcile_now(obj, cx)).await
}

async fn reconcile_now<K: Rollout>(obj: Arc<K>, cx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let span = tracing::info_span!("reconcile", kind = K::LABEL, %namespace, %name);
    async move {
        let started = Instant::now();
        cx.metrics.reconcile(K::LABEL);
        let result = if K::NEEDS_FINALIZER {
            let api: Api<K> = Api::namespaced(cx.client.clone(), &namespace);
            finalizer(&api, FINALIZER, obj.clone(), |event| async {
                match event {
                    FinalizerEvent::Apply(o) => apply(o.as_ref(), &cx).await,
                    FinalizerEvent::Cleanup(o) => cleanup(o.as_ref(), &cx).await,
                }
            })
            .await
            .map_err(Error::from)
        } else if obj.meta().deletion_timestamp.is_some() {
            Ok(Action::await_change())
        } else {
            apply(obj.as_ref(), &cx).await
        };
        cx.metrics.observe(K::LABEL, started.elapsed());
        result
    }
    .instrument(span)
    .await
}

/// Bring the cloud in line with the spec and write the status; a failure is reported
/// (see [`fail`]).
pub async fn apply<K: Rollout>(obj: &K, cx: &Context) -> Result<Action, Error> {
    // The status as the API server has it, kept up to date with our own writes.
    let mut stored = obj.status().cloned();
    if let Err(err) = super::retry::honour(obj, cx, &key(obj), &mut stored).await {
        return fail(obj, cx, stored.as_ref(), err).await;
    }
    match converge(obj, cx, &mut stored).await {
        Ok(action) => {
            cx.clear_failures(&key(obj));
            Ok(action)
        }
        Err(err) => fail(obj, cx, stored.as_ref(), err).await,
    }
}

async fn converge<K: Rollout>(
    obj: &K,
    cx: &Context,
    stored: &mut Option<K::Status>,
) -> Result<Action, Error> {
    let spec = K::Spec::parse(obj).map_err(Error::InvalidSpec)?;
    let cloud_ref = spec.cloud_ref();
    if let Some(recorded) = stored.as_ref().and_then(|s| s.cloud_ref())
        && recorded != cloud_ref
    {
        return Err(Error::InvalidSpec(format!(
            "this resource manages {recorded}; its spec now names {cloud_ref}. The target of a \
             rollout cannot change: create a new resource instead"
        )));
    }
    let namespace = obj.namespace().unwrap_or_default();
    let claim = super::context::Claim::of(obj, &namespace, K::LABEL, &cloud_ref);
    let cloud = cx.cloud_for(&claim).await?;
    let account = check_owner(obj, cx, stored.as_ref(), &cloud_ref, cloud.as_ref()).await?;
    // These credentials work: kept for the cleanup, should their Secret go first.
    if K::NEEDS_FINALIZER
        && obj.credentials().is_some()
        && let Some(uid) = obj.uid()
    {
        cx.remember_cloud(&uid, cloud.clone());
    }
    let observed = K::read(&spec, stored.as_ref(), cloud.as_ref()).await?;
    let now = jiff::Timestamp::now();
    let analysis = analysis::evaluate::<K>(obj, cx, &spec, stored.as_ref(), &cloud, now).await;
    let seen = analysis::seen(stored.as_ref(), analysis.as_ref());
    let plan = K::plan(&Input {
        spec: &spec,
        generation: obj.meta().generation,
        status: seen.as_ref(),
        observed: &observed,
        now,
    });
    let mut status = plan.status;
    *status.shared().observed_retry = obj.retry_token();
    *status.shared().cloud_ref = Some(cloud_ref.clone());
    *status.shared().cloud_account = Some(account.clone());
    // Planners build their status afresh; an automatic rollback is the loop's record.
    *status.shared().aborted = stored.as_ref().and_then(|s| s.aborted().cloned());
    *status.shared().analysis = analysis;
    let verdict = judge_progress::<K>(
        obj,
        stored.as_ref(),
        &plan.actions,
        plan.requeue,
        &mut status,
    );
    let version = K::abort_version(&spec);
    let acted = analysis::act::<K>(
        obj,
        cx,
        version.as_deref(),
        stored.as_ref(),
        &mut status,
        now,
    )
    .await;
    // A failed analysis: nothing of the plan is sent; the rollback comes next.
    let actions: &[K::Action] = if acted == analysis::Acted::Aborting {
        &[]
    } else {
        &plan.actions
    };
    let mutating = !actions.is_empty();
    let marking = super::marker::check(
        obj,
        cx,
        &cloud_ref,
        cloud.as_ref(),
        mutating,
        stored.as_ref(),
        &mut status,
    )
    .await?;
    if mutating {
        record_ownership(obj, cx, stored, cloud_ref, account).await?;
    }
    super::marker::mark(obj, cx, cloud.as_ref(), marking, &mut status).await?;
    let run = execute::<K>(obj, cx, &spec, cloud.as_ref(), actions, stored, &mut status).await?;
    let (sent, held, stuck) = (run.sent, run.held, run.stuck);
    if let Some(message) = &stuck {
        cx.event(
            obj,
            EventType::Warning,
            "MutationNotVisible",
            "Reconcile",
            message.clone(),
        )
        .await;
        status = status::degraded(
            Some(&status),
            obj.meta().generation,
            "MutationNotVisible",
            message,
            None,
            jiff::Timestamp::now(),
        );
    }
    let aborting = stuck.is_none()
        && overdue::<K>(obj, cx, &spec, stored.as_ref(), verdict, &mut status).await;
    if stored.as_ref() != Some(&status) {
        cx.write_status(obj, &status).await?;
        super::transitions::notify(obj, cx, stored.as_ref(), &status, version.as_deref());
    }
    let requeue = if aborting || acted == analysis::Acted::Aborting {
        Requeue::Active
    } else if stuck.is_some() {
        Requeue::Settled
    } else if analysis::pending(obj, &spec, &status) {
        Requeue::After(cx.timing.active)
    } else {
        analysis::requeue(plan.requeue, status.analysis(), now)
    };
    let delay = cx.timing.delay(requeue, sent || held);
    Ok(Action::requeue(jitter(delay)))
}

/// Judge the plan against the progress deadline and record `status.lastProgressAt`.
fn judge_progress<K: Rollout>(
    obj: &K,
    stored: Option<&K::Status>,
    actions: &[K::Action],
    requeue: Requeue,
    status: &mut K::Status,
) -> Verdict {
    let moved =
        !actions.is_empty() || stored.map(K::progress_marker) != Some(K::progress_marker(status));
    let verdict = progress::judge(
        &obj.deadline(),
        requeue == Requeue::Active,
        moved,
        stored.and_then(RolloutStatus::last_progress_at),
        jiff::Timestamp::now(),
    );
    *status.shared().last_progress_at = verdict.last_progress_at();
    verdict
}

/// The deadline passed: Stalled with reason ProgressDeadlineExceeded and one Warning Event;
/// with `progressDeadlineAbort`, the version is recorded as aborted, so that the next
/// reconcile rolls it back (returns true). After such a rollback, the status stays
/// Degraded for as long as the spec names that version.
async fn overdue<K: Rollout>(
    obj: &K,
    cx: &Context,
    spec: &K::Spec,
    stored: Option<&K::Status>,
    verdict: Verdict,
    status: &mut K::Status,
) -> bool {
    let version = K::abort_version(spec);
    match verdict {
        Verdict::Exceeded { since } => stall(obj, cx, stored, since, version, status).await,
        _ => {
            keep_aborted(obj, version.as_deref(), status);
            false
        }
    }
}

/// Stalled by the deadline; returns whether the version is being aborted.
async fn stall<K: Rollout>(
    obj: &K,
    cx: &Context,
    stored: Option<&K::Status>,
    since: jiff::Timestamp,
    version: Option<String>,
    status: &mut K::Status,
) -> bool {
    let now = jiff::Timestamp::now();
    let deadline = obj.deadline();
    let aborting = deadline.abort && version.is_some();
    let message = progress::message(&deadline, since, &status_message(status), aborting);
    let already = stored.is_some_and(|s| {
        super::conditions::reason_of(s.conditions(), CONDITION_STALLED)
            == Some(REASON_PROGRESS_DEADLINE)
    });
    if !already {
        cx.event(
            obj,
            EventType::Warning,
            REASON_PROGRESS_DEADLINE,
            "Reconcile",
            message.clone(),
        )
        .await;
    }
    let last_progress_at = status.last_progress_at().map(str::to_string);
    *status = status::degraded(
        Some(status),
        obj.meta().generation,
        REASON_PROGRESS_DEADLINE,
        &message,
        None,
        now,
    );
    *status.shared().last_progress_at = last_progress_at;
    match (aborting, version) {
        (true, Some(v)) => {
            *status.shared().aborted = Some(Aborted {
                version: v,
                reason: REASON_PROGRESS_DEADLINE.to_string(),
                at: now.to_string(),
            });
            true
        }
        _ => false,
    }
}

/// A version rolled back on its own stays Degraded once the rollback is done; a spec that
/// names another version ends the abort.
fn keep_aborted<K: Rollout>(obj: &K, version: Option<&str>, status: &mut K::Status) {
    let Some(a) = status.aborted().cloned() else {
        return;
    };
    if version != Some(a.version.as_str()) {
        *status.shared().aborted = None;
        return;
    }
    if !super::conditions::is_true(status.conditions(), CONDITION_READY) {
        return; // still rolling back
    }
    let message = format!(
        "{} rolled back automatically ({} at {}): {}. It is not pushed again until the spec \
         names another version",
        a.version,
        a.reason,
        a.at,
        status_message(status)
    );
    *status = status::degraded(
        Some(status),
        obj.meta().generation,
        &a.reason,
        &message,
        None,
        jiff::Timestamp::now(),
    );
}

fn status_message<S: RolloutStatus>(status: &mut S) -> String {
    status.shared().message.clone().unwrap_or_default()
}

/// What executing a plan's actions did.
struct Executed {
    sent: bool,
    /// A mutation was held: the cloud has not shown it yet and its grace period runs.
    held: bool,
    /// Why a person is needed: a mutation sent twice that the cloud still does not show.
    stuck: Option<String>,
}

/// Execute the plan's actions in order, one mutation per intent: each is sent unless the
/// same call is in flight (see [`intent`]); the ones sent are reported and recorded in
/// `status.mutationsInFlight`.
async fn execute<K: Rollout>(
    obj: &K,
    cx: &Context,
    spec: &K::Spec,
    cloud: &dyn CloudApi,
    actions: &[K::Action],
    stored: &mut Option<K::Status>,
    status: &mut K::Status,
) -> Result<Executed, Error> {
    // What status holds, and what this operator remembers (a status write lost after the
    // mutations must not make them look unsent).
    let memory = memory_key(obj);
    let in_flight = intent::merge(
        stored
            .as_ref()
            .map(|s| s.mutations_in_flight())
            .unwrap_or_default(),
        &cx.remembered_in_flight(&memory),
    );
    let mut gate = intent::Gate::new(&in_flight, cx.timing.grace);
    let mut run = Executed {
        sent: false,
        held: false,
        stuck: None,
    };
    for action in actions {
        let (name, request) = (action.name(), action.describe());
        let now = jiff::Timestamp::now();
        let resent = match gate.decide(name, &request, now) {
            Intent::Send => false,
            Intent::Hold { .. } => {
                run.held = true;
                continue;
            }
            Intent::Stuck { accepted_at } => {
                run.stuck = Some(format!(
                    "{name} ({request}) was sent twice, first at {accepted_at} (each time \
                     accepted, or its answer lost on the way), and the cloud still does not show it; nothing more is sent until the cloud shows it or spec.retry changes \
                     (kubectl alicloud-rollouts retry)"
                ));
                continue;
            }
            Intent::Resend { accepted_at } => {
                let note = format!(
                    "{name} ({request}) was sent at {accepted_at} (accepted, or its answer lost on \
                     the way) and the cloud does not show it after {:?}: sending it once more",
                    cx.timing.grace
                );
                cx.event(obj, EventType::Warning, "MutationNotVisible", name, note)
                    .await;
                true
            }
        };
        // Fencing: a replica that lost the Lease (or was frozen past its renew deadline)
        // sends nothing; the new leader acts from the status.
        if !cx.leadership.is_leader() {
            return Err(Error::NotLeader);
        }
        let request_id = match K::execute(spec, cloud, action, status).await {
            Ok(id) => id,
            Err(err) => {
                // A mutation that may have taken effect is in flight like an accepted one,
                // and so are the ones sent before it: the next reconcile reads the cloud
                // and does not send them again within the grace period. An unknown outcome
                // is no proof the cloud accepted it, so it never counts as the second send
                // (a burst of 5xx must not leave the rollout stuck).
                if err.outcome_unknown() {
                    gate.sent(name, &request, now, false);
                }
                let records = gate.records();
                cx.remember_in_flight(&memory, records.clone());
                keep_in_flight::<K>(obj, cx, stored, records).await;
                return Err(err);
            }
        };
        report_mutation(obj, cx, action, &request_id).await;
        *status.shared().last_request_id = Some(request_id);
        gate.sent(name, &request, now, resent);
        run.sent = true;
    }
    let records = gate.records();
    cx.remember_in_flight(&memory, records.clone());
    *status.shared().mutations_in_flight = records;
    Ok(run)
}

/// After a failed mutation: write the in-flight records of this run (the mutations sent,
/// and one whose outcome is unknown) over the stored status, keeping the older records of
/// the mutations not reached. Nothing else of the status changes; `stored` follows the
/// write. A failed write is only logged: the reconcile fails anyway.
async fn keep_in_flight<K: Rollout>(
    obj: &K,
    cx: &Context,
    stored: &mut Option<K::Status>,
    records: Vec<crate::crd::common::MutationInFlight>,
) {
    let mut kept = stored.clone().unwrap_or_default();
    if kept.mutations_in_flight() == records.as_slice() {
        return;
    }
    *kept.shared().mutations_in_flight = records;
    match cx.write_status(obj, &kept).await {
        Ok(()) => *stored = Some(kept),
        Err(e) => tracing::warn!(error = %e, "could not record the mutations in flight"),
    }
}

/// Whose object this is, before anything is read of it: the account the credentials
/// belong to (GetCallerIdentity, remembered per access key) must be the one recorded with
/// the object, and no other resource in the cluster may own the object in that account.
/// Returns the account. A status recorded before accounts were (an upgrade) adopts the
/// current one.
pub async fn check_owner<K: Rollout>(
    obj: &K,
    cx: &Context,
    stored: Option<&K::Status>,
    cloud_ref: &str,
    cloud: &dyn CloudApi,
) -> Result<String, Error> {
    let account = cloud
        .caller_account()
        .await
        .map_err(|e| Error::cloud("GetCallerIdentity", e))?;
    match stored.and_then(|s| s.cloud_account()) {
        Some(recorded) if recorded != account => {
            return Err(Error::AccountChanged {
                object: cloud_ref.to_string(),
                recorded: recorded.to_string(),
                now: account,
            });
        }
        None if stored.and_then(|s| s.cloud_ref()).is_some() => {
            tracing::info!(%cloud_ref, %account, "recording the account of a cloud object recorded without one");
        }
        _ => {}
    }
    let me = super::owners::Entry::of(obj);
    cx.owners
        .claim(K::LABEL, cloud_ref, &account, &me, true)
        .await
        .map_err(|owner| Error::AlreadyManaged {
            kind: K::kind(&()).to_string(),
            object: cloud_ref.to_string(),
            owner,
        })?;
    Ok(account)
}

/// Write `status.cloudRef` and `status.cloudAccount` before the first mutation of a cloud
/// object, so that a resource always knows what it may have changed (cleanup acts on it,
/// the target of a resource cannot move, and credentials of another account change
/// nothing).
async fn record_ownership<K: Rollout>(
    obj: &K,
    cx: &Context,
    stored: &mut Option<K::Status>,
    cloud_ref: String,
    account: String,
) -> Result<(), Error> {
    if stored.as_ref().and_then(|s| s.cloud_ref()) == Some(cloud_ref.as_str())
        && stored.as_ref().and_then(|s| s.cloud_account()) == Some(account.as_str())
    {
        return Ok(());
    }
    let mut owned = stored.clone().unwrap_or_default();
    *owned.shared().cloud_ref = Some(cloud_ref);
    *owned.shared().cloud_account = Some(account);
    cx.write_status(obj, &owned).await?;
    *stored = Some(owned);
    Ok(())
}

/// A mutation the cloud accepted: counted, logged and reported in its own Event.
async fn report_mutation<K: Rollout>(obj: &K, cx: &Context, action: &K::Action, request_id: &str) {
    let (name, what) = (action.name(), action.describe());
    cx.metrics.mutation(K::LABEL, name);
    tracing::info!(action = name, request_id = %request_id, "{what}");
    cx.event(
        obj,
        EventType::Normal,
        name,
        name,
        format!("{what} (RequestId {request_id})"),
    )
    .await;
}

/// The resource is being deleted: run the kind's cleanup; a failure is reported like any
/// other.
pub async fn cleanup<K: Rollout>(obj: &K, cx: &Context) -> Result<Action, Error> {
    // A cleanup may delete in the cloud: like every mutation, only while the Lease is held.
    if !cx.leadership.is_leader() {
        return Err(Error::NotLeader);
    }
    match obj.cleanup(cx).await {
        Ok(()) => {
            cx.owners.release(&obj.uid().unwrap_or_default());
            cx.remember_in_flight(&memory_key(obj), Vec::new());
            cx.forget_cloud(&obj.uid().unwrap_or_default());
            cx.clear_failures(&key(obj));
            Ok(Action::await_change())
        }
        // Reported like any failure; the deletion is not done, so the finalizer stays (kube
        // removes it as soon as this branch returns Ok) and the cleanup is tried again.
        Err(err) => match report(obj, cx, obj.status(), err).await? {
            (_, Some(after)) => Err(Error::CleanupNotDone { after }),
            (_, None) => Err(Error::CleanupNotDone {
                after: cx.timing.recheck_after(1),
            }),
        },
    }
}

/// Report a failed reconcile (see [`report`]).
async fn fail<K: Rollout>(
    obj: &K,
    cx: &Context,
    stored: Option<&K::Status>,
    err: Error,
) -> Result<Action, Error> {
    report(obj, cx, stored, err).await.map(|(action, _)| action)
}

/// Report a failed reconcile: the failure metric and a Warning Event; then by the error's
/// kind: an invalid spec is Degraded and waits for a spec change; what needs a person
/// elsewhere (a missing cloud object, a permission, credentials) is Degraded and Stalled
/// and looked at again on a slow timer that status shows; anything else is an error for
/// [`error_policy`] to back off on. Returns the action and, for a person needed, the delay
/// of the next look.
async fn report<K: Rollout>(
    obj: &K,
    cx: &Context,
    stored: Option<&K::Status>,
    err: Error,
) -> Result<(Action, Option<std::time::Duration>), Error> {
    let reason = err.reason();
    cx.metrics.failure(K::LABEL, &reason);
    let note = match err.request_id() {
        Some(id) if !err.to_string().contains(id) => format!("{err} (RequestId {id})"),
        _ => err.to_string(),
    };
    tracing::warn!(error = %err, %reason, "reconcile failed");
    cx.event(obj, EventType::Warning, &reason, "Reconcile", note)
        .await;
    let reaction = err.reaction();
    if !matches!(reaction, Reaction::WaitForChange | Reaction::NeedsPerson) {
        if matches!(err, Error::Cloud { .. }) {
            mark_unknown(obj, cx, stored, &reason).await;
        }
        return Err(err);
    }
    let now = jiff::Timestamp::now();
    let (action, next_check, message, delay) = if reaction == Reaction::NeedsPerson {
        let delay = cx.next_recheck(&key(obj));
        let at = jiff::SignedDuration::try_from(delay)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(now);
        (
            Action::requeue(delay),
            Some(at.to_string()),
            format!("{err}; a person is needed: looked at again at {at}"),
            Some(delay),
        )
    } else {
        cx.clear_failures(&key(obj));
        (Action::await_change(), None, err.to_string(), None)
    };
    let mut degraded = status::degraded(
        stored,
        obj.meta().generation,
        &reason,
        &message,
        err.request_id(),
        now,
    );
    *degraded.shared().next_check_at = next_check;
    if let Err(e) = cx.write_status(obj, &degraded).await {
        tracing::warn!(error = %e, "could not write the Degraded status");
        return Err(e);
    }
    Ok((action, delay))
}

/// The cloud has kept failing to answer usably (5xx, timeouts, throttling, answers that do
/// not decode) for `--unknown-after`: the status stops claiming what it last saw, Ready
/// turns Unknown. The next reconcile that reads the cloud writes the conditions afresh.
async fn mark_unknown<K: Rollout>(obj: &K, cx: &Context, stored: Option<&K::Status>, reason: &str) {
    let now = jiff::Timestamp::now();
    let since = cx.failing_since(&key(obj), now);
    let bound = jiff::SignedDuration::try_from(cx.timing.unknown_after)
        .unwrap_or(jiff::SignedDuration::MAX);
    let Some(prev) = stored else { return };
    if now.duration_since(since) < bound {
        return;
    }
    let message = format!(
        "the cloud has not answered usably since {since} (last failure: {reason}); the state of \
         the rollout is unknown until it does"
    );
    let status = status::unknown(prev, &message, now);
    if &status != prev
        && let Err(e) = cx.write_status(obj, &status).await
    {
        tracing::warn!(error = %e, "could not write the Unknown status");
    }
}

/// After a failed reconcile: back off per object, harder when throttled.
pub fn error_policy<K: Rollout>(obj: Arc<K>, err: &Error, cx: Arc<Context>) -> Action {
    let delay = cx.next_retry(&key(obj.as_ref()), err.reaction(), err.retry_after());
    tracing::debug!(kind = K::LABEL, name = %obj.name_any(), ?delay, "retrying later");
    Action::requeue(delay)
}

/// The kube-runtime settings of every controller: at most `concurrency` reconciles at
/// once (0: no bound).
pub fn controller_config(concurrency: u16) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(concurrency)
}

/// Run the controller for `K` until shutdown. The task driving the reconciles also beats
/// the loop's heartbeat (every [`super::health::BEAT_EVERY`], events or not), and the
/// loop is marked synced once its cache has its first list: /healthz and /readyz.
pub async fn run_controller<K: Rollout>(cx: Arc<Context>, namespace: Option<String>) {
    let (reader, stream) = super::watch::watch::<K>(cx.clone(), namespace.as_deref());
    cx.owners.register(K::LABEL, reader.clone());
    let name = format!("{}/{}", K::LABEL, namespace.as_deref().unwrap_or("*"));
    tracing::info!(
        kind = K::LABEL,
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "starting controller"
    );
    let health = cx.health.clone();
    health.beat(&name);
    let synced = {
        let (reader, health, name) = (reader.clone(), health.clone(), name.clone());
        async move {
            if reader.wait_until_ready().await.is_ok() {
                health.synced(&name);
            }
        }
    };
    // No rollout is judged before the accounts are known (it would be refused for want
    // of an account that simply was not listed yet).
    cx.accounts.ready().await;
    let trigger = {
        let reader = reader.clone();
        cx.accounts.subscribe().flat_map(move |change| {
            futures::stream::iter(super::accounts::affected(&reader.state(), &change))
        })
    };
    let results = Controller::for_stream(stream, reader)
        .with_config(controller_config(cx.schedule.concurrency))
        .reconcile_on(trigger)
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, cx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(kind = K::LABEL, error = %e, "controller event");
            }
        });
    let mut results = std::pin::pin!(results);
    let mut synced = std::pin::pin!(synced);
    let mut synced_done = false;
    let mut beat = tokio::time::interval(super::health::BEAT_EVERY);
    loop {
        tokio::select! {
            () = &mut results => break,
            () = &mut synced, if !synced_done => synced_done = true,
            _ = beat.tick() => health.beat(&name),
        }
    }
    health.ended(&name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EasServiceRollout;
    use kube::runtime::{reflector, watcher};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn object(i: usize) -> EasServiceRollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EasServiceRollout",
            "metadata": {"name": format!("r{i}"), "namespace": "ns", "uid": format!("u{i}"), "generation": 1},
            "spec": {"region": "cn-shanghai", "serviceName": format!("s{i}"), "strategy": {"partition": "0"}},
        }))
        .expect("an object")
    }

    /// With a bound, a mass reconcile (every object at once, as after a start) never runs
    /// more reconciles at once than allowed, and still reaches every object.
    #[tokio::test]
    async fn reconciles_run_at_most_the_configured_number_at_once() {
        #[derive(Default)]
        struct Count {
            now: AtomicUsize,
            max: AtomicUsize,
        }
        let (reader, mut writer) = reflector::store::<EasServiceRollout>();
        let objects: Vec<_> = (0..24).map(object).collect();
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in &objects {
            writer.apply_watcher_event(&watcher::Event::InitApply(o.clone()));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let stream = futures::stream::iter(objects.into_iter().map(Ok::<_, watcher::Error>))
            .chain(futures::stream::pending());
        let count = Arc::new(Count::default());
        let run = Controller::for_stream(stream, reader)
            .with_config(controller_config(3))
            .run(
                |_obj: Arc<EasServiceRollout>, count: Arc<Count>| async move {
                    let now = count.now.fetch_add(1, Ordering::SeqCst) + 1;
                    count.max.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    count.now.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Error>(Action::await_change())
                },
                |_obj, _err: &Error, _count| Action::await_change(),
                count.clone(),
            )
            .filter(|r| futures::future::ready(r.is_ok()))
            .take(24)
            .count();
        let reconciled = tokio::time::timeout(std::time::Duration::from_secs(20), run)
            .await
            .expect("every object is reconciled");
        assert_eq!(reconciled, 24);
        assert_eq!(count.max.load(Ordering::SeqCst), 3);
    }
}
