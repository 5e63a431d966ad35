//! What one agent needs to run: its cluster, identities, topics and timing. Built by the
//! command line ([`crate::cli`]) or directly by code that runs many agents in one
//! process (tests, benchmarks, the hub's quickstart).

use std::time::Duration;

use workbus_schemas::client_id;
use workbus_schemas::mqtt::Encoding;
use workbus_schemas::topics::{self, TopicError, Topics};

use workbus_transport::TransportConfig;

/// Default upper bound between two status refreshes of a work (upstream: 10 s).
pub const DEFAULT_STATUS_SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// Default interval of full re-applies that correct drift (upstream: 4–6 min).
pub const DEFAULT_APPLY_RESYNC_INTERVAL: Duration = Duration::from_secs(300);

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
    /// Upper bound between two status refreshes of a work (upstream: 10 s).
    pub status_sync_interval: Duration,
    /// How often a work is fully re-applied to correct drift on the cluster (upstream:
    /// 4–6 min). Cheap: unchanged objects are not written again.
    pub apply_resync_interval: Duration,
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
            apply_resync_interval: DEFAULT_APPLY_RESYNC_INTERVAL,
            resync_digest: true,
            hub_host: host_port(&transport.host, transport.port),
            eviction_grace_period: DEFAULT_EVICTION_GRACE_PERIOD,
            transport,
        })
    }

    /// The hub hash: lowercase hex SHA-256 of [`AgentConfig::hub_host`].
    pub fn hub_hash(&self) -> String {
        workbus_schemas::work::applied::hub_hash(&self.hub_host)
    }
}

/// `host:port` as sdk-go's `brokerHost` spells it (IPv6 addresses in brackets), for
/// agents configured without a config file.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_host_is_the_broker_address() {
        assert_eq!(host_port("broker", 1883), "broker:1883");
        assert_eq!(host_port("::1", 1883), "[::1]:1883");
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
