//! Cloud errors, classified so callers know whether to retry.

use std::time::Duration;

/// The result of every cloud call.
pub type CloudResult<T> = Result<T, CloudError>;

/// How a caller should treat an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request cannot succeed as it is (validation, not found, forbidden):
    /// do not retry, wait for a change of input.
    Terminal,
    /// A retry later may succeed (5xx, timeouts, connection errors, busy).
    Transient,
    /// The cloud throttled us: retry later, backing off harder.
    Throttled,
}

/// An error from a cloud call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudError {
    /// The cloud answered with an error body `{Code, Message, RequestId}`.
    #[error("{code}: {message} (HTTP {status}, RequestId {})", request_id.as_deref().unwrap_or("-"))]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        /// From the `x-acs-retry-after` header, when present.
        retry_after: Option<Duration>,
    },
    /// The call did not finish within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connection refused/reset, DNS, TLS...
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer could not be understood.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// No usable credentials.
    #[error("credentials: {0}")]
    Credentials(String),
    /// Rejected before sending (bad input from the caller).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// Codes that mean "try again later" even when sent with a 4xx status.
const TRANSIENT_CODES: &[&str] = &[
    "ServiceBusy",
    "Site.ServiceBusy",
    "TooManyRequests",
    "LockFailed",
    "InternalError",
    "InternalException",
    "InternalOperationError",
    "ServiceUnavailable",
];

impl CloudError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CloudError::Api {
                status,
                code,
                retry_after,
                ..
            } => {
                if code.starts_with("Throttling") || *status == 429 || retry_after.is_some() {
                    ErrorKind::Throttled
                } else if *status >= 500
                    || TRANSIENT_CODES.contains(&code.as_str())
                    || code.ends_with(".ServiceBusy")
                {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Terminal
                }
            }
            CloudError::Timeout(_) | CloudError::Transport(_) => ErrorKind::Transient,
            // A garbled answer is most likely a proxy or an outage, not our input.
            CloudError::Decode(_) => ErrorKind::Transient,
            CloudError::Credentials(_) | CloudError::InvalidRequest(_) => ErrorKind::Terminal,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind() != ErrorKind::Terminal
    }

    /// The cloud's error code, or a stable label for local errors.
    pub fn code(&self) -> &str {
        match self {
            CloudError::Api { code, .. } => code,
            CloudError::Timeout(_) => "Timeout",
            CloudError::Transport(_) => "Transport",
            CloudError::Decode(_) => "Decode",
            CloudError::Credentials(_) => "Credentials",
            CloudError::InvalidRequest(_) => "InvalidRequest",
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            CloudError::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            CloudError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The cloud object does not exist (404, or a `*.NotFound`/`*NotExist` code).
    pub fn is_not_found(&self) -> bool {
        match self {
            CloudError::Api { status, code, .. } => {
                *status == 404
                    || code.contains("NotFound")
                    || code.contains("NotExist")
                    || code.contains("NotExists")
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> CloudError {
        CloudError::Api {
            status,
            code: code.into(),
            message: "m".into(),
            request_id: Some("r".into()),
            retry_after: None,
        }
    }

    #[test]
    fn classification_table() {
        let cases = [
            (api(400, "InvalidParameter"), ErrorKind::Terminal),
            (api(400, "InvalidParameter.Percentage"), ErrorKind::Terminal),
            (api(404, "InvalidApp.NotFound"), ErrorKind::Terminal),
            (
                api(403, "Forbidden.PrivilegeCheckFailed"),
                ErrorKind::Terminal,
            ),
            (api(400, "RoutineNotExist"), ErrorKind::Terminal),
            (api(500, "InternalError"), ErrorKind::Transient),
            (api(503, "ServiceUnavailable"), ErrorKind::Transient),
            (api(400, "Site.ServiceBusy"), ErrorKind::Transient),
            (api(400, "TooManyRequests"), ErrorKind::Transient),
            (api(400, "LockFailed"), ErrorKind::Transient),
            (api(400, "Throttling.User"), ErrorKind::Throttled),
            (api(429, "Whatever"), ErrorKind::Throttled),
            (
                CloudError::Timeout(Duration::from_secs(1)),
                ErrorKind::Transient,
            ),
            (CloudError::Transport("reset".into()), ErrorKind::Transient),
            (CloudError::Credentials("none".into()), ErrorKind::Terminal),
        ];
        for (err, want) in cases {
            assert_eq!(err.kind(), want, "{err}");
        }
        let throttled = CloudError::Api {
            status: 400,
            code: "Other".into(),
            message: String::new(),
            request_id: None,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(throttled.kind(), ErrorKind::Throttled);
    }

    #[test]
    fn not_found_detection() {
        assert!(api(404, "X").is_not_found());
        assert!(api(400, "InvalidService.NotFound").is_not_found());
        assert!(api(400, "RoutineNotExist").is_not_found());
        assert!(!api(400, "InvalidParameter").is_not_found());
    }
}
