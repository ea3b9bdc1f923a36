//! The plugin's pure parts over fixed objects: what each command sets, and the frames of
//! `get` and `list` (snapshots in `src/plugin/snapshots/`; review a change with
//! `cargo insta review` or `INSTA_UPDATE=always cargo test --lib plugin`).

use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use serde_json::{Value, json};

use super::action::{FIELD_MANAGER, Intent, apply_body, owned_intent_fields, plan};
use super::rollout::{AnyRollout, Health, Kind};
use super::view::{self, EventLine, ListEntry};

const STABLE: &str = "1723599747213377175";
const CANARY: &str = "1723688023417750321";

fn now() -> Timestamp {
    "2026-12-02T06:00:00Z".parse().expect("valid")
}

fn cond(type_: &str, status: &str, reason: &str, message: &str, at: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": at, "observedGeneration": 3})
}

/// A routine canary of three steps (10% for 30s, 50% manual gate, 80% for 1m) waiting at
/// the gate of step 2.
fn routine_at_gate() -> Value {
    let msg = format!(
        "step 2/3: 50% on {CANARY} holds for manual promotion: set spec.canary.promotion: \
         {{version: \"{CANARY}\", step: 1}}"
    );
    json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EsaRoutineRollout",
        "metadata": {"name": "edge-fn", "namespace": "shop", "uid": "u-1", "generation": 3,
                     "resourceVersion": "41",
                     "creationTimestamp": "2026-12-02T05:50:00Z"},
        "spec": {
            "routine": "edge-fn", "env": "staging", "region": "cn-hangzhou",
            "canary": {"stableVersion": STABLE, "canaryVersion": CANARY,
                       "steps": [{"percentage": 10, "pause": "30s"}, {"percentage": 50},
                                 {"percentage": 80, "pause": "1m"}]},
            "paused": false, "rollback": false
        },
        "status": {
            "observedGeneration": 3, "phase": "Progressing", "currentStep": 1,
            "stepStartedAt": "2026-12-02T05:57:30Z",
            "codeVersions": [{"codeVersion": CANARY, "percentage": 50},
                             {"codeVersion": STABLE, "percentage": 50}],
            "split": format!("{CANARY}:50,{STABLE}:50"),
            "lastRequestId": "5C7A1E0B-0000-4F7A-9C1D-REQ2",
            "message": msg,
            "conditions": [
                cond("Ready", "False", "WaitingForPromotion", &msg, "2026-12-02T05:51:00Z"),
                cond("Progressing", "True", "WaitingForPromotion", &msg, "2026-12-02T05:51:00Z"),
                cond("Paused", "False", "NotPaused", "", "2026-12-02T05:51:00Z"),
                cond("Degraded", "False", "AsExpected", "", "2026-12-02T05:51:00Z"),
                cond("Stalled", "False", "AsExpected", "", "2026-12-02T05:51:00Z"),
            ]
        }
    })
}

fn routine(value: Value) -> AnyRollout {
    AnyRollout::from_value(Kind::Routine, value).expect("fixture decodes")
}

fn event(reason: &str, type_: &str, note: &str, at: &str, count: Option<i32>) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("edge-fn.{reason}"), "namespace": "shop"},
        "eventTime": at,
        "reason": reason, "type": type_, "note": note, "action": reason,
        "reportingController": "alicloud-rollouts", "reportingInstance": "op-0",
        "regarding": {"apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaRoutineRollout",
                      "name": "edge-fn", "namespace": "shop", "uid": "u-1"},
        "series": count.map(|c| json!({"count": c, "lastObservedTime": at})),
    }))
    .expect("event fixture")
}

