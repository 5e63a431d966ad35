//! Applying a work's manifests to a [`Target`] and computing its status, like OCM's work
//! agent (manifestwork-semantics §2–6). Three entry points, called by the runtime:
//!
//! - [`Reconciler::apply`]: apply every manifest (kind-rank order, `ordinal` = spec
//!   index, failures isolated per manifest, owner references per `deleteOption`), remove
//!   objects dropped from the spec that this work owns (UID-checked), then compute the
//!   status; an AppliedManifestWork deleted out of band while the work is live is
//!   finished first (what it owns released, its finalizer removed) and re-created, as
//!   OCM does;
//! - [`Reconciler::refresh`]: status only (Available, feedback, condition rules) — no
//!   writes; it notices an AppliedManifestWork deleted or replaced out of band and asks
//!   for an apply at once ([`ReconcileOutcome::reapply_after`]);
//! - [`Reconciler::cleanup`]: delete per `deleteOption` when the work is deleted, until
//!   every owned object is actually gone and the work's AppliedManifestWork with them.
//!
//! The owner of applied objects is the work's AppliedManifestWork ([`crate::applied_work`]),
//! created before the first apply; its `status.appliedResources` mirrors
//! [`WorkState::applied`] and is written only when that changes.
//!
//! Both report the objects configured with `feedbackScrapeType: Watch`
//! ([`ReconcileOutcome::watch`]), which the runtime watches ([`crate::feedback_watch`]).
//!
//! Status is stable: with nothing changed, `refresh` (and `apply`) return an identical
//! status (same transition times), so the runtime publishes only real changes. Like the
//! Go agent's apply cache, `apply` skips the write for an object when neither the
//! manifest nor the live object changed since this reconciler last wrote it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use workbus_schemas::work::spec::{
    FeedbackScrapeType, IgnoreField, ManifestConfigOption, PropagationPolicy, ResourceIdentifier,
    UpdateStrategyType,
};
use workbus_schemas::work::status::{
    condition_status, condition_type, find_condition, remove_condition, set_condition,
};
use workbus_schemas::work::{
    Condition, Manifest, ManifestCondition, ManifestResourceMeta, ManifestWork, ManifestWorkStatus,
    StatusFeedbackResult, Time,
};

use crate::applied_work::{self, AppliedWorkIdentity};
use crate::conditions::{self, Availability};
use crate::feedback_watch::WatchTarget;
use crate::ignore_fields::{self, Decision};
use crate::target::{ApplyMode, ObjectRef, Owner, OwnerChange, Target, TargetError};
use crate::{executor, feedback};

/// How soon to look again at objects still being deleted (finalizers running). The Go
/// agent backs off exponentially; a fixed short period keeps deletion prompt here.
const DELETION_RECHECK: Duration = Duration::from_secs(1);

pub use workbus_schemas::work::applied::AppliedResource;

