//! Issue 12, broker side, across crates: hub and agent converge through the embedded
//! broker with mutual TLS and topic ACLs on (their `workbus_transport` clients with
//! client certificates); the quickstart's broker, secured by default, lets in no client
//! without a certificate and confines a cluster's certificate to that cluster, while a
//! standalone agent given its files by `workbus-hub certs issue --out` connects; and
//! Mosquitto, configured as `deploy/mosquitto/` documents, confines agents the same way
//! (agent B cannot read A's specs or `#`, nor write A's statuses).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as p5;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use workbus_agent::store::FileStore;
use workbus_broker::certs::{self, Validity};
use workbus_broker::{Broker, BrokerConfig, FleetAcl, TlsConfig, external};
use workbus_hub::cli::certs as certs_cli;
use workbus_hub::quickstart::{QuickstartArgs, quickstart};
use workbus_hub::{BrokerSettings, Hub, HubConfig, StoreSettings};
use workbus_schemas::acl::{Identity, TopicAcl};
use workbus_schemas::client_id;
use workbus_schemas::topics::Topics;
use workbus_testkit::{MosquittoProcess, skip_without_mosquitto};
use workbus_tests::agents::{agent_config, start_agent};
use workbus_tests::hubs::{applied_at, put_work, register_cluster, wait_work};
use workbus_tests::secure::mosquitto_documented_config;
use workbus_transport::{TlsSettings, TransportConfig};

const WAIT: Duration = Duration::from_secs(20);

fn issue(dir: &Path, who: &Identity) -> certs::Issued {
    certs::issue_client(dir, who, Validity::starting_now(Duration::from_secs(3600))).expect("issue")
}

/// The transport's TLS settings for `who`: the CA bundle and its own certificate.
fn tls_settings(dir: &Path, who: &Identity) -> TlsSettings {
    let issued = issue(dir, who);
    TlsSettings::from_files(dir.join(certs::CA_BUNDLE), issued.cert, issued.key)
}

#[tokio::test]
async fn hub_and_agent_converge_over_mutual_tls_with_acls_on() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    certs::init(&pki, &[]).unwrap();
    let source = "secure-hub";
    let cluster = "edge-1";
    let broker = Broker::new(BrokerConfig::with_tls(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        TlsConfig::mutual(
            pki.join(certs::SERVER_CERT),
            pki.join(certs::SERVER_KEY),
            pki.join(certs::CA_BUNDLE),
        ),
    ))
    .with_authorizer(FleetAcl::for_source(source).unwrap())
    .start()
    .await
    .expect("broker starts");
    let port = broker.local_addr().port();

    let mut hub_transport =
        TransportConfig::new("127.0.0.1", port, client_id::source_client_id(source, "t1"));
    hub_transport.tls = Some(tls_settings(&pki, &Identity::Source(source.into())));
    let hub = Hub::start(HubConfig {
        store: StoreSettings::sqlite(dir.path().join("hub")),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: source.into(),
        broker: BrokerSettings::Transport(Box::new(hub_transport)),
        ..HubConfig::new()
    })
    .await
    .expect("hub starts");
    let mut changes = hub.watch();

    let mut config = agent_config("127.0.0.1", port, source, cluster);
    config.transport.tls = Some(tls_settings(&pki, &Identity::Agent(cluster.into())));
    let sim = Arc::new(workbus_agent::target::sim::SimulatedCluster::new(
        workbus_agent::target::sim::SimConfig {
            ready_after: Duration::from_millis(100),
            snapshot: None,
        },
    ));
    let agent = start_agent(
        config,
        sim.clone(),
        Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
    );
    assert_eq!(register_cluster(&hub, cluster).await, 201);
    let code = put_work(&hub, cluster, "app", "app-config", "v1").await;
    assert!(code == 200 || code == 201, "{code}");
    wait_work(
        &hub,
        &mut changes,
        cluster,
        "app",
        "applied over TLS",
        |w| applied_at(w, 1),
    )
    .await
    .expect("the work");
    let stats = broker.stats();
    assert_eq!(stats.connected_clients, 2);
    assert_eq!(
        (stats.denied_publishes, stats.denied_subscriptions),
        (0, 0),
        "the legitimate flows need nothing the ACL refuses"
    );
    agent.shutdown().await;
    hub.shutdown().await;
    broker.shutdown().await;
}

