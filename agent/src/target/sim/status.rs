//! What the simulated cluster's "controllers" write into `.status`: Deployments,
//! StatefulSets, ReplicaSets, DaemonSets, Jobs, Pods and Namespaces, with the field names
//! and omission rules of the Kubernetes types, so status feedback rules see what they
//! would see on a real cluster.
//!
//! The simulation is one node and instant scheduling: a workload is "not ready yet" until
//! `ready_after` has passed since its last spec change, then fully ready. Every timestamp
//! is derived from that change time (never from "now"), so reading an object twice gives
//! identical JSON and status stays stable between agent refreshes.

use serde_json::{Map, Value, json};

/// Unix milliseconds to the RFC 3339 seconds form the API server writes.
pub(super) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Whether the kind gets a simulated status that changes with time (and so may make
/// the agent's status change without a write).
pub(super) fn progresses(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment" | "StatefulSet" | "ReplicaSet" | "DaemonSet" | "Job" | "Pod"
    )
}

/// A count: `i64` from JSON, with Kubernetes' default when absent or malformed.
fn count(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default).max(0)
}

/// The status the controllers would have written by now. `changed_ms` is the time of
/// the last spec change, `ready_ms` when the workload became (or becomes) ready;
/// `ready` says whether that time has passed.
pub(super) fn simulated(
    kind: &str,
    obj: &Value,
    changed_ms: i64,
    ready_ms: i64,
    ready: bool,
) -> Option<Value> {
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
    let mut status = Map::new();
    // Fields tagged `omitempty` in the Go types vanish when zero.
    let put_nonzero = |status: &mut Map<String, Value>, k: &str, n: i64| {
        if n != 0 {
            status.insert(k.to_string(), json!(n));
        }
    };
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            let replicas = count(&obj["spec"]["replicas"], 1);
            status.insert("observedGeneration".into(), json!(generation));
            put_nonzero(&mut status, "replicas", replicas);
            if kind != "ReplicaSet" {
                put_nonzero(&mut status, "updatedReplicas", replicas);
            }
            if ready {
                put_nonzero(&mut status, "readyReplicas", replicas);
                put_nonzero(&mut status, "availableReplicas", replicas);
            } else if kind == "Deployment" {
                put_nonzero(&mut status, "unavailableReplicas", replicas);
            }
            if kind == "StatefulSet" {
                put_nonzero(&mut status, "currentReplicas", replicas);
            }
            if kind == "Deployment" {
                let (available, at) = if ready {
                    ("True", ready_ms)
                } else {
                    ("False", changed_ms)
                };
                let (reason, message) = if ready {
                    (
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                    )
                } else {
                    (
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                    )
                };
                let (p_reason, p_message) = if ready {
                    (
                        "NewReplicaSetAvailable",
                        "ReplicaSet has successfully progressed.",
                    )
                } else {
                    ("ReplicaSetUpdated", "ReplicaSet is progressing.")
                };
                status.insert(
                    "conditions".into(),
                    json!([
                        {"type": "Available", "status": available, "reason": reason, "message": message,
                         "lastUpdateTime": rfc3339(at), "lastTransitionTime": rfc3339(at)},
                        {"type": "Progressing", "status": "True", "reason": p_reason, "message": p_message,
                         "lastUpdateTime": rfc3339(at), "lastTransitionTime": rfc3339(changed_ms)}
                    ]),
                );
            }
        }
        "DaemonSet" => {
            // One simulated node; these four counts are not `omitempty` in the Go type.
            let ready_n = i64::from(ready);
            status.insert("currentNumberScheduled".into(), json!(1));
            status.insert("numberMisscheduled".into(), json!(0));
            status.insert("desiredNumberScheduled".into(), json!(1));
            status.insert("numberReady".into(), json!(ready_n));
            status.insert("observedGeneration".into(), json!(generation));
            put_nonzero(&mut status, "updatedNumberScheduled", 1);
            put_nonzero(&mut status, "numberAvailable", ready_n);
            put_nonzero(&mut status, "numberUnavailable", 1 - ready_n);
        }
        "Job" => {
            let completions = count(&obj["spec"]["completions"], 1);
            status.insert("startTime".into(), json!(rfc3339(changed_ms)));
            if ready {
                status.insert("completionTime".into(), json!(rfc3339(ready_ms)));
                put_nonzero(&mut status, "succeeded", completions);
                status.insert("ready".into(), json!(0));
                status.insert(
                    "conditions".into(),
                    json!([
                        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                         "message": "Reached expected number of succeeded pods",
                         "lastProbeTime": rfc3339(ready_ms), "lastTransitionTime": rfc3339(ready_ms)},
                        {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                         "message": "Reached expected number of succeeded pods",
                         "lastProbeTime": rfc3339(ready_ms), "lastTransitionTime": rfc3339(ready_ms)}
                    ]),
                );
            } else {
                put_nonzero(&mut status, "active", 1);
                status.insert("ready".into(), json!(0));
            }
        }
        "Pod" => {
            let (phase, ready_status, at) = if ready {
                ("Running", "True", ready_ms)
            } else {
                ("Pending", "False", changed_ms)
            };
            status.insert("phase".into(), json!(phase));
            status.insert(
                "conditions".into(),
                json!([
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(changed_ms)},
                    {"type": "Ready", "status": ready_status, "lastTransitionTime": rfc3339(at)}
                ]),
            );
            if ready {
                status.insert("startTime".into(), json!(rfc3339(changed_ms)));
            }
        }
        "Namespace" => {
            let phase = if obj["metadata"].get("deletionTimestamp").is_some() {
                "Terminating"
            } else {
                "Active"
            };
            status.insert("phase".into(), json!(phase));
        }
        _ => return None,
    }
    Some(Value::Object(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_fields_follow_readiness() {
        let d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}});
        let before = simulated("Deployment", &d, 0, 1000, false).unwrap();
        assert_eq!(before["replicas"], 3);
        assert!(before.get("readyReplicas").is_none(), "zero counts omitted");
        assert_eq!(before["unavailableReplicas"], 3);
        let after = simulated("Deployment", &d, 0, 1000, true).unwrap();
        assert_eq!(after["readyReplicas"], 3);
        assert_eq!(after["availableReplicas"], 3);
        assert_eq!(after["observedGeneration"], 2);
        assert_eq!(
            after["conditions"][0]["lastTransitionTime"],
            "1970-01-01T00:00:01Z"
        );
    }

    #[test]
    fn daemonset_job_pod() {
        let ds = simulated("DaemonSet", &json!({}), 0, 0, false).unwrap();
        assert_eq!(ds["numberReady"], 0, "not omitempty in the Go type");
        assert_eq!(ds["desiredNumberScheduled"], 1);
        let job = simulated("Job", &json!({"spec": {"completions": 2}}), 0, 5, true).unwrap();
        assert_eq!(job["succeeded"], 2);
        assert_eq!(job["conditions"][1]["type"], "Complete");
        let pod = simulated("Pod", &json!({}), 0, 0, true).unwrap();
        assert_eq!(pod["phase"], "Running");
        assert!(simulated("ConfigMap", &json!({}), 0, 0, true).is_none());
        // Malformed spec values never panic.
        assert!(
            simulated(
                "Deployment",
                &json!({"spec": {"replicas": "x"}}),
                0,
                0,
                true
            )
            .is_some()
        );
    }
}
