//! Lease-based leader election (`--leader-elect`): only the replica holding the
//! `coordination.k8s.io/v1` Lease runs the controllers, so two replicas never both mutate
//! the cloud. Every write of the Lease carries its resourceVersion, so two candidates
//! racing for it cannot both win.
//!
//! Timing follows client-go's defaults: a Lease of 15 s, renewed every 2 s, and a renew
//! deadline of 10 s. The deadline is what keeps two leaders apart: kube's client has no
//! read timeout, so every Lease call is bounded here, and a leader that has not confirmed
//! a renew within the renew deadline counts itself a follower at once. Since the deadline
//! is shorter than the Lease, it stops before any other replica may take the Lease over.
//! [`Leadership`] is the shared answer to "may this replica mutate the cloud now"; it is
//! computed from the clock, so a replica that was frozen (SIGSTOP, a long stall) sees its
//! leadership gone the moment it runs again, before the elector task has run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

/// The timing of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease holds without renewal (what other replicas wait before a takeover).
    pub lease: Duration,
    /// How long the leader keeps acting without a confirmed renew; shorter than `lease`.
    pub renew_deadline: Duration,
    /// How often to renew, and how often a follower tries to acquire.
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// The renew deadline must be shorter than the Lease (otherwise an old leader may
    /// still act when another replica took over), and the retry shorter than the deadline
    /// (otherwise no renew fits in).
    pub fn validate(&self) -> Result<(), String> {
        if self.lease < Duration::from_secs(1) {
            return Err("the lease duration must be at least 1s".into());
        }
        if self.renew_deadline >= self.lease {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease
            ));
        }
        if self.retry.is_zero() || self.retry >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be above zero and shorter than the renew deadline ({:?})",
                self.retry, self.renew_deadline
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Role {
    /// No election: this replica always acts.
    Always,
    /// Not known yet (no answer from the API server so far).
    Unknown,
    /// Someone else holds the Lease.
    Follower,
    /// This replica holds the Lease until the instant (the start of the last confirmed
    /// renew plus the renew deadline).
    LeaderUntil(Instant),
    /// This replica held the Lease and lost or released it: it acts no more.
    Lost,
}

/// Whether this replica may act, shared by the elector (which writes it), the
/// reconcilers (which read it right before each cloud mutation) and /readyz.
#[derive(Clone)]
pub struct Leadership(Arc<Mutex<Role>>);

impl Default for Leadership {
    /// Without leader election, a replica always acts.
    fn default() -> Self {
        Leadership::always()
    }
}

impl Leadership {
    /// No election: always the leader.
    pub fn always() -> Self {
        Leadership(Arc::new(Mutex::new(Role::Always)))
    }

    /// With election: not the leader until the elector says so.
    pub fn elected() -> Self {
        Leadership(Arc::new(Mutex::new(Role::Unknown)))
    }

    fn set(&self, role: Role) {
        if let Ok(mut r) = self.0.lock() {
            *r = role;
        }
    }

    fn role(&self) -> Role {
        self.0.lock().map(|r| *r).unwrap_or(Role::Lost)
    }

    /// May this replica mutate the cloud now?
    pub fn is_leader(&self) -> bool {
        self.is_leader_at(Instant::now())
    }

    fn is_leader_at(&self, now: Instant) -> bool {
        match self.role() {
            Role::Always => true,
            Role::LeaderUntil(until) => now < until,
            Role::Unknown | Role::Follower | Role::Lost => false,
        }
    }

    /// Does this replica know whether it leads (a follower that knows it follows does)?
    pub fn is_known(&self) -> bool {
        !matches!(self.role(), Role::Unknown)
    }

    /// A follower that knows it follows.
    pub fn is_follower(&self) -> bool {
        matches!(self.role(), Role::Follower)
    }

    fn lead_until(&self, until: Instant) {
        self.set(Role::LeaderUntil(until));
    }

    pub(crate) fn follow(&self) {
        self.set(Role::Follower);
    }

    /// Stop acting at once (the Lease was lost, or is being released).
    pub fn lose(&self) {
        self.set(Role::Lost);
    }
}

/// One candidate for the Lease.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
}

/// What a try found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// We hold the Lease (acquired or renewed).
    Held,
    /// Someone else holds a Lease that has not expired.
    HeldBy(String),
}

