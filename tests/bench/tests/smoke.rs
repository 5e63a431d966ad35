//! Smoke test of the `workbus-bench` harness: small runs of `fanout` (also `--tls`),
//! `rollout-fanout`, `rollout-progressive`, `placement-relabel`,
//! `throughput`, `broker`, `reconnect-storm`, `footprint`, `join-storm` and
//! `kill-unknown` and `audit-log` that check the harness works end to end
//! and writes a well-formed JSON report. The figures themselves are not checked (debug
//! build, shared CI machine). `broker` needs Mosquitto and is skipped, with a `SKIPPED`
//! line, when it is not installed.

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
        "passed",
        "notes",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}: {report}");
    }
    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c > 0));
    for target in report["targets"].as_array().expect("targets") {
        for key in ["name", "value", "target", "met"] {
            assert!(target.get(key).is_some(), "target lacks {key}: {target}");
        }
    }
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
fn rollout_fanout_smoke_reaches_every_agent_through_one_replica_set() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &["rollout-fanout", "--agents", "50", "--timeout", "60"],
        &dir.path().join("rollout-fanout.json"),
    );
    assert_eq!(report["scenario"], "rollout-fanout");
    for round in ["create", "update"] {
        assert_eq!(report["figures"][round]["api_calls"], 1);
        assert_eq!(report["figures"][round]["back"], 50, "{round}");
        assert_eq!(report["figures"][round]["all_back"], true, "{round}");
        assert_eq!(
            report["figures"][round]["applied_in_store_at_end"], 50,
            "{round}"
        );
    }
    assert_eq!(report["figures"]["update"]["latency"]["count"], 50);
}

#[test]
fn rollout_progressive_smoke_measures_every_group_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &["rollout-progressive", "--agents", "40", "--timeout", "60"],
        &dir.path().join("rollout-progressive.json"),
    );
    assert_eq!(report["scenario"], "rollout-progressive");
    assert_eq!(report["figures"]["all_succeeded"], true);
    assert_eq!(report["parameters"]["groups"], 10);
    assert_eq!(report["figures"]["boundaries_measured"], 9);
    assert_eq!(report["figures"]["controller_overhead"]["count"], 9);
}

