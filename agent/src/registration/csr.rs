//! The agent's certificate request: a new ECDSA P-256 key and a PKCS#10 CSR whose
//! subject CN (and DNS SAN) is the cluster name — the identity the broker reads from a
//! client certificate (`Agent(<cluster>)`). The hub refuses a CSR whose CN is not the
//! cluster it came from. The key never leaves the agent.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};

/// A fresh key and its certificate request, both PEM.
#[derive(Clone)]
pub struct CertificateRequest {
    /// The private key (PKCS#8 PEM): written to the identity dir only once the signed
    /// certificate arrives.
    pub key_pem: String,
    /// The PKCS#10 request (`-----BEGIN CERTIFICATE REQUEST-----`).
    pub csr_pem: String,
}

impl std::fmt::Debug for CertificateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("CertificateRequest")
            .field("csr_pem", &self.csr_pem)
            .finish_non_exhaustive()
    }
}

/// Why no request could be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make a certificate request: {0}")]
pub struct CsrError(#[from] rcgen::Error);

/// A new key and a CSR for `cluster`.
pub fn certificate_request(cluster: &str) -> Result<CertificateRequest, CsrError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![cluster.to_string()])?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, cluster);
    params.distinguished_name = subject;
    let csr = params.serialize_request(&key)?;
    Ok(CertificateRequest {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;
    use x509_parser::prelude::*;

    #[test]
    fn csr_names_the_cluster_and_carries_a_p256_key() {
        let req = certificate_request("edge-1").unwrap();
        assert!(
            req.csr_pem
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
        let (_, pem) = x509_parser::pem::parse_x509_pem(req.csr_pem.as_bytes()).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&pem.contents).unwrap();
        let cn: Vec<_> = csr
            .certification_request_info
            .subject
            .iter_common_name()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, vec!["edge-1".to_string()]);
        let key = KeyPair::from_pem(&req.key_pem).unwrap();
        assert_eq!(
            csr.certification_request_info.subject_pki.raw,
            key.subject_public_key_info().as_slice()
        );
        // Two requests, two keys.
        assert_ne!(certificate_request("edge-1").unwrap().key_pem, req.key_pem);
        assert!(!format!("{req:?}").contains("PRIVATE KEY"));
    }
}
