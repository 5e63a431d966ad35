//! The sdk-go MQTT config file (reference §1.8–1.9), parsed from bytes the caller read.
//!
//! Hub and agent both start from this file, so a file written for a Go peer (Maestro,
//! the OCM klusterlet) must mean the same here: same keys, same defaults, same
//! validation order and error texts (TV-6). The file is YAML; JSON is YAML too, so one
//! parser (`serde_norway`) reads both.
//!
//! This crate does no I/O: certificate and key *files* are returned as
//! [`PemSource::File`] for the caller to load, inline `...Data` values are decoded
//! here into [`PemSource::Inline`].
//!
//! Deliberate differences from sdk-go, all on input Go would mishandle:
//! - A config with only a CA means server-authenticated TLS ([`TlsMode::ServerAuth`]);
//!   sdk-go silently dials plain TCP in that case (reference §10 item 3).
//! - `pubQoS`/`subQoS` outside 0..=2 are errors (Go truncates them to a byte).
//! - A bare number as `dialTimeout` is an error; Go's YAML reader takes it as
//!   nanoseconds, which is never what was meant.
//! - Negative `dialTimeout` values are errors.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};

use crate::topics::{TopicError, Topics, go_quote};

/// Default MQTT keep-alive, in seconds (sdk-go).
pub const DEFAULT_KEEP_ALIVE: u16 = 60;
/// Default TCP/TLS dial timeout (sdk-go).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default publish and subscribe QoS (sdk-go).
pub const DEFAULT_QOS: Qos = Qos::AtLeastOnce;

/// Go's `base64.StdEncoding`: standard alphabet, padding required, and (unlike the
/// `base64` crate's default) non-zero trailing bits tolerated.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Errors of reading, checking or writing an MQTT config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML/JSON, or a value of the wrong type (e.g. `keepAlive: "x"`).
    #[error("cannot parse the MQTT config: {0}")]
    Parse(#[source] serde_norway::Error),
    /// `brokerHost` missing or empty (sdk-go text).
    #[error("brokerHost is required")]
    BrokerHostRequired,
    /// Exactly one of client certificate and key given (sdk-go text).
    #[error("either both or none of clientCertFile and clientKeyFile must be set")]
    CertKeyMismatch,
    /// No `topics` map (sdk-go text).
    #[error("the topics must be set")]
    TopicsRequired,
    /// A topic fails validation (sdk-go's aggregated text).
    #[error(transparent)]
    Topics(#[from] TopicError),
    /// A `...Data` value is not standard base64.
    #[error("{key} is not valid base64: {source}")]
    InvalidBase64 {
        /// The config key.
        key: &'static str,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// `pubQoS` or `subQoS` outside 0..=2.
    #[error("{key} must be 0, 1 or 2, got {value}")]
    QosOutOfRange {
        /// The config key.
        key: &'static str,
        /// The rejected value.
        value: i64,
    },
    /// `dialTimeout` is a string but not a valid, non-negative Go duration.
    #[error("invalid dialTimeout: {0}")]
    DialTimeout(#[from] DurationError),
    /// `dialTimeout` is not a string at all.
    #[error(
        "dialTimeout must be a Go duration string such as \"60s\", got {0} \
         (Go would read a bare number as nanoseconds)"
    )]
    DialTimeoutNotString(String),
    /// `brokerHost` is not `host:port` (see [`MqttConfig::broker_addr`]).
    #[error("invalid brokerHost {}: {reason}", go_quote(value))]
    InvalidBrokerHost {
        /// The configured value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value that cannot be written to a file Go would read back the same way.
    #[error("cannot write {key}: {reason}")]
    Unwritable {
        /// The config key.
        key: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The YAML writer failed.
    #[error("cannot write the MQTT config: {0}")]
    Write(#[source] serde_norway::Error),
}

/// Errors of [`parse_go_duration`]; the first three texts are Go's `time.ParseDuration`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Malformed or out of range (more than about 292 years).
    #[error("time: invalid duration {}", time_quote(.0))]
    Invalid(String),
    /// A number without a unit, e.g. `"60"`.
    #[error("time: missing unit in duration {}", time_quote(.0))]
    MissingUnit(String),
    /// A unit other than ns, us, µs, μs, ms, s, m, h.
    #[error(
        "time: unknown unit {} in duration {}",
        time_quote(unit),
        time_quote(input)
    )]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A valid Go duration below zero; a timeout cannot be negative.
    #[error("negative duration {}", time_quote(.0))]
    Negative(String),
}

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Qos {
    /// 0
    AtMostOnce,
    /// 1, the sdk-go default.
    #[default]
    AtLeastOnce,
    /// 2
    ExactlyOnce,
}

impl Qos {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
            Qos::ExactlyOnce => 2,
        }
    }

    /// 0, 1 or 2; anything else is `None`.
    pub fn from_i64(v: i64) -> Option<Qos> {
        match v {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }
}

/// Where a PEM blob comes from. The caller loads files; this crate does no I/O.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A `...File` path, to be read by the caller.
    File(PathBuf),
    /// A `...Data` value, already base64-decoded (PEM bytes).
    Inline(Vec<u8>),
}

impl fmt::Debug for PemSource {
    // Inline data may be a private key: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(p) => f.debug_tuple("File").field(p).finish(),
            PemSource::Inline(b) => write!(f, "Inline(<{} bytes>)", b.len()),
        }
    }
}

/// How to secure the broker connection, derived from the CA/cert/key keys.
///
/// sdk-go enables TLS only when a client certificate and key are both set; with only a
/// CA it dials **plain TCP**, sending the password in clear (reference §10 item 3).
/// workbus reads a CA-only config as [`TlsMode::ServerAuth`] instead: a CA is only
/// ever configured to authenticate a TLS server. A transport following sdk-go would
/// pin TLS 1.3 and trust the system roots plus the configured CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// No CA, certificate or key: plain TCP.
    Plain,
    /// Only a CA: TLS that authenticates the broker; the client authenticates with
    /// username/password, if any. (sdk-go: plain TCP.)
    ServerAuth {
        /// The CA that signed the broker's certificate.
        ca: PemSource,
    },
    /// Client certificate and key: mutual TLS, as in sdk-go.
    Mutual {
        /// Extra CA; `None` means the system roots only.
        ca: Option<PemSource>,
        /// Client certificate chain.
        cert: PemSource,
        /// Client private key.
        key: PemSource,
    },
}

