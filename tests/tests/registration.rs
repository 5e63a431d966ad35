//! Cluster registration end to end (issue 13) with the real parts: the hub's embedded
//! broker (mutual TLS, the hub's authorizer with bootstrap tokens, publisher stamps),
//! the hub (SQLite, CSR signing with its CA, health), and our agent with its
//! registration client. An agent with a bootstrap token joins, waits for the operator,
//! is accepted, receives its certificate, reconnects with it, becomes Available and
//! reports its claims; a connection that dies without DISCONNECT makes the cluster
//! Unknown through the agent's Will, and the reconnected agent makes it Available again
//! with one renewal; a certificate due for rotation is replaced while connected.

use std::sync::Arc;
use std::time::Duration;

use workbus_agent::config::AgentConfig;
use workbus_agent::registration::identity_dir::IdentityDir;
use workbus_agent::registration::{self, RegistrationConfig};
use workbus_agent::runtime;
use workbus_agent::store::MemoryStore;
use workbus_agent::target::ClusterInfo;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_hub::api::registration::{NewBootstrapToken, issue_bootstrap};
use workbus_hub::config::{HubConfig, RegistrationSettings, StoreSettings};
use workbus_hub::embedded_broker::{self, BrokerSecurity, EmbeddedBroker};
use workbus_hub::pki::Pki;
use workbus_hub::{Hub, HubHandle};
use workbus_schemas::registration::ManagedCluster;
use workbus_schemas::registration::names::{TAINT_UNREACHABLE, condition};
use workbus_schemas::topics::Topics;
use workbus_testkit::fault_proxy::FaultProxy;
use workbus_testkit::unique;
use workbus_transport::{PemSource, TlsSettings, TransportConfig};

const SOURCE: &str = "workbus";
const WAIT: Duration = Duration::from_secs(20);

struct Fleet {
    dir: tempfile::TempDir,
    broker: EmbeddedBroker,
    hub: HubHandle,
    pki: Pki,
}

async fn fleet(cert_validity: Option<Duration>) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::ensure(dir.path(), &[]).unwrap();
    let security = BrokerSecurity::MutualTls {
        pki: pki.clone(),
        source_id: SOURCE.into(),
    };
    let (broker, _) = embedded_broker::start("127.0.0.1:0".parse().unwrap(), &security)
        .await
        .unwrap();
    let mut registration = RegistrationSettings {
        pki: Some(pki.clone()),
        disconnect: Some(broker.disconnect()),
        trust_publisher_stamps: true,
        ..RegistrationSettings::default()
    };
    if let Some(v) = cert_validity {
        registration.cluster_cert_validity = v;
    }
    let hub = Hub::start(HubConfig {
        store: StoreSettings::sqlite(dir.path().join("hub")),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: SOURCE.into(),
        broker: broker.hub_settings().unwrap(),
        registration,
        ..HubConfig::new()
    })
    .await
    .unwrap();
    broker.attach_hub(&hub);
    assert!(hub.wait_subscribed(WAIT).await);
    Fleet {
        dir,
        broker,
        hub,
        pki,
    }
}

impl Fleet {
    async fn bootstrap_token(&self, auto_accept: bool) -> String {
        let request = NewBootstrapToken {
            name: Some(unique("join")),
            ttl_seconds: Some(600),
            auto_accept,
        };
        let (write, secret) = issue_bootstrap(request, "test", chrono::Utc::now()).unwrap();
        self.hub.store().write(write).await.unwrap();
        secret
    }

    /// A registering agent of `cluster` reaching the broker at `port`, trusting the hub
    /// CA, with no certificate of its own yet.
    fn agent_config(&self, cluster: &str, port: u16, token: &str) -> AgentConfig {
        let mut t = TransportConfig::new("127.0.0.1", port, "");
        t.tls = Some(TlsSettings {
            ca_pem: Some(PemSource::File(self.pki.ca_bundle())),
            ..TlsSettings::default()
        });
        t.keep_alive = Duration::from_secs(5);
        t.reconnect.min_delay = Duration::from_millis(50);
        t.reconnect.max_delay = Duration::from_millis(500);
        let topics = Topics::for_agent(SOURCE, cluster).unwrap();
        let mut config = AgentConfig::new(cluster, None, topics, t).unwrap();
        let mut r = RegistrationConfig::new(IdentityDir::new(
            self.dir
                .path()
                .join("agents")
                .join(cluster)
                .join("identity"),
        ));
        r.bootstrap_token = Some(token.to_string());
        r.claims = vec![("region".into(), "eu-1".into())];
        r.join_resend = Duration::from_millis(500);
        config.registration = Some(r);
        config
    }

    async fn cluster(&self, name: &str) -> Option<ManagedCluster> {
        let name = name.to_string();
        self.hub
            .store()
            .run(move |s| s.get_cluster(&name))
            .await
            .unwrap()
            .map(|c| c.managed_cluster())
    }

    /// Polls the hub's record of `name` until `check` holds (or fails after [`WAIT`]).
    async fn wait_cluster(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ManagedCluster) -> bool,
    ) -> ManagedCluster {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(c) = self.cluster(name).await
                && check(&c)
            {
                return c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.cluster(name).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.hub.shutdown().await;
        self.broker.shutdown().await;
    }
}

