//! The cluster claims an agent reports in its ManagedCluster status (OCM §1.4): the
//! reserved claims it knows about the cluster first (sorted by name), then the
//! user-defined ones (`--cluster-claim k=v`), sorted and capped at
//! [`MAX_CUSTOM_CLAIMS`]. A user claim may not replace a reserved one. Pure.

use std::collections::BTreeMap;

/// Most user-defined claims reported (OCM `--max-custom-cluster-claims`, default 20).
pub const MAX_CUSTOM_CLAIMS: usize = 20;

/// The longest claim name (1–253) and value (1–1024) OCM's API accepts.
const MAX_NAME: usize = 253;
const MAX_VALUE: usize = 1024;

/// Why a `--cluster-claim` is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Not `name=value`.
    #[error("cluster claim {0:?} is not name=value")]
    Syntax(String),
    /// Name or value empty or too long.
    #[error("cluster claim {0:?}: the name must have 1–253 characters and the value 1–1024")]
    Length(String),
}

/// Parses one `name=value` claim.
pub fn parse_claim(text: &str) -> Result<(String, String), ClaimError> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| ClaimError::Syntax(text.to_string()))?;
    if name.is_empty() || name.len() > MAX_NAME || value.is_empty() || value.len() > MAX_VALUE {
        return Err(ClaimError::Length(text.to_string()));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The claims to report: `reserved` (name → value, empty values left out) sorted, then
/// `custom` without reserved names, sorted by name (the last value of a repeated name
/// wins) and truncated to [`MAX_CUSTOM_CLAIMS`]. Returns the claims and whether custom
/// claims were truncated (OCM's `CustomClusterClaimsTruncated`).
pub fn cluster_claims(
    reserved: &BTreeMap<String, String>,
    custom: &[(String, String)],
) -> (Vec<(String, String)>, bool) {
    let mut out: Vec<(String, String)> = reserved
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let custom: BTreeMap<&str, &str> = custom
        .iter()
        .filter(|(k, _)| !reserved.contains_key(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let truncated = custom.len() > MAX_CUSTOM_CLAIMS;
    out.extend(
        custom
            .into_iter()
            .take(MAX_CUSTOM_CLAIMS)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    (out, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    /// registration.md §8 item 14: reserved first, then custom sorted and capped at 20.
    #[test]
    fn reserved_first_then_custom_sorted_and_capped() {
        let reserved: BTreeMap<String, String> = [
            kv("platform.open-cluster-management.io", "Other"),
            kv("id.k8s.io", "uid-1"),
            kv("product.open-cluster-management.io", ""),
        ]
        .into_iter()
        .collect();
        let mut custom: Vec<_> = (0..25)
            .rev()
            .map(|i| kv(&format!("c{i:02}"), "v"))
            .collect();
        custom.push(kv("id.k8s.io", "forged"));
        let (claims, truncated) = cluster_claims(&reserved, &custom);
        assert!(truncated);
        assert_eq!(claims.len(), 2 + MAX_CUSTOM_CLAIMS);
        assert_eq!(claims[0], kv("id.k8s.io", "uid-1"));
        assert_eq!(
            claims[1],
            kv("platform.open-cluster-management.io", "Other")
        );
        assert_eq!(claims[2], kv("c00", "v"));
        assert_eq!(claims[21], kv("c19", "v"));
        let (few, truncated) = cluster_claims(&reserved, &[kv("b", "2"), kv("a", "1")]);
        assert!(!truncated);
        assert_eq!(&few[2..], &[kv("a", "1"), kv("b", "2")]);
    }

    #[test]
    fn claims_parse() {
        assert_eq!(parse_claim("region=eu-1"), Ok(kv("region", "eu-1")));
        assert_eq!(parse_claim("k=a=b"), Ok(kv("k", "a=b")));
        assert!(matches!(parse_claim("nope"), Err(ClaimError::Syntax(_))));
        assert!(matches!(parse_claim("=v"), Err(ClaimError::Length(_))));
        assert!(matches!(parse_claim("k="), Err(ClaimError::Length(_))));
    }
}
