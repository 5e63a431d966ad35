//! Issue 14 end to end, on the embedded broker and on Mosquitto, with simulated
//! clusters behind real agents: a Placement splits three clusters into a canary group
//! and waves; a ManifestWorkReplicaSet rolls a template out group by group, pauses
//! after the canary until it is approved, and — given a template the clusters refuse —
//! stops at the canary and gives it the previous template back. The rollout reads the
//! hub's own placement decisions (no decisions injected), so this also checks that
//! wiring.

use std::sync::Arc;

use serde_json::{Value, json};
use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SIMULATE_FAILURE_ANNOTATION, SimConfig, SimulatedCluster};
use workbus_hub::HubHandle;
use workbus_tests::agents::start_agent;
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::{applied_at, register_cluster, rest, wait_work};
use workbus_tests::unique;

workbus_tests::on_both_brokers!(canary_then_waves_with_an_approval_gate_and_a_rollback);

const NS: &str = "apps";

/// The replica set `web` over Placement `fleet`: one ConfigMap whose data is
/// `version`, annotated to fail on the simulated clusters when `fail` is set.
fn replica_set(version: &str, fail: bool) -> Value {
    let mut cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-config", "namespace": "default"},
        "data": {"version": version}
    });
    if fail {
        cm["metadata"]["annotations"] = json!({SIMULATE_FAILURE_ANNOTATION: "injected"});
    }
    json!({
        "apiVersion": "work.open-cluster-management.io/v1alpha1",
        "kind": "ManifestWorkReplicaSet",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "placementRefs": [{"name": "fleet", "rolloutStrategy": {
                "type": "ProgressivePerGroup",
                "progressivePerGroup": {"progressDeadline": "5m"}
            }}],
            "rollout": {
                "approval": {"afterGroups": [{"groupName": "canary"}]},
                "rollbackOnFailure": true
            },
            "manifestWorkTemplate": {"workload": {"manifests": [cm]}}
        }
    })
}

/// The version of `web-config` the work `web` on `cluster` carries, once applied at a
/// generation of at least `generation`.
async fn applied_version(hub: &HubHandle, cluster: &str, generation: i64) -> String {
    let mut changes = hub.watch();
    let generation_of = |w: &Value| w["metadata"]["generation"].as_i64().unwrap_or(0);
    let work = wait_work(hub, &mut changes, cluster, "web", "the work applied", |w| {
        w.is_some_and(|w| generation_of(w) >= generation && applied_at(Some(w), generation_of(w)))
    })
    .await
    .expect("the work exists");
    work["spec"]["workload"]["manifests"][0]["data"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The replica set's rollout phase.
async fn phase(hub: &HubHandle) -> String {
    let (code, body) = rest(
        hub,
        "GET",
        &format!("/api/v1/namespaces/{NS}/manifestworkreplicasets/web"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["status"]["rollout"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the replica set's phase is `want`, re-reading after each rollout event.
async fn until_phase(hub: &HubHandle, want: &str) {
    let mut events = hub.watch_rollouts();
    let deadline = tokio::time::Instant::now() + workbus_tests::WAIT;
    loop {
        if phase(hub).await == want {
            return;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(_) => {}
            Err(_) => panic!("phase {want} not reached (now {})", phase(hub).await),
        }
    }
}

async fn canary_then_waves_with_an_approval_gate_and_a_rollback(broker: &mut TestBroker) {
    let source = broker.source_id();
    let dir = std::env::temp_dir().join(unique("rollout-e2e"));
    let hub = broker.start_hub(&dir.join("hub"), &source).await;
    // Sorted names: the canary is labelled, the waves follow by name.
    let mut clusters: Vec<String> = (0..3).map(|_| unique("edge")).collect();
    clusters.sort();
    let (canary, waves) = (clusters[0].clone(), clusters[1..].to_vec());
    let mut agents = Vec::new();
    for cluster in &clusters {
        let sim = Arc::new(SimulatedCluster::new(SimConfig {
            ready_after: std::time::Duration::from_millis(50),
            snapshot: None,
        }));
        let config = broker.agent_config(&source, cluster, &dir.join("hub"));
        let store = FileStore::open(&dir.join("agents").join(cluster)).unwrap();
        agents.push(start_agent(config, sim, Arc::new(store)));
        assert_eq!(register_cluster(&hub, cluster).await, 201);
    }
    let (code, body) = rest(
        &hub,
        "POST",
        &format!("/api/v1/clusters/{canary}/labels"),
        Some(json!({"set": {"rollout": "canary"}})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let binding = json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta2",
        "kind": "ManagedClusterSetBinding",
        "metadata": {"name": "global", "namespace": NS},
        "spec": {"clusterSet": "global"}
    });
    let (code, body) = rest(
        &hub,
        "PUT",
        &format!("/api/v1/namespaces/{NS}/managedclustersetbindings/global"),
        Some(binding),
    )
    .await;
    assert!(code == 200 || code == 201, "{code} {body}");
    let placement = json!({
        "apiVersion": "cluster.open-cluster-management.io/v1beta1",
        "kind": "Placement",
        "metadata": {"name": "fleet", "namespace": NS},
        "spec": {
            "clusterSets": ["global"],
            "decisionStrategy": {"groupStrategy": {
                "clustersPerDecisionGroup": 1,
                "decisionGroups": [{"groupName": "canary", "groupClusterSelector": {
                    "labelSelector": {"matchLabels": {"rollout": "canary"}}
                }}]
            }}
        }
    });
    let (code, body) = rest(
        &hub,
        "PUT",
        &format!("/api/v1/namespaces/{NS}/placements/fleet"),
        Some(placement),
    )
    .await;
    assert!(code == 200 || code == 201, "{code} {body}");

    // Version 1: the canary only, then a pause.
    let path = format!("/api/v1/namespaces/{NS}/manifestworkreplicasets/web");
    let (code, body) = rest(&hub, "PUT", &path, Some(replica_set("1", false))).await;
    assert!(code == 200 || code == 201, "{code} {body}");
    assert_eq!(applied_version(&hub, &canary, 1).await, "1");
    until_phase(&hub, "AwaitingApproval").await;
    for cluster in &waves {
        let (code, _) = rest(
            &hub,
            "GET",
            &format!("/api/v1/clusters/{cluster}/works/web"),
            None,
        )
        .await;
        assert_eq!(code, 404, "{cluster} got the work before the approval");
    }

    // Approved: the waves follow and the rollout completes.
    let (code, body) = rest(&hub, "POST", &format!("{path}/approve"), Some(json!({}))).await;
    assert_eq!(code, 200, "{body}");
    for cluster in &waves {
        assert_eq!(applied_version(&hub, cluster, 1).await, "1");
    }
    until_phase(&hub, "Complete").await;

    // Version 2 fails on the canary: rolled back there, never sent to the waves.
    let (code, body) = rest(&hub, "PUT", &path, Some(replica_set("2", true))).await;
    assert_eq!(code, 200, "{body}");
    until_phase(&hub, "RolledBack").await;
    assert_eq!(applied_version(&hub, &canary, 3).await, "1");
    for cluster in &waves {
        let (_, work) = rest(
            &hub,
            "GET",
            &format!("/api/v1/clusters/{cluster}/works/web"),
            None,
        )
        .await;
        assert_eq!(work["metadata"]["generation"], 1, "{cluster} was touched");
    }

    for agent in agents {
        agent.shutdown().await;
    }
    hub.shutdown().await;
}
