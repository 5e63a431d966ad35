//! What only the PostgreSQL backend has (the shared behaviour is the conformance suite,
//! `store_conformance.rs`): migrations run once when several hubs start together, write
//! transactions of hubs sharing a database are serialised, the audit tables refuse
//! changes (all but a retention cut's) and a record changed anyway is found by `audit
//! verify`, pre-chain audit rows are kept aside, the first write after a cut connection
//! succeeds, a writer stopped inside a transaction loses the writers' lock, a newer schema is refused, an unreachable server is a typed error naming
//! host and port, `--store` values, and `audit verify|export --data-dir --store`
//! offline. Tests needing a server print `SKIPPED` without one (a failure with
//! `WORKBUS_REQUIRE_POSTGRES=1`).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use workbus_hub::StoreSettings;
use workbus_hub::audit::api_record::api_entry;
use workbus_hub::audit::verify::{Problem, verify_store};
use workbus_hub::config::StoreUrlError;
use workbus_hub::store::postgres::PostgresStore;
use workbus_hub::store::postgres_migrations::latest_version;
use workbus_hub::store::writes::AppendAudit;
use workbus_hub::store::{Store, StoreError};

#[test]
fn hubs_starting_together_migrate_once() {
    let Some(db) = workbus_testkit::postgres_or_skip("concurrent migrations") else {
        return;
    };
    let opened: Vec<Result<PostgresStore, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PostgresStore::open(db.url(), None)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for store in &opened {
        let store = store.as_ref().expect("every hub opens the store");
        assert_eq!(store.schema_version().unwrap(), latest_version());
    }
    let mut client = db.client().unwrap();
    let versions: i64 = client
        .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(versions, latest_version(), "each migration applied once");
}

/// The stores of two hubs sharing the database at `url`.
fn two_hubs_stores(url: &str) -> (Arc<dyn Store>, Arc<dyn Store>) {
    let open = || -> Arc<dyn Store> { Arc::new(PostgresStore::open(url, None).unwrap()) };
    (open(), open())
}

#[test]
fn writers_of_hubs_sharing_a_database_are_serialised() {
    let Some(db) = workbus_testkit::postgres_or_skip("serialised writers") else {
        return;
    };
    let (a, b) = two_hubs_stores(db.url());
    let (a_inside, a_entered) = mpsc::channel();
    let (release, a_released) = mpsc::channel::<()>();
    let (b_inside, b_entered) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            a.transaction(&mut |_tx| {
                a_inside.send(()).unwrap();
                a_released.recv_timeout(Duration::from_secs(10)).unwrap();
                Ok(())
            })
            .unwrap();
        });
        a_entered.recv_timeout(Duration::from_secs(10)).unwrap();
        s.spawn(move || {
            b.transaction(&mut |_tx| {
                b_inside.send(()).unwrap();
                Ok(())
            })
            .unwrap();
        });
        // Nothing announces "B is waiting for the lock"; a bounded wait shows it does
        // not get in while A's transaction is open.
        assert!(
            b_entered.recv_timeout(Duration::from_millis(300)).is_err(),
            "a second hub's write ran inside the first one's transaction"
        );
        release.send(()).unwrap();
        b_entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the second write runs once the first committed");
    });
}

/// A hub stopped inside a write transaction (SIGSTOP, a frozen VM) must not hold the
/// writers' lock for as long as it is stopped: the server ends its session after
/// `STALLED_TRANSACTION_TIMEOUT` idle in the transaction, the other hub's write goes
/// through, and the stopped one's transaction is not committed. Regression: the
/// multi-hub "paused replica" test hung when the pause caught a replica in a write.
/// Registers cluster `name` inside a write transaction.
fn create_cluster(tx: &mut dyn workbus_hub::store::StoreTx, name: &str) -> Result<(), StoreError> {
    use workbus_hub::store::writes::{CreateCluster, Write};
    CreateCluster {
        name: name.into(),
        labels: Default::default(),
        now: chrono::Utc::now(),
    }
    .run(tx)
    .map(drop)
}

