//! `workbus-kube-apiserver`: the Kubernetes API test server as a process, for manual use
//! with kubectl (`--kubeconfig` writes a kubeconfig pointing at it).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use workbus_kube_apiserver::{KubeApiServer, Readiness, ServerConfig};

#[derive(Clone, Copy, ValueEnum)]
enum ReadinessArg {
    Immediate,
    Manual,
}

/// A Kubernetes API test server (plain HTTP, no authentication).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Write a kubeconfig for the server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the kubeconfig's context.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// How workloads become ready.
    #[arg(long, value_enum, default_value = "immediate")]
    readiness: ReadinessArg,
    /// Nodes of the simulated cluster.
    #[arg(long, default_value_t = 1)]
    nodes: u32,
    /// CustomResourceDefinition files (YAML or JSON) to install at start.
    #[arg(long = "crd")]
    crds: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let mut crds = Vec::new();
    for path in &args.crds {
        let text = std::fs::read_to_string(path)?;
        crds.push(serde_norway::from_str::<serde_json::Value>(&text)?);
    }
    let server = KubeApiServer::start(ServerConfig {
        listen: args.listen,
        readiness: match args.readiness {
            ReadinessArg::Immediate => Readiness::Immediate,
            ReadinessArg::Manual => Readiness::Manual,
        },
        nodes: args.nodes,
        crds,
        ..ServerConfig::default()
    })
    .await?;
    println!("serving the Kubernetes API at {}", server.url());
    if let Some(path) = &args.kubeconfig {
        server.write_kubeconfig(path, &args.namespace)?;
        println!("kubeconfig written to {}", path.display());
    }
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
