//! The reconciler item by item from the conformance checklist of
//! `manifestwork-semantics.md` §12 (numbers in the test names), each body run on both
//! targets (`sim::…` on the simulated cluster, `kube::…` on the Kubernetes target
//! against the Kubernetes API test server) through the harness in `conformance/`.
//! Time is a manual clock; the test server runs its controllers before it answers, so
//! nothing here sleeps. `agent/tests/CHECKLIST.md` maps every item to its tests.

#[macro_use]
mod conformance;

use std::time::Duration;

use conformance::*;
use serde_json::{Value, json};
use workbus_agent::conditions::deleting_condition;
use workbus_agent::reconcile::{CleanupOutcome, Reconciler, WorkState};
use workbus_agent::target::{ApplyMode, ObjectRef, OwnerChange, Target};
use workbus_schemas::work::FieldValue;
use workbus_schemas::work::applied;

on_both_targets!(
    item_4_5_7_order_ordinals_uid_and_cluster_scoped_meta,
    item_6_unknown_kind_fails_alone,
    items_8_9_33_removal_reorder_and_generation,
    items_10_11_12_owner_references_follow_the_delete_option,
    item_13_selectively_orphan,
    item_14_17_foreground_waits_for_finalizers,
    item_14_removed_manifest_stays_listed_until_gone,
    item_15_shared_objects_only_lose_one_owner,
    item_16_recreated_object_is_not_deleted,
    item_18_drift_reverted_foreign_metadata_kept_no_duplicate_applies,
    items_19_26_create_only_and_read_only,
    items_27_30_31_aggregation,
    item_28_29_readiness_is_not_availability_and_out_of_band_deletion,
    items_34_36_37_41_42_readiness_feedback_and_stability,
    item_35_45_46_daemonset_job_pod_feedback_and_complete_rule,
    items_38_39_40_json_raw_limit_and_version_mismatch,
    crd_and_custom_resource_in_one_work,
);

fn ns_at(name: &str) -> ObjectRef {
    ObjectRef::new("", "v1", "namespaces", "", name)
}

