//! The **simulated cluster**: an in-memory object store that answers like a Kubernetes
//! API server on what the agent uses, for demos, scale runs and tests. It is a
//! stand-in, clearly named as one; nothing here talks to Kubernetes.
//!
//! What it does like the real thing: knows the common kinds (resource names, namespaced
//! or cluster-scoped) and refuses others with the API server's message; assigns UIDs,
//! resourceVersions, generations and creation timestamps; keeps owner references; only
//! bumps `generation` when the spec changes; honours UID preconditions on delete.
//! What it simulates: Deployments, DaemonSets, StatefulSets, ReplicaSets, Jobs and Pods
//! progress to ready/complete `ready_after` their last spec change, with the status
//! fields controllers write. It can be told to fail a manifest, counts writes per object
//! (so tests can assert "no duplicate applies"), and can keep a JSON snapshot on disk so
//! an agent process restarted with the same data dir finds its objects again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{ApplyMode, DeleteResult, ObjectRef, Owner, ResourceMapping, Target, TargetError};

/// Settings of a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Time from a workload's last spec change until it reports ready.
    pub ready_after: Duration,
    /// Where to keep a JSON snapshot of the objects (`None`: memory only).
    pub snapshot: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            ready_after: Duration::from_secs(2),
            snapshot: None,
        }
    }
}

/// (group, version, kind, plural, namespaced) of the kinds the simulated API serves.
const KINDS: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "Pod", "pods", true),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("", "v1", "PersistentVolume", "persistentvolumes", false),
    ("", "v1", "LimitRange", "limitranges", true),
    ("", "v1", "ResourceQuota", "resourcequotas", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimObject {
    /// The stored object (metadata + desired fields; status is computed on read).
    object: Value,
    kind: String,
    /// Unix ms of the last spec change (drives readiness).
    changed_at_ms: i64,
    /// Writes through `apply`.
    applies: u64,
}

#[derive(Debug, Clone)]
struct Failure {
    kind: String,
    namespace: String,
    name: String,
    message: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    objects: BTreeMap<String, SimObject>,
    counter: u64,
    #[serde(skip)]
    failures: Vec<Failure>,
}

/// The simulated cluster. Cheap to share (`Arc`); all methods take `&self`.
#[derive(Debug)]
pub struct SimulatedCluster {
    config: SimConfig,
    state: Mutex<State>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn key(at: &ObjectRef) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        at.group, at.version, at.resource, at.namespace, at.name
    )
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

impl SimulatedCluster {
    /// A simulated cluster; loads its snapshot if one is configured and present.
    pub fn new(config: SimConfig) -> SimulatedCluster {
        let state = config
            .snapshot
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        SimulatedCluster {
            config,
            state: Mutex::new(state),
        }
    }

    /// Makes every apply of the object with this kind, namespace and name fail with
    /// `message` (as if the API server rejected it).
    pub fn fail_manifest(&self, kind: &str, namespace: &str, name: &str, message: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.failures.push(Failure {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                message: message.into(),
            });
        }
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.failures.clear();
        }
    }

    /// The live object (with its simulated status), if it exists.
    pub fn object(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let at = ObjectRef {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let s = self.state.lock().ok()?;
        s.objects.get(&key(&at)).map(|o| self.live(o))
    }

    /// How many times the object was written through `apply`.
    pub fn apply_count(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> u64 {
        let k = format!("{group}/{version}/{resource}/{namespace}/{name}");
        self.state
            .lock()
            .ok()
            .and_then(|s| s.objects.get(&k).map(|o| o.applies))
            .unwrap_or(0)
    }

    /// Deletes an object behind the agent's back (someone ran `kubectl delete`).
    pub fn delete_out_of_band(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let k = format!("{group}/{version}/{resource}/{namespace}/{name}");
        let removed = self
            .state
            .lock()
            .map(|mut s| s.objects.remove(&k).is_some())
            .unwrap_or(false);
        self.save();
        removed
    }

    /// Number of objects stored.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.objects.len()).unwrap_or(0)
    }

    /// True when no object is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn save(&self) {
        let Some(path) = &self.config.snapshot else {
            return;
        };
        let Ok(bytes) = self.state.lock().map(|s| serde_json::to_vec(&*s)) else {
            return;
        };
        let Ok(bytes) = bytes else { return };
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }

    fn ready(&self, o: &SimObject) -> bool {
        now_ms() - o.changed_at_ms >= self.config.ready_after.as_millis() as i64
    }

    /// The object as read from the API: stored fields plus the simulated status.
    fn live(&self, o: &SimObject) -> Value {
        let mut v = o.object.clone();
        if let Some(status) = simulated_status(&o.kind, &v, self.ready(o))
            && let Some(map) = v.as_object_mut()
        {
            map.insert("status".into(), status);
        }
        v
    }
}

