//! A replica set's status from one reconcile (reference `placement.md` §5.3): summary
//! counts over its works, `placementSummary` with `availableDecisionGroups` written as
//! upstream writes it (`"<groups> (<works> / <selected> clusters applied)"`), the three
//! conditions with their exact reasons, and workbus's `status.rollout` (phase and
//! per-group progress).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use workbus_schemas::replicaset::names::{condition_type as ct, reason};
use workbus_schemas::replicaset::{
    GroupGate, GroupProgress, ManifestWorkReplicaSetStatus, ManifestWorkReplicaSetSummary,
    PlacementProgress, PlacementSummary, RolloutPhase, RolloutProgress,
};
use workbus_schemas::work::status::{
    condition_status, condition_type, find_condition, set_condition,
};
use workbus_schemas::work::{Condition, Time};

use super::cluster_status::ClusterStatus;
use super::decisions::DecisionGroup;
use crate::store::WorkRecord;
use crate::store::replicaset::ReplicaSetRecord;

/// One placement after planning.
#[derive(Debug, Clone)]
pub struct PlacementOutcome {
    /// The placement.
    pub name: String,
    /// Its decision groups (clusters claimed by an earlier placementRef removed).
    pub groups: Vec<DecisionGroup>,
    /// The status of every touched cluster (at the current template).
    pub statuses: BTreeMap<String, ClusterStatus>,
}

/// How the placements were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// All exist.
    Ok,
    /// One does not.
    NotFound,
    /// A rollout value is wrong.
    RolloutError(String),
}

/// The rollout phase to show.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The phase (`Complete` is decided here).
    pub phase: RolloutPhase,
    /// The gate awaited.
    pub awaiting: Option<GroupGate>,
    /// Why it stopped.
    pub message: String,
}

fn condition(
    type_: &str,
    ok: bool,
    why: &str,
    message: &str,
    now: DateTime<Utc>,
    generation: i64,
) -> Condition {
    let status = if ok {
        condition_status::TRUE
    } else {
        condition_status::FALSE
    };
    Condition::new(type_, status, why, message, Time::new(now)).with_observed_generation(generation)
}

fn work_counts(work: &WorkRecord, summary: &mut ManifestWorkReplicaSetSummary) {
    summary.total += 1;
    summary.updated += 1;
    let Some(status) = work
        .status
        .as_ref()
        .filter(|s| s.generation == work.generation)
    else {
        return;
    };
    let is_true =
        |t: &str| find_condition(&status.status.conditions, t).is_some_and(Condition::is_true);
    summary.applied += u64::from(is_true(condition_type::APPLIED));
    summary.available += u64::from(is_true(condition_type::AVAILABLE));
    summary.progressing += u64::from(is_true(condition_type::PROGRESSING));
    summary.degraded += u64::from(is_true(condition_type::DEGRADED));
}

fn add(total: &mut ManifestWorkReplicaSetSummary, s: &ManifestWorkReplicaSetSummary) {
    total.total += s.total;
    total.progressing += s.progressing;
    total.available += s.available;
    total.degraded += s.degraded;
    total.applied += s.applied;
    total.desired_total += s.desired_total;
    total.updated += s.updated;
}

/// The status `ManifestworkApplied=False/InvalidManifestWorkName` (checklist 29).
pub fn invalid_name(
    prior: &ManifestWorkReplicaSetStatus,
    owner: &str,
    now: DateTime<Utc>,
) -> ManifestWorkReplicaSetStatus {
    let mut status = prior.clone();
    let message = format!(
        "the owner label value {owner:?} (<namespace>.<name>) must be a valid label value of at most 63 characters"
    );
    set_condition(
        &mut status.conditions,
        condition(
            ct::MANIFESTWORK_APPLIED,
            false,
            reason::INVALID_MANIFEST_WORK_NAME,
            &message,
            now,
            0,
        ),
        Time::new(now),
    );
    status
}

