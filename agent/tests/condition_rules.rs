//! `conditionRules` of type `CEL` through the reconciler on the simulated cluster,
//! by conformance item of `manifestwork-semantics.md` §12 (numbers in the test names),
//! plus §3.2's messages. Item 45 (`WellKnownConditions` on a finished Job) is
//! `item_35_45_daemonset_job_pod_feedback_and_complete_rule` in
//! `reconcile_conformance.rs`; the well-known rule's `messageExpression` is here. Built
//! only with the agent's `cel` feature (on by default). Time is the simulation's
//! manual clock: nothing here sleeps.

#![cfg(feature = "cel")]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use workbus_agent::reconcile::{ReconcileOutcome, Reconciler, WorkState};
use workbus_agent::target::sim::{SimClock, SimConfig, SimulatedCluster};
use workbus_schemas::work::{
    Condition, ManifestWork, ManifestWorkSpec, ManifestWorkStatus, ObjectMeta,
};

struct Env {
    sim: Arc<SimulatedCluster>,
    clock: SimClock,
    r: Reconciler<SimulatedCluster>,
}

fn env(ready_after: Duration) -> Env {
    let clock = SimClock::manual(1_700_000_000_000);
    let sim = Arc::new(
        SimulatedCluster::new(SimConfig {
            ready_after,
            snapshot: None,
        })
        .with_clock(clock.clone()),
    );
    Env {
        r: Reconciler::new(sim.clone()),
        sim,
        clock,
    }
}

impl Env {
    async fn apply(&self, w: &ManifestWork, state: &WorkState) -> (ReconcileOutcome, WorkState) {
        let out = self.r.apply(w, state, self.clock.now()).await;
        let next = out.clone().into_state();
        (out, next)
    }

    async fn refresh(&self, w: &ManifestWork, state: &WorkState) -> (ReconcileOutcome, WorkState) {
        let out = self.r.refresh(w, state, self.clock.now()).await;
        let next = out.clone().into_state();
        (out, next)
    }
}

fn work(generation: i64, spec: Value) -> ManifestWork {
    let meta = ObjectMeta {
        uid: "w".into(),
        name: "w".into(),
        namespace: "cluster1".into(),
        generation,
        ..ObjectMeta::default()
    };
    let spec: ManifestWorkSpec = serde_json::from_value(spec).expect("spec");
    ManifestWork::new(meta, spec)
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
}

fn deploy(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"}, "spec": {"replicas": 2}})
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

fn manifest_cond<'a>(status: &'a ManifestWorkStatus, ordinal: usize, ty: &str) -> &'a Condition {
    status.resource_status.manifests[ordinal]
        .conditions
        .iter()
        .find(|c| c.type_ == ty)
        .unwrap_or_else(|| panic!("manifest {ordinal} has no {ty}"))
}

