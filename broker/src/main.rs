//! `workbus-broker` binary: runs the broker until Ctrl-C or SIGTERM, then stops gracefully
//! (SIGHUP reloads the TLS files and the credential file); `certs …` makes the CA and certificates, `passwd` adds
//! a hashed credential, `acl …` prints the topic ACL for Mosquitto or EMQX.
//!
//! Every flag can also come from a `WORKBUS_BROKER_*` environment variable; the defaults
//! are [`BrokerConfig::default`]'s. Secure by default: plaintext only on loopback unless
//! an address says otherwise, TLS listeners on 8883 once a certificate is given, and the
//! fleet's topic ACLs on (`--acl off` to run an open broker).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use prometheus_client::registry::Registry;
use workbus_broker::certs::{self, Validity};
use workbus_broker::credentials::{self, Credentials};
use workbus_broker::{
    Broker, BrokerConfig, BrokerHandle, ClientAuth, DEFAULT_TLS_LISTEN, FleetAcl, TlsConfig,
    external,
};
use workbus_process::status_endpoint::{StatusEndpoint, StatusSource};
use workbus_process::{defaults, init_logging, shutdown_signal};
use workbus_schemas::acl::{Identity, TopicAcl};
use workbus_schemas::config::MqttConfig;
use workbus_schemas::topics::Topics;

