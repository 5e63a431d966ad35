//! Group commit on a real SQLite file: concurrent writers through `StoreHandle` share
//! commits, and the WAL is checkpointed in the background. (A batch's atomicity per
//! write is a store conformance case: `store_conformance.rs`.)

mod work_fixture;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use work_fixture::desired;
use workbus_hub::metrics::Metrics;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::sqlite::SqliteStore;
use workbus_hub::store::writes::{ApplyWork, CreateCluster};
use workbus_hub::store::{
    ApplyOutcome, Batch, DesiredWork, SharedSpecEventBuilder, Store, StoreHandle,
};

fn builder() -> SharedSpecEventBuilder {
    let now = Utc::now();
    Arc::new(move |w, c| change_event("src", w, c, now).map(Into::into))
}

fn apply_op(d: DesiredWork) -> ApplyWork {
    ApplyWork {
        desired: d,
        create_only: false,
        now: Utc::now(),
        build: builder(),
        actor: None,
    }
}

fn create_cluster(s: &dyn Store) {
    s.write(CreateCluster {
        name: "c1".into(),
        labels: BTreeMap::new(),
        now: Utc::now(),
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
    create_cluster(&sqlite);
    let metrics = Arc::new(Metrics::default());
    let store = StoreHandle::new(Arc::new(sqlite), metrics.clone()).unwrap();
    const WRITERS: usize = 400;
    let mut joins = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        joins.push(tokio::spawn(async move {
            store
                .write(apply_op(desired("c1", &format!("w{i}"), "a")))
                .await
        }));
    }
    for j in joins {
        let (outcome, _) = j.await.unwrap().unwrap();
        assert_eq!(outcome, ApplyOutcome::Created);
    }
    // The committer answers a batch's writes before it adds the batch to the metrics,
    // so the last batch may not be counted yet (seen on a loaded CI machine: 373 of
    // 400); no event announces the count, so poll it with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metrics.store_writes.get() < WRITERS as u64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let commits = metrics.store_commits.get();
    assert_eq!(metrics.store_writes.get(), WRITERS as u64);
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
    create_cluster(&s);
    let before = std::fs::metadata(&path).unwrap().len();
    // ~200 works with a 4 KiB value each: ~1 MB of pages, far below the writer's
    // threshold (~64 MiB).
    let big = "x".repeat(4096);
    let mut batch = Batch::new();
    let answers: Vec<_> = (0..200)
        .map(|i| batch.push(apply_op(desired("c1", &format!("w{i}"), &big))))
        .collect();
    batch.commit(&s).unwrap();
    assert!(answers.into_iter().all(|a| a.answered().is_ok()));
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
