//! The whole product end to end: REST call → hub store → outbox → MQTT → agent →
//! simulated cluster → status event → hub → REST, on the embedded broker and on
//! Mosquitto, including the faults the vertical slice must survive: an agent offline
//! while its works change, an agent killed and restarted, a hub stopped between commit
//! and publish, a broker restarted mid-stream. The suite runs once more secured, as the
//! product runs by default (`on_secured_brokers!`): mutual TLS with certificates from
//! the hub's CA, topic ACLs (the embedded broker's fleet ACL; Mosquitto configured as
//! `deploy/mosquitto/` documents) and agents that apply only spec events the hub signed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use workbus_agent::store::FileStore;
use workbus_agent::target::sim::SimulatedCluster;
use workbus_tests::agents::start_agent;
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::{
    applied_at, condition, delete_work, put_work, register_cluster, rest, wait_work,
};
use workbus_tests::{unique, wait_until};

workbus_tests::on_both_brokers!(
    create_update_delete_round_trip,
    offline_agent_converges_after_reconnect,
    hub_stopped_before_publishing_delivers_after_restart,
    broker_restart_mid_stream_converges,
    unchanged_agent_resyncs_with_one_digest_round_trip,
    changed_works_fall_back_from_digest_and_converge,
    dead_cluster_is_removed_and_cleaned_up_when_it_returns,
);

// The same suite as the product runs by default: mutual TLS, fleet ACL, signed specs.
workbus_tests::on_secured_brokers!(
    create_update_delete_round_trip,
    offline_agent_converges_after_reconnect,
    hub_stopped_before_publishing_delivers_after_restart,
    broker_restart_mid_stream_converges,
    unchanged_agent_resyncs_with_one_digest_round_trip,
    changed_works_fall_back_from_digest_and_converge,
);

/// Status resync with an empty list towards an agent that advertised digests. Needs a
/// broker that can cut the hub's connection, so embedded only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_resync_to_advertising_agent_carries_no_list() {
    let mut broker = TestBroker::embedded().await;
    status_resync_digest_only(&mut broker).await;
    broker.stop().await;
}

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(SimulatedCluster::new(
        workbus_agent::target::sim::SimConfig {
            ready_after: std::time::Duration::from_millis(100),
            snapshot: None,
        },
    ))
}

