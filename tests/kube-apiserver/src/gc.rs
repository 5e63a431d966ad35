//! # The garbage collector and the namespace controller
//!
//! The garbage collector (`pkg/controller/garbagecollector`) on owner references:
//!
//! - a dependent whose owners are all gone (no object with that uid — a re-created
//!   namesake does not count) is deleted, with `Background` propagation unless its
//!   own finalizers say `orphan` or `foregroundDeletion`; one that still has a live owner
//!   only loses the references to the gone ones;
//! - an owner deleted with `Orphan` (finalizer `orphan`): its dependents lose their
//!   reference to it, then the finalizer goes and the owner is deleted;
//! - an owner deleted with `Foreground` (finalizer `foregroundDeletion`): every
//!   dependent is deleted (in foreground itself when it has dependents of its own); the
//!   owner goes once no dependent with `blockOwnerDeletion: true` is left;
//! - references it cannot resolve (an unknown kind, a namespaced owner of a
//!   cluster-scoped dependent) are left alone, as the real collector does.
//!
//! The namespace controller: a Namespace being deleted has everything in it deleted
//! (default propagation); once it is empty, the `kubernetes` finalizer is removed
//! through `/finalize` and the Namespace goes. It also keeps, in every active
//! namespace, the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap a real
//! cluster's controllers create.
//!
//! These run after every write, inside the same request (see `controllers.rs`), so a
//! client sees their effects as watch events and in its next read — there is no delay
//! to wait out.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::cluster::{Cluster, ManagedMode, WriteCtx, finalized, namespaces_gr};
use crate::delete::{DeleteOptions, FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::meta;
use crate::registry::{GroupResource, ResourceType};

const GC_MANAGER: &str = "kube-controller-manager";

/// The CA bundle every namespace's `kube-root-ca.crt` carries (a placeholder: this
/// server speaks plain HTTP).
const ROOT_CA: &str = "-----BEGIN CERTIFICATE-----\nworkbus-kube-apiserver test CA (plain HTTP)\n-----END CERTIFICATE-----\n";

#[derive(Clone)]
struct Item {
    gr: GroupResource,
    namespace: String,
    name: String,
    obj: Value,
}

enum RefState {
    Solid,
    Dangling,
    WaitingForDependents,
}

impl Cluster {
    /// Copies of the stored objects `keep` selects.
    fn snapshot(&self, keep: impl Fn(&Value) -> bool) -> Vec<Item> {
        self.store
            .all()
            .filter(|(_, v)| keep(v))
            .map(|(gr, v)| Item {
                gr: gr.clone(),
                namespace: meta::namespace(v).to_string(),
                name: meta::name(v).to_string(),
                obj: v.clone(),
            })
            .collect()
    }

    fn rt(&self, gr: &GroupResource) -> Option<std::sync::Arc<ResourceType>> {
        self.store.registry.find_gr(gr)
    }

    fn gc_ctx(rt: &ResourceType) -> WriteCtx {
        WriteCtx::controller(GC_MANAGER, &rt.storage_api_version(), "")
    }

    /// The collector's update of one object: `change` edits a copy and says whether it
    /// changed anything; true if an update was made.
    fn gc_update(
        &mut self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        change: impl FnOnce(&mut Value) -> bool,
    ) -> bool {
        let Some(rt) = self.rt(gr) else {
            return false;
        };
        let Some(current) = self.store.get(gr, ns, name).cloned() else {
            return false;
        };
        let mut new = current.clone();
        if !change(&mut new) {
            return false;
        }
        let ctx = Self::gc_ctx(&rt);
        self.update_object(&rt, &current, new, None, &ctx, ManagedMode::Update)
            .is_ok()
    }

    /// Removes owner references to `uids` from an object.
    fn drop_owner_refs(&mut self, item: &Item, uids: &[String]) -> bool {
        self.gc_update(&item.gr, &item.namespace, &item.name, |o| {
            meta::remove_owner_references(o, uids)
        })
    }

    /// Removes one finalizer from an object.
    pub(crate) fn drop_finalizer(
        &mut self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        finalizer: &str,
    ) -> bool {
        self.gc_update(gr, ns, name, |o| {
            let mut f = meta::finalizers(o);
            let before = f.len();
            f.retain(|x| x != finalizer);
            meta::set_finalizers(o, &f);
            f.len() != before
        })
    }

    fn gc_delete(&mut self, item: &Item, policy: &str) -> bool {
        let Some(rt) = self.rt(&item.gr) else {
            return false;
        };
        let opts = DeleteOptions {
            propagation_policy: Some(policy.to_string()),
            uid: Some(meta::uid(&item.obj).to_string()),
            ..Default::default()
        };
        self.delete_object(&rt, &item.namespace, &item.name, &opts, &Self::gc_ctx(&rt))
            .is_ok()
    }

    /// One pass of the garbage collector; true if it changed anything.
    pub fn garbage_collect(&mut self) -> bool {
        // Only dependents and objects being deleted matter.
        let items = self.snapshot(|v| {
            meta::is_deleting(v)
                || meta::metadata(v).is_some_and(|m| m.contains_key("ownerReferences"))
        });
        let mut refs: HashMap<&str, Vec<String>> = HashMap::new();
        for i in &items {
            let uids = meta::owner_references(&i.obj)
                .into_iter()
                .map(|r| r.uid)
                .collect();
            refs.insert(meta::uid(&i.obj), uids);
        }
        let mut dependents: HashMap<&str, Vec<&Item>> = HashMap::new();
        for i in &items {
            for owner in &refs[meta::uid(&i.obj)] {
                dependents.entry(owner.as_str()).or_default().push(i);
            }
        }
        let mut changed = false;

        // Owners being deleted with a GC finalizer.
        for owner in items.iter().filter(|i| meta::is_deleting(&i.obj)) {
            let fins = meta::finalizers(&owner.obj);
            let uid = meta::uid(&owner.obj).to_string();
            let deps = dependents.get(uid.as_str()).cloned().unwrap_or_default();
            if fins.iter().any(|f| f == ORPHAN_FINALIZER) {
                for d in &deps {
                    changed |= self.drop_owner_refs(d, std::slice::from_ref(&uid));
                }
                changed |=
                    self.drop_finalizer(&owner.gr, &owner.namespace, &owner.name, ORPHAN_FINALIZER);
            } else if fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
                for d in &deps {
                    if meta::is_deleting(&d.obj) {
                        continue;
                    }
                    let has_own = dependents
                        .get(meta::uid(&d.obj))
                        .is_some_and(|v| !v.is_empty());
                    changed |= self.attempt_delete(d, has_own);
                }
                let blocking = deps.iter().any(|d| {
                    self.store
                        .get(&d.gr, &d.namespace, &d.name)
                        .is_some_and(|live| {
                            meta::uid(live) == meta::uid(&d.obj)
                                && meta::owner_references(live)
                                    .iter()
                                    .any(|r| r.uid == uid && r.block_owner_deletion)
                        })
                });
                if !blocking {
                    changed |= self.drop_finalizer(
                        &owner.gr,
                        &owner.namespace,
                        &owner.name,
                        FOREGROUND_FINALIZER,
                    );
                }
            }
        }

        // Dependents whose owners are gone or waiting for them.
        for d in items.iter().filter(|i| !meta::is_deleting(&i.obj)) {
            if meta::owner_references(&d.obj).is_empty() {
                continue;
            }
            let has_own = dependents
                .get(meta::uid(&d.obj))
                .is_some_and(|v| !v.is_empty());
            changed |= self.attempt_delete(d, has_own);
        }
        changed
    }

    fn classify(&self, d: &Item, r: &meta::OwnerRef) -> RefState {
        let Some(owner_rt) = self.store.registry.find_kind(&r.api_version, &r.kind) else {
            return RefState::Solid;
        };
        let dep_namespaced = !d.namespace.is_empty();
        if owner_rt.namespaced && !dep_namespaced {
            return RefState::Solid;
        }
        let ns = if owner_rt.namespaced {
            d.namespace.as_str()
        } else {
            ""
        };
        match self.store.get(&owner_rt.gr(), ns, &r.name) {
            Some(o) if meta::uid(o) == r.uid => {
                if meta::is_deleting(o)
                    && meta::finalizers(o)
                        .iter()
                        .any(|f| f == FOREGROUND_FINALIZER)
                {
                    RefState::WaitingForDependents
                } else {
                    RefState::Solid
                }
            }
            _ => RefState::Dangling,
        }
    }

    /// `attemptToDeleteItem`.
    fn attempt_delete(&mut self, d: &Item, has_dependents: bool) -> bool {
        let Some(live) = self.store.get(&d.gr, &d.namespace, &d.name) else {
            return false;
        };
        if meta::uid(live) != meta::uid(&d.obj) || meta::is_deleting(live) {
            return false;
        }
        let live = Item {
            obj: live.clone(),
            ..d.clone()
        };
        let refs = meta::owner_references(&live.obj);
        if refs.is_empty() {
            return false;
        }
        let mut solid = 0;
        let mut gone = Vec::new();
        let mut waiting = 0;
        for r in &refs {
            match self.classify(&live, r) {
                RefState::Solid => solid += 1,
                RefState::Dangling => gone.push(r.uid.clone()),
                RefState::WaitingForDependents => {
                    waiting += 1;
                    gone.push(r.uid.clone());
                }
            }
        }
        if solid > 0 {
            if gone.is_empty() {
                return false;
            }
            return self.drop_owner_refs(&live, &gone);
        }
        if gone.is_empty() {
            return false;
        }
        let fins = meta::finalizers(&live.obj);
        let policy = if waiting > 0 && has_dependents {
            "Foreground"
        } else if fins.iter().any(|f| f == ORPHAN_FINALIZER) {
            "Orphan"
        } else if fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
            "Foreground"
        } else {
            "Background"
        };
        self.gc_delete(&live, policy)
    }

    /// One pass of the namespace controller; true if it changed anything.
    pub fn namespace_lifecycle(&mut self) -> bool {
        let mut changed = false;
        let namespaces: Vec<Value> = self.store.list(&namespaces_gr(), None).cloned().collect();
        let Some(ns_rt) = self.rt(&namespaces_gr()) else {
            return false;
        };
        for ns in namespaces {
            let name = meta::name(&ns).to_string();
            if !meta::is_deleting(&ns) {
                changed |= self.namespace_defaults(&name);
                continue;
            }
            let contents: Vec<Item> = self
                .snapshot(|v| meta::namespace(v) == name)
                .into_iter()
                .filter(|i| i.gr != namespaces_gr())
                .collect();
            for item in contents.iter().filter(|i| !meta::is_deleting(&i.obj)) {
                if let Some(rt) = self.rt(&item.gr) {
                    let opts = DeleteOptions::default();
                    changed |= self
                        .delete_object(&rt, &item.namespace, &item.name, &opts, &Self::gc_ctx(&rt))
                        .is_ok();
                }
            }
            let empty = !self
                .store
                .all()
                .any(|(gr, v)| *gr != namespaces_gr() && meta::namespace(v) == name);
            let has_spec_finalizer = ns["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "kubernetes"));
            if empty && has_spec_finalizer {
                let mut new = ns.clone();
                new["spec"]["finalizers"] = json!([]);
                let ctx = WriteCtx::controller(GC_MANAGER, "v1", "finalize");
                changed |= self
                    .update_object(
                        &ns_rt,
                        &ns,
                        new,
                        Some("finalize"),
                        &ctx,
                        ManagedMode::Update,
                    )
                    .is_ok();
            } else if empty && finalized(&ns_rt, &ns) {
                changed |= self.store.remove(&namespaces_gr(), "", &name).is_some();
            }
        }
        changed
    }

    /// The `default` ServiceAccount and `kube-root-ca.crt` of an active namespace.
    fn namespace_defaults(&mut self, ns: &str) -> bool {
        let mut changed = false;
        let wanted = [
            (
                GroupResource::new("", "serviceaccounts"),
                "default",
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "default", "namespace": ns}}),
            ),
            (
                GroupResource::new("", "configmaps"),
                "kube-root-ca.crt",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                                    "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                       "data": {"ca.crt": ROOT_CA}}),
            ),
        ];
        for (gr, name, obj) in wanted {
            if self.store.get(&gr, ns, name).is_some() {
                continue;
            }
            if let Some(rt) = self.rt(&gr) {
                changed |= self
                    .create_object(&rt, obj, &Self::gc_ctx(&rt), None)
                    .is_ok();
            }
        }
        changed
    }
}
