//! What applying a user's desired work does to the stored one (`PUT`/`POST` of a
//! ManifestWork): create it, raise its generation, or change nothing.
//!
//! A generation counts changes of spec, labels or annotations and doubles as the wire
//! `resourceversion`. A work created under a name used before (hence the same uid, §0)
//! continues its predecessor's count from the tombstone the completed deletion left, so
//! a generation names one incarnation (see [`status`](super::status), step 3) and
//! `resourceversion` keeps increasing per `resourceid` for agents that still hold the
//! earlier incarnation (§7.2).

use chrono::{DateTime, Utc};

use crate::store::{ApplyOutcome, DesiredWork, SpecChange, StoreError, WorkRecord};

/// The decided change, carrying the work as it must be stored.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyPlan {
    /// Insert this new work (and forget the predecessor's tombstone, if any).
    Create(WorkRecord),
    /// Store this updated work (the generation was raised).
    Update(WorkRecord),
    /// Nothing changes; this is the stored work.
    Unchanged(WorkRecord),
}

impl ApplyPlan {
    /// What the caller is told.
    pub fn outcome(&self) -> ApplyOutcome {
        match self {
            ApplyPlan::Create(_) => ApplyOutcome::Created,
            ApplyPlan::Update(_) => ApplyOutcome::Updated,
            ApplyPlan::Unchanged(_) => ApplyOutcome::Unchanged,
        }
    }

    /// The spec event the change announces, if any.
    pub fn spec_change(&self) -> Option<SpecChange> {
        match self {
            ApplyPlan::Create(_) => Some(SpecChange::Create),
            ApplyPlan::Update(_) => Some(SpecChange::Update),
            ApplyPlan::Unchanged(_) => None,
        }
    }

    /// The work as it is after the change.
    pub fn work(&self) -> &WorkRecord {
        match self {
            ApplyPlan::Create(w) | ApplyPlan::Update(w) | ApplyPlan::Unchanged(w) => w,
        }
    }

    /// [`ApplyPlan::work`], owned.
    pub fn into_work(self) -> WorkRecord {
        match self {
            ApplyPlan::Create(w) | ApplyPlan::Update(w) | ApplyPlan::Unchanged(w) => w,
        }
    }
}

/// Decides what applying `desired` does. `existing` is the stored work under the same
/// key; `predecessor` the last generation of an earlier, completed work with the same
/// uid (its tombstone; only read when there is no existing work). `create_only` refuses
/// to replace an existing work. Refusals: [`StoreError::AlreadyExists`] (create only),
/// [`StoreError::Conflict`] (the work is being deleted), [`StoreError::Corrupt`] (a
/// generation that cannot be raised).
pub fn plan_apply(
    existing: Option<WorkRecord>,
    predecessor: Option<i64>,
    desired: &DesiredWork,
    create_only: bool,
    now: DateTime<Utc>,
) -> Result<ApplyPlan, StoreError> {
    let name = || format!("{}/{}", desired.key.cluster, desired.key.name);
    let Some(mut current) = existing else {
        return Ok(ApplyPlan::Create(WorkRecord {
            uid: desired.uid.clone(),
            key: desired.key.clone(),
            labels: desired.labels.clone(),
            annotations: desired.annotations.clone(),
            spec: desired.spec.clone(),
            generation: first_generation(predecessor, &desired.uid)?,
            created: now,
            updated: now,
            deletion: None,
            status: None,
        }));
    };
    if create_only {
        return Err(StoreError::AlreadyExists {
            kind: "work",
            name: name(),
        });
    }
    if current.deletion.is_some() {
        return Err(StoreError::Conflict(format!(
            "work {} is being deleted",
            name()
        )));
    }
    if current.spec == desired.spec
        && current.labels == desired.labels
        && current.annotations == desired.annotations
    {
        return Ok(ApplyPlan::Unchanged(current));
    }
    current.generation = next_generation(current.generation, &current.uid, "works")?;
    current.labels = desired.labels.clone();
    current.annotations = desired.annotations.clone();
    current.spec = desired.spec.clone();
    current.updated = now;
    Ok(ApplyPlan::Update(current))
}

/// The generation a work created with `uid` starts at: 1, or one above its
/// predecessor's last generation.
fn first_generation(predecessor: Option<i64>, uid: &str) -> Result<i64, StoreError> {
    match predecessor {
        None => Ok(1),
        Some(last) => next_generation(last, uid, "work_tombstones"),
    }
}

fn next_generation(last: i64, uid: &str, table: &'static str) -> Result<i64, StoreError> {
    last.checked_add(1).ok_or_else(|| StoreError::Corrupt {
        table,
        reason: format!("generation {last} of {uid} cannot be continued"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WorkKey;
    use workbus_schemas::work::ManifestWorkSpec;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_765_000_000, 0).unwrap()
    }

    fn desired(label: &str) -> DesiredWork {
        DesiredWork {
            key: WorkKey {
                cluster: "c".into(),
                name: "w".into(),
            },
            uid: "u".into(),
            labels: [("l".to_string(), label.to_string())].into(),
            annotations: Default::default(),
            spec: ManifestWorkSpec::default(),
        }
    }

    fn stored(generation: i64) -> WorkRecord {
        let d = desired("a");
        WorkRecord {
            uid: d.uid,
            key: d.key,
            labels: d.labels,
            annotations: d.annotations,
            spec: d.spec,
            generation,
            created: now() - chrono::TimeDelta::hours(1),
            updated: now() - chrono::TimeDelta::hours(1),
            deletion: None,
            status: None,
        }
    }

    #[test]
    fn a_new_work_starts_at_one_or_continues_its_predecessor() {
        let fresh = plan_apply(None, None, &desired("a"), false, now()).unwrap();
        assert_eq!(fresh.outcome(), ApplyOutcome::Created);
        assert_eq!(fresh.work().generation, 1);
        assert_eq!(fresh.work().created, now());
        let again = plan_apply(None, Some(7), &desired("a"), true, now()).unwrap();
        assert_eq!(again.work().generation, 8);
        assert_eq!(again.spec_change(), Some(SpecChange::Create));
    }

    #[test]
    fn a_change_raises_the_generation_and_no_change_leaves_all_alone() {
        let same = plan_apply(Some(stored(3)), None, &desired("a"), false, now()).unwrap();
        assert_eq!(same, ApplyPlan::Unchanged(stored(3)));
        assert_eq!(same.spec_change(), None);
        let changed = plan_apply(Some(stored(3)), None, &desired("b"), false, now()).unwrap();
        assert_eq!(changed.outcome(), ApplyOutcome::Updated);
        let w = changed.into_work();
        assert_eq!(
            (w.generation, w.updated, w.labels["l"].as_str()),
            (4, now(), "b")
        );
        assert_eq!(w.created, stored(3).created);
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            plan_apply(Some(stored(1)), None, &desired("a"), true, now()),
            Err(StoreError::AlreadyExists { kind: "work", .. })
        ));
        let mut deleting = stored(1);
        deleting.deletion = Some(now());
        assert!(matches!(
            plan_apply(Some(deleting), None, &desired("b"), false, now()),
            Err(StoreError::Conflict(m)) if m.contains("being deleted")
        ));
        assert!(matches!(
            plan_apply(Some(stored(i64::MAX)), None, &desired("b"), false, now()),
            Err(StoreError::Corrupt { table: "works", .. })
        ));
        assert!(matches!(
            plan_apply(None, Some(i64::MAX), &desired("b"), false, now()),
            Err(StoreError::Corrupt {
                table: "work_tombstones",
                ..
            })
        ));
    }
}
