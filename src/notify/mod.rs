//! Notifications: a rollout's transitions (step reached, paused, analysis failed, rolled
//! back, completed) sent to webhooks named in `spec.notifications`.
//!
//! Two formats: a DingTalk custom robot (markdown message; signed when the Secret has a
//! `secret`, by DingTalk's scheme: `timestamp` in milliseconds and `sign` = URL-encoded
//! base64 of HMAC-SHA256 over `"{timestamp}\n{secret}"` keyed by the secret, both added to
//! the webhook URL), and a generic JSON document.
//!
//! The webhook URL and the signing secret live in a Secret in the resource's namespace
//! (keys `url` and `secret`): they never appear in status, Events or logs (a failure names
//! the Secret, never the URL). Sending never blocks or fails a reconcile: each
//! notification is sent by its own task, with a bounded number of attempts, each bounded
//! by a timeout.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::controller::context::SecretSource;
use crate::crd::common::{Notification, NotificationFormat};

/// Secret key holding the webhook URL.
pub const KEY_URL: &str = "url";
/// Secret key holding the DingTalk signing secret (optional).
pub const KEY_SECRET: &str = "secret";
/// Attempts per notification.
pub const ATTEMPTS: u32 = 3;
/// Each attempt's bound.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before the second attempt; doubled before each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// A transition worth telling people about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Transition {
    StepReached,
    Paused,
    AnalysisFailed,
    RolledBack,
    Completed,
}

impl Transition {
    pub fn as_str(&self) -> &'static str {
        match self {
            Transition::StepReached => "stepReached",
            Transition::Paused => "paused",
            Transition::AnalysisFailed => "analysisFailed",
            Transition::RolledBack => "rolledBack",
            Transition::Completed => "completed",
        }
    }
}

/// What is sent: one transition of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub event: Transition,
    /// The version concerned, when the kind has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The step reached (0-based), for `stepReached`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    pub message: String,
    /// RFC 3339.
    pub at: String,
}

/// The body of a generic JSON notification.
pub fn json_body(m: &Message) -> serde_json::Value {
    serde_json::to_value(m).unwrap_or_default()
}

/// The body of a DingTalk robot notification (a markdown message).
pub fn dingtalk_body(m: &Message) -> serde_json::Value {
    let title = format!(
        "{} {}/{}: {}",
        m.kind,
        m.namespace,
        m.name,
        m.event.as_str()
    );
    let mut text = format!("### {title}\n\n{}\n\n", m.message);
    if let Some(v) = &m.version {
        text.push_str(&format!("- version: {v}\n"));
    }
    if let Some(s) = m.step {
        text.push_str(&format!("- step: {}\n", s + 1));
    }
    text.push_str(&format!("- at: {}\n", m.at));
    serde_json::json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
}

/// DingTalk's signature of `timestamp_ms` with `secret` (base64, not yet URL-encoded).
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; kept total rather than unwrapped.
        Err(_) => return String::new(),
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL a DingTalk notification is posted to: with `timestamp` and `sign` added when a
/// secret is given.
pub fn dingtalk_url(url: &str, secret: Option<&str>, timestamp_ms: i64) -> Result<String, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("the url is not a URL ({e})"))?;
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        parsed
            .query_pairs_mut()
            .append_pair("timestamp", &timestamp_ms.to_string())
            .append_pair("sign", &dingtalk_sign(timestamp_ms, secret));
    }
    Ok(parsed.into())
}

/// A webhook resolved from its Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub format: NotificationFormat,
    pub url: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for Webhook {
    // Never the URL or the secret: a DingTalk URL carries its access token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Webhook({:?})", self.format)
    }
}

/// Whether `n` asks for `t` (no list: every transition).
pub fn wants(n: &Notification, t: Transition) -> bool {
    n.events.is_empty() || n.events.iter().any(|e| e == t.as_str())
}

/// Read the webhook of `n` from its Secret in `namespace`.
pub async fn resolve(
    secrets: &dyn SecretSource,
    namespace: &str,
    n: &Notification,
) -> Result<Webhook, String> {
    let name = &n.secret_ref.name;
    let data = secrets
        .read(namespace, name)
        .await
        .map_err(|e| format!("Secret {namespace}/{name} cannot be read: {e}"))?
        .ok_or_else(|| format!("Secret {namespace}/{name} does not exist"))?;
    let text = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let url = text(KEY_URL).ok_or_else(|| format!("Secret {namespace}/{name} has no {KEY_URL}"))?;
    Ok(Webhook {
        format: n.format,
        url,
        secret: text(KEY_SECRET),
    })
}

/// The shared HTTP client of notifications (rustls, bounded connect time).
fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

/// One attempt. DingTalk answers 200 with `errcode` != 0 on a refusal (bad signature,
/// throttled): that is a failure too.
async fn attempt(hook: &Webhook, m: &Message) -> Result<(), String> {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let (url, body) = match hook.format {
        NotificationFormat::DingTalk => (
            dingtalk_url(&hook.url, hook.secret.as_deref(), now_ms)?,
            dingtalk_body(m),
        ),
        NotificationFormat::Json => (hook.url.clone(), json_body(m)),
    };
    let answer = http()
        .post(url)
        .json(&body)
        .send()
        .await
        // Without the URL: reqwest's error text names it.
        .map_err(|e| format!("not sent ({})", error_kind(&e)))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(format!("the webhook answered HTTP {}", status.as_u16()));
    }
    if hook.format == NotificationFormat::DingTalk {
        let text = answer.text().await.unwrap_or_default();
        let code = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("errcode").and_then(|c| c.as_i64()));
        if let Some(code) = code.filter(|c| *c != 0) {
            return Err(format!("DingTalk refused it (errcode {code})"));
        }
    }
    Ok(())
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// Send `m` to `hook`: at most [`ATTEMPTS`] attempts, backing off between them.
pub async fn deliver(hook: &Webhook, m: &Message) -> Result<(), String> {
    let mut wait = FIRST_BACKOFF;
    let mut last = String::new();
    for i in 0..ATTEMPTS {
        if i > 0 {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        match attempt(hook, m).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Send `m` to every notification of `list` that wants it, each from its own task: the
/// caller never waits. Failures are logged (naming the Secret, never the URL).
pub fn send(secrets: Arc<dyn SecretSource>, namespace: &str, list: &[Notification], m: Message) {
    for n in list.iter().filter(|n| wants(n, m.event)).cloned() {
        let (secrets, namespace, m) = (secrets.clone(), namespace.to_string(), m.clone());
        tokio::spawn(async move {
            let secret = n.secret_ref.name.clone();
            let result = match resolve(secrets.as_ref(), &namespace, &n).await {
                Ok(hook) => deliver(&hook, &m).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => tracing::debug!(event = m.event.as_str(), %secret, "notification sent"),
                Err(e) => tracing::warn!(
                    event = m.event.as_str(),
                    %secret,
                    "notification not delivered: {e}"
                ),
            }
        });
    }
}

#[cfg(test)]
mod tests;
