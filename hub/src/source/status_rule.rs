//! The hub's acceptance rule for a received status (reference §6.5 step 5, §7.3, §10
//! items 10–11), as a pure function so every [`Store`](crate::store::Store)
//! implementation applies exactly the same rule inside its transaction.
//!
//! In order:
//! 1. unknown work → drop (never retried: sdk-go retries forever, §10 item 11);
//! 2. a `clustername` other than the work's → drop (Maestro: "unmatched consumer name");
//! 3. `Deleted=True` → the deletion is complete, before any generation/sequence check;
//! 4. `resourceversion` ≠ current generation → drop (Maestro's rule, §10 item 10);
//! 5. sequence id not newer than the stored one → drop (duplicate or older);
//! 6. otherwise accept.

use workbus_schemas::sequence_id;

use crate::store::{DropReason, IncomingStatus, WorkRecord};

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

/// Applies the rule to `incoming` against the stored `work` (if any).
pub fn decide(work: Option<&WorkRecord>, incoming: &IncomingStatus) -> StatusDecision {
    let Some(work) = work else {
        return StatusDecision::Drop(DropReason::UnknownWork);
    };
    if let Some(cluster) = incoming.cluster.as_deref()
        && !cluster.is_empty()
        && cluster != work.key.cluster
    {
        return StatusDecision::Drop(DropReason::ClusterMismatch);
    }
    if incoming.deleted {
        return StatusDecision::CompleteDeletion;
    }
    if incoming.generation != work.generation {
        return StatusDecision::Drop(DropReason::StaleGeneration);
    }
    let last = work.status.as_ref().map(|s| s.sequence_id.as_str());
    match sequence_id::is_newer(last, &incoming.sequence_id) {
        Ok(true) => StatusDecision::Accept,
        Ok(false) => StatusDecision::Drop(DropReason::NotNewer),
        Err(_) => StatusDecision::Drop(DropReason::BadSequenceId),
    }
}