/// The status after a reconcile.
pub fn build_status(
    rs: &ReplicaSetRecord,
    placements: &[PlacementOutcome],
    works: &BTreeMap<String, WorkRecord>,
    verified: Verified,
    progress: Option<Progress>,
    now: DateTime<Utc>,
) -> ManifestWorkReplicaSetStatus {
    let mut status = ManifestWorkReplicaSetStatus {
        conditions: rs.status.conditions.clone(),
        ..Default::default()
    };
    let generation = rs.generation;
    let at = Time::new(now);
    match verified {
        Verified::Ok => {}
        Verified::NotFound => {
            set_condition(
                &mut status.conditions,
                condition(
                    ct::PLACEMENT_VERIFIED,
                    false,
                    reason::PLACEMENT_DECISION_NOT_FOUND,
                    "",
                    now,
                    generation,
                ),
                at,
            );
            status.summary = rs.status.summary;
            status.placement_summary = rs.status.placement_summary.clone();
            status.rollout = rs.status.rollout.clone();
            return status;
        }
        Verified::RolloutError(message) => {
            set_condition(
                &mut status.conditions,
                condition(
                    ct::PLACEMENT_VERIFIED,
                    false,
                    reason::NOT_AS_EXPECTED,
                    &message,
                    now,
                    generation,
                ),
                at,
            );
            return status;
        }
    }
    let mut selected_total = 0u64;
    let mut succeeded_total = 0u64;
    let mut rollout = Vec::new();
    for p in placements {
        let mut summary = ManifestWorkReplicaSetSummary::default();
        let mut groups = Vec::new();
        let mut selected = 0u64;
        for g in &p.groups {
            let mut gp = GroupProgress {
                index: g.index,
                name: g.name.clone(),
                ..Default::default()
            };
            for c in &g.clusters {
                selected += 1;
                gp.total += 1;
                match p.statuses.get(c) {
                    None | Some(ClusterStatus::ToApply) | Some(ClusterStatus::Skip) => {
                        gp.to_apply += 1
                    }
                    Some(ClusterStatus::Progressing) => gp.progressing += 1,
                    Some(ClusterStatus::Succeeded) => gp.succeeded += 1,
                    Some(ClusterStatus::Failed) | Some(ClusterStatus::TimeOut) => gp.failed += 1,
                }
                if p.statuses.contains_key(c)
                    && let Some(w) = works.get(c).filter(|w| w.deletion.is_none())
                {
                    work_counts(w, &mut summary);
                }
            }
            succeeded_total += gp.succeeded;
            groups.push(gp);
        }
        summary.desired_total = selected;
        selected_total += selected;
        status.placement_summary.push(PlacementSummary {
            name: p.name.clone(),
            available_decision_groups: format!(
                "{} ({} / {} clusters applied)",
                p.groups.len(),
                summary.total,
                selected
            ),
            summary,
        });
        add(&mut status.summary, &summary);
        rollout.push(PlacementProgress {
            name: p.name.clone(),
            groups,
        });
    }
    let s = status.summary;
    let empty = selected_total == 0;
    let verified = if empty {
        condition(
            ct::PLACEMENT_VERIFIED,
            false,
            reason::PLACEMENT_DECISION_EMPTY,
            "",
            now,
            generation,
        )
    } else {
        condition(
            ct::PLACEMENT_VERIFIED,
            true,
            reason::AS_EXPECTED,
            "",
            now,
            generation,
        )
    };
    set_condition(&mut status.conditions, verified, at);
    let complete = !empty && succeeded_total == selected_total;
    let rolled_out = if complete {
        condition(
            ct::PLACEMENT_ROLLED_OUT,
            true,
            reason::COMPLETE,
            "",
            now,
            generation,
        )
    } else {
        condition(
            ct::PLACEMENT_ROLLED_OUT,
            false,
            reason::PROGRESSING,
            "",
            now,
            generation,
        )
    };
    set_condition(&mut status.conditions, rolled_out, at);
    let applied = if s.total == 0 && empty {
        condition(
            ct::MANIFESTWORK_APPLIED,
            false,
            reason::PLACEMENT_DECISION_EMPTY,
            "",
            now,
            generation,
        )
    } else if s.total > 0 && s.available == s.total && s.progressing == 0 && s.degraded == 0 {
        condition(
            ct::MANIFESTWORK_APPLIED,
            true,
            reason::AS_EXPECTED,
            "",
            now,
            generation,
        )
    } else if s.progressing > 0 && s.degraded == 0 {
        condition(
            ct::MANIFESTWORK_APPLIED,
            false,
            reason::PROCESSING,
            "",
            now,
            generation,
        )
    } else {
        condition(
            ct::MANIFESTWORK_APPLIED,
            false,
            reason::NOT_AS_EXPECTED,
            "",
            now,
            generation,
        )
    };
    set_condition(&mut status.conditions, applied, at);
    if let Some(progress) = progress {
        let phase = match progress.phase {
            RolloutPhase::Progressing if complete => RolloutPhase::Complete,
            p => p,
        };
        status.rollout = Some(RolloutProgress {
            phase,
            awaiting: progress.awaiting,
            message: progress.message,
            template_hash: rs.revision.hash.clone(),
            placements: rollout,
        });
    }
    status
}
