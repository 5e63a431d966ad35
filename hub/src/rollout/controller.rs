//! The rollout controller: the task [`Hub::start`](crate::Hub::start) runs that keeps
//! every ManifestWorkReplicaSet reconciled. Inputs: replica set changes (the API kicks
//! it), decision changes ([`Decisions::subscribe`]), work changes (the works a replica
//! set owns: `watch::Watchers`), and a recheck timer read from the injectable
//! [`Clock`]. Each reconcile reads the replica set, its states, works and decisions,
//! runs the pure [`reconcile`](super::reconcile::reconcile) and records the outcome in
//! one group-committed transaction ([`RecordRollout`]); transitions go out on
//! [`RolloutWatchers`].
//!
//! Bursts are batched: every input only marks replica sets dirty, and the loop drains
//! all pending inputs before reconciling each dirty replica set once — 10,000 status
//! events of one rollout cost a handful of reconciles, not 10,000. Memory is bounded
//! by the number of replica sets (dirty set, recheck times).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast};
use workbus_schemas::replicaset::names::REPLICA_SET_LABEL;

use super::decisions::{DecisionChange, Decisions};
use super::events::RolloutWatchers;
use super::reconcile::{Inputs, reconcile};
use crate::clock::Clock;
use crate::store::replicaset::ReplicaSetKey;
use crate::store::replicaset_writes::RecordRollout;
use crate::store::{SharedSpecEventBuilder, StoreError, StoreHandle, WorkFilter, WorkRecord};
use crate::watch::{ChangeKind, Watchers, WorkChange};
use crate::work_view::manifest_work;

/// Builds the spec event builder for changes made at a time.
pub type BuilderAt = Arc<dyn Fn(DateTime<Utc>) -> SharedSpecEventBuilder + Send + Sync>;

/// How the hub runs rollouts ([`crate::HubConfig::rollout`]).
#[derive(Clone, Default)]
pub struct RolloutSettings {
    /// Where placement decisions come from (`None`: the hub's own Placements, through
    /// [`super::store_decisions::StoreDecisions`]; tests inject an in-memory set).
    pub decisions: Option<Arc<dyn Decisions>>,
    /// The controller's clock (soak times, deadlines).
    pub clock: Clock,
}

impl std::fmt::Debug for RolloutSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutSettings")
            .field("decisions", &self.decisions.is_some())
            .field("clock", &self.clock)
            .finish()
    }
}

impl RolloutSettings {
    /// The decisions to use: the configured ones, or those of `store`'s Placements as
    /// `placements` announces them. Must be called within a Tokio runtime.
    pub fn decisions(
        &self,
        store: Arc<dyn crate::store::Store>,
        placements: &crate::watch::PlacementWatchers,
    ) -> Arc<dyn Decisions> {
        self.decisions.clone().unwrap_or_else(|| {
            Arc::new(super::store_decisions::StoreDecisions::new(
                store, placements,
            ))
        })
    }
}

/// Which replica sets wait for a reconcile; shared by the controller and its handles.
#[derive(Default)]
struct Dirty {
    keys: Mutex<(bool, BTreeSet<ReplicaSetKey>)>,
    wake: Notify,
}

