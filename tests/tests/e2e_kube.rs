//! End to end on the Kubernetes target: REST call → hub → MQTT (embedded broker and
//! Mosquitto) → agent with `--target kube` → the Kubernetes API test server → status
//! back at the hub; then the work's deletion removing what it applied.

use std::sync::Arc;
use workbus_testkit::kube_clients::applied_manifest_work_crd;

use serde_json::{Value, json};
use workbus_agent::runtime;
use workbus_agent::store::FileStore;
use workbus_agent::target::kube::{KubeConfigSource, KubeTarget};
use workbus_kube_apiserver::{KubeApiServer, ServerConfig};
use workbus_tests::agents::agent_config;
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::{condition, delete_work, register_cluster, rest, start_hub, wait_work};
use workbus_tests::unique;

workbus_tests::on_both_brokers!(work_applied_to_kubernetes_and_deleted);

fn work(cluster: &str, name: &str) -> Value {
    json!({
        "apiVersion": workbus_schemas::work::ManifestWork::API_VERSION,
        "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": cluster},
        "spec": {"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}, "data": {"k": "v"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
        ]}}
    })
}

fn is_true(work: Option<&Value>, type_: &str) -> bool {
    work.and_then(|w| condition(w, type_))
        .is_some_and(|c| c["status"] == "True")
}

async fn work_applied_to_kubernetes_and_deleted(broker: &mut TestBroker) {
    let server = KubeApiServer::start(ServerConfig {
        crds: vec![applied_manifest_work_crd()],
        ..ServerConfig::default()
    })
    .await
    .expect("kube API test server");
    let source = unique("hub");
    let cluster = unique("edge");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "default").unwrap();
    let hub = start_hub(
        &dir.path().join("hub"),
        &source,
        broker.host(),
        broker.port(),
    )
    .await;
    let mut changes = hub.watch();
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    let path = format!("/api/v1/clusters/{cluster}/works/shop");
    let (code, created) = rest(&hub, "PUT", &path, Some(work(&cluster, "shop"))).await;
    assert!(code == 200 || code == 201, "create answered {code}");
    assert!(created["metadata"]["uid"].is_string(), "{created}");

    let target = KubeTarget::connect(&KubeConfigSource::File(kubeconfig))
        .await
        .expect("connect");
    let agent = runtime::start(
        agent_config(broker.host(), broker.port(), &source, &cluster),
        Arc::new(target),
        Arc::new(FileStore::open(&dir.path().join("agent")).unwrap()),
    )
    .expect("agent starts");

    let applied = wait_work(
        &hub,
        &mut changes,
        &cluster,
        "shop",
        "applied and available",
        |w| is_true(w, "Applied") && is_true(w, "Available"),
    )
    .await
    .unwrap();
    let manifests = applied["status"]["resourceStatus"]["manifests"]
        .as_array()
        .expect("manifest statuses");
    assert_eq!(manifests.len(), 3);
    let deploy = server
        .object("apps/v1", "Deployment", "shop", "web")
        .expect("the Deployment exists");
    // Owned by the work's AppliedManifestWork, named after the hub (broker host) hash
    // and the work, and listing what was applied.
    let amws = server.objects(
        workbus_schemas::work::ManifestWork::API_VERSION,
        "AppliedManifestWork",
        None,
    );
    assert_eq!(amws.len(), 1, "{amws:?}");
    let amw = &amws[0];
    let hub_host = format!("{}:{}", broker.host(), broker.port());
    assert_eq!(
        amw["metadata"]["name"],
        format!(
            "{}-shop",
            workbus_schemas::work::applied::hub_hash(&hub_host)
        )
    );
    assert_eq!(amw["spec"]["manifestWorkName"], "shop");
    assert_eq!(
        amw["status"]["appliedResources"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        deploy["metadata"]["ownerReferences"][0]["uid"],
        amw["metadata"]["uid"]
    );
    assert_eq!(
        deploy["metadata"]["ownerReferences"][0]["kind"],
        "AppliedManifestWork"
    );
    assert_eq!(
        server.object("v1", "ConfigMap", "shop", "cfg").unwrap()["data"]["k"],
        "v"
    );

    // Deleting the work deletes its objects, then the work is gone at the hub.
    assert_eq!(delete_work(&hub, &cluster, "shop").await, 202);
    wait_work(&hub, &mut changes, &cluster, "shop", "the work gone", |w| {
        w.is_none()
    })
    .await;
    assert!(
        server
            .object("apps/v1", "Deployment", "shop", "web")
            .is_none()
    );
    assert!(server.object("v1", "ConfigMap", "shop", "cfg").is_none());
    assert!(server.object("v1", "Namespace", "", "shop").is_none());
    assert!(
        server
            .objects(
                workbus_schemas::work::ManifestWork::API_VERSION,
                "AppliedManifestWork",
                None
            )
            .is_empty(),
        "the AppliedManifestWork goes with the work"
    );

    agent.shutdown().await;
    hub.shutdown().await;
    server.shutdown().await;
}
