//! # ManifestWorkReplicaSet (issue 14)
//!
//! One object that fans a ManifestWork template out to the clusters its Placements
//! select, with a rollout strategy (reference `placement.md` §4–5).
//!
//! - [`names`]: API version, kind, labels, finalizer, condition types and reasons;
//! - [`strategy`]: `RolloutStrategy` and the parsing of its values;
//! - [`object`]: the object, spec and status, and workbus's extensions (approval
//!   gates, rollback, success rule, per-cluster overrides, rollout progress).

pub mod names;
pub mod object;
pub mod strategy;

pub use object::{
    Approval, CascadeDeletionPolicy, ClusterOverride, GroupGate, GroupProgress, LabelSelector,
    LabelSelectorRequirement, LocalPlacementReference, ManifestWorkReplicaSet,
    ManifestWorkReplicaSetSpec, ManifestWorkReplicaSetStatus, ManifestWorkReplicaSetSummary,
    PatchOperation, PlacementProgress, PlacementSummary, RolloutExtensions, RolloutPhase,
    RolloutProgress, SuccessRule,
};
pub use strategy::{
    DecisionGroupRef, IntOrPercent, RolloutAll, RolloutConfig, RolloutProgressive,
    RolloutProgressivePerGroup, RolloutStrategy, RolloutType, RolloutValueError, parse_go_duration,
    parse_progress_deadline,
};

#[cfg(test)]
mod tests;
