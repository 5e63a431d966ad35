//! The session loop, written once for both MQTT versions: drives a rumqttc client
//! family (behind [`MqttSession`]: `v5` and `v311` map their packet types to
//! [`SessionEvent`]) and turns what happens into [`TransportEvent`]s, acknowledgements
//! and reconnects.
//!
//! Per connection: CONNACK → subscribe to every filter in one SUBSCRIBE → SUBACK →
//! `Subscribed` (a refused filter fails the connection, like sdk-go). On a lost
//! connection: settle what rumqttc buffered and dropped (see [`super::acks`]), report
//! `Disconnected`, pick the broker address of the next attempt and the wait before it
//! (see [`crate::endpoints`]: round robin, the backoff delay per full cycle), wait,
//! set up the next connection there (address, TLS server name, a fresh Will), load
//! the TLS material afresh (files may have been rotated; unusable material is reported
//! and retried with backoff, never replaced by the previous material), and let rumqttc
//! reconnect.
//!
//! A DISCONNECT the owner did not send as its goodbye (a requested reconnect, or ours
//! after a refused subscription) restarts the connection: once it is written the loop
//! drops the connection itself rather than waiting for the broker to close it, so
//! nothing else is written after it, and (for a requested reconnect) connects again
//! without a backoff delay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use workbus_schemas::mqtt::MqttMessage;

use super::endpoints::{Ending, Endpoint, Endpoints, Pause, Rotation};
use super::{
    AckTracker, ReconnectPolicy, TlsError, TlsSettings, TransportConfig, TransportEvent,
    TransportStats, message_size,
};

/// What the owner of a session asks of its task besides publishing, and what the task
/// tells it back; shared by [`super::Publisher`] and the session loop.
#[derive(Default)]
pub(super) struct SessionControl {
    /// The owner sent its final DISCONNECT: the session ends once it is written. Any
    /// other DISCONNECT restarts the connection.
    pub(super) closing: AtomicBool,
    /// Cuts a backoff wait short (a reconnect was asked for while disconnected).
    pub(super) wake: Notify,
    /// The loop dropped a connection and settled its acknowledgements.
    pub(super) restarted: Notify,
    /// Every publish handed to rumqttc has been settled.
    pub(super) idle: Notify,
    /// The error of the last attempt to load the TLS material, until one succeeds.
    pub(super) tls_error: Mutex<Option<TlsError>>,
}

/// What one rumqttc client family reports, in the session loop's terms.
#[derive(Debug)]
pub(super) enum SessionEvent {
    /// CONNACK: connected with a new session.
    Connected,
    /// SUBACK: every filter granted, or why not.
    Subscribed(Result<(), String>),
    /// A message arrived.
    Message(MqttMessage),
    /// The broker answered this packet id (PUBACK, or PUBCOMP for QoS 2): accepted,
    /// or refused with the reason it gave.
    Acknowledged(u16, Result<(), String>),
    /// rumqttc wrote the next publish request with this packet id (0 for QoS 0).
    Written(u16),
    /// rumqttc wrote our DISCONNECT.
    Disconnecting,
    /// Anything the loop does not act on (pings, and so on).
    Other,
}

/// Why polling stopped.
pub(super) enum PollError {
    /// Every client handle is gone: the session ends.
    Done,
    /// The connection failed or was lost; rumqttc reconnects on the next poll.
    Lost(String),
    /// The broker closed the connection because another client connected with the same
    /// client id (MQTT 5 DISCONNECT 0x8E): a cloned device image or a second process
    /// with this identity. Otherwise handled as [`PollError::Lost`].
    TakenOver(String),
}

/// One rumqttc client family (MQTT 5 or 3.1.1): its event loop, and a [`Control`]
/// handle for the requests the loop makes (kept apart: the event loop is not `Sync`).
pub(super) trait MqttSession: Send {
    /// The client side: subscribe and disconnect.
    type Control: Control;
    /// The client handle.
    fn control(&self) -> Self::Control;
    /// The next event (reconnecting first when there is no connection).
    fn poll(&mut self) -> impl Future<Output = Result<SessionEvent, PollError>> + Send;
    /// After a lost connection: the events rumqttc buffered before the failure (taken
    /// out of it), and how many publish requests it had taken but never written, which
    /// it drops with the CleanStart session (a collision held back, requests drained
    /// from its channel). Forgets the dropped requests.
    fn settle_lost_connection(&mut self) -> (Vec<SessionEvent>, usize);
    /// Sets up the next connection attempt: to `endpoint` (also the TLS server name),
    /// with a Will made now (see `crate::will`).
    fn prepare_connection(&mut self, endpoint: &Endpoint);
    /// Drops the connection now (our DISCONNECT has been written); what rumqttc held
    /// of it is then settled as for a lost connection.
    fn drop_connection(&mut self);
    /// The TLS configuration for the next connection attempts.
    fn set_tls(&mut self, tls: Arc<rustls::ClientConfig>);
}

