//! `Placement` (`cluster.open-cluster-management.io/v1beta1`, namespaced): the spec and
//! status fields of reference `placement.md` §1–§2, exactly as OCM users write them in
//! YAML. Members we do not model (`spreadPolicy`, `sortBy`, `scoreRateLimit`, future
//! ones) are kept in `extra` so an object survives a decode/encode unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::names::{API_VERSION_V1BETA1, kind};
use crate::selector::LabelSelector;
use crate::work::ObjectMeta;
use crate::work::serde_go::nullable;
use crate::work::status::Condition;

fn api_version() -> String {
    API_VERSION_V1BETA1.to_owned()
}

fn placement_kind() -> String {
    kind::PLACEMENT.to_owned()
}

/// A Placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// `apiVersion` (defaults to v1beta1).
    #[serde(default = "api_version")]
    pub api_version: String,
    /// `kind` (defaults to `Placement`).
    #[serde(default = "placement_kind")]
    pub kind: String,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: PlacementSpec,
    /// `status`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: PlacementStatus,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            api_version: api_version(),
            kind: placement_kind(),
            metadata: ObjectMeta::default(),
            spec: PlacementSpec::default(),
            status: PlacementStatus::default(),
            extra: Map::new(),
        }
    }
}

impl Placement {
    /// A placement with just a namespace and name.
    pub fn named(namespace: &str, name: &str) -> Placement {
        let mut p = Placement::default();
        p.metadata.namespace = namespace.to_owned();
        p.metadata.name = name.to_owned();
        p
    }
}

/// `Placement.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSpec {
    /// `clusterSets`: empty means every set bound to the namespace.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cluster_sets: Vec<String>,
    /// `numberOfClusters`: unset means every feasible cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_clusters: Option<i32>,
    /// `predicates` (ORed).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub predicates: Vec<ClusterPredicate>,
    /// `prioritizerPolicy`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_default"
    )]
    pub prioritizer_policy: PrioritizerPolicy,
    /// `tolerations`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tolerations: Vec<Toleration>,
    /// `decisionStrategy`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_default"
    )]
    pub decision_strategy: DecisionStrategy,
    /// Other members (`spreadPolicy`, `sortBy`, `scoreRateLimit`: API only upstream).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One `predicates[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPredicate {
    /// `requiredClusterSelector`.
    #[serde(default, deserialize_with = "nullable")]
    pub required_cluster_selector: ClusterSelector,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `requiredClusterSelector`: its selectors are ANDed; an empty one matches all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSelector {
    /// `labelSelector`, on the cluster's labels.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_default"
    )]
    pub label_selector: LabelSelector,
    /// `claimSelector`, on the cluster's claims (name → value).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_default"
    )]
    pub claim_selector: ClaimSelector,
    /// `celSelector` (kept, not evaluated: a non-empty one marks the placement
    /// misconfigured, see the hub's scheduler).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_default"
    )]
    pub cel_selector: CelSelector,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `claimSelector`: label-selector requirements over cluster claims.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSelector {
    /// `matchExpressions`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<crate::selector::Requirement>,
}

impl ClaimSelector {
    /// The claim selector as a label selector over the claim map.
    pub fn as_label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_expressions: self.match_expressions.clone(),
            ..LabelSelector::default()
        }
    }
}

/// `celSelector`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CelSelector {
    /// `celExpressions` (ANDed).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cel_expressions: Vec<String>,
}

/// `prioritizerPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrioritizerPolicy {
    /// `mode`: `Additive` (default, also when empty) or `Exact`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mode: String,
    /// `configurations`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configurations: Vec<PrioritizerConfig>,
}

/// One `configurations[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrioritizerConfig {
    /// `scoreCoordinate` (required: missing is a misconfiguration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_coordinate: Option<ScoreCoordinate>,
    /// `weight`, -10…10, default 1; 0 disables the prioritizer.
    #[serde(default = "default_weight")]
    pub weight: i32,
}

