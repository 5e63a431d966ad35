//! The whole scheduling pipeline for one Placement (reference `placement.md` §3), as
//! pure functions: the sets it may use ([`eligibility`]), each cluster's
//! [`membership`] (available → predicates → taints), and [`finish`]: score, select,
//! group, PlacementDecisions and the status conditions `PlacementSatisfied` /
//! `PlacementMisconfigured` with OCM's reasons and messages, plus the requeue instant
//! (the earliest toleration expiry). [`schedule`] runs it all over every cluster; the
//! [`PlacementIndex`](super::index::PlacementIndex) runs the same steps incrementally.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use workbus_schemas::placement::names::{
    SCHEDULING_DISABLE_ANNOTATION, condition, message, reason,
};
use workbus_schemas::placement::{Placement, PlacementDecision, PlacementStatus};
use workbus_schemas::work::Time;
use workbus_schemas::work::status::{Condition, condition_status, set_condition};

use super::Misconfig;
use super::decisions;
use super::filter;
use super::score::{self, Prioritizer, ScoreInputs};
use super::taints::{self, TaintVerdict};
use super::view::ClusterView;
use crate::store::registration::ClusterSet;

/// What a Placement's spec gives once checked: its prioritizers.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The prioritizers with their non-zero weights.
    pub prioritizers: Vec<(Prioritizer, i64)>,
}

/// Checks a spec the way OCM's plugins do, in pipeline order (predicates, taints,
/// prioritizers, decision groups); the first misconfiguration wins.
pub fn configure(p: &Placement) -> Result<Config, Misconfig> {
    filter::check(&p.spec)?;
    taints::check(&p.spec.tolerations)?;
    let prioritizers = score::weights(&p.spec.prioritizer_policy)?;
    decisions::check(&p.spec.decision_strategy.group_strategy)?;
    Ok(Config { prioritizers })
}

/// Whether the scheduler skips `p` (annotation `…/experimental-scheduling-disable:
/// "true"`).
pub fn is_disabled(p: &Placement) -> bool {
    p.metadata.annotation(SCHEDULING_DISABLE_ANNOTATION) == Some("true")
}

/// The cluster sets a Placement may draw from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Eligibility {
    /// Valid bindings in its namespace (their set exists).
    pub bindings: usize,
    /// The bound sets, ∩ `spec.clusterSets` when given, by name.
    pub sets: Vec<ClusterSet>,
}

impl Eligibility {
    fn names(&self) -> Vec<String> {
        self.sets.iter().map(|s| s.name.clone()).collect()
    }
}

/// The eligible sets of `p`: `bound` names the sets bound to its namespace; a binding
/// is valid when its set exists in `sets`.
pub fn eligibility(
    p: &Placement,
    bound: &BTreeSet<String>,
    sets: &BTreeMap<String, ClusterSet>,
) -> Eligibility {
    let valid: Vec<&ClusterSet> = bound.iter().filter_map(|name| sets.get(name)).collect();
    let wanted = &p.spec.cluster_sets;
    Eligibility {
        bindings: valid.len(),
        sets: valid
            .into_iter()
            .filter(|s| wanted.is_empty() || wanted.contains(&s.name))
            .cloned()
            .collect(),
    }
}

/// Where one cluster stands for one Placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Not in an eligible set, or being deleted.
    Unavailable,
    /// Available, but a predicate or a taint filters it out.
    Filtered,
    /// Feasible; `until` is when a toleration it depends on expires.
    Feasible {
        /// The earliest toleration expiry, if any.
        until: Option<DateTime<Utc>>,
    },
}

/// The membership of `cluster` for `p` at `now`; `in_decisions` says whether it is in
/// `p`'s current decisions (`NoSelectIfNew`).
pub fn membership(
    p: &Placement,
    eligibility: &Eligibility,
    cluster: &ClusterView,
    in_decisions: bool,
    now: DateTime<Utc>,
) -> Membership {
    if cluster.deleting || !filter::in_sets(cluster, &eligibility.sets) {
        return Membership::Unavailable;
    }
    if !filter::predicates_match(&p.spec, cluster) {
        return Membership::Filtered;
    }
    match taints::evaluate(&cluster.taints, &p.spec.tolerations, in_decisions, now) {
        TaintVerdict::Excluded => Membership::Filtered,
        TaintVerdict::Tolerated { until } => Membership::Feasible { until },
    }
}

/// The result of scheduling one Placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The selected clusters, by name (the selection is by score, then name; the order
    /// among the chosen ones is not kept, so an outcome is a fixed point of `Steady`).
    pub selected: Vec<String>,
    /// Its PlacementDecisions (at least one).
    pub decisions: Vec<PlacementDecision>,
    /// Its new status.
    pub status: PlacementStatus,
    /// When it must be scheduled again (a toleration expires).
    pub requeue_at: Option<DateTime<Utc>>,
}

impl Outcome {
    /// The selected cluster names as a set.
    pub fn selected_set(&self) -> BTreeSet<String> {
        self.selected.iter().cloned().collect()
    }
}

/// Everything [`finish`] reads besides the Placement.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    /// The checked spec, or its misconfiguration.
    pub config: &'a Result<Config, Misconfig>,
    /// Its eligible sets.
    pub eligibility: &'a Eligibility,
    /// How many clusters are in its eligible sets (not deleting).
    pub available: usize,
    /// The feasible clusters, by name.
    pub feasible: &'a [&'a ClusterView],
    /// The earliest toleration expiry among them.
    pub requeue_at: Option<DateTime<Utc>>,
    /// Scoring inputs (current decisions, decision counts).
    pub inputs: ScoreInputs<'a>,
    /// The hub's clock.
    pub now: DateTime<Utc>,
}

