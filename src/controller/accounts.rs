//! The CloudAccounts as the operator sees them: a watch of the accounts and of the
//! namespaces' labels (reflector stores), the clients each account's credentials give
//! (STS AssumeRole cached per account and role), and the requeue of the rollouts an
//! account or a namespace change concerns.
//!
//! Which account a rollout resolves to, and whether it is granted, is decided by the pure
//! [`super::tenancy`]; this module feeds it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::context::{SecretSource, credentials_from_data};
use super::error::Error;
use crate::cloud::provider::{
    CredentialsProvider, DEFAULT_SESSION_DURATION, Exchange, Expiring, RefreshingProvider,
};
use crate::cloud::{CloudApi, CloudError, Credentials};
use crate::crd::CloudAccount;

/// RoleSessionName when the account names none.
pub const DEFAULT_SESSION_NAME: &str = "alicloud-rollouts";

/// Where the accounts and the namespaces' labels come from.
pub trait AccountView: Send + Sync {
    /// Every account this operator considers.
    fn accounts(&self) -> Vec<Arc<CloudAccount>>;
    /// The labels of `namespace`, if known.
    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>>;
}

/// Fixed accounts and labels (tests; and no account at all by default).
#[derive(Default)]
pub struct StaticView {
    pub accounts: Vec<Arc<CloudAccount>>,
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl AccountView for StaticView {
    fn accounts(&self) -> Vec<Arc<CloudAccount>> {
        self.accounts.clone()
    }
    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.labels.get(namespace).cloned()
    }
}

/// The watched accounts and namespaces.
pub struct StoreView {
    accounts: Store<CloudAccount>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
}

impl AccountView for StoreView {
    fn accounts(&self) -> Vec<Arc<CloudAccount>> {
        self.accounts.state()
    }
    fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.labels().clone())
    }
}

/// What changed, for the requeue of the rollouts it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A CloudAccount (created, changed or deleted).
    Account(String),
    /// A namespace's labels.
    Namespace(String),
}

/// Key of one assumed role: the account, the role, the session name and the lifetime.
type RoleKey = (String, String, String, u32);

/// The accounts, the clients they give, and who to tell when they change.
pub struct Accounts {
    view: Arc<dyn AccountView>,
    /// Resolves once the view has its first lists (a static view is ready at once).
    ready: Mutex<Option<futures::future::Shared<futures::future::BoxFuture<'static, ()>>>>,
    roles: Mutex<HashMap<RoleKey, RefreshingProvider>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change>>>,
    /// Bound of one AssumeRole exchange.
    timeout: Duration,
}

impl Default for Accounts {
    /// No account at all: every rollout without its own Secret is refused.
    fn default() -> Self {
        Accounts::with_view(Arc::new(StaticView::default()))
    }
}

impl Accounts {
    pub fn with_view(view: Arc<dyn AccountView>) -> Self {
        Accounts {
            view,
            ready: Mutex::new(None),
            roles: Mutex::default(),
            subscribers: Mutex::default(),
            timeout: Duration::from_secs(30),
        }
    }

    pub fn view(&self) -> &dyn AccountView {
        self.view.as_ref()
    }

    /// Wait until the watched accounts and namespaces are listed once.
    pub async fn ready(&self) {
        let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(ready) = ready {
            ready.await;
        }
    }

    /// Changes of accounts and namespaces from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change> {
        let (tx, rx) = mpsc::unbounded();
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.push(tx);
        rx
    }

    fn tell(&self, change: Change) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|tx| tx.unbounded_send(change.clone()).is_ok());
    }

    /// The client `account`'s credentials give: the operator's own (`operator`), the same
    /// with the keys of a Secret in the operator's namespace (`home`), or with a role
    /// assumed with the operator's own (cached, refreshed before expiry).
    pub async fn cloud_of(
        &self,
        account: &CloudAccount,
        operator: &Arc<dyn CloudApi>,
        secrets: &dyn SecretSource,
        home: &str,
    ) -> Result<Arc<dyn CloudApi>, Error> {
        let spec = &account.spec;
        let name = account.name_any();
        if let Some(secret) = &spec.secret_ref {
            let what = format!(
                "Secret {:?} in the operator's namespace {home:?} (CloudAccount {name:?} spec.secretRef)",
                secret.name
            );
            let read = secrets.read(home, &secret.name).await;
            let credentials = credentials_from_data(&what, read)?;
            return Ok(operator.with_credentials(credentials));
        }
        if let Some(role) = &spec.assume_role {
            let session = role
                .session_name
                .clone()
                .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string());
            let duration = role
                .duration_seconds
                .unwrap_or(DEFAULT_SESSION_DURATION.as_secs() as u32);
            let key = (name, role.role_arn.clone(), session, duration);
            let provider = self.role_provider(key, operator);
            let credentials = provider
                .credentials()
                .await
                .map_err(|e| Error::cloud("AssumeRole", e))?;
            return Ok(operator.with_credentials(credentials));
        }
        Ok(operator.clone())
    }

    /// The one cache of `key`'s role (created on first use).
    fn role_provider(&self, key: RoleKey, operator: &Arc<dyn CloudApi>) -> RefreshingProvider {
        let mut roles = self.roles.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = roles.get(&key) {
            return p.clone();
        }
        let (_, role_arn, session, duration) = key.clone();
        let operator = operator.clone();
        let label = role_arn.clone();
        let exchange: Exchange = Arc::new(move || {
            let (operator, role_arn, session) =
                (operator.clone(), role_arn.clone(), session.clone());
            Box::pin(async move { assume(operator.as_ref(), &role_arn, &session, duration).await })
        });
        let provider = RefreshingProvider::new(label, exchange, self.timeout);
        roles.insert(key, provider.clone());
        provider
    }
}

