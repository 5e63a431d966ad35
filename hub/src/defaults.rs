//! The hub's defaults, each written once: [`HubConfig::new`](crate::HubConfig::new) and
//! the command line (`serve`, `quickstart`, the client's `--server`) take them from here.
//! Those hub, agent and broker must agree on live in [`workbus_process::defaults`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

pub use workbus_process::defaults::{LOCAL_BROKER, SOURCE_ID};

/// REST listen address (the client commands' `--server` is this over HTTP).
pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

/// Directory of the SQLite database.
pub const DATA_DIR: &str = "./workbus-data";

/// Where `serve`'s embedded broker listens: the MQTT-over-TLS port on every interface,
/// so that agents on other machines can connect — with a client certificate from the
/// hub's CA, and confined by the topic ACLs (see [`crate::embedded_broker`]).
pub const EMBEDDED_BROKER_LISTEN: SocketAddr = workbus_broker::DEFAULT_TLS_LISTEN;

/// Where the quickstart's embedded broker listens: the MQTT-over-TLS port on loopback
/// (a local demo; its agents run in the same process).
pub const QUICKSTART_BROKER_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(
    Ipv4Addr::LOCALHOST,
    workbus_broker::MQTT_TLS_PORT,
));

/// Where the embedded broker listens with `--insecure-broker` (plaintext, no ACLs): the
/// MQTT port on loopback only (the broker's own plaintext default).
pub const INSECURE_BROKER_LISTEN: SocketAddr = workbus_broker::DEFAULT_LISTEN;

/// The embedded broker's address when none is given: [`INSECURE_BROKER_LISTEN`] for a
/// plaintext broker, else `secure`.
pub fn embedded_broker_listen(
    given: Option<SocketAddr>,
    insecure: bool,
    secure: SocketAddr,
) -> SocketAddr {
    given.unwrap_or(if insecure {
        INSECURE_BROKER_LISTEN
    } else {
        secure
    })
}

/// The REST API address the client commands talk to by default.
pub fn server_url() -> String {
    format!("http://{LISTEN}")
}

/// The audit log gets a signed checkpoint after at most this many records
/// (`audit::sealer`).
pub const AUDIT_CHECKPOINT_RECORDS: u64 = 1000;

/// … and records wait at most this long for one.
pub const AUDIT_CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
