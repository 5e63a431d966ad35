//! The audit log's hash chain, as pure functions: what a record is, the bytes its hash
//! covers, and how a new record is linked to the chain's head. A storage backend only
//! persists [`AuditRecord`]s; it never computes a hash (`store::writes` links every
//! record through [`link`], once for every backend), and `audit verify` recomputes the
//! same hashes from a database or from an exported file.
//!
//! # The hash
//! `hash = lowercase_hex(SHA-256(bytes))`, where `bytes` is the ASCII tag
//! [`CHAIN_TAG`] and a NUL, then the previous record's hash as 32 raw bytes (all zero
//! for the first record, [`GENESIS`]), then `seq` as a big-endian `u64`, then these
//! fields, each as one presence byte (`0` absent, `1` present) followed, when present,
//! by its length as a big-endian `u32` and its UTF-8 bytes: `at` (RFC 3339 UTC with
//! nanoseconds, `2026-12-07T21:43:52.123456789Z`), `direction`, `cluster`, `source`,
//! `resource_id`, `resource_version` (decimal), `event_type`, `actor`, and last the
//! event: its canonical JSON ([`canonical_event`]).
//!
//! # The storage format
//! The event is kept as the canonical JSON of its CloudEvents *structured* form (keys
//! sorted, no whitespace: `status_hash::canonical_json`), after Secret values were
//! replaced by keyed digests (`store::redact`). That is also what `audit export`
//! writes, one event per line, so an exported and decrypted log verifies offline: the
//! hash covers this text, never the sealed (encrypted) column. Canonical JSON is
//! idempotent (parsing it and writing it again gives the same bytes), which is what
//! lets a verifier start from any JSON parser's view of a line. Chosen over the
//! CloudEvents protobuf format (`schemas` feature `protobuf`): any CloudEvents library
//! reads JSON lines, the hub already stores structured JSON, and the hub binary does
//! not compile the protobuf code.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use workbus_schemas::status_hash::canonical_json;

use crate::store::AuditDirection;

/// The tag that starts the bytes every record hash covers (the version of this format).
pub const CHAIN_TAG: &[u8] = b"workbus-audit-chain/v1\0";

/// The `prev_hash` of the first record: 32 zero bytes in hex.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The newest record of the chain: what the next one links to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditHead {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// One record of the audit log, exactly as stored and exported.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Position in the chain: 1, 2, 3, … without gaps (a retention cut removes a prefix).
    pub seq: u64,
    /// When the hub sent, received or made it.
    pub at: DateTime<Utc>,
    /// `sent`, `received`, `api` or `internal`.
    pub direction: AuditDirection,
    /// The cluster it concerns, when there is one.
    pub cluster: Option<String>,
    /// The CloudEvent `source`.
    pub source: Option<String>,
    /// The work (`resourceid`) it concerns, when there is one.
    pub resource_id: Option<String>,
    /// The `resourceversion` (generation), when the event carries one.
    pub resource_version: Option<i64>,
    /// The CloudEvent `type`.
    pub event_type: String,
    /// Who caused it (an API token's name); `None` for agents' events and the hub's own.
    pub actor: Option<String>,
    /// The whole CloudEvent, redacted, as canonical JSON ([`canonical_event`]).
    pub event: String,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// This record's hash (see the module documentation).
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record should have, recomputed from its fields.
    pub fn computed_hash(&self) -> String {
        record_hash(self)
    }

    /// This record as the head of the chain.
    pub fn head(&self) -> AuditHead {
        AuditHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// The event, parsed (canonical JSON is JSON).
    pub fn event_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.event)
    }
}

/// What is appended, before it is linked: the record without seq and hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// See [`AuditRecord::at`].
    pub at: DateTime<Utc>,
    /// See [`AuditRecord::direction`].
    pub direction: AuditDirection,
    /// See [`AuditRecord::cluster`].
    pub cluster: Option<String>,
    /// See [`AuditRecord::resource_id`].
    pub resource_id: Option<String>,
    /// See [`AuditRecord::event_type`].
    pub event_type: String,
    /// See [`AuditRecord::actor`].
    pub actor: Option<String>,
    /// The event, already redacted (Secret values digested).
    pub event: Value,
}

/// The canonical JSON of an event's structured form (see the module documentation).
pub fn canonical_event(event: &Value) -> String {
    canonical_json(event)
}

/// Links `new` to the chain whose newest record is `head` (`None`: an empty chain).
pub fn link(head: Option<&AuditHead>, new: NewRecord) -> AuditRecord {
    let (source, resource_version) = source_and_version(&new.event);
    let mut record = AuditRecord {
        seq: head.map_or(1, |h| h.seq + 1),
        at: new.at,
        direction: new.direction,
        cluster: new.cluster,
        source,
        resource_id: new.resource_id,
        resource_version,
        event_type: new.event_type,
        actor: new.actor,
        event: canonical_event(&new.event),
        prev_hash: head.map_or_else(|| GENESIS.to_string(), |h| h.hash.clone()),
        hash: String::new(),
    };
    record.hash = record_hash(&record);
    record
}

/// `source` and `resourceversion` of a structured-form event (a string or a number:
/// binary mode carries the version as a string).
fn source_and_version(event: &Value) -> (Option<String>, Option<i64>) {
    let source = event
        .get("source")
        .and_then(Value::as_str)
        .map(str::to_string);
    let version = match event.get(workbus_schemas::extensions::RESOURCE_VERSION) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    (source, version)
}

