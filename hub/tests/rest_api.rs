//! The REST API over real HTTP (port 0) with a real store and broker: CRUD, YAML input,
//! generation rules, listing with filters and pagination, the 4xx error shape, watch,
//! OpenAPI, health and metrics.

mod common;

use common::*;
use serde_json::Value;

const YAML_WORK: &str = r#"
apiVersion: work.open-cluster-management.io/v1
kind: ManifestWork
metadata:
  name: web
  namespace: c1
  labels:
    tier: front
spec:
  workload:
    manifests:
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: web-config
          namespace: default
        data:
          color: blue
"#;

fn assert_error(r: &Resp, code: u16, reason: &str, contains: &str) {
    assert_eq!(r.status, code, "{:?}", r.body);
    assert_eq!(r.body["code"], code);
    assert_eq!(r.body["reason"], reason, "{:?}", r.body);
    let msg = r.body["message"].as_str().unwrap();
    assert!(msg.contains(contains), "message {msg:?} lacks {contains:?}");
}

#[tokio::test]
async fn works_crud_yaml_generation_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("rest")).await;
    let base = hub.base_url();

    // Unknown cluster.
    let r = put_work(&hub, &work_json("c1", "w1", "a")).await;
    assert_error(&r, 404, "NotFound", "cluster \"c1\" not found");
    assert_eq!(create_cluster(&hub, "c1").await.status, 201);
    assert_error(
        &create_cluster(&hub, "c1").await,
        409,
        "AlreadyExists",
        "c1",
    );
    assert_error(
        &create_cluster(&hub, "Bad_Name").await,
        422,
        "Invalid",
        "cluster name",
    );

    // YAML create via PUT, then the same YAML is a no-op.
    let url = format!("{base}/api/v1/clusters/c1/works/web");
    let r = http(
        "PUT",
        url.clone(),
        Some("application/yaml"),
        Some(YAML_WORK.into()),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.outcome.as_deref(), Some("created"));
    assert_eq!(r.body["apiVersion"], "work.open-cluster-management.io/v1");
    assert_eq!(r.body["kind"], "ManifestWork");
    assert_eq!(r.body["metadata"]["generation"], 1);
    assert_eq!(r.body["metadata"]["resourceVersion"], "1");
    assert!(r.body["metadata"]["uid"].is_string());
    assert!(r.body["metadata"]["creationTimestamp"].is_string());
    let r = http(
        "PUT",
        url.clone(),
        Some("application/yaml"),
        Some(YAML_WORK.into()),
    )
    .await;
    assert_eq!((r.status, r.outcome.as_deref()), (200, Some("unchanged")));
    assert_eq!(r.body["metadata"]["generation"], 1);
    // A label change bumps the generation; GET returns what was stored.
    let changed = YAML_WORK.replace("tier: front", "tier: back");
    let r = http("PUT", url.clone(), Some("text/yaml"), Some(changed)).await;
    assert_eq!((r.status, r.outcome.as_deref()), (200, Some("updated")));
    let got = http("GET", url.clone(), None, None).await;
    assert_eq!(got.body["metadata"]["generation"], 2);
    assert_eq!(got.body["metadata"]["resourceVersion"], "2");
    assert_eq!(got.body["metadata"]["labels"]["tier"], "back");
    assert_eq!(
        got.body["spec"]["workload"]["manifests"][0]["data"]["color"],
        "blue"
    );
    // `get -o json | apply` round trip is a no-op.
    let r = http("PUT", url.clone(), None, Some(got.body.to_string())).await;
    assert_eq!(r.outcome.as_deref(), Some("unchanged"));

    // POST creates, and refuses an existing work.
    let works = format!("{base}/api/v1/works");
    let w2 = work_json("c1", "w2", "a").to_string();
    assert_eq!(
        http("POST", works.clone(), None, Some(w2.clone()))
            .await
            .status,
        201
    );
    assert_error(
        &http("POST", works.clone(), None, Some(w2)).await,
        409,
        "AlreadyExists",
        "w2",
    );

    // Error cases.
    let mut mismatch = work_json("c2", "web", "a");
    mismatch["metadata"]["namespace"] = "c2".into();
    assert_error(
        &http("PUT", url.clone(), None, Some(mismatch.to_string())).await,
        400,
        "BadRequest",
        "does not match",
    );
    let mut no_ns = work_json("c1", "w3", "a");
    no_ns["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    assert_error(
        &http("POST", works.clone(), None, Some(no_ns.to_string())).await,
        422,
        "Invalid",
        "namespace",
    );
    let mut empty = work_json("c1", "w3", "a");
    empty["spec"]["workload"]["manifests"] = Value::Array(vec![]);
    assert_error(
        &http("POST", works.clone(), None, Some(empty.to_string())).await,
        422,
        "Invalid",
        "Workload manifests should not be empty",
    );
    let mut noname = work_json("c1", "w3", "a");
    noname["spec"]["workload"]["manifests"][0]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    assert_error(
        &http("POST", works.clone(), None, Some(noname.to_string())).await,
        422,
        "Invalid",
        "name must be set in manifest",
    );
    let mut kind = work_json("c1", "w3", "a");
    kind["kind"] = "Deployment".into();
    assert_error(
        &http("POST", works.clone(), None, Some(kind.to_string())).await,
        400,
        "BadRequest",
        "kind",
    );
    let mut api = work_json("c1", "w3", "a");
    api["apiVersion"] = "work.open-cluster-management.io/v2".into();
    assert_error(
        &http("POST", works.clone(), None, Some(api.to_string())).await,
        400,
        "BadRequest",
        "apiVersion",
    );
    assert_error(
        &http("POST", works.clone(), None, Some("{not json".into())).await,
        400,
        "BadRequest",
        "JSON",
    );
    assert_error(
        &http("POST", works.clone(), Some("text/plain"), Some("x".into())).await,
        415,
        "UnsupportedMediaType",
        "text/plain",
    );
    assert_error(
        &http(
            "GET",
            format!("{base}/api/v1/clusters/c1/works/nope"),
            None,
            None,
        )
        .await,
        404,
        "NotFound",
        "nope",
    );
    assert_error(
        &http(
            "DELETE",
            format!("{base}/api/v1/clusters/c1/works/nope"),
            None,
            None,
        )
        .await,
        404,
        "NotFound",
        "nope",
    );

    // Deleting: 202, repeated deletes are fine, updates refused, cluster delete refused.
    let r = http("DELETE", url.clone(), None, None).await;
    assert_eq!(r.status, 202);
    assert_eq!(http("DELETE", url.clone(), None, None).await.status, 202);
    let r = http(
        "PUT",
        url.clone(),
        Some("application/yaml"),
        Some(YAML_WORK.into()),
    )
    .await;
    assert_error(&r, 409, "Conflict", "being deleted");
    assert_error(
        &http("DELETE", format!("{base}/api/v1/clusters/c1"), None, None).await,
        409,
        "Conflict",
        "still has",
    );
    let cluster = http("GET", format!("{base}/api/v1/clusters/c1"), None, None).await;
    assert_eq!(cluster.body["name"], "c1");
    let list = http("GET", format!("{base}/api/v1/clusters"), None, None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    hub.shutdown().await;
}

