//! # workbus-transport: the MQTT client transport shared by agents and the hub
//!
//! One reconnecting MQTT session that moves [`MqttMessage`]s and knows nothing of
//! CloudEvents.
//!
//! What it guarantees, mirroring sdk-go's generic client (reference §1.1, §1.3, §8):
//! - CONNECT with CleanStart and no session expiry; after every successful (re)connect it
//!   subscribes to all configured filters in one SUBSCRIBE and then reports
//!   [`TransportEvent::Subscribed`] — the caller's cue to send a resync request;
//! - reconnects forever with exponential backoff and jitter (a fleet of edge agents must
//!   not reconnect in lock-step after a broker restart), moving round the configured
//!   broker addresses (the nodes of a clustered broker) when a connection is lost or
//!   refused (see `endpoints`);
//! - [`Publisher::publish`] resolves only when the broker has acknowledged the message
//!   (PUBACK for QoS 1), which is what the hub's outbox needs to delete a row safely; a
//!   lost connection fails exactly the publishes it dropped ([`PublishError::ConnectionLost`],
//!   see `acks`), a refusal on the PUBACK fails its publish ([`PublishError::Refused`]);
//! - every message is checked against MQTT's limits before rumqttc sees it
//!   ([`PublishError::Unpublishable`]): rumqttc would drop the connection over it;
//! - [`Transport::shutdown`] ends the session in bounded time, connected or not;
//! - TLS material given as files is read for every connection attempt, and
//!   [`Publisher::reconnect`] starts a new connection on request: certificates rotate
//!   without a restart (see `tls`).
//!
//! MQTT 5 is the default; MQTT 3.1.1 is available for small brokers and devices and can
//! only carry structured-mode events (it has no user properties).
//!
//! It is its own crate so that hub and agent share one MQTT client without the hub
//! compiling the agent, and the agent (the constrained side) pulls in nothing of the
//! hub's: `schemas ← transport ← {hub, agent}`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use workbus_schemas::mqtt::{
    MessageLimitError, MqttMessage, MqttVersion, PublishLimits, check_publishable,
};

use acks::AckTracker;
use session::{SessionControl, SessionLoop};

mod acks;
mod endpoints;
mod from_config;
pub mod metrics;
mod session;
mod tls;
mod v311;
mod v5;
mod will;

pub use endpoints::{Endpoint, Endpoints, NoEndpoints};
pub use from_config::{LoadConfigError, TransportConfigError, load_mqtt_config};
pub use tls::{PemSource, TlsError, TlsSettings};
pub use will::Will;

/// The MQTT protocol version a transport speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// MQTT 5 (what sdk-go speaks; required for binary-mode events).
    #[default]
    V5,
    /// MQTT 3.1.1 (structured-mode events only).
    V311,
}

/// Reconnect delays: exponential with jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// First delay after a failure.
    pub min_delay: Duration,
    /// Upper bound of a delay.
    pub max_delay: Duration,
    /// Growth factor per failure.
    pub factor: f32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
        }
    }
}

impl ReconnectPolicy {
    /// An endless sequence of jittered delays.
    fn delays(&self) -> backon::ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// Everything needed to open and keep one MQTT session.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// The broker's addresses, tried in this order (the first is preferred; a lost or
    /// refused connection moves on to the next, see `endpoints`). TLS checks each
    /// address's host name (SNI and certificate verification).
    pub endpoints: Endpoints,
    /// MQTT ClientIdentifier (agents: `<agent id>-client`).
    pub client_id: String,
    /// Optional username/password.
    pub credentials: Option<(String, String)>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// TLS settings; `None` means plain TCP.
    pub tls: Option<TlsSettings>,
    /// Protocol version.
    pub protocol: Protocol,
    /// Topic filters subscribed after every connect.
    pub subscriptions: Vec<String>,
    /// Subscription QoS (0, 1 or 2).
    pub sub_qos: u8,
    /// Publish QoS (0, 1 or 2).
    pub pub_qos: u8,
    /// Largest packet accepted and sent (ManifestWorks reach 500 KiB plus envelope).
    pub max_packet_size: usize,
    /// Reconnect behaviour.
    pub reconnect: ReconnectPolicy,
    /// Capacity of the received-message queue (backpressure towards the broker).
    pub inbound_capacity: usize,
    /// How long a publish may wait for its acknowledgement on a live connection
    /// (a lost connection fails it at once with [`PublishError::ConnectionLost`]).
    pub ack_timeout: Duration,
    /// The Will the broker publishes if a connection ends without DISCONNECT, made
    /// anew for every connection attempt; `None`: no Will.
    pub will: Option<Will>,
}

