//! `workbus-bench`: the benchmark harness of issue 5 (the scenarios are in the
//! `workbus_bench` library). Starts a broker (embedded or Mosquitto), a hub and N
//! simulated agents (real MQTT connections, many per process), runs one scenario, prints
//! progress and a table, and writes a JSON report.
//!
//! ```text
//! workbus-bench fanout --agents 10000 --json fanout.json [--broker embedded|mosquitto] [--tls]
//! workbus-bench rollout-fanout --agents 10000 --json rollout-fanout.json
//! workbus-bench rollout-progressive --agents 10000 --json rollout-progressive.json
//! workbus-bench placement-relabel --agents 10000 --json placement-relabel.json
//! workbus-bench footprint --agents 2000 --json footprint.json
//! workbus-bench kube-agent --json kube-agent.json
//! workbus-bench broker --agents 1000 --json broker.json
//! workbus-bench reconnect-storm --agents 10000 --json storm.json
//! workbus-bench throughput --agents 1000 --json throughput.json
//! workbus-bench join-storm --agents 5000 --json join-storm.json
//! workbus-bench kill-unknown --agents 200 --keep-alive 5 --json kill-unknown.json
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use workbus_bench::audit_log::AuditLog;
use workbus_bench::broker_cmp::{self, BrokerComparison};
use workbus_bench::fanout::Fanout;
use workbus_bench::footprint::Footprint;
use workbus_bench::join_storm::JoinStorm;
use workbus_bench::kill_unknown::KillUnknown;
use workbus_bench::kube_agent::KubeAgent;
use workbus_bench::placement_relabel::PlacementRelabel;
use workbus_bench::reconnect::ReconnectStorm;
use workbus_bench::rollout_fanout::RolloutFanout;
use workbus_bench::rollout_progressive::RolloutProgressive;
use workbus_bench::throughput::Throughput;
use workbus_bench::worker::{self, WorkerArgs};
use workbus_bench::{BenchError, BrokerKind, Ctx, Scenario, run_and_report};

#[derive(Parser)]
#[command(name = "workbus-bench", about = "workbus benchmark harness (issue 5)")]
struct Cli {
    #[command(subcommand)]
    scenario: Command,
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
    /// Run the hub on PostgreSQL: an admin URL (`postgres://postgres@127.0.0.1:5432/postgres`);
    /// each run gets a fresh database there. Default: SQLite in a temporary directory.
    /// Used by fanout and throughput.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

impl Common {
    /// Runs `scenario` with these options, prints and writes its report.
    async fn run(&self, scenario: &impl Scenario) -> Result<(), BenchError> {
        let ctx = Ctx {
            agents: self.agents,
            broker: self.broker,
            timeout: Duration::from_secs(self.timeout),
            store: self.store.clone(),
        };
        run_and_report(scenario, &ctx, &self.json).await.map(drop)
    }
}

#[derive(Subcommand)]
enum Command {
    /// One update to every agent's work; time until all applied statuses are back.
    Fanout {
        #[command(flatten)]
        common: Common,
        /// Also run it with mutual TLS, the fleet ACL and signed spec events (embedded
        /// broker), side by side with plaintext.
        #[arg(long)]
        tls: bool,
    },
    /// One ManifestWorkReplicaSet (rollout All) over a Placement of every agent, then one
    /// update of it; time until all applied statuses are back (issue 14).
    RolloutFanout {
        #[command(flatten)]
        common: Common,
    },
    /// One ManifestWorkReplicaSet (rollout ProgressivePerGroup) over a Placement of every
    /// agent in 10 decision groups; the controller's overhead between a group's success
    /// and the next group's first work (issue 14).
    RolloutProgressive {
        #[command(flatten)]
        common: Common,
    },
    /// N clusters (no agents) and --placements Placements; hub CPU of the placement
    /// re-evaluation after one cluster's label change (issue 14).
    PlacementRelabel {
        #[command(flatten)]
        common: Common,
        /// Placements to keep evaluated.
        #[arg(long, default_value_t = 100)]
        placements: usize,
        /// Label changes to measure.
        #[arg(long, default_value_t = 20)]
        changes: usize,
    },
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
    /// The agent on the Kubernetes target against the API test server: binary size, RSS
    /// idle and with 100 works, time to apply a 100-manifest work, CPU of a 1,000-work
    /// drift reconcile.
    KubeAgent {
        #[command(flatten)]
        common: Common,
        /// The release agent binary (default: target/release/workbus-agent).
        #[arg(long)]
        agent_bin: Option<PathBuf>,
    },
    /// N agents join at once with an auto-accept bootstrap token; time until all are
    /// Available, per-cluster p50/p99, hub RSS per registered idle cluster.
    JoinStorm(Common),
    /// Joined agents vanish (kill -9 of their process; a silent link); time until the
    /// hub says Unknown, against 1.5 × keep-alive and OCM's ~4m42s.
    KillUnknown {
        #[command(flatten)]
        common: Common,
        /// The agents' MQTT keep-alive in seconds (at least 5).
        #[arg(long, default_value_t = 5)]
        keep_alive: u64,
    },
    /// The audit log at scale (issue 15): fill a store with --records records over
    /// --agents clusters, then a cluster + time-range query, a replay, and `verify`.
    AuditLog {
        #[command(flatten)]
        common: Common,
        /// Records to fill.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
    },
    /// Internal: the embedded broker in a child process (for the `broker` scenario).
    #[command(hide = true)]
    EmbeddedBroker,
    /// Internal: a child process running agents.
    #[command(hide = true)]
    AgentsWorker(WorkerArgs),
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

async fn run(command: Command) -> Result<(), BenchError> {
    match command {
        Command::AgentsWorker(args) => worker::run(args).await,
        Command::EmbeddedBroker => broker_cmp::serve_embedded().await,
        Command::AuditLog { common, records } => common.run(&AuditLog { records }).await,
        Command::Fanout { common, tls } => common.run(&Fanout { tls }).await,
        Command::RolloutFanout { common } => common.run(&RolloutFanout).await,
        Command::RolloutProgressive { common } => common.run(&RolloutProgressive).await,
        Command::PlacementRelabel {
            common,
            placements,
            changes,
        } => {
            common
                .run(&PlacementRelabel {
                    placements,
                    changes,
                })
                .await
        }
        Command::Throughput {
            common,
            step_secs,
            rates,
        } => {
            let step = Duration::from_secs(step_secs);
            common.run(&Throughput { step, rates }).await
        }
        Command::ReconnectStorm { common, max_works } => {
            common.run(&ReconnectStorm { max_works }).await
        }
        Command::Broker { common, rounds } => common.run(&BrokerComparison { rounds }).await,
        Command::Footprint { common, agent_bin } => common.run(&Footprint { agent_bin }).await,
        Command::KubeAgent { common, agent_bin } => common.run(&KubeAgent { agent_bin }).await,
        Command::JoinStorm(common) => common.run(&JoinStorm).await,
        Command::KillUnknown { common, keep_alive } => {
            let keep_alive = Duration::from_secs(keep_alive);
            common.run(&KillUnknown { keep_alive }).await
        }
    }
}
