//! The agent runtime's timers, end to end on the simulated cluster (manifestwork-semantics
//! §9, checklist items 43, 44, 50, 55, and an AppliedManifestWork deleted out of band).
//!
//! Works are handed to the agent through its store (as after a restart), and the agent
//! is pointed at a broker address where nothing listens: nothing here needs the hub,
//! and with no network traffic tokio's paused clock (`start_paused`) is safe — the
//! agent's timers then fire exactly as configured, and a minute passes in no time.
//! What the agent did is read back from the simulated cluster and from its store.
//!
//! The eviction test runs on the real clock: eviction compares wall-clock times
//! (`evictionStartTime`), so it uses a one-second grace period instead.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use workbus_agent::applied_work::{self, AppliedWorkIdentity};
use workbus_agent::config::AgentConfig;
use workbus_agent::reconcile::{Reconciler, WorkState};
use workbus_agent::runtime::{self, AgentHandle};
use workbus_agent::store::{AgentStore, MemoryStore, WorkRecord};
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_agent::target::{ApplyMode, ObjectRef, OwnerChange, Target};
use workbus_schemas::topics::Topics;
use workbus_schemas::work::spec::ManifestWorkSpec;
use workbus_schemas::work::{ManifestWork, ManifestWorkStatus, ObjectMeta, Time};
use workbus_transport::TransportConfig;

const SA_USER: &str = "system:serviceaccount:ns1:sa1";
const SEC: Duration = Duration::from_secs(1);

/// A loopback port where nothing listens (bound, then released).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// An agent config at upstream timing (10 s status sync, 4 min re-apply) without
/// jitter, whose broker never answers.
fn config() -> AgentConfig {
    let topics = Topics::for_agent("src", "c1").expect("topics");
    let mut transport = TransportConfig::new("127.0.0.1", dead_port(), "");
    transport.reconnect.max_delay = Duration::from_secs(5);
    let mut c = AgentConfig::new("c1", None, topics, transport).expect("config");
    c.status_sync_jitter = 0.0;
    c.apply_resync_jitter = 0.0;
    c
}

fn identity(c: &AgentConfig) -> AppliedWorkIdentity {
    AppliedWorkIdentity::new(&c.hub_host, &c.hub_hash())
}

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: Duration::ZERO,
        snapshot: None,
    }))
}

fn work(name: &str, spec: Value) -> ManifestWork {
    let meta = ObjectMeta {
        uid: name.into(),
        name: name.into(),
        namespace: "c1".into(),
        generation: 1,
        ..ObjectMeta::default()
    };
    let spec: ManifestWorkSpec = serde_json::from_value(spec).expect("spec");
    ManifestWork::new(meta, spec)
}

fn cm(namespace: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": namespace}, "data": {"k": value}})
}

/// A ConfigMap manifest with a `k` feedback value, scraped as `scrape` ("" = unset).
fn feedback_config(namespace: &str, scrape: &str) -> Value {
    json!({"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "*", "namespace": namespace},
           "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "k", "path": ".data.k"}]}],
           "feedbackScrapeType": scrape})
}

/// A store holding `works`, never applied (the agent applies them at start).
fn store_with(works: &[ManifestWork]) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::default());
    for w in works {
        store
            .put(&WorkRecord {
                work: w.clone(),
                state: WorkState::default(),
                applied_generation: 0,
                reported_hash: String::new(),
                last_sequence_id: String::new(),
            })
            .expect("put");
    }
    store
}

fn start(
    config: AgentConfig,
    sim: &Arc<SimulatedCluster>,
    store: &Arc<MemoryStore>,
) -> AgentHandle {
    runtime::start(config, sim.clone(), store.clone()).expect("agent starts")
}

/// Lets `d` pass on the (paused) clock, then lets the agent finish what fell due.
async fn pass(d: Duration) {
    tokio::time::sleep(d).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn record(store: &MemoryStore, uid: &str) -> WorkRecord {
    store
        .load()
        .expect("load")
        .into_iter()
        .find(|r| r.uid() == uid)
        .expect("record")
}

fn status(store: &MemoryStore, uid: &str) -> ManifestWorkStatus {
    record(store, uid).state.status
}

/// The status of manifest `ordinal`'s condition `type_`, if any.
fn manifest_condition(s: &ManifestWorkStatus, ordinal: usize, type_: &str) -> Option<String> {
    s.resource_status
        .manifests
        .get(ordinal)?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// The `k` feedback value of manifest `ordinal`.
fn feedback(s: &ManifestWorkStatus, ordinal: usize) -> Option<String> {
    let m = s.resource_status.manifests.get(ordinal)?;
    let v = m.status_feedback.values.iter().find(|v| v.name == "k")?;
    v.field_value.to_raw().string
}

/// Someone on the managed cluster edits the ConfigMap (`kubectl edit`).
async fn edit(sim: &SimulatedCluster, namespace: &str, name: &str, value: &str) {
    let at = ObjectRef::new("", "v1", "configmaps", namespace, name);
    sim.apply(
        &at,
        &cm(namespace, name, value),
        &ApplyMode::Update,
        &OwnerChange::Keep,
    )
    .await
    .expect("edit");
}

/// Steps the clock by `step` until `done` holds; returns how long that took. Fails
/// after `limit`.
async fn time_until(step: Duration, limit: Duration, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() <= limit, "not within {limit:?}");
        pass(step).await;
    }
    start.elapsed()
}

