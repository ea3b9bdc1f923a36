//! The planner contract every kind follows.
//!
//! A kind's planner is a pure function `plan(&Input) -> Plan`: from the validated spec,
//! the status as last written, what was read from the cloud and `now`, it decides the
//! cloud mutations to make (in order), the status to write once they succeeded, and when
//! to look again. The shell ([`super::runner`]) does the I/O around it.

use std::time::Duration;

use jiff::Timestamp;

/// One cloud mutation a plan asks for.
pub trait CloudAction {
    /// The cloud API's name: the Event's reason and action, the metric label.
    fn name(&self) -> &'static str;
    /// What the mutation does, for Events and logs. Never a secret or a whole document
    /// (a service config is named by its hash).
    fn describe(&self) -> String;
}

/// A kind's spec in the form its planner consumes: parsed from the object (parse, don't
/// validate), and naming the cloud object it manages.
pub trait ValidSpec<K>: Sized {
    /// Parse `obj`'s spec, or say what to fix.
    fn parse(obj: &K) -> Result<Self, String>;
    /// The cloud object ("region/name..."), recorded in `status.cloudRef` before its first
    /// mutation.
    fn cloud_ref(&self) -> String;
}

/// When to look at the object again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Something is moving or in flight: `--active-poll`.
    Active,
    /// Nothing is expected to change: `--settled-poll`.
    Settled,
    /// At a known moment (a step's pause ends, the next batch starts), but never later
    /// than `--settled-poll`.
    After(Duration),
}

/// Everything a planner reads. `V` is the kind's validated spec, `S` its status, `O`
/// what was read from the cloud.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a, V, S, O> {
    pub spec: &'a V,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The status as last written (None for a new object).
    pub status: Option<&'a S>,
    pub observed: &'a O,
    pub now: Timestamp,
}

/// The decision of one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<A, S> {
    /// Cloud mutations, in order.
    pub actions: Vec<A>,
    /// The status to write once every action succeeded.
    pub status: S,
    pub requeue: Requeue,
}

/// What a planner decided: the outcome, at most one mutation, and what the status
/// records of a step progression (empty for kinds or modes without steps).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<A> {
    pub outcome: super::outcome::Outcome,
    pub action: Option<A>,
    pub steps: super::steps::StepRecord,
}

impl<A> Decision<A> {
    /// Nothing to send.
    pub fn hold(outcome: super::outcome::Outcome) -> Self {
        Decision {
            outcome,
            action: None,
            steps: Default::default(),
        }
    }

    /// Send `action`.
    pub fn send(outcome: super::outcome::Outcome, action: A) -> Self {
        Decision {
            outcome,
            action: Some(action),
            steps: Default::default(),
        }
    }
}

/// Plan twice from the same input and check the planner is pure (the same plan both
/// times): what every planner's table tests go through.
#[cfg(test)]
pub(crate) fn decide<V, S, O, A>(
    plan: impl Fn(&Input<'_, V, S, O>) -> Plan<A, S>,
    input: Input<'_, V, S, O>,
) -> Plan<A, S>
where
    S: PartialEq + std::fmt::Debug,
    A: PartialEq + std::fmt::Debug,
{
    let first = plan(&input);
    assert_eq!(plan(&input), first, "the same input gives the same plan");
    first
}
