//! The MQTT 5 session loop (rumqttc `v5`): binary-mode events travel in PUBLISH user
//! properties and the Content Type property, which this module maps to and from
//! [`MqttMessage`] unchanged.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Request};
use rumqttc::{Outgoing, Transport as RumqttTransport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use workbus_schemas::mqtt::MqttMessage;

use super::{
    AckTracker, Flow, PublishError, SessionLoop, TransportConfig, TransportEvent, TransportStats,
    qos_v5,
};

/// Most QoS 1 publishes in flight on one MQTT 5 connection (rumqttc's v4 default).
const MAX_OUTGOING_INFLIGHT: u16 = 100;

pub(super) fn spawn(
    config: &TransportConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    acks: Arc<Mutex<AckTracker>>,
    events: mpsc::Sender<TransportEvent>,
    stats: Arc<TransportStats>,
) -> (AsyncClient, JoinHandle<()>) {
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options.set_keep_alive(config.keep_alive);
    options.set_clean_start(true);
    options.set_max_packet_size(Some(config.max_packet_size as u32));
    // rumqttc sizes its outgoing-inflight table up front from this limit (default
    // u16::MAX: 65,536 slots, ~14 MB per connection, measured by workbus-bench). Cap it
    // at the MQTT 3.1.1 client's default; the broker's Receive Maximum can only lower it.
    options.set_outgoing_inflight_upper_limit(MAX_OUTGOING_INFLIGHT);
    if let Some((user, pass)) = &config.credentials {
        options.set_credentials(user, pass);
    }
    if let Some(tls) = tls {
        options.set_transport(RumqttTransport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
    }
    // Events are small and latency-bound (publish → PUBACK): without TCP_NODELAY, Nagle
    // plus delayed ACKs cost ~40 ms per acknowledged publish.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    let (client, eventloop) = AsyncClient::new(options, 64);
    let filters: Vec<Filter> = config
        .subscriptions
        .iter()
        .map(|t| Filter::new(t.clone(), qos_v5(config.sub_qos)))
        .collect();
    let session = SessionLoop::new(config, acks, events, stats);
    let task = tokio::spawn(run(session, client.clone(), eventloop, filters));
    (client, task)
}

async fn run(
    mut session: SessionLoop,
    client: AsyncClient,
    mut eventloop: EventLoop,
    filters: Vec<Filter>,
) {
    loop {
        let flow = match eventloop.poll().await {
            Ok(event) => on_event(&mut session, &client, &filters, event).await,
            Err(ConnectionError::RequestsDone) => Flow::Stop,
            Err(e) => on_connection_lost(&mut session, &mut eventloop, e.to_string()).await,
        };
        if flow == Flow::Stop {
            break;
        }
    }
    session.closed();
}

/// Settles what the lost connection leaves behind, then waits the backoff delay.
async fn on_connection_lost(
    session: &mut SessionLoop,
    eventloop: &mut EventLoop,
    error: String,
) -> Flow {
    // Acknowledgements, writes and messages rumqttc read before the failure are still
    // buffered; they count. Nothing else of the dead connection does.
    let buffered: Vec<Event> = eventloop.state.events.drain(..).collect();
    for event in buffered {
        let counts = matches!(
            event,
            Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_) | Packet::Publish(_))
                | Event::Outgoing(Outgoing::Publish(_) | Outgoing::Disconnect)
        );
        if counts && on_packet(session, event).await == Flow::Stop {
            return Flow::Stop;
        }
    }
    // CleanStart: rumqttc drops the old session's publishes (moved to `pending` by its
    // clean-up, the collision held back) on the next CONNACK. Those taken from the
    // request channel were never written (packet id 0) and precede everything still in
    // the channel; the written ones are the tracker's in-flight waiters.
    let collided = usize::from(eventloop.state.collision.take().is_some());
    let unsent = eventloop
        .pending
        .iter()
        .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
        .count();
    eventloop
        .pending
        .retain(|r| !matches!(r, Request::Publish(_)));
    session.connection_lost(collided + unsent);
    session.on_error(error).await.into()
}

async fn on_event(
    session: &mut SessionLoop,
    client: &AsyncClient,
    filters: &[Filter],
    event: Event,
) -> Flow {
    match event {
        Event::Incoming(Packet::ConnAck(_)) => {
            session.on_connected();
            if filters.is_empty() {
                session.emit(TransportEvent::Subscribed).await.into()
            } else if client.subscribe_many(filters.to_vec()).await.is_err() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
        Event::Incoming(Packet::SubAck(ack)) => {
            let failed: Vec<_> = ack
                .return_codes
                .iter()
                .filter(|c| {
                    !matches!(
                        c,
                        rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                    )
                })
                .collect();
            if failed.is_empty() {
                session.emit(TransportEvent::Subscribed).await.into()
            } else {
                // Like sdk-go: a refused subscription fails the whole subscribe; retry
                // on a fresh connection after a backoff delay.
                let reason = format!("subscription refused: {failed:?}");
                let _ = client.disconnect().await;
                session.on_error(reason).await.into()
            }
        }
        other => on_packet(session, other).await,
    }
}

/// Messages, acknowledgements and writes: the same on a live or a lost connection.
async fn on_packet(session: &mut SessionLoop, event: Event) -> Flow {
    match event {
        Event::Incoming(Packet::Publish(p)) => {
            let props = p.properties.unwrap_or_default();
            let message = MqttMessage {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                content_type: props.content_type,
                user_properties: props.user_properties,
                payload: p.payload.to_vec(),
            };
            session.emit(TransportEvent::Message(message)).await.into()
        }
        Event::Incoming(Packet::PubAck(ack)) => {
            session.on_ack(ack.pkid);
            Flow::Continue
        }
        Event::Incoming(Packet::PubComp(ack)) => {
            session.on_ack(ack.pkid);
            Flow::Continue
        }
        Event::Outgoing(Outgoing::Publish(pkid)) => {
            session.on_outgoing_publish(pkid);
            Flow::Continue
        }
        Event::Outgoing(Outgoing::Disconnect) => Flow::Stop,
        _ => Flow::Continue,
    }
}

pub(super) async fn publish(
    client: &AsyncClient,
    message: &MqttMessage,
    qos: u8,
    payload: Bytes,
) -> Result<(), PublishError> {
    let properties = PublishProperties {
        content_type: message.content_type.clone(),
        user_properties: message.user_properties.clone(),
        ..Default::default()
    };
    client
        .publish_with_properties(
            message.topic.clone(),
            qos_v5(qos),
            false,
            payload,
            properties,
        )
        .await
        .map_err(|_| PublishError::Closed)
}
