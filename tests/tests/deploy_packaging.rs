//! The packaging of every executable checked (issue 17, "Packaging"), so the files
//! cannot drift from the binaries (`deploy/agent/` has more checks of its own in
//! `deploy_agent.rs`):
//!
//! 1. `systemd-analyze verify` of every unit under `deploy/*/systemd/` — it needs no
//!    running systemd, so it works in a container — and the hardening each promises
//!    (a dynamic or dedicated user, `ProtectSystem=strict`, a `StateDirectory`, a restart
//!    policy, no capabilities);
//! 2. the hub's and broker's Dockerfiles: multi-stage, a distroless non-root runtime, a
//!    `HEALTHCHECK` running the binary's own `probe`, a locked build of that binary;
//! 3. every `workbus-hub` flag and `WORKBUS_HUB_*` variable the hub's unit, env file and
//!    Dockerfile use exists in its command line (the broker's:
//!    `broker/tests/packaging.rs`, which can run the broker binary).
//!
//! 4. the Grafana dashboard `deploy/grafana/workbus.json`: valid JSON, a Fleet, Traffic,
//!    Latency and Errors row, and every panel query naming only metrics that
//!    `docs/metrics.md` lists (which `hub/tests/observability.rs` and its siblings check
//!    against the binaries' scrapes), so a renamed metric cannot leave a blank panel.
//!
//! Without `systemd-analyze` part 1 skips with a `SKIPPED` line, unless
//! `WORKBUS_REQUIRE_SYSTEMD=1` (set by `.ci/run`, which installs `systemd`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use workbus_testkit::on_path;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `deploy/<part>/systemd/*.service`, sorted.
fn units() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for part in std::fs::read_dir(deploy_dir()).unwrap().map(Result::unwrap) {
        let dir = part.path().join("systemd");
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            if f.path().extension().is_some_and(|e| e == "service") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// The unit's `key=value` settings (continuation lines joined), in order.
fn settings(unit: &str) -> Vec<(String, String)> {
    unit.replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn setting<'a>(s: &'a [(String, String)], key: &str) -> Option<&'a str> {
    s.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn every_unit_is_hardened() {
    let units = units();
    let names: Vec<String> = units
        .iter()
        .map(|u| u.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "workbus-agent.service",
        "workbus-broker.service",
        "workbus-hub.service",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for path in units {
        let s = settings(&read(&path));
        let name = path.display();
        assert!(
            setting(&s, "DynamicUser") == Some("yes") || setting(&s, "User").is_some(),
            "{name}: a dynamic or dedicated user"
        );
        assert_eq!(setting(&s, "ProtectSystem"), Some("strict"), "{name}");
        assert!(
            setting(&s, "StateDirectory").is_some(),
            "{name}: StateDirectory"
        );
        assert_eq!(setting(&s, "Restart"), Some("on-failure"), "{name}");
        assert_eq!(setting(&s, "NoNewPrivileges"), Some("yes"), "{name}");
        assert_eq!(setting(&s, "CapabilityBoundingSet"), Some(""), "{name}");
        let exec = setting(&s, "ExecStart").expect("ExecStart");
        assert!(
            exec.starts_with("/usr/local/bin/workbus-"),
            "{name}: {exec}"
        );
        assert!(
            setting(&s, "EnvironmentFile").is_some_and(|f| f.starts_with("/etc/workbus-")),
            "{name}: its env file"
        );
    }
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = on_path("systemd-analyze") else {
        let required = std::env::var("WORKBUS_REQUIRE_SYSTEMD").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "systemd-analyze is required (WORKBUS_REQUIRE_SYSTEMD=1) but missing"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED every_unit_passes_systemd_analyze_verify: systemd-analyze not found; install systemd"
        );
        return;
    };
    // verify insists the ExecStart binary exists: any executable stands in for it.
    let stand_in = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for path in units() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let binary = format!("/usr/local/bin/{}", file.trim_end_matches(".service"));
        let unit = read(&path);
        assert!(unit.contains(&format!("ExecStart={binary}")), "{file}");
        let copy = dir.path().join(&file);
        std::fs::write(&copy, unit.replace(&binary, stand_in.to_str().unwrap())).unwrap();
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(&copy)
            .env("SYSTEMD_LOG_LEVEL", "notice")
            .output()
            .expect("systemd-analyze runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "systemd-analyze verify {file}: {stderr}{}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Warnings about the host (no booted systemd) are tolerable, none on the unit.
        assert!(
            !stderr.contains(&format!("{file}:")),
            "systemd-analyze verify warns about {file}: {stderr}"
        );
    }
}

/// Checks the invariants of `deploy/<part>/Dockerfile` building `binary`.
fn check_dockerfile(part: &str, binary: &str) -> String {
    let path = deploy_dir().join(part).join("Dockerfile");
    let text = read(&path);
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "{part}: multi-stage");
    assert!(
        froms.last().unwrap().contains("distroless") && froms.last().unwrap().contains("nonroot"),
        "{part}: a small non-root runtime: {froms:?}"
    );
    assert!(text.contains("USER 65532:65532"), "{part}: non-root user");
    assert!(
        text.contains(&format!("-p {binary} "))
            && text.contains(&format!("--bin {binary}"))
            && text.contains("--locked"),
        "{part}: a locked build of {binary}"
    );
    let health = text
        .replace("\\\n", " ")
        .lines()
        .find_map(|l| l.strip_prefix("HEALTHCHECK ").map(str::to_string))
        .unwrap_or_else(|| panic!("{part}: a HEALTHCHECK"));
    let cmd = health.split_once("CMD ").expect("HEALTHCHECK CMD").1;
    let cmd: Vec<String> = serde_json::from_str(cmd.trim()).expect("exec form");
    assert_eq!(cmd[0], format!("/usr/local/bin/{binary}"), "{part}");
    assert_eq!(cmd[1], "probe", "{part}: the binary's own probe");
    let entrypoint = text
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec form");
    assert_eq!(entrypoint, vec![format!("/usr/local/bin/{binary}")]);
    assert!(
        deploy_dir()
            .join(part)
            .join("Dockerfile.dockerignore")
            .is_file(),
        "{part}: the build context excludes target/"
    );
    text
}

