//! The records of ManifestWorkReplicaSets (issue 14): the replica set as stored (spec,
//! status, the template it replaces, approvals, halt) and the per-cluster rollout state
//! that lets a restarted hub resume a rollout exactly where it was. Plain data, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use workbus_schemas::replicaset::{
    ClusterOverride, GroupGate, ManifestWorkReplicaSet, ManifestWorkReplicaSetSpec,
    ManifestWorkReplicaSetStatus,
};
use workbus_schemas::work::{ManifestWorkSpec, ObjectMeta, Time};

use crate::rollout::cluster_status::{ClusterStatus, GroupKey};

/// Address of a replica set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaSetKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A template a replica set rolled out before (what rollback restores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// `manifestWorkTemplate`.
    pub template: ManifestWorkSpec,
    /// `overrides` (workbus extension).
    #[serde(default)]
    pub overrides: Vec<ClusterOverride>,
    /// Its hash ([`crate::rollout::revision::revision`]).
    pub hash: String,
}

/// Why a rollout stopped (for the current template).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Halt {
    /// What happened.
    pub reason: String,
    /// Whether the updated clusters were given the previous template back.
    pub rolled_back: bool,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stored replica set.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetRecord {
    /// Namespace and name.
    pub key: ReplicaSetKey,
    /// `metadata.labels` (copied to every generated work, as upstream).
    pub labels: std::collections::BTreeMap<String, String>,
    /// `spec`.
    pub spec: ManifestWorkReplicaSetSpec,
    /// `status`, as the controller last wrote it.
    pub status: ManifestWorkReplicaSetStatus,
    /// +1 per spec or label change.
    pub generation: i64,
    /// The template being rolled out.
    pub revision: Revision,
    /// The template rolled out before it, if any.
    pub previous: Option<Revision>,
    /// Approved gates (for [`ReplicaSetRecord::revision`]).
    pub approvals: Vec<GroupGate>,
    /// Set when the rollout of [`ReplicaSetRecord::revision`] stopped.
    pub halt: Option<Halt>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Last spec change.
    pub updated: DateTime<Utc>,
    /// Set while a `Foreground` deletion waits for the works to go.
    pub deletion: Option<DateTime<Utc>>,
}

impl ReplicaSetRecord {
    /// The kubectl-shaped object.
    pub fn object(&self) -> ManifestWorkReplicaSet {
        let mut meta = ObjectMeta {
            name: self.key.name.clone(),
            namespace: self.key.namespace.clone(),
            generation: self.generation,
            resource_version: self.generation.to_string(),
            creation_timestamp: Some(Time::new(self.created)),
            deletion_timestamp: self.deletion.map(Time::new),
            labels: self.labels.clone(),
            ..Default::default()
        };
        if self.deletion.is_some() {
            meta.finalizers
                .push(workbus_schemas::replicaset::names::CLEANUP_FINALIZER.to_string());
        }
        let mut object = ManifestWorkReplicaSet::new(meta, self.spec.clone());
        object.status = Some(self.status.clone());
        object
    }
}

/// One cluster's place in a replica set's rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRollout {
    /// The cluster.
    pub cluster: String,
    /// The placement that chose it.
    pub placement: String,
    /// Its decision group.
    pub group: GroupKey,
    /// Its status.
    pub status: ClusterStatus,
    /// When its status last changed (a timed-out cluster keeps the time it started
    /// progressing).
    pub last_transition: DateTime<Utc>,
    /// The hash of the template its work carries.
    pub revision: String,
}
