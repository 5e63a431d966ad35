//! The work's **AppliedManifestWork** on the target (manifestwork-semantics §6), OCM's
//! way: one cluster-scoped object per work, named `<hubHash>-<work name>`, that owns
//! every object applied for the work (its UID is in their `ownerReferences`), lists them
//! in `status.appliedResources`, and holds a finalizer so that it only goes once they
//! are released.
//!
//! Its lifecycle, driven by the reconciler and the runtime:
//! - [`ensure`] before each apply: create it when missing (spec, finalizer, the work's
//!   labels); [`record`] after: write `appliedResources` when, and only when, it changed;
//! - [`remove`] when the work is deleted, or when it is evicted: delete it (the
//!   finalizer keeps it, terminating), [`release`] what it owns, then drop the finalizer;
//! - deleted out of band while its work is live ([`replaced`] tells): like OCM, the
//!   reconciler finishes it with [`remove`] (what it owns is released, its finalizer
//!   removed), then [`ensure`] creates a new one and the work is applied again, so its
//!   objects are owned by the new one;
//! - eviction ([`eviction`], a pure decision, and [`sweep`], which applies it to every
//!   AppliedManifestWork of this agent): one whose work the agent no longer holds, or
//!   that came from another hub, is marked with `evictionStartTime` and removed after the
//!   grace period, unless its work comes back first.
//!
//! Only [`Target`] methods are used, so the simulated cluster and a Kubernetes target
//! behave the same. The AppliedManifestWork's address comes from the API's constants
//! (no discovery): it must stay reachable when discovery of other kinds fails.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use workbus_schemas::work::applied::{
    self, AppliedManifestWork, AppliedManifestWorkStatus, AppliedResource,
};
use workbus_schemas::work::{ManifestWork, Time};

use crate::target::{
    ApplyMode, DeleteResult, ObjectRef, Owner, OwnerChange, ResourceMapping, Target, TargetError,
};

/// A grace period this long or longer disables eviction (OCM's "100 years" rule).
pub const EVICTION_DISABLED: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// How often the runtime looks for AppliedManifestWorks to evict when none is due
/// sooner. Works rarely disappear without a deletion (a lost agent store, a hub
/// change), so this is slow; an eviction in progress is followed more closely.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// How soon to look again at objects still being released (finalizers running), or
/// after the target failed.
const RECHECK: Duration = Duration::from_secs(1);

/// Who this agent is towards its AppliedManifestWorks: the hub hash that prefixes their
/// names and the agent id in their spec (several agents may share a cluster; each only
/// looks after AppliedManifestWorks with its own id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedWorkIdentity {
    /// Lowercase hex SHA-256 of the hub host ([`applied::hub_hash`]).
    pub hub_hash: String,
    /// `spec.agentID` of the AppliedManifestWorks this agent creates.
    pub agent_id: String,
}

impl AppliedWorkIdentity {
    /// The identity of an agent with `agent_id` connected to the hub at `hub_host`.
    pub fn new(hub_host: &str, agent_id: &str) -> Self {
        AppliedWorkIdentity {
            hub_hash: applied::hub_hash(hub_host),
            agent_id: agent_id.to_string(),
        }
    }

    /// The AppliedManifestWork name of `work`.
    pub fn name_of(&self, work: &ManifestWork) -> String {
        applied::name(&self.hub_hash, &work.metadata.name)
    }
}

impl Default for AppliedWorkIdentity {
    /// An agent with an empty id and hub host (tests that drive a reconciler directly).
    fn default() -> Self {
        AppliedWorkIdentity::new("", "")
    }
}

/// The AppliedManifestWork resource (cluster-scoped).
fn mapping() -> ResourceMapping {
    ResourceMapping {
        group: applied::GROUP.into(),
        version: applied::VERSION.into(),
        kind: applied::KIND.into(),
        resource: applied::RESOURCE.into(),
        namespaced: false,
    }
}

