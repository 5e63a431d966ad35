//! The `ManifestWorkReplicaSet` object (`work.open-cluster-management.io/v1alpha1`,
//! reference `placement.md` §5) exactly as OCM users write it in YAML, plus workbus's
//! own extensions, each marked **workbus extension** below:
//!
//! - `spec.rollout`: approval gates (`approval.afterGroups`), `rollbackOnFailure` and
//!   the success rule (`successRule`) — applied to every placementRef;
//! - `spec.overrides`: per-cluster JSON patches (RFC 6902 `add`/`replace`/`remove`) of
//!   the template for clusters matching a label selector (Karmada's OverridePolicy);
//! - `status.rollout`: the rollout's phase (incl. `AwaitingApproval`) and per-group
//!   progress.
//!
//! `null` reads as the zero value (Go's decoding), as for every work type.
//!
//! An OCM user's YAML without them means exactly what it means upstream, except the
//! success rule (see [`SuccessRule`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::strategy::{DecisionGroupRef, RolloutStrategy};
use crate::work::serde_go::nullable;
use crate::work::{Condition, ManifestWorkSpec, ObjectMeta};

/// A `ManifestWorkReplicaSet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkReplicaSet {
    /// `apiVersion` ([`super::names::API_VERSION`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `kind` ([`super::names::KIND`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `metadata` (namespace = where its Placements live).
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: ManifestWorkReplicaSetSpec,
    /// `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ManifestWorkReplicaSetStatus>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkReplicaSetSpec {
    /// `manifestWorkTemplate`: the spec of every generated work.
    #[serde(default, deserialize_with = "nullable")]
    pub manifest_work_template: ManifestWorkSpec,
    /// `placementRefs` (at least one).
    #[serde(default, deserialize_with = "nullable")]
    pub placement_refs: Vec<LocalPlacementReference>,
    /// `cascadeDeletionPolicy`: `Background` (default) or `Foreground`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascade_deletion_policy: Option<CascadeDeletionPolicy>,
    /// **workbus extension**: approval gates, rollback, success rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutExtensions>,
    /// **workbus extension**: per-cluster patches of the template.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub overrides: Vec<ClusterOverride>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `placementRefs[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalPlacementReference {
    /// The Placement's name (same namespace as the replica set).
    pub name: String,
    /// `rolloutStrategy` (default `{type: All}`).
    #[serde(default)]
    pub rollout_strategy: RolloutStrategy,
}

/// `cascadeDeletionPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CascadeDeletionPolicy {
    /// The replica set goes as soon as the works' deletions are issued.
    #[default]
    Background,
    /// The replica set stays until every work is gone.
    Foreground,
}

/// **workbus extension** (`spec.rollout`): what upstream OCM does not have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExtensions {
    /// Approval gates: pause after the named decision groups until approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// When failures exceed `maxFailures`, give the clusters already updated the
    /// previous template back.
    #[serde(default)]
    pub rollback_on_failure: bool,
    /// When a cluster's work counts as succeeded (default [`SuccessRule::Available`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rule: Option<SuccessRule>,
}

/// **workbus extension** (`spec.rollout.approval`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The rollout pauses after each of these groups succeeded, until approved
    /// (`rollout approve`).
    #[serde(default)]
    pub after_groups: Vec<DecisionGroupRef>,
}

/// **workbus extension**: how a cluster's work is judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SuccessRule {
    /// workbus's rule: `Applied`=True and `Available`=True at the current generation,
    /// and, when the work reports them, `Progressing`=False or `Complete`=True;
    /// `Degraded`=True is a failure. Progressive rollouts advance without condition
    /// rules.
    #[default]
    Available,
    /// Upstream's table (`placement.md` §5.2 step 4): only `Applied`, `Progressing`
    /// and `Degraded`; without a `Progressing` condition rule a work stays `ToApply`.
    Upstream,
}

/// **workbus extension** (`spec.overrides[]`): a patch of the template for the
/// clusters whose labels match `clusterSelector`. Patches apply in list order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOverride {
    /// Which clusters (by their labels).
    #[serde(default)]
    pub cluster_selector: LabelSelector,
    /// RFC 6902 operations on the template (`ManifestWorkSpec` JSON), e.g. path
    /// `/workload/manifests/0/spec/replicas`.
    #[serde(default)]
    pub patch: Vec<PatchOperation>,
}

/// Overrides select clusters with the one Kubernetes label selector of `schemas`.
pub use crate::selector::{LabelSelector, Requirement as LabelSelectorRequirement};

