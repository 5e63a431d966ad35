//! What only the SQLite backend does (the behaviour every backend shares is in
//! `store_conformance.rs`): versioned migrations, the append-only audit table guarded by
//! triggers, a corrupt row reported instead of a panic, and a version 1 database's
//! outbox rows kept pending by the migration that added parking.

mod work_fixture;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use work_fixture::desired;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::migrations::{MIGRATIONS, latest_version};
use workbus_hub::store::sqlite::SqliteStore;
use workbus_hub::store::writes::{ApplyWork, CompleteOutbox, CreateCluster};
use workbus_hub::store::{Store, StoreError, WorkKey};
use workbus_schemas::envelope::status_resync_request;

/// No wire format: rows come with their events.
const NO_WIRE: &str = "";

fn open(path: &std::path::Path) -> (SqliteStore, i64) {
    let s = SqliteStore::open(path).unwrap();
    let version = s.schema_version().unwrap();
    (s, version)
}

fn apply(s: &dyn Store, cluster: &str, name: &str) {
    let now = Utc::now();
    s.write(ApplyWork {
        desired: desired(cluster, name, "a"),
        create_only: false,
        now,
        build: Arc::new(move |w, c| change_event("src", w, c, now).map(Into::into)),
        actor: None,
    })
    .unwrap();
}

#[test]
fn audit_is_append_only_and_corrupt_rows_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    {
        let (s, version) = open(&path);
        assert_eq!(version, latest_version());
        let s: &dyn Store = &s;
        s.write(CreateCluster {
            name: "c1".into(),
            labels: BTreeMap::new(),
            now: Utc::now(),
        })
        .unwrap();
        apply(s, "c1", "w1");
        let id = s.outbox_batch(0, 1, NO_WIRE).unwrap()[0].id;
        s.write(CompleteOutbox {
            ids: vec![id],
            sent_at: Utc::now(),
        })
        .unwrap();
        apply(s, "c1", "x0");
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
    let (s, version) = open(&path);
    assert_eq!(version, latest_version(), "reopening migrates nothing");
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
    assert_eq!(s.audit(None, 10).unwrap().len(), 1);
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
    let (s, version) = open(&path);
    assert_eq!(version, latest_version());
    assert_eq!(s.outbox_depth().unwrap(), 1);
    assert_eq!(s.outbox_parked_count().unwrap(), 0);
    assert_eq!(s.outbox_batch(0, 10, NO_WIRE).unwrap().len(), 1);
}
