//! `join-storm` (issue 13): N agents join the hub at once with an auto-accept bootstrap
//! token — each makes a key and CSR, logs in to the hub's embedded broker (secured as
//! `serve` runs it) as its bootstrap identity, gets its ManagedCluster accepted and its
//! certificate signed, reconnects with mutual TLS and renews its lease. Measures the time
//! until every cluster is Available, each cluster's time from the storm's start to
//! Available (p50/p99), and the hub process's RSS growth per registered, idle, connected
//! cluster (hub, SQLite and the embedded broker with its TLS connections are all in this
//! process, as `workbus-hub serve` runs them; the agents are in worker processes), as
//! read and after `malloc_trim` (without what the storm left cached in the allocator).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::join_fleet::{ClusterTracker, JoinFleet, available_counts, available_is};
use crate::measure::{self, self_rss_kb, self_rss_trimmed_kb, summary};
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// Time given to the hub process to settle before reading its RSS.
const SETTLE: Duration = Duration::from_secs(3);

/// The scale the targets are for.
pub const TARGET_N: usize = 5_000;

/// The `join-storm` scenario (embedded broker only: bootstrap logins need its
/// authorizer).
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinStorm;

impl Scenario for JoinStorm {
    fn name(&self) -> &'static str {
        "join-storm"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (n, limit) = (ctx.agents, ctx.timeout);
        let mut notes = Vec::new();
        if ctx.broker != crate::BrokerKind::Embedded {
            notes.push("join-storm runs on the hub's embedded broker only (bootstrap logins need its authorizer); --broker ignored".to_string());
        }
        let mut fleet = JoinFleet::start().await?;
        tokio::time::sleep(SETTLE).await;
        let rss_before = self_rss_kb();
        let rss_before_trimmed = self_rss_trimmed_kb();
        let tracker = ClusterTracker::start(fleet.handle(), &fleet.prefix, 0..n, |c| {
            available_is(c, "True")
        });
        let storm = Instant::now();
        let reach = fleet.hub.reach();
        fleet.spawn_agents(0..n, reach, None)?;
        let all = tracker.wait_all("join-storm", limit).await;
        let all_s = all.then(|| storm.elapsed().as_secs_f64());
        let per_cluster = tracker.times_ms(storm);
        tokio::time::sleep(SETTLE).await;
        let rss_after = self_rss_kb();
        let rss_after_trimmed = self_rss_trimmed_kb();
        let growth_per_cluster = |after: u64, before: u64| {
            (after.saturating_sub(before) as f64 / n.max(1) as f64 * 100.0).round() / 100.0
        };
        let per_cluster_kb = growth_per_cluster(rss_after, rss_before);
        let per_cluster_trimmed_kb = growth_per_cluster(rss_after_trimmed, rss_before_trimmed);
        let agents = fleet.agent_stats().await?;
        let counts = available_counts(fleet.handle()).await;
        let broker_clients = match &fleet.hub.broker {
            workbus_tests::join_hub::JoinBroker::Embedded(b) => {
                b.handle().stats().connected_clients
            }
            workbus_tests::join_hub::JoinBroker::Mosquitto(_) => 0,
        };
        let lagged = tracker.lagged();
        fleet.stop().await;
        if lagged > 0 {
            notes.push(format!("{lagged} cluster notifications lagged; those clusters' times come from a store scan every second (up to 1 s late)"));
        }
        let scale = if n >= TARGET_N {
            String::new()
        } else {
            format!(" (run at N={n}; the target is for N={TARGET_N})")
        };
        let figures = json!({
            "all_available": all,
            "all_available_s": all_s.map(measure::round),
            "available": tracker.done(),
            "time_to_available": summary(per_cluster),
            "clusters_by_available": counts,
            "broker_connected_clients": broker_clients,
            "agents": agents,
            "hub_rss_before_kb": rss_before,
            "hub_rss_after_kb": rss_after,
            "hub_rss_per_registered_cluster_kb": per_cluster_kb,
            "hub_rss_trimmed_before_kb": rss_before_trimmed,
            "hub_rss_trimmed_after_kb": rss_after_trimmed,
            "hub_rss_trimmed_per_registered_cluster_kb": per_cluster_trimmed_kb,
        });
        let targets = vec![
            Target::on(
                format!("hub RSS per registered idle connected cluster{scale}"),
                Some(per_cluster_kb),
                "KiB",
            )
            .at_most(20.0),
            Target::on(
                format!("the same after malloc_trim (live memory){scale}"),
                Some(per_cluster_trimmed_kb),
                "KiB",
            )
            .at_most(20.0),
        ];
        let params = json!({"agents": n, "broker": "embedded (mutual TLS, fleet ACL, bootstrap tokens)",
            "auto_accept": true, "timeout_s": limit.as_secs(), "agents_per_worker": crate::fleet::PER_WORKER});
        Ok(Report::new(self.name(), params, figures)
            .with_targets(targets)
            .with_notes(notes))
    }
}
