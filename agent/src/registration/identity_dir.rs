//! The agent's identity directory (`--identity-dir`, default `<data dir>/identity`):
//! the cluster's own client certificate once the hub has signed it. Mode 0700, files
//! 0600; `tls.key` (the agent's private key), `tls.crt` (the certificate the hub
//! signed), `ca.crt` (the hub CA that signed it, when the hub sent one), and while a join
//! waits for the hub `pending-request.json` (the request in flight with its key, so a
//! restarted agent sends the same request again instead of leaving one more behind).
//!
//! Writes are atomic per file (temporary file, fsync, rename) and the pair is swapped
//! certificate-last: a crash between the two renames leaves `tls.crt.new` beside a
//! `tls.key` it matches, which [`IdentityDir::load`] finishes. A key and certificate
//! that do not belong together are never used.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{KeyPair, PublicKeyData};
use x509_parser::prelude::*;

/// The private key's file name.
pub const KEY_FILE: &str = "tls.key";
/// The certificate's file name.
pub const CERT_FILE: &str = "tls.crt";
/// The CA bundle's file name.
pub const CA_FILE: &str = "ca.crt";
/// The join request in flight's file name.
pub const PENDING_FILE: &str = "pending-request.json";
/// Suffix of a file written but not yet swapped in.
const NEW_SUFFIX: &str = ".new";

/// A join request in flight, kept across restarts: the cluster it is for, the CSR's name
/// suffix, the key (0600, like `tls.key`) and the CSR.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingRequest {
    /// The cluster it was made for.
    pub cluster: String,
    /// The CSR's name is `<cluster>-<suffix>`.
    pub suffix: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The PKCS#10 request (PEM).
    pub csr_pem: String,
}

impl std::fmt::Debug for PendingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("PendingRequest")
            .field("cluster", &self.cluster)
            .field("suffix", &self.suffix)
            .finish_non_exhaustive()
    }
}

