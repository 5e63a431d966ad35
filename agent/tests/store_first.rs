//! The agent stores a work before applying it, and does not apply one it could not
//! store (issue 12: a work with a 10 KB uid was applied but never saved, so after a
//! restart it could be neither reported nor cleaned up). And the agent's data on disk
//! is private: directories 0700, files 0600 (the simulated cluster's snapshot too).
//!
//! Spec events come over the machine's Mosquitto (`workbus-testkit`), published as the
//! hub would.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use workbus_agent::config::AgentConfig;
use workbus_agent::runtime;
use workbus_agent::store::{AgentStore, FileStore};
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_schemas::envelope::SpecEventFields;
use workbus_schemas::event_type::{Action, EventType};
use workbus_schemas::mqtt::{self, Encoding};
use workbus_schemas::topics::{self, Topics};
use workbus_transport::{Transport, TransportConfig};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn spec_event(source: &str, cluster: &str, uid: &str, cm: &str) -> workbus_schemas::Event {
    let mut metadata = serde_json::Map::new();
    metadata.insert("uid".into(), json!(uid));
    metadata.insert("name".into(), json!(cm));
    metadata.insert("namespace".into(), json!(cluster));
    metadata.insert("generation".into(), json!(1));
    SpecEventFields {
        source_id: source.into(),
        action: Action::CreateRequest,
        cluster_name: cluster.into(),
        resource_id: uid.into(),
        generation: 1,
        metadata: Some(metadata),
        bundle: Some(
            json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": cm, "namespace": "default"}, "data": {"k": "v"}}]}),
        ),
        deletion_timestamp: None,
        log_tracing: Some(Default::default()),
    }
    .build(Utc::now())
    .unwrap()
}

#[tokio::test]
async fn a_work_that_cannot_be_stored_is_not_applied() {
    let m = workbus_testkit::mosquitto();
    let source = workbus_testkit::unique("storefirst");
    let cluster = "c1";
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("agent");
    let snapshot = data_dir.join("cluster.json");
    let store = Arc::new(FileStore::open(&data_dir).unwrap());
    let sim = Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: Duration::ZERO,
        snapshot: Some(snapshot.clone()),
    }));
    let topics = Topics::for_agent(&source, cluster).unwrap();
    let mut transport = TransportConfig::new(m.host(), m.port(), "");
    transport.subscriptions = topics::agent_subscriptions(&topics, cluster).unwrap();
    let config = AgentConfig::new(cluster, None, topics, transport).unwrap();
    let agent = runtime::start(config, sim.clone(), store.clone()).unwrap();

    let hub_topics = Topics::for_source(&source).unwrap();
    let mut hub_cfg = TransportConfig::new(m.host(), m.port(), format!("{source}-hub"));
    hub_cfg.subscriptions = Vec::new();
    let hub = Transport::start(hub_cfg).unwrap();
    let ty = EventType::manifest_bundles(
        workbus_schemas::event_type::SubResource::Spec,
        Action::CreateRequest,
    );
    let topic = topics::source_publish_topic(&hub_topics, &source, &ty, Some(cluster)).unwrap();
    let long_uid = "u".repeat(10 * 1024);
    let hostile = mqtt::encode(
        &spec_event(&source, cluster, &long_uid, "cm-long"),
        &topic,
        Encoding::Binary,
    )
    .unwrap();
    let good = mqtt::encode(
        &spec_event(&source, cluster, "good-uid", "cm-good"),
        &topic,
        Encoding::Binary,
    )
    .unwrap();

    // Published until the agent (subscribing meanwhile) has seen both: the hostile one
    // first, so once the good one is applied the hostile one was handled.
    let stats = agent.stats().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let _ = hub.publisher.publish(&hostile).await;
        let _ = hub.publisher.publish(&good).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let applied = sim
            .object("", "v1", "configmaps", "default", "cm-good")
            .is_some();
        if applied && stats.not_applied_unstored.load(Ordering::Relaxed) > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never handled both works"
        );
    }
    assert!(
        sim.object("", "v1", "configmaps", "default", "cm-long")
            .is_none(),
        "the unstored work was applied"
    );
    let stored: Vec<String> = store
        .load()
        .unwrap()
        .iter()
        .map(|r| r.uid().to_string())
        .collect();
    assert_eq!(stored, ["good-uid"]);

    // Private on disk: the data dir and works 0700, records and snapshot 0600.
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&data_dir.join("works")), 0o700);
    for entry in std::fs::read_dir(data_dir.join("works")).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(&snapshot), 0o600);
    agent.shutdown().await;
}

#[test]
fn looser_modes_are_tightened_on_open() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("agent");
    drop(FileStore::open(&dir).unwrap());
    let record = dir.join("works/old.json");
    std::fs::write(&record, b"{}").unwrap();
    let snapshot = dir.join("cluster.json");
    std::fs::write(&snapshot, b"{}").unwrap();
    for (p, m) in [(&dir, 0o755), (&record, 0o644), (&snapshot, 0o644)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    drop(FileStore::open(&dir).unwrap());
    drop(SimulatedCluster::new(SimConfig {
        ready_after: Duration::ZERO,
        snapshot: Some(snapshot.clone()),
    }));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&record), 0o600);
    assert_eq!(mode(&snapshot), 0o600);
}
