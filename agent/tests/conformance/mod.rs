//! The harness that runs one conformance test body (manifestwork-semantics §12) on both
//! targets: the simulated cluster ([`Sim`]) and the Kubernetes target against the
//! in-repo Kubernetes API test server ([`Kube`]). A test is written once as
//! `async fn item_n_behaviour<C: Cluster>()` and [`on_both_targets!`] makes a
//! `sim::item_n_behaviour` and a `kube::item_n_behaviour` test of it.
//!
//! [`Cluster`] is what a test needs beyond the agent's [`Target`]: building the
//! environment, reading objects as the cluster stores them, acting on the cluster
//! behind the agent's back (out-of-band deletion, finalizers finishing, another
//! manager's edit), moving workloads to ready, and granting or denying the executor's
//! permissions. Condition times come from a manual clock on both targets ([`Env::now`]),
//! so nothing sleeps; the test server runs its controllers before it answers a write,
//! so a read after a write sees their result.
#![allow(dead_code)]

pub mod server;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use workbus_agent::applied_work::AppliedWorkIdentity;
use workbus_agent::reconcile::{CleanupOutcome, ReconcileOutcome, Reconciler, WorkState};
use workbus_agent::target::kube::KubeTarget;
use workbus_agent::target::sim::{SimClock, SimConfig, SimulatedCluster};
use workbus_agent::target::{
    Access, AccessReview, ApplyMode, Changes, DeleteResult, ObjectRef, OwnerChange,
    ResourceMapping, Target, TargetError,
};
use workbus_kube_apiserver::{Phase, Readiness, RunningServer};
use workbus_schemas::work::applied;
use workbus_schemas::work::{
    Condition, ManifestWork, ManifestWorkSpec, ManifestWorkStatus, ObjectMeta, Time,
};

/// Generates `sim::<test>` and `kube::<test>` tokio tests running `<test>::<Sim>()` and
/// `<test>::<Kube>()`: one body, both targets.
macro_rules! on_both_targets {
    ($($name:ident),* $(,)?) => {
        mod sim {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name::<crate::conformance::Sim>().await;
                }
            )*
        }
        mod kube {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name::<crate::conformance::Kube>().await;
                }
            )*
        }
    };
}

/// The start of the manual clock both targets' condition times come from.
pub const START_MS: i64 = 1_700_000_000_000;

/// How long a simulated workload takes to become ready with [`Ready::Manual`] (the
/// simulated cluster's readiness is a delay on its clock).
pub const SIM_ROLLOUT: Duration = Duration::from_secs(30);

/// The executor's service account (namespace `ns1`, name `sa1`) as a user.
pub const SA_USER: &str = "system:serviceaccount:ns1:sa1";
pub const RBAC: &str = "rbac.authorization.k8s.io";

/// How workloads become ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// At once (a healthy cluster).
    Immediate,
    /// Only when the test says so ([`Cluster::set_ready`]).
    Manual,
}

/// Which target a body runs on, for the few assertions that differ by nature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sim,
    Kube,
}

/// A cluster a conformance test runs on.
pub trait Cluster: Sized + Send + Sync + 'static {
    /// The agent's target on it.
    type Target: Target;
    const KIND: Kind;

    /// A fresh cluster (namespaces `default` and `ns1` exist) and its manual clock.
    fn start(ready: Ready, clock: SimClock) -> impl Future<Output = Self>;

    /// The agent's target.
    fn target(&self) -> Arc<Self::Target>;

    /// The object as the cluster stores it (with its status), read without the agent.
    fn object(&self, at: &ObjectRef) -> impl Future<Output = Option<Value>>;

    /// Someone deletes the object (`kubectl delete`); with `ignore_finalizers` its
    /// finalizers are removed too, so it is gone at once. True when it existed.
    fn delete_out_of_band(
        &self,
        at: &ObjectRef,
        ignore_finalizers: bool,
    ) -> impl Future<Output = bool>;

    /// The controller holding the object's finalizers finishes: they are all removed
    /// (a terminating object then goes).
    fn finish_finalizers(&self, at: &ObjectRef) -> impl Future<Output = ()>;

    /// Someone on the managed cluster edits the object (`kubectl edit`, an update by
    /// another field manager).
    fn edit_on_spoke(
        &self,
        at: &ObjectRef,
        edit: impl FnOnce(&mut Value),
    ) -> impl Future<Output = ()>;

    /// The workload (Deployment, Job, Pod, DaemonSet…) becomes ready / completes.
    /// Simulated cluster: its clock moves by [`SIM_ROLLOUT`], which makes every
    /// workload ready; test server: that object's phase is set.
    fn set_ready(&self, api_version: &str, kind: &str, at: &ObjectRef) -> impl Future<Output = ()>;

    /// The executor ([`SA_USER`]) may not do `verb` (`*`: anything) on group/resource
    /// from now on; everything not denied is allowed.
    fn deny(&self, verb: &str, group: &str, resource: &str) -> impl Future<Output = ()>;

    /// The executor may do everything again.
    fn allow_all(&self) -> impl Future<Output = ()>;

    /// Access reviews the agent asked so far.
    fn access_reviews(&self) -> u64;

    /// Apply calls the agent made for the object so far.
    fn apply_count(&self, at: &ObjectRef) -> u64;
}

