//! The rollout strategies as a pure planner (sdk-go `RolloutHandler`, reference
//! `placement.md` §4.2–4.3): from the decision groups, the statuses of the clusters
//! already touched at the current template, and `now`, which clusters to roll out,
//! which timed out, which left the decisions, whether failures breach `maxFailures`
//! and when to look again.
//!
//! Differences from upstream, on purpose: `maxFailures` written explicitly under `all`
//! is honoured (upstream ignores it); percentages round up.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use workbus_schemas::replicaset::{
    DecisionGroupRef, IntOrPercent, RolloutStrategy, RolloutType, RolloutValueError,
    parse_go_duration, parse_progress_deadline,
};

use super::cluster_status::{ClusterRolloutStatus, ClusterStatus, GroupKey};
use super::decisions::DecisionGroup;

/// A rollout strategy with its values parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    /// `type`.
    pub kind: RolloutType,
    /// `minSuccessTime` (0 for `All`).
    pub min_success: Duration,
    /// `progressDeadline` (`None` = wait forever).
    pub deadline: Option<Duration>,
    /// `maxFailures` (absent = 0, or all clusters for `All`).
    pub max_failures: Option<IntOrPercent>,
    /// `progressive.maxConcurrency` (absent = all).
    pub max_concurrency: Option<IntOrPercent>,
    /// `mandatoryDecisionGroups`.
    pub mandatory: Vec<DecisionGroupRef>,
}

fn chrono_duration(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

impl Strategy {
    /// Parses a placementRef's `rolloutStrategy`.
    pub fn parse(s: &RolloutStrategy) -> Result<Strategy, RolloutValueError> {
        let config = s.config();
        let min_success = match (s.type_, config.min_success_time.as_deref()) {
            (RolloutType::All, _) | (_, None) => Duration::zero(),
            (_, Some(t)) => chrono_duration(parse_go_duration(t, "minSuccessTime")?),
        };
        let deadline =
            parse_progress_deadline(config.progress_deadline.as_deref())?.map(chrono_duration);
        let max_concurrency = match s.type_ {
            RolloutType::Progressive => s
                .progressive
                .as_ref()
                .and_then(|p| p.max_concurrency.clone()),
            _ => None,
        };
        let strategy = Strategy {
            kind: s.type_,
            min_success,
            deadline,
            max_failures: config.max_failures,
            max_concurrency,
            mandatory: s.mandatory_groups().to_vec(),
        };
        // Refuse bad values up front rather than on the first plan.
        strategy.failures_allowed(1)?;
        if let Some(c) = &strategy.max_concurrency {
            c.scaled(1, "maxConcurrency")?;
        }
        Ok(strategy)
    }

    fn failures_allowed(&self, total: usize) -> Result<usize, RolloutValueError> {
        match (&self.max_failures, self.kind) {
            (None, RolloutType::All) => Ok(total),
            (None, _) => Ok(0),
            (Some(m), _) => m.scaled(total, "maxFailures"),
        }
    }

    fn is_mandatory(&self, group: &GroupKey) -> bool {
        self.mandatory
            .iter()
            .any(|m| m.names(group.index, &group.name))
    }

    /// Where a group comes in the rollout order: mandatory groups first (in the order
    /// they are listed), then by index.
    pub fn group_position(&self, group: &GroupKey) -> (usize, i32) {
        match self
            .mandatory
            .iter()
            .position(|m| m.names(group.index, &group.name))
        {
            Some(p) => (0, p as i32),
            None => (1, group.index),
        }
    }
}

/// What the planner decided (sdk-go's `RolloutResult`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutResult {
    /// Clusters in flight or to start: new ones have status `ToApply`.
    pub to_rollout: Vec<ClusterRolloutStatus>,
    /// Clusters past `progressDeadline` (status `TimeOut`).
    pub timed_out: Vec<ClusterRolloutStatus>,
    /// Touched clusters no longer in the decisions.
    pub removed: Vec<ClusterRolloutStatus>,
    /// Failures exceeded `maxFailures`.
    pub breach: bool,
    /// The earliest instant after `now` at which the plan can change by time alone.
    pub recheck: Option<DateTime<Utc>>,
}