fn srm(c: &Condition) -> (&str, &str, &str) {
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[tokio::test]
async fn cel_rule_ready_replicas_equals_spec_replicas_on_a_deployment() {
    let e = env(Duration::from_secs(5));
    let guarded =
        "has(object.status.readyReplicas) && object.status.readyReplicas == object.spec.replicas";
    let bare = "object.status.readyReplicas == object.spec.replicas";
    let w = work(
        1,
        json!({"workload": {"manifests": [deploy("guarded"), deploy("bare")]},
               "manifestConfigs": [
                   rules_for("apps", "deployments", "guarded", json!([cel("Ready", &[guarded])])),
                   rules_for("apps", "deployments", "bare", json!([cel("Ready", &[bare])]))]}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    let ready = manifest_cond(&out.status, 0, "Ready");
    assert_eq!(
        srm(ready),
        ("False", "ConditionRuleEvaluated", "Manifest is not Ready")
    );
    assert_eq!(ready.observed_generation, 1);
    // Not ready yet, the field is absent: reading it is an evaluation error (as cel-go's
    // "no such key"), hence `has()` in the guarded rule.
    assert_eq!(
        srm(manifest_cond(&out.status, 1, "Ready")),
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

    e.clock.advance(Duration::from_secs(5));
    let (out, _) = e.refresh(&w, &state).await;
    for ordinal in 0..2 {
        assert_eq!(
            srm(manifest_cond(&out.status, ordinal, "Ready")),
            ("True", "ConditionRuleEvaluated", "Manifest is Ready")
        );
    }
    assert_eq!(out.status.condition("Ready").unwrap().status, "True");
}

#[tokio::test]
async fn item_47_syntax_error_and_non_boolean_result_give_expression_error() {
    let e = env(Duration::from_secs(1));
    let w = work(
        1,
        json!({"workload": {"manifests": [cm("syntax"), cm("map"), cm("ok")]},
               "manifestConfigs": [
                   rules_for("", "configmaps", "syntax", json!([cel("Checked", &["object.data.("])])),
                   rules_for("", "configmaps", "map", json!([cel("Checked", &["true", "object.data"])])),
                   rules_for("", "configmaps", "ok", json!([cel("Checked", &["object.data.a == '1'"])]))]}),
    );
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    let syntax = manifest_cond(&out.status, 0, "Checked");
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
        srm(manifest_cond(&out.status, 1, "Checked")),
        (
            "False",
            "ConditionRuleExpressionError",
            "expected bool result, got map"
        )
    );
    assert_eq!(
        srm(manifest_cond(&out.status, 2, "Checked")),
        ("True", "ConditionRuleEvaluated", "Manifest is Checked")
    );
    // An expression error is a False like any other for the work: False wins.
    assert_eq!(out.status.condition("Checked").unwrap().status, "False");
    // The manifests were applied all the same.
    assert_eq!(out.status.condition("Applied").unwrap().status, "True");
}

#[tokio::test]
async fn item_48_removing_a_cel_rule_removes_its_condition() {
    let e = env(Duration::from_secs(1));
    let both = json!([cel("Ready", &["true"]), cel("Degraded", &["false"])]);
    let w1 = work(
        1,
        json!({"workload": {"manifests": [cm("a")]},
               "manifestConfigs": [rules_for("", "configmaps", "a", both)]}),
    );
    let (out, state) = e.apply(&w1, &WorkState::default()).await;
    assert_eq!(manifest_cond(&out.status, 0, "Degraded").status, "False");
    assert_eq!(out.status.condition("Degraded").unwrap().status, "False");

    let w2 = work(
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
    let w3 = work(3, json!({"workload": {"manifests": [cm("a")]}}));
    let (out, _) = e.apply(&w3, &state).await;
    assert!(out.status.condition("Ready").is_none());
    assert!(
        out.status.resource_status.manifests[0]
            .conditions
            .iter()
            .all(|c| c.type_ != "Ready")
    );
}

#[tokio::test]
async fn item_49_progressing_true_if_any_other_types_false_wins() {
    let e = env(Duration::from_secs(1));
    let rules = json!([
        cel("Progressing", &["object.metadata.name == 'a'"]),
        cel("Healthy", &["object.metadata.name == 'a'"])
    ]);
    let w = work(
        1,
        json!({"workload": {"manifests": [cm("a"), cm("b")]},
               "manifestConfigs": [rules_for("", "configmaps", "*", rules)]}),
    );
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    assert_eq!(manifest_cond(&out.status, 0, "Progressing").status, "True");
    assert_eq!(manifest_cond(&out.status, 1, "Progressing").status, "False");
    assert_eq!(manifest_cond(&out.status, 0, "Healthy").status, "True");
    assert_eq!(manifest_cond(&out.status, 1, "Healthy").status, "False");
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

#[tokio::test]
async fn message_expression_message_and_defaults() {
    let e = env(Duration::from_secs(5));
    let with_expr = json!({"condition": "Ready", "type": "CEL",
        "celExpressions": ["has(object.status.readyReplicas)"],
        "message": "waiting for replicas",
        "messageExpression": "result ? 'replicas: ' + string(object.status.readyReplicas) : ''"});
    let bad_expr = json!({"condition": "Ready", "type": "CEL", "celExpressions": ["true"],
        "messageExpression": "object.spec.replicas"});
    let job_expr = json!({"condition": "Complete", "type": "WellKnownConditions",
        "message": "never shown",
        "messageExpression": "result ? 'done' : 'job ' + object.metadata.name + ' running'"});
    let w = work(
        1,
        json!({"workload": {"manifests": [deploy("d1"), deploy("d2"),
                {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job", "namespace": "default"}, "spec": {}}]},
               "manifestConfigs": [
                   rules_for("apps", "deployments", "d1", json!([with_expr])),
                   rules_for("apps", "deployments", "d2", json!([bad_expr])),
                   rules_for("batch", "jobs", "job", json!([job_expr]))]}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    // The expression yields "" while false: `message` is used.
    assert_eq!(
        srm(manifest_cond(&out.status, 0, "Ready")),
        ("False", "ConditionRuleEvaluated", "waiting for replicas")
    );
    // A failing message expression keeps the rule's status; its error is the message.
    assert_eq!(
        srm(manifest_cond(&out.status, 1, "Ready")),
        (
            "True",
            "ConditionRuleEvaluated",
            "expected message expression to have a string result, got int"
        )
    );
    // A well-known rule's built-in message is replaced by the user's expression.
    assert_eq!(
        srm(manifest_cond(&out.status, 2, "Complete")),
        ("False", "ConditionRuleEvaluated", "job job running")
    );

    e.clock.advance(Duration::from_secs(5));
    let (out, _) = e.refresh(&w, &state).await;
    assert_eq!(
        srm(manifest_cond(&out.status, 0, "Ready")),
        ("True", "ConditionRuleEvaluated", "replicas: 2")
    );
    assert_eq!(
        srm(manifest_cond(&out.status, 2, "Complete")),
        ("True", "ConditionRuleEvaluated", "done")
    );
}

#[tokio::test]
async fn item_46_a_cel_produced_complete_stops_applying() {
    let e = env(Duration::from_secs(1));
    let rule = json!([cel("Complete", &["object.data.a == '1'"])]);
    let spec = |value: &str| {
        let mut m = cm("a");
        m["data"]["a"] = json!(value);
        json!({"workload": {"manifests": [m]},
               "manifestConfigs": [rules_for("", "configmaps", "a", rule.clone())]})
    };
    let live_a = || {
        e.sim
            .object("", "v1", "configmaps", "default", "a")
            .unwrap()["data"]["a"]
            .clone()
    };
    let (out, state) = e.apply(&work(1, spec("0")), &WorkState::default()).await;
    assert_eq!(out.status.condition("Complete").unwrap().status, "False");
    // Not complete: spec changes are applied.
    let (out, state) = e.apply(&work(2, spec("1")), &state).await;
    assert_eq!(live_a(), "1");
    assert_eq!(
        srm(out.status.condition("Complete").unwrap()),
        ("True", "ConditionRulesAggregated", "Manifest is Complete")
    );
    // Complete (§4.5): the work is not applied any more.
    e.apply(&work(3, spec("2")), &state).await;
    assert_eq!(live_a(), "1");
}
