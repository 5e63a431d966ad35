//! The agent's publish queue: one task per agent that publishes, one message at a time,
//! retrying with backoff until the broker acknowledges, and reports each delivery back
//! to the agent loop (which then records the reported hash). The agent loop never waits
//! on the network.
//!
//! Two inputs, requests first (they are few, and a lease renewal must not wait behind a
//! backlog of statuses):
//! - *requests* (the spec resync request, the registration lifecycle's messages),
//!   coalesced per key in memory: only the newest of each is worth sending;
//! - *statuses*, kept in the [`Outbox`] (bounded, compacted, persisted through the
//!   [`AgentStore`] before they are queued): every status in production order, so
//!   statuses produced while the broker is away arrive in order after the reconnect.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use workbus_schemas::mqtt::MqttMessage;
use workbus_transport::{PublishError, Publisher, ReconnectPolicy};

use crate::outbox::{DroppedAs, Outbox, OutboxEntry};
use crate::store::{AgentStore, StoreError};

/// One request to deliver (not a status: statuses go through [`Outgoing::status`]).
#[derive(Debug, Clone)]
pub struct OutgoingItem {
    /// Coalescing key: [`RESYNC_KEY`], or a lifecycle key.
    pub key: String,
    /// The message.
    pub message: MqttMessage,
    /// Status hash carried (empty for requests).
    pub hash: String,
}

/// Key of the spec resync request.
pub const RESYNC_KEY: &str = "";

/// A delivered item, reported back to the agent loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The item's key (a work UID for statuses).
    pub key: String,
    /// The item's hash.
    pub hash: String,
}

/// What queueing a status did beyond adding it.
#[derive(Debug, Default)]
pub struct Queued {
    /// Statuses compaction dropped to stay within the bounds: their work and tier.
    pub dropped: Vec<(String, DroppedAs)>,
    /// Storage failures (the statuses stay queued in memory).
    pub store_errors: Vec<StoreError>,
}

struct Queue {
    requests: VecDeque<OutgoingItem>,
    outbox: Outbox,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    closed: AtomicBool,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic elsewhere while holding it leaves the queue itself consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The agent loop's side of the publish queue; dropping it stops the task.
pub struct Outgoing<S: AgentStore> {
    shared: Arc<Shared>,
    store: Arc<S>,
}

impl<S: AgentStore> Outgoing<S> {
    /// Starts the publishing task over `outbox` (what a previous run left is sent first).
    pub fn spawn(
        publisher: Publisher,
        delivered: mpsc::UnboundedSender<Delivered>,
        retry: ReconnectPolicy,
        store: Arc<S>,
        outbox: Outbox,
    ) -> Outgoing<S> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                requests: VecDeque::new(),
                outbox,
            }),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(run(
            publisher,
            shared.clone(),
            store.clone(),
            delivered,
            retry,
        ));
        Outgoing { shared, store }
    }

    /// Queues a request, replacing one with the same key not yet sent.
    pub fn request(&self, item: OutgoingItem) {
        coalesce(&mut self.shared.queue().requests, item);
        self.shared.wake.notify_one();
    }

    /// Queues work `key`'s status: stored first (durable when this returns, unless a
    /// store error is reported), then sent after every status queued before it.
    pub fn status(
        &self,
        key: &str,
        hash: String,
        sequence_id: String,
        message: MqttMessage,
    ) -> Queued {
        let mut queued = Queued::default();
        let dropped = {
            let mut q = self.shared.queue();
            let (entry, dropped) = q.outbox.push(key.to_string(), hash, sequence_id, message);
            // Under the lock: the task must not deliver (and unlink) it before it exists.
            if let Err(e) = self.store.outbox_put(&entry) {
                queued.store_errors.push(e);
            }
            dropped
        };
        for (entry, tier) in dropped {
            if let Err(e) = self.store.outbox_remove(entry.id) {
                queued.store_errors.push(e);
            }
            queued.dropped.push((entry.key, tier));
        }
        self.shared.wake.notify_one();
        queued
    }

    /// The hash of the newest status queued for work `key` and not yet delivered.
    pub fn newest_hash(&self, key: &str) -> Option<String> {
        self.shared
            .queue()
            .outbox
            .newest_hash(key)
            .map(str::to_string)
    }

    /// Statuses not yet delivered.
    pub fn statuses_waiting(&self) -> usize {
        self.shared.queue().outbox.len()
    }
}

