//! The REST rules over HTTP: discovery, create/get/list/update, errors as `Status`,
//! resourceVersion and generation, the status subresource, selectors, paging, dry run,
//! namespaces, and bad input never taking the server down.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn discovery_documents() {
    let s = Server::start();
    let (code, v) = s.get("/version");
    assert_eq!((code, v["gitVersion"].as_str()), (200, Some("v1.30.0")));
    let (_, api) = s.get("/api");
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, core) = s.get("/api/v1");
    let names: Vec<&str> = pluck(&core, "resources", "/name");
    for want in [
        "namespaces",
        "namespaces/status",
        "namespaces/finalize",
        "configmaps",
        "pods/status",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let (_, apis) = s.get("/apis");
    let apps = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "apps")
        .unwrap();
    assert_eq!(
        apps["preferredVersion"],
        json!({"groupVersion": "apps/v1", "version": "v1"})
    );
    let (code, group) = s.get("/apis/apps");
    assert_eq!((code, group["kind"].as_str()), (200, Some("APIGroup")));
    let (_, list) = s.get("/apis/apps/v1");
    let deploy = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deploy["kind"], "Deployment");
    assert_eq!(deploy["namespaced"], true);
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    assert_eq!(deploy["categories"], json!(["all"]));
    assert!(deploy["storageVersionHash"].is_string());
    let (code, nf) = s.get("/apis/nope.example.com/v1");
    assert_eq!(code, 404);
    assert_eq!(
        nf["message"],
        "the server could not find the requested resource"
    );
    let (code, ct, _) = s.raw(
        "GET",
        "/openapi/v2",
        None,
        Some("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        ct.starts_with("application/com.github.proto-openapi"),
        "{ct}"
    );
    assert_eq!(s.get("/openapi/v3").0, 404);
    assert_eq!(s.raw("GET", "/healthz", None, None, None).2, "ok");
}

#[test]
fn create_get_list_and_errors_are_status_objects() {
    let s = Server::start();
    let created = s.configmap("default", cm("a"));
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(
        created["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(created["metadata"].get("generation").is_none());
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "workbus-test"
    );

    let (code, dup) = s.post("/api/v1/namespaces/default/configmaps", &cm("a"));
    assert_eq!(code, 409);
    assert_eq!(dup["kind"], "Status");
    assert_eq!(dup["reason"], "AlreadyExists");
    assert_eq!(dup["message"], "configmaps \"a\" already exists");
    assert_eq!(dup["details"], json!({"name": "a", "kind": "configmaps"}));

    let (code, nf) = s.get("/apis/apps/v1/namespaces/default/deployments/x");
    assert_eq!(code, 404);
    assert_eq!(nf["message"], "deployments.apps \"x\" not found");
    assert_eq!(
        nf["details"],
        json!({"name": "x", "group": "apps", "kind": "deployments"})
    );

    let (code, ns) = s.post("/api/v1/namespaces/missing/configmaps", &cm("a"));
    assert_eq!(code, 404);
    assert_eq!(ns["message"], "namespaces \"missing\" not found");

    let (code, inv) = s.post("/api/v1/namespaces/default/configmaps", &cm("Not_Valid"));
    assert_eq!(code, 422);
    assert_eq!(inv["reason"], "Invalid");
    assert!(inv["message"].as_str().unwrap().starts_with(
        "ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value: \"Not_Valid\": a lowercase RFC 1123 subdomain"
    ));
    assert_eq!(inv["details"]["causes"][0]["field"], "metadata.name");

    let (code, mismatch) = s.post(
        "/api/v1/namespaces/default/configmaps",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "kube-system"}}),
    );
    assert_eq!(
        (code, mismatch["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    let (code, wrong_gv) = s.post(
        "/api/v1/namespaces/default/configmaps",
        &json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "b"}}),
    );
    assert_eq!(code, 400);
    assert_eq!(
        wrong_gv["message"],
        "the API version in the data (apps/v1) does not match the expected API version (v1)"
    );

    // apiVersion and kind default to the URL's.
    let (code, bare) = s.post(
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "bare"}}),
    );
    assert_eq!((code, bare["kind"].as_str()), (201, Some("ConfigMap")));

    let (code, generated) = s.post(
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"generateName": "gen-"}}),
    );
    assert_eq!(code, 201);
    let name = generated["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let (code, rv_set) = s.post(
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "c", "resourceVersion": "5"}}),
    );
    assert_eq!(code, 500);
    assert_eq!(
        rv_set["message"],
        "Internal error occurred: resourceVersion should not be set on objects to be created"
    );

    let (code, list) = s.get("/api/v1/namespaces/default/configmaps");
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert!(
        list["items"][0].get("kind").is_none(),
        "typed list items carry no kind"
    );
    let all: Vec<&str> = pluck(&list, "items", "/metadata/name");
    assert!(
        all.contains(&"a") && all.contains(&"kube-root-ca.crt"),
        "{all:?}"
    );

    let (code, across) = s.get("/api/v1/configmaps");
    assert_eq!(code, 200);
    assert!(
        across["items"].as_array().unwrap().len() >= 4,
        "one kube-root-ca.crt per namespace"
    );
    assert_eq!(
        s.get("/api/v1/configmaps/a").0,
        404,
        "a namespaced object needs its namespace"
    );
    assert_eq!(s.get("/api/v1/namespaces/default/nodes").0, 404);
}

