//! The audit log end to end, against Mosquitto with an agent stand-in on the wire: API
//! changes carry their actor, `audit log` filters, `audit replay` at several points of
//! a run equals what the hub showed at those times, `audit verify` passes (live and
//! offline once the hub stopped, its last record a checkpoint), an export verifies
//! with the public key alone, and scoped tokens see only their clusters.

mod common;

use chrono::Utc;
use common::*;
use serde_json::{Value, json};
use workbus_hub::cli::audit::verify_file;
use workbus_schemas::resource_id::work_resource_id;
use workbus_schemas::sequence_id::SequenceIdGenerator;
use workbus_schemas::signature::VerifyingKey;

fn applied(generation: i64) -> Value {
    json!({"conditions": [{"type": "Applied", "status": "True", "observedGeneration": generation,
        "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": "AppliedManifestWorkComplete",
        "message": "Apply manifest work complete"}]})
}

fn deleted() -> Value {
    json!({"conditions": [{"type": "Deleted", "status": "True", "lastTransitionTime": "2025-12-16T06:00:17Z",
        "reason": "ManifestsDeleted", "message": "The manifests are deleted from the cluster"}]})
}

async fn get(hub: &workbus_hub::HubHandle, path: &str) -> Resp {
    http("GET", format!("{}{path}", hub.base_url()), None, None).await
}

/// `audit replay` of `cluster` at `at`: (name, generation, status generation) per work.
async fn replay(
    hub: &workbus_hub::HubHandle,
    at: chrono::DateTime<Utc>,
) -> Vec<(String, i64, Option<i64>)> {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let r = get(
        hub,
        &format!(
            "/api/v1/audit/replay?cluster=c1&at={}",
            at.replace('+', "%2B")
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_string(),
                w["generation"].as_i64().unwrap(),
                w.pointer("/status/generation").and_then(Value::as_i64),
            )
        })
        .collect()
}