impl TlsMode {
    /// True unless [`TlsMode::Plain`].
    pub fn is_tls(&self) -> bool {
        !matches!(self, TlsMode::Plain)
    }

    /// The configured CA, if any.
    pub fn ca(&self) -> Option<&PemSource> {
        match self {
            TlsMode::Plain => None,
            TlsMode::ServerAuth { ca } => Some(ca),
            TlsMode::Mutual { ca, .. } => ca.as_ref(),
        }
    }
}

/// `brokerHost` split into host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    /// TCP port, never 0.
    pub port: u16,
}

impl fmt::Display for BrokerAddr {
    /// `host:port` as `brokerHost` spells it (IPv6 addresses in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed and validated MQTT config (sdk-go `MQTTConfig` plus its defaults).
#[derive(Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// `brokerHost`, as written (`host:port`); see [`MqttConfig::broker_addr`].
    pub broker_host: String,
    /// `brokerHosts` (workbus's extension, unknown to sdk-go): further `host:port`
    /// addresses of the same clustered broker, tried after `brokerHost` in this order
    /// when a connection is lost or refused (see [`MqttConfig::broker_addrs`]).
    pub broker_hosts: Vec<String>,
    /// `username`; `None` when absent or empty (then no username is sent, as in Go).
    pub username: Option<String>,
    /// `password`; `None` when absent or empty.
    pub password: Option<String>,
    /// `keepAlive`, seconds.
    pub keep_alive: u16,
    /// `dialTimeout`; zero means no timeout, as for Go's dialer.
    pub dial_timeout: Duration,
    /// `pubQoS`.
    pub pub_qos: Qos,
    /// `subQoS`.
    pub sub_qos: Qos,
    /// `topics`, validated against sdk-go's regexes (not yet for one side: see
    /// [`Topics::validate_for_source`] / [`Topics::validate_for_agent`]).
    pub topics: Topics,
    /// Derived from `caFile`/`caData`, `clientCertFile`/`clientCertData`,
    /// `clientKeyFile`/`clientKeyData`.
    pub tls: TlsMode,
}

impl fmt::Debug for MqttConfig {
    // The password must not reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("broker_host", &self.broker_host)
            .field("broker_hosts", &self.broker_hosts)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keep_alive", &self.keep_alive)
            .field("dial_timeout", &self.dial_timeout)
            .field("pub_qos", &self.pub_qos)
            .field("sub_qos", &self.sub_qos)
            .field("topics", &self.topics)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The file as written, before defaults and checks. Every string is optional because
/// Go reads a missing key and YAML `null` alike as `""`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawConfig {
    #[serde(rename = "brokerHost")]
    broker_host: Option<String>,
    #[serde(rename = "brokerHosts")]
    broker_hosts: Option<Vec<String>>,
    username: Option<String>,
    password: Option<String>,
    #[serde(rename = "keepAlive")]
    keep_alive: Option<u16>,
    // Kept as a YAML value so a bare number gets a clear error, not a type mismatch.
    #[serde(rename = "dialTimeout")]
    dial_timeout: Option<serde_norway::Value>,
    #[serde(rename = "pubQoS")]
    pub_qos: Option<i64>,
    #[serde(rename = "subQoS")]
    sub_qos: Option<i64>,
    topics: Option<Topics>,
    #[serde(rename = "caFile")]
    ca_file: Option<String>,
    #[serde(rename = "caData")]
    ca_data: Option<String>,
    #[serde(rename = "clientCertFile")]
    client_cert_file: Option<String>,
    #[serde(rename = "clientCertData")]
    client_cert_data: Option<String>,
    #[serde(rename = "clientKeyFile")]
    client_key_file: Option<String>,
    #[serde(rename = "clientKeyData")]
    client_key_data: Option<String>,
}

/// The file as [`MqttConfig::to_yaml`] writes it.
#[derive(Serialize)]
struct OutConfig<'a> {
    #[serde(rename = "brokerHost")]
    broker_host: &'a str,
    #[serde(rename = "brokerHosts", skip_serializing_if = "<[String]>::is_empty")]
    broker_hosts: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(rename = "keepAlive")]
    keep_alive: u16,
    #[serde(rename = "dialTimeout")]
    dial_timeout: String,
    #[serde(rename = "pubQoS")]
    pub_qos: u8,
    #[serde(rename = "subQoS")]
    sub_qos: u8,
    topics: &'a Topics,
    #[serde(rename = "caFile", skip_serializing_if = "Option::is_none")]
    ca_file: Option<&'a str>,
    #[serde(rename = "caData", skip_serializing_if = "Option::is_none")]
    ca_data: Option<String>,
    #[serde(rename = "clientCertFile", skip_serializing_if = "Option::is_none")]
    client_cert_file: Option<&'a str>,
    #[serde(rename = "clientCertData", skip_serializing_if = "Option::is_none")]
    client_cert_data: Option<String>,
    #[serde(rename = "clientKeyFile", skip_serializing_if = "Option::is_none")]
    client_key_file: Option<&'a str>,
    #[serde(rename = "clientKeyData", skip_serializing_if = "Option::is_none")]
    client_key_data: Option<String>,
}

/// `Some` only for a non-empty string: Go treats `""` as unset everywhere here.
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Resolves one `...File`/`...Data` pair: non-empty data wins, as in sdk-go's
/// `EmbedCerts` (which reads the file only when the data is empty).
fn pem_source(
    key: &'static str,
    data: Option<String>,
    file: Option<String>,
) -> Result<Option<PemSource>, ConfigError> {
    if let Some(data) = data {
        // Go's decoder skips CR and LF, so wrapped base64 works there; same here.
        let compact: String = data.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        let bytes = GO_STD_BASE64
            .decode(compact)
            .map_err(|source| ConfigError::InvalidBase64 { key, source })?;
        if !bytes.is_empty() {
            return Ok(Some(PemSource::Inline(bytes)));
        }
    }
    Ok(non_empty(file).map(|f| PemSource::File(PathBuf::from(f))))
}

fn qos(key: &'static str, v: Option<i64>) -> Result<Qos, ConfigError> {
    match v {
        None => Ok(DEFAULT_QOS),
        Some(v) => Qos::from_i64(v).ok_or(ConfigError::QosOutOfRange { key, value: v }),
    }
}

