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
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("env=dev"));

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
    let (ok, _, err) = run("http://127.0.0.1:1", &["get", "clusters"]).await;
    assert!(!ok && err.contains("cannot talk to the hub"), "{err}");
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
