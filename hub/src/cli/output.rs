//! Human output of the CLI: kubectl-style tables (columns padded, three spaces apart),
//! ages (`5s`, `3m`, `2h`, `4d`), JSON/YAML dumps, and `describe`'s summary.
//! Works are read as JSON values so the CLI shows whatever the server sends.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Renders rows under headers, like kubectl.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}   ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// kubectl's short age of a timestamp.
pub fn age(ts: Option<&str>, now: DateTime<Utc>) -> String {
    let Some(t) = ts.and_then(|s| DateTime::parse_from_rfc3339(s).ok()) else {
        return "<unknown>".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// The `status` of a work-level condition, or `""`.
pub fn condition_status(work: &Value, type_: &str) -> String {
    work.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| s(c, &["type"]) == type_))
        .map(|c| s(c, &["status"]).to_string())
        .unwrap_or_default()
}

/// The table of `get works`.
pub fn works_table(items: &[Value], wide: bool, now: DateTime<Utc>) -> String {
    let mut headers = vec![
        "NAMESPACE",
        "NAME",
        "GENERATION",
        "APPLIED",
        "AVAILABLE",
        "DELETING",
        "AGE",
    ];
    if wide {
        headers.extend(["UID", "STATUS-GENERATION", "LAST-STATUS"]);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|w| {
            let generation = w
                .pointer("/metadata/generation")
                .map(|g| g.to_string())
                .unwrap_or_default();
            let mut row = vec![
                s(w, &["metadata", "namespace"]).to_string(),
                s(w, &["metadata", "name"]).to_string(),
                generation,
                condition_status(w, "Applied"),
                condition_status(w, "Available"),
                if s(w, &["metadata", "deletionTimestamp"]).is_empty() {
                    ""
                } else {
                    "yes"
                }
                .to_string(),
                age(
                    w.pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str),
                    now,
                ),
            ];
            if wide {
                let ann = |k: &str| {
                    w.pointer("/metadata/annotations")
                        .and_then(|a| a.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                row.push(s(w, &["metadata", "uid"]).to_string());
                row.push(ann(crate::work_view::ANNOTATION_STATUS_GENERATION));
                let received = ann(crate::work_view::ANNOTATION_STATUS_RECEIVED);
                row.push(if received.is_empty() {
                    "<none>".into()
                } else {
                    age(Some(&received), now)
                });
            }
            row
        })
        .collect();
    table(&headers, &rows)
}

/// A cluster's condition status as `kubectl get managedclusters` shows it: `True`,
/// `False`, `Unknown`, or empty when absent. A REST-created cluster (no registration)
/// is accepted and has no other condition.
fn cluster_condition(c: &Value, type_: &str) -> String {
    let Some(conditions) = c
        .pointer("/registration/managedCluster/status/conditions")
        .and_then(Value::as_array)
    else {
        return if c.get("registration").is_none()
            && type_ == workbus_schemas::registration::names::condition::HUB_ACCEPTED
        {
            "true".into()
        } else {
            String::new()
        };
    };
    conditions
        .iter()
        .find(|x| x.get("type").and_then(Value::as_str) == Some(type_))
        .and_then(|x| x.get("status").and_then(Value::as_str))
        .map(|st| {
            if type_ == workbus_schemas::registration::names::condition::HUB_ACCEPTED {
                st.to_lowercase()
            } else {
                st.to_string()
            }
        })
        .unwrap_or_default()
}

/// `get clusters`: NAME, HUB ACCEPTED, JOINED, AVAILABLE, AGE (as `kubectl get
/// managedclusters`).
pub fn clusters_table(items: &[Value], now: DateTime<Utc>) -> String {
    use workbus_schemas::registration::names::condition;
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            let accepted = match c.pointer("/registration/managedCluster/spec/hubAcceptsClient") {
                Some(Value::Bool(b)) => b.to_string(),
                _ => cluster_condition(c, condition::HUB_ACCEPTED),
            };
            vec![
                s(c, &["name"]).to_string(),
                accepted,
                cluster_condition(c, condition::JOINED),
                cluster_condition(c, condition::AVAILABLE),
                age(c.get("created").and_then(Value::as_str), now),
            ]
        })
        .collect();
    table(
        &["NAME", "HUB ACCEPTED", "JOINED", "AVAILABLE", "AGE"],
        &rows,
    )
}

