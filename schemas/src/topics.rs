//! MQTT topic layout (reference §1.2–1.5): the four topic roles, their validation, and
//! the substitution rules that turn configured topic *templates* into the topics a
//! source or an agent subscribes and publishes to.
//!
//! This is the only module in workbus that knows topic strings. Hub and agent hand it
//! the configured [`Topics`] plus their identity (source id or cluster name) and get
//! back concrete subscription filters and publish topics.
//!
//! Wire compatibility with sdk-go comes first: the validation regexes, the
//! "first `+`" / "last `+`" substitution rules and the error texts are sdk-go's, so a
//! configuration accepted by a Go peer behaves the same here and logs read the same.
//! On top of that (reference §10 item 5) this module refuses to *produce* a broken
//! topic: run-time values are checked with [`validate_segment`] before they are
//! substituted, computed publish topics go through [`check_publishable`], and
//! [`Topics::validate_for_source`] / [`Topics::validate_for_agent`] reject, at start-up,
//! configurations that the regexes accept but that cannot publish correctly.

use std::fmt;
use std::sync::LazyLock;

use regex_lite::Regex;
use serde::{Deserialize, Deserializer, Serialize};

use crate::event_type::{Action, EventType};

/// Regex for `sourceEvents` (sdk-go `MQTTSourceEventsTopicPattern`).
pub const SOURCE_EVENTS_PATTERN: &str =
    r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/([a-z]+)/([a-z0-9-]+|\+)/sourceevents$";
/// Regex for `agentEvents` (sdk-go `MQTTAgentEventsTopicPattern`).
pub const AGENT_EVENTS_PATTERN: &str =
    r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/([a-z]+)/([a-z0-9-]+|\+)/agentevents$";
/// Regex for `sourceBroadcast` (sdk-go `MQTTSourceBroadcastTopicPattern`).
pub const SOURCE_BROADCAST_PATTERN: &str =
    r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/sourcebroadcast$";
/// Regex for `agentBroadcast` (sdk-go `MQTTAgentBroadcastTopicPattern`).
pub const AGENT_BROADCAST_PATTERN: &str =
    r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/agentbroadcast$";
/// Either events topic (sdk-go `MQTTEventsTopicPattern`); used to locate the source slot.
pub const EVENTS_PATTERN: &str = r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/([a-z]+)/([a-z0-9-]+|\+)/(sourceevents|agentevents)$";
/// What a run-time topic segment (cluster name, source id, shared group) must match.
pub const SEGMENT_PATTERN: &str = "[a-z0-9-]+";

/// The `$share/` prefix of an MQTT 5 shared subscription.
const SHARE_PREFIX: &str = "$share/";

/// The compiled patterns, in the order SourceEvents, AgentEvents, SourceBroadcast,
/// AgentBroadcast, Events.
static REGEXES: LazyLock<[Regex; 5]> = LazyLock::new(|| {
    // The patterns are constants checked by the `patterns_compile` test, so a failure
    // here is a programming error, never a reaction to input.
    let compile = |p: &str| Regex::new(p).expect("constant topic pattern compiles");
    [
        compile(SOURCE_EVENTS_PATTERN),
        compile(AGENT_EVENTS_PATTERN),
        compile(SOURCE_BROADCAST_PATTERN),
        compile(AGENT_BROADCAST_PATTERN),
        compile(EVENTS_PATTERN),
    ]
});

/// One of the four configured topic roles (reference §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicRole {
    /// `sourceEvents`: source to one agent (spec events, per-cluster status resync requests).
    SourceEvents,
    /// `agentEvents`: agent to one source (status events, spec resync requests).
    AgentEvents,
    /// `sourceBroadcast`: source to all agents (status resync request for all clusters).
    SourceBroadcast,
    /// `agentBroadcast`: agent to all sources (spec resync request for all sources).
    AgentBroadcast,
}

impl TopicRole {
    /// All roles, in sdk-go's validation order.
    pub const ALL: [TopicRole; 4] = [
        TopicRole::SourceEvents,
        TopicRole::AgentEvents,
        TopicRole::SourceBroadcast,
        TopicRole::AgentBroadcast,
    ];

    /// The exact validation regex of this role.
    pub fn pattern(self) -> &'static str {
        match self {
            TopicRole::SourceEvents => SOURCE_EVENTS_PATTERN,
            TopicRole::AgentEvents => AGENT_EVENTS_PATTERN,
            TopicRole::SourceBroadcast => SOURCE_BROADCAST_PATTERN,
            TopicRole::AgentBroadcast => AGENT_BROADCAST_PATTERN,
        }
    }

    /// The key in the config file's `topics` map.
    pub fn config_key(self) -> &'static str {
        match self {
            TopicRole::SourceEvents => "sourceEvents",
            TopicRole::AgentEvents => "agentEvents",
            TopicRole::SourceBroadcast => "sourceBroadcast",
            TopicRole::AgentBroadcast => "agentBroadcast",
        }
    }

    /// The words sdk-go uses for this role in error messages (`source events`, ...).
    pub fn description(self) -> &'static str {
        match self {
            TopicRole::SourceEvents => "source events",
            TopicRole::AgentEvents => "agent events",
            TopicRole::SourceBroadcast => "source broadcast",
            TopicRole::AgentBroadcast => "agent broadcast",
        }
    }

    /// True when `topic` matches this role's regex.
    pub fn matches(self, topic: &str) -> bool {
        let i = match self {
            TopicRole::SourceEvents => 0,
            TopicRole::AgentEvents => 1,
            TopicRole::SourceBroadcast => 2,
            TopicRole::AgentBroadcast => 3,
        };
        REGEXES[i].is_match(topic)
    }

    /// Checks `topic` against this role's regex, with sdk-go's error.
    pub fn validate(self, topic: &str) -> Result<(), InvalidTopic> {
        if self.matches(topic) {
            Ok(())
        } else {
            Err(InvalidTopic {
                role: self,
                topic: topic.to_string(),
            })
        }
    }
}

impl fmt::Display for TopicRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// What kind of run-time value is being put into a topic segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// A managed cluster (consumer) name.
    ClusterName,
    /// A source id.
    SourceId,
    /// A shared-subscription group name.
    SharedGroup,
}

impl fmt::Display for SegmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SegmentKind::ClusterName => "cluster name",
            SegmentKind::SourceId => "source id",
            SegmentKind::SharedGroup => "shared subscription group",
        })
    }
}