/// The address of the AppliedManifestWork called `name`.
pub fn at(name: &str) -> ObjectRef {
    ObjectRef::new(
        applied::GROUP,
        applied::VERSION,
        applied::RESOURCE,
        "",
        name,
    )
}

/// Reads an AppliedManifestWork as the target returned it; `None` (with a log line)
/// when it does not have the expected shape.
fn parse(live: &Value) -> Option<AppliedManifestWork> {
    match AppliedManifestWork::deserialize(live) {
        Ok(amw) => Some(amw),
        Err(e) => {
            let name = live["metadata"]["name"].as_str().unwrap_or_default();
            tracing::warn!(%name, error = %e, "skipping a malformed AppliedManifestWork");
            None
        }
    }
}

/// The owner applied objects get: the AppliedManifestWork itself.
pub fn owner(amw: &AppliedManifestWork) -> Owner {
    Owner {
        name: amw.metadata.name.clone(),
        uid: amw.metadata.uid.clone(),
    }
}

/// Reads the work's AppliedManifestWork, creating it when missing (§6): spec (hub hash,
/// agent id, work name), the cleanup finalizer and the work's labels. An existing one is
/// left as it is (never re-written: its status is the agent's record).
pub async fn ensure<T: Target>(
    target: &T,
    identity: &AppliedWorkIdentity,
    work: &ManifestWork,
) -> Result<AppliedManifestWork, TargetError> {
    let name = identity.name_of(work);
    let at = at(&name);
    let live = match target.get(&at).await? {
        Some(live) => live,
        None => {
            let new = AppliedManifestWork::new(
                &identity.hub_hash,
                &identity.agent_id,
                &work.metadata.name,
                work.metadata.labels.clone(),
            );
            let object = serde_json::to_value(&new)
                .map_err(|e| TargetError::Invalid(format!("AppliedManifestWork {name}: {e}")))?;
            // CreateOnly: if another writer created it meanwhile, theirs is kept.
            target
                .apply(&at, &object, &ApplyMode::CreateOnly, &OwnerChange::Keep)
                .await?
        }
    };
    parse(&live)
        .ok_or_else(|| TargetError::Invalid(format!("AppliedManifestWork {name} is malformed")))
}

/// Whether the work's AppliedManifestWork as read (`live`) is not the one the work's
/// objects belong to any more: it is terminating (deleted by someone while the work is
/// live), gone, or another one than `expected_uid` (re-created meanwhile). The pure
/// check a refresh makes so that the next apply finishes and re-creates it; an
/// unknown `expected_uid` (empty) never counts as replaced.
pub fn replaced(live: Option<&AppliedManifestWork>, expected_uid: &str) -> bool {
    if expected_uid.is_empty() {
        return false;
    }
    match live {
        None => true,
        Some(amw) => amw.metadata.deletion_timestamp.is_some() || amw.metadata.uid != expected_uid,
    }
}

/// Reads the work's AppliedManifestWork and applies [`replaced`]; `false` when it cannot
/// be read (the next regular apply looks again).
pub async fn replaced_for<T: Target>(
    target: &T,
    identity: &AppliedWorkIdentity,
    work: &ManifestWork,
    expected_uid: &str,
) -> bool {
    if expected_uid.is_empty() {
        return false;
    }
    match target.get(&at(&identity.name_of(work))).await {
        Ok(live) => replaced(live.as_ref().and_then(parse).as_ref(), expected_uid),
        Err(_) => false,
    }
}

/// Writes `applied` as the AppliedManifestWork's `status.appliedResources` when it
/// differs from what it lists (other status fields are kept): no write when nothing
/// changed, which matters with thousands of agents refreshing.
pub async fn record<T: Target>(
    target: &T,
    amw: &AppliedManifestWork,
    applied: &[AppliedResource],
) -> Result<(), TargetError> {
    if amw.status.applied_resources == applied {
        return Ok(());
    }
    let status = AppliedManifestWorkStatus {
        applied_resources: applied.to_vec(),
        ..amw.status.clone()
    };
    write_status(target, amw, &status).await
}

