//! Publishing across connection losses (issue 9, bug 1): a publish in flight when the
//! broker stops answering and the connection is then cut must fail at once with
//! `ConnectionLost`, and every later publish must be matched to its own acknowledgement
//! — before the fix, packet ids coming round after the reconnect credited PUBACKs to
//! dropped messages and the agent's publish queue stalled for good.
//!
//! Also a request lost the same way: an agent's spec resync request sent while its hub
//! was down (found by the chaos suite) is asked again when the hub comes back.
//!
//! The faults come from a [`FaultProxy`] between the client and a real broker (the
//! embedded one, and Mosquitto, whose Receive Maximum of 20 makes packet ids come round
//! quickly). Pausing the proxy is what a SIGSTOPped broker looks like to a client;
//! cutting it is the broker's restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::timeout;
use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
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

async fn agent_keeps_converging_after_a_cut_in_flight_status(broker: &mut TestBroker) {
    let source = unique("hub");
    let cluster = unique("edge");
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(
        &dir.path().join("hub"),
        &source,
        broker.host(),
        broker.port(),
    )
    .await;
    let mut changes = hub.watch();
    assert_eq!(register_cluster(&hub, &cluster).await, 201);

    // The agent reaches the broker through the proxy; the hub directly.
    let proxy = FaultProxy::start(broker_addr(broker)).await;
    // Readiness comes a while after the apply, so a second status follows the first.
    let sim = Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: Duration::from_millis(300),
        snapshot: None,
    }));
    let agent = start_agent(
        agent_config("127.0.0.1", proxy.addr().port(), &source, &cluster),
        sim.clone(),
        Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
    );
    let stats = agent.stats().clone();

    // A Deployment with status feedback: its status changes again when it becomes
    // ready, a while after the apply — that second status is the one left in flight.
    let path = format!("/api/v1/clusters/{cluster}/works/web");
    let (code, _) = rest(&hub, "PUT", &path, Some(deployment_work(&cluster))).await;
    assert_eq!(code, 201);
    wait_work(&hub, &mut changes, &cluster, "web", "applied gen 1", |w| {
        applied_at(w, 1)
    })
    .await;
    proxy.pause();
    let queued = stats.status_queued.load(Ordering::Relaxed);
    let sent = stats.status_sent.load(Ordering::Relaxed);
    wait_until("the readiness status is queued", || {
        stats.status_queued.load(Ordering::Relaxed) > queued
    })
    .await;
    assert_eq!(stats.status_sent.load(Ordering::Relaxed), sent);
    proxy.cut();
    proxy.resume();

    // The readiness status arrives after the reconnect.
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "web",
        "readiness feedback",
        |w| w.is_some_and(|w| w.to_string().contains("ReadyReplicas")),
    )
    .await;

    // Every later generation converges in bounded time (the report: from about the
    // 19th update every status took 31–40 s, and a second work got none at all).
    assert_eq!(put_work(&hub, &cluster, "app", "cm", "v1").await, 201);
    for generation in 1..=30 {
        if generation > 1 {
            let value = format!("v{generation}");
            assert_eq!(put_work(&hub, &cluster, "app", "cm", &value).await, 200);
        }
        wait_work(
            &hub,
            &mut changes,
            &cluster,
            "app",
            &format!("applied gen {generation}"),
            |w| applied_at(w, generation),
        )
        .await;
    }
    assert_eq!(put_work(&hub, &cluster, "second", "cm2", "x").await, 201);
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "second",
        "second work applied",
        |w| applied_at(w, 1),
    )
    .await;
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "cm").unwrap()["data"]["v"],
        "v30"
    );
    agent.shutdown().await;
    hub.shutdown().await;
}

