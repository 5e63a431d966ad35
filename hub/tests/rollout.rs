//! The rollout controller end to end through the store, without a broker: in-memory
//! placement decisions, an injected clock, and work statuses ingested as the source
//! loop would (then announced on the work watchers). Covers `All`, `Progressive` with an
//! approval gate (through the running controller, awaiting its events), an injected
//! failure that aborts and rolls back, a hub restart mid-rollout that resumes
//! exactly where it was, and the running controller's incremental reads recovering
//! from a lagged work broadcast.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::{Notify, broadcast};
use workbus_hub::StoreSettings;
use workbus_hub::clock::{Clock, ManualClock};
use workbus_hub::metrics::Metrics;
use workbus_hub::rollout::controller::RolloutController;
use workbus_hub::rollout::decisions::{DecisionGroup, MemoryDecisions};
use workbus_hub::rollout::events::{RolloutEvent, RolloutEventKind, RolloutWatchers};
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::replicaset::ReplicaSetKey;
use workbus_hub::store::replicaset_writes::{ApplyReplicaSet, ApproveRollout};
use workbus_hub::store::writes::{CreateCluster, IngestStatus};
use workbus_hub::store::{
    AuditDirection, AuditEntry, IncomingStatus, StoreHandle, WorkKey, WorkRecord,
};
use workbus_hub::watch::{ChangeKind, Watchers, WorkChange};
use workbus_hub::work_view::manifest_work;
use workbus_schemas::envelope::status_resync_request;
use workbus_schemas::replicaset::names::{condition_type as ct, reason};
use workbus_schemas::replicaset::{ManifestWorkReplicaSetSpec, RolloutPhase};
use workbus_schemas::sequence_id::{DEFAULT_NODE, SequenceId};
use workbus_schemas::work::status::{condition_status as cs, condition_type as wt, find_condition};
use workbus_schemas::work::{Condition, ManifestWorkStatus, Time};

const WAIT: Duration = Duration::from_secs(10);

struct Env {
    store: StoreHandle,
    decisions: MemoryDecisions,
    hand: ManualClock,
    controller: RolloutController,
    watchers: Watchers,
    events: RolloutWatchers,
    step: Arc<AtomicU16>,
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn key() -> ReplicaSetKey {
    ReplicaSetKey {
        namespace: "apps".into(),
        name: "web".into(),
    }
}

fn env(dir: &std::path::Path, clusters: &[&str], at: DateTime<Utc>) -> Env {
    let store = workbus_hub::store::open(&StoreSettings::sqlite(dir)).unwrap();
    for c in clusters {
        if store.get_cluster(c).unwrap().is_none() {
            store
                .write(CreateCluster {
                    name: c.to_string(),
                    labels: BTreeMap::new(),
                    now: Utc::now(),
                })
                .unwrap();
        }
    }
    let store = StoreHandle::new(store, Arc::new(Metrics::default())).unwrap();
    let decisions = MemoryDecisions::default();
    let (clock, hand) = Clock::manual(at);
    let watchers = Watchers::default();
    let events = RolloutWatchers::default();
    let controller = RolloutController::new(
        store.clone(),
        Arc::new(decisions.clone()),
        clock,
        "src".into(),
        Arc::new(|now| Arc::new(move |w, c| change_event("src", w, c, now).map(Into::into))),
        Arc::new(Notify::new()),
        watchers.clone(),
        events.clone(),
    );
    Env {
        store,
        decisions,
        hand,
        controller,
        watchers,
        events,
        step: Arc::new(AtomicU16::new(0)),
    }
}

fn spec(
    strategy: serde_json::Value,
    extra: serde_json::Value,
    v: &str,
) -> ManifestWorkReplicaSetSpec {
    let mut s = json!({
        "placementRefs": [{"name": "fleet", "rolloutStrategy": strategy}],
        "manifestWorkTemplate": {"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": {"v": v}}
        ]}}
    });
    for (k, val) in extra.as_object().unwrap() {
        s[k] = val.clone();
    }
    serde_json::from_value(s).unwrap()
}

impl Env {
    async fn apply(&self, spec: ManifestWorkReplicaSetSpec) {
        self.store
            .write(ApplyReplicaSet {
                key: key(),
                labels: BTreeMap::new(),
                spec,
                create_only: false,
                now: Utc::now(),
            })
            .await
            .unwrap();
    }

