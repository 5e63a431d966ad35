//! The reconciler against the simulated cluster, item by item from the conformance
//! checklist of `manifestwork-semantics.md` §12 (numbers in the test names). Time is
//! the simulation's manual clock: nothing here sleeps.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use workbus_agent::conditions::deleting_condition;
use workbus_agent::reconcile::{CleanupOutcome, ReconcileOutcome, Reconciler, WorkState};
use workbus_agent::target::sim::{SimClock, SimConfig, SimulatedCluster};
use workbus_agent::target::{ApplyMode, ObjectRef, OwnerChange, Target};
use workbus_schemas::work::applied;
use workbus_schemas::work::{
    Condition, FieldValue, ManifestWork, ManifestWorkSpec, ManifestWorkStatus, ObjectMeta,
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

    fn cm(&self, name: &str) -> Option<Value> {
        self.sim.object("", "v1", "configmaps", "default", name)
    }

    /// The AppliedManifestWork of the work called `work_name` (default identity).
    fn amw(&self, work_name: &str) -> Option<Value> {
        let name = applied::name(&self.r.identity().hub_hash, work_name);
        self.sim.object(
            applied::GROUP,
            applied::VERSION,
            applied::RESOURCE,
            "",
            &name,
        )
    }

    fn amw_uid(&self, work_name: &str) -> String {
        self.amw(work_name).expect("AppliedManifestWork")["metadata"]["uid"]
            .as_str()
            .expect("uid")
            .to_string()
    }
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

fn manifests(list: Vec<Value>) -> Value {
    json!({"workload": {"manifests": list}})
}

fn cond<'a>(status: &'a ManifestWorkStatus, ordinal: usize, ty: &str) -> &'a Condition {
    status.resource_status.manifests[ordinal]
        .conditions
        .iter()
        .find(|c| c.type_ == ty)
        .unwrap_or_else(|| panic!("manifest {ordinal} has no {ty}"))
}

