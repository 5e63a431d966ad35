//! `fanout`: one work per cluster, then one update of every work at once through the
//! REST API; time until every applied status is back at the hub, and per-agent
//! latency (PUT sent → status with the new generation accepted by the hub).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fleet::{Fleet, PutPlan, Tracker, fleet_stats, put_works};
use crate::measure::{self, ms, summary};
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// Concurrent REST connections used to issue the updates.
pub const REST_CONCURRENCY: usize = 64;

/// One round's figures.
async fn round(
    fleet: &Fleet,
    tracker: &std::sync::Arc<Tracker>,
    value: &str,
    limit: Duration,
    label: &str,
) -> Value {
    tracker.reset();
    let t = Instant::now();
    let plan = PutPlan {
        clusters: fleet.n,
        slots: 0..fleet.n,
        value: value.to_string(),
        concurrency: REST_CONCURRENCY,
        rate: None,
    };
    let failed = put_works(&fleet.hub, &fleet.prefix, plan, tracker.clone()).await;
    let issue = t.elapsed();
    let all = tracker.wait_all(label, fleet.n, limit).await;
    let (lat, total) = tracker.latencies();
    json!({
        "rest_issue_s": (ms(issue) / 1000.0 * 100.0).round() / 100.0,
        "rest_failed": failed,
        "back": tracker.done.load(Ordering::Relaxed),
        "all_back": all,
        "all_back_s": total.map(|t| (t / 10.0).round() / 100.0),
        "latency": summary(lat),
        "lagged_notifications": tracker.lagged.load(Ordering::Relaxed),
    })
}

/// The `fanout` scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fanout;

impl Scenario for Fanout {
    fn name(&self) -> &'static str {
        "fanout"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (kind, n, limit) = (ctx.broker, ctx.agents, ctx.timeout);
        let mut fleet = Fleet::start(kind, n).await?;
        let connect = fleet.wait_connected(limit).await?;
        let tracker = Tracker::start(&fleet.hub, &fleet.prefix, n, 1);
        let create = round(&fleet, &tracker, "v1", limit, "fanout-create").await;
        let update = round(&fleet, &tracker, "v2", limit, "fanout-update").await;
        let agents = fleet_stats(&mut fleet.workers).await?;
        let broker = match &fleet.broker {
            workbus_tests::brokers::TestBroker::Embedded {
                handle: Some(h), ..
            } => {
                let s = h.stats();
                json!({"published": s.published, "delivered": s.delivered, "dropped": s.dropped})
            }
            _ => Value::Null,
        };
        let hub_metrics = fleet.hub.metrics().clone();
        let figures = json!({
            "connect_all_s": (connect.as_secs_f64() * 10.0).round() / 10.0,
            "create": create,
            "update": update,
            "agents": agents,
            "broker": broker,
            "hub": {
                "statuses_accepted": hub_metrics.statuses_accepted.load(Ordering::Relaxed),
                "store_commits": hub_metrics.store_commits.load(Ordering::Relaxed),
                "store_writes": hub_metrics.store_writes.load(Ordering::Relaxed),
                "store_commit_s": measure::round(hub_metrics.store_commit_micros.load(Ordering::Relaxed) as f64 / 1e6),
                "publish_failures": hub_metrics.publish_failures.load(Ordering::Relaxed),
            },
        });
        fleet.stop().await;
        let all_back = update["all_back_s"]
            .as_f64()
            .filter(|_| update["all_back"] == true);
        let p99 = update["latency"]["p99_ms"].as_f64().map(|v| v / 1000.0);
        let scale = if n >= 10_000 {
            String::new()
        } else {
            format!(" (run at N={n}; targets are for N=10,000)")
        };
        let targets = vec![
            Target::on(format!("all statuses back{scale}"), all_back, "s").at_most(10.0),
            Target::on(format!("p99 latency{scale}"), p99, "s").at_most(5.0),
        ];
        let params = json!({"agents": n, "broker": kind.name(), "rest_concurrency": REST_CONCURRENCY,
        "works_per_cluster": 1, "timeout_s": limit.as_secs()});
        Ok(Report::new(self.name(), params, figures).with_targets(targets))
    }
}
