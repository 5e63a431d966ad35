//! The CLI of ManifestWorkReplicaSets (issue 14): `apply -f` of a replica set,
//! `get manifestworkreplicasets|mwrs`, and `rollout status|approve|abort`. `rollout
//! status` shows one progress bar per decision group on a terminal and plain lines
//! otherwise; `--watch` re-reads the replica set every second until the rollout is
//! complete, aborted or rolled back (the SSE watch `/api/v1/watch/replicasets` is for
//! programs).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::{Value, json};
use workbus_schemas::replicaset::names;
use workbus_schemas::replicaset::{ManifestWorkReplicaSet, RolloutPhase};

use super::CliError;
use super::client::{Client, encode_component};
use super::output::{age, table};

/// How the CLI names a replica set in its messages (kubectl's `kind.group`).
const KUBECTL_NAME: &str = names::KUBECTL_NAME;

/// `rollout` commands.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show a replica set's rollout: phase and a progress bar per decision group.
    Status {
        /// Replica set name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long = "namespace", default_value = "default")]
        namespace: String,
        /// Follow until the rollout completes or stops.
        #[arg(short = 'w', long = "watch")]
        watch: bool,
    },
    /// Approve the gate the rollout waits at.
    Approve {
        /// Replica set name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long = "namespace", default_value = "default")]
        namespace: String,
    },
    /// Stop the rollout: no new cluster starts.
    Abort {
        /// Replica set name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long = "namespace", default_value = "default")]
        namespace: String,
    },
}

/// The REST path of a replica set.
pub fn path(namespace: &str, name: &str) -> String {
    format!(
        "/api/v1/namespaces/{}/{}/{}",
        encode_component(namespace),
        names::RESOURCE,
        encode_component(name)
    )
}

/// The table of `get manifestworkreplicasets`.
pub fn table_of(items: &[Value], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|v| {
            let rs: ManifestWorkReplicaSet = serde_json::from_value(v.clone()).unwrap_or_default();
            let status = rs.status.unwrap_or_default();
            let placements: Vec<&str> = rs
                .spec
                .placement_refs
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            vec![
                rs.metadata.namespace.clone(),
                rs.metadata.name.clone(),
                placements.join(","),
                format!("{}/{}", status.summary.available, status.summary.total),
                status
                    .rollout
                    .map(|r| format!("{:?}", r.phase))
                    .unwrap_or_else(|| "Pending".into()),
                age(
                    v.pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str),
                    now,
                ),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "NAME",
            "PLACEMENTS",
            "AVAILABLE",
            "ROLLOUT",
            "AGE",
        ],
        &rows,
    )
}

fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        (done as usize * width) / total as usize
    };
    format!(
        "[{}{}]",
        "#".repeat(filled),
        "-".repeat(width - filled.min(width))
    )
}

/// `rollout status`: the phase, then per placement and decision group its progress.
pub fn render_status(rs: &ManifestWorkReplicaSet, terminal: bool) -> String {
    let mut out = String::new();
    let Some(progress) = rs.status.as_ref().and_then(|s| s.rollout.as_ref()) else {
        let _ = writeln!(
            out,
            "{}/{}: not reconciled yet",
            rs.metadata.namespace, rs.metadata.name
        );
        return out;
    };
    let _ = write!(
        out,
        "{}/{}: {:?}",
        rs.metadata.namespace, rs.metadata.name, progress.phase
    );
    if let Some(gate) = &progress.awaiting {
        let group = if gate.group_name.is_empty() {
            gate.group_index.to_string()
        } else {
            gate.group_name.clone()
        };
        let _ = write!(
            out,
            " after group {group} of placement {} (run: rollout approve {} -n {})",
            gate.placement, rs.metadata.name, rs.metadata.namespace
        );
    }
    if !progress.message.is_empty() {
        let _ = write!(out, ": {}", progress.message);
    }
    out.push('\n');
    for p in &progress.placements {
        for g in &p.groups {
            let label = if g.name.is_empty() {
                format!("group {}", g.index)
            } else {
                format!("group {} ({})", g.index, g.name)
            };
            let counts = format!(
                "{}/{} succeeded, {} progressing, {} failed, {} to apply",
                g.succeeded, g.total, g.progressing, g.failed, g.to_apply
            );
            if terminal {
                let _ = writeln!(
                    out,
                    "  {} {label:<20} {} {counts}",
                    p.name,
                    bar(g.succeeded, g.total, 30)
                );
            } else {
                let _ = writeln!(out, "{} {label}: {counts}", p.name);
            }
        }
    }
    out
}

