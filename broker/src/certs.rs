//! Certificate tooling: a CA, the broker's server certificate and client certificates
//! for clusters and sources, as PEM files in one directory (`workbus-broker certs …`;
//! the hub's `workbus-hub certs …` can wrap these functions).
//!
//! Here rather than in a crate of its own: the broker is what consumes these files (and
//! the hub, which embeds the broker, already links it); agents only read the files they
//! are given and never issue certificates. Pure Rust (rcgen with ring).
//!
//! Layout of the directory (created 0700; every file 0600, written atomically):
//!
//! | file | what |
//! |---|---|
//! | `ca.pem`, `ca-key.pem` | the CA (ECDSA P-256), 10 years |
//! | `ca-bundle.pem` | the CAs trusted now: the broker's client CA and the clients' CA file |
//! | `ca-previous.pem` | the CA being retired, during a rotation |
//! | `crl.pem` | the current CA's revocation list ([`revoke`]; the broker's `--crl-file`) |
//! | `server.pem`, `server-key.pem` | the broker's certificate (SANs: localhost, 127.0.0.1, ::1 and the names given) |
//! | `<identity>.pem`, `<identity>-key.pem` | a client: CN and DNS SAN = the identity (`edge-1`, `source.maestro`) |
//!
//! **CA rotation** with an overlapping bundle: [`rotate_ca`] makes a new CA and sets the
//! bundle to new + old (the broker reloads it: connected clients stay, old and new
//! certificates are accepted; clients given the bundle accept either server
//! certificate); then re-issue the server and every client certificate; then
//! [`finish_rotation`] drops the old CA from the bundle.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use workbus_schemas::acl::Identity;

/// The CA certificate.
pub const CA_CERT: &str = "ca.pem";
/// The CA key.
pub const CA_KEY: &str = "ca-key.pem";
/// The trusted CAs (client CA of the broker, CA file of the clients).
pub const CA_BUNDLE: &str = "ca-bundle.pem";
/// The CA being retired during a rotation.
pub const CA_PREVIOUS: &str = "ca-previous.pem";
/// The current CA's certificate revocation list.
pub const CRL: &str = "crl.pem";
/// The broker's certificate.
pub const SERVER_CERT: &str = "server.pem";
/// The broker's key.
pub const SERVER_KEY: &str = "server-key.pem";

/// Validity of a CA.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default validity of server and client certificates.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file or the directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not build, sign or parse a certificate or key.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// `init` would replace an existing CA (use `rotate_ca` for that).
    #[error("{0} already holds a CA; rotate it instead of replacing it")]
    CaExists(PathBuf),
    /// A server name is empty.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// A file holds no certificate or revocation list that can be read.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A certificate validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start.
    pub not_before: SystemTime,
    /// End.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (clock skew) for `length`.
    pub fn starting_now(length: Duration) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(3600),
            not_after: now + length,
        }
    }
}

/// The paths of an issued certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

/// Creates the directory, a CA (with its empty revocation list in `crl.pem`) and the
/// server certificate for `server_names` (plus localhost, 127.0.0.1 and ::1). Refuses to
/// replace an existing CA.
pub fn init(dir: &Path, server_names: &[String]) -> Result<Issued, CertError> {
    create_dir(dir)?;
    let ca_path = dir.join(CA_CERT);
    if ca_path.exists() {
        return Err(CertError::CaExists(ca_path));
    }
    let ca = new_ca()?;
    write_ca(dir, &ca)?;
    write(&dir.join(CA_BUNDLE), ca.cert_pem.as_bytes())?;
    // Every trusted CA has a list from the start: OpenSSL-based brokers (Mosquitto's
    // `crlfile`) refuse certificates of a CA whose list is missing.
    ensure_crl(dir)?;
    issue_server(dir, server_names, Validity::starting_now(LEAF_VALIDITY))
}

/// Issues the broker's certificate (`server.pem`, `server-key.pem`) with the current CA.
pub fn issue_server(
    dir: &Path,
    server_names: &[String],
    validity: Validity,
) -> Result<Issued, CertError> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in server_names {
        if n.trim().is_empty() {
            return Err(CertError::ServerName(n.clone()));
        }
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.as_str().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.distinguished_name = name("workbus broker");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sign_leaf(dir, params, validity, SERVER_CERT, SERVER_KEY)
}

/// Issues a client certificate for `identity` (CN and DNS SAN = its name), written as
/// `<identity>.pem` and `<identity>-key.pem`.
pub fn issue_client(
    dir: &Path,
    identity: &Identity,
    validity: Validity,
) -> Result<Issued, CertError> {
    let id = identity.name();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&id);
    params.subject_alt_names = vec![SanType::DnsName(id.as_str().try_into()?)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign_leaf(
        dir,
        params,
        validity,
        &format!("{id}.pem"),
        &format!("{id}-key.pem"),
    )
}

