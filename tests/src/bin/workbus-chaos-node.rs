//! `workbus-chaos-node`: one part of the system as its own process, for the chaos suite
//! (`tests/tests/chaos.rs`), which kills (SIGKILL), pauses (SIGSTOP/SIGCONT) and restarts
//! it. Built with the tests crate, so `cargo test -p workbus-tests` finds it through
//! `CARGO_BIN_EXE_workbus-chaos-node` without building the product binaries.
//!
//! Each subcommand is the product's own entry point, not a re-implementation:
//!
//! - `hub <workbus-hub serve flags>`: `workbus_hub::cli::serve::serve`, exactly what
//!   `workbus-hub serve` runs;
//! - `agent <workbus-agent flags> [--keep-alive-secs N]`: the product's command line
//!   (`workbus_agent::cli::Args`) and the same wiring as `workbus-agent`'s `main` (file
//!   store, simulated cluster with its snapshot in the data dir, joining with a
//!   bootstrap token or loading the cluster's identity first), plus a keep-alive
//!   override so "paused past keep-alive" takes seconds, not minutes;
//! - `broker --listen ADDR [--tls-dir DIR --source-id ID]`: the embedded broker
//!   (`workbus_broker`) standalone, as `workbus-broker` runs it, plaintext or with
//!   mutual TLS and the fleet ACL.
//!
//! All three stop gracefully on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_agent::{registration, runtime};
use workbus_broker::certs;
use workbus_broker::{Broker, BrokerConfig, FleetAcl, TlsConfig};

#[derive(Parser)]
#[command(
    name = "workbus-chaos-node",
    about = "a hub, agent or broker process for the chaos suite"
)]
struct Cli {
    #[command(subcommand)]
    node: Node,
}

#[derive(Subcommand)]
enum Node {
    /// The hub (`workbus-hub serve`).
    Hub(Box<workbus_hub::cli::serve::ServeArgs>),
    /// A work agent on a simulated cluster (`workbus-agent`).
    Agent {
        #[command(flatten)]
        args: Box<workbus_agent::cli::Args>,
        /// MQTT keep-alive in seconds (the product default is 60; rumqttc, the MQTT
        /// client, refuses less than 5).
        #[arg(long, value_parser = clap::value_parser!(u64).range(5..))]
        keep_alive_secs: Option<u64>,
    },
    /// The embedded broker standalone (`workbus-broker`).
    Broker {
        /// Listen address.
        #[arg(long)]
        listen: SocketAddr,
        /// Secured: a certificate directory (`workbus-hub certs` layout) for mutual TLS
        /// on `--listen`, with the fleet ACL of `--source-id`.
        #[arg(long, requires = "source_id")]
        tls_dir: Option<PathBuf>,
        /// The source id the fleet ACL serves (with `--tls-dir`).
        #[arg(long)]
        source_id: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("workbus-chaos-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.node {
            Node::Hub(args) => workbus_hub::cli::serve::serve(*args)
                .await
                .map_err(|e| e.to_string()),
            Node::Agent {
                args,
                keep_alive_secs,
            } => agent(*args, keep_alive_secs).await,
            Node::Broker {
                listen,
                tls_dir,
                source_id,
            } => broker(listen, tls_dir.zip(source_id)).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workbus-chaos-node: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `workbus-agent`'s `main`, with the keep-alive override.
async fn agent(args: workbus_agent::cli::Args, keep_alive_secs: Option<u64>) -> Result<(), String> {
    let mut config = args.agent_config().map_err(|e| e.to_string())?;
    if let Some(secs) = keep_alive_secs {
        config.transport.keep_alive = Duration::from_secs(secs);
    }
    let data_dir = args.data_dir();
    let store = Arc::new(FileStore::open(&data_dir).map_err(|e| e.to_string())?);
    let sim = Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: args.sim_ready_after,
        snapshot: Some(data_dir.join(SIM_SNAPSHOT)),
    }));
    eprintln!(
        "workbus-chaos-node agent: cluster {}, broker {}, keep-alive {:?}, data in {}",
        config.cluster_name,
        config.transport.endpoints,
        config.transport.keep_alive,
        data_dir.display()
    );
    // As `workbus-agent`'s `main`: a registering cluster joins (or loads its identity)
    // first, and a stop signal meanwhile ends the agent.
    let mut stop = Box::pin(workbus_process::shutdown_signal());
    tokio::select! {
        prepared = registration::prepare(&mut config) => {
            prepared.map_err(|e| e.to_string())?;
        }
        _ = &mut stop => return Ok(()),
    }
    let agent = runtime::start(config, sim, store).map_err(|e| e.to_string())?;
    stop.await;
    eprintln!("workbus-chaos-node agent: shutting down");
    agent.shutdown().await;
    Ok(())
}

/// The simulated cluster's snapshot file in the agent's data dir (as `workbus-agent`
/// names it; the chaos checker reads it).
const SIM_SNAPSHOT: &str = workbus_tests::chaos::SIM_SNAPSHOT;

/// `workbus-broker --listen ADDR`, plaintext or (with a certificate directory and a
/// source id) mutual TLS with the fleet ACL.
async fn broker(listen: SocketAddr, secure: Option<(PathBuf, String)>) -> Result<(), String> {
    let started = match secure {
        None => Broker::new(BrokerConfig::with_listen(listen)).start().await,
        Some((dir, source_id)) => {
            let tls = TlsConfig::mutual(
                dir.join(certs::SERVER_CERT),
                dir.join(certs::SERVER_KEY),
                dir.join(certs::CA_BUNDLE),
            );
            let acl = FleetAcl::for_source(&source_id).map_err(|e| e.to_string())?;
            Broker::new(BrokerConfig::with_tls(listen, tls))
                .with_authorizer(acl)
                .start()
                .await
        }
    };
    let handle = started.map_err(|e| e.to_string())?;
    eprintln!(
        "workbus-chaos-node broker: listening on {}",
        handle.local_addr()
    );
    workbus_process::shutdown_signal().await;
    eprintln!("workbus-chaos-node broker: shutting down");
    handle.shutdown().await;
    Ok(())
}
