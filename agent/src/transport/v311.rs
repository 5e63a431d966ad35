//! The MQTT 3.1.1 session loop (rumqttc v4 API). MQTT 3.1.1 has no properties, so only
//! structured-mode events (one JSON document per payload) can travel over it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, Request,
    SubscribeFilter, Transport as RumqttTransport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use workbus_schemas::mqtt::MqttMessage;

use super::{
    AckTracker, Flow, PublishError, SessionLoop, TransportConfig, TransportEvent, TransportStats,
    qos_v4,
};

pub(super) fn spawn(
    config: &TransportConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    acks: Arc<Mutex<AckTracker>>,
    events: mpsc::Sender<TransportEvent>,
    stats: Arc<TransportStats>,
) -> (AsyncClient, JoinHandle<()>) {
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options.set_keep_alive(config.keep_alive);
    options.set_clean_session(true);
    options.set_max_packet_size(config.max_packet_size, config.max_packet_size);
    if let Some((user, pass)) = &config.credentials {
        options.set_credentials(user, pass);
    }
    if let Some(tls) = tls {
        options.set_transport(RumqttTransport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    // See v5.rs: small latency-bound messages need TCP_NODELAY.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let filters: Vec<SubscribeFilter> = config
        .subscriptions
        .iter()
        .map(|t| SubscribeFilter::new(t.clone(), qos_v4(config.sub_qos)))
        .collect();
    let session = SessionLoop::new(config, acks, events, stats);
    let task = tokio::spawn(run(session, client.clone(), eventloop, filters));
    (client, task)
}

async fn run(
    mut session: SessionLoop,
    client: AsyncClient,
    mut eventloop: EventLoop,
    filters: Vec<SubscribeFilter>,
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

/// Settles what the lost connection leaves behind (see `v5::on_connection_lost`, whose
/// reasoning holds for rumqttc's MQTT 3.1.1 client too), then waits the backoff delay.
async fn on_connection_lost(
    session: &mut SessionLoop,
    eventloop: &mut EventLoop,
    error: String,
) -> Flow {
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
    filters: &[SubscribeFilter],
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
            let refused = ack
                .return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
            if refused {
                let _ = client.disconnect().await;
                session.on_error("subscription refused".into()).await.into()
            } else {
                session.emit(TransportEvent::Subscribed).await.into()
            }
        }
        other => on_packet(session, other).await,
    }
}

/// Messages, acknowledgements and writes: the same on a live or a lost connection.
async fn on_packet(session: &mut SessionLoop, event: Event) -> Flow {
    match event {
        Event::Incoming(Packet::Publish(p)) => {
            let message = MqttMessage {
                topic: p.topic,
                content_type: None,
                user_properties: Vec::new(),
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
    if !message.user_properties.is_empty()
        || message
            .content_type
            .as_deref()
            .is_some_and(|ct| !ct.starts_with("application/cloudevents"))
    {
        return Err(PublishError::PropertiesUnsupported);
    }
    client
        .publish_bytes(message.topic.clone(), qos_v4(qos), false, payload)
        .await
        .map_err(|_| PublishError::Closed)
}
