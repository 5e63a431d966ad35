//! MQTT 5 (rumqttc `v5`) behind [`MqttSession`]: binary-mode events travel in PUBLISH
//! user properties and the Content Type property, which this module maps to and from
//! [`MqttMessage`] unchanged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    DisconnectReasonCode, Filter, Packet, PubAckReason, PubCompReason, PublishProperties,
    SubscribeReasonCode,
};
use rumqttc::v5::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Request, StateError,
};
use rumqttc::{Outgoing, Transport as RumqttTransport};
use tokio::task::JoinHandle;
use workbus_schemas::acl::PUBLISHER_PROPERTY;
use workbus_schemas::mqtt::MqttMessage;

use super::endpoints::Endpoint;
use super::session::{self, Control, MqttSession, PollError, SessionEvent, SessionLoop};
use super::{PublishError, TransportConfig, qos_v5};

/// The shortest keep-alive rumqttc's MQTT 5 client takes (it panics below).
const MIN_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// `configured`, raised to [`MIN_KEEP_ALIVE`] with a warning: an sdk-go config may ask
/// for less (`keepAlive: 2`), which must not crash the process.
fn keep_alive(configured: Duration) -> Duration {
    if configured < MIN_KEEP_ALIVE {
        tracing::warn!(
            ?configured,
            used = ?MIN_KEEP_ALIVE,
            "keep-alive below the MQTT 5 client's minimum; raised"
        );
        return MIN_KEEP_ALIVE;
    }
    configured
}

/// Most QoS 1 publishes in flight on one MQTT 5 connection (rumqttc's v4 default).
const MAX_OUTGOING_INFLIGHT: u16 = 100;

