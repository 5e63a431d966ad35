//! OCM Placement API types (issue 14): `Placement` and `PlacementDecision`
//! (`cluster.open-cluster-management.io/v1beta1`) and `ManagedClusterSetBinding`
//! (`v1beta2`), exactly as OCM users write them in YAML (reference `placement.md`
//! §1–§2), with the CRD-level validation the API server would do ([`validate_placement`],
//! [`validate_binding`]). Scheduling itself is the hub's (`hub/src/placement`).
//!
//! - [`names`] — group, versions, kinds, labels, condition types/reasons/messages;
//! - [`object`] — Placement spec and status;
//! - [`decision`] — PlacementDecision;
//! - [`binding`] — ManagedClusterSetBinding.

pub mod binding;
pub mod decision;
pub mod names;
pub mod object;

pub use binding::{BindingSpec, BindingStatus, ManagedClusterSetBinding};
pub use decision::{ClusterDecision, PlacementDecision, PlacementDecisionStatus};
pub use object::{
    AddOnScore, CelSelector, ClaimSelector, ClusterPredicate, ClusterSelector, DecisionGroup,
    DecisionGroupStatus, DecisionStrategy, GroupStrategy, IntOrPercent, Placement, PlacementSpec,
    PlacementStatus, PrioritizerConfig, PrioritizerPolicy, ScoreCoordinate, Toleration,
};

use crate::registration::names::taint_effect;
use crate::selector::FieldError;

/// Weights lie in this range (CRD validation).
pub const WEIGHT_RANGE: std::ops::RangeInclusive<i32> = -10..=10;

