//! What the rollout needs from placements, as a small trait: a Placement's decision
//! groups (index, name, clusters) and a notification when they change. The hub reads
//! its own Placements ([`super::store_decisions::StoreDecisions`]);
//! [`MemoryDecisions`] serves tests that set decisions by hand.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::cluster_status::GroupKey;

/// One decision group of a Placement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionGroup {
    /// `groupIndex`.
    pub index: i32,
    /// `groupName` (may be empty).
    pub name: String,
    /// The clusters decided in it.
    pub clusters: Vec<String>,
}

impl DecisionGroup {
    /// Groups with indices 0, 1, … from `(name, clusters)` pairs (tests, examples).
    pub fn indexed(groups: &[(&str, &[&str])]) -> Vec<DecisionGroup> {
        groups
            .iter()
            .zip(0..)
            .map(|((name, clusters), index)| DecisionGroup {
                index,
                name: name.to_string(),
                clusters: clusters.iter().map(|c| c.to_string()).collect(),
            })
            .collect()
    }

    /// Its key.
    pub fn key(&self) -> GroupKey {
        GroupKey {
            index: self.index,
            name: self.name.clone(),
        }
    }
}

/// A Placement whose decisions changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionChange {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub placement: String,
}

/// Where the rollout reads placement decisions.
pub trait Decisions: Send + Sync + 'static {
    /// The decision groups of Placement `namespace/placement`, by index; `None` when the
    /// Placement does not exist.
    fn groups(&self, namespace: &str, placement: &str) -> Option<Vec<DecisionGroup>>;
    /// Notifications of decision changes.
    fn subscribe(&self) -> broadcast::Receiver<DecisionChange>;
}

/// Decision groups by (namespace, placement).
type Placements = BTreeMap<(String, String), Vec<DecisionGroup>>;

/// Decisions held in memory and set by hand (tests, and hubs without placements).
#[derive(Clone)]
pub struct MemoryDecisions {
    placements: Arc<Mutex<Placements>>,
    changes: broadcast::Sender<DecisionChange>,
}

impl Default for MemoryDecisions {
    fn default() -> Self {
        MemoryDecisions {
            placements: Default::default(),
            changes: broadcast::channel(256).0,
        }
    }
}

impl MemoryDecisions {
    /// Sets (creates or replaces) a Placement's decision groups and notifies.
    pub fn set(&self, namespace: &str, placement: &str, groups: Vec<DecisionGroup>) {
        self.placements
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((namespace.to_string(), placement.to_string()), groups);
        self.notify(namespace, placement);
    }

    /// Removes a Placement and notifies.
    pub fn remove(&self, namespace: &str, placement: &str) {
        self.placements
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_string(), placement.to_string()));
        self.notify(namespace, placement);
    }

    fn notify(&self, namespace: &str, placement: &str) {
        let _ = self.changes.send(DecisionChange {
            namespace: namespace.to_string(),
            placement: placement.to_string(),
        });
    }
}

impl Decisions for MemoryDecisions {
    fn groups(&self, namespace: &str, placement: &str) -> Option<Vec<DecisionGroup>> {
        self.placements
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(namespace.to_string(), placement.to_string()))
            .cloned()
    }

    fn subscribe(&self) -> broadcast::Receiver<DecisionChange> {
        self.changes.subscribe()
    }
}
