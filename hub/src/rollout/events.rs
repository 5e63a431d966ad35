//! Rollout transitions as events: every per-cluster status change and every phase
//! change of a replica set is a [`RolloutEvent`], fanned out on [`RolloutWatchers`] to
//! the SSE watch (`/api/v1/watch/replicasets`) and the CLI's `rollout status --watch`.
//! A broadcast channel, like `watch`: a slow watcher loses old events (`lagged`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

/// One rollout transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutEvent {
    /// The replica set's namespace.
    pub namespace: String,
    /// The replica set's name.
    pub name: String,
    /// What changed.
    #[serde(rename = "type")]
    pub kind: RolloutEventKind,
    /// The placement (cluster transitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// The cluster (cluster transitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The status or phase before (absent for a new cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The status or phase after (`Removed` for a cluster that left).
    pub to: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Details (why a rollout aborted).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The kinds of [`RolloutEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RolloutEventKind {
    /// A cluster's rollout status changed.
    Cluster,
    /// The replica set's rollout phase changed.
    Phase,
}

/// The sending side, shared by the controller and the API.
#[derive(Debug, Clone)]
pub struct RolloutWatchers {
    tx: broadcast::Sender<RolloutEvent>,
}

impl Default for RolloutWatchers {
    fn default() -> Self {
        RolloutWatchers {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl RolloutWatchers {
    /// Sends the events to every current watcher (nobody listening is fine).
    pub fn notify(&self, events: impl IntoIterator<Item = RolloutEvent>) {
        if self.tx.receiver_count() > 0 {
            for e in events {
                let _ = self.tx.send(e);
            }
        }
    }

    /// A new watcher.
    pub fn subscribe(&self) -> broadcast::Receiver<RolloutEvent> {
        self.tx.subscribe()
    }
}
