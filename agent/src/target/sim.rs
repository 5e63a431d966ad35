//! The **simulated cluster**: an in-memory object store that answers like a Kubernetes
//! API server on what the agent uses, for demos, scale runs and tests. It is a
//! stand-in, clearly named as one; nothing here talks to Kubernetes.
//!
//! Like the real thing, it:
//! - knows the common built-in kinds (resource names, namespaced or cluster-scoped),
//!   plus any kind defined by a `CustomResourceDefinition` stored in it, and refuses
//!   others with the API server's message;
//! - assigns UIDs, resourceVersions, generations and creation timestamps; bumps
//!   `generation` only when the spec changes and `resourceVersion` only on real writes;
//! - keeps owner references, finalizers, foreign labels and annotations; honours UID
//!   preconditions on delete; an object with finalizers only gets a `deletionTimestamp`
//!   until they are removed ([`SimulatedCluster::finish_finalizers`]); deleting a
//!   Namespace deletes what is in it;
//! - records server-side apply field managers in `managedFields`, and approximates
//!   field ownership: a server-side apply keeps fields other actors set or changed and
//!   removes the fields its manager applied before and no longer applies.
//!
//! What it simulates ([`status`]): Deployments, DaemonSets, StatefulSets, ReplicaSets,
//! Jobs and Pods become ready/complete `ready_after` their last spec change, with the
//! status fields their controllers write.
//!
//! Deliberate simplifications (documented, so tests do not over-trust it): namespaces
//! are not required to exist unless [`SimulatedCluster::require_namespaces`] is set
//! (demos stay easy); server-side apply conflicts are detected per object, not per
//! field (a different manager applied before, `force` is off, and the content differs);
//! discovery is never "unavailable".
//!
//! Test hooks: failure injection per manifest ([`SimulatedCluster::fail_manifest`], or,
//! from outside the process, an object annotated [`SIMULATE_FAILURE_ANNOTATION`]: demos
//! of failed rollouts need a failure a user can write into YAML),
//! access denials and a count of access reviews ([`SimulatedCluster::deny_access`]), an
//! unavailable API ([`SimulatedCluster::set_unavailable`]), apply counters per object
//! (so tests can assert "no duplicate applies"), an injectable clock ([`SimClock`]), and a
//! JSON snapshot on disk so an agent process restarted with the same data dir finds its
//! objects again.

mod status;

/// An object carrying this annotation is refused by the simulated cluster with the
/// annotation's value as the API server's message (e.g. `"image pull backoff"`): a
/// failure a user can inject from a manifest, for demos of failing rollouts. A real
/// cluster ignores it.
pub const SIMULATE_FAILURE_ANNOTATION: &str = "sim.workbus.io/fail";

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use workbus_schemas::work::Time;

use super::object::{change_owner, desired, merge_labels, split_api_version};
use super::{
    Access, AccessReview, ApplyMode, Changes, ClusterInfo, DeleteResult, ObjectRef, OwnerChange,
    ResourceMapping, Target, TargetError,
};

/// The snapshot's file name in an agent's data directory (`workbus-agent` and the hub's
/// quickstart keep it there).
pub const SNAPSHOT_FILE: &str = "simulated-cluster.json";

/// Default time from a workload's last spec change until it reports ready.
pub const DEFAULT_READY_AFTER: Duration = Duration::from_secs(2);

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
            ready_after: DEFAULT_READY_AFTER,
            snapshot: None,
        }
    }
}

/// The simulated cluster's time source: the system clock, or a manual clock that only
/// moves when a test says so (so readiness delays are tested without sleeping).
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    /// Unix milliseconds of a manual clock; `None` follows the system clock.
    manual: Option<Arc<AtomicI64>>,
}

impl SimClock {
    /// Follows the system clock.
    pub fn system() -> SimClock {
        SimClock { manual: None }
    }

    /// A manual clock starting at `start_unix_ms` (Unix milliseconds).
    pub fn manual(start_unix_ms: i64) -> SimClock {
        SimClock {
            manual: Some(Arc::new(AtomicI64::new(start_unix_ms))),
        }
    }

