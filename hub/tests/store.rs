//! The SQLite store on a real file: migrations, persistence across reopen, cluster and
//! work CRUD with the generation rules, the outbox written in the same transaction,
//! the append-only audit log, a corrupt row reported instead of a panic, and parked
//! outbox rows (kept out of the queue, superseded by newer events, migrated from v1).

mod work_fixture;

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use work_fixture::desired;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::migrations::{MIGRATIONS, latest_version};
use workbus_hub::store::sqlite::SqliteStore;
use workbus_hub::store::{
    ApplyOutcome, AuditDirection, AuditEntry, DesiredWork, DropReason, IncomingStatus, NewOutbox,
    StatusOutcome, Store, StoreError, WorkFilter, WorkKey,
};
use workbus_schemas::envelope::status_resync_request;
use workbus_schemas::work::ManifestWorkStatus;

fn apply(s: &SqliteStore, d: &DesiredWork) -> Result<ApplyOutcome, StoreError> {
    let now = Utc::now();
    s.apply_work(d, false, now, &|w, c| change_event("src", w, c, now))
        .map(|(o, _)| o)
}

#[test]
fn migrations_crud_outbox_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), latest_version());
        s.create_cluster("c1", &BTreeMap::new(), Utc::now())
            .unwrap();
        assert!(matches!(
            s.create_cluster("c1", &BTreeMap::new(), Utc::now()),
            Err(StoreError::AlreadyExists { .. })
        ));
        assert!(matches!(
            apply(&s, &desired("nope", "w", "a")),
            Err(StoreError::NotFound {
                kind: "cluster",
                ..
            })
        ));
        let d = desired("c1", "w1", "a");
        assert_eq!(apply(&s, &d).unwrap(), ApplyOutcome::Created);
        assert_eq!(apply(&s, &d).unwrap(), ApplyOutcome::Unchanged);
        assert_eq!(
            apply(&s, &desired("c1", "w1", "b")).unwrap(),
            ApplyOutcome::Updated
        );
        let mut labelled = desired("c1", "w1", "b");
        labelled.labels.insert("x".into(), "y".into());
        assert_eq!(apply(&s, &labelled).unwrap(), ApplyOutcome::Updated);
        let w = s.get_work(&d.key).unwrap().unwrap();
        assert_eq!(w.generation, 3);
        // One queued event per accepted change, in order.
        let queued = s.outbox_batch(0, 10).unwrap();
        let types: Vec<String> = queued
            .iter()
            .map(|e| {
                use cloudevents::AttributesReader;
                e.event
                    .as_ref()
                    .unwrap()
                    .ty()
                    .rsplit('.')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            types,
            ["create_request", "update_request", "update_request"]
        );
        // Completing an entry removes it and audits it.
        s.complete_outbox(queued[0].id, Utc::now()).unwrap();
        assert_eq!(s.outbox_depth().unwrap(), 2);
        assert_eq!(s.audit(Some(&w.uid), 10).unwrap().len(), 1);
        assert!(matches!(
            s.delete_cluster("c1"),
            Err(StoreError::Conflict(_))
        ));
    }
    // Reopen: everything is still there, migrations are not re-run.
    let s = SqliteStore::open(&path).unwrap();
    let key = WorkKey {
        cluster: "c1".into(),
        name: "w1".into(),
    };
    let w = s.get_work(&key).unwrap().unwrap();
    assert_eq!(w.generation, 3);
    assert_eq!(w.labels.get("x").map(String::as_str), Some("y"));
    assert_eq!(s.outbox_depth().unwrap(), 2);

    // Deleting keeps the generation, queues a delete, and is idempotent.
    let now = Utc::now();
    let build = |w: &_, c| change_event("src", w, c, now);
    let deleting = s.mark_deleting(&key, now, &build).unwrap();
    assert!(deleting.deletion.is_some());
    s.mark_deleting(&key, now, &build).unwrap();
    assert_eq!(s.outbox_depth().unwrap(), 3);
    assert!(matches!(
        apply(&s, &desired("c1", "w1", "z")),
        Err(StoreError::Conflict(_))
    ));

    // Deleted=True removes the work; a later status for it is an unknown work.
    let status = IncomingStatus {
        uid: w.uid.clone(),
        cluster: Some("c1".into()),
        generation: 3,
        sequence_id: "2000808179721572352".into(),
        status_hash: None,
        status: ManifestWorkStatus::default(),
        deleted: true,
        received: Utc::now(),
    };
    let audit = workbus_hub::store::AuditEntry {
        at: Utc::now(),
        direction: workbus_hub::store::AuditDirection::Received,
        cluster: Some("c1".into()),
        resource_id: Some(w.uid.clone()),
        event_type: "t".into(),
        event: s.outbox_batch(0, 1).unwrap()[0].event.clone().unwrap(),
    };
    assert!(matches!(
        s.ingest_status(&status, &audit).unwrap(),
        workbus_hub::store::StatusOutcome::Deleted(_)
    ));
    assert!(s.get_work(&key).unwrap().is_none());
    assert!(s.get_cluster("c1").unwrap().unwrap().last_heard.is_some());
    s.delete_cluster("c1").unwrap();
    assert!(s.list_clusters().unwrap().is_empty());
}

