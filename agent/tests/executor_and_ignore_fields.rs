//! The executor (manifestwork-semantics §2.4, checklist items 50–52) and server-side
//! apply (§5, items 20–25), each body run on both targets through the harness in
//! `conformance/`: `sim::…` on the simulated cluster (access denials are its test hook;
//! it approximates SSA field ownership, see `target::sim`), `kube::…` on the Kubernetes
//! target against the Kubernetes API test server (real RBAC evaluation of the
//! executor's ClusterRole, real SSA field ownership and conflicts). Nothing sleeps.

#[macro_use]
mod conformance;

use std::time::Duration;

use conformance::*;
use serde_json::{Value, json};
use workbus_agent::executor::RETRY_AFTER;
use workbus_agent::reconcile::{ReconcileOutcome, WorkState};
use workbus_agent::target::ObjectRef;
use workbus_schemas::work::meta::ANNOTATION_CONFIG_SPEC_HASH;
use workbus_schemas::work::{Condition, ManifestWork};

on_both_targets!(
    item_50_denied_manifest_fails_alone_and_applies_once_allowed,
    item_50_delete_is_checked_only_for_owned_objects,
    item_51_binding_a_role_the_executor_lacks_is_permission_escalation,
    item_51_a_role_needs_its_rules_or_escalate,
    item_52_no_executor_no_access_review,
    read_only_manifests_are_checked_too_as_ocm_does,
    item_20_ssa_records_the_configured_field_manager,
    item_22_on_spoke_present_field_is_set_once_then_left_to_the_spoke,
    item_23_on_spoke_change_edits_survive_until_the_manifest_changes,
    item_24_spec_hash_annotation_and_no_apply_when_unchanged,
    item_25_invalid_selector_is_an_ignore_field_error,
);

mod kube_only {
    // The simulated cluster detects SSA conflicts per object, not per field, and an
    // update by another manager takes no field ownership there: item 21 needs a real
    // field manager.
    #[tokio::test]
    async fn item_21_ssa_conflict_without_force_fails_that_manifest_only() {
        super::item_21_ssa_conflict_without_force_fails_that_manifest_only::<
            crate::conformance::Kube,
        >()
        .await;
    }
}

fn w1(generation: i64, spec: Value) -> ManifestWork {
    work("w1", generation, spec)
}

fn executor() -> Value {
    json!({"subject": {"type": "ServiceAccount", "serviceAccount": {"namespace": "ns1", "name": "sa1"}}})
}

fn applied(out: &ReconcileOutcome, ordinal: usize) -> &Condition {
    cond(&out.status, ordinal, "Applied")
}

async fn deployment<C: Cluster>(e: &Env<C>) -> Option<Value> {
    e.object(&deploy_at("d")).await
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

async fn item_50_denied_manifest_fails_alone_and_applies_once_allowed<C: Cluster>() {
    let e = Env::<C>::start().await;
    e.c.deny("create", "apps", "deployments").await;
    let spec = json!({"workload": {"manifests": [cm("c"), deploy("d")]}, "executor": executor()});
    let w = w1(1, spec);
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
    assert!(deployment(&e).await.is_none());
    assert_eq!(out.reapply_after, Some(RETRY_AFTER));
    assert_eq!(RETRY_AFTER, Duration::from_secs(60));

    // Granting the permission is enough: the retry (same spec) applies it.
    e.c.allow_all().await;
    e.advance(RETRY_AFTER);
    let (out, _) = e.apply(&w, &state).await;
    assert_eq!(applied(&out, 1).status, "True");
    assert!(deployment(&e).await.is_some());
    assert_eq!(out.reapply_after, None, "nothing left to retry");
}

async fn item_50_delete_is_checked_only_for_owned_objects<C: Cluster>() {
    let e = Env::<C>::start().await;
    e.c.deny("delete", "", "configmaps").await;
    let owned = json!({"workload": {"manifests": [cm("c")]}, "executor": executor()});
    let (out, _) = e.apply(&w1(1, owned), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "False");
    assert!(e.cm("c").await.is_none());
    let orphaned = json!({"workload": {"manifests": [cm("c")]}, "executor": executor(),
                          "deleteOption": {"propagationPolicy": "Orphan"}});
    let (out, _) = e.apply(&w1(2, orphaned), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "True", "orphaned: never deleted");
    assert!(e.cm("c").await.is_some());
}

fn role_binding(role_kind: &str, role: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": "rb", "namespace": "ns1"},
           "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
           "subjects": [{"kind": "ServiceAccount", "name": "sa1", "namespace": "ns1"}]})
}

