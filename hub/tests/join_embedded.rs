//! Joining through the hub's embedded broker (mutual TLS, `ClusterAuthorizer`): a
//! bootstrap token admits a joining cluster — valid ones only (expired, revoked and
//! foreign tokens are refused at CONNECT) — whose accepted certificate request yields a
//! client certificate the broker accepts as the cluster's own identity; an accepted
//! cluster can no longer use a bootstrap token; a denied cluster's connection is closed
//! at once and its identity refused from then on. The hub trusts the broker's
//! publisher stamp: a bootstrap identity cannot send what only an agent may.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use serde_json::json;
use tokio::time::timeout;
use workbus_hub::clock::{Clock, ManualClock};
use workbus_hub::embedded_broker::{self, BrokerSecurity, EmbeddedBroker};
use workbus_hub::pki::Pki;
use workbus_hub::{ApiSettings, Hub, HubConfig, HubHandle, StoreSettings};
use workbus_schemas::Event;
use workbus_schemas::acl::BOOTSTRAP_IDENTITY_PREFIX;
use workbus_schemas::client_id;
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::extensions::OcmExtensionsMut;
use workbus_schemas::mqtt::{self, Encoding};
use workbus_schemas::registration::names::{CLUSTER_NAME_LABEL, signer};
use workbus_schemas::registration::{
    CertificateSigningRequest, ManagedCluster, RegistrationBody, RegistrationObject,
    decode_registration_event, encode_registration_event,
};
use workbus_schemas::topics::{self, Topics};
use workbus_transport::{PemSource, TlsSettings, Transport, TransportConfig, TransportEvent};

struct Setup {
    broker: EmbeddedBroker,
    hub: HubHandle,
    hand: ManualClock,
    pki: Pki,
    source: String,
}

async fn setup(dir: &std::path::Path) -> Setup {
    let source = unique("emb");
    let pki = Pki::ensure(dir, &[]).unwrap();
    let security = BrokerSecurity::MutualTls {
        pki: pki.clone(),
        source_id: source.clone(),
    };
    let (broker, _) = embedded_broker::start("127.0.0.1:0".parse().unwrap(), &security)
        .await
        .unwrap();
    let (clock, hand) = Clock::manual(Utc::now());
    let mut config = HubConfig {
        store: StoreSettings::sqlite(dir.join("hub")),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: source.clone(),
        broker: broker.hub_settings().unwrap(),
        api: ApiSettings {
            admin_token: Some(TOKEN.into()),
            ..Default::default()
        },
        ..HubConfig::new()
    };
    config.registration.pki = Some(pki.clone());
    config.registration.clock = clock;
    config.registration.disconnect = Some(broker.disconnect());
    config.registration.trust_publisher_stamps = true;
    let hub = Hub::start(config).await.unwrap();
    assert!(hub.wait_subscribed(WAIT).await);
    broker.attach_hub(&hub);
    Setup {
        broker,
        hub,
        hand,
        pki,
        source,
    }
}

impl Setup {
    fn transport(&self, cluster: &str, client_id: String, tls: TlsSettings) -> TransportConfig {
        let addr = self.broker.reach();
        let topics = Topics::for_agent(&self.source, cluster).unwrap();
        let mut cfg = TransportConfig::new(addr.ip().to_string(), addr.port(), client_id);
        cfg.subscriptions = topics::agent_subscriptions(&topics, cluster).unwrap();
        cfg.tls = Some(tls);
        cfg.reconnect.max_delay = Duration::from_millis(200);
        cfg
    }

    fn ca_only(&self) -> TlsSettings {
        TlsSettings {
            ca_pem: Some(PemSource::File(self.pki.ca_bundle())),
            client_cert_pem: None,
            client_key_pem: None,
        }
    }

    /// A joining cluster's transport with bootstrap token `secret`.
    fn bootstrap(&self, cluster: &str, secret: &str) -> TransportConfig {
        let mut cfg = self.transport(
            cluster,
            client_id::bootstrap_client_id(cluster),
            self.ca_only(),
        );
        cfg.credentials = Some((
            format!("{BOOTSTRAP_IDENTITY_PREFIX}{cluster}"),
            secret.into(),
        ));
        cfg
    }

    async fn token(&self, body: serde_json::Value) -> String {
        let r = http(
            "POST",
            format!("{}/api/v1/bootstraptokens", self.hub.base_url()),
            None,
            Some(body.to_string()),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }
}

/// Whether the transport subscribes (admitted) or only fails to connect (refused)
/// within a few seconds.
async fn admitted(transport: &mut Transport) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match timeout(left, transport.events.recv()).await {
            Ok(Some(TransportEvent::Subscribed)) => return true,
            Ok(Some(_)) => continue,
            _ => return false,
        }
    }
}

