//! Both resync directions as the hub plays them (reference §6.2, §6.3):
//!
//! - [`status_resync_requests`]: after every (re)subscribe the hub asks each known
//!   cluster for the statuses it may have missed, listing per work the agent's own
//!   last `statushash` (or `NO_STATUS_HASH`, which never matches, when it has none),
//!   at most [`MAX_HASHES_PER_EVENT`] per event (Maestro's fix for the 512 KiB limit).
//!   Always per cluster, never the broadcast form (§10 item 18).
//! - [`spec_resync_answer_events`]: the answer to an agent's spec resync request, from
//!   the pure `workbus_schemas::resync::spec_resync_answer`, which also answers when
//!   the hub holds no works for the cluster (synthetic deletes, §10 item 7).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use workbus_schemas::envelope::status_resync_request;
use workbus_schemas::event_type::Action;
use workbus_schemas::resync::{
    ResourceStatusHash, SourceWork, SpecResyncAction, SpecResyncRequest, StatusResyncRequest,
    spec_resync_answer,
};
use workbus_schemas::status_hash::NO_STATUS_HASH;

use super::spec_events::{spec_event, synthetic_delete};
use crate::store::{NewOutbox, WorkRecord};

/// Most hashes in one status resync request.
pub const MAX_HASHES_PER_EVENT: usize = 1000;

/// The status resync requests for one cluster holding `works` (one event even when it
/// holds none: an empty list asks the agent for every status).
pub fn status_resync_requests(
    source_id: &str,
    cluster: &str,
    works: &[WorkRecord],
    now: DateTime<Utc>,
) -> Vec<NewOutbox> {
    let hashes: Vec<ResourceStatusHash> = works
        .iter()
        .map(|w| {
            let hash = w
                .status
                .as_ref()
                .and_then(|s| s.status_hash.clone())
                .unwrap_or_else(|| NO_STATUS_HASH.to_string());
            ResourceStatusHash::new(w.uid.clone(), hash)
        })
        .collect();
    // Digest of the whole cluster's set, on every chunk: a workbus agent whose own digest
    // matches answers nothing (OCM agents ignore the extension).
    let digest = workbus_schemas::resync_digest::status_digest(
        hashes
            .iter()
            .map(|h| (h.resource_id.as_str(), h.status_hash.as_str())),
    );
    let chunks: Vec<Vec<ResourceStatusHash>> = if hashes.is_empty() {
        vec![Vec::new()]
    } else {
        hashes
            .chunks(MAX_HASHES_PER_EVENT)
            .map(<[ResourceStatusHash]>::to_vec)
            .collect()
    };
    chunks
        .into_iter()
        .map(|chunk| {
            let payload = serde_json::to_value(StatusResyncRequest::new(chunk))
                .unwrap_or_else(|_| serde_json::json!({"statusHashes": []}));
            let mut event = status_resync_request(source_id, cluster, payload, now);
            workbus_schemas::resync_digest::set_digest(&mut event, &digest);
            NewOutbox {
                cluster: cluster.to_string(),
                resource_id: None,
                event,
            }
        })
        .collect()
}

/// The events answering `request` from `cluster`, given all of the hub's works for it.
/// An event that cannot be built (generation outside int32) is skipped and reported in
/// the second list.
pub fn spec_resync_answer_events(
    source_id: &str,
    cluster: &str,
    request: &SpecResyncRequest,
    works: &[WorkRecord],
    now: DateTime<Utc>,
) -> (Vec<NewOutbox>, Vec<String>) {
    let source_works: Vec<SourceWork> = works
        .iter()
        .map(|w| SourceWork {
            resource_id: w.uid.clone(),
            resource_version: w.generation,
            deleting: w.deletion.is_some(),
        })
        .collect();
    let by_id: HashMap<&str, &WorkRecord> = works.iter().map(|w| (w.uid.as_str(), w)).collect();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for action in spec_resync_answer(request, &source_works) {
        let (resource_id, built) = match &action {
            SpecResyncAction::SendSpec { resource_id }
            | SpecResyncAction::SendDeleting { resource_id } => {
                match by_id.get(resource_id.as_str()) {
                    // A deleting work's event carries `deletiontimestamp` (see spec_event).
                    Some(work) => (
                        resource_id,
                        spec_event(source_id, work, Action::ResyncResponse, now),
                    ),
                    None => continue,
                }
            }
            SpecResyncAction::SyntheticDelete {
                resource_id,
                resource_version,
            } => (
                resource_id,
                synthetic_delete(source_id, cluster, resource_id, *resource_version, now),
            ),
        };
        match built {
            Ok(event) => events.push(NewOutbox {
                cluster: cluster.to_string(),
                resource_id: Some(resource_id.clone()),
                event,
            }),
            Err(e) => errors.push(format!("{resource_id}: {e}")),
        }
    }
    (events, errors)
}
