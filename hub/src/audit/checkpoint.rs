//! Signed checkpoints of the audit chain, the hub's audit key, and the anchor file.
//!
//! A checkpoint is itself a record of the chain (direction `internal`, type
//! [`CHECKPOINT_TYPE`]) whose CloudEvent data names the record it seals —
//! `{"seq": n, "hash": "…"}`, the chain's head when it was made — and which is signed
//! with the hub's audit key exactly like a spec event (`workbus_schemas::signature`:
//! the signature covers id, source, type and the data). Rewriting history therefore
//! means re-signing every later checkpoint, which needs the private key; a checkpoint
//! signed by another key is named as such by `audit verify`.
//!
//! Files in the data directory (the pattern of `signing.rs`):
//! - [`AUDIT_KEY_FILE`] (`audit.key`, 0600): the Ed25519 private key, made on first start;
//! - [`AUDIT_PUB_FILE`] (`audit.pub`): its public key, what auditors are given
//!   (`workbus-hub audit public-key`);
//! - [`ANCHOR_FILE`] (`audit.head`): the newest checkpoint's signed event, rewritten
//!   after each one commits. A database whose chain ends before the record it seals has
//!   lost its tail. (An attacker holding the data directory can only put an *older*
//!   signed checkpoint there; an auditor who kept a later one, or an export, sees it.)

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use workbus_schemas::Event;
use workbus_schemas::envelope::set_json_data;
use workbus_schemas::signature::{SignatureError, SigningKey, VerifyingKey};

use super::chain::AuditHead;
use crate::signing::{SigningKeyError, load_or_create_pair};
use crate::store::{AuditDirection, AuditEntry};

/// The audit key's private file in the data directory.
pub const AUDIT_KEY_FILE: &str = "audit.key";
/// The audit key's public file in the data directory.
pub const AUDIT_PUB_FILE: &str = "audit.pub";
/// The newest checkpoint's event, in the data directory.
pub const ANCHOR_FILE: &str = "audit.head";
/// The CloudEvent type of a checkpoint record.
pub const CHECKPOINT_TYPE: &str = "io.workbus.audit.checkpoint";

/// What a checkpoint's data says: the record it seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The sealed record's sequence number.
    pub seq: u64,
    /// The sealed record's hash.
    pub hash: String,
}

/// Why a checkpoint does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signature is missing, malformed, by another key, or does not verify.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// The data is not `{"seq", "hash"}`.
    #[error("the checkpoint's data is not a sealed record: {0}")]
    Data(String),
}

/// The hub's audit key (made on first start), and whether it was made now.
pub fn load_or_create_key(dir: &Path) -> Result<(SigningKey, bool), SigningKeyError> {
    load_or_create_pair(dir, AUDIT_KEY_FILE, AUDIT_PUB_FILE)
}

/// The checkpoint event sealing `head`, signed with `key`.
pub fn checkpoint_event(
    key: &SigningKey,
    source: &str,
    head: &AuditHead,
    at: DateTime<Utc>,
) -> Result<Event, SignatureError> {
    use cloudevents::EventBuilder;
    let mut event = cloudevents::EventBuilderV10::new()
        .id(format!("audit-checkpoint-{}", head.seq + 1))
        .source(source)
        .ty(CHECKPOINT_TYPE)
        .time(at)
        .build()
        .map_err(|e| SignatureError::Key(format!("cannot build the checkpoint: {e}")))?;
    set_json_data(
        &mut event,
        serde_json::json!({"seq": head.seq, "hash": head.hash}),
    );
    key.sign(&mut event)?;
    Ok(event)
}

/// The audit entry of a checkpoint event.
pub fn checkpoint_entry(event: Event, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at,
        direction: AuditDirection::Internal,
        cluster: None,
        resource_id: None,
        event_type: CHECKPOINT_TYPE.to_string(),
        event,
        actor: None,
    }
}

/// Checks a checkpoint event's signature against `key` and answers what it seals.
pub fn check(event: &Event, key: &VerifyingKey) -> Result<Sealed, CheckpointError> {
    key.verify(event)?;
    sealed(event)
}

/// What a checkpoint event seals, without checking its signature.
pub fn sealed(event: &Event) -> Result<Sealed, CheckpointError> {
    match event.data() {
        Some(cloudevents::Data::Json(v)) => {
            serde_json::from_value(v.clone()).map_err(|e| CheckpointError::Data(e.to_string()))
        }
        Some(cloudevents::Data::String(s)) => {
            serde_json::from_str(s).map_err(|e| CheckpointError::Data(e.to_string()))
        }
        Some(cloudevents::Data::Binary(b)) => {
            serde_json::from_slice(b).map_err(|e| CheckpointError::Data(e.to_string()))
        }
        None => Err(CheckpointError::Data("no data".into())),
    }
}

/// Writes the anchor file (the newest checkpoint's event as canonical JSON), replacing
/// the previous one atomically.
pub fn write_anchor(dir: &Path, checkpoint_event_json: &str) -> std::io::Result<()> {
    let path = dir.join(ANCHOR_FILE);
    let tmp = dir.join(format!("{ANCHOR_FILE}.tmp"));
    {
        use std::io::Write;
        let mut file = workbus_process::private_fs::create_private_file(&tmp, true)?;
        file.write_all(checkpoint_event_json.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)
}

/// The anchor file's checkpoint event, when there is one.
pub fn read_anchor(dir: &Path) -> std::io::Result<Option<Event>> {
    match std::fs::read(dir.join(ANCHOR_FILE)) {
        Ok(bytes) => workbus_schemas::mqtt::structured::decode(bytes.trim_ascii())
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The type test callers use: whether an event type is a checkpoint's.
pub fn is_checkpoint(event_type: &str) -> bool {
    event_type == CHECKPOINT_TYPE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_only() {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let other = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let head = AuditHead {
            seq: 7,
            hash: "ab".repeat(32),
        };
        let event = checkpoint_event(&key, "hub", &head, Utc::now()).unwrap();
        let sealed = check(&event, &key.verifying_key()).unwrap();
        assert_eq!((sealed.seq, sealed.hash), (7, head.hash.clone()));
        assert!(matches!(
            check(&event, &other.verifying_key()),
            Err(CheckpointError::Signature(SignatureError::OtherKey { .. }))
        ));
        let forged = checkpoint_event(
            &key,
            "hub",
            &AuditHead {
                seq: 8,
                hash: head.hash.clone(),
            },
            Utc::now(),
        )
        .unwrap();
        let mut swapped = event.clone();
        swapped.set_data("application/json", forged.data().unwrap().clone());
        assert!(matches!(
            check(&swapped, &key.verifying_key()),
            Err(CheckpointError::Signature(SignatureError::Invalid))
        ));
    }
}
