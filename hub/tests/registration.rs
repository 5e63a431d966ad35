//! Cluster registration over the bus (issue 13), end to end through a real broker
//! (Mosquitto) and the hub's real SQLite store, with a fake agent that speaks the wire
//! with the `workbus_schemas::registration` encoders: join, CSR, accept (certificate
//! signed by the hub CA), deny, agent status, lease renewals and health with an injected
//! clock, released-lease Wills (current and stale), resync answers, a hub restart, and a
//! join storm of 1,000 clusters.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use common::*;
use workbus_hub::HubHandle;
use workbus_hub::clock::{Clock, ManualClock};
use workbus_hub::pki::Pki;
use workbus_schemas::Event;
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::registration::names::{
    CLUSTER_NAME_LABEL, CLUSTERSET_LABEL, TAINT_UNREACHABLE, condition, reason, signer,
};
use workbus_schemas::registration::{
    CertificateSigningRequest, Lease, ManagedCluster, MicroTime, RegistrationBody,
    RegistrationKind, RegistrationObject, decode_registration_event, encode_registration_event,
    encode_resync_request,
};
use workbus_schemas::resync::SpecResyncRequest;
use workbus_schemas::work::Time;
use workbus_schemas::work::status::Condition;

struct Fixture {
    hub: HubHandle,
    hand: ManualClock,
    clock: Clock,
}

async fn start(dir: &std::path::Path, source: &str, start_at: Option<DateTime<Utc>>) -> Fixture {
    let (clock, hand) = Clock::manual(start_at.unwrap_or_else(Utc::now));
    let pki = Pki::ensure(dir, &[]).unwrap();
    let c = clock.clone();
    let hub = start_hub_adjusted(&dir.join("hub"), source, move |config| {
        config.registration.pki = Some(pki);
        config.registration.clock = c;
        config.registration.health_interval = Duration::from_millis(50);
    })
    .await;
    Fixture { hub, hand, clock }
}

fn event(cluster: &str, sub: SubResource, action: Action, object: RegistrationObject) -> Event {
    encode_registration_event(cluster, sub, action, &object, Utc::now()).unwrap()
}

fn create_request(cluster: &str) -> Event {
    let mut mc = ManagedCluster::named(cluster);
    mc.metadata.labels.insert("env".into(), "edge".into());
    event(
        cluster,
        SubResource::Spec,
        Action::CreateRequest,
        RegistrationObject::ManagedCluster(mc),
    )
}

fn csr_request(cluster: &str) -> Event {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cluster);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let mut csr = CertificateSigningRequest::default();
    csr.metadata.name = format!("{cluster}-abcde");
    csr.metadata
        .labels
        .insert(CLUSTER_NAME_LABEL.into(), cluster.into());
    csr.spec.request = pem.into_bytes();
    csr.spec.signer_name = signer::MQTT_CLIENT.into();
    event(
        cluster,
        SubResource::Spec,
        Action::CreateRequest,
        RegistrationObject::CertificateSigningRequest(csr),
    )
}

fn lease(cluster: &str, renewed: DateTime<Utc>, acquired: DateTime<Utc>, released: bool) -> Event {
    let mut l = Lease::for_cluster(cluster, renewed);
    l.spec.acquire_time = Some(MicroTime::new(acquired));
    if released {
        l.spec.holder_identity = Some(String::new());
    }
    event(
        cluster,
        SubResource::Spec,
        Action::UpdateRequest,
        RegistrationObject::Lease(l),
    )
}

fn object(e: &Event) -> RegistrationObject {
    match decode_registration_event(e).unwrap().body {
        RegistrationBody::Object(o) => o,
        other => panic!("no object: {other:?}"),
    }
}

async fn cluster_state(hub: &HubHandle, name: &str) -> Option<ManagedCluster> {
    let name = name.to_string();
    hub.store()
        .run(move |s| s.get_cluster(&name))
        .await
        .unwrap()
        .map(|c| c.managed_cluster())
}

async fn available(hub: &HubHandle, name: &str) -> Option<String> {
    cluster_state(hub, name)
        .await
        .and_then(|c| c.condition_status(condition::AVAILABLE).map(str::to_string))
}

