//! Deleting works, against Mosquitto with the real agent on a simulated cluster (issue 9):
//!
//! - bug 2: a redelivered `Deleted` status of an earlier incarnation of a work (same
//!   name, hence same uid) must not remove the re-created work, nor complete its later
//!   deletion;
//! - bug 3: a `Deleted` status sent while the hub was down is lost; the hub re-drives
//!   the deletions it waits for after its restart, and on a backoff while it runs.
//!
//! A ConfigMap with a foreign finalizer holds the agent's cleanup (the object only gets
//! a `deletionTimestamp`) until the test releases it: that is how the agent is "paused"
//! between receiving a delete and confirming it.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::{Instant, timeout};
use workbus_agent::config::AgentConfig;
use workbus_agent::runtime::{self, AgentHandle};
use workbus_agent::store::MemoryStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_hub::HubHandle;
use workbus_hub::watch::WorkChange;
use workbus_schemas::metadata::decode_status_event;
use workbus_schemas::mqtt::{self, MqttMessage};
use workbus_schemas::resource_id::work_resource_id;
use workbus_schemas::sequence_id::SequenceIdGenerator;
use workbus_schemas::topics::{self, Topics};
use workbus_transport::{Transport, TransportConfig, TransportEvent};

/// The finalizer that holds the agent's cleanup until [`release`].
const HOLD: &str = "workbus.test/hold";

/// A real agent for `cluster` on Mosquitto, test-friendly timings, memory store.
fn start_agent(source: &str, cluster: &str, sim: Arc<SimulatedCluster>) -> AgentHandle {
    let topics = Topics::for_agent(source, cluster).unwrap();
    let mut transport = TransportConfig::new(broker().0, broker().1, "");
    transport.reconnect.min_delay = Duration::from_millis(50);
    transport.reconnect.max_delay = Duration::from_millis(500);
    let mut config = AgentConfig::new(cluster, None, topics, transport).unwrap();
    config.status_sync_interval = Duration::from_millis(500);
    runtime::start(config, sim, Arc::new(MemoryStore::default())).unwrap()
}

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: Duration::from_millis(50),
        snapshot: None,
    }))
}

/// A work with one ConfigMap `cm-<name>`; `held` puts [`HOLD`] on it.
fn work_with_configmap(cluster: &str, name: &str, data: &str, held: bool) -> Value {
    let mut w = work_json(cluster, name, data);
    if held {
        w["spec"]["workload"]["manifests"][0]["metadata"]["finalizers"] = json!([HOLD]);
    }
    w
}

fn configmap(sim: &SimulatedCluster, name: &str) -> Option<Value> {
    sim.object("", "v1", "configmaps", "default", &format!("cm-{name}"))
}

/// Lets the held ConfigMap of work `name` go, so the agent's cleanup can finish.
fn release(sim: &SimulatedCluster, name: &str) {
    assert!(sim.finish_finalizers("", "v1", "configmaps", "default", &format!("cm-{name}")));
}

/// A plain MQTT client that records the agents' events for `source` as raw messages.
struct Observer {
    transport: Transport,
}

impl Observer {
    async fn connect(source: &str) -> Observer {
        let topics = Topics::for_source(source).unwrap();
        let mut cfg = TransportConfig::new(broker().0, broker().1, unique("observer"));
        cfg.subscriptions = topics::source_subscriptions(&topics, source).unwrap();
        let mut transport = Transport::start(cfg).unwrap();
        loop {
            match timeout(WAIT, transport.events.recv()).await {
                Ok(Some(TransportEvent::Subscribed)) => break,
                Ok(Some(_)) => {}
                other => panic!("observer could not subscribe: {other:?}"),
            }
        }
        Observer { transport }
    }

