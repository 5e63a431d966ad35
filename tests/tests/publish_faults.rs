//! Publishing across connection losses (issue 9, bug 1): a publish in flight when the
//! broker stops answering and the connection is then cut must fail at once with
//! `ConnectionLost`, and every later publish must be matched to its own acknowledgement
//! — before the fix, packet ids coming round after the reconnect credited PUBACKs to
//! dropped messages and the agent's publish queue stalled for good.
//!
//! Also a request lost the same way: an agent's spec resync request sent while its hub
//! was down (found by the chaos suite) is asked again when the hub comes back.
//!
//! And statuses produced while the agent is offline (issue 15): every one of them
//! reaches the hub after the reconnect, in order, from the agent's durable outbox — also
//! when the agent was restarted meanwhile.
//!
//! The faults come from a [`FaultProxy`] between the client and a real broker (the
//! embedded one, and Mosquitto, whose Receive Maximum of 20 makes packet ids come round
//! quickly). Pausing the proxy is what a SIGSTOPped broker looks like to a client;
//! cutting it is the broker's restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::timeout;
use workbus_agent::runtime::AgentHandle;
use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_hub::HubHandle;
use workbus_hub::watch::WorkChange;
use workbus_schemas::mqtt::MqttMessage;
use workbus_tests::agents::{agent_config, start_agent};
use workbus_tests::brokers::TestBroker;
use workbus_tests::fault_proxy::FaultProxy;
use workbus_tests::hubs::{applied_at, put_work, register_cluster, rest, start_hub, wait_work};
use workbus_tests::{WAIT, unique, wait_until};
use workbus_transport::{PublishError, Transport, TransportConfig, TransportEvent};

/// Bound on one publish round trip on a healthy connection.
const ROUND_TRIP: Duration = Duration::from_secs(5);

workbus_tests::on_both_brokers!(
    acknowledgements_stay_matched_after_a_connection_loss,
    agent_keeps_converging_after_a_cut_in_flight_status,
    hub_keeps_publishing_after_a_cut_in_flight_spec,
    spec_resync_sent_while_the_hub_was_down_is_asked_again,
    offline_statuses_arrive_in_order_after_the_reconnect,
    statuses_left_in_the_outbox_are_sent_after_a_restart,
);

fn broker_addr(broker: &TestBroker) -> SocketAddr {
    format!("{}:{}", broker.host(), broker.port())
        .parse()
        .expect("broker address")
}

async fn next_subscribed(t: &mut Transport) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, t.events.recv()).await {
            Ok(Some(TransportEvent::Subscribed)) => return,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("transport ended"),
            Err(_) => panic!("not subscribed in time"),
        }
    }
}

async fn next_message(t: &mut Transport) -> MqttMessage {
    loop {
        match timeout(WAIT, t.events.recv())
            .await
            .expect("message in time")
        {
            Some(TransportEvent::Message(m)) => return m,
            Some(_) => continue,
            None => panic!("transport ended"),
        }
    }
}

fn message(topic: &str, n: usize) -> MqttMessage {
    MqttMessage {
        topic: topic.to_string(),
        content_type: Some("application/json".into()),
        user_properties: vec![("ce-id".into(), n.to_string())],
        payload: format!("{{\"n\":{n}}}").into_bytes(),
        publisher: None,
    }
}

