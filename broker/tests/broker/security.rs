//! Issue 12 on the embedded broker: TLS listeners, identities from client certificates or
//! hashed credentials, topic ACLs from the topic templates (`FleetAcl`), client ids bound
//! to identities, the abuse limit, certificate rotation. Negative tests first.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as p5;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use workbus_broker::certs::{self, Validity};
use workbus_broker::credentials::{self, Credentials};
use workbus_broker::{BrokerConfig, BrokerHandle, ClientAuth, FleetAcl, Reloaded, TlsConfig};
use workbus_schemas::acl::Identity;

use crate::common::*;

const SPEC_A: &str = "sources/workbus/consumers/a/sourceevents";
const STATUS_A: &str = "sources/workbus/consumers/a/agentevents";
const SPEC_B: &str = "sources/workbus/consumers/b/sourceevents";
const STATUS_B: &str = "sources/workbus/consumers/b/agentevents";
const STATUS_ALL: &str = "sources/workbus/consumers/+/agentevents";

fn agent(c: &str) -> Identity {
    Identity::Agent(c.into())
}

fn source() -> Identity {
    Identity::Source("workbus".into())
}

/// A CA directory with the broker's certificate.
fn pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    certs::init(dir.path(), &[]).expect("certs init");
    dir
}

fn issue(dir: &Path, who: &Identity) -> certs::Issued {
    certs::issue_client(dir, who, Validity::starting_now(Duration::from_secs(3600))).expect("issue")
}

fn tls_config(dir: &Path, client_auth: ClientAuth) -> TlsConfig {
    TlsConfig {
        cert_file: dir.join(certs::SERVER_CERT),
        key_file: dir.join(certs::SERVER_KEY),
        client_ca_file: Some(dir.join(certs::CA_BUNDLE)),
        client_auth,
        reload_interval: None,
        crl_file: None,
    }
}

async fn tls_broker(dir: &Path, client_auth: ClientAuth, acl: FleetAcl) -> BrokerHandle {
    let config = BrokerConfig::with_tls(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        tls_config(dir, client_auth),
    );
    start_with(config, acl).await
}

/// A rustls client trusting `ca_bundle`, with `identity`'s certificate when given.
fn client_tls(ca_bundle: &Path, cert: Option<&certs::Issued>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_bundle).expect("bundle") {
        roots.add(c.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    Arc::new(match cert {
        None => builder.with_no_client_auth(),
        Some(issued) => {
            let chain = CertificateDer::pem_file_iter(&issued.cert)
                .expect("cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("pem");
            let key = PrivateKeyDer::from_pem_file(&issued.key).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
    })
}

fn over_tls(
    mut o: rumqttc::v5::MqttOptions,
    tls: Arc<rustls::ClientConfig>,
) -> rumqttc::v5::MqttOptions {
    o.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(tls),
    ));
    o
}

/// A v5 client of `who` (certificate from `dir`) with client id `id`.
fn v5_as(addr: SocketAddr, dir: &Path, who: &Identity, id: &str) -> rumqttc::v5::MqttOptions {
    let issued = issue(dir, who);
    over_tls(
        v5_options(addr, id),
        client_tls(&dir.join(certs::CA_BUNDLE), Some(&issued)),
    )
}

fn sub_ok() -> p5::SubscribeReasonCode {
    p5::SubscribeReasonCode::Success(QoS::AtLeastOnce)
}

#[tokio::test]
async fn agents_and_the_source_work_end_to_end_and_agent_b_is_confined() {
    let dir = pki();
    let d = dir.path();
    let broker = tls_broker(
        d,
        ClientAuth::Required,
        FleetAcl::for_source("workbus").unwrap(),
    )
    .await;
    let addr = broker.local_addr();
    assert!(broker.local_addrs().is_empty(), "no plaintext listener");

    let (mut hub, _) = connect_v5(v5_as(addr, d, &source(), "workbus-hub-1a2b3c4d")).await;
    assert_eq!(
        hub.sub(&[&format!("$share/g/{STATUS_ALL}")]).await,
        vec![sub_ok()]
    );
    let (mut a, _) = connect_v5(v5_as(addr, d, &agent("a"), "a-work-agent-client")).await;
    assert_eq!(a.sub(&[SPEC_A]).await, vec![sub_ok()]);
    let (mut b, _) = connect_v5(v5_as(addr, d, &agent("b"), "b-work-agent-client")).await;

    // B may not read A's specs, nor everything, nor every cluster's.
    assert_eq!(
        b.sub(&[
            SPEC_A,
            "#",
            "sources/workbus/consumers/+/sourceevents",
            SPEC_B
        ])
        .await,
        vec![
            p5::SubscribeReasonCode::NotAuthorized,
            p5::SubscribeReasonCode::NotAuthorized,
            p5::SubscribeReasonCode::NotAuthorized,
            sub_ok(),
        ]
    );
    // B may not write A's status, nor specs.
    for topic in [STATUS_A, SPEC_A] {
        b.client
            .publish(topic, QoS::AtLeastOnce, false, "forged")
            .await
            .unwrap();
        assert_eq!(
            b.next_puback().await.reason,
            p5::PubAckReason::NotAuthorized
        );
    }
    // The source may not write statuses.
    hub.client
        .publish(STATUS_B, QoS::AtLeastOnce, false, "forged")
        .await
        .unwrap();
    assert_eq!(
        hub.next_puback().await.reason,
        p5::PubAckReason::NotAuthorized
    );

    // The legitimate flows: spec to A, A's status to the hub (the first thing it sees:
    // nothing forged went through).
    hub.client
        .publish(SPEC_A, QoS::AtLeastOnce, false, "spec")
        .await
        .unwrap();
    assert_eq!(hub.next_puback().await.reason, p5::PubAckReason::Success);
    let got = a.next_publish().await;
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (SPEC_A.as_bytes(), &b"spec"[..])
    );
    a.client
        .publish(STATUS_A, QoS::AtLeastOnce, false, "status")
        .await
        .unwrap();
    let got = hub.next_publish().await;
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (STATUS_A.as_bytes(), &b"status"[..])
    );
    // The broker says who published it: A's certificate identity (issue 13).
    assert_eq!(
        got.properties.map(|p| p.user_properties),
        Some(vec![("workbus.io/publisher".to_string(), "a".to_string())])
    );

    let stats = broker.stats();
    assert_eq!(stats.denied_subscriptions, 3);
    assert_eq!(stats.denied_publishes, 3);
    assert_eq!(stats.connected_clients, 3);
    broker.shutdown().await;
}