/// The requests a session loop makes of its client.
pub(super) trait Control: Send + Sync {
    /// Subscribes to every filter in one SUBSCRIBE; `Ok(false)` when there are none,
    /// `Err` when the client is gone.
    fn subscribe(&self) -> impl Future<Output = Result<bool, ()>> + Send;
    /// Queues a DISCONNECT.
    fn disconnect(&self) -> impl Future<Output = ()> + Send;
}

/// Runs a session until its owner goes away or disconnects.
pub(super) async fn run(mut session: SessionLoop, mut mqtt: impl MqttSession) {
    let control = mqtt.control();
    loop {
        let flow = match mqtt.poll().await {
            Ok(SessionEvent::Disconnecting) if !session.control.closing.load(Ordering::SeqCst) => {
                mqtt.drop_connection();
                match session.restart_reason.take() {
                    Some(reason) => {
                        on_connection_lost(&mut session, &mut mqtt, reason, Requested::No).await
                    }
                    None => {
                        tracing::info!(client_id = %session.client_id, "reconnecting as requested");
                        let reason = "reconnect requested".to_owned();
                        on_connection_lost(&mut session, &mut mqtt, reason, Requested::Yes).await
                    }
                }
            }
            Ok(event) => on_event(&mut session, &control, event).await,
            Err(PollError::Done) => Flow::Stop,
            Err(PollError::Lost(error)) => {
                on_connection_lost(&mut session, &mut mqtt, error, Requested::No).await
            }
            Err(PollError::TakenOver(error)) => {
                session.stats.taken_over.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    client_id = %session.client_id,
                    broker = %session.broker,
                    "another client connected with this client id and took the session over \
                     (a cloned device image, or a second agent for the same cluster?); reconnecting"
                );
                on_connection_lost(&mut session, &mut mqtt, error, Requested::No).await
            }
        };
        if flow == Flow::Stop {
            break;
        }
    }
    session.closed();
}

async fn on_event(session: &mut SessionLoop, mqtt: &impl Control, event: SessionEvent) -> Flow {
    match event {
        SessionEvent::Connected => {
            session.on_connected();
            match mqtt.subscribe().await {
                Ok(true) => Flow::Continue,
                Ok(false) => session.subscribed().await,
                Err(()) => Flow::Stop,
            }
        }
        SessionEvent::Subscribed(Ok(())) => session.subscribed().await,
        SessionEvent::Subscribed(Err(reason)) => {
            // Like sdk-go: a refused subscription fails the whole connection; the broker
            // closes it after our DISCONNECT, and we retry after a backoff delay.
            tracing::warn!(client_id = %session.client_id, %reason, "subscription refused; reconnecting");
            session.restart_reason = Some(reason);
            mqtt.disconnect().await;
            Flow::Continue
        }
        other => on_packet(session, other).await,
    }
}

/// Messages, acknowledgements and writes: the same on a live or a lost connection.
async fn on_packet(session: &mut SessionLoop, event: SessionEvent) -> Flow {
    match event {
        SessionEvent::Message(message) => {
            session.emit(TransportEvent::Message(message)).await.into()
        }
        SessionEvent::Acknowledged(pkid, outcome) => {
            session.on_ack(pkid, outcome);
            Flow::Continue
        }
        SessionEvent::Written(pkid) => {
            session.on_outgoing_publish(pkid);
            Flow::Continue
        }
        // Only the owner's DISCONNECT ends the session; any other one (a requested
        // reconnect, a refused subscription) written on a connection that was lost
        // meanwhile has nothing left to restart.
        SessionEvent::Disconnecting if session.control.closing.load(Ordering::SeqCst) => Flow::Stop,
        _ => Flow::Continue,
    }
}

/// Whether the owner asked for the new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    /// Yes: same address, no wait.
    Yes,
    /// No: the connection failed, or was lost or refused.
    No,
}

