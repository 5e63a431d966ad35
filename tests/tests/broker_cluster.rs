//! A clustered broker losing a node (issue 16): a real 3-node NATS cluster (JetStream
//! and an MQTT listener on each node, `workbus_testkit::NatsCluster`), a hub and several
//! agents speaking MQTT 3.1.1 in structured mode, all given the three node addresses.
//! Works converge; the node the agents are connected to is killed (SIGKILL) right after
//! a round of changes; every agent moves to another node and resyncs; the changes made
//! before, during and after the loss all reach `Applied` at their latest generation, and
//! the simulated clusters hold exactly the latest values: nothing lost.
//!
//! Skipped (visibly) without `nats-server`; a failure with `WORKBUS_REQUIRE_NATS=1`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use workbus_agent::runtime::AgentHandle;
use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_hub::{BrokerSettings, Hub, HubConfig, HubHandle, StoreSettings};
use workbus_schemas::mqtt::Encoding;
use workbus_testkit::{NatsCluster, skip_without_nats};
use workbus_tests::agents::{agent_config, start_agent};
use workbus_tests::hubs::{applied_at, hub_config, put_work, register_cluster, wait_work};
use workbus_tests::{unique, wait_until};
use workbus_transport::{Endpoint, Endpoints, Protocol};

/// Agents in the fleet.
const AGENTS: usize = 4;

/// The node every agent prefers (first in their lists).
const AGENTS_NODE: usize = 0;

fn endpoints(cluster: &NatsCluster, order: [usize; 3]) -> Endpoints {
    Endpoints::new(order.map(|i| {
        let addr = cluster.mqtt_addr(i);
        Endpoint {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }))
    .expect("three addresses")
}

struct Agent {
    cluster: String,
    sim: Arc<SimulatedCluster>,
    handle: AgentHandle,
}

impl Agent {
    fn endpoint(&self) -> Option<usize> {
        let stats = self.handle.transport_stats();
        stats
            .connected
            .load(Ordering::Relaxed)
            .then(|| stats.endpoint.load(Ordering::Relaxed))
    }

    fn value(&self, configmap: &str) -> Option<String> {
        let object = self
            .sim
            .object("", "v1", "configmaps", "default", configmap)?;
        object["data"]["v"].as_str().map(str::to_owned)
    }
}

/// Puts work `name` (one ConfigMap of the same name holding `value`) on every agent's
/// cluster.
async fn put_everywhere(hub: &HubHandle, agents: &[Agent], name: &str, value: &str) {
    for a in agents {
        let code = put_work(hub, &a.cluster, name, name, value).await;
        assert!(
            code == 200 || code == 201,
            "{name} on {}: {code}",
            a.cluster
        );
    }
}

/// Waits until work `name` is applied at `generation` on every cluster and holds `value`.
async fn converged(hub: &HubHandle, agents: &[Agent], name: &str, generation: i64, value: &str) {
    let mut changes = hub.watch();
    for a in agents {
        let what = format!("{name} applied at generation {generation} on {}", a.cluster);
        wait_work(hub, &mut changes, &a.cluster, name, &what, |w| {
            applied_at(w, generation)
        })
        .await;
        assert_eq!(a.value(name).as_deref(), Some(value), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_fail_over_to_another_node_and_lose_nothing() {
    if skip_without_nats("broker_cluster::agents_fail_over_to_another_node_and_lose_nothing") {
        return;
    }
    let mut nats = tokio::task::spawn_blocking(NatsCluster::launch)
        .await
        .unwrap()
        .expect("the NATS cluster starts");
    let dir = tempfile::tempdir().unwrap();
    let source = unique("natshub");

    // The hub prefers another node than the agents: it stays connected through the loss.
    let nodes = BrokerSettings::Endpoints(endpoints(&nats, [1, 2, 0]));
    let hub = Hub::start(HubConfig {
        protocol: Protocol::V311,
        encoding: Encoding::Structured,
        ..hub_config(
            StoreSettings::sqlite(dir.path().join("hub")),
            &source,
            nodes,
        )
    })
    .await
    .expect("hub starts");

    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let cluster = unique(&format!("nats{i}"));
        let mut config = agent_config("", 0, &source, &cluster);
        config.transport.endpoints = endpoints(&nats, [AGENTS_NODE, 1, 2]);
        config.transport.protocol = Protocol::V311;
        config.encoding = Encoding::Structured;
        config.hub_host = config.transport.endpoints.first().to_string();
        let sim = Arc::new(SimulatedCluster::new(SimConfig {
            ready_after: Duration::from_millis(100),
            snapshot: None,
        }));
        let store = Arc::new(FileStore::open(&dir.path().join(&cluster)).unwrap());
        let handle = start_agent(config, sim.clone(), store);
        assert_eq!(register_cluster(&hub, &cluster).await, 201);
        agents.push(Agent {
            cluster,
            sim,
            handle,
        });
    }

    // Before: every work converges; the agents are on their preferred node (once the
    // cluster is healthy nothing refuses them; should one have moved on meanwhile, the
    // node killed below is still the one most of them are on).
    put_everywhere(&hub, &agents, "before", "b1").await;
    converged(&hub, &agents, "before", 1, "b1").await;
    let on: Vec<usize> = agents
        .iter()
        .map(|a| a.endpoint().expect("connected"))
        .collect();
    let victim = (0..3)
        .max_by_key(|node| on.iter().filter(|e| *e == node).count())
        .expect("three nodes");
    let moving: Vec<&Agent> = agents
        .iter()
        .zip(&on)
        .filter(|(_, e)| **e == victim)
        .map(|(a, _)| a)
        .collect();
    assert!(moving.len() * 2 > AGENTS, "most agents on one node: {on:?}");
    eprintln!("agents on nodes {on:?} (preferred {AGENTS_NODE}); killing node {victim}");
    let resyncs: Vec<u64> = moving
        .iter()
        .map(|a| a.handle.stats().resync_requests.load(Ordering::Relaxed))
        .collect();

    // During: a round of changes, and the agents' node killed while they travel.
    put_everywhere(&hub, &agents, "during", "d1").await;
    put_everywhere(&hub, &agents, "before", "b2").await;
    tokio::task::block_in_place(|| nats.kill(victim));
    wait_until("every agent connected to another node", || {
        agents
            .iter()
            .all(|a| a.endpoint().is_some_and(|e| e != victim))
    })
    .await;
    for (a, before) in moving.iter().zip(&resyncs) {
        wait_until(&format!("{} resynced after the move", a.cluster), || {
            a.handle.stats().resync_requests.load(Ordering::Relaxed) > *before
        })
        .await;
        assert!(
            a.handle
                .transport_stats()
                .reconnects
                .load(Ordering::Relaxed)
                >= 1
        );
    }

    // After: more changes on the two remaining nodes; everything converges.
    put_everywhere(&hub, &agents, "after", "a1").await;
    converged(&hub, &agents, "during", 1, "d1").await;
    converged(&hub, &agents, "before", 2, "b2").await;
    converged(&hub, &agents, "after", 1, "a1").await;

    // The node comes back; the fleet keeps working (agents stay where they are).
    tokio::task::block_in_place(|| nats.restart(victim)).expect("the node restarts");
    put_everywhere(&hub, &agents, "after", "a2").await;
    converged(&hub, &agents, "after", 2, "a2").await;

    for a in agents {
        assert_eq!(a.handle.stats().malformed.load(Ordering::Relaxed), 0);
        a.handle.shutdown().await;
    }
    hub.shutdown().await;
}
