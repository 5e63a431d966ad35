//! The brokers the suites run against: the embedded `workbus-broker` (started in-process
//! on a free port, restartable on the same port for fault tests) and Mosquitto.

use std::net::SocketAddr;

use workbus_broker::{Broker, BrokerConfig, BrokerHandle};

/// A broker under test.
pub enum TestBroker {
    /// Our embedded broker, in this process.
    Embedded {
        /// Its running instance (`None` while stopped by a fault test).
        handle: Option<BrokerHandle>,
        /// Where it listens (kept across restarts).
        addr: SocketAddr,
    },
    /// Mosquitto: this process's private one (`workbus-testkit`), started on first use.
    Mosquitto,
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

    /// Mosquitto as installed and started by `.ci/run`.
    pub fn mosquitto() -> TestBroker {
        TestBroker::Mosquitto
    }

    /// Host to connect to.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// Port to connect to.
    pub fn port(&self) -> u16 {
        match self {
            TestBroker::Embedded { addr, .. } => addr.port(),
            TestBroker::Mosquitto => workbus_testkit::mosquitto().port(),
        }
    }

    /// True for brokers this test process can stop and start.
    pub fn can_restart(&self) -> bool {
        matches!(self, TestBroker::Embedded { .. })
    }

    /// Stops the embedded broker (every client is disconnected).
    pub async fn halt(&mut self) {
        if let TestBroker::Embedded { handle, .. } = self
            && let Some(h) = handle.take()
        {
            h.shutdown().await;
        }
    }

    /// Starts the embedded broker again on the same port.
    pub async fn resume(&mut self) {
        if let TestBroker::Embedded { handle, addr } = self
            && handle.is_none()
        {
            *handle = Some(
                Broker::new(BrokerConfig::with_listen(*addr))
                    .start()
                    .await
                    .expect("embedded broker restarts on its port"),
            );
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
