//! Round trips of ManifestWorkReplicaSet YAML as OCM's documentation writes it.

use serde_json::Value;

use super::*;

/// The example of the OCM website's ManifestWorkReplicaSet page (all three strategies).
const OCM_DOC_EXAMPLE: &str = r#"
apiVersion: work.open-cluster-management.io/v1alpha1
kind: ManifestWorkReplicaSet
metadata:
  name: mwrset-cm
  namespace: default
spec:
  placementRefs:
    - name: placement-rollout-all
      rolloutStrategy:
        type: All
    - name: placement-rollout-progressive
      rolloutStrategy:
        type: Progressive
        progressive:
          minSuccessTime: 5m
          progressDeadline: 10m
          maxFailures: 5%
          mandatoryDecisionGroups:
          - groupName: "prod-canary-west"
          - groupName: "prod-canary-east"
    - name: placement-rollout-progressive-per-group
      rolloutStrategy:
        type: ProgressivePerGroup
        progressivePerGroup:
          progressDeadline: 10m
          maxFailures: 2
  manifestWorkTemplate:
    deleteOption:
      propagationPolicy: SelectivelyOrphan
      selectivelyOrphans:
        orphaningRules:
          - group: ''
            name: cm-1
            namespace: default
            resource: configmaps
    manifestConfigs:
      - feedbackRules:
          - jsonPaths:
              - name: data
                path: .data
            type: JSONPaths
        resourceIdentifier:
          group: ''
          name: cm-1
          namespace: default
          resource: configmaps
    workload:
      manifests:
        - apiVersion: v1
          kind: ConfigMap
          metadata:
            name: cm-1
            namespace: default
          data:
            test: test
status:
  conditions:
    - lastTransitionTime: "2023-04-27T02:30:54Z"
      message: ""
      reason: AsExpected
      status: "True"
      type: PlacementVerified
    - lastTransitionTime: "2023-04-27T02:30:54Z"
      message: ""
      reason: Complete
      status: "True"
      type: PlacementRolledOut
    - lastTransitionTime: "2023-04-27T02:30:54Z"
      message: ""
      reason: AsExpected
      status: "True"
      type: ManifestworkApplied
  placementSummary:
    - availableDecisionGroups: 1 (10 / 10 clusters applied)
      name: placement-rollout-all
      summary:
        applied: 10
        available: 10
        degraded: 0
        progressing: 0
        total: 10
  summary:
    applied: 10
    available: 10
    degraded: 0
    progressing: 0
    total: 10
"#;

#[test]
fn ocm_doc_example_round_trips() {
    let yaml: Value = serde_norway::from_str(OCM_DOC_EXAMPLE).unwrap();
    let mwrs: ManifestWorkReplicaSet = serde_json::from_value(yaml.clone()).unwrap();
    assert_eq!(mwrs.api_version, names::API_VERSION);
    assert_eq!(mwrs.kind, names::KIND);
    let refs = &mwrs.spec.placement_refs;
    assert_eq!(refs.len(), 3);
    assert_eq!(refs[0].rollout_strategy.type_, RolloutType::All);
    let progressive = refs[1].rollout_strategy.progressive.as_ref().unwrap();
    assert_eq!(progressive.config.min_success_time.as_deref(), Some("5m"));
    assert_eq!(
        progressive.config.max_failures,
        Some(IntOrPercent::Str("5%".into()))
    );
    assert_eq!(progressive.mandatory_decision_groups.len(), 2);
    assert_eq!(
        refs[1].rollout_strategy.mandatory_groups()[1].group_name,
        "prod-canary-east"
    );
    assert_eq!(
        refs[2].rollout_strategy.config().max_failures,
        Some(IntOrPercent::Int(2))
    );
    let status = mwrs.status.as_ref().unwrap();
    assert_eq!(
        status.placement_summary[0].available_decision_groups,
        "1 (10 / 10 clusters applied)"
    );
    assert_eq!(status.summary.available, 10);
    assert_eq!(serde_json::to_value(&mwrs).unwrap(), yaml);
}

#[test]
fn strategy_defaults_to_all() {
    let r: LocalPlacementReference = serde_json::from_str(r#"{"name":"p"}"#).unwrap();
    assert_eq!(r.rollout_strategy.type_, RolloutType::All);
    assert_eq!(r.rollout_strategy.config(), RolloutConfig::default());
    assert!(r.rollout_strategy.mandatory_groups().is_empty());
}

#[test]
fn workbus_extensions_round_trip() {
    let yaml = r#"
apiVersion: work.open-cluster-management.io/v1alpha1
kind: ManifestWorkReplicaSet
metadata: {name: web, namespace: apps}
spec:
  placementRefs:
    - name: fleet
      rolloutStrategy:
        type: ProgressivePerGroup
  rollout:
    approval:
      afterGroups:
        - groupName: canary
    rollbackOnFailure: true
    successRule: Upstream
  overrides:
    - clusterSelector:
        matchLabels: {env: prod}
        matchExpressions:
          - {key: region, operator: In, values: [eu]}
      patch:
        - {op: replace, path: /workload/manifests/0/data/size, value: large}
  manifestWorkTemplate:
    workload:
      manifests:
        - {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: d}, data: {size: small}}
"#;
    let value: Value = serde_norway::from_str(yaml).unwrap();
    let mwrs: ManifestWorkReplicaSet = serde_json::from_value(value.clone()).unwrap();
    let rollout = mwrs.spec.rollout.as_ref().unwrap();
    assert!(rollout.rollback_on_failure);
    assert_eq!(rollout.success_rule, Some(SuccessRule::Upstream));
    assert!(rollout.approval.as_ref().unwrap().after_groups[0].names(3, "canary"));
    assert_eq!(mwrs.spec.overrides[0].patch[0].op, "replace");
    assert_eq!(serde_json::to_value(&mwrs).unwrap(), value);
}

#[test]
fn owner_label_is_namespace_dot_name() {
    assert_eq!(
        names::owner_label_value("default", "mwrset-cm"),
        "default.mwrset-cm"
    );
}
