//! The brokers the suites run against, each a test's own and restartable on its port
//! for fault tests: the embedded `workbus-broker` (started in-process on a free port) and
//! a private Mosquitto (`workbus_testkit::MosquittoProcess`, its own process on a free
//! port).

use std::net::SocketAddr;

use workbus_broker::{Broker, BrokerConfig, BrokerHandle};
use workbus_testkit::MosquittoProcess;

/// A broker under test.
pub enum TestBroker {
    /// Our embedded broker, in this process.
    Embedded {
        /// Its running instance (`None` while stopped by a fault test).
        handle: Option<BrokerHandle>,
        /// Where it listens (kept across restarts).
        addr: SocketAddr,
    },
    /// A private Mosquitto of this test (`workbus-testkit`).
    Mosquitto(MosquittoProcess),
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
            TestBroker::Mosquitto(m) => m.port(),
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
            TestBroker::Mosquitto(m) => blocking(|| m.stop()),
        }
    }

    /// Starts the broker again on the same port.
    pub async fn resume(&mut self) {
        match self {
            TestBroker::Embedded { handle, addr } => {
                if handle.is_none() {
                    *handle = Some(
                        Broker::new(BrokerConfig::with_listen(*addr))
                            .start()
                            .await
                            .expect("embedded broker restarts on its port"),
                    );
                }
            }
            TestBroker::Mosquitto(m) => {
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

    /// Stops the broker at the end of a test.
    pub async fn stop(mut self) {
        self.halt().await;
    }
}

/// Runs a short blocking step (starting or stopping a Mosquitto process) without
/// stalling the runtime's other tasks where the runtime allows it.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
