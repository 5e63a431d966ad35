//! The records the [`Store`](super::Store) reads and writes: plain data, no I/O.
//!
//! A [`WorkRecord`] is the hub's own view of a ManifestWork (desired state plus the
//! latest accepted status); `api` turns it into the kubectl-shaped `ManifestWork` and
//! `source::spec_events` into the wire spec event.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use workbus_schemas::Event;
use workbus_schemas::mqtt::MqttMessage;
use workbus_schemas::work::{ManifestWorkSpec, ManifestWorkStatus};

/// A managed cluster (OCM: consumer).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Its name: the works' namespace and a topic segment.
    pub name: String,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// When it was registered.
    pub created: DateTime<Utc>,
    /// When an event from it last arrived.
    pub last_heard: Option<DateTime<Utc>>,
    /// Its registration state when it joined over the bus; `None` for a cluster created
    /// over REST (which counts as accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<super::registration::Registration>,
}

/// Address of a work: cluster (namespace) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorkKey {
    /// The cluster (ManifestWork namespace).
    pub cluster: String,
    /// The ManifestWork name.
    pub name: String,
}

/// What a user asked for: the desired state of one work.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredWork {
    /// Where it goes.
    pub key: WorkKey,
    /// Its uid (`resource_id::work_resource_id(source, cluster, name)`).
    pub uid: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec`.
    pub spec: ManifestWorkSpec,
}

/// The latest accepted status of a work.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStatus {
    /// The status in the API shape.
    pub status: ManifestWorkStatus,
    /// The generation it is for (the event's `resourceversion`).
    pub generation: i64,
    /// The agent's `sequenceid`.
    pub sequence_id: String,
    /// The agent's `statushash`, sent back in status resync requests.
    pub status_hash: Option<String>,
    /// When the hub received it.
    pub received: DateTime<Utc>,
}

/// A stored work.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkRecord {
    /// uid (the wire `resourceid`).
    pub uid: String,
    /// cluster and name.
    pub key: WorkKey,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec`.
    pub spec: ManifestWorkSpec,
    /// +1 per spec/label/annotation change; also the `resourceVersion`. Starts at 1, or
    /// for a work re-created under a name (hence uid) used before, one above the last
    /// generation of its predecessor: a generation names one incarnation.
    pub generation: i64,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Last change time.
    pub updated: DateTime<Utc>,
    /// Set once a delete was accepted; the row goes when the agent confirms.
    pub deletion: Option<DateTime<Utc>>,
    /// The latest accepted status.
    pub status: Option<StoredStatus>,
}

/// A work waiting for its agent's deletion confirmation (see `source::redrive`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeletion {
    /// Its uid.
    pub uid: String,
    /// When the deletion was requested (the work's `deletion`).
    pub requested: DateTime<Utc>,
}

/// Result of [`Store::apply_work`](super::Store::apply_work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// A new work (generation 1).
    Created,
    /// The generation was raised.
    Updated,
    /// Nothing changed; nothing was queued.
    Unchanged,
}

impl ApplyOutcome {
    /// `created`, `updated` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Updated => "updated",
            ApplyOutcome::Unchanged => "unchanged",
        }
    }
}

/// Filter and page of a work listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkFilter {
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Every label must equal (`k=v,k2=v2`).
    pub labels: Vec<(String, String)>,
    /// Start strictly after this key (pagination).
    pub after: Option<WorkKey>,
    /// Page size.
    pub limit: usize,
}

/// A received status, decoded, as the acceptance rule needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingStatus {
    /// The `resourceid`.
    pub uid: String,
    /// The `clustername` the agent sent (must match the work's).
    pub cluster: Option<String>,
    /// The `resourceversion`.
    pub generation: i64,
    /// The `sequenceid`.
    pub sequence_id: String,
    /// The `statushash`.
    pub status_hash: Option<String>,
    /// The status.
    pub status: ManifestWorkStatus,
    /// Whether it carries `Deleted=True`.
    pub deleted: bool,
    /// Receive time (the hub's clock): the `now` of the acceptance rule.
    pub received: DateTime<Utc>,
}

