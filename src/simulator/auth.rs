//! Verifying the V3 (ACS3-HMAC-SHA256) signature of a request, like the cloud's gateway,
//! and the STS credentials the simulator hands out.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

use super::clock::{add, parse_iso_time};
use super::error::{ApiError, ApiResult};
use crate::cloud::sign;

/// How far `x-acs-date` may be from the server's clock, and how long nonces are remembered.
pub const DATE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Credentials issued by AssumeRoleWithOIDC.
#[derive(Clone)]
pub struct StsCredential {
    pub secret: String,
    pub token: String,
    pub expires: Timestamp,
    /// The account of the role assumed (from its ARN, `acs:ram::<account>:role/...`).
    pub account: String,
}

impl std::fmt::Debug for StsCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsCredential")
            .field("secret", &"<redacted>")
            .field("token", &"<redacted>")
            .field("expires", &self.expires)
            .field("account", &self.account)
            .finish()
    }
}

/// Mutable authentication state: seen nonces and issued STS credentials.
#[derive(Debug, Default)]
pub struct AuthState {
    nonces: HashMap<String, Timestamp>,
    pub sts: HashMap<String, StsCredential>,
    last_prune: Option<Timestamp>,
}

impl AuthState {
    /// Forget nonces and credentials past the window, at most every 10 seconds.
    fn prune(&mut self, now: Timestamp) {
        if self
            .last_prune
            .is_some_and(|t| t <= now && add(t, Duration::from_secs(10)) > now)
        {
            return;
        }
        self.last_prune = Some(now);
        self.nonces.retain(|_, seen| add(*seen, DATE_WINDOW) >= now);
        self.sts.retain(|_, c| add(c.expires, DATE_WINDOW) >= now);
    }
}

/// What the signature covers, taken from the request as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path exactly as sent (still percent-encoded).
    pub raw_path: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// Headers as received.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Check everything about the signature; on success, the access key id that signed.
