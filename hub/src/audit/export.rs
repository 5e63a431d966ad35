//! `audit export`: the log as JSON lines, one CloudEvent in structured format per line
//! (readable by any CloudEvents library), the record's chain fields added as
//! extension attributes ([`SEQ`], [`TIME`], …). Checkpoints are lines of their own:
//! their events carry the signature (`workbussignature`, `workbuskeyid`).
//!
//! A line is read back by taking the chain fields out again: what remains is the event,
//! whose canonical JSON is the record's `event` (canonical JSON is what any parser's
//! view of it writes back to), so `audit verify --file` recomputes every hash from the
//! file alone. `source` and `resourceversion` are the event's own attributes, as in the
//! store. An export ends with a checkpoint (the hub seals the log first), so a file cut
//! short ends with unsigned records.

use serde_json::{Map, Value};

use super::chain::{AuditRecord, canonical_event};
use crate::store::AuditDirection;

/// Extension: the record's sequence number (decimal string).
pub const SEQ: &str = "auditseq";
/// Extension: when the hub sent, received or made it (RFC 3339, nanoseconds, UTC).
pub const TIME: &str = "audittime";
/// Extension: `sent`, `received`, `api` or `internal`.
pub const DIRECTION: &str = "auditdirection";
/// Extension: the cluster, when there is one.
pub const CLUSTER: &str = "auditcluster";
/// Extension: the work's resource id, when there is one.
pub const RESOURCE: &str = "auditresource";
/// Extension: the record's event type.
pub const EVENT_TYPE: &str = "audittype";
/// Extension: the actor, when there is one.
pub const ACTOR: &str = "auditactor";
/// Extension: the previous record's hash.
pub const PREV_HASH: &str = "auditprevhash";
/// Extension: the record's hash.
pub const HASH: &str = "audithash";

/// Why a line cannot be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The line is not a JSON object.
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    /// A chain field is missing or malformed.
    #[error("chain field {name}: {reason}")]
    Field {
        /// The extension name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The export line of a record (without the newline).
pub fn export_line(record: &AuditRecord) -> Result<String, serde_json::Error> {
    let mut event: Map<String, Value> = match record.event_value()? {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("data".into(), other);
            map
        }
    };
    let mut put = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            event.insert(name.to_string(), Value::String(value));
        }
    };
    put(SEQ, Some(record.seq.to_string()));
    put(TIME, Some(super::chain::format_time(record.at)));
    put(DIRECTION, Some(record.direction.as_str().to_string()));
    put(CLUSTER, record.cluster.clone());
    put(RESOURCE, record.resource_id.clone());
    put(EVENT_TYPE, Some(record.event_type.clone()));
    put(ACTOR, record.actor.clone());
    put(PREV_HASH, Some(record.prev_hash.clone()));
    put(HASH, Some(record.hash.clone()));
    serde_json::to_string(&Value::Object(event))
}

fn take(map: &mut Map<String, Value>, name: &'static str) -> Result<Option<String>, ExportError> {
    match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ExportError::Field {
            name,
            reason: format!("not a string: {other}"),
        }),
    }
}

fn required(map: &mut Map<String, Value>, name: &'static str) -> Result<String, ExportError> {
    take(map, name)?.ok_or(ExportError::Field {
        name,
        reason: "missing".into(),
    })
}

/// Reads an export line back into its record (hashes as the file says; verify
/// recomputes them).
pub fn parse_line(line: &str) -> Result<AuditRecord, ExportError> {
    let mut map = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ExportError::NotAnObject("not an object".into())),
        Err(e) => return Err(ExportError::NotAnObject(e.to_string())),
    };
    let bad = |name: &'static str, reason: String| ExportError::Field { name, reason };
    let seq = required(&mut map, SEQ)?
        .parse()
        .map_err(|e| bad(SEQ, format!("{e}")))?;
    let at = chrono::DateTime::parse_from_rfc3339(&required(&mut map, TIME)?)
        .map_err(|e| bad(TIME, e.to_string()))?
        .with_timezone(&chrono::Utc);
    let direction = required(&mut map, DIRECTION)?;
    let direction = AuditDirection::parse(&direction)
        .ok_or_else(|| bad(DIRECTION, format!("unknown {direction:?}")))?;
    let cluster = take(&mut map, CLUSTER)?;
    let resource_id = take(&mut map, RESOURCE)?;
    let event_type = required(&mut map, EVENT_TYPE)?;
    let actor = take(&mut map, ACTOR)?;
    let prev_hash = required(&mut map, PREV_HASH)?;
    let hash = required(&mut map, HASH)?;
    let event = Value::Object(map);
    let linked = super::chain::link(
        None,
        super::chain::NewRecord {
            at,
            direction,
            cluster: cluster.clone(),
            resource_id: resource_id.clone(),
            event_type: event_type.clone(),
            actor: actor.clone(),
            event: event.clone(),
        },
    );
    Ok(AuditRecord {
        seq,
        at,
        direction,
        cluster,
        source: linked.source,
        resource_id,
        resource_version: linked.resource_version,
        event_type,
        actor,
        event: canonical_event(&event),
        prev_hash,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{NewRecord, link};
    use serde_json::json;

    #[test]
    fn a_line_reads_back_as_the_same_record() {
        let first = link(
            None,
            NewRecord {
                at: chrono::Utc::now(),
                direction: AuditDirection::Sent,
                cluster: Some("edge-1".into()),
                resource_id: Some("uid".into()),
                event_type: "t".into(),
                actor: Some("admin".into()),
                event: json!({"specversion": "1.0", "id": "1", "source": "hub", "type": "t",
                    "resourceversion": 4, "data": {"x": [1.5, "<&>"]}}),
            },
        );
        let second = link(
            Some(&first.head()),
            NewRecord {
                at: chrono::Utc::now(),
                direction: AuditDirection::Internal,
                cluster: None,
                resource_id: None,
                event_type: "u".into(),
                actor: None,
                event: json!({"specversion": "1.0", "id": "2", "source": "hub", "type": "u"}),
            },
        );
        for record in [first, second] {
            let back = parse_line(&export_line(&record).unwrap()).unwrap();
            assert_eq!(back, record);
            assert_eq!(back.computed_hash(), record.hash);
        }
    }
}
