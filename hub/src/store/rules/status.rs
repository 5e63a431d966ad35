//! The hub's acceptance rule for a received status (reference §6.5 step 5, §7.3, §10
//! items 10–11), as a pure function so every [`Store`](crate::store::Store)
//! implementation applies exactly the same rule inside its transaction. The hub's clock
//! is an input (`now`, the status's receive time), never read here.
//!
//! In order:
//! 1. unknown work → drop (never retried: sdk-go retries forever, §10 item 11);
//! 2. a `clustername` other than the work's → drop (Maestro: "unmatched consumer name");
//!    a missing or empty one too (`cluster_mismatch`): a status speaks for one cluster,
//!    and the hub checks that it is the cluster of the topic it came on
//!    (`source::admission`) before it gets here;
//! 3. `Deleted=True` completes the deletion only when it answers the hub's own delete
//!    request, of this incarnation of the work: the work is deleting (else
//!    `not_deleting`) and the status is for its current generation (else
//!    `stale_generation`). A work's uid depends only on source, cluster and name (§0), so
//!    a re-created work has its predecessor's uid; the store continues generations across
//!    incarnations (a re-created work starts above its predecessor's last generation,
//!    kept in a tombstone), so a generation names one incarnation and a late or
//!    redelivered `Deleted` of an earlier one (QoS 1 allows duplicates) can neither
//!    remove a re-created work nor complete its later deletion. sdk-go honours `Deleted`
//!    before any generation check (§6.5 step 5); requiring the generation is safe
//!    because agents report the delete event's generation (§7.2: a delete sets the held
//!    generation, an unknown uid is added with it). Checked before the sequence id: a
//!    confirmation never becomes a comparison floor (the row goes), so an agent whose
//!    clock is off still completes the deletions it was asked for;
//! 4. `resourceversion` ≠ current generation → drop (Maestro's rule, §10 item 10);
//! 5. a sequence id that does not parse → drop (`bad_sequence_id`); one whose time is
//!    more than [`MAX_SEQUENCE_ID_SKEW`] ahead of `now` → drop (`future_sequence_id`).
//!    Accepted, such an id would become the floor every later status is compared with,
//!    and freeze the work's status until the clocks reach it (years for a corrupt id);
//! 6. no stored status of the current generation → accept without comparing: a new
//!    generation's first status starts the comparison afresh, so nothing stored for an
//!    older generation can hold a work's status back once its spec changed. Likewise a
//!    stored id that is no usable floor (unparseable, or implausibly ahead — what a hub
//!    without step 5 stored) is not compared with;
//! 7. sequence id not newer than the stored one → drop (`not_newer`: duplicate or
//!    older; `bad_sequence_id` for ids of another snowflake node, §7.3);
//! 8. otherwise accept.

use std::time::Duration;

use chrono::{DateTime, Utc};
use workbus_schemas::sequence_id::SequenceId;

use crate::store::{DropReason, IncomingStatus, WorkRecord};

/// How far ahead of the hub's clock a status's sequence id may be. Agents stamp ids
/// with their own clock (§7.3); NTP-synchronised clocks differ by far less, and a
/// legitimately skewed agent only has its statuses refused (counted as
/// `future_sequence_id`) until its clock is fixed, instead of poisoning the comparison.
pub const MAX_SEQUENCE_ID_SKEW: Duration = Duration::from_secs(5 * 60);

/// What to do with a received status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusDecision {
    /// Store it as the work's latest status.
    Accept,
    /// Hard-delete the work: the agent confirmed the deletion.
    CompleteDeletion,
    /// Change nothing.
    Drop(DropReason),
}

/// Applies the rule to `incoming` against the stored `work` (if any); `now` is the
/// hub's time when the status arrived.
pub fn decide(
    work: Option<&WorkRecord>,
    incoming: &IncomingStatus,
    now: DateTime<Utc>,
) -> StatusDecision {
    let Some(work) = work else {
        return StatusDecision::Drop(DropReason::UnknownWork);
    };
    if incoming.cluster.as_deref() != Some(work.key.cluster.as_str()) {
        return StatusDecision::Drop(DropReason::ClusterMismatch);
    }
    if incoming.deleted {
        return if work.deletion.is_none() {
            StatusDecision::Drop(DropReason::NotDeleting)
        } else if incoming.generation != work.generation {
            StatusDecision::Drop(DropReason::StaleGeneration)
        } else {
            StatusDecision::CompleteDeletion
        };
    }
    if incoming.generation != work.generation {
        return StatusDecision::Drop(DropReason::StaleGeneration);
    }
    let current = match plausible_sequence_id(&incoming.sequence_id, now) {
        Ok(id) => id,
        Err(reason) => return StatusDecision::Drop(reason),
    };
    let floor = work
        .status
        .as_ref()
        .filter(|stored| stored.generation == work.generation)
        .and_then(|stored| plausible_sequence_id(&stored.sequence_id, now).ok());
    let Some(last) = floor else {
        return StatusDecision::Accept;
    };
    match current.is_newer_than(last) {
        Ok(true) => StatusDecision::Accept,
        Ok(false) => StatusDecision::Drop(DropReason::NotNewer),
        Err(_) => StatusDecision::Drop(DropReason::BadSequenceId),
    }
}