async fn item_4_5_7_order_ordinals_uid_and_cluster_scoped_meta<C: Cluster>() {
    let e = Env::<C>::start().await;
    let mut with_uid = cm("c");
    with_uid["metadata"]["uid"] = json!("stale-uid-from-somewhere");
    let w = work(
        "w5",
        1,
        manifests(vec![
            deploy("d"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns5", "namespace": "ignored"}}),
            with_uid,
        ]),
    );
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    let ordinals: Vec<i32> = out
        .status
        .resource_status
        .manifests
        .iter()
        .map(|m| m.resource_meta.ordinal)
        .collect();
    assert_eq!(ordinals, vec![0, 1, 2]);
    // Creation order shows in the resourceVersions: Namespace < ConfigMap < Deployment.
    let created = |v: Option<Value>| rv(&v.expect("created")).parse::<u64>().unwrap();
    let ns = created(e.object(&ns_at("ns5")).await);
    let c = created(e.cm("c").await);
    let d = created(e.object(&deploy_at("d")).await);
    assert!(ns < c && c < d, "{ns} < {c} < {d}");
    let ns_meta = &out.status.resource_status.manifests[1].resource_meta;
    assert_eq!(
        (ns_meta.namespace.as_str(), ns_meta.resource.as_str()),
        ("", "namespaces")
    );
    assert_eq!(
        cond(&out.status, 2, "Applied").status,
        "True",
        "item 4: manifest uid ignored"
    );
    assert_ne!(
        e.cm("c").await.unwrap()["metadata"]["uid"],
        "stale-uid-from-somewhere"
    );
    // §6: appliedResources sorted by group, version, resource, namespace, name.
    let keys: Vec<(String, String)> = out
        .applied
        .iter()
        .map(|a| (a.group.clone(), a.resource.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("".into(), "configmaps".into()),
            ("".into(), "namespaces".into()),
            ("apps".into(), "deployments".into())
        ]
    );
    assert!(out.applied.iter().all(|a| !a.uid.is_empty()));
}

async fn item_6_unknown_kind_fails_alone<C: Cluster>() {
    let e = Env::<C>::start().await;
    let w = work(
        "w6",
        1,
        manifests(vec![
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x", "namespace": "default"}}),
            cm("ok"),
        ]),
    );
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    let applied = cond(&out.status, 0, "Applied");
    assert_eq!(
        (applied.status.as_str(), applied.reason.as_str()),
        ("False", "AppliedManifestFailed")
    );
    assert_eq!(
        applied.message,
        "Failed to apply manifest: the server doesn't have a resource type \"Widget\""
    );
    assert_eq!(
        srm(cond(&out.status, 0, "Available")),
        (
            "Unknown",
            "IncompleteResourceMeta",
            "Resource meta is incomplete"
        )
    );
    assert_eq!(
        out.status.resource_status.manifests[0]
            .resource_meta
            .resource,
        ""
    );
    assert_eq!(cond(&out.status, 1, "Applied").status, "True");
    assert!(e.cm("ok").await.is_some());
    assert_eq!(
        srm(out.status.condition("Applied").unwrap()),
        (
            "False",
            "AppliedManifestWorkFailed",
            "Failed to apply manifest work"
        )
    );
    assert_eq!(
        out.status.condition("Available").unwrap().message,
        "1 of 2 resources have unknown status"
    );
}

async fn items_8_9_33_removal_reorder_and_generation<C: Cluster>() {
    let e = Env::<C>::start().await;
    let v1 = work(
        "w8",
        1,
        manifests(vec![cm("keep"), cm("drop"), cm("other")]),
    );
    let (_, state) = e.apply(&v1, &WorkState::default()).await;
    let keep_applied_at = cond(&state.status, 0, "Applied").last_transition_time;
    e.advance(Duration::from_secs(60));
    // Item 9: reorder + item 8: drop one.
    let v2 = work("w8", 2, manifests(vec![cm("other"), cm("keep")]));
    let (out, _) = e.apply(&v2, &state).await;
    assert!(e.cm("drop").await.is_none());
    assert!(e.cm("keep").await.is_some());
    assert_eq!(out.applied.len(), 2);
    assert!(out.applied.iter().all(|a| a.name != "drop"));
    let listed = e.amw("w8").await.unwrap()["status"]["appliedResources"].clone();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "drop"),
        "gone from the AppliedManifestWork: {listed}"
    );
    assert_eq!(out.status.resource_status.manifests.len(), 2);
    let keep = &out.status.resource_status.manifests[1];
    assert_eq!(keep.resource_meta.ordinal, 1);
    assert_eq!(
        cond(&out.status, 1, "Applied").last_transition_time,
        keep_applied_at,
        "history kept"
    );
    // Item 33: the new generation shows in the work conditions.
    assert_eq!(
        out.status.condition("Applied").unwrap().observed_generation,
        2
    );
    assert_eq!(
        out.status
            .condition("Available")
            .unwrap()
            .observed_generation,
        2
    );
}

async fn items_10_11_12_owner_references_follow_the_delete_option<C: Cluster>() {
    let e = Env::<C>::start().await;
    let fg = work("w10", 1, manifests(vec![cm("o")]));
    let (_, state) = e.apply(&fg, &WorkState::default()).await;
    let live = e.cm("o").await.unwrap();
    let reference = &live["metadata"]["ownerReferences"][0];
    assert_eq!(reference["kind"], "AppliedManifestWork");
    assert_eq!(
        reference["apiVersion"],
        "work.open-cluster-management.io/v1"
    );
    assert_eq!(
        reference["uid"],
        e.amw_uid("w10").await.as_str(),
        "owned by the AMW"
    );
    assert_ne!(reference["uid"], "w10", "not by the work itself");
    assert!(reference.get("controller").is_none());
    // Item 12: switching to Orphan removes the owner reference at the next apply.
    let mut spec = manifests(vec![cm("o")]);
    spec["deleteOption"] = json!({"propagationPolicy": "Orphan"});
    let orphan = work("w10", 2, spec);
    let (_, state) = e.apply(&orphan, &state).await;
    assert!(owners(&e.cm("o").await.unwrap()).is_empty());
    // Item 11: deleting leaves it in place; the AMW goes (and with a real garbage
    // collector, nothing follows it).
    assert_eq!(e.cleanup(&orphan, &state).await, CleanupOutcome::Done);
    assert!(e.cm("o").await.is_some());
    assert!(e.amw("w10").await.is_none());
}

