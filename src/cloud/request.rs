//! Building a call: the unsigned [`ApiRequest`] of every API (in [`requests`], pure so
//! tests check each request exactly), and its V3 signature ([`sign_request`]).
//!
//! Nothing here sends anything; [`crate::cloud::client`] does.

use http::Method;

use super::credentials::Credentials;
use super::endpoint::{Endpoint, Product};
use super::sign;

pub const CONTENT_TYPE_JSON: &str = "application/json; charset=utf-8";
pub const CONTENT_TYPE_FORM: &str = "application/x-www-form-urlencoded";

/// The body of a request, already serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Empty,
    Json(Vec<u8>),
    Form(Vec<u8>),
}

impl Body {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Empty => &[],
            Body::Json(b) | Body::Form(b) => b,
        }
    }

    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Body::Empty => None,
            Body::Json(_) => Some(CONTENT_TYPE_JSON),
            Body::Form(_) => Some(CONTENT_TYPE_FORM),
        }
    }
}

/// One API call before signing: what the typed methods build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub product: Product,
    pub action: &'static str,
    pub method: Method,
    /// Percent-encoded path (`/` for RPC).
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    pub body: Body,
}

impl ApiRequest {
    /// Whether the call changes the cloud. Reads (`Describe*`, `Get*`, `List*`) can be sent
    /// again after any failure; a mutation whose outcome is unknown cannot (see
    /// [`crate::cloud::error::CloudError::OutcomeUnknown`]).
    pub fn is_mutation(&self) -> bool {
        // AssumeRole changes nothing in the cloud: asking again is harmless.
        !["Describe", "Get", "List", "AssumeRole"]
            .iter()
            .any(|p| self.action.starts_with(p))
    }
}

/// A request ready to send: every header, the signature included.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `yyyy-MM-ddTHH:mm:ssZ` in UTC, the `x-acs-date` format.
pub fn acs_date(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A fresh `x-acs-signature-nonce`.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Add the `x-acs-*` headers and the V3 `Authorization` to `req` for `endpoint`.
pub fn sign_request(
    req: &ApiRequest,
    endpoint: &Endpoint,
    credentials: &Credentials,
    date: &str,
    nonce: &str,
) -> SignedRequest {
    let body = req.body.bytes().to_vec();
    let hashed = sign::sha256_hex(&body);
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), endpoint.authority.clone()),
        ("x-acs-action".into(), req.action.into()),
        ("x-acs-version".into(), req.product.api_version().into()),
        ("x-acs-date".into(), date.into()),
        ("x-acs-signature-nonce".into(), nonce.into()),
        ("x-acs-content-sha256".into(), hashed.clone()),
    ];
    if let Some(ct) = req.body.content_type() {
        headers.push(("content-type".into(), ct.into()));
    }
    if let Some(token) = &credentials.security_token {
        headers.push(("x-acs-security-token".into(), token.clone()));
    }
    let signed = sign::default_signed_names(&headers);
    let authorization = sign::authorization(
        &credentials.access_key_id,
        &credentials.access_key_secret,
        &sign::CanonicalInput {
            method: req.method.as_str(),
            canonical_uri: &req.path,
            query: &req.query,
            headers: &headers,
            signed_headers: &signed,
            hashed_payload: &hashed,
        },
    );
    headers.push(("authorization".into(), authorization));
    headers.push(("accept".into(), "application/json".into()));
    let query = sign::canonical_query(&req.query);
    let url = if query.is_empty() {
        format!("{}{}", endpoint.base_url(), req.path)
    } else {
        format!("{}{}?{}", endpoint.base_url(), req.path, query)
    };
    SignedRequest {
        method: req.method.clone(),
        url,
        headers,
        body,
    }
}

// ---------------------------------------------------------------- per-API builders

/// Builders of every call, pure so tests can check each request exactly.
pub mod requests {
    use http::Method;

    use super::{ApiRequest, Body};
    use crate::cloud::endpoint::{Product, validate_region};
    use crate::cloud::error::{CloudError, CloudResult};
    use crate::cloud::model::*;
    use crate::cloud::sign::percent_encode as enc;

