//! Several active hubs on one PostgreSQL (issue 16, ARCHITECTURE.md "Several hubs"):
//! two and three `workbus-hub serve` processes (the chaos node's `hub`, the product's
//! own entry point) share a throwaway database and a private Mosquitto (MQTT 5, shared
//! subscriptions); real agents on simulated clusters. Works are written through every
//! replica's REST API; one replica is killed with SIGKILL in the middle of a fanout.
//! Checked: the survivors hold every partition, balanced, within 10 s of the kill
//! (measured on the lease rows) and the dead replica's clusters are served again
//! within 10 s; every work converges to a value at least as new as its last
//! acknowledged write (nothing acknowledged lost, whichever replica acknowledged it);
//! no agent ever applies an older write after a newer one (sampled applied history);
//! the hub's statuses catch up (a survivor asks for a status resync once it took over
//! a dead replica's leases). Also: watches across replicas, and a database outage under
//! two replicas. Without PostgreSQL or Mosquitto the tests print `SKIPPED` and pass
//! (`WORKBUS_REQUIRE_POSTGRES=1` / `WORKBUS_REQUIRE_MOSQUITTO=1` make them fail instead).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use workbus_agent::store::MemoryStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_hub::replicas::partition::{PARTITIONS, partition_of};
use workbus_testkit::{ThrowawayDatabase, free_port};
use workbus_tests::agents::start_agent;
use workbus_tests::brokers::TestBroker;
use workbus_tests::chaos::processes::Proc;
use workbus_tests::chaos::rest::{Reply, Rest};
use workbus_tests::hubs::{applied_at, configmap_work};
use workbus_tests::unique;

/// Clusters per replica (chosen so each replica publishes for this many).
const PER_REPLICA: usize = 4;
/// Writes per work; the kill comes in the middle.
const ROUNDS: u32 = 10;
/// The round during which replica B is killed.
const KILL_ROUND: u32 = 5;
/// The failover target.
const FAILOVER: Duration = Duration::from_secs(10);

/// One hub replica process.
struct Replica {
    id: String,
    proc: Proc,
    rest: Option<Rest>,
    base: String,
    data: PathBuf,
}

fn replica(
    node: &Path,
    id: &str,
    dir: &Path,
    db: &ThrowawayDatabase,
    broker: &TestBroker,
    source: &str,
) -> Replica {
    let port = free_port();
    let data = dir.join(id);
    let args = vec![
        "hub".to_string(),
        format!("--listen=127.0.0.1:{port}"),
        format!("--data-dir={}", data.display()),
        format!("--source-id={source}"),
        format!("--broker={}:{}", broker.host(), broker.port()),
        "--allow-plaintext".into(),
        format!("--store={}", db.url()),
        format!("--store-key-file={}", dir.join("store.key").display()),
        format!("--replica-id={id}"),
    ];
    Replica {
        id: id.to_string(),
        proc: Proc::new(id, node, args, dir.join(format!("{id}.log")))
            .with_log("info,workbus_hub::replicas=debug"),
        rest: None,
        base: format!("http://127.0.0.1:{port}"),
        data,
    }
}

/// Starts `r` and waits until its REST API answers.
async fn start(r: &mut Replica, token: &str) {
    r.proc.start().unwrap();
    let rest = Rest::new(&r.base, token);
    rest.wait_healthy(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}; log: {}", log_tail(r.proc.log())));
    r.rest = Some(rest);
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `partition → owner` of the leases that have not expired.
async fn owners(db: &ThrowawayDatabase) -> HashMap<u32, String> {
    // The driver blocks on a runtime of its own: off the async worker.
    tokio::task::block_in_place(|| {
        let mut client = db.client().unwrap();
        client
            .query(
                "SELECT partition, owner FROM partition_leases \
                 WHERE owner IS NOT NULL AND expires_at > now()",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, String>(1)))
            .collect()
    })
}