/// The applied-resource entry of the live object at `at`.
fn applied_resource(at: &ObjectRef, live: &Value) -> AppliedResource {
    AppliedResource {
        group: at.group.clone(),
        version: at.version.clone(),
        resource: at.resource.clone(),
        namespace: at.namespace.clone(),
        name: at.name.clone(),
        uid: live["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// What the agent keeps per work between reconciles (persisted by the runtime).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkState {
    /// Objects applied (and objects still being deleted), sorted as §6 sorts them.
    pub applied: Vec<AppliedResource>,
    /// The work's current status.
    pub status: ManifestWorkStatus,
    /// UID of the work's AppliedManifestWork once created (empty: not yet, or a store
    /// written by an agent that used the work's own UID as owner). Lets cleanup release
    /// objects when the AppliedManifestWork was deleted out-of-band.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub applied_work_uid: String,
}

/// Result of [`Reconciler::apply`] and [`Reconciler::refresh`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileOutcome {
    /// The new status.
    pub status: ManifestWorkStatus,
    /// The applied objects (including removed ones still being deleted).
    pub applied: Vec<AppliedResource>,
    /// When the status may change on its own next (e.g. a rollout completing, or an
    /// object removed from the spec finishing its deletion); `None`: only the regular
    /// status sync applies.
    pub requeue_after: Option<Duration>,
    /// When the work must be applied again (not just refreshed) without a spec change:
    /// a manifest its executor may not apply yet is retried then (§2.4). `None`: only
    /// the regular apply schedule.
    pub reapply_after: Option<Duration>,
    /// UID of the work's AppliedManifestWork (kept from the state when unknown).
    pub applied_work_uid: String,
    /// The objects of manifests whose merged config says `feedbackScrapeType: Watch`
    /// (§2.3: the last matching config's scrape type wins) and whose kind resolved:
    /// the runtime watches them ([`crate::feedback_watch`]) instead of only polling.
    pub watch: Vec<WatchTarget>,
}

impl ReconcileOutcome {
    /// The state to keep for the next reconcile.
    pub fn into_state(self) -> WorkState {
        WorkState {
            applied: self.applied,
            status: self.status,
            applied_work_uid: self.applied_work_uid,
        }
    }
}

/// Result of [`Reconciler::cleanup`].
#[derive(Debug, Clone, PartialEq)]
pub enum CleanupOutcome {
    /// Every owned object is gone (or orphaned): the deletion can be confirmed.
    Done,
    /// Objects are still being deleted (or could not be reached).
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
    resolve_error: Option<TargetError>,
    config: Merged<'w>,
    /// The object to watch for feedback (`feedbackScrapeType: Watch`), when resolved.
    watch: Option<WatchTarget>,
}

/// What a reconcile reports to be watched: the planned manifests configured for it.
fn watch_targets(planned: &[Planned<'_>]) -> Vec<WatchTarget> {
    planned.iter().filter_map(|p| p.watch.clone()).collect()
}

/// The manifestConfigs that apply to one manifest, merged (§2.3): the first non-empty
/// feedback rules, condition rules and the first update strategy win; the last
/// matching config's feedback scrape type wins.
#[derive(Default)]
struct Merged<'w> {
    feedback: Option<&'w ManifestConfigOption>,
    conditions: Option<&'w ManifestConfigOption>,
    strategy: Option<&'w ManifestConfigOption>,
    scrape: Option<&'w ManifestConfigOption>,
}

/// How one manifest is written.
enum Write {
    /// Never written (ReadOnly).
    Never,
    /// Written in this mode.
    With(ApplyMode),
    /// A strategy this agent does not know: the manifest fails rather than guessing.
    Unsupported(String),
}

impl Merged<'_> {
    /// Whether the manifest is watched rather than polled (`Poll`, unset and unknown
    /// values poll).
    fn watched(&self) -> bool {
        self.scrape
            .is_some_and(|c| c.scrape_type() == FeedbackScrapeType::Watch)
    }

    fn write(&self) -> Write {
        let strategy = self.strategy.and_then(|c| c.update_strategy.as_ref());
        match strategy.map(|s| s.kind()) {
            None | Some(UpdateStrategyType::Update) | Some(UpdateStrategyType::Unset) => {
                Write::With(ApplyMode::Update)
            }
            Some(UpdateStrategyType::ReadOnly) => Write::Never,
            Some(UpdateStrategyType::CreateOnly) => Write::With(ApplyMode::CreateOnly),
            Some(UpdateStrategyType::ServerSideApply) => {
                let ssa = strategy.and_then(|s| s.server_side_apply.as_ref());
                Write::With(ApplyMode::ServerSideApply {
                    field_manager: ssa
                        .map(|s| s.field_manager.clone())
                        .filter(|f| !f.is_empty())
                        .unwrap_or_else(|| "work-agent".into()),
                    force: ssa.is_some_and(|s| s.force),
                })
            }
            Some(UpdateStrategyType::Other(t)) => {
                Write::Unsupported(format!("unsupported update strategy type {t:?}"))
            }
        }
    }

    /// The server-side apply `ignoreFields` of the winning update strategy (§5).
    fn ignore_fields(&self) -> &[IgnoreField] {
        self.strategy
            .and_then(|c| c.update_strategy.as_ref())
            .and_then(|s| s.server_side_apply.as_ref())
            .map(|s| s.ignore_fields.as_slice())
            .unwrap_or_default()
    }
}

/// What the apply cache remembers of the last write of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    /// Hash of (object, mode, owner change) as written.
    request: u64,
    /// The live object's resourceVersion right after the write.
    resource_version: String,
}

/// Cache key: the work's UID and the object (the owner, the AppliedManifestWork, is
/// part of the request hash: a new one means a new write).
type CacheKey = (String, ObjectRef);

/// Applies works to a target and computes their status. One per agent; cheap to call
/// concurrently for different works.
pub struct Reconciler<T> {
    target: Arc<T>,
    identity: AppliedWorkIdentity,
    max_json_raw: usize,
    written: Mutex<HashMap<CacheKey, Written>>,
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
        // No kind at all: the manifest could not be decoded.
        "" => 1001,
        _ => 1000,
    }
}