/// One AssumeRole: the answer as credentials with their expiry.
async fn assume(
    operator: &dyn CloudApi,
    role_arn: &str,
    session: &str,
    duration: u32,
) -> Result<Expiring, CloudError> {
    let answer = operator.assume_role(role_arn, session, duration).await?;
    let missing = || CloudError::Credentials("STS AssumeRole answer lacks Credentials".into());
    let c = answer.credentials.ok_or_else(missing)?;
    if c.access_key_id.is_empty() || c.access_key_secret.is_empty() {
        return Err(missing());
    }
    let expiration = c
        .expiration
        .parse()
        .map_err(|e| CloudError::Decode(format!("STS Expiration {:?}: {e}", c.expiration)))?;
    tracing::debug!(%role_arn, %expiration, "assumed role credentials refreshed");
    let mut credentials = Credentials::new(c.access_key_id, c.access_key_secret);
    if !c.security_token.is_empty() {
        credentials = credentials.with_security_token(c.security_token);
    }
    Ok(Expiring {
        credentials,
        expiration,
    })
}

/// Watch the CloudAccounts (those matching `selector`, a label selector; all when empty)
/// and the namespaces' labels: the view the operator resolves accounts with, and a task
/// telling every subscriber what changed. Returns the accounts to put in the context.
pub fn watch(client: kube::Client, selector: Option<&str>) -> Arc<Accounts> {
    let (accounts, account_writer) = reflector::store::<CloudAccount>();
    let (namespaces, namespace_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let view = StoreView {
        accounts: accounts.clone(),
        namespaces: namespaces.clone(),
    };
    let shared = Arc::new(Accounts::with_view(Arc::new(view)));
    let ready: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
        let _ = accounts.wait_until_ready().await;
        let _ = namespaces.wait_until_ready().await;
    });
    *shared.ready.lock().unwrap_or_else(|p| p.into_inner()) = Some(ready.shared());
    let mut config = watcher::Config::default();
    if let Some(s) = selector.filter(|s| !s.trim().is_empty()) {
        config = config.labels(s);
    }
    let account_events = watcher(Api::<CloudAccount>::all(client.clone()), config)
        .default_backoff()
        .reflect(account_writer)
        .touched_objects()
        .map(|r| r.map(|a| Change::Account(a.name_any())));
    let namespace_events = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(namespace_writer)
    .applied_objects()
    .predicate_filter(kube::runtime::predicates::labels, Default::default())
    .map(|r| r.map(|n| Change::Namespace(n.name_any())));
    let tell = shared.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(futures::stream::select(account_events, namespace_events));
        while let Some(event) = events.next().await {
            match event {
                Ok(change) => tell.tell(change),
                Err(e) => tracing::warn!(error = %e, "watching CloudAccounts or namespaces"),
            }
        }
    });
    shared
}

/// The rollouts `change` concerns among `rollouts` (those that use an account: not the
/// ones with their own credentials Secret): for an account, those naming it and those
/// naming none (the default may have changed); for a namespace, those in it.
pub fn affected<K>(rollouts: &[Arc<K>], change: &Change) -> Vec<ObjectRef<K>>
where
    K: super::status::RolloutObject + kube::Resource<DynamicType = ()>,
{
    rollouts
        .iter()
        .filter(|r| r.credentials().is_none())
        .filter(|r| match change {
            Change::Account(name) => r.account().is_none_or(|a| a == name),
            Change::Namespace(ns) => r.namespace().as_deref() == Some(ns.as_str()),
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{ClientConfig, CloudClient, StaticProvider};

    /// A CloudAccount with `assumeRole`, against the simulator over HTTP: the role is
    /// assumed with the operator's own key, the credentials act in the role's account, and
    /// they are cached (one AssumeRole for several uses).
    #[tokio::test]
    async fn an_assumed_role_acts_in_its_account_and_is_cached() {
        let sim = crate::simulator::start(crate::simulator::SimConfig::default())
            .await
            .expect("simulator");
        let url = format!("http://{}", sim.addr());
        let operator: Arc<dyn CloudApi> = Arc::new(
            CloudClient::new(
                ClientConfig {
                    sts_endpoint: Some(url.clone()),
                    eas_endpoint: Some(url.clone()),
                    ..ClientConfig::default()
                },
                Arc::new(StaticProvider(Credentials::new("testid", "testsecret"))),
            )
            .expect("client"),
        );
        let account: CloudAccount = serde_json::from_value(serde_json::json!({
            "apiVersion": "rollouts.alicloud.dev/v1alpha1",
            "kind": "CloudAccount",
            "metadata": {"name": "team"},
            "spec": {"assumeRole": {"roleArn": "acs:ram::1000000000000042:role/r"},
                     "namespaces": {"names": ["ns"]}},
        }))
        .expect("account");
        let accounts = Accounts::default();
        let secrets = super::super::testing::NoSecrets;
        for _ in 0..3 {
            let cloud = accounts
                .cloud_of(&account, &operator, &secrets, "home")
                .await
                .expect("a client");
            assert_eq!(
                cloud.caller_account().await.expect("identity"),
                "1000000000000042"
            );
        }
        let log: Vec<serde_json::Value> = reqwest::get(format!("{url}/_sim/calllog"))
            .await
            .expect("call log")
            .json()
            .await
            .expect("json");
        let assumed: Vec<_> = log.iter().filter(|c| c["action"] == "AssumeRole").collect();
        assert_eq!(assumed.len(), 1, "{log:?}");
        assert_eq!(assumed[0]["accessKeyId"], "testid");
        assert!(
            log.iter()
                .any(|c| c["action"] == "GetCallerIdentity" && c["account"] == "1000000000000042"),
            "{log:?}"
        );
    }
}
