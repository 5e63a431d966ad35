//! Deleting a work: the hub marks it deleting and queues its delete event; the row goes
//! only when the agent confirms (the [`status`](super::status) rule, step 3). Until then
//! the delete event is re-driven (`source::redrive`), but only for a work that is still
//! deleting when the re-drive is written: one completed (or completed and re-created)
//! since it was listed gets no event, so a stale delete can never follow a newer
//! incarnation's create.

use chrono::{DateTime, Utc};

use crate::store::WorkRecord;

/// What a delete request does to a stored work.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletionPlan {
    /// Already deleting: nothing changes, nothing is queued (deletes are idempotent).
    AlreadyDeleting(WorkRecord),
    /// Store the work as deleting and queue its delete event.
    Mark(WorkRecord),
}

impl DeletionPlan {
    /// The work as it is after the request.
    pub fn into_work(self) -> WorkRecord {
        match self {
            DeletionPlan::AlreadyDeleting(w) | DeletionPlan::Mark(w) => w,
        }
    }
}

/// Decides what a delete request at `now` does to `work`.
pub fn plan_deletion(mut work: WorkRecord, now: DateTime<Utc>) -> DeletionPlan {
    if work.deletion.is_some() {
        return DeletionPlan::AlreadyDeleting(work);
    }
    work.deletion = Some(now);
    work.updated = now;
    DeletionPlan::Mark(work)
}

/// Whether the delete event of the work found under a listed uid is due again: only
/// while that work is still deleting.
pub fn redrive_due(work: Option<&WorkRecord>) -> bool {
    work.is_some_and(|w| w.deletion.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WorkKey;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_765_000_000 + secs, 0).unwrap()
    }

    fn work(deletion: Option<DateTime<Utc>>) -> WorkRecord {
        WorkRecord {
            uid: "u".into(),
            key: WorkKey {
                cluster: "c".into(),
                name: "w".into(),
            },
            labels: Default::default(),
            annotations: Default::default(),
            spec: Default::default(),
            generation: 2,
            created: at(0),
            updated: at(0),
            deletion,
            status: None,
        }
    }

    #[test]
    fn the_first_request_marks_later_ones_change_nothing() {
        let DeletionPlan::Mark(marked) = plan_deletion(work(None), at(5)) else {
            panic!("a live work is marked");
        };
        assert_eq!((marked.deletion, marked.updated), (Some(at(5)), at(5)));
        assert_eq!(marked.generation, 2, "a delete keeps the generation");
        assert_eq!(
            plan_deletion(marked.clone(), at(9)),
            DeletionPlan::AlreadyDeleting(marked)
        );
    }

    #[test]
    fn only_a_work_still_deleting_is_redriven() {
        assert!(redrive_due(Some(&work(Some(at(1))))));
        assert!(!redrive_due(Some(&work(None))), "re-created since listed");
        assert!(!redrive_due(None), "completed since listed");
    }
}
