//! The hub against Mosquitto, observed on the wire by a fake agent: spec events for
//! create/update/delete, the status acceptance rule, spec resync answers (TV-14 and the
//! zero-works case), the status resync request after subscribe, durable outbox.

mod common;

use std::time::Duration;

use cloudevents::AttributesReader;
use common::*;
use serde_json::{Value, json};
use workbus_schemas::envelope::json_data;
use workbus_schemas::resource_id::work_resource_id;
use workbus_schemas::sequence_id::SequenceIdGenerator;
use workbus_schemas::status_hash::NO_STATUS_HASH;

fn applied(generation: i64) -> Value {
    json!({"conditions": [{"type": "Applied", "status": "True", "observedGeneration": generation,
        "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": "AppliedManifestWorkComplete",
        "message": "Apply manifest work complete"}]})
}

fn deleted() -> Value {
    json!({"conditions": [{"type": "Deleted", "status": "True", "lastTransitionTime": "2025-12-16T06:00:17Z",
        "reason": "ManifestsDeleted", "message": "The manifests are deleted from the cluster"}]})
}

#[tokio::test]
async fn spec_events_and_status_rules_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("wire");
    let hub = start_hub(dir.path(), &source).await;
    assert_eq!(create_cluster(&hub, "c1").await.status, 201);
    let mut agent = FakeAgent::connect(&source, "c1").await;

    // Create: generation 1, binary event with metadata and the bundle as data.
    assert_eq!(
        put_work(&hub, &work_json("c1", "w1", "a")).await.status,
        201
    );
    let uid = work_resource_id(&source, "c1", "w1").to_string();
    let create = agent
        .next("create", |e| is_type(e, "spec.create_request"))
        .await;
    assert_eq!(create.source(), &source);
    assert_eq!(ext(&create, "resourceid").unwrap(), uid);
    assert_eq!(ext(&create, "resourceversion").unwrap(), "1");
    assert_eq!(ext(&create, "clustername").unwrap(), "c1");
    let meta: Value = serde_json::from_str(&ext(&create, "metadata").unwrap()).unwrap();
    assert_eq!(meta["name"], "w1");
    assert_eq!(meta["namespace"], "c1");
    assert_eq!(meta["uid"], uid.as_str());
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["resourceVersion"], "1");
    assert_eq!(meta["labels"]["app"], "demo");
    assert!(meta["creationTimestamp"].is_string());
    let data = json_data(&create).unwrap();
    assert_eq!(data["manifests"][0]["kind"], "ConfigMap");

    // Update: generation 2; a no-op apply sends nothing.
    assert_eq!(
        put_work(&hub, &work_json("c1", "w1", "b")).await.status,
        200
    );
    let update = agent
        .next("update", |e| is_type(e, "spec.update_request"))
        .await;
    assert_eq!(ext(&update, "resourceversion").unwrap(), "2");
    let noop = put_work(&hub, &work_json("c1", "w1", "b")).await;
    assert_eq!(noop.outcome.as_deref(), Some("unchanged"));

    // Status for the current generation is accepted.
    let mut seq = SequenceIdGenerator::default();
    let old_seq = seq.next().unwrap().to_string();
    let s1 = seq.next().unwrap().to_string();
    agent.send_status(&uid, 2, &s1, applied(2)).await;
    eventually("status stored", || async {
        get_work(&hub, "c1", "w1").await.body["status"]["conditions"][0]["type"] == "Applied"
    })
    .await;
    let m = hub.metrics().clone();

    // Stale generation, older sequence id, duplicate, unknown work: dropped and counted.
    let s2 = seq.next().unwrap().to_string();
    agent.send_status(&uid, 1, &s2, applied(1)).await;
    eventually("stale generation dropped", || async {
        m.dropped_count("stale_generation") == 1
    })
    .await;
    agent.send_status(&uid, 2, &old_seq, applied(2)).await;
    eventually("older sequence dropped", || async {
        m.dropped_count("not_newer") == 1
    })
    .await;
    agent.send_status(&uid, 2, &s1, applied(2)).await;
    eventually("duplicate dropped", || async {
        m.dropped_count("not_newer") == 2
    })
    .await;
    agent
        .send_status("00000000-0000-0000-0000-000000000000", 1, &s2, applied(1))
        .await;
    eventually("unknown work dropped", || async {
        m.dropped_count("unknown_work") == 1
    })
    .await;
    let work = get_work(&hub, "c1", "w1").await.body;
    assert_eq!(work["status"]["conditions"][0]["observedGeneration"], 2);
    assert_eq!(
        work["metadata"]["annotations"]["hub.workbus.io/status-generation"],
        "2"
    );

    // Delete: 202, a delete_request with deletiontimestamp and metadata, no data.
    let del = http(
        "DELETE",
        format!("{}/api/v1/clusters/c1/works/w1", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(del.status, 202);
    assert!(del.body["metadata"]["deletionTimestamp"].is_string());
    let delete = agent
        .next("delete", |e| is_type(e, "spec.delete_request"))
        .await;
    assert!(ext(&delete, "deletiontimestamp").is_some());
    assert!(ext(&delete, "metadata").is_some());
    assert_eq!(ext(&delete, "resourceversion").unwrap(), "2");
    assert!(delete.data().is_none());
    // Updating a deleting work is refused.
    assert_eq!(
        put_work(&hub, &work_json("c1", "w1", "c")).await.status,
        409
    );

    // Deleted=True completes the deletion only for the generation the delete was for:
    // one with an older generation answers some earlier request.
    let s3 = seq.next().unwrap().to_string();
    agent.send_status(&uid, 1, &s3, deleted()).await;
    eventually("an older generation's Deleted dropped", || async {
        m.dropped_count("stale_generation") == 2
    })
    .await;
    assert_eq!(get_work(&hub, "c1", "w1").await.status, 200);
    let s4 = seq.next().unwrap().to_string();
    agent.send_status(&uid, 2, &s4, deleted()).await;
    eventually("work removed", || async {
        get_work(&hub, "c1", "w1").await.status == 404
    })
    .await;
    // The cluster can go now.
    let gone = http(
        "DELETE",
        format!("{}/api/v1/clusters/c1", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(gone.status, 204);

    // Every received event is in the audit log.
    let audited = hub
        .store()
        .run(move |s| s.audit(Some(&uid), 100))
        .await
        .unwrap();
    let received = audited
        .iter()
        .filter(|a| a.direction == workbus_hub::store::AuditDirection::Received)
        .count();
    let sent = audited.len() - received;
    assert_eq!(received, 6); // accepted, stale, older, duplicate, stale deleted, deleted
    // create, update, delete (and the delete again if the test ran past the first
    // re-drive of an unconfirmed deletion, 5 s)
    assert!(sent >= 3, "{sent} sent");
    hub.shutdown().await;
}

#[tokio::test]
async fn spec_resync_answers_tv14_and_zero_works() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("resync");
    let hub = start_hub(dir.path(), &source).await;
    assert_eq!(create_cluster(&hub, "c1").await.status, 201);
    let mut agent = FakeAgent::connect(&source, "c1").await;
    put_work(&hub, &work_json("c1", "test1", "a")).await;
    put_work(&hub, &work_json("c1", "test1", "b")).await; // test1 at generation 2
    put_work(&hub, &work_json("c1", "test2", "a")).await; // test2 at generation 1
    let id1 = work_resource_id(&source, "c1", "test1").to_string();
    let id2 = work_resource_id(&source, "c1", "test2").to_string();
    for _ in 0..3 {
        agent.next("spec", |e| e.ty().contains(".spec.")).await;
    }

    // Row 1: the agent has nothing → every work is sent.
    agent.send_spec_resync(&[]).await;
    let a = agent
        .next("resync 1", |e| is_type(e, "spec.resync_response"))
        .await;
    let b = agent
        .next("resync 2", |e| is_type(e, "spec.resync_response"))
        .await;
    let mut ids = vec![
        ext(&a, "resourceid").unwrap(),
        ext(&b, "resourceid").unwrap(),
    ];
    ids.sort();
    let mut want = vec![id1.clone(), id2.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(json_data(&a).unwrap()["manifests"].is_array());

    // Row 2: the agent is behind on test1 only → test1 only.
    agent.send_spec_resync(&[(&id1, 1), (&id2, 1)]).await;
    let only = agent
        .next("resync row 2", |e| is_type(e, "spec.resync_response"))
        .await;
    assert_eq!(ext(&only, "resourceid").unwrap(), id1);
    assert_eq!(ext(&only, "resourceversion").unwrap(), "2");

    // Row 3: the agent holds an id the hub lacks → a synthetic delete for it.
    agent
        .send_spec_resync(&[(&id1, 2), (&id2, 1), ("ghost", 7)])
        .await;
    let ghost = agent
        .next("synthetic delete", |e| is_type(e, "spec.resync_response"))
        .await;
    assert_eq!(ext(&ghost, "resourceid").unwrap(), "ghost");
    assert_eq!(ext(&ghost, "resourceversion").unwrap(), "7");
    assert!(ext(&ghost, "deletiontimestamp").is_some());
    assert!(ext(&ghost, "metadata").is_none());
    assert!(ghost.data().is_none());
    // Nothing else was answered for rows 2 and 3.
    assert!(agent.drain(Duration::from_millis(300)).await.is_empty());

    // An unregistered cluster's request is ignored (issue 12: counted, not answered).
    let mut stranger = FakeAgent::connect(&source, "c3").await;
    stranger.send_spec_resync(&[("orphan", 3)]).await;
    eventually("the stranger's request refused", || async {
        hub.metrics().refused_count("unregistered_cluster") == 1
    })
    .await;
    assert!(stranger.drain(Duration::from_millis(300)).await.is_empty());

    // Zero works for a registered cluster: still synthetic deletes.
    assert_eq!(create_cluster(&hub, "c2").await.status, 201);
    let mut empty = FakeAgent::connect(&source, "c2").await;
    empty.send_spec_resync(&[("orphan", 3)]).await;
    let orphan = empty
        .next("zero-works answer", |e| is_type(e, "spec.resync_response"))
        .await;
    assert_eq!(ext(&orphan, "resourceid").unwrap(), "orphan");
    assert_eq!(ext(&orphan, "clustername").unwrap(), "c2");
    assert!(ext(&orphan, "deletiontimestamp").is_some());
    hub.shutdown().await;
}

#[tokio::test]
async fn status_resync_request_after_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("statusresync");
    let hub = start_hub(dir.path(), &source).await;
    create_cluster(&hub, "c1").await;
    let mut agent = FakeAgent::connect(&source, "c1").await;
    put_work(&hub, &work_json("c1", "w1", "a")).await;
    put_work(&hub, &work_json("c1", "w2", "a")).await;
    let id1 = work_resource_id(&source, "c1", "w1").to_string();
    let id2 = work_resource_id(&source, "c1", "w2").to_string();
    agent.next("w1", |e| is_type(e, "create_request")).await;
    agent.next("w2", |e| is_type(e, "create_request")).await;
    let seq = SequenceIdGenerator::default()
        .clone()
        .next()
        .unwrap()
        .to_string();
    agent.send_status(&id1, 1, &seq, applied(1)).await;
    eventually("status stored", || async {
        !get_work(&hub, "c1", "w1").await.body["status"].is_null()
    })
    .await;
    let stored_hash = hub
        .store()
        .run({
            let id1 = id1.clone();
            move |s| s.get_work_by_uid(&id1)
        })
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap()
        .status_hash
        .unwrap();
    hub.shutdown().await;

    // A restarted hub asks for statuses as soon as it is subscribed.
    let hub = start_hub(dir.path(), &source).await;
    let req = agent
        .next("status resync", |e| is_type(e, "status.resync_request"))
        .await;
    assert_eq!(req.source(), &source);
    assert_eq!(ext(&req, "clustername").unwrap(), "c1");
    let hashes = json_data(&req).unwrap()["statusHashes"].clone();
    let by_id = |id: &str| {
        hashes
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["resourceID"] == id)
            .map(|h| h["statusHash"].as_str().unwrap().to_string())
    };
    assert_eq!(by_id(&id1).unwrap(), stored_hash);
    assert_eq!(by_id(&id2).unwrap(), NO_STATUS_HASH);
    hub.shutdown().await;
}

#[tokio::test]
async fn outbox_survives_a_hub_that_never_reached_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("outbox");
    // Port 1 on loopback: nothing listens, so nothing can be published.
    let hub = start_hub_with(dir.path(), &source, "127.0.0.1", 1).await;
    assert_eq!(create_cluster(&hub, "c1").await.status, 201);
    assert_eq!(
        put_work(&hub, &work_json("c1", "w1", "a")).await.status,
        201
    );
    let metrics = http("GET", format!("{}/metrics", hub.base_url()), None, None).await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("workbus_hub_outbox_depth 1")
    );
    hub.shutdown().await;

    let mut agent = FakeAgent::connect(&source, "c1").await;
    let hub = start_hub(dir.path(), &source).await;
    let create = agent
        .next("create after restart", |e| {
            is_type(e, "spec.create_request")
        })
        .await;
    assert_eq!(
        ext(&create, "resourceid").unwrap(),
        work_resource_id(&source, "c1", "w1").to_string()
    );
    eventually("outbox drained", || async {
        hub.store().run(|s| s.outbox_depth()).await.unwrap() == 0
    })
    .await;
    hub.shutdown().await;
}