/// Why a try has no answer.
#[derive(Debug, thiserror::Error)]
pub enum TryError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("no answer from the API server within {0:?}")]
    TimedOut(Duration),
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: Timing) -> Self {
        Elector {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
        }
    }

    /// Try once to acquire or renew the Lease, within the renew deadline.
    pub async fn try_acquire(&self) -> Result<Outcome, TryError> {
        self.try_acquire_by(Instant::now() + self.timing.renew_deadline)
            .await
    }

    /// Try once to acquire or renew the Lease; no answer by `deadline` is an error (kube's
    /// client has no read timeout: a hung connection would wait forever).
    async fn try_acquire_by(&self, deadline: Instant) -> Result<Outcome, TryError> {
        let limit = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, self.try_acquire_unbounded()).await {
            Ok(result) => result,
            Err(_) => Err(TryError::TimedOut(limit)),
        }
    }

    async fn try_acquire_unbounded(&self) -> Result<Outcome, TryError> {
        let now = jiff::Timestamp::now();
        let seconds = i32::try_from(self.timing.lease.as_secs()).unwrap_or(i32::MAX);
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
                Err(e) => Err(e.into()),
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
            Err(e) => Err(e.into()),
        }
    }

    /// Wait until this candidate holds the Lease, trying every retry period. `leadership`
    /// says "follower" as soon as another holder is seen, and "leader" once acquired.
    /// Returns the instant the successful try started (the leadership counts from there).
    pub async fn acquire(&self, leadership: &Leadership) -> Instant {
        loop {
            let started = Instant::now();
            match self
                .try_acquire_by(started + self.timing.renew_deadline)
                .await
            {
                Ok(Outcome::Held) => {
                    leadership.lead_until(started + self.timing.renew_deadline);
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return started;
                }
                Ok(Outcome::HeldBy(other)) => {
                    leadership.follow();
                    tracing::info!(lease = %self.name, holder = %other, "waiting for the leader's Lease");
                }
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "leader election"),
            }
            tokio::time::sleep(self.timing.retry).await;
        }
    }

    /// Renew every retry period until the Lease is lost: another holder, or no renew
    /// confirmed within the renew deadline. `leadership` is marked lost before this
    /// returns (and reads as lost from the deadline on, whatever this task is doing).
    /// `renewed` is when the try that acquired the Lease started.
    pub async fn hold(&self, leadership: &Leadership, mut renewed: Instant) {
        loop {
            let deadline = renewed + self.timing.renew_deadline;
            leadership.lead_until(deadline);
            tokio::time::sleep_until((Instant::now() + self.timing.retry).min(deadline)).await;
            let started = Instant::now();
            if started >= deadline {
                leadership.lose();
                tracing::error!(lease = %self.name, "no renew of the Lease confirmed within the renew deadline");
                return;
            }
            match self.try_acquire_by(deadline).await {
                Ok(Outcome::Held) => renewed = started,
                Ok(Outcome::HeldBy(other)) => {
                    leadership.lose();
                    tracing::error!(lease = %self.name, holder = %other, "lost the Lease");
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "could not renew the Lease")
                }
            }
        }
    }

    /// Give the Lease up (on shutdown, after the last reconcile finished) so that a
    /// follower takes over at its next try instead of waiting for the Lease to expire:
    /// the holder is cleared and the duration set to one second. A Lease held by someone
    /// else is left alone.
    pub async fn release(&self, leadership: &Leadership) -> Result<(), TryError> {
        leadership.lose();
        let limit = self.timing.renew_deadline;
        let release = async {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else {
                return Ok(());
            };
            let mut spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(());
            }
            let now = MicroTime(jiff::Timestamp::now());
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now.clone());
            spec.acquire_time = Some(now);
            lease.spec = Some(spec);
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await?;
            Ok(())
        };
        match tokio::time::timeout(limit, release).await {
            Ok(result) => result,
            Err(_) => Err(TryError::TimedOut(limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_go_defaults_and_their_rules() {
        let t = Timing::default();
        assert_eq!(
            (t.lease, t.renew_deadline, t.retry),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        assert!(t.validate().is_ok());
        // A deadline equal to the lease lets two leaders overlap.
        let overlap = Timing {
            renew_deadline: t.lease,
            ..t
        };
        assert!(overlap.validate().is_err());
        let no_retry_fits = Timing {
            retry: t.renew_deadline,
            ..t
        };
        assert!(no_retry_fits.validate().is_err());
    }

    #[tokio::test]
    async fn leadership_ends_at_the_renew_deadline_without_the_elector_running() {
        let l = Leadership::elected();
        assert!(!l.is_known() && !l.is_leader());
        l.follow();
        assert!(l.is_known() && l.is_follower() && !l.is_leader());
        let now = Instant::now();
        l.lead_until(now + Duration::from_millis(100));
        assert!(l.is_leader() && !l.is_follower());
        // A frozen process resumes after the deadline: it is no leader any more, though
        // nothing updated the state.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!l.is_leader());
        l.lead_until(Instant::now() + Duration::from_secs(10));
        l.lose();
        assert!(!l.is_leader() && l.is_known());
        assert!(Leadership::always().is_leader() && Leadership::always().is_known());
    }

    /// An API server that accepts connections and never answers (kube's client has no
    /// read timeout).
    async fn hung_api() -> (Api<Lease>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let url: http::Uri = format!("http://{addr}").parse().expect("url");
        let client = kube::Client::try_from(kube::Config::new(url)).expect("client");
        (Api::namespaced(client, "default"), server)
    }

    fn short() -> Timing {
        Timing {
            lease: Duration::from_secs(3),
            renew_deadline: Duration::from_millis(600),
            retry: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn a_hung_renew_ends_the_leadership_within_the_renew_deadline() {
        let (api, server) = hung_api().await;
        let elector = Elector::new(api, "alicloud-rollouts", "me", short());
        let tried = tokio::time::timeout(Duration::from_secs(5), elector.try_acquire())
            .await
            .expect("a try is bounded by the renew deadline");
        assert!(matches!(tried, Err(TryError::TimedOut(_))), "{tried:?}");

        // The leader's last confirmed renew started now: with every renew hanging, it is
        // no leader from the renew deadline on, and hold() returns.
        let leadership = Leadership::elected();
        let renewed = Instant::now();
        leadership.lead_until(renewed + short().renew_deadline);
        assert!(leadership.is_leader());
        tokio::time::timeout(Duration::from_secs(5), elector.hold(&leadership, renewed))
            .await
            .expect("hold() gives up at the renew deadline");
        assert!(!leadership.is_leader());
        assert!(
            renewed.elapsed() < short().lease,
            "stopped before the Lease could expire for the others"
        );
        server.abort();
    }
}
