//! Per-cluster overrides (workbus extension `spec.overrides`): the template rendered for
//! one cluster — each override whose label selector matches the cluster's labels
//! patches the template (`ManifestWorkSpec` JSON) with RFC 6902 `add`, `replace` and
//! `remove`, in list order. Pure; typed errors name the override and operation.

use std::collections::BTreeMap;

use serde_json::Value;
use workbus_schemas::replicaset::{ClusterOverride, LabelSelector, PatchOperation};
use workbus_schemas::work::ManifestWorkSpec;

/// Why an override cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// An operation other than `add`, `replace`, `remove`.
    #[error(
        "overrides[{index}].patch[{op}]: operation {name:?} is not supported (add, replace, remove)"
    )]
    Unsupported {
        /// The override.
        index: usize,
        /// The operation's position.
        op: usize,
        /// The operation.
        name: String,
    },
    /// The path does not resolve (or `add`/`replace` without a value).
    #[error("overrides[{index}].patch[{op}]: {reason}")]
    Path {
        /// The override.
        index: usize,
        /// The operation's position.
        op: usize,
        /// What is wrong.
        reason: String,
    },
    /// A selector operator other than `In`, `NotIn`, `Exists`, `DoesNotExist`.
    #[error("overrides[{index}].clusterSelector: operator {operator:?} is not supported")]
    Operator {
        /// The override.
        index: usize,
        /// The operator.
        operator: String,
    },
    /// The patched template is not a ManifestWorkSpec any more.
    #[error("overrides: the patched template is not a ManifestWorkSpec: {0}")]
    NotASpec(String),
}

/// Whether `labels` match `selector` (an empty selector matches everything); an
/// operator the selector does not know is an error, not a silent non-match.
pub fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
    index: usize,
) -> Result<bool, OverrideError> {
    if let Some(operator) = unknown_operator(selector) {
        return Err(OverrideError::Operator {
            index,
            operator: operator.to_string(),
        });
    }
    Ok(selector.matches(labels))
}

/// The first `matchExpressions` operator that is not one of Kubernetes' four.
fn unknown_operator(selector: &LabelSelector) -> Option<&str> {
    selector
        .match_expressions
        .iter()
        .map(|r| r.operator.as_str())
        .find(|op| !matches!(*op, "In" | "NotIn" | "Exists" | "DoesNotExist"))
}