async fn item_51_binding_a_role_the_executor_lacks_is_permission_escalation<C: Cluster>() {
    let e = Env::<C>::start().await;
    let cr = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "secret-admin"},
                    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]});
    e.put(
        &ObjectRef::new(RBAC, "v1", "clusterroles", "", "secret-admin"),
        &cr,
    )
    .await;
    // May create RoleBindings, but holds neither the role's rules nor `bind` on it.
    e.c.deny("*", "", "secrets").await;
    e.c.deny("bind", RBAC, "clusterroles").await;
    let spec =
        |rb: Value| json!({"workload": {"manifests": [rb, cm("c")]}, "executor": executor()});
    let w = w1(1, spec(role_binding("ClusterRole", "secret-admin")));
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
    let rb_at = ObjectRef::new(RBAC, "v1", "rolebindings", "ns1", "rb");
    assert!(e.object(&rb_at).await.is_none());

    // `bind` on the role allows it, rules or not.
    e.c.allow_all().await;
    e.c.deny("*", "", "secrets").await;
    let (out, _) = e.apply(&w, &state).await;
    assert_eq!(applied(&out, 0).status, "True");
    assert!(e.object(&rb_at).await.is_some());

    // Binding a role that does not exist is denied too (its rules cannot be checked).
    e.c.deny("bind", RBAC, "clusterroles").await;
    let mut other = role_binding("ClusterRole", "nope");
    other["metadata"]["name"] = json!("rb2");
    let (out, _) = e.apply(&w1(2, spec(other)), &state).await;
    assert!(
        applied(&out, 0)
            .message
            .contains("error: permission escalation (clusterroles \"nope\" not found)"),
        "{}",
        applied(&out, 0).message
    );
}

