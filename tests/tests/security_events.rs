//! Issue 12, signed spec events across the crates, on the embedded broker and on
//! Mosquitto (no broker ACLs in these tests: anyone may publish on a cluster's spec
//! topic, as on a misconfigured external broker).
//!
//! - An agent configured with the hub's public key applies what the hub publishes (the
//!   REST → outbox → MQTT path signs it) and rejects, counting them, an unsigned work,
//!   an unsigned delete of a live work, a "pinned" generation (2³¹−1) signed by another
//!   key, and one made from a correctly signed event by altering it.
//! - An agent without a key applies unsigned events (OCM compatibility) and events
//!   signed by anyone (it ignores the extensions).
//! - The hub refuses (counts, does not store) a status for a live work sent on another
//!   cluster's topic, with an empty `clustername`, or with a wrong `statushash`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use chrono::Utc;
use workbus_agent::store::MemoryStore;
use workbus_agent::target::sim::SimulatedCluster;
use workbus_schemas::Event;
use workbus_schemas::envelope::SpecEventFields;
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::extensions::OcmExtensionsMut;
use workbus_schemas::metadata::metadata_json;
use workbus_schemas::signature::SigningKey;
use workbus_schemas::work::ObjectMeta;
use workbus_tests::agents::{agent_config, start_agent};
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::{applied_at, put_work, register_cluster, start_hub, wait_work};
use workbus_tests::{FakeSource, unique, wait_until};

workbus_tests::on_both_brokers!(
    verifying_agent_applies_the_hubs_works_and_rejects_forgeries,
    agent_without_key_applies_unsigned_and_signed_events,
    forged_statuses_are_refused_by_the_hub,
);

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(SimulatedCluster::new(
        workbus_agent::target::sim::SimConfig {
            ready_after: std::time::Duration::from_millis(50),
            snapshot: None,
        },
    ))
}

/// A spec event for work `uid` on `cluster` holding ConfigMap `configmap` with `value`
/// (a delete when `delete`).
fn spec_event(
    source: &str,
    cluster: &str,
    uid: &str,
    generation: i64,
    configmap: &str,
    value: &str,
    delete: bool,
) -> Event {
    let meta = ObjectMeta {
        name: uid.to_string(),
        namespace: cluster.to_string(),
        uid: uid.to_string(),
        generation,
        resource_version: generation.to_string(),
        ..ObjectMeta::default()
    };
    let bundle = serde_json::json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": configmap, "namespace": "default"}, "data": {"v": value}}]});
    SpecEventFields {
        source_id: source.to_string(),
        action: if delete {
            Action::DeleteRequest
        } else {
            Action::UpdateRequest
        },
        cluster_name: cluster.to_string(),
        resource_id: uid.to_string(),
        generation,
        metadata: Some(metadata_json(&meta)),
        bundle: (!delete).then_some(bundle),
        deletion_timestamp: delete.then(Utc::now),
        log_tracing: Some(Default::default()),
    }
    .build(Utc::now())
    .expect("spec event")
}

fn configmap(sim: &SimulatedCluster, name: &str) -> Option<serde_json::Value> {
    sim.object("", "v1", "configmaps", "default", name)
}

/// The hub's private key as the hub wrote it (`<data-dir>/signing.key`): what a test
/// needs to make a correctly signed event to alter.
fn hub_key(data_dir: &std::path::Path) -> SigningKey {
    let text = std::fs::read_to_string(data_dir.join("signing.key")).expect("signing.key");
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("base64");
    SigningKey::from_pkcs8(&der).expect("key")
}

