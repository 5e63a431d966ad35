//! Certificate rotation from the client's side, against the embedded broker with mutual
//! TLS: the transport reads its certificate files on every connection attempt, so a
//! rotated certificate reaches the broker on the next reconnect, which the owner can ask
//! for ([`Publisher::reconnect`]) without losing a publish in flight; unusable files
//! are a typed error, retried (never replaced by the old material) until fixed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::time::timeout;
use workbus_broker::certs::{self, Validity};
use workbus_broker::{
    Authorizer, Broker, BrokerConfig, BrokerHandle, ClientInfo, ConnectDenied, ConnectRequest,
    Decision, PublishRequest, SubscribeRequest, TlsConfig,
};
use workbus_schemas::acl::Identity;
use workbus_schemas::mqtt::MqttMessage;
use workbus_transport::{
    ReconnectPolicy, TlsError, TlsSettings, Transport, TransportConfig, TransportEvent,
};

const WAIT: Duration = Duration::from_secs(15);

/// Lets everyone in and remembers the leaf certificate of every connection of `edge-1`.
#[derive(Clone, Default)]
struct RecordCertificates(Arc<Mutex<Vec<Bytes>>>);

impl RecordCertificates {
    fn seen(&self) -> Vec<Bytes> {
        self.0.lock().unwrap().clone()
    }
}

impl Authorizer for RecordCertificates {
    type Principal = ();

    async fn authenticate(&self, request: &ConnectRequest) -> Result<(), ConnectDenied> {
        if request.client_id != "edge-1-c" {
            return Ok(());
        }
        let leaf = request.peer_certificates.first().cloned();
        self.0.lock().unwrap().push(leaf.unwrap_or_default());
        Ok(())
    }

    async fn authorize_publish(&self, _: &ClientInfo, _: &(), _: &PublishRequest<'_>) -> Decision {
        Decision::Allow
    }

    async fn authorize_subscribe(
        &self,
        _: &ClientInfo,
        _: &(),
        _: &SubscribeRequest<'_>,
    ) -> Decision {
        Decision::Allow
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    pki: PathBuf,
    broker: BrokerHandle,
    seen: RecordCertificates,
    transport: Transport,
    topic: String,
}

fn issue(pki: &Path) -> certs::Issued {
    issue_for(pki, "edge-1")
}

fn issue_for(pki: &Path, cluster: &str) -> certs::Issued {
    certs::issue_client(
        pki,
        &Identity::Agent(cluster.into()),
        Validity::starting_now(Duration::from_secs(3600)),
    )
    .expect("issue")
}

/// The DER of the certificate in `path` (the leaf the broker should see).
fn leaf_of(path: &Path) -> Bytes {
    let der = CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    Bytes::copy_from_slice(&der)
}

/// A mutual-TLS broker and a transport connected to it with its certificate in files.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    certs::init(&pki, &[]).unwrap();
    let seen = RecordCertificates::default();
    let broker = Broker::new(BrokerConfig::with_tls(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        TlsConfig::mutual(
            pki.join(certs::SERVER_CERT),
            pki.join(certs::SERVER_KEY),
            pki.join(certs::CA_BUNDLE),
        ),
    ))
    .with_authorizer(seen.clone())
    .start()
    .await
    .expect("broker starts");
    let topic = "rotation/edge-1".to_owned();
    let mut transport = connect(&broker, &pki, "edge-1", vec![]);
    next_subscribed(&mut transport).await;
    Setup {
        _dir: dir,
        pki,
        broker,
        seen,
        transport,
        topic,
    }
}

/// A transport of `cluster` (client id `<cluster>-c`) with its certificate in files.
fn connect(
    broker: &BrokerHandle,
    pki: &Path,
    cluster: &str,
    subscriptions: Vec<String>,
) -> Transport {
    let issued = issue_for(pki, cluster);
    let mut config = TransportConfig::new(
        "127.0.0.1",
        broker.local_addr().port(),
        format!("{cluster}-c"),
    );
    config.tls = Some(TlsSettings::from_files(
        pki.join(certs::CA_BUNDLE),
        issued.cert,
        issued.key,
    ));
    config.subscriptions = subscriptions;
    config.reconnect = ReconnectPolicy {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        factor: 2.0,
    };
    Transport::start(config).expect("usable material")
}

async fn next_subscribed(t: &mut Transport) {
    loop {
        match timeout(WAIT, t.events.recv())
            .await
            .expect("subscribed in time")
        {
            Some(TransportEvent::Subscribed) => return,
            Some(_) => continue,
            None => panic!("transport ended"),
        }
    }
}