/// Starts a CA rotation: the current CA becomes `ca-previous.pem`, a new CA is made, and
/// the bundle holds both (new first). Re-issue the server and client certificates next,
/// then call [`finish_rotation`].
pub fn rotate_ca(dir: &Path) -> Result<(), CertError> {
    let old = read(&dir.join(CA_CERT))?;
    write(&dir.join(CA_PREVIOUS), old.as_bytes())?;
    let ca = new_ca()?;
    write_ca(dir, &ca)?;
    write(
        &dir.join(CA_BUNDLE),
        format!("{}{}", ca.cert_pem, old).as_bytes(),
    )?;
    // The new CA's (empty) list beside the old one's, for the same reason as in `init`.
    ensure_crl(dir)
}

/// Ends a CA rotation: the bundle holds the current CA only, and `ca-previous.pem` goes.
pub fn finish_rotation(dir: &Path) -> Result<(), CertError> {
    let ca = read(&dir.join(CA_CERT))?;
    write(&dir.join(CA_BUNDLE), ca.as_bytes())?;
    let previous = dir.join(CA_PREVIOUS);
    match std::fs::remove_file(&previous) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CertError::Io {
            path: previous,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Revokes the certificate in `cert_file`, issued by the current CA: adds its serial to
/// the current CA's list in `crl.pem` (made if missing), signed by the CA. The lists of
/// previous CAs in the file are kept (during a rotation their certificates are still
/// trusted). Brokers given the file (`--crl-file`) refuse the certificate from their
/// next TLS reload. Returns how many certificates the current CA's list holds.
pub fn revoke(dir: &Path, cert_file: &Path) -> Result<usize, CertError> {
    let pem = std::fs::read(cert_file).map_err(|source| CertError::Io {
        path: cert_file.to_owned(),
        source,
    })?;
    let invalid = |reason: String| CertError::Invalid {
        path: cert_file.to_owned(),
        reason,
    };
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| invalid(e.to_string()))?;
    let cert = block.parse_x509().map_err(|e| invalid(e.to_string()))?;
    let serial = cert.raw_serial().to_vec();
    let (mut revoked, others) = crl_lists(dir)?;
    if !revoked.iter().any(|(s, _)| *s == serial) {
        revoked.push((serial, time::OffsetDateTime::now_utc()));
    }
    write_crl(dir, &revoked, &others)?;
    Ok(revoked.len())
}

/// Makes sure `crl.pem` holds a list of the current CA (empty when new), so a broker
/// can be started with `--crl-file` before anything is revoked and keeps checking
/// after a CA rotation.
pub fn ensure_crl(dir: &Path) -> Result<(), CertError> {
    let exists = dir.join(CRL).exists();
    let (revoked, others) = crl_lists(dir)?;
    // No list of the current CA and an empty one read alike; rewriting an empty list is
    // harmless.
    if exists && !revoked.is_empty() {
        return Ok(());
    }
    write_crl(dir, &revoked, &others)
}

/// A revoked serial and when it was revoked.
type Revoked = (Vec<u8>, time::OffsetDateTime);

const CRL_END: &str = "-----END X509 CRL-----";

/// What `crl.pem` lists for the current CA, and the PEM blocks of other CAs' lists.
fn crl_lists(dir: &Path) -> Result<(Vec<Revoked>, Vec<String>), CertError> {
    let path = dir.join(CRL);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(source) => return Err(CertError::Io { path, source }),
    };
    let invalid = |reason: String| CertError::Invalid {
        path: path.clone(),
        reason,
    };
    let ca_pem = read(&dir.join(CA_CERT))?;
    let (_, ca_block) =
        x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let ca = ca_block.parse_x509().map_err(|e| invalid(e.to_string()))?;
    let (mut current, mut others) = (Vec::new(), Vec::new());
    for block in text
        .split_inclusive(CRL_END)
        .filter(|b| b.contains(CRL_END))
    {
        let (_, pem) = x509_parser::pem::parse_x509_pem(block.as_bytes())
            .map_err(|e| invalid(e.to_string()))?;
        let (_, crl) =
            x509_parser::parse_x509_crl(&pem.contents).map_err(|e| invalid(e.to_string()))?;
        if crl.issuer().as_raw() == ca.subject().as_raw() {
            current = crl
                .iter_revoked_certificates()
                .map(|r| (r.raw_serial().to_vec(), r.revocation_date.to_datetime()))
                .collect();
        } else {
            others.push(format!("{}\n", block.trim()));
        }
    }
    Ok((current, others))
}

fn write_crl(dir: &Path, revoked: &[Revoked], others: &[String]) -> Result<(), CertError> {
    let ca_key = KeyPair::from_pem(&read(&dir.join(CA_KEY))?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&dir.join(CA_CERT))?, ca_key)?;
    let now = time::OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(365),
        // Increases with every list written.
        crl_number: SerialNumber::from(now.unix_timestamp().unsigned_abs()),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|(serial, at)| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: *at,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let mut text = params.signed_by(&issuer)?.pem()?;
    for other in others {
        text.push_str(other);
    }
    write(&dir.join(CRL), text.as_bytes())
}

