//! Who may use which topic: the broker-side view of the topic layout (issue 12).
//!
//! A broker that enforces per-identity topic ACLs must know which topics belong to which
//! cluster. That knowledge is protocol, so it lives here, next to [`crate::topics`], and
//! is derived from the same configured [`Topics`] templates the hub and the agents use:
//! the broker (ours, or a generated Mosquitto/EMQX configuration) never hard-codes a
//! topic shape.
//!
//! - [`Identity`]: who a connection is — the agent of one cluster, a cluster that is
//!   joining with a bootstrap token, or a source (the hub). Its text form
//!   ([`Identity::name`]) is what a client certificate's CN (or DNS SAN) and a credential
//!   file's user name carry: a cluster name for an agent, `bootstrap.<cluster>` for a
//!   joining cluster, `source.<id>` for a source. Cluster names are DNS labels (no `.`),
//!   so the three never collide.
//! - [`Identity::may_use_client_id`]: the MQTT client id must name the identity
//!   (OCM's agent naming, [`crate::client_id`]).
//! - [`TopicAcl`]: built from the fleet's templates (cluster slot `+`); answers "may
//!   identity I publish to topic T" and "may I subscribe to filter F", and lists the
//!   [`Grant`]s of an identity (or of a placeholder, for external brokers' pattern rules).
//!
//! The rules: a bootstrap identity publishes only to its cluster's `agentEvents` and
//! subscribes only to its cluster's `sourceEvents` (no broadcasts: it may only join, and
//! the hub checks which data types it sends); an agent publishes only to its own `agentEvents` (and `agentBroadcast` with
//! its own cluster) and subscribes only to its own `sourceEvents` and the configured
//! `sourceBroadcast`; a source publishes only to `sourceEvents`/`sourceBroadcast` with its
//! own source slot and subscribes only to `agentEvents` with its own source slot and to
//! `agentBroadcast`. A subscription is allowed when every topic it can match is allowed,
//! so `#`, or a `+` in another cluster's slot, is refused for an agent.

use std::fmt;

use crate::client_id;
use crate::topics::{SegmentKind, TopicError, TopicRole, Topics, validate_segment};

/// The text before a source id in a source identity's name.
pub const SOURCE_IDENTITY_PREFIX: &str = "source.";

/// The text before a cluster name in a bootstrap identity's name (its MQTT user name).
pub const BOOTSTRAP_IDENTITY_PREFIX: &str = "bootstrap.";

/// The MQTT 5 user property in which the hub's embedded broker stamps the authenticated
/// identity ([`Identity::name`]) of a message's publisher, after removing any property
/// of that name the client sent. Subscribers trust it only from a broker that stamps.
pub const PUBLISHER_PROPERTY: &str = "workbus.io/publisher";

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The work agent of one managed cluster (the cluster name).
    Agent(String),
    /// A source (the hub), by its source id.
    Source(String),
    /// A cluster joining with a hub-issued bootstrap token (the cluster name): it may
    /// only send its join requests and read the hub's answers.
    Bootstrap(String),
}

/// A name that is no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an identity: expected a cluster name, bootstrap.<cluster name> or source.<source id>, each matching `[a-z0-9-]+`"
)]
pub struct InvalidIdentity(pub String);

impl Identity {
    /// Reads an identity's text form: `source.<id>`, `bootstrap.<cluster>` or a cluster
    /// name.
    pub fn parse(name: &str) -> Result<Identity, InvalidIdentity> {
        let (kind, value, make): (_, _, fn(String) -> Identity) =
            if let Some(id) = name.strip_prefix(SOURCE_IDENTITY_PREFIX) {
                (SegmentKind::SourceId, id, Identity::Source)
            } else if let Some(cluster) = name.strip_prefix(BOOTSTRAP_IDENTITY_PREFIX) {
                (SegmentKind::ClusterName, cluster, Identity::Bootstrap)
            } else {
                (SegmentKind::ClusterName, name, Identity::Agent)
            };
        // A cluster name is also a DNS label: at most 63 characters.
        let too_long = kind == SegmentKind::ClusterName && value.len() > 63;
        if too_long || validate_segment(kind, value).is_err() {
            return Err(InvalidIdentity(truncated(name)));
        }
        Ok(make(value.to_owned()))
    }

