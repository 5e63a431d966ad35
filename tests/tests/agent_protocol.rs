//! Our agent against the OCM wire protocol, driven by a stand-in OCM source
//! ([`FakeSource`]) over a real broker: Maestro's own spec event is applied and answered
//! with a status that is checked extension by extension; resync, staleness, other
//! clusters, deletion and crash-restart behave as §6–7 of the reference say.
//! Every test runs against the embedded broker and against Mosquitto.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cloudevents::AttributesReader;
use workbus_agent::store::{FileStore, MemoryStore};
use workbus_agent::target::sim::SimulatedCluster;
use workbus_schemas::envelope::SpecEventFields;
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::extensions::OcmExtensions;
use workbus_schemas::metadata::metadata_json;
use workbus_schemas::resync::{ResourceStatusHash, SpecResyncRequest, StatusResyncRequest};
use workbus_schemas::sequence_id::SequenceId;
use workbus_schemas::status_hash::status_hash;
use workbus_schemas::work::ObjectMeta;
use workbus_schemas::work::meta::{
    ANNOTATION_DATA_TYPE, FINALIZER_MANIFEST_WORK_CLEANUP, LABEL_ORIGINAL_SOURCE,
};
use workbus_tests::agents::{agent_config, start_agent};
use workbus_tests::brokers::TestBroker;
use workbus_tests::{FakeSource, unique};

fn fixture(name: &str) -> workbus_schemas::Event {
    let bytes = workbus_testkit::fixtures::maestro::read(name);
    workbus_schemas::mqtt::structured::decode(&bytes).expect("fixture decodes")
}

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(SimulatedCluster::new(Default::default()))
}

fn configmap_bundle(name: &str, value: &str) -> serde_json::Value {
    serde_json::json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": {"k": value}}]})
}

fn spec(
    source: &str,
    cluster: &str,
    id: &str,
    generation: i64,
    bundle: serde_json::Value,
) -> SpecEventFields {
    let meta = ObjectMeta {
        name: id.to_string(),
        namespace: cluster.to_string(),
        uid: id.to_string(),
        generation,
        resource_version: generation.to_string(),
        ..ObjectMeta::default()
    };
    SpecEventFields {
        source_id: source.to_string(),
        action: Action::CreateRequest,
        cluster_name: cluster.to_string(),
        resource_id: id.to_string(),
        generation,
        metadata: Some(metadata_json(&meta)),
        bundle: Some(bundle),
        deletion_timestamp: None,
        log_tracing: Some(Default::default()),
    }
}

async fn wait_spec_resync(source: &mut FakeSource, cluster: &str) -> SpecResyncRequest {
    wait_spec_resync_event(source, cluster).await.1
}

/// The next spec resync request of `cluster`, as event and payload.
async fn wait_spec_resync_event(
    source: &mut FakeSource,
    cluster: &str,
) -> (workbus_schemas::Event, SpecResyncRequest) {
    let c = cluster.to_string();
    let e = source
        .next_event("spec resync request", |e, ty| {
            ty.sub_resource == SubResource::Spec
                && ty.action == Action::ResyncRequest
                && e.cluster_name().ok().flatten() == Some(c.as_str())
        })
        .await;
    let payload = serde_json::from_value(workbus_schemas::envelope::json_data(&e).expect("data"))
        .expect("payload");
    (e, payload)
}

/// A fresh source id and cluster, a connected [`FakeSource`] and a running agent on a
/// new simulated cluster with `store`, returned once the agent has subscribed (its first
/// spec resync request arrived).
async fn connected<S: workbus_agent::store::AgentStore>(
    broker: &TestBroker,
    store: Arc<S>,
) -> (
    String,
    String,
    FakeSource,
    Arc<SimulatedCluster>,
    workbus_agent::runtime::AgentHandle,
) {
    let source_id = unique("src");
    let cluster = unique("c");
    let mut source = FakeSource::connect(broker.host(), broker.port(), &source_id).await;
    let sim = sim();
    let agent = start_agent(
        agent_config(broker.host(), broker.port(), &source_id, &cluster),
        sim.clone(),
        store,
    );
    wait_spec_resync(&mut source, &cluster).await;
    (source_id, cluster, source, sim, agent)
}

