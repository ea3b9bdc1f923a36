//! The plugin's calls to the Kubernetes API, each bounded, each failure worded for a
//! person.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

use super::PluginError;
use super::action::FIELD_MANAGER;
use super::rollout::{AnyRollout, Kind, Target};
use super::view::ListEntry;

/// Where the cluster is: kubectl's own flags.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// A client for one cluster, and the namespace commands act in.
pub struct Cluster {
    client: Client,
    pub namespace: String,
    server: String,
}

/// A rollout as read: typed, and as JSON (for managedFields and the exact spec values).
pub struct Found {
    pub rollout: AnyRollout,
    pub json: Value,
}

impl Cluster {
    /// Load the kubeconfig (the flag, `KUBECONFIG`, `~/.kube/config`, or the in-cluster
    /// service account) and build a client whose every call is bounded.
    pub async fn connect(opts: &ConnectOptions) -> Result<Cluster, PluginError> {
        let options = KubeConfigOptions {
            context: opts.context.clone(),
            ..Default::default()
        };
        let mut config = match &opts.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                    PluginError::NoCluster(format!("cannot read {}: {e}", path.display()))
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| PluginError::NoCluster(format!("{}: {e}", path.display())))?
            }
            None if opts.context.is_some() => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| PluginError::NoCluster(e.to_string()))?,
            None => Config::infer().await.map_err(|e| {
                PluginError::NoCluster(format!(
                    "no kubeconfig found (--kubeconfig, KUBECONFIG, ~/.kube/config) and not \
                     running in a cluster: {e}"
                ))
            })?,
        };
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(30));
        config.write_timeout = Some(Duration::from_secs(30));
        let namespace = opts
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| PluginError::NoCluster(e.to_string()))?;
        Ok(Cluster {
            client,
            namespace,
            server,
        })
    }

    fn api(&self, kind: Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = kind.api_resource();
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// A failed call, worded: unreachable, not served, forbidden, refused.
    fn failed(&self, e: kube::Error, doing: &str) -> PluginError {
        match e {
            kube::Error::Api(status) => {
                if status.code == 404 && status.details.as_ref().is_none_or(|d| d.name.is_empty()) {
                    PluginError::NotServed(format!(
                        "{doing}: the cluster at {} does not serve it ({}): are the \
                         alicloud-rollouts CRDs installed?",
                        self.server, status.message
                    ))
                } else if status.code == 409 {
                    PluginError::Conflict(format!("{doing}: {}", status.message))
                } else {
                    PluginError::Api(format!(
                        "{doing}: {} ({}, HTTP {})",
                        status.message, status.reason, status.code
                    ))
                }
            }
            other => PluginError::Unreachable(format!(
                "{doing}: cannot reach the cluster at {}: {other}",
                self.server
            )),
        }
    }

    async fn get_kind(&self, kind: Kind, name: &str) -> Result<Option<Found>, PluginError> {
        let doing = format!("reading {}/{name}", kind.singular());
        let obj = self
            .api(kind, Some(&self.namespace))
            .get_opt(name)
            .await
            .map_err(|e| self.failed(e, &doing))?;
        let Some(obj) = obj else {
            return Ok(None);
        };
        let json =
            serde_json::to_value(&obj).map_err(|e| PluginError::Api(format!("{doing}: {e}")))?;
        let rollout = AnyRollout::from_value(kind, json.clone()).map_err(|e| {
            PluginError::Api(format!(
                "{doing}: the object does not match the {} schema: {e}",
                kind.name()
            ))
        })?;
        Ok(Some(Found { rollout, json }))
    }

    /// The rollout `target` names in the namespace: of its kind, or the one object of any
    /// kind with that name.
    pub async fn find(&self, target: &Target) -> Result<Found, PluginError> {
        if let Some(kind) = target.kind {
            return self.get_kind(kind, &target.name).await?.ok_or_else(|| {
                PluginError::NotFound(format!(
                    "no {} named {:?} in namespace {:?}",
                    kind.name(),
                    target.name,
                    self.namespace
                ))
            });
        }
        let mut found = Vec::new();
        let mut not_served = Vec::new();
        for kind in Kind::ALL {
            match self.get_kind(kind, &target.name).await {
                Ok(Some(f)) => found.push(f),
                Ok(None) => {}
                Err(PluginError::NotServed(why)) => not_served.push(why),
                Err(e) => return Err(e),
            }
        }
        if not_served.len() == Kind::ALL.len() {
            return Err(PluginError::NotServed(not_served.join("; ")));
        }
        match found.len() {
            0 => Err(PluginError::NotFound(format!(
                "no rollout named {:?} in namespace {:?} (looked for {})",
                target.name,
                self.namespace,
                Kind::ALL.map(Kind::name).join(", ")
            ))),
            1 => Ok(found.remove(0)),
            _ => Err(PluginError::Usage(format!(
                "{:?} names more than one rollout in namespace {:?}: {}; say which, e.g. {}",
                target.name,
                self.namespace,
                found
                    .iter()
                    .map(|f| f.rollout.reference())
                    .collect::<Vec<_>>()
                    .join(", "),
                found[0].rollout.reference()
            ))),
        }
    }

    /// Every rollout of every kind in the namespace (or all namespaces), by namespace,
    /// kind and name. A kind the cluster does not serve is skipped with a warning on
    /// stderr; when it serves none, that is the error.
    pub async fn list(&self, all_namespaces: bool) -> Result<Vec<ListEntry>, PluginError> {
        let namespace = (!all_namespaces).then_some(self.namespace.as_str());
        let mut entries = Vec::new();
        let mut not_served = Vec::new();
        for kind in Kind::ALL {
            let doing = format!("listing {}", kind.name());
            let list = match self.api(kind, namespace).list(&ListParams::default()).await {
                Ok(list) => list,
                Err(e) => match self.failed(e, &doing) {
                    PluginError::NotServed(why) => {
                        not_served.push(why);
                        continue;
                    }
                    other => return Err(other),
                },
            };
            for obj in list.items {
                let name = obj.metadata.name.clone().unwrap_or_default();
                let ns = obj.metadata.namespace.clone().unwrap_or_default();
                let created = obj.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let decoded = serde_json::to_value(&obj)
                    .map_err(|e| e.to_string())
                    .and_then(|v| AnyRollout::from_value(kind, v));
                entries.push(match decoded {
                    Ok(r) => ListEntry::Rollout(Box::new(r)),
                    Err(error) => ListEntry::Unreadable {
                        kind,
                        namespace: ns,
                        name,
                        created,
                        error,
                    },
                });
            }
        }
        if not_served.len() == Kind::ALL.len() {
            return Err(PluginError::NotServed(not_served.join("; ")));
        }
        for why in not_served {
            eprintln!("warning: {why}");
        }
        Ok(entries)
    }

    /// The `events.k8s.io/v1` Events in the rollout's namespace that regard it (the
    /// operator publishes these, not core v1 Events). A cluster that cannot list them
    /// gives none: the rest of the view still shows.
    pub async fn events(&self, rollout: &AnyRollout) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), rollout.namespace());
        let params = ListParams::default().fields(&format!("regarding.name={}", rollout.name()));
        match api.list(&params).await {
            Ok(list) => list.items,
            // Some servers do not index that field: filter here instead.
            Err(kube::Error::Api(s)) if s.code == 400 => api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Server-side apply of `body` under [`FIELD_MANAGER`], forcing conflicts (a person's
    /// command wins over the field's previous manager, as `kubectl apply --force-conflicts`
    /// does); returns the object as stored.
    pub async fn apply(&self, rollout: &AnyRollout, body: &Value) -> Result<Value, PluginError> {
        let doing = format!("changing {}", rollout.reference());
        let api = self.api(rollout.kind(), Some(rollout.namespace()));
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let obj = api
            .patch(rollout.name(), &params, &Patch::Apply(body))
            .await
            .map_err(|e| match self.failed(e, &doing) {
                PluginError::NotServed(_) => PluginError::NotFound(format!(
                    "{doing}: it no longer exists in namespace {:?}",
                    rollout.namespace()
                )),
                other => other,
            })?;
        serde_json::to_value(&obj).map_err(|e| PluginError::Api(format!("{doing}: {e}")))
    }
}
