//! `EsaContainerAppRollout`: what to send to the cloud and what status to write, as a pure
//! function of the validated spec, the previous status, GetEdgeContainerAppStatus's
//! `AppStatus` and `now`.
//!
//! Reading the cloud: the version the app is on is `PublishingVersion`, or
//! `DeployedVersion` when no version is being published; "ours" means that is
//! `spec.versionId`.
//! - By percentage (`spec.percentage`, default 100) or by regions (`spec.regions` with
//!   `fullRelease`): done when the cloud shows ours `published` with that target
//!   (`PublishType`, `PublishPercentage`, regions and `FullRelease`). While it shows ours
//!   `publishing` toward that target (`ExpectPercentage` or regions), nothing is sent and
//!   the plan polls. Otherwise one PublishEdgeContainerAppVersion, including when the cloud
//!   shows another version (published by someone else: the message says so) or ours rolled
//!   back while `spec.rollback` is false.
//! - `spec.startTime` in the future is sent as `StartTime`; a publish in flight toward a
//!   future start reports "scheduled for ..." and requeues at the start time. A start time
//!   already past is not sent (the cloud defaults to now).
//! - `spec.steps`: the percentage progression of [`plan_steps`]; a step's timer starts when
//!   the cloud shows ours `published` at that percentage.
//! - `spec.rollback`: RollbackEdgeContainerAppVersion back TO the baseline version (the
//!   cloud's BaseLineVersion, else the one recorded in status), sent only while the cloud
//!   shows ours and neither `rollbacking` nor `rollbacked`; when the cloud does not show
//!   ours there is nothing to roll back. Wins over `paused`.
//! - `spec.paused`: nothing is sent.

use jiff::Timestamp;

use super::spec::{AppSpec, Mode, Target};
use crate::cloud::model::wire::{
    PUBLISH_STATUS_PUBLISHED, PUBLISH_STATUS_PUBLISHING, PUBLISH_STATUS_ROLLBACKED,
    PUBLISH_STATUS_ROLLBACKING, PUBLISH_TYPE_PERCENTAGE, PUBLISH_TYPE_REGION,
};
use crate::cloud::model::{
    AppStatus, PublishEdgeContainerAppVersionRequest, RollbackEdgeContainerAppVersionRequest,
};
use crate::controller::outcome::{
    Outcome, PHASE_COMPLETED, PHASE_PAUSED, PHASE_PROGRESSING, PHASE_ROLLED_BACK,
};
use crate::controller::plan::{CloudAction, Decision, Input, Plan, Requeue};
use crate::controller::requeue::until;
use crate::controller::status::settle;
use crate::controller::steps::{Approval, StepInput, Steps, Wording, plan_steps};
use crate::crd::common::CONDITION_PROGRESSING;
use crate::crd::container_app::EsaContainerAppRolloutStatus;

/// Progressing reason while a publish waits for `spec.startTime`.
pub const REASON_SCHEDULED: &str = "Scheduled";

/// What the shell read: GetEdgeContainerAppStatus's `AppStatus` for the spec's
/// environment (None when the app has never been published there), and, while a rollback
/// is declared, for the other environment: RollbackEdgeContainerAppVersion names no
/// environment, so the planner must know what else it would move.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub app: Option<AppStatus>,
    pub other_env: Option<AppStatus>,
}

/// Reason of the refusal to roll back when the rollback would move the other environment.
pub const REASON_ROLLBACK_WOULD_MOVE_OTHER_ENV: &str = "RollbackWouldMoveOtherEnv";

/// The app environment that is not `env` (as PublishEnv spells it).
pub fn other_env(env: crate::crd::common::EsaEnv) -> &'static str {
    match env {
        crate::crd::common::EsaEnv::Staging => crate::crd::common::EsaEnv::Production.app_wire(),
        crate::crd::common::EsaEnv::Production => crate::crd::common::EsaEnv::Staging.app_wire(),
    }
}

/// Whether a rollback TO `target` changes an environment showing `env`: our reading of
/// RollbackEdgeContainerAppVersion (docs/simulator.md) is that every environment of the
/// app serving or publishing another version than `target` (its publishing or deployed
/// version, or the baseline that still serves part of the traffic) is rolled back.
pub fn rollback_moves(env: &AppStatus, target: &str) -> bool {
    let other = |v: &Option<String>| non_empty(v).is_some_and(|v| v != target);
    other(&env.publishing_version)
        || other(&env.deployed_version)
        || (env.publish_percentage.unwrap_or(100) < 100 && other(&env.base_line_version))
}

/// A cloud mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppAction {
    Publish(PublishEdgeContainerAppVersionRequest),
    Rollback(RollbackEdgeContainerAppVersionRequest),
}

impl CloudAction for AppAction {
    fn name(&self) -> &'static str {
        match self {
            AppAction::Publish(_) => "PublishEdgeContainerAppVersion",
            AppAction::Rollback(_) => "RollbackEdgeContainerAppVersion",
        }
    }

    fn describe(&self) -> String {
        match self {
            AppAction::Publish(r) => {
                let target = match (&r.regions, r.percentage) {
                    (Some(regions), _) => Target::Regions {
                        regions: regions.clone(),
                        full_release: r.full_release == Some(true),
                    },
                    (None, p) => Target::Percentage(p.unwrap_or(100)),
                };
                format!(
                    "published {} of {} to {} ({})",
                    r.version_id,
                    r.app_id,
                    r.publish_env,
                    target.describe()
                )
            }
            AppAction::Rollback(r) => format!("rolled back {} of {}", r.version_id, r.app_id),
        }
    }
}

pub type AppInput<'a> = Input<'a, AppSpec, EsaContainerAppRolloutStatus, Observed>;

/// What identifies a scheduled publish: version, app, environment, target and start time
/// (not the remarks: rewording them does not make another publish).
fn schedule_key(r: &PublishEdgeContainerAppVersionRequest) -> String {
    format!(
        "{} starting {}",
        AppAction::Publish(r.clone()).describe(),
        r.start_time.as_deref().unwrap_or("now")
    )
}

/// Decide. Pure: the same input always gives the same plan.
pub fn plan(input: &AppInput<'_>) -> Plan<AppAction, EsaContainerAppRolloutStatus> {
    let spec = input.spec;
    let ctx = Ctx::new(input);
    let mut d = match &spec.mode {
        Mode::Rollback { percentage } => rollback(&ctx, *percentage),
        Mode::Steps { steps, promotion } => progression(&ctx, input, steps, promotion.as_ref()),
        Mode::Fixed(target) => fixed(&ctx, target),
    };
    d.outcome.paused = spec.paused;
    let mut status = mirror(spec, input.status, input.observed.app.as_ref());
    status.scheduled_publish = match &d.action {
        Some(AppAction::Publish(r)) if r.start_time.is_some() => Some(schedule_key(r)),
        Some(_) => None,
        None => ctx
            .start
            .and(input.status)
            .and_then(|s| s.scheduled_publish.clone()),
    };
    status.current_step = d.steps.current_step;
    status.step_started_at = d.steps.step_started_at.clone();
    status.next_step_at = d.steps.next_step_at.clone();
    status.step_advanced_at = d.steps.step_advanced_at.clone();
    settle(
        &mut status,
        input.status,
        &d.outcome,
        input.generation,
        input.now,
    );
    Plan {
        actions: d.action.into_iter().collect(),
        status,
        requeue: d.outcome.requeue,
    }
}

