//! Reading an answer: error bodies into [`CloudError::Api`] ([`parse_error_response`]),
//! the RequestId of a success, and success bodies into the typed model ([`decode`]).

use std::time::Duration;

use http::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{CloudError, CloudResult};

#[derive(Deserialize, Default)]
struct WireError {
    #[serde(default, rename = "Code", alias = "code")]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "Message", alias = "message")]
    message: Option<String>,
    #[serde(default, rename = "RequestId", alias = "requestId")]
    request_id: Option<String>,
}

/// The longest `x-acs-retry-after` honoured. The cloud's limits are per second; a larger
/// value is a broken header (or a proxy's), and waiting on it would stall every rollout of
/// the account.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// `x-acs-retry-after`, which the official SDK reads as an integer number of milliseconds;
/// at most [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-acs-retry-after")?.to_str().ok()?.trim();
    let ms: u64 = v.parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms).min(MAX_RETRY_AFTER))
}

/// Read a response body, at most `limit` bytes: memory stays bounded whatever the
/// endpoint sends (a declared length over the limit is refused before reading). The
/// caller bounds the time.
pub async fn read_body(response: reqwest::Response, limit: usize) -> CloudResult<bytes::Bytes> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(CloudError::ResponseTooLarge(limit));
    }
    let mut response = response;
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(body_error)? {
        if body.len() + chunk.len() > limit {
            return Err(CloudError::ResponseTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A failure while reading an answer's body (the connection closed early, a stall).
fn body_error(e: reqwest::Error) -> CloudError {
    if e.is_timeout() {
        return CloudError::Transport("the answer's body timed out".to_string());
    }
    let e = e.without_url();
    let mut msg = format!("reading the answer's body: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    CloudError::Transport(msg)
}

/// `x-acs-request-id`, which gateways set on every answer.
pub fn header_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-acs-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Turn an error answer (status >= 300) into a [`CloudError::Api`], whatever its body.
pub fn parse_error_response(status: u16, headers: &HeaderMap, body: &[u8]) -> CloudError {
    let parsed: Option<WireError> = serde_json::from_slice(body).ok();
    let (code, message, request_id) = match parsed {
        Some(w) => {
            let code = match w.code {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            (code, w.message, w.request_id)
        }
        None => (None, None, None),
    };
    let code = code.unwrap_or_else(|| match status {
        429 => "TooManyRequests".to_string(),
        s if s >= 500 => "ServiceUnavailable".to_string(),
        s => format!("HTTP{s}"),
    });
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(200).collect();
        if text.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            format!("HTTP {status}: {text}")
        }
    });
    CloudError::Api {
        status,
        code,
        message,
        request_id: request_id
            .filter(|r| !r.is_empty())
            .or_else(|| header_request_id(headers)),
        retry_after: retry_after(headers),
    }
}

/// The RequestId of a successful answer: the `x-acs-request-id` header, else the body's
/// `RequestId`.
pub fn success_request_id(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    header_request_id(headers).or_else(|| {
        serde_json::from_slice::<WireError>(body)
            .ok()
            .and_then(|w| w.request_id)
    })
}

/// Decode a success body as `T`; an empty body reads as `{}` (mutations may answer so).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> CloudResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| CloudError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::error::ErrorKind;
    use crate::cloud::model::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn error_bodies() {
        let e = parse_error_response(
            400,
            &HeaderMap::new(),
            br#"{"RequestId":"5F1A-1","HostId":"esa.cn-hangzhou.aliyuncs.com","Code":"InvalidParameter.Percentage","Message":"The Percentage is invalid."}"#,
        );
        match &e {
            CloudError::Api {
                status,
                code,
                message,
                request_id,
                retry_after,
            } => {
                assert_eq!(*status, 400);
                assert_eq!(code, "InvalidParameter.Percentage");
                assert_eq!(message, "The Percentage is invalid.");
                assert_eq!(request_id.as_deref(), Some("5F1A-1"));
                assert_eq!(*retry_after, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.kind(), ErrorKind::Terminal);

        let e = parse_error_response(
            400,
            &headers(&[("x-acs-retry-after", "1500")]),
            br#"{"RequestId":"r","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert!(
            matches!(e, CloudError::Api { retry_after: Some(d), .. } if d == Duration::from_millis(1500))
        );

        let e = parse_error_response(
            404,
            &headers(&[("x-acs-request-id", "hdr-id")]),
            br#"{"Code":"InvalidService.NotFound","Message":"no"}"#,
        );
        assert!(e.is_not_found());
        assert_eq!(e.request_id(), Some("hdr-id"));

        // Lower-case keys (some ROA gateways) still parse.
        let e = parse_error_response(
            403,
            &HeaderMap::new(),
            br#"{"code":"Forbidden.RAM","message":"denied","requestId":"x"}"#,
        );
        assert_eq!((e.code(), e.request_id()), ("Forbidden.RAM", Some("x")));

        // An HTML page from a proxy.
        let e = parse_error_response(
            502,
            &HeaderMap::new(),
            b"<html><body>Bad Gateway</body></html>",
        );
        assert_eq!(e.code(), "ServiceUnavailable");
        assert!(e.to_string().contains("Bad Gateway"), "{e}");
        assert_eq!(e.kind(), ErrorKind::Transient);
        let e = parse_error_response(429, &HeaderMap::new(), b"");
        assert_eq!(e.kind(), ErrorKind::Throttled);
        let e = parse_error_response(400, &HeaderMap::new(), b"nope");
        assert_eq!((e.code(), e.kind()), ("HTTP400", ErrorKind::Terminal));
        // A retry-after beyond reason is capped.
        let e = parse_error_response(
            400,
            &headers(&[("x-acs-retry-after", "86400000")]),
            br#"{"Code":"Throttling.User"}"#,
        );
        assert_eq!(e.retry_after(), Some(MAX_RETRY_AFTER));
        // Garbage retry-after is ignored.
        let e = parse_error_response(500, &headers(&[("x-acs-retry-after", "soon")]), b"{}");
        assert!(matches!(
            e,
            CloudError::Api {
                retry_after: None,
                ..
            }
        ));
    }

    #[test]
    fn answers_decode_with_cloud_field_names() {
        let r: DescribeServiceRolloutResponse = decode(
            br#"{"RequestId":"r1","Rollout":{"Strategy":{"Batch":{"BatchSize":"2","Interval":"60s"}},
                "Status":{"Phase":"Running","TotalReplicas":8,"UpdatedReplicas":2,"CurrentRevision":"svc-v1",
                "UpdateRevision":"svc-v2","NextBatchStartTime":"2026/05/08 16:10:56"}}}"#,
        )
        .unwrap();
        let status = r.rollout.unwrap().status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.updated_replicas, Some(2));
        let r: GetEdgeContainerAppStatusResponse = decode(
            br#"{"RequestId":"r","AppStatus":{"PublishStatus":"publishing","PublishPercentage":50,"FullRelease":false,"Regions":{"Region":["jiangsu"]},"Unknown":1}}"#,
        )
        .unwrap();
        let s = r.app_status.unwrap();
        assert_eq!(s.publish_percentage, Some(50));
        assert_eq!(s.regions.unwrap().region, vec!["jiangsu".to_string()]);
        let a: Ack = decode(b"").unwrap();
        assert_eq!(a, Ack::default());
        assert!(matches!(
            decode::<Ack>(b"<html>"),
            Err(CloudError::Decode(_))
        ));
    }
}
