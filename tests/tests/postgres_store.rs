//! The hub on PostgreSQL end to end (issue 16): real agents on the embedded broker
//! create, update and delete works through a hub whose store is a throwaway PostgreSQL
//! database; a restarted hub finds its state; while the database cannot be reached the
//! REST API answers 503 (no panic, no lost acknowledged write) and the hub recovers by
//! itself when it comes back (the outage is a fault proxy in front of the server, which
//! refuses new connections and cuts the open ones — the shared server keeps running).
//! The audit log of such a hub verifies live, exported, and offline. Without a
//! PostgreSQL server each test prints `SKIPPED` and passes, unless
//! `WORKBUS_REQUIRE_POSTGRES=1`.

use std::sync::Arc;

use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_hub::audit::sealer::read_checked_anchor;
use workbus_hub::audit::verify::verify_store;
use workbus_hub::cli::audit::verify_file;
use workbus_hub::{BrokerSettings, StoreSettings};
use workbus_schemas::signature::VerifyingKey;
use workbus_testkit::fault_proxy::FaultProxy;
use workbus_tests::agents::start_agent;
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::{
    applied_at, delete_work, put_work, register_cluster, rest, start_hub_on, wait_work,
};
use workbus_tests::unique;

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: std::time::Duration::from_millis(100),
        snapshot: None,
    }))
}

fn plain(broker: &TestBroker) -> BrokerSettings {
    BrokerSettings::Address {
        host: broker.host().to_string(),
        port: broker.port(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_round_trip_and_survive_a_hub_restart_on_postgres() {
    let Some(db) = workbus_testkit::postgres_or_skip("hub on PostgreSQL round trip") else {
        return;
    };
    let broker = TestBroker::embedded().await;
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = tempfile::tempdir().unwrap();
    let store = StoreSettings::postgres(db.url(), dir.path().join("hub"));
    let hub = start_hub_on(store.clone(), &source, plain(&broker)).await;
    let mut changes = hub.watch();
    let sim = sim();
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &dir.path().join("hub")),
        sim.clone(),
        Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
    );
    assert_eq!(register_cluster(&hub, &cluster).await, 201);

    // Create, update, delete: each reaches the agent and its status the hub.
    for (value, generation) in [("v1", 1), ("v2", 2)] {
        let code = put_work(&hub, &cluster, "app", "app-config", value).await;
        assert!(code == 200 || code == 201, "put answered {code}");
        wait_work(&hub, &mut changes, &cluster, "app", "applied", |w| {
            applied_at(w, generation)
        })
        .await;
        assert_eq!(
            sim.object("", "v1", "configmaps", "default", "app-config")
                .unwrap()["data"]["v"],
            value
        );
    }
    assert!(put_work(&hub, &cluster, "keep", "keep-config", "k1").await < 300);
    wait_work(&hub, &mut changes, &cluster, "keep", "keep applied", |w| {
        applied_at(w, 1)
    })
    .await;
    assert_eq!(delete_work(&hub, &cluster, "app").await, 202);
    wait_work(&hub, &mut changes, &cluster, "app", "app gone", |w| {
        w.is_none()
    })
    .await;
    assert!(
        sim.object("", "v1", "configmaps", "default", "app-config")
            .is_none()
    );

    // A new hub on the same database: the work and its status are there, and it
    // publishes the next change.
    hub.shutdown().await;
    let hub = start_hub_on(store, &source, plain(&broker)).await;
    let mut changes = hub.watch();
    let (code, work) = rest(
        &hub,
        "GET",
        &format!("/api/v1/clusters/{cluster}/works/keep"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{work}");
    assert!(applied_at(Some(&work), 1), "status kept: {work}");
    let (code, _) = rest(
        &hub,
        "GET",
        &format!("/api/v1/clusters/{cluster}/works/app"),
        None,
    )
    .await;
    assert_eq!(code, 404, "the deleted work stays deleted");
    assert!(put_work(&hub, &cluster, "keep", "keep-config", "k2").await < 300);
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "keep",
        "keep applied again",
        |w| applied_at(w, 2),
    )
    .await;
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "keep-config")
            .unwrap()["data"]["v"],
        "k2"
    );

    agent.shutdown().await;
    hub.shutdown().await;
    broker.stop().await;
}

