//! The executor (manifestwork-semantics §2.4, checklist items 50–52) and server-side
//! apply `ignoreFields` (§5, items 22–25) against the simulated cluster, on its manual
//! clock (nothing sleeps). The simulated cluster approximates SSA field ownership (see
//! `target::sim`); the same scenarios are meant to run against a real API server too.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use workbus_agent::executor::RETRY_AFTER;
use workbus_agent::reconcile::{ReconcileOutcome, Reconciler, WorkState};
use workbus_agent::target::sim::{SimClock, SimConfig, SimulatedCluster};
use workbus_agent::target::{ApplyMode, ObjectRef, OwnerChange, Target};
use workbus_schemas::work::meta::ANNOTATION_CONFIG_SPEC_HASH;
use workbus_schemas::work::{Condition, ManifestWork, ManifestWorkSpec, ObjectMeta};

const SA_USER: &str = "system:serviceaccount:ns1:sa1";
const RBAC: &str = "rbac.authorization.k8s.io";

struct Env {
    sim: Arc<SimulatedCluster>,
    clock: SimClock,
    r: Reconciler<SimulatedCluster>,
}

fn env() -> Env {
    let clock = SimClock::manual(1_700_000_000_000);
    let sim = Arc::new(
        SimulatedCluster::new(SimConfig {
            ready_after: Duration::ZERO,
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

    fn deployment(&self) -> Option<Value> {
        self.sim.object("apps", "v1", "deployments", "default", "d")
    }

    fn deployment_applies(&self) -> u64 {
        self.sim
            .apply_count("apps", "v1", "deployments", "default", "d")
    }

    /// Someone on the managed cluster edits the Deployment (`kubectl edit`).
    async fn edit_on_spoke(&self, edit: impl FnOnce(&mut Value)) {
        let at = ObjectRef::new("apps", "v1", "deployments", "default", "d");
        let mut live = self.sim.get(&at).await.unwrap().unwrap();
        edit(&mut live);
        self.sim
            .apply(&at, &live, &ApplyMode::Update, &OwnerChange::Keep)
            .await
            .unwrap();
    }
}

fn work(generation: i64, spec: Value) -> ManifestWork {
    let meta = ObjectMeta {
        uid: "w1".into(),
        name: "w1".into(),
        namespace: "cluster1".into(),
        generation,
        ..ObjectMeta::default()
    };
    let spec: ManifestWorkSpec = serde_json::from_value(spec).expect("spec");
    ManifestWork::new(meta, spec)
}

fn executor() -> Value {
    json!({"subject": {"type": "ServiceAccount", "serviceAccount": {"namespace": "ns1", "name": "sa1"}}})
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
}

fn deploy(replicas: i64, min_ready: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "d", "namespace": "default"},
           "spec": {"replicas": replicas, "minReadySeconds": min_ready}})
}

fn applied(out: &ReconcileOutcome, ordinal: usize) -> &Condition {
    out.status.resource_status.manifests[ordinal]
        .conditions
        .iter()
        .find(|c| c.type_ == "Applied")
        .unwrap_or_else(|| panic!("manifest {ordinal} has no Applied"))
}

/// A Deployment applied with ServerSideApply and these ignoreFields.
fn ssa_spec(manifest: Value, ignore: Value, extra: Value) -> Value {
    let mut spec = json!({
        "workload": {"manifests": [manifest]},
        "manifestConfigs": [{
            "resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "d", "namespace": "default"},
            "updateStrategy": {"type": "ServerSideApply",
                               "serverSideApply": {"force": true, "ignoreFields": ignore}}
        }]
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    spec
}

#[tokio::test]
async fn item_50_denied_manifest_fails_alone_and_applies_once_allowed() {
    let e = env();
    e.sim.deny_access(SA_USER, "create", "apps", "deployments");
    let spec = json!({"workload": {"manifests": [cm("c"), deploy(2, 0)]}, "executor": executor()});
    let w = work(1, spec);
    let (out, state) = e.apply(&w, &WorkState::default()).await;

    let denied = applied(&out, 1);
    assert_eq!(
        (denied.status.as_str(), denied.reason.as_str()),
        ("False", "AppliedManifestFailed")
    );
    assert_eq!(
        denied.message,
        "Failed to apply manifest: not allowed to apply the resource apps deployments, default d, will try again in 1m0s"
    );
    assert_eq!(
        applied(&out, 0).status,
        "True",
        "other manifests still apply"
    );
    assert!(e.deployment().is_none());
    assert_eq!(out.reapply_after, Some(RETRY_AFTER));
    assert_eq!(RETRY_AFTER, Duration::from_secs(60));

    // Granting the permission is enough: the retry (same spec) applies it.
    e.sim.allow_all_access();
    e.clock.advance(RETRY_AFTER);
    let (out, _) = e.apply(&w, &state).await;
    assert_eq!(applied(&out, 1).status, "True");
    assert!(e.deployment().is_some());
    assert_eq!(out.reapply_after, None, "nothing left to retry");
}

#[tokio::test]
async fn item_50_delete_is_checked_only_for_owned_objects() {
    let e = env();
    e.sim.deny_access(SA_USER, "delete", "", "configmaps");
    let owned = json!({"workload": {"manifests": [cm("c")]}, "executor": executor()});
    let (out, _) = e.apply(&work(1, owned), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "False");
    let orphaned = json!({"workload": {"manifests": [cm("c")]}, "executor": executor(),
                          "deleteOption": {"propagationPolicy": "Orphan"}});
    let (out, _) = e.apply(&work(2, orphaned), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "True", "orphaned: never deleted");
}

fn role_binding(role_kind: &str, role: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": "rb", "namespace": "ns1"},
           "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
           "subjects": [{"kind": "ServiceAccount", "name": "sa1", "namespace": "ns1"}]})
}

