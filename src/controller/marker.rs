//! The ownership marker in the cloud: which cluster, and which resource in it, drives a
//! cloud object (see docs/ownership.md).
//!
//! The in-cluster checks ([`super::owners`], `status.cloudAccount`) keep two resources of
//! one cluster apart; they cannot see another cluster, nor a resource restored from a
//! backup without its status. Where the product can carry one, the object itself says who
//! owns it: for EAS, the service label [`MARKER_KEY`] set with UpdateServiceLabel (which
//! starts no new version), read back from DescribeService. ESA routines and container apps
//! have no such field (ESA tags cover sites and DNS records only): they keep no marker.
//!
//! The rules (pure, in [`decide`]), applied by [`guard`] before a reconcile's first
//! mutation, on a fresh read of the marker:
//! 1. No marker: the resource takes the object; the marker is set first (one
//!    UpdateServiceLabel, reported like any mutation).
//! 2. The marker is this resource's (same cluster id, namespace, kind and name, so also a
//!    resource restored without status): go on.
//! 3. Another owner's marker: Degraded `OwnedElsewhere`, naming the owner, and no mutation;
//!    unless `spec.adoptFrom` names exactly that marker: then the marker is rewritten to
//!    this resource's, and it goes on.
//! 4. The status says this resource set the marker and the cloud shows none: go on
//!    without writing it again (a lagging read; one mutation per intent).
//!
//! Deletion with `deletionPolicy: Delete` removes the marker with the rollout ([`release`]);
//! `Retain` leaves it: the object stays marked by the deleted resource, and a new resource
//! takes it with `adoptFrom` (the same resource recreated finds its own marker).

use async_trait::async_trait;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::context::Context;
use super::error::Error;
use super::runner::Rollout;
use crate::cloud::CloudApi;
use crate::crd::{EasServiceRollout, EasServiceRolloutStatus};

/// The label key of the marker.
pub const MARKER_KEY: &str = "alicloud-rollouts.owner";

/// The longest marker value written, in bytes (PAI labels: at most 128 bytes, no `=` or
/// `,`; see docs/ownership.md for the reading).
pub const MAX_MARKER_BYTES: usize = 128;

/// The condition/Event reason of an object marked by another owner.
pub const REASON_OWNED_ELSEWHERE: &str = "OwnedElsewhere";

/// A kind whose product can carry the marker.
#[async_trait]
pub trait CloudMarker<K: Rollout>: Send + Sync {
    /// The marker on the object (`None`: unmarked).
    async fn read(&self, obj: &K, cloud: &dyn CloudApi) -> Result<Option<String>, Error>;
    /// Set the marker; returns the RequestId.
    async fn write(&self, obj: &K, cloud: &dyn CloudApi, value: &str) -> Result<String, Error>;
    /// Remove the marker; returns the RequestId.
    async fn remove(&self, obj: &K, cloud: &dyn CloudApi) -> Result<String, Error>;
    /// The marker the status records as found or set by this resource.
    fn recorded<'a>(&self, status: &'a K::Status) -> Option<&'a str>;
    fn record(&self, status: &mut K::Status, value: Option<String>);
    /// `spec.adoptFrom`.
    fn adopt_from<'a>(&self, obj: &'a K) -> Option<&'a str>;
}

/// The marker value of `obj` in cluster `cluster_id`:
/// `<cluster id>/<namespace>/<kind>/<name>`; one longer than [`MAX_MARKER_BYTES`] keeps
/// its first bytes and ends with `~` and 16 hex digits of the SHA-256 of the whole.
pub fn value_of(cluster_id: &str, kind: &str, namespace: &str, name: &str) -> String {
    let full = format!("{cluster_id}/{namespace}/{kind}/{name}");
    if full.len() <= MAX_MARKER_BYTES {
        return full;
    }
    let hash = crate::cloud::sign::sha256_hex(full.as_bytes());
    let mut keep = MAX_MARKER_BYTES - 17;
    while !full.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}~{}", &full[..keep], &hash[..16])
}

/// A usable `--cluster-id`: 1 to 40 of `A-Z a-z 0-9 . _ -` (a kube-system uid is 36).
pub fn check_cluster_id(id: &str) -> anyhow::Result<()> {
    let ok = (1..=40).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        anyhow::bail!("--cluster-id {id:?}: 1 to 40 of A-Z a-z 0-9 . _ -")
    }
}