/// Item 50 at runtime: a manifest its executor may not create fails; once the
/// permission is granted it is applied about 60 s after the failed attempt, with no
/// spec change (the re-apply timer, not the next status sync after it).
#[tokio::test(start_paused = true)]
async fn item_50_denied_manifest_is_applied_a_minute_after_the_grant() {
    let sim = sim();
    sim.deny_access(SA_USER, "create", "", "configmaps");
    let w = work(
        "w1",
        json!({"workload": {"manifests": [cm("default", "c", "1")]},
               "executor": {"subject": {"type": "ServiceAccount",
                            "serviceAccount": {"namespace": "ns1", "name": "sa1"}}}}),
    );
    let store = store_with(std::slice::from_ref(&w));
    let mut c = config();
    // A status sync that does not divide 60 s: the retry must not wait for it.
    c.status_sync_interval = Duration::from_secs(25);
    let agent = start(c, &sim, &store);
    pass(SEC).await;
    let s = status(&store, "w1");
    assert_eq!(
        manifest_condition(&s, 0, "Applied").as_deref(),
        Some("False")
    );
    let applied = s.resource_status.manifests[0]
        .conditions
        .iter()
        .find(|c| c.type_ == "Applied")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        applied.contains("not allowed to apply the resource"),
        "{applied}"
    );
    pass(4 * SEC).await; // t = 5 s
    sim.allow_all_access();
    pass(53 * SEC).await; // t = 58 s: still waiting for the retry
    assert!(sim.object("", "v1", "configmaps", "default", "c").is_none());
    pass(3 * SEC).await; // t = 61 s
    assert!(
        sim.object("", "v1", "configmaps", "default", "c").is_some(),
        "applied about 60 s after the denial"
    );
    let s = status(&store, "w1");
    assert_eq!(
        manifest_condition(&s, 0, "Applied").as_deref(),
        Some("True")
    );
    agent.kill();
}

