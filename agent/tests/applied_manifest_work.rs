//! AppliedManifestWorks (manifestwork-semantics §6, conformance items 53–56 and the
//! ownership items 10, 14, 17 seen from the AppliedManifestWork), each body run on both
//! targets through the harness in `conformance/`: `sim::…` on the simulated cluster,
//! `kube::…` on the Kubernetes target against the Kubernetes API test server, where the
//! AppliedManifestWork is a custom resource of the agent's CRD and garbage collection by
//! owner references is real. Stores written before AppliedManifestWorks stay on the
//! simulated cluster (see there). Time is a manual clock: nothing here sleeps.

#[macro_use]
mod conformance;

use std::collections::BTreeSet;
use std::time::Duration;

use conformance::*;
use serde_json::{Value, json};
use workbus_agent::applied_work::AppliedWorkIdentity;
use workbus_agent::reconcile::{CleanupOutcome, WorkState};
use workbus_agent::target::{ApplyMode, ObjectRef, Owner, OwnerChange, Target};
use workbus_schemas::work::applied::{self, AppliedManifestWork};
use workbus_schemas::work::{ManifestWork, ManifestWorkSpec, ObjectMeta};

const HUB: &str = "broker.example:1883";
const AGENT: &str = "cluster1-work-agent";
const HOUR: Duration = Duration::from_secs(3600);

on_both_targets!(
    item_53_amw_named_by_hub_hash_with_spec_finalizer_and_labels,
    item_54_applied_resources_sorted_with_uids_and_written_only_on_change,
    items_10_14_17_amw_owns_objects_and_goes_last,
    amw_deleted_out_of_band_cleanup_uses_the_remembered_uid,
    item_55_amw_without_its_work_is_evicted_after_the_grace_period,
    item_55_reappearing_work_clears_the_eviction,
    item_56_amw_of_another_hub_is_evicted_objects_kept_by_the_current_one,
    other_agents_and_malformed_amws_are_left_alone,
    grace_of_100_years_never_evicts,
);

/// A cluster with the reconciler of agent [`AGENT`] on hub [`HUB`].
async fn env<C: Cluster>() -> Env<C> {
    let mut e = Env::<C>::start().await;
    e.set_identity(AppliedWorkIdentity::new(HUB, AGENT));
    e
}

async fn sweep<C: Cluster>(e: &Env<C>, held: &[&str]) -> Duration {
    let held: BTreeSet<String> = held.iter().map(|s| s.to_string()).collect();
    e.r.sweep_applied_works(&held, e.now(), HOUR).await
}

async fn apply<C: Cluster>(e: &Env<C>, w: &ManifestWork, state: &WorkState) -> WorkState {
    e.apply(w, state).await.1
}

fn aw(name: &str, generation: i64, manifests: Vec<Value>) -> ManifestWork {
    let meta = ObjectMeta {
        uid: format!("uid-{name}"),
        name: name.into(),
        namespace: "cluster1".into(),
        generation,
        ..ObjectMeta::default()
    };
    let spec: ManifestWorkSpec =
        serde_json::from_value(json!({"workload": {"manifests": manifests}})).expect("spec");
    ManifestWork::new(meta, spec)
}

async fn item_53_amw_named_by_hub_hash_with_spec_finalizer_and_labels<C: Cluster>() {
    let e = env::<C>().await;
    let mut w = aw("w53", 1, vec![cm("c")]);
    w.metadata
        .labels
        .insert("app.example/team".into(), "blue".into());
    let state = apply(&e, &w, &WorkState::default()).await;
    let hash = applied::hub_hash(HUB);
    let live = e
        .amw_named(&format!("{hash}-w53"))
        .await
        .expect("AMW <hubHash>-<work name>");
    let amw: AppliedManifestWork = serde_json::from_value(live.clone()).unwrap();
    assert_eq!(live["kind"], "AppliedManifestWork");
    assert_eq!(live["apiVersion"], "work.open-cluster-management.io/v1");
    assert_eq!(
        (
            amw.spec.hub_hash.as_str(),
            amw.spec.agent_id.as_str(),
            amw.spec.manifest_work_name.as_str()
        ),
        (hash.as_str(), AGENT, "w53")
    );
    assert_eq!(
        amw.metadata.finalizers,
        ["cluster.open-cluster-management.io/applied-manifest-work-cleanup"]
    );
    assert_eq!(amw.metadata.label("app.example/team"), Some("blue"));
    assert!(amw.metadata.namespace.is_empty(), "cluster-scoped");
    assert_eq!(
        state.applied_work_uid, amw.metadata.uid,
        "remembered locally"
    );
}