impl Dirty {
    fn mark(&self, key: ReplicaSetKey) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .insert(key);
        self.wake.notify_one();
    }

    fn mark_all(&self) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).0 = true;
        self.wake.notify_one();
    }

    fn take(&self) -> (bool, BTreeSet<ReplicaSetKey>) {
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Asks the controller to reconcile (the API after a change, tests after moving the
/// clock).
#[derive(Clone)]
pub struct RolloutHandle {
    dirty: Arc<Dirty>,
}

impl RolloutHandle {
    /// Reconcile this replica set soon.
    pub fn kick(&self, key: ReplicaSetKey) {
        self.dirty.mark(key);
    }

    /// Reconcile every replica set soon (e.g. after the clock moved).
    pub fn kick_all(&self) {
        self.dirty.mark_all();
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The replica set kept changing while being reconciled.
    #[error("replica set {0:?} changed during every reconcile attempt")]
    Busy(String),
}

/// The controller.
#[derive(Clone)]
pub struct RolloutController {
    /// The store.
    pub store: StoreHandle,
    /// Placement decisions.
    pub decisions: Arc<dyn Decisions>,
    /// The clock.
    pub clock: Clock,
    /// Our source id (work uids).
    pub source_id: String,
    /// Spec event builders.
    pub build: BuilderAt,
    /// Wakes the outbox publisher.
    pub outbox: Arc<Notify>,
    /// Work change fan-out (the works the controller writes are announced there, and
    /// their status changes come back from there).
    pub works: Watchers,
    /// Rollout transitions.
    pub events: RolloutWatchers,
    dirty: Arc<Dirty>,
}

/// How often a reconcile is retried when the replica set changed under it.
const ATTEMPTS: usize = 3;

impl RolloutController {
    /// A controller (not running yet: see [`RolloutController::run`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: StoreHandle,
        decisions: Arc<dyn Decisions>,
        clock: Clock,
        source_id: String,
        build: BuilderAt,
        outbox: Arc<Notify>,
        works: Watchers,
        events: RolloutWatchers,
    ) -> Self {
        RolloutController {
            store,
            decisions,
            clock,
            source_id,
            build,
            outbox,
            works,
            events,
            dirty: Arc::new(Dirty::default()),
        }
    }

    /// A handle to kick the controller.
    pub fn handle(&self) -> RolloutHandle {
        RolloutHandle {
            dirty: self.dirty.clone(),
        }
    }

    /// Reconciles one replica set now; answers when it must be looked at again.
    pub async fn reconcile(
        &self,
        key: &ReplicaSetKey,
    ) -> Result<Option<DateTime<Utc>>, RolloutError> {
        for _ in 0..ATTEMPTS {
            let now = self.clock.now();
            let k = key.clone();
            let read = self
                .store
                .run(move |s| {
                    let Some(rs) = s.get_replica_set(&k)? else {
                        return Ok(None);
                    };
                    let states = s.replica_set_clusters(&k)?;
                    let owner = workbus_schemas::replicaset::names::owner_label_value(
                        &k.namespace,
                        &k.name,
                    );
                    let works: BTreeMap<String, WorkRecord> = s
                        .list_works(&WorkFilter {
                            labels: vec![(REPLICA_SET_LABEL.to_string(), owner)],
                            limit: usize::MAX,
                            ..Default::default()
                        })?
                        .into_iter()
                        .filter(|w| w.key.name == k.name)
                        .map(|w| (w.key.cluster.clone(), w))
                        .collect();
                    let labels: BTreeMap<String, BTreeMap<String, String>> =
                        if rs.spec.overrides.is_empty() {
                            BTreeMap::new()
                        } else {
                            s.list_clusters()?
                                .into_iter()
                                .map(|c| (c.name, c.labels))
                                .collect()
                        };
                    Ok(Some((rs, states, works, labels)))
                })
                .await?;
            let Some((rs, states, works, labels)) = read else {
                return Ok(None);
            };
            let decisions: BTreeMap<String, _> = rs
                .spec
                .placement_refs
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        self.decisions.groups(&key.namespace, &r.name),
                    )
                })
                .collect();
            let out = reconcile(Inputs {
                replica_set: &rs,
                decisions: &decisions,
                states: &states,
                works: &works,
                cluster_labels: &labels,
                now,
            });
            if let Some(e) = &out.error {
                tracing::warn!(namespace = %key.namespace, name = %key.name, error = %e, "replica set cannot be rolled out as written");
            }
            let idle = out.apply.is_empty()
                && out.delete.is_empty()
                && out.record.is_empty()
                && out.forget.is_empty()
                && out.halt.is_none()
                && !out.deletion_complete
                && out.status == rs.status;
            if idle {
                return Ok(out.recheck);
            }
            let recorded = self
                .store
                .write(RecordRollout {
                    key: key.clone(),
                    generation: rs.generation,
                    apply: out.apply,
                    delete: out.delete,
                    record: out.record,
                    forget: out.forget,
                    halt: out.halt,
                    status: out.status,
                    deletion_complete: out.deletion_complete,
                    source_id: self.source_id.clone(),
                    now,
                    build: (self.build)(now),
                })
                .await?;
            if recorded.stale {
                continue;
            }
            for (cluster, reason) in &recorded.skipped {
                tracing::warn!(namespace = %key.namespace, name = %key.name, %cluster, %reason, "work of a replica set not written");
            }
            if !recorded.applied.is_empty() || !recorded.deleted.is_empty() {
                self.outbox.notify_one();
                self.store.deletion_requests().notify_one();
            }
            for w in recorded.applied.iter().chain(&recorded.deleted) {
                self.works.notify(|| WorkChange {
                    kind: ChangeKind::Spec,
                    object: manifest_work(w),
                });
            }
            let records: Vec<_> = out
                .events
                .iter()
                .map(|e| {
                    crate::audit::api_record::internal_entry(
                        &self.source_id,
                        "rollout",
                        e.cluster.as_deref(),
                        serde_json::to_value(e).unwrap_or_default(),
                    )
                })
                .collect();
            if !records.is_empty()
                && let Err(e) = self
                    .store
                    .write(crate::store::writes::AppendAudits(records))
                    .await
            {
                tracing::error!(error = %e, "cannot audit rollout transitions");
            }
            self.events.notify(out.events);
            return Ok(out.recheck);
        }
        Err(RolloutError::Busy(format!(
            "{}/{}",
            key.namespace, key.name
        )))
    }

    /// Runs until the task is aborted: reconciles every replica set at start, then
    /// whatever its inputs mark dirty.
    pub async fn run(self, mut works: broadcast::Receiver<WorkChange>) {
        let mut decisions = self.decisions.subscribe();
        let mut rechecks: BTreeMap<ReplicaSetKey, DateTime<Utc>> = BTreeMap::new();
        // A closed input (its sender gone) is no longer polled rather than spun on.
        let (mut works_open, mut decisions_open) = (true, true);
        self.dirty.mark_all();
        loop {
            let (all, mut keys) = self.dirty.take();
            if all {
                match self.store.run(|s| s.list_replica_sets(None)).await {
                    Ok(list) => keys.extend(list.into_iter().map(|r| r.key)),
                    Err(e) => tracing::error!(error = %e, "cannot list replica sets"),
                }
            }
            let now = self.clock.now();
            let due: Vec<ReplicaSetKey> = rechecks
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.extend(due);
            for key in keys {
                rechecks.remove(&key);
                match self.reconcile(&key).await {
                    Ok(Some(at)) => {
                        rechecks.insert(key, at);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(namespace = %key.namespace, name = %key.name, error = %e, "replica set reconcile failed");
                        // Retried on the next input or after a short wait.
                        rechecks.insert(key, self.clock.now() + chrono::Duration::seconds(5));
                    }
                }
            }
            let wait = rechecks
                .values()
                .min()
                .map(|at| (*at - self.clock.now()).to_std().unwrap_or_default());
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.dirty.wake.notified() => {}
                _ = sleep => {}
                change = works.recv(), if works_open => {
                    works_open = !matches!(change, Err(broadcast::error::RecvError::Closed));
                    self.on_work(change);
                }
                change = decisions.recv(), if decisions_open => {
                    decisions_open = !matches!(change, Err(broadcast::error::RecvError::Closed));
                    self.on_decision(change).await;
                }
            }
            // Batch: everything already queued joins this round.
            loop {
                match works.try_recv() {
                    Ok(c) => self.on_work(Ok(c)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        self.on_work(Err(broadcast::error::RecvError::Lagged(n)))
                    }
                    Err(_) => break,
                }
            }
            while let Ok(c) = decisions.try_recv() {
                self.on_decision(Ok(c)).await;
            }
        }
    }

    fn on_work(&self, change: Result<WorkChange, broadcast::error::RecvError>) {
        match change {
            Ok(change) => {
                let owner = change.object.metadata.labels.get(REPLICA_SET_LABEL);
                if let Some((namespace, name)) = owner.and_then(|o| o.split_once('.')) {
                    self.dirty.mark(ReplicaSetKey {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    });
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => self.dirty.mark_all(),
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    async fn on_decision(&self, change: Result<DecisionChange, broadcast::error::RecvError>) {
        match change {
            Ok(change) => {
                let ns = change.namespace.clone();
                match self
                    .store
                    .run(move |s| s.list_replica_sets(Some(&ns)))
                    .await
                {
                    Ok(list) => {
                        for rs in list {
                            if rs
                                .spec
                                .placement_refs
                                .iter()
                                .any(|r| r.name == change.placement)
                            {
                                self.dirty.mark(rs.key);
                            }
                        }
                    }
                    Err(_) => self.dirty.mark_all(),
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => self.dirty.mark_all(),
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }
}