fn owners(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn item_4_5_7_order_ordinals_uid_and_cluster_scoped_meta() {
    let e = env(Duration::ZERO);
    let mut with_uid = cm("c");
    with_uid["metadata"]["uid"] = json!("stale-uid-from-somewhere");
    let w = work(
        "w5",
        1,
        manifests(vec![
            deploy("d"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1", "namespace": "ignored"}}),
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
    let rv = |v: Option<Value>| {
        v.unwrap()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let ns = rv(e.sim.object("", "v1", "namespaces", "", "ns1"));
    let c = rv(e.cm("c"));
    let d = rv(e.sim.object("apps", "v1", "deployments", "default", "d"));
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
        e.cm("c").unwrap()["metadata"]["uid"],
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

#[tokio::test]
async fn item_6_unknown_kind_fails_alone() {
    let e = env(Duration::ZERO);
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
    let available = cond(&out.status, 0, "Available");
    assert_eq!(
        (
            available.status.as_str(),
            available.reason.as_str(),
            available.message.as_str()
        ),
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
    assert!(e.cm("ok").is_some());
    let work_applied = out.status.condition("Applied").unwrap();
    assert_eq!(
        (
            work_applied.status.as_str(),
            work_applied.reason.as_str(),
            work_applied.message.as_str()
        ),
        (
            "False",
            "AppliedManifestWorkFailed",
            "Failed to apply manifest work"
        )
    );
    let work_available = out.status.condition("Available").unwrap();
    assert_eq!(
        work_available.message,
        "1 of 2 resources have unknown status"
    );
}

#[tokio::test]
async fn items_8_9_33_removal_reorder_and_generation() {
    let e = env(Duration::ZERO);
    let v1 = work(
        "w8",
        1,
        manifests(vec![cm("keep"), cm("drop"), cm("other")]),
    );
    let (_, state) = e.apply(&v1, &WorkState::default()).await;
    let keep_applied_at = cond(&state.status, 0, "Applied").last_transition_time;
    e.clock.advance(Duration::from_secs(60));
    // Item 9: reorder + item 8: drop one.
    let v2 = work("w8", 2, manifests(vec![cm("other"), cm("keep")]));
    let (out, _) = e.apply(&v2, &state).await;
    assert!(e.cm("drop").is_none());
    assert!(e.cm("keep").is_some());
    assert_eq!(out.applied.len(), 2);
    assert!(out.applied.iter().all(|a| a.name != "drop"));
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

#[tokio::test]
async fn items_10_11_12_owner_references_follow_the_delete_option() {
    let e = env(Duration::ZERO);
    let fg = work("w10", 1, manifests(vec![cm("o")]));
    let (_, state) = e.apply(&fg, &WorkState::default()).await;
    let live = e.cm("o").unwrap();
    let reference = &live["metadata"]["ownerReferences"][0];
    assert_eq!(reference["kind"], "AppliedManifestWork");
    assert_eq!(
        reference["apiVersion"],
        "work.open-cluster-management.io/v1"
    );
    assert_eq!(
        reference["uid"],
        e.amw_uid("w10").as_str(),
        "owned by the AMW"
    );
    assert_ne!(reference["uid"], "w10", "not by the work itself");
    assert!(reference.get("controller").is_none());
    // Item 12: switching to Orphan removes the owner reference at the next apply.
    let mut spec = manifests(vec![cm("o")]);
    spec["deleteOption"] = json!({"propagationPolicy": "Orphan"});
    let orphan = work("w10", 2, spec);
    let (_, state) = e.apply(&orphan, &state).await;
    assert!(owners(&e.cm("o").unwrap()).is_empty());
    // Item 11: deleting leaves it in place; the AMW goes.
    assert_eq!(e.r.cleanup(&orphan, &state).await, CleanupOutcome::Done);
    assert!(e.cm("o").is_some());
    assert!(e.amw("w10").is_none());
}

#[tokio::test]
async fn item_13_selectively_orphan() {
    let e = env(Duration::ZERO);
    let mut spec = manifests(vec![cm("so-keep"), cm("so-del")]);
    spec["deleteOption"] = json!({"propagationPolicy": "SelectivelyOrphan", "selectivelyOrphans": {"orphaningRules": [
        {"group": "", "resource": "configmaps", "namespace": "default", "name": "so-keep"}]}});
    let so = work("so", 1, spec);
    let (_, state) = e.apply(&so, &WorkState::default()).await;
    assert!(
        owners(&e.cm("so-keep").unwrap()).is_empty(),
        "matching object is not owned"
    );
    assert_eq!(owners(&e.cm("so-del").unwrap()), [e.amw_uid("so")]);
    assert_eq!(e.r.cleanup(&so, &state).await, CleanupOutcome::Done);
    assert!(e.cm("so-keep").is_some());
    assert!(e.cm("so-del").is_none());
}

#[tokio::test]
async fn item_14_17_foreground_waits_for_finalizers() {
    let e = env(Duration::ZERO);
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let w = work("w14", 1, manifests(vec![held, cm("free")]));
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    let CleanupOutcome::Pending {
        remaining,
        requeue_after,
    } = e.r.cleanup(&w, &state).await
    else {
        panic!("must wait for the finalizer");
    };
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].name, "held");
    assert!(requeue_after <= Duration::from_secs(1));
    assert!(e.cm("free").is_none());
    assert!(
        e.cm("held").unwrap()["metadata"]
            .get("deletionTimestamp")
            .is_some()
    );
    // The AMW is deleted but held by its finalizer while an object it owns terminates,
    // and it lists only what is left.
    let amw = e.amw("w14").expect("AMW kept by its finalizer");
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
        e.r.cleanup(&w, &state).await,
        CleanupOutcome::Pending { .. }
    ));
    assert!(e.amw("w14").is_some());
    e.sim
        .finish_finalizers("", "v1", "configmaps", "default", "held");
    assert_eq!(e.r.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(
        e.amw("w14").is_none(),
        "the finalizer went, and the AMW with it"
    );
    // Item 17: the Deleting condition the runtime sets meanwhile.
    let deleting = deleting_condition(3, e.clock.now());
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

#[tokio::test]
async fn item_14_removed_manifest_stays_listed_until_gone() {
    let e = env(Duration::ZERO);
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
    e.sim
        .finish_finalizers("", "v1", "configmaps", "default", "held");
    let (out, _) = e.refresh(&v2, &state).await;
    assert_eq!(out.applied.len(), 1);
    assert!(out.requeue_after.is_none());
}

#[tokio::test]
async fn item_15_shared_objects_only_lose_one_owner() {
    let e = env(Duration::ZERO);
    let a = work("a", 1, manifests(vec![cm("shared")]));
    let b = work("b", 1, manifests(vec![cm("shared")]));
    let (_, state_a) = e.apply(&a, &WorkState::default()).await;
    e.apply(&b, &WorkState::default()).await;
    let (amw_a, amw_b) = (e.amw_uid("a"), e.amw_uid("b"));
    assert_eq!(owners(&e.cm("shared").unwrap()), [amw_a, amw_b.clone()]);
    assert_eq!(e.r.cleanup(&a, &state_a).await, CleanupOutcome::Done);
    assert_eq!(owners(&e.cm("shared").expect("still owned by b")), [amw_b]);
}

#[tokio::test]
async fn item_16_recreated_object_is_not_deleted() {
    let e = env(Duration::ZERO);
    let (_, state) = e
        .apply(
            &work("w16", 1, manifests(vec![cm("re"), cm("k")])),
            &WorkState::default(),
        )
        .await;
    // Someone deletes and re-creates it (even claiming our owner reference).
    e.sim
        .delete_out_of_band("", "v1", "configmaps", "default", "re");
    let at = ObjectRef::new("", "v1", "configmaps", "default", "re");
    let owner = workbus_agent::target::Owner {
        name: applied::name(&e.r.identity().hub_hash, "w16"),
        uid: e.amw_uid("w16"),
    };
    e.sim
        .apply(&at, &cm("re"), &ApplyMode::Update, &OwnerChange::Add(owner))
        .await
        .unwrap();
    e.apply(&work("w16", 2, manifests(vec![cm("k")])), &state)
        .await;
    assert!(
        e.cm("re").is_some(),
        "UID differs from appliedResources: left alone"
    );
}

#[tokio::test]
async fn items_19_26_create_only_and_read_only() {
    let e = env(Duration::ZERO);
    // An existing object the work only reads.
    let at = ObjectRef::new("", "v1", "configmaps", "default", "ro-there");
    e.sim
        .apply(&at, &cm("ro-there"), &ApplyMode::Update, &OwnerChange::Keep)
        .await
        .unwrap();
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
    let w2 = work("co", 2, spec("2"));
    let (_, state) = e.apply(&w2, &state).await;
    assert_eq!(
        e.cm("once").unwrap()["data"]["v"],
        "1",
        "CreateOnly never updates"
    );
    // ReadOnly: never created; Applied True, Available False.
    assert!(e.cm("ro").is_none());
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
    let there = e.cm("ro-there").unwrap();
    assert_eq!(there["data"]["a"], "1");
    assert!(owners(&there).is_empty());
    let values = &state.status.resource_status.manifests[2]
        .status_feedback
        .values;
    assert_eq!(values[0].field_value, FieldValue::String("1".into()));
    assert_eq!(e.r.cleanup(&w2, &state).await, CleanupOutcome::Done);
    assert!(e.cm("ro-there").is_some());
    assert!(
        e.cm("once").is_none(),
        "CreateOnly objects are owned and deleted"
    );
}

#[tokio::test]
async fn items_27_30_31_aggregation() {
    let e = env(Duration::ZERO);
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
    let available = out.status.condition("Available").unwrap();
    assert_eq!(
        (
            available.status.as_str(),
            available.reason.as_str(),
            available.message.as_str()
        ),
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

#[tokio::test]
async fn item_28_29_readiness_is_not_availability_and_out_of_band_deletion() {
    let e = env(Duration::from_secs(30));
    let w = work("w28", 1, manifests(vec![deploy("web"), cm("c")]));
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    assert_eq!(
        cond(&out.status, 0, "Available").status,
        "True",
        "0 ready replicas, still Available"
    );
    assert!(
        e.sim
            .delete_out_of_band("", "v1", "configmaps", "default", "c")
    );
    let (after, state) = e.refresh(&w, &state).await;
    let available = cond(&after.status, 1, "Available");
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("False", "ResourceNotAvailable")
    );
    let work_available = after.status.condition("Available").unwrap();
    assert_eq!(
        (
            work_available.reason.as_str(),
            work_available.message.as_str()
        ),
        (
            "ResourcesNotAvailable",
            "1 of 2 resources are not available"
        )
    );
    // The next full apply re-creates it.
    let (again, _) = e.apply(&w, &state).await;
    assert!(e.cm("c").is_some());
    assert_eq!(again.status.condition("Available").unwrap().status, "True");
}

#[tokio::test]
async fn api_unavailable_gives_fetching_resource_failed() {
    let e = env(Duration::ZERO);
    let w = work("un", 1, manifests(vec![cm("c")]));
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    e.sim.set_unavailable(Some("connection refused"));
    let (out, _) = e.refresh(&w, &state).await;
    let available = cond(&out.status, 0, "Available");
    assert_eq!(
        (
            available.status.as_str(),
            available.reason.as_str(),
            available.message.as_str()
        ),
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

#[tokio::test]
async fn items_34_36_37_41_readiness_feedback_and_stability() {
    let e = env(Duration::from_secs(5));
    let w = work(
        "fb",
        1,
        json!({"workload": {"manifests": [deploy("web"),
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"}, "spec": {"replicas": 1}}, cm("plain")]},
        "manifestConfigs": [
            {"resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": "default"}, "feedbackRules": [{"type": "WellKnownStatus"}]},
            {"resourceIdentifier": {"group": "apps", "resource": "statefulsets", "name": "db", "namespace": "default"}, "feedbackRules": [{"type": "WellKnownStatus"}]},
            {"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "*", "namespace": "default"},
             "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "missing", "path": ".data.nothing"}]}]}]}),
    );
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    assert_eq!(
        out.requeue_after,
        Some(Duration::from_secs(5)),
        "the simulation says when the rollout completes"
    );
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

    e.clock.advance(Duration::from_secs(5));
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
    assert!(ready.requeue_after.is_none());
    // Item 42: the value change moved StatusFeedbackSynced's transition time.
    assert_ne!(
        cond(&ready.status, 0, "StatusFeedbackSynced").last_transition_time,
        cond(&state.status, 0, "StatusFeedbackSynced").last_transition_time
    );
    // Stable: with nothing changed, refresh and apply give the identical status.
    e.clock.advance(Duration::from_secs(60));
    let (again, _) = e.refresh(&w, &state2).await;
    assert_eq!(again.status, ready.status);
    let (applied_again, _) = e.apply(&w, &state2).await;
    assert_eq!(applied_again.status, ready.status);
}

#[tokio::test]
async fn item_35_45_daemonset_job_pod_feedback_and_complete_rule() {
    let e = env(Duration::from_secs(1));
    let wk = json!([{"type": "WellKnownStatus"}]);
    let w = work(
        "w35",
        1,
        json!({"workload": {"manifests": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds", "namespace": "default"}, "spec": {}},
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job", "namespace": "default"}, "spec": {}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod", "namespace": "default"}, "spec": {}}]},
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
    e.clock.advance(Duration::from_secs(1));
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
    let work_complete = out.status.condition("Complete").unwrap();
    assert_eq!(
        (
            work_complete.status.as_str(),
            work_complete.reason.as_str(),
            work_complete.message.as_str()
        ),
        ("True", "ConditionRulesAggregated", "Job is finished")
    );
    // Item 46: a completed work is not applied any more, not even re-created.
    assert!(
        e.sim
            .delete_out_of_band("batch", "v1", "jobs", "default", "job")
    );
    e.apply(
        &work("w35", 2, serde_json::to_value(&w.spec).unwrap()),
        &state,
    )
    .await;
    assert!(
        e.sim
            .object("batch", "v1", "jobs", "default", "job")
            .is_none()
    );
}

#[tokio::test]
async fn no_duplicate_applies_when_nothing_changed() {
    let e = env(Duration::ZERO);
    let w = work("dup", 1, manifests(vec![cm("c"), deploy("d")]));
    let (_, state) = e.apply(&w, &WorkState::default()).await;
    let (_, state) = e.apply(&w, &state).await;
    let (_, state) = e.apply(&w, &state).await;
    assert_eq!(e.sim.apply_count("", "v1", "configmaps", "default", "c"), 1);
    assert_eq!(
        e.sim
            .apply_count("apps", "v1", "deployments", "default", "d"),
        1
    );
    // Drift on the cluster (resourceVersion moved) makes the next apply write again.
    let at = ObjectRef::new("", "v1", "configmaps", "default", "c");
    let mut drifted = cm("c");
    drifted["data"]["a"] = json!("changed on the cluster");
    e.sim
        .apply(&at, &drifted, &ApplyMode::Update, &OwnerChange::Keep)
        .await
        .unwrap();
    e.apply(&w, &state).await;
    assert_eq!(e.cm("c").unwrap()["data"]["a"], "1", "drift reverted");
    assert_eq!(
        e.sim
            .apply_count("apps", "v1", "deployments", "default", "d"),
        1
    );
}

#[tokio::test]
async fn failure_injection_isolated_and_failed_update_keeps_the_object() {
    let e = env(Duration::ZERO);
    let (_, state) = e
        .apply(
            &work("fi", 1, manifests(vec![cm("bad"), cm("good")])),
            &WorkState::default(),
        )
        .await;
    e.sim.fail_manifest(
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
    assert_eq!(e.cm("good").unwrap()["data"]["a"], "2");
    assert!(e.cm("bad").is_some(), "a failed update is not a removal");
    assert!(out.applied.iter().any(|a| a.name == "bad"));
    assert_eq!(
        out.status.condition("Applied").unwrap().reason,
        "AppliedManifestWorkFailed"
    );
}

#[tokio::test]
async fn crd_and_custom_resource_in_one_work() {
    let e = env(Duration::ZERO);
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}});
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}, "spec": {"size": 3}});
    let w = work("crd", 1, manifests(vec![widget, crd]));
    // The first apply resolves the manifests before the CRD exists (as a cached REST
    // mapper would); the next reconcile applies the custom resource.
    let (out, state) = e.apply(&w, &WorkState::default()).await;
    assert_eq!(cond(&out.status, 0, "Applied").status, "False");
    let (out, _) = e.apply(&w, &state).await;
    assert_eq!(cond(&out.status, 0, "Applied").status, "True");
    assert!(
        e.sim
            .object("example.com", "v1", "widgets", "default", "w")
            .is_some()
    );
    assert!(e.sim.resolve("example.com/v1", "Widget").await.is_ok());
}

#[tokio::test]
async fn json_raw_limit_is_configurable() {
    let clock = SimClock::manual(0);
    let sim = Arc::new(SimulatedCluster::new(SimConfig::default()).with_clock(clock.clone()));
    let r = Reconciler::new(sim).with_max_json_raw(8);
    let w = work(
        "raw",
        1,
        json!({"workload": {"manifests": [cm("c")]},
            "manifestConfigs": [{"resourceIdentifier": {"group": "", "resource": "configmaps", "name": "c", "namespace": "default"},
                "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "data", "path": ".data"}, {"name": "a", "path": ".data.a"}]}]}]}),
    );
    let out = r.apply(&w, &WorkState::default(), clock.now()).await;
    let m = &out.status.resource_status.manifests[0];
    assert_eq!(
        m.status_feedback.values.len(),
        1,
        "the short value is still reported"
    );
    let synced = cond(&out.status, 0, "StatusFeedbackSynced");
    assert_eq!(synced.reason, "StatusFeedbackSyncFailed");
    assert!(synced.message.contains("exceeds the limit 8"));
}