/// Settles what the lost connection leaves behind, reports it, picks the address of
/// the next attempt, waits before it and loads the TLS material for it.
async fn on_connection_lost(
    session: &mut SessionLoop,
    mqtt: &mut impl MqttSession,
    error: String,
    requested: Requested,
) -> Flow {
    session.restart_reason = None;
    let (buffered, unsent_dropped) = mqtt.settle_lost_connection();
    // Acknowledgements, writes and messages read before the failure still count;
    // nothing else of the dead connection does (a late CONNACK must not subscribe).
    for event in buffered {
        let counts = matches!(
            event,
            SessionEvent::Message(_)
                | SessionEvent::Acknowledged(..)
                | SessionEvent::Written(_)
                | SessionEvent::Disconnecting
        );
        if counts && on_packet(session, event).await == Flow::Stop {
            return Flow::Stop;
        }
    }
    let was_connected = session.stats.connected.load(Ordering::Relaxed);
    session.connection_lost(unsent_dropped);
    session.control.restarted.notify_waiters();
    let ending = match requested {
        Requested::Yes => Ending::Requested,
        Requested::No if was_connected => Ending::Lost,
        Requested::No => Ending::Failed,
    };
    let (next, pause) = session.rotation.after(ending);
    let delay = match pause {
        Pause::Backoff => session.next_delay(),
        Pause::None => Duration::ZERO,
    };
    let next = session.endpoints.get(next).clone();
    // One line per attempt: during an outage a cycle of them comes at most every
    // `max_delay`.
    if was_connected {
        tracing::warn!(client_id = %session.client_id, broker = %session.broker, %error, ?delay, %next, "disconnected from the MQTT broker; reconnecting");
    } else {
        tracing::info!(client_id = %session.client_id, broker = %session.broker, %error, ?delay, %next, "cannot connect to the MQTT broker; retrying");
    }
    if !session.emit(TransportEvent::Disconnected(error)).await {
        return Flow::Stop;
    }
    session.wait(delay).await;
    session.switch_to(mqtt, &next);
    session.load_tls(mqtt).await.into()
}

/// Whether a session task goes on after handling an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The owner has gone away or asked to disconnect.
    Stop,
}

impl From<bool> for Flow {
    /// `true` (the owner is still there) continues.
    fn from(go_on: bool) -> Self {
        if go_on { Flow::Continue } else { Flow::Stop }
    }
}

/// Shared state of a session task, whichever protocol it speaks.
pub(super) struct SessionLoop {
    acks: Arc<Mutex<AckTracker>>,
    events: mpsc::Sender<TransportEvent>,
    stats: Arc<TransportStats>,
    delays: backon::ExponentialBackoff,
    policy: ReconnectPolicy,
    connected_once: bool,
    client_id: String,
    /// Every address of the broker, and which one is in use.
    endpoints: Endpoints,
    rotation: Rotation,
    /// `host:port` of the address in use, for the log lines.
    broker: String,
    /// Why we sent a DISCONNECT to start over (a refused subscription).
    restart_reason: Option<String>,
    /// The TLS material, loaded afresh for every connection attempt when it is in files.
    tls: Option<TlsSettings>,
    control: Arc<SessionControl>,
}

impl SessionLoop {
    pub(super) fn new(
        config: &TransportConfig,
        acks: Arc<Mutex<AckTracker>>,
        events: mpsc::Sender<TransportEvent>,
        stats: Arc<TransportStats>,
        control: Arc<SessionControl>,
    ) -> Self {
        SessionLoop {
            tls: config.tls.clone(),
            control,
            acks,
            events,
            stats,
            delays: config.reconnect.delays(),
            policy: config.reconnect,
            connected_once: false,
            client_id: config.client_id.clone(),
            endpoints: config.endpoints.clone(),
            rotation: Rotation::new(config.endpoints.len()),
            broker: config.endpoints.first().to_string(),
            restart_reason: None,
        }
    }

    /// Every filter was granted: recorded (readiness reads it), then reported.
    async fn subscribed(&mut self) -> Flow {
        self.stats.subscribed.store(true, Ordering::Relaxed);
        self.emit(TransportEvent::Subscribed).await.into()
    }

