//! Handling of a received status event: decode (`metadata::decode_status_event`),
//! check it is addressed to us, then queue it for the store, which applies the
//! acceptance rule ([`crate::store::rules::status`]) atomically with the audit row.
//!
//! Statuses are the hub's hottest write (a fleet-wide update brings one per cluster at
//! once), so the source loop does not wait for each commit: it queues the status for
//! group commit (see `store::group_commit`) in arrival order and hands the pending
//! result to [`SourceLoop::finish_statuses`], which counts the outcomes and tells REST
//! watchers in that same order.

use chrono::Utc;
use tokio::sync::mpsc;
use workbus_schemas::Event;
use workbus_schemas::metadata::decode_status_event;

use super::admission::{self, Refusal};
use super::{SourceLoop, received_audit};
use crate::store::writes::IngestStatus;
use crate::store::{IncomingStatus, PendingWrite, StatusOutcome};
use crate::watch::{ChangeKind, WorkChange};
use crate::work_view::manifest_work;

/// A status queued for commit, with what its log line needs.
pub(crate) struct QueuedStatus {
    pending: PendingWrite<StatusOutcome>,
    about: StatusLabel,
}

/// Identifies a received status in log lines.
struct StatusLabel {
    resource_id: String,
    generation: i64,
    sequence_id: String,
}

impl SourceLoop {
    pub(crate) async fn handle_status(
        &self,
        event: Event,
        topic: &str,
        size: usize,
        queued: &mpsc::Sender<QueuedStatus>,
    ) {
        if size > admission::MAX_STATUS_BYTES {
            // Before decoding: a huge status costs nothing more.
            return self.refuse(&event, Refusal::TooLarge, topic);
        }
        let decoded = match decode_status_event(&event) {
            Ok(d) => d,
            Err(e) => {
                self.drop_and_audit(&event, "malformed_status", &e.to_string())
                    .await;
                return;
            }
        };
        // Maestro rejects statuses for works another source owns.
        if let Some(owner) = decoded.original_source.as_deref()
            && !owner.is_empty()
            && owner != self.source_id
        {
            self.drop_and_audit(&event, "foreign_source", owner).await;
            return;
        }
        if let Err(reason) = admission::check_status(topic, size, &decoded) {
            return self.refuse(&event, reason, topic);
        }
        // `check_status` made sure there is a cluster name.
        let cluster = decoded.cluster_name.as_deref().unwrap_or_default();
        if !self.limits.admit_status(cluster) {
            return self.refuse(&event, Refusal::StatusRateLimited, topic);
        }
        let resource_id = decoded.resource_id.clone();
        let generation = decoded.generation;
        let sequence_id = decoded.sequence_id.clone();
        let deleted = decoded.is_deleted();
        let incoming = IncomingStatus {
            uid: decoded.resource_id,
            cluster: decoded.cluster_name,
            generation,
            sequence_id: decoded.sequence_id,
            status_hash: decoded.status_hash,
            deleted,
            status: decoded.status,
            received: Utc::now(),
        };
        let op = IngestStatus {
            status: incoming,
            audit: received_audit(&event),
        };
        let pending = self.store.submit(op).await;
        let queued_status = QueuedStatus {
            pending,
            about: StatusLabel {
                resource_id,
                generation,
                sequence_id,
            },
        };
        if queued.send(queued_status).await.is_err() {
            tracing::error!("status outcome task stopped; outcome not reported");
        }
    }

    /// Reports committed statuses in arrival order until the source loop stops.
    pub(crate) async fn finish_statuses(self, mut queued: mpsc::Receiver<QueuedStatus>) {
        while let Some(QueuedStatus { pending, about }) = queued.recv().await {
            self.report_status(pending.outcome().await, &about);
        }
    }

    fn report_status(
        &self,
        outcome: Result<StatusOutcome, crate::store::StoreError>,
        q: &StatusLabel,
    ) {
        match outcome {
            Ok(StatusOutcome::Accepted(work)) => {
                self.metrics.statuses_accepted.inc();
                self.metrics.status_accepted(&work.uid);
                tracing::debug!(uid = %work.uid, generation = work.generation, "status accepted");
                self.watchers.notify(|| WorkChange {
                    kind: ChangeKind::Status,
                    object: manifest_work(&work),
                });
            }
            Ok(StatusOutcome::Deleted(work)) => {
                self.metrics.deletions_completed.inc();
                self.metrics.status_accepted(&work.uid);
                tracing::info!(uid = %work.uid, cluster = %work.key.cluster, name = %work.key.name, "deletion confirmed by the agent; work removed");
                self.watchers.notify(|| WorkChange {
                    kind: ChangeKind::Deleted,
                    object: manifest_work(&work),
                });
            }
            Ok(StatusOutcome::Dropped(reason)) => {
                self.metrics.dropped(reason.as_str());
                tracing::info!(uid = %q.resource_id, generation = q.generation, sequence_id = %q.sequence_id, reason = reason.as_str(), "status dropped");
            }
            Err(e) => {
                self.metrics.dropped("store_error");
                tracing::error!(uid = %q.resource_id, error = %e, "cannot store a received status");
            }
        }
    }
}
