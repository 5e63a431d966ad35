//! # Manifest validation (sdk-go's `ManifestValidator`)
//!
//! The agent runs this on every spec event it decodes, and the hub may run it before
//! publishing (reference `manifestwork-semantics.md` §2.1). The rules and their order are
//! those of sdk-go `pkg/apis/work/v1/validator/validator.go` at `3ea63fb`, and the error
//! texts are copied exactly from there and from k8s apimachinery, so logs and status
//! messages read the same as with the Go agent:
//!
//! 1. the list is non-empty (`Workload manifests should not be empty`, a k8s BadRequest);
//! 2. the total size is at most 500 KiB (`the size of manifests is N bytes which exceeds
//!    the 512000 limit`);
//! 3. each manifest, in order, decodes as an `unstructured.Unstructured`, which requires a
//!    non-empty string `kind` and an `apiVersion` with at most one `/`
//!    (`Object 'Kind' is missing in '<json>'`); has a non-empty string `metadata.name`
//!    (`name must be set in manifest`); and has no `metadata.generateName`
//!    (`generateName must not be set in manifest`).
//!
//! **Size.** Go sums `Manifest.Size()`, which is the *protobuf* size of the embedded
//! `runtime.RawExtension`: `1 + len + varint_len(len)` per manifest, where `len` is the
//! length of the manifest's raw JSON bytes. We measure `len` on the Go `encoding/json`
//! rendering ([`crate::status_hash::canonical_json`]: compact, HTML-escaped), which is
//! byte-for-byte what a Go sender puts on the wire up to key order (irrelevant to length).
//! A peer that sends pretty-printed manifests gets whitespace counted by Go but not by us.
//! sdk-go's own unit test ("exceed the limit": two Secrets with 300 KiB and 200 KiB of
//! data) expects 512192 bytes; it builds its raw bytes with `json.Encoder`, which appends a
//! newline to each, so the same manifests off the wire measure 512190, which is what we
//! report (see `tests/work_validation.rs`).

use serde_json::Value;

use super::spec::{Manifest, ManifestBundle, ManifestWorkSpec};
use crate::status_hash::canonical_json;

/// The default manifest size limit: 500 KiB (`500 * 1024` bytes), as in sdk-go.
pub const MANIFEST_SIZE_LIMIT: usize = 500 * 1024;

/// Why a set of manifests was rejected. The `Display` texts are sdk-go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// No manifests at all (also what `{"manifests":null}` and a data-less spec event give).
    #[error("Workload manifests should not be empty")]
    Empty,
    /// The manifests are larger than the limit in total.
    #[error("the size of manifests is {size} bytes which exceeds the {limit} limit")]
    TooLarge {
        /// Total size as Go measures it (see the module documentation).
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The manifest at `index` has no usable `kind` (or an unparseable `apiVersion`), so Go
    /// cannot decode it as an unstructured object.
    #[error("Object 'Kind' is missing in '{manifest}'")]
    MissingKind {
        /// Position in the manifest list.
        index: usize,
        /// The manifest as compact JSON (Go shows the raw bytes it received).
        manifest: String,
    },
    /// The manifest at `index` has no `metadata.name`.
    #[error("name must be set in manifest")]
    MissingName {
        /// Position in the manifest list.
        index: usize,
    },
    /// The manifest at `index` sets `metadata.generateName`.
    #[error("generateName must not be set in manifest")]
    GenerateName {
        /// Position in the manifest list.
        index: usize,
    },
}

/// Validates manifests with the default [`MANIFEST_SIZE_LIMIT`].
pub fn validate_manifests(manifests: &[Manifest]) -> Result<(), BundleError> {
    validate_manifests_with_limit(manifests, MANIFEST_SIZE_LIMIT)
}

/// Validates manifests against a custom size limit (sdk-go's `WithLimit`).
pub fn validate_manifests_with_limit(
    manifests: &[Manifest],
    limit: usize,
) -> Result<(), BundleError> {
    if manifests.is_empty() {
        return Err(BundleError::Empty);
    }
    let size = manifests_size(manifests);
    if size > limit {
        return Err(BundleError::TooLarge { size, limit });
    }
    for (index, manifest) in manifests.iter().enumerate() {
        validate_manifest(index, manifest)?;
    }
    Ok(())
}

/// The total size of the manifests as sdk-go's validator measures it (see the module
/// documentation): the sum over manifests of `1 + len + varint_len(len)`.
pub fn manifests_size(manifests: &[Manifest]) -> usize {
    manifests
        .iter()
        .map(|m| {
            let len = canonical_json(&Value::Object(m.clone())).len();
            1usize
                .saturating_add(len)
                .saturating_add(varint_len(len as u64))
        })
        .fold(0usize, usize::saturating_add)
}

/// Bytes needed to encode `x` as a protobuf varint.
fn varint_len(x: u64) -> usize {
    let bits = 64 - (x | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A nested string the way apimachinery's `getNestedString` reads it: missing, not a
/// string, or under a non-object parent all read as "".
fn nested_str<'a>(m: &'a Manifest, path: &[&str]) -> &'a str {
    let Some((last, parents)) = path.split_last() else {
        return "";
    };
    let mut cur = m;
    for p in parents {
        match cur.get(*p) {
            Some(Value::Object(next)) => cur = next,
            _ => return "",
        }
    }
    match cur.get(*last) {
        Some(Value::String(s)) => s,
        _ => "",
    }
}

fn validate_manifest(index: usize, m: &Manifest) -> Result<(), BundleError> {
    // Unstructured decoding derives the GVK from apiVersion, whose parse fails (leaving
    // the kind empty) when it has more than one '/'.
    let api_version_ok = nested_str(m, &["apiVersion"]).matches('/').count() <= 1;
    if nested_str(m, &["kind"]).is_empty() || !api_version_ok {
        return Err(BundleError::MissingKind {
            index,
            manifest: canonical_json(&Value::Object(m.clone())),
        });
    }
    if nested_str(m, &["metadata", "name"]).is_empty() {
        return Err(BundleError::MissingName { index });
    }
    if !nested_str(m, &["metadata", "generateName"]).is_empty() {
        return Err(BundleError::GenerateName { index });
    }
    Ok(())
}

impl ManifestBundle {
    /// Validates this bundle's manifests (see [`validate_manifests`]).
    pub fn validate(&self) -> Result<(), BundleError> {
        validate_manifests(&self.manifests)
    }
}

impl ManifestWorkSpec {
    /// Validates this spec's `workload.manifests` (see [`validate_manifests`]).
    pub fn validate(&self) -> Result<(), BundleError> {
        validate_manifests(&self.workload.manifests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(16383), 2);
        assert_eq!(varint_len(16384), 3);
        assert_eq!(varint_len(u64::MAX), 10);
    }
}