    /// Moves a manual clock forward; does nothing to the system clock.
    pub fn advance(&self, by: Duration) {
        if let Some(ms) = &self.manual {
            let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            // fetch_update cannot fail with a closure that always returns Some.
            let _ = ms.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(by))
            });
        }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }

    /// Now, as a status time (what the agent passes to the reconciler in tests).
    pub fn now(&self) -> Time {
        Time::new(chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default())
    }
}

/// (group, version, kind, plural, namespaced) of the built-in kinds the simulation serves.
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

/// The agent's own record of what it applied: a CRD on a real cluster, always served
/// here, in the ManifestWork's API group and version (named by the protocol crate).
fn applied_manifest_work() -> ResourceMapping {
    let (group, version) = split_api_version(workbus_schemas::work::ManifestWork::API_VERSION);
    ResourceMapping {
        group: group.to_string(),
        version: version.to_string(),
        kind: "AppliedManifestWork".to_string(),
        resource: "appliedmanifestworks".to_string(),
        namespaced: false,
    }
}

/// One stored object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimObject {
    /// The stored object (metadata + desired fields; status is computed on read).
    object: Value,
    kind: String,
    /// Unix ms of the last spec change (drives readiness).
    changed_at_ms: i64,
    /// Calls to `apply` for this object (including ones that changed nothing).
    applies: u64,
    /// What each server-side apply field manager last applied (the desired part), to
    /// tell which fields it still owns (see [`ssa_merge`]).
    #[serde(default)]
    applied_by: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
struct Failure {
    kind: String,
    namespace: String,
    name: String,
    message: String,
}

/// Everything behind the lock; the persisted part is `objects` and `counter`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    objects: BTreeMap<String, SimObject>,
    /// Last resourceVersion handed out (one counter for the whole cluster, like etcd).
    counter: u64,
    #[serde(skip)]
    failures: Vec<Failure>,
    #[serde(skip)]
    unavailable: Option<String>,
    /// Access denied to executors: (user, verb, group, resource).
    #[serde(skip)]
    denied: Vec<(String, String, String, String)>,
    /// Access reviews answered (test hook: "no review without an executor").
    #[serde(skip)]
    reviews: u64,
    /// Open watches: (group, resource, namespace or `""` for all, sender).
    #[serde(skip)]
    watchers: Vec<(String, String, String, tokio::sync::mpsc::Sender<ObjectRef>)>,
}

impl State {
    /// Tells the watches of the object's resource that it changed; closed watches go.
    fn changed(&mut self, at: &ObjectRef) {
        self.watchers.retain(|(group, resource, namespace, tx)| {
            if tx.is_closed() {
                return false;
            }
            if *group == at.group
                && *resource == at.resource
                && (namespace.is_empty() || *namespace == at.namespace)
            {
                // A full queue already holds a change for the watcher to act on.
                let _ = tx.try_send(at.clone());
            }
            true
        });
    }
}

/// The simulated cluster. Share it with `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct SimulatedCluster {
    config: SimConfig,
    clock: SimClock,
    require_namespaces: bool,
    /// What it reports in its ManagedCluster status (`None`: [`ClusterInfo::simulated`]
    /// under the id `simulated`).
    cluster_info: Option<ClusterInfo>,
    state: Mutex<State>,
}

/// Objects are stored once per group/resource, whatever version they are read at (as
/// the API server does).
fn key(group: &str, resource: &str, namespace: &str, name: &str) -> String {
    format!("{group}/{resource}/{namespace}/{name}")
}

fn key_of(at: &ObjectRef) -> String {
    key(&at.group, &at.resource, &at.namespace, &at.name)
}

