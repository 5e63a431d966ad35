//! `workbus-hub quickstart`: the main job on embedded defaults, with no setup. It starts
//! the embedded MQTT broker, the hub (SQLite in a local directory) and a few agents of
//! simulated clusters in this process, applies a sample ManifestWork through the REST
//! API, prints its status as it arrives, prints where everything listens and how to
//! talk to it, and keeps serving until Ctrl-C.
//!
//! Everything goes through the real paths: the work is submitted over HTTP, travels as
//! CloudEvents over MQTT to the agent, and its status comes back the same way.
//!
//! The API needs tokens as always: the first run makes the admin token (printed once,
//! kept in `<data-dir>/admin.token`, 0600); the quickstart's own calls use a `writer`
//! token named `quickstart`, replaced on every run. The REST API is plain HTTP on a
//! loopback address (the hub refuses plaintext anywhere else): this is a local demo.
//!
//! The embedded broker is secured as `serve`'s (see [`crate::embedded_broker`]): mutual
//! TLS and per-cluster topic ACLs, with a CA and certificates made on the first run in
//! `<data-dir>/pki/` (printed once); the hub connects with its source certificate. The
//! simulated clusters *join* as remote ones do (issue 13): the quickstart makes a
//! bootstrap token with auto-accept, each agent connects with it, asks for its
//! ManagedCluster and a certificate, is accepted, keeps the certificate in its
//! identity dir and reconnects with it; a later run finds the identities and connects
//! with them at once. `--insecure-broker` runs the broker in plaintext without ACLs on
//! loopback instead; there the clusters are created over REST and the agents connect
//! without identities, as before.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use workbus_agent::config::AgentConfig;
use workbus_agent::registration::identity_dir::IdentityDir;
use workbus_agent::registration::{self, PrepareError, RegistrationConfig};
use workbus_agent::runtime::{self, AgentError, AgentHandle};
use workbus_agent::store::{FileStore, StoreError};
use workbus_agent::target::ClusterInfo;
use workbus_agent::target::sim::{SNAPSHOT_FILE, SimConfig, SimulatedCluster};
use workbus_process::shutdown_signal;
use workbus_schemas::topics::{TopicError, Topics};
use workbus_transport::{PemSource, TlsSettings, TransportConfig};

use crate::api::registration::{NewBootstrapToken, issue_bootstrap};
use crate::auth::tokens::{ADMIN_TOKEN_FILE, TokenError, TokenRequest, issue};
use crate::cli::client::{CliError, Client};
use crate::config::{ApiSettings, HubConfig, RegistrationSettings, StoreSettings};
use crate::defaults;
use crate::embedded_broker::{self, BrokerSecurity, EmbeddedBroker, EmbeddedBrokerError};
use crate::hub::{Hub, HubError};
use crate::pki::{Pki, PkiError};
use crate::store::writes::RevokeToken;
use crate::store::{Role, StoreError as HubStoreError};

/// Default number of simulated clusters.
pub const CLUSTERS: usize = 3;

/// Default log filter: quiet, the quickstart prints its own progress.
pub const LOG: &str = "warn";

/// How long the hub may take to subscribe to the embedded broker.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(10);

