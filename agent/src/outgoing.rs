//! The agent's outgoing queue: publishes status events and resync requests one at a time,
//! retrying with backoff until the broker acknowledges, and reports each delivery back
//! to the agent loop (which then records the reported hash).
//!
//! Queued events are coalesced per key (a work UID, or the resync request): only the
//! newest status of a work is worth sending, so a disconnected agent does not build up a
//! backlog of superseded statuses. The agent loop never waits on the network.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use workbus_schemas::mqtt::MqttMessage;

use workbus_transport::{PublishError, Publisher, ReconnectPolicy};

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct OutgoingItem {
    /// Coalescing key: the work UID, or [`RESYNC_KEY`].
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
    /// The item's key.
    pub key: String,
    /// The item's hash.
    pub hash: String,
}

/// Starts the queue task; returns its input.
pub fn spawn(
    publisher: Publisher,
    delivered: mpsc::UnboundedSender<Delivered>,
    retry: ReconnectPolicy,
) -> mpsc::UnboundedSender<OutgoingItem> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(publisher, rx, delivered, retry));
    tx
}

fn enqueue(pending: &mut VecDeque<OutgoingItem>, item: OutgoingItem) {
    if let Some(slot) = pending.iter_mut().find(|p| p.key == item.key) {
        *slot = item;
    } else {
        pending.push_back(item);
    }
}

async fn run(
    publisher: Publisher,
    mut input: mpsc::UnboundedReceiver<OutgoingItem>,
    delivered: mpsc::UnboundedSender<Delivered>,
    retry: ReconnectPolicy,
) {
    let mut pending: VecDeque<OutgoingItem> = VecDeque::new();
    let mut delay = retry.min_delay;
    loop {
        if pending.is_empty() {
            match input.recv().await {
                Some(item) => pending.push_back(item),
                None => return,
            }
        }
        while let Ok(item) = input.try_recv() {
            enqueue(&mut pending, item);
        }
        let Some(item) = pending.pop_front() else {
            continue;
        };
        match publisher.publish(&item.message).await {
            Ok(()) => {
                delay = retry.min_delay;
                let _ = delivered.send(Delivered {
                    key: item.key,
                    hash: item.hash,
                });
            }
            Err(PublishError::Closed) => return,
            Err(e) => {
                tracing::debug!(error = %e, key = %item.key, "publish failed; will retry");
                // Put it back unless a newer one for the same key arrived meanwhile.
                if !pending.iter().any(|p| p.key == item.key) {
                    pending.push_front(item);
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
    fn coalesces_per_key_keeping_order() {
        let mut q = VecDeque::new();
        enqueue(&mut q, item("a", "1"));
        enqueue(&mut q, item("b", "1"));
        enqueue(&mut q, item("a", "2"));
        let got: Vec<_> = q
            .iter()
            .map(|i| (i.key.as_str(), i.hash.as_str()))
            .collect();
        assert_eq!(got, vec![("a", "2"), ("b", "1")]);
    }
}