async fn item_13_selectively_orphan<C: Cluster>() {
    let e = Env::<C>::start().await;
    let mut spec = manifests(vec![cm("so-keep"), cm("so-del")]);
    spec["deleteOption"] = json!({"propagationPolicy": "SelectivelyOrphan", "selectivelyOrphans": {"orphaningRules": [
        {"group": "", "resource": "configmaps", "namespace": "default", "name": "so-keep"}]}});
    let so = work("so", 1, spec);
    let (_, state) = e.apply(&so, &WorkState::default()).await;
    assert!(
        owners(&e.cm("so-keep").await.unwrap()).is_empty(),
        "matching object is not owned"
    );
    assert_eq!(
        owners(&e.cm("so-del").await.unwrap()),
        [e.amw_uid("so").await]
    );
    assert_eq!(e.cleanup(&so, &state).await, CleanupOutcome::Done);
    assert!(e.cm("so-keep").await.is_some());
    assert!(e.cm("so-del").await.is_none());
}

async fn item_14_17_foreground_waits_for_finalizers<C: Cluster>() {
    let e = Env::<C>::start().await;
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let w = work("w14", 1, manifests(vec![held, cm("free")]));
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    let CleanupOutcome::Pending {
        remaining,
        requeue_after,
    } = e.cleanup(&w, &state).await
    else {
        panic!("must wait for the finalizer");
    };
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].name, "held");
    assert!(requeue_after <= Duration::from_secs(1));
    assert!(e.cm("free").await.is_none());
    assert!(
        e.cm("held").await.unwrap()["metadata"]
            .get("deletionTimestamp")
            .is_some()
    );
    // The AMW is deleted but held by its finalizer while an object it owns terminates,
    // and it lists only what is left.
    let amw = e.amw("w14").await.expect("AMW kept by its finalizer");
    assert!(amw["metadata"].get("deletionTimestamp").is_some());
    assert_eq!(
        amw["status"]["appliedResources"].as_array().map(Vec::len),
        Some(1)
    );
    // Still terminating: still pending, and no second delete is needed.
    let state = WorkState {
        applied: remaining,
        ..state
    };
    assert!(matches!(
        e.cleanup(&w, &state).await,
        CleanupOutcome::Pending { .. }
    ));
    assert!(e.amw("w14").await.is_some());
    e.c.finish_finalizers(&cm_at("held")).await;
    assert_eq!(e.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(
        e.amw("w14").await.is_none(),
        "the finalizer went, and the AMW with it"
    );
    // Item 17: the Deleting condition the runtime sets meanwhile.
    let deleting = deleting_condition(3, e.now());
    assert_eq!(
        (
            deleting.type_.as_str(),
            deleting.status.as_str(),
            deleting.reason.as_str(),
            deleting.message.as_str()
        ),
        (
            "Deleting",
            "True",
            "WorkDeleting",
            "ManifestWork is being deleted"
        )
    );
    assert_eq!(deleting.observed_generation, 3);
}

async fn item_14_removed_manifest_stays_listed_until_gone<C: Cluster>() {
    let e = Env::<C>::start().await;
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let (_, state) = e
        .apply(
            &work("w", 1, manifests(vec![held, cm("k")])),
            &WorkState::default(),
        )
        .await;
    let v2 = work("w", 2, manifests(vec![cm("k")]));
    let (out, state) = e.apply(&v2, &state).await;
    assert!(
        out.applied.iter().any(|a| a.name == "held"),
        "kept while terminating"
    );
    assert!(out.requeue_after.is_some());
    assert_eq!(out.status.resource_status.manifests.len(), 1);
    e.c.finish_finalizers(&cm_at("held")).await;
    let (out, _) = e.refresh(&v2, &state).await;
    assert_eq!(out.applied.len(), 1);
    assert!(out.requeue_after.is_none());
}

async fn item_15_shared_objects_only_lose_one_owner<C: Cluster>() {
    let e = Env::<C>::start().await;
    let a = work("a", 1, manifests(vec![cm("shared")]));
    let b = work("b", 1, manifests(vec![cm("shared")]));
    let (_, state_a) = e.apply(&a, &WorkState::default()).await;
    e.apply(&b, &WorkState::default()).await;
    let (amw_a, amw_b) = (e.amw_uid("a").await, e.amw_uid("b").await);
    assert_eq!(
        owners(&e.cm("shared").await.unwrap()),
        [amw_a, amw_b.clone()]
    );
    assert_eq!(e.cleanup(&a, &state_a).await, CleanupOutcome::Done);
    assert!(e.amw("a").await.is_none());
    assert_eq!(
        owners(&e.cm("shared").await.expect("still owned by b")),
        [amw_b]
    );
}

