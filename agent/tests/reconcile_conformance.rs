//! The reconciler against the simulated cluster, item by item from the conformance
//! checklist of `manifestwork-semantics.md` §12 (numbers in the test names).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use workbus_agent::reconcile::{CleanupOutcome, Reconciler, WorkState};
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_schemas::work::{ManifestWork, ManifestWorkSpec, ObjectMeta, Time};

fn sim(ready_after_ms: u64) -> Arc<SimulatedCluster> {
    Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: Duration::from_millis(ready_after_ms),
        snapshot: None,
    }))
}

fn work(uid: &str, generation: i64, spec: Value) -> ManifestWork {
    let meta = ObjectMeta {
        uid: uid.into(),
        name: uid.into(),
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

fn cond<'a>(
    status: &'a workbus_schemas::work::ManifestWorkStatus,
    ordinal: usize,
    ty: &str,
) -> &'a workbus_schemas::work::Condition {
    status.resource_status.manifests[ordinal]
        .conditions
        .iter()
        .find(|c| c.type_ == ty)
        .unwrap_or_else(|| panic!("manifest {ordinal} has no {ty}"))
}

#[tokio::test]
async fn item_5_apply_order_by_kind_and_ordinals_in_spec_order() {
    let s = sim(0);
    let r = Reconciler::new(s.clone());
    let w = work(
        "w5",
        1,
        json!({"workload": {"manifests": [deploy("d"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}, cm("c")]}}),
    );
    let out = r.apply(&w, &WorkState::default(), Time::now()).await;
    let ordinals: Vec<i32> = out
        .status
        .resource_status
        .manifests
        .iter()
        .map(|m| m.resource_meta.ordinal)
        .collect();
    assert_eq!(ordinals, vec![0, 1, 2]);
    // Creation order shows in the simulated resourceVersions: Namespace < ConfigMap < Deployment.
    let rv = |v: Option<Value>| {
        v.unwrap()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let ns = rv(s.object("", "v1", "namespaces", "", "ns1"));
    let c = rv(s.object("", "v1", "configmaps", "default", "c"));
    let d = rv(s.object("apps", "v1", "deployments", "default", "d"));
    assert!(ns < c && c < d, "{ns} < {c} < {d}");
    // Item 7: cluster-scoped resourceMeta has no namespace.
    assert_eq!(
        out.status.resource_status.manifests[1]
            .resource_meta
            .namespace,
        ""
    );
}

#[tokio::test]
async fn item_6_unknown_kind_fails_alone() {
    let s = sim(0);
    let r = Reconciler::new(s.clone());
    let w = work(
        "w6",
        1,
        json!({"workload": {"manifests": [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x", "namespace": "default"}}, cm("ok")]}}),
    );
    let out = r.apply(&w, &WorkState::default(), Time::now()).await;
    let applied = cond(&out.status, 0, "Applied");
    assert_eq!(applied.status, "False");
    assert_eq!(applied.reason, "AppliedManifestFailed");
    assert!(
        applied
            .message
            .contains("the server doesn't have a resource type \"Widget\"")
    );
    let available = cond(&out.status, 0, "Available");
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("Unknown", "IncompleteResourceMeta")
    );
    assert_eq!(cond(&out.status, 1, "Applied").status, "True");
    assert!(s.object("", "v1", "configmaps", "default", "ok").is_some());
    let work_applied = out.status.condition("Applied").unwrap();
    assert_eq!(work_applied.reason, "AppliedManifestWorkFailed");
}

#[tokio::test]
async fn item_8_removing_a_manifest_deletes_its_object() {
    let s = sim(0);
    let r = Reconciler::new(s.clone());
    let v1 = work(
        "w8",
        1,
        json!({"workload": {"manifests": [cm("keep"), cm("drop")]}}),
    );
    let out = r.apply(&v1, &WorkState::default(), Time::now()).await;
    let state = WorkState {
        applied: out.applied,
        status: out.status,
    };
    let v2 = work("w8", 2, json!({"workload": {"manifests": [cm("keep")]}}));
    let out = r.apply(&v2, &state, Time::now()).await;
    assert!(
        s.object("", "v1", "configmaps", "default", "drop")
            .is_none()
    );
    assert!(
        s.object("", "v1", "configmaps", "default", "keep")
            .is_some()
    );
    assert_eq!(out.applied.len(), 1);
    assert_eq!(out.status.resource_status.manifests.len(), 1);
    // Item 33: the new generation shows in Applied.
    assert_eq!(
        out.status.condition("Applied").unwrap().observed_generation,
        2
    );
}

#[tokio::test]
async fn items_10_to_15_deletion_policies_and_shared_ownership() {
    let s = sim(0);
    let r = Reconciler::new(s.clone());
    // Foreground (default): owner reference set, objects deleted.
    let fg = work("fg", 1, json!({"workload": {"manifests": [cm("fg1")]}}));
    let out = r.apply(&fg, &WorkState::default(), Time::now()).await;
    let owner = &s.object("", "v1", "configmaps", "default", "fg1").unwrap()["metadata"]["ownerReferences"]
        [0];
    assert_eq!(owner["kind"], "AppliedManifestWork");
    assert!(owner.get("controller").is_none());
    let state = WorkState {
        applied: out.applied,
        status: out.status,
    };
    assert_eq!(r.cleanup(&fg, &state).await, CleanupOutcome::Done);
    assert!(s.object("", "v1", "configmaps", "default", "fg1").is_none());

    // Orphan: objects stay, without our owner reference.
    let or = work(
        "or",
        1,
        json!({"workload": {"manifests": [cm("or1")]}, "deleteOption": {"propagationPolicy": "Orphan"}}),
    );
    let out = r.apply(&or, &WorkState::default(), Time::now()).await;
    let state = WorkState {
        applied: out.applied,
        status: out.status,
    };
    assert_eq!(r.cleanup(&or, &state).await, CleanupOutcome::Done);
    let left = s
        .object("", "v1", "configmaps", "default", "or1")
        .expect("orphaned object stays");
    assert!(
        left["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // SelectivelyOrphan: only the matching object stays.
    let so = work(
        "so",
        1,
        json!({"workload": {"manifests": [cm("so-keep"), cm("so-del")]},
        "deleteOption": {"propagationPolicy": "SelectivelyOrphan", "selectivelyOrphans": {"orphaningRules": [
            {"group": "", "resource": "configmaps", "namespace": "default", "name": "so-keep"}]}}}),
    );
    let out = r.apply(&so, &WorkState::default(), Time::now()).await;
    let state = WorkState {
        applied: out.applied,
        status: out.status,
    };
    assert_eq!(r.cleanup(&so, &state).await, CleanupOutcome::Done);
    assert!(
        s.object("", "v1", "configmaps", "default", "so-keep")
            .is_some()
    );
    assert!(
        s.object("", "v1", "configmaps", "default", "so-del")
            .is_none()
    );

    // Two works own one object: deleting one keeps the object.
    let a = work("a", 1, json!({"workload": {"manifests": [cm("shared")]}}));
    let b = work("b", 1, json!({"workload": {"manifests": [cm("shared")]}}));
    let out_a = r.apply(&a, &WorkState::default(), Time::now()).await;
    r.apply(&b, &WorkState::default(), Time::now()).await;
    let state_a = WorkState {
        applied: out_a.applied,
        status: out_a.status,
    };
    assert_eq!(r.cleanup(&a, &state_a).await, CleanupOutcome::Done);
    let shared = s
        .object("", "v1", "configmaps", "default", "shared")
        .expect("still owned by b");
    assert_eq!(
        shared["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn items_19_26_create_only_and_read_only() {
    let s = sim(0);
    let r = Reconciler::new(s.clone());
    let spec = |v: &str| {
        json!({"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "once", "namespace": "default"}, "data": {"v": v}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ro", "namespace": "default"}}]},
            "manifestConfigs": [
                {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "once", "namespace": "default"}, "updateStrategy": {"type": "CreateOnly"}},
                {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "ro", "namespace": "*"}, "updateStrategy": {"type": "ReadOnly"}}]})
    };
    let out = r
        .apply(
            &work("co", 1, spec("1")),
            &WorkState::default(),
            Time::now(),
        )
        .await;
    let state = WorkState {
        applied: out.applied.clone(),
        status: out.status.clone(),
    };
    r.apply(&work("co", 2, spec("2")), &state, Time::now())
        .await;
    assert_eq!(
        s.object("", "v1", "configmaps", "default", "once").unwrap()["data"]["v"],
        "1"
    );
    // ReadOnly: never created; Applied True, Available False.
    assert!(s.object("", "v1", "configmaps", "default", "ro").is_none());
    assert_eq!(cond(&out.status, 1, "Applied").status, "True");
    let available = cond(&out.status, 1, "Available");
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("False", "ResourceNotAvailable")
    );
    assert_eq!(
        out.status.condition("Available").unwrap().message,
        "1 of 2 resources are not available"
    );
}

#[tokio::test]
async fn items_28_34_36_41_readiness_and_feedback() {
    let s = sim(150);
    let r = Reconciler::new(s.clone());
    let w = work(
        "fb",
        1,
        json!({"workload": {"manifests": [deploy("web"),
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"}, "spec": {"replicas": 1}}, cm("plain")]},
        "manifestConfigs": [
            {"resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": "default"}, "feedbackRules": [{"type": "WellKnownStatus"}]},
            {"resourceIdentifier": {"group": "apps", "resource": "statefulsets", "name": "db", "namespace": "default"}, "feedbackRules": [{"type": "WellKnownStatus"}]}]}),
    );
    let out = r.apply(&w, &WorkState::default(), Time::now()).await;
    // Item 28: Available as soon as the object exists, ready or not.
    assert_eq!(cond(&out.status, 0, "Available").status, "True");
    let requeue = out
        .requeue_after
        .expect("the simulation says when the rollout completes");
    assert!(requeue <= Duration::from_millis(200));
    // Item 36: no well-known rules for StatefulSets.
    assert_eq!(
        cond(&out.status, 1, "StatusFeedbackSynced").reason,
        "StatusFeedbackSyncFailed"
    );
    // Item 41: no rules at all.
    assert_eq!(
        cond(&out.status, 2, "StatusFeedbackSynced").reason,
        "NoStatusFeedbackSynced"
    );
    tokio::time::sleep(requeue).await; // the simulated rollout's own clock, not a sync point
    let state = WorkState {
        applied: out.applied,
        status: out.status,
    };
    let ready = r.refresh(&w, &state, Time::now()).await;
    // Item 34: exactly the three Deployment values, as Integers.
    let values = &ready.status.resource_status.manifests[0]
        .status_feedback
        .values;
    let names: Vec<&str> = values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["ReadyReplicas", "Replicas", "AvailableReplicas"]);
    assert!(ready.requeue_after.is_none());
    // Stable: refreshing again with nothing changed gives the identical status.
    let state = WorkState {
        applied: ready.applied.clone(),
        status: ready.status.clone(),
    };
    let again = r.refresh(&w, &state, Time::now()).await;
    assert_eq!(again.status, ready.status);
}

#[tokio::test]
async fn failure_injection_and_out_of_band_deletion() {
    let s = sim(0);
    s.fail_manifest(
        "ConfigMap",
        "default",
        "bad",
        "admission webhook \"x\" denied the request",
    );
    let r = Reconciler::new(s.clone());
    let w = work(
        "fi",
        1,
        json!({"workload": {"manifests": [cm("bad"), cm("good")]}}),
    );
    let out = r.apply(&w, &WorkState::default(), Time::now()).await;
    let bad = cond(&out.status, 0, "Applied");
    assert_eq!(bad.status, "False");
    assert!(
        bad.message
            .starts_with("Failed to apply manifest: admission webhook")
    );
    assert_eq!(cond(&out.status, 1, "Applied").status, "True");
    // Item 29: deleted behind the agent's back → Available False at the next refresh.
    assert!(s.delete_out_of_band("", "v1", "configmaps", "default", "good"));
    let state = WorkState {
        applied: out.applied,
        status: out.status,
    };
    let after = r.refresh(&w, &state, Time::now()).await;
    assert_eq!(cond(&after.status, 1, "Available").status, "False");
    assert_eq!(
        after.status.condition("Available").unwrap().reason,
        "ResourcesNotAvailable"
    );
}
