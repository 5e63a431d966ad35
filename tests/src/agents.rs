//! Starting real agents (with the simulated cluster) for tests.

use std::sync::Arc;
use std::time::Duration;

use workbus_agent::config::AgentConfig;
use workbus_agent::runtime::{self, AgentHandle};
use workbus_agent::store::AgentStore;
use workbus_agent::target::sim::SimulatedCluster;
use workbus_schemas::topics::Topics;
use workbus_transport::TransportConfig;

/// The config of an agent for `cluster` following `source_id`'s topics on a broker, with
/// test-friendly timings (fast reconnects, short status refresh, no jitter).
pub fn agent_config(host: &str, port: u16, source_id: &str, cluster: &str) -> AgentConfig {
    let topics = Topics::for_agent(source_id, cluster).expect("valid names");
    let mut transport = TransportConfig::new(host, port, "");
    transport.reconnect.min_delay = Duration::from_millis(50);
    transport.reconnect.max_delay = Duration::from_millis(500);
    let mut config = AgentConfig::new(cluster, None, topics, transport).expect("agent config");
    config.status_sync_interval = Duration::from_millis(500);
    // Exact timing: tests must not depend on the random spread of upstream's jitter.
    config.status_sync_jitter = 0.0;
    config.apply_resync_jitter = 0.0;
    config
}

/// Starts an agent on `sim` with `store`.
pub fn start_agent<S: AgentStore>(
    config: AgentConfig,
    sim: Arc<SimulatedCluster>,
    store: Arc<S>,
) -> AgentHandle {
    runtime::start(config, sim, store).expect("agent starts")
}