    fn eas(
        action: &'static str,
        method: Method,
        region: &str,
        service: &str,
        suffix: &str,
    ) -> CloudResult<ApiRequest> {
        if service.is_empty() {
            return Err(CloudError::InvalidRequest("empty EAS service name".into()));
        }
        validate_region(region)?;
        Ok(ApiRequest {
            product: Product::Eas,
            action,
            method,
            path: format!("/api/v2/services/{}/{}{suffix}", enc(region), enc(service)),
            query: Vec::new(),
            body: Body::Empty,
        })
    }

    fn json(value: &impl serde::Serialize) -> CloudResult<Body> {
        serde_json::to_vec(value)
            .map(Body::Json)
            .map_err(|e| CloudError::InvalidRequest(format!("cannot encode body: {e}")))
    }

    fn check_rollout(r: &ServiceRolloutRequest) -> CloudResult<()> {
        if r.partition.is_some() && r.batch.is_some() {
            return Err(CloudError::InvalidRequest(
                "a rollout has Partition or Batch, not both".into(),
            ));
        }
        Ok(())
    }

    pub fn create_service_rollout(
        region: &str,
        service: &str,
        r: &ServiceRolloutRequest,
    ) -> CloudResult<ApiRequest> {
        check_rollout(r)?;
        let mut req = eas(
            "CreateServiceRollout",
            Method::POST,
            region,
            service,
            "/rollout",
        )?;
        req.body = json(r)?;
        Ok(req)
    }

    pub fn update_service_rollout(
        region: &str,
        service: &str,
        r: &ServiceRolloutRequest,
    ) -> CloudResult<ApiRequest> {
        check_rollout(r)?;
        if r.partition.is_none() && r.batch.is_none() && r.paused.is_none() {
            return Err(CloudError::InvalidRequest(
                "UpdateServiceRollout needs Partition, Batch or Paused".into(),
            ));
        }
        let mut req = eas(
            "UpdateServiceRollout",
            Method::PUT,
            region,
            service,
            "/rollout",
        )?;
        req.body = json(r)?;
        Ok(req)
    }

    pub fn describe_service_rollout(region: &str, service: &str) -> CloudResult<ApiRequest> {
        eas(
            "DescribeServiceRollout",
            Method::GET,
            region,
            service,
            "/rollout",
        )
    }

    pub fn delete_service_rollout(region: &str, service: &str) -> CloudResult<ApiRequest> {
        eas(
            "DeleteServiceRollout",
            Method::DELETE,
            region,
            service,
            "/rollout",
        )
    }

    pub fn describe_service(region: &str, service: &str) -> CloudResult<ApiRequest> {
        eas("DescribeService", Method::GET, region, service, "")
    }

    pub fn update_service(
        region: &str,
        service: &str,
        config: &serde_json::Value,
        update_type: UpdateType,
    ) -> CloudResult<ApiRequest> {
        if !config.is_object() {
            return Err(CloudError::InvalidRequest(
                "the service config must be a JSON object".into(),
            ));
        }
        let mut req = eas("UpdateService", Method::PUT, region, service, "")?;
        req.query
            .push(("UpdateType".into(), update_type.as_str().into()));
        req.body = json(config)?;
        Ok(req)
    }