/// This resource's marker value.
pub fn mine<K: Rollout>(obj: &K, cx: &Context) -> String {
    value_of(
        &cx.cluster_id,
        K::LABEL,
        &obj.namespace().unwrap_or_default(),
        &obj.name_any(),
    )
}

/// What to do about the marker before mutating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ours already: go on.
    Proceed,
    /// Set our marker first (unmarked, or adopted from the owner named).
    Mark { adopted_from: Option<String> },
    /// Another owner's: no mutation.
    Refuse { owner: String },
}

/// The rules of this module (pure): `found` is the marker read now, `mine` this
/// resource's, `recorded` what its status says it found or set, `adopt_from` its spec.
pub fn decide(
    found: Option<&str>,
    mine: &str,
    recorded: Option<&str>,
    adopt_from: Option<&str>,
) -> Decision {
    match found {
        Some(f) if f == mine => Decision::Proceed,
        Some(f) if adopt_from == Some(f) => Decision::Mark {
            adopted_from: Some(f.to_string()),
        },
        Some(f) => Decision::Refuse {
            owner: f.to_string(),
        },
        None if recorded == Some(mine) => Decision::Proceed,
        None => Decision::Mark { adopted_from: None },
    }
}

/// What [`check`] found: whether the marker is to be set before the first mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marking {
    /// Nothing to write (the kind has no marker, the object is ours, or nothing mutates).
    Nothing,
    /// Set this resource's marker (taking the object over from `adopted_from`).
    Set { adopted_from: Option<String> },
}

/// Before the plan's mutations (`mutating`), or while the status records no marker yet:
/// read the marker and apply [`decide`]. Another owner's marker is an
/// [`Error::OwnedElsewhere`] (before anything is recorded or sent). `status` (the one
/// about to be written) carries the marker the status records.
pub async fn check<K: Rollout>(
    obj: &K,
    cx: &Context,
    cloud_ref: &str,
    cloud: &dyn CloudApi,
    mutating: bool,
    stored: Option<&K::Status>,
    status: &mut K::Status,
) -> Result<Marking, Error> {
    let Some(marker) = K::cloud_marker() else {
        return Ok(Marking::Nothing);
    };
    let me = mine(obj, cx);
    // A marker sent whose answer was lost counts as set (rule 4): the cloud is read, the
    // label is not sent again.
    let recorded = stored
        .and_then(|s| marker.recorded(s).map(str::to_string))
        .or_else(|| sent_unanswered(obj, cx, &me));
    marker.record(status, recorded.clone());
    if !mutating && recorded.as_deref() == Some(me.as_str()) {
        return Ok(Marking::Nothing);
    }
    let found = marker.read(obj, cloud).await?;
    let adopt = marker.adopt_from(obj);
    match decide(found.as_deref(), &me, recorded.as_deref(), adopt) {
        Decision::Refuse { owner } => Err(Error::OwnedElsewhere {
            object: cloud_ref.to_string(),
            owner,
            adopt: adopt.map(str::to_string),
        }),
        Decision::Proceed => {
            marker.record(status, Some(me));
            Ok(Marking::Nothing)
        }
        Decision::Mark { .. } if !mutating => Ok(Marking::Nothing),
        Decision::Mark { adopted_from } => Ok(Marking::Set { adopted_from }),
    }
}

/// Set the marker [`check`] asked for (a mutation: after `status.cloudRef` is recorded,
/// before the plan's actions), and record it in `status`, written with the rest of the
/// reconcile's status (no write of its own: a lost record only costs the next reconcile
/// a read, which finds the marker its own).
pub async fn mark<K: Rollout>(
    obj: &K,
    cx: &Context,
    cloud: &dyn CloudApi,
    marking: Marking,
    status: &mut K::Status,
) -> Result<(), Error> {
    let (Some(marker), Marking::Set { adopted_from }) = (K::cloud_marker(), marking) else {
        return Ok(());
    };
    let me = mine(obj, cx);
    if let Err(e) = set(obj, cx, cloud, marker, &me, adopted_from).await {
        if e.outcome_unknown() {
            remember_unanswered(obj, cx, &me);
        }
        return Err(e);
    }
    marker.record(status, Some(me));
    Ok(())
}

fn unanswered_key<K: Rollout>(obj: &K) -> String {
    format!("marker/{}", obj.uid().unwrap_or_default())
}

