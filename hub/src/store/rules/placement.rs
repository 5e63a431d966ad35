//! Placement rules (issue 14): what applying a Placement does to the stored record —
//! created at generation 1, the generation bumped only when the spec changes, the
//! status (written by the scheduler) kept.

use chrono::{DateTime, Utc};
use workbus_schemas::placement::{Placement, PlacementStatus};
use workbus_schemas::work::Time;

use crate::store::placement::PlacementRecord;

/// The record after applying `placement` at `now` over `existing` (if any). The caller's
/// status is ignored: only the scheduler writes it.
pub fn apply(
    existing: Option<&PlacementRecord>,
    mut placement: Placement,
    now: DateTime<Utc>,
) -> PlacementRecord {
    let (created, generation, status) = match existing {
        Some(old) => {
            let same = old.placement.spec == placement.spec;
            (
                old.created,
                old.generation + i64::from(!same),
                old.placement.status.clone(),
            )
        }
        None => (now, 1, PlacementStatus::default()),
    };
    placement.status = status;
    normalise(&mut placement, created, generation);
    PlacementRecord {
        placement,
        created,
        generation,
    }
}

/// Fills in the metadata the store owns (`generation`, `creationTimestamp`) and drops
/// what it does not keep (`uid`, `resourceVersion`, the caller's times).
pub fn normalise(p: &mut Placement, created: DateTime<Utc>, generation: i64) {
    p.metadata.generation = generation;
    p.metadata.creation_timestamp = Some(Time::new(created));
    p.metadata.resource_version.clear();
    p.metadata.deletion_timestamp = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_moves_with_the_spec_only() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let mut p = Placement::named("ns", "p");
        p.status.number_of_selected_clusters = 9;
        let r1 = apply(None, p.clone(), t0);
        assert_eq!(r1.generation, 1);
        assert_eq!(r1.placement.status, PlacementStatus::default());
        let mut r1b = r1.clone();
        r1b.placement.status.number_of_selected_clusters = 2;
        let r2 = apply(Some(&r1b), p.clone(), t0 + chrono::Duration::seconds(5));
        assert_eq!((r2.generation, r2.created), (1, t0));
        assert_eq!(r2.placement.status.number_of_selected_clusters, 2);
        p.spec.number_of_clusters = Some(1);
        assert_eq!(apply(Some(&r2), p, t0).generation, 2);
    }
}