#[tokio::test]
async fn item_51_binding_a_role_the_executor_lacks_is_permission_escalation() {
    let e = env();
    let cr = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "secret-admin"},
                    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]});
    e.sim
        .apply(
            &ObjectRef::new(RBAC, "v1", "clusterroles", "", "secret-admin"),
            &cr,
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    // May create RoleBindings, but holds neither the role's rules nor `bind` on it.
    e.sim.deny_access(SA_USER, "*", "", "secrets");
    e.sim.deny_access(SA_USER, "bind", RBAC, "clusterroles");
    let spec =
        |rb: Value| json!({"workload": {"manifests": [rb, cm("c")]}, "executor": executor()});
    let w = work(1, spec(role_binding("ClusterRole", "secret-admin")));
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    let denied = applied(&out, 0);
    assert_eq!(denied.status, "False");
    assert!(
        denied.message.contains(
            "not allowed to apply the resource rbac.authorization.k8s.io rolebindings, ns1 rb, error: permission escalation"
        ),
        "{}",
        denied.message
    );
    assert_eq!(applied(&out, 1).status, "True");
    assert_eq!(out.reapply_after, Some(RETRY_AFTER));
    assert!(
        e.sim
            .object(RBAC, "v1", "rolebindings", "ns1", "rb")
            .is_none()
    );

    // `bind` on the role allows it, rules or not.
    e.sim.allow_all_access();
    e.sim.deny_access(SA_USER, "*", "", "secrets");
    let (out, _) = e.apply(&w, &state).await;
    assert_eq!(applied(&out, 0).status, "True");

    // Binding a role that does not exist is denied too (its rules cannot be checked).
    e.sim.deny_access(SA_USER, "bind", RBAC, "clusterroles");
    let (out, _) = e
        .apply(&work(2, spec(role_binding("ClusterRole", "nope"))), &state)
        .await;
    assert!(
        applied(&out, 0)
            .message
            .contains("error: permission escalation (clusterroles \"nope\" not found)")
    );
}

