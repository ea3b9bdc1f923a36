use std::collections::BTreeMap;

use super::*;
use crate::crd::common::SecretRef;

fn message() -> Message {
    Message {
        kind: "EsaRoutineRollout".into(),
        namespace: "ns".into(),
        name: "edge".into(),
        event: Transition::AnalysisFailed,
        version: Some("v2".into()),
        step: Some(1),
        message: "error-ratio: 0.5 > 0.05".into(),
        at: "2026-12-02T10:00:00Z".into(),
    }
}

/// The value computed by `openssl dgst -sha256 -hmac SECtest` over "1577262236757\nSECtest",
/// base64: DingTalk's documented scheme (the secret is the key and ends the signed text).
#[test]
fn dingtalk_signature_follows_the_documented_scheme() {
    assert_eq!(
        dingtalk_sign(1577262236757, "SECtest"),
        "Za/ne6w2koB8B4ROVlgTNd/X+/FbyDpZrXLz57xNZSA="
    );
    let url = dingtalk_url(
        "https://oapi.dingtalk.com/robot/send?access_token=abc",
        Some("SECtest"),
        1577262236757,
    )
    .expect("a URL");
    assert_eq!(
        url,
        "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1577262236757\
         &sign=Za%2Fne6w2koB8B4ROVlgTNd%2FX%2B%2FFbyDpZrXLz57xNZSA%3D"
    );
    // No secret: the URL as given.
    assert_eq!(
        dingtalk_url("https://x.example/robot?access_token=abc", None, 1).expect("a URL"),
        "https://x.example/robot?access_token=abc"
    );
    assert!(dingtalk_url("not a url", Some("s"), 1).is_err());
}

#[test]
fn bodies_carry_the_transition() {
    let json = json_body(&message());
    assert_eq!(json["event"], "analysisFailed");
    assert_eq!(json["version"], "v2");
    assert_eq!(json["step"], 1);
    let ding = dingtalk_body(&message());
    assert_eq!(ding["msgtype"], "markdown");
    let text = ding["markdown"]["text"].as_str().unwrap_or_default();
    assert!(text.contains("error-ratio: 0.5 > 0.05"), "{text}");
    assert!(text.contains("step: 2"), "1-based in the text: {text}");
}

#[test]
fn the_list_of_events_filters() {
    let mut n = Notification {
        format: NotificationFormat::Json,
        secret_ref: SecretRef {
            name: "hook".into(),
        },
        events: vec![],
    };
    assert!(wants(&n, Transition::Completed));
    n.events = vec!["analysisFailed".into(), "rolledBack".into()];
    assert!(wants(&n, Transition::RolledBack));
    assert!(!wants(&n, Transition::StepReached));
}

struct Secrets(Option<BTreeMap<String, Vec<u8>>>);

#[async_trait::async_trait]
impl SecretSource for Secrets {
    async fn read(&self, _: &str, _: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn webhooks_come_from_their_secret_and_never_print() {
    let n = Notification {
        format: NotificationFormat::DingTalk,
        secret_ref: SecretRef {
            name: "hook".into(),
        },
        events: vec![],
    };
    let data = BTreeMap::from([
        (
            KEY_URL.to_string(),
            b"https://x.example/?access_token=t0ken\n".to_vec(),
        ),
        (KEY_SECRET.to_string(), b"s3cret".to_vec()),
    ]);
    let hook = resolve(&Secrets(Some(data)), "ns", &n)
        .await
        .expect("resolved");
    assert_eq!(hook.url, "https://x.example/?access_token=t0ken");
    assert_eq!(hook.secret.as_deref(), Some("s3cret"));
    let shown = format!("{hook:?}");
    assert!(
        !shown.contains("t0ken") && !shown.contains("s3cret"),
        "{shown}"
    );
    let missing = resolve(&Secrets(None), "ns", &n)
        .await
        .expect_err("no Secret");
    assert!(missing.contains("ns/hook does not exist"), "{missing}");
    let no_url = resolve(&Secrets(Some(BTreeMap::new())), "ns", &n)
        .await
        .expect_err("no url");
    assert!(no_url.contains("has no url"), "{no_url}");
}

/// A webhook that refuses twice and then accepts gets the message on the third attempt; one
/// that keeps failing is given up after [`ATTEMPTS`], with an error that does not name it.
#[tokio::test]
async fn delivery_retries_a_bounded_number_of_times() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                assert_eq!(body.0["event"], "analysisFailed");
                if n < 2 {
                    http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let hook = Webhook {
        format: NotificationFormat::Json,
        url: format!("http://{addr}/hook"),
        secret: None,
    };
    deliver(&hook, &message()).await.expect("third attempt");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let gone = Webhook {
        url: format!("http://{addr}/missing?token=t0ken"),
        ..hook
    };
    let err = deliver(&gone, &message()).await.expect_err("404 each time");
    assert!(!err.contains("t0ken"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}
