//! Deletion: answers, preconditions, finalizers and deletionTimestamp, propagation
//! policies and the garbage collector (background, foreground, orphan, dangling
//! owners), deletecollection.

mod common;

use common::*;
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn owned_by(name: &str, owner: &Value, block: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "ownerReferences": [{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block}]}})
}

fn exists(s: &Server, path: &str) -> bool {
    match s.get(path).0 {
        200 => true,
        404 => false,
        other => panic!("{path}: {other}"),
    }
}

#[test]
fn delete_answers_and_preconditions() {
    let s = Server::start();
    let a = s.configmap("default", cm("a"));
    let (code, pre) = s.delete(
        &format!("{CMS}/a"),
        Some(&json!({"preconditions": {"uid": "nope"}})),
    );
    assert_eq!(code, 409);
    assert_eq!(
        pre["message"],
        format!(
            "Operation cannot be fulfilled on configmaps \"a\": Precondition failed: UID in precondition: nope, UID in object meta: {}",
            a["metadata"]["uid"].as_str().unwrap()
        )
    );
    let (code, pre) = s.delete(
        &format!("{CMS}/a"),
        Some(&json!({"preconditions": {"resourceVersion": "1"}})),
    );
    assert_eq!(code, 409);
    assert!(
        pre["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: ResourceVersion in precondition: 1")
    );
    let (code, bad) = s.delete(
        &format!("{CMS}/a"),
        Some(&json!({"propagationPolicy": "Sideways"})),
    );
    assert_eq!(code, 422);
    assert_eq!(
        bad["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\""
    );
    let (code, both) = s.delete(
        &format!("{CMS}/a"),
        Some(&json!({"propagationPolicy": "Orphan", "orphanDependents": true})),
    );
    assert_eq!(code, 422, "{both}");
    let (code, gone) = s.delete(
        &format!("{CMS}/a"),
        Some(&json!({"preconditions": {"uid": a["metadata"]["uid"]}})),
    );
    assert_eq!(code, 200);
    assert_eq!(gone["kind"], "Status");
    assert_eq!(gone["status"], "Success");
    assert_eq!(
        gone["details"],
        json!({"name": "a", "kind": "configmaps", "uid": a["metadata"]["uid"]})
    );
    let (code, again) = s.delete(&format!("{CMS}/a"), None);
    assert_eq!((code, again["reason"].as_str()), (404, Some("NotFound")));

    // Pods answer with the deleted object.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}});
    assert_eq!(s.post("/api/v1/namespaces/default/pods", &pod).0, 201);
    let (code, deleted_pod) = s.delete("/api/v1/namespaces/default/pods/p", None);
    assert_eq!((code, deleted_pod["kind"].as_str()), (200, Some("Pod")));

    // Query-parameter options and deletecollection by label.
    for (n, l) in [("x1", "a"), ("x2", "a"), ("x3", "b")] {
        s.configmap(
            "default",
            json!({"metadata": {"name": n, "labels": {"set": l}}}),
        );
    }
    let (code, list) = s.delete(&format!("{CMS}?labelSelector=set%3Da"), None);
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(!exists(&s, &format!("{CMS}/x1")) && exists(&s, &format!("{CMS}/x3")));
}

#[test]
fn finalizers_hold_objects_being_deleted() {
    let s = Server::start();
    let mut d = deployment("held", 1);
    d["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let path = "/apis/apps/v1/namespaces/default/deployments/held";
    assert_eq!(
        s.post("/apis/apps/v1/namespaces/default/deployments", &d).0,
        201
    );
    let mut w = s.watch("/apis/apps/v1/namespaces/default/deployments?watch=true&fieldSelector=metadata.name%3Dheld&timeoutSeconds=5");
    assert_eq!(w.take(1), [("ADDED".to_string(), "held".to_string())]);
    let (code, deleting) = s.delete(path, None);
    assert_eq!(code, 200);
    assert_eq!(deleting["kind"], "Deployment");
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(
        deleting["metadata"]["generation"], 2,
        "the first deletion bumps the generation"
    );
    let (code, again) = s.delete(path, None);
    assert_eq!(
        (code, again["metadata"]["generation"].as_i64()),
        (200, Some(2))
    );
    let (code, more) = s.patch(
        path,
        MERGE,
        r#"{"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}}"#,
    );
    assert_eq!(code, 422);
    assert_eq!(
        more["message"],
        "Deployment.apps \"held\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/new\"}"
    );
    let (code, last) = s.patch(
        path,
        JSON_PATCH,
        r#"[{"op": "remove", "path": "/metadata/finalizers"}]"#,
    );
    assert_eq!(code, 200, "{last}");
    assert!(!exists(&s, path));
    let mut events = Vec::new();
    while let Some(e) = w.next() {
        events.push(e["type"].as_str().unwrap().to_string());
        if e["type"] == "DELETED" || events.len() > 10 {
            break;
        }
    }
    assert_eq!(
        events.last().map(String::as_str),
        Some("DELETED"),
        "{events:?}"
    );
    assert!(events.iter().filter(|e| *e == "MODIFIED").count() >= 1);
}

#[test]
fn background_collection_of_dependents() {
    let s = Server::start();
    let owner = s.configmap("default", cm("owner"));
    let other = s.configmap("default", cm("other"));
    s.configmap("default", owned_by("dep", &owner, false));
    let mut two = owned_by("two-owners", &owner, false);
    let other_ref = owned_by("x", &other, false)["metadata"]["ownerReferences"][0].clone();
    two["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(other_ref);
    s.configmap("default", two);
    let (code, _) = s.delete(&format!("{CMS}/owner"), None);
    assert_eq!(code, 200);
    assert!(!exists(&s, &format!("{CMS}/owner")));
    assert!(
        !exists(&s, &format!("{CMS}/dep")),
        "a dependent without owners is collected"
    );
    let (_, survivor) = s.get(&format!("{CMS}/two-owners"));
    let refs = survivor["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["name"], "other");
    let remaining_owned =
        survivor["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:ownerReferences"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("k:"))
            .count();
    assert_eq!(
        remaining_owned, 1,
        "the removed reference left the creator's fields: {survivor}"
    );

    // An owner that does not exist (or is another object of that name) means garbage.
    let mut dangling = owned_by("dangling", &other, false);
    dangling["metadata"]["ownerReferences"][0]["uid"] =
        json!("11111111-2222-3333-4444-555555555555");
    let (code, created) = s.post(CMS, &dangling);
    assert_eq!(code, 201, "{created}");
    assert!(!exists(&s, &format!("{CMS}/dangling")));
    // Unresolvable references are left alone: an unknown kind, a namespaced owner of a
    // cluster-scoped object.
    let mut unknown = cm("unknown-kind");
    unknown["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "nope.example.com/v1", "kind": "Nope", "name": "n", "uid": "u"}]);
    assert_eq!(s.post(CMS, &unknown).0, 201);
    assert!(exists(&s, &format!("{CMS}/unknown-kind")));
    let ns_owned = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cluster-dep",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": other["metadata"]["uid"]}]}});
    assert_eq!(s.post("/api/v1/namespaces", &ns_owned).0, 201);
    assert!(exists(&s, "/api/v1/namespaces/cluster-dep"));
}

