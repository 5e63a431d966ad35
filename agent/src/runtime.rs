//! The agent loop: one task per agent that ties the MQTT transport, the durable store,
//! the reconciler and the outgoing queue together.
//!
//! Data flow of one spec event: transport message → `mqtt::decode` → dispatch on the
//! type (§3.3) → `metadata::decode_spec_event` (§5.4) → [`spec_handler::decide`] (§7.2) →
//! store the record → reconcile (apply + status) → store again → if the status hash
//! changed, queue a status event → on broker acknowledgement, remember the reported hash.
//!
//! Other inputs: `Subscribed` (after every (re)connect) sends the spec resync request and
//! re-queues any status the broker never acknowledged; a status resync request is
//! answered from the store (§6.3); a per-work timer refreshes status (readiness,
//! feedback) and drives deletion until cleanup completes and the final `Deleted` status
//! is acknowledged, after which the work is forgotten (§6.5).
//!
//! Timing (manifestwork-semantics §9), all on the one per-work `due` timer plus the
//! agent's eviction sweep timer — no task or timer per work:
//! - status sync: every `status_sync_interval` stretched by up to `status_sync_jitter`
//!   (10 s + up to 90 %: 10–19 s), sooner when the target says the status changes
//!   earlier (`requeue_after`);
//! - full re-apply correcting drift: every `apply_resync_interval` + up to
//!   `apply_resync_jitter` (4 min + up to 50 %: 4–6 min), checked at a refresh;
//! - a re-apply asked by the reconciler (`reapply_after`: an executor denial retried
//!   after 60 s, an AppliedManifestWork deleted out of band): the work's timer fires
//!   then, not at the next status sync after it;
//! - `feedbackScrapeType: Watch` ([`crate::feedback_watch`]): the agent's watches are
//!   one more input of the loop's `select!`; a change of a watched object brings the
//!   timer of the works watching it to [`WATCH_COALESCE`] from now, so a burst of
//!   changes gives one refresh.
//!
//! Jitter comes from a per-agent random source ([`crate::jitter`]); tests set the
//! jitter factors to 0 in [`AgentConfig`] to make timing exact.
//!
//! Works are processed one at a time per agent, which keeps per-work ordering trivial;
//! a process can run thousands of agents as independent tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use workbus_schemas::AttributesReader;
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::metadata::{decode_spec_event, deleted_condition};
use workbus_schemas::mqtt::{self, MqttMessage};
use workbus_schemas::resync::{StatusResyncRequest, status_resync_answer};
use workbus_schemas::resync_digest::{self, ResyncReply};
use workbus_schemas::sequence_id::{SequenceId, SequenceIdGenerator};
use workbus_schemas::status_hash::status_hash;
use workbus_schemas::work::status::{condition_status, condition_type, set_condition};
use workbus_schemas::work::{ManifestWork, Time};
use workbus_schemas::{envelope, extensions::OcmExtensions};

use crate::applied_work::AppliedWorkIdentity;
use crate::config::AgentConfig;
use crate::feedback_watch::{FeedbackWatches, WatchTarget};
use crate::jitter::Jitter;
use crate::outbox::{DroppedAs, Outbox};
use crate::outgoing::{Delivered, Outgoing, OutgoingItem, RESYNC_KEY};
use crate::reconcile::{CleanupOutcome, Reconciler, WorkState};
use crate::registration::{
    self,
    lifecycle::{
        ConnectionClock, Lifecycle, Rotated, Step as LifecycleStep, keys as lifecycle_keys,
    },
};
use crate::spec_handler::{IgnoreReason, SpecDecision, decide};
use crate::status_report::{ResyncForm, spec_resync_message, status_message};
use crate::store::{AgentStore, StoreError, WorkRecord};
use crate::target::Target;
use workbus_schemas::registration::{decode_registration_event, registration_kind};
use workbus_transport::{Transport, TransportEvent, TransportStats};

/// Counters of one agent.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Spec events accepted and applied.
    pub applied: AtomicU64,
    /// Spec events ignored as stale (lower generation).
    pub stale: AtomicU64,
    /// Spec events ignored as duplicates.
    pub duplicates: AtomicU64,
    /// Events for other clusters, ignored.
    pub other_cluster: AtomicU64,
    /// Messages that are not valid events, or events that fail to decode.
    pub malformed: AtomicU64,
    /// Status events queued for publishing (into the outbox, [`crate::outbox`]).
    pub status_queued: AtomicU64,
    /// Statuses waiting in the outbox for the broker (a gauge).
    pub outbox_statuses: AtomicU64,
    /// Intermediate and first transitions the outbox dropped to stay within its bounds
    /// (`--outbox-max-statuses`, `--outbox-max-bytes`): lost from the hub's history.
    pub outbox_compacted: AtomicU64,
    /// Final states the outbox dropped as a last resort; each is queued again from the
    /// work store once the outbox has drained (the hub still gets the final state).
    pub outbox_compacted_finals: AtomicU64,
    /// Status events acknowledged by the broker.
    pub status_sent: AtomicU64,
    /// Spec resync requests sent.
    pub resync_requests: AtomicU64,
    /// Status resync requests answered.
    pub status_resyncs: AtomicU64,
    /// Status resync requests whose digest matched: answered with nothing.
    pub status_resyncs_unchanged: AtomicU64,
    /// Spec resync requests sent in the digest-only form (part of `resync_requests`).
    pub digest_requests: AtomicU64,
    /// Spec resyncs completed by an "in sync" reply (digest form, nothing changed).
    pub spec_resyncs_in_sync: AtomicU64,
    /// Spec resyncs completed by a "done" reply after the per-work answers.
    pub spec_resyncs_done: AtomicU64,
    /// "full" replies: the digests differed and the request was repeated upstream-style.
    pub spec_resync_fallbacks: AtomicU64,
    /// Works whose deletion completed.
    pub deleted: AtomicU64,
    /// Store failures (the event is dropped; resync repairs it).
    pub store_errors: AtomicU64,
    /// Works (or new generations) not applied because they could not be stored first.
    pub not_applied_unstored: AtomicU64,
    /// Feedback watches open now (`feedbackScrapeType: Watch`; a gauge).
    pub feedback_watches: AtomicU64,
    /// Resource + namespace pairs configured to be watched that did not fit under
    /// `--max-feedback-watch` and are polled instead (each counted once while needed).
    pub feedback_watch_fallbacks: AtomicU64,
    /// Status refreshes brought forward by a change of a watched object.
    pub watch_refreshes: AtomicU64,
    /// Spec events rejected because they carry no valid signature by the configured
    /// hub key (`--spec-signing-key`); never applied.
    pub unverified: AtomicU64,
    /// The spec resync after the latest subscribe is complete: its request was
    /// acknowledged and, for the digest-only form, the source's reply arrived
    /// (`/readyz`). False while disconnected.
    pub resynced: AtomicBool,
    /// CloudEvents acknowledged by the broker (statuses, spec resync requests), by
    /// sdk-go's labels.
    pub events_sent: crate::metrics::CloudEventCounts,
    /// CloudEvents received, by sdk-go's labels.
    pub events_received: crate::metrics::CloudEventCounts,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] workbus_transport::TlsError),
    /// The registered cluster's identity dir cannot be read.
    #[error(transparent)]
    Identity(#[from] crate::registration::identity_dir::IdentityError),
}

