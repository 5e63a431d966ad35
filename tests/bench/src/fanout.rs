//! `fanout`: one work per cluster, then one update of every work at once through the
//! REST API; time until every applied status is back at the hub, and per-agent
//! latency (PUT sent → status with the new generation accepted by the hub).
//!
//! `--tls` (issue 12) runs it twice in one run, plaintext and then secured as the
//! product runs by default (mutual TLS, the fleet ACL, signed spec events verified by
//! every agent; embedded broker), and reports both side by side with the cost of
//! security, and the hub process's RSS per idle connection in each mode (hub and
//! embedded broker share the process).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fleet::{Fleet, PutPlan, Security, Tracker, fleet_stats, put_works};
use crate::measure::{self, ms, self_rss_kb, summary};
use crate::worker::ResyncForm;
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
pub struct Fanout {
    /// Also run it secured and compare (`--tls`).
    pub tls: bool,
}

/// One fleet's run: connect, create, update. Returns its figures.
async fn run_fleet(ctx: &Ctx, security: Security) -> Result<Value, BenchError> {
    let (kind, n, limit) = (ctx.broker, ctx.agents, ctx.timeout);
    let mut fleet =
        Fleet::start_on(kind, n, ResyncForm::Digest, security, ctx.store.as_deref()).await?;
    let rss_before = self_rss_kb();
    let connect = fleet.wait_connected(limit).await?;
    // Idle connections settle (subscriptions, first resync) before the reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = self_rss_kb();
    let tracker = Tracker::start(&fleet.hub, &fleet.prefix, n, 1);
    let create = round(&fleet, &tracker, "v1", limit, "fanout-create").await;
    let update = round(&fleet, &tracker, "v2", limit, "fanout-update").await;
    let agents = fleet_stats(&mut fleet.workers).await?;
    let broker = match &fleet.broker {
        workbus_tests::brokers::TestBroker::Embedded {
            handle: Some(h), ..
        } => {
            let s = h.stats();
            json!({"published": s.published, "delivered": s.delivered, "dropped": s.dropped,
                "denied_publishes": s.denied_publishes, "denied_subscriptions": s.denied_subscriptions})
        }
        _ => Value::Null,
    };
    let hub_metrics = fleet.hub.metrics().clone();
    let per_connection_kb = rss_connected.saturating_sub(rss_before) as f64 / n.max(1) as f64;
    let figures = json!({
        "security": security.name(),
        "store": if ctx.store.is_some() { "postgres" } else { "sqlite" },
        "connect_all_s": (connect.as_secs_f64() * 10.0).round() / 10.0,
        "hub_rss_per_idle_connection_kb": (per_connection_kb * 100.0).round() / 100.0,
        "create": create,
        "update": update,
        "agents": agents,
        "broker": broker,
        "hub": {
            "statuses_accepted": hub_metrics.statuses_accepted.get(),
            "store_commits": hub_metrics.store_commits.get(),
            "store_writes": hub_metrics.store_writes.get(),
            "store_commit_s": measure::round(hub_metrics.store_commit_micros.get() as f64 / 1e6),
            "publish_failures": hub_metrics.publish_failures.get(),
        },
    });
    fleet.stop().await;
    Ok(figures)
}

/// The update round's "all back" time of a run's figures, when all came back.
fn all_back_s(figures: &Value) -> Option<f64> {
    let update = &figures["update"];
    update["all_back_s"]
        .as_f64()
        .filter(|_| update["all_back"] == true)
}

impl Scenario for Fanout {
    fn name(&self) -> &'static str {
        "fanout"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (kind, n, limit) = (ctx.broker, ctx.agents, ctx.timeout);
        let plain = run_fleet(ctx, Security::Plain).await?;
        let scale = if n >= 10_000 {
            String::new()
        } else {
            format!(" (run at N={n}; targets are for N=10,000)")
        };
        let p99 = plain["update"]["latency"]["p99_ms"]
            .as_f64()
            .map(|v| v / 1000.0);
        let mut targets = vec![
            Target::on(format!("all statuses back{scale}"), all_back_s(&plain), "s").at_most(10.0),
            Target::on(format!("p99 latency{scale}"), p99, "s").at_most(5.0),
        ];
        let mut params = json!({"agents": n, "broker": kind.name(), "rest_concurrency": REST_CONCURRENCY,
        "works_per_cluster": 1, "timeout_s": limit.as_secs(), "tls": self.tls});
        if !self.tls {
            return Ok(Report::new(self.name(), params, plain).with_targets(targets));
        }
        let tls = run_fleet(ctx, Security::Tls).await?;
        let overhead = |key: fn(&Value) -> Option<f64>| {
            key(&plain)
                .zip(key(&tls))
                .filter(|(p, _)| *p > 0.0)
                .map(|(p, t)| ((t / p - 1.0) * 1000.0).round() / 10.0)
        };
        let update_overhead = overhead(all_back_s);
        let p99_overhead = overhead(|f| f["update"]["latency"]["p99_ms"].as_f64());
        let per_conn = |f: &Value| f["hub_rss_per_idle_connection_kb"].as_f64();
        let figures = json!({
            "plain": plain,
            "tls": tls,
            "tls_cost": {
                "update_all_back_percent": update_overhead,
                "update_p99_percent": p99_overhead,
                "hub_rss_per_idle_connection_extra_kb": per_conn(&tls).zip(per_conn(&plain)).map(|(t, p)| ((t - p) * 100.0).round() / 100.0),
            },
        });
        targets.push(
            Target::on(
                format!("TLS + ACL + signatures: cost on all statuses back{scale}"),
                update_overhead,
                "%",
            )
            .at_most(15.0),
        );
        params["broker"] = json!("embedded");
        Ok(Report::new(self.name(), params, figures).with_targets(targets))
    }
}
