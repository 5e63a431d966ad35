//! Certificate rotation keeps a connected fleet converging (issue 12): 20 agents over
//! mutual TLS with the fleet ACL and signed spec events, works created all along, while
//! the CA is rotated with an overlapping bundle — new CA, bundle = new + old, new server
//! certificate, `reload_tls` — and the agents' certificates are re-issued from the new
//! CA and take effect in waves of reconnects (the transport reads its files on every
//! connection attempt). Then the old CA leaves the bundle and every client reconnects
//! once more: one still on an old certificate would now be refused (and one is). Every work
//! acknowledged by the REST API is applied, and every agent takes new works after.
//! And revocation: a certificate on the CA's revocation list is refused from the
//! broker's next TLS reload, while the rest of the fleet is unaffected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use workbus_agent::runtime::AgentHandle;
use workbus_agent::store::FileStore;
use workbus_agent::target::sim::{SimConfig, SimulatedCluster};
use workbus_broker::Reloaded;
use workbus_broker::certs::{self, Validity};
use workbus_schemas::acl::Identity;
use workbus_tests::agents::start_agent;
use workbus_tests::brokers::TestBroker;
use workbus_tests::hubs::{applied_at, put_work, register_cluster, wait_work};
use workbus_tests::{unique, wait_until};
use workbus_transport::{TlsSettings, Transport, TransportConfig, TransportEvent};

const AGENTS: usize = 20;
const WAVE: usize = 5;

/// The agent of `cluster` and only it: its client ids are `<cluster>-work-agent…`.
fn agent_of(cluster: &str) -> impl Fn(&str) -> bool + '_ {
    move |id: &str| {
        id.strip_prefix(cluster)
            .is_some_and(|rest| rest.starts_with("-work-agent"))
    }
}

fn reconnects(agent: &AgentHandle) -> u64 {
    agent.transport_stats().reconnects.load(Ordering::Relaxed)
}

fn connected(agent: &AgentHandle) -> bool {
    agent.transport_stats().connected.load(Ordering::Relaxed)
}

/// Cuts the connections of `agents` (indexes) and waits until each is back.
async fn reconnect_agents(
    broker: &TestBroker,
    agents: &[AgentHandle],
    clusters: &[String],
    which: &[usize],
) {
    let before: Vec<u64> = which.iter().map(|&i| reconnects(&agents[i])).collect();
    for &i in which {
        assert_eq!(
            broker.drop_clients(agent_of(&clusters[i])),
            1,
            "{} was connected",
            clusters[i]
        );
    }
    wait_until("the wave reconnected", || {
        which
            .iter()
            .zip(&before)
            .all(|(&i, &b)| reconnects(&agents[i]) > b && connected(&agents[i]))
    })
    .await;
}

fn handshake_failures(broker: &TestBroker) -> u64 {
    match broker {
        TestBroker::Embedded {
            handle: Some(h), ..
        } => h.stats().tls_handshake_failures,
        _ => unreachable!("an embedded broker"),
    }
}

fn revoked_disconnects(broker: &TestBroker) -> u64 {
    match broker {
        TestBroker::Embedded {
            handle: Some(h), ..
        } => h.stats().revoked_disconnects,
        _ => unreachable!("an embedded broker"),
    }
}

