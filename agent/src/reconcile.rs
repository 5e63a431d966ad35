//! Applying a work's manifests to a [`Target`] and computing its status, like OCM's work
//! agent (manifestwork-semantics §2–6). Three entry points, called by the runtime:
//!
//! - [`Reconciler::apply`]: apply every manifest (kind-rank order, `ordinal` = spec
//!   index, failures isolated per manifest), remove objects dropped from the spec that
//!   this work owns, then compute the status;
//! - [`Reconciler::refresh`]: status only (Available, feedback) — no writes;
//! - [`Reconciler::cleanup`]: delete per `deleteOption` when the work is deleted.
//!
//! Status is stable: with nothing changed, `refresh` returns an identical status (same
//! transition times), so the runtime publishes only real changes.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use workbus_schemas::work::spec::{
    ManifestConfigOption, PropagationPolicy, ResourceIdentifier, UpdateStrategyType,
};
use workbus_schemas::work::status::{condition_type, find_condition, set_condition};
use workbus_schemas::work::{
    Condition, Manifest, ManifestCondition, ManifestResourceMeta, ManifestWork, ManifestWorkStatus,
    StatusFeedbackResult, Time,
};

use crate::conditions::{self, Availability};
use crate::feedback;
use crate::target::{ApplyMode, DeleteResult, ObjectRef, Owner, Target};

/// An object applied for a work (an AppliedManifestWork `appliedResources` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppliedResource {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace (`""` for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The live object's UID when applied.
    pub uid: String,
}

impl AppliedResource {
    fn at(&self) -> ObjectRef {
        ObjectRef {
            group: self.group.clone(),
            version: self.version.clone(),
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    fn same_object(&self, other: &AppliedResource) -> bool {
        // Version is ignored, as upstream does.
        (&self.group, &self.resource, &self.namespace, &self.name)
            == (&other.group, &other.resource, &other.namespace, &other.name)
    }
}

/// What the agent keeps per work between reconciles (persisted by the runtime).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkState {
    /// Objects applied, sorted by group, version, resource, namespace, name.
    pub applied: Vec<AppliedResource>,
    /// The work's current status.
    pub status: ManifestWorkStatus,
}

/// Result of [`Reconciler::apply`] and [`Reconciler::refresh`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileOutcome {
    /// The new status.
    pub status: ManifestWorkStatus,
    /// The applied objects.
    pub applied: Vec<AppliedResource>,
    /// When the status may change on its own next (e.g. a rollout completing).
    pub requeue_after: Option<Duration>,
}

/// Result of [`Reconciler::cleanup`].
#[derive(Debug, Clone, PartialEq)]
pub enum CleanupOutcome {
    /// Every owned object is gone (or orphaned): the deletion can be confirmed.
    Done,
    /// Objects are still being deleted.
    Pending {
        /// What is left.
        remaining: Vec<AppliedResource>,
        /// When to check again.
        requeue_after: Duration,
    },
}

/// One manifest, resolved.
struct Planned<'w> {
    ordinal: i32,
    manifest: &'w Manifest,
    meta: ManifestResourceMeta,
    at: Option<ObjectRef>,
    resolve_error: Option<String>,
    config: Merged<'w>,
}

/// The manifestConfigs that apply to one manifest, merged (§2.3).
#[derive(Default)]
struct Merged<'w> {
    feedback: Option<&'w ManifestConfigOption>,
    strategy: Option<&'w ManifestConfigOption>,
}

impl Merged<'_> {
    fn strategy(&self) -> UpdateStrategyType {
        self.strategy
            .and_then(|c| c.update_strategy.as_ref())
            .map(|s| s.kind())
            .unwrap_or(UpdateStrategyType::Update)
    }

    fn apply_mode(&self) -> Option<ApplyMode> {
        match self.strategy() {
            UpdateStrategyType::ReadOnly => None,
            UpdateStrategyType::CreateOnly => Some(ApplyMode::CreateOnly),
            UpdateStrategyType::ServerSideApply => {
                let ssa = self
                    .strategy
                    .and_then(|c| c.update_strategy.as_ref())
                    .and_then(|s| s.server_side_apply.as_ref());
                Some(ApplyMode::ServerSideApply {
                    field_manager: ssa
                        .map(|s| s.field_manager.clone())
                        .filter(|f| !f.is_empty())
                        .unwrap_or_else(|| "work-agent".into()),
                    force: ssa.is_some_and(|s| s.force),
                })
            }
            _ => Some(ApplyMode::Update),
        }
    }
}

