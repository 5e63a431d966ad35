//! The Kubernetes target's [`ClusterInfo`]: the `kube-system` namespace's uid as the
//! cluster id (OCM's `id.k8s.io`), `/version`, capacity and allocatable summed over
//! nodes (allocatable over schedulable nodes only), and the API server's health from
//! `GET /livez`, falling back to `/healthz` when `/livez` is not served or not allowed
//! (OCM's available check). Failures leave a fact out; only the health check reports
//! them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Api;
use kube::api::ListParams;

use super::KubeTarget;
use crate::target::ClusterInfo;

/// The facts of the cluster behind `target`.
pub(super) async fn cluster_info(target: &KubeTarget) -> ClusterInfo {
    let client = &target.client;
    let mut info = ClusterInfo {
        api_server: health(client).await,
        ..ClusterInfo::default()
    };
    if let Ok(v) = client.apiserver_version().await {
        info.kubernetes_version = Some(v.git_version);
    }
    if let Ok(ns) = Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await
    {
        info.id = ns.metadata.uid;
    }
    if let Ok(nodes) = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        let mut capacity = Sums::default();
        let mut allocatable = Sums::default();
        for node in nodes.items {
            let unschedulable = node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false);
            let Some(status) = node.status else { continue };
            for (k, q) in status.capacity.unwrap_or_default() {
                capacity.add(&k, &q.0);
            }
            if !unschedulable {
                for (k, q) in status.allocatable.unwrap_or_default() {
                    allocatable.add(&k, &q.0);
                }
            }
        }
        info.capacity = capacity.finish();
        info.allocatable = allocatable.finish();
    }
    info
}

/// `GET /livez`, else `/healthz` when `/livez` answers 404 or 403.
async fn health(client: &kube::Client) -> Result<(), String> {
    match get(client, "/livez").await {
        Ok(()) => Ok(()),
        Err((Some(404 | 403), _)) => get(client, "/healthz").await.map_err(|(_, m)| m),
        Err((_, m)) => Err(m),
    }
}

/// One health endpoint: the HTTP status of a refusal (if any) and what to report.
async fn get(client: &kube::Client, path: &str) -> Result<(), (Option<u16>, String)> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| (None, e.to_string()))?;
    match client.request_text(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err((Some(s.code), format!("status code: {}", s.code))),
        Err(e) => Err((None, e.to_string())),
    }
}

/// Quantities summed per resource name, in the units of [`parse_quantity`].
#[derive(Default)]
struct Sums(BTreeMap<String, Option<f64>>);

impl Sums {
    fn add(&mut self, name: &str, quantity: &str) {
        let slot = self.0.entry(name.to_string()).or_insert(Some(0.0));
        *slot = match (*slot, parse_quantity(quantity)) {
            (Some(sum), Some(q)) => Some(sum + q),
            _ => None,
        };
    }

    /// The sums as quantities; a resource with an unreadable quantity is left out.
    fn finish(self) -> BTreeMap<String, String> {
        self.0
            .into_iter()
            .filter_map(|(k, v)| Some((k, format_quantity(v?))))
            .collect()
    }
}

/// A Kubernetes quantity (`8`, `7500m`, `32Gi`, `1.5k`, `1e3`) as a number.
fn parse_quantity(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Ei", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    let q = q.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A sum as a quantity: whole numbers plain, fractions in milli-units.
fn format_quantity(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{}m", (v * 1000.0).round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_sum_like_the_api_server_reads_them() {
        let mut s = Sums::default();
        s.add("cpu", "4");
        s.add("cpu", "3500m");
        s.add("memory", "1Gi");
        s.add("memory", "1024Mi");
        s.add("pods", "110");
        s.add("weird", "lots");
        let out = s.finish();
        assert_eq!(out["cpu"], "7500m");
        assert_eq!(out["memory"], (2u64 << 30).to_string());
        assert_eq!(out["pods"], "110");
        assert!(!out.contains_key("weird"));
        assert_eq!(parse_quantity("1.5k"), Some(1500.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
    }
}
