//! The hub as an OCM CloudEvents *source* (reference §4–7): the loop over transport
//! events.
//!
//! - `Subscribed` (first connect and every reconnect): queue a status resync request
//!   per known cluster ([`resync::status_resync_requests`]), and have every deletion
//!   still awaiting its agent's confirmation published again ([`redrive`], which also
//!   re-drives each one on a bounded backoff while the hub runs).
//! - a message: decode (`mqtt::decode`; malformed → counted, logged, dropped), audit,
//!   then dispatch on the type: a spec `resync_request` is answered
//!   ([`resync::spec_resync_answer_events`]), a status event goes through the
//!   acceptance rule ([`crate::store::rules::status`]) in the store; a registration
//!   data type (ManagedCluster, CSR, Lease) goes to [`registration`]; anything else is
//!   counted and dropped.
//!
//! Outgoing events never go to the broker from here: they are queued in the outbox
//! (see `outbox`) like every other event.

pub mod admission;
pub mod health;
pub mod publisher;
pub mod rate_limit;
pub mod redrive;
pub mod registration;
pub mod resync;
pub mod spec_events;
pub mod status;

use std::sync::Arc;

use chrono::Utc;
use cloudevents::AttributesReader;
use tokio::sync::{Notify, mpsc, watch};
use workbus_schemas::Event;
use workbus_schemas::acl::Identity;
use workbus_schemas::envelope::{decode_event_type, json_data};
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::extensions::OcmExtensions;
use workbus_schemas::mqtt::{self, MqttMessage};
use workbus_schemas::resync::SpecResyncRequest;
use workbus_schemas::topics::{self, SegmentKind};
use workbus_transport::TransportEvent;

use crate::metrics::Metrics;
use crate::outbox::WireFormat;
use crate::store::writes::{AuditReceived, Enqueue};
use crate::store::{AuditDirection, AuditEntry, NewOutbox, StoreHandle};
use crate::watch::Watchers;
use status::QueuedStatus;

/// The shared state of the source side.
#[derive(Clone)]
pub struct SourceLoop {
    /// The store.
    pub store: StoreHandle,
    /// Our source id.
    pub source_id: String,
    /// Wakes the outbox publisher.
    pub outbox: Arc<Notify>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// REST watchers.
    pub watchers: Watchers,
    /// Counts completed (re)subscriptions; readiness for tests and health checks.
    pub subscriptions: Arc<tokio::sync::watch::Sender<u64>>,
    /// Bounds the spec resync requests answered at once.
    pub resync_slots: Arc<tokio::sync::Semaphore>,
    /// Clusters whose agent advertised resync digests.
    pub digest_clusters: resync::DigestClusters,
    /// How queued events become MQTT messages (made when they are queued).
    pub wire: Arc<WireFormat>,
    /// Per-cluster rate limits of statuses and spec resync requests.
    pub limits: Arc<rate_limit::ClusterLimits>,
    /// Whether messages' publisher stamps are the broker's word
    /// ([`crate::config::RegistrationSettings::trust_publisher_stamps`]).
    pub trust_publisher_stamps: bool,
    /// Cluster registration: echoes, the CA, the clock, cluster watchers.
    pub registration: registration::RegistrationContext,
}

/// Spec resync requests answered concurrently (each is one read and one queued write).
pub const RESYNC_SLOTS: usize = 64;

/// An audit row for a received event.
pub(crate) fn received_audit(event: &Event) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        direction: AuditDirection::Received,
        cluster: event.cluster_name().ok().flatten().map(str::to_string),
        resource_id: event.resource_id().ok().map(str::to_string),
        event_type: event.ty().to_string(),
        event: event.clone(),
        actor: None,
    }
}

impl SourceLoop {
    /// Consumes transport events until the transport closes.
    pub async fn run(self, mut events: mpsc::Receiver<TransportEvent>) {
        // Statuses are queued for group commit in arrival order; their outcomes are
        // handled by one task, in the same order (see `status`).
        let (statuses, outcomes) = mpsc::channel(crate::store::group_commit::QUEUE);
        tokio::spawn(self.clone().finish_statuses(outcomes));
        // The re-drive stops when `link` goes, i.e. with this loop.
        let (link, link_rx) = watch::channel(redrive::Link::Down);
        tokio::spawn(redrive::run(self.clone(), link_rx));
        while let Some(ev) = events.recv().await {
            match ev {
                TransportEvent::Subscribed => {
                    tracing::info!("subscribed; requesting status resync from every cluster");
                    self.request_status_resync().await;
                    link.send_replace(redrive::Link::Subscribed);
                    self.subscriptions.send_modify(|n| *n += 1);
                }
                TransportEvent::Message(message) => self.handle_message(message, &statuses).await,
                TransportEvent::Disconnected(reason) => {
                    link.send_replace(redrive::Link::Down);
                    tracing::warn!(%reason, "broker connection lost; reconnecting");
                }
            }
        }
    }

