//! The well-known names of ManifestWorkReplicaSet (reference `placement.md` §5,
//! `manifestwork-semantics.md` §10): API version, kind, the labels generated works
//! carry, the cleanup finalizer, condition types and reasons. Hub code spells these
//! only through here.

/// `work.open-cluster-management.io/v1alpha1`.
pub const API_VERSION: &str = "work.open-cluster-management.io/v1alpha1";
/// `ManifestWorkReplicaSet`.
pub const KIND: &str = "ManifestWorkReplicaSet";
/// `ManifestWorkReplicaSetList`.
pub const LIST_KIND: &str = "ManifestWorkReplicaSetList";
/// The short name kubectl users type (`kubectl get mwrs`).
pub const SHORT_NAME: &str = "mwrs";
/// The replica set's `kind.group`, as kubectl names it in its messages.
pub const KUBECTL_NAME: &str = "manifestworkreplicaset.work.open-cluster-management.io";
/// The plural resource name.
pub const RESOURCE: &str = "manifestworkreplicasets";

/// Label on every generated work: `<namespace>.<name>` of its replica set.
pub const REPLICA_SET_LABEL: &str = "work.open-cluster-management.io/manifestworkreplicaset";
/// Label on every generated work: the Placement that chose its cluster.
pub const PLACEMENT_LABEL: &str = "work.open-cluster-management.io/placementname";
/// The finalizer upstream puts on a replica set until its works are deleted.
pub const CLEANUP_FINALIZER: &str = "work.open-cluster-management.io/manifest-work-cleanup";

/// The longest valid label value (the owner label's `<ns>.<name>` must fit).
pub const MAX_LABEL_VALUE: usize = 63;

/// The value of [`REPLICA_SET_LABEL`] for a replica set.
pub fn owner_label_value(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// Status condition types of a replica set.
pub mod condition_type {
    /// The placements exist and decided clusters.
    pub const PLACEMENT_VERIFIED: &str = "PlacementVerified";
    /// Every selected cluster succeeded.
    pub const PLACEMENT_ROLLED_OUT: &str = "PlacementRolledOut";
    /// The generated works are applied and available.
    pub const MANIFESTWORK_APPLIED: &str = "ManifestworkApplied";
}

/// Status condition reasons of a replica set (exact upstream spellings).
pub mod reason {
    /// Everything as expected.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// A placementRef names no Placement.
    pub const PLACEMENT_DECISION_NOT_FOUND: &str = "PlacementDecisionNotFound";
    /// The placements decided no cluster.
    pub const PLACEMENT_DECISION_EMPTY: &str = "PlacementDecisionEmpty";
    /// Something is not as expected (a rollout error, failed works).
    pub const NOT_AS_EXPECTED: &str = "NotAsExpected";
    /// The rollout is still going on.
    pub const PROGRESSING: &str = "Progressing";
    /// Every selected cluster succeeded.
    pub const COMPLETE: &str = "Complete";
    /// Works are still progressing.
    pub const PROCESSING: &str = "Processing";
    /// `<namespace>.<name>` is not a valid label value.
    pub const INVALID_MANIFEST_WORK_NAME: &str = "InvalidManifestWorkName";
}