/// The desired part of an object after `manager` server-side applies `config` to it,
/// approximating the API server's field ownership: a manager owns the leaf fields (lists
/// are leaves) it applied last time whose live value is still the one it applied
/// (someone else's change takes the field over). Fields it owned and no longer applies
/// are removed unless another manager applied them too; the new config is merged over
/// the rest, so fields of other actors survive.
fn ssa_merge(
    existing: &mut SimObject,
    manager: &str,
    config: Map<String, Value>,
) -> Map<String, Value> {
    let mut next = Value::Object(desired(&existing.object));
    let config = Value::Object(config);
    if let Some(previous) = existing.applied_by.get(manager) {
        let mut before = Vec::new();
        leaves(previous, &mut Vec::new(), &mut before);
        for (path, value) in before {
            let still_owned = value_at(&next, &path) == Some(&value);
            let applied_now = value_at(&config, &path).is_some();
            let shared = existing
                .applied_by
                .iter()
                .any(|(m, c)| m != manager && value_at(c, &path).is_some());
            if still_owned && !applied_now && !shared {
                remove_at(&mut next, &path);
            }
        }
    }
    merge_into(&mut next, &config);
    existing.applied_by.insert(manager.to_string(), config);
    match next {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Every leaf (scalar or list) of a JSON value with its path.
fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(k.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        _ => out.push((path.clone(), v.clone())),
    }
}

fn value_at<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

fn remove_at(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let parent = parents.iter().try_fold(v, |cur, k| cur.get_mut(k));
    if let Some(Value::Object(m)) = parent {
        m.remove(last);
    }
}

/// Objects merge member by member; anything else is replaced.
fn merge_into(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (into, from) => *into = from.clone(),
    }
}

/// The field manager that last server-side applied the object, if any.
fn ssa_manager(meta: &Value) -> Option<&str> {
    meta["managedFields"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["operation"] == "Apply")
        .and_then(|m| m["manager"].as_str())
}

/// Records `manager` as the object's server-side apply manager.
fn record_manager(meta: &mut Map<String, Value>, manager: &str, api_version: &Value, at: &str) {
    let mut entries: Vec<Value> = meta
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries.retain(|m| m["manager"] != manager);
    entries.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": at,
        "fieldsType": "FieldsV1",
    }));
    meta.insert("managedFields".into(), Value::Array(entries));
}

