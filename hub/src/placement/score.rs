//! The score step (reference `placement.md` §1.2, §3 steps 3–5): which prioritizers a
//! Placement uses with which weights (`Additive`: Balance 1 and Steady 1 overridden by
//! the configurations; `Exact`: only the configurations; weight 0 disables), each one's
//! score per feasible cluster in [-100, 100], the weighted sum, and the selection order
//! (higher sum first, then name).

use std::collections::{BTreeMap, BTreeSet};

use workbus_schemas::placement::names::{misconfig, mode, prioritizer, score_type};
use workbus_schemas::placement::{AddOnScore, PrioritizerPolicy};

use super::Misconfig;
use super::view::ClusterView;

/// The highest score of one prioritizer.
pub const MAX_SCORE: i64 = 100;

/// One prioritizer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Prioritizer {
    /// Prefers clusters that other placements chose less.
    Balance,
    /// Prefers clusters this placement already chose.
    Steady,
    /// Prefers clusters with more allocatable CPU.
    AllocatableCpu,
    /// Prefers clusters with more allocatable memory.
    AllocatableMemory,
    /// An AddOnPlacementScore. This hub stores none, so every cluster scores 0 (OCM's
    /// value for a missing score).
    AddOn(AddOnScore),
}

/// A score coordinate as written: type (defaulted), built-in name, add-on
/// (resource, score).
type Coordinate = (String, String, Option<(String, String)>);

/// The prioritizers of `policy` with their non-zero weights, in a fixed order; OCM's
/// misconfigurations (plugin name empty, as upstream) otherwise.
pub fn weights(policy: &PrioritizerPolicy) -> Result<Vec<(Prioritizer, i64)>, Misconfig> {
    // Keyed by the coordinate as written (type defaulted), so a later configuration
    // overrides an earlier one and the defaults, as OCM's map does.
    let mut by_key: BTreeMap<Coordinate, i64> = BTreeMap::new();
    let builtin = |name: &str| (score_type::BUILT_IN.to_owned(), name.to_owned(), None);
    match policy.mode.as_str() {
        mode::EXACT => {}
        "" | mode::ADDITIVE => {
            by_key.insert(builtin(prioritizer::BALANCE), 1);
            by_key.insert(builtin(prioritizer::STEADY), 1);
        }
        other => return Err(Misconfig::new("", misconfig::mode(other))),
    }
    for c in &policy.configurations {
        let Some(sc) = &c.score_coordinate else {
            return Err(Misconfig::new("", misconfig::SCORE_COORDINATE_REQUIRED));
        };
        let type_ = if sc.type_.is_empty() {
            score_type::BUILT_IN
        } else {
            sc.type_.as_str()
        };
        let add_on = sc
            .add_on
            .as_ref()
            .map(|a| (a.resource_name.clone(), a.score_name.clone()));
        by_key.insert(
            (type_.to_owned(), sc.built_in.clone(), add_on),
            i64::from(c.weight),
        );
    }
    let mut out = Vec::new();
    for ((type_, built_in, add_on), weight) in by_key {
        if weight == 0 {
            continue;
        }
        let p = if type_ == score_type::BUILT_IN {
            match built_in.as_str() {
                prioritizer::BALANCE => Prioritizer::Balance,
                prioritizer::STEADY => Prioritizer::Steady,
                prioritizer::RESOURCE_ALLOCATABLE_CPU => Prioritizer::AllocatableCpu,
                prioritizer::RESOURCE_ALLOCATABLE_MEMORY => Prioritizer::AllocatableMemory,
                other => return Err(Misconfig::new("", misconfig::builtin(other))),
            }
        } else {
            let Some((resource_name, score_name)) = add_on else {
                return Err(Misconfig::new("", misconfig::ADD_ON_EMPTY));
            };
            Prioritizer::AddOn(AddOnScore {
                resource_name,
                score_name,
            })
        };
        out.push((p, weight));
    }
    out.sort();
    Ok(out)
}