/// The status controllers would have written by now.
fn simulated_status(kind: &str, obj: &Value, ready: bool) -> Option<Value> {
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    let now = now_rfc3339();
    let mut status = Map::new();
    let mut put = |k: &str, v: Value| {
        // Kubernetes omits zero counts.
        if v != json!(0) {
            status.insert(k.to_string(), v);
        }
    };
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            put("observedGeneration", json!(generation));
            put("replicas", json!(replicas));
            put("updatedReplicas", json!(replicas));
            if ready {
                put("readyReplicas", json!(replicas));
                put("availableReplicas", json!(replicas));
                if kind == "Deployment" {
                    put(
                        "conditions",
                        json!([
                            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                             "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                             "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now}
                        ]),
                    );
                }
            } else {
                put("unavailableReplicas", json!(replicas));
            }
        }
        "DaemonSet" => {
            put("observedGeneration", json!(generation));
            put("desiredNumberScheduled", json!(1));
            put("currentNumberScheduled", json!(1));
            put("updatedNumberScheduled", json!(1));
            put("numberReady", json!(if ready { 1 } else { 0 }));
            put("numberAvailable", json!(if ready { 1 } else { 0 }));
            put("numberUnavailable", json!(if ready { 0 } else { 1 }));
        }
        "Job" => {
            let completions = obj["spec"]["completions"].as_i64().unwrap_or(1);
            if ready {
                put("succeeded", json!(completions));
                put(
                    "conditions",
                    json!([{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]),
                );
            } else {
                put("active", json!(1));
            }
        }
        "Pod" => {
            put("phase", json!(if ready { "Running" } else { "Pending" }));
            put(
                "conditions",
                json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]),
            );
        }
        _ => return None,
    }
    Some(Value::Object(status))
}

/// The desired part of an object: everything but metadata and status.
fn desired(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "metadata" && k.as_str() != "status")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn merge_owner(meta: &mut Map<String, Value>, owner: Option<&Owner>) {
    let Some(owner) = owner else { return };
    let refs = meta
        .entry("ownerReferences")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = refs.as_array_mut()
        && !list.iter().any(|r| r["uid"] == owner.uid.as_str())
    {
        list.push(owner.reference());
    }
}

impl Target for SimulatedCluster {
    async fn resolve(&self, api_version: &str, kind: &str) -> Result<ResourceMapping, TargetError> {
        let (group, version) = split_api_version(api_version);
        KINDS
            .iter()
            .find(|(g, v, k, _, _)| *g == group && *v == version && *k == kind)
            .map(|(g, v, k, r, n)| ResourceMapping {
                group: g.to_string(),
                version: v.to_string(),
                kind: k.to_string(),
                resource: r.to_string(),
                namespaced: *n,
            })
            .ok_or_else(|| TargetError::UnknownKind(kind.to_string()))
    }

    async fn get(&self, at: &ObjectRef) -> Result<Option<Value>, TargetError> {
        let s = self
            .state
            .lock()
            .map_err(|_| TargetError::Unavailable("simulated cluster poisoned".into()))?;
        Ok(s.objects.get(&key(at)).map(|o| self.live(o)))
    }

