//! `workbus-hub quickstart`: the main job on embedded defaults, with no setup. It starts
//! the embedded MQTT broker, the hub (SQLite in a local directory) and a few agents of
//! simulated clusters in this process, applies a sample ManifestWork through the REST
//! API, prints its status as it arrives, prints where everything listens and how to
//! talk to it, and keeps serving until Ctrl-C.
//!
//! Everything goes through the real paths: the work is submitted over HTTP, travels as
//! CloudEvents over MQTT to the agent, and its status comes back the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use workbus_agent::config::AgentConfig;
use workbus_agent::runtime::{self, AgentHandle};
use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_schemas::topics::Topics;
use workbus_transport::TransportConfig;

use crate::cli::client::Client;
use crate::config::{BrokerSettings, HubConfig, StoreSettings};
use crate::hub::Hub;

/// Flags of `quickstart`.
#[derive(Debug, Clone, Args)]
pub struct QuickstartArgs {
    /// REST listen address (a free port is used if it is taken).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Embedded MQTT broker address (a free port is used if it is taken).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker_listen: SocketAddr,
    /// Directory for the hub database and the simulated agents' state.
    #[arg(long, default_value = "./workbus-data")]
    pub data_dir: PathBuf,
    /// Number of simulated clusters (each with its own agent).
    #[arg(long, default_value_t = 3)]
    pub clusters: usize,
    /// Source id.
    #[arg(long, default_value = "workbus")]
    pub source_id: String,
    /// Exit after the sample work is applied and available (for scripts and CI).
    #[arg(long)]
    pub exit_when_ready: bool,
}

fn sample_work(cluster: &str) -> Value {
    json!({
        "apiVersion": workbus_schemas::work::ManifestWork::API_VERSION,
        "kind": "ManifestWork",
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

/// Runs the quickstart until Ctrl-C (or until ready with `--exit-when-ready`).
pub async fn quickstart(args: QuickstartArgs) -> Result<(), String> {
    let started = Instant::now();
    println!(
        "workbus quickstart: embedded broker + hub (SQLite) + {} simulated clusters",
        args.clusters
    );
    let (broker, moved) = crate::embedded_broker::start(args.broker_listen)
        .await
        .map_err(|e| format!("cannot start the embedded broker: {e}"))?;
    let broker_addr = broker.local_addr();
    if moved {
        println!(
            "  note: {} is in use; the embedded broker took {broker_addr}",
            args.broker_listen
        );
    }
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
        broker: BrokerSettings::Address {
            host: broker_addr.ip().to_string(),
            port: broker_addr.port(),
        },
        ..HubConfig::new()
    })
    .await
    .map_err(|e| e.to_string())?;
    let base_url = hub.base_url();
    if !hub.wait_subscribed(Duration::from_secs(10)).await {
        return Err("the hub could not subscribe to the embedded broker".into());
    }

    // Register the clusters first (so the hub knows them when their agents first speak),
    // then start a real agent per simulated cluster, then apply the sample work. The
    // registration and the work go through the REST API, like a user's.
    let clusters: Vec<String> = (1..=args.clusters.max(1))
        .map(|i| format!("edge-{i}"))
        .collect();
    let client_url = base_url.clone();
    let names = clusters.clone();
    tokio::task::spawn_blocking(move || {
        let client = Client::new(&client_url);
        for c in &names {
            // Already registered by an earlier run: fine.
            let _ = client.post("/api/v1/clusters", &json!({"name": c}));
        }
    })
    .await
    .map_err(|e| e.to_string())?;

    // Simulated clusters, each with a real agent over MQTT and durable state on disk.
    let mut agents: Vec<AgentHandle> = Vec::new();
    for cluster in &clusters {
        let dir = args.data_dir.join("agents").join(cluster);
        let store = Arc::new(FileStore::open(&dir).map_err(|e| e.to_string())?);
        let sim = Arc::new(SimulatedCluster::new(SimConfig {
            ready_after: Duration::from_secs(2),
            snapshot: Some(dir.join("simulated-cluster.json")),
        }));
        let topics = Topics::for_agent(&args.source_id, cluster).map_err(|e| e.to_string())?;
        let transport = TransportConfig::new(broker_addr.ip().to_string(), broker_addr.port(), "");
        let mut config =
            AgentConfig::new(cluster, None, topics, transport).map_err(|e| e.to_string())?;
        config.status_sync_interval = Duration::from_secs(5);
        agents.push(runtime::start(config, sim, store).map_err(|e| e.to_string())?);
    }

    let client_url = base_url.clone();
    let first = clusters[0].clone();
    let applied = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let client = Client::new(&client_url);
        let work = sample_work(&first);
        let answer = client
            .put(
                &format!("/api/v1/clusters/{first}/works/hello-workbus"),
                &work,
            )
            .map_err(|e| e.to_string())?;
        Ok(answer.outcome.unwrap_or_else(|| "applied".into()))
    })
    .await
    .map_err(|e| e.to_string())??;
    println!(
        "  applied ManifestWork {}/hello-workbus ({applied}); waiting for its status...",
        clusters[0]
    );

    // Progress: print each status change until the work is available.
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = format!("/api/v1/clusters/{}/works/hello-workbus", clusters[0]);
    let mut ready = false;
    while Instant::now() < deadline {
        let url = base_url.clone();
        let p = path.clone();
        let work = tokio::task::spawn_blocking(move || Client::new(&url).get(&p).map(|a| a.body))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
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
            "  warning: the work did not become available within 60s; see `workbus-hub describe work hello-workbus -n {}`",
            clusters[0]
        );
    }
    println!();
    println!("REST API   {base_url}   (OpenAPI: {base_url}/openapi.json)");
    println!(
        "MQTT       {broker_addr}   (MQTT 5 and 3.1.1; source id `{}`)",
        args.source_id
    );
    println!("data       {}", args.data_dir.display());
    println!("clusters   {}", clusters.join(", "));
    println!();
    println!("Try, in another terminal:");
    println!("  export WORKBUS_SERVER={base_url}");
    println!("  cargo run --release -p workbus-hub -- get works");
    println!(
        "  cargo run --release -p workbus-hub -- describe work hello-workbus -n {}",
        clusters[0]
    );
    println!(
        "  cargo run --release -p workbus-agent -- --spoke-cluster-name=edge-9 --broker={broker_addr} --source-id={}",
        args.source_id
    );
    if args.exit_when_ready {
        shutdown(agents, hub, broker).await;
        return if ready {
            Ok(())
        } else {
            Err("the sample work did not become available".into())
        };
    }
    println!();
    println!("Serving; press Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    println!("shutting down");
    shutdown(agents, hub, broker).await;
    Ok(())
}

async fn shutdown(
    agents: Vec<AgentHandle>,
    hub: crate::hub::HubHandle,
    broker: workbus_broker::BrokerHandle,
) {
    for a in agents {
        a.shutdown().await;
    }
    hub.shutdown().await;
    broker.shutdown().await;
}
