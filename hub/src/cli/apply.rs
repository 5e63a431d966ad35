//! `apply -f FILE`: every document of the file (YAML stream or JSON) sent to the REST
//! route of its `kind` — ManifestWork, Placement, ManagedClusterSetBinding,
//! ManifestWorkReplicaSet — and the
//! kubectl-style result line (`placement.cluster.open-cluster-management.io/p created`);
//! with `--placement`, plain Kubernetes objects wrapped into one ManifestWorkReplicaSet
//! ([`wrap`]).

use std::path::PathBuf;

use serde_json::Value;
use workbus_schemas::placement::names::kind;
use workbus_schemas::replicaset;

use super::client::CliError;
use super::client::Client;
use super::get::Kind;
use super::read_documents;

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
        let kind_name = text("/kind");
        let Some((kind, path)) = Kind::from_object_kind(&kind_name)
            .and_then(|k| k.object_path(&ns, &name).map(|p| (k, p)))
        else {
            return Err(CliError::Input(format!(
                "{name}: kind {kind_name:?} cannot be applied (ManifestWork, Placement, \
                 ManagedClusterSetBinding, ManifestWorkReplicaSet)"
            )));
        };
        let shown = kind.kubectl_name();
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

/// `apply -f FILE --placement P`: the file's plain Kubernetes objects as one
/// ManifestWorkReplicaSet in `namespace` for Placement `placement`, named `name` or
/// after the first object. Objects of workbus's own kinds are refused: wrapping a
/// ManifestWork or a Placement is a mistake, not a deployment.
pub fn wrap(
    client: &Client,
    file: &PathBuf,
    placement: &str,
    name: Option<&str>,
    namespace: &str,
) -> Result<(), CliError> {
    let objects = read_documents(file)?;
    for object in &objects {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind.is_empty() || object.get("apiVersion").and_then(Value::as_str).is_none() {
            return Err(CliError::Input(
                "--placement wraps Kubernetes objects: each needs apiVersion and kind".into(),
            ));
        }
        if [
            "ManifestWork",
            kind::PLACEMENT,
            kind::MANAGED_CLUSTER_SET_BINDING,
            replicaset::names::KIND,
        ]
        .contains(&kind)
        {
            return Err(CliError::Input(format!(
                "--placement wraps plain Kubernetes objects, not a {kind}: apply it without --placement"
            )));
        }
    }
    let name = match name {
        Some(n) => n.to_owned(),
        None => objects
            .first()
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                CliError::Input(
                    "no object with metadata.name to name the replica set after: give --name"
                        .into(),
                )
            })?
            .to_owned(),
    };
    let count = objects.len();
    let rs = replicaset::ManifestWorkReplicaSet::wrapping(namespace, &name, placement, objects)
        .map_err(|e| CliError::Input(format!("cannot wrap the objects: {e}")))?;
    let body = serde_json::to_value(&rs)
        .map_err(|e| CliError::Input(format!("cannot wrap the objects: {e}")))?;
    let answer = client.put(&super::rollout::path(namespace, &name), &body)?;
    let word = match (answer.outcome.as_deref(), answer.status) {
        (Some("created"), _) | (None, 201) => "created",
        (Some("unchanged"), _) => "unchanged",
        _ => "configured",
    };
    println!(
        "{}/{name} {word} ({count} object{} for placement {placement})",
        replicaset::names::KUBECTL_NAME,
        if count == 1 { "" } else { "s" }
    );
    Ok(())
}
