//! What `get` and `list` print: pure functions of the objects, their Events and `now`, so
//! every frame of `get --watch` can be checked as text.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::events::v1::Event;

use super::rollout::{AnyRollout, Health, Kind};
use crate::crd::common::{
    CONDITION_DEGRADED, CONDITION_PAUSED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_STALLED,
};

/// Width of the progress bar, in cells.
const BAR: usize = 20;
/// Longest condition or Event message printed in a table cell.
const CELL: usize = 72;

/// One Event about a rollout, as `get` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLine {
    /// When it last happened.
    pub time: Option<Timestamp>,
    pub type_: String,
    pub reason: String,
    /// The cloud's RequestId the note carries, if any.
    pub request_id: Option<String>,
    pub note: String,
    /// How many times (a repeated Warning is one Event series).
    pub count: i32,
}

impl EventLine {
    pub fn from_event(e: &Event) -> EventLine {
        let time = e
            .series
            .as_ref()
            .map(|s| s.last_observed_time.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.deprecated_last_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let note = e.note.clone().unwrap_or_default();
        EventLine {
            time,
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            request_id: request_id(&note),
            count: e.series.as_ref().map_or(1, |s| s.count.max(1)),
            note,
        }
    }
}

/// The RequestId an Event note names: `... (RequestId 7A1C-...)`.
pub fn request_id(note: &str) -> Option<String> {
    let (_, rest) = note.split_once("RequestId ")?;
    let id: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ')' && *c != ',' && *c != ';')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The Events about `obj` among `events`, oldest first, at most the last `limit`.
pub fn events_about(obj: &AnyRollout, events: &[Event], limit: usize) -> Vec<EventLine> {
    let uid = obj.meta().uid.as_deref();
    let mut lines: Vec<EventLine> = events
        .iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some(obj.kind().name())
                    && r.name.as_deref() == Some(obj.name())
                    && (uid.is_none() || r.uid.is_none() || r.uid.as_deref() == uid)
            })
        })
        .map(EventLine::from_event)
        .collect();
    lines.sort_by_key(|l| l.time);
    let skip = lines.len().saturating_sub(limit);
    lines.split_off(skip)
}

