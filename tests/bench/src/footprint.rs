//! `footprint`: the release agent binary's size, its RSS idle and with 100 works (run as
//! a child process against an embedded broker and a hub in this process), and the hub
//! process's RSS growth per connected idle cluster (agents in a separate process; the
//! hub process includes its embedded broker, as `workbus-hub serve` does).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use workbus_hub::watch::ChangeKind;
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::{configmap_work, start_hub};

use crate::fleet::{Worker, cluster_name, create_clusters, fleet_stats, run_id};
use crate::measure::{Progress, proc_status_kb, self_rss_kb};
use crate::worker::WorkerArgs;
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// Works applied for the "with works" RSS figure.
const WORKS: usize = 100;
/// Time given to a process to settle before reading its RSS.
const SETTLE: Duration = Duration::from_secs(2);

/// The release agent binary `cargo build --release -p workbus-agent` makes.
pub fn default_agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/workbus-agent")
}

/// The `footprint` scenario (embedded broker in the hub's process, as `serve` runs it).
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    /// The release agent binary (default: `target/release/workbus-agent`).
    pub agent_bin: Option<PathBuf>,
}

impl Scenario for Footprint {
    fn name(&self) -> &'static str {
        "footprint"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (n, limit) = (ctx.agents, ctx.timeout);
        let mut notes = Vec::new();
        let bin = self.agent_bin.clone().unwrap_or_else(default_agent_bin);
        let broker = TestBroker::embedded().await;
        let id = run_id();
        let source = format!("fp-{id}");
        let dir = tempfile::tempdir().map_err(BenchError::io("temp dir"))?;
        let hub = start_hub(
            &dir.path().join("hub"),
            &source,
            broker.host(),
            broker.port(),
        )
        .await;
        if !hub.wait_subscribed(Duration::from_secs(10)).await {
            return Err(BenchError::Timeout("hub did not subscribe".into()));
        }

        // 1. The agent binary.
        let mut agent = json!(null);
        let size = std::fs::metadata(&bin).map(|m| m.len()).ok();
        if let Some(size) = size {
            agent = measure_agent(&hub, &broker, &bin, &source, dir.path(), limit, &[]).await?;
            agent["binary_bytes"] = json!(size);
            agent["binary_mb"] = json!((size as f64 / 1e4).round() / 100.0);
            agent["binary"] = json!(bin.display().to_string());
        } else {
            notes.push(format!(
                "agent binary {} not found: run `cargo build --release -p workbus-agent` first",
                bin.display()
            ));
        }