async fn item_16_recreated_object_is_not_deleted<C: Cluster>() {
    let e = Env::<C>::start().await;
    let (_, state) = e
        .apply(
            &work("w16", 1, manifests(vec![cm("re"), cm("k")])),
            &WorkState::default(),
        )
        .await;
    // Someone deletes and re-creates it (even claiming our owner reference).
    assert!(e.c.delete_out_of_band(&cm_at("re"), true).await);
    let owner = workbus_agent::target::Owner {
        name: applied::name(&e.r.identity().hub_hash, "w16"),
        uid: e.amw_uid("w16").await,
    };
    e.c.target()
        .apply(
            &cm_at("re"),
            &cm("re"),
            &ApplyMode::Update,
            &OwnerChange::Add(owner),
        )
        .await
        .unwrap();
    e.apply(&work("w16", 2, manifests(vec![cm("k")])), &state)
        .await;
    assert!(
        e.cm("re").await.is_some(),
        "UID differs from appliedResources: left alone"
    );
}

async fn item_18_drift_reverted_foreign_metadata_kept_no_duplicate_applies<C: Cluster>() {
    let e = Env::<C>::start().await;
    let w = work("dup", 1, manifests(vec![cm("c"), deploy("d")]));
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    // The test server's controllers write the Deployment's status after the create.
    let settled = rv(&e.object(&deploy_at("d")).await.unwrap());
    let (_, state) = e.apply(&w, &state).await;
    let (_, state) = e.apply(&w, &state).await;
    assert_eq!(e.c.apply_count(&cm_at("c")), 1, "no duplicate applies");
    if e.is_sim() {
        assert_eq!(e.c.apply_count(&deploy_at("d")), 1);
    } else {
        // A status write moves the resourceVersion, so the agent's apply cache misses
        // once (as OCM's does); the apply then finds nothing to write.
        assert_eq!(e.c.apply_count(&deploy_at("d")), 2);
    }
    assert_eq!(
        rv(&e.object(&deploy_at("d")).await.unwrap()),
        settled,
        "repeated applies write nothing"
    );
    // Drift on the cluster: a field of the manifest changed, and someone else's label,
    // annotation and finalizer added.
    e.c.edit_on_spoke(&cm_at("c"), |c| {
        c["data"]["a"] = json!("changed on the cluster");
        c["metadata"]["labels"] = json!({"team": "x"});
        c["metadata"]["annotations"] = json!({"note": "y"});
        c["metadata"]["finalizers"] = json!(["example.com/keep"]);
    })
    .await;
    let applies = e.c.apply_count(&deploy_at("d"));
    e.apply(&w, &state).await;
    let live = e.cm("c").await.unwrap();
    assert_eq!(live["data"]["a"], "1", "drift reverted by the next apply");
    assert_eq!(live["metadata"]["labels"]["team"], "x");
    assert_eq!(live["metadata"]["annotations"]["note"], "y");
    if !e.is_sim() {
        // The simulated cluster's writes keep an object's finalizers as they were (it
        // has no way for "someone else" to add one after the create).
        assert_eq!(live["metadata"]["finalizers"], json!(["example.com/keep"]));
    }
    assert_eq!(owners(&live), [e.amw_uid("dup").await]);
    assert_eq!(
        e.c.apply_count(&deploy_at("d")),
        applies,
        "the unchanged object is not applied again"
    );
    assert_eq!(rv(&e.object(&deploy_at("d")).await.unwrap()), settled);
}