impl TransportConfig {
    /// The limits every published message is checked against.
    pub fn publish_limits(&self) -> PublishLimits {
        PublishLimits {
            version: match self.protocol {
                Protocol::V5 => MqttVersion::V5,
                Protocol::V311 => MqttVersion::V311,
            },
            qos: self.pub_qos,
            max_packet_size: self.max_packet_size,
        }
    }

    /// A plain-TCP MQTT 5 config with the protocol defaults (keep-alive 60 s, QoS 1).
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>) -> Self {
        TransportConfig {
            endpoints: Endpoints::one(host, port),
            client_id: client_id.into(),
            credentials: None,
            keep_alive: Duration::from_secs(60),
            tls: None,
            protocol: Protocol::V5,
            subscriptions: Vec::new(),
            sub_qos: 1,
            pub_qos: 1,
            max_packet_size: 1024 * 1024,
            reconnect: ReconnectPolicy::default(),
            inbound_capacity: 1024,
            ack_timeout: Duration::from_secs(30),
            will: None,
        }
    }
}

/// What the session reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// All subscriptions are in place after a (re)connect: time to resync.
    Subscribed,
    /// A message arrived on one of the subscriptions.
    Message(MqttMessage),
    /// The connection was lost (or could not be made); a reconnect follows.
    Disconnected(String),
}

/// Why a publish did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The transport has been shut down.
    #[error("the transport is closed")]
    Closed,
    /// The message can never be published under this connection's limits (MQTT string
    /// and packet sizes, characters, MQTT 3.1.1 without properties): checked before it
    /// reaches rumqttc, which would otherwise drop the connection over it.
    #[error("{0}")]
    Unpublishable(#[from] MessageLimitError),
    /// The broker refused the message (an MQTT 5 reason code such as NotAuthorized or
    /// QuotaExceeded on its PUBACK): it was not delivered. Whether retrying can help
    /// depends on the reason.
    #[error("the broker refused the message: {0}")]
    Refused(String),
    /// No acknowledgement arrived in time; the caller may retry (receivers are idempotent).
    #[error("no acknowledgement within {0:?}")]
    Timeout(Duration),
    /// The connection was lost before the broker acknowledged the message, and the
    /// session it was sent in is gone (CleanStart): it was not delivered, or was
    /// delivered without our knowing. The caller publishes it again.
    #[error("connection lost before the broker acknowledged the message")]
    ConnectionLost,
}

/// Counters of one transport, cheap to read at any time.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Successful connects after the first one.
    pub reconnects: AtomicU64,
    /// Successful connects including the first.
    pub connects: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
    /// Messages acknowledged by the broker.
    pub published: AtomicU64,
    /// Payload bytes received.
    pub bytes_received: AtomicU64,
    /// Payload bytes published.
    pub bytes_published: AtomicU64,
    /// Bytes of whole messages received: topic, content type, user properties (the
    /// `ce-*` attributes in binary mode) and payload — what a message costs beyond
    /// MQTT's own few bytes of framing.
    pub message_bytes_received: AtomicU64,
    /// Bytes of whole messages published (as [`TransportStats::message_bytes_received`]).
    pub message_bytes_published: AtomicU64,
    /// Publishes failed because the connection was lost before their acknowledgement.
    pub publishes_lost: AtomicU64,
    /// Connection attempts skipped because the TLS material (files) was unusable.
    pub tls_errors: AtomicU64,
    /// Connections the broker closed because another client took the client id over
    /// (MQTT 5 DISCONNECT 0x8E).
    pub taken_over: AtomicU64,
    /// Whether the session is connected now.
    pub connected: AtomicBool,
    /// The index (in [`TransportConfig::endpoints`]) of the broker address the session
    /// is connected to, or tries next.
    pub endpoint: AtomicUsize,
    /// Whether the session is connected and the broker granted every subscription
    /// (between SUBACK and the next connection loss): receiving works.
    pub subscribed: AtomicBool,
    /// Time from handing a message to the session to the broker's acknowledgement.
    pub publish_ack_seconds: metrics::AckLatency,
}

/// Size of a message as counted by the `message_bytes_*` counters.
pub fn message_size(message: &MqttMessage) -> u64 {
    let props: usize = message
        .user_properties
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    (message.topic.len()
        + message.content_type.as_ref().map_or(0, String::len)
        + props
        + message.payload.len()) as u64
}