/// Scores, selects and groups the feasible clusters, and builds the decisions and the
/// status. A misconfigured Placement gets no decisions (one empty PlacementDecision), as
/// upstream.
pub fn finish(p: &Placement, f: Finish<'_>) -> Outcome {
    let (selected, requeue_at) = match f.config {
        Ok(config) => {
            let ranked = score::rank(f.feasible, &config.prioritizers, f.inputs);
            let limit = p
                .spec
                .number_of_clusters
                .map_or(ranked.len(), |n| usize::try_from(n).unwrap_or(0));
            let mut selected: Vec<String> = ranked
                .into_iter()
                .take(limit)
                .map(|(name, _)| name)
                .collect();
            selected.sort();
            (selected, f.requeue_at)
        }
        Err(_) => (Vec::new(), None),
    };
    let by_name: BTreeMap<&str, &ClusterView> =
        f.feasible.iter().map(|c| (c.name.as_str(), *c)).collect();
    let chosen: Vec<&ClusterView> = selected
        .iter()
        .filter_map(|n| by_name.get(n.as_str()).copied())
        .collect();
    let groups = decisions::groups(&p.spec.decision_strategy.group_strategy, &chosen);
    let (objects, group_status) =
        decisions::objects(&p.metadata.namespace, &p.metadata.name, &groups);
    let feasible = if f.config.is_ok() {
        f.feasible.len()
    } else {
        0
    };
    let unscheduled = p.spec.number_of_clusters.map_or(0, |n| {
        usize::try_from(n)
            .unwrap_or(0)
            .saturating_sub(selected.len())
    });
    let at = Time::new(f.now);
    let mut status = p.status.clone();
    status.number_of_selected_clusters = i32::try_from(selected.len()).unwrap_or(i32::MAX);
    status.decision_groups = group_status;
    set_condition(
        &mut status.conditions,
        satisfied(p, f.eligibility, f.available, feasible, unscheduled, at),
        at,
    );
    set_condition(&mut status.conditions, misconfigured(f.config, at), at);
    Outcome {
        selected,
        decisions: objects,
        status,
        requeue_at,
    }
}

/// `PlacementSatisfied`, first match wins (reference §2.1).
fn satisfied(
    p: &Placement,
    e: &Eligibility,
    available: usize,
    feasible: usize,
    unscheduled: usize,
    at: Time,
) -> Condition {
    let (status, why, text) = if e.bindings == 0 {
        (
            condition_status::FALSE,
            reason::NO_BINDINGS,
            message::NO_BINDINGS.to_owned(),
        )
    } else if e.sets.is_empty() {
        (
            condition_status::FALSE,
            reason::NO_INTERSECTION,
            message::no_intersection(&p.spec.cluster_sets),
        )
    } else if available == 0 {
        (
            condition_status::FALSE,
            reason::ALL_SETS_EMPTY,
            message::all_sets_empty(&e.names()),
        )
    } else if feasible == 0 {
        (
            condition_status::FALSE,
            reason::NO_CLUSTER_MATCHED,
            message::NO_CLUSTER_MATCHED.to_owned(),
        )
    } else if unscheduled == 0 {
        (
            condition_status::TRUE,
            reason::ALL_SCHEDULED,
            message::ALL_SCHEDULED.to_owned(),
        )
    } else {
        (
            condition_status::FALSE,
            reason::NOT_ALL_SCHEDULED,
            message::unscheduled(unscheduled),
        )
    };
    Condition::new(condition::SATISFIED, status, why, &text, at)
}

/// `PlacementMisconfigured`.
fn misconfigured(config: &Result<Config, Misconfig>, at: Time) -> Condition {
    match config {
        Err(m) => Condition::new(
            condition::MISCONFIGURED,
            condition_status::TRUE,
            reason::MISCONFIGURED,
            &m.to_string(),
            at,
        ),
        Ok(_) => Condition::new(
            condition::MISCONFIGURED,
            condition_status::FALSE,
            reason::SUCCEED_CONFIGURED,
            message::CONFIGURATION_PASS,
            at,
        ),
    }
}

/// The world a full schedule reads.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// Names of the sets bound to the Placement's namespace.
    pub bound: &'a BTreeSet<String>,
    /// Every cluster set, by name.
    pub sets: &'a BTreeMap<String, ClusterSet>,
    /// Every cluster, by name.
    pub clusters: &'a BTreeMap<String, ClusterView>,
    /// Decisions per cluster over all placements (this one's included).
    pub counts: &'a BTreeMap<String, usize>,
    /// The hub's clock.
    pub now: DateTime<Utc>,
}

/// Schedules `p` from scratch over every cluster, given its `current` decisions.
pub fn schedule(p: &Placement, current: &BTreeSet<String>, world: World<'_>) -> Outcome {
    let config = configure(p);
    let eligibility = eligibility(p, world.bound, world.sets);
    let mut available = 0;
    let mut feasible = Vec::new();
    let mut requeue_at: Option<DateTime<Utc>> = None;
    for c in world.clusters.values() {
        match membership(p, &eligibility, c, current.contains(&c.name), world.now) {
            Membership::Unavailable => {}
            Membership::Filtered => available += 1,
            Membership::Feasible { until } => {
                available += 1;
                feasible.push(c);
                requeue_at = earliest(requeue_at, until);
            }
        }
    }
    finish(
        p,
        Finish {
            config: &config,
            eligibility: &eligibility,
            available,
            feasible: &feasible,
            requeue_at,
            inputs: ScoreInputs {
                current,
                counts: world.counts,
            },
            now: world.now,
        },
    )
}

/// The earlier of two optional instants.
pub fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
