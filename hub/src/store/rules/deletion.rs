//! Deleting a work: the hub marks it deleting and queues its delete event; the row goes
//! only when the agent confirms (the [`status`](super::status) rule, step 3). Until then
//! the delete event is re-driven (`source::redrive`), but only for a work that is still
//! deleting when the re-drive is written: one completed (or completed and re-created)
//! since it was listed gets no event, so a stale delete can never follow a newer
//! incarnation's create.
//!
//! A **forced** deletion is for a cluster whose agent is gone for good: the work leaves
//! the hub at once, without the agent's confirmation. A live work's delete event is
//! still queued (best effort: a device that returns, or one that was merely slow, gets
//! it); a device that returns later without it is cleaned up by its spec resync, whose
//! answer carries a synthetic delete for every work the hub no longer holds.

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

/// What a forced deletion does to a stored work.
#[derive(Debug, Clone, PartialEq)]
pub struct ForcedRemoval {
    /// The work as it was when removed (a live one marked deleting at the request time).
    pub work: WorkRecord,
    /// Queue its delete event: it was live, so no delete event was queued before.
    pub announce: bool,
}

/// Decides what a forced delete request at `now` does to `work`: it is removed either
/// way; only a live one gets a delete event.
pub fn plan_forced_removal(work: WorkRecord, now: DateTime<Utc>) -> ForcedRemoval {
    match plan_deletion(work, now) {
        DeletionPlan::Mark(work) => ForcedRemoval {
            work,
            announce: true,
        },
        DeletionPlan::AlreadyDeleting(work) => ForcedRemoval {
            work,
            announce: false,
        },
    }
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
    fn a_forced_removal_announces_only_a_live_work() {
        let live = plan_forced_removal(work(None), at(5));
        assert!(live.announce, "a live work's agent has not been told yet");
        assert_eq!(live.work.deletion, Some(at(5)));
        let deleting = plan_forced_removal(work(Some(at(1))), at(5));
        assert!(!deleting.announce, "its delete event was queued before");
        assert_eq!(
            deleting.work.deletion,
            Some(at(1)),
            "the first request time stays"
        );
    }

    #[test]
    fn only_a_work_still_deleting_is_redriven() {
        assert!(redrive_due(Some(&work(Some(at(1))))));
        assert!(!redrive_due(Some(&work(None))), "re-created since listed");
        assert!(!redrive_due(None), "completed since listed");
    }
}