    async fn reconcile(&self) {
        self.controller.reconcile(&key()).await.unwrap();
    }

    async fn work(&self, cluster: &str) -> Option<WorkRecord> {
        let k = WorkKey {
            cluster: cluster.into(),
            name: "web".into(),
        };
        self.store.run(move |s| s.get_work(&k)).await.unwrap()
    }

    async fn live_works(&self, clusters: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for c in clusters {
            if self.work(c).await.is_some_and(|w| w.deletion.is_none()) {
                out.push(c.to_string());
            }
        }
        out
    }

    /// The agent of `cluster` reports `conds` for the work's current generation, as the
    /// source loop ingests it, and the change is announced.
    async fn report(&self, cluster: &str, conds: &[(&str, &str)]) {
        let w = self.ingest(cluster, conds).await;
        self.watchers.notify(|| WorkChange {
            kind: ChangeKind::Status,
            object: manifest_work(&w),
        });
    }

    /// [`Env::report`] without the announcement.
    async fn ingest(&self, cluster: &str, conds: &[(&str, &str)]) -> WorkRecord {
        let work = self.work(cluster).await.expect("work exists");
        let n = self.step.fetch_add(1, Ordering::Relaxed);
        let now = Utc::now();
        let status = IncomingStatus {
            uid: work.uid.clone(),
            cluster: Some(cluster.into()),
            generation: work.generation,
            sequence_id: SequenceId::new(now.timestamp_millis(), DEFAULT_NODE, n)
                .unwrap()
                .to_string(),
            status_hash: None,
            status: ManifestWorkStatus {
                conditions: conds
                    .iter()
                    .map(|(t, s)| {
                        Condition::new(t, s, "r", "", Time::new(now))
                            .with_observed_generation(work.generation)
                    })
                    .collect(),
                ..Default::default()
            },
            deleted: false,
            received: now,
        };
        let audit = AuditEntry {
            at: now,
            direction: AuditDirection::Received,
            cluster: Some(cluster.into()),
            resource_id: Some(work.uid.clone()),
            event_type: "status".into(),
            event: status_resync_request("src", cluster, json!({"statusHashes": []}), now),
            actor: None,
        };
        let outcome = self
            .store
            .write(IngestStatus { status, audit })
            .await
            .unwrap();
        match outcome {
            workbus_hub::store::StatusOutcome::Accepted(w) => *w,
            _ => panic!("status not accepted: {outcome:?}"),
        }
    }

    async fn succeed(&self, cluster: &str) {
        self.report(
            cluster,
            &[(wt::APPLIED, cs::TRUE), (wt::AVAILABLE, cs::TRUE)],
        )
        .await;
    }

    async fn rs(&self) -> workbus_hub::store::replicaset::ReplicaSetRecord {
        self.store
            .run(|s| s.get_replica_set(&key()))
            .await
            .unwrap()
            .unwrap()
    }

    async fn phase(&self) -> RolloutPhase {
        self.rs().await.status.rollout.unwrap().phase
    }
}

/// Waits (bounded) for the first event matching `want`.
async fn until(
    rx: &mut broadcast::Receiver<RolloutEvent>,
    want: impl Fn(&RolloutEvent) -> bool,
) -> RolloutEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(e) if want(&e) => return e,
                Ok(_) => {}
                Err(e) => panic!("rollout events: {e}"),
            }
        }
    })
    .await
    .expect("the rollout event came in time")
}

fn cluster_to<'a>(cluster: &'a str, to: &'a str) -> impl Fn(&RolloutEvent) -> bool + 'a {
    move |e| {
        e.kind == RolloutEventKind::Cluster && e.cluster.as_deref() == Some(cluster) && e.to == to
    }
}

