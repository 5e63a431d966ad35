//! The hub's durable state: clusters, works, their latest statuses, the outbox of
//! events waiting for a broker acknowledgement, and the append-only audit log.
//!
//! [`Store`] is the storage contract; [`sqlite::SqliteStore`] is the embedded
//! implementation (a PostgreSQL one can implement the same trait). Every method is
//! synchronous and atomic: a method that changes a work *and* queues its spec event
//! does both in one transaction, which is what makes publishing durable (a committed
//! change is always eventually published, see `outbox`).
//!
//! Async code never calls a [`Store`] directly: it goes through [`StoreHandle`], which
//! runs each call on the blocking thread pool so SQLite I/O (with `fsync`) never stalls
//! the runtime.

pub mod checkpoint;
pub mod group_commit;
pub mod handle;
pub mod migrations;
pub mod model;
pub mod sqlite;

pub use group_commit::PendingWrite;
pub use handle::StoreHandle;
pub use model::{
    ApplyOutcome, AuditDirection, AuditEntry, Cluster, DesiredWork, DropReason, IncomingStatus,
    NewOutbox, OutboxEntry, ParkedOutbox, PendingDeletion, StatusOutcome, StoredStatus, WorkFilter,
    WorkKey, WorkRecord,
};

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use workbus_schemas::Event;

/// Why a store operation failed. Conflicts and missing objects are ordinary outcomes
/// the API maps to 4xx; `Backend` and `Corrupt` are server faults.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// `cluster` or `work`.
        kind: &'static str,
        /// Its name (`cluster/name` for works).
        name: String,
    },
    /// The object already exists (create only).
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// `cluster` or `work`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The change conflicts with the object's state (deleting work, cluster with works).
    #[error("{0}")]
    Conflict(String),
    /// The caller-supplied event builder refused the change (e.g. generation overflow).
    #[error("cannot build the event: {0}")]
    Event(String),
    /// A stored row does not decode: the row is left untouched and reported.
    #[error("corrupt stored data in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What failed.
        reason: String,
    },
    /// The database itself failed (I/O, lock, constraint).
    #[error("database error: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Builds the spec event for a work inside the transaction that changes it, so the event
/// sees exactly the committed generation and timestamps. Returns the event to queue.
pub type SpecEventBuilder<'a> =
    &'a (dyn Fn(&WorkRecord, SpecChange) -> Result<Event, String> + Sync);

/// An owned [`SpecEventBuilder`], for writes queued for group commit.
pub type SharedSpecEventBuilder =
    std::sync::Arc<dyn Fn(&WorkRecord, SpecChange) -> Result<Event, String> + Send + Sync>;

/// One write, owned so it can wait in the group-commit queue (see [`group_commit`]).
/// Each variant is the owned form of the [`Store`] method of the same name.
pub enum WriteOp {
    /// [`Store::apply_work`].
    ApplyWork {
        /// What the user asked for.
        desired: Box<DesiredWork>,
        /// Refuse to replace an existing work.
        create_only: bool,
        /// The change time.
        now: DateTime<Utc>,
        /// Builds the spec event to queue.
        build: SharedSpecEventBuilder,
    },
    /// [`Store::mark_deleting`].
    MarkDeleting {
        /// The work.
        key: WorkKey,
        /// The change time.
        now: DateTime<Utc>,
        /// Builds the delete event to queue.
        build: SharedSpecEventBuilder,
    },
    /// [`Store::redrive_deletions`].
    RedriveDeletions {
        /// The works whose delete event is due again.
        uids: Vec<String>,
        /// The queue time.
        now: DateTime<Utc>,
        /// Builds the delete events to queue.
        build: SharedSpecEventBuilder,
    },
    /// [`Store::ingest_status`].
    IngestStatus {
        /// The decoded status.
        status: Box<IncomingStatus>,
        /// The received event's audit row.
        audit: Box<AuditEntry>,
    },
    /// [`Store::complete_outbox`] for several rows at once.
    CompleteOutbox {
        /// The published rows, in row order.
        ids: Vec<i64>,
        /// When the broker acknowledged them.
        sent_at: DateTime<Utc>,
    },
    /// [`Store::audit_received`].
    AuditReceived(Box<AuditEntry>),
    /// [`Store::enqueue`].
    Enqueue {
        /// The events, in queue order.
        events: Vec<NewOutbox>,
        /// The queue time.
        now: DateTime<Utc>,
    },
}

/// What a [`WriteOp`] produced.
#[derive(Debug)]
pub enum WriteOutput {
    /// From [`WriteOp::ApplyWork`].
    Applied(ApplyOutcome, Box<WorkRecord>),
    /// From [`WriteOp::MarkDeleting`]: the work as it is now.
    MarkedDeleting(Box<WorkRecord>),
    /// From [`WriteOp::RedriveDeletions`]: how many delete events were queued.
    Redriven(usize),
    /// From [`WriteOp::IngestStatus`].
    Status(StatusOutcome),
    /// From operations that return nothing.
    Done,
}

/// Which kind of spec change a queued event announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecChange {
    /// The work was created.
    Create,
    /// Its spec, labels or annotations changed.
    Update,
    /// It was marked deleting.
    Delete,
}

