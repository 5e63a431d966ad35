//! The lease task of one replica: every [`LEASE_RENEW`] it heartbeats, renews its
//! partition leases and claims or releases partitions as the [`planner`] says, in one
//! transaction ([`LeaseTable::tick`]), then tells the [`Ownership`] what it may publish
//! and until when. A partition the planner gives up is first *drained* — no longer
//! published but still renewed — for one renewal interval, so the rows this replica
//! had in flight are acknowledged before another replica may take it; only then is the
//! lease released. On a clean stop every lease is released at once.
//!
//! Taking over an *expired* lease means its holder died (or was cut off): the statuses
//! the broker had handed it through the shared subscription may be lost (QoS 1 to a
//! clean session that vanished is not redelivered to another group member), so the
//! hub then asks every cluster for a status resync (`peer_lost`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::partition::PARTITIONS;
use super::planner::{self, LeaseView};
use super::{LEASE_RENEW, LEASE_TTL, Ownership};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::postgres_leases::{
    Heard, LeaseChanges, LeaseRow, LeaseTable, Listener, Notice, TickOutcome,
};

/// How long a starting replica waits for its notification listener.
pub const LISTEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the replica saw at its last successful renewal (the REST replicas view).
#[derive(Debug, Clone, Default)]
pub struct ReplicaView {
    /// This replica's id.
    pub replica_id: String,
    /// The rows read by the last renewal.
    pub last: TickOutcome,
    /// When the last successful renewal started, if one did.
    pub renewed: Option<Instant>,
}

/// Who a replica is and where its lease rows are.
pub struct ReplicaIdentity {
    /// The store's database URL (its connections named after the replica).
    pub url: String,
    /// `serve --replica-id`.
    pub replica_id: String,
    /// Where its REST API listens (shown to the others).
    pub rest_addr: String,
}

/// What the lease task tells the rest of the hub.
pub struct LeaseOutputs {
    /// What the outbox may publish.
    pub ownership: Arc<Ownership>,
    /// Woken when partitions are gained and when any replica queued events.
    pub outbox: Arc<Notify>,
    /// Told when a partition was taken over from an expired lease.
    pub peer_lost: Arc<Notify>,
    /// `workbus_hub_partitions_owned`.
    pub metrics: Arc<Metrics>,
    /// Other connections' work and cluster changes, for the watch relay.
    pub works: mpsc::Sender<Notice>,
}