/// Which side a configuration is being checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The hub side (sdk-go "source").
    Source,
    /// The managed-cluster side (work agent).
    Agent,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "a source",
            Side::Agent => "an agent",
        })
    }
}

/// One topic that does not match its role's regex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {role} topic {}, it should match `{}`", go_quote(topic), role.pattern())]
pub struct InvalidTopic {
    /// The role whose regex failed.
    pub role: TopicRole,
    /// The configured topic, verbatim.
    pub topic: String,
}

/// All regex failures of one [`Topics`], reported together as sdk-go does.
///
/// Displayed like Kubernetes' `errors.NewAggregate`: one error alone is shown as is,
/// several as `[a, b]` with repeated messages shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTopics(pub Vec<InvalidTopic>);

impl fmt::Display for InvalidTopics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut messages: Vec<String> = Vec::with_capacity(self.0.len());
        for e in &self.0 {
            let m = e.to_string();
            if !messages.contains(&m) {
                messages.push(m);
            }
        }
        if messages.len() == 1 {
            f.write_str(&messages[0])
        } else {
            write!(f, "[{}]", messages.join(", "))
        }
    }
}

impl std::error::Error for InvalidTopics {}

/// Errors of topic validation and substitution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// One or more topics do not match their regex (sdk-go's aggregated message).
    #[error("{0}")]
    Invalid(InvalidTopics),
    /// The topic is not an events topic, so it has no source slot (sdk-go text).
    #[error("failed to get source from topic: {}", go_quote(.0))]
    NoSourceSlot(String),
    /// A source's `agentEvents` names another source (sdk-go text).
    #[error(
        "the topic source {} does not match the client sourceID {}",
        go_quote(topic_source),
        go_quote(source_id)
    )]
    SourceMismatch {
        /// The source slot of the configured `agentEvents`.
        topic_source: String,
        /// The source's own id.
        source_id: String,
    },
    /// A status resync for all clusters without `sourceBroadcast` (sdk-go text).
    #[error("the source broadcast topic not set")]
    SourceBroadcastNotSet,
    /// The event lacks the extension the topic is derived from (cloudevents sdk-go text).
    #[error("{} not found", go_quote(.0))]
    MissingExtension(&'static str),
    /// A run-time value cannot be a topic segment (workbus check, reference §10 item 5).
    #[error(
        "invalid {kind} {}: a topic segment must match `{SEGMENT_PATTERN}`",
        go_quote(value)
    )]
    InvalidSegment {
        /// What the value is.
        kind: SegmentKind,
        /// The rejected value.
        value: String,
    },
    /// A computed publish topic is not a plain topic name (workbus check).
    #[error("cannot publish to topic {}: {reason}", go_quote(topic))]
    NotPublishable {
        /// The computed topic.
        topic: String,
        /// Why it cannot be published to.
        reason: &'static str,
    },
    /// The regex accepts the topic, but this side cannot work with it (workbus check).
    #[error(
        "the {role} topic {} cannot be used by {side}: {reason}",
        go_quote(topic)
    )]
    Unusable {
        /// The offending role.
        role: TopicRole,
        /// The configured topic.
        topic: String,
        /// The side it was checked for.
        side: Side,
        /// Why it cannot work.
        reason: &'static str,
    },
}

/// The four configured topic templates (sdk-go `types.Topics`), with sdk-go's keys.
///
/// Fields are plain strings so any file can be represented; call [`Topics::validate`]
/// (done by the config parser), and [`Topics::validate_for_source`] or
/// [`Topics::validate_for_agent`] at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topics {
    /// Source to agent events; required. A missing key reads as `""` and then fails
    /// validation, as in Go.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub source_events: String,
    /// Agent to source events; required (same handling as `source_events`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub agent_events: String,
    /// Optional source broadcast; an empty string means unset, as in Go.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_broadcast: Option<String>,
    /// Optional agent broadcast; an empty string means unset, as in Go.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_broadcast: Option<String>,
}

/// Go reads YAML `null` into a string as `""`; do the same.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// sdk-go tests broadcast topics with `len(...) != 0`, so `""` is the same as unset.
fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

impl Topics {
    /// Our default source layout (Maestro's): `sources/<id>/consumers/+/sourceevents`
    /// and `sources/<id>/consumers/+/agentevents`, no broadcast topics.
    pub fn for_source(source_id: &str) -> Result<Topics, TopicError> {
        validate_segment(SegmentKind::SourceId, source_id)?;
        Ok(Topics {
            source_events: format!("sources/{source_id}/consumers/+/sourceevents"),
            agent_events: format!("sources/{source_id}/consumers/+/agentevents"),
            source_broadcast: None,
            agent_broadcast: None,
        })
    }

    /// Our default agent layout (Maestro's per-consumer topics, reference §1.5):
    /// `sources/<id>/consumers/<cluster>/sourceevents` and `.../agentevents`. Concrete
    /// topics keep the broker ACL simple: one consumer, two topics.
    pub fn for_agent(source_id: &str, cluster: &str) -> Result<Topics, TopicError> {
        validate_segment(SegmentKind::SourceId, source_id)?;
        validate_segment(SegmentKind::ClusterName, cluster)?;
        Ok(Topics {
            source_events: format!("sources/{source_id}/consumers/{cluster}/sourceevents"),
            agent_events: format!("sources/{source_id}/consumers/{cluster}/agentevents"),
            source_broadcast: None,
            agent_broadcast: None,
        })
    }

    /// Puts `$share/<group>/` on the topics a *source* subscribes to (`agentEvents`,
    /// and `agentBroadcast` when set), replacing any existing share prefix, so that
    /// horizontally scaled source replicas each get a share of agent events
    /// (reference §1.6). Topics the source publishes to are left alone.
    pub fn with_shared_group(mut self, group: &str) -> Result<Topics, TopicError> {
        validate_segment(SegmentKind::SharedGroup, group)?;
        fn share(group: &str, topic: &str) -> String {
            format!("{SHARE_PREFIX}{group}/{}", strip_share(topic))
        }
        self.agent_events = share(group, &self.agent_events);
        self.agent_broadcast = self.agent_broadcast.as_deref().map(|t| share(group, t));
        Ok(self)
    }

    /// The source broadcast topic, if configured (empty strings count as unset).
    pub fn source_broadcast(&self) -> Option<&str> {
        self.source_broadcast.as_deref().filter(|s| !s.is_empty())
    }