    /// The next agent message that is a `Deleted` status for `uid`, byte for byte.
    async fn next_deleted(&mut self, uid: &str) -> MqttMessage {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.transport.events.recv()).await {
                Ok(Some(TransportEvent::Message(m))) => {
                    let Ok(event) = mqtt::decode(&m) else {
                        continue;
                    };
                    if decode_status_event(&event)
                        .is_ok_and(|s| s.resource_id == uid && s.is_deleted())
                    {
                        return m;
                    }
                }
                Ok(Some(_)) => {}
                _ => panic!("no Deleted status for {uid} on the wire"),
            }
        }
    }

    /// Publishes `message` again, unchanged (a QoS 1 duplicate).
    async fn redeliver(&self, message: &MqttMessage) {
        self.transport.publisher.publish(message).await.unwrap();
    }
}

/// Waits until `pred` holds for `GET` of the work (`None` = 404), checking now and after
/// every change the hub reports; panics after [`WAIT`].
async fn wait_work(
    hub: &HubHandle,
    changes: &mut broadcast::Receiver<WorkChange>,
    cluster: &str,
    name: &str,
    what: &str,
    pred: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = get_work(hub, cluster, name).await;
        let current = (r.status == 200).then_some(r.body);
        if pred(current.as_ref()) {
            return current;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, changes.recv()).await {
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("hub stopped: {what}"),
            Err(_) => panic!("timed out waiting for {what}; last state: {current:?}"),
        }
    }
}

fn condition_true(work: Option<&Value>, type_: &str, generation: i64) -> bool {
    work.and_then(|w| w["status"]["conditions"].as_array().cloned())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == type_ && c["status"] == "True" && c["observedGeneration"] == generation
            })
        })
}

fn generation_of(work: &Value) -> i64 {
    work["metadata"]["generation"].as_i64().unwrap()
}

fn deleting(work: Option<&Value>) -> bool {
    work.is_some_and(|w| w["metadata"]["deletionTimestamp"].is_string())
}

async fn delete(hub: &HubHandle, cluster: &str, name: &str) -> u16 {
    http(
        "DELETE",
        format!("{}/api/v1/clusters/{cluster}/works/{name}", hub.base_url()),
        None,
        None,
    )
    .await
    .status
}

