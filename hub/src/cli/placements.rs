//! The Placement commands: the tables of `get placements|placementdecisions|
//! clustersetbindings` with kubectl's columns (`kubectl get placement`: NAME, SUCCEEDED,
//! REASON, SELECTEDCLUSTERS, AGE), `delete placement`, `create clustersetbinding`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use workbus_schemas::placement::names::{PLACEMENT_LABEL, condition};

use super::client::CliError;
use super::client::{Client, encode_component};
use super::output::{age, table};

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .map(|x| match x {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The AGE column of an object.
fn created_age(v: &Value, now: DateTime<Utc>) -> String {
    age(
        v.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
        now,
    )
}

/// The `kubectl get placement` table (NAMESPACE first with `all_namespaces`).
pub fn placements_table(items: &[Value], all_namespaces: bool, now: DateTime<Utc>) -> String {
    let satisfied = |p: &Value, field: &str| {
        p.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(condition::SATISFIED))
            })
            .map(|c| text(c, &format!("/{field}")))
            .unwrap_or_default()
    };
    let mut headers = vec!["NAME", "SUCCEEDED", "REASON", "SELECTEDCLUSTERS", "AGE"];
    if all_namespaces {
        headers.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|p| {
            let mut row = vec![
                text(p, "/metadata/name"),
                satisfied(p, "status"),
                satisfied(p, "reason"),
                text(p, "/status/numberOfSelectedClusters"),
                created_age(p, now),
            ];
            if all_namespaces {
                row.insert(0, text(p, "/metadata/namespace"));
            }
            row
        })
        .collect();
    table(&headers, &rows)
}

/// The PlacementDecision table: NAME, AGE; `wide` adds PLACEMENT, GROUP and the clusters.
pub fn decisions_table(items: &[Value], wide: bool, now: DateTime<Utc>) -> String {
    let mut headers = vec!["NAME", "AGE"];
    if wide {
        headers.extend(["PLACEMENT", "GROUP", "CLUSTERS"]);
    }
    let label = |d: &Value, key: &str| {
        d.pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            let mut row = vec![text(d, "/metadata/name"), created_age(d, now)];
            if wide {
                let clusters: Vec<String> = d
                    .pointer("/status/decisions")
                    .and_then(Value::as_array)
                    .map(|ds| ds.iter().map(|x| text(x, "/clusterName")).collect())
                    .unwrap_or_default();
                row.push(label(d, PLACEMENT_LABEL));
                row.push(label(
                    d,
                    workbus_schemas::placement::names::DECISION_GROUP_INDEX_LABEL,
                ));
                row.push(clusters.join(","));
            }
            row
        })
        .collect();
    table(&headers, &rows)
}

/// The binding table: NAMESPACE, NAME (= the set), BOUND, AGE.
pub fn bindings_table(items: &[Value], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|b| {
            let bound = b
                .pointer("/status/conditions/0/status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            vec![
                text(b, "/metadata/namespace"),
                text(b, "/metadata/name"),
                bound,
                created_age(b, now),
            ]
        })
        .collect();
    table(&["NAMESPACE", "NAME", "BOUND", "AGE"], &rows)
}

/// `delete placement NAME -n ns`.
pub fn delete_placement(client: &Client, namespace: &str, name: &str) -> Result<(), CliError> {
    client.delete(&format!(
        "/api/v1/namespaces/{}/placements/{}",
        encode_component(namespace),
        encode_component(name)
    ))?;
    println!("placement \"{name}\" deleted");
    Ok(())
}

/// `create clustersetbinding SET -n ns`.
pub fn create_binding(client: &Client, namespace: &str, set: &str) -> Result<(), CliError> {
    let binding = workbus_schemas::placement::ManagedClusterSetBinding::new(namespace, set);
    let body = serde_json::to_value(&binding).map_err(|e| CliError::Input(e.to_string()))?;
    client.put(
        &format!(
            "/api/v1/namespaces/{}/managedclustersetbindings/{}",
            encode_component(namespace),
            encode_component(set)
        ),
        &body,
    )?;
    println!("managedclustersetbinding/{set} created");
    Ok(())
}
