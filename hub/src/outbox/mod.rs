//! The outbox publisher: drains queued events to the broker in queue order per
//! cluster, forgets each one only after the broker acknowledged it, and never lets one
//! event hold up the other clusters.
//!
//! Every accepted change commits its spec event into the `outbox` table in the same
//! transaction as the change (see `store`), so the only way an event is lost is the
//! database being lost. This task publishes rows in order, waits for each PUBACK, and
//! only then deletes the row and writes its audit row (one transaction). A hub killed
//! in between publishes the row again on restart (receivers are idempotent by
//! generation, reference §10 item 17). It is woken by [`Notify`] on every commit, with
//! a slow poll as a safety net.
//!
//! Publishing is pipelined: up to `WINDOW` events are in flight, handed to the
//! transport in row order (so the wire keeps per-cluster order: a delete never
//! overtakes the create before it) and acknowledged in row order. Acknowledged rows
//! are completed `COMPLETE_BATCH` at a time through the store's group commit.
//!
//! # Ordering is per cluster, and failures are per cluster
//!
//! Events of one cluster go out in row order; events of different clusters have no
//! order between them (each agent sees only its own topic). So a failure holds back
//! only its own cluster:
//!
//! - **Permanent** — the event can never be published as it is ([`Unpublishable`]: the
//!   stored JSON does not decode, no topic can be made for it, it does not encode, or it
//!   breaks an MQTT limit — a string over 65,535 bytes, a forbidden character, a packet
//!   over the maximum packet size). A row holds the MQTT message made when its event
//!   was queued ([`WireFormat::outgoing`]); a row queued under another wire format, or
//!   without one, is made again from its event ([`WireFormat::message`]). Either way it
//!   is checked against the limits before it is handed to the transport, so such a
//!   message never reaches the MQTT client (which would write a corrupt packet or drop
//!   the connection for everyone).
//!   The row is **parked**: kept in the store with the reason, out of the pending
//!   queue, logged once at error level and counted (`workbus_hub_outbox_parked_total`;
//!   the gauge `workbus_hub_outbox_parked` says how many are parked now, and
//!   `workbus_hub_outbox_depth` no longer counts them). `GET /api/v1/outbox/parked`
//!   lists them. The API refuses requests whose events would be unpublishable, so
//!   parked rows come from older versions, changed limits, or a bug.
//! - **Transient** — the acknowledgement did not come (timeout, connection lost) or the
//!   broker refused the message (an MQTT 5 reason code on its PUBACK). The
//!   row's cluster is **held**: its later rows are not sent (rows of it already in
//!   flight are not completed, and go out again after it), and the cluster is retried
//!   from that row after a per-cluster backoff (200 ms doubling to 10 s). Every other
//!   cluster goes on. The pass that saw the failure stops sending and waits for the
//!   rest of its in-flight acknowledgements only `ACK_GRACE` more, so a dead connection
//!   costs one acknowledgement timeout, not one per row. A row the broker *refuses*
//!   `POISON_STRIKES` times while other events were acknowledged in between (so the
//!   connection works and it is this event the broker will not take) is parked too.
//!   Timeouts and lost connections never park a row: they say nothing about the event
//!   (a frozen or restarting broker looks the same), and parking on a flapping link
//!   would lose an acknowledged work's event.
//!
//! **Later events of a cluster with a parked row still go out**, including later
//! generations of the very work whose event was parked. Waiting would gain nothing —
//! the parked event can never be delivered — and would turn one bad work into a dead
//! cluster. Skipping it is what the protocol already tolerates: an agent that was
//! offline while generation *n* was superseded never sees *n* either; it applies the
//! newest generation it gets and ignores older ones (§7.2), and deletion is idempotent
//! on the resource id. The cost is visible, not silent: that work's status stays at
//! its last delivered generation (the hub accepts statuses only for the current one),
//! and the parked row is listed and counted.
//!
//! **Supersession** bounds parked rows: when a newer event with the same key (same
//! cluster and resource id; for events about no work, same cluster and event type) is
//! published or parked, older parked rows with that key are deleted — a newer event
//! makes them moot. So an operator clears a parked row by replacing the work (`PUT`)
//! with one that fits, or deleting it when its delete event fits, and at most one row
//! per work stays parked. At every start the parked rows are checked again under the
//! current configuration (a larger packet limit, the structured encoding): those that
//! now fit return to the queue.