/// A plain counter from `/metrics` (0 when absent).
async fn counter(hub: &HubHandle, name: &str) -> u64 {
    let text = http("GET", format!("{}/metrics", hub.base_url()), None, None).await;
    let text = text.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Every status the hub dropped so far, whatever the reason.
fn dropped_statuses(hub: &HubHandle) -> u64 {
    let m = hub.metrics();
    [
        "unknown_work",
        "cluster_mismatch",
        "stale_generation",
        "not_newer",
        "bad_sequence_id",
        "not_deleting",
        "future_sequence_id",
    ]
    .iter()
    .map(|r| m.dropped_count(r))
    .sum()
}

/// Hub, cluster, real agent and wire observer; work `w1` created, applied, deleted (the
/// agent confirmed) and its `Deleted` status captured from the wire.
struct DeletedOnce {
    dir: tempfile::TempDir,
    cluster: String,
    hub: HubHandle,
    changes: broadcast::Receiver<WorkChange>,
    sim: Arc<SimulatedCluster>,
    agent: AgentHandle,
    observer: Observer,
    first_deleted: MqttMessage,
}

impl DeletedOnce {
    /// Creates `w1` again (data `b`; its ConfigMap held by a foreign finalizer when
    /// `held`) and waits until it is applied; returns its generation.
    async fn recreate(&mut self, held: bool) -> i64 {
        let created = put_work(
            &self.hub,
            &work_with_configmap(&self.cluster, "w1", "b", held),
        )
        .await;
        assert_eq!(created.status, 201);
        let generation = generation_of(&created.body);
        wait_work(
            &self.hub,
            &mut self.changes,
            &self.cluster,
            "w1",
            "w1 applied again",
            |w| condition_true(w, "Applied", generation),
        )
        .await;
        generation
    }
}

async fn create_and_delete_once() -> DeletedOnce {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("incarnation");
    let cluster = unique("c");
    let hub = start_hub(dir.path(), &source).await;
    let mut changes = hub.watch();
    assert_eq!(create_cluster(&hub, &cluster).await.status, 201);
    let mut observer = Observer::connect(&source).await;
    let sim = sim();
    let agent = start_agent(&source, &cluster, sim.clone());
    let uid = work_resource_id(&source, &cluster, "w1").to_string();

    let created = put_work(&hub, &work_with_configmap(&cluster, "w1", "a", false)).await;
    assert_eq!(created.status, 201);
    let generation = generation_of(&created.body);
    wait_work(&hub, &mut changes, &cluster, "w1", "w1 applied", |w| {
        condition_true(w, "Applied", generation)
    })
    .await;
    assert_eq!(delete(&hub, &cluster, "w1").await, 202);
    wait_work(&hub, &mut changes, &cluster, "w1", "w1 removed", |w| {
        w.is_none()
    })
    .await;
    let first_deleted = observer.next_deleted(&uid).await;
    assert!(configmap(&sim, "w1").is_none());
    DeletedOnce {
        dir,
        cluster,
        hub,
        changes,
        sim,
        agent,
        observer,
        first_deleted,
    }
}

/// Redelivers the first incarnation's `Deleted` status and waits until the hub has
/// processed it (dropped it, or — the bug — removed the work).
async fn redeliver_first_deleted(s: &DeletedOnce) {
    let dropped = dropped_statuses(&s.hub);
    let completed = s.hub.metrics().deletions_completed.get();
    s.observer.redeliver(&s.first_deleted).await;
    eventually("the redelivered Deleted status processed", || async {
        dropped_statuses(&s.hub) > dropped || s.hub.metrics().deletions_completed.get() > completed
    })
    .await;
}

/// Bug 2, as reported: create, delete (confirmed), create again, then the agent's first
/// `Deleted` status arrives again byte for byte. The re-created work must stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deleted_status_does_not_remove_a_recreated_work() {
    let mut s = create_and_delete_once().await;
    let generation = s.recreate(false).await;
    assert_eq!(generation, 2, "generations continue across incarnations");

    redeliver_first_deleted(&s).await;

    let again = get_work(&s.hub, &s.cluster, "w1").await;
    assert_eq!(
        again.status, 200,
        "the re-created work must survive: {again:?}"
    );
    assert!(!deleting(Some(&again.body)));
    assert!(condition_true(Some(&again.body), "Applied", generation));
    assert_eq!(configmap(&s.sim, "w1").unwrap()["data"]["key"], "b");
    assert_eq!(s.hub.metrics().dropped_count("not_deleting"), 1);

    s.agent.shutdown().await;
    s.hub.shutdown().await;
    drop(s.dir);
}

/// Bug 2, second form: w1 deleted, re-created, deleted again; the first incarnation's
/// `Deleted` arrives before the agent confirmed the second deletion. It must not
/// complete it; the agent's own confirmation later does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_incarnations_deleted_status_does_not_complete_a_later_deletion() {
    let mut s = create_and_delete_once().await;
    s.recreate(true).await;
    // Deleted again; the agent starts cleaning up but the finalizer holds it.
    assert_eq!(delete(&s.hub, &s.cluster, "w1").await, 202);
    eventually("the agent started cleaning up", || async {
        configmap(&s.sim, "w1").is_some_and(|cm| cm["metadata"]["deletionTimestamp"].is_string())
    })
    .await;

    redeliver_first_deleted(&s).await;

    let still = get_work(&s.hub, &s.cluster, "w1").await;
    assert_eq!(
        still.status, 200,
        "an old confirmation completed it: {still:?}"
    );
    assert!(deleting(Some(&still.body)));
    assert_eq!(s.hub.metrics().dropped_count("stale_generation"), 1);

    // The agent's own confirmation of this deletion completes it.
    release(&s.sim, "w1");
    wait_work(
        &s.hub,
        &mut s.changes,
        &s.cluster,
        "w1",
        "w1 removed by its own confirmation",
        |w| w.is_none(),
    )
    .await;
    assert!(configmap(&s.sim, "w1").is_none());

    s.agent.shutdown().await;
    s.hub.shutdown().await;
    drop(s.dir);
}

