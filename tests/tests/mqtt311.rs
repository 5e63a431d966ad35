//! MQTT 3.1.1 end to end (issue 17) on the embedded broker: an agent on MQTT 3.1.1
//! speaks structured mode, and a work created on the hub reaches `Applied` when the hub
//! publishes structured mode — over MQTT 3.1.1 itself (`serve --mqtt-version 3.1.1`),
//! or over MQTT 5 (`serve --event-encoding structured`, for a fleet that mixes both).
//! The rule the hub follows is the configured one: it cannot know which protocol an
//! agent speaks, and a binary-mode spec event reaches a 3.1.1 agent without its `ce-*`
//! attributes, so the agent drops it as undecodable — checked here as well, as the
//! reason mixed fleets need `--event-encoding structured`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use workbus_agent::store::MemoryStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_hub::{BrokerSettings, Hub, HubConfig, HubHandle, StoreSettings};
use workbus_schemas::mqtt::Encoding;
use workbus_tests::agents::{agent_config, start_agent};
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::{applied_at, hub_config, put_work, register_cluster, wait_work};
use workbus_tests::{unique, wait_until};
use workbus_transport::Protocol;

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(SimulatedCluster::new(SimConfig {
        ready_after: std::time::Duration::from_millis(100),
        snapshot: None,
    }))
}

/// A hub of `source` on `broker` speaking `protocol` with events in `encoding`.
async fn hub(
    broker: &TestBroker,
    dir: &std::path::Path,
    source: &str,
    protocol: Protocol,
    encoding: Encoding,
) -> HubHandle {
    let broker = BrokerSettings::Address {
        host: broker.host().to_owned(),
        port: broker.port(),
    };
    Hub::start(HubConfig {
        protocol,
        encoding,
        ..hub_config(StoreSettings::sqlite(dir), source, broker)
    })
    .await
    .expect("hub starts")
}

/// An MQTT 3.1.1 agent (structured mode) of a new cluster on `broker`.
fn agent_311(
    broker: &TestBroker,
    source: &str,
    cluster: &str,
    sim: Arc<SimulatedCluster>,
) -> workbus_agent::runtime::AgentHandle {
    let mut config = agent_config(broker.host(), broker.port(), source, cluster);
    config.transport.protocol = Protocol::V311;
    config.encoding = Encoding::Structured;
    start_agent(config, sim, Arc::new(MemoryStore::default()))
}

/// A work created on the hub reaches the 3.1.1 agent, is applied, and its status comes
/// back: `Applied` at generation 1, the object in the simulated cluster.
async fn work_reaches_applied(protocol: Protocol) {
    let broker = TestBroker::embedded().await;
    let (source, cluster) = (unique("hub311"), unique("edge311"));
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(&broker, dir.path(), &source, protocol, Encoding::Structured).await;
    let mut changes = hub.watch();
    let sim = sim();
    let agent = agent_311(&broker, &source, &cluster, sim.clone());
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    let code = put_work(&hub, &cluster, "app", "app-config", "v1").await;
    assert!(code == 200 || code == 201, "create answered {code}");
    wait_work(
        &hub,
        &mut changes,
        &cluster,
        "app",
        "applied generation 1",
        |w| applied_at(w, 1),
    )
    .await;
    assert_eq!(
        sim.object("", "v1", "configmaps", "default", "app-config")
            .unwrap()["data"]["v"],
        "v1"
    );
    assert_eq!(agent.stats().malformed.load(Ordering::Relaxed), 0);
    agent.shutdown().await;
    hub.shutdown().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_on_mqtt_311_and_agent_on_mqtt_311() {
    work_reaches_applied(Protocol::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_hub_on_mqtt_5_and_agent_on_mqtt_311() {
    work_reaches_applied(Protocol::V5).await;
}

#[test]
fn binary_mode_over_mqtt_311_is_refused_at_start() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let broker = TestBroker::embedded().await;
        let dir = tempfile::tempdir().unwrap();
        let address = BrokerSettings::Address {
            host: broker.host().to_owned(),
            port: broker.port(),
        };
        let started = Hub::start(HubConfig {
            protocol: Protocol::V311,
            encoding: Encoding::Binary,
            ..hub_config(
                StoreSettings::sqlite(dir.path()),
                &unique("hub311"),
                address,
            )
        })
        .await;
        assert!(
            matches!(started, Err(workbus_hub::HubError::BinaryOverMqtt311)),
            "{:?}",
            started.err()
        );
        broker.stop().await;
    });
}

/// Why the rule is "structured when the fleet has 3.1.1 agents": a binary-mode hub's
/// spec events reach a 3.1.1 agent as bare payloads, which it counts as malformed and
/// drops; nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_spec_events_do_not_reach_an_mqtt_311_agent() {
    let broker = TestBroker::embedded().await;
    let (source, cluster) = (unique("hubbin"), unique("edge311"));
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(&broker, dir.path(), &source, Protocol::V5, Encoding::Binary).await;
    let sim = sim();
    let agent = agent_311(&broker, &source, &cluster, sim.clone());
    assert_eq!(register_cluster(&hub, &cluster).await, 201);
    put_work(&hub, &cluster, "app", "app-config", "v1").await;
    wait_until("the binary spec event dropped as malformed", || {
        agent.stats().malformed.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(
        sim.object("", "v1", "configmaps", "default", "app-config")
            .is_none()
    );
    agent.shutdown().await;
    hub.shutdown().await;
    broker.stop().await;
}
