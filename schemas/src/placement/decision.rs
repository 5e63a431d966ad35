//! `PlacementDecision` (`cluster.open-cluster-management.io/v1beta1`, namespaced): one
//! page (at most 100) of a Placement's selected clusters, labelled with the placement
//! and its decision group (reference `placement.md` §2.2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::names::{
    API_VERSION_V1BETA1, DECISION_GROUP_INDEX_LABEL, DECISION_GROUP_NAME_LABEL, PLACEMENT_LABEL,
    kind,
};
use crate::work::ObjectMeta;
use crate::work::serde_go::nullable;

fn api_version() -> String {
    API_VERSION_V1BETA1.to_owned()
}

fn decision_kind() -> String {
    kind::PLACEMENT_DECISION.to_owned()
}

/// A PlacementDecision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDecision {
    /// `apiVersion`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// `kind`.
    #[serde(default = "decision_kind")]
    pub kind: String,
    /// `metadata` (labels name the placement and the decision group).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `status`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: PlacementDecisionStatus,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for PlacementDecision {
    fn default() -> Self {
        PlacementDecision {
            api_version: api_version(),
            kind: decision_kind(),
            metadata: ObjectMeta::default(),
            status: PlacementDecisionStatus::default(),
            extra: Map::new(),
        }
    }
}

impl PlacementDecision {
    /// A decision object of `placement` in `namespace`, named `name`, for decision group
    /// `group_index`/`group_name`, with OCM's three labels.
    pub fn new(
        namespace: &str,
        name: &str,
        placement: &str,
        group_index: usize,
        group_name: &str,
        clusters: Vec<String>,
    ) -> PlacementDecision {
        let mut d = PlacementDecision::default();
        d.metadata.namespace = namespace.to_owned();
        d.metadata.name = name.to_owned();
        let labels = &mut d.metadata.labels;
        labels.insert(PLACEMENT_LABEL.to_owned(), placement.to_owned());
        labels.insert(
            DECISION_GROUP_INDEX_LABEL.to_owned(),
            group_index.to_string(),
        );
        labels.insert(DECISION_GROUP_NAME_LABEL.to_owned(), group_name.to_owned());
        d.status.decisions = clusters
            .into_iter()
            .map(|cluster_name| ClusterDecision {
                cluster_name,
                reason: String::new(),
            })
            .collect();
        d
    }

    /// The placement it belongs to (its label).
    pub fn placement(&self) -> Option<&str> {
        self.metadata.label(PLACEMENT_LABEL)
    }

    /// The cluster names it holds, in order.
    pub fn cluster_names(&self) -> impl Iterator<Item = &str> {
        self.status
            .decisions
            .iter()
            .map(|d| d.cluster_name.as_str())
    }
}

/// `PlacementDecision.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDecisionStatus {
    /// `decisions`, sorted by cluster name inside a decision group.
    #[serde(default, deserialize_with = "nullable")]
    pub decisions: Vec<ClusterDecision>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `decisions[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDecision {
    /// `clusterName`.
    #[serde(default, deserialize_with = "nullable")]
    pub cluster_name: String,
    /// `reason` (OCM leaves it empty, and so do we).
    #[serde(default, deserialize_with = "nullable")]
    pub reason: String,
}