#[tokio::test]
async fn client_ids_belong_to_identities() {
    let dir = pki();
    let d = dir.path();
    let broker = tls_broker(
        d,
        ClientAuth::Required,
        FleetAcl::for_source("workbus").unwrap(),
    )
    .await;
    let addr = broker.local_addr();
    let (mut a, _) = connect_v5(v5_as(addr, d, &agent("a"), "a-work-agent-client")).await;

    // B presenting A's client id: refused, A unaffected.
    let mut b = spawn_v5(v5_as(addr, d, &agent("b"), "a-work-agent-client"));
    let err = b.expect_error("refused CONNACK").await;
    assert!(err.contains("ClientIdentifierNotValid"), "{err}");
    // A client id naming nobody, and the source posing as an agent id.
    let mut odd = spawn_v5(v5_as(addr, d, &agent("b"), "anything"));
    assert!(
        odd.expect_error("refused")
            .await
            .contains("ClientIdentifierNotValid")
    );

    // Cluster `a-work-agent-x`'s id also fits cluster `a`'s pattern
    // (`a-work-agent…-client`): the broker still refuses `a` while the owner holds it.
    let owner_id = "a-work-agent-x-work-agent-client";
    let (mut owner, _) = connect_v5(v5_as(addr, d, &agent("a-work-agent-x"), owner_id)).await;
    let mut thief = spawn_v5(v5_as(addr, d, &agent("a"), owner_id));
    assert!(
        thief
            .expect_error("refused")
            .await
            .contains("ClientIdentifierNotValid")
    );

    // The same identity may take over its own session, as MQTT requires.
    let (_a2, _) = connect_v5(v5_as(addr, d, &agent("a"), "a-work-agent-client")).await;
    let err = a.expect_error("taken over").await;
    assert!(
        err.contains("SessionTakenOver") || err.contains("Disconnect"),
        "{err}"
    );
    assert_eq!(
        owner
            .sub(&["sources/workbus/consumers/a-work-agent-x/sourceevents"])
            .await,
        vec![sub_ok()]
    );
    assert_eq!(broker.stats().refused_connections, 3);
    broker.shutdown().await;
}