    /// UpdateServiceLabel: add or overwrite `labels` on the service (no new version).
    pub fn update_service_label(
        region: &str,
        service: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> CloudResult<ApiRequest> {
        if labels.is_empty() || labels.keys().any(String::is_empty) {
            return Err(CloudError::InvalidRequest(
                "UpdateServiceLabel needs at least one label, each with a key".into(),
            ));
        }
        let mut req = eas("UpdateServiceLabel", Method::PUT, region, service, "/label")?;
        req.body = json(&UpdateServiceLabelRequest {
            labels: labels.clone(),
        })?;
        Ok(req)
    }

    /// DeleteServiceLabel: remove the labels `keys` (query `LabelKeys`, a JSON array, as the
    /// official SDK sends it; the older `Keys` is deprecated).
    pub fn delete_service_label(
        region: &str,
        service: &str,
        keys: &[String],
    ) -> CloudResult<ApiRequest> {
        if keys.is_empty() || keys.iter().any(String::is_empty) {
            return Err(CloudError::InvalidRequest(
                "DeleteServiceLabel needs at least one label key".into(),
            ));
        }
        let mut req = eas(
            "DeleteServiceLabel",
            Method::DELETE,
            region,
            service,
            "/label",
        )?;
        let keys = serde_json::to_string(keys)
            .map_err(|e| CloudError::InvalidRequest(format!("cannot encode LabelKeys: {e}")))?;
        req.query.push(("LabelKeys".into(), keys));
        Ok(req)
    }

    pub fn list_service_versions(
        region: &str,
        service: &str,
        page_number: Option<i64>,
        page_size: Option<i64>,
    ) -> CloudResult<ApiRequest> {
        let mut req = eas(
            "ListServiceVersions",
            Method::GET,
            region,
            service,
            "/versions",
        )?;
        if let Some(n) = page_number {
            req.query.push(("PageNumber".into(), n.to_string()));
        }
        if let Some(n) = page_size {
            req.query.push(("PageSize".into(), n.to_string()));
        }
        Ok(req)
    }

    pub fn update_service_version(
        region: &str,
        service: &str,
        version: i64,
    ) -> CloudResult<ApiRequest> {
        if version <= 0 {
            return Err(CloudError::InvalidRequest(format!(
                "service version must be positive, got {version}"
            )));
        }
        let mut req = eas(
            "UpdateServiceVersion",
            Method::PUT,
            region,
            service,
            "/version",
        )?;
        req.body = json(&serde_json::json!({ "Version": version }))?;
        Ok(req)
    }

    /// RPC parameters: query and form body, in the order given.
    #[derive(Default)]
    struct Rpc {
        query: Vec<(String, String)>,
        form: Vec<(String, String)>,
    }

    impl Rpc {
        fn q(&mut self, k: &str, v: impl ToString) -> &mut Self {
            self.query.push((k.into(), v.to_string()));
            self
        }
        fn f(&mut self, k: &str, v: impl ToString) -> &mut Self {
            self.form.push((k.into(), v.to_string()));
            self
        }
        fn build(self, action: &'static str, method: Method) -> CloudResult<ApiRequest> {
            let body = if self.form.is_empty() {
                Body::Empty
            } else {
                Body::Form(
                    serde_urlencoded::to_string(&self.form)
                        .map_err(|e| CloudError::InvalidRequest(e.to_string()))?
                        .into_bytes(),
                )
            };
            Ok(ApiRequest {
                product: Product::Esa,
                action,
                method,
                path: "/".into(),
                query: self.query,
                body,
            })
        }
    }

    /// Booleans as the official Python SDK writes them.
    fn py_bool(b: bool) -> &'static str {
        if b { "True" } else { "False" }
    }

    fn required(name: &str, value: &str) -> CloudResult<()> {
        if value.is_empty() {
            Err(CloudError::InvalidRequest(format!("{name} is required")))
        } else {
            Ok(())
        }
    }

    pub fn create_routine_code_deployment(
        r: &CreateRoutineCodeDeploymentRequest,
    ) -> CloudResult<ApiRequest> {
        required("Name", &r.name)?;
        required("Env", &r.env)?;
        let versions = serde_json::to_string(&r.code_versions)
            .map_err(|e| CloudError::InvalidRequest(e.to_string()))?;
        let mut p = Rpc::default();
        p.f("Name", &r.name)
            .f("Env", &r.env)
            .f("Strategy", &r.strategy)
            .f("CodeVersions", versions);
        p.build("CreateRoutineCodeDeployment", Method::POST)
    }

    pub fn get_routine(name: &str) -> CloudResult<ApiRequest> {
        required("Name", name)?;
        let mut p = Rpc::default();
        p.f("Name", name);
        p.build("GetRoutine", Method::POST)
    }

    pub fn list_routine_code_versions(
        r: &ListRoutineCodeVersionsRequest,
    ) -> CloudResult<ApiRequest> {
        required("Name", &r.name)?;
        let mut p = Rpc::default();
        p.f("Name", &r.name);
        if let Some(n) = r.page_number {
            p.f("PageNumber", n);
        }
        if let Some(n) = r.page_size {
            p.f("PageSize", n);
        }
        if let Some(s) = &r.search_key_word {
            p.f("SearchKeyWord", s);
        }
        p.build("ListRoutineCodeVersions", Method::POST)
    }

