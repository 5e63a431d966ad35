//! `placement-relabel` (issue 14): what one cluster's label change costs the hub when
//! N clusters and many Placements are evaluated. N clusters (no agents) labelled
//! `team=t<i % 100>`, `--placements` Placements each selecting one team (half with
//! `numberOfClusters: 10`, so scores and cuts matter), then `--changes` label changes
//! over REST, one at a time. For each: the hub process' CPU time (user + system,
//! `getrusage`) from just before the call until the placement re-evaluation has
//! settled (no Placement change for [`QUIET`]), minus the idle CPU of an equally long
//! window measured right after — the REST call, the store write, the incremental
//! re-evaluation and the decision writes, as the hub does them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::broadcast::error::TryRecvError;
use workbus_hub::HubHandle;
use workbus_hub::store::writes::CreateCluster;

use crate::fleet::{cluster_name, run_id};
use crate::measure::{ms, round, summary};
use crate::rollout_fanout::{NAMESPACE, bind_global, rest};
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// A re-evaluation counts as settled after this long without a Placement change.
pub const QUIET: Duration = Duration::from_millis(300);

/// The `placement-relabel` scenario.
#[derive(Debug, Clone, Copy)]
pub struct PlacementRelabel {
    /// Placements to keep evaluated.
    pub placements: usize,
    /// Label changes to measure.
    pub changes: usize,
}

/// CPU time (user + system) of this process — the hub runs in it.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn team(i: usize) -> String {
    format!("t{}", i % 100)
}

/// Waits until no Placement changed for [`QUIET`] (at most `limit`); answers how many
/// changes came.
async fn settle(
    changes: &mut tokio::sync::broadcast::Receiver<workbus_hub::watch::PlacementChange>,
    limit: Duration,
) -> usize {
    let end = Instant::now() + limit;
    let mut seen = 0;
    let mut last = Instant::now();
    while Instant::now() < end && last.elapsed() < QUIET {
        match changes.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {
                seen += 1;
                last = Instant::now();
            }
            Err(TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(TryRecvError::Closed) => break,
        }
    }
    seen
}

async fn setup(
    hub: &HubHandle,
    prefix: &str,
    n: usize,
    placements: usize,
) -> Result<(), BenchError> {
    let prefix_owned = prefix.to_string();
    hub.store()
        .run(move |s| {
            for i in 0..n {
                s.write(CreateCluster {
                    name: cluster_name(&prefix_owned, i),
                    labels: BTreeMap::from([("team".to_string(), team(i))]),
                    now: chrono::Utc::now(),
                })?;
            }
            Ok(())
        })
        .await
        .map_err(|e| BenchError::Setup(format!("cannot create clusters: {e}")))?;
    bind_global(hub).await?;
    for p in 0..placements {
        let mut spec = json!({
            "clusterSets": ["global"],
            "predicates": [{"requiredClusterSelector": {"labelSelector": {
                "matchLabels": {"team": format!("t{}", p % 50)}}}}],
            // The clusters have no agents: tolerate their taints.
            "tolerations": [{"operator": "Exists"}]
        });
        if p % 2 == 0 {
            spec["numberOfClusters"] = json!(10);
        }
        rest(
            hub,
            &format!("/api/v1/namespaces/{NAMESPACE}/placements/team-{p}"),
            json!({
                "apiVersion": "cluster.open-cluster-management.io/v1beta1",
                "kind": "Placement",
                "metadata": {"name": format!("team-{p}"), "namespace": NAMESPACE},
                "spec": spec
            }),
        )
        .await?;
    }
    Ok(())
}

impl Scenario for PlacementRelabel {
    fn name(&self) -> &'static str {
        "placement-relabel"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (kind, n, limit) = (ctx.broker, ctx.agents, ctx.timeout);
        if n == 0 || self.placements == 0 {
            return Err(BenchError::Setup(
                "placement-relabel needs clusters and placements".into(),
            ));
        }
        let broker = kind.start().await?;
        let dir = tempfile::tempdir().map_err(BenchError::io("temp dir"))?;
        let id = run_id();
        let hub = broker.start_hub(dir.path(), &format!("bench-{id}")).await;
        let prefix = format!("b{id}");
        let mut changes = hub.watch_placements();
        let t = Instant::now();
        setup(&hub, &prefix, n, self.placements).await?;
        settle(&mut changes, limit).await;
        let setup_s = t.elapsed().as_secs_f64();
        let mut cpu = Vec::new();
        let mut idle = Vec::new();
        let mut placement_changes = Vec::new();
        for round_no in 0..self.changes {
            let cluster = (round_no * 37) % n;
            let new_team = team(round_no * 7 + 1);
            let before = process_cpu();
            let started = Instant::now();
            let client = hub.client();
            let path = format!("/api/v1/clusters/{}/labels", cluster_name(&prefix, cluster));
            tokio::task::spawn_blocking(move || {
                client
                    .post(&path, &json!({"set": {"team": new_team}}))
                    .map(drop)
            })
            .await
            .map_err(|e| BenchError::Setup(format!("REST task: {e}")))?
            .map_err(|e| BenchError::Setup(format!("label change: POST {e}")))?;
            let seen = settle(&mut changes, limit).await;
            let window = started.elapsed();
            let used = process_cpu().saturating_sub(before);
            // Idle baseline over a window as long as the change took.
            let idle_before = process_cpu();
            tokio::time::sleep(window).await;
            let idle_cpu = process_cpu().saturating_sub(idle_before);
            cpu.push(ms(used.saturating_sub(idle_cpu)));
            idle.push(ms(idle_cpu));
            placement_changes.push(seen);
        }
        hub.shutdown().await;
        drop(broker);
        let worst = cpu.iter().copied().reduce(f64::max).map(round);
        let scale = if n >= 10_000 && self.placements >= 100 {
            String::new()
        } else {
            format!(
                " (run at N={n}, {} placements; the target is for 10,000 and 100)",
                self.placements
            )
        };
        let targets = vec![
            Target::on(
                format!("worst hub CPU per label change{scale}"),
                worst,
                "ms",
            )
            .at_most(50.0),
        ];
        let params = json!({"clusters": n, "placements": self.placements,
            "changes": self.changes, "broker": kind.name(), "quiet_ms": ms(QUIET)});
        let figures = json!({
            "setup_s": round(setup_s),
            "hub_cpu_per_change": summary(cpu.clone()),
            "hub_cpu_each_ms": cpu.iter().map(|v| round(*v)).collect::<Vec<_>>(),
            "idle_cpu_per_window": summary(idle),
            "placement_changes_per_label_change": placement_changes,
        });
        Ok(Report::new(self.name(), params, figures).with_targets(targets))
    }
}