#[tokio::test]
async fn without_a_valid_certificate_there_is_no_connection() {
    let dir = pki();
    let d = dir.path();
    let broker = tls_broker(
        d,
        ClientAuth::Required,
        FleetAcl::for_source("workbus").unwrap(),
    )
    .await;
    let addr = broker.local_addr();
    let bundle = d.join(certs::CA_BUNDLE);

    // Plaintext MQTT on the TLS port.
    let mut plain = spawn_v5(v5_options(addr, "a-work-agent-client"));
    plain.expect_error("plaintext refused").await;
    // TLS without a client certificate.
    let mut anonymous = spawn_v5(over_tls(
        v5_options(addr, "a-work-agent-client"),
        client_tls(&bundle, None),
    ));
    anonymous.expect_error("no certificate refused").await;
    // An expired certificate.
    let past = SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    let expired = certs::issue_client(
        d,
        &agent("a"),
        Validity {
            not_before: past,
            not_after: past + Duration::from_secs(24 * 3600),
        },
    )
    .unwrap();
    let mut old = spawn_v5(over_tls(
        v5_options(addr, "a-work-agent-client"),
        client_tls(&bundle, Some(&expired)),
    ));
    old.expect_error("expired refused").await;
    // A certificate from a foreign CA, with the right name.
    let foreign = pki();
    let alien = issue(foreign.path(), &agent("a"));
    let mut stranger = spawn_v5(over_tls(
        v5_options(addr, "a-work-agent-client"),
        client_tls(&bundle, Some(&alien)),
    ));
    stranger.expect_error("foreign CA refused").await;

    within("failures counted", async {
        while broker.stats().tls_handshake_failures < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(broker.stats().connected_clients, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn passwords_over_tls_for_devices_without_certificates() {
    let dir = pki();
    let d = dir.path();
    let hash = credentials::hash_password(b"c-secret").unwrap();
    let creds =
        Credentials::parse(Path::new("creds"), &credentials::set_line("", "c", &hash)).unwrap();
    let acl = FleetAcl::for_source("workbus")
        .unwrap()
        .with_credentials(creds);
    let broker = tls_broker(d, ClientAuth::Optional, acl).await;
    let addr = broker.local_addr();
    let tls = client_tls(&d.join(certs::CA_BUNDLE), None);
    let v4 = |user: Option<(&str, &str)>| {
        let mut o = v4_options(addr, "c-work-agent-client");
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::clone(&tls)),
        ));
        if let Some((u, p)) = user {
            o.set_credentials(u, p);
        }
        o
    };
    let mut wrong = spawn_v4(v4(Some(("c", "nope"))));
    assert!(
        wrong
            .expect_error("wrong password")
            .await
            .contains("BadUserNamePassword")
    );
    let mut unknown = spawn_v4(v4(Some(("d", "c-secret"))));
    assert!(
        unknown
            .expect_error("unknown user")
            .await
            .contains("BadUserNamePassword")
    );
    let mut nobody = spawn_v4(v4(None));
    assert!(
        nobody
            .expect_error("no identity")
            .await
            .contains("NotAuthorized")
    );

    let mut c = connect_v4(v4(Some(("c", "c-secret")))).await;
    assert_eq!(
        c.sub("sources/workbus/consumers/c/sourceevents").await,
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );
    assert_eq!(
        c.sub("sources/workbus/consumers/a/sourceevents").await,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );
    // 3.1.1 has no negative PUBACK: a refused publish closes the connection.
    c.client
        .publish(STATUS_A, rumqttc::QoS::AtLeastOnce, false, "forged")
        .await
        .unwrap();
    c.expect_error("disconnected for a refused publish").await;
    assert_eq!(broker.stats().denied_publishes, 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn repeated_refusals_close_the_connection() {
    let dir = pki();
    let d = dir.path();
    let broker = tls_broker(
        d,
        ClientAuth::Required,
        FleetAcl::for_source("workbus").unwrap(),
    )
    .await;
    let addr = broker.local_addr();
    let (mut b, _) = connect_v5(v5_as(addr, d, &agent("b"), "b-work-agent-client")).await;
    let probes: Vec<String> = (0..9)
        .map(|i| format!("sources/workbus/consumers/x{i}/sourceevents"))
        .collect();
    let probes: Vec<&str> = probes.iter().map(String::as_str).collect();
    assert!(
        b.sub(&probes)
            .await
            .iter()
            .all(|c| *c == p5::SubscribeReasonCode::NotAuthorized)
    );
    assert_eq!(broker.stats().abuse_disconnects, 0);
    b.client
        .publish(STATUS_A, QoS::AtLeastOnce, false, "tenth")
        .await
        .unwrap();
    let err = b.expect_error("closed after ten refusals").await;
    assert!(
        err.contains("NotAuthorized") || err.contains("Disconnect"),
        "{err}"
    );
    assert_eq!(broker.stats().abuse_disconnects, 1);
    broker.shutdown().await;
}

#[test]
fn plaintext_defaults_to_loopback_and_tls_needs_its_files() {
    let default = BrokerConfig::default();
    assert!(
        default.listen.iter().all(|a| a.ip().is_loopback()),
        "{:?}",
        default.listen
    );
    assert!(default.tls_listen.is_empty());
    let config = BrokerConfig {
        tls_listen: vec![workbus_broker::DEFAULT_TLS_LISTEN],
        ..BrokerConfig::default()
    };
    assert!(
        config.validate().is_err(),
        "TLS listeners without a certificate"
    );
    let mut mtls = TlsConfig::mutual("c", "k", "ca");
    mtls.client_ca_file = None;
    assert!(
        BrokerConfig::with_tls(workbus_broker::DEFAULT_TLS_LISTEN, mtls)
            .validate()
            .is_err()
    );
}

#[tokio::test]
async fn rotation_keeps_connected_clients_and_accepts_new_ones() {
    let dir = pki();
    let d = dir.path();
    let bundle = d.join(certs::CA_BUNDLE);
    let broker = tls_broker(
        d,
        ClientAuth::Required,
        FleetAcl::for_source("workbus").unwrap(),
    )
    .await;
    let addr = broker.local_addr();
    let (mut hub, _) = connect_v5(v5_as(addr, d, &source(), "workbus-hub-1")).await;
    assert_eq!(hub.sub(&[STATUS_ALL]).await, vec![sub_ok()]);
    let old_a = issue(d, &agent("a"));
    let old_tls = client_tls(&bundle, Some(&old_a));
    let (mut a, _) = connect_v5(over_tls(
        v5_options(addr, "a-work-agent-client"),
        Arc::clone(&old_tls),
    ))
    .await;

    // Overlap: new CA, bundle = new + old, new server certificate; reload.
    certs::rotate_ca(d).unwrap();
    certs::issue_server(d, &[], Validity::starting_now(certs::LEAF_VALIDITY)).unwrap();
    assert_eq!(broker.reload_tls().await.unwrap(), Reloaded::Changed);
    assert_eq!(broker.reload_tls().await.unwrap(), Reloaded::Unchanged);
    // A new client with a new-CA certificate, trusting the bundle, gets in.
    let (mut b, _) = connect_v5(v5_as(addr, d, &agent("b"), "b-work-agent-client")).await;
    // So does an old-CA certificate (a client not yet re-issued), once it trusts the bundle.
    let (_a_old, _) = connect_v5(over_tls(
        v5_options(addr, "a-work-agent-1-client"),
        client_tls(&bundle, Some(&old_a)),
    ))
    .await;
    // The connection made before the rotation still works.
    for (c, topic) in [(&mut a, STATUS_A), (&mut b, STATUS_B)] {
        c.client
            .publish(topic, QoS::AtLeastOnce, false, "up")
            .await
            .unwrap();
        assert_eq!(hub.next_publish().await.topic, topic.as_bytes());
    }

    // End of the overlap: the old CA leaves the bundle; old certificates no longer get in,
    // connected clients stay.
    certs::finish_rotation(d).unwrap();
    assert_eq!(broker.reload_tls().await.unwrap(), Reloaded::Changed);
    let mut late = spawn_v5(over_tls(
        v5_options(addr, "a-work-agent-2-client"),
        client_tls(&bundle, Some(&old_a)),
    ));
    late.expect_error("old CA refused after the rotation").await;
    a.client
        .publish(STATUS_A, QoS::AtLeastOnce, false, "still")
        .await
        .unwrap();
    assert_eq!(hub.next_publish().await.payload, &b"still"[..]);

    // A broken file during a rotation keeps the previous configuration.
    std::fs::write(d.join(certs::SERVER_KEY), "garbage").unwrap();
    assert!(broker.reload_tls().await.is_err());
    let (_b2, _) = connect_v5(v5_as(addr, d, &agent("b"), "b-work-agent-2-client")).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn changed_files_are_picked_up_without_a_signal() {
    let dir = pki();
    let d = dir.path();
    let mut tls = tls_config(d, ClientAuth::Required);
    tls.reload_interval = Some(Duration::from_millis(100));
    let config = BrokerConfig::with_tls(SocketAddr::from(([127, 0, 0, 1], 0)), tls);
    let broker = start_with(config, FleetAcl::for_source("workbus").unwrap()).await;
    let addr = broker.local_addr();
    certs::rotate_ca(d).unwrap();
    certs::finish_rotation(d).unwrap();
    certs::issue_server(d, &[], Validity::starting_now(certs::LEAF_VALIDITY)).unwrap();
    // Only the new CA is trusted now, on both sides: works once the watcher reloaded.
    within("the watcher reloads", async {
        loop {
            let mut c = spawn_v5(v5_as(addr, d, &agent("a"), "a-work-agent-client"));
            let ok = c
                .expect("CONNACK or error", |ev| match ev {
                    Ok(rumqttc::v5::Event::Incoming(p5::Packet::ConnAck(_))) => Some(true),
                    Err(_) => Some(false),
                    _ => None,
                })
                .await;
            if ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    broker.shutdown().await;
}

/// A reloaded credential file takes effect for new logins at once, and the password
/// sessions of identities it removed or re-keyed are closed (issue 12: the file was read
/// only at start). A bad file changes nothing.
#[tokio::test]
async fn a_reloaded_credential_file_withdraws_removed_and_changed_identities() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let line = |name: &str, password: &[u8]| {
        credentials::set_line("", name, &credentials::hash_password(password).unwrap())
    };
    let c_line = line("c", b"c-1");
    std::fs::write(
        &file,
        format!("{}{}{c_line}", line("a", b"a-1"), line("b", b"b-1")),
    )
    .unwrap();
    let creds = Credentials::load(&file).unwrap();
    let acl = FleetAcl::for_source("workbus")
        .unwrap()
        .with_credentials(creds.clone());
    let broker = start_with(local_config(), acl).await;
    let addr = broker.local_addr();
    let login = |who: &str, password: &str| {
        let mut o = v5_options(addr, &format!("{who}-work-agent-client"));
        o.set_credentials(who, password);
        o
    };
    let (mut a, _) = connect_v5(login("a", "a-1")).await;
    let (mut b, _) = connect_v5(login("b", "b-1")).await;
    let (mut c, _) = connect_v5(login("c", "c-1")).await;

    // A file that does not parse is refused and the old table stays in force.
    std::fs::write(&file, "a:not-a-hash\n").unwrap();
    assert!(creds.reload(&file).is_err());
    assert_eq!(broker.close_password_sessions(&[]), 0);
    let (mut a2, _) = connect_v5(login("a", "a-1")).await;

    // a removed, b re-keyed, c unchanged, d added.
    std::fs::write(
        &file,
        format!("{}{c_line}{}", line("b", b"b-2"), line("d", b"d-1")),
    )
    .unwrap();
    let reloaded = creds.reload(&file).unwrap();
    assert_eq!(reloaded.identities, 3);
    assert_eq!(reloaded.withdrawn, vec!["a".to_string(), "b".to_string()]);
    // The second a session (reconnected above with the same client id) replaced the
    // first; one a and one b session are open.
    assert_eq!(broker.close_password_sessions(&reloaded.withdrawn), 2);
    // MQTT 5 clients are told why: DISCONNECT 0x98 (rumqttc ends its loop with it).
    for client in [&mut a2, &mut b] {
        let why = client.expect_error("a withdrawn session closed").await;
        assert!(why.contains("AdministrativeAction"), "{why}");
    }
    // a's first session had already been taken over by its second.
    a.expect_error("a's first session ended").await;
    assert_eq!(broker.stats().revoked_disconnects, 2);

    let refused = |mut client: V5| async move { client.expect_error("refused").await };
    assert!(
        refused(spawn_v5(login("a", "a-1")))
            .await
            .contains("BadUserNamePassword")
    );
    assert!(
        refused(spawn_v5(login("b", "b-1")))
            .await
            .contains("BadUserNamePassword")
    );
    connect_v5(login("b", "b-2")).await;
    connect_v5(login("d", "d-1")).await;
    // c was not withdrawn: its session is still usable.
    assert_eq!(
        c.sub(&["sources/workbus/consumers/c/sourceevents"]).await,
        vec![p5::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    broker.shutdown().await;
}