async fn create_update_delete_round_trip(broker: &mut TestBroker) {
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = std::env::temp_dir().join(unique("e2e"));
    let hub = broker.start_hub(&dir.join("hub"), &source).await;
    let mut changes = hub.watch();
    let sim = sim();
    let config = broker.agent_config(&source, &cluster, &dir.join("hub"));
    // Secured: a client certificate, and only spec events signed by this hub applied.
    let secured = broker.secure().is_some();
    assert_eq!(config.transport.tls.is_some(), secured);
    assert_eq!(config.spec_signing_key.is_some(), secured);
    let agent = start_agent(
        config,
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    assert_eq!(register_cluster(&hub, &cluster).await, 201);

    // Create → applied status back at the hub.
    let code = put_work(&hub, &cluster, "app", "app-config", "v1").await;
    assert!(code == 200 || code == 201, "create answered {code}");
    let work = wait_work(
        &hub,
        &mut changes,
        &cluster,
        "app",
        "applied generation 1",
        |w| applied_at(w, 1),
    )
    .await
    .unwrap();
    assert_eq!(work["metadata"]["generation"], 1);
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "app-config")
            .unwrap()["data"]["v"],
        "v1"
    );

    // Update → new generation applied, new status.
    put_work(&hub, &cluster, "app", "app-config", "v2").await;
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "app",
        "applied generation 2",
        |w| applied_at(w, 2),
    )
    .await;
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "app-config")
            .unwrap()["data"]["v"],
        "v2"
    );

    // Delete → Deleted from the agent → the work is gone, and so is its object.
    let code = delete_work(&hub, &cluster, "app").await;
    assert_eq!(code, 202);
    wait_work(&hub, &mut changes, &cluster, "app", "the work gone", |w| {
        w.is_none()
    })
    .await;
    assert!(
        sim.object("", "v1", "configmaps", "default", "app-config")
            .is_none()
    );
    assert_eq!(
        count(&agent.stats().unverified),
        0,
        "every spec event verified"
    );

    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn offline_agent_converges_after_reconnect(broker: &mut TestBroker) {
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = std::env::temp_dir().join(unique("e2e"));
    let hub = broker.start_hub(&dir.join("hub"), &source).await;
    let mut changes = hub.watch();
    let sim = sim();
    let config = broker.agent_config(&source, &cluster, &dir.join("hub"));
    let agent = start_agent(
        config.clone(),
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    register_cluster(&hub, &cluster).await;
    put_work(&hub, &cluster, "keep", "keep-cm", "1").await;
    put_work(&hub, &cluster, "gone", "gone-cm", "1").await;
    wait_work(&hub, &mut changes, &cluster, "keep", "keep applied", |w| {
        applied_at(w, 1)
    })
    .await;
    wait_work(&hub, &mut changes, &cluster, "gone", "gone applied", |w| {
        applied_at(w, 1)
    })
    .await;

    // The agent goes away (killed: no graceful disconnect) while one work is updated
    // and the other deleted; both changes are published to nobody.
    agent.kill();
    put_work(&hub, &cluster, "keep", "keep-cm", "2").await;
    delete_work(&hub, &cluster, "gone").await;
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "keep",
        "update committed",
        |w| w.is_some_and(|w| w["metadata"]["generation"] == 2),
    )
    .await;

    // Back online with its store: its resync request brings both changes.
    let agent = start_agent(
        config,
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "keep",
        "keep at generation 2",
        |w| applied_at(w, 2),
    )
    .await;
    wait_work(&hub, &mut changes, &cluster, "gone", "gone deleted", |w| {
        w.is_none()
    })
    .await;
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "keep-cm")
            .unwrap()["data"]["v"],
        "2"
    );
    assert!(
        sim.object("", "v1", "configmaps", "default", "gone-cm")
            .is_none()
    );
    // Only the new generation was applied again (no blind re-apply after the restart).
    assert_eq!(
        sim.apply_count("", "v1", "configmaps", "default", "keep-cm"),
        2
    );

    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn hub_stopped_before_publishing_delivers_after_restart(broker: &mut TestBroker) {
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = std::env::temp_dir().join(unique("e2e"));
    let sim = sim();
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &dir.join("hub")),
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    // A hub that cannot reach any broker: the change is committed (outbox) but cannot
    // be published. Port 1 on loopback refuses connections.
    let cut_off = broker
        .start_hub_at(&dir.join("hub"), &source, "127.0.0.1", 1)
        .await;
    register_cluster(&cut_off, &cluster).await;
    let code = put_work(&cut_off, &cluster, "durable", "durable-cm", "1").await;
    assert!(code == 200 || code == 201);
    cut_off.shutdown().await;
    assert!(sim.is_empty(), "nothing can have been delivered yet");

    // Restarted on the same database with the broker reachable: the change arrives.
    let hub = broker.start_hub(&dir.join("hub"), &source).await;
    let mut changes = hub.watch();
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "durable",
        "delivered after restart",
        |w| applied_at(w, 1),
    )
    .await;
    assert!(
        sim.object("", "v1", "configmaps", "default", "durable-cm")
            .is_some()
    );
    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn broker_restart_mid_stream_converges(broker: &mut TestBroker) {
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = std::env::temp_dir().join(unique("e2e"));
    let hub = broker.start_hub(&dir.join("hub"), &source).await;
    let mut changes = hub.watch();
    let sim = sim();
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &dir.join("hub")),
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    register_cluster(&hub, &cluster).await;
    put_work(&hub, &cluster, "steady", "steady-cm", "1").await;
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "steady",
        "applied before the restart",
        |w| applied_at(w, 1),
    )
    .await;

    // The broker goes down; changes keep being accepted meanwhile.
    broker.halt().await;
    put_work(&hub, &cluster, "steady", "steady-cm", "2").await;
    put_work(&hub, &cluster, "late", "late-cm", "1").await;
    broker.resume().await;

    // Everyone reconnects, resyncs, and converges.
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "steady",
        "generation 2 after the restart",
        |w| applied_at(w, 2),
    )
    .await;
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "late",
        "new work after the restart",
        |w| applied_at(w, 1),
    )
    .await;
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "steady-cm")
            .unwrap()["data"]["v"],
        "2"
    );
    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Hub, registered cluster, agent on a `FileStore` in `dir/agent`, `works` applied, and