workbus_tests::on_both_brokers!(
    maestro_spec_event_is_applied_and_answered,
    stale_duplicate_and_foreign_events_are_ignored,
    status_resync_answers_only_changed_works,
    delete_reports_deleted_and_forgets_the_work,
    killed_agent_restarts_without_duplicate_applies,
    ocm_source_sees_only_the_upstream_form,
    advertising_source_gets_the_digest_form_and_full_falls_back,
);

/// Maestro's real spec event, published in binary mode as sdk-go does; our agent applies
/// it and answers with a status whose every extension is what a Maestro source expects.
async fn maestro_spec_event_is_applied_and_answered(broker: &TestBroker) {
    let spec_event = fixture("cloudevents.spec.maestro.json");
    let cluster = spec_event.cluster_name().unwrap().unwrap().to_string();
    let resource_id = spec_event.resource_id().unwrap().to_string();
    // The fixture's source is "maestro"; its topics are per source id, so the test uses
    // that id. Each broker run gets its own agent and store.
    let mut source = FakeSource::connect(broker.host(), broker.port(), "maestro").await;
    let sim = sim();
    let agent = start_agent(
        agent_config(broker.host(), broker.port(), "maestro", &cluster),
        sim.clone(),
        Arc::new(MemoryStore::default()),
    );
    let resync = wait_spec_resync(&mut source, &cluster).await;
    assert!(
        resync.resource_versions.is_empty(),
        "a new agent holds nothing"
    );

    source.publish(&cluster, &spec_event).await;
    let (event, status) = source
        .next_status("applied status of the Maestro work", &resource_id, |d| {
            d.status
                .condition("Applied")
                .is_some_and(|c| c.status == "True")
        })
        .await;

    // Envelope and extensions (reference §4, TV-10, TV-16).
    assert_eq!(event.specversion().to_string(), "1.0");
    assert_eq!(event.source(), &format!("{cluster}-work-agent"));
    assert_eq!(
        event.ty(),
        "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request"
    );
    assert_eq!(event.datacontenttype(), Some("application/json"));
    assert_eq!(event.cluster_name().unwrap(), Some(cluster.as_str()));
    assert_eq!(event.original_source().unwrap(), Some("maestro"));
    assert_eq!(event.resource_id().unwrap(), resource_id);
    assert_eq!(event.resource_version().unwrap(), 1);
    let seq: SequenceId = event.sequence_id().unwrap().unwrap().parse().unwrap();
    assert_eq!(seq.node(), 1, "snowflake node 1, as every Go agent");
    assert_eq!(
        event.status_hash().unwrap(),
        Some(status_hash(&status.status).as_str()),
        "statushash is the hash of the status carried"
    );
    assert_eq!(event.log_tracing().unwrap(), Default::default());
    let meta = event.metadata_json().unwrap().expect("metadata");
    assert_eq!(meta["uid"], resource_id.as_str());
    assert_eq!(meta["namespace"], cluster.as_str());
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["labels"][LABEL_ORIGINAL_SOURCE], "maestro");
    assert_eq!(
        meta["annotations"][ANNOTATION_DATA_TYPE],
        "io.open-cluster-management.works.v1alpha1.manifestbundles"
    );
    assert!(
        meta["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == FINALIZER_MANIFEST_WORK_CLEANUP)
    );

    // Payload (§5.3): the flat resourceStatus with the Deployment's meta and conditions.
    let applied = status.status.condition("Applied").unwrap();
    assert_eq!(applied.reason, "AppliedManifestWorkComplete");
    assert_eq!(applied.observed_generation, 1);
    let data = workbus_schemas::envelope::json_data(&event).unwrap();
    let rs = data["resourceStatus"]
        .as_array()
        .expect("flat resourceStatus array");
    assert_eq!(rs.len(), 1);
    let meta = &rs[0]["resourceMeta"];
    assert_eq!(meta["ordinal"], 0);
    assert_eq!(meta["group"], "apps");
    assert_eq!(meta["version"], "v1");
    assert_eq!(meta["kind"], "Deployment");
    assert_eq!(meta["resource"], "deployments");
    assert_eq!(meta["name"], "maestro-e2e-upgrade-test");
    assert_eq!(meta["namespace"], "default");

    // Later the Deployment is available and its `.status` feedback (JSONPaths rule of the
    // fixture) is reported as JsonRaw.
    source
        .next_status("available status with feedback", &resource_id, |d| {
            d.status
                .condition("Available")
                .is_some_and(|c| c.status == "True")
                && d.status.resource_status.manifests[0]
                    .status_feedback
                    .values
                    .iter()
                    .any(|v| v.name == "status")
        })
        .await;
    assert_eq!(agent.stats().malformed.load(Ordering::Relaxed), 0);
    agent.shutdown().await;
    source.close().await;
}

