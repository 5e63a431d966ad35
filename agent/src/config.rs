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
            transport,
            encoding,
            status_sync_interval: DEFAULT_STATUS_SYNC_INTERVAL,
            apply_resync_interval: DEFAULT_APPLY_RESYNC_INTERVAL,
            resync_digest: true,
        })
    }
}
