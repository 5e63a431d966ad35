//! The ManifestWorkReplicaSet changes (issue 14) as typed [`Write`]s. The per-cluster
//! ManifestWorks are written through the ordinary work writes ([`ApplyWork`],
//! [`MarkDeleting`]), so each is an ordinary work — listed by `get works -n <cluster>`,
//! published by the outbox — and one [`RecordRollout`] writes a whole reconcile (N
//! works, N rollout states, the status) in one transaction: one group commit for a
//! fleet, not N round trips.
//!
//! Works are named after the replica set (name = replica set name, as upstream before
//! ocm `aebb548`, 2026-03-19): deterministic names make the write idempotent — a
//! reconcile repeated after a crash finds and updates the same work instead of
//! creating a second one, which `generateName` would do without an extra index — and
//! the work uid (UUIDv5 of source, cluster, name) stable across hub restarts. A work of
//! that name not carrying the replica set's owner label is never touched.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use workbus_schemas::replicaset::{
    GroupGate, ManifestWorkReplicaSetSpec, ManifestWorkReplicaSetStatus,
};
use workbus_schemas::resource_id::work_resource_id;

use super::replicaset::{ClusterRollout, Halt, ReplicaSetKey, ReplicaSetRecord};
use super::rules::replicaset::{abort, approve, owns, plan_replica_set};
use super::tx::StoreTx;
use super::writes::{ApplyWork, MarkDeleting, Write};
use super::{ApplyOutcome, DesiredWork, SharedSpecEventBuilder, StoreError, WorkKey, WorkRecord};
use crate::rollout::reconcile::{WorkToApply, work_labels};

fn not_found(key: &ReplicaSetKey) -> StoreError {
    StoreError::NotFound {
        kind: "manifestworkreplicaset",
        name: format!("{}/{}", key.namespace, key.name),
    }
}

fn load(tx: &mut dyn StoreTx, key: &ReplicaSetKey) -> Result<ReplicaSetRecord, StoreError> {
    tx.replica_set(key)?.ok_or_else(|| not_found(key))
}

