//! # The store key file: secrets at rest
//!
//! The hub encrypts what carries manifest payloads — work specs, the outbox's events
//! and ready messages, audit events — with AES-256-GCM (ring, as rustls uses it)
//! under keys from `<data-dir>/store.key`, a JSON file (mode `0600`) generated on
//! first start:
//!
//! ```json
//! {"keys": [{"id": "k20261207", "secret": "<32 bytes, base64>"}],
//!  "digestKey": "<32 bytes, base64>"}
//! ```
//!
//! As in Kubernetes' `EncryptionConfiguration`, **the first key encrypts and every
//! listed key decrypts**. Each sealed value names its key, so rotation is:
//! 1. add a new key *first* (`head -c 32 /dev/urandom | base64`, a new id), keeping the
//!    old ones after it, and restart the hub: new writes use the new key, old rows
//!    still read;
//! 2. old rows move to the new key as they are rewritten (outbox and audit rows age
//!    out; a work's spec is rewritten on its next update);
//! 3. remove an old key only when no row sealed with it remains — a row whose key is
//!    missing is reported as corrupt, never silently dropped.
//!
//! `digestKey` keys the HMAC-SHA256 that replaces Secret values in audit copies
//! ([`redact`](super::redact)); keep it across rotations so digests stay comparable.
//!
//! A sealed value is text, `wbenc1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`: the
//! prefix is the per-row version marker, so rows written before encryption (plain
//! JSON, which never starts with it) still read. The nonce is 96 random bits per value;
//! the associated data names the column, so a sealed value cannot be moved to another.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "store.key";
/// The marker that starts every sealed value (format version 1).
pub const SEALED_PREFIX: &str = "wbenc1:";
/// The length of every key, in bytes.
pub const KEY_LEN: usize = 32;
/// The longest key id.
const MAX_KEY_ID: usize = 64;

/// Why the key file or a sealed value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file is not valid.
    #[error("key file: {0}")]
    Format(String),
    /// A sealed value names a key the key file does not list.
    #[error("sealed with key {0:?}, which the key file does not list")]
    UnknownKey(String),
    /// A sealed value is malformed or fails authentication.
    #[error("sealed value does not open: {0}")]
    Sealed(&'static str),
    /// The system random source failed.
    #[error("no randomness available")]
    Random,
}

/// The key file as stored.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyFile {
    keys: Vec<KeyEntry>,
    digest_key: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: String,
    secret: String,
}