/// What scoring reads besides the clusters.
#[derive(Debug, Clone, Copy)]
pub struct ScoreInputs<'a> {
    /// This placement's current decisions (Steady).
    pub current: &'a BTreeSet<String>,
    /// Decisions per cluster of every placement, this one's included (Balance subtracts
    /// them).
    pub counts: &'a BTreeMap<String, usize>,
}

/// Balance: `2 × int(100 × (0.5 − count/maxCount))` over the other placements'
/// decisions; 100 for a cluster none chose (and for every cluster when none has any).
fn balance(feasible: &[&ClusterView], inputs: ScoreInputs<'_>) -> BTreeMap<String, i64> {
    let others = |name: &str| {
        let all = inputs.counts.get(name).copied().unwrap_or(0);
        all - usize::from(inputs.current.contains(name)).min(all)
    };
    let max = inputs
        .counts
        .keys()
        .map(|name| others(name))
        .max()
        .unwrap_or(0);
    feasible
        .iter()
        .map(|c| {
            let count = others(&c.name);
            let score = if count == 0 || max == 0 {
                MAX_SCORE
            } else {
                let usage = count as f64 / max as f64;
                2 * ((MAX_SCORE as f64) * (0.5 - usage)) as i64
            };
            (c.name.clone(), score)
        })
        .collect()
}

/// ResourceAllocatable*: `int(((a − min)/(max − min) − 0.5) × 2 × 100)` over the feasible
/// clusters that report the resource; 100 when all equal; no entry for the others.
fn allocatable(
    feasible: &[&ClusterView],
    read: impl Fn(&ClusterView) -> Option<f64>,
) -> BTreeMap<String, i64> {
    let values: Vec<(&str, f64)> = feasible
        .iter()
        .filter_map(|c| read(c).map(|v| (c.name.as_str(), v)))
        .collect();
    let min = values.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
    let max = values
        .iter()
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    values
        .into_iter()
        .map(|(name, v)| {
            let score = if max == min {
                MAX_SCORE
            } else {
                (((v - min) / (max - min) - 0.5) * 2.0 * MAX_SCORE as f64) as i64
            };
            (name.to_owned(), score)
        })
        .collect()
}

/// One prioritizer's scores over `feasible`.
pub fn score(
    p: &Prioritizer,
    feasible: &[&ClusterView],
    inputs: ScoreInputs<'_>,
) -> BTreeMap<String, i64> {
    match p {
        Prioritizer::Balance => balance(feasible, inputs),
        Prioritizer::Steady => feasible
            .iter()
            .map(|c| {
                let s = if inputs.current.contains(&c.name) {
                    MAX_SCORE
                } else {
                    0
                };
                (c.name.clone(), s)
            })
            .collect(),
        Prioritizer::AllocatableCpu => allocatable(feasible, |c| c.cpu),
        Prioritizer::AllocatableMemory => allocatable(feasible, |c| c.memory),
        Prioritizer::AddOn(_) => feasible.iter().map(|c| (c.name.clone(), 0)).collect(),
    }
}

/// Orders `feasible` for selection: weighted score sum descending, then name ascending.
/// Returns the names with their sums.
pub fn rank(
    feasible: &[&ClusterView],
    prioritizers: &[(Prioritizer, i64)],
    inputs: ScoreInputs<'_>,
) -> Vec<(String, i64)> {
    let mut sums: BTreeMap<String, i64> = feasible.iter().map(|c| (c.name.clone(), 0)).collect();
    for (p, weight) in prioritizers {
        for (name, s) in score(p, feasible, inputs) {
            if let Some(sum) = sums.get_mut(&name) {
                *sum += s * weight;
            }
        }
    }
    let mut ranked: Vec<(String, i64)> = sums.into_iter().collect();
    // `sums` iterates by name, and the sort is stable: equal sums stay in name order.
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    ranked
}