/// The cloud's view of the app, as status shows it, and the version a rollback returns
/// to: the last baseline the cloud reported that was not ours.
fn mirror(
    spec: &AppSpec,
    prev: Option<&EsaContainerAppRolloutStatus>,
    a: Option<&AppStatus>,
) -> EsaContainerAppRolloutStatus {
    let rollback_version = a
        .and_then(|a| non_empty(&a.base_line_version))
        .filter(|b| *b != spec.version_id)
        .map(str::to_string)
        .or_else(|| {
            prev.and_then(|p| p.rollback_version.clone())
                .filter(|v| *v != spec.version_id)
        });
    EsaContainerAppRolloutStatus {
        publish_status: a.and_then(|a| a.publish_status.clone()),
        deploy_status: a.and_then(|a| a.deploy_status.clone()),
        publishing_version: a.and_then(|a| a.publishing_version.clone()),
        deployed_version: a.and_then(|a| a.deployed_version.clone()),
        baseline_version: a.and_then(|a| a.base_line_version.clone()),
        rollback_version,
        publish_percentage: a.and_then(|a| a.publish_percentage),
        expect_percentage: a.and_then(|a| a.expect_percentage),
        publish_type: a.and_then(|a| a.publish_type.clone()),
        regions: a
            .and_then(|a| a.regions.as_ref())
            .map(|r| r.region.clone())
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The cloud as the planner reads it.
struct View<'a> {
    app: Option<&'a AppStatus>,
    /// `PublishingVersion`, else `DeployedVersion`.
    version: Option<&'a str>,
    /// `PublishStatus`, "" when absent.
    state: &'a str,
    ours: bool,
}

impl<'a> View<'a> {
    fn new(app: Option<&'a AppStatus>, version_id: &str) -> Self {
        let version = app.and_then(|a| {
            non_empty(&a.publishing_version).or_else(|| non_empty(&a.deployed_version))
        });
        View {
            app,
            version,
            state: app.and_then(|a| a.publish_status.as_deref()).unwrap_or(""),
            ours: version == Some(version_id),
        }
    }

    fn by_percentage(&self) -> bool {
        self.app
            .and_then(|a| non_empty(&a.publish_type))
            .is_none_or(|t| t == PUBLISH_TYPE_PERCENTAGE)
    }

    /// The percentage reached (published) or being moved to (publishing).
    fn percentage(&self) -> Option<i32> {
        let a = self.app?;
        if self.state == PUBLISH_STATUS_PUBLISHING {
            a.expect_percentage.or(a.publish_percentage)
        } else {
            Some(a.publish_percentage.or(a.expect_percentage).unwrap_or(100))
        }
    }

    /// Ours, in `state`, with `target`.
    fn shows(&self, state: &str, target: &Target) -> bool {
        let Some(a) = self.app else { return false };
        if !self.ours || self.state != state {
            return false;
        }
        match target {
            // A publish in flight that does not say its target is taken as ours: sending
            // it again would only race the cloud.
            Target::Percentage(p) => {
                self.by_percentage() && self.percentage().is_none_or(|x| x == *p)
            }
            Target::Regions {
                regions,
                full_release,
            } => {
                non_empty(&a.publish_type) == Some(PUBLISH_TYPE_REGION)
                    && a.regions
                        .as_ref()
                        .map(|r| super::spec::sorted(&r.region))
                        .unwrap_or_default()
                        == *regions
                    && a.full_release.unwrap_or(false) == *full_release
            }
        }
    }

    /// Ours, published or being published toward `target`.
    fn reached_or_moving_to(&self, target: &Target) -> bool {
        self.shows(PUBLISH_STATUS_PUBLISHING, target)
            || self.shows(PUBLISH_STATUS_PUBLISHED, target)
    }

    fn describe(&self, env: &str) -> String {
        let Some(a) = self.app else {
            return format!("no version has been published in {env}");
        };
        let Some(v) = self.version else {
            return format!("no version is published in {env}");
        };
        let mut s = format!("cloud shows {v}");
        if !self.state.is_empty() {
            s.push(' ');
            s.push_str(self.state);
        }
        if non_empty(&a.publish_type) == Some(PUBLISH_TYPE_REGION) {
            let r = a
                .regions
                .as_ref()
                .map(|r| r.region.join(","))
                .unwrap_or_default();
            s.push_str(&format!(" to regions {r}"));
            if a.full_release == Some(true) {
                s.push_str(" (full release)");
            }
        } else if let Some(p) = a.publish_percentage {
            s.push_str(&format!(" at {p}%"));
            if let Some(e) = a.expect_percentage.filter(|e| *e != p) {
                s.push_str(&format!(" of {e}%"));
            }
        }
        s
    }
}

type AppDecision = Decision<AppAction>;

struct Ctx<'a> {
    spec: &'a AppSpec,
    env: &'static str,
    view: View<'a>,
    now: Timestamp,
    /// `spec.startTime` when still in the future.
    start: Option<Timestamp>,
    /// The last plan for this generation sent a publish scheduled for `start` (its
    /// Progressing reason is `Scheduled`): do not send it again before `start`, in case the
    /// cloud does not show scheduled publishes. (Status written before
    /// `scheduledPublish` existed.)
    sent_scheduled: bool,
    /// `status.scheduledPublish`: the scheduled publish sent (see [`schedule_key`]); the
    /// same publish is not sent again before its start, whatever else was edited.
    scheduled: Option<&'a str>,
    /// `status.rollbackVersion`: the last baseline seen that was not ours.
    prev_baseline: Option<&'a str>,
    /// The other environment, read while a rollback is declared.
    other_env: Option<&'a AppStatus>,
}

impl<'a> Ctx<'a> {
    fn new(input: &'a AppInput<'a>) -> Self {
        let spec = input.spec;
        Ctx {
            spec,
            env: spec.env.app_wire(),
            view: View::new(input.observed.app.as_ref(), &spec.version_id),
            other_env: input.observed.other_env.as_ref(),
            now: input.now,
            start: spec.start_time.filter(|t| *t > input.now),
            prev_baseline: input.status.and_then(|s| s.rollback_version.as_deref()),
            scheduled: input.status.and_then(|s| s.scheduled_publish.as_deref()),
            sent_scheduled: input.status.is_some_and(|s| {
                s.observed_generation == input.generation
                    && s.conditions.iter().any(|c| {
                        c.type_ == CONDITION_PROGRESSING
                            && c.status == "True"
                            && c.reason == REASON_SCHEDULED
                    })
            }),
        }
    }

