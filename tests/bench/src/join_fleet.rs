//! A fleet that joins (issue 13): the hub with its embedded broker secured as `serve`
//! runs it (`workbus_tests::join_hub::JoinHub`, in this process), an auto-accept
//! bootstrap token, and agents in `agents-worker` child processes that join with it
//! (their own key, CSR, certificate, then mutual TLS and lease renewals). A
//! [`ClusterTracker`] records when each cluster first meets a condition (Available,
//! Unknown), from the hub's cluster notifications and, since those may lag behind a
//! storm, a periodic read of the store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use workbus_hub::HubHandle;
use workbus_schemas::registration::ManagedCluster;
use workbus_schemas::registration::names::condition;
use workbus_tests::join_hub::JoinHub;

use crate::BenchError;
use crate::fleet::{PER_WORKER, Worker, cluster_index, fleet_stats, run_id};
use crate::measure::Progress;
use crate::worker::{WorkerArgs, WorkerSecurity};

/// How often the tracker reads every cluster from the store besides the notifications.
const STORE_SCAN: Duration = Duration::from_secs(1);

/// The hub that agents join, and its bootstrap token.
pub struct JoinFleet {
    /// Hub, embedded broker, CA.
    pub hub: JoinHub,
    /// Cluster name prefix of this run.
    pub prefix: String,
    /// The hub's source id.
    pub source: String,
    /// The auto-accept bootstrap token.
    pub token: String,
    /// Agent worker processes.
    pub workers: Vec<Worker>,
}

impl JoinFleet {
    /// Starts the hub and its broker and makes the token; no agents yet.
    pub async fn start() -> Result<JoinFleet, BenchError> {
        let id = run_id();
        let source = format!("join-{id}");
        let hub = JoinHub::embedded(&source, None).await;
        let token = hub.bootstrap_token(true).await;
        Ok(JoinFleet {
            hub,
            prefix: format!("j{id}"),
            source,
            token,
            workers: Vec::new(),
        })
    }

    /// Starts agents `range` (cluster `<prefix>-<i>`), reaching the broker at
    /// `broker` (the broker itself, or a proxy in front of it), in as many worker
    /// processes as they need; they join at once.
    pub fn spawn_agents(
        &mut self,
        range: std::ops::Range<usize>,
        broker: SocketAddr,
        keep_alive_secs: Option<u64>,
    ) -> Result<Vec<usize>, BenchError> {
        let mut spawned = Vec::new();
        let mut first = range.start;
        while first < range.end {
            let count = PER_WORKER.min(range.end - first);
            self.workers.push(Worker::spawn(&WorkerArgs {
                host: broker.ip().to_string(),
                port: broker.port(),
                source: self.source.clone(),
                prefix: self.prefix.clone(),
                first,
                count,
                no_digest: false,
                security: WorkerSecurity {
                    join_token: Some(self.token.clone()),
                    ca_file: Some(self.hub.pki.ca_bundle()),
                    identity_root: Some(self.hub.dir.path().join("agents")),
                    keep_alive_secs,
                    ..WorkerSecurity::default()
                },
            })?);
            spawned.push(self.workers.len() - 1);
            first += count;
        }
        Ok(spawned)
    }

    /// The hub.
    pub fn handle(&self) -> &HubHandle {
        &self.hub.hub
    }

    /// Stops agents, hub and broker.
    pub async fn stop(self) {
        for w in self.workers {
            w.stop().await;
        }
        self.hub.stop().await;
    }

    /// Sums the workers' counters (see [`fleet_stats`]).
    pub async fn agent_stats(&mut self) -> Result<BTreeMap<String, u64>, BenchError> {
        fleet_stats(&mut self.workers).await
    }
}

/// `Available` of a cluster is `status`.
pub fn available_is(c: &ManagedCluster, status: &str) -> bool {
    c.condition_status(condition::AVAILABLE) == Some(status)
}

