//! The desired work the store tests write: one ConfigMap whose value varies.

use std::collections::BTreeMap;

use workbus_hub::store::{DesiredWork, WorkKey};
use workbus_schemas::work::ManifestWorkSpec;

/// Work `name` on `cluster` holding a ConfigMap with `data` (uid as the hub derives it
/// for source `src`).
pub fn desired(cluster: &str, name: &str, data: &str) -> DesiredWork {
    let spec: ManifestWorkSpec = serde_json::from_value(serde_json::json!({
        "workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "default"}, "data": {"k": data}}]}
    }))
    .unwrap();
    DesiredWork {
        key: WorkKey {
            cluster: cluster.into(),
            name: name.into(),
        },
        uid: workbus_schemas::resource_id::work_resource_id("src", cluster, name).to_string(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        spec,
    }
}

#[allow(dead_code)] // not every test crate that includes the fixture uses it
/// Work `name` on `cluster` holding a Secret whose `password` is `value` (base64 text
/// as stored in `data`) and whose `stringData.token` is `token`.
pub fn desired_secret(cluster: &str, name: &str, value: &str, token: &str) -> DesiredWork {
    let mut work = desired(cluster, name, "x");
    work.spec = serde_json::from_value(serde_json::json!({
        "workload": {"manifests": [{"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"},
            "data": {"password": value}, "stringData": {"token": token}}]}
    }))
    .unwrap();
    work
}
