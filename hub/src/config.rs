//! [`HubConfig`]: everything needed to start a hub, and how the broker connection is
//! described ([`BrokerSettings`]) and where its state is kept ([`StoreSettings`]).
//!
//! The topics come from the sdk-go MQTT config file when one is given, otherwise they
//! are our default source layout (`Topics::for_source`). The embedded broker
//! ([`crate::embedded_broker`]) starts first and hands the hub its settings: a
//! [`BrokerSettings::Transport`] with TLS and the hub's source certificate by default,
//! a plaintext [`BrokerSettings::Address`] with `--insecure-broker`. Test harnesses pass
//! [`BrokerSettings::Address`] for their own plaintext brokers.

use std::net::SocketAddr;
use std::path::PathBuf;

use workbus_schemas::config::MqttConfig;
use workbus_schemas::mqtt::Encoding;
use workbus_transport::{Endpoints, Protocol, TransportConfig};

use crate::api::server::ServerLimits;
use crate::api::tls::TlsFiles;

/// How to reach the MQTT broker.
#[derive(Debug, Clone)]
pub enum BrokerSettings {
    /// A plain-TCP MQTT 5 broker at `host:port`, default topics.
    Address {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// Several plain-TCP addresses of one clustered broker (tried in order, see
    /// `workbus_transport::Endpoints`), default topics.
    Endpoints(Endpoints),
    /// An sdk-go MQTT config file (broker, TLS, credentials, QoS and topics).
    MqttConfig(Box<MqttConfig>),
    /// A fully specified transport, its protocol version included (default topics; its
    /// subscriptions are replaced by the source's).
    Transport(Box<TransportConfig>),
}

/// Where the hub keeps its state: which [`Store`](crate::store::Store) backend, and
/// where (see [`crate::store::open`]). Written on the command line as `--store URL`
/// ([`StoreSettings::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// The embedded SQLite database (`hub.db`) in this directory, created if
    /// missing.
    Sqlite {
        /// The directory.
        data_dir: PathBuf,
    },
    /// A PostgreSQL database (issue 16), which several hubs may share. The hub's own
    /// files (the store key, the spec signing key, the broker's PKI) stay in `data_dir`.
    Postgres {
        /// `postgres://user[:password]@host[:port]/database[?options]`.
        url: DatabaseUrl,
        /// The hub's directory for its own files.
        data_dir: PathBuf,
        /// The store's key file; `<data_dir>/store.key` when `None`. Hubs sharing a
        /// database must share this file (the keys that seal its payload columns).
        key_file: Option<PathBuf>,
    },
}

/// A database URL; its `Debug` form hides the password (configs are logged).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                write!(f, "{:?}", u.as_str())
            }
            Ok(_) => write!(f, "{:?}", self.0),
            Err(_) => f.write_str("\"<unparsable URL>\""),
        }
    }
}

/// Why a `--store` value names no store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreUrlError {
    /// Neither `postgres://`, `postgresql://` nor `sqlite:`.
    #[error("--store {0:?}: expected postgres://user@host:port/database or sqlite:<directory>")]
    Scheme(String),
    /// `sqlite:` without a directory.
    #[error("--store {0:?}: sqlite: needs a directory (sqlite:/var/lib/workbus)")]
    EmptySqlitePath(String),
    /// `--store-key-file` with SQLite, whose key file is always beside its database.
    #[error("--store-key-file is for PostgreSQL: SQLite keeps store.key beside hub.db")]
    KeyFileWithSqlite,
}

impl StoreSettings {
    /// SQLite in `data_dir`.
    pub fn sqlite(data_dir: impl Into<PathBuf>) -> Self {
        StoreSettings::Sqlite {
            data_dir: data_dir.into(),
        }
    }

    /// PostgreSQL at `url`, the hub's own files in `data_dir`.
    pub fn postgres(url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        StoreSettings::Postgres {
            url: DatabaseUrl(url.into()),
            data_dir: data_dir.into(),
            key_file: None,
        }
    }

    /// The store a `--store` value names: `postgres://…` (or `postgresql://…`),
    /// `sqlite:<dir>`, or — with no value — SQLite in `data_dir`. `data_dir` stays the
    /// home of the hub's own files either way.
    pub fn parse(store: Option<&str>, data_dir: &std::path::Path) -> Result<Self, StoreUrlError> {
        let Some(value) = store else {
            return Ok(StoreSettings::sqlite(data_dir));
        };
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Ok(StoreSettings::postgres(value, data_dir));
        }
        match value.strip_prefix("sqlite:") {
            Some("") => Err(StoreUrlError::EmptySqlitePath(value.to_string())),
            Some(dir) => Ok(StoreSettings::sqlite(dir)),
            None => Err(StoreUrlError::Scheme(value.to_string())),
        }
    }

    /// The directory of the hub's own files (keys, PKI; the database itself for SQLite).
    pub fn data_dir(&self) -> &std::path::Path {
        match self {
            StoreSettings::Sqlite { data_dir } | StoreSettings::Postgres { data_dir, .. } => {
                data_dir
            }
        }
    }
}