impl SimulatedCluster {
    /// A simulated cluster on the system clock; loads its snapshot if one is configured
    /// and readable (an unreadable snapshot starts an empty cluster).
    pub fn new(config: SimConfig) -> SimulatedCluster {
        if let Some(path) = &config.snapshot {
            // The snapshot holds applied objects, Secrets included: owner-only.
            match workbus_process::private_fs::tighten_file(path) {
                Ok(t) => crate::store::warn_tightened(path, t),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot tighten the snapshot's mode")
                }
            }
        }
        let mut state: State = config
            .snapshot
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // The snapshot is input like any other: keep only well-formed objects, so the
        // code below may rely on an object with object metadata.
        state
            .objects
            .retain(|_, o| o.object.get("metadata").is_some_and(Value::is_object));
        SimulatedCluster {
            config,
            clock: SimClock::system(),
            require_namespaces: false,
            cluster_info: None,
            state: Mutex::new(state),
        }
    }

    /// Reports `info` as the cluster's facts (capacity, version, claims, health).
    pub fn with_cluster_info(mut self, info: ClusterInfo) -> SimulatedCluster {
        self.cluster_info = Some(info);
        self
    }

    /// Uses `clock` instead of the system clock (tests: [`SimClock::manual`]).
    pub fn with_clock(mut self, clock: SimClock) -> SimulatedCluster {
        self.clock = clock;
        self
    }

    /// When true, namespaced objects can only be created in an existing Namespace
    /// (`namespaces "x" not found`, as a real cluster answers). Default false, so demos
    /// need not ship Namespace manifests.
    pub fn require_namespaces(mut self, require: bool) -> SimulatedCluster {
        self.require_namespaces = require;
        self
    }

    /// The cluster's clock.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// The state, even after a panic elsewhere poisoned the lock: every mutation below
    /// leaves the state consistent before anything that could panic.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every apply of the object with this kind, namespace (`""` for
    /// cluster-scoped) and name fail with `message`, as if the API server (e.g. an
    /// admission webhook) rejected it. Other manifests are unaffected.
    pub fn fail_manifest(&self, kind: &str, namespace: &str, name: &str, message: &str) {
        self.state().failures.push(Failure {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            message: message.into(),
        });
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) {
        self.state().failures.clear();
    }

    /// Denies `verb` on `group`/`resource` to `user` in access reviews (everything else
    /// is allowed), as missing RBAC permissions would on a cluster.
    pub fn deny_access(&self, user: &str, verb: &str, group: &str, resource: &str) {
        self.state()
            .denied
            .push((user.into(), verb.into(), group.into(), resource.into()));
    }

    /// Allows everything again in access reviews.
    pub fn allow_all_access(&self) {
        self.state().denied.clear();
    }

    /// How many access reviews were answered so far.
    pub fn access_review_count(&self) -> u64 {
        self.state().reviews
    }

    /// `Some(message)`: every read and write fails with [`TargetError::Unavailable`]
    /// (the API server is down); `None`: back to normal. Kind resolution keeps working,
    /// like a client's cached discovery.
    pub fn set_unavailable(&self, message: Option<&str>) {
        self.state().unavailable = message.map(str::to_string);
    }

    /// The live object (with its simulated status), if it exists. `version` is accepted
    /// for symmetry with the API but objects are stored once per group/resource.
    pub fn object(
        &self,
        group: &str,
        _version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let s = self.state();
        s.objects
            .get(&key(group, resource, namespace, name))
            .map(|o| self.live(o))
    }

    /// How many times `apply` was called for the object (writes that changed nothing
    /// included; injected failures excluded).
    pub fn apply_count(
        &self,
        group: &str,
        _version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> u64 {
        self.state()
            .objects
            .get(&key(group, resource, namespace, name))
            .map_or(0, |o| o.applies)
    }

    /// Deletes an object behind the agent's back (someone ran `kubectl delete`),
    /// ignoring finalizers. True when it existed.
    pub fn delete_out_of_band(
        &self,
        group: &str,
        _version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let removed = {
            let mut s = self.state();
            let removed = s.objects.remove(&key(group, resource, namespace, name));
            s.changed(&ObjectRef::new(group, "", resource, namespace, name));
            if let Some(o) = &removed
                && o.kind == "Namespace"
            {
                remove_namespace_contents(&mut s, name);
            }
            removed.is_some()
        };
        self.save();
        removed
    }

    /// Removes the object's finalizers, as the controller holding them would once done;
    /// an object already being deleted then goes away. True when it existed.
    pub fn finish_finalizers(
        &self,
        group: &str,
        _version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let found = {
            let mut s = self.state();
            let k = key(group, resource, namespace, name);
            s.counter += 1;
            s.changed(&ObjectRef::new(group, "", resource, namespace, name));
            let rv = s.counter.to_string();
            match s.objects.get_mut(&k) {
                None => false,
                Some(o) => {
                    let terminating = o.object["metadata"].get("deletionTimestamp").is_some();
                    if let Some(meta) = o.object["metadata"].as_object_mut() {
                        meta.remove("finalizers");
                        meta.insert("resourceVersion".into(), json!(rv));
                    }
                    if terminating {
                        let kind = o.kind.clone();
                        s.objects.remove(&k);
                        if kind == "Namespace" {
                            remove_namespace_contents(&mut s, name);
                        }
                    }
                    true
                }
            }
        };
        self.save();
        found
    }

    /// Number of objects stored.
    pub fn len(&self) -> usize {
        self.state().objects.len()
    }

    /// True when no object is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the snapshot (if configured, mode `0600`) through a temporary file and a
    /// rename, so a crash mid-write leaves the previous snapshot intact. Best effort: the simulation
    /// must not fail the agent over its own bookkeeping.
    fn save(&self) {
        let Some(path) = &self.config.snapshot else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(&*self.state()) else {
            return;
        };
        let tmp = path.with_extension("tmp");
        // 0600 from the start (the renamed file keeps the mode): it holds Secrets.
        let written = workbus_process::private_fs::create_private_file(&tmp, true)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes));
        if written.is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }

    fn ready_at_ms(&self, o: &SimObject) -> i64 {
        let delay = i64::try_from(self.config.ready_after.as_millis()).unwrap_or(i64::MAX);
        o.changed_at_ms.saturating_add(delay)
    }

    /// The object as read from the API: stored fields plus the simulated status.
    fn live(&self, o: &SimObject) -> Value {
        let mut v = o.object.clone();
        let ready_at = self.ready_at_ms(o);
        let ready = self.clock.now_ms() >= ready_at;
        if let Some(status) = status::simulated(&o.kind, &v, o.changed_at_ms, ready_at, ready)
            && let Some(map) = v.as_object_mut()
        {
            map.insert("status".into(), status);
        }
        v
    }

    /// Kinds defined by stored CustomResourceDefinitions (served versions only).
    fn custom_kind(s: &State, group: &str, version: &str, kind: &str) -> Option<ResourceMapping> {
        s.objects
            .values()
            .filter(|o| o.kind == "CustomResourceDefinition")
            .map(|o| &o.object["spec"])
            .find(|spec| {
                spec["group"] == group
                    && spec["names"]["kind"] == kind
                    && spec["versions"].as_array().is_some_and(|vs| {
                        vs.iter()
                            .any(|v| v["name"] == version && v["served"] != false)
                    })
            })
            .and_then(|spec| {
                Some(ResourceMapping {
                    group: group.into(),
                    version: version.into(),
                    kind: kind.into(),
                    resource: spec["names"]["plural"].as_str()?.to_string(),
                    namespaced: spec["scope"] != "Cluster",
                })
            })
    }
}