fn routine_events() -> Vec<Event> {
    vec![
        event(
            "CreateRoutineCodeDeployment",
            "Normal",
            &format!(
                "deploy {CANARY}:10,{STABLE}:90 to staging (RequestId 5C7A1E0B-0000-4F7A-9C1D-REQ1)"
            ),
            "2026-12-02T05:50:05.000000Z",
            None,
        ),
        event(
            "CreateRoutineCodeDeployment",
            "Normal",
            &format!(
                "deploy {CANARY}:50,{STABLE}:50 to staging (RequestId 5C7A1E0B-0000-4F7A-9C1D-REQ2)"
            ),
            "2026-12-02T05:51:00.000000Z",
            None,
        ),
        // Another object's Event: not shown.
        serde_json::from_value(json!({
            "metadata": {"name": "other", "namespace": "shop"},
            "eventTime": "2026-12-02T05:55:00.000000Z", "reason": "Other", "type": "Normal",
            "note": "not about edge-fn", "reportingController": "x", "reportingInstance": "y",
            "action": "x",
            "regarding": {"kind": "EsaContainerAppRollout", "name": "edge-fn", "namespace": "shop"}
        }))
        .expect("event fixture"),
    ]
}

fn lines(obj: &AnyRollout, events: &[Event]) -> Vec<EventLine> {
    view::events_about(obj, events, 8)
}

// ---- what each command sets ----

#[test]
fn promote_approves_the_gate_the_rollout_waits_at_for_its_version() {
    let json = routine_at_gate();
    let change = plan(
        Intent::Promote { full: false },
        &routine(json.clone()),
        &json,
    )
    .expect("a gate to approve");
    assert_eq!(change.fields.len(), 1);
    assert_eq!(change.fields[0].path, ["spec", "canary", "promotion"]);
    assert_eq!(
        change.fields[0].after,
        json!({"version": CANARY, "step": 1})
    );
    assert_eq!(change.fields[0].before, None);
    assert!(
        change
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("step 2/3 (50%)"),
        "{change:?}"
    );
}

#[test]
fn promote_from_a_timed_step_approves_the_next_gate_and_says_the_pause_still_runs() {
    let mut json = routine_at_gate();
    json["status"]["currentStep"] = json!(0);
    let change = plan(
        Intent::Promote { full: false },
        &routine(json.clone()),
        &json,
    )
    .expect("a gate ahead");
    assert_eq!(
        change.fields[0].after,
        json!({"version": CANARY, "step": 1})
    );
    let note = change.note.unwrap_or_default();
    assert!(note.contains("still holds its pause"), "{note}");
}

#[test]
fn an_approval_for_another_version_opens_nothing_so_promote_starts_from_the_first_gate() {
    let mut json = routine_at_gate();
    json["spec"]["canary"]["promotion"] = json!({"version": STABLE, "step": 2});
    let change = plan(
        Intent::Promote { full: false },
        &routine(json.clone()),
        &json,
    )
    .expect("the gate is closed for this version");
    assert_eq!(
        change.fields[0].after,
        json!({"version": CANARY, "step": 1})
    );
    assert_eq!(
        change.fields[0].before,
        Some(json!({"version": STABLE, "step": 2}))
    );
}

#[test]
fn promote_refuses_when_every_gate_ahead_is_approved_or_the_rollout_is_done() {
    let mut json = routine_at_gate();
    json["spec"]["canary"]["promotion"] = json!({"version": CANARY, "step": 1});
    let err = plan(
        Intent::Promote { full: false },
        &routine(json.clone()),
        &json,
    )
    .expect_err("nothing left");
    assert!(err.to_string().contains("approved already"), "{err}");
    json["status"]["currentStep"] = json!(3);
    let err = plan(
        Intent::Promote { full: true },
        &routine(json.clone()),
        &json,
    )
    .expect_err("past the last step");
    assert!(err.to_string().contains("past its last step"), "{err}");
}

#[test]
fn promote_full_approves_up_to_the_last_gate() {
    let mut json = routine_at_gate();
    json["spec"]["canary"]["steps"] = json!([
        {"percentage": 10}, {"percentage": 20, "pause": "1m"}, {"percentage": 50},
        {"percentage": 90, "pause": "1m"}
    ]);
    json["status"]["currentStep"] = json!(0);
    let change = plan(
        Intent::Promote { full: true },
        &routine(json.clone()),
        &json,
    )
    .expect("gates to approve");
    assert_eq!(
        change.fields[0].after,
        json!({"version": CANARY, "step": 2})
    );
    let note = change.note.unwrap_or_default();
    assert!(note.contains("step 1/4 (10%), step 3/4 (50%)"), "{note}");
}

