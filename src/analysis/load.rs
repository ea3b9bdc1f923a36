//! The reads of an analysis (its template and the Secrets it names) and the real providers.
//!
//! An AnalysisTemplate and its Secrets are read in the rollout's namespace; a
//! ClusterAnalysisTemplate's Secrets in the operator's namespace (a rollout must not reach
//! another namespace's Secrets through a cluster-wide template).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::args::{self, Args, SecretKey};
use super::cloudmonitor::CloudMonitorProvider;
use super::prometheus::PrometheusProvider;
use super::web::WebProvider;
use super::{AnalysisCx, Builtins, MakeProvider, Provider, timeout_of};
use crate::cloud::api::CloudApi;
use crate::crd::analysis::{
    AnalysisRef, AnalysisTemplate, AnalysisTemplateSpec, AuthSecretRef, ClusterAnalysisTemplate,
    Metric,
};

/// Values of the Secret keys a template names.
pub type Secrets = BTreeMap<SecretKey, String>;

/// A template read, with its arguments resolved.
pub struct Loaded {
    pub spec: AnalysisTemplateSpec,
    pub args: Args,
    pub secrets: Secrets,
}

/// Read the template and its Secrets, and resolve the arguments.
pub async fn load(
    cx: &AnalysisCx,
    namespace: &str,
    aref: &AnalysisRef,
    builtins: &Builtins,
) -> Result<Loaded, String> {
    let (spec, secret_namespace) = read_template(cx, namespace, aref).await?;
    let mut keys: BTreeSet<SecretKey> = args::secret_keys(&spec.args).into_iter().collect();
    keys.extend(auth_refs(&spec).map(|a| (a.name.clone(), a.key.clone())));
    let secrets = read_secrets(&cx.kube, secret_namespace, &keys).await?;
    let mut args = args::resolve(&spec.args, &aref.args, builtins, &secrets)?;
    for a in auth_refs(&spec) {
        if let Some(v) = secrets.get(&(a.name.clone(), a.key.clone())) {
            args.hide(v);
        }
    }
    Ok(Loaded {
        spec,
        args,
        secrets,
    })
}

async fn read_template<'a>(
    cx: &'a AnalysisCx,
    namespace: &'a str,
    aref: &AnalysisRef,
) -> Result<(AnalysisTemplateSpec, &'a str), String> {
    let name = &aref.template_ref.name;
    if aref.template_ref.cluster_scope {
        let api: Api<ClusterAnalysisTemplate> = Api::all(cx.kube.clone());
        match api.get_opt(name).await {
            Ok(Some(t)) => Ok((t.spec.0, cx.operator_namespace.as_str())),
            Ok(None) => Err(format!(
                "ClusterAnalysisTemplate {name} not found: create it or fix templateRef.name"
            )),
            Err(e) => Err(format!("reading ClusterAnalysisTemplate {name}: {e}")),
        }
    } else {
        let api: Api<AnalysisTemplate> = Api::namespaced(cx.kube.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(t)) => Ok((t.spec, namespace)),
            Ok(None) => Err(format!(
                "AnalysisTemplate {namespace}/{name} not found: create it in the rollout's namespace, or set templateRef.clusterScope for a ClusterAnalysisTemplate"
            )),
            Err(e) => Err(format!("reading AnalysisTemplate {namespace}/{name}: {e}")),
        }
    }
}

fn auth_refs(spec: &AnalysisTemplateSpec) -> impl Iterator<Item = &AuthSecretRef> {
    spec.metrics.iter().filter_map(|m| {
        let p = &m.provider;
        p.prometheus
            .as_ref()
            .and_then(|x| x.auth_secret_ref.as_ref())
            .or(p.web.as_ref().and_then(|x| x.auth_secret_ref.as_ref()))
    })
}