// ---------------------------------------------------------------------------------
// The simulated cluster.

/// The simulated cluster, on the harness clock.
pub struct Sim {
    sim: Arc<SimulatedCluster>,
    clock: SimClock,
}

impl Sim {
    /// The simulated cluster itself (its test hooks).
    pub fn sim(&self) -> &SimulatedCluster {
        &self.sim
    }
}

impl Cluster for Sim {
    type Target = SimulatedCluster;
    const KIND: Kind = Kind::Sim;

    async fn start(ready: Ready, clock: SimClock) -> Self {
        let ready_after = match ready {
            Ready::Immediate => Duration::ZERO,
            Ready::Manual => SIM_ROLLOUT,
        };
        let sim = SimulatedCluster::new(SimConfig {
            ready_after,
            snapshot: None,
        })
        .with_clock(clock.clone());
        Sim {
            sim: Arc::new(sim),
            clock,
        }
    }

    fn target(&self) -> Arc<SimulatedCluster> {
        self.sim.clone()
    }

    async fn object(&self, at: &ObjectRef) -> Option<Value> {
        self.sim.object(
            &at.group,
            &at.version,
            &at.resource,
            &at.namespace,
            &at.name,
        )
    }

    async fn delete_out_of_band(&self, at: &ObjectRef, ignore_finalizers: bool) -> bool {
        if ignore_finalizers {
            self.sim.delete_out_of_band(
                &at.group,
                &at.version,
                &at.resource,
                &at.namespace,
                &at.name,
            )
        } else {
            let existed = self.object(at).await.is_some();
            self.sim.delete(at, None).await.expect("delete");
            existed
        }
    }

    async fn finish_finalizers(&self, at: &ObjectRef) {
        self.sim.finish_finalizers(
            &at.group,
            &at.version,
            &at.resource,
            &at.namespace,
            &at.name,
        );
    }

    async fn edit_on_spoke(&self, at: &ObjectRef, edit: impl FnOnce(&mut Value)) {
        let mut live = self.sim.get(at).await.unwrap().expect("object to edit");
        edit(&mut live);
        self.sim
            .apply(at, &live, &ApplyMode::Update, &OwnerChange::Keep)
            .await
            .expect("edit");
    }

    async fn set_ready(&self, _api_version: &str, _kind: &str, _at: &ObjectRef) {
        self.clock.advance(SIM_ROLLOUT);
    }

    async fn deny(&self, verb: &str, group: &str, resource: &str) {
        self.sim.deny_access(SA_USER, verb, group, resource);
    }

    async fn allow_all(&self) {
        self.sim.allow_all_access();
    }

    fn access_reviews(&self) -> u64 {
        self.sim.access_review_count()
    }

    fn apply_count(&self, at: &ObjectRef) -> u64 {
        self.sim.apply_count(
            &at.group,
            &at.version,
            &at.resource,
            &at.namespace,
            &at.name,
        )
    }
}

// ---------------------------------------------------------------------------------
// The Kubernetes target against the test server.

