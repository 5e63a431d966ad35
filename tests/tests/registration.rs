//! Cluster registration end to end (issue 13) with the real parts: the hub's embedded
//! broker (mutual TLS, the hub's authorizer with bootstrap tokens, publisher stamps),
//! the hub (SQLite, CSR signing with its CA, health), and our agent with its
//! registration client. An agent with a bootstrap token joins, waits for the operator,
//! is accepted, receives its certificate, reconnects with it, becomes Available and
//! reports its claims; a connection that dies without DISCONNECT makes the cluster
//! Unknown through the agent's Will, and the reconnected agent makes it Available again
//! with one renewal; a certificate due for rotation is replaced while connected.
//!
//! The kill -9 tests run the agent as its own process (`workbus-chaos-node agent`: the
//! `workbus-agent` command line and `main` wiring; a test crate cannot name another
//! package's binary) on both brokers: the hub's embedded broker, where it joins with an
//! auto-accept bootstrap token, and Mosquitto configured as `deploy/mosquitto/`
//! documents, which authenticates only certificates — that leg gets a pre-issued cluster
//! certificate and a cluster joined and accepted on the hub's store instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workbus_agent::config::AgentConfig;
use workbus_agent::registration::identity_dir::IdentityDir;
use workbus_agent::registration::{self, RegistrationConfig};
use workbus_agent::runtime;
use workbus_agent::store::MemoryStore;
use workbus_agent::target::ClusterInfo;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_schemas::registration::ManagedCluster;
use workbus_schemas::registration::names::{TAINT_UNREACHABLE, condition};
use workbus_schemas::topics::Topics;
use workbus_testkit::fault_proxy::FaultProxy;
use workbus_testkit::unique;
use workbus_tests::chaos::processes::Proc;
use workbus_tests::join_hub::JoinHub;
use workbus_transport::{PemSource, TlsSettings, TransportConfig};

const SOURCE: &str = "workbus";
const WAIT: Duration = Duration::from_secs(20);

type Fleet = JoinHub;

async fn fleet(cert_validity: Option<Duration>) -> Fleet {
    JoinHub::embedded(SOURCE, cert_validity).await
}

/// A registering agent of `cluster` reaching the broker at `port`, trusting the hub
/// CA, with no certificate of its own yet.
fn agent_config(f: &Fleet, cluster: &str, port: u16, token: &str) -> AgentConfig {
    let mut t = TransportConfig::new("127.0.0.1", port, "");
    t.tls = Some(TlsSettings {
        ca_pem: Some(PemSource::File(f.pki.ca_bundle())),
        ..TlsSettings::default()
    });
    t.keep_alive = Duration::from_secs(5);
    t.reconnect.min_delay = Duration::from_millis(50);
    t.reconnect.max_delay = Duration::from_millis(500);
    let topics = Topics::for_agent(SOURCE, cluster).unwrap();
    let mut config = AgentConfig::new(cluster, None, topics, t).unwrap();
    let mut r = RegistrationConfig::new(IdentityDir::new(
        f.dir.path().join("agents").join(cluster).join("identity"),
    ));
    r.bootstrap_token = Some(token.to_string());
    r.claims = vec![("region".into(), "eu-1".into())];
    r.join_resend = Duration::from_millis(500);
    config.registration = Some(r);
    config
}

/// Waits until `check` holds for the hub's record of `name` (fails after [`WAIT`]).
async fn wait_cluster(
    f: &Fleet,
    name: &str,
    what: &str,
    check: impl Fn(&ManagedCluster) -> bool,
) -> ManagedCluster {
    f.await_cluster(name, what, WAIT, check).await.0
}

fn available(c: &ManagedCluster) -> Option<&str> {
    c.condition_status(condition::AVAILABLE)
}

fn sim() -> Arc<SimulatedCluster> {
    Arc::new(
        SimulatedCluster::new(SimConfig::default())
            .with_cluster_info(ClusterInfo::simulated("sim-id-1")),
    )
}