fn client_tls(pki: &Path, who: &Identity) -> rumqttc::Transport {
    client_tls_of(pki, &issue(pki, who))
}

/// TLS for a client presenting the certificate `issued`.
fn client_tls_of(pki: &Path, issued: &certs::Issued) -> rumqttc::Transport {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.join(certs::CA_BUNDLE)).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(&issued.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&issued.key).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
}

/// A connected v5 client and its event stream.
struct Mqtt {
    client: rumqttc::v5::AsyncClient,
    events: tokio::sync::mpsc::UnboundedReceiver<p5::Packet>,
    _pump: tokio::task::JoinHandle<()>,
}

impl Mqtt {
    async fn connect(addr: SocketAddr, pki: &Path, who: &Identity, id: &str) -> Mqtt {
        match Self::try_connect(addr, client_tls(pki, who), id).await {
            Ok(m) => m,
            Err(e) => panic!("{id} connects: {e}"),
        }
    }

    /// Connects over `transport`; the error says what came instead of a successful
    /// CONNACK.
    async fn try_connect(
        addr: SocketAddr,
        transport: rumqttc::Transport,
        id: &str,
    ) -> Result<Mqtt, String> {
        let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_transport(transport);
        let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(o, 16);
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            while let Ok(ev) = eventloop.poll().await {
                if let rumqttc::v5::Event::Incoming(p) = ev
                    && tx.send(p).is_err()
                {
                    break;
                }
            }
        });
        let first = tokio::time::timeout(WAIT, events.recv()).await;
        if !matches!(&first, Ok(Some(p5::Packet::ConnAck(a))) if a.code == p5::ConnectReturnCode::Success)
        {
            pump.abort();
            return Err(format!("{first:?}"));
        }
        Ok(Mqtt {
            client,
            events,
            _pump: pump,
        })
    }

    /// The next packet matching `f` within `limit`, if any.
    async fn next<T>(
        &mut self,
        limit: Duration,
        mut f: impl FnMut(p5::Packet) -> Option<T>,
    ) -> Option<T> {
        tokio::time::timeout(limit, async {
            while let Some(p) = self.events.recv().await {
                if let Some(t) = f(p) {
                    return Some(t);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    async fn sub(&mut self, filter: &str) -> p5::SubscribeReasonCode {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        self.next(WAIT, |p| match p {
            p5::Packet::SubAck(a) => a.return_codes.first().copied(),
            _ => None,
        })
        .await
        .expect("SUBACK")
    }
}

#[tokio::test]
async fn mosquitto_configured_as_documented_confines_agents() {
    if skip_without_mosquitto("security_broker::mosquitto_configured_as_documented_confines_agents")
    {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = pki_dir.path().to_path_buf();
    certs::init(&pki, &[]).unwrap();
    let acl = TopicAcl::new(&Topics::for_source("workbus").unwrap()).unwrap();
    let hub_id = Identity::Source("workbus".into());
    let rules = external::mosquitto_acl(&acl, std::slice::from_ref(&hub_id));
    // The committed example is what the generator prints.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto/workbus.acl");
    assert_eq!(std::fs::read_to_string(committed).unwrap(), rules);

    let pki_for_config = pki.clone();
    let mosquitto = MosquittoProcess::launch_with_config(move |dir, port| {
        let acl_file = dir.join("workbus.acl");
        std::fs::write(&acl_file, &rules).unwrap();
        mosquitto_documented_config(&pki_for_config, &acl_file, port)
    })
    .expect("Mosquitto starts with the documented config");
    let addr = mosquitto.addr();
    let spec_a = "sources/workbus/consumers/a/sourceevents";
    let status_a = "sources/workbus/consumers/a/agentevents";
    let ok = p5::SubscribeReasonCode::Success(QoS::AtLeastOnce);

    let mut hub = Mqtt::connect(addr, &pki, &hub_id, "workbus-hub-1").await;
    assert_eq!(hub.sub("sources/workbus/consumers/+/agentevents").await, ok);
    let mut a = Mqtt::connect(
        addr,
        &pki,
        &Identity::Agent("a".into()),
        "a-work-agent-client",
    )
    .await;
    assert_eq!(a.sub(spec_a).await, ok);
    let mut b = Mqtt::connect(
        addr,
        &pki,
        &Identity::Agent("b".into()),
        "b-work-agent-client",
    )
    .await;
    assert_eq!(b.sub("sources/workbus/consumers/b/sourceevents").await, ok);

    // B asks for A's specs and for everything. Mosquitto 2.0 grants such subscriptions
    // and applies `read` on delivery (2.1 refuses them with 0x87): either way B must
    // never receive a message of A's (checked at the end).
    for filter in [spec_a, "#", "sources/workbus/consumers/+/sourceevents"] {
        let code = b.sub(filter).await;
        assert!(
            code == p5::SubscribeReasonCode::NotAuthorized || code == ok,
            "{filter}: {code:?}"
        );
    }
    // B writes A's status: refused (PUBACK 0x87), and the hub never sees it.
    b.client
        .publish(status_a, QoS::AtLeastOnce, false, "forged")
        .await
        .unwrap();
    let reason = b
        .next(WAIT, |p| match p {
            p5::Packet::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await;
    assert_eq!(reason, Some(p5::PubAckReason::NotAuthorized));

    // The legitimate flows, and B hears nothing of A's spec.
    hub.client
        .publish(spec_a, QoS::AtLeastOnce, false, "spec")
        .await
        .unwrap();
    let got = a
        .next(WAIT, |p| match p {
            p5::Packet::Publish(p) => Some(p.payload),
            _ => None,
        })
        .await;
    assert_eq!(got.as_deref(), Some(&b"spec"[..]));
    a.client
        .publish(status_a, QoS::AtLeastOnce, false, "status")
        .await
        .unwrap();
    let got = hub
        .next(WAIT, |p| match p {
            p5::Packet::Publish(p) => Some(p.payload),
            _ => None,
        })
        .await;
    assert_eq!(
        got.as_deref(),
        Some(&b"status"[..]),
        "the first status is A's own"
    );
    let leaked = b
        .next(Duration::from_millis(300), |p| match p {
            p5::Packet::Publish(p) => Some(p.topic),
            _ => None,
        })
        .await;
    assert_eq!(leaked, None, "B received another cluster's message");
}

#[tokio::test]
async fn mosquitto_configured_as_documented_refuses_a_revoked_certificate() {
    if skip_without_mosquitto(
        "security_broker::mosquitto_configured_as_documented_refuses_a_revoked_certificate",
    ) {
        return;
    }
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = pki_dir.path().to_path_buf();
    certs::init(&pki, &[]).unwrap();
    let acl = TopicAcl::new(&Topics::for_source("workbus").unwrap()).unwrap();
    let rules = external::mosquitto_acl(&acl, &[Identity::Source("workbus".into())]);
    let pki_for_config = pki.clone();
    let mosquitto = MosquittoProcess::launch_with_config(move |dir, port| {
        let acl_file = dir.join("workbus.acl");
        std::fs::write(&acl_file, &rules).unwrap();
        mosquitto_documented_config(&pki_for_config, &acl_file, port)
    })
    .expect("Mosquitto starts with the documented config, crlfile included");
    let addr = mosquitto.addr();
    let (a, b) = (Identity::Agent("a".into()), Identity::Agent("b".into()));
    let a_cert = issue(&pki, &a);
    drop(Mqtt::connect(addr, &pki, &a, "a-work-agent-client").await);

    assert_eq!(certs::revoke(&pki, &a_cert.cert).unwrap(), 1);
    let pid = mosquitto.pid().expect("running") as libc::pid_t;
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    // Mosquitto re-reads the list on SIGHUP; the revoked certificate is refused from
    // then on (bounded retries while the signal is handled), another one is not.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Mqtt::try_connect(addr, client_tls_of(&pki, &a_cert), "a-work-agent-client").await {
            Err(_) => break,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Ok(_) => panic!("Mosquitto still accepts the revoked certificate"),
        }
    }
    Mqtt::connect(addr, &pki, &b, "b-work-agent-client").await;
    // A new certificate for A (new serial) is accepted.
    Mqtt::connect(addr, &pki, &a, "a-work-agent-client").await;
}

/// TLS that trusts the CA of `pki` but presents no client certificate.
fn tls_without_certificate(pki: &Path) -> rumqttc::Transport {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.join(certs::CA_BUNDLE)).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstarts_broker_needs_a_certificate_and_confines_each_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let args = QuickstartArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        broker_listen: Some(addr),
        insecure_broker: false,
        data_dir: dir.path().to_owned(),
        clusters: 1,
        source_id: "workbus".into(),
        exit_when_ready: false,
    };
    let running = tokio::spawn(quickstart(args));
    // The hub's certificate is made once the broker listens.
    let pki = dir.path().join("pki");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pki.join("source.workbus.pem").exists() {
        assert!(
            tokio::time::Instant::now() < deadline && !running.is_finished(),
            "the quickstart's broker did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // No certificate: neither plaintext MQTT nor TLS without a client certificate.
    let plain = Mqtt::try_connect(
        addr,
        rumqttc::Transport::tcp(),
        "edge-1-work-agent-x-client",
    )
    .await;
    assert!(plain.is_err(), "plaintext MQTT connected");
    let anonymous = Mqtt::try_connect(
        addr,
        tls_without_certificate(&pki),
        "edge-1-work-agent-x-client",
    )
    .await;
    assert!(
        anonymous.is_err(),
        "TLS without a client certificate connected"
    );

    // A cluster's certificate (edge-3, not one of the quickstart's clusters).
    let edge3 = Identity::Agent("edge-3".into());
    let taken = Mqtt::try_connect(addr, client_tls(&pki, &edge3), "edge-1-work-agent-client").await;
    assert!(taken.is_err(), "edge-3 took over edge-1's client id");
    let mut c = Mqtt::connect(addr, &pki, &edge3, "edge-3-work-agent-client").await;
    let ok = p5::SubscribeReasonCode::Success(QoS::AtLeastOnce);
    assert_eq!(
        c.sub("sources/workbus/consumers/edge-3/sourceevents").await,
        ok
    );
    for filter in [
        "sources/workbus/consumers/edge-1/sourceevents",
        "sources/workbus/consumers/+/sourceevents",
        "#",
    ] {
        assert_eq!(
            c.sub(filter).await,
            p5::SubscribeReasonCode::NotAuthorized,
            "{filter}"
        );
    }
    c.client
        .publish(
            "sources/workbus/consumers/edge-1/agentevents",
            QoS::AtLeastOnce,
            false,
            "forged",
        )
        .await
        .unwrap();
    let reason = c
        .next(WAIT, |p| match p {
            p5::Packet::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await;
    assert_eq!(reason, Some(p5::PubAckReason::NotAuthorized));

    // The README's way in for a standalone agent: `workbus-hub certs issue --out DIR`,
    // then `workbus-agent --workload-source-config DIR/mqtt.yaml`.
    let out = dir.path().join("agent-edge-9-tls");
    certs_cli::run(&certs_cli::CertsCommand::Issue {
        data_dir: dir.path().to_owned(),
        cluster: "edge-9".into(),
        out: Some(out.clone()),
        days: 1,
        source_id: "workbus".into(),
        broker: addr.to_string(),
    })
    .expect("certs issue");
    let flags = workbus_agent::cli::Args::try_parse_from([
        "workbus-agent".to_string(),
        "--spoke-cluster-name=edge-9".to_string(),
        format!(
            "--workload-source-config={}",
            out.join(certs_cli::AGENT_MQTT_CONFIG).display()
        ),
    ])
    .expect("agent flags");
    let sim = Arc::new(workbus_agent::target::sim::SimulatedCluster::new(
        workbus_agent::target::sim::SimConfig::default(),
    ));
    let agent = start_agent(
        flags.agent_config().expect("the agent reads mqtt.yaml"),
        sim,
        Arc::new(FileStore::open(&dir.path().join("agent-edge-9")).unwrap()),
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !agent
        .transport_stats()
        .connected
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the standalone agent did not connect with its issued certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.shutdown().await;
    running.abort();
    let _ = running.await;
}