async fn stale_duplicate_and_foreign_events_are_ignored(broker: &TestBroker) {
    let (source_id, cluster, mut source, sim, agent) =
        connected(broker, Arc::new(MemoryStore::default())).await;
    let id = uuid::Uuid::new_v4().to_string();
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            2,
            configmap_bundle("cm1", "v2"),
        ))
        .await;
    source
        .next_status("generation 2 applied", &id, |d| d.generation == 2)
        .await;
    // Older generation: stale. Same generation again: duplicate. Another cluster: foreign.
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            1,
            configmap_bundle("cm1", "v1"),
        ))
        .await;
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            2,
            configmap_bundle("cm1", "v2"),
        ))
        .await;
    let mut foreign = spec(&source_id, &cluster, &id, 9, configmap_bundle("cm1", "x"));
    foreign.cluster_name = "someone-else".into();
    let foreign_event = foreign.build(chrono::Utc::now()).unwrap();
    source.publish(&cluster, &foreign_event).await;
    // A newer generation afterwards is applied: the three above were processed before it.
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            3,
            configmap_bundle("cm1", "v3"),
        ))
        .await;
    source
        .next_status("generation 3 applied", &id, |d| d.generation == 3)
        .await;
    let stats = agent.stats();
    assert_eq!(stats.stale.load(Ordering::Relaxed), 1);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 1);
    assert_eq!(stats.other_cluster.load(Ordering::Relaxed), 1);
    let cm = sim
        .object("", "v1", "configmaps", "default", "cm1")
        .expect("configmap exists");
    assert_eq!(cm["data"]["k"], "v3");
    agent.shutdown().await;
    source.close().await;
}

async fn status_resync_answers_only_changed_works(broker: &TestBroker) {
    let (source_id, cluster, mut source, _sim, agent) =
        connected(broker, Arc::new(MemoryStore::default())).await;
    let a = uuid::Uuid::new_v4().to_string();
    let b = uuid::Uuid::new_v4().to_string();
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &a,
            1,
            configmap_bundle("a", "1"),
        ))
        .await;
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &b,
            1,
            configmap_bundle("b", "1"),
        ))
        .await;
    let (_, sa) = source.next_status("a applied", &a, |_| true).await;
    let (_, sb) = source.next_status("b applied", &b, |_| true).await;
    let (ha, hb) = (status_hash(&sa.status), status_hash(&sb.status));
    // With the digest of exactly what the agent holds (the workbus hub's extension), the
    // agent answers nothing at all.
    let same = StatusResyncRequest::new(vec![
        ResourceStatusHash::new(a.clone(), ha.clone()),
        ResourceStatusHash::new(b.clone(), hb.clone()),
    ]);
    let digest = workbus_schemas::resync_digest::status_digest([
        (a.as_str(), ha.as_str()),
        (b.as_str(), hb.as_str()),
    ]);
    source
        .request_status_resync(
            &cluster,
            serde_json::to_value(&same).unwrap(),
            Some(&digest),
        )
        .await;
    // The source knows a's current hash and a stale one for b: only b is resent (and it
    // is the first resync response at all, so the digest request produced none).
    let request = StatusResyncRequest::new(vec![
        ResourceStatusHash::new(a.clone(), ha),
        ResourceStatusHash::new(b.clone(), "0".repeat(64)),
    ]);
    source
        .request_status_resync(&cluster, serde_json::to_value(&request).unwrap(), None)
        .await;
    let event = source
        .next_event("status resync response", |_, ty| {
            ty.sub_resource == SubResource::Status && ty.action == Action::ResyncResponse
        })
        .await;
    assert_eq!(event.resource_id().unwrap(), b);
    assert_eq!(agent.stats().status_resyncs.load(Ordering::Relaxed), 2);
    assert_eq!(
        agent
            .stats()
            .status_resyncs_unchanged
            .load(Ordering::Relaxed),
        1
    );
    agent.shutdown().await;
    source.close().await;
}