/// Remember (in memory) that the marker `me` was sent and its answer lost.
fn remember_unanswered<K: Rollout>(obj: &K, cx: &Context, me: &str) {
    let record = crate::crd::common::MutationInFlight {
        action: "UpdateServiceLabel".into(),
        request: me.to_string(),
        accepted_at: jiff::Timestamp::now().to_string(),
        resent: false,
    };
    cx.remember_in_flight(&unanswered_key(obj), vec![record]);
}

/// The marker this process sent for `obj` without an answer, if it is `me`.
fn sent_unanswered<K: Rollout>(obj: &K, cx: &Context, me: &str) -> Option<String> {
    cx.remembered_in_flight(&unanswered_key(obj))
        .into_iter()
        .find(|r| r.request == me)
        .map(|r| r.request)
}

/// Whose marker the object carries when it is not this resource's (`None`: ours, none,
/// or no marker for this kind). A cleanup deletes nothing in an object another owner
/// holds.
pub async fn other_owner<K: Rollout>(
    obj: &K,
    cx: &Context,
    cloud: &dyn CloudApi,
) -> Result<Option<String>, Error> {
    let Some(marker) = K::cloud_marker() else {
        return Ok(None);
    };
    let me = mine(obj, cx);
    Ok(marker.read(obj, cloud).await?.filter(|found| *found != me))
}

/// Write the marker: counted, logged and reported in one Event with its RequestId.
async fn set<K: Rollout>(
    obj: &K,
    cx: &Context,
    cloud: &dyn CloudApi,
    marker: &dyn CloudMarker<K>,
    me: &str,
    adopted_from: Option<String>,
) -> Result<(), Error> {
    if !cx.leadership.is_leader() {
        return Err(Error::NotLeader);
    }
    let request_id = marker.write(obj, cloud, me).await?;
    cx.metrics.mutation(K::LABEL, "UpdateServiceLabel");
    let what = match &adopted_from {
        Some(previous) => format!("took the object over from {previous}: marked it {me}"),
        None => format!("marked the object as owned by {me}"),
    };
    tracing::info!(action = "UpdateServiceLabel", %request_id, "{what}");
    let reason = if adopted_from.is_some() {
        "Adopted"
    } else {
        "UpdateServiceLabel"
    };
    cx.event(
        obj,
        EventType::Normal,
        reason,
        "UpdateServiceLabel",
        format!("{what} (RequestId {request_id})"),
    )
    .await;
    Ok(())
}

/// `deletionPolicy: Delete`, after the cloud rollout is gone: remove the marker if it is
/// this resource's. A failure is logged, never holding the deletion (the object is no
/// longer driven; a stale marker only means a later resource adopts it).
pub async fn release<K: Rollout>(obj: &K, cx: &Context, cloud: &dyn CloudApi) {
    let Some(marker) = K::cloud_marker() else {
        return;
    };
    let me = mine(obj, cx);
    match marker.read(obj, cloud).await {
        Ok(Some(found)) if found == me => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the ownership marker; it is left");
            return;
        }
    }
    match marker.remove(obj, cloud).await {
        Ok(request_id) => {
            cx.metrics.mutation(K::LABEL, "DeleteServiceLabel");
            let note = format!("removed the ownership marker {me} (RequestId {request_id})");
            cx.event(
                obj,
                EventType::Normal,
                "DeleteServiceLabel",
                "DeleteServiceLabel",
                note,
            )
            .await;
        }
        Err(e) => tracing::warn!(error = %e, "could not remove the ownership marker; it is left"),
    }
}

/// The EAS service label.
pub struct EasMarker;

/// The one [`EasMarker`].
pub static EAS_MARKER: EasMarker = EasMarker;

#[async_trait]
impl CloudMarker<EasServiceRollout> for EasMarker {
    async fn read(
        &self,
        obj: &EasServiceRollout,
        cloud: &dyn CloudApi,
    ) -> Result<Option<String>, Error> {
        let service = cloud
            .describe_service(&obj.spec.region, &obj.spec.service_name)
            .await
            .map_err(|e| Error::cloud("DescribeService", e))?;
        Ok(service.label(MARKER_KEY).map(str::to_string))
    }