fn available(c: &ManagedCluster) -> Option<&str> {
    c.condition_status(condition::AVAILABLE)
}

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(
        SimulatedCluster::new(SimConfig::default())
            .with_cluster_info(ClusterInfo::simulated("sim-id-1")),
    )
}

#[tokio::test]
async fn an_agent_joins_is_accepted_becomes_available_and_its_will_reports_it_gone() {
    let f = fleet(None).await;
    let proxy = FaultProxy::start(f.broker.reach()).await;
    let token = f.bootstrap_token(false).await;
    let cluster = unique("edge");
    let mut config = f.agent_config(&cluster, proxy.addr().port(), &token);

    // Join: the hub records the cluster, not accepted, until the operator accepts it.
    let joining = tokio::spawn(async move {
        let identity = registration::prepare(&mut config).await;
        (config, identity)
    });
    let pending = f.wait_cluster(&cluster, "the join request", |_| true).await;
    assert!(!pending.spec.hub_accepts_client && !pending.is_accepted());
    assert!(!joining.is_finished(), "no identity before acceptance");
    f.hub.registration().accept(&cluster).await.unwrap();
    let (config, identity) = tokio::time::timeout(WAIT, joining).await.unwrap().unwrap();
    let identity = identity.unwrap().expect("an identity");
    assert!(identity.not_after > std::time::SystemTime::now());

    // The agent reconnects with its own certificate, joins, reports, renews.
    let agent = runtime::start(config, sim(), Arc::new(MemoryStore::default())).unwrap();
    let up = f
        .wait_cluster(&cluster, "Joined and Available", |c| {
            c.is_joined() && available(c) == Some("True")
        })
        .await;
    let claims: Vec<_> = up
        .status
        .cluster_claims
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_str()))
        .collect();
    assert!(claims.contains(&("id.k8s.io", "sim-id-1")), "{claims:?}");
    assert_eq!(
        claims.last(),
        Some(&("region", "eu-1")),
        "custom claims after reserved ones"
    );
    assert!(up.status.capacity.contains_key("cpu"));
    assert!(!up.status.version.kubernetes.is_empty());
    assert!(!up.has_taint(TAINT_UNREACHABLE));

    // The connection dies without DISCONNECT: the broker publishes the agent's Will and
    // the hub marks the cluster Unknown at once (long before 2 × the 60 s lease).
    let cut_at = std::time::Instant::now();
    proxy.cut();
    let gone = f
        .wait_cluster(&cluster, "Unknown after the Will", |c| {
            available(c) == Some("Unknown")
        })
        .await;
    assert!(
        cut_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        cut_at.elapsed()
    );
    assert!(gone.has_taint(TAINT_UNREACHABLE));
    // The agent reconnects (through the proxy) and one renewal brings it back.
    f.wait_cluster(&cluster, "Available again", |c| {
        available(c) == Some("True") && !c.has_taint(TAINT_UNREACHABLE)
    })
    .await;

    // A clean shutdown sends DISCONNECT: no Will, the cluster stays Available until its
    // lease runs out.
    agent.shutdown().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        f.cluster(&cluster).await.as_ref().and_then(available),
        Some("True")
    );
    f.stop().await;
}

#[tokio::test]
async fn a_certificate_due_for_rotation_is_replaced_while_connected() {
    // A 10 s certificate (backdated an hour by the hub, as every certificate it signs)
    // has less than 20 % of its lifetime left from the start: the agent rotates it at
    // once over its own identity, and then not again for a minute.
    let f = fleet(Some(Duration::from_secs(10))).await;
    let token = f.bootstrap_token(true).await;
    let cluster = unique("edge");
    let mut config = f.agent_config(&cluster, f.broker.reach().port(), &token);
    let first = tokio::time::timeout(WAIT, registration::prepare(&mut config))
        .await
        .unwrap()
        .unwrap()
        .expect("joined with auto-accept");
    let dir = config.registration.as_ref().unwrap().identity_dir.clone();
    let agent = runtime::start(config, sim(), Arc::new(MemoryStore::default())).unwrap();

    let deadline = tokio::time::Instant::now() + WAIT;
    let rotated = loop {
        if let Some(id) = dir.load(&cluster, std::time::SystemTime::now()).unwrap()
            && id.serial != first.serial
        {
            break id;
        }
        assert!(tokio::time::Instant::now() < deadline, "no rotation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(rotated.not_after >= first.not_after);
    // The agent reconnected with the new certificate and the cluster stays Available.
    let reconnected = tokio::time::Instant::now() + WAIT;
    while agent
        .transport_stats()
        .reconnects
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(tokio::time::Instant::now() < reconnected, "no reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f.wait_cluster(&cluster, "Available with the new certificate", |c| {
        available(c) == Some("True")
    })
    .await;
    // Not rotated again right away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = dir
        .load(&cluster, std::time::SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(now.serial, rotated.serial);
    agent.shutdown().await;
    f.stop().await;
}
