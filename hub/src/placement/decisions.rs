//! Decision groups and PlacementDecision objects (reference `placement.md` §2.2): the
//! selected clusters split by `decisionStrategy.groupStrategy` into groups, each group
//! sorted by name and cut into chunks of `clustersPerDecisionGroup`, each chunk into
//! PlacementDecisions of at most 100 decisions named `<placement>-decision-<n>` (n from
//! 1 across all groups). There is always at least one (possibly empty) decision.

use workbus_schemas::placement::names::{MAX_DECISIONS_PER_OBJECT, decision_name};
use workbus_schemas::placement::{DecisionGroupStatus, GroupStrategy, PlacementDecision};

use super::Misconfig;
use super::filter::selector_matches;
use super::view::ClusterView;

/// One decision group: its name (`""` for the remainder) and clusters, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `decisionGroupName`.
    pub name: String,
    /// The clusters, by name.
    pub clusters: Vec<String>,
}

/// The misconfigurations of a group strategy (invalid selectors or group size).
pub fn check(strategy: &GroupStrategy) -> Result<(), Misconfig> {
    for (i, g) in strategy.decision_groups.iter().enumerate() {
        let at = format!("spec.decisionStrategy.groupStrategy.decisionGroups[{i}]");
        let s = &g.group_cluster_selector;
        let errors = s
            .label_selector
            .validate(&format!("{at}.groupClusterSelector.labelSelector"));
        let claims = s
            .claim_selector
            .as_label_selector()
            .validate(&format!("{at}.groupClusterSelector.claimSelector"));
        if let Some(e) = errors.into_iter().chain(claims).next() {
            return Err(Misconfig::new("", e.to_string()));
        }
    }
    if let Some(size) = &strategy.clusters_per_decision_group {
        size.resolve(1)
            .map_err(|e| Misconfig::new("", e.to_string()))?;
    }
    Ok(())
}

/// Groups `selected` (in selection order): each `decisionGroups[j]` in spec order takes
/// the still-unassigned clusters matching its selector, the rest form the unnamed group;
/// each is sorted by name and cut into chunks of `clustersPerDecisionGroup` (an int or
/// `ceil(N% × selected)`; ≤ 0 or more than selected: all). One empty group when nothing
/// is selected. The strategy must have passed [`check`].
pub fn groups(strategy: &GroupStrategy, selected: &[&ClusterView]) -> Vec<Group> {
    let total = selected.len();
    let size = strategy
        .clusters_per_decision_group
        .as_ref()
        .and_then(|s| s.resolve(total).ok())
        .unwrap_or(total)
        .max(1);
    let mut assigned = vec![false; total];
    let mut named: Vec<(String, Vec<String>)> = Vec::new();
    for g in &strategy.decision_groups {
        let mut members = Vec::new();
        for (i, c) in selected.iter().enumerate() {
            if !assigned[i] && selector_matches(&g.group_cluster_selector, c) {
                assigned[i] = true;
                members.push(c.name.clone());
            }
        }
        if !members.is_empty() {
            named.push((g.group_name.clone(), members));
        }
    }
    let rest: Vec<String> = selected
        .iter()
        .zip(&assigned)
        .filter(|(_, a)| !**a)
        .map(|(c, _)| c.name.clone())
        .collect();
    if !rest.is_empty() {
        named.push((String::new(), rest));
    }
    let mut out = Vec::new();
    for (name, mut members) in named {
        members.sort();
        for chunk in members.chunks(size) {
            out.push(Group {
                name: name.clone(),
                clusters: chunk.to_vec(),
            });
        }
    }
    if out.is_empty() {
        out.push(Group {
            name: String::new(),
            clusters: Vec::new(),
        });
    }
    out
}

/// The PlacementDecisions and `status.decisionGroups` of `groups` for placement
/// `namespace/placement`.
pub fn objects(
    namespace: &str,
    placement: &str,
    groups: &[Group],
) -> (Vec<PlacementDecision>, Vec<DecisionGroupStatus>) {
    let mut decisions = Vec::new();
    let mut statuses = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        let mut names = Vec::new();
        let pages: Vec<&[String]> = if group.clusters.is_empty() {
            vec![&[]]
        } else {
            group.clusters.chunks(MAX_DECISIONS_PER_OBJECT).collect()
        };
        for page in pages {
            let name = decision_name(placement, decisions.len() + 1);
            names.push(name.clone());
            decisions.push(PlacementDecision::new(
                namespace,
                &name,
                placement,
                index,
                &group.name,
                page.to_vec(),
            ));
        }
        statuses.push(DecisionGroupStatus {
            decision_group_index: i32::try_from(index).unwrap_or(i32::MAX),
            decision_group_name: group.name.clone(),
            decisions: names,
            cluster_count: i32::try_from(group.clusters.len()).unwrap_or(i32::MAX),
        });
    }
    (decisions, statuses)
}