    async fn write(
        &self,
        obj: &EasServiceRollout,
        cloud: &dyn CloudApi,
        value: &str,
    ) -> Result<String, Error> {
        let labels =
            std::collections::BTreeMap::from([(MARKER_KEY.to_string(), value.to_string())]);
        let ack = cloud
            .update_service_label(&obj.spec.region, &obj.spec.service_name, &labels)
            .await
            .map_err(|e| Error::cloud("UpdateServiceLabel", e))?;
        Ok(ack.request_id)
    }

    async fn remove(&self, obj: &EasServiceRollout, cloud: &dyn CloudApi) -> Result<String, Error> {
        let keys = [MARKER_KEY.to_string()];
        let ack = cloud
            .delete_service_label(&obj.spec.region, &obj.spec.service_name, &keys)
            .await
            .map_err(|e| Error::cloud("DeleteServiceLabel", e))?;
        Ok(ack.request_id)
    }

    fn recorded<'a>(&self, status: &'a EasServiceRolloutStatus) -> Option<&'a str> {
        status.cloud_owner.as_deref()
    }

    fn record(&self, status: &mut EasServiceRolloutStatus, value: Option<String>) {
        status.cloud_owner = value;
    }

    fn adopt_from<'a>(&self, obj: &'a EasServiceRollout) -> Option<&'a str> {
        obj.spec.adopt_from.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "c1/ns/eas/r";
    const OTHER: &str = "c2/ns/eas/r";

    #[test]
    fn an_unmarked_object_is_marked_first() {
        assert_eq!(
            decide(None, ME, None, None),
            Decision::Mark { adopted_from: None }
        );
    }

    #[test]
    fn our_own_marker_goes_on_also_without_status() {
        assert_eq!(decide(Some(ME), ME, None, None), Decision::Proceed);
        assert_eq!(decide(Some(ME), ME, Some(ME), None), Decision::Proceed);
    }

    #[test]
    fn another_owner_is_refused_and_named() {
        assert_eq!(
            decide(Some(OTHER), ME, None, None),
            Decision::Refuse {
                owner: OTHER.into()
            }
        );
        // Even when the status says the object was once ours: it was taken over.
        assert_eq!(
            decide(Some(OTHER), ME, Some(ME), None),
            Decision::Refuse {
                owner: OTHER.into()
            }
        );
    }

    #[test]
    fn adopt_takes_only_from_the_owner_it_names() {
        assert_eq!(
            decide(Some(OTHER), ME, None, Some(OTHER)),
            Decision::Mark {
                adopted_from: Some(OTHER.into())
            }
        );
        assert_eq!(
            decide(Some("c3/ns/eas/r"), ME, None, Some(OTHER)),
            Decision::Refuse {
                owner: "c3/ns/eas/r".into()
            }
        );
    }

    /// Two clusters applying the same manifest (with the same adoptFrom) never take the
    /// object from each other: once one has it, the other's adoptFrom no longer matches.
    #[test]
    fn the_same_adopt_in_two_clusters_does_not_fight() {
        let (a, b) = ("ca/ns/eas/r", "cb/ns/eas/r");
        let old = "gone/ns/eas/r";
        assert!(matches!(
            decide(Some(old), a, None, Some(old)),
            Decision::Mark { .. }
        ));
        assert!(matches!(
            decide(Some(a), b, None, Some(old)),
            Decision::Refuse { .. }
        ));
        assert_eq!(decide(Some(a), a, Some(a), Some(old)), Decision::Proceed);
    }

    #[test]
    fn a_marker_set_by_us_and_not_yet_visible_is_not_written_again() {
        assert_eq!(decide(None, ME, Some(ME), None), Decision::Proceed);
    }

    #[test]
    fn values_fit_the_label_limits() {
        assert_eq!(value_of("c1", "eas", "ns", "r"), "c1/ns/eas/r");
        let long = "n".repeat(253);
        let v = value_of(
            "0f8e2a3c-1111-2222-3333-444455556666",
            "eas",
            "team-a",
            &long,
        );
        assert_eq!(v.len(), MAX_MARKER_BYTES);
        assert!(!v.contains('=') && !v.contains(','));
        let other = value_of(
            "0f8e2a3c-1111-2222-3333-444455556666",
            "eas",
            "team-b",
            &long,
        );
        assert_ne!(v, other, "the hash keeps long names apart");
    }
}