/// The agents' status refresh: faster than an agent's default, for a lively demo.
const STATUS_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// How long the sample work may take to become available.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Flags of `quickstart` (each also from a `WORKBUS_HUB_*` environment variable).
#[derive(Debug, Clone, Args)]
pub struct QuickstartArgs {
    /// REST listen address (a free port is used if it is taken).
    #[arg(long, env = "WORKBUS_HUB_LISTEN", default_value_t = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Embedded MQTT broker address (a free port is used if it is taken) [default:
    /// 127.0.0.1:8883 (TLS), 127.0.0.1:1883 with --insecure-broker].
    #[arg(long, env = "WORKBUS_HUB_BROKER_LISTEN")]
    pub broker_listen: Option<SocketAddr>,
    /// Run the embedded broker in plaintext without identities or topic ACLs (tests,
    /// old devices); only on a loopback address.
    #[arg(long, env = "WORKBUS_HUB_INSECURE_BROKER")]
    pub insecure_broker: bool,
    /// Directory for the hub database and the simulated agents' state.
    #[arg(long, env = "WORKBUS_HUB_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// Number of simulated clusters (each with its own agent).
    #[arg(long, env = "WORKBUS_HUB_CLUSTERS", default_value_t = CLUSTERS)]
    pub clusters: usize,
    /// Source id.
    #[arg(long, env = "WORKBUS_HUB_SOURCE_ID", default_value = defaults::SOURCE_ID)]
    pub source_id: String,
    /// Exit after the sample work is applied and available (for scripts and CI).
    #[arg(long, env = "WORKBUS_HUB_EXIT_WHEN_READY")]
    pub exit_when_ready: bool,
}