async fn delete_reports_deleted_and_forgets_the_work(broker: &TestBroker) {
    let (source_id, cluster, mut source, sim, agent) =
        connected(broker, Arc::new(MemoryStore::default())).await;
    let id = uuid::Uuid::new_v4().to_string();
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            1,
            configmap_bundle("gone", "1"),
        ))
        .await;
    source.next_status("applied", &id, |_| true).await;
    assert!(
        sim.object("", "v1", "configmaps", "default", "gone")
            .is_some()
    );
    let mut delete = spec(&source_id, &cluster, &id, 1, configmap_bundle("gone", "1"));
    delete.action = Action::DeleteRequest;
    delete.bundle = None;
    delete.deletion_timestamp = Some(chrono::Utc::now());
    source.publish_spec(&delete).await;
    let (_, d) = source
        .next_status("Deleted status", &id, |d| d.is_deleted())
        .await;
    let deleted = d.status.condition("Deleted").unwrap();
    assert_eq!(deleted.reason, "ManifestsDeleted");
    assert_eq!(
        deleted.message,
        format!("The manifests are deleted from the cluster {cluster}")
    );
    assert!(
        sim.object("", "v1", "configmaps", "default", "gone")
            .is_none()
    );
    // A reconnecting agent no longer lists it.
    agent.shutdown().await;
    let agent = start_agent(
        agent_config(broker.host(), broker.port(), &source_id, &cluster),
        sim.clone(),
        Arc::new(MemoryStore::default()),
    );
    let resync = wait_spec_resync(&mut source, &cluster).await;
    assert!(resync.resource_versions.is_empty());
    agent.shutdown().await;
    source.close().await;
}

async fn killed_agent_restarts_without_duplicate_applies(broker: &TestBroker) {
    let dir = std::env::temp_dir().join(unique("agent-store"));
    let (source_id, cluster, mut source, sim, agent) =
        connected(broker, Arc::new(FileStore::open(&dir).unwrap())).await;
    let id = uuid::Uuid::new_v4().to_string();
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            1,
            configmap_bundle("kept", "1"),
        ))
        .await;
    let (_, first) = source.next_status("applied", &id, |_| true).await;
    let applies = sim.apply_count("", "v1", "configmaps", "default", "kept");
    assert_eq!(applies, 1);
    agent.kill(); // no graceful shutdown

    let agent = start_agent(
        agent_config(broker.host(), broker.port(), &source_id, &cluster),
        sim.clone(),
        Arc::new(FileStore::open(&dir).unwrap()),
    );
    // It resumes from its store: it lists the work at generation 1...
    let resync = wait_spec_resync(&mut source, &cluster).await;
    assert_eq!(resync.resource_versions.len(), 1);
    assert_eq!(resync.resource_versions[0].resource_version, 1);
    // ...answers a status resync from what it knows...
    source
        .request_status_resync(&cluster, serde_json::json!({"statusHashes": []}), None)
        .await;
    let (_, again) = source
        .next_status("status after restart", &id, |_| true)
        .await;
    assert_eq!(status_hash(&again.status), status_hash(&first.status));
    // ...and a re-sent spec of the same generation is not applied again.
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            1,
            configmap_bundle("kept", "1"),
        ))
        .await;
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            2,
            configmap_bundle("kept", "2"),
        ))
        .await;
    source
        .next_status("generation 2", &id, |d| d.generation == 2)
        .await;
    assert_eq!(
        sim.apply_count("", "v1", "configmaps", "default", "kept"),
        2
    );
    assert_eq!(agent.stats().duplicates.load(Ordering::Relaxed), 1);
    agent.shutdown().await;
    source.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression: killing an agent (aborting its task, as a crash would) used to leave its