async fn acknowledgements_stay_matched_after_a_connection_loss(broker: &mut TestBroker) {
    let topic = unique("workbus-test/acks");
    let mut sub_cfg = TransportConfig::new(broker.host(), broker.port(), unique("sub"));
    sub_cfg.subscriptions = vec![topic.clone()];
    let mut sub = Transport::start(sub_cfg).unwrap();
    next_subscribed(&mut sub).await;

    let proxy = FaultProxy::start(broker_addr(broker)).await;
    let mut cfg = TransportConfig::new("127.0.0.1", proxy.addr().port(), unique("pub"));
    cfg.reconnect.min_delay = Duration::from_millis(20);
    cfg.reconnect.max_delay = Duration::from_millis(100);
    // Longer than the whole test: a publish that is never matched shows as a hang.
    cfg.ack_timeout = Duration::from_secs(120);
    let mut publisher = Transport::start(cfg).unwrap();
    next_subscribed(&mut publisher).await;
    timeout(ROUND_TRIP, publisher.publisher.publish(&message(&topic, 0)))
        .await
        .expect("first publish in time")
        .expect("first publish acknowledged");
    assert_eq!(next_message(&mut sub).await, message(&topic, 0));

    // The broker stops answering while five publishes are on their way; then it is gone.
    proxy.pause();
    let mut stranded = Vec::new();
    for n in 1..=5 {
        stranded.push(publisher.publisher.send(&message(&topic, n)).await.unwrap());
    }
    proxy.cut();
    proxy.resume();
    for pending in stranded {
        let outcome = timeout(ROUND_TRIP, pending.acknowledged())
            .await
            .expect("a publish dropped with its connection fails at once");
        assert_eq!(outcome, Err(PublishError::ConnectionLost));
    }
    next_subscribed(&mut publisher).await;
    assert!(
        publisher
            .publisher
            .stats()
            .publishes_lost
            .load(Ordering::Relaxed)
            >= 5
    );

    // Packet ids come round several times (Receive Maximum 20 on Mosquitto, rumqttc's
    // own limit of 100 elsewhere); each publish must complete on its own PUBACK.
    for n in 6..=250 {
        timeout(ROUND_TRIP, publisher.publisher.publish(&message(&topic, n)))
            .await
            .unwrap_or_else(|_| panic!("publish {n} was never matched to its acknowledgement"))
            .unwrap_or_else(|e| panic!("publish {n} failed: {e}"));
    }
    // Nothing dropped was delivered (the proxy held it), everything later was, in order.
    for n in 6..=250 {
        assert_eq!(next_message(&mut sub).await, message(&topic, n));
    }
    publisher.shutdown(Duration::from_secs(1)).await;
    sub.shutdown(Duration::from_secs(1)).await;
}

/// Which side reaches the broker through the fault proxy (the other connects directly).
#[derive(Clone, Copy, PartialEq)]
enum Behind {
    Agent,
    Hub,
}

/// A hub, one registered cluster with its agent on a simulated cluster, and a fault
/// proxy in front of the broker for one of them.
struct Rig {
    source: String,
    cluster: String,
    dir: tempfile::TempDir,
    proxy: FaultProxy,
    /// Where the hub connects (it is restarted on the same data dir by some tests).
    hub_at: (String, u16),
    hub: Option<HubHandle>,
    changes: broadcast::Receiver<WorkChange>,
    sim: Arc<SimulatedCluster>,
    agent: AgentHandle,
}

impl Rig {
    async fn start(broker: &TestBroker, behind: Behind, ready_after: Duration) -> Rig {
        let source = unique("hub");
        let cluster = unique("edge");
        let dir = tempfile::tempdir().unwrap();
        let proxy = FaultProxy::start(broker_addr(broker)).await;
        let (direct, proxied) = (
            (broker.host(), broker.port()),
            ("127.0.0.1", proxy.addr().port()),
        );
        let (hub_at, agent_at) = match behind {
            Behind::Agent => (direct, proxied),
            Behind::Hub => (proxied, direct),
        };
        let hub_at = (hub_at.0.to_string(), hub_at.1);
        let hub = start_hub(&dir.path().join("hub"), &source, &hub_at.0, hub_at.1).await;
        let changes = hub.watch();
        assert_eq!(register_cluster(&hub, &cluster).await, 201);
        let sim = Arc::new(SimulatedCluster::new(SimConfig {
            ready_after,
            snapshot: None,
        }));
        let agent = start_agent(
            agent_config(agent_at.0, agent_at.1, &source, &cluster),
            sim.clone(),
            Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
        );
        Rig {
            source,
            cluster,
            dir,
            proxy,
            hub_at,
            hub: Some(hub),
            changes,
            sim,
            agent,
        }
    }

    fn hub(&self) -> &HubHandle {
        self.hub.as_ref().expect("the hub is running")
    }