#[test]
fn container_app_promotion_names_the_version_id() {
    let json = json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaContainerAppRollout",
        "metadata": {"name": "checkout", "namespace": "shop", "generation": 1},
        "spec": {"appId": "app-1", "versionId": "ver-2", "env": "production",
                 "steps": [{"percentage": 20}, {"percentage": 60}]},
        "status": {"currentStep": 0}
    });
    let obj = AnyRollout::from_value(Kind::App, json.clone()).expect("decodes");
    let change = plan(Intent::Promote { full: true }, &obj, &json).expect("gates");
    assert_eq!(change.fields[0].path, ["spec", "promotion"]);
    assert_eq!(
        change.fields[0].after,
        json!({"versionId": "ver-2", "step": 1})
    );
    let abort = plan(Intent::Abort, &obj, &json).expect("apps roll back");
    assert_eq!(abort.fields[0].path, ["spec", "rollback"]);
    assert_eq!(abort.fields[0].after, json!(true));
}

/// An EAS partition rollout of a serviceConfig has one gate per version: promote approves
/// partition 0 for the version status shows, abort approves 100% (every replica on the
/// previous version); both name the version, so the next serviceConfig starts closed.
#[test]
fn eas_promote_and_abort_approve_a_partition_for_the_shown_version() {
    let eas = json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EasServiceRollout",
        "metadata": {"name": "qwen", "namespace": "ml", "generation": 2},
        "spec": {"region": "cn-shanghai", "serviceName": "qwen", "strategy": {"partition": "4"},
                 "serviceConfig": {"containers": [{"image": "qwen:v2"}]}},
        "status": {"configVersion": "3f9a1c0e7b2d", "observedGeneration": 2}
    });
    let obj = AnyRollout::from_value(Kind::Eas, eas.clone()).expect("decodes");
    for full in [false, true] {
        let p = plan(Intent::Promote { full }, &obj, &eas).expect("a gate to approve");
        assert_eq!(p.fields[0].path, ["spec", "promotion"]);
        assert_eq!(
            p.fields[0].after,
            json!({"version": "3f9a1c0e7b2d", "partition": "0"})
        );
    }
    let abort = plan(Intent::Abort, &obj, &eas).expect("abort approves 100%");
    assert_eq!(
        abort.fields[0].after,
        json!({"version": "3f9a1c0e7b2d", "partition": "100%"})
    );
    // A spec edit the operator has not acted on: the version status shows may be the
    // previous serviceConfig's, so nothing is approved.
    let mut lagging = eas.clone();
    lagging["metadata"]["generation"] = json!(3);
    lagging["status"]["observedGeneration"] = json!(2);
    let obj = AnyRollout::from_value(Kind::Eas, lagging.clone()).expect("decodes");
    let err = plan(Intent::Promote { full: true }, &obj, &lagging).expect_err("stale version");
    assert!(err.to_string().contains("latest spec"), "{err}");
    // Before the operator shows the version there is nothing to name.
    let mut unseen = eas.clone();
    unseen["status"] = json!({});
    let obj = AnyRollout::from_value(Kind::Eas, unseen.clone()).expect("decodes");
    let err = plan(Intent::Promote { full: true }, &obj, &unseen).expect_err("no version yet");
    assert!(err.to_string().contains("status.configVersion"), "{err}");
}