/// Checks every override once (operators and operation names) so a bad one is refused
/// when the replica set is applied, not per cluster later.
pub fn validate(overrides: &[ClusterOverride]) -> Result<(), OverrideError> {
    for (index, o) in overrides.iter().enumerate() {
        if let Some(operator) = unknown_operator(&o.cluster_selector) {
            return Err(OverrideError::Operator {
                index,
                operator: operator.to_string(),
            });
        }
        for (op, p) in o.patch.iter().enumerate() {
            if !matches!(p.op.as_str(), "add" | "replace" | "remove") {
                return Err(OverrideError::Unsupported {
                    index,
                    op,
                    name: p.op.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The template for a cluster with `labels`; the template itself when no override
/// matches.
pub fn render(
    template: &ManifestWorkSpec,
    overrides: &[ClusterOverride],
    labels: &BTreeMap<String, String>,
) -> Result<ManifestWorkSpec, OverrideError> {
    let mut doc: Option<Value> = None;
    for (index, o) in overrides.iter().enumerate() {
        if !matches(&o.cluster_selector, labels, index)? {
            continue;
        }
        let value = match doc.as_mut() {
            Some(v) => v,
            None => doc.insert(
                serde_json::to_value(template)
                    .map_err(|e| OverrideError::NotASpec(e.to_string()))?,
            ),
        };
        for (op, p) in o.patch.iter().enumerate() {
            apply_op(value, p).map_err(|reason| match reason {
                OpError::Unsupported => OverrideError::Unsupported {
                    index,
                    op,
                    name: p.op.clone(),
                },
                OpError::Path(reason) => OverrideError::Path { index, op, reason },
            })?;
        }
    }
    match doc {
        None => Ok(template.clone()),
        Some(v) => serde_json::from_value(v).map_err(|e| OverrideError::NotASpec(e.to_string())),
    }
}

enum OpError {
    Unsupported,
    Path(String),
}

/// RFC 6901 reference tokens of `path`.
fn tokens(path: &str) -> Result<Vec<String>, OpError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(OpError::Path(format!(
            "path {path:?} does not start with '/'"
        )));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn apply_op(doc: &mut Value, p: &PatchOperation) -> Result<(), OpError> {
    let mut tokens = tokens(&p.path)?;
    let Some(last) = tokens.pop() else {
        return Err(OpError::Path("the whole template cannot be patched".into()));
    };
    let missing = || OpError::Path(format!("path {:?} does not exist", p.path));
    let mut parent = &mut *doc;
    for t in &tokens {
        parent = match parent {
            Value::Object(m) => m.get_mut(t).ok_or_else(missing)?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| missing())?;
                a.get_mut(i).ok_or_else(missing)?
            }
            _ => return Err(missing()),
        };
    }
    let value = || {
        p.value
            .clone()
            .ok_or_else(|| OpError::Path(format!("{} needs a value", p.op)))
    };
    match (p.op.as_str(), parent) {
        ("add", Value::Object(m)) => {
            m.insert(last, value()?);
        }
        ("add", Value::Array(a)) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse().map_err(|_| missing())?
            };
            if i > a.len() {
                return Err(missing());
            }
            a.insert(i, value()?);
        }
        ("replace", Value::Object(m)) => {
            let slot = m.get_mut(&last).ok_or_else(missing)?;
            *slot = value()?;
        }
        ("replace", Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            *a.get_mut(i).ok_or_else(missing)? = value()?;
        }
        ("remove", Value::Object(m)) => {
            m.remove(&last).ok_or_else(missing)?;
        }
        ("remove", Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i >= a.len() {
                return Err(missing());
            }
            a.remove(i);
        }
        ("add" | "replace" | "remove", _) => return Err(missing()),
        _ => return Err(OpError::Unsupported),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use workbus_schemas::replicaset::LabelSelectorRequirement;

    fn template() -> ManifestWorkSpec {
        serde_json::from_value(json!({"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
             "data": {"size": "small"}}
        ]}}))
        .unwrap()
    }

    fn prod_override(op: &str, path: &str, value: Option<Value>) -> ClusterOverride {
        ClusterOverride {
            cluster_selector: LabelSelector {
                match_labels: [("env".to_string(), "prod".to_string())].into(),
                match_expressions: vec![LabelSelectorRequirement {
                    key: "region".into(),
                    operator: "In".into(),
                    values: vec!["eu".into(), "us".into()],
                }],
                ..Default::default()
            },
            patch: vec![PatchOperation {
                op: op.into(),
                path: path.into(),
                value,
            }],
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matching_clusters_get_the_patch_others_the_template() {
        let o = [prod_override(
            "replace",
            "/workload/manifests/0/data/size",
            Some(json!("large")),
        )];
        let prod = render(
            &template(),
            &o,
            &labels(&[("env", "prod"), ("region", "eu")]),
        )
        .unwrap();
        assert_eq!(prod.workload.manifests[0]["data"]["size"], json!("large"));
        let dev = render(
            &template(),
            &o,
            &labels(&[("env", "dev"), ("region", "eu")]),
        )
        .unwrap();
        assert_eq!(dev, template());
        let asia = render(
            &template(),
            &o,
            &labels(&[("env", "prod"), ("region", "ap")]),
        )
        .unwrap();
        assert_eq!(asia, template());
    }

    #[test]
    fn add_and_remove() {
        let add = [prod_override(
            "add",
            "/workload/manifests/0/data/extra",
            Some(json!("x")),
        )];
        let l = labels(&[("env", "prod"), ("region", "us")]);
        let out = render(&template(), &add, &l).unwrap();
        assert_eq!(out.workload.manifests[0]["data"]["extra"], json!("x"));
        let remove = [prod_override(
            "remove",
            "/workload/manifests/0/data/size",
            None,
        )];
        let out = render(&template(), &remove, &l).unwrap();
        assert!(out.workload.manifests[0]["data"].get("size").is_none());
    }

    #[test]
    fn bad_paths_and_operations_are_typed_errors() {
        let l = labels(&[("env", "prod"), ("region", "us")]);
        let bad = [prod_override("replace", "/workload/nope/0", Some(json!(1)))];
        assert!(matches!(
            render(&template(), &bad, &l),
            Err(OverrideError::Path {
                index: 0,
                op: 0,
                ..
            })
        ));
        let copy = [prod_override("copy", "/workload", None)];
        assert!(matches!(
            validate(&copy),
            Err(OverrideError::Unsupported { .. })
        ));
        let mut op = prod_override("add", "/x", Some(json!(1)));
        op.cluster_selector.match_expressions[0].operator = "Gt".into();
        assert!(matches!(
            validate(&[op]),
            Err(OverrideError::Operator { .. })
        ));
    }
}