/// A new CA's PEM texts.
struct NewCa {
    cert_pem: String,
    key_pem: String,
}

fn new_ca() -> Result<NewCa, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    // A distinct name per CA: during a rotation old and new must not be confused.
    // Nanoseconds: a rotation may follow `init` within the same second (tests do), and
    // a revocation list is matched to its CA by name.
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    params.distinguished_name = name(&format!("workbus CA {stamp}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, Validity::starting_now(CA_VALIDITY));
    let cert = params.self_signed(&key)?;
    Ok(NewCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn write_ca(dir: &Path, ca: &NewCa) -> Result<(), CertError> {
    // The key first: a CA certificate without its key would be a dead end.
    write(&dir.join(CA_KEY), ca.key_pem.as_bytes())?;
    write(&dir.join(CA_CERT), ca.cert_pem.as_bytes())
}

fn sign_leaf(
    dir: &Path,
    mut params: CertificateParams,
    validity: Validity,
    cert_file: &str,
    key_file: &str,
) -> Result<Issued, CertError> {
    let ca_key = KeyPair::from_pem(&read(&dir.join(CA_KEY))?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&dir.join(CA_CERT))?, ca_key)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, validity);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let issued = Issued {
        cert: dir.join(cert_file),
        key: dir.join(key_file),
    };
    write(&issued.key, key.serialize_pem().as_bytes())?;
    write(&issued.cert, cert.pem().as_bytes())?;
    Ok(issued)
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn set_validity(params: &mut CertificateParams, validity: Validity) {
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CertError::Io {
            path: dir.to_owned(),
            source,
        })
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file and a rename, so a
/// broker reloading meanwhile sees the old file or the new one, never half of one.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), CertError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::identity::certificate_identity;

    #[test]
    fn revocation_lists_per_ca_survive_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pki");
        init(&d, &[]).unwrap();
        let blocks = |d: &Path| read(&d.join(CRL)).unwrap().matches(CRL_END).count();
        // `init` writes the CA's empty list (Mosquitto's `crlfile` needs one per CA).
        assert_eq!((crl_lists(&d).unwrap().0.len(), blocks(&d)), (0, 1));
        let validity = Validity::starting_now(Duration::from_secs(3600));
        let a = issue_client(&d, &Identity::Agent("a".into()), validity).unwrap();
        assert_eq!(revoke(&d, &a.cert).unwrap(), 1);
        assert_eq!(revoke(&d, &a.cert).unwrap(), 1, "listed once");
        let b = issue_client(&d, &Identity::Agent("b".into()), validity).unwrap();
        assert_eq!(revoke(&d, &b.cert).unwrap(), 2);
        // New CA: its own list; the old CA's (whose certificates are still trusted during
        // the rotation) is kept beside it.
        rotate_ca(&d).unwrap();
        assert_eq!(blocks(&d), 2, "rotate-ca lists the new CA at once");
        let c = issue_client(&d, &Identity::Agent("c".into()), validity).unwrap();
        assert_eq!(revoke(&d, &c.cert).unwrap(), 1);
        assert_eq!(blocks(&d), 2);
        let (current, others) = crl_lists(&d).unwrap();
        assert_eq!((current.len(), others.len()), (1, 1));
        // Not a certificate: a typed error naming the file.
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "junk").unwrap();
        assert!(matches!(revoke(&d, &junk), Err(CertError::Invalid { path, .. }) if path == junk));
    }

    #[test]
    fn init_issue_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pki");
        let server = init(&d, &["broker.example".into()]).unwrap();
        assert!(matches!(init(&d, &[]), Err(CertError::CaExists(_))));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        for f in [CA_CERT, CA_KEY, CA_BUNDLE, SERVER_CERT, SERVER_KEY] {
            assert_eq!(mode(&d.join(f)), 0o600, "{f}");
        }
        assert!(server.cert.ends_with(SERVER_CERT));

        let edge = issue_client(
            &d,
            &Identity::Agent("edge-1".into()),
            Validity::starting_now(LEAF_VALIDITY),
        )
        .unwrap();
        assert!(edge.cert.ends_with("edge-1.pem"));
        let pem = std::fs::read(&edge.cert).unwrap();
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(certificate_identity(&der).as_deref(), Some("edge-1"));

        let before = read(&d.join(CA_CERT)).unwrap();
        rotate_ca(&d).unwrap();
        let bundle = read(&d.join(CA_BUNDLE)).unwrap();
        assert!(bundle.ends_with(&before));
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
        finish_rotation(&d).unwrap();
        assert_eq!(
            read(&d.join(CA_BUNDLE))
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count(),
            1
        );
        assert!(!d.join(CA_PREVIOUS).exists());
    }

    use rustls::pki_types::pem::PemObject;
}
