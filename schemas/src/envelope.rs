//! The CloudEvent envelope of every workbus message, and the builders that give each
//! kind of OCM event exactly the attributes and extensions sdk-go puts on it (§4, §5, §6).
//!
//! The envelope type is `cloudevents-sdk`'s [`Event`]. Hub and agent build events only
//! through the functions here, so attribute names and which extensions appear on which
//! event stay in this crate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cloudevents::event::Data;
use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use serde_json::{Map, Value};

use crate::event_type::{Action, EventType, EventTypeError, SubResource};
use crate::extensions::{ExtensionError, OcmExtensionsMut};
use crate::mqtt::JSON_CONTENT_TYPE;

/// Parses the `type` attribute of an event.
pub fn decode_event_type(event: &Event) -> Result<EventType, EventTypeError> {
    event.ty().parse()
}

/// A fresh CloudEvents 1.0 event: random UUIDv4 `id`, `time` = now (as sdk-go does).
pub fn new_event(source: &str, event_type: &EventType) -> Event {
    new_event_at(source, event_type, Utc::now())
}

/// Like [`new_event`] with an explicit time (tests, replays).
pub fn new_event_at(source: &str, event_type: &EventType, time: DateTime<Utc>) -> Event {
    EventBuilderV10::new()
        .id(uuid::Uuid::new_v4().to_string())
        .source(source)
        .ty(event_type.to_string())
        .time(time)
        .build()
        // All three required attributes are set above; the builder has no other failure.
        .unwrap_or_default()
}

/// Attaches a JSON payload with `datacontenttype: application/json`.
pub fn set_json_data(event: &mut Event, data: Value) {
    event.set_data(JSON_CONTENT_TYPE, Data::Json(data));
}

/// Everything a source puts on a ManifestWork spec event (create, update, delete or
/// resync response), §4 and §5.1–5.2.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecEventFields {
    /// The source id (CloudEvent `source`).
    pub source_id: String,
    /// `create_request`, `update_request`, `delete_request` or `resync_response`.
    pub action: Action,
    /// Target cluster (`clustername`).
    pub cluster_name: String,
    /// Work UID (`resourceid`).
    pub resource_id: String,
    /// Work generation (`resourceversion`).
    pub generation: i64,
    /// Work ObjectMeta JSON (`metadata`); absent on synthetic resync deletes.
    pub metadata: Option<Map<String, Value>>,
    /// The ManifestBundle JSON (`data`); absent on deletes.
    pub bundle: Option<Value>,
    /// Set when the work is being deleted (`deletiontimestamp`).
    pub deletion_timestamp: Option<DateTime<Utc>>,
    /// `logtracing` entries; `None` omits the extension (synthetic deletes).
    pub log_tracing: Option<BTreeMap<String, String>>,
}

impl SpecEventFields {
    /// Builds the event. Fails only for a generation outside the int32 range.
    pub fn build(&self, time: DateTime<Utc>) -> Result<Event, ExtensionError> {
        let ty = EventType::manifest_bundles(SubResource::Spec, self.action.clone());
        let mut e = new_event_at(&self.source_id, &ty, time);
        e.set_cluster_name(&self.cluster_name);
        e.set_original_source("");
        e.set_resource_id(&self.resource_id);
        e.set_resource_version(self.generation)?;
        if let Some(meta) = &self.metadata {
            e.set_metadata_json(meta);
        }
        if let Some(entries) = &self.log_tracing {
            e.set_log_tracing(entries);
        }
        if let Some(at) = self.deletion_timestamp {
            e.set_deletion_timestamp(at);
        }
        if let Some(bundle) = &self.bundle {
            set_json_data(&mut e, bundle.clone());
        }
        Ok(e)
    }
}

/// Everything an agent puts on a status event (update or resync response), §4, §5.3.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEventFields {
    /// The agent id (CloudEvent `source`), conventionally `<cluster>-work-agent`.
    pub agent_id: String,
    /// `update_request` or `resync_response`.
    pub action: Action,
    /// The agent's cluster (`clustername`).
    pub cluster_name: String,
    /// The source that owns the work (`originalsource`).
    pub original_source: String,
    /// Work UID (`resourceid`).
    pub resource_id: String,
    /// Generation of the spec this status is for (`resourceversion`).
    pub generation: i64,
    /// Snowflake id (`sequenceid`).
    pub sequence_id: String,
    /// Status hash (`statushash`).
    pub status_hash: String,
    /// The agent's ObjectMeta JSON of the work (`metadata`).
    pub metadata: Map<String, Value>,
    /// The ManifestBundleStatus JSON (`data`).
    pub status: Value,
    /// `logtracing` entries.
    pub log_tracing: BTreeMap<String, String>,
}

