//! The brokers the suites run against, each a test's own and restartable on its port
//! for fault tests: the embedded `workbus-broker` (started in-process on a free port) and
//! a private Mosquitto (`workbus_testkit::MosquittoProcess`, its own process on a free
//! port); the embedded one also secured ([`crate::secure`]: mutual TLS, fleet ACL,
//! signed spec events). Hubs and agents of a suite are made through the broker
//! ([`TestBroker::start_hub`], [`TestBroker::agent_config`]) so that one suite runs
//! unchanged in plaintext and secured.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use workbus_agent::config::AgentConfig;
use workbus_broker::{Broker, BrokerConfig, BrokerHandle};
use workbus_hub::{BrokerSettings, HubHandle};
use workbus_testkit::MosquittoProcess;

use crate::secure::Secure;

/// A broker under test.
pub enum TestBroker {
    /// Our embedded broker, in this process.
    Embedded {
        /// Its running instance (`None` while stopped by a fault test).
        handle: Option<BrokerHandle>,
        /// Where it listens (kept across restarts).
        addr: SocketAddr,
        /// Secured mode: TLS listener only, fleet ACL on.
        secure: Option<Arc<Secure>>,
    },
    /// A private Mosquitto of this test (`workbus-testkit`).
    Mosquitto(MosquittoProcess),
    /// A private Mosquitto configured as `deploy/mosquitto/` documents (mutual TLS,
    /// `use_identity_as_username`, the generated `acl_file`) for a secured fleet.
    SecuredMosquitto(MosquittoProcess, Arc<Secure>),
}

impl TestBroker {
    /// Starts an embedded broker on a free loopback port.
    pub async fn embedded() -> TestBroker {
        let handle = Broker::new(BrokerConfig::with_listen("127.0.0.1:0".parse().unwrap()))
            .start()
            .await
            .expect("embedded broker starts");
        let addr = handle.local_addr();
        TestBroker::Embedded {
            handle: Some(handle),
            addr,
            secure: None,
        }
    }

    /// Starts an embedded broker on a free loopback port in secured mode: mutual TLS
    /// with a new CA, the fleet ACL for a new source id (see [`TestBroker::source_id`]).
    pub async fn embedded_secured() -> TestBroker {
        let secure = Arc::new(Secure::new(&crate::unique("hub")));
        let handle = start_secured(&secure, "127.0.0.1:0".parse().unwrap()).await;
        let addr = handle.local_addr();
        TestBroker::Embedded {
            handle: Some(handle),
            addr,
            secure: Some(secure),
        }
    }

    /// [`TestBroker::embedded_secured`] on a private Mosquitto configured as
    /// `deploy/mosquitto/` documents, or `None` after printing that `test` is skipped
    /// when no `mosquitto` executable is installed.
    pub async fn mosquitto_secured_unless_missing(test: &str) -> Option<TestBroker> {
        if workbus_testkit::skip_without_mosquitto(test) {
            return None;
        }
        let secure = Arc::new(Secure::new(&crate::unique("hub")));
        let broker = blocking(|| secure.launch_mosquitto())
            .unwrap_or_else(|e| panic!("Mosquitto starts with the documented config: {e}"));
        Some(TestBroker::SecuredMosquitto(broker, secure))
    }

    /// The secured mode's certificates and source, if this broker is secured.
    pub fn secure(&self) -> Option<&Secure> {
        match self {
            TestBroker::Embedded { secure, .. } => secure.as_deref(),
            TestBroker::SecuredMosquitto(_, secure) => Some(secure),
            TestBroker::Mosquitto(_) => None,
        }
    }

    /// The source id for a test's hub: a new one, or the one a secured broker's ACL
    /// serves.
    pub fn source_id(&self) -> String {
        match self.secure() {
            Some(s) => s.source_id().to_owned(),
            None => crate::unique("hub"),
        }
    }

    /// Starts a hub on this broker (see [`crate::hubs::start_hub`]), with its
    /// certificate when secured.
    pub async fn start_hub(&self, data_dir: &Path, source_id: &str) -> HubHandle {
        self.start_hub_at(data_dir, source_id, self.host(), self.port())
            .await
    }

    /// [`TestBroker::start_hub`] on any store (a PostgreSQL database:
    /// `StoreSettings::postgres`; the hub's own files in its `data_dir`).
    pub async fn start_hub_on(
        &self,
        store: workbus_hub::StoreSettings,
        source_id: &str,
    ) -> HubHandle {
        crate::hubs::start_hub_on(
            store,
            source_id,
            self.hub_broker(source_id, self.host(), self.port()),
        )
        .await
    }

    /// [`TestBroker::start_hub`] with the broker address replaced by `host:port` (a hub
    /// that cannot reach its broker).
    pub async fn start_hub_at(
        &self,
        data_dir: &Path,
        source_id: &str,
        host: &str,
        port: u16,
    ) -> HubHandle {
        let broker = self.hub_broker(source_id, host, port);
        crate::hubs::start_hub_with(data_dir, source_id, broker).await
    }

