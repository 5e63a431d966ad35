//! The hub's certificate directory, `<data-dir>/pki/`: the CA, the embedded broker's
//! server certificate, the hub's own source certificate and the agents' client
//! certificates, all made by [`workbus_broker::certs`] (directory 0700, files 0600).
//!
//! [`Pki::ensure`] creates it on the first start of `serve` or `quickstart` (and
//! `workbus-hub certs init` on demand); later starts keep the CA, so certificates handed
//! to agents stay valid, and re-issue the server certificate (so that it never expires
//! under a hub that restarts, and carries the names configured now). The certificates
//! of the hub itself and of the quickstart's in-process agents are issued afresh on
//! every start ([`Pki::transport_tls`]); `workbus-hub certs issue` issues a remote
//! agent's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use workbus_broker::TlsConfig;
use workbus_broker::certs::{self, CertError, Issued, Validity};
use workbus_schemas::acl::Identity;
use workbus_transport::TlsSettings;

/// The directory's name inside the hub's data directory.
pub const PKI_DIR: &str = "pki";

/// Why the certificate directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Making or reading a certificate failed.
    #[error("certificates in {dir}: {source}")]
    Certs {
        /// The certificate directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: CertError,
    },
    /// A certificate file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The name cannot be the identity asked for (e.g. a cluster named `source.x`
    /// would be a source).
    #[error("{0} cannot be given a certificate: {1}")]
    Identity(String, String),
}

/// An existing certificate directory with a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    dir: PathBuf,
    created: bool,
}

impl Pki {
    /// The certificate directory of the hub whose data directory is `data_dir`.
    pub fn dir_of(data_dir: &Path) -> PathBuf {
        data_dir.join(PKI_DIR)
    }

    /// Opens `<data_dir>/pki`, or creates it with a new CA when it holds none; either
    /// way with a fresh server certificate for localhost, 127.0.0.1, ::1 and
    /// `server_names`.
    pub fn ensure(data_dir: &Path, server_names: &[String]) -> Result<Pki, PkiError> {
        let dir = Self::dir_of(data_dir);
        let created = !dir.join(certs::CA_CERT).exists();
        let certs_error = |source| PkiError::Certs {
            dir: dir.clone(),
            source,
        };
        if created {
            certs::init(&dir, server_names).map_err(certs_error)?;
        } else {
            certs::issue_server(
                &dir,
                server_names,
                Validity::starting_now(certs::LEAF_VALIDITY),
            )
            .map_err(certs_error)?;
        }
        // An (empty) revocation list from the start, so the broker always checks it and
        // a revocation needs no restart.
        certs::ensure_crl(&dir).map_err(certs_error)?;
        Ok(Pki { dir, created })
    }

    /// Opens `<data_dir>/pki` if it holds a CA.
    pub fn open(data_dir: &Path) -> Option<Pki> {
        let dir = Self::dir_of(data_dir);
        dir.join(certs::CA_CERT).exists().then_some(Pki {
            dir,
            created: false,
        })
    }

    /// Whether [`Pki::ensure`] made the CA just now.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The trusted CAs: what clients verify the broker with (their `caFile`), and what
    /// the broker verifies client certificates with.
    pub fn ca_bundle(&self) -> PathBuf {
        self.dir.join(certs::CA_BUNDLE)
    }

    /// The broker's TLS listener: its server certificate, client certificates required
    /// from the CA bundle (mutual TLS) and checked against the revocation list when
    /// there is one, files re-checked for rotation and revocations.
    pub fn broker_tls(&self) -> TlsConfig {
        let tls = TlsConfig::mutual(
            self.dir.join(certs::SERVER_CERT),
            self.dir.join(certs::SERVER_KEY),
            self.ca_bundle(),
        );
        let crl = self.dir.join(certs::CRL);
        if crl.exists() {
            tls.with_crl_file(crl)
        } else {
            tls
        }
    }

    /// Revokes the certificate of `identity` issued last (see [`certs::revoke`]): the
    /// broker refuses it from its next TLS reload. Returns how many certificates the
    /// revocation list holds.
    pub fn revoke(&self, identity: &Identity) -> Result<usize, PkiError> {
        let cert = self.dir.join(format!("{}.pem", identity.name()));
        certs::revoke(&self.dir, &cert).map_err(|source| PkiError::Certs {
            dir: self.dir.clone(),
            source,
        })
    }

    /// Issues (or re-issues) the certificate of `identity`, valid for `validity`.
    pub fn issue(&self, identity: &Identity, validity: Duration) -> Result<Issued, PkiError> {
        check_identity(identity)?;
        certs::issue_client(&self.dir, identity, Validity::starting_now(validity)).map_err(
            |source| PkiError::Certs {
                dir: self.dir.clone(),
                source,
            },
        )
    }

    /// The transport's TLS settings for `identity`, a client in this process: the CA
    /// bundle and a certificate issued now (valid for [`certs::LEAF_VALIDITY`]), as
    /// files, which the transport reads on every connection attempt — re-issuing them
    /// (`workbus-hub certs issue`, a CA rotation) reaches the client on its next
    /// reconnect.
    pub fn transport_tls(&self, identity: &Identity) -> Result<TlsSettings, PkiError> {
        let issued = self.issue(identity, certs::LEAF_VALIDITY)?;
        Ok(TlsSettings::from_files(
            self.ca_bundle(),
            issued.cert,
            issued.key,
        ))
    }
}

