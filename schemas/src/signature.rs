//! Signed spec events: a compatible workbus extension (not part of OCM).
//!
//! A workbus hub signs every spec event it publishes (creates, updates, deletes and
//! resync answers) with Ed25519, and an agent configured with the hub's public key
//! applies only spec events whose signature verifies. OCM peers ignore the two
//! extensions below (CloudEvents receivers keep unknown extensions), so a signed event
//! is still an ordinary OCM event, and an agent without a key behaves as sdk-go.
//!
//! # Extensions
//! - [`SIGNATURE`] (`workbussignature`): the 64-byte Ed25519 signature, standard base64
//!   with padding.
//! - [`KEY_ID`] (`workbuskeyid`): the signing key's id ([`key_id`]), the first 8 bytes of
//!   the SHA-256 of the 32-byte public key in lower-case hex (16 characters), so that a
//!   rotated key is reported as such rather than as a bad signature.
//!
//! # Canonical form
//! The signature covers the bytes [`canonical_form`] returns: the ASCII tag
//! `workbus-spec-signature/v1` and a NUL byte, then these fields in this order, each as
//! one presence byte (`0` absent, `1` present) followed, when present, by its length as
//! a big-endian `u32` and its bytes:
//!
//! 1. `id`, 2. `source`, 3. `type` (the attributes, as strings);
//! 4. `clustername`, 5. `resourceid` (the extension strings);
//! 6. `resourceversion` as a canonical decimal integer (a typed Integer and its
//!    decimal string, as binary mode carries it, sign alike);
//! 7. `deletiontimestamp` as Go RFC 3339 with nanoseconds in UTC
//!    ([`format_rfc3339_nano`]), whatever form it arrived in;
//! 8. `metadata`: canonical JSON ([`canonical_json`]) when it parses as JSON, else its
//!    bytes;
//! 9. the data: canonical JSON of the data when it is (or parses as) JSON, else the
//!    data bytes; absent when the event has no data.
//!
//! Every input is read the lenient way the decoders read it and written in one
//! canonical way, so the same event encoded in binary or structured mode, or decoded
//! and encoded again, has the same canonical form. Other attributes (`time`,
//! `datacontenttype`, `logtracing`, …) are not covered: they do not decide what an
//! agent applies. A signature does not prevent replay of an older signed event; the
//! agent's generation rule (a stale generation is ignored) does that.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{AttributesReader, Event};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use crate::extensions::{self, ExtensionError, OcmExtensions, format_rfc3339_nano};
use crate::status_hash::canonical_json;

/// The extension carrying the signature (base64).
pub const SIGNATURE: &str = "workbussignature";
/// The extension carrying the signing key's id ([`key_id`]).
pub const KEY_ID: &str = "workbuskeyid";
/// Length of an Ed25519 public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// The tag that starts every canonical form (the version of its definition).
pub const CANONICAL_TAG: &[u8] = b"workbus-spec-signature/v1\0";

/// Why an event's signature does not verify, or a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The event carries no `workbussignature` extension.
    #[error("the event is not signed")]
    Missing,
    /// The signature extension is not base64 of 64 bytes.
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    /// The event was signed with another key than the configured one.
    #[error("signed with key {found}, expected key {expected}")]
    OtherKey {
        /// The configured key's id.
        expected: String,
        /// The id the event names.
        found: String,
    },
    /// The signature does not match the event (forged or altered).
    #[error("the signature does not verify")]
    Invalid,
    /// An extension the canonical form covers cannot be read.
    #[error("cannot make the canonical form: {0}")]
    Canonical(#[from] ExtensionError),
    /// A key is unusable (wrong length, bad encoding, bad PKCS#8).
    #[error("unusable key: {0}")]
    Key(String),
}

/// The id of a public key: hex of the first 8 bytes of its SHA-256.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            // Bytes beyond u32::MAX cannot reach here (MQTT caps a packet at 256 MiB);
            // saturate rather than panic on hostile sizes anyway.
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

/// Canonical JSON of `bytes` when they parse as JSON, else `None`.
fn json_bytes(bytes: &[u8]) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .map(|v| canonical_json(&v).into_bytes())
}

fn string_extension<'e>(
    event: &'e Event,
    name: &'static str,
) -> Result<Option<&'e str>, ExtensionError> {
    match event.extension(name) {
        None => Ok(None),
        Some(ExtensionValue::String(s)) => Ok(Some(s)),
        Some(_) => Err(ExtensionError::WrongType {
            name,
            expected: "String",
            found: "another type",
        }),
    }
}

