//! What applying, approving and aborting a ManifestWorkReplicaSet does to the stored one,
//! and which works a replica set may touch — pure rules.
//!
//! A change of the template (or of the per-cluster overrides) is a new *revision*: the
//! old one is kept as `previous` (what rollback restores), approvals start over and a
//! stopped rollout starts again. Any other spec change keeps the approvals but also
//! lifts a halt (a user who raised `maxFailures` wants the rollout to go on).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use workbus_schemas::replicaset::names::{REPLICA_SET_LABEL, owner_label_value};
use workbus_schemas::replicaset::{
    GroupGate, ManifestWorkReplicaSetSpec, ManifestWorkReplicaSetStatus,
};

use crate::rollout::revision::revision;
use crate::store::replicaset::{Halt, ReplicaSetKey, ReplicaSetRecord};
use crate::store::{ApplyOutcome, StoreError, WorkRecord};

/// The decided change of a replica set.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaSetPlan {
    /// A new replica set.
    Create(ReplicaSetRecord),
    /// Changed: store it.
    Update(ReplicaSetRecord),
    /// Nothing changes.
    Unchanged(ReplicaSetRecord),
}

impl ReplicaSetPlan {
    /// What the caller is told, and the record.
    pub fn into_parts(self) -> (ApplyOutcome, ReplicaSetRecord) {
        match self {
            ReplicaSetPlan::Create(r) => (ApplyOutcome::Created, r),
            ReplicaSetPlan::Update(r) => (ApplyOutcome::Updated, r),
            ReplicaSetPlan::Unchanged(r) => (ApplyOutcome::Unchanged, r),
        }
    }
}

/// Decides what applying `spec` with `labels` to `key` does. Refused
/// ([`StoreError::Conflict`]) while the replica set is being deleted.
pub fn plan_replica_set(
    existing: Option<ReplicaSetRecord>,
    key: &ReplicaSetKey,
    labels: BTreeMap<String, String>,
    spec: ManifestWorkReplicaSetSpec,
    now: DateTime<Utc>,
) -> Result<ReplicaSetPlan, StoreError> {
    let rev = revision(&spec.manifest_work_template, &spec.overrides);
    let Some(mut current) = existing else {
        return Ok(ReplicaSetPlan::Create(ReplicaSetRecord {
            key: key.clone(),
            labels,
            spec,
            status: ManifestWorkReplicaSetStatus::default(),
            generation: 1,
            revision: rev,
            previous: None,
            approvals: Vec::new(),
            halt: None,
            created: now,
            updated: now,
            deletion: None,
        }));
    };
    if current.deletion.is_some() {
        return Err(StoreError::Conflict(format!(
            "manifestworkreplicaset {}/{} is being deleted",
            key.namespace, key.name
        )));
    }
    if current.spec == spec && current.labels == labels {
        return Ok(ReplicaSetPlan::Unchanged(current));
    }
    current.generation = current
        .generation
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt {
            table: "replicasets",
            reason: format!(
                "generation of {}/{} cannot be raised",
                key.namespace, key.name
            ),
        })?;
    if rev.hash != current.revision.hash {
        current.previous = Some(std::mem::replace(&mut current.revision, rev));
        current.approvals.clear();
    }
    current.halt = None;
    current.spec = spec;
    current.labels = labels;
    current.updated = now;
    Ok(ReplicaSetPlan::Update(current))
}

/// Whether `work` belongs to the replica set `key` (its owner label says so).
pub fn owns(work: &WorkRecord, key: &ReplicaSetKey) -> bool {
    work.labels.get(REPLICA_SET_LABEL) == Some(&owner_label_value(&key.namespace, &key.name))
}

/// Records an approval: of `gate`, or, when `None`, of the gate the rollout awaits.
/// [`StoreError::Conflict`] when nothing awaits approval and no gate is named.
pub fn approve(
    rs: &mut ReplicaSetRecord,
    gate: Option<GroupGate>,
) -> Result<GroupGate, StoreError> {
    let awaiting = rs.status.rollout.as_ref().and_then(|r| r.awaiting.clone());
    let gate = gate.or(awaiting).ok_or_else(|| {
        StoreError::Conflict(format!(
            "manifestworkreplicaset {}/{} is not awaiting approval",
            rs.key.namespace, rs.key.name
        ))
    })?;
    if !rs
        .approvals
        .iter()
        .any(|a| a.placement == gate.placement && a.group_index == gate.group_index)
    {
        rs.approvals.push(gate.clone());
    }
    Ok(gate)
}

/// Stops the rollout (no new clusters start; nothing is rolled back).
pub fn abort(rs: &mut ReplicaSetRecord, actor: &str, now: DateTime<Utc>) {
    if rs.halt.is_none() {
        rs.halt = Some(Halt {
            reason: format!("aborted by {actor}"),
            rolled_back: false,
            at: now,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(size: &str) -> ManifestWorkReplicaSetSpec {
        serde_json::from_value(json!({
            "placementRefs": [{"name": "p"}],
            "manifestWorkTemplate": {"workload": {"manifests": [{"kind": "ConfigMap", "data": {"s": size}}]}}
        }))
        .unwrap()
    }

    fn key() -> ReplicaSetKey {
        ReplicaSetKey {
            namespace: "ns".into(),
            name: "rs".into(),
        }
    }

    #[test]
    fn a_new_template_keeps_the_previous_one_and_clears_approvals_and_halt() {
        let now = Utc::now();
        let (_, mut rs) = plan_replica_set(None, &key(), BTreeMap::new(), spec("a"), now)
            .unwrap()
            .into_parts();
        let first = rs.revision.clone();
        rs.approvals.push(GroupGate::default());
        abort(&mut rs, "me", now);
        let same =
            plan_replica_set(Some(rs.clone()), &key(), BTreeMap::new(), spec("a"), now).unwrap();
        assert!(matches!(same, ReplicaSetPlan::Unchanged(_)));
        let (outcome, next) = plan_replica_set(Some(rs), &key(), BTreeMap::new(), spec("b"), now)
            .unwrap()
            .into_parts();
        assert_eq!(outcome, ApplyOutcome::Updated);
        assert_eq!(next.generation, 2);
        assert_eq!(next.previous, Some(first));
        assert!(next.approvals.is_empty());
        assert!(next.halt.is_none());
    }

    #[test]
    fn approving_needs_an_awaited_or_named_gate() {
        let (_, mut rs) = plan_replica_set(None, &key(), BTreeMap::new(), spec("a"), Utc::now())
            .unwrap()
            .into_parts();
        assert!(matches!(
            approve(&mut rs, None),
            Err(StoreError::Conflict(_))
        ));
        let gate = GroupGate {
            placement: "p".into(),
            group_index: 0,
            group_name: String::new(),
        };
        assert_eq!(approve(&mut rs, Some(gate.clone())).unwrap(), gate);
        approve(&mut rs, Some(gate)).unwrap();
        assert_eq!(rs.approvals.len(), 1);
    }
}
