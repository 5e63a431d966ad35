//! Group commit: many concurrent writes, one `fsync`.
//!
//! With `synchronous=FULL` every SQLite commit waits for the disk (~0.3 ms here), and
//! the hub's hot paths — REST writes, accepted statuses, published-event completions —
//! used to commit one by one: ~30,000 commits for one fleet-wide update of 10,000
//! clusters. Writers now queue a typed [`Write`] with [`StoreHandle::submit`]; one
//! committer thread takes everything queued (up to [`MAX_BATCH`]), runs it in one
//! [`Store::transaction`] with a savepoint per write ([`StoreTx::isolated`]) and only
//! then answers each writer. While one batch is on the disk the next one fills up, so the commit
//! rate adapts to the load and a lone write still commits at once (no timer, no added
//! latency when idle).
//!
//! Guarantees are those of the single-write methods: each op is atomic, an answer means
//! durable, and ops run in queue order (a writer that awaits its answer before queueing
//! the next keeps its own order; the source loop relies on queue order instead).
//!
//! [`StoreHandle::submit`]: super::StoreHandle::submit

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, StoreTx, Write};
use crate::metrics::Metrics;

/// Most ops committed together (bounds the time the connection is held).
pub const MAX_BATCH: usize = 512;
/// Queued ops before writers wait (back-pressure towards the source loop and REST).
pub const QUEUE: usize = 8192;

/// A queued write, its answer once it ran, and where the answer goes once durable.
pub(super) type Job = Box<dyn Queued>;

/// A [`Write`] waiting in the queue, with its type erased so writes of every kind
/// share one queue and one batch.
pub(super) trait Queued: Send {
    /// Runs the write in the open transaction and keeps its answer; `false` when it
    /// failed (its savepoint is then rolled back).
    fn run(&mut self, tx: &mut dyn StoreTx) -> bool;
    /// Sends the kept answer, or `failed` when the batch did not commit.
    fn answer(self: Box<Self>, failed: Option<&StoreError>);
}

/// The [`Queued`] form of a `W`.
pub(super) struct QueuedWrite<W: Write> {
    op: Option<W>,
    result: Option<Result<W::Output, StoreError>>,
    reply: oneshot::Sender<Result<W::Output, StoreError>>,
}

impl<W: Write> QueuedWrite<W> {
    /// Queues `op`; its answer arrives on the returned receiver.
    pub(super) fn queue(op: W) -> (Job, oneshot::Receiver<Result<W::Output, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let job = QueuedWrite {
            op: Some(op),
            result: None,
            reply,
        };
        (Box::new(job), rx)
    }
}

impl<W: Write> Queued for QueuedWrite<W> {
    fn run(&mut self, tx: &mut dyn StoreTx) -> bool {
        let result = match self.op.take() {
            Some(op) => op.run(tx),
            None => Err(StoreError::Backend("a queued write ran twice".into())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, failed: Option<&StoreError>) {
        let result = match (failed, self.result) {
            // An outage stays an outage (503 from the API, retried by callers).
            (Some(StoreError::Unavailable { server, reason }), _) => Err(StoreError::Unavailable {
                server: server.clone(),
                reason: reason.clone(),
            }),
            (Some(e), _) => Err(StoreError::Backend(format!("group commit failed: {e}"))),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Backend("a queued write did not run".into())),
        };
        // A writer that stopped waiting (request cancelled) does not undo the write.
        let _ = self.reply.send(result);
    }
}

/// The answer to a queued write; resolves once its batch is durable (or failed).
#[derive(Debug)]
pub struct PendingWrite<T>(pub(super) Option<oneshot::Receiver<Result<T, StoreError>>>);

impl<T> PendingWrite<T> {
    /// Waits until the write is durable and returns what it did.
    pub async fn outcome(self) -> Result<T, StoreError> {
        match self.0 {
            Some(rx) => rx.await.unwrap_or_else(|_| Err(closed())),
            None => Err(closed()),
        }
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the store's committer has stopped".into())
}

impl<T> PendingWrite<T> {
    /// The answer of a write whose batch has already been committed (see [`Batch`]);
    /// an error if it has not been answered.
    pub fn answered(self) -> Result<T, StoreError> {
        match self.0.map(|mut rx| rx.try_recv()) {
            Some(Ok(result)) => result,
            _ => Err(StoreError::Backend(
                "the write has not been answered".into(),
            )),
        }
    }
}

/// Writes committed together: one transaction, each write in its own savepoint, so a
/// failing write is rolled back alone and does not spoil the others, and one commit
/// (one `fsync`) makes them all durable. The committer thread runs every batch through
/// this; synchronous callers (tests, tools) can too.
#[derive(Default)]
pub struct Batch {
    jobs: Vec<Job>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a write (writes run in the order added); its answer arrives once the batch
    /// is committed.
    pub fn push<W: Write>(&mut self, op: W) -> PendingWrite<W::Output> {
        let (job, rx) = QueuedWrite::queue(op);
        self.jobs.push(job);
        PendingWrite(Some(rx))
    }

    fn push_job(&mut self, job: Job) {
        self.jobs.push(job);
    }

    /// How many writes it holds.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Runs and commits the batch, then answers every write (each with its own result,
    /// or with the commit's failure). `Err` when the batch as a whole did not commit.
    pub fn commit(mut self, store: &dyn Store) -> Result<(), StoreError> {
        let jobs = &mut self.jobs;
        let committed = store.transaction(&mut |tx| {
            for job in jobs.iter_mut() {
                tx.isolated(&mut |tx| job.run(tx))?;
            }
            Ok(())
        });
        for job in self.jobs {
            job.answer(committed.as_ref().err());
        }
        committed
    }
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
        let mut batch = Batch::new();
        batch.push_job(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push_job(job),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let started = std::time::Instant::now();
        let committed = batch.commit(store.as_ref());
        let took = started.elapsed();
        metrics.store_commit_micros.inc_by(took.as_micros() as u64);
        metrics.store_commit_seconds.observe(took.as_secs_f64());
        metrics.store_commits.inc();
        metrics.store_writes.inc_by(n);
        if let Err(e) = &committed {
            tracing::error!(error = %e, writes = n, "group commit failed");
        }
    }
}
