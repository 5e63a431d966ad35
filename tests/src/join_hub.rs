//! A hub that clusters join over the bus (issue 13), for the registration tests and the
//! join benchmarks: the hub with its CA (SQLite in a temporary directory) on either the
//! hub's embedded broker as `serve` runs it (mutual TLS, bootstrap tokens checked by its
//! authorizer, publisher stamps trusted) or a private Mosquitto configured as
//! `deploy/mosquitto/` documents (certificates only: no bootstrap logins, so clusters
//! are joined on the hub's store with a pre-issued certificate, [`JoinHub::pre_join`]).
//! Waits follow the hub's cluster notifications.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use workbus_agent::registration::identity_dir::IdentityDir;
use workbus_hub::api::registration::{NewBootstrapToken, issue_bootstrap};
use workbus_hub::config::{HubConfig, RegistrationSettings, StoreSettings};
use workbus_hub::embedded_broker::{self, BrokerSecurity, EmbeddedBroker};
use workbus_hub::pki::Pki;
use workbus_hub::store::registration_writes::JoinCluster;
use workbus_hub::{BrokerSettings, Hub, HubHandle};
use workbus_schemas::acl::Identity;
use workbus_schemas::registration::ManagedCluster;
use workbus_testkit::MosquittoProcess;

use crate::secure::Secure;

/// The broker of a [`JoinHub`].
pub enum JoinBroker {
    /// The hub's embedded broker (mutual TLS, bootstrap tokens, publisher stamps).
    Embedded(EmbeddedBroker),
    /// Mosquitto as `deploy/mosquitto/` documents (certificates only, the ACL file).
    Mosquitto(MosquittoProcess),
}

/// A hub that clusters join, with its broker.
pub struct JoinHub {
    /// The hub's data (`hub/`), its CA (`pki/`), and room for the tests' agents.
    pub dir: tempfile::TempDir,
    /// The broker.
    pub broker: JoinBroker,
    /// The hub.
    pub hub: HubHandle,
    /// The hub's CA.
    pub pki: Pki,
}

impl JoinHub {
    /// A hub of `source` on its embedded broker, secured as `serve` runs it; clusters
    /// get certificates valid for `cert_validity` (default: the hub's).
    pub async fn embedded(source: &str, cert_validity: Option<Duration>) -> JoinHub {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::ensure(dir.path(), &[]).expect("hub CA");
        let security = BrokerSecurity::MutualTls {
            pki: pki.clone(),
            source_id: source.into(),
        };
        let (broker, _) = embedded_broker::start("127.0.0.1:0".parse().unwrap(), &security)
            .await
            .expect("embedded broker starts");
        let mut registration = RegistrationSettings {
            pki: Some(pki.clone()),
            disconnect: Some(broker.disconnect()),
            trust_publisher_stamps: true,
            ..RegistrationSettings::default()
        };
        if let Some(v) = cert_validity {
            registration.cluster_cert_validity = v;
        }
        let settings = broker.hub_settings().expect("hub certificate");
        let hub = start(dir.path(), source, settings, registration).await;
        broker.attach_hub(&hub);
        JoinHub {
            dir,
            broker: JoinBroker::Embedded(broker),
            hub,
            pki,
        }
    }

    /// A hub of `source` on a private Mosquitto configured as `deploy/mosquitto/`
    /// documents (the hub connects with its source certificate; no publisher stamps).
    pub async fn on_mosquitto(source: &str) -> JoinHub {
        let dir = tempfile::tempdir().expect("temp dir");
        let secure = Secure::in_dir(dir.path(), source);
        let mosquitto = crate::brokers::blocking(|| secure.launch_mosquitto())
            .expect("Mosquitto starts with the documented config");
        let pki = secure.pki().clone();
        let settings = BrokerSettings::Transport(Box::new(
            secure.hub_transport("127.0.0.1", mosquitto.port()),
        ));
        let registration = RegistrationSettings {
            pki: Some(pki.clone()),
            ..RegistrationSettings::default()
        };
        let hub = start(dir.path(), source, settings, registration).await;
        JoinHub {
            dir,
            broker: JoinBroker::Mosquitto(mosquitto),
            hub,
            pki,
        }
    }

