//! Placement scheduling (issue 14): which clusters each Placement selects, written as
//! its PlacementDecisions and status.
//!
//! The scheduler is pure — every function takes its inputs (clusters, sets, bindings,
//! decisions, `now`) as data — one concept per file, in pipeline order:
//! - [`view`]: what the scheduler reads of a cluster;
//! - [`filter`]: cluster-set membership and predicates (label, claim selectors);
//! - [`taints`]: taints and tolerations, toleration expiry;
//! - [`score`]: prioritizers, weights, ranking;
//! - [`decisions`]: decision groups and PlacementDecision objects;
//! - [`schedule`]: the whole pipeline and the status conditions;
//! - [`index`]: the same pipeline kept incrementally over every Placement, so one
//!   cluster's change costs O(placements) filter checks plus re-scoring only the
//!   Placements it affects;
//! - [`controller`]: the hub task that feeds the index and writes changed decisions.

pub mod controller;
pub mod decisions;
pub mod filter;
pub mod index;
pub mod schedule;
pub mod score;
pub mod taints;
pub mod view;

pub use index::{PlacementIndex, PlacementKey};
pub use schedule::Outcome;
pub use view::ClusterView;

/// A misconfigured Placement: the OCM plugin that found it and its message; shown as
/// `<plugin>:<message>` in `PlacementMisconfigured`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{plugin}:{message}")]
pub struct Misconfig {
    /// The plugin name (`Predicate`, `TaintToleration`, or empty for the prioritizer
    /// and decision-group checks, as upstream).
    pub plugin: &'static str,
    /// The message.
    pub message: String,
}

impl Misconfig {
    /// A misconfiguration found by `plugin`.
    pub fn new(plugin: &'static str, message: impl Into<String>) -> Misconfig {
        Misconfig {
            plugin,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod checklist;