/// Why the quickstart stopped; each names the part that failed.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    /// The embedded broker could not start.
    #[error(transparent)]
    EmbeddedBroker(#[from] EmbeddedBrokerError),
    /// The certificates could not be made or read.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The hub could not start.
    #[error("cannot start the hub: {0}")]
    Hub(#[from] HubError),
    /// The hub did not subscribe in time.
    #[error("the hub could not subscribe to the embedded broker within {0:?}")]
    NotSubscribed(Duration),
    /// A simulated cluster's state could not be opened.
    #[error("simulated cluster {cluster}: {source}")]
    AgentStore {
        /// The cluster.
        cluster: String,
        /// Why.
        source: StoreError,
    },
    /// A simulated cluster's name or topics are unusable.
    #[error("simulated cluster {cluster}: {source}")]
    AgentTopics {
        /// The cluster.
        cluster: String,
        /// Why.
        source: TopicError,
    },
    /// A simulated cluster's certificate could not be made or read.
    #[error("simulated cluster {cluster}: {source}")]
    AgentCertificate {
        /// The cluster.
        cluster: String,
        /// Why.
        source: PkiError,
    },
    /// A simulated cluster could not join the hub.
    #[error("simulated cluster {cluster}: cannot join the hub: {source}")]
    Join {
        /// The cluster.
        cluster: String,
        /// Why.
        source: PrepareError,
    },
    /// The bootstrap token for the joins could not be made.
    #[error("cannot make the bootstrap token: {0}")]
    BootstrapToken(String),
    /// A simulated cluster's agent could not start.
    #[error("simulated cluster {cluster}: cannot start its agent: {source}")]
    Agent {
        /// The cluster.
        cluster: String,
        /// Why.
        source: AgentError,
    },
    /// A REST call to the hub failed.
    #[error("REST API: {0}")]
    Rest(#[from] CliError),
    /// The quickstart's own API token could not be made.
    #[error("the quickstart's API token: {0}")]
    Token(#[from] TokenError),
    /// A blocking REST call's task failed.
    #[error("REST call task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// `--exit-when-ready`, and the sample work was not ready in time.
    #[error("the sample work did not become available within {0:?}")]
    NotAvailable(Duration),
}

fn sample_work(cluster: &str) -> Value {
    json!({
        "apiVersion": workbus_schemas::work::ManifestWork::API_VERSION,
        "kind": workbus_schemas::work::ManifestWork::KIND,
        "metadata": {"name": "hello-workbus", "namespace": cluster, "labels": {"app": "hello"}},
        "spec": {
            "workload": {"manifests": [
                {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "hello-config", "namespace": "default"},
                 "data": {"greeting": "hello from the hub"}},
                {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "hello", "namespace": "default"},
                 "spec": {"replicas": 2,
                          "selector": {"matchLabels": {"app": "hello"}},
                          "template": {"metadata": {"labels": {"app": "hello"}},
                                       "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
            ]},
            "manifestConfigs": [{
                "resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "hello", "namespace": "default"},
                "feedbackRules": [{"type": "WellKnownStatus"}]
            }]
        }
    })
}

/// One line per condition state, e.g. `Applied=True Available=True`.
fn summary(work: &Value) -> String {
    let conds = work["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut parts: Vec<String> = conds
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    for m in work["status"]["resourceStatus"]["manifests"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for v in m["statusFeedback"]["values"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let fv = &v["fieldValue"];
            let val = fv
                .get("integer")
                .or(fv.get("string"))
                .or(fv.get("boolean"))
                .cloned()
                .unwrap_or(Value::Null);
            parts.push(format!("{}={}", v["name"].as_str().unwrap_or("?"), val));
        }
    }
    if parts.is_empty() {
        "no status yet".into()
    } else {
        parts.join(" ")
    }
}

fn available(work: &Value) -> bool {
    work["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True")
}

/// What a quickstart ran: how its broker was secured and what the broker counted just
/// before it stopped.
#[derive(Debug, Clone)]
pub struct QuickstartSummary {
    /// Whether the broker served mutual TLS only.
    pub tls: bool,
    /// Whether the broker enforced identities and topic ACLs.
    pub acl: bool,
    /// The certificate directory, when TLS was on.
    pub pki: Option<PathBuf>,
    /// The broker's counters before shutdown (the hub and one agent per cluster
    /// connected).
    pub broker: workbus_broker::BrokerStats,
    /// The simulated clusters.
    pub clusters: Vec<String>,
}

impl QuickstartArgs {
    /// Where the embedded broker listens: `--broker-listen`, else the default of its
    /// mode.
    pub fn embedded_broker_listen(&self) -> SocketAddr {
        defaults::embedded_broker_listen(
            self.broker_listen,
            self.insecure_broker,
            defaults::QUICKSTART_BROKER_LISTEN,
        )
    }

    /// How the embedded broker admits clients: mutual TLS and ACLs with the data
    /// directory's certificates (made on the first run), or plaintext.
    pub fn broker_security(&self) -> Result<BrokerSecurity, PkiError> {
        if self.insecure_broker {
            return Ok(BrokerSecurity::Insecure);
        }
        Ok(BrokerSecurity::MutualTls {
            pki: Pki::ensure(&self.data_dir, &[])?,
            source_id: self.source_id.clone(),
        })
    }
}

/// Runs the quickstart until Ctrl-C or SIGTERM (or until ready with `--exit-when-ready`).
pub async fn quickstart(args: QuickstartArgs) -> Result<QuickstartSummary, QuickstartError> {
    // Before anything slow, unless it exits by itself (then it leaves signals alone).
    let stop = (!args.exit_when_ready).then(shutdown_signal);
    let started = Instant::now();
    println!(
        "workbus quickstart: embedded broker + hub (SQLite) + {} simulated clusters",
        args.clusters
    );
    let security = args.broker_security()?;
    let broker =
        embedded_broker::start_announced(args.embedded_broker_listen(), &security, "  ").await?;
    let broker_addr = broker.addr();
    let reach = broker.reach();
    let listen = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => {
            drop(l);
            args.listen
        }
        Err(_) => {
            let mut any = args.listen;
            any.set_port(0);
            println!(
                "  note: {} is in use; the REST API takes a free port",
                args.listen
            );
            any
        }
    };
    let hub = Hub::start(HubConfig {
        store: StoreSettings::sqlite(args.data_dir.join("hub")),
        listen,
        source_id: args.source_id.clone(),
        broker: broker.hub_settings()?,
        api: ApiSettings {
            admin_token_file: Some(args.data_dir.join(ADMIN_TOKEN_FILE)),
            ..ApiSettings::default()
        },
        registration: RegistrationSettings {
            pki: broker.pki().cloned(),
            disconnect: Some(broker.disconnect()),
            trust_publisher_stamps: true,
            ..RegistrationSettings::default()
        },
        ..HubConfig::new()
    })
    .await?;
    broker.attach_hub(&hub);
    let base_url = hub.base_url();
    let admin_token = hub.admin_token().map(str::to_string);
    let client = Client::new(&base_url).with_token(Some(own_token(&hub).await?));
    if !hub.wait_subscribed(SUBSCRIBE_WITHIN).await {
        return Err(QuickstartError::NotSubscribed(SUBSCRIBE_WITHIN));
    }

    // The simulated clusters join with a bootstrap token (auto-accept) and come up with
    // their own certificates; on the plaintext broker they are created over REST, like
    // a user's. Then a real agent per simulated cluster, then the sample work.
    let clusters: Vec<String> = (1..=args.clusters.max(1))
        .map(|i| format!("edge-{i}"))
        .collect();
    let join_token = match broker.pki() {
        Some(_) => Some(bootstrap_token(&hub).await?),
        None => {
            let names = clusters.clone();
            let registrar = client.clone();
            tokio::task::spawn_blocking(move || {
                let client = registrar;
                for c in &names {
                    // Already registered by an earlier run: fine.
                    let _ = client.post("/api/v1/clusters", &json!({"name": c}));
                }
            })
            .await?;
            None
        }
    };

    // Simulated clusters, each with a real agent over MQTT and durable state on disk,
    // joining concurrently.
    let mut joining = tokio::task::JoinSet::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let config = agent_config(
            &args,
            cluster,
            &broker,
            hub.spec_signing_key(),
            join_token.as_deref(),
        )?;
        let cluster = cluster.clone();
        joining.spawn(async move {
            let mut config = config;
            let joined = registration::prepare(&mut config).await;
            (i, cluster, config, joined)
        });
    }
    let mut prepared = Vec::new();
    while let Some(done) = joining.join_next().await {
        let (i, cluster, config, joined) = done?;
        match joined {
            Ok(Some(identity)) => println!(
                "  cluster {cluster} joined: accepted, certificate {} valid until {}",
                identity.serial,
                chrono::DateTime::<chrono::Utc>::from(identity.not_after).format("%Y-%m-%d")
            ),
            Ok(None) => {}
            Err(source) => return Err(QuickstartError::Join { cluster, source }),
        }
        prepared.push((i, cluster, config));
    }
    prepared.sort_by_key(|(i, _, _)| *i);
    let mut agents: Vec<AgentHandle> = Vec::new();
    for (_, cluster, config) in prepared {
        agents.push(start_agent(&args, &cluster, config)?);
    }

    let first = clusters[0].clone();
    let applier = client.clone();
    let applied = tokio::task::spawn_blocking(move || -> Result<String, CliError> {
        let client = applier;
        let work = sample_work(&first);
        let answer = client.put(
            &format!("/api/v1/clusters/{first}/works/hello-workbus"),
            &work,
        )?;
        Ok(answer.outcome.unwrap_or_else(|| "applied".into()))
    })
    .await??;
    println!(
        "  applied ManifestWork {}/hello-workbus ({applied}); waiting for its status...",
        clusters[0]
    );

    // Progress: print each status change until the work is available.
    let mut last = String::new();
    let deadline = Instant::now() + READY_WITHIN;
    let path = format!("/api/v1/clusters/{}/works/hello-workbus", clusters[0]);
    let mut ready = false;
    while Instant::now() < deadline {
        let (c, p) = (client.clone(), path.clone());
        let work = tokio::task::spawn_blocking(move || c.get(&p).map(|a| a.body)).await??;
        let line = summary(&work);
        if line != last {
            println!(
                "  [{:>5.1}s] status: {line}",
                started.elapsed().as_secs_f64()
            );
            last = line;
        }
        // Done when the Deployment reports ready replicas through status feedback.
        if available(&work)
            && work["status"]["resourceStatus"]["manifests"][1]["statusFeedback"]["values"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x["name"] == "ReadyReplicas"))
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if ready {
        println!(
            "  work applied and available after {:.1}s",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "  warning: the work did not become available within {}s; see `workbus-hub describe work hello-workbus -n {}`",
            READY_WITHIN.as_secs(),
            clusters[0]
        );
    }
    println!();
    println!("REST API   {base_url}   (OpenAPI: {base_url}/openapi.json)");
    match broker.pki() {
        Some(pki) => {
            println!(
                "MQTT       {broker_addr}   (MQTT 5 and 3.1.1 over mutual TLS, topic ACLs on; source id `{}`)",
                args.source_id
            );
            println!(
                "TLS        CA {}; certificates in {}",
                pki.ca_bundle().display(),
                pki.dir().display()
            );
        }
        None => println!(
            "MQTT       {broker_addr}   (PLAINTEXT, no ACLs: --insecure-broker; MQTT 5 and 3.1.1; source id `{}`)",
            args.source_id
        ),
    }
    println!("data       {}", args.data_dir.display());
    println!("clusters   {}", clusters.join(", "));
    let token_file = args.data_dir.join(ADMIN_TOKEN_FILE);
    match &admin_token {
        Some(token) => println!(
            "API token  {token}   (admin; shown only this once, kept in {} with mode 0600)",
            token_file.display()
        ),
        None => println!(
            "API token  the admin token made on the first run, in {}",
            token_file.display()
        ),
    }
    println!();
    println!("Try, in another terminal:");
    println!("  export WORKBUS_SERVER={base_url}");
    println!("  export WORKBUS_TOKEN_FILE={}", token_file.display());
    println!("  cargo run --release -p workbus-hub -- get clusters");
    println!("  cargo run --release -p workbus-hub -- get works");
    println!(
        "  cargo run --release -p workbus-hub -- describe work hello-workbus -n {}",
        clusters[0]
    );
    if broker.tls() {
        println!(
            "  cargo run --release -p workbus-hub -- certs issue --data-dir {} --source-id {} --broker {reach} --cluster edge-9 --out ./agent-edge-9-tls",
            args.data_dir.display(),
            args.source_id
        );
        println!(
            "  cargo run --release -p workbus-agent -- --spoke-cluster-name=edge-9 --workload-source-config=./agent-edge-9-tls/{} --data-dir=./agent-edge-9",
            crate::cli::certs::AGENT_MQTT_CONFIG
        );
    } else {
        println!(
            "  cargo run --release -p workbus-agent -- --spoke-cluster-name=edge-9 --broker={reach} --source-id={}",
            args.source_id
        );
    }
    let summary_of = |broker: &EmbeddedBroker| QuickstartSummary {
        tls: broker.tls(),
        acl: broker.acl(),
        pki: broker.pki().map(|p| p.dir().to_owned()),
        broker: broker.handle().stats(),
        clusters: clusters.clone(),
    };
    let Some(stop) = stop else {
        let summary = summary_of(&broker);
        shutdown(agents, hub, broker).await;
        return if ready {
            Ok(summary)
        } else {
            Err(QuickstartError::NotAvailable(READY_WITHIN))
        };
    };
    println!();
    println!("Serving; press Ctrl-C to stop.");
    stop.await;
    println!("shutting down");
    let summary = summary_of(&broker);
    shutdown(agents, hub, broker).await;
    Ok(summary)
}

/// The quickstart's own `writer` token, replaced on every run (a stored token's secret
/// cannot be read back).
async fn own_token(hub: &crate::hub::HubHandle) -> Result<String, QuickstartError> {
    const NAME: &str = "quickstart";
    match hub.store().write(RevokeToken { name: NAME.into() }).await {
        Ok(()) | Err(HubStoreError::NotFound { .. }) => {}
        Err(e) => return Err(TokenError::Store(e).into()),
    }
    let request = TokenRequest {
        name: Some(NAME.into()),
        role: Role::Writer,
        clusters: None,
    };
    let (write, secret) = issue(request, NAME, chrono::Utc::now())?;
    hub.store().write(write).await.map_err(TokenError::Store)?;
    Ok(secret)
}

/// The agent configuration of simulated cluster `cluster` against `broker`: with a
/// bootstrap token (TLS broker) it registers — joins with the token unless its identity
/// dir already holds its certificate — else it connects as before. It applies only spec
/// events signed by the hub (`spec_signing_key`).
fn agent_config(
    args: &QuickstartArgs,
    cluster: &str,
    broker: &EmbeddedBroker,
    spec_signing_key: &workbus_schemas::signature::VerifyingKey,
    join_token: Option<&str>,
) -> Result<AgentConfig, QuickstartError> {
    let dir = args.data_dir.join("agents").join(cluster);
    let topics_error = |source| QuickstartError::AgentTopics {
        cluster: cluster.to_string(),
        source,
    };
    let topics = Topics::for_agent(&args.source_id, cluster).map_err(topics_error)?;
    let transport =
        match (broker.pki(), join_token) {
            // Trusting the hub CA, no certificate: the identity comes from the join.
            (Some(pki), Some(_)) => {
                let addr = broker.reach();
                let mut t = TransportConfig::new(addr.ip().to_string(), addr.port(), "");
                t.tls = Some(TlsSettings {
                    ca_pem: Some(PemSource::File(pki.ca_bundle())),
                    ..TlsSettings::default()
                });
                t
            }
            _ => broker.agent_transport(cluster).map_err(|source| {
                QuickstartError::AgentCertificate {
                    cluster: cluster.to_string(),
                    source,
                }
            })?,
        };
    let mut config = AgentConfig::new(cluster, None, topics, transport).map_err(topics_error)?;
    config.status_sync_interval = STATUS_SYNC_INTERVAL;
    config.spec_signing_key = Some(spec_signing_key.clone());
    if let Some(token) = join_token {
        let mut r = RegistrationConfig::new(IdentityDir::new(dir.join(registration::IDENTITY_DIR)));
        r.bootstrap_token = Some(token.to_string());
        r.claims = vec![("workbus.io/quickstart".to_string(), "true".to_string())];
        config.registration = Some(r);
    }
    Ok(config)
}

/// Starts the agent of simulated cluster `cluster` with `config`, its state (and the
/// simulated cluster's snapshot) under the data directory.
fn start_agent(
    args: &QuickstartArgs,
    cluster: &str,
    config: AgentConfig,
) -> Result<AgentHandle, QuickstartError> {
    let dir = args.data_dir.join("agents").join(cluster);
    let store = FileStore::open(&dir).map_err(|source| QuickstartError::AgentStore {
        cluster: cluster.to_string(),
        source,
    })?;
    let sim = SimulatedCluster::new(SimConfig {
        snapshot: Some(dir.join(SNAPSHOT_FILE)),
        ..SimConfig::default()
    })
    .with_cluster_info(ClusterInfo::simulated(&format!("quickstart-{cluster}")));
    runtime::start(config, Arc::new(sim), Arc::new(store)).map_err(|source| {
        QuickstartError::Agent {
            cluster: cluster.to_string(),
            source,
        }
    })
}

/// A bootstrap token for this run's joins, with auto-accept, valid one hour.
async fn bootstrap_token(hub: &crate::hub::HubHandle) -> Result<String, QuickstartError> {
    let request = NewBootstrapToken {
        name: None,
        ttl_seconds: Some(3600),
        auto_accept: true,
    };
    let (write, secret) = issue_bootstrap(request, "quickstart", chrono::Utc::now())
        .map_err(|e| QuickstartError::BootstrapToken(e.message))?;
    hub.store()
        .write(write)
        .await
        .map_err(|e| QuickstartError::BootstrapToken(e.to_string()))?;
    Ok(secret)
}

async fn shutdown(agents: Vec<AgentHandle>, hub: crate::hub::HubHandle, broker: EmbeddedBroker) {
    for a in agents {
        a.shutdown().await;
    }
    hub.shutdown().await;
    broker.shutdown().await;
}
