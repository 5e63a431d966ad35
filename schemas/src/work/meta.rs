//! # Object metadata, time, and the protocol's well-known keys
//!
//! [`ObjectMeta`] is the subset of Kubernetes `metav1.ObjectMeta` that the protocol reads
//! and writes; it is what the `metadata` CloudEvent extension carries (reference §5.4) and
//! the `metadata` of a [`ManifestWork`](super::ManifestWork). Anything else
//! (`ownerReferences`, `managedFields`, `generateName`, ...) is kept in
//! [`ObjectMeta::extra`] so it round-trips.
//!
//! [`Time`] is `metav1.Time`: it parses any RFC 3339 string and always writes
//! second-precision UTC (`2025-12-16T06:00:17Z`), which matters because the status hash
//! is computed over that text.
//!
//! Verified against k8s `apimachinery` `meta/v1` as vendored by sdk-go `3ea63fb`: every
//! ObjectMeta field we model is `omitempty` (`creationTimestamp` is
//! `omitempty,omitzero`), so empty values are left out; `Time.MarshalJSON` writes
//! `t.UTC().Format(time.RFC3339)` and a zero time as `null`; `UnmarshalJSON` accepts
//! `null` and `time.Parse(time.RFC3339, ...)` (fractions and offsets allowed).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::serde_go::{is_zero_i64, nullable};

/// Label holding the source ID that owns a work on the agent
/// (`common.CloudEventsOriginalSourceLabelKey` in sdk-go).
pub const LABEL_ORIGINAL_SOURCE: &str = "cloudevents.open-cluster-management.io/originalsource";

/// Annotation holding the CloudEvents data type of a work on the agent
/// (`common.CloudEventsDataTypeAnnotationKey`).
pub const ANNOTATION_DATA_TYPE: &str = "cloudevents.open-cluster-management.io/datatype";

/// Annotation the source decoder sets to the status event's `sequenceid`
/// (`common.CloudEventsSequenceIDAnnotationKey`).
pub const ANNOTATION_SEQUENCE_ID: &str = "cloudevents.open-cluster-management.io/sequenceid";

/// Annotation a caller may set to choose the wire `resourceversion` of a work
/// (`common.CloudEventsResourceVersionAnnotationKey`).
pub const ANNOTATION_RESOURCE_VERSION: &str =
    "cloudevents.open-cluster-management.io/resourceversion";

/// Finalizer the agent puts on a work so that its deletion waits for cleanup
/// (`workv1.ManifestWorkFinalizer`).
pub const FINALIZER_MANIFEST_WORK_CLEANUP: &str =
    "cluster.open-cluster-management.io/manifest-work-cleanup";

/// Annotation the agent writes on an object server-side applied with `ignoreFields`: a
/// hash of the applied object without its ignored fields; an equal hash on the live
/// object means no apply is needed (`workv1.ManifestConfigSpecHashAnnotationKey`).
pub const ANNOTATION_CONFIG_SPEC_HASH: &str = "open-cluster-management.io/config-spec-hash";

/// Prefix of the annotations carried in the `logtracing` extension.
pub const LOG_TRACING_ANNOTATION_PREFIX: &str = "logging.open-cluster-management.io/";

/// A timestamp with Go `metav1.Time` JSON behaviour.
///
/// Only whole seconds survive a trip through a Go peer (it writes RFC 3339 without
/// fractions), so a `Time` holds whole seconds: any fraction is dropped when the value is
/// built or parsed. Two `Time`s are therefore equal exactly when their wire text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(DateTime<Utc>);

/// An input that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 time {input:?}: {reason}")]
pub struct TimeParseError {
    /// The rejected text.
    pub input: String,
    /// Why chrono rejected it.
    pub reason: String,
}

impl Time {
    /// Wraps a chrono time, dropping any sub-second part.
    pub fn new(t: DateTime<Utc>) -> Self {
        // with_nanosecond(0) cannot fail: 0 is always a valid nanosecond value.
        Time(t.with_nanosecond(0).unwrap_or(t))
    }

    /// The current time, to the second.
    pub fn now() -> Self {
        Time::new(Utc::now())
    }

    /// From seconds since the Unix epoch; `None` if out of chrono's range.
    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        DateTime::from_timestamp(secs, 0).map(Time)
    }

    /// Parses any RFC 3339 timestamp (fractions and offsets allowed), as Go's
    /// `time.Parse(time.RFC3339, s)` does, and converts it to UTC.
    pub fn parse(s: &str) -> Result<Self, TimeParseError> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Time::new(t.with_timezone(&Utc)))
            .map_err(|e| TimeParseError {
                input: s.to_string(),
                reason: e.to_string(),
            })
    }

    /// The wrapped chrono value.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.timestamp()
    }

    /// True for Go's zero `time.Time` (`0001-01-01T00:00:00Z`), which Go writes as `null`
    /// and treats as "unset".
    pub fn is_go_zero(&self) -> bool {
        // -62135596800 is 0001-01-01T00:00:00Z in Unix seconds.
        self.0.timestamp() == -62_135_596_800
    }

    /// The wire text: RFC 3339, UTC, whole seconds, `Z` suffix.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

