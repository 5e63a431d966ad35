//! The registration CloudEvents exactly as sdk-go's codecs write them (reference §4.1):
//!
//! - `resourceid` = the object's UID, omitted when empty (agent-created objects);
//! - `resourceversion` = `metadata.resourceVersion` as a **string**, omitted when empty
//!   (unlike `manifestbundles`, whose version is an integer);
//! - `clustername` = the cluster (a CSR's from its cluster label, else the error
//!   "no cluster label found for CSR"); `originalsource` = `""`;
//! - an object with `deletionTimestamp` travels as the `deletiontimestamp` extension and
//!   no data; any other as the whole object with `apiVersion`/`kind` forced, JSON;
//! - resync requests carry `{"resourceVersions":[{"resourceID","resourceVersion"}]}`
//!   ([`SpecResyncRequest`], the same body as ManifestWork spec resyncs).
//!
//! Decoding is the reverse and checks what a hostile peer could bend: the object's own
//! cluster must be the event's `clustername`.

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Event};

use super::object::{RegistrationKind, RegistrationObject};
use crate::envelope::{json_data, new_event_at, set_json_data};
use crate::event_type::{Action, EventType, EventTypeError, SubResource};
use crate::extensions::{self, ExtensionError, OcmExtensions, OcmExtensionsMut};
use crate::resync::SpecResyncRequest;

