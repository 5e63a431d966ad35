//! Issue 9, bug 6: a status whose sequence id lies far in the future (valid snowflake
//! syntax, year ~2080) must not freeze the work's status — neither when it arrives now
//! (refused beyond the allowed clock skew) nor when an older hub already stored one
//! (later statuses are accepted again, across restarts and spec changes). Against
//! Mosquitto, with a fake agent on the wire.

mod common;

use common::*;
use serde_json::{Value, json};
use workbus_schemas::sequence_id::SequenceIdGenerator;

/// The report's sequence id: node 1, valid syntax, timestamp in ~2080.
const FAR_FUTURE: &str = "9223372036850585600";

fn applied_status(generation: i64, reason: &str) -> Value {
    json!({"conditions": [{"type": "Applied", "status": "True", "observedGeneration": generation,
        "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": reason, "message": reason}]})
}

/// The `reason` of the stored status's first condition: which status the hub kept.
async fn stored_reason(hub: &workbus_hub::HubHandle, cluster: &str) -> Option<String> {
    get_work(hub, cluster, "w1").await.body["status"]["conditions"][0]["reason"]
        .as_str()
        .map(str::to_string)
}

/// As reported: one status with a far-future sequence id; the real statuses after it
/// must still be accepted.
#[tokio::test]
async fn far_future_sequence_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("skew");
    let CreatedWork {
        hub,
        cluster,
        agent,
        uid,
    } = CreatedWork::start(dir.path(), &source).await;

    agent
        .send_status(&uid, 1, FAR_FUTURE, applied_status(1, "FromTheFuture"))
        .await;
    let real = SequenceIdGenerator::default().next().unwrap().to_string();
    agent
        .send_status(&uid, 1, &real, applied_status(1, "Real"))
        .await;
    eventually("the real status stored", || async {
        stored_reason(&hub, &cluster).await.as_deref() == Some("Real")
    })
    .await;
    assert_eq!(hub.metrics().dropped_count("future_sequence_id"), 1);
    assert_eq!(hub.metrics().dropped_count("not_newer"), 0);
    hub.shutdown().await;
}

/// State left by an older hub: a far-future sequence id already stored. After a restart
/// the current generation's statuses are accepted again, and so is the first status of
/// a later generation.
#[tokio::test]
async fn far_future_sequence_id_stored_by_an_older_hub_does_not_freeze_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("poison");
    let CreatedWork {
        hub,
        cluster,
        mut agent,
        uid,
    } = CreatedWork::start(dir.path(), &source).await;
    let mut seq = SequenceIdGenerator::default();
    let first = seq.next().unwrap().to_string();
    agent
        .send_status(&uid, 1, &first, applied_status(1, "First"))
        .await;
    eventually("the first status stored", || async {
        stored_reason(&hub, &cluster).await.as_deref() == Some("First")
    })
    .await;
    hub.shutdown().await;
    // What a hub without the skew bound stored when the far-future status arrived.
    let db = rusqlite::Connection::open(dir.path().join(workbus_hub::hub::DB_FILE)).unwrap();
    let poisoned = db
        .execute(
            "UPDATE work_status SET sequence_id = ?1 WHERE uid = ?2",
            [FAR_FUTURE, uid.as_str()],
        )
        .unwrap();
    assert_eq!(poisoned, 1);
    drop(db);

    let hub = start_hub(dir.path(), &source).await;
    let same = seq.next().unwrap().to_string();
    agent
        .send_status(&uid, 1, &same, applied_status(1, "Same"))
        .await;
    eventually("a status of the same generation stored", || async {
        stored_reason(&hub, &cluster).await.as_deref() == Some("Same")
    })
    .await;
    // And after a spec change, the new generation's first status.
    assert_eq!(
        put_work(&hub, &work_json(&cluster, "w1", "b")).await.status,
        200
    );
    agent
        .next("update", |e| is_type(e, "spec.update_request"))
        .await;
    let next = seq.next().unwrap().to_string();
    agent
        .send_status(&uid, 2, &next, applied_status(2, "Next"))
        .await;
    eventually("the new generation's status stored", || async {
        stored_reason(&hub, &cluster).await.as_deref() == Some("Next")
    })
    .await;
    assert_eq!(hub.metrics().dropped_count("not_newer"), 0);
    hub.shutdown().await;
}
