//! A fleet under test: a broker (embedded in this process, or Mosquitto), a hub in this
//! process with SQLite in a temporary directory (or a fresh PostgreSQL database,
//! [`Fleet::start_on`]), clusters registered in its store, and N
//! simulated agents running as tokio tasks in child processes (`agents-worker`), so the
//! hub/broker process and the agents each stay under the open-files hard limit.
//!
//! Status tracking uses the hub's own change notifications ([`HubHandle::watch`]): a
//! work is "back" when the hub has accepted a status with `Applied=True` for the awaited
//! generation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use workbus_hub::HubHandle;
use workbus_hub::store::writes::CreateCluster;
use workbus_hub::watch::ChangeKind;
use workbus_schemas::acl::Identity;
use workbus_testkit::MosquittoProcess;
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::configmap_work;

use crate::BenchError;
use crate::child::LineChild;
use crate::measure::Progress;
use crate::worker::{ResyncForm, WorkerArgs, WorkerSecurity};

/// Agents per worker process (each holds one socket per agent).
pub const PER_WORKER: usize = 8_000;

/// Which broker to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerKind {
    /// The embedded `workbus-broker`, started in this process on a free port.
    Embedded,
    /// A private Mosquitto (`workbus-testkit`).
    Mosquitto,
}

/// Plaintext, or secured as the product runs by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plaintext, no ACL, agents accept unsigned spec events.
    Plain,
    /// Mutual TLS with certificates from a hub CA, the fleet ACL, agents applying only
    /// signed spec events (`workbus_tests::secure`; embedded broker only).
    Tls,
}

impl Security {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::Tls => "tls",
        }
    }
}

impl BrokerKind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Embedded => "embedded",
            BrokerKind::Mosquitto => "mosquitto",
        }
    }

    /// Starts the broker: embedded in this process, or a private Mosquitto.
    pub async fn start(self) -> Result<TestBroker, BenchError> {
        match self {
            BrokerKind::Embedded => Ok(TestBroker::embedded().await),
            BrokerKind::Mosquitto => tokio::task::spawn_blocking(MosquittoProcess::launch)
                .await
                .map_err(|e| BenchError::Setup(format!("cannot start Mosquitto: {e}")))?
                .map(TestBroker::Mosquitto)
                .map_err(BenchError::Setup),
        }
    }
}

/// A unique run id usable as a topic segment.
pub fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), t)
}

/// One agents-worker child process.
pub struct Worker(LineChild);

impl Worker {
    /// Starts a worker process (this executable) running the agents of `args`.
    pub fn spawn(args: &WorkerArgs) -> Result<Worker, BenchError> {
        LineChild::spawn("agents worker", &args.command_line()).map(Worker)
    }

    /// Asks for the worker's aggregated counters (one JSON line).
    pub async fn stats(&mut self) -> Result<Value, BenchError> {
        self.0.stats(Duration::from_secs(10)).await
    }

    /// Kills the worker process (SIGKILL): its agents vanish without DISCONNECT.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Asks the worker to stop its agents and waits (bounded) for it to exit.
    pub async fn stop(self) {
        self.0.quit().await;
    }
}

/// Sums numeric fields of the workers' stats.
pub async fn fleet_stats(workers: &mut [Worker]) -> Result<BTreeMap<String, u64>, BenchError> {
    let mut total = BTreeMap::new();
    for w in workers.iter_mut() {
        if let Value::Object(m) = w.stats().await? {
            for (k, v) in m {
                *total.entry(k).or_insert(0) += v.as_u64().unwrap_or(0);
            }
        }
    }
    Ok(total)
}