#[tokio::test]
async fn an_agent_joins_is_accepted_becomes_available_and_its_will_reports_it_gone() {
    let f = fleet(None).await;
    let proxy = FaultProxy::start(f.reach()).await;
    let token = f.bootstrap_token(false).await;
    let cluster = unique("edge");
    let mut config = agent_config(&f, &cluster, proxy.addr().port(), &token);

    // Join: the hub records the cluster, not accepted, until the operator accepts it.
    let joining = tokio::spawn(async move {
        let identity = registration::prepare(&mut config).await;
        (config, identity)
    });
    let pending = wait_cluster(&f, &cluster, "the join request", |_| true).await;
    assert!(!pending.spec.hub_accepts_client && !pending.is_accepted());
    assert!(!joining.is_finished(), "no identity before acceptance");
    f.hub.registration().accept(&cluster).await.unwrap();
    let (config, identity) = tokio::time::timeout(WAIT, joining).await.unwrap().unwrap();
    let identity = identity.unwrap().expect("an identity");
    assert!(identity.not_after > std::time::SystemTime::now());

    // The agent reconnects with its own certificate, joins, reports, renews.
    let agent = runtime::start(config, sim(), Arc::new(MemoryStore::default())).unwrap();
    let up = wait_cluster(&f, &cluster, "Joined and Available", |c| {
        c.is_joined() && available(c) == Some("True")
    })
    .await;
    let claims: Vec<_> = up
        .status
        .cluster_claims
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_str()))
        .collect();
    assert!(claims.contains(&("id.k8s.io", "sim-id-1")), "{claims:?}");
    assert_eq!(
        claims.last(),
        Some(&("region", "eu-1")),
        "custom claims after reserved ones"
    );
    assert!(up.status.capacity.contains_key("cpu"));
    assert!(!up.status.version.kubernetes.is_empty());
    assert!(!up.has_taint(TAINT_UNREACHABLE));

    // The connection dies without DISCONNECT: the broker publishes the agent's Will and
    // the hub marks the cluster Unknown at once (long before 2 × the 60 s lease).
    let cut_at = std::time::Instant::now();
    proxy.cut();
    let gone = wait_cluster(&f, &cluster, "Unknown after the Will", |c| {
        available(c) == Some("Unknown")
    })
    .await;
    assert!(
        cut_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        cut_at.elapsed()
    );
    assert!(gone.has_taint(TAINT_UNREACHABLE));
    // The agent reconnects (through the proxy) and one renewal brings it back.
    wait_cluster(&f, &cluster, "Available again", |c| {
        available(c) == Some("True") && !c.has_taint(TAINT_UNREACHABLE)
    })
    .await;

    // A clean shutdown sends DISCONNECT: no Will, the cluster stays Available until its
    // lease runs out.
    agent.shutdown().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        f.cluster(&cluster).await.as_ref().and_then(available),
        Some("True")
    );
    f.stop().await;
}

