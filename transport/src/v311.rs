//! MQTT 3.1.1 (rumqttc's v4 API) behind [`MqttSession`]. MQTT 3.1.1 has no properties, so only
//! structured-mode events (one JSON document per payload) can travel over it.

use std::sync::Arc;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, Request,
    SubscribeFilter, Transport as RumqttTransport,
};
use tokio::task::JoinHandle;
use workbus_schemas::mqtt::MqttMessage;

use super::endpoints::Endpoint;
use super::session::{self, Control, MqttSession, PollError, SessionEvent, SessionLoop};
use super::{PublishError, TransportConfig, qos_v4};

/// rumqttc's options for a connection to `endpoint`: everything from `config`, a Will
/// made now, the TLS client configuration (its server name is the endpoint's host).
fn options(
    config: &TransportConfig,
    endpoint: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> MqttOptions {
    let mut options = MqttOptions::new(&config.client_id, &endpoint.host, endpoint.port);
    // rumqttc's MQTT 3.1.1 client takes whole seconds (or zero: no keep-alive) and
    // panics on a fraction; round a fraction up.
    let keep_alive = match config.keep_alive {
        d if d.is_zero() || d.subsec_nanos() == 0 => d,
        d => std::time::Duration::from_secs(d.as_secs() + 1),
    };
    options.set_keep_alive(keep_alive);
    options.set_clean_session(true);
    options.set_max_packet_size(config.max_packet_size, config.max_packet_size);
    if let Some((user, pass)) = &config.credentials {
        options.set_credentials(user, pass);
    }
    if let Some(will) = &config.will {
        options.set_last_will(will.v311());
    }
    if let Some(tls) = tls {
        options.set_transport(RumqttTransport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    options
}

pub(super) fn spawn(
    config: &TransportConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    session: SessionLoop,
) -> (AsyncClient, JoinHandle<()>) {
    let options = options(config, config.endpoints.first(), tls.as_ref());
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
    let mqtt = V311Session {
        client: client.clone(),
        eventloop,
        filters,
        config: config.clone(),
        tls,
    };
    let task = tokio::spawn(session::run(session, mqtt));
    (client, task)
}

/// rumqttc's MQTT 3.1.1 client, its event loop, the filters to subscribe, and what the
/// options of the next connection are made from.
struct V311Session {
    client: AsyncClient,
    eventloop: EventLoop,
    filters: Vec<SubscribeFilter>,
    config: TransportConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl MqttSession for V311Session {
    type Control = V311Control;

    fn control(&self) -> V311Control {
        V311Control {
            client: self.client.clone(),
            filters: self.filters.clone(),
        }
    }

    async fn poll(&mut self) -> Result<SessionEvent, PollError> {
        match self.eventloop.poll().await {
            Ok(event) => Ok(session_event(event)),
            Err(ConnectionError::RequestsDone) => Err(PollError::Done),
            Err(e) => Err(PollError::Lost(e.to_string())),
        }
    }

    fn settle_lost_connection(&mut self) -> (Vec<SessionEvent>, usize) {
        let buffered = self
            .eventloop
            .state
            .events
            .drain(..)
            .map(session_event)
            .collect();
        let collided = usize::from(self.eventloop.state.collision.take().is_some());
        let pending = &mut self.eventloop.pending;
        let unsent = pending
            .iter()
            .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
            .count();
        pending.retain(|r| !matches!(r, Request::Publish(_)));
        (buffered, collided + unsent)
    }

    fn prepare_connection(&mut self, endpoint: &Endpoint) {
        self.eventloop.mqtt_options = options(&self.config, endpoint, self.tls.as_ref());
    }

    fn drop_connection(&mut self) {
        self.eventloop.clean();
    }

    fn set_tls(&mut self, tls: Arc<rustls::ClientConfig>) {
        self.eventloop
            .mqtt_options
            .set_transport(RumqttTransport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        self.tls = Some(tls);
    }
}

/// The client handle of [`V311Session`] and the filters to subscribe.
struct V311Control {
    client: AsyncClient,
    filters: Vec<SubscribeFilter>,
}

impl Control for V311Control {
    async fn subscribe(&self) -> Result<bool, ()> {
        if self.filters.is_empty() {
            return Ok(false);
        }
        self.client
            .subscribe_many(self.filters.clone())
            .await
            .map(|()| true)
            .map_err(|_| ())
    }

    async fn disconnect(&self) {
        let _ = self.client.disconnect().await;
    }
}

fn session_event(event: Event) -> SessionEvent {
    match event {
        Event::Incoming(Packet::ConnAck(_)) => SessionEvent::Connected,
        Event::Incoming(Packet::SubAck(ack)) => SessionEvent::Subscribed(
            if ack
                .return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
            {
                Err("subscription refused".into())
            } else {
                Ok(())
            },
        ),
        Event::Incoming(Packet::Publish(p)) => SessionEvent::Message(MqttMessage {
            topic: p.topic,
            content_type: None,
            user_properties: Vec::new(),
            payload: p.payload.to_vec(),
            publisher: None,
        }),
        // MQTT 3.1.1 acknowledgements carry no reason: they always mean accepted.
        Event::Incoming(Packet::PubAck(ack)) => SessionEvent::Acknowledged(ack.pkid, Ok(())),
        Event::Incoming(Packet::PubComp(ack)) => SessionEvent::Acknowledged(ack.pkid, Ok(())),
        Event::Outgoing(Outgoing::Publish(pkid)) => SessionEvent::Written(pkid),
        Event::Outgoing(Outgoing::Disconnect) => SessionEvent::Disconnecting,
        _ => SessionEvent::Other,
    }
}

pub(super) async fn publish(
    client: &AsyncClient,
    message: &MqttMessage,
    qos: u8,
    payload: Bytes,
) -> Result<(), PublishError> {
    client
        .publish_bytes(message.topic.clone(), qos_v4(qos), false, payload)
        .await
        .map_err(|_| PublishError::Closed)
}