/// Waits until `cond` holds over the lease owners; returns when it did.
async fn wait_owners(
    db: &ThrowawayDatabase,
    within: Duration,
    what: &str,
    cond: impl Fn(&HashMap<u32, String>) -> bool,
) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let now = owners(db).await;
        if cond(&now) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{what}: owners now {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(owners: &HashMap<u32, String>, id: &str) -> usize {
    owners.values().filter(|o| *o == id).count()
}

/// Waits until replica `rest`'s `GET /api/v1/replicas` lists exactly `live` (by id),
/// with every partition held among them and `self` = `me`, and its
/// `workbus_hub_partitions_owned` equals its own row's count. Returns the answer.
async fn wait_replicas_view(rest: &Rest, me: &str, live: &[String]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = match rest.call_async("GET", "/api/v1/replicas", None).await {
            Reply::Answer { code: 200, body } => body,
            other => panic!("GET /api/v1/replicas: {other:?}"),
        };
        let items = view["items"].as_array().cloned().unwrap_or_default();
        let ids: Vec<&str> = items
            .iter()
            .filter_map(|i| i["replicaId"].as_str())
            .collect();
        let held: u64 = items
            .iter()
            .filter_map(|i| i["partitionsOwned"].as_u64())
            .sum();
        if view["mode"] == "replicated"
            && view["self"] == me
            && ids == live.iter().map(String::as_str).collect::<Vec<_>>()
            && held == u64::from(PARTITIONS)
        {
            let mine = items
                .iter()
                .find(|i| i["self"] == true)
                .and_then(|i| i["partitionsOwned"].as_u64())
                .expect("its own row");
            let metrics = match rest.call_async("GET", "/metrics", None).await {
                Reply::Answer { code: 200, body } => body.as_str().unwrap_or("").to_string(),
                other => panic!("GET /metrics: {other:?}"),
            };
            let gauge =
                workbus_testkit::metrics_doc::sample(&metrics, "workbus_hub_partitions_owned");
            // Both are set at each renewal: equal once the assignment is stable.
            if gauge == Some(mine as f64) {
                return view;
            }
        }
        assert!(Instant::now() < deadline, "{me}'s replicas view: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two replicas of source `source` in this process on the database at `url` (sharing
/// a store key in `dir`), on `broker`: A first, then B.
async fn two_replicas(
    url: &str,
    broker: &TestBroker,
    source: &str,
    dir: &Path,
) -> (workbus_hub::HubHandle, workbus_hub::HubHandle) {
    use workbus_hub::{BrokerSettings, StoreSettings};
    let store = |name: &str| StoreSettings::Postgres {
        url: workbus_hub::config::DatabaseUrl(url.to_string()),
        data_dir: dir.join(name),
        key_file: Some(dir.join("store.key")),
    };
    let plain = BrokerSettings::Address {
        host: broker.host().to_string(),
        port: broker.port(),
    };
    let a = workbus_tests::hubs::start_hub_on(store("a"), source, plain.clone()).await;
    let b = workbus_tests::hubs::start_hub_on(store("b"), source, plain).await;
    (a, b)
}

/// The round a ConfigMap value `g<round>` stands for.
fn round_of(sim: &SimulatedCluster) -> Option<u32> {
    sim.object("", "v1", "configmaps", "default", "app-config")
        .and_then(|o| o["data"]["v"].as_str()?.strip_prefix('g')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hubs_share_a_fleet_and_a_killed_one_fails_over() {
    fault_one_of_during_a_fanout(2, Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hubs_share_a_fleet_and_a_killed_one_fails_over() {
    fault_one_of_during_a_fanout(3, Fault::Kill).await;
}

/// The fencing case: a replica paused (SIGSTOP) past its lease loses its partitions;
/// when it resumes it must not publish on the leases it lost (no agent may apply an
/// older write after a newer one), and it rejoins the balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_hub_is_fenced_and_rejoins() {
    fault_one_of_during_a_fanout(2, Fault::Pause).await;
}

/// What happens to the last replica mid-fanout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL.
    Kill,
    /// SIGSTOP until the survivors took its partitions over, then SIGCONT.
    Pause,
}

/// `n` replicas balance the partitions; works are written through all of them; the
/// last one is killed or paused in the middle of the fanout; the others take its
/// partitions over (and balance again) and every work converges, in order.
async fn fault_one_of_during_a_fanout(n: usize, fault: Fault) {
    let what = format!("{n} hubs on one PostgreSQL");
    let Some(db) = workbus_testkit::postgres_or_skip(&what) else {
        return;
    };
    let Some(broker) = TestBroker::mosquitto_unless_missing(&what).await else {
        return;
    };
    let node = Path::new(env!("CARGO_BIN_EXE_workbus-chaos-node"));
    let source = broker.source_id();
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Replica> = ["hub-a", "hub-b", "hub-c"][..n]
        .iter()
        .map(|id| replica(node, id, dir.path(), &db, &broker, &source))
        .collect();
    let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
    let partitions = PARTITIONS as usize;
    // Balanced among `live`: each holds ⌊P/n⌋ or ⌈P/n⌉, all P held, nobody else.
    let balanced = |o: &HashMap<u32, String>, live: &[String]| {
        let (lo, hi) = (partitions / live.len(), partitions.div_ceil(live.len()));
        o.len() == partitions
            && live.iter().all(|id| (lo..=hi).contains(&count(o, id)))
            && live.iter().map(|id| count(o, id)).sum::<usize>() == partitions
    };

    // Replica A first: it makes the shared store key and the first admin token; the
    // others get A's signing and audit keys (replicas share them, as they share
    // store.key).
    replicas[0].proc.start().unwrap();
    Rest::new(&replicas[0].base, "")
        .wait_healthy(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}; log: {}", log_tail(replicas[0].proc.log())));
    let token = std::fs::read_to_string(
        replicas[0]
            .data
            .join(workbus_hub::auth::tokens::ADMIN_TOKEN_FILE),
    )
    .unwrap()
    .trim()
    .to_string();
    replicas[0].rest = Some(Rest::new(&replicas[0].base, &token));
    wait_owners(
        &db,
        Duration::from_secs(10),
        "A alone holds everything",
        |o| count(o, "hub-a") == partitions,
    )
    .await;
    let a_data = replicas[0].data.clone();
    for r in &mut replicas[1..] {
        std::fs::create_dir_all(&r.data).unwrap();
        for file in [
            workbus_hub::signing::SIGNING_KEY_FILE,
            workbus_hub::signing::SIGNING_PUB_FILE,
            workbus_hub::audit::checkpoint::AUDIT_KEY_FILE,
        ] {
            std::fs::copy(a_data.join(file), r.data.join(file)).unwrap();
        }
        start(r, &token).await;
    }
    wait_owners(
        &db,
        Duration::from_secs(20),
        "the partitions balance",
        |o| balanced(o, &ids),
    )
    .await;
    // Every replica shows the same replicas, itself marked, in REST and its metric.
    for r in &replicas {
        wait_replicas_view(r.rest.as_ref().unwrap(), &r.id, &ids).await;
    }

    // Clusters: PER_REPLICA published by each replica.
    let owned = owners(&db).await;
    let prefix = unique("mh");
    let mut clusters: Vec<(String, String)> = Vec::new();
    for i in 0.. {
        let name = format!("{prefix}-{i}");
        let owner = owned[&partition_of(&name)].clone();
        if clusters.iter().filter(|(_, o)| *o == owner).count() < PER_REPLICA {
            clusters.push((name, owner));
        }
        if clusters.len() == n * PER_REPLICA {
            break;
        }
    }
    let rests: Vec<Rest> = replicas.iter().map(|r| r.rest.clone().unwrap()).collect();
    for (i, (cluster, _)) in clusters.iter().enumerate() {
        // Registered through any replica.
        let reply = rests[i % n]
            .call_async("POST", "/api/v1/clusters", Some(json!({"name": cluster})))
            .await;
        assert!(
            matches!(reply, Reply::Answer { code: 201, .. }),
            "register {cluster}: {reply:?}"
        );
    }
    let sims: Vec<Arc<SimulatedCluster>> = clusters
        .iter()
        .map(|_| {
            Arc::new(SimulatedCluster::new(SimConfig {
                ready_after: Duration::from_millis(50),
                snapshot: None,
            }))
        })
        .collect();
    let agents: Vec<_> = clusters
        .iter()
        .zip(&sims)
        .map(|((cluster, _), sim)| {
            start_agent(
                broker.agent_config(&source, cluster, &a_data),
                sim.clone(),
                Arc::new(MemoryStore::default()),
            )
        })
        .collect();

    // The agents' applied history, sampled: each change of each ConfigMap's round.
    let history: Arc<Mutex<Vec<Vec<u32>>>> = Arc::new(Mutex::new(vec![Vec::new(); sims.len()]));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (history, sampling, sims) = (history.clone(), sampling.clone(), sims.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(180);
            while sampling.load(Ordering::Relaxed) && Instant::now() < deadline {
                {
                    let mut h = history.lock().unwrap();
                    for (i, sim) in sims.iter().enumerate() {
                        if let Some(r) = round_of(sim)
                            && h[i].last() != Some(&r)
                        {
                            h[i].push(r);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // The fanout: every round writes every work, spread over the replicas; the last
    // replica is killed (SIGKILL) in the middle of round KILL_ROUND.
    let victim = n - 1;
    let survivors: Vec<String> = ids[..victim].to_vec();
    let mut acked = vec![0u32; clusters.len()];
    let mut attempted = vec![0u32; clusters.len()];
    let mut killed_at: Option<Instant> = None;
    for round in 1..=ROUNDS {
        for (i, (cluster, _)) in clusters.iter().enumerate() {
            if round == KILL_ROUND && i == clusters.len() / 2 {
                match fault {
                    Fault::Kill => replicas[victim].proc.kill9(),
                    Fault::Pause => replicas[victim].proc.pause(),
                }
                killed_at = Some(Instant::now());
            }
            let live = if killed_at.is_some() { victim } else { n };
            let rest = &rests[(round as usize + i) % live];
            let path = format!("/api/v1/clusters/{cluster}/works/app");
            let body = configmap_work(cluster, "app", "app-config", &format!("g{round}"));
            match rest.call_async("PUT", &path, Some(body)).await {
                Reply::Answer { code, .. } if code == 200 || code == 201 => {
                    acked[i] = round;
                    attempted[i] = round;
                }
                Reply::Unknown(_) => attempted[i] = round,
                other => panic!("PUT {path} round {round}: {other:?}"),
            }
        }
    }
    let killed_at = killed_at.expect("a replica was killed or paused");

    // Failover: the survivors hold every partition within 10 s of the kill, balanced.
    let took_over = wait_owners(
        &db,
        FAILOVER + Duration::from_secs(5),
        "the survivors take over",
        |o| balanced(o, &survivors),
    )
    .await;
    let takeover = took_over - killed_at;
    eprintln!(
        "multi-hub ({n}, {fault:?}): the survivors held every partition {takeover:?} after the fault"
    );
    assert!(takeover <= FAILOVER, "takeover took {takeover:?}");
    // The dead replica leaves the survivors' view once its heartbeat expired.
    wait_replicas_view(&rests[0], &ids[0], &survivors).await;

    // Convergence: every agent applies a write at least as new as its last
    // acknowledged one (and no newer than the last attempted); the dead replica's
    // clusters are served again within 10 s of the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut victim_served: Option<Duration> = None;
    loop {
        let rounds: Vec<Option<u32>> = sims.iter().map(|s| round_of(s)).collect();
        let done = |i: usize| rounds[i].is_some_and(|r| r >= acked[i] && r <= attempted[i]);
        if victim_served.is_none()
            && (0..clusters.len())
                .filter(|i| clusters[*i].1 == ids[victim])
                .all(done)
        {
            victim_served = Some(killed_at.elapsed());
        }
        if (0..clusters.len()).all(done) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not converged: applied {rounds:?}, acknowledged {acked:?}; hub-a log: {}",
            log_tail(replicas[0].proc.log())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim_served = victim_served.expect("set once converged");
    eprintln!(
        "multi-hub ({n}, {fault:?}): the faulty replica's clusters converged {victim_served:?} after the fault"
    );
    assert!(victim_served <= FAILOVER, "{victim_served:?}");
    if fault == Fault::Pause {
        // Back from the pause (the sampler still watching the agents): fenced (its own deadline passed long ago), it renews
        // nothing it lost and takes back only what the others shed for it.
        replicas[victim].proc.resume();
        wait_owners(
            &db,
            Duration::from_secs(20),
            "the resumed replica rejoins",
            |o| balanced(o, &ids),
        )
        .await;
    }

    // The hub's view catches up too: Applied at the work's current generation, through
    // a survivor's REST API.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (cluster, _) in &clusters {
        loop {
            let reply = rests[0]
                .call_async(
                    "GET",
                    &format!("/api/v1/clusters/{cluster}/works/app"),
                    None,
                )
                .await;
            let work: Option<Value> = match reply {
                Reply::Answer { code: 200, body } => Some(body),
                _ => None,
            };
            let generation = work
                .as_ref()
                .and_then(|w| w["metadata"]["generation"].as_i64())
                .unwrap_or(-1);
            if applied_at(work.as_ref(), generation) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{cluster}: status not caught up: {work:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Per-work order: no agent ever went back to an older write.
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let history = history.lock().unwrap().clone();
    eprintln!(
        "multi-hub ({n}, {fault:?}): acknowledged {acked:?}, attempted {attempted:?}, applied {history:?}"
    );
    for (i, seen) in history.iter().enumerate() {
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "{}: applied history went backwards: {seen:?}",
            clusters[i].0
        );
        assert!(!seen.is_empty());
    }

    for agent in agents {
        agent.shutdown().await;
    }
    let stopping = match fault {
        Fault::Kill => victim,
        Fault::Pause => n,
    };
    for r in &mut replicas[..stopping] {
        r.proc.terminate(Duration::from_secs(10)).await.unwrap();
    }
    broker.stop().await;
}

/// Watches across replicas (PostgreSQL LISTEN/NOTIFY): a watcher on replica B sees the
/// cluster registered and the spec changes made through replica A's REST API, the statuses whichever replica
/// took them, and the deletion; a change made through B itself is announced once (B
/// skips the notice of its own write). Two hubs in this process, sharing the store key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_one_replica_sees_changes_made_through_another() {
    use workbus_hub::watch::ChangeKind;
    use workbus_tests::hubs::{delete_work, put_work, register_cluster};

    let Some(db) = workbus_testkit::postgres_or_skip("watches across replicas") else {
        return;
    };
    let broker = TestBroker::embedded().await;
    let source = broker.source_id();
    let dir = tempfile::tempdir().unwrap();
    let (hub_a, hub_b) = two_replicas(db.url(), &broker, &source, dir.path()).await;
    let mut watch_b = hub_b.watch();
    let mut clusters_b = hub_b.registration().clusters.subscribe();
    let cluster = unique("watch");
    assert_eq!(register_cluster(&hub_a, &cluster).await, 201);
    // The cluster made through A reaches B's cluster watchers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let change = tokio::time::timeout_at(deadline, clusters_b.recv())
            .await
            .expect("B hears of the cluster made through A")
            .expect("B's cluster watchers stay open");
        let object = serde_json::to_value(&change.object).unwrap();
        if object["metadata"]["name"] == cluster.as_str() && !change.is_deleted() {
            break;
        }
    }
    let sim = Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: Duration::from_millis(50),
        snapshot: None,
    }));
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &dir.path().join("a")),
        sim,
        Arc::new(MemoryStore::default()),
    );

    // Everything replica B's watchers hear about the work (kind, generation, applied at
    // that generation), until `until` holds.
    type Heard = (ChangeKind, i64, bool);
    let mut seen: Vec<Heard> = Vec::new();
    let mut wait = async |what: &str, seen: &mut Vec<Heard>, until: &dyn Fn(&[Heard]) -> bool| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !until(seen) {
            let change = tokio::time::timeout_at(deadline, watch_b.recv())
                .await
                .unwrap_or_else(|_| panic!("{what}: B heard only {seen:?}"))
                .expect("B's watchers stay open");
            if change.object.metadata.name != "app" || change.cluster() != cluster {
                continue;
            }
            let object = serde_json::to_value(&change.object).unwrap();
            let generation = change.object.metadata.generation;
            seen.push((
                change.kind,
                generation,
                applied_at(Some(&object), generation),
            ));
        }
    };

    assert!(put_work(&hub_a, &cluster, "app", "app-config", "v1").await < 300);
    wait("spec and applied status of generation 1", &mut seen, &|s| {
        s.contains(&(ChangeKind::Spec, 1, false))
            && s.iter()
                .any(|c| c.0 == ChangeKind::Status && c.1 == 1 && c.2)
    })
    .await;

    // Through B itself, then through A: B announces its own change once.
    assert!(put_work(&hub_b, &cluster, "app", "app-config", "v2").await < 300);
    assert!(put_work(&hub_a, &cluster, "app", "app-config", "v3").await < 300);
    wait("generation 3's spec", &mut seen, &|s| {
        s.iter().any(|c| c.0 == ChangeKind::Spec && c.1 == 3)
    })
    .await;
    let own = seen
        .iter()
        .filter(|c| c.0 == ChangeKind::Spec && c.1 == 2)
        .count();
    assert_eq!(own, 1, "B's own change announced once: {seen:?}");

    assert_eq!(delete_work(&hub_a, &cluster, "app").await, 202);
    wait("the deletion", &mut seen, &|s| {
        s.iter().any(|c| c.0 == ChangeKind::Deleted)
    })
    .await;

    agent.shutdown().await;
    hub_b.shutdown().await;
    hub_a.shutdown().await;
    broker.stop().await;
}

/// A PostgreSQL outage under two replicas (a fault proxy in front of the server
/// refuses and cuts every connection): both answer 503, both stop publishing within
/// their lease deadline (no replica keeps publishing on a lease it cannot renew), and
/// once the server is back they reclaim every partition between them, acknowledged
/// works are all there, and new changes through either replica reach the agents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ride_out_a_database_outage() {
    use workbus_testkit::fault_proxy::FaultProxy;
    use workbus_tests::hubs::{put_work, register_cluster, rest};

    let Some(db) = workbus_testkit::postgres_or_skip("replicas and a database outage") else {
        return;
    };
    let proxy = FaultProxy::start(db.server_addr()).await;
    let broker = TestBroker::embedded().await;
    let source = broker.source_id();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(&db.url_via(proxy.addr()), &broker, &source, dir.path()).await;
    let hubs = [a, b];
    let owned = |hubs: &[workbus_hub::HubHandle; 2]| -> Vec<i64> {
        hubs.iter()
            .map(|h| h.metrics().partitions_owned.get())
            .collect()
    };
    let clusters: Vec<String> = (0..4).map(|_| unique("outage")).collect();
    let mut agents = Vec::new();
    for cluster in &clusters {
        assert_eq!(register_cluster(&hubs[0], cluster).await, 201);
        agents.push(start_agent(
            broker.agent_config(&source, cluster, &dir.path().join("a")),
            Arc::new(SimulatedCluster::new(SimConfig {
                ready_after: Duration::from_millis(50),
                snapshot: None,
            })),
            Arc::new(MemoryStore::default()),
        ));
    }
    // Applied at `generation` everywhere, read through replica A.
    let converged = async |generation: i64, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        for cluster in &clusters {
            let path = format!("/api/v1/clusters/{cluster}/works/app");
            loop {
                let (code, work) = rest(&hubs[0], "GET", &path, None).await;
                if code == 200 && applied_at(Some(&work), generation) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: {cluster}: {code} {work}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    for (i, cluster) in clusters.iter().enumerate() {
        assert!(put_work(&hubs[i % 2], cluster, "app", "app-config", "v1").await < 300);
    }
    converged(1, "before the outage").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while owned(&hubs) != [32, 32] {
        assert!(Instant::now() < deadline, "balanced: {:?}", owned(&hubs));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The database goes away.
    proxy.refuse(true);
    proxy.cut();
    let path = format!("/api/v1/clusters/{}/works/app", clusters[0]);
    for hub in &hubs {
        assert_eq!(rest(hub, "GET", &path, None).await.0, 503);
        assert_eq!(
            put_work(hub, &clusters[0], "app", "app-config", "lost").await,
            503
        );
    }
    // Fenced: neither publishes past its own lease deadline (TTL − margin after the
    // last renewal), well before anyone could claim its partitions.
    let fenced_by = Instant::now() + workbus_hub::replicas::LEASE_TTL + Duration::from_secs(2);
    loop {
        let now: Vec<bool> = hubs
            .iter()
            .map(|h| {
                h.leases()
                    .expect("replicated")
                    .ownership()
                    .publishable(tokio::time::Instant::now())
                    == 0
            })
            .collect();
        if now == [true, true] {
            break;
        }
        assert!(Instant::now() < fenced_by, "still publishing: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back: both answer again, every partition is held again, and changes flow.
    proxy.refuse(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    for hub in &hubs {
        while rest(hub, "GET", &path, None).await.0 != 200 {
            assert!(Instant::now() < deadline, "a replica did not recover");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    while owned(&hubs).iter().sum::<i64>() != 64 {
        assert!(Instant::now() < deadline, "partitions: {:?}", owned(&hubs));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    converged(1, "nothing lost in the outage").await;
    for (i, cluster) in clusters.iter().enumerate() {
        assert!(put_work(&hubs[(i + 1) % 2], cluster, "app", "app-config", "v2").await < 300);
    }
    converged(2, "after the outage").await;

    for agent in agents {
        agent.shutdown().await;
    }
    let [a, b] = hubs;
    b.shutdown().await;
    a.shutdown().await;
    broker.stop().await;
}

/// SQLite serves exactly one hub: a replica id with a SQLite store is refused before
/// anything starts.
#[tokio::test]
async fn a_sqlite_hub_refuses_a_replica_id() {
    use workbus_hub::replicas::ReplicaError;
    use workbus_hub::{Hub, HubConfig, HubError, StoreSettings};

    let dir = tempfile::tempdir().unwrap();
    let refused = Hub::start(HubConfig {
        store: StoreSettings::sqlite(dir.path()),
        listen: "127.0.0.1:0".parse().unwrap(),
        replica_id: Some("hub-a".into()),
        ..HubConfig::new()
    })
    .await;
    assert!(
        matches!(
            refused,
            Err(HubError::Replica(ReplicaError::SqliteIsSingleHub))
        ),
        "{:?}",
        refused.err()
    );
    assert!(
        !dir.path().join(workbus_hub::hub::DB_FILE).exists(),
        "refused before the store was opened"
    );
}

/// A replica that stops cleanly releases its leases: the other takes its partitions at
/// its next renewal, well before the leases would have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_hands_its_partitions_over_at_once() {
    let Some(db) = workbus_testkit::postgres_or_skip("a replica's clean stop") else {
        return;
    };
    let broker = TestBroker::embedded().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_replicas(db.url(), &broker, &broker.source_id(), dir.path()).await;
    let owned = |h: &workbus_hub::HubHandle| h.metrics().partitions_owned.get();
    let deadline = Instant::now() + Duration::from_secs(15);
    while (owned(&a), owned(&b)) != (32, 32) {
        assert!(
            Instant::now() < deadline,
            "balanced: {} {}",
            owned(&a),
            owned(&b)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.shutdown().await;
    let stopped = Instant::now();
    while owned(&a) != i64::from(PARTITIONS) {
        assert!(
            stopped.elapsed() < workbus_hub::replicas::LEASE_TTL,
            "A holds {} partitions {:?} after B stopped",
            owned(&a),
            stopped.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "multi-hub: A held every partition {:?} after B's clean stop",
        stopped.elapsed()
    );
    a.shutdown().await;
    broker.stop().await;
}
