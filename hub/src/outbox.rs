//! The outbox publisher: drains queued events to the broker, in queue order, and
//! forgets each one only after the broker acknowledged it.
//!
//! Every accepted change commits its spec event into the `outbox` table in the same
//! transaction as the change (see `store`), so the only way an event is lost is the
//! database being lost. This task publishes the oldest row, waits for the PUBACK
//! ([`Publisher::publish`] resolves then), and only then deletes the row and writes its
//! audit row (one transaction). A failure is retried with backoff; a hub killed in
//! between publishes the row again on restart (receivers are idempotent by generation,
//! reference §10 item 17). It is woken by [`Notify`] on every commit, with a slow poll
//! as a safety net.
//!
//! Publishing is sequential: one event in flight keeps per-cluster order trivially
//! right (a delete never overtakes the create before it). Rows whose event can never be
//! published (undecodable JSON, no valid topic) are skipped, logged and counted, and
//! left in the table for inspection.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cloudevents::AttributesReader;
use tokio::sync::Notify;
use workbus_agent::transport::Publisher;
use workbus_schemas::Event;
use workbus_schemas::envelope::decode_event_type;
use workbus_schemas::extensions::OcmExtensions;
use workbus_schemas::mqtt::{self, Encoding};
use workbus_schemas::topics::{self, Topics};

use crate::metrics::Metrics;
use crate::store::{OutboxEntry, StoreHandle};

/// Rows fetched per query.
const BATCH: usize = 64;
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
            for entry in batch {
                let (topic, event) = match unpublishable(&entry, &self.topics, &self.source_id) {
                    Ok(ok) => ok,
                    Err(reason) => {
                        tracing::error!(id = entry.id, %reason, "outbox row cannot be published; skipped and kept");
                        self.metrics.dropped("outbox_unpublishable");
                        cursor = entry.id;
                        continue;
                    }
                };
                if self.publish_one(&entry, &topic, &event).await {
                    cursor = entry.id;
                    delay = RETRY_MIN;
                } else {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                    break; // retry this row first: order matters
                }
            }
        }
    }

    /// Publishes one row; true when it is acknowledged and removed.
    async fn publish_one(&self, entry: &OutboxEntry, topic: &str, event: &Event) -> bool {
        let message = match mqtt::encode(event, topic, self.encoding) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(id = entry.id, error = %e, "cannot encode outbox event");
                return false;
            }
        };
        if let Err(e) = self.publisher.publish(&message).await {
            self.metrics
                .publish_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(id = entry.id, attempts = entry.attempts + 1, error = %e, "publish failed; will retry");
            let id = entry.id;
            if let Err(e) = self.store.run(move |s| s.outbox_attempt_failed(id)).await {
                tracing::warn!(error = %e, "cannot count the failed attempt");
            }
            return false;
        }
        let id = entry.id;
        match self
            .store
            .run(move |s| s.complete_outbox(id, Utc::now()))
            .await
        {
            Ok(()) => {
                self.metrics.sent(event.ty());
                tracing::debug!(id, topic, ty = event.ty(), "published");
                true
            }
            Err(e) => {
                // Published but not recorded: it will be sent again (idempotent receivers).
                tracing::error!(id, error = %e, "published but cannot complete the outbox row");
                false
            }
        }
    }
}
