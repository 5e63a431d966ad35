//! Watches across replicas: work and cluster changes another replica committed reach
//! this replica's [`Watchers`] (the SSE work watch, the rollout controller) and
//! [`ClusterWatchers`] (the SSE cluster watch, the placement controller) too. The
//! store's triggers announce every work, status and cluster write (`NOTIFY
//! workbus_works` / `workbus_clusters`, see `store::postgres_leases`); this task reads
//! the row again and notifies, skipping the changes this replica made itself (it
//! announced those as it made them — a notice carries its writer's `application_name`,
//! which names the replica).
//!
//! Notices are best effort, like the local broadcast: a full queue drops them (logged at
//! debug level), and SSE clients re-list after a gap as after a `lagged` event.

use tokio::sync::mpsc;
use workbus_schemas::work::ManifestWork;
use workbus_schemas::work::meta::ObjectMeta;

use crate::store::StoreHandle;
use crate::store::postgres_leases::{ClusterNotice, Notice, WorkNotice, WorkNoticeKind};
use crate::watch::{ChangeKind, ClusterWatchers, Watchers, WorkChange};
use crate::work_view::manifest_work;

/// Notices waiting to be relayed.
pub const QUEUE: usize = 4096;

/// The `application_name` of replica `replica_id`'s connections (kept within
/// PostgreSQL's 63 bytes by the replica id's 50-character limit).
pub fn origin(replica_id: &str) -> String {
    format!("workbus-hub/{replica_id}")
}

/// Relays notices of other replicas' changes to `watchers` and `clusters` until the
/// sender is gone.
pub async fn relay(
    mut notices: mpsc::Receiver<Notice>,
    own_origin: String,
    store: StoreHandle,
    watchers: Watchers,
    clusters: ClusterWatchers,
) {
    while let Some(notice) = notices.recv().await {
        if notice.origin() == own_origin {
            continue;
        }
        match notice {
            Notice::Work(n) => work(n, &store, &watchers).await,
            Notice::Cluster(n) => cluster(n, &store, &clusters).await,
        }
    }
}

async fn work(notice: WorkNotice, store: &StoreHandle, watchers: &Watchers) {
    let kind = match notice.kind {
        WorkNoticeKind::Spec => ChangeKind::Spec,
        WorkNoticeKind::Status => ChangeKind::Status,
        WorkNoticeKind::Deleted => {
            watchers.notify(|| WorkChange {
                kind: ChangeKind::Deleted,
                object: deleted_work(&notice),
            });
            return;
        }
    };
    let uid = notice.uid.clone();
    match store.run(move |s| s.get_work_by_uid(&uid)).await {
        Ok(Some(work)) => watchers.notify(|| WorkChange {
            kind,
            object: manifest_work(&work),
        }),
        // Gone since: its deletion has a notice of its own.
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(uid = %notice.uid, error = %e, "cannot read a work another replica changed")
        }
    }
}

async fn cluster(notice: ClusterNotice, store: &StoreHandle, clusters: &ClusterWatchers) {
    if notice.deleted {
        clusters.notify_deleted(&notice.name);
        return;
    }
    let name = notice.name.clone();
    match store.run(move |s| s.get_cluster(&name)).await {
        Ok(Some(c)) => clusters.notify(&c),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(cluster = %notice.name, error = %e, "cannot read a cluster another replica changed")
        }
    }
}

/// What a watcher learns of a work another replica removed: its identity and last
/// generation (the row is gone, so no more).
fn deleted_work(notice: &WorkNotice) -> ManifestWork {
    let meta = ObjectMeta {
        name: notice.name.clone(),
        namespace: notice.cluster.clone(),
        uid: notice.uid.clone(),
        generation: notice.generation,
        ..ObjectMeta::default()
    };
    ManifestWork {
        metadata: meta,
        ..ManifestWork::default()
    }
}
