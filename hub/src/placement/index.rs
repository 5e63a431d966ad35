//! [`PlacementIndex`]: the scheduling state of every Placement, kept incrementally.
//!
//! Per Placement it keeps the checked spec, its eligible sets, how many clusters those
//! sets hold, its feasible clusters (with their toleration expiries) and its last
//! outcome. A change of one cluster then costs one membership check per Placement;
//! only a Placement whose feasible set changed, whose available count crossed zero, or
//! one of whose feasible clusters changed a scored attribute (allocatable resources,
//! toleration expiry) is re-scored, over its feasible clusters only.
//!
//! **Invariant**: for every Placement, its outcome equals
//! [`schedule`](super::schedule::schedule) run from scratch over all clusters with the
//! same current decisions, as long as decision counts of *other* Placements (Balance)
//! did not change since it was last scored. Balance reads those counts when a Placement
//! is re-scored; another Placement's new decisions alone do not re-score it (upstream
//! re-enqueues a Placement only for its own PlacementDecisions too).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use workbus_schemas::placement::Placement;

use super::Misconfig;
use super::schedule::{
    self, Config, Eligibility, Finish, Membership, Outcome, World, configure, earliest,
    eligibility, membership,
};
use super::score::ScoreInputs;
use super::view::ClusterView;
use crate::store::registration::ClusterSet;

/// A Placement's address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PlacementKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl PlacementKey {
    /// The key of `p`.
    pub fn of(p: &Placement) -> PlacementKey {
        PlacementKey {
            namespace: p.metadata.namespace.clone(),
            name: p.metadata.name.clone(),
        }
    }
}

impl std::fmt::Display for PlacementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One Placement's state.
#[derive(Debug, Clone)]
struct Entry {
    placement: Placement,
    config: Result<Config, Misconfig>,
    eligibility: Eligibility,
    /// Clusters in its eligible sets (not deleting).
    available: BTreeSet<String>,
    /// Feasible clusters → their toleration expiry.
    feasible: BTreeMap<String, Option<DateTime<Utc>>>,
    /// The current decisions (selected clusters).
    current: BTreeSet<String>,
    /// The last outcome (`None`: never scheduled, or scheduling disabled).
    outcome: Option<Outcome>,
}

/// The scheduling state of every Placement.
#[derive(Debug, Clone, Default)]
pub struct PlacementIndex {
    clusters: BTreeMap<String, ClusterView>,
    sets: BTreeMap<String, ClusterSet>,
    /// Namespace → names of the sets bound there.
    bindings: BTreeMap<String, BTreeSet<String>>,
    placements: BTreeMap<PlacementKey, Entry>,
    /// Decisions per cluster over all Placements (Balance).
    counts: BTreeMap<String, usize>,
    /// Scoring passes run so far (how much work the incremental path did).
    scored: u64,
}

/// A Placement whose outcome changed.
pub type Changed = Vec<(PlacementKey, Outcome)>;

impl PlacementIndex {
    /// An index over `clusters`, `sets` and `bindings` (namespace → bound set names),
    /// with no Placements yet.
    pub fn new(
        clusters: impl IntoIterator<Item = ClusterView>,
        sets: impl IntoIterator<Item = ClusterSet>,
        bindings: BTreeMap<String, BTreeSet<String>>,
    ) -> PlacementIndex {
        PlacementIndex {
            clusters: clusters.into_iter().map(|c| (c.name.clone(), c)).collect(),
            sets: sets.into_iter().map(|s| (s.name.clone(), s)).collect(),
            bindings,
            placements: BTreeMap::new(),
            counts: BTreeMap::new(),
            scored: 0,
        }
    }

    /// How many scoring passes ran so far (each over one Placement's feasible
    /// clusters): what a cluster change cost.
    pub fn scoring_passes(&self) -> u64 {
        self.scored
    }

    /// The Placements it holds.
    pub fn keys(&self) -> impl Iterator<Item = &PlacementKey> {
        self.placements.keys()
    }

    /// The last outcome of a Placement.
    pub fn outcome(&self, key: &PlacementKey) -> Option<&Outcome> {
        self.placements.get(key)?.outcome.as_ref()
    }

    /// The earliest instant some Placement must be re-scheduled (toleration expiry).
    pub fn next_requeue(&self) -> Option<DateTime<Utc>> {
        self.placements
            .values()
            .filter_map(|e| e.outcome.as_ref()?.requeue_at)
            .min()
    }