/// A work with one Deployment and a WellKnownStatus feedback rule on it.
fn deployment_work(cluster: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "work.open-cluster-management.io/v1",
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
    let source = unique("hub");
    let cluster = unique("edge");
    let dir = tempfile::tempdir().unwrap();
    // The hub reaches the broker through the proxy; the agent directly.
    let proxy = FaultProxy::start(broker_addr(broker)).await;
    let hub = start_hub(
        &dir.path().join("hub"),
        &source,
        "127.0.0.1",
        proxy.addr().port(),
    )
    .await;
    let mut changes = hub.watch();
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    let sim = Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: Duration::from_millis(50),
        snapshot: None,
    }));
    let agent = start_agent(
        agent_config(broker.host(), broker.port(), &source, &cluster),
        sim.clone(),
        Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
    );
    assert_eq!(put_work(&hub, &cluster, "w0", "cm0", "v").await, 201);
    wait_work(&hub, &mut changes, &cluster, "w0", "w0 applied", |w| {
        applied_at(w, 1)
    })
    .await;

    // A spec event goes out while the broker does not answer; then the broker is gone.
    proxy.pause();
    let written = proxy.bytes_from_clients();
    assert_eq!(put_work(&hub, &cluster, "w1", "cm1", "v").await, 201);
    wait_until("the hub writes the spec event", || {
        proxy.bytes_from_clients() > written
    })
    .await;
    proxy.cut();
    proxy.resume();
    wait_work(&hub, &mut changes, &cluster, "w1", "w1 applied", |w| {
        applied_at(w, 1)
    })
    .await;

    // Every later spec reaches the agent in bounded time while packet ids come round.
    for n in 2..=40 {
        let name = format!("w{n}");
        assert_eq!(
            put_work(&hub, &cluster, &name, &format!("cm{n}"), "v").await,
            201
        );
    }
    for n in 2..=40 {
        let name = format!("w{n}");
        wait_work(
            &hub,
            &mut changes,
            &cluster,
            &name,
            &format!("{name} applied"),
            |w| applied_at(w, 1),
        )
        .await;
    }
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "cm40")
            .unwrap()["data"]["v"],
        "v"
    );
    agent.shutdown().await;
    hub.shutdown().await;
}

/// Found by the chaos suite: the agent reconnected and sent its spec resync request
/// while the hub was down (the broker dropped it: no subscriber); the restarted hub only
/// asks for statuses, so an update the agent had missed was never sent again.
async fn spec_resync_sent_while_the_hub_was_down_is_asked_again(broker: &mut TestBroker) {
    let source = unique("hub");
    let cluster = unique("edge");
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let hub = start_hub(&hub_dir, &source, broker.host(), broker.port()).await;
    let mut changes = hub.watch();
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    let proxy = FaultProxy::start(broker_addr(broker)).await;
    let sim = Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: Duration::from_millis(50),
        snapshot: None,
    }));
    let agent = start_agent(
        agent_config("127.0.0.1", proxy.addr().port(), &source, &cluster),
        sim.clone(),
        Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
    );
    let stats = agent.stats().clone();
    assert_eq!(put_work(&hub, &cluster, "app", "cm", "v1").await, 201);
    wait_work(&hub, &mut changes, &cluster, "app", "applied gen 1", |w| {
        applied_at(w, 1)
    })
    .await;

    // The agent loses the broker (its reconnects are held); the update goes out to
    // nobody; then the hub stops.
    proxy.pause();
    proxy.cut();
    assert_eq!(put_work(&hub, &cluster, "app", "cm", "v2").await, 200);
    // Published (the broker acknowledged it, to no subscriber) before the hub stops.
    let deadline = tokio::time::Instant::now() + WAIT;
    while hub.store().run(|s| s.outbox_depth()).await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "update never published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.shutdown().await;

    // The agent comes back while the hub is away: its spec resync request is lost.
    let asked = stats.resync_requests.load(Ordering::Relaxed);
    let sent = agent.transport_stats().published.load(Ordering::Relaxed);
    proxy.resume();
    wait_until("the agent asks for specs while the hub is down", || {
        stats.resync_requests.load(Ordering::Relaxed) > asked
    })
    .await;
    // Wait for the broker's PUBACK of that request, so it is surely gone.
    wait_until("the request is acknowledged by the broker", || {
        agent.transport_stats().published.load(Ordering::Relaxed) > sent
    })
    .await;

    // The hub comes back: the agent must get generation 2 without reconnecting.
    let hub = start_hub(&hub_dir, &source, broker.host(), broker.port()).await;
    let mut changes = hub.watch();
    wait_work(&hub, &mut changes, &cluster, "app", "applied gen 2", |w| {
        applied_at(w, 2)
    })
    .await;
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "cm").unwrap()["data"]["v"],
        "v2"
    );
    agent.shutdown().await;
    hub.shutdown().await;
}
