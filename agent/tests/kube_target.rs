//! The Kubernetes target against the Kubernetes API test server
//! (`workbus-kube-apiserver`): every `Target` method over HTTP through kube-rs, then the
//! reconciler applying a work through it. The server runs its controllers before it
//! answers, so nothing here waits by time.

#[path = "conformance/server.rs"]
mod server;

use std::sync::Arc;
use std::time::Duration;

use server::TestServer;

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use workbus_agent::reconcile::{Reconciler, WorkState};
use workbus_agent::target::kube::KubeTarget;
use workbus_agent::target::{
    Access, AccessReview, ApplyMode, DeleteResult, ObjectRef, Owner, OwnerChange, Target,
    TargetError,
};
use workbus_kube_apiserver::{KubeApiServer, Readiness, RunningServer, ServerConfig};
use workbus_schemas::work::{ManifestWork, ManifestWorkSpec, ObjectMeta, Time};

struct Env {
    server: RunningServer,
    target: Arc<KubeTarget>,
    client: kube::Client,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let TestServer {
        server,
        target,
        client,
        dir,
    } = TestServer::start(Readiness::Immediate).await;
    Env {
        server,
        target: Arc::new(target),
        client,
        _dir: dir,
    }
}

impl Env {
    /// The raw API of a core v1 resource, for writes by "someone else".
    fn other(&self, resource: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
        let ar = kube::api::ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: kind.into(),
            plural: resource.into(),
        };
        Api::namespaced_with(self.client.clone(), namespace, &ar)
    }

    async fn live(&self, at: &ObjectRef) -> Value {
        self.target.get(at).await.expect("get").expect("exists")
    }
}

fn cm_at(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef::new("", "v1", "configmaps", namespace, name)
}

fn cm(namespace: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
           "data": data})
}

/// A live owner: the garbage collector removes references to owners that do not exist.
async fn owner(target: &KubeTarget, name: &str) -> Owner {
    Owner {
        name: name.into(),
        uid: applied_manifest_work(target, name).await,
    }
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates an AppliedManifestWork (the owner the agent records) and returns its uid.
async fn applied_manifest_work(target: &KubeTarget, name: &str) -> String {
    let at = ObjectRef::new(
        "work.open-cluster-management.io",
        "v1",
        "appliedmanifestworks",
        "",
        name,
    );
    let amw = json!({"apiVersion": "work.open-cluster-management.io/v1", "kind": "AppliedManifestWork",
                     "metadata": {"name": name},
                     "spec": {"hubHash": "h", "agentID": "a", "manifestWorkName": name}});
    let live = target
        .apply(&at, &amw, &ApplyMode::Update, &OwnerChange::Keep)
        .await
        .expect("amw");
    live["metadata"]["uid"].as_str().expect("uid").to_string()
}

#[tokio::test]
async fn resolve_knows_builtins_crds_and_refuses_unknown_kinds() {
    let e = env().await;
    let cm = e.target.resolve("v1", "ConfigMap").await.unwrap();
    assert_eq!(
        (cm.group.as_str(), cm.resource.as_str(), cm.namespaced),
        ("", "configmaps", true)
    );
    let ns = e.target.resolve("v1", "Namespace").await.unwrap();
    assert!(!ns.namespaced);
    let d = e.target.resolve("apps/v1", "Deployment").await.unwrap();
    assert_eq!(
        (d.group.as_str(), d.resource.as_str()),
        ("apps", "deployments")
    );
    let amw = e
        .target
        .resolve("work.open-cluster-management.io/v1", "AppliedManifestWork")
        .await
        .unwrap();
    assert_eq!(
        (amw.resource.as_str(), amw.namespaced),
        ("appliedmanifestworks", false)
    );

    let unknown = e.target.resolve("v1", "Nope").await.unwrap_err();
    assert_eq!(unknown, TargetError::UnknownKind("Nope".into()));
    assert_eq!(
        unknown.to_string(),
        "the server doesn't have a resource type \"Nope\""
    );
    let widget = e.target.resolve("example.com/v1", "Widget").await;
    assert_eq!(widget, Err(TargetError::UnknownKind("Widget".into())));
    // Not a name: refused without a request path built from it.
    assert!(matches!(
        e.target.resolve("../../x/v1", "Widget").await,
        Err(TargetError::UnknownKind(_))
    ));

    // A CRD registered after the first (failed) lookup: the miss reads discovery again.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let at = ObjectRef::new(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "",
        "widgets.example.com",
    );
    e.target
        .apply(&at, &crd, &ApplyMode::Update, &OwnerChange::Keep)
        .await
        .unwrap();
    let widget = e.target.resolve("example.com/v1", "Widget").await.unwrap();
    assert_eq!(
        (widget.resource.as_str(), widget.namespaced),
        ("widgets", true)
    );
}

