//! `kill-unknown` (issue 13): how long a vanished cluster stays Available. N agents join
//! (as in `join-storm`), half of them directly, half through a fault proxy; once all are
//! Available, two ways to vanish, each timed per cluster until the hub says Unknown:
//!
//! - `kill9`: the first half's worker process gets SIGKILL. The kernel closes its
//!   sockets, so the broker sees the connections end without DISCONNECT and publishes
//!   each agent's Will (a released lease) at once;
//! - `silent`: the proxy stops forwarding (a black-holed link: no FIN, no RST), so only
//!   the broker's keep-alive check (1.5 × keep-alive) notices; then the Will.
//!
//! Target: ≤ 1.5 × keep-alive. OCM's registration marks a cluster Unknown only when its
//! lease is 5 × `leaseDurationSeconds` old (4 min 42 s after an agent was stopped with
//! the default 60 s, ocm#117), which the report lists beside ours.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use workbus_testkit::fault_proxy::FaultProxy;

use crate::join_fleet::{ClusterTracker, JoinFleet, available_is};
use crate::measure::summary;
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// OCM's time from a killed agent to Unknown (reference figure, seconds).
pub const OCM_UNKNOWN_S: f64 = 282.0;

/// The `kill-unknown` scenario.
#[derive(Debug, Clone, Copy)]
pub struct KillUnknown {
    /// The agents' MQTT keep-alive (the MQTT client allows no less than 5 s).
    pub keep_alive: Duration,
}

impl Scenario for KillUnknown {
    fn name(&self) -> &'static str {
        "kill-unknown"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let limit = ctx.timeout;
        let n = ctx.agents.max(2);
        let half = n / 2;
        let keep_alive = self.keep_alive.max(Duration::from_secs(5));
        let mut fleet = JoinFleet::start().await?;
        let proxy = FaultProxy::start(fleet.hub.reach()).await;
        let up = ClusterTracker::start(fleet.handle(), &fleet.prefix, 0..n, |c| {
            available_is(c, "True")
        });
        let reach = fleet.hub.reach();
        let killed = fleet.spawn_agents(0..half, reach, Some(keep_alive.as_secs()))?;
        fleet.spawn_agents(half..n, proxy.addr(), Some(keep_alive.as_secs()))?;
        if !up.wait_all("kill-unknown: join", limit).await {
            return Err(BenchError::Timeout(format!(
                "only {}/{n} clusters Available",
                up.done()
            )));
        }

        // kill -9 of the first half's worker process(es).
        let kill9 = ClusterTracker::start(fleet.handle(), &fleet.prefix, 0..half, |c| {
            available_is(c, "Unknown")
        });
        let at = Instant::now();
        for i in &killed {
            fleet.workers[*i].kill();
        }
        let kill9_all = kill9.wait_all("kill-unknown: kill -9", limit).await;
        let kill9_times = kill9.times_ms(at);

        // The second half's link goes silent.
        let silent = ClusterTracker::start(fleet.handle(), &fleet.prefix, half..n, |c| {
            available_is(c, "Unknown")
        });
        let at = Instant::now();
        proxy.pause();
        let silent_all = silent.wait_all("kill-unknown: silent link", limit).await;
        let silent_times = silent.times_ms(at);
        proxy.resume();
        fleet.stop().await;

        let bound_s = keep_alive.as_secs_f64() * 1.5;
        let max_s =
            |t: &[f64], all: bool| all.then(|| t.iter().copied().fold(0.0, f64::max) / 1000.0);
        let leg = |t: &Vec<f64>, all: bool| -> Value {
            json!({"clusters": t.len(), "all_unknown": all, "time_to_unknown": summary(t.clone())})
        };
        let figures = json!({
            "keep_alive_s": keep_alive.as_secs_f64(),
            "bound_1_5_keep_alive_s": bound_s,
            "kill9": leg(&kill9_times, kill9_all),
            "silent": leg(&silent_times, silent_all),
            "ocm_reference_s": OCM_UNKNOWN_S,
        });
        let targets = vec![
            Target::on(
                "kill -9 → Unknown, slowest cluster",
                max_s(&kill9_times, kill9_all),
                "s",
            )
            .at_most(bound_s),
            Target::on(
                "silent link → Unknown, slowest cluster",
                max_s(&silent_times, silent_all),
                "s",
            )
            .at_most(bound_s),
        ];
        let notes = vec![format!(
            "OCM marks a killed cluster Unknown after ~{OCM_UNKNOWN_S} s (5 × leaseDurationSeconds of 60 s; ocm#117); workbus keeps that lease and adds the MQTT Will"
        )];
        let params = json!({"agents": n, "kill9_agents": half, "silent_agents": n - half,
            "keep_alive_s": keep_alive.as_secs(), "broker": "embedded (mutual TLS, fleet ACL)",
            "timeout_s": limit.as_secs()});
        Ok(Report::new(self.name(), params, figures)
            .with_targets(targets)
            .with_notes(notes))
    }
}
