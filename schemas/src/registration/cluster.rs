//! `ManagedCluster` (`cluster.open-cluster-management.io/v1`): the hub's record of one
//! cluster, with the fields and condition helpers workbus reads and writes
//! (reference §1.1–§1.4). Members we do not model are kept in `extra` so an object
//! survives a decode/encode unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::names::{DEFAULT_LEASE_DURATION_SECONDS, condition};
use crate::work::ObjectMeta;
use crate::work::serde_go::nullable;
use crate::work::status::{Condition, find_condition};

/// A ManagedCluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedCluster {
    /// `metadata`; `name` is the cluster name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: ManagedClusterSpec,
    /// `status`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: ManagedClusterStatus,
    /// Other members (`apiVersion`/`kind` are dropped on decode and forced on encode).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ManagedCluster.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSpec {
    /// `managedClusterClientConfigs`: the cluster's API server URLs and CA bundles.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub managed_cluster_client_configs: Vec<ClientConfig>,
    /// `hubAcceptsClient`: the hub admin accepted the cluster (written always, as Go does).
    #[serde(default, deserialize_with = "nullable")]
    pub hub_accepts_client: bool,
    /// `leaseDurationSeconds`; 0 means [`DEFAULT_LEASE_DURATION_SECONDS`].
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i32"
    )]
    pub lease_duration_seconds: i32,
    /// `taints`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub taints: Vec<Taint>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

impl ManagedClusterSpec {
    /// The lease duration in effect: 0 (or negative) counts as 60 s, as in OCM.
    pub fn effective_lease_duration_seconds(&self) -> i32 {
        if self.lease_duration_seconds > 0 {
            self.lease_duration_seconds
        } else {
            DEFAULT_LEASE_DURATION_SECONDS
        }
    }
}

/// One `managedClusterClientConfigs` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// `url` of the cluster's API server.
    #[serde(default, deserialize_with = "nullable")]
    pub url: String,
    /// `caBundle` (base64, as Go writes `[]byte`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub ca_bundle: String,
}

/// A taint on a cluster (`spec.taints[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// `key`, e.g. [`super::names::TAINT_UNREACHABLE`].
    #[serde(default, deserialize_with = "nullable")]
    pub key: String,
    /// `value`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub value: String,
    /// `effect`, see [`super::names::taint_effect`].
    #[serde(default, deserialize_with = "nullable")]
    pub effect: String,
    /// `timeAdded`, set by the hub (`null` when unset).
    #[serde(default)]
    pub time_added: Option<crate::work::Time>,
}

/// `ManagedCluster.status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterStatus {
    /// `conditions`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
    /// `capacity`: resource name → quantity text.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub capacity: BTreeMap<String, Value>,
    /// `allocatable`: resource name → quantity text.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub allocatable: BTreeMap<String, Value>,
    /// `version`.
    #[serde(default, deserialize_with = "nullable")]
    pub version: ManagedClusterVersion,
    /// `clusterClaims`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cluster_claims: Vec<ClusterClaim>,
    /// Other members (`managedNamespaces`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `status.version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedClusterVersion {
    /// `kubernetes`: the API server's version text.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kubernetes: String,
}

/// One reported cluster claim (`status.clusterClaims[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterClaim {
    /// `name`, e.g. `id.k8s.io`.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `value`.
    #[serde(default, deserialize_with = "nullable")]
    pub value: String,
}

impl ManagedCluster {
    /// A cluster object with just a name.
    pub fn named(name: &str) -> ManagedCluster {
        let mut c = ManagedCluster::default();
        c.metadata.name = name.to_owned();
        c
    }

    /// The condition of `type_`, if any.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        find_condition(&self.status.conditions, type_)
    }

    /// The status (`True`/`False`/`Unknown`) of condition `type_`, if present.
    pub fn condition_status(&self, type_: &str) -> Option<&str> {
        self.condition(type_).map(|c| c.status.as_str())
    }

    /// `HubAcceptedManagedCluster` is True.
    pub fn is_accepted(&self) -> bool {
        self.condition(condition::HUB_ACCEPTED)
            .is_some_and(Condition::is_true)
    }

    /// `ManagedClusterJoined` is True.
    pub fn is_joined(&self) -> bool {
        self.condition(condition::JOINED)
            .is_some_and(Condition::is_true)
    }

    /// Whether the cluster carries taint `key`.
    pub fn has_taint(&self, key: &str) -> bool {
        self.spec.taints.iter().any(|t| t.key == key)
    }
}
