//! Several broker addresses (the nodes of a clustered broker, here two embedded brokers):
//! the session starts on the first, moves to the next when its broker goes away, and its
//! subscriptions and acknowledgements work there; an address that refuses connections is
//! skipped at once, not after a backoff delay.

use std::time::Duration;

use tokio::time::{Instant, timeout};
use workbus_broker::{Broker, BrokerConfig, BrokerHandle};
use workbus_schemas::mqtt::MqttMessage;
use workbus_transport::{
    Endpoint, Endpoints, Protocol, Transport, TransportConfig, TransportEvent,
};

use workbus_testkit::unique;

const WAIT: Duration = Duration::from_secs(15);

async fn broker() -> BrokerHandle {
    Broker::new(BrokerConfig::with_listen("127.0.0.1:0".parse().unwrap()))
        .start()
        .await
        .expect("embedded broker starts")
}

fn endpoint(b: &BrokerHandle) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: b.local_addr().port(),
    }
}

/// Waits for `Subscribed`, skipping disconnect reports; panics on anything else.
async fn next_subscribed(t: &mut Transport) {
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, t.events.recv())
            .await
            .expect("subscribed in time")
        {
            Some(TransportEvent::Subscribed) => return,
            Some(TransportEvent::Disconnected(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn next_message(t: &mut Transport) -> MqttMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, t.events.recv())
            .await
            .expect("message in time")
        {
            Some(TransportEvent::Message(m)) => return m,
            Some(_) => continue,
            None => panic!("transport ended"),
        }
    }
}

fn message(topic: &str, body: &str) -> MqttMessage {
    MqttMessage {
        topic: topic.to_owned(),
        content_type: None,
        user_properties: Vec::new(),
        payload: body.as_bytes().to_vec(),
        publisher: None,
    }
}

