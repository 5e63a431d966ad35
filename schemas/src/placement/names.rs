//! The well-known names of OCM Placement (reference `placement.md` §1–§2): API group
//! and versions, kinds, labels, condition types, reasons and messages, prioritizer
//! names, limits. Hub and CLI spell these only through here.

/// The API group of Placement, PlacementDecision and ManagedClusterSetBinding.
pub const GROUP: &str = "cluster.open-cluster-management.io";
/// `apiVersion` of Placement and PlacementDecision.
pub const API_VERSION_V1BETA1: &str = "cluster.open-cluster-management.io/v1beta1";
/// `apiVersion` of ManagedClusterSetBinding.
pub const API_VERSION_V1BETA2: &str = "cluster.open-cluster-management.io/v1beta2";

/// Kind names.
pub mod kind {
    /// `Placement`.
    pub const PLACEMENT: &str = "Placement";
    /// `PlacementDecision`.
    pub const PLACEMENT_DECISION: &str = "PlacementDecision";
    /// `ManagedClusterSetBinding`.
    pub const MANAGED_CLUSTER_SET_BINDING: &str = "ManagedClusterSetBinding";
}

/// The names `kubectl` prints for these kinds (`<resource>.<group>`), as in
/// `placement.cluster.open-cluster-management.io/web created`.
pub mod kubectl {
    /// Placement.
    pub const PLACEMENT: &str = "placement.cluster.open-cluster-management.io";
    /// ManagedClusterSetBinding.
    pub const MANAGED_CLUSTER_SET_BINDING: &str =
        "managedclustersetbinding.cluster.open-cluster-management.io";
    /// PlacementDecision.
    pub const PLACEMENT_DECISION: &str = "placementdecision.cluster.open-cluster-management.io";
    /// ManagedCluster.
    pub const MANAGED_CLUSTER: &str = "managedcluster.cluster.open-cluster-management.io";
    /// ManagedClusterSet.
    pub const MANAGED_CLUSTER_SET: &str = "managedclusterset.cluster.open-cluster-management.io";
}

/// Label on a PlacementDecision naming its Placement.
pub const PLACEMENT_LABEL: &str = "cluster.open-cluster-management.io/placement";
/// Label on a PlacementDecision: its decision group's index (decimal text).
pub const DECISION_GROUP_INDEX_LABEL: &str =
    "cluster.open-cluster-management.io/decision-group-index";
/// Label on a PlacementDecision: its decision group's name (`""` for the remainder).
pub const DECISION_GROUP_NAME_LABEL: &str =
    "cluster.open-cluster-management.io/decision-group-name";
/// Annotation `"true"` that makes the scheduler skip a Placement.
pub const SCHEDULING_DISABLE_ANNOTATION: &str =
    "cluster.open-cluster-management.io/experimental-scheduling-disable";

/// At most this many decisions in one PlacementDecision (`maxNumOfClusterDecisions`).
pub const MAX_DECISIONS_PER_OBJECT: usize = 100;

/// The name of the `n`-th PlacementDecision (from 1) of `placement`.
pub fn decision_name(placement: &str, n: usize) -> String {
    format!("{placement}-decision-{n}")
}

/// Placement condition types.
pub mod condition {
    /// Whether the decisions satisfy the spec.
    pub const SATISFIED: &str = "PlacementSatisfied";
    /// Whether the spec is misconfigured.
    pub const MISCONFIGURED: &str = "PlacementMisconfigured";
    /// ManagedClusterSetBinding: its set exists.
    pub const BOUND: &str = "Bound";
}

/// Condition reasons.
pub mod reason {
    /// Satisfied False: no binding in the namespace.
    pub const NO_BINDINGS: &str = "NoManagedClusterSetBindings";
    /// Satisfied False: none of `spec.clusterSets` is bound.
    pub const NO_INTERSECTION: &str = "NoIntersection";
    /// Satisfied False: every eligible set is empty.
    pub const ALL_SETS_EMPTY: &str = "AllManagedClusterSetsEmpty";
    /// Satisfied False: fewer clusters than requested, or a plugin error.
    pub const NOT_ALL_SCHEDULED: &str = "NotAllDecisionsScheduled";
    /// Satisfied False: nothing feasible.
    pub const NO_CLUSTER_MATCHED: &str = "NoManagedClusterMatched";
    /// Satisfied True.
    pub const ALL_SCHEDULED: &str = "AllDecisionsScheduled";
    /// Misconfigured True.
    pub const MISCONFIGURED: &str = "Misconfigured";
    /// Misconfigured False (OCM's spelling).
    pub const SUCCEED_CONFIGURED: &str = "Succeedconfigured";
    /// Binding Bound True.
    pub const CLUSTER_SET_BOUND: &str = "ClusterSetBound";
    /// Binding Bound False.
    pub const CLUSTER_SET_NOT_FOUND: &str = "ClusterSetNotFound";
}

