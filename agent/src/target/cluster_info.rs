//! What an agent reports about its cluster in the ManagedCluster status (OCM §1.1, §1.4):
//! identity and platform claims, Kubernetes version, capacity and allocatable resources,
//! and whether the API server is healthy. The simulated cluster reports configured
//! values; the Kubernetes target reads nodes, `/version` and `/livez` (`/healthz`).

use std::collections::BTreeMap;

/// The facts of one cluster, as a [`super::Target`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// A stable id of the cluster (claim `id.k8s.io`; Kubernetes: the `kube-system`
    /// namespace's uid).
    pub id: Option<String>,
    /// The Kubernetes version (`status.version.kubernetes`, claim `kubeversion.…`).
    pub kubernetes_version: Option<String>,
    /// The platform (claim `platform.…`, e.g. `AWS`, `Other`).
    pub platform: Option<String>,
    /// The product (claim `product.…`, e.g. `OpenShift`, `Other`).
    pub product: Option<String>,
    /// Capacity summed over nodes, resource name → quantity (`cpu`, `memory`, …).
    pub capacity: BTreeMap<String, String>,
    /// Allocatable summed over schedulable nodes.
    pub allocatable: BTreeMap<String, String>,
    /// The API server's health check: `Err` carries what failed (e.g. `status code:
    /// 500`), which the status message repeats.
    pub api_server: Result<(), String>,
}

impl Default for ClusterInfo {
    /// Nothing known; the API server answered.
    fn default() -> Self {
        ClusterInfo {
            id: None,
            kubernetes_version: None,
            platform: None,
            product: None,
            capacity: BTreeMap::new(),
            allocatable: BTreeMap::new(),
            api_server: Ok(()),
        }
    }
}

impl ClusterInfo {
    /// What the simulated cluster reports unless configured otherwise.
    pub fn simulated(cluster_id: &str) -> ClusterInfo {
        ClusterInfo {
            id: Some(cluster_id.to_string()),
            kubernetes_version: Some(SIMULATED_KUBERNETES_VERSION.to_string()),
            platform: Some("Other".to_string()),
            product: Some("Other".to_string()),
            capacity: [("cpu", "8"), ("memory", "32Gi"), ("pods", "110")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            allocatable: [("cpu", "7500m"), ("memory", "30Gi"), ("pods", "110")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            api_server: Ok(()),
        }
    }
}

/// The Kubernetes version a simulated cluster reports.
pub const SIMULATED_KUBERNETES_VERSION: &str = "v1.31.0+workbus-sim";
