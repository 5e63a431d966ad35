//! Watches across replicas: work changes another replica committed reach this
//! replica's [`Watchers`] (the SSE watch, the rollout controller) too. The store's
//! triggers announce every work and status write (`NOTIFY workbus_works`, see
//! `store::postgres_leases`); this task reads the work again and notifies, skipping the
//! changes this replica made itself (it announced those as it made them — a notice
//! carries its writer's `application_name`, which names the replica).
//!
//! Notices are best effort, like the local broadcast: a full queue drops them (counted
//! in the log), and SSE clients re-list after a gap as after a `lagged` event.

use tokio::sync::mpsc;
use workbus_schemas::work::ManifestWork;
use workbus_schemas::work::meta::ObjectMeta;

use crate::store::StoreHandle;
use crate::store::postgres_leases::{WorkNotice, WorkNoticeKind};
use crate::watch::{ChangeKind, Watchers, WorkChange};
use crate::work_view::manifest_work;

/// Notices waiting to be relayed.
pub const QUEUE: usize = 4096;

/// The `application_name` of replica `replica_id`'s connections (kept within
/// PostgreSQL's 63 bytes by the replica id's 50-character limit).
pub fn origin(replica_id: &str) -> String {
    format!("workbus-hub/{replica_id}")
}

/// Relays notices of other replicas' changes to `watchers` until the sender is gone.
pub async fn relay(
    mut notices: mpsc::Receiver<WorkNotice>,
    own_origin: String,
    store: StoreHandle,
    watchers: Watchers,
) {
    while let Some(notice) = notices.recv().await {
        if notice.origin == own_origin {
            continue;
        }
        let kind = match notice.kind {
            WorkNoticeKind::Spec => ChangeKind::Spec,
            WorkNoticeKind::Status => ChangeKind::Status,
            WorkNoticeKind::Deleted => {
                watchers.notify(|| WorkChange {
                    kind: ChangeKind::Deleted,
                    object: deleted_work(&notice),
                });
                continue;
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