/// `get clustersets`: NAME, SELECTOR, CLUSTERS.
pub fn clustersets_table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|set| {
            let selector = match set
                .pointer("/selector/selectorType")
                .and_then(Value::as_str)
            {
                Some("LabelSelector") => {
                    let labels = label_list(set.pointer("/selector/matchLabels"));
                    if labels.is_empty() {
                        "<all clusters>".to_string()
                    } else {
                        labels
                    }
                }
                _ => "ExclusiveClusterSetLabel".to_string(),
            };
            let members = set
                .get("clusters")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![s(set, &["name"]).to_string(), selector, members.to_string()]
        })
        .collect();
    table(&["NAME", "SELECTOR", "CLUSTERS"], &rows)
}

/// A label map as `k=v,k=v` (empty when there is none).
fn label_list(labels: Option<&Value>) -> String {
    labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `describe cluster`: a human summary (acceptance, conditions, taints, claims, lease).
pub fn describe_cluster(c: &Value, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let mc = c.pointer("/registration/managedCluster");
    out.push_str(&format!("Name:          {}\n", s(c, &["name"])));
    let labels = label_list(c.get("labels"));
    out.push_str(&format!(
        "Labels:        {}\n",
        if labels.is_empty() { "<none>" } else { &labels }
    ));
    out.push_str(&format!(
        "Age:           {}\n",
        age(c.get("created").and_then(Value::as_str), now)
    ));
    let Some(mc) = mc else {
        out.push_str("Registration:  created over REST (accepted; no lease)\n");
        return out;
    };
    let denied = c.pointer("/registration/denied").and_then(Value::as_bool) == Some(true);
    out.push_str(&format!(
        "Hub accepts:   {}{}\n",
        mc.pointer("/spec/hubAcceptsClient")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        if denied { " (denied)" } else { "" }
    ));
    out.push_str(&format!(
        "Lease:         {}s\n",
        mc.pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(60)
    ));
    if let Some(renew) = c
        .pointer("/registration/lease/spec/renewTime")
        .and_then(Value::as_str)
    {
        out.push_str(&format!(
            "Last renewal:  {renew} ({} ago)\n",
            age(Some(renew), now)
        ));
    }
    if let Some(v) = mc
        .pointer("/status/version/kubernetes")
        .and_then(Value::as_str)
    {
        out.push_str(&format!("Kubernetes:    {v}\n"));
    }
    out.push_str("Conditions:\n");
    for cond in mc
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  {:<36} {:<8} {} ({})\n",
            s(cond, &["type"]),
            s(cond, &["status"]),
            s(cond, &["reason"]),
            s(cond, &["message"])
        ));
    }
    let taints: Vec<String> = mc
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", s(t, &["key"]), s(t, &["effect"])))
        .collect();
    out.push_str(&format!(
        "Taints:        {}\n",
        if taints.is_empty() {
            "<none>".to_string()
        } else {
            taints.join(", ")
        }
    ));
    for claim in mc
        .pointer("/status/clusterClaims")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "Claim:         {}={}\n",
            s(claim, &["name"]),
            s(claim, &["value"])
        ));
    }
    out
}

