//! CRDs and custom resources, the status simulator and its hooks, RBAC reviews, and the
//! in-process API (objects, waits).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use workbus_kube_apiserver::{Phase, Readiness, ServerConfig};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

fn widget(name: &str, size: i64) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}})
}

#[test]
fn crds_are_established_then_served() {
    let s = Server::start();
    assert_eq!(s.get(WIDGETS).0, 404, "not served before its CRD");
    let (code, created) = s.post(CRDS, &widget_crd());
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["metadata"]["finalizers"],
        json!(["customresourcecleanup.apiextensions.k8s.io"])
    );
    assert!(
        created["status"].get("conditions").is_none(),
        "the answer predates the establishing controller"
    );
    assert_eq!(created["spec"]["names"]["listKind"], "WidgetList");
    let (_, crd) = s.get(&format!("{CRDS}/widgets.example.com"));
    let conds: Vec<(&str, &str)> = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(conds, [("NamesAccepted", "True"), ("Established", "True")]);
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    let (_, group) = s.get("/apis/example.com");
    assert_eq!(group["preferredVersion"]["version"], "v1");
    let (_, list) = s.get("/apis/example.com/v1");
    let names: Vec<&str> = pluck(&list, "resources", "/name");
    assert_eq!(names, ["widgets", "widgets/status"]);

    let (code, bad_name) = s.post(CRDS, &json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "wrong"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "gadgets", "kind": "Gadget"},
        "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}}));
    assert_eq!(code, 422);
    assert!(bad_name["message"].as_str().unwrap().contains(
        "metadata.name: Invalid value: \"wrong\": must be spec.names.plural+\".\"+spec.group"
    ));
}

