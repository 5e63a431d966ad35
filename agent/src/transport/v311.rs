//! The MQTT 3.1.1 session loop (rumqttc v4 API). MQTT 3.1.1 has no properties, so only
//! structured-mode events (one JSON document per payload) can travel over it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, SubscribeFilter,
    Transport as RumqttTransport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use workbus_schemas::mqtt::MqttMessage;

use super::{
    AckTracker, PublishError, SessionLoop, TransportConfig, TransportEvent, TransportStats, qos_v4,
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
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                session.on_connected();
                if filters.is_empty() {
                    if !session.emit(TransportEvent::Subscribed).await {
                        return;
                    }
                } else if client.subscribe_many(filters.clone()).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    let _ = client.disconnect().await;
                    if !session.on_error("subscription refused".into()).await {
                        return;
                    }
                } else if !session.emit(TransportEvent::Subscribed).await {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let message = MqttMessage {
                    topic: p.topic,
                    content_type: None,
                    user_properties: Vec::new(),
                    payload: p.payload.to_vec(),
                };
                if !session.emit(TransportEvent::Message(message)).await {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => session.on_ack(ack.pkid),
            Ok(Event::Incoming(Packet::PubComp(ack))) => session.on_ack(ack.pkid),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => session.on_outgoing_publish(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                if !session.on_error(e.to_string()).await {
                    return;
                }
            }
        }
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
