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
    let stop = shutdown_signal();
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
    stop.await;
    eprintln!("workbus-agent: shutting down");
    agent.shutdown().await;
    ExitCode::SUCCESS
}

/// Waits for SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when it is first awaited, so a signal that arrives while the agent starts is not
/// lost to the default action (which would kill the process without its shutdown).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