/// A deleted Namespace takes its objects with it.
fn remove_namespace_contents(s: &mut State, namespace: &str) {
    s.objects
        .retain(|_, o| o.object["metadata"]["namespace"].as_str() != Some(namespace));
}

impl Target for SimulatedCluster {
    async fn resolve(&self, api_version: &str, kind: &str) -> Result<ResourceMapping, TargetError> {
        let (group, version) = split_api_version(api_version);
        if let Some((g, v, k, r, n)) = KINDS
            .iter()
            .find(|(g, v, k, _, _)| *g == group && *v == version && *k == kind)
        {
            return Ok(ResourceMapping {
                group: g.to_string(),
                version: v.to_string(),
                kind: k.to_string(),
                resource: r.to_string(),
                namespaced: *n,
            });
        }
        let amw = applied_manifest_work();
        if amw.group == group && amw.version == version && amw.kind == kind {
            return Ok(amw);
        }
        Self::custom_kind(&self.state(), group, version, kind)
            .ok_or_else(|| TargetError::UnknownKind(kind.to_string()))
    }

    async fn get(&self, at: &ObjectRef) -> Result<Option<Value>, TargetError> {
        let s = self.state();
        if let Some(message) = &s.unavailable {
            return Err(TargetError::Unavailable(message.clone()));
        }
        Ok(s.objects.get(&key_of(at)).map(|o| self.live(o)))
    }

