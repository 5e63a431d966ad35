//! Broker configuration: listeners, limits and timeouts, with validation.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use workbus_process::defaults::MQTT_PORT;

use crate::error::BrokerError;

/// Default listen address: the MQTT port on every interface.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, MQTT_PORT));

/// Default largest MQTT packet accepted or sent: 1 MiB.
///
/// A ManifestWork bundle may be up to 500 KiB (reference §10 item 19) and travels with a
/// CloudEvents envelope in user properties; 1 MiB leaves room for both and for status
/// payloads, while still bounding what one hostile client can make us buffer.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;

/// Everything needed to start a broker.
///
/// One listener serves MQTT 3.1.1 and MQTT 5 clients alike: the protocol level is read from
/// each client's CONNECT packet, so there is no separate 3.1.1 port.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Addresses to listen on. Port 0 asks the OS for a free port; the bound addresses are
    /// reported by [`crate::BrokerHandle::local_addrs`].
    pub listen: Vec<SocketAddr>,
    /// Largest packet (whole MQTT packet, header included) accepted from a client. Also
    /// announced to MQTT 5 clients as the CONNACK Maximum Packet Size.
    pub max_packet_size: u32,
    /// Most client connections held at once; further TCP connections are closed at accept.
    pub max_connections: usize,
    /// Largest keep-alive (seconds) the broker honours. A client asking for more, or for 0
    /// (no keep-alive), gets this value: MQTT 5 clients are told through Server Keep Alive;
    /// MQTT 3.1.1 clients cannot be told, and are disconnected after 1.5 times this value
    /// of silence. 0 disables the limit (a client asking for 0 is then never timed out).
    pub max_keepalive: u16,
    /// Time a new TCP connection has to send its CONNECT packet.
    pub connect_timeout: Duration,
    /// Most QoS 1 messages sent to one client and not yet acknowledged. MQTT 5 clients'
    /// Receive Maximum lowers it further.
    pub max_inflight: u16,
    /// Most messages queued for one client. A client whose queue overflows is disconnected
    /// (MQTT 5 reason Quota exceeded) rather than silently losing messages, so that it
    /// reconnects and resynchronises (OCM repairs losses by resync after reconnect).
    /// The default is sized for the hub's fan-in: after a fleet-wide update every agent
    /// answers at once, and a source that is cut off must then resync the whole fleet.
    /// An empty queue costs nothing, so idle agents do not pay for the headroom.
    pub max_queued_messages: usize,
    /// Time one socket write may take before the client is considered dead.
    pub write_timeout: Duration,
    /// How long [`crate::BrokerHandle::shutdown`] waits for connections to say goodbye.
    pub shutdown_timeout: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: vec![DEFAULT_LISTEN],
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_connections: 100_000,
            max_keepalive: 600,
            connect_timeout: Duration::from_secs(10),
            max_inflight: 100,
            max_queued_messages: 200_000,
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl BrokerConfig {
    /// A configuration listening on `addr` with every other setting at its default.
    pub fn with_listen(addr: SocketAddr) -> Self {
        Self {
            listen: vec![addr],
            ..Self::default()
        }
    }

    /// Checks the settings that would otherwise fail later or behave absurdly.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let bad = |msg: &str| Err(BrokerError::Config(msg.to_owned()));
        if self.listen.is_empty() {
            return bad("at least one listen address is required");
        }
        // The smallest useful packet (a PUBLISH with a short topic) is a few bytes; below
        // 64 even CONNECT packets with a client id would be refused.
        if self.max_packet_size < 64 {
            return bad("max_packet_size must be at least 64 bytes");
        }
        // MQTT's variable-length remaining length tops out at 268,435,455 bytes.
        if self.max_packet_size > 268_435_460 {
            return bad("max_packet_size must not exceed the MQTT limit of 268435460 bytes");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_inflight == 0 {
            return bad("max_inflight must be at least 1");
        }
        if self.max_queued_messages == 0 {
            return bad("max_queued_messages must be at least 1");
        }
        if self.connect_timeout.is_zero() || self.write_timeout.is_zero() {
            return bad("connect_timeout and write_timeout must be non-zero");
        }
        Ok(())
    }
}
