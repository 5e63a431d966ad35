//! In-process fan-out of work, cluster and placement changes to REST watchers
//! (`/api/v1/watch/works`, `/api/v1/watch/clusters`, `/api/v1/watch/placements`) and to
//! in-hub consumers (the placement controller follows cluster changes; workload
//! controllers follow placement decisions).
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
    /// The REST watchers' numbered, resumable copy (`/api/v1/watch/works`).
    rest: std::sync::Arc<crate::watch_replay::ReplayLog<WorkChange>>,
}

impl Default for Watchers {
    fn default() -> Self {
        Watchers {
            tx: broadcast::channel(1024).0,
            rest: Default::default(),
        }
    }
}

impl Watchers {
    /// Notifies every current watcher (nobody listening is fine). The change is built
    /// only when someone listens: rendering a ManifestWork for every status would be
    /// wasted work on a hub nobody watches.
    pub fn notify(&self, change: impl FnOnce() -> WorkChange) {
        let in_hub = self.tx.receiver_count() > 0;
        // Counts the change as skipped when no REST watcher needs it.
        let rest = self.rest.wants();
        if !in_hub && !rest {
            return;
        }
        let change = change();
        if rest {
            self.rest.record(change.clone());
        }
        if in_hub {
            let _ = self.tx.send(change);
        }
    }

    /// A new in-hub watcher.
    pub fn subscribe(&self) -> broadcast::Receiver<WorkChange> {
        self.tx.subscribe()
    }

    /// The REST watchers' resumable log.
    pub fn rest(&self) -> &std::sync::Arc<crate::watch_replay::ReplayLog<WorkChange>> {
        &self.rest
    }
}

/// One cluster notification: the cluster as an OCM ManagedCluster after a change
/// (created, joined, accepted, denied, status, health, labels), or its last state when
/// it was removed.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterChange {
    /// [`CLUSTER_CHANGED`] or [`CLUSTER_DELETED`].
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The cluster as it is now.
    pub object: workbus_schemas::registration::ManagedCluster,
}

/// [`ClusterChange::kind`] of a created or changed cluster.
pub const CLUSTER_CHANGED: &str = "changed";
/// [`ClusterChange::kind`] of a removed cluster.
pub const CLUSTER_DELETED: &str = "deleted";

impl ClusterChange {
    /// Whether the cluster was removed.
    pub fn is_deleted(&self) -> bool {
        self.kind == CLUSTER_DELETED
    }
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
                kind: CLUSTER_CHANGED,
                object: cluster.managed_cluster(),
            });
        }
    }

    /// Notifies every current watcher that cluster `name` was removed.
    pub fn notify_deleted(&self, name: &str) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(ClusterChange {
                kind: CLUSTER_DELETED,
                object: workbus_schemas::registration::ManagedCluster::named(name),
            });
        }
    }

    /// A new watcher.
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterChange> {
        self.tx.subscribe()
    }
}

/// One placement notification: a Placement's decisions changed (or it was deleted).
#[derive(Debug, Clone, Serialize)]
pub struct PlacementChange {
    /// `changed` or `deleted`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub placement: String,
    /// The selected clusters, by name (empty when deleted).
    pub clusters: Vec<String>,
    /// Its PlacementDecisions as stored (empty when deleted).
    pub decisions: Vec<workbus_schemas::placement::PlacementDecision>,
}

/// The sending side of placement notifications (`/api/v1/watch/placements`, workload
/// controllers). Sent after the decisions are durable.
#[derive(Debug, Clone)]
pub struct PlacementWatchers {
    tx: broadcast::Sender<PlacementChange>,
}

impl Default for PlacementWatchers {
    fn default() -> Self {
        PlacementWatchers {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl PlacementWatchers {
    /// Notifies every current watcher.
    pub fn notify(&self, change: PlacementChange) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(change);
        }
    }

    /// A new watcher.
    pub fn subscribe(&self) -> broadcast::Receiver<PlacementChange> {
        self.tx.subscribe()
    }
}
