//! The OCM CloudEvent extension attributes (reference §4): their names, and typed
//! accessors that read them leniently the way sdk-go does (§2.2): over MQTT binary mode
//! every value arrives as a string, while structured JSON carries typed values, so an
//! integer may come as `3` or `"3"` and a timestamp as a timestamp or an RFC 3339 string.
//!
//! Writing goes through [`OcmExtensionsMut`], which always writes the canonical type of
//! each extension (see [`canonicalize`]), so that an event survives any encode/decode
//! cycle unchanged.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cloudevents::Event;
use cloudevents::event::ExtensionValue;

/// The work's UID (UUIDv5 for sdk-go sources).
pub const RESOURCE_ID: &str = "resourceid";
/// The work generation (CloudEvents Integer, int32 range).
pub const RESOURCE_VERSION: &str = "resourceversion";
/// Target or origin cluster; the ManifestWork namespace.
pub const CLUSTER_NAME: &str = "clustername";
/// On agent events: the source that owns the work.
pub const ORIGINAL_SOURCE: &str = "originalsource";
/// Present on spec events of works being deleted.
pub const DELETION_TIMESTAMP: &str = "deletiontimestamp";
/// Snowflake id ordering an agent's status events (decimal string).
pub const SEQUENCE_ID: &str = "sequenceid";
/// SHA-256 hex of the canonical status JSON.
pub const STATUS_HASH: &str = "statushash";
/// Serialized ObjectMeta JSON of the work.
pub const METADATA: &str = "metadata";
/// Serialized JSON object of `logging.open-cluster-management.io/*` annotations.
pub const LOG_TRACING: &str = "logtracing";

/// Every OCM extension name, in the order sdk-go documents them.
pub const ALL: [&str; 9] = [
    RESOURCE_ID,
    RESOURCE_VERSION,
    CLUSTER_NAME,
    ORIGINAL_SOURCE,
    DELETION_TIMESTAMP,
    SEQUENCE_ID,
    STATUS_HASH,
    METADATA,
    LOG_TRACING,
];

/// Annotation prefix whose entries travel in the `logtracing` extension.
pub const LOG_TRACING_ANNOTATION_PREFIX: &str = "logging.open-cluster-management.io/";