    async fn stop_hub(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.shutdown().await;
        }
    }

    /// Starts the hub again on its data dir.
    async fn restart_hub(&mut self) {
        let dir = self.dir.path().join("hub");
        let hub = start_hub(&dir, &self.source, &self.hub_at.0, self.hub_at.1).await;
        self.changes = hub.watch();
        self.hub = Some(hub);
    }

    /// Creates or updates work `name` (one ConfigMap `cm` = `value`); returns the status.
    async fn put(&self, name: &str, cm: &str, value: &str) -> u16 {
        put_work(self.hub(), &self.cluster, name, cm, value).await
    }

    /// Waits until the hub shows `name` meeting `pred`.
    async fn wait(
        &mut self,
        name: &str,
        what: &str,
        pred: impl Fn(Option<&serde_json::Value>) -> bool,
    ) {
        let hub = self.hub.as_ref().expect("the hub is running");
        wait_work(hub, &mut self.changes, &self.cluster, name, what, pred).await;
    }

    /// Waits until the hub shows `name` applied at `generation`.
    async fn wait_applied(&mut self, name: &str, generation: i64) {
        let what = format!("{name} applied at generation {generation}");
        self.wait(name, &what, |w| applied_at(w, generation)).await;
    }

    /// The data value of ConfigMap `cm` on the simulated cluster.
    fn value_of(&self, cm: &str) -> serde_json::Value {
        self.sim
            .object("", "v1", "configmaps", "default", cm)
            .map(|o| o["data"]["v"].clone())
            .unwrap_or_default()
    }

    async fn stop(mut self) {
        self.stop_hub().await;
        self.agent.shutdown().await;
    }
}

async fn agent_keeps_converging_after_a_cut_in_flight_status(broker: &mut TestBroker) {
    // Readiness comes a while after the apply, so a second status follows the first.
    let mut rig = Rig::start(broker, Behind::Agent, Duration::from_millis(300)).await;
    let stats = rig.agent.stats().clone();

    // A Deployment with status feedback: its status changes again when it becomes
    // ready, a while after the apply — that second status is the one left in flight.
    let path = format!("/api/v1/clusters/{}/works/web", rig.cluster);
    let (code, _) = rest(rig.hub(), "PUT", &path, Some(deployment_work(&rig.cluster))).await;
    assert_eq!(code, 201);
    rig.wait_applied("web", 1).await;
    rig.proxy.pause();
    let queued = stats.status_queued.load(Ordering::Relaxed);
    let sent = stats.status_sent.load(Ordering::Relaxed);
    wait_until("the readiness status is queued", || {
        stats.status_queued.load(Ordering::Relaxed) > queued
    })
    .await;
    assert_eq!(stats.status_sent.load(Ordering::Relaxed), sent);
    rig.proxy.cut();
    rig.proxy.resume();

    // The readiness status arrives after the reconnect.
    rig.wait("web", "readiness feedback", |w| {
        w.is_some_and(|w| w.to_string().contains("ReadyReplicas"))
    })
    .await;

    // Every later generation converges in bounded time (the report: from about the
    // 19th update every status took 31–40 s, and a second work got none at all).
    assert_eq!(rig.put("app", "cm", "v1").await, 201);
    rig.wait_applied("app", 1).await;
    for generation in 2..=30 {
        assert_eq!(rig.put("app", "cm", &format!("v{generation}")).await, 200);
        rig.wait_applied("app", generation).await;
    }
    assert_eq!(rig.put("second", "cm2", "x").await, 201);
    rig.wait_applied("second", 1).await;
    assert_eq!(rig.value_of("cm"), "v30");
    rig.stop().await;
}

/// A work with one Deployment and a WellKnownStatus feedback rule on it.
fn deployment_work(cluster: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": workbus_schemas::work::ManifestWork::API_VERSION,
        "kind": "ManifestWork",
        "metadata": {"name": "web", "namespace": cluster},
        "spec": {
            "workload": {"manifests": [{
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}
                    }
                }
            }]},
            "manifestConfigs": [{
                "resourceIdentifier": {
                    "group": "apps", "resource": "deployments",
                    "name": "web", "namespace": "default"
                },
                "feedbackRules": [{"type": "WellKnownStatus"}]
            }]
        }
    })
}

async fn hub_keeps_publishing_after_a_cut_in_flight_spec(broker: &mut TestBroker) {
    let mut rig = Rig::start(broker, Behind::Hub, Duration::from_millis(50)).await;
    assert_eq!(rig.put("w0", "cm0", "v").await, 201);
    rig.wait_applied("w0", 1).await;

    // A spec event goes out while the broker does not answer; then the broker is gone.
    rig.proxy.pause();
    let written = rig.proxy.bytes_from_clients();
    assert_eq!(rig.put("w1", "cm1", "v").await, 201);
    wait_until("the hub writes the spec event", || {
        rig.proxy.bytes_from_clients() > written
    })
    .await;
    rig.proxy.cut();
    rig.proxy.resume();
    rig.wait_applied("w1", 1).await;

    // Every later spec reaches the agent in bounded time while packet ids come round.
    for n in 2..=40 {
        assert_eq!(rig.put(&format!("w{n}"), &format!("cm{n}"), "v").await, 201);
    }
    for n in 2..=40 {
        rig.wait_applied(&format!("w{n}"), 1).await;
    }
    assert_eq!(rig.value_of("cm40"), "v");
    rig.stop().await;
}

