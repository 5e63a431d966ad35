//! What one agent needs to run: its cluster, identities, topics and timing. Built by the
//! command line ([`crate::cli`]) or directly by code that runs many agents in one
//! process (tests, benchmarks, the hub's quickstart).

use std::time::Duration;

use workbus_schemas::client_id;
use workbus_schemas::mqtt::Encoding;
use workbus_schemas::topics::{self, TopicError, Topics};

use workbus_transport::TransportConfig;

/// Default base interval between two status refreshes of a work (upstream
/// `--status-sync-interval`: 10 s), before [`DEFAULT_STATUS_SYNC_JITTER`].
pub const DEFAULT_STATUS_SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// Default jitter of the status sync: each wait is the interval plus up to 90 % of it,
/// so 10–19 s (upstream `wait.Jitter(interval, 0.9)`, manifestwork-semantics §9).
pub const DEFAULT_STATUS_SYNC_JITTER: f64 = 0.9;

/// Default base interval of full re-applies that correct drift (upstream
/// `ResyncInterval`: 4 min), before [`DEFAULT_APPLY_RESYNC_JITTER`].
pub const DEFAULT_APPLY_RESYNC_INTERVAL: Duration = Duration::from_secs(4 * 60);

/// Default jitter of the full re-apply: up to 50 % more, so every 4–6 min (§9).
pub const DEFAULT_APPLY_RESYNC_JITTER: f64 = 0.5;

/// Default number of feedback watches per agent (upstream `--max-feedback-watch`):
/// manifests configured with `feedbackScrapeType: Watch` beyond it are polled.
pub const DEFAULT_MAX_FEEDBACK_WATCH: usize = 50;

/// Default time an AppliedManifestWork whose ManifestWork is gone waits before it and
/// what it owns are removed (OCM `--appliedmanifestwork-eviction-grace-period`).
pub const DEFAULT_EVICTION_GRACE_PERIOD: Duration = Duration::from_secs(60 * 60);

/// Configuration of one agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The managed cluster's name (`--spoke-cluster-name`).
    pub cluster_name: String,
    /// CloudEvents source of the agent's events (`--cloudevents-client-id`), by
    /// convention `<cluster>-work-agent`. The MQTT client id is this plus `-client`.
    pub agent_id: String,
    /// Topic templates (sdk-go config `topics`).
    pub topics: Topics,
    /// Broker connection; its subscriptions and client id are derived by [`AgentConfig::new`].
    pub transport: TransportConfig,
    /// How outgoing events are encoded (binary on MQTT 5, structured on MQTT 3.1.1).
    pub encoding: Encoding,
    /// Base interval between two status refreshes of a work (upstream: 10 s); each wait
    /// is stretched by up to [`AgentConfig::status_sync_jitter`] of it. A change of a
    /// watched object (`feedbackScrapeType: Watch`) refreshes sooner.
    pub status_sync_interval: Duration,
    /// Fraction of `status_sync_interval` added at random to each wait (upstream 0.9:
    /// 10–19 s). 0 makes the sync exactly periodic (tests); clamped to 0..=10.
    pub status_sync_jitter: f64,
    /// Base interval of a work's full re-apply that corrects drift on the cluster
    /// (upstream: 4 min). Cheap: unchanged objects are not written again.
    pub apply_resync_interval: Duration,
    /// Fraction of `apply_resync_interval` added at random to each wait (upstream 0.5:
    /// 4–6 min). 0 disables the jitter; clamped to 0..=10.
    pub apply_resync_jitter: f64,
    /// At most this many feedback watches (resource + namespace) per agent
    /// (`--max-feedback-watch`); manifests configured to be watched beyond it are
    /// polled at the status sync interval (`crate::feedback_watch`).
    pub max_feedback_watch: usize,
    /// Whether to use the resync digest extension (`workbus_schemas::resync_digest`):
    /// advertise it, and use the digest forms with sources that advertised it. Off, the
    /// agent speaks exactly the upstream resync protocol (benchmarks compare the two).
    pub resync_digest: bool,
    /// The hub's address as the agent was configured with it: the sdk-go config's
    /// `brokerHost` (`host:port`). Its hash ([`AgentConfig::hub_hash`]) prefixes the
    /// names of the agent's AppliedManifestWorks.
    pub hub_host: String,
    /// How long an AppliedManifestWork whose work the agent no longer holds (or that
    /// belongs to another hub) is kept before it and what it owns are removed; 100 years
    /// or more never evicts (`crate::applied_work::EVICTION_DISABLED`).
    pub eviction_grace_period: Duration,
    /// The hub's spec signing key (`--spec-signing-key`): when set, spec events (applies,
    /// deletes, resync answers) without a valid signature by it are rejected
    /// (`workbus_schemas::signature`). `None` (the default) accepts unsigned events,
    /// as OCM agents do.
    pub spec_signing_key: Option<workbus_schemas::signature::VerifyingKey>,
    /// Cluster registration (issue 13): join with a bootstrap token, connect with the
    /// cluster's own certificate, renew its lease, report its status, rotate its
    /// certificate (`crate::registration`). `None` (the default): the cluster was
    /// created on the hub and the agent is given its credentials, as before.
    pub registration: Option<crate::registration::RegistrationConfig>,
    /// Bounds of the status outbox (`--outbox-max-statuses`, `--outbox-max-bytes`;
    /// `crate::outbox`): what statuses produced while the broker is away may occupy.
    pub outbox: crate::outbox::OutboxLimits,
}