async fn write_status<T: Target>(
    target: &T,
    amw: &AppliedManifestWork,
    status: &AppliedManifestWorkStatus,
) -> Result<(), TargetError> {
    let value = serde_json::to_value(status).map_err(|e| {
        TargetError::Invalid(format!("AppliedManifestWork {}: {e}", amw.metadata.name))
    })?;
    target
        .update_status(&at(&amw.metadata.name), &value)
        .await
        .map(drop)
}

/// [`record`] for the work's AppliedManifestWork, read first; a missing one is left
/// missing (the next apply creates it).
pub async fn record_for<T: Target>(
    target: &T,
    identity: &AppliedWorkIdentity,
    work: &ManifestWork,
    applied: &[AppliedResource],
) -> Result<(), TargetError> {
    match target.get(&at(&identity.name_of(work))).await? {
        Some(live) => match parse(&live) {
            Some(amw) => record(target, &amw, applied).await,
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// Releases one applied object from the owner with `owner_uid` (§6): skip it when gone,
/// re-created by someone else (UID differs) or not owned by us; only drop our owner
/// reference when `delete` is false (orphaning) or when another AppliedManifestWork also
/// owns it; otherwise delete it with a UID precondition. True when it needs no further
/// attention, false while it is still terminating or the target could not be reached.
pub async fn release<T: Target>(
    target: &T,
    r: &AppliedResource,
    owner_uid: &str,
    delete: bool,
) -> bool {
    let at = ObjectRef::from(r);
    let live = match target.get(&at).await {
        Ok(Some(live)) => live,
        Ok(None) => return true,
        Err(_) => return false,
    };
    let meta = &live["metadata"];
    if !r.uid.is_empty() && meta["uid"].as_str() != Some(r.uid.as_str()) {
        return true; // not the object we applied
    }
    let refs = meta["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !refs.iter().any(|o| o["uid"] == owner_uid) {
        return true; // not ours (orphaned, ReadOnly, or never owned)
    }
    let work_owners = refs.iter().filter(|o| o["kind"] == applied::KIND).count();
    if !delete || work_owners > 1 {
        return target.remove_owner(&at, owner_uid).await.is_ok();
    }
    if meta.get("deletionTimestamp").is_some() {
        return false; // already terminating: wait until it is gone
    }
    let uid = (!r.uid.is_empty()).then_some(r.uid.as_str());
    matches!(
        target.delete(&at, uid).await,
        Ok(DeleteResult::Gone) | Ok(DeleteResult::UidMismatch)
    )
}

/// Result of [`remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Objects not released yet (still terminating, or the target failed).
    pub remaining: Vec<AppliedResource>,
    /// True once every object is released and the AppliedManifestWork is gone.
    pub done: bool,
}

/// Removes the AppliedManifestWork called `name` and releases what it owns (§6): deletes
/// it (its finalizer keeps it, terminating), releases each of `resources` (`delete`
/// says which may be deleted rather than orphaned), then removes the finalizer so it
/// goes. When it is already gone, `fallback_uid` is the owner UID to release from.
pub async fn remove<T: Target>(
    target: &T,
    name: &str,
    fallback_uid: &str,
    resources: &[AppliedResource],
    delete: impl Fn(&AppliedResource) -> bool,
) -> Removal {
    let at = at(name);
    let amw = match target.get(&at).await {
        Ok(live) => live.as_ref().and_then(parse),
        Err(_) => {
            return Removal {
                remaining: resources.to_vec(),
                done: false,
            };
        }
    };
    let mut deleting_ok = true;
    if let Some(amw) = &amw
        && amw.metadata.deletion_timestamp.is_none()
    {
        // UID precondition: never delete a newer one created meanwhile.
        deleting_ok = target.delete(&at, Some(&amw.metadata.uid)).await.is_ok();
    }
    let owner_uid = amw
        .as_ref()
        .map_or(fallback_uid, |a| a.metadata.uid.as_str());
    let mut remaining = Vec::new();
    for r in resources {
        if !release(target, r, owner_uid, delete(r)).await {
            remaining.push(r.clone());
        }
    }
    let Some(amw) = amw else {
        let done = remaining.is_empty();
        return Removal { remaining, done };
    };
    if !remaining.is_empty() || !deleting_ok {
        // Keep its record current while objects terminate (written only on change).
        if let Err(e) = record(target, &amw, &remaining).await {
            tracing::debug!(%name, error = %e, "cannot update AppliedManifestWork status");
        }
        return Removal {
            remaining,
            done: false,
        };
    }
    let done = target
        .remove_finalizer(&at, applied::FINALIZER)
        .await
        .is_ok();
    Removal { remaining, done }
}

/// What to do with one AppliedManifestWork of this agent (§6 eviction, items 55–56).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Nothing to do.
    Keep,
    /// Its work is gone or from another hub: set `evictionStartTime` to now.
    StartEviction,
    /// Its work is back: clear `evictionStartTime`; nothing is deleted.
    ClearEviction,
    /// The grace period is over (or it is already terminating): remove it and release
    /// what it owns.
    Evict,
}

/// Decides the fate of `amw` (one of this agent's: the caller checks `spec.agentID`).
/// It is in use when the agent holds a work named `spec.manifestWorkName` and its name
/// carries the current hub hash; otherwise it is evicted `grace` after
/// `evictionStartTime` (never when `grace` ≥ [`EVICTION_DISABLED`]). One already
/// terminating and not in use is evicted at once: its removal was started.
pub fn eviction(
    amw: &AppliedManifestWork,
    works_held: &BTreeSet<String>,
    current_hub_hash: &str,
    now: Time,
    grace: Duration,
) -> Eviction {
    let in_use = works_held.contains(&amw.spec.manifest_work_name)
        && applied::hub_hash_of_name(&amw.metadata.name) == Some(current_hub_hash);
    let started = amw.status.eviction_start_time;
    if in_use {
        return match started {
            Some(_) => Eviction::ClearEviction,
            None => Eviction::Keep,
        };
    }
    if amw.metadata.deletion_timestamp.is_some() {
        return Eviction::Evict;
    }
    match (started, eviction_deadline(started, grace)) {
        _ if grace >= EVICTION_DISABLED => Eviction::Keep,
        (None, _) => Eviction::StartEviction,
        (Some(_), Some(deadline)) if now >= deadline => Eviction::Evict,
        _ => Eviction::Keep,
    }
}

/// When an eviction started at `started` is due (`None`: not started, or never).
fn eviction_deadline(started: Option<Time>, grace: Duration) -> Option<Time> {
    if grace >= EVICTION_DISABLED {
        return None;
    }
    let grace = chrono::Duration::from_std(grace).ok()?;
    let deadline = started?.as_datetime().checked_add_signed(grace)?;
    Some(Time::new(deadline))
}

/// Applies [`eviction`] to every AppliedManifestWork of this agent (`spec.agentID`);
/// malformed ones and other agents' are skipped. Returns when to sweep again: when the
/// next eviction falls due, soon while one is being removed or the target failed, else
/// [`SWEEP_INTERVAL`].
pub async fn sweep<T: Target>(
    target: &T,
    identity: &AppliedWorkIdentity,
    works_held: &BTreeSet<String>,
    now: Time,
    grace: Duration,
) -> Duration {
    let listed = match target.list(&mapping()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list AppliedManifestWorks");
            return RECHECK;
        }
    };
    let mut next = SWEEP_INTERVAL;
    for amw in listed.iter().filter_map(parse) {
        if amw.spec.agent_id != identity.agent_id {
            continue; // another agent's on the same cluster
        }
        let name = &amw.metadata.name;
        let decision = eviction(&amw, works_held, &identity.hub_hash, now, grace);
        let result = match decision {
            Eviction::Keep => {
                if let Some(deadline) = eviction_deadline(amw.status.eviction_start_time, grace) {
                    let left = (deadline.as_datetime() - now.as_datetime())
                        .to_std()
                        .unwrap_or(RECHECK);
                    next = next.min(left.max(RECHECK));
                }
                Ok(())
            }
            Eviction::StartEviction => {
                tracing::info!(%name, "AppliedManifestWork without its work: eviction starts");
                next = next.min(grace.max(RECHECK));
                let status = AppliedManifestWorkStatus {
                    eviction_start_time: Some(now),
                    ..amw.status.clone()
                };
                write_status(target, &amw, &status).await
            }
            Eviction::ClearEviction => {
                tracing::info!(%name, "the work of an AppliedManifestWork is back: eviction stops");
                let status = AppliedManifestWorkStatus {
                    eviction_start_time: None,
                    ..amw.status.clone()
                };
                write_status(target, &amw, &status).await
            }
            Eviction::Evict => {
                tracing::info!(%name, "evicting AppliedManifestWork");
                // Orphaned objects no longer carry its owner reference: every one that
                // does may be deleted.
                let removal = remove(
                    target,
                    name,
                    &amw.metadata.uid,
                    &amw.status.applied_resources,
                    |_| true,
                )
                .await;
                if !removal.done {
                    next = next.min(RECHECK);
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(%name, error = %e, "cannot update AppliedManifestWork status");
            next = next.min(RECHECK);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use workbus_schemas::work::ObjectMeta;

    fn amw(name: &str, work: &str, started: Option<i64>) -> AppliedManifestWork {
        AppliedManifestWork {
            metadata: ObjectMeta {
                name: name.into(),
                ..ObjectMeta::default()
            },
            spec: applied::AppliedManifestWorkSpec {
                manifest_work_name: work.into(),
                ..Default::default()
            },
            status: AppliedManifestWorkStatus {
                eviction_start_time: started.and_then(Time::from_unix_seconds),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn eviction_decisions() {
        let held: BTreeSet<String> = ["w".to_string()].into();
        let now = Time::from_unix_seconds(10_000).unwrap();
        let e = |a: &AppliedManifestWork, grace| eviction(a, &held, "h", now, grace);
        assert_eq!(e(&amw("h-w", "w", None), HOUR), Eviction::Keep);
        assert_eq!(e(&amw("h-w", "w", Some(1)), HOUR), Eviction::ClearEviction);
        assert_eq!(e(&amw("h-x", "x", None), HOUR), Eviction::StartEviction);
        assert_eq!(
            e(&amw("old-w", "w", None), HOUR),
            Eviction::StartEviction,
            "another hub's"
        );
        assert_eq!(e(&amw("h-x", "x", Some(9_000)), HOUR), Eviction::Keep);
        assert_eq!(e(&amw("h-x", "x", Some(6_400)), HOUR), Eviction::Evict);
        assert_eq!(
            e(&amw("h-x", "x", Some(0)), EVICTION_DISABLED),
            Eviction::Keep,
            "100 years disables"
        );
        assert_eq!(e(&amw("h-x", "x", None), EVICTION_DISABLED), Eviction::Keep);
        let mut terminating = amw("h-x", "x", None);
        terminating.metadata.deletion_timestamp = Some(now);
        assert_eq!(e(&terminating, HOUR), Eviction::Evict);
    }

    #[test]
    fn replaced_decisions() {
        let mut live = amw("h-w", "w", None);
        live.metadata.uid = "u1".into();
        assert!(!replaced(Some(&live), "u1"));
        assert!(!replaced(None, ""), "never created by this state");
        assert!(replaced(None, "u1"), "gone");
        assert!(replaced(Some(&live), "u0"), "re-created by someone");
        live.metadata.deletion_timestamp = Time::from_unix_seconds(1);
        assert!(replaced(Some(&live), "u1"), "deleted out of band");
    }
}