    /// The broker settings of a hub of `source_id` reaching this broker at `host:port`
    /// (with its certificate when secured).
    fn hub_broker(&self, source_id: &str, host: &str, port: u16) -> BrokerSettings {
        match self.secure() {
            Some(s) => {
                assert_eq!(
                    s.source_id(),
                    source_id,
                    "a secured broker serves one source"
                );
                BrokerSettings::Transport(Box::new(s.hub_transport(host, port)))
            }
            None => BrokerSettings::Address {
                host: host.to_owned(),
                port,
            },
        }
    }

    /// The config of an agent of `cluster` on this broker (see
    /// [`crate::agents::agent_config`]); when secured, with its certificate and the spec
    /// signing key of the hub whose data directory is `hub_data_dir`.
    pub fn agent_config(&self, source_id: &str, cluster: &str, hub_data_dir: &Path) -> AgentConfig {
        let config = crate::agents::agent_config(self.host(), self.port(), source_id, cluster);
        match self.secure() {
            Some(s) => s.secure_agent(config, hub_data_dir),
            None => config,
        }
    }

    /// Starts a private Mosquitto on a free loopback port. Panics when it cannot start
    /// (see [`TestBroker::mosquitto_unless_missing`] for tests that skip without it).
    pub async fn mosquitto() -> TestBroker {
        let broker = blocking(MosquittoProcess::launch).unwrap_or_else(|e| panic!("{e}"));
        TestBroker::Mosquitto(broker)
    }

    /// [`TestBroker::mosquitto`], or `None` after printing that `test` is skipped when no
    /// `mosquitto` executable is installed (`workbus_testkit::skip_without_mosquitto`).
    pub async fn mosquitto_unless_missing(test: &str) -> Option<TestBroker> {
        if workbus_testkit::skip_without_mosquitto(test) {
            return None;
        }
        Some(TestBroker::mosquitto().await)
    }

    /// Host to connect to.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// Port to connect to (the same across restarts).
    pub fn port(&self) -> u16 {
        match self {
            TestBroker::Embedded { addr, .. } => addr.port(),
            TestBroker::Mosquitto(m) | TestBroker::SecuredMosquitto(m, _) => m.port(),
        }
    }

    /// Stops the broker (every client is disconnected); [`TestBroker::resume`] starts it
    /// again on the same port.
    pub async fn halt(&mut self) {
        match self {
            TestBroker::Embedded { handle, .. } => {
                if let Some(h) = handle.take() {
                    h.shutdown().await;
                }
            }
            TestBroker::Mosquitto(m) | TestBroker::SecuredMosquitto(m, _) => blocking(|| m.stop()),
        }
    }

    /// Starts the broker again on the same port.
    pub async fn resume(&mut self) {
        match self {
            TestBroker::Embedded {
                handle,
                addr,
                secure,
            } => {
                if handle.is_none() {
                    *handle = Some(match secure {
                        Some(s) => start_secured(s, *addr).await,
                        None => Broker::new(BrokerConfig::with_listen(*addr))
                            .start()
                            .await
                            .expect("embedded broker restarts on its port"),
                    });
                }
            }
            TestBroker::Mosquitto(m) | TestBroker::SecuredMosquitto(m, _) => {
                blocking(|| m.start()).unwrap_or_else(|e| panic!("Mosquitto restarts: {e}"))
            }
        }
    }

    /// Cuts (without DISCONNECT, like a network failure) every client whose id satisfies
    /// `pred`; returns how many. Only the embedded broker can; Mosquitto returns 0.
    pub fn drop_clients(&self, pred: impl Fn(&str) -> bool) -> usize {
        match self {
            TestBroker::Embedded {
                handle: Some(h), ..
            } => h.drop_clients(pred),
            _ => 0,
        }
    }

    /// Re-reads the TLS files of a running secured embedded broker (new handshakes use
    /// them; connected clients stay). Panics on any other broker or unusable files.
    pub async fn reload_tls(&self) -> workbus_broker::Reloaded {
        match self {
            TestBroker::Embedded {
                handle: Some(h),
                secure: Some(_),
                ..
            } => h.reload_tls().await.expect("usable TLS files"),
            _ => panic!("only a running secured embedded broker reloads TLS files"),
        }
    }

    /// Stops the broker at the end of a test.
    pub async fn stop(mut self) {
        self.halt().await;
    }
}

/// The embedded broker of `secure` on `addr`: TLS only, fleet ACL.
async fn start_secured(secure: &Secure, addr: SocketAddr) -> BrokerHandle {
    Broker::new(BrokerConfig::with_tls(addr, secure.broker_tls()))
        .with_authorizer(secure.acl())
        .start()
        .await
        .expect("secured embedded broker starts")
}

/// Runs a short blocking step (starting or stopping a Mosquitto process) without
/// stalling the runtime's other tasks where the runtime allows it.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