#[test]
fn resource_versions_and_optimistic_concurrency() {
    let s = Server::start();
    let a = s.configmap("default", cm("a"));
    let rv_a: u64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let b = s.configmap("default", cm("b"));
    let rv_b: u64 = b["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv_b > rv_a, "one counter for the whole store");

    let mut update = a.clone();
    update["data"]["k"] = json!("2");
    let (code, updated) = s.put("/api/v1/namespaces/default/configmaps/a", &update);
    assert_eq!(code, 200, "{updated}");
    let rv2: u64 = updated["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv_b);

    // The same update again carries a stale resourceVersion.
    let (code, stale) = s.put("/api/v1/namespaces/default/configmaps/a", &update);
    assert_eq!(code, 409);
    assert_eq!(
        stale["message"],
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // Without a resourceVersion a built-in kind updates unconditionally.
    let mut unconditional = updated.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    unconditional["data"]["k"] = json!("3");
    assert_eq!(
        s.put("/api/v1/namespaces/default/configmaps/a", &unconditional)
            .0,
        200
    );
    // A write that changes nothing keeps the resourceVersion.
    let (_, now) = s.get("/api/v1/namespaces/default/configmaps/a");
    let (code, same) = s.put("/api/v1/namespaces/default/configmaps/a", &now);
    assert_eq!(code, 200);
    assert_eq!(
        same["metadata"]["resourceVersion"],
        now["metadata"]["resourceVersion"]
    );
    // uid precondition in the body.
    let mut other_uid = now.clone();
    other_uid["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    let (code, pre) = s.put("/api/v1/namespaces/default/configmaps/a", &other_uid);
    assert_eq!(code, 409);
    assert!(
        pre["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition")
    );
    // Name in the body must be the URL's.
    let (code, wrong) = s.put("/api/v1/namespaces/default/configmaps/b", &now);
    assert_eq!(code, 400);
    assert_eq!(
        wrong["message"],
        "the name of the object (a) does not match the name on the URL (b)"
    );
    // Identity fields cannot be changed by an update.
    let mut sneaky = now.clone();
    sneaky["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    sneaky["metadata"]["uid"] = json!(null);
    sneaky["data"]["k"] = json!("4");
    let (_, kept) = s.put("/api/v1/namespaces/default/configmaps/a", &sneaky);
    assert_eq!(
        kept["metadata"]["creationTimestamp"],
        now["metadata"]["creationTimestamp"]
    );
    assert_eq!(kept["metadata"]["uid"], now["metadata"]["uid"]);
}

#[test]
fn generation_moves_with_spec_only_and_status_is_its_own_subresource() {
    let s = Server::start_with(workbus_kube_apiserver::ServerConfig {
        readiness: workbus_kube_apiserver::Readiness::Manual,
        ..Default::default()
    });
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let (code, d) = s.post(base, &deployment("web", 2));
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["status"], json!({}), "a new Deployment's status is empty");
    let path = format!("{base}/web");

    let (_, d) = s.patch(&path, MERGE, r#"{"metadata": {"labels": {"x": "y"}}}"#);
    assert_eq!(d["metadata"]["generation"], 1, "labels are not spec");
    let (_, d) = s.patch(&path, MERGE, r#"{"spec": {"replicas": 3}}"#);
    assert_eq!(d["metadata"]["generation"], 2);
    let (_, d) = s.patch(&path, MERGE, r#"{"metadata": {"annotations": {"a": "b"}}}"#);
    assert_eq!(
        d["metadata"]["generation"], 3,
        "a Deployment's annotations count"
    );

    // The main resource ignores status; /status ignores everything else.
    let (_, before) = s.get(&path);
    let (_, d) = s.patch(&path, MERGE, r#"{"status": {"replicas": 9}}"#);
    assert_eq!(d["status"], before["status"]);
    assert_eq!(
        d["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "nothing to write"
    );
    let (code, st) = s.patch(&format!("{path}/status"), MERGE, r#"{"status": {"replicas": 9}, "spec": {"replicas": 7}, "metadata": {"labels": {"z": "z"}}}"#);
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["status"]["replicas"], 9);
    assert_eq!(st["spec"]["replicas"], 3);
    assert!(st["metadata"]["labels"].get("z").is_none());
    assert_eq!(st["metadata"]["generation"], 3);
    let status_manager = st["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "workbus-test" && m["subresource"] == "status")
        .expect("a status entry");
    assert!(status_manager["fieldsV1"]["f:status"]["f:replicas"].is_object());
    let (_, get_status) = s.get(&format!("{path}/status"));
    assert_eq!(get_status["kind"], "Deployment");

    // ConfigMaps have no generation; custom resources count everything but metadata
    // and status (see crd_sim_rbac.rs).
    let c = s.configmap("default", cm("c"));
    assert!(c["metadata"].get("generation").is_none());
    assert_eq!(
        s.get("/api/v1/namespaces/default/configmaps/c/status").0,
        404,
        "no status subresource"
    );
}

#[test]
fn selectors_paging_and_dry_run() {
    let s = Server::start();
    s.namespace("sel");
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web"), ("d", "cache")] {
        s.configmap(
            "sel",
            json!({"metadata": {"name": name, "labels": {"tier": tier}}}),
        );
    }
    let names = |path: &str| -> Vec<String> {
        let (code, l) = s.get(path);
        assert_eq!(code, 200, "{l}");
        pluck(&l, "items", "/metadata/name")
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        names("/api/v1/namespaces/sel/configmaps?labelSelector=tier%3Dweb"),
        ["a", "c"]
    );
    assert_eq!(
        names("/api/v1/namespaces/sel/configmaps?labelSelector=tier%20in%20(db,cache)"),
        ["b", "d"]
    );
    assert_eq!(
        names("/api/v1/namespaces/sel/configmaps?labelSelector=tier,tier!%3Dweb"),
        ["b", "d"]
    );
    assert_eq!(
        names("/api/v1/namespaces/sel/configmaps?fieldSelector=metadata.name%3Db"),
        ["b"]
    );
    assert_eq!(
        names(
            "/api/v1/configmaps?fieldSelector=metadata.namespace%3Dsel,metadata.name!%3Da&labelSelector=tier"
        ),
        ["b", "c", "d"]
    );
    let (code, bad) = s.get("/api/v1/namespaces/sel/configmaps?fieldSelector=data.k%3Dv");
    assert_eq!(
        (code, bad["message"].as_str()),
        (400, Some("field label not supported: data.k"))
    );
    assert_eq!(
        s.get("/api/v1/namespaces/sel/configmaps?labelSelector=in%20(")
            .0,
        400
    );

    let (_, page1) = s.get("/api/v1/namespaces/sel/configmaps?limit=2");
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let token = page1["metadata"]["continue"].as_str().unwrap();
    assert_eq!(page1["metadata"]["remainingItemCount"], 3);
    let (_, page2) = s.get(&format!(
        "/api/v1/namespaces/sel/configmaps?limit=2&continue={token}"
    ));
    let got: Vec<&str> = pluck(&page2, "items", "/metadata/name");
    assert_eq!(got, ["c", "d"]);
    assert_eq!(
        s.get("/api/v1/namespaces/sel/configmaps?continue=garbage")
            .0,
        400
    );

    let rv = s.api().resource_version();
    let (code, dry) = s.post("/api/v1/namespaces/sel/configmaps?dryRun=All", &cm("dry"));
    assert_eq!(code, 201);
    assert!(dry["metadata"]["uid"].is_string() && dry["metadata"].get("resourceVersion").is_none());
    assert_eq!(s.get("/api/v1/namespaces/sel/configmaps/dry").0, 404);
    let (code, _) = s.delete("/api/v1/namespaces/sel/configmaps/a?dryRun=All", None);
    assert_eq!(code, 200);
    assert_eq!(s.get("/api/v1/namespaces/sel/configmaps/a").0, 200);
    assert_eq!(s.api().resource_version(), rv, "a dry run writes nothing");
    let (code, bad) = s.post("/api/v1/namespaces/sel/configmaps?dryRun=Some", &cm("x"));
    assert_eq!(code, 422);
    assert_eq!(
        bad["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \"Some\": supported values: \"All\""
    );
}

#[test]
fn tables_yaml_and_metadata_only() {
    let s = Server::start();
    s.post(
        "/apis/apps/v1/namespaces/default/deployments",
        &deployment("web", 2),
    );
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (code, ct, body) = s.raw(
        "GET",
        "/apis/apps/v1/namespaces/default/deployments",
        None,
        Some(accept),
        None,
    );
    assert_eq!(code, 200);
    assert!(ct.contains("as=Table"), "{ct}");
    let t: Value = serde_json::from_str(&body).unwrap();
    let cols: Vec<&str> = pluck(&t, "columnDefinitions", "/name");
    assert_eq!(
        &cols[..5],
        ["Name", "Ready", "Up-to-date", "Available", "Age"]
    );
    assert_eq!(t["rows"][0]["cells"][1], "2/2");
    let (_, _, yaml) = s.raw(
        "GET",
        "/api/v1/namespaces/default",
        None,
        Some("application/yaml"),
        None,
    );
    assert!(yaml.contains("kind: Namespace"), "{yaml}");
    let (_, _, partial) = s.raw(
        "GET",
        "/api/v1/namespaces",
        None,
        Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
        None,
    );
    let p: Value = serde_json::from_str(&partial).unwrap();
    assert_eq!(p["kind"], "PartialObjectMetadataList");
    assert!(p["items"][0].get("spec").is_none());
    let (code, _, _) = s.raw(
        "GET",
        "/api/v1/namespaces",
        None,
        Some("application/vnd.kubernetes.protobuf"),
        None,
    );
    assert_eq!(code, 406);
}

#[test]
fn namespaces_have_a_lifecycle() {
    let s = Server::start();
    let (_, ns) = s.get("/api/v1/namespaces/default");
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    let (code, forbidden) = s.delete("/api/v1/namespaces/default", None);
    assert_eq!(code, 403);
    assert_eq!(
        forbidden["message"],
        "namespaces \"default\" is forbidden: this namespace may not be deleted"
    );

    s.namespace("doomed");
    assert_eq!(
        s.get("/api/v1/namespaces/doomed/serviceaccounts/default").0,
        200
    );
    let (_, ca) = s.get("/api/v1/namespaces/doomed/configmaps/kube-root-ca.crt");
    assert_eq!(
        ca["metadata"]["managedFields"][0]["manager"],
        "kube-controller-manager"
    );
    s.configmap(
        "doomed",
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    );
    let (code, terminating) = s.delete("/api/v1/namespaces/doomed", None);
    assert_eq!(code, 200);
    assert_eq!(terminating["status"]["phase"], "Terminating");
    // Content without finalizers is gone; the held ConfigMap keeps the namespace.
    assert_eq!(
        s.get("/api/v1/namespaces/doomed/serviceaccounts/default").0,
        404
    );
    let (_, ns) = s.get("/api/v1/namespaces/doomed");
    assert_eq!(ns["status"]["phase"], "Terminating");
    let (code, refused) = s.post("/api/v1/namespaces/doomed/configmaps", &cm("late"));
    assert_eq!(code, 403);
    assert_eq!(
        refused["message"],
        "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    assert_eq!(
        refused["details"]["causes"][0]["reason"],
        "NamespaceTerminating"
    );
    let (code, _) = s.patch(
        "/api/v1/namespaces/doomed/configmaps/held",
        MERGE,
        r#"{"metadata": {"finalizers": null}}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(
        s.get("/api/v1/namespaces/doomed").0,
        404,
        "empty, finalized, gone"
    );
}

#[test]
fn bad_input_is_a_4xx_status_and_never_breaks_the_server() {
    let s = Server::start();
    s.configmap("default", cm("a"));
    let bodies: [&[u8]; 6] = [
        b"",
        b"{",
        b"[1,2]",
        b"\"text\"",
        b"\xff\xfe\x00",
        b"{\"metadata\": 5}",
    ];
    let paths = [
        "/api/v1/namespaces/default/configmaps",
        "/api/v1/namespaces/default/configmaps/a",
        "/api/v1/namespaces/default/configmaps/a/status",
        "/apis/apps/v1/namespaces/default/deployments/a",
        "/api/v1/namespaces/%ZZ/configmaps",
        "/apis/example.com/v1/widgets",
        "/api/v1/namespaces/default/configmaps/a/b/c/d",
    ];
    let types = [
        JSON,
        MERGE,
        JSON_PATCH,
        STRATEGIC,
        APPLY,
        "application/vnd.kubernetes.protobuf",
        "text/plain",
    ];
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            for body in bodies {
                for ct in types {
                    let (code, _, text) = s.raw(method, path, Some(ct), Some(JSON), Some(body));
                    assert!(
                        (200..500).contains(&code)
                            || code == 500 && text.contains("resourceVersion should not be set"),
                        "{method} {path} {ct} {body:?}: {code} {text}"
                    );
                    if code >= 400 {
                        let v: Value = serde_json::from_str(&text)
                            .unwrap_or_else(|_| panic!("a Status: {text}"));
                        assert_eq!(v["kind"], "Status", "{text}");
                        assert_eq!(v["code"], code);
                    }
                }
            }
        }
    }
    for query in [
        "?watch=true&resourceVersion=abc",
        "?limit=x",
        "?timeoutSeconds=-1&watch=1",
        "?labelSelector=%3D%3D%3D",
    ] {
        let (code, _, _) = s.raw(
            "GET",
            &format!("/api/v1/namespaces/default/configmaps{query}"),
            None,
            None,
            None,
        );
        assert_eq!(code, 400, "{query}");
    }
    let big = vec![b' '; 4 * 1024 * 1024];
    let (code, _, _) = s.raw(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(JSON),
        None,
        Some(&big),
    );
    assert_eq!(code, 413);
    // Still serving, and writing.
    assert_eq!(s.get("/api/v1/namespaces/default").0, 200);
    s.configmap("default", cm("after"));
}
