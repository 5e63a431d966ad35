//! # `DELETE`: preconditions, propagation policy, finalizers, deletionTimestamp
//!
//! The generic registry's `Delete` (`registry/generic/registry/store.go`):
//!
//! - preconditions (`uid`, `resourceVersion`) that do not hold are `409 Conflict`
//!   (`Precondition failed: UID in precondition: …`);
//! - the propagation policy (`Orphan`, `Background` — the default — or `Foreground`, or
//!   the older `orphanDependents`) becomes the `orphan` or `foregroundDeletion`
//!   finalizer (`deletionFinalizersForGarbageCollection`);
//! - an object with finalizers is not removed: it gets `deletionTimestamp`,
//!   `deletionGracePeriodSeconds: 0` and, the first time, `generation + 1`, and the
//!   answer is the object; the finalizers' owners (the garbage collector in `gc.rs`, or
//!   whoever set them) remove them and the last removal deletes the object;
//! - an object without finalizers is removed at once; the answer is a `Status` of
//!   success, or the object for the types that return it (Pods, Services,
//!   ServiceAccounts, StorageClasses);
//! - a Namespace is always finalized by its controller (`spec.finalizers: [kubernetes]`):
//!   it turns `Terminating`; `default`, `kube-system` and `kube-public` cannot be deleted.
//!
//! Pods are deleted at once (no kubelet to wait for: graceful termination is not
//! simulated).

use serde_json::{Value, json};

use crate::cluster::{Cluster, WriteCtx, finalized};
use crate::error::{ApiError, ApiResult, FieldError, success_status};
use crate::meta;
use crate::registry::ResourceType;

pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// `DeleteOptions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOptions {
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` body (JSON) and the query parameters.
    pub fn parse(body: &[u8], query: &crate::http::Query) -> ApiResult<DeleteOptions> {
        let mut o = DeleteOptions::default();
        let mut dry_run: Vec<String> = query.all("dryRun");
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
            if !v.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding DeleteOptions: not an object",
                ));
            }
            o.propagation_policy = v["propagationPolicy"].as_str().map(str::to_string);
            o.orphan_dependents = v["orphanDependents"].as_bool();
            o.uid = v["preconditions"]["uid"].as_str().map(str::to_string);
            o.resource_version = v["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
            if let Some(d) = v["dryRun"].as_array() {
                dry_run.extend(d.iter().filter_map(|x| x.as_str().map(str::to_string)));
            }
        } else {
            o.propagation_policy = query.get("propagationPolicy").map(str::to_string);
            if let Some(b) = query.get("orphanDependents") {
                o.orphan_dependents = Some(b == "true");
            }
        }
        let mut errs = Vec::new();
        if let Some(p) = &o.propagation_policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                errs.push(FieldError::not_supported(
                    "propagationPolicy",
                    &Value::from(p.as_str()),
                    &["Foreground", "Background", "Orphan"],
                ));
            } else if o.orphan_dependents.is_some() {
                errs.push(FieldError::invalid(
                    "propagationPolicy",
                    &Value::from(p.as_str()),
                    "orphanDependents and deletionPropagation cannot be both set",
                ));
            }
        }
        errs.extend(crate::rest::dry_run_errors(&dry_run));
        if !errs.is_empty() {
            return Err(ApiError::invalid("DeleteOptions", "meta.k8s.io", "", errs));
        }
        o.dry_run = !dry_run.is_empty();
        Ok(o)
    }
}

/// `deletionFinalizersForGarbageCollection`: the finalizers after this delete.
fn gc_finalizers(obj: &Value, opts: &DeleteOptions) -> Vec<String> {
    let existing = meta::finalizers(obj);
    let orphan = match (opts.orphan_dependents, opts.propagation_policy.as_deref()) {
        (Some(o), _) => o,
        (None, Some("Orphan")) => true,
        (None, Some(_)) => false,
        (None, None) => existing.iter().any(|f| f == ORPHAN_FINALIZER),
    };
    let foreground = match (opts.orphan_dependents, opts.propagation_policy.as_deref()) {
        (Some(_), _) => false,
        (None, Some("Foreground")) => true,
        (None, Some(_)) => false,
        (None, None) => existing.iter().any(|f| f == FOREGROUND_FINALIZER),
    };
    let mut out: Vec<String> = existing
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    if orphan {
        out.push(ORPHAN_FINALIZER.to_string());
    }
    if foreground {
        out.push(FOREGROUND_FINALIZER.to_string());
    }
    out
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

impl Cluster {
    /// Deletes one object; returns the HTTP code and the answer.
    pub fn delete_object(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
        ctx: &WriteCtx,
    ) -> ApiResult<(u16, Value)> {
        let gr = rt.gr();
        let Some(old) = self.store.get(&gr, namespace, name).cloned() else {
            return Err(ApiError::not_found(&gr, name));
        };
        if let Some(uid) = &opts.uid
            && uid != meta::uid(&old)
        {
            return Err(ApiError::precondition(
                &gr,
                name,
                "UID",
                uid,
                meta::uid(&old),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && rv != meta::resource_version(&old)
        {
            return Err(ApiError::precondition(
                &gr,
                name,
                "ResourceVersion",
                rv,
                meta::resource_version(&old),
            ));
        }
        let is_namespace = rt.group.is_empty() && rt.kind == "Namespace";
        if is_namespace && matches!(name, "default" | "kube-system" | "kube-public") {
            return Err(ApiError::forbidden(
                &gr,
                name,
                "this namespace may not be deleted",
            ));
        }
        let accepted = if opts.orphan_dependents == Some(false) {
            202
        } else {
            200
        };
        let finalizers = gc_finalizers(&old, opts);
        let update_finalizers = !same_set(&finalizers, &meta::finalizers(&old));
        let pending = !finalizers.is_empty() || (is_namespace && !finalized(rt, &old));
        if meta::is_deleting(&old) {
            if !update_finalizers {
                return Ok((accepted, crate::rest::to_version(&old, rt)));
            }
            let mut new = old.clone();
            meta::set_finalizers(&mut new, &finalizers);
            if ctx.dry_run {
                return Ok((accepted, crate::rest::to_version(&new, rt)));
            }
            let out = if finalized(rt, &new) {
                self.store.remove(&gr, namespace, name)
            } else {
                Some(self.store.put(&gr, new))
            };
            let out = out.ok_or_else(|| ApiError::not_found(&gr, name))?;
            return Ok((accepted, crate::rest::to_version(&out, rt)));
        }
        if pending {
            let mut new = old.clone();
            meta::set_finalizers(&mut new, &finalizers);
            let m = meta::metadata_mut(&mut new);
            m.insert(
                "deletionTimestamp".into(),
                Value::String(ctx.actor.now.clone()),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(g) = m.get("generation").and_then(Value::as_i64)
                && g > 0
            {
                m.insert("generation".into(), json!(g + 1));
            }
            if is_namespace {
                new["status"]["phase"] = json!("Terminating");
            }
            if ctx.dry_run {
                return Ok((accepted, crate::rest::to_version(&new, rt)));
            }
            let out = self.store.put(&gr, new);
            return Ok((accepted, crate::rest::to_version(&out, rt)));
        }
        let gone = if ctx.dry_run {
            old
        } else {
            self.store
                .remove(&gr, namespace, name)
                .ok_or_else(|| ApiError::not_found(&gr, name))?
        };
        if rt.returns_deleted_object {
            Ok((200, crate::rest::to_version(&gone, rt)))
        } else {
            Ok((200, success_status(&gr, name, meta::uid(&gone))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_becomes_finalizers() {
        let o = json!({"metadata": {"finalizers": ["x/y"]}});
        let fg = DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            ..Default::default()
        };
        assert_eq!(gc_finalizers(&o, &fg), ["x/y", "foregroundDeletion"]);
        let orphan = DeleteOptions {
            orphan_dependents: Some(true),
            ..Default::default()
        };
        assert_eq!(gc_finalizers(&o, &orphan), ["x/y", "orphan"]);
        let bg = DeleteOptions {
            propagation_policy: Some("Background".into()),
            ..Default::default()
        };
        let deleting = json!({"metadata": {"finalizers": ["orphan"]}});
        assert!(gc_finalizers(&deleting, &bg).is_empty());
        assert_eq!(
            gc_finalizers(&deleting, &DeleteOptions::default()),
            ["orphan"]
        );
    }
}