async fn items_19_26_create_only_and_read_only<C: Cluster>() {
    let e = Env::<C>::start().await;
    // An existing object the work only reads.
    e.put(&cm_at("ro-there"), &cm("ro-there")).await;
    let spec = |v: &str| {
        json!({"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "once", "namespace": "default"}, "data": {"v": v}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ro", "namespace": "default"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ro-there", "namespace": "default"}, "data": {"a": v}}]},
            "manifestConfigs": [
                {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "once", "namespace": "default"}, "updateStrategy": {"type": "CreateOnly"}},
                {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "ro*", "namespace": "*"}, "updateStrategy": {"type": "ReadOnly"},
                 "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "a", "path": ".data.a"}]}]}]})
    };
    let w1 = work("co", 1, spec("1"));
    let (out, state) = e.apply(&w1, &WorkState::default()).await;
    assert_eq!(e.cm("once").await.unwrap()["data"]["v"], "1", "created");
    let w2 = work("co", 2, spec("2"));
    let (_, state) = e.apply(&w2, &state).await;
    assert_eq!(
        e.cm("once").await.unwrap()["data"]["v"],
        "1",
        "CreateOnly never updates"
    );
    // ReadOnly: never created; Applied True, Available False.
    assert!(e.cm("ro").await.is_none());
    assert_eq!(cond(&out.status, 1, "Applied").status, "True");
    let available = cond(&out.status, 1, "Available");
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("False", "ResourceNotAvailable")
    );
    assert_eq!(
        out.status.condition("Available").unwrap().message,
        "1 of 3 resources are not available"
    );
    // ReadOnly on an existing object: not modified, feedback reported, never deleted.
    let there = e.cm("ro-there").await.unwrap();
    assert_eq!(there["data"]["a"], "1");
    assert!(owners(&there).is_empty());
    let values = &state.status.resource_status.manifests[2]
        .status_feedback
        .values;
    assert_eq!(values[0].field_value, FieldValue::String("1".into()));
    cleanup_until_done(&e, &w2, &state, 3).await;
    assert!(e.cm("ro-there").await.is_some());
    assert!(
        e.cm("once").await.is_none(),
        "CreateOnly objects are owned and deleted"
    );
}

async fn items_27_30_31_aggregation<C: Cluster>() {
    let e = Env::<C>::start().await;
    let w = work("agg", 7, manifests(vec![cm("a"), cm("b")]));
    // Item 31: a refresh before any apply sets no work-level condition.
    let (out, _) = e.refresh(&w, &WorkState::default()).await;
    assert!(out.status.conditions.is_empty());
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    let applied = out.status.condition("Applied").unwrap();
    assert_eq!(
        (
            applied.status.as_str(),
            applied.reason.as_str(),
            applied.message.as_str(),
            applied.observed_generation
        ),
        (
            "True",
            "AppliedManifestWorkComplete",
            "Apply manifest work complete",
            7
        )
    );
    assert_eq!(
        srm(out.status.condition("Available").unwrap()),
        ("True", "ResourcesAvailable", "All resources are available")
    );
    let manifest_applied = cond(&out.status, 0, "Applied");
    assert_eq!(
        (
            manifest_applied.reason.as_str(),
            manifest_applied.message.as_str()
        ),
        ("AppliedManifestComplete", "Apply manifest complete")
    );
    let manifest_available = cond(&out.status, 0, "Available");
    assert_eq!(
        (
            manifest_available.reason.as_str(),
            manifest_available.message.as_str()
        ),
        ("ResourceAvailable", "Resource is available")
    );
    // Item 41: no feedback rules.
    let synced = cond(&out.status, 0, "StatusFeedbackSynced");
    assert_eq!(
        (synced.status.as_str(), synced.reason.as_str()),
        ("True", "NoStatusFeedbackSynced")
    );
    // Progressing/Degraded are never set by the agent itself (item 32).
    assert!(
        out.status.condition("Progressing").is_none() && out.status.condition("Degraded").is_none()
    );
}

async fn item_28_29_readiness_is_not_availability_and_out_of_band_deletion<C: Cluster>() {
    let e = Env::<C>::with(Ready::Manual).await;
    let strategy = |name: &str, ty: &str| {
        json!({"resourceIdentifier": {"group": "", "resource": "configmaps", "name": name, "namespace": "default"},
               "updateStrategy": {"type": ty}})
    };
    let mut spec = manifests(vec![deploy("web"), cm("c"), cm("co"), cm("ssa")]);
    spec["manifestConfigs"] = json!([
        strategy("co", "CreateOnly"),
        strategy("ssa", "ServerSideApply")
    ]);
    let w = work("w28", 1, spec);
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    let live = e.object(&deploy_at("web")).await.unwrap();
    assert!(
        live["status"].get("readyReplicas").is_none(),
        "not ready: {}",
        live["status"]
    );
    assert_eq!(
        cond(&out.status, 0, "Available").status,
        "True",
        "0 ready replicas, still Available"
    );
    for name in ["c", "co", "ssa"] {
        assert!(e.c.delete_out_of_band(&cm_at(name), true).await);
    }
    let (after, state) = e.refresh(&w, &state).await;
    for ordinal in 1..4 {
        let available = cond(&after.status, ordinal, "Available");
        assert_eq!(
            (available.status.as_str(), available.reason.as_str()),
            ("False", "ResourceNotAvailable")
        );
    }
    let work_available = after.status.condition("Available").unwrap();
    assert_eq!(
        (
            work_available.reason.as_str(),
            work_available.message.as_str()
        ),
        (
            "ResourcesNotAvailable",
            "3 of 4 resources are not available"
        )
    );
    // The next full apply re-creates them, whatever the strategy (Update, CreateOnly,
    // ServerSideApply).
    let (again, _) = e.apply(&w, &state).await;
    for name in ["c", "co", "ssa"] {
        assert!(e.cm(name).await.is_some(), "{name} re-created");
    }
    assert_eq!(again.status.condition("Available").unwrap().status, "True");
}

/// The test server cannot be made unavailable per request, so this stays on the
/// simulated cluster (its `set_unavailable` hook).
#[tokio::test]
async fn api_unavailable_gives_fetching_resource_failed() {
    let e = Env::<Sim>::start().await;
    let w = work("un", 1, manifests(vec![cm("c")]));
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    e.c.sim().set_unavailable(Some("connection refused"));
    let (out, _) = e.refresh(&w, &state).await;
    assert_eq!(
        srm(cond(&out.status, 0, "Available")),
        (
            "Unknown",
            "FetchingResourceFailed",
            "Failed to fetch resource: connection refused"
        )
    );
    assert_eq!(
        out.applied, state.applied,
        "nothing dropped while the API is down"
    );
}

fn statefulset(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "main", "image": "postgres"}]}}}})
}