//!
//! # Several hubs
//!
//! With several hubs on one PostgreSQL store each publishes only the rows of clusters
//! whose partition it leases (`replicas::Ownership`, checked before every row is handed
//! to the transport; rows of other clusters are skipped, not parked or completed).
//! When it gains partitions it reads the outbox again from the start, so it begins
//! with the oldest row of each new cluster that the previous owner had not completed:
//! per-cluster order survives a handover (see ARCHITECTURE.md, "Several hubs").

pub mod progress;
pub mod wire;

pub use wire::{Unpublishable, WireFormat, WorkEvents};

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::time::Instant;
use workbus_schemas::mqtt::MqttMessage;
use workbus_transport::{PublishError, Publisher};

use crate::metrics::Metrics;
use crate::replicas::Ownership;
use crate::replicas::partition::PartitionSet;
use crate::store::writes::{CompleteOutbox, OutboxAttemptFailed, ParkOutbox, UnparkOutbox};
use crate::store::{OutboxEntry, OutboxPayload, PendingWrite, StoreHandle};

/// Rows fetched per query.
const BATCH: usize = 2048;
/// Events in flight (sent, not yet acknowledged) at once.
const WINDOW: usize = 256;
/// Acknowledged rows completed per store write.
const COMPLETE_BATCH: usize = 64;
/// Parked rows re-checked per store read at start-up.
const RECHECK_BATCH: usize = 64;
/// Safety-net poll interval when idle (commits normally wake the task at once).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// First and last retry delay of a held cluster, and of the whole task after a store
/// or transport failure.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// After a failed acknowledgement, how much longer the rest of the pass's in-flight
/// events are waited for (they were sent before the failure was known; on a working
/// connection their acknowledgements are long there).
const ACK_GRACE: Duration = Duration::from_secs(1);
/// Failures of one row, each with other events acknowledged since the last, after
/// which it is parked.
const POISON_STRIKES: u32 = 3;
/// Longest reason stored with a parked row (errors may quote a huge value).
const MAX_REASON_CHARS: usize = 1024;

/// A publish on its way: resolves when the broker acknowledged it.
pub type AckFuture = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send>>;

/// Where the outbox sends messages: the MQTT transport's [`Publisher`] (a stand-in in
/// tests). Messages must go out in the order `send` is called.
pub trait Sink: Send + Sync + 'static {
    /// Hands `message` to the connection; the returned future resolves on the broker's
    /// acknowledgement.
    fn send(
        &self,
        message: &MqttMessage,
    ) -> impl Future<Output = Result<AckFuture, PublishError>> + Send;
}

impl Sink for Publisher {
    async fn send(&self, message: &MqttMessage) -> Result<AckFuture, PublishError> {
        let ack = Publisher::send(self, message).await?;
        Ok(Box::pin(ack.acknowledged()))
    }
}

/// Everything the publisher task needs.
pub struct OutboxPublisher<S: Sink = Publisher> {
    /// The store holding the outbox.
    pub store: StoreHandle,
    /// Where messages go.
    pub publisher: S,
    /// Event → message, with the limits.
    pub wire: Arc<WireFormat>,
    /// Woken on every commit that queued something.
    pub notify: Arc<Notify>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where it records its progress (read by `/readyz`).
    pub progress: Arc<progress::OutboxProgress>,
    /// Which clusters' rows this replica publishes (all of them on a single hub; see
    /// `replicas`): rows of other clusters are left to their owner.
    pub ownership: Arc<Ownership>,
}

/// Acknowledged rows whose removal is committing.
struct Completing {
    pending: PendingWrite<()>,
    rows: Vec<Sent>,
}

/// A row handed to the transport.
struct Sent {
    id: i64,
    cluster: String,
    ty: String,
    /// The work the event is about, if any (starts its spec-to-status clock).
    resource_id: Option<String>,
}

/// A row whose event is on its way to the broker.
struct InFlight {
    row: Sent,
    ack: AckFuture,
}

/// A cluster whose events wait after a failure.
struct Hold {
    /// Its oldest row not completed: where it starts again.
    first_id: i64,
    /// When it may be retried.
    until: Instant,
}

/// The failing head row of a cluster.
struct Strike {
    id: i64,
    count: u32,
    /// [`Schedule::acks`] at its last failure.
    acks_at: u64,
}

