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
//! `IsDNS1123Label`, `IsDNS1123Subdomain`, `IsQualifiedName`, `IsValidLabelValue`;
//! `api/validation/path`: `IsValidPathSegmentName`), which also report every violated
//! rule, not just the first.
//!
//! Besides cluster and work names: label keys (qualified names: an optional DNS-1123
//! subdomain prefix and `/`, then at most 63 of `[A-Za-z0-9_.-]` starting and ending
//! alphanumeric), label values (empty, or the same at most 63), and the names and
//! namespaces of the manifests a work carries ([`manifest_name_errors`],
//! [`dns1123_label_errors`] for namespaces).

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

/// The longest name part of a qualified name, and the longest label value.
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// apimachinery's `qualifiedNameFmt`.
pub const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
/// apimachinery's `labelValueFmt`.
pub const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";

/// One violated rule of a qualified name (a label key), a label value or a manifest
/// name; `Display` gives apimachinery's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QualifiedNameError {
    /// More than one `/`.
    #[error(
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must \
         start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
         '123-abc', regex used for validation is '{QUALIFIED_NAME_FMT}') with an optional \
         DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    )]
    Shape,
    /// `prefix/` with an empty prefix.
    #[error("prefix part must be non-empty")]
    EmptyPrefix,
    /// The prefix is not a DNS-1123 subdomain.
    #[error("prefix part {0}")]
    Prefix(NameError),
    /// The name part is empty.
    #[error("name part must be non-empty")]
    EmptyName,
    /// The name part is longer than 63.
    #[error("name part must be no more than {QUALIFIED_NAME_MAX_LENGTH} characters")]
    NameTooLong,
    /// The name part has characters or ends it may not have.
    #[error(
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
         and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
         '123-abc', regex used for validation is '{QUALIFIED_NAME_FMT}')"
    )]
    NameFormat,
    /// A label value longer than 63.
    #[error("must be no more than {QUALIFIED_NAME_MAX_LENGTH} characters")]
    ValueTooLong,
    /// A label value with characters or ends it may not have.
    #[error(
        "a valid label must be an empty string or consist of alphanumeric characters, '-', \
         '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  \
         or 'my_value',  or '12345', regex used for validation is '{LABEL_VALUE_FMT}')"
    )]
    ValueFormat,
}

/// Every rule `key` breaks as a label key (a qualified name), in apimachinery's order.
pub fn label_key_errors(key: &str) -> Vec<QualifiedNameError> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push(QualifiedNameError::EmptyPrefix);
            } else {
                errors.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(QualifiedNameError::Prefix),
                );
            }
            *name
        }
        _ => return vec![QualifiedNameError::Shape],
    };
    if name.is_empty() {
        errors.push(QualifiedNameError::EmptyName);
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errors.push(QualifiedNameError::NameTooLong);
    }
    if !name.is_empty() && !is_qualified_format(name) {
        errors.push(QualifiedNameError::NameFormat);
    }
    errors
}

/// Every rule `value` breaks as a label value, in apimachinery's order.
pub fn label_value_errors(value: &str) -> Vec<QualifiedNameError> {
    let mut errors = Vec::new();
    if value.len() > QUALIFIED_NAME_MAX_LENGTH {
        errors.push(QualifiedNameError::ValueTooLong);
    }
    if !value.is_empty() && !is_qualified_format(value) {
        errors.push(QualifiedNameError::ValueFormat);
    }
    errors
}

/// One violated rule of a manifest name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestNameError {
    /// A DNS-1123 subdomain rule (most kinds).
    #[error("{0}")]
    Subdomain(NameError),
    /// A path segment rule (kinds whose names may hold `:`, e.g. RBAC roles).
    #[error("{0}")]
    PathSegment(&'static str),
}

/// The API groups and kinds whose object names Kubernetes validates as path segments
/// (`ValidatePathSegmentName`) rather than DNS-1123 subdomains: RBAC's, whose names
/// hold `:` (`system:controller:…`).
const PATH_SEGMENT_NAMED: &[(&str, &str)] = &[
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
];