#[test]
fn a_writer_stalled_inside_a_transaction_loses_the_lock() {
    use workbus_hub::store::postgres::STALLED_TRANSACTION_TIMEOUT;
    let Some(db) = workbus_testkit::postgres_or_skip("stalled writer") else {
        return;
    };
    let (a, b) = two_hubs_stores(db.url());
    let (a_inside, a_entered) = mpsc::channel();
    let (release, a_released) = mpsc::channel::<()>();
    let (b_done, b_finished) = mpsc::channel();
    std::thread::scope(|s| {
        let stalled = s.spawn({
            let a = a.clone();
            move || {
                a.transaction(&mut |tx| {
                    a_inside.send(()).unwrap();
                    // Stopped: nothing reaches the server until released.
                    let _ = a_released.recv_timeout(Duration::from_secs(30));
                    create_cluster(tx, "stalled")
                })
            }
        });
        a_entered.recv_timeout(Duration::from_secs(10)).unwrap();
        let started = std::time::Instant::now();
        s.spawn(move || {
            let result = b.transaction(&mut |tx| create_cluster(tx, "live"));
            b_done.send(result.map_err(|e| e.to_string())).unwrap();
        });
        let written = b_finished
            .recv_timeout(STALLED_TRANSACTION_TIMEOUT + Duration::from_secs(10))
            .expect("the live hub's write got the lock once the stalled session was ended");
        assert_eq!(written, Ok(()));
        assert!(started.elapsed() >= STALLED_TRANSACTION_TIMEOUT - Duration::from_secs(1));
        release.send(()).unwrap();
        let result = stalled.join().unwrap();
        assert!(
            result.is_err(),
            "the stalled transaction must not commit: {result:?}"
        );
    });
    let names: Vec<String> = a
        .list_clusters()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(
        names.contains(&"live".to_string()) && !names.contains(&"stalled".to_string()),
        "{names:?}"
    );
    // The stalled hub's store works again on a fresh connection.
    a.transaction(&mut |tx| create_cluster(tx, "back"))
        .expect("a write after the session was ended");
}

#[test]
fn the_audit_table_is_append_only_except_below_a_recorded_cut() {
    let Some(db) = workbus_testkit::postgres_or_skip("append-only audit") else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(db.url(), None).unwrap());
    for action in ["cluster.create", "cluster.label", "cluster.delete"] {
        store
            .write(AppendAudit(api_entry(
                "src",
                "alice",
                action,
                None,
                json!({}),
            )))
            .unwrap();
    }
    let mut client = db.client().unwrap();
    client
        .batch_execute(
            "INSERT INTO audit_legacy (at, direction, event_type, event) \
             VALUES ('2026-01-01T00:00:00.000000000Z', 'sent', 't', '{}')",
        )
        .unwrap();
    let refused = |client: &mut postgres::Client, sql: &str| {
        let e = client.batch_execute(sql).expect_err(sql);
        assert!(
            e.to_string().contains("append-only") || format!("{e:?}").contains("append-only"),
            "{sql}: {e:?}"
        );
    };
    for sql in [
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit WHERE seq = 1",
        "TRUNCATE audit",
        // The rows of before the chain (migration 2) are just as protected.
        "DELETE FROM audit_legacy",
        "TRUNCATE audit_legacy",
    ] {
        refused(&mut client, sql);
    }
    // Retention: the store records a cut, then removes the prefix below it — and
    // nothing at or above it.
    store
        .transaction(&mut |tx| tx.remove_audit_before(3, chrono::Utc::now()).map(drop))
        .unwrap();
    let seqs: Vec<i64> = client
        .query("SELECT seq FROM audit ORDER BY seq", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs, [3]);
    for sql in [
        "DELETE FROM audit WHERE seq = 3",
        "UPDATE audit SET actor = 'mallory' WHERE seq = 3",
        "DELETE FROM audit_cuts",
        "UPDATE audit_cuts SET first_kept = 100",
    ] {
        refused(&mut client, sql);
    }
}