#[tokio::test]
async fn all_reaches_every_cluster_in_one_write_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let clusters = ["c1", "c2", "c3", "c4", "c5"];
    let env = env(dir.path(), &clusters, start());
    env.decisions
        .set("apps", "fleet", DecisionGroup::indexed(&[("", &clusters)]));
    env.apply(spec(json!({"type": "All"}), json!({}), "1"))
        .await;
    env.reconcile().await;
    assert_eq!(env.live_works(&clusters).await.len(), 5);
    let depth = env.store.run(|s| s.outbox_depth()).await.unwrap();
    assert_eq!(depth, 5, "every work's spec event is queued");
    for c in clusters {
        env.succeed(c).await;
    }
    env.reconcile().await;
    let rs = env.rs().await;
    assert_eq!(
        rs.status.rollout.as_ref().unwrap().phase,
        RolloutPhase::Complete
    );
    let rolled = find_condition(&rs.status.conditions, ct::PLACEMENT_ROLLED_OUT).unwrap();
    assert_eq!(
        (rolled.status.as_str(), rolled.reason.as_str()),
        ("True", reason::COMPLETE)
    );
    assert_eq!(
        rs.status.placement_summary[0].available_decision_groups,
        "1 (5 / 5 clusters applied)"
    );
}

#[tokio::test]
async fn progressive_with_an_approval_gate_through_the_running_controller() {
    let dir = tempfile::tempdir().unwrap();
    let clusters = ["a", "b", "c"];
    let env = env(dir.path(), &clusters, start());
    env.decisions.set(
        "apps",
        "fleet",
        DecisionGroup::indexed(&[("canary", &["a"]), ("wave", &["b", "c"])]),
    );
    let mut events = env.events.subscribe();
    let handle = env.controller.handle();
    let task = tokio::spawn(env.controller.clone().run(env.watchers.subscribe()));
    env.apply(spec(
        json!({"type": "ProgressivePerGroup"}),
        json!({"rollout": {"approval": {"afterGroups": [{"groupName": "canary"}]}}}),
        "1",
    ))
    .await;
    handle.kick(key());
    until(&mut events, cluster_to("a", "Progressing")).await;
    assert_eq!(env.live_works(&clusters).await, ["a"]);
    env.succeed("a").await;
    until(&mut events, |e| {
        e.kind == RolloutEventKind::Phase && e.to == "AwaitingApproval"
    })
    .await;
    assert_eq!(
        env.live_works(&clusters).await,
        ["a"],
        "paused after the canary"
    );
    let gate = env
        .store
        .write(ApproveRollout {
            key: key(),
            gate: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (gate.placement.as_str(), gate.group_name.as_str()),
        ("fleet", "canary")
    );
    handle.kick(key());
    until(&mut events, cluster_to("c", "Progressing")).await;
    assert_eq!(env.live_works(&clusters).await, ["a", "b", "c"]);
    env.succeed("b").await;
    env.succeed("c").await;
    until(&mut events, |e| {
        e.kind == RolloutEventKind::Phase && e.to == "Complete"
    })
    .await;
    task.abort();
}

/// The running controller reads only the works announced as changed (its own works
/// announced back not at all); a change it was never told about because its work
/// broadcast overflowed is found by the full read a lagged receiver triggers.
#[tokio::test]
async fn a_lagged_work_broadcast_makes_the_running_controller_read_everything_again() {
    let dir = tempfile::tempdir().unwrap();
    let owned: Vec<String> = (0..20).map(|i| format!("c{i:02}")).collect();
    let clusters: Vec<&str> = owned.iter().map(String::as_str).collect();
    let env = env(dir.path(), &clusters, start());
    env.decisions
        .set("apps", "fleet", DecisionGroup::indexed(&[("", &clusters)]));
    let mut events = env.events.subscribe();
    let handle = env.controller.handle();
    let task = tokio::spawn(env.controller.clone().run(env.watchers.subscribe()));
    env.apply(spec(json!({"type": "All"}), json!({}), "1"))
        .await;
    handle.kick(key());
    until(&mut events, cluster_to("c19", "Progressing")).await;
    for c in &clusters {
        env.succeed(c).await;
    }
    until(&mut events, |e| {
        e.kind == RolloutEventKind::Phase && e.to == "Complete"
    })
    .await;
    // c00 degrades, unannounced; then more changes than the broadcast holds (of a
    // work no replica set owns) pass while the controller's drain cannot run (this
    // test's runtime has one thread).
    let w = env
        .ingest(
            "c00",
            &[
                (wt::APPLIED, cs::TRUE),
                (wt::AVAILABLE, cs::TRUE),
                (wt::DEGRADED, cs::TRUE),
            ],
        )
        .await;
    let mut foreign = manifest_work(&w);
    foreign.metadata.labels.clear();
    for _ in 0..1100 {
        env.watchers.notify(|| WorkChange {
            kind: ChangeKind::Status,
            object: foreign.clone(),
        });
    }
    let failed = until(&mut events, cluster_to("c00", "Failed")).await;
    assert_eq!(failed.from.as_deref(), Some("Succeeded"));
    let rs = env.rs().await;
    assert_eq!(rs.status.summary.degraded, 1, "{:?}", rs.status.summary);
    task.abort();
}

#[tokio::test]
async fn an_injected_failure_aborts_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let clusters = ["a", "b", "c"];
    let env = env(dir.path(), &clusters, start());
    env.decisions
        .set("apps", "fleet", DecisionGroup::indexed(&[("", &clusters)]));
    let strategy = json!({"type": "Progressive", "progressive": {"maxConcurrency": 1}});
    let extra = json!({"rollout": {"rollbackOnFailure": true}});
    env.apply(spec(strategy.clone(), extra.clone(), "1")).await;
    for c in clusters {
        env.reconcile().await;
        env.succeed(c).await;
    }
    env.reconcile().await;
    assert_eq!(env.phase().await, RolloutPhase::Complete);
    let v1 = env.work("a").await.unwrap().spec;
    env.apply(spec(strategy, extra, "2")).await;
    env.reconcile().await;
    env.succeed("a").await;
    env.reconcile().await;
    assert_ne!(
        env.work("b").await.unwrap().spec,
        v1,
        "b is on the new template"
    );
    env.report(
        "b",
        &[
            (wt::APPLIED, cs::TRUE),
            (wt::AVAILABLE, cs::TRUE),
            (wt::DEGRADED, cs::TRUE),
        ],
    )
    .await;
    env.reconcile().await;
    let rs = env.rs().await;
    assert_eq!(
        rs.status.rollout.as_ref().unwrap().phase,
        RolloutPhase::RolledBack
    );
    assert!(rs.halt.as_ref().unwrap().rolled_back);
    for c in clusters {
        assert_eq!(
            env.work(c).await.unwrap().spec,
            v1,
            "{c} runs the previous template"
        );
    }
    assert_eq!(
        env.work("c").await.unwrap().generation,
        1,
        "c never got the bad template"
    );
    assert_eq!(
        env.work("a").await.unwrap().generation,
        3,
        "a: v1, v2, v1 again"
    );
}

