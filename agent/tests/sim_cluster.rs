//! The simulated cluster through the `Target` trait: that it answers like an API server
//! on what the reconciler relies on (metadata bookkeeping, generations, owner references,
//! UID preconditions, finalizers, kinds from CRDs, namespaces), and that its test hooks
//! (failure injection, unavailability, apply counts, manual clock, snapshot) work.

use std::time::Duration;

use serde_json::{Value, json};
use workbus_agent::target::sim::{
    SIMULATE_FAILURE_ANNOTATION, SimClock, SimConfig, SimulatedCluster,
};
use workbus_agent::target::{
    ApplyMode, DeleteResult, ObjectRef, Owner, OwnerChange, Target, TargetError,
};

fn sim() -> SimulatedCluster {
    SimulatedCluster::new(SimConfig {
        ready_after: Duration::from_secs(10),
        snapshot: None,
    })
    .with_clock(SimClock::manual(1_700_000_000_000))
}

fn owner(uid: &str) -> OwnerChange {
    OwnerChange::Add(Owner {
        name: format!("hub-{uid}"),
        uid: uid.into(),
    })
}

fn cm_at(name: &str) -> ObjectRef {
    ObjectRef::new("", "v1", "configmaps", "default", name)
}

fn cm(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": {"app": "x"}}, "data": {"k": data}})
}

#[tokio::test]
async fn resolves_builtin_kinds_scopes_and_rejects_unknown() {
    let sim = sim();
    for (api, kind, resource, namespaced) in [
        ("v1", "Namespace", "namespaces", false),
        ("v1", "Secret", "secrets", true),
        ("apps/v1", "DaemonSet", "daemonsets", true),
        ("batch/v1", "CronJob", "cronjobs", true),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        ),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
        ),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
    ] {
        let m = sim.resolve(api, kind).await.unwrap();
        assert_eq!(
            (m.resource.as_str(), m.namespaced),
            (resource, namespaced),
            "{kind}"
        );
    }
    let err = sim.resolve("example.com/v1", "Widget").await.unwrap_err();
    assert_eq!(err, TargetError::UnknownKind("Widget".into()));
    assert_eq!(
        err.to_string(),
        "the server doesn't have a resource type \"Widget\""
    );
    assert!(
        sim.resolve("apps/v2", "Deployment").await.is_err(),
        "version matters"
    );
}

#[tokio::test]
async fn crd_defines_a_new_kind() {
    let sim = sim();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}});
    let at = ObjectRef::new(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "",
        "widgets.example.com",
    );
    sim.apply(&at, &crd, &ApplyMode::Update, &OwnerChange::Keep)
        .await
        .unwrap();
    let m = sim.resolve("example.com/v1", "Widget").await.unwrap();
    assert_eq!(m.resource, "widgets");
    assert!(m.namespaced);
    assert!(sim.resolve("example.com/v2", "Widget").await.is_err());
}

