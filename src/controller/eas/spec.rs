//! An `EasServiceRolloutSpec` parsed into what the EAS planner consumes.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cloud::model::{BatchConfig, PartitionConfig, ServiceRolloutRequest};
use crate::controller::plan::ValidSpec;
use crate::crd::validation::{IntOrPercent, parse_duration};
use crate::crd::{DeletionPolicy, EasServiceRollout, EasServiceRolloutSpec};

/// The spec, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct EasSpec {
    pub region: String,
    pub service: String,
    pub strategy: Strategy,
    pub paused: bool,
    pub service_config: Option<ServiceConfig>,
    pub deletion_policy: DeletionPolicy,
    /// A partition approved for one version of the service config (partition strategy).
    pub promotion: Option<Promotion>,
}

/// `spec.promotion`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The config version it approves ([`ServiceConfig::version`]).
    pub version: String,
    pub partition: IntOrPercent,
}

/// How the cloud moves replicas to the new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Keep this many replicas (or this share) on the OLD version.
    Partition(IntOrPercent),
    /// Replace `size` replicas per batch, waiting `interval` between batches.
    Batch {
        size: IntOrPercent,
        interval: Option<Interval>,
    },
}

/// A batch interval: the text as the user wrote it (what the cloud is sent) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub text: String,
    pub duration: Duration,
}

/// The declared service config and its hash (what status records once it is pushed).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub document: Value,
    pub hash: String,
}

/// Hex digits of the hash that name a version of the service config.
pub const CONFIG_VERSION_LEN: usize = 12;

impl ServiceConfig {
    /// The version users name in `promotion.version`: the first 12 hex digits of the hash.
    pub fn version(&self) -> &str {
        self.hash.get(..CONFIG_VERSION_LEN).unwrap_or(&self.hash)
    }
}

impl EasSpec {
    /// The partition in force for the declared version: the promotion's when it names
    /// the declared service config, otherwise `strategy.partition` (where every new
    /// version starts). `None` under the batch strategy.
    pub fn approved_partition(&self) -> Option<IntOrPercent> {
        let Strategy::Partition(start) = self.strategy else {
            return None;
        };
        match (&self.promotion, &self.service_config) {
            (Some(p), Some(c)) if p.version == c.version() => Some(p.partition),
            _ => Some(start),
        }
    }
}

impl Strategy {
    /// The strategy as CreateServiceRollout/UpdateServiceRollout take it.
    pub fn request(&self) -> ServiceRolloutRequest {
        match self {
            Strategy::Partition(p) => ServiceRolloutRequest {
                partition: Some(PartitionConfig {
                    partition: p.to_string(),
                }),
                ..Default::default()
            },
            Strategy::Batch { size, interval } => ServiceRolloutRequest {
                batch: Some(BatchConfig {
                    batch_size: Some(size.to_string()),
                    interval: interval.as_ref().map(|i| i.text.clone()),
                }),
                ..Default::default()
            },
        }
    }
}

/// Parse the spec, or say what to fix.
pub fn validate(spec: &EasServiceRolloutSpec) -> Result<EasSpec, String> {
    let region = spec.region.trim();
    let service = spec.service_name.trim();
    if region.is_empty() {
        return Err("region must not be empty".into());
    }
    if service.is_empty() {
        return Err("serviceName must not be empty".into());
    }
    let service_config = match &spec.service_config {
        None => None,
        Some(document) if document.is_object() => Some(ServiceConfig {
            hash: config_hash(document),
            document: document.clone(),
        }),
        Some(_) => return Err("serviceConfig must be a JSON object".into()),
    };
    let strategy = strategy(spec)?;
    if let (Strategy::Partition(IntOrPercent::Count(0) | IntOrPercent::Percent(0)), Some(_)) =
        (&strategy, &service_config)
    {
        return Err(format!(
            "with serviceConfig, strategy.partition {:?} would replace every replica of each new \
             version at once: it is where every new version starts and must keep replicas on the \
             old version. To complete one version set promotion: {{version: <status.configVersion>, \
             partition: \"0\"}}; to replace every replica at once use the batch strategy",
            spec.strategy.partition.as_deref().unwrap_or_default()
        ));
    }
    let promotion = match &spec.promotion {
        None => None,
        Some(p) => {
            if !matches!(strategy, Strategy::Partition(_)) || service_config.is_none() {
                return Err("promotion only applies to the partition strategy with a \
                            serviceConfig: set both or remove promotion"
                    .into());
            }
            let version = p.version.trim();
            if version.len() != CONFIG_VERSION_LEN
                || !version
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!(
                    "promotion.version {:?} must be a configVersion as status shows it (12 hex digits)",
                    p.version
                ));
            }
            let partition = IntOrPercent::parse(p.partition.trim()).ok_or_else(|| {
                format!(
                    "promotion.partition {:?} must be an integer >= 0 or a percentage 0%-100%",
                    p.partition
                )
            })?;
            Some(Promotion {
                version: version.to_string(),
                partition,
            })
        }
    };
    Ok(EasSpec {
        region: region.to_string(),
        service: service.to_string(),
        strategy,
        paused: spec.paused,
        service_config,
        deletion_policy: spec.deletion_policy,
        promotion,
    })
}