#[test]
fn kinds_without_the_action_are_refused_with_what_to_do_instead() {
    let eas = json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EasServiceRollout",
        "metadata": {"name": "bert", "namespace": "ml"},
        "spec": {"region": "cn-shanghai", "serviceName": "bert", "strategy": {"partition": "2"}}
    });
    let obj = AnyRollout::from_value(Kind::Eas, eas.clone()).expect("decodes");
    let err = plan(Intent::Promote { full: false }, &obj, &eas).expect_err("no gates");
    assert!(err.to_string().contains("no spec.serviceConfig"), "{err}");
    let err = plan(Intent::Abort, &obj, &eas).expect_err("nothing to approve");
    assert!(err.to_string().contains("no spec.serviceConfig"), "{err}");
    // Pause and retry work on every kind.
    assert!(plan(Intent::Pause, &obj, &eas).is_ok());
    assert!(plan(Intent::Retry, &obj, &eas).is_ok());

    let fixed = json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaRoutineRollout",
        "metadata": {"name": "split", "namespace": "shop"},
        "spec": {"routine": "r", "env": "production",
                 "codeVersions": [{"codeVersion": "1", "percentage": 100}]}
    });
    let obj = routine(fixed.clone());
    let err = plan(Intent::Promote { full: false }, &obj, &fixed).expect_err("fixed split");
    assert!(err.to_string().contains("fixed split"), "{err}");
    let err = plan(Intent::Abort, &obj, &fixed).expect_err("fixed split");
    assert!(err.to_string().contains("fixed split"), "{err}");

    let app = json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaContainerAppRollout",
        "metadata": {"name": "c", "namespace": "shop"},
        "spec": {"appId": "app-1", "versionId": "ver-2", "env": "production", "percentage": 20}
    });
    let obj = AnyRollout::from_value(Kind::App, app.clone()).expect("decodes");
    let err = plan(Intent::Promote { full: false }, &obj, &app).expect_err("no steps");
    assert!(err.to_string().contains("without steps"), "{err}");
}

#[test]
fn pause_resume_and_retry_set_their_fields() {
    let json = routine_at_gate();
    let obj = routine(json.clone());
    let pause = plan(Intent::Pause, &obj, &json).expect("pause");
    assert_eq!(pause.fields[0].describe(), "spec.paused: false -> true");
    let resume = plan(Intent::Resume, &obj, &json).expect("resume");
    assert_eq!(
        resume.fields[0].describe(),
        "spec.paused: false (unchanged)"
    );
    assert!(
        resume
            .note
            .unwrap_or_default()
            .contains("already not paused")
    );
    let retry = plan(Intent::Retry, &obj, &json).expect("retry");
    assert_eq!(retry.fields[0].describe(), "spec.retry: (unset) -> 1");
    let mut again = json.clone();
    again["spec"]["retry"] = json!(4);
    let retry = plan(Intent::Retry, &routine(again.clone()), &again).expect("retry");
    assert_eq!(retry.fields[0].describe(), "spec.retry: 4 -> 5");
}

