//! # workbus-kube-apiserver: a Kubernetes API test server
//!
//! An in-process HTTP server speaking the subset of the Kubernetes REST API a work agent
//! uses, with the apiserver's semantics on what it covers: discovery, get/list/watch,
//! create/update/patch (JSON, merge, strategic merge, server-side apply with managed
//! fields and conflicts), delete with preconditions, propagation policies, finalizers and
//! the garbage collector, namespaces and their lifecycle, the status subresource, CRDs,
//! RBAC SubjectAccessReviews, and a status simulator for workloads. No kube-apiserver can
//! be installed where workbus is tested; this stands in for one, for kube-rs, kubectl or
//! any other client. `README.md` lists what is covered and what is not.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use workbus_kube_apiserver::{KubeApiServer, ServerConfig};
//! let server = KubeApiServer::start(ServerConfig::default()).await?;
//! server.write_kubeconfig("kubeconfig.yaml", "default")?;
//! println!("kubectl --kubeconfig kubeconfig.yaml get ns  # {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout (one concept per module): `http` (routing, negotiation), `discovery`, `rest`
//! (the verbs), `cluster` (the write pipeline), `store` (objects, resourceVersion,
//! history, watchers), `watch`, `strategy`, `defaults`, `validation`, `managed` +
//! `typed` + `fieldpath` + `schema` (server-side apply), `patch`, `delete`, `gc`
//! (garbage collector, namespace controller), `crd`, `controllers`, `simulator`,
//! `rbac`, `table`, `selectors`, `meta`, `error`.

pub mod cluster;
pub mod config;
pub mod controllers;
pub mod crd;
pub mod defaults;
pub mod delete;
pub mod discovery;
pub mod error;
pub mod fieldpath;
pub mod gc;
pub mod http;
pub mod managed;
pub mod meta;
pub mod patch;
pub mod rbac;
pub mod registry;
pub mod rest;
pub mod schema;
pub mod selectors;
pub mod simulator;
pub mod store;
pub mod strategy;
pub mod table;
pub mod typed;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch as tokio_watch;

pub use cluster::Cluster;
pub use config::{Readiness, ServerConfig};
pub use error::ApiError;
pub use simulator::Phase;

use cluster::WriteCtx;
use http::Shared;

/// The server; see [`KubeApiServer::start`].
pub struct KubeApiServer;

/// A running server. Dropping it stops the listener task (prefer
/// [`RunningServer::shutdown`], which also ends open watches first).
pub struct RunningServer {
    addr: SocketAddr,
    url: String,
    shared: Arc<Shared>,
    stop: tokio_watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn bootstrap(cluster: &mut Cluster) -> std::io::Result<()> {
    let ctx = |api_version: &str| WriteCtx::controller("kube-apiserver", api_version, "");
    let create = |cluster: &mut Cluster, obj: Value| -> std::io::Result<()> {
        let av = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let rt = cluster
            .store
            .registry
            .find_kind(&av, &kind)
            .ok_or_else(|| std::io::Error::other(format!("no type for {av} {kind}")))?;
        cluster
            .create_object(&rt, obj, &ctx(&av), None)
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        create(
            cluster,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?;
    }
    create(
        cluster,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                         {"nonResourceURLs": ["*"], "verbs": ["*"]}]}),
    )?;
    create(
        cluster,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]}),
    )?;
    let git = cluster.config.git_version.clone();
    for i in 1..=cluster.config.nodes.max(1) {
        let name = format!("node-{i}");
        create(
            cluster,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/control-plane": ""}}, "spec": {}}),
        )?;
        let rt = cluster
            .store
            .registry
            .find("", "v1", "nodes")
            .ok_or_else(|| std::io::Error::other("no nodes type"))?;
        if let Some(old) = cluster.store.get(&rt.gr(), "", &name).cloned() {
            let now = meta::now();
            let status = json!({
                "addresses": [{"type": "InternalIP", "address": format!("10.0.0.{i}")},
                              {"type": "Hostname", "address": name}],
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": git,
                             "kubeProxyVersion": git, "containerRuntimeVersion": "containerd://1.7.0",
                             "osImage": "workbus-kube-apiserver", "kernelVersion": "", "bootID": "",
                             "machineID": "", "systemUUID": ""},
            });
            cluster
                .write_status(&rt, &old, status, "kubelet")
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
    }
    let crds = cluster.config.crds.clone();
    for crd in crds {
        create(cluster, crd)?;
    }
    cluster.reconcile();
    Ok(())
}