enum Determined {
    Rollout(ClusterRolloutStatus),
    TimedOut(ClusterRolloutStatus),
    Ignore,
}

/// sdk-go's `determineRolloutStatus` (§4.2).
fn determine(
    s: &ClusterRolloutStatus,
    min_success: Duration,
    deadline: Option<Duration>,
    now: DateTime<Utc>,
) -> Determined {
    let mut s = s.clone();
    match s.status {
        ClusterStatus::ToApply => Determined::Rollout(s),
        ClusterStatus::Succeeded => match s.last_transition {
            Some(at) if now < at + min_success => {
                s.recheck = Some(at + min_success);
                Determined::Rollout(s)
            }
            _ => Determined::Ignore,
        },
        ClusterStatus::TimeOut | ClusterStatus::Skip => Determined::Ignore,
        ClusterStatus::Progressing | ClusterStatus::Failed => match deadline {
            None => Determined::Rollout(s),
            Some(d) => {
                let end = s.last_transition.unwrap_or(now) + d;
                if now < end {
                    s.recheck = Some(end);
                    Determined::Rollout(s)
                } else {
                    s.status = ClusterStatus::TimeOut;
                    Determined::TimedOut(s)
                }
            }
        },
    }
}

/// Accumulates determined clusters.
#[derive(Default)]
struct Acc {
    rollout: Vec<ClusterRolloutStatus>,
    timed_out: Vec<ClusterRolloutStatus>,
}

impl Acc {
    fn add(&mut self, d: Determined) {
        match d {
            Determined::Rollout(s) => self.rollout.push(s),
            Determined::TimedOut(s) => self.timed_out.push(s),
            Determined::Ignore => {}
        }
    }

    fn failures(&self) -> usize {
        self.rollout
            .iter()
            .filter(|s| s.status == ClusterStatus::Failed)
            .count()
            + self.timed_out.len()
    }

    fn in_flight(&self) -> usize {
        self.rollout.len()
    }
}

/// Plans one step of a placement's rollout. `existing` holds the clusters already
/// given the current template, with their statuses; every other cluster of `groups`
/// is new.
pub fn plan(
    strategy: &Strategy,
    groups: &[DecisionGroup],
    existing: &BTreeMap<String, ClusterRolloutStatus>,
    now: DateTime<Utc>,
) -> Result<RolloutResult, RolloutValueError> {
    let decided: BTreeSet<&str> = groups
        .iter()
        .flat_map(|g| g.clusters.iter().map(String::as_str))
        .collect();
    let removed = existing
        .values()
        .filter(|s| !decided.contains(s.cluster.as_str()))
        .cloned()
        .collect();
    let mut result = match strategy.kind {
        RolloutType::All => all(strategy, groups, existing, now)?,
        RolloutType::Progressive => progressive(strategy, groups, existing, now)?,
        RolloutType::ProgressivePerGroup => per_group(strategy, groups, existing, now)?,
    };
    result.removed = removed;
    result.recheck = result
        .to_rollout
        .iter()
        .filter_map(|s| s.recheck)
        .filter(|t| *t > now)
        .min();
    Ok(result)
}

fn status_of(
    cluster: &str,
    group: &GroupKey,
    existing: &BTreeMap<String, ClusterRolloutStatus>,
) -> ClusterRolloutStatus {
    match existing.get(cluster) {
        Some(s) => ClusterRolloutStatus {
            group: group.clone(),
            ..s.clone()
        },
        None => ClusterRolloutStatus::new_cluster(cluster, group),
    }
}

fn finish(acc: Acc, breach: bool) -> RolloutResult {
    RolloutResult {
        to_rollout: acc.rollout,
        timed_out: acc.timed_out,
        removed: Vec::new(),
        breach,
        recheck: None,
    }
}

fn all(
    strategy: &Strategy,
    groups: &[DecisionGroup],
    existing: &BTreeMap<String, ClusterRolloutStatus>,
    now: DateTime<Utc>,
) -> Result<RolloutResult, RolloutValueError> {
    let mut acc = Acc::default();
    let mut total = 0;
    for g in groups {
        let key = g.key();
        for c in &g.clusters {
            total += 1;
            let s = status_of(c, &key, existing);
            acc.add(determine(&s, Duration::zero(), strategy.deadline, now));
        }
    }
    let breach = acc.failures() > strategy.failures_allowed(total)?;
    Ok(finish(acc, breach))
}

