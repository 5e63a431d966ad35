//! Resync payloads and the two resync answers (reference §5.5, §6.2, §6.3, TV-7,
//! TV-14, TV-15).
//!
//! * Spec resync: on every (re)subscribe the agent sends
//!   [`SpecResyncRequest`] listing the `(resourceID, resourceVersion)` of every work
//!   it holds; the source answers with [`spec_resync_answer`].
//! * Status resync: the source sends [`StatusResyncRequest`] listing the status hash
//!   it holds per work; the agent answers with [`status_resync_answer`].
//!
//! The payload types keep the Go JSON names exactly (note the capital `ID`), always
//! write lists as `[]` (never `null` or absent), read `null`/absent lists as empty,
//! and keep unknown fields so a newer peer's additions survive a decode/encode.
//!
//! The answers are pure functions over plain lists: the hub and agent own the
//! stores, build the events and publish them. Everything here is deterministic
//! (output order follows input order).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Reads a JSON `null` as the type's default, like Go's `encoding/json` leaves a
/// field at its zero value on `null`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// One entry of a [`SpecResyncRequest`]: a work the agent holds and the version
/// (generation) it has of it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceVersion {
    /// The work's `resourceid` (its UID).
    #[serde(rename = "resourceID", default, deserialize_with = "null_as_default")]
    pub resource_id: String,
    /// The version the agent holds; a JSON number (int64), 0 meaning unversioned.
    #[serde(
        rename = "resourceVersion",
        default,
        deserialize_with = "null_as_default"
    )]
    pub resource_version: i64,
    /// Fields this version of the protocol does not know, kept for re-encoding.
    #[serde(flatten)]
    pub unknown_fields: Map<String, Value>,
}

/// The data of a `...spec.resync_request` event (agent to source):
/// `{"resourceVersions":[{"resourceID":..,"resourceVersion":..}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SpecResyncRequest {
    /// One entry per work the agent holds, whatever its source. An agent with no
    /// works sends an empty list.
    #[serde(
        rename = "resourceVersions",
        default,
        deserialize_with = "null_as_default"
    )]
    pub resource_versions: Vec<ResourceVersion>,
    /// Fields this version of the protocol does not know, kept for re-encoding.
    #[serde(flatten)]
    pub unknown_fields: Map<String, Value>,
}

/// One entry of a [`StatusResyncRequest`]: a work the source holds and the hash of
/// the status it has for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceStatusHash {
    /// The work's `resourceid` (its UID).
    #[serde(rename = "resourceID", default, deserialize_with = "null_as_default")]
    pub resource_id: String,
    /// The status hash the source holds (see `status_hash`).
    #[serde(rename = "statusHash", default, deserialize_with = "null_as_default")]
    pub status_hash: String,
    /// Fields this version of the protocol does not know, kept for re-encoding.
    #[serde(flatten)]
    pub unknown_fields: Map<String, Value>,
}

/// The data of a `...status.resync_request` event (source to agent):
/// `{"statusHashes":[{"resourceID":..,"statusHash":..}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusResyncRequest {
    /// One entry per work the source holds for the request's scope. An empty list
    /// asks for every status.
    #[serde(rename = "statusHashes", default, deserialize_with = "null_as_default")]
    pub status_hashes: Vec<ResourceStatusHash>,
    /// Fields this version of the protocol does not know, kept for re-encoding.
    #[serde(flatten)]
    pub unknown_fields: Map<String, Value>,
}

impl ResourceVersion {
    /// An entry with no unknown fields.
    pub fn new(resource_id: impl Into<String>, resource_version: i64) -> Self {
        Self {
            resource_id: resource_id.into(),
            resource_version,
            unknown_fields: Map::new(),
        }
    }
}

impl ResourceStatusHash {
    /// An entry with no unknown fields.
    pub fn new(resource_id: impl Into<String>, status_hash: impl Into<String>) -> Self {
        Self {
            resource_id: resource_id.into(),
            status_hash: status_hash.into(),
            unknown_fields: Map::new(),
        }
    }
}