/// The bytes a spec event's signature covers (see the module documentation).
pub fn canonical_form(event: &Event) -> Result<Vec<u8>, SignatureError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(CANONICAL_TAG);
    field(&mut out, Some(event.id().as_bytes()));
    field(&mut out, Some(event.source().as_str().as_bytes()));
    field(&mut out, Some(event.ty().as_bytes()));
    field(&mut out, event.cluster_name()?.map(str::as_bytes));
    field(
        &mut out,
        string_extension(event, extensions::RESOURCE_ID)?.map(str::as_bytes),
    );
    let version = match event.extension(extensions::RESOURCE_VERSION) {
        None => None,
        Some(_) => Some(event.resource_version()?.to_string()),
    };
    field(&mut out, version.as_deref().map(str::as_bytes));
    let deletion: Option<DateTime<Utc>> = event.deletion_timestamp()?;
    let deletion = deletion.map(|t| format_rfc3339_nano(&t));
    field(&mut out, deletion.as_deref().map(str::as_bytes));
    let metadata = string_extension(event, extensions::METADATA)?
        .map(|m| json_bytes(m.as_bytes()).unwrap_or_else(|| m.as_bytes().to_vec()));
    field(&mut out, metadata.as_deref());
    let data = match event.data() {
        None => None,
        Some(Data::Json(v)) => Some(canonical_json(v).into_bytes()),
        Some(Data::String(s)) => {
            Some(json_bytes(s.as_bytes()).unwrap_or_else(|| s.as_bytes().to_vec()))
        }
        Some(Data::Binary(b)) => Some(json_bytes(b).unwrap_or_else(|| b.clone())),
    };
    field(&mut out, data.as_deref());
    Ok(out)
}

/// The hub's private signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key as PKCS#8 v2 DER (what [`SigningKey::from_pkcs8`] reads), from
    /// the operating system's random source.
    pub fn generate_pkcs8() -> Result<Vec<u8>, SignatureError> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|e| SignatureError::Key(e.to_string()))
    }

    /// Reads a PKCS#8 (v1 or v2) DER Ed25519 key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SignatureError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| SignatureError::Key(e.to_string()))?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(SigningKey { pair, key_id })
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey::from_bytes(bytes)
    }

    /// This key's id ([`key_id`]).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `event` in place: sets [`KEY_ID`] and [`SIGNATURE`] over its canonical form.
    pub fn sign(&self, event: &mut Event) -> Result<(), SignatureError> {
        let form = canonical_form(event)?;
        let signature = self.pair.sign(&form);
        event.set_extension(KEY_ID, self.key_id.clone());
        event.set_extension(SIGNATURE, STANDARD.encode(signature.as_ref()));
        Ok(())
    }
}

/// A hub's public key, as an agent is configured with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    bytes: [u8; PUBLIC_KEY_LEN],
    key_id: String,
}

