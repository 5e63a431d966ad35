//! Every change the hub makes to its store, as a typed [`Write`]: the
//! [`rules`](super::rules) applied to what the backend reads, carried out with the
//! backend's [`StoreTx`] row operations. Written once; every backend runs these.
//!
//! A write runs inside a transaction, alone ([`Store::write`](super::Store)) or
//! group-committed with others ([`StoreHandle::write`](super::StoreHandle::write)), and
//! its caller gets its own typed answer — there is no shared result enum to unpack.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::rules::apply::{ApplyPlan, plan_apply};
use super::rules::cluster::check_removal;
use super::rules::deletion::{DeletionPlan, plan_deletion, plan_forced_removal, redrive_due};
use super::rules::status::{StatusDecision, decide};
use super::tx::StoreTx;
use super::{
    ApiToken, ApplyOutcome, AuditDirection, AuditEntry, Cluster, DesiredWork, DropReason,
    IncomingStatus, NewOutbox, SharedSpecEventBuilder, SpecChange, StatusOutcome, StoreError,
    StoredStatus, WorkKey, WorkRecord,
};

/// One atomic change of the store.
pub trait Write: Send + 'static {
    /// What the caller is told once the change is durable.
    type Output: Send + 'static;
    /// Carries the change out inside `tx`. An `Err` means the change must be rolled
    /// back (the caller's transaction or savepoint does that).
    fn run(self, tx: &mut dyn StoreTx) -> Result<Self::Output, StoreError>;
}

/// Registers a cluster ([`StoreError::AlreadyExists`] if it is).
#[derive(Debug, Clone)]
pub struct CreateCluster {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The registration time.
    pub now: DateTime<Utc>,
}

impl Write for CreateCluster {
    type Output = Cluster;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Cluster, StoreError> {
        let cluster = Cluster {
            name: self.name,
            labels: self.labels,
            created: self.now,
            last_heard: None,
            registration: None,
        };
        if !tx.insert_cluster(&cluster)? {
            return Err(StoreError::AlreadyExists {
                kind: "cluster",
                name: cluster.name,
            });
        }
        Ok(cluster)
    }
}

/// Removes a cluster: [`StoreError::Conflict`] while it still has works,
/// [`StoreError::NotFound`] if there is none. A cluster that joined over the bus leaves
/// its name revoked: its certificate is refused until the name joins again.
#[derive(Debug, Clone)]
pub struct DeleteCluster {
    /// Its name.
    pub name: String,
}

impl Write for DeleteCluster {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        check_removal(&self.name, tx.count_works(&self.name)?)?;
        if tx
            .cluster(&self.name)?
            .is_some_and(|c| c.registration.is_some())
        {
            tx.set_cluster_revoked(&self.name, Some(chrono::Utc::now()))?;
        }
        if !tx.remove_cluster(&self.name)? {
            return Err(StoreError::NotFound {
                kind: "cluster",
                name: self.name,
            });
        }
        Ok(())
    }
}

/// Records that an event arrived from a cluster (no-op for unknown clusters).
#[derive(Debug, Clone)]
pub struct TouchCluster {
    /// The cluster.
    pub name: String,
    /// When the event arrived.
    pub at: DateTime<Utc>,
}

impl Write for TouchCluster {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        tx.set_last_heard(&self.name, self.at)
    }
}

/// Creates or updates a work ([`rules::apply`](super::rules::apply)) and queues its
/// spec event in the same transaction; a no-op apply changes and queues nothing.
pub struct ApplyWork {
    /// What the user asked for.
    pub desired: DesiredWork,
    /// Refuse to replace an existing work.
    pub create_only: bool,
    /// The change time.
    pub now: DateTime<Utc>,
    /// Builds the spec event to queue.
    pub build: SharedSpecEventBuilder,
    /// Who asked (the API token's name), kept on the queued event and its audit row.
    pub actor: Option<String>,
}

impl Write for ApplyWork {
    type Output = (ApplyOutcome, WorkRecord);
    fn run(self, tx: &mut dyn StoreTx) -> Result<Self::Output, StoreError> {
        let key = &self.desired.key;
        if !tx.cluster_exists(&key.cluster)? {
            return Err(StoreError::NotFound {
                kind: "cluster",
                name: key.cluster.clone(),
            });
        }
        let existing = tx.work_by_key(key)?;
        let predecessor = match existing {
            None => tx.tombstone(&self.desired.uid)?,
            Some(_) => None,
        };
        let plan = plan_apply(
            existing,
            predecessor,
            &self.desired,
            self.create_only,
            self.now,
        )?;
        match &plan {
            ApplyPlan::Create(work) => tx.insert_work(work)?,
            ApplyPlan::Update(work) => tx.update_work(work)?,
            ApplyPlan::Unchanged(_) => {}
        }
        if let Some(change) = plan.spec_change() {
            let actor = self.actor.as_deref();
            queue_spec(tx, plan.work(), change, self.now, &self.build, actor)?;
        }
        Ok((plan.outcome(), plan.into_work()))
    }
}

