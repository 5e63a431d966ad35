//! # The write pipeline: what happens to an object between a request and storage
//!
//! [`Cluster`] owns the store and runs the apiserver's sequence for every write, whether
//! it comes from a client or from one of the simulated controllers:
//!
//! - **create**: namespace lifecycle admission (`namespaces "x" not found`, `403` while
//!   terminating), system fields (`uid`, `creationTimestamp`, `generation: 1`), the
//!   type's `PrepareForCreate`, defaulting (or the CRD schema's pruning and defaults),
//!   validation, managed fields, then `409 AlreadyExists` if the name is taken;
//! - **update** (`PUT`, patches, apply, `/status`, `/finalize`): identity and system
//!   fields kept, the subresource rules (main resource vs status), no new finalizers on an
//!   object being deleted, defaulting, validation including immutable fields, the
//!   generation rule, managed fields; an object being deleted whose last finalizer goes is
//!   deleted; a write that changes nothing is not stored (no new resourceVersion).
//!
//! `dryRun=All` runs all of it and stores nothing.

use std::net::Ipv4Addr;

use serde_json::Value;

use crate::config::ServerConfig;
use crate::crd;
use crate::defaults;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::managed::{self, Actor, Manager};
use crate::meta;
use crate::registry::{GroupResource, ResourceType};
use crate::simulator::SimState;
use crate::store::Store;
use crate::strategy;
use crate::validation;

/// Who writes, and whether for real.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    pub actor: Actor,
    pub dry_run: bool,
}

impl WriteCtx {
    /// A controller's write (`kube-controller-manager` and friends).
    pub fn controller(manager: &str, api_version: &str, subresource: &str) -> Self {
        WriteCtx {
            actor: Actor {
                manager: manager.to_string(),
                api_version: api_version.to_string(),
                subresource: subresource.to_string(),
                now: meta::now(),
            },
            dry_run: false,
        }
    }
}

/// How the managed fields of an update are found.
pub enum ManagedMode {
    /// Computed as an update by the actor.
    Update,
    /// Already computed by an apply.
    Applied(Vec<Manager>),
}

/// The store and the simulated cluster around it.
pub struct Cluster {
    pub store: Store,
    pub config: ServerConfig,
    pub sim: SimState,
    next_service_ip: u32,
}

pub fn namespaces_gr() -> GroupResource {
    GroupResource::new("", "namespaces")
}

pub fn crds_gr() -> GroupResource {
    GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions")
}

/// The object without `resourceVersion` (for no-op detection).
fn without_version(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    o
}