/// Which cluster index a namespace `prefix-<i>` names.
pub fn cluster_index(prefix: &str, namespace: &str) -> Option<usize> {
    namespace
        .strip_prefix(prefix)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The cluster name of index `i`.
pub fn cluster_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// The name of work `j` of a cluster (`w`, `w1`, `w2`, ...).
pub fn work_name(j: usize) -> String {
    if j == 0 {
        "w".to_string()
    } else {
        format!("w{j}")
    }
}

/// The inverse of [`work_name`].
fn work_index(name: &str) -> Option<usize> {
    match name.strip_prefix('w')? {
        "" => Some(0),
        digits => digits.parse().ok(),
    }
}

/// Per-work "sent at" and "back at" times (ns since `t0`; 0 = not yet) for one round,
/// fed from the hub's change notifications. Works are numbered by slot: slot
/// `j * clusters + i` is work [`work_name`]`(j)` of cluster `i`, so consecutive slots
/// are on different clusters.
pub struct Tracker {
    /// Reference instant.
    pub t0: Instant,
    /// Number of clusters.
    pub clusters: usize,
    /// When each slot's change was sent.
    pub sent: Vec<AtomicU64>,
    /// When each slot's applied status was accepted.
    pub back: Vec<AtomicU64>,
    /// The generation each slot's status must reach (0 = not awaited this round).
    pub want: Vec<AtomicI64>,
    /// Each slot's generation at the hub so far (every PUT the bench makes changes the
    /// work, so it raises the generation by one; a create makes 1).
    pub generation: Vec<AtomicI64>,
    /// Slots back this round.
    pub done: AtomicUsize,
    /// Notifications this tracker missed (broadcast lag).
    pub lagged: AtomicU64,
}

impl Tracker {
    /// A tracker for `clusters` × `works` works following `hub`'s notifications.
    pub fn start(hub: &HubHandle, prefix: &str, clusters: usize, works: usize) -> Arc<Tracker> {
        let slots = clusters * works.max(1);
        let t = Arc::new(Tracker {
            t0: Instant::now(),
            clusters,
            sent: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            back: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            want: (0..slots).map(|_| AtomicI64::new(0)).collect(),
            generation: (0..slots).map(|_| AtomicI64::new(0)).collect(),
            done: AtomicUsize::new(0),
            lagged: AtomicU64::new(0),
        });
        let mut rx = hub.watch();
        let tracker = t.clone();
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(change) if change.kind == ChangeKind::Status => {
                        let Some(i) = cluster_index(&prefix, change.cluster()) else {
                            continue;
                        };
                        let Some(j) = work_index(&change.object.metadata.name) else {
                            continue;
                        };
                        let slot = j * tracker.clusters + i;
                        if i >= tracker.clusters || slot >= tracker.back.len() {
                            continue;
                        }
                        let want = tracker.want[slot].load(Ordering::Relaxed);
                        let applied = want > 0
                            && change.object.status.as_ref().is_some_and(|s| {
                                s.conditions.iter().any(|c| {
                                    c.type_ == "Applied"
                                        && c.status == "True"
                                        && c.observed_generation >= want
                                })
                            });
                        if applied {
                            let now = tracker.t0.elapsed().as_nanos() as u64;
                            if tracker.back[slot]
                                .compare_exchange(
                                    0,
                                    now.max(1),
                                    Ordering::Relaxed,
                                    Ordering::Relaxed,
                                )
                                .is_ok()
                            {
                                tracker.done.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracker.lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        t
    }

    /// Starts a new round: nothing awaited until [`Tracker::expect`].
    pub fn reset(&self) {
        for a in self.sent.iter().chain(self.back.iter()) {
            a.store(0, Ordering::Relaxed);
        }
        for w in &self.want {
            w.store(0, Ordering::Relaxed);
        }
        self.done.store(0, Ordering::Relaxed);
    }

    /// Records that a change of `slot` is sent now and awaits the generation it makes
    /// (call just before sending).
    pub fn expect(&self, slot: usize) {
        let generation = self.generation[slot].fetch_add(1, Ordering::Relaxed) + 1;
        self.want[slot].store(generation, Ordering::Relaxed);
        self.sent[slot].store(self.now().max(1), Ordering::Relaxed);
    }

    /// Now, in tracker ns.
    pub fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    /// Waits until `expected` slots are back or `limit` passes; prints progress. True
    /// when all are back.
    pub async fn wait_all(&self, label: &str, expected: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut progress = Progress::new(label);
        loop {
            let done = self.done.load(Ordering::Relaxed);
            progress.tick(
                || {
                    format!(
                        "{done}/{expected} applied statuses back (lagged notifications: {})",
                        self.lagged.load(Ordering::Relaxed)
                    )
                },
                done >= expected,
            );
            if done >= expected {
                return true;
            }
            if Instant::now() >= deadline {
                progress.tick(|| format!("gave up at {done}/{expected}"), true);
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Per-slot latencies (ms) of those back, and the time from the first send to
    /// the last status (ms).
    pub fn latencies(&self) -> (Vec<f64>, Option<f64>) {
        let mut out = Vec::new();
        let mut first_sent = u64::MAX;
        let mut last_back = 0;
        for (s, b) in self.sent.iter().zip(&self.back) {
            let (s, b) = (s.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
            if s > 0 {
                first_sent = first_sent.min(s);
            }
            if s > 0 && b > 0 {
                out.push(b.saturating_sub(s) as f64 / 1e6);
                last_back = last_back.max(b);
            }
        }
        let total = (first_sent != u64::MAX && last_back > 0)
            .then(|| last_back.saturating_sub(first_sent) as f64 / 1e6);
        (out, total)
    }
}

/// How [`put_works`] paces and tracks its requests.
pub struct PutPlan {
    /// Number of clusters (slot → cluster and work, see [`Tracker`]).
    pub clusters: usize,
    /// The slots to PUT, in this order.
    pub slots: std::ops::Range<usize>,
    /// The ConfigMap value written (must differ from the previous round's).
    pub value: String,
    /// Keep-alive connections (one blocking thread each).
    pub concurrency: usize,
    /// Offered rate in requests per second; `None` = as fast as the connections go.
    pub rate: Option<f64>,
}

/// PUTs one ConfigMap work per slot of `plan` through the REST API, paced at
/// `plan.rate`, recording each send in `tracker`. Returns the number of failed requests.
pub async fn put_works(
    hub: &HubHandle,
    prefix: &str,
    plan: PutPlan,
    tracker: Arc<Tracker>,
) -> usize {
    let api = hub.client();
    let next = Arc::new(AtomicUsize::new(plan.slots.start));
    let started = Instant::now();
    let plan = Arc::new(plan);
    let mut joins = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (client, prefix, next, tracker, plan) = (
            api.clone(),
            prefix.to_string(),
            next.clone(),
            tracker.clone(),
            plan.clone(),
        );
        joins.push(tokio::task::spawn_blocking(move || {
            let mut failed = 0;
            loop {
                let slot = next.fetch_add(1, Ordering::Relaxed);
                if slot >= plan.slots.end {
                    break;
                }
                if let Some(rate) = plan.rate {
                    let due =
                        started + Duration::from_secs_f64((slot - plan.slots.start) as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let cluster = cluster_name(&prefix, slot % plan.clusters);
                let name = work_name(slot / plan.clusters);
                let body = configmap_work(&cluster, &name, &name, &plan.value);
                tracker.expect(slot);
                let ok = client
                    .put(&format!("/api/v1/clusters/{cluster}/works/{name}"), &body)
                    .is_ok_and(|a| a.status < 300);
                if !ok {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for j in joins {
        failed += j.await.unwrap_or(0);
    }
    failed
}

/// Registers clusters `prefix-<range>` in the hub's store.
pub async fn create_clusters(
    hub: &HubHandle,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> Result<(), BenchError> {
    let prefix = prefix.to_string();
    hub.store()
        .run(move |s| {
            let labels = BTreeMap::new();
            for i in range {
                s.write(CreateCluster {
                    name: cluster_name(&prefix, i),
                    labels: labels.clone(),
                    now: chrono::Utc::now(),
                })?;
            }
            Ok(())
        })
        .await
        .map_err(|e| BenchError::Setup(format!("cannot create clusters: {e}")))
}

/// A running fleet.
pub struct Fleet {
    /// The broker.
    pub broker: TestBroker,
    /// The hub.
    pub hub: HubHandle,
    /// Agent worker processes.
    pub workers: Vec<Worker>,
    /// Cluster name prefix.
    pub prefix: String,
    /// Number of agents.
    pub n: usize,
    _dir: tempfile::TempDir,
    /// The hub's PostgreSQL database, dropped after the run.
    _database: Option<workbus_testkit::ThrowawayDatabase>,
}

impl Fleet {
    /// Starts broker, hub, registers `n` clusters and starts `n` agents.
    pub async fn start(kind: BrokerKind, n: usize) -> Result<Fleet, BenchError> {
        Fleet::start_with(kind, n, ResyncForm::Digest).await
    }

    /// [`Fleet::start`] with agents speaking resync `form`.
    pub async fn start_with(
        kind: BrokerKind,
        n: usize,
        form: ResyncForm,
    ) -> Result<Fleet, BenchError> {
        Fleet::start_secured(kind, n, form, Security::Plain).await
    }

    /// [`Fleet::start_with`], plaintext or secured; a secured fleet's agent
    /// certificates are issued before its agents start.
    pub async fn start_secured(
        kind: BrokerKind,
        n: usize,
        form: ResyncForm,
        security: Security,
    ) -> Result<Fleet, BenchError> {
        Fleet::start_on(kind, n, form, security, None).await
    }

    /// [`Fleet::start_secured`] with the hub's store on a fresh database of the
    /// PostgreSQL server at `store` (an admin URL), or SQLite when `None`.
    pub async fn start_on(
        kind: BrokerKind,
        n: usize,
        form: ResyncForm,
        security: Security,
        store: Option<&str>,
    ) -> Result<Fleet, BenchError> {
        let broker = match security {
            Security::Plain => kind.start().await?,
            Security::Tls if kind == BrokerKind::Embedded => TestBroker::embedded_secured().await,
            Security::Tls => {
                return Err(BenchError::Setup(
                    "the secured fleet runs on the embedded broker only".into(),
                ));
            }
        };
        let id = run_id();
        let source = match security {
            Security::Plain => format!("bench-{id}"),
            Security::Tls => broker.source_id(),
        };
        let prefix = format!("b{id}");
        let dir = tempfile::tempdir().map_err(BenchError::io("temp dir"))?;
        let database = match store {
            Some(url) => {
                let url = url.to_string();
                let db = tokio::task::spawn_blocking(move || {
                    workbus_testkit::ThrowawayDatabase::create_on(&url)
                })
                .await
                .map_err(|e| BenchError::Setup(format!("database task: {e}")))?
                .map_err(BenchError::Setup)?;
                Some(db)
            }
            None => None,
        };
        let hub = match &database {
            Some(db) => {
                let settings = workbus_hub::StoreSettings::postgres(db.url(), dir.path());
                broker.start_hub_on(settings, &source).await
            }
            None => broker.start_hub(dir.path(), &source).await,
        };
        if !hub.wait_subscribed(Duration::from_secs(10)).await {
            return Err(BenchError::Timeout("hub did not subscribe".into()));
        }
        let t = Instant::now();
        create_clusters(&hub, &prefix, 0..n).await?;
        eprintln!(
            "[setup] {n} clusters registered in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let worker_security = match broker.secure() {
            Some(secure) => {
                let t = Instant::now();
                for i in 0..n {
                    let cluster = cluster_name(&prefix, i);
                    secure.transport_tls(&Identity::Agent(cluster));
                }
                eprintln!(
                    "[setup] {n} agent certificates issued in {:.1}s",
                    t.elapsed().as_secs_f64()
                );
                WorkerSecurity {
                    tls_dir: Some(secure.pki_dir().to_path_buf()),
                    spec_signing_key: Some(dir.path().join(workbus_hub::signing::SIGNING_PUB_FILE)),
                    ..WorkerSecurity::default()
                }
            }
            None => WorkerSecurity::default(),
        };
        let mut workers = Vec::new();
        let mut first = 0;
        while first < n {
            let count = PER_WORKER.min(n - first);
            workers.push(Worker::spawn(&WorkerArgs {
                host: broker.host().to_string(),
                port: broker.port(),
                source: source.clone(),
                prefix: prefix.clone(),
                first,
                count,
                no_digest: form == ResyncForm::Upstream,
                security: worker_security.clone(),
            })?);
            first += count;
        }
        Ok(Fleet {
            broker,
            hub,
            workers,
            prefix,
            n,
            _dir: dir,
            _database: database,
        })
    }

    /// Waits until every agent has connected at least once.
    pub async fn wait_connected(&mut self, limit: Duration) -> Result<Duration, BenchError> {
        let t = Instant::now();
        let mut progress = Progress::new("connect");
        loop {
            let s = fleet_stats(&mut self.workers).await?;
            let c = s.get("connected").copied().unwrap_or(0) as usize;
            progress.tick(|| format!("{c}/{} agents connected", self.n), c >= self.n);
            if c >= self.n {
                return Ok(t.elapsed());
            }
            if t.elapsed() > limit {
                return Err(BenchError::Timeout(format!(
                    "only {c}/{} agents connected",
                    self.n
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops agents, hub and broker.
    pub async fn stop(self) {
        for w in self.workers {
            w.stop().await;
        }
        self.hub.shutdown().await;
        self.broker.stop().await;
    }
}
