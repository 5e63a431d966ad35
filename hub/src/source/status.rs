//! Handling of a received status event: decode (`metadata::decode_status_event`),
//! check it is addressed to us, then let the store apply the acceptance rule
//! ([`super::status_rule`]) atomically with the audit row; count the outcome and tell
//! REST watchers.

use std::sync::atomic::Ordering;

use chrono::Utc;
use workbus_schemas::Event;
use workbus_schemas::metadata::decode_status_event;

use super::{SourceLoop, received_audit};
use crate::store::{IncomingStatus, StatusOutcome};
use crate::watch::{ChangeKind, WorkChange};
use crate::work_view::manifest_work;

impl SourceLoop {
    pub(crate) async fn handle_status(&self, event: Event) {
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
        let incoming = IncomingStatus {
            uid: decoded.resource_id.clone(),
            cluster: decoded.cluster_name.clone(),
            generation: decoded.generation,
            sequence_id: decoded.sequence_id.clone(),
            status_hash: decoded.status_hash.clone(),
            deleted: decoded.is_deleted(),
            status: decoded.status,
            received: Utc::now(),
        };
        let audit = received_audit(&event);
        let outcome = self
            .store
            .run(move |s| s.ingest_status(&incoming, &audit))
            .await;
        match outcome {
            Ok(StatusOutcome::Accepted(work)) => {
                self.metrics
                    .statuses_accepted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(uid = %work.uid, generation = work.generation, "status accepted");
                self.watchers.notify(WorkChange {
                    kind: ChangeKind::Status,
                    object: manifest_work(&work),
                });
            }
            Ok(StatusOutcome::Deleted(work)) => {
                self.metrics
                    .deletions_completed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(uid = %work.uid, cluster = %work.key.cluster, name = %work.key.name, "deletion confirmed by the agent; work removed");
                self.watchers.notify(WorkChange {
                    kind: ChangeKind::Deleted,
                    object: manifest_work(&work),
                });
            }
            Ok(StatusOutcome::Dropped(reason)) => {
                self.metrics.dropped(reason.as_str());
                tracing::info!(uid = %decoded.resource_id, generation = decoded.generation, sequence_id = %decoded.sequence_id, reason = reason.as_str(), "status dropped");
            }
            Err(e) => {
                self.metrics.dropped("store_error");
                tracing::error!(error = %e, "cannot store a received status");
            }
        }
    }
}
