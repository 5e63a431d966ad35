//! A light reading of a ManifestWork spec or status event in CloudEvents structured form
//! (JSON text): the few facts that decide how a work's state moves — is it being deleted
//! (`deletiontimestamp`), does it carry data, does its status say `Deleted=True` —
//! without building the event, its manifests or its status. `audit replay` folds
//! thousands of logged events and fully decodes only the last spec and status of each
//! work; everything else is skipped by the JSON parser without allocating.

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::work::status::{condition_status, condition_type};

/// What [`peek`] reads of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventPeek {
    /// A `deletiontimestamp` extension is present: the spec deletes the work.
    pub deleting: bool,
    /// The event carries data (statuses the hub dropped are logged without).
    pub has_data: bool,
    /// The data's work-level conditions hold `Deleted=True`: the agent finished the
    /// deletion ([`crate::metadata::is_deleted`] on the decoded status).
    pub deleted: bool,
}

#[derive(Deserialize)]
struct Structured {
    #[serde(default, rename = "deletiontimestamp")]
    deletion_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    conditions: Option<Vec<ConditionPeek>>,
}

#[derive(Deserialize)]
struct ConditionPeek {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    status: String,
}

/// Reads the facts of [`EventPeek`] from an event's structured-form JSON.
pub fn peek(structured_json: &str) -> Result<EventPeek, serde_json::Error> {
    let event: Structured = serde_json::from_str(structured_json)?;
    let deleted = event
        .data
        .as_ref()
        .and_then(|d| d.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.kind == condition_type::DELETED && c.status == condition_status::TRUE)
        });
    Ok(EventPeek {
        deleting: event.deletion_timestamp.is_some(),
        has_data: event.data.is_some(),
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_and_status_facts_are_read_and_the_rest_skipped() {
        let spec = r#"{"data":{"manifests":[{"kind":"ConfigMap","data":{"a":"1"}}]},
            "deletiontimestamp":"2026-12-07T21:43:52Z","id":"1","type":"t"}"#;
        assert_eq!(
            peek(spec).unwrap(),
            EventPeek {
                deleting: true,
                has_data: true,
                deleted: false
            }
        );
        let status = r#"{"data":{"conditions":[{"type":"Applied","status":"True"},
            {"type":"Deleted","status":"True","reason":"ManifestsDeleted"}],
            "resourceStatus":[]},"id":"2"}"#;
        assert_eq!(
            peek(status).unwrap(),
            EventPeek {
                deleting: false,
                has_data: true,
                deleted: true
            }
        );
        let not_yet = r#"{"data":{"conditions":[{"type":"Deleted","status":"False"}]}}"#;
        assert!(!peek(not_yet).unwrap().deleted);
        let null_conditions = r#"{"data":{"conditions":null}}"#;
        assert_eq!(
            peek(null_conditions).unwrap(),
            EventPeek {
                deleting: false,
                has_data: true,
                deleted: false
            }
        );
        assert_eq!(peek(r#"{"id":"3"}"#).unwrap(), EventPeek::default());
        assert!(peek("not json").is_err());
    }
}
