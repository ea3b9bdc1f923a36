//! Leader fencing (issue 9, 4): a replica that does not hold the Lease, or lost it,
//! sends no cloud mutation, and says so with a retryable error.

use serde_json::json;

use crate::controller::error::{Error, Reaction};
use crate::controller::leader::Leadership;
use crate::controller::runner::{apply, cleanup};
use crate::controller::testing::{Harness, object};
use crate::crd::EasServiceRollout;

fn rollout() -> EasServiceRollout {
    object(
        "EasServiceRollout",
        json!({"region": "cn-shanghai", "serviceName": "svc", "strategy": {"partition": "1"}}),
    )
}

fn seeded(leadership: Leadership) -> Harness {
    let mut h = Harness::new();
    h.cloud
        .set_service_config("cn-shanghai", "svc", json!({"metadata": {"instance": 4}}));
    h.cx.leadership = leadership;
    h
}

#[tokio::test]
async fn no_mutation_without_the_lease() {
    let lost = Leadership::elected();
    lost.lose();
    for leadership in [Leadership::elected(), lost] {
        let h = seeded(leadership);
        let err = apply(&rollout(), &h.cx)
            .await
            .expect_err("a replica without the Lease does not act");
        assert!(matches!(err, Error::NotLeader), "{err}");
        assert_eq!(err.reaction(), Reaction::Retry);
        assert!(h.mutations().is_empty(), "{:?}", h.mutations());
    }
    // The leader (here: no election) sends the mutation.
    let h = seeded(Leadership::always());
    apply(&rollout(), &h.cx).await.expect("reconciled");
    assert_eq!(h.mutations(), ["CreateServiceRollout"]);
}

#[tokio::test]
async fn no_deletion_without_the_lease() {
    let delete = || {
        object::<EasServiceRollout>(
            "EasServiceRollout",
            json!({"region": "cn-shanghai", "serviceName": "svc", "strategy": {"partition": "1"},
                   "deletionPolicy": "Delete"}),
        )
    };
    // Created by the leader, so the cloud rollout and its ownership record exist.
    let mut h = seeded(Leadership::always());
    apply(&delete(), &h.cx).await.expect("created");
    let owned = h.reread(&delete());
    let lost = Leadership::elected();
    lost.lose();
    h.cx.leadership = lost;
    let err = cleanup(&owned, &h.cx)
        .await
        .expect_err("a replica without the Lease deletes nothing");
    assert!(matches!(err, Error::NotLeader), "{err}");
    assert_eq!(h.mutations(), ["CreateServiceRollout"]);
    assert!(h.cloud.rollout("cn-shanghai", "svc").is_some());
    h.cx.leadership = Leadership::always();
    cleanup(&owned, &h.cx).await.expect("the leader deletes");
    assert_eq!(
        h.mutations(),
        ["CreateServiceRollout", "DeleteServiceRollout"]
    );
}