impl From<DateTime<Utc>> for Time {
    fn from(t: DateTime<Utc>) -> Self {
        Time::new(t)
    }
}

impl From<Time> for DateTime<Utc> {
    fn from(t: Time) -> Self {
        t.0
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Time {
    type Err = TimeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Time::parse(s)
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_go_zero() {
            // metav1.Time.MarshalJSON writes the zero time as null.
            s.serialize_none()
        } else {
            s.serialize_str(&self.to_rfc3339())
        }
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Time::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for `Option<Time>` fields: `null`, a missing field and Go's zero time all
/// mean "unset" (`None`), as they do for a Go `metav1.Time`.
pub(crate) mod opt_time {
    use super::Time;
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
        Ok(Option::<Time>::deserialize(d)?.filter(|t| !t.is_go_zero()))
    }
}

/// The Kubernetes `ObjectMeta` subset used by the protocol, with Go JSON names and
/// `omitempty` behaviour. Unknown members are kept in [`extra`](Self::extra).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// `namespace`; for a ManifestWork, the cluster name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub namespace: String,
    /// `uid`; for a ManifestWork, the CloudEvent `resourceid`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub uid: String,
    /// `resourceVersion` (a string in Kubernetes).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub resource_version: String,
    /// `generation`; for a ManifestWork, the wire `resourceversion`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i64"
    )]
    pub generation: i64,
    /// `creationTimestamp`.
    #[serde(
        default,
        deserialize_with = "opt_time::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_timestamp: Option<Time>,
    /// `deletionTimestamp`; set means the object is being deleted.
    #[serde(
        default,
        deserialize_with = "opt_time::deserialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub deletion_timestamp: Option<Time>,
    /// `labels`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// `finalizers`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub finalizers: Vec<String>,
    /// Every other member (`ownerReferences`, `managedFields`, `generateName`, ...), kept
    /// verbatim. Do not put the names of the typed fields here: they would be written twice.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ObjectMeta {
    /// The value of a label, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The value of an annotation, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// The [`LABEL_ORIGINAL_SOURCE`] label: the source that owns this work.
    pub fn original_source(&self) -> Option<&str> {
        self.label(LABEL_ORIGINAL_SOURCE)
    }

    /// True when the finalizer is present.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Adds a finalizer unless already present; returns whether it was added.
    pub fn add_finalizer(&mut self, finalizer: &str) -> bool {
        if self.has_finalizer(finalizer) {
            return false;
        }
        self.finalizers.push(finalizer.to_string());
        true
    }

    /// Removes every copy of a finalizer; returns whether one was present.
    pub fn remove_finalizer(&mut self, finalizer: &str) -> bool {
        let before = self.finalizers.len();
        self.finalizers.retain(|f| f != finalizer);
        before != self.finalizers.len()
    }

    /// True when `deletionTimestamp` is set.
    pub fn is_deleting(&self) -> bool {
        self.deletion_timestamp.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn time_writes_second_precision_utc() {
        let t = Time::parse("2025-12-16T08:00:17.921082037+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-12-16T06:00:17Z");
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            json!("2025-12-16T06:00:17Z")
        );
        assert_eq!(t, Time::parse("2025-12-16T06:00:17Z").unwrap());
    }

    #[test]
    fn time_rejects_non_rfc3339() {
        let err = Time::parse("yesterday").unwrap_err();
        assert_eq!(err.input, "yesterday");
        assert!(serde_json::from_value::<Time>(json!(12)).is_err());
    }

    #[test]
    fn go_zero_time_is_null_and_unset() {
        let zero = Time::parse("0001-01-01T00:00:00Z").unwrap();
        assert!(zero.is_go_zero());
        assert_eq!(serde_json::to_value(zero).unwrap(), Value::Null);
        let meta: ObjectMeta =
            serde_json::from_value(json!({"creationTimestamp": "0001-01-01T00:00:00Z"})).unwrap();
        assert_eq!(meta.creation_timestamp, None);
    }

    #[test]
    fn empty_object_meta_is_empty_object() {
        assert_eq!(
            serde_json::to_value(ObjectMeta::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn nulls_are_zero_values() {
        let meta: ObjectMeta = serde_json::from_value(json!({
            "name": null, "labels": null, "finalizers": null, "generation": null,
            "deletionTimestamp": null
        }))
        .unwrap();
        assert_eq!(meta, ObjectMeta::default());
    }

    #[test]
    fn finalizer_helpers() {
        let mut m = ObjectMeta::default();
        assert!(m.add_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP));
        assert!(!m.add_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP));
        assert!(m.has_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP));
        assert!(m.remove_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP));
        assert!(m.finalizers.is_empty());
    }
}
