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
//! events of one rollout cost a handful of reconciles, not 10,000. Work changes are
//! drained by a task of their own (so the bounded broadcast rarely lags) into, per
//! replica set, the clusters whose works changed; the loop keeps each replica set's
//! states and works in a [`WorkingSet`] and a reconcile reads only those works again.
//! Everything is read again on a lagged broadcast, a stale write, a new generation, and
//! every [`RESYNC`]. Reconciles that work changes alone trigger are paced: after one
//! that took *d*, the next waits *d* (at most [`PACE_CAP`]), so a stream of statuses
//! is taken in batches with the controller busy at most half the time. Memory is bounded by the replica sets and their works (dirty
//! sets, recheck times, working sets).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast};
use workbus_schemas::replicaset::names::REPLICA_SET_LABEL;

use super::decisions::{DecisionChange, Decisions};
use super::events::RolloutWatchers;
use super::reconcile::{Inputs, reconcile};
use super::working_set::{Pending, WorkingSet};
use crate::clock::Clock;
use crate::store::replicaset::ReplicaSetKey;
use crate::store::replicaset_writes::RecordRollout;
use crate::store::{
    SharedSpecEventBuilder, StoreError, StoreHandle, WorkFilter, WorkKey, WorkRecord,
};
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

/// What waits for a reconcile; shared by the controller, its handles and its work
/// change drain.
#[derive(Default)]
struct Dirty {
    inner: Mutex<Marks>,
    wake: Notify,
}

/// The marks themselves.
#[derive(Default)]
struct Marks {
    /// Every replica set.
    all: bool,
    /// Work changes were missed: every working set must be read again.
    resync: bool,
    /// Replica sets to reconcile.
    keys: BTreeSet<ReplicaSetKey>,
    /// Replica sets whose works changed, with the changes.
    works: BTreeMap<ReplicaSetKey, Pending>,
}

impl Dirty {
    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark(&self, key: ReplicaSetKey) {
        self.marks().keys.insert(key);
        self.wake.notify_one();
    }

    fn mark_all(&self) {
        self.marks().all = true;
        self.wake.notify_one();
    }

    /// A work change: the replica set owning the work (if any) gets it.
    fn note(&self, change: &WorkChange) {
        let owner = change.object.metadata.labels.get(REPLICA_SET_LABEL);
        let Some((namespace, name)) = owner.and_then(|o| o.split_once('.')) else {
            return;
        };
        let key = ReplicaSetKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.marks().works.entry(key).or_default().note(change);
        self.wake.notify_one();
    }

    /// Work changes were lost: read everything again.
    fn resync(&self) {
        let mut marks = self.marks();
        marks.all = true;
        marks.resync = true;
        drop(marks);
        self.wake.notify_one();
    }

    /// Takes every mark, except the work changes of replica sets neither marked nor
    /// `ready`: those stay (untouched, however many) for a later round, whose keys are
    /// answered too.
    fn take(&self, ready: impl Fn(&ReplicaSetKey) -> bool) -> (Marks, Vec<ReplicaSetKey>) {
        let mut marks = self.marks();
        let all = marks.all;
        let works = std::mem::take(&mut marks.works);
        let (now, later): (BTreeMap<_, _>, BTreeMap<_, _>) = works
            .into_iter()
            .partition(|(k, _)| all || marks.keys.contains(k) || ready(k));
        let left = later.keys().cloned().collect();
        marks.works = later;
        let taken = Marks {
            all,
            resync: std::mem::take(&mut marks.resync),
            keys: std::mem::take(&mut marks.keys),
            works: now,
        };
        marks.all = false;
        (taken, left)
    }
}

/// Whether work changes alone may trigger a replica set's reconcile at `now`: not
/// before the pace its last reconcile set ([`pace_after`]).
fn may_reconcile(now: Instant, paced_until: Option<Instant>) -> bool {
    paced_until.is_none_or(|t| t <= now)
}

