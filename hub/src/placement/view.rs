//! [`ClusterView`]: what the scheduler reads of a cluster — labels, claims, taints,
//! allocatable CPU and memory, whether it is being deleted — built from a stored
//! [`Cluster`] (through its OCM `ManagedCluster`). Plain data, compared for equality so
//! an unchanged cluster costs nothing.

use std::collections::BTreeMap;

use serde_json::Value;
use workbus_schemas::registration::{ManagedCluster, Taint};

use crate::store::Cluster;

/// The scheduler's view of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its claims (`status.clusterClaims`, name → value).
    pub claims: BTreeMap<String, String>,
    /// Its taints.
    pub taints: Vec<Taint>,
    /// Allocatable CPU in cores, when both allocatable and capacity report it.
    pub cpu: Option<f64>,
    /// Allocatable memory in bytes, when both allocatable and capacity report it.
    pub memory: Option<f64>,
    /// It is being deleted (never selected).
    pub deleting: bool,
}

impl ClusterView {
    /// A view with just a name and labels (tests, REST-created clusters).
    pub fn new(name: &str, labels: BTreeMap<String, String>) -> ClusterView {
        ClusterView {
            name: name.to_owned(),
            labels,
            claims: BTreeMap::new(),
            taints: Vec::new(),
            cpu: None,
            memory: None,
            deleting: false,
        }
    }

    /// The view of a stored cluster.
    pub fn from_cluster(cluster: &Cluster) -> ClusterView {
        ClusterView::from_managed_cluster(&cluster.managed_cluster())
    }

    /// The view of a cluster as an OCM ManagedCluster (labels from its metadata).
    pub fn from_managed_cluster(mc: &ManagedCluster) -> ClusterView {
        let resource = |name: &str| {
            let allocatable = mc.status.allocatable.get(name).and_then(quantity)?;
            mc.status.capacity.get(name).and_then(quantity)?;
            Some(allocatable)
        };
        ClusterView {
            claims: mc
                .status
                .cluster_claims
                .iter()
                .map(|c| (c.name.clone(), c.value.clone()))
                .collect(),
            taints: mc.spec.taints.clone(),
            cpu: resource("cpu"),
            memory: resource("memory"),
            deleting: mc.metadata.deletion_timestamp.is_some(),
            name: mc.metadata.name.clone(),
            labels: mc.metadata.labels.clone(),
        }
    }
}

/// A Kubernetes quantity (`"4"`, `"500m"`, `"8Gi"`, `"1e3"`, or a JSON number) as a
/// float; `None` when it does not parse. Approximate, as OCM's `AsApproximateFloat64`.
pub fn quantity(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return Some(n);
    }
    let text = v.as_str()?.trim();
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    for (suffix, factor) in [("P", 1e15), ("E", 1e18)] {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(quantity(&json!("4")), Some(4.0));
        assert_eq!(quantity(&json!("500m")), Some(0.5));
        assert_eq!(quantity(&json!("2Gi")), Some(2.0 * 1073741824.0));
        assert_eq!(quantity(&json!("3k")), Some(3000.0));
        assert_eq!(quantity(&json!("1e3")), Some(1000.0));
        assert_eq!(quantity(&json!(12)), Some(12.0));
        assert_eq!(quantity(&json!("lots")), None);
        assert_eq!(quantity(&json!(null)), None);
    }
}
