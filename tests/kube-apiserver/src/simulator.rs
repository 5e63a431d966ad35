//! # The status simulator: what the workload controllers and the kubelet would write
//!
//! No pods run here, so the status of workloads is written by this simulator, through
//! the status subresource and with the managers a real cluster shows
//! (`kube-controller-manager`, `kubelet`), in the shapes of the real controllers:
//!
//! | kind | progressing | ready | failed |
//! |---|---|---|---|
//! | Deployment | `updatedReplicas`, `unavailableReplicas`; `Available=False` (`MinimumReplicasUnavailable`), `Progressing=True` (`ReplicaSetUpdated`) | all replica counts = `spec.replicas`; `Available=True` (`MinimumReplicasAvailable`), `Progressing=True` (`NewReplicaSetAvailable`) | `Progressing=False` (`ProgressDeadlineExceeded`) |
//! | ReplicaSet | `replicas`, no ready | `replicas`, `readyReplicas`, `availableReplicas`, `fullyLabeledReplicas` | as progressing |
//! | DaemonSet | `desiredNumberScheduled` = nodes, `numberUnavailable` | every count = nodes | as progressing |
//! | StatefulSet | `replicas`, `currentReplicas`, no ready | every count = `spec.replicas`, revisions | as progressing |
//! | Job | `active` = `parallelism`, `startTime` | `succeeded` = `completions`, `completionTime`, `SuccessCriteriaMet` + `Complete` | `failed`, `FailureTarget` + `Failed` (`BackoffLimitExceeded`) |
//! | Pod | `Pending`, `PodScheduled`, containers waiting (`ContainerCreating`) | `Running`, `Ready`, `ContainersReady`, containers running | `Failed`, containers terminated (`Error`) |
//!
//! `observedGeneration` follows `metadata.generation`. With [`Readiness::Immediate`]
//! everything is ready as soon as it is written; with [`Readiness::Manual`] it stays
//! progressing until the test moves it (`RunningServer::simulator`). Conditions keep
//! their transition times while their status does not change.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::cluster::Cluster;
use crate::config::Readiness;
use crate::meta;
use crate::registry::GroupResource;

/// Where a simulated workload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Progressing,
    Ready,
    Failed,
}

/// Per-object phases set by tests (by uid).
#[derive(Debug, Default)]
pub struct SimState {
    pub phases: HashMap<String, Phase>,
    /// Per Deployment (uid): the pod template hash last seen and its revision.
    pub revisions: HashMap<String, (String, u64)>,
}

/// The annotation the Deployment controller keeps on a Deployment.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

const SIMULATED: &[(&str, &str)] = &[
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
    ("batch", "jobs"),
    ("", "pods"),
];

/// The characters of Kubernetes' `rand.SafeEncodeString`.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A stable hash of a pod template, like `pod-template-hash` / controller revisions.
pub fn template_hash(template: &Value, len: usize) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    digest
        .iter()
        .take(len)
        .map(|b| SAFE[*b as usize % SAFE.len()] as char)
        .collect()
}