/// Where the publisher reads next and which clusters wait. Every map is keyed by
/// cluster and emptied by that cluster's next success, so memory is bounded by the
/// number of clusters.
#[derive(Default)]
struct Schedule {
    /// Rows up to this id are handled (completed, parked, or skipped because their
    /// cluster is held). Only moved back, to a hold's first row, between passes.
    scan: i64,
    holds: HashMap<String, Hold>,
    /// Consecutive failures per cluster (its backoff).
    failures: HashMap<String, u32>,
    strikes: HashMap<String, Strike>,
    /// Acknowledgements seen, of any cluster: an isolated failure has some between.
    acks: u64,
}

impl Schedule {
    fn is_held(&self, cluster: &str) -> bool {
        self.holds.contains_key(cluster)
    }

    /// Holds `cluster` from row `id` on; a new hold lasts the cluster's next backoff
    /// delay, an existing one only reaches back to `id` if that is earlier.
    fn hold(&mut self, cluster: &str, id: i64, now: Instant) {
        if let Some(hold) = self.holds.get_mut(cluster) {
            hold.first_id = hold.first_id.min(id);
            return;
        }
        let failures = self.failures.entry(cluster.to_string()).or_insert(0);
        *failures = failures.saturating_add(1);
        let delay = RETRY_MIN
            .saturating_mul(1u32 << (*failures - 1).min(16))
            .min(RETRY_MAX);
        self.holds.insert(
            cluster.to_string(),
            Hold {
                first_id: id,
                until: now + delay,
            },
        );
    }

    /// Counts a failure of row `id`; returns its strikes (failures with other
    /// acknowledgements in between; a failure with none — the connection is down for
    /// everyone — does not count against the row).
    fn strike(&mut self, cluster: &str, id: i64) -> u32 {
        let acks = self.acks;
        let strike = self.strikes.entry(cluster.to_string()).or_insert(Strike {
            id,
            count: 0,
            acks_at: acks,
        });
        if strike.id != id {
            *strike = Strike {
                id,
                count: 0,
                acks_at: acks,
            };
        }
        if strike.count == 0 || acks > strike.acks_at {
            strike.count += 1;
        }
        strike.acks_at = acks;
        strike.count
    }

    /// An acknowledgement; `completes` when the row will be completed (its cluster is
    /// not held), which ends the cluster's failure streak.
    fn acked(&mut self, cluster: &str, completes: bool) {
        self.acks += 1;
        if completes {
            self.failures.remove(cluster);
            self.strikes.remove(cluster);
        }
    }

    /// Forgets a cluster's streak (its failing row was parked).
    fn forget(&mut self, cluster: &str) {
        self.failures.remove(cluster);
        self.strikes.remove(cluster);
    }

    /// Releases the holds that expired and moves the scan back to their first rows, so
    /// those clusters go out again in order. Called between passes only: then every
    /// row before `scan` is completed, parked, or of a held cluster.
    fn release_expired(&mut self, now: Instant) {
        let mut rewind = self.scan;
        self.holds.retain(|_, h| {
            let keep = h.until > now;
            if !keep {
                rewind = rewind.min(h.first_id - 1);
            }
            keep
        });
        self.scan = rewind;
    }