    /// The agent broadcast topic, if configured (empty strings count as unset).
    pub fn agent_broadcast(&self) -> Option<&str> {
        self.agent_broadcast.as_deref().filter(|s| !s.is_empty())
    }

    /// sdk-go's validation: each topic against its role's regex (broadcast topics only
    /// when set), with every failure aggregated into one error.
    pub fn validate(&self) -> Result<(), TopicError> {
        let mut errors = Vec::new();
        let mut check = |role: TopicRole, topic: &str| {
            if let Err(e) = role.validate(topic) {
                errors.push(e);
            }
        };
        check(TopicRole::SourceEvents, &self.source_events);
        check(TopicRole::AgentEvents, &self.agent_events);
        if let Some(t) = self.source_broadcast() {
            check(TopicRole::SourceBroadcast, t);
        }
        if let Some(t) = self.agent_broadcast() {
            check(TopicRole::AgentBroadcast, t);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TopicError::Invalid(InvalidTopics(errors)))
        }
    }

    /// Everything a source needs before it starts: [`Topics::validate`], a valid
    /// `source_id`, the sdk-go subscribe check (the source slot of `agentEvents` equals
    /// `source_id`), and the publish constraints of reference §1.4 that the regexes do
    /// not enforce: `sourceEvents` must have a concrete source segment, `+` as its
    /// cluster segment and no `$share` prefix; `sourceBroadcast` must not be shared.
    pub fn validate_for_source(&self, source_id: &str) -> Result<(), TopicError> {
        self.validate()?;
        source_subscriptions(self, source_id)?;

        let unusable = |role, topic: &str, reason| TopicError::Unusable {
            role,
            topic: topic.to_string(),
            side: Side::Source,
            reason,
        };
        let se = &self.source_events;
        let parsed = EventsTopic::parse(se).ok_or_else(|| TopicError::NoSourceSlot(se.clone()))?;
        if parsed.shared {
            return Err(unusable(
                TopicRole::SourceEvents,
                se,
                "a source publishes to it, so it must not have a $share prefix",
            ));
        }
        if parsed.source == "+" {
            return Err(unusable(
                TopicRole::SourceEvents,
                se,
                "its source segment must be concrete, because a source replaces the first `+` with the cluster name",
            ));
        }
        if parsed.cluster != "+" {
            return Err(unusable(
                TopicRole::SourceEvents,
                se,
                "its cluster segment must be `+`, so that each event reaches its own cluster",
            ));
        }
        if let Some(sb) = self.source_broadcast()
            && sb.starts_with(SHARE_PREFIX)
        {
            return Err(unusable(
                TopicRole::SourceBroadcast,
                sb,
                "a source publishes to it, so it must not have a $share prefix",
            ));
        }
        Ok(())
    }

    /// Everything an agent needs before it starts: [`Topics::validate`], a valid
    /// `cluster`, and the constraints of reference §1.3–1.4 the regexes miss: the
    /// subscription derived from `sourceEvents` must name this cluster; `agentEvents`
    /// must not be shared, must name a concrete source and a cluster segment that is `+`
    /// or this cluster; `agentBroadcast` likewise must not be shared and must name `+`
    /// or this cluster.
    pub fn validate_for_agent(&self, cluster: &str) -> Result<(), TopicError> {
        self.validate()?;
        validate_segment(SegmentKind::ClusterName, cluster)?;

        let unusable = |role, topic: &str, reason| TopicError::Unusable {
            role,
            topic: topic.to_string(),
            side: Side::Agent,
            reason,
        };

        // The agent replaces the *last* `+`: that must be the cluster slot, or the
        // cluster slot must already name this cluster with no `+` left to misplace.
        let se = &self.source_events;
        let parsed = EventsTopic::parse(se).ok_or_else(|| TopicError::NoSourceSlot(se.clone()))?;
        let subscribes_here =
            parsed.cluster == "+" || (parsed.cluster == cluster && parsed.source != "+");
        if !subscribes_here {
            return Err(unusable(
                TopicRole::SourceEvents,
                se,
                "its cluster segment must be `+`, or this cluster with a concrete source segment",
            ));
        }

        let ae = &self.agent_events;
        let parsed = EventsTopic::parse(ae).ok_or_else(|| TopicError::NoSourceSlot(ae.clone()))?;
        if parsed.shared {
            return Err(unusable(
                TopicRole::AgentEvents,
                ae,
                "an agent publishes to it, so it must not have a $share prefix",
            ));
        }
        if parsed.source == "+" {
            return Err(unusable(
                TopicRole::AgentEvents,
                ae,
                "its source segment must be concrete, because an agent publishes to the source named there",
            ));
        }
        if parsed.cluster != "+" && parsed.cluster != cluster {
            return Err(unusable(
                TopicRole::AgentEvents,
                ae,
                "its cluster segment must be `+` or this cluster",
            ));
        }

        if let Some(ab) = self.agent_broadcast() {
            if ab.starts_with(SHARE_PREFIX) {
                return Err(unusable(
                    TopicRole::AgentBroadcast,
                    ab,
                    "an agent publishes to it, so it must not have a $share prefix",
                ));
            }
            let slot = ab.split('/').nth(1).unwrap_or_default();
            if slot != "+" && slot != cluster {
                return Err(unusable(
                    TopicRole::AgentBroadcast,
                    ab,
                    "its cluster segment must be `+` or this cluster",
                ));
            }
        }
        Ok(())
    }
}

/// The slots of an events topic that matched [`EVENTS_PATTERN`].
struct EventsTopic<'a> {
    shared: bool,
    source: &'a str,
    cluster: &'a str,
}

impl<'a> EventsTopic<'a> {
    fn parse(topic: &'a str) -> Option<Self> {
        if !REGEXES[4].is_match(topic) {
            return None;
        }
        let shared = topic.starts_with("$share");
        let segments: Vec<&str> = strip_share(topic).split('/').collect();
        Some(EventsTopic {
            shared,
            source: segments.get(1)?,
            cluster: segments.get(3)?,
        })
    }
}

/// `topic` without a leading `$share/<group>/`.
fn strip_share(topic: &str) -> &str {
    match topic.strip_prefix(SHARE_PREFIX) {
        Some(rest) => rest.split_once('/').map_or(rest, |(_, tail)| tail),
        None => topic,
    }
}

