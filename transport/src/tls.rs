//! TLS client settings for the transport: server-authenticated TLS when only a CA is
//! given, mutual TLS when a client certificate and key are given too. Unlike sdk-go, a
//! CA alone never falls back to plain TCP (reference §10 item 3).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// PEM material for a TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA bundle (PEM) trusted for the broker certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub client_cert_pem: Option<Vec<u8>>,
    /// Client private key (PEM), for mutual TLS.
    pub client_key_pem: Option<Vec<u8>>,
}

/// Unusable TLS material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
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
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

impl TlsSettings {
    /// Builds the rustls client configuration (TLS 1.2 and 1.3, ring provider).
    pub fn client_config(&self, _host: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let ca = self.ca_pem.as_deref().ok_or(TlsError::NoCa)?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca) {
            let cert = cert.map_err(|e| TlsError::Pem {
                what: "CA",
                reason: e.to_string(),
            })?;
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
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TlsError::Pem {
                        what: "client certificate",
                        reason: e.to_string(),
                    })?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
                    what: "client key",
                    reason: e.to_string(),
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Rustls(e.to_string()))?
            }
            _ => return Err(TlsError::HalfClientAuth),
        };
        Ok(Arc::new(config))
    }
}