#[test]
fn audit_is_append_only_and_corrupt_rows_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.create_cluster("c1", &BTreeMap::new(), Utc::now())
            .unwrap();
        apply(&s, &desired("c1", "w1", "a")).unwrap();
        let id = s.outbox_batch(0, 1).unwrap()[0].id;
        s.complete_outbox(id, Utc::now()).unwrap();
        for i in 0..3 {
            apply(&s, &desired("c1", &format!("x{i}"), "a")).unwrap();
        }
        let page = s
            .list_works(&WorkFilter {
                after: Some(WorkKey {
                    cluster: "c1".into(),
                    name: "x0".into(),
                }),
                limit: 10,
                ..WorkFilter::default()
            })
            .unwrap();
        let names: Vec<&str> = page.iter().map(|w| w.key.name.as_str()).collect();
        assert_eq!(names, ["x1", "x2"]);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert!(
        conn.execute("UPDATE audit SET event_type = 'x'", [])
            .is_err()
    );
    assert!(conn.execute("DELETE FROM audit", []).is_err());
    conn.execute("UPDATE works SET spec = 'not json' WHERE name = 'x0'", [])
        .unwrap();
    drop(conn);
    let s = SqliteStore::open(&path).unwrap();
    let err = s
        .get_work(&WorkKey {
            cluster: "c1".into(),
            name: "x0".into(),
        })
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { table: "works", .. }),
        "{err}"
    );
    // Other works still read fine.
    assert!(
        s.get_work(&WorkKey {
            cluster: "c1".into(),
            name: "w1".into(),
        })
        .unwrap()
        .is_some()
    );
}

fn deleted_status(uid: &str, generation: i64, sequence_id: &str) -> IncomingStatus {
    IncomingStatus {
        uid: uid.to_string(),
        cluster: Some("c1".into()),
        generation,
        sequence_id: sequence_id.into(),
        status_hash: None,
        status: ManifestWorkStatus::default(),
        deleted: true,
        received: Utc::now(),
    }
}

fn received_audit(uid: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        direction: AuditDirection::Received,
        cluster: Some("c1".into()),
        resource_id: Some(uid.to_string()),
        event_type: "t".into(),
        event: workbus_schemas::envelope::status_resync_request(
            "src",
            "c1",
            serde_json::json!({"statusHashes": []}),
            Utc::now(),
        ),
    }
}