/// What [`Store::ingest_status`](super::Store::ingest_status) did.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusOutcome {
    /// Stored; the work as it is now.
    Accepted(Box<WorkRecord>),
    /// `Deleted=True`: the work row is gone (this was its last state).
    Deleted(Box<WorkRecord>),
    /// Dropped; the reason is a metric label (`unknown_work`, `stale_generation`, ...).
    Dropped(DropReason),
}

/// Why a status was dropped. [`DropReason::as_str`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// No work with this uid.
    UnknownWork,
    /// The agent's `clustername` differs from the work's cluster.
    ClusterMismatch,
    /// `resourceversion` is not the current generation.
    StaleGeneration,
    /// The sequence id is not newer (duplicate or older).
    NotNewer,
    /// The sequence ids cannot be compared (bad text, different snowflake node).
    BadSequenceId,
    /// A `Deleted` status for a work the hub has not asked to delete (a late or
    /// redelivered confirmation of an earlier incarnation with the same uid).
    NotDeleting,
    /// The sequence id's time is implausibly ahead of the hub's clock (see
    /// `store::rules::status::MAX_SEQUENCE_ID_SKEW`).
    FutureSequenceId,
}

impl DropReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownWork => "unknown_work",
            DropReason::ClusterMismatch => "cluster_mismatch",
            DropReason::StaleGeneration => "stale_generation",
            DropReason::NotNewer => "not_newer",
            DropReason::BadSequenceId => "bad_sequence_id",
            DropReason::NotDeleting => "not_deleting",
            DropReason::FutureSequenceId => "future_sequence_id",
        }
    }
}

/// The MQTT message that carries a queued event, made when the event was queued (so
/// publishing sends stored bytes), and which wire format made it: topic layout, source
/// id and encoding (see `outbox::WireFormat::fingerprint`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedMessage {
    /// The message, checked against the MQTT limits when it was made.
    pub message: MqttMessage,
    /// The fingerprint of the wire format that made it.
    pub wire: String,
}

/// An event on its way out: the full event (the outbox row keeps it for the audit log)
/// and the message that carries it — `None` when it cannot be made, which the
/// publisher then finds out again and parks the row for.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The event.
    pub event: Event,
    /// Its message, ready to publish.
    pub message: Option<QueuedMessage>,
}

impl From<Event> for Outgoing {
    /// An event without its message: the publisher makes it (tests, tools).
    fn from(event: Event) -> Self {
        Outgoing {
            event,
            message: None,
        }
    }
}

/// An event to queue for publishing.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    /// The target cluster (`clustername`).
    pub cluster: String,
    /// The `resourceid`, when the event is about one work.
    pub resource_id: Option<String>,
    /// The event (kept for the `sent` audit row).
    pub event: Event,
    /// Its MQTT message, ready to publish (see [`QueuedMessage`]).
    pub message: Option<QueuedMessage>,
    /// Who caused it: the API token's name for a user's change, `None` for the hub's own
    /// events (resync answers, re-driven deletions). Copied to the `sent` audit row.
    pub actor: Option<String>,
}

impl NewOutbox {
    /// Queues `outgoing` for `cluster` (and work `resource_id`).
    pub fn new(
        cluster: impl Into<String>,
        resource_id: Option<String>,
        outgoing: Outgoing,
    ) -> Self {
        NewOutbox {
            cluster: cluster.into(),
            resource_id,
            event: outgoing.event,
            message: outgoing.message,
            actor: None,
        }
    }
}

/// What a pending outbox row gives the publisher.
// Entries live in one batch at a time (a few hundred); boxing would cost an
// allocation per row for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum OutboxPayload {
    /// The message made when the event was queued, by the wire format the publisher
    /// asked for: sent as it is.
    Message(MqttMessage),
    /// The event, for rows queued without a message or under another wire format (the
    /// publisher makes the message now), or why the stored JSON no longer decodes (the
    /// publisher then parks the row, leaving it in place for inspection).
    Event(Result<Event, String>),
}