#[test]
fn placement_relabel_smoke_measures_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &[
            "placement-relabel",
            "--agents",
            "200",
            "--placements",
            "10",
            "--changes",
            "3",
            "--timeout",
            "60",
        ],
        &dir.path().join("placement-relabel.json"),
    );
    assert_eq!(report["scenario"], "placement-relabel");
    assert_eq!(report["figures"]["hub_cpu_per_change"]["count"], 3);
    assert_eq!(
        report["figures"]["placement_changes_per_label_change"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
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
fn throughput_smoke_runs_paced_steps() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &[
            "throughput",
            "--agents",
            "20",
            "--rates",
            "20,40",
            "--step-secs",
            "1",
            "--timeout",
            "60",
        ],
        &dir.path().join("throughput.json"),
    );
    assert_eq!(report["scenario"], "throughput");
    // 40/s × 1 s over 20 clusters: two works each, all created and back.
    assert_eq!(report["figures"]["works_per_cluster"], 2);
    assert_eq!(report["figures"]["create"]["back"], 40);
    let steps = report["figures"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert_eq!(steps[0]["changes"], 20);
    assert_eq!(steps[0]["back"], 20);
    assert!(steps[0]["latency"]["p99_ms"].is_number());
    assert!(
        report["targets"][0]["name"]
            .as_str()
            .unwrap()
            .contains("round trips")
    );
}

#[test]
fn broker_smoke_reports_both_brokers_and_a_ratio() {
    if workbus_testkit::skip_without_mosquitto(
        "smoke::broker_smoke_reports_both_brokers_and_a_ratio",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &[
            "broker",
            "--agents",
            "20",
            "--rounds",
            "2",
            "--timeout",
            "60",
        ],
        &dir.path().join("broker.json"),
    );
    assert_eq!(report["scenario"], "broker");
    for broker in ["embedded", "mosquitto"] {
        let f = &report["figures"][broker];
        assert_eq!(f["rounds_measured"], 2, "{broker}: {f}");
        assert_eq!(f["messages"], 2 * 4 * 20, "{broker}: {f}");
        assert_eq!(f["latency_round_trip"]["count"], 40, "{broker}: {f}");
        assert!(f["msgs_per_s"].as_f64().is_some_and(|v| v > 0.0), "{f}");
        assert!(f["round_ms"]["p50"].is_number(), "{f}");
    }
    // Every publish of the embedded broker's run was routed, none dropped.
    let stats = &report["figures"]["embedded"]["broker_stats"];
    assert_eq!(stats["dropped"], 0, "{stats}");
    let ratio = report["figures"]["ratio"]["throughput_embedded_over_mosquitto"].as_f64();
    assert!(ratio.is_some_and(|r| r > 0.0), "{report}");
    assert_eq!(report["targets"].as_array().map(Vec::len), Some(1));
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

#[test]
fn fanout_tls_smoke_reports_both_modes_and_the_cost() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &["fanout", "--agents", "20", "--tls", "--timeout", "60"],
        &dir.path().join("fanout-tls.json"),
    );
    let f = &report["figures"];
    for mode in ["plain", "tls"] {
        assert_eq!(f[mode]["security"], mode, "{f}");
        assert_eq!(f[mode]["update"]["back"], 20, "{mode}: {f}");
        assert!(f[mode]["hub_rss_per_idle_connection_kb"].is_number(), "{f}");
    }
    // The secured fleet ran with the ACL on and nothing was refused.
    assert_eq!(f["tls"]["broker"]["denied_publishes"], 0, "{f}");
    assert!(f["tls_cost"]["update_all_back_percent"].is_number(), "{f}");
    assert_eq!(report["targets"].as_array().map(Vec::len), Some(3));
}

#[test]
fn join_storm_smoke_reports_every_cluster_available() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &["join-storm", "--agents", "20", "--timeout", "60"],
        &dir.path().join("join-storm.json"),
    );
    assert_eq!(report["scenario"], "join-storm");
    let f = &report["figures"];
    assert_eq!(f["all_available"], true, "{f}");
    assert_eq!(f["time_to_available"]["count"], 20, "{f}");
    assert!(f["time_to_available"]["p99_ms"].is_number(), "{f}");
    assert_eq!(f["agents"]["join_failed"], 0, "{f}");
    assert!(f["hub_rss_per_registered_cluster_kb"].is_number(), "{f}");
}

#[test]
fn kill_unknown_smoke_reports_both_ways_to_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &[
            "kill-unknown",
            "--agents",
            "4",
            "--keep-alive",
            "5",
            "--timeout",
            "60",
        ],
        &dir.path().join("kill-unknown.json"),
    );
    assert_eq!(report["scenario"], "kill-unknown");
    let f = &report["figures"];
    for leg in ["kill9", "silent"] {
        assert_eq!(f[leg]["all_unknown"], true, "{leg}: {f}");
        assert_eq!(f[leg]["time_to_unknown"]["count"], 2, "{leg}: {f}");
    }
    assert!(f["ocm_reference_s"].is_number());
}

#[test]
fn audit_log_smoke_fills_queries_replays_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_bench(
        &["audit-log", "--records", "3000", "--agents", "5"],
        &dir.path().join("audit-log.json"),
    );
    assert_eq!(report["scenario"], "audit-log");
    // 3,000 records and a checkpoint after every 1,000.
    assert_eq!(report["figures"]["records"], 3003);
    assert_eq!(report["figures"]["replay_cluster_ms"]["works"], 10);
    assert!(report["figures"]["verify_records_per_s"].as_f64().unwrap() > 0.0);
}