/// the agent's first resync completed (upstream form with its digest → "done" reply, so
/// it now knows the hub understands digests).
async fn digest_setup(
    broker: &TestBroker,
    works: &[&str],
) -> (
    String,
    String,
    std::path::PathBuf,
    workbus_hub::HubHandle,
    tokio::sync::broadcast::Receiver<workbus_hub::watch::WorkChange>,
    Arc<SimulatedCluster>,
    workbus_agent::runtime::AgentHandle,
) {
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = std::env::temp_dir().join(unique("e2e"));
    let hub = broker.start_hub(&dir.join("hub"), &source).await;
    let mut changes = hub.watch();
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    let sim = sim();
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &dir.join("hub")),
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    for w in works {
        put_work(&hub, &cluster, w, &format!("{w}-cm"), "1").await;
    }
    // Applied and Available: the last status the simulated cluster produces, so the
    // hub's stored status hashes are final.
    for w in works {
        wait_work(
            &hub,
            &mut changes,
            &cluster,
            w,
            "applied and available",
            |x| {
                applied_at(x, 1)
                    && x.and_then(|x| condition(x, "Available"))
                        .is_some_and(|c| c["status"] == "True")
            },
        )
        .await;
    }
    let stats = agent.stats().clone();
    wait_until("the first resync's done reply", || {
        count(&stats.spec_resyncs_done) >= 1
    })
    .await;
    assert_eq!(
        count(&stats.digest_requests),
        0,
        "not known before the reply"
    );
    (source, cluster, dir, hub, changes, sim, agent)
}