impl KubeApiServer {
    /// Builds the cluster (the `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease` namespaces, the nodes, `cluster-admin`, the configured CRDs) and
    /// starts serving on `config.listen`.
    pub async fn start(config: ServerConfig) -> std::io::Result<RunningServer> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let mut cluster = Cluster::new(config);
        bootstrap(&mut cluster)?;
        let (stop, stop_rx) = tokio_watch::channel(false);
        let rv = cluster.store.resource_version();
        let (changed, _) = tokio_watch::channel(rv);
        let shared = Arc::new(Shared {
            cluster: Mutex::new(cluster),
            shutdown: stop_rx.clone(),
            changed,
            server_address: addr.to_string(),
        });
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let mut stop_signal = stop_rx;
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop_signal.wait_for(|s| *s).await;
            });
            if let Err(e) = server.await {
                tracing::warn!("kube-apiserver test server stopped: {e}");
            }
        });
        Ok(RunningServer {
            addr,
            url: format!("http://{addr}"),
            shared,
            stop,
            task: Some(task),
        })
    }
}

/// Moves simulated workloads (see `simulator.rs`).
pub struct Simulator<'a> {
    server: &'a RunningServer,
}

impl Simulator<'_> {
    /// Puts the object of `api_version`/`kind` into `phase`; false if there is none.
    pub fn set_phase(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        phase: Phase,
    ) -> bool {
        self.server.with_cluster(|c| {
            let Some(rt) = c.store.registry.find_kind(api_version, kind) else {
                return false;
            };
            let Some(obj) = c.store.get(&rt.gr(), namespace, name) else {
                return false;
            };
            let uid = meta::uid(obj).to_string();
            c.sim.phases.insert(uid, phase);
            c.store.dirty = true;
            true
        })
    }
}

impl RunningServer {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig for this server (plain HTTP, a dummy token), with `namespace` as
    /// the context's namespace.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: workbus-test\n  cluster:\n    server: {url}\ncontexts:\n- name: workbus-test\n  context:\n    cluster: workbus-test\n    user: workbus-test\n    namespace: {namespace}\ncurrent-context: workbus-test\nusers:\n- name: workbus-test\n  user:\n    token: workbus-test-token\n",
            url = self.url
        )
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>, namespace: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig(namespace))
    }

    /// Runs `f` on the cluster under its lock, then the controllers.
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        let mut c = self.shared.lock();
        let r = f(&mut c);
        c.reconcile();
        let rv = c.store.resource_version();
        self.shared.changed.send_replace(rv);
        r
    }

    /// One object as stored (storage version), by `apiVersion` and `kind`.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let c = self.shared.lock();
        let rt = c.store.registry.find_kind(api_version, kind)?;
        c.store.get(&rt.gr(), namespace, name).cloned()
    }

    /// Objects of a kind, in one namespace or all.
    pub fn objects(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let c = self.shared.lock();
        let Some(rt) = c.store.registry.find_kind(api_version, kind) else {
            return Vec::new();
        };
        c.store.list(&rt.gr(), namespace).cloned().collect()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.resource_version()
    }

    /// Open watches.
    pub fn watch_count(&self) -> usize {
        self.shared.lock().store.watcher_count()
    }

    pub fn simulator(&self) -> Simulator<'_> {
        Simulator { server: self }
    }

    /// Waits until `pred` holds on the cluster, re-checking after every change; false
    /// after `timeout`.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&Cluster) -> bool) -> bool {
        let mut rx = self.shared.changed.subscribe();
        let check = || pred(&self.shared.lock());
        tokio::time::timeout(timeout, async {
            loop {
                if check() {
                    return;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok()
    }

    /// Ends the watches, stops accepting requests, waits (up to 5 s) for the listener.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.shared.lock().store.clear_watchers();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
