//! The outbox publisher: drains queued events to the broker, in queue order, and
//! forgets each one only after the broker acknowledged it.
//!
//! Every accepted change commits its spec event into the `outbox` table in the same
//! transaction as the change (see `store`), so the only way an event is lost is the
//! database being lost. This task publishes rows in order, waits for each PUBACK
//! ([`PendingAck`] resolves then), and only then deletes the row and writes its
//! audit row (one transaction). A failure is retried with backoff; a hub killed in
//! between publishes the row again on restart (receivers are idempotent by generation,
//! reference §10 item 17). It is woken by [`Notify`] on every commit, with a slow poll
//! as a safety net.
//!
//! Publishing is pipelined: up to `WINDOW` events are in flight, handed to the
//! transport in row order (so the wire keeps per-cluster order: a delete never
//! overtakes the create before it) and acknowledged in row order; at the first failure
//! the rest are not completed and go out again (receivers are idempotent).
//! Acknowledged rows are completed `COMPLETE_BATCH` at a time through the store's group
//! commit, without stopping to wait for it; the cursor only moves past rows whose
//! completion committed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cloudevents::AttributesReader;
use tokio::sync::Notify;
use workbus_agent::transport::{PendingAck, PublishError, Publisher};
use workbus_schemas::Event;
use workbus_schemas::envelope::decode_event_type;
use workbus_schemas::extensions::OcmExtensions;
use workbus_schemas::mqtt::{self, Encoding};
use workbus_schemas::topics::{self, Topics};

use crate::metrics::Metrics;
use crate::store::{OutboxEntry, PendingWrite, StoreHandle, WriteOp};