async fn unchanged_agent_resyncs_with_one_digest_round_trip(broker: &mut TestBroker) {
    let (source, cluster, dir, hub, _changes, sim, agent) =
        digest_setup(broker, &["a", "b", "c"]).await;
    let answered = hub.metrics().spec_resyncs_answered.get();
    // Restarted with its store: it remembers that the hub understands digests.
    agent.shutdown().await;
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &dir.join("hub")),
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    let (stats, transport) = (agent.stats().clone(), agent.transport_stats().clone());
    wait_until("the in-sync reply", || {
        count(&stats.spec_resyncs_in_sync) == 1
    })
    .await;
    // One request (digest form), one reply, no per-work answer before it (answers are
    // queued before the reply, so they would have arrived first).
    assert_eq!(count(&stats.resync_requests), 1);
    assert_eq!(count(&stats.digest_requests), 1);
    assert_eq!(count(&stats.spec_resync_fallbacks), 0);
    assert_eq!(count(&transport.received), 1, "only the reply");
    assert_eq!(count(&stats.applied) + count(&stats.duplicates), 0);
    assert_eq!(hub.metrics().spec_resyncs_answered.get(), answered + 1);
    assert_eq!(
        sim.apply_count("", "v1", "configmaps", "default", "a-cm"),
        1
    );
    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn changed_works_fall_back_from_digest_and_converge(broker: &mut TestBroker) {
    let (source, cluster, dir, hub, mut changes, sim, agent) =
        digest_setup(broker, &["keep", "gone"]).await;
    // Changes made while the agent is away are published to nobody.
    agent.kill();
    put_work(&hub, &cluster, "keep", "keep-cm", "2").await;
    put_work(&hub, &cluster, "new", "new-cm", "1").await;
    delete_work(&hub, &cluster, "gone").await;
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &dir.join("hub")),
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    for (w, g) in [("keep", 2), ("new", 1)] {
        wait_work(&hub, &mut changes, &cluster, w, "converged", |x| {
            applied_at(x, g)
        })
        .await;
    }
    wait_work(&hub, &mut changes, &cluster, "gone", "gone deleted", |w| {
        w.is_none()
    })
    .await;
    let stats = agent.stats().clone();
    wait_until("the fallback's done reply", || {
        count(&stats.spec_resyncs_done) == 1
    })
    .await;
    // Digest request → "full" → upstream request → answers + "done".
    assert_eq!(count(&stats.digest_requests), 1);
    assert_eq!(count(&stats.spec_resync_fallbacks), 1);
    assert_eq!(count(&stats.resync_requests), 2);
    assert_eq!(count(&stats.spec_resyncs_in_sync), 0);
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "keep-cm")
            .unwrap()["data"]["v"],
        "2"
    );
    assert!(
        sim.object("", "v1", "configmaps", "default", "gone-cm")
            .is_none()
    );
    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn status_resync_digest_only(broker: &mut TestBroker) {
    use workbus_schemas::event_type::{Action, SubResource};
    use workbus_schemas::resync::StatusResyncRequest;
    use workbus_transport::{Transport, TransportConfig, TransportEvent};

    let (source, cluster, dir, hub, _changes, _sim, agent) =
        digest_setup(broker, &["a", "b"]).await;
    // A plain MQTT observer of what the hub sends to this cluster.
    let mut cfg = TransportConfig::new(broker.host(), broker.port(), unique("observer"));
    cfg.subscriptions = vec![format!("sources/{source}/consumers/{cluster}/sourceevents")];
    let mut observer = Transport::start(cfg).unwrap();
    loop {
        match tokio::time::timeout(workbus_tests::WAIT, observer.events.recv()).await {
            Ok(Some(TransportEvent::Subscribed)) => break,
            Ok(Some(_)) => {}
            other => panic!("observer could not subscribe: {other:?}"),
        }
    }
    let stats = agent.stats().clone();
    // The hub accepts a status before the agent may have counted its PUBACK: wait for
    // the acknowledgements of every accepted status, or one counts after `sent_before`.
    let metrics = hub.metrics().clone();
    wait_until("the agent's accepted statuses acknowledged", || {
        count(&stats.status_sent) >= metrics.statuses_accepted.get()
    })
    .await;
    let sent_before = count(&stats.status_sent);
    // The hub may already have sent one at its first subscribe (full list then).
    let resyncs_before = count(&stats.status_resyncs);
    let unchanged_before = count(&stats.status_resyncs_unchanged);
    // Cut only the hub: its resubscribe sends a status resync request to every cluster.
    let prefix = format!("{source}-hub-");
    assert_eq!(broker.drop_clients(|id| id.starts_with(&prefix)), 1);
    let request = loop {
        let Ok(Some(ev)) = tokio::time::timeout(workbus_tests::WAIT, observer.events.recv()).await
        else {
            panic!("no status resync request");
        };
        if let TransportEvent::Message(m) = ev
            && let Ok(e) = workbus_schemas::mqtt::decode(&m)
            && let Ok(ty) = workbus_schemas::envelope::decode_event_type(&e)
            && ty.sub_resource == SubResource::Status
            && ty.action == Action::ResyncRequest
        {
            break e;
        }
    };
    let payload: StatusResyncRequest =
        serde_json::from_value(workbus_schemas::envelope::json_data(&request).unwrap()).unwrap();
    assert!(payload.status_hashes.is_empty(), "no per-work list");
    assert!(workbus_schemas::resync_digest::digest_of(&request).is_some());
    // The agent's statuses match the digest: it answers nothing.
    wait_until("the agent's digest comparison", || {
        count(&stats.status_resyncs_unchanged) == unchanged_before + 1
    })
    .await;
    assert_eq!(count(&stats.status_resyncs), resyncs_before + 1);
    assert_eq!(count(&stats.status_sent), sent_before);
    observer.abort();
    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17, "recovering from dead clusters": a cluster whose agent is gone for good.
/// Its deletions stay pending (the agent cannot confirm) and block removing the
/// cluster, until `delete --force` / `delete cluster --cascade --force` remove them on
/// the hub alone. When the device comes back after all (same local state, its cluster
/// registered again), its resync cleans it up: nothing the hub no longer holds stays
/// applied.
async fn dead_cluster_is_removed_and_cleaned_up_when_it_returns(broker: &mut TestBroker) {
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = std::env::temp_dir().join(unique("e2e"));
    let hub = broker.start_hub(&dir.join("hub"), &source).await;
    let mut changes = hub.watch();
    let sim = sim();
    let config = broker.agent_config(&source, &cluster, &dir.join("hub"));
    let agent = start_agent(
        config.clone(),
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    register_cluster(&hub, &cluster).await;
    for name in ["one", "two", "three"] {
        put_work(&hub, &cluster, name, &format!("{name}-cm"), "1").await;
    }
    for name in ["one", "two", "three"] {
        wait_work(&hub, &mut changes, &cluster, name, "applied", |w| {
            applied_at(w, 1)
        })
        .await;
    }

    // The device dies. Deleting a work now waits forever for its confirmation…
    agent.kill();
    assert_eq!(delete_work(&hub, &cluster, "one").await, 202);
    let works = format!("/api/v1/clusters/{cluster}/works");
    let (code, one) = rest(&hub, "GET", &format!("{works}/one"), None).await;
    assert_eq!(code, 200);
    assert!(one["metadata"]["deletionTimestamp"].is_string());
    // …and the cluster cannot go while it has works.
    let cluster_path = format!("/api/v1/clusters/{cluster}");
    assert_eq!(rest(&hub, "DELETE", &cluster_path, None).await.0, 409);
    let (code, body) = rest(&hub, "DELETE", &format!("{cluster_path}?force=true"), None).await;
    assert_eq!(code, 400, "force alone is refused: {body}");

    // Forced: the work leaves the hub at once.
    let (code, removed) = rest(&hub, "DELETE", &format!("{works}/one?force=true"), None).await;
    assert_eq!(code, 200, "{removed}");
    assert_eq!(removed["metadata"]["name"], "one");
    assert_eq!(
        rest(&hub, "GET", &format!("{works}/one"), None).await.0,
        404
    );

    // Cascade without force: the rest are marked deleting, the cluster waits for them.
    let (code, body) = rest(
        &hub,
        "DELETE",
        &format!("{cluster_path}?cascade=true"),
        None,
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["remainingWorks"], 2);
    let (_, two) = rest(&hub, "GET", &format!("{works}/two"), None).await;
    assert!(two["metadata"]["deletionTimestamp"].is_string());
    // Cascade with force: the cluster and its works go now.
    let forced = format!("{cluster_path}?cascade=true&force=true");
    assert_eq!(rest(&hub, "DELETE", &forced, None).await.0, 204);
    assert_eq!(rest(&hub, "GET", &cluster_path, None).await.0, 404);
    for name in ["two", "three"] {
        assert_eq!(
            rest(&hub, "GET", &format!("{works}/{name}"), None).await.0,
            404
        );
    }
    // The objects are still on the (dead) device.
    for name in ["one", "two", "three"] {
        let cm = format!("{name}-cm");
        assert!(sim.object("", "v1", "configmaps", "default", &cm).is_some());
    }

    // The device returns with its old state; the operator registers the name again.
    register_cluster(&hub, &cluster).await;
    let agent = start_agent(
        config,
        sim.clone(),
        Arc::new(FileStore::open(&dir.join("agent")).unwrap()),
    );
    wait_until(
        "the returning agent removed every object the hub no longer holds",
        || {
            ["one", "two", "three"].iter().all(|name| {
                let cm = format!("{name}-cm");
                sim.object("", "v1", "configmaps", "default", &cm).is_none()
            })
        },
    )
    .await;
    // Nothing came back to the hub: it holds no work of the cluster.
    let (code, list) = rest(
        &hub,
        "GET",
        &format!("/api/v1/works?cluster={cluster}"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");

    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