/// Marks a work deleting and queues its delete event ([`rules::deletion`]
/// (super::rules::deletion)); an already deleting work is returned unchanged and
/// nothing is queued.
pub struct MarkDeleting {
    /// The work.
    pub key: WorkKey,
    /// The request time.
    pub now: DateTime<Utc>,
    /// Builds the delete event to queue.
    pub build: SharedSpecEventBuilder,
    /// Who asked (the API token's name), kept on the queued event and its audit row.
    pub actor: Option<String>,
}

impl Write for MarkDeleting {
    type Output = WorkRecord;
    fn run(self, tx: &mut dyn StoreTx) -> Result<WorkRecord, StoreError> {
        let work = tx
            .work_by_key(&self.key)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "work",
                name: format!("{}/{}", self.key.cluster, self.key.name),
            })?;
        match plan_deletion(work, self.now) {
            DeletionPlan::AlreadyDeleting(work) => Ok(work),
            DeletionPlan::Mark(work) => {
                tx.update_deletion(&work)?;
                let actor = self.actor.as_deref();
                queue_spec(tx, &work, SpecChange::Delete, self.now, &self.build, actor)?;
                Ok(work)
            }
        }
    }
}

/// Removes a work from the hub without its agent's confirmation (`delete --force`, for a
/// cluster whose agent is gone for good; [`rules::deletion`](super::rules::deletion)):
/// a live work's delete event is queued first (when `announce` allows it), then the row
/// goes, leaving its tombstone, in one transaction.
pub struct ForceDeleteWork {
    /// The work.
    pub key: WorkKey,
    /// The request time.
    pub now: DateTime<Utc>,
    /// Builds the delete event to queue.
    pub build: SharedSpecEventBuilder,
    /// Who asked (the API token's name), kept on the queued event and its audit row.
    pub actor: Option<String>,
    /// Whether a delete event may be queued at all (`false` when it could never be
    /// published over MQTT: the work is removed without one).
    pub announce: bool,
}

impl Write for ForceDeleteWork {
    type Output = WorkRecord;
    fn run(self, tx: &mut dyn StoreTx) -> Result<WorkRecord, StoreError> {
        let work = tx
            .work_by_key(&self.key)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "work",
                name: format!("{}/{}", self.key.cluster, self.key.name),
            })?;
        let actor = self.actor.as_deref();
        force_remove(tx, work, self.now, self.announce, &self.build, actor)
    }
}

/// Removes a cluster with its works (`delete cluster --cascade`). Without `force`,
/// every live work is marked deleting (its delete event queued) and the cluster goes
/// only once no work is left — repeat the request until then; with `force`, the works
/// are removed at once ([`ForceDeleteWork`]) and the cluster with them.
pub struct DeleteClusterCascade {
    /// The cluster.
    pub name: String,
    /// Remove the works without their agent's confirmation.
    pub force: bool,
    /// The request time.
    pub now: DateTime<Utc>,
    /// Builds the delete events to queue.
    pub build: SharedSpecEventBuilder,
    /// Who asked (the API token's name).
    pub actor: Option<String>,
}

/// What a cascading cluster deletion did.
#[derive(Debug, Clone, PartialEq)]
pub enum CascadeOutcome {
    /// The cluster is gone; these works went with it (forced).
    Removed {
        /// The works removed, as they were.
        works: Vec<WorkRecord>,
    },
    /// The cluster stays until its agent confirms these works' deletion.
    Pending {
        /// The works now marked deleting by this request (the others already were).
        marked: Vec<WorkRecord>,
        /// How many works are left, deleting.
        remaining: u64,
    },
}

impl Write for DeleteClusterCascade {
    type Output = CascadeOutcome;
    fn run(self, tx: &mut dyn StoreTx) -> Result<CascadeOutcome, StoreError> {
        if !tx.cluster_exists(&self.name)? {
            return Err(StoreError::NotFound {
                kind: "cluster",
                name: self.name,
            });
        }
        let works = tx.works_of(&self.name)?;
        let actor = self.actor.as_deref();
        if self.force {
            let mut removed = Vec::with_capacity(works.len());
            for work in works {
                removed.push(force_remove(tx, work, self.now, true, &self.build, actor)?);
            }
            DeleteCluster { name: self.name }.run(tx)?;
            return Ok(CascadeOutcome::Removed { works: removed });
        }
        if works.is_empty() {
            DeleteCluster { name: self.name }.run(tx)?;
            return Ok(CascadeOutcome::Removed { works });
        }
        let remaining = works.len() as u64;
        let mut marked = Vec::new();
        for work in works {
            if let DeletionPlan::Mark(work) = plan_deletion(work, self.now) {
                tx.update_deletion(&work)?;
                queue_spec(tx, &work, SpecChange::Delete, self.now, &self.build, actor)?;
                marked.push(work);
            }
        }
        Ok(CascadeOutcome::Pending { marked, remaining })
    }
}

