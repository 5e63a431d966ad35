//! [`StoreTx`]: the row operations a storage backend offers inside one write
//! transaction. They carry no business rules — those are decided by
//! [`rules`](super::rules) and sequenced by [`writes`](super::writes), once for every
//! backend — so a backend is its SQL (or other storage) and nothing more.
//!
//! Every method runs inside the transaction that [`Store::transaction`](super::Store)
//! opened: nothing is durable until that transaction commits, and a failure rolls back
//! everything it did.

use chrono::{DateTime, Utc};

use workbus_schemas::placement::{PlacementDecision, PlacementStatus};
use workbus_schemas::registration::CertificateSigningRequest;

use super::placement::{ClusterSetBinding, PlacementRecord};

use super::registration::{ClusterSet, JoinToken};
use super::replicaset::{ClusterRollout, ReplicaSetKey, ReplicaSetRecord};
use super::{
    ApiToken, AuditEntry, Cluster, NewOutbox, StoreError, StoredStatus, WorkKey, WorkRecord,
};

/// Row operations inside an open write transaction.
pub trait StoreTx {
    /// Runs `body` so that what it did is rolled back, alone, when it returns `false`
    /// (a savepoint); the rest of the transaction is kept. `Err` only when the backend
    /// cannot isolate (then the whole transaction must fail).
    fn isolated(
        &mut self,
        body: &mut dyn FnMut(&mut dyn StoreTx) -> bool,
    ) -> Result<(), StoreError>;