impl<S: AgentStore> Drop for Outgoing<S> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// Queues `item` in place of a request with the same key not yet sent, else last.
fn coalesce(requests: &mut VecDeque<OutgoingItem>, item: OutgoingItem) {
    if let Some(slot) = requests.iter_mut().find(|p| p.key == item.key) {
        *slot = item;
    } else {
        requests.push_back(item);
    }
}

enum Next {
    Request(OutgoingItem),
    Status(OutboxEntry),
}

async fn run<S: AgentStore>(
    publisher: Publisher,
    shared: Arc<Shared>,
    store: Arc<S>,
    delivered: mpsc::UnboundedSender<Delivered>,
    retry: ReconnectPolicy,
) {
    let mut delay = retry.min_delay;
    loop {
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let next = {
            let mut q = shared.queue();
            match q.requests.pop_front() {
                Some(r) => Some(Next::Request(r)),
                None => q.outbox.next_to_send().map(Next::Status),
            }
        };
        let Some(next) = next else {
            // A notification given since the last wait is kept: none is lost.
            shared.wake.notified().await;
            continue;
        };
        let message = match &next {
            Next::Request(r) => &r.message,
            Next::Status(e) => &e.message,
        };
        match publisher.publish(message).await {
            Ok(()) => {
                delay = retry.min_delay;
                let done = match next {
                    Next::Request(r) => Delivered {
                        key: r.key,
                        hash: r.hash,
                    },
                    Next::Status(e) => {
                        shared.queue().outbox.delivered(e.id);
                        if let Err(err) = store.outbox_remove(e.id) {
                            // Sent again after a restart: an exact duplicate the hub drops.
                            tracing::error!(error = %err, "cannot remove a delivered status from the outbox");
                        }
                        Delivered {
                            key: e.key,
                            hash: e.hash,
                        }
                    }
                };
                let _ = delivered.send(done);
            }
            Err(PublishError::Closed) => return,
            Err(e) => {
                {
                    let mut q = shared.queue();
                    match next {
                        Next::Request(r) => {
                            tracing::debug!(error = %e, key = %r.key, "publish failed; will retry");
                            // Put it back unless a newer one for the same key arrived meanwhile.
                            if !q.requests.iter().any(|p| p.key == r.key) {
                                q.requests.push_front(r);
                            }
                        }
                        Next::Status(entry) => {
                            tracing::debug!(error = %e, work = %entry.key, "publishing a status failed; will retry it unchanged");
                            q.outbox.failed();
                        }
                    }
                }
                // A lost connection is no reason to wait: the next publish queues until
                // the transport has reconnected. Anything else backs off.
                if e != PublishError::ConnectionLost {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(retry.max_delay.max(Duration::from_millis(1)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, hash: &str) -> OutgoingItem {
        OutgoingItem {
            key: key.into(),
            message: MqttMessage::default(),
            hash: hash.into(),
        }
    }

    #[test]
    fn requests_coalesce_per_key_keeping_order() {
        let mut q = VecDeque::new();
        coalesce(&mut q, item("a", "1"));
        coalesce(&mut q, item("b", "1"));
        coalesce(&mut q, item("a", "2"));
        let got: Vec<_> = q
            .iter()
            .map(|i| (i.key.as_str(), i.hash.as_str()))
            .collect();
        assert_eq!(got, vec![("a", "2"), ("b", "1")]);
    }
}