/// Applies works to a target and computes their status.
pub struct Reconciler<T> {
    target: Arc<T>,
    max_json_raw: usize,
}

/// Kind rank for apply order (§2.1): cluster-level prerequisites first, workloads late.
fn kind_rank(kind: &str) -> u32 {
    match kind {
        "PriorityClass"
        | "Namespace"
        | "CustomResourceDefinition"
        | "StorageClass"
        | "PersistentVolume"
        | "PodSecurityPolicy" => 0,
        "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => 1,
        "NetworkPolicy"
        | "ResourceQuota"
        | "LimitRange"
        | "PodDisruptionBudget"
        | "ServiceAccount" => 2,
        "Secret" | "ConfigMap" | "PersistentVolumeClaim" => 3,
        "Service" => 4,
        "DaemonSet"
        | "Pod"
        | "ReplicationController"
        | "ReplicaSet"
        | "Deployment"
        | "HorizontalPodAutoscaler"
        | "StatefulSet"
        | "Job"
        | "CronJob" => 5,
        "APIService"
        | "MutatingWebhookConfiguration"
        | "ValidatingWebhookConfiguration"
        | "ValidatingAdmissionPolicy"
        | "ValidatingAdmissionPolicyBinding" => 6,
        "" => 1001,
        _ => 1000,
    }
}

