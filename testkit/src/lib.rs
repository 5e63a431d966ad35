//! # workbus-testkit: what every test crate needs and none should own
//!
//! - [`mosquitto`]: Mosquitto for tests, found and configured one way. [`mosquitto()`]
//!   gives each test process one shared private broker on a free loopback port;
//!   [`MosquittoProcess`] is a broker of one's own that can be stopped and started again
//!   on its port (broker-restart tests). Both are killed by the kernel when the test
//!   process ends, so the test command needs no broker service running (only the
//!   `mosquitto` executable, which `.ci/run` installs) and test runs never see each
//!   other's traffic. [`skip_without_mosquitto`] is the one way a test skips, visibly,
//!   when the executable is not installed.
//! - [`nats`]: [`NatsCluster`], a real clustered MQTT broker (three `nats-server` nodes
//!   with JetStream and MQTT on loopback) whose nodes can be killed and restarted;
//!   [`skip_without_nats`] (a failure with `WORKBUS_REQUIRE_NATS=1`).
//! - [`fault_proxy`]: a loopback TCP proxy that pauses, or cuts every connection
//!   without DISCONNECT (a killed client or broker, seen from the other side).
//! - [`fixtures`]: Maestro's golden events.
//! - [`kube_clients`]: kubectl and other Kubernetes clients found one way
//!   ([`kubectl_binaries`], [`on_path`]), and [`skip_missing_kube_client`], the one way
//!   a test skips when one is missing (a failure with `WORKBUS_REQUIRE_KUBE_CLIENTS=1`).
//! - [`postgres`]: a [`ThrowawayDatabase`] per test on the local PostgreSQL (or
//!   `WORKBUS_TEST_POSTGRES`), and [`postgres_or_skip`], the one way a test skips when
//!   no server answers (a failure with `WORKBUS_REQUIRE_POSTGRES=1`).
//! - [`metrics_doc`]: the metric table of `docs/metrics.md` against a scrape.
//! - [`unique`], [`free_port`]: names and ports no other test uses.
//!
//! It depends on no workspace crate, so the schemas, transport, agent, hub, integration
//! test and benchmark crates can all use it.

pub mod fault_proxy;
pub mod fixtures;
pub mod kube_clients;
pub mod metrics_doc;
pub mod mosquitto;
pub mod nats;
pub mod postgres;

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};

pub use kube_clients::{
    kube_clients_required, kubectl_binaries, on_path, skip_missing_kube_client,
};
pub use mosquitto::{
    MosquittoLog, MosquittoProcess, mosquitto, mosquitto_config, mosquitto_program,
    skip_without_mosquitto,
};
pub use nats::{NatsCluster, nats_program, skip_without_nats};
pub use postgres::{ThrowawayDatabase, postgres_or_skip};

/// A name unique to this process and call, valid as a topic segment (`[a-z0-9-]+`) and a
/// DNS-1123 label for a short `prefix`, so tests sharing a broker never see each other's
/// traffic: `<prefix>-<pid>-<time>-<n>` (hexadecimal pid and time).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() % 1_000_000_000)
        .unwrap_or(0);
    format!("{prefix}-{pid:x}-{t:x}-{n}")
}

/// A server executable the tests start: `$<env>` (taken as given), else `name` on
/// `PATH`, in `/usr/sbin` (where Debian installs servers) or `/usr/local/sbin`. `Err`
/// (saying what to do: `install`) only when none is found.
pub fn system_program(env: &str, name: &str, install: &str) -> Result<std::path::PathBuf, String> {
    use std::path::PathBuf;
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found (PATH, /usr/sbin, /usr/local/sbin): {install}"))
}

/// A free loopback port (bound and released at once; the caller keeps using it, e.g. for
/// restarts on the same port).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_topic_segments() {
        let (a, b) = (unique("edge"), unique("edge"));
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.starts_with("edge-"), "{name}");
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                "{name}"
            );
            assert!(name.len() <= 63, "{name}");
        }
    }
}