    async fn apply(
        &self,
        at: &ObjectRef,
        object: &Value,
        mode: &ApplyMode,
        owner: &OwnerChange,
    ) -> Result<Value, TargetError> {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let now_ms = self.clock.now_ms();
        let now = status::rfc3339(now_ms);
        let live = {
            let mut s = self.state();
            if let Some(message) = &s.unavailable {
                return Err(TargetError::Unavailable(message.clone()));
            }
            if let Some(f) = s
                .failures
                .iter()
                .find(|f| f.kind == kind && f.namespace == at.namespace && f.name == at.name)
            {
                return Err(TargetError::Invalid(f.message.clone()));
            }
            if let Some(message) =
                object["metadata"]["annotations"][SIMULATE_FAILURE_ANNOTATION].as_str()
            {
                return Err(TargetError::Invalid(format!(
                    "simulated failure ({SIMULATE_FAILURE_ANNOTATION}): {message}"
                )));
            }
            if at.name.is_empty() {
                return Err(TargetError::Invalid(
                    "resource name may not be empty".into(),
                ));
            }
            let k = key_of(at);
            if self.require_namespaces
                && !at.namespace.is_empty()
                && !s
                    .objects
                    .contains_key(&key("", "namespaces", "", &at.namespace))
            {
                return Err(TargetError::NotFound(format!(
                    "namespaces \"{}\" not found",
                    at.namespace
                )));
            }
            // Checked before anything changes, so a conflict leaves the object as it was.
            if let (
                Some(existing),
                ApplyMode::ServerSideApply {
                    field_manager,
                    force,
                },
            ) = (s.objects.get(&k), mode)
                && !force
                && desired(&existing.object) != desired(object)
                && let Some(other) = ssa_manager(&existing.object["metadata"])
                && other != field_manager
            {
                return Err(TargetError::Conflict(format!(
                    "Apply failed with 1 conflict: conflict with \"{other}\""
                )));
            }
            s.counter += 1;
            s.changed(at);
            let rv = s.counter.to_string();
            match s.objects.get_mut(&k) {
                Some(existing) => {
                    existing.applies += 1;
                    let mut changed = false;
                    let modifies = *mode != ApplyMode::CreateOnly;
                    let wanted = match mode {
                        ApplyMode::ServerSideApply { field_manager, .. } => {
                            ssa_merge(existing, field_manager, desired(object))
                        }
                        _ => desired(object),
                    };
                    if modifies && desired(&existing.object) != wanted {
                        let mut next = wanted;
                        next.insert("metadata".into(), existing.object["metadata"].clone());
                        existing.object = Value::Object(next);
                        let meta = &mut existing.object["metadata"];
                        let generation = meta["generation"].as_i64().unwrap_or(1).saturating_add(1);
                        meta["generation"] = json!(generation);
                        existing.changed_at_ms = now_ms;
                        changed = true;
                    }
                    if let Some(meta) = existing.object["metadata"].as_object_mut() {
                        if modifies {
                            changed |= merge_labels(meta, &object["metadata"]);
                        }
                        changed |= change_owner(meta, owner);
                        if let ApplyMode::ServerSideApply { field_manager, .. } = mode
                            && changed
                        {
                            record_manager(meta, field_manager, &object["apiVersion"], &now);
                        }
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
                    for server_owned in [
                        "uid",
                        "resourceVersion",
                        "generation",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "managedFields",
                    ] {
                        meta.remove(server_owned);
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
                    meta.insert("creationTimestamp".into(), json!(now));
                    change_owner(&mut meta, owner);
                    let mut applied_by = BTreeMap::new();
                    if let ApplyMode::ServerSideApply { field_manager, .. } = mode {
                        record_manager(&mut meta, field_manager, &object["apiVersion"], &now);
                        applied_by.insert(field_manager.clone(), Value::Object(obj.clone()));
                    }
                    obj.insert("metadata".into(), Value::Object(meta));
                    let o = SimObject {
                        object: Value::Object(obj),
                        kind,
                        changed_at_ms: now_ms,
                        applies: 1,
                        applied_by,
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
        let now = status::rfc3339(self.clock.now_ms());
        let result = {
            let mut s = self.state();
            if let Some(message) = &s.unavailable {
                return Err(TargetError::Unavailable(message.clone()));
            }
            let k = key_of(at);
            s.counter += 1;
            s.changed(at);
            let rv = s.counter.to_string();
            let Some(o) = s.objects.get_mut(&k) else {
                return Ok(DeleteResult::Gone);
            };
            if uid.is_some_and(|u| o.object["metadata"]["uid"] != u) {
                return Ok(DeleteResult::UidMismatch);
            }
            let held = o.object["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if held {
                if let Some(meta) = o.object["metadata"].as_object_mut()
                    && !meta.contains_key("deletionTimestamp")
                {
                    meta.insert("deletionTimestamp".into(), json!(now));
                    meta.insert("resourceVersion".into(), json!(rv));
                }
                DeleteResult::Pending
            } else {
                let kind = o.kind.clone();
                s.objects.remove(&k);
                if kind == "Namespace" {
                    remove_namespace_contents(&mut s, &at.name);
                }
                DeleteResult::Gone
            }
        };
        self.save();
        Ok(result)
    }

    async fn remove_owner(&self, at: &ObjectRef, owner_uid: &str) -> Result<(), TargetError> {
        {
            let mut s = self.state();
            if let Some(message) = &s.unavailable {
                return Err(TargetError::Unavailable(message.clone()));
            }
            s.counter += 1;
            s.changed(at);
            let rv = s.counter.to_string();
            if let Some(o) = s.objects.get_mut(&key_of(at))
                && let Some(meta) = o.object["metadata"].as_object_mut()
                && change_owner(meta, &OwnerChange::Remove(owner_uid.to_string()))
            {
                meta.insert("resourceVersion".into(), json!(rv));
            }
        }
        self.save();
        Ok(())
    }

    async fn list(&self, resource: &ResourceMapping) -> Result<Vec<Value>, TargetError> {
        let s = self.state();
        if let Some(message) = &s.unavailable {
            return Err(TargetError::Unavailable(message.clone()));
        }
        let prefix = format!("{}/{}/", resource.group, resource.resource);
        Ok(s.objects
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, o)| self.live(o))
            .collect())
    }

    async fn update_status(&self, at: &ObjectRef, status: &Value) -> Result<Value, TargetError> {
        let live = {
            let mut s = self.state();
            if let Some(message) = &s.unavailable {
                return Err(TargetError::Unavailable(message.clone()));
            }
            s.counter += 1;
            s.changed(at);
            let rv = s.counter.to_string();
            let Some(o) = s.objects.get_mut(&key_of(at)) else {
                return Err(TargetError::NotFound(format!(
                    "{}.{} \"{}\" not found",
                    at.resource, at.group, at.name
                )));
            };
            if o.object.get("status") != Some(status) {
                o.object["status"] = status.clone();
                o.object["metadata"]["resourceVersion"] = json!(rv);
            }
            let o = o.clone();
            self.live(&o)
        };
        self.save();
        Ok(live)
    }

    async fn remove_finalizer(&self, at: &ObjectRef, finalizer: &str) -> Result<(), TargetError> {
        {
            let mut s = self.state();
            if let Some(message) = &s.unavailable {
                return Err(TargetError::Unavailable(message.clone()));
            }
            s.counter += 1;
            s.changed(at);
            let rv = s.counter.to_string();
            let k = key_of(at);
            let Some(o) = s.objects.get_mut(&k) else {
                return Ok(());
            };
            let meta = &mut o.object["metadata"];
            let Some(list) = meta["finalizers"].as_array_mut() else {
                return Ok(());
            };
            let before = list.len();
            list.retain(|f| f != finalizer);
            if list.len() == before {
                return Ok(());
            }
            let last = list.is_empty();
            meta["resourceVersion"] = json!(rv);
            if last && meta.get("deletionTimestamp").is_some() {
                let kind = o.kind.clone();
                s.objects.remove(&k);
                if kind == "Namespace" {
                    remove_namespace_contents(&mut s, &at.name);
                }
            }
        }
        self.save();
        Ok(())
    }

    async fn review_access(&self, review: &AccessReview) -> Result<Access, TargetError> {
        let mut s = self.state();
        if let Some(message) = &s.unavailable {
            return Err(TargetError::Unavailable(message.clone()));
        }
        s.reviews += 1;
        let denied = s.denied.iter().any(|(user, verb, group, resource)| {
            *user == review.user
                && *verb == review.verb
                && *group == review.group
                && *resource == review.resource
        });
        Ok(if denied {
            Access::Denied(String::new())
        } else {
            Access::Allowed
        })
    }

    async fn watch(
        &self,
        resource: &ResourceMapping,
        namespace: &str,
    ) -> Result<Option<Changes>, TargetError> {
        // Bounded: a watcher that falls behind still holds a change to act on.
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        self.state().watchers.push((
            resource.group.clone(),
            resource.resource.clone(),
            namespace.to_string(),
            tx,
        ));
        Ok(Some(rx))
    }

    async fn cluster_info(&self) -> ClusterInfo {
        self.cluster_info
            .clone()
            .unwrap_or_else(|| ClusterInfo::simulated("simulated"))
    }

    fn next_change(&self, at: &ObjectRef) -> Option<Duration> {
        let s = self.state();
        let o = s.objects.get(&key_of(at))?;
        if !status::progresses(&o.kind) {
            return None;
        }
        let remaining = self.ready_at_ms(o).saturating_sub(self.clock.now_ms());
        (remaining > 0).then(|| Duration::from_millis(remaining.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clock_drives_readiness_without_sleeping() {
        let clock = SimClock::manual(1_000_000);
        let sim = SimulatedCluster::new(SimConfig {
            ready_after: Duration::from_secs(5),
            snapshot: None,
        })
        .with_clock(clock.clone());
        let at = ObjectRef::new("apps", "v1", "deployments", "default", "web");
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
        let live = sim
            .apply(&at, &d, &ApplyMode::Update, &OwnerChange::Keep)
            .await
            .unwrap();
        assert!(live["status"].get("readyReplicas").is_none());
        assert_eq!(sim.next_change(&at), Some(Duration::from_secs(5)));
        clock.advance(Duration::from_secs(5));
        let ready = sim.get(&at).await.unwrap().unwrap();
        assert_eq!(ready["status"]["readyReplicas"], 2);
        assert_eq!(sim.next_change(&at), None);
        assert_eq!(
            sim.get(&at).await.unwrap().unwrap(),
            ready,
            "reads are stable"
        );
    }
}