/// The sending half of a transport. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    client: Client,
    acks: Arc<Mutex<AckTracker>>,
    // Held across "register waiter + enqueue" so waiters and requests stay in one order.
    order: tokio::sync::Mutex<()>,
    qos: u8,
    /// What a message must fit before it is handed to rumqttc.
    limits: PublishLimits,
    ack_timeout: Duration,
    stats: Arc<TransportStats>,
    control: Arc<SessionControl>,
    endpoints: Endpoints,
}

#[derive(Clone)]
enum Client {
    V5(rumqttc::v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

impl Publisher {
    /// Publishes `message` and waits until the broker acknowledged it.
    pub async fn publish(&self, message: &MqttMessage) -> Result<(), PublishError> {
        self.send(message).await?.acknowledged().await
    }

    /// Queues `message` for publishing and returns at once with a handle that resolves
    /// on the broker's acknowledgement. Messages go out in the order `send` is called,
    /// so a caller can keep many publishes in flight (pipelining) and still rely on
    /// per-topic order.
    pub async fn send(&self, message: &MqttMessage) -> Result<PendingAck, PublishError> {
        let sent_at = std::time::Instant::now();
        let inner = &self.inner;
        check_publishable(message, &inner.limits)?;
        let (tx, rx) = oneshot::channel();
        let _order = inner.order.lock().await;
        inner
            .acks
            .lock()
            .map_err(|_| PublishError::Closed)?
            .push(tx);
        let payload = Bytes::from(message.payload.clone());
        let sent = match &inner.client {
            Client::V5(c) => v5::publish(c, message, inner.qos, payload).await,
            Client::V311(c) => v311::publish(c, message, inner.qos, payload).await,
        };
        if let Err(e) = sent {
            // Take our waiter back out; it is the last one pushed.
            if let Ok(mut acks) = inner.acks.lock() {
                acks.pop_last();
            }
            return Err(e);
        }
        Ok(PendingAck {
            rx,
            sent_at,
            bytes: message.payload.len() as u64,
            message_bytes: message_size(message),
            timeout: inner.ack_timeout,
            stats: inner.stats.clone(),
        })
    }

    /// Counters of this transport.
    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.inner.stats
    }

    /// True while the session has a connection to the broker (between CONNACK and the
    /// next connection loss).
    pub fn is_connected(&self) -> bool {
        self.inner.stats.connected.load(Ordering::Relaxed)
    }

    /// The broker address the session is connected to, `None` while disconnected.
    pub fn connected_endpoint(&self) -> Option<&Endpoint> {
        let inner = &self.inner;
        self.is_connected().then(|| {
            inner
                .endpoints
                .get(inner.stats.endpoint.load(Ordering::Relaxed))
        })
    }

    /// Why the TLS material could not be loaded for the last connection attempt, until
    /// a load succeeds (the session keeps retrying with backoff meanwhile).
    pub fn tls_error(&self) -> Option<TlsError> {
        self.inner.control.tls_error.lock().ok()?.clone()
    }

    /// Asks for a clean reconnect, e.g. after the certificate files were rotated: the
    /// session sends DISCONNECT (so the broker publishes no Will), drops the connection
    /// and connects again at once, reading file-based TLS material afresh.
    ///
    /// Publishes are held back meanwhile, and those already handed over are first given
    /// up to the acknowledgement timeout to be acknowledged, so a reconnect on a healthy
    /// connection fails none of them; any still unacknowledged then fail with
    /// [`PublishError::ConnectionLost`] as on any lost connection. Returns once the old
    /// connection is gone. Without a connection it cuts the backoff wait short instead
    /// (an attempt already under way keeps the material it loaded).
    pub async fn reconnect(&self) {
        let inner = &self.inner;
        let control = &inner.control;
        let _order = inner.order.lock().await;
        if !self.is_connected() {
            control.wake.notify_one();
            return;
        }
        let deadline = tokio::time::Instant::now() + inner.ack_timeout;
        loop {
            let idle = control.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let settled = inner.acks.lock().map_or(true, |acks| acks.is_idle());
            if settled || tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        let restarted = control.restarted.notified();
        tokio::pin!(restarted);
        restarted.as_mut().enable();
        let queued = match &inner.client {
            Client::V5(c) => c.disconnect().await.is_ok(),
            Client::V311(c) => c.disconnect().await.is_ok(),
        };
        if queued {
            // Keep new publishes back until the old connection's are settled. Bounded:
            // the connection may die some other way first (then `restarted` still fires).
            let _ = tokio::time::timeout(inner.ack_timeout, restarted).await;
        }
    }

    /// Sends DISCONNECT; the session task then ends and [`Transport::join`] returns.
    pub async fn disconnect(&self) {
        self.inner.control.closing.store(true, Ordering::SeqCst);
        match &self.inner.client {
            Client::V5(c) => {
                let _ = c.disconnect().await;
            }
            Client::V311(c) => {
                let _ = c.disconnect().await;
            }
        }
    }
}

/// A publish on its way: resolves when the broker acknowledged it.
pub struct PendingAck {
    rx: oneshot::Receiver<Result<(), PublishError>>,
    sent_at: std::time::Instant,
    bytes: u64,
    message_bytes: u64,
    timeout: Duration,
    stats: Arc<TransportStats>,
}

impl PendingAck {
    /// Waits for the acknowledgement (bounded by the transport's ack timeout).
    pub async fn acknowledged(self) -> Result<(), PublishError> {
        match tokio::time::timeout(self.timeout, self.rx).await {
            Ok(Ok(Ok(()))) => {
                self.stats
                    .publish_ack_seconds
                    .observe(self.sent_at.elapsed());
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes_published
                    .fetch_add(self.bytes, Ordering::Relaxed);
                self.stats
                    .message_bytes_published
                    .fetch_add(self.message_bytes, Ordering::Relaxed);
                Ok(())
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(PublishError::Closed),
            Err(_) => Err(PublishError::Timeout(self.timeout)),
        }
    }
}

/// A running MQTT session: its publisher, its event stream and its task.
pub struct Transport {
    /// Sending half.
    pub publisher: Publisher,
    /// Received messages and connection state changes.
    pub events: mpsc::Receiver<TransportEvent>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Transport {
    // The session lives exactly as long as its owner: an owner that crashes (or is
    // aborted) must not leave a connection behind that keeps its client id busy.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Transport {
    /// Starts the session task. Connection failures are retried in the background and
    /// reported as [`TransportEvent::Disconnected`]; this call itself only fails on
    /// unusable TLS material.
    pub fn start(config: TransportConfig) -> Result<Transport, TlsError> {
        let stats = Arc::new(TransportStats::default());
        let acks = Arc::new(Mutex::new(AckTracker::default()));
        let (events_tx, events) = mpsc::channel(config.inbound_capacity.max(1));
        // Unusable material at start is the caller's configuration error; later, on
        // reconnects, the session reports and retries it.
        let tls = match &config.tls {
            Some(t) => Some(t.client_config()?),
            None => None,
        };
        let control = Arc::new(SessionControl::default());
        let session = SessionLoop::new(
            &config,
            acks.clone(),
            events_tx,
            stats.clone(),
            control.clone(),
        );
        let (client, task) = match config.protocol {
            Protocol::V5 => {
                let (client, task) = v5::spawn(&config, tls, session);
                (Client::V5(client), task)
            }
            Protocol::V311 => {
                let (client, task) = v311::spawn(&config, tls, session);
                (Client::V311(client), task)
            }
        };
        let publisher = Publisher {
            inner: Arc::new(PublisherInner {
                client,
                acks,
                order: tokio::sync::Mutex::new(()),
                qos: config.pub_qos,
                limits: config.publish_limits(),
                ack_timeout: config.ack_timeout,
                stats,
                control,
                endpoints: config.endpoints.clone(),
            }),
        };
        Ok(Transport {
            publisher,
            events,
            task: Some(task),
        })
    }

    /// Waits for the session task to end (after [`Publisher::disconnect`]).
    pub async fn join(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Ends the session within `grace`, whatever the connection's state: sends
    /// DISCONNECT when connected and waits for it to go out; without a connection (the
    /// normal state of an edge device) or past `grace`, stops the session task at once.
    /// Unacknowledged publishes are simply not acknowledged: their owners keep them.
    pub async fn shutdown(mut self, grace: Duration) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + grace;
        // The request queue may be full while disconnected: never wait for room in it.
        let queued = tokio::time::timeout_at(deadline, self.publisher.disconnect()).await;
        if queued.is_ok() && self.publisher.is_connected() {
            if tokio::time::timeout_at(deadline, &mut task).await.is_ok() {
                return;
            }
            tracing::debug!("DISCONNECT did not go out in time; stopping the session");
        }
        task.abort();
        let _ = task.await;
    }

    /// Stops the session task at once, without a DISCONNECT (a crash, for tests).
    pub fn abort(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn qos_v5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        2 => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
        _ => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    }
}

fn qos_v4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        2 => rumqttc::QoS::ExactlyOnce,
        _ => rumqttc::QoS::AtLeastOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_are_bounded() {
        let p = ReconnectPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            factor: 2.0,
        };
        // Jitter may add up to one more max_delay.
        assert!(p.delays().take(50).all(|d| d <= Duration::from_millis(200)));
    }
}
