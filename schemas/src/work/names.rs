//! # Object names, as Kubernetes validates them
//!
//! A ManifestWork lives in the namespace named after its cluster, so the cluster name
//! must be a namespace name — a DNS-1123 *label* (at most 63 characters) — and the work
//! name a DNS-1123 *subdomain* (at most 253). Both bound what travels: the cluster name
//! is a topic segment and the `clustername` extension (§1.4 only asks for
//! `[a-z0-9-]+`, with no length), and both are in the `metadata` extension. A name the
//! hub accepted but no Kubernetes cluster or MQTT string can hold would stay in the
//! outbox forever.
//!
//! The rules and texts are k8s apimachinery's (`pkg/util/validation`:
//! `IsDNS1123Label`, `IsDNS1123Subdomain`), which also report every violated rule, not
//! just the first.

/// The longest DNS-1123 label (a namespace, so a cluster name).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// The longest DNS-1123 subdomain (a ManifestWork name).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

/// apimachinery's `dns1123LabelFmt`.
pub const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
/// apimachinery's `dns1123SubdomainFmt`.
pub const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// One violated naming rule; `Display` gives apimachinery's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Longer than the limit (`MaxLenError`).
    #[error("must be no more than {0} characters")]
    TooLong(usize),
    /// A valid subdomain given where a label is needed.
    #[error("must not contain dots")]
    Dots,
    /// Not a DNS-1123 label.
    #[error(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
         and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
         regex used for validation is '{DNS1123_LABEL_FMT}')"
    )]
    NotLabel,
    /// Not a DNS-1123 subdomain.
    #[error(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
         or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
         regex used for validation is '{DNS1123_SUBDOMAIN_FMT}')"
    )]
    NotSubdomain,
}

/// Every rule `value` breaks as a DNS-1123 label (empty when it is one), in
/// apimachinery's order.
pub fn dns1123_label_errors(value: &str) -> Vec<NameError> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errors.push(NameError::TooLong(DNS1123_LABEL_MAX_LENGTH));
    }
    if !is_label_format(value) {
        // The length was reported above, so a valid subdomain can only fail on dots.
        errors.push(if is_subdomain_format(value) {
            NameError::Dots
        } else {
            NameError::NotLabel
        });
    }
    errors
}

/// Every rule `value` breaks as a DNS-1123 subdomain (empty when it is one), in
/// apimachinery's order.
pub fn dns1123_subdomain_errors(value: &str) -> Vec<NameError> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errors.push(NameError::TooLong(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !is_subdomain_format(value) {
        errors.push(NameError::NotSubdomain);
    }
    errors
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, any length.
fn is_label_format(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|&b| alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// Labels joined by single dots, any length.
fn is_subdomain_format(s: &str) -> bool {
    s.split('.').all(is_label_format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "0", "edge-1", "123-abc", &"a".repeat(63)] {
            assert!(dns1123_label_errors(ok).is_empty(), "{ok:?}");
        }
        assert_eq!(
            dns1123_label_errors(&"a".repeat(64)),
            [NameError::TooLong(63)]
        );
        assert_eq!(dns1123_label_errors("a.b"), [NameError::Dots]);
        for bad in ["", "-a", "a-", "A", "a_b", "a b", "é"] {
            assert_eq!(dns1123_label_errors(bad), [NameError::NotLabel], "{bad:?}");
        }
        assert_eq!(
            dns1123_label_errors(&format!("{}.", "a".repeat(70))),
            [NameError::TooLong(63), NameError::NotLabel]
        );
        assert_eq!(
            NameError::NotLabel.to_string(),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
             '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        );
    }

    #[test]
    fn subdomains() {
        let label = "w".repeat(63);
        let n253 = format!("{label}.{label}.{label}.{}", "w".repeat(61));
        for ok in ["a", "a.b", "example.com", "a-1.b-2", n253.as_str()] {
            assert!(dns1123_subdomain_errors(ok).is_empty(), "{ok:?}");
        }
        assert_eq!(
            dns1123_subdomain_errors(&format!("{n253}w")),
            [NameError::TooLong(253)]
        );
        for bad in ["", "a..b", "a.-b", "a-.b", ".a", "a.", "A.b", "a_b"] {
            assert_eq!(
                dns1123_subdomain_errors(bad),
                [NameError::NotSubdomain],
                "{bad:?}"
            );
        }
    }
}