    /// Queues a status resync request per known cluster.
    pub async fn request_status_resync(&self) {
        let source_id = self.source_id.clone();
        let digest_clusters = self.digest_clusters.clone();
        let wire = self.wire.clone();
        let result = self
            .store
            .run(move |s| {
                let now = Utc::now();
                let mut events = Vec::new();
                for cluster in s.list_clusters()? {
                    if topics::validate_segment(SegmentKind::ClusterName, &cluster.name).is_err() {
                        continue; // registered before validation existed; cannot be addressed
                    }
                    let works = s.works_of_cluster(&cluster.name)?;
                    let requests = resync::status_resync_requests(
                        &source_id,
                        &cluster.name,
                        &works,
                        digest_clusters.contains(&cluster.name),
                        now,
                    );
                    events.extend(requests.into_iter().map(|e| wire.ready(e)));
                }
                let n = events.len();
                s.write(Enqueue { events, now })?;
                Ok(n)
            })
            .await;
        match result {
            Ok(n) => {
                tracing::debug!(events = n, "status resync requests queued");
                self.outbox.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "cannot queue status resync requests"),
        }
    }

    async fn handle_message(&self, message: MqttMessage, statuses: &mpsc::Sender<QueuedStatus>) {
        let event = match mqtt::decode(&message) {
            Ok(e) => e,
            Err(e) => {
                self.metrics.dropped("malformed");
                tracing::warn!(topic = %message.topic, error = %e, "dropping malformed message");
                return;
            }
        };
        // The embedded broker names every publisher; elsewhere the property is the
        // client's own word and the topic alone identifies it.
        let publisher: Option<Identity> = if self.trust_publisher_stamps {
            match publisher::stamped_identity(message.publisher.as_deref()) {
                Ok(p) => p,
                Err(r) => return self.refuse(&event, r, &message.topic),
            }
        } else {
            None
        };
        if workbus_schemas::registration::registration_kind(&event).is_some() {
            return self
                .handle_registration(event, &message, publisher.as_ref())
                .await;
        }
        let ty = match decode_event_type(&event) {
            Ok(ty) if ty.data_type.is_manifest_bundles() => ty,
            Ok(ty) => {
                self.drop_and_audit(&event, "unsupported_type", &ty.to_string())
                    .await;
                return;
            }
            Err(e) => {
                self.drop_and_audit(&event, "unsupported_type", &e.to_string())
                    .await;
                return;
            }
        };
        self.metrics
            .received(event.ty(), event.cluster_name().ok().flatten());
        match (ty.sub_resource, &ty.action) {
            (SubResource::Spec, Action::ResyncRequest) => {
                let cluster = match admission::claimed_cluster(
                    &message.topic,
                    event.cluster_name().ok().flatten(),
                    false,
                ) {
                    Ok(c) => c.to_string(),
                    Err(reason) => return self.refuse(&event, reason, &message.topic),
                };
                if let Err(r) = publisher::admit_publisher(
                    publisher::Sent::WorkResync,
                    &cluster,
                    publisher.as_ref(),
                ) {
                    return self.refuse(&event, r, &message.topic);
                }
                // Answered off the loop (a reconnecting fleet sends thousands at once
                // and statuses must not queue behind them), a bounded number at a time.
                let Ok(permit) = self.resync_slots.clone().acquire_owned().await else {
                    return;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    this.answer_spec_resync(event, cluster).await;
                    drop(permit);
                });
            }
            (SubResource::Status, Action::ResyncRequest) => {
                // Only agents answer status resync requests.
                self.drop_and_audit(&event, "unexpected_type", "status resync request")
                    .await;
            }
            (SubResource::Status, _) => {
                let claimed = event.cluster_name().ok().flatten().unwrap_or_default();
                if let Err(r) = publisher::admit_publisher(
                    publisher::Sent::WorkStatus,
                    claimed,
                    publisher.as_ref(),
                ) {
                    return self.refuse(&event, r, &message.topic);
                }
                let size = admission::message_size(&message);
                self.handle_status(event, &message.topic, size, statuses)
                    .await
            }
            (SubResource::Spec, _) => {
                self.drop_and_audit(&event, "unexpected_type", "spec event from an agent")
                    .await;
            }
        }
    }

    /// Refuses a received event (`admission`): counted and logged, never audited. A
    /// rate-limit refusal is logged at the 1st, 2nd, 4th, 8th… of its kind only, so a
    /// flood cannot flood the log too.
    pub(crate) fn refuse(&self, event: &Event, reason: admission::Refusal, topic: &str) {
        self.metrics.refused(reason.as_str());
        let count = self.metrics.refused_count(reason.as_str());
        if reason.is_rate_limit() && !count.is_power_of_two() {
            return;
        }
        tracing::warn!(
            count,
            id = event.id(),
            ty = event.ty(),
            topic,
            cluster = event.cluster_name().ok().flatten().unwrap_or_default(),
            reason = reason.as_str(),
            "refusing received event: {reason}"
        );
    }

    /// Records a received event we do not act on, counting why. The audit row keeps
    /// the event's attributes but not its data: a dropped event's payload is not
    /// worth disk space an attacker could fill.
    pub(crate) async fn drop_and_audit(&self, event: &Event, reason: &'static str, detail: &str) {
        self.metrics.dropped(reason);
        tracing::warn!(
            id = event.id(),
            ty = event.ty(),
            reason,
            detail,
            "dropping received event"
        );
        let mut stripped = event.clone();
        stripped.take_data();
        self.audit(&stripped).await;
    }

    /// Queues the audit row of a received event (group-committed, in arrival order);
    /// a failure is logged when the commit reports it.
    pub(crate) async fn audit(&self, event: &Event) {
        let pending = self
            .store
            .submit(AuditReceived(received_audit(event)))
            .await;
        tokio::spawn(async move {
            if let Err(e) = pending.outcome().await {
                tracing::error!(error = %e, "cannot write the audit row of a received event");
            }
        });
    }

    async fn answer_spec_resync(&self, event: Event, cluster: String) {
        let arrived = std::time::Instant::now();
        let registered = {
            let cluster = cluster.clone();
            self.store.run(move |s| s.get_cluster(&cluster)).await
        };
        match registered {
            Ok(Some(_)) => {}
            Ok(None) => {
                return self.refuse(&event, admission::Refusal::UnregisteredCluster, "");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot look up the cluster of a spec resync request");
                return;
            }
        }
        if !self.limits.admit_resync(&cluster) {
            return self.refuse(&event, admission::Refusal::ResyncRateLimited, "");
        }
        let request: SpecResyncRequest = match json_data(&event).map(serde_json::from_value) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                self.drop_and_audit(&event, "malformed_payload", &e.to_string())
                    .await;
                return;
            }
            None => {
                self.drop_and_audit(&event, "malformed_payload", "no JSON data")
                    .await;
                return;
            }
        };
        // A digest-only request has an empty list on purpose; the form decides.
        let form = resync::SpecRequestForm::of(&event, request);
        self.digest_clusters.note(&cluster, form.advertises());
        self.audit(&event).await;
        let works = {
            let cluster = cluster.clone();
            self.store.run(move |s| s.works_of_cluster(&cluster)).await
        };
        // Not atomic with the read, and need not be: a change committed in between
        // queues its own, newer event after this answer, and agents keep the newer
        // generation whatever order they see them in.
        let result = match works {
            Ok(works) => {
                let now = Utc::now();
                let (events, errors): (Vec<NewOutbox>, Vec<String>) =
                    resync::spec_resync_reply_events(&self.source_id, &cluster, &form, &works, now);
                let events: Vec<NewOutbox> =
                    events.into_iter().map(|e| self.wire.ready(e)).collect();
                let n = events.len();
                self.store
                    .write(Enqueue { events, now })
                    .await
                    .map(|_| (cluster, n, errors))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((cluster, n, errors)) => {
                for e in errors {
                    tracing::error!(%cluster, error = %e, "cannot build a spec resync answer");
                }
                tracing::info!(%cluster, answers = n, "spec resync answered");
                self.metrics.spec_resyncs_answered.inc();
                self.metrics
                    .spec_resync_seconds
                    .observe(arrived.elapsed().as_secs_f64());
                self.outbox.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "cannot answer a spec resync request"),
        }
    }
}
