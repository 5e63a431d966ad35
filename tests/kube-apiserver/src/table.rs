//! # Tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`)
//!
//! `kubectl get` asks the server to print: a `meta.k8s.io/v1` `Table` with column
//! definitions and one row of cells per object (plus the object's metadata, or the
//! whole object with `includeObject=Object`). The columns are those of the apiserver's
//! printers for the kinds a work agent meets (Deployments, Pods, Jobs, Services, …);
//! custom resources use their CRD's `additionalPrinterColumns` (simple JSONPaths,
//! `[?(@.field=="value")]` filters included) or `Name`/`Age`; other kinds `Name`/`Created
//! At`, the apiserver's default.

use chrono::Utc;
use serde_json::{Value, json};

use crate::meta;
use crate::registry::ResourceType;

/// How a cell is computed.
#[derive(Clone, Copy)]
enum Cell {
    Of(fn(&Value) -> Value),
    /// An integer field (0 when missing).
    Int(&'static [&'static str]),
    /// A string field.
    Text(&'static [&'static str]),
    /// `ready/wanted` from two integer fields.
    Ratio(&'static [&'static str], &'static [&'static str]),
}

struct Column {
    name: &'static str,
    kind: &'static str,
    priority: u8,
    cell: Cell,
}

impl Column {
    fn value(&self, o: &Value) -> Value {
        match self.cell {
            Cell::Of(f) => f(o),
            Cell::Int(p) => json!(int(o, p)),
            Cell::Text(p) => json!(text(o, p)),
            Cell::Ratio(a, b) => json!(format!("{}/{}", int(o, a), int(o, b))),
        }
    }
}

const fn col(name: &'static str, kind: &'static str, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind,
        priority: 0,
        cell: Cell::Of(cell),
    }
}

const fn wide(name: &'static str, kind: &'static str, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind,
        priority: 1,
        cell: Cell::Of(cell),
    }
}

const fn int_col(name: &'static str, path: &'static [&'static str]) -> Column {
    Column {
        name,
        kind: "integer",
        priority: 0,
        cell: Cell::Int(path),
    }
}

const fn text_col(name: &'static str, path: &'static [&'static str]) -> Column {
    Column {
        name,
        kind: "string",
        priority: 0,
        cell: Cell::Text(path),
    }
}

const fn ratio_col(
    name: &'static str,
    ready: &'static [&'static str],
    wanted: &'static [&'static str],
) -> Column {
    Column {
        name,
        kind: "string",
        priority: 0,
        cell: Cell::Ratio(ready, wanted),
    }
}

fn name(o: &Value) -> Value {
    json!(meta::name(o))
}
fn age(o: &Value) -> Value {
    json!(meta::age(o))
}
fn created_at(o: &Value) -> Value {
    json!(meta::str_field(o, "creationTimestamp"))
}
fn int(o: &Value, path: &[&str]) -> i64 {
    meta::get_path(o, path).and_then(Value::as_i64).unwrap_or(0)
}
fn text(o: &Value, path: &[&str]) -> String {
    meta::get_path(o, path)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}
fn count(o: &Value, fields: &[&str]) -> i64 {
    fields
        .iter()
        .map(|f| o[*f].as_object().map(|m| m.len() as i64).unwrap_or(0))
        .sum()
}
fn none_if_empty(s: String) -> Value {
    json!(if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    })
}
fn containers(o: &Value, field: &str) -> String {
    o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c[field].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join(",")
}
fn job_status(o: &Value) -> String {
    let cond = |t: &str| {
        o["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    if cond("Complete") {
        "Complete".into()
    } else if cond("Failed") {
        "Failed".into()
    } else if cond("Suspended") {
        "Suspended".into()
    } else {
        "Running".into()
    }
}

fn pod_status(o: &Value) -> String {
    if meta::is_deleting(o) {
        return "Terminating".into();
    }
    let waiting = o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| c["state"]["waiting"]["reason"].as_str().map(str::to_string));
    waiting.unwrap_or_else(|| text(o, &["status", "phase"]))
}

fn label_pairs(m: Option<&serde_json::Map<String, Value>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(",")
    })
    .unwrap_or_default()
}

fn job_completions(o: &Value) -> Value {
    let got = int(o, &["status", "succeeded"]);
    json!(match o["spec"]["completions"].as_i64() {
        Some(w) => format!("{got}/{w}"),
        None => format!("{got}/1 of {}", int(o, &["spec", "parallelism"])),
    })
}