/// One RFC 6902 operation (workbus applies `add`, `replace` and `remove`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOperation {
    /// `add`, `replace` or `remove`.
    pub op: String,
    /// A JSON Pointer (RFC 6901).
    pub path: String,
    /// The value (`add`, `replace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkReplicaSetStatus {
    /// `conditions`: `PlacementVerified`, `PlacementRolledOut`, `ManifestworkApplied`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
    /// `placementSummary`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_summary: Vec<PlacementSummary>,
    /// `summary`: over all placements.
    #[serde(default)]
    pub summary: ManifestWorkReplicaSetSummary,
    /// **workbus extension**: the rollout's phase and progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutProgress>,
}

/// `summary` counts (upstream never sets `desiredTotal`/`updated`; workbus does:
/// selected clusters, and works at the current template).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkReplicaSetSummary {
    /// Works counted.
    #[serde(default)]
    pub total: u64,
    /// With `Progressing`=True.
    #[serde(default)]
    pub progressing: u64,
    /// With `Available`=True.
    #[serde(default)]
    pub available: u64,
    /// With `Degraded`=True.
    #[serde(default)]
    pub degraded: u64,
    /// With `Applied`=True.
    #[serde(default)]
    pub applied: u64,
    /// Selected clusters (omitted when 0, as upstream never writes it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub desired_total: u64,
    /// Works at the current template (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated: u64,
}

/// `placementSummary[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSummary {
    /// The Placement.
    pub name: String,
    /// `"<groups> (<works> / <selected> clusters applied)"`.
    #[serde(default)]
    pub available_decision_groups: String,
    /// Its counts.
    #[serde(default)]
    pub summary: ManifestWorkReplicaSetSummary,
}

/// **workbus extension** (`status.rollout`): where the rollout is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgress {
    /// The phase.
    pub phase: RolloutPhase,
    /// While `AwaitingApproval`: the placement and group the rollout paused after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<GroupGate>,
    /// Why it aborted, when it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The hash of the template being rolled out.
    #[serde(default)]
    pub template_hash: String,
    /// Per placement, per decision group.
    #[serde(default)]
    pub placements: Vec<PlacementProgress>,
}

/// **workbus extension**: the rollout phases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutPhase {
    /// Clusters are being updated.
    #[default]
    Progressing,
    /// Paused after a group, until `rollout approve`.
    AwaitingApproval,
    /// Every selected cluster succeeded.
    Complete,
    /// Stopped: failures exceeded `maxFailures`, or aborted by a user.
    Aborted,
    /// Stopped and the updated clusters were given the previous template back.
    RolledBack,
}

/// A decision group of one placement (approval gates).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupGate {
    /// The placement.
    pub placement: String,
    /// The group's index.
    pub group_index: i32,
    /// The group's name (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_name: String,
}

/// **workbus extension**: one placement's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementProgress {
    /// The placement.
    pub name: String,
    /// Its decision groups, by index.
    #[serde(default)]
    pub groups: Vec<GroupProgress>,
}

/// **workbus extension**: one decision group's per-cluster rollout statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupProgress {
    /// `groupIndex`.
    pub index: i32,
    /// `groupName`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Clusters in the group.
    pub total: u64,
    /// Not started yet.
    pub to_apply: u64,
    /// Updated, not yet succeeded.
    pub progressing: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed or timed out.
    pub failed: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ManifestWorkReplicaSet {
    /// A replica set with `apiVersion`/`kind` set, the given metadata and spec.
    pub fn new(metadata: ObjectMeta, spec: ManifestWorkReplicaSetSpec) -> Self {
        ManifestWorkReplicaSet {
            api_version: super::names::API_VERSION.to_string(),
            kind: super::names::KIND.to_string(),
            metadata,
            spec,
            status: None,
            extra: Map::new(),
        }
    }

    /// Plain Kubernetes objects as one replica set for Placement `placement` (rollout
    /// `All`): how users coming from Karmada deploy native YAML without writing the
    /// ManifestWork wrapping themselves (`apply -f deployment.yaml --placement P`).
    pub fn wrapping(
        namespace: &str,
        name: &str,
        placement: &str,
        objects: Vec<Value>,
    ) -> Result<Self, serde_json::Error> {
        let spec = serde_json::from_value(serde_json::json!({
            "placementRefs": [{"name": placement, "rolloutStrategy": {"type": "All"}}],
            "manifestWorkTemplate": {"workload": {"manifests": objects}},
        }))?;
        let metadata = ObjectMeta {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            ..ObjectMeta::default()
        };
        Ok(Self::new(metadata, spec))
    }
}
