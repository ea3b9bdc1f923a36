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
    /// The answer was larger than the client accepts (`--cloud-max-response-bytes`): a
    /// broken endpoint or proxy, most likely. Reading stopped at the cap.
    #[error(
        "the answer is larger than {0} bytes (--cloud-max-response-bytes); reading stopped there"
    )]
    ResponseTooLarge(usize),
    /// A mutation that may or may not have taken effect: it was sent, and then the answer
    /// timed out, the connection dropped, the cloud answered 5xx, or the answer could not be
    /// read. The client does not send it again; the caller reads the cloud and decides.
    #[error(
        "outcome unknown, the cloud may have applied it (it is not sent again before the cloud is read): {0}"
    )]
    OutcomeUnknown(Box<CloudError>),
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
            CloudError::ResponseTooLarge(_) => ErrorKind::Transient,
            CloudError::OutcomeUnknown(inner) => inner.kind(),
        }
    }

    /// A mutation that may have taken effect though it failed (see
    /// [`CloudError::OutcomeUnknown`]).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, CloudError::OutcomeUnknown(_))
    }

    /// What the cloud asked us to wait (`x-acs-retry-after`, already capped), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CloudError::Api { retry_after, .. } => *retry_after,
            CloudError::OutcomeUnknown(inner) => inner.retry_after(),
            _ => None,
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
            CloudError::ResponseTooLarge(_) => "ResponseTooLarge",
            CloudError::OutcomeUnknown(inner) => inner.code(),
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            CloudError::Api { request_id, .. } => request_id.as_deref(),
            CloudError::OutcomeUnknown(inner) => inner.request_id(),
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            CloudError::Api { status, .. } => Some(*status),
            CloudError::OutcomeUnknown(inner) => inner.http_status(),
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
        let unknown = CloudError::OutcomeUnknown(Box::new(api(503, "ServiceUnavailable")));
        assert_eq!(unknown.kind(), ErrorKind::Transient);
        assert!(unknown.outcome_unknown() && !api(503, "X").outcome_unknown());
        assert_eq!(unknown.code(), "ServiceUnavailable");
        assert_eq!(unknown.request_id(), Some("r"));
        assert!(unknown.to_string().contains("outcome unknown"), "{unknown}");
        assert_eq!(
            CloudError::ResponseTooLarge(10).kind(),
            ErrorKind::Transient
        );
    }

    #[test]
    fn not_found_detection() {
        assert!(api(404, "X").is_not_found());
        assert!(api(400, "InvalidService.NotFound").is_not_found());
        assert!(api(400, "RoutineNotExist").is_not_found());
        assert!(!api(400, "InvalidParameter").is_not_found());
    }
}