async fn item_51_a_role_needs_its_rules_or_escalate<C: Cluster>() {
    let e = Env::<C>::start().await;
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                      "metadata": {"name": "r", "namespace": "ns1"},
                      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    e.c.deny("list", "", "pods").await;
    e.c.deny("escalate", RBAC, "roles").await;
    let w = w1(
        1,
        json!({"workload": {"manifests": [role]}, "executor": executor()}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    assert!(
        applied(&out, 0)
            .message
            .contains("error: permission escalation"),
        "{}",
        applied(&out, 0).message
    );
    e.c.allow_all().await;
    e.c.deny("list", "", "pods").await;
    let (out, _) = e.apply(&w, &state).await;
    assert_eq!(applied(&out, 0).status, "True", "escalate allows it");
}

async fn item_52_no_executor_no_access_review<C: Cluster>() {
    let e = Env::<C>::start().await;
    let plain = json!({"workload": {"manifests": [cm("c"), role_binding("ClusterRole", "x")]}});
    let (out, _) = e.apply(&w1(1, plain), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "True");
    assert_eq!(applied(&out, 1).status, "True");
    assert_eq!(e.c.access_reviews(), 0);
    assert_eq!(out.reapply_after, None);
    // With an executor, the same manifest is asked about.
    let checked = json!({"workload": {"manifests": [cm("c")]}, "executor": executor()});
    e.apply(&w1(2, checked), &WorkState::default()).await;
    assert_eq!(
        e.c.access_reviews(),
        5,
        "create, update, patch, get, delete"
    );
}

async fn read_only_manifests_are_checked_too_as_ocm_does<C: Cluster>() {
    let e = Env::<C>::start().await;
    e.c.deny("get", "", "configmaps").await;
    let spec = json!({"workload": {"manifests": [cm("c")]}, "executor": executor(),
        "manifestConfigs": [{"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "c", "namespace": "default"},
                             "updateStrategy": {"type": "ReadOnly"}}]});
    let (out, _) = e.apply(&w1(1, spec), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "False");
    assert_eq!(out.reapply_after, Some(RETRY_AFTER));
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["manager"].as_str().unwrap_or_default().to_string(),
                        m["operation"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ssa_config(name: &str, ssa: Value) -> Value {
    json!({"resourceIdentifier": {"group": "", "resource": "configmaps", "name": name, "namespace": "default"},
           "updateStrategy": {"type": "ServerSideApply", "serverSideApply": ssa}})
}

async fn item_20_ssa_records_the_configured_field_manager<C: Cluster>() {
    let e = Env::<C>::start().await;
    let mut spec = manifests(vec![cm("default-manager"), cm("maestro")]);
    spec["manifestConfigs"] = json!([
        {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "default-manager", "namespace": "default"},
         "updateStrategy": {"type": "ServerSideApply"}},
        ssa_config("maestro", json!({"fieldManager": "maestro-agent"}))
    ]);
    let (out, _) = e.apply(&w1(1, spec), &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "True");
    assert_eq!(applied(&out, 1).status, "True");
    let apply = |m: &str| (m.to_string(), "Apply".to_string());
    let live = e.cm("default-manager").await.unwrap();
    assert!(
        managers(&live).contains(&apply("work-agent")),
        "{:?}",
        managers(&live)
    );
    let live = e.cm("maestro").await.unwrap();
    assert!(
        managers(&live).contains(&apply("maestro-agent")),
        "{:?}",
        managers(&live)
    );
    assert!(!managers(&live).contains(&apply("work-agent")));
}

async fn item_21_ssa_conflict_without_force_fails_that_manifest_only<C: Cluster>() {
    let e = Env::<C>::start().await;
    let spec = |value: &str| {
        let mut c = cm("c");
        c["data"]["a"] = json!(value);
        let mut other = cm("other");
        other["data"]["a"] = json!(value);
        let mut spec = manifests(vec![c, other]);
        spec["manifestConfigs"] = json!([ssa_config("*", json!({"force": false}))]);
        spec
    };
    let (_, state) = e.apply(&w1(1, spec("1")), &WorkState::default()).await;
    // Someone else takes `.data.a` of one object over.
    e.c.edit_on_spoke(&cm_at("c"), |c| c["data"]["a"] = json!("spoke"))
        .await;
    let (out, _) = e.apply(&w1(2, spec("2")), &state).await;
    let failed = applied(&out, 0);
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("False", "AppliedManifestFailed")
    );
    assert!(
        failed.message.contains("conflict with \"kubectl-edit\"")
            && failed.message.contains(".data.a"),
        "{}",
        failed.message
    );
    assert_eq!(e.cm("c").await.unwrap()["data"]["a"], "spoke");
    assert_eq!(
        applied(&out, 1).status,
        "True",
        "other manifests unaffected"
    );
    assert_eq!(e.cm("other").await.unwrap()["data"]["a"], "2");
    assert_eq!(out.status.condition("Applied").unwrap().status, "False");
    // No tight retry loop: nothing asks for an early re-apply.
    assert_eq!(out.reapply_after, None);
    assert_eq!(out.requeue_after, None);
}

async fn item_22_on_spoke_present_field_is_set_once_then_left_to_the_spoke<C: Cluster>() {
    let e = Env::<C>::start().await;
    let ignore = json!([{"condition": "OnSpokePresent", "jsonPaths": [".spec.replicas"]}]);
    let w = w1(
        1,
        ssa_spec(deploy_with("d", 2, 0), ignore.clone(), json!({})),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    assert_eq!(applied(&out, 0).status, "True");
    assert_eq!(
        deployment(&e).await.unwrap()["spec"]["replicas"],
        2,
        "first create sets it"
    );

    e.c.edit_on_spoke(&deploy_at("d"), |d| d["spec"]["replicas"] = json!(5))
        .await;
    let (_, state) = e.apply(&w, &state).await;
    assert_eq!(deployment(&e).await.unwrap()["spec"]["replicas"], 5);

    // Another field of the manifest changes: applied, replicas still the spoke's.
    let w2 = w1(2, ssa_spec(deploy_with("d", 2, 7), ignore, json!({})));
    let (out, _) = e.apply(&w2, &state).await;
    assert_eq!(applied(&out, 0).status, "True");
    let live = deployment(&e).await.unwrap();
    assert_eq!(live["spec"]["minReadySeconds"], 7);
    assert_eq!(live["spec"]["replicas"], 5, "never reverted");
}

async fn item_23_on_spoke_change_edits_survive_until_the_manifest_changes<C: Cluster>() {
    let e = Env::<C>::start().await;
    let ignore = json!([{"condition": "OnSpokeChange", "jsonPaths": [".spec.replicas"]}]);
    let w = w1(
        1,
        ssa_spec(deploy_with("d", 2, 0), ignore.clone(), json!({})),
    );
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    e.c.edit_on_spoke(&deploy_at("d"), |d| d["spec"]["replicas"] = json!(5))
        .await;
    let (_, state) = e.apply(&w, &state).await;
    assert_eq!(
        deployment(&e).await.unwrap()["spec"]["replicas"],
        5,
        "edit survives"
    );

    let w2 = w1(2, ssa_spec(deploy_with("d", 2, 7), ignore, json!({})));
    e.apply(&w2, &state).await;
    let live = deployment(&e).await.unwrap();
    assert_eq!(
        live["spec"]["replicas"], 2,
        "overwritten once the manifest changed"
    );
    assert_eq!(live["spec"]["minReadySeconds"], 7);
}

async fn item_24_spec_hash_annotation_and_no_apply_when_unchanged<C: Cluster>() {
    let e = Env::<C>::start().await;
    let ignore = json!([{"jsonPointers": ["/spec/replicas"]}]);
    let w = w1(
        1,
        ssa_spec(deploy_with("d", 2, 0), ignore.clone(), json!({})),
    );
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    let hash = deployment(&e).await.unwrap()["metadata"]["annotations"]
        [ANNOTATION_CONFIG_SPEC_HASH]
        .as_str()
        .expect("hash annotation")
        .to_string();
    assert_eq!(hash.len(), 64);
    assert_eq!(e.c.apply_count(&deploy_at("d")), 1);

    // Unchanged manifest: no apply call, even after a spoke edit of a managed field.
    let (_, state) = e.apply(&w, &state).await;
    e.c.edit_on_spoke(&deploy_at("d"), |d| d["spec"]["minReadySeconds"] = json!(3))
        .await;
    let before = e.c.apply_count(&deploy_at("d"));
    let (out, state) = e.apply(&w, &state).await;
    assert_eq!(applied(&out, 0).status, "True");
    assert_eq!(e.c.apply_count(&deploy_at("d")), before, "no apply call");
    assert_eq!(deployment(&e).await.unwrap()["spec"]["minReadySeconds"], 3);

    // deleteOption switched to Orphan, manifest unchanged: only the owner goes.
    let orphan = w1(
        2,
        ssa_spec(
            deploy_with("d", 2, 0),
            ignore,
            json!({"deleteOption": {"propagationPolicy": "Orphan"}}),
        ),
    );
    assert!(!owners(&deployment(&e).await.unwrap()).is_empty());
    e.apply(&orphan, &state).await;
    let live = deployment(&e).await.unwrap();
    assert!(owners(&live).is_empty());
    assert_eq!(
        e.c.apply_count(&deploy_at("d")),
        before,
        "still no apply call"
    );
    assert_eq!(
        live["metadata"]["annotations"][ANNOTATION_CONFIG_SPEC_HASH],
        hash.as_str()
    );
}

async fn item_25_invalid_selector_is_an_ignore_field_error<C: Cluster>() {
    let e = Env::<C>::start().await;
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
        let mut spec = ssa_spec(deploy_with("d", 2, 0), ignore, json!({}));
        spec["workload"]["manifests"]
            .as_array_mut()
            .unwrap()
            .push(cm("c"));
        let (out, _) = e.apply(&w1(1, spec), &WorkState::default()).await;
        let c = applied(&out, 0);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "AppliedManifestSSAIgnoreFieldError")
        );
        assert!(c.message.starts_with(text), "{}", c.message);
        assert_eq!(applied(&out, 1).status, "True");
        assert!(deployment(&e).await.is_none(), "nothing applied");
        assert_eq!(out.reapply_after, None, "only a spec change helps");
    }
}