/// The keys loaded from a key file: the first encrypts, all decrypt; plus the digest
/// key. Holds no key material in `Debug` output.
pub struct Keyring {
    keys: Vec<(String, LessSafeKey)>,
    digest: hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// Loads `path`, or generates it (mode `0600`) with one fresh key when missing.
    /// An existing file is tightened to `0600` if looser (the caller is told so).
    pub fn load_or_create(path: &Path) -> Result<(Keyring, LoadedFrom), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let tightened = workbus_process::private_fs::tighten_file(path).map_err(io)?;
                Ok((Keyring::parse(&text)?, LoadedFrom::Existing(tightened)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = generate_key_file(&default_key_id())?;
                let mut file =
                    workbus_process::private_fs::create_private_file(path, true).map_err(io)?;
                std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok((Keyring::parse(&text)?, LoadedFrom::Created))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<Keyring, KeyError> {
        let file: KeyFile =
            serde_json::from_str(text).map_err(|e| KeyError::Format(e.to_string()))?;
        if file.keys.is_empty() {
            return Err(KeyError::Format("no keys listed".into()));
        }
        let mut keys = Vec::with_capacity(file.keys.len());
        for entry in file.keys {
            check_key_id(&entry.id)?;
            if keys.iter().any(|(id, _)| id == &entry.id) {
                return Err(KeyError::Format(format!(
                    "key id {:?} listed twice",
                    entry.id
                )));
            }
            let secret = decode_key(&entry.secret, &entry.id)?;
            let key = UnboundKey::new(&AES_256_GCM, &secret)
                .map_err(|_| KeyError::Format(format!("key {:?} is unusable", entry.id)))?;
            keys.push((entry.id, LessSafeKey::new(key)));
        }
        let digest = decode_key(&file.digest_key, "digestKey")?;
        Ok(Keyring {
            keys,
            digest: hmac::Key::new(hmac::HMAC_SHA256, &digest),
            rng: SystemRandom::new(),
        })
    }

    /// The id of the key that encrypts.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plain` for the column `column` (the associated data) with the first key.
    pub fn seal(&self, column: &str, plain: &[u8]) -> Result<String, KeyError> {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        buf.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(column.as_bytes()),
            &mut body,
        )
        .map_err(|_| KeyError::Sealed("encryption failed"))?;
        buf.extend_from_slice(&body);
        Ok(format!("{SEALED_PREFIX}{id}:{}", B64.encode(buf)))
    }

    /// Opens what [`seal`](Self::seal) made for `column`; a value without the sealed
    /// prefix (a row written before encryption) is returned as it is.
    pub fn open<'a>(&self, column: &str, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, KeyError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX.as_bytes()) else {
            return Ok(Cow::Borrowed(stored));
        };
        let colon = rest
            .iter()
            .position(|&b| b == b':')
            .ok_or(KeyError::Sealed("no key id"))?;
        let id = std::str::from_utf8(&rest[..colon]).map_err(|_| KeyError::Sealed("key id"))?;
        let key = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, key)| key)
            .ok_or_else(|| KeyError::UnknownKey(id.to_string()))?;
        let mut buf = B64
            .decode(&rest[colon + 1..])
            .map_err(|_| KeyError::Sealed("not base64"))?;
        if buf.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(KeyError::Sealed("too short"));
        }
        let nonce = Nonce::try_assume_unique_for_key(&buf[..NONCE_LEN])
            .map_err(|_| KeyError::Sealed("nonce"))?;
        // Opened in the decoded buffer, the plaintext moved to its front: no second
        // copy of every event `audit verify` reads.
        let len = key
            .open_within(nonce, Aad::from(column.as_bytes()), &mut buf, NONCE_LEN..)
            .map_err(|_| KeyError::Sealed("authentication failed"))?
            .len();
        buf.truncate(len);
        Ok(Cow::Owned(buf))
    }

    /// The keyed digest of `value` (HMAC-SHA256 under the digest key), as
    /// `hmac-sha256:<hex>`.
    pub fn digest(&self, value: &[u8]) -> String {
        format!(
            "hmac-sha256:{}",
            hex::encode(hmac::sign(&self.digest, value).as_ref())
        )
    }
}

/// Whether a key file was read or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedFrom {
    /// It was generated now.
    Created,
    /// It existed (and whether its mode had to be tightened).
    Existing(workbus_process::private_fs::Tightened),
}

/// The text of a new key file with one fresh key named `id` and a fresh digest key.
pub fn generate_key_file(id: &str) -> Result<String, KeyError> {
    check_key_id(id)?;
    let file = KeyFile {
        keys: vec![KeyEntry {
            id: id.to_string(),
            secret: B64.encode(random_key()?),
        }],
        digest_key: B64.encode(random_key()?),
    };
    serde_json::to_string_pretty(&file).map_err(|e| KeyError::Format(e.to_string()))
}

/// The key file `text` with a fresh key `id` added first (it encrypts from now on;
/// the others still decrypt): step 1 of a rotation.
pub fn add_primary_key(text: &str, id: &str) -> Result<String, KeyError> {
    check_key_id(id)?;
    let mut file: KeyFile =
        serde_json::from_str(text).map_err(|e| KeyError::Format(e.to_string()))?;
    if file.keys.iter().any(|k| k.id == id) {
        return Err(KeyError::Format(format!("key id {id:?} already listed")));
    }
    file.keys.insert(
        0,
        KeyEntry {
            id: id.to_string(),
            secret: B64.encode(random_key()?),
        },
    );
    serde_json::to_string_pretty(&file).map_err(|e| KeyError::Format(e.to_string()))
}

