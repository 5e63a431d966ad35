//! Broker configuration: listeners, limits and timeouts, with validation.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use workbus_process::defaults::MQTT_PORT;

use crate::error::BrokerError;

/// Default plaintext listen address: the MQTT port on the loopback interface only.
/// Plaintext MQTT carries every cluster's manifests (Secrets included) and credentials in
/// clear, so it is reachable from the network only when an address says so explicitly.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, MQTT_PORT));

/// The IANA port of MQTT over TLS.
pub const MQTT_TLS_PORT: u16 = 8883;

/// Default TLS listen address: port 8883 on every interface (TLS is what remote agents
/// connect to).
pub const DEFAULT_TLS_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, MQTT_TLS_PORT));

/// Default number of refused operations (publishes and subscription filters) after which
/// a connection is closed.
pub const DEFAULT_MAX_DENIALS: u32 = 10;

/// Whether TLS clients present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Server-authenticated TLS only; clients log in with user name and password.
    #[default]
    Off,
    /// A client may present a certificate (verified against the client CA); clients
    /// without one log in with user name and password (MQTT 3.1.1 devices).
    Optional,
    /// Every client must present a certificate issued by the client CA (mutual TLS).
    Required,
}

/// The TLS listeners' files. They are read at start and again on every reload
/// ([`crate::BrokerHandle::reload_tls`], or when `reload_interval` notices a change), so
/// rotated files take effect for new handshakes without dropping connected clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Server certificate chain (PEM, leaf first).
    pub cert_file: PathBuf,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle (PEM) that client certificates must chain to; required unless
    /// `client_auth` is [`ClientAuth::Off`]. During a CA rotation it holds the old and
    /// the new CA.
    pub client_ca_file: Option<PathBuf>,
    /// Whether clients present certificates.
    pub client_auth: ClientAuth,
    /// How often the files are checked for changes (`None`: only on explicit reload).
    pub reload_interval: Option<Duration>,
    /// Certificate revocation lists (PEM) of the client CAs: a client certificate listed
    /// there is refused at the handshake (established connections are not cut).
    /// Reloaded with the other files.
    pub crl_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Mutual TLS with `cert_file`/`key_file` and client certificates required from
    /// `client_ca_file`; files re-checked every 30 s.
    pub fn mutual(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
        client_ca_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: Some(client_ca_file.into()),
            client_auth: ClientAuth::Required,
            reload_interval: Some(Duration::from_secs(30)),
            crl_file: None,
        }
    }

    /// The same, with client certificates also checked against the revocation lists in
    /// `crl_file`.
    pub fn with_crl_file(mut self, crl_file: impl Into<PathBuf>) -> Self {
        self.crl_file = Some(crl_file.into());
        self
    }
}

/// Default largest MQTT packet accepted or sent: 1 MiB.
///
/// A ManifestWork bundle may be up to 500 KiB (reference §10 item 19) and travels with a
/// CloudEvents envelope in user properties; 1 MiB leaves room for both and for status
/// payloads, while still bounding what one hostile client can make us buffer.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;

/// Default bound on the bytes queued for one client: 64 MiB, 64 times the default
/// [`DEFAULT_MAX_PACKET_SIZE`]. A subscriber that stops reading its socket holds at most
/// this much before it is disconnected. Not lower, because the hub's own queue takes the
/// fleet's fan-in: after a fleet-wide update 10,000 agents answer at once, about 17 MB of
/// statuses (1 KiB payload plus CloudEvents properties each) that the hub must be able
/// to fall behind on without being cut off (which would trigger a fleet-wide resync).
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 * DEFAULT_MAX_PACKET_SIZE as usize;

/// Default number of subscriptions one client may hold (an agent needs one or two).
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 100;

/// Default longest topic filter accepted in SUBSCRIBE, in bytes.
pub const DEFAULT_MAX_FILTER_LEN: usize = 1024;

/// Default number of connections one source address may hold at once.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 100;

/// Default number of file descriptors kept free for the broker itself (listeners, TLS
/// file reloads, logs): client connections are limited to the process' descriptor limit
/// minus this.
pub const DEFAULT_FD_RESERVE: usize = 64;