#[tokio::test]
async fn join_accept_health_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("reg");
    let f = start(dir.path(), &source, None).await;
    let cluster = unique("edge");
    let mut agent = FakeAgent::connect(&source, &cluster).await;

    // Join: recorded, not accepted, echoed with uid and resourceVersion.
    agent.publish(&create_request(&cluster)).await;
    let echo = agent
        .next("cluster echo", |e| {
            is_type(e, "managedclusters.spec.create_request")
        })
        .await;
    assert_eq!(echo.source(), &source);
    assert!(ext(&echo, "resourceid").is_some());
    assert_eq!(ext(&echo, "resourceversion").as_deref(), Some("1"));
    let RegistrationObject::ManagedCluster(mc) = object(&echo) else {
        panic!()
    };
    assert!(!mc.spec.hub_accepts_client);
    assert_eq!(mc.spec.lease_duration_seconds, 60);
    assert_eq!(mc.metadata.label(CLUSTERSET_LABEL), Some("default"));
    assert_eq!(mc.metadata.label("env"), Some("edge"));

    // A lease before acceptance is refused; the CSR waits.
    let now = f.clock.now();
    agent.publish(&lease(&cluster, now, now, false)).await;
    agent.publish(&csr_request(&cluster)).await;
    let pending = agent
        .next("csr echo", |e| {
            is_type(e, "certificatesigningrequests.spec.create_request")
        })
        .await;
    let RegistrationObject::CertificateSigningRequest(p) = object(&pending) else {
        panic!()
    };
    assert!(p.is_pending() && p.status.certificate.is_empty());
    assert_eq!(p.spec.username, format!("cluster:{cluster}"));
    assert!(f.hub.metrics().refused_count("not_accepted") >= 1);

    // Accept: the cluster and its lease are echoed, then the CSR signed by the hub CA
    // for CN = the cluster.
    f.hub.registration().accept(&cluster).await.unwrap();
    let accepted = agent
        .next("accepted cluster", |e| {
            is_type(e, "managedclusters.spec.update_request")
        })
        .await;
    let RegistrationObject::ManagedCluster(mc) = object(&accepted) else {
        panic!()
    };
    assert!(mc.spec.hub_accepts_client && mc.is_accepted());
    assert_eq!(
        mc.condition(condition::HUB_ACCEPTED).unwrap().reason,
        reason::HUB_CLUSTER_ADMIN_ACCEPTED
    );
    agent
        .next("lease echo", |e| is_type(e, "leases.spec.update_request"))
        .await;
    let signed = agent
        .next("signed csr", |e| {
            is_type(e, "certificatesigningrequests.spec.update_request")
        })
        .await;
    let RegistrationObject::CertificateSigningRequest(s) = object(&signed) else {
        panic!()
    };
    assert!(s.is_approved());
    assert_eq!(
        s.status.conditions[0].reason,
        reason::HUB_CLUSTER_ADMIN_ACCEPTED
    );
    let cert = String::from_utf8(s.status.certificate.clone()).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");

    // The agent joins: status with Joined and Available, then its first renewal.
    let mut status = ManagedCluster::named(&cluster);
    let at = Time::new(f.clock.now());
    status.status.conditions = vec![
        Condition::new(
            condition::JOINED,
            "True",
            reason::MANAGED_CLUSTER_JOINED,
            "Managed cluster joined",
            at,
        ),
        Condition::new(
            condition::AVAILABLE,
            "True",
            reason::MANAGED_CLUSTER_AVAILABLE,
            "Managed cluster is available",
            at,
        ),
    ];
    status.status.version.kubernetes = "v1.31.0".into();
    agent
        .publish(&event(
            &cluster,
            SubResource::Status,
            Action::UpdateRequest,
            RegistrationObject::ManagedCluster(status),
        ))
        .await;
    let connected = f.clock.now();
    agent
        .publish(&lease(&cluster, connected, connected, false))
        .await;
    eventually("joined and available", || async {
        let c = cluster_state(&f.hub, &cluster).await.unwrap();
        c.is_joined()
            && c.condition_status(condition::AVAILABLE) == Some("True")
            && c.condition_status(condition::CLOCK_SYNCED) == Some("True")
            && !c.has_taint(TAINT_UNREACHABLE)
    })
    .await;

    // 119 s of silence: still available; 121 s: Unknown with the taint, echoed.
    f.hand.advance(chrono::Duration::seconds(119));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(available(&f.hub, &cluster).await.as_deref(), Some("True"));
    f.hand.advance(chrono::Duration::seconds(2));
    eventually("lease expired", || async {
        available(&f.hub, &cluster).await.as_deref() == Some("Unknown")
    })
    .await;
    let c = cluster_state(&f.hub, &cluster).await.unwrap();
    assert!(c.has_taint(TAINT_UNREACHABLE));
    assert_eq!(
        c.condition(condition::AVAILABLE).unwrap().reason,
        reason::LEASE_UPDATE_STOPPED
    );

    // One renewal brings it back.
    let reconnected = f.clock.now();
    agent
        .publish(&lease(&cluster, reconnected, reconnected, false))
        .await;
    eventually("available again", || async {
        available(&f.hub, &cluster).await.as_deref() == Some("True")
    })
    .await;

    // A Will of the connection before (acquired earlier) is stale and ignored; the
    // current connection's Will makes the cluster Unknown at once.
    agent
        .publish(&lease(&cluster, connected, connected, true))
        .await;
    agent
        .publish(&lease(&cluster, reconnected, reconnected, true))
        .await;
    eventually("released lease", || async {
        available(&f.hub, &cluster).await.as_deref() == Some("Unknown")
    })
    .await;
    assert_eq!(
        f.hub.metrics().refused_count("not_accepted"),
        1,
        "the stale Will was ignored, not refused"
    );

    // Resync: the agent lists nothing; the hub answers with its cluster and lease.
    agent
        .publish(&encode_resync_request(
            &cluster,
            RegistrationKind::ManagedCluster,
            &cluster,
            &SpecResyncRequest::default(),
            Utc::now(),
        ))
        .await;
    let answer = agent
        .next("resync answer", |e| {
            is_type(e, "managedclusters.spec.resync_response")
        })
        .await;
    assert!(matches!(
        object(&answer),
        RegistrationObject::ManagedCluster(_)
    ));

    // A restart keeps every cluster's state.
    let before = cluster_state(&f.hub, &cluster).await.unwrap();
    f.hub.shutdown().await;
    let g = start(dir.path(), &source, Some(f.clock.now())).await;
    let after = cluster_state(&g.hub, &cluster).await.unwrap();
    assert_eq!(before, after);
    g.hub.shutdown().await;
}

