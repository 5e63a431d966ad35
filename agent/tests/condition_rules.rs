//! `conditionRules` of type `CEL` through the reconciler, by conformance item of
//! `manifestwork-semantics.md` §12 (numbers in the test names), plus §3.2's messages,
//! each body run on both targets through the harness in `conformance/` (`sim::…` on
//! the simulated cluster, `kube::…` on the Kubernetes target against the Kubernetes API
//! test server, whose status simulator writes the workloads' status). Item 45
//! (`WellKnownConditions` on a finished Job) is
//! `item_35_45_46_daemonset_job_pod_feedback_and_complete_rule` in
//! `reconcile_conformance.rs`; the well-known rule's `messageExpression` is here. Built
//! only with the agent's `cel` feature (on by default). Nothing here sleeps.

#![cfg(feature = "cel")]

#[macro_use]
mod conformance;

use std::time::Duration;

use conformance::*;
use serde_json::{Value, json};
use workbus_agent::reconcile::WorkState;
use workbus_agent::target::ObjectRef;
use workbus_schemas::work::ManifestWork;

on_both_targets!(
    cel_rule_ready_replicas_equals_spec_replicas_on_a_deployment,
    item_47_syntax_error_and_non_boolean_result_give_expression_error,
    item_48_removing_a_cel_rule_removes_its_condition,
    item_49_progressing_true_if_any_other_types_false_wins,
    message_expression_message_and_defaults,
    item_46_a_cel_produced_complete_stops_applying,
);

fn w(generation: i64, spec: Value) -> ManifestWork {
    work("w", generation, spec)
}

/// A manifestConfig giving the named ConfigMap (or Deployment, with `group` "apps")
/// these condition rules.
fn rules_for(group: &str, resource: &str, name: &str, rules: Value) -> Value {
    json!({"resourceIdentifier": {"group": group, "resource": resource, "name": name, "namespace": "default"},
           "conditionRules": rules})
}

fn cel(condition: &str, expressions: &[&str]) -> Value {
    json!({"condition": condition, "type": "CEL", "celExpressions": expressions})
}