    /// The text form: the cluster name, `bootstrap.<cluster>` or `source.<id>`.
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// Whether a connection of this identity may use MQTT client id `client_id`: an agent
    /// `<cluster>-work-agent…-client` ([`client_id::agent_client_id_matches`]), a source
    /// `<id>-hub…` ([`client_id::source_client_id_matches`]), a bootstrap identity exactly
    /// [`client_id::bootstrap_client_id`].
    pub fn may_use_client_id(&self, client_id: &str) -> bool {
        match self {
            Identity::Agent(cluster) => client_id::agent_client_id_matches(cluster, client_id),
            Identity::Source(id) => client_id::source_client_id_matches(id, client_id),
            Identity::Bootstrap(cluster) => client_id == client_id::bootstrap_client_id(cluster),
        }
    }

    /// The cluster of an agent or bootstrap identity.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Identity::Agent(c) | Identity::Bootstrap(c) => Some(c),
            Identity::Source(_) => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Agent(cluster) => f.write_str(cluster),
            Identity::Source(id) => write!(f, "{SOURCE_IDENTITY_PREFIX}{id}"),
            Identity::Bootstrap(cluster) => write!(f, "{BOOTSTRAP_IDENTITY_PREFIX}{cluster}"),
        }
    }
}

/// Error texts quote hostile input: keep them short.
fn truncated(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// PUBLISH to topics matching the filter.
    Publish,
    /// SUBSCRIBE to the filter or to any filter it covers.
    Subscribe,
}

/// One permission: `access` on the topics matched by `filter`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Publish or subscribe.
    pub access: Access,
    /// An MQTT topic filter (`+` only; no `#`, no `$share/` prefix).
    pub filter: String,
}

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// A fixed word.
    Lit(String),
    /// The source slot: concrete (one source) or `None` for `+` (any source).
    Source(Option<String>),
    /// The cluster slot (always `+` in a fleet template).
    Cluster,
}

/// Who a rule is for and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    role: TopicRole,
    agent: bool,
    access: Access,
    segs: Vec<Seg>,
}

/// The per-identity topic ACL of one fleet, derived from its [`Topics`] templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicAcl {
    rules: Vec<Rule>,
}

/// How a placeholder is spelled where an external broker substitutes the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A concrete identity.
    Identity(&'a Identity),
    /// Every agent, with the cluster slot written as `placeholder` (Mosquitto `%u`,
    /// EMQX `${username}`).
    AnyAgent {
        /// The placeholder text.
        placeholder: &'a str,
    },
}

impl TopicAcl {
    /// The ACL of a fleet using `topics`: the source side's templates, whose cluster
    /// slots are `+` (a `$share/<group>/` prefix is ignored). Concrete cluster slots are
    /// refused: such templates serve one cluster, not a fleet.
    pub fn new(topics: &Topics) -> Result<TopicAcl, TopicError> {
        topics.validate()?;
        let mut rules = Vec::new();
        let mut add = |role: TopicRole, template: &str| -> Result<(), TopicError> {
            let segs = template_segments(role, template)?;
            // Publisher first, then subscriber.
            let (agent_publishes, agent_subscribes) = match role {
                TopicRole::AgentEvents | TopicRole::AgentBroadcast => (true, false),
                TopicRole::SourceEvents | TopicRole::SourceBroadcast => (false, true),
            };
            rules.push(Rule {
                role,
                agent: agent_publishes,
                access: Access::Publish,
                segs: segs.clone(),
            });
            rules.push(Rule {
                role,
                agent: agent_subscribes,
                access: Access::Subscribe,
                segs,
            });
            Ok(())
        };
        add(TopicRole::SourceEvents, &topics.source_events)?;
        add(TopicRole::AgentEvents, &topics.agent_events)?;
        if let Some(t) = topics.source_broadcast() {
            add(TopicRole::SourceBroadcast, t)?;
        }
        if let Some(t) = topics.agent_broadcast() {
            add(TopicRole::AgentBroadcast, t)?;
        }
        Ok(TopicAcl { rules })
    }