/// Why a registration event cannot be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// A CSR without the cluster-name label (sdk-go's text).
    #[error("no cluster label found for CSR")]
    NoCsrClusterLabel,
    /// An object without the member its cluster comes from (name or namespace).
    #[error("{0} has no cluster name")]
    NoClusterName(&'static str),
    /// The event type is not one of the registration data types.
    #[error("not a registration data type: {0}")]
    NotRegistration(String),
    /// The `type` attribute does not parse.
    #[error(transparent)]
    EventType(#[from] EventTypeError),
    /// An extension is missing or malformed.
    #[error(transparent)]
    Extension(#[from] ExtensionError),
    /// The event has no `clustername` (or an empty one).
    #[error("missing extension clustername")]
    NoClusterExtension,
    /// A non-delete event without JSON data.
    #[error("{0} event without JSON data")]
    NoData(&'static str),
    /// The payload does not decode as the data type's object.
    #[error("{kind} payload: {reason}")]
    Payload {
        /// The object kind.
        kind: &'static str,
        /// serde's message (truncated).
        reason: String,
    },
    /// The object names another cluster than the event's `clustername`.
    #[error("{kind} belongs to cluster {object:?} but the event names {event:?}")]
    ClusterMismatch {
        /// The object kind.
        kind: &'static str,
        /// The object's cluster (truncated).
        object: String,
        /// The event's `clustername` (truncated).
        event: String,
    },
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A decoded registration event.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationEvent {
    /// The data type.
    pub kind: RegistrationKind,
    /// `spec` or `status`.
    pub sub_resource: SubResource,
    /// The action.
    pub action: Action,
    /// The CloudEvent `source` (agent id or hub source id).
    pub source: String,
    /// `clustername`.
    pub cluster_name: String,
    /// `resourceid`, when present and non-empty.
    pub resource_id: Option<String>,
    /// `resourceversion` as text, when present and non-empty.
    pub resource_version: Option<String>,
    /// What it carries.
    pub body: RegistrationBody,
}

/// The content of a [`RegistrationEvent`].
// One per received event, moved into the store write at once: boxing would cost an
// allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrationBody {
    /// A whole object.
    Object(RegistrationObject),
    /// A delete: `deletiontimestamp`, no data; the object is named by `resourceid`.
    Deleted {
        /// When the deletion started.
        deletion_timestamp: DateTime<Utc>,
    },
    /// A `spec.resync_request`.
    ResyncRequest(SpecResyncRequest),
}

/// The event type of `kind` with `sub_resource` and `action`.
pub fn registration_event_type(
    kind: RegistrationKind,
    sub_resource: SubResource,
    action: Action,
) -> EventType {
    EventType::new(kind.data_type(), sub_resource, action)
}

/// Encodes `object` as sdk-go does (§4.1), published by `source`.
pub fn encode_registration_event(
    source: &str,
    sub_resource: SubResource,
    action: Action,
    object: &RegistrationObject,
    time: DateTime<Utc>,
) -> Result<Event, RegistrationError> {
    let kind = object.kind();
    let cluster = match object.cluster_name() {
        Some(c) => c,
        None if kind == RegistrationKind::CertificateSigningRequest => {
            return Err(RegistrationError::NoCsrClusterLabel);
        }
        None => return Err(RegistrationError::NoClusterName(kind.kind())),
    };
    let meta = object.metadata();
    let mut e = new_event_at(
        source,
        &registration_event_type(kind, sub_resource, action),
        time,
    );
    e.set_cluster_name(cluster);
    e.set_original_source("");
    if !meta.uid.is_empty() {
        e.set_resource_id(&meta.uid);
    }
    if !meta.resource_version.is_empty() {
        e.set_extension(
            extensions::RESOURCE_VERSION,
            ExtensionValue::String(meta.resource_version.clone()),
        );
    }
    match meta.deletion_timestamp {
        Some(at) => e.set_deletion_timestamp(at.as_datetime()),
        None => set_json_data(&mut e, object.to_json()),
    }
    Ok(e)
}

/// A `<datatype>.spec.resync_request` of `cluster` listing what the sender holds.
pub fn encode_resync_request(
    source: &str,
    kind: RegistrationKind,
    cluster: &str,
    request: &SpecResyncRequest,
    time: DateTime<Utc>,
) -> Event {
    let ty = registration_event_type(kind, SubResource::Spec, Action::ResyncRequest);
    let mut e = new_event_at(source, &ty, time);
    e.set_cluster_name(cluster);
    e.set_original_source("");
    // Strings and numbers only: serialization cannot fail.
    let body = serde_json::to_value(request)
        .unwrap_or_else(|_| serde_json::json!({"resourceVersions": []}));
    set_json_data(&mut e, body);
    e
}

/// The synthetic delete of a resync answer: an object the agent holds and the hub does
/// not (`resourceid`, `clustername`, `deletiontimestamp = now`, no data, no version).
pub fn encode_synthetic_delete(
    source: &str,
    kind: RegistrationKind,
    cluster: &str,
    resource_id: &str,
    now: DateTime<Utc>,
) -> Event {
    let ty = registration_event_type(kind, SubResource::Spec, Action::ResyncResponse);
    let mut e = new_event_at(source, &ty, now);
    e.set_cluster_name(cluster);
    e.set_original_source("");
    e.set_resource_id(resource_id);
    e.set_deletion_timestamp(now);
    e
}

/// The registration kind of an event, or `None` for any other data type (ManifestWorks).
pub fn registration_kind(event: &Event) -> Option<RegistrationKind> {
    let ty: EventType = event.ty().parse().ok()?;
    RegistrationKind::from_data_type(&ty.data_type)
}

/// Reads a registration event (§4.1, `DecodeWithDeletionHandling`).
pub fn decode_registration_event(event: &Event) -> Result<RegistrationEvent, RegistrationError> {
    let ty: EventType = event.ty().parse()?;
    let kind = RegistrationKind::from_data_type(&ty.data_type)
        .ok_or_else(|| RegistrationError::NotRegistration(short(event.ty())))?;
    let cluster_name = match event.cluster_name()? {
        Some(c) if !c.is_empty() => c.to_owned(),
        _ => return Err(RegistrationError::NoClusterExtension),
    };
    let resource_id = match event.extension(extensions::RESOURCE_ID) {
        Some(ExtensionValue::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    // A string on the wire; structured-mode decoding may have made it an Integer.
    let resource_version = match event.extension(extensions::RESOURCE_VERSION) {
        Some(ExtensionValue::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(ExtensionValue::Integer(i)) => Some(i.to_string()),
        _ => None,
    };
    let payload = |what: &'static str, e: serde_json::Error| RegistrationError::Payload {
        kind: what,
        reason: e.to_string().chars().take(200).collect(),
    };
    let body = if ty.action == Action::ResyncRequest {
        let data = json_data(event).unwrap_or_else(|| serde_json::json!({}));
        RegistrationBody::ResyncRequest(
            serde_json::from_value(data).map_err(|e| payload("resync request", e))?,
        )
    } else if let (Some(at), None) = (event.deletion_timestamp()?, event.data()) {
        RegistrationBody::Deleted {
            deletion_timestamp: at,
        }
    } else {
        let data = json_data(event).ok_or(RegistrationError::NoData(kind.kind()))?;
        let object =
            RegistrationObject::from_json(kind, data).map_err(|e| payload(kind.kind(), e))?;
        match object.cluster_name() {
            Some(c) if c == cluster_name => {}
            None if kind == RegistrationKind::CertificateSigningRequest => {
                return Err(RegistrationError::NoCsrClusterLabel);
            }
            other => {
                return Err(RegistrationError::ClusterMismatch {
                    kind: kind.kind(),
                    object: short(other.unwrap_or("")),
                    event: short(&cluster_name),
                });
            }
        }
        RegistrationBody::Object(object)
    };
    Ok(RegistrationEvent {
        kind,
        sub_resource: ty.sub_resource,
        action: ty.action,
        source: event.source().to_string(),
        cluster_name,
        resource_id,
        resource_version,
        body,
    })
}