#[test]
fn a_record_changed_in_the_database_is_named_by_verify() {
    let Some(db) = workbus_testkit::postgres_or_skip("audit tampering") else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(db.url(), None).unwrap());
    for actor in ["alice", "bob", "carol"] {
        store
            .write(AppendAudit(api_entry(
                "src",
                actor,
                "token.create",
                None,
                json!({}),
            )))
            .unwrap();
    }
    let report = verify_store(store.as_ref(), None, None, None, None).unwrap();
    assert!(report.ok(), "{report:?}");
    // The owner of the database can switch the triggers off; the chain still tells.
    db.client()
        .unwrap()
        .batch_execute(
            "ALTER TABLE audit DISABLE TRIGGER USER; \
             UPDATE audit SET actor = 'mallory' WHERE seq = 2; \
             ALTER TABLE audit ENABLE TRIGGER USER",
        )
        .unwrap();
    let report = verify_store(store.as_ref(), None, None, None, None).unwrap();
    let bad = report.bad.expect("the change is found");
    assert_eq!((bad.seq, bad.problem), (2, Problem::Modified));
}

#[test]
fn audit_rows_of_before_the_chain_are_kept_aside() {
    let Some(db) = workbus_testkit::postgres_or_skip("audit chain migration") else {
        return;
    };
    // A database at version 1, with an audit row of the unchained kind.
    let mut client = db.client().unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, \
             applied TIMESTAMPTZ NOT NULL DEFAULT now()); {} \
             INSERT INTO schema_migrations (version) VALUES (1); \
             INSERT INTO audit (at, direction, event_type, event) \
             VALUES ('2026-01-01T00:00:00.000000000Z', 'sent', 't', '{{}}')",
            workbus_hub::store::postgres_migrations::MIGRATIONS[0]
        ))
        .unwrap();
    let opened = PostgresStore::open(db.url(), None).unwrap();
    assert_eq!(opened.schema_version().unwrap(), latest_version());
    let store: Arc<dyn Store> = Arc::new(opened);
    let legacy: i64 = client
        .query_one("SELECT COUNT(*) FROM audit_legacy", &[])
        .unwrap()
        .get(0);
    assert_eq!(legacy, 1, "the old row is kept, outside the chain");
    assert_eq!(store.audit_head().unwrap(), None, "the chain starts empty");
    let first = store
        .write(AppendAudit(api_entry(
            "src",
            "alice",
            "token.create",
            None,
            json!({}),
        )))
        .unwrap();
    assert_eq!(first.seq, 1);
}

