//! Group commit on a real SQLite file: a batch runs its ops in order, each atomically
//! (a failing op leaves no trace and does not spoil the others), and the whole batch is
//! durable once answered; concurrent writers through `StoreHandle` share commits.

mod work_fixture;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use work_fixture::desired;
use workbus_hub::metrics::Metrics;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::sqlite::SqliteStore;
use workbus_hub::store::{
    ApplyOutcome, DesiredWork, SharedSpecEventBuilder, Store, StoreError, StoreHandle, WorkKey,
    WriteOp, WriteOutput,
};

fn builder() -> SharedSpecEventBuilder {
    let now = Utc::now();
    Arc::new(move |w, c| change_event("src", w, c, now))
}

fn apply_op(d: DesiredWork) -> WriteOp {
    WriteOp::ApplyWork {
        desired: Box::new(d),
        create_only: false,
        now: Utc::now(),
        build: builder(),
    }
}

#[test]
fn a_failing_op_is_rolled_back_alone_and_the_batch_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.create_cluster("c1", &BTreeMap::new(), Utc::now())
            .unwrap();
        let results = s.write_batch(vec![
            apply_op(desired("c1", "w1", "a")),
            // Unknown cluster: fails, and must not undo w1 or w2.
            apply_op(desired("nope", "w", "a")),
            apply_op(desired("c1", "w2", "a")),
            // The same work again in the same batch sees the earlier op's write.
            apply_op(desired("c1", "w1", "b")),
            WriteOp::MarkDeleting {
                key: WorkKey {
                    cluster: "c1".into(),
                    name: "missing".into(),
                },
                now: Utc::now(),
                build: builder(),
            },
        ]);
        assert_eq!(results.len(), 5);
        assert!(matches!(
            results[0],
            Ok(WriteOutput::Applied(ApplyOutcome::Created, _))
        ));
        assert!(matches!(
            results[1],
            Err(StoreError::NotFound {
                kind: "cluster",
                ..
            })
        ));
        assert!(matches!(
            results[2],
            Ok(WriteOutput::Applied(ApplyOutcome::Created, _))
        ));
        match &results[3] {
            Ok(WriteOutput::Applied(ApplyOutcome::Updated, w)) => assert_eq!(w.generation, 2),
            other => panic!("expected an update to generation 2, got {other:?}"),
        }
        assert!(matches!(
            results[4],
            Err(StoreError::NotFound { kind: "work", .. })
        ));
        // Three spec events queued: create w1, create w2, update w1 — in that order.
        let outbox = s.outbox_batch(0, 10).unwrap();
        assert_eq!(outbox.len(), 3);
        let ids: Vec<i64> = outbox.iter().map(|e| e.id).collect();
        let done = s.write_batch(vec![WriteOp::CompleteOutbox {
            ids: ids[..2].to_vec(),
            sent_at: Utc::now(),
        }]);
        assert!(matches!(done[0], Ok(WriteOutput::Done)));
    }
    // Reopened: everything answered Ok is there.
    let s = SqliteStore::open(&path).unwrap();
    let w1 = s
        .get_work(&WorkKey {
            cluster: "c1".into(),
            name: "w1".into(),
        })
        .unwrap()
        .expect("w1 survives");
    assert_eq!(w1.generation, 2);
    assert!(
        s.get_work(&WorkKey {
            cluster: "c1".into(),
            name: "w2".into()
        })
        .unwrap()
        .is_some()
    );
    assert_eq!(s.outbox_depth().unwrap(), 1);
    // The two completed rows have their `sent` audit rows.
    let sent = s
        .audit(None, 100)
        .unwrap()
        .into_iter()
        .filter(|a| a.direction == workbus_hub::store::AuditDirection::Sent)
        .count();
    assert_eq!(sent, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
    sqlite
        .create_cluster("c1", &BTreeMap::new(), Utc::now())
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let store = StoreHandle::new(Arc::new(sqlite), metrics.clone()).unwrap();
    const WRITERS: usize = 400;
    let mut joins = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        joins.push(tokio::spawn(async move {
            store
                .apply_work(
                    desired("c1", &format!("w{i}"), "a"),
                    false,
                    Utc::now(),
                    builder(),
                )
                .await
        }));
    }
    for j in joins {
        let (outcome, _) = j.await.unwrap().unwrap();
        assert_eq!(outcome, ApplyOutcome::Created);
    }
    let commits = metrics.store_commits.load(Ordering::Relaxed);
    assert_eq!(metrics.store_writes.load(Ordering::Relaxed), WRITERS as u64);
    assert!(
        commits < WRITERS as u64,
        "{WRITERS} concurrent writes took {commits} commits: no grouping"
    );
    let works = store.run(|s| s.works_of_cluster("c1")).await.unwrap();
    assert_eq!(works.len(), WRITERS);
}

/// The background checkpointer copies committed pages into the database file while the
/// writer's own automatic checkpoint (16,384 pages) is far from due.
#[test]
fn wal_is_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let s = SqliteStore::open(&path).unwrap();
    s.create_cluster("c1", &BTreeMap::new(), Utc::now())
        .unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    // ~200 works with a 4 KiB value each: ~1 MB of pages, far below the writer's
    // threshold (~64 MiB).
    let big = "x".repeat(4096);
    let ops = (0..200)
        .map(|i| apply_op(desired("c1", &format!("w{i}"), &big)))
        .collect();
    assert!(s.write_batch(ops).iter().all(Result::is_ok));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = std::fs::metadata(&path).unwrap().len();
        if now > before + 500_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "database file still {now} bytes (was {before}): no background checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