    /// When the next hold expires.
    fn next_expiry(&self) -> Option<Instant> {
        self.holds.values().map(|h| h.until).min()
    }
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassEnd {
    /// Every row was handled (sent and completed, parked, or skipped for a hold).
    Done,
    /// The transport or store failed for everyone: back off before the next pass.
    Stalled,
}

impl<S: Sink> OutboxPublisher<S> {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        self.recheck_parked().await;
        let mut schedule = Schedule::default();
        let mut delay = RETRY_MIN;
        let mut owned: PartitionSet = 0;
        loop {
            schedule.release_expired(Instant::now());
            let now_owned = self.ownership.publishable(Instant::now());
            if now_owned & !owned != 0 {
                // Partitions gained (a claim, a takeover's quiet period over): their
                // rows were skipped so far, so read the stored outbox from the start —
                // the new owner begins with the oldest row the old one did not complete.
                schedule.scan = 0;
            }
            owned = now_owned;
            let after = schedule.scan;
            let wire = self.wire.fingerprint().to_string();
            let batch = match self
                .store
                .run(move |s| s.outbox_batch(after, BATCH, &wire))
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                    continue;
                }
            };
            if batch.is_empty() {
                if schedule.next_expiry().is_none() {
                    // Nothing pending and nothing held: caught up.
                    self.progress.mark();
                }
                // Caught up: wait for a commit, the next held cluster's retry, or the
                // safety poll.
                let wait = schedule
                    .next_expiry()
                    .map_or(IDLE_POLL, |t| t.saturating_duration_since(Instant::now()))
                    .min(IDLE_POLL);
                let _ = tokio::time::timeout(wait, self.notify.notified()).await;
                continue;
            }
            match self.pass(batch, &mut schedule).await {
                PassEnd::Done => delay = RETRY_MIN,
                PassEnd::Stalled => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Publishes one batch: sends its rows in order (skipping held clusters, parking
    /// unpublishable rows), waits for their acknowledgements in order, and completes
    /// the acknowledged ones. The first failed acknowledgement holds its cluster and
    /// ends the sending (see the module documentation).
    async fn pass(&self, batch: Vec<OutboxEntry>, schedule: &mut Schedule) -> PassEnd {
        let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(WINDOW);
        let mut acked: Vec<Sent> = Vec::with_capacity(COMPLETE_BATCH);
        let mut completing: VecDeque<Completing> = VecDeque::new();
        // Set by the first failed acknowledgement: the rest are waited for until then.
        let mut grace: Option<Instant> = None;
        let mut end = PassEnd::Done;
        for entry in batch {
            if schedule.is_held(&entry.cluster) {
                schedule.scan = entry.id;
                continue;
            }
            // Checked for every row, at the instant it would go out: a replica whose
            // lease deadline passed (paused, cut off from the database) stops here,
            // before another may claim the partition.
            if !self.ownership.owns(&entry.cluster) {
                schedule.scan = entry.id;
                continue;
            }
            // A row queued under this wire format is sent as stored (checked against the
            // limits again: they may have changed); any other is made from its event.
            let checked = match &entry.payload {
                OutboxPayload::Message(message) => {
                    self.wire.check(message).map(|()| Cow::Borrowed(message))
                }
                OutboxPayload::Event(Ok(event)) => self.wire.message(event).map(Cow::Owned),
                OutboxPayload::Event(Err(reason)) => {
                    Err(Unpublishable::Undecodable(reason.clone()))
                }
            };
            let message = match checked {
                Ok(ok) => ok,
                Err(why) => {
                    if !self.park(&entry, &why.to_string()).await {
                        end = PassEnd::Stalled;
                        break;
                    }
                    schedule.scan = entry.id;
                    continue;
                }
            };
            while inflight.len() >= WINDOW && grace.is_none() {
                self.ack_front(&mut inflight, &mut acked, schedule, &mut grace)
                    .await;
                if acked.len() >= COMPLETE_BATCH {
                    completing.push_back(self.queue_completion(&mut acked).await);
                }
            }
            if grace.is_some() {
                break;
            }
            match self.publisher.send(&message).await {
                Ok(ack) => inflight.push_back(InFlight {
                    row: Sent {
                        id: entry.id,
                        cluster: entry.cluster.clone(),
                        ty: entry.event_type.clone(),
                        resource_id: entry.resource_id.clone(),
                    },
                    ack,
                }),
                Err(e @ PublishError::Unpublishable(_)) => {
                    // The transport's own checks refused it: as permanent as ours.
                    if !self
                        .park(&entry, &Unpublishable::Transport(e).to_string())
                        .await
                    {
                        end = PassEnd::Stalled;
                        break;
                    }
                }
                Err(e) => {
                    // Closed: the transport is gone for everyone, not this row's fault;
                    // what is in flight gets only the grace period.
                    self.count_failure(entry.id, &e).await;
                    grace = Some(Instant::now() + ACK_GRACE);
                    end = PassEnd::Stalled;
                    break;
                }
            }
            schedule.scan = entry.id;
        }
        // Acknowledge what is in flight, in order.
        while !inflight.is_empty() {
            self.ack_front(&mut inflight, &mut acked, schedule, &mut grace)
                .await;
            if acked.len() >= COMPLETE_BATCH {
                completing.push_back(self.queue_completion(&mut acked).await);
            }
        }
        if !acked.is_empty() {
            completing.push_back(self.queue_completion(&mut acked).await);
        }
        for c in completing.drain(..) {
            if !self.finish_completion(c, schedule).await {
                end = PassEnd::Stalled;
            }
        }
        end
    }

    /// Waits for the oldest in-flight row's acknowledgement (until `grace`, once a
    /// failure set it) and moves it to `acked`, unless its cluster is held (an earlier
    /// row of it failed: it goes out again after that one). A failure holds the
    /// cluster, counts a strike, and parks the row at `POISON_STRIKES`.
    async fn ack_front(
        &self,
        inflight: &mut VecDeque<InFlight>,
        acked: &mut Vec<Sent>,
        schedule: &mut Schedule,
        grace: &mut Option<Instant>,
    ) {
        let Some(front) = inflight.pop_front() else {
            return;
        };
        let result = match *grace {
            None => front.ack.await,
            Some(deadline) => tokio::time::timeout_at(deadline, front.ack)
                .await
                .unwrap_or(Err(PublishError::Timeout(ACK_GRACE))),
        };
        let row = front.row;
        match result {
            Ok(()) => {
                let completes = !schedule.is_held(&row.cluster);
                schedule.acked(&row.cluster, completes);
                if completes {
                    acked.push(row);
                }
            }
            Err(e) if grace.is_some() || schedule.is_held(&row.cluster) => {
                // A consequence of the failure already seen (a dead connection fails
                // every later acknowledgement too), not this row's own doing: hold its
                // cluster, count no strike against it.
                self.metrics.publish_failures.inc();
                tracing::debug!(id = row.id, error = %e, "publish not acknowledged; will retry");
                schedule.hold(&row.cluster, row.id, Instant::now());
            }
            Err(e) => {
                *grace = Some(Instant::now() + ACK_GRACE);
                self.count_failure(row.id, &e).await;
                schedule.hold(&row.cluster, row.id, Instant::now());
                // Only the broker's explicit refusal is this event's own doing. A timeout
                // or a lost connection says nothing about the event (a frozen or
                // restarting broker looks the same), and parking an acknowledged work's
                // event on a flapping link would lose it.
                if !matches!(e, PublishError::Refused(_)) {
                    return;
                }
                let strikes = schedule.strike(&row.cluster, row.id);
                if strikes >= POISON_STRIKES {
                    let reason =
                        format!("refused {strikes} times while other events were taken: {e}");
                    if self.park_id(row.id, &row.cluster, &row.ty, &reason).await {
                        schedule.forget(&row.cluster);
                    }
                }
            }
        }
    }

    /// Counts and logs a failed attempt (retried), also on the row.
    async fn count_failure(&self, id: i64, error: &PublishError) {
        self.metrics.publish_failures.inc();
        tracing::warn!(id, %error, "publish failed; will retry");
        if let Err(e) = self
            .store
            .run(move |s| s.write(OutboxAttemptFailed(id)))
            .await
        {
            tracing::warn!(error = %e, "cannot count the failed attempt");
        }
    }

    /// Parks a row that can never be published; false if the store failed (the row
    /// stays pending and is tried again).
    async fn park(&self, entry: &OutboxEntry, reason: &str) -> bool {
        self.park_id(entry.id, &entry.cluster, &entry.event_type, reason)
            .await
    }

    async fn park_id(&self, id: i64, cluster: &str, ty: &str, reason: &str) -> bool {
        let reason = cut(reason, MAX_REASON_CHARS);
        let stored = reason.clone();
        match self
            .store
            .run(move |s| {
                s.write(ParkOutbox {
                    id,
                    reason: stored,
                    at: Utc::now(),
                })
            })
            .await
        {
            Ok(superseded) => {
                self.metrics.outbox_parked.inc();
                tracing::error!(
                    id,
                    cluster = %cut(cluster, 64),
                    event_type = ty,
                    %reason,
                    superseded,
                    "outbox event can never be published; parked (see GET /api/v1/outbox/parked)"
                );
                true
            }
            Err(e) => {
                tracing::error!(id, error = %e, "cannot park an unpublishable outbox event");
                false
            }
        }
    }

    /// At start-up, puts back into the queue the parked rows that the current
    /// configuration can publish (a larger packet limit, another encoding, or a row
    /// parked after repeated transient failures), and says once how many stay parked.
    async fn recheck_parked(&self) {
        let mut after = 0i64;
        let mut still = 0u64;
        loop {
            let page = match self
                .store
                .run(move |s| s.parked_outbox(after, RECHECK_BATCH))
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot re-check parked outbox events");
                    return;
                }
            };
            let Some(last) = page.last() else {
                break;
            };
            after = last.entry.id;
            let publishable: Vec<i64> = page
                .iter()
                .filter(|p| {
                    p.entry
                        .event()
                        .is_some_and(|e| e.as_ref().is_ok_and(|e| self.wire.message(e).is_ok()))
                })
                .map(|p| p.entry.id)
                .collect();
            still += (page.len() - publishable.len()) as u64;
            if !publishable.is_empty() {
                let n = publishable.len();
                match self
                    .store
                    .run(move |s| s.write(UnparkOutbox(publishable)))
                    .await
                {
                    Ok(()) => tracing::info!(n, "parked outbox events fit now; queued again"),
                    Err(e) => tracing::warn!(error = %e, "cannot queue parked events again"),
                }
            }
        }
        if still > 0 {
            tracing::error!(
                parked = still,
                "outbox events are parked as unpublishable; see GET /api/v1/outbox/parked"
            );
        }
    }