/// A condition, keeping the old one's times when its status did not change.
fn condition(
    old: &Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
    update_time: bool,
) -> Value {
    let prev = old["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let same = prev.is_some_and(|p| p["status"] == status);
    let transition = match prev {
        Some(p) if same => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut c = json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    if update_time {
        let unchanged =
            prev.is_some_and(|p| same && p["reason"] == reason && p["message"] == message);
        c["lastUpdateTime"] = match prev {
            Some(p) if unchanged => p["lastUpdateTime"].clone(),
            _ => json!(now),
        };
    }
    c
}

fn put_nonzero(m: &mut Map<String, Value>, k: &str, n: i64) {
    if n != 0 {
        m.insert(k.into(), json!(n));
    }
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn deployment(obj: &Value, old: &Value, phase: Phase, now: &str) -> Value {
    let r = replicas(obj);
    let rs = format!(
        "{}-{}",
        meta::name(obj),
        template_hash(&obj["spec"]["template"], 10)
    );
    let mut s = Map::new();
    s.insert("observedGeneration".into(), json!(meta::generation(obj)));
    put_nonzero(&mut s, "replicas", r);
    put_nonzero(&mut s, "updatedReplicas", r);
    let (available, progressing) = match phase {
        Phase::Ready => {
            put_nonzero(&mut s, "readyReplicas", r);
            put_nonzero(&mut s, "availableReplicas", r);
            (
                (
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                ),
                (
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{rs}\" has successfully progressed."),
                ),
            )
        }
        Phase::Progressing | Phase::Failed => {
            put_nonzero(&mut s, "unavailableReplicas", r);
            let unavailable = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            );
            if phase == Phase::Failed {
                (
                    unavailable,
                    (
                        "False",
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet \"{rs}\" has timed out progressing."),
                    ),
                )
            } else {
                (
                    unavailable,
                    (
                        "True",
                        "ReplicaSetUpdated",
                        format!("ReplicaSet \"{rs}\" is progressing."),
                    ),
                )
            }
        }
    };
    let conditions = vec![
        condition(
            old,
            "Available",
            available.0,
            available.1,
            available.2,
            now,
            true,
        ),
        condition(
            old,
            "Progressing",
            progressing.0,
            progressing.1,
            &progressing.2,
            now,
            true,
        ),
    ];
    s.insert("conditions".into(), Value::Array(conditions));
    Value::Object(s)
}

fn replicaset(obj: &Value, phase: Phase) -> Value {
    let r = replicas(obj);
    let mut s = Map::new();
    s.insert("replicas".into(), json!(r));
    s.insert("observedGeneration".into(), json!(meta::generation(obj)));
    put_nonzero(&mut s, "fullyLabeledReplicas", r);
    if phase == Phase::Ready {
        put_nonzero(&mut s, "readyReplicas", r);
        put_nonzero(&mut s, "availableReplicas", r);
    }
    Value::Object(s)
}

fn daemonset(obj: &Value, phase: Phase, nodes: i64) -> Value {
    let mut s = Map::new();
    s.insert("currentNumberScheduled".into(), json!(nodes));
    s.insert("desiredNumberScheduled".into(), json!(nodes));
    s.insert("numberMisscheduled".into(), json!(0));
    s.insert("observedGeneration".into(), json!(meta::generation(obj)));
    put_nonzero(&mut s, "updatedNumberScheduled", nodes);
    if phase == Phase::Ready {
        s.insert("numberReady".into(), json!(nodes));
        put_nonzero(&mut s, "numberAvailable", nodes);
    } else {
        s.insert("numberReady".into(), json!(0));
        put_nonzero(&mut s, "numberUnavailable", nodes);
    }
    Value::Object(s)
}

fn statefulset(obj: &Value, phase: Phase) -> Value {
    let r = replicas(obj);
    let rev = format!(
        "{}-{}",
        meta::name(obj),
        template_hash(&obj["spec"]["template"], 10)
    );
    let ready = if phase == Phase::Ready { r } else { 0 };
    let mut s = Map::new();
    s.insert("observedGeneration".into(), json!(meta::generation(obj)));
    s.insert("replicas".into(), json!(r));
    s.insert("availableReplicas".into(), json!(ready));
    put_nonzero(&mut s, "readyReplicas", ready);
    put_nonzero(&mut s, "currentReplicas", r);
    put_nonzero(&mut s, "updatedReplicas", r);
    s.insert("currentRevision".into(), json!(rev));
    s.insert("updateRevision".into(), json!(rev));
    s.insert("collisionCount".into(), json!(0));
    Value::Object(s)
}

/// A finished Job's two conditions (the interim `…Target`/`SuccessCriteriaMet` one and
/// the final one), with probe times.
fn terminal_conditions(
    old: &Value,
    kinds: [&str; 2],
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    Value::Array(
        kinds
            .iter()
            .map(|k| {
                let mut c = condition(old, k, "True", reason, message, now, false);
                c["lastProbeTime"] = c["lastTransitionTime"].clone();
                c
            })
            .collect(),
    )
}

