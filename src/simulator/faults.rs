//! The answers of the faults that damage or hold an answer (see docs/simulator.md,
//! "Faults"): headers then a stall, a truncated body, wrongly typed fields, an enormous
//! body. Each is built as a streamed body, so the simulator's memory stays small whatever
//! size it sends.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, StatusCode};
use serde_json::Value;

fn head(status: StatusCode, request_id: &str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-acs-request-id", v);
    }
    resp
}

/// An error that ends a body stream: the server closes the connection.
fn cut() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "fault: answer cut")
}

/// The status line and headers (a body of 4096 bytes promised), then nothing for `hold`,
/// then the connection closes.
pub fn stalled(status: StatusCode, request_id: &str, hold: Duration) -> Response<Body> {
    let stream = futures::stream::once(async move {
        tokio::time::sleep(hold).await;
        Err::<Bytes, _>(cut())
    });
    let mut resp = head(status, request_id, Body::from_stream(stream));
    resp.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from_static("4096"),
    );
    resp
}

/// The headers promise the whole of `body`; half of it is sent, then the connection
/// closes.
pub fn truncated(status: StatusCode, request_id: &str, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let len = bytes.len();
    let half = Bytes::from(bytes).slice(..len / 2);
    // The cut comes a moment later, so the half already sent is flushed first.
    let stream = futures::stream::iter([Ok(half)]).chain(futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err(cut())
    }));
    let mut resp = head(status, request_id, Body::from_stream(stream));
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
    resp
}

/// Every field of `body` with a value of the wrong JSON type: an object or a list becomes
/// a string, a string a number, a number or a boolean a string. Top-level fields only:
/// enough that no typed reading of the answer can succeed.
pub fn wrong_types(body: &Value) -> Value {
    let wrong = |v: &Value| match v {
        Value::Object(_) | Value::Array(_) => Value::String("garbled".into()),
        Value::String(_) => Value::from(7),
        Value::Number(_) | Value::Bool(_) => Value::String("seven".into()),
        Value::Null => Value::from(0),
    };
    match body {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), wrong(v))).collect())
        }
        other => wrong(other),
    }
}

/// A body of `bytes` bytes, streamed in 64 KiB pieces without a declared length: the
/// opening of a JSON answer, then spaces.
pub fn huge(status: StatusCode, request_id: &str, bytes: u64) -> Response<Body> {
    const PIECE: usize = 64 * 1024;
    let opening = Bytes::from(format!("{{\"RequestId\":\"{request_id}\",\"Padding\":\""));
    let piece = Bytes::from(vec![b' '; PIECE]);
    let pieces = bytes
        .saturating_sub(opening.len() as u64)
        .div_ceil(PIECE as u64);
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(opening)]).chain(
        futures::stream::iter((0..pieces).map(move |_| Ok(piece.clone()))),
    );
    head(status, request_id, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_change_the_type_of_every_field() {
        let v = serde_json::json!({"RequestId": "r", "Rollout": {"Status": {}}, "List": [1], "N": 2, "B": true, "Z": null});
        let w = wrong_types(&v);
        assert_eq!(
            w,
            serde_json::json!({"RequestId": 7, "Rollout": "garbled", "List": "garbled", "N": "seven", "B": "seven", "Z": 0})
        );
    }
}