impl SpecResyncRequest {
    /// A request listing `versions`.
    pub fn new(versions: Vec<ResourceVersion>) -> Self {
        Self {
            resource_versions: versions,
            unknown_fields: Map::new(),
        }
    }
}

/// Most hashes in one status resync request (Maestro's fix for the 512 KiB limit on an
/// event: a cluster with more works gets several requests).
pub const MAX_HASHES_PER_EVENT: usize = 1000;

impl StatusResyncRequest {
    /// A request listing `hashes`.
    pub fn new(hashes: Vec<ResourceStatusHash>) -> Self {
        Self {
            status_hashes: hashes,
            unknown_fields: Map::new(),
        }
    }

    /// The requests a source sends for `hashes`: at most [`MAX_HASHES_PER_EVENT`] each,
    /// and one with an empty list when there are none (which asks the agent for every
    /// status it holds, §6.3).
    pub fn split(hashes: &[ResourceStatusHash]) -> Vec<StatusResyncRequest> {
        if hashes.is_empty() {
            return vec![StatusResyncRequest::new(Vec::new())];
        }
        hashes
            .chunks(MAX_HASHES_PER_EVENT)
            .map(|chunk| StatusResyncRequest::new(chunk.to_vec()))
            .collect()
    }

    /// The JSON payload (`{"statusHashes": [...]}`).
    pub fn to_json(&self) -> serde_json::Value {
        // Strings and lists only: serialization cannot fail.
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({"statusHashes": []}))
    }
}

/// One of the source's works for the requesting cluster, as the spec-resync answer
/// needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceWork {
    /// The work's `resourceid`.
    pub resource_id: String,
    /// The version the source currently holds (the `resourceversion` it sends).
    pub resource_version: i64,
    /// Whether the work is being deleted (has a deletion timestamp).
    pub deleting: bool,
}

/// What the source must publish, as `...spec.resync_response`, in answer to a spec
/// resync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecResyncAction {
    /// Send the work's full spec: it is unversioned (0) or newer than the agent's.
    SendSpec {
        /// The work's `resourceid`.
        resource_id: String,
    },
    /// Send the work as a delete (with its `deletiontimestamp`): the source is
    /// deleting it, whatever version the agent reported.
    SendDeleting {
        /// The work's `resourceid`.
        resource_id: String,
    },
    /// The agent holds a work the source does not have: send a synthetic delete
    /// carrying `resourceid`, this `resourceversion` (the agent's), `clustername` and
    /// `deletiontimestamp = now`, and no `metadata` (§5.2).
    SyntheticDelete {
        /// The `resourceid` the agent reported.
        resource_id: String,
        /// The version the agent reported for it.
        resource_version: i64,
    },
}