fn job(obj: &Value, old: &Value, phase: Phase, now: &str) -> Value {
    let start = old["startTime"].as_str().unwrap_or(now).to_string();
    let mut s = Map::new();
    s.insert("startTime".into(), json!(start));
    s.insert("ready".into(), json!(0));
    s.insert("terminating".into(), json!(0));
    s.insert("uncountedTerminatedPods".into(), json!({}));
    match phase {
        Phase::Progressing => {
            put_nonzero(
                &mut s,
                "active",
                obj["spec"]["parallelism"].as_i64().unwrap_or(1),
            );
        }
        Phase::Ready => {
            let done = old["completionTime"].as_str().unwrap_or(now).to_string();
            s.insert("completionTime".into(), json!(done));
            put_nonzero(
                &mut s,
                "succeeded",
                obj["spec"]["completions"].as_i64().unwrap_or(1),
            );
            let conditions = terminal_conditions(
                old,
                ["SuccessCriteriaMet", "Complete"],
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            );
            s.insert("conditions".into(), conditions);
        }
        Phase::Failed => {
            put_nonzero(
                &mut s,
                "failed",
                obj["spec"]["backoffLimit"].as_i64().unwrap_or(6) + 1,
            );
            let conditions = terminal_conditions(
                old,
                ["FailureTarget", "Failed"],
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                now,
            );
            s.insert("conditions".into(), conditions);
        }
    }
    Value::Object(s)
}

fn pod(obj: &Value, old: &Value, phase: Phase, now: &str) -> Value {
    let start = old["startTime"].as_str().unwrap_or(now).to_string();
    let ready = if phase == Phase::Ready {
        "True"
    } else {
        "False"
    };
    let started = if phase == Phase::Progressing {
        "False"
    } else {
        "True"
    };
    let not_ready = if phase == Phase::Ready {
        ""
    } else {
        "ContainersNotReady"
    };
    let mut conditions: Vec<Value> = [
        ("PodReadyToStartContainers", started, ""),
        ("Initialized", "True", ""),
        ("Ready", ready, not_ready),
        ("ContainersReady", ready, not_ready),
        ("PodScheduled", "True", ""),
    ]
    .iter()
    .map(|(kind, status, reason)| condition(old, kind, status, reason, "", now, false))
    .collect();
    for c in &mut conditions {
        let m = c.as_object_mut().expect("a condition is an object");
        for f in ["reason", "message"] {
            if m.get(f).and_then(Value::as_str) == Some("") {
                m.remove(f);
            }
        }
    }
    let containers: Vec<Value> = obj["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or("");
            let image = c["image"].as_str().unwrap_or("");
            let id = template_hash(&json!([meta::uid(obj), name]), 32);
            let prev = old["containerStatuses"]
                .as_array()
                .and_then(|cs| cs.iter().find(|x| x["name"] == name));
            let state = match phase {
                Phase::Ready => {
                    let started = prev
                        .and_then(|p| p["state"]["running"]["startedAt"].as_str())
                        .unwrap_or(now);
                    json!({"running": {"startedAt": started}})
                }
                Phase::Progressing => json!({"waiting": {"reason": "ContainerCreating"}}),
                Phase::Failed => json!({"terminated": {"exitCode": 1, "reason": "Error",
                                        "startedAt": start, "finishedAt": now,
                                        "containerID": format!("containerd://{id}")}}),
            };
            let mut s = json!({
                "name": name,
                "image": image,
                "imageID": "",
                "ready": phase == Phase::Ready,
                "restartCount": 0,
                "started": phase == Phase::Ready,
                "state": state,
                "lastState": {},
            });
            if phase != Phase::Progressing {
                s["containerID"] = json!(format!("containerd://{id}"));
            }
            s
        })
        .collect();
    let pod_phase = match phase {
        Phase::Progressing => "Pending",
        Phase::Ready => "Running",
        Phase::Failed => "Failed",
    };
    let mut s = json!({
        "phase": pod_phase,
        "conditions": conditions,
        "containerStatuses": containers,
        "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}],
        "startTime": start,
        "qosClass": old["qosClass"].as_str().unwrap_or("BestEffort"),
    });
    if phase != Phase::Progressing {
        let ip = format!(
            "10.244.0.{}",
            2 + (template_hash(&json!(meta::uid(obj)), 1).as_bytes()[0] % 200)
        );
        s["podIP"] = json!(ip);
        s["podIPs"] = json!([{"ip": ip}]);
    }
    s
}

