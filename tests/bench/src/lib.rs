//! # workbus-bench: the benchmark harness
//!
//! Each scenario starts what it measures — a broker (embedded in this process, or a
//! private Mosquitto), a hub in this process (SQLite) and N simulated agents with real
//! MQTT connections in `agents-worker` child processes ([`worker`]) — runs, and returns
//! a [`Report`]: parameters, figures, targets met or missed, notes. The binary prints the
//! report as a table and writes it as JSON (`--json`). `BENCHMARKS.md` has the commands
//! and the measured figures.
//!
//! A scenario is a [`Scenario`]: a name and `run(&Ctx) -> Result<Report, BenchError>`.
//! [`Ctx`] holds the options every scenario takes (agents, broker, timeout); a scenario's
//! own options are its fields. Scenarios: [`fanout::Fanout`], [`throughput::Throughput`],
//! [`reconnect::ReconnectStorm`], [`broker_cmp::BrokerComparison`],
//! [`footprint::Footprint`], [`kube_agent::KubeAgent`], [`join_storm::JoinStorm`],
//! [`kill_unknown::KillUnknown`], [`rollout_fanout::RolloutFanout`],
//! [`rollout_progressive::RolloutProgressive`], [`placement_relabel::PlacementRelabel`].

pub mod audit_log;
pub mod broker_cmp;
pub mod child;
pub mod fanout;
pub mod fleet;
pub mod footprint;
pub mod join_fleet;
pub mod join_storm;
pub mod kill_unknown;
pub mod kube_agent;
pub mod measure;
pub mod placement_relabel;
pub mod reconnect;
pub mod report;
pub mod rollout_fanout;
pub mod rollout_progressive;
pub mod throughput;
pub mod worker;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

pub use fleet::BrokerKind;
pub use report::{Report, Target};

/// Why a scenario could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An I/O operation failed (files, child processes).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A part of the system under test failed to start or answer.
    #[error("{0}")]
    Setup(String),
    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl BenchError {
    /// An [`BenchError::Io`] for `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}

/// The options every scenario takes (`--agents`, `--broker`, `--timeout`, `--store`).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Number of simulated agents (clusters).
    pub agents: usize,
    /// The broker to run through (scenarios that compare or need one kind say so).
    pub broker: BrokerKind,
    /// Upper bound of every wait.
    pub timeout: Duration,
    /// `--store`: a PostgreSQL admin URL; the hub then runs on a fresh database on that
    /// server (dropped after the run) instead of SQLite. Used by `fanout` and
    /// `throughput`.
    pub store: Option<String>,
}

/// One benchmark scenario.
pub trait Scenario {
    /// Its name: the subcommand, and `scenario` in the report.
    fn name(&self) -> &'static str;

    /// Runs it once with `ctx` and reports what it measured.
    fn run(&self, ctx: &Ctx) -> impl Future<Output = Result<Report, BenchError>>;
}

/// Runs `scenario`, prints its report as a table and writes it as JSON to `json`.
pub async fn run_and_report(
    scenario: &impl Scenario,
    ctx: &Ctx,
    json: &Path,
) -> Result<Report, BenchError> {
    measure::raise_nofile();
    let report = scenario.run(ctx).await?;
    debug_assert_eq!(report.scenario, scenario.name());
    println!("{}", report.table());
    report.write_json(json)?;
    println!("report written to {}", json.display());
    Ok(report)
}