/// A queued event (pending, or inside a [`ParkedOutbox`]).
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Queue position (strictly increasing).
    pub id: i64,
    /// The target cluster.
    pub cluster: String,
    /// The `resourceid`, if any.
    pub resource_id: Option<String>,
    /// The CloudEvent `type`, as stored.
    pub event_type: String,
    /// What to publish.
    pub payload: OutboxPayload,
    /// Failed publish attempts so far.
    pub attempts: i64,
}

impl OutboxEntry {
    /// The event, when the row was read with it (parked rows always are).
    pub fn event(&self) -> Option<&Result<Event, String>> {
        match &self.payload {
            OutboxPayload::Event(event) => Some(event),
            OutboxPayload::Message(_) => None,
        }
    }
}

/// A parked event: one that can never be published as it is (see `outbox`), kept out
/// of the pending queue with the reason until a newer event of the same work supersedes
/// it.
#[derive(Debug, Clone)]
pub struct ParkedOutbox {
    /// The row (its payload is the event, or why the stored JSON does not decode).
    pub entry: OutboxEntry,
    /// Why it cannot be published.
    pub reason: String,
    /// When it was queued.
    pub created: DateTime<Utc>,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

/// Direction of an audited event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditDirection {
    /// Published by the hub (after the broker acknowledged it).
    Sent,
    /// Received from an agent.
    Received,
    /// A change made through the API (or the CLI's `--offline` commands), with its actor.
    Api,
    /// The hub's own record: a checkpoint, a retention cut, a placement or rollout
    /// transition.
    Internal,
}

impl AuditDirection {
    /// `sent`, `received`, `api` or `internal` (also the stored text).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDirection::Sent => "sent",
            AuditDirection::Received => "received",
            AuditDirection::Api => "api",
            AuditDirection::Internal => "internal",
        }
    }

    /// The direction named `s`, if any.
    pub fn parse(s: &str) -> Option<AuditDirection> {
        match s {
            "sent" => Some(AuditDirection::Sent),
            "received" => Some(AuditDirection::Received),
            "api" => Some(AuditDirection::Api),
            "internal" => Some(AuditDirection::Internal),
            _ => None,
        }
    }
}

/// A filter and page of the audit log (`audit log`, `verify`, `export`): every field
/// set must match; records come in chain order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Only records with a sequence number above this one (paging, `--watch`).
    pub after_seq: Option<u64>,
    /// Only records with a sequence number up to this one.
    pub to_seq: Option<u64>,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this work (`resourceid`).
    pub resource_id: Option<String>,
    /// Only this CloudEvent type.
    pub event_type: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this direction.
    pub direction: Option<AuditDirection>,
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only records before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
}

/// One audit row.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// When it was sent/received.
    pub at: DateTime<Utc>,
    /// Direction.
    pub direction: AuditDirection,
    /// The cluster, when known.
    pub cluster: Option<String>,
    /// The `resourceid`, when present.
    pub resource_id: Option<String>,
    /// The CloudEvent `type`.
    pub event_type: String,
    /// The full event.
    pub event: Event,
    /// Who caused a `sent` event (the API token's name; see [`NewOutbox::actor`]);
    /// `None` for received events and the hub's own.
    pub actor: Option<String>,
}

/// What an API token may do (see `auth::policy` for the rule per route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET and watch.
    Reader,
    /// A reader that also creates, changes and deletes works and clusters.
    Writer,
    /// Everything, token management included.
    Admin,
}

impl Role {
    /// `reader`, `writer` or `admin` (also the stored text).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    /// The role named `s`, if any.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "writer" => Some(Role::Writer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// One entry of a token's scope. An enum (stored as `{"cluster": "edge-1"}`) so that
/// cluster sets, which arrive with a later issue, become one more variant
/// (`{"clusterSet": "..."}`) without a change of the stored shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScopeEntry {
    /// One managed cluster, by name.
    Cluster(String),
}

/// An API token as stored: never the secret, only its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    /// Its unique name: the actor recorded for what it changes.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret (see `auth::secret`).
    #[serde(skip)]
    pub hash: String,
    /// What it may do.
    pub role: Role,
    /// The clusters it may touch; `None` = every cluster.
    pub scope: Option<Vec<ScopeEntry>>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Who created it (a token name, or `offline` for the data-directory commands).
    pub created_by: String,
}
