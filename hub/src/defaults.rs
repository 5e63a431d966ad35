//! The hub's defaults, each written once: [`HubConfig::new`](crate::HubConfig::new) and
//! the command line (`serve`, `quickstart`, the client's `--server`) take them from here.
//! Those hub, agent and broker must agree on live in [`workbus_process::defaults`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

pub use workbus_process::defaults::{LOCAL_BROKER, SOURCE_ID};

/// REST listen address (the client commands' `--server` is this over HTTP).
pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

/// Directory of the SQLite database.
pub const DATA_DIR: &str = "./workbus-data";

/// Where `serve`'s embedded broker listens: the broker's own default (every interface,
/// so that agents on other machines can connect).
pub const EMBEDDED_BROKER_LISTEN: SocketAddr = workbus_broker::DEFAULT_LISTEN;

/// The REST API address the client commands talk to by default.
pub fn server_url() -> String {
    format!("http://{LISTEN}")
}