impl Cluster {
    fn phase_of(&self, obj: &Value) -> Phase {
        if let Some(p) = self.sim.phases.get(meta::uid(obj)) {
            return *p;
        }
        match self.config.readiness {
            Readiness::Immediate => Phase::Ready,
            Readiness::Manual => Phase::Progressing,
        }
    }

    /// One pass of the simulator; true if it wrote a status.
    pub fn simulate(&mut self) -> bool {
        let now = meta::now();
        let mut changed = false;
        for (group, resource) in SIMULATED {
            let gr = GroupResource::new(group, resource);
            let Some(rt) = self.store.registry.find_gr(&gr) else {
                continue;
            };
            let objects: Vec<Value> = self
                .store
                .list(&gr, None)
                .filter(|o| !meta::is_deleting(o))
                .cloned()
                .collect();
            for obj in objects {
                let phase = self.phase_of(&obj);
                let old = obj.get("status").cloned().unwrap_or_else(|| json!({}));
                let (desired, manager) = match rt.kind.as_str() {
                    "Deployment" => (
                        deployment(&obj, &old, phase, &now),
                        "kube-controller-manager",
                    ),
                    "ReplicaSet" => (replicaset(&obj, phase), "kube-controller-manager"),
                    "DaemonSet" => (
                        daemonset(&obj, phase, i64::from(self.config.nodes)),
                        "kube-controller-manager",
                    ),
                    "StatefulSet" => (statefulset(&obj, phase), "kube-controller-manager"),
                    "Job" => (job(&obj, &old, phase, &now), "kube-controller-manager"),
                    "Pod" => (pod(&obj, &old, phase, &now), "kubelet"),
                    _ => continue,
                };
                let mut new = obj.clone();
                new["status"] = desired;
                if rt.kind == "Deployment" {
                    let hash = template_hash(&obj["spec"]["template"], 10);
                    let entry = self
                        .sim
                        .revisions
                        .entry(meta::uid(&obj).to_string())
                        .or_insert_with(|| (hash.clone(), 1));
                    if entry.0 != hash {
                        *entry = (hash, entry.1 + 1);
                    }
                    let revision = entry.1.to_string();
                    let m = meta::metadata_mut(&mut new);
                    let annotations = m.entry("annotations").or_insert_with(|| json!({}));
                    if let Some(a) = annotations.as_object_mut() {
                        a.insert(REVISION_ANNOTATION.into(), json!(revision));
                    }
                }
                if new != obj {
                    let ctx = crate::cluster::WriteCtx::controller(
                        manager,
                        &rt.storage_api_version(),
                        "status",
                    );
                    changed |= self
                        .update_object(
                            &rt,
                            &obj,
                            new,
                            Some("status"),
                            &ctx,
                            crate::cluster::ManagedMode::Update,
                        )
                        .is_ok();
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_shapes() {
        let d = json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3, "template": {}}});
        let ready = deployment(&d, &json!({}), Phase::Ready, "t0");
        assert_eq!(ready["observedGeneration"], 2);
        assert_eq!(ready["availableReplicas"], 3);
        assert_eq!(ready["conditions"][0]["reason"], "MinimumReplicasAvailable");
        // Same status again: times kept.
        let again = deployment(&d, &ready, Phase::Ready, "t1");
        assert_eq!(again, ready);
        let zero = deployment(
            &json!({"metadata": {"name": "z"}, "spec": {"replicas": 0}}),
            &json!({}),
            Phase::Ready,
            "t",
        );
        assert!(zero.get("replicas").is_none());
        let progressing = deployment(&d, &ready, Phase::Progressing, "t2");
        assert_eq!(progressing["conditions"][0]["lastTransitionTime"], "t2");
        assert_eq!(progressing["unavailableReplicas"], 3);
    }

    #[test]
    fn hashes_are_safe_and_stable() {
        let h = template_hash(&json!({"a": 1}), 10);
        assert_eq!(h.len(), 10);
        assert_eq!(h, template_hash(&json!({"a": 1}), 10));
        assert!(h.bytes().all(|b| SAFE.contains(&b)));
    }
}