#[tokio::test]
async fn deny_refuses_the_cluster_and_hostile_events_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("deny");
    let f = start(dir.path(), &source, None).await;
    let cluster = unique("edge");
    let mut agent = FakeAgent::connect(&source, &cluster).await;
    agent.publish(&create_request(&cluster)).await;
    agent
        .next("join echo", |e| {
            is_type(e, "managedclusters.spec.create_request")
        })
        .await;
    f.hub.registration().accept(&cluster).await.unwrap();
    let denied = f.hub.registration().deny(&cluster).await.unwrap();
    assert!(!denied.is_accepted());
    let echo = agent
        .next("denied echo", |e| {
            is_type(e, "managedclusters.spec.update_request")
                && matches!(object(e), RegistrationObject::ManagedCluster(ref c)
                    if c.condition_status(condition::HUB_ACCEPTED) == Some("False"))
        })
        .await;
    assert!(ext(&echo, "resourceversion").is_some());
    let now = f.clock.now();
    let refused = f.hub.metrics().refused_count("not_accepted");
    agent.publish(&lease(&cluster, now, now, false)).await;
    eventually("denied cluster's lease refused", || async {
        f.hub.metrics().refused_count("not_accepted") > refused
    })
    .await;

    // Another cluster's object on this cluster's topic, and a CSR for another cluster.
    let before = f.hub.metrics().refused_count("topic_mismatch");
    let mut forged = create_request("victim");
    workbus_schemas::extensions::OcmExtensionsMut::set_cluster_name(&mut forged, &cluster);
    agent.publish(&forged).await;
    agent.publish(&create_request("victim")).await;
    eventually("forgeries refused", || async {
        f.hub.metrics().refused_count("topic_mismatch") > before
    })
    .await;
    assert!(cluster_state(&f.hub, "victim").await.is_none());
    f.hub.shutdown().await;
}

#[tokio::test]
async fn a_thousand_clusters_join_at_once() {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let source = unique("storm");
    let f = start(dir.path(), &source, None).await;
    let agent = FakeAgent::connect(&source, "storm-0").await;
    let rss = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm.split(' ').nth(1).unwrap().parse::<u64>().unwrap() * 4096
    };
    let before = rss();
    let started = std::time::Instant::now();
    let names: Vec<String> = (0..N).map(|i| format!("{source}-{i}")).collect();
    for name in &names {
        agent.publish_as(name, &create_request(name)).await;
    }
    let hub = &f.hub;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let n = hub.store().run(|s| s.list_clusters()).await.unwrap().len();
        if n == N {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {n} of {N} clusters joined"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let grown = rss().saturating_sub(before);
    eprintln!(
        "{N} clusters joined in {took:?}; RSS grew {} KiB",
        grown / 1024
    );
    assert!(took < Duration::from_secs(120));
    assert!(grown < 256 * 1024 * 1024, "RSS grew {grown} bytes");
    let all = hub.store().run(|s| s.list_clusters()).await.unwrap();
    assert!(
        all.iter()
            .all(|c| c.registration.is_some() && !c.is_accepted())
    );
    f.hub.shutdown().await;
}
