//! Independent clients against the server: `kubectl` (Debian's `kubernetes-client`, or
//! any kubectl on `PATH`; `WORKBUS_KUBECTL` names one or more, `:`-separated) and the
//! official Python client (`tests/clients/python_client.py`; the interpreter is
//! `WORKBUS_KUBE_PYTHON`, else `<target>/kube-py/bin/python`, else `python3`, whichever
//! has the `kubernetes` module). A missing client skips its test with a message —
//! unless `WORKBUS_REQUIRE_KUBE_CLIENTS=1` (set by `.ci/run`), which makes it a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::Value;
use workbus_testkit::{kubectl_binaries, on_path, skip_missing_kube_client as skip};

/// Runs a program with a bound on its run time.
fn run(server: &Server, program: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env_remove("KUBECONFIG").kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    server
        .rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), cmd.output()).await })
        .unwrap_or_else(|_| panic!("{} {args:?} did not finish in 120 s", program.display()))
        .unwrap_or_else(|e| panic!("{} cannot run: {e}", program.display()))
}

struct Kubectl<'a> {
    server: &'a Server,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let kubeconfig = self.dir.path().join("kubeconfig");
        let cache = self.dir.path().join("cache");
        let mut all = vec![
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--request-timeout=30s",
        ];
        all.extend_from_slice(args);
        run(
            self.server,
            &self.binary,
            &all,
            &[("HOME", self.dir.path())],
        )
    }

    /// Runs; expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs; expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "kubectl {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }
}

fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
";

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
";

fn kubectl_scenario(binary: PathBuf) {
    let server = Server::start();
    let k = Kubectl {
        server: &server,
        binary: binary.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    server
        .api()
        .write_kubeconfig(k.dir.path().join("kubeconfig"), "default")
        .unwrap();
    let version = k.ok(&["version"]);
    eprintln!("kubectl {}:\n{version}", binary.display());
    assert!(version.contains("v1.30.0"), "{version}");

    let resources = rows(&k.ok(&["api-resources"]));
    let deploy = resources
        .iter()
        .find(|r| r[0] == "deployments")
        .expect("deployments listed");
    assert_eq!(deploy[1..], ["deploy", "apps/v1", "true", "Deployment"]);
    let crds = resources
        .iter()
        .find(|r| r[0] == "customresourcedefinitions")
        .unwrap();
    assert_eq!(
        crds[1..],
        [
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition"
        ]
    );
    let ns = resources.iter().find(|r| r[0] == "namespaces").unwrap();
    assert_eq!(ns[1..], ["ns", "v1", "false", "Namespace"]);

    let namespaces = rows(&k.ok(&["get", "namespaces"]));
    assert_eq!(namespaces[0], ["NAME", "STATUS", "AGE"]);
    let names: Vec<&str> = namespaces[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert!(namespaces[1..].iter().all(|r| r[1] == "Active"));

    let deploy_file = k.file("deploy.yaml", DEPLOY);
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &deploy_file]).trim(),
        "deployment.apps/web serverside-applied"
    );
    // kubectl 1.21+ hides managed fields unless asked.
    let client: Value =
        serde_json::from_str(&k.ok(&["version", "--client", "-o", "json"])).unwrap();
    let minor: u32 = client["clientVersion"]["minor"]
        .as_str()
        .unwrap_or("0")
        .trim_end_matches('+')
        .parse()
        .unwrap_or(0);
    let mut get_json = vec!["get", "deployment", "web", "-o", "json"];
    if minor >= 21 {
        get_json.push("--show-managed-fields");
    }
    let d: Value = serde_json::from_str(&k.ok(&get_json)).unwrap();
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
    let apply = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "kubectl")
        .unwrap_or_else(|| panic!("kubectl's entry in {d}"));
    assert_eq!(apply["operation"], "Apply");
    let table = rows(&k.ok(&["get", "deployments"]));
    assert_eq!(
        table[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert_eq!(table[1][..4], ["web", "2/2", "2", "2"]);

    let three = k.file(
        "deploy3.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: 3"),
    );
    let conflict = k.fails(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &three,
    ]);
    assert!(
        conflict
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{conflict}"
    );
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &three,
    ]);
    let jp = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation} {.status.observedGeneration}",
    ]);
    assert_eq!(jp, "3 2 2");

    let uid = k.ok(&["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"]);
    let child = k.file(
        "child.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: child\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    uid: {uid}\n    blockOwnerDeletion: true\ndata: {{a: b}}\n"
        ),
    );
    k.ok(&["apply", "--server-side", "-f", &child]);
    assert_eq!(
        k.ok(&[
            "delete",
            "deployment",
            "web",
            "--cascade=foreground",
            "--timeout=60s"
        ])
        .trim(),
        "deployment.apps \"web\" deleted"
    );
    let gone = k.fails(&["get", "configmap", "child"]);
    assert!(
        gone.contains("Error from server (NotFound): configmaps \"child\" not found"),
        "{gone}"
    );

    let crd = k.file("crd.yaml", CRD);
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &crd]).trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied"
    );
    let met = k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/widgets.example.com",
    ]);
    assert!(met.contains("condition met"), "{met}");
    let widget = k.file(
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 2\n",
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &widget]).trim(),
        "widget.example.com/w1 serverside-applied"
    );
    let widgets = rows(&k.ok(&["get", "wd"]));
    assert_eq!(widgets[0], ["NAME", "SIZE"]);
    assert_eq!(widgets[1], ["w1", "2"]);

    assert_eq!(
        k.ok(&["create", "namespace", "tmp"]).trim(),
        "namespace/tmp created"
    );
    assert_eq!(
        k.ok(&["delete", "namespace", "tmp", "--timeout=60s"])
            .trim(),
        "namespace \"tmp\" deleted"
    );
    let ns_gone = k.fails(&["get", "namespace", "tmp"]);
    assert!(
        ns_gone.contains("namespaces \"tmp\" not found"),
        "{ns_gone}"
    );
}

#[test]
fn kubectl_drives_the_server() {
    let binaries = kubectl_binaries();
    if binaries.is_empty() {
        return skip("kubectl (Debian package kubernetes-client)");
    }
    for b in binaries {
        kubectl_scenario(b);
    }
}

fn python() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let candidates = [
        std::env::var_os("WORKBUS_KUBE_PYTHON").map(PathBuf::from),
        Some(target.join("kube-py/bin/python")),
        on_path("python3"),
    ];
    candidates.into_iter().flatten().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import kubernetes"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn python_client_drives_the_server() {
    let Some(python) = python() else {
        return skip("python3 with the `kubernetes` module (pip install kubernetes)");
    };
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server
        .api()
        .write_kubeconfig(&kubeconfig, "default")
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_client.py");
    let out = run(
        &server,
        &python,
        &[script.to_str().unwrap()],
        &[("KUBECONFIG", &kubeconfig), ("HOME", dir.path())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "python client checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"));
}