/// Item 55 at runtime: an AppliedManifestWork whose work the agent does not hold is
/// marked at the first sweep and evicted with what it owns once the grace period is
/// over, by the sweep timer alone. Real clock (see the module doc).
#[tokio::test]
async fn item_55_orphaned_applied_work_is_evicted_after_the_grace_period() {
    let sim = sim();
    let mut c = config();
    c.eviction_grace_period = SEC;
    // A work this agent applied once and then lost (e.g. its store was wiped).
    let gone = work(
        "gone",
        json!({"workload": {"manifests": [cm("default", "g", "1")]}}),
    );
    let r = Reconciler::new(sim.clone()).with_identity(identity(&c));
    r.apply(&gone, &WorkState::default(), Time::now()).await;
    let amw_at = applied_work::at(&identity(&c).name_of(&gone));
    assert!(sim.get(&amw_at).await.unwrap().is_some());
    let started = std::time::Instant::now();
    let agent = start(c, &sim, &store_with(&[]));
    // The first sweep (at start) marks it; nothing is deleted yet.
    let deadline = std::time::Instant::now() + 10 * SEC;
    loop {
        let amw = sim.get(&amw_at).await.unwrap().expect("still there");
        if amw["status"]["evictionStartTime"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "eviction never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.object("", "v1", "configmaps", "default", "g").is_some());
    // The sweep timer evicts it after the grace period, with the object it owns.
    while sim.get(&amw_at).await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "never evicted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= SEC, "not before the grace period");
    assert!(sim.object("", "v1", "configmaps", "default", "g").is_none());
    agent.kill();
}

/// Item 43: with `feedbackScrapeType: Watch` a change of the object reaches the status
/// well before the 10 s status sync (a burst of changes gives one refresh); an
/// out-of-band deletion turns Available False as promptly.
#[tokio::test(start_paused = true)]
async fn item_43_watched_object_changes_reach_the_status_at_once() {
    let sim = sim();
    let w = work(
        "w1",
        json!({"workload": {"manifests": [cm("default", "c", "1")]},
               "manifestConfigs": [feedback_config("default", "Poll"), feedback_config("*", "Watch")]}),
    );
    let store = store_with(&[w]);
    let agent = start(config(), &sim, &store);
    pass(SEC).await;
    assert_eq!(feedback(&status(&store, "w1"), 0).as_deref(), Some("1"));
    assert_eq!(agent.stats().feedback_watches.load(Ordering::Relaxed), 1);
    let refreshes = agent.stats().watch_refreshes.load(Ordering::Relaxed);
    edit(&sim, "default", "c", "2").await;
    edit(&sim, "default", "c", "3").await;
    let took = time_until(Duration::from_millis(50), 2 * SEC, || {
        feedback(&status(&store, "w1"), 0).as_deref() == Some("3")
    })
    .await;
    assert!(took < SEC, "{took:?}");
    assert_eq!(
        agent.stats().watch_refreshes.load(Ordering::Relaxed),
        refreshes + 1,
        "two changes, one refresh"
    );
    pass(SEC).await;
    assert!(sim.delete_out_of_band("", "v1", "configmaps", "default", "c"));
    let took = time_until(Duration::from_millis(50), 2 * SEC, || {
        manifest_condition(&status(&store, "w1"), 0, "Available").as_deref() == Some("False")
    })
    .await;
    assert!(took < SEC, "{took:?}");
    assert_eq!(
        agent
            .stats()
            .feedback_watch_fallbacks
            .load(Ordering::Relaxed),
        0
    );
    agent.kill();
}

/// Item 43, the cap: beyond `--max-feedback-watch` watched resource + namespace pairs
/// the agent polls, without error; the watches within it stay prompt.
#[tokio::test(start_paused = true)]
async fn item_43_beyond_the_watch_limit_the_agent_polls() {
    let sim = sim();
    let w = work(
        "w1",
        json!({"workload": {"manifests": [cm("a", "c", "1"), cm("b", "c", "1")]},
               "manifestConfigs": [feedback_config("*", "Watch")]}),
    );
    let store = store_with(&[w]);
    let mut c = config();
    c.max_feedback_watch = 1;
    let agent = start(c, &sim, &store);
    pass(SEC).await;
    let stats = agent.stats();
    assert_eq!(stats.feedback_watches.load(Ordering::Relaxed), 1);
    assert_eq!(stats.feedback_watch_fallbacks.load(Ordering::Relaxed), 1);
    // Namespace "b" did not fit: its change waits for the status sync.
    edit(&sim, "b", "c", "2").await;
    pass(2 * SEC).await;
    assert_eq!(feedback(&status(&store, "w1"), 1).as_deref(), Some("1"));
    let took = time_until(Duration::from_millis(500), 12 * SEC, || {
        feedback(&status(&store, "w1"), 1).as_deref() == Some("2")
    })
    .await;
    assert!(took >= 7 * SEC, "polled, not watched: {took:?}");
    // Namespace "a" is watched.
    edit(&sim, "a", "c", "2").await;
    let took = time_until(Duration::from_millis(50), 2 * SEC, || {
        feedback(&status(&store, "w1"), 0).as_deref() == Some("2")
    })
    .await;
    assert!(took < SEC, "{took:?}");
    let s = status(&store, "w1");
    assert_eq!(
        manifest_condition(&s, 1, "StatusFeedbackSynced").as_deref(),
        Some("True"),
        "falling back is not an error"
    );
    assert_eq!(
        stats.feedback_watch_fallbacks.load(Ordering::Relaxed),
        1,
        "counted once while needed"
    );
    agent.kill();
}

/// Item 44: with `Poll` (the default) a change is noticed at the next status sync,
/// 10–19 s after the last one at the upstream defaults (jitter on), never sooner.
#[tokio::test(start_paused = true)]
async fn item_44_polled_status_follows_within_10_to_19_seconds() {
    let sim = sim();
    let w = work(
        "w1",
        json!({"workload": {"manifests": [cm("default", "c", "0")]},
               "manifestConfigs": [feedback_config("default", "")]}),
    );
    let store = store_with(&[w]);
    let mut c = config();
    c.status_sync_jitter = workbus_agent::config::DEFAULT_STATUS_SYNC_JITTER;
    let agent = start(c, &sim, &store);
    pass(Duration::from_millis(100)).await;
    assert_eq!(feedback(&status(&store, "w1"), 0).as_deref(), Some("0"));
    // Each change is made right after a sync noticed the previous one, so the next
    // sync is 10–19 s away.
    for value in ["1", "2", "3", "4"] {
        edit(&sim, "default", "c", value).await;
        let took = time_until(Duration::from_millis(100), 25 * SEC, || {
            feedback(&status(&store, "w1"), 0).as_deref() == Some(value)
        })
        .await;
        assert!(
            took >= Duration::from_millis(9_800) && took <= Duration::from_millis(19_200),
            "{value}: {took:?}"
        );
    }
    assert_eq!(agent.stats().feedback_watches.load(Ordering::Relaxed), 0);
    agent.kill();
}

/// An AppliedManifestWork deleted out of band while its work is live (OCM: released and
/// re-created): the next refresh notices it, the agent finishes it (its objects are
/// released, its finalizer removed), creates a new one and applies again, so the
/// objects are owned by the new one.
#[tokio::test(start_paused = true)]
async fn applied_work_deleted_out_of_band_is_finished_and_recreated() {
    let sim = sim();
    let w = work(
        "w1",
        json!({"workload": {"manifests": [cm("default", "c", "1")]}}),
    );
    let store = store_with(std::slice::from_ref(&w));
    let c = config();
    let amw_at = applied_work::at(&identity(&c).name_of(&w));
    let agent = start(c, &sim, &store);
    pass(SEC).await;
    let old = sim.get(&amw_at).await.unwrap().expect("created");
    let old_uid = old["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(record(&store, "w1").state.applied_work_uid, old_uid);
    // Someone deletes it: its finalizer keeps it, terminating.
    sim.delete(&amw_at, None).await.unwrap();
    let terminating = sim
        .get(&amw_at)
        .await
        .unwrap()
        .expect("kept by its finalizer");
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    // The next status sync (10 s) notices and starts over.
    pass(11 * SEC).await;
    let new = sim.get(&amw_at).await.unwrap().expect("re-created");
    let new_uid = new["metadata"]["uid"].as_str().unwrap().to_string();
    assert_ne!(new_uid, old_uid);
    assert!(new["metadata"]["deletionTimestamp"].is_null());
    let live = sim
        .object("", "v1", "configmaps", "default", "c")
        .expect("applied again");
    let owners: Vec<&str> = live["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["uid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(owners, vec![new_uid.as_str()], "owned by the new one only");
    let r = record(&store, "w1");
    assert_eq!(r.state.applied_work_uid, new_uid);
    assert_eq!(r.state.applied.len(), 1);
    assert_eq!(
        new["status"]["appliedResources"][0]["uid"], live["metadata"]["uid"],
        "the new one records the live object"
    );
    assert_eq!(
        manifest_condition(&r.state.status, 0, "Available").as_deref(),
        Some("True")
    );
    agent.kill();
}

/// Item 61: status events only when the status changes. Across many status syncs with
/// nothing changed on the cluster, no status is queued again; a real change queues
/// exactly one more.
#[tokio::test(start_paused = true)]
async fn item_61_no_status_event_without_a_change() {
    let sim = sim();
    let w = work(
        "w1",
        json!({"workload": {"manifests": [cm("default", "c", "0")]},
               "manifestConfigs": [feedback_config("default", "")]}),
    );
    let mut w = w;
    // A status event names the source that owns the work (set on every received work).
    w.metadata.labels.insert(
        workbus_schemas::work::meta::LABEL_ORIGINAL_SOURCE.into(),
        "src".into(),
    );
    let store = store_with(&[w]);
    let mut c = config();
    c.status_sync_jitter = workbus_agent::config::DEFAULT_STATUS_SYNC_JITTER;
    let agent = start(c, &sim, &store);
    pass(Duration::from_millis(100)).await;
    assert_eq!(feedback(&status(&store, "w1"), 0).as_deref(), Some("0"));
    let queued = || agent.stats().status_queued.load(Ordering::Relaxed);
    let first = queued();
    assert!(first >= 1, "the applied status is queued");
    let before = status(&store, "w1");
    // Ten minutes: 30+ status syncs and at least two full re-applies.
    for _ in 0..60 {
        pass(10 * SEC).await;
    }
    assert_eq!(queued(), first, "no status queued without a change");
    assert_eq!(
        status(&store, "w1"),
        before,
        "the status is unchanged, times included"
    );
    edit(&sim, "default", "c", "1").await;
    time_until(Duration::from_millis(100), 25 * SEC, || {
        feedback(&status(&store, "w1"), 0).as_deref() == Some("1")
    })
    .await;
    assert_eq!(queued(), first + 1, "one change, one status");
    agent.kill();
}
