//! Architecture invariants of ARCHITECTURE.md, checked rather than written down only:
//!
//! - the crate graph, from `cargo metadata`: `schemas ← transport ← {hub, agent}`,
//!   `process ← {broker, hub, agent}`, the protocol crate without I/O dependencies,
//!   `process` without workspace dependencies, the broker on `process` and the protocol
//!   crate only (its topic ACLs derive from `schemas::acl`; no client crate), the agent
//!   without the hub's server stack, and the hub linking the agent only for its
//!   quickstart (an optional dependency behind the `quickstart` feature); the test kit
//!   depending on no workspace crate (every crate's tests may use it) and the benchmarks
//!   a leaf (they may use everything, nothing uses them); the Kubernetes client (the
//!   agent's `kube` feature) never in the hub's build, quickstart included;
//! - only `schemas/` knows protocol facts: no `ce-` property, topic fragment, OCM
//!   extension or resync payload field name, event-type group or ManifestWork API group
//!   is spelled out in the hub, agent, broker, transport or process sources (their `#[cfg(test)]`
//!   modules may, to check against).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every workspace package's declared dependencies: (package, dependency, kind, optional).
fn declared_dependencies() -> Vec<(String, String, String, bool)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let mut edges = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().unwrap_or_default().to_string();
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            edges.push((
                name.clone(),
                dep["name"].as_str().unwrap_or_default().to_string(),
                dep["kind"].as_str().unwrap_or("normal").to_string(),
                dep["optional"].as_bool().unwrap_or(false),
            ));
        }
    }
    edges
}

/// The dependencies `package` needs to build (not tests, not optional features).
fn required(edges: &[(String, String, String, bool)], package: &str) -> Vec<String> {
    edges
        .iter()
        .filter(|(p, _, kind, optional)| p == package && kind == "normal" && !optional)
        .map(|(_, dep, _, _)| dep.clone())
        .collect()
}