/// Why a cluster's certificate signing request was not signed.
#[derive(Debug, thiserror::Error)]
pub enum CsrSignError {
    /// Not a PEM PKCS#10 request, or its signature does not verify.
    #[error("not a valid PEM certificate request: {0}")]
    Request(String),
    /// The request's subject CN is not the cluster it came from.
    #[error("the request's CN is {found:?}, not the cluster {cluster:?}")]
    Subject {
        /// The cluster.
        cluster: String,
        /// The CN found (truncated).
        found: String,
    },
    /// Reading the CA or signing failed.
    #[error("signing: {0}")]
    Sign(String),
}

/// Default validity of a certificate issued to a joining cluster (30 days; agents
/// rotate when 20–25 % is left).
pub const CLUSTER_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

impl Pki {
    /// Signs a joining cluster's PEM PKCS#10 request (`csr_pem`, signature verified)
    /// with the hub CA: a client certificate whose CN and DNS SAN are `cluster` —
    /// the same shape `certs issue` makes, so the broker reads `Identity::Agent` from it —
    /// valid for `validity`. Whatever else the request asks for (other names, CA,
    /// usages) is ignored; a CN other than `cluster` is refused. Returns the PEM.
    pub fn sign_cluster_csr(
        &self,
        cluster: &str,
        csr_pem: &[u8],
        validity: Duration,
    ) -> Result<String, CsrSignError> {
        use rcgen::{
            CertificateParams, CertificateSigningRequestParams, DnType, DnValue,
            ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
        };
        let text =
            std::str::from_utf8(csr_pem).map_err(|e| CsrSignError::Request(e.to_string()))?;
        let request = CertificateSigningRequestParams::from_pem(text)
            .map_err(|e| CsrSignError::Request(e.to_string()))?;
        let cn = match request.params.distinguished_name.get(&DnType::CommonName) {
            Some(DnValue::Utf8String(s)) => s.clone(),
            Some(DnValue::PrintableString(s)) => s.as_str().to_owned(),
            Some(DnValue::Ia5String(s)) => s.as_str().to_owned(),
            _ => String::new(),
        };
        if cn != cluster || check_identity(&Identity::Agent(cluster.to_owned())).is_err() {
            return Err(CsrSignError::Subject {
                cluster: cluster.to_owned(),
                found: cn.chars().take(80).collect(),
            });
        }
        let sign = |e: &dyn std::fmt::Display| CsrSignError::Sign(e.to_string());
        let mut params = CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(DnType::CommonName, cluster);
        params.distinguished_name = dn;
        params.subject_alt_names =
            vec![SanType::DnsName(cluster.try_into().map_err(|e| sign(&e))?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        let window = certs::Validity::starting_now(validity);
        params.not_before = window.not_before.into();
        params.not_after = window.not_after.into();
        let read_text =
            |name: &str| std::fs::read_to_string(self.dir.join(name)).map_err(|e| sign(&e));
        let ca_key = KeyPair::from_pem(&read_text(certs::CA_KEY)?).map_err(|e| sign(&e))?;
        let issuer =
            Issuer::from_ca_cert_pem(&read_text(certs::CA_CERT)?, ca_key).map_err(|e| sign(&e))?;
        let signed = CertificateSigningRequestParams {
            params,
            public_key: request.public_key,
        }
        .signed_by(&issuer)
        .map_err(|e| sign(&e))?;
        Ok(signed.pem())
    }
}

/// Refuses names whose text form reads back as another identity (a cluster called
/// `source.workbus` would get the hub's rights) or is no identity at all.
fn check_identity(identity: &Identity) -> Result<(), PkiError> {
    let name = identity.name();
    match Identity::parse(&name) {
        Ok(parsed) if parsed == *identity => Ok(()),
        Ok(parsed) => Err(PkiError::Identity(
            name,
            format!("the name reads as {parsed:?}"),
        )),
        Err(e) => Err(PkiError::Identity(name, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn first_start_creates_later_ones_keep_the_ca() {
        let data = tempfile::tempdir().unwrap();
        let pki = Pki::ensure(data.path(), &["hub.example".into()]).unwrap();
        assert!(pki.created());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(pki.dir()), 0o700);
        let tls = pki
            .transport_tls(&Identity::Agent("edge-1".into()))
            .unwrap();
        assert!(tls.client_cert_pem.is_some() && tls.client_key_pem.is_some());
        assert_eq!(mode(&pki.dir().join("edge-1-key.pem")), 0o600);
        let ca = std::fs::read(pki.dir().join(certs::CA_CERT)).unwrap();
        let server = std::fs::read(pki.dir().join(certs::SERVER_CERT)).unwrap();
        let again = Pki::ensure(data.path(), &["other.example".into()]).unwrap();
        assert!(!again.created());
        assert_eq!(std::fs::read(again.dir().join(certs::CA_CERT)).unwrap(), ca);
        assert_ne!(
            std::fs::read(again.dir().join(certs::SERVER_CERT)).unwrap(),
            server,
            "the server certificate is re-issued with the names of this start"
        );
        assert_eq!(Pki::open(data.path()), Some(again));
    }

    #[test]
    fn a_cluster_cannot_be_named_like_a_source() {
        let data = tempfile::tempdir().unwrap();
        let pki = Pki::ensure(data.path(), &[]).unwrap();
        for bad in ["source.workbus", "Bad Name", ""] {
            let e = pki
                .issue(&Identity::Agent(bad.into()), certs::LEAF_VALIDITY)
                .unwrap_err();
            assert!(matches!(e, PkiError::Identity(..)), "{bad}: {e}");
        }
    }
}