/// The source's answer to a spec resync request from one cluster (§6.2).
///
/// `source_works` are all of the source's works for that cluster. For each, in
/// order: a deleting work is always sent as a delete; otherwise its spec is sent
/// when its version is 0 or greater than the version the agent reported for its id
/// (an id the agent did not report counts as 0). Then, in the agent's order, every
/// reported id the source does not have gets a synthetic delete.
///
/// Deliberate difference from sdk-go (§10 item 7): when the source has **no** works
/// for the cluster, sdk-go answers nothing, leaving the agent's orphaned works in
/// place; this answer still contains the synthetic deletes, so the agent's view
/// converges on the source's (a source with nothing for the cluster wants nothing
/// there). Callers whose store may not be loaded yet must not answer at all rather
/// than answer with an empty list.
///
/// As in sdk-go, when the agent lists an id twice its first entry counts; unlike
/// sdk-go the repeat does not produce a second synthetic delete.
pub fn spec_resync_answer(
    request: &SpecResyncRequest,
    source_works: &[SourceWork],
) -> Vec<SpecResyncAction> {
    let mut reported: HashMap<&str, i64> = HashMap::new();
    for entry in &request.resource_versions {
        reported
            .entry(entry.resource_id.as_str())
            .or_insert(entry.resource_version);
    }

    let mut actions = Vec::new();
    for work in source_works {
        if work.deleting {
            actions.push(SpecResyncAction::SendDeleting {
                resource_id: work.resource_id.clone(),
            });
            continue;
        }
        let agent_version = reported
            .get(work.resource_id.as_str())
            .copied()
            .unwrap_or(0);
        if work.resource_version == 0 || work.resource_version > agent_version {
            actions.push(SpecResyncAction::SendSpec {
                resource_id: work.resource_id.clone(),
            });
        }
    }

    let known: HashSet<&str> = source_works
        .iter()
        .map(|work| work.resource_id.as_str())
        .collect();
    let mut deleted: HashSet<&str> = HashSet::new();
    for entry in &request.resource_versions {
        let id = entry.resource_id.as_str();
        if !known.contains(id) && deleted.insert(id) {
            actions.push(SpecResyncAction::SyntheticDelete {
                resource_id: entry.resource_id.clone(),
                resource_version: entry.resource_version,
            });
        }
    }
    actions
}