async fn item_54_applied_resources_sorted_with_uids_and_written_only_on_change<C: Cluster>() {
    let e = env::<C>().await;
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let w = aw(
        "w54",
        1,
        vec![
            deploy("d"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns54"}}),
            cm("b"),
            held,
        ],
    );
    let state = apply(&e, &w, &WorkState::default()).await;
    let live = e.amw("w54").await.unwrap();
    let listed: Vec<(String, String, String, String, String, String)> =
        live["status"]["appliedResources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let f = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (
                    f("group"),
                    f("version"),
                    f("resource"),
                    f("namespace"),
                    f("name"),
                    f("uid"),
                )
            })
            .collect();
    let cm_uid = async |n: &str| uid(&e.cm(n).await.unwrap());
    let ns_uid = uid(&e
        .object(&ObjectRef::new("", "v1", "namespaces", "", "ns54"))
        .await
        .unwrap());
    let d_uid = uid(&e.object(&deploy_at("d")).await.unwrap());
    let row = |g: &str, r: &str, ns: &str, n: &str, u: String| {
        (g.into(), "v1".into(), r.into(), ns.into(), n.into(), u)
    };
    assert_eq!(
        listed,
        [
            row("", "configmaps", "default", "b", cm_uid("b").await),
            row("", "configmaps", "default", "held", cm_uid("held").await),
            row("", "namespaces", "", "ns54", ns_uid),
            row("apps", "deployments", "default", "d", d_uid),
        ]
    );
    // Nothing changed: no AMW write on apply or refresh.
    let before = rv(&live);
    let state = apply(&e, &w, &state).await;
    let out = e.r.refresh(&w, &state, e.now()).await;
    assert_eq!(rv(&e.amw("w54").await.unwrap()), before);
    // A removed manifest still terminating stays listed until it is gone.
    let w2 = aw("w54", 2, vec![cm("b")]);
    let state = apply(&e, &w2, &out.into_state()).await;
    let names = |v: &Value| -> Vec<String> {
        v["status"]["appliedResources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&e.amw("w54").await.unwrap()), ["b", "held"]);
    e.c.finish_finalizers(&cm_at("held")).await;
    e.r.refresh(&w2, &state, e.now()).await;
    assert_eq!(names(&e.amw("w54").await.unwrap()), ["b"]);
}

async fn items_10_14_17_amw_owns_objects_and_goes_last<C: Cluster>() {
    let e = env::<C>().await;
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let w = aw("w10", 1, vec![held, cm("free")]);
    let state = apply(&e, &w, &WorkState::default()).await;
    let amw_uid = uid(&e.amw("w10").await.unwrap());
    let reference = e.cm("free").await.unwrap()["metadata"]["ownerReferences"][0].clone();
    assert_eq!(reference["kind"], "AppliedManifestWork");
    assert_eq!(reference["uid"], amw_uid.as_str());
    assert_eq!(
        reference["name"],
        applied::name(&applied::hub_hash(HUB), "w10").as_str()
    );
    assert!(reference.get("controller").is_none(), "not a controller");
    let CleanupOutcome::Pending { remaining, .. } = e.cleanup(&w, &state).await else {
        panic!("an object is held by a finalizer");
    };
    let amw = e.amw("w10").await.expect("AMW still there");
    assert!(amw["metadata"].get("deletionTimestamp").is_some());
    assert!(e.cm("free").await.is_none());
    let state = WorkState {
        applied: remaining,
        ..state
    };
    assert!(matches!(
        e.cleanup(&w, &state).await,
        CleanupOutcome::Pending { .. }
    ));
    e.c.finish_finalizers(&cm_at("held")).await;
    assert_eq!(e.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(e.amw("w10").await.is_none());
}

/// On the test server the garbage collector deletes the objects the moment their only
/// owner goes; on the simulated cluster the cleanup releases them with the UID it
/// remembered. Either way nothing is left behind.
async fn amw_deleted_out_of_band_cleanup_uses_the_remembered_uid<C: Cluster>() {
    let e = env::<C>().await;
    let w = aw("oob", 1, vec![cm("c")]);
    let state = apply(&e, &w, &WorkState::default()).await;
    let name = applied::name(&applied::hub_hash(HUB), "oob");
    assert!(e.c.delete_out_of_band(&amw_at(&name), true).await);
    assert_eq!(e.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(e.cm("c").await.is_none(), "released");
}

async fn item_55_amw_without_its_work_is_evicted_after_the_grace_period<C: Cluster>() {
    let e = env::<C>().await;
    let w = aw("gone", 1, vec![cm("c")]);
    apply(&e, &w, &WorkState::default()).await;
    // The agent no longer holds the work (e.g. its store was lost).
    let again = sweep(&e, &[]).await;
    let amw = e.amw("gone").await.unwrap();
    assert_eq!(
        amw["status"]["evictionStartTime"],
        e.now().to_rfc3339().as_str()
    );
    assert!(again <= HOUR, "next look by the end of the grace period");
    assert_eq!(
        amw["status"]["appliedResources"].as_array().map(Vec::len),
        Some(1),
        "the record is kept"
    );
    e.advance(HOUR / 2);
    assert!(sweep(&e, &[]).await <= HOUR / 2);
    assert!(
        e.cm("c").await.is_some(),
        "nothing deleted within the grace period"
    );
    e.advance(HOUR / 2);
    sweep(&e, &[]).await;
    assert!(e.cm("c").await.is_none(), "evicted: its objects released");
    assert!(e.amw("gone").await.is_none(), "and the AMW removed");
}

async fn item_55_reappearing_work_clears_the_eviction<C: Cluster>() {
    let e = env::<C>().await;
    let w = aw("back", 1, vec![cm("c")]);
    apply(&e, &w, &WorkState::default()).await;
    sweep(&e, &[]).await;
    assert!(e.amw("back").await.unwrap()["status"]["evictionStartTime"].is_string());
    e.advance(HOUR / 2);
    sweep(&e, &["back"]).await;
    assert!(
        e.amw("back").await.unwrap()["status"]
            .get("evictionStartTime")
            .is_none(),
        "cleared"
    );
    e.advance(2 * HOUR);
    sweep(&e, &["back"]).await;
    assert!(e.cm("c").await.is_some() && e.amw("back").await.is_some());
}

async fn item_56_amw_of_another_hub_is_evicted_objects_kept_by_the_current_one<C: Cluster>() {
    let e = env::<C>().await;
    let w = aw("moved", 1, vec![cm("c")]);
    // Applied first through the old hub, then through the current one.
    let old = e.reconciler(AppliedWorkIdentity::new("old-broker:1883", AGENT));
    let old_state = old
        .apply(&w, &WorkState::default(), e.now())
        .await
        .into_state();
    apply(&e, &w, &old_state).await;
    let old_name = applied::name(&applied::hub_hash("old-broker:1883"), "moved");
    let old_uid = uid(&e.amw_named(&old_name).await.unwrap());
    let new_uid = uid(&e.amw("moved").await.unwrap());
    assert_eq!(
        owners(&e.cm("c").await.unwrap()),
        [old_uid, new_uid.clone()]
    );
    // The work is held, but that AMW's name has another hub's hash.
    sweep(&e, &["moved"]).await;
    assert!(e.amw_named(&old_name).await.unwrap()["status"]["evictionStartTime"].is_string());
    assert!(
        e.amw("moved").await.unwrap()["status"]
            .get("evictionStartTime")
            .is_none()
    );
    e.advance(HOUR);
    sweep(&e, &["moved"]).await;
    assert!(e.amw_named(&old_name).await.is_none(), "evicted");
    assert_eq!(
        owners(&e.cm("c").await.expect("still applied for the current hub")),
        [new_uid]
    );
}

async fn other_agents_and_malformed_amws_are_left_alone<C: Cluster>() {
    let e = env::<C>().await;
    let other = e.reconciler(AppliedWorkIdentity::new(HUB, "another-agent"));
    other
        .apply(
            &aw("theirs", 1, vec![cm("t")]),
            &WorkState::default(),
            e.now(),
        )
        .await;
    // Something of the kind that is no AppliedManifestWork we could read (the CRD's
    // schema refuses it on the test server, so only the simulated cluster can hold it).
    if e.is_sim() {
        e.put(
            &amw_at("broken"),
            &json!({"apiVersion": applied::API_VERSION, "kind": applied::KIND,
                "metadata": {"name": "broken"}, "spec": "not an object"}),
        )
        .await;
    }
    apply(&e, &aw("ours", 1, vec![cm("o")]), &WorkState::default()).await;
    sweep(&e, &[]).await;
    e.advance(2 * HOUR);
    sweep(&e, &[]).await;
    assert!(
        e.amw("theirs").await.is_some() && e.cm("t").await.is_some(),
        "not ours"
    );
    if e.is_sim() {
        assert!(e.amw_named("broken").await.is_some(), "skipped");
    }
    assert!(
        e.amw("ours").await.is_none() && e.cm("o").await.is_none(),
        "ours evicted"
    );
}

async fn grace_of_100_years_never_evicts<C: Cluster>() {
    let e = env::<C>().await;
    apply(&e, &aw("kept", 1, vec![cm("c")]), &WorkState::default()).await;
    let held = BTreeSet::new();
    let forever = workbus_agent::applied_work::EVICTION_DISABLED;
    e.r.sweep_applied_works(&held, e.now(), forever).await;
    e.advance(1000 * HOUR);
    e.r.sweep_applied_works(&held, e.now(), forever).await;
    assert!(e.amw("kept").await.is_some() && e.cm("c").await.is_some());
}

/// A store written before AppliedManifestWorks: no `applied_work_uid`, and the objects
/// owned by the work's own UID. Only the simulated cluster (the agent's only target
/// then) can hold such objects: on a real cluster the garbage collector deletes an
/// object whose only owner never existed.
async fn legacy(e: &Env<Sim>, w: &ManifestWork) -> WorkState {
    let owner = Owner {
        name: w.metadata.name.clone(),
        uid: w.metadata.uid.clone(),
    };
    let live =
        e.c.target()
            .apply(
                &cm_at("c"),
                &cm("c"),
                &ApplyMode::Update,
                &OwnerChange::Add(owner),
            )
            .await
            .unwrap();
    let stored = json!({
        "applied": [{"group": "", "version": "v1", "resource": "configmaps",
            "namespace": "default", "name": "c", "uid": uid(&live)}],
        "status": {"conditions": []}
    });
    serde_json::from_value(stored).expect("an old store still loads")
}

#[tokio::test]
async fn old_store_loads_and_cleanup_releases_objects_owned_by_the_work() {
    let e = env::<Sim>().await;
    let w = aw("old", 1, vec![cm("c")]);
    let state = legacy(&e, &w).await;
    assert!(state.applied_work_uid.is_empty());
    assert_eq!(e.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(e.cm("c").await.is_none());
}

#[tokio::test]
async fn old_store_apply_moves_ownership_to_the_amw() {
    let e = env::<Sim>().await;
    let w = aw("old", 1, vec![cm("c")]);
    let state = legacy(&e, &w).await;
    let state = apply(&e, &w, &state).await;
    let amw_uid = uid(&e.amw("old").await.unwrap());
    assert_eq!(state.applied_work_uid, amw_uid);
    assert_eq!(
        owners(&e.cm("c").await.unwrap()),
        [amw_uid],
        "the work's own UID no longer owns it"
    );
    assert_eq!(e.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(e.cm("c").await.is_none());
}