impl AgentConfig {
    /// An agent of `cluster_name` for the given topics and broker connection: derives the
    /// agent id, the MQTT client id (`<agent id>-client`, as sdk-go) and the
    /// subscriptions, and checks that the topics can be used by this agent.
    pub fn new(
        cluster_name: &str,
        agent_id: Option<&str>,
        topics: Topics,
        mut transport: TransportConfig,
    ) -> Result<AgentConfig, TopicError> {
        topics::validate_segment(topics::SegmentKind::ClusterName, cluster_name)?;
        topics.validate_for_agent(cluster_name)?;
        let agent_id = agent_id
            .map(str::to_string)
            .unwrap_or_else(|| client_id::default_agent_id(cluster_name));
        transport.client_id = client_id::mqtt_client_id(&agent_id);
        transport.subscriptions = topics::agent_subscriptions(&topics, cluster_name)?;
        let encoding = match transport.protocol {
            workbus_transport::Protocol::V5 => Encoding::Binary,
            workbus_transport::Protocol::V311 => Encoding::Structured,
        };
        Ok(AgentConfig {
            cluster_name: cluster_name.to_string(),
            agent_id,
            topics,
            encoding,
            status_sync_interval: DEFAULT_STATUS_SYNC_INTERVAL,
            status_sync_jitter: DEFAULT_STATUS_SYNC_JITTER,
            apply_resync_interval: DEFAULT_APPLY_RESYNC_INTERVAL,
            apply_resync_jitter: DEFAULT_APPLY_RESYNC_JITTER,
            max_feedback_watch: DEFAULT_MAX_FEEDBACK_WATCH,
            resync_digest: true,
            hub_host: transport.endpoints.first().to_string(),
            eviction_grace_period: DEFAULT_EVICTION_GRACE_PERIOD,
            spec_signing_key: None,
            registration: None,
            outbox: crate::outbox::OutboxLimits::default(),
            transport,
        })
    }

    /// The hub hash: lowercase hex SHA-256 of [`AgentConfig::hub_host`].
    pub fn hub_hash(&self) -> String {
        workbus_schemas::work::applied::hub_hash(&self.hub_host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_host_is_the_broker_address() {
        let ipv6 = TransportConfig::new("::1", 1883, "");
        assert_eq!(ipv6.endpoints.first().to_string(), "[::1]:1883");
        let topics = Topics::for_agent("maestro", "c1").unwrap();
        let config =
            AgentConfig::new("c1", None, topics, TransportConfig::new("broker", 1883, "")).unwrap();
        assert_eq!(config.hub_host, "broker:1883");
        assert_eq!(
            config.hub_hash(),
            workbus_schemas::work::applied::hub_hash("broker:1883")
        );
        assert_eq!(config.eviction_grace_period, DEFAULT_EVICTION_GRACE_PERIOD);
    }
}