/// The Kubernetes target, counting what the tests ask about (access reviews, apply
/// calls per object); everything else goes straight to [`KubeTarget`].
pub struct Counted {
    inner: KubeTarget,
    reviews: Mutex<u64>,
    applies: Mutex<HashMap<ObjectRef, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Target for Counted {
    async fn resolve(&self, api_version: &str, kind: &str) -> Result<ResourceMapping, TargetError> {
        self.inner.resolve(api_version, kind).await
    }
    async fn get(&self, at: &ObjectRef) -> Result<Option<Value>, TargetError> {
        self.inner.get(at).await
    }
    async fn apply(
        &self,
        at: &ObjectRef,
        object: &Value,
        mode: &ApplyMode,
        owner: &OwnerChange,
    ) -> Result<Value, TargetError> {
        *lock(&self.applies).entry(at.clone()).or_default() += 1;
        self.inner.apply(at, object, mode, owner).await
    }
    async fn delete(&self, at: &ObjectRef, uid: Option<&str>) -> Result<DeleteResult, TargetError> {
        self.inner.delete(at, uid).await
    }
    async fn remove_owner(&self, at: &ObjectRef, owner_uid: &str) -> Result<(), TargetError> {
        self.inner.remove_owner(at, owner_uid).await
    }
    async fn list(&self, resource: &ResourceMapping) -> Result<Vec<Value>, TargetError> {
        self.inner.list(resource).await
    }
    async fn update_status(&self, at: &ObjectRef, status: &Value) -> Result<Value, TargetError> {
        self.inner.update_status(at, status).await
    }
    async fn remove_finalizer(&self, at: &ObjectRef, finalizer: &str) -> Result<(), TargetError> {
        self.inner.remove_finalizer(at, finalizer).await
    }
    async fn review_access(&self, review: &AccessReview) -> Result<Access, TargetError> {
        *lock(&self.reviews) += 1;
        self.inner.review_access(review).await
    }
    async fn watch(
        &self,
        resource: &ResourceMapping,
        namespace: &str,
    ) -> Result<Option<Changes>, TargetError> {
        self.inner.watch(resource, namespace).await
    }
}

/// The test server, the agent's Kubernetes target on it, and a client of "someone
/// else" (kubectl) for out-of-band changes.
pub struct Kube {
    server: RunningServer,
    target: Arc<Counted>,
    client: kube::Client,
    denied: Mutex<BTreeSet<(String, String, String)>>,
    _dir: tempfile::TempDir,
}

/// What the executor role grants on, when nothing is denied: the resources the tests'
/// manifests use.
const GRANTABLE: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "configmaps",
            "secrets",
            "namespaces",
            "pods",
            "services",
            "serviceaccounts",
        ],
    ),
    ("apps", &["deployments", "daemonsets", "statefulsets"]),
    ("batch", &["jobs"]),
    (
        RBAC,
        &[
            "roles",
            "rolebindings",
            "clusterroles",
            "clusterrolebindings",
        ],
    ),
];
const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "bind",
    "escalate",
];

impl Kube {
    /// The test server itself (in-process reads, the simulator).
    pub fn server(&self) -> &RunningServer {
        &self.server
    }

    fn api(&self, at: &ObjectRef) -> Api<DynamicObject> {
        let ar = ApiResource {
            group: at.group.clone(),
            version: at.version.clone(),
            api_version: if at.group.is_empty() {
                at.version.clone()
            } else {
                format!("{}/{}", at.group, at.version)
            },
            kind: String::new(),
            plural: at.resource.clone(),
        };
        if at.namespace.is_empty() {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), &at.namespace, &ar)
        }
    }

    /// Writes an object as `kubectl apply` would create it (an Update by `kubectl`).
    pub async fn create(&self, at: &ObjectRef, object: Value) {
        let object: DynamicObject = serde_json::from_value(object).expect("object");
        self.api(at)
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
    }

    /// The executor's ClusterRole: every verb on [`GRANTABLE`] minus the denials.
    async fn write_executor_role(&self) {
        let denied = lock(&self.denied).clone();
        let mut rules = Vec::new();
        for (group, resources) in GRANTABLE {
            for resource in *resources {
                let verbs: Vec<&str> = VERBS
                    .iter()
                    .copied()
                    .filter(|verb| {
                        !denied
                            .iter()
                            .any(|(v, g, r)| (v == verb || v == "*") && g == group && r == resource)
                    })
                    .collect();
                if !verbs.is_empty() {
                    rules.push(
                        json!({"apiGroups": [group], "resources": [resource], "verbs": verbs}),
                    );
                }
            }
        }
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "test-executor"}, "rules": rules});
        let at = ObjectRef::new(RBAC, "v1", "clusterroles", "", "test-executor");
        let api = self.api(&at);
        let params = PatchParams::apply("test-harness").force();
        api.patch("test-executor", &params, &Patch::Apply(&role))
            .await
            .expect("executor role");
    }
}

impl Cluster for Kube {
    type Target = Counted;
    const KIND: Kind = Kind::Kube;