/// A compact age: `45s`, `3m12s`, `2h5m`, `3d4h`.
pub fn age(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 if s % 60 == 0 => format!("{}m", s / 60),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 if s % 3600 < 60 => format!("{}h", s / 3600),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ if s % 86400 < 3600 => format!("{}d", s / 86400),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// A time as people read it: to the second, in UTC.
pub fn when(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn since(now: Timestamp, then: Option<Timestamp>) -> String {
    then.map_or_else(|| "-".to_string(), |t| age(now.duration_since(t)))
}

/// `[██████░░░░░░░░░░░░░░]` for `part` of `whole`.
pub fn bar(part: i64, whole: i64) -> String {
    let whole = whole.max(1);
    let part = part.clamp(0, whole);
    let full = usize::try_from(part * BAR as i64 / whole).unwrap_or(0);
    format!("[{}{}]", "█".repeat(full), "░".repeat(BAR - full))
}

fn cut(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Rows padded into columns two spaces apart (the last column is not padded).
pub fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How to name the rollout on the command line (`esarr/edge-fn -n shop`).
fn cli_ref(obj: &AnyRollout) -> String {
    format!(
        "{}/{} -n {}",
        obj.kind().short(),
        obj.name(),
        obj.namespace()
    )
}

/// What the rollout targets in the cloud.
pub fn target(obj: &AnyRollout) -> String {
    match obj {
        AnyRollout::Eas(o) => format!("EAS service {} in {}", o.spec.service_name, o.spec.region),
        AnyRollout::Routine(o) => format!(
            "routine {} ({}, {})",
            o.spec.routine,
            o.spec.env.routine_wire(),
            o.spec.region.unwrap_or_default().as_str()
        ),
        AnyRollout::App(o) => format!(
            "container app {} ({}, {})",
            o.spec.app_id,
            o.spec.env.routine_wire(),
            o.spec.region.unwrap_or_default().as_str()
        ),
    }
}

/// The strategy in a few words.
pub fn strategy(obj: &AnyRollout) -> String {
    match obj {
        AnyRollout::Eas(o) => match (&o.spec.strategy.partition, &o.spec.strategy.batch) {
            (Some(p), _) => format!("partition: keep {p} replicas on the old version"),
            (None, Some(b)) => match &b.interval {
                Some(i) => format!("batches of {} every {i}", b.size),
                None => format!("batches of {}", b.size),
            },
            (None, None) => "-".to_string(),
        },
        AnyRollout::Routine(o) => match (&o.spec.canary, &o.spec.code_versions) {
            (Some(c), _) => format!(
                "canary {} -> {}, {} step{}",
                c.stable_version,
                c.canary_version,
                c.steps.len(),
                if c.steps.len() == 1 { "" } else { "s" }
            ),
            (None, Some(cv)) => {
                let split: Vec<String> = cv
                    .iter()
                    .map(|c| format!("{}:{}", c.code_version, c.percentage))
                    .collect();
                format!("fixed split {}", split.join(","))
            }
            (None, None) => "-".to_string(),
        },
        AnyRollout::App(o) => {
            let how = match (&o.spec.steps, o.spec.percentage, &o.spec.regions) {
                (Some(s), _, _) => {
                    format!("{} step{}", s.len(), if s.len() == 1 { "" } else { "s" })
                }
                (None, Some(p), _) => format!("{p}% of traffic"),
                (None, None, Some(r)) => format!("regions {}", r.join(",")),
                (None, None, None) => "100% of traffic".to_string(),
            };
            format!("publish {}: {how}", o.spec.version_id)
        }
    }
}

/// Progress as (part, whole, label), for the bar.
fn progress(obj: &AnyRollout) -> Option<(i64, i64, String)> {
    match obj {
        AnyRollout::Eas(o) => {
            let s = o.status.as_ref()?;
            let (updated, total) = (s.updated_replicas?, s.total_replicas?);
            Some((
                updated,
                total,
                format!("{updated}/{total} replicas on the new version"),
            ))
        }
        AnyRollout::Routine(o) => {
            let canary = o.spec.canary.as_ref()?;
            let share = o
                .status
                .as_ref()?
                .code_versions
                .iter()
                .find(|c| c.code_version == canary.canary_version)
                .map_or(0, |c| c.percentage);
            Some((
                i64::from(share),
                100,
                format!("{share}% on {}", canary.canary_version),
            ))
        }
        AnyRollout::App(o) => {
            let s = o.status.as_ref()?;
            let share = s.publish_percentage?;
            let version = s
                .publishing_version
                .as_deref()
                .unwrap_or(o.spec.version_id.as_str());
            Some((i64::from(share), 100, format!("{share}% on {version}")))
        }
    }
}

/// The cloud's own view, one line.
fn cloud_line(obj: &AnyRollout) -> Option<String> {
    match obj {
        AnyRollout::Eas(o) => {
            let s = o.status.as_ref()?;
            let mut parts = Vec::new();
            if let Some(p) = &s.phase {
                parts.push(format!("phase {p}"));
            }
            if let Some(st) = &s.cloud_strategy {
                parts.push(st.clone());
            }
            if let (Some(c), Some(u)) = (&s.current_revision, &s.update_revision) {
                parts.push(format!("revision {c} -> {u}"));
            }
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        AnyRollout::Routine(o) => o.status.as_ref()?.split.clone(),
        AnyRollout::App(o) => {
            let s = o.status.as_ref()?;
            let mut parts = Vec::new();
            if let Some(p) = &s.publish_status {
                parts.push(p.clone());
            }
            if let Some(v) = &s.deployed_version {
                parts.push(format!("deployed {v}"));
            }
            if let Some(v) = &s.baseline_version {
                parts.push(format!("baseline {v}"));
            }
            (!parts.is_empty()).then(|| parts.join(", "))
        }
    }
}

/// What happens next, and when.
fn next(obj: &AnyRollout, health: Health, now: Timestamp) -> String {
    let at = |text: &str| -> String {
        match text.parse::<Timestamp>() {
            Ok(t) if t > now => format!("in {} (at {})", age(t.duration_since(now)), when(t)),
            Ok(t) => format!("due now (at {})", when(t)),
            // EAS writes its own zone-less time ("2026/05/08 16:10:56").
            Err(_) => format!("at {text} (as the cloud reports it)"),
        }
    };
    match health {
        Health::Ready => "nothing: the cloud shows what the spec declares".to_string(),
        Health::Degraded | Health::Stalled => {
            let again = obj
                .next_check_at()
                .map(|t| format!("; the operator looks again {}", at(t)))
                .unwrap_or_default();
            format!(
                "a person is needed{again}; once the cause is fixed: kubectl alicloud-rollouts \
                 retry {}",
                cli_ref(obj)
            )
        }
        Health::Paused => format!("paused: kubectl alicloud-rollouts resume {}", cli_ref(obj)),
        Health::WaitingForPromotion => format!(
            "waiting for approval: kubectl alicloud-rollouts promote {}",
            cli_ref(obj)
        ),
        Health::Pending => "the operator has not acted on the latest spec yet".to_string(),
        Health::Progressing => match (obj, obj.next_step_at()) {
            (AnyRollout::Eas(_), Some(t)) => format!("next batch {}", at(t)),
            (_, Some(t)) => format!("next step {}", at(t)),
            _ => "moving: waiting for the cloud".to_string(),
        },
    }
}

fn steps_table(obj: &AnyRollout, health: Health, now: Timestamp) -> Option<String> {
    let steps = obj.steps()?;
    let total = steps.steps.len();
    let current = steps
        .current
        .and_then(|c| usize::try_from(c).ok())
        .unwrap_or(0);
    let mut rows = vec![vec![
        String::new(),
        "STEP".to_string(),
        "TRAFFIC".to_string(),
        "HOLD".to_string(),
        "STATE".to_string(),
    ]];
    let here = |i: usize| -> String {
        match health {
            Health::Paused => "current: paused".to_string(),
            Health::WaitingForPromotion => "current: waiting for approval".to_string(),
            Health::Degraded | Health::Stalled => format!("current: {}", health.word()),
            Health::Ready if i >= total => "done".to_string(),
            _ => match obj.next_step_at().and_then(|t| t.parse::<Timestamp>().ok()) {
                Some(t) if i < total && t > now => {
                    format!("current: pause ends in {}", age(t.duration_since(now)))
                }
                _ => "current".to_string(),
            },
        }
    };
    for (i, step) in steps.steps.iter().enumerate() {
        let hold = match &step.pause {
            Some(p) => format!("pause {p}"),
            None if steps.is_approved(i) => "manual gate (approved)".to_string(),
            None => "manual gate".to_string(),
        };
        let (mark, state) = if i < current {
            ("✔", "done".to_string())
        } else if i == current {
            ("▶", here(i))
        } else {
            (" ", String::new())
        };
        rows.push(vec![
            mark.to_string(),
            format!("{}/{total}", i + 1),
            format!("{}%", step.percentage),
            hold,
            state,
        ]);
    }
    let (mark, state) = if current >= total {
        (
            if health == Health::Ready {
                "✔"
            } else {
                "▶"
            },
            here(total),
        )
    } else {
        (" ", String::new())
    };
    rows.push(vec![
        mark.to_string(),
        "final".to_string(),
        "100%".to_string(),
        String::new(),
        state,
    ]);
    let mut out = table(&rows, "  ");
    if let Some(other) = steps.stale_approval {
        out.push_str(&format!(
            "  (the approval in the spec names {other}, not {}: it opens no gate)\n",
            steps.version
        ));
    }
    Some(out)
}

/// The `get` view of one rollout.
pub fn render_get(obj: &AnyRollout, events: &[EventLine], now: Timestamp) -> String {
    let health = obj.health();
    let mut head: Vec<Vec<String>> = Vec::new();
    let mut row = |k: &str, v: String| head.push(vec![format!("{k}:"), v]);
    row("Name", obj.name().to_string());
    row("Namespace", obj.namespace().to_string());
    row(
        "Kind",
        format!("{} ({})", obj.kind().name(), obj.kind().short()),
    );
    row("Target", target(obj));
    let mut status = format!("{} {}", health.icon(), health.word());
    if let Some(phase) = obj.phase()
        && phase != health.word()
    {
        status.push_str(&format!(" (phase {phase})"));
    }
    if health == Health::Pending
        && let Some(generation) = obj.meta().generation
    {
        status.push_str(&format!(
            ": generation {generation}, status written for {}",
            obj.observed_generation()
                .map_or("none yet".to_string(), |g| g.to_string())
        ));
    }
    row("Status", status);
    if let Some(message) = obj.message() {
        row("Message", message.replace('\n', " "));
    }
    row("Strategy", strategy(obj));
    if let Some(cloud) = cloud_line(obj) {
        row("Cloud", cloud);
    }
    if let Some((part, whole, label)) = progress(obj) {
        row("Progress", format!("{} {label}", bar(part, whole)));
    }
    if obj.paused() {
        row("Paused", "spec.paused is true".to_string());
    }
    row("Next", next(obj, health, now));
    if let Some(id) = obj.last_request_id() {
        row("RequestId", format!("{id} (last cloud call)"));
    }
    let mut out = table(&head, "");

    if let Some(steps) = steps_table(obj, health, now) {
        out.push_str("\nSteps:\n");
        out.push_str(&steps);
    }

    out.push_str("\nConditions:\n");
    let order = [
        CONDITION_READY,
        CONDITION_PROGRESSING,
        CONDITION_PAUSED,
        CONDITION_DEGRADED,
        CONDITION_STALLED,
    ];
    let mut conditions: Vec<_> = obj.conditions().iter().collect();
    conditions.sort_by_key(|c| {
        order
            .iter()
            .position(|t| *t == c.type_)
            .unwrap_or(order.len())
    });
    if conditions.is_empty() {
        out.push_str("  (none yet)\n");
    } else {
        let mut rows = vec![vec![
            "TYPE".to_string(),
            "STATUS".to_string(),
            "REASON".to_string(),
            "SINCE".to_string(),
            "MESSAGE".to_string(),
        ]];
        for c in conditions {
            rows.push(vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                since(now, Some(c.last_transition_time.0)),
                cut(&c.message, CELL),
            ]);
        }
        out.push_str(&table(&rows, "  "));
    }

    out.push_str("\nEvents:\n");
    if events.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut rows = vec![vec![
            "AGE".to_string(),
            "TYPE".to_string(),
            "REASON".to_string(),
            "REQUEST ID".to_string(),
            "MESSAGE".to_string(),
        ]];
        for e in events {
            let reason = if e.count > 1 {
                format!("{} (x{})", e.reason, e.count)
            } else {
                e.reason.clone()
            };
            rows.push(vec![
                since(now, e.time),
                e.type_.clone(),
                reason,
                e.request_id.clone().unwrap_or_else(|| "-".to_string()),
                cut(&e.note, CELL),
            ]);
        }
        out.push_str(&table(&rows, "  "));
    }
    out
}

/// One row of `list`: a rollout, or an object of one of the kinds that cannot be read.
#[derive(Clone, Debug)]
pub enum ListEntry {
    Rollout(Box<AnyRollout>),
    Unreadable {
        kind: Kind,
        namespace: String,
        name: String,
        created: Option<Timestamp>,
        error: String,
    },
}

impl ListEntry {
    fn key(&self) -> (&str, Kind, &str) {
        match self {
            ListEntry::Rollout(r) => (r.namespace(), r.kind(), r.name()),
            ListEntry::Unreadable {
                kind,
                namespace,
                name,
                ..
            } => (namespace, *kind, name),
        }
    }
}

/// The `list` table, by namespace, kind and name; what cannot be read is said below it.
pub fn render_list(entries: &[ListEntry], all_namespaces: bool, now: Timestamp) -> String {
    let mut entries: Vec<&ListEntry> = entries.iter().collect();
    entries.sort_by(|a, b| a.key().cmp(&b.key()));
    let mut notes = String::new();
    let mut rows = vec![Vec::new()];
    if all_namespaces {
        rows[0].push("NAMESPACE".to_string());
    }
    rows[0].extend(
        ["NAME", "TARGET", "STRATEGY", "PROGRESS", "STATUS", "AGE"]
            .iter()
            .map(|s| s.to_string()),
    );
    for entry in entries {
        let mut row = Vec::new();
        match entry {
            ListEntry::Rollout(obj) => {
                if all_namespaces {
                    row.push(obj.namespace().to_string());
                }
                let health = obj.health();
                let step = obj.steps().and_then(|s| {
                    let c = usize::try_from(s.current?).ok()?;
                    Some(if c < s.steps.len() {
                        format!("step {}/{}", c + 1, s.steps.len())
                    } else {
                        "final".to_string()
                    })
                });
                let progress = match (progress(obj), step) {
                    (Some((part, 100, _)), Some(step)) => {
                        format!("{step} {part}%")
                    }
                    (Some((part, 100, _)), None) => format!("{part}%"),
                    (Some((part, whole, _)), None) => format!("{part}/{whole}"),
                    (Some(_), Some(step)) | (None, Some(step)) => step,
                    (None, None) => "-".to_string(),
                };
                row.extend([
                    format!("{}/{}", obj.kind().short(), obj.name()),
                    target(obj),
                    cut(&strategy(obj), 48),
                    progress,
                    format!("{} {}", health.icon(), health.word()),
                    since(now, obj.meta().creation_timestamp.as_ref().map(|t| t.0)),
                ]);
            }
            ListEntry::Unreadable {
                kind,
                namespace,
                name,
                created,
                error,
            } => {
                if all_namespaces {
                    row.push(namespace.clone());
                }
                row.extend([
                    format!("{}/{name}", kind.short()),
                    "-".to_string(),
                    "-".to_string(),
                    "-".to_string(),
                    "✖ Unreadable".to_string(),
                    since(now, *created),
                ]);
                notes.push_str(&format!(
                    "{}/{name} in namespace {namespace} cannot be read: {}\n",
                    kind.short(),
                    cut(error, 200)
                ));
            }
        }
        rows.push(row);
    }
    let mut out = table(&rows, "");
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}
