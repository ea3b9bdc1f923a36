//! Lease-based leader election (`--leader-elect`): only the replica holding the
//! `coordination.k8s.io/v1` Lease runs the controllers, so two replicas never both mutate
//! the cloud. Every write of the Lease carries its resourceVersion, so two candidates
//! racing for it cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

/// One candidate for the Lease.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
}

/// What a try found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// We hold the Lease (acquired or renewed).
    Held,
    /// Someone else holds a Lease that has not expired.
    HeldBy(String),
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, lease_duration: Duration) -> Self {
        Elector {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
        }
    }

    /// Try once to acquire or renew the Lease.
    pub async fn try_acquire(&self) -> Result<Outcome, kube::Error> {
        let now = jiff::Timestamp::now();
        let seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(current) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Outcome::Held),
                // Someone created it first.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::HeldBy(String::new())),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(secs)) => {
                *renewed + jiff::SignedDuration::from_secs(i64::from(secs)) < now
            }
            _ => true,
        };
        if holder != self.identity && !holder.is_empty() && !expired {
            return Ok(Outcome::HeldBy(holder));
        }
        let mut lease = current;
        let mut next = spec;
        if holder != self.identity {
            next.acquire_time = Some(MicroTime(now));
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0) + 1);
        }
        next.holder_identity = Some(self.identity.clone());
        next.lease_duration_seconds = Some(seconds);
        next.renew_time = Some(MicroTime(now));
        lease.spec = Some(next);
        // replace() sends the resourceVersion we read: a concurrent writer makes it 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Outcome::Held),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::HeldBy(holder)),
            Err(e) => Err(e),
        }
    }

    /// Wait until this candidate holds the Lease, trying every `retry`.
    pub async fn acquire(&self, retry: Duration) {
        loop {
            match self.try_acquire().await {
                Ok(Outcome::Held) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return;
                }
                Ok(Outcome::HeldBy(other)) => {
                    tracing::info!(lease = %self.name, holder = %other, "waiting for the leader's Lease");
                }
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "leader election"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renew every `every` until the Lease is lost (another holder, or no successful renew
    /// for a whole lease duration); then return.
    pub async fn hold(&self, every: Duration) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self.try_acquire().await {
                Ok(Outcome::Held) => last_ok = tokio::time::Instant::now(),
                Ok(Outcome::HeldBy(other)) => {
                    tracing::error!(lease = %self.name, holder = %other, "lost the Lease");
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "could not renew the Lease");
                    if last_ok.elapsed() >= self.lease_duration {
                        tracing::error!(lease = %self.name, "Lease expired without renewal");
                        return;
                    }
                }
            }
        }
    }
}
