//! ESA edge routines (code version splits) and edge container apps (publish / rollback).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::clock::{add, iso_time};
use super::eas::scaled;
use super::error::{ApiError, ApiResult};
use crate::cloud::model::{
    AppRegions, AppStatus, AppVersion, CodeDeploy, CodeVersionSplit,
    CreateRoutineCodeDeploymentResponse, DeployedCodeVersion, GetRoutineResponse,
    ListEdgeContainerAppVersionsResponse, ListRoutineCodeVersionsResponse, RoutineCodeVersion,
    RoutineEnv,
};

/// How often a publishing app moves its percentage, and by how much.
pub const APP_TICK: Duration = Duration::from_secs(1);
pub const APP_STEP: i32 = 25;
/// How long a rollback takes.
pub const ROLLBACK_DELAY: Duration = Duration::from_secs(2);

pub const ROUTINE_ENVS: [&str; 2] = ["staging", "production"];
pub const APP_ENVS: [&str; 2] = ["prod", "staging"];

// ---------------------------------------------------------------- routines

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeVersionRec {
    pub code_version: String,
    pub description: String,
    pub create_time: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub deployment_id: u64,
    pub strategy: String,
    pub created: Timestamp,
    pub splits: Vec<CodeVersionSplit>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Routine {
    pub name: String,
    pub description: String,
    pub create_time: Timestamp,
    pub code_versions: Vec<CodeVersionRec>,
    pub envs: BTreeMap<String, Deployment>,
}

impl Routine {
    pub fn new(name: &str, versions: &[String], now: Timestamp) -> Self {
        Routine {
            name: name.to_string(),
            description: format!("routine {name}"),
            create_time: now,
            code_versions: versions
                .iter()
                .map(|v| CodeVersionRec {
                    code_version: v.clone(),
                    description: format!("code version {v}"),
                    create_time: now,
                })
                .collect(),
            envs: BTreeMap::new(),
        }
    }

    fn has_version(&self, v: &str) -> bool {
        self.code_versions.iter().any(|c| c.code_version == v)
    }

    /// Replace the env's split (already validated in shape).
    pub fn deploy(
        &mut self,
        env: &str,
        strategy: &str,
        splits: Vec<CodeVersionSplit>,
        id: u64,
        now: Timestamp,
    ) -> ApiResult<CreateRoutineCodeDeploymentResponse> {
        if let Some(unknown) = splits.iter().find(|s| !self.has_version(&s.code_version)) {
            return Err(ApiError::invalid(format!(
                "Code version {} does not exist in routine {}.",
                unknown.code_version, self.name
            )));
        }
        self.envs.insert(
            env.to_string(),
            Deployment {
                deployment_id: id,
                strategy: strategy.to_string(),
                created: now,
                splits: splits.clone(),
            },
        );
        Ok(CreateRoutineCodeDeploymentResponse {
            request_id: String::new(),
            strategy: Some(strategy.to_string()),
            deployment_id: Some(id.to_string()),
            code_versions: splits,
        })
    }

    pub fn get(&self) -> GetRoutineResponse {
        GetRoutineResponse {
            request_id: String::new(),
            envs: ROUTINE_ENVS
                .iter()
                .map(|env| RoutineEnv {
                    env: env.to_string(),
                    code_deploy: self.envs.get(*env).map(|d| CodeDeploy {
                        deploy_id: Some(d.deployment_id.to_string()),
                        strategy: Some(d.strategy.clone()),
                        creation_time: Some(iso_time(d.created)),
                        code_versions: d
                            .splits
                            .iter()
                            .map(|s| {
                                let rec = self
                                    .code_versions
                                    .iter()
                                    .find(|c| c.code_version == s.code_version);
                                DeployedCodeVersion {
                                    code_version: s.code_version.clone(),
                                    percentage: s.percentage,
                                    create_time: rec.map(|r| iso_time(r.create_time)),
                                    description: rec.map(|r| r.description.clone()),
                                }
                            })
                            .collect(),
                    }),
                })
                .collect(),
            create_time: Some(iso_time(self.create_time)),
            description: Some(self.description.clone()),
            default_related_record: Some(format!("{}.example.com", self.name)),
        }
    }

    pub fn list_versions(
        &self,
        page: i64,
        size: i64,
        search: Option<&str>,
    ) -> ListRoutineCodeVersionsResponse {
        let mut all: Vec<&CodeVersionRec> = self
            .code_versions
            .iter()
            .filter(|c| {
                search.is_none_or(|k| c.code_version.contains(k) || c.description.contains(k))
            })
            .collect();
        all.reverse(); // newest first
        let total = all.len() as i64;
        let skip = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
        let take = usize::try_from(size).unwrap_or(0);
        ListRoutineCodeVersionsResponse {
            request_id: String::new(),
            code_versions: all
                .into_iter()
                .skip(skip)
                .take(take)
                .map(|c| RoutineCodeVersion {
                    code_version: c.code_version.clone(),
                    status: Some("init".into()),
                    code_description: Some(c.description.clone()),
                    create_time: Some(iso_time(c.create_time)),
                })
                .collect(),
            total_count: Some(total),
            page_number: Some(page),
            page_size: Some(size),
        }
    }
}

/// Validate the CodeVersions JSON of CreateRoutineCodeDeployment.
pub fn parse_code_versions(raw: &str) -> ApiResult<Vec<CodeVersionSplit>> {
    let value: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::invalid(format!("CodeVersions is not a valid JSON array: {e}")))?;
    let Some(items) = value.as_array() else {
        return Err(ApiError::invalid("CodeVersions must be a JSON array."));
    };
    if items.is_empty() || items.len() > 2 {
        return Err(ApiError::invalid(
            "CodeVersions must contain one or two entries.",
        ));
    }
    let mut out = Vec::new();
    for item in items {
        let version = match item.get("CodeVersion") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => {
                return Err(ApiError::invalid(
                    "Each CodeVersions entry needs a CodeVersion.",
                ));
            }
        };
        let pct = match item.get("Percentage") {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let Some(pct) = pct.filter(|p| (1..=100).contains(p)) else {
            return Err(ApiError::invalid(
                "Each CodeVersions Percentage must be an integer from 1 to 100.",
            ));
        };
        if out
            .iter()
            .any(|s: &CodeVersionSplit| s.code_version == version)
        {
            return Err(ApiError::invalid("CodeVersions lists a version twice."));
        }
        out.push(CodeVersionSplit {
            code_version: version,
            percentage: pct as i32,
        });
    }
    if out.iter().map(|s| s.percentage).sum::<i32>() != 100 {
        return Err(ApiError::invalid(
            "The CodeVersions percentages must add up to 100.",
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------- container apps

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppVersionRec {
    pub version_id: String,
    pub name: String,
    pub remarks: String,
    pub create_time: Timestamp,
    pub publish_time: Option<Timestamp>,
}

/// One environment of an app.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppEnv {
    pub publish_status: Option<String>,
    pub deploy_status: String,
    pub publishing_version: Option<String>,
    pub deployed_version: Option<String>,
    pub baseline_version: Option<String>,
    pub publish_percentage: i32,
    pub expect_percentage: i32,
    pub publish_type: Option<String>,
    pub full_release: Option<bool>,
    pub regions: Vec<String>,
    pub publish_time: Option<Timestamp>,
    pub deploy_time: Option<Timestamp>,
    pub rollback_time: Option<Timestamp>,
    /// When the next change happens (publish start/step, rollback end).
    pub next_at: Option<Timestamp>,
    /// The version a rollback in flight returns to, and at which percentage.
    pub rollback_target: Option<String>,
    pub rollback_percentage: i32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub id: String,
    pub versions: Vec<AppVersionRec>,
    pub envs: BTreeMap<String, AppEnv>,
}

/// Parameters of PublishEdgeContainerAppVersion after validation.
#[derive(Debug, Clone)]
pub struct Publish {
    pub version_id: String,
    pub env: String,
    pub percentage: i32,
    pub publish_type: String,
    pub regions: Vec<String>,
    pub full_release: bool,
    pub start: Option<Timestamp>,
    pub remarks: Option<String>,
}

impl App {
    pub fn new(id: &str, versions: &[String], deployed: Option<&str>, now: Timestamp) -> Self {
        let mut app = App {
            id: id.to_string(),
            versions: versions
                .iter()
                .map(|v| AppVersionRec {
                    version_id: v.clone(),
                    name: v.trim_start_matches("ver-").to_string(),
                    remarks: String::new(),
                    create_time: now,
                    publish_time: None,
                })
                .collect(),
            envs: BTreeMap::new(),
        };
        for env in APP_ENVS {
            let mut e = AppEnv {
                deploy_status: "undeploy".into(),
                ..AppEnv::default()
            };
            if let Some(v) = deployed {
                e.publish_status = Some("published".into());
                e.deploy_status = "deployed".into();
                e.publishing_version = Some(v.to_string());
                e.deployed_version = Some(v.to_string());
                e.baseline_version = Some(v.to_string());
                e.publish_percentage = 100;
                e.expect_percentage = 100;
                e.publish_type = Some("percentage".into());
                e.publish_time = Some(now);
                e.deploy_time = Some(now);
            }
            app.envs.insert(env.to_string(), e);
        }
        app
    }

    pub fn has_version(&self, v: &str) -> bool {
        self.versions.iter().any(|r| r.version_id == v)
    }

    pub fn advance(&mut self, now: Timestamp, scale: f64) {
        let mut published: Vec<(String, Timestamp)> = Vec::new();
        for env in self.envs.values_mut() {
            for _ in 0..1000 {
                let Some(at) = env.next_at else { break };
                if at > now {
                    break;
                }
                match env.publish_status.as_deref() {
                    Some("publishing") => {
                        env.publish_percentage =
                            (env.publish_percentage + APP_STEP).min(env.expect_percentage);
                        env.deployed_version = env.publishing_version.clone();
                        env.deploy_time = Some(at);
                        if env.publish_percentage >= env.expect_percentage {
                            env.publish_status = Some("published".into());
                            env.deploy_status = "deployed".into();
                            env.next_at = None;
                            let full = env.expect_percentage >= 100
                                || (env.publish_type.as_deref() == Some("region")
                                    && env.full_release == Some(true));
                            if full {
                                env.baseline_version = env.publishing_version.clone();
                            }
                            if let Some(v) = &env.publishing_version {
                                published.push((v.clone(), at));
                            }
                        } else {
                            env.next_at = Some(add(at, scaled(APP_TICK, scale)));
                        }
                    }
                    Some("rollbacking") => {
                        let target = env
                            .rollback_target
                            .take()
                            .or_else(|| env.baseline_version.clone());
                        env.publish_status = Some("rollbacked".into());
                        env.deploy_status = "deployed".into();
                        env.deployed_version = target.clone();
                        env.publishing_version = target.clone();
                        env.baseline_version = target;
                        env.publish_percentage = env.rollback_percentage;
                        env.expect_percentage = env.rollback_percentage;
                        env.deploy_time = Some(at);
                        env.next_at = None;
                    }
                    _ => env.next_at = None,
                }
            }
        }
        for (v, at) in published {
            if let Some(rec) = self.versions.iter_mut().find(|r| r.version_id == v) {
                rec.publish_time = Some(at);
            }
        }
    }

    pub fn publish(&mut self, p: Publish, now: Timestamp, scale: f64) -> ApiResult<()> {
        if !self.has_version(&p.version_id) {
            return Err(ApiError::not_found(
                "InvalidVersion.NotFound",
                format!(
                    "Version {} does not exist in app {}.",
                    p.version_id, self.id
                ),
            ));
        }
        let env = self.envs.entry(p.env.clone()).or_default();
        let same = env.publishing_version.as_deref() == Some(p.version_id.as_str())
            && env.publish_status.as_deref() != Some("rollbacked");
        let full = p.publish_type == "region" && p.full_release;
        let expect = if full { 100 } else { p.percentage };
        if !same {
            // The version serving everybody else stays the baseline.
            if env.baseline_version.is_none() {
                env.baseline_version = env.deployed_version.clone();
            }
            env.publish_percentage = 0;
        }
        env.publish_status = Some("publishing".into());
        env.deploy_status = "deploying".into();
        env.publishing_version = Some(p.version_id.clone());
        env.expect_percentage = expect;
        env.publish_type = Some(p.publish_type.clone());
        env.full_release = Some(p.full_release);
        env.regions = p.regions.clone();
        let start = p.start.filter(|s| *s > now).unwrap_or(now);
        env.publish_time = Some(start);
        if env.publish_percentage >= expect {
            // Lowering the percentage takes effect at the next tick.
            env.publish_percentage = expect.saturating_sub(APP_STEP).max(0);
        }
        env.next_at = Some(add(start, scaled(APP_TICK, scale)));
        if let Some(r) = p.remarks
            && let Some(rec) = self
                .versions
                .iter_mut()
                .find(|r| r.version_id == p.version_id)
        {
            rec.remarks = r;
        }
        Ok(())
    }

    /// Roll back to `version_id` (the version to return TO): every environment serving or
    /// publishing another version goes `rollbacking`, then `rollbacked` with `version_id` at
    /// `percentage` (100 unless given) as its deployed and baseline version. The API has no
    /// PublishEnv, so every environment that differs is rolled back; none differing is a no-op.
    pub fn rollback(
        &mut self,
        version_id: &str,
        percentage: Option<i32>,
        now: Timestamp,
        scale: f64,
    ) -> ApiResult<()> {
        if !self.has_version(version_id) {
            return Err(ApiError::not_found(
                "InvalidVersion.NotFound",
                format!("Version {version_id} does not exist in app {}.", self.id),
            ));
        }
        let pct = percentage.unwrap_or(100).clamp(1, 100);
        for env in self.envs.values_mut() {
            let other = |v: &Option<String>| v.as_deref().is_some_and(|v| v != version_id);
            let serving_other = other(&env.publishing_version)
                || other(&env.deployed_version)
                || (env.publish_percentage < 100 && other(&env.baseline_version));
            if !serving_other {
                continue;
            }
            env.publish_status = Some("rollbacking".into());
            env.deploy_status = "deploying".into();
            env.rollback_target = Some(version_id.to_string());
            env.rollback_percentage = pct;
            env.rollback_time = Some(now);
            env.next_at = Some(add(now, scaled(ROLLBACK_DELAY, scale)));
        }
        Ok(())
    }

    pub fn status(&self, env: &str) -> AppStatus {
        let e = self.envs.get(env).cloned().unwrap_or_else(|| AppEnv {
            deploy_status: "undeploy".into(),
            ..AppEnv::default()
        });
        AppStatus {
            publish_status: e.publish_status,
            deploy_status: Some(e.deploy_status),
            publishing_version: e.publishing_version,
            deployed_version: e.deployed_version,
            base_line_version: e.baseline_version,
            publish_percentage: Some(e.publish_percentage),
            expect_percentage: Some(e.expect_percentage),
            publish_type: e.publish_type,
            full_release: e.full_release,
            regions: Some(AppRegions { region: e.regions }),
            publish_env: Some(env.to_string()),
            publish_time: e.publish_time.map(iso_time),
            deploy_time: e.deploy_time.map(iso_time),
            rollback_time: e.rollback_time.map(iso_time),
            un_deploy_time: None,
        }
    }

    pub fn list_versions(
        &self,
        page: i64,
        size: i64,
        search: Option<&str>,
    ) -> ListEdgeContainerAppVersionsResponse {
        let all: Vec<&AppVersionRec> = self
            .versions
            .iter()
            .filter(|v| search.is_none_or(|k| v.version_id.contains(k) || v.name.contains(k)))
            .collect();
        let total = all.len() as i64;
        let skip = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
        let take = usize::try_from(size).unwrap_or(0);
        ListEdgeContainerAppVersionsResponse {
            request_id: String::new(),
            versions: all
                .into_iter()
                .skip(skip)
                .take(take)
                .map(|v| AppVersion {
                    version_id: v.version_id.clone(),
                    name: Some(v.name.clone()),
                    status: Some("created".into()),
                    remarks: Some(v.remarks.clone()),
                    create_time: Some(iso_time(v.create_time)),
                    publish_time: v.publish_time.map(iso_time),
                })
                .collect(),
            total_count: Some(total),
            page_number: Some(page),
            page_size: Some(size),
        }
    }
}

/// `app-` followed by digits.
pub fn valid_app_id(id: &str) -> bool {
    id.strip_prefix("app-")
        .is_some_and(|d| !d.is_empty() && d.len() <= 32 && d.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2026-05-08T16:00:00Z".parse().unwrap()
    }

    fn at(s: u64) -> Timestamp {
        add(t0(), Duration::from_secs(s))
    }

    const V0: &str = "ver-8796263716165100";
    const V1: &str = "ver-8796263716165101";

    fn app() -> App {
        App::new(
            "app-8806886757837900",
            &[V0.to_string(), V1.to_string()],
            Some(V0),
            t0(),
        )
    }

    fn publish(v: &str, pct: i32, start: Option<Timestamp>) -> Publish {
        Publish {
            version_id: v.into(),
            env: "prod".into(),
            percentage: pct,
            publish_type: "percentage".into(),
            regions: vec![],
            full_release: false,
            start,
            remarks: None,
        }
    }

    #[test]
    fn code_versions_validation() {
        let ok = parse_code_versions(
            r#"[{"CodeVersion":"1","Percentage":90},{"CodeVersion":"2","Percentage":10}]"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        for bad in [
            "",
            "{}",
            "[]",
            r#"[{"CodeVersion":"1","Percentage":50}]"#,
            r#"[{"CodeVersion":"1","Percentage":0},{"CodeVersion":"2","Percentage":100}]"#,
            r#"[{"CodeVersion":"1","Percentage":101}]"#,
            r#"[{"CodeVersion":"1","Percentage":40},{"CodeVersion":"2","Percentage":30},{"CodeVersion":"3","Percentage":30}]"#,
            r#"[{"CodeVersion":"1","Percentage":50},{"CodeVersion":"1","Percentage":50}]"#,
            r#"[{"Percentage":100}]"#,
            r#"[{"CodeVersion":"1","Percentage":"x"}]"#,
        ] {
            assert_eq!(
                parse_code_versions(bad).unwrap_err().code,
                "InvalidParameter",
                "{bad}"
            );
        }
    }

    #[test]
    fn routine_deploy_replaces_split() {
        let mut r = Routine::new("edge-auth", &["1".into(), "2".into()], t0());
        let splits = parse_code_versions(
            r#"[{"CodeVersion":"1","Percentage":90},{"CodeVersion":"2","Percentage":10}]"#,
        )
        .unwrap();
        let resp = r
            .deploy("production", "percentage", splits, 7, t0())
            .unwrap();
        assert_eq!(resp.deployment_id.as_deref(), Some("7"));
        let splits = parse_code_versions(r#"[{"CodeVersion":"2","Percentage":100}]"#).unwrap();
        r.deploy("production", "percentage", splits, 8, t0())
            .unwrap();
        let g = r.get();
        let prod = g.envs.iter().find(|e| e.env == "production").unwrap();
        let cd = prod.code_deploy.as_ref().unwrap();
        assert_eq!(cd.deploy_id.as_deref(), Some("8"));
        assert_eq!(cd.code_versions.len(), 1);
        assert_eq!(cd.code_versions[0].percentage, 100);
        let staging = g.envs.iter().find(|e| e.env == "staging").unwrap();
        assert!(staging.code_deploy.is_none());
        let unknown = parse_code_versions(r#"[{"CodeVersion":"9","Percentage":100}]"#).unwrap();
        assert!(r.deploy("staging", "percentage", unknown, 9, t0()).is_err());
        let page = r.list_versions(1, 1, None);
        assert_eq!(page.total_count, Some(2));
        assert_eq!(page.code_versions[0].code_version, "2");
    }

    #[test]
    fn publish_moves_to_expected_percentage_then_published() {
        let mut a = app();
        a.publish(publish(V1, 50, None), t0(), 1.0).unwrap();
        let s = a.status("prod");
        assert_eq!(s.publish_status.as_deref(), Some("publishing"));
        assert_eq!(s.publish_percentage, Some(0));
        assert_eq!(s.expect_percentage, Some(50));
        a.advance(at(1), 1.0);
        assert_eq!(a.status("prod").publish_percentage, Some(25));
        a.advance(at(10), 1.0);
        let s = a.status("prod");
        assert_eq!(s.publish_status.as_deref(), Some("published"));
        assert_eq!(s.publish_percentage, Some(50));
        assert_eq!(s.deployed_version.as_deref(), Some(V1));
        assert_eq!(s.base_line_version.as_deref(), Some(V0));

        // VersionId is the version to return to.
        a.rollback(V0, None, at(10), 1.0).unwrap();
        assert_eq!(
            a.status("prod").publish_status.as_deref(),
            Some("rollbacking")
        );
        assert_eq!(
            a.status("staging").publish_status.as_deref(),
            Some("published"),
            "staging already serves V0"
        );
        a.advance(at(12), 1.0);
        let s = a.status("prod");
        assert_eq!(s.publish_status.as_deref(), Some("rollbacked"));
        assert_eq!(s.deployed_version.as_deref(), Some(V0));
        assert_eq!(s.publishing_version.as_deref(), Some(V0));
        assert_eq!(s.publish_percentage, Some(100));
        assert_eq!(a.status("staging").deployed_version.as_deref(), Some(V0));
        assert!(a.rollback("ver-404", None, at(12), 1.0).is_err());

        // With a percentage, the returned-to version serves that share.
        a.publish(publish(V1, 100, None), at(12), 1.0).unwrap();
        a.advance(at(30), 1.0);
        a.rollback(V0, Some(30), at(30), 1.0).unwrap();
        a.advance(at(40), 1.0);
        let s = a.status("prod");
        assert_eq!(s.deployed_version.as_deref(), Some(V0));
        assert_eq!(s.publish_percentage, Some(30));
    }

    #[test]
    fn start_time_in_future_is_honoured_and_full_publish_sets_baseline() {
        let mut a = app();
        a.publish(publish(V1, 100, Some(at(3600))), t0(), 1.0)
            .unwrap();
        a.advance(at(3599), 1.0);
        let s = a.status("prod");
        assert_eq!(s.publish_status.as_deref(), Some("publishing"));
        assert_eq!(s.publish_percentage, Some(0));
        a.advance(at(3700), 1.0);
        let s = a.status("prod");
        assert_eq!(s.publish_status.as_deref(), Some("published"));
        assert_eq!(s.base_line_version.as_deref(), Some(V1));
        assert!(a.publish(publish("ver-1", 100, None), t0(), 1.0).is_err());
        assert!(valid_app_id("app-1"));
        for bad in ["app-", "app-x1", "ap-1", "", "app-1 "] {
            assert!(!valid_app_id(bad), "{bad}");
        }
    }

    /// Random publish/rollback/time sequences keep the app status consistent.
    #[test]
    fn random_app_sequences_keep_status_consistent() {
        use rand::{Rng, SeedableRng};
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut a = app();
            let mut now = t0();
            for _ in 0..40 {
                let v = if rng.random_bool(0.5) { V0 } else { V1 };
                match rng.random_range(0..3) {
                    0 => {
                        let start = rng
                            .random_bool(0.3)
                            .then(|| add(now, Duration::from_secs(rng.random_range(0..100))));
                        let mut p = publish(v, rng.random_range(1..=100), start);
                        if rng.random_bool(0.3) {
                            p.publish_type = "region".into();
                            p.full_release = rng.random_bool(0.5);
                        }
                        if rng.random_bool(0.5) {
                            p.env = "staging".into();
                        }
                        a.publish(p, now, 1.0).unwrap();
                    }
                    1 => {
                        let pct = rng.random_bool(0.5).then(|| rng.random_range(1..=100));
                        a.rollback(v, pct, now, 1.0).unwrap();
                    }
                    _ => {}
                }
                now = add(now, Duration::from_secs(rng.random_range(0..20)));
                a.advance(now, 1.0);
                for env in APP_ENVS {
                    let s = a.status(env);
                    let (pct, expect) =
                        (s.publish_percentage.unwrap(), s.expect_percentage.unwrap());
                    assert!((0..=100).contains(&pct), "seed {seed}: {s:?}");
                    match s.publish_status.as_deref() {
                        Some("publishing") => assert!(pct <= expect, "seed {seed}: {s:?}"),
                        Some("published") | Some("rollbacked") => {
                            assert_eq!(pct, expect, "seed {seed}: {s:?}");
                            assert_eq!(s.deploy_status.as_deref(), Some("deployed"));
                            assert_eq!(s.deployed_version, s.publishing_version);
                        }
                        Some("rollbacking") => {}
                        other => panic!("seed {seed}: {other:?}"),
                    }
                    assert!(s.base_line_version.is_some());
                }
            }
        }
    }
}
