//! The ACS3-HMAC-SHA256 request signature (Alibaba Cloud signature V3).
//!
//! Used by the client to sign and by the simulator to verify, so both sides build the
//! canonical request with the same code. Reproduces the published test vectors (see tests).

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";
/// SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986 unreserved characters stay; everything else is `%XX` (space is `%20`).
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encode one query name or value, or one path segment.
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex HMAC-SHA256.
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any size"),
    };
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// Is this header signed by default? (`host`, `content-type` and every `x-acs-*`.)
pub fn is_signed_by_default(lower_name: &str) -> bool {
    lower_name == "host" || lower_name == "content-type" || lower_name.starts_with("x-acs-")
}

/// The canonical query string of decoded `(name, value)` pairs: sorted by name,
/// RFC 3986-encoded, `k=v` joined by `&`.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&String, &String)> = params.iter().map(|(k, v)| (k, v)).collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Canonical headers and the `SignedHeaders` value for the given names.
///
/// `headers` are `(name, value)` as sent, in order; names match case-insensitively and
/// repeated headers are joined with `,` in order. `signed` are lowercase names.
pub fn canonical_headers(headers: &[(String, String)], signed: &[String]) -> (String, String) {
    let mut names: Vec<String> = signed.iter().map(|n| n.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    let mut out = String::new();
    for name in &names {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    (out, names.join(";"))
}

/// Names of the headers signed by default among `headers`, lowercase, sorted, unique.
pub fn default_signed_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| is_signed_by_default(n))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Everything the signature covers.
#[derive(Debug, Clone)]
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    /// The percent-encoded path (`/` for RPC).
    pub canonical_uri: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// Headers as sent.
    pub headers: &'a [(String, String)],
    /// Lowercase names of the signed headers.
    pub signed_headers: &'a [String],
    /// Lowercase hex SHA-256 of the body (the `x-acs-content-sha256` value).
    pub hashed_payload: &'a str,
}

/// The canonical request and the `SignedHeaders` value.
pub fn canonical_request(input: &CanonicalInput<'_>) -> (String, String) {
    let (headers, signed) = canonical_headers(input.headers, input.signed_headers);
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        input.canonical_uri,
        canonical_query(input.query),
        headers,
        signed,
        input.hashed_payload
    );
    (canonical, signed)
}

/// `ACS3-HMAC-SHA256\n` + hex(sha256(canonical request)).
pub fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Sign and return the `Authorization` header value.
pub fn authorization(
    access_key_id: &str,
    access_key_secret: &str,
    input: &CanonicalInput<'_>,
) -> String {
    let (canonical, signed) = canonical_request(input);
    let signature = hmac_sha256_hex(
        access_key_secret.as_bytes(),
        string_to_sign(&canonical).as_bytes(),
    );
    format!("{ALGORITHM} Credential={access_key_id},SignedHeaders={signed},Signature={signature}")
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parse `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.
pub fn parse_authorization(value: &str) -> Option<ParsedAuthorization> {
    let rest = value.trim().strip_prefix(ALGORITHM)?.trim_start();
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => cred = Some(v.trim().to_string()),
            "SignedHeaders" => signed = Some(v.trim().to_string()),
            "Signature" => sig = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let signed_headers: Vec<String> = signed?
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let access_key_id = cred.filter(|c| !c.is_empty())?;
    let signature = sig.filter(|s| !s.is_empty())?;
    Some(ParsedAuthorization {
        access_key_id,
        signed_headers,
        signature,
    })
}

/// Constant-time comparison of two hex signatures.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    /// Vector A: the public V3 signature documentation page.
    #[test]
    fn vector_a_public_documentation() {
        let query = vec![
            s(
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            s("RegionId", "cn-shanghai"),
        ];
        let headers = vec![
            s("host", "ecs.cn-shanghai.aliyuncs.com"),
            s("x-acs-action", "RunInstances"),
            s("x-acs-version", "2014-05-26"),
            s("x-acs-date", "2023-10-26T10:22:32Z"),
            s("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            s("x-acs-content-sha256", EMPTY_SHA256),
        ];
        let signed = default_signed_names(&headers);
        let input = CanonicalInput {
            method: "POST",
            canonical_uri: "/",
            query: &query,
            headers: &headers,
            signed_headers: &signed,
            hashed_payload: EMPTY_SHA256,
        };
        let (canonical, signed_value) = canonical_request(&input);
        assert_eq!(
            canonical,
            "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
             host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n\
             x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
             x-acs-version:2014-05-26\n\n\
             host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed_value,
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let auth = authorization("YourAccessKeyId", "YourAccessKeySecret", &input);
        assert_eq!(
            auth,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    /// Vector B: the official SDK utility's unit test (one header sent twice).
    #[test]
    fn vector_b_sdk_utility() {
        let payload = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23";
        let query = vec![s("test", "ok"), s("empty", "")];
        let headers = vec![s("x-acs-test", "http"), s("x-acs-TEST", "https")];
        let signed = default_signed_names(&headers);
        let input = CanonicalInput {
            method: "GET",
            canonical_uri: "/",
            query: &query,
            headers: &headers,
            signed_headers: &signed,
            hashed_payload: payload,
        };
        let (canonical, _) = canonical_request(&input);
        assert_eq!(
            canonical,
            format!("GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n{payload}")
        );
        assert_eq!(
            authorization("acesskey", "secret", &input),
            "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,\
             Signature=d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
        );
    }

    #[test]
    fn rfc3986_encoding() {
        assert_eq!(percent_encode("a b*c~d/e"), "a%20b%2Ac~d%2Fe");
        assert_eq!(percent_encode("[\"jiangsu\"]"), "%5B%22jiangsu%22%5D");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn authorization_round_trip_and_garbage() {
        let p = parse_authorization(
            "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host;x-acs-date,Signature=abc",
        );
        assert_eq!(
            p,
            Some(ParsedAuthorization {
                access_key_id: "ak".into(),
                signed_headers: vec!["host".into(), "x-acs-date".into()],
                signature: "abc".into()
            })
        );
        for bad in [
            "",
            "Bearer x",
            "ACS3-HMAC-SHA256",
            "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=a",
            "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host",
            "ACS3-HMAC-SHA256 garbage",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad:?}");
        }
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }
}