    /// The publish toward `target` was sent for the (future) start time already.
    fn scheduled_pending(&self, target: &Target) -> bool {
        if self.start.is_none() {
            return false;
        }
        let AppAction::Publish(request) = self.publish(target) else {
            return false;
        };
        self.sent_scheduled || self.scheduled == Some(schedule_key(&request).as_str())
    }

    fn publish(&self, target: &Target) -> AppAction {
        let s = self.spec;
        let mut r = PublishEdgeContainerAppVersionRequest {
            app_id: s.app_id.clone(),
            version_id: s.version_id.clone(),
            publish_env: self.env.to_string(),
            publish_type: None,
            percentage: None,
            regions: None,
            full_release: None,
            start_time: self
                .start
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            remarks: s.remarks.clone(),
        };
        match target {
            Target::Percentage(p) => {
                r.publish_type = Some(PUBLISH_TYPE_PERCENTAGE.to_string());
                r.percentage = Some(*p);
            }
            Target::Regions {
                regions,
                full_release,
            } => {
                r.publish_type = Some(PUBLISH_TYPE_REGION.to_string());
                r.regions = Some(regions.clone());
                r.full_release = Some(*full_release);
            }
        }
        AppAction::Publish(r)
    }

    /// A publish toward `target`: held while it is in flight or scheduled, sent otherwise.
    /// `reason` is the Progressing reason while it moves.
    fn publish_or_wait(&self, target: &Target, head: String, reason: &str) -> AppDecision {
        if self.view.reached_or_moving_to(target) || self.scheduled_pending(target) {
            return Decision::hold(self.in_flight(head, reason));
        }
        Decision::send(self.sending(head, reason), self.publish(target))
    }

    /// Progressing outcome while a publish toward the target is in flight (or scheduled).
    fn in_flight(&self, head: String, reason: &str) -> Outcome {
        match self.start {
            Some(start) => Outcome::waiting(
                PHASE_PROGRESSING,
                REASON_SCHEDULED,
                format!("{head}: scheduled for {start}"),
                Requeue::After(until(self.now, start)),
            ),
            None => Outcome::moving(
                PHASE_PROGRESSING,
                reason,
                format!("{head}: {}", self.view.describe(self.env)),
            ),
        }
    }

    /// Progressing outcome for a publish being sent now.
    fn sending(&self, head: String, reason: &str) -> Outcome {
        let v = &self.spec.version_id;
        let seen = self.view.describe(self.env);
        let why = if self.view.version.is_none() || self.view.ours && !self.rolled_back() {
            seen
        } else if !self.view.ours {
            format!("{seen}, not {v} (changed outside this resource?), so publishing {v} again")
        } else {
            format!("{seen}; spec.rollback is false, so publishing it again")
        };
        match self.start {
            Some(start) => Outcome::moving(
                PHASE_PROGRESSING,
                REASON_SCHEDULED,
                format!("{head} ({why}); scheduled for {start}"),
            ),
            None => Outcome::moving(PHASE_PROGRESSING, reason, format!("{head} ({why})")),
        }
    }

    fn rolled_back(&self) -> bool {
        self.view.state == PUBLISH_STATUS_ROLLBACKING
            || self.view.state == PUBLISH_STATUS_ROLLBACKED
    }
}

fn fixed(ctx: &Ctx<'_>, target: &Target) -> AppDecision {
    let v = &ctx.spec.version_id;
    if ctx.view.shows(PUBLISH_STATUS_PUBLISHED, target) {
        return Decision::hold(Outcome::done(
            PHASE_COMPLETED,
            "Completed",
            format!("{v} is published to {} of {}", target.describe(), ctx.env),
        ));
    }
    let head = format!("publishing {v} to {} of {}", target.describe(), ctx.env);
    let in_flight =
        ctx.view.shows(PUBLISH_STATUS_PUBLISHING, target) || ctx.scheduled_pending(target);
    if ctx.spec.paused && !in_flight {
        return Decision::hold(Outcome::new(
            PHASE_PAUSED,
            format!(
                "paused before {head} ({}); set spec.paused: false to continue",
                ctx.view.describe(ctx.env)
            ),
        ));
    }
    ctx.publish_or_wait(target, head, "Publishing")
}

fn rollback(ctx: &Ctx<'_>, percentage: Option<i32>) -> AppDecision {
    let v = &ctx.spec.version_id;
    let view = &ctx.view;
    let seen = view.describe(ctx.env);
    if !view.ours {
        return Decision::hold(Outcome::done(
            PHASE_ROLLED_BACK,
            "RolledBack",
            format!(
                "{v} is not published in {} ({seen}): nothing to roll back; set spec.rollback: false to publish it",
                ctx.env
            ),
        ));
    }
    if view.state == PUBLISH_STATUS_ROLLBACKED {
        let baseline = view
            .app
            .and_then(|a| non_empty(&a.base_line_version))
            .map(|b| format!("; {b} is the baseline"))
            .unwrap_or_default();
        return Decision::hold(Outcome::done(
            PHASE_ROLLED_BACK,
            "RolledBack",
            format!(
                "{v} is rolled back in {}{baseline}; set spec.rollback: false to publish it again",
                ctx.env
            ),
        ));
    }
    if view.state == PUBLISH_STATUS_ROLLBACKING {
        return Decision::hold(Outcome::moving(
            PHASE_PROGRESSING,
            "RollingBack",
            format!("rolling back {v} in {}: {seen}", ctx.env),
        ));
    }
    match rollback_target(ctx) {
        // The declared state cannot be reached: say so and wait for a person.
        None => Decision::hold(Outcome::needs_person(
            "NoBaseline",
            format!(
                "cannot roll back {v} in {}: the cloud reports no earlier baseline version to return to ({seen}); publish the previous version with spec.versionId instead",
                ctx.env
            ),
        )),
        // The call has no environment: refuse where it would move the other one too.
        Some(target)
            if ctx
                .other_env
                .is_some_and(|other| rollback_moves(other, target)) =>
        {
            let other = other_env(ctx.spec.env);
            let seen = View::new(ctx.other_env, target).describe(other);
            Decision::hold(Outcome::needs_person(
                REASON_ROLLBACK_WOULD_MOVE_OTHER_ENV,
                format!(
                    "not rolling back {v} in {}: RollbackEdgeContainerAppVersion has no environment \
                     parameter, so rolling back to {target} would also move {other} ({seen}); make \
                     {other} serve {target} first, or publish {target} in {} with spec.versionId \
                     (spec.rollback: false)",
                    ctx.env, ctx.env
                ),
            ))
        }
        Some(target) => Decision::send(
            Outcome::moving(
                PHASE_PROGRESSING,
                "RollingBack",
                format!(
                    "rolling back {v} to {target}{} in {} ({seen})",
                    percentage
                        .map(|p| format!(" on {p}% of traffic"))
                        .unwrap_or_default(),
                    ctx.env
                ),
            ),
            AppAction::Rollback(RollbackEdgeContainerAppVersionRequest {
                app_id: ctx.spec.app_id.clone(),
                version_id: target.to_string(),
                percentage,
                used_percent: percentage.map(|_| true),
                remarks: ctx.spec.remarks.clone(),
            }),
        ),
    }
}

