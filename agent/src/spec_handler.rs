//! What the agent does with a decoded spec event (reference §7.2), as a pure decision
//! over the record it already holds, so the rules can be tested without I/O:
//!
//! - an unknown UID is added (in deleting state if the event carries
//!   `deletiontimestamp`, so that cleanup still runs and is confirmed, §6.5 step 2);
//! - `deletiontimestamp` wins over the spec: only the deletion time and generation
//!   change, the cached spec and status are kept — unless its generation is lower than
//!   the held one (a delete of an earlier incarnation of the same UID, which is stale);
//! - otherwise a generation lower than the cached one is stale (0 means unversioned and is
//!   never stale);
//! - a work already being deleted stays deleted: a late update cannot resurrect it —
//!   except a newer generation once cleanup is complete, which is the work's next
//!   incarnation (the hub re-creates a name only after our `Deleted`, and continues its
//!   generations);
//! - the same generation with the same spec and metadata, already applied, is a
//!   duplicate: nothing is re-applied (Maestro re-sends stored events, §10 item 17).

use workbus_schemas::work::ManifestWork;
use workbus_schemas::work::meta::FINALIZER_MANIFEST_WORK_CLEANUP;

use crate::store::WorkRecord;

/// Why a spec event changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Its generation is lower than the one held.
    Stale,
    /// The work is already being deleted.
    Deleting,
    /// Same generation, spec and metadata as the applied work.
    Duplicate,
}

/// The outcome of a spec event.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecDecision {
    /// Nothing to do.
    Ignore(IgnoreReason),
    /// Store this work and apply its manifests.
    Apply(ManifestWork),
    /// Store this (deleting) work and clean its resources up.
    Delete(ManifestWork),
}

/// Decides what `incoming` (decoded per §5.4) means given the `held` record.
pub fn decide(held: Option<&WorkRecord>, mut incoming: ManifestWork) -> SpecDecision {
    let deleting = incoming.metadata.deletion_timestamp.is_some();
    let Some(held) = held else {
        incoming
            .metadata
            .add_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP);
        return if deleting {
            SpecDecision::Delete(incoming)
        } else {
            SpecDecision::Apply(incoming)
        };
    };
    if deleting {
        if held.work.metadata.deletion_timestamp.is_some() {
            return SpecDecision::Ignore(IgnoreReason::Deleting);
        }
        // A delete older than the work we hold is about an earlier incarnation (queued
        // before the name was re-created, e.g. in a resync answer): it must not take
        // the new one down. Sources never lower a live work's generation.
        let generation = incoming.metadata.generation;
        if generation != 0 && generation < held.work.metadata.generation {
            return SpecDecision::Ignore(IgnoreReason::Stale);
        }
        let mut work = held.work.clone();
        work.metadata.deletion_timestamp = incoming.metadata.deletion_timestamp;
        if incoming.metadata.generation != 0 {
            work.metadata.generation = incoming.metadata.generation;
        }
        work.metadata.add_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP);
        return SpecDecision::Delete(work);
    }
    let generation = incoming.metadata.generation;
    if held.work.metadata.deletion_timestamp.is_some() {
        // A newer generation of a work we are deleting is its next incarnation: a hub
        // re-creates a name only after it took our `Deleted` confirmation (so cleanup
        // is done, only the broker's acknowledgement may be missing), and its
        // generations continue across incarnations. Anything else is a late update
        // that must not resurrect the work.
        if !(generation > held.work.metadata.generation && deletion_confirmed(held)) {
            return SpecDecision::Ignore(IgnoreReason::Deleting);
        }
        incoming
            .metadata
            .add_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP);
        return SpecDecision::Apply(incoming);
    }
    if generation != 0 && generation < held.work.metadata.generation {
        return SpecDecision::Ignore(IgnoreReason::Stale);
    }
    // Keep the agent's own finalizers (its marker that it has seen the work).
    for f in &held.work.metadata.finalizers {
        incoming.metadata.add_finalizer(f);
    }
    incoming
        .metadata
        .add_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP);
    if generation != 0
        && generation == held.applied_generation
        && incoming.spec == held.work.spec
        && incoming.metadata == held.work.metadata
    {
        return SpecDecision::Ignore(IgnoreReason::Duplicate);
    }
    SpecDecision::Apply(incoming)
}

