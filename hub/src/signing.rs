//! The hub's spec signing key (`workbus_schemas::signature`): kept in the data
//! directory, made on the first start.
//!
//! - `<data-dir>/signing.key`: the Ed25519 private key, PKCS#8 DER in standard base64
//!   on one line, mode 0600. Whoever holds it can publish works every verifying agent
//!   applies: back it up like a CA key.
//! - `<data-dir>/signing.pub`: the public key (base64 of its 32 bytes, one line), what
//!   agents are given (`--spec-signing-key`). Written again from the private key at
//!   every start, so it always matches.
//!
//! Signing is always on in the hub; agents verify only when configured with the key.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use workbus_schemas::signature::{SignatureError, SigningKey};

/// The private key's file name inside the data directory.
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// The public key's file name inside the data directory.
pub const SIGNING_PUB_FILE: &str = "signing.pub";

/// Why the signing key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The key file does not hold a usable key.
    #[error("{path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: SignatureError,
    },
}

/// The signing key of the hub whose data directory is `dir`, and whether it was made
/// now (the caller prints the public key once then).
pub fn load_or_create(dir: &Path) -> Result<(SigningKey, bool), SigningKeyError> {
    load_or_create_pair(dir, SIGNING_KEY_FILE, SIGNING_PUB_FILE)
}

/// An Ed25519 key of the hub kept as `dir/key_file` (private, 0600, PKCS#8 in base64)
/// and `dir/pub_file` (public, rewritten at every load): made when missing. The spec
/// signing key and the audit checkpoint key (`audit::checkpoint`) are two such pairs.
pub fn load_or_create_pair(
    dir: &Path,
    key_file: &str,
    pub_file: &str,
) -> Result<(SigningKey, bool), SigningKeyError> {
    let path = dir.join(key_file);
    let file_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SigningKeyError::File { path, source }
    };
    let key_err = |source| SigningKeyError::Key {
        path: path.clone(),
        source,
    };
    let (der, created) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let der = STANDARD
                .decode(text.trim())
                .map_err(|e| key_err(SignatureError::Key(format!("not base64: {e}"))))?;
            (der, false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(file_err(dir))?;
            let der = SigningKey::generate_pkcs8().map_err(key_err)?;
            write_file(&path, &STANDARD.encode(&der), 0o600).map_err(file_err(&path))?;
            (der, true)
        }
        Err(e) => return Err(file_err(&path)(e)),
    };
    let key = SigningKey::from_pkcs8(&der).map_err(key_err)?;
    let public = dir.join(pub_file);
    write_file(&public, &key.verifying_key().to_text(), 0o644).map_err(file_err(&public))?;
    Ok((key, created))
}

/// Writes `line` to `path` with `mode`, replacing any file there (removed first, so an
/// existing file's wider mode is never kept).
fn write_file(path: &Path, line: &str, mode: u32) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reloaded_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = load_or_create(dir.path()).unwrap();
        assert!(created);
        let (again, created) = load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(first.key_id(), again.key_id());
        let public = std::fs::read_to_string(dir.path().join(SIGNING_PUB_FILE)).unwrap();
        assert_eq!(public.trim(), first.verifying_key().to_text());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SIGNING_KEY_FILE), "garbage!").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(SigningKeyError::Key { .. })
        ));
    }
}