/// The agent's answer to a status resync request (§6.3): the ids of the works whose
/// status it must publish as `...status.resync_response`, in the order of
/// `agent_works`.
///
/// `agent_works` are the agent's works as `(resourceid, current status hash)`.
/// An empty request list means "send everything". Otherwise a work the source did
/// not list is skipped (the source will delete it, and a large request may be split
/// over several events, each listing only some works), and a listed work is sent
/// only when its current hash differs from the one the source holds. If the source
/// lists an id twice, its first entry counts, as in sdk-go.
pub fn status_resync_answer<'a, I>(request: &StatusResyncRequest, agent_works: I) -> Vec<String>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    if request.status_hashes.is_empty() {
        return agent_works
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
    }
    let mut source_hashes: HashMap<&str, &str> = HashMap::new();
    for entry in &request.status_hashes {
        source_hashes
            .entry(entry.resource_id.as_str())
            .or_insert(entry.status_hash.as_str());
    }
    agent_works
        .into_iter()
        .filter(|(id, hash)| source_hashes.get(id).is_some_and(|known| known != hash))
        .map(|(id, _)| id.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_resync_requests_are_split_at_the_hash_limit() {
        let hashes: Vec<ResourceStatusHash> = (0..2_500)
            .map(|i| ResourceStatusHash::new(format!("id-{i}"), "h"))
            .collect();
        let sizes: Vec<usize> = StatusResyncRequest::split(&hashes)
            .iter()
            .map(|r| r.status_hashes.len())
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        // None held: one request with an empty list (asks for every status).
        let empty = StatusResyncRequest::split(&[]);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].to_json(), serde_json::json!({"statusHashes": []}));
    }
    use serde_json::json;

    #[test]
    fn tv7_spec_resync_request_decodes() {
        let req: SpecResyncRequest = serde_json::from_str(
            r#"{"resourceVersions":[{"resourceID":"123","resourceVersion":3}]}"#,
        )
        .expect("valid payload");
        assert_eq!(
            req,
            SpecResyncRequest::new(vec![ResourceVersion::new("123", 3)])
        );
    }

    #[test]
    fn tv7_status_resync_request_decodes() {
        let req: StatusResyncRequest =
            serde_json::from_str(r#"{"statusHashes":[{"resourceID":"123","statusHash":"1a2b"}]}"#)
                .expect("valid payload");
        assert_eq!(
            req,
            StatusResyncRequest::new(vec![ResourceStatusHash::new("123", "1a2b")])
        );
    }

    #[test]
    fn encodes_with_go_field_names() {
        let spec = SpecResyncRequest::new(vec![ResourceVersion::new(
            "607b1d19-af88-5844-bab6-6d88adb07e64",
            3,
        )]);
        assert_eq!(
            serde_json::to_string(&spec).expect("encodes"),
            r#"{"resourceVersions":[{"resourceID":"607b1d19-af88-5844-bab6-6d88adb07e64","resourceVersion":3}]}"#
        );
        let status = StatusResyncRequest::new(vec![ResourceStatusHash::new("a", "3a4b")]);
        assert_eq!(
            serde_json::to_string(&status).expect("encodes"),
            r#"{"statusHashes":[{"resourceID":"a","statusHash":"3a4b"}]}"#
        );
    }

    #[test]
    fn empty_lists_encode_as_empty_arrays() {
        assert_eq!(
            serde_json::to_string(&SpecResyncRequest::default()).expect("encodes"),
            r#"{"resourceVersions":[]}"#
        );
        assert_eq!(
            serde_json::to_string(&StatusResyncRequest::default()).expect("encodes"),
            r#"{"statusHashes":[]}"#
        );
    }

    #[test]
    fn null_or_absent_lists_decode_as_empty() {
        for text in [r#"{"resourceVersions":null}"#, "{}"] {
            let req: SpecResyncRequest = serde_json::from_str(text).expect("decodes");
            assert_eq!(req, SpecResyncRequest::default(), "{text}");
        }
        for text in [r#"{"statusHashes":null}"#, "{}"] {
            let req: StatusResyncRequest = serde_json::from_str(text).expect("decodes");
            assert_eq!(req, StatusResyncRequest::default(), "{text}");
        }
    }

    #[test]
    fn null_or_absent_entry_fields_decode_as_zero_values() {
        let req: SpecResyncRequest = serde_json::from_str(
            r#"{"resourceVersions":[{"resourceID":null},{"resourceVersion":null},{}]}"#,
        )
        .expect("decodes");
        assert_eq!(req.resource_versions, vec![ResourceVersion::default(); 3]);
        let req: StatusResyncRequest =
            serde_json::from_str(r#"{"statusHashes":[{"statusHash":null}]}"#).expect("decodes");
        assert_eq!(req.status_hashes, vec![ResourceStatusHash::default()]);
    }

    #[test]
    fn wrong_types_are_errors() {
        // The enhancement's string resourceVersion is not what Go accepts.
        assert!(
            serde_json::from_str::<SpecResyncRequest>(
                r#"{"resourceVersions":[{"resourceID":"a","resourceVersion":"3"}]}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<StatusResyncRequest>(r#"{"statusHashes":{}}"#).is_err());
        assert!(serde_json::from_str::<SpecResyncRequest>("[]").is_err());
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = json!({
            "resourceVersions": [{"resourceID": "a", "resourceVersion": 1, "extra": {"x": [1, 2]}}],
            "batch": 2
        });
        let req: SpecResyncRequest = serde_json::from_value(text.clone()).expect("decodes");
        assert_eq!(req.unknown_fields.get("batch"), Some(&json!(2)));
        assert_eq!(
            req.resource_versions[0].unknown_fields.get("extra"),
            Some(&json!({"x": [1, 2]}))
        );
        assert_eq!(serde_json::to_value(&req).expect("encodes"), text);

        let text = json!({
            "statusHashes": [{"resourceID": "a", "statusHash": "h", "n": null}],
            "part": "1/3"
        });
        let req: StatusResyncRequest = serde_json::from_value(text.clone()).expect("decodes");
        assert_eq!(serde_json::to_value(&req).expect("encodes"), text);
    }

    fn work(id: &str, version: i64) -> SourceWork {
        SourceWork {
            resource_id: id.to_string(),
            resource_version: version,
            deleting: false,
        }
    }

    fn spec_request(entries: &[(&str, i64)]) -> SpecResyncRequest {
        SpecResyncRequest::new(
            entries
                .iter()
                .map(|(id, v)| ResourceVersion::new(*id, *v))
                .collect(),
        )
    }

    fn send(id: &str) -> SpecResyncAction {
        SpecResyncAction::SendSpec {
            resource_id: id.to_string(),
        }
    }

    #[test]
    fn tv14_agent_reports_nothing() {
        let answer = spec_resync_answer(&spec_request(&[]), &[work("test1", 2), work("test2", 3)]);
        assert_eq!(answer, vec![send("test1"), send("test2")]);
    }

    #[test]
    fn tv14_only_the_newer_work_is_sent() {
        let answer = spec_resync_answer(
            &spec_request(&[("test1", 1), ("test2", 2)]),
            &[work("test1", 2), work("test2", 2)],
        );
        assert_eq!(answer, vec![send("test1")]);
    }

    #[test]
    fn tv14_work_missing_on_the_source_gets_a_synthetic_delete() {
        let answer = spec_resync_answer(
            &spec_request(&[("test1", 1), ("test2", 2)]),
            &[work("test1", 1)],
        );
        assert_eq!(
            answer,
            vec![SpecResyncAction::SyntheticDelete {
                resource_id: "test2".into(),
                resource_version: 2
            }]
        );
    }

    #[test]
    fn source_with_zero_works_deletes_everything_the_agent_reports() {
        // sdk-go answers nothing here (§10 item 7); workbus converges instead.
        let answer = spec_resync_answer(&spec_request(&[("test1", 1), ("test2", 0)]), &[]);
        assert_eq!(
            answer,
            vec![
                SpecResyncAction::SyntheticDelete {
                    resource_id: "test1".into(),
                    resource_version: 1
                },
                SpecResyncAction::SyntheticDelete {
                    resource_id: "test2".into(),
                    resource_version: 0
                },
            ]
        );
        assert_eq!(spec_resync_answer(&spec_request(&[]), &[]), vec![]);
    }

    #[test]
    fn deleting_works_are_always_sent_and_unversioned_works_always_resent() {
        let deleting = SourceWork {
            deleting: true,
            ..work("gone", 1)
        };
        let answer = spec_resync_answer(
            &spec_request(&[("gone", 5), ("plain", 0), ("older", 9)]),
            &[deleting, work("plain", 0), work("older", 3)],
        );
        assert_eq!(
            answer,
            vec![
                SpecResyncAction::SendDeleting {
                    resource_id: "gone".into()
                },
                send("plain"),
            ]
        );
    }

    #[test]
    fn repeated_agent_ids_use_the_first_entry_and_delete_once() {
        let answer = spec_resync_answer(
            &spec_request(&[("a", 3), ("a", 1), ("x", 4), ("x", 5)]),
            &[work("a", 2)],
        );
        assert_eq!(
            answer,
            vec![SpecResyncAction::SyntheticDelete {
                resource_id: "x".into(),
                resource_version: 4
            }]
        );
    }

    fn status_request(entries: &[(&str, &str)]) -> StatusResyncRequest {
        StatusResyncRequest::new(
            entries
                .iter()
                .map(|(id, h)| ResourceStatusHash::new(*id, *h))
                .collect(),
        )
    }

    #[test]
    fn tv15_empty_list_sends_every_status() {
        let answer = status_resync_answer(&status_request(&[]), [("test1", "h1"), ("test2", "h2")]);
        assert_eq!(answer, vec!["test1", "test2"]);
    }

    #[test]
    fn tv15_only_listed_works_with_a_changed_hash_are_sent() {
        let answer = status_resync_answer(
            &status_request(&[("test1", "h1"), ("test2", "stale")]),
            [("test0", "h0"), ("test1", "h1"), ("test2", "h2-modified")],
        );
        assert_eq!(answer, vec!["test2"]);
    }

    #[test]
    fn status_answer_with_repeated_source_ids_uses_the_first_entry() {
        let answer =
            status_resync_answer(&status_request(&[("a", "h"), ("a", "other")]), [("a", "h")]);
        assert!(answer.is_empty());
    }
}
