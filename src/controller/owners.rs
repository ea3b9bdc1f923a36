//! Which resource owns which cloud object, so that two resources never drive one object.
//!
//! The operator already holds every resource of a kind it watches in its controllers'
//! reflector stores; each resource's status records the object it manages (`cloudRef`)
//! and that object's account (`cloudAccount`). The index is read from those stores (all
//! the namespaces the operator watches), plus the claims made in this process between the
//! check and the status write that records ownership, so that two resources reconciled at
//! the same moment cannot both win.
//!
//! The rule: the owner of an object in an account is the resource that recorded it (a
//! recorded ref without an account, written before accounts were recorded, counts for
//! every account). When more than one did (two resources that fought before this rule
//! existed), the oldest one (creation time, then namespace/name) is the owner. Everyone
//! else is refused before any call on the object.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::status::{RolloutObject, RolloutStatus};

/// One resource as the index sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uid: String,
    /// namespace/name.
    pub id: String,
    /// Creation time, seconds since the epoch (0 when unknown).
    pub created: i64,
    /// `status.cloudRef`.
    pub cloud_ref: Option<String>,
    /// `status.cloudAccount`.
    pub account: Option<String>,
}

impl Entry {
    /// `obj` as it stands.
    pub fn of<K>(obj: &K) -> Entry
    where
        K: Resource<DynamicType = ()> + RolloutObject,
    {
        let status = obj.status();
        Entry {
            uid: obj.uid().unwrap_or_default(),
            id: format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
            created: obj
                .meta()
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
                .unwrap_or_default(),
            cloud_ref: status.and_then(|s| s.cloud_ref()).map(str::to_string),
            account: status.and_then(|s| s.cloud_account()).map(str::to_string),
        }
    }

    fn order(&self) -> (i64, &str) {
        (self.created, &self.id)
    }
}

/// Where the index reads the resources of one kind from.
#[async_trait]
pub trait Source: Send + Sync {
    /// Wait until the source holds every resource (a store's first list).
    async fn ready(&self);
    /// The resources that recorded `cloud_ref` (an entry is built only for those: this runs
    /// on every reconcile, over thousands of resources).
    fn recorded(&self, cloud_ref: &str) -> Vec<Entry>;
    /// Whether the resource `uid` (namespace/name `id`) is still here.
    fn holds(&self, uid: &str, id: &str) -> bool;
    /// The uids of every resource (for the occasional purge of stale claims).
    fn uids(&self) -> Vec<String>;
}

struct StoreSource<K: Resource<DynamicType = ()> + 'static>(Store<K>);

#[async_trait]
impl<K> Source for StoreSource<K>
where
    K: Resource<DynamicType = ()> + RolloutObject + Clone + Send + Sync + 'static,
{
    async fn ready(&self) {
        // A store that never fills (its watch keeps failing) must not hold every
        // reconcile: after the wait, what it holds is used.
        let _ = tokio::time::timeout(Duration::from_secs(30), self.0.wait_until_ready()).await;
    }

    fn recorded(&self, cloud_ref: &str) -> Vec<Entry> {
        self.0
            .state()
            .iter()
            .filter(|o| o.status().and_then(|s| s.cloud_ref()) == Some(cloud_ref))
            .map(|o| Entry::of(o.as_ref()))
            .collect()
    }

    fn holds(&self, uid: &str, id: &str) -> bool {
        let Some((namespace, name)) = id.split_once('/') else {
            return false;
        };
        let key = ObjectRef::<K>::new(name).within(namespace);
        self.0
            .get(&key)
            .is_some_and(|o| o.uid().as_deref() == Some(uid))
    }

    fn uids(&self) -> Vec<String> {
        self.0.state().iter().filter_map(|o| o.uid()).collect()
    }
}

/// A fixed list of resources (tests).
pub struct Fixed(pub Vec<Entry>);

#[async_trait]
impl Source for Fixed {
    async fn ready(&self) {}
    fn recorded(&self, cloud_ref: &str) -> Vec<Entry> {
        self.0
            .iter()
            .filter(|e| e.cloud_ref.as_deref() == Some(cloud_ref))
            .cloned()
            .collect()
    }
    fn holds(&self, uid: &str, _id: &str) -> bool {
        self.0.iter().any(|e| e.uid == uid)
    }
    fn uids(&self) -> Vec<String> {
        self.0.iter().map(|e| e.uid.clone()).collect()
    }
}