async fn cel_rule_ready_replicas_equals_spec_replicas_on_a_deployment<C: Cluster>() {
    let e = Env::<C>::with(Ready::Manual).await;
    let guarded =
        "has(object.status.readyReplicas) && object.status.readyReplicas == object.spec.replicas";
    let bare = "object.status.readyReplicas == object.spec.replicas";
    let w = w(
        1,
        json!({"workload": {"manifests": [deploy("guarded"), deploy("bare")]},
               "manifestConfigs": [
                   rules_for("apps", "deployments", "guarded", json!([cel("Ready", &[guarded])])),
                   rules_for("apps", "deployments", "bare", json!([cel("Ready", &[bare])]))]}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    let ready = cond(&out.status, 0, "Ready");
    assert_eq!(
        srm(ready),
        ("False", "ConditionRuleEvaluated", "Manifest is not Ready")
    );
    assert_eq!(ready.observed_generation, 1);
    // Not ready yet, the field is absent: reading it is an evaluation error (as cel-go's
    // "no such key"), hence `has()` in the guarded rule.
    assert_eq!(
        srm(cond(&out.status, 1, "Ready")),
        (
            "False",
            "ConditionRuleExpressionError",
            "No such key: readyReplicas"
        )
    );
    let work_ready = out.status.condition("Ready").expect("work Ready");
    assert_eq!(
        srm(work_ready),
        (
            "False",
            "ConditionRulesAggregated",
            "Aggregated from 2 manifest conditions"
        )
    );
    assert_eq!(work_ready.observed_generation, 1);

    e.advance(Duration::from_secs(5));
    for name in ["guarded", "bare"] {
        e.c.set_ready("apps/v1", "Deployment", &deploy_at(name))
            .await;
    }
    let (out, _) = e.refresh(&w, &state).await;
    for ordinal in 0..2 {
        assert_eq!(
            srm(cond(&out.status, ordinal, "Ready")),
            ("True", "ConditionRuleEvaluated", "Manifest is Ready")
        );
    }
    assert_eq!(out.status.condition("Ready").unwrap().status, "True");
}

async fn item_47_syntax_error_and_non_boolean_result_give_expression_error<C: Cluster>() {
    let e = Env::<C>::start().await;
    let w = w(
        1,
        json!({"workload": {"manifests": [cm("syntax"), cm("map"), cm("ok")]},
               "manifestConfigs": [
                   rules_for("", "configmaps", "syntax", json!([cel("Checked", &["object.data.("])])),
                   rules_for("", "configmaps", "map", json!([cel("Checked", &["true", "object.data"])])),
                   rules_for("", "configmaps", "ok", json!([cel("Checked", &["object.data.a == '1'"])]))]}),
    );
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    let syntax = cond(&out.status, 0, "Checked");
    assert_eq!(
        (syntax.status.as_str(), syntax.reason.as_str()),
        ("False", "ConditionRuleExpressionError")
    );
    assert!(
        syntax.message.starts_with("ERROR: <input>:1:") && syntax.message.contains("Syntax error"),
        "{}",
        syntax.message
    );
    assert_eq!(
        srm(cond(&out.status, 1, "Checked")),
        (
            "False",
            "ConditionRuleExpressionError",
            "expected bool result, got map"
        )
    );
    assert_eq!(
        srm(cond(&out.status, 2, "Checked")),
        ("True", "ConditionRuleEvaluated", "Manifest is Checked")
    );
    // An expression error is a False like any other for the work: False wins.
    assert_eq!(out.status.condition("Checked").unwrap().status, "False");
    // The manifests were applied all the same.
    assert_eq!(out.status.condition("Applied").unwrap().status, "True");
}

async fn item_48_removing_a_cel_rule_removes_its_condition<C: Cluster>() {
    let e = Env::<C>::start().await;
    let both = json!([cel("Ready", &["true"]), cel("Degraded", &["false"])]);
    let w1 = w(
        1,
        json!({"workload": {"manifests": [cm("a")]},
               "manifestConfigs": [rules_for("", "configmaps", "a", both)]}),
    );
    let (out, state) = e.apply(&w1, &WorkState::default()).await;
    assert_eq!(cond(&out.status, 0, "Degraded").status, "False");
    assert_eq!(out.status.condition("Degraded").unwrap().status, "False");

    let w2 = w(
        2,
        json!({"workload": {"manifests": [cm("a")]},
               "manifestConfigs": [rules_for("", "configmaps", "a", json!([cel("Ready", &["true"])]))]}),
    );
    let (out, state) = e.apply(&w2, &state).await;
    let m = &out.status.resource_status.manifests[0];
    assert!(m.conditions.iter().all(|c| c.type_ != "Degraded"));
    assert!(out.status.condition("Degraded").is_none());
    let ready = out.status.condition("Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.observed_generation),
        ("True", 2)
    );

    // Without any rule left, the last rule-produced type goes too.
    let w3 = w(3, json!({"workload": {"manifests": [cm("a")]}}));
    let (out, _) = e.apply(&w3, &state).await;
    assert!(out.status.condition("Ready").is_none());
    assert!(
        out.status.resource_status.manifests[0]
            .conditions
            .iter()
            .all(|c| c.type_ != "Ready")
    );
}

async fn item_49_progressing_true_if_any_other_types_false_wins<C: Cluster>() {
    let e = Env::<C>::start().await;
    let rules = json!([
        cel("Progressing", &["object.metadata.name == 'a'"]),
        cel("Healthy", &["object.metadata.name == 'a'"])
    ]);
    let w = w(
        1,
        json!({"workload": {"manifests": [cm("a"), cm("b")]},
               "manifestConfigs": [rules_for("", "configmaps", "*", rules)]}),
    );
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    assert_eq!(cond(&out.status, 0, "Progressing").status, "True");
    assert_eq!(cond(&out.status, 1, "Progressing").status, "False");
    assert_eq!(cond(&out.status, 0, "Healthy").status, "True");
    assert_eq!(cond(&out.status, 1, "Healthy").status, "False");
    assert_eq!(
        srm(out.status.condition("Progressing").unwrap()),
        (
            "True",
            "ConditionRulesAggregated",
            "Aggregated from 2 manifest conditions"
        )
    );
    assert_eq!(
        srm(out.status.condition("Healthy").unwrap()),
        (
            "False",
            "ConditionRulesAggregated",
            "Aggregated from 2 manifest conditions"
        )
    );
}

async fn message_expression_message_and_defaults<C: Cluster>() {
    let e = Env::<C>::with(Ready::Manual).await;
    let with_expr = json!({"condition": "Ready", "type": "CEL",
        "celExpressions": ["has(object.status.readyReplicas)"],
        "message": "waiting for replicas",
        "messageExpression": "result ? 'replicas: ' + string(object.status.readyReplicas) : ''"});
    let bad_expr = json!({"condition": "Ready", "type": "CEL", "celExpressions": ["true"],
        "messageExpression": "object.spec.replicas"});
    let job_expr = json!({"condition": "Complete", "type": "WellKnownConditions",
        "message": "never shown",
        "messageExpression": "result ? 'done' : 'job ' + object.metadata.name + ' running'"});
    let w = w(
        1,
        json!({"workload": {"manifests": [deploy("d1"), deploy("d2"),
                {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job", "namespace": "default"},
                 "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}}]},
               "manifestConfigs": [
                   rules_for("apps", "deployments", "d1", json!([with_expr])),
                   rules_for("apps", "deployments", "d2", json!([bad_expr])),
                   rules_for("batch", "jobs", "job", json!([job_expr]))]}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    // The expression yields "" while false: `message` is used.
    assert_eq!(
        srm(cond(&out.status, 0, "Ready")),
        ("False", "ConditionRuleEvaluated", "waiting for replicas")
    );
    // A failing message expression keeps the rule's status; its error is the message.
    assert_eq!(
        srm(cond(&out.status, 1, "Ready")),
        (
            "True",
            "ConditionRuleEvaluated",
            "expected message expression to have a string result, got int"
        )
    );
    // A well-known rule's built-in message is replaced by the user's expression.
    assert_eq!(
        srm(cond(&out.status, 2, "Complete")),
        ("False", "ConditionRuleEvaluated", "job job running")
    );

    e.advance(Duration::from_secs(5));
    e.c.set_ready("apps/v1", "Deployment", &deploy_at("d1"))
        .await;
    e.c.set_ready(
        "batch/v1",
        "Job",
        &ObjectRef::new("batch", "v1", "jobs", "default", "job"),
    )
    .await;
    let (out, _) = e.refresh(&w, &state).await;
    assert_eq!(
        srm(cond(&out.status, 0, "Ready")),
        ("True", "ConditionRuleEvaluated", "replicas: 2")
    );
    assert_eq!(
        srm(cond(&out.status, 2, "Complete")),
        ("True", "ConditionRuleEvaluated", "done")
    );
}

async fn item_46_a_cel_produced_complete_stops_applying<C: Cluster>() {
    let e = Env::<C>::start().await;
    let rule = json!([cel("Complete", &["object.data.a == '1'"])]);
    let spec = |value: &str| {
        let mut m = cm("a");
        m["data"]["a"] = json!(value);
        json!({"workload": {"manifests": [m]},
               "manifestConfigs": [rules_for("", "configmaps", "a", rule.clone())]})
    };
    let live_a = async || e.cm("a").await.unwrap()["data"]["a"].clone();
    let (out, state) = e.apply(&w(1, spec("0")), &WorkState::default()).await;
    assert_eq!(out.status.condition("Complete").unwrap().status, "False");
    // Not complete: spec changes are applied.
    let (out, state) = e.apply(&w(2, spec("1")), &state).await;
    assert_eq!(live_a().await, "1");
    assert_eq!(
        srm(out.status.condition("Complete").unwrap()),
        ("True", "ConditionRulesAggregated", "Manifest is Complete")
    );
    // Complete (§4.5): the work is not applied any more.
    e.apply(&w(3, spec("2")), &state).await;
    assert_eq!(live_a().await, "1");
}