    async fn start(ready: Ready, _clock: SimClock) -> Self {
        let readiness = match ready {
            Ready::Immediate => Readiness::Immediate,
            Ready::Manual => Readiness::Manual,
        };
        let server::TestServer {
            server,
            target: inner,
            client,
            dir,
        } = server::TestServer::start(readiness).await;
        let kube = Kube {
            server,
            target: Arc::new(Counted {
                inner,
                reviews: Mutex::new(0),
                applies: Mutex::new(HashMap::new()),
            }),
            client,
            denied: Mutex::new(BTreeSet::new()),
            _dir: dir,
        };
        kube.create(
            &ObjectRef::new("", "v1", "namespaces", "", "ns1"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}),
        )
        .await;
        // The executor's permissions: a ClusterRole bound to its service account.
        kube.write_executor_role().await;
        kube.create(
            &ObjectRef::new(RBAC, "v1", "clusterrolebindings", "", "test-executor"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "test-executor"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "test-executor"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa1", "namespace": "ns1"}]}),
        )
        .await;
        kube
    }

    fn target(&self) -> Arc<Counted> {
        self.target.clone()
    }

    async fn object(&self, at: &ObjectRef) -> Option<Value> {
        self.server.with_cluster(|c| {
            let rt = c
                .store
                .registry
                .find(&at.group, &at.version, &at.resource)?;
            c.store.get(&rt.gr(), &at.namespace, &at.name).cloned()
        })
    }

    async fn delete_out_of_band(&self, at: &ObjectRef, ignore_finalizers: bool) -> bool {
        let existed = self.object(at).await.is_some();
        match self
            .api(at)
            .delete(&at.name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("delete: {e}"),
        }
        if ignore_finalizers {
            self.finish_finalizers(at).await;
        }
        existed
    }

    async fn finish_finalizers(&self, at: &ObjectRef) {
        let patch = json!({"metadata": {"finalizers": null}});
        match self
            .api(at)
            .patch(&at.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("finish finalizers: {e}"),
        }
    }

    async fn edit_on_spoke(&self, at: &ObjectRef, edit: impl FnOnce(&mut Value)) {
        let api = self.api(at);
        let live = api.get(&at.name).await.expect("object to edit");
        let mut live = serde_json::to_value(live).expect("json");
        edit(&mut live);
        let object: DynamicObject = serde_json::from_value(live).expect("object");
        let params = PostParams {
            field_manager: Some("kubectl-edit".into()),
            ..PostParams::default()
        };
        api.replace(&at.name, &params, &object).await.expect("edit");
    }

    async fn set_ready(&self, api_version: &str, kind: &str, at: &ObjectRef) {
        assert!(
            self.server.simulator().set_phase(
                api_version,
                kind,
                &at.namespace,
                &at.name,
                Phase::Ready
            ),
            "no {kind} {}/{} to make ready",
            at.namespace,
            at.name
        );
    }

    async fn deny(&self, verb: &str, group: &str, resource: &str) {
        lock(&self.denied).insert((verb.into(), group.into(), resource.into()));
        self.write_executor_role().await;
    }

    async fn allow_all(&self) {
        lock(&self.denied).clear();
        self.write_executor_role().await;
    }

    fn access_reviews(&self) -> u64 {
        *lock(&self.target.reviews)
    }