pub fn verify(
    keys: &HashMap<String, String>,
    state: &mut AuthState,
    req: &SignedRequest<'_>,
    now: Timestamp,
) -> ApiResult<String> {
    let Some(auth) = req.header("authorization") else {
        return Err(ApiError::bad(
            "MissingAuthorization",
            "The Authorization header is required.",
        ));
    };
    let Some(parsed) = sign::parse_authorization(auth) else {
        return Err(ApiError::bad(
            "IncompleteSignature",
            "The Authorization header is malformed: expected ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..",
        ));
    };
    for required in [
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
    ] {
        if req.header(required).is_none() {
            return Err(ApiError::bad(
                "IncompleteSignature",
                format!("The header {required} is required."),
            ));
        }
    }
    // Every header the gateway relies on must be covered by the signature: host and the
    // x-acs-* ones. Not content-type: HTTP libraries may add it after signing (the official
    // SDK's aiohttp variant sends an unsigned content-type on body-less requests).
    let mut must_sign: Vec<String> = req
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| n == "host" || n.starts_with("x-acs-"))
        .collect();
    must_sign.sort();
    must_sign.dedup();
    if let Some(missing) = must_sign
        .iter()
        .find(|n| !parsed.signed_headers.contains(n))
    {
        return Err(ApiError::bad(
            "IncompleteSignature",
            format!("The header {missing} is sent but not listed in SignedHeaders."),
        ));
    }
    if let Some(absent) = parsed
        .signed_headers
        .iter()
        .find(|n| req.header(n).is_none())
    {
        return Err(ApiError::bad(
            "IncompleteSignature",
            format!("The signed header {absent} is not in the request."),
        ));
    }

    let claimed_hash = req.header("x-acs-content-sha256").unwrap_or_default();
    let body_hash = sign::sha256_hex(req.body);
    if !claimed_hash.eq_ignore_ascii_case(&body_hash) {
        return Err(ApiError::bad(
            "SignatureDoesNotMatch",
            "The x-acs-content-sha256 header does not match the SHA-256 of the request body.",
        ));
    }

    let date = req.header("x-acs-date").unwrap_or_default();
    let Some(sent_at) = parse_iso_time(date) else {
        return Err(ApiError::bad(
            "InvalidTimeStamp.Format",
            format!(
                "Specified time stamp or date value {date:?} is not well formatted (yyyy-MM-ddTHH:mm:ssZ)."
            ),
        ));
    };
    if add(sent_at, DATE_WINDOW) < now || add(now, DATE_WINDOW) < sent_at {
        return Err(ApiError::bad(
            "InvalidTimeStamp.Expired",
            format!(
                "Specified time stamp or date value is expired or too far in the future: {date}."
            ),
        ));
    }

    state.prune(now);
    let secret = if let Some(secret) = keys.get(&parsed.access_key_id) {
        secret.clone()
    } else if let Some(cred) = state.sts.get(&parsed.access_key_id) {
        match req.header("x-acs-security-token") {
            None => {
                return Err(ApiError::bad(
                    "InvalidSecurityToken.MismatchWithAccessKey",
                    "This access key requires x-acs-security-token.",
                ));
            }
            Some(token) if !sign::signatures_equal(token, &cred.token) => {
                return Err(ApiError::bad(
                    "InvalidSecurityToken.MismatchWithAccessKey",
                    "The security token does not belong to this access key.",
                ));
            }
            Some(_) if cred.expires < now => {
                return Err(ApiError::bad(
                    "InvalidSecurityToken.Expired",
                    "The security token has expired.",
                ));
            }
            Some(_) => cred.secret.clone(),
        }
    } else if req.header("x-acs-security-token").is_some() {
        return Err(ApiError::bad(
            "InvalidSecurityToken.Malformed",
            "The security token is not valid.",
        ));
    } else {
        return Err(ApiError::not_found(
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    };

    let input = sign::CanonicalInput {
        method: req.method,
        canonical_uri: req.raw_path,
        query: req.query,
        headers: req.headers,
        signed_headers: &parsed.signed_headers,
        hashed_payload: claimed_hash,
    };
    let (canonical, _) = sign::canonical_request(&input);
    let to_sign = sign::string_to_sign(&canonical);
    let expected = sign::hmac_sha256_hex(secret.as_bytes(), to_sign.as_bytes());
    if !sign::signatures_equal(&expected, &parsed.signature.to_ascii_lowercase()) {
        return Err(ApiError::bad(
            "SignatureDoesNotMatch",
            format!(
                "Specified signature does not match our calculation. server string to sign is:{}",
                to_sign.replace('\n', "\\n")
            ),
        ));
    }

    let nonce = req.header("x-acs-signature-nonce").unwrap_or_default();
    if nonce.is_empty() {
        return Err(ApiError::bad(
            "IncompleteSignature",
            "The header x-acs-signature-nonce is empty.",
        ));
    }
    if state.nonces.contains_key(nonce) {
        return Err(ApiError::bad(
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    state.nonces.insert(nonce.to_string(), now);
    Ok(parsed.access_key_id)
}

/// The account a static access key belongs to: 16 digits derived from the key id, so
/// that each key pair the simulator accepts is its own account, the same on every run.
pub fn account_of_key(access_key_id: &str) -> String {
    let digest = sign::sha256_hex(access_key_id.as_bytes());
    let n = u64::from_str_radix(&digest[..15], 16).unwrap_or(0) % 1_000_000_000_000_000;
    format!("1{n:015}")
}

/// The account of a key that [`verify`] accepted: its own for a configured key, the
/// assumed role's for STS credentials.
pub fn account_of(state: &AuthState, access_key_id: &str) -> String {
    match state.sts.get(access_key_id) {
        Some(c) => c.account.clone(),
        None => account_of_key(access_key_id),
    }
}

/// Random hex of `n` bytes.
pub fn random_hex(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    struct Req {
        headers: Vec<(String, String)>,
        query: Vec<(String, String)>,
        body: Vec<u8>,
    }

    fn signed(now: Timestamp, nonce: &str, body: &[u8], secret: &str) -> Req {
        let query = vec![s("a", "b c")];
        let mut headers = vec![
            s("host", "127.0.0.1:1"),
            s("x-acs-action", "GetRoutine"),
            s("x-acs-version", "2024-09-10"),
            s("x-acs-date", &super::super::clock::iso_time(now)),
            s("x-acs-signature-nonce", nonce),
            s("x-acs-content-sha256", &sign::sha256_hex(body)),
            s("user-agent", "test"),
        ];
        let names = sign::default_signed_names(&headers);
        let input = sign::CanonicalInput {
            method: "POST",
            canonical_uri: "/",
            query: &query,
            headers: &headers,
            signed_headers: &names,
            hashed_payload: &sign::sha256_hex(body),
        };
        let auth = sign::authorization("testid", secret, &input);
        headers.push(s("Authorization", &auth));
        Req {
            headers,
            query,
            body: body.to_vec(),
        }
    }

    fn check(r: &Req, st: &mut AuthState, now: Timestamp) -> ApiResult<String> {
        let keys = HashMap::from([("testid".to_string(), "testsecret".to_string())]);
        verify(
            &keys,
            st,
            &SignedRequest {
                method: "POST",
                raw_path: "/",
                query: &r.query,
                headers: &r.headers,
                body: &r.body,
            },
            now,
        )
    }

    #[test]
    fn accepts_good_and_rejects_replay_and_tampering() {
        let now: Timestamp = "2026-05-08T16:00:00Z".parse().unwrap();
        let mut st = AuthState::default();
        let r = signed(now, "n1", b"Name=x", "testsecret");
        assert_eq!(check(&r, &mut st, now).unwrap(), "testid");
        let err = check(&r, &mut st, now).unwrap_err();
        assert_eq!(err.code, "SignatureNonceUsed");

        let mut r = signed(now, "n2", b"Name=x", "testsecret");
        r.body = b"Name=y".to_vec();
        assert_eq!(
            check(&r, &mut st, now).unwrap_err().code,
            "SignatureDoesNotMatch"
        );

        let r = signed(now, "n3", b"", "wrong");
        assert_eq!(
            check(&r, &mut st, now).unwrap_err().code,
            "SignatureDoesNotMatch"
        );

        let r = signed(now, "n4", b"", "testsecret");
        let later = add(now, Duration::from_secs(16 * 60));
        assert_eq!(
            check(&r, &mut st, later).unwrap_err().code,
            "InvalidTimeStamp.Expired"
        );

        let mut r = signed(now, "n5", b"", "testsecret");
        r.headers.retain(|(n, _)| n != "Authorization");
        assert_eq!(
            check(&r, &mut st, now).unwrap_err().code,
            "MissingAuthorization"
        );

        let mut r = signed(now, "n6", b"", "testsecret");
        r.headers.push(s("x-acs-extra", "1"));
        assert_eq!(
            check(&r, &mut st, now).unwrap_err().code,
            "IncompleteSignature"
        );
    }

    #[test]
    fn garbage_authorization_never_panics() {
        let now: Timestamp = "2026-05-08T16:00:00Z".parse().unwrap();
        let mut st = AuthState::default();
        for auth in [
            "",
            "ACS3-HMAC-SHA256",
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=,Signature=zz",
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;x-nope,Signature=\u{1F600}",
            "\u{0}\u{0}",
        ] {
            let r = Req {
                headers: vec![
                    s("authorization", auth),
                    s("x-acs-date", "2026-05-08T16:00:00Z"),
                    s("x-acs-signature-nonce", "x"),
                    s("x-acs-content-sha256", sign::EMPTY_SHA256),
                ],
                query: vec![],
                body: vec![],
            };
            let err = check(&r, &mut st, now).unwrap_err();
            assert!(err.status.is_client_error(), "{auth:?}: {err:?}");
        }
    }
}
