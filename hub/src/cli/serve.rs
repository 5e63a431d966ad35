//! `workbus-hub serve`: runs a hub until Ctrl-C / SIGTERM. Broker settings come from
//! `--mqtt-config FILE` (sdk-go format, `brokerHosts` for several addresses) or
//! `--broker HOST:PORT[,HOST:PORT…]` (the nodes of a clustered broker, tried in order);
//! with neither, the hub starts its embedded MQTT broker on `--broker-listen` (the
//! no-setup default) and agents connect there. `--mqtt-version 3.1.1` (brokers without
//! MQTT 5, such as NATS) implies `--event-encoding structured`, which also reaches MQTT
//! 3.1.1 agents through an MQTT 5 broker. Every flag can also come from a
//! `WORKBUS_HUB_*` environment variable.
//!
//! The embedded broker serves mutual TLS with topic ACLs (default `0.0.0.0:8883`): the
//! first start makes a CA and certificates in `<data-dir>/pki/` (server names from
//! `--broker-server-name`, plus the listen address when it is a specific one) and says
//! where; `workbus-hub certs issue --cluster NAME` gives an agent its certificate.
//! `--insecure-broker` opts out (plaintext, no identities or ACLs, loopback only;
//! default `127.0.0.1:1883`).
//!
//! The REST API serves TLS (`--tls-cert`, `--tls-key`) or, with `--allow-plaintext`,
//! plain HTTP on a loopback address only. On the first start (no API token in the
//! store) an admin token is made, written to `<data-dir>/admin.token` (mode 0600) and
//! printed once.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use workbus_process::{MqttVersion, shutdown_signal};
use workbus_schemas::config::ConfigError;
use workbus_schemas::mqtt::Encoding;
use workbus_transport::{Endpoints, LoadConfigError, Protocol, load_mqtt_config};

use super::tls_args::{ApiArgs, ApiArgsError};
use crate::config::{BrokerSettings, HubConfig, StoreSettings};
use crate::defaults;
use crate::embedded_broker::{self, BrokerSecurity, EmbeddedBrokerError};
use crate::hub::{Hub, HubError};
use crate::pki::{Pki, PkiError};

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// REST listen address.
    #[arg(long, env = "WORKBUS_HUB_LISTEN", default_value_t = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// The hub's directory: the SQLite database (unless `--store` names another
    /// store), the store key file, the signing key, the broker's PKI.
    #[arg(long, env = "WORKBUS_HUB_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// Where the hub's state lives: `postgres://user[:password]@host[:port]/database`
    /// (a PostgreSQL database, which several hubs may share) or `sqlite:<directory>`
    /// [default: SQLite in --data-dir].
    #[arg(long, value_name = "URL", env = "WORKBUS_STORE")]
    pub store: Option<String>,
    /// The key file that seals the store's payload columns [default:
    /// <data-dir>/store.key]. Hubs sharing a PostgreSQL database must share this file.
    #[arg(long, value_name = "FILE", env = "WORKBUS_STORE_KEY_FILE")]
    pub store_key_file: Option<PathBuf>,
    /// Source id (`[a-z0-9-]+`).
    #[arg(long, env = "WORKBUS_HUB_SOURCE_ID", default_value = defaults::SOURCE_ID)]
    pub source_id: String,
    /// This hub's id among several hubs on one PostgreSQL store (default
    /// `<hostname>-<pid>`); each live replica needs its own. Refused with SQLite.
    #[arg(long, env = "WORKBUS_HUB_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// sdk-go MQTT config file (broker, TLS, topics).
    #[arg(long, env = "WORKBUS_HUB_MQTT_CONFIG", conflicts_with = "broker")]
    pub mqtt_config: Option<PathBuf>,
    /// External broker `host:port` (plain TCP, default topics). Several (comma
    /// separated, or the flag repeated) are the nodes of one clustered broker: the first
    /// is tried first, a lost or refused connection moves on to the next (round robin).
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "WORKBUS_HUB_BROKER",
        value_delimiter = ','
    )]
    pub broker: Vec<String>,
    /// MQTT version spoken to an external broker (`--broker`, `--mqtt-config`).
    #[arg(long, value_enum, default_value_t, env = "WORKBUS_HUB_MQTT_VERSION")]
    pub mqtt_version: MqttVersion,
    /// How events are laid out: `binary` (`ce-*` user properties, as sdk-go; MQTT 5
    /// only) or `structured` (one JSON document: readable by every agent, MQTT 3.1.1
    /// ones included) [default: binary, structured with --mqtt-version 3.1.1].
    #[arg(long, value_enum, env = "WORKBUS_HUB_EVENT_ENCODING")]
    pub event_encoding: Option<EventEncoding>,
    /// Where the embedded broker listens when no external broker is given (a free port
    /// is used if this one is taken) [default: 0.0.0.0:8883 (TLS), 127.0.0.1:1883 with
    /// --insecure-broker].
    #[arg(long, env = "WORKBUS_HUB_BROKER_LISTEN")]
    pub broker_listen: Option<SocketAddr>,
    /// Extra DNS name or IP address agents use to reach the embedded broker, written
    /// into its certificate on the first start (repeatable; localhost, 127.0.0.1 and ::1
    /// are always included).
    #[arg(
        long,
        value_name = "NAME",
        env = "WORKBUS_HUB_BROKER_SERVER_NAME",
        value_delimiter = ','
    )]
    pub broker_server_name: Vec<String>,
    /// Run the embedded broker in plaintext without identities or topic ACLs (tests,
    /// old devices); only on a loopback address. Anyone who can connect to it controls
    /// the fleet.
    #[arg(
        long,
        env = "WORKBUS_HUB_INSECURE_BROKER",
        conflicts_with_all = ["broker", "mqtt_config"]
    )]
    pub insecure_broker: bool,
    /// Audit retention by age: records older than this many days are cut (the cut is
    /// recorded in the chain; default: kept forever).
    #[arg(long, env = "WORKBUS_HUB_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u64>,
    /// Audit retention by size: at most this many records are kept (default: all).
    #[arg(long, env = "WORKBUS_HUB_AUDIT_RETENTION_RECORDS")]
    pub audit_retention_records: Option<u64>,
    /// How the REST API is served.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `--event-encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventEncoding {
    /// `ce-*` user properties and the Content Type property (MQTT 5 only).
    Binary,
    /// One `application/cloudevents+json` document per message.
    Structured,
}

