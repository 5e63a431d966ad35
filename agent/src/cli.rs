//! The agent's command line, compatible with the OCM work agent's flags as Maestro runs
//! it (`--spoke-cluster-name`, `--workload-source-driver=mqtt`,
//! `--workload-source-config=<sdk-go MQTT config>`, `--cloudevents-client-id`), so it can
//! replace that agent in place, plus workbus's own flags. Every flag can also come from a
//! `WORKBUS_AGENT_*` environment variable; the defaults are the library's
//! ([`crate::config`], [`crate::target::sim`], [`workbus_process::defaults`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use workbus_process::defaults;
use workbus_schemas::config::{ConfigError, format_go_duration, parse_go_duration};
use workbus_schemas::topics::Topics;
use workbus_transport::{Endpoints, LoadConfigError, Protocol, TransportConfig, load_mqtt_config};

use crate::config::{
    AgentConfig, DEFAULT_APPLY_RESYNC_INTERVAL, DEFAULT_EVICTION_GRACE_PERIOD,
    DEFAULT_MAX_FEEDBACK_WATCH, DEFAULT_STATUS_SYNC_INTERVAL,
};
use crate::outbox::{DEFAULT_OUTBOX_MAX_BYTES, DEFAULT_OUTBOX_MAX_STATUSES, OutboxLimits};
use crate::registration::claims::parse_claim;
use crate::registration::identity_dir::IdentityDir;
use crate::registration::{self, RegistrationConfig};
use crate::target::sim::DEFAULT_READY_AFTER;

/// The one `--workload-source-driver` supported.
pub const MQTT_DRIVER: &str = "mqtt";

/// Parent of the default data directory (`<this>/<cluster>`).
pub const DATA_DIR_ROOT: &str = "workbus-agent-data";

/// The duration defaults as Go durations, for clap (which shows and parses text).
static STATUS_SYNC_INTERVAL: LazyLock<String> =
    LazyLock::new(|| format_go_duration(DEFAULT_STATUS_SYNC_INTERVAL));
static APPLY_RESYNC_INTERVAL: LazyLock<String> =
    LazyLock::new(|| format_go_duration(DEFAULT_APPLY_RESYNC_INTERVAL));
static EVICTION_GRACE_PERIOD: LazyLock<String> =
    LazyLock::new(|| format_go_duration(DEFAULT_EVICTION_GRACE_PERIOD));
static SIM_READY_AFTER: LazyLock<String> =
    LazyLock::new(|| format_go_duration(DEFAULT_READY_AFTER));

/// Which cluster the agent applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// The simulated cluster (demos, scale runs, tests).
    Sim,
    /// A Kubernetes API server (`--kubeconfig`, else found as kubectl finds it).
    Kube,
}

pub use workbus_process::MqttVersion;

/// Writes a value as it is spelled on the command line (clap shows defaults this way).
fn write_value_name(value: &impl ValueEnum, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match value.to_possible_value() {
        Some(v) => f.write_str(v.get_name()),
        None => Ok(()),
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_value_name(self, f)
    }
}