/// A work re-created under a name used before continues its predecessor's generations
/// (also after a reopen), so each incarnation's `Deleted` confirmation is told apart.
#[test]
fn generations_continue_across_incarnations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let key = WorkKey {
        cluster: "c1".into(),
        name: "w1".into(),
    };
    let now = Utc::now();
    let build = |w: &_, c| change_event("src", w, c, now);
    let ingest = |s: &SqliteStore, uid: &str, generation: i64| {
        let status = deleted_status(uid, generation, "2000808179721572352");
        s.ingest_status(&status, &received_audit(uid)).unwrap()
    };
    let uid = {
        let s = SqliteStore::open(&path).unwrap();
        s.create_cluster("c1", &BTreeMap::new(), now).unwrap();
        apply(&s, &desired("c1", "w1", "a")).unwrap();
        apply(&s, &desired("c1", "w1", "b")).unwrap();
        let first = s.mark_deleting(&key, now, &build).unwrap();
        assert_eq!(first.generation, 2);
        assert!(matches!(
            ingest(&s, &first.uid, 2),
            StatusOutcome::Deleted(_)
        ));

        // Re-created: same uid, generation 3.
        assert_eq!(
            apply(&s, &desired("c1", "w1", "c")).unwrap(),
            ApplyOutcome::Created
        );
        let second = s.get_work(&key).unwrap().unwrap();
        assert_eq!(
            (second.uid.as_str(), second.generation),
            (first.uid.as_str(), 3)
        );
        // The first incarnation's confirmation, again: not this work's deletion.
        assert_eq!(
            ingest(&s, &first.uid, 2),
            StatusOutcome::Dropped(DropReason::NotDeleting)
        );
        s.mark_deleting(&key, now, &build).unwrap();
        assert_eq!(
            ingest(&s, &first.uid, 2),
            StatusOutcome::Dropped(DropReason::StaleGeneration)
        );
        assert!(s.get_work(&key).unwrap().is_some());
        assert!(matches!(
            ingest(&s, &first.uid, 3),
            StatusOutcome::Deleted(_)
        ));
        first.uid
    };
    // The tombstone is durable: a third incarnation after a reopen starts at 4.
    let s = SqliteStore::open(&path).unwrap();
    apply(&s, &desired("c1", "w1", "d")).unwrap();
    let third = s.get_work(&key).unwrap().unwrap();
    assert_eq!((third.uid, third.generation), (uid, 4));
    // A name never deleted starts at 1.
    apply(&s, &desired("c1", "w2", "a")).unwrap();
    let other = WorkKey {
        cluster: "c1".into(),
        name: "w2".into(),
    };
    assert_eq!(s.get_work(&other).unwrap().unwrap().generation, 1);
}

/// The deletion re-drive's store side: pending deletions are listed; queueing their
/// delete events again skips works no longer deleting (completed, or re-created).
#[test]
fn pending_deletions_are_listed_and_redriven_only_while_deleting() {
    use cloudevents::AttributesReader;
    use workbus_schemas::extensions::OcmExtensions;

    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
    let now = Utc::now();
    let build = |w: &_, c| change_event("src", w, c, now);
    s.create_cluster("c1", &BTreeMap::new(), now).unwrap();
    for name in ["w1", "w2"] {
        apply(&s, &desired("c1", name, "a")).unwrap();
    }
    let key = |name: &str| WorkKey {
        cluster: "c1".into(),
        name: name.into(),
    };
    let w1 = s.mark_deleting(&key("w1"), now, &build).unwrap();
    let w2 = s.get_work(&key("w2")).unwrap().unwrap();
    let pending = s.pending_deletions().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].uid, w1.uid);
    assert_eq!(pending[0].requested, w1.deletion.unwrap());

    let depth = s.outbox_depth().unwrap();
    let uids = [w1.uid.clone(), w2.uid.clone(), "unknown".to_string()];
    assert_eq!(s.redrive_deletions(&uids, now, &build).unwrap(), 1);
    let queued = s.outbox_batch(0, 100).unwrap();
    assert_eq!(queued.len() as u64, depth + 1);
    let again = queued.last().unwrap().event.as_ref().unwrap();
    assert!(again.ty().ends_with("spec.delete_request"));
    assert_eq!(again.resource_id().unwrap(), w1.uid);
    assert_eq!(again.resource_version().unwrap(), w1.generation);
    assert!(again.deletion_timestamp().unwrap().is_some());

    // Confirmed, then re-created: nothing to re-drive any more.
    let confirmed = deleted_status(&w1.uid, w1.generation, "2000808179721572352");
    s.ingest_status(&confirmed, &received_audit(&w1.uid))
        .unwrap();
    assert!(s.pending_deletions().unwrap().is_empty());
    apply(&s, &desired("c1", "w1", "b")).unwrap();
    assert_eq!(s.redrive_deletions(&uids, now, &build).unwrap(), 0);
    assert_eq!(s.outbox_depth().unwrap(), depth + 2); // + the re-creation
}