#[tokio::test]
async fn metadata_generation_and_resource_version_like_the_api_server() {
    let sim = sim();
    let at = cm_at("c");
    let mut obj = cm("c", "1");
    obj["metadata"]["uid"] = json!("client-set");
    obj["status"] = json!({"ignored": true});
    let first = sim
        .apply(&at, &obj, &ApplyMode::Update, &owner("w1"))
        .await
        .unwrap();
    let meta = &first["metadata"];
    assert_ne!(meta["uid"], "client-set", "the server assigns the uid");
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["creationTimestamp"], "2023-11-14T22:13:20Z");
    assert!(first.get("status").is_none());
    // Same content: no write, same resourceVersion, but the call is counted.
    let same = sim
        .apply(&at, &obj, &ApplyMode::Update, &owner("w1"))
        .await
        .unwrap();
    assert_eq!(same["metadata"]["resourceVersion"], meta["resourceVersion"]);
    assert_eq!(sim.apply_count("", "v1", "configmaps", "default", "c"), 2);
    // Changed content: new generation; foreign labels and owners are kept.
    sim.apply(&at, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"other": "y"}}, "data": {"k": "1"}}),
        &ApplyMode::Update, &owner("w2")).await.unwrap();
    let changed = sim
        .apply(&at, &cm("c", "2"), &ApplyMode::Update, &owner("w1"))
        .await
        .unwrap();
    assert_eq!(changed["metadata"]["generation"], 2);
    assert_eq!(
        changed["metadata"]["labels"],
        json!({"app": "x", "other": "y"})
    );
    assert_eq!(
        changed["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // CreateOnly never modifies an existing object.
    let kept = sim
        .apply(
            &at,
            &cm("c", "3"),
            &ApplyMode::CreateOnly,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    assert_eq!(kept["data"]["k"], "2");
    // Removing an owner.
    let orphaned = sim
        .apply(
            &at,
            &cm("c", "2"),
            &ApplyMode::Update,
            &OwnerChange::Remove("w1".into()),
        )
        .await
        .unwrap();
    let refs = orphaned["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["uid"], "w2");
    assert!(
        refs[0].get("controller").is_none(),
        "plain owner, not controller"
    );
}

#[tokio::test]
async fn an_object_annotated_to_fail_is_refused_with_the_annotations_message() {
    let sim = sim();
    let mut bad = cm("bad", "1");
    bad["metadata"]["annotations"] = json!({SIMULATE_FAILURE_ANNOTATION: "image pull backoff"});
    let err = sim
        .apply(&cm_at("bad"), &bad, &ApplyMode::Update, &OwnerChange::Keep)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TargetError::Invalid("simulated failure (sim.workbus.io/fail): image pull backoff".into())
    );
    assert_eq!(sim.apply_count("", "v1", "configmaps", "default", "bad"), 0);
    // Without the annotation the same object applies.
    sim.apply(
        &cm_at("bad"),
        &cm("bad", "1"),
        &ApplyMode::Update,
        &OwnerChange::Keep,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn failure_injection_hits_only_the_named_manifest() {
    let sim = sim();
    sim.fail_manifest(
        "ConfigMap",
        "default",
        "bad",
        "admission webhook \"deny\" denied the request",
    );
    let err = sim
        .apply(
            &cm_at("bad"),
            &cm("bad", "1"),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TargetError::Invalid("admission webhook \"deny\" denied the request".into())
    );
    sim.apply(
        &cm_at("good"),
        &cm("good", "1"),
        &ApplyMode::Update,
        &OwnerChange::Keep,
    )
    .await
    .unwrap();
    assert_eq!(sim.apply_count("", "v1", "configmaps", "default", "bad"), 0);
    sim.clear_failures();
    sim.apply(
        &cm_at("bad"),
        &cm("bad", "1"),
        &ApplyMode::Update,
        &OwnerChange::Keep,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unavailable_api_and_missing_names() {
    let sim = sim();
    sim.set_unavailable(Some("connection refused"));
    assert!(matches!(
        sim.get(&cm_at("x")).await,
        Err(TargetError::Unavailable(_))
    ));
    assert!(matches!(
        sim.apply(
            &cm_at("x"),
            &cm("x", "1"),
            &ApplyMode::Update,
            &OwnerChange::Keep
        )
        .await,
        Err(TargetError::Unavailable(_))
    ));
    assert!(
        sim.resolve("v1", "ConfigMap").await.is_ok(),
        "discovery is cached"
    );
    sim.set_unavailable(None);
    let nameless = sim
        .apply(
            &cm_at(""),
            &json!({"kind": "ConfigMap"}),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await;
    assert!(matches!(nameless, Err(TargetError::Invalid(_))));
}

#[tokio::test]
async fn namespaces_can_be_required_and_their_deletion_cascades() {
    let sim = sim().require_namespaces(true);
    let err = sim
        .apply(
            &cm_at("c"),
            &cm("c", "1"),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TargetError::NotFound("namespaces \"default\" not found".into())
    );
    let ns = ObjectRef::new("", "v1", "namespaces", "", "default");
    let live = sim
        .apply(
            &ns,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    assert_eq!(live["status"]["phase"], "Active");
    sim.apply(
        &cm_at("c"),
        &cm("c", "1"),
        &ApplyMode::Update,
        &OwnerChange::Keep,
    )
    .await
    .unwrap();
    assert_eq!(sim.delete(&ns, None).await.unwrap(), DeleteResult::Gone);
    assert!(sim.is_empty(), "objects in a deleted namespace go with it");
}

#[tokio::test]
async fn delete_honours_uid_preconditions_and_finalizers() {
    let sim = sim();
    let mut obj = cm("held", "1");
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let live = sim
        .apply(&cm_at("held"), &obj, &ApplyMode::Update, &OwnerChange::Keep)
        .await
        .unwrap();
    let uid = live["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        sim.delete(&cm_at("held"), Some("other")).await.unwrap(),
        DeleteResult::UidMismatch
    );
    assert_eq!(
        sim.delete(&cm_at("held"), Some(&uid)).await.unwrap(),
        DeleteResult::Pending
    );
    let terminating = sim.get(&cm_at("held")).await.unwrap().unwrap();
    assert!(terminating["metadata"].get("deletionTimestamp").is_some());
    assert!(sim.finish_finalizers("", "v1", "configmaps", "default", "held"));
    assert!(sim.get(&cm_at("held")).await.unwrap().is_none());
    assert_eq!(
        sim.delete(&cm_at("held"), None).await.unwrap(),
        DeleteResult::Gone,
        "already gone"
    );
}

#[tokio::test]
async fn server_side_apply_records_the_field_manager_and_conflicts() {
    let sim = sim();
    let at = cm_at("ssa");
    let mode = |m: &str, force: bool| ApplyMode::ServerSideApply {
        field_manager: m.into(),
        force,
    };
    let live = sim
        .apply(
            &at,
            &cm("ssa", "1"),
            &mode("maestro-agent", false),
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    assert_eq!(
        live["metadata"]["managedFields"][0]["manager"],
        "maestro-agent"
    );
    let err = sim
        .apply(
            &at,
            &cm("ssa", "2"),
            &mode("someone-else", false),
            &OwnerChange::Keep,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::Conflict(m) if m.contains("maestro-agent")),
        "{err}"
    );
    let forced = sim
        .apply(
            &at,
            &cm("ssa", "2"),
            &mode("someone-else", true),
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    assert_eq!(forced["data"]["k"], "2");
}

#[tokio::test]
async fn workloads_progress_on_the_injected_clock() {
    let clock = SimClock::manual(0);
    let sim = SimulatedCluster::new(SimConfig {
        ready_after: Duration::from_secs(3),
        snapshot: None,
    })
    .with_clock(clock.clone());
    let ds = ObjectRef::new("apps", "v1", "daemonsets", "default", "agent");
    let job = ObjectRef::new("batch", "v1", "jobs", "default", "once");
    let pod = ObjectRef::new("", "v1", "pods", "default", "p");
    for (at, kind, api) in [
        (&ds, "DaemonSet", "apps/v1"),
        (&job, "Job", "batch/v1"),
        (&pod, "Pod", "v1"),
    ] {
        let obj =
            json!({"apiVersion": api, "kind": kind, "metadata": {"name": at.name}, "spec": {}});
        sim.apply(at, &obj, &ApplyMode::Update, &OwnerChange::Keep)
            .await
            .unwrap();
    }
    let status = |v: Option<Value>| v.unwrap()["status"].clone();
    assert_eq!(status(sim.get(&ds).await.unwrap())["numberReady"], 0);
    assert!(
        status(sim.get(&job).await.unwrap())
            .get("succeeded")
            .is_none()
    );
    assert_eq!(status(sim.get(&pod).await.unwrap())["phase"], "Pending");
    clock.advance(Duration::from_secs(3));
    assert_eq!(status(sim.get(&ds).await.unwrap())["numberAvailable"], 1);
    let job_status = status(sim.get(&job).await.unwrap());
    assert_eq!(job_status["succeeded"], 1);
    assert!(
        job_status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
    );
    assert_eq!(status(sim.get(&pod).await.unwrap())["phase"], "Running");
}

#[tokio::test]
async fn snapshot_survives_a_restart() {
    let file = std::env::temp_dir().join(format!(
        "workbus-sim-{}-{}.json",
        std::process::id(),
        uuid_like()
    ));
    let cfg = SimConfig {
        ready_after: Duration::from_secs(1),
        snapshot: Some(file.clone()),
    };
    let live = {
        let sim = SimulatedCluster::new(cfg.clone());
        sim.apply(
            &cm_at("kept"),
            &cm("kept", "1"),
            &ApplyMode::Update,
            &owner("w"),
        )
        .await
        .unwrap()
    };
    let reopened = SimulatedCluster::new(cfg);
    let again = reopened
        .get(&cm_at("kept"))
        .await
        .unwrap()
        .expect("reloaded");
    assert_eq!(again["metadata"]["uid"], live["metadata"]["uid"]);
    assert_eq!(
        reopened.apply_count("", "v1", "configmaps", "default", "kept"),
        1
    );
    // Malformed objects in a snapshot are dropped, never trusted.
    let odd = r#"{"objects": {"/configmaps/default/x": {"object": 5, "kind": "ConfigMap", "changed_at_ms": 0, "applies": 1},
        "/configmaps/default/y": {"object": {"metadata": {"generation": 9223372036854775807}, "data": {}}, "kind": "ConfigMap", "changed_at_ms": 0, "applies": 1}}, "counter": 3}"#;
    std::fs::write(&file, odd).unwrap();
    let odd = SimulatedCluster::new(SimConfig {
        ready_after: Duration::ZERO,
        snapshot: Some(file.clone()),
    });
    assert_eq!(odd.len(), 1);
    odd.apply(
        &cm_at("y"),
        &cm("y", "1"),
        &ApplyMode::Update,
        &OwnerChange::Keep,
    )
    .await
    .unwrap();
    odd.delete(&cm_at("y"), None).await.unwrap();
    // A corrupt snapshot starts an empty cluster rather than failing.
    std::fs::write(&file, b"{not json").unwrap();
    assert!(
        SimulatedCluster::new(SimConfig {
            ready_after: Duration::ZERO,
            snapshot: Some(file.clone())
        })
        .is_empty()
    );
    let _ = std::fs::remove_file(file);
}

/// A per-test suffix for temporary files (tests of one binary run in parallel).
fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