/// Bug 3, as reported: the agent finishes a deletion (and sends `Deleted`) while the hub
/// is down, so nobody receives the confirmation; the agent then no longer holds the work.
/// The restarted hub must get the deletion completed without the agent reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_confirmed_while_the_hub_was_down_completes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("redrive");
    let cluster = unique("c");
    let hub = start_hub(dir.path(), &source).await;
    let mut changes = hub.watch();
    assert_eq!(create_cluster(&hub, &cluster).await.status, 201);
    let sim = sim();
    let agent = start_agent(&source, &cluster, sim.clone());
    let created = put_work(&hub, &work_with_configmap(&cluster, "w1", "a", true)).await;
    assert_eq!(created.status, 201);
    let generation = generation_of(&created.body);
    wait_work(&hub, &mut changes, &cluster, "w1", "w1 applied", |w| {
        condition_true(w, "Applied", generation)
    })
    .await;

    // DELETE; the agent receives it (the hub has published it) but cannot finish yet.
    assert_eq!(delete(&hub, &cluster, "w1").await, 202);
    eventually("the agent started cleaning up", || async {
        configmap(&sim, "w1").is_some_and(|cm| cm["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    hub.shutdown().await;

    // The agent finishes while the hub is down: its Deleted status reaches nobody, and
    // once the broker acknowledged it the agent forgets the work.
    let stats = agent.stats().clone();
    release(&sim, "w1");
    eventually("the agent confirmed to nobody", || async {
        stats.deleted.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(configmap(&sim, "w1").is_none());

    // Restarted on the same data: the deletion completes, the name is free again.
    let hub = start_hub(dir.path(), &source).await;
    let mut changes = hub.watch();
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "w1",
        "the deletion completed after the restart",
        |w| w.is_none(),
    )
    .await;
    assert!(counter(&hub, "workbus_hub_deletions_redriven_total").await >= 1);
    assert_eq!(
        put_work(&hub, &work_with_configmap(&cluster, "w1", "b", false))
            .await
            .status,
        201
    );
    agent.shutdown().await;
    hub.shutdown().await;
}

/// Bug 3, while the hub runs: a deletion nobody confirms is published again after the
/// first backoff interval (5 s), with the deletion's generation, until confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_deletion_is_redriven_until_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("backoff");
    let CreatedWork {
        hub,
        cluster,
        mut agent,
        uid,
    } = CreatedWork::start(dir.path(), &source).await;
    assert_eq!(delete(&hub, &cluster, "w1").await, 202);
    let first = agent
        .next("delete", |e| is_type(e, "spec.delete_request"))
        .await;
    let asked = Instant::now();
    let again = agent
        .next("the re-driven delete", |e| {
            is_type(e, "spec.delete_request") && ext(e, "resourceid").as_deref() == Some(&uid)
        })
        .await;
    assert!(
        asked.elapsed() >= Duration::from_secs(3),
        "re-driven too early"
    );
    assert_eq!(
        ext(&again, "resourceversion"),
        ext(&first, "resourceversion")
    );
    assert!(ext(&again, "deletiontimestamp").is_some());
    assert!(counter(&hub, "workbus_hub_deletions_redriven_total").await >= 1);

    // Confirmed: the work goes.
    let generation: i64 = ext(&first, "resourceversion").unwrap().parse().unwrap();
    let seq = SequenceIdGenerator::default().next().unwrap().to_string();
    agent
        .send_status(&uid, generation, &seq, deleted_status())
        .await;
    eventually("work removed", || async {
        get_work(&hub, &cluster, "w1").await.status == 404
    })
    .await;
    hub.shutdown().await;
}

fn deleted_status() -> Value {
    json!({"conditions": [{"type": "Deleted", "status": "True",
        "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": "ManifestsDeleted",
        "message": "The manifests are deleted from the cluster"}]})
}
