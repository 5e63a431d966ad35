//! In-process fan-out of work and cluster changes to REST watchers (`/api/v1/watch/works`,
//! `/api/v1/watch/clusters`).
//!
//! A broadcast channel: slow watchers lose old notifications (they are told via a
//! `lagged` event and can re-list) instead of slowing the hub down.

use serde::Serialize;
use tokio::sync::broadcast;
use workbus_schemas::work::ManifestWork;

/// What happened to a work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The desired state changed (create, update, marked deleting).
    Spec,
    /// A new status was accepted.
    Status,
    /// The agent confirmed the deletion; the work is gone.
    Deleted,
}

/// One notification.
#[derive(Debug, Clone, Serialize)]
pub struct WorkChange {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// The work as it is now (its last state for `deleted`).
    pub object: ManifestWork,
}

impl WorkChange {
    /// The cluster (namespace) of the work.
    pub fn cluster(&self) -> &str {
        &self.object.metadata.namespace
    }
}

/// The sending side, shared by the source loop and the API.
#[derive(Debug, Clone)]
pub struct Watchers {
    tx: broadcast::Sender<WorkChange>,
}

impl Default for Watchers {
    fn default() -> Self {
        Watchers {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl Watchers {
    /// Notifies every current watcher (nobody listening is fine). The change is built
    /// only when someone listens: rendering a ManifestWork for every status would be
    /// wasted work on a hub nobody watches.
    pub fn notify(&self, change: impl FnOnce() -> WorkChange) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(change());
        }
    }

    /// A new watcher.
    pub fn subscribe(&self) -> broadcast::Receiver<WorkChange> {
        self.tx.subscribe()
    }
}

/// One cluster notification: the cluster as an OCM ManagedCluster after a change
/// (joined, accepted, denied, status, health, labels).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterChange {
    /// Always `changed`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The cluster as it is now.
    pub object: workbus_schemas::registration::ManagedCluster,
}

/// The sending side of cluster notifications (`/api/v1/watch/clusters`).
#[derive(Debug, Clone)]
pub struct ClusterWatchers {
    tx: broadcast::Sender<ClusterChange>,
}

impl Default for ClusterWatchers {
    fn default() -> Self {
        ClusterWatchers {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl ClusterWatchers {
    /// Notifies every current watcher of `cluster`'s new state.
    pub fn notify(&self, cluster: &crate::store::Cluster) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(ClusterChange {
                kind: "changed",
                object: cluster.managed_cluster(),
            });
        }
    }

    /// A new watcher.
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterChange> {
        self.tx.subscribe()
    }
}