#[test]
fn parked_rows_leave_the_queue_until_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
    s.create_cluster("c1", &BTreeMap::new(), Utc::now())
        .unwrap();
    s.create_cluster("c2", &BTreeMap::new(), Utc::now())
        .unwrap();
    apply(&s, &desired("c1", "w1", "a")).unwrap(); // u1 generation 1
    apply(&s, &desired("c1", "w1", "b")).unwrap(); // u1 generation 2
    apply(&s, &desired("c1", "w2", "a")).unwrap(); // u2 generation 1
    apply(&s, &desired("c1", "w2", "b")).unwrap(); // u2 generation 2
    apply(&s, &desired("c2", "w1", "a")).unwrap(); // another cluster
    // Two events about no work, of one type, for c1.
    let resync = |n: usize| NewOutbox {
        cluster: "c1".into(),
        resource_id: None,
        event: status_resync_request("src", "c1", json!({"statusHashes": [n]}), Utc::now()),
    };
    s.enqueue(&[resync(1), resync(2)], Utc::now()).unwrap();
    let ids: Vec<i64> = s
        .outbox_batch(0, 10)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let [u1g1, u1g2, u2g1, u2g2, c2w1, r1, r2] = ids[..] else {
        panic!("{ids:?}")
    };

    // Parking takes a row out of the queue and the depth, and keeps it with the reason.
    assert_eq!(s.park_outbox(u1g2, "too large", Utc::now()).unwrap(), 0);
    assert_eq!(s.outbox_depth().unwrap(), 6);
    assert_eq!(s.outbox_parked_count().unwrap(), 1);
    assert!(s.outbox_batch(0, 10).unwrap().iter().all(|e| e.id != u1g2));
    let parked = s.parked_outbox(0, 10).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, "too large");
    assert!(parked[0].entry.event.is_ok());
    assert!(matches!(
        s.park_outbox(u1g2, "again", Utc::now()),
        Err(StoreError::NotFound { .. })
    ));
    // Completing an older event of the work leaves the newer parked one alone.
    s.complete_outbox(u1g1, Utc::now()).unwrap();
    assert_eq!(s.outbox_parked_count().unwrap(), 1);

    // A newer event of the same work supersedes a parked one, parked or published.
    s.park_outbox(u2g1, "too large", Utc::now()).unwrap();
    assert_eq!(
        s.park_outbox(u2g2, "still too large", Utc::now()).unwrap(),
        1
    );
    let parked: Vec<i64> = s
        .parked_outbox(0, 10)
        .unwrap()
        .iter()
        .map(|p| p.entry.id)
        .collect();
    assert_eq!(parked, [u1g2, u2g2]);
    // For events about no work, the same type for the same cluster supersedes.
    s.park_outbox(r1, "bad", Utc::now()).unwrap();
    s.complete_outbox(c2w1, Utc::now()).unwrap();
    assert_eq!(s.outbox_parked_count().unwrap(), 3);
    s.complete_outbox(r2, Utc::now()).unwrap();
    assert_eq!(s.outbox_parked_count().unwrap(), 2);

    // Unparked rows are pending again, in their place.
    s.unpark_outbox(&[u1g2]).unwrap();
    assert_eq!(s.outbox_parked_count().unwrap(), 1);
    assert_eq!(s.outbox_batch(0, 10).unwrap()[0].id, u1g2);
    assert_eq!(s.outbox_depth().unwrap(), 1);
}

#[test]
fn outbox_rows_of_a_version_1_database_stay_pending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        let event = status_resync_request("src", "c1", json!({}), Utc::now());
        conn.execute(
            "INSERT INTO outbox (cluster, resource_id, event_type, event, created) \
             VALUES ('c1', NULL, 't', ?1, '2025-01-01T00:00:00.000000000Z')",
            [serde_json::to_string(&event).unwrap()],
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), latest_version());
    assert_eq!(s.outbox_depth().unwrap(), 1);
    assert_eq!(s.outbox_parked_count().unwrap(), 0);
    assert_eq!(s.outbox_batch(0, 10).unwrap().len(), 1);
}
