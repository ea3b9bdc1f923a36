//! Where the operator's own credentials come from: static keys from the environment, or
//! RRSA (an OIDC token exchanged with STS `AssumeRoleWithOIDC`, cached and refreshed).
//!
//! The environment is read once, by [`CredentialsEnv::from_env`], at start-up.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Deserialize;

use super::config::DEFAULT_MAX_RESPONSE_BYTES;
use super::credentials::Credentials;
use super::endpoint::{Endpoint, default_sts_endpoint};
use super::error::{CloudError, CloudResult};
use super::response::{parse_error_response, read_body};

pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";
pub const ENV_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
pub const ENV_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
pub const ENV_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
pub const ENV_ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
pub const ENV_STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";
pub const ENV_VPC_ENDPOINT_ENABLED: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";
pub const ENV_STS_ENDPOINT: &str = "ALIBABA_CLOUD_STS_ENDPOINT";

/// STS credentials are refreshed this long before they expire (as the official SDKs do).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// Lifetime asked of STS.
pub const DEFAULT_SESSION_DURATION: Duration = Duration::from_secs(3600);
const DEFAULT_SESSION_NAME: &str = "alicloud-rollouts";

/// Something that hands out credentials for each call.
#[async_trait]
pub trait CredentialsProvider: Send + Sync + fmt::Debug {
    async fn credentials(&self) -> CloudResult<Credentials>;
}

/// Fixed credentials.
#[derive(Debug, Clone)]
pub struct StaticProvider(pub Credentials);

#[async_trait]
impl CredentialsProvider for StaticProvider {
    async fn credentials(&self) -> CloudResult<Credentials> {
        Ok(self.0.clone())
    }
}

/// No default credentials: every call must use `with_credentials` (e.g. from a Secret).
#[derive(Debug, Clone, Default)]
pub struct NoCredentials;

#[async_trait]
impl CredentialsProvider for NoCredentials {
    async fn credentials(&self) -> CloudResult<Credentials> {
        Err(CloudError::Credentials(format!(
            "no default credentials: set {ENV_ACCESS_KEY_ID}/{ENV_ACCESS_KEY_SECRET}, \
             configure RRSA ({ENV_ROLE_ARN}, {ENV_OIDC_PROVIDER_ARN}, {ENV_OIDC_TOKEN_FILE}), \
             or reference a Secret"
        )))
    }
}

/// RRSA settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrsaConfig {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    pub oidc_token_file: PathBuf,
    pub role_session_name: String,
    pub sts_region: Option<String>,
    pub vpc_endpoint: bool,
    pub sts_endpoint: Option<String>,
    pub duration: Duration,
}

