//! The identity of what a replica set rolls out: a hash over the template and the
//! per-cluster overrides. A cluster whose work carries another hash is on an older
//! template and re-enters the rollout as `ToApply`; approvals and rollback are per hash.

use sha2::{Digest, Sha256};
use workbus_schemas::replicaset::ClusterOverride;
use workbus_schemas::work::ManifestWorkSpec;

use crate::store::replicaset::Revision;

/// The revision of `template` with `overrides`: 16 hex digits of a SHA-256 over their
/// JSON (stable within a build: the same values always serialize alike).
pub fn revision(template: &ManifestWorkSpec, overrides: &[ClusterOverride]) -> Revision {
    let mut h = Sha256::new();
    // Serializing plain data (maps with string keys) cannot fail.
    h.update(serde_json::to_vec(template).unwrap_or_default());
    h.update(b"\n");
    h.update(serde_json::to_vec(overrides).unwrap_or_default());
    let hash = hex::encode(&h.finalize()[..8]);
    Revision {
        template: template.clone(),
        overrides: overrides.to_vec(),
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_templates_hash_alike_and_overrides_count() {
        let t = ManifestWorkSpec::default();
        assert_eq!(revision(&t, &[]).hash, revision(&t, &[]).hash);
        assert_ne!(
            revision(&t, &[]).hash,
            revision(&t, &[ClusterOverride::default()]).hash
        );
        assert_eq!(revision(&t, &[]).hash.len(), 16);
    }
}
