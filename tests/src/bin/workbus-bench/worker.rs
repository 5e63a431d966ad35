//! `agents-worker`: a child process running many simulated agents as tokio tasks. It
//! answers `stats` on stdin with one JSON line of summed counters and stops its agents
//! on `quit` or when stdin closes.

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
                let mut s = [0u64; 12];
                for a in &agents {
                    let t = a.transport_stats();
                    let g = a.stats();
                    let c = t.connects.load(Ordering::Relaxed);
                    s[0] += u64::from(c > 0);
                    s[1] += c;
                    s[2] += t.reconnects.load(Ordering::Relaxed);
                    s[3] += t.received.load(Ordering::Relaxed);
                    s[4] += t.published.load(Ordering::Relaxed);
                    s[5] += t.bytes_received.load(Ordering::Relaxed);
                    s[6] += t.bytes_published.load(Ordering::Relaxed);
                    s[7] += g.applied.load(Ordering::Relaxed);
                    s[8] += g.status_sent.load(Ordering::Relaxed);
                    s[9] += g.resync_requests.load(Ordering::Relaxed);
                    s[10] += g.status_resyncs.load(Ordering::Relaxed);
                    s[11] += u64::from(a.is_finished());
                }
                let v = json!({
                    "agents": agents.len(), "connected": s[0], "connects": s[1],
                    "reconnects": s[2], "received": s[3], "published": s[4],
                    "bytes_received": s[5], "bytes_published": s[6], "applied": s[7],
                    "status_sent": s[8], "resync_requests": s[9], "status_resyncs": s[10],
                    "finished": s[11],
                    "rss_kb": crate::common::self_rss_kb(),
                });
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