/// MQTT session running in the background, so a restarted agent with the same client id
/// and the orphaned session kicked each other off the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_leaves_no_connection_behind() {
    let broker = workbus_broker::Broker::new(workbus_broker::BrokerConfig::with_listen(
        "127.0.0.1:0".parse().unwrap(),
    ))
    .start()
    .await
    .unwrap();
    let port = broker.local_addr().port();
    let source_id = unique("src");
    let cluster = unique("c");
    let mut source = FakeSource::connect("127.0.0.1", port, &source_id).await;
    let agent = start_agent(
        agent_config("127.0.0.1", port, &source_id, &cluster),
        sim(),
        Arc::new(MemoryStore::default()),
    );
    wait_spec_resync(&mut source, &cluster).await;
    assert_eq!(broker.stats().connected_clients, 2);
    agent.kill();
    // No event tells us the broker saw the socket close; poll its counter, bounded.
    let deadline = std::time::Instant::now() + workbus_tests::WAIT;
    while broker.stats().connected_clients != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed agent's connection stayed open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    source.close().await;
    broker.shutdown().await;
}

/// An object deleted behind the agent's back shows as not available, and the periodic
/// re-apply puts it back (manifestwork-semantics §12 item 29).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_and_corrected() {
    let broker = TestBroker::embedded().await;
    let source_id = unique("src");
    let cluster = unique("c");
    let mut source = FakeSource::connect(broker.host(), broker.port(), &source_id).await;
    let sim = sim();
    let mut config = agent_config(broker.host(), broker.port(), &source_id, &cluster);
    config.status_sync_interval = std::time::Duration::from_millis(100);
    config.apply_resync_interval = std::time::Duration::from_millis(600);
    let agent = start_agent(config, sim.clone(), Arc::new(MemoryStore::default()));
    wait_spec_resync(&mut source, &cluster).await;
    let id = uuid::Uuid::new_v4().to_string();
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            1,
            configmap_bundle("drifty", "1"),
        ))
        .await;
    let available = |d: &workbus_schemas::metadata::DecodedStatus, want: &str| {
        d.status
            .condition("Available")
            .is_some_and(|c| c.status == want)
    };
    source
        .next_status("available", &id, |d| available(d, "True"))
        .await;
    assert!(sim.delete_out_of_band("", "v1", "configmaps", "default", "drifty"));
    source
        .next_status("not available after the deletion", &id, |d| {
            available(d, "False")
        })
        .await;
    source
        .next_status("available again after the re-apply", &id, |d| {
            available(d, "True")
        })
        .await;
    assert!(
        sim.object("", "v1", "configmaps", "default", "drifty")
            .is_some()
    );
    agent.shutdown().await;
    source.close().await;
    broker.stop().await;
}

/// Restarts `agent` on the same store directory and simulated cluster.
async fn restart_on(
    broker: &TestBroker,
    agent: workbus_agent::runtime::AgentHandle,
    source_id: &str,
    cluster: &str,
    sim: &Arc<SimulatedCluster>,
    dir: &std::path::Path,
) -> workbus_agent::runtime::AgentHandle {
    agent.shutdown().await;
    start_agent(
        agent_config(broker.host(), broker.port(), source_id, cluster),
        sim.clone(),
        Arc::new(FileStore::open(dir).unwrap()),
    )
}