/// Everything needed to start a broker.
///
/// One listener serves MQTT 3.1.1 and MQTT 5 clients alike: the protocol level is read from
/// each client's CONNECT packet, so there is no separate 3.1.1 port.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Plaintext addresses to listen on (default: loopback only, [`DEFAULT_LISTEN`]).
    /// Port 0 asks the OS for a free port; the bound addresses are reported by
    /// [`crate::BrokerHandle::local_addrs`]. May be empty when TLS listeners exist.
    pub listen: Vec<SocketAddr>,
    /// TLS addresses to listen on; needs `tls`. Reported by
    /// [`crate::BrokerHandle::tls_addrs`].
    pub tls_listen: Vec<SocketAddr>,
    /// Certificate, key and client CA of the TLS listeners.
    pub tls: Option<TlsConfig>,
    /// Refused operations (publishes, subscription filters) after which a connection is
    /// closed; 0 never closes.
    pub max_denials: u32,
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
    /// Most bytes (topic, properties and payload of every message) queued for one client;
    /// beyond it the client is disconnected like on `max_queued_messages` (MQTT 5 reason
    /// Quota exceeded). Bounds what a subscriber that never reads its socket can make the
    /// broker hold. Must be at least `max_packet_size`, so any one message fits.
    pub max_queued_bytes: usize,
    /// Most subscriptions one client may hold; a SUBSCRIBE filter beyond it is refused
    /// (MQTT 5 SUBACK 0x97 Quota exceeded, 3.1.1 0x80). Replacing an existing subscription
    /// does not count.
    pub max_subscriptions: usize,
    /// Longest topic filter (bytes, `$share/<group>/` included) accepted in SUBSCRIBE;
    /// longer ones are refused (MQTT 5 SUBACK 0x8F Topic Filter invalid, 3.1.1 0x80).
    pub max_filter_len: usize,
    /// Most connections one source IP address may hold at once; further ones are closed at
    /// accept. 0 disables the limit.
    pub max_connections_per_address: usize,
    /// Whether `max_connections_per_address` also applies to loopback addresses. Off by
    /// default: the embedded broker's own hub, tests and benchmarks open thousands of
    /// connections from 127.0.0.1.
    pub limit_loopback: bool,
    /// File descriptors kept free for the broker itself. At start, `max_connections` is
    /// lowered (with a warning) to the process' open-file limit minus this, so client
    /// connections cannot exhaust the descriptors and starve the accept loop.
    pub fd_reserve: usize,
    /// Time one socket write may take before the client is considered dead.
    pub write_timeout: Duration,
    /// How long [`crate::BrokerHandle::shutdown`] waits for connections to say goodbye.
    pub shutdown_timeout: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: vec![DEFAULT_LISTEN],
            tls_listen: Vec::new(),
            tls: None,
            max_denials: DEFAULT_MAX_DENIALS,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_connections: 100_000,
            max_keepalive: 600,
            connect_timeout: Duration::from_secs(10),
            max_inflight: 100,
            max_queued_messages: 200_000,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_filter_len: DEFAULT_MAX_FILTER_LEN,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            limit_loopback: false,
            fd_reserve: DEFAULT_FD_RESERVE,
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl BrokerConfig {
    /// A configuration with TLS listeners on `tls_listen` only (no plaintext listener).
    pub fn with_tls(tls_listen: SocketAddr, tls: TlsConfig) -> Self {
        Self {
            listen: Vec::new(),
            tls_listen: vec![tls_listen],
            tls: Some(tls),
            ..Self::default()
        }
    }

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
        if self.listen.is_empty() && self.tls_listen.is_empty() {
            return bad("at least one listen address is required");
        }
        if !self.tls_listen.is_empty() && self.tls.is_none() {
            return bad("TLS listen addresses need a TLS certificate and key");
        }
        if let Some(tls) = &self.tls
            && tls.client_auth != ClientAuth::Off
            && tls.client_ca_file.is_none()
        {
            return bad("client certificates need a client CA file");
        }
        if self
            .tls
            .as_ref()
            .and_then(|t| t.reload_interval)
            .is_some_and(|d| d.is_zero())
        {
            return bad("the TLS reload interval must be non-zero");
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
        if self.max_queued_bytes < self.max_packet_size as usize {
            return bad("max_queued_bytes must be at least max_packet_size");
        }
        if self.max_subscriptions == 0 {
            return bad("max_subscriptions must be at least 1");
        }
        // `a` is the shortest filter; `$share/g/a` needs 10.
        if self.max_filter_len < 10 {
            return bad("max_filter_len must be at least 10 bytes");
        }
        if self.connect_timeout.is_zero() || self.write_timeout.is_zero() {
            return bad("connect_timeout and write_timeout must be non-zero");
        }
        Ok(())
    }
}