/// Mandatory groups as ProgressivePerGroup with no failure tolerated; `Some` when the
/// rollout must stop there (clusters in flight or timed out, or a breach).
fn mandatory_first(
    strategy: &Strategy,
    groups: &[DecisionGroup],
    existing: &BTreeMap<String, ClusterRolloutStatus>,
    now: DateTime<Utc>,
) -> Option<RolloutResult> {
    if strategy.mandatory.is_empty() {
        return None;
    }
    let mut acc = Acc::default();
    for m in &strategy.mandatory {
        for g in groups.iter().filter(|g| m.names(g.index, &g.name)) {
            let key = g.key();
            for c in &g.clusters {
                let s = status_of(c, &key, existing);
                acc.add(determine(&s, strategy.min_success, strategy.deadline, now));
            }
        }
    }
    if acc.in_flight() > 0 || !acc.timed_out.is_empty() {
        let breach = acc.failures() > 0;
        return Some(finish(acc, breach));
    }
    None
}

fn progressive(
    strategy: &Strategy,
    groups: &[DecisionGroup],
    existing: &BTreeMap<String, ClusterRolloutStatus>,
    now: DateTime<Utc>,
) -> Result<RolloutResult, RolloutValueError> {
    if let Some(r) = mandatory_first(strategy, groups, existing, now) {
        return Ok(r);
    }
    let mut by_name: BTreeMap<&str, GroupKey> = BTreeMap::new();
    for g in groups {
        for c in &g.clusters {
            by_name.entry(c.as_str()).or_insert_with(|| g.key());
        }
    }
    let total = by_name.len();
    let length = match &strategy.max_concurrency {
        Some(m) => match m.scaled(total, "maxConcurrency")? {
            0 => total,
            n => n.min(total),
        },
        None => total,
    };
    let allowed = strategy.failures_allowed(total)?;
    let mut acc = Acc::default();
    // Touched clusters first, by name.
    for (name, key) in &by_name {
        if existing.contains_key(*name) {
            let s = status_of(name, key, existing);
            acc.add(determine(&s, strategy.min_success, strategy.deadline, now));
        }
    }
    if acc.failures() > allowed {
        return Ok(finish(acc, true));
    }
    if acc.in_flight() >= length {
        return Ok(finish(acc, false));
    }
    for (name, key) in &by_name {
        if acc.in_flight() >= length {
            break;
        }
        if !existing.contains_key(*name) {
            acc.rollout
                .push(ClusterRolloutStatus::new_cluster(name, key));
        }
    }
    Ok(finish(acc, false))
}

fn per_group(
    strategy: &Strategy,
    groups: &[DecisionGroup],
    existing: &BTreeMap<String, ClusterRolloutStatus>,
    now: DateTime<Utc>,
) -> Result<RolloutResult, RolloutValueError> {
    if let Some(r) = mandatory_first(strategy, groups, existing, now) {
        return Ok(r);
    }
    let mut ordered: Vec<&DecisionGroup> = groups
        .iter()
        .filter(|g| !strategy.is_mandatory(&g.key()))
        .collect();
    ordered.sort_by_key(|g| g.index);
    let mut acc = Acc::default();
    for g in ordered {
        let key = g.key();
        let mut group = Acc::default();
        for c in &g.clusters {
            let s = status_of(c, &key, existing);
            group.add(determine(&s, strategy.min_success, strategy.deadline, now));
        }
        let allowed = strategy.failures_allowed(g.clusters.len())?;
        let failures = group.failures();
        let failed_in_flight = group
            .rollout
            .iter()
            .filter(|s| s.status == ClusterStatus::Failed)
            .count();
        let busy = group.in_flight() > failed_in_flight;
        acc.rollout.extend(group.rollout);
        acc.timed_out.extend(group.timed_out);
        if failures > allowed {
            return Ok(finish(acc, true));
        }
        if busy {
            break;
        }
    }
    Ok(finish(acc, false))
}
