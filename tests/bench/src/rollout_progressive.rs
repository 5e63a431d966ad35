//! `rollout-progressive` (issue 14): the rollout controller's own overhead in a
//! progressive rollout. A Placement splits the fleet into 10 decision groups
//! (`clustersPerDecisionGroup`: a tenth), one ManifestWorkReplicaSet rolls a ConfigMap
//! out `ProgressivePerGroup`, and for each group boundary the bench measures the time
//! from the hub accepting the last status that completes group k (Applied and
//! Available at the work's generation: the success rule) to the controller's commit of
//! group k+1's first work (announced right after the commit; the outbox publishes it
//! then). Also: from that status to the first status of group k+1 back (the agents'
//! round trip included), and the whole rollout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use workbus_hub::watch::{ChangeKind, WorkChange};

use crate::fleet::{Fleet, fleet_stats, work_name};
use crate::measure::{ms, round, summary};
use crate::rollout_fanout::{NAMESPACE, place, rest};
use crate::worker::ResyncForm;
use crate::{BenchError, Ctx, Report, Scenario, Target};

/// The number of decision groups.
pub const GROUPS: usize = 10;

/// The `rollout-progressive` scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct RolloutProgressive;

/// What the bench saw of one decision group (times since the `PUT`).
#[derive(Debug, Clone, Default)]
struct GroupTimes {
    /// Clusters in it.
    size: usize,
    /// Its first work committed by the controller.
    first_spec: Option<Duration>,
    /// Its first status back.
    first_status: Option<Duration>,
    /// Its clusters that succeeded (statuses can come twice).
    succeeded: BTreeSet<String>,
    /// When the last of them succeeded: the group is done.
    done: Option<Duration>,
}

/// Everything seen so far, shared with the watcher task.
#[derive(Debug, Default)]
struct Seen {
    groups: Vec<GroupTimes>,
    lagged: u64,
}

/// Whether a work's status says Applied and Available at the work's generation.
fn succeeded(change: &WorkChange) -> bool {
    let generation = change.object.metadata.generation;
    let Some(status) = &change.object.status else {
        return false;
    };
    ["Applied", "Available"].iter().all(|t| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == *t && c.status == "True" && c.observed_generation == generation)
    })
}

fn replica_set() -> Value {
    json!({
        "apiVersion": "work.open-cluster-management.io/v1alpha1",
        "kind": "ManifestWorkReplicaSet",
        "metadata": {"name": work_name(0), "namespace": NAMESPACE},
        "spec": {
            "placementRefs": [{"name": "all", "rolloutStrategy": {"type": "ProgressivePerGroup"}}],
            "manifestWorkTemplate": {"workload": {"manifests": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "bench", "namespace": "default"},
                "data": {"value": "v1"}
            }]}}
        }
    })
}

