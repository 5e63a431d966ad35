//! Audit records of API changes (direction `api`): who changed what through the REST
//! API, appended in the transaction of the change itself (`store::writes::Audited`).
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