/// Rows fetched per query.
const BATCH: usize = 2048;
/// Events in flight (sent, not yet acknowledged) at once.
const WINDOW: usize = 256;
/// Acknowledged rows completed per store write.
const COMPLETE_BATCH: usize = 64;
/// Safety-net poll interval when idle (commits normally wake the task at once).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// First and last retry delay after a failed publish.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Everything the publisher task needs.
pub struct OutboxPublisher {
    /// The store holding the outbox.
    pub store: StoreHandle,
    /// The MQTT publisher.
    pub publisher: Publisher,
    /// Topic layout.
    pub topics: Topics,
    /// Our source id.
    pub source_id: String,
    /// Binary (default, as sdk-go) or structured.
    pub encoding: Encoding,
    /// Woken on every commit that queued something.
    pub notify: Arc<Notify>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Why a row can never be published.
fn unpublishable(
    entry: &OutboxEntry,
    topics: &Topics,
    source_id: &str,
) -> Result<(String, Event), String> {
    let event = entry.event.clone()?;
    let ty = decode_event_type(&event).map_err(|e| e.to_string())?;
    let cluster = event.cluster_name().map_err(|e| e.to_string())?;
    let topic =
        topics::source_publish_topic(topics, source_id, &ty, cluster).map_err(|e| e.to_string())?;
    Ok((topic, event))
}

/// Acknowledged rows whose removal is committing.
struct Completing {
    pending: PendingWrite,
    rows: Vec<(i64, String)>,
}

/// A row whose event is on its way to the broker.
struct InFlight {
    id: i64,
    ty: String,
    ack: PendingAck,
}

impl OutboxPublisher {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        let mut cursor = 0i64;
        let mut delay = RETRY_MIN;
        loop {
            let batch = match self.store.run(move |s| s.outbox_batch(cursor, BATCH)).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                    continue;
                }
            };
            if batch.is_empty() {
                // Everything before `cursor` is published or skipped; start over from 0
                // only matters for skipped rows, which stay skipped.
                let _ = tokio::time::timeout(IDLE_POLL, self.notify.notified()).await;
                continue;
            }
            // Pipelined: up to WINDOW events in flight, sent in row order (the transport
            // keeps send order on the wire) and acknowledged in row order; acknowledged
            // rows are completed COMPLETE_BATCH at a time.
            let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(WINDOW);
            let mut acked: Vec<(i64, String)> = Vec::with_capacity(COMPLETE_BATCH);
            let mut completing: VecDeque<Completing> = VecDeque::new();
            let mut failed = false;
            for entry in batch {
                let (topic, event) = match unpublishable(&entry, &self.topics, &self.source_id) {
                    Ok(ok) => ok,
                    Err(reason) => {
                        tracing::error!(id = entry.id, %reason, "outbox row cannot be published; skipped and kept");
                        self.metrics.dropped("outbox_unpublishable");
                        if inflight.is_empty() && acked.is_empty() && completing.is_empty() {
                            cursor = entry.id;
                        }
                        continue;
                    }
                };
                while inflight.len() >= WINDOW && !failed {
                    failed = !self.ack_front(&mut inflight, &mut acked).await;
                    if acked.len() >= COMPLETE_BATCH && !failed {
                        completing.push_back(self.queue_completion(&mut acked).await);
                    }
                }
                if failed {
                    break;
                }
                match self.send(&entry, &topic, &event).await {
                    Some(ack) => inflight.push_back(InFlight {
                        id: entry.id,
                        ty: event.ty().to_string(),
                        ack,
                    }),
                    None => {
                        failed = true;
                        break;
                    }
                }
            }
            // Acknowledge what is in flight, in order; stop at the first failure so a
            // later row is never completed before an earlier one (it is sent again).
            while !failed && !inflight.is_empty() {
                failed = !self.ack_front(&mut inflight, &mut acked).await;
            }
            // Rows acknowledged before a failure are still completed.
            if !acked.is_empty() {
                completing.push_back(self.queue_completion(&mut acked).await);
            }
            // The cursor moves past completed rows only, in order: rows of a failed
            // completion are read and sent again (receivers are idempotent).
            let mut contiguous = true;
            for c in completing.drain(..) {
                match self.finish_completion(c).await {
                    Some(id) if contiguous => cursor = id,
                    Some(_) => {}
                    None => {
                        contiguous = false;
                        failed = true;
                    }
                }
            }
            if failed {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            } else {
                delay = RETRY_MIN;
            }
        }
    }

    /// Hands one row's event to the transport; `None` when it could not be sent.
    async fn send(&self, entry: &OutboxEntry, topic: &str, event: &Event) -> Option<PendingAck> {
        let message = match mqtt::encode(event, topic, self.encoding) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(id = entry.id, error = %e, "cannot encode outbox event");
                return None;
            }
        };
        match self.publisher.send(&message).await {
            Ok(ack) => Some(ack),
            Err(e) => {
                self.publish_failed(entry.id, &e).await;
                None
            }
        }
    }

    async fn publish_failed(&self, id: i64, error: &PublishError) {
        self.metrics
            .publish_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(id, %error, "publish failed; will retry");
        if let Err(e) = self.store.run(move |s| s.outbox_attempt_failed(id)).await {
            tracing::warn!(error = %e, "cannot count the failed attempt");
        }
    }

    /// Waits for the oldest in-flight row's acknowledgement and moves it to `acked`;
    /// `false` on failure (the row stays and is sent again).
    async fn ack_front(
        &self,
        inflight: &mut VecDeque<InFlight>,
        acked: &mut Vec<(i64, String)>,
    ) -> bool {
        let Some(front) = inflight.pop_front() else {
            return true;
        };
        match front.ack.acknowledged().await {
            Ok(()) => {
                acked.push((front.id, front.ty));
                true
            }
            Err(e) => {
                self.publish_failed(front.id, &e).await;
                false
            }
        }
    }

    /// Queues the removal of acknowledged rows (and their audit rows) as one
    /// group-committed write, without waiting for it: publishing goes on while it commits.
    async fn queue_completion(&self, acked: &mut Vec<(i64, String)>) -> Completing {
        let rows = std::mem::take(acked);
        let op = WriteOp::CompleteOutbox {
            ids: rows.iter().map(|(id, _)| *id).collect(),
            sent_at: Utc::now(),
        };
        Completing {
            pending: self.store.submit(op).await,
            rows,
        }
    }

    /// Waits for a queued completion; returns the last completed id, or `None` if the
    /// store failed (the rows stay and are sent again).
    async fn finish_completion(&self, c: Completing) -> Option<i64> {
        let last = c.rows.last()?.0;
        match c.pending.outcome().await {
            Ok(_) => {
                for (id, ty) in c.rows {
                    self.metrics.sent(&ty);
                    tracing::debug!(id, ty, "published");
                }
                Some(last)
            }
            Err(e) => {
                tracing::error!(last, error = %e, "published but cannot complete the outbox rows");
                None
            }
        }
    }
}