/// Settings of one hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Which store, and where.
    pub store: StoreSettings,
    /// REST listen address; port 0 picks a free port (see `HubHandle::rest_addr`).
    pub listen: SocketAddr,
    /// The source id: CloudEvent `source`, topic segment, part of every work uid.
    pub source_id: String,
    /// The broker.
    pub broker: BrokerSettings,
    /// How events are laid out on MQTT (binary by default, as sdk-go). Structured mode
    /// reaches agents of either protocol version (see `docs/brokers.md`); MQTT 3.1.1
    /// carries nothing else.
    pub encoding: Encoding,
    /// The MQTT version spoken to a broker given by address or sdk-go config file (a
    /// [`BrokerSettings::Transport`] names its own).
    pub protocol: Protocol,
    /// MQTT client id; default `<source-id>-hub-<random>` so replicas never collide.
    pub client_id: Option<String>,
    /// The REST API's TLS, hosts, tokens and bounds.
    pub api: ApiSettings,
    /// Cluster registration over the bus: the CA that signs joining clusters'
    /// certificates, the health timer, the clock.
    pub registration: RegistrationSettings,
    /// ManifestWorkReplicaSet rollouts: placement decisions and the clock.
    pub rollout: crate::rollout::controller::RolloutSettings,
    /// The audit log: checkpoints.
    pub audit: AuditSettings,
    /// This hub's replica id among several hubs on one PostgreSQL store (issue 16);
    /// `None` picks `<hostname>-<pid>` on PostgreSQL. Refused with SQLite.
    pub replica_id: Option<String>,
}

/// The audit log's settings (issue 15).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// When signed checkpoints are made.
    pub checkpoints: crate::audit::sealer::SealPolicy,
    /// How long and how much of the log is kept (default: everything).
    pub retention: crate::audit::retention::RetentionPolicy,
}

/// How the hub registers clusters that join over the bus (issue 13).
#[derive(Clone)]
pub struct RegistrationSettings {
    /// The CA that signs joining clusters' certificate requests; without one, requests
    /// stay pending (and accepting them denies them as unsignable).
    pub pki: Option<crate::pki::Pki>,
    /// Validity of the certificates issued to clusters.
    pub cluster_cert_validity: std::time::Duration,
    /// How often the health timer looks for expired leases.
    pub health_interval: std::time::Duration,
    /// The hub's clock (injectable for tests).
    pub clock: crate::clock::Clock,
    /// Closes every connection of a cluster (its agent's and its bootstrap identity's)
    /// when it is denied: the embedded broker's, when the hub runs one.
    pub disconnect: Option<Disconnect>,
    /// Whether received messages' publisher stamps
    /// ([`workbus_schemas::acl::PUBLISHER_PROPERTY`]) are the broker's word. Only the
    /// hub's embedded broker stamps and strips forgeries; behind any other broker a
    /// client can write the property itself, so it is ignored there (`false`).
    pub trust_publisher_stamps: bool,
}

/// Closes every broker connection of the cluster it is given; returns how many.
pub type Disconnect = std::sync::Arc<dyn Fn(&str) -> usize + Send + Sync>;

impl std::fmt::Debug for RegistrationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationSettings")
            .field("pki", &self.pki)
            .field("cluster_cert_validity", &self.cluster_cert_validity)
            .field("health_interval", &self.health_interval)
            .field("clock", &self.clock)
            .field("disconnect", &self.disconnect.is_some())
            .field("trust_publisher_stamps", &self.trust_publisher_stamps)
            .finish()
    }
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        RegistrationSettings {
            pki: None,
            cluster_cert_validity: crate::pki::CLUSTER_CERT_VALIDITY,
            health_interval: std::time::Duration::from_secs(1),
            clock: crate::clock::Clock::system(),
            disconnect: None,
            trust_publisher_stamps: false,
        }
    }
}

/// How the REST API is served and who may use it (see `auth` and `api::server`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiSettings {
    /// TLS identity; `None` serves plaintext, which [`crate::Hub::start`] allows on a
    /// loopback address only unless [`ApiSettings::plaintext_beyond_loopback`].
    pub tls: Option<TlsFiles>,
    /// Serve plaintext on a non-loopback address (behind a TLS-terminating proxy on
    /// the same host, say). Off by default.
    pub plaintext_beyond_loopback: bool,
    /// Host names requests may name besides IP literals and `localhost` (DNS
    /// rebinding protection, `auth::origin`).
    pub allowed_hosts: Vec<String>,
    /// The secret of the first start's admin token (test harnesses, automation). When
    /// `None` and the store has no token, a random one is made (and written to
    /// [`ApiSettings::admin_token_file`]).
    pub admin_token: Option<String>,
    /// Where a generated first admin token is written (mode 0600).
    pub admin_token_file: Option<PathBuf>,
    /// Timeouts and the connection cap.
    pub limits: ServerLimits,
}

impl HubConfig {
    /// A config with the defaults of [`crate::defaults`] (the broker: this machine's, on
    /// the MQTT port) and binary mode.
    pub fn new() -> Self {
        use crate::defaults::{DATA_DIR, LISTEN, LOCAL_BROKER, SOURCE_ID};
        HubConfig {
            store: StoreSettings::sqlite(DATA_DIR),
            listen: LISTEN,
            source_id: SOURCE_ID.to_string(),
            broker: BrokerSettings::Address {
                host: LOCAL_BROKER.ip().to_string(),
                port: LOCAL_BROKER.port(),
            },
            encoding: Encoding::Binary,
            protocol: Protocol::V5,
            client_id: None,
            api: ApiSettings::default(),
            registration: RegistrationSettings::default(),
            rollout: crate::rollout::controller::RolloutSettings::default(),
            audit: AuditSettings::default(),
            replica_id: None,
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self::new()
    }
}