/// `*` matches any run of characters (§2.3 name/namespace globs).
fn glob(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == value; // no `*`
    };
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(pos) => rest = &rest[pos + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn identifies(id: &ResourceIdentifier, meta: &ManifestResourceMeta) -> bool {
    id.group == meta.group
        && id.resource == meta.resource
        && glob(&id.name, &meta.name)
        && glob(&id.namespace, &meta.namespace)
}

/// Whether the work's deleteOption orphans this object (§2.2): Orphan orphans all;
/// Foreground none; any other value (SelectivelyOrphan, empty, unknown) orphans what
/// the orphaning rules match exactly.
fn orphaned(work: &ManifestWork, group: &str, resource: &str, namespace: &str, name: &str) -> bool {
    let Some(option) = work.spec.delete_option.as_ref() else {
        return false;
    };
    match option.policy() {
        PropagationPolicy::Foreground => false,
        PropagationPolicy::Orphan => true,
        _ => option.selectively_orphans.as_ref().is_some_and(|s| {
            s.orphaning_rules.iter().any(|rule| {
                rule.group == group
                    && rule.resource == resource
                    && rule.namespace == namespace
                    && rule.name == name
            })
        }),
    }
}

/// Full resourceMeta without the ordinal (to find a manifest's previous status entry).
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

/// Per-manifest condition types the agent maintains itself; every other type on a
/// manifest comes from conditionRules.
const MANIFEST_BASE_TYPES: [&str; 3] = [
    condition_type::APPLIED,
    condition_type::AVAILABLE,
    condition_type::STATUS_FEEDBACK_SYNCED,
];

/// Work-level condition types not produced by conditionRules aggregation.
const WORK_BASE_TYPES: [&str; 4] = [
    condition_type::APPLIED,
    condition_type::AVAILABLE,
    condition_type::DELETING,
    condition_type::DELETED,
];

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == condition_status::TRUE)
}