/// When the next reconcile triggered by work changes alone may start, after one that
/// ended at `end` and took `took`: as long again (capped at [`PACE_CAP`]), so a stream
/// of statuses gets at most half of the controller's time and arrives in batches, not
/// one reconcile per status.
fn pace_after(end: Instant, took: std::time::Duration) -> Instant {
    end + took.min(PACE_CAP)
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

/// Work notifications sent between two yields (a quarter of the work broadcast's
/// capacity).
const NOTIFY_BATCH: usize = 256;

/// The longest pause between reconciles of a replica set triggered by work changes.
pub const PACE_CAP: std::time::Duration = std::time::Duration::from_millis(500);

/// The longest a [`WorkingSet`] is trusted: then everything is read again. Bounds what
/// a change nobody announced (another hub on a shared database) can hide.
pub const RESYNC: std::time::Duration = std::time::Duration::from_secs(30);

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

    /// Reconciles one replica set now from a full read; answers when it must be looked
    /// at again.
    pub async fn reconcile(
        &self,
        key: &ReplicaSetKey,
    ) -> Result<Option<DateTime<Utc>>, RolloutError> {
        self.reconcile_with(key, &mut None, Pending::default())
            .await
    }

    /// Reconciles one replica set from `held` (its working set, if any, brought up to
    /// date with the `pending` work changes) or a full read; leaves the working set as
    /// of the outcome in `held` (`None` when it cannot be trusted).
    async fn reconcile_with(
        &self,
        key: &ReplicaSetKey,
        held: &mut Option<WorkingSet>,
        pending: Pending,
    ) -> Result<Option<DateTime<Utc>>, RolloutError> {
        let mut pending = Some(pending);
        for _ in 0..ATTEMPTS {
            let now = self.clock.now();
            let k = key.clone();
            let previous = held.take();
            let changes = pending.take().unwrap_or_default();
            let timer = Instant::now();
            let read = self
                .store
                .run(move |s| {
                    let Some(rs) = s.get_replica_set(&k)? else {
                        return Ok(None);
                    };
                    let started = Instant::now();
                    let mut reads = None;
                    let set = match previous {
                        Some(mut set) if set.is_current(&rs, started, RESYNC) => {
                            let stale = set.needs_read(&changes);
                            reads = Some(stale.len());
                            for cluster in stale {
                                let work = s.get_work(&WorkKey {
                                    cluster: cluster.clone(),
                                    name: k.name.clone(),
                                })?;
                                set.put_work(&k, &cluster, work);
                            }
                            set
                        }
                        _ => {
                            let states = s.replica_set_clusters(&k)?;
                            let owner = workbus_schemas::replicaset::names::owner_label_value(
                                &k.namespace,
                                &k.name,
                            );
                            let works = s.list_works(&WorkFilter {
                                labels: vec![(REPLICA_SET_LABEL.to_string(), owner)],
                                limit: usize::MAX,
                                ..Default::default()
                            })?;
                            WorkingSet::load(&rs, states, works, started)
                        }
                    };
                    let labels: BTreeMap<String, BTreeMap<String, String>> =
                        if rs.spec.overrides.is_empty() {
                            BTreeMap::new()
                        } else {
                            s.list_clusters()?
                                .into_iter()
                                .map(|c| (c.name, c.labels))
                                .collect()
                        };
                    Ok(Some((rs, set, labels, reads)))
                })
                .await?;
            let Some((rs, mut set, labels, reads)) = read else {
                return Ok(None);
            };
            let read_time = timer.elapsed();
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
            let states = set.states();
            let out = reconcile(Inputs {
                replica_set: &rs,
                decisions: &decisions,
                states: &states,
                works: set.works(),
                cluster_labels: &labels,
                now,
            });
            drop(states);
            let decide_time = timer.elapsed() - read_time;
            // Timing counters (the profile of issue 14's fan-out): `works_read` is
            // `None` for a full read.
            tracing::debug!(namespace = %key.namespace, name = %key.name,
                works = set.works().len(), works_read = ?reads,
                read_ms = read_time.as_secs_f64() * 1e3,
                decide_ms = decide_time.as_secs_f64() * 1e3,
                applies = out.apply.len(), records = out.record.len(),
                "rollout reconcile");
            if let Some(e) = &out.error {
                tracing::warn!(namespace = %key.namespace, name = %key.name, error = %e, "replica set cannot be rolled out as written");
            }
            if out.is_idle(&rs.status) {
                set.settle();
                *held = Some(set);
                return Ok(out.recheck);
            }
            let (forget, record) = (out.forget.clone(), out.record.clone());
            let audits: Vec<_> = out
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
            let write_timer = Instant::now();
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
                    audits,
                })
                .await?;
            tracing::debug!(namespace = %key.namespace, name = %key.name,
                write_ms = write_timer.elapsed().as_secs_f64() * 1e3,
                applied = recorded.applied.len(), stale = recorded.stale,
                "rollout recorded");
            if recorded.stale {
                continue;
            }
            for (cluster, reason) in &recorded.skipped {
                tracing::warn!(namespace = %key.namespace, name = %key.name, %cluster, %reason, "work of a replica set not written");
            }
            if !out.deletion_complete {
                let skipped: BTreeSet<String> =
                    recorded.skipped.iter().map(|(c, _)| c.clone()).collect();
                let written: Vec<WorkRecord> = recorded
                    .deleted
                    .iter()
                    .chain(&recorded.applied)
                    .cloned()
                    .collect();
                set.recorded(key, &forget, &record, &skipped, &written);
                *held = Some(set);
            }
            if !recorded.applied.is_empty() || !recorded.deleted.is_empty() {
                self.outbox.notify_one();
                self.store.deletion_requests().notify_one();
            }
            for (i, w) in recorded.applied.iter().chain(&recorded.deleted).enumerate() {
                self.works.notify(|| WorkChange {
                    kind: ChangeKind::Spec,
                    object: manifest_work(w),
                });
                // A fleet's worth of notifications at once would overrun the bounded
                // broadcast: let its receivers (this controller's drain among them)
                // keep up.
                if i % NOTIFY_BATCH == NOTIFY_BATCH - 1 {
                    tokio::task::yield_now().await;
                }
            }
            tracing::debug!(namespace = %key.namespace, name = %key.name,
                audits = out.events.len(),
                total_ms = timer.elapsed().as_secs_f64() * 1e3,
                "rollout reconcile done");
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
    pub async fn run(self, works: broadcast::Receiver<WorkChange>) {
        let mut decisions = self.decisions.subscribe();
        let mut rechecks: BTreeMap<ReplicaSetKey, DateTime<Utc>> = BTreeMap::new();
        // A replica set's working set; dropped when it is gone (its reconcile leaves
        // none) or cannot be trusted.
        let mut sets: BTreeMap<ReplicaSetKey, WorkingSet> = BTreeMap::new();
        // When work changes alone may next reconcile a replica set.
        let mut paced: BTreeMap<ReplicaSetKey, Instant> = BTreeMap::new();
        // Work changes are drained apart from the reconciles, which would otherwise
        // leave the bounded broadcast unread for as long as they take.
        let _drain = AbortOnDrop(tokio::spawn(drain_work_changes(works, self.dirty.clone())));
        // A closed input (its sender gone) is no longer polled rather than spun on.
        let mut decisions_open = true;
        self.dirty.mark_all();
        loop {
            // Work changes alone wait for their replica set's pace (left marked).
            let now = self.clock.now();
            let due: BTreeSet<ReplicaSetKey> = rechecks
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let started = Instant::now();
            let (mut marks, left) = self
                .dirty
                .take(|k| due.contains(k) || may_reconcile(started, paced.get(k).copied()));
            let deferred: Option<Instant> = left.iter().filter_map(|k| paced.get(k)).min().copied();
            if marks.resync {
                sets.clear();
            }
            let mut keys = std::mem::take(&mut marks.keys);
            if marks.all {
                match self.store.run(|s| s.list_replica_sets(None)).await {
                    Ok(list) => keys.extend(list.into_iter().map(|r| r.key)),
                    Err(e) => tracing::error!(error = %e, "cannot list replica sets"),
                }
            }
            keys.extend(due);
            for (key, pending) in std::mem::take(&mut marks.works) {
                if !keys.contains(&key)
                    && sets.get(&key).is_some_and(|set| set.unchanged_by(&pending))
                {
                    // Nothing new since a reconcile that changed nothing (e.g. the
                    // controller's own works announced back).
                    continue;
                }
                keys.insert(key.clone());
                marks.works.insert(key, pending);
            }
            for key in keys {
                rechecks.remove(&key);
                let mut held = sets.remove(&key);
                let pending = marks.works.remove(&key).unwrap_or_default();
                let began = Instant::now();
                let result = self.reconcile_with(&key, &mut held, pending).await;
                paced.insert(key.clone(), pace_after(Instant::now(), began.elapsed()));
                if let Some(set) = held {
                    sets.insert(key.clone(), set);
                }
                match result {
                    Ok(Some(at)) => {
                        rechecks.insert(key, at);
                    }
                    Ok(None) => {
                        paced.remove(&key);
                    }
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
            let wait = [
                wait,
                deferred.map(|t| t.saturating_duration_since(Instant::now())),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.dirty.wake.notified() => {}
                _ = sleep => {}
                change = decisions.recv(), if decisions_open => {
                    decisions_open = !matches!(change, Err(broadcast::error::RecvError::Closed));
                    self.on_decision(change).await;
                }
            }
            // Batch: everything already queued joins this round.
            while let Ok(c) = decisions.try_recv() {
                self.on_decision(Ok(c)).await;
            }
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

/// Aborts a task when dropped (the controller's drain goes with the controller).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Notes every work change for the replica set owning the work, until the broadcast
/// closes; a lagged receiver asks for everything to be read again.
async fn drain_work_changes(mut works: broadcast::Receiver<WorkChange>, dirty: Arc<Dirty>) {
    loop {
        match works.recv().await {
            Ok(change) => dirty.note(&change),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(
                    missed,
                    "rollout controller lagged behind work changes; reading everything again"
                );
                dirty.resync();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn work_changes_wait_as_long_as_the_last_reconcile_took_at_most_the_cap() {
        let end = Instant::now();
        let next = pace_after(end, Duration::from_millis(40));
        assert_eq!(next, end + Duration::from_millis(40));
        assert!(!may_reconcile(end + Duration::from_millis(39), Some(next)));
        assert!(may_reconcile(end + Duration::from_millis(40), Some(next)));
        assert!(may_reconcile(end, None), "never reconciled: at once");
        assert_eq!(pace_after(end, Duration::from_secs(9)), end + PACE_CAP);
    }
}
