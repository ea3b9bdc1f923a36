//! Initial state: the seed file shape and the demo seed.

use serde::{Deserialize, Serialize};

/// Objects to create at start (or through `POST /_sim/seed`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub services: Vec<SeedService>,
    #[serde(default)]
    pub routines: Vec<SeedRoutine>,
    #[serde(default)]
    pub apps: Vec<SeedApp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedService {
    pub name: String,
    pub region: String,
    #[serde(default = "default_replicas")]
    pub replicas: i64,
    #[serde(default = "default_true")]
    pub rollout_enabled: bool,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Service labels it starts with (e.g. another cluster's ownership marker).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedRoutine {
    pub name: String,
    #[serde(default)]
    pub code_versions: Vec<String>,
    #[serde(default)]
    pub deployed: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedApp {
    pub id: String,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub deployed: Option<String>,
}

fn default_replicas() -> i64 {
    2
}

fn default_true() -> bool {
    true
}

impl Seed {
    /// Parse YAML or JSON (JSON is YAML).
    pub fn parse(text: &str) -> anyhow::Result<Seed> {
        Ok(serde_yaml::from_str(text)?)
    }

    /// The objects the examples and demos use.
    pub fn demo() -> Seed {
        Seed {
            services: vec![
                SeedService {
                    labels: Default::default(),
                    name: "llm-chat".into(),
                    region: "cn-shanghai".into(),
                    replicas: 8,
                    rollout_enabled: true,
                    config: Some(serde_json::json!({
                        "metadata": {
                            "name": "llm-chat",
                            "instance": 8,
                            "labels": {"eas.aliyun.com/enable-rollout": "true"}
                        },
                        "containers": [
                            {"image": "registry.cn-shanghai.aliyuncs.com/demo/llm-chat:v1"}
                        ]
                    })),
                },
                SeedService {
                    labels: Default::default(),
                    name: "llm-embed".into(),
                    region: "cn-shanghai".into(),
                    replicas: 4,
                    rollout_enabled: false,
                    config: None,
                },
            ],
            routines: vec![SeedRoutine {
                name: "edge-auth".into(),
                code_versions: vec!["1710000000000000001".into(), "1710000000000000002".into()],
                deployed: Some("1710000000000000001".into()),
            }],
            apps: vec![SeedApp {
                id: "app-8806886757837900".into(),
                versions: vec!["ver-8796263716165100".into(), "ver-8796263716165101".into()],
                deployed: Some("ver-8796263716165100".into()),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_seeds_parse() {
        let y = Seed::parse(
            "services:\n  - name: a\n    region: cn-shanghai\n    replicas: 3\nroutines:\n  - name: r\n    codeVersions: ['1']\n",
        )
        .unwrap();
        assert_eq!(y.services[0].replicas, 3);
        assert!(y.services[0].rollout_enabled);
        assert_eq!(y.routines[0].code_versions, vec!["1"]);
        let j = Seed::parse(&serde_json::to_string(&Seed::demo()).unwrap()).unwrap();
        assert_eq!(j, Seed::demo());
        assert!(
            Seed::parse("services: [{name: a}]").is_err(),
            "region required"
        );
        assert!(Seed::parse("bogus: 1").is_err());
    }
}