async fn moves_to_the_next_broker_when_its_own_goes_away(protocol: Protocol) {
    let (first, second) = (broker().await, broker().await);
    let topic = unique("workbus-test/failover");
    let mut config = TransportConfig::new("", 0, unique("failover"));
    config.endpoints = Endpoints::new([endpoint(&first), endpoint(&second)]).unwrap();
    config.protocol = protocol;
    config.subscriptions = vec![topic.clone()];
    config.reconnect.min_delay = Duration::from_millis(50);
    config.reconnect.max_delay = Duration::from_millis(200);
    let mut t = Transport::start(config).unwrap();
    next_subscribed(&mut t).await;
    assert_eq!(t.publisher.connected_endpoint(), Some(&endpoint(&first)));
    timeout(WAIT, t.publisher.publish(&message(&topic, "on the first")))
        .await
        .expect("acknowledged in time")
        .expect("acknowledged");
    assert_eq!(next_message(&mut t).await.payload, b"on the first");

    first.shutdown().await;
    next_subscribed(&mut t).await;
    assert_eq!(t.publisher.connected_endpoint(), Some(&endpoint(&second)));

    // Its subscription is in place on the second broker: another client of that broker
    // reaches it, and its own publishes are acknowledged there.
    let mut other = Transport::start(TransportConfig::new(
        "127.0.0.1",
        second.local_addr().port(),
        unique("other"),
    ))
    .unwrap();
    next_subscribed(&mut other).await;
    timeout(
        WAIT,
        other.publisher.publish(&message(&topic, "from a peer")),
    )
    .await
    .expect("acknowledged in time")
    .expect("acknowledged");
    assert_eq!(next_message(&mut t).await.payload, b"from a peer");
    timeout(WAIT, t.publisher.publish(&message(&topic, "on the second")))
        .await
        .expect("acknowledged in time")
        .expect("acknowledged");
    assert_eq!(next_message(&mut t).await.payload, b"on the second");
    assert_eq!(
        t.publisher
            .stats()
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    other.shutdown(Duration::from_secs(1)).await;
    t.shutdown(Duration::from_secs(1)).await;
    second.shutdown().await;
}

#[tokio::test]
async fn v5_session_moves_to_the_next_broker() {
    moves_to_the_next_broker_when_its_own_goes_away(Protocol::V5).await;
}

#[tokio::test]
async fn v311_session_moves_to_the_next_broker() {
    moves_to_the_next_broker_when_its_own_goes_away(Protocol::V311).await;
}

#[tokio::test]
async fn a_refusing_address_is_skipped_without_a_backoff_delay() {
    // A port nothing listens on: bound, then released.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let live = broker().await;
    let mut config = TransportConfig::new("", 0, unique("skip"));
    config.endpoints = Endpoints::new([
        Endpoint {
            host: "127.0.0.1".into(),
            port: dead_port,
        },
        endpoint(&live),
    ])
    .unwrap();
    config.subscriptions = vec![unique("workbus-test/skip")];
    // A backoff delay would outlast the deadline below many times over.
    config.reconnect.min_delay = Duration::from_secs(60);
    config.reconnect.max_delay = Duration::from_secs(60);
    let mut t = Transport::start(config).unwrap();
    let started = Instant::now();
    next_subscribed(&mut t).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(t.publisher.connected_endpoint(), Some(&endpoint(&live)));
    t.shutdown(Duration::from_secs(1)).await;
    live.shutdown().await;
}

/// A TLS broker on `addr` with the certificate and key at `cert`, `key` (server
/// authentication only).
async fn tls_broker(addr: &str, cert: std::path::PathBuf, key: std::path::PathBuf) -> BrokerHandle {
    let tls = workbus_broker::TlsConfig {
        cert_file: cert,
        key_file: key,
        client_ca_file: None,
        client_auth: workbus_broker::ClientAuth::Off,
        reload_interval: None,
        crl_file: None,
    };
    Broker::new(BrokerConfig::with_tls(addr.parse().unwrap(), tls))
        .start()
        .await
        .expect("TLS broker starts")
}

/// TLS checks each address by its own name: the first broker's certificate names only
/// 127.0.0.2 (besides the loopback names every one gets, 127.0.0.1 included), the second's
/// not 127.0.0.2. Reaching the second at 127.0.0.1 works only if the session verifies it
/// as 127.0.0.1, not as the first address it started with.
#[tokio::test]
async fn tls_verifies_each_address_by_its_own_name() {
    use workbus_broker::certs::{self, Validity};
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    let first = certs::init(pki, &["127.0.0.2".to_owned()]).expect("a CA and a certificate");
    let (first_cert, first_key) = (pki.join("first.pem"), pki.join("first-key.pem"));
    std::fs::rename(&first.cert, &first_cert).unwrap();
    std::fs::rename(&first.key, &first_key).unwrap();
    let second = certs::issue_server(pki, &[], Validity::starting_now(Duration::from_secs(3600)))
        .expect("a second certificate");
    let a = tls_broker("127.0.0.2:0", first_cert, first_key).await;
    let b = tls_broker("127.0.0.1:0", second.cert, second.key).await;
    let at = |host: &str, h: &BrokerHandle| Endpoint {
        host: host.into(),
        port: h.tls_addrs()[0].port(),
    };
    let mut config = TransportConfig::new("", 0, unique("sni"));
    config.endpoints = Endpoints::new([at("127.0.0.2", &a), at("127.0.0.1", &b)]).unwrap();
    config.tls = Some(workbus_transport::TlsSettings {
        ca_pem: Some(workbus_transport::PemSource::File(pki.join(certs::CA_CERT))),
        ..Default::default()
    });
    config.subscriptions = vec![unique("workbus-test/sni")];
    config.reconnect.min_delay = Duration::from_millis(50);
    config.reconnect.max_delay = Duration::from_millis(200);
    let mut t = Transport::start(config).unwrap();
    next_subscribed(&mut t).await;
    assert_eq!(t.publisher.connected_endpoint(), Some(&at("127.0.0.2", &a)));
    a.shutdown().await;
    next_subscribed(&mut t).await;
    assert_eq!(t.publisher.connected_endpoint(), Some(&at("127.0.0.1", &b)));
    t.shutdown(Duration::from_secs(1)).await;
    b.shutdown().await;
}