/// Condition messages (OCM's exact texts; some take arguments, see the functions).
pub mod message {
    /// Satisfied False / NoManagedClusterSetBindings.
    pub const NO_BINDINGS: &str = "No valid ManagedClusterSetBindings found in placement namespace";
    /// Satisfied False / NoManagedClusterMatched.
    pub const NO_CLUSTER_MATCHED: &str = "No ManagedCluster matches any of the cluster predicate";
    /// Satisfied True.
    pub const ALL_SCHEDULED: &str = "All cluster decisions scheduled";
    /// Misconfigured False.
    pub const CONFIGURATION_PASS: &str = "Placement configurations check pass";
    /// A binding whose name differs from its set (the OCM webhook's text).
    pub const BINDING_NAME_MISMATCH: &str =
        "The ManagedClusterSetBinding must have the same name as the target ManagedClusterSet";

    /// Satisfied False / NoIntersection: `None of ManagedClusterSets [a,b] is bound to
    /// placement namespace` (the sets of `spec.clusterSets`).
    pub fn no_intersection(sets: &[String]) -> String {
        format!(
            "None of ManagedClusterSets [{}] is bound to placement namespace",
            sets.join(",")
        )
    }

    /// Satisfied False / AllManagedClusterSetsEmpty: `All ManagedClusterSets [a,b] have
    /// no member ManagedCluster` (the eligible sets).
    pub fn all_sets_empty(sets: &[String]) -> String {
        format!(
            "All ManagedClusterSets [{}] have no member ManagedCluster",
            sets.join(",")
        )
    }

    /// Satisfied False / NotAllDecisionsScheduled: `N cluster decisions unscheduled`.
    pub fn unscheduled(n: usize) -> String {
        format!("{n} cluster decisions unscheduled")
    }
}

/// Prioritizer policy modes.
pub mod mode {
    /// Defaults (Balance 1, Steady 1) overridden by the configurations.
    pub const ADDITIVE: &str = "Additive";
    /// Only the configurations.
    pub const EXACT: &str = "Exact";
}

/// Score coordinate types.
pub mod score_type {
    /// A built-in prioritizer.
    pub const BUILT_IN: &str = "BuiltIn";
    /// An AddOnPlacementScore.
    pub const ADD_ON: &str = "AddOn";
}

/// Built-in prioritizer names.
pub mod prioritizer {
    /// Prefers clusters few other placements chose.
    pub const BALANCE: &str = "Balance";
    /// Prefers clusters this placement already chose.
    pub const STEADY: &str = "Steady";
    /// Prefers clusters with more allocatable CPU.
    pub const RESOURCE_ALLOCATABLE_CPU: &str = "ResourceAllocatableCPU";
    /// Prefers clusters with more allocatable memory.
    pub const RESOURCE_ALLOCATABLE_MEMORY: &str = "ResourceAllocatableMemory";
}

/// Toleration operators.
pub mod toleration_operator {
    /// Key and value must equal (the default).
    pub const EQUAL: &str = "Equal";
    /// The key must match; any value.
    pub const EXISTS: &str = "Exists";
}

/// Misconfiguration texts of the scheduler's plugins (OCM's exact texts).
pub mod misconfig {
    /// A toleration with an empty key and operator other than Exists.
    pub const EMPTY_KEY_NEEDS_EXISTS: &str = "If the key is empty, operator must be Exists.";
    /// A toleration with operator Exists and a value.
    pub const EXISTS_WITHOUT_VALUE: &str = "If the operator is Exists, the value should be empty.";
    /// A prioritizer configuration without `scoreCoordinate`.
    pub const SCORE_COORDINATE_REQUIRED: &str = "scoreCoordinate field is required";
    /// An AddOn coordinate without `addOn`.
    pub const ADD_ON_EMPTY: &str = "addOn should not be empty";

    /// `incorrect builtin prioritizer: <name>`.
    pub fn builtin(name: &str) -> String {
        format!("incorrect builtin prioritizer: {name}")
    }

    /// `incorrect prioritizer policy mode: <mode>`.
    pub fn mode(mode: &str) -> String {
        format!("incorrect prioritizer policy mode: {mode}")
    }
}