/// The text form of a record time, as hashed and exported.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// An optional text field's bytes.
fn opt(s: &Option<String>) -> Option<&[u8]> {
    s.as_deref().map(str::as_bytes)
}

/// Feeds one field: a presence byte, then its length and bytes when present.
fn hash_field(hasher: &mut Sha256, value: Option<&[u8]>) {
    match value {
        None => hasher.update([0]),
        Some(bytes) => {
            // Stored events are bounded far below 4 GiB; saturate rather than panic.
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            hasher.update([1]);
            hasher.update(len.to_be_bytes());
            hasher.update(bytes);
        }
    }
}

/// The hash of `record` from its fields and `prev_hash` (its own `hash` is ignored).
/// A `prev_hash` that is not 64 hex digits is hashed as its text, so such a record can
/// never verify against a real chain. The bytes are fed to SHA-256 as they are, not
/// copied into one buffer first: `audit verify` runs this for every record.
pub fn record_hash(record: &AuditRecord) -> String {
    let mut hasher = Sha256::new();
    hasher.update(CHAIN_TAG);
    let mut prev = [0u8; 32];
    match hex::decode_to_slice(&record.prev_hash, &mut prev) {
        Ok(()) => hasher.update(prev),
        Err(_) => hash_field(&mut hasher, Some(record.prev_hash.as_bytes())),
    }
    hasher.update(record.seq.to_be_bytes());
    hash_field(&mut hasher, Some(format_time(record.at).as_bytes()));
    hash_field(&mut hasher, Some(record.direction.as_str().as_bytes()));
    hash_field(&mut hasher, opt(&record.cluster));
    hash_field(&mut hasher, opt(&record.source));
    hash_field(&mut hasher, opt(&record.resource_id));
    let version = record.resource_version.map(|v| v.to_string());
    hash_field(&mut hasher, version.as_deref().map(str::as_bytes));
    hash_field(&mut hasher, Some(record.event_type.as_bytes()));
    hash_field(&mut hasher, opt(&record.actor));
    hash_field(&mut hasher, Some(record.event.as_bytes()));
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(n: i64) -> NewRecord {
        NewRecord {
            at: DateTime::from_timestamp(1_700_000_000 + n, 5).unwrap(),
            direction: AuditDirection::Received,
            cluster: Some("edge-1".into()),
            resource_id: Some("uid-1".into()),
            event_type: "t".into(),
            actor: None,
            event: json!({"specversion": "1.0", "id": n.to_string(), "source": "s",
                          "type": "t", "resourceversion": "3", "data": {"b": 1, "a": [n]}}),
        }
    }

    #[test]
    fn records_link_and_every_field_counts() {
        let first = link(None, new(1));
        assert_eq!(first.seq, 1);
        assert_eq!(first.prev_hash, GENESIS);
        assert_eq!(first.source.as_deref(), Some("s"));
        assert_eq!(first.resource_version, Some(3));
        assert!(first.event.starts_with("{\"data\":{\"a\":[1],\"b\":1}"));
        let second = link(Some(&first.head()), new(2));
        assert_eq!(
            (second.seq, second.prev_hash.as_str()),
            (2, first.hash.as_str())
        );
        assert_eq!(second.computed_hash(), second.hash);
        let changes: Vec<fn(&mut AuditRecord)> = vec![
            |r| r.seq += 1,
            |r| r.at += chrono::Duration::nanoseconds(1),
            |r| r.direction = AuditDirection::Sent,
            |r| r.cluster = None,
            |r| r.source = Some("x".into()),
            |r| r.resource_id = Some("uid-2".into()),
            |r| r.resource_version = None,
            |r| r.event_type.push('x'),
            |r| r.actor = Some("admin".into()),
            |r| r.event.push(' '),
            |r| r.prev_hash = GENESIS.into(),
        ];
        for change in changes {
            let mut r = second.clone();
            change(&mut r);
            assert_ne!(r.computed_hash(), second.hash, "{r:?}");
        }
    }

    /// The bytes of the module documentation, hashed by an independent implementation
    /// (Python's hashlib over the layout written out by hand): logs written by any
    /// version of the hub keep verifying.
    #[test]
    fn the_hash_is_the_documented_layout() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T21:43:52.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let record = AuditRecord {
            seq: 2,
            at,
            direction: AuditDirection::Received,
            cluster: Some("edge-1".into()),
            source: Some("s".into()),
            resource_id: Some("uid-1".into()),
            resource_version: Some(3),
            event_type: "t".into(),
            actor: None,
            event: r#"{"a":1}"#.into(),
            prev_hash: "ab".repeat(32),
            hash: String::new(),
        };
        assert_eq!(
            record_hash(&record),
            "01cd19bd29d77a3d1b68281fd3ba3323988ba055340ad0b3c2409e74b5e34ef7"
        );
        // A prev_hash that is not 64 hex digits is hashed as a field of text.
        let odd = AuditRecord {
            seq: 1,
            cluster: None,
            source: None,
            resource_id: None,
            resource_version: None,
            actor: Some("admin".into()),
            event: "{}".into(),
            prev_hash: "not-hex".into(),
            ..record
        };
        assert_eq!(
            record_hash(&odd),
            "ad74c0843db519bb67f36a69461887684b1e38a5e1ccc80a1939437c936eafb5"
        );
    }

    #[test]
    fn the_canonical_event_is_stable_through_a_parser() {
        let r = link(None, new(1));
        let again = canonical_event(&r.event_value().unwrap());
        assert_eq!(again, r.event);
    }
}