/// Server-side apply removes a field its manager applied before and leaves out: each
/// apply carries the intent fields the plugin owns, so `promote` keeps a `pause`.
#[test]
fn an_apply_keeps_the_intent_fields_the_plugin_already_owns() {
    let mut json = routine_at_gate();
    json["spec"]["paused"] = json!(true);
    json["spec"]["retry"] = json!(2);
    json["metadata"]["managedFields"] = json!([
        {"manager": "argocd-controller", "operation": "Apply", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:routine": {}, "f:rollback": {}}}},
        {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:paused": {}, "f:retry": {}}}},
        {"manager": FIELD_MANAGER, "operation": "Update", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:rollback": {}}}},
    ]);
    assert_eq!(
        owned_intent_fields(&json),
        vec![&["spec", "paused"][..], &["spec", "retry"][..]]
    );
    let change = plan(
        Intent::Promote { full: false },
        &routine(json.clone()),
        &json,
    )
    .expect("gate");
    let body = apply_body(Kind::Routine, &json, &change);
    assert_eq!(
        body,
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "EsaRoutineRollout",
            "metadata": {"name": "edge-fn", "namespace": "shop"},
            "spec": {"paused": true, "retry": 2,
                     "canary": {"promotion": {"version": CANARY, "step": 1}}}
        })
    );
}

// ---- what get and list print ----

#[test]
fn request_ids_are_read_from_event_notes() {
    assert_eq!(
        view::request_id("deploy v2:10 (RequestId ABC-123)").as_deref(),
        Some("ABC-123")
    );
    assert_eq!(
        view::request_id("InvalidParameter: bad (RequestId X1); retrying").as_deref(),
        Some("X1")
    );
    assert_eq!(view::request_id("no id here"), None);
}

#[test]
fn health_follows_the_conditions_and_the_observed_generation() {
    let json = routine_at_gate();
    assert_eq!(routine(json.clone()).health(), Health::WaitingForPromotion);
    let mut lagging = json.clone();
    lagging["metadata"]["generation"] = json!(4);
    assert_eq!(routine(lagging).health(), Health::Pending);
    let mut stalled = json.clone();
    stalled["status"]["conditions"][4]["status"] = json!("True");
    stalled["status"]["conditions"][3]["status"] = json!("True");
    assert_eq!(routine(stalled).health(), Health::Stalled);
    let mut ready = json;
    ready["status"]["conditions"][0]["status"] = json!("True");
    assert!(routine(ready).health().is_final());
}

#[test]
fn get_routine_waiting_at_a_gate() {
    let obj = routine(routine_at_gate());
    let text = view::render_get(&obj, &lines(&obj, &routine_events()), now());
    insta::assert_snapshot!(text);
}

/// The frames of `get --watch` as the rollout moves: timed step, gate, done.
#[test]
fn get_watch_frames_as_the_rollout_moves() {
    let mut json = routine_at_gate();
    let mut frames = Vec::new();

    // Step 1 of 3, its 30s pause running.
    json["status"]["currentStep"] = json!(0);
    json["status"]["nextStepAt"] = json!("2026-12-02T06:00:12Z");
    json["status"]["codeVersions"][0]["percentage"] = json!(10);
    json["status"]["codeVersions"][1]["percentage"] = json!(90);
    json["status"]["split"] = json!(format!("{CANARY}:10,{STABLE}:90"));
    let msg = format!(
        "step 1/3: 10% on {CANARY} since 2026-12-02T05:59:42Z; next step at 2026-12-02T06:00:12Z"
    );
    json["status"]["message"] = json!(msg);
    json["status"]["conditions"][0] = cond(
        "Ready",
        "False",
        "WaitingForPause",
        &msg,
        "2026-12-02T05:59:42Z",
    );
    json["status"]["conditions"][1] = cond(
        "Progressing",
        "True",
        "WaitingForPause",
        &msg,
        "2026-12-02T05:59:42Z",
    );
    frames.push(view::render_get(&routine(json.clone()), &[], now()));

    // Done: 100% on the canary, Ready.
    json["status"]["currentStep"] = json!(3);
    json["status"]["nextStepAt"] = Value::Null;
    json["status"]["codeVersions"] = json!([{"codeVersion": CANARY, "percentage": 100}]);
    json["status"]["split"] = json!(format!("{CANARY}:100"));
    json["status"]["phase"] = json!("Completed");
    json["status"]["message"] = json!("100% on the canary");
    json["spec"]["canary"]["promotion"] = json!({"version": CANARY, "step": 1});
    json["status"]["conditions"][0] = cond(
        "Ready",
        "True",
        "Completed",
        "100% on the canary",
        "2026-12-02T05:59:00Z",
    );
    json["status"]["conditions"][1] = cond(
        "Progressing",
        "False",
        "Completed",
        "100% on the canary",
        "2026-12-02T05:59:00Z",
    );
    let done = routine(json);
    assert_eq!(done.health(), Health::Ready);
    frames.push(view::render_get(&done, &[], now()));
    insta::assert_snapshot!(frames.join("\n=====\n"));
}

#[test]
fn get_eas_partition_and_a_stalled_container_app() {
    let eas = AnyRollout::from_value(
        Kind::Eas,
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EasServiceRollout",
            "metadata": {"name": "bert", "namespace": "ml", "generation": 2},
            "spec": {"region": "cn-shanghai", "serviceName": "bert_embeddings",
                     "strategy": {"batch": {"size": "25%", "interval": "5m"}}},
            "status": {"observedGeneration": 2, "phase": "Running",
                       "cloudStrategy": "batch=25%/5m", "totalReplicas": 4, "updatedReplicas": 1,
                       "currentRevision": "3", "updateRevision": "4",
                       "nextBatchStartTime": "2026/12/02 14:05:00",
                       "conditions": [cond("Ready", "False", "Running", "batch 1 of 4", "2026-12-02T05:58:00Z"),
                                      cond("Progressing", "True", "Running", "batch 1 of 4", "2026-12-02T05:58:00Z")]}
        }),
    )
    .expect("decodes");
    let app = AnyRollout::from_value(
        Kind::App,
        json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaContainerAppRollout",
            "metadata": {"name": "checkout", "namespace": "shop", "generation": 5},
            "spec": {"appId": "app-88", "versionId": "ver-2", "env": "production",
                     "steps": [{"percentage": 20, "pause": "10m"}, {"percentage": 60}], "retry": 1},
            "status": {"observedGeneration": 5, "phase": "Degraded", "currentStep": 0,
                       "publishStatus": "publishing", "publishPercentage": 20,
                       "nextCheckAt": "2026-12-02T06:05:00Z",
                       "message": "InvalidApp.NotFound: the app is gone (RequestId R-9); a person is needed",
                       "conditions": [cond("Degraded", "True", "InvalidApp_NotFound", "the app is gone", "2026-12-02T05:40:00Z"),
                                      cond("Stalled", "True", "InvalidApp_NotFound", "the app is gone", "2026-12-02T05:40:00Z")]}
        }),
    )
    .expect("decodes");
    assert_eq!(app.health(), Health::Stalled);
    let text = format!(
        "{}\n=====\n{}",
        view::render_get(&eas, &[], now()),
        view::render_get(&app, &[], now())
    );
    insta::assert_snapshot!(text);
}