/// The forced removal of one work inside a transaction: its delete event (when live and
/// `announce`), then the row and its status, leaving the tombstone.
fn force_remove(
    tx: &mut dyn StoreTx,
    work: WorkRecord,
    now: DateTime<Utc>,
    announce: bool,
    build: &SharedSpecEventBuilder,
    actor: Option<&str>,
) -> Result<WorkRecord, StoreError> {
    let plan = plan_forced_removal(work, now);
    if plan.announce && announce {
        queue_spec(tx, &plan.work, SpecChange::Delete, now, build, actor)?;
    }
    tx.remove_work(&plan.work, now)?;
    Ok(plan.work)
}

/// Queues the delete event of each listed work again, for those still deleting, reading
/// and queueing in one transaction. Answers how many were queued.
pub struct RedriveDeletions {
    /// The works whose delete event is due again.
    pub uids: Vec<String>,
    /// The queue time.
    pub now: DateTime<Utc>,
    /// Builds the delete events.
    pub build: SharedSpecEventBuilder,
}

impl Write for RedriveDeletions {
    type Output = usize;
    fn run(self, tx: &mut dyn StoreTx) -> Result<usize, StoreError> {
        let mut queued = 0;
        for uid in &self.uids {
            // One work that cannot be re-driven (a corrupt row, an event that does not
            // build) must not hold back the rest of the batch, run after run.
            let queue = match tx.work_by_uid(uid) {
                Ok(Some(work)) if redrive_due(Some(&work)) => {
                    queue_spec(tx, &work, SpecChange::Delete, self.now, &self.build, None)
                }
                Ok(_) => continue, // completed (or re-created) since it was listed
                Err(e) => Err(e),
            };
            match queue {
                Ok(()) => queued += 1,
                Err(e @ (StoreError::Corrupt { .. } | StoreError::Event(_))) => {
                    tracing::error!(%uid, error = %e, "cannot re-drive this deletion");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(queued)
    }
}

/// Applies a received status by the acceptance rule ([`rules::status`]
/// (super::rules::status)): stores it, removes a work whose deletion completed, or
/// changes nothing and says why. The received event's audit row is appended (without
/// its data when the status is dropped) and the cluster's last-heard time updated
/// whatever the outcome.
#[derive(Debug, Clone)]
pub struct IngestStatus {
    /// The decoded status.
    pub status: IncomingStatus,
    /// The received event's audit row.
    pub audit: AuditEntry,
}

impl Write for IngestStatus {
    type Output = StatusOutcome;
    fn run(self, tx: &mut dyn StoreTx) -> Result<StatusOutcome, StoreError> {
        let incoming = self.status;
        let work = tx.work_by_uid(&incoming.uid)?;
        let decision = decide(work.as_ref(), &incoming, incoming.received);
        let mut audit = self.audit;
        if matches!(decision, StatusDecision::Drop(_)) || work.is_none() {
            // A dropped status is audited without its payload (floods must not fill
            // the disk); the attributes say what came.
            audit.event.take_data();
        }
        audit_received(tx, &audit)?;
        match (decision, work) {
            (StatusDecision::Drop(reason), _) => Ok(StatusOutcome::Dropped(reason)),
            (_, None) => Ok(StatusOutcome::Dropped(DropReason::UnknownWork)),
            (StatusDecision::CompleteDeletion, Some(work)) => {
                tx.remove_work(&work, incoming.received)?;
                Ok(StatusOutcome::Deleted(Box::new(work)))
            }
            (StatusDecision::Accept, Some(mut work)) => {
                let stored = StoredStatus {
                    status: incoming.status,
                    generation: incoming.generation,
                    sequence_id: incoming.sequence_id,
                    status_hash: incoming.status_hash,
                    received: incoming.received,
                };
                tx.store_status(&work.uid, &stored)?;
                work.status = Some(stored);
                Ok(StatusOutcome::Accepted(Box::new(work)))
            }
        }
    }
}

/// Appends a received event to the audit log and updates the cluster's last-heard time.
#[derive(Debug, Clone)]
pub struct AuditReceived(pub AuditEntry);

impl Write for AuditReceived {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        audit_received(tx, &self.0)
    }
}

/// Queues events that change no work (resync answers and requests), in order.
#[derive(Debug, Clone)]
pub struct Enqueue {
    /// The events, in queue order.
    pub events: Vec<NewOutbox>,
    /// The queue time.
    pub now: DateTime<Utc>,
}

impl Write for Enqueue {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        self.events
            .iter()
            .try_for_each(|e| tx.insert_outbox(e, self.now))
    }
}

/// Removes published outbox rows and writes their `sent` audit rows (with the parked
/// rows each supersedes).
#[derive(Debug, Clone)]
pub struct CompleteOutbox {
    /// The published rows, in row order.
    pub ids: Vec<i64>,
    /// When the broker acknowledged them.
    pub sent_at: DateTime<Utc>,
}

impl Write for CompleteOutbox {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        self.ids
            .iter()
            .try_for_each(|&id| tx.complete_outbox(id, self.sent_at))
    }
}