    fn apply_count(&self, at: &ObjectRef) -> u64 {
        lock(&self.target.applies).get(at).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------
// What every test uses: the cluster, its clock and a reconciler.

/// A cluster, the harness clock and the agent's reconciler on the cluster's target.
pub struct Env<C: Cluster> {
    pub c: C,
    pub clock: SimClock,
    pub r: Reconciler<C::Target>,
}

impl<C: Cluster> Env<C> {
    /// A fresh cluster with workloads ready at once.
    pub async fn start() -> Self {
        Self::with(Ready::Immediate).await
    }

    /// A fresh cluster whose workloads become ready as `ready` says.
    pub async fn with(ready: Ready) -> Self {
        let clock = SimClock::manual(START_MS);
        let c = C::start(ready, clock.clone()).await;
        let r = Reconciler::new(c.target());
        Env { c, clock, r }
    }

    /// The same cluster with the reconciler of another agent identity.
    pub fn reconciler(&self, identity: AppliedWorkIdentity) -> Reconciler<C::Target> {
        Reconciler::new(self.c.target()).with_identity(identity)
    }

    /// Uses this identity for the env's reconciler from now on.
    pub fn set_identity(&mut self, identity: AppliedWorkIdentity) {
        self.r = self.reconciler(identity);
    }

    pub fn is_sim(&self) -> bool {
        C::KIND == Kind::Sim
    }

    /// "Now" for condition times.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn apply(
        &self,
        w: &ManifestWork,
        state: &WorkState,
    ) -> (ReconcileOutcome, WorkState) {
        let out = self.r.apply(w, state, self.now()).await;
        let next = out.clone().into_state();
        (out, next)
    }

    pub async fn refresh(
        &self,
        w: &ManifestWork,
        state: &WorkState,
    ) -> (ReconcileOutcome, WorkState) {
        let out = self.r.refresh(w, state, self.now()).await;
        let next = out.clone().into_state();
        (out, next)
    }

    pub async fn cleanup(&self, w: &ManifestWork, state: &WorkState) -> CleanupOutcome {
        self.r.cleanup(w, state).await
    }

    pub async fn object(&self, at: &ObjectRef) -> Option<Value> {
        self.c.object(at).await
    }

    /// The ConfigMap `name` in `default`.
    pub async fn cm(&self, name: &str) -> Option<Value> {
        self.c.object(&cm_at(name)).await
    }

    /// The AppliedManifestWork called `name`.
    pub async fn amw_named(&self, name: &str) -> Option<Value> {
        self.c.object(&amw_at(name)).await
    }

    /// The AppliedManifestWork of the work called `work_name` (the reconciler's
    /// identity).
    pub async fn amw(&self, work_name: &str) -> Option<Value> {
        let name = applied::name(&self.r.identity().hub_hash, work_name);
        self.amw_named(&name).await
    }

    pub async fn amw_uid(&self, work_name: &str) -> String {
        uid(&self.amw(work_name).await.expect("AppliedManifestWork"))
    }

    /// Writes an object as someone else would (not the agent's reconciler).
    pub async fn put(&self, at: &ObjectRef, object: &Value) -> Value {
        self.c
            .target()
            .apply(at, object, &ApplyMode::Update, &OwnerChange::Keep)
            .await
            .expect("put")
    }
}

// ---------------------------------------------------------------------------------
// Objects and status helpers.

pub fn cm_at(name: &str) -> ObjectRef {
    ObjectRef::new("", "v1", "configmaps", "default", name)
}

pub fn deploy_at(name: &str) -> ObjectRef {
    ObjectRef::new("apps", "v1", "deployments", "default", name)
}

pub fn amw_at(name: &str) -> ObjectRef {
    ObjectRef::new(
        applied::GROUP,
        applied::VERSION,
        applied::RESOURCE,
        "",
        name,
    )
}

pub fn work(uid: &str, generation: i64, spec: Value) -> ManifestWork {
    named_work(uid, uid, generation, spec)
}

pub fn named_work(uid: &str, name: &str, generation: i64, spec: Value) -> ManifestWork {
    let meta = ObjectMeta {
        uid: uid.into(),
        name: name.into(),
        namespace: "cluster1".into(),
        generation,
        ..ObjectMeta::default()
    };
    let spec: ManifestWorkSpec = serde_json::from_value(spec).expect("spec");
    ManifestWork::new(meta, spec)
}

pub fn manifests(list: Vec<Value>) -> Value {
    json!({"workload": {"manifests": list}})
}

pub fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
}

/// A Deployment valid on a real API server (selector, template, container).
pub fn deploy(name: &str) -> Value {
    deploy_with(name, 2, 0)
}

pub fn deploy_with(name: &str, replicas: i64, min_ready: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "main", "image": "nginx"}]}}}})
}

/// The manifest's condition `ty`.
pub fn cond<'a>(status: &'a ManifestWorkStatus, ordinal: usize, ty: &str) -> &'a Condition {
    status.resource_status.manifests[ordinal]
        .conditions
        .iter()
        .find(|c| c.type_ == ty)
        .unwrap_or_else(|| panic!("manifest {ordinal} has no {ty}"))
}

/// (status, reason, message).
pub fn srm(c: &Condition) -> (&str, &str, &str) {
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

pub fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn owners(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs cleanup until it is done (the test server's GC and finalizers act between
/// calls); panics after `rounds`.
pub async fn cleanup_until_done<C: Cluster>(
    e: &Env<C>,
    w: &ManifestWork,
    state: &WorkState,
    rounds: usize,
) {
    let mut state = state.clone();
    for _ in 0..rounds {
        match e.cleanup(w, &state).await {
            CleanupOutcome::Done => return,
            CleanupOutcome::Pending { remaining, .. } => state.applied = remaining,
        }
    }
    panic!("cleanup not done after {rounds} rounds");
}