/// Go `strings.Replace(s, "+", new, 1)`.
fn replace_first(s: &str, new: &str) -> String {
    s.replacen('+', new, 1)
}

/// sdk-go `replaceLast(s, "+", new)`.
fn replace_last(s: &str, new: &str) -> String {
    match s.rfind('+') {
        Some(i) => format!("{}{new}{}", &s[..i], &s[i + 1..]),
        None => s.to_string(),
    }
}

/// The source slot of an events topic (reference §1.2, TV-3): segment 1, or segment 3
/// after a `$share/<group>/` prefix. Fails, with sdk-go's text, when `topic` is not an
/// events topic.
pub fn source_slot(topic: &str) -> Result<&str, TopicError> {
    EventsTopic::parse(topic)
        .map(|p| p.source)
        .ok_or_else(|| TopicError::NoSourceSlot(topic.to_string()))
}

/// The cluster segment of a concrete topic an event arrived on: segment 3 of an events
/// topic (`sources/<source>/clusters/<cluster>/agentevents`), segment 1 of an agent
/// broadcast topic (`clusters/<cluster>/agentbroadcast`); `None` for any other topic or
/// a `+`. The hub checks a received event's `clustername` against it.
pub fn cluster_slot(topic: &str) -> Option<&str> {
    let slot = match EventsTopic::parse(topic) {
        Some(parsed) => parsed.cluster,
        None if REGEXES[3].is_match(topic) => strip_share(topic).split('/').nth(1)?,
        None => return None,
    };
    (slot != "+").then_some(slot)
}

/// Checks that a run-time value (cluster name, source id, shared group) can be a topic
/// segment, i.e. matches `[a-z0-9-]+`. sdk-go never checks these, so a cluster named
/// `Foo.bar` would silently produce a topic no peer subscribes to; we refuse instead.
pub fn validate_segment(kind: SegmentKind, value: &str) -> Result<(), TopicError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TopicError::InvalidSegment {
            kind,
            value: value.to_string(),
        })
    }
}

/// Checks that a computed topic can be published to: not empty, no wildcard (`+`,
/// `#`), no `$` prefix (`$share/...` is a subscription filter, `$`-topics belong to the
/// broker) and no NUL. MQTT brokers reject such PUBLISHes, often by disconnecting.
pub fn check_publishable(topic: &str) -> Result<(), TopicError> {
    let reason = if topic.is_empty() {
        Some("it is empty")
    } else if topic.contains(['+', '#']) {
        Some("it contains a wildcard")
    } else if topic.starts_with('$') {
        Some("it starts with `$` (a $share prefix or a broker topic)")
    } else if topic.contains('\0') {
        Some("it contains NUL")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(TopicError::NotPublishable {
            topic: topic.to_string(),
            reason,
        }),
    }
}

/// The MQTT 5 shared-subscription group of the hub replicas serving `source_id`
/// (`<source id>-hubs`): every replica subscribes to `$share/<group>/<agentEvents>`
/// ([`Topics::with_shared_group`]), so the broker hands each agent event to exactly one
/// of them (workbus, issue 16; reference §1.6 for shared subscriptions).
pub fn replica_share_group(source_id: &str) -> Result<String, TopicError> {
    let group = format!("{source_id}-hubs");
    validate_segment(SegmentKind::SharedGroup, &group)?;
    Ok(group)
}

/// The subscription filters of a source (reference §1.3): `agentEvents` verbatim,
/// after checking that its source slot is `source_id`, then `agentBroadcast` verbatim
/// when set.
pub fn source_subscriptions(topics: &Topics, source_id: &str) -> Result<Vec<String>, TopicError> {
    validate_segment(SegmentKind::SourceId, source_id)?;
    let topic_source = source_slot(&topics.agent_events)?;
    if topic_source != source_id {
        return Err(TopicError::SourceMismatch {
            topic_source: topic_source.to_string(),
            source_id: source_id.to_string(),
        });
    }
    let mut subs = vec![topics.agent_events.clone()];
    subs.extend(topics.agent_broadcast().map(str::to_string));
    Ok(subs)
}

/// The subscription filters of an agent (reference §1.3): `sourceEvents` with its
/// *last* `+` replaced by `cluster`, then `sourceBroadcast` verbatim when set.
pub fn agent_subscriptions(topics: &Topics, cluster: &str) -> Result<Vec<String>, TopicError> {
    validate_segment(SegmentKind::ClusterName, cluster)?;
    let mut subs = vec![replace_last(&topics.source_events, cluster)];
    subs.extend(topics.source_broadcast().map(str::to_string));
    Ok(subs)
}

/// The topic a source publishes an event to (reference §1.4, TV-4).
///
/// `clustername` is the event's `clustername` extension (`None` when absent, which is
/// an error as in sdk-go). A `resync_request` with `clustername == ""` ("all
/// clusters") goes to `sourceBroadcast` with its first `+` replaced by `source_id`;
/// everything else goes to `sourceEvents` with its first `+` replaced by the cluster
/// name. Like sdk-go, only the action is looked at (sources send `resync_request` only
/// for status). Substituted values and the result are checked.
pub fn source_publish_topic(
    topics: &Topics,
    source_id: &str,
    event_type: &EventType,
    clustername: Option<&str>,
) -> Result<String, TopicError> {
    let cluster = clustername.ok_or(TopicError::MissingExtension("clustername"))?;
    let topic = if event_type.action == Action::ResyncRequest && cluster.is_empty() {
        let broadcast = topics
            .source_broadcast()
            .ok_or(TopicError::SourceBroadcastNotSet)?;
        validate_segment(SegmentKind::SourceId, source_id)?;
        replace_first(broadcast, source_id)
    } else {
        validate_segment(SegmentKind::ClusterName, cluster)?;
        replace_first(&topics.source_events, cluster)
    };
    check_publishable(&topic)?;
    Ok(topic)
}

