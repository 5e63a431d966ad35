//! One reconcile of a replica set, as a pure function: from the stored replica set,
//! its per-cluster states, its works, the placements' decision groups and `now`, what
//! to write (works to apply and delete, states to record or forget, a halt) and the
//! status to show (reference `placement.md` §5.2–5.3, plus workbus's gates, abort and
//! rollback). The controller reads the inputs and records the output in one store
//! transaction ([`crate::store::replicaset_writes::RecordRollout`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use workbus_schemas::replicaset::names::{self, MAX_LABEL_VALUE, owner_label_value};
use workbus_schemas::replicaset::{GroupGate, RolloutPhase, SuccessRule};
use workbus_schemas::work::ManifestWorkSpec;
use workbus_schemas::work::names::label_value_errors;

use super::cluster_status::{ClusterRolloutStatus, ClusterStatus};
use super::decisions::DecisionGroup;
use super::events::{RolloutEvent, RolloutEventKind};
use super::gates::active_gate;
use super::overrides::render;
use super::strategy::{Strategy, plan};
use super::success::judge;
use super::summary::{PlacementOutcome, Verified, build_status};
use crate::store::WorkRecord;
use crate::store::replicaset::{ClusterRollout, Halt, ReplicaSetRecord, Revision};

/// What one reconcile reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The replica set.
    pub replica_set: &'a ReplicaSetRecord,
    /// Decision groups per placement named by its placementRefs (`None`: no Placement).
    pub decisions: &'a BTreeMap<String, Option<Vec<DecisionGroup>>>,
    /// Its per-cluster states.
    pub states: &'a [ClusterRollout],
    /// Its works (labelled with its owner label), by cluster.
    pub works: &'a BTreeMap<String, WorkRecord>,
    /// Cluster labels (read only when the replica set has overrides).
    pub cluster_labels: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// The time.
    pub now: DateTime<Utc>,
}

/// A work to create or update on a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkToApply {
    /// The cluster (work namespace).
    pub cluster: String,
    /// The placement that chose the cluster (`placementname` label).
    pub placement: String,
    /// The spec, rendered for the cluster.
    pub spec: ManifestWorkSpec,
}

/// What one reconcile decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Works to create or update.
    pub apply: Vec<WorkToApply>,
    /// Clusters whose work must be deleted.
    pub delete: Vec<String>,
    /// States to insert or replace (only changed ones).
    pub record: Vec<ClusterRollout>,
    /// Clusters whose state goes.
    pub forget: Vec<String>,
    /// A halt to store (the rollout just stopped).
    pub halt: Option<Halt>,
    /// The new status.
    pub status: workbus_schemas::replicaset::ManifestWorkReplicaSetStatus,
    /// When to reconcile again although nothing else changes.
    pub recheck: Option<DateTime<Utc>>,
    /// The transitions, for watchers.
    pub events: Vec<RolloutEvent>,
    /// A `Foreground` deletion is complete: the replica set can go.
    pub deletion_complete: bool,
    /// Why nothing was rolled out (bad values), for the log.
    pub error: Option<String>,
}

impl Outcome {
    /// Whether it changes nothing: no write, and the status `prior` stays.
    pub fn is_idle(
        &self,
        prior: &workbus_schemas::replicaset::ManifestWorkReplicaSetStatus,
    ) -> bool {
        self.apply.is_empty()
            && self.delete.is_empty()
            && self.record.is_empty()
            && self.forget.is_empty()
            && self.halt.is_none()
            && !self.deletion_complete
            && self.status == *prior
    }
}