fn default_weight() -> i32 {
    1
}

/// `scoreCoordinate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreCoordinate {
    /// `type`: `BuiltIn` (default, also when empty) or `AddOn`.
    #[serde(
        rename = "type",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub type_: String,
    /// `builtIn`: a prioritizer name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub built_in: String,
    /// `addOn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_on: Option<AddOnScore>,
}

/// `addOn`: which AddOnPlacementScore and score.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddOnScore {
    /// `resourceName`.
    #[serde(default, deserialize_with = "nullable")]
    pub resource_name: String,
    /// `scoreName`.
    #[serde(default, deserialize_with = "nullable")]
    pub score_name: String,
}

/// One `tolerations[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// `key` (empty: any key, with operator `Exists`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub key: String,
    /// `operator`: `Equal` (default) or `Exists`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub operator: String,
    /// `value`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub value: String,
    /// `effect` (empty: any effect).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub effect: String,
    /// `tolerationSeconds`: tolerated until `timeAdded + this`; unset = forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// `decisionStrategy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStrategy {
    /// `groupStrategy`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_default"
    )]
    pub group_strategy: GroupStrategy,
}

/// `groupStrategy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStrategy {
    /// `decisionGroups`, in order.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub decision_groups: Vec<DecisionGroup>,
    /// `clustersPerDecisionGroup`: an int or `"N%"` (default `"100%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters_per_decision_group: Option<IntOrPercent>,
}

/// One `decisionGroups[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionGroup {
    /// `groupName`.
    #[serde(default, deserialize_with = "nullable")]
    pub group_name: String,
    /// `groupClusterSelector` (label and claim selectors; CEL is not used for groups).
    #[serde(default, deserialize_with = "nullable")]
    pub group_cluster_selector: ClusterSelector,
}

/// A Kubernetes `IntOrString` that holds a count or a percentage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// A count.
    Int(i64),
    /// `"N%"` (or a decimal count as text).
    Text(String),
}

/// Why an int-or-percent value is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an integer or a percentage (N%)")]
pub struct IntOrPercentError(pub String);

impl IntOrPercent {
    /// The count this value gives out of `total`: the int, or `ceil(N% × total)`.
    /// Values ≤ 0 or above `total` mean `total`, as OCM's `calculateLength`.
    pub fn resolve(&self, total: usize) -> Result<usize, IntOrPercentError> {
        let n: i64 = match self {
            IntOrPercent::Int(n) => *n,
            IntOrPercent::Text(t) => match t.strip_suffix('%') {
                Some(p) => {
                    let p: f64 = p.parse().map_err(|_| IntOrPercentError(t.clone()))?;
                    // total ≤ usize and p is a small percentage: the product fits.
                    (p / 100.0 * total as f64).ceil() as i64
                }
                None => t.parse().map_err(|_| IntOrPercentError(t.clone()))?,
            },
        };
        Ok(match usize::try_from(n) {
            Ok(n) if n > 0 && n <= total => n,
            _ => total,
        })
    }
}

/// `Placement.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    /// `numberOfSelectedClusters`.
    #[serde(default, deserialize_with = "nullable")]
    pub number_of_selected_clusters: i32,
    /// `decisionGroups`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub decision_groups: Vec<DecisionGroupStatus>,
    /// `conditions`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
    /// Other members (`lastScoreUpdateTime`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `status.decisionGroups[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionGroupStatus {
    /// `decisionGroupIndex`, from 0.
    #[serde(default, deserialize_with = "nullable")]
    pub decision_group_index: i32,
    /// `decisionGroupName` (`""` for the remainder).
    #[serde(default, deserialize_with = "nullable")]
    pub decision_group_name: String,
    /// `decisions`: the names of the group's PlacementDecisions.
    #[serde(default, deserialize_with = "nullable")]
    pub decisions: Vec<String>,
    /// `clusterCount`.
    #[serde(default, deserialize_with = "nullable")]
    pub cluster_count: i32,
}
