//! `apply -f FILE`: every document of the file (YAML stream or JSON) sent to the REST
//! route of its `kind` — ManifestWork, Placement, ManagedClusterSetBinding,
//! ManifestWorkReplicaSet — and the
//! kubectl-style result line (`placement.cluster.open-cluster-management.io/p created`).

use std::path::PathBuf;

use serde_json::Value;
use workbus_schemas::placement::names::{kind, kubectl};
use workbus_schemas::replicaset;

use super::client::CliError;
use super::client::{Client, encode_component};
use super::{WORK_KIND, read_documents, work_path};

/// Applies every document of `file`.
pub fn run(client: &Client, file: &PathBuf) -> Result<(), CliError> {
    for doc in read_documents(file)? {
        let text = |pointer: &str| {
            doc.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (ns, name) = (text("/metadata/namespace"), text("/metadata/name"));
        if ns.is_empty() || name.is_empty() {
            return Err(CliError::Input(
                "every object needs metadata.name and metadata.namespace".into(),
            ));
        }
        let namespaced = |resource: &str| {
            format!(
                "/api/v1/namespaces/{}/{resource}/{}",
                encode_component(&ns),
                encode_component(&name)
            )
        };
        let kind_name = text("/kind");
        let (path, shown) = match kind_name.as_str() {
            "ManifestWork" => (work_path(&ns, &name), WORK_KIND),
            k if k == kind::PLACEMENT => (namespaced("placements"), kubectl::PLACEMENT),
            k if k == kind::MANAGED_CLUSTER_SET_BINDING => (
                namespaced("managedclustersetbindings"),
                kubectl::MANAGED_CLUSTER_SET_BINDING,
            ),
            k if k == replicaset::names::KIND => (
                super::rollout::path(&ns, &name),
                replicaset::names::KUBECTL_NAME,
            ),
            other => {
                return Err(CliError::Input(format!(
                    "{name}: kind {other:?} cannot be applied (ManifestWork, Placement, \
                     ManagedClusterSetBinding, ManifestWorkReplicaSet)"
                )));
            }
        };
        let answer = client.put(&path, &doc)?;
        let word = match (answer.outcome.as_deref(), answer.status) {
            (Some("created"), _) | (None, 201) => "created",
            (Some("unchanged"), _) => "unchanged",
            _ => "configured",
        };
        println!("{shown}/{name} {word}");
    }
    Ok(())
}
