//! `throughput`: sustained REST changes across the fleet; the highest rate of
//! spec→status round trips at which p99 latency stays under 1 s.
//!
//! Every cluster holds `K` works (the create phase PUTs them all, as fast as
//! `CREATE_CONCURRENCY` connections go: a closed-loop figure). Then, for each offered
//! rate `R` in turn, the bench PUTs `R × step` updates paced at `R` (open loop: sends
//! are due at fixed times whatever the hub does), spread over clusters, each to a
//! different work, and measures every update's latency from its REST send to the hub
//! accepting the agent's `Applied` status for that generation. A step counts when every
//! status came back; the scenario stops after the first step whose p99 exceeds 1 s.
//! `K` is chosen so that no work is updated twice in one step.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fleet::{Fleet, PutPlan, Tracker, fleet_stats, put_works};
use crate::measure::{self, ms, summary};
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// REST connections of the create phase.
const CREATE_CONCURRENCY: usize = 64;
/// REST connections of the paced steps (enough that pacing, not the client, sets
/// the rate while hub latency is tens of milliseconds).
const STEP_CONCURRENCY: usize = 256;
/// Most works per cluster (bounds the create phase).
const MAX_WORKS_PER_CLUSTER: usize = 100;
/// The latency bound of the target.
const P99_LIMIT_MS: f64 = 1000.0;

/// One paced step.
async fn step(
    fleet: &Fleet,
    tracker: &Arc<Tracker>,
    plan: PutPlan,
    limit: Duration,
    label: &str,
) -> Value {
    tracker.reset();
    let (slots, rate) = (plan.slots.len(), plan.rate);
    let metrics = fleet.hub.metrics().clone();
    let commits0 = metrics.store_commits.get();
    let writes0 = metrics.store_writes.get();
    let commit_us0 = metrics.store_commit_micros.get();
    let bytes0 = measure::self_write_bytes();
    let t = Instant::now();
    let failed = put_works(&fleet.hub, &fleet.prefix, plan, tracker.clone()).await;
    let issue = t.elapsed();
    let all = tracker.wait_all(label, slots, limit).await;
    let (lat, total) = tracker.latencies();
    let achieved = total
        .filter(|t| *t > 0.0)
        .map(|t| slots as f64 / (t / 1000.0));
    let issued_rate = slots as f64 / issue.as_secs_f64().max(1e-9);
    let commits = metrics.store_commits.get() - commits0;
    let writes = metrics.store_writes.get() - writes0;
    let commit_s = (metrics.store_commit_micros.get() - commit_us0) as f64 / 1e6;
    let written = measure::self_write_bytes().saturating_sub(bytes0);
    let per_change = |v: f64| measure::round(v / slots as f64);
    json!({
        "offered_per_s": rate.map(measure::round),
        "changes": slots,
        "issued_per_s": measure::round(issued_rate),
        "rest_issue_s": measure::round(ms(issue) / 1000.0),
        "rest_failed": failed,
        "back": tracker.done.load(Ordering::Relaxed),
        "all_back": all,
        "all_back_s": total.map(|t| measure::round(t / 1000.0)),
        "round_trips_per_s": achieved.map(measure::round),
        "latency": summary(lat),
        "lagged_notifications": tracker.lagged.load(Ordering::Relaxed),
        "store": {
            "commits": commits,
            "writes": writes,
            "writes_per_commit": measure::round(writes as f64 / commits.max(1) as f64),
            "commit_busy_s": measure::round(commit_s),
            "mean_commit_ms": measure::round(commit_s * 1000.0 / commits.max(1) as f64),
            "disk_bytes_written": written,
            "disk_bytes_per_round_trip": per_change(written as f64),
        },
    })
}

/// The `throughput` scenario.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// How long each rate step lasts.
    pub step: Duration,
    /// Offered rates (updates/s) to try, in order; stops after the first whose p99
    /// exceeds 1 s.
    pub rates: Vec<u64>,
}

