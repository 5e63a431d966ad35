//! Builds the spec events the hub publishes, always through
//! `workbus_schemas::envelope::SpecEventFields` (reference §5.1, §5.2):
//! create/update/resync carry the ManifestBundle as data; deletes carry
//! `deletiontimestamp` and still the metadata, but no data (as sdk-go); a synthetic
//! resync delete carries neither metadata nor data.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use workbus_schemas::Event;
use workbus_schemas::envelope::SpecEventFields;
use workbus_schemas::event_type::Action;
use workbus_schemas::metadata::{log_tracing_of, metadata_json};
use workbus_schemas::work::ManifestBundle;

use crate::outbox::WireFormat;
use crate::store::{SharedSpecEventBuilder, SpecChange, WorkRecord};
use crate::work_view::object_meta;

/// The spec event for `work` with the given action. A deleting work always produces a
/// delete (with `deletiontimestamp`), whatever the action.
pub fn spec_event(
    source_id: &str,
    work: &WorkRecord,
    action: Action,
    now: DateTime<Utc>,
) -> Result<Event, String> {
    let meta = object_meta(work);
    let bundle = match work.deletion {
        Some(_) => None,
        None => {
            let bundle = ManifestBundle::from(work.spec.clone());
            Some(serde_json::to_value(bundle).map_err(|e| e.to_string())?)
        }
    };
    SpecEventFields {
        source_id: source_id.to_string(),
        action,
        cluster_name: work.key.cluster.clone(),
        resource_id: work.uid.clone(),
        generation: work.generation,
        metadata: Some(metadata_json(&meta)),
        bundle,
        deletion_timestamp: work.deletion,
        log_tracing: Some(log_tracing_of(&meta)),
    }
    .build(now)
    .map_err(|e| e.to_string())
}

/// The event announcing a committed change (used inside the store transaction).
pub fn change_event(
    source_id: &str,
    work: &WorkRecord,
    change: SpecChange,
    now: DateTime<Utc>,
) -> Result<Event, String> {
    let action = match change {
        SpecChange::Create => Action::CreateRequest,
        SpecChange::Update => Action::UpdateRequest,
        SpecChange::Delete => Action::DeleteRequest,
    };
    spec_event(source_id, work, action, now)
}

/// Builds, inside the store transaction, each changed work's spec event at `now` with
/// the MQTT message that carries it (so the outbox row is ready to publish).
pub fn change_builder(wire: Arc<WireFormat>, now: DateTime<Utc>) -> SharedSpecEventBuilder {
    Arc::new(move |work, change| {
        change_event(wire.source_id(), work, change, now).map(|event| wire.outgoing(event))
    })
}

/// A synthetic resync delete for a work the agent holds and the hub does not (§5.2):
/// `resourceid`, the agent's `resourceversion`, `clustername`, `deletiontimestamp = now`.
pub fn synthetic_delete(
    source_id: &str,
    cluster: &str,
    resource_id: &str,
    agent_version: i64,
    now: DateTime<Utc>,
) -> Result<Event, String> {
    SpecEventFields {
        source_id: source_id.to_string(),
        action: Action::ResyncResponse,
        cluster_name: cluster.to_string(),
        resource_id: resource_id.to_string(),
        generation: agent_version,
        metadata: None,
        bundle: None,
        deletion_timestamp: Some(now),
        log_tracing: None,
    }
    .build(now)
    .map_err(|e| e.to_string())
}