    fn on_connected(&mut self) {
        let again = self.connected_once;
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        if again {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.connected_once = true;
        self.stats.connected.store(true, Ordering::Relaxed);
        self.delays = self.policy.delays();
        self.rotation.connected();
        tracing::info!(
            client_id = %self.client_id,
            broker = %self.broker,
            endpoint = self.rotation.current() + 1,
            endpoints = self.endpoints.len(),
            reconnect = again,
            "connected to the MQTT broker"
        );
    }

    /// The next connection attempt goes to `endpoint` (the rotation's current one).
    fn switch_to(&mut self, mqtt: &mut impl MqttSession, endpoint: &Endpoint) {
        self.broker = endpoint.to_string();
        self.stats
            .endpoint
            .store(self.rotation.current(), Ordering::Relaxed);
        mqtt.prepare_connection(endpoint);
    }

    fn on_outgoing_publish(&self, pkid: u16) {
        if let Ok(mut acks) = self.acks.lock() {
            acks.on_outgoing_publish(pkid);
        }
    }

    fn on_ack(&self, pkid: u16, outcome: Result<(), String>) {
        if let Err(reason) = &outcome {
            tracing::warn!(client_id = %self.client_id, pkid, %reason, "the broker refused a publish");
        }
        if let Ok(mut acks) = self.acks.lock() {
            acks.on_ack(pkid, outcome);
            if acks.is_idle() {
                self.control.idle.notify_waiters();
            }
        }
    }

    /// The connection is gone and, with it, the session: fails the waiters of every
    /// publish rumqttc dropped (all written ones and the first `unsent_dropped` not yet
    /// written, see [`acks`]).
    fn connection_lost(&self, unsent_dropped: usize) {
        self.stats.connected.store(false, Ordering::Relaxed);
        self.stats.subscribed.store(false, Ordering::Relaxed);
        if let Ok(mut acks) = self.acks.lock() {
            let failed = acks.connection_lost(unsent_dropped);
            if failed > 0 {
                self.stats
                    .publishes_lost
                    .fetch_add(failed as u64, Ordering::Relaxed);
                tracing::debug!(client_id = %self.client_id, failed, "unacknowledged publishes dropped with the connection");
            }
            if acks.is_idle() {
                self.control.idle.notify_waiters();
            }
        }
    }

    /// The session task ends: nobody will acknowledge anything any more.
    fn closed(&self) {
        self.stats.connected.store(false, Ordering::Relaxed);
        self.stats.subscribed.store(false, Ordering::Relaxed);
        if let Ok(mut acks) = self.acks.lock() {
            acks.close();
        }
    }

    /// Forwards an event; false when the owner has gone away.
    async fn emit(&self, event: TransportEvent) -> bool {
        if let TransportEvent::Message(m) = &event {
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes_received
                .fetch_add(m.payload.len() as u64, Ordering::Relaxed);
            self.stats
                .message_bytes_received
                .fetch_add(message_size(m), Ordering::Relaxed);
        }
        self.events.send(event).await.is_ok()
    }

    /// The next backoff delay.
    fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.policy.max_delay)
    }

    /// Waits the next backoff delay, or less when the owner asks for a reconnect.
    async fn wait_backoff(&mut self) {
        let delay = self.next_delay();
        self.wait(delay).await;
    }

    /// Waits `delay`, or less when the owner asks for a reconnect.
    async fn wait(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.control.wake.notified() => {}
        }
    }

    /// Loads the TLS material for the next connection attempt when it lives in files;
    /// while it is unusable, reports why and retries after backoff delays. False when
    /// the owner has gone away.
    async fn load_tls(&mut self, mqtt: &mut impl MqttSession) -> bool {
        let Some(tls) = self.tls.clone().filter(TlsSettings::reads_files) else {
            return true;
        };
        loop {
            match tls.client_config() {
                Ok(config) => {
                    mqtt.set_tls(config);
                    if let Ok(mut last) = self.control.tls_error.lock() {
                        *last = None;
                    }
                    return true;
                }
                Err(error) => {
                    // Not the previous material: a client that goes on with a
                    // certificate its operator replaced hides the broken rotation.
                    tracing::warn!(client_id = %self.client_id, %error, "TLS material unusable; retrying");
                    self.stats.tls_errors.fetch_add(1, Ordering::Relaxed);
                    let reason = error.to_string();
                    if let Ok(mut last) = self.control.tls_error.lock() {
                        *last = Some(error);
                    }
                    if !self.emit(TransportEvent::Disconnected(reason)).await {
                        return false;
                    }
                    self.wait_backoff().await;
                }
            }
        }
    }
}
