//! Placements end to end on a running hub: clusters over REST, a cluster set binding, a
//! Placement with a label selector and `numberOfClusters` → PlacementDecisions; label
//! changes move clusters in and out, a deleted cluster leaves, a new binding or set
//! reschedules, decisions survive a restart (Steady); validation (422) and scoped
//! tokens (403).

mod common;

use std::collections::BTreeSet;

use common::{TOKEN, WAIT, create_cluster, http, http_as, start_hub};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use workbus_hub::HubHandle;
use workbus_hub::watch::PlacementChange;

/// Waits for the next decision change of `ns/name` whose clusters satisfy `pred`.
async fn decided(
    rx: &mut broadcast::Receiver<PlacementChange>,
    ns: &str,
    name: &str,
    what: &str,
    pred: impl Fn(&BTreeSet<String>) -> bool,
) -> PlacementChange {
    let wait = async {
        loop {
            let change = rx.recv().await.expect("placement broadcast open");
            let clusters: BTreeSet<String> = change.clusters.iter().cloned().collect();
            if change.namespace == ns && change.placement == name && pred(&clusters) {
                return change;
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn label(hub: &HubHandle, cluster: &str, body: Value) {
    let r = http(
        "POST",
        format!("{}/api/v1/clusters/{cluster}/labels", hub.base_url()),
        None,
        Some(body.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// A binding of set `set` in namespace `apps`, as YAML.
fn binding_yaml(set: &str, cluster_set: &str) -> String {
    format!(
        "apiVersion: cluster.open-cluster-management.io/v1beta2\nkind: ManagedClusterSetBinding\n\
         metadata: {{name: {set}, namespace: apps}}\nspec: {{clusterSet: {cluster_set}}}\n"
    )
}

async fn get(base: &str, path: &str) -> common::Resp {
    http("GET", format!("{base}{path}"), None, None).await
}

async fn delete(base: &str, path: &str) -> common::Resp {
    http("DELETE", format!("{base}{path}"), None, None).await
}

async fn put_yaml(hub: &HubHandle, path: &str, yaml: &str) -> common::Resp {
    http(
        "PUT",
        format!("{}{path}", hub.base_url()),
        Some("application/yaml"),
        Some(yaml.to_owned()),
    )
    .await
}

const PLACEMENT: &str = r#"
apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata:
  name: web
  namespace: apps
spec:
  numberOfClusters: 2
  clusterSets: [prod]
  predicates:
    - requiredClusterSelector:
        labelSelector:
          matchExpressions:
            - {key: tier, operator: In, values: [web]}
"#;

#[tokio::test]
async fn placements_follow_clusters_bindings_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let source = common::unique("placement");
    let hub = start_hub(dir.path(), &source).await;
    let base = hub.base_url();
    let mut rx = hub.watch_placements();

    // Three prod web clusters and one dev web cluster.
    for name in ["web-a", "web-b", "web-c", "dev-a"] {
        assert_eq!(create_cluster(&hub, name).await.status, 201);
        let set_name = if name.starts_with("dev") {
            "dev"
        } else {
            "prod"
        };
        label(
            &hub,
            name,
            json!({"set": {"tier": "web", "cluster.open-cluster-management.io/clusterset": set_name}}),
        )
        .await;
    }
    let r = http(
        "POST",
        format!("{base}/api/v1/clustersets"),
        None,
        Some(json!({"name": "prod"}).to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // No binding yet: NoManagedClusterSetBindings and one empty decision.
    let r = put_yaml(&hub, "/api/v1/namespaces/apps/placements/web", PLACEMENT).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    decided(&mut rx, "apps", "web", "the first (empty) decision", |c| {
        c.is_empty()
    })
    .await;
    let p = get(&base, "/api/v1/namespaces/apps/placements/web").await;
    let satisfied = &p.body["status"]["conditions"][0];
    assert_eq!(satisfied["reason"], "NoManagedClusterSetBindings");
    let d = get(
        &base,
        "/api/v1/namespaces/apps/placementdecisions?placement=web",
    )
    .await;
    assert_eq!(d.body["items"][0]["metadata"]["name"], "web-decision-1");

    // Bind prod: the two first prod web clusters by name are chosen.
    let r = put_yaml(
        &hub,
        "/api/v1/namespaces/apps/managedclustersetbindings/prod",
        &binding_yaml("prod", "prod"),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["status"]["conditions"][0]["reason"],
        "ClusterSetBound"
    );
    decided(&mut rx, "apps", "web", "two prod clusters", |c| {
        *c == set(&["web-a", "web-b"])
    })
    .await;
    let d = get(&base, "/api/v1/namespaces/apps/placementdecisions").await;
    let item = &d.body["items"][0];
    assert_eq!(
        item["metadata"]["labels"]["cluster.open-cluster-management.io/placement"],
        "web"
    );
    assert_eq!(item["status"]["decisions"][0]["clusterName"], "web-a");
    let p = get(&base, "/api/v1/placements?namespace=apps").await;
    assert_eq!(p.body["items"][0]["status"]["numberOfSelectedClusters"], 2);
    assert_eq!(
        p.body["items"][0]["status"]["conditions"][0]["reason"],
        "AllDecisionsScheduled"
    );

    // web-a stops matching: web-c takes its place (Steady keeps web-b).
    label(&hub, "web-a", json!({"set": {"tier": "db"}})).await;
    decided(&mut rx, "apps", "web", "web-a replaced", |c| {
        *c == set(&["web-b", "web-c"])
    })
    .await;
    // It matches again: Steady keeps the current choice.
    label(&hub, "web-a", json!({"set": {"tier": "web"}})).await;
    // web-b is deleted: web-a comes back.
    let r = delete(&base, "/api/v1/clusters/web-b").await;
    assert_eq!(r.status, 204);
    decided(&mut rx, "apps", "web", "web-b replaced", |c| {
        *c == set(&["web-a", "web-c"])
    })
    .await;

    // Restart: the decisions are kept (nothing re-chosen), the controller resumes.
    hub.shutdown().await;
    let hub = start_hub(dir.path(), &source).await;
    let base = hub.base_url();
    let mut rx = hub.watch_placements();
    let d = get(
        &base,
        "/api/v1/namespaces/apps/placementdecisions?placement=web",
    )
    .await;
    let names: Vec<&str> = d.body["items"][0]["status"]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["clusterName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["web-a", "web-c"]);
    // A new prod web cluster is not needed (numberOfClusters 2), but removing one is
    // noticed after the restart too.
    assert_eq!(create_cluster(&hub, "web-d").await.status, 201);
    label(
        &hub,
        "web-d",
        json!({"set": {"tier": "web", "cluster.open-cluster-management.io/clusterset": "prod"}}),
    )
    .await;
    label(
        &hub,
        "web-c",
        json!({"set": {"cluster.open-cluster-management.io/clusterset": "dev"}}),
    )
    .await;
    decided(&mut rx, "apps", "web", "web-c left the set", |c| {
        *c == set(&["web-a", "web-d"])
    })
    .await;

    // Unbinding empties the placement.
    let r = delete(
        &base,
        "/api/v1/namespaces/apps/managedclustersetbindings/prod",
    )
    .await;
    assert_eq!(r.status, 204);
    decided(&mut rx, "apps", "web", "unbound", |c| c.is_empty()).await;
    let b = get(&base, "/api/v1/managedclustersetbindings").await;
    assert_eq!(b.body["items"], json!([]));

    // Deleting the placement takes its decisions.
    let r = delete(&base, "/api/v1/namespaces/apps/placements/web").await;
    assert_eq!(r.status, 204);
    let d = get(&base, "/api/v1/namespaces/apps/placementdecisions").await;
    assert_eq!(d.body["items"], json!([]));
    let r = get(&base, "/api/v1/namespaces/apps/placements/web").await;
    assert_eq!(r.status, 404);
    hub.shutdown().await;
}

#[tokio::test]
async fn invalid_placements_and_scoped_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &common::unique("placement-bad")).await;
    let base = hub.base_url();
    let bad = PLACEMENT.replace("operator: In", "operator: Near");
    let r = put_yaml(&hub, "/api/v1/namespaces/apps/placements/web", &bad).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains(
            "matchExpressions[0].operator: Invalid value: \"Near\": not a valid selector operator"
        ),
        "{:?}",
        r.body
    );
    let r = put_yaml(&hub, "/api/v1/namespaces/apps/placements/other", PLACEMENT).await;
    assert_eq!(r.status, 400, "name mismatch: {:?}", r.body);
    let r = put_yaml(
        &hub,
        "/api/v1/namespaces/apps/managedclustersetbindings/prod",
        &binding_yaml("prod", "dev"),
    )
    .await;
    assert_eq!(r.status, 422, "{:?}", r.body);

    // A scoped writer may not touch placements.
    let r = http(
        "POST",
        format!("{base}/api/v1/tokens"),
        None,
        Some(json!({"name": "scoped", "role": "writer", "clusters": ["c1"]}).to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let scoped = r.body["token"].as_str().unwrap().to_owned();
    let r = http_as(
        Some(&scoped),
        "PUT",
        format!("{base}/api/v1/namespaces/apps/placements/web"),
        Some("application/yaml"),
        Some(PLACEMENT.to_owned()),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_ne!(scoped, TOKEN);
    hub.shutdown().await;
}

/// A registration event from `cluster`'s agent.
fn agent_event(
    cluster: &str,
    sub: workbus_schemas::event_type::SubResource,
    object: workbus_schemas::registration::RegistrationObject,
    action: workbus_schemas::event_type::Action,
) -> workbus_schemas::Event {
    workbus_schemas::registration::encode_registration_event(
        cluster,
        sub,
        action,
        &object,
        chrono::Utc::now(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_cluster_going_unknown_leaves_unless_tolerated() {
    use workbus_hub::clock::Clock;
    use workbus_schemas::event_type::{Action, SubResource};
    use workbus_schemas::registration::names::{condition, reason};
    use workbus_schemas::registration::{Lease, ManagedCluster, RegistrationObject};
    use workbus_schemas::work::Time;
    use workbus_schemas::work::status::Condition;

    let dir = tempfile::tempdir().unwrap();
    let source = common::unique("placement-health");
    let (clock, hand) = Clock::manual(chrono::Utc::now());
    let c = clock.clone();
    let hub = common::start_hub_adjusted(&dir.path().join("hub"), &source, move |config| {
        config.registration.clock = c;
        config.registration.health_interval = std::time::Duration::from_millis(50);
    })
    .await;
    let base = hub.base_url();
    let mut rx = hub.watch_placements();

    // A joined, accepted, available cluster (its lease renewed now).
    let cluster = common::unique("edge");
    let agent = common::FakeAgent::connect(&source, &cluster).await;
    agent
        .publish(&agent_event(
            &cluster,
            SubResource::Spec,
            RegistrationObject::ManagedCluster(ManagedCluster::named(&cluster)),
            Action::CreateRequest,
        ))
        .await;
    let name = cluster.clone();
    common::eventually("joined", || {
        let name = name.clone();
        let hub = &hub;
        async move {
            hub.store()
                .run(move |s| s.get_cluster(&name))
                .await
                .unwrap()
                .is_some()
        }
    })
    .await;
    hub.registration().accept(&cluster).await.unwrap();
    let mut status = ManagedCluster::named(&cluster);
    status.status.conditions = vec![Condition::new(
        condition::AVAILABLE,
        "True",
        reason::MANAGED_CLUSTER_AVAILABLE,
        "Managed cluster is available",
        Time::new(clock.now()),
    )];
    agent
        .publish(&agent_event(
            &cluster,
            SubResource::Status,
            RegistrationObject::ManagedCluster(status),
            Action::UpdateRequest,
        ))
        .await;
    agent
        .publish(&agent_event(
            &cluster,
            SubResource::Spec,
            RegistrationObject::Lease(Lease::for_cluster(&cluster, clock.now())),
            Action::UpdateRequest,
        ))
        .await;

    // Two placements over `global`: one tolerates unreachable for 300 s.
    let r = put_yaml(
        &hub,
        "/api/v1/namespaces/apps/managedclustersetbindings/global",
        &binding_yaml("global", "global"),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let strict = PLACEMENT_ANY
        .replace("NAME", "strict")
        .replace("TOLERATIONS", "[]");
    let tolerant = PLACEMENT_ANY.replace("NAME", "tolerant").replace(
        "TOLERATIONS",
        "[{key: cluster.open-cluster-management.io/unreachable, operator: Exists, tolerationSeconds: 300}]",
    );
    for (name, yaml) in [("strict", &strict), ("tolerant", &tolerant)] {
        let r = put_yaml(
            &hub,
            &format!("/api/v1/namespaces/apps/placements/{name}"),
            yaml,
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        decided(
            &mut rx,
            "apps",
            name,
            "the available cluster selected",
            |c| c.contains(&cluster),
        )
        .await;
    }

    // Lease silent for 121 s: Unknown with the unreachable taint. The strict placement
    // drops the cluster; the tolerant one keeps it for 300 s, then drops it.
    hand.advance(chrono::Duration::seconds(121));
    decided(
        &mut rx,
        "apps",
        "strict",
        "unreachable cluster dropped",
        |c| !c.contains(&cluster),
    )
    .await;
    let d = get(
        &base,
        "/api/v1/namespaces/apps/placementdecisions?placement=tolerant",
    )
    .await;
    assert_eq!(
        d.body["items"][0]["status"]["decisions"][0]["clusterName"],
        cluster.as_str()
    );
    hand.advance(chrono::Duration::seconds(300));
    decided(&mut rx, "apps", "tolerant", "toleration expired", |c| {
        !c.contains(&cluster)
    })
    .await;
    hub.shutdown().await;
}

/// A Placement over every bound cluster with `NAME` and `TOLERATIONS` to fill in.
const PLACEMENT_ANY: &str = "apiVersion: cluster.open-cluster-management.io/v1beta1
kind: Placement
metadata: {name: NAME, namespace: apps}
spec:
  tolerations: TOLERATIONS
";

/// Regression: the controller keeps clusters in memory and follows cluster
/// notifications, so a cluster written to the store without one (a fleet registered by
/// a tool, as the benchmark harness does) was never selected. A binding or set change
/// now re-reads the clusters.
#[tokio::test]
async fn a_binding_change_picks_up_clusters_written_without_a_notification() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &common::unique("placement-quiet")).await;
    let mut rx = hub.watch_placements();
    hub.store()
        .write(workbus_hub::store::writes::CreateCluster {
            name: "quiet".into(),
            labels: Default::default(),
            now: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let r = put_yaml(
        &hub,
        "/api/v1/namespaces/apps/managedclustersetbindings/global",
        &binding_yaml("global", "global"),
    )
    .await;
    assert!(r.status == 200 || r.status == 201, "{:?}", r.body);
    let placement = "apiVersion: cluster.open-cluster-management.io/v1beta1\nkind: Placement\n\
                     metadata: {name: all, namespace: apps}\nspec: {clusterSets: [global]}\n";
    let r = put_yaml(&hub, "/api/v1/namespaces/apps/placements/all", placement).await;
    assert!(r.status == 200 || r.status == 201, "{:?}", r.body);
    decided(&mut rx, "apps", "all", "the quiet cluster selected", |c| {
        *c == set(&["quiet"])
    })
    .await;
}
