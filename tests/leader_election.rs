//! Leader election against the real API server: one holder at a time, takeover after
//! the holder stops renewing.

mod support;

use std::time::Duration;

use alicloud_rollouts::controller::leader::{Elector, Leadership, Outcome, Timing};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use support::e2e::{cluster, namespace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_takeover_after_expiry() {
    let api = cluster();
    let ns = namespace("lease");
    let leases: Api<Lease> = Api::namespaced(api.client().await, &ns);
    let lease = Timing {
        lease: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry: Duration::from_millis(500),
    };
    let a = Elector::new(leases.clone(), "alicloud-rollouts", "replica-a", lease);
    let b = Elector::new(leases.clone(), "alicloud-rollouts", "replica-b", lease);

    assert_eq!(a.try_acquire().await.expect("API answers"), Outcome::Held);
    assert_eq!(
        b.try_acquire().await.expect("API answers"),
        Outcome::HeldBy("replica-a".into())
    );
    // A renews: still A's.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a.try_acquire().await.expect("API answers"), Outcome::Held);
    assert_eq!(
        b.try_acquire().await.expect("API answers"),
        Outcome::HeldBy("replica-a".into())
    );

    // A stops renewing: B takes over once the lease expired, and A sees it lost.
    let b_leads = Leadership::elected();
    tokio::time::timeout(Duration::from_secs(15), b.acquire(&b_leads))
        .await
        .expect("B becomes the leader after A's lease expires");
    assert!(b_leads.is_leader());
    assert_eq!(
        a.try_acquire().await.expect("API answers"),
        Outcome::HeldBy("replica-b".into())
    );
    let held = leases.get("alicloud-rollouts").await.expect("lease exists");
    let spec = held.spec.expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));

    // A holder that loses the Lease stops holding, and stops acting.
    let a_leads = Leadership::elected();
    tokio::time::timeout(
        Duration::from_secs(10),
        a.hold(&a_leads, tokio::time::Instant::now()),
    )
    .await
    .expect("hold() returns once another replica holds the Lease");
    assert!(!a_leads.is_leader());

    // B releases on shutdown: A takes over at its next try, without waiting for expiry.
    b.release(&b_leads).await.expect("release answers");
    assert!(!b_leads.is_leader());
    let released = leases.get("alicloud-rollouts").await.expect("lease exists");
    let spec = released.spec.expect("lease spec");
    assert_eq!(spec.holder_identity, None);
    assert_eq!(a.try_acquire().await.expect("API answers"), Outcome::Held);
    // Releasing a Lease someone else holds changes nothing.
    b.release(&b_leads).await.expect("release answers");
    assert_eq!(a.try_acquire().await.expect("API answers"), Outcome::Held);
}