fn finished(rs: &ManifestWorkReplicaSet) -> bool {
    rs.status
        .as_ref()
        .and_then(|s| s.rollout.as_ref())
        .is_some_and(|r| {
            matches!(
                r.phase,
                RolloutPhase::Complete | RolloutPhase::Aborted | RolloutPhase::RolledBack
            )
        })
}

/// Runs a `rollout` command.
pub fn run(client: &Client, command: RolloutCommand) -> Result<(), CliError> {
    match command {
        RolloutCommand::Status {
            name,
            namespace,
            watch,
        } => {
            let terminal = std::io::stdout().is_terminal();
            let mut last = String::new();
            loop {
                let body = client.get(&path(&namespace, &name))?.body;
                let rs: ManifestWorkReplicaSet = serde_json::from_value(body).map_err(|e| {
                    CliError::Input(format!("the server sent no ManifestWorkReplicaSet: {e}"))
                })?;
                let text = render_status(&rs, terminal);
                if text != last {
                    if terminal && watch && !last.is_empty() {
                        // Redraw in place: up as many lines as were printed.
                        print!("\x1b[{}A\x1b[J", last.lines().count());
                    }
                    print!("{text}");
                    last = text;
                }
                if !watch || finished(&rs) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        RolloutCommand::Approve { name, namespace } => {
            let answer =
                client.post(&format!("{}/approve", path(&namespace, &name)), &json!({}))?;
            let gate = answer.body.get("approved").cloned().unwrap_or(Value::Null);
            println!(
                "{KUBECTL_NAME}/{name} approved (placement {}, group {})",
                gate.get("placement").and_then(Value::as_str).unwrap_or("?"),
                gate.get("groupName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| gate.get("groupIndex").map(Value::to_string))
                    .unwrap_or_else(|| "0".into())
            );
            Ok(())
        }
        RolloutCommand::Abort { name, namespace } => {
            client.post(&format!("{}/abort", path(&namespace, &name)), &json!({}))?;
            println!("{KUBECTL_NAME}/{name} aborted");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ManifestWorkReplicaSet {
        serde_json::from_value(json!({
            "apiVersion": names::API_VERSION, "kind": names::KIND,
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"placementRefs": [{"name": "fleet"}]},
            "status": {"summary": {"total": 3, "available": 1}, "rollout": {
                "phase": "AwaitingApproval",
                "awaiting": {"placement": "fleet", "groupIndex": 0, "groupName": "canary"},
                "templateHash": "x",
                "placements": [{"name": "fleet", "groups": [
                    {"index": 0, "name": "canary", "total": 1, "toApply": 0, "progressing": 0, "succeeded": 1, "failed": 0},
                    {"index": 1, "total": 2, "toApply": 2, "progressing": 0, "succeeded": 0, "failed": 0}
                ]}]
            }}
        }))
        .unwrap()
    }

    #[test]
    fn status_has_a_bar_per_group_on_a_terminal_and_plain_lines_otherwise() {
        let rs = sample();
        let tty = render_status(&rs, true);
        assert!(
            tty.starts_with("apps/web: AwaitingApproval after group canary of placement fleet")
        );
        assert!(tty.contains(&format!("{} 1/1 succeeded", bar(1, 1, 30))));
        assert!(tty.contains(&format!("{} 0/2 succeeded", bar(0, 2, 30))));
        let plain = render_status(&rs, false);
        assert!(
            plain.contains("fleet group 1: 0/2 succeeded, 0 progressing, 0 failed, 2 to apply")
        );
        assert!(!plain.contains('['));
    }

    #[test]
    fn the_table_shows_availability_and_phase() {
        let v = serde_json::to_value(sample()).unwrap();
        let t = table_of(&[v], Utc::now());
        assert!(t.contains("apps"));
        assert!(t.contains("1/3"));
        assert!(t.contains("AwaitingApproval"));
    }
}