/// Found by the chaos suite: the agent reconnected and sent its spec resync request
/// while the hub was down (the broker dropped it: no subscriber); the restarted hub only
/// asks for statuses, so an update the agent had missed was never sent again.
async fn spec_resync_sent_while_the_hub_was_down_is_asked_again(broker: &mut TestBroker) {
    let mut rig = Rig::start(broker, Behind::Agent, Duration::from_millis(50)).await;
    let stats = rig.agent.stats().clone();
    assert_eq!(rig.put("app", "cm", "v1").await, 201);
    rig.wait_applied("app", 1).await;

    // The agent loses the broker (its reconnects are held); the update goes out to
    // nobody (the broker acknowledges it: no subscriber); then the hub stops.
    rig.proxy.pause();
    rig.proxy.cut();
    assert_eq!(rig.put("app", "cm", "v2").await, 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    while rig.hub().store().run(|s| s.outbox_depth()).await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "update never published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.stop_hub().await;

    // The agent comes back while the hub is away: its spec resync request is lost.
    let asked = stats.resync_requests.load(Ordering::Relaxed);
    let sent = rig
        .agent
        .transport_stats()
        .published
        .load(Ordering::Relaxed);
    rig.proxy.resume();
    wait_until("the agent asks for specs while the hub is down", || {
        stats.resync_requests.load(Ordering::Relaxed) > asked
    })
    .await;
    // Wait for the broker's PUBACK of that request, so it is surely gone.
    wait_until("the request is acknowledged by the broker", || {
        rig.agent
            .transport_stats()
            .published
            .load(Ordering::Relaxed)
            > sent
    })
    .await;

    // The hub comes back: the agent must get generation 2 without reconnecting.
    rig.restart_hub().await;
    rig.wait_applied("app", 2).await;
    assert_eq!(rig.value_of("cm"), "v2");
    rig.stop().await;
}

/// Watches a cluster's agent events topic directly on the broker: every status event the
/// agent's statuses reached the broker with, in the broker's order.
struct StatusSpy {
    transport: Transport,
    /// (resource id, sequence id) of each status received, in order.
    seen: Vec<(String, String)>,
}

impl StatusSpy {
    async fn start(broker: &TestBroker, source: &str, cluster: &str) -> StatusSpy {
        let topics = workbus_schemas::topics::Topics::for_agent(source, cluster).unwrap();
        let mut cfg = TransportConfig::new(broker.host(), broker.port(), unique("spy"));
        cfg.subscriptions = vec![topics.agent_events];
        let mut transport = Transport::start(cfg).unwrap();
        next_subscribed(&mut transport).await;
        StatusSpy {
            transport,
            seen: Vec::new(),
        }
    }

    /// Receives until `n` statuses were seen in all.
    async fn until(&mut self, n: usize) {
        while self.seen.len() < n {
            let m = next_message(&mut self.transport).await;
            let Ok(event) = workbus_schemas::mqtt::decode(&m) else {
                continue;
            };
            if let Ok(s) = workbus_schemas::metadata::decode_status_event(&event) {
                self.seen.push((s.resource_id, s.sequence_id));
            }
        }
    }

    /// Every status seen so far was new (no event twice) and, per work, newer than the
    /// one before (ascending sequence ids).
    fn assert_in_order_without_duplicates(&self) {
        let mut last: std::collections::HashMap<&str, u64> = Default::default();
        for (uid, seq) in &self.seen {
            let seq: u64 = seq.parse().expect("a snowflake id");
            if let Some(before) = last.insert(uid, seq) {
                assert!(
                    seq > before,
                    "status {seq} of {uid} after {before}: out of order or repeated ({:?})",
                    self.seen
                );
            }
        }
    }

    async fn stop(self) {
        self.transport.shutdown(Duration::from_secs(1)).await;
    }
}

/// Makes the agent produce at least `transitions` statuses while it is offline (each
/// waited for): the cluster's API server goes away and comes back in turn, which each
/// status refresh reports (`Available` Unknown, then True again); it ends reachable.
async fn transitions_while_offline(rig: &Rig, transitions: u64) {
    let stats = rig.agent.stats().clone();
    for n in 0..transitions.max(2).next_multiple_of(2) {
        let before = count(&stats.status_queued);
        if n % 2 == 0 {
            rig.sim.set_unavailable(Some("connection refused"));
        } else {
            rig.sim.set_unavailable(None);
        }
        wait_until("the agent reports the API server's state", || {
            count(&stats.status_queued) > before
        })
        .await;
    }
}

fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

async fn offline_statuses_arrive_in_order_after_the_reconnect(broker: &mut TestBroker) {
    let mut rig = Rig::start(broker, Behind::Agent, Duration::from_millis(50)).await;
    let mut spy = StatusSpy::start(broker, &rig.source, &rig.cluster).await;
    let stats = rig.agent.stats().clone();
    let metrics = rig.hub().metrics().clone();
    let accepted = || metrics.statuses_accepted.get();
    assert_eq!(rig.put("app", "cm", "v1").await, 201);
    rig.wait_applied("app", 1).await;
    wait_until("every status is delivered", || {
        count(&stats.outbox_statuses) == 0
            && count(&stats.status_sent) == count(&stats.status_queued)
    })
    .await;

    // Offline: the agent's statuses wait in its outbox, each one (no coalescing).
    rig.proxy.pause();
    rig.proxy.cut();
    let (sent, accepted_before) = (count(&stats.status_sent), accepted());
    transitions_while_offline(&rig, 4).await;
    let offline = count(&stats.status_queued) - sent;
    assert!(offline >= 4, "{offline} statuses produced offline");
    assert_eq!(count(&stats.status_sent), sent, "nothing went out offline");
    assert!(count(&stats.outbox_statuses) >= 4);
    assert_eq!(count(&stats.outbox_compacted), 0);

    // Back online: all of them arrive, in order, and the hub accepts each one.
    rig.proxy.resume();
    wait_until("the outbox drains", || {
        count(&stats.outbox_statuses) == 0
            && count(&stats.status_sent) == count(&stats.status_queued)
    })
    .await;
    wait_until("the hub accepts every offline status", || {
        accepted() >= accepted_before + offline
    })
    .await;
    spy.until(count(&stats.status_sent) as usize).await;
    spy.assert_in_order_without_duplicates();
    spy.stop().await;
    rig.stop().await;
}

async fn statuses_left_in_the_outbox_are_sent_after_a_restart(broker: &mut TestBroker) {
    let mut rig = Rig::start(broker, Behind::Agent, Duration::from_millis(50)).await;
    let mut spy = StatusSpy::start(broker, &rig.source, &rig.cluster).await;
    let stats = rig.agent.stats().clone();
    assert_eq!(rig.put("app", "cm", "v1").await, 201);
    rig.wait_applied("app", 1).await;
    wait_until("every status is delivered", || {
        count(&stats.outbox_statuses) == 0
            && count(&stats.status_sent) == count(&stats.status_queued)
    })
    .await;
    let sent_before = count(&stats.status_sent) as usize;

    // Offline statuses, then the agent dies with them in its outbox.
    rig.proxy.pause();
    rig.proxy.cut();
    transitions_while_offline(&rig, 3).await;
    let outbox_dir = rig.dir.path().join("agent/outbox");
    let left: Vec<(String, String)> = std::fs::read_dir(&outbox_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_string(),
                v["sequence_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(left.len() >= 3, "{} statuses on disk", left.len());
    let config = agent_config(
        "127.0.0.1",
        rig.proxy.addr().port(),
        &rig.source,
        &rig.cluster,
    );
    let agent = std::mem::replace(
        &mut rig.agent,
        start_agent(
            config,
            rig.sim.clone(),
            Arc::new(FileStore::open(&rig.dir.path().join("agent")).unwrap()),
        ),
    );
    agent.kill();

    // The restarted agent sends them first, exactly as they were (same sequence ids).
    rig.proxy.resume();
    spy.until(sent_before + left.len()).await;
    let after = &spy.seen[sent_before..sent_before + left.len()];
    assert_eq!(after, left, "the outbox left by the killed agent, in order");
    spy.assert_in_order_without_duplicates();
    let stats = rig.agent.stats().clone();
    wait_until("the outbox drains", || count(&stats.outbox_statuses) == 0).await;
    spy.stop().await;
    rig.stop().await;
}