fn dial_timeout(v: Option<serde_norway::Value>) -> Result<Duration, ConfigError> {
    match v {
        None | Some(serde_norway::Value::Null) => Ok(DEFAULT_DIAL_TIMEOUT),
        Some(serde_norway::Value::String(s)) => Ok(parse_go_duration(&s)?),
        Some(other) => {
            let shown = serde_norway::to_string(&other)
                .map(|s| s.trim_end().to_string())
                .unwrap_or_else(|_| "a non-string value".to_string());
            Err(ConfigError::DialTimeoutNotString(shown))
        }
    }
}

impl MqttConfig {
    /// A config with sdk-go's defaults and no TLS, for tooling that writes config files.
    pub fn new(broker_host: impl Into<String>, topics: Topics) -> MqttConfig {
        MqttConfig {
            broker_host: broker_host.into(),
            broker_hosts: Vec::new(),
            username: None,
            password: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
            pub_qos: DEFAULT_QOS,
            sub_qos: DEFAULT_QOS,
            topics,
            tls: TlsMode::Plain,
        }
    }

    /// The keys of a config file that sdk-go's `MQTTConfig` does not know (top level
    /// and under `topics`, e.g. `broker` for `brokerHost`, `topic`), in file order.
    /// They are ignored, as in Go; callers warn about them, since a misspelt key
    /// otherwise silently takes its default. Unparsable bytes have none (parsing
    /// reports them).
    pub fn unknown_keys(bytes: &[u8]) -> Vec<String> {
        const KNOWN: &[&str] = &[
            "brokerHost",
            "brokerHosts",
            "username",
            "password",
            "keepAlive",
            "dialTimeout",
            "pubQoS",
            "subQoS",
            "topics",
            "caFile",
            "caData",
            "clientCertFile",
            "clientCertData",
            "clientKeyFile",
            "clientKeyData",
        ];
        const KNOWN_TOPICS: &[&str] = &[
            "sourceEvents",
            "agentEvents",
            "sourceBroadcast",
            "agentBroadcast",
        ];
        let Ok(serde_norway::Value::Mapping(top)) = serde_norway::from_slice(bytes) else {
            return Vec::new();
        };
        let name = |k: &serde_norway::Value| match k {
            serde_norway::Value::String(s) => s.clone(),
            other => serde_norway::to_string(other)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        };
        let mut unknown = Vec::new();
        for (k, v) in &top {
            let key = name(k);
            if !KNOWN.contains(&key.as_str()) {
                unknown.push(key);
            } else if let (true, serde_norway::Value::Mapping(topics)) = (key == "topics", v) {
                unknown.extend(
                    topics
                        .keys()
                        .map(name)
                        .filter(|t| !KNOWN_TOPICS.contains(&t.as_str()))
                        .map(|t| format!("topics.{t}")),
                );
            }
        }
        unknown
    }

    /// Parses the bytes of a config file (YAML or JSON).
    ///
    /// Checks run in sdk-go's order, so the first error reported is the one a Go peer
    /// would report: value types and encodings (Go's unmarshal step), then
    /// `brokerHost is required`, then the certificate/key pairing, then the topics.
    /// Unknown keys are ignored, as in Go. An empty file is an empty config.
    pub fn from_bytes(bytes: &[u8]) -> Result<MqttConfig, ConfigError> {
        let raw: RawConfig = serde_norway::from_slice::<Option<RawConfig>>(bytes)
            .map_err(ConfigError::Parse)?
            .unwrap_or_default();

        // What Go's yaml.Unmarshal would reject or convert.
        let dial_timeout = dial_timeout(raw.dial_timeout)?;
        let ca = pem_source("caData", raw.ca_data, raw.ca_file)?;
        let cert = pem_source("clientCertData", raw.client_cert_data, raw.client_cert_file)?;
        let key = pem_source("clientKeyData", raw.client_key_data, raw.client_key_file)?;
        let pub_qos = qos("pubQoS", raw.pub_qos)?;
        let sub_qos = qos("subQoS", raw.sub_qos)?;

        let broker_host = non_empty(raw.broker_host).ok_or(ConfigError::BrokerHostRequired)?;
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => TlsMode::Mutual { ca, cert, key },
            (None, None) => ca.map_or(TlsMode::Plain, |ca| TlsMode::ServerAuth { ca }),
            _ => return Err(ConfigError::CertKeyMismatch),
        };
        let topics = raw.topics.ok_or(ConfigError::TopicsRequired)?;
        topics.validate()?;

        Ok(MqttConfig {
            broker_host,
            broker_hosts: raw.broker_hosts.unwrap_or_default(),
            username: non_empty(raw.username),
            password: non_empty(raw.password),
            keep_alive: raw.keep_alive.unwrap_or(DEFAULT_KEEP_ALIVE),
            dial_timeout,
            pub_qos,
            sub_qos,
            topics,
            tls,
        })
    }

    /// Re-checks what [`MqttConfig::from_bytes`] guarantees, for hand-built configs:
    /// `brokerHost` set, topics valid, `dialTimeout` within Go's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_host.is_empty() {
            return Err(ConfigError::BrokerHostRequired);
        }
        self.topics.validate()?;
        if self.dial_timeout.as_nanos() > i64::MAX as u128 {
            return Err(ConfigError::Unwritable {
                key: "dialTimeout",
                reason: "longer than a Go time.Duration can hold",
            });
        }
        Ok(())
    }

    /// `brokerHost` split into host and port, like Go's `net.SplitHostPort` but
    /// stricter: the port must be a number in 1..=65535 (no service names), the host
    /// must not be empty, and IPv6 addresses need brackets (`[::1]:1883`).
    pub fn broker_addr(&self) -> Result<BrokerAddr, ConfigError> {
        split_host_port(&self.broker_host)
    }

    /// Every broker address in the order a client tries them: `brokerHost` first, then
    /// each `brokerHosts` entry (an entry equal to `brokerHost`, or to an earlier entry,
    /// is skipped). Each is checked as [`MqttConfig::broker_addr`] checks `brokerHost`.
    pub fn broker_addrs(&self) -> Result<Vec<BrokerAddr>, ConfigError> {
        let mut addrs = vec![self.broker_addr()?];
        for value in &self.broker_hosts {
            let addr = split_host_port(value)?;
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        Ok(addrs)
    }

    /// Writes the config as YAML that both workbus and sdk-go read back to the same
    /// settings (except that Go dials plain TCP for a [`TlsMode::ServerAuth`] config).
    /// Defaults are written out explicitly; inline PEM data is base64-encoded.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        self.validate()?;
        let (ca, cert, key) = match &self.tls {
            TlsMode::Plain => (None, None, None),
            TlsMode::ServerAuth { ca } => (Some(ca), None, None),
            TlsMode::Mutual { ca, cert, key } => (ca.as_ref(), Some(cert), Some(key)),
        };
        let (ca_file, ca_data) = pem_out("caFile", "caData", ca)?;
        let (client_cert_file, client_cert_data) =
            pem_out("clientCertFile", "clientCertData", cert)?;
        let (client_key_file, client_key_data) = pem_out("clientKeyFile", "clientKeyData", key)?;
        let out = OutConfig {
            broker_host: &self.broker_host,
            broker_hosts: &self.broker_hosts,
            username: self.username.as_deref().filter(|s| !s.is_empty()),
            password: self.password.as_deref().filter(|s| !s.is_empty()),
            keep_alive: self.keep_alive,
            dial_timeout: format_go_duration(self.dial_timeout),
            pub_qos: self.pub_qos.as_u8(),
            sub_qos: self.sub_qos.as_u8(),
            topics: &self.topics,
            ca_file,
            ca_data,
            client_cert_file,
            client_cert_data,
            client_key_file,
            client_key_data,
        };
        serde_norway::to_string(&out).map_err(ConfigError::Write)
    }
}