/// `workbus-agent`: the workbus work agent.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "workbus-agent",
    version,
    about = "workbus work agent: applies ManifestWorks received as CloudEvents over MQTT"
)]
pub struct Args {
    /// Name of the managed cluster this agent serves (the ManifestWork namespace).
    #[arg(long, env = "WORKBUS_AGENT_CLUSTER")]
    pub spoke_cluster_name: String,
    /// Transport driver; only `mqtt` is supported.
    #[arg(long, default_value = MQTT_DRIVER, env = "WORKBUS_AGENT_SOURCE_DRIVER")]
    pub workload_source_driver: String,
    /// sdk-go MQTT config file (YAML or JSON: brokerHost, topics, TLS...). Without it,
    /// --broker and --source-id give the embedded hub's layout.
    #[arg(long, env = "WORKBUS_AGENT_SOURCE_CONFIG")]
    pub workload_source_config: Option<PathBuf>,
    /// CloudEvents source id of this agent (default `<cluster>-work-agent`); the MQTT
    /// client id is this plus `-client`.
    #[arg(long, env = "WORKBUS_AGENT_CLIENT_ID")]
    pub cloudevents_client_id: Option<String>,
    /// Broker address (`host:port`) when no config file is given. Several (comma
    /// separated, or the flag repeated) are the nodes of one clustered broker: the
    /// first is tried first, a lost or refused connection moves on to the next (round
    /// robin). The first also names the hub in AppliedManifestWork names: keep it.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_values_t = [defaults::LOCAL_BROKER.to_string()],
        env = "WORKBUS_AGENT_BROKER",
        value_delimiter = ','
    )]
    pub broker: Vec<String>,
    /// Source id whose topics to use when no config file is given.
    #[arg(long, default_value = defaults::SOURCE_ID, env = "WORKBUS_AGENT_SOURCE_ID")]
    pub source_id: String,
    /// Where the agent applies works.
    #[arg(long, value_enum, default_value_t = TargetKind::Sim, env = "WORKBUS_AGENT_TARGET")]
    pub target: TargetKind,
    /// Kubeconfig of the cluster for --target kube (without it: KUBECONFIG,
    /// ~/.kube/config, then the in-cluster service account, as kubectl).
    #[arg(long, value_name = "PATH", env = "WORKBUS_AGENT_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Directory for durable state (default `./workbus-agent-data/<cluster>`).
    #[arg(long, env = "WORKBUS_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// MQTT protocol version.
    #[arg(
        long,
        value_enum,
        default_value_t = MqttVersion::V5,
        env = "WORKBUS_AGENT_MQTT_VERSION"
    )]
    pub mqtt_version: MqttVersion,
    /// Longest time between two status refreshes of a work (Go duration).
    #[arg(long, default_value = STATUS_SYNC_INTERVAL.as_str(), value_parser = parse_go_duration, env = "WORKBUS_AGENT_STATUS_SYNC_INTERVAL")]
    pub status_sync_interval: Duration,
    /// How often every work is fully re-applied to correct drift (Go duration).
    #[arg(long, default_value = APPLY_RESYNC_INTERVAL.as_str(), value_parser = parse_go_duration, env = "WORKBUS_AGENT_APPLY_RESYNC_INTERVAL")]
    pub apply_resync_interval: Duration,
    /// How long an AppliedManifestWork whose ManifestWork is gone (or that came from
    /// another hub) is kept before it and what it owns are removed (Go duration; 100
    /// years or more: never).
    #[arg(long = "appliedmanifestwork-eviction-grace-period", default_value = EVICTION_GRACE_PERIOD.as_str(), value_parser = parse_go_duration, env = "WORKBUS_AGENT_APPLIEDMANIFESTWORK_EVICTION_GRACE_PERIOD")]
    pub appliedmanifestwork_eviction_grace_period: Duration,
    /// At most this many feedback watches (resource + namespace) for manifests
    /// configured with `feedbackScrapeType: Watch`; beyond it they are polled.
    #[arg(long, default_value_t = DEFAULT_MAX_FEEDBACK_WATCH, env = "WORKBUS_AGENT_MAX_FEEDBACK_WATCH")]
    pub max_feedback_watch: usize,
    /// At most this many statuses wait in the outbox while the broker is away (kept on
    /// disk in the data dir); beyond it the oldest intermediate transitions are dropped
    /// first, every work's first and last transition last.
    #[arg(long, default_value_t = DEFAULT_OUTBOX_MAX_STATUSES as u64, value_parser = clap::value_parser!(u64).range(1..), env = "WORKBUS_AGENT_OUTBOX_MAX_STATUSES")]
    pub outbox_max_statuses: u64,
    /// At most this many bytes of statuses wait in the outbox (see
    /// --outbox-max-statuses).
    #[arg(long, default_value_t = DEFAULT_OUTBOX_MAX_BYTES, value_parser = clap::value_parser!(u64).range(1..), env = "WORKBUS_AGENT_OUTBOX_MAX_BYTES")]
    pub outbox_max_bytes: u64,
    /// The hub's spec signing key (its `signing.pub`: base64 of the Ed25519 public key).
    /// With it, spec events without a valid signature by this key are rejected; without
    /// it, every spec event is accepted (as OCM agents do).
    #[arg(long, value_name = "FILE", env = "WORKBUS_AGENT_SPEC_SIGNING_KEY")]
    pub spec_signing_key: Option<PathBuf>,
    /// Simulated cluster: time until Deployments, DaemonSets and Jobs become ready.
    #[arg(long, default_value = SIM_READY_AFTER.as_str(), value_parser = parse_go_duration, env = "WORKBUS_AGENT_SIM_READY_AFTER")]
    pub sim_ready_after: Duration,
    /// Bootstrap token from `workbus-hub token create --bootstrap`: with it, a cluster
    /// without an identity joins the hub (ManagedCluster + CSR) and, once accepted,
    /// connects with its own certificate. Prefer --bootstrap-token-file.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "WORKBUS_AGENT_BOOTSTRAP_TOKEN",
        hide_env_values = true
    )]
    pub bootstrap_token: Option<String>,
    /// File holding the bootstrap token (first line).
    #[arg(
        long,
        value_name = "FILE",
        env = "WORKBUS_AGENT_BOOTSTRAP_TOKEN_FILE",
        conflicts_with = "bootstrap_token"
    )]
    pub bootstrap_token_file: Option<PathBuf>,
    /// Where the cluster's own certificate is kept once the hub issued it (0700; files
    /// tls.key, tls.crt, ca.crt). Default `<data dir>/identity`. An agent whose
    /// identity dir holds a certificate connects with it.
    #[arg(long, value_name = "DIR", env = "WORKBUS_AGENT_IDENTITY_DIR")]
    pub identity_dir: Option<PathBuf>,
    /// A label of the ManagedCluster asked for when joining (`name=value`, repeatable).
    #[arg(
        long = "cluster-label",
        value_name = "NAME=VALUE",
        env = "WORKBUS_AGENT_CLUSTER_LABELS",
        value_delimiter = ','
    )]
    pub cluster_labels: Vec<String>,
    /// A user-defined cluster claim reported in the ManagedCluster status (`name=value`,
    /// repeatable; at most 20 are reported).
    #[arg(
        long = "cluster-claim",
        value_name = "NAME=VALUE",
        env = "WORKBUS_AGENT_CLUSTER_CLAIMS",
        value_delimiter = ','
    )]
    pub cluster_claims: Vec<String>,
    /// The lease duration asked for when joining (the hub's ManagedCluster decides).
    #[arg(long, default_value_t = crate::registration::lease_timing::DEFAULT_LEASE_DURATION_SECONDS, env = "WORKBUS_AGENT_LEASE_DURATION_SECONDS")]
    pub lease_duration_seconds: u32,
    /// Serve /metrics (Prometheus), /healthz, /livez and /readyz (ready = connected and
    /// resynced) over HTTP on this address, e.g. 127.0.0.1:9102. Off by default; no
    /// authentication: keep it on loopback or a management network.
    #[arg(long, value_name = "ADDR", env = "WORKBUS_AGENT_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Log filter, e.g. info or workbus_agent=debug (without it: RUST_LOG, else info).
    #[arg(long, value_name = "FILTER", env = "WORKBUS_AGENT_LOG")]
    pub log: Option<String>,
    /// Log line format: text, or json (one object per line, for log collectors).
    #[arg(long, value_enum, default_value_t, env = "WORKBUS_AGENT_LOG_FORMAT")]
    pub log_format: workbus_process::LogFormat,
}