#[tokio::test]
async fn a_certificate_due_for_rotation_is_replaced_while_connected() {
    // A 10 s certificate (backdated an hour by the hub, as every certificate it signs)
    // has less than 20 % of its lifetime left from the start: the agent rotates it at
    // once over its own identity, and then not again for a minute.
    let f = fleet(Some(Duration::from_secs(10))).await;
    let token = f.bootstrap_token(true).await;
    let cluster = unique("edge");
    let mut config = agent_config(&f, &cluster, f.reach().port(), &token);
    let first = tokio::time::timeout(WAIT, registration::prepare(&mut config))
        .await
        .unwrap()
        .unwrap()
        .expect("joined with auto-accept");
    let dir = config.registration.as_ref().unwrap().identity_dir.clone();
    let agent = runtime::start(config, sim(), Arc::new(MemoryStore::default())).unwrap();

    let deadline = tokio::time::Instant::now() + WAIT;
    let rotated = loop {
        if let Some(id) = dir.load(&cluster, std::time::SystemTime::now()).unwrap()
            && id.serial != first.serial
        {
            break id;
        }
        assert!(tokio::time::Instant::now() < deadline, "no rotation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(rotated.not_after >= first.not_after);
    // The agent reconnected with the new certificate and the cluster stays Available.
    let reconnected = tokio::time::Instant::now() + WAIT;
    while agent
        .transport_stats()
        .reconnects
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(tokio::time::Instant::now() < reconnected, "no reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_cluster(&f, &cluster, "Available with the new certificate", |c| {
        available(c) == Some("True")
    })
    .await;
    // Not rotated again right away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = dir
        .load(&cluster, std::time::SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(now.serial, rotated.serial);
    agent.shutdown().await;
    f.stop().await;
}

/// The agents' MQTT keep-alive in the kill -9 tests: the least the MQTT client allows.
const KEEP_ALIVE_SECS: u64 = 5;

/// Time allowed on top of 1.5 × keep-alive between a kill and the hub's Unknown: the
/// broker's Will, the hub's store write and our notification on a shared, busy CI
/// machine (the Will itself is due at once: the killed process's sockets are closed by
/// the kernel).
const SCHEDULING_MARGIN: Duration = Duration::from_secs(2);

/// The agent process of `cluster` on `f`'s broker (not started): the `workbus-agent`
/// command line with an sdk-go config file (the broker, the hub CA,
/// [`KEEP_ALIVE_SECS`]), its data (and identity) dir under `f`'s dir, joining with
/// `token` when given.
fn agent_process(f: &Fleet, cluster: &str, token: Option<&str>) -> Proc {
    let root = agent_root(f, cluster);
    std::fs::create_dir_all(&root).unwrap();
    let config = root.join("mqtt.json");
    let mqtt = serde_json::json!({
        "brokerHost": f.reach().to_string(),
        "keepAlive": KEEP_ALIVE_SECS,
        "pubQoS": 1,
        "subQoS": 1,
        "topics": Topics::for_agent(SOURCE, cluster).unwrap(),
        "caFile": f.pki.ca_bundle(),
    });
    std::fs::write(&config, serde_json::to_vec(&mqtt).unwrap()).unwrap();
    let mut args = vec![
        "agent".to_string(),
        format!("--spoke-cluster-name={cluster}"),
        format!("--workload-source-config={}", config.display()),
        format!("--data-dir={}", root.join("data").display()),
        "--sim-ready-after=0s".to_string(),
    ];
    args.extend(token.map(|t| format!("--bootstrap-token={t}")));
    Proc::new(
        cluster,
        Path::new(env!("CARGO_BIN_EXE_workbus-chaos-node")),
        args,
        root.join("agent.log"),
    )
}

/// Where the agent process of `cluster` keeps its config, data and log.
fn agent_root(f: &Fleet, cluster: &str) -> PathBuf {
    f.dir.path().join("processes").join(cluster)
}

/// The agent process joins (or connects with its identity) and becomes Available; after
/// `kill -9` the broker publishes its Will and the hub marks the cluster Unknown with the
/// unreachable taint within 1.5 × keep-alive (+ [`SCHEDULING_MARGIN`]); restarted, it
/// is Available again with its first renewal, well within one lease period (60 s).
async fn killed_agent_is_unknown_then_back(f: Fleet, cluster: &str, token: Option<&str>) {
    let mut agent = agent_process(&f, cluster, token);
    agent.start().unwrap();
    f.await_cluster(cluster, "Available", WAIT, |c| available(c) == Some("True"))
        .await;

    let killed = Instant::now();
    agent.kill9();
    let (gone, at) = f
        .await_cluster(cluster, "Unknown after kill -9", WAIT, |c| {
            available(c) == Some("Unknown")
        })
        .await;
    let bound = Duration::from_secs(KEEP_ALIVE_SECS).mul_f64(1.5) + SCHEDULING_MARGIN;
    let took = at.duration_since(killed);
    assert!(took <= bound, "Unknown after {took:?}, bound {bound:?}");
    assert!(gone.has_taint(TAINT_UNREACHABLE), "{gone:?}");

    let restarted = Instant::now();
    agent.start().unwrap();
    let lease = Duration::from_secs(
        gone.spec
            .lease_duration_seconds
            .max(1)
            .unsigned_abs()
            .into(),
    );
    let (back, _) = f
        .await_cluster(
            cluster,
            "Available after the restart",
            WAIT.min(lease),
            |c| available(c) == Some("True"),
        )
        .await;
    assert!(!back.has_taint(TAINT_UNREACHABLE), "{back:?}");
    eprintln!(
        "{cluster}: Unknown {took:?} after kill -9 (bound {bound:?}), Available {:?} after the restart",
        restarted.elapsed()
    );
    agent.kill9();
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_process_is_unknown_within_keep_alive_on_the_embedded_broker() {
    let f = fleet(None).await;
    let token = f.bootstrap_token(true).await;
    let cluster = unique("edge");
    killed_agent_is_unknown_then_back(f, &cluster, Some(&token)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_process_is_unknown_within_keep_alive_on_mosquitto() {
    if workbus_testkit::skip_without_mosquitto(
        "registration::a_killed_agent_process_is_unknown_within_keep_alive_on_mosquitto",
    ) {
        return;
    }
    let f = JoinHub::on_mosquitto(SOURCE).await;
    let cluster = unique("edge");
    let identity = agent_root(&f, &cluster)
        .join("data")
        .join(registration::IDENTITY_DIR);
    f.pre_join(&cluster, &IdentityDir::new(identity)).await;
    killed_agent_is_unknown_then_back(f, &cluster, None).await;
}
