//! Smoke test of the `workbus-bench` harness: small runs of `fanout`, `footprint` and
//! `reconnect-storm`
//! that check the harness works end to end and writes a well-formed JSON report. The
//! figures themselves are not checked (debug build, shared CI machine).

use std::path::Path;
use std::process::Command;

fn run_bench(args: &[&str], json: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_workbus-bench"))
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("workbus-bench runs");
    assert!(
        out.status.success(),
        "workbus-bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(json).expect("report written");
    let report: serde_json::Value = serde_json::from_str(&text).expect("report is JSON");
    for key in [
        "scenario",
        "machine",
        "git_commit",
        "parameters",
        "figures",
        "targets",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}: {report}");
    }
    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c > 0));
    report
}

#[test]
fn fanout_smoke_reports_every_agent_back() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &["fanout", "--agents", "200", "--timeout", "60"],
        &dir.path().join("fanout.json"),
    );
    assert_eq!(report["scenario"], "fanout");
    assert_eq!(report["figures"]["update"]["back"], 200);
    assert_eq!(report["figures"]["update"]["latency"]["count"], 200);
    assert!(report["figures"]["update"]["latency"]["p99_ms"].is_number());
}

#[test]
fn footprint_smoke_reports_hub_memory() {
    let dir = tempfile::tempdir().unwrap();
    // No agent binary: the binary part is reported as missing (keeps the test fast and
    // independent of a release build); the hub part still runs.
    let report = run_bench(
        &[
            "footprint",
            "--agents",
            "20",
            "--timeout",
            "60",
            "--agent-bin",
            "/nonexistent/workbus-agent",
        ],
        &dir.path().join("footprint.json"),
    );
    assert_eq!(report["scenario"], "footprint");
    assert_eq!(report["figures"]["hub_idle"]["agents"], 20);
    assert!(report["figures"]["hub_idle"]["hub_rss_per_idle_cluster_kb"].is_number());
    assert!(
        report["notes"][0]
            .as_str()
            .unwrap()
            .contains("cargo build --release")
    );
}

#[test]
fn reconnect_storm_smoke_reports_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &[
            "reconnect-storm",
            "--agents",
            "50",
            "--max-works",
            "3",
            "--timeout",
            "60",
        ],
        &dir.path().join("storm.json"),
    );
    assert_eq!(report["scenario"], "reconnect-storm");
    let f = &report["figures"];
    for form in ["digest", "upstream"] {
        assert_eq!(f[form]["cut"], 50, "{form}");
        assert!(f[form]["resynced_all_s"].is_number(), "{form}: {f}");
        assert!(f[form]["per_agent"]["bytes"].is_number(), "{form}");
    }
    // The digest form was used, and nothing was re-sent to unchanged agents.
    assert_eq!(f["digest"]["storm_totals"]["digest_requests"], 50);
    assert_eq!(f["digest"]["storm_totals"]["specs_applied"], 0);
    assert_eq!(f["upstream"]["storm_totals"]["digest_requests"], 0);
    assert!(f["bytes_saved_percent"].is_number());
}