/// `workbus-broker`: the workbus MQTT broker.
#[derive(Debug, Parser)]
#[command(
    name = "workbus-broker",
    version,
    about = "The workbus MQTT 5 and 3.1.1 broker: runs until Ctrl-C or SIGTERM, then stops gracefully (SIGHUP reloads the TLS files and the credential file)"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Plaintext listen address (repeatable; comma-separated in the environment). Default:
    /// 127.0.0.1:1883 without TLS, none with TLS.
    #[arg(
        long,
        value_name = "ADDR",
        env = "WORKBUS_BROKER_LISTEN",
        value_delimiter = ','
    )]
    listen: Vec<SocketAddr>,
    /// TLS listen address (repeatable; default 0.0.0.0:8883 when --tls-cert is given).
    #[arg(
        long,
        value_name = "ADDR",
        env = "WORKBUS_BROKER_TLS_LISTEN",
        value_delimiter = ','
    )]
    tls_listen: Vec<SocketAddr>,
    /// Server certificate chain (PEM) for the TLS listeners.
    #[arg(
        long,
        value_name = "FILE",
        env = "WORKBUS_BROKER_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        env = "WORKBUS_BROKER_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// CA bundle (PEM) client certificates must chain to (mutual TLS).
    #[arg(
        long,
        value_name = "FILE",
        env = "WORKBUS_BROKER_CLIENT_CA",
        requires = "tls_cert"
    )]
    client_ca: Option<PathBuf>,
    /// Client certificates: required (default with --client-ca), optional (clients
    /// without one log in with --credentials) or off.
    #[arg(long, value_name = "MODE", env = "WORKBUS_BROKER_CLIENT_AUTH")]
    client_auth: Option<ClientAuthArg>,
    /// Certificate revocation lists (PEM) of the client CAs (`certs revoke` writes
    /// `crl.pem`): listed client certificates are refused; reloaded with the TLS files.
    #[arg(
        long,
        value_name = "FILE",
        env = "WORKBUS_BROKER_CRL_FILE",
        requires = "client_ca"
    )]
    crl_file: Option<PathBuf>,
    /// How often the TLS files are checked for changes, in seconds (0: only on SIGHUP).
    #[arg(
        long,
        value_name = "SECS",
        env = "WORKBUS_BROKER_TLS_RELOAD",
        default_value_t = 30
    )]
    tls_reload: u64,
    /// Topic ACLs per identity (agents: their own cluster's topics only; the source: the
    /// source side). `off` lets every client do everything.
    #[arg(
        long,
        value_name = "ON|OFF",
        env = "WORKBUS_BROKER_ACL",
        default_value = "on"
    )]
    acl: OnOff,
    /// The fleet's source id (default topic layout `sources/<id>/consumers/+/…`).
    #[arg(
        long,
        value_name = "ID",
        env = "WORKBUS_BROKER_SOURCE_ID",
        default_value = defaults::SOURCE_ID,
        global = true
    )]
    source_id: String,
    /// The source side's sdk-go MQTT config file, whose topics the ACL is derived from
    /// (instead of the default layout of --source-id).
    #[arg(
        long,
        value_name = "FILE",
        env = "WORKBUS_BROKER_TOPICS_CONFIG",
        global = true
    )]
    topics_config: Option<PathBuf>,
    /// Credential file (`identity:argon2-hash` lines, see `passwd`) for clients without
    /// certificates; re-read on SIGHUP, closing the sessions of identities it withdrew.
    #[arg(long, value_name = "FILE", env = "WORKBUS_BROKER_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// Refused operations after which a connection is closed (0: never).
    #[arg(
        long,
        value_name = "N",
        env = "WORKBUS_BROKER_MAX_DENIALS",
        default_value_t = BrokerConfig::default().max_denials
    )]
    max_denials: u32,
    /// Largest packet accepted, in bytes or with a KiB or MiB suffix.
    #[arg(
        long,
        value_name = "SIZE",
        env = "WORKBUS_BROKER_MAX_PACKET_SIZE",
        default_value_t = Size(BrokerConfig::default().max_packet_size)
    )]
    max_packet_size: Size,
    /// Most concurrent client connections.
    #[arg(
        long,
        value_name = "N",
        env = "WORKBUS_BROKER_MAX_CONNECTIONS",
        default_value_t = BrokerConfig::default().max_connections
    )]
    max_connections: usize,
    /// Largest keep-alive honoured, in seconds; 0 = no limit.
    #[arg(
        long,
        value_name = "SECS",
        env = "WORKBUS_BROKER_MAX_KEEPALIVE",
        default_value_t = BrokerConfig::default().max_keepalive
    )]
    max_keepalive: u16,
    /// Most messages queued for one client before it is disconnected (0x97).
    #[arg(
        long,
        value_name = "N",
        env = "WORKBUS_BROKER_MAX_QUEUED_MESSAGES",
        default_value_t = BrokerConfig::default().max_queued_messages
    )]
    max_queued_messages: usize,
    /// Most bytes queued for one client before it is disconnected (0x97), in bytes or
    /// with a KiB or MiB suffix; at least --max-packet-size.
    #[arg(
        long,
        value_name = "SIZE",
        env = "WORKBUS_BROKER_MAX_QUEUED_BYTES",
        default_value_t = Size(BrokerConfig::default().max_queued_bytes as u32)
    )]
    max_queued_bytes: Size,
    /// Most subscriptions one client may hold (beyond: SUBACK 0x97, 3.1.1 0x80).
    #[arg(
        long,
        value_name = "N",
        env = "WORKBUS_BROKER_MAX_SUBSCRIPTIONS",
        default_value_t = BrokerConfig::default().max_subscriptions
    )]
    max_subscriptions: usize,
    /// Longest topic filter accepted, in bytes (beyond: SUBACK 0x8F, 3.1.1 0x80).
    #[arg(
        long,
        value_name = "BYTES",
        env = "WORKBUS_BROKER_MAX_FILTER_LEN",
        default_value_t = BrokerConfig::default().max_filter_len
    )]
    max_filter_len: usize,
    /// Most connections from one source address; 0 = no limit.
    #[arg(
        long,
        value_name = "N",
        env = "WORKBUS_BROKER_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = BrokerConfig::default().max_connections_per_address
    )]
    max_connections_per_address: usize,
    /// Apply --max-connections-per-address to loopback clients too (exempt by default).
    #[arg(long, env = "WORKBUS_BROKER_LIMIT_LOOPBACK")]
    limit_loopback: bool,
    /// File descriptors kept free for the broker itself: client connections are limited
    /// to the open-file limit minus this.
    #[arg(
        long,
        value_name = "N",
        env = "WORKBUS_BROKER_FD_RESERVE",
        default_value_t = BrokerConfig::default().fd_reserve
    )]
    fd_reserve: usize,
    /// Serve /metrics (Prometheus), /healthz, /livez and /readyz over HTTP on this
    /// address, e.g. 127.0.0.1:9101 (off by default; no authentication: keep it on
    /// loopback or a management network).
    #[arg(long, value_name = "ADDR", env = "WORKBUS_BROKER_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Log filter, e.g. info or workbus_broker=debug (without it: RUST_LOG, else info).
    #[arg(long, value_name = "FILTER", env = "WORKBUS_BROKER_LOG")]
    log: Option<String>,
    /// Log line format: text, or json (one object per line, for log collectors).
    #[arg(long, value_enum, default_value_t, env = "WORKBUS_BROKER_LOG_FORMAT")]
    log_format: workbus_process::LogFormat,
}

