//! # workbus-tests: the harness of the cross-crate integration and fault tests
//!
//! Everything here talks to real parts: a real MQTT broker (the embedded one, or
//! a private Mosquitto per test), real agents with their stores, the hub with SQLite.
//! Waits are bounded and event-driven: [`FakeSource::next_event`] returns as soon as a
//! matching event arrives, or fails after its deadline.

pub mod agents;
pub mod brokers;
pub mod chaos;
pub mod fake_source;
pub use workbus_testkit::fault_proxy;
pub mod hubs;
pub mod join_hub;
pub mod secure;

pub use fake_source::FakeSource;
/// A name unique to this process and call, valid as a topic segment (`[a-z0-9-]+`), so
/// tests sharing a broker never see each other's traffic.
pub use workbus_testkit::unique;

/// How long any single expected event may take before a test fails.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs each listed `async fn name(broker: &mut TestBroker)` (or `&TestBroker`) as two
/// tests, `embedded::name` on a fresh embedded broker and `mosquitto::name` on a fresh
/// private Mosquitto (both restartable on their port): every protocol and end-to-end
/// suite runs on both. Without a `mosquitto` executable the Mosquitto tests are skipped
/// with a `SKIPPED` line naming what to install (`workbus_testkit::skip_without_mosquitto`).
#[macro_export]
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut broker = $crate::brokers::TestBroker::embedded().await;
                    super::$name(&mut broker).await;
                    broker.stop().await;
                }
            )*
        }
        mod mosquitto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    let Some(mut broker) =
                        $crate::brokers::TestBroker::mosquitto_unless_missing(test).await
                    else {
                        return;
                    };
                    super::$name(&mut broker).await;
                    broker.stop().await;
                }
            )*
        }
    };
}

/// Runs each listed `async fn name(broker: &mut TestBroker)` twice more, secured (mutual
/// TLS, topic ACLs, signed spec events; see [`secure`]): `secured_embedded::name` on a
/// fresh embedded broker with the fleet ACL, and `secured_mosquitto::name` on a fresh
/// private Mosquitto configured as `deploy/mosquitto/` documents (skipped like the
/// plaintext Mosquitto tests without a `mosquitto` executable). For suites whose hubs
/// and agents are made through the broker ([`brokers::TestBroker::start_hub`],
/// [`brokers::TestBroker::agent_config`]).
#[macro_export]
macro_rules! on_secured_brokers {
    ($($name:ident),* $(,)?) => {
        mod secured_embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut broker = $crate::brokers::TestBroker::embedded_secured().await;
                    super::$name(&mut broker).await;
                    broker.stop().await;
                }
            )*
        }
        mod secured_mosquitto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    let Some(mut broker) =
                        $crate::brokers::TestBroker::mosquitto_secured_unless_missing(test).await
                    else {
                        return;
                    };
                    super::$name(&mut broker).await;
                    broker.stop().await;
                }
            )*
        }
    };
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Waits until `cond` holds, checking every 10 ms; panics after [`WAIT`] naming `what`.
/// For state that only counters expose (no event to await).
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