/// Why `serve` could not run a hub; each names the flag or the part that failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `--mqtt-config` could not be read or is invalid (names the file).
    #[error("--mqtt-config: {0}")]
    MqttConfig(#[from] LoadConfigError),
    /// `--store` names no store, or `--store-key-file` was given for SQLite.
    #[error(transparent)]
    Store(#[from] crate::config::StoreUrlError),
    /// `--broker` is not `host:port`.
    #[error("--broker {value}: {source}")]
    Broker {
        /// The flag's value.
        value: String,
        /// Why it is not `host:port`.
        source: ConfigError,
    },
    /// `--event-encoding binary` with `--mqtt-version 3.1.1`.
    #[error("--event-encoding binary needs MQTT 5; MQTT 3.1.1 carries structured events only")]
    BinaryOverMqtt311,
    /// The REST flags describe no allowed way to serve.
    #[error(transparent)]
    Api(#[from] ApiArgsError),
    /// The embedded broker could not start.
    #[error(transparent)]
    EmbeddedBroker(#[from] EmbeddedBrokerError),
    /// The embedded broker's certificates could not be made or read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The hub could not start (data directory, store, listen socket, topics, TLS).
    #[error("cannot start the hub: {0}")]
    Hub(#[from] HubError),
}

impl ServeArgs {
    /// The hub config these flags describe (with neither `--mqtt-config` nor `--broker`,
    /// the broker is [`HubConfig::new`]'s until [`serve`] starts the embedded one).
    pub fn hub_config(&self) -> Result<HubConfig, ServeError> {
        let broker = match (&self.mqtt_config, self.broker.is_empty()) {
            (Some(path), _) => BrokerSettings::MqttConfig(Box::new(load_mqtt_config(path)?)),
            (None, false) => {
                let value = self.broker.join(",");
                let endpoints = Endpoints::parse(&value)
                    .map_err(|source| ServeError::Broker { value, source })?;
                BrokerSettings::Endpoints(endpoints)
            }
            (None, true) => HubConfig::new().broker,
        };
        let (protocol, encoding) = self.protocol_and_encoding()?;
        let mut store = StoreSettings::parse(self.store.as_deref(), &self.data_dir)?;
        match (&mut store, &self.store_key_file) {
            (StoreSettings::Postgres { key_file, .. }, Some(path)) => {
                *key_file = Some(path.clone())
            }
            (StoreSettings::Sqlite { .. }, Some(_)) => {
                return Err(crate::config::StoreUrlError::KeyFileWithSqlite.into());
            }
            (_, None) => {}
        }
        Ok(HubConfig {
            store,
            listen: self.listen,
            source_id: self.source_id.clone(),
            broker,
            protocol,
            encoding,
            api: self.api.api_settings(self.listen, &self.data_dir)?,
            replica_id: self.replica_id.clone(),
            audit: crate::config::AuditSettings {
                retention: crate::audit::retention::RetentionPolicy {
                    max_age: self
                        .audit_retention_days
                        .map(|d| std::time::Duration::from_secs(d.saturating_mul(86_400))),
                    max_records: self.audit_retention_records,
                },
                ..Default::default()
            },
            ..HubConfig::new()
        })
    }

    /// `--mqtt-version` and `--event-encoding` (whose default follows the version).
    pub fn protocol_and_encoding(&self) -> Result<(Protocol, Encoding), ServeError> {
        let protocol = match self.mqtt_version {
            MqttVersion::V5 => Protocol::V5,
            MqttVersion::V311 => Protocol::V311,
        };
        let encoding = match (self.event_encoding, protocol) {
            (Some(EventEncoding::Binary), Protocol::V311) => {
                return Err(ServeError::BinaryOverMqtt311);
            }
            (Some(EventEncoding::Binary), Protocol::V5) | (None, Protocol::V5) => Encoding::Binary,
            (Some(EventEncoding::Structured), _) | (None, Protocol::V311) => Encoding::Structured,
        };
        Ok((protocol, encoding))
    }

    /// Where the embedded broker listens: `--broker-listen`, else the default of its
    /// mode.
    pub fn embedded_broker_listen(&self) -> SocketAddr {
        defaults::embedded_broker_listen(
            self.broker_listen,
            self.insecure_broker,
            defaults::EMBEDDED_BROKER_LISTEN,
        )
    }

    /// How the embedded broker on `listen` admits clients: plaintext with
    /// `--insecure-broker`, else mutual TLS and ACLs with the data directory's
    /// certificates (made on the first start).
    pub fn broker_security(&self, listen: SocketAddr) -> Result<BrokerSecurity, ServeError> {
        if self.insecure_broker {
            return Ok(BrokerSecurity::Insecure);
        }
        let mut names = self.broker_server_name.clone();
        let ip = listen.ip();
        if !ip.is_unspecified() && !ip.is_loopback() {
            names.push(ip.to_string());
        }
        Ok(BrokerSecurity::MutualTls {
            pki: Pki::ensure(&self.data_dir, &names)?,
            source_id: self.source_id.clone(),
        })
    }
}

/// Runs the hub until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    // Before anything slow: a signal during start-up then stops the hub cleanly.
    let stop = shutdown_signal();
    let mut config = args.hub_config()?;
    let embedded = if args.mqtt_config.is_none() && args.broker.is_empty() {
        let listen = args.embedded_broker_listen();
        let security = args.broker_security(listen)?;
        let broker = embedded_broker::start_announced(listen, &security, "").await?;
        config.broker = broker.hub_settings()?;
        config.registration.pki = broker.pki().cloned();
        config.registration.disconnect = Some(broker.disconnect());
        config.registration.trust_publisher_stamps = true;
        if broker.tls() {
            // On every interface: agents elsewhere use one of the host's names.
            let host = if broker.addr().ip().is_unspecified() {
                format!("HOST:{}", broker.addr().port())
            } else {
                broker.reach().to_string()
            };
            println!(
                "give an agent its certificate and MQTT config: workbus-hub certs issue --data-dir {} --source-id {} --broker {host} --cluster NAME --out DIR",
                args.data_dir.display(),
                args.source_id,
            );
        }
        Some(broker)
    } else {
        None
    };
    let hub = Hub::start(config).await?;
    if let Some(broker) = &embedded {
        broker.attach_hub(&hub);
    }
    println!("workbus hub listening on {}", hub.base_url());
    if let Some(token) = hub.admin_token() {
        let file = args.data_dir.join(crate::auth::tokens::ADMIN_TOKEN_FILE);
        println!(
            "first start: made an admin API token, shown only this once and kept in {} (0600):\n  {token}\nuse it with `--token-file {}` or WORKBUS_TOKEN; make narrower ones with `workbus-hub token create`",
            file.display(),
            file.display()
        );
    }
    stop.await;
    tracing::info!("shutting down");
    hub.shutdown().await;
    if let Some(broker) = embedded {
        broker.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(flags: &[&str]) -> ServeArgs {
        let argv = ["workbus-hub", "serve"]
            .into_iter()
            .chain(flags.iter().copied());
        match Cli::try_parse_from(argv).expect("valid flags").command {
            Command::Serve(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_are_hub_config_defaults() {
        let config = serve_args(&["--allow-plaintext"]).hub_config().unwrap();
        let default = HubConfig::new();
        assert_eq!(config.listen, default.listen);
        assert_eq!(config.store, default.store);
        assert_eq!(config.source_id, default.source_id);
        assert_eq!(
            serve_args(&[]).embedded_broker_listen(),
            workbus_broker::DEFAULT_TLS_LISTEN
        );
        assert_eq!(
            serve_args(&["--insecure-broker"]).embedded_broker_listen(),
            workbus_broker::BrokerConfig::default().listen[0]
        );
        assert!(
            Cli::try_parse_from([
                "workbus-hub",
                "serve",
                "--insecure-broker",
                "--broker",
                "b:1883"
            ])
            .is_err(),
            "the opt-out is for the embedded broker"
        );
    }

    #[test]
    fn plaintext_needs_the_flag_and_a_loopback_address() {
        let e = serve_args(&[]).hub_config().unwrap_err();
        assert!(matches!(e, ServeError::Api(ApiArgsError::NoTls)), "{e}");
        let e = serve_args(&["--allow-plaintext", "--listen", "0.0.0.0:8080"])
            .hub_config()
            .unwrap_err();
        assert!(
            matches!(e, ServeError::Api(ApiArgsError::PlaintextBeyondLoopback(_))),
            "{e}"
        );
        let config = serve_args(&["--tls-cert", "c.pem", "--tls-key", "k.pem"])
            .hub_config()
            .unwrap();
        assert!(config.api.tls.is_some());
        assert!(
            config
                .api
                .admin_token_file
                .unwrap()
                .ends_with("admin.token")
        );
    }

    #[test]
    fn unusable_mqtt_config_names_the_flag_and_the_file() {
        let missing = std::env::temp_dir().join(format!(
            "workbus-hub-no-such-config-{}.yaml",
            std::process::id()
        ));
        let e = serve_args(&["--mqtt-config", missing.to_str().unwrap()])
            .hub_config()
            .unwrap_err();
        assert!(
            matches!(&e, ServeError::MqttConfig(LoadConfigError::Read { path, .. }) if *path == missing),
            "{e:?}"
        );
        let shown = e.to_string();
        assert!(shown.starts_with("--mqtt-config: cannot read "), "{shown}");
        let e = serve_args(&["--broker", "nope"]).hub_config().unwrap_err();
        assert!(e.to_string().starts_with("--broker nope: "), "{e}");
    }

    #[test]
    fn several_brokers_and_the_mqtt_version() {
        for flags in [
            &[
                "--allow-plaintext",
                "--broker=a:1883,b:1884",
                "--broker",
                "c:1885",
            ][..],
            &[
                "--allow-plaintext",
                "--broker=a:1883",
                "--broker=b:1884",
                "--broker=c:1885",
            ],
        ] {
            let config = serve_args(flags).hub_config().unwrap();
            match &config.broker {
                BrokerSettings::Endpoints(e) => assert_eq!(e.to_string(), "a:1883,b:1884,c:1885"),
                other => panic!("{other:?}"),
            }
            assert_eq!(
                (config.protocol, config.encoding),
                (Protocol::V5, Encoding::Binary)
            );
        }
        let config = |flags: &[&str]| {
            let flags: Vec<&str> = ["--allow-plaintext", "--broker=a:1883"]
                .iter()
                .chain(flags)
                .copied()
                .collect();
            serve_args(&flags).hub_config()
        };
        let v311 = config(&["--mqtt-version=3.1.1"]).unwrap();
        assert_eq!(
            (v311.protocol, v311.encoding),
            (Protocol::V311, Encoding::Structured)
        );
        let mixed = config(&["--event-encoding=structured"]).unwrap();
        assert_eq!(
            (mixed.protocol, mixed.encoding),
            (Protocol::V5, Encoding::Structured)
        );
        let e = config(&["--mqtt-version=3.1.1", "--event-encoding=binary"]).unwrap_err();
        assert!(matches!(e, ServeError::BinaryOverMqtt311), "{e}");
    }
}