/// The topic an agent publishes an event to (reference §1.4, TV-5).
///
/// `originalsource` is the event's `originalsource` extension (`None` when absent, an
/// error as in sdk-go). A `resync_request` with `originalsource == ""` ("all sources")
/// goes to `agentBroadcast` with its first `+` replaced by `cluster`, or, without a
/// broadcast topic, to `agentEvents` with its last `+` replaced by `cluster`. Every
/// other event goes to `agentEvents` with its last `+` replaced by `cluster` and then
/// the new last `+` replaced by the source slot of the configured `agentEvents`: not by
/// `originalsource` (reference §10 item 6). Like sdk-go, only the action is looked at.
pub fn agent_publish_topic(
    topics: &Topics,
    cluster: &str,
    event_type: &EventType,
    originalsource: Option<&str>,
) -> Result<String, TopicError> {
    let original = originalsource.ok_or(TopicError::MissingExtension("originalsource"))?;
    validate_segment(SegmentKind::ClusterName, cluster)?;
    let topic = if event_type.action == Action::ResyncRequest && original.is_empty() {
        match topics.agent_broadcast() {
            Some(broadcast) => replace_first(broadcast, cluster),
            None => replace_last(&topics.agent_events, cluster),
        }
    } else {
        let topic_source = source_slot(&topics.agent_events)?;
        replace_last(&replace_last(&topics.agent_events, cluster), topic_source)
    };
    check_publishable(&topic)?;
    Ok(topic)
}

