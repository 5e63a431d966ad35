//! The filter step's predicates (OCM plugin `Predicate`) and cluster-set membership:
//! which clusters a Placement may consider at all. Predicates are ORed; inside one,
//! the label and claim selectors are ANDed; an empty selector matches every cluster.
//! CEL selectors are not evaluated here: a Placement that uses one is reported
//! misconfigured rather than silently matching everything.

use workbus_schemas::placement::{ClusterSelector, PlacementSpec};

use super::Misconfig;
use super::view::ClusterView;
use crate::store::registration::ClusterSet;

/// OCM's name of the predicate plugin (the prefix of its misconfiguration message).
pub const PLUGIN: &str = "Predicate";

/// Whether `cluster` belongs to any of `sets`.
pub fn in_sets(cluster: &ClusterView, sets: &[ClusterSet]) -> bool {
    sets.iter().any(|s| s.selects(&cluster.labels))
}

/// Whether `cluster` satisfies `selector` (label AND claim selectors).
pub fn selector_matches(selector: &ClusterSelector, cluster: &ClusterView) -> bool {
    selector.label_selector.matches(&cluster.labels)
        && selector
            .claim_selector
            .match_expressions
            .iter()
            .all(|r| r.matches(&cluster.claims))
}

/// Whether `cluster` satisfies any predicate of `spec` (no predicates: every cluster).
pub fn predicates_match(spec: &PlacementSpec, cluster: &ClusterView) -> bool {
    spec.predicates.is_empty()
        || spec
            .predicates
            .iter()
            .any(|p| selector_matches(&p.required_cluster_selector, cluster))
}

/// The misconfigurations of the predicates: invalid selectors, and CEL (unsupported).
pub fn check(spec: &PlacementSpec) -> Result<(), Misconfig> {
    for (i, p) in spec.predicates.iter().enumerate() {
        let s = &p.required_cluster_selector;
        let at = format!("spec.predicates[{i}].requiredClusterSelector");
        let errors = s.label_selector.validate(&format!("{at}.labelSelector"));
        let claims = s
            .claim_selector
            .as_label_selector()
            .validate(&format!("{at}.claimSelector"));
        if let Some(e) = errors.into_iter().chain(claims).next() {
            return Err(Misconfig::new(PLUGIN, e.to_string()));
        }
        if !s.cel_selector.cel_expressions.is_empty() {
            return Err(Misconfig::new(
                PLUGIN,
                format!("{at}.celSelector: CEL selectors are not supported by this hub"),
            ));
        }
    }
    Ok(())
}
