//! What the hub can publish: the one place an event becomes the MQTT message the
//! outbox sends (publish topic, binary or structured encoding) and is checked against
//! MQTT's limits ([`workbus_schemas::mqtt::check_publishable`]).
//!
//! Messages are made when their event is queued ([`WireFormat::outgoing`], inside the
//! store transaction), stored with the format's [`fingerprint`](WireFormat::fingerprint)
//! and sent as stored; the outbox checks each against the limits again before the send
//! (and makes it again from the event if the hub now runs another format), so a message
//! that breaks a limit never reaches the MQTT client (which would corrupt or drop the
//! connection for everyone). The API runs [`WireFormat::check_work`] before accepting a change, on
//! the largest spec events that work can ever produce, so such a message is normally
//! refused at the door rather than parked later.
//!
//! Spec events are signed here ([`WireFormat::with_signer`], `workbus_schemas::signature`)
//! just before they are encoded, so every spec message the hub sends — changes,
//! deletes, resync answers — carries the signature, and the size checks measure it.

use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use workbus_schemas::Event;
use workbus_schemas::envelope::decode_event_type;
use workbus_schemas::event_type::{Action, EventType, EventTypeError, SubResource};
use workbus_schemas::extensions::{ExtensionError, OcmExtensions};
use workbus_schemas::mqtt::{
    self, EncodeError, Encoding, MessageLimitError, MqttMessage, PublishLimits,
};
use workbus_schemas::signature::{SignatureError, SigningKey};
use workbus_schemas::topics::{self, TopicError, Topics};
use workbus_transport::PublishError;

use crate::source::spec_events::spec_event;
use crate::store::{NewOutbox, Outgoing, QueuedMessage, WorkRecord};

/// The spec actions the hub publishes for a work (changes, deletes, resync answers).
const SPEC_ACTIONS: [Action; 4] = [
    Action::CreateRequest,
    Action::UpdateRequest,
    Action::DeleteRequest,
    Action::ResyncResponse,
];

/// Why an event can never be published as it is. Every variant is permanent: trying
/// again gives the same answer under the same configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unpublishable {
    /// The stored event JSON no longer decodes.
    #[error("the stored event does not decode: {0}")]
    Undecodable(String),
    /// The event cannot be built (e.g. a generation beyond the int32 range).
    #[error("cannot build the event: {0}")]
    Build(String),
    /// The `type` attribute does not parse.
    #[error("event type: {0}")]
    EventType(#[from] EventTypeError),
    /// The `clustername` extension is not a string.
    #[error("cluster name extension: {0}")]
    ClusterName(#[from] ExtensionError),
    /// No publish topic can be made for it (e.g. the cluster name is not a topic
    /// segment).
    #[error("topic: {0}")]
    Topic(#[from] TopicError),
    /// The event does not encode in the configured mode.
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
    /// The message breaks an MQTT limit.
    #[error("{0}")]
    Limit(#[from] MessageLimitError),
    /// The transport refused the message itself (its own checks disagree with ours).
    #[error("the transport refused it: {0}")]
    Transport(PublishError),
    /// The spec event cannot be signed (an extension the signature covers is unreadable).
    #[error("cannot sign: {0}")]
    Sign(#[from] SignatureError),
}

impl Unpublishable {
    /// True when the message is too large (packet or string size), rather than
    /// malformed: the API answers 413 for these and 422 for the rest.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Unpublishable::Limit(
                MessageLimitError::PacketTooLarge { .. } | MessageLimitError::StringTooLong { .. }
            ) | Unpublishable::Transport(PublishError::Unpublishable(
                MessageLimitError::PacketTooLarge { .. } | MessageLimitError::StringTooLong { .. }
            ))
        )
    }
}

/// Which of a work's future spec events [`WireFormat::check_work`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkEvents {
    /// Everything the work can produce from now on: updates and resync answers (with
    /// the bundle) and its delete (with a deletion timestamp).
    Lifetime,
    /// Only its delete (and the resync answers while it is deleting).
    Deletion,
}

/// How this hub turns events into MQTT messages, and the limits they must fit.
#[derive(Debug, Clone)]
pub struct WireFormat {
    topics: Topics,
    source_id: String,
    encoding: Encoding,
    limits: PublishLimits,
    fingerprint: String,
    signer: Option<Arc<SigningKey>>,
}

