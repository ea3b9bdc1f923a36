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

// ---- Two operator replicas (child processes) against the simulator. ----

use serde_json::Value;
use support::e2e::{Kubectl, Operator, Sim, repo_root, wait_for};

const SEED: &str = r#"
services:
  - name: bert_embeddings
    region: cn-hangzhou
    replicas: 5
    config:
      metadata: {instance: 5, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "registry-vpc.cn-hangzhou.aliyuncs.com/ml-team/bert-embeddings:2.4.0", port: 8000}]
"#;

const KEY_A: (&str, &str) = ("replica-a-key", "replica-a-secret");
const KEY_B: (&str, &str) = ("replica-b-key", "replica-b-secret");
/// Short election timing so that the test waits seconds, with the same rules as the
/// defaults (renew deadline shorter than the lease).
const ELECTION: &[&str] = &[
    "--leader-elect-lease-duration",
    "4s",
    "--leader-elect-renew-deadline",
    "3s",
    "--leader-elect-retry-period",
    "500ms",
];

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("alicloud-rollouts")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn wait_holder(leases: &Api<Lease>, who: &str, timeout: Duration) {
    wait_for(&format!("{who} holds the Lease"), timeout, || async {
        match holder(leases).await {
            Some(h) if h == who => Ok(()),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await
}

async fn wait_ready(op: &Operator, what: &str) {
    wait_for(what, Duration::from_secs(60), || async {
        match op.probe("/readyz").await {
            (200, _) => Ok(()),
            (code, body) => Err(format!("{code} {body}")),
        }
    })
    .await
}

fn is_mutation(call: &Value) -> bool {
    let action = call["action"].as_str().unwrap_or_default();
    !["Describe", "Get", "List"]
        .iter()
        .any(|read| action.starts_with(read))
}

fn by_key<'a>(log: &'a [Value], key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    log.iter()
        .enumerate()
        .filter(move |(_, c)| c["accessKeyId"] == key)
}

/// SIGSTOP the leader mid-rollout: the follower takes over once the Lease expires, and
/// the old leader, resumed with a spec change waiting in its watch, sends nothing more
/// (the call log, by key, shows no mutation of its after the new leader's first call) and
/// exits. Then SIGTERM the new leader: it releases the Lease, and the restarted replica
/// takes over without waiting for the Lease to expire. /readyz is ready on the leader
/// and on a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_takeover_after_sigstop_and_release_on_sigterm() {
    let api = cluster();
    let ns = namespace("leader-two");
    let leases: Api<Lease> = Api::namespaced(api.client().await, &ns);
    let sim = Sim::start_with(
        SEED,
        alicloud_rollouts::simulator::SimConfig {
            time_scale: 30.0,
            access_keys: vec![
                (KEY_A.0.into(), KEY_A.1.into()),
                (KEY_B.0.into(), KEY_B.1.into()),
            ],
            one_account: true,
            ..Default::default()
        },
    )
    .await;
    let kubectl = Kubectl::new(&api, &ns);

    let mut a = Operator::start_replica(&api, &sim, &ns, "eas", "replica-a", KEY_A, ELECTION);
    wait_holder(&leases, "replica-a", Duration::from_secs(30)).await;
    let mut b = Operator::start_replica(&api, &sim, &ns, "eas", "replica-b", KEY_B, ELECTION);
    wait_ready(&a, "the leader is ready (caches synced)").await;
    wait_ready(&b, "a follower that knows it follows is ready").await;
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    let manifest = std::fs::read_to_string(repo_root().join("examples/eas-batch.yaml"))
        .expect("example readable");
    kubectl.apply(&manifest);
    let res = "easservicerollout/bert-embeddings";
    wait_for(
        "the leader started the rollout",
        Duration::from_secs(60),
        || async {
            let log = sim.call_log().await;
            let updated = kubectl.get(res)["status"]["updatedReplicas"]
                .as_i64()
                .unwrap_or(0);
            (by_key(&log, KEY_A.0).any(|(_, c)| c["action"] == "CreateServiceRollout")
                && (1..5).contains(&updated))
            .then_some(())
            .ok_or_else(|| format!("updated {updated}; log {log:?}"))
        },
    )
    .await;
    assert!(
        by_key(&sim.call_log().await, KEY_B.0).next().is_none(),
        "a follower makes no cloud call"
    );

    // Freeze the leader and change the spec: the change needs a mutation (pause).
    a.signal("STOP");
    kubectl.patch(res, r#"{"spec":{"paused":true}}"#);
    wait_holder(&leases, "replica-b", Duration::from_secs(60)).await;
    a.signal("CONT");
    let status = a.wait_exit(Duration::from_secs(60)).await;
    assert!(
        !status.success(),
        "the old leader exits to restart as a follower"
    );

    wait_for("the new leader pauses", Duration::from_secs(60), || async {
        let log = sim.call_log().await;
        by_key(&log, KEY_B.0)
            .any(|(_, c)| c["action"] == "UpdateServiceRollout")
            .then_some(())
            .ok_or_else(|| format!("{log:?}"))
    })
    .await;
    let log = sim.call_log().await;
    let takeover = by_key(&log, KEY_B.0)
        .next()
        .map(|(i, _)| i)
        .expect("the new leader made calls");
    let late: Vec<&Value> = by_key(&log, KEY_A.0)
        .filter(|(i, c)| *i > takeover && is_mutation(c))
        .map(|(_, c)| c)
        .collect();
    assert!(
        late.is_empty(),
        "mutations of the old leader after the takeover: {late:?}"
    );
    let pauses: Vec<&Value> = log
        .iter()
        .filter(|c| c["action"] == "UpdateServiceRollout")
        .collect();
    assert_eq!(pauses.len(), 1, "one pause, by the new leader: {pauses:?}");

    // The old leader comes back as a follower; the leader shuts down cleanly.
    a.restart();
    wait_ready(&a, "the restarted replica is a ready follower").await;
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-b"));
    b.signal("TERM");
    let status = b.wait_exit(Duration::from_secs(60)).await;
    assert!(
        status.success(),
        "a clean shutdown: {status}\n{}",
        b.log_tail()
    );
    // Released before exiting: the holder is no longer replica-b even though its last
    // renew is recent, so the follower does not wait for the Lease to expire.
    assert_ne!(holder(&leases).await.as_deref(), Some("replica-b"));
    let released_at = std::time::Instant::now();
    wait_holder(&leases, "replica-a", Duration::from_secs(30)).await;
    let lease = leases.get("alicloud-rollouts").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.lease_duration_seconds),
        Some(4),
        "the new leader's own Lease"
    );
    eprintln!("takeover after release took {:?}", released_at.elapsed());
    wait_ready(&a, "the new leader is ready").await;
    a.kill();
}
