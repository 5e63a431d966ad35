//! Group commit: many concurrent writes, one `fsync`.
//!
//! With `synchronous=FULL` every SQLite commit waits for the disk (~0.3 ms here), and
//! the hub's hot paths — REST writes, accepted statuses, published-event completions —
//! used to commit one by one: ~30,000 commits for one fleet-wide update of 10,000
//! clusters. Writers now queue an owned [`WriteOp`] with [`StoreHandle::submit`]; one
//! committer task takes everything queued (up to [`MAX_BATCH`]), runs it through
//! [`Store::write_batch`] (one transaction, a savepoint per op) and only then answers
//! each writer. While one batch is on the disk the next one fills up, so the commit
//! rate adapts to the load and a lone write still commits at once (no timer, no added
//! latency when idle).
//!
//! Guarantees are those of the single-write methods: each op is atomic, an answer means
//! durable, and ops run in queue order (a writer that awaits its answer before queueing
//! the next keeps its own order; the source loop relies on queue order instead).
//!
//! [`StoreHandle::submit`]: super::StoreHandle::submit

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, WriteOp, WriteOutput};
use crate::metrics::Metrics;

/// Most ops committed together (bounds the time the connection is held).
pub const MAX_BATCH: usize = 512;
/// Queued ops before writers wait (back-pressure towards the source loop and REST).
pub const QUEUE: usize = 8192;

/// A queued op and where its result goes.
pub(super) type Job = (WriteOp, oneshot::Sender<Result<WriteOutput, StoreError>>);

/// The answer to a queued write; resolves once its batch is durable (or failed).
#[derive(Debug)]
pub struct PendingWrite(pub(super) Option<oneshot::Receiver<Result<WriteOutput, StoreError>>>);

impl PendingWrite {
    /// Waits until the write is durable and returns what it did.
    pub async fn outcome(self) -> Result<WriteOutput, StoreError> {
        match self.0 {
            Some(rx) => rx.await.unwrap_or_else(|_| Err(closed())),
            None => Err(closed()),
        }
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the store's committer has stopped".into())
}

/// Runs the committer until every [`StoreHandle`](super::StoreHandle) is gone.
pub(super) async fn run(
    store: Arc<dyn Store>,
    mut queue: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (ops, replies): (Vec<WriteOp>, Vec<_>) = jobs.drain(..).unzip();
        let n = ops.len() as u64;
        let store = store.clone();
        let started = std::time::Instant::now();
        let results = match tokio::task::spawn_blocking(move || store.write_batch(ops)).await {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(error = %e, "store batch task failed");
                replies
                    .iter()
                    .map(|_| Err(StoreError::Backend(format!("store task failed: {e}"))))
                    .collect()
            }
        };
        metrics
            .store_commit_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        metrics.store_commits.fetch_add(1, Ordering::Relaxed);
        metrics.store_writes.fetch_add(n, Ordering::Relaxed);
        for (reply, result) in replies.into_iter().zip(results) {
            // A writer that stopped waiting (request cancelled) does not undo the write.
            let _ = reply.send(result);
        }
    }
}