async fn items_34_36_37_41_42_readiness_feedback_and_stability<C: Cluster>() {
    let e = Env::<C>::with(Ready::Manual).await;
    let w = work(
        "fb",
        1,
        json!({"workload": {"manifests": [deploy("web"), statefulset("db"), cm("plain")]},
        "manifestConfigs": [
            {"resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": "default"}, "feedbackRules": [{"type": "WellKnownStatus"}]},
            {"resourceIdentifier": {"group": "apps", "resource": "statefulsets", "name": "db", "namespace": "default"}, "feedbackRules": [{"type": "WellKnownStatus"}]},
            {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "*", "namespace": "default"},
             "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "missing", "path": ".data.nothing"}]}]}]}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    if e.is_sim() {
        // Only the simulation knows when a rollout completes.
        assert_eq!(out.requeue_after, Some(SIM_ROLLOUT));
    }
    let values = &out.status.resource_status.manifests[0]
        .status_feedback
        .values;
    let names: Vec<&str> = values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["Replicas"],
        "missing fields omitted before the rollout"
    );
    // Item 36: no well-known rules for StatefulSets.
    let sts = cond(&out.status, 1, "StatusFeedbackSynced");
    assert_eq!(
        (sts.status.as_str(), sts.reason.as_str()),
        ("False", "StatusFeedbackSyncFailed")
    );
    assert_eq!(
        sts.message,
        "Sync status feedback failed with error cannot find the wellknown statuses for resource with gvk apps/v1, Kind=StatefulSet"
    );
    assert!(
        out.status.resource_status.manifests[1]
            .status_feedback
            .values
            .is_empty()
    );
    // Item 37: a JSONPath to a missing field: no value, synced.
    let plain = cond(&out.status, 2, "StatusFeedbackSynced");
    assert_eq!(
        (plain.status.as_str(), plain.reason.as_str()),
        ("True", "StatusFeedbackSynced")
    );
    assert!(
        out.status.resource_status.manifests[2]
            .status_feedback
            .values
            .is_empty()
    );

    e.advance(Duration::from_secs(5));
    e.c.set_ready("apps/v1", "Deployment", &deploy_at("web"))
        .await;
    let (ready, state2) = e.refresh(&w, &state).await;
    // Item 34: exactly the three Deployment values, as Integers.
    let values = &ready.status.resource_status.manifests[0]
        .status_feedback
        .values;
    let got: Vec<(&str, &FieldValue)> = values
        .iter()
        .map(|v| (v.name.as_str(), &v.field_value))
        .collect();
    assert_eq!(
        got,
        [
            ("ReadyReplicas", &FieldValue::Integer(2)),
            ("Replicas", &FieldValue::Integer(2)),
            ("AvailableReplicas", &FieldValue::Integer(2))
        ]
    );
    // Item 42: the value change moved StatusFeedbackSynced's transition time.
    assert_ne!(
        cond(&ready.status, 0, "StatusFeedbackSynced").last_transition_time,
        cond(&state.status, 0, "StatusFeedbackSynced").last_transition_time
    );
    // Stable: with nothing changed, refresh and apply give the identical status.
    e.c.set_ready(
        "apps/v1",
        "StatefulSet",
        &ObjectRef::new("apps", "v1", "statefulsets", "default", "db"),
    )
    .await;
    let (ready, state2) = e.refresh(&w, &state2).await;
    assert!(ready.requeue_after.is_none());
    e.advance(Duration::from_secs(60));
    let (again, _) = e.refresh(&w, &state2).await;
    assert_eq!(again.status, ready.status);
    let (applied_again, _) = e.apply(&w, &state2).await;
    assert_eq!(applied_again.status, ready.status);
}

fn pod_template(restart: &str) -> Value {
    json!({"metadata": {"labels": {"app": "x"}},
           "spec": {"restartPolicy": restart, "containers": [{"name": "main", "image": "busybox"}]}})
}

async fn item_35_45_46_daemonset_job_pod_feedback_and_complete_rule<C: Cluster>() {
    let e = Env::<C>::with(Ready::Manual).await;
    let wk = json!([{"type": "WellKnownStatus"}]);
    let w = work(
        "w35",
        1,
        json!({"workload": {"manifests": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds", "namespace": "default"},
             "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": pod_template("Always")}},
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job", "namespace": "default"},
             "spec": {"template": pod_template("Never")}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod", "namespace": "default"},
             "spec": {"containers": [{"name": "main", "image": "busybox"}]}}]},
        "manifestConfigs": [
            {"resourceIdentifier": {"group": "apps", "resource": "daemonsets", "name": "*", "namespace": "*"}, "feedbackRules": wk},
            {"resourceIdentifier": {"group": "batch", "resource": "jobs", "name": "*", "namespace": "*"}, "feedbackRules": wk,
             "conditionRules": [{"condition": "Complete", "type": "WellKnownConditions"}]},
            {"resourceIdentifier": {"group": "", "resource": "pods", "name": "*", "namespace": "*"}, "feedbackRules": wk}]}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    let complete = cond(&out.status, 1, "Complete");
    assert_eq!(
        (complete.status.as_str(), complete.message.as_str()),
        ("False", "Job is not finished")
    );
    assert_eq!(out.status.condition("Complete").unwrap().status, "False");
    e.c.set_ready(
        "apps/v1",
        "DaemonSet",
        &ObjectRef::new("apps", "v1", "daemonsets", "default", "ds"),
    )
    .await;
    let job_at = ObjectRef::new("batch", "v1", "jobs", "default", "job");
    e.c.set_ready("batch/v1", "Job", &job_at).await;
    e.c.set_ready(
        "v1",
        "Pod",
        &ObjectRef::new("", "v1", "pods", "default", "pod"),
    )
    .await;
    let (out, state) = e.refresh(&w, &state).await;
    let fv = |i: usize| -> Vec<(String, FieldValue)> {
        out.status.resource_status.manifests[i]
            .status_feedback
            .values
            .iter()
            .map(|v| (v.name.clone(), v.field_value.clone()))
            .collect()
    };
    assert_eq!(
        fv(0),
        [
            ("NumberReady".into(), FieldValue::Integer(1)),
            ("DesiredNumberScheduled".into(), FieldValue::Integer(1)),
            ("NumberAvailable".into(), FieldValue::Integer(1))
        ]
    );
    assert_eq!(
        fv(1),
        [
            ("JobComplete".into(), FieldValue::String("True".into())),
            ("JobSucceeded".into(), FieldValue::Integer(1))
        ]
    );
    assert_eq!(
        fv(2),
        [
            ("PodReady".into(), FieldValue::String("True".into())),
            ("PodPhase".into(), FieldValue::String("Running".into()))
        ]
    );
    // Item 45.
    let complete = cond(&out.status, 1, "Complete");
    assert_eq!(
        (
            complete.status.as_str(),
            complete.reason.as_str(),
            complete.message.as_str(),
            complete.observed_generation
        ),
        ("True", "ConditionRuleEvaluated", "Job is finished", 1)
    );
    assert_eq!(
        srm(out.status.condition("Complete").unwrap()),
        ("True", "ConditionRulesAggregated", "Job is finished")
    );
    // Item 46: a completed work is not applied any more, not even re-created, and a
    // spec change is not applied.
    assert!(e.c.delete_out_of_band(&job_at, true).await);
    let mut spec = serde_json::to_value(&w.spec).unwrap();
    spec["workload"]["manifests"]
        .as_array_mut()
        .unwrap()
        .push(cm("late"));
    let (out, _) = e.apply(&work("w35", 2, spec), &state).await;
    assert!(e.object(&job_at).await.is_none());
    assert!(e.cm("late").await.is_none(), "spec changes are not applied");
    assert_eq!(
        srm(cond(&out.status, 1, "Available")),
        ("False", "ResourceNotAvailable", "Resource is not available")
    );
}