/// The audit log of a hub on PostgreSQL (issue 15 on issue 16): the API change and the
/// work's events are chained with their actor, `audit verify` passes live and after a
/// restart on the same database, an export verifies with the public key alone, and once
/// the hub stopped (its last record a checkpoint) the database verifies offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_of_a_hub_on_postgres_verifies() {
    let Some(db) = workbus_testkit::postgres_or_skip("audit on PostgreSQL") else {
        return;
    };
    let broker = TestBroker::embedded().await;
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("hub");
    let store = StoreSettings::postgres(db.url(), &data_dir);
    let hub = start_hub_on(store.clone(), &source, plain(&broker)).await;
    let mut changes = hub.watch();
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &data_dir),
        sim(),
        Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
    );
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    assert!(put_work(&hub, &cluster, "app", "app-config", "v1").await < 300);
    wait_work(&hub, &mut changes, &cluster, "app", "applied", |w| {
        applied_at(w, 1)
    })
    .await;
    hub.shutdown().await;

    // A new hub on the same database continues the chain; it verifies live.
    let hub = start_hub_on(store.clone(), &source, plain(&broker)).await;
    let (code, log) = rest(
        &hub,
        "GET",
        &format!("/api/v1/audit/log?cluster={cluster}&direction=api"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{log}");
    assert_eq!(
        log["items"][0]["eventType"], "io.workbus.api.cluster.create",
        "{log}"
    );
    assert!(log["items"][0]["actor"].is_string(), "{log}");
    let (_, sent) = rest(
        &hub,
        "GET",
        &format!("/api/v1/audit/log?cluster={cluster}&direction=sent"),
        None,
    )
    .await;
    assert!(
        !sent["items"].as_array().unwrap().is_empty(),
        "the work's spec event is a sent record: {sent}"
    );
    let (code, report) = rest(&hub, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(code, 200);
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        report["checkpoints"].as_u64().unwrap() >= 1,
        "the first hub sealed the log at shutdown: {report}"
    );
    let (_, key) = rest(&hub, "GET", "/api/v1/audit/public-key", None).await;
    let key = VerifyingKey::parse(key["publicKey"].as_str().unwrap()).unwrap();
    let client = hub.client();
    let file = dir.path().join("export.jsonl");
    let out = file.clone();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::create(&out).unwrap();
        client.get_to("/api/v1/audit/export", &mut f).unwrap();
    })
    .await
    .unwrap();
    let report = verify_file(&file, key.clone()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.unsigned_tail, 0, "{report:?}");

    // Stopped: the database verifies offline against the anchor in the data directory.
    agent.shutdown().await;
    hub.shutdown().await;
    let report = tokio::task::spawn_blocking(move || {
        let s = workbus_hub::store::open(&store).unwrap();
        let anchor = read_checked_anchor(&data_dir, &key).unwrap();
        assert!(anchor.is_some(), "the hub wrote its audit.head");
        verify_store(s.as_ref(), Some(key), None, None, anchor).unwrap()
    })
    .await
    .unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.unsigned_tail, 0, "{report:?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_loses_nothing() {
    let Some(db) = workbus_testkit::postgres_or_skip("PostgreSQL outage") else {
        return;
    };
    let proxy = FaultProxy::start(db.server_addr()).await;
    let broker = TestBroker::embedded().await;
    let source = broker.source_id();
    let cluster = unique("edge");
    let dir = tempfile::tempdir().unwrap();
    let store = StoreSettings::postgres(db.url_via(proxy.addr()), dir.path().join("hub"));
    let hub = start_hub_on(store, &source, plain(&broker)).await;
    let mut changes = hub.watch();
    let agent = start_agent(
        broker.agent_config(&source, &cluster, &dir.path().join("hub")),
        sim(),
        Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
    );
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    assert!(put_work(&hub, &cluster, "app", "app-config", "v1").await < 300);
    wait_work(&hub, &mut changes, &cluster, "app", "applied", |w| {
        applied_at(w, 1)
    })
    .await;

    // The server goes away: reads and writes answer 503, naming the server.
    proxy.refuse(true);
    proxy.cut();
    let path = format!("/api/v1/clusters/{cluster}/works/app");
    let (code, body) = rest(&hub, "GET", &path, None).await;
    assert_eq!(code, 503, "read during the outage: {body}");
    assert!(
        body.to_string().contains(&proxy.addr().port().to_string()),
        "the error names the server: {body}"
    );
    let code = put_work(&hub, &cluster, "app", "app-config", "v2").await;
    assert_eq!(code, 503, "write during the outage");

    // Back: the hub reconnects by itself; what was acknowledged is there, and changes
    // flow again.
    proxy.refuse(false);
    let deadline = tokio::time::Instant::now() + workbus_tests::WAIT;
    loop {
        let (code, work) = rest(&hub, "GET", &path, None).await;
        if code == 200 {
            assert!(applied_at(Some(&work), 1), "{work}");
            break;
        }
        assert_eq!(code, 503, "{work}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(put_work(&hub, &cluster, "app", "app-config", "v2").await < 300);
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "app",
        "applied after the outage",
        |w| applied_at(w, 2),
    )
    .await;

    agent.shutdown().await;
    hub.shutdown().await;
    broker.stop().await;
}