#[tokio::test]
async fn item_51_a_role_needs_its_rules_or_escalate() {
    let e = env();
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                      "metadata": {"name": "r", "namespace": "ns1"},
                      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    e.sim.deny_access(SA_USER, "list", "", "pods");
    e.sim.deny_access(SA_USER, "escalate", RBAC, "roles");
    let w = work(
        1,
        json!({"workload": {"manifests": [role]}, "executor": executor()}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    assert!(
        applied(&out, 0)
            .message
            .contains("error: permission escalation")
    );
    e.sim.allow_all_access();
    e.sim.deny_access(SA_USER, "list", "", "pods");
    let (out, _) = e.apply(&w, &state).await;
    assert_eq!(applied(&out, 0).status, "True", "escalate allows it");
}

#[tokio::test]
async fn item_52_no_executor_no_access_review() {
    let e = env();
    let plain = json!({"workload": {"manifests": [cm("c"), role_binding("ClusterRole", "x")]}});
    let (out, _) = e.apply(&work(1, plain), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "True");
    assert_eq!(applied(&out, 1).status, "True");
    assert_eq!(e.sim.access_review_count(), 0);
    assert_eq!(out.reapply_after, None);
    // With an executor, the same manifest is asked about.
    let checked = json!({"workload": {"manifests": [cm("c")]}, "executor": executor()});
    e.apply(&work(2, checked), &WorkState::default()).await;
    assert_eq!(
        e.sim.access_review_count(),
        5,
        "create, update, patch, get, delete"
    );
}

#[tokio::test]
async fn item_22_on_spoke_present_field_is_set_once_then_left_to_the_spoke() {
    let e = env();
    let ignore = json!([{"condition": "OnSpokePresent", "jsonPaths": [".spec.replicas"]}]);
    let w = work(1, ssa_spec(deploy(2, 0), ignore.clone(), json!({})));
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "True");
    assert_eq!(
        e.deployment().unwrap()["spec"]["replicas"],
        2,
        "first create sets it"
    );

    e.edit_on_spoke(|d| d["spec"]["replicas"] = json!(5)).await;
    let (_, state) = e.apply(&w, &state).await;
    assert_eq!(e.deployment().unwrap()["spec"]["replicas"], 5);

    // Another field of the manifest changes: applied, replicas still the spoke's.
    let w2 = work(2, ssa_spec(deploy(2, 7), ignore, json!({})));
    let (out, _) = e.apply(&w2, &state).await;
    assert_eq!(applied(&out, 0).status, "True");
    let live = e.deployment().unwrap();
    assert_eq!(live["spec"]["minReadySeconds"], 7);
    assert_eq!(live["spec"]["replicas"], 5, "never reverted");
}

#[tokio::test]
async fn item_23_on_spoke_change_edits_survive_until_the_manifest_changes() {
    let e = env();
    let ignore = json!([{"condition": "OnSpokeChange", "jsonPaths": [".spec.replicas"]}]);
    let w = work(1, ssa_spec(deploy(2, 0), ignore.clone(), json!({})));
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    e.edit_on_spoke(|d| d["spec"]["replicas"] = json!(5)).await;
    let (_, state) = e.apply(&w, &state).await;
    assert_eq!(
        e.deployment().unwrap()["spec"]["replicas"],
        5,
        "edit survives"
    );

    let w2 = work(2, ssa_spec(deploy(2, 7), ignore, json!({})));
    e.apply(&w2, &state).await;
    let live = e.deployment().unwrap();
    assert_eq!(
        live["spec"]["replicas"], 2,
        "overwritten once the manifest changed"
    );
    assert_eq!(live["spec"]["minReadySeconds"], 7);
}

#[tokio::test]
async fn item_24_spec_hash_annotation_and_no_apply_when_unchanged() {
    let e = env();
    let ignore = json!([{"jsonPointers": ["/spec/replicas"]}]);
    let w = work(1, ssa_spec(deploy(2, 0), ignore.clone(), json!({})));
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    let hash = e.deployment().unwrap()["metadata"]["annotations"][ANNOTATION_CONFIG_SPEC_HASH]
        .as_str()
        .expect("hash annotation")
        .to_string();
    assert_eq!(hash.len(), 64);
    assert_eq!(e.deployment_applies(), 1);

    // Unchanged manifest: no apply call, even after a spoke edit of a managed field.
    let (_, state) = e.apply(&w, &state).await;
    e.edit_on_spoke(|d| d["spec"]["minReadySeconds"] = json!(3))
        .await;
    let before = e.deployment_applies();
    let (out, state) = e.apply(&w, &state).await;
    assert_eq!(applied(&out, 0).status, "True");
    assert_eq!(e.deployment_applies(), before, "no apply call");

    // deleteOption switched to Orphan, manifest unchanged: only the owner goes.
    let orphan = work(
        2,
        ssa_spec(
            deploy(2, 0),
            ignore,
            json!({"deleteOption": {"propagationPolicy": "Orphan"}}),
        ),
    );
    assert!(
        e.deployment().unwrap()["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
    e.apply(&orphan, &state).await;
    let live = e.deployment().unwrap();
    assert!(
        live["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty())
    );
    assert_eq!(e.deployment_applies(), before, "still no apply call");
    assert_eq!(
        live["metadata"]["annotations"][ANNOTATION_CONFIG_SPEC_HASH],
        hash.as_str()
    );
}

#[tokio::test]
async fn item_25_invalid_selector_is_an_ignore_field_error() {
    let e = env();
    for (ignore, text) in [
        (
            json!([{"jsonPointers": ["spec/replicas"]}]),
            "Failed to process ignoreFields: JSON Pointer error in 'spec/replicas'",
        ),
        (
            json!([{"jqPathExpressions": [".spec | length"]}]),
            "Failed to process ignoreFields: JQ expression error in '.spec | length'",
        ),
    ] {
        let mut spec = ssa_spec(deploy(2, 0), ignore, json!({}));
        spec["workload"]["manifests"]
            .as_array_mut()
            .unwrap()
            .push(cm("c"));
        let (out, _) = e.apply(&work(1, spec), &WorkState::default()).await;
        let c = applied(&out, 0);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "AppliedManifestSSAIgnoreFieldError")
        );
        assert!(c.message.starts_with(text), "{}", c.message);
        assert_eq!(applied(&out, 1).status, "True");
        assert!(e.deployment().is_none(), "nothing applied");
        assert_eq!(out.reapply_after, None, "only a spec change helps");
    }
}

#[tokio::test]
async fn read_only_manifests_are_checked_too_as_ocm_does() {
    let e = env();
    e.sim.deny_access(SA_USER, "get", "", "configmaps");
    let spec = json!({"workload": {"manifests": [cm("c")]}, "executor": executor(),
        "manifestConfigs": [{"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "c", "namespace": "default"},
                             "updateStrategy": {"type": "ReadOnly"}}]});
    let (out, _) = e.apply(&work(1, spec), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "False");
    assert_eq!(out.reapply_after, Some(RETRY_AFTER));
}