/// Items 38–40 in Maestro mode (`RawFeedbackJsonString` always on: the agent has no
/// switch, so the "off" half of item 38 does not apply).
async fn items_38_39_40_json_raw_limit_and_version_mismatch<C: Cluster>() {
    let mut e = Env::<C>::start().await;
    let spec = json!({"workload": {"manifests": [cm("c")]},
        "manifestConfigs": [{"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "c", "namespace": "default"},
            "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [
                {"name": "data", "path": ".data"},
                {"name": "a", "path": ".data.a"},
                {"name": "v2", "path": ".data.a", "version": "v2"}]}]}]});
    let w = work("raw", 1, spec);
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    let values: Vec<(String, FieldValue)> = out.status.resource_status.manifests[0]
        .status_feedback
        .values
        .iter()
        .map(|v| (v.name.clone(), v.field_value.clone()))
        .collect();
    // Item 38: an object is reported as JsonRaw; item 40: the v2 path is an error for
    // that path only.
    assert_eq!(
        values,
        [
            ("data".into(), FieldValue::JsonRaw(r#"{"a":"1"}"#.into())),
            ("a".into(), FieldValue::String("1".into()))
        ]
    );
    let synced = cond(&out.status, 0, "StatusFeedbackSynced");
    assert_eq!(synced.reason, "StatusFeedbackSyncFailed");
    assert!(
        synced.message.contains("version set in the path v2"),
        "{}",
        synced.message
    );
    // Item 39: a JsonRaw over the limit is not reported and fails the sync.
    e.r = Reconciler::new(e.c.target()).with_max_json_raw(8);
    let (out, _) = e.apply(&w, &WorkState::default()).await;
    let m = &out.status.resource_status.manifests[0];
    assert_eq!(
        m.status_feedback
            .values
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["a"],
        "the short value is still reported"
    );
    let synced = cond(&out.status, 0, "StatusFeedbackSynced");
    assert_eq!(synced.reason, "StatusFeedbackSyncFailed");
    assert!(
        synced.message.contains("exceeds the limit 8"),
        "{}",
        synced.message
    );
}

/// Failure injection per manifest is a simulated-cluster hook (the test server has no
/// admission webhooks to reject one object).
#[tokio::test]
async fn failure_injection_isolated_and_failed_update_keeps_the_object() {
    let e = Env::<Sim>::start().await;
    let (_, state) = e
        .apply(
            &work("fi", 1, manifests(vec![cm("bad"), cm("good")])),
            &WorkState::default(),
        )
        .await;
    e.c.sim().fail_manifest(
        "ConfigMap",
        "default",
        "bad",
        "admission webhook \"x\" denied the request",
    );
    let mut bad2 = cm("bad");
    bad2["data"]["a"] = json!("2");
    let mut good2 = cm("good");
    good2["data"]["a"] = json!("2");
    let (out, _) = e
        .apply(&work("fi", 2, manifests(vec![bad2, good2])), &state)
        .await;
    let bad = cond(&out.status, 0, "Applied");
    assert_eq!(bad.status, "False");
    assert_eq!(
        bad.message,
        "Failed to apply manifest: admission webhook \"x\" denied the request"
    );
    assert_eq!(cond(&out.status, 1, "Applied").status, "True");
    assert_eq!(e.cm("good").await.unwrap()["data"]["a"], "2");
    assert!(
        e.cm("bad").await.is_some(),
        "a failed update is not a removal"
    );
    assert!(out.applied.iter().any(|a| a.name == "bad"));
    assert_eq!(
        out.status.condition("Applied").unwrap().reason,
        "AppliedManifestWorkFailed"
    );
}

async fn crd_and_custom_resource_in_one_work<C: Cluster>() {
    let e = Env::<C>::start().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}, "spec": {"size": 3}});
    let w = work("crd", 1, manifests(vec![widget, crd]));
    // The first apply resolves the manifests before the CRD exists (as a cached REST
    // mapper would); the next reconcile applies the custom resource.
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    assert_eq!(cond(&out.status, 0, "Applied").status, "False");
    let (out, _) = e.apply(&w, &state).await;
    assert_eq!(cond(&out.status, 0, "Applied").status, "True");
    let at = ObjectRef::new("example.com", "v1", "widgets", "default", "w");
    assert_eq!(e.object(&at).await.unwrap()["spec"]["size"], 3);
    assert!(
        e.c.target()
            .resolve("example.com/v1", "Widget")
            .await
            .is_ok()
    );
}