/// The storage contract of the hub. Implementations must make every method atomic and
/// durable once it returns `Ok`.
pub trait Store: Send + Sync + 'static {
    /// Registers a cluster.
    fn create_cluster(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Cluster, StoreError>;
    /// One cluster.
    fn get_cluster(&self, name: &str) -> Result<Option<Cluster>, StoreError>;
    /// All clusters, by name.
    fn list_clusters(&self) -> Result<Vec<Cluster>, StoreError>;
    /// Removes a cluster; [`StoreError::Conflict`] while it still has works.
    fn delete_cluster(&self, name: &str) -> Result<(), StoreError>;
    /// Records that an event arrived from the cluster (no-op for unknown clusters).
    fn touch_cluster(&self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Creates or updates a work and queues its spec event in the same transaction.
    /// A no-op apply (same spec, labels, annotations) changes and queues nothing.
    /// `create_only` makes an existing work an [`StoreError::AlreadyExists`].
    fn apply_work(
        &self,
        desired: &DesiredWork,
        create_only: bool,
        now: DateTime<Utc>,
        build: SpecEventBuilder<'_>,
    ) -> Result<(ApplyOutcome, WorkRecord), StoreError>;
    /// Marks a work deleting and queues its delete event (idempotent: an already
    /// deleting work is returned unchanged and nothing is queued).
    fn mark_deleting(
        &self,
        key: &WorkKey,
        now: DateTime<Utc>,
        build: SpecEventBuilder<'_>,
    ) -> Result<WorkRecord, StoreError>;
    /// One work with its latest status.
    fn get_work(&self, key: &WorkKey) -> Result<Option<WorkRecord>, StoreError>;
    /// One work by its uid (the wire `resourceid`).
    fn get_work_by_uid(&self, uid: &str) -> Result<Option<WorkRecord>, StoreError>;
    /// Works matching `filter`, ordered by (cluster, name), at most `filter.limit`.
    fn list_works(&self, filter: &WorkFilter) -> Result<Vec<WorkRecord>, StoreError>;
    /// All works of one cluster (including deleting ones), ordered by name.
    fn works_of_cluster(&self, cluster: &str) -> Result<Vec<WorkRecord>, StoreError>;
    /// Every work waiting for its agent's deletion confirmation, oldest request first.
    fn pending_deletions(&self) -> Result<Vec<PendingDeletion>, StoreError>;
    /// Queues the delete event of each listed work again, for those still deleting,
    /// reading and queueing in one transaction: a work completed (or completed and
    /// re-created) since it was listed gets no event, so a stale delete can never
    /// follow a newer incarnation's create. Returns how many were queued.
    fn redrive_deletions(
        &self,
        uids: &[String],
        now: DateTime<Utc>,
        build: SpecEventBuilder<'_>,
    ) -> Result<usize, StoreError>;

    /// Applies a received status by the hub's acceptance rule (see `source::status_rule`)
    /// in one transaction: stores it, hard-deletes a work whose deletion completed, or
    /// changes nothing and says why.
    /// `audit` (the received event) is appended and the cluster's last-heard time
    /// updated in the same transaction, whatever the outcome.
    fn ingest_status(
        &self,
        status: &IncomingStatus,
        audit: &AuditEntry,
    ) -> Result<StatusOutcome, StoreError>;

    /// Runs `ops` in order, each atomically, and makes them durable together: one
    /// commit (one `fsync`) for the whole batch is what group commit is for. A failing
    /// op changes nothing and does not affect the others; if the final commit fails,
    /// every op fails. Results are in `ops` order.
    fn write_batch(&self, ops: Vec<WriteOp>) -> Vec<Result<WriteOutput, StoreError>>;

    /// Queues events that change no work (resync answers and requests).
    fn enqueue(&self, events: &[NewOutbox], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Up to `limit` pending (not parked) events with id greater than `after`, oldest
    /// first.
    fn outbox_batch(&self, after: i64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Removes a published event and writes its audit row, atomically. Parked events
    /// it supersedes (older ones with the same [supersession key](Store::park_outbox))
    /// are removed with it.
    fn complete_outbox(&self, id: i64, sent_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Counts a failed publish attempt.
    fn outbox_attempt_failed(&self, id: i64) -> Result<(), StoreError>;
    /// Number of pending events (parked ones are [`Store::outbox_parked_count`]).
    fn outbox_depth(&self) -> Result<u64, StoreError>;
    /// Parks a pending event that can never be published: the row stays, with
    /// `reason`, out of the pending queue. Older parked events with the same
    /// supersession key — the same cluster and `resource_id`, or, for events about no
    /// work, the same cluster and event type — are removed: at most the newest
    /// unpublishable event per key is kept. Returns how many were removed.
    fn park_outbox(&self, id: i64, reason: &str, at: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Puts parked events back into the pending queue (they are publishable under the
    /// current configuration).
    fn unpark_outbox(&self, ids: &[i64]) -> Result<(), StoreError>;
    /// Up to `limit` parked events with id greater than `after`, oldest first.
    fn parked_outbox(&self, after: i64, limit: usize) -> Result<Vec<ParkedOutbox>, StoreError>;
    /// Number of parked events.
    fn outbox_parked_count(&self) -> Result<u64, StoreError>;

    /// Appends a received event to the audit log and updates the cluster's last-heard
    /// time.
    fn audit_received(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Audit rows for a resource id (or all when `None`), oldest first, at most `limit`.
    fn audit(&self, resource_id: Option<&str>, limit: usize)
    -> Result<Vec<AuditEntry>, StoreError>;
}