/// True when the held work's cleanup finished and its `Deleted` status was built.
fn deletion_confirmed(held: &WorkRecord) -> bool {
    workbus_schemas::metadata::is_deleted(&held.state.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::WorkState;
    use workbus_schemas::work::{ManifestWorkSpec, ObjectMeta, Time};

    fn work(generation: i64, deleting: bool, manifests: usize) -> ManifestWork {
        let mut spec = ManifestWorkSpec::default();
        for i in 0..manifests {
            let mut m = serde_json::Map::new();
            m.insert("n".into(), i.into());
            spec.workload.manifests.push(m);
        }
        let meta = ObjectMeta {
            uid: "u".into(),
            name: "w".into(),
            namespace: "c".into(),
            generation,
            deletion_timestamp: deleting.then(Time::now),
            ..ObjectMeta::default()
        };
        ManifestWork::new(meta, spec)
    }

    fn held(generation: i64, deleting: bool) -> WorkRecord {
        let mut w = work(generation, deleting, 1);
        w.metadata.add_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP);
        WorkRecord {
            work: w,
            state: WorkState::default(),
            applied_generation: generation,
            reported_hash: String::new(),
            last_sequence_id: String::new(),
        }
    }

    #[test]
    fn unknown_work_is_added_with_the_cleanup_finalizer() {
        match decide(None, work(1, false, 1)) {
            SpecDecision::Apply(w) => {
                assert!(w.metadata.has_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(None, work(1, true, 0)),
            SpecDecision::Delete(_)
        ));
    }

    #[test]
    fn staleness_and_duplicates() {
        let h = held(5, false);
        assert_eq!(
            decide(Some(&h), work(4, false, 2)),
            SpecDecision::Ignore(IgnoreReason::Stale)
        );
        assert_eq!(
            decide(Some(&h), work(5, false, 1)),
            SpecDecision::Ignore(IgnoreReason::Duplicate)
        );
        assert!(matches!(
            decide(Some(&h), work(5, false, 2)),
            SpecDecision::Apply(_)
        ));
        assert!(matches!(
            decide(Some(&h), work(6, false, 1)),
            SpecDecision::Apply(_)
        ));
        // Unversioned (0) is never stale.
        assert!(matches!(
            decide(Some(&h), work(0, false, 1)),
            SpecDecision::Apply(_)
        ));
    }

    /// With the cleanup done and only the broker's acknowledgement of `Deleted`
    /// missing, the hub may already have re-created the name (its generations go on):
    /// that create must not be ignored, or the new incarnation is never applied.
    #[test]
    fn newer_generation_after_a_confirmed_deletion_is_the_next_incarnation() {
        let mut d = held(5, true);
        let cleanup_pending = d.clone();
        d.state
            .status
            .conditions
            .push(workbus_schemas::metadata::deleted_condition(
                "c",
                Time::now(),
            ));
        match decide(Some(&d), work(6, false, 2)) {
            SpecDecision::Apply(w) => {
                assert_eq!(w.metadata.generation, 6);
                assert_eq!(w.spec.workload.manifests.len(), 2);
                assert!(w.metadata.deletion_timestamp.is_none());
                assert!(w.metadata.has_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP));
            }
            other => panic!("{other:?}"),
        }
        // Same or older generation: a late update of the deleted incarnation.
        assert_eq!(
            decide(Some(&d), work(5, false, 1)),
            SpecDecision::Ignore(IgnoreReason::Deleting)
        );
        // Cleanup still running: not yet.
        assert_eq!(
            decide(Some(&cleanup_pending), work(6, false, 1)),
            SpecDecision::Ignore(IgnoreReason::Deleting)
        );
    }

    #[test]
    fn deletion_keeps_spec_and_is_terminal() {
        let h = held(5, false);
        match decide(Some(&h), work(6, true, 0)) {
            SpecDecision::Delete(w) => {
                assert_eq!(w.spec, h.work.spec, "cached spec kept");
                assert_eq!(w.metadata.generation, 6);
                assert!(w.metadata.deletion_timestamp.is_some());
            }
            other => panic!("{other:?}"),
        }
        // A delete of an earlier incarnation does not take the current one down.
        assert_eq!(
            decide(Some(&h), work(4, true, 0)),
            SpecDecision::Ignore(IgnoreReason::Stale)
        );
        let d = held(5, true);
        assert_eq!(
            decide(Some(&d), work(7, false, 3)),
            SpecDecision::Ignore(IgnoreReason::Deleting)
        );
        assert_eq!(
            decide(Some(&d), work(7, true, 0)),
            SpecDecision::Ignore(IgnoreReason::Deleting)
        );
    }
}
