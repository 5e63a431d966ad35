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
    // A named get is a table row, as kubectl's; -o yaml shows the object.
    let (ok, out, _) = run(&server, &["get", "work", "web", "-n", "c1"]).await;
    assert!(
        ok && out.starts_with("NAMESPACE   NAME") && out.contains("\nc1          web"),
        "{out}"
    );
    let (ok, out, _) = run(&server, &["get", "work", "web", "-n", "c1", "-o", "yaml"]).await;
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

/// Writes `text` to `name` in `dir` and returns the path as a string.
fn write_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A ManifestWork document with labels.
fn work_yaml(cluster: &str, name: &str, labels: &str) -> String {
    format!(
        "apiVersion: work.open-cluster-management.io/v1\nkind: ManifestWork\nmetadata:\n  \
         name: {name}\n  namespace: {cluster}\n  labels: {labels}\nspec:\n  workload:\n    \
         manifests:\n    - apiVersion: v1\n      kind: ConfigMap\n      metadata: {{name: {name}, namespace: default}}\n"
    )
}

/// `get TYPE NAME` for every type, every `-o` format, `--no-headers`,
/// `--ignore-not-found`, set-based `-l` (clusters client-side, works on the hub),
/// `-A`, applying the List `get -o yaml` prints, `delete -f`.
#[tokio::test]
async fn get_formats_selectors_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli-get")).await;
    let server = hub.base_url();
    for (name, labels) in [
        ("c1", ["-l", "env=dev", "-l", "tier=edge"]),
        ("c2", ["-l", "env=prod", "-l", "zone=a"]),
    ] {
        let mut args = vec!["create", "cluster", name];
        args.extend(labels);
        assert!(run(&server, &args).await.0);
    }
    // Set-based selectors on clusters (client-side).
    assert_eq!(
        succeed(
            &server,
            &["get", "clusters", "-l", "env in (dev,qa)", "-o", "name"]
        )
        .await,
        "managedcluster.cluster.open-cluster-management.io/c1\n"
    );
    assert_eq!(
        succeed(
            &server,
            &["get", "clusters", "-l", "env!=dev", "-o", "name"]
        )
        .await,
        "managedcluster.cluster.open-cluster-management.io/c2\n"
    );
    assert_eq!(
        succeed(&server, &["get", "clusters", "-l", "!tier", "-o", "name"]).await,
        "managedcluster.cluster.open-cluster-management.io/c2\n"
    );
    assert_eq!(
        succeed(
            &server,
            &[
                "get",
                "clusters",
                "-l",
                "tier,env notin (prod)",
                "-o",
                "name"
            ]
        )
        .await,
        "managedcluster.cluster.open-cluster-management.io/c1\n"
    );
    let (ok, _, err) = run(&server, &["get", "clusters", "-l", "env in dev"]).await;
    assert!(!ok && err.contains("-l"), "{err}");
    // Named gets of cluster-scoped types.
    let out = succeed(&server, &["get", "cluster", "c1", "--no-headers"]).await;
    assert!(out.starts_with("c1 ") && out.lines().count() == 1, "{out}");
    assert_eq!(
        succeed(
            &server,
            &["get", "clusterset", "global", "-o", "jsonpath={.name}"]
        )
        .await,
        "global"
    );
    let (ok, _, err) = run(&server, &["get", "cluster", "nope"]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    assert_eq!(
        succeed(&server, &["get", "cluster", "nope", "--ignore-not-found"]).await,
        ""
    );
    assert_eq!(
        succeed(
            &server,
            &["get", "clusterset", "nope", "--ignore-not-found"]
        )
        .await,
        ""
    );
    assert_eq!(
        succeed(
            &server,
            &["get", "placement", "nope", "-n", "x", "--ignore-not-found"]
        )
        .await,
        ""
    );

    // Works, labelled, in two clusters.
    let mut docs = String::new();
    for (c, n, l) in [
        ("c1", "web", "{app: web, tier: front}"),
        ("c1", "api", "{app: api}"),
        ("c2", "web", "{app: web}"),
    ] {
        docs.push_str(&work_yaml(c, n, l));
        docs.push_str("---\n");
    }
    let file = write_file(dir.path(), "works.yaml", &docs);
    assert!(run(&server, &["apply", "-f", &file]).await.0);
    // Set-based selectors on works, evaluated by the hub.
    assert_eq!(
        succeed(
            &server,
            &[
                "get",
                "works",
                "-A",
                "-l",
                "app notin (api),!tier",
                "-o",
                "name"
            ]
        )
        .await,
        "manifestwork.work.open-cluster-management.io/web\n"
    );
    assert_eq!(
        succeed(
            &server,
            &[
                "get",
                "works",
                "-n",
                "c1",
                "-l",
                "app",
                "-o",
                "jsonpath={.items[*].metadata.name}"
            ]
        )
        .await,
        "api web"
    );
    let r = http(
        "GET",
        format!("{server}/api/v1/works?labelSelector=app%20in%20(web),tier"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{}", r.body);
    // Formats.
    assert_eq!(
        succeed(
            &server,
            &[
                "get",
                "work",
                "web",
                "-n",
                "c1",
                "-o",
                "jsonpath={.metadata.labels.app}"
            ]
        )
        .await,
        "web"
    );
    assert_eq!(
        succeed(
            &server,
            &[
                "get",
                "works",
                "-n",
                "c1",
                "--no-headers",
                "-o",
                "custom-columns=NAME:.metadata.name,TIER:.metadata.labels.tier"
            ]
        )
        .await,
        "api    <none>\nweb    front\n"
    );
    assert_eq!(
        succeed(
            &server,
            &[
                "get",
                "works",
                "-n",
                "c1",
                "-o",
                "custom-columns=NAME:.metadata.name"
            ]
        )
        .await,
        "NAME\napi\nweb\n"
    );
    let out = succeed(&server, &["get", "works", "-n", "c1", "--no-headers"]).await;
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.starts_with("c1 "), "{out}");
    let (ok, _, err) = run(&server, &["get", "works", "-o", "table"]).await;
    assert!(!ok && err.contains("allowed formats"), "{err}");
    let (ok, _, err) = run(&server, &["get", "work", "web"]).await;
    assert!(!ok && err.contains("-n"), "{err}");

    // The List `get -o yaml` prints applies as it is.
    let list = succeed(&server, &["get", "works", "-n", "c1", "-o", "yaml"]).await;
    assert!(list.contains("kind: List"), "{list}");
    let list_file = write_file(dir.path(), "list.yaml", &list);
    assert_eq!(
        succeed(&server, &["apply", "-f", &list_file]).await,
        "manifestwork.work.open-cluster-management.io/api unchanged\n\
         manifestwork.work.open-cluster-management.io/web unchanged\n"
    );
    // delete -f (no agent: the works wait for it) and --ignore-not-found.
    let c2_file = write_file(dir.path(), "c2.yaml", &work_yaml("c2", "web", "{}"));
    assert_eq!(
        succeed(&server, &["delete", "-f", &c2_file]).await,
        "manifestwork.work.open-cluster-management.io \"web\" deleted\n"
    );
    let gone = write_file(dir.path(), "gone.yaml", &work_yaml("c2", "nope", "{}"));
    let (ok, _, err) = run(&server, &["delete", "-f", &gone]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    assert_eq!(
        succeed(&server, &["delete", "-f", &gone, "--ignore-not-found"]).await,
        ""
    );
    assert_eq!(
        succeed(
            &server,
            &["delete", "work", "nope", "-n", "c1", "--ignore-not-found"]
        )
        .await,
        ""
    );
    let (ok, _, err) = run(&server, &["delete", "work", "nope", "-n", "c1"]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    hub.shutdown().await;
}

/// A typo in a ManifestWork is reported as kubectl's strict field validation does,
/// not as a later rule.
#[tokio::test]
async fn unknown_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli-strict")).await;
    let server = hub.base_url();
    assert!(run(&server, &["create", "cluster", "c1"]).await.0);
    let file = write_file(
        dir.path(),
        "typo.yaml",
        "apiVersion: work.open-cluster-management.io/v1\nkind: ManifestWork\nmetadata:\n  \
         name: w\n  namespace: c1\nspec:\n  workloads:\n    manifests:\n    - {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: default}}\n",
    );
    let (ok, _, err) = run(&server, &["apply", "-f", &file]).await;
    assert!(!ok);
    assert!(
        err.contains("Error from server (BadRequest)")
            && err.contains("strict decoding error: unknown field \"spec.workloads\""),
        "{err}"
    );
    assert!(!err.contains("should not be empty"), "{err}");
    hub.shutdown().await;
}

/// `--server host:port` without a scheme works; a server that is not a hub is named
/// as such instead of printing its page.
#[tokio::test]
async fn server_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli-server")).await;
    let bare = hub.rest_addr().to_string();
    let (ok, out, err) = run(&bare, &["get", "clustersets", "-o", "name"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("managedclusterset.cluster.open-cluster-management.io/global"),
        "{out}"
    );

    // A plain web server answering HTML (two requests at most).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for _ in 0..2 {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let page = "<html><body>Welcome to nginx!</body></html>";
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    let (ok, _, err) = run(&web, &["get", "clusters"]).await;
    assert!(!ok);
    assert!(
        err.contains("is not a workbus hub") && err.contains("text/html"),
        "{err}"
    );
    assert!(!err.contains("nginx"), "{err}");
    let (ok, _, err) = run(&format!("http://{web}"), &["get", "works"]).await;
    assert!(!ok && err.contains("is not a workbus hub"), "{err}");
    server.join().unwrap();
    hub.shutdown().await;
}

/// `wait --for=condition=…` on a work until its agent reports it, `--for=delete`,
/// and the timeout (exit 1, kubectl's words).
#[tokio::test]
async fn wait_for_conditions_and_deletion() {
    use workbus_schemas::sequence_id::SequenceIdGenerator;
    let dir = tempfile::tempdir().unwrap();
    let source = unique("cli-wait");
    let CreatedWork {
        hub,
        cluster,
        agent,
        uid,
    } = CreatedWork::start(dir.path(), &source).await;
    let server = hub.base_url();
    let target = "work/w1";
    let (ok, _, err) = run(
        &server,
        &[
            "wait",
            "--for=condition=Available",
            "--timeout=1s",
            target,
            "-n",
            &cluster,
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains(
            "timed out waiting for the condition on manifestwork.work.open-cluster-management.io/w1"
        ),
        "{err}"
    );
    // Waiting, then the agent reports Available.
    let waiting = {
        let (server, cluster) = (server.clone(), cluster.clone());
        tokio::spawn(async move {
            run(
                &server,
                &[
                    "wait",
                    "--for=condition=Available",
                    "--timeout=30s",
                    "manifestwork",
                    "w1",
                    "-n",
                    &cluster,
                ],
            )
            .await
        })
    };
    let status = serde_json::json!({"conditions": [
        {"type": "Applied", "status": "True", "observedGeneration": 1,
         "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": "AppliedManifestWorkComplete", "message": "ok"},
        {"type": "Available", "status": "True", "observedGeneration": 1,
         "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": "ResourcesAvailable", "message": "ok"}]});
    let seq = SequenceIdGenerator::default().next().unwrap().to_string();
    agent.send_status(&uid, 1, &seq, status).await;
    let (ok, out, err) = waiting.await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "manifestwork.work.open-cluster-management.io/w1 condition met\n"
    );
    // Status False is waited for as asked.
    let (ok, _, _) = run(
        &server,
        &[
            "wait",
            "--for=condition=Applied=False",
            "--timeout=0s",
            target,
            "-n",
            &cluster,
        ],
    )
    .await;
    assert!(!ok);
    // --for=delete: gone at once with --force.
    assert!(
        run(
            &server,
            &["delete", "work", "w1", "-n", &cluster, "--force"]
        )
        .await
        .0
    );
    let (ok, out, err) = run(
        &server,
        &[
            "wait",
            "--for=delete",
            "--timeout=10s",
            target,
            "-n",
            &cluster,
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("w1 condition met"), "{out}");
    let (ok, _, err) = run(&server, &["wait", "--for=ready", target, "-n", &cluster]).await;
    assert!(!ok && err.contains("--for"), "{err}");
    hub.shutdown().await;
}

/// `completion bash|zsh|fish` prints a script for that shell; `--version` answers.
#[tokio::test]
async fn completion_and_version() {
    for (shell, marker) in [
        ("bash", "complete -F _workbus__hub"),
        ("zsh", "#compdef workbus-hub"),
        ("fish", "complete -c workbus-hub"),
    ] {
        let (ok, out, err) = run("http://127.0.0.1:1", &["completion", shell]).await;
        assert!(ok, "{err}");
        assert!(
            out.contains(marker),
            "{shell}: {}",
            &out[..out.len().min(300)]
        );
        assert!(out.contains("placementdecisions"), "{shell}");
    }
    let (ok, out, _) = run("http://127.0.0.1:1", &["--version"]).await;
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("workbus-hub {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `get works -w` prints the listing, then every change; when its connection drops
/// it resumes with `Last-Event-ID` and prints exactly the changes it missed (no
/// re-listing while the hub holds them).
#[tokio::test]
async fn watch_resumes_after_a_dropped_connection() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli-watch")).await;
    create_cluster(&hub, "c1").await;
    put_work(&hub, &work_json("c1", "w1", "a")).await;
    let proxy = workbus_testkit::fault_proxy::FaultProxy::start(hub.rest_addr()).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_workbus-hub"))
        .args(["get", "works", "-n", "c1", "-w", "--server"])
        .arg(proxy.addr().to_string())
        .env("WORKBUS_TOKEN", TOKEN)
        .env_remove("WORKBUS_TOKEN_FILE")
        .env_remove("WORKBUS_SERVER")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let name_of = |line: &str| line.split_whitespace().nth(1).unwrap_or("").to_owned();
    assert!(next_line(&mut rx).await.starts_with("NAMESPACE   NAME"));
    assert_eq!(name_of(&next_line(&mut rx).await), "w1");
    put_work(&hub, &work_json("c1", "w2", "a")).await;
    assert_eq!(name_of(&next_line(&mut rx).await), "w2");

    // The connection drops; changes happen while the watch is away.
    proxy.refuse(true);
    proxy.cut();
    put_work(&hub, &work_json("c1", "w3", "a")).await;
    put_work(&hub, &work_json("c1", "w1", "b")).await;
    proxy.refuse(false);
    assert_eq!(name_of(&next_line(&mut rx).await), "w3");
    let line = next_line(&mut rx).await;
    assert_eq!(name_of(&line), "w1");
    assert!(
        line.split_whitespace().nth(2) == Some("2"),
        "generation 2: {line}"
    );
    put_work(&hub, &work_json("c1", "w4", "a")).await;
    assert_eq!(
        name_of(&next_line(&mut rx).await),
        "w4",
        "no re-listing in between"
    );
    child.kill().unwrap();
    let _ = child.wait();
    hub.shutdown().await;
}

/// The watch's resume protocol at the REST level: every event has an id, a resume
/// replays what came after it, an id the hub does not hold is `410 Gone`.
#[tokio::test(flavor = "multi_thread")]
async fn watch_ids_and_expired_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("watch-id")).await;
    create_cluster(&hub, "c1").await;
    let base = hub.base_url();
    let open = |last: Option<String>| {
        let url = format!("{base}/api/v1/watch/works?cluster=c1&allowWatchBookmarks=true");
        tokio::task::spawn_blocking(move || {
            let client = workbus_hub::cli::client::Client::new(&url[..url.find("/api").unwrap()])
                .with_token(Some(TOKEN.into()));
            client.stream(&url[url.find("/api").unwrap()..], last.as_deref())
        })
    };
    let mut stream = open(None).await.unwrap().unwrap();
    let bookmark = tokio::task::block_in_place(|| stream.next_event().unwrap().unwrap());
    assert_eq!(bookmark.event, "bookmark");
    assert!(!bookmark.id.is_empty());
    drop(stream);
    for n in ["a", "b"] {
        put_work(&hub, &work_json("c1", n, "x")).await;
    }
    let mut resumed = open(Some(bookmark.id.clone())).await.unwrap().unwrap();
    let (first, second) = tokio::task::block_in_place(|| {
        (
            resumed.next_event().unwrap().unwrap(),
            resumed.next_event().unwrap().unwrap(),
        )
    });
    assert_eq!(
        (first.event.as_str(), second.event.as_str()),
        ("spec", "spec")
    );
    let name = |e: &workbus_hub::cli::sse::SseEvent| {
        serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!((name(&first), name(&second)), ("a".into(), "b".into()));
    assert_ne!(first.id, second.id);
    // Resuming after the first replays the second only.
    let mut again = open(Some(first.id.clone())).await.unwrap().unwrap();
    let next = tokio::task::block_in_place(|| again.next_event().unwrap().unwrap());
    assert_eq!(next.id, second.id);
    // Unknown ids: 410 Gone, reason Expired.
    for bogus in ["other-process.1".to_owned(), format!("{}9", second.id)] {
        match open(Some(bogus)).await.unwrap() {
            Err(workbus_hub::cli::client::CliError::Server { code, reason, .. }) => {
                assert_eq!((code, reason.as_str()), (410, "Expired"));
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("resumed from an id the hub never gave"),
        }
    }
    hub.shutdown().await;
}

/// The next line a watch printed (bounded by `WAIT`).
async fn next_line(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a line from the watch")
        .expect("the watch is running")
}

/// Runs a command that must succeed; its standard output.
async fn succeed(server: &str, args: &[&str]) -> String {
    let (ok, out, err) = run(server, args).await;
    assert!(ok, "{args:?}: {err}");
    out
}

/// `get clusters -w -l …`: the listing, then each change of a matching cluster; after a
/// dropped connection (the cluster watch has no ids) it lists again.
#[tokio::test]
async fn cluster_watch_lists_changes_and_relists_after_a_drop() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("cli-cwatch")).await;
    let server = hub.base_url();
    assert!(
        run(&server, &["create", "cluster", "c1", "-l", "env=dev"])
            .await
            .0
    );
    let proxy = workbus_testkit::fault_proxy::FaultProxy::start(hub.rest_addr()).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_workbus-hub"))
        .args([
            "get",
            "clusters",
            "-w",
            "-l",
            "env",
            "--no-headers",
            "--server",
        ])
        .arg(proxy.addr().to_string())
        .env("WORKBUS_TOKEN", TOKEN)
        .env_remove("WORKBUS_TOKEN_FILE")
        .env_remove("WORKBUS_SERVER")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let name_of = |line: &str| line.split_whitespace().next().unwrap_or("").to_owned();
    assert_eq!(name_of(&next_line(&mut rx).await), "c1");
    // Not matching -l: not shown; matching: shown.
    assert!(run(&server, &["create", "cluster", "other"]).await.0);
    assert!(
        run(&server, &["create", "cluster", "c2", "-l", "env=prod"])
            .await
            .0
    );
    assert_eq!(name_of(&next_line(&mut rx).await), "c2");
    proxy.cut();
    // Listed again after the drop.
    let mut relisted = vec![
        name_of(&next_line(&mut rx).await),
        name_of(&next_line(&mut rx).await),
    ];
    relisted.sort();
    assert_eq!(relisted, ["c1", "c2"]);
    child.kill().unwrap();
    let _ = child.wait();
    hub.shutdown().await;
}
