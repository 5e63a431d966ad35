//! `agents-worker`: a child process running many simulated agents as tokio tasks. It
//! answers `stats` on stdin with one JSON line of summed counters and stops its agents
//! on `quit` or when stdin closes. `--no-digest` makes its agents speak only the upstream
//! resync protocol. [`WorkerArgs`] is both its command line and how the harness builds
//! it ([`WorkerArgs::command_line`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use workbus_agent::runtime::{self, AgentHandle};
use workbus_agent::store::MemoryStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_tests::agents::agent_config;

use crate::BenchError;
use crate::fleet::cluster_name;
use crate::measure::{raise_nofile, self_rss_kb};

/// Agents started per batch before yielding briefly (spreads the TCP accept load).
const BATCH: usize = 250;

/// The subcommand that runs a worker.
pub const SUBCOMMAND: &str = "agents-worker";

/// Which resync protocol a worker's agents speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncForm {
    /// Our resync digest extension (`workbus_schemas::resync_digest`), the default.
    Digest,
    /// Only the upstream per-work form, exactly as an OCM agent (`--no-digest`).
    Upstream,
}

impl ResyncForm {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ResyncForm::Digest => "digest",
            ResyncForm::Upstream => "upstream",
        }
    }
}

/// The worker's command line: agents `<prefix>-<first>` .. `<prefix>-<first+count-1>`
/// following `source` on the broker at `host:port`.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Broker host.
    #[arg(long)]
    pub host: String,
    /// Broker port.
    #[arg(long)]
    pub port: u16,
    /// The hub's source id.
    #[arg(long)]
    pub source: String,
    /// Cluster name prefix.
    #[arg(long)]
    pub prefix: String,
    /// Index of the first cluster.
    #[arg(long)]
    pub first: usize,
    /// Number of agents.
    #[arg(long)]
    pub count: usize,
    /// Speak only the upstream resync form (no digest extension).
    #[arg(long)]
    pub no_digest: bool,
}

impl WorkerArgs {
    /// The resync form its agents speak.
    pub fn form(&self) -> ResyncForm {
        if self.no_digest {
            ResyncForm::Upstream
        } else {
            ResyncForm::Digest
        }
    }

    /// The arguments of `workbus-bench` that run this worker (subcommand included).
    pub fn command_line(&self) -> Vec<String> {
        let mut args = vec![
            SUBCOMMAND.to_string(),
            "--host".into(),
            self.host.clone(),
            "--port".into(),
            self.port.to_string(),
            "--source".into(),
            self.source.clone(),
            "--prefix".into(),
            self.prefix.clone(),
            "--first".into(),
            self.first.to_string(),
            "--count".into(),
            self.count.to_string(),
        ];
        if self.no_digest {
            args.push("--no-digest".into());
        }
        args
    }
}

/// Runs the worker until told to quit.
pub async fn run(args: WorkerArgs) -> Result<(), BenchError> {
    raise_nofile();
    let form = args.form();
    let WorkerArgs {
        host,
        port,
        source,
        prefix,
        first,
        count,
        ..
    } = args;
    let mut agents: Vec<AgentHandle> = Vec::with_capacity(count);
    for i in first..first + count {
        let cluster = cluster_name(&prefix, i);
        let mut config = agent_config(&host, port, &source, &cluster);
        // Benchmarks measure event-driven traffic, not periodic refreshes.
        config.status_sync_interval = Duration::from_secs(3600);
        config.transport.reconnect.min_delay = Duration::from_millis(200);
        config.transport.reconnect.max_delay = Duration::from_secs(3);
        // With the digest extension, or upstream resync only as an OCM agent
        // (reconnect-storm compares the two).
        config.resync_digest = form == ResyncForm::Digest;
        let sim = Arc::new(SimulatedCluster::new(SimConfig {
            ready_after: Duration::ZERO,
            snapshot: None,
        }));
        let handle = runtime::start(config, sim, Arc::new(MemoryStore::default()))
            .map_err(|e| BenchError::Setup(format!("agent {cluster}: {e}")))?;
        agents.push(handle);
        if agents.len().is_multiple_of(BATCH) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    crate::child::serve_stats(|| {
        let mut t: BTreeMap<&str, u64> = BTreeMap::new();
        let mut add = |k: &'static str, v: u64| *t.entry(k).or_insert(0) += v;
        for a in &agents {
            let ts = a.transport_stats();
            let g = a.stats();
            let c = ts.connects.load(Ordering::Relaxed);
            add("connected", u64::from(c > 0));
            add("connects", c);
            add("reconnects", ts.reconnects.load(Ordering::Relaxed));
            add("received", ts.received.load(Ordering::Relaxed));
            add("published", ts.published.load(Ordering::Relaxed));
            add("bytes_received", ts.bytes_received.load(Ordering::Relaxed));
            add(
                "bytes_published",
                ts.bytes_published.load(Ordering::Relaxed),
            );
            add(
                "message_bytes_received",
                ts.message_bytes_received.load(Ordering::Relaxed),
            );
            add(
                "message_bytes_published",
                ts.message_bytes_published.load(Ordering::Relaxed),
            );
            add("applied", g.applied.load(Ordering::Relaxed));
            add("duplicates", g.duplicates.load(Ordering::Relaxed));
            add("stale", g.stale.load(Ordering::Relaxed));
            add("status_sent", g.status_sent.load(Ordering::Relaxed));
            add("resync_requests", g.resync_requests.load(Ordering::Relaxed));
            add("digest_requests", g.digest_requests.load(Ordering::Relaxed));
            add(
                "resyncs_in_sync",
                g.spec_resyncs_in_sync.load(Ordering::Relaxed),
            );
            add("resyncs_done", g.spec_resyncs_done.load(Ordering::Relaxed));
            add(
                "resync_fallbacks",
                g.spec_resync_fallbacks.load(Ordering::Relaxed),
            );
            add("status_resyncs", g.status_resyncs.load(Ordering::Relaxed));
            add("finished", u64::from(a.is_finished()));
        }
        let mut v = json!(t);
        v["agents"] = json!(agents.len());
        v["rss_kb"] = json!(self_rss_kb());
        v
    })
    .await;
    let stops = agents.into_iter().map(|a| a.shutdown());
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(stops),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        AgentsWorker(WorkerArgs),
    }

    #[test]
    fn command_line_parses_back() {
        for no_digest in [false, true] {
            let args = WorkerArgs {
                host: "127.0.0.1".into(),
                port: 1883,
                source: "bench-1".into(),
                prefix: "b1".into(),
                first: 8000,
                count: 2000,
                no_digest,
            };
            let line = args.command_line();
            let Command::AgentsWorker(back) =
                Cli::try_parse_from(std::iter::once("workbus-bench".to_string()).chain(line))
                    .expect("parses")
                    .command;
            assert_eq!(format!("{back:?}"), format!("{args:?}"));
            assert_eq!(back.form() == ResyncForm::Upstream, no_digest);
        }
    }
}