/// Every rule `name` breaks as the `metadata.name` of a manifest of `api_version`
/// (`group/version` or `version`) and `kind`: a DNS-1123 subdomain for most kinds, a
/// path segment of at most 253 characters for RBAC's. Either way no `/`, no `..`, no
/// spaces or `%`, so a name never walks a path or breaks a URL.
pub fn manifest_name_errors(api_version: &str, kind: &str, name: &str) -> Vec<ManifestNameError> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if !PATH_SEGMENT_NAMED.contains(&(group, kind)) {
        return dns1123_subdomain_errors(name)
            .into_iter()
            .map(ManifestNameError::Subdomain)
            .collect();
    }
    let mut errors = Vec::new();
    if name.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errors.push(ManifestNameError::Subdomain(NameError::TooLong(
            DNS1123_SUBDOMAIN_MAX_LENGTH,
        )));
    }
    if name.is_empty() {
        errors.push(ManifestNameError::PathSegment("must not be empty"));
    }
    if name == "." || name == ".." {
        errors.push(ManifestNameError::PathSegment("may not be '.' or '..'"));
    }
    if name.contains('/') {
        errors.push(ManifestNameError::PathSegment("may not contain '/'"));
    }
    if name.contains('%') {
        errors.push(ManifestNameError::PathSegment("may not contain '%'"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.push(ManifestNameError::PathSegment(
            "may not contain whitespace or control characters",
        ));
    }
    errors
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`.
fn is_qualified_format(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
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
    fn label_keys() {
        for ok in ["app", "App_1.x", "example.com/name", "a/b", &"k".repeat(63)] {
            assert!(label_key_errors(ok).is_empty(), "{ok:?}");
        }
        assert_eq!(
            label_key_errors("bad key!"),
            [QualifiedNameError::NameFormat]
        );
        assert_eq!(label_key_errors("a/b/c"), [QualifiedNameError::Shape]);
        assert_eq!(label_key_errors("/a"), [QualifiedNameError::EmptyPrefix]);
        assert_eq!(label_key_errors(""), [QualifiedNameError::EmptyName]);
        assert_eq!(label_key_errors("a/"), [QualifiedNameError::EmptyName]);
        assert_eq!(
            label_key_errors(&"k".repeat(64)),
            [QualifiedNameError::NameTooLong]
        );
        assert_eq!(
            label_key_errors("Ex.com/a"),
            [QualifiedNameError::Prefix(NameError::NotSubdomain)]
        );
        assert_eq!(
            QualifiedNameError::Prefix(NameError::TooLong(253)).to_string(),
            "prefix part must be no more than 253 characters"
        );
    }

    #[test]
    fn label_values() {
        for ok in ["", "v", "My_value-1.2", &"v".repeat(63)] {
            assert!(label_value_errors(ok).is_empty(), "{ok:?}");
        }
        assert_eq!(label_value_errors("-a"), [QualifiedNameError::ValueFormat]);
        assert_eq!(label_value_errors("a b"), [QualifiedNameError::ValueFormat]);
        assert_eq!(
            label_value_errors(&"v".repeat(64)),
            [QualifiedNameError::ValueTooLong]
        );
    }

    #[test]
    fn manifest_names() {
        assert!(manifest_name_errors("v1", "ConfigMap", "cm.a-1").is_empty());
        assert_eq!(
            manifest_name_errors("v1", "ConfigMap", "../../x y"),
            [ManifestNameError::Subdomain(NameError::NotSubdomain)]
        );
        let rbac = "rbac.authorization.k8s.io/v1";
        assert!(manifest_name_errors(rbac, "ClusterRole", "system:controller:x").is_empty());
        assert_eq!(
            manifest_name_errors(rbac, "ClusterRole", "../../x y").len(),
            2,
            "a slash and a space"
        );
        assert_eq!(manifest_name_errors(rbac, "Role", "..").len(), 1);
        assert_eq!(manifest_name_errors(rbac, "Role", "").len(), 1);
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
