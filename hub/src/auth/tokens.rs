//! Making and revoking API tokens, shared by the REST API (`api::tokens`, an admin's
//! calls) and the CLI's offline commands on a data directory (`token … --offline`, the
//! way in when no admin token is at hand), plus the first start's admin token.

use std::io::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use workbus_schemas::work::names::dns1123_label_errors;

use super::secret::{self, RandomError};
use crate::store::writes::{BootstrapToken, CreateToken};
use crate::store::{ApiToken, Role, ScopeEntry, Store, StoreError};

/// The file in the data directory that receives the first start's admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The name of the first start's admin token.
pub const BOOTSTRAP_NAME: &str = "admin";

/// The `created_by` of tokens made by the offline commands and the first start.
pub const OFFLINE_ACTOR: &str = "offline";

/// What to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Its name (default `<role>-<random>`); a DNS-1123 label.
    pub name: Option<String>,
    /// Its role.
    pub role: Role,
    /// The clusters it may touch; `None` = every cluster.
    pub clusters: Option<Vec<String>>,
}

/// Why a token could not be made, stored or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name or a cluster name is not a DNS-1123 label (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token file could not be written.
    #[error("cannot write {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn check_label(what: &str, value: &str) -> Result<(), TokenError> {
    let errors = dns1123_label_errors(value);
    if errors.is_empty() {
        return Ok(());
    }
    let rules: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let shown: String = value.chars().take(64).collect();
    Err(TokenError::Invalid(format!(
        "invalid {what} {shown:?}: {}",
        rules.join("; ")
    )))
}

/// Validates `request` and makes its token: the write that stores it and the secret,
/// to be shown once.
pub fn issue(
    request: TokenRequest,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<(CreateToken, String), TokenError> {
    let secret = secret::generate()?;
    let name = match request.name {
        Some(name) => name,
        // A suffix from the secret's digest: unique enough, and reveals nothing.
        None => format!(
            "{}-{}",
            request.role.as_str(),
            &secret::digest(&secret)[..8]
        ),
    };
    check_label("token name", &name)?;
    let scope = match request.clusters {
        None => None,
        Some(clusters) => {
            if clusters.is_empty() {
                return Err(TokenError::Invalid(
                    "a scoped token needs at least one cluster".into(),
                ));
            }
            for c in &clusters {
                check_label("cluster name", c)?;
            }
            let mut entries: Vec<ScopeEntry> =
                clusters.into_iter().map(ScopeEntry::Cluster).collect();
            entries.sort();
            entries.dedup();
            Some(entries)
        }
    };
    let token = ApiToken {
        name,
        hash: secret::digest(&secret),
        role: request.role,
        scope,
        created: now,
        created_by: created_by.to_string(),
    };
    Ok((CreateToken(token), secret))
}

/// On a store without any token, stores an admin token named [`BOOTSTRAP_NAME`] whose
/// secret is `given` (test harnesses and automation that bring their own) or a new
/// random one, written to `file` (mode 0600) when one is named. Answers the secret
/// when it stored one (so a caller prints it once), `None` when tokens existed.
/// Blocking.
pub fn bootstrap(
    store: &dyn Store,
    given: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, TokenError> {
    let secret = match given {
        Some(s) => s.to_string(),
        None => secret::generate()?,
    };
    let token = ApiToken {
        name: BOOTSTRAP_NAME.into(),
        hash: secret::digest(&secret),
        role: Role::Admin,
        scope: None,
        created: Utc::now(),
        created_by: OFFLINE_ACTOR.into(),
    };
    if !store.write(BootstrapToken(token))? {
        return Ok(None);
    }
    if let Some(path) = file
        && given.is_none()
    {
        write_secret_file(path, &secret)?;
    }
    Ok(Some(secret))
}

/// Writes `secret` to `path`, readable by its owner only (0600), replacing any file
/// there (never widening an existing file's mode: it is removed first).
pub fn write_secret_file(path: &Path, secret: &str) -> Result<(), TokenError> {
    let failed = |source| TokenError::File {
        path: path.display().to_string(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(format!("{secret}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)
}

/// Reads a token secret from a file (surrounding whitespace ignored).
pub fn read_secret_file(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}