impl WireFormat {
    /// The hub's topic layout, source id, encoding and publish limits.
    pub fn new(
        topics: Topics,
        source_id: impl Into<String>,
        encoding: Encoding,
        limits: PublishLimits,
    ) -> Self {
        let source_id = source_id.into();
        // Everything that decides a message's topic and bytes (the limits only decide
        // whether it may be sent, and are checked again at every send).
        let described = format!("{encoding:?}\n{source_id}\n{topics:?}");
        let fingerprint = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, described.as_bytes());
        WireFormat {
            topics,
            source_id,
            encoding,
            limits,
            fingerprint: fingerprint.to_string(),
            signer: None,
        }
    }

    /// This format, signing every spec event with `key` before encoding it. The key
    /// id joins the fingerprint, so messages queued under another key are made again.
    pub fn with_signer(mut self, key: Arc<SigningKey>) -> Self {
        let described = format!("{}\nsigned by {}", self.fingerprint, key.key_id());
        self.fingerprint =
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, described.as_bytes()).to_string();
        self.signer = Some(key);
        self
    }

    /// The key spec events are signed with, if any.
    pub fn signer(&self) -> Option<&SigningKey> {
        self.signer.as_deref()
    }

    /// Names this format's topic layout, source id and encoding: a message queued under
    /// the same fingerprint is sent as stored, any other is made again from its event
    /// (the hub restarted with another configuration).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The message for `event`, made now to be queued with it; `None` when it cannot be
    /// made (left to the publisher, which finds out again and parks the row).
    pub fn queued_message(&self, event: &Event) -> Option<QueuedMessage> {
        let message = self.message(event).ok()?;
        Some(QueuedMessage {
            message,
            wire: self.fingerprint.clone(),
        })
    }

    /// `event` on its way out, with its message.
    pub fn outgoing(&self, event: Event) -> Outgoing {
        Outgoing {
            message: self.queued_message(&event),
            event,
        }
    }

    /// `queued` with its message made by this format.
    pub fn ready(&self, mut queued: NewOutbox) -> NewOutbox {
        queued.message = self.queued_message(&queued.event);
        queued
    }

    /// The source id events are published as.
    pub fn source_id(&self) -> &str {
        &self.source_id
    }

    /// The limits messages are checked against.
    pub fn limits(&self) -> &PublishLimits {
        &self.limits
    }

    /// The MQTT message the hub sends for `event`: its publish topic (§1.4), encoded in
    /// the configured mode, checked against the MQTT limits.
    pub fn message(&self, event: &Event) -> Result<MqttMessage, Unpublishable> {
        let ty = decode_event_type(event)?;
        let topic = self.topic(&ty, event.cluster_name()?)?;
        let message = match &self.signer {
            Some(key) if ty.sub_resource == SubResource::Spec => {
                let mut signed = event.clone();
                key.sign(&mut signed)?;
                mqtt::encode(&signed, &topic, self.encoding)?
            }
            _ => mqtt::encode(event, &topic, self.encoding)?,
        };
        mqtt::check_publishable(&message, &self.limits)?;
        Ok(message)
    }

    /// Checks a message made earlier against the current limits.
    pub fn check(&self, message: &MqttMessage) -> Result<(), Unpublishable> {
        mqtt::check_publishable(message, &self.limits)?;
        Ok(())
    }

    /// Checks that every spec event `work` can produce from now on fits, measured on
    /// the largest form of each: generation 2,147,483,647 (the int32 ceiling of
    /// `resourceversion`, §10 item 13), the longest action, and times with all nine
    /// fractional digits. Later changes only move these values, so a work accepted
    /// here can always be published (until it is changed again, which is checked
    /// again). `now` is the creation time a new work would get.
    pub fn check_work(
        &self,
        work: &WorkRecord,
        events: WorkEvents,
        now: DateTime<Utc>,
    ) -> Result<(), Unpublishable> {
        // Go's RFC3339Nano drops trailing zeros, so .999999999 is the longest time.
        let longest_time = now.with_nanosecond(999_999_999).unwrap_or(now);
        let action = SPEC_ACTIONS
            .iter()
            .max_by_key(|a| a.as_str().len())
            .cloned()
            .unwrap_or(Action::ResyncResponse);
        // One copy of the work, measured as a live work and then as deleted.
        let mut largest = work.clone();
        largest.generation = i64::from(i32::MAX);
        let measure = |form: &WorkRecord| -> Result<(), Unpublishable> {
            let event = spec_event(&self.source_id, form, action.clone(), longest_time)
                .map_err(Unpublishable::Build)?;
            self.message(&event).map(drop)
        };
        if events == WorkEvents::Lifetime {
            largest.deletion = None;
            measure(&largest)?;
        }
        largest.deletion = Some(longest_time);
        measure(&largest)
    }

    /// Checks that events can be published to `cluster` at all: its publish topic can
    /// be made and fits an MQTT string.
    pub fn check_cluster(&self, cluster: &str) -> Result<(), Unpublishable> {
        let ty = EventType::manifest_bundles(SubResource::Spec, Action::CreateRequest);
        let topic = self.topic(&ty, Some(cluster))?;
        let bare = MqttMessage {
            topic,
            ..MqttMessage::default()
        };
        mqtt::check_publishable(&bare, &self.limits)?;
        Ok(())
    }

    fn topic(&self, ty: &EventType, cluster: Option<&str>) -> Result<String, TopicError> {
        topics::source_publish_topic(&self.topics, &self.source_id, ty, cluster)
    }
}
