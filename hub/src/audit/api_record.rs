//! Audit records the hub makes itself, besides the events it sends and receives: API
//! changes (direction `api`: who changed what through the REST API, appended in the
//! transaction of the change itself, `store::writes::Audited`) and its controllers'
//! transitions (direction `internal`: rollout transitions, placement decisions,
//! appended right after the change commits).
//!
//! Works are not recorded here: every accepted work change queues a spec event that
//! carries its actor, and its `sent` record is the whole event with that actor (an
//! unchanged apply queues nothing and changes nothing). Recorded here: clusters
//! (create, delete, accept, deny, labels), API tokens and bootstrap tokens (create,
//! revoke — never their secrets).
//!
//! The record's event is a CloudEvent made by the hub: type [`API_TYPE_PREFIX`] +
//! the action (`io.workbus.api.cluster.create`), `source` the hub's source id, data
//! `{"action", "actor", "cluster", "object"}`.

use chrono::Utc;
use serde_json::{Value, json};
use workbus_schemas::envelope::set_json_data;

use crate::store::{AuditDirection, AuditEntry};

/// The CloudEvent type of an API change is this prefix and the action.
pub const API_TYPE_PREFIX: &str = "io.workbus.api.";
/// The CloudEvent type of a controller's transition is this prefix and what changed
/// (`rollout`, `placement`).
pub const INTERNAL_TYPE_PREFIX: &str = "io.workbus.hub.";

/// The audit entry of an API change: `action` (`cluster.create`, `token.revoke`, …) by
/// `actor` on `object` (what was asked for, without secrets), about `cluster` if any.
pub fn api_entry(
    source: &str,
    actor: &str,
    action: &str,
    cluster: Option<&str>,
    object: Value,
) -> AuditEntry {
    let at = Utc::now();
    let event_type = format!("{API_TYPE_PREFIX}{action}");
    use cloudevents::EventBuilder;
    let mut event = cloudevents::EventBuilderV10::new()
        .id(uuid::Uuid::new_v4().to_string())
        .source(source)
        .ty(event_type.clone())
        .time(at)
        .build()
        // id, source and type are set: the builder has no other failure.
        .unwrap_or_default();
    set_json_data(
        &mut event,
        json!({"action": action, "actor": actor, "cluster": cluster, "object": object}),
    );
    AuditEntry {
        at,
        direction: AuditDirection::Api,
        cluster: cluster.map(str::to_string),
        resource_id: None,
        event_type,
        event,
        actor: Some(actor.to_string()),
    }
}

/// The audit entry of a controller transition: `what` (`rollout`, `placement`) about
/// `cluster` if any, `data` the transition as the controller announces it.
pub fn internal_entry(source: &str, what: &str, cluster: Option<&str>, data: Value) -> AuditEntry {
    let at = Utc::now();
    let event_type = format!("{INTERNAL_TYPE_PREFIX}{what}");
    let mut event = {
        use cloudevents::EventBuilder;
        cloudevents::EventBuilderV10::new()
            .id(uuid::Uuid::new_v4().to_string())
            .source(source)
            .ty(event_type.clone())
            .time(at)
            .build()
            // id, source and type are set: the builder has no other failure.
            .unwrap_or_default()
    };
    set_json_data(&mut event, data);
    AuditEntry {
        at,
        direction: AuditDirection::Internal,
        cluster: cluster.map(str::to_string),
        resource_id: None,
        event_type,
        event,
        actor: None,
    }
}
