//! The container health check of the executables that listen (`workbus-hub probe`,
//! `workbus-broker probe`): does the address accept a TCP connection in time?
//!
//! A TCP connection, not a request: the images are distroless (no shell, no curl), the
//! hub's REST API serves TLS with the operator's certificate (whose names need not
//! include the loopback address a probe connects to), and the broker speaks MQTT. A
//! listener that accepts is what a wedged or exited process stops doing; what happens
//! beyond it (store, broker link) the logs and metrics tell.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a probe waits for the connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The address does not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// No resolved address accepted a connection within the timeout.
    #[error("{addr} does not accept connections: {source}")]
    Connect {
        /// The address as given.
        addr: String,
        /// The last connection error.
        source: std::io::Error,
    },
}

/// Connects to `addr` (`host:port`), trying each address it resolves to, within
/// `timeout` each; `Ok` with the address that accepted.
pub fn probe_tcp(addr: &str, timeout: Duration) -> Result<SocketAddr, ProbeError> {
    let resolved = addr
        .to_socket_addrs()
        .map_err(|source| ProbeError::Resolve {
            addr: addr.to_string(),
            source,
        })?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in resolved {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return Ok(a),
            Err(e) => last = e,
        }
    }
    Err(ProbeError::Connect {
        addr: addr.to_string(),
        source: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_address_passes_a_closed_one_fails() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(probe_tcp(&addr.to_string(), PROBE_TIMEOUT).unwrap(), addr);
        drop(listener);
        assert!(matches!(
            probe_tcp(&addr.to_string(), PROBE_TIMEOUT),
            Err(ProbeError::Connect { .. })
        ));
        assert!(matches!(
            probe_tcp("not an address", PROBE_TIMEOUT),
            Err(ProbeError::Resolve { .. })
        ));
    }
}