    async fn apply(
        &self,
        at: &ObjectRef,
        object: &Value,
        mode: &ApplyMode,
        owner: Option<&Owner>,
    ) -> Result<Value, TargetError> {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let live = {
            let mut s = self
                .state
                .lock()
                .map_err(|_| TargetError::Unavailable("simulated cluster poisoned".into()))?;
            if let Some(f) = s
                .failures
                .iter()
                .find(|f| f.kind == kind && f.namespace == at.namespace && f.name == at.name)
            {
                return Err(TargetError::Invalid(f.message.clone()));
            }
            s.counter += 1;
            let rv = s.counter.to_string();
            let k = key(at);
            match s.objects.get_mut(&k) {
                Some(existing) => {
                    existing.applies += 1;
                    let mut changed = false;
                    if *mode != ApplyMode::CreateOnly
                        && desired(&existing.object) != desired(object)
                    {
                        let mut next = desired(object);
                        next.insert("metadata".into(), existing.object["metadata"].clone());
                        existing.object = Value::Object(next);
                        let meta = &mut existing.object["metadata"];
                        let generation = meta["generation"].as_i64().unwrap_or(1) + 1;
                        meta["generation"] = json!(generation);
                        existing.changed_at_ms = now_ms();
                        changed = true;
                    }
                    if let Some(meta) = existing.object["metadata"].as_object_mut() {
                        if *mode != ApplyMode::CreateOnly {
                            for field in ["labels", "annotations"] {
                                if let Some(Value::Object(want)) = object["metadata"].get(field) {
                                    let have = meta.entry(field).or_insert_with(|| json!({}));
                                    if let Some(have) = have.as_object_mut() {
                                        for (k, v) in want {
                                            if have.get(k) != Some(v) {
                                                have.insert(k.clone(), v.clone());
                                                changed = true;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        let before = meta.get("ownerReferences").cloned();
                        merge_owner(meta, owner);
                        changed |= before != meta.get("ownerReferences").cloned();
                        if changed {
                            meta.insert("resourceVersion".into(), json!(rv));
                        }
                    }
                    let o = existing.clone();
                    self.live(&o)
                }
                None => {
                    let mut obj = desired(object);
                    let mut meta = object["metadata"].as_object().cloned().unwrap_or_default();
                    for drop in [
                        "uid",
                        "resourceVersion",
                        "generation",
                        "creationTimestamp",
                        "managedFields",
                    ] {
                        meta.remove(drop);
                    }
                    meta.insert("name".into(), json!(at.name));
                    if at.namespace.is_empty() {
                        meta.remove("namespace");
                    } else {
                        meta.insert("namespace".into(), json!(at.namespace));
                    }
                    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                    meta.insert("resourceVersion".into(), json!(rv));
                    meta.insert("generation".into(), json!(1));
                    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
                    merge_owner(&mut meta, owner);
                    obj.insert("metadata".into(), Value::Object(meta));
                    let o = SimObject {
                        object: Value::Object(obj),
                        kind,
                        changed_at_ms: now_ms(),
                        applies: 1,
                    };
                    let live = self.live(&o);
                    s.objects.insert(k, o);
                    live
                }
            }
        };
        self.save();
        Ok(live)
    }

    async fn delete(&self, at: &ObjectRef, uid: Option<&str>) -> Result<DeleteResult, TargetError> {
        let result = {
            let mut s = self
                .state
                .lock()
                .map_err(|_| TargetError::Unavailable("simulated cluster poisoned".into()))?;
            let k = key(at);
            match s.objects.get(&k) {
                None => DeleteResult::Gone,
                Some(o) if uid.is_some_and(|u| o.object["metadata"]["uid"] != u) => {
                    DeleteResult::UidMismatch
                }
                Some(_) => {
                    s.objects.remove(&k);
                    DeleteResult::Gone
                }
            }
        };
        self.save();
        Ok(result)
    }

    async fn remove_owner(&self, at: &ObjectRef, owner_uid: &str) -> Result<(), TargetError> {
        {
            let mut s = self
                .state
                .lock()
                .map_err(|_| TargetError::Unavailable("simulated cluster poisoned".into()))?;
            if let Some(o) = s.objects.get_mut(&key(at))
                && let Some(list) = o.object["metadata"]["ownerReferences"].as_array_mut()
            {
                list.retain(|r| r["uid"] != owner_uid);
            }
        }
        self.save();
        Ok(())
    }

    fn next_change(&self, at: &ObjectRef) -> Option<Duration> {
        let s = self.state.lock().ok()?;
        let o = s.objects.get(&key(at))?;
        simulated_status(&o.kind, &o.object, false)?;
        let elapsed = (now_ms() - o.changed_at_ms).max(0) as u64;
        let ready = self.config.ready_after.as_millis() as u64;
        (elapsed < ready).then(|| Duration::from_millis(ready - elapsed + 10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(resource: &str, ns: &str, name: &str, group: &str) -> ObjectRef {
        ObjectRef {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn resolves_known_kinds_only() {
        let sim = SimulatedCluster::new(SimConfig::default());
        let m = sim.resolve("apps/v1", "Deployment").await.unwrap();
        assert_eq!(m.resource, "deployments");
        assert!(m.namespaced);
        assert!(!sim.resolve("v1", "Namespace").await.unwrap().namespaced);
        assert_eq!(
            sim.resolve("example.com/v1", "Widget")
                .await
                .unwrap_err()
                .to_string(),
            "the server doesn't have a resource type \"Widget\""
        );
    }

    #[tokio::test]
    async fn deployment_becomes_ready_and_generation_tracks_spec() {
        let sim = SimulatedCluster::new(SimConfig {
            ready_after: Duration::from_millis(0),
            snapshot: None,
        });
        let r = at("deployments", "default", "web", "apps");
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
        let live = sim.apply(&r, &d, &ApplyMode::Update, None).await.unwrap();
        assert_eq!(live["status"]["readyReplicas"], 2);
        assert_eq!(live["metadata"]["generation"], 1);
        let same = sim.apply(&r, &d, &ApplyMode::Update, None).await.unwrap();
        assert_eq!(same["metadata"]["generation"], 1);
        assert_eq!(
            same["metadata"]["resourceVersion"],
            live["metadata"]["resourceVersion"]
        );
        let mut d2 = d.clone();
        d2["spec"]["replicas"] = json!(3);
        let changed = sim.apply(&r, &d2, &ApplyMode::Update, None).await.unwrap();
        assert_eq!(changed["metadata"]["generation"], 2);
        assert_eq!(
            sim.apply_count("apps", "v1", "deployments", "default", "web"),
            3
        );
        let kept = sim
            .apply(&r, &d, &ApplyMode::CreateOnly, None)
            .await
            .unwrap();
        assert_eq!(kept["spec"]["replicas"], 3, "CreateOnly never modifies");
    }

    #[tokio::test]
    async fn failures_uid_preconditions_and_snapshot() {
        let file = std::env::temp_dir().join(format!("workbus-sim-{}.json", std::process::id()));
        let cfg = SimConfig {
            ready_after: Duration::from_secs(60),
            snapshot: Some(file.clone()),
        };
        let sim = SimulatedCluster::new(cfg.clone());
        let r = at("configmaps", "default", "cm", "");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}});
        sim.fail_manifest("ConfigMap", "default", "cm", "admission webhook denied");
        assert!(sim.apply(&r, &cm, &ApplyMode::Update, None).await.is_err());
        sim.clear_failures();
        let live = sim.apply(&r, &cm, &ApplyMode::Update, None).await.unwrap();
        assert_eq!(
            sim.delete(&r, Some("other")).await.unwrap(),
            DeleteResult::UidMismatch
        );
        let reopened = SimulatedCluster::new(cfg);
        assert!(
            reopened.get(&r).await.unwrap().is_some(),
            "snapshot reloaded"
        );
        let uid = live["metadata"]["uid"].as_str().unwrap().to_string();
        assert_eq!(
            reopened.delete(&r, Some(&uid)).await.unwrap(),
            DeleteResult::Gone
        );
        assert!(reopened.get(&r).await.unwrap().is_none());
        let _ = std::fs::remove_file(file);
    }
}
