//! Patches and server-side apply: JSON, merge and strategic merge patches; apply with
//! managedFields, shared ownership, conflicts and `force`, pruning, the status
//! subresource, custom resources' list types, and the option rules.

mod common;

use common::*;
use serde_json::{Value, json};

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or("").to_string(),
                m["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn fields_of<'a>(obj: &'a Value, manager: &str, operation: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == manager && m["operation"] == operation)
        .map(|m| &m["fieldsV1"])
        .unwrap_or_else(|| panic!("no {manager}/{operation} entry in {obj}"))
}

#[test]
fn json_merge_and_strategic_patches() {
    let s = Server::start();
    let path = "/api/v1/namespaces/default/configmaps/p";
    s.configmap(
        "default",
        json!({"metadata": {"name": "p", "finalizers": ["a.io/x"]}, "data": {"a": "1", "b": "2"}}),
    );
    let (code, v) = s.patch(path, MERGE, r#"{"data": {"a": null, "c": "3"}}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"], json!({"b": "2", "c": "3"}));
    let (code, v) = s.patch(
        path,
        JSON_PATCH,
        r#"[{"op": "add", "path": "/data/d", "value": "4"}, {"op": "remove", "path": "/data/b"}]"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"], json!({"c": "3", "d": "4"}));
    let (code, failed) = s.patch(
        path,
        JSON_PATCH,
        r#"[{"op": "test", "path": "/data/c", "value": "nope"}]"#,
    );
    assert_eq!((code, failed["kind"].as_str()), (422, Some("Status")));
    let (code, v) = s.patch(
        path,
        STRATEGIC,
        r#"{"metadata": {"finalizers": ["a.io/y"]}}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(
        v["metadata"]["finalizers"],
        json!(["a.io/x", "a.io/y"]),
        "finalizers merge as a set"
    );
    let (code, stale) = s.patch(
        path,
        MERGE,
        r#"{"metadata": {"resourceVersion": "1"}, "data": {"x": "y"}}"#,
    );
    assert_eq!((code, stale["reason"].as_str()), (409, Some("Conflict")));
    let (code, unsupported) = s.patch(path, "application/json", "{}");
    assert_eq!(code, 415);
    assert_eq!(
        unsupported["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    );
    let (code, forced) = s.patch(&format!("{path}?force=true"), MERGE, "{}");
    assert_eq!(code, 422);
    assert_eq!(
        forced["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
    assert_eq!(
        s.patch("/api/v1/namespaces/default/configmaps/none", MERGE, "{}")
            .0,
        404
    );

    // Strategic merge on a Deployment: containers by name, env by name.
    s.post(DEPLOY, &deployment("web", 1));
    let (code, d) = s.patch(
        &format!("{DEPLOY}/web"),
        STRATEGIC,
        r#"{"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}, {"name": "side", "image": "busybox"}]}}}}"#,
    );
    assert_eq!(code, 200, "{d}");
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:1.25");
    assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(containers[1]["name"], "side");
    assert_eq!(
        containers[1]["imagePullPolicy"], "Always",
        "defaults apply to patched objects"
    );
    assert_eq!(d["metadata"]["generation"], 2);
}

#[test]
fn apply_creates_owns_and_is_idempotent() {
    let s = Server::start();
    let path = format!("{DEPLOY}/web");
    let (code, d) = s.apply(&path, "agent", false, &deployment("web", 2));
    assert_eq!(code, 201, "{d}");
    assert_eq!(managers(&d), [("agent".to_string(), "Apply".to_string())]);
    let f = fields_of(&d, "agent", "Apply");
    assert_eq!(f["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        f["f:spec"]["f:selector"],
        json!({}),
        "a label selector is atomic"
    );
    assert!(
        f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["."].is_object()
    );
    assert!(
        f["f:spec"].get("f:strategy").is_none(),
        "defaults are not the applier's"
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let rv = d["metadata"]["resourceVersion"].clone();
    let (_, after_sim) = s.get(&path);
    let (code, again) = s.apply(&path, "agent", false, &deployment("web", 2));
    assert_eq!(code, 200);
    assert_eq!(
        again["metadata"]["resourceVersion"], after_sim["metadata"]["resourceVersion"],
        "same config, no write"
    );
    assert_ne!(rv, Value::Null);
    let (_, changed) = s.apply(&path, "agent", false, &deployment("web", 4));
    assert_eq!(changed["spec"]["replicas"], 4);
    assert_eq!(changed["metadata"]["generation"], 2);
    // A dry run changes nothing.
    let (code, dry) = s.apply(
        &format!("{path}?dryRun=All"),
        "agent",
        false,
        &deployment("web", 9),
    );
    assert_eq!((code, dry["spec"]["replicas"].as_i64()), (200, Some(9)));
    assert_eq!(s.get(&path).1["spec"]["replicas"], 4);
}

#[test]
fn apply_conflicts_force_and_updates() {
    let s = Server::start();
    let path = format!("{DEPLOY}/web");
    let (code, _) = s.post(
        &format!("{DEPLOY}?fieldManager=creator"),
        &deployment("web", 1),
    );
    assert_eq!(code, 201);
    let (code, conflict) = s.apply(&path, "agent", false, &deployment("web", 3));
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(conflict["reason"], "Conflict");
    assert_eq!(
        conflict["message"],
        "Apply failed with 1 conflict: conflict with \"creator\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        conflict["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"creator\" using apps/v1", "field": ".spec.replicas"}])
    );
    // The same values are shared, not conflicting.
    let (code, shared) = s.apply(&path, "agent", false, &deployment("web", 1));
    assert_eq!(code, 200, "{shared}");
    assert!(fields_of(&shared, "creator", "Update")["f:spec"]["f:replicas"].is_object());
    assert!(fields_of(&shared, "agent", "Apply")["f:spec"]["f:replicas"].is_object());
    // Two conflicts name every field, grouped by manager.
    let mut two = deployment("web", 3);
    two["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let (code, c2) = s.apply(&path, "other", false, &two);
    assert_eq!(code, 409);
    assert_eq!(
        c2["message"],
        "Apply failed with 4 conflicts: conflicts with \"agent\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"c\"].image\nconflicts with \"creator\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"c\"].image"
    );
    // Force takes the fields over.
    let (code, forced) = s.apply(&path, "other", true, &two);
    assert_eq!(code, 200, "{forced}");
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(
        fields_of(&forced, "agent", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert!(fields_of(&forced, "other", "Apply")["f:spec"]["f:replicas"].is_object());
    // An update never conflicts: it takes the field from the applier.
    let (code, updated) = s.patch(
        &format!("{path}?fieldManager=editor"),
        MERGE,
        r#"{"spec": {"replicas": 5}}"#,
    );
    assert_eq!(code, 200);
    assert!(
        fields_of(&updated, "other", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert_eq!(
        fields_of(&updated, "editor", "Update")["f:spec"],
        json!({"f:replicas": {}})
    );
    // The applier that lost the field applies again without it: no conflict, the
    // editor's value stays.
    let mut without = two.clone();
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let (code, kept) = s.apply(&path, "other", false, &without);
    assert_eq!((code, kept["spec"]["replicas"].as_i64()), (200, Some(5)));
}

#[test]
fn apply_prunes_what_an_applier_stopped_applying() {
    let s = Server::start();
    let path = format!("{DEPLOY}/web");
    let mut cfg = deployment("web", 2);
    cfg["metadata"]["labels"]["extra"] = json!("x");
    cfg["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "busybox:1"}));
    assert_eq!(s.apply(&path, "agent", false, &cfg).0, 201);
    // A label owned by someone else too is kept when the applier drops it.
    s.patch(
        &format!("{path}?fieldManager=labeler"),
        MERGE,
        r#"{"metadata": {"labels": {"team": "a"}}}"#,
    );
    let (code, pruned) = s.apply(&path, "agent", false, &deployment("web", 2));
    assert_eq!(code, 200, "{pruned}");
    assert!(
        pruned["metadata"]["labels"].get("extra").is_none(),
        "{}",
        pruned["metadata"]
    );
    assert_eq!(pruned["metadata"]["labels"]["team"], "a");
    let names: Vec<&str> = pruned["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c"]);
    // A field nobody applies any more is removed, then defaulted again.
    let mut no_replicas = deployment("web", 2);
    no_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let (_, d) = s.apply(&path, "agent", false, &no_replicas);
    assert_eq!(d["spec"]["replicas"], 1);
}

#[test]
fn apply_option_and_config_rules() {
    let s = Server::start();
    let path = "/api/v1/namespaces/default/configmaps/x";
    let (code, no_manager) = s.patch(path, APPLY, &cm("x").to_string());
    assert_eq!(code, 422);
    assert_eq!(
        no_manager["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let mut with_mf = cm("x");
    with_mf["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Apply"}]);
    let (code, mf) = s.apply(path, "a", false, &with_mf);
    assert_eq!(
        (code, mf["message"].as_str()),
        (400, Some("metadata.managedFields must be nil"))
    );
    let (code, name) = s.apply(path, "a", false, &cm("y"));
    assert_eq!(
        (code, name["message"].as_str()),
        (
            400,
            Some("the name of the object (y) does not match the name on the URL (x)")
        )
    );
    let (code, _) = s.patch(
        &format!("{path}?fieldManager=a"),
        APPLY,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: yaml\n",
    );
    assert_eq!(code, 201, "YAML bodies are applied");
    let (code, bad) = s.patch(&format!("{path}?fieldManager=a"), APPLY, "::: not yaml [");
    assert_eq!((code, bad["reason"].as_str()), (400, Some("BadRequest")));
    let (code, missing) = s.apply(
        "/api/v1/namespaces/nowhere/configmaps/x",
        "a",
        false,
        &cm("x"),
    );
    assert_eq!(
        (code, missing["message"].as_str()),
        (404, Some("namespaces \"nowhere\" not found"))
    );
    let mut keyless = deployment("k", 1);
    keyless["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let (code, typed) = s.apply(&format!("{DEPLOY}/k"), "a", false, &keyless);
    assert_eq!(code, 500);
    assert!(
        typed["message"]
            .as_str()
            .unwrap()
            .contains("associative list with keys has an element that omits key field \"name\""),
        "{typed}"
    );
}

#[test]
fn apply_through_the_status_subresource() {
    let s = Server::start_with(workbus_kube_apiserver::ServerConfig {
        readiness: workbus_kube_apiserver::Readiness::Manual,
        ..Default::default()
    });
    let path = format!("{DEPLOY}/web");
    let mut with_status = deployment("web", 1);
    with_status["status"] = json!({"replicas": 42});
    let (code, d) = s.apply(&path, "agent", false, &with_status);
    assert_eq!(code, 201);
    assert!(
        d["status"].get("replicas").is_none(),
        "the main resource ignores status"
    );
    assert!(fields_of(&d, "agent", "Apply").get("f:status").is_none());
    let status_cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                            "spec": {"replicas": 9}, "status": {"readyReplicas": 1}});
    let (code, st) = s.apply(
        &format!("{path}/status"),
        "status-writer",
        true,
        &status_cfg,
    );
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["status"]["readyReplicas"], 1);
    assert_eq!(st["spec"]["replicas"], 1);
    let entry = st["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "status-writer")
        .unwrap();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {"f:readyReplicas": {}}})
    );
    assert_eq!(
        s.apply(&format!("{DEPLOY}/none/status"), "x", false, &status_cfg)
            .0,
        404
    );
}

#[test]
fn custom_resources_use_their_schemas_list_types() {
    let s = Server::start();
    assert_eq!(
        s.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &widget_crd()
        )
        .0,
        201
    );
    let path = "/apis/example.com/v1/namespaces/default/widgets/w";
    let w = |tags: Value, ports: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"tags": tags, "ports": ports}})
    };
    let (code, a) = s.apply(
        path,
        "a",
        false,
        &w(json!(["x"]), json!([{"name": "http", "port": 80}])),
    );
    assert_eq!(code, 201, "{a}");
    assert_eq!(a["spec"]["size"], 1, "schema default");
    let fa = fields_of(&a, "a", "Apply");
    assert_eq!(fa["f:spec"]["f:tags"], json!({"v:\"x\"": {}}));
    assert!(fa["f:spec"]["f:ports"]["k:{\"name\":\"http\"}"].is_object());
    let (code, b) = s.apply(
        path,
        "b",
        false,
        &w(json!(["y"]), json!([{"name": "grpc", "port": 90}])),
    );
    assert_eq!(code, 200, "sets and maps merge item by item: {b}");
    assert_eq!(b["spec"]["tags"], json!(["x", "y"]));
    assert_eq!(b["spec"]["ports"].as_array().unwrap().len(), 2);
    let (code, c) = s.apply(
        path,
        "b",
        false,
        &w(json!(["y"]), json!([{"name": "http", "port": 81}])),
    );
    assert_eq!(code, 409, "{c}");
    assert_eq!(
        c["message"],
        "Apply failed with 1 conflict: conflict with \"a\": .spec.ports[name=\"http\"].port"
    );
    let (code, smp) = s.patch(path, STRATEGIC, "{}");
    assert_eq!(code, 415);
    assert!(!smp["message"].as_str().unwrap().contains("strategic"));
    let (code, unconditional) = s.put(path, &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}));
    assert_eq!(code, 422);
    assert_eq!(
        unconditional["message"],
        "Widget.example.com \"w\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
}

/// The managed fields of a create are what the apiserver records for
/// `kubectl create deployment nginx --image=nginx` (the creator owns the defaults the
/// decoder filled in; structs of the type's zero value are not "added").
#[test]
fn a_create_owns_what_kubectl_create_owns_on_a_cluster() {
    let s = Server::start();
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nginx"}},
                 "strategy": {},
                 "template": {"metadata": {"labels": {"app": "nginx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}}}});
    let (code, d) = s.post(&format!("{DEPLOY}?fieldManager=kubectl-create"), &body);
    assert_eq!(code, 201, "{d}");
    let expected = json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:progressDeadlineSeconds": {},
            "f:replicas": {},
            "f:revisionHistoryLimit": {},
            "f:selector": {},
            "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
            "f:template": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                        "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                    "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                    "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}
                }
            }
        }
    });
    assert_eq!(fields_of(&d, "kubectl-create", "Update"), &expected);
}