    /// Inserts a cluster; `false` (and no change) when one with that name exists.
    fn insert_cluster(&mut self, cluster: &Cluster) -> Result<bool, StoreError>;
    /// Removes a cluster row; `false` when there was none.
    fn remove_cluster(&mut self, name: &str) -> Result<bool, StoreError>;
    /// Whether a cluster exists.
    fn cluster_exists(&mut self, name: &str) -> Result<bool, StoreError>;
    /// How many works (deleting ones included) a cluster holds.
    fn count_works(&mut self, cluster: &str) -> Result<u64, StoreError>;
    /// All works of a cluster (deleting ones included), by name.
    fn works_of(&mut self, cluster: &str) -> Result<Vec<WorkRecord>, StoreError>;
    /// Records when an event from the cluster last arrived (no-op for unknown clusters).
    fn set_last_heard(&mut self, cluster: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// One cluster, read inside the transaction.
    fn cluster(&mut self, name: &str) -> Result<Option<Cluster>, StoreError>;
    /// Stores a cluster's labels, last-heard time and registration (with its health
    /// deadline, [`Registration::health_deadline`](super::registration::Registration));
    /// `false` when there is no such cluster.
    fn update_cluster(&mut self, cluster: &Cluster) -> Result<bool, StoreError>;
    /// The registered clusters whose health deadline is at or before `now`.
    fn clusters_due(&mut self, now: DateTime<Utc>) -> Result<Vec<Cluster>, StoreError>;
    /// The certificate signing requests of a cluster, oldest first.
    fn csrs_of(&mut self, cluster: &str) -> Result<Vec<CertificateSigningRequest>, StoreError>;
    /// Inserts or replaces (by name) a certificate signing request of `cluster`.
    fn upsert_csr(
        &mut self,
        cluster: &str,
        csr: &CertificateSigningRequest,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Marks `name` revoked (a deleted joined cluster), or lifts that (`at` = `None`).
    fn set_cluster_revoked(
        &mut self,
        name: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    /// Inserts a cluster set; `false` when the name is taken.
    fn insert_clusterset(&mut self, set: &ClusterSet) -> Result<bool, StoreError>;
    /// Removes a cluster set; `false` when there was none.
    fn remove_clusterset(&mut self, name: &str) -> Result<bool, StoreError>;
    /// Inserts a bootstrap token; `false` when its name or digest is taken.
    fn insert_join_token(&mut self, token: &JoinToken) -> Result<bool, StoreError>;
    /// Marks a bootstrap token revoked at `at`; `false` when there is none.
    fn revoke_join_token(&mut self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// The work under `key`, with its latest status.
    fn work_by_key(&mut self, key: &WorkKey) -> Result<Option<WorkRecord>, StoreError>;
    /// The work with `uid`, with its latest status.
    fn work_by_uid(&mut self, uid: &str) -> Result<Option<WorkRecord>, StoreError>;
    /// The last generation of a completed work with `uid`, if one left a tombstone.
    fn tombstone(&mut self, uid: &str) -> Result<Option<i64>, StoreError>;
    /// Inserts a new work (its status, if any, is not stored) and removes the tombstone
    /// of its uid, which the new work's generation continues.
    fn insert_work(&mut self, work: &WorkRecord) -> Result<(), StoreError>;
    /// Stores a work's labels, annotations, spec, generation and update time.
    fn update_work(&mut self, work: &WorkRecord) -> Result<(), StoreError>;
    /// Stores a work's deletion request time (and update time).
    fn update_deletion(&mut self, work: &WorkRecord) -> Result<(), StoreError>;
    /// Removes a work whose deletion was confirmed at `confirmed`, with its status,
    /// leaving a tombstone with its last generation.
    fn remove_work(
        &mut self,
        work: &WorkRecord,
        confirmed: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Stores a work's latest status (replacing the previous one).
    fn store_status(&mut self, uid: &str, status: &StoredStatus) -> Result<(), StoreError>;

    /// Appends an event to the outbox, queued at `now`.
    fn insert_outbox(&mut self, event: &NewOutbox, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Removes a published outbox row and appends its `sent` audit row (at `sent_at`),
    /// with the parked rows it supersedes (see [`Store::park_outbox`](super::Store)).
    fn complete_outbox(&mut self, id: i64, sent_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Counts a failed publish attempt of an outbox row.
    fn count_outbox_attempt(&mut self, id: i64) -> Result<(), StoreError>;
    /// Parks a pending outbox row with `reason` and removes the parked rows it
    /// supersedes; `None` when no such pending row exists, else how many were removed.
    fn park_outbox(
        &mut self,
        id: i64,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError>;
    /// Puts a parked outbox row back into the pending queue.
    fn unpark_outbox(&mut self, id: i64) -> Result<(), StoreError>;

    /// Appends a row to the audit log.
    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Inserts an API token; `false` (and no change) when its name or digest is taken.
    fn insert_token(&mut self, token: &ApiToken) -> Result<bool, StoreError>;
    /// Removes the API token `name`; `false` when there was none.
    fn remove_token(&mut self, name: &str) -> Result<bool, StoreError>;
    /// How many API tokens exist.
    fn count_tokens(&mut self) -> Result<u64, StoreError>;

    /// One Placement.
    fn placement(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PlacementRecord>, StoreError>;
    /// Inserts or replaces a Placement (spec, status, generation).
    fn upsert_placement(&mut self, record: &PlacementRecord) -> Result<(), StoreError>;
    /// Removes a Placement row; `false` when there was none.
    fn remove_placement(&mut self, namespace: &str, name: &str) -> Result<bool, StoreError>;
    /// Stores a Placement's status; `false` when there is no such Placement.
    fn update_placement_status(
        &mut self,
        namespace: &str,
        name: &str,
        status: &PlacementStatus,
    ) -> Result<bool, StoreError>;
    /// Replaces every PlacementDecision of a Placement with `decisions` (those whose
    /// name stays keep their creation time; new ones are created at `now`).
    fn replace_decisions(
        &mut self,
        namespace: &str,
        placement: &str,
        decisions: &[PlacementDecision],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// One cluster set binding.
    fn binding(
        &mut self,
        namespace: &str,
        cluster_set: &str,
    ) -> Result<Option<ClusterSetBinding>, StoreError>;
    /// Inserts a binding; `false` when it exists.
    fn insert_binding(&mut self, binding: &ClusterSetBinding) -> Result<bool, StoreError>;
    /// Removes a binding; `false` when there was none.
    fn remove_binding(&mut self, namespace: &str, cluster_set: &str) -> Result<bool, StoreError>;
    /// One replica set (issue 14).
    fn replica_set(&mut self, key: &ReplicaSetKey) -> Result<Option<ReplicaSetRecord>, StoreError>;
    /// Inserts or replaces a replica set.
    fn put_replica_set(&mut self, rs: &ReplicaSetRecord) -> Result<(), StoreError>;
    /// Removes a replica set with its per-cluster states; `false` when there was none.
    fn remove_replica_set(&mut self, key: &ReplicaSetKey) -> Result<bool, StoreError>;
    /// The per-cluster rollout states of a replica set, by cluster.
    fn cluster_rollouts(&mut self, key: &ReplicaSetKey) -> Result<Vec<ClusterRollout>, StoreError>;
    /// Inserts or replaces a cluster's rollout state.
    fn put_cluster_rollout(
        &mut self,
        key: &ReplicaSetKey,
        state: &ClusterRollout,
    ) -> Result<(), StoreError>;
    /// Removes a cluster's rollout state (no-op when there is none).
    fn remove_cluster_rollout(
        &mut self,
        key: &ReplicaSetKey,
        cluster: &str,
    ) -> Result<(), StoreError>;
}