/// The rules through the EAS shell against the in-memory cloud.
#[cfg(test)]
mod shell_tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::controller::runner::apply;
    use crate::controller::testing::{Harness, object};

    const REGION: &str = "cn-shanghai";
    const SERVICE: &str = "svc";

    fn seeded(marker: Option<&str>) -> Harness {
        let mut h = Harness::new();
        h.cx.cluster_id = "c1".to_string();
        h.cloud
            .set_service_config(REGION, SERVICE, json!({"metadata": {"instance": 4}}));
        if let Some(m) = marker {
            h.cloud.set_service_label(REGION, SERVICE, MARKER_KEY, m);
        }
        h
    }

    fn rollout(extra: Value) -> EasServiceRollout {
        let mut spec =
            json!({"region": REGION, "serviceName": SERVICE, "strategy": {"partition": "1"}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        object::<EasServiceRollout>("EasServiceRollout", spec)
    }

    fn mine(h: &Harness, obj: &EasServiceRollout) -> String {
        super::mine(obj, &h.cx)
    }

    #[tokio::test]
    async fn the_marker_is_set_before_the_first_mutation_and_recorded() {
        let h = seeded(None);
        let obj = rollout(json!({}));
        apply(&obj, &h.cx).await.expect("reconciled");
        assert_eq!(
            h.all_mutations(),
            ["UpdateServiceLabel", "CreateServiceRollout"]
        );
        let me = mine(&h, &obj);
        assert_eq!(
            h.cloud.service_labels(REGION, SERVICE).get(MARKER_KEY),
            Some(&me)
        );
        let status = h.writes.last_status().unwrap_or_default();
        assert_eq!(status["cloudOwner"], me.as_str());
        // The next reconciles neither read nor write it again while nothing changes.
        let obj = h.reread(&obj);
        let reads = h.cloud.calls().len();
        apply(&obj, &h.cx).await.expect("reconciled");
        let again: Vec<_> = h.cloud.calls()[reads..].iter().map(|c| c.api).collect();
        assert!(!again.contains(&"UpdateServiceLabel"), "{again:?}");
        assert!(!again.contains(&"DescribeService"), "{again:?}");
    }

    #[tokio::test]
    async fn another_owners_service_is_left_alone_and_the_owner_named() {
        let h = seeded(Some("c2/ns/eas/r"));
        let obj = rollout(json!({}));
        apply(&obj, &h.cx).await.expect("reported, not retried");
        assert!(h.all_mutations().is_empty(), "{:?}", h.all_mutations());
        let status = h.writes.last_status().unwrap_or_default();
        let degraded = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(degraded["reason"], REASON_OWNED_ELSEWHERE, "{status}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains("c2/ns/eas/r"), "{message}");
        assert!(status["cloudRef"].is_null(), "nothing recorded: {status}");
    }

    #[tokio::test]
    async fn adopt_rewrites_the_marker_then_goes_on() {
        let h = seeded(Some("c2/ns/eas/r"));
        let obj = rollout(json!({"adoptFrom": "c2/ns/eas/r"}));
        apply(&obj, &h.cx).await.expect("reconciled");
        assert_eq!(
            h.all_mutations(),
            ["UpdateServiceLabel", "CreateServiceRollout"]
        );
        assert_eq!(
            h.cloud.service_labels(REGION, SERVICE).get(MARKER_KEY),
            Some(&mine(&h, &obj))
        );
        let adopted = h
            .writes
            .events()
            .iter()
            .any(|(_, reason, _)| reason == "Adopted");
        assert!(adopted, "{:?}", h.writes.events());
    }

    #[tokio::test]
    async fn a_resource_without_status_goes_on_with_its_own_marker() {
        let h = seeded(None);
        let obj = rollout(json!({}));
        let me = mine(&h, &obj);
        h.cloud.set_service_label(REGION, SERVICE, MARKER_KEY, &me);
        apply(&obj, &h.cx).await.expect("reconciled");
        assert_eq!(h.all_mutations(), ["CreateServiceRollout"]);
        let status = h.writes.last_status().unwrap_or_default();
        assert_eq!(status["cloudOwner"], me.as_str());
    }

    #[tokio::test]
    async fn nothing_to_change_writes_no_marker() {
        let h = seeded(None);
        let obj = rollout(json!({}));
        apply(&obj, &h.cx).await.expect("reconciled");
        // The owner again, with its status: nothing to change, nothing written.
        h.cloud.clear_calls();
        let obj = h.reread(&obj);
        apply(&obj, &h.cx).await.expect("reconciled");
        assert!(h.all_mutations().is_empty(), "{:?}", h.all_mutations());
    }
}