/// Waits until the hub publishes again after its connection was cut: a new work on
/// `cluster` is applied (its outbox holds it until the hub has reconnected).
async fn hub_back(hub: &workbus_hub::HubHandle, cluster: &str, name: &str) {
    let mut changes = hub.watch();
    assert!(matches!(
        put_work(hub, cluster, name, &format!("{name}-cm"), "1").await,
        200 | 201
    ));
    wait_work(
        hub,
        &mut changes,
        cluster,
        name,
        "the hub publishing again",
        |w| applied_at(w, 1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_with_an_overlapping_bundle_keeps_a_connected_fleet_converging() {
    let broker = TestBroker::embedded_secured().await;
    let secure = broker.secure().expect("secured");
    let pki = secure.pki_dir().to_path_buf();
    let source = broker.source_id();
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let hub = broker.start_hub(&hub_dir, &source).await;
    let clusters: Vec<String> = (0..AGENTS).map(|_| unique("edge")).collect();
    let agents: Vec<AgentHandle> = clusters
        .iter()
        .map(|c| {
            let sim = Arc::new(SimulatedCluster::new(SimConfig {
                ready_after: Duration::from_millis(50),
                snapshot: None,
            }));
            let store = Arc::new(FileStore::open(&dir.path().join(c)).unwrap());
            start_agent(broker.agent_config(&source, c, &hub_dir), sim, store)
        })
        .collect();
    for c in &clusters {
        assert_eq!(register_cluster(&hub, c).await, 201);
    }
    wait_until("every agent connected", || agents.iter().all(connected)).await;

    // Works keep being created, round robin over the clusters, during the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let creator = {
        let (client, clusters, stop) = (hub.client(), clusters.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut created = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 2 * AGENTS {
                let cluster = &clusters[n % AGENTS];
                let name = format!("w{n}");
                let work =
                    workbus_tests::hubs::configmap_work(cluster, &name, &format!("{name}-cm"), "1");
                let path = format!("/api/v1/clusters/{cluster}/works/{name}");
                let answer = client.put(&path, &work).expect("REST answers");
                assert!(
                    answer.status == 200 || answer.status == 201,
                    "{}",
                    answer.status
                );
                created.push((cluster.clone(), name));
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            created
        })
    };

    // A certificate of the old CA that is never replaced, to try after the rotation.
    let stale = dir.path().join("stale");
    std::fs::create_dir_all(&stale).unwrap();
    let issued = secure
        .pki()
        .issue(&Identity::Agent("stale".into()), certs::LEAF_VALIDITY)
        .unwrap();
    std::fs::copy(&issued.cert, stale.join("cert.pem")).unwrap();
    std::fs::copy(&issued.key, stale.join("key.pem")).unwrap();

    // 1. New CA; the bundle trusts old and new; the broker's certificate comes from the
    //    new CA. Connected clients stay; new handshakes use the new files.
    certs::rotate_ca(&pki).unwrap();
    certs::issue_server(&pki, &[], Validity::starting_now(certs::LEAF_VALIDITY)).unwrap();
    assert_eq!(broker.reload_tls().await, Reloaded::Changed);
    assert_eq!(broker.reload_tls().await, Reloaded::Unchanged);

    // 2. A client that reconnects before its turn still has its old certificate (old CA
    //    still trusted) and trusts the new server certificate (it re-reads the bundle).
    reconnect_agents(&broker, &agents, &clusters, &[AGENTS - 1]).await;

    // 3. Agents' certificates re-issued from the new CA, taking effect in waves.
    let all: Vec<usize> = (0..AGENTS).collect();
    for wave in all.chunks(WAVE) {
        for &i in wave {
            secure
                .pki()
                .issue(&Identity::Agent(clusters[i].clone()), certs::LEAF_VALIDITY)
                .unwrap();
        }
        reconnect_agents(&broker, &agents, &clusters, wave).await;
        // The others were never disconnected by this wave.
        assert!(agents.iter().all(connected), "no agent stuck after a wave");
    }
    // ... and the hub's.
    secure
        .pki()
        .issue(&Identity::Source(source.clone()), certs::LEAF_VALIDITY)
        .unwrap();
    assert_eq!(
        broker.drop_clients(|id| id.starts_with(&format!("{source}-hub"))),
        1
    );
    hub_back(&hub, &clusters[0], "hub-back-1").await;

    // 4. The old CA leaves the bundle; everyone reconnects once more. A client still on
    //    an old certificate would be refused from now on.
    certs::finish_rotation(&pki).unwrap();
    assert_eq!(broker.reload_tls().await, Reloaded::Changed);
    reconnect_agents(&broker, &agents, &clusters, &all).await;
    assert_eq!(
        broker.drop_clients(|id| id.starts_with(&format!("{source}-hub"))),
        1
    );
    hub_back(&hub, &clusters[0], "hub-back-2").await;

    // The old CA's certificates are refused now.
    let failures = handshake_failures(&broker);
    let mut config = TransportConfig::new(broker.host(), broker.port(), "stale-work-agent-client");
    config.tls = Some(TlsSettings::from_files(
        pki.join(certs::CA_BUNDLE),
        stale.join("cert.pem"),
        stale.join("key.pem"),
    ));
    let refused = Transport::start(config).unwrap();
    wait_until("the old certificate refused", || {
        handshake_failures(&broker) > failures
    })
    .await;
    assert!(!refused.publisher.is_connected());
    drop(refused);

    stop.store(true, Ordering::Relaxed);
    let created = creator.await.unwrap();
    // Every agent takes a work made after the rotation, too.
    let mut all_works = created;
    for c in &clusters {
        assert!(matches!(
            put_work(&hub, c, "after", "after-cm", "1").await,
            200 | 201
        ));
        all_works.push((c.clone(), "after".to_owned()));
    }
    let mut changes = hub.watch();
    for (cluster, name) in &all_works {
        wait_work(
            &hub,
            &mut changes,
            cluster,
            name,
            "applied after the rotation",
            |w| applied_at(w, 1),
        )
        .await;
    }
    eprintln!(
        "rotation: {} works converged on {AGENTS} agents",
        all_works.len()
    );
    for a in agents {
        a.shutdown().await;
    }
    hub.shutdown().await;
    broker.stop().await;
}

/// Waits for the next `Subscribed` of a bare transport (no filters: right after CONNACK).
async fn connected_again(t: &mut Transport) {
    loop {
        match tokio::time::timeout(workbus_tests::WAIT, t.events.recv()).await {
            Ok(Some(TransportEvent::Subscribed)) => return,
            Ok(Some(_)) => {}
            other => panic!("no connection: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_cut_at_the_next_reload_and_refused_after() {
    let broker = TestBroker::embedded_secured().await;
    let secure = broker.secure().expect("secured");
    let (a, b) = (unique("edge"), unique("edge"));
    let start = |cluster: &str| {
        let mut config = TransportConfig::new(
            broker.host(),
            broker.port(),
            format!("{cluster}-work-agent-client"),
        );
        config.tls = Some(secure.transport_tls(&Identity::Agent(cluster.to_owned())));
        config.reconnect.min_delay = Duration::from_millis(50);
        config.reconnect.max_delay = Duration::from_millis(200);
        Transport::start(config).unwrap()
    };
    let (mut ta, mut tb) = (start(&a), start(&b));
    connected_again(&mut ta).await;
    connected_again(&mut tb).await;

    assert_eq!(secure.pki().revoke(&Identity::Agent(a.clone())).unwrap(), 1);
    let failures = handshake_failures(&broker);
    assert_eq!(broker.reload_tls().await, Reloaded::Changed);
    // The reload itself closes A's established session (regression: it used to keep
    // it until A reconnected on its own); B's certificate is not listed and stays.
    let reason = loop {
        match tokio::time::timeout(workbus_tests::WAIT, ta.events.recv()).await {
            Ok(Some(TransportEvent::Disconnected(reason))) => break reason,
            Ok(Some(_)) => {}
            other => panic!("A was not disconnected: {other:?}"),
        }
    };
    assert!(!reason.is_empty());
    assert_eq!(revoked_disconnects(&broker), 1);
    assert!(tb.publisher.is_connected(), "B must keep its session");
    // A's reconnects are refused at the handshake.
    wait_until("the revoked certificate refused, more than once", || {
        handshake_failures(&broker) >= failures + 2
    })
    .await;
    assert!(!ta.publisher.is_connected());
    assert!(tb.publisher.is_connected(), "B must keep its session");

    // A new certificate (new serial) for the same cluster is accepted again; the
    // transport reads it on its next attempt.
    secure
        .pki()
        .issue(&Identity::Agent(a.clone()), certs::LEAF_VALIDITY)
        .unwrap();
    connected_again(&mut ta).await;
    ta.shutdown(Duration::from_secs(2)).await;
    tb.shutdown(Duration::from_secs(2)).await;
    broker.stop().await;
}