#[test]
fn broker_dockerfile() {
    check_dockerfile("broker", "workbus-broker");
}

/// `WORKBUS_*` names set in `text` as `NAME=` (env files, also commented out; Dockerfile
/// `ENV` lines).
fn variables(text: &str, prefix: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || c == '#')
        .filter(|w| w.starts_with(prefix))
        .filter_map(|w| w.split_once('=').map(|(k, _)| k.to_string()))
        .collect()
}

/// `--flag` names in an ExecStart.
fn long_flags(exec: &str) -> Vec<String> {
    exec.split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect()
}

#[test]
fn hub_packaging_uses_real_flags() {
    let dockerfile = check_dockerfile("hub", "workbus-hub");
    let cli = workbus_hub::cli::Cli::command();
    let serve = cli
        .get_subcommands()
        .find(|c| c.get_name() == "serve")
        .expect("serve");
    assert!(
        cli.get_subcommands().any(|c| c.get_name() == "probe"),
        "the HEALTHCHECK's probe"
    );
    let args = || serve.get_arguments().chain(cli.get_arguments());
    let longs: BTreeSet<String> = args()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let envs: BTreeSet<String> = args()
        .filter_map(|a| a.get_env().and_then(|e| e.to_str()).map(str::to_string))
        .collect();
    let unit = read(&deploy_dir().join("hub/systemd/workbus-hub.service"));
    let exec = setting(&settings(&unit), "ExecStart").unwrap().to_string();
    assert!(
        exec.starts_with("/usr/local/bin/workbus-hub serve "),
        "{exec}"
    );
    for flag in long_flags(&exec) {
        assert!(
            longs.contains(&flag),
            "the hub unit uses --{flag}, not in `serve`"
        );
    }
    let env_file = read(&deploy_dir().join("hub/systemd/workbus-hub.env"));
    let used: BTreeSet<String> = variables(&env_file, "WORKBUS_")
        .into_iter()
        .chain(variables(&dockerfile, "WORKBUS_"))
        .collect();
    assert!(used.contains("WORKBUS_HUB_LISTEN"));
    for var in used {
        assert!(
            envs.contains(&var),
            "{var} is not read by `workbus-hub serve`"
        );
    }
    assert!(unit.contains("EnvironmentFile=/etc/workbus-hub/workbus-hub.env"));
}

/// The metric names a PromQL expression refers to: its identifiers outside strings,
/// label matchers `{…}`, ranges `[…]` and `by`/`without`/`on`/`ignoring` lists, less
/// functions (an identifier followed by `(`), aggregations (`sum by (…) (…)`) and
/// keywords.
fn promql_metrics(expr: &str) -> BTreeSet<String> {
    // Followed by a parenthesised list of labels.
    const LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Operators, modifiers and aggregations (`sum by (…) (…)`).
    const KEYWORDS: &[&str] = &[
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    let skip_to = |i: usize, close: char| {
        chars[i..]
            .iter()
            .position(|&c| c == close)
            .map_or(chars.len(), |p| i + p + 1)
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i = skip_to(i + 1, '"');
        } else if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next] == ' ' {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if LISTS.contains(&word.as_str()) && call {
                i = skip_to(next, ')');
            } else if !call && !KEYWORDS.contains(&word.as_str()) && !LISTS.contains(&word.as_str())
            {
                out.insert(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn promql_metrics_finds_the_metric_names_only() {
    let found = promql_metrics(
        "histogram_quantile(0.99, sum by (le, path) (rate(a_bucket{code=~\"5..\", x=\"y z\"}[5m]))) \
         / on (job) group_left b_total + c offset 5m",
    );
    assert_eq!(found, ["a_bucket", "b_total", "c"].map(String::from).into());
}

#[test]
fn grafana_dashboard_queries_only_documented_metrics() {
    let path = deploy_dir().join("grafana/workbus.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&path)).expect("the dashboard is JSON");
    let documented = workbus_testkit::metrics_doc::documented(&["hub", "agent", "broker"]);
    let known = |name: &str| {
        documented.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| documented.get(base).is_some_and(|t| t == "histogram"))
            })
    };
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    let mut stack: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().into_iter().flatten());
        panels.push(p);
    }
    let rows: BTreeSet<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    for section in ["Fleet", "Traffic", "Latency", "Errors"] {
        assert!(rows.contains(section), "a {section} row: {rows:?}");
    }
    let ids: Vec<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "every panel has an id");
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "ids are unique"
    );
    let mut unknown = Vec::new();
    let mut queries = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert!(!targets.is_empty(), "panel {title:?} has a query");
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?}"
        );
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or("");
            let metrics = promql_metrics(expr);
            assert!(
                !metrics.is_empty(),
                "panel {title:?}: {expr:?} names no metric"
            );
            queries += 1;
            unknown.extend(
                metrics
                    .into_iter()
                    .filter(|m| !known(m))
                    .map(|m| format!("{title}: {m}")),
            );
        }
    }
    assert!(queries >= 20, "{queries} queries");
    assert!(
        unknown.is_empty(),
        "metrics not in docs/metrics.md: {unknown:?}"
    );
}
