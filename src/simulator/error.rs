//! Errors the simulator answers with, in the cloud's shape.

use http::StatusCode;

/// An error answer: HTTP status, `Code` and `Message` (the body adds RequestId and HostId).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Milliseconds, sent as `x-acs-retry-after` (the official SDKs read it as milliseconds).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameter", message)
    }

    pub fn missing(name: &str) -> Self {
        Self::bad(
            "MissingParameter",
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }

    pub fn throttled() -> Self {
        Self::bad(
            "Throttling.User",
            "Request was denied due to user flow control.",
        )
    }
}