#[tokio::test]
async fn log_replay_verify_and_export_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("audit");
    let hub = start_hub(dir.path(), &source).await;
    assert_eq!(create_cluster(&hub, "c1").await.status, 201);
    let mut agent = FakeAgent::connect(&source, "c1").await;
    let uid = work_resource_id(&source, "c1", "w1").to_string();
    let mut seq = SequenceIdGenerator::default();
    let before = Utc::now();

    // Generation 1, applied.
    assert_eq!(
        put_work(&hub, &work_json("c1", "w1", "a")).await.status,
        201
    );
    agent
        .next("create", |e| is_type(e, "spec.create_request"))
        .await;
    agent
        .send_status(&uid, 1, &seq.next().unwrap().to_string(), applied(1))
        .await;
    eventually("status 1 stored", || async {
        get_work(&hub, "c1", "w1").await.body["status"]["conditions"][0]["observedGeneration"] == 1
    })
    .await;
    let t1 = Utc::now();

    // Generation 2, applied.
    assert_eq!(
        put_work(&hub, &work_json("c1", "w1", "b")).await.status,
        200
    );
    agent
        .next("update", |e| is_type(e, "spec.update_request"))
        .await;
    agent
        .send_status(&uid, 2, &seq.next().unwrap().to_string(), applied(2))
        .await;
    eventually("status 2 stored", || async {
        get_work(&hub, "c1", "w1").await.body["status"]["conditions"][0]["observedGeneration"] == 2
    })
    .await;
    let t2 = Utc::now();

    // Deleted, and confirmed.
    let del = http(
        "DELETE",
        format!("{}/api/v1/clusters/c1/works/w1", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(del.status, 202);
    agent
        .next("delete", |e| is_type(e, "spec.delete_request"))
        .await;
    agent
        .send_status(&uid, 2, &seq.next().unwrap().to_string(), deleted())
        .await;
    eventually("work gone", || async {
        get_work(&hub, "c1", "w1").await.status == 404
    })
    .await;
    let t3 = Utc::now();

    // Replay at each point equals what the hub showed then.
    assert_eq!(replay(&hub, before).await, vec![]);
    assert_eq!(replay(&hub, t1).await, vec![("w1".to_string(), 1, Some(1))]);
    assert_eq!(replay(&hub, t2).await, vec![("w1".to_string(), 2, Some(2))]);
    assert_eq!(replay(&hub, t3).await, vec![]);
    let timeline = get(&hub, "/api/v1/audit/replay?cluster=c1&work=w1")
        .await
        .body;
    let kinds: Vec<&str> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["direction"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["sent", "received", "sent", "received", "sent", "received"]
    );

    // The log: the cluster's creation with its actor; the work's records; filters.
    let api = get(&hub, "/api/v1/audit/log?direction=api").await.body;
    assert_eq!(
        api["items"][0]["eventType"],
        "io.workbus.api.cluster.create"
    );
    assert_eq!(api["items"][0]["actor"], "admin");
    assert_eq!(api["items"][0]["cluster"], "c1");
    let work = get(&hub, "/api/v1/audit/log?cluster=c1&work=w1&direction=sent")
        .await
        .body;
    let versions: Vec<i64> = work["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resourceVersion"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 2]);
    assert!(
        work["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["actor"] == "admin")
    );
    let page = get(&hub, "/api/v1/audit/log?limit=2").await.body;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["metadata"]["continue"].as_str().unwrap().to_string();
    let rest = get(&hub, &format!("/api/v1/audit/log?after={next}&limit=1"))
        .await
        .body;
    assert_eq!(
        rest["items"][0]["seq"].as_u64().unwrap(),
        next.parse::<u64>().unwrap() + 1
    );

    // Scoped tokens see their clusters only; verification needs an unscoped one.
    let token = http(
        "POST",
        format!("{}/api/v1/tokens", hub.base_url()),
        None,
        Some(json!({"name": "edge-reader", "role": "reader", "clusters": ["c2"]}).to_string()),
    )
    .await;
    assert_eq!(token.status, 201);
    let secret = token.body["token"].as_str().unwrap().to_string();
    let as_scoped = |path: &str| {
        http_as(
            Some(&secret),
            "GET",
            format!("{}{path}", hub.base_url()),
            None,
            None,
        )
    };
    assert_eq!(as_scoped("/api/v1/audit/log").await.status, 403);
    assert_eq!(as_scoped("/api/v1/audit/log?cluster=c1").await.status, 403);
    assert_eq!(as_scoped("/api/v1/audit/log?cluster=c2").await.status, 200);
    assert_eq!(as_scoped("/api/v1/audit/verify").await.status, 403);
    assert_eq!(as_scoped("/api/v1/audit/export").await.status, 403);

    // Verify live; export and verify the file with the public key alone.
    let report = get(&hub, "/api/v1/audit/verify").await.body;
    assert_eq!(report["ok"], true, "{report}");
    let key = get(&hub, "/api/v1/audit/public-key").await.body["publicKey"]
        .as_str()
        .unwrap()
        .to_string();
    let client = hub.client();
    let file = dir.path().join("export.jsonl");
    let out = file.clone();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::create(&out).unwrap();
        client.get_to("/api/v1/audit/export", &mut f).unwrap();
    })
    .await
    .unwrap();
    let report = verify_file(&file, VerifyingKey::parse(&key).unwrap()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.checkpoints >= 1);
    assert_eq!(report.unsigned_tail, 0);

    // Stopped: the last record is a checkpoint; the data directory verifies offline.
    hub.shutdown().await;
    let s = workbus_hub::store::open(&workbus_hub::StoreSettings::sqlite(dir.path())).unwrap();
    let key = VerifyingKey::parse(&key).unwrap();
    let anchor = workbus_hub::audit::sealer::read_checked_anchor(dir.path(), &key).unwrap();
    let report =
        workbus_hub::audit::verify::verify_store(s.as_ref(), Some(key), None, None, anchor)
            .unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.unsigned_tail, 0, "{report:?}");
}
