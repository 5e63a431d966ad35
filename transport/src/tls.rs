//! TLS client settings for the transport: server-authenticated TLS when only a CA is
//! given, mutual TLS when a client certificate and key are given too. Unlike sdk-go, a
//! CA alone never falls back to plain TCP (reference §10 item 3).
//!
//! Material given as files is read afresh for **every connection attempt** (see
//! [`TlsSettings::client_config`] and the session loop): certificates are rotated by
//! replacing the files and asking the session to reconnect
//! ([`crate::Publisher::reconnect`]), with no restart. A file that cannot be read or
//! parsed is a [`TlsError`] for that attempt — the previous material is not kept
//! silently, because a client that keeps connecting with a certificate its operator
//! replaced hides the broken rotation until the old certificate expires.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
pub use workbus_schemas::config::PemSource;

/// PEM material for a TLS connection, inline or in files (read on every connection
/// attempt).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA bundle (PEM) trusted for the broker certificate.
    pub ca_pem: Option<PemSource>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub client_cert_pem: Option<PemSource>,
    /// Client private key (PEM), for mutual TLS.
    pub client_key_pem: Option<PemSource>,
}

/// Unusable TLS material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {reason}", path.display())]
    Read {
        /// Which input.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// A PEM block could not be parsed.
    #[error("invalid PEM in {what}: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// Parser message.
        reason: String,
    },
    /// No CA certificate: nothing to verify the broker against.
    #[error("TLS needs a CA certificate (caFile or caData)")]
    NoCa,
    /// Only one of certificate and key.
    #[error("either both or none of the client certificate and key must be set")]
    HalfClientAuth,
    /// rustls refused the configuration (e.g. a key that does not match the certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

impl TlsSettings {
    /// Mutual TLS from three files, read on every connection attempt: the CA bundle,
    /// the client certificate chain and its key.
    pub fn from_files(
        ca: impl Into<PathBuf>,
        client_cert: impl Into<PathBuf>,
        client_key: impl Into<PathBuf>,
    ) -> TlsSettings {
        TlsSettings {
            ca_pem: Some(PemSource::File(ca.into())),
            client_cert_pem: Some(PemSource::File(client_cert.into())),
            client_key_pem: Some(PemSource::File(client_key.into())),
        }
    }

    /// Whether any of the material lives in a file (and so may change between
    /// connection attempts).
    pub fn reads_files(&self) -> bool {
        [&self.ca_pem, &self.client_cert_pem, &self.client_key_pem]
            .into_iter()
            .any(|s| matches!(s, Some(PemSource::File(_))))
    }

    /// Builds the rustls client configuration (TLS 1.2 and 1.3, ring provider) from the
    /// material as it is now: files are read by this call.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let ca = read(self.ca_pem.as_ref().ok_or(TlsError::NoCa)?, "CA")?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            let cert = cert.map_err(|e| pem_error("CA", e))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem {
                what: "CA",
                reason: "no certificate found".into(),
            });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&self.client_cert_pem, &self.client_key_pem) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let cert = read(cert, "client certificate")?;
                let key = read(key, "client key")?;
                let chain = CertificateDer::pem_slice_iter(&cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| pem_error("client certificate", e))?;
                if chain.is_empty() {
                    return Err(TlsError::Pem {
                        what: "client certificate",
                        reason: "no certificate found".into(),
                    });
                }
                let key =
                    PrivateKeyDer::from_pem_slice(&key).map_err(|e| pem_error("client key", e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Rustls(e.to_string()))?
            }
            _ => return Err(TlsError::HalfClientAuth),
        };
        Ok(Arc::new(config))
    }
}

fn pem_error(what: &'static str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        what,
        reason: e.to_string(),
    }
}

fn read(source: &PemSource, what: &'static str) -> Result<Vec<u8>, TlsError> {
    match source {
        PemSource::Inline(bytes) => Ok(bytes.clone()),
        PemSource::File(path) => read_file(path, what),
    }
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}