#[tokio::test]
async fn list_filters_and_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("list")).await;
    let base = hub.base_url();
    for c in ["a", "b"] {
        create_cluster(&hub, c).await;
        for i in 0..3 {
            let mut w = work_json(c, &format!("w{i}"), "x");
            w["metadata"]["labels"]["parity"] = if i % 2 == 0 { "even" } else { "odd" }.into();
            assert_eq!(put_work(&hub, &w).await.status, 201);
        }
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                format!(
                    "{}/{}",
                    w["metadata"]["namespace"].as_str().unwrap(),
                    w["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let all = http("GET", format!("{base}/api/v1/works"), None, None).await;
    assert_eq!(
        names(&all.body),
        ["a/w0", "a/w1", "a/w2", "b/w0", "b/w1", "b/w2"]
    );
    assert_eq!(all.body["kind"], "ManifestWorkList");
    assert!(all.body["metadata"]["continue"].is_null());
    let b = http("GET", format!("{base}/api/v1/works?cluster=b"), None, None).await;
    assert_eq!(names(&b.body), ["b/w0", "b/w1", "b/w2"]);
    let even = http(
        "GET",
        format!("{base}/api/v1/works?labelSelector=parity%3Deven,app%3Ddemo"),
        None,
        None,
    )
    .await;
    assert_eq!(names(&even.body), ["a/w0", "a/w2", "b/w0", "b/w2"]);

    // Pages of 4 then 2, with the token.
    let p1 = http("GET", format!("{base}/api/v1/works?limit=4"), None, None).await;
    assert_eq!(names(&p1.body), ["a/w0", "a/w1", "a/w2", "b/w0"]);
    let token = p1.body["metadata"]["continue"]
        .as_str()
        .unwrap()
        .to_string();
    let p2 = http(
        "GET",
        format!("{base}/api/v1/works?limit=4&continue={token}"),
        None,
        None,
    )
    .await;
    assert_eq!(names(&p2.body), ["b/w1", "b/w2"]);
    assert!(p2.body["metadata"]["continue"].is_null());

    // Bad tokens, a token from another query, bad limits and selectors: 400.
    let r = http(
        "GET",
        format!("{base}/api/v1/works?continue=garbage!"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    let r = http(
        "GET",
        format!("{base}/api/v1/works?cluster=a&continue={token}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        http("GET", format!("{base}/api/v1/works?limit=0"), None, None)
            .await
            .status,
        400
    );
    assert_eq!(
        http("GET", format!("{base}/api/v1/works?limit=abc"), None, None)
            .await
            .status,
        400
    );
    // Set-based selectors (a bare key: it exists); a malformed one is a 400.
    assert_eq!(
        http(
            "GET",
            format!("{base}/api/v1/works?labelSelector=novalue"),
            None,
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        http(
            "GET",
            format!("{base}/api/v1/works?labelSelector=a%20in%20b"),
            None,
            None
        )
        .await
        .status,
        400
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn openapi_health_metrics_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("misc")).await;
    let base = hub.base_url();
    assert_eq!(
        http("GET", format!("{base}/healthz"), None, None)
            .await
            .status,
        200
    );
    let doc = http("GET", format!("{base}/openapi.json"), None, None)
        .await
        .body;
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/clusters",
        "/api/v1/clusters/{name}",
        "/api/v1/works",
        "/api/v1/clusters/{cluster}/works/{name}",
        "/api/v1/watch/works",
        "/api/v1/outbox/parked",
        "/api/v1/clusters/{name}/accept",
        "/api/v1/clusters/{name}/deny",
        "/api/v1/clusters/{name}/labels",
        "/api/v1/clustersets",
        "/api/v1/bootstraptokens",
        "/api/v1/watch/clusters",
        "/api/v1/namespaces/{ns}/placements/{name}",
        "/api/v1/placements",
        "/api/v1/namespaces/{ns}/placementdecisions",
        "/api/v1/namespaces/{ns}/managedclustersetbindings/{set}",
        "/api/v1/managedclustersetbindings",
        "/api/v1/watch/placements",
        "/openapi.json",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lists {path}");
    }
    let r = http("GET", format!("{base}/nowhere"), None, None).await;
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (404, Some("NotFound"))
    );

    // Watch: a spec change of cluster c1 arrives as an SSE event.
    create_cluster(&hub, "c1").await;
    let watch_url = format!("{base}/api/v1/watch/works?cluster=c1");
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, BufReader};
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(WAIT))
            .build()
            .into();
        let resp = agent
            .get(&watch_url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .call()
            .expect("watch");
        let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
        let mut event = String::new();
        while let Some(Ok(line)) = lines.next() {
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            }
            if let Some(data) = line.strip_prefix("data: ") {
                return (event, serde_json::from_str::<Value>(data).unwrap());
            }
        }
        panic!("watch stream ended");
    });
    // The watcher may connect after the first put; keep changing until it reports.
    let mut n = 0;
    while !reader.is_finished() && n < 200 {
        put_work(&hub, &work_json("c1", "w1", &format!("v{n}"))).await;
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (event, data) = reader.await.unwrap();
    assert_eq!(event, "spec");
    assert_eq!(data["type"], "spec");
    assert_eq!(data["object"]["metadata"]["name"], "w1");

    let metrics = http("GET", format!("{base}/metrics"), None, None)
        .await
        .body;
    let text = metrics.as_str().unwrap();
    assert!(text.contains("workbus_hub_outbox_depth"));
    assert!(text.contains("workbus_hub_outbox_parked 0"));
    assert!(text.contains("workbus_hub_outbox_parked_total 0"));
    assert!(text.contains("workbus_hub_events_sent_total"));
    assert!(text.contains("workbus_hub_api_rejected_total 1"));
    hub.shutdown().await;
}

/// Issue 17: a second hub on the same data directory is refused with a message naming
/// the holder, and the directory is free again once the first hub has stopped.
#[tokio::test]
async fn a_second_hub_on_one_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("lock");
    let first = start_hub(dir.path(), &source).await;
    let config = workbus_hub::HubConfig {
        store: workbus_hub::StoreSettings::sqlite(dir.path()),
        listen: "127.0.0.1:0".parse().unwrap(),
        source_id: source.clone(),
        ..workbus_hub::HubConfig::new()
    };
    let refused = match workbus_hub::Hub::start(config).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a second hub started on the same data directory"),
    };
    assert!(
        refused.contains("is in use by another hub")
            && refused.contains(&format!("pid {}", std::process::id())),
        "{refused}"
    );
    first.shutdown().await;
    let again = start_hub(dir.path(), &source).await;
    again.shutdown().await;
}