    /// Adds or replaces a Placement whose decisions are currently `current` (from the
    /// store: Steady and NoSelectIfNew keep them) and schedules it.
    pub fn upsert_placement(
        &mut self,
        placement: Placement,
        current: BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Changed {
        let key = PlacementKey::of(&placement);
        if let Some(old) = self.placements.remove(&key) {
            self.uncount(&old.current);
        }
        self.count(&current);
        let entry = Entry {
            config: configure(&placement),
            eligibility: Eligibility::default(),
            placement,
            available: BTreeSet::new(),
            feasible: BTreeMap::new(),
            current,
            outcome: None,
        };
        self.placements.insert(key.clone(), entry);
        self.rebuild(&key, now).into_iter().collect()
    }

    /// Forgets a Placement.
    pub fn remove_placement(&mut self, key: &PlacementKey) {
        if let Some(old) = self.placements.remove(key) {
            self.uncount(&old.current);
        }
    }

    /// Replaces the cluster sets and bindings and re-schedules every Placement.
    pub fn set_sets_and_bindings(
        &mut self,
        sets: impl IntoIterator<Item = ClusterSet>,
        bindings: BTreeMap<String, BTreeSet<String>>,
        now: DateTime<Utc>,
    ) -> Changed {
        self.sets = sets.into_iter().map(|s| (s.name.clone(), s)).collect();
        self.bindings = bindings;
        self.rebuild_all(now)
    }

    /// Replaces clusters, cluster sets and bindings together and re-schedules every
    /// Placement once (a topology change: see the controller's `on_trigger`).
    pub fn reload(
        &mut self,
        clusters: impl IntoIterator<Item = ClusterView>,
        sets: impl IntoIterator<Item = ClusterSet>,
        bindings: BTreeMap<String, BTreeSet<String>>,
        now: DateTime<Utc>,
    ) -> Changed {
        self.clusters = clusters.into_iter().map(|c| (c.name.clone(), c)).collect();
        self.set_sets_and_bindings(sets, bindings, now)
    }

    /// Replaces every cluster (after a missed notification) and re-schedules all.
    pub fn set_clusters(
        &mut self,
        clusters: impl IntoIterator<Item = ClusterView>,
        now: DateTime<Utc>,
    ) -> Changed {
        self.clusters = clusters.into_iter().map(|c| (c.name.clone(), c)).collect();
        self.rebuild_all(now)
    }

    /// Re-schedules the Placements whose requeue instant is at or before `now`.
    pub fn on_tick(&mut self, now: DateTime<Utc>) -> Changed {
        let due: Vec<PlacementKey> = self
            .placements
            .iter()
            .filter(|(_, e)| {
                e.outcome
                    .as_ref()
                    .and_then(|o| o.requeue_at)
                    .is_some_and(|at| at <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        due.iter().filter_map(|k| self.rebuild(k, now)).collect()
    }

    /// A cluster was added or changed.
    pub fn on_cluster_changed(&mut self, view: ClusterView, now: DateTime<Utc>) -> Changed {
        let old = self.clusters.insert(view.name.clone(), view.clone());
        if old.as_ref() == Some(&view) {
            return Vec::new();
        }
        self.cluster_moved(old.as_ref(), Some(&view), now)
    }

    /// A cluster was removed.
    pub fn on_cluster_removed(&mut self, name: &str, now: DateTime<Utc>) -> Changed {
        match self.clusters.remove(name) {
            Some(old) => self.cluster_moved(Some(&old), None, now),
            None => Vec::new(),
        }
    }

    /// One cluster went from `old` to `new`: one membership check per Placement,
    /// re-scoring the affected ones.
    fn cluster_moved(
        &mut self,
        old: Option<&ClusterView>,
        new: Option<&ClusterView>,
        now: DateTime<Utc>,
    ) -> Changed {
        let Some(name) = new.or(old).map(|c| c.name.clone()) else {
            return Vec::new();
        };
        let mut dirty = Vec::new();
        for (key, e) in &mut self.placements {
            if schedule::is_disabled(&e.placement) {
                continue;
            }
            let was_feasible = e.feasible.get(&name).copied();
            let was_available = e.available.contains(&name);
            let verdict = new.map_or(Membership::Unavailable, |c| {
                membership(
                    &e.placement,
                    &e.eligibility,
                    c,
                    e.current.contains(&name),
                    now,
                )
            });
            let is_available = verdict != Membership::Unavailable;
            if is_available {
                e.available.insert(name.clone());
            } else {
                e.available.remove(&name);
            }
            let is_feasible = match verdict {
                Membership::Feasible { until } => {
                    e.feasible.insert(name.clone(), until);
                    Some(until)
                }
                _ => {
                    e.feasible.remove(&name);
                    None
                }
            };
            // A feasible cluster that stays feasible but changed (the caller skips
            // unchanged views) may score or group differently: allocatable resources,
            // labels and claims of decision groups, toleration expiry.
            let changed_while_feasible = is_feasible.is_some() && was_feasible.is_some();
            let crossed_zero = was_available != is_available && e.available.len() <= 1;
            if was_feasible != is_feasible || changed_while_feasible || crossed_zero {
                dirty.push(key.clone());
            }
        }
        dirty.iter().filter_map(|k| self.rescore(k, now)).collect()
    }

    /// Recomputes one Placement's eligibility and memberships over every cluster, then
    /// re-scores it.
    fn rebuild(
        &mut self,
        key: &PlacementKey,
        now: DateTime<Utc>,
    ) -> Option<(PlacementKey, Outcome)> {
        let empty = BTreeSet::new();
        let e = self.placements.get_mut(key)?;
        let bound = self.bindings.get(&key.namespace).unwrap_or(&empty);
        e.eligibility = eligibility(&e.placement, bound, &self.sets);
        e.available.clear();
        e.feasible.clear();
        for c in self.clusters.values() {
            match membership(
                &e.placement,
                &e.eligibility,
                c,
                e.current.contains(&c.name),
                now,
            ) {
                Membership::Unavailable => {}
                Membership::Filtered => {
                    e.available.insert(c.name.clone());
                }
                Membership::Feasible { until } => {
                    e.available.insert(c.name.clone());
                    e.feasible.insert(c.name.clone(), until);
                }
            }
        }
        self.rescore(key, now)
    }

    fn rebuild_all(&mut self, now: DateTime<Utc>) -> Changed {
        let keys: Vec<PlacementKey> = self.placements.keys().cloned().collect();
        keys.iter().filter_map(|k| self.rebuild(k, now)).collect()
    }

    /// Scores a Placement over its feasible clusters; returns its outcome when it
    /// changed. `NoSelectIfNew` ties feasibility to the decisions: a cluster that left
    /// them can leave the feasible set too, which moves the resource scores' range, so
    /// it scores again until the feasible set is stable (it only shrinks: this ends).
    fn rescore(
        &mut self,
        key: &PlacementKey,
        now: DateTime<Utc>,
    ) -> Option<(PlacementKey, Outcome)> {
        let mut result = None;
        for _ in 0..=self.clusters.len() {
            let Some((outcome, feasible_changed)) = self.score_once(key, now) else {
                break;
            };
            result = Some((key.clone(), outcome));
            if !feasible_changed {
                break;
            }
        }
        result
    }

    /// One scoring pass: the new outcome when it changed, and whether the feasible set
    /// changed with the new decisions.
    fn score_once(&mut self, key: &PlacementKey, now: DateTime<Utc>) -> Option<(Outcome, bool)> {
        let e = self.placements.get(key)?;
        if schedule::is_disabled(&e.placement) {
            return None;
        }
        let feasible: Vec<&ClusterView> = e
            .feasible
            .keys()
            .filter_map(|n| self.clusters.get(n))
            .collect();
        let requeue_at = e.feasible.values().fold(None, |a, b| earliest(a, *b));
        self.scored += 1;
        let outcome = schedule::finish(
            &e.placement,
            Finish {
                config: &e.config,
                eligibility: &e.eligibility,
                available: e.available.len(),
                feasible: &feasible,
                requeue_at,
                inputs: ScoreInputs {
                    current: &e.current,
                    counts: &self.counts,
                },
                now,
            },
        );
        if e.outcome.as_ref() == Some(&outcome) {
            return None;
        }
        let old = e.current.clone();
        let new = outcome.selected_set();
        self.uncount(&old);
        self.count(&new);
        let e = self.placements.get_mut(key)?;
        e.placement.status = outcome.status.clone();
        e.current = new.clone();
        e.outcome = Some(outcome.clone());
        let mut feasible_changed = false;
        for name in old.symmetric_difference(&new) {
            let Some(c) = self.clusters.get(name) else {
                continue;
            };
            let before = e.feasible.get(name).copied();
            let after = match membership(
                &e.placement,
                &e.eligibility,
                c,
                e.current.contains(name),
                now,
            ) {
                Membership::Feasible { until } => Some(until),
                _ => None,
            };
            if before != after {
                feasible_changed = true;
                match after {
                    Some(until) => e.feasible.insert(name.clone(), until),
                    None => e.feasible.remove(name),
                };
            }
        }
        Some((outcome, feasible_changed))
    }

    fn count(&mut self, clusters: &BTreeSet<String>) {
        for c in clusters {
            *self.counts.entry(c.clone()).or_default() += 1;
        }
    }

    fn uncount(&mut self, clusters: &BTreeSet<String>) {
        for c in clusters {
            if let Some(n) = self.counts.get_mut(c) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.counts.remove(c);
                }
            }
        }
    }

    /// Schedules a Placement from scratch over every cluster with its current
    /// decisions (the reference the incremental path must equal; tests).
    pub fn full_recompute(&self, key: &PlacementKey, now: DateTime<Utc>) -> Option<Outcome> {
        let e = self.placements.get(key)?;
        let empty = BTreeSet::new();
        let mut placement = e.placement.clone();
        // The status the outcome was computed from: conditions keep their times.
        if let Some(o) = &e.outcome {
            placement.status = o.status.clone();
        }
        Some(schedule::schedule(
            &placement,
            &e.current,
            World {
                bound: self.bindings.get(&key.namespace).unwrap_or(&empty),
                sets: &self.sets,
                clusters: &self.clusters,
                counts: &self.counts,
                now,
            },
        ))
    }
}