fn min_requeue(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn request_hash(object: &Value, mode: &ApplyMode, owner: &OwnerChange) -> u64 {
    let mut h = DefaultHasher::new();
    object.to_string().hash(&mut h);
    format!("{mode:?}|{owner:?}").hash(&mut h);
    h.finish()
}

impl<T: Target> Reconciler<T> {
    /// A reconciler for `target`, with Maestro's 1 MiB JsonRaw limit and the default
    /// [`AppliedWorkIdentity`] (set the agent's with [`Reconciler::with_identity`]).
    pub fn new(target: Arc<T>) -> Self {
        Reconciler {
            target,
            identity: AppliedWorkIdentity::default(),
            max_json_raw: feedback::DEFAULT_MAX_JSON_RAW,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the longest `JsonRaw` feedback value reported (`--max-json-raw-length`).
    pub fn with_max_json_raw(mut self, max: usize) -> Self {
        self.max_json_raw = max;
        self
    }

    /// Names and owns AppliedManifestWorks as `identity` (the agent's hub hash and id).
    pub fn with_identity(mut self, identity: AppliedWorkIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// The identity AppliedManifestWorks are named and owned by.
    pub fn identity(&self) -> &AppliedWorkIdentity {
        &self.identity
    }

    /// The target this reconciler writes to.
    pub fn target(&self) -> &Arc<T> {
        &self.target
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<CacheKey, Written>> {
        // The map holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn plan<'w>(&self, work: &'w ManifestWork) -> Vec<Planned<'w>> {
        let mut planned = Vec::with_capacity(work.spec.workload.manifests.len());
        for (i, manifest) in work.spec.workload.manifests.iter().enumerate() {
            fn text(v: Option<&Value>) -> &str {
                v.and_then(Value::as_str).unwrap_or("")
            }
            let api_version = text(manifest.get("apiVersion"));
            let kind = text(manifest.get("kind"));
            let metadata = manifest.get("metadata");
            let name = text(metadata.and_then(|m| m.get("name")));
            let namespace = text(metadata.and_then(|m| m.get("namespace")));
            let (group, version) = match api_version.rsplit_once('/') {
                Some((g, v)) => (g, v),
                None => ("", api_version),
            };
            let ordinal = i32::try_from(i).unwrap_or(i32::MAX);
            let mut meta = ManifestResourceMeta {
                ordinal,
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                name: name.into(),
                namespace: namespace.into(),
                ..ManifestResourceMeta::default()
            };
            let mut mapping = None;
            let (at, resolve_error) = match self.target.resolve(api_version, kind).await {
                Ok(m) => {
                    mapping = Some(m.clone());
                    meta.resource = m.resource.clone();
                    if !m.namespaced {
                        meta.namespace.clear();
                    } else if meta.namespace.is_empty() {
                        // Where `kubectl apply` would put it.
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
                Err(e) => (None, Some(e)),
            };
            let mut config = Merged::default();
            for c in &work.spec.manifest_configs {
                if !identifies(&c.resource_identifier, &meta) {
                    continue;
                }
                if config.feedback.is_none() && !c.feedback_rules.is_empty() {
                    config.feedback = Some(c);
                }
                if config.conditions.is_none() && !c.condition_rules.is_empty() {
                    config.conditions = Some(c);
                }
                if config.strategy.is_none() && c.update_strategy.is_some() {
                    config.strategy = Some(c);
                }
                config.scrape = Some(c);
            }
            let watch = match (&at, mapping) {
                (Some(at), Some(resource)) if config.watched() => Some(WatchTarget {
                    resource,
                    at: at.clone(),
                }),
                _ => None,
            };
            planned.push(Planned {
                ordinal,
                manifest,
                meta,
                at,
                resolve_error,
                config,
                watch,
            });
        }
        planned
    }

    /// The previous status entry of a manifest: by full resourceMeta, else by meta
    /// without ordinal when unique (so re-ordering the spec keeps history, §3.2).
    fn previous<'s>(
        previous: &'s ManifestWorkStatus,
        p: &Planned<'_>,
    ) -> Option<&'s ManifestCondition> {
        let manifests = &previous.resource_status.manifests;
        manifests
            .iter()
            .find(|m| {
                meta_key(&m.resource_meta) == meta_key(&p.meta)
                    && m.resource_meta.ordinal == p.ordinal
            })
            .or_else(|| {
                let mut same = manifests
                    .iter()
                    .filter(|m| meta_key(&m.resource_meta) == meta_key(&p.meta));
                match (same.next(), same.next()) {
                    (Some(one), None) => Some(one),
                    _ => None,
                }
            })
    }

    /// Applies the work's manifests, removes objects dropped from the spec, and
    /// computes the status. Never fails as a whole: per-manifest errors go into the
    /// manifests' `Applied` conditions.
    pub async fn apply(
        &self,
        work: &ManifestWork,
        state: &WorkState,
        now: Time,
    ) -> ReconcileOutcome {
        if is_true(&state.status.conditions, condition_type::COMPLETE) {
            // §4.5: a completed work is no longer applied; status evaluation continues.
            let mut outcome = self.refresh(work, state, now).await;
            outcome.reapply_after = None;
            return outcome;
        }
        let planned = self.plan(work).await;
        // §6: the AppliedManifestWork exists before anything is applied; it owns it all.
        let mut amw = match applied_work::ensure(&*self.target, &self.identity, work).await {
            Ok(amw) => amw,
            Err(e) => return self.apply_failed(work, state, &planned, &e, now).await,
        };
        if amw.metadata.deletion_timestamp.is_some() && work.metadata.deletion_timestamp.is_none() {
            // Deleted out of band while the work is live: finish it as OCM does (release
            // what it owns, drop its finalizer), then start over with a new one.
            tracing::info!(work = %work.metadata.name, "AppliedManifestWork deleted out of band; re-creating it");
            let mut owned = amw.status.applied_resources.clone();
            for r in &state.applied {
                if !owned.iter().any(|o| o.same_object(r)) {
                    owned.push(r.clone());
                }
            }
            let removal = applied_work::remove(
                &*self.target,
                &amw.metadata.name,
                &amw.metadata.uid,
                &owned,
                |r| !orphaned(work, &r.group, &r.resource, &r.namespace, &r.name),
            )
            .await;
            // What it owned was deleted or released: nothing may be skipped as unchanged.
            self.cache().retain(|(uid, _), _| *uid != work.metadata.uid);
            if !removal.done {
                return self
                    .applied_work_terminating(work, state, &planned, removal.remaining, now)
                    .await;
            }
            amw = match applied_work::ensure(&*self.target, &self.identity, work).await {
                Ok(amw) => amw,
                Err(e) => return self.apply_failed(work, state, &planned, &e, now).await,
            };
        }
        let owner = applied_work::owner(&amw);
        let mut order: Vec<&Planned> = planned.iter().collect();
        order.sort_by_key(|p| kind_rank(&p.meta.kind)); // stable: spec order within a rank
        let mut applied_conditions: Vec<(i32, Condition)> = Vec::new();
        let mut applied = Vec::new();
        let mut reapply = None;
        for p in order {
            let (cond, exists, retry) = self.apply_one(work, state, &owner, p, now).await;
            if let Some(cond) = cond {
                applied_conditions.push((p.ordinal, cond));
            }
            applied.extend(exists);
            reapply = min_requeue(reapply, retry);
        }
        applied.sort();
        applied.dedup();
        if state.applied_work_uid.is_empty() {
            self.drop_legacy_owner(work, &state.applied).await;
        }

        // §6: objects applied before but no longer in the spec are released (deleted if
        // only this work owns them); ones still terminating stay listed until gone.
        let mut requeue = None;
        // A manifest that could not be resolved for a reason other than an unknown kind
        // (discovery failing) cannot be told apart from a removed one: no removal then.
        let uncertain = planned.iter().any(|p| {
            p.resolve_error
                .as_ref()
                .is_some_and(|e| !matches!(e, TargetError::UnknownKind(_)))
        });
        for old in &state.applied {
            if applied.iter().any(|a| a.same_object(old)) {
                continue;
            }
            if uncertain {
                applied.push(old.clone());
                requeue = Some(DELETION_RECHECK);
                continue;
            }
            if applied_work::release(&*self.target, old, &owner.uid, true).await {
                self.cache()
                    .remove(&(work.metadata.uid.clone(), ObjectRef::from(old)));
            } else {
                applied.push(old.clone());
                requeue = Some(DELETION_RECHECK);
            }
        }
        applied.sort();
        if let Err(e) = applied_work::record(&*self.target, &amw, &applied).await {
            // The next apply compares again and retries.
            tracing::warn!(work = %work.metadata.name, error = %e, "cannot record appliedResources");
        }

        let (status, observed) = self
            .observe(
                work,
                &planned,
                Some(&applied_conditions),
                &state.status,
                now,
            )
            .await;
        ReconcileOutcome {
            status,
            applied,
            requeue_after: min_requeue(requeue, observed),
            reapply_after: reapply,
            applied_work_uid: amw.metadata.uid,
            watch: watch_targets(&planned),
        }
    }

    /// The outcome of an apply that could not start (the AppliedManifestWork is not
    /// readable or cannot be created): every manifest fails with the reason, nothing is
    /// written and nothing applied before is forgotten.
    async fn apply_failed(
        &self,
        work: &ManifestWork,
        state: &WorkState,
        planned: &[Planned<'_>],
        error: &TargetError,
        now: Time,
    ) -> ReconcileOutcome {
        let message = format!("cannot ensure the AppliedManifestWork: {error}");
        let failed: Vec<(i32, Condition)> = planned
            .iter()
            .map(|p| (p.ordinal, conditions::manifest_apply_failed(&message, now)))
            .collect();
        let (status, observed) = self
            .observe(work, planned, Some(&failed), &state.status, now)
            .await;
        ReconcileOutcome {
            status,
            applied: state.applied.clone(),
            requeue_after: min_requeue(Some(DELETION_RECHECK), observed),
            reapply_after: None,
            applied_work_uid: state.applied_work_uid.clone(),
            watch: watch_targets(planned),
        }
    }

    /// The outcome of an apply that waits for an AppliedManifestWork deleted out of band
    /// to finish (objects it owned still terminating): status refreshed, nothing
    /// applied, the apply retried soon.
    async fn applied_work_terminating(
        &self,
        work: &ManifestWork,
        state: &WorkState,
        planned: &[Planned<'_>],
        remaining: Vec<AppliedResource>,
        now: Time,
    ) -> ReconcileOutcome {
        let (status, observed) = self.observe(work, planned, None, &state.status, now).await;
        ReconcileOutcome {
            status,
            applied: remaining,
            requeue_after: min_requeue(Some(DELETION_RECHECK), observed),
            reapply_after: Some(DELETION_RECHECK),
            applied_work_uid: state.applied_work_uid.clone(),
            watch: watch_targets(planned),
        }
    }

    /// Objects applied by an agent that made the work itself their owner (a store from
    /// before AppliedManifestWorks) lose that owner reference once the AppliedManifestWork
    /// owns them, so it can never keep them alive. Best effort: a failure leaves a
    /// reference to an owner that does not exist, which Kubernetes ignores.
    async fn drop_legacy_owner(&self, work: &ManifestWork, applied: &[AppliedResource]) {
        for r in applied {
            let _ = self
                .target
                .remove_owner(&ObjectRef::from(r), &work.metadata.uid)
                .await;
        }
    }

    /// Applies one manifest. Returns its new `Applied` condition (`None`: keep the
    /// previous one, for a completed manifest), the applied-resource entry when the
    /// object exists afterwards, and when to apply it again if it may succeed later
    /// (executor denials).
    async fn apply_one(
        &self,
        work: &ManifestWork,
        state: &WorkState,
        owner: &Owner,
        p: &Planned<'_>,
        now: Time,
    ) -> (Option<Condition>, Option<AppliedResource>, Option<Duration>) {
        let Some(at) = &p.at else {
            let error = p
                .resolve_error
                .as_ref()
                .map_or_else(|| "unresolved resource".to_string(), ToString::to_string);
            return (
                Some(conditions::manifest_apply_failed(&error, now)),
                None,
                None,
            );
        };
        let existing = || async {
            match self.target.get(at).await {
                Ok(Some(live)) => Some(applied_resource(at, &live)),
                _ => None,
            }
        };
        if Self::previous(&state.status, p)
            .is_some_and(|m| is_true(&m.conditions, condition_type::COMPLETE))
        {
            // §4.5: a completed manifest is neither updated nor re-created.
            return (None, existing().await, None);
        }
        let owned = !orphaned(work, &at.group, &at.resource, &at.namespace, &at.name);
        // §2.4: checked before the strategy is chosen, as OCM does; a denial fails this
        // manifest only.
        if let Err(denied) = executor::authorize(
            &*self.target,
            work.spec.executor.as_ref(),
            at,
            p.manifest,
            owned,
        )
        .await
        {
            return (
                Some(conditions::manifest_apply_failed(&denied.to_string(), now)),
                existing().await,
                denied.retry_after(),
            );
        }
        let mode = match p.config.write() {
            Write::Never => {
                return (
                    Some(conditions::manifest_applied(now)),
                    existing().await,
                    None,
                );
            }
            Write::Unsupported(e) => {
                return (
                    Some(conditions::manifest_apply_failed(&e, now)),
                    existing().await,
                    None,
                );
            }
            Write::With(mode) => mode,
        };
        let owner_change = if owned {
            OwnerChange::Add(owner.clone())
        } else {
            OwnerChange::Remove(owner.uid.clone())
        };
        let mut object = Value::Object(p.manifest.clone());
        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            // A uid inside a manifest is ignored (conformance item 4).
            m.remove("uid");
            if matches!(mode, ApplyMode::ServerSideApply { .. }) {
                m.remove("creationTimestamp");
            }
        }
        if matches!(mode, ApplyMode::ServerSideApply { .. }) {
            // §5 ignoreFields: full object on create, stripped afterwards, nothing at all
            // while the live object carries the same spec hash.
            let prepared = match ignore_fields::prepare(&object, p.config.ignore_fields()) {
                Ok(prepared) => prepared,
                Err(e) => {
                    let failed = conditions::manifest_ssa_ignore_field_error(&e.to_string(), now);
                    return (Some(failed), existing().await, None);
                }
            };
            if let Some(prepared) = prepared {
                let live = match self.target.get(at).await {
                    Ok(live) => live,
                    Err(e) => {
                        let failed = conditions::manifest_apply_failed(&e.to_string(), now);
                        return (Some(failed), None, None);
                    }
                };
                match (ignore_fields::decide(&prepared, live.as_ref()), live) {
                    (Decision::Unchanged, Some(live)) => {
                        let done = ignore_fields::reconcile_owner(
                            &*self.target,
                            at,
                            &prepared,
                            live,
                            &owner_change,
                        )
                        .await;
                        return match done {
                            Ok(live) => (
                                Some(conditions::manifest_applied(now)),
                                Some(applied_resource(at, &live)),
                                None,
                            ),
                            Err(e) => (
                                Some(conditions::manifest_apply_failed(&e.to_string(), now)),
                                existing().await,
                                None,
                            ),
                        };
                    }
                    (Decision::Create, _) => object = prepared.full,
                    _ => object = prepared.stripped,
                }
            }
        }
        let request = request_hash(&object, &mode, &owner_change);
        let key = (work.metadata.uid.clone(), at.clone());
        let cached = self.cache().get(&key).cloned();
        if let Some(cached) = cached.filter(|c| c.request == request)
            && let Ok(Some(live)) = self.target.get(at).await
            && live["metadata"]["resourceVersion"].as_str()
                == Some(cached.resource_version.as_str())
        {
            // Nothing changed on either side since our last write: no apply call.
            return (
                Some(conditions::manifest_applied(now)),
                Some(applied_resource(at, &live)),
                None,
            );
        }
        match self.target.apply(at, &object, &mode, &owner_change).await {
            Ok(live) => {
                let resource_version = live["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.cache().insert(
                    key,
                    Written {
                        request,
                        resource_version,
                    },
                );
                (
                    Some(conditions::manifest_applied(now)),
                    Some(applied_resource(at, &live)),
                    None,
                )
            }
            Err(e) => {
                self.cache().remove(&key);
                // The object may exist from an earlier generation: keep tracking it, so
                // a failed update never turns into a deletion.
                (
                    Some(conditions::manifest_apply_failed(&e.to_string(), now)),
                    existing().await,
                    None,
                )
            }
        }
    }

    /// Recomputes status (Available, feedback, condition rules) without writing
    /// anything. Objects removed from the spec and still being deleted are dropped from
    /// `applied` once they are gone.
    pub async fn refresh(
        &self,
        work: &ManifestWork,
        state: &WorkState,
        now: Time,
    ) -> ReconcileOutcome {
        let planned = self.plan(work).await;
        let mut applied = Vec::with_capacity(state.applied.len());
        let mut requeue = None;
        for r in &state.applied {
            let in_spec = planned.iter().any(|p| {
                p.at.as_ref().is_some_and(|at| {
                    (&at.group, &at.resource, &at.namespace, &at.name)
                        == (&r.group, &r.resource, &r.namespace, &r.name)
                })
            });
            if in_spec {
                applied.push(r.clone());
                continue;
            }
            match self.target.get(&ObjectRef::from(r)).await {
                Ok(None) => {}
                Ok(Some(live)) if live["metadata"]["uid"].as_str() != Some(r.uid.as_str()) => {}
                _ => {
                    applied.push(r.clone());
                    requeue = Some(DELETION_RECHECK);
                }
            }
        }
        if applied != state.applied
            && !state.applied_work_uid.is_empty()
            && let Err(e) =
                applied_work::record_for(&*self.target, &self.identity, work, &applied).await
        {
            tracing::warn!(work = %work.metadata.name, error = %e, "cannot record appliedResources");
        }
        let (status, observed) = self.observe(work, &planned, None, &state.status, now).await;
        // An AppliedManifestWork deleted (or replaced) out of band: apply at once, which
        // finishes and re-creates it. Not for a completed work (§4.5: never applied).
        let replaced = !is_true(&state.status.conditions, condition_type::COMPLETE)
            && applied_work::replaced_for(
                &*self.target,
                &self.identity,
                work,
                &state.applied_work_uid,
            )
            .await;
        ReconcileOutcome {
            status,
            applied,
            requeue_after: min_requeue(requeue, observed),
            reapply_after: replaced.then_some(Duration::ZERO),
            applied_work_uid: state.applied_work_uid.clone(),
            watch: watch_targets(&planned),
        }
    }

    /// Builds the status. `applied_conditions`: the new per-manifest `Applied`
    /// conditions after an apply (`None` on a refresh: keep the previous ones).
    async fn observe(
        &self,
        work: &ManifestWork,
        planned: &[Planned<'_>],
        applied_conditions: Option<&[(i32, Condition)]>,
        previous: &ManifestWorkStatus,
        now: Time,
    ) -> (ManifestWorkStatus, Option<Duration>) {
        let generation = work.metadata.generation;
        let mut manifests = Vec::with_capacity(planned.len());
        let mut requeue: Option<Duration> = None;
        for p in planned {
            let mut mc =
                Self::previous(previous, p)
                    .cloned()
                    .unwrap_or_else(|| ManifestCondition {
                        resource_meta: p.meta.clone(),
                        status_feedback: StatusFeedbackResult::default(),
                        conditions: Vec::new(),
                        extra: Default::default(),
                    });
            mc.resource_meta = p.meta.clone();
            if let Some(c) = applied_conditions
                .and_then(|a| a.iter().find(|(o, _)| *o == p.ordinal))
                .map(|(_, c)| c)
            {
                set_condition(&mut mc.conditions, c.clone(), now);
            }
            let rules = p
                .config
                .conditions
                .map(|c| c.condition_rules.as_slice())
                .unwrap_or_default();
            let availability = match &p.at {
                None => Availability::IncompleteMeta,
                Some(at) => match self.target.get(at).await {
                    Ok(Some(live)) => {
                        self.observe_live(p, &live, &mut mc, generation, now);
                        requeue = min_requeue(requeue, self.target.next_change(at));
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
            // Conditions of rules no longer configured go away (checklist item 48).
            mc.conditions.retain(|c| {
                MANIFEST_BASE_TYPES.contains(&c.type_.as_str())
                    || rules.iter().any(|r| {
                        r.condition == c.type_
                            || (r.condition.is_empty() && c.type_ == condition_type::COMPLETE)
                    })
            });
            manifests.push(mc);
        }

        let mut status = previous.clone();
        status.resource_status.manifests = manifests;
        let ms = &status.resource_status.manifests;
        if applied_conditions.is_some() {
            let applied = conditions::work_applied(ms, generation, now);
            set_condition(&mut status.conditions, applied, now);
        }
        // §3.1/§11: Available only once the work has an Applied condition.
        if find_condition(&status.conditions, condition_type::APPLIED).is_some() {
            let available = conditions::work_available(ms, generation, now);
            set_condition(&mut status.conditions, available, now);
        }
        // Rule-produced types, aggregated; ones no manifest produces any more are pruned.
        let mut rule_types: Vec<String> = ms
            .iter()
            .flat_map(|m| m.conditions.iter())
            .filter(|c| !MANIFEST_BASE_TYPES.contains(&c.type_.as_str()))
            .map(|c| c.type_.clone())
            .collect();
        rule_types.sort();
        rule_types.dedup();
        let aggregated: Vec<Condition> = rule_types
            .iter()
            .filter_map(|t| conditions::work_rule_condition(t, ms, generation, now))
            .collect();
        status.conditions.retain(|c| {
            WORK_BASE_TYPES.contains(&c.type_.as_str()) || rule_types.contains(&c.type_)
        });
        for c in aggregated {
            set_condition(&mut status.conditions, c, now);
        }
        (status, requeue)
    }

    /// Feedback values and rule conditions from a readable live object.
    fn observe_live(
        &self,
        p: &Planned<'_>,
        live: &Value,
        mc: &mut ManifestCondition,
        generation: i64,
        now: Time,
    ) {
        let gvk = (
            p.meta.group.as_str(),
            p.meta.version.as_str(),
            p.meta.kind.as_str(),
        );
        let rules = p.config.feedback.map(|c| c.feedback_rules.as_slice());
        let fb = rules.map(|r| feedback::evaluate(r, live, gvk, self.max_json_raw));
        let errors = fb.as_ref().map(|f| f.errors.clone());
        let values = fb.map(|f| f.values).unwrap_or_default();
        if values != mc.status_feedback.values {
            // Removed and re-added, so its transition time marks the last value change
            // (§3.2).
            remove_condition(&mut mc.conditions, condition_type::STATUS_FEEDBACK_SYNCED);
            mc.status_feedback.values = values;
        }
        set_condition(
            &mut mc.conditions,
            conditions::feedback_synced(errors.as_deref(), now),
            now,
        );
        for rule in p
            .config
            .conditions
            .map(|c| c.condition_rules.as_slice())
            .unwrap_or_default()
        {
            if let Some(c) = conditions::rule_condition(rule, gvk, live, generation, now) {
                set_condition(&mut mc.conditions, c, now);
            }
        }
    }

    /// Deletes the work's applied objects per its `deleteOption` (§2.2, §6): Foreground
    /// deletes what only this work owns and reports [`CleanupOutcome::Pending`] until it
    /// is actually gone; orphaned objects (Orphan, SelectivelyOrphan rules) only lose
    /// this work's owner reference; objects owned by another work too, ReadOnly ones and
    /// ones re-created by someone else are left alone. The work's AppliedManifestWork is
    /// deleted first and kept by its finalizer until every object is released; only
    /// once it is gone is the cleanup [`CleanupOutcome::Done`].
    pub async fn cleanup(&self, work: &ManifestWork, state: &WorkState) -> CleanupOutcome {
        // Owner when the AppliedManifestWork is gone already: the UID remembered, else
        // the work's own (a store from before AppliedManifestWorks).
        let fallback = if state.applied_work_uid.is_empty() {
            &work.metadata.uid
        } else {
            &state.applied_work_uid
        };
        let removal = applied_work::remove(
            &*self.target,
            &self.identity.name_of(work),
            fallback,
            &state.applied,
            |r| !orphaned(work, &r.group, &r.resource, &r.namespace, &r.name),
        )
        .await;
        if removal.done {
            self.cache().retain(|(uid, _), _| *uid != work.metadata.uid);
            CleanupOutcome::Done
        } else {
            CleanupOutcome::Pending {
                remaining: removal.remaining,
                requeue_after: DELETION_RECHECK,
            }
        }
    }

    /// One eviction sweep over this agent's AppliedManifestWorks
    /// ([`applied_work::sweep`]); `works_held` are the names of the works the agent
    /// holds. Returns when to sweep again.
    pub async fn sweep_applied_works(
        &self,
        works_held: &std::collections::BTreeSet<String>,
        now: Time,
        grace: Duration,
    ) -> Duration {
        applied_work::sweep(&*self.target, &self.identity, works_held, now, grace).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "x"));
        assert!(glob("*", ""));
        assert!(glob("web-*", "web-1"));
        assert!(glob("*-db", "main-db"));
        assert!(glob("a*c*e", "abcde"));
        assert!(glob("a*a", "aa"));
        assert!(!glob("a*a", "a"), "prefix and suffix may not overlap");
        assert!(!glob("web-*", "api-1"));
        assert!(!glob("x", "y"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
    }

    #[test]
    fn ranks() {
        assert!(kind_rank("Namespace") < kind_rank("ConfigMap"));
        assert!(kind_rank("ConfigMap") < kind_rank("Deployment"));
        assert!(kind_rank("Deployment") < kind_rank("Widget"));
        assert!(kind_rank("Widget") < kind_rank(""));
    }
}
