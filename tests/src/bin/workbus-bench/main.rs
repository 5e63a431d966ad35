//! `workbus-bench`: the benchmark harness of issue 5. Starts a broker (embedded or
//! Mosquitto), a hub and N simulated agents (real MQTT connections, many per process),
//! runs one scenario, prints progress and a table, and writes a JSON report.
//!
//! ```text
//! workbus-bench fanout --agents 10000 --json fanout.json [--broker embedded|mosquitto]
//! workbus-bench footprint --agents 2000 --json footprint.json
//! workbus-bench broker --agents 1000 --json broker.json
//! workbus-bench reconnect-storm --agents 10000 --json storm.json
//! workbus-bench throughput --agents 1000 --json throughput.json
//! ```

mod broker_cmp;
mod common;
mod fanout;
mod fleet;
mod footprint;
mod reconnect;
mod throughput;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::common::BenchError;
use crate::fleet::BrokerKind;

#[derive(Parser)]
#[command(name = "workbus-bench", about = "workbus benchmark harness (issue 5)")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

/// Options every scenario takes.
#[derive(clap::Args, Clone)]
struct Common {
    /// Number of simulated agents (clusters).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Where to write the JSON report.
    #[arg(long)]
    json: PathBuf,
    /// Broker to run through.
    #[arg(long, value_enum, default_value = "embedded")]
    broker: BrokerKind,
    /// Upper bound of every wait, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(Subcommand)]
enum Scenario {
    /// One update to every agent's work; time until all applied statuses are back.
    Fanout(Common),
    /// Sustained REST updates; round trips per second with p99 under 1 s.
    Throughput {
        #[command(flatten)]
        common: Common,
        /// Seconds per rate step.
        #[arg(long, default_value_t = 3)]
        step_secs: u64,
        /// Offered rates (updates/s) to try, in order; stops after the first whose p99
        /// exceeds 1 s.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "500,1000,2000,4000,8000,12000"
        )]
        rates: Vec<u64>,
    },
    /// All agents lose their connection at once (cut at the embedded broker, the hub stays
    /// connected); time until the fleet has resynced, cost per unchanged agent, with the
    /// digest extension and with the upstream per-work form.
    ReconnectStorm {
        #[command(flatten)]
        common: Common,
        /// Most works per agent (agent i gets 1 + i % max).
        #[arg(long, default_value_t = 10)]
        max_works: usize,
    },
    /// The same QoS 1 fan-out/fan-in workload through the embedded broker and Mosquitto.
    Broker {
        #[command(flatten)]
        common: Common,
        /// Messages per subscriber.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// Agent binary size and RSS; hub RSS per idle connected cluster.
    Footprint {
        #[command(flatten)]
        common: Common,
        /// The release agent binary (default: target/release/workbus-agent).
        #[arg(long)]
        agent_bin: Option<PathBuf>,
    },
    /// Internal: the embedded broker in a child process (for the `broker` scenario).
    #[command(hide = true)]
    EmbeddedBroker,
    /// Internal: a child process running agents.
    #[command(hide = true)]
    AgentsWorker {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        source: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        first: usize,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        no_digest: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("workbus-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.scenario)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workbus-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(scenario: Scenario) -> Result<(), BenchError> {
    common::raise_nofile();
    let (name, common, result) = match scenario {
        Scenario::AgentsWorker {
            host,
            port,
            source,
            prefix,
            first,
            count,
            no_digest,
        } => return worker::run(&host, port, &source, &prefix, first, count, no_digest).await,
        Scenario::EmbeddedBroker => return broker_cmp::serve_embedded().await,
        Scenario::Fanout(c) => (
            "fanout",
            c.clone(),
            fanout::run(c.broker, c.agents, Duration::from_secs(c.timeout)).await,
        ),
        Scenario::Throughput {
            common: c,
            step_secs,
            rates,
        } => (
            "throughput",
            c.clone(),
            throughput::run(
                c.broker,
                c.agents,
                Duration::from_secs(c.timeout),
                Duration::from_secs(step_secs),
                &rates,
            )
            .await,
        ),
        Scenario::ReconnectStorm {
            common: c,
            max_works,
        } => (
            "reconnect-storm",
            c.clone(),
            reconnect::run(
                c.broker,
                c.agents,
                max_works,
                Duration::from_secs(c.timeout),
            )
            .await,
        ),
        Scenario::Broker { common: c, rounds } => (
            "broker",
            c.clone(),
            broker_cmp::run(c.agents, rounds, Duration::from_secs(c.timeout)).await,
        ),
        Scenario::Footprint {
            common: c,
            agent_bin,
        } => (
            "footprint",
            c.clone(),
            footprint::run(c.agents, agent_bin, Duration::from_secs(c.timeout)).await,
        ),
    };
    let (params, figures, targets, notes) = result?;
    common::print_table(name, &figures, &targets);
    common::write_report(&common.json, name, params, figures, targets, notes)?;
    println!("report written to {}", common.json.display());
    Ok(())
}