impl Scenario for Throughput {
    fn name(&self) -> &'static str {
        "throughput"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (kind, n, limit) = (ctx.broker, ctx.agents, ctx.timeout);
        let (step_len, rates) = (self.step, &self.rates);
        if n == 0 || rates.is_empty() {
            return Err(BenchError::Setup(
                "need at least one agent and one rate".into(),
            ));
        }
        let max_rate = rates.iter().copied().max().unwrap_or(1) as f64;
        let per_step = |rate: f64| ((rate * step_len.as_secs_f64()).ceil() as usize).max(1);
        let works = per_step(max_rate)
            .div_ceil(n)
            .clamp(1, MAX_WORKS_PER_CLUSTER);
        let capacity = n * works;

        let mut fleet = Fleet::start_on(
            kind,
            n,
            crate::worker::ResyncForm::Digest,
            crate::fleet::Security::Plain,
            ctx.store.as_deref(),
        )
        .await?;
        let connect = fleet.wait_connected(limit).await?;
        let tracker = Tracker::start(&fleet.hub, &fleet.prefix, n, works);
        let plan = |slots: usize, rate: Option<f64>, value: String, concurrency: usize| PutPlan {
            clusters: n,
            slots: 0..slots,
            value,
            concurrency,
            rate,
        };
        let create = step(
            &fleet,
            &tracker,
            plan(capacity, None, "v0".into(), CREATE_CONCURRENCY),
            limit,
            "throughput-create",
        )
        .await;
        let mut steps = Vec::new();
        let mut best: Option<f64> = None;
        for (k, &rate) in rates.iter().enumerate() {
            let slots = per_step(rate as f64).min(capacity);
            let label = format!("throughput-{rate}/s");
            let paced = plan(
                slots,
                Some(rate as f64),
                format!("v{}", k + 1),
                STEP_CONCURRENCY,
            );
            let figures = step(&fleet, &tracker, paced, limit, &label).await;
            let p99 = figures["latency"]["p99_ms"].as_f64();
            let ok = figures["all_back"] == true && p99.is_some_and(|p| p <= P99_LIMIT_MS);
            println!(
                "[{label}] achieved {} round trips/s, p99 {} ms{}",
                figures["round_trips_per_s"],
                figures["latency"]["p99_ms"],
                if ok {
                    ""
                } else {
                    " — over the 1 s bound; stopping"
                }
            );
            if ok {
                let achieved = figures["round_trips_per_s"].as_f64().unwrap_or(0.0);
                best = Some(best.map_or(achieved, |b: f64| b.max(achieved)));
            }
            steps.push(figures);
            if !ok {
                break;
            }
        }
        let hub_metrics = fleet.hub.metrics().clone();
        let agents = fleet_stats(&mut fleet.workers).await?;
        let figures = json!({
            "connect_all_s": measure::round(connect.as_secs_f64()),
            "works_per_cluster": works,
            "create": create,
            "steps": steps,
            "best_round_trips_per_s_p99_under_1s": best.map(measure::round),
            "agents": agents,
            "hub": {
                "statuses_accepted": hub_metrics.statuses_accepted.get(),
                "store_commits": hub_metrics.store_commits.get(),
                "store_writes": hub_metrics.store_writes.get(),
                "store_commit_s": measure::round(hub_metrics.store_commit_micros.get() as f64 / 1e6),
            },
        });
        fleet.stop().await;
        let targets = vec![
            Target::on(
                if ctx.store.is_some() {
                    "round trips/s with p99 under 1 s (PostgreSQL, synchronous_commit=on)"
                } else {
                    "round trips/s with p99 under 1 s (SQLite, synchronous=FULL)"
                },
                best,
                "/s",
            )
            .at_least(10_000.0),
        ];
        let params = json!({
            "agents": n, "broker": kind.name(), "works_per_cluster": works,
            "store": if ctx.store.is_some() { "postgres" } else { "sqlite" },
            "step_s": step_len.as_secs_f64(), "rates": rates,
            "create_concurrency": CREATE_CONCURRENCY, "step_concurrency": STEP_CONCURRENCY,
            "timeout_s": limit.as_secs(),
        });
        let notes = vec![
        "Each step PUTs rate × step-seconds updates paced at the offered rate (open loop), each to a different work; latency is REST send → applied status accepted by the hub.".to_string(),
    ];
        Ok(Report::new(self.name(), params, figures)
            .with_targets(targets)
            .with_notes(notes))
    }
}