/// The longest [`AgentHandle::shutdown`] takes, in every connection state.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// How long the DISCONNECT may take to reach the broker when connected: a work being
/// applied finishes first, so this leaves the rest of [`SHUTDOWN_LIMIT`] for it.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// How long after a change of a watched object the works watching it are refreshed:
/// changes arriving meanwhile (a burst, e.g. a rollout's status updates, or the
/// agent's own apply) are folded into that one refresh.
pub const WATCH_COALESCE: Duration = Duration::from_millis(100);

/// A running agent.
pub struct AgentHandle {
    stats: Arc<AgentStats>,
    transport_stats: Arc<TransportStats>,
    shutdown: Arc<Notify>,
    /// Set by [`AgentHandle::kill`]: the loop handles no further event.
    killed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl AgentHandle {
    /// The agent's counters.
    pub fn stats(&self) -> &Arc<AgentStats> {
        &self.stats
    }

    /// The MQTT transport's counters.
    pub fn transport_stats(&self) -> &Arc<TransportStats> {
        &self.transport_stats
    }

    /// Disconnects cleanly when connected and waits for the agent to stop — never longer
    /// than [`SHUTDOWN_LIMIT`], connected or not (systemd and Kubernetes SIGKILL what
    /// does not stop in time). Whatever the agent holds is already in its store.
    pub async fn shutdown(mut self) {
        self.shutdown.notify_one();
        if tokio::time::timeout(SHUTDOWN_LIMIT, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("agent did not stop within {SHUTDOWN_LIMIT:?}; stopping it");
            self.task.abort();
        }
    }

    /// Stops the agent at once without a DISCONNECT: a crash, for fault tests. The store
    /// keeps whatever was written.
    pub fn kill(self) {
        // An abort takes effect only when the task next yields; a loop busy with ready
        // events (and synchronous store writes) could meanwhile handle one that arrived
        // after the kill. The flag stops it before the next event.
        self.killed.store(true, Ordering::SeqCst);
        self.task.abort();
    }

    /// True once the agent task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts an agent: loads its store, connects, and runs until shut down.
pub fn start<T: Target, S: AgentStore>(
    config: AgentConfig,
    target: Arc<T>,
    store: Arc<S>,
) -> Result<AgentHandle, AgentError> {
    let records = store.load()?;
    let digest_sources = store.digest_sources()?;
    let outbox = Outbox::new(config.outbox, store.outbox_load()?);
    if !outbox.is_empty() {
        tracing::info!(cluster = %config.cluster_name, statuses = outbox.len(), bytes = outbox.bytes(), "statuses left in the outbox by the previous run are sent first");
    }
    let mut sequence = SequenceIdGenerator::default();
    // Never go below an id already sent or queued, whatever the clock did meanwhile
    // (§7.3).
    if let Some(last) = records
        .iter()
        .map(|r| r.last_sequence_id.as_str())
        .chain(outbox.sequence_ids())
        .filter_map(|id| id.parse::<SequenceId>().ok())
        .max()
    {
        sequence.resume_after(last);
    }
    let mut transport_config = config.transport.clone();
    let lifecycle = match &config.registration {
        Some(registration) => {
            let clock = ConnectionClock::default();
            let out = registration::outbound(&config);
            // Every connection carries a Will releasing the cluster's lease.
            transport_config.will = Some(clock.will(out.clone()));
            let identity = registration
                .identity_dir
                .load(&config.cluster_name, std::time::SystemTime::now())?;
            Some(Lifecycle::new(
                out,
                registration.claims.clone(),
                clock,
                registration.lease_duration_seconds,
                identity,
            ))
        }
        None => None,
    };
    let transport = Transport::start(transport_config)?;
    let stats = Arc::new(AgentStats::default());
    stats
        .outbox_statuses
        .store(outbox.len() as u64, Ordering::Relaxed);
    let transport_stats = transport.publisher.stats().clone();
    let (delivered_tx, delivered_rx) = mpsc::unbounded_channel();
    let outgoing = Outgoing::spawn(
        transport.publisher.clone(),
        delivered_tx,
        config.transport.reconnect,
        store.clone(),
        outbox,
    );
    let shutdown = Arc::new(Notify::new());
    let now = Instant::now();
    let mut jitter = Jitter::new(&config.agent_id);
    let mut due = HashMap::new();
    let mut next_apply = HashMap::new();
    for r in &records {
        // Resume unfinished work at once; otherwise just refresh what was applied.
        due.insert(r.uid().to_string(), now);
        // Loaded works are not re-applied on start; their drift check comes later.
        let wait = jitter.wait(config.apply_resync_interval, config.apply_resync_jitter);
        next_apply.insert(r.uid().to_string(), now + wait);
    }
    let agent = Agent {
        reconciler: Reconciler::new(target)
            // `spec.agentID` is the hub hash, as OCM's agent sets it without `--agent-id`:
            // a cluster moving from OCM or Maestro keeps its AppliedManifestWorks.
            .with_identity(AppliedWorkIdentity::new(
                &config.hub_host,
                &config.hub_hash(),
            )),
        // At start, after the store is loaded: AppliedManifestWorks of works lost meanwhile.
        next_sweep: now,
        works: records
            .into_iter()
            .map(|r| (r.uid().to_string(), r))
            .collect(),
        next_apply,
        reapply_due: HashMap::new(),
        watches: FeedbackWatches::new(config.max_feedback_watch),
        jitter,
        due,
        finals_dropped: BTreeSet::new(),
        digest_sources,
        spec_resync_unanswered: false,
        resync_awaits_reply: false,
        status_actions: HashMap::new(),
        lifecycle,
        reconnect_requested: false,
        config,
        store,
        sequence,
        outgoing,
        stats: stats.clone(),
    };
    let killed = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(agent.run(transport, delivered_rx, shutdown.clone(), killed.clone()));
    Ok(AgentHandle {
        stats,
        transport_stats,
        shutdown,
        killed,
        task,
    })
}

struct Agent<T: Target, S: AgentStore> {
    config: AgentConfig,
    reconciler: Reconciler<T>,
    store: Arc<S>,
    works: BTreeMap<String, WorkRecord>,
    /// When each work wants its next refresh or cleanup step.
    due: HashMap<String, Instant>,
    /// When to look for AppliedManifestWorks to evict next (§6).
    next_sweep: Instant,
    /// Works whose final state the outbox dropped (its last resort): queued again from
    /// the store once the outbox has drained.
    finals_dropped: BTreeSet<String>,
    /// When each work is next fully applied (drift correction, see `refresh`):
    /// `apply_resync_interval` plus jitter after its last apply.
    next_apply: HashMap<String, Instant>,
    /// When a work asked to be applied again without a spec change (a manifest its
    /// executor may not apply yet, §2.4; an AppliedManifestWork deleted out of band);
    /// checked like the drift re-apply in `refresh`, and its timer fires then.
    reapply_due: HashMap<String, Instant>,
    /// Feedback watches of the works configured with `feedbackScrapeType: Watch`.
    watches: FeedbackWatches,
    /// Random source of the jittered waits.
    jitter: Jitter,
    /// Source ids known to understand resync digests (persisted in the store).
    digest_sources: BTreeSet<String>,
    /// Our last spec resync request got no `insync`/`done` reply yet (it may have been
    /// lost while the source was away).
    spec_resync_unanswered: bool,
    /// The last spec resync request was the digest-only form: it is complete only with
    /// the source's reply, not with its acknowledgement (`AgentStats::resynced`).
    resync_awaits_reply: bool,
    /// The action of each status queued and not yet acknowledged (its metric label).
    status_actions: HashMap<String, Action>,
    /// The registered cluster's lifecycle (lease, status, rotation); `None` for agents
    /// of clusters created on the hub.
    lifecycle: Option<Lifecycle>,
    /// A rotated identity waits for the loop to reconnect with it.
    reconnect_requested: bool,
    sequence: SequenceIdGenerator,
    outgoing: Outgoing<S>,
    stats: Arc<AgentStats>,
}

impl<T: Target, S: AgentStore> Agent<T, S> {
    async fn run(
        mut self,
        mut transport: Transport,
        mut delivered: mpsc::UnboundedReceiver<Delivered>,
        shutdown: Arc<Notify>,
        killed: Arc<AtomicBool>,
    ) {
        loop {
            if killed.load(Ordering::SeqCst) {
                return;
            }
            let next = self
                .due
                .values()
                .copied()
                .chain(self.lifecycle.as_ref().and_then(Lifecycle::next_due))
                .min();
            let next_sweep = self.next_sweep;
            let sleep = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at.min(next_sweep)).await,
                    None => tokio::time::sleep_until(next_sweep).await,
                }
            };
            if std::mem::take(&mut self.reconnect_requested) {
                // A rotated identity: the transport reads the files again on the new
                // connection. Off the loop: the reconnect first lets publishes in
                // flight be acknowledged.
                let publisher = transport.publisher.clone();
                tokio::spawn(async move { publisher.reconnect().await });
            }
            tokio::select! {
                event = transport.events.recv() => match event {
                    // Killed while this event was being received: not handled.
                    Some(_) if killed.load(Ordering::SeqCst) => return,
                    Some(event) => self.on_transport(event).await,
                    None => break,
                },
                Some(d) = delivered.recv() => self.on_delivered(d),
                uids = self.watches.changed() => self.on_watched_change(uids),
                _ = sleep => self.on_timers().await,
                _ = shutdown.notified() => {
                    // Everything the agent holds is already durable (store and target are
                    // written on every change); only the goodbye to the broker is left,
                    // and an edge device is often without one.
                    transport.shutdown(DISCONNECT_GRACE).await;
                    break;
                }
            }
        }
    }

    async fn on_transport(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Subscribed => self.on_subscribed(),
            TransportEvent::Message(m) => self.on_message(m).await,
            TransportEvent::Disconnected(reason) => {
                self.stats.resynced.store(false, Ordering::Relaxed);
                tracing::debug!(cluster = %self.config.cluster_name, %reason, "disconnected");
                if let Some(l) = &mut self.lifecycle {
                    l.on_disconnected();
                }
            }
        }
    }

    /// After every (re)subscribe: ask the sources for what changed (§6.1), and re-queue
    /// any status the broker never acknowledged.
    fn on_subscribed(&mut self) {
        tracing::info!(
            cluster = %self.config.cluster_name,
            client_id = %self.config.transport.client_id,
            topics = ?self.config.transport.subscriptions,
            works = self.works.len(),
            "subscribed; asking the sources for their specs (resync)"
        );
        self.send_spec_resync(self.resync_form());
        if let Some(l) = &mut self.lifecycle {
            let steps = l.on_subscribed(Instant::now(), chrono::Utc::now());
            self.lifecycle_steps(steps);
        }
        let unreported: Vec<String> = self
            .works
            .values()
            .filter(|r| {
                !r.state.status.conditions.is_empty()
                    || r.work.metadata.deletion_timestamp.is_some()
            })
            .filter(|r| status_hash(&r.state.status) != r.reported_hash)
            .map(|r| r.uid().to_string())
            .collect();
        // Statuses in the outbox go out by themselves; this catches what is in the store
        // only (a status whose outbox entry was dropped, or could not be stored).
        for uid in unreported {
            self.queue_status(&uid, Action::UpdateRequest);
        }
    }

    /// The form of the next spec resync request: digest-only when every source we hold
    /// works from (and at least one) advertised digests — a source that did not would
    /// read the empty list as "send everything" — else upstream, advertising when enabled.
    fn resync_form(&self) -> ResyncForm {
        if !self.config.resync_digest {
            return ResyncForm::Upstream;
        }
        let all_known = self.works.values().all(|r| {
            r.work
                .metadata
                .original_source()
                .is_some_and(|s| self.digest_sources.contains(s))
        });
        if !self.digest_sources.is_empty() && all_known {
            ResyncForm::DigestOnly
        } else {
            ResyncForm::Advertising
        }
    }

    fn send_spec_resync(&mut self, form: ResyncForm) {
        match spec_resync_message(&self.config, self.works.values(), form) {
            Ok(message) => {
                self.spec_resync_unanswered = true;
                self.stats.resynced.store(false, Ordering::Relaxed);
                self.resync_awaits_reply = form == ResyncForm::DigestOnly;
                bump(&self.stats.resync_requests);
                if form == ResyncForm::DigestOnly {
                    bump(&self.stats.digest_requests);
                }
                // One key: a newer request replaces one not yet sent.
                self.outgoing.request(OutgoingItem {
                    key: RESYNC_KEY.to_string(),
                    message,
                    hash: String::new(),
                });
            }
            Err(e) => tracing::error!(error = %e, "cannot build the spec resync request"),
        }
    }

    /// A source's reply to our spec resync request (resync_digest module).
    fn on_resync_reply(&mut self, source: &str, reply: ResyncReply) {
        self.learn_digest_source(source, true);
        match reply {
            ResyncReply::InSync => {
                self.spec_resync_unanswered = false;
                self.stats.resynced.store(true, Ordering::Relaxed);
                bump(&self.stats.spec_resyncs_in_sync);
                tracing::info!(cluster = %self.config.cluster_name, %source, works = self.works.len(), "resync: in sync, nothing changed");
            }
            ResyncReply::Done => {
                self.spec_resync_unanswered = false;
                self.stats.resynced.store(true, Ordering::Relaxed);
                bump(&self.stats.spec_resyncs_done);
                tracing::info!(cluster = %self.config.cluster_name, %source, works = self.works.len(), "resync done: the source sent what changed");
            }
            ResyncReply::Full => {
                bump(&self.stats.spec_resync_fallbacks);
                tracing::info!(cluster = %self.config.cluster_name, %source, "resync: the source asks for the full form; asking again");
                let form = if self.config.resync_digest {
                    ResyncForm::Advertising
                } else {
                    ResyncForm::Upstream
                };
                self.send_spec_resync(form);
            }
        }
    }

    /// Records whether `source` understands digests, durably when that changes.
    fn learn_digest_source(&mut self, source: &str, understands: bool) {
        if !self.config.resync_digest {
            return;
        }
        let changed = if understands {
            self.digest_sources.insert(source.to_string())
        } else {
            self.digest_sources.remove(source)
        };
        if changed && let Err(e) = self.store.set_digest_sources(&self.digest_sources) {
            // Only an optimisation is at stake: the upstream form stays correct.
            bump(&self.stats.store_errors);
            tracing::error!(error = %e, "cannot store the digest sources");
        }
    }

    async fn on_message(&mut self, message: MqttMessage) {
        let event = match mqtt::decode(&message) {
            Ok(e) => e,
            Err(e) => {
                bump(&self.stats.malformed);
                tracing::warn!(topic = %message.topic, error = %e, "dropping undecodable message");
                return;
            }
        };
        let ty = match envelope::decode_event_type(&event) {
            Ok(t) => t,
            Err(e) => {
                bump(&self.stats.malformed);
                tracing::warn!(error = %e, "dropping event with a bad type");
                return;
            }
        };
        self.stats
            .events_received
            .count(event.source(), &self.config.cluster_name, event.ty());
        if self.lifecycle.is_some() && registration_kind(&event).is_some() {
            self.on_registration_event(&event).await;
            return;
        }
        match (&ty.action, ty.sub_resource) {
            (Action::ResyncRequest, SubResource::Status) => self.on_status_resync(&event),
            (Action::ResyncRequest, SubResource::Spec) => {} // another agent's request
            (_, SubResource::Spec) if ty.data_type.is_manifest_bundles() => {
                match event.cluster_name() {
                    Ok(Some(c)) if c == self.config.cluster_name => {}
                    Ok(_) => {
                        bump(&self.stats.other_cluster);
                        return;
                    }
                    Err(e) => {
                        bump(&self.stats.malformed);
                        tracing::warn!(error = %e, "dropping spec event");
                        return;
                    }
                }
                if let Some(key) = &self.config.spec_signing_key
                    && let Err(e) = key.verify(&event)
                {
                    bump(&self.stats.unverified);
                    tracing::warn!(id = event.id(), source = %event.source(), ty = event.ty(), error = %e, "rejecting a spec event without a valid signature");
                    return;
                }
                if let Some(reply) = resync_digest::reply_of(&event) {
                    self.on_resync_reply(event.source(), reply);
                    return;
                }
                self.on_spec(&event).await;
            }
            _ => {}
        }
    }

    async fn on_spec(&mut self, event: &workbus_schemas::Event) {
        let decoded = match decode_spec_event(event) {
            Ok(d) => d,
            Err(e) => {
                bump(&self.stats.malformed);
                tracing::warn!(error = %e, "rejecting spec event");
                return;
            }
        };
        let uid = decoded.work.metadata.uid.clone();
        let (name, generation) = (
            decoded.work.metadata.name.clone(),
            decoded.work.metadata.generation,
        );
        match decide(self.works.get(&uid), decoded.work) {
            SpecDecision::Ignore(reason) => {
                match reason {
                    IgnoreReason::Stale => bump(&self.stats.stale),
                    IgnoreReason::Duplicate => bump(&self.stats.duplicates),
                    IgnoreReason::Deleting => {}
                }
                tracing::debug!(cluster = %self.config.cluster_name, work = %name, generation, ?reason, "spec ignored");
            }
            SpecDecision::Apply(work) => {
                bump(&self.stats.applied);
                tracing::info!(cluster = %self.config.cluster_name, work = %name, generation, "spec received");
                if self
                    .works
                    .get(&uid)
                    .is_some_and(|r| r.work.metadata.deletion_timestamp.is_some())
                {
                    // The next incarnation of a deleted work (see `spec_handler`): it
                    // starts from nothing, not from the old one's applied state.
                    self.works.remove(&uid);
                }
                self.apply(work).await;
            }
            SpecDecision::Delete(work) => {
                tracing::info!(cluster = %self.config.cluster_name, work = %name, generation, "delete received");
                self.upsert(work);
                self.persist(&uid);
                self.step_deletion(&uid).await;
            }
        }
    }

    /// Stores `work` (keeping local state of a held record) without applying it.
    fn upsert(&mut self, work: ManifestWork) {
        let uid = work.metadata.uid.clone();
        match self.works.get_mut(&uid) {
            Some(r) => r.work = work,
            None => {
                self.works.insert(
                    uid,
                    WorkRecord {
                        work,
                        state: WorkState::default(),
                        applied_generation: 0,
                        reported_hash: String::new(),
                        last_sequence_id: String::new(),
                    },
                );
            }
        }
    }

    /// Stores the work's record; `false` (counted, logged) when the store failed.
    fn persist(&mut self, uid: &str) -> bool {
        if let Some(r) = self.works.get(uid)
            && let Err(e) = self.store.put(r)
        {
            bump(&self.stats.store_errors);
            tracing::error!(error = %e, "cannot store work {uid}");
            return false;
        }
        true
    }

    async fn apply(&mut self, work: ManifestWork) {
        let uid = work.metadata.uid.clone();
        let generation = work.metadata.generation;
        let is_new = !self.works.contains_key(&uid);
        self.upsert(work);
        // Stored before applying: a crash mid-apply resumes from here on restart. A
        // work that cannot be stored is not applied (after a restart it could be
        // neither reported nor cleaned up): a new one is forgotten (the hub's resync
        // offers it again), a held one keeps its unapplied generation, retried (stored
        // first again) at its next refresh.
        if !self.persist(&uid) {
            bump(&self.stats.not_applied_unstored);
            tracing::error!(uid = %cut_uid(&uid), generation, "not applying a work that could not be stored");
            if is_new {
                self.works.remove(&uid);
            }
            return;
        }
        let Some(record) = self.works.get(&uid) else {
            return;
        };
        let mut outcome = self
            .reconciler
            .apply(&record.work, &record.state, Time::now())
            .await;
        let (requeue_after, reapply_after) = (outcome.requeue_after, outcome.reapply_after);
        let watch = std::mem::take(&mut outcome.watch);
        let resync = self.jitter.wait(
            self.config.apply_resync_interval,
            self.config.apply_resync_jitter,
        );
        self.next_apply.insert(uid.clone(), Instant::now() + resync);
        self.set_reapply(&uid, reapply_after);
        if let Some(r) = self.works.get_mut(&uid) {
            r.state = outcome.into_state();
            r.applied_generation = generation;
            log_applied(&self.config.cluster_name, r);
        }
        self.persist(&uid);
        self.watch(&uid, watch).await;
        self.schedule(&uid, requeue_after);
        self.queue_status(&uid, Action::UpdateRequest);
    }

    /// Remembers when the work asked to be applied again (`None`: it did not).
    fn set_reapply(&mut self, uid: &str, after: Option<Duration>) {
        match after {
            Some(after) => self
                .reapply_due
                .insert(uid.to_string(), Instant::now() + after),
            None => self.reapply_due.remove(uid),
        };
    }

    /// Updates what the work watches (`feedbackScrapeType: Watch`) and the counters.
    async fn watch(&mut self, uid: &str, wants: Vec<WatchTarget>) {
        let report = self
            .watches
            .set(&**self.reconciler.target(), uid, wants)
            .await;
        self.stats
            .feedback_watches
            .store(report.open as u64, Ordering::Relaxed);
        if report.new_fallbacks > 0 {
            self.stats
                .feedback_watch_fallbacks
                .fetch_add(report.new_fallbacks as u64, Ordering::Relaxed);
        }
    }

    /// Watched objects changed: the works watching them are refreshed within
    /// [`WATCH_COALESCE`] (sooner if they were due anyway). Works being deleted watch
    /// nothing.
    fn on_watched_change(&mut self, uids: BTreeSet<String>) {
        let soon = Instant::now() + WATCH_COALESCE;
        for uid in uids {
            if !self.works.contains_key(&uid) {
                continue;
            }
            let at = self.due.entry(uid).or_insert(soon);
            if *at > soon {
                *at = soon;
                bump(&self.stats.watch_refreshes);
            }
        }
    }

    async fn refresh(&mut self, uid: &str) {
        let Some(record) = self.works.get(uid) else {
            return;
        };
        let drift_check_due = self
            .next_apply
            .get(uid)
            .is_some_and(|at| *at <= Instant::now());
        let reapply_due = self
            .reapply_due
            .get(uid)
            .is_some_and(|at| *at <= Instant::now());
        if record.applied_generation < record.work.metadata.generation
            || drift_check_due
            || reapply_due
        {
            // Interrupted before or during apply (e.g. a crash): finish it. Or a
            // periodic re-apply corrects drift on the cluster (unchanged objects are not
            // written again).
            let work = record.work.clone();
            tracing::debug!(%uid, drift_check_due, "re-applying");
            self.apply(work).await;
            return;
        }
        let mut outcome = self
            .reconciler
            .refresh(&record.work, &record.state, Time::now())
            .await;
        let requeue_after = outcome.requeue_after;
        let watch = std::mem::take(&mut outcome.watch);
        let reapply_after = outcome.reapply_after;
        let changed =
            outcome.status != record.state.status || outcome.applied != record.state.applied;
        if reapply_after.is_some() {
            // Only ever asks (an AppliedManifestWork deleted out of band); a pending
            // retry is not cancelled by a refresh.
            self.set_reapply(uid, reapply_after);
        }
        if let Some(r) = self.works.get_mut(uid) {
            r.state = outcome.into_state();
        }
        if changed {
            self.persist(uid);
        }
        self.watch(uid, watch).await;
        self.schedule(uid, requeue_after);
        self.queue_status(uid, Action::UpdateRequest);
    }

    /// One step of the deletion flow (§6.5): clean up; once everything is gone, send the
    /// final status with `Deleted` and forget the work when the broker acknowledged it.
    async fn step_deletion(&mut self, uid: &str) {
        let Some(record) = self.works.get(uid) else {
            return;
        };
        let now = Time::now();
        let outcome = self.reconciler.cleanup(&record.work, &record.state).await;
        self.watch(uid, Vec::new()).await; // nothing of a deleted work is watched
        self.reapply_due.remove(uid);
        let cluster = self.config.cluster_name.clone();
        let Some(r) = self.works.get_mut(uid) else {
            return;
        };
        match outcome {
            CleanupOutcome::Pending {
                remaining,
                requeue_after,
            } => {
                r.state.applied = remaining;
                set_condition(
                    &mut r.state.status.conditions,
                    crate::conditions::deleting_condition(r.work.metadata.generation, now),
                    now,
                );
                self.persist(uid);
                self.schedule(uid, Some(requeue_after));
                self.queue_status(uid, Action::UpdateRequest);
            }
            CleanupOutcome::Done => {
                r.state.applied.clear();
                r.work
                    .metadata
                    .remove_finalizer(workbus_schemas::work::meta::FINALIZER_MANIFEST_WORK_CLEANUP);
                set_condition(
                    &mut r.state.status.conditions,
                    deleted_condition(&cluster, now),
                    now,
                );
                tracing::info!(cluster = %cluster, work = %r.work.metadata.name, "work deleted: its resources are gone");
                self.persist(uid);
                self.due.remove(uid);
                self.queue_status(uid, Action::UpdateRequest);
            }
        }
    }

    /// Sets the work's timer: the next status sync (jittered), sooner when the status
    /// may change earlier (`requeue_after`) or a re-apply falls due earlier.
    fn schedule(&mut self, uid: &str, requeue_after: Option<Duration>) {
        let now = Instant::now();
        let sync = self.jitter.wait(
            self.config.status_sync_interval,
            self.config.status_sync_jitter,
        );
        let mut at = now + requeue_after.unwrap_or(sync).min(sync);
        if let Some(reapply) = self.reapply_due.get(uid) {
            at = at.min((*reapply).max(now));
        }
        self.due.insert(uid.to_string(), at);
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        if self.next_sweep <= now {
            self.sweep_applied_works().await;
        }
        if let Some(l) = &mut self.lifecycle
            && l.next_due().is_some_and(|at| at <= now)
        {
            let steps = l.on_timer(now, chrono::Utc::now());
            self.run_lifecycle_steps(steps).await;
        }
        let ready: Vec<String> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in ready {
            self.due.remove(&uid);
            let deleting = self
                .works
                .get(&uid)
                .is_some_and(|r| r.work.metadata.deletion_timestamp.is_some());
            if deleting {
                if self.is_deleted(&uid) {
                    // Final status not yet acknowledged: it is queued; nothing to do.
                    continue;
                }
                self.step_deletion(&uid).await;
            } else {
                self.refresh(&uid).await;
            }
        }
    }

    /// A registration event (ManagedCluster, lease, CSR) from the hub.
    async fn on_registration_event(&mut self, event: &workbus_schemas::Event) {
        let decoded = match decode_registration_event(event) {
            Ok(d) => d,
            Err(e) => {
                bump(&self.stats.malformed);
                tracing::warn!(error = %e, "dropping a registration event");
                return;
            }
        };
        let Some(l) = &mut self.lifecycle else { return };
        let steps = l.on_event(decoded, Instant::now(), chrono::Utc::now());
        self.run_lifecycle_steps(steps).await;
    }

    /// Carries out what the lifecycle asked for, the target's facts included.
    async fn run_lifecycle_steps(&mut self, steps: Vec<LifecycleStep>) {
        let mut pending = steps;
        while !pending.is_empty() {
            let mut next = Vec::new();
            for step in pending {
                match step {
                    LifecycleStep::ReadClusterInfo => {
                        let info = self.reconciler.target().cluster_info().await;
                        if let Some(l) = &mut self.lifecycle
                            && let Some(step) = l.report_status(&info, chrono::Utc::now())
                        {
                            next.push(step);
                        }
                    }
                    other => self.lifecycle_steps(vec![other]),
                }
            }
            pending = next;
        }
    }

    /// Publishes the lifecycle's messages and applies a rotated identity (the steps that
    /// need no target call).
    fn lifecycle_steps(&mut self, steps: Vec<LifecycleStep>) {
        for step in steps {
            match step {
                LifecycleStep::Publish(key, message) => {
                    self.outgoing.request(OutgoingItem {
                        key: key.to_string(),
                        message,
                        hash: String::new(),
                    });
                }
                LifecycleStep::ReadClusterInfo => {
                    // Needs the target: taken up at the next timer (now).
                    if let Some(l) = &mut self.lifecycle {
                        l.status_now(Instant::now());
                    }
                }
                LifecycleStep::Rotate(rotated) => self.rotate(rotated),
            }
        }
    }

    /// Asks the loop to reconnect (the transport reads the identity files again).
    fn reconnect_with_identity(&mut self) {
        self.reconnect_requested = true;
    }

    /// Stores a rotated certificate and reconnects with it.
    fn rotate(&mut self, rotated: Rotated) {
        let Some(registration) = &self.config.registration else {
            return;
        };
        let dir = registration.identity_dir.clone();
        let stored = dir
            .store(&rotated.key_pem, &rotated.cert_pem, None)
            .and_then(|()| dir.load(&self.config.cluster_name, std::time::SystemTime::now()));
        match stored {
            Ok(Some(identity)) => {
                tracing::info!(cluster = %self.config.cluster_name, serial = %identity.serial, "client certificate rotated; reconnecting with it");
                if let Some(l) = &mut self.lifecycle {
                    l.rotated(identity, Instant::now(), std::time::SystemTime::now());
                }
                self.reconnect_with_identity();
            }
            Ok(None) => {
                tracing::error!(cluster = %self.config.cluster_name, "the rotated certificate does not fit its key or cluster; keeping the current one")
            }
            Err(e) => {
                tracing::error!(cluster = %self.config.cluster_name, error = %e, "cannot store the rotated certificate; keeping the current one")
            }
        }
    }

    /// Evicts AppliedManifestWorks whose works this agent no longer holds (§6).
    async fn sweep_applied_works(&mut self) {
        let held: BTreeSet<String> = self
            .works
            .values()
            .map(|r| r.work.metadata.name.clone())
            .collect();
        let again = self
            .reconciler
            .sweep_applied_works(&held, Time::now(), self.config.eviction_grace_period)
            .await;
        self.next_sweep = Instant::now() + again;
    }

    fn is_deleted(&self, uid: &str) -> bool {
        self.works
            .get(uid)
            .is_some_and(|r| workbus_schemas::metadata::is_deleted(&r.state.status))
    }

    /// Queues the work's status when it differs from what was last queued (and is still
    /// waiting) or reported; a resync response always.
    fn queue_status(&mut self, uid: &str, action: Action) {
        let Some(record) = self.works.get(uid) else {
            return;
        };
        if record.state.status.conditions.is_empty()
            && record.state.status.resource_status.manifests.is_empty()
        {
            return; // nothing observed yet
        }
        let hash = status_hash(&record.state.status);
        let waiting = self.outgoing.newest_hash(uid);
        let last = waiting.as_deref().unwrap_or(record.reported_hash.as_str());
        if action == Action::UpdateRequest && hash == last {
            return;
        }
        match status_message(
            &self.config,
            record,
            &record.state.status,
            action.clone(),
            &mut self.sequence,
        ) {
            Ok(built) => {
                if let Some(r) = self.works.get_mut(uid) {
                    r.last_sequence_id.clone_from(&built.sequence_id);
                }
                bump(&self.stats.status_queued);
                self.status_actions.insert(uid.to_string(), action);
                let queued =
                    self.outgoing
                        .status(uid, built.hash, built.sequence_id, built.message);
                self.count_queued(queued);
            }
            Err(e) => tracing::error!(error = %e, "cannot build status event for {uid}"),
        }
    }

    /// Counts what queueing a status did to the outbox.
    fn count_queued(&mut self, queued: crate::outgoing::Queued) {
        for e in queued.store_errors {
            bump(&self.stats.store_errors);
            tracing::error!(error = %e, "cannot store the status outbox; the status stays queued in memory");
        }
        for (uid, tier) in queued.dropped {
            if tier == DroppedAs::Final {
                bump(&self.stats.outbox_compacted_finals);
                self.finals_dropped.insert(uid);
            } else {
                bump(&self.stats.outbox_compacted);
            }
        }
        self.stats
            .outbox_statuses
            .store(self.outgoing.statuses_waiting() as u64, Ordering::Relaxed);
    }

    /// Counts an acknowledged ManifestWork event in `cloudevents_sent_total`.
    fn count_sent(&self, sub_resource: SubResource, action: Action) {
        let ty = workbus_schemas::event_type::EventType::manifest_bundles(sub_resource, action);
        self.stats.events_sent.count(
            &self.config.agent_id,
            &self.config.cluster_name,
            &ty.to_string(),
        );
    }

    fn on_delivered(&mut self, d: Delivered) {
        if d.key == RESYNC_KEY {
            self.count_sent(SubResource::Spec, Action::ResyncRequest);
            if !self.resync_awaits_reply {
                self.stats.resynced.store(true, Ordering::Relaxed);
            }
            return;
        }
        if lifecycle_keys::is_lifecycle(&d.key) {
            return;
        }
        bump(&self.stats.status_sent);
        // The action of the work's latest queued status (statuses are update requests
        // but for the agent's own deletions; an older one delivered late counts as it).
        let action = self
            .status_actions
            .get(&d.key)
            .cloned()
            .unwrap_or(Action::UpdateRequest);
        self.count_sent(SubResource::Status, action);
        self.record_delivery(d);
        let waiting = self.outgoing.statuses_waiting();
        self.stats
            .outbox_statuses
            .store(waiting as u64, Ordering::Relaxed);
        if waiting == 0 && !self.finals_dropped.is_empty() {
            // The outbox drained: the final states it had to drop go out now, from the
            // store (queue_status skips those reported meanwhile).
            for uid in std::mem::take(&mut self.finals_dropped) {
                self.queue_status(&uid, Action::UpdateRequest);
            }
        }
    }

    /// Records a delivered status: the reported hash, or the end of a deleted work.
    fn record_delivery(&mut self, d: Delivered) {
        let deleted = self.is_deleted(&d.key);
        if let Some(r) = self.works.get_mut(&d.key) {
            if status_hash(&r.state.status) != d.hash {
                return; // superseded meanwhile; the newer one is queued
            }
            r.reported_hash = d.hash;
        }
        if deleted {
            self.works.remove(&d.key);
            self.status_actions.remove(&d.key);
            self.next_apply.remove(&d.key);
            self.reapply_due.remove(&d.key);
            self.due.remove(&d.key);
            bump(&self.stats.deleted);
            if let Err(e) = self.store.remove(&d.key) {
                bump(&self.stats.store_errors);
                tracing::error!(error = %e, "cannot remove work {}", d.key);
            }
        } else {
            self.persist(&d.key);
        }
    }

    /// Answers a status resync request from the store (§6.3).
    fn on_status_resync(&mut self, event: &workbus_schemas::Event) {
        bump(&self.stats.status_resyncs);
        // A source sends this after it (re)subscribes. A spec resync request we sent
        // while it was away (a hub restart) was dropped by the broker, and the source
        // itself only asks for statuses: ask again, unless a digest source already
        // answered our last request (an OCM source never says, so it is always asked).
        if self.spec_resync_unanswered || !self.digest_sources.contains(event.source()) {
            tracing::debug!(
                source = event.source(),
                "source (re)subscribed; asking again for specs"
            );
            self.send_spec_resync(self.resync_form());
        }
        let request: StatusResyncRequest = match envelope::json_data(event)
            .map(serde_json::from_value)
            .transpose()
        {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                bump(&self.stats.malformed);
                tracing::warn!(error = %e, "bad status resync request");
                return;
            }
        };
        let hashes: Vec<(String, String)> = self
            .works
            .values()
            .map(|r| (r.uid().to_string(), status_hash(&r.state.status)))
            .collect();
        if !self.config.resync_digest {
            // Exactly the upstream protocol: the extension is not looked at.
        } else if let Some(theirs) = resync_digest::digest_of(event) {
            // A workbus source sends the digest of what it holds: equal to ours means
            // nothing differs, so nothing is sent (resync_digest module). It also
            // advertises that the source understands digests.
            self.learn_digest_source(event.source(), true);
            let ours =
                resync_digest::status_digest(hashes.iter().map(|(u, h)| (u.as_str(), h.as_str())));
            if ours == theirs {
                bump(&self.stats.status_resyncs_unchanged);
                return;
            }
        } else {
            // Every source sends this after it (re)subscribes; one without the digest does
            // not (or no longer) understand it.
            self.learn_digest_source(event.source(), false);
        }
        let send = status_resync_answer(
            &request,
            hashes.iter().map(|(u, h)| (u.as_str(), h.as_str())),
        );
        tracing::info!(cluster = %self.config.cluster_name, source = event.source(), works = hashes.len(), sending = send.len(), "status resync: sending the statuses the source lacks");
        let current: HashMap<&str, &str> = hashes
            .iter()
            .map(|(u, h)| (u.as_str(), h.as_str()))
            .collect();
        for uid in send {
            let hash = current.get(uid.as_str()).copied();
            if hash.is_some() && self.outgoing.newest_hash(&uid).as_deref() == hash {
                // Its current status is in the outbox already: that answers the source,
                // a second event for the same status would not.
                continue;
            }
            self.queue_status(&uid, Action::ResyncResponse);
        }
    }
}

/// One line per applied generation: INFO when the work is `Applied`, WARN with the
/// condition's reason and message when it is not.
fn log_applied(cluster: &str, record: &WorkRecord) {
    let (work, generation) = (&record.work.metadata.name, record.work.metadata.generation);
    let applied = record
        .state
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition_type::APPLIED);
    match applied {
        Some(c) if c.status == condition_status::TRUE => {
            tracing::info!(%cluster, %work, generation, "work applied");
        }
        Some(c) => {
            tracing::warn!(%cluster, %work, generation, reason = %c.reason, message = %c.message, "work not applied");
        }
        None => {
            tracing::warn!(%cluster, %work, generation, "work not applied: no Applied condition")
        }
    }
}

/// A uid as logged: at most 64 characters (a hostile one may be kilobytes long).
fn cut_uid(uid: &str) -> &str {
    uid.char_indices().nth(64).map_or(uid, |(i, _)| &uid[..i])
}
