//! Approval gates (workbus extension `spec.rollout.approval.afterGroups`): a rollout
//! pauses after a decision group until a user approves (`rollout approve`), the
//! workflow step KubeVela users know as `suspend`.
//!
//! A gate after group *X* of a placement blocks every cluster of the groups that come
//! after *X* in the rollout order (mandatory groups first, then by index) until the
//! gate is approved for the current template. Only clusters that still need the
//! template are held back; the rollout is *awaiting approval* once nothing before the
//! gate is in flight. The first unapproved gate of a placement is the one that counts.

use std::collections::BTreeSet;

use workbus_schemas::replicaset::{DecisionGroupRef, GroupGate};

use super::decisions::DecisionGroup;
use super::strategy::Strategy;

/// The first unapproved gate of a placement and the clusters it holds back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The gate (placement and group).
    pub gate: GroupGate,
    /// The clusters of the groups after it.
    pub held: BTreeSet<String>,
}

/// The gate that holds clusters of `placement` back, if any.
pub fn active_gate(
    placement: &str,
    strategy: &Strategy,
    groups: &[DecisionGroup],
    after_groups: &[DecisionGroupRef],
    approvals: &[GroupGate],
) -> Option<Gate> {
    let mut gated: Vec<&DecisionGroup> = groups
        .iter()
        .filter(|g| after_groups.iter().any(|r| r.names(g.index, &g.name)))
        .collect();
    gated.sort_by_key(|g| strategy.group_position(&g.key()));
    let gate = gated.into_iter().find(|g| {
        !approvals
            .iter()
            .any(|a| a.placement == placement && a.group_index == g.index)
    })?;
    let position = strategy.group_position(&gate.key());
    let held = groups
        .iter()
        .filter(|g| strategy.group_position(&g.key()) > position)
        .flat_map(|g| g.clusters.iter().cloned())
        .collect();
    Some(Gate {
        gate: GroupGate {
            placement: placement.to_string(),
            group_index: gate.index,
            group_name: gate.name.clone(),
        },
        held,
    })
}
