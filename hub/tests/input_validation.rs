//! Hardened input at the REST API: cluster names, label keys and values, and the names
//! and namespaces of the manifests a work carries are validated with Kubernetes' rules
//! and refused with 422 in the API's JSON error shape (the message names the field) —
//! and nothing is stored.

mod common;

use common::*;
use serde_json::{Value, json};

fn assert_invalid(r: &Resp, field: &str) {
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["code"], 422, "{:?}", r.body);
    assert_eq!(r.body["reason"], "Invalid", "{:?}", r.body);
    let message = r.body["message"].as_str().unwrap();
    assert!(message.contains(field), "{message:?} lacks {field:?}");
    assert!(message.len() < 2_000, "the message repeats a huge input");
}

async fn clusters(hub: &workbus_hub::HubHandle) -> Vec<String> {
    let r = http(
        "GET",
        format!("{}/api/v1/clusters", hub.base_url()),
        None,
        None,
    )
    .await;
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

async fn post_cluster(hub: &workbus_hub::HubHandle, body: Value) -> Resp {
    http(
        "POST",
        format!("{}/api/v1/clusters", hub.base_url()),
        None,
        Some(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn bad_names_and_labels_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("input")).await;
    assert_eq!(create_cluster(&hub, "c1").await.status, 201);

    // A 10 KB cluster name.
    let huge = "a".repeat(10 * 1024);
    assert_invalid(
        &post_cluster(&hub, json!({"name": huge})).await,
        "cluster name",
    );
    // Cluster labels.
    assert_invalid(
        &post_cluster(&hub, json!({"name": "c2", "labels": {"bad key!": "v"}})).await,
        "labels key \"bad key!\"",
    );
    assert_invalid(
        &post_cluster(&hub, json!({"name": "c2", "labels": {"k": "v".repeat(64)}})).await,
        "labels[\"k\"]",
    );
    assert_eq!(clusters(&hub).await, ["c1"]);

    // Work labels.
    let mut work = work_json("c1", "w1", "a");
    work["metadata"]["labels"] = json!({"bad key!": "v"});
    assert_invalid(
        &put_work(&hub, &work).await,
        "metadata.labels key \"bad key!\"",
    );
    work["metadata"]["labels"] = json!({"example.com/ok": "not ok!"});
    assert_invalid(
        &put_work(&hub, &work).await,
        "metadata.labels[\"example.com/ok\"]",
    );
    // A manifest name that walks a path, and a bad manifest namespace.
    let mut work = work_json("c1", "w1", "a");
    work["spec"]["workload"]["manifests"][0]["metadata"]["name"] = json!("../../x y");
    assert_invalid(
        &put_work(&hub, &work).await,
        "spec.workload.manifests[0].metadata.name",
    );
    let mut work = work_json("c1", "w1", "a");
    work["spec"]["workload"]["manifests"][0]["metadata"]["namespace"] = json!("Kube System");
    assert_invalid(
        &put_work(&hub, &work).await,
        "spec.workload.manifests[0].metadata.namespace",
    );
    let mut work = work_json("c1", "w1", "a");
    work["spec"]["workload"]["manifests"][0]["metadata"]["name"] = json!(7);
    assert_invalid(&put_work(&hub, &work).await, "name");
    // Via POST too.
    let mut work = work_json("c1", "w1", "a");
    work["spec"]["workload"]["manifests"][0]["metadata"]["name"] = json!("../../x y");
    let r = http(
        "POST",
        format!("{}/api/v1/works", hub.base_url()),
        None,
        Some(work.to_string()),
    )
    .await;
    assert_invalid(&r, "spec.workload.manifests[0].metadata.name");

    // Nothing was stored.
    assert_eq!(get_work(&hub, "c1", "w1").await.status, 404);

    // What Kubernetes accepts still passes: prefixed keys, empty values, RBAC names.
    let mut work = work_json("c1", "w1", "a");
    work["metadata"]["labels"] = json!({"example.com/tier": "", "app": "A_b.1"});
    work["spec"]["workload"]["manifests"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:demo:reader"}, "rules": []
        }));
    let r = put_work(&hub, &work).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    hub.shutdown().await;
}