async fn verifying_agent_applies_the_hubs_works_and_rejects_forgeries(broker: &TestBroker) {
    let source = unique("hub");
    let cluster = unique("edge");
    let dir = std::env::temp_dir().join(unique("sig"));
    let hub = start_hub(&dir.join("hub"), &source, broker.host(), broker.port()).await;
    let public = std::fs::read_to_string(dir.join("hub").join("signing.pub")).unwrap();
    assert_eq!(public.trim(), hub.spec_signing_key().to_text());
    let mut changes = hub.watch();
    let sim = sim();
    let mut config = agent_config(broker.host(), broker.port(), &source, &cluster);
    config.spec_signing_key = Some(hub.spec_signing_key().clone());
    let agent = start_agent(config, sim.clone(), Arc::new(MemoryStore::default()));
    assert_eq!(register_cluster(&hub, &cluster).await, 201);

    // The hub's own work is signed on the way out and applied.
    put_work(&hub, &cluster, "app", "app-config", "v1").await;
    wait_work(&hub, &mut changes, &cluster, "app", "applied", |w| {
        applied_at(w, 1)
    })
    .await
    .unwrap();
    assert_eq!(configmap(&sim, "app-config").unwrap()["data"]["v"], "v1");
    let app_uid =
        workbus_schemas::resource_id::work_resource_id(&source, &cluster, "app").to_string();

    // Anyone on the broker, speaking as the hub's source.
    let forger = FakeSource::connect(broker.host(), broker.port(), &source).await;
    let unverified = || agent.stats().unverified.load(Ordering::Relaxed);
    // 1. A forged work, unsigned.
    let forged_uid = unique("forged");
    forger
        .publish(
            &cluster,
            &spec_event(&source, &cluster, &forged_uid, 1, "forged", "x", false),
        )
        .await;
    // 2. A forged delete of the live work, unsigned.
    forger
        .publish(
            &cluster,
            &spec_event(&source, &cluster, &app_uid, 1, "app-config", "", true),
        )
        .await;
    // 3. The live work "pinned" at generation 2^31-1, signed by another key.
    let mut pinned = spec_event(
        &source,
        &cluster,
        &app_uid,
        i64::from(i32::MAX),
        "app-config",
        "pinned",
        false,
    );
    let other = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
    other.sign(&mut pinned).unwrap();
    forger.publish(&cluster, &pinned).await;
    // 4. A correctly signed event of the hub's key, altered to the pinned generation.
    let key = hub_key(&dir.join("hub"));
    let extra_uid = unique("extra");
    let mut signed = spec_event(&source, &cluster, &extra_uid, 1, "extra", "e1", false);
    key.sign(&mut signed).unwrap();
    let mut altered = signed.clone();
    altered
        .set_resource_version(i64::from(i32::MAX))
        .expect("in range");
    forger.publish(&cluster, &altered).await;
    wait_until("four forgeries rejected", || unverified() == 4).await;
    assert!(configmap(&sim, "forged").is_none(), "forged work applied");
    assert!(configmap(&sim, "extra").is_none(), "altered event applied");
    assert_eq!(
        configmap(&sim, "app-config").unwrap()["data"]["v"],
        "v1",
        "the live work was deleted or pinned by a forgery"
    );

    // The same signed event, unaltered, is applied.
    forger.publish(&cluster, &signed).await;
    wait_until("the signed event applied", || {
        configmap(&sim, "extra").is_some()
    })
    .await;

    // The hub's next generation still reaches the agent (nothing was pinned).
    put_work(&hub, &cluster, "app", "app-config", "v2").await;
    wait_work(&hub, &mut changes, &cluster, "app", "applied 2", |w| {
        applied_at(w, 2)
    })
    .await;
    assert_eq!(configmap(&sim, "app-config").unwrap()["data"]["v"], "v2");
    assert_eq!(unverified(), 4);

    forger.close().await;
    agent.shutdown().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn agent_without_key_applies_unsigned_and_signed_events(broker: &TestBroker) {
    let source = unique("ocm");
    let cluster = unique("edge");
    let sim = sim();
    let mut source_side = FakeSource::connect(broker.host(), broker.port(), &source).await;
    let agent = start_agent(
        agent_config(broker.host(), broker.port(), &source, &cluster),
        sim.clone(),
        Arc::new(MemoryStore::default()),
    );
    // Subscribed once its first spec resync request arrives.
    source_side
        .next_event("spec resync request", |_, ty| {
            ty.sub_resource == SubResource::Spec && ty.action == Action::ResyncRequest
        })
        .await;
    source_side
        .publish(
            &cluster,
            &spec_event(&source, &cluster, &unique("w"), 1, "plain", "p", false),
        )
        .await;
    let mut signed = spec_event(&source, &cluster, &unique("w"), 1, "signed", "s", false);
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap())
        .unwrap()
        .sign(&mut signed)
        .unwrap();
    source_side.publish(&cluster, &signed).await;
    wait_until("both applied", || {
        configmap(&sim, "plain").is_some() && configmap(&sim, "signed").is_some()
    })
    .await;
    assert_eq!(agent.stats().unverified.load(Ordering::Relaxed), 0);
    source_side.close().await;
    agent.shutdown().await;
}