#[test]
fn custom_resources_are_validated_pruned_defaulted_and_versioned() {
    let s = Server::start();
    s.post(CRDS, &widget_crd());
    let mut w = widget("w", 3);
    w["spec"]["junk"] = json!(true);
    w["status"] = json!({"ready": true});
    w["top"] = json!("level");
    let (code, created) = s.post(WIDGETS, &w);
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"], json!({"size": 3}), "unknown fields pruned");
    assert!(created.get("top").is_none());
    assert!(
        created.get("status").is_none(),
        "status is not written on create"
    );
    assert_eq!(created["metadata"]["generation"], 1);
    let f = &created["metadata"]["managedFields"][0]["fieldsV1"];
    assert!(
        f["f:spec"]["."].is_object(),
        "an Update on a custom resource owns the new struct: {f}"
    );
    let (_, defaulted) = s.post(WIDGETS, &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "d"}, "spec": {}}));
    assert_eq!(defaulted["spec"]["size"], 1);
    let (code, invalid) = s.post(WIDGETS, &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "i"}, "spec": {"size": "big"}}));
    assert_eq!(code, 422);
    assert_eq!(
        invalid["message"],
        "Widget.example.com \"i\" is invalid: spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
    );
    // Generation: labels no, spec yes, status no.
    let path = format!("{WIDGETS}/w");
    let (_, l) = s.patch(&path, MERGE, r#"{"metadata": {"labels": {"a": "b"}}}"#);
    assert_eq!(l["metadata"]["generation"], 1);
    let (_, g) = s.patch(&path, MERGE, r#"{"spec": {"size": 4}}"#);
    assert_eq!(g["metadata"]["generation"], 2);
    let (code, st) = s.patch(
        &format!("{path}/status"),
        MERGE,
        r#"{"status": {"ready": true}}"#,
    );
    assert_eq!(
        (code, st["metadata"]["generation"].as_i64()),
        (200, Some(2))
    );
    assert_eq!(st["status"], json!({"ready": true}));
    // The same object through another served version.
    let (code, beta) = s.get("/apis/example.com/v1beta1/namespaces/default/widgets/w");
    assert_eq!(
        (code, beta["apiVersion"].as_str()),
        (200, Some("example.com/v1beta1"))
    );
    let (_, list) = s.get(WIDGETS);
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(
        list["items"][0]["kind"], "Widget",
        "unstructured list items keep their kind"
    );
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let (_, _, table) = s.raw("GET", WIDGETS, None, Some(accept), None);
    let t: Value = serde_json::from_str(&table).unwrap();
    let cols: Vec<&str> = pluck(&t, "columnDefinitions", "/name");
    assert_eq!(cols, ["Name", "Size"]);
    assert_eq!(t["rows"][1]["cells"], json!(["w", 4]));
}

#[test]
fn deleting_a_crd_deletes_its_resources_first() {
    let s = Server::start();
    s.post(CRDS, &widget_crd());
    s.post(WIDGETS, &widget("a", 1));
    let mut held = widget("held", 1);
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.post(WIDGETS, &held);
    let (code, crd) = s.delete(&format!("{CRDS}/widgets.example.com"), None);
    assert_eq!(code, 200);
    assert!(crd["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(s.get(&format!("{WIDGETS}/a")).0, 404);
    let (code, refused) = s.post(WIDGETS, &widget("late", 1));
    assert_eq!(code, 405);
    assert_eq!(
        refused["message"],
        "create not allowed while custom resource definition is terminating"
    );
    s.patch(
        &format!("{WIDGETS}/held"),
        MERGE,
        r#"{"metadata": {"finalizers": null}}"#,
    );
    assert_eq!(s.get(&format!("{CRDS}/widgets.example.com")).0, 404);
    assert_eq!(s.get(WIDGETS).0, 404, "no longer served");
    assert_eq!(s.get("/apis/example.com").0, 404);
}

#[test]
fn the_simulator_moves_workloads_when_told() {
    let s = Server::start_with(ServerConfig {
        readiness: Readiness::Manual,
        nodes: 3,
        ..Default::default()
    });
    let deploy = "/apis/apps/v1/namespaces/default/deployments";
    s.post(deploy, &deployment("web", 2));
    let (_, d) = s.get(&format!("{deploy}/web"));
    assert_eq!(d["status"]["observedGeneration"], 1);
    assert_eq!(d["status"]["unavailableReplicas"], 2);
    assert_eq!(
        d["status"]["conditions"][0]["reason"],
        "MinimumReplicasUnavailable"
    );
    let manager = &d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subresource"] == "status")
        .unwrap()["manager"];
    assert_eq!(manager, "kube-controller-manager");
    assert!(
        s.api()
            .simulator()
            .set_phase("apps/v1", "Deployment", "default", "web", Phase::Ready)
    );
    let (_, d) = s.get(&format!("{deploy}/web"));
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(d["status"]["availableReplicas"], 2);
    assert_eq!(
        d["status"]["conditions"][0]["reason"],
        "MinimumReplicasAvailable"
    );
    let available_since = d["status"]["conditions"][0]["lastTransitionTime"].clone();
    // A spec change: a new observedGeneration, the condition keeps its transition time.
    s.patch(
        &format!("{deploy}/web"),
        MERGE,
        r#"{"spec": {"replicas": 3}}"#,
    );
    let (_, d) = s.get(&format!("{deploy}/web"));
    assert_eq!(
        (
            d["status"]["observedGeneration"].as_i64(),
            d["status"]["readyReplicas"].as_i64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(
        d["status"]["conditions"][0]["lastTransitionTime"],
        available_since
    );
    assert!(s.api().simulator().set_phase(
        "apps/v1",
        "Deployment",
        "default",
        "web",
        Phase::Failed
    ));
    let (_, d) = s.get(&format!("{deploy}/web"));
    assert_eq!(
        d["status"]["conditions"][1]["reason"],
        "ProgressDeadlineExceeded"
    );
    assert!(!s.api().simulator().set_phase(
        "apps/v1",
        "Deployment",
        "default",
        "none",
        Phase::Ready
    ));
    // The controller's revision annotation, written through /status: no new generation.
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let (_, d) = s.patch(
        &format!("{deploy}/web"),
        STRATEGIC,
        r#"{"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}"#,
    );
    assert_eq!(d["metadata"]["generation"], 3);
    let (_, d) = s.get(&format!("{deploy}/web"));
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(d["metadata"]["generation"], 3);
    let controller = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "kube-controller-manager")
        .unwrap();
    assert!(
        controller["fieldsV1"]["f:metadata"]["f:annotations"]["f:deployment.kubernetes.io/revision"]
            .is_object()
    );

    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]}}}});
    let (code, j) = s.post("/apis/batch/v1/namespaces/default/jobs", &job);
    assert_eq!(code, 201, "{j}");
    assert!(j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"].is_string());
    s.api()
        .simulator()
        .set_phase("batch/v1", "Job", "default", "j", Phase::Ready);
    let (_, j) = s.get("/apis/batch/v1/namespaces/default/jobs/j");
    let types: Vec<&str> = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(j["status"]["succeeded"], 1);
    let (code, bad_job) = s.post(
        "/apis/batch/v1/namespaces/default/jobs",
        &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    );
    assert_eq!(code, 422);
    assert!(bad_job["message"].as_str().unwrap().contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""));

    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                 "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
    s.post("/apis/apps/v1/namespaces/default/daemonsets", &ds);
    s.api()
        .simulator()
        .set_phase("apps/v1", "DaemonSet", "default", "ds", Phase::Ready);
    let (_, ds) = s.get("/apis/apps/v1/namespaces/default/daemonsets/ds");
    assert_eq!(
        (
            ds["status"]["desiredNumberScheduled"].as_i64(),
            ds["status"]["numberReady"].as_i64()
        ),
        (Some(3), Some(3))
    );

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}});
    let (_, p) = s.post("/api/v1/namespaces/default/pods", &pod);
    assert_eq!(
        p["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    let (_, p) = s.get("/api/v1/namespaces/default/pods/p");
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    s.api()
        .simulator()
        .set_phase("v1", "Pod", "default", "p", Phase::Ready);
    let (_, p) = s.get("/api/v1/namespaces/default/pods/p");
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    let kubelet = p["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["manager"] == "kubelet");
    assert!(kubelet);
}

#[test]
fn subject_access_reviews_follow_rbac() {
    let s = Server::start();
    let sar = |user: &str, groups: Value, ns: &str, verb: &str, resource: &str| {
        let (code, r) = s.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", &json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups,
                     "resourceAttributes": {"namespace": ns, "verb": verb, "group": "apps", "resource": resource}}}));
        assert_eq!(code, 201, "{r}");
        r["status"].clone()
    };
    assert_eq!(
        sar("alice", json!([]), "default", "get", "deployments"),
        json!({"allowed": false})
    );
    let admin = sar(
        "root",
        json!(["system:masters"]),
        "default",
        "delete",
        "deployments",
    );
    assert_eq!(
        admin["reason"],
        "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"system:masters\""
    );
    // An aggregated ClusterRole bound in one namespace.
    s.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}}));
    s.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "part", "labels": {"agg": "yes"}},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}]}));
    let (code, rb) = s.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", &json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "alice-agg"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "agg"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}));
    assert_eq!(code, 201, "{rb}");
    let ok = sar("alice", json!([]), "default", "list", "deployments");
    assert_eq!(
        ok["reason"],
        "RBAC: allowed by RoleBinding \"alice-agg/default\" of ClusterRole \"agg\" to User \"alice\""
    );
    assert_eq!(
        sar("alice", json!([]), "other", "list", "deployments")["allowed"],
        false
    );
    assert_eq!(
        sar("alice", json!([]), "default", "create", "deployments")["allowed"],
        false
    );
    let (code, bad) = s.post(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &json!({"spec": {"user": "x"}}),
    );
    assert_eq!(code, 422, "{bad}");
    let (code, own) = s.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &json!({
        "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}}),
    );
    assert_eq!(
        (code, own["status"]["allowed"].as_bool()),
        (201, Some(true))
    );
    let (code, roleref) = s.patch(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/alice-agg",
        MERGE,
        r#"{"roleRef": {"name": "part"}}"#,
    );
    assert_eq!(code, 422, "{roleref}");
    assert_eq!(
        s.get("/apis/authorization.k8s.io/v1/subjectaccessreviews")
            .0,
        405
    );
}

