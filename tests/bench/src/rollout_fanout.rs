//! `rollout-fanout` (issue 14): the fleet-wide change as one API call. A Placement
//! selects every cluster of the fleet; one ManifestWorkReplicaSet (rollout `All`) fans
//! a ConfigMap out to all of them, then one PUT of the replica set updates every
//! cluster's work. Time from that PUT until every applied status is back at the hub,
//! and per-agent latency (PUT sent → status with the new generation accepted) — the
//! same measurement as `fanout`, which makes N REST calls instead of one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use workbus_hub::HubHandle;

use crate::fleet::{Fleet, Tracker, fleet_stats, work_name};
use crate::measure::{ms, summary};
use crate::worker::ResyncForm;
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// The namespace of the bench's Placements and replica sets.
pub(crate) const NAMESPACE: &str = "bench";

/// The `rollout-fanout` scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct RolloutFanout;

/// A REST call with the hub's admin token, off the runtime's threads.
pub(crate) async fn rest(hub: &HubHandle, path: &str, body: Value) -> Result<(), BenchError> {
    let client = hub.client();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || client.put(&path, &body).map(drop))
        .await
        .map_err(|e| BenchError::Setup(format!("REST task: {e}")))?
        .map_err(|e| BenchError::Setup(format!("PUT {e}")))
}

/// The replica set: one ConfigMap with `value` on every cluster of Placement `all`.
/// Named like the fleet's first work, so the tracker follows its per-cluster works.
fn replica_set(value: &str) -> Value {
    json!({
        "apiVersion": "work.open-cluster-management.io/v1alpha1",
        "kind": "ManifestWorkReplicaSet",
        "metadata": {"name": work_name(0), "namespace": NAMESPACE},
        "spec": {
            "placementRefs": [{"name": "all", "rolloutStrategy": {"type": "All"}}],
            "manifestWorkTemplate": {"workload": {"manifests": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "bench", "namespace": "default"},
                "data": {"value": value}
            }]}}
        }
    })
}

/// One round: one PUT of the replica set, then every cluster's applied status.
async fn round(
    fleet: &Fleet,
    tracker: &std::sync::Arc<Tracker>,
    value: &str,
    limit: Duration,
    label: &str,
) -> Result<Value, BenchError> {
    tracker.reset();
    for slot in 0..fleet.n {
        tracker.expect(slot);
    }
    let t = Instant::now();
    let path = format!(
        "/api/v1/namespaces/{NAMESPACE}/manifestworkreplicasets/{}",
        work_name(0)
    );
    rest(&fleet.hub, &path, replica_set(value)).await?;
    let answered = t.elapsed();
    let all = tracker.wait_all(label, fleet.n, limit).await;
    let (lat, total) = tracker.latencies();
    // The tracker follows a broadcast that can lag; the store says what really arrived.
    let in_store = applied_in_store(fleet, tracker).await?;
    Ok(json!({
        "api_calls": 1,
        "api_answer_ms": (ms(answered) * 10.0).round() / 10.0,
        "back": tracker.done.load(std::sync::atomic::Ordering::Relaxed),
        "all_back": all,
        "all_back_s": total.map(|t| (t / 10.0).round() / 100.0),
        "latency": summary(lat),
        "lagged_notifications": tracker.lagged.load(std::sync::atomic::Ordering::Relaxed),
        "applied_in_store_at_end": in_store,
    }))
}

/// How many clusters' works the hub's store holds with an `Applied` status for the
/// generation the round awaited, read once the round ended.
async fn applied_in_store(
    fleet: &Fleet,
    tracker: &std::sync::Arc<Tracker>,
) -> Result<usize, BenchError> {
    let store = fleet.hub.store().blocking().clone();
    let (prefix, n) = (fleet.prefix.clone(), fleet.n);
    let want: Vec<i64> = (0..n)
        .map(|slot| tracker.want[slot].load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut applied = 0;
        for (i, want) in want.into_iter().enumerate() {
            let key = workbus_hub::store::WorkKey {
                cluster: crate::fleet::cluster_name(&prefix, i),
                name: work_name(0),
            };
            let Some(work) = store
                .get_work(&key)
                .map_err(|e| BenchError::Setup(e.to_string()))?
            else {
                continue;
            };
            let ok = work.status.as_ref().is_some_and(|s| {
                s.generation >= want
                    && s.status.conditions.iter().any(|c| {
                        c.type_ == "Applied" && c.status == "True" && c.observed_generation >= want
                    })
            });
            applied += usize::from(ok);
        }
        Ok(applied)
    })
    .await
    .map_err(|e| BenchError::Setup(format!("store read task: {e}")))?
}