/// The sequence id in `text` if it can take part in the comparison: it parses and its
/// time is at most [`MAX_SEQUENCE_ID_SKEW`] ahead of `now`.
fn plausible_sequence_id(text: &str, now: DateTime<Utc>) -> Result<SequenceId, DropReason> {
    let id: SequenceId = text.parse().map_err(|_| DropReason::BadSequenceId)?;
    let skew_ms = i64::try_from(MAX_SEQUENCE_ID_SKEW.as_millis()).unwrap_or(i64::MAX);
    if id.unix_millis() > now.timestamp_millis().saturating_add(skew_ms) {
        return Err(DropReason::FutureSequenceId);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoredStatus, WorkKey};
    use chrono::TimeDelta;
    use workbus_schemas::sequence_id::DEFAULT_NODE;
    use workbus_schemas::work::{ManifestWorkSpec, ManifestWorkStatus};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-12-16T06:00:17.921Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The sequence id an agent stamps at `now + offset`.
    fn seq_at(offset: TimeDelta) -> String {
        SequenceId::new((now() + offset).timestamp_millis(), DEFAULT_NODE, 0)
            .unwrap()
            .to_string()
    }

    fn work(generation: i64, stored: Option<(i64, String)>) -> WorkRecord {
        WorkRecord {
            uid: "u".into(),
            key: WorkKey {
                cluster: "c".into(),
                name: "w".into(),
            },
            labels: Default::default(),
            annotations: Default::default(),
            spec: ManifestWorkSpec::default(),
            generation,
            created: now(),
            updated: now(),
            deletion: None,
            status: stored.map(|(generation, sequence_id)| StoredStatus {
                status: ManifestWorkStatus::default(),
                generation,
                sequence_id,
                status_hash: None,
                received: now(),
            }),
        }
    }

    fn deleting(mut w: WorkRecord) -> WorkRecord {
        w.deletion = Some(now());
        w
    }

    fn deleted(generation: i64, sequence_id: &str) -> IncomingStatus {
        IncomingStatus {
            deleted: true,
            ..status(generation, sequence_id)
        }
    }

    fn status(generation: i64, sequence_id: &str) -> IncomingStatus {
        IncomingStatus {
            uid: "u".into(),
            cluster: Some("c".into()),
            generation,
            sequence_id: sequence_id.into(),
            status_hash: None,
            status: ManifestWorkStatus::default(),
            deleted: false,
            received: now(),
        }
    }

    /// The id of the report: node 1, valid syntax, time in ~2080.
    const FAR_FUTURE: &str = "9223372036850585600";

    #[test]
    fn ordinary_rules() {
        let w = work(2, Some((2, seq_at(TimeDelta::seconds(-10)))));
        let d = |s: &IncomingStatus| decide(Some(&w), s, now());
        assert_eq!(
            decide(None, &status(2, &seq_at(TimeDelta::zero())), now()),
            StatusDecision::Drop(DropReason::UnknownWork)
        );
        let mut other = status(2, &seq_at(TimeDelta::zero()));
        other.cluster = Some("elsewhere".into());
        assert_eq!(d(&other), StatusDecision::Drop(DropReason::ClusterMismatch));
        // No cluster, or an empty one, speaks for no cluster.
        other.cluster = Some(String::new());
        assert_eq!(d(&other), StatusDecision::Drop(DropReason::ClusterMismatch));
        other.cluster = None;
        assert_eq!(d(&other), StatusDecision::Drop(DropReason::ClusterMismatch));
        assert_eq!(
            d(&status(1, &seq_at(TimeDelta::zero()))),
            StatusDecision::Drop(DropReason::StaleGeneration)
        );
        assert_eq!(
            d(&status(2, &seq_at(TimeDelta::zero()))),
            StatusDecision::Accept
        );
        // A duplicate and an older one.
        assert_eq!(
            d(&status(2, &seq_at(TimeDelta::seconds(-10)))),
            StatusDecision::Drop(DropReason::NotNewer)
        );
        assert_eq!(
            d(&status(2, &seq_at(TimeDelta::seconds(-11)))),
            StatusDecision::Drop(DropReason::NotNewer)
        );
        // Another node cannot be compared.
        let node2 = SequenceId::new(now().timestamp_millis(), 2, 0).unwrap();
        assert_eq!(
            d(&status(2, &node2.to_string())),
            StatusDecision::Drop(DropReason::BadSequenceId)
        );
        assert_eq!(
            d(&status(2, "not-a-number")),
            StatusDecision::Drop(DropReason::BadSequenceId)
        );
    }

    #[test]
    fn first_status_needs_a_valid_sequence_id() {
        let w = work(1, None);
        assert_eq!(
            decide(Some(&w), &status(1, &seq_at(TimeDelta::zero())), now()),
            StatusDecision::Accept
        );
        // Stored, garbage would have been the floor of every later comparison.
        for bad in ["", "abc", "-1"] {
            assert_eq!(
                decide(Some(&w), &status(1, bad), now()),
                StatusDecision::Drop(DropReason::BadSequenceId),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sequence_ids_ahead_of_the_clock_are_refused_beyond_the_skew() {
        let w = work(1, None);
        let skew = TimeDelta::from_std(MAX_SEQUENCE_ID_SKEW).unwrap();
        assert_eq!(
            decide(Some(&w), &status(1, FAR_FUTURE), now()),
            StatusDecision::Drop(DropReason::FutureSequenceId)
        );
        assert_eq!(
            decide(
                Some(&w),
                &status(1, &seq_at(skew + TimeDelta::milliseconds(1))),
                now()
            ),
            StatusDecision::Drop(DropReason::FutureSequenceId)
        );
        // Up to the bound, an agent's clock may run ahead.
        assert_eq!(
            decide(Some(&w), &status(1, &seq_at(skew)), now()),
            StatusDecision::Accept
        );
        // The bound moves with the hub's clock.
        assert_eq!(
            decide(Some(&w), &status(1, &seq_at(skew * 2)), now() + skew),
            StatusDecision::Accept
        );
    }

    #[test]
    fn a_new_generations_first_status_is_not_compared_with_an_older_one() {
        // The stored id is ahead (within the skew: an agent whose clock was ahead, since
        // replaced); the new generation's statuses carry lower ids.
        let ahead = seq_at(TimeDelta::minutes(4));
        let w = work(2, Some((1, ahead.clone())));
        assert_eq!(
            decide(Some(&w), &status(2, &seq_at(TimeDelta::zero())), now()),
            StatusDecision::Accept
        );
        // Within one generation the comparison holds.
        let same = work(2, Some((2, ahead)));
        assert_eq!(
            decide(Some(&same), &status(2, &seq_at(TimeDelta::zero())), now()),
            StatusDecision::Drop(DropReason::NotNewer)
        );
    }

    #[test]
    fn a_stored_id_that_is_no_usable_floor_is_not_compared_with() {
        // Stored by a hub before the skew bound existed, or garbage.
        for stored in [FAR_FUTURE, "abc"] {
            let w = work(1, Some((1, stored.to_string())));
            assert_eq!(
                decide(Some(&w), &status(1, &seq_at(TimeDelta::zero())), now()),
                StatusDecision::Accept,
                "{stored}"
            );
        }
    }

    #[test]
    fn deleted_completes_only_the_requested_deletion_of_this_incarnation() {
        let seq = seq_at(TimeDelta::zero());
        // Generation 3 is deleting: its own confirmation completes it.
        let w = deleting(work(3, Some((3, seq_at(TimeDelta::seconds(-5))))));
        assert_eq!(
            decide(Some(&w), &deleted(3, &seq), now()),
            StatusDecision::CompleteDeletion
        );
        // An earlier incarnation's confirmation (generations continue across
        // incarnations, so it carries a lower one) does not.
        assert_eq!(
            decide(Some(&w), &deleted(2, &seq), now()),
            StatusDecision::Drop(DropReason::StaleGeneration)
        );
        // Nor does any confirmation of a work the hub has not asked to delete.
        let live = work(3, None);
        assert_eq!(
            decide(Some(&live), &deleted(3, &seq), now()),
            StatusDecision::Drop(DropReason::NotDeleting)
        );
        assert_eq!(
            decide(Some(&live), &deleted(2, &seq), now()),
            StatusDecision::Drop(DropReason::NotDeleting)
        );
        assert_eq!(
            decide(None, &deleted(3, &seq), now()),
            StatusDecision::Drop(DropReason::UnknownWork)
        );
    }

    #[test]
    fn deleted_is_not_held_to_the_sequence_id() {
        // A duplicate, an older id, one from a skewed clock: the confirmation stands,
        // since it never becomes the comparison floor.
        let w = deleting(work(3, Some((3, seq_at(TimeDelta::seconds(-5))))));
        for seq in [
            seq_at(TimeDelta::seconds(-5)),
            seq_at(TimeDelta::seconds(-60)),
            FAR_FUTURE.to_string(),
        ] {
            assert_eq!(
                decide(Some(&w), &deleted(3, &seq), now()),
                StatusDecision::CompleteDeletion,
                "{seq}"
            );
        }
    }
}