/// rumqttc's options for a connection to `endpoint`: everything from `config`, a Will
/// made now, the TLS client configuration (its server name is the endpoint's host).
fn options(
    config: &TransportConfig,
    endpoint: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> MqttOptions {
    let mut options = MqttOptions::new(&config.client_id, &endpoint.host, endpoint.port);
    options.set_keep_alive(keep_alive(config.keep_alive));
    options.set_clean_start(true);
    options.set_max_packet_size(Some(config.max_packet_size as u32));
    // rumqttc sizes its outgoing-inflight table up front from this limit (default
    // u16::MAX: 65,536 slots, ~14 MB per connection, measured by workbus-bench). Cap it
    // at the MQTT 3.1.1 client's default; the broker's Receive Maximum can only lower it.
    options.set_outgoing_inflight_upper_limit(MAX_OUTGOING_INFLIGHT);
    if let Some((user, pass)) = &config.credentials {
        options.set_credentials(user, pass);
    }
    if let Some(will) = &config.will {
        options.set_last_will(will.v5());
    }
    if let Some(tls) = tls {
        options.set_transport(RumqttTransport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    // Events are small and latency-bound (publish → PUBACK): without TCP_NODELAY, Nagle
    // plus delayed ACKs cost ~40 ms per acknowledged publish.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    options
}

pub(super) fn spawn(
    config: &TransportConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    session: SessionLoop,
) -> (AsyncClient, JoinHandle<()>) {
    let options = options(config, config.endpoints.first(), tls.as_ref());
    let (client, eventloop) = AsyncClient::new(options, 64);
    let filters: Vec<Filter> = config
        .subscriptions
        .iter()
        .map(|t| Filter::new(t.clone(), qos_v5(config.sub_qos)))
        .collect();
    let mqtt = V5Session {
        client: client.clone(),
        eventloop,
        filters,
        config: config.clone(),
        tls,
    };
    let task = tokio::spawn(session::run(session, mqtt));
    (client, task)
}

/// rumqttc's MQTT 5 client, its event loop, the filters to subscribe, and what the
/// options of the next connection are made from.
struct V5Session {
    client: AsyncClient,
    eventloop: EventLoop,
    filters: Vec<Filter>,
    config: TransportConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl MqttSession for V5Session {
    type Control = V5Control;

    fn control(&self) -> V5Control {
        V5Control {
            client: self.client.clone(),
            filters: self.filters.clone(),
        }
    }

    async fn poll(&mut self) -> Result<SessionEvent, PollError> {
        match self.eventloop.poll().await {
            Ok(event) => Ok(session_event(event)),
            Err(ConnectionError::RequestsDone) => Err(PollError::Done),
            Err(
                e @ ConnectionError::MqttState(StateError::ServerDisconnect {
                    reason_code: DisconnectReasonCode::SessionTakenOver,
                    ..
                }),
            ) => Err(PollError::TakenOver(e.to_string())),
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
        // rumqttc's clean-up moved the written publishes (with their packet ids) and the
        // requests drained from its channel (packet id 0) to `pending`, which the next
        // CONNACK of a new session clears; the collision it keeps aside.
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
        self.eventloop.options = options(&self.config, endpoint, self.tls.as_ref());
    }

    fn drop_connection(&mut self) {
        self.eventloop.clean();
    }

    fn set_tls(&mut self, tls: Arc<rustls::ClientConfig>) {
        self.eventloop
            .options
            .set_transport(RumqttTransport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        self.tls = Some(tls);
    }
}

/// The client handle of [`V5Session`] and the filters to subscribe.
struct V5Control {
    client: AsyncClient,
    filters: Vec<Filter>,
}

impl Control for V5Control {
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
        Event::Incoming(Packet::SubAck(ack)) => {
            let refused: Vec<_> = ack
                .return_codes
                .iter()
                .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                .collect();
            SessionEvent::Subscribed(if refused.is_empty() {
                Ok(())
            } else {
                Err(format!("subscription refused: {refused:?}"))
            })
        }
        Event::Incoming(Packet::Publish(p)) => {
            let props = p.properties.unwrap_or_default();
            let (publisher, user_properties) = take_publisher(props.user_properties);
            SessionEvent::Message(MqttMessage {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                content_type: props.content_type,
                user_properties,
                payload: p.payload.to_vec(),
                publisher,
            })
        }
        Event::Incoming(Packet::PubAck(ack)) => SessionEvent::Acknowledged(
            ack.pkid,
            match ack.reason {
                // Accepted; nobody subscribed is still delivered to the broker (§1.7).
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                refused => Err(format!("{refused:?}")),
            },
        ),
        Event::Incoming(Packet::PubComp(ack)) => SessionEvent::Acknowledged(
            ack.pkid,
            match ack.reason {
                PubCompReason::Success => Ok(()),
                refused => Err(format!("{refused:?}")),
            },
        ),
        Event::Outgoing(Outgoing::Publish(pkid)) => SessionEvent::Written(pkid),
        Event::Outgoing(Outgoing::Disconnect) => SessionEvent::Disconnecting,
        _ => SessionEvent::Other,
    }
}

/// Moves the broker's publisher stamp out of the user properties (the last one wins:
/// a stamping broker appends its own after removing any the client sent).
fn take_publisher(mut props: Vec<(String, String)>) -> (Option<String>, Vec<(String, String)>) {
    let mut publisher = None;
    props.retain_mut(|(k, v)| {
        if k == PUBLISHER_PROPERTY {
            publisher = Some(std::mem::take(v));
            false
        } else {
            true
        }
    });
    (publisher, props)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_stamp_becomes_the_publisher() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let (publisher, rest) = take_publisher(vec![
            kv("ce-id", "1"),
            kv(PUBLISHER_PROPERTY, "cluster1"),
            kv("ce-type", "t"),
        ]);
        assert_eq!(publisher.as_deref(), Some("cluster1"));
        assert_eq!(rest, vec![kv("ce-id", "1"), kv("ce-type", "t")]);
        assert_eq!(
            take_publisher(vec![kv("a", "b")]),
            (None, vec![kv("a", "b")])
        );
    }
}