/// A source that never advertises digests (every OCM source) only ever gets upstream
/// spec resync requests listing every work, across restarts; the agent's digest rides
/// along as an extension the source ignores.
async fn ocm_source_sees_only_the_upstream_form(broker: &TestBroker) {
    let dir = std::env::temp_dir().join(unique("agent-store"));
    let (source_id, cluster, mut source, sim, agent) =
        connected(broker, Arc::new(FileStore::open(&dir).unwrap())).await;
    let id = uuid::Uuid::new_v4().to_string();
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            1,
            configmap_bundle("o", "1"),
        ))
        .await;
    source.next_status("applied", &id, |_| true).await;
    // An OCM source's status resync request has no digest: answered upstream-style.
    source
        .request_status_resync(&cluster, serde_json::json!({"statusHashes": []}), None)
        .await;
    source
        .next_status("status resync answer", &id, |_| true)
        .await;
    let mut agent = agent;
    for _ in 0..2 {
        agent = restart_on(broker, agent, &source_id, &cluster, &sim, &dir).await;
        let (event, request) = wait_spec_resync_event(&mut source, &cluster).await;
        assert!(!workbus_schemas::resync_digest::is_digest_request(&event));
        assert_eq!(request.resource_versions.len(), 1);
        assert_eq!(request.resource_versions[0].resource_id, id);
        assert_eq!(
            workbus_schemas::resync_digest::digest_of(&event),
            Some(workbus_schemas::resync_digest::spec_digest([(id.as_str(), 1)]).as_str()),
            "advertised, not used"
        );
    }
    assert_eq!(agent.stats().digest_requests.load(Ordering::Relaxed), 0);
    agent.shutdown().await;
    source.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Once the source advertised (here: the "done" reply our hub sends), the agent — also
/// after a restart, from its store — sends only its digest; a "full" reply makes it
/// repeat the request upstream-style; a status resync request without digest (a source
/// replaced by an OCM one) makes it forget, durably.
async fn advertising_source_gets_the_digest_form_and_full_falls_back(broker: &TestBroker) {
    use workbus_schemas::resync_digest::{
        ResyncReply, digest_of, is_digest_request, spec_digest, spec_resync_reply,
    };
    let dir = std::env::temp_dir().join(unique("agent-store"));
    let (source_id, cluster, mut source, sim, agent) =
        connected(broker, Arc::new(FileStore::open(&dir).unwrap())).await;
    let id = uuid::Uuid::new_v4().to_string();
    source
        .publish_spec(&spec(
            &source_id,
            &cluster,
            &id,
            1,
            configmap_bundle("d", "1"),
        ))
        .await;
    source.next_status("applied", &id, |_| true).await;
    let reply = |r| spec_resync_reply(&source_id, &cluster, r, chrono::Utc::now());
    source.publish(&cluster, &reply(ResyncReply::Done)).await;
    let stats = agent.stats().clone();
    workbus_tests::wait_until("the done reply", || {
        stats.spec_resyncs_done.load(Ordering::Relaxed) == 1
    })
    .await;

    let agent = restart_on(broker, agent, &source_id, &cluster, &sim, &dir).await;
    let (event, request) = wait_spec_resync_event(&mut source, &cluster).await;
    assert!(is_digest_request(&event), "digest form after a restart");
    assert!(request.resource_versions.is_empty());
    assert_eq!(
        digest_of(&event),
        Some(spec_digest([(id.as_str(), 1)]).as_str())
    );
    source.publish(&cluster, &reply(ResyncReply::Full)).await;
    let (event, request) = wait_spec_resync_event(&mut source, &cluster).await;
    assert!(!is_digest_request(&event), "upstream form after full");
    assert_eq!(request.resource_versions.len(), 1);
    let stats = agent.stats().clone();
    assert_eq!(stats.spec_resync_fallbacks.load(Ordering::Relaxed), 1);
    assert_eq!(stats.digest_requests.load(Ordering::Relaxed), 1);
    assert_eq!(stats.resync_requests.load(Ordering::Relaxed), 2);

    // The source no longer advertises: forgotten, also on disk.
    source
        .request_status_resync(&cluster, serde_json::json!({"statusHashes": []}), None)
        .await;
    source
        .next_status("status resync answer", &id, |_| true)
        .await;
    use workbus_agent::store::AgentStore;
    assert!(
        FileStore::open(&dir)
            .unwrap()
            .digest_sources()
            .unwrap()
            .is_empty()
    );
    let agent = restart_on(broker, agent, &source_id, &cluster, &sim, &dir).await;
    let (event, _) = wait_spec_resync_event(&mut source, &cluster).await;
    assert!(!is_digest_request(&event));
    agent.shutdown().await;
    source.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