/// A status of `uid` at generation 1 claiming `cluster`, Applied with `reason`, with
/// its correct `statushash`.
fn status_event(source: &str, cluster: &str, uid: &str, reason: &str) -> Event {
    use workbus_schemas::envelope::StatusEventFields;
    let status = serde_json::json!({"conditions": [{"type": "Applied", "status": "True",
        "observedGeneration": 1, "lastTransitionTime": "2025-12-16T06:00:17Z",
        "reason": reason, "message": reason}]});
    let mut event = StatusEventFields {
        agent_id: format!("{cluster}-work-agent"),
        action: Action::UpdateRequest,
        cluster_name: cluster.to_string(),
        original_source: source.to_string(),
        resource_id: uid.to_string(),
        generation: 1,
        sequence_id: workbus_schemas::sequence_id::SequenceIdGenerator::default()
            .next()
            .unwrap()
            .to_string(),
        status_hash: "0".repeat(64),
        metadata: serde_json::Map::new(),
        status,
        log_tracing: Default::default(),
    }
    .build(Utc::now())
    .unwrap();
    let decoded = workbus_schemas::metadata::decode_status_event(&event).unwrap();
    event.set_status_hash(&workbus_schemas::status_hash::status_hash(&decoded.status));
    event
}

/// Publishes `event` on `topic` with a raw client (what any broker user can do).
async fn publish_raw(broker: &TestBroker, topic: &str, event: &Event) {
    use workbus_schemas::mqtt::{self, Encoding};
    let config = workbus_transport::TransportConfig::new(
        broker.host(),
        broker.port(),
        format!("{}-client", unique("forger")),
    );
    let transport = workbus_transport::Transport::start(config).expect("transport");
    let message = mqtt::encode(event, topic, Encoding::Binary).expect("encode");
    transport
        .publisher
        .publish(&message)
        .await
        .expect("broker acknowledged");
}

async fn forged_statuses_are_refused_by_the_hub(broker: &TestBroker) {
    let source = unique("hub");
    let cluster = unique("edge");
    let dir = std::env::temp_dir().join(unique("sts"));
    let hub = start_hub(&dir.join("hub"), &source, broker.host(), broker.port()).await;
    let mut changes = hub.watch();
    let agent = start_agent(
        agent_config(broker.host(), broker.port(), &source, &cluster),
        sim(),
        Arc::new(MemoryStore::default()),
    );
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    put_work(&hub, &cluster, "app", "app-config", "v1").await;
    wait_work(&hub, &mut changes, &cluster, "app", "applied", |w| {
        applied_at(w, 1)
    })
    .await
    .unwrap();
    // Stop the real agent so that its periodic statuses do not race the check below.
    agent.shutdown().await;
    let uid = workbus_schemas::resource_id::work_resource_id(&source, &cluster, "app").to_string();
    let topic_of = |c: &str| format!("sources/{source}/consumers/{c}/agentevents");
    let evil = unique("evil");

    publish_raw(
        broker,
        &topic_of(&evil),
        &status_event(&source, &cluster, &uid, "Forged"),
    )
    .await;
    publish_raw(
        broker,
        &topic_of(&cluster),
        &status_event(&source, "", &uid, "Forged"),
    )
    .await;
    let mut wrong = status_event(&source, &cluster, &uid, "Forged");
    wrong.set_status_hash(&"0".repeat(64));
    publish_raw(broker, &topic_of(&cluster), &wrong).await;
    let refused = |reason: &str| hub.metrics().refused_count(reason);
    wait_until("three forged statuses refused", || {
        refused("topic_mismatch") == 1
            && refused("no_clustername") == 1
            && refused("statushash_mismatch") == 1
    })
    .await;
    let (code, work) = workbus_tests::hubs::rest(
        &hub,
        "GET",
        &format!("/api/v1/clusters/{cluster}/works/app"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let applied = workbus_tests::hubs::condition(&work, "Applied").unwrap();
    assert_ne!(applied["reason"], "Forged", "a forged status was stored");
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
