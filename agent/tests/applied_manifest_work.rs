//! AppliedManifestWorks on the simulated cluster (manifestwork-semantics §6, conformance
//! items 53–56 and the ownership items 10, 14, 17 seen from the AppliedManifestWork),
//! plus stores written before AppliedManifestWorks existed. Time is the simulation's
//! manual clock: nothing here sleeps.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use workbus_agent::applied_work::AppliedWorkIdentity;
use workbus_agent::reconcile::{CleanupOutcome, Reconciler, WorkState};
use workbus_agent::target::sim::{SimClock, SimConfig, SimulatedCluster};
use workbus_agent::target::{ApplyMode, ObjectRef, Owner, OwnerChange, Target};
use workbus_schemas::work::applied::{self, AppliedManifestWork};
use workbus_schemas::work::{ManifestWork, ManifestWorkSpec, ObjectMeta};

const HUB: &str = "broker.example:1883";
const AGENT: &str = "cluster1-work-agent";
const HOUR: Duration = Duration::from_secs(3600);

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
        r: reconciler(&sim, HUB, AGENT),
        sim,
        clock,
    }
}

fn reconciler(sim: &Arc<SimulatedCluster>, hub: &str, agent: &str) -> Reconciler<SimulatedCluster> {
    Reconciler::new(sim.clone()).with_identity(AppliedWorkIdentity::new(hub, agent))
}

impl Env {
    async fn apply(&self, w: &ManifestWork, state: &WorkState) -> WorkState {
        self.r.apply(w, state, self.clock.now()).await.into_state()
    }

    async fn sweep(&self, held: &[&str]) -> Duration {
        let held: BTreeSet<String> = held.iter().map(|s| s.to_string()).collect();
        self.r
            .sweep_applied_works(&held, self.clock.now(), HOUR)
            .await
    }

    fn amw_named(&self, name: &str) -> Option<Value> {
        self.sim.object(
            applied::GROUP,
            applied::VERSION,
            applied::RESOURCE,
            "",
            name,
        )
    }

    fn amw(&self, work_name: &str) -> Option<Value> {
        self.amw_named(&applied::name(&applied::hub_hash(HUB), work_name))
    }

    fn cm(&self, name: &str) -> Option<Value> {
        self.sim.object("", "v1", "configmaps", "default", name)
    }
}