/// Binds the `global` set and makes Placement `all`; returns once it selected `n`.
async fn place_everything(hub: &HubHandle, n: usize, limit: Duration) -> Result<(), BenchError> {
    place(hub, n, limit, json!({"clusterSets": ["global"]})).await
}

/// Binds cluster set `global` to the bench's namespace.
pub(crate) async fn bind_global(hub: &HubHandle) -> Result<(), BenchError> {
    rest(
        hub,
        &format!("/api/v1/namespaces/{NAMESPACE}/managedclustersetbindings/global"),
        json!({
            "apiVersion": "cluster.open-cluster-management.io/v1beta2",
            "kind": "ManagedClusterSetBinding",
            "metadata": {"name": "global", "namespace": NAMESPACE},
            "spec": {"clusterSet": "global"}
        }),
    )
    .await
}

/// Binds the `global` set and makes Placement `all` with `spec`; returns once it
/// selected `n` clusters.
pub(crate) async fn place(
    hub: &HubHandle,
    n: usize,
    limit: Duration,
    spec: Value,
) -> Result<(), BenchError> {
    let mut decided = hub.watch_placements();
    bind_global(hub).await?;
    rest(
        hub,
        &format!("/api/v1/namespaces/{NAMESPACE}/placements/all"),
        json!({
            "apiVersion": "cluster.open-cluster-management.io/v1beta1",
            "kind": "Placement",
            "metadata": {"name": "all", "namespace": NAMESPACE},
            "spec": spec
        }),
    )
    .await?;
    tokio::time::timeout(limit, async {
        loop {
            match decided.recv().await {
                Ok(c) if c.placement == "all" && c.clusters.len() == n => return Ok(()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(BenchError::Setup(format!("placement watch: {e}"))),
            }
        }
    })
    .await
    .map_err(|_| BenchError::Timeout(format!("the placement to select {n} clusters")))?
}

impl Scenario for RolloutFanout {
    fn name(&self) -> &'static str {
        "rollout-fanout"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (kind, n, limit) = (ctx.broker, ctx.agents, ctx.timeout);
        let mut fleet = Fleet::start_with(kind, n, ResyncForm::Digest).await?;
        let connect = fleet.wait_connected(limit).await?;
        let placed = Instant::now();
        place_everything(&fleet.hub, n, limit).await?;
        let place_s = placed.elapsed().as_secs_f64();
        let tracker = Tracker::start(&fleet.hub, &fleet.prefix, n, 1);
        let create = round(&fleet, &tracker, "v1", limit, "rollout-create").await?;
        let update = round(&fleet, &tracker, "v2", limit, "rollout-update").await?;
        let agents = fleet_stats(&mut fleet.workers).await?;
        fleet.stop().await;
        let scale = if n >= 10_000 {
            String::new()
        } else {
            format!(" (run at N={n}; targets are for N=10,000)")
        };
        let all_back = update["all_back_s"]
            .as_f64()
            .filter(|_| update["all_back"] == true);
        let p99 = update["latency"]["p99_ms"].as_f64().map(|v| v / 1000.0);
        let targets = vec![
            Target::on(format!("all statuses back{scale}"), all_back, "s").at_most(1.5),
            Target::on(format!("p99 latency{scale}"), p99, "s").at_most(1.0),
        ];
        let params = json!({"agents": n, "broker": kind.name(), "rollout": "All",
            "timeout_s": limit.as_secs()});
        let figures = json!({
            "connect_all_s": (connect.as_secs_f64() * 10.0).round() / 10.0,
            "placement_selected_all_s": (place_s * 100.0).round() / 100.0,
            "create": create,
            "update": update,
            "agents": agents,
        });
        Ok(Report::new(self.name(), params, figures).with_targets(targets))
    }
}