#[test]
fn in_process_access_and_waits() {
    let s = Server::start_with(ServerConfig {
        readiness: Readiness::Manual,
        crds: vec![widget_crd()],
        ..Default::default()
    });
    assert_eq!(
        s.get(WIDGETS).0,
        200,
        "configured CRDs are served from the start"
    );
    s.post(
        "/apis/apps/v1/namespaces/default/deployments",
        &deployment("web", 1),
    );
    let api = s.api();
    let obj = api
        .object("apps/v1", "Deployment", "default", "web")
        .expect("stored");
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(api.objects("v1", "Namespace", None).len(), 4);
    let ready = |c: &workbus_kube_apiserver::Cluster| {
        c.store
            .list(
                &workbus_kube_apiserver::registry::GroupResource::new("apps", "deployments"),
                Some("default"),
            )
            .any(|d| d["status"]["readyReplicas"] == 1)
    };
    let waited =
        s.rt.block_on(api.wait_until(Duration::from_millis(50), ready));
    assert!(!waited, "not ready yet");
    api.simulator()
        .set_phase("apps/v1", "Deployment", "default", "web", Phase::Ready);
    assert!(s.rt.block_on(api.wait_until(Duration::from_secs(5), ready)));
    let kubeconfig = api.kubeconfig("team");
    assert!(
        kubeconfig.contains(&format!("server: {}", s.url))
            && kubeconfig.contains("namespace: team")
    );
}
