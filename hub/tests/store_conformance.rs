//! The store conformance suite: what every [`Store`] backend must do, written against
//! `dyn Store` only and run on each backend in [`backends`] (SQLite today; the
//! PostgreSQL backend joins this list and must pass unchanged).
//!
//! Covered: cluster and work CRUD with the generation rules, the outbox written in the
//! same transaction as the change, the `sent` audit rows, persistence across a reopen,
//! deletion (idempotent, confirmed by status, re-driven only while deleting; forced,
//! and cascading with its cluster),
//! generations continued across incarnations, the status acceptance rule's outcomes,
//! parked outbox rows and their supersession, ready-to-publish messages kept byte for
//! byte (and the event for any other wire format), API tokens (by digest, bootstrap
//! only when empty, revocation), cluster registration (join, CSRs, accept, deny, labels,
//! lease renewals, Wills and health deadlines, cluster sets, bootstrap tokens), Placements
//! (apply, decisions replaced with the status, deletion, cluster set bindings) and the actor of a change on its `sent` audit row, and
//! batches (a failing write rolled back
//! alone, the rest durable), and Secret values never stored in clear (audit copies hold
//! keyed digests); ManifestWorkReplicaSets (a reconcile's works, states and status in
//! one transaction, durable; deletion; foreign works and stale reads left alone).
//! Backend-specific behaviour (SQLite migrations, triggers, corrupt rows) lives in
//! `store_sqlite.rs`.

mod conformance;
mod work_fixture;

use conformance::backends;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            for backend in backends() {
                eprintln!("store conformance: {} on {}", stringify!($case), backend.name());
                conformance::cases::$case(backend.as_ref());
            }
        }
    )*};
}

conformance!(
    clusters_and_works_crud_with_the_generation_rules,
    the_outbox_and_the_sent_audit_rows,
    everything_answered_survives_a_reopen,
    deletion_is_idempotent_and_completed_by_the_agent,
    forced_deletion_and_cascading_cluster_removal,
    generations_continue_across_incarnations,
    pending_deletions_are_redriven_only_while_deleting,
    statuses_follow_the_acceptance_rule,
    parked_rows_leave_the_queue_until_superseded,
    a_failing_write_in_a_batch_is_rolled_back_alone,
    listing_works_filters_and_pages,
    queued_messages_come_back_for_their_wire_format_only,
    api_tokens_are_stored_by_digest_and_revoked_at_once,
    the_actor_of_a_change_reaches_its_sent_audit_row,
    secret_values_are_not_stored_in_clear,
    joins_csrs_accept_and_deny_survive_a_reopen,
    pending_csrs_are_capped_and_the_refusal_is_echoed,
    leases_drive_health_deadlines,
    clustersets_and_bootstrap_tokens,
    placements_decisions_and_bindings,
    replica_set_rollouts_are_written_at_once_and_survive_a_reopen,
    replica_set_deletion_background_and_foreground,
    record_rollout_leaves_foreign_works_and_stale_reads_alone,
);

/// The list itself is checked, so a backend cannot be dropped silently.
#[test]
fn every_backend_is_listed() {
    let names: Vec<&str> = backends().iter().map(|b| b.name()).collect();
    assert_eq!(names, ["sqlite"]);
}