/// The tools next to the broker.
#[derive(Debug, Subcommand)]
enum Command {
    /// Certificates: a CA, the broker's certificate, client certificates, CA rotation.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Adds (or replaces) an identity's password in a credential file; the password is
    /// read from the first line of standard input and stored as an Argon2id hash.
    Passwd {
        /// The credential file (created 0600 if missing).
        #[arg(long, value_name = "FILE", env = "WORKBUS_BROKER_CREDENTIALS")]
        file: PathBuf,
        /// The identity: a cluster name, or source.<source id>.
        #[arg(long, value_name = "NAME", env = "WORKBUS_BROKER_PASSWD_IDENTITY")]
        identity: String,
    },
    /// Prints the topic ACL (from --source-id or --topics-config) for an external broker.
    Acl {
        /// Which broker's format.
        #[arg(value_enum)]
        format: AclFormat,
    },
    /// Health check (the container's HEALTHCHECK): exits 0 when ADDR accepts a TCP
    /// connection within 3 s, 1 otherwise.
    Probe {
        /// The listener to check, `host:port`.
        #[arg(default_value = "127.0.0.1:8883")]
        addr: String,
    },
}

/// `certs …`.
#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Creates the directory, a CA and the broker's certificate.
    Init {
        /// The certificate directory.
        #[arg(long, value_name = "DIR", env = "WORKBUS_BROKER_CERTS_DIR")]
        dir: PathBuf,
        /// Extra DNS name or IP address of the broker (repeatable; localhost, 127.0.0.1
        /// and ::1 are always included).
        #[arg(
            long,
            value_name = "NAME",
            env = "WORKBUS_BROKER_CERTS_SERVER_NAME",
            value_delimiter = ','
        )]
        server_name: Vec<String>,
    },
    /// Issues a client certificate for a cluster's agent or for a source.
    Issue {
        /// The certificate directory.
        #[arg(long, value_name = "DIR", env = "WORKBUS_BROKER_CERTS_DIR")]
        dir: PathBuf,
        /// The cluster whose agent gets the certificate.
        #[arg(
            long,
            value_name = "NAME",
            env = "WORKBUS_BROKER_CERTS_CLUSTER",
            conflicts_with = "source",
            required_unless_present = "source"
        )]
        cluster: Option<String>,
        /// The source (hub) id that gets the certificate.
        #[arg(long, value_name = "ID", env = "WORKBUS_BROKER_CERTS_SOURCE")]
        source: Option<String>,
        /// Validity in days.
        #[arg(
            long,
            value_name = "DAYS",
            env = "WORKBUS_BROKER_CERTS_DAYS",
            default_value_t = 365
        )]
        days: u64,
    },
    /// Re-issues the broker's certificate with the current CA (after `rotate-ca`).
    Server {
        /// The certificate directory.
        #[arg(long, value_name = "DIR", env = "WORKBUS_BROKER_CERTS_DIR")]
        dir: PathBuf,
        /// Extra DNS name or IP address of the broker (repeatable).
        #[arg(
            long,
            value_name = "NAME",
            env = "WORKBUS_BROKER_CERTS_SERVER_NAME",
            value_delimiter = ','
        )]
        server_name: Vec<String>,
    },
    /// Starts a CA rotation: new CA, bundle = new + old.
    RotateCa {
        /// The certificate directory.
        #[arg(long, value_name = "DIR", env = "WORKBUS_BROKER_CERTS_DIR")]
        dir: PathBuf,
    },
    /// Ends a CA rotation: bundle = the new CA only.
    FinishRotation {
        /// The certificate directory.
        #[arg(long, value_name = "DIR", env = "WORKBUS_BROKER_CERTS_DIR")]
        dir: PathBuf,
    },
    /// Revokes a client certificate of the current CA: adds it to `crl.pem` (a broker
    /// started with `--crl-file` refuses it from its next TLS reload).
    Revoke {
        /// The certificate directory.
        #[arg(long, value_name = "DIR", env = "WORKBUS_BROKER_CERTS_DIR")]
        dir: PathBuf,
        /// The certificate file to revoke.
        #[arg(long, value_name = "FILE", env = "WORKBUS_BROKER_CERTS_CERT")]
        cert: PathBuf,
    },
}