        // 2. Hub RSS per idle connected cluster.
        let prefix = format!("i{id}");
        create_clusters(&hub, &prefix, 0..n).await?;
        tokio::time::sleep(SETTLE).await;
        let before = self_rss_kb();
        let mut worker = Worker::spawn(&WorkerArgs {
            host: broker.host().to_string(),
            port: broker.port(),
            source: source.clone(),
            prefix: prefix.clone(),
            first: 0,
            count: n,
            no_digest: false,
            security: Default::default(),
        })?;
        let t = Instant::now();
        let mut progress = Progress::new("footprint-idle");
        loop {
            let s = fleet_stats(std::slice::from_mut(&mut worker)).await?;
            let c = s.get("connected").copied().unwrap_or(0) as usize;
            progress.tick(|| format!("{c}/{n} idle agents connected"), c >= n);
            if c >= n {
                break;
            }
            if t.elapsed() > limit {
                return Err(BenchError::Timeout(format!(
                    "{c}/{n} idle agents connected"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(SETTLE * 2).await;
        let after = self_rss_kb();
        let worker_stats = fleet_stats(std::slice::from_mut(&mut worker)).await?;
        let connected = match &broker {
            TestBroker::Embedded {
                handle: Some(h), ..
            } => h.stats().connected_clients,
            _ => 0,
        };
        let per_cluster_kb = after.saturating_sub(before) as f64 / n.max(1) as f64;
        let agents_rss = worker_stats.get("rss_kb").copied().unwrap_or(0);
        worker.stop().await;
        hub.shutdown().await;
        broker.stop().await;

        let figures = json!({
            "agent": agent,
            "hub_idle": {
                "agents": n,
                "broker_connected_clients": connected,
                "hub_rss_before_kb": before,
                "hub_rss_after_kb": after,
                "hub_rss_per_idle_cluster_kb": (per_cluster_kb * 100.0).round() / 100.0,
                "agents_process_rss_kb": agents_rss,
                "agents_process_rss_per_agent_kb": (agents_rss as f64 / n.max(1) as f64 * 10.0).round() / 10.0,
            }
        });
        let mb = |v: &Value| v.as_f64().map(|kb| (kb / 1024.0 * 100.0).round() / 100.0);
        let targets = vec![
            Target::on(
                "agent binary (stripped)",
                figures["agent"]["binary_mb"].as_f64(),
                "MB",
            )
            .at_most(10.0),
            Target::on(
                "agent RSS idle",
                mb(&figures["agent"]["rss_idle_kb"]),
                "MiB",
            )
            .at_most(15.0),
            Target::on(
                "agent RSS with 100 works",
                mb(&figures["agent"]["rss_100_works_kb"]),
                "MiB",
            )
            .at_most(25.0),
            Target::on("hub RSS per idle cluster", Some(per_cluster_kb), "KiB").at_most(20.0),
        ];
        let params = json!({"idle_agents": n, "works": WORKS, "broker": "embedded (in the hub process)",
        "agent_bin": bin.display().to_string()});
        Ok(Report::new(self.name(), params, figures)
            .with_targets(targets)
            .with_notes(notes))
    }
}

/// Runs the agent binary (with `extra_args`, e.g. its target), reads its RSS idle and
/// with [`WORKS`] works applied.
pub async fn measure_agent(
    hub: &workbus_hub::HubHandle,
    broker: &TestBroker,
    bin: &std::path::Path,
    source: &str,
    dir: &std::path::Path,
    limit: Duration,
    extra_args: &[std::ffi::OsString],
) -> Result<Value, BenchError> {
    let cluster = format!("fp-agent-{}", run_id());
    create_clusters(hub, &cluster, 0..1).await?;
    let cluster = cluster_name(&cluster, 0);
    let mut child = tokio::process::Command::new(bin)
        .args([
            "--spoke-cluster-name",
            &cluster,
            "--broker",
            &format!("{}:{}", broker.host(), broker.port()),
            "--source-id",
            source,
            "--sim-ready-after",
            "0s",
        ])
        .arg("--data-dir")
        .arg(dir.join("agent"))
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(BenchError::io(format!("cannot run {}", bin.display())))?;
    let pid = child
        .id()
        .ok_or_else(|| BenchError::Setup("agent exited at once".into()))?;
    // Idle: connected (the hub sees its spec resync request), then settled.
    let start = Instant::now();
    loop {
        let heard = hub
            .store()
            .run({
                let c = cluster.clone();
                move |s| s.get_cluster(&c)
            })
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.last_heard.is_some());
        if heard {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill().await;
            return Err(BenchError::Timeout(
                "agent binary never reached the hub".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let rss_idle = proc_status_kb(pid, "VmRSS");

    // With works.
    let mut rx = hub.watch();
    let client = hub.client();
    let c2 = cluster.clone();
    let failed = tokio::task::spawn_blocking(move || {
        (0..WORKS)
            .filter(|i| {
                let body = configmap_work(&c2, &format!("w{i}"), &format!("cm{i}"), "v1");
                !client
                    .put(&format!("/api/v1/clusters/{c2}/works/w{i}"), &body)
                    .is_ok_and(|a| a.status < 300)
            })
            .count()
    })
    .await
    .unwrap_or(WORKS);
    let mut applied = std::collections::BTreeSet::new();
    let deadline = Instant::now() + limit;
    while applied.len() < WORKS && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(ch)) if ch.kind == ChangeKind::Status && ch.cluster() == cluster => {
                if ch.object.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Applied" && c.status == "True")
                }) {
                    applied.insert(ch.object.metadata.name.clone());
                }
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => break,
        }
    }
    tokio::time::sleep(SETTLE).await;
    let rss_works = proc_status_kb(pid, "VmRSS");
    let hwm = proc_status_kb(pid, "VmHWM");
    let _ = child.kill().await;
    Ok(json!({
        "rss_idle_kb": rss_idle,
        "rss_100_works_kb": rss_works,
        "peak_rss_kb": hwm,
        "works_applied": applied.len(),
        "rest_failed": failed,
    }))
}