/// The credential settings found in the environment, read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialsEnv {
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET` (+ `_SECURITY_TOKEN`).
    pub static_keys: Option<Credentials>,
    pub rrsa: Option<RrsaConfig>,
}

impl CredentialsEnv {
    /// Read the process environment.
    pub fn from_env() -> CloudResult<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read settings through `lookup` (the environment, or a map in tests). Empty values
    /// count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> CloudResult<Self> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let static_keys = match (get(ENV_ACCESS_KEY_ID), get(ENV_ACCESS_KEY_SECRET)) {
            (Some(id), Some(secret)) => {
                let mut c = Credentials::new(id, secret);
                c.security_token = get(ENV_SECURITY_TOKEN);
                Some(c)
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(CloudError::Credentials(format!(
                    "{ENV_ACCESS_KEY_ID} is set but {ENV_ACCESS_KEY_SECRET} is not"
                )));
            }
            (None, Some(_)) => {
                return Err(CloudError::Credentials(format!(
                    "{ENV_ACCESS_KEY_SECRET} is set but {ENV_ACCESS_KEY_ID} is not"
                )));
            }
        };
        let rrsa = match (
            get(ENV_ROLE_ARN),
            get(ENV_OIDC_PROVIDER_ARN),
            get(ENV_OIDC_TOKEN_FILE),
        ) {
            (Some(role_arn), Some(oidc_provider_arn), Some(file)) => Some(RrsaConfig {
                role_arn,
                oidc_provider_arn,
                oidc_token_file: PathBuf::from(file),
                role_session_name: get(ENV_ROLE_SESSION_NAME)
                    .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string()),
                sts_region: get(ENV_STS_REGION),
                vpc_endpoint: get(ENV_VPC_ENDPOINT_ENABLED)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                sts_endpoint: get(ENV_STS_ENDPOINT),
                duration: DEFAULT_SESSION_DURATION,
            }),
            (None, None, None) => None,
            _ => {
                return Err(CloudError::Credentials(format!(
                    "RRSA needs all of {ENV_ROLE_ARN}, {ENV_OIDC_PROVIDER_ARN} and {ENV_OIDC_TOKEN_FILE}"
                )));
            }
        };
        Ok(CredentialsEnv { static_keys, rrsa })
    }

    /// The provider the official SDKs would pick: static keys first, then RRSA, else none.
    /// `sts_override` (the `--sts-endpoint` flag) wins over `ALIBABA_CLOUD_STS_ENDPOINT`.
    pub fn provider(
        &self,
        http: reqwest::Client,
        sts_override: Option<&str>,
        timeout: Duration,
    ) -> CloudResult<Arc<dyn CredentialsProvider>> {
        if let Some(c) = &self.static_keys {
            return Ok(Arc::new(StaticProvider(c.clone())));
        }
        if let Some(rrsa) = &self.rrsa {
            let endpoint = match sts_override.or(rrsa.sts_endpoint.as_deref()) {
                Some(e) => Endpoint::parse(e)?,
                None => default_sts_endpoint(rrsa.sts_region.as_deref(), rrsa.vpc_endpoint)?,
            };
            return Ok(Arc::new(RrsaProvider::new(
                rrsa.clone(),
                endpoint,
                http,
                timeout,
            )));
        }
        Ok(Arc::new(NoCredentials))
    }
}

/// Credentials with the instant they expire.
#[derive(Clone)]
pub struct Expiring {
    pub credentials: Credentials,
    pub expiration: Timestamp,
}

type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// One exchange for fresh temporary credentials (an STS call), started anew each time.
pub type Exchange =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, CloudResult<Expiring>> + Send + Sync>;

/// Temporary credentials from an [`Exchange`], cached and refreshed [`REFRESH_MARGIN`]
/// before they expire: RRSA ([`RrsaProvider`]) and the roles CloudAccounts assume.
///
/// A refresh is single flight: one exchange at a time, whatever the number of callers,
/// and bounded by the timeout as a whole. While the cached credentials are still valid
/// (inside the margin), callers keep using them and never wait on the exchange; only
/// without valid credentials (the first call, or after they expired) do callers wait for
/// it, at most the timeout. A failed refresh is tried again after [`REFRESH_RETRY`].
#[derive(Clone)]
pub struct RefreshingProvider {
    inner: Arc<RefreshInner>,
}

struct RefreshInner {
    /// What the credentials are for (a role ARN), for logs.
    label: String,
    exchange: Exchange,
    timeout: Duration,
    clock: Clock,
    state: std::sync::Mutex<RefreshState>,
}

type Refresh = futures::future::Shared<futures::future::BoxFuture<'static, CloudResult<Expiring>>>;

#[derive(Default)]
struct RefreshState {
    cached: Option<Expiring>,
    /// The exchange in flight, shared by every caller.
    running: Option<Refresh>,
    /// After a failed refresh, no new one before this instant (the cached credentials
    /// are still in use).
    not_before: Option<Timestamp>,
}

/// After a failed refresh while the cached credentials are still valid, wait this long
/// before the next attempt (rather than one exchange per call).
pub const REFRESH_RETRY: Duration = Duration::from_secs(10);

impl fmt::Debug for RefreshingProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshingProvider")
            .field("for", &self.inner.label)
            .finish_non_exhaustive()
    }
}

impl RefreshingProvider {
    /// Credentials from `exchange`, each exchange bounded by `timeout`.
    pub fn new(label: impl Into<String>, exchange: Exchange, timeout: Duration) -> Self {
        RefreshingProvider {
            inner: Arc::new(RefreshInner {
                label: label.into(),
                exchange,
                timeout,
                clock: Arc::new(Timestamp::now),
                state: Default::default(),
            }),
        }
    }

    /// Use another clock (tests). Call before the provider is used or cloned.
    pub fn with_clock(self, clock: Clock) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.clock = clock;
                RefreshingProvider {
                    inner: Arc::new(inner),
                }
            }
            Err(shared) => RefreshingProvider { inner: shared },
        }
    }
}

/// RRSA: exchanges the pod's OIDC token for STS credentials (a [`RefreshingProvider`]),
/// reading the token file again each time (the kubelet rotates it).
pub struct RrsaProvider {
    config: RrsaConfig,
    endpoint: Endpoint,
    http: reqwest::Client,
    timeout: Duration,
    cache: RefreshingProvider,
}

impl fmt::Debug for RrsaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RrsaProvider")
            .field("role_arn", &self.config.role_arn)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsAnswer {
    credentials: Option<StsCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: Option<String>,
    access_key_secret: Option<String>,
    security_token: Option<String>,
    expiration: Option<String>,
}

/// What RRSA's exchange needs.
struct RrsaExchange {
    config: RrsaConfig,
    endpoint: Endpoint,
    http: reqwest::Client,
    max_body: usize,
    clock: Clock,
}

impl RrsaProvider {
    pub fn new(
        config: RrsaConfig,
        endpoint: Endpoint,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        Self::build(config, endpoint, http, timeout, Arc::new(Timestamp::now))
    }

    fn build(
        config: RrsaConfig,
        endpoint: Endpoint,
        http: reqwest::Client,
        timeout: Duration,
        clock: Clock,
    ) -> Self {
        let exchange = Arc::new(RrsaExchange {
            config: config.clone(),
            endpoint: endpoint.clone(),
            http: http.clone(),
            max_body: DEFAULT_MAX_RESPONSE_BYTES,
            clock: clock.clone(),
        });
        let run: Exchange = Arc::new(move || {
            let exchange = exchange.clone();
            Box::pin(async move { exchange.exchange_unbounded().await })
        });
        RrsaProvider {
            cache: RefreshingProvider::new(config.role_arn.clone(), run, timeout).with_clock(clock),
            config,
            endpoint,
            http,
            timeout,
        }
    }

    /// Use another clock (tests). Call before the provider is used.
    pub fn with_clock(self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self::build(
            self.config,
            self.endpoint,
            self.http,
            self.timeout,
            Arc::new(clock),
        )
    }
}

#[async_trait]
impl CredentialsProvider for RrsaProvider {
    async fn credentials(&self) -> CloudResult<Credentials> {
        self.cache.credentials().await
    }
}

impl RrsaExchange {
    async fn exchange_unbounded(&self) -> CloudResult<Expiring> {
        let path = &self.config.oidc_token_file;
        let token = tokio::fs::read_to_string(path).await.map_err(|e| {
            CloudError::Credentials(format!(
                "cannot read OIDC token file {}: {e}",
                path.display()
            ))
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CloudError::Credentials(format!(
                "OIDC token file {} is empty",
                path.display()
            )));
        }
        let now = (self.clock)();
        let query = [
            ("Action", "AssumeRoleWithOIDC".to_string()),
            ("Format", "JSON".to_string()),
            ("Version", "2015-04-01".to_string()),
            ("Timestamp", now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ];
        let form = [
            ("RoleArn", self.config.role_arn.clone()),
            ("OIDCProviderArn", self.config.oidc_provider_arn.clone()),
            ("OIDCToken", token.to_string()),
            ("RoleSessionName", self.config.role_session_name.clone()),
            (
                "DurationSeconds",
                self.config.duration.as_secs().to_string(),
            ),
        ];
        let url = format!("{}/", self.endpoint.base_url());
        let sent = self.http.post(&url).query(&query).form(&form).send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(CloudError::Transport(format!("STS: {}", e.without_url()))),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_body(response, self.max_body).await?;
        if status >= 300 {
            return Err(parse_error_response(status, &headers, &body));
        }
        let answer: StsAnswer = serde_json::from_slice(&body)
            .map_err(|e| CloudError::Decode(format!("STS AssumeRoleWithOIDC answer: {e}")))?;
        let missing = || {
            CloudError::Credentials("STS AssumeRoleWithOIDC answer lacks Credentials".to_string())
        };
        let c = answer.credentials.ok_or_else(missing)?;
        let (Some(id), Some(secret), Some(token), Some(expiration)) = (
            c.access_key_id,
            c.access_key_secret,
            c.security_token,
            c.expiration,
        ) else {
            return Err(missing());
        };
        let expiration: Timestamp = expiration
            .parse()
            .map_err(|e| CloudError::Decode(format!("STS Expiration {expiration:?}: {e}")))?;
        tracing::debug!(role_arn = %self.config.role_arn, %expiration, "RRSA credentials refreshed");
        Ok(Expiring {
            credentials: Credentials::new(id, secret).with_security_token(token),
            expiration,
        })
    }
}

fn stale_at(expiration: Timestamp) -> Timestamp {
    let margin = jiff::SignedDuration::from_secs(REFRESH_MARGIN.as_secs() as i64);
    expiration.checked_sub(margin).unwrap_or(expiration)
}

#[async_trait]
impl CredentialsProvider for RefreshingProvider {
    async fn credentials(&self) -> CloudResult<Credentials> {
        let inner = &self.inner;
        let now = (inner.clock)();
        let (refresh, usable) = {
            let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = state
                .cached
                .as_ref()
                .filter(|c| now < stale_at(c.expiration))
            {
                return Ok(c.credentials.clone());
            }
            let usable = state
                .cached
                .as_ref()
                .filter(|c| now < c.expiration)
                .map(|c| c.credentials.clone());
            let resting = state.not_before.is_some_and(|t| now < t);
            match (&state.running, usable) {
                // Due for refresh but a recent one failed: keep the valid ones a while.
                (None, Some(creds)) if resting => return Ok(creds),
                (Some(running), usable) => (running.clone(), usable),
                (None, usable) => {
                    let refresh = RefreshInner::start_refresh(inner.clone());
                    state.running = Some(refresh.clone());
                    (refresh, usable)
                }
            }
        };
        if let Some(creds) = usable {
            // Still valid: the refresh runs on its own (spawned when started).
            return Ok(creds);
        }
        match tokio::time::timeout(inner.timeout, refresh).await {
            Ok(result) => result.map(|c| c.credentials),
            Err(_) => Err(CloudError::Timeout(inner.timeout)),
        }
    }
}

impl RefreshInner {
    /// Start the one exchange every caller shares: it runs on its own task (so a caller
    /// that stops waiting does not stop it) and stores its result.
    fn start_refresh(inner: Arc<RefreshInner>) -> Refresh {
        use futures::FutureExt;
        let task = async move {
            let result = match tokio::time::timeout(inner.timeout, (inner.exchange)()).await {
                Ok(result) => result,
                Err(_) => Err(CloudError::Timeout(inner.timeout)),
            };
            let now = (inner.clock)();
            let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            state.running = None;
            match &result {
                Ok(fresh) => {
                    state.cached = Some(fresh.clone());
                    state.not_before = None;
                }
                Err(e) => {
                    let retry = jiff::SignedDuration::from_secs(REFRESH_RETRY.as_secs() as i64);
                    state.not_before = now.checked_add(retry).ok();
                    if state.cached.as_ref().is_some_and(|c| now < c.expiration) {
                        tracing::warn!(error = %e, role = %inner.label, "STS refresh failed; using the current credentials until they expire");
                    }
                }
            }
            result
        }
        .boxed()
        .shared();
        tokio::spawn(task.clone());
        task
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_static_keys_and_token() {
        let env = CredentialsEnv::from_lookup(lookup(&[
            (ENV_ACCESS_KEY_ID, "id"),
            (ENV_ACCESS_KEY_SECRET, "secret-value"),
            (ENV_SECURITY_TOKEN, "token-value"),
        ]))
        .unwrap();
        assert_eq!(
            env.static_keys,
            Some(Credentials::new("id", "secret-value").with_security_token("token-value"))
        );
        assert_eq!(env.rrsa, None);
        let shown = format!("{env:?}");
        assert!(
            !shown.contains("secret-value") && !shown.contains("token-value"),
            "{shown}"
        );

        let err = CredentialsEnv::from_lookup(lookup(&[(ENV_ACCESS_KEY_ID, "id")])).unwrap_err();
        assert!(err.to_string().contains(ENV_ACCESS_KEY_SECRET), "{err}");
        assert_eq!(
            CredentialsEnv::from_lookup(lookup(&[])).unwrap(),
            CredentialsEnv::default()
        );
    }

    #[test]
    fn env_rrsa() {
        let env = CredentialsEnv::from_lookup(lookup(&[
            (ENV_ROLE_ARN, "acs:ram::1:role/r"),
            (ENV_OIDC_PROVIDER_ARN, "acs:ram::1:oidc-provider/p"),
            (ENV_OIDC_TOKEN_FILE, "/var/run/token"),
            (ENV_STS_REGION, "cn-hangzhou"),
            (ENV_VPC_ENDPOINT_ENABLED, "TRUE"),
        ]))
        .unwrap();
        let rrsa = env.rrsa.unwrap();
        assert_eq!(rrsa.role_session_name, DEFAULT_SESSION_NAME);
        assert!(rrsa.vpc_endpoint);
        assert_eq!(rrsa.sts_region.as_deref(), Some("cn-hangzhou"));
        let err = CredentialsEnv::from_lookup(lookup(&[(ENV_ROLE_ARN, "r")])).unwrap_err();
        assert!(err.to_string().contains(ENV_OIDC_TOKEN_FILE), "{err}");
    }
}