/// Counts a failed publish attempt of an outbox row.
#[derive(Debug, Clone, Copy)]
pub struct OutboxAttemptFailed(pub i64);

impl Write for OutboxAttemptFailed {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        tx.count_outbox_attempt(self.0)
    }
}

/// Parks a pending outbox row that can never be published as it is (see
/// [`Store::park_outbox`](super::Store)); answers how many older parked rows it
/// superseded. [`StoreError::NotFound`] when the row is not pending.
#[derive(Debug, Clone)]
pub struct ParkOutbox {
    /// The row.
    pub id: i64,
    /// Why it cannot be published.
    pub reason: String,
    /// When it was parked.
    pub at: DateTime<Utc>,
}

impl Write for ParkOutbox {
    type Output = u64;
    fn run(self, tx: &mut dyn StoreTx) -> Result<u64, StoreError> {
        tx.park_outbox(self.id, &self.reason, self.at)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "pending outbox row",
                name: self.id.to_string(),
            })
    }
}

/// Puts parked outbox rows back into the pending queue (they are publishable under the
/// current configuration).
#[derive(Debug, Clone)]
pub struct UnparkOutbox(pub Vec<i64>);

impl Write for UnparkOutbox {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        self.0.iter().try_for_each(|&id| tx.unpark_outbox(id))
    }
}

/// Stores a new API token: [`StoreError::AlreadyExists`] when its name is taken (a
/// digest collision of two random secrets is not a case worth a message of its own).
#[derive(Debug, Clone)]
pub struct CreateToken(pub ApiToken);

impl Write for CreateToken {
    type Output = ApiToken;
    fn run(self, tx: &mut dyn StoreTx) -> Result<ApiToken, StoreError> {
        if !tx.insert_token(&self.0)? {
            return Err(StoreError::AlreadyExists {
                kind: "token",
                name: self.0.name,
            });
        }
        Ok(self.0)
    }
}

/// Stores `token` only if no API token exists at all (the first start's admin token):
/// answers whether it was stored. Checked and inserted in one transaction, so two hubs
/// starting on one data directory cannot both bootstrap.
#[derive(Debug, Clone)]
pub struct BootstrapToken(pub ApiToken);

impl Write for BootstrapToken {
    type Output = bool;
    fn run(self, tx: &mut dyn StoreTx) -> Result<bool, StoreError> {
        if tx.count_tokens()? > 0 {
            return Ok(false);
        }
        tx.insert_token(&self.0)
    }
}

/// Removes (revokes) the API token `name`; [`StoreError::NotFound`] if there is none.
#[derive(Debug, Clone)]
pub struct RevokeToken {
    /// Its name.
    pub name: String,
}

impl Write for RevokeToken {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        if !tx.remove_token(&self.name)? {
            return Err(StoreError::NotFound {
                kind: "token",
                name: self.name,
            });
        }
        Ok(())
    }
}

/// Builds a work's spec event and queues it.
fn queue_spec(
    tx: &mut dyn StoreTx,
    work: &WorkRecord,
    change: SpecChange,
    now: DateTime<Utc>,
    build: &SharedSpecEventBuilder,
    actor: Option<&str>,
) -> Result<(), StoreError> {
    let outgoing = build(work, change).map_err(StoreError::Event)?;
    let mut queued = NewOutbox::new(work.key.cluster.clone(), Some(work.uid.clone()), outgoing);
    queued.actor = actor.map(str::to_string);
    tx.insert_outbox(&queued, now)
}

/// A received event's audit row, and the cluster's last-heard time.
fn audit_received(tx: &mut dyn StoreTx, entry: &AuditEntry) -> Result<(), StoreError> {
    tx.append_audit(entry)?;
    if entry.direction == AuditDirection::Received
        && let Some(cluster) = &entry.cluster
    {
        tx.set_last_heard(cluster, entry.at)?;
    }
    Ok(())
}
