//! The `workbus-hub` binary's client commands against an in-process hub over HTTP:
//! output shapes, server errors printed kubectl-style, and exit codes.

mod common;

use std::process::Command;

use common::*;

async fn run(server: &str, args: &[&str]) -> (bool, String, String) {
    let server = server.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_workbus-hub"))
            .args(&args)
            .env("WORKBUS_SERVER", &server)
            .env("WORKBUS_TOKEN", TOKEN)
            .env_remove("WORKBUS_TOKEN_FILE")
            .output()
            .expect("run the binary");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn kubectl_like_commands() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli")).await;
    let server = hub.base_url();

    let (ok, out, _) = run(&server, &["create", "cluster", "c1", "-l", "env=dev"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "cluster/c1 created");
    let (ok, out, _) = run(&server, &["get", "clusters"]).await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME   HUB ACCEPTED   JOINED   AVAILABLE   AGE"),
        "{out}"
    );
    // A REST-created cluster counts as accepted.
    assert!(lines[1].starts_with("c1     true"), "{out}");
    let (ok, out, _) = run(&server, &["describe", "cluster", "c1"]).await;
    assert!(ok && out.contains("Labels:        env=dev"), "{out}");

    let file = dir.path().join("work.yaml");
    std::fs::write(
        &file,
        "apiVersion: work.open-cluster-management.io/v1\nkind: ManifestWork\nmetadata:\n  name: web\n  namespace: c1\nspec:\n  workload:\n    manifests:\n    - apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: cfg, namespace: default}\n---\napiVersion: work.open-cluster-management.io/v1\nkind: ManifestWork\nmetadata:\n  name: api\n  namespace: c1\nspec:\n  workload:\n    manifests:\n    - apiVersion: v1\n      kind: ConfigMap\n      metadata: {name: api, namespace: default}\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (ok, out, err) = run(&server, &["apply", "-f", f]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "manifestwork.work.open-cluster-management.io/web created",
            "manifestwork.work.open-cluster-management.io/api created"
        ]
    );
    let (_, out, _) = run(&server, &["apply", "-f", f]).await;
    assert!(out.contains("web unchanged"));

    let (ok, out, _) = run(&server, &["get", "works", "-n", "c1"]).await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE   NAME"), "{out}");
    assert_eq!(lines.len(), 3);
    let (ok, out, _) = run(&server, &["get", "works", "-o", "wide"]).await;
    assert!(ok && out.contains("UID"));
    let (ok, out, _) = run(&server, &["get", "work", "web", "-n", "c1", "-o", "json"]).await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["metadata"]["generation"], 1);
    let (ok, out, _) = run(&server, &["get", "work", "web", "-n", "c1"]).await;
    assert!(ok && out.contains("kind: ManifestWork"));
    let (ok, out, _) = run(&server, &["describe", "work", "web", "-n", "c1"]).await;
    assert!(ok);
    assert!(out.contains("Generation:    1"));
    assert!(out.contains("Last status:   <none yet>"));

    let (ok, _, err) = run(&server, &["get", "work", "nope", "-n", "c1"]).await;
    assert!(!ok);
    assert!(err.contains("Error from server (NotFound)"), "{err}");
    let (ok, out, _) = run(&server, &["delete", "work", "web", "-n", "c1"]).await;
    assert!(ok && out.contains("deleted"));
    let (ok, _, err) = run(&server, &["delete", "cluster", "c1"]).await;
    assert!(!ok && err.contains("Conflict"), "{err}");
    // No agent confirms here: the cascade waits, says so, and names the way out.
    let (ok, _, err) = run(
        &server,
        &["delete", "cluster", "c1", "--cascade", "--timeout", "0"],
    )
    .await;
    assert!(!ok, "{err}");
    assert!(
        err.contains("waiting for the agent of \"c1\" to delete 2 work(s)"),
        "{err}"
    );
    assert!(err.contains("--cascade --force"), "{err}");
    let (ok, _, err) = run(&server, &["delete", "cluster", "c1", "--force"]).await;
    assert!(
        !ok && err.contains("--cascade"),
        "--force needs --cascade: {err}"
    );
    let (ok, out, _) = run(&server, &["delete", "work", "web", "-n", "c1", "--force"]).await;
    assert!(
        ok && out.contains("removed without the agent's confirmation"),
        "{out}"
    );
    let (ok, _, err) = run(&server, &["get", "work", "web", "-n", "c1"]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    let (ok, out, err) = run(
        &server,
        &["delete", "cluster", "c1", "--cascade", "--force"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "cluster \"c1\" deleted with its works, without the agent's confirmation"
    );
    let (ok, out, _) = run(&server, &["get", "clusters"]).await;
    assert!(ok && !out.contains("c1 "), "{out}");
    let (ok, _, err) = run("http://127.0.0.1:1", &["get", "clusters"]).await;
    assert!(!ok && err.contains("cannot talk to the hub"), "{err}");
    hub.shutdown().await;
}

/// `get clusters` follows a joining cluster through acceptance and its agent's status;
/// `accept`, `deny`, `label`, `describe cluster`, cluster sets and bootstrap tokens.
#[tokio::test]
async fn cluster_registration_commands() {
    use workbus_schemas::event_type::{Action, SubResource};
    use workbus_schemas::registration::names::{condition, reason};
    use workbus_schemas::registration::{
        ManagedCluster, RegistrationObject, encode_registration_event,
    };
    use workbus_schemas::work::Time;
    use workbus_schemas::work::status::Condition;

    let dir = tempfile::tempdir().unwrap();
    let source = unique("cli-reg");
    let hub = start_hub(dir.path(), &source).await;
    let server = hub.base_url();
    let cluster = unique("edge");
    let mut agent = FakeAgent::connect(&source, &cluster).await;
    let send = |mc: ManagedCluster, sub: SubResource, action: Action| {
        encode_registration_event(
            &mc.metadata.name.clone(),
            sub,
            action,
            &RegistrationObject::ManagedCluster(mc),
            chrono::Utc::now(),
        )
        .unwrap()
    };
    agent
        .publish(&send(
            ManagedCluster::named(&cluster),
            SubResource::Spec,
            Action::CreateRequest,
        ))
        .await;
    agent
        .next("join echo", |e| {
            is_type(e, "managedclusters.spec.create_request")
        })
        .await;
    let row = |out: &str| {
        out.lines()
            .find(|l| l.starts_with(&cluster))
            .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let (ok, out, _) = run(&server, &["get", "clusters"]).await;
    assert!(ok);
    // Not accepted; JOINED and AVAILABLE empty (no such conditions yet), then AGE.
    assert!(row(&out).starts_with(&format!("{cluster} false ")), "{out}");
    assert!(!out.contains("True"), "{out}");

    let (ok, out, err) = run(&server, &["accept", "cluster", &cluster]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("cluster/{cluster} accepted"));
    let mut status = ManagedCluster::named(&cluster);
    let now = Time::now();
    status.status.conditions = vec![
        Condition::new(
            condition::JOINED,
            "True",
            reason::MANAGED_CLUSTER_JOINED,
            "Managed cluster joined",
            now,
        ),
        Condition::new(
            condition::AVAILABLE,
            "True",
            reason::MANAGED_CLUSTER_AVAILABLE,
            "Managed cluster is available",
            now,
        ),
    ];
    agent
        .publish(&send(status, SubResource::Status, Action::UpdateRequest))
        .await;
    let mut out = String::new();
    for _ in 0..200 {
        out = run(&server, &["get", "clusters"]).await.1;
        if row(&out) == format!("{cluster} true True True") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(row(&out), format!("{cluster} true True True"), "{out}");

    let (ok, _, err) = run(&server, &["label", "cluster", &cluster, "tier=gold"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        &server,
        &["create", "clusterset", "gold", "-l", "tier=gold"],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(&server, &["create", "clusterset", "blue"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(&server, &["clusterset", "set", &cluster, "blue"]).await;
    assert!(ok, "{err}");
    let (ok, out, _) = run(&server, &["get", "clustersets"]).await;
    assert!(ok);
    let sets: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        sets.contains(&"blue ExclusiveClusterSetLabel 1".to_string()),
        "{out}"
    );
    assert!(
        sets.contains(&"default ExclusiveClusterSetLabel 0".to_string()),
        "{out}"
    );
    assert!(sets.contains(&"gold tier=gold 1".to_string()), "{out}");
    assert!(
        sets.contains(&"global <all clusters> 1".to_string()),
        "{out}"
    );
    let (ok, _, err) = run(&server, &["delete", "clusterset", "global"]).await;
    assert!(!ok && err.contains("Conflict"), "{err}");
    let (ok, out, _) = run(&server, &["describe", "cluster", &cluster]).await;
    assert!(ok);
    assert!(out.contains("Hub accepts:   true"), "{out}");
    assert!(out.contains("ManagedClusterJoined"), "{out}");
    assert!(
        out.contains("cluster.open-cluster-management.io/clusterset=blue"),
        "{out}"
    );

    let (ok, secret, err) = run(
        &server,
        &[
            "token",
            "create",
            "--bootstrap",
            "--ttl",
            "1h",
            "--auto-accept",
            "--name",
            "join-edge",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(secret.trim().starts_with("wbt_"));
    assert!(err.contains("auto-accept"), "{err}");
    let (ok, out, _) = run(&server, &["token", "list"]).await;
    assert!(ok && out.contains("bootstrap (auto-accept)"), "{out}");
    let (ok, _, err) = run(&server, &["token", "revoke", "join-edge"]).await;
    assert!(ok, "{err}");
    let (_, out, _) = run(&server, &["token", "list"]).await;
    assert!(out.contains("bootstrap (revoked)"), "{out}");

    let (ok, out, err) = run(&server, &["deny", "cluster", &cluster]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("cluster/{cluster} denied"));
    let (_, out, _) = run(&server, &["get", "clusters"]).await;
    assert!(row(&out).starts_with(&format!("{cluster} false")), "{out}");
    hub.shutdown().await;
}

#[tokio::test]
async fn token_commands_through_the_api_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli-token")).await;
    let server = hub.base_url();
    let (ok, secret, err) = run(
        &server,
        &[
            "token",
            "create",
            "--role",
            "reader",
            "--name",
            "viewer",
            "--clusters",
            "a,b",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let secret = secret.trim().to_string();
    assert!(secret.starts_with("wbt_"), "{secret}");
    assert!(err.contains("shown only this once"), "{err}");
    let (ok, out, _) = run(&server, &["token", "list"]).await;
    assert!(ok);
    assert!(out.contains("viewer") && out.contains("a,b"), "{out}");
    assert!(!out.contains(&secret));
    // The reader's token reads but cannot manage tokens.
    let (ok, _, err) = run(&server, &["--token", &secret, "token", "list"]).await;
    assert!(!ok && err.contains("Forbidden"), "{err}");
    let (ok, out, _) = run(&server, &["token", "revoke", "viewer"]).await;
    assert!(ok && out.contains("revoked"));
    let (ok, _, err) = run(&server, &["--token", &secret, "get", "clusters"]).await;
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    hub.shutdown().await;
    // Offline, on the data directory: the way in without any token.
    let data = dir.path().to_str().unwrap().to_string();
    let (ok, rescue, err) = run(
        &server,
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "rescue",
            "--offline",
            "--data-dir",
            &data,
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, out, _) = run(
        &server,
        &["token", "list", "--offline", "--data-dir", &data],
    )
    .await;
    assert!(
        ok && out.contains("rescue") && out.contains("offline"),
        "{out}"
    );
    let hub = start_hub(dir.path(), &unique("cli-token")).await;
    let (ok, _, err) = run(
        &hub.base_url(),
        &["--token", rescue.trim(), "token", "list"],
    )
    .await;
    assert!(ok, "{err}");
    hub.shutdown().await;
}

#[tokio::test]
async fn placement_commands() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli-placement")).await;
    let server = hub.base_url();
    let mut changes = hub.watch_placements();
    for name in ["c1", "c2"] {
        let (ok, _, err) = run(&server, &["create", "cluster", name, "-l", "env=prod"]).await;
        assert!(ok, "{err}");
    }
    let file = dir.path().join("placement.yaml");
    std::fs::write(
        &file,
        "apiVersion: cluster.open-cluster-management.io/v1beta2\nkind: ManagedClusterSetBinding\n\
         metadata: {name: global, namespace: apps}\nspec: {clusterSet: global}\n---\n\
         apiVersion: cluster.open-cluster-management.io/v1beta1\nkind: Placement\n\
         metadata: {name: prod, namespace: apps}\nspec:\n  numberOfClusters: 1\n  predicates:\n\
         \x20 - requiredClusterSelector:\n        labelSelector: {matchLabels: {env: prod}}\n",
    )
    .unwrap();
    let (ok, out, err) = run(&server, &["apply", "-f", file.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "managedclustersetbinding.cluster.open-cluster-management.io/global created",
            "placement.cluster.open-cluster-management.io/prod created",
        ]
    );
    tokio::time::timeout(WAIT, async {
        loop {
            let c = changes.recv().await.unwrap();
            if c.placement == "prod" && c.clusters == vec!["c1".to_string()] {
                break;
            }
        }
    })
    .await
    .expect("placement decided");

    let (ok, out, _) = run(&server, &["get", "placements", "-n", "apps"]).await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME   SUCCEEDED   REASON                  SELECTEDCLUSTERS   AGE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("prod   True        AllDecisionsScheduled   1"),
        "{out}"
    );
    let (ok, out, _) = run(&server, &["get", "placements", "-A"]).await;
    assert!(ok && out.starts_with("NAMESPACE   NAME"), "{out}");
    // One by name, as kubectl: the table's row, or the object itself.
    let (ok, out, _) = run(&server, &["get", "placement", "prod", "-n", "apps"]).await;
    assert!(ok, "{out}");
    assert!(
        out.lines().nth(1).unwrap().starts_with("prod   True"),
        "{out}"
    );
    let (ok, out, _) = run(
        &server,
        &["get", "placement", "prod", "-n", "apps", "-o", "json"],
    )
    .await;
    assert!(ok, "{out}");
    let one: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(one["kind"], "Placement");
    assert_eq!(one["metadata"]["name"], "prod");
    assert_eq!(one["status"]["numberOfSelectedClusters"], 1);
    let (ok, _, err) = run(&server, &["get", "placement", "nope", "-n", "apps"]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    let (ok, _, err) = run(&server, &["get", "placement", "prod", "-A"]).await;
    assert!(!ok && err.contains("-A"), "{err}");
    let (ok, out, _) = run(
        &server,
        &["get", "placementdecisions", "-n", "apps", "-o", "wide"],
    )
    .await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out}");
    assert!(lines[1].starts_with("prod-decision-1"), "{out}");
    assert!(
        lines[1].trim_end().ends_with("prod        0       c1"),
        "{out}"
    );
    let (ok, out, _) = run(
        &server,
        &["get", "placementdecisions", "-n", "apps", "-o", "json"],
    )
    .await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["items"][0]["status"]["decisions"][0]["clusterName"], "c1");
    let (ok, out, err) = run(
        &server,
        &["create", "clustersetbinding", "default", "-n", "apps"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "managedclustersetbinding/default created");
    let (ok, out, _) = run(&server, &["get", "clustersetbindings"]).await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE   NAME      BOUND   AGE"),
        "{out}"
    );
    assert!(lines[1].starts_with("apps        default   True"), "{out}");
    assert!(lines[2].starts_with("apps        global    True"), "{out}");
    let (ok, out, _) = run(&server, &["delete", "placement", "prod", "-n", "apps"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "placement \"prod\" deleted");
    let (ok, _, err) = run(&server, &["get", "placements", "-n", "apps"]).await;
    assert!(ok && err.contains("No resources found"), "{err}");
    let (ok, _, err) = run(&server, &["delete", "placement", "prod", "-n", "apps"]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    hub.shutdown().await;
}

/// Karmada-style: `apply -f deployment.yaml --placement P` wraps plain Kubernetes
/// objects into one ManifestWorkReplicaSet (rollout `All`) that fans them out to the
/// Placement's clusters; workbus's own kinds are refused with that flag.
#[tokio::test]
async fn apply_with_a_placement_wraps_plain_objects_into_a_replica_set() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli-wrap")).await;
    let server = hub.base_url();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\n\
         spec: {replicas: 2}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: default}\n\
         data: {size: small}\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (ok, out, err) = run(
        &server,
        &["apply", "-f", f, "--placement", "fleet", "-n", "apps"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "manifestworkreplicaset.work.open-cluster-management.io/web created (2 objects for placement fleet)"
    );
    let (ok, out, err) = run(&server, &["get", "mwrs", "-n", "apps", "-o", "json"]).await;
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rs = &list["items"][0];
    assert_eq!(rs["metadata"]["name"], "web");
    assert_eq!(rs["spec"]["placementRefs"][0]["name"], "fleet");
    assert_eq!(
        rs["spec"]["placementRefs"][0]["rolloutStrategy"]["type"],
        "All"
    );
    let manifests = &rs["spec"]["manifestWorkTemplate"]["workload"]["manifests"];
    assert_eq!(manifests[0]["kind"], "Deployment");
    assert_eq!(manifests[1]["data"]["size"], "small");

    // Named explicitly; applying the same objects again changes nothing.
    let named = [
        "apply",
        "-f",
        f,
        "--placement",
        "fleet",
        "-n",
        "apps",
        "--name",
        "web-app",
    ];
    let (ok, out, _) = run(&server, &named).await;
    assert!(ok && out.contains("/web-app created"), "{out}");
    let (ok, out, _) = run(&server, &named).await;
    assert!(ok && out.contains("/web-app unchanged"), "{out}");

    // A ManifestWork is not a plain object to wrap.
    let work = dir.path().join("work.yaml");
    std::fs::write(
        &work,
        "apiVersion: work.open-cluster-management.io/v1\nkind: ManifestWork\n\
         metadata: {name: w, namespace: c1}\nspec: {workload: {manifests: []}}\n",
    )
    .unwrap();
    let (ok, _, err) = run(
        &server,
        &[
            "apply",
            "-f",
            work.to_str().unwrap(),
            "--placement",
            "fleet",
        ],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("not a ManifestWork"), "{err}");
}
