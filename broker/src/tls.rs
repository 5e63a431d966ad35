//! The TLS listeners' server configuration, and its reload.
//!
//! TLS 1.3 and 1.2 (rustls prefers 1.3; 1.2 is kept for old devices), ring provider. The
//! server certificate, its key and the client CA bundle are read from files into one
//! `rustls::ServerConfig`. [`TlsState`] holds the current one: every accepted connection
//! takes it at the start of its handshake, so a reload — on request or because the files
//! changed — applies to new handshakes while established connections keep the session
//! they negotiated. A reload that fails (half-written files during a rotation) keeps the
//! previous configuration and says why.
//!
//! With a CRL file, client certificates are also checked for revocation: the end entity
//! only (our CAs issue leaves directly), and a certificate whose CA publishes no list
//! here passes — during a CA rotation the list belongs to one CA, and refusing every
//! certificate of the other would drop half the fleet. A reload that brings a changed
//! list also re-checks the certificates of established connections
//! ([`TlsState::is_revoked`]): a revoked one must not keep its session until it
//! happens to reconnect.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::RootCertStore;
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use sha2::{Digest, Sha256};

use crate::config::{ClientAuth, TlsConfig};

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the expected kind.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

/// The files of one configuration as read, and a digest to notice changes.
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
    crl: Option<Vec<u8>>,
}

impl Files {
    fn read(config: &TlsConfig) -> Result<Files, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        Ok(Files {
            cert: read("certificate", &config.cert_file)?,
            key: read("key", &config.key_file)?,
            client_ca: match &config.client_ca_file {
                Some(p) => Some(read("client CA", p)?),
                None => None,
            },
            crl: match &config.crl_file {
                Some(p) => Some(read("CRL", p)?),
                None => None,
            },
        })
    }

    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [&self.cert[..], &self.key[..]]
            .into_iter()
            .chain(self.client_ca.as_deref())
            .chain(self.crl.as_deref())
        {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }
}

/// Builds the server configuration `config` describes from the files' current contents.
pub fn server_config(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(build(config, &Files::read(config)?)?.server)
}

/// A built configuration: what handshakes use, and the client certificate verifier in it
/// (kept apart because rustls does not hand it back), to re-check established sessions.
struct Built {
    server: Arc<rustls::ServerConfig>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

fn build(config: &TlsConfig, files: &Files) -> Result<Built, TlsError> {
    let pem = |what, path: &Path, reason: String| TlsError::Pem {
        what,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&files.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("certificate", &config.cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem(
            "certificate",
            &config.cert_file,
            "no certificate found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key)
        .map_err(|e| pem("key", &config.key_file, e.to_string()))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rustls_err = |e: rustls::Error| TlsError::Rustls(e.to_string());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rustls_err)?;
    let mut kept_verifier = None;
    let builder = match (config.client_auth, &files.client_ca) {
        (ClientAuth::Off, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::Rustls(
                "client certificates need a client CA file".into(),
            ));
        }
        (mode, Some(ca)) => {
            let path = config.client_ca_file.as_deref().unwrap_or(Path::new(""));
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| pem("client CA", path, e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| pem("client CA", path, e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(pem("client CA", path, "no certificate found".into()));
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(crl) = &files.crl {
                let path = config.crl_file.as_deref().unwrap_or(Path::new(""));
                let crls = CertificateRevocationListDer::pem_slice_iter(crl)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| pem("CRL", path, e.to_string()))?;
                if crls.is_empty() {
                    return Err(pem("CRL", path, "no revocation list found".into()));
                }
                verifier = verifier
                    .with_crls(crls)
                    .only_check_end_entity_revocation()
                    .allow_unknown_revocation_status();
            }
            let verifier = if mode == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            kept_verifier = Some(Arc::clone(&verifier));
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder.with_single_cert(chain, key).map_err(rustls_err)?;
    Ok(Built {
        server: Arc::new(server),
        verifier: kept_verifier,
    })
}

/// The current server configuration of a broker's TLS listeners, replaceable while they
/// run.
#[derive(Debug)]
pub(crate) struct TlsState {
    config: TlsConfig,
    current: RwLock<(Built, [u8; 32])>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("verifies_clients", &self.verifier.is_some())
            .finish_non_exhaustive()
    }
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The files changed and new handshakes use them.
    Changed,
    /// The files are as they were.
    Unchanged,
}

impl TlsState {
    /// Reads the files once; fails if they are unusable (the broker does not start).
    pub(crate) fn load(config: TlsConfig) -> Result<TlsState, TlsError> {
        let files = Files::read(&config)?;
        let server = build(&config, &files)?;
        Ok(TlsState {
            current: RwLock::new((server, files.digest())),
            config,
        })
    }

    /// The configuration for the next handshake.
    pub(crate) fn current(&self) -> Arc<rustls::ServerConfig> {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&guard.0.server)
    }

    /// Whether the current revocation list names the client certificate `chain` (leaf
    /// first) was accepted with. Only revocation counts: a certificate that merely no
    /// longer verifies (its CA rotated out, expired) keeps its established session, as
    /// the handshake-time check it passed intended; it is refused when it reconnects.
    pub(crate) fn is_revoked(&self, chain: &[bytes::Bytes]) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let Some(verifier) = &guard.0.verifier else {
            return false;
        };
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(&c[..]))
            .collect();
        matches!(
            verifier.verify_client_cert(
                &CertificateDer::from(&leaf[..]),
                &intermediates,
                UnixTime::now()
            ),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked
            ))
        )
    }

    /// The files' settings.
    pub(crate) fn config(&self) -> &TlsConfig {
        &self.config
    }

    /// Re-reads the files; installs them when they changed and are usable. On error the
    /// previous configuration stays in force.
    pub(crate) fn reload(&self) -> Result<Reloaded, TlsError> {
        let files = Files::read(&self.config)?;
        let digest = files.digest();
        if self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            == digest
        {
            return Ok(Reloaded::Unchanged);
        }
        let server = build(&self.config, &files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (server, digest);
        Ok(Reloaded::Changed)
    }
}
