//! The identity a client certificate names: its subject CN, or else its first DNS
//! subject alternative name. The certificate has already been verified against the
//! client CA by the TLS handshake; this only reads the name out of it.
//!
//! CN first because that is what Mosquitto's `use_identity_as_username` uses, so one
//! certificate means the same identity on our broker and on an external one;
//! [`crate::certs`] writes the identity into both fields.

use x509_parser::extensions::GeneralName;

/// The identity name `der` (a DER certificate) carries, if any: the first subject CN,
/// else the first DNS SAN. `None` for unparsable certificates or ones naming nothing.
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
    {
        return Some(cn.to_owned());
    }
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(name) => Some((*name).to_owned()),
        _ => None,
    })
}