    pub fn publish_edge_container_app_version(
        r: &PublishEdgeContainerAppVersionRequest,
    ) -> CloudResult<ApiRequest> {
        required("AppId", &r.app_id)?;
        required("VersionId", &r.version_id)?;
        required("PublishEnv", &r.publish_env)?;
        let mut p = Rpc::default();
        p.q("VersionId", &r.version_id);
        if let Some(t) = &r.publish_type {
            p.q("PublishType", t);
        }
        if let Some(regions) = &r.regions {
            let json = serde_json::to_string(regions)
                .map_err(|e| CloudError::InvalidRequest(e.to_string()))?;
            p.q("Regions", json);
        }
        if let Some(b) = r.full_release {
            p.q("FullRelease", py_bool(b));
        }
        p.f("AppId", &r.app_id).f("PublishEnv", &r.publish_env);
        if let Some(n) = r.percentage {
            p.f("Percentage", n);
        }
        if let Some(t) = &r.start_time {
            p.f("StartTime", t);
        }
        if let Some(t) = &r.remarks {
            p.f("Remarks", t);
        }
        p.build("PublishEdgeContainerAppVersion", Method::POST)
    }

    pub fn get_edge_container_app_status(
        app_id: &str,
        publish_env: &str,
    ) -> CloudResult<ApiRequest> {
        required("AppId", app_id)?;
        required("PublishEnv", publish_env)?;
        let mut p = Rpc::default();
        p.q("AppId", app_id).q("PublishEnv", publish_env);
        p.build("GetEdgeContainerAppStatus", Method::POST)
    }

    pub fn rollback_edge_container_app_version(
        r: &RollbackEdgeContainerAppVersionRequest,
    ) -> CloudResult<ApiRequest> {
        required("AppId", &r.app_id)?;
        required("VersionId", &r.version_id)?;
        let mut p = Rpc::default();
        p.q("VersionId", &r.version_id);
        if let Some(n) = r.percentage {
            p.q("Percentage", n);
        }
        if let Some(b) = r.used_percent {
            p.q("UsedPercent", py_bool(b));
        }
        p.f("AppId", &r.app_id);
        if let Some(t) = &r.remarks {
            p.f("Remarks", t);
        }
        p.build("RollbackEdgeContainerAppVersion", Method::POST)
    }

    /// CloudMonitor DescribeMetricLast / DescribeMetricList: RPC, every parameter in the
    /// query (as the official SDK sends them), POST.
    pub fn describe_metric(
        action: &'static str,
        r: &DescribeMetricRequest,
    ) -> CloudResult<ApiRequest> {
        required("Namespace", &r.namespace)?;
        required("MetricName", &r.metric_name)?;
        let mut p = Rpc::default();
        p.q("Namespace", &r.namespace)
            .q("MetricName", &r.metric_name);
        for (k, v) in [
            ("Period", &r.period),
            ("StartTime", &r.start_time),
            ("EndTime", &r.end_time),
            ("Dimensions", &r.dimensions),
            ("Express", &r.express),
            ("NextToken", &r.next_token),
        ] {
            if let Some(v) = v {
                p.q(k, v);
            }
        }
        if let Some(n) = r.length {
            p.q("Length", n);
        }
        let mut req = p.build(action, Method::POST)?;
        req.product = Product::Cms;
        Ok(req)
    }

    /// STS GetCallerIdentity: no parameters; signed like every other call.
    pub fn get_caller_identity() -> CloudResult<ApiRequest> {
        let mut req = Rpc::default().build("GetCallerIdentity", Method::POST)?;
        req.product = Product::Sts;
        Ok(req)
    }

    /// STS AssumeRole: the operator's own credentials sign it.
    pub fn assume_role(
        role_arn: &str,
        session_name: &str,
        duration_seconds: u32,
    ) -> CloudResult<ApiRequest> {
        required("RoleArn", role_arn)?;
        required("RoleSessionName", session_name)?;
        let mut p = Rpc::default();
        p.q("RoleArn", role_arn)
            .q("RoleSessionName", session_name)
            .q("DurationSeconds", duration_seconds);
        let mut req = p.build("AssumeRole", Method::POST)?;
        req.product = Product::Sts;
        Ok(req)
    }

