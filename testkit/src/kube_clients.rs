//! Kubernetes clients for tests (kubectl, the Python `kubernetes` client), found one way
//! and skipped one way.
//!
//! - [`on_path`] finds an executable on `PATH`; [`kubectl_binaries`] the kubectls to test
//!   with (`$WORKBUS_KUBECTL`, `:`-separated, else the one on `PATH`).
//! - [`skip_missing_kube_client`] is how a test that needs one skips, visibly, when it is
//!   not installed — unless `WORKBUS_REQUIRE_KUBE_CLIENTS=1` ([`kube_clients_required`],
//!   set by `.ci/run`), which makes the missing client a failure.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// True when `WORKBUS_REQUIRE_KUBE_CLIENTS=1`: a missing client fails the test.
pub fn kube_clients_required() -> bool {
    std::env::var("WORKBUS_REQUIRE_KUBE_CLIENTS").is_ok_and(|v| v == "1")
}

/// For a test whose client `what` is missing: panics when clients are required
/// ([`kube_clients_required`]), otherwise writes `SKIPPED: <what> not found; …` straight
/// to stderr (past the harness's output capture) so the test can return early.
pub fn skip_missing_kube_client(what: &str) {
    assert!(
        !kube_clients_required(),
        "{what} is required (WORKBUS_REQUIRE_KUBE_CLIENTS=1) but missing"
    );
    let _ = writeln!(
        io::stderr(),
        "SKIPPED: {what} not found; install it to run this test (see tests/kube-apiserver/README.md)"
    );
}

/// The first file `name` in a `PATH` directory.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The kubectl executables to test with: those in `$WORKBUS_KUBECTL` (`:`-separated),
/// else the `kubectl` on `PATH`; empty when there is none.
pub fn kubectl_binaries() -> Vec<PathBuf> {
    match std::env::var("WORKBUS_KUBECTL") {
        Ok(list) if !list.is_empty() => list.split(':').map(PathBuf::from).collect(),
        _ => on_path("kubectl").into_iter().collect(),
    }
}

/// The AppliedManifestWork CRD as the agent's deployment installs it
/// (`deploy/agent/crd-appliedmanifestwork.yaml`), for test clusters that run the agent's
/// Kubernetes target: one copy of the CRD, the one users apply.
pub fn applied_manifest_work_crd() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/agent/crd-appliedmanifestwork.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}