/// Reconciles once.
pub fn reconcile(input: Inputs<'_>) -> Outcome {
    let rs = input.replica_set;
    let mut out = Outcome {
        status: rs.status.clone(),
        ..Default::default()
    };
    if rs.deletion.is_some() {
        deleting(input, &mut out);
        return out;
    }
    let owner = owner_label_value(&rs.key.namespace, &rs.key.name);
    if owner.len() > MAX_LABEL_VALUE || !label_value_errors(&owner).is_empty() {
        out.status = super::summary::invalid_name(&rs.status, &owner, input.now);
        return out;
    }
    let refs = &rs.spec.placement_refs;
    let wanted: BTreeSet<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    let states: BTreeMap<&str, &ClusterRollout> = input
        .states
        .iter()
        .map(|s| (s.cluster.as_str(), s))
        .collect();
    // Step 2: works of placements no longer referenced go.
    for s in input.states {
        if !wanted.contains(s.placement.as_str()) {
            forget(&mut out, rs, s, input.now);
        }
    }
    let strategies: Result<Vec<Strategy>, String> = refs
        .iter()
        .map(|r| Strategy::parse(&r.rollout_strategy).map_err(|e| e.to_string()))
        .collect();
    let strategies = match strategies {
        Ok(s) => s,
        Err(e) => {
            out.status = build_status(
                rs,
                &[],
                input.works,
                Verified::RolloutError(e.clone()),
                None,
                input.now,
            );
            out.error = Some(e);
            return out;
        }
    };
    let rule = rs
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.success_rule)
        .unwrap_or_default();
    let after_groups = rs
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.approval.as_ref())
        .map(|a| a.after_groups.clone())
        .unwrap_or_default();
    let halted = rs.halt.is_some();
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let mut placements = Vec::new();
    let mut awaiting: Option<GroupGate> = None;
    let mut breach: Option<String> = None;
    for (r, strategy) in refs.iter().zip(&strategies) {
        let Some(Some(all_groups)) = input.decisions.get(&r.name) else {
            out.status = build_status(rs, &[], input.works, Verified::NotFound, None, input.now);
            return out;
        };
        // One work per (replica set, cluster): a cluster chosen by an earlier
        // placementRef stays with it.
        let groups: Vec<DecisionGroup> = all_groups
            .iter()
            .map(|g| DecisionGroup {
                clusters: g
                    .clusters
                    .iter()
                    .filter(|c| !claimed.contains(*c))
                    .cloned()
                    .collect(),
                ..g.clone()
            })
            .collect();
        let decided: BTreeSet<String> = groups
            .iter()
            .flat_map(|g| g.clusters.iter().cloned())
            .collect();
        claimed.extend(decided.iter().cloned());
        // Clusters that left the decisions: their works go.
        for s in input.states {
            if s.placement == r.name && !decided.contains(&s.cluster) {
                forget(&mut out, rs, s, input.now);
            }
        }
        // Touched clusters at the current template, judged from their works.
        let mut existing: BTreeMap<String, ClusterRolloutStatus> = BTreeMap::new();
        for g in &groups {
            for c in &g.clusters {
                let Some(state) = states.get(c.as_str()) else {
                    continue;
                };
                let Some(work) = input.works.get(c) else {
                    continue;
                };
                if state.revision != rs.revision.hash || work.deletion.is_some() {
                    continue;
                }
                let judged = judge(work, rule);
                let (status, since) = merge(state, judged, input.now);
                existing.insert(
                    c.clone(),
                    ClusterRolloutStatus {
                        cluster: c.clone(),
                        group: g.key(),
                        status,
                        last_transition: Some(since),
                        recheck: None,
                    },
                );
            }
        }
        let gate = active_gate(&r.name, strategy, &groups, &after_groups, &rs.approvals);
        let held: BTreeSet<String> = gate
            .as_ref()
            .map(|g| {
                g.held
                    .iter()
                    .filter(|c| !existing.contains_key(*c))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let planned_groups: Vec<DecisionGroup> = groups
            .iter()
            .map(|g| DecisionGroup {
                clusters: g
                    .clusters
                    .iter()
                    .filter(|c| !held.contains(*c))
                    .cloned()
                    .collect(),
                ..g.clone()
            })
            .collect();
        let result = match plan(strategy, &planned_groups, &existing, input.now) {
            Ok(r) => r,
            Err(e) => {
                out.status = build_status(
                    rs,
                    &[],
                    input.works,
                    Verified::RolloutError(e.to_string()),
                    None,
                    input.now,
                );
                out.error = Some(e.to_string());
                return out;
            }
        };
        out.recheck = [out.recheck, result.recheck].into_iter().flatten().min();
        let mut statuses: BTreeMap<String, ClusterStatus> = existing
            .iter()
            .map(|(c, s)| (c.clone(), s.status))
            .collect();
        for s in &result.timed_out {
            statuses.insert(s.cluster.clone(), ClusterStatus::TimeOut);
        }
        if result.breach && !halted && breach.is_none() {
            let failures = statuses.values().filter(|s| s.is_failure()).count();
            breach = Some(format!(
                "{failures} failed or timed-out clusters on placement {:?} exceed maxFailures",
                r.name
            ));
        }
        let stopped = halted || breach.is_some();
        for s in &result.to_rollout {
            if existing.contains_key(&s.cluster) || stopped {
                continue;
            }
            let labels = input
                .cluster_labels
                .get(&s.cluster)
                .cloned()
                .unwrap_or_default();
            match render(&rs.revision.template, &rs.revision.overrides, &labels) {
                Ok(spec) => {
                    out.apply.push(WorkToApply {
                        cluster: s.cluster.clone(),
                        placement: r.name.clone(),
                        spec,
                    });
                    // Under upstream's rule a written work stays ToApply until the agent
                    // reports Progressing; under ours it is progressing from now.
                    let status = match rule {
                        SuccessRule::Available => ClusterStatus::Progressing,
                        SuccessRule::Upstream => ClusterStatus::ToApply,
                    };
                    statuses.insert(s.cluster.clone(), status);
                }
                Err(e) => {
                    out.error = Some(e.to_string());
                }
            }
        }
        if gate.is_some()
            && !held.is_empty()
            && result.to_rollout.is_empty()
            && !stopped
            && awaiting.is_none()
        {
            awaiting = gate.map(|g| g.gate);
        }
        // Record what changed.
        let group_of: BTreeMap<&str, &DecisionGroup> = groups
            .iter()
            .rev()
            .flat_map(|g| g.clusters.iter().map(move |c| (c.as_str(), g)))
            .collect();
        for (cluster, status) in &statuses {
            let group = group_of
                .get(cluster.as_str())
                .map(|g| g.key())
                .unwrap_or_default();
            let before = states.get(cluster.as_str());
            let since = existing
                .get(cluster)
                .and_then(|s| s.last_transition)
                .filter(|_| before.is_some_and(|b| b.revision == rs.revision.hash))
                .unwrap_or(input.now);
            let record = ClusterRollout {
                cluster: cluster.clone(),
                placement: r.name.clone(),
                group,
                status: *status,
                last_transition: if before
                    .is_some_and(|b| b.status == *status && b.revision == rs.revision.hash)
                {
                    before.map(|b| b.last_transition).unwrap_or(since)
                } else {
                    since
                },
                revision: rs.revision.hash.clone(),
            };
            if before.is_none_or(|b| **b != record) {
                let from = before
                    .filter(|b| b.revision == rs.revision.hash)
                    .map(|b| b.status.as_str().to_string());
                if from.as_deref() != Some(status.as_str()) {
                    out.events.push(cluster_event(
                        rs,
                        &r.name,
                        cluster,
                        from,
                        status.as_str(),
                        input.now,
                    ));
                }
                out.record.push(record);
            }
        }
        placements.push(PlacementOutcome {
            name: r.name.clone(),
            groups,
            statuses,
        });
    }
    if let Some(reason) = breach {
        let rollback = rs
            .spec
            .rollout
            .as_ref()
            .is_some_and(|r| r.rollback_on_failure);
        if rollback {
            roll_back(input, &mut out, rs.previous.as_ref());
        }
        out.halt = Some(Halt {
            reason,
            rolled_back: rollback,
            at: input.now,
        });
        out.recheck = None;
    }
    let halt = out.halt.as_ref().or(rs.halt.as_ref());
    let phase = match halt {
        Some(h) if h.rolled_back => RolloutPhase::RolledBack,
        Some(_) => RolloutPhase::Aborted,
        None if awaiting.is_some() => RolloutPhase::AwaitingApproval,
        None => RolloutPhase::Progressing,
    };
    out.status = build_status(
        rs,
        &placements,
        input.works,
        Verified::Ok,
        Some(super::summary::Progress {
            phase,
            awaiting,
            message: halt.map(|h| h.reason.clone()).unwrap_or_default(),
        }),
        input.now,
    );
    let before = rs.status.rollout.as_ref().map(|r| r.phase);
    let after = out.status.rollout.as_ref().map(|r| r.phase);
    if before != after
        && let Some(after) = after
    {
        out.events.push(RolloutEvent {
            namespace: rs.key.namespace.clone(),
            name: rs.key.name.clone(),
            kind: RolloutEventKind::Phase,
            placement: None,
            cluster: None,
            from: before.map(|p| format!("{p:?}")),
            to: format!("{after:?}"),
            at: input.now,
            message: out
                .status
                .rollout
                .as_ref()
                .map(|r| r.message.clone())
                .unwrap_or_default(),
        });
    }
    out
}

/// The status and its start time for a touched cluster: a change of the judged status
/// starts now; a timed-out cluster still progressing or failed stays timed out (the
/// planner times it out again from its original start).
fn merge(
    state: &ClusterRollout,
    judged: ClusterStatus,
    now: DateTime<Utc>,
) -> (ClusterStatus, DateTime<Utc>) {
    let same = judged == state.status
        || (state.status == ClusterStatus::TimeOut
            && matches!(judged, ClusterStatus::Progressing | ClusterStatus::Failed));
    if same {
        (judged, state.last_transition)
    } else {
        (judged, now)
    }
}

fn cluster_event(
    rs: &ReplicaSetRecord,
    placement: &str,
    cluster: &str,
    from: Option<String>,
    to: &str,
    now: DateTime<Utc>,
) -> RolloutEvent {
    RolloutEvent {
        namespace: rs.key.namespace.clone(),
        name: rs.key.name.clone(),
        kind: RolloutEventKind::Cluster,
        placement: Some(placement.to_string()),
        cluster: Some(cluster.to_string()),
        from,
        to: to.to_string(),
        at: now,
        message: String::new(),
    }
}

fn forget(out: &mut Outcome, rs: &ReplicaSetRecord, s: &ClusterRollout, now: DateTime<Utc>) {
    if out.forget.contains(&s.cluster) {
        return;
    }
    out.forget.push(s.cluster.clone());
    out.delete.push(s.cluster.clone());
    out.events.push(cluster_event(
        rs,
        &s.placement,
        &s.cluster,
        Some(s.status.as_str().to_string()),
        "Removed",
        now,
    ));
}

/// Gives every cluster updated to the current template the previous one back (or, with
/// no previous template, deletes its work: there was none before).
fn roll_back(input: Inputs<'_>, out: &mut Outcome, previous: Option<&Revision>) {
    let rs = input.replica_set;
    let current = &rs.revision.hash;
    let updated: Vec<ClusterRollout> = input
        .states
        .iter()
        .filter(|s| &s.revision == current && !out.forget.contains(&s.cluster))
        .cloned()
        .collect();
    let newly: Vec<WorkToApply> = std::mem::take(&mut out.apply);
    out.record
        .retain(|r| !newly.iter().any(|a| a.cluster == r.cluster));
    for s in updated {
        match previous {
            Some(prev) => {
                let labels = input
                    .cluster_labels
                    .get(&s.cluster)
                    .cloned()
                    .unwrap_or_default();
                let Ok(spec) = render(&prev.template, &prev.overrides, &labels) else {
                    continue;
                };
                out.apply.push(WorkToApply {
                    cluster: s.cluster.clone(),
                    placement: s.placement.clone(),
                    spec,
                });
                out.record.retain(|r| r.cluster != s.cluster);
                out.record.push(ClusterRollout {
                    status: ClusterStatus::Progressing,
                    last_transition: input.now,
                    revision: prev.hash.clone(),
                    ..s.clone()
                });
                out.events.push(RolloutEvent {
                    message: format!("rolled back to {}", prev.hash),
                    ..cluster_event(
                        rs,
                        &s.placement,
                        &s.cluster,
                        Some(s.status.as_str().into()),
                        "RolledBack",
                        input.now,
                    )
                });
            }
            None => {
                out.record.retain(|r| r.cluster != s.cluster);
                forget(out, rs, &s, input.now);
            }
        }
    }
}

/// A replica set being deleted (`Foreground`): every work goes; the replica set goes
/// once none is left.
fn deleting(input: Inputs<'_>, out: &mut Outcome) {
    for (cluster, work) in input.works {
        if work.deletion.is_none() {
            out.delete.push(cluster.clone());
        }
    }
    out.forget = input.states.iter().map(|s| s.cluster.clone()).collect();
    out.deletion_complete = input.works.is_empty();
}

/// The works a replica set owns carry these labels (its own labels, plus owner and
/// placement), as upstream.
pub fn work_labels(rs: &ReplicaSetRecord, placement: &str) -> BTreeMap<String, String> {
    let mut labels = rs.labels.clone();
    labels.insert(
        names::REPLICA_SET_LABEL.to_string(),
        owner_label_value(&rs.key.namespace, &rs.key.name),
    );
    labels.insert(names::PLACEMENT_LABEL.to_string(), placement.to_string());
    labels
}