fn job_duration(o: &Value) -> Value {
    let start = meta::parse_time(&text(o, &["status", "startTime"]));
    let end = meta::parse_time(&text(o, &["status", "completionTime"]));
    json!(match (start, end) {
        (Some(s), Some(e)) => meta::human_duration((e - s).num_seconds()),
        (Some(s), None) => meta::human_duration((Utc::now() - s).num_seconds()),
        _ => String::new(),
    })
}

fn pod_ready(o: &Value) -> Value {
    let total = o["spec"]["containers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let ready = o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ready"] == true)
        .count();
    json!(format!("{ready}/{total}"))
}

fn pod_restarts(o: &Value) -> Value {
    json!(
        o["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["restartCount"].as_i64().unwrap_or(0))
            .sum::<i64>()
    )
}

fn service_ports(o: &Value) -> Value {
    none_if_empty(
        o["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn node_status(o: &Value) -> Value {
    let ready = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    json!(if ready { "Ready" } else { "NotReady" })
}

fn node_roles(o: &Value) -> Value {
    let roles: Vec<String> = meta::labels(o)
        .iter()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    none_if_empty(roles.join(","))
}

fn columns(kind: &str) -> Vec<Column> {
    let name_col = col("Name", "string", name);
    let age_col = col("Age", "string", age);
    match kind {
        "Namespace" => vec![name_col, text_col("Status", &["status", "phase"]), age_col],
        "ConfigMap" => vec![
            name_col,
            col("Data", "string", |o| {
                json!(count(o, &["data", "binaryData"]))
            }),
            age_col,
        ],
        "Secret" => vec![
            name_col,
            text_col("Type", &["type"]),
            col("Data", "string", |o| json!(count(o, &["data"]))),
            age_col,
        ],
        "ServiceAccount" => vec![
            name_col,
            col("Secrets", "string", |o| {
                json!(o["secrets"].as_array().map(Vec::len).unwrap_or(0))
            }),
            age_col,
        ],
        "Deployment" => vec![
            name_col,
            ratio_col("Ready", &["status", "readyReplicas"], &["spec", "replicas"]),
            int_col("Up-to-date", &["status", "updatedReplicas"]),
            int_col("Available", &["status", "availableReplicas"]),
            age_col,
            wide("Containers", "string", |o| json!(containers(o, "name"))),
            wide("Images", "string", |o| json!(containers(o, "image"))),
            wide("Selector", "string", |o| {
                json!(label_pairs(
                    o["spec"]["selector"]["matchLabels"].as_object()
                ))
            }),
        ],
        "ReplicaSet" => vec![
            name_col,
            int_col("Desired", &["spec", "replicas"]),
            int_col("Current", &["status", "replicas"]),
            int_col("Ready", &["status", "readyReplicas"]),
            age_col,
        ],
        "DaemonSet" => vec![
            name_col,
            int_col("Desired", &["status", "desiredNumberScheduled"]),
            int_col("Current", &["status", "currentNumberScheduled"]),
            int_col("Ready", &["status", "numberReady"]),
            int_col("Up-to-date", &["status", "updatedNumberScheduled"]),
            int_col("Available", &["status", "numberAvailable"]),
            col("Node Selector", "string", |o| {
                none_if_empty(label_pairs(
                    o["spec"]["template"]["spec"]["nodeSelector"].as_object(),
                ))
            }),
            age_col,
        ],
        "StatefulSet" => vec![
            name_col,
            ratio_col("Ready", &["status", "readyReplicas"], &["spec", "replicas"]),
            age_col,
        ],
        "Job" => vec![
            name_col,
            col("Status", "string", |o| json!(job_status(o))),
            col("Completions", "string", job_completions),
            col("Duration", "string", job_duration),
            age_col,
        ],
        "Pod" => vec![
            name_col,
            col("Ready", "string", pod_ready),
            col("Status", "string", |o| json!(pod_status(o))),
            col("Restarts", "string", pod_restarts),
            age_col,
            wide("IP", "string", |o| {
                none_if_empty(text(o, &["status", "podIP"]))
            }),
            wide("Node", "string", |o| {
                none_if_empty(text(o, &["spec", "nodeName"]))
            }),
        ],
        "Service" => vec![
            name_col,
            text_col("Type", &["spec", "type"]),
            col("Cluster-IP", "string", |o| {
                none_if_empty(text(o, &["spec", "clusterIP"]))
            }),
            col("External-IP", "string", |_| json!("<none>")),
            col("Port(s)", "string", service_ports),
            age_col,
        ],
        "Node" => vec![
            name_col,
            col("Status", "string", node_status),
            col("Roles", "string", node_roles),
            age_col,
            text_col("Version", &["status", "nodeInfo", "kubeletVersion"]),
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name_col,
            col("Role", "string", |o| {
                json!(format!(
                    "{}/{}",
                    text(o, &["roleRef", "kind"]),
                    text(o, &["roleRef", "name"])
                ))
            }),
            age_col,
        ],
        _ => vec![name_col, col("Created At", "date", created_at)],
    }
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Evaluates the simple JSONPaths printer columns use: `.a.b`, `.a[0]`,
/// `.a[?(@.k=="v")].b`.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            rest = after[end + 1..].trim_start_matches('.');
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches('"').trim_matches('\'');
                cur = cur.as_array()?.iter().find(|x| {
                    x.get(field.trim()).is_some_and(|v| match v {
                        Value::String(s) => s == want,
                        other => *other == want,
                    })
                })?;
            } else {
                cur = cur.as_array()?.get(inner.parse::<usize>().ok()?)?;
            }
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        cur = cur.get(&rest[..end])?;
        rest = rest[end..].trim_start_matches('.');
    }
    Some(cur)
}

fn custom_cell(kind: &str, v: Option<&Value>) -> Value {
    match (kind, v) {
        (_, None) => Value::Null,
        ("date", Some(Value::String(s))) => match meta::parse_time(s) {
            Some(t) => json!(meta::human_duration((Utc::now() - t).num_seconds())),
            None => json!(s),
        },
        (_, Some(v)) => v.clone(),
    }
}

fn row_object(obj: &Value, rt: &ResourceType, include: &str) -> Option<Value> {
    match include {
        "None" => None,
        "Object" => Some(crate::rest::to_version(obj, rt)),
        _ => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

fn row(o: &Value, cells: Vec<Value>, rt: &ResourceType, include: &str) -> Value {
    let mut row = json!({"cells": cells});
    if let Some(obj) = row_object(o, rt, include) {
        row["object"] = obj;
    }
    row
}

/// The Table of `objects`.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: Option<String>,
    include: &str,
) -> Value {
    let (defs, rows): (Vec<Value>, Vec<Value>) = if let Some(crd) = &rt.crd {
        let mut defs = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0}),
        ];
        let printer = &crd.printer_columns;
        let custom: Vec<(String, String, String, i64)> = if printer.is_empty() {
            vec![(
                "Age".into(),
                "date".into(),
                ".metadata.creationTimestamp".into(),
                0,
            )]
        } else {
            printer
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("").to_string(),
                        c["type"].as_str().unwrap_or("string").to_string(),
                        c["jsonPath"].as_str().unwrap_or("").to_string(),
                        c["priority"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        };
        for (n, t, _, p) in &custom {
            defs.push(
                json!({"name": n, "type": t, "format": "", "description": "", "priority": p}),
            );
        }
        let rows = objects
            .iter()
            .map(|o| {
                let mut cells = vec![json!(meta::name(o))];
                for (_, t, p, _) in &custom {
                    cells.push(custom_cell(t, json_path(o, p)));
                }
                row(o, cells, rt, include)
            })
            .collect();
        (defs, rows)
    } else {
        let cols = columns(&rt.kind);
        let defs = cols
            .iter()
            .map(|c| {
                let mut d = json!({"name": c.name, "type": c.kind, "format": "", "description": "", "priority": c.priority});
                if c.name == "Name" {
                    d["format"] = json!("name");
                    d["description"] = json!(NAME_DESCRIPTION);
                }
                d
            })
            .collect();
        let rows = objects
            .iter()
            .map(|o| {
                let cells: Vec<Value> = cols.iter().map(|c| c.value(o)).collect();
                row(o, cells, rt, include)
            })
            .collect();
        (defs, rows)
    };
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": defs,
        "rows": rows,
    });
    if let Some(rv) = resource_version {
        t["metadata"]["resourceVersion"] = json!(rv);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn deployment_rows() {
        let r = Registry::default();
        let d = r.find("apps", "v1", "deployments").unwrap();
        let o = json!({"metadata": {"name": "web", "creationTimestamp": meta::now()},
                       "spec": {"replicas": 2}, "status": {"readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        let t = table(&d, &[o], Some("5".into()), "Metadata");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "2/2", 2, 2, "0s", "", "", ""])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
    }

    #[test]
    fn json_paths() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]},
                       "spec": {"l": [1, 2]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(json_path(&o, ".spec.l[1]"), Some(&json!(2)));
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }
}