    pub fn list_edge_container_app_versions(
        r: &ListEdgeContainerAppVersionsRequest,
    ) -> CloudResult<ApiRequest> {
        required("AppId", &r.app_id)?;
        let mut p = Rpc::default();
        p.q("AppId", &r.app_id);
        if let Some(n) = r.page_number {
            p.q("PageNumber", n);
        }
        if let Some(n) = r.page_size {
            p.q("PageSize", n);
        }
        for (k, v) in [
            ("OrderKey", &r.order_key),
            ("OrderType", &r.order_type),
            ("SearchKey", &r.search_key),
            ("SearchType", &r.search_type),
        ] {
            if let Some(v) = v {
                p.q(k, v);
            }
        }
        p.build("ListEdgeContainerAppVersions", Method::GET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::model::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn form(req: &ApiRequest) -> Vec<(String, String)> {
        match &req.body {
            Body::Form(b) => serde_urlencoded::from_bytes(b).unwrap(),
            other => panic!("expected a form body, got {other:?}"),
        }
    }

    fn json(req: &ApiRequest) -> serde_json::Value {
        match &req.body {
            Body::Json(b) => serde_json::from_slice(b).unwrap(),
            other => panic!("expected a JSON body, got {other:?}"),
        }
    }

    #[test]
    fn eas_rollout_requests() {
        let batch = ServiceRolloutRequest {
            batch: Some(BatchConfig {
                batch_size: Some("25%".into()),
                interval: Some("5m".into()),
            }),
            paused: Some(false),
            ..Default::default()
        };
        let r = requests::create_service_rollout("cn-shanghai", "llm chat/v2", &batch).unwrap();
        assert_eq!(
            (r.product, r.action, &r.method),
            (Product::Eas, "CreateServiceRollout", &Method::POST)
        );
        assert_eq!(
            r.path,
            "/api/v2/services/cn-shanghai/llm%20chat%2Fv2/rollout"
        );
        assert!(r.query.is_empty());
        assert_eq!(
            json(&r),
            serde_json::json!({"Batch": {"BatchSize": "25%", "Interval": "5m"}, "Paused": false})
        );

        let partition = ServiceRolloutRequest {
            partition: Some(PartitionConfig {
                partition: "3".into(),
            }),
            ..Default::default()
        };
        let r = requests::update_service_rollout("cn-shanghai", "svc", &partition).unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("UpdateServiceRollout", &Method::PUT)
        );
        assert_eq!(r.path, "/api/v2/services/cn-shanghai/svc/rollout");
        assert_eq!(
            json(&r),
            serde_json::json!({"Partition": {"Partition": "3"}})
        );

        let pause = ServiceRolloutRequest {
            paused: Some(true),
            ..Default::default()
        };
        assert_eq!(
            json(&requests::update_service_rollout("cn-shanghai", "svc", &pause).unwrap()),
            serde_json::json!({"Paused": true})
        );
        // Invalid combinations never reach the wire.
        assert!(
            requests::update_service_rollout(
                "cn-shanghai",
                "svc",
                &ServiceRolloutRequest::default()
            )
            .is_err()
        );
        let both = ServiceRolloutRequest {
            batch: batch.batch.clone(),
            ..partition.clone()
        };
        assert!(requests::create_service_rollout("cn-shanghai", "svc", &both).is_err());

        for (r, action, method) in [
            (
                requests::describe_service_rollout("cn-shanghai", "svc").unwrap(),
                "DescribeServiceRollout",
                Method::GET,
            ),
            (
                requests::delete_service_rollout("cn-shanghai", "svc").unwrap(),
                "DeleteServiceRollout",
                Method::DELETE,
            ),
        ] {
            assert_eq!((r.action, r.method), (action, method));
            assert_eq!(r.path, "/api/v2/services/cn-shanghai/svc/rollout");
            assert_eq!(r.body, Body::Empty);
            assert!(r.query.is_empty());
        }
    }

    #[test]
    fn eas_service_requests() {
        let r = requests::describe_service("cn-beijing", "svc").unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            (
                "DescribeService",
                &Method::GET,
                "/api/v2/services/cn-beijing/svc"
            )
        );
        assert_eq!(r.body, Body::Empty);

        let cfg = serde_json::json!({"containers": [{"image": "repo/x:v2"}]});
        let r = requests::update_service("cn-beijing", "svc", &cfg, UpdateType::Replace).unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            (
                "UpdateService",
                &Method::PUT,
                "/api/v2/services/cn-beijing/svc"
            )
        );
        assert_eq!(r.query, pairs(&[("UpdateType", "replace")]));
        assert_eq!(json(&r), cfg);
        let r = requests::update_service("cn-beijing", "svc", &cfg, UpdateType::Merge).unwrap();
        assert_eq!(r.query, pairs(&[("UpdateType", "merge")]));
        assert!(
            requests::update_service(
                "cn-beijing",
                "svc",
                &serde_json::json!([1]),
                UpdateType::Merge
            )
            .is_err()
        );