fn work(name: &str, generation: i64, manifests: Vec<Value>) -> ManifestWork {
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

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
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

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn item_53_amw_named_by_hub_hash_with_spec_finalizer_and_labels() {
    let e = env();
    let mut w = work("w53", 1, vec![cm("c")]);
    w.metadata
        .labels
        .insert("app.example/team".into(), "blue".into());
    let state = e.apply(&w, &WorkState::default()).await;
    let hash = applied::hub_hash(HUB);
    let live = e
        .amw_named(&format!("{hash}-w53"))
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

#[tokio::test]
async fn item_54_applied_resources_sorted_with_uids_and_written_only_on_change() {
    let e = env();
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let w = work(
        "w54",
        1,
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"}, "spec": {}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}),
            cm("b"),
            held,
        ],
    );
    let state = e.apply(&w, &WorkState::default()).await;
    let live = e.amw("w54").unwrap();
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
    let cm_uid = |n: &str| uid(&e.cm(n).unwrap());
    let ns_uid = uid(&e.sim.object("", "v1", "namespaces", "", "ns1").unwrap());
    let d_uid = uid(&e
        .sim
        .object("apps", "v1", "deployments", "default", "d")
        .unwrap());
    let row = |g: &str, r: &str, ns: &str, n: &str, u: String| {
        (g.into(), "v1".into(), r.into(), ns.into(), n.into(), u)
    };
    assert_eq!(
        listed,
        [
            row("", "configmaps", "default", "b", cm_uid("b")),
            row("", "configmaps", "default", "held", cm_uid("held")),
            row("", "namespaces", "", "ns1", ns_uid),
            row("apps", "deployments", "default", "d", d_uid),
        ]
    );
    // Nothing changed: no AMW write on apply or refresh.
    let before = rv(&live);
    let state = e.apply(&w, &state).await;
    let out = e.r.refresh(&w, &state, e.clock.now()).await;
    assert_eq!(rv(&e.amw("w54").unwrap()), before);
    // A removed manifest still terminating stays listed until it is gone.
    let w2 = work("w54", 2, vec![cm("b")]);
    let state = e.apply(&w2, &out.into_state()).await;
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
    assert_eq!(names(&e.amw("w54").unwrap()), ["b", "held"]);
    e.sim
        .finish_finalizers("", "v1", "configmaps", "default", "held");
    e.r.refresh(&w2, &state, e.clock.now()).await;
    assert_eq!(names(&e.amw("w54").unwrap()), ["b"]);
}

#[tokio::test]
async fn items_10_14_17_amw_owns_objects_and_goes_last() {
    let e = env();
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let w = work("w10", 1, vec![held, cm("free")]);
    let state = e.apply(&w, &WorkState::default()).await;
    let amw_uid = uid(&e.amw("w10").unwrap());
    let reference = &e.cm("free").unwrap()["metadata"]["ownerReferences"][0];
    assert_eq!(reference["kind"], "AppliedManifestWork");
    assert_eq!(reference["uid"], amw_uid.as_str());
    assert_eq!(
        reference["name"],
        applied::name(&applied::hub_hash(HUB), "w10").as_str()
    );
    assert!(reference.get("controller").is_none(), "not a controller");
    let CleanupOutcome::Pending { remaining, .. } = e.r.cleanup(&w, &state).await else {
        panic!("an object is held by a finalizer");
    };
    let amw = e.amw("w10").expect("AMW still there");
    assert!(amw["metadata"].get("deletionTimestamp").is_some());
    assert!(e.cm("free").is_none());
    let state = WorkState {
        applied: remaining,
        ..state
    };
    assert!(matches!(
        e.r.cleanup(&w, &state).await,
        CleanupOutcome::Pending { .. }
    ));
    e.sim
        .finish_finalizers("", "v1", "configmaps", "default", "held");
    assert_eq!(e.r.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(e.amw("w10").is_none());
}

#[tokio::test]
async fn amw_deleted_out_of_band_cleanup_uses_the_remembered_uid() {
    let e = env();
    let w = work("oob", 1, vec![cm("c")]);
    let state = e.apply(&w, &WorkState::default()).await;
    let name = applied::name(&applied::hub_hash(HUB), "oob");
    assert!(e.sim.delete_out_of_band(
        applied::GROUP,
        applied::VERSION,
        applied::RESOURCE,
        "",
        &name
    ));
    assert_eq!(e.r.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(
        e.cm("c").is_none(),
        "released with the remembered owner UID"
    );
}

#[tokio::test]
async fn item_55_amw_without_its_work_is_evicted_after_the_grace_period() {
    let e = env();
    let w = work("gone", 1, vec![cm("c")]);
    e.apply(&w, &WorkState::default()).await;
    // The agent no longer holds the work (e.g. its store was lost).
    let again = e.sweep(&[]).await;
    let amw = e.amw("gone").unwrap();
    assert_eq!(
        amw["status"]["evictionStartTime"],
        e.clock.now().to_rfc3339().as_str()
    );
    assert!(again <= HOUR, "next look by the end of the grace period");
    assert_eq!(
        amw["status"]["appliedResources"].as_array().map(Vec::len),
        Some(1),
        "the record is kept"
    );
    e.clock.advance(HOUR / 2);
    assert!(e.sweep(&[]).await <= HOUR / 2);
    assert!(
        e.cm("c").is_some(),
        "nothing deleted within the grace period"
    );
    e.clock.advance(HOUR / 2);
    e.sweep(&[]).await;
    assert!(e.cm("c").is_none(), "evicted: its objects released");
    assert!(e.amw("gone").is_none(), "and the AMW removed");
}

#[tokio::test]
async fn item_55_reappearing_work_clears_the_eviction() {
    let e = env();
    let w = work("back", 1, vec![cm("c")]);
    e.apply(&w, &WorkState::default()).await;
    e.sweep(&[]).await;
    assert!(e.amw("back").unwrap()["status"]["evictionStartTime"].is_string());
    e.clock.advance(HOUR / 2);
    e.sweep(&["back"]).await;
    assert!(
        e.amw("back").unwrap()["status"]
            .get("evictionStartTime")
            .is_none(),
        "cleared"
    );
    e.clock.advance(2 * HOUR);
    e.sweep(&["back"]).await;
    assert!(e.cm("c").is_some() && e.amw("back").is_some());
}

#[tokio::test]
async fn item_56_amw_of_another_hub_is_evicted_objects_kept_by_the_current_one() {
    let e = env();
    let w = work("moved", 1, vec![cm("c")]);
    // Applied first through the old hub, then through the current one.
    let old = reconciler(&e.sim, "old-broker:1883", AGENT);
    let old_state = old
        .apply(&w, &WorkState::default(), e.clock.now())
        .await
        .into_state();
    e.apply(&w, &old_state).await;
    let old_name = applied::name(&applied::hub_hash("old-broker:1883"), "moved");
    let old_uid = uid(&e.amw_named(&old_name).unwrap());
    let new_uid = uid(&e.amw("moved").unwrap());
    assert_eq!(owners(&e.cm("c").unwrap()), [old_uid, new_uid.clone()]);
    // The work is held, but that AMW's name has another hub's hash.
    e.sweep(&["moved"]).await;
    assert!(e.amw_named(&old_name).unwrap()["status"]["evictionStartTime"].is_string());
    assert!(
        e.amw("moved").unwrap()["status"]
            .get("evictionStartTime")
            .is_none()
    );
    e.clock.advance(HOUR);
    e.sweep(&["moved"]).await;
    assert!(e.amw_named(&old_name).is_none(), "evicted");
    assert_eq!(
        owners(&e.cm("c").expect("still applied for the current hub")),
        [new_uid]
    );
}

#[tokio::test]
async fn other_agents_and_malformed_amws_are_left_alone() {
    let e = env();
    let other = reconciler(&e.sim, HUB, "another-agent");
    other
        .apply(
            &work("theirs", 1, vec![cm("t")]),
            &WorkState::default(),
            e.clock.now(),
        )
        .await;
    // Something of the kind that is no AppliedManifestWork we could read.
    let at = ObjectRef::new(
        applied::GROUP,
        applied::VERSION,
        applied::RESOURCE,
        "",
        "broken",
    );
    e.sim
        .apply(
            &at,
            &json!({"apiVersion": applied::API_VERSION, "kind": applied::KIND,
                "metadata": {"name": "broken"}, "spec": "not an object"}),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    e.apply(&work("ours", 1, vec![cm("o")]), &WorkState::default())
        .await;
    e.sweep(&[]).await;
    e.clock.advance(2 * HOUR);
    e.sweep(&[]).await;
    assert!(e.amw("theirs").is_some() && e.cm("t").is_some(), "not ours");
    assert!(e.amw_named("broken").is_some(), "skipped");
    assert!(
        e.amw("ours").is_none() && e.cm("o").is_none(),
        "ours evicted"
    );
}

#[tokio::test]
async fn grace_of_100_years_never_evicts() {
    let e = env();
    e.apply(&work("kept", 1, vec![cm("c")]), &WorkState::default())
        .await;
    let held = BTreeSet::new();
    let forever = workbus_agent::applied_work::EVICTION_DISABLED;
    e.r.sweep_applied_works(&held, e.clock.now(), forever).await;
    e.clock.advance(1000 * HOUR);
    e.r.sweep_applied_works(&held, e.clock.now(), forever).await;
    assert!(e.amw("kept").is_some() && e.cm("c").is_some());
}

/// A store written before AppliedManifestWorks: no `applied_work_uid`, and the objects
/// owned by the work's own UID.
async fn legacy(e: &Env, w: &ManifestWork) -> WorkState {
    let at = ObjectRef::new("", "v1", "configmaps", "default", "c");
    let owner = Owner {
        name: w.metadata.name.clone(),
        uid: w.metadata.uid.clone(),
    };
    let live = e
        .sim
        .apply(&at, &cm("c"), &ApplyMode::Update, &OwnerChange::Add(owner))
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
    let e = env();
    let w = work("old", 1, vec![cm("c")]);
    let state = legacy(&e, &w).await;
    assert!(state.applied_work_uid.is_empty());
    assert_eq!(e.r.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(e.cm("c").is_none());
}

#[tokio::test]
async fn old_store_apply_moves_ownership_to_the_amw() {
    let e = env();
    let w = work("old", 1, vec![cm("c")]);
    let state = legacy(&e, &w).await;
    let state = e.apply(&w, &state).await;
    let amw_uid = uid(&e.amw("old").unwrap());
    assert_eq!(state.applied_work_uid, amw_uid);
    assert_eq!(
        owners(&e.cm("c").unwrap()),
        [amw_uid],
        "the work's own UID no longer owns it"
    );
    assert_eq!(e.r.cleanup(&w, &state).await, CleanupOutcome::Done);
    assert!(e.cm("c").is_none());
}