fn strategy(spec: &EasServiceRolloutSpec) -> Result<Strategy, String> {
    match (&spec.strategy.partition, &spec.strategy.batch) {
        (Some(p), None) => IntOrPercent::parse(p.trim())
            .map(Strategy::Partition)
            .ok_or_else(|| {
                format!("strategy.partition {p:?} must be an integer >= 0 or a percentage 0%-100%")
            }),
        (None, Some(b)) => {
            let size = IntOrPercent::parse(b.size.trim())
                .filter(|s| !matches!(s, IntOrPercent::Count(0) | IntOrPercent::Percent(0)))
                .ok_or_else(|| {
                    format!(
                        "strategy.batch.size {:?} must be an integer >= 1 or a percentage 1%-100%",
                        b.size
                    )
                })?;
            let interval = match &b.interval {
                None => None,
                Some(i) => Some(Interval {
                    duration: parse_duration(i.trim()).map_err(|_| {
                        format!(
                            "strategy.batch.interval {i:?} must be a number followed by s, m or h"
                        )
                    })?,
                    text: i.trim().to_string(),
                }),
            };
            Ok(Strategy::Batch { size, interval })
        }
        _ => Err("strategy must set exactly one of partition or batch".into()),
    }
}

/// Hex SHA-256 of the config's canonical JSON (object keys sorted).
pub fn config_hash(config: &Value) -> String {
    let canonical = serde_json::to_string(config).unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Every replica kept on the old version: where a rolled-back version of the service
/// config is held.
pub const ROLLED_BACK_PARTITION: IntOrPercent = IntOrPercent::Percent(100);

impl ValidSpec<EasServiceRollout> for EasSpec {
    /// A version of the service config the operator rolled back on its own
    /// (`status.aborted`, e.g. a failed analysis) is held with every replica on the old
    /// version (partition 100%, approvals ignored) until the spec names another version
    /// or `spec.retry` changes; one whose analysis is Inconclusive is held paused.
    fn parse(obj: &EasServiceRollout) -> Result<Self, String> {
        let mut spec = validate(&obj.spec)?;
        let Some(version) = spec
            .service_config
            .as_ref()
            .map(|c| c.version().to_string())
        else {
            return Ok(spec);
        };
        let Some(status) = obj
            .status
            .as_ref()
            .filter(|s| s.observed_retry == obj.spec.retry)
        else {
            return Ok(spec);
        };
        if status
            .aborted
            .as_ref()
            .is_some_and(|a| a.version == version)
        {
            spec.strategy = Strategy::Partition(ROLLED_BACK_PARTITION);
            spec.promotion = None;
        } else if crate::controller::analysis::holds(
            status.analysis.as_ref(),
            &version,
            status.observed_retry,
            obj.spec.retry,
        ) {
            spec.paused = true;
        }
        Ok(spec)
    }

    /// "region/serviceName": the cloud identity of the rollout.
    fn cloud_ref(&self) -> String {
        format!("{}/{}", self.region, self.service)
    }
}

/// Split a recorded cloud ref back into (region, service).
pub fn split_cloud_ref(cloud_ref: &str) -> Option<(&str, &str)> {
    let (region, service) = cloud_ref.split_once('/')?;
    (!region.is_empty() && !service.is_empty()).then_some((region, service))
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::crd::{BatchStrategy, DeletionPolicy, EasServiceRolloutSpec, EasStrategy};

    pub(crate) fn spec_partition(p: &str) -> EasServiceRolloutSpec {
        EasServiceRolloutSpec {
            region: "cn-shanghai".into(),
            service_name: "svc".into(),
            strategy: EasStrategy {
                partition: Some(p.into()),
                batch: None,
            },
            paused: false,
            retry: None,
            deletion_policy: DeletionPolicy::Retain,
            credentials_secret_ref: None,
            account_ref: None,
            adopt_from: None,
            progress_deadline: None,
            service_config: None,
            promotion: None,
            analysis: None,
            notifications: vec![],
        }
    }

    pub(crate) fn spec_batch(size: &str, interval: Option<&str>) -> EasServiceRolloutSpec {
        EasServiceRolloutSpec {
            strategy: EasStrategy {
                partition: None,
                batch: Some(BatchStrategy {
                    size: size.into(),
                    interval: interval.map(Into::into),
                }),
            },
            ..spec_partition("0")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::crd::BatchStrategy;
    use serde_json::json;

    #[test]
    fn validation_table() {
        let ok = [
            spec_partition("0"),
            spec_partition("3"),
            spec_partition("50%"),
            spec_batch("1", None),
            spec_batch("25%", Some("5m")),
            spec_batch("2", Some("30s")),
        ];
        for s in ok {
            assert!(validate(&s).is_ok(), "{s:?}");
        }
        let mut both = spec_partition("1");
        both.strategy.batch = Some(BatchStrategy {
            size: "1".into(),
            interval: None,
        });
        let mut neither = spec_partition("1");
        neither.strategy.partition = None;
        let mut not_object = spec_partition("1");
        not_object.service_config = Some(json!("image:v2"));
        let mut empty_name = spec_partition("1");
        empty_name.service_name = " ".into();
        let mut complete_every_version = spec_partition("0");
        complete_every_version.service_config = Some(json!({"containers": []}));
        let mut zero_percent = complete_every_version.clone();
        zero_percent.strategy.partition = Some("0%".into());
        let approval = |version: &str, partition: &str| {
            Some(crate::crd::EasPromotion {
                version: version.into(),
                partition: partition.into(),
            })
        };
        let mut promotion_without_config = spec_partition("2");
        promotion_without_config.promotion = approval("0123456789ab", "0");
        let mut promotion_with_batch = spec_batch("1", None);
        promotion_with_batch.service_config = Some(json!({}));
        promotion_with_batch.promotion = approval("0123456789ab", "0");
        let mut bad_version = spec_partition("2");
        bad_version.service_config = Some(json!({}));
        bad_version.promotion = approval("image:v2", "0");
        let mut bad_partition = bad_version.clone();
        bad_partition.promotion = approval("0123456789ab", "all");
        let bad = [
            (complete_every_version, "every replica"),
            (zero_percent, "every replica"),
            (promotion_without_config, "promotion only applies"),
            (promotion_with_batch, "promotion only applies"),
            (bad_version, "promotion.version"),
            (bad_partition, "promotion.partition"),
            (both, "exactly one"),
            (neither, "exactly one"),
            (spec_partition("-1"), "partition"),
            (spec_partition("150%"), "partition"),
            (spec_partition("two"), "partition"),
            (spec_batch("0", None), "batch.size"),
            (spec_batch("0%", None), "batch.size"),
            (spec_batch("1", Some("5 minutes")), "interval"),
            (spec_batch("1", Some("5分")), "interval"),
            (not_object, "JSON object"),
            (empty_name, "serviceName"),
        ];
        for (s, needle) in bad {
            let err = validate(&s).expect_err("invalid");
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn the_parsed_strategy_is_what_the_cloud_is_sent() {
        let v = validate(&spec_batch("25%", Some("5m"))).expect("valid");
        assert_eq!(
            v.strategy.request().batch,
            Some(BatchConfig {
                batch_size: Some("25%".into()),
                interval: Some("5m".into())
            })
        );
        let v = validate(&spec_partition(" 3 ")).expect("valid");
        assert_eq!(v.strategy, Strategy::Partition(IntOrPercent::Count(3)));
        assert_eq!(
            v.strategy
                .request()
                .partition
                .map(|p| p.partition)
                .as_deref(),
            Some("3")
        );
    }

    #[test]
    fn cloud_refs_and_hashes() {
        assert_eq!(
            split_cloud_ref("cn-shanghai/svc"),
            Some(("cn-shanghai", "svc"))
        );
        assert_eq!(split_cloud_ref("nope"), None);
        assert_eq!(
            config_hash(&json!({"b": 1, "a": 2})),
            config_hash(&json!({"a": 2, "b": 1}))
        );
        let v = validate(&spec_partition("1")).expect("valid");
        assert_eq!(v.cloud_ref(), "cn-shanghai/svc");
    }
}