#[test]
fn list_shows_every_kind_and_what_cannot_be_read() {
    let mut fixed = json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1", "kind": "EsaRoutineRollout",
        "metadata": {"name": "split", "namespace": "prod", "generation": 1,
                     "creationTimestamp": "2026-11-30T06:00:00Z"},
        "spec": {"routine": "auth", "env": "production",
                 "codeVersions": [{"codeVersion": "2", "percentage": 10}, {"codeVersion": "1", "percentage": 90}]}
    });
    fixed["status"] = json!({"observedGeneration": 1, "phase": "Completed", "conditions": [cond("Ready", "True", "Completed", "", "2026-12-01T00:00:00Z")]});
    let entries = vec![
        ListEntry::Rollout(Box::new(routine(routine_at_gate()))),
        ListEntry::Rollout(Box::new(routine(fixed))),
        ListEntry::Unreadable {
            kind: Kind::Eas,
            namespace: "ml".into(),
            name: "broken".into(),
            created: Some("2026-12-02T05:00:00Z".parse().expect("valid")),
            error: "spec.strategy: missing field `strategy`".into(),
        },
    ];
    insta::assert_snapshot!(view::render_list(&entries, true, now()));
}

#[test]
fn a_watch_frame_is_painted_over_the_last_on_a_terminal_and_appended_elsewhere() {
    let painted = super::paint("a\nb\n", true, false, None);
    assert_eq!(painted, "\x1b[Ha\x1b[K\nb\x1b[K\n\x1b[J");
    assert!(super::paint("a\n", true, true, None).starts_with("\x1b[2J\x1b[H"));
    // Cut to the terminal, so that no line wraps.
    assert_eq!(
        super::paint("abcdef\nab\n", true, false, Some(4)),
        "\x1b[Habc…\x1b[K\nab\x1b[K\n\x1b[J"
    );
    assert_eq!(super::paint("a\n", false, true, Some(4)), "a\n");
    assert_eq!(
        super::paint("abcdef\n", false, false, Some(4)),
        "\nabcdef\n"
    );
    // Off a terminal only a change other than the passing of time prints a new frame.
    assert_eq!(
        super::strip_ages("Ready  False  3m12s  pause ends in 45s"),
        super::strip_ages("Ready  False  3m13s  pause ends in 44s")
    );
    assert_ne!(
        super::strip_ages("step 1/3  10%"),
        super::strip_ages("step 2/3  50%")
    );
}
