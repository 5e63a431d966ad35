//! The transport's MQTT Will (issue 13) against real brokers (the embedded one and a
//! private Mosquitto): a connection that ends without DISCONNECT makes the broker
//! publish the Will; the Will is made anew for every connection, so the one published
//! for a later connection is that connection's; a clean shutdown publishes none. The
//! embedded broker's publisher stamp reaches the receiver as `MqttMessage::publisher`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::timeout;
use workbus_broker::{
    Authorizer, Broker, BrokerConfig, ClientInfo, ConnectDenied, ConnectRequest, Decision,
    PublishRequest, SubscribeRequest,
};
use workbus_schemas::mqtt::MqttMessage;
use workbus_transport::{Transport, TransportConfig, TransportEvent, Will};

use workbus_testkit::fault_proxy::FaultProxy;
use workbus_testkit::{mosquitto, unique};

const WAIT: Duration = Duration::from_secs(10);

async fn next_subscribed(t: &mut Transport) {
    loop {
        match timeout(WAIT, t.events.recv()).await.expect("event in time") {
            Some(TransportEvent::Subscribed) => return,
            Some(_) => continue,
            None => panic!("transport ended"),
        }
    }
}

async fn next_message(t: &mut Transport) -> MqttMessage {
    loop {
        match timeout(WAIT, t.events.recv())
            .await
            .expect("message in time")
        {
            Some(TransportEvent::Message(m)) => return m,
            Some(_) => continue,
            None => panic!("transport ended"),
        }
    }
}

/// Each connection's Will says which connection attempt made it.
fn counting_will(topic: &str) -> (Will, Arc<AtomicU32>) {
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let topic = topic.to_string();
    let will = Will::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        MqttMessage {
            topic: topic.clone(),
            content_type: Some("application/json".into()),
            user_properties: vec![("ce-id".into(), n.to_string())],
            payload: format!("{{\"connection\":{n}}}").into_bytes(),
            publisher: None,
        }
    });
    (will, attempts)
}

async fn wills_follow_their_connection(host: &str, port: u16, stamped: Option<&str>) {
    let broker: SocketAddr = format!("{host}:{port}").parse().unwrap();
    let topic = unique("workbus-test/will");
    let mut watcher_cfg = TransportConfig::new(host, port, unique("watcher"));
    watcher_cfg.subscriptions = vec![topic.clone()];
    let mut watcher = Transport::start(watcher_cfg).unwrap();
    next_subscribed(&mut watcher).await;

    let proxy = FaultProxy::start(broker).await;
    let (will, attempts) = counting_will(&topic);
    let mut cfg = TransportConfig::new("127.0.0.1", proxy.addr().port(), unique("doomed"));
    if let Some(identity) = stamped {
        cfg.credentials = Some((identity.to_string(), String::new()));
    }
    cfg.subscriptions = vec![unique("workbus-test/unused")];
    cfg.reconnect.min_delay = Duration::from_millis(50);
    cfg.reconnect.max_delay = Duration::from_millis(200);
    cfg.will = Some(will);
    let mut doomed = Transport::start(cfg).unwrap();
    next_subscribed(&mut doomed).await;

    for connection in 1..=2u32 {
        // The connection in use was made by the latest attempt.
        let current = attempts.load(Ordering::SeqCst);
        proxy.cut();
        let will = next_message(&mut watcher).await;
        assert_eq!(will.topic, topic);
        assert_eq!(
            will.payload,
            format!("{{\"connection\":{current}}}").into_bytes(),
            "the Will of connection {connection} is its own"
        );
        assert_eq!(will.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            will.user_properties,
            vec![("ce-id".to_string(), current.to_string())]
        );
        assert_eq!(will.publisher.as_deref(), stamped);
        next_subscribed(&mut doomed).await;
        assert!(
            attempts.load(Ordering::SeqCst) > current,
            "a new Will per connection"
        );
    }

    // A clean shutdown sends DISCONNECT: no Will. A marker published afterwards is the
    // next thing the watcher sees.
    doomed.shutdown(Duration::from_secs(2)).await;
    let marker = MqttMessage {
        topic: topic.clone(),
        payload: b"{\"marker\":true}".to_vec(),
        ..MqttMessage::default()
    };
    timeout(WAIT, watcher.publisher.publish(&marker))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_message(&mut watcher).await.payload, marker.payload);
    watcher.shutdown(Duration::from_secs(1)).await;
}

/// Everyone may do everything; a connection's identity is its user name.
struct UsernameIdentity;

impl Authorizer for UsernameIdentity {
    type Principal = Option<String>;

    async fn authenticate(&self, r: &ConnectRequest) -> Result<Option<String>, ConnectDenied> {
        Ok(r.username.clone())
    }

    fn identity<'p>(&self, principal: &'p Option<String>) -> Option<&'p str> {
        principal.as_deref()
    }

    async fn authorize_publish(
        &self,
        _: &ClientInfo,
        _: &Option<String>,
        _: &PublishRequest<'_>,
    ) -> Decision {
        Decision::Allow
    }

    async fn authorize_subscribe(
        &self,
        _: &ClientInfo,
        _: &Option<String>,
        _: &SubscribeRequest<'_>,
    ) -> Decision {
        Decision::Allow
    }
}

#[tokio::test]
async fn wills_on_the_embedded_broker_are_stamped_and_per_connection() {
    let broker = Broker::new(BrokerConfig::with_listen(SocketAddr::from((
        [127, 0, 0, 1],
        0,
    ))))
    .with_authorizer(UsernameIdentity)
    .start()
    .await
    .unwrap();
    let addr = broker.local_addr();
    wills_follow_their_connection("127.0.0.1", addr.port(), Some("cluster1")).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn wills_on_mosquitto_are_per_connection() {
    wills_follow_their_connection(mosquitto().host(), mosquitto().port(), None).await;
}