/// A running lease task.
pub struct LeaseHandle {
    ownership: Arc<Ownership>,
    view: Arc<Mutex<ReplicaView>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl LeaseHandle {
    /// Starts the lease task of replica `me` on its database, and the listener that
    /// wakes the outbox on every outbox insert of any replica and hands every work
    /// change to the watch relay.
    ///
    /// Waits (at most [`LISTEN_WAIT`]) until the listener is in place, so that a
    /// watcher of a started replica hears every change committed after the start.
    pub async fn start(me: ReplicaIdentity, out: LeaseOutputs) -> Result<LeaseHandle, StoreError> {
        let table = LeaseTable::new(&me.url)?;
        let wake = out.outbox.clone();
        let works = out.works;
        let (listener, listening) = Listener::start(&me.url, move |heard| match heard {
            Heard::OutboxQueued => wake.notify_one(),
            Heard::Change(notice) => {
                if works.try_send(notice).is_err() {
                    tracing::debug!("change notices queue full; a watcher misses a change");
                }
            }
        })?;
        if tokio::time::timeout(LISTEN_WAIT, listening).await.is_err() {
            tracing::warn!("not yet listening for other replicas' changes; going on");
        }
        let view = Arc::new(Mutex::new(ReplicaView {
            replica_id: me.replica_id.clone(),
            ..ReplicaView::default()
        }));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(
            Renewer {
                replica_id: me.replica_id,
                rest_addr: me.rest_addr,
                table: Arc::new(Mutex::new(table)),
                ownership: out.ownership.clone(),
                outbox: out.outbox,
                peer_lost: out.peer_lost,
                metrics: out.metrics,
                view: view.clone(),
                draining: HashMap::new(),
                _listener: listener,
            }
            .run(stopped),
        );
        Ok(LeaseHandle {
            ownership: out.ownership,
            view,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// What the partitions are and who holds them, as of the last renewal.
    pub fn view(&self) -> ReplicaView {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The ownership the outbox reads.
    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.ownership
    }

    /// Stops publishing, releases every lease (bounded: a database that does not
    /// answer leaves them to expire) and ends the task.
    pub async fn shutdown(&self) {
        self.ownership.drop_all();
        let _ = self.stop.send(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else {
            return;
        };
        if tokio::time::timeout(std::time::Duration::from_secs(3), &mut task)
            .await
            .is_err()
        {
            tracing::warn!("lease release did not finish in time; the leases will expire");
            task.abort();
        }
    }
}

struct Renewer {
    replica_id: String,
    rest_addr: String,
    table: Arc<Mutex<LeaseTable>>,
    ownership: Arc<Ownership>,
    outbox: Arc<Notify>,
    /// Told when a partition was taken over from an expired lease: its holder died or
    /// was cut off, and statuses the broker had handed it may be lost.
    peer_lost: Arc<Notify>,
    metrics: Arc<Metrics>,
    view: Arc<Mutex<ReplicaView>>,
    /// Partitions being given up, since when (published no more, still renewed).
    draining: HashMap<u32, Instant>,
    /// Lives as long as the task: dropping it stops the listener thread.
    _listener: Listener,
}

impl Renewer {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(LEASE_RENEW);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut published = 0u64;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => break,
            }
            if *stopped.borrow() {
                break;
            }
            match self.tick().await {
                Ok(()) => {}
                Err(e) => {
                    // The own deadlines lapse by themselves: nothing to undo here.
                    tracing::warn!(error = %e, replica = %self.replica_id, "cannot renew partition leases");
                }
            }
            let now = self.ownership.publishable(Instant::now());
            self.metrics
                .partitions_owned
                .set(i64::from(now.count_ones() as u16));
            if now & !published != 0 {
                // Gained something (a claim, or the end of a quiet period): the outbox
                // reads the stored rows of those clusters from the start.
                self.outbox.notify_one();
            }
            published = now;
        }
        self.ownership.drop_all();
        self.metrics.partitions_owned.set(0);
        let table = self.table.clone();
        let id = self.replica_id.clone();
        match tokio::task::spawn_blocking(move || {
            table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .release_all(&id)
        })
        .await
        {
            Ok(Ok(())) => tracing::info!(replica = %self.replica_id, "released partition leases"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release partition leases; they will expire")
            }
            Err(e) => tracing::warn!(error = %e, "lease release failed"),
        }
    }

    async fn tick(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        let me = self.replica_id.clone();
        let addr = self.rest_addr.clone();
        let table = self.table.clone();
        // Drained for a full renewal interval: released now.
        let drained: HashSet<u32> = self
            .draining
            .iter()
            .filter(|(_, since)| started.duration_since(**since) >= LEASE_RENEW)
            .map(|(p, _)| *p)
            .collect();
        let planned = Arc::new(Mutex::new(planner::Plan::default()));
        let out = planned.clone();
        let released = drained.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
            table.tick(&me, &addr, LEASE_TTL, PARTITIONS, |replicas, leases| {
                let live: BTreeSet<String> =
                    replicas.iter().map(|r| r.replica_id.clone()).collect();
                let plan = planner::plan(&me, &live, &views(leases), PARTITIONS);
                let changes = changes(&plan, &released);
                *out.lock().unwrap_or_else(PoisonError::into_inner) = plan;
                changes
            })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("lease renewal: {e}")))??;
        let plan = std::mem::take(&mut *planned.lock().unwrap_or_else(PoisonError::into_inner));
        // Partitions to give up start draining (or keep draining); those no longer to
        // give up stop draining; released ones are gone.
        let release: HashSet<u32> = plan.release.iter().copied().collect();
        self.draining
            .retain(|p, _| release.contains(p) && !drained.contains(p));
        for p in &plan.release {
            if !drained.contains(p) {
                self.draining.entry(*p).or_insert(started);
            }
        }
        if plan.claim.iter().any(|(_, expired)| *expired) {
            tracing::warn!(
                replica = %self.replica_id,
                partitions = ?plan.claim,
                "took over partitions of a replica whose leases expired"
            );
            self.peer_lost.notify_one();
        }
        let taken_over: HashSet<u32> = plan
            .claim
            .iter()
            .filter(|(_, expired)| *expired)
            .map(|(p, _)| *p)
            .collect();
        let owned: Vec<(u32, i64, bool)> = outcome
            .leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some(self.replica_id.as_str()))
            .filter(|l| !self.draining.contains_key(&l.partition))
            .map(|l| (l.partition, l.epoch, taken_over.contains(&l.partition)))
            .collect();
        self.ownership.renewed(started, &owned);
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        view.last = outcome;
        view.renewed = Some(started);
        Ok(())
    }
}

/// The stored leases as the planner sees them.
fn views(leases: &[LeaseRow]) -> Vec<LeaseView> {
    leases
        .iter()
        .map(|l| LeaseView {
            partition: l.partition,
            owner: l.owner.clone(),
            expired: l.expires_in_secs.is_none_or(|s| s <= 0.0),
        })
        .collect()
}

/// The row changes of a plan: partitions to give up are renewed while they drain and
/// released once `drained`.
fn changes(plan: &planner::Plan, drained: &HashSet<u32>) -> LeaseChanges {
    let (release, draining): (Vec<u32>, Vec<u32>) =
        plan.release.iter().partition(|p| drained.contains(p));
    LeaseChanges {
        renew: plan.keep.iter().copied().chain(draining).collect(),
        claim: plan.claim.iter().map(|(p, _)| *p).collect(),
        release,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_given_up_are_renewed_until_drained() {
        let plan = planner::Plan {
            keep: vec![0],
            claim: vec![(5, true)],
            release: vec![1, 2],
        };
        let c = changes(&plan, &HashSet::from([2]));
        assert_eq!(c.renew, vec![0, 1]);
        assert_eq!(c.claim, vec![5]);
        assert_eq!(c.release, vec![2]);
    }

    #[test]
    fn a_lease_never_owned_or_run_out_is_expired() {
        let row = |e: Option<f64>| LeaseRow {
            partition: 0,
            owner: Some("a".into()),
            epoch: 1,
            expires_in_secs: e,
        };
        let v = views(&[row(None), row(Some(-0.1)), row(Some(0.0)), row(Some(2.0))]);
        let expired: Vec<bool> = v.iter().map(|l| l.expired).collect();
        assert_eq!(expired, vec![true, true, true, false]);
    }
}