/// Why the identity directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file system operation failed.
    #[error("identity dir {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The files are not a usable identity (named in the text).
    #[error("identity dir {path}: {reason}")]
    Invalid {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What a usable stored certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdentity {
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The certificate's serial, lowercase hex (for log lines).
    pub serial: String,
}

/// The identity directory of one agent.
#[derive(Debug, Clone)]
pub struct IdentityDir {
    dir: PathBuf,
}

impl IdentityDir {
    /// The directory `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> IdentityDir {
        IdentityDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The private key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// The certificate file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    /// The CA bundle file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError {
        let path = path.to_path_buf();
        move |source| IdentityError::Io { path, source }
    }

    fn invalid(&self, reason: impl Into<String>) -> IdentityError {
        IdentityError::Invalid {
            path: self.dir.clone(),
            reason: reason.into(),
        }
    }

    /// Writes `contents` to `name` atomically (0600, fsync, rename).
    fn write_file(&self, name: &str, contents: &[u8]) -> Result<(), IdentityError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f =
            workbus_process::private_fs::create_private_file(&tmp, true).map_err(self.io(&tmp))?;
        f.write_all(contents).map_err(self.io(&tmp))?;
        f.sync_all().map_err(self.io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(self.io(&path))
    }

    /// Keeps `request` as the join request in flight (replacing any).
    pub fn store_pending(&self, request: &PendingRequest) -> Result<(), IdentityError> {
        workbus_process::private_fs::ensure_private_dir(&self.dir).map_err(self.io(&self.dir))?;
        let json = serde_json::to_vec(request)
            .map_err(|e| self.invalid(format!("{PENDING_FILE}: {e}")))?;
        self.write_file(PENDING_FILE, &json)?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// The join request in flight for `cluster`, if a previous run left one. A file that
    /// cannot be parsed or was made for another cluster is not used (logged; the next
    /// [`IdentityDir::store_pending`] replaces it).
    pub fn load_pending(&self, cluster: &str) -> Result<Option<PendingRequest>, IdentityError> {
        let path = self.dir.join(PENDING_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(self.io(&path))?;
        match serde_json::from_slice::<PendingRequest>(&bytes) {
            Ok(p) if p.cluster == cluster && KeyPair::from_pem(&p.key_pem).is_ok() => Ok(Some(p)),
            Ok(p) => {
                tracing::warn!(path = %path.display(), %cluster, for_cluster = %p.cluster, "ignoring a pending join request made for another cluster or with an unusable key");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable pending join request");
                Ok(None)
            }
        }
    }

    /// Forgets the join request in flight (it was answered).
    pub fn clear_pending(&self) -> Result<(), IdentityError> {
        let path = self.dir.join(PENDING_FILE);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Stores a new identity: `key_pem` and the hub-signed `cert_pem` (and the hub's
    /// CA bundle when given), replacing the previous one.
    pub fn store(
        &self,
        key_pem: &str,
        cert_pem: &str,
        ca_pem: Option<&str>,
    ) -> Result<(), IdentityError> {
        workbus_process::private_fs::ensure_private_dir(&self.dir).map_err(self.io(&self.dir))?;
        if let Some(ca) = ca_pem {
            self.write_file(CA_FILE, ca.as_bytes())?;
        }
        let pending = format!("{CERT_FILE}{NEW_SUFFIX}");
        self.write_file(&pending, cert_pem.as_bytes())?;
        self.write_file(KEY_FILE, key_pem.as_bytes())?;
        let from = self.dir.join(&pending);
        std::fs::rename(&from, self.cert_path()).map_err(self.io(&from))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// The stored identity of `cluster`, if there is a usable one: key and certificate
    /// present and belonging together, the certificate's CN `cluster`, valid at `now`.
    /// `Ok(None)` when there is none (first start, or it expired); an error when files
    /// exist but cannot be read.
    pub fn load(
        &self,
        cluster: &str,
        now: SystemTime,
    ) -> Result<Option<StoredIdentity>, IdentityError> {
        let key_path = self.key_path();
        if !key_path.exists() {
            return Ok(None);
        }
        let key_pem = std::fs::read_to_string(&key_path).map_err(self.io(&key_path))?;
        let key =
            KeyPair::from_pem(&key_pem).map_err(|e| self.invalid(format!("{KEY_FILE}: {e}")))?;
        // Finish a swap a crash interrupted.
        let pending = self.dir.join(format!("{CERT_FILE}{NEW_SUFFIX}"));
        if pending.exists() {
            let pem = std::fs::read(&pending).map_err(self.io(&pending))?;
            if certificate_key_matches(&pem, &key) {
                std::fs::rename(&pending, self.cert_path()).map_err(self.io(&pending))?;
            }
        }
        let cert_path = self.cert_path();
        if !cert_path.exists() {
            return Ok(None);
        }
        let pem = std::fs::read(&cert_path).map_err(self.io(&cert_path))?;
        let (_, pem) =
            parse_x509_pem(&pem).map_err(|e| self.invalid(format!("{CERT_FILE}: {e}")))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| self.invalid(format!("{CERT_FILE}: {e}")))?;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            tracing::warn!(dir = %self.dir.display(), "identity key and certificate do not belong together; not used");
            return Ok(None);
        }
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok());
        if cn != Some(cluster) {
            tracing::warn!(dir = %self.dir.display(), ?cn, cluster, "identity certificate is for another cluster; not used");
            return Ok(None);
        }
        let validity = cert.validity();
        let identity = StoredIdentity {
            not_before: to_system_time(validity.not_before),
            not_after: to_system_time(validity.not_after),
            serial: cert.raw_serial_as_string().replace(':', ""),
        };
        if now >= identity.not_after {
            tracing::warn!(dir = %self.dir.display(), "identity certificate expired; not used");
            return Ok(None);
        }
        Ok(Some(identity))
    }
}

fn certificate_key_matches(cert_pem: &[u8], key: &KeyPair) -> bool {
    parse_x509_pem(cert_pem)
        .ok()
        .and_then(|(_, pem)| {
            pem.parse_x509()
                .ok()
                .map(|c| c.public_key().raw == key.subject_public_key_info().as_slice())
        })
        .unwrap_or(false)
}

fn to_system_time(t: ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH
    }
}

/// Makes the renames durable (best effort: not every file system syncs directories).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registration::csr::certificate_request;
    use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer};
    use std::time::Duration;

    /// A CA and a certificate for `cn` over `key_pem`'s key, valid `days` from now.
    fn signed(cn: &str, key_pem: &str, days: i64) -> String {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = Issuer::new(ca, ca_key);
        let mut p = CertificateParams::new(vec![cn.to_string()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        let now = time_now();
        p.not_before = now - ::time::Duration::days(1);
        p.not_after = now + ::time::Duration::days(days);
        let key = KeyPair::from_pem(key_pem).unwrap();
        p.signed_by(&key, &issuer).unwrap().pem()
    }

    fn time_now() -> ::time::OffsetDateTime {
        ::time::OffsetDateTime::now_utc()
    }

    #[test]
    fn stored_identity_round_trips_private_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = IdentityDir::new(tmp.path().join("identity"));
        let now = SystemTime::now();
        assert_eq!(dir.load("c1", now).unwrap(), None, "nothing yet");
        let req = certificate_request("c1").unwrap();
        dir.store(&req.key_pem, &signed("c1", &req.key_pem, 30), Some("CA"))
            .unwrap();
        let got = dir.load("c1", now).unwrap().expect("usable");
        assert!(got.not_after > now + Duration::from_secs(29 * 86_400));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(dir.path()), 0o700);
            assert_eq!(mode(&dir.key_path()), 0o600);
            assert_eq!(mode(&dir.cert_path()), 0o600);
            assert_eq!(mode(&dir.ca_path()), 0o600);
        }
        // Another cluster's, expired, or with another key: not used.
        assert_eq!(dir.load("c2", now).unwrap(), None);
        assert_eq!(
            dir.load("c1", now + Duration::from_secs(31 * 86_400))
                .unwrap(),
            None
        );
        let other = certificate_request("c1").unwrap();
        std::fs::write(dir.cert_path(), signed("c1", &other.key_pem, 30)).unwrap();
        assert_eq!(dir.load("c1", now).unwrap(), None);
    }

    #[test]
    fn an_interrupted_swap_is_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = IdentityDir::new(tmp.path());
        let old = certificate_request("c1").unwrap();
        dir.store(&old.key_pem, &signed("c1", &old.key_pem, 30), None)
            .unwrap();
        // Crash after the key was replaced, before the certificate was.
        let new = certificate_request("c1").unwrap();
        std::fs::write(
            tmp.path().join("tls.crt.new"),
            signed("c1", &new.key_pem, 30),
        )
        .unwrap();
        std::fs::write(dir.key_path(), &new.key_pem).unwrap();
        assert!(dir.load("c1", SystemTime::now()).unwrap().is_some());
        assert!(!tmp.path().join("tls.crt.new").exists());
    }
}
