//! Error types: the public startup error and the internal per-connection error.

use std::io;
use std::net::SocketAddr;

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration is inconsistent; the text says which setting.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// A listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The TLS certificate, key or client CA cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The authorizer's inputs (credential file, topic templates) cannot be used.
    #[error(transparent)]
    Acl(#[from] crate::fleet_acl::AclError),
}

/// Why one client connection ended abnormally. Never leaves the crate: it is logged and the
/// connection is closed, which is all a broker can do about one misbehaving peer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("peer closed the connection")]
    Closed,
    #[error("no CONNECT within the connect timeout")]
    ConnectTimeout,
    #[error("keep-alive expired")]
    KeepAliveTimeout,
    #[error("write timed out")]
    WriteTimeout,
    #[error("packet of {size} bytes exceeds the limit of {max}")]
    PacketTooLarge { size: usize, max: u32 },
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}
