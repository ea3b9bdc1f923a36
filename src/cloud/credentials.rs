//! Alibaba Cloud credentials. `Debug` never prints a secret.

use std::collections::BTreeMap;
use std::fmt;

use super::error::CloudError;

/// Secret keys holding the credentials in a Kubernetes Secret's `data`.
pub const SECRET_KEY_ACCESS_KEY_ID: &str = "accessKeyId";
pub const SECRET_KEY_ACCESS_KEY_SECRET: &str = "accessKeySecret";
pub const SECRET_KEY_SECURITY_TOKEN: &str = "securityToken";

/// Bytes of one Secret value (`k8s_openapi::ByteString`, `Vec<u8>`, `String`).
pub trait SecretValue {
    fn secret_bytes(&self) -> &[u8];
}

impl SecretValue for k8s_openapi::ByteString {
    fn secret_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl SecretValue for Vec<u8> {
    fn secret_bytes(&self) -> &[u8] {
        self
    }
}

impl SecretValue for String {
    fn secret_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// An access key pair, with an STS token when temporary.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: Option<String>,
}

impl Credentials {
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: None,
        }
    }

    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }

    /// Read credentials from a Kubernetes Secret's `data`: `accessKeyId`,
    /// `accessKeySecret` and optionally `securityToken` (surrounding whitespace, such as
    /// the newline of `echo key | base64`, is dropped).
    ///
    /// Errors name the key at fault, never a value.
    pub fn from_secret_data<V: SecretValue>(
        data: &BTreeMap<String, V>,
    ) -> Result<Credentials, CloudError> {
        fn get<V: SecretValue>(
            data: &BTreeMap<String, V>,
            key: &str,
        ) -> Result<Option<String>, CloudError> {
            let Some(value) = data.get(key) else {
                return Ok(None);
            };
            let text = std::str::from_utf8(value.secret_bytes()).map_err(|_| {
                CloudError::Credentials(format!("Secret key {key:?} is not valid UTF-8"))
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(CloudError::Credentials(format!(
                    "Secret key {key:?} is empty"
                )));
            }
            Ok(Some(text.to_string()))
        }
        let required = |key: &str| {
            get(data, key)?
                .ok_or_else(|| CloudError::Credentials(format!("Secret has no key {key:?}")))
        };
        let id = required(SECRET_KEY_ACCESS_KEY_ID)?;
        let secret = required(SECRET_KEY_ACCESS_KEY_SECRET)?;
        let mut creds = Credentials::new(id, secret);
        creds.security_token = get(data, SECRET_KEY_SECURITY_TOKEN)?;
        Ok(creds)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials::new("AKID", "very-secret").with_security_token("sts-token-value");
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(!shown.contains("sts-token-value"), "{shown}");
    }

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, k8s_openapi::ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
            .collect()
    }

    #[test]
    fn secret_data_with_and_without_token() {
        let c = Credentials::from_secret_data(&data(&[
            ("accessKeyId", b"LTAI5t\n"),
            ("accessKeySecret", b"s3cr3t"),
        ]))
        .unwrap();
        assert_eq!(c, Credentials::new("LTAI5t", "s3cr3t"));
        let c = Credentials::from_secret_data(&data(&[
            ("accessKeyId", b"STS.id"),
            ("accessKeySecret", b"s3cr3t"),
            ("securityToken", b"tok"),
        ]))
        .unwrap();
        assert_eq!(c.security_token.as_deref(), Some("tok"));
        let mut plain = BTreeMap::new();
        plain.insert("accessKeyId".to_string(), "a".to_string());
        plain.insert("accessKeySecret".to_string(), "b".to_string());
        assert_eq!(
            Credentials::from_secret_data(&plain).unwrap(),
            Credentials::new("a", "b")
        );
    }

    #[test]
    fn secret_errors_name_the_key_never_the_value() {
        let cases = [
            (
                data(&[("accessKeySecret", b"hunter2-secret")]),
                "accessKeyId",
            ),
            (data(&[("accessKeyId", b"hunter2-id")]), "accessKeySecret"),
            (
                data(&[("accessKeyId", b"hunter2-id"), ("accessKeySecret", b"  ")]),
                "accessKeySecret",
            ),
            (
                data(&[
                    ("accessKeyId", b"hunter2-id"),
                    ("accessKeySecret", b"\xff\xfehunter2"),
                ]),
                "accessKeySecret",
            ),
        ];
        for (d, key) in cases {
            let err = Credentials::from_secret_data(&d).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(matches!(err, CloudError::Credentials(_)), "{shown}");
            assert!(shown.contains(key), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
