//! `workbus-agent`: the work agent binary. Parses the OCM-compatible command line, opens
//! the durable store, builds the target and runs one agent until Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use workbus_agent::cli::{Args, TargetKind};
use workbus_agent::metrics::AgentStatus;
use workbus_agent::store::FileStore;
use workbus_agent::target::any::AnyTarget;
use workbus_agent::target::sim::{SNAPSHOT_FILE, SimConfig, SimulatedCluster};
use workbus_agent::{registration, runtime};
use workbus_process::status_endpoint::StatusEndpoint;
use workbus_process::{defaults, init_logging, shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Before anything slow: a signal during start-up then stops the agent cleanly.
    let stop = shutdown_signal();
    if let Err(e) = init_logging(args.log.as_deref(), defaults::LOG, args.log_format) {
        eprintln!("workbus-agent: {e}");
        return ExitCode::from(2);
    }
    let mut config = match args.agent_config() {
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
    let target = match args.target {
        TargetKind::Sim => AnyTarget::Sim(Arc::new(SimulatedCluster::new(SimConfig {
            ready_after: args.sim_ready_after,
            snapshot: Some(data_dir.join(SNAPSHOT_FILE)),
        }))),
        #[cfg(feature = "kube")]
        TargetKind::Kube => {
            use workbus_agent::target::kube::KubeTarget;
            match KubeTarget::connect(&args.kube_config_source()).await {
                Ok(k) => AnyTarget::Kube(Arc::new(k)),
                Err(e) => {
                    eprintln!("workbus-agent: --target kube: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        // `agent_config` refused it already (a build without the `kube` feature).
        #[cfg(not(feature = "kube"))]
        TargetKind::Kube => return ExitCode::from(2),
    };
    eprintln!(
        "workbus-agent: cluster {} (agent id {}), broker {}, data in {}, target: {}",
        config.cluster_name,
        config.agent_id,
        config.transport.endpoints,
        data_dir.display(),
        target.describe()
    );
    // A registering cluster needs its identity first: joining may wait for the hub's
    // operator, and a stop signal meanwhile ends the agent.
    let mut stop = Box::pin(stop);
    tokio::select! {
        prepared = registration::prepare(&mut config) => {
            if let Err(e) = prepared {
                eprintln!("workbus-agent: {e}");
                return ExitCode::FAILURE;
            }
        }
        _ = &mut stop => {
            eprintln!("workbus-agent: shutting down");
            return ExitCode::SUCCESS;
        }
    }
    let client_id = config.transport.client_id.clone();
    let agent = match runtime::start(config, Arc::new(target), store) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("workbus-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let endpoint = match args.metrics_listen {
        Some(addr) => {
            let status = AgentStatus::new(
                agent.stats().clone(),
                agent.transport_stats().clone(),
                &client_id,
            );
            match StatusEndpoint::start(addr, Arc::new(status)).await {
                Ok(ep) => {
                    eprintln!(
                        "workbus-agent: metrics and health on http://{}/metrics (/healthz, /readyz)",
                        ep.local_addr()
                    );
                    Some(ep)
                }
                Err(e) => {
                    eprintln!("workbus-agent: {e}");
                    agent.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    stop.await;
    eprintln!("workbus-agent: shutting down");
    if let Some(ep) = endpoint {
        ep.shutdown().await;
    }
    agent.shutdown().await;
    ExitCode::SUCCESS
}