#[tokio::test]
async fn update_preserves_foreign_metadata_and_writes_nothing_when_equal() {
    let e = env().await;
    let at = cm_at("default", "web");
    assert_eq!(e.target.get(&at).await.unwrap(), None);
    let want = cm("default", "web", json!({"a": "1"}));
    let u1 = owner(&e.target, "work-1").await;
    let add = OwnerChange::Add(u1.clone());
    let created = e
        .target
        .apply(&at, &want, &ApplyMode::Update, &add)
        .await
        .unwrap();
    assert_eq!(created["data"]["a"], "1");
    assert_eq!(owner_uids(&created), vec![u1.uid.clone()]);
    let other = e
        .target
        .apply(
            &cm_at("default", "other"),
            &cm("default", "other", json!({})),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    let foreign = other["metadata"]["uid"].as_str().unwrap().to_string();

    // Someone else adds their label, annotation, finalizer and owner.
    e.other("configmaps", "ConfigMap", "default")
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "labels": {"team": "x"}, "annotations": {"note": "y"},
                "finalizers": ["example.com/keep"],
                "ownerReferences": [
                    u1.reference(),
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": foreign}]}})),
        )
        .await
        .unwrap();
    let before = e.live(&at).await;

    // Same manifest: nothing written.
    let same = e
        .target
        .apply(&at, &want, &ApplyMode::Update, &add)
        .await
        .unwrap();
    assert_eq!(rv(&same), rv(&before), "an equal apply must not write");

    // Changed data: written, foreign metadata kept.
    let changed = e
        .target
        .apply(
            &at,
            &cm("default", "web", json!({"a": "2"})),
            &ApplyMode::Update,
            &add,
        )
        .await
        .unwrap();
    assert_ne!(rv(&changed), rv(&before));
    let live = e.live(&at).await;
    assert_eq!(live["data"], json!({"a": "2"}));
    assert_eq!(
        live["metadata"]["labels"],
        json!({"app": "web", "team": "x"})
    );
    assert_eq!(live["metadata"]["annotations"]["note"], "y");
    assert_eq!(live["metadata"]["finalizers"], json!(["example.com/keep"]));
    assert_eq!(owner_uids(&live), vec![u1.uid.clone(), foreign.clone()]);

    // remove_owner drops exactly that reference.
    e.target.remove_owner(&at, &u1.uid).await.unwrap();
    assert_eq!(owner_uids(&e.live(&at).await), vec![foreign]);
    // Removing one that is not there writes nothing.
    let before = rv(&e.live(&at).await);
    e.target.remove_owner(&at, &u1.uid).await.unwrap();
    assert_eq!(rv(&e.live(&at).await), before);
    e.server.shutdown().await;
}

#[tokio::test]
async fn create_only_never_modifies_but_merges_the_owner() {
    let e = env().await;
    let at = cm_at("default", "once");
    let u2 = owner(&e.target, "work-2").await;
    e.target
        .apply(
            &at,
            &cm("default", "once", json!({"a": "1"})),
            &ApplyMode::CreateOnly,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    let live = e
        .target
        .apply(
            &at,
            &cm("default", "once", json!({"a": "2"})),
            &ApplyMode::CreateOnly,
            &OwnerChange::Add(u2.clone()),
        )
        .await
        .unwrap();
    assert_eq!(live["data"], json!({"a": "1"}), "CreateOnly never modifies");
    assert_eq!(owner_uids(&live), vec![u2.uid.clone()]);
    let live = e.live(&at).await;
    assert_eq!(live["data"], json!({"a": "1"}));
    assert_eq!(owner_uids(&live), vec![u2.uid.clone()]);
    // Nothing to change: nothing written.
    let again = e
        .target
        .apply(
            &at,
            &cm("default", "once", json!({"a": "3"})),
            &ApplyMode::CreateOnly,
            &OwnerChange::Add(u2.clone()),
        )
        .await
        .unwrap();
    assert_eq!(rv(&again), rv(&live));
}

#[tokio::test]
async fn server_side_apply_records_the_manager_conflicts_and_forces() {
    let e = env().await;
    let at = cm_at("default", "ssa");
    let u3 = owner(&e.target, "work-3").await;
    let ssa = |manager: &str, force: bool| ApplyMode::ServerSideApply {
        field_manager: manager.into(),
        force,
    };
    let live = e
        .target
        .apply(
            &at,
            &cm("default", "ssa", json!({"a": "1"})),
            &ssa("work-agent", false),
            &OwnerChange::Add(u3.clone()),
        )
        .await
        .unwrap();
    let managers: Vec<(String, String)> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_string(),
                m["operation"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("work-agent".into(), "Apply".into())),
        "{managers:?}"
    );
    assert_eq!(owner_uids(&live), vec![u3.uid.clone()]);

    // Another manager wants a different value: a conflict, with the server's message.
    let conflict = e
        .target
        .apply(
            &at,
            &cm("default", "ssa", json!({"a": "2"})),
            &ssa("kubectl", false),
            &OwnerChange::Keep,
        )
        .await
        .unwrap_err();
    match &conflict {
        TargetError::Conflict(m) => assert!(
            m.contains("conflict with \"work-agent\"") && m.contains(".data.a"),
            "{m}"
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(e.live(&at).await["data"]["a"], "1");

    // With force the field is taken over.
    let forced = e
        .target
        .apply(
            &at,
            &cm("default", "ssa", json!({"a": "2"})),
            &ssa("kubectl", true),
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    assert_eq!(forced["data"]["a"], "2");
    assert_eq!(
        owner_uids(&forced),
        vec![u3.uid.clone()],
        "owner kept by a later apply"
    );
}

#[tokio::test]
async fn delete_honours_uid_and_finalizers() {
    let e = env().await;
    let at = cm_at("default", "gone");
    let live = e
        .target
        .apply(
            &at,
            &cm("default", "gone", json!({})),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    let uid = live["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        e.target.delete(&at, Some("someone-else")).await.unwrap(),
        DeleteResult::UidMismatch
    );
    assert!(e.target.get(&at).await.unwrap().is_some());
    assert_eq!(
        e.target.delete(&at, Some(&uid)).await.unwrap(),
        DeleteResult::Gone
    );
    assert_eq!(e.target.get(&at).await.unwrap(), None);
    assert_eq!(
        e.target.delete(&at, None).await.unwrap(),
        DeleteResult::Gone
    );

    // Held by a finalizer: pending until it is removed.
    let held = cm_at("default", "held");
    let mut object = cm("default", "held", json!({}));
    object["metadata"]["finalizers"] = json!(["example.com/hold", "example.com/other"]);
    let live = e
        .target
        .apply(&held, &object, &ApplyMode::Update, &OwnerChange::Keep)
        .await
        .unwrap();
    let uid = live["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        e.target.delete(&held, Some(&uid)).await.unwrap(),
        DeleteResult::Pending
    );
    assert!(e.live(&held).await["metadata"]["deletionTimestamp"].is_string());
    e.target
        .remove_finalizer(&held, "example.com/hold")
        .await
        .unwrap();
    assert_eq!(
        e.live(&held).await["metadata"]["finalizers"],
        json!(["example.com/other"])
    );
    // Absent finalizers are not an error.
    e.target.remove_finalizer(&held, "nope").await.unwrap();
    e.target
        .remove_finalizer(&held, "example.com/other")
        .await
        .unwrap();
    assert_eq!(e.target.get(&held).await.unwrap(), None);
    e.target
        .remove_finalizer(&held, "example.com/other")
        .await
        .unwrap();
}

#[tokio::test]
async fn errors_carry_the_api_servers_message() {
    let e = env().await;
    let at = cm_at("no-such-ns", "x");
    let err = e
        .target
        .apply(
            &at,
            &cm("no-such-ns", "x", json!({})),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TargetError::NotFound("namespaces \"no-such-ns\" not found".into())
    );
    let bad = e
        .target
        .apply(
            &cm_at("default", "Bad_Name"),
            &cm("default", "Bad_Name", json!({})),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, TargetError::Invalid(m) if m.contains("Bad_Name")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn list_and_update_status() {
    let e = env().await;
    e.target
        .apply(
            &ObjectRef::new("", "v1", "namespaces", "", "team"),
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    for (ns, name) in [("default", "l1"), ("team", "l2")] {
        e.target
            .apply(
                &cm_at(ns, name),
                &cm(ns, name, json!({})),
                &ApplyMode::Update,
                &OwnerChange::Keep,
            )
            .await
            .unwrap();
    }
    let mapping = e.target.resolve("v1", "ConfigMap").await.unwrap();
    let listed = e.target.list(&mapping).await.unwrap();
    let names: Vec<(&str, &str)> = listed
        .iter()
        .filter(|o| o["metadata"]["labels"]["app"] == "web")
        .map(|o| {
            (
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, vec![("default", "l1"), ("team", "l2")]);
    assert!(
        listed
            .iter()
            .all(|o| o["kind"] == "ConfigMap" && o["apiVersion"] == "v1")
    );

    // The status subresource of an AppliedManifestWork: status only.
    let uid = applied_manifest_work(&e.target, "h-work").await;
    let at = ObjectRef::new(
        "work.open-cluster-management.io",
        "v1",
        "appliedmanifestworks",
        "",
        "h-work",
    );
    let status = json!({"appliedResources": [{"group": "", "version": "v1", "resource": "configmaps",
        "namespace": "default", "name": "l1", "uid": "x"}]});
    let live = e.target.update_status(&at, &status).await.unwrap();
    assert_eq!(live["status"], status);
    assert_eq!(live["metadata"]["uid"], uid.as_str());
    assert_eq!(live["spec"]["manifestWorkName"], "h-work");
    let stored = e
        .server
        .object(
            "work.open-cluster-management.io/v1",
            "AppliedManifestWork",
            "",
            "h-work",
        )
        .unwrap();
    assert_eq!(stored["status"], status);
    // Equal status: nothing written.
    let again = e.target.update_status(&at, &status).await.unwrap();
    assert_eq!(rv(&again), rv(&live));
    let missing = ObjectRef {
        name: "nope".into(),
        ..at
    };
    assert!(matches!(
        e.target.update_status(&missing, &status).await,
        Err(TargetError::NotFound(_))
    ));
    assert_eq!(
        e.target
            .list(
                &e.target
                    .resolve("work.open-cluster-management.io/v1", "AppliedManifestWork")
                    .await
                    .unwrap()
            )
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn review_access_follows_rbac() {
    let e = env().await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}});
    e.target
        .apply(
            &ObjectRef::new("", "v1", "namespaces", "", "apps"),
            &ns,
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    let rbac = "rbac.authorization.k8s.io";
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "deployer", "namespace": "apps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "deployer", "namespace": "apps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "apps"}]});
    e.target
        .apply(
            &ObjectRef::new(rbac, "v1", "roles", "apps", "deployer"),
            &role,
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    e.target
        .apply(
            &ObjectRef::new(rbac, "v1", "rolebindings", "apps", "deployer"),
            &binding,
            &ApplyMode::Update,
            &OwnerChange::Keep,
        )
        .await
        .unwrap();
    let review = |verb: &str, namespace: &str| AccessReview {
        user: "system:serviceaccount:apps:deployer".into(),
        groups: vec![
            "system:serviceaccounts".into(),
            "system:serviceaccounts:apps".into(),
        ],
        verb: verb.into(),
        group: String::new(),
        resource: "configmaps".into(),
        namespace: namespace.into(),
        name: "web".into(),
    };
    assert_eq!(
        e.target
            .review_access(&review("create", "apps"))
            .await
            .unwrap(),
        Access::Allowed
    );
    assert!(matches!(
        e.target
            .review_access(&review("delete", "apps"))
            .await
            .unwrap(),
        Access::Denied(_)
    ));
    assert!(matches!(
        e.target
            .review_access(&review("create", "default"))
            .await
            .unwrap(),
        Access::Denied(_)
    ));
}

#[tokio::test]
async fn watch_sends_changed_objects_until_dropped() {
    let e = env().await;
    let mapping = e.target.resolve("v1", "ConfigMap").await.unwrap();
    let mut changes = e.target.watch(&mapping, "default").await.unwrap().unwrap();
    let at = cm_at("default", "watched");
    // The watch may open after the first write: write until a change arrives (each
    // write is a real change, so a started watch sees the next one).
    let mut seen = None;
    for i in 0..50 {
        e.target
            .apply(
                &at,
                &cm("default", "watched", json!({"n": i.to_string()})),
                &ApplyMode::Update,
                &OwnerChange::Keep,
            )
            .await
            .unwrap();
        if let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(200), changes.recv()).await
        {
            seen = Some(r);
            break;
        }
    }
    assert_eq!(seen, Some(at.clone()));
    assert_eq!(e.server.watch_count(), 1);
    drop(changes);
    // Dropping the receiver ends the watch request: the server sees the closed
    // connection when it next has an event to send.
    let mut closed = false;
    for i in 0..50 {
        e.target
            .apply(
                &at,
                &cm("default", "watched", json!({"n": format!("after-{i}")})),
                &ApplyMode::Update,
                &OwnerChange::Keep,
            )
            .await
            .unwrap();
        if e.server
            .wait_until(Duration::from_millis(100), |c| c.store.watcher_count() == 0)
            .await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "the watch request ends with its receiver");
}

#[tokio::test]
async fn reconciler_applies_a_work_through_the_kube_target() {
    let e = env().await;
    let spec: ManifestWorkSpec = serde_json::from_value(json!({"workload": {"manifests": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "web"}, "data": {"k": "v"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "web"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
    ]}}))
    .unwrap();
    let work = ManifestWork::new(
        ObjectMeta {
            uid: "4f6c7a3e-0000-4000-8000-000000000001".into(),
            name: "web-app".into(),
            namespace: "cluster1".into(),
            generation: 1,
            ..ObjectMeta::default()
        },
        spec,
    );
    let r = Reconciler::new(e.target.clone());
    let out = r
        .apply(&work, &WorkState::default(), Time::new(chrono::Utc::now()))
        .await;
    let manifests = &out.status.resource_status.manifests;
    assert_eq!(manifests.len(), 3);
    for m in manifests {
        for ty in ["Applied", "Available"] {
            let c = m
                .conditions
                .iter()
                .find(|c| c.type_ == ty)
                .unwrap_or_else(|| panic!("{ty} on {:?}", m.resource_meta));
            assert_eq!(c.status, "True", "{ty} on {:?}: {c:?}", m.resource_meta);
        }
    }
    for ty in ["Applied", "Available"] {
        let c = out
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == ty)
            .unwrap();
        assert_eq!(c.status, "True", "{c:?}");
    }
    assert_eq!(out.applied.len(), 3);
    // The reconciler made the work's AppliedManifestWork first; it owns what was applied
    // (or the garbage collector would remove it).
    let uid = out.applied_work_uid.clone();
    let amws = e.server.objects(
        "work.open-cluster-management.io/v1",
        "AppliedManifestWork",
        None,
    );
    assert!(
        amws.iter().any(|a| a["metadata"]["uid"] == uid.as_str()),
        "the AppliedManifestWork exists: {amws:?}"
    );
    let deploy = e
        .server
        .object("apps/v1", "Deployment", "web", "web")
        .expect("deployment");
    assert_eq!(owner_uids(&deploy), vec![uid.clone()]);
    let cfg = e.server.object("v1", "ConfigMap", "web", "cfg").unwrap();
    assert_eq!(cfg["data"]["k"], "v");

    // The work's deletion removes what it applied.
    let state = out.clone().into_state();
    let mut outcome = r.cleanup(&work, &state).await;
    for _ in 0..10 {
        if outcome == workbus_agent::reconcile::CleanupOutcome::Done {
            break;
        }
        outcome = r.cleanup(&work, &state).await;
    }
    assert_eq!(outcome, workbus_agent::reconcile::CleanupOutcome::Done);
    assert!(
        e.server
            .object("apps/v1", "Deployment", "web", "web")
            .is_none()
    );
    assert!(e.server.object("v1", "Namespace", "", "web").is_none());
    assert!(
        e.server
            .objects(
                "work.open-cluster-management.io/v1",
                "AppliedManifestWork",
                None
            )
            .is_empty(),
        "the AppliedManifestWork goes with the work"
    );
}

/// Runs the agent binary with `args` until it prints a line containing `needle` or
/// exits; returns (the line or all output, exit code if it exited).
async fn agent_binary(args: &[&str], needle: &str) -> (String, Option<i32>) {
    use tokio::io::AsyncBufReadExt;
    let data = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_workbus-agent"))
        .arg("--spoke-cluster-name=edge-kube")
        // Nothing listens there: the agent keeps reconnecting, which is fine here.
        .arg("--broker=127.0.0.1:1")
        .arg(format!("--data-dir={}", data.path().display()))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", data.path())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("agent starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(needle) {
                return Some(line);
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        None
    })
    .await
    .ok()
    .flatten();
    let code = match &found {
        Some(_) => None,
        None => tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|s| s.code()),
    };
    // Stops a still-running agent (kill_on_drop sends SIGKILL to this child only).
    drop(child);
    (found.unwrap_or(seen), code)
}

#[tokio::test]
async fn the_binary_starts_on_a_kubeconfig_and_says_so() {
    let server = KubeApiServer::start(ServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc.yaml");
    server.write_kubeconfig(&kubeconfig, "default").unwrap();
    let (banner, _) = agent_binary(
        &[
            "--target=kube",
            &format!("--kubeconfig={}", kubeconfig.display()),
        ],
        "target: ",
    )
    .await;
    assert!(
        banner.contains(&format!("target: kubernetes at {}", server.url())),
        "{banner}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_binary_exits_2_without_a_usable_cluster() {
    // A named kubeconfig that does not exist: the message names it.
    let (out, code) = agent_binary(
        &["--target=kube", "--kubeconfig=/nonexistent/kc.yaml"],
        "target: ",
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("/nonexistent/kc.yaml"), "{out}");

    // Nothing to infer from: says what was tried.
    let (out, code) = agent_binary(&["--target=kube"], "target: ").await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("no Kubernetes configuration found")
            && out.contains("KUBECONFIG")
            && out.contains("in-cluster"),
        "{out}"
    );

    // A cluster that does not answer.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc.yaml");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let (out, code) = agent_binary(
        &[
            "--target=kube",
            &format!("--kubeconfig={}", kubeconfig.display()),
        ],
        "target: ",
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unreachable"), "{out}");
}
