//! The embedded MQTT broker the hub starts when no external one is configured: the
//! "no setup" default. It binds the requested address and, when that port is taken (for
//! example by a Mosquitto already running on 1883), falls back to a free port and says
//! so, so that a newcomer's first command never fails on a busy port. `serve` and
//! `quickstart` both start it through [`start_announced`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use workbus_broker::{Broker, BrokerConfig, BrokerError, BrokerHandle};

use crate::config::BrokerSettings;

/// The embedded broker could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the embedded broker on {listen}: {source}")]
pub struct EmbeddedBrokerError {
    /// The address asked for.
    pub listen: SocketAddr,
    /// Why it failed.
    pub source: BrokerError,
}

/// Starts the embedded broker on `preferred`, or on a free port of the same interface
/// if that one is in use. Returns the handle and whether the fallback was used.
pub async fn start(preferred: SocketAddr) -> Result<(BrokerHandle, bool), BrokerError> {
    match Broker::new(BrokerConfig::with_listen(preferred))
        .start()
        .await
    {
        Ok(h) => Ok((h, false)),
        Err(BrokerError::Bind { .. }) if preferred.port() != 0 => {
            let mut any = preferred;
            any.set_port(0);
            let h = Broker::new(BrokerConfig::with_listen(any)).start().await?;
            Ok((h, true))
        }
        Err(e) => Err(e),
    }
}

/// [`start`], then says on standard output where the broker listens, each line after
/// `indent`: a note if `preferred` was taken, then the address.
pub async fn start_announced(
    preferred: SocketAddr,
    indent: &str,
) -> Result<BrokerHandle, EmbeddedBrokerError> {
    let (broker, moved) = start(preferred)
        .await
        .map_err(|source| EmbeddedBrokerError {
            listen: preferred,
            source,
        })?;
    let addr = broker.local_addr();
    if moved {
        println!("{indent}note: {preferred} is in use; the embedded broker took {addr}");
    }
    println!("{indent}embedded MQTT broker (MQTT 5 and 3.1.1) listening on {addr}");
    Ok(broker)
}

/// The address a client on this machine connects to for a broker listening on `addr`:
/// `addr` itself, or the loopback address when it listens on every interface.
pub fn connect_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// How the hub in this process reaches the embedded broker `broker`.
pub fn hub_settings(broker: &BrokerHandle) -> BrokerSettings {
    let addr = connect_addr(broker.local_addr());
    BrokerSettings::Address {
        host: addr.ip().to_string(),
        port: addr.port(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_connect_to_loopback_for_a_broker_on_every_interface() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(connect_addr(addr("0.0.0.0:1883")), addr("127.0.0.1:1883"));
        assert_eq!(connect_addr(addr("[::]:1884")), addr("[::1]:1884"));
        assert_eq!(connect_addr(addr("10.1.2.3:1883")), addr("10.1.2.3:1883"));
    }

    #[tokio::test]
    async fn a_taken_port_falls_back_to_a_free_one() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let preferred = taken.local_addr().unwrap();
        let broker = start_announced(preferred, "").await.expect("falls back");
        assert_ne!(broker.local_addr().port(), preferred.port());
        match hub_settings(&broker) {
            BrokerSettings::Address { host, port } => {
                assert_eq!(
                    (host.as_str(), port),
                    ("127.0.0.1", broker.local_addr().port())
                )
            }
            other => panic!("{other:?}"),
        }
        broker.shutdown().await;
    }
}