/// One PEM source as a (`...File`, `...Data`) pair of output values.
fn pem_out<'a>(
    file_key: &'static str,
    data_key: &'static str,
    src: Option<&'a PemSource>,
) -> Result<(Option<&'a str>, Option<String>), ConfigError> {
    match src {
        None => Ok((None, None)),
        Some(PemSource::File(p)) => {
            let s = p.to_str().ok_or(ConfigError::Unwritable {
                key: file_key,
                reason: "the path is not UTF-8",
            })?;
            if s.is_empty() {
                // An empty path reads back as "no file".
                return Err(ConfigError::Unwritable {
                    key: file_key,
                    reason: "the path is empty",
                });
            }
            Ok((Some(s), None))
        }
        Some(PemSource::Inline(b)) => {
            if b.is_empty() {
                return Err(ConfigError::Unwritable {
                    key: data_key,
                    reason: "the data is empty",
                });
            }
            Ok((None, Some(GO_STD_BASE64.encode(b))))
        }
    }
}

impl FromStr for MqttConfig {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MqttConfig::from_bytes(s.as_bytes())
    }
}

/// Splits a list of `host:port` addresses separated by commas (spaces around them
/// allowed; empty entries and repeats dropped), as `--broker a:1883,b:1883` is written.
/// At least one address is required.
pub fn split_broker_list(value: &str) -> Result<Vec<BrokerAddr>, ConfigError> {
    let mut addrs: Vec<BrokerAddr> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let addr = split_host_port(part)?;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(ConfigError::InvalidBrokerHost {
            value: value.to_string(),
            reason: "no address given",
        });
    }
    Ok(addrs)
}