/// `^[a-zA-Z0-9][-A-Za-z0-9_.]{0,61}[a-zA-Z0-9]$`: a decision group name.
fn is_group_name(name: &str) -> bool {
    let b = name.as_bytes();
    (2..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `^((100|[1-9][0-9]{0,1})%|[1-9][0-9]*)$`: `clustersPerDecisionGroup` as text.
fn is_group_size(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    match text.strip_suffix('%') {
        Some(p) => p == "100" || (digits(p) && p.len() <= 2 && !p.starts_with('0')),
        None => digits(text) && !text.starts_with('0'),
    }
}

/// The field errors the Placement CRD's schema would report (the API server refuses
/// such an object with 422). Semantic problems the scheduler reports instead, as OCM
/// does (`PlacementMisconfigured`): toleration key/operator combinations, unknown
/// built-in prioritizers, a missing `scoreCoordinate`, CEL.
pub fn validate_placement(p: &Placement) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &p.spec;
    if let Some(n) = spec.number_of_clusters
        && n < 0
    {
        errors.push(FieldError::Invalid {
            path: "spec.numberOfClusters".into(),
            value: n.to_string(),
            detail: "should be greater than or equal to 0".into(),
        });
    }
    for (i, pred) in spec.predicates.iter().enumerate() {
        let at = format!("spec.predicates[{i}].requiredClusterSelector");
        errors.extend(selector_errors(&pred.required_cluster_selector, &at));
    }
    let mode = spec.prioritizer_policy.mode.as_str();
    if !matches!(mode, "" | names::mode::ADDITIVE | names::mode::EXACT) {
        errors.push(FieldError::Invalid {
            path: "spec.prioritizerPolicy.mode".into(),
            value: mode.into(),
            detail: "supported values: \"Additive\", \"Exact\"".into(),
        });
    }
    for (i, c) in spec.prioritizer_policy.configurations.iter().enumerate() {
        if !WEIGHT_RANGE.contains(&c.weight) {
            errors.push(FieldError::Invalid {
                path: format!("spec.prioritizerPolicy.configurations[{i}].weight"),
                value: c.weight.to_string(),
                detail: "should be between -10 and 10".into(),
            });
        }
        if let Some(sc) = &c.score_coordinate
            && !matches!(
                sc.type_.as_str(),
                "" | names::score_type::BUILT_IN | names::score_type::ADD_ON
            )
        {
            errors.push(FieldError::Invalid {
                path: format!("spec.prioritizerPolicy.configurations[{i}].scoreCoordinate.type"),
                value: sc.type_.clone(),
                detail: "supported values: \"BuiltIn\", \"AddOn\"".into(),
            });
        }
    }
    for (i, t) in spec.tolerations.iter().enumerate() {
        let at = format!("spec.tolerations[{i}]");
        if !matches!(
            t.operator.as_str(),
            "" | names::toleration_operator::EQUAL | names::toleration_operator::EXISTS
        ) {
            errors.push(FieldError::Invalid {
                path: format!("{at}.operator"),
                value: t.operator.clone(),
                detail: "supported values: \"Equal\", \"Exists\"".into(),
            });
        }
        if !matches!(
            t.effect.as_str(),
            "" | taint_effect::NO_SELECT
                | taint_effect::PREFER_NO_SELECT
                | taint_effect::NO_SELECT_IF_NEW
        ) {
            errors.push(FieldError::Invalid {
                path: format!("{at}.effect"),
                value: t.effect.clone(),
                detail: "supported values: \"NoSelect\", \"PreferNoSelect\", \"NoSelectIfNew\""
                    .into(),
            });
        }
    }
    let groups = &spec.decision_strategy.group_strategy;
    for (i, g) in groups.decision_groups.iter().enumerate() {
        let at = format!("spec.decisionStrategy.groupStrategy.decisionGroups[{i}]");
        if !is_group_name(&g.group_name) {
            errors.push(FieldError::Invalid {
                path: format!("{at}.groupName"),
                value: g.group_name.clone(),
                detail: "should match '^[a-zA-Z0-9][-A-Za-z0-9_.]{0,61}[a-zA-Z0-9]$'".into(),
            });
        }
        errors.extend(selector_errors(
            &g.group_cluster_selector,
            &format!("{at}.groupClusterSelector"),
        ));
    }
    if let Some(IntOrPercent::Text(t)) = &groups.clusters_per_decision_group
        && !is_group_size(t)
    {
        errors.push(FieldError::Invalid {
            path: "spec.decisionStrategy.groupStrategy.clustersPerDecisionGroup".into(),
            value: t.clone(),
            detail: "should match '^((100|[1-9][0-9]{0,1})%|[1-9][0-9]*)$'".into(),
        });
    }
    errors
}

fn selector_errors(s: &ClusterSelector, at: &str) -> Vec<FieldError> {
    let mut errors = s.label_selector.validate(&format!("{at}.labelSelector"));
    errors.extend(
        s.claim_selector
            .as_label_selector()
            .validate(&format!("{at}.claimSelector")),
    );
    errors
}

/// The field errors of a binding: its name must equal `spec.clusterSet` (the OCM
/// webhook's rule and text).
pub fn validate_binding(b: &ManagedClusterSetBinding) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if b.spec.cluster_set.is_empty() {
        errors.push(FieldError::Required {
            path: "spec.clusterSet".into(),
            detail: "must be specified".into(),
        });
    } else if b.metadata.name != b.spec.cluster_set {
        errors.push(FieldError::Invalid {
            path: "metadata.name".into(),
            value: b.metadata.name.clone(),
            detail: names::message::BINDING_NAME_MISMATCH.into(),
        });
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The OCM website's Placement examples ("Placement" concept page), in one object.
    const DOCS_PLACEMENT: &str = r#"
apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata:
  name: placement1
  namespace: ns1
spec:
  numberOfClusters: 3
  clusterSets:
    - prod
  predicates:
    - requiredClusterSelector:
        labelSelector:
          matchLabels:
            purpose: test
        claimSelector:
          matchExpressions:
            - key: platform.open-cluster-management.io
              operator: In
              values:
                - aws
  tolerations:
    - key: cluster.open-cluster-management.io/unreachable
      operator: Exists
      tolerationSeconds: 300
  prioritizerPolicy:
    mode: Exact
    configurations:
      - scoreCoordinate:
          builtIn: ResourceAllocatableMemory
      - scoreCoordinate:
          builtIn: Steady
        weight: 3
      - scoreCoordinate:
          type: AddOn
          addOn:
            resourceName: default
            scoreName: cpuratio
  decisionStrategy:
    groupStrategy:
      clustersPerDecisionGroup: 25%
      decisionGroups:
        - groupName: canary
          groupClusterSelector:
            labelSelector:
              matchLabels:
                canary: "true"
  spreadPolicy:
    spreadConstraints:
      - topologyKey: zone
        topologyKeyType: Label
status:
  numberOfSelectedClusters: 2
  decisionGroups:
    - decisionGroupIndex: 0
      decisionGroupName: canary
      decisions: [placement1-decision-1]
      clusterCount: 2
  conditions:
    - type: PlacementSatisfied
      status: "True"
      reason: AllDecisionsScheduled
      message: All cluster decisions scheduled
      lastTransitionTime: "2026-01-02T03:04:05Z"
"#;

    #[test]
    fn placement_yaml_round_trips_as_written() {
        let p: Placement = serde_norway::from_str(DOCS_PLACEMENT).unwrap();
        assert_eq!(p.spec.number_of_clusters, Some(3));
        assert_eq!(p.spec.cluster_sets, vec!["prod"]);
        let sel = &p.spec.predicates[0].required_cluster_selector;
        assert_eq!(sel.label_selector.match_labels["purpose"], "test");
        assert_eq!(sel.claim_selector.match_expressions[0].values, vec!["aws"]);
        assert_eq!(p.spec.tolerations[0].toleration_seconds, Some(300));
        let cfg = &p.spec.prioritizer_policy.configurations;
        assert_eq!(cfg[0].weight, 1, "weight defaults to 1");
        assert_eq!(cfg[1].weight, 3);
        assert_eq!(
            cfg[2].score_coordinate.as_ref().unwrap().add_on,
            Some(AddOnScore {
                resource_name: "default".into(),
                score_name: "cpuratio".into()
            })
        );
        let g = &p.spec.decision_strategy.group_strategy;
        assert_eq!(
            g.clusters_per_decision_group,
            Some(IntOrPercent::Text("25%".into()))
        );
        assert_eq!(g.decision_groups[0].group_name, "canary");
        assert!(p.spec.extra.contains_key("spreadPolicy"));
        assert_eq!(p.status.decision_groups[0].cluster_count, 2);
        assert!(validate_placement(&p).is_empty());

        let original: serde_json::Value = serde_norway::from_str(DOCS_PLACEMENT).unwrap();
        let mut written = serde_json::to_value(&p).unwrap();
        // The explicit default weight is written back (Go writes int32 weight always).
        written["spec"]["prioritizerPolicy"]["configurations"][0]
            .as_object_mut()
            .unwrap()
            .remove("weight");
        written["spec"]["prioritizerPolicy"]["configurations"][2]
            .as_object_mut()
            .unwrap()
            .remove("weight");
        assert_eq!(written, original);
    }

    #[test]
    fn minimal_placement_and_defaults() {
        let p: Placement = serde_norway::from_str(
            "apiVersion: cluster.open-cluster-management.io/v1beta1\nkind: Placement\n\
             metadata: {name: p, namespace: ns}\nspec: {}\n",
        )
        .unwrap();
        assert_eq!(p.spec, PlacementSpec::default());
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"apiVersion": "cluster.open-cluster-management.io/v1beta1",
                   "kind": "Placement", "metadata": {"name": "p", "namespace": "ns"},
                   "spec": {}, "status": {"numberOfSelectedClusters": 0}})
        );
    }

    #[test]
    fn decision_and_binding_yaml_round_trip() {
        let yaml = r#"
apiVersion: cluster.open-cluster-management.io/v1beta1
kind: PlacementDecision
metadata:
  name: placement1-decision-1
  namespace: ns1
  labels:
    cluster.open-cluster-management.io/placement: placement1
    cluster.open-cluster-management.io/decision-group-index: "0"
    cluster.open-cluster-management.io/decision-group-name: ""
status:
  decisions:
    - clusterName: cluster1
      reason: ""
    - clusterName: cluster2
      reason: ""
"#;
        let d: PlacementDecision = serde_norway::from_str(yaml).unwrap();
        assert_eq!(d.placement(), Some("placement1"));
        assert_eq!(
            d.cluster_names().collect::<Vec<_>>(),
            vec!["cluster1", "cluster2"]
        );
        let built = PlacementDecision::new(
            "ns1",
            &names::decision_name("placement1", 1),
            "placement1",
            0,
            "",
            vec!["cluster1".into(), "cluster2".into()],
        );
        assert_eq!(built, d);
        let original: serde_json::Value = serde_norway::from_str(yaml).unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), original);

        let yaml = "apiVersion: cluster.open-cluster-management.io/v1beta2\n\
                    kind: ManagedClusterSetBinding\nmetadata:\n  name: prod\n  namespace: ns1\n\
                    spec:\n  clusterSet: prod\n";
        let b: ManagedClusterSetBinding = serde_norway::from_str(yaml).unwrap();
        assert_eq!(b, ManagedClusterSetBinding::new("ns1", "prod"));
        assert!(validate_binding(&b).is_empty());
        let mut other = b.clone();
        other.metadata.name = "dev".into();
        assert_eq!(
            validate_binding(&other)[0].to_string(),
            "metadata.name: Invalid value: \"dev\": The ManagedClusterSetBinding must have \
             the same name as the target ManagedClusterSet"
        );
    }

    #[test]
    fn crd_validation() {
        let mut p = Placement::named("ns", "p");
        p.spec.number_of_clusters = Some(-1);
        p.spec
            .prioritizer_policy
            .configurations
            .push(PrioritizerConfig {
                score_coordinate: None,
                weight: 11,
            });
        p.spec.tolerations.push(Toleration {
            operator: "Near".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        });
        p.spec
            .decision_strategy
            .group_strategy
            .decision_groups
            .push(DecisionGroup {
                group_name: "-bad".into(),
                ..Default::default()
            });
        p.spec
            .decision_strategy
            .group_strategy
            .clusters_per_decision_group = Some(IntOrPercent::Text("0%".into()));
        let paths: Vec<String> = validate_placement(&p)
            .iter()
            .map(|e| e.to_string().split(':').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            paths,
            vec![
                "spec.numberOfClusters",
                "spec.prioritizerPolicy.configurations[0].weight",
                "spec.tolerations[0].operator",
                "spec.tolerations[0].effect",
                "spec.decisionStrategy.groupStrategy.decisionGroups[0].groupName",
                "spec.decisionStrategy.groupStrategy.clustersPerDecisionGroup",
            ]
        );
        for ok in ["100%", "25%", "5%", "7", "120"] {
            assert!(is_group_size(ok), "{ok}");
        }
        for bad in ["0%", "101%", "05%", "0", "x", "%"] {
            assert!(!is_group_size(bad), "{bad}");
        }
    }

    #[test]
    fn int_or_percent_resolves_as_ocm() {
        let t = |s: &str| IntOrPercent::Text(s.into());
        assert_eq!(t("25%").resolve(10), Ok(3));
        assert_eq!(t("100%").resolve(10), Ok(10));
        assert_eq!(IntOrPercent::Int(4).resolve(10), Ok(4));
        assert_eq!(IntOrPercent::Int(0).resolve(10), Ok(10));
        assert_eq!(IntOrPercent::Int(20).resolve(10), Ok(10));
        assert_eq!(t("3").resolve(10), Ok(3));
        assert!(t("x%").resolve(10).is_err());
    }
}
