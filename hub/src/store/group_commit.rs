//! Group commit: many concurrent writes, one `fsync`.
//!
//! With `synchronous=FULL` every SQLite commit waits for the disk (~0.3 ms here), and
//! the hub's hot paths — REST writes, accepted statuses, published-event completions —
//! used to commit one by one: ~30,000 commits for one fleet-wide update of 10,000
//! clusters. Writers now queue an owned [`WriteOp`] with [`StoreHandle::submit`]; one
//! committer thread takes everything queued (up to [`MAX_BATCH`]), runs it through
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

/// Starts the committer on its own OS thread (`store-writer`): it blocks on SQLite and
/// `fsync` by design, stays warm between batches, and is easy to find in a profile.
/// It stops when every [`StoreHandle`](super::StoreHandle) is gone.
pub(super) fn start(
    store: Arc<dyn Store>,
    queue: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(store, queue, metrics))
        .map(|_| ())
}

/// The committer loop: wait for one op, take whatever else is queued (≤ [`MAX_BATCH`]),
/// commit them together, answer each.
fn run(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Job>, metrics: Arc<Metrics>) {
    while let Some(first) = queue.blocking_recv() {
        let mut ops = Vec::with_capacity(MAX_BATCH);
        let mut replies = Vec::with_capacity(MAX_BATCH);
        ops.push(first.0);
        replies.push(first.1);
        while ops.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok((op, reply)) => {
                    ops.push(op);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let n = ops.len() as u64;
        let started = std::time::Instant::now();
        let results = store.write_batch(ops);
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
