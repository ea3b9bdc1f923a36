//! One bounded HTTP exchange for the prometheus and web providers: a timeout over the whole
//! call (connect, headers and body), a cap on the body, and errors that never quote the
//! URL (it may carry a Secret-backed argument).

use std::time::Duration;

use super::{MAX_BODY_BYTES, ProviderError};

/// Status and body of an answer.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The start of the body, for an error message.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        super::shorten(text.trim(), 200)
    }
}

/// Send `request` and read the answer within `timeout`.
pub async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<Answer, ProviderError> {
    let exchange = async {
        let response = request.timeout(timeout).send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let body = read_bounded(response).await?;
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProviderError::Timeout(timeout))?
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let too_large = || {
        ProviderError::Failed(format!(
            "the answer is larger than {MAX_BODY_BYTES} bytes: refused"
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error as a message without its URL, with its causes (e.g. "connection refused").
fn describe(error: reqwest::Error) -> ProviderError {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if error.is_timeout() {
        text = format!("timed out: {text}");
    }
    ProviderError::Failed(text)
}