    /// Everything `subject` may do, as topic filters.
    pub fn grants(&self, subject: Subject<'_>) -> Vec<Grant> {
        let (agent, value) = match subject {
            Subject::Identity(Identity::Agent(c)) => (true, c.as_str()),
            Subject::Identity(Identity::Source(s)) => (false, s.as_str()),
            Subject::Identity(Identity::Bootstrap(c)) => (true, c.as_str()),
            Subject::AnyAgent { placeholder } => (true, placeholder),
        };
        // A joining cluster gets its own events topics only, no broadcasts.
        let events_only = matches!(subject, Subject::Identity(Identity::Bootstrap(_)));
        let mut out: Vec<Grant> = Vec::new();
        for rule in self.rules.iter().filter(|r| {
            r.agent == agent
                && (!events_only
                    || matches!(r.role, TopicRole::AgentEvents | TopicRole::SourceEvents))
        }) {
            let mut parts = Vec::with_capacity(rule.segs.len());
            let mut applies = true;
            for seg in &rule.segs {
                parts.push(match seg {
                    Seg::Lit(w) => w.as_str(),
                    // An agent may talk to any source the template names.
                    Seg::Source(slot) if agent => slot.as_deref().unwrap_or("+"),
                    // A source only to itself.
                    Seg::Source(slot) => {
                        applies &= slot.as_deref().is_none_or(|s| s == value);
                        value
                    }
                    Seg::Cluster if agent => value,
                    Seg::Cluster => "+",
                });
            }
            let grant = Grant {
                access: rule.access,
                filter: parts.join("/"),
            };
            if applies && !out.contains(&grant) {
                out.push(grant);
            }
        }
        out
    }

    /// Whether `identity` may publish to `topic` (a topic name, no wildcards).
    pub fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        allows(
            &self.grants(Subject::Identity(identity)),
            Access::Publish,
            topic,
        )
    }

    /// Whether `identity` may subscribe to `filter` (without a `$share/<group>/`
    /// prefix): only if every topic `filter` can match is one it may read.
    pub fn may_subscribe(&self, identity: &Identity, filter: &str) -> bool {
        allows(
            &self.grants(Subject::Identity(identity)),
            Access::Subscribe,
            filter,
        )
    }
}

/// Whether one of `grants` with `access` covers `filter` (a topic name is a filter
/// without wildcards). Compute the grants once per connection and call this per packet.
pub fn allows(grants: &[Grant], access: Access, filter: &str) -> bool {
    grants
        .iter()
        .any(|g| g.access == access && filter_covers(&g.filter, filter))
}