/// `acl …` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AclFormat {
    /// A Mosquitto `acl_file`.
    Mosquitto,
    /// EMQX file authorization rules (`acl.conf`).
    Emqx,
}

/// `--client-auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientAuthArg {
    Off,
    Optional,
    Required,
}

/// `on` / `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// A command line that cannot be served.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    TopicsConfig { path: PathBuf, reason: String },
    #[error(transparent)]
    Acl(#[from] workbus_broker::AclError),
    #[error(transparent)]
    Topics(#[from] workbus_schemas::topics::TopicError),
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error(transparent)]
    Identity(#[from] workbus_schemas::acl::InvalidIdentity),
    #[error(
        "topic ACLs are on but no client could prove an identity: give --client-ca (client certificates) or --credentials, or --acl off"
    )]
    NoIdentities,
    #[error("no password on standard input")]
    NoPassword,
    #[error(transparent)]
    Probe(#[from] workbus_process::probe::ProbeError),
}

impl Args {
    /// The broker configuration these flags describe.
    fn config(&self) -> BrokerConfig {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert_file: cert.clone(),
                key_file: key.clone(),
                client_ca_file: self.client_ca.clone(),
                client_auth: match (self.client_auth, &self.client_ca) {
                    (Some(ClientAuthArg::Off), _) | (None, None) => ClientAuth::Off,
                    (Some(ClientAuthArg::Optional), _) => ClientAuth::Optional,
                    (Some(ClientAuthArg::Required), _) | (None, Some(_)) => ClientAuth::Required,
                },
                reload_interval: (self.tls_reload > 0)
                    .then(|| Duration::from_secs(self.tls_reload)),
                crl_file: self.crl_file.clone(),
            }),
            _ => None,
        };
        let listen = match (self.listen.is_empty(), &tls) {
            (false, _) => self.listen.clone(),
            (true, None) => BrokerConfig::default().listen,
            (true, Some(_)) => Vec::new(),
        };
        let tls_listen = match (self.tls_listen.is_empty(), &tls) {
            (true, Some(_)) => vec![DEFAULT_TLS_LISTEN],
            _ => self.tls_listen.clone(),
        };
        BrokerConfig {
            listen,
            tls_listen,
            tls,
            max_denials: self.max_denials,
            max_packet_size: self.max_packet_size.0,
            max_connections: self.max_connections,
            max_keepalive: self.max_keepalive,
            max_queued_messages: self.max_queued_messages,
            max_queued_bytes: self.max_queued_bytes.0 as usize,
            max_subscriptions: self.max_subscriptions,
            max_filter_len: self.max_filter_len,
            max_connections_per_address: self.max_connections_per_address,
            limit_loopback: self.limit_loopback,
            fd_reserve: self.fd_reserve,
            ..BrokerConfig::default()
        }
    }

    /// The topic templates the ACL is derived from.
    fn topics(&self) -> Result<Topics, SetupError> {
        match &self.topics_config {
            None => Ok(Topics::for_source(&self.source_id)?),
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| SetupError::Read {
                    path: path.clone(),
                    source,
                })?;
                let config =
                    MqttConfig::from_bytes(&bytes).map_err(|e| SetupError::TopicsConfig {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                Ok(config.topics)
            }
        }
    }

    /// The source identities of the fleet (for external brokers' per-user rules).
    fn sources(&self) -> Result<Vec<Identity>, SetupError> {
        Ok(vec![Identity::parse(&format!(
            "{}{}",
            workbus_schemas::acl::SOURCE_IDENTITY_PREFIX,
            self.source_id
        ))?])
    }

    /// The authorizer: the fleet ACL, or `None` for `--acl off`.
    fn fleet_acl(&self, config: &BrokerConfig) -> Result<Option<FleetAcl>, SetupError> {
        if self.acl == OnOff::Off {
            return Ok(None);
        }
        let mut acl = FleetAcl::new(&self.topics()?)?;
        let certificates = config
            .tls
            .as_ref()
            .is_some_and(|t| t.client_auth != ClientAuth::Off);
        if let Some(path) = &self.credentials {
            acl = acl.with_credentials(Credentials::load(path)?);
        } else if !certificates {
            return Err(SetupError::NoIdentities);
        }
        Ok(Some(acl))
    }
}

