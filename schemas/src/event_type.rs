//! The CloudEvent `type` grammar of OCM (reference §3):
//! `<group>.<version>.<resource>.<subresource>.<action>`, where the group may itself
//! contain dots. The first three parts form the *data type*.
//!
//! Parsing is lenient in the same places as sdk-go (any action string is kept; unknown
//! ones are [`Action::Other`]) and fails with sdk-go's error texts elsewhere, so logs read
//! the same on both implementations.

use std::fmt;
use std::str::FromStr;

/// The ManifestWork data type: `io.open-cluster-management.works.v1alpha1.manifestbundles`.
pub const MANIFEST_BUNDLES: DataTypeRef = DataTypeRef {
    group: "io.open-cluster-management.works",
    version: "v1alpha1",
    resource: "manifestbundles",
};

/// A compile-time data type, for constants such as [`MANIFEST_BUNDLES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataTypeRef {
    /// API group, may contain dots.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural resource name.
    pub resource: &'static str,
}

impl DataTypeRef {
    /// An owned [`DataType`] with the same parts.
    pub fn to_owned(self) -> DataType {
        DataType {
            group: self.group.to_string(),
            version: self.version.to_string(),
            resource: self.resource.to_string(),
        }
    }
}

impl fmt::Display for DataTypeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.group, self.version, self.resource)
    }
}

/// Errors of the type grammar; the texts are sdk-go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    /// Fewer than five dot-separated parts.
    #[error("unsupported cloudevents type format: {0}")]
    Format(String),
    /// The subresource is neither `spec` nor `status`.
    #[error("unsupported subresource {0}")]
    SubResource(String),
    /// A data type with fewer than three parts.
    #[error("unsupported cloudevents data type format")]
    DataTypeFormat,
}

/// `<group>.<version>.<resource>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataType {
    /// API group, may contain dots.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
}

impl DataType {
    /// True when this is the ManifestWork data type.
    pub fn is_manifest_bundles(&self) -> bool {
        self.is(MANIFEST_BUNDLES)
    }

    /// True when this is the data type `r` (e.g. one of
    /// [`crate::registration::names`]' registration data types).
    pub fn is(&self, r: DataTypeRef) -> bool {
        self.group == r.group && self.version == r.version && self.resource == r.resource
    }
}

impl FromStr for DataType {
    type Err = EventTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() < 3 {
            return Err(EventTypeError::DataTypeFormat);
        }
        let n = parts.len();
        Ok(DataType {
            group: parts[..n - 2].join("."),
            version: parts[n - 2].to_string(),
            resource: parts[n - 1].to_string(),
        })
    }
}

impl DataType {
    /// This data type as one of the protocol's ([`KNOWN_DATA_TYPES`]), if it is one.
    /// Metrics label events by it, so a peer's made-up types cannot grow a family.
    pub fn known(&self) -> Option<DataTypeRef> {
        KNOWN_DATA_TYPES.into_iter().find(|k| self.is(*k))
    }
}

/// Every data type workbus exchanges: ManifestWorks and the registration types.
pub const KNOWN_DATA_TYPES: [DataTypeRef; 5] = [
    MANIFEST_BUNDLES,
    crate::registration::names::MANAGED_CLUSTERS,
    crate::registration::names::CERTIFICATE_SIGNING_REQUESTS,
    crate::registration::names::LEASES,
    crate::registration::names::EVENTS,
];

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.group, self.version, self.resource)
    }
}

impl From<DataTypeRef> for DataType {
    fn from(r: DataTypeRef) -> Self {
        r.to_owned()
    }
}

/// Which half of a resource an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubResource {
    /// Desired state, sent by sources.
    Spec,
    /// Observed state, sent by agents.
    Status,
}

impl SubResource {
    /// The wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            SubResource::Spec => "spec",
            SubResource::Status => "status",
        }
    }
}

impl FromStr for SubResource {
    type Err = EventTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spec" => Ok(SubResource::Spec),
            "status" => Ok(SubResource::Status),
            other => Err(EventTypeError::SubResource(other.to_string())),
        }
    }
}

impl fmt::Display for SubResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last part of the type. Receivers branch only on [`Action::ResyncRequest`]
/// (reference §3.2); the others are informational.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `create_request`
    CreateRequest,
    /// `update_request`
    UpdateRequest,
    /// `delete_request`
    DeleteRequest,
    /// `resync_request`
    ResyncRequest,
    /// `resync_response`
    ResyncResponse,
    /// `watch_request` (gRPC only; never on MQTT).
    WatchRequest,
    /// Any other action word, kept verbatim (sdk-go does not reject them at parse time).
    Other(String),
}

impl Action {
    /// The wire word.
    pub fn as_str(&self) -> &str {
        match self {
            Action::CreateRequest => "create_request",
            Action::UpdateRequest => "update_request",
            Action::DeleteRequest => "delete_request",
            Action::ResyncRequest => "resync_request",
            Action::ResyncResponse => "resync_response",
            Action::WatchRequest => "watch_request",
            Action::Other(s) => s,
        }
    }
}

impl Action {
    /// The wire word of one of the protocol's actions; `None` for [`Action::Other`].
    /// Metrics label events by it, so a peer's made-up actions cannot grow a family.
    pub fn known(&self) -> Option<&str> {
        match self {
            Action::Other(_) => None,
            known => Some(known.as_str()),
        }
    }
}