fn message(topic: &str, n: usize) -> MqttMessage {
    MqttMessage {
        topic: topic.to_owned(),
        content_type: None,
        user_properties: Vec::new(),
        payload: format!("m{n}").into_bytes(),
        publisher: None,
    }
}

#[tokio::test]
async fn a_rotated_certificate_reaches_the_broker_on_a_requested_reconnect() {
    let mut s = setup().await;
    let cert = s.pki.join("edge-1.pem");
    let first = leaf_of(&cert);
    assert_eq!(s.seen.seen(), vec![first.clone()]);
    let mut subscriber = connect(&s.broker, &s.pki, "edge-2", vec![s.topic.clone()]);
    next_subscribed(&mut subscriber).await;

    // Publishes in flight when the reconnect is asked for are all acknowledged.
    let publisher = s.transport.publisher.clone();
    let mut pending = Vec::new();
    for n in 0..50 {
        pending.push(publisher.send(&message(&s.topic, n)).await.unwrap());
    }
    issue(&s.pki);
    let second = leaf_of(&cert);
    assert_ne!(first, second, "a new certificate from the same CA");
    let in_flight = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for p in pending {
            outcomes.push(p.acknowledged().await);
        }
        outcomes
    });
    timeout(WAIT, publisher.reconnect())
        .await
        .expect("reconnect in time");
    // Sent while the reconnect is under way: held back, then delivered.
    let late = publisher.send(&message(&s.topic, 50)).await.unwrap();
    for outcome in in_flight.await.unwrap() {
        assert_eq!(outcome, Ok(()), "nothing in flight is lost");
    }
    next_subscribed(&mut s.transport).await;
    assert_eq!(timeout(WAIT, late.acknowledged()).await.unwrap(), Ok(()));
    assert_eq!(
        s.seen.seen(),
        vec![first, second],
        "the broker saw the new certificate on the new connection"
    );

    // Every message arrived once, in order, across the reconnect.
    let mut received = Vec::new();
    while received.len() < 51 {
        match timeout(WAIT, subscriber.events.recv()).await.unwrap() {
            Some(TransportEvent::Message(m)) => received.push(m.payload),
            Some(_) => continue,
            None => panic!("transport ended"),
        }
    }
    let expected: Vec<Vec<u8>> = (0..=50).map(|n| format!("m{n}").into_bytes()).collect();
    assert_eq!(received, expected);
    assert_eq!(
        s.transport
            .publisher
            .stats()
            .publishes_lost
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    s.transport.shutdown(Duration::from_secs(2)).await;
    subscriber.shutdown(Duration::from_secs(2)).await;
    s.broker.shutdown().await;
}

#[tokio::test]
async fn unusable_certificate_files_are_reported_and_retried_until_fixed() {
    let mut s = setup().await;
    let cert = s.pki.join("edge-1.pem");
    let first = leaf_of(&cert);
    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    s.transport.publisher.reconnect().await;

    // The broken file is reported, typed, on every attempt — and no connection is made
    // with the material it replaced.
    let publisher = s.transport.publisher.clone();
    let mut failures = 0;
    while failures < 3 {
        match timeout(WAIT, s.transport.events.recv()).await.unwrap() {
            Some(TransportEvent::Disconnected(reason)) if reason.contains("invalid PEM") => {
                failures += 1;
            }
            Some(TransportEvent::Disconnected(_)) => {}
            other => panic!("no connection with a broken certificate file: {other:?}"),
        }
    }
    assert!(
        matches!(
            publisher.tls_error(),
            Some(TlsError::Pem {
                what: "client certificate",
                ..
            })
        ),
        "{:?}",
        publisher.tls_error()
    );
    assert!(
        publisher
            .stats()
            .tls_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
    assert_eq!(s.seen.seen(), vec![first.clone()]);
    assert!(!publisher.is_connected());

    // A missing key is a read error naming the file.
    std::fs::remove_file(s.pki.join("edge-1-key.pem")).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !matches!(publisher.tls_error(), Some(TlsError::Read { .. })) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            publisher.tls_error()
        );
        let _ = timeout(WAIT, s.transport.events.recv()).await;
    }

    // Fixed files: the session recovers on its own.
    issue(&s.pki);
    next_subscribed(&mut s.transport).await;
    assert_eq!(publisher.tls_error(), None);
    assert_eq!(s.seen.seen(), vec![first, leaf_of(&cert)]);
    publisher.publish(&message(&s.topic, 1)).await.unwrap();
    s.transport.shutdown(Duration::from_secs(2)).await;
    s.broker.shutdown().await;
}