/// Creates or updates a replica set (rules: [`plan_replica_set`]).
#[derive(Debug, Clone)]
pub struct ApplyReplicaSet {
    /// Namespace and name.
    pub key: ReplicaSetKey,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec` (validated by the caller).
    pub spec: ManifestWorkReplicaSetSpec,
    /// Refuse ([`StoreError::AlreadyExists`]) to replace an existing replica set.
    pub create_only: bool,
    /// The change time.
    pub now: DateTime<Utc>,
}

impl Write for ApplyReplicaSet {
    type Output = (ApplyOutcome, ReplicaSetRecord);
    fn run(self, tx: &mut dyn StoreTx) -> Result<Self::Output, StoreError> {
        let existing = tx.replica_set(&self.key)?;
        if self.create_only && existing.is_some() {
            return Err(StoreError::AlreadyExists {
                kind: "manifestworkreplicaset",
                name: format!("{}/{}", self.key.namespace, self.key.name),
            });
        }
        let (outcome, record) =
            plan_replica_set(existing, &self.key, self.labels, self.spec, self.now)?.into_parts();
        if outcome != ApplyOutcome::Unchanged {
            tx.put_replica_set(&record)?;
        }
        Ok((outcome, record))
    }
}

/// What deleting a replica set did.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    /// The replica set as it was (or is, while a `Foreground` deletion waits).
    pub record: ReplicaSetRecord,
    /// Its works, now deleting.
    pub works: Vec<WorkRecord>,
    /// Whether the replica set is gone (else it waits for its works: `Foreground`).
    pub gone: bool,
}

/// Deletes a replica set: marks every work it owns deleting, and removes it at once
/// (`Background`, the default) or once the works are gone (`Foreground`).
pub struct DeleteReplicaSet {
    /// Namespace and name.
    pub key: ReplicaSetKey,
    /// The request time.
    pub now: DateTime<Utc>,
    /// Builds the works' delete events.
    pub build: SharedSpecEventBuilder,
    /// Who asked.
    pub actor: Option<String>,
}

impl Write for DeleteReplicaSet {
    type Output = Deleted;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Deleted, StoreError> {
        let mut record = load(tx, &self.key)?;
        let mut works = Vec::new();
        let mut remaining = 0;
        for state in tx.cluster_rollouts(&self.key)? {
            let key = WorkKey {
                cluster: state.cluster.clone(),
                name: self.key.name.clone(),
            };
            match tx.work_by_key(&key)? {
                Some(w) if owns(&w, &self.key) => {
                    remaining += 1;
                    works.push(
                        MarkDeleting {
                            key,
                            now: self.now,
                            build: self.build.clone(),
                            actor: self.actor.clone(),
                        }
                        .run(tx)?,
                    );
                }
                _ => {}
            }
        }
        let foreground = record.spec.cascade_deletion_policy
            == Some(workbus_schemas::replicaset::CascadeDeletionPolicy::Foreground);
        let gone = !foreground || remaining == 0;
        if gone {
            tx.remove_replica_set(&self.key)?;
        } else if record.deletion.is_none() {
            record.deletion = Some(self.now);
            tx.put_replica_set(&record)?;
        }
        Ok(Deleted {
            record,
            works,
            gone,
        })
    }
}

/// Approves a gate of a replica set's rollout (rules: [`approve`]).
#[derive(Debug, Clone)]
pub struct ApproveRollout {
    /// Namespace and name.
    pub key: ReplicaSetKey,
    /// The gate; `None` = the one the rollout awaits.
    pub gate: Option<GroupGate>,
}

impl Write for ApproveRollout {
    type Output = GroupGate;
    fn run(self, tx: &mut dyn StoreTx) -> Result<GroupGate, StoreError> {
        let mut rs = load(tx, &self.key)?;
        let gate = approve(&mut rs, self.gate)?;
        tx.put_replica_set(&rs)?;
        Ok(gate)
    }
}

/// Stops a replica set's rollout (rules: [`abort`]).
#[derive(Debug, Clone)]
pub struct AbortRollout {
    /// Namespace and name.
    pub key: ReplicaSetKey,
    /// Who asked.
    pub actor: String,
    /// When.
    pub now: DateTime<Utc>,
}

impl Write for AbortRollout {
    type Output = ReplicaSetRecord;
    fn run(self, tx: &mut dyn StoreTx) -> Result<ReplicaSetRecord, StoreError> {
        let mut rs = load(tx, &self.key)?;
        abort(&mut rs, &self.actor, self.now);
        tx.put_replica_set(&rs)?;
        Ok(rs)
    }
}

/// One reconcile's writes ([`crate::rollout::reconcile::Outcome`]), in one transaction.
pub struct RecordRollout {
    /// Namespace and name.
    pub key: ReplicaSetKey,
    /// The generation the reconcile read: a replica set changed since is left alone
    /// ([`Recorded::stale`]) and reconciled again.
    pub generation: i64,
    /// Works to create or update.
    pub apply: Vec<WorkToApply>,
    /// Clusters whose work goes.
    pub delete: Vec<String>,
    /// States to insert or replace.
    pub record: Vec<ClusterRollout>,
    /// States that go.
    pub forget: Vec<String>,
    /// A halt to store.
    pub halt: Option<Halt>,
    /// The status.
    pub status: ManifestWorkReplicaSetStatus,
    /// A `Foreground` deletion is complete: remove the replica set.
    pub deletion_complete: bool,
    /// Our source id (work uids derive from it).
    pub source_id: String,
    /// The change time.
    pub now: DateTime<Utc>,
    /// Builds the works' spec events.
    pub build: SharedSpecEventBuilder,
    /// The audit records of the reconcile's transitions, appended in the same
    /// transaction (one commit: the log holds a transition exactly when the store does).
    pub audits: Vec<super::AuditEntry>,
}

/// What [`RecordRollout`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    /// The replica set changed since the reconcile read it: nothing was written.
    pub stale: bool,
    /// Works created or updated (unchanged ones are not listed).
    pub applied: Vec<WorkRecord>,
    /// Works marked deleting.
    pub deleted: Vec<WorkRecord>,
    /// Clusters whose work could not be written, and why (their state is not recorded,
    /// so they stay to apply).
    pub skipped: Vec<(String, String)>,
}

impl Write for RecordRollout {
    type Output = Recorded;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Recorded, StoreError> {
        let mut out = Recorded::default();
        let Some(mut rs) = tx.replica_set(&self.key)? else {
            out.stale = true;
            return Ok(out);
        };
        if rs.generation != self.generation {
            out.stale = true;
            return Ok(out);
        }
        for entry in &self.audits {
            super::writes::append_audit(tx, entry)?;
        }
        if self.deletion_complete {
            tx.remove_replica_set(&self.key)?;
            return Ok(out);
        }
        for cluster in &self.delete {
            let key = WorkKey {
                cluster: cluster.clone(),
                name: self.key.name.clone(),
            };
            if let Some(w) = tx.work_by_key(&key)?
                && owns(&w, &self.key)
                && w.deletion.is_none()
            {
                out.deleted.push(
                    MarkDeleting {
                        key,
                        now: self.now,
                        build: self.build.clone(),
                        actor: None,
                    }
                    .run(tx)?,
                );
            }
        }
        for cluster in &self.forget {
            tx.remove_cluster_rollout(&self.key, cluster)?;
        }
        let mut skipped = std::collections::BTreeSet::new();
        for a in self.apply {
            let key = WorkKey {
                cluster: a.cluster.clone(),
                name: self.key.name.clone(),
            };
            let reason = match tx.work_by_key(&key)? {
                Some(w) if !owns(&w, &self.key) => Some(format!(
                    "work {}/{} exists and does not belong to this replica set",
                    key.cluster, key.name
                )),
                Some(w) if w.deletion.is_some() => Some(format!(
                    "work {}/{} is still being deleted",
                    key.cluster, key.name
                )),
                _ => None,
            };
            if let Some(reason) = reason {
                skipped.insert(a.cluster.clone());
                out.skipped.push((a.cluster, reason));
                continue;
            }
            let desired = DesiredWork {
                uid: work_resource_id(&self.source_id, &key.cluster, &key.name).to_string(),
                key,
                labels: work_labels(&rs, &a.placement),
                annotations: BTreeMap::new(),
                spec: a.spec,
            };
            let op = ApplyWork {
                desired,
                create_only: false,
                now: self.now,
                build: self.build.clone(),
                actor: None,
            };
            // One cluster that cannot take the work (it was removed meanwhile) must not
            // hold back the fleet: its apply is rolled back alone.
            let mut op = Some(op);
            let mut result = None;
            tx.isolated(&mut |tx| match op.take().map(|op| op.run(tx)) {
                Some(Ok(r)) => {
                    result = Some(Ok(r));
                    true
                }
                Some(Err(e)) => {
                    result = Some(Err(e));
                    false
                }
                None => false,
            })?;
            match result {
                Some(Ok((outcome, work))) if outcome != ApplyOutcome::Unchanged => {
                    out.applied.push(work);
                }
                Some(Err(e @ (StoreError::Backend(_) | StoreError::Corrupt { .. }))) => {
                    return Err(e);
                }
                Some(Err(e)) => {
                    skipped.insert(a.cluster.clone());
                    out.skipped.push((a.cluster, e.to_string()));
                }
                Some(Ok(_)) | None => {}
            }
        }
        for state in &self.record {
            if !skipped.contains(&state.cluster) {
                tx.put_cluster_rollout(&self.key, state)?;
            }
        }
        if let Some(halt) = self.halt {
            rs.halt = Some(halt);
        }
        rs.status = self.status;
        tx.put_replica_set(&rs)?;
        Ok(out)
    }
}