/// A size in bytes, written as bytes or with a `KiB` or `MiB` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size(u32);

const KIB: u32 = 1024;
const MIB: u32 = 1024 * KIB;

/// A `--max-packet-size` that is not a size.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a size in bytes (a number up to 4 GiB, optionally with KiB or MiB)")]
struct NotASize(String);

impl FromStr for Size {
    type Err = NotASize;

    fn from_str(s: &str) -> Result<Size, NotASize> {
        let (digits, unit) = if let Some(d) = s.strip_suffix("MiB") {
            (d, MIB)
        } else if let Some(d) = s.strip_suffix("KiB") {
            (d, KIB)
        } else {
            (s, 1)
        };
        digits
            .trim()
            .parse::<u32>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .map(Size)
            .ok_or_else(|| NotASize(s.to_string()))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n != 0 && n % MIB == 0 => write!(f, "{}MiB", n / MIB),
            n if n != 0 && n % KIB == 0 => write!(f, "{}KiB", n / KIB),
            n => write!(f, "{n}"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(command) = &args.command {
        return match run_tool(&args, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("workbus-broker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let stop = shutdown_signal();
    if let Err(e) = init_logging(args.log.as_deref(), defaults::LOG, args.log_format) {
        eprintln!("workbus-broker: {e}");
        return ExitCode::from(2);
    }
    let config = args.config();
    let acl = match args.fleet_acl(&config) {
        Ok(acl) => acl,
        Err(e) => {
            eprintln!("workbus-broker: {e}");
            return ExitCode::from(2);
        }
    };
    let broker = Broker::new(config.clone());
    let started = match &acl {
        Some(acl) => broker.with_authorizer(acl.clone()).start().await,
        None => broker.start().await,
    };
    let handle = match started {
        Ok(h) => h,
        Err(e) => {
            eprintln!("workbus-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The credential file and the table the ACL checks against, reloaded on SIGHUP.
    let password_file = args
        .credentials
        .clone()
        .zip(acl.as_ref().and_then(|a| a.credentials().cloned()));
    for line in banner(
        &handle,
        &config,
        acl.as_ref().map(|_| args.source_id.as_str()),
    ) {
        println!("{line}");
    }
    let endpoint = match args.metrics_listen {
        Some(addr) => match StatusEndpoint::start(addr, Arc::new(BrokerStatus::new(&handle))).await
        {
            Ok(ep) => {
                println!(
                    "workbus-broker metrics and health on http://{}/metrics (/healthz, /readyz)",
                    ep.local_addr()
                );
                Some(ep)
            }
            Err(e) => {
                eprintln!("workbus-broker: {e}");
                handle.shutdown().await;
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    tokio::select! {
        _ = stop => {}
        _ = reload_on_sighup(&handle, password_file.as_ref()) => {}
    }
    println!("workbus-broker shutting down");
    if let Some(ep) = endpoint {
        ep.shutdown().await;
    }
    handle.shutdown().await;
    ExitCode::SUCCESS
}

/// What the standalone broker's `--metrics-listen` endpoint shows: its metrics, the
/// process's and its build; ready once it listens (it does by the time this exists).
struct BrokerStatus {
    registry: Registry,
}

impl BrokerStatus {
    fn new(handle: &BrokerHandle) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(handle.metrics()));
        workbus_process::metrics::register_process_metrics(&mut registry, "broker");
        Self { registry }
    }
}

impl StatusSource for BrokerStatus {
    fn metrics(&self) -> String {
        workbus_process::metrics::encode(&self.registry)
    }
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What the broker tells its operator at start: every listener with its protection, and
/// whether ACLs are on.
fn banner(handle: &BrokerHandle, config: &BrokerConfig, acl_source: Option<&str>) -> Vec<String> {
    let mut lines = Vec::new();
    for addr in handle.local_addrs() {
        let reach = if addr.ip().is_loopback() {
            "plaintext, loopback only"
        } else {
            "PLAINTEXT, reachable from the network"
        };
        lines.push(format!(
            "workbus-broker listening on {addr} (MQTT 5 and 3.1.1, {reach})"
        ));
    }
    let clients = match config.tls.as_ref().map(|t| t.client_auth) {
        Some(ClientAuth::Required) => "client certificates required",
        Some(ClientAuth::Optional) => "client certificates optional",
        _ => "no client certificates",
    };
    for addr in handle.tls_addrs() {
        lines.push(format!(
            "workbus-broker listening on {addr} (MQTT 5 and 3.1.1 over TLS, {clients})"
        ));
    }
    lines.push(match acl_source {
        Some(source) => format!("workbus-broker topic ACLs on (source {source})"),
        None => "workbus-broker topic ACLs OFF: every client may publish and subscribe anywhere"
            .to_string(),
    });
    lines
}

/// Reloads the TLS files and the credential file on every SIGHUP; never returns (unless
/// signals are unavailable).
async fn reload_on_sighup(handle: &BrokerHandle, password_file: Option<&(PathBuf, Credentials)>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return std::future::pending().await;
    };
    while hup.recv().await.is_some() {
        match handle.reload_tls().await {
            Ok(r) => println!("workbus-broker TLS files reloaded ({r:?})"),
            Err(e) => eprintln!("workbus-broker: TLS reload failed, previous files kept: {e}"),
        }
        if let Some((path, credentials)) = password_file {
            reload_credentials(handle, path, credentials).await;
        }
    }
    std::future::pending().await
}

/// Re-reads the credential file; the sessions of identities it withdrew are closed.
async fn reload_credentials(handle: &BrokerHandle, path: &Path, credentials: &Credentials) {
    let (path, table) = (path.to_owned(), credentials.clone());
    // Reading a file is blocking work.
    match tokio::task::spawn_blocking(move || table.reload(&path)).await {
        Ok(Ok(reloaded)) => {
            let closed = handle.close_password_sessions(&reloaded.withdrawn);
            println!(
                "workbus-broker credential file reloaded: {} identities, {} withdrawn, {closed} sessions closed",
                reloaded.identities,
                reloaded.withdrawn.len()
            );
        }
        Ok(Err(e)) => {
            eprintln!("workbus-broker: credential reload failed, previous file kept: {e}")
        }
        Err(e) => eprintln!("workbus-broker: credential reload failed: {e}"),
    }
}

/// Runs one of the tools.
fn run_tool(args: &Args, command: &Command) -> Result<(), SetupError> {
    match command {
        Command::Certs(c) => run_certs(c),
        Command::Probe { addr } => {
            workbus_process::probe::probe_tcp(addr, workbus_process::probe::PROBE_TIMEOUT)?;
            Ok(())
        }
        Command::Passwd { file, identity } => {
            Identity::parse(identity)?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|source| SetupError::Read {
                    path: PathBuf::from("<stdin>"),
                    source,
                })?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(SetupError::NoPassword);
            }
            let hash = credentials::hash_password(password.as_bytes())?;
            let old = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(source) => {
                    return Err(SetupError::Read {
                        path: file.clone(),
                        source,
                    });
                }
            };
            certs::write(
                file,
                credentials::set_line(&old, identity, &hash).as_bytes(),
            )?;
            println!("{identity} set in {}", file.display());
            Ok(())
        }
        Command::Acl { format } => {
            let acl = TopicAcl::new(&args.topics()?)?;
            let sources = args.sources()?;
            print!(
                "{}",
                match format {
                    AclFormat::Mosquitto => external::mosquitto_acl(&acl, &sources),
                    AclFormat::Emqx => external::emqx_acl(&acl, &sources),
                }
            );
            Ok(())
        }
    }
}

fn run_certs(command: &CertsCommand) -> Result<(), SetupError> {
    let show = |what: &str, issued: &certs::Issued| {
        println!(
            "{what}: {} (key {})",
            issued.cert.display(),
            issued.key.display()
        );
    };
    match command {
        CertsCommand::Init { dir, server_name } => {
            let server = certs::init(dir, server_name)?;
            println!("CA: {}", dir.join(certs::CA_CERT).display());
            println!(
                "trusted CAs (client CA / clients' CA file): {}",
                dir.join(certs::CA_BUNDLE).display()
            );
            show("broker certificate", &server);
        }
        CertsCommand::Issue {
            dir,
            cluster,
            source,
            days,
        } => {
            let identity = match (cluster, source) {
                (Some(c), _) => Identity::Agent(c.clone()),
                (None, Some(s)) => Identity::Source(s.clone()),
                (None, None) => unreachable_identity(),
            };
            // Parsed back from its text form: the same checks as a broker applies.
            let identity = Identity::parse(&identity.name())?;
            let validity =
                Validity::starting_now(Duration::from_secs(days.saturating_mul(24 * 3600)));
            let issued = certs::issue_client(dir, &identity, validity)?;
            show(&format!("certificate of {identity}"), &issued);
        }
        CertsCommand::Server { dir, server_name } => {
            let issued = certs::issue_server(
                dir,
                server_name,
                Validity::starting_now(certs::LEAF_VALIDITY),
            )?;
            show("broker certificate", &issued);
        }
        CertsCommand::RotateCa { dir } => {
            certs::rotate_ca(dir)?;
            println!(
                "new CA in {}; {} holds the new and the previous CA: re-issue the broker's and every client's certificate, then run finish-rotation",
                dir.join(certs::CA_CERT).display(),
                dir.join(certs::CA_BUNDLE).display()
            );
        }
        CertsCommand::FinishRotation { dir } => {
            certs::finish_rotation(dir)?;
            println!(
                "{} holds the current CA only",
                dir.join(certs::CA_BUNDLE).display()
            );
        }
        CertsCommand::Revoke { dir, cert } => {
            let revoked = certs::revoke(dir, cert)?;
            println!(
                "{} revoked; {} lists {revoked} certificate(s)",
                cert.display(),
                dir.join(certs::CRL).display()
            );
        }
    }
    Ok(())
}

/// clap requires `--cluster` or `--source`; an identity that can never be valid keeps
/// this path free of panics all the same.
fn unreachable_identity() -> Identity {
    Identity::Agent(String::new())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    fn args(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("workbus-broker").chain(list.iter().copied()))
    }

    #[test]
    fn every_flag_has_an_env_var() {
        let missing = workbus_process::flags_without_env(Args::command());
        assert_eq!(missing, Vec::<String>::new());
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let config = args(&[]).expect("no flags needed").config();
        let default = BrokerConfig::default();
        assert_eq!(config.listen, default.listen);
        assert_eq!(config.max_packet_size, default.max_packet_size);
        assert_eq!(config.max_connections, default.max_connections);
        assert_eq!(config.max_keepalive, default.max_keepalive);
        assert_eq!(config.max_queued_messages, default.max_queued_messages);
        assert_eq!(config.max_queued_bytes, default.max_queued_bytes);
        assert_eq!(config.max_subscriptions, default.max_subscriptions);
        assert_eq!(config.max_filter_len, default.max_filter_len);
        assert_eq!(
            config.max_connections_per_address,
            default.max_connections_per_address
        );
        assert_eq!(config.limit_loopback, default.limit_loopback);
        assert_eq!(config.fd_reserve, default.fd_reserve);
    }

    #[test]
    fn limit_flags() {
        let config = args(&[
            "--max-queued-messages",
            "50",
            "--max-queued-bytes",
            "4MiB",
            "--max-subscriptions",
            "5",
            "--max-filter-len",
            "256",
            "--max-connections-per-address",
            "3",
            "--limit-loopback",
            "--fd-reserve",
            "10",
        ])
        .expect("valid")
        .config();
        assert_eq!(config.max_queued_messages, 50);
        assert_eq!(config.max_queued_bytes, 4 * 1024 * 1024);
        assert_eq!(config.max_subscriptions, 5);
        assert_eq!(config.max_filter_len, 256);
        assert_eq!(config.max_connections_per_address, 3);
        assert!(config.limit_loopback);
        assert_eq!(config.fd_reserve, 10);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn flags() {
        let a = args(&[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:1884",
            "--max-packet-size",
            "2MiB",
            "--max-connections",
            "7",
            "--max-keepalive",
            "0",
            "--log",
            "debug",
        ])
        .expect("valid");
        let config = a.config();
        assert_eq!(
            config.listen,
            [
                "127.0.0.1:0".parse().unwrap(),
                "[::1]:1884".parse().unwrap()
            ] as [SocketAddr; 2]
        );
        assert_eq!(config.max_packet_size, 2 * 1024 * 1024);
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.max_keepalive, 0);
        assert_eq!(a.log.as_deref(), Some("debug"));
        let e = |list: &[&str]| args(list).expect_err("refused").kind();
        assert_eq!(e(&["--help"]), ErrorKind::DisplayHelp);
        assert_eq!(e(&["--listen"]), ErrorKind::InvalidValue);
        assert_eq!(e(&["--bogus"]), ErrorKind::UnknownArgument);
        assert_eq!(e(&["--listen", "nope"]), ErrorKind::ValueValidation);
        assert_eq!(
            e(&["--max-packet-size", "9999999MiB"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn sizes() {
        let size = |s: &str| s.parse::<Size>().ok().map(|s| s.0);
        assert_eq!(size("600KiB"), Some(600 * 1024));
        assert_eq!(size("1MiB"), Some(1024 * 1024));
        assert_eq!(size("12"), Some(12));
        assert_eq!(size("9999999MiB"), None);
        assert_eq!(size("MiB"), None);
        assert_eq!(size("-1"), None);
        for n in [0, 12, 1024, 1536, 600 * 1024, 1024 * 1024, u32::MAX] {
            assert_eq!(size(&Size(n).to_string()), Some(n), "{n} round-trips");
        }
        assert_eq!(Size(1024 * 1024).to_string(), "1MiB");
    }
}