/// Whether every topic matched by `requested` is matched by `allowed` (MQTT filters;
/// `allowed` without `#`). Written over segments so that `+` in `requested` is only
/// covered by `+` in `allowed`, and `#` in `requested` only by a `#` in `allowed`.
pub fn filter_covers(allowed: &str, requested: &str) -> bool {
    let mut a = allowed.split('/');
    let mut r = requested.split('/');
    loop {
        match (a.next(), r.next()) {
            (None, None) => return true,
            (Some("#"), _) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(_), Some("+")) => return false,
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

/// The segments of a validated template of `role`, with its source and cluster slots
/// marked (reference §1.2: events topics `<w>/<source>/<w>/<cluster>/<kind>`,
/// `<w>/<source>/sourcebroadcast`, `<w>/<cluster>/agentbroadcast`).
fn template_segments(role: TopicRole, template: &str) -> Result<Vec<Seg>, TopicError> {
    let bare = match template.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or(rest, |(_, tail)| tail),
        None => template,
    };
    let (source_at, cluster_at) = match role {
        TopicRole::SourceEvents | TopicRole::AgentEvents => (Some(1), Some(3)),
        TopicRole::SourceBroadcast => (Some(1), None),
        TopicRole::AgentBroadcast => (None, Some(1)),
    };
    let mut segs = Vec::new();
    for (i, word) in bare.split('/').enumerate() {
        segs.push(if Some(i) == source_at {
            Seg::Source((word != "+").then(|| word.to_owned()))
        } else if Some(i) == cluster_at {
            if word != "+" {
                return Err(TopicError::Unusable {
                    role,
                    topic: template.to_owned(),
                    side: crate::topics::Side::Source,
                    reason: "a broker ACL serves every cluster, so its cluster segment must be `+`",
                });
            }
            Seg::Cluster
        } else {
            Seg::Lit(word.to_owned())
        });
    }
    Ok(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(c: &str) -> Identity {
        Identity::Agent(c.into())
    }

    fn maestro() -> TopicAcl {
        TopicAcl::new(&Topics::for_source("maestro").unwrap()).unwrap()
    }

    #[test]
    fn identities_parse_and_print() {
        assert_eq!(Identity::parse("edge-1"), Ok(agent("edge-1")));
        assert_eq!(
            Identity::parse("source.maestro"),
            Ok(Identity::Source("maestro".into()))
        );
        assert_eq!(Identity::Source("hub".into()).name(), "source.hub");
        for bad in [
            "",
            "Edge",
            "a.b",
            "source.",
            "source.A",
            "a/b",
            "+",
            "#",
            &"x".repeat(64),
        ] {
            assert!(Identity::parse(bad).is_err(), "{bad}");
        }
        let long = Identity::parse(&"é".repeat(10_000)).unwrap_err();
        assert!(long.to_string().len() < 400);
    }

    #[test]
    fn client_ids_name_the_identity() {
        let a = agent("edge-1");
        assert!(a.may_use_client_id("edge-1-work-agent-client"));
        assert!(a.may_use_client_id("edge-1-work-agent-7-client"));
        assert!(!a.may_use_client_id("edge-2-work-agent-client"));
        assert!(!a.may_use_client_id("edge-1"));
        assert!(!a.may_use_client_id(""));
        let s = Identity::Source("maestro".into());
        assert!(s.may_use_client_id("maestro-hub-1a2b3c4d"));
        assert!(!s.may_use_client_id("edge-1-work-agent-client"));
        assert!(!s.may_use_client_id("maestrox-hub-1"));
    }

    #[test]
    fn agents_get_their_own_topics_only() {
        let acl = maestro();
        let a = agent("a");
        assert!(acl.may_subscribe(&a, "sources/maestro/consumers/a/sourceevents"));
        assert!(acl.may_publish(&a, "sources/maestro/consumers/a/agentevents"));
        for denied in [
            "sources/maestro/consumers/b/sourceevents",
            "sources/maestro/consumers/+/sourceevents",
            "sources/+/consumers/a/sourceevents",
            "sources/maestro/consumers/a/#",
            "sources/maestro/consumers/a/agentevents",
            "#",
            "+/+/+/+/+",
            "sources/maestro/#",
        ] {
            assert!(!acl.may_subscribe(&a, denied), "{denied}");
        }
        for denied in [
            "sources/maestro/consumers/b/agentevents",
            "sources/maestro/consumers/a/sourceevents",
            "sources/other/consumers/a/agentevents",
            "x",
        ] {
            assert!(!acl.may_publish(&a, denied), "{denied}");
        }
    }

    #[test]
    fn the_source_does_the_source_side_only() {
        let acl = maestro();
        let s = Identity::Source("maestro".into());
        assert!(acl.may_publish(&s, "sources/maestro/consumers/a/sourceevents"));
        assert!(acl.may_subscribe(&s, "sources/maestro/consumers/+/agentevents"));
        assert!(acl.may_subscribe(&s, "sources/maestro/consumers/a/agentevents"));
        assert!(!acl.may_publish(&s, "sources/maestro/consumers/a/agentevents"));
        assert!(!acl.may_subscribe(&s, "sources/maestro/consumers/+/sourceevents"));
        assert!(!acl.may_subscribe(&s, "#"));
        let other = Identity::Source("other".into());
        assert!(!acl.may_publish(&other, "sources/maestro/consumers/a/sourceevents"));
        assert_eq!(acl.grants(Subject::Identity(&other)), vec![]);
    }

    #[test]
    fn broadcasts_and_wildcard_sources() {
        let topics = Topics {
            source_events: "sources/+/clusters/+/sourceevents".into(),
            agent_events: "$share/g/sources/+/clusters/+/agentevents".into(),
            source_broadcast: Some("sources/+/sourcebroadcast".into()),
            agent_broadcast: Some("clusters/+/agentbroadcast".into()),
        };
        let acl = TopicAcl::new(&topics).unwrap();
        let a = agent("c1");
        assert_eq!(
            acl.grants(Subject::Identity(&a)),
            vec![
                Grant {
                    access: Access::Subscribe,
                    filter: "sources/+/clusters/c1/sourceevents".into()
                },
                Grant {
                    access: Access::Publish,
                    filter: "sources/+/clusters/c1/agentevents".into()
                },
                Grant {
                    access: Access::Subscribe,
                    filter: "sources/+/sourcebroadcast".into()
                },
                Grant {
                    access: Access::Publish,
                    filter: "clusters/c1/agentbroadcast".into()
                },
            ]
        );
        assert!(acl.may_publish(&a, "clusters/c1/agentbroadcast"));
        assert!(!acl.may_publish(&a, "clusters/c2/agentbroadcast"));
        let s = Identity::Source("hub1".into());
        assert!(acl.may_publish(&s, "sources/hub1/sourcebroadcast"));
        assert!(!acl.may_publish(&s, "sources/hub2/sourcebroadcast"));
        assert!(acl.may_subscribe(&s, "clusters/+/agentbroadcast"));
        assert!(acl.may_subscribe(&s, "sources/hub1/clusters/+/agentevents"));
        assert!(!acl.may_subscribe(&s, "sources/+/clusters/+/agentevents"));
        let placeholders = acl.grants(Subject::AnyAgent { placeholder: "%u" });
        assert_eq!(placeholders[0].filter, "sources/+/clusters/%u/sourceevents");
    }

    #[test]
    fn bootstrap_identities_may_only_join() {
        let b = Identity::Bootstrap("edge-1".into());
        assert_eq!(b.name(), "bootstrap.edge-1");
        assert_eq!(Identity::parse("bootstrap.edge-1"), Ok(b.clone()));
        assert_eq!(Identity::parse("bootstrap"), Ok(agent("bootstrap")));
        assert!(Identity::parse("bootstrap.").is_err());
        assert!(Identity::parse("bootstrap.a.b").is_err());
        assert_eq!(b.cluster(), Some("edge-1"));
        assert!(b.may_use_client_id("edge-1-registration-bootstrap"));
        assert!(!b.may_use_client_id("edge-1-work-agent-client"));
        assert!(!agent("edge-1").may_use_client_id("edge-1-registration-bootstrap"));
        let topics = Topics {
            source_events: "sources/+/clusters/+/sourceevents".into(),
            agent_events: "sources/+/clusters/+/agentevents".into(),
            source_broadcast: Some("sources/+/sourcebroadcast".into()),
            agent_broadcast: Some("clusters/+/agentbroadcast".into()),
        };
        let acl = TopicAcl::new(&topics).unwrap();
        assert_eq!(
            acl.grants(Subject::Identity(&b)),
            vec![
                Grant {
                    access: Access::Subscribe,
                    filter: "sources/+/clusters/edge-1/sourceevents".into()
                },
                Grant {
                    access: Access::Publish,
                    filter: "sources/+/clusters/edge-1/agentevents".into()
                },
            ]
        );
        assert!(!acl.may_publish(&b, "clusters/edge-1/agentbroadcast"));
        assert!(!acl.may_subscribe(&b, "sources/+/sourcebroadcast"));
        assert!(!acl.may_publish(&b, "sources/hub/clusters/edge-2/agentevents"));
        assert!(acl.may_publish(&b, "sources/hub/clusters/edge-1/agentevents"));
    }

    #[test]
    fn per_cluster_templates_are_refused() {
        let t = Topics::for_agent("maestro", "c1").unwrap();
        assert!(matches!(
            TopicAcl::new(&t),
            Err(TopicError::Unusable { .. })
        ));
        assert!(TopicAcl::new(&Topics::default()).is_err());
    }

    #[test]
    fn filter_cover() {
        assert!(filter_covers("a/+/c", "a/b/c"));
        assert!(filter_covers("a/+/c", "a/+/c"));
        assert!(!filter_covers("a/b/c", "a/+/c"));
        assert!(!filter_covers("a/+/c", "a/#"));
        assert!(!filter_covers("a/+/c", "a/b"));
        assert!(!filter_covers("a/+/c", "a/b/c/d"));
        assert!(filter_covers("a/#", "a/b/c"));
        assert!(!filter_covers("a", ""));
    }
}