/// `describe work`: a human summary.
pub fn describe_work(w: &Value, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let ann = |k: &str| {
        w.pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let kv = |m: Option<&Value>| {
        m.and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !k.starts_with(crate::work_view::HUB_ANNOTATION_PREFIX))
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
            .map(|v| v.join("\n               "))
            .unwrap_or_else(|| "<none>".into())
    };
    let _ = writeln!(out, "Name:          {}", s(w, &["metadata", "name"]));
    let _ = writeln!(out, "Namespace:     {}", s(w, &["metadata", "namespace"]));
    let _ = writeln!(out, "UID:           {}", s(w, &["metadata", "uid"]));
    let _ = writeln!(
        out,
        "Generation:    {}",
        w.pointer("/metadata/generation")
            .map(|g| g.to_string())
            .unwrap_or_default()
    );
    let _ = writeln!(out, "Labels:        {}", kv(w.pointer("/metadata/labels")));
    let _ = writeln!(
        out,
        "Annotations:   {}",
        kv(w.pointer("/metadata/annotations"))
    );
    let created = s(w, &["metadata", "creationTimestamp"]);
    let _ = writeln!(
        out,
        "Created:       {created} ({} ago)",
        age(Some(created), now)
    );
    let deleting = s(w, &["metadata", "deletionTimestamp"]);
    let _ = writeln!(
        out,
        "Deleting:      {}",
        if deleting.is_empty() {
            "no".to_string()
        } else {
            format!("since {deleting}")
        }
    );
    match ann(crate::work_view::ANNOTATION_STATUS_RECEIVED) {
        Some(t) => {
            let _ = writeln!(
                out,
                "Last status:   {t} ({} ago), for generation {}",
                age(Some(&t), now),
                ann(crate::work_view::ANNOTATION_STATUS_GENERATION).unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "Last status:   <none yet>");
        }
    }
    let manifests = w
        .pointer("/spec/workload/manifests")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    let _ = writeln!(out, "Manifests:     {manifests}");
    let _ = writeln!(out, "Conditions:");
    let conds = w
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if conds.is_empty() {
        let _ = writeln!(out, "  <none>");
    } else {
        let rows: Vec<Vec<String>> = conds
            .iter()
            .map(|c| {
                vec![
                    s(c, &["type"]).into(),
                    s(c, &["status"]).into(),
                    s(c, &["reason"]).into(),
                    s(c, &["lastTransitionTime"]).into(),
                    s(c, &["message"]).into(),
                ]
            })
            .collect();
        for line in table(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "Resource status:");
    let res = w
        .pointer("/status/resourceStatus/manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if res.is_empty() {
        let _ = writeln!(out, "  <none>");
    } else {
        let rows: Vec<Vec<String>> = res
            .iter()
            .map(|m| {
                let meta = m.get("resourceMeta").cloned().unwrap_or(Value::Null);
                let name = namespaced_name(&meta);
                let conds = m
                    .get("conditions")
                    .and_then(Value::as_array)
                    .map(|cs| {
                        cs.iter()
                            .map(|c| format!("{}={}", s(c, &["type"]), s(c, &["status"])))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                let feedback = m
                    .pointer("/statusFeedback/values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .map(|v| {
                                let fv = v.get("fieldValue").cloned().unwrap_or(Value::Null);
                                let val = ["integer", "string", "boolean", "jsonRaw"]
                                    .iter()
                                    .find_map(|k| fv.get(k))
                                    .map(|x| match x {
                                        Value::String(s) => s.clone(),
                                        o => o.to_string(),
                                    })
                                    .unwrap_or_default();
                                format!("{}={val}", s(v, &["name"]))
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                vec![
                    meta.get("ordinal")
                        .map(|o| o.to_string())
                        .unwrap_or_default(),
                    s(&meta, &["kind"]).to_string(),
                    name,
                    conds,
                    feedback,
                ]
            })
            .collect();
        for line in table(&["#", "KIND", "NAME", "CONDITIONS", "FEEDBACK"], &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
        failed_manifests(&res, &mut out);
    }
    out
}

/// A manifest's `namespace/name` (`name` when cluster-scoped), from its `resourceMeta`.
fn namespaced_name(meta: &Value) -> String {
    let ns = s(meta, &["namespace"]);
    if ns.is_empty() {
        s(meta, &["name"]).to_string()
    } else {
        format!("{ns}/{}", s(meta, &["name"]))
    }
}

/// `describe work`'s "Failed manifests" section: every manifest condition whose status
/// is `False`, with its reason and message (why the agent could not apply it).
fn failed_manifests(manifests: &[Value], out: &mut String) {
    let mut lines = Vec::new();
    for m in manifests {
        let meta = m.get("resourceMeta").cloned().unwrap_or(Value::Null);
        let name = namespaced_name(&meta);
        for c in m
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| s(c, &["status"]) == "False")
        {
            lines.push(format!(
                "  #{} {} {name}: {}=False ({}): {}",
                meta.get("ordinal")
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                s(&meta, &["kind"]),
                s(c, &["type"]),
                s(c, &["reason"]),
                s(c, &["message"])
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "Failed manifests:");
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn describe_work_names_each_failed_manifest_and_why() {
        let work = json!({
            "metadata": {"name": "web", "namespace": "c1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"workload": {"manifests": [{}, {}]}},
            "status": {"resourceStatus": {"manifests": [
                {"resourceMeta": {"ordinal": 0, "kind": "ConfigMap", "name": "ok", "namespace": "default"},
                 "conditions": [{"type": "Applied", "status": "True", "reason": "AppliedManifestComplete"}]},
                {"resourceMeta": {"ordinal": 1, "kind": "Deployment", "name": "bad", "namespace": "apps"},
                 "conditions": [{"type": "Applied", "status": "False", "reason": "AppliedManifestFailed",
                                 "message": "namespaces \"apps\" not found"}]}
            ]}}
        });
        let text = describe_work(&work, Utc::now());
        assert!(text.contains("Failed manifests:\n"), "{text}");
        assert!(
            text.contains(
                "  #1 Deployment apps/bad: Applied=False (AppliedManifestFailed): namespaces \"apps\" not found\n"
            ),
            "{text}"
        );
        assert!(!text.contains("ok: Applied"), "{text}");
    }
}