#[test]
fn foreground_waits_for_blocking_dependents() {
    let s = Server::start();
    let owner = s.configmap("default", cm("owner"));
    let mut blocking = owned_by("blocking", &owner, true);
    blocking["metadata"]["finalizers"] = json!(["example.com/slow"]);
    s.configmap("default", blocking);
    s.configmap("default", owned_by("free", &owner, false));
    let (code, answer) = s.delete(
        &format!("{CMS}/owner"),
        Some(&json!({"propagationPolicy": "Foreground"})),
    );
    assert_eq!(code, 200);
    assert_eq!(
        answer["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    let (_, owner_now) = s.get(&format!("{CMS}/owner"));
    assert!(
        owner_now["metadata"]["deletionTimestamp"].is_string(),
        "held by its blocking dependent"
    );
    assert!(
        !exists(&s, &format!("{CMS}/free")),
        "every dependent is deleted"
    );
    let (_, blocking_now) = s.get(&format!("{CMS}/blocking"));
    assert!(blocking_now["metadata"]["deletionTimestamp"].is_string());
    s.patch(
        &format!("{CMS}/blocking"),
        MERGE,
        r#"{"metadata": {"finalizers": null}}"#,
    );
    assert!(!exists(&s, &format!("{CMS}/blocking")));
    assert!(
        !exists(&s, &format!("{CMS}/owner")),
        "released once nothing blocks"
    );

    // Three levels: the middle one is deleted in foreground too.
    let a = s.configmap("default", cm("a"));
    let b = s.configmap("default", owned_by("b", &a, true));
    let mut c = owned_by("c", &b, true);
    c["metadata"]["finalizers"] = json!(["example.com/slow"]);
    s.configmap("default", c);
    s.delete(
        &format!("{CMS}/a"),
        Some(&json!({"propagationPolicy": "Foreground"})),
    );
    let (_, b_now) = s.get(&format!("{CMS}/b"));
    assert_eq!(
        b_now["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert!(exists(&s, &format!("{CMS}/a")));
    s.patch(
        &format!("{CMS}/c"),
        MERGE,
        r#"{"metadata": {"finalizers": null}}"#,
    );
    for n in ["a", "b", "c"] {
        assert!(!exists(&s, &format!("{CMS}/{n}")), "{n}");
    }
}

#[test]
fn orphan_keeps_dependents() {
    let s = Server::start();
    let owner = s.configmap("default", cm("owner"));
    s.configmap("default", owned_by("child", &owner, true));
    let (code, answer) = s.delete(&format!("{CMS}/owner?propagationPolicy=Orphan"), None);
    assert_eq!(code, 200);
    assert_eq!(answer["metadata"]["finalizers"], json!(["orphan"]));
    assert!(!exists(&s, &format!("{CMS}/owner")));
    let (_, child) = s.get(&format!("{CMS}/child"));
    assert!(
        child["metadata"].get("ownerReferences").is_none(),
        "{child}"
    );
    // The older orphanDependents=false answers 202.
    let o2 = s.configmap("default", cm("owner2"));
    s.configmap("default", owned_by("child2", &o2, false));
    let mut held = cm("held2");
    held["metadata"]["finalizers"] = json!(["example.com/x"]);
    s.configmap("default", held);
    let (code, _) = s.delete(
        &format!("{CMS}/held2"),
        Some(&json!({"orphanDependents": false})),
    );
    assert_eq!(code, 202);
}

/// How a work agent uses ownership: a cluster-scoped AppliedManifestWork owns
/// namespaced and cluster-scoped objects (plain owner, not controller); an object owned
/// by two works outlives one of them.
#[test]
fn applied_manifest_work_owns_across_scopes() {
    let s = Server::start();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "appliedmanifestworks.work.open-cluster-management.io"},
        "spec": {"group": "work.open-cluster-management.io", "scope": "Cluster",
            "names": {"plural": "appliedmanifestworks", "kind": "AppliedManifestWork", "listKind": "AppliedManifestWorkList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    assert_eq!(
        s.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd
        )
        .0,
        201
    );
    let amws = "/apis/work.open-cluster-management.io/v1/appliedmanifestworks";
    let amw = |name: &str| {
        let (code, a) = s.post(amws, &json!({"apiVersion": "work.open-cluster-management.io/v1", "kind": "AppliedManifestWork",
            "metadata": {"name": name, "finalizers": ["cluster.open-cluster-management.io/applied-manifest-work-cleanup"]},
            "spec": {"manifestWorkName": name}}));
        assert_eq!(code, 201, "{a}");
        a
    };
    let (w1, w2) = (amw("hub-w1"), amw("hub-w2"));
    let owner = |a: &Value| {
        json!({"apiVersion": "work.open-cluster-management.io/v1", "kind": "AppliedManifestWork",
                                   "name": a["metadata"]["name"], "uid": a["metadata"]["uid"]})
    };
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app", "ownerReferences": [owner(&w1)]}});
    assert_eq!(s.post("/api/v1/namespaces", &ns).0, 201);
    let mut only = cm("only-w1");
    only["metadata"]["ownerReferences"] = json!([owner(&w1)]);
    s.configmap("default", only);
    let mut shared = cm("shared");
    shared["metadata"]["ownerReferences"] = json!([owner(&w1), owner(&w2)]);
    s.configmap("default", shared);

    // The agent's finalizer holds the work; its objects stay meanwhile.
    let (code, deleting) = s.delete(&format!("{amws}/hub-w1"), None);
    assert_eq!(
        (code, deleting["metadata"]["deletionTimestamp"].is_string()),
        (200, true)
    );
    assert!(exists(&s, &format!("{CMS}/only-w1")));
    // The agent removes its finalizer: the work goes, the garbage collector follows.
    s.patch(
        &format!("{amws}/hub-w1"),
        MERGE,
        r#"{"metadata": {"finalizers": null}}"#,
    );
    assert!(!exists(&s, &format!("{amws}/hub-w1")));
    assert!(!exists(&s, &format!("{CMS}/only-w1")));
    assert!(
        !exists(&s, "/api/v1/namespaces/app"),
        "cluster-scoped dependents too"
    );
    let (_, survivor) = s.get(&format!("{CMS}/shared"));
    assert_eq!(survivor["metadata"]["ownerReferences"], json!([owner(&w2)]));
    ns["metadata"]["name"] = json!("late");
    ns["metadata"]["ownerReferences"] = json!([owner(&w1)]);
    assert_eq!(s.post("/api/v1/namespaces", &ns).0, 201);
    assert!(
        !exists(&s, "/api/v1/namespaces/late"),
        "an owner that is gone makes garbage at once"
    );
}