impl StatusEventFields {
    /// Builds the event. Fails only for a generation outside the int32 range.
    pub fn build(&self, time: DateTime<Utc>) -> Result<Event, ExtensionError> {
        let ty = EventType::manifest_bundles(SubResource::Status, self.action.clone());
        let mut e = new_event_at(&self.agent_id, &ty, time);
        e.set_cluster_name(&self.cluster_name);
        e.set_original_source(&self.original_source);
        e.set_resource_id(&self.resource_id);
        e.set_resource_version(self.generation)?;
        e.set_sequence_id(&self.sequence_id);
        e.set_status_hash(&self.status_hash);
        e.set_metadata_json(&self.metadata);
        e.set_log_tracing(&self.log_tracing);
        set_json_data(&mut e, self.status.clone());
        Ok(e)
    }
}

/// The agent's spec resync request (§6.2): `originalsource = ""` means all sources.
pub fn spec_resync_request(
    agent_id: &str,
    cluster_name: &str,
    payload: Value,
    time: DateTime<Utc>,
) -> Event {
    let ty = EventType::manifest_bundles(SubResource::Spec, Action::ResyncRequest);
    let mut e = new_event_at(agent_id, &ty, time);
    e.set_cluster_name(cluster_name);
    e.set_original_source("");
    set_json_data(&mut e, payload);
    e
}

/// The source's status resync request (§6.3): `cluster_name = ""` means all clusters
/// (published on the source broadcast topic).
pub fn status_resync_request(
    source_id: &str,
    cluster_name: &str,
    payload: Value,
    time: DateTime<Utc>,
) -> Event {
    let ty = EventType::manifest_bundles(SubResource::Status, Action::ResyncRequest);
    let mut e = new_event_at(source_id, &ty, time);
    e.set_cluster_name(cluster_name);
    e.set_original_source("");
    set_json_data(&mut e, payload);
    e
}

/// The JSON data of an event, if it has JSON data. Binary data that parses as JSON counts
/// (peers that omit the content type send raw bytes).
pub fn json_data(event: &Event) -> Option<Value> {
    match event.data()? {
        Data::Json(v) => Some(v.clone()),
        Data::String(s) => serde_json::from_str(s).ok(),
        Data::Binary(b) => serde_json::from_slice(b).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::OcmExtensions;

    #[test]
    fn spec_event_has_the_sdk_go_extensions() {
        let f = SpecEventFields {
            source_id: "hub1".into(),
            action: Action::CreateRequest,
            cluster_name: "cluster1".into(),
            resource_id: "607b1d19-af88-5844-bab6-6d88adb07e64".into(),
            generation: 3,
            metadata: Some(Map::new()),
            bundle: Some(serde_json::json!({"manifests": []})),
            deletion_timestamp: None,
            log_tracing: Some(BTreeMap::new()),
        };
        let e = f.build(Utc::now()).unwrap();
        assert_eq!(e.source(), "hub1");
        assert_eq!(
            e.ty(),
            "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
        );
        assert_eq!(e.cluster_name().unwrap(), Some("cluster1"));
        assert_eq!(e.original_source().unwrap(), Some(""));
        assert_eq!(e.resource_version().unwrap(), 3);
        assert_eq!(e.datacontenttype(), Some("application/json"));
        assert_eq!(e.log_tracing().unwrap(), BTreeMap::new());
        assert!(e.extension("deletiontimestamp").is_none());
        let mut big = f.clone();
        big.generation = i64::from(i32::MAX) + 1;
        assert!(big.build(Utc::now()).is_err());
    }

    #[test]
    fn synthetic_delete_has_no_metadata_or_data() {
        let f = SpecEventFields {
            source_id: "hub1".into(),
            action: Action::ResyncResponse,
            cluster_name: "cluster1".into(),
            resource_id: "x".into(),
            generation: 2,
            metadata: None,
            bundle: None,
            deletion_timestamp: Some(Utc::now()),
            log_tracing: None,
        };
        let e = f.build(Utc::now()).unwrap();
        assert!(e.extension("metadata").is_none());
        assert!(e.extension("logtracing").is_none());
        assert!(e.data().is_none());
        assert!(e.deletion_timestamp().unwrap().is_some());
    }
}
