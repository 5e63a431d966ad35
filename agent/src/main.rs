//! `workbus-agent`: the work agent binary. Parses the OCM-compatible command line, opens
//! the durable store, builds the target and runs one agent until Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use workbus_agent::cli::Args;
use workbus_agent::runtime;
use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = match args.agent_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("workbus-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let data_dir = args.data_dir();
    let store = match FileStore::open(&data_dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("workbus-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sim = Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: args.sim_ready_after,
        snapshot: Some(data_dir.join("simulated-cluster.json")),
    }));
    eprintln!(
        "workbus-agent: cluster {} (agent id {}), broker {}:{}, data in {}, target: simulated cluster",
        config.cluster_name,
        config.agent_id,
        config.transport.host,
        config.transport.port,
        data_dir.display()
    );
    let agent = match runtime::start(config, sim, store) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("workbus-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    eprintln!("workbus-agent: shutting down");
    agent.shutdown().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