impl Scenario for RolloutProgressive {
    fn name(&self) -> &'static str {
        "rollout-progressive"
    }

    async fn run(&self, ctx: &Ctx) -> Result<Report, BenchError> {
        let (kind, n, limit) = (ctx.broker, ctx.agents, ctx.timeout);
        if n < GROUPS {
            return Err(BenchError::Setup(format!(
                "rollout-progressive needs at least {GROUPS} agents"
            )));
        }
        let mut fleet = Fleet::start_with(kind, n, ResyncForm::Digest).await?;
        let connect = fleet.wait_connected(limit).await?;
        let per_group = n.div_ceil(GROUPS);
        place(
            &fleet.hub,
            n,
            limit,
            json!({"clusterSets": ["global"],
                "decisionStrategy": {"groupStrategy": {"clustersPerDecisionGroup": per_group}}}),
        )
        .await?;
        let store = fleet.hub.store().blocking().clone();
        let groups = tokio::task::spawn_blocking(move || {
            workbus_hub::rollout::store_decisions::read_groups(&*store, NAMESPACE, "all")
        })
        .await
        .map_err(|e| BenchError::Setup(format!("decision read task: {e}")))?
        .map_err(|e| BenchError::Setup(format!("cannot read the decisions: {e}")))?
        .unwrap_or_default();
        let group_of: Arc<BTreeMap<String, usize>> = Arc::new(
            groups
                .iter()
                .enumerate()
                .flat_map(|(i, g)| g.clusters.iter().map(move |c| (c.clone(), i)))
                .collect(),
        );
        let seen = Arc::new(Mutex::new(Seen {
            groups: groups
                .iter()
                .map(|g| GroupTimes {
                    size: g.clusters.len(),
                    ..Default::default()
                })
                .collect(),
            lagged: 0,
        }));
        let mut changes = fleet.hub.watch();
        let started = Instant::now();
        let watcher = {
            let (seen, group_of) = (seen.clone(), group_of.clone());
            tokio::spawn(async move {
                loop {
                    let change = match changes.recv().await {
                        Ok(c) => c,
                        Err(RecvError::Lagged(k)) => {
                            seen.lock().unwrap_or_else(|p| p.into_inner()).lagged += k;
                            continue;
                        }
                        Err(RecvError::Closed) => return,
                    };
                    let at = started.elapsed();
                    if change.object.metadata.name != work_name(0) {
                        continue;
                    }
                    let Some(&g) = group_of.get(change.cluster()) else {
                        continue;
                    };
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    let times = &mut seen.groups[g];
                    match change.kind {
                        ChangeKind::Spec => {
                            times.first_spec.get_or_insert(at);
                        }
                        ChangeKind::Status => {
                            times.first_status.get_or_insert(at);
                            if succeeded(&change)
                                && times.succeeded.insert(change.cluster().to_string())
                                && times.succeeded.len() == times.size
                            {
                                times.done = Some(at);
                            }
                        }
                        ChangeKind::Deleted => {}
                    }
                }
            })
        };
        rest(
            &fleet.hub,
            &format!(
                "/api/v1/namespaces/{NAMESPACE}/manifestworkreplicasets/{}",
                work_name(0)
            ),
            replica_set(),
        )
        .await?;
        let done = tokio::time::timeout(limit, async {
            loop {
                {
                    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    if seen.groups.iter().all(|g| g.done.is_some()) {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .is_ok();
        let total = started.elapsed();
        watcher.abort();
        let agents = fleet_stats(&mut fleet.workers).await?;
        fleet.stop().await;
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        let gap = |next: fn(&GroupTimes) -> Option<Duration>| -> Vec<f64> {
            seen.groups
                .windows(2)
                .filter_map(|w| Some(ms(next(&w[1])?.checked_sub(w[0].done?)?)))
                .collect()
        };
        let overhead = gap(|g| g.first_spec);
        let to_first_status = gap(|g| g.first_status);
        let worst = overhead
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let complete = overhead.len() == seen.groups.len().saturating_sub(1);
        let scale = if n >= 10_000 {
            String::new()
        } else {
            format!(" (run at N={n}; the target is for N=10,000)")
        };
        let targets = vec![
            Target::on(
                format!("worst controller overhead between groups{scale}"),
                worst.filter(|_| complete && done).map(round),
                "ms",
            )
            .at_most(100.0),
        ];
        let mut notes = Vec::new();
        if seen.lagged > 0 {
            notes.push(format!(
                "the bench's work watch lagged by {} notifications: some boundaries may be missing or late",
                seen.lagged
            ));
        }
        let params = json!({"agents": n, "broker": kind.name(), "groups": seen.groups.len(),
            "rollout": "ProgressivePerGroup", "timeout_s": limit.as_secs()});
        let figures = json!({
            "connect_all_s": round(connect.as_secs_f64()),
            "all_succeeded": done,
            "rollout_s": round(total.as_secs_f64()),
            "group_sizes": seen.groups.iter().map(|g| g.size).collect::<Vec<_>>(),
            "boundaries_measured": overhead.len(),
            "controller_overhead": summary(overhead.clone()),
            "controller_overhead_each_ms": overhead.iter().map(|v| round(*v)).collect::<Vec<_>>(),
            "to_next_group_first_status": summary(to_first_status),
            "lagged_notifications": seen.lagged,
            "agents": agents,
        });
        Ok(Report::new(self.name(), params, figures)
            .with_targets(targets)
            .with_notes(notes))
    }
}
