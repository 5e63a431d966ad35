//! The records of Placement scheduling (issue 14) the [`Store`](super::Store) keeps:
//! Placements with their status, PlacementDecisions, and ManagedClusterSetBindings.
//! Plain data, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use workbus_schemas::placement::names::{condition, reason};
use workbus_schemas::placement::{ManagedClusterSetBinding, Placement};
use workbus_schemas::work::Time;
use workbus_schemas::work::status::{Condition, condition_status};

/// A stored Placement: the OCM object with its status (`decisionGroups`, conditions),
/// `metadata.generation` and `metadata.creationTimestamp` filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementRecord {
    /// The Placement.
    pub placement: Placement,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Bumped when its spec changes (from 1).
    pub generation: i64,
}

impl PlacementRecord {
    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.placement.metadata.namespace
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.placement.metadata.name
    }
}

/// A stored ManagedClusterSetBinding: set `cluster_set` is bound to `namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSetBinding {
    /// The namespace whose Placements may use the set.
    pub namespace: String,
    /// The bound set (also the binding's name).
    pub cluster_set: String,
    /// When it was created.
    pub created: DateTime<Utc>,
}

impl ClusterSetBinding {
    /// The binding as an OCM object, with its `Bound` condition (`set_exists`: whether
    /// the set exists).
    pub fn to_object(&self, set_exists: bool) -> ManagedClusterSetBinding {
        let mut b = ManagedClusterSetBinding::new(&self.namespace, &self.cluster_set);
        let at = Time::new(self.created);
        b.metadata.creation_timestamp = Some(at);
        let (status, why) = if set_exists {
            (condition_status::TRUE, reason::CLUSTER_SET_BOUND)
        } else {
            (condition_status::FALSE, reason::CLUSTER_SET_NOT_FOUND)
        };
        b.status
            .conditions
            .push(Condition::new(condition::BOUND, status, why, "", at));
        b
    }
}