/// All finalizers are gone (for a Namespace, also `spec.finalizers`).
pub fn finalized(rt: &ResourceType, obj: &Value) -> bool {
    let spec_done = !(rt.group.is_empty() && rt.kind == "Namespace")
        || obj["spec"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
    meta::finalizers(obj).is_empty() && spec_done
}

impl Cluster {
    pub fn new(config: ServerConfig) -> Self {
        Cluster {
            store: Store::new(config.history_limit),
            sim: SimState::default(),
            config,
            next_service_ip: 1,
        }
    }

    fn allocate_service_ip(&mut self) -> Ipv4Addr {
        let n = self.next_service_ip;
        self.next_service_ip += 1;
        Ipv4Addr::new(10, 96, (n / 250) as u8, (n % 250 + 1) as u8)
    }

    /// The managers of a request body's `managedFields`, when it carries usable ones
    /// (`Some(vec![])` for the reset form `[{}]`).
    fn requested_managers(obj: &Value) -> Option<Vec<Manager>> {
        let raw = meta::metadata(obj)?.get("managedFields")?;
        let list = raw.as_array()?;
        if list.is_empty() {
            return None;
        }
        if list.len() == 1 && list[0].as_object().is_some_and(|m| m.is_empty()) {
            return Some(Vec::new());
        }
        managed::decode(obj).ok()
    }

    fn invalid(rt: &ResourceType, obj: &Value, errs: Vec<FieldError>) -> ApiError {
        ApiError::invalid(&rt.kind, &rt.group, meta::name(obj), errs)
    }

    fn type_errors(rt: &ResourceType, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            errs.extend(crd::validate(obj));
        }
        if let Some(schema) = rt.crd.as_ref().and_then(|c| c.schema.as_ref()) {
            errs.extend(crd::validate_object(schema, obj));
        }
        errs
    }

    fn default_and_prune(rt: &ResourceType, obj: &mut Value) {
        defaults::apply(rt, obj);
        if let Some(schema) = rt.crd.as_ref().and_then(|c| c.schema.as_ref()) {
            crd::prune_and_default(schema, obj);
        }
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            crd::default(obj);
        }
        meta::strip_nulls(obj);
    }

    /// Namespace lifecycle admission and the CRD-terminating check.
    pub fn admit_create(&self, rt: &ResourceType, namespace: &str, name: &str) -> ApiResult<()> {
        if rt.namespaced {
            match self.store.get(&namespaces_gr(), "", namespace) {
                None => return Err(ApiError::not_found(&namespaces_gr(), namespace)),
                Some(ns) if meta::is_deleting(ns) => {
                    let why = format!(
                        "unable to create new content in namespace {namespace} because it is being terminated"
                    );
                    let mut e = ApiError::forbidden(&rt.gr(), name, &why);
                    if let Some(d) = e.details.as_mut() {
                        d["causes"] = serde_json::json!([{
                            "reason": "NamespaceTerminating",
                            "message": why,
                            "field": "metadata.namespace"
                        }]);
                    }
                    return Err(e);
                }
                Some(_) => {}
            }
        }
        if let Some(c) = &rt.crd
            && self
                .store
                .get(&crds_gr(), "", &c.crd_name)
                .is_some_and(meta::is_deleting)
        {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            ));
        }
        Ok(())
    }

    /// Creates `obj` (namespace and name already settled by the caller).
    pub fn create_object(
        &mut self,
        rt: &ResourceType,
        mut obj: Value,
        ctx: &WriteCtx,
        applied: Option<Vec<Manager>>,
    ) -> ApiResult<Value> {
        let gr = rt.gr();
        let namespace = meta::namespace(&obj).to_string();
        let name = meta::name(&obj).to_string();
        self.admit_create(rt, &namespace, &name)?;
        let requested = Self::requested_managers(&obj);
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), Value::String(rt.storage_api_version()));
            o.insert("kind".into(), Value::String(rt.kind.clone()));
        }
        {
            let m = meta::metadata_mut(&mut obj);
            m.insert(
                "uid".into(),
                Value::String(uuid::Uuid::new_v4().to_string()),
            );
            m.insert(
                "creationTimestamp".into(),
                Value::String(ctx.actor.now.clone()),
            );
            for f in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "resourceVersion",
                "managedFields",
            ] {
                m.remove(f);
            }
            if rt.generation == crate::registry::GenerationRule::None {
                m.remove("generation");
            } else {
                m.insert("generation".into(), Value::from(1));
            }
        }
        let mut next_ip = None;
        if rt.kind == "Service" && rt.group.is_empty() {
            next_ip = Some(self.allocate_service_ip());
        }
        strategy::prepare_create(rt, &mut obj, || {
            next_ip.unwrap_or(Ipv4Addr::new(10, 96, 0, 1))
        });
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            let mut f = meta::finalizers(&obj);
            if !f.iter().any(|x| x == crd::CLEANUP_FINALIZER) {
                f.push(crd::CLEANUP_FINALIZER.to_string());
            }
            meta::set_finalizers(&mut obj, &f);
        }
        Self::default_and_prune(rt, &mut obj);
        let mut errs = validation::validate_create(rt, &obj);
        errs.extend(Self::type_errors(rt, &obj));
        if !errs.is_empty() {
            return Err(Self::invalid(rt, &obj, errs));
        }
        let managers = match applied {
            Some(m) => m,
            None => {
                let (zero, schema, ignore) = (
                    strategy::zero(rt),
                    strategy::schema(rt),
                    strategy::ignore(rt, None),
                );
                let cx = managed::Context {
                    actor: &ctx.actor,
                    schema: &schema,
                    ignore: &ignore,
                    zero: &zero,
                };
                managed::update(requested.unwrap_or_default(), None, &obj, &cx).unwrap_or_default()
            }
        };
        managed::store(&mut obj, &managers);
        if self.store.get(&gr, &namespace, &name).is_some() {
            return Err(ApiError::already_exists(&gr, &name));
        }
        if ctx.dry_run {
            return Ok(obj);
        }
        Ok(self.store.put(&gr, obj))
    }

    /// Updates the stored `old` to `new` through `subresource`.
    pub fn update_object(
        &mut self,
        rt: &ResourceType,
        old: &Value,
        mut new: Value,
        subresource: Option<&str>,
        ctx: &WriteCtx,
        mode: ManagedMode,
    ) -> ApiResult<Value> {
        let gr = rt.gr();
        let requested = Self::requested_managers(&new);
        if let Some(o) = new.as_object_mut() {
            o.insert("apiVersion".into(), Value::String(rt.storage_api_version()));
            o.insert("kind".into(), Value::String(rt.kind.clone()));
        }
        {
            let old_meta = meta::metadata(old).cloned().unwrap_or_default();
            let m = meta::metadata_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "name",
                "namespace",
                "generation",
                "resourceVersion",
            ] {
                match old_meta.get(f) {
                    Some(v) => {
                        m.insert(f.into(), v.clone());
                    }
                    None => {
                        m.remove(f);
                    }
                }
            }
            m.remove("selfLink");
            m.remove("managedFields");
        }
        let mut new = match subresource {
            Some("status") => strategy::status_update(rt, old, &new),
            Some("finalize") => {
                let mut out = old.clone();
                out["spec"]["finalizers"] = new["spec"]["finalizers"].clone();
                if out["spec"]["finalizers"].is_null()
                    && let Some(s) = out["spec"].as_object_mut()
                {
                    s.remove("finalizers");
                }
                out
            }
            _ => {
                strategy::prepare_update(rt, old, &mut new);
                new
            }
        };
        if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        if meta::is_deleting(old) {
            let before = meta::finalizers(old);
            let added: Vec<String> = meta::finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                let list = added
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Self::invalid(
                    rt,
                    old,
                    vec![FieldError::forbidden(
                        "metadata.finalizers",
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                        ),
                    )],
                ));
            }
        }
        Self::default_and_prune(rt, &mut new);
        let mut errs = validation::validate_update(rt, old, &new);
        errs.extend(Self::type_errors(rt, &new));
        if !errs.is_empty() {
            return Err(Self::invalid(rt, &new, errs));
        }
        if subresource.is_none() && strategy::generation_changes(rt, old, &new) {
            let g = meta::generation(old) + 1;
            meta::metadata_mut(&mut new).insert("generation".into(), Value::from(g));
        }
        let managers = match mode {
            ManagedMode::Applied(m) => m,
            ManagedMode::Update => {
                let base = requested.unwrap_or_else(|| managed::decode(old).unwrap_or_default());
                let (zero, schema, ignore) = (
                    strategy::zero(rt),
                    strategy::schema(rt),
                    strategy::ignore(rt, subresource),
                );
                let cx = managed::Context {
                    actor: &ctx.actor,
                    schema: &schema,
                    ignore: &ignore,
                    zero: &zero,
                };
                managed::update(base, Some(old), &new, &cx).unwrap_or_default()
            }
        };
        managed::store(&mut new, &managers);
        let ns = meta::namespace(old).to_string();
        let name = meta::name(old).to_string();
        if meta::is_deleting(&new) && finalized(rt, &new) {
            if ctx.dry_run {
                return Ok(new);
            }
            return self
                .store
                .remove(&gr, &ns, &name)
                .ok_or_else(|| ApiError::not_found(&gr, &name));
        }
        if without_version(&new) == without_version(old) {
            return Ok(old.clone());
        }
        if ctx.dry_run {
            return Ok(new);
        }
        Ok(self.store.put(&gr, new))
    }

    /// A status write by a controller (the simulator), as an update of `/status`.
    pub fn write_status(
        &mut self,
        rt: &ResourceType,
        old: &Value,
        status: Value,
        manager: &str,
    ) -> ApiResult<Value> {
        let mut new = old.clone();
        new["status"] = status;
        let ctx = WriteCtx::controller(manager, &rt.storage_api_version(), "status");
        self.update_object(rt, old, new, Some("status"), &ctx, ManagedMode::Update)
    }
}