impl VerifyingKey {
    /// The key with these 32 bytes.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        let key_id = key_id(&bytes);
        VerifyingKey { bytes, key_id }
    }

    /// Reads the text form ([`VerifyingKey::to_text`]): base64 of the 32 key bytes;
    /// surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let raw = STANDARD
            .decode(text.trim())
            .map_err(|e| SignatureError::Key(format!("not base64: {e}")))?;
        let bytes: [u8; PUBLIC_KEY_LEN] = raw.try_into().map_err(|v: Vec<u8>| {
            SignatureError::Key(format!(
                "{} bytes, an Ed25519 public key has {PUBLIC_KEY_LEN}",
                v.len()
            ))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The text form: base64 of the 32 key bytes (what `signing.pub` holds).
    pub fn to_text(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// This key's id ([`key_id`]).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks that `event` carries a valid signature by this key.
    pub fn verify(&self, event: &Event) -> Result<(), SignatureError> {
        let encoded = match event.extension(SIGNATURE) {
            None => return Err(SignatureError::Missing),
            Some(ExtensionValue::String(s)) => s,
            Some(_) => return Err(SignatureError::Malformed("not a string".into())),
        };
        // Bound the work on hostile input: a valid signature is 88 base64 characters.
        if encoded.len() > 4 * SIGNATURE_LEN {
            return Err(SignatureError::Malformed("too long".into()));
        }
        let signature = STANDARD
            .decode(encoded.trim())
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        if signature.len() != SIGNATURE_LEN {
            return Err(SignatureError::Malformed(format!(
                "{} bytes, expected {SIGNATURE_LEN}",
                signature.len()
            )));
        }
        if let Some(ExtensionValue::String(found)) = event.extension(KEY_ID)
            && found != &self.key_id
        {
            return Err(SignatureError::OtherKey {
                expected: self.key_id.clone(),
                found: found.chars().take(64).collect(),
            });
        }
        let form = canonical_form(event)?;
        UnparsedPublicKey::new(&ED25519, &self.bytes)
            .verify(&form, &signature)
            .map_err(|_| SignatureError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::OcmExtensionsMut;
    use cloudevents::AttributesWriter;

    fn event() -> Event {
        let mut e = Event::default();
        e.set_id("id-1");
        e.set_source("hub");
        e.set_type("io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request");
        e.set_cluster_name("c1");
        e.set_resource_id("uid-1");
        e.set_resource_version(3).unwrap();
        e.set_data("application/json", serde_json::json!({"b": 1, "a": [1, 2]}));
        e
    }

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
    }

    #[test]
    fn signed_event_verifies_and_any_change_breaks_it() {
        let key = key();
        let public = VerifyingKey::parse(&key.verifying_key().to_text()).unwrap();
        let mut e = event();
        key.sign(&mut e).unwrap();
        assert_eq!(public.verify(&e), Ok(()));

        let mut pinned = e.clone();
        pinned.set_resource_version(i64::from(i32::MAX)).unwrap();
        assert_eq!(public.verify(&pinned), Err(SignatureError::Invalid));

        let mut deleted = e.clone();
        deleted.set_deletion_timestamp(Utc::now());
        assert_eq!(public.verify(&deleted), Err(SignatureError::Invalid));

        let mut other_data = e.clone();
        other_data.set_data("application/json", serde_json::json!({"b": 2}));
        assert_eq!(public.verify(&other_data), Err(SignatureError::Invalid));

        let mut other_cluster = e.clone();
        other_cluster.set_cluster_name("c2");
        assert_eq!(public.verify(&other_cluster), Err(SignatureError::Invalid));
    }

    #[test]
    fn lenient_forms_have_one_canonical_form() {
        let mut a = event();
        let mut b = event();
        b.set_extension(extensions::RESOURCE_VERSION, "3");
        b.set_data("application/json", br#"{"a":[1,2],"b":1}"#.to_vec());
        a.set_deletion_timestamp(DateTime::from_timestamp(1_700_000_000, 500).unwrap());
        b.set_extension(
            extensions::DELETION_TIMESTAMP,
            "2023-11-14T22:13:20.0000005Z",
        );
        assert_eq!(canonical_form(&a).unwrap(), canonical_form(&b).unwrap());
    }

    #[test]
    fn signatures_survive_both_mqtt_encodings() {
        use crate::mqtt::{self, Encoding};
        let key = key();
        let public = key.verifying_key();
        let mut live = event();
        live.set_extension(extensions::METADATA, r#"{"name":"w","uid":"uid-1"}"#);
        let mut deleted = event();
        deleted.set_deletion_timestamp(Utc::now());
        deleted.take_data();
        for mut e in [live, deleted] {
            key.sign(&mut e).unwrap();
            for encoding in [Encoding::Binary, Encoding::Structured] {
                let message =
                    mqtt::encode(&e, "sources/hub/consumers/c1/sourceevents", encoding).unwrap();
                let decoded = mqtt::decode(&message).unwrap();
                assert_eq!(public.verify(&decoded), Ok(()), "{encoding:?}");
            }
        }
    }

    #[test]
    fn unsigned_foreign_and_garbage_signatures_are_refused() {
        let key = key();
        let public = key.verifying_key();
        assert_eq!(public.verify(&event()), Err(SignatureError::Missing));

        let mut foreign = event();
        self::key().sign(&mut foreign).unwrap();
        assert!(matches!(
            public.verify(&foreign),
            Err(SignatureError::OtherKey { .. })
        ));
        // Claiming our key id does not help a forger.
        foreign.set_extension(KEY_ID, public.key_id().to_string());
        assert_eq!(public.verify(&foreign), Err(SignatureError::Invalid));

        let mut garbage = event();
        garbage.set_extension(SIGNATURE, "!!!");
        assert!(matches!(
            public.verify(&garbage),
            Err(SignatureError::Malformed(_))
        ));
        garbage.set_extension(SIGNATURE, "A".repeat(100_000));
        assert!(matches!(
            public.verify(&garbage),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn bad_public_keys_are_typed_errors() {
        assert!(matches!(
            VerifyingKey::parse("AAAA"),
            Err(SignatureError::Key(_))
        ));
        assert!(matches!(
            VerifyingKey::parse("not base64!"),
            Err(SignatureError::Key(_))
        ));
        assert!(SigningKey::from_pkcs8(b"junk").is_err());
    }
}
