//! [`StoreHandle`]: how async code uses a [`Store`] without blocking the runtime.
//!
//! Reads (and rare writes) run on tokio's blocking thread pool with [`StoreHandle::run`],
//! because a SQLite commit with `synchronous=FULL` waits for `fsync` and must not stall
//! the reactor that also serves HTTP and MQTT. The hot writes (REST changes, statuses,
//! outbox completions) are queued with [`StoreHandle::submit`] and group-committed (see
//! [`group_commit`](super::group_commit)).

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};

use super::group_commit::{self, Job, PendingWrite, QueuedWrite};
use super::writes::{MarkDeleting, Write};
use super::{Store, StoreError, WorkRecord};
use crate::metrics::Metrics;

/// A cheaply clonable, async-friendly reference to the store.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn Store>,
    committer: mpsc::Sender<Job>,
    deletion_requests: Arc<Notify>,
}

impl StoreHandle {
    /// Wraps a store and starts its group committer thread. Commit counts go to
    /// `metrics`.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let (committer, queue) = mpsc::channel(group_commit::QUEUE);
        group_commit::start(store.clone(), queue, metrics)
            .map_err(|e| StoreError::Backend(format!("cannot start the store writer: {e}")))?;
        Ok(StoreHandle {
            store,
            committer,
            deletion_requests: Arc::new(Notify::new()),
        })
    }

    /// Woken after every committed [`StoreHandle::mark_deleting`], so the deletion
    /// re-drive (`source::redrive`) schedules the new deletion without polling.
    pub fn deletion_requests(&self) -> Arc<Notify> {
        self.deletion_requests.clone()
    }

    /// The store itself, for synchronous callers (tests, blocking threads).
    pub fn blocking(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs `f` against the store on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Queues a write for group commit and returns once it is queued: writes run in
    /// the order they were queued. Await [`PendingWrite::outcome`] for the result.
    pub async fn submit<W: Write>(&self, op: W) -> PendingWrite<W::Output> {
        let (job, rx) = QueuedWrite::queue(op);
        match self.committer.send(job).await {
            Ok(()) => PendingWrite(Some(rx)),
            Err(_) => PendingWrite(None),
        }
    }

    /// Queues a write and waits until it is durable.
    pub async fn write<W: Write>(&self, op: W) -> Result<W::Output, StoreError> {
        self.submit(op).await.outcome().await
    }

    /// [`MarkDeleting`], group-committed; wakes the deletion re-drive.
    pub async fn mark_deleting(&self, op: MarkDeleting) -> Result<WorkRecord, StoreError> {
        let work = self.write(op).await?;
        self.deletion_requests.notify_one();
        Ok(work)
    }
}