/// RollbackEdgeContainerAppVersion takes the version to return TO: the baseline that
/// served before ours (the cloud's, else the one recorded in status before ours became
/// the baseline).
fn rollback_target<'a>(ctx: &'a Ctx<'a>) -> Option<&'a str> {
    let v = ctx.spec.version_id.as_str();
    ctx.view
        .app
        .and_then(|a| non_empty(&a.base_line_version))
        .filter(|b| *b != v)
        .or_else(|| ctx.prev_baseline.filter(|b| !b.is_empty() && *b != v))
}

fn progression(
    ctx: &Ctx<'_>,
    input: &AppInput<'_>,
    steps: &Steps,
    promotion: Option<&Approval>,
) -> AppDecision {
    let v = &ctx.spec.version_id;
    let view = &ctx.view;
    let moving = view.ours
        && view.by_percentage()
        && (view.state == PUBLISH_STATUS_PUBLISHING || view.state == PUBLISH_STATUS_PUBLISHED);
    let prev = input.status;
    let sp = plan_steps(&StepInput {
        steps,
        approved_step: Approval::for_version(promotion, v),
        paused: ctx.spec.paused,
        prev_step: prev.and_then(|s| s.current_step),
        prev_started_at: prev.and_then(|s| s.step_started_at.as_deref()),
        prev_advanced_at: prev.and_then(|s| s.step_advanced_at.as_deref()),
        prev_same_generation: prev.is_some_and(|s| s.observed_generation == input.generation),
        prev_percentage: prev.and_then(|s| {
            let version =
                non_empty(&s.publishing_version).or_else(|| non_empty(&s.deployed_version));
            (version == Some(v.as_str()))
                .then_some(s.publish_percentage)
                .flatten()
        }),
        cloud_percentage: if moving { view.percentage() } else { None },
        cloud_settled: moving && view.state == PUBLISH_STATUS_PUBLISHED,
        analysis: crate::controller::analysis::step_verdict(
            prev.and_then(|s| s.analysis.as_ref()),
            v,
        ),
        now: input.now,
    });
    let wording = Wording {
        at: format!("{v} at {}% of {}", sp.target, ctx.env),
        promote: format!(
            "spec.promotion: {{versionId: {v}, step: {}}}{}",
            sp.current,
            Approval::stale_note(promotion, v)
        ),
        cloud: view.describe(ctx.env),
        complete: format!(
            "{v} is published to 100% of {} after {} steps",
            ctx.env, sp.total
        ),
    };
    let mut d = match sp.holding(&wording, input.now) {
        Some(outcome) => Decision::hold(outcome),
        // Already there (e.g. a last step at 100%, after which the final 100% is the same
        // target): publishing it again would be a duplicate mutation.
        None => ctx.publish_or_wait(
            &Target::Percentage(sp.target),
            sp.head(&format!("publishing {v} to {}% of {}", sp.target, ctx.env)),
            &sp.step_reason(),
        ),
    };
    d.steps = sp.record();
    d
}

#[cfg(test)]
mod tests {
    use super::super::spec::fixtures::*;
    use super::super::spec::validate;
    use super::*;
    use crate::cloud::model::AppRegions;
    use crate::controller::conditions::is_true;
    use crate::controller::plan::decide;
    use crate::crd::common::{
        CONDITION_DEGRADED, CONDITION_PAUSED, CONDITION_PROGRESSING, CONDITION_READY, CanaryStep,
    };
    use crate::crd::container_app::{AppPromotion, EsaContainerAppRolloutSpec};
    use std::time::Duration;