#[tokio::test]
async fn a_restart_mid_rollout_resumes_exactly_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let clusters = ["a", "b", "c"];
    let strategy = json!({"type": "Progressive", "progressive": {"maxConcurrency": 1, "minSuccessTime": "1m"}});
    let before = {
        let env = env(dir.path(), &clusters, start());
        env.decisions
            .set("apps", "fleet", DecisionGroup::indexed(&[("", &clusters)]));
        env.apply(spec(strategy, json!({}), "1")).await;
        env.reconcile().await;
        env.succeed("a").await;
        env.hand.advance(chrono::Duration::seconds(30));
        env.reconcile().await;
        env.store
            .run(|s| s.replica_set_clusters(&key()))
            .await
            .unwrap()
    };
    assert_eq!(before.len(), 1);
    // a succeeded (was seen succeeded) at +30 s: it soaks until +90 s. A new hub on the
    // same data at +70 s must not start it over nor move on early.
    let env = env(
        dir.path(),
        &clusters,
        start() + chrono::Duration::seconds(70),
    );
    env.decisions
        .set("apps", "fleet", DecisionGroup::indexed(&[("", &clusters)]));
    env.reconcile().await;
    let after = env
        .store
        .run(|s| s.replica_set_clusters(&key()))
        .await
        .unwrap();
    assert_eq!(
        after, before,
        "states unchanged: the soak started before the restart"
    );
    assert_eq!(env.live_works(&clusters).await, ["a"]);
    env.hand.advance(chrono::Duration::seconds(19));
    env.reconcile().await;
    assert_eq!(env.live_works(&clusters).await, ["a"]);
    env.hand.advance(chrono::Duration::seconds(1));
    env.reconcile().await;
    assert_eq!(env.live_works(&clusters).await, ["a", "b"]);
}