/// Quotes like Go's `%q` (`strconv.Quote`), so error texts match sdk-go's byte for
/// byte on ordinary input. Printability is approximated: control characters and
/// non-ASCII white space are escaped; other exotic code points Go would escape (e.g.
/// unassigned ones) are kept.
pub(crate) fn go_quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn replicas_share_the_agent_events_of_their_source() {
        assert_eq!(replica_share_group("maestro").unwrap(), "maestro-hubs");
        assert!(replica_share_group("Bad Id").is_err());
        let topics = Topics::for_source("maestro")
            .unwrap()
            .with_shared_group(&replica_share_group("maestro").unwrap())
            .unwrap();
        assert_eq!(
            source_subscriptions(&topics, "maestro").unwrap(),
            vec!["$share/maestro-hubs/sources/maestro/consumers/+/agentevents".to_string()]
        );
    }

    use super::*;
    use crate::event_type::SubResource;
    use proptest::prelude::*;

    #[test]
    fn cluster_slot_of_received_topics() {
        assert_eq!(
            cluster_slot("sources/hub/clusters/c1/agentevents"),
            Some("c1")
        );
        assert_eq!(cluster_slot("clusters/c2/agentbroadcast"), Some("c2"));
        assert_eq!(cluster_slot("sources/hub/clusters/+/agentevents"), None);
        assert_eq!(cluster_slot("a/b"), None);
        assert_eq!(cluster_slot(""), None);
    }

    fn ev(sub: SubResource, action: Action) -> EventType {
        EventType::manifest_bundles(sub, action)
    }

    fn tv4() -> Topics {
        Topics {
            source_events: "sources/hub1/clusters/+/sourceevents".into(),
            agent_events: "sources/hub1/clusters/+/agentevents".into(),
            source_broadcast: None,
            agent_broadcast: None,
        }
    }

    fn tv5() -> Topics {
        Topics {
            agent_broadcast: Some("clusters/+/agentbroadcast".into()),
            ..tv4()
        }
    }

    fn topics(se: &str, ae: &str, sb: &str, ab: &str) -> Topics {
        Topics {
            source_events: se.into(),
            agent_events: ae.into(),
            source_broadcast: Some(sb.into()),
            agent_broadcast: Some(ab.into()),
        }
    }

    #[test]
    fn patterns_compile() {
        assert_eq!(REGEXES.len(), 5);
        assert!(
            TopicRole::ALL
                .iter()
                .all(|r| Regex::new(r.pattern()).is_ok())
        );
    }

    #[test]
    fn tv2_accepted() {
        let ok = [
            Topics {
                source_events: "sources/maestro/clusters/+/sourceevents".into(),
                agent_events: "sources/maestro/clusters/+/agentevents".into(),
                ..Topics::default()
            },
            Topics {
                source_events: "sources/maestro/consumers/+/sourceevents".into(),
                agent_events: "sources/maestro/consumers/+/agentevents".into(),
                ..Topics::default()
            },
            Topics {
                source_events: "hubs/maestro/consumers/+/sourceevents".into(),
                agent_events: "hubs/maestro/consumers/+/agentevents".into(),
                ..Topics::default()
            },
            topics(
                "$share/group1/sources/maestro/consumers/+/sourceevents",
                "$share/group/sources/maestro/consumers/+/agentevents",
                "$share/source-group/sources/maestro/sourcebroadcast",
                "$share/agent-group1/clusters/+/agentbroadcast",
            ),
            topics(
                "sources/+/clusters/+/sourceevents",
                "sources/+/clusters/+/agentevents",
                "sources/+/sourcebroadcast",
                "clusters/+/agentbroadcast",
            ),
            topics(
                "sources/maestro/clusters/cluster-1/sourceevents",
                "sources/maestro/clusters/cluster-1/agentevents",
                "sources/maestro/sourcebroadcast",
                "clusters/cluster1/agentbroadcast",
            ),
            topics(
                "sources/5328eff5-b0c7-48f3-b82e-10052abbf51d/clusters/+/sourceevents",
                "sources/5328eff5-b0c7-48f3-b82e-10052abbf51d/clusters/+/agentevents",
                "sources/5328eff5-b0c7-48f3-b82e-10052abbf51d/sourcebroadcast",
                "clusters/+/agentbroadcast",
            ),
        ];
        for t in ok {
            assert_eq!(t.validate(), Ok(()), "{t:?}");
        }
    }

    #[test]
    fn tv2_rejected_empty() {
        let err = Topics::default().validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "[invalid source events topic \"\", it should match `{SOURCE_EVENTS_PATTERN}`, \
                 invalid agent events topic \"\", it should match `{AGENT_EVENTS_PATTERN}`]"
            )
        );
    }

    #[test]
    fn tv2_rejected_swapped_and_old_names() {
        let t = topics(
            "sources/+/clusters/+/agentevents",
            "sources/+/clusters/+/sourceevents",
            "sources/+/specresync",
            "clusters/+/statusresync",
        );
        let Err(TopicError::Invalid(InvalidTopics(errs))) = t.validate() else {
            panic!("expected aggregated error");
        };
        let roles: Vec<TopicRole> = errs.iter().map(|e| e.role).collect();
        assert_eq!(roles, TopicRole::ALL);
        assert_eq!(
            errs[2].to_string(),
            "invalid source broadcast topic \"sources/+/specresync\", it should match \
             `^(\\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\\+)/sourcebroadcast$`"
        );
    }

    #[test]
    fn single_error_is_not_bracketed() {
        let t = Topics {
            agent_events: "nope".into(),
            ..tv4()
        };
        assert_eq!(
            t.validate().unwrap_err().to_string(),
            format!(
                "invalid agent events topic \"nope\", it should match `{AGENT_EVENTS_PATTERN}`"
            )
        );
    }

    #[test]
    fn empty_broadcast_counts_as_unset() {
        let t = Topics {
            source_broadcast: Some(String::new()),
            ..tv4()
        };
        assert_eq!(t.validate(), Ok(()));
        assert_eq!(t.source_broadcast(), None);
    }

    #[test]
    fn tv3_source_slot() {
        for (topic, slot) in [
            (
                "$share/group/sources/source1/consumers/+/agentevents",
                "source1",
            ),
            ("sources/source2/consumers/+/agentevents", "source2"),
            (
                "$share/group/sources/source3/consumers/+/sourceevents",
                "source3",
            ),
            ("sources/source4/consumers/+/sourceevents", "source4"),
        ] {
            assert_eq!(source_slot(topic), Ok(slot));
        }
        assert_eq!(
            source_slot("clusters/+/agentbroadcast")
                .unwrap_err()
                .to_string(),
            "failed to get source from topic: \"clusters/+/agentbroadcast\""
        );
    }

    #[test]
    fn source_subscribe() {
        let t = Topics {
            agent_events: "$share/statussubscribers/sources/maestro/consumers/+/agentevents".into(),
            agent_broadcast: Some("clusters/+/agentbroadcast".into()),
            ..Topics::for_source("maestro").unwrap()
        };
        assert_eq!(
            source_subscriptions(&t, "maestro").unwrap(),
            vec![
                "$share/statussubscribers/sources/maestro/consumers/+/agentevents",
                "clusters/+/agentbroadcast"
            ]
        );
        assert_eq!(
            source_subscriptions(&t, "hub2").unwrap_err().to_string(),
            "the topic source \"maestro\" does not match the client sourceID \"hub2\""
        );
        let wild = topics(
            "sources/+/clusters/+/sourceevents",
            "sources/+/clusters/+/agentevents",
            "sources/+/sourcebroadcast",
            "clusters/+/agentbroadcast",
        );
        // "+" is not a source id: without the segment check it would "match" the slot.
        assert!(matches!(
            source_subscriptions(&wild, "+"),
            Err(TopicError::InvalidSegment { .. })
        ));
    }

    #[test]
    fn agent_subscribe() {
        assert_eq!(
            agent_subscriptions(&tv4(), "cluster1").unwrap(),
            vec!["sources/hub1/clusters/cluster1/sourceevents"]
        );
        let wild = topics(
            "sources/+/clusters/+/sourceevents",
            "sources/hub1/clusters/+/agentevents",
            "sources/+/sourcebroadcast",
            "clusters/+/agentbroadcast",
        );
        assert_eq!(
            agent_subscriptions(&wild, "cluster1").unwrap(),
            vec![
                "sources/+/clusters/cluster1/sourceevents",
                "sources/+/sourcebroadcast"
            ]
        );
        let concrete = Topics::for_agent("maestro", "c1").unwrap();
        assert_eq!(
            agent_subscriptions(&concrete, "c1").unwrap(),
            vec!["sources/maestro/consumers/c1/sourceevents"]
        );
        assert!(agent_subscriptions(&tv4(), "Cluster_1").is_err());
    }

    #[test]
    fn tv4_source_publish() {
        let t = tv4();
        let resync = ev(SubResource::Status, Action::ResyncRequest);
        let spec = ev(SubResource::Spec, Action::CreateRequest);
        assert_eq!(
            source_publish_topic(&t, "hub1", &resync, Some("cluster1")).unwrap(),
            "sources/hub1/clusters/cluster1/sourceevents"
        );
        assert_eq!(
            source_publish_topic(&t, "hub1", &spec, Some("cluster1")).unwrap(),
            "sources/hub1/clusters/cluster1/sourceevents"
        );
        assert_eq!(
            source_publish_topic(&t, "hub1", &spec, None)
                .unwrap_err()
                .to_string(),
            "\"clustername\" not found"
        );
        assert_eq!(
            source_publish_topic(&t, "hub1", &resync, Some("")).unwrap_err(),
            TopicError::SourceBroadcastNotSet
        );
        assert_eq!(
            TopicError::SourceBroadcastNotSet.to_string(),
            "the source broadcast topic not set"
        );
        // The "unsupported" type of TV-4 fails before any topic is computed.
        assert!("unsupported".parse::<EventType>().is_err());
    }

    #[test]
    fn source_broadcast_publish() {
        let t = Topics {
            source_broadcast: Some("sources/+/sourcebroadcast".into()),
            ..tv4()
        };
        let resync = ev(SubResource::Status, Action::ResyncRequest);
        assert_eq!(
            source_publish_topic(&t, "hub1", &resync, Some("")).unwrap(),
            "sources/hub1/sourcebroadcast"
        );
    }

    #[test]
    fn source_publish_refuses_broken_topics() {
        let spec = ev(SubResource::Spec, Action::UpdateRequest);
        // Upstream would publish to `sources/hub1/clusters//sourceevents`.
        assert!(matches!(
            source_publish_topic(&tv4(), "hub1", &spec, Some("")),
            Err(TopicError::InvalidSegment {
                kind: SegmentKind::ClusterName,
                ..
            })
        ));
        assert!(source_publish_topic(&tv4(), "hub1", &spec, Some("a/b")).is_err());
        // First `+` is the source slot: upstream puts the cluster name there and keeps a `+`.
        let wild = Topics {
            source_events: "sources/+/clusters/+/sourceevents".into(),
            ..tv4()
        };
        assert!(matches!(
            source_publish_topic(&wild, "hub1", &spec, Some("c1")),
            Err(TopicError::NotPublishable { .. })
        ));
        let shared = Topics {
            source_events: "$share/g/sources/hub1/clusters/+/sourceevents".into(),
            ..tv4()
        };
        assert!(matches!(
            source_publish_topic(&shared, "hub1", &spec, Some("c1")),
            Err(TopicError::NotPublishable { .. })
        ));
    }

    #[test]
    fn tv5_agent_publish() {
        let t = tv5();
        let spec_resync = ev(SubResource::Spec, Action::ResyncRequest);
        let status = ev(SubResource::Status, Action::UpdateRequest);
        assert_eq!(
            agent_publish_topic(&t, "cluster1", &spec_resync, Some("")).unwrap(),
            "clusters/cluster1/agentbroadcast"
        );
        assert_eq!(
            agent_publish_topic(&t, "cluster1", &status, Some("hub1")).unwrap(),
            "sources/hub1/clusters/cluster1/agentevents"
        );
        assert_eq!(
            agent_publish_topic(&t, "cluster1", &status, None)
                .unwrap_err()
                .to_string(),
            "\"originalsource\" not found"
        );
    }

    #[test]
    fn agent_publish_derived_from_code() {
        // Without agentBroadcast the "all sources" resync falls back onto agentEvents.
        let maestro = Topics::for_agent("maestro", "c1").unwrap();
        let spec_resync = ev(SubResource::Spec, Action::ResyncRequest);
        let status = ev(SubResource::Status, Action::ResyncResponse);
        assert_eq!(
            agent_publish_topic(&maestro, "c1", &spec_resync, Some("")).unwrap(),
            "sources/maestro/consumers/c1/agentevents"
        );
        assert_eq!(
            agent_publish_topic(&tv4(), "cluster1", &spec_resync, Some("")).unwrap(),
            "sources/hub1/clusters/cluster1/agentevents"
        );
        // The source slot of agentEvents wins over the event's originalsource.
        assert_eq!(
            agent_publish_topic(&tv4(), "cluster1", &status, Some("other")).unwrap(),
            "sources/hub1/clusters/cluster1/agentevents"
        );
        // A resync request addressed to one source also uses agentEvents.
        assert_eq!(
            agent_publish_topic(&tv5(), "cluster1", &spec_resync, Some("hub1")).unwrap(),
            "sources/hub1/clusters/cluster1/agentevents"
        );
        // A wildcard source slot cannot be published to.
        let wild = Topics {
            agent_events: "sources/+/clusters/+/agentevents".into(),
            ..tv4()
        };
        assert!(matches!(
            agent_publish_topic(&wild, "cluster1", &status, Some("hub1")),
            Err(TopicError::NotPublishable { .. })
        ));
        assert!(matches!(
            agent_publish_topic(&tv4(), "CLUSTER", &status, Some("hub1")),
            Err(TopicError::InvalidSegment { .. })
        ));
    }

    #[test]
    fn segments_and_publishability() {
        assert!(validate_segment(SegmentKind::ClusterName, "7ff1a8f4-8811-49b4").is_ok());
        for bad in ["", "A", "a.b", "a_b", "a/b", "+", "#", "é"] {
            assert!(
                validate_segment(SegmentKind::ClusterName, bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            validate_segment(SegmentKind::SourceId, "Hub")
                .unwrap_err()
                .to_string(),
            "invalid source id \"Hub\": a topic segment must match `[a-z0-9-]+`"
        );
        assert!(check_publishable("sources/a/consumers/b/sourceevents").is_ok());
        for bad in ["", "a/+/b", "a/#", "$share/g/a", "$SYS/x", "a\0b"] {
            assert!(check_publishable(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_and_shared_group() {
        let s = Topics::for_source("maestro").unwrap();
        assert_eq!(s.source_events, "sources/maestro/consumers/+/sourceevents");
        assert_eq!(s.agent_events, "sources/maestro/consumers/+/agentevents");
        assert_eq!(s.validate_for_source("maestro"), Ok(()));
        let a = Topics::for_agent("maestro", "c1").unwrap();
        assert_eq!(a.source_events, "sources/maestro/consumers/c1/sourceevents");
        assert_eq!(a.agent_events, "sources/maestro/consumers/c1/agentevents");
        assert_eq!(a.validate_for_agent("c1"), Ok(()));
        assert!(Topics::for_source("Maestro").is_err());
        assert!(Topics::for_agent("maestro", "c_1").is_err());

        let shared = s.with_shared_group("statussubscribers").unwrap();
        assert_eq!(
            shared.agent_events,
            "$share/statussubscribers/sources/maestro/consumers/+/agentevents"
        );
        assert_eq!(
            shared.source_events,
            "sources/maestro/consumers/+/sourceevents"
        );
        assert_eq!(shared.validate_for_source("maestro"), Ok(()));
        // Re-sharing replaces the group rather than stacking prefixes.
        let again = Topics {
            agent_broadcast: Some("clusters/+/agentbroadcast".into()),
            ..shared
        }
        .with_shared_group("g2")
        .unwrap();
        assert_eq!(
            again.agent_events,
            "$share/g2/sources/maestro/consumers/+/agentevents"
        );
        assert_eq!(
            again.agent_broadcast.as_deref(),
            Some("$share/g2/clusters/+/agentbroadcast")
        );
        assert_eq!(again.validate(), Ok(()));
        assert!(again.clone().with_shared_group("G").is_err());
    }

    #[test]
    fn validate_for_source_rejects_unpublishable() {
        let cases = [
            // cluster name would land in the source slot
            ("sources/+/clusters/+/sourceevents", TopicRole::SourceEvents),
            // every event would go to one cluster
            (
                "sources/hub1/clusters/cluster1/sourceevents",
                TopicRole::SourceEvents,
            ),
            (
                "$share/g/sources/hub1/clusters/+/sourceevents",
                TopicRole::SourceEvents,
            ),
        ];
        for (se, role) in cases {
            let t = Topics {
                source_events: se.into(),
                ..tv4()
            };
            match t.validate_for_source("hub1") {
                Err(TopicError::Unusable {
                    role: r,
                    side: Side::Source,
                    ..
                }) => assert_eq!(r, role),
                other => panic!("{se}: {other:?}"),
            }
        }
        let shared_broadcast = Topics {
            source_broadcast: Some("$share/g/sources/hub1/sourcebroadcast".into()),
            ..tv4()
        };
        assert!(matches!(
            shared_broadcast.validate_for_source("hub1"),
            Err(TopicError::Unusable {
                role: TopicRole::SourceBroadcast,
                ..
            })
        ));
        assert!(matches!(
            tv4().validate_for_source("hub2"),
            Err(TopicError::SourceMismatch { .. })
        ));
        assert!(matches!(
            Topics::default().validate_for_source("hub1"),
            Err(TopicError::Invalid(_))
        ));
        let msg = Topics {
            source_events: "sources/+/clusters/+/sourceevents".into(),
            ..tv4()
        }
        .validate_for_source("hub1")
        .unwrap_err()
        .to_string();
        assert!(
            msg.starts_with(
                "the source events topic \"sources/+/clusters/+/sourceevents\" cannot be used by a source: "
            ),
            "{msg}"
        );
    }

    #[test]
    fn validate_for_agent_rejects_unusable() {
        assert_eq!(tv4().validate_for_agent("cluster1"), Ok(()));
        assert_eq!(tv5().validate_for_agent("cluster1"), Ok(()));
        let bad = [
            (
                Topics {
                    agent_events: "sources/+/clusters/+/agentevents".into(),
                    ..tv4()
                },
                TopicRole::AgentEvents,
            ),
            (
                Topics {
                    agent_events: "$share/g/sources/hub1/clusters/+/agentevents".into(),
                    ..tv4()
                },
                TopicRole::AgentEvents,
            ),
            (
                Topics {
                    agent_events: "sources/hub1/clusters/other/agentevents".into(),
                    ..tv4()
                },
                TopicRole::AgentEvents,
            ),
            (
                // last `+` is the source slot: the subscription would be wrong
                Topics {
                    source_events: "sources/+/clusters/cluster1/sourceevents".into(),
                    ..tv4()
                },
                TopicRole::SourceEvents,
            ),
            (
                Topics {
                    source_events: "sources/hub1/clusters/other/sourceevents".into(),
                    ..tv4()
                },
                TopicRole::SourceEvents,
            ),
            (
                Topics {
                    agent_broadcast: Some("clusters/other/agentbroadcast".into()),
                    ..tv4()
                },
                TopicRole::AgentBroadcast,
            ),
            (
                Topics {
                    agent_broadcast: Some("$share/g/clusters/+/agentbroadcast".into()),
                    ..tv4()
                },
                TopicRole::AgentBroadcast,
            ),
        ];
        for (t, role) in bad {
            match t.validate_for_agent("cluster1") {
                Err(TopicError::Unusable {
                    role: r,
                    side: Side::Agent,
                    ..
                }) => assert_eq!(r, role, "{t:?}"),
                other => panic!("{t:?}: {other:?}"),
            }
        }
        // An agent may listen to every source and to a shared source broadcast.
        let multi = Topics {
            source_events: "sources/+/clusters/+/sourceevents".into(),
            source_broadcast: Some("sources/+/sourcebroadcast".into()),
            ..tv4()
        };
        assert_eq!(multi.validate_for_agent("cluster1"), Ok(()));
        assert!(tv4().validate_for_agent("Cluster1").is_err());
    }

    #[test]
    fn serde_keys() {
        let t = tv5();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "sourceEvents": "sources/hub1/clusters/+/sourceevents",
                "agentEvents": "sources/hub1/clusters/+/agentevents",
                "agentBroadcast": "clusters/+/agentbroadcast"
            })
        );
        let back: Topics = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        let sparse: Topics =
            serde_json::from_str(r#"{"sourceEvents":null,"sourceBroadcast":""}"#).unwrap();
        assert_eq!(sparse, Topics::default());
    }

    #[test]
    fn go_quote_matches_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\n\t\u{0}\u{7f}"), r#""\n\t\x00\x7f""#);
        assert_eq!(go_quote("héllo"), "\"héllo\"");
        assert_eq!(go_quote("\u{a0}\u{85}"), r#""\u00a0\u0085""#);
    }

    fn topic_like() -> impl Strategy<Value = String> {
        let seg = prop_oneof![
            Just("+".to_string()),
            Just("#".to_string()),
            Just("$share".to_string()),
            Just("sourceevents".to_string()),
            Just("agentevents".to_string()),
            Just("sourcebroadcast".to_string()),
            Just("agentbroadcast".to_string()),
            "[a-z0-9+-]{0,6}",
            ".{0,4}",
        ];
        prop::collection::vec(seg, 0..8).prop_map(|v| v.join("/"))
    }

    proptest! {
        #[test]
        fn never_panics_and_never_publishes_wildcards(
            se in topic_like(), ae in topic_like(), sb in topic_like(), ab in topic_like(),
            id in ".{0,8}", cluster in prop_oneof![Just(String::new()), "[a-z0-9-]{1,6}", ".{0,6}"],
            resync in any::<bool>(), orig in prop::option::of(prop_oneof![Just(String::new()), ".{0,4}"]),
        ) {
            let t = Topics {
                source_events: se,
                agent_events: ae,
                source_broadcast: Some(sb),
                agent_broadcast: Some(ab),
            };
            let _ = t.validate();
            let _ = t.validate_for_source(&id);
            let _ = t.validate_for_agent(&cluster);
            let _ = source_subscriptions(&t, &id);
            let _ = agent_subscriptions(&t, &cluster);
            let _ = t.clone().with_shared_group(&id);
            let action = if resync { Action::ResyncRequest } else { Action::UpdateRequest };
            let et = ev(SubResource::Status, action);
            if let Ok(p) = source_publish_topic(&t, &id, &et, Some(&cluster)) {
                prop_assert!(check_publishable(&p).is_ok());
            }
            if let Ok(p) = agent_publish_topic(&t, &cluster, &et, orig.as_deref()) {
                prop_assert!(check_publishable(&p).is_ok());
            }
        }

        #[test]
        fn validated_configs_publish_cleanly(
            sid in "[a-z0-9-]{1,8}", cluster in "[a-z0-9-]{1,8}", resync in any::<bool>(),
        ) {
            let action = if resync { Action::ResyncRequest } else { Action::CreateRequest };
            let s = Topics::for_source(&sid).unwrap();
            prop_assert_eq!(s.validate_for_source(&sid), Ok(()));
            let p = source_publish_topic(&s, &sid, &ev(SubResource::Spec, action.clone()), Some(&cluster)).unwrap();
            prop_assert_eq!(p, format!("sources/{sid}/consumers/{cluster}/sourceevents"));

            let a = Topics::for_agent(&sid, &cluster).unwrap();
            prop_assert_eq!(a.validate_for_agent(&cluster), Ok(()));
            let sub = agent_subscriptions(&a, &cluster).unwrap();
            prop_assert_eq!(&sub[0], &format!("sources/{sid}/consumers/{cluster}/sourceevents"));
            let p = agent_publish_topic(&a, &cluster, &ev(SubResource::Status, action), Some("")).unwrap();
            prop_assert_eq!(p, format!("sources/{sid}/consumers/{cluster}/agentevents"));
        }
    }
}
