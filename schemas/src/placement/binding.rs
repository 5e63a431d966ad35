//! `ManagedClusterSetBinding` (`cluster.open-cluster-management.io/v1beta2`,
//! namespaced): makes a cluster set's clusters available to the Placements of one
//! namespace. Its name must equal `spec.clusterSet` (reference `registration.md` §1.5).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::names::{API_VERSION_V1BETA2, kind};
use crate::work::ObjectMeta;
use crate::work::serde_go::nullable;
use crate::work::status::Condition;

fn api_version() -> String {
    API_VERSION_V1BETA2.to_owned()
}

fn binding_kind() -> String {
    kind::MANAGED_CLUSTER_SET_BINDING.to_owned()
}

/// A ManagedClusterSetBinding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSetBinding {
    /// `apiVersion`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// `kind`.
    #[serde(default = "binding_kind")]
    pub kind: String,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: BindingSpec,
    /// `status`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: BindingStatus,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ManagedClusterSetBinding {
    /// The binding of set `set` in `namespace` (named after the set).
    pub fn new(namespace: &str, set: &str) -> ManagedClusterSetBinding {
        let metadata = ObjectMeta {
            namespace: namespace.to_owned(),
            name: set.to_owned(),
            ..ObjectMeta::default()
        };
        ManagedClusterSetBinding {
            api_version: api_version(),
            kind: binding_kind(),
            metadata,
            spec: BindingSpec {
                cluster_set: set.to_owned(),
            },
            status: BindingStatus::default(),
            extra: Map::new(),
        }
    }
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingSpec {
    /// `clusterSet`: the bound set's name.
    #[serde(default, deserialize_with = "nullable")]
    pub cluster_set: String,
}

/// `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingStatus {
    /// `conditions` (`Bound`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
}