type ClaimKey = (&'static str, String, String);

/// The index of owners, per kind.
#[derive(Default)]
pub struct Owners {
    sources: Mutex<HashMap<&'static str, Vec<Arc<dyn Source>>>>,
    /// (kind, account, cloudRef) -> the resource that claimed it in this process.
    claims: Mutex<Claims>,
}

/// Claims, and the size past which the claims of resources that are gone are purged.
#[derive(Default)]
struct Claims {
    by_key: HashMap<ClaimKey, Entry>,
    purge_at: usize,
}

impl Owners {
    /// Read resources of `kind` from `store` (one per watched namespace).
    pub fn register<K>(&self, kind: &'static str, store: Store<K>)
    where
        K: Resource<DynamicType = ()> + RolloutObject + Clone + Send + Sync + 'static,
    {
        self.add_source(kind, Arc::new(StoreSource(store)));
    }

    pub fn add_source(&self, kind: &'static str, source: Arc<dyn Source>) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default()
            .push(source);
    }

    /// Check that `me` may act on `cloud_ref` in `account`, and when `take`, claim it for
    /// `me` in the same step. `Err` holds the owner's namespace/name.
    pub async fn claim(
        &self,
        kind: &'static str,
        cloud_ref: &str,
        account: &str,
        me: &Entry,
        take: bool,
    ) -> Result<(), String> {
        let sources = self.sources_of(kind);
        for s in &sources {
            s.ready().await;
        }
        let recorded: Vec<Entry> = sources.iter().flat_map(|s| s.recorded(cloud_ref)).collect();
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        let key = (kind, account.to_string(), cloud_ref.to_string());
        if !sources.is_empty() {
            claims.forget_gone(&key, &sources);
        }
        let mut candidates: Vec<&Entry> = recorded
            .iter()
            .filter(|e| e.uid != me.uid && e.account.as_deref().is_none_or(|a| a == account))
            .collect();
        if let Some(c) = claims.by_key.get(&key)
            && c.uid != me.uid
        {
            candidates.push(c);
        }
        if me.cloud_ref.as_deref() == Some(cloud_ref) {
            candidates.push(me);
        }
        let owner = candidates
            .into_iter()
            .min_by(|a, b| a.order().cmp(&b.order()));
        match owner {
            Some(o) if o.uid != me.uid => Err(o.id.clone()),
            _ => {
                if take {
                    claims.by_key.insert(key, me.clone());
                }
                Ok(())
            }
        }
    }

    fn sources_of(&self, kind: &'static str) -> Vec<Arc<dyn Source>> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(kind)
            .cloned()
            .unwrap_or_default()
    }

    /// Forget what `uid` claimed (it is being deleted).
    pub fn release(&self, uid: &str) {
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .retain(|_, e| e.uid != uid);
    }
}

impl Claims {
    /// A claim whose resource is gone holds nothing: the one at `key` is checked on every
    /// use; all of them are purged whenever the claims have doubled since the last purge
    /// (resources deleted without a cleanup leave theirs behind).
    fn forget_gone(&mut self, key: &ClaimKey, sources: &[Arc<dyn Source>]) {
        if let Some(c) = self.by_key.get(key)
            && !sources.iter().any(|s| s.holds(&c.uid, &c.id))
        {
            self.by_key.remove(key);
        }
        if self.by_key.len() < self.purge_at {
            return;
        }
        let kind = key.0;
        let alive: std::collections::HashSet<String> =
            sources.iter().flat_map(|s| s.uids()).collect();
        self.by_key
            .retain(|(k, _, _), c| *k != kind || alive.contains(&c.uid));
        self.purge_at = self.by_key.len().saturating_mul(2).max(64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: &str, created: i64, cloud_ref: Option<&str>, account: Option<&str>) -> Entry {
        Entry {
            uid: uid.into(),
            id: format!("ns/{uid}"),
            created,
            cloud_ref: cloud_ref.map(Into::into),
            account: account.map(Into::into),
        }
    }

    const REF: &str = "cn-shanghai/svc";

    #[tokio::test]
    async fn the_first_to_record_owns_and_others_are_told_who() {
        let owners = Owners::default();
        let first = entry("a", 10, Some(REF), Some("111"));
        let second = entry("b", 5, None, None);
        owners.add_source("eas", Arc::new(Fixed(vec![first.clone(), second.clone()])));
        // The owner keeps working.
        assert_eq!(owners.claim("eas", REF, "111", &first, true).await, Ok(()));
        // An older resource that never recorded it is still second.
        assert_eq!(
            owners.claim("eas", REF, "111", &second, true).await,
            Err("ns/a".into())
        );
        // The same name in another account is another object.
        assert_eq!(owners.claim("eas", REF, "222", &second, true).await, Ok(()));
        // Another object is free.
        assert_eq!(
            owners
                .claim("eas", "cn-shanghai/other", "111", &second, true)
                .await,
            Ok(())
        );
        // Another kind is another index.
        assert_eq!(
            owners.claim("routine", REF, "111", &second, true).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn two_that_recorded_it_resolve_to_the_oldest_and_a_ref_without_account_counts() {
        let owners = Owners::default();
        let old = entry("old", 1, Some(REF), None);
        let young = entry("young", 2, Some(REF), Some("111"));
        owners.add_source("eas", Arc::new(Fixed(vec![old.clone(), young.clone()])));
        assert_eq!(owners.claim("eas", REF, "111", &old, true).await, Ok(()));
        assert_eq!(
            owners.claim("eas", REF, "111", &young, true).await,
            Err("ns/old".into())
        );
    }

    #[tokio::test]
    async fn a_claim_in_flight_wins_until_its_resource_goes() {
        let owners = Owners::default();
        let a = entry("a", 1, None, None);
        let b = entry("b", 0, None, None);
        // No store: claims alone decide (two reconciles racing before any status write).
        assert_eq!(owners.claim("eas", REF, "111", &a, true).await, Ok(()));
        assert_eq!(
            owners.claim("eas", REF, "111", &b, true).await,
            Err("ns/a".into())
        );
        // A check without taking leaves no claim.
        let c = entry("c", 0, None, None);
        owners.release("a");
        assert_eq!(owners.claim("eas", REF, "111", &c, false).await, Ok(()));
        assert_eq!(owners.claim("eas", REF, "111", &b, true).await, Ok(()));
        // With a store that no longer holds the claimant, its claim is void.
        let owners = Owners::default();
        assert_eq!(owners.claim("eas", REF, "111", &a, true).await, Ok(()));
        owners.add_source("eas", Arc::new(Fixed(vec![b.clone()])));
        assert_eq!(owners.claim("eas", REF, "111", &b, true).await, Ok(()));
    }
}