/// When each cluster `<prefix>-<i>` of `range` first met a condition, since the
/// tracker's start.
pub struct ClusterTracker {
    t0: Instant,
    first: usize,
    /// ns since `t0`; 0 = not yet.
    at: Vec<AtomicU64>,
    done: AtomicUsize,
    /// Notifications missed (caught up by the store scan).
    lagged: AtomicU64,
}

impl ClusterTracker {
    /// Starts tracking `range` on `hub` until `check` holds for each; runs until the
    /// hub stops or every cluster met it.
    pub fn start(
        hub: &HubHandle,
        prefix: &str,
        range: std::ops::Range<usize>,
        check: fn(&ManagedCluster) -> bool,
    ) -> Arc<ClusterTracker> {
        let t = Arc::new(ClusterTracker {
            t0: Instant::now(),
            first: range.start,
            at: range.clone().map(|_| AtomicU64::new(0)).collect(),
            done: AtomicUsize::new(0),
            lagged: AtomicU64::new(0),
        });
        let mut rx = hub.registration().clusters.subscribe();
        let (tracker, prefix2) = (t.clone(), prefix.to_string());
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            while !tracker.complete() {
                match rx.recv().await {
                    Ok(change) => {
                        if check(&change.object) {
                            tracker.record(&prefix2, &change.object.metadata.name);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracker.lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        let (tracker, prefix, store) = (t.clone(), prefix.to_string(), hub.store().clone());
        tokio::spawn(async move {
            while !tracker.complete() {
                tokio::time::sleep(STORE_SCAN).await;
                let Ok(clusters) = store.run(|s| s.list_clusters()).await else {
                    break;
                };
                for c in clusters {
                    let mc = c.managed_cluster();
                    if check(&mc) {
                        tracker.record(&prefix, &mc.metadata.name);
                    }
                }
            }
        });
        t
    }

    fn record(&self, prefix: &str, name: &str) {
        let Some(slot) = cluster_index(prefix, name)
            .and_then(|i| i.checked_sub(self.first))
            .and_then(|i| self.at.get(i))
        else {
            return;
        };
        let now = (self.t0.elapsed().as_nanos() as u64).max(1);
        if slot
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn complete(&self) -> bool {
        self.done.load(Ordering::Relaxed) >= self.at.len()
    }

    /// Waits until every cluster met the condition or `limit` passed (progress lines
    /// under `label`); true when all did.
    pub async fn wait_all(&self, label: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut progress = Progress::new(label);
        let n = self.at.len();
        loop {
            let done = self.done.load(Ordering::Relaxed);
            progress.tick(|| format!("{done}/{n} clusters"), done >= n);
            if done >= n {
                return true;
            }
            if Instant::now() >= deadline {
                progress.tick(|| format!("gave up at {done}/{n}"), true);
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Each cluster's time (ms) from `since` (an instant after the tracker started) to
    /// meeting the condition, for those that did.
    pub fn times_ms(&self, since: Instant) -> Vec<f64> {
        let offset = since.saturating_duration_since(self.t0).as_nanos() as u64;
        self.at
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .filter(|&at| at > 0)
            .map(|at| at.saturating_sub(offset) as f64 / 1e6)
            .collect()
    }

    /// How many clusters met the condition.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Notifications missed (the store scan caught up with them, at its resolution).
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }
}

/// How many clusters of each Available status the hub has, for reports.
pub async fn available_counts(hub: &HubHandle) -> BTreeMap<String, usize> {
    let clusters = hub
        .store()
        .run(|s| s.list_clusters())
        .await
        .unwrap_or_default();
    let mut counts = BTreeMap::new();
    for c in clusters {
        let mc = c.managed_cluster();
        let status = mc
            .condition_status(condition::AVAILABLE)
            .unwrap_or("none")
            .to_string();
        *counts.entry(status).or_insert(0) += 1;
    }
    counts
}