/// Why an extension could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// The event lacks a required extension.
    #[error("missing extension {0}")]
    Missing(&'static str),
    /// The extension has a type that cannot be converted.
    #[error("extension {name} has type {found}, expected {expected}")]
    WrongType {
        /// Extension name.
        name: &'static str,
        /// Expected CloudEvents type.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// The extension has the right type but an unusable value.
    #[error("extension {name} has invalid value {value:?}: {reason}")]
    Invalid {
        /// Extension name.
        name: &'static str,
        /// The offending value (truncated to 200 characters).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn type_name(v: &ExtensionValue) -> &'static str {
    match v {
        ExtensionValue::String(_) => "String",
        ExtensionValue::Boolean(_) => "Boolean",
        ExtensionValue::Integer(_) => "Integer",
    }
}

fn invalid(name: &'static str, value: &str, reason: impl ToString) -> ExtensionError {
    ExtensionError::Invalid {
        name,
        value: value.chars().take(200).collect(),
        reason: reason.to_string(),
    }
}

fn string_ext<'e>(event: &'e Event, name: &'static str) -> Result<Option<&'e str>, ExtensionError> {
    match event.extension(name) {
        None => Ok(None),
        Some(ExtensionValue::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(ExtensionError::WrongType {
            name,
            expected: "String",
            found: type_name(other),
        }),
    }
}

/// Parses a CloudEvents Integer leniently: a typed integer or its decimal string, in the
/// int32 range the CloudEvents type system allows (§7.1).
fn int32_ext(event: &Event, name: &'static str) -> Result<Option<i64>, ExtensionError> {
    let v = match event.extension(name) {
        None => return Ok(None),
        Some(ExtensionValue::Integer(i)) => *i,
        Some(ExtensionValue::String(s)) => {
            s.trim().parse::<i64>().map_err(|e| invalid(name, s, e))?
        }
        Some(other) => {
            return Err(ExtensionError::WrongType {
                name,
                expected: "Integer",
                found: type_name(other),
            });
        }
    };
    if i32::try_from(v).is_err() {
        return Err(invalid(name, &v.to_string(), "outside the int32 range"));
    }
    Ok(Some(v))
}

/// Read access to the OCM extensions of an [`Event`].
pub trait OcmExtensions {
    /// `resourceid`; required on every spec and status event.
    fn resource_id(&self) -> Result<&str, ExtensionError>;
    /// `resourceversion` (generation); required on every spec and status event.
    fn resource_version(&self) -> Result<i64, ExtensionError>;
    /// `clustername`, when present (it may legitimately be `""`).
    fn cluster_name(&self) -> Result<Option<&str>, ExtensionError>;
    /// `originalsource`, when present (it may legitimately be `""`).
    fn original_source(&self) -> Result<Option<&str>, ExtensionError>;
    /// `deletiontimestamp`, when present.
    fn deletion_timestamp(&self) -> Result<Option<DateTime<Utc>>, ExtensionError>;
    /// `sequenceid` as its decimal string, when present.
    fn sequence_id(&self) -> Result<Option<&str>, ExtensionError>;
    /// `statushash`, when present.
    fn status_hash(&self) -> Result<Option<&str>, ExtensionError>;
    /// `metadata` parsed as a JSON object, when present.
    fn metadata_json(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ExtensionError>;
    /// `logtracing` entries; absent or empty means none.
    fn log_tracing(&self) -> Result<BTreeMap<String, String>, ExtensionError>;
}

impl OcmExtensions for Event {
    fn resource_id(&self) -> Result<&str, ExtensionError> {
        string_ext(self, RESOURCE_ID)?.ok_or(ExtensionError::Missing(RESOURCE_ID))
    }

    fn resource_version(&self) -> Result<i64, ExtensionError> {
        int32_ext(self, RESOURCE_VERSION)?.ok_or(ExtensionError::Missing(RESOURCE_VERSION))
    }

    fn cluster_name(&self) -> Result<Option<&str>, ExtensionError> {
        string_ext(self, CLUSTER_NAME)
    }

    fn original_source(&self) -> Result<Option<&str>, ExtensionError> {
        string_ext(self, ORIGINAL_SOURCE)
    }

    fn deletion_timestamp(&self) -> Result<Option<DateTime<Utc>>, ExtensionError> {
        match string_ext(self, DELETION_TIMESTAMP)? {
            None => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(s.trim())
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| invalid(DELETION_TIMESTAMP, s, e)),
        }
    }

    fn sequence_id(&self) -> Result<Option<&str>, ExtensionError> {
        string_ext(self, SEQUENCE_ID)
    }

    fn status_hash(&self) -> Result<Option<&str>, ExtensionError> {
        let hash = string_ext(self, STATUS_HASH)?;
        if let Some(h) = hash
            && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid(STATUS_HASH, h, "not 64 hex digits"));
        }
        Ok(hash)
    }

    fn metadata_json(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ExtensionError> {
        match string_ext(self, METADATA)? {
            None => Ok(None),
            Some(s) => serde_json::from_str(s)
                .map(Some)
                .map_err(|e| invalid(METADATA, s, e)),
        }
    }

    fn log_tracing(&self) -> Result<BTreeMap<String, String>, ExtensionError> {
        match string_ext(self, LOG_TRACING)? {
            None => Ok(BTreeMap::new()),
            Some(s) if s.trim().is_empty() => Ok(BTreeMap::new()),
            Some(s) => serde_json::from_str(s).map_err(|e| invalid(LOG_TRACING, s, e)),
        }
    }
}

/// Write access to the OCM extensions of an [`Event`], always in canonical form.
pub trait OcmExtensionsMut {
    /// Sets `resourceid`.
    fn set_resource_id(&mut self, id: &str);
    /// Sets `resourceversion`; fails outside the int32 range (§7.1, §10 item 13).
    fn set_resource_version(&mut self, generation: i64) -> Result<(), ExtensionError>;
    /// Sets `clustername`.
    fn set_cluster_name(&mut self, cluster: &str);
    /// Sets `originalsource`.
    fn set_original_source(&mut self, source: &str);
    /// Sets `deletiontimestamp` (RFC 3339, UTC, nanoseconds as Go prints them).
    fn set_deletion_timestamp(&mut self, at: DateTime<Utc>);
    /// Sets `sequenceid`.
    fn set_sequence_id(&mut self, id: &str);
    /// Sets `statushash`.
    fn set_status_hash(&mut self, hash: &str);
    /// Sets `metadata` to the compact JSON of `meta`.
    fn set_metadata_json(&mut self, meta: &serde_json::Map<String, serde_json::Value>);
    /// Sets `logtracing` (`{}` when empty, as sdk-go does).
    fn set_log_tracing(&mut self, entries: &BTreeMap<String, String>);
}

impl OcmExtensionsMut for Event {
    fn set_resource_id(&mut self, id: &str) {
        self.set_extension(RESOURCE_ID, id);
    }

    fn set_resource_version(&mut self, generation: i64) -> Result<(), ExtensionError> {
        if i32::try_from(generation).is_err() {
            return Err(invalid(
                RESOURCE_VERSION,
                &generation.to_string(),
                "outside the int32 range",
            ));
        }
        self.set_extension(RESOURCE_VERSION, generation);
        Ok(())
    }

    fn set_cluster_name(&mut self, cluster: &str) {
        self.set_extension(CLUSTER_NAME, cluster);
    }

    fn set_original_source(&mut self, source: &str) {
        self.set_extension(ORIGINAL_SOURCE, source);
    }

    fn set_deletion_timestamp(&mut self, at: DateTime<Utc>) {
        self.set_extension(DELETION_TIMESTAMP, format_rfc3339_nano(&at));
    }

    fn set_sequence_id(&mut self, id: &str) {
        self.set_extension(SEQUENCE_ID, id);
    }

    fn set_status_hash(&mut self, hash: &str) {
        self.set_extension(STATUS_HASH, hash);
    }

    fn set_metadata_json(&mut self, meta: &serde_json::Map<String, serde_json::Value>) {
        let json = serde_json::Value::Object(meta.clone()).to_string();
        self.set_extension(METADATA, json);
    }

    fn set_log_tracing(&mut self, entries: &BTreeMap<String, String>) {
        let json = serde_json::to_string(entries).unwrap_or_else(|_| "{}".to_string());
        self.set_extension(LOG_TRACING, json);
    }
}

/// Formats a time like Go's `time.RFC3339Nano` in UTC: `2025-12-16T06:00:17.921082037Z`,
/// trailing zeros of the fraction trimmed and no fraction at all for whole seconds.
pub fn format_rfc3339_nano(t: &DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// Brings extension values to their canonical CloudEvents type (§4): `resourceversion`
/// becomes an Integer when it is a canonical decimal in the int32 range; everything else
/// stays as it is. Decoders call this so that the same event read from binary mode
/// (where every value is a string) and from structured JSON compares equal.
pub fn canonicalize(event: &mut Event) {
    if let Some(ExtensionValue::String(s)) = event.extension(RESOURCE_VERSION)
        && let Ok(v) = s.parse::<i32>()
        && v.to_string() == *s
    {
        event.set_extension(RESOURCE_VERSION, i64::from(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{EventBuilder, EventBuilderV10};

    fn base() -> Event {
        EventBuilderV10::new()
            .id("1")
            .source("s")
            .ty("a.b.c.spec.create_request")
            .build()
            .unwrap()
    }

    #[test]
    fn lenient_integer_and_strict_range() {
        let mut e = base();
        e.set_extension(RESOURCE_VERSION, "13");
        assert_eq!(e.resource_version().unwrap(), 13);
        e.set_extension(RESOURCE_VERSION, 13i64);
        assert_eq!(e.resource_version().unwrap(), 13);
        e.set_extension(RESOURCE_VERSION, "x");
        assert!(matches!(
            e.resource_version(),
            Err(ExtensionError::Invalid {
                name: RESOURCE_VERSION,
                ..
            })
        ));
        e.set_extension(RESOURCE_VERSION, 1i64 << 40);
        assert!(e.resource_version().is_err());
        e.set_extension(RESOURCE_VERSION, true);
        assert!(matches!(
            e.resource_version(),
            Err(ExtensionError::WrongType { .. })
        ));
        assert!(e.set_resource_version(1 << 33).is_err());
        e.remove_extension(RESOURCE_VERSION);
        assert_eq!(
            e.resource_version(),
            Err(ExtensionError::Missing(RESOURCE_VERSION))
        );
    }

    #[test]
    fn timestamps_and_json_extensions() {
        let mut e = base();
        e.set_extension(DELETION_TIMESTAMP, "1985-04-12T23:20:50.52Z");
        let t = e.deletion_timestamp().unwrap().unwrap();
        assert_eq!(format_rfc3339_nano(&t), "1985-04-12T23:20:50.52Z");
        e.set_extension(DELETION_TIMESTAMP, "yesterday");
        assert!(e.deletion_timestamp().is_err());

        e.set_extension(LOG_TRACING, "{}");
        assert!(e.log_tracing().unwrap().is_empty());
        e.set_extension(LOG_TRACING, "[1]");
        assert!(e.log_tracing().is_err());

        e.set_extension(METADATA, "{\"name\":\"w\"}");
        assert_eq!(e.metadata_json().unwrap().unwrap()["name"], "w");
        e.set_extension(METADATA, "not json");
        assert!(e.metadata_json().is_err());

        e.set_extension(STATUS_HASH, "abc");
        assert!(e.status_hash().is_err());
    }

    #[test]
    fn canonical_resource_version() {
        let mut e = base();
        e.set_extension(RESOURCE_VERSION, "7");
        canonicalize(&mut e);
        assert_eq!(
            e.extension(RESOURCE_VERSION),
            Some(&ExtensionValue::Integer(7))
        );
        e.set_extension(RESOURCE_VERSION, "007");
        canonicalize(&mut e);
        assert_eq!(
            e.extension(RESOURCE_VERSION),
            Some(&ExtensionValue::String("007".into()))
        );
    }

    #[test]
    fn rfc3339_nano_matches_go() {
        let t = DateTime::parse_from_rfc3339("2025-12-16T06:00:17.921082037Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_rfc3339_nano(&t), "2025-12-16T06:00:17.921082037Z");
        let t = DateTime::parse_from_rfc3339("2025-12-16T06:00:17.771003Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_rfc3339_nano(&t), "2025-12-16T06:00:17.771003Z");
        let t = DateTime::parse_from_rfc3339("2025-12-16T07:00:17+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_rfc3339_nano(&t), "2025-12-16T06:00:17Z");
    }
}