    type AppPlan = Plan<AppAction, EsaContainerAppRolloutStatus>;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid test timestamp")
    }

    /// The cloud showing `version` in `state` by percentage.
    fn pct(version: &str, state: &str, publish: i32, expect: i32) -> AppStatus {
        AppStatus {
            publish_status: Some(state.into()),
            deploy_status: Some("deployed".into()),
            publishing_version: Some(version.into()),
            deployed_version: Some(OTHER.into()),
            base_line_version: Some(OTHER.into()),
            publish_percentage: Some(publish),
            expect_percentage: Some(expect),
            publish_type: Some("percentage".into()),
            publish_env: Some("prod".into()),
            ..Default::default()
        }
    }

    fn region(version: &str, state: &str, regions: &[&str], full: bool) -> AppStatus {
        AppStatus {
            publish_status: Some(state.into()),
            publishing_version: Some(version.into()),
            publish_type: Some("region".into()),
            full_release: Some(full),
            regions: Some(AppRegions {
                region: regions.iter().map(|r| (*r).to_string()).collect(),
            }),
            ..Default::default()
        }
    }

    fn run(
        spec: &EsaContainerAppRolloutSpec,
        status: Option<&EsaContainerAppRolloutStatus>,
        cloud: Option<&AppStatus>,
        now: i64,
    ) -> AppPlan {
        let observed = Observed {
            app: cloud.cloned(),
            other_env: None,
        };
        let p = decide(
            plan,
            Input {
                spec: &validate(spec).expect("valid spec"),
                generation: Some(7),
                status,
                observed: &observed,
                now: ts(now),
            },
        );
        assert!(p.actions.len() <= 1, "at most one action");
        assert_eq!(p.status.observed_generation, Some(7));
        p
    }

    fn published(p: &AppPlan) -> Option<&PublishEdgeContainerAppVersionRequest> {
        match p.actions.first() {
            Some(AppAction::Publish(r)) => Some(r),
            _ => None,
        }
    }

    fn rolled_back(p: &AppPlan) -> Option<&RollbackEdgeContainerAppVersionRequest> {
        match p.actions.first() {
            Some(AppAction::Rollback(r)) => Some(r),
            _ => None,
        }
    }

    fn reason<'a>(p: &'a AppPlan, t: &str) -> &'a str {
        p.status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.reason.as_str())
            .unwrap_or("")
    }

    fn msg(p: &AppPlan) -> String {
        p.status.message.clone().unwrap_or_default()
    }

    /// (publish_type, percentage, regions, full_release) expected in a publish request.
    type Sent = (
        &'static str,
        Option<i32>,
        Option<Vec<&'static str>>,
        Option<bool>,
    );

    #[test]
    fn publish_table() {
        struct Case {
            name: &'static str,
            spec: EsaContainerAppRolloutSpec,
            cloud: Option<AppStatus>,
            send: Option<Sent>,
            phase: &'static str,
            ready: bool,
            message: &'static str,
        }
        let cases = vec![
            Case {
                name: "never published: publish 100%",
                spec: spec(),
                cloud: None,
                send: Some(("percentage", Some(100), None, None)),
                phase: "Progressing",
                ready: false,
                message: "no version has been published in prod",
            },
            Case {
                name: "ours published at 100%: done",
                spec: spec(),
                cloud: Some(pct(OURS, "published", 100, 100)),
                send: None,
                phase: "Completed",
                ready: true,
                message: "ver-200 is published to 100% of prod",
            },
            Case {
                name: "ours deployed with no publishing version: done",
                spec: spec(),
                cloud: Some(AppStatus {
                    publish_status: Some("published".into()),
                    deployed_version: Some(OURS.into()),
                    ..Default::default()
                }),
                send: None,
                phase: "Completed",
                ready: true,
                message: "published to 100%",
            },
            Case {
                name: "ours publishing toward the target: poll",
                spec: spec(),
                cloud: Some(pct(OURS, "publishing", 40, 100)),
                send: None,
                phase: "Progressing",
                ready: false,
                message: "cloud shows ver-200 publishing at 40% of 100%",
            },
            Case {
                name: "ours publishing without saying its target: poll, do not race it",
                spec: spec(),
                cloud: Some(AppStatus {
                    publish_status: Some("publishing".into()),
                    publishing_version: Some(OURS.into()),
                    ..Default::default()
                }),
                send: None,
                phase: "Progressing",
                ready: false,
                message: "cloud shows ver-200 publishing",
            },
            Case {
                name: "ours published at another percentage",
                spec: EsaContainerAppRolloutSpec {
                    percentage: Some(30),
                    ..spec()
                },
                cloud: Some(pct(OURS, "published", 10, 10)),
                send: Some(("percentage", Some(30), None, None)),
                phase: "Progressing",
                ready: false,
                message: "publishing ver-200 to 30% of prod",
            },
            Case {
                name: "another version published by someone else: publish ours",
                spec: spec(),
                cloud: Some(pct(OTHER, "published", 100, 100)),
                send: Some(("percentage", Some(100), None, None)),
                phase: "Progressing",
                ready: false,
                message: "cloud shows ver-100 published at 100%, not ver-200 (changed outside this resource?), so publishing ver-200 again",
            },
            Case {
                name: "another version publishing: publish ours",
                spec: spec(),
                cloud: Some(pct("ver-300", "publishing", 5, 50)),
                send: Some(("percentage", Some(100), None, None)),
                phase: "Progressing",
                ready: false,
                message: "not ver-200",
            },
            Case {
                name: "ours rolled back but spec.rollback is false: publish again",
                spec: spec(),
                cloud: Some(pct(OURS, "rollbacked", 100, 100)),
                send: Some(("percentage", Some(100), None, None)),
                phase: "Progressing",
                ready: false,
                message: "spec.rollback is false",
            },
            Case {
                name: "by region with full release",
                spec: EsaContainerAppRolloutSpec {
                    regions: Some(vec!["jiangsu".into(), "beijing".into()]),
                    full_release: Some(true),
                    ..spec()
                },
                cloud: None,
                send: Some(("region", None, Some(vec!["beijing", "jiangsu"]), Some(true))),
                phase: "Progressing",
                ready: false,
                message: "regions beijing,jiangsu (full release)",
            },
            Case {
                name: "by region: same regions in another order: done",
                spec: EsaContainerAppRolloutSpec {
                    regions: Some(vec!["jiangsu".into(), "beijing".into()]),
                    full_release: Some(true),
                    ..spec()
                },
                cloud: Some(region(OURS, "published", &["beijing", "jiangsu"], true)),
                send: None,
                phase: "Completed",
                ready: true,
                message: "published to regions",
            },
            Case {
                name: "by region: full release differs",
                spec: EsaContainerAppRolloutSpec {
                    regions: Some(vec!["jiangsu".into()]),
                    full_release: Some(true),
                    ..spec()
                },
                cloud: Some(region(OURS, "published", &["jiangsu"], false)),
                send: Some(("region", None, Some(vec!["jiangsu"]), Some(true))),
                phase: "Progressing",
                ready: false,
                message: "",
            },
            Case {
                name: "by region: publishing the same regions: poll",
                spec: EsaContainerAppRolloutSpec {
                    regions: Some(vec!["jiangsu".into()]),
                    ..spec()
                },
                cloud: Some(region(OURS, "publishing", &["jiangsu"], false)),
                send: None,
                phase: "Progressing",
                ready: false,
                message: "",
            },
            Case {
                name: "percentage wanted, cloud published by region: publish",
                spec: spec(),
                cloud: Some(region(OURS, "published", &["jiangsu"], true)),
                send: Some(("percentage", Some(100), None, None)),
                phase: "Progressing",
                ready: false,
                message: "",
            },
            Case {
                name: "paused holds",
                spec: EsaContainerAppRolloutSpec {
                    paused: true,
                    ..spec()
                },
                cloud: Some(pct(OTHER, "published", 100, 100)),
                send: None,
                phase: "Paused",
                ready: false,
                message: "set spec.paused: false",
            },
        ];
        for c in cases {
            let p = run(&c.spec, None, c.cloud.as_ref(), 0);
            let got = published(&p).map(|r| {
                assert_eq!(r.app_id, "app-1", "{}", c.name);
                assert_eq!(r.version_id, OURS, "{}", c.name);
                assert_eq!(r.publish_env, "prod", "{}", c.name);
                assert_eq!(r.remarks.as_deref(), Some("by test"), "{}", c.name);
                assert_eq!(r.start_time, None, "{}", c.name);
                (
                    r.publish_type.clone().unwrap_or_default(),
                    r.percentage,
                    r.regions.clone(),
                    r.full_release,
                )
            });
            let want = c.send.map(|(t, pc, rg, f)| {
                (
                    t.to_string(),
                    pc,
                    rg.map(|v| v.iter().map(|s| (*s).to_string()).collect()),
                    f,
                )
            });
            assert_eq!(got, want, "{}", c.name);
            assert_eq!(p.status.phase.as_deref(), Some(c.phase), "{}", c.name);
            assert_eq!(
                is_true(&p.status.conditions, CONDITION_READY),
                c.ready,
                "{}",
                c.name
            );
            assert!(msg(&p).contains(c.message), "{}: {}", c.name, msg(&p));
            let polls = c.phase == "Progressing";
            assert_eq!(p.requeue != Requeue::Settled, polls, "{}", c.name);
        }
    }

    #[test]
    fn status_mirrors_the_cloud() {
        let cloud = pct(OURS, "publishing", 40, 100);
        let p = run(&spec(), None, Some(&cloud), 0);
        let s = &p.status;
        assert_eq!(s.publish_status.as_deref(), Some("publishing"));
        assert_eq!(s.deploy_status.as_deref(), Some("deployed"));
        assert_eq!(s.publishing_version.as_deref(), Some(OURS));
        assert_eq!(s.deployed_version.as_deref(), Some(OTHER));
        assert_eq!(s.baseline_version.as_deref(), Some(OTHER));
        assert_eq!(s.publish_percentage, Some(40));
        assert_eq!(s.expect_percentage, Some(100));
        assert_eq!(s.publish_type.as_deref(), Some("percentage"));
        assert_eq!(reason(&p, CONDITION_PROGRESSING), "Publishing");
        assert_eq!(p.requeue, Requeue::Active);
        let cloud = region(OURS, "published", &["a", "b"], false);
        let p = run(&spec(), None, Some(&cloud), 0);
        assert_eq!(p.status.regions, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn start_time_in_the_future_is_scheduled() {
        let s = EsaContainerAppRolloutSpec {
            start_time: Some("2027-01-15T16:00:00Z".into()),
            ..spec()
        };
        let start: Timestamp = "2027-01-15T16:00:00Z".parse().expect("time");
        let now = start.as_second() - 1_800_000_000 - 3600;
        let p = run(&s, None, None, now);
        let r = published(&p).expect("publishes");
        assert_eq!(r.start_time.as_deref(), Some("2027-01-15T16:00:00Z"));
        assert!(
            msg(&p).contains("scheduled for 2027-01-15T16:00:00Z"),
            "{}",
            msg(&p)
        );
        assert_eq!(reason(&p, CONDITION_PROGRESSING), "Scheduled");
        // The cloud shows it pending: nothing more, look again at the start time.
        let cloud = pct(OURS, "publishing", 0, 100);
        let p = run(&s, Some(&p.status), Some(&cloud), now);
        assert!(p.actions.is_empty());
        assert_eq!(p.status.phase.as_deref(), Some("Progressing"));
        assert!(
            msg(&p).contains("scheduled for 2027-01-15T16:00:00Z"),
            "{}",
            msg(&p)
        );
        assert_eq!(p.requeue, Requeue::After(Duration::from_secs(3600)));
        // The cloud does not show the scheduled publish at all: not sent again before the
        // start time (the last plan for this generation sent it)...
        let sent = run(&s, None, None, now);
        let p = run(&s, Some(&sent.status), None, now + 60);
        assert!(p.actions.is_empty(), "scheduled publish not repeated");
        assert_eq!(p.requeue, Requeue::After(Duration::from_secs(3540)));
        // ...nor after a spec edit that leaves the publish as it was (remarks, paused and
        // back: a new generation).
        let edited = EsaContainerAppRolloutSpec {
            remarks: Some("reworded".into()),
            ..s.clone()
        };
        let p = run(
            &edited,
            Some(&EsaContainerAppRolloutStatus {
                observed_generation: Some(6),
                ..sent.status.clone()
            }),
            None,
            now + 60,
        );
        assert!(
            p.actions.is_empty(),
            "the same scheduled publish is not sent again after an edit: {:?}",
            p.actions
        );
        assert_eq!(reason(&p, CONDITION_PROGRESSING), "Scheduled");
        let p = run(&edited, Some(&p.status), None, now + 120);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        // An edit of the publish itself (another start time, another share) is sent.
        for changed in [
            EsaContainerAppRolloutSpec {
                start_time: Some("2027-01-15T17:00:00Z".into()),
                ..s.clone()
            },
            EsaContainerAppRolloutSpec {
                percentage: Some(50),
                ..s.clone()
            },
        ] {
            let p = run(
                &changed,
                Some(&EsaContainerAppRolloutStatus {
                    observed_generation: Some(6),
                    ..sent.status.clone()
                }),
                None,
                now + 60,
            );
            assert!(published(&p).is_some(), "{changed:?}");
        }
        // A start time already past is not sent.
        let p = run(&s, None, None, now + 7200);
        assert_eq!(published(&p).map(|r| r.start_time.clone()), Some(None));
        assert!(!msg(&p).contains("scheduled"));
    }

    #[test]
    fn rollback_is_issued_once() {
        let s = EsaContainerAppRolloutSpec {
            rollback: true,
            ..spec()
        };
        let p = run(&s, None, Some(&pct(OURS, "published", 100, 100)), 0);
        let r = rolled_back(&p).expect("rolls back");
        // The request names the version to return TO: the baseline, not ours.
        assert_eq!((r.app_id.as_str(), r.version_id.as_str()), ("app-1", OTHER));
        assert_eq!(reason(&p, CONDITION_PROGRESSING), "RollingBack");
        assert_eq!(p.requeue, Requeue::Active);
        // Also mid-publish, and while paused.
        let paused = EsaContainerAppRolloutSpec {
            paused: true,
            ..s.clone()
        };
        for (spec, cloud) in [
            (&s, pct(OURS, "publishing", 30, 50)),
            (&paused, pct(OURS, "published", 10, 10)),
        ] {
            let p = run(spec, None, Some(&cloud), 0);
            assert!(rolled_back(&p).is_some(), "{cloud:?}");
        }
        // While the cloud rolls back: nothing new, poll.
        let p = run(
            &s,
            Some(&p.status),
            Some(&pct(OURS, "rollbacking", 100, 100)),
            5,
        );
        assert!(p.actions.is_empty());
        assert_eq!(p.status.phase.as_deref(), Some("Progressing"));
        assert_eq!(p.requeue, Requeue::Active);
        // Rolled back: done.
        let p = run(
            &s,
            Some(&p.status),
            Some(&pct(OURS, "rollbacked", 100, 100)),
            10,
        );
        assert!(p.actions.is_empty());
        assert_eq!(p.status.phase.as_deref(), Some("RolledBack"));
        assert!(is_true(&p.status.conditions, CONDITION_READY));
        assert_eq!(reason(&p, CONDITION_READY), "RolledBack");
        assert_eq!(p.requeue, Requeue::Settled);
        // The cloud no longer shows ours (or never did): nothing to roll back.
        for cloud in [None, Some(pct(OTHER, "published", 100, 100))] {
            let p = run(&s, None, cloud.as_ref(), 10);
            assert!(p.actions.is_empty(), "{cloud:?}");
            assert_eq!(p.status.phase.as_deref(), Some("RolledBack"));
            assert!(msg(&p).contains("nothing to roll back"), "{}", msg(&p));
        }
    }

    #[test]
    fn rollback_version_is_the_last_baseline_that_was_not_ours() {
        let full = |version: &str, baseline: &str| {
            let mut a = pct(version, "published", 100, 100);
            a.base_line_version = Some(baseline.into());
            a
        };
        // Before our publish: the cloud's baseline is recorded.
        let p = run(&spec(), None, Some(&full(OTHER, OTHER)), 0);
        assert_eq!(p.status.rollback_version.as_deref(), Some(OTHER));
        // Ours became the baseline: the earlier one is kept.
        let p = run(&spec(), Some(&p.status), Some(&full(OURS, OURS)), 1);
        assert_eq!(p.status.rollback_version.as_deref(), Some(OTHER));
        // A new version in spec: ours (now the old one) is what a rollback returns to.
        let next = EsaContainerAppRolloutSpec {
            version_id: "ver-next".into(),
            ..spec()
        };
        let p = run(&next, Some(&p.status), Some(&full(OURS, OURS)), 2);
        assert_eq!(p.status.rollback_version.as_deref(), Some(OURS));
    }

    #[test]
    fn rollback_returns_to_the_baseline_or_says_why_it_cannot() {
        let s = EsaContainerAppRolloutSpec {
            rollback: true,
            ..spec()
        };
        // Ours became the baseline (a 100% publish): the baseline recorded earlier is the target.
        let mut cloud = pct(OURS, "published", 100, 100);
        cloud.base_line_version = Some(OURS.into());
        let earlier = EsaContainerAppRolloutStatus {
            rollback_version: Some(OTHER.into()),
            ..Default::default()
        };
        let p = run(&s, Some(&earlier), Some(&cloud), 0);
        let r = rolled_back(&p).expect("rolls back to the recorded baseline");
        assert_eq!(r.version_id, OTHER);
        assert_eq!(p.status.rollback_version.as_deref(), Some(OTHER), "kept");
        // No baseline anywhere: no call, Degraded with a message saying what to do.
        let p = run(&s, None, Some(&cloud), 0);
        assert!(p.actions.is_empty());
        assert_eq!(p.status.phase.as_deref(), Some("Degraded"));
        assert!(is_true(&p.status.conditions, CONDITION_DEGRADED));
        assert!(msg(&p).contains("no earlier baseline"), "{}", msg(&p));
    }

    /// `rollbackPercentage` is sent as a percentage rollback: the version returned to
    /// serves that share (UsedPercent with Percentage).
    #[test]
    fn a_partial_rollback_sends_the_share_of_the_version_returned_to() {
        let s = EsaContainerAppRolloutSpec {
            rollback: true,
            rollback_percentage: Some(30),
            ..spec()
        };
        let p = run(&s, None, Some(&pct(OURS, "published", 50, 50)), 0);
        let r = rolled_back(&p).expect("rolls back");
        assert_eq!(
            (r.version_id.as_str(), r.percentage, r.used_percent),
            (OTHER, Some(30), Some(true))
        );
        assert!(msg(&p).contains("on 30% of traffic"), "{}", msg(&p));
        let whole = EsaContainerAppRolloutSpec {
            rollback: true,
            ..spec()
        };
        let p = run(&whole, None, Some(&pct(OURS, "published", 50, 50)), 0);
        let r = rolled_back(&p).expect("rolls back");
        assert_eq!((r.percentage, r.used_percent), (None, None));
    }

    /// RollbackEdgeContainerAppVersion names no environment (1h): sent only where the
    /// other environment already shows the version returned to (or nothing).
    #[test]
    fn rollback_is_refused_where_it_would_move_the_other_environment() {
        let s = EsaContainerAppRolloutSpec {
            rollback: true,
            env: crate::crd::common::EsaEnv::Staging,
            ..spec()
        };
        // Ours at 50% in staging over OTHER: the rollback returns to OTHER.
        let ours = pct(OURS, "published", 50, 50);
        let shows = |v: &str, pct: i32, baseline: &str| AppStatus {
            publish_status: Some("published".into()),
            publishing_version: Some(v.into()),
            deployed_version: Some(v.into()),
            base_line_version: Some(baseline.into()),
            publish_percentage: Some(pct),
            expect_percentage: Some(pct),
            publish_type: Some("percentage".into()),
            ..Default::default()
        };
        let never = AppStatus {
            deploy_status: Some("undeploy".into()),
            ..Default::default()
        };
        let cases = [
            (
                "prod serves a third version",
                Some(shows("ver-300", 100, "ver-300")),
                true,
            ),
            ("prod serves ours", Some(shows(OURS, 100, OURS)), true),
            (
                "prod is part-way onto OTHER",
                Some(shows(OTHER, 50, "ver-300")),
                true,
            ),
            ("prod serves OTHER", Some(shows(OTHER, 100, OTHER)), false),
            ("prod never published", Some(never), false),
            ("prod not read", None, false),
        ];
        for (what, other, refused) in cases {
            let observed = Observed {
                app: Some(ours.clone()),
                other_env: other,
            };
            let p = decide(
                plan,
                Input {
                    spec: &validate(&s).expect("valid spec"),
                    generation: Some(7),
                    status: None,
                    observed: &observed,
                    now: ts(0),
                },
            );
            if refused {
                assert!(p.actions.is_empty(), "{what}: {:?}", p.actions);
                assert_eq!(p.status.phase.as_deref(), Some("Degraded"), "{what}");
                assert_eq!(
                    reason(&p, CONDITION_DEGRADED),
                    REASON_ROLLBACK_WOULD_MOVE_OTHER_ENV,
                    "{what}"
                );
                assert!(
                    msg(&p).contains("would also move prod") && msg(&p).contains(OTHER),
                    "{what}: {}",
                    msg(&p)
                );
            } else {
                let r = rolled_back(&p).unwrap_or_else(|| panic!("{what}: rolls back"));
                assert_eq!(r.version_id, OTHER, "{what}");
            }
        }
    }

    /// A spec whose last step is 100%: once the cloud shows it published, the final 100%
    /// is the same target and is not sent again.
    #[test]
    fn a_last_step_at_100_is_not_published_twice() {
        let s = EsaContainerAppRolloutSpec {
            steps: Some(vec![
                CanaryStep {
                    percentage: 50,
                    pause: None,
                    analysis: None,
                },
                CanaryStep {
                    percentage: 100,
                    pause: None,
                    analysis: None,
                },
            ]),
            promotion: Some(AppPromotion {
                version_id: OURS.into(),
                step: 1,
            }),
            ..spec()
        };
        let prev = EsaContainerAppRolloutStatus {
            current_step: Some(1),
            ..Default::default()
        };
        let cloud = pct(OURS, "published", 100, 100);
        let p = run(&s, Some(&prev), Some(&cloud), 10);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        let next = run(&s, Some(&p.status), Some(&cloud), 20);
        assert!(next.actions.is_empty(), "{:?}", next.actions);
        assert!(
            is_true(&next.status.conditions, CONDITION_READY),
            "{:?}",
            next.status
        );
    }

    /// Invariant 1b for container apps: an approval opens only the gates of the version it
    /// names; a new versionId starts at the first step with every gate closed.
    #[test]
    fn an_approval_opens_only_the_gates_of_the_version_it_names() {
        const NEXT: &str = "ver-300";
        let gate = |percentage| CanaryStep {
            percentage,
            pause: None,
            analysis: None,
        };
        let mut s = EsaContainerAppRolloutSpec {
            steps: Some(vec![gate(10), gate(50)]),
            promotion: Some(AppPromotion {
                version_id: OURS.into(),
                step: 1,
            }),
            ..spec()
        };
        let finished = pct(OURS, "published", 100, 100);
        let done = EsaContainerAppRolloutStatus {
            current_step: Some(2),
            ..Default::default()
        };
        let p = run(&s, Some(&done), Some(&finished), 0);
        assert!(p.actions.is_empty());
        assert_eq!(p.status.phase.as_deref(), Some("Completed"));

        // The next version; the approval (not in Git) still names the previous one.
        s.version_id = NEXT.into();
        let p = run(&s, Some(&p.status), Some(&finished), 10);
        assert_eq!(
            published(&p).map(|r| (r.version_id.as_str(), r.percentage)),
            Some((NEXT, Some(10)))
        );
        let at_gate = pct(NEXT, "published", 10, 10);
        let p = run(&s, Some(&p.status), Some(&at_gate), 20);
        assert!(p.actions.is_empty(), "the gate at 10% is closed for {NEXT}");
        assert_eq!(reason(&p, CONDITION_PROGRESSING), "WaitingForPromotion");
        assert!(
            msg(&p).contains(&format!("names {OURS}, not {NEXT}")),
            "{}",
            msg(&p)
        );
        assert!(run(&s, None, Some(&at_gate), 99_999).actions.is_empty());

        // Approved for the new version: 50%.
        s.promotion = Some(AppPromotion {
            version_id: NEXT.into(),
            step: 0,
        });
        let p = run(&s, Some(&p.status), Some(&at_gate), 30);
        assert_eq!(published(&p).and_then(|r| r.percentage), Some(50));
    }

    /// Invariant 1a for container apps: a percentage set outside the operator above the
    /// current step is brought back to the step, never raised past an unapproved gate.
    #[test]
    fn a_share_set_outside_above_the_gate_is_brought_back() {
        let s = stepped();
        let at_gate = EsaContainerAppRolloutStatus {
            current_step: Some(1),
            step_started_at: Some(ts(0).to_string()),
            ..Default::default()
        };
        // Gate at 50% (not approved); someone publishes 80% in the console.
        let p = run(
            &s,
            Some(&at_gate),
            Some(&pct(OURS, "published", 80, 80)),
            100,
        );
        assert_eq!(published(&p).and_then(|r| r.percentage), Some(50));
        // Status lost with the cloud between steps (30%): the highest step at or below it.
        let p = run(&s, None, Some(&pct(OURS, "published", 30, 30)), 100);
        assert_eq!(published(&p).and_then(|r| r.percentage), Some(10));
    }

    #[test]
    fn promoted_step_is_refused() {
        let s = EsaContainerAppRolloutSpec {
            promoted_step: Some(0),
            ..stepped()
        };
        let err = validate(&s).expect_err("promotedStep is refused");
        assert!(err.contains("replaced by spec.promotion"), "{err}");
    }

    /// Drive a stepped publish against a fake cloud that reports `publishing` once after
    /// each publish and `published` after that.
    #[test]
    fn steps_walkthrough() {
        let mut s = stepped();
        let mut cloud: Option<AppStatus> = None;
        let mut status: Option<EsaContainerAppRolloutStatus> = None;
        let mut publishes: Vec<i32> = Vec::new();
        let mut tick = |s: &EsaContainerAppRolloutSpec, now: i64| -> AppPlan {
            // The cloud finishes whatever was publishing.
            if let Some(c) = cloud.as_mut()
                && c.publish_status.as_deref() == Some("publishing")
            {
                c.publish_status = Some("published".into());
                c.publish_percentage = c.expect_percentage;
            }
            let p = run(s, status.as_ref(), cloud.as_ref(), now);
            if let Some(r) = published(&p) {
                let target = r.percentage.expect("percentage publish");
                publishes.push(target);
                cloud = Some(pct(OURS, "publishing", 0, target));
                // Seen right after the publish, before the cloud finishes: nothing new.
                let again = run(s, Some(&p.status), cloud.as_ref(), now);
                assert!(again.actions.is_empty(), "in flight at t={now}");
                assert_eq!(again.requeue, Requeue::Active);
            }
            status = Some(p.status.clone());
            p
        };
        let p = tick(&s, 0);
        assert_eq!(reason(&p, CONDITION_PROGRESSING), "Step1");
        assert_eq!(p.status.step_started_at, None);
        // Published at 10%: timer starts now.
        let p = tick(&s, 20);
        assert!(p.actions.is_empty());
        assert_eq!(p.status.step_started_at, Some(ts(20).to_string()));
        assert_eq!(p.requeue, Requeue::After(Duration::from_secs(300)));
        // 5 minutes later: 50%, a manual gate.
        let p = tick(&s, 320);
        assert_eq!(published(&p).and_then(|r| r.percentage), Some(50));
        let p = tick(&s, 330);
        assert!(p.actions.is_empty());
        assert!(
            msg(&p).contains("step 2/2")
                && msg(&p).contains("set spec.promotion: {versionId: ver-200, step: 1}"),
            "{}",
            msg(&p)
        );
        // Promote: 100%, then done.
        s.promotion = Some(AppPromotion {
            version_id: OURS.into(),
            step: 1,
        });
        let p = tick(&s, 400);
        assert_eq!(published(&p).and_then(|r| r.percentage), Some(100));
        let p = tick(&s, 410);
        assert!(p.actions.is_empty());
        assert_eq!(p.status.phase.as_deref(), Some("Completed"));
        assert!(is_true(&p.status.conditions, CONDITION_READY));
        assert_eq!(publishes, vec![10, 50, 100]);
    }

    #[test]
    fn steps_restart_and_pause() {
        let s = stepped();
        // Status lost while published at 50%: at the gate, nothing sent.
        let p = run(&s, None, Some(&pct(OURS, "published", 50, 50)), 0);
        assert!(p.actions.is_empty());
        assert_eq!(p.status.current_step, Some(1));
        assert_eq!(reason(&p, CONDITION_PROGRESSING), "WaitingForPromotion");
        // Status lost while publishing toward 50%: wait for it, then the gate.
        let p = run(&s, None, Some(&pct(OURS, "publishing", 20, 50)), 0);
        assert!(p.actions.is_empty());
        assert_eq!(p.status.current_step, Some(1));
        assert_eq!(p.requeue, Requeue::Active);
        // Paused mid-step past its pause: holds.
        let paused = EsaContainerAppRolloutSpec {
            paused: true,
            ..stepped()
        };
        // As the operator wrote it when the timer started: with the cloud's state.
        let st = EsaContainerAppRolloutStatus {
            current_step: Some(0),
            step_started_at: Some(ts(0).to_string()),
            publishing_version: Some(OURS.into()),
            publish_percentage: Some(10),
            ..Default::default()
        };
        let p = run(
            &paused,
            Some(&st),
            Some(&pct(OURS, "published", 10, 10)),
            1000,
        );
        assert!(p.actions.is_empty());
        assert_eq!(p.status.phase.as_deref(), Some("Paused"));
        assert!(is_true(&p.status.conditions, CONDITION_PAUSED));
        // Unpaused: advances at once.
        let p = run(&s, Some(&st), Some(&pct(OURS, "published", 10, 10)), 1000);
        assert_eq!(published(&p).and_then(|r| r.percentage), Some(50));
        // Another version published by someone else mid-steps: start over with ours.
        let p = run(
            &s,
            Some(&st),
            Some(&pct(OTHER, "published", 100, 100)),
            1000,
        );
        assert_eq!(published(&p).and_then(|r| r.percentage), Some(10));
        assert!(msg(&p).contains("not ver-200"), "{}", msg(&p));
    }
}