impl From<&str> for Action {
    fn from(s: &str) -> Self {
        match s {
            "create_request" => Action::CreateRequest,
            "update_request" => Action::UpdateRequest,
            "delete_request" => Action::DeleteRequest,
            "resync_request" => Action::ResyncRequest,
            "resync_response" => Action::ResyncResponse,
            "watch_request" => Action::WatchRequest,
            other => Action::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed CloudEvent `type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventType {
    /// `<group>.<version>.<resource>`.
    pub data_type: DataType,
    /// `spec` or `status`.
    pub sub_resource: SubResource,
    /// The action word.
    pub action: Action,
}

impl EventType {
    /// The event type of data type `data_type` with `sub_resource` and `action`.
    pub fn new(data_type: DataTypeRef, sub_resource: SubResource, action: Action) -> Self {
        EventType {
            data_type: data_type.to_owned(),
            sub_resource,
            action,
        }
    }

    /// A ManifestWork (`manifestbundles`) event type.
    pub fn manifest_bundles(sub_resource: SubResource, action: Action) -> Self {
        EventType {
            data_type: MANIFEST_BUNDLES.to_owned(),
            sub_resource,
            action,
        }
    }

    /// True for `resync_request` events.
    pub fn is_resync_request(&self) -> bool {
        self.action == Action::ResyncRequest
    }
}

impl FromStr for EventType {
    type Err = EventTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() < 5 {
            return Err(EventTypeError::Format(s.to_string()));
        }
        let n = parts.len();
        let sub_resource = parts[n - 2].parse()?;
        Ok(EventType {
            data_type: DataType {
                group: parts[..n - 4].join("."),
                version: parts[n - 4].to_string(),
                resource: parts[n - 3].to_string(),
            },
            sub_resource,
            action: Action::from(parts[n - 1]),
        })
    }
}

/// The word metrics use for a data type, sub-resource or action outside the protocol.
pub const OTHER: &str = "other";

/// An event type's data type, sub-resource and action as metrics label them: the
/// protocol's own as they are, anything else (or an unparsable type) [`OTHER`], so a
/// peer sending made-up types cannot grow a metric family without bound.
pub fn label_parts(event_type: &str) -> (String, &'static str, String) {
    match event_type.parse::<EventType>() {
        Ok(t) => (
            t.data_type
                .known()
                .map_or_else(|| OTHER.to_string(), |d| d.to_string()),
            t.sub_resource.as_str(),
            t.action.known().unwrap_or(OTHER).to_string(),
        ),
        Err(_) => (OTHER.to_string(), OTHER, OTHER.to_string()),
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.data_type, self.sub_resource, self.action
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv1_round_trip() {
        let t = EventType {
            data_type: DataType {
                group: "io.open-cluster-management.works".into(),
                version: "v1alpha1".into(),
                resource: "manifests".into(),
            },
            sub_resource: SubResource::Spec,
            action: Action::CreateRequest,
        };
        let s = t.to_string();
        assert_eq!(
            s,
            "io.open-cluster-management.works.v1alpha1.manifests.spec.create_request"
        );
        assert_eq!(s.parse::<EventType>().unwrap(), t);
    }

    #[test]
    fn tv1_errors() {
        assert_eq!(
            "test".parse::<EventType>().unwrap_err().to_string(),
            "unsupported cloudevents type format: test"
        );
        assert_eq!(
            "io.open-cluster-management.works.v1alpha1.manifests.unsupported.create_request"
                .parse::<EventType>()
                .unwrap_err()
                .to_string(),
            "unsupported subresource unsupported"
        );
        assert_eq!(
            "".parse::<DataType>().unwrap_err().to_string(),
            "unsupported cloudevents data type format"
        );
    }

    #[test]
    fn manifest_bundle_constant() {
        let t = EventType::manifest_bundles(SubResource::Status, Action::ResyncResponse);
        assert_eq!(
            t.to_string(),
            "io.open-cluster-management.works.v1alpha1.manifestbundles.status.resync_response"
        );
        assert!(t.data_type.is_manifest_bundles());
        for (text, data_type) in [
            (
                "cluster.open-cluster-management.io.v1.managedclusters.spec.create_request",
                crate::registration::names::MANAGED_CLUSTERS,
            ),
            (
                "certificates.k8s.io.v1.certificatesigningrequests.spec.resync_request",
                crate::registration::names::CERTIFICATE_SIGNING_REQUESTS,
            ),
            (
                "coordination.k8s.io.v1.leases.spec.update_request",
                crate::registration::names::LEASES,
            ),
            (
                "events.k8s.io.v1.events.spec.update_request",
                crate::registration::names::EVENTS,
            ),
        ] {
            let t: EventType = text.parse().unwrap();
            assert!(t.data_type.is(data_type), "{text}");
            assert!(!t.data_type.is_manifest_bundles());
            assert_eq!(t.to_string(), text);
        }
        let odd: EventType = "a.b.c.spec.frobnicate".parse().unwrap();
        assert_eq!(odd.action, Action::Other("frobnicate".into()));
        assert_eq!(odd.to_string(), "a.b.c.spec.frobnicate");
    }
}