/// Why the command line cannot become an agent.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Unsupported driver.
    #[error("--workload-source-driver={0} is not supported; only {MQTT_DRIVER} is")]
    Driver(String),
    /// This build has no Kubernetes target (built without the agent's `kube` feature).
    #[error(
        "--target=kube: this workbus-agent was built without Kubernetes support (cargo feature `kube`)"
    )]
    KubeTarget,
    /// The sdk-go MQTT config file could not be read or is invalid (names the file).
    #[error("--workload-source-config: {0}")]
    SourceConfig(#[from] LoadConfigError),
    /// Topics unusable for this cluster.
    #[error(transparent)]
    Topics(#[from] workbus_schemas::topics::TopicError),
    /// Broker address.
    #[error("--broker {value}: {source}")]
    Broker {
        /// The flag's value.
        value: String,
        /// Why it is not `host:port`.
        source: ConfigError,
    },
    /// Transport settings.
    #[error(transparent)]
    Transport(#[from] workbus_transport::TransportConfigError),
    /// The bootstrap token file cannot be read or is empty.
    #[error("--bootstrap-token-file {path}: {reason}")]
    BootstrapToken {
        /// The file.
        path: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A `--cluster-label` or `--cluster-claim` is not `name=value`.
    #[error(transparent)]
    Claim(#[from] crate::registration::claims::ClaimError),
    /// The spec signing key file cannot be read or holds no public key.
    #[error("--spec-signing-key {path}: {reason}")]
    SpecSigningKey {
        /// The file.
        path: String,
        /// Why it is unusable.
        reason: String,
    },
}

impl Args {
    /// The agent configuration these flags describe.
    pub fn agent_config(&self) -> Result<AgentConfig, CliError> {
        if self.workload_source_driver != MQTT_DRIVER {
            return Err(CliError::Driver(self.workload_source_driver.clone()));
        }
        if self.target == TargetKind::Kube && !cfg!(feature = "kube") {
            return Err(CliError::KubeTarget);
        }
        let cluster = &self.spoke_cluster_name;
        // The config file's brokerHost verbatim: it is what OCM's agent hashes.
        let mut hub_host = None;
        let (topics, mut transport) = match &self.workload_source_config {
            Some(path) => {
                let mqtt = load_mqtt_config(path)?;
                let transport = TransportConfig::from_mqtt_config(&mqtt, "", Vec::new())?;
                hub_host = Some(mqtt.broker_host.clone());
                (mqtt.topics.clone(), transport)
            }
            None => {
                let value = self.broker.join(",");
                let endpoints = Endpoints::parse(&value)
                    .map_err(|source| CliError::Broker { value, source })?;
                let topics = Topics::for_agent(&self.source_id, cluster)?;
                let mut transport = TransportConfig::new("", 0, "");
                transport.endpoints = endpoints;
                (topics, transport)
            }
        };
        transport.protocol = match self.mqtt_version {
            MqttVersion::V5 => Protocol::V5,
            MqttVersion::V311 => Protocol::V311,
        };
        let mut config = AgentConfig::new(
            cluster,
            self.cloudevents_client_id.as_deref(),
            topics,
            transport,
        )?;
        config.status_sync_interval = self.status_sync_interval;
        config.apply_resync_interval = self.apply_resync_interval;
        config.eviction_grace_period = self.appliedmanifestwork_eviction_grace_period;
        config.max_feedback_watch = self.max_feedback_watch;
        config.outbox = OutboxLimits {
            max_statuses: usize::try_from(self.outbox_max_statuses).unwrap_or(usize::MAX),
            max_bytes: self.outbox_max_bytes,
        };
        if let Some(path) = &self.spec_signing_key {
            let failed = |reason: String| CliError::SpecSigningKey {
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
            let key = workbus_schemas::signature::VerifyingKey::parse(&text)
                .map_err(|e| failed(e.to_string()))?;
            config.spec_signing_key = Some(key);
        }
        if let Some(host) = hub_host {
            config.hub_host = host;
        }
        config.registration = self.registration()?;
        Ok(config)
    }

    /// Registration, when this agent joins with a bootstrap token or already holds an
    /// identity; `None` otherwise (a cluster created on the hub, as before).
    pub fn registration(&self) -> Result<Option<RegistrationConfig>, CliError> {
        let token = match (&self.bootstrap_token, &self.bootstrap_token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(path)) => {
                let failed = |reason: String| CliError::BootstrapToken {
                    path: path.display().to_string(),
                    reason,
                };
                let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
                let token = text.lines().next().unwrap_or_default().trim().to_string();
                if token.is_empty() {
                    return Err(failed("empty".into()));
                }
                Some(token)
            }
            (None, None) => None,
        };
        let dir = IdentityDir::new(
            self.identity_dir
                .clone()
                .unwrap_or_else(|| self.data_dir().join(registration::IDENTITY_DIR)),
        );
        if token.is_none() && !dir.cert_path().exists() {
            return Ok(None);
        }
        let parse = |list: &[String]| -> Result<Vec<(String, String)>, CliError> {
            Ok(list
                .iter()
                .map(|c| parse_claim(c))
                .collect::<Result<_, _>>()?)
        };
        let mut r = RegistrationConfig::new(dir);
        r.bootstrap_token = token;
        r.labels = parse(&self.cluster_labels)?.into_iter().collect();
        r.claims = parse(&self.cluster_claims)?;
        r.lease_duration_seconds = self.lease_duration_seconds;
        Ok(Some(r))
    }

    /// Where the Kubernetes configuration comes from (`--target kube`).
    #[cfg(feature = "kube")]
    pub fn kube_config_source(&self) -> crate::target::kube::KubeConfigSource {
        use crate::target::kube::KubeConfigSource;
        match &self.kubeconfig {
            Some(path) => KubeConfigSource::File(path.clone()),
            None => KubeConfigSource::Infer,
        }
    }

    /// The data directory: `--data-dir` or `./workbus-agent-data/<cluster>`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DATA_DIR_ROOT).join(&self.spoke_cluster_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maestro_style_flags_parse() {
        let dir = std::env::temp_dir().join(format!("workbus-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("mqtt.yaml");
        std::fs::write(
            &cfg,
            "brokerHost: broker:1883\ntopics:\n  sourceEvents: sources/maestro/consumers/c1/sourceevents\n  agentEvents: sources/maestro/consumers/c1/agentevents\n",
        )
        .unwrap();
        let args = Args::try_parse_from([
            "workbus-agent",
            "--spoke-cluster-name=c1",
            "--workload-source-driver=mqtt",
            &format!("--workload-source-config={}", cfg.display()),
            "--cloudevents-client-id=c1-work-agent",
        ])
        .unwrap();
        let config = args.agent_config().unwrap();
        assert_eq!(config.transport.client_id, "c1-work-agent-client");
        assert_eq!(config.transport.endpoints.to_string(), "broker:1883");
        assert_eq!(config.hub_host, "broker:1883");
        assert_eq!(
            config.transport.subscriptions,
            vec!["sources/maestro/consumers/c1/sourceevents".to_string()]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn defaults_and_errors() {
        let args = Args::try_parse_from(["workbus-agent", "--spoke-cluster-name=edge-1"]).unwrap();
        let config = args.agent_config().unwrap();
        assert_eq!(config.agent_id, "edge-1-work-agent");
        assert_eq!(
            config.transport.subscriptions,
            vec!["sources/workbus/consumers/edge-1/sourceevents".to_string()]
        );
        let bad = Args::try_parse_from(["workbus-agent", "--spoke-cluster-name=Edge_1"]).unwrap();
        assert!(bad.agent_config().is_err());
        let kube = Args::try_parse_from([
            "workbus-agent",
            "--spoke-cluster-name=e",
            "--target=kube",
            "--kubeconfig=/etc/kc.yaml",
        ])
        .unwrap();
        assert_eq!(kube.target, TargetKind::Kube);
        assert_eq!(kube.kubeconfig, Some(PathBuf::from("/etc/kc.yaml")));
        if cfg!(feature = "kube") {
            assert!(kube.agent_config().is_ok());
        } else {
            assert!(matches!(kube.agent_config(), Err(CliError::KubeTarget)));
        }
    }

    #[test]
    fn spec_signing_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = workbus_schemas::signature::VerifyingKey::from_bytes([7; 32]);
        let good = dir.path().join("signing.pub");
        std::fs::write(&good, format!("{}\n", key.to_text())).unwrap();
        let parse = |path: &std::path::Path| {
            Args::try_parse_from([
                "workbus-agent".to_string(),
                "--spoke-cluster-name=edge-1".to_string(),
                format!("--spec-signing-key={}", path.display()),
            ])
            .unwrap()
            .agent_config()
        };
        assert_eq!(parse(&good).unwrap().spec_signing_key, Some(key));
        let bad = dir.path().join("bad.pub");
        std::fs::write(&bad, "not a key").unwrap();
        assert!(matches!(parse(&bad), Err(CliError::SpecSigningKey { .. })));
        assert!(matches!(
            parse(&dir.path().join("missing")),
            Err(CliError::SpecSigningKey { .. })
        ));
        // Off unless configured.
        let plain = Args::try_parse_from(["workbus-agent", "--spoke-cluster-name=edge-1"]).unwrap();
        assert_eq!(plain.agent_config().unwrap().spec_signing_key, None);
    }

    #[test]
    fn registration_only_with_a_token_or_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().display().to_string();
        let plain = Args::try_parse_from([
            "workbus-agent",
            "--spoke-cluster-name=c1",
            &format!("--data-dir={data}"),
        ])
        .unwrap();
        assert!(
            plain.agent_config().unwrap().registration.is_none(),
            "as before issue 13"
        );
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s3cret\n").unwrap();
        let joining = Args::try_parse_from([
            "workbus-agent".to_string(),
            "--spoke-cluster-name=c1".to_string(),
            format!("--data-dir={data}"),
            format!("--bootstrap-token-file={}", token_file.display()),
            "--cluster-label=env=prod".to_string(),
            "--cluster-claim=region=eu,zone=a".to_string(),
        ])
        .unwrap();
        let r = joining
            .agent_config()
            .unwrap()
            .registration
            .expect("registers");
        assert_eq!(r.bootstrap_token.as_deref(), Some("s3cret"));
        assert_eq!(r.identity_dir.path(), dir.path().join("identity"));
        assert_eq!(r.labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(r.claims.len(), 2);
        assert_eq!(r.lease_duration_seconds, 60);
        // A joined agent restarted without its token keeps registering.
        std::fs::create_dir_all(dir.path().join("identity")).unwrap();
        std::fs::write(dir.path().join("identity/tls.crt"), "x").unwrap();
        assert!(plain.agent_config().unwrap().registration.is_some());
        let bad = Args::try_parse_from([
            "workbus-agent",
            "--spoke-cluster-name=c1",
            "--bootstrap-token=t",
            "--cluster-claim=nope",
        ])
        .unwrap();
        assert!(matches!(bad.agent_config(), Err(CliError::Claim(_))));
    }

    #[test]
    fn every_flag_has_an_env_var() {
        let missing = workbus_process::flags_without_env(<Args as clap::CommandFactory>::command());
        assert_eq!(missing, Vec::<String>::new());
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let args = Args::try_parse_from(["workbus-agent", "--spoke-cluster-name=edge-1"]).unwrap();
        assert_eq!(args.status_sync_interval, DEFAULT_STATUS_SYNC_INTERVAL);
        assert_eq!(args.apply_resync_interval, DEFAULT_APPLY_RESYNC_INTERVAL);
        assert_eq!(args.sim_ready_after, DEFAULT_READY_AFTER);
        assert_eq!(args.max_feedback_watch, DEFAULT_MAX_FEEDBACK_WATCH);
        assert_eq!(args.outbox_max_statuses, DEFAULT_OUTBOX_MAX_STATUSES as u64);
        assert_eq!(args.outbox_max_bytes, DEFAULT_OUTBOX_MAX_BYTES);
        assert_eq!(
            args.appliedmanifestwork_eviction_grace_period,
            DEFAULT_EVICTION_GRACE_PERIOD
        );
        assert_eq!(args.broker, ["127.0.0.1:1883"]);
        assert_eq!(args.source_id, defaults::SOURCE_ID);
        assert_eq!(args.target, TargetKind::Sim);
        assert_eq!(args.mqtt_version, MqttVersion::V5);
        assert_eq!(args.data_dir(), PathBuf::from("workbus-agent-data/edge-1"));
        let config = args.agent_config().unwrap();
        assert_eq!(config.transport.protocol, Protocol::V5);
        assert_eq!(config.transport.endpoints.to_string(), "127.0.0.1:1883");
        assert_eq!(config.hub_host, "127.0.0.1:1883");
        assert_eq!(config.eviction_grace_period, DEFAULT_EVICTION_GRACE_PERIOD);
        let grace = Args::try_parse_from([
            "workbus-agent",
            "--spoke-cluster-name=edge-1",
            "--appliedmanifestwork-eviction-grace-period=90s",
        ])
        .unwrap();
        assert_eq!(
            grace.agent_config().unwrap().eviction_grace_period,
            Duration::from_secs(90)
        );
    }

    #[test]
    fn unusable_source_config_names_the_flag_and_the_file() {
        let missing = std::env::temp_dir().join(format!(
            "workbus-agent-no-such-config-{}.yaml",
            std::process::id()
        ));
        let args = Args::try_parse_from([
            "workbus-agent",
            "--spoke-cluster-name=c1",
            &format!("--workload-source-config={}", missing.display()),
        ])
        .unwrap();
        let e = args.agent_config().unwrap_err();
        assert!(
            matches!(&e, CliError::SourceConfig(LoadConfigError::Read { path, .. }) if *path == missing),
            "{e:?}"
        );
        let shown = e.to_string();
        assert!(
            shown.starts_with("--workload-source-config: cannot read "),
            "{shown}"
        );
        let bad_broker =
            Args::try_parse_from(["workbus-agent", "--spoke-cluster-name=c1", "--broker=nope"])
                .unwrap();
        let e = bad_broker.agent_config().unwrap_err().to_string();
        assert!(e.starts_with("--broker nope: "), "{e}");
    }

    #[test]
    fn several_brokers_are_tried_in_the_order_given() {
        let config = |flags: &[&str]| {
            let argv = ["workbus-agent", "--spoke-cluster-name=c1"]
                .iter()
                .chain(flags)
                .copied();
            Args::try_parse_from(argv).unwrap().agent_config().unwrap()
        };
        for flags in [
            &["--broker=a:1883,b:1884", "--broker", "c:1885"][..],
            &["--broker=a:1883", "--broker=b:1884", "--broker=c:1885"],
        ] {
            let c = config(flags);
            assert_eq!(c.transport.endpoints.to_string(), "a:1883,b:1884,c:1885");
            // The first address names the hub (AppliedManifestWork names).
            assert_eq!(c.hub_host, "a:1883");
        }

        let dir = std::env::temp_dir().join(format!("workbus-cli-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("mqtt.yaml");
        std::fs::write(
            &cfg,
            "brokerHost: a:1883\nbrokerHosts: [b:1883, c:1883]\ntopics:\n  sourceEvents: sources/maestro/consumers/c1/sourceevents\n  agentEvents: sources/maestro/consumers/c1/agentevents\n",
        )
        .unwrap();
        let c = config(&[&format!("--workload-source-config={}", cfg.display())]);
        assert_eq!(c.transport.endpoints.to_string(), "a:1883,b:1883,c:1883");
        assert_eq!(c.hub_host, "a:1883");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
