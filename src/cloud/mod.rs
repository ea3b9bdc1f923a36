//! The cloud side: typed EAS and ESA calls behind one trait.
//!
//! [`CloudApi`] is the seam between the controller and the cloud. The real
//! implementation, [`CloudClient`], signs requests (V3), retries transient failures with
//! jittered backoff, shares a rate limiter, and traces and counts every call;
//! [`FakeCloud`] is the in-memory test double.
//!
//! Layout: each module imports only modules listed before it (never one listed after,
//! and never through this module's re-exports), so no two modules import each other:
//!
//! | module | holds |
//! |---|---|
//! | [`error`], [`model`], [`sign`], [`config`], [`metrics`] | errors and their classification, wire types, V3 signing, client settings, call metrics |
//! | [`credentials`], [`endpoint`], [`ratelimit`], [`retry`] | access keys, endpoints per product and region, per-API rate limits, backoff |
//! | [`request`] | building each call ([`request::requests`]) and signing it |
//! | [`response`] | error answers into [`CloudError`], success bodies into the model |
//! | [`provider`] | the operator's own credentials (static keys, RRSA via STS) |
//! | [`api`] | the [`CloudApi`] trait |
//! | [`client`] | [`CloudClient`]: transport, retries, rate limit, metrics, tracing |
//! | [`fake`] | [`FakeCloud`]: the in-memory [`CloudApi`] for tests |
//!
//! Wiring it up in the operator (environment read once, at start-up):
//!
//! ```no_run
//! # async fn wire() -> Result<(), alicloud_rollouts::cloud::CloudError> {
//! use alicloud_rollouts::cloud::{ClientConfig, CloudApi, CloudClient, Metrics};
//! let metrics = Metrics::new(); // serve metrics.encode() on /metrics
//! let client = CloudClient::from_environment(ClientConfig::default(), metrics)?;
//! // Per resource, with the credentials of its Secret:
//! // let api = client.with_credentials(Credentials::from_secret_data(&secret.data)?);
//! let svc = client.describe_service("cn-shanghai", "llm-chat").await?;
//! # let _ = svc; Ok(()) }
//! ```
//!
//! Retries cover transient and throttled errors of reads, and of mutations only when the
//! cloud surely did not act (throttled, refused before it was read, no connection). A
//! mutation that may have taken effect (a timeout, a dropped connection, a 5xx, an
//! unreadable answer) fails with [`CloudError::OutcomeUnknown`] and is not sent again by the
//! client: the controller records it as in flight and reads the cloud before deciding.
//! Every attempt is bounded in time (headers and body) and in memory
//! (`--cloud-max-response-bytes`); `x-acs-retry-after` is honoured up to
//! [`response::MAX_RETRY_AFTER`].

pub mod api;
pub mod client;
pub mod config;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod fake;
pub mod metrics;
pub mod model;
pub mod provider;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod retry;
pub mod sign;

pub use api::CloudApi;
pub use client::CloudClient;
pub use config::ClientConfig;
pub use credentials::Credentials;
pub use endpoint::Product;
pub use error::{CloudError, CloudResult, ErrorKind};
pub use fake::{FakeCall, FakeCloud};
pub use metrics::Metrics;
pub use provider::{CredentialsEnv, CredentialsProvider, RrsaProvider, StaticProvider};

#[cfg(test)]
mod layering {
    /// Every module, in the order of the layout table: a module may use only those before it.
    const LAYERS: [(&str, &str); 15] = [
        ("error", include_str!("error.rs")),
        ("model", include_str!("model.rs")),
        ("sign", include_str!("sign.rs")),
        ("config", include_str!("config.rs")),
        ("metrics", include_str!("metrics.rs")),
        ("credentials", include_str!("credentials.rs")),
        ("endpoint", include_str!("endpoint.rs")),
        ("ratelimit", include_str!("ratelimit.rs")),
        ("retry", include_str!("retry.rs")),
        ("request", include_str!("request.rs")),
        ("response", include_str!("response.rs")),
        ("provider", include_str!("provider.rs")),
        ("api", include_str!("api.rs")),
        ("client", include_str!("client.rs")),
        ("fake", include_str!("fake.rs")),
    ];

    /// The sibling modules `source` names through `super::` or `crate::cloud::`, outside
    /// comments and its test module; `None` for a name that is not a module (an item
    /// reached through this module's re-exports).
    fn uses(source: &str) -> Vec<Option<&'static str>> {
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let mut found = Vec::new();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or_default();
            for prefix in ["super::", "crate::cloud::"] {
                for (at, _) in line.match_indices(prefix) {
                    let rest = &line[at + prefix.len()..];
                    let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                        let group = group.split('}').next().unwrap_or_default();
                        group.split(',').map(|n| n.trim()).collect()
                    } else {
                        vec![rest]
                    };
                    for name in names {
                        let name: String = name
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if name.is_empty() || name == "super" {
                            continue;
                        }
                        found.push(LAYERS.iter().map(|(m, _)| *m).find(|m| *m == name));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn modules_use_only_modules_before_them() {
        for (i, (module, source)) in LAYERS.iter().enumerate() {
            // `request`'s inner `requests` module may use its parent's items.
            let own = match *module {
                "request" => source.split("pub mod requests").next().unwrap_or_default(),
                _ => source,
            };
            assert!(
                uses(own).iter().all(Option::is_some),
                "{module} uses an item through the cloud module's re-exports: name its module"
            );
            for used in uses(source).into_iter().flatten() {
                let j = LAYERS.iter().position(|(m, _)| *m == used).unwrap();
                assert!(
                    j < i || used == *module,
                    "{module} uses {used}, listed after it: a cycle in the making"
                );
            }
        }
    }

    #[test]
    fn the_parser_finds_what_a_module_uses() {
        assert_eq!(
            uses("use super::client::parse_error_response; // super::fake\n"),
            [Some("client")]
        );
        assert_eq!(
            uses("use crate::cloud::{error::CloudError, sign};"),
            [Some("error"), Some("sign")]
        );
        assert_eq!(uses("use super::CloudApi;"), [None]);
    }
}