/// Splits `host:port`; see [`MqttConfig::broker_addr`].
pub fn split_host_port(value: &str) -> Result<BrokerAddr, ConfigError> {
    let fail = |reason| ConfigError::InvalidBrokerHost {
        value: value.to_string(),
        reason,
    };
    if value.contains("://") {
        return Err(fail("a URL scheme is not allowed, use host:port"));
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(fail("missing ']' in address"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, port),
            None if after.is_empty() => return Err(fail("missing port in address")),
            None => return Err(fail("unexpected text after ']'")),
        }
    } else {
        let (host, port) = value
            .rsplit_once(':')
            .ok_or(fail("missing port in address"))?;
        if host.contains(':') {
            return Err(fail(
                "too many colons in address (put IPv6 addresses in [])",
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(fail("missing host"));
    }
    if host.contains(['[', ']', '/', ' ']) {
        return Err(fail("invalid character in host"));
    }
    let port = if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        None
    } else {
        port.parse::<u16>().ok().filter(|p| *p != 0)
    };
    let port = port.ok_or(fail("the port must be a number from 1 to 65535"))?;
    Ok(BrokerAddr {
        host: host.to_string(),
        port,
    })
}

/// Go's `time` package quoting: `"`-delimited, `"` and `\` escaped, every byte of a
/// non-ASCII or control character as `\xNN`.
fn time_quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// Nanoseconds per unit, for the unit spellings Go accepts.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string (`time.ParseDuration`): e.g. `10m`, `1h30m`, `500ms`,
/// `1.5s`, `0`. Accepts and rejects what Go does, with Go's messages; a result below
/// zero is [`DurationError::Negative`] because a timeout cannot be negative.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input.as_bytes();
    let mut neg = false;
    if let Some((&c, rest)) = s.split_first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part; overflow is an error, as in Go's leadingInt.
        let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &b in &s[..digits] {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(b - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        let pre = digits > 0;
        s = &s[digits..];
        // Fraction; digits beyond what fits are ignored, as in Go's leadingFraction.
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
            let mut overflow = false;
            for &b in &s[..digits] {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(b - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = digits > 0;
            s = &s[digits..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or '.', both ASCII, so the slice
        // boundaries are character boundaries.
        let ulen = s
            .iter()
            .take_while(|b| !(**b == b'.' || b.is_ascii_digit()))
            .count();
        if ulen == 0 {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit_str = String::from_utf8_lossy(&s[..ulen]).into_owned();
        s = &s[ulen..];
        let unit = unit_nanos(&unit_str).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_str.clone(),
            input: input.to_string(),
        })?;
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Same float arithmetic as Go, so rounding matches.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        if total == 0 {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError::Negative(input.to_string()));
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

/// Formats like Go's `Duration.String()` (`1h30m0s`, `10m0s`, `500ms`, `1.5µs`, `0s`),
/// so written configs look like Go's. Durations beyond `u64` nanoseconds saturate.
pub fn format_go_duration(d: Duration) -> String {
    let u = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // The fraction of `v / 10^prec` without trailing zeros, with its dot.
    fn frac(v: u64, prec: u32) -> String {
        let p = 10u64.pow(prec);
        let f = v % p;
        if f == 0 {
            return String::new();
        }
        let digits = format!("{f:0width$}", width = prec as usize);
        format!(".{}", digits.trim_end_matches('0'))
    }
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000 {
        return format!("{u}ns");
    }
    if u < 1_000_000 {
        return format!("{}{}\u{b5}s", u / 1_000, frac(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{}{}ms", u / 1_000_000, frac(u, 6));
    }
    let secs = u / 1_000_000_000;
    let sec_part = format!("{}{}s", secs % 60, frac(u, 9));
    let mins = secs / 60;
    if mins == 0 {
        return sec_part;
    }
    let hours = mins / 60;
    if hours == 0 {
        return format!("{}m{sec_part}", mins % 60);
    }
    format!("{hours}h{}m{sec_part}", mins % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::{InvalidTopics, SOURCE_EVENTS_PATTERN};
    use proptest::prelude::*;

    const TOPICS_YAML: &str = "topics:\n  sourceEvents: sources/hub1/clusters/+/sourceevents\n  agentEvents: sources/hub1/clusters/+/agentevents\n";

    fn hub1_topics() -> Topics {
        Topics {
            source_events: "sources/hub1/clusters/+/sourceevents".into(),
            agent_events: "sources/hub1/clusters/+/agentevents".into(),
            source_broadcast: None,
            agent_broadcast: None,
        }
    }

    fn parse(s: &str) -> Result<MqttConfig, ConfigError> {
        s.parse()
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn tv6_defaults_json() {
        let json = r#"
{
	"brokerHost": "test",
	"topics": {
		"sourceEvents": "sources/hub1/clusters/+/sourceevents",
		"agentEvents": "sources/hub1/clusters/+/agentevents"
	}
}
"#;
        let c = parse(json).unwrap();
        assert_eq!(c, MqttConfig::new("test", hub1_topics()));
        assert_eq!(c.keep_alive, 60);
        assert_eq!(c.pub_qos.as_u8(), 1);
        assert_eq!(c.sub_qos.as_u8(), 1);
        assert_eq!(c.dial_timeout, Duration::from_secs(60));
        assert_eq!(c.tls, TlsMode::Plain);
    }

    #[test]
    fn tv6_defaults_yaml() {
        let c = parse(&format!("brokerHost: test\n{TOPICS_YAML}")).unwrap();
        assert_eq!(c, MqttConfig::new("test", hub1_topics()));
    }

    #[test]
    fn tv6_customized() {
        let c = parse(&format!(
            "brokerHost: test\nkeepAlive: 30\ndialTimeout: 10m\npubQoS: 0\nsubQoS: 2\n{TOPICS_YAML}"
        ))
        .unwrap();
        assert_eq!(c.keep_alive, 30);
        assert_eq!(c.dial_timeout, Duration::from_secs(600));
        assert_eq!(c.pub_qos, Qos::AtMostOnce);
        assert_eq!(c.sub_qos, Qos::ExactlyOnce);
    }

    #[test]
    fn tv6_errors() {
        assert_eq!(err(""), "brokerHost is required");
        assert_eq!(err("# only a comment\n"), "brokerHost is required");
        assert_eq!(err("~"), "brokerHost is required");
        assert_eq!(err("brokerHost: \"\"\n"), "brokerHost is required");
        assert_eq!(
            err(r#"{"brokerHost":"test","clientCertData":"dGVzdAo="}"#),
            "either both or none of clientCertFile and clientKeyFile must be set"
        );
        assert_eq!(
            err(r#"{"brokerHost":"test","clientCertFile":"test"}"#),
            "either both or none of clientCertFile and clientKeyFile must be set"
        );
        assert_eq!(
            err(r#"{"brokerHost":"test","clientKeyData":"dGVzdAo="}"#),
            "either both or none of clientCertFile and clientKeyFile must be set"
        );
        assert_eq!(err(r#"{"brokerHost":"test"}"#), "the topics must be set");
        assert_eq!(err("brokerHost: test\ntopics:\n"), "the topics must be set");
    }

    #[test]
    fn bad_topics_are_aggregated() {
        let e = parse(
            "brokerHost: test\ntopics:\n  sourceEvents: sources/+/clusters/+/agentevents\n  agentEvents: sources/+/clusters/+/sourceevents\n",
        )
        .unwrap_err();
        let ConfigError::Topics(TopicError::Invalid(InvalidTopics(list))) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(list.len(), 2);
        assert!(e.to_string().starts_with(&format!(
            "[invalid source events topic \"sources/+/clusters/+/agentevents\", it should match `{SOURCE_EVENTS_PATTERN}`, "
        )));
        // An empty topics map: both required topics read as "".
        assert!(matches!(
            parse("brokerHost: test\ntopics: {}\n"),
            Err(ConfigError::Topics(TopicError::Invalid(_)))
        ));
    }

    #[test]
    fn wrong_types_and_bad_yaml() {
        let base = format!("brokerHost: test\n{TOPICS_YAML}");
        for extra in [
            "keepAlive: x",
            "keepAlive: 70000",
            "keepAlive: -1",
            "pubQoS: one",
            "topics: [a]",
            "caData: [1]",
        ] {
            let doc = format!("{extra}\n{base}");
            // Replacing `topics` via a duplicate key is a parse error too.
            assert!(
                matches!(parse(&doc), Err(ConfigError::Parse(_))),
                "{extra}: {:?}",
                parse(&doc)
            );
        }
        for bad in [
            "{",
            "brokerHost: [",
            "\u{0}",
            "a: b\n---\nc: d",
            "- a\n- b",
            "hello",
        ] {
            assert!(matches!(parse(bad), Err(ConfigError::Parse(_))), "{bad:?}");
        }
        assert!(matches!(
            MqttConfig::from_bytes(&[0xff, 0xfe, 0x00]),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn qos_range_and_dial_timeout_type() {
        let base = format!("brokerHost: test\n{TOPICS_YAML}");
        assert_eq!(
            err(&format!("pubQoS: 3\n{base}")),
            "pubQoS must be 0, 1 or 2, got 3"
        );
        assert!(matches!(
            parse(&format!("subQoS: -1\n{base}")),
            Err(ConfigError::QosOutOfRange {
                key: "subQoS",
                value: -1
            })
        ));
        assert!(matches!(
            parse(&format!("dialTimeout: 60\n{base}")),
            Err(ConfigError::DialTimeoutNotString(v)) if v == "60"
        ));
        assert_eq!(
            err(&format!("dialTimeout: \"60\"\n{base}")),
            "invalid dialTimeout: time: missing unit in duration \"60\""
        );
        assert_eq!(
            err(&format!("dialTimeout: -5s\n{base}")),
            "invalid dialTimeout: negative duration \"-5s\""
        );
        let c = parse(&format!("dialTimeout: 1h30m\nkeepAlive: 0x10\n{base}")).unwrap();
        assert_eq!(c.dial_timeout, Duration::from_secs(5400));
        assert_eq!(c.keep_alive, 16);
        let c = parse(&format!("dialTimeout: null\n{base}")).unwrap();
        assert_eq!(c.dial_timeout, DEFAULT_DIAL_TIMEOUT);
    }

    #[test]
    fn scalars_read_as_strings_like_go() {
        // Go's YAML reader puts any scalar into a string field verbatim.
        let c = parse(&format!(
            "brokerHost: test\nusername: 0123\npassword: true\n{TOPICS_YAML}"
        ))
        .unwrap();
        assert_eq!(c.username.as_deref(), Some("0123"));
        assert_eq!(c.password.as_deref(), Some("true"));
        let c = parse(&format!(
            "brokerHost: test\nusername:\npassword: \"\"\nunknownKey: 1\ntimeout: 5s\n{TOPICS_YAML}"
        ))
        .unwrap();
        assert_eq!((c.username, c.password), (None, None));
    }

    #[test]
    fn tls_modes() {
        let base = format!("brokerHost: broker:8883\n{TOPICS_YAML}");
        assert_eq!(parse(&base).unwrap().tls, TlsMode::Plain);

        // CA only: server-authenticated TLS (sdk-go would dial plain TCP).
        let c = parse(&format!("caFile: /etc/ca.pem\n{base}")).unwrap();
        assert_eq!(
            c.tls,
            TlsMode::ServerAuth {
                ca: PemSource::File("/etc/ca.pem".into())
            }
        );
        assert!(c.tls.is_tls());

        // caData wins over caFile; data is decoded.
        let c = parse(&format!(
            "caFile: /etc/ca.pem\ncaData: Q0EK\nclientCertFile: c.pem\nclientKeyData: |\n  S0VZ\n  Cg==\n{base}"
        ))
        .unwrap();
        assert_eq!(
            c.tls,
            TlsMode::Mutual {
                ca: Some(PemSource::Inline(b"CA\n".to_vec())),
                cert: PemSource::File("c.pem".into()),
                key: PemSource::Inline(b"KEY\n".to_vec()),
            }
        );
        assert_eq!(c.tls.ca(), Some(&PemSource::Inline(b"CA\n".to_vec())));

        // Mutual TLS without a CA: system roots.
        let c = parse(&format!(
            "clientCertFile: c.pem\nclientKeyFile: k.pem\n{base}"
        ))
        .unwrap();
        assert!(matches!(c.tls, TlsMode::Mutual { ca: None, .. }));

        // Empty data falls back to the file, as in Go.
        let c = parse(&format!("caData: \"\"\ncaFile: ca.pem\n{base}")).unwrap();
        assert_eq!(c.tls.ca(), Some(&PemSource::File("ca.pem".into())));
    }

    #[test]
    fn bad_base64_is_typed() {
        let base = format!("brokerHost: test\n{TOPICS_YAML}");
        for bad in [
            "caData: \"not base64!\"",
            "clientCertData: dGVzdAo",
            "clientKeyData: \"@@@@\"",
        ] {
            assert!(
                matches!(
                    parse(&format!("{bad}\n{base}")),
                    Err(ConfigError::InvalidBase64 { .. })
                ),
                "{bad}"
            );
        }
        assert!(
            err(&format!("caData: \"%%%%\"\n{base}")).starts_with("caData is not valid base64: ")
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut c = MqttConfig::new("b:1", hub1_topics());
        c.password = Some("hunter2".into());
        c.tls = TlsMode::Mutual {
            ca: None,
            cert: PemSource::File("c.pem".into()),
            key: PemSource::Inline(b"-----BEGIN PRIVATE KEY-----".to_vec()),
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        assert!(
            dbg.contains("<redacted>") && dbg.contains("Inline(<27 bytes>)"),
            "{dbg}"
        );
    }

    #[test]
    fn broker_hosts_extend_broker_host_in_order() {
        // A Go agent's file (no brokerHosts) loads unchanged: one address.
        let go = parse(&format!("brokerHost: a:1883\n{TOPICS_YAML}")).unwrap();
        assert!(go.broker_hosts.is_empty());
        assert_eq!(go.broker_addrs().unwrap(), vec![go.broker_addr().unwrap()]);

        let c = parse(&format!(
            "brokerHost: a:1883\nbrokerHosts: [b:1883, a:1883, \"[::1]:1884\", b:1883]\n{TOPICS_YAML}"
        ))
        .unwrap();
        let shown: Vec<String> = c
            .broker_addrs()
            .unwrap()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(shown, ["a:1883", "b:1883", "[::1]:1884"]);
        // Written back as read, and read back the same.
        let yaml = c.to_yaml().unwrap();
        assert!(yaml.contains("brokerHosts:"), "{yaml}");
        assert_eq!(parse(&yaml).unwrap(), c);
        assert!(!go.to_yaml().unwrap().contains("brokerHosts"));

        let bad = parse(&format!(
            "brokerHost: a:1883\nbrokerHosts: [b]\n{TOPICS_YAML}"
        ))
        .unwrap();
        assert_eq!(
            bad.broker_addrs().unwrap_err().to_string(),
            "invalid brokerHost \"b\": missing port in address"
        );
    }

    #[test]
    fn broker_lists_split_on_commas() {
        let shown = |s: &str| -> Vec<String> {
            split_broker_list(s)
                .unwrap()
                .iter()
                .map(|a| a.to_string())
                .collect()
        };
        assert_eq!(shown("a:1883"), ["a:1883"]);
        assert_eq!(shown("a:1883, b:1884,,a:1883"), ["a:1883", "b:1884"]);
        assert_eq!(shown("[::1]:1,10.0.0.1:2"), ["[::1]:1", "10.0.0.1:2"]);
        assert!(split_broker_list("").is_err());
        assert!(split_broker_list(" , ").is_err());
        assert!(split_broker_list("a:1883,b").is_err());
    }

    #[test]
    fn broker_addr() {
        let addr = |s: &str| split_host_port(s);
        assert_eq!(
            addr("maestro-mqtt:1883").unwrap(),
            BrokerAddr {
                host: "maestro-mqtt".into(),
                port: 1883
            }
        );
        assert_eq!(
            addr("[::1]:8883").unwrap(),
            BrokerAddr {
                host: "::1".into(),
                port: 8883
            }
        );
        assert_eq!(addr("10.0.0.1:1").unwrap().port, 1);
        for bad in [
            "test",
            "test:",
            "test:0",
            "test:65536",
            "test:mqtt",
            "test:+1",
            ":1883",
            "::1:1883",
            "[::1]",
            "[::1]x:1",
            "[::1:1883",
            "tcp://host:1883",
            "a b:1",
        ] {
            assert!(
                matches!(addr(bad), Err(ConfigError::InvalidBrokerHost { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            addr("test").unwrap_err().to_string(),
            "invalid brokerHost \"test\": missing port in address"
        );
        // TV-6's "test" parses (Go does not split it either) but has no port.
        let c = parse(&format!("brokerHost: test\n{TOPICS_YAML}")).unwrap();
        assert!(c.broker_addr().is_err());
    }

    #[test]
    fn go_durations() {
        let ok = [
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("0s", 0),
            ("60s", 60_000_000_000),
            ("10m", 600_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("500ms", 500_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("100us", 100_000),
            ("100\u{b5}s", 100_000),
            ("100\u{3bc}s", 100_000),
            ("7ns", 7),
            ("1h1m1s1ms1us1ns", 3_661_001_001_001),
            ("2562047h47m16.854775807s", i64::MAX as u64),
            ("0.3333333333333333333h", 1_200_000_000_000),
        ];
        for (s, nanos) in ok {
            assert_eq!(parse_go_duration(s), Ok(Duration::from_nanos(nanos)), "{s}");
        }
        let e = |s: &str| parse_go_duration(s).unwrap_err().to_string();
        assert_eq!(e(""), "time: invalid duration \"\"");
        assert_eq!(e("-"), "time: invalid duration \"-\"");
        assert_eq!(e("s"), "time: invalid duration \"s\"");
        assert_eq!(e(".s"), "time: invalid duration \".s\"");
        assert_eq!(e("1"), "time: missing unit in duration \"1\"");
        assert_eq!(e("1d"), "time: unknown unit \"d\" in duration \"1d\"");
        assert_eq!(e("1 s"), "time: unknown unit \" s\" in duration \"1 s\"");
        assert_eq!(
            e("1é"),
            "time: unknown unit \"\\xc3\\xa9\" in duration \"1\\xc3\\xa9\""
        );
        assert_eq!(
            e("9223372036854775808ns"),
            "time: invalid duration \"9223372036854775808ns\""
        );
        assert_eq!(e("2562048h"), "time: invalid duration \"2562048h\"");
        assert_eq!(e("-1s"), "negative duration \"-1s\"");
    }

    #[test]
    fn go_duration_format() {
        let f = |n: u64| format_go_duration(Duration::from_nanos(n));
        assert_eq!(f(0), "0s");
        assert_eq!(f(7), "7ns");
        assert_eq!(f(1_500), "1.5\u{b5}s");
        assert_eq!(f(500_000_000), "500ms");
        assert_eq!(f(1_500_000_000), "1.5s");
        assert_eq!(f(60_000_000_000), "1m0s");
        assert_eq!(f(600_000_000_000), "10m0s");
        assert_eq!(f(5_400_000_000_000), "1h30m0s");
        assert_eq!(f(i64::MAX as u64), "2562047h47m16.854775807s");
    }

    #[test]
    fn yaml_round_trip() {
        let mut topics = Topics::for_source("maestro")
            .unwrap()
            .with_shared_group("statussubscribers")
            .unwrap();
        topics.source_broadcast = Some("sources/+/sourcebroadcast".into());
        let mut c = MqttConfig::new("maestro-mqtt:1883", topics);
        c.username = Some("0123".into());
        c.password = Some("true".into());
        c.keep_alive = 30;
        c.dial_timeout = Duration::from_millis(1500);
        c.pub_qos = Qos::AtMostOnce;
        c.sub_qos = Qos::ExactlyOnce;
        c.tls = TlsMode::Mutual {
            ca: Some(PemSource::File("/etc/mqtt/ca.pem".into())),
            cert: PemSource::Inline(b"-----BEGIN CERTIFICATE-----\nx\n".to_vec()),
            key: PemSource::File("/etc/mqtt/key.pem".into()),
        };
        let yaml = c.to_yaml().unwrap();
        assert!(yaml.contains("dialTimeout: 1.5s"), "{yaml}");
        assert!(yaml.contains("brokerHost: maestro-mqtt:1883"), "{yaml}");
        assert_eq!(MqttConfig::from_bytes(yaml.as_bytes()).unwrap(), c);

        let plain = MqttConfig::new("b:1", Topics::for_agent("maestro", "c1").unwrap());
        let yaml = plain.to_yaml().unwrap();
        assert_eq!(parse(&yaml).unwrap(), plain);
        assert!(!yaml.contains("password"), "{yaml}");

        let server = MqttConfig {
            tls: TlsMode::ServerAuth {
                ca: PemSource::Inline(vec![0, 1, 2, 255]),
            },
            ..plain.clone()
        };
        assert_eq!(parse(&server.to_yaml().unwrap()).unwrap(), server);
    }

    #[test]
    fn to_yaml_refuses_what_would_not_read_back() {
        let good = MqttConfig::new("b:1", hub1_topics());
        let mut c = good.clone();
        c.broker_host.clear();
        assert!(matches!(c.to_yaml(), Err(ConfigError::BrokerHostRequired)));
        let mut c = good.clone();
        c.topics.agent_events = "x".into();
        assert!(matches!(c.to_yaml(), Err(ConfigError::Topics(_))));
        let mut c = good.clone();
        c.dial_timeout = Duration::from_secs(u64::MAX);
        assert!(matches!(c.to_yaml(), Err(ConfigError::Unwritable { .. })));
        let mut c = good.clone();
        c.tls = TlsMode::ServerAuth {
            ca: PemSource::Inline(Vec::new()),
        };
        assert!(matches!(
            c.to_yaml(),
            Err(ConfigError::Unwritable { key: "caData", .. })
        ));
        let mut c = good;
        c.tls = TlsMode::ServerAuth {
            ca: PemSource::File(PathBuf::new()),
        };
        assert!(matches!(
            c.to_yaml(),
            Err(ConfigError::Unwritable { key: "caFile", .. })
        ));
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("~".to_string()),
            Just("\"\"".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("10m".to_string()),
            Just("dGVzdAo=".to_string()),
            Just("sources/a/consumers/+/sourceevents".to_string()),
            Just("sources/a/consumers/+/agentevents".to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            "[0-2]",
            "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
        ]
    }

    /// A config-shaped document: each key present or not, with values that are
    /// mostly plausible (so that many documents parse) and sometimes anything.
    fn doc() -> impl Strategy<Value = String> {
        fn entry(key: &'static str, plausible: BoxedStrategy<String>) -> BoxedStrategy<String> {
            let present = if key == "brokerHost" { 0.95 } else { 0.5 };
            prop::option::weighted(present, prop_oneof![19 => plausible, 1 => scalar()])
                .prop_map(move |v| v.map(|v| format!("{key}: {v}\n")).unwrap_or_default())
                .boxed()
        }
        fn t(key: &'static str, plausible: &'static [&'static str]) -> BoxedStrategy<String> {
            let plausible = prop::sample::select(plausible)
                .prop_map(str::to_string)
                .boxed();
            let present = if key.ends_with("Events") { 0.95 } else { 0.5 };
            prop::option::weighted(present, prop_oneof![19 => plausible, 1 => scalar()])
                .prop_map(move |v| v.map(|v| format!("  {key}: {v}\n")).unwrap_or_default())
                .boxed()
        }
        let pem =
            prop::sample::select(vec!["Q0EK", "\"\"", "~", "dGVzdAo="]).prop_map(str::to_string);
        let entries = vec![
            entry("brokerHost", Just("b:1883".to_string()).boxed()),
            entry("username", "[a-z0-9]{0,6}".boxed()),
            entry(
                "password",
                "[ -~]{0,8}".prop_map(|s| format!("{s:?}")).boxed(),
            ),
            entry(
                "keepAlive",
                prop_oneof![9 => 0u32..=65535, 1 => 65536u32..70000].prop_map(|n| n.to_string()).boxed(),
            ),
            entry("dialTimeout", "[0-9]{1,3}(ms|s|m|h)".boxed()),
            entry("pubQoS", prop_oneof![9 => 0i64..=2, 1 => -1i64..4].prop_map(|n| n.to_string()).boxed()),
            entry("subQoS", prop_oneof![9 => 0i64..=2, 1 => -1i64..4].prop_map(|n| n.to_string()).boxed()),
            entry("caFile", Just("ca.pem".to_string()).boxed()),
            entry("caData", pem.clone().boxed()),
            // Certificate and key mostly come as a pair, sometimes alone (an error).
            prop_oneof![
                4 => Just(String::new()),
                2 => Just("clientCertFile: c.pem\nclientKeyFile: k.pem\n".to_string()),
                2 => (pem.clone(), pem.clone()).prop_map(|(c, k)| format!(
                    "clientCertData: {c}\nclientKeyData: {k}\nclientCertFile: c.pem\nclientKeyFile: k.pem\n"
                )),
                1 => pem.prop_map(|k| format!("clientKeyData: {k}\n")),
            ]
            .boxed(),
        ];
        let topics = (
            t(
                "sourceEvents",
                &[
                    "sources/a/consumers/+/sourceevents",
                    "$share/g/x/+/y/+/sourceevents",
                ],
            ),
            t(
                "agentEvents",
                &[
                    "sources/a/consumers/+/agentevents",
                    "sources/a/consumers/c/agentevents",
                ],
            ),
            t(
                "sourceBroadcast",
                &["sources/+/sourcebroadcast", "\"\"", "~"],
            ),
            t("agentBroadcast", &["clusters/+/agentbroadcast", "\"\""]),
        )
            .prop_map(|(a, b, c, d)| format!("topics:\n{a}{b}{c}{d}"));
        (entries, prop::option::weighted(0.9, topics))
            .prop_map(|(entries, topics)| entries.concat() + &topics.unwrap_or_default())
    }

    #[test]
    fn config_like_documents_never_panic_and_round_trip() {
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config::with_cases(512));
        let accepted = std::cell::Cell::new(0u32);
        runner
            .run(&doc(), |d| {
                if let Ok(c) = parse(&d) {
                    accepted.set(accepted.get() + 1);
                    let yaml = c.to_yaml().unwrap();
                    prop_assert_eq!(parse(&yaml).unwrap(), c);
                }
                Ok(())
            })
            .unwrap();
        // The round-trip half is only meaningful if the generator yields valid configs.
        assert!(accepted.get() >= 50, "only {} accepted", accepted.get());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = MqttConfig::from_bytes(&bytes);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,128}") {
            let _ = parse(&s);
            let _ = parse_go_duration(&s);
            let _ = split_host_port(&s);
        }

        #[test]
        fn duration_format_round_trips(n in 0..=i64::MAX as u64) {
            let d = Duration::from_nanos(n);
            prop_assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
        }

        #[test]
        fn duration_like_strings_never_panic(s in "[-+]?([0-9.]{0,22}(ns|us|ms|s|m|h|µs|d|)){0,4}") {
            let _ = parse_go_duration(&s);
        }
    }

    #[test]
    fn unknown_keys_are_listed_not_refused() {
        let text = "broker: b:1883\nbrokerHost: b:1883\nkeepalive: 5\ntopics:\n  sourceEvents: sources/s/consumers/+/sourceevents\n  agentEvents: sources/s/consumers/+/agentevents\n  sourceBroadcst: x\n";
        assert_eq!(
            MqttConfig::unknown_keys(text.as_bytes()),
            ["broker", "keepalive", "topics.sourceBroadcst"]
        );
        assert!(MqttConfig::from_bytes(text.as_bytes()).is_ok());
        assert!(MqttConfig::unknown_keys(b"{\"brokerHost\": \"x:1\"}").is_empty());
        // workbus's own extension is known too.
        assert!(
            MqttConfig::unknown_keys(b"{\"brokerHost\": \"x:1\", \"brokerHosts\": [\"y:1\"]}")
                .is_empty()
        );
        assert!(MqttConfig::unknown_keys(b"").is_empty());
        assert!(MqttConfig::unknown_keys(b"- a\n").is_empty());
    }
}