/// Regression: after the network cut the store's idle connections, the first write
/// (and the first read on each pooled connection) once the server answers again used
/// to fail with `Unavailable` ("connection closed") — a dead connection shows only when
/// used. Both now run on a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_read_and_write_after_a_cut_connection_succeed() {
    let Some(db) = workbus_testkit::postgres_or_skip("store use after a cut connection") else {
        return;
    };
    let proxy = workbus_testkit::fault_proxy::FaultProxy::start(db.server_addr()).await;
    let url = db.url_via(proxy.addr());
    let store: Arc<dyn Store> = tokio::task::spawn_blocking(move || {
        Arc::new(PostgresStore::open(&url, None).unwrap()) as Arc<dyn Store>
    })
    .await
    .unwrap();
    let write = |store: Arc<dyn Store>, action: &'static str| {
        tokio::task::spawn_blocking(move || {
            store.write(AppendAudit(api_entry(
                "src",
                "alice",
                action,
                None,
                json!({}),
            )))
        })
    };
    let head = |store: Arc<dyn Store>| tokio::task::spawn_blocking(move || store.audit_head());
    write(store.clone(), "token.create").await.unwrap().unwrap();
    assert_eq!(head(store.clone()).await.unwrap().unwrap().unwrap().seq, 1);
    proxy.cut();
    let read = head(store.clone()).await.unwrap();
    assert_eq!(read.expect("read on a fresh connection").unwrap().seq, 1);
    let record = write(store.clone(), "token.revoke").await.unwrap();
    assert_eq!(record.expect("written on a fresh connection").seq, 2);
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(db) = workbus_testkit::postgres_or_skip("newer schema") else {
        return;
    };
    drop(PostgresStore::open(db.url(), None).unwrap());
    db.client()
        .unwrap()
        .batch_execute("INSERT INTO schema_migrations (version) VALUES (999)")
        .unwrap();
    match PostgresStore::open(db.url(), None) {
        Err(StoreError::Backend(m)) => assert!(m.contains("newer"), "{m}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[test]
fn an_unreachable_server_is_a_typed_error_naming_it() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::open("postgres://workbus@127.0.0.1:1/workbus", None)
        .err()
        .expect("no server there");
    match &err {
        StoreError::Unavailable { server, .. } => assert_eq!(server, "127.0.0.1:1"),
        e => panic!("expected Unavailable, got {e:?}"),
    }
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(!err.to_string().contains("password"), "{err}");
}

#[test]
fn store_values_name_the_backend() {
    let dir = std::path::Path::new("/var/lib/workbus");
    assert_eq!(
        StoreSettings::parse(None, dir).unwrap(),
        StoreSettings::sqlite(dir)
    );
    assert_eq!(
        StoreSettings::parse(Some("sqlite:/srv/hub"), dir).unwrap(),
        StoreSettings::sqlite("/srv/hub")
    );
    for url in [
        "postgres://workbus@db:5432/workbus",
        "postgresql://workbus:secret@db/workbus",
    ] {
        let settings = StoreSettings::parse(Some(url), dir).unwrap();
        assert_eq!(settings, StoreSettings::postgres(url, dir));
        assert_eq!(settings.data_dir(), dir, "own files stay in the data dir");
    }
    assert!(matches!(
        StoreSettings::parse(Some("mysql://x"), dir),
        Err(StoreUrlError::Scheme(_))
    ));
    assert!(matches!(
        StoreSettings::parse(Some("sqlite:"), dir),
        Err(StoreUrlError::EmptySqlitePath(_))
    ));
    // Configs are logged: the password never shows.
    let debug = format!(
        "{:?}",
        StoreSettings::postgres("postgres://workbus:secret@db/workbus", dir)
    );
    assert!(!debug.contains("secret"), "{debug}");
}

#[test]
fn audit_verify_and_export_offline_take_the_store() {
    let Some(db) = workbus_testkit::postgres_or_skip("offline audit on PostgreSQL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = workbus_hub::audit::checkpoint::load_or_create_key(dir.path()).unwrap();
    let key = Arc::new(key);
    {
        let store =
            workbus_hub::store::open(&StoreSettings::postgres(db.url(), dir.path())).unwrap();
        for actor in ["alice", "bob"] {
            store
                .write(AppendAudit(api_entry(
                    "src",
                    actor,
                    "token.create",
                    None,
                    json!({}),
                )))
                .unwrap();
        }
        store
            .write(workbus_hub::audit::sealer::SealCheckpoint {
                key: key.clone(),
                source: "src".into(),
                at: chrono::Utc::now(),
                unless_head: None,
            })
            .unwrap()
            .expect("a checkpoint");
    }
    let hub = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_workbus-hub"))
            .args(args)
            .env_remove("WORKBUS_STORE")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let data_dir = dir.path().to_str().unwrap();
    let (ok, out) = hub(&[
        "audit",
        "verify",
        "--data-dir",
        data_dir,
        "--store",
        db.url(),
    ]);
    assert!(ok, "{out}");
    let file = dir.path().join("export.jsonl");
    let (ok, out) = hub(&[
        "audit",
        "export",
        "--data-dir",
        data_dir,
        "--store",
        db.url(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let report = workbus_hub::cli::audit::verify_file(&file, key.verifying_key()).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.records, report.unsigned_tail), (3, 0), "{report:?}");
    // Without --store the directory is taken for a SQLite one, which it is not.
    let (ok, out) = hub(&["audit", "verify", "--data-dir", data_dir]);
    assert!(!ok && out.contains("no hub data directory"), "{out}");
}
