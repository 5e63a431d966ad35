//! `agents-worker`: a child process running many simulated agents as tokio tasks. It
//! answers `stats` on stdin with one JSON line of summed counters and stops its agents
//! on `quit` or when stdin closes. `--no-digest` makes its agents speak only the upstream
//! resync protocol.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use workbus_agent::runtime::{self, AgentHandle};
use workbus_agent::store::MemoryStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_tests::agents::agent_config;

use crate::common::{BenchError, raise_nofile};
use crate::fleet::cluster_name;

/// Agents started per batch before yielding briefly (spreads the TCP accept load).
const BATCH: usize = 250;

/// Runs the worker until told to quit.
pub async fn run(
    host: &str,
    port: u16,
    source: &str,
    prefix: &str,
    first: usize,
    count: usize,
    no_digest: bool,
) -> Result<(), BenchError> {
    raise_nofile();
    let mut agents: Vec<AgentHandle> = Vec::with_capacity(count);
    for i in first..first + count {
        let cluster = cluster_name(prefix, i);
        let mut config = agent_config(host, port, source, &cluster);
        // Benchmarks measure event-driven traffic, not periodic refreshes.
        config.status_sync_interval = Duration::from_secs(3600);
        config.transport.reconnect.min_delay = Duration::from_millis(200);
        config.transport.reconnect.max_delay = Duration::from_secs(3);
        // Upstream resync only, as an OCM agent (reconnect-storm compares the two).
        config.resync_digest = !no_digest;
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
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "stats" => {
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
                v["rss_kb"] = json!(crate::common::self_rss_kb());
                let line = format!("{v}\n");
                if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                    break;
                }
            }
            "quit" => break,
            _ => {}
        }
    }
    let stops = agents.into_iter().map(|a| a.shutdown());
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(stops),
    )
    .await;
    Ok(())
}
