//! An AppliedManifestWork deleted out of band while its work is live, at the
//! reconciler (manifestwork-semantics §6; OCM finishes it and starts over): the next
//! apply releases what it owns by the §6 rules, waits while objects terminate, removes
//! its finalizer, creates a new one and applies again; a refresh notices it and asks
//! for that apply. The runtime side is in `runtime_timers.rs`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use workbus_agent::applied_work::{self, AppliedWorkIdentity};
use workbus_agent::reconcile::{Reconciler, WorkState};
use workbus_agent::target::Target;
use workbus_agent::target::sim::{SimClock, SimConfig, SimulatedCluster};
use workbus_schemas::work::spec::ManifestWorkSpec;
use workbus_schemas::work::{ManifestWork, ObjectMeta};

fn setup() -> (
    Arc<SimulatedCluster>,
    Reconciler<SimulatedCluster>,
    SimClock,
) {
    let clock = SimClock::manual(1_700_000_000_000);
    let sim = Arc::new(
        SimulatedCluster::new(SimConfig {
            ready_after: Duration::ZERO,
            snapshot: None,
        })
        .with_clock(clock.clone()),
    );
    let r = Reconciler::new(sim.clone()).with_identity(AppliedWorkIdentity::new("hub:1883", "a"));
    (sim, r, clock)
}

fn work(spec: Value) -> ManifestWork {
    let meta = ObjectMeta {
        uid: "w1".into(),
        name: "w1".into(),
        namespace: "c1".into(),
        generation: 1,
        ..ObjectMeta::default()
    };
    ManifestWork::new(
        meta,
        serde_json::from_value::<ManifestWorkSpec>(spec).unwrap(),
    )
}

fn cm(name: &str, finalizers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "finalizers": finalizers},
           "data": {"k": "1"}})
}

fn uid(v: &Value) -> String {
    v["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn owner_uids(v: &Value) -> Vec<String> {
    v["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn waits_for_owned_objects_then_recreates_and_reowns() {
    let (sim, r, clock) = setup();
    let w = work(json!({"workload": {"manifests": [cm("held", json!(["example.com/hold"]))]}}));
    let amw_at = applied_work::at(&r.identity().name_of(&w));
    let state = r
        .apply(&w, &WorkState::default(), clock.now())
        .await
        .into_state();
    let old_amw = uid(&sim.get(&amw_at).await.unwrap().unwrap());
    let old_cm = uid(&sim
        .object("", "v1", "configmaps", "default", "held")
        .unwrap());
    assert_eq!(state.applied_work_uid, old_amw);

    sim.delete(&amw_at, None).await.unwrap();
    // A refresh notices and asks for an apply at once.
    let refreshed = r.refresh(&w, &state, clock.now()).await;
    assert_eq!(refreshed.reapply_after, Some(Duration::ZERO));
    // The apply releases the object (deleted: only this work owns it); its finalizer
    // keeps it terminating, so the old AppliedManifestWork is kept and nothing applied.
    let out = r.apply(&w, &state, clock.now()).await;
    assert!(out.reapply_after.is_some(), "tried again soon");
    let live = sim
        .object("", "v1", "configmaps", "default", "held")
        .unwrap();
    assert!(live["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(uid(&sim.get(&amw_at).await.unwrap().unwrap()), old_amw);
    assert_eq!(out.applied.len(), 1, "still being released");
    let state = out.into_state();
    // Once the object is gone, the old one goes, a new one is created and owns the
    // re-created object.
    sim.finish_finalizers("", "v1", "configmaps", "default", "held");
    let out = r.apply(&w, &state, clock.now()).await;
    assert_eq!(out.reapply_after, None);
    let new_amw = uid(&sim.get(&amw_at).await.unwrap().unwrap());
    assert_ne!(new_amw, old_amw);
    assert_eq!(out.applied_work_uid, new_amw);
    let live = sim
        .object("", "v1", "configmaps", "default", "held")
        .unwrap();
    assert_ne!(uid(&live), old_cm, "re-created");
    assert_eq!(owner_uids(&live), vec![new_amw.clone()]);
    let state = out.into_state();
    let refreshed = r.refresh(&w, &state, clock.now()).await;
    assert_eq!(refreshed.reapply_after, None, "settled");
}

#[tokio::test]
async fn orphaned_objects_survive_the_restart() {
    let (sim, r, clock) = setup();
    let w = work(json!({"workload": {"manifests": [cm("kept", json!([]))]},
                        "deleteOption": {"propagationPolicy": "Orphan"}}));
    let amw_at = applied_work::at(&r.identity().name_of(&w));
    let state = r
        .apply(&w, &WorkState::default(), clock.now())
        .await
        .into_state();
    let before = uid(&sim
        .object("", "v1", "configmaps", "default", "kept")
        .unwrap());
    sim.delete(&amw_at, None).await.unwrap();
    let out = r.apply(&w, &state, clock.now()).await;
    assert_eq!(out.reapply_after, None);
    let live = sim
        .object("", "v1", "configmaps", "default", "kept")
        .unwrap();
    assert_eq!(uid(&live), before, "an orphaned object is not deleted");
    assert!(owner_uids(&live).is_empty());
    let amw = sim.get(&amw_at).await.unwrap().unwrap();
    assert!(amw["metadata"]["deletionTimestamp"].is_null(), "a new one");
    assert_eq!(out.applied_work_uid, uid(&amw));
}
