//! What a received event must pass before the hub acts on it, beyond being well formed:
//! defence in depth for brokers whose ACLs are missing or wrong, where any client may
//! publish on any agent's topic.
//!
//! A status is admitted only when
//! 1. it is at most [`MAX_STATUS_BYTES`] on the wire;
//! 2. it arrived on an agent events topic whose cluster segment is its `clustername`
//!    extension, which is present and not empty (an agent may speak only for its own
//!    cluster: with topic ACLs that is what the broker checks);
//! 3. its `statushash`, when sent, is the hash of its status as the hub computes it
//!    (`workbus_schemas::status_hash`): a mismatch is a corrupt or forged event;
//! 4. its cluster's status rate ([`super::rate_limit::STATUS_RATE`]) is not exceeded.
//!
//! A spec resync request is answered only for a registered cluster, within its
//! cluster's resync rate ([`super::rate_limit::RESYNC_RATE`]); it names its cluster the
//! same way (when its topic has a cluster segment, they agree).
//!
//! A refused event is counted (`workbus_hub_events_refused_total{reason}`) and logged
//! (rate-limit refusals at the 1st, 2nd, 4th… of their kind), and is not written to
//! the audit log: refusals are what floods and forgeries
//! produce, and storing their payloads would let them grow the hub's disk.
//!
//! Without a publisher stamp (an external broker) the topic is the identity here; the
//! broker's topic ACLs bind it to the client's identity. With the embedded broker's
//! stamp ([`workbus_schemas::acl::PUBLISHER_PROPERTY`]) the publisher must also be
//! allowed to send the event ([`super::publisher`]).

use workbus_schemas::metadata::DecodedStatus;
use workbus_schemas::status_hash::status_hash;
use workbus_schemas::topics::{self, SegmentKind};

/// The largest status message the hub accepts (payload plus properties), 512 KiB: a
/// ManifestWork status with feedback of many manifests is far smaller.
pub const MAX_STATUS_BYTES: usize = 512 * 1024;

/// Why a received event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The event is larger than the hub accepts for its kind.
    #[error("the event is too large")]
    TooLarge,
    /// The event has no `clustername`, or an empty one.
    #[error("no clustername")]
    NoClusterName,
    /// The cluster of the topic it came on and its `clustername` differ (or the topic
    /// names no cluster).
    #[error("its topic is not its cluster's")]
    TopicMismatch,
    /// The `statushash` is not the hash of the status it carries.
    #[error("the statushash does not match the status")]
    StatusHashMismatch,
    /// A spec resync request for a cluster the hub does not know.
    #[error("the cluster is not registered")]
    UnregisteredCluster,
    /// The cluster sent more statuses than its rate allows.
    #[error("status rate exceeded")]
    StatusRateLimited,
    /// The cluster sent more spec resync requests than its rate allows.
    #[error("resync request rate exceeded")]
    ResyncRateLimited,
    /// The broker-stamped publisher may not send this event for this cluster
    /// ([`super::publisher`]).
    #[error("its publisher may not send it")]
    Publisher,
    /// A registration write for a cluster the hub has not accepted (or does not know).
    #[error("the cluster is not accepted")]
    NotAccepted,
}

impl Refusal {
    /// True for the rate-limit refusals (which come in floods).
    pub fn is_rate_limit(self) -> bool {
        matches!(
            self,
            Refusal::StatusRateLimited | Refusal::ResyncRateLimited
        )
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::NoClusterName => "no_clustername",
            Refusal::TopicMismatch => "topic_mismatch",
            Refusal::StatusHashMismatch => "statushash_mismatch",
            Refusal::UnregisteredCluster => "unregistered_cluster",
            Refusal::StatusRateLimited => "status_rate_limited",
            Refusal::ResyncRateLimited => "resync_rate_limited",
            Refusal::Publisher => "publisher",
            Refusal::NotAccepted => "not_accepted",
        }
    }
}

/// The size of a received message as the hub bounds it: payload and properties.
pub fn message_size(message: &workbus_schemas::mqtt::MqttMessage) -> usize {
    let properties: usize = message
        .user_properties
        .iter()
        .map(|(k, v)| k.len().saturating_add(v.len()))
        .fold(0, usize::saturating_add);
    message
        .payload
        .len()
        .saturating_add(properties)
        .saturating_add(message.content_type.as_ref().map_or(0, String::len))
}

/// The cluster an event claims (`clustername`), checked against the topic it came on:
/// present, not empty, a valid topic segment, and the topic's cluster segment when the
/// topic has one (`require_topic`: it must have one, as agent events topics do).
pub fn claimed_cluster<'e>(
    topic: &str,
    clustername: Option<&'e str>,
    require_topic: bool,
) -> Result<&'e str, Refusal> {
    let cluster = match clustername {
        Some(c) if !c.is_empty() => c,
        _ => return Err(Refusal::NoClusterName),
    };
    if topics::validate_segment(SegmentKind::ClusterName, cluster).is_err() {
        return Err(Refusal::TopicMismatch);
    }
    match topics::cluster_slot(topic) {
        Some(from_topic) if from_topic == cluster => Ok(cluster),
        Some(_) => Err(Refusal::TopicMismatch),
        None if require_topic => Err(Refusal::TopicMismatch),
        None => Ok(cluster),
    }
}

/// Checks a decoded status that came on `topic` in a message of `size` bytes (rules 1–3
/// of the module documentation); the rate is the caller's (it has state).
pub fn check_status(topic: &str, size: usize, status: &DecodedStatus) -> Result<(), Refusal> {
    if size > MAX_STATUS_BYTES {
        return Err(Refusal::TooLarge);
    }
    claimed_cluster(topic, status.cluster_name.as_deref(), true)?;
    if let Some(claimed) = status.status_hash.as_deref()
        && claimed != status_hash(&status.status)
    {
        return Err(Refusal::StatusHashMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "sources/hub/clusters/c1/agentevents";

    #[test]
    fn cluster_claims() {
        assert_eq!(claimed_cluster(TOPIC, Some("c1"), true), Ok("c1"));
        assert_eq!(
            claimed_cluster(TOPIC, Some("c2"), true),
            Err(Refusal::TopicMismatch)
        );
        assert_eq!(
            claimed_cluster(TOPIC, Some(""), true),
            Err(Refusal::NoClusterName)
        );
        assert_eq!(
            claimed_cluster(TOPIC, None, true),
            Err(Refusal::NoClusterName)
        );
        assert_eq!(
            claimed_cluster("some/other/topic", Some("c1"), true),
            Err(Refusal::TopicMismatch)
        );
        assert_eq!(
            claimed_cluster("some/other/topic", Some("c1"), false),
            Ok("c1")
        );
        assert_eq!(
            claimed_cluster(TOPIC, Some("C1/../x"), false),
            Err(Refusal::TopicMismatch)
        );
    }
}
