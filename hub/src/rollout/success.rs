//! When a cluster's work counts as progressing, succeeded or failed: the success rule
//! of a replica set, as a pure function of the stored work.
//!
//! - [`SuccessRule::Available`] (workbus, default): `Applied`=True and `Available`=True
//!   at the current generation, and — when the work reports them — `Progressing`=False
//!   or `Complete`=True. `Degraded`=True or `Applied`=False is a failure. Anything else
//!   (no status yet, an older generation's status) is progressing, so
//!   `progressDeadline` also catches an agent that never answers.
//! - [`SuccessRule::Upstream`]: OCM's table (reference `placement.md` §5.2 step 4):
//!   only `Applied`, `Progressing` and `Degraded` count, and without a `Progressing`
//!   condition (which the work agent sets only from condition rules) the work stays
//!   `ToApply` — the stall progressive rollouts show upstream.

use workbus_schemas::replicaset::SuccessRule;
use workbus_schemas::work::Condition;
use workbus_schemas::work::status::{condition_status, condition_type, find_condition};

use super::cluster_status::ClusterStatus;
use crate::store::WorkRecord;

/// The rollout status of a work that carries the current template.
pub fn judge(work: &WorkRecord, rule: SuccessRule) -> ClusterStatus {
    let current = work
        .status
        .as_ref()
        .filter(|s| s.generation == work.generation && work.deletion.is_none());
    let conditions: &[Condition] = current.map_or(&[], |s| &s.status.conditions);
    let at_generation = |type_: &str| {
        find_condition(conditions, type_)
            .filter(|c| c.observed_generation == 0 || c.observed_generation == work.generation)
    };
    let stale =
        |type_: &str| find_condition(conditions, type_).is_some() && at_generation(type_).is_none();
    let is = |type_: &str, status: &str| at_generation(type_).is_some_and(|c| c.status == status);
    match rule {
        SuccessRule::Available => {
            if current.is_none() {
                return ClusterStatus::Progressing;
            }
            if is(condition_type::DEGRADED, condition_status::TRUE)
                || is(condition_type::APPLIED, condition_status::FALSE)
            {
                return ClusterStatus::Failed;
            }
            let ready = is(condition_type::APPLIED, condition_status::TRUE)
                && is(condition_type::AVAILABLE, condition_status::TRUE);
            let progressing = at_generation(condition_type::PROGRESSING);
            let complete = at_generation(condition_type::COMPLETE);
            let finished = match (progressing, complete) {
                (None, None) => true,
                (p, c) => {
                    p.is_some_and(|p| p.status == condition_status::FALSE)
                        || c.is_some_and(|c| c.status == condition_status::TRUE)
                }
            };
            if ready && finished {
                ClusterStatus::Succeeded
            } else {
                ClusterStatus::Progressing
            }
        }
        SuccessRule::Upstream => {
            if !is(condition_type::APPLIED, condition_status::TRUE) {
                return ClusterStatus::ToApply;
            }
            let Some(progressing) = at_generation(condition_type::PROGRESSING) else {
                return ClusterStatus::ToApply;
            };
            if stale(condition_type::DEGRADED) {
                return ClusterStatus::ToApply;
            }
            let degraded = is(condition_type::DEGRADED, condition_status::TRUE);
            match progressing.status.as_str() {
                condition_status::TRUE if degraded => ClusterStatus::Failed,
                condition_status::TRUE => ClusterStatus::Progressing,
                condition_status::FALSE if degraded => ClusterStatus::Failed,
                condition_status::FALSE => ClusterStatus::Succeeded,
                _ => ClusterStatus::Progressing,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoredStatus, WorkKey};
    use chrono::Utc;
    use workbus_schemas::work::{ManifestWorkStatus, Time};

    pub(crate) fn work_with(
        generation: i64,
        status_gen: Option<i64>,
        conds: &[(&str, &str)],
    ) -> WorkRecord {
        let now = Utc::now();
        WorkRecord {
            uid: "u".into(),
            key: WorkKey {
                cluster: "c".into(),
                name: "w".into(),
            },
            labels: Default::default(),
            annotations: Default::default(),
            spec: Default::default(),
            generation,
            created: now,
            updated: now,
            deletion: None,
            status: status_gen.map(|g| StoredStatus {
                status: ManifestWorkStatus {
                    conditions: conds
                        .iter()
                        .map(|(t, s)| {
                            Condition::new(t, s, "r", "", Time::new(now))
                                .with_observed_generation(g)
                        })
                        .collect(),
                    ..Default::default()
                },
                generation: g,
                sequence_id: "1".into(),
                status_hash: None,
                received: now,
            }),
        }
    }

    const A: &str = condition_type::APPLIED;
    const AV: &str = condition_type::AVAILABLE;
    const P: &str = condition_type::PROGRESSING;
    const D: &str = condition_type::DEGRADED;
    const C: &str = condition_type::COMPLETE;
    const T: &str = condition_status::TRUE;
    const F: &str = condition_status::FALSE;

    #[test]
    fn workbus_rule_succeeds_on_applied_and_available_without_condition_rules() {
        let w = work_with(2, Some(2), &[(A, T), (AV, T)]);
        assert_eq!(judge(&w, SuccessRule::Available), ClusterStatus::Succeeded);
        // Upstream stalls on the same work (checklist 23).
        assert_eq!(judge(&w, SuccessRule::Upstream), ClusterStatus::ToApply);
    }

    #[test]
    fn workbus_rule_waits_for_the_current_generation_and_rule_conditions() {
        assert_eq!(
            judge(&work_with(2, None, &[]), SuccessRule::Available),
            ClusterStatus::Progressing
        );
        assert_eq!(
            judge(
                &work_with(3, Some(2), &[(A, T), (AV, T)]),
                SuccessRule::Available
            ),
            ClusterStatus::Progressing
        );
        assert_eq!(
            judge(
                &work_with(1, Some(1), &[(A, T), (AV, T), (P, T)]),
                SuccessRule::Available
            ),
            ClusterStatus::Progressing
        );
        assert_eq!(
            judge(
                &work_with(1, Some(1), &[(A, T), (AV, T), (P, F)]),
                SuccessRule::Available
            ),
            ClusterStatus::Succeeded
        );
        assert_eq!(
            judge(
                &work_with(1, Some(1), &[(A, T), (AV, T), (C, T)]),
                SuccessRule::Available
            ),
            ClusterStatus::Succeeded
        );
        assert_eq!(
            judge(
                &work_with(1, Some(1), &[(A, T), (AV, T), (D, T)]),
                SuccessRule::Available
            ),
            ClusterStatus::Failed
        );
        assert_eq!(
            judge(&work_with(1, Some(1), &[(A, F)]), SuccessRule::Available),
            ClusterStatus::Failed
        );
    }

    #[test]
    fn upstream_table() {
        let u = |c: &[(&str, &str)]| judge(&work_with(1, Some(1), c), SuccessRule::Upstream);
        assert_eq!(u(&[(A, F), (P, F)]), ClusterStatus::ToApply);
        assert_eq!(u(&[(A, T), (P, T), (D, T)]), ClusterStatus::Failed);
        assert_eq!(u(&[(A, T), (P, T)]), ClusterStatus::Progressing);
        assert_eq!(u(&[(A, T), (P, F)]), ClusterStatus::Succeeded);
        assert_eq!(u(&[(A, T), (P, "Unknown")]), ClusterStatus::Progressing);
    }
}