/// One GET per Secret; the values of the keys asked for (a missing key is an error).
async fn read_secrets(
    kube: &kube::Client,
    namespace: &str,
    keys: &BTreeSet<SecretKey>,
) -> Result<Secrets, String> {
    let api: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let names: BTreeSet<&String> = keys.iter().map(|(n, _)| n).collect();
    let mut out = Secrets::new();
    for name in names {
        let secret = match api.get_opt(name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(format!("Secret {namespace}/{name} not found")),
            Err(e) => return Err(format!("reading Secret {namespace}/{name}: {e}")),
        };
        let data = secret.data.unwrap_or_default();
        for (_, key) in keys.iter().filter(|(n, _)| n == name) {
            let bytes = data
                .get(key)
                .ok_or_else(|| format!("Secret {namespace}/{name} has no key {key}"))?;
            let text = String::from_utf8(bytes.0.clone())
                .map_err(|_| format!("Secret {namespace}/{name} key {key} is not UTF-8 text"))?;
            let text = text.trim_end_matches(['\r', '\n']).to_string();
            out.insert((name.clone(), key.clone()), text);
        }
    }
    Ok(out)
}

/// The providers that make calls.
pub struct RealProviders<'a> {
    pub http: &'a reqwest::Client,
    pub cloud: &'a Arc<dyn CloudApi>,
    pub secrets: &'a Secrets,
}

impl MakeProvider for RealProviders<'_> {
    fn make(&self, metric: &Metric, args: &Args) -> Result<Box<dyn Provider>, String> {
        let sub = |t: &str| args::substitute(t, args);
        let p = &metric.provider;
        if let Some(m) = &p.prometheus {
            return Ok(Box::new(PrometheusProvider {
                http: self.http.clone(),
                address: sub(&m.address)?,
                query: sub(&m.query)?,
                auth: m
                    .auth_secret_ref
                    .as_ref()
                    .map(|a| self.auth(a))
                    .transpose()?,
                timeout: timeout_of(m.timeout.as_deref()),
            }));
        }
        if let Some(m) = &p.web {
            let mut headers = Vec::new();
            for h in &m.headers {
                headers.push((h.name.clone(), sub(&h.value)?));
            }
            if let Some(a) = &m.auth_secret_ref {
                headers.push(self.auth(a)?);
            }
            return Ok(Box::new(WebProvider {
                http: self.http.clone(),
                method: m.method,
                url: sub(&m.url)?,
                headers,
                body: m.body.as_deref().map(sub).transpose()?,
                json_path: m.json_path.clone(),
                timeout: timeout_of(m.timeout.as_deref()),
            }));
        }
        if let Some(m) = &p.cloud_monitor {
            let mut m = m.clone();
            m.metric_name = sub(&m.metric_name)?;
            m.namespace = m.namespace.as_deref().map(sub).transpose()?;
            for v in m.dimensions.values_mut() {
                *v = sub(v)?;
            }
            // Without a region of its own, the metric is read where the rollout runs.
            m.region = match m.region.as_deref() {
                Some(r) => Some(sub(r)?),
                None => args.get("region").map(str::to_string),
            };
            let timeout = timeout_of(m.timeout.as_deref());
            return Ok(Box::new(CloudMonitorProvider::new(
                m,
                self.cloud.clone(),
                timeout,
            )));
        }
        Err("no provider: set prometheus, web or cloudMonitor".to_string())
    }
}

impl RealProviders<'_> {
    /// The Secret header of `auth`: `<header or Authorization>: <prefix or "Bearer "><value>`.
    fn auth(&self, auth: &AuthSecretRef) -> Result<(String, String), String> {
        let value = self
            .secrets
            .get(&(auth.name.clone(), auth.key.clone()))
            .ok_or_else(|| format!("Secret {} has no key {}", auth.name, auth.key))?;
        let header = auth
            .header
            .clone()
            .unwrap_or_else(|| "Authorization".to_string());
        let prefix = auth.prefix.as_deref().unwrap_or("Bearer ");
        Ok((header, format!("{prefix}{value}")))
    }
}