async fn publish(transport: &Transport, source: &str, cluster: &str, object: RegistrationObject) {
    let e = encode_registration_event(
        cluster,
        SubResource::Spec,
        Action::CreateRequest,
        &object,
        Utc::now(),
    )
    .unwrap();
    publish_event(transport, source, cluster, &e, "").await;
}

/// Publishes `e` (original source `original`) as `cluster`'s agent would.
async fn publish_event(
    transport: &Transport,
    source: &str,
    cluster: &str,
    e: &Event,
    original: &str,
) {
    let topics = Topics::for_agent(source, cluster).unwrap();
    let ty = workbus_schemas::envelope::decode_event_type(e).unwrap();
    let topic = topics::agent_publish_topic(&topics, cluster, &ty, Some(original)).unwrap();
    transport
        .publisher
        .publish(&mqtt::encode(e, &topic, Encoding::Binary).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn bootstrap_tokens_join_accept_and_deny() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let cluster = unique("edge");

    // Expired, revoked and foreign tokens are refused at CONNECT.
    let expiring = s.token(json!({"ttlSeconds": 60})).await;
    let revoked = s.token(json!({"name": "gone"})).await;
    let r = http(
        "DELETE",
        format!("{}/api/v1/bootstraptokens/gone", s.hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    s.hand.advance(chrono::Duration::seconds(61));
    for (what, secret) in [
        ("expired", expiring.as_str()),
        ("revoked", revoked.as_str()),
        ("foreign", "wbt_not-a-token-of-this-hub"),
    ] {
        let mut t = Transport::start(s.bootstrap(&cluster, secret)).unwrap();
        assert!(!admitted(&mut t).await, "{what} token admitted");
        t.shutdown(Duration::from_millis(100)).await;
    }
    // A valid token: the cluster joins and asks for its certificate — with its
    // bootstrap client id only.
    let valid = s.token(json!({"ttlSeconds": 3600})).await;
    let mut wrong_id = s.bootstrap(&cluster, &valid);
    wrong_id.client_id = format!("{cluster}-work-agent-client");
    let mut t = Transport::start(wrong_id).unwrap();
    assert!(
        !admitted(&mut t).await,
        "a bootstrap identity used an agent's client id"
    );
    t.shutdown(Duration::from_millis(100)).await;
    let mut joining = Transport::start(s.bootstrap(&cluster, &valid)).unwrap();
    assert!(admitted(&mut joining).await, "valid token refused");
    publish(
        &joining,
        &s.source,
        &cluster,
        RegistrationObject::ManagedCluster(ManagedCluster::named(&cluster)),
    )
    .await;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cluster.as_str());
    let mut csr = CertificateSigningRequest::default();
    csr.metadata.name = format!("{cluster}-x1y2z");
    csr.metadata
        .labels
        .insert(CLUSTER_NAME_LABEL.into(), cluster.clone());
    csr.spec.request = params
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
        .into_bytes();
    csr.spec.signer_name = signer::MQTT_CLIENT.into();
    publish(
        &joining,
        &s.source,
        &cluster,
        RegistrationObject::CertificateSigningRequest(csr),
    )
    .await;
    eventually("csr recorded", || async {
        let c = cluster.clone();
        s.hub
            .store()
            .run(move |st| st.csrs_of_cluster(&c))
            .await
            .unwrap()
            .len()
            == 1
    })
    .await;

    // Accept over REST; the signed certificate arrives on the joining connection.
    let r = http(
        "POST",
        format!("{}/api/v1/clusters/{cluster}/accept", s.hub.base_url()),
        None,
        Some("{}".into()),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cert = loop {
        match timeout(WAIT, joining.events.recv()).await {
            Ok(Some(TransportEvent::Message(m))) => {
                let e = mqtt::decode(&m).unwrap();
                if let Ok(d) = decode_registration_event(&e)
                    && let RegistrationBody::Object(RegistrationObject::CertificateSigningRequest(
                        c,
                    )) = d.body
                    && c.is_approved()
                {
                    break c.status.certificate;
                }
            }
            Ok(Some(_)) => {}
            _ => panic!("no signed certificate"),
        }
    };
    joining.shutdown(Duration::from_millis(100)).await;

    // The issued certificate is the cluster's own identity on the broker.
    let own = TlsSettings {
        ca_pem: Some(PemSource::File(s.pki.ca_bundle())),
        client_cert_pem: Some(PemSource::Inline(cert)),
        client_key_pem: Some(PemSource::Inline(key.serialize_pem().into_bytes())),
    };
    let mut agent = Transport::start(s.transport(
        &cluster,
        client_id::mqtt_client_id(&client_id::default_agent_id(&cluster)),
        own.clone(),
    ))
    .unwrap();
    assert!(
        admitted(&mut agent).await,
        "the issued certificate was refused"
    );
    // An accepted cluster cannot come back with a bootstrap token.
    let mut again = Transport::start(s.bootstrap(&cluster, &valid)).unwrap();
    assert!(
        !admitted(&mut again).await,
        "bootstrap admitted for an accepted cluster"
    );
    again.shutdown(Duration::from_millis(100)).await;

    // Deny: the agent's connection is closed at once and its identity refused.
    let r = http(
        "POST",
        format!("{}/api/v1/clusters/{cluster}/deny", s.hub.base_url()),
        None,
        Some("{}".into()),
    )
    .await;
    assert_eq!(r.status, 200);
    let closed = timeout(WAIT, async {
        loop {
            if let Some(TransportEvent::Disconnected(_)) = agent.events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the denied cluster's connection stayed open"
    );
    assert!(
        !admitted(&mut agent).await,
        "the denied identity reconnected"
    );
    agent.shutdown(Duration::from_millis(100)).await;
    s.hub.shutdown().await;
    s.broker.shutdown().await;
}

#[tokio::test]
async fn an_auto_accept_token_accepts_the_joining_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let cluster = unique("auto");
    let token = s.token(json!({"autoAccept": true, "name": "fleet"})).await;
    let mut joining = Transport::start(s.bootstrap(&cluster, &token)).unwrap();
    assert!(admitted(&mut joining).await);
    publish(
        &joining,
        &s.source,
        &cluster,
        RegistrationObject::ManagedCluster(ManagedCluster::named(&cluster)),
    )
    .await;
    eventually("accepted on join", || async {
        let c = cluster.clone();
        s.hub
            .store()
            .run(move |st| st.get_cluster(&c))
            .await
            .unwrap()
            .is_some_and(|c| {
                c.is_accepted()
                    && c.registration.as_ref().and_then(|r| r.join_token.as_deref()) == Some("fleet")
                    && c.managed_cluster()
                        .metadata
                        .annotation(workbus_schemas::registration::names::AUTOMATICALLY_ACCEPTED_ON_ANNOTATION)
                        .is_some()
            })
    })
    .await;
    joining.shutdown(Duration::from_millis(100)).await;
    s.hub.shutdown().await;
    s.broker.shutdown().await;
}

#[tokio::test]
async fn a_bootstrap_identity_cannot_send_a_work_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let cluster = unique("joiner");
    let token = s.token(json!({"ttlSeconds": 3600})).await;
    let mut joining = Transport::start(s.bootstrap(&cluster, &token)).unwrap();
    assert!(admitted(&mut joining).await);
    // A well-formed status on the cluster's own topic, with its own clustername: only
    // the broker's stamp (bootstrap.<cluster>) tells it apart from the agent's.
    let mut status = workbus_schemas::envelope::StatusEventFields {
        agent_id: client_id::default_agent_id(&cluster),
        action: Action::UpdateRequest,
        cluster_name: cluster.clone(),
        original_source: s.source.clone(),
        resource_id: uuid_like(&cluster),
        generation: 1,
        sequence_id: "1".into(),
        status_hash: "0".repeat(64),
        metadata: serde_json::Map::new(),
        status: json!({"conditions": []}),
        log_tracing: Default::default(),
    }
    .build(Utc::now())
    .unwrap();
    let decoded = workbus_schemas::metadata::decode_status_event(&status).unwrap();
    status.set_status_hash(&workbus_schemas::status_hash::status_hash(&decoded.status));
    publish_event(&joining, &s.source, &cluster, &status, &s.source).await;
    eventually("the status refused for its publisher", || async {
        s.hub
            .metrics()
            .render(None)
            .contains("workbus_hub_events_refused_total{reason=\"publisher\"} 1")
    })
    .await;
    joining.shutdown(Duration::from_millis(100)).await;
    s.hub.shutdown().await;
    s.broker.shutdown().await;
}

/// A stable UUID-shaped resource id for `name`.
fn uuid_like(name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}
