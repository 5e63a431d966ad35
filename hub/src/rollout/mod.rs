//! Rollouts of ManifestWorkReplicaSets (issue 14): one object fans a ManifestWork
//! template out to the clusters its Placements select, in the order and at the pace
//! its rollout strategy allows. Everything here but [`controller`] is pure.
//!
//! - [`cluster_status`]: the six per-cluster statuses and decision group keys;
//! - [`decisions`]: the [`Decisions`](decisions::Decisions) trait (placement decision
//!   groups and their changes) and its in-memory implementation; [`store_decisions`]:
//!   the hub's implementation over the placement store;
//! - [`success`]: when a work counts as succeeded (workbus's rule, upstream's table);
//! - [`strategy`]: All / Progressive / ProgressivePerGroup as a planner;
//! - [`gates`]: approval gates; [`overrides`]: per-cluster template patches;
//! - [`revision`]: the template hash; [`summary`]: the replica set's status;
//! - [`reconcile`]: one reconcile, inputs → writes + status + events;
//! - [`events`]: rollout transitions and their fan-out;
//! - [`working_set`]: the controller's incrementally kept copy of a replica set's
//!   states and works (a reconcile reads only the works that changed);
//! - [`controller`]: the task that reads, reconciles and records.

pub mod cluster_status;
pub mod controller;
pub mod decisions;
pub mod events;
pub mod gates;
pub mod overrides;
pub mod reconcile;
pub mod revision;
pub mod store_decisions;
pub mod strategy;
pub mod success;
pub mod summary;
pub mod working_set;

#[cfg(test)]
mod tests;