/// `*` matches any run of characters.
fn glob(pattern: &str, value: &str) -> bool {
    if pattern == "*" || pattern == value {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return false;
    }
    let mut rest = value;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn identifies(id: &ResourceIdentifier, meta: &ManifestResourceMeta) -> bool {
    id.group == meta.group
        && id.resource == meta.resource
        && glob(&id.name, &meta.name)
        && glob(&id.namespace, &meta.namespace)
}

fn owner_of(work: &ManifestWork) -> Owner {
    Owner {
        name: work.metadata.name.clone(),
        uid: work.metadata.uid.clone(),
    }
}

fn meta_key(m: &ManifestResourceMeta) -> (&str, &str, &str, &str, &str, &str) {
    (
        &m.group,
        &m.version,
        &m.kind,
        &m.resource,
        &m.namespace,
        &m.name,
    )
}

impl<T: Target> Reconciler<T> {
    /// A reconciler for `target`, with Maestro's 1 MiB JsonRaw limit.
    pub fn new(target: Arc<T>) -> Self {
        Reconciler {
            target,
            max_json_raw: feedback::DEFAULT_MAX_JSON_RAW,
        }
    }

    async fn plan<'w>(&self, work: &'w ManifestWork) -> Vec<Planned<'w>> {
        let mut planned = Vec::with_capacity(work.spec.workload.manifests.len());
        for (i, manifest) in work.spec.workload.manifests.iter().enumerate() {
            let api_version = manifest
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = manifest.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = manifest
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let namespace = manifest
                .get("metadata")
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let (group, version) = match api_version.rsplit_once('/') {
                Some((g, v)) => (g, v),
                None => ("", api_version),
            };
            let mut meta = ManifestResourceMeta {
                ordinal: i as i32,
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                name: name.into(),
                namespace: namespace.into(),
                ..ManifestResourceMeta::default()
            };
            let (at, resolve_error) = match self.target.resolve(api_version, kind).await {
                Ok(m) => {
                    meta.resource = m.resource.clone();
                    if !m.namespaced {
                        meta.namespace.clear();
                    } else if meta.namespace.is_empty() {
                        meta.namespace = "default".into();
                    }
                    let at = ObjectRef {
                        group: m.group,
                        version: m.version,
                        resource: m.resource,
                        namespace: meta.namespace.clone(),
                        name: meta.name.clone(),
                    };
                    (Some(at), None)
                }
                Err(e) => (None, Some(e.to_string())),
            };
            let mut config = Merged::default();
            for c in &work.spec.manifest_configs {
                if !identifies(&c.resource_identifier, &meta) {
                    continue;
                }
                if config.feedback.is_none() && !c.feedback_rules.is_empty() {
                    config.feedback = Some(c);
                }
                if config.strategy.is_none() && c.update_strategy.is_some() {
                    config.strategy = Some(c);
                }
            }
            planned.push(Planned {
                ordinal: i as i32,
                manifest,
                meta,
                at,
                resolve_error,
                config,
            });
        }
        planned
    }

    /// Applies the work's manifests and computes its status.
    pub async fn apply(
        &self,
        work: &ManifestWork,
        state: &WorkState,
        now: Time,
    ) -> ReconcileOutcome {
        let planned = self.plan(work).await;
        let owner = owner_of(work);
        let mut order: Vec<&Planned> = planned.iter().collect();
        order.sort_by_key(|p| kind_rank(&p.meta.kind));
        let mut applied_conditions: Vec<(i32, Condition)> = Vec::new();
        let mut applied = Vec::new();
        for p in order {
            let cond = match (&p.at, &p.resolve_error) {
                (_, Some(e)) => conditions::manifest_apply_failed(e, now),
                (None, None) => conditions::manifest_apply_failed("unresolved resource", now),
                (Some(at), None) => match p.config.apply_mode() {
                    None => conditions::manifest_applied(now), // ReadOnly: never written
                    Some(mode) => {
                        let mut object = Value::Object(p.manifest.clone());
                        // A uid inside a manifest is ignored (conformance item 4).
                        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove("uid");
                        }
                        match self.target.apply(at, &object, &mode, Some(&owner)).await {
                            Ok(live) => {
                                applied.push(AppliedResource {
                                    group: at.group.clone(),
                                    version: at.version.clone(),
                                    resource: at.resource.clone(),
                                    namespace: at.namespace.clone(),
                                    name: at.name.clone(),
                                    uid: live["metadata"]["uid"]
                                        .as_str()
                                        .unwrap_or_default()
                                        .to_string(),
                                });
                                conditions::manifest_applied(now)
                            }
                            Err(e) => conditions::manifest_apply_failed(&e.to_string(), now),
                        }
                    }
                },
            };
            applied_conditions.push((p.ordinal, cond));
        }
        applied.sort();
        applied.dedup();
        // Objects this work applied before but no longer lists (§6): delete if still ours.
        for old in &state.applied {
            if !applied.iter().any(|a| a.same_object(old)) {
                self.release(old, &owner, true).await;
            }
        }
        let (status, requeue_after) = self
            .observe(work, &planned, &applied_conditions, &state.status, now)
            .await;
        ReconcileOutcome {
            status,
            applied,
            requeue_after,
        }
    }

    /// Recomputes status (Available, feedback) without writing anything.
    pub async fn refresh(
        &self,
        work: &ManifestWork,
        state: &WorkState,
        now: Time,
    ) -> ReconcileOutcome {
        let planned = self.plan(work).await;
        let previous = &state.status.resource_status.manifests;
        let applied_conditions: Vec<(i32, Condition)> = planned
            .iter()
            .filter_map(|p| {
                previous
                    .iter()
                    .find(|m| m.resource_meta.ordinal == p.ordinal)
                    .and_then(|m| find_condition(&m.conditions, condition_type::APPLIED).cloned())
                    .map(|c| (p.ordinal, c))
            })
            .collect();
        let (status, requeue_after) = self
            .observe(work, &planned, &applied_conditions, &state.status, now)
            .await;
        ReconcileOutcome {
            status,
            applied: state.applied.clone(),
            requeue_after,
        }
    }

    async fn observe(
        &self,
        work: &ManifestWork,
        planned: &[Planned<'_>],
        applied_conditions: &[(i32, Condition)],
        previous: &ManifestWorkStatus,
        now: Time,
    ) -> (ManifestWorkStatus, Option<Duration>) {
        let generation = work.metadata.generation;
        let mut manifests = Vec::with_capacity(planned.len());
        let mut requeue: Option<Duration> = None;
        for p in planned {
            // Keep history: match the previous entry by full meta, else without ordinal.
            let prev = previous
                .resource_status
                .manifests
                .iter()
                .find(|m| {
                    meta_key(&m.resource_meta) == meta_key(&p.meta)
                        && m.resource_meta.ordinal == p.ordinal
                })
                .or_else(|| {
                    previous
                        .resource_status
                        .manifests
                        .iter()
                        .find(|m| meta_key(&m.resource_meta) == meta_key(&p.meta))
                });
            let mut mc = prev.cloned().unwrap_or_else(|| ManifestCondition {
                resource_meta: p.meta.clone(),
                status_feedback: StatusFeedbackResult::default(),
                conditions: Vec::new(),
                extra: Default::default(),
            });
            mc.resource_meta = p.meta.clone();
            if let Some((_, c)) = applied_conditions.iter().find(|(o, _)| *o == p.ordinal) {
                set_condition(&mut mc.conditions, c.clone(), now);
            }
            let availability = match &p.at {
                None => Availability::IncompleteMeta,
                Some(at) => match self.target.get(at).await {
                    Ok(Some(live)) => {
                        let gvk = (
                            p.meta.group.as_str(),
                            p.meta.version.as_str(),
                            p.meta.kind.as_str(),
                        );
                        let rules = p.config.feedback.map(|c| c.feedback_rules.as_slice());
                        let fb =
                            rules.map(|r| feedback::evaluate(r, &live, gvk, self.max_json_raw));
                        let errors = fb.as_ref().map(|f| f.errors.clone());
                        let values = fb.map(|f| f.values).unwrap_or_default();
                        if values != mc.status_feedback.values {
                            // The transition time marks the last value change (§3.2).
                            workbus_schemas::work::status::remove_condition(
                                &mut mc.conditions,
                                condition_type::STATUS_FEEDBACK_SYNCED,
                            );
                            mc.status_feedback.values = values;
                        }
                        set_condition(
                            &mut mc.conditions,
                            conditions::feedback_synced(errors.as_deref(), now),
                            now,
                        );
                        if let Some(d) = self.target.next_change(at) {
                            requeue = Some(requeue.map_or(d, |r: Duration| r.min(d)));
                        }
                        Availability::Exists
                    }
                    Ok(None) => Availability::Missing,
                    Err(e) => Availability::FetchFailed(e.to_string()),
                },
            };
            set_condition(
                &mut mc.conditions,
                conditions::manifest_available(availability, now),
                now,
            );
            manifests.push(mc);
        }
        let mut status = previous.clone();
        status.resource_status.manifests = manifests;
        if !status.resource_status.manifests.is_empty() || !applied_conditions.is_empty() {
            let applied =
                conditions::work_applied(&status.resource_status.manifests, generation, now);
            set_condition(&mut status.conditions, applied, now);
            let available =
                conditions::work_available(&status.resource_status.manifests, generation, now);
            set_condition(&mut status.conditions, available, now);
        }
        (status, requeue)
    }

    /// Releases one applied object from `owner`: delete it when `delete` and nobody else
    /// owns it (UID precondition), else only drop our owner reference. True when it no
    /// longer needs attention.
    async fn release(&self, r: &AppliedResource, owner: &Owner, delete: bool) -> bool {
        let at = r.at();
        let live = match self.target.get(&at).await {
            Ok(Some(live)) => live,
            Ok(None) => return true,
            Err(_) => return false,
        };
        let owners: Vec<&str> = live["metadata"]["ownerReferences"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["uid"].as_str()).collect())
            .unwrap_or_default();
        if !owners.contains(&owner.uid.as_str()) {
            return true; // not ours (any more)
        }
        if !delete || owners.len() > 1 {
            return self.target.remove_owner(&at, &owner.uid).await.is_ok();
        }
        let uid = (!r.uid.is_empty()).then_some(r.uid.as_str());
        matches!(
            self.target.delete(&at, uid).await,
            Ok(DeleteResult::Gone) | Ok(DeleteResult::UidMismatch)
        )
    }

    /// Deletes the work's applied objects per its `deleteOption` (§2.2, §6).
    pub async fn cleanup(&self, work: &ManifestWork, state: &WorkState) -> CleanupOutcome {
        let owner = owner_of(work);
        let option = work.spec.delete_option.as_ref();
        let policy = option
            .map(|o| o.policy())
            .unwrap_or(PropagationPolicy::Foreground);
        let mut remaining = Vec::new();
        for r in &state.applied {
            let orphan = match &policy {
                PropagationPolicy::Foreground => false,
                PropagationPolicy::Orphan => true,
                // Any other value, including empty, is evaluated with the selective rules.
                _ => option
                    .and_then(|o| o.selectively_orphans.as_ref())
                    .is_some_and(|s| {
                        s.orphaning_rules.iter().any(|rule| {
                            rule.group == r.group
                                && rule.resource == r.resource
                                && rule.namespace == r.namespace
                                && rule.name == r.name
                        })
                    }),
            };
            if !self.release(r, &owner, !orphan).await {
                remaining.push(r.clone());
            }
        }
        if remaining.is_empty() {
            CleanupOutcome::Done
        } else {
            CleanupOutcome::Pending {
                remaining,
                requeue_after: Duration::from_secs(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "x"));
        assert!(glob("web-*", "web-1"));
        assert!(glob("*-db", "main-db"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("web-*", "api-1"));
        assert!(!glob("x", "y"));
    }

    #[test]
    fn ranks() {
        assert!(kind_rank("Namespace") < kind_rank("ConfigMap"));
        assert!(kind_rank("ConfigMap") < kind_rank("Deployment"));
        assert!(kind_rank("Deployment") < kind_rank("Widget"));
    }
}