    /// Where agents reach the broker.
    pub fn reach(&self) -> SocketAddr {
        match &self.broker {
            JoinBroker::Embedded(b) => b.reach(),
            JoinBroker::Mosquitto(m) => SocketAddr::from(([127, 0, 0, 1], m.port())),
        }
    }

    /// A new bootstrap token (10 minutes), auto-accepting or not; returns its secret.
    pub async fn bootstrap_token(&self, auto_accept: bool) -> String {
        let request = NewBootstrapToken {
            name: Some(crate::unique("join")),
            ttl_seconds: Some(600),
            auto_accept,
        };
        let (write, secret) =
            issue_bootstrap(request, "test", chrono::Utc::now()).expect("bootstrap token");
        self.hub
            .store()
            .write(write)
            .await
            .expect("bootstrap token stored");
        secret
    }

    /// The hub's record of cluster `name`.
    pub async fn cluster(&self, name: &str) -> Option<ManagedCluster> {
        let name = name.to_string();
        self.hub
            .store()
            .run(move |s| s.get_cluster(&name))
            .await
            .expect("store readable")
            .map(|c| c.managed_cluster())
    }

    /// Waits, on the hub's cluster notifications, until `check` holds for `name`
    /// (checked first and after each notification); panics after `within`. Returns the
    /// cluster and when the check was seen to hold.
    pub async fn await_cluster(
        &self,
        name: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&ManagedCluster) -> bool,
    ) -> (ManagedCluster, Instant) {
        let mut changes = self.hub.registration().clusters.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(c) = self.cluster(name).await
                && check(&c)
            {
                return (c, Instant::now());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // A lagged or closed channel still means "look again": the store decides.
            if tokio::time::timeout(left, changes.recv()).await.is_err() {
                panic!(
                    "timed out after {within:?} waiting for {what}: {:?}",
                    self.cluster(name).await
                );
            }
        }
    }

    /// For a broker that authenticates certificates only: issues `cluster`'s
    /// certificate into `identity` (an agent's identity dir) and joins and accepts the
    /// cluster on the hub, as the join flow would have.
    pub async fn pre_join(&self, cluster: &str, identity: &IdentityDir) {
        let issued = self
            .pki
            .issue(
                &Identity::Agent(cluster.into()),
                Duration::from_secs(86_400),
            )
            .expect("cluster certificate");
        let read = |p: &Path| std::fs::read_to_string(p).expect("PEM file");
        identity
            .store(
                &read(&issued.key),
                &read(&issued.cert),
                Some(&read(&self.pki.ca_bundle())),
            )
            .expect("identity stored");
        let ctx = self.hub.registration();
        self.hub
            .store()
            .write(JoinCluster {
                request: ManagedCluster::named(cluster),
                uid: uuid::Uuid::new_v4().to_string(),
                lease_uid: uuid::Uuid::new_v4().to_string(),
                auto_accept: false,
                join_token: None,
                now: chrono::Utc::now(),
                echo: ctx.echo.clone(),
            })
            .await
            .expect("cluster joined");
        ctx.accept(cluster).await.expect("cluster accepted");
    }

    /// Stops hub and broker.
    pub async fn stop(self) {
        self.hub.shutdown().await;
        match self.broker {
            JoinBroker::Embedded(b) => b.shutdown().await,
            JoinBroker::Mosquitto(mut m) => crate::brokers::blocking(|| m.stop()),
        }
    }
}

/// The hub of a [`JoinHub`], subscribed.
async fn start(
    dir: &Path,
    source: &str,
    broker: BrokerSettings,
    registration: RegistrationSettings,
) -> HubHandle {
    let hub = Hub::start(HubConfig {
        store: StoreSettings::sqlite(dir.join("hub")),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: source.into(),
        broker,
        registration,
        ..HubConfig::new()
    })
    .await
    .expect("hub starts");
    assert!(
        hub.wait_subscribed(crate::WAIT).await,
        "hub did not subscribe"
    );
    hub
}
