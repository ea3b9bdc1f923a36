//! `kubectl alicloud-rollouts`: the kubectl plugin (binary `kubectl-alicloud_rollouts`).
//!
//! `list` and `get` read; `pause`, `resume`, `promote`, `abort` and `retry` each set spec
//! fields with server-side apply under the field manager `kubectl-alicloud-rollouts`, so
//! GitOps tools see the change as drift rather than a hidden status change. The pieces:
//! [`rollout`] (the three kinds as one), [`action`] (what each command sets, pure),
//! [`view`] (what `get` and `list` print, pure) and [`cluster`] (the API calls).

pub mod action;
pub mod cluster;
pub mod rollout;
pub mod view;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use action::{Intent, apply_body, plan};
use cluster::{Cluster, ConnectOptions};
use rollout::{Health, Target};

/// Exit code of `get --watch` when the rollout needs a person (Degraded or Stalled).
pub const EXIT_NEEDS_PERSON: u8 = 2;
/// Exit code of `get --watch` when `--timeout` passed first.
pub const EXIT_TIMEOUT: u8 = 3;

/// Why a command failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no cluster: {0}")]
    NoCluster(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    NotServed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Refused(#[from] action::Refused),
    /// The object changed between reading and writing it.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Api(String),
}

#[derive(Parser, Debug)]
#[command(
    name = "kubectl alicloud-rollouts",
    bin_name = "kubectl alicloud-rollouts",
    version,
    about = "See and steer alicloud-rollouts (EasServiceRollout, EsaRoutineRollout, \
             EsaContainerAppRollout) from the command line",
    after_help = "A rollout is named NAME, or KIND/NAME when two kinds share the name \
                  (kinds: easservicerollout/easro, esaroutinerollout/esarr, \
                  esacontainerapprollout/esacr).\n\nEvery change is a spec field set with \
                  server-side apply under the field manager kubectl-alicloud-rollouts: \
                  GitOps tools see it as drift."
)]
pub struct Cli {
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the rollouts of every kind in the namespace.
    List {
        /// In every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Show one rollout: strategy, steps, progress, conditions, Events, what comes next.
    Get {
        /// NAME or KIND/NAME.
        target: String,
        /// Redraw as it changes, until it is Ready (exit 0) or needs a person (Degraded or
        /// Stalled: exit 2).
        #[arg(short, long)]
        watch: bool,
        /// With --watch: give up after this long (e.g. 30s, 10m; exit 3).
        #[arg(long, value_name = "DURATION", requires = "watch")]
        timeout: Option<jiff::SignedDuration>,
        /// How many of the latest Events to show.
        #[arg(long, default_value_t = 8)]
        events: usize,
    },
    /// Hold the rollout where it is (spec.paused: true).
    Pause { target: String },
    /// Let a paused rollout go on (spec.paused: false).
    Resume { target: String },
    /// Approve the next manual gate of the version being rolled out (ESA kinds with steps).
    Promote {
        target: String,
        /// Approve every remaining gate of this version.
        #[arg(long)]
        full: bool,
    },
    /// Roll back (spec.rollback: true; ESA kinds).
    Abort { target: String },
    /// After Degraded or Stalled: have the operator look again now (spec.retry + 1).
    Retry { target: String },
}

/// Run the plugin with the process's arguments; the exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout();
    match run(cli, &mut out).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = out.flush();
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run one command, printing to `out`; the exit code when it did not fail.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<u8, PluginError> {
    let opts = ConnectOptions {
        kubeconfig: cli.kubeconfig,
        context: cli.context,
        namespace: cli.namespace,
    };
    let intent = match &cli.command {
        Command::Pause { .. } => Some(Intent::Pause),
        Command::Resume { .. } => Some(Intent::Resume),
        Command::Promote { full, .. } => Some(Intent::Promote { full: *full }),
        Command::Abort { .. } => Some(Intent::Abort),
        Command::Retry { .. } => Some(Intent::Retry),
        _ => None,
    };
    let cluster = Cluster::connect(&opts).await?;
    match cli.command {
        Command::List { all_namespaces } => {
            let entries = cluster.list(all_namespaces).await?;
            if entries.is_empty() {
                let scope = if all_namespaces {
                    "any namespace".to_string()
                } else {
                    format!("namespace {:?}", cluster.namespace)
                };
                writeln!(out, "No rollouts in {scope}.").map_err(io)?;
            } else {
                let text = view::render_list(&entries, all_namespaces, jiff::Timestamp::now());
                out.write_all(text.as_bytes()).map_err(io)?;
            }
            Ok(0)
        }
        Command::Get {
            target,
            watch,
            timeout,
            events,
        } => {
            let target = Target::parse(&target).map_err(PluginError::Usage)?;
            if watch {
                let deadline = timeout.map(|t| Instant::now() + t.unsigned_abs());
                let tty = std::io::stdout().is_terminal();
                watch_rollout(&cluster, &target, events, deadline, tty, out).await
            } else {
                let frame = frame(&cluster, &target, events).await?;
                out.write_all(frame.text.as_bytes()).map_err(io)?;
                Ok(0)
            }
        }
        Command::Pause { target }
        | Command::Resume { target }
        | Command::Promote { target, .. }
        | Command::Abort { target }
        | Command::Retry { target } => {
            let intent = intent.ok_or_else(|| PluginError::Usage("no command".into()))?;
            let target = Target::parse(&target).map_err(PluginError::Usage)?;
            change(&cluster, &target, intent, out).await?;
            Ok(0)
        }
    }
}

fn io(e: std::io::Error) -> PluginError {
    PluginError::Api(format!("writing the output: {e}"))
}

/// Apply `intent` to the rollout `target` names and print what changed. The apply names
/// the resourceVersion the decision was made on, so a rollout that moved meanwhile (its
/// current step, say) is read and decided again rather than approved blindly.
async fn change(
    cluster: &Cluster,
    target: &Target,
    intent: Intent,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let found = cluster.find(target).await?;
        let change = plan(intent, &found.rollout, &found.json)?;
        let mut body = apply_body(found.rollout.kind(), &found.json, &change);
        if let Some(rv) = found.rollout.meta().resource_version.as_deref() {
            body["metadata"]["resourceVersion"] = serde_json::Value::String(rv.to_string());
        }
        match cluster.apply(&found.rollout, &body).await {
            Ok(stored) => {
                writeln!(
                    out,
                    "{}.{}/{} in namespace {} ({} by {}):",
                    found.rollout.kind().singular(),
                    crate::crd::GROUP,
                    found.rollout.name(),
                    found.rollout.namespace(),
                    intent.verb(),
                    action::FIELD_MANAGER
                )
                .map_err(io)?;
                for field in &change.fields {
                    let now_stored = action::at(&stored, field.path).cloned();
                    let shown = action::FieldChange {
                        after: now_stored.unwrap_or(serde_json::Value::Null),
                        ..field.clone()
                    };
                    writeln!(out, "  {}", shown.describe()).map_err(io)?;
                }
                if let Some(note) = &change.note {
                    writeln!(out, "  {note}").map_err(io)?;
                }
                return Ok(());
            }
            Err(PluginError::Conflict(_)) if attempts < 5 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One rendering of a rollout, with what decides whether a watch goes on.
struct Frame {
    text: String,
    health: Health,
}

async fn frame(cluster: &Cluster, target: &Target, events: usize) -> Result<Frame, PluginError> {
    let found = cluster.find(target).await?;
    let all = cluster.events(&found.rollout).await;
    let lines = view::events_about(&found.rollout, &all, events);
    Ok(Frame {
        text: view::render_get(&found.rollout, &lines, jiff::Timestamp::now()),
        health: found.rollout.health(),
    })
}

/// Clear from the cursor to the end of the line, and (after the last line) to the end of
/// the screen: a redraw in place leaves nothing of a longer earlier frame.
const CLEAR_LINE: &str = "\x1b[K";
const CLEAR_BELOW: &str = "\x1b[J";
/// Cursor to the top left.
const HOME: &str = "\x1b[H";

/// How a frame is written: on a terminal, over the previous one, each line cut to the
/// terminal's `width` (a wrapped line would push the frame past the lines it redraws);
/// elsewhere (a pipe, a file) whole, one after the other.
pub fn paint(text: &str, tty: bool, first: bool, width: Option<usize>) -> String {
    if !tty {
        return if first {
            text.to_string()
        } else {
            format!("\n{text}")
        };
    }
    let mut out = String::new();
    if first {
        out.push_str("\x1b[2J");
    }
    out.push_str(HOME);
    for line in text.lines() {
        match width {
            Some(w) if w > 1 && line.chars().count() > w => {
                out.extend(line.chars().take(w - 1));
                out.push('…');
            }
            _ => out.push_str(line),
        }
        out.push_str(CLEAR_LINE);
        out.push('\n');
    }
    out.push_str(CLEAR_BELOW);
    out
}

async fn watch_rollout(
    cluster: &Cluster,
    target: &Target,
    events: usize,
    deadline: Option<Instant>,
    tty: bool,
    out: &mut dyn Write,
) -> Result<u8, PluginError> {
    let mut last: Option<String> = None;
    loop {
        let frame = frame(cluster, target, events).await?;
        // Off a terminal, ages tick every second: print a frame only when something else
        // changed.
        let key = if tty {
            frame.text.clone()
        } else {
            strip_ages(&frame.text)
        };
        if last.as_deref() != Some(key.as_str()) {
            let width = tty
                .then(terminal_size::terminal_size)
                .flatten()
                .map(|(w, _)| usize::from(w.0));
            out.write_all(paint(&frame.text, tty, last.is_none(), width).as_bytes())
                .map_err(io)?;
            out.flush().map_err(io)?;
            last = Some(key);
        }
        if frame.health.is_final() {
            writeln!(out, "{}", final_word(frame.health)).map_err(io)?;
            return Ok(if frame.health == Health::Ready {
                0
            } else {
                EXIT_NEEDS_PERSON
            });
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            writeln!(
                out,
                "Stopped watching: --timeout passed while the rollout is {}.",
                frame.health.word()
            )
            .map_err(io)?;
            return Ok(EXIT_TIMEOUT);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn final_word(health: Health) -> &'static str {
    match health {
        Health::Ready => "Rollout is Ready.",
        Health::Degraded => "Rollout is Degraded: a person is needed.",
        _ => "Rollout is Stalled: a person is needed.",
    }
}

/// The frame without what only time changes (ages, "in 3m12s"), to tell real changes.
pub fn strip_ages(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !is_age(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_age(word: &str) -> bool {
    let w = word.trim_end_matches([',', ';', ':']);
    !w.is_empty()
        && w.chars().next().is_some_and(|c| c.is_ascii_digit())
        && w.chars().all(|c| c.is_ascii_digit() || "smhd".contains(c))
        && w.chars().any(|c| "smhd".contains(c))
}

#[cfg(test)]
mod tests;