        let r = requests::list_service_versions("cn-beijing", "svc", Some(2), Some(50)).unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            (
                "ListServiceVersions",
                &Method::GET,
                "/api/v2/services/cn-beijing/svc/versions"
            )
        );
        assert_eq!(r.query, pairs(&[("PageNumber", "2"), ("PageSize", "50")]));
        assert!(
            requests::list_service_versions("cn-beijing", "svc", None, None)
                .unwrap()
                .query
                .is_empty()
        );

        let r = requests::update_service_version("cn-beijing", "svc", 3).unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            (
                "UpdateServiceVersion",
                &Method::PUT,
                "/api/v2/services/cn-beijing/svc/version"
            )
        );
        assert_eq!(json(&r), serde_json::json!({"Version": 3}));
        assert!(requests::update_service_version("cn-beijing", "svc", 0).is_err());
        assert!(requests::describe_service("cn-beijing", "").is_err());
        assert!(requests::describe_service("cn-beijing/../x", "svc").is_err());
    }

    #[test]
    fn esa_routine_requests() {
        let r = requests::create_routine_code_deployment(&CreateRoutineCodeDeploymentRequest {
            name: "edge-auth".into(),
            env: "production".into(),
            strategy: "percentage".into(),
            code_versions: vec![
                CodeVersionSplit {
                    code_version: "1710000000000000002".into(),
                    percentage: 10,
                },
                CodeVersionSplit {
                    code_version: "1710000000000000001".into(),
                    percentage: 90,
                },
            ],
        })
        .unwrap();
        assert_eq!(
            (r.product, r.action, &r.method, r.path.as_str()),
            (
                Product::Esa,
                "CreateRoutineCodeDeployment",
                &Method::POST,
                "/"
            )
        );
        assert!(r.query.is_empty());
        assert_eq!(
            form(&r),
            pairs(&[
                ("Name", "edge-auth"),
                ("Env", "production"),
                ("Strategy", "percentage"),
                (
                    "CodeVersions",
                    r#"[{"CodeVersion":"1710000000000000002","Percentage":10},{"CodeVersion":"1710000000000000001","Percentage":90}]"#
                ),
            ])
        );

        let r = requests::get_routine("edge-auth").unwrap();
        assert_eq!((r.action, &r.method), ("GetRoutine", &Method::POST));
        assert_eq!(form(&r), pairs(&[("Name", "edge-auth")]));
        assert!(requests::get_routine("").is_err());

        let r = requests::list_routine_code_versions(&ListRoutineCodeVersionsRequest {
            name: "edge-auth".into(),
            page_number: Some(1),
            page_size: Some(20),
            search_key_word: Some("a b".into()),
        })
        .unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("ListRoutineCodeVersions", &Method::POST)
        );
        assert!(r.query.is_empty());
        assert_eq!(
            form(&r),
            pairs(&[
                ("Name", "edge-auth"),
                ("PageNumber", "1"),
                ("PageSize", "20"),
                ("SearchKeyWord", "a b")
            ])
        );
    }

    #[test]
    fn esa_container_app_requests() {
        let r =
            requests::publish_edge_container_app_version(&PublishEdgeContainerAppVersionRequest {
                app_id: "app-88068867578379".into(),
                version_id: "ver-87962637161651".into(),
                publish_env: "prod".into(),
                publish_type: Some("region".into()),
                percentage: Some(50),
                regions: Some(vec!["jiangsu".into(), "beijing".into()]),
                full_release: Some(true),
                start_time: Some("2026-05-08T16:10:56Z".into()),
                remarks: Some("canary".into()),
            })
            .unwrap();
        assert_eq!(
            (r.action, &r.method, r.path.as_str()),
            ("PublishEdgeContainerAppVersion", &Method::POST, "/")
        );
        assert_eq!(
            r.query,
            pairs(&[
                ("VersionId", "ver-87962637161651"),
                ("PublishType", "region"),
                ("Regions", r#"["jiangsu","beijing"]"#),
                ("FullRelease", "True"),
            ])
        );
        assert_eq!(
            form(&r),
            pairs(&[
                ("AppId", "app-88068867578379"),
                ("PublishEnv", "prod"),
                ("Percentage", "50"),
                ("StartTime", "2026-05-08T16:10:56Z"),
                ("Remarks", "canary"),
            ])
        );
        let minimal =
            requests::publish_edge_container_app_version(&PublishEdgeContainerAppVersionRequest {
                app_id: "app-1".into(),
                version_id: "ver-1".into(),
                publish_env: "staging".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(minimal.query, pairs(&[("VersionId", "ver-1")]));
        assert_eq!(
            form(&minimal),
            pairs(&[("AppId", "app-1"), ("PublishEnv", "staging")])
        );

        let r = requests::get_edge_container_app_status("app-1", "prod").unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("GetEdgeContainerAppStatus", &Method::POST)
        );
        assert_eq!(
            r.query,
            pairs(&[("AppId", "app-1"), ("PublishEnv", "prod")])
        );
        assert_eq!(r.body, Body::Empty);

        let r = requests::rollback_edge_container_app_version(
            &RollbackEdgeContainerAppVersionRequest {
                app_id: "app-1".into(),
                version_id: "ver-1".into(),
                percentage: Some(100),
                used_percent: Some(false),
                remarks: Some("bad canary".into()),
            },
        )
        .unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("RollbackEdgeContainerAppVersion", &Method::POST)
        );
        assert_eq!(
            r.query,
            pairs(&[
                ("VersionId", "ver-1"),
                ("Percentage", "100"),
                ("UsedPercent", "False")
            ])
        );
        assert_eq!(
            form(&r),
            pairs(&[("AppId", "app-1"), ("Remarks", "bad canary")])
        );

        let r = requests::list_edge_container_app_versions(&ListEdgeContainerAppVersionsRequest {
            app_id: "app-1".into(),
            page_number: Some(1),
            page_size: Some(10),
            order_key: Some("CreateTime".into()),
            order_type: Some("DESC".into()),
            search_key: None,
            search_type: None,
        })
        .unwrap();
        assert_eq!(
            (r.action, &r.method),
            ("ListEdgeContainerAppVersions", &Method::GET)
        );
        assert_eq!(
            r.query,
            pairs(&[
                ("AppId", "app-1"),
                ("PageNumber", "1"),
                ("PageSize", "10"),
                ("OrderKey", "CreateTime"),
                ("OrderType", "DESC")
            ])
        );
        assert_eq!(r.body, Body::Empty);
    }

    #[test]
    fn signed_headers_and_signature() {
        let req = requests::update_service_version("cn-shanghai", "svc", 2).unwrap();
        let endpoint = Endpoint::parse("127.0.0.1:18080").unwrap();
        let creds = Credentials::new("ak", "sk").with_security_token("sts-tok");
        let s = sign_request(&req, &endpoint, &creds, "2026-05-08T16:10:56Z", "nonce-1");
        assert_eq!(
            s.url,
            "http://127.0.0.1:18080/api/v2/services/cn-shanghai/svc/version"
        );
        assert_eq!(s.body, br#"{"Version":2}"#);
        let h = |name: &str| {
            s.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no header {name}"))
        };
        assert_eq!(h("host"), "127.0.0.1:18080");
        assert_eq!(h("x-acs-action"), "UpdateServiceVersion");
        assert_eq!(h("x-acs-version"), "2021-07-01");
        assert_eq!(h("x-acs-date"), "2026-05-08T16:10:56Z");
        assert_eq!(h("x-acs-signature-nonce"), "nonce-1");
        assert_eq!(
            h("x-acs-content-sha256"),
            sign::sha256_hex(br#"{"Version":2}"#)
        );
        assert_eq!(h("content-type"), CONTENT_TYPE_JSON);
        assert_eq!(h("x-acs-security-token"), "sts-tok");
        let auth = sign::parse_authorization(&h("authorization")).unwrap();
        assert_eq!(auth.access_key_id, "ak");
        assert_eq!(
            auth.signed_headers,
            [
                "content-type",
                "host",
                "x-acs-action",
                "x-acs-content-sha256",
                "x-acs-date",
                "x-acs-security-token",
                "x-acs-signature-nonce",
                "x-acs-version"
            ]
        );
        // Recompute as a server would.
        let sent: Vec<(String, String)> = s.headers.clone();
        let expected = sign::authorization(
            "ak",
            "sk",
            &sign::CanonicalInput {
                method: "PUT",
                canonical_uri: "/api/v2/services/cn-shanghai/svc/version",
                query: &[],
                headers: &sent,
                signed_headers: &auth.signed_headers,
                hashed_payload: &h("x-acs-content-sha256"),
            },
        );
        assert_eq!(h("authorization"), expected);

        // Without a body: no content-type, empty-body hash; without a token: no token header.
        let req = requests::get_edge_container_app_status("app-1", "prod").unwrap();
        let s = sign_request(
            &req,
            &Endpoint::https("esa.cn-hangzhou.aliyuncs.com"),
            &Credentials::new("ak", "sk"),
            "2026-05-08T16:10:56Z",
            "n2",
        );
        assert_eq!(
            s.url,
            "https://esa.cn-hangzhou.aliyuncs.com/?AppId=app-1&PublishEnv=prod"
        );
        assert!(
            s.headers
                .iter()
                .all(|(n, _)| n != "content-type" && n != "x-acs-security-token")
        );
        assert!(
            s.headers
                .contains(&("x-acs-content-sha256".into(), sign::EMPTY_SHA256.into()))
        );
        assert!(
            s.headers
                .contains(&("x-acs-version".into(), "2024-09-10".into()))
        );
        assert!(
            s.headers
                .contains(&("host".into(), "esa.cn-hangzhou.aliyuncs.com".into()))
        );
    }

    #[test]
    fn mutations_are_told_from_reads_as_the_fake_cloud_lists_them() {
        let rollout = ServiceRolloutRequest {
            paused: Some(true),
            ..Default::default()
        };
        let app = PublishEdgeContainerAppVersionRequest {
            app_id: "app-1".into(),
            version_id: "ver-1".into(),
            publish_env: "prod".into(),
            ..Default::default()
        };
        let built = [
            requests::create_service_rollout("cn-shanghai", "s", &rollout).unwrap(),
            requests::update_service_rollout("cn-shanghai", "s", &rollout).unwrap(),
            requests::describe_service_rollout("cn-shanghai", "s").unwrap(),
            requests::delete_service_rollout("cn-shanghai", "s").unwrap(),
            requests::describe_service("cn-shanghai", "s").unwrap(),
            requests::update_service(
                "cn-shanghai",
                "s",
                &serde_json::json!({}),
                UpdateType::Merge,
            )
            .unwrap(),
            requests::get_routine("r").unwrap(),
            requests::publish_edge_container_app_version(&app).unwrap(),
            requests::get_edge_container_app_status("app-1", "prod").unwrap(),
            requests::list_service_versions("cn-shanghai", "s", None, None).unwrap(),
            requests::update_service_version("cn-shanghai", "s", 2).unwrap(),
        ];
        for req in built {
            let listed = crate::cloud::fake::APIS
                .iter()
                .find(|(name, _)| *name == req.action)
                .map(|(_, mutation)| *mutation);
            let want = listed.unwrap_or(req.action.starts_with("Update"));
            assert_eq!(req.is_mutation(), want, "{}", req.action);
        }
    }

    #[test]
    fn nonces_are_unique_and_dates_formatted() {
        let a: std::collections::HashSet<String> = (0..1000).map(|_| new_nonce()).collect();
        assert_eq!(a.len(), 1000);
        let t: jiff::Timestamp = "2026-05-08T16:10:56.789Z".parse().unwrap();
        assert_eq!(acs_date(t), "2026-05-08T16:10:56Z");
    }
}