fn random_key() -> Result<[u8; KEY_LEN], KeyError> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| KeyError::Random)?;
    Ok(key)
}

/// `k` and the UTC date and time, e.g. `k20261207T131500`.
fn default_key_id() -> String {
    chrono::Utc::now().format("k%Y%m%dT%H%M%S").to_string()
}

/// Whether `id` is 1–`max` characters of `[A-Za-z0-9._-]`: safe in a sealed value's
/// prefix, a file name, a table cell or a log line (key ids; replica ids).
pub(crate) fn is_plain_id(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A key id: 1–64 of `[A-Za-z0-9._-]` (it is embedded in every sealed value).
fn check_key_id(id: &str) -> Result<(), KeyError> {
    if is_plain_id(id, MAX_KEY_ID) {
        Ok(())
    } else {
        Err(KeyError::Format(format!(
            "key id {id:?} must be 1-{MAX_KEY_ID} of [A-Za-z0-9._-]"
        )))
    }
}

fn decode_key(b64: &str, what: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let bytes = B64
        .decode(b64.trim())
        .map_err(|_| KeyError::Format(format!("{what}: not base64")))?;
    bytes
        .try_into()
        .map_err(|_| KeyError::Format(format!("{what}: must be {KEY_LEN} bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_rotates() {
        let old_text = generate_key_file("old").unwrap();
        let old = Keyring::parse(&old_text).unwrap();
        let sealed = old.seal("works.spec", b"top secret").unwrap();
        assert!(sealed.starts_with("wbenc1:old:"));
        assert!(!sealed.contains("top secret"));
        assert_eq!(
            &*old.open("works.spec", sealed.as_bytes()).unwrap(),
            b"top secret"
        );
        // another column's associated data does not open it
        assert!(old.open("audit.event", sealed.as_bytes()).is_err());
        // plain (legacy) rows pass through
        assert_eq!(&*old.open("works.spec", b"{}").unwrap(), b"{}");

        let new = Keyring::parse(&add_primary_key(&old_text, "new").unwrap()).unwrap();
        assert_eq!(new.primary_id(), "new");
        assert_eq!(
            &*new.open("works.spec", sealed.as_bytes()).unwrap(),
            b"top secret"
        );
        assert!(new.seal("c", b"x").unwrap().starts_with("wbenc1:new:"));
        // digests survive rotation
        assert_eq!(old.digest(b"v"), new.digest(b"v"));

        let other = Keyring::parse(&generate_key_file("old").unwrap()).unwrap();
        assert!(matches!(
            other.open("works.spec", sealed.as_bytes()),
            Err(KeyError::Sealed(_))
        ));
        let stranger = Keyring::parse(&generate_key_file("x").unwrap()).unwrap();
        assert!(matches!(
            stranger.open("works.spec", sealed.as_bytes()),
            Err(KeyError::UnknownKey(_))
        ));
    }

    #[test]
    fn hostile_sealed_values_are_errors() {
        let k = Keyring::parse(&generate_key_file("a").unwrap()).unwrap();
        for bad in [
            "wbenc1:",
            "wbenc1:a",
            "wbenc1:a:!!",
            "wbenc1:a:AAAA",
            "wbenc1:\u{e9}:x",
        ] {
            assert!(k.open("c", bad.as_bytes()).is_err(), "{bad:?}");
        }
        for bad in ["", "{}", r#"{"keys":[],"digestKey":""}"#] {
            assert!(Keyring::parse(bad).is_err(), "{bad:?}");
        }
        assert!(generate_key_file("a:b").is_err());
    }
}
