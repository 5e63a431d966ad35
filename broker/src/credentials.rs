//! The credential file: identities that log in with user name and password (MQTT 3.1.1
//! devices without certificates), with passwords hashed at rest.
//!
//! One `identity:hash` per line, like Mosquitto's password file; the hash is an Argon2id
//! PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), `#` starts a comment.
//! Argon2id is deliberately slow and memory-hard (19 MiB per check with the default
//! parameters), so verifications run on the blocking pool, at most
//! [`MAX_CONCURRENT_CHECKS`] at a time: a reconnect storm of password clients costs time,
//! never unbounded memory.
//!
//! The file can be reloaded while the broker runs ([`Credentials::reload`], on SIGHUP in
//! the standalone broker): a file that does not parse changes nothing, and the identities
//! whose line went or changed are returned so their established password sessions can be
//! closed ([`crate::BrokerHandle::close_password_sessions`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;
use workbus_schemas::acl::Identity;

/// Password checks running at once (each holds Argon2's memory).
pub const MAX_CONCURRENT_CHECKS: usize = 2;

/// Largest password looked at; longer ones are refused without hashing.
const MAX_PASSWORD: usize = 1024;

/// A credential file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read or written.
    #[error("credential file {path}: {source}")]
    Io {
        /// Its path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `identity:argon2-hash`.
    #[error("credential file {path}, line {line}: {reason}")]
    Line {
        /// Its path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Hashing failed (never expected with valid parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Identity → Argon2 PHC hash.
type Hashes = HashMap<String, String>;

/// The identities of a credential file and their password hashes. Clones share the
/// table, so a reload through one is seen by every clone (the broker's authorizer).
#[derive(Debug, Clone)]
pub struct Credentials {
    hashes: Arc<RwLock<Arc<Hashes>>>,
    checks: Arc<Semaphore>,
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsReload {
    /// Identities listed now.
    pub identities: usize,
    /// Identities whose line was removed or whose hash changed (sorted): their
    /// password sessions should end.
    pub withdrawn: Vec<String>,
}

/// The identities of `old` that `new` removes or gives another hash (sorted).
pub fn withdrawn(old: &Hashes, new: &Hashes) -> Vec<String> {
    let mut names: Vec<String> = old
        .iter()
        .filter(|(name, hash)| new.get(*name) != Some(*hash))
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

impl Credentials {
    /// Reads and checks a credential file.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a credential file (`path` is for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Credentials, CredentialsError> {
        Ok(Credentials {
            hashes: Arc::new(RwLock::new(Arc::new(parse_hashes(path, text)?))),
            checks: Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS)),
        })
    }

    /// Reads `path` again and, when it parses, takes its table in place of the current
    /// one (every clone sees it). A file that cannot be read or parsed changes nothing.
    pub fn reload(&self, path: &Path) -> Result<CredentialsReload, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Io {
            path: path.to_owned(),
            source,
        })?;
        let new = Arc::new(parse_hashes(path, &text)?);
        let mut table = self.hashes.write().unwrap_or_else(PoisonError::into_inner);
        let withdrawn = withdrawn(&table, &new);
        *table = Arc::clone(&new);
        Ok(CredentialsReload {
            identities: new.len(),
            withdrawn,
        })
    }

    fn table(&self) -> Arc<Hashes> {
        Arc::clone(&self.hashes.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Number of identities listed.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// Whether no identity is listed.
    pub fn is_empty(&self) -> bool {
        self.table().is_empty()
    }

    /// Whether `password` is `name`'s. Unknown names cost a hash too, so timing does not
    /// tell which identities exist.
    pub async fn verify(&self, name: &str, password: &[u8]) -> bool {
        if password.len() > MAX_PASSWORD {
            return false;
        }
        let known = self.table().get(name).cloned();
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let password = password.to_vec();
        tokio::task::spawn_blocking(move || {
            let stored = known.as_deref().unwrap_or(UNKNOWN_USER_HASH.as_str());
            let ok = PasswordHash::new(stored)
                .is_ok_and(|h| Argon2::default().verify_password(&password, &h).is_ok());
            ok && known.is_some()
        })
        .await
        .unwrap_or(false)
    }
}

/// The table of a credential file's text (`path` is for messages).
fn parse_hashes(path: &Path, text: &str) -> Result<Hashes, CredentialsError> {
    let mut hashes = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| CredentialsError::Line {
            path: path.to_owned(),
            line: i + 1,
            reason,
        };
        let (name, hash) = line
            .split_once(':')
            .ok_or_else(|| bad("expected identity:hash".into()))?;
        Identity::parse(name).map_err(|e| bad(e.to_string()))?;
        PasswordHash::new(hash).map_err(|e| bad(format!("not a PHC hash: {e}")))?;
        if hashes.insert(name.to_owned(), hash.to_owned()).is_some() {
            return Err(bad(format!("{name} is listed twice")));
        }
    }
    Ok(hashes)
}

/// A hash of a random password nobody knows, checked for unknown user names.
static UNKNOWN_USER_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut secret = [0u8; 32];
    argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut secret);
    hash_password(&secret).unwrap_or_default()
});

/// Hashes `password` for a credential file (Argon2id, default parameters, random salt).
pub fn hash_password(password: &[u8]) -> Result<String, CredentialsError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| CredentialsError::Hash(e.to_string()))
}

/// The credential file text with `name`'s line set to `hash` (added, or replaced in
/// place); other lines, comments included, are kept.
pub fn set_line(text: &str, name: &str, hash: &str) -> String {
    let mut out = String::with_capacity(text.len() + name.len() + hash.len() + 2);
    let mut replaced = false;
    for line in text.lines() {
        let is_it = line.trim().split_once(':').is_some_and(|(n, _)| n == name);
        if is_it && !replaced {
            out.push_str(&format!("{name}:{hash}\n"));
            replaced = true;
        } else if !is_it {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out.push_str(&format!("{name}:{hash}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_and_rehashed_identities_are_withdrawn_added_and_kept_ones_not() {
        let table = |pairs: &[(&str, &str)]| -> Hashes {
            pairs
                .iter()
                .map(|(n, h)| (n.to_string(), h.to_string()))
                .collect()
        };
        let old = table(&[("a", "h1"), ("b", "h2"), ("c", "h3")]);
        let new = table(&[("b", "h2x"), ("c", "h3"), ("d", "h4")]);
        assert_eq!(withdrawn(&old, &new), vec!["a", "b"]);
        assert!(withdrawn(&old, &old).is_empty());
        assert!(withdrawn(&Hashes::new(), &new).is_empty());
    }

    #[tokio::test]
    async fn hashes_verify_and_files_parse() {
        let hash = hash_password(b"s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let text = set_line("# devices\n", "edge-1", &hash);
        let text = set_line(&text, "source.maestro", &hash);
        let creds = Credentials::parse(Path::new("f"), &text).unwrap();
        assert_eq!(creds.len(), 2);
        assert!(creds.verify("edge-1", b"s3cret").await);
        assert!(!creds.verify("edge-1", b"wrong").await);
        assert!(!creds.verify("edge-2", b"s3cret").await);
        assert!(!creds.verify("edge-1", &[b'x'; 5000]).await);
        // Replacing keeps one line per identity.
        let again = set_line(
            &text,
            "edge-1",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        );
        assert_eq!(again.matches("edge-1:").count(), 1);
        assert!(again.starts_with("# devices\n"));
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        for (text, line) in [
            ("edge-1\n", 1),
            ("\nEdge:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\n", 2),
            ("edge:plain\n", 1),
        ] {
            match Credentials::parse(Path::new("f"), text) {
                Err(CredentialsError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