    /// Queues the removal of acknowledged rows (and their audit rows) as one
    /// group-committed write, without waiting for it: publishing goes on while it commits.
    async fn queue_completion(&self, acked: &mut Vec<Sent>) -> Completing {
        let rows = std::mem::take(acked);
        let op = CompleteOutbox {
            ids: rows.iter().map(|r| r.id).collect(),
            sent_at: Utc::now(),
        };
        Completing {
            pending: self.store.submit(op).await,
            rows,
        }
    }

    /// Waits for a queued completion; false if the store failed, in which case the
    /// rows' clusters are held so their rows go out again, in order.
    async fn finish_completion(&self, c: Completing, schedule: &mut Schedule) -> bool {
        match c.pending.outcome().await {
            Ok(_) => {
                self.progress.mark();
                for row in c.rows {
                    self.metrics
                        .sent(&row.ty, &row.cluster, row.resource_id.as_deref());
                    tracing::debug!(id = row.id, ty = row.ty, "published");
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "published but cannot complete the outbox rows");
                let now = Instant::now();
                for row in &c.rows {
                    schedule.hold(&row.cluster, row.id, now);
                }
                false
            }
        }
    }
}

/// `s` cut to `max` characters (marked), for logs, stored reasons and error messages
/// that quote a value which may be huge.
pub(crate) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_counts_against_a_row_only_when_others_got_through() {
        let mut s = Schedule::default();
        assert_eq!(s.strike("a", 7), 1);
        // Nothing acknowledged since: the connection, not the row.
        assert_eq!(s.strike("a", 7), 1);
        s.acked("b", true);
        assert_eq!(s.strike("a", 7), 2);
        s.acked("a", false); // a held row of the same cluster: no completion
        assert_eq!(s.strike("a", 7), 3);
        // Another row of the cluster starts over; a completion clears the streak.
        assert_eq!(s.strike("a", 9), 1);
        s.acked("a", true);
        assert!(s.strikes.is_empty() && s.failures.is_empty());
    }

    #[test]
    fn holds_back_off_per_cluster_and_rewind_the_scan_when_released() {
        let now = Instant::now();
        let mut s = Schedule {
            scan: 50,
            ..Schedule::default()
        };
        s.hold("a", 20, now);
        s.hold("a", 10, now); // reaches back, keeps its expiry
        s.hold("b", 30, now);
        assert_eq!(s.holds["a"].first_id, 10);
        assert_eq!(s.next_expiry(), Some(now + RETRY_MIN));
        // Not expired: nothing moves.
        s.release_expired(now);
        assert_eq!((s.scan, s.holds.len()), (50, 2));
        s.release_expired(now + RETRY_MIN);
        assert_eq!((s.scan, s.holds.len()), (9, 0));
        // The next hold of a cluster that failed before waits longer, up to RETRY_MAX.
        s.hold("a", 10, now);
        assert_eq!(s.holds["a"].until, now + RETRY_MIN * 2);
        for _ in 0..20 {
            s.release_expired(now + RETRY_MAX * 2);
            s.hold("a", 10, now);
        }
        assert_eq!(s.holds["a"].until, now + RETRY_MAX);
    }

    #[test]
    fn cut_marks_what_it_drops() {
        assert_eq!(cut("edge-1", 64), "edge-1");
        assert_eq!(cut(&"p".repeat(70_000), 3), "ppp…");
    }
}