#[test]
fn crate_graph_points_one_way() {
    let edges = declared_dependencies();
    let schemas = required(&edges, "workbus-schemas");
    assert!(
        !schemas.iter().any(|d| d.starts_with("workbus-")),
        "schemas depends on no other workspace crate: {schemas:?}"
    );
    for io in ["tokio", "rumqttc", "rusqlite", "axum", "ureq"] {
        assert!(
            !schemas.iter().any(|d| d == io),
            "schemas does no I/O, yet depends on {io}"
        );
    }
    let transport = required(&edges, "workbus-transport");
    assert_eq!(
        transport
            .iter()
            .filter(|d| d.starts_with("workbus-"))
            .collect::<Vec<_>>(),
        ["workbus-schemas"],
        "transport builds on schemas only"
    );
    let workspace_deps = |package: &str| {
        required(&edges, package)
            .into_iter()
            .filter(|d| d.starts_with("workbus-"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        workspace_deps("workbus-process"),
        Vec::<String>::new(),
        "process (what every executable shares) builds on no workspace crate"
    );
    assert_eq!(
        workspace_deps("workbus-broker"),
        ["workbus-process", "workbus-schemas"],
        "the broker links the protocol crate (its topic ACLs derive from the templates in \
         schemas::acl) and process, never the client crates"
    );
    for executable in ["workbus-hub", "workbus-agent"] {
        assert!(
            workspace_deps(executable)
                .iter()
                .any(|d| d == "workbus-process"),
            "{executable} shares process handling through workbus-process"
        );
    }
    let agent = required(&edges, "workbus-agent");
    for forbidden in ["workbus-hub", "workbus-broker", "axum", "rusqlite", "ureq"] {
        assert!(
            !agent.iter().any(|d| d == forbidden),
            "the agent (small devices) must not depend on {forbidden}"
        );
    }
    let hub = required(&edges, "workbus-hub");
    assert!(
        !hub.iter().any(|d| d == "workbus-agent"),
        "the hub links the agent only for the quickstart (optional dependency)"
    );
    assert!(
        edges.iter().any(|(p, d, kind, optional)| p == "workbus-hub"
            && d == "workbus-agent"
            && kind == "normal"
            && *optional),
        "the quickstart's agent dependency is optional"
    );
}

/// The packages (`name vX`) `package` links with its default features, from cargo's
/// resolver for that package alone (`cargo tree`): workspace-wide metadata unifies the
/// features every member enables, which would hide what the hub itself pulls in.
fn linked_packages(package: &str) -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "-f",
            "{p}",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_kubernetes_client_never_reaches_the_hub() {
    let kube = |packages: &[String]| -> Vec<String> {
        packages
            .iter()
            .filter(|p| p.starts_with("kube") || p.starts_with("k8s-openapi"))
            .cloned()
            .collect()
    };
    let hub = linked_packages("workbus-hub");
    assert!(
        hub.iter().any(|p| p.starts_with("workbus-agent ")),
        "the hub's default build links the agent (quickstart): {hub:?}"
    );
    assert_eq!(
        kube(&hub),
        Vec::<String>::new(),
        "the hub links the agent without its `kube` feature"
    );
    // The agent's own build has it (default feature), so the check above means something.
    assert!(!kube(&linked_packages("workbus-agent")).is_empty());
}

#[test]
fn test_kit_is_a_root_and_benchmarks_a_leaf() {
    let edges = declared_dependencies();
    let testkit = required(&edges, "workbus-testkit");
    assert!(
        testkit.iter().all(|d| !d.starts_with("workbus-")),
        "the test kit depends on no workspace crate (so every crate's tests can use it): \
         {testkit:?}"
    );
    let bench = required(&edges, "workbus-bench");
    assert!(
        bench.iter().any(|d| d == "workbus-tests") && bench.iter().any(|d| d == "workbus-testkit"),
        "the benchmarks build on the test harness and the test kit: {bench:?}"
    );
    let users: Vec<&str> = edges
        .iter()
        .filter(|(_, d, _, _)| d == "workbus-bench")
        .map(|(p, _, _, _)| p.as_str())
        .collect();
    assert!(
        users.is_empty(),
        "nothing depends on the benchmarks (a leaf), yet: {users:?}"
    );
    for product in [
        "workbus-schemas",
        "workbus-transport",
        "workbus-process",
        "workbus-broker",
        "workbus-hub",
        "workbus-agent",
    ] {
        let deps = required(&edges, product);
        assert!(
            !deps.iter().any(
                |d| ["workbus-testkit", "workbus-tests", "workbus-kube-apiserver"]
                    .contains(&d.as_str())
            ),
            "{product} ships no test code (test crates only as dev-dependencies): {deps:?}"
        );
    }
}

/// Literals that name a protocol fact (`schemas/` owns each of them).
const PROTOCOL_FACTS: &[&str] = &[
    "\"ce-",
    "\"sources/",
    "/sourceevents",
    "/agentevents",
    "\"resourceid\"",
    "\"resourceversion\"",
    "\"sequenceid\"",
    "\"statushash\"",
    "\"clustername\"",
    "\"originalsource\"",
    "\"deletiontimestamp\"",
    "\"logtracing\"",
    "\"resyncdigest\"",
    "\"resyncmode\"",
    "\"statusHashes\"",
    "\"resourceVersions\"",
    "io.open-cluster-management.works",
    "work.open-cluster-management.io",
];

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("readable source dir")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn protocol_facts_live_only_in_schemas() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut files = Vec::new();
    for crate_dir in [
        "hub/src",
        "agent/src",
        "broker/src",
        "transport/src",
        "process/src",
    ] {
        rust_files(&root.join(crate_dir), &mut files);
    }
    assert!(files.len() > 20, "sources found: {}", files.len());
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break; // tests may spell facts out to check against them
            }
            let code = line.split("//").next().unwrap_or_default();
            for fact in PROTOCOL_FACTS {
                if code.contains(fact) {
                    found.push(format!("{}:{}: {fact}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "protocol facts outside schemas/ (use the schemas constants and builders):\n{}",
        found.join("\n")
    );
}
