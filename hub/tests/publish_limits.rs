//! Issue 9, bug 5 (outbox poison): a request whose spec event can never be published is
//! refused at the API, and an unpublishable row already in the outbox (accepted by an
//! older version) is parked without stopping any other cluster's events — on the
//! embedded broker and on Mosquitto, across a hub restart — until a newer event of its
//! work supersedes it.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use common::*;
use serde_json::{Value, json};
use workbus_broker::{Broker, BrokerConfig};
use workbus_hub::HubHandle;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::sqlite::SqliteStore;
use workbus_hub::store::writes::{ApplyWork, CreateCluster, Enqueue};
use workbus_hub::store::{DesiredWork, NewOutbox, Store, WorkKey};
use workbus_schemas::Event;
use workbus_schemas::envelope::SpecEventFields;
use workbus_schemas::event_type::Action;
use workbus_schemas::resource_id::work_resource_id;

/// The MQTT limit of one UTF-8 string (a user property such as `ce-metadata`).
const MQTT_STRING_LIMIT: u64 = 65_535;
/// The packet limit of the embedded broker and of our transports (1 MiB).
const PACKET_LIMIT: u64 = 1024 * 1024;

fn assert_error(r: &Resp, code: u16, reason: &str, contains: &[&str]) {
    assert_eq!(r.status, code, "{:?}", r.body);
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert_eq!(r.body["reason"], reason, "{:?}", r.body);
    let msg = r.body["message"].as_str().unwrap();
    for c in contains {
        assert!(msg.contains(c), "message {msg:?} lacks {c:?}");
    }
}

/// The decimal numbers in a message (to read the measured size it reports).
fn numbers_in(msg: &str) -> Vec<u64> {
    msg.split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// One gauge or counter from `/metrics`.
async fn metric(hub: &HubHandle, name: &str) -> Option<u64> {
    let text = http("GET", format!("{}/metrics", hub.base_url()), None, None)
        .await
        .body;
    let text = text.as_str().unwrap().to_string();
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}

fn work_with_annotations(cluster: &str, name: &str, annotations: Value) -> Value {
    let mut w = work_json(cluster, name, "a");
    w["metadata"]["annotations"] = annotations;
    w
}

#[tokio::test]
async fn unpublishable_requests_are_refused_at_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("limits")).await;
    let base = hub.base_url();
    assert_eq!(create_cluster(&hub, "edge-1").await.status, 201);

    // 1. An ordinary large last-applied-configuration annotation: ce-metadata would be
    //    over the 65,535-byte limit of one MQTT string.
    let big = work_with_annotations(
        "edge-1",
        "big-annotation",
        json!({"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(70_000)}),
    );
    let r = put_work(&hub, &big).await;
    assert_error(
        &r,
        413,
        "RequestEntityTooLarge",
        &[
            "ce-metadata",
            &MQTT_STRING_LIMIT.to_string(),
            "edge-1/big-annotation",
        ],
    );
    let msg = r.body["message"].as_str().unwrap();
    assert!(
        numbers_in(msg).iter().any(|n| (70_000..71_000).contains(n)),
        "the measured size is reported: {msg}"
    );
    assert_eq!(get_work(&hub, "edge-1", "big-annotation").await.status, 404);

    // 2. A 70,000-character cluster name: not a DNS-1123 label, refused when the cluster
    //    is registered and when a work names it.
    let long = "a".repeat(70_000);
    assert_error(
        &create_cluster(&hub, &long).await,
        422,
        "Invalid",
        &["cluster name", "63"],
    );
    let r = http(
        "POST",
        format!("{base}/api/v1/works"),
        None,
        Some(work_json(&long, "w1", "a").to_string()),
    )
    .await;
    assert_error(&r, 422, "Invalid", &["cluster name", "63"]);

    // 3. 1.2 MB of annotations: the PUBLISH would exceed the 1 MiB packet limit.
    let annotations: BTreeMap<String, String> = (0..20)
        .map(|i| (format!("example.com/a{i}"), "y".repeat(60_000)))
        .collect();
    let r = put_work(
        &hub,
        &work_with_annotations("edge-1", "many-annotations", json!(annotations)),
    )
    .await;
    assert_error(
        &r,
        413,
        "RequestEntityTooLarge",
        &["packet", &PACKET_LIMIT.to_string()],
    );
    let msg = r.body["message"].as_str().unwrap();
    assert!(
        numbers_in(msg)
            .iter()
            .any(|n| (1_200_000..1_300_000).contains(n)),
        "the measured packet size is reported: {msg}"
    );

    // Nothing was stored or queued.
    assert_eq!(
        get_work(&hub, "edge-1", "many-annotations").await.status,
        404
    );
    assert_eq!(hub.store().run(|s| s.outbox_depth()).await.unwrap(), 0);
    hub.shutdown().await;
}

#[tokio::test]
async fn names_are_validated_like_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(dir.path(), &unique("names")).await;
    // Cluster: a DNS-1123 label of at most 63 characters.
    let c63 = format!("c{}", "1".repeat(62));
    assert_eq!(create_cluster(&hub, &c63).await.status, 201);
    let c64 = format!("c{}", "1".repeat(63));
    assert_error(
        &create_cluster(&hub, &c64).await,
        422,
        "Invalid",
        &["cluster name", "63"],
    );
    for bad in ["-edge", "edge-", "Edge", "edge.1", "edge_1", ""] {
        assert_eq!(create_cluster(&hub, bad).await.status, 422, "{bad:?}");
    }
    // Work: a DNS-1123 subdomain of at most 253 characters.
    let label = "w".repeat(63);
    let n253 = format!("{label}.{label}.{label}.{}", "w".repeat(61));
    assert_eq!(n253.len(), 253);
    let mut work = work_json(&c63, &n253, "a");
    // the fixture's ConfigMap is `cm-<work name>`: 256 characters, itself invalid
    work["spec"]["workload"]["manifests"][0]["metadata"]["name"] = json!("cm");
    let r = put_work(&hub, &work).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let n254 = format!("{n253}w");
    assert_error(
        &put_work(&hub, &work_json(&c63, &n254, "a")).await,
        422,
        "Invalid",
        &["metadata.name", "253"],
    );
    for bad in ["a..b", "a.-b", "a-.b", ".a", "a."] {
        let r = put_work(&hub, &work_json(&c63, bad, "a")).await;
        assert_error(&r, 422, "Invalid", &["metadata.name"]);
    }
    hub.shutdown().await;
}

/// A spec event as an older version queued it: `metadata` with `annotations`, and a
/// ConfigMap of `data_bytes` as the bundle.
fn old_spec_event(
    source: &str,
    cluster: &str,
    name: &str,
    annotations: Value,
    data_bytes: usize,
) -> NewOutbox {
    let uid = work_resource_id(source, cluster, name).to_string();
    let meta = json!({"name": name, "namespace": cluster, "uid": uid, "resourceVersion": "1",
        "generation": 1, "annotations": annotations});
    let bundle = json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default"},
        "data": {"key": "z".repeat(data_bytes)}}]});
    let event: Event = SpecEventFields {
        source_id: source.to_string(),
        action: Action::CreateRequest,
        cluster_name: cluster.to_string(),
        resource_id: uid.clone(),
        generation: 1,
        metadata: meta.as_object().cloned(),
        bundle: Some(bundle),
        deletion_timestamp: None,
        log_tracing: Some(BTreeMap::new()),
    }
    .build(Utc::now())
    .unwrap();
    NewOutbox {
        cluster: cluster.to_string(),
        resource_id: Some(uid),
        event,
        message: None,
        actor: None,
    }
}

/// The three reproductions, queued as an older version would have, ahead of an
/// ordinary event for the healthy cluster `edge-ok`.
fn seed_old_outbox(dir: &std::path::Path, source: &str) {
    let store = SqliteStore::open(&dir.join(workbus_hub::hub::DB_FILE)).unwrap();
    let annotation =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(70_000)});
    let rows = vec![
        // ce-metadata over 65,535 bytes.
        old_spec_event(source, "poison-a", "big", annotation, 10),
        // A cluster name that cannot be a topic segment of that length.
        old_spec_event(source, &"p".repeat(70_000), "w", json!({}), 10),
        // A packet over 1 MiB.
        old_spec_event(source, "poison-c", "huge", json!({}), 1_200_000),
        // And an ordinary event behind them.
        old_spec_event(source, "edge-ok", "w0", json!({}), 10),
    ];
    (&store as &dyn Store)
        .write(Enqueue {
            events: rows,
            now: Utc::now(),
        })
        .unwrap();
}

async fn start_hub_at(dir: &std::path::Path, source: &str, host: &str, port: u16) -> HubHandle {
    let hub = start_hub_with(dir, source, host, port).await;
    assert!(hub.wait_subscribed(WAIT).await, "hub subscribed");
    hub
}

/// The whole scenario against the broker at `host:port`.
async fn parked_rows_do_not_block_other_clusters(host: &str, port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("poison");
    seed_old_outbox(dir.path(), &source);
    let mut agent = FakeAgent::connect_at(host, port, &source, "edge-ok").await;

    let hub = start_hub_at(dir.path(), &source, host, port).await;
    // The ordinary event queued behind the three unpublishable ones goes out...
    let w0 = agent
        .next("the healthy cluster's queued event", |e| {
            ext(e, "resourceid") == Some(work_resource_id(&source, "edge-ok", "w0").to_string())
        })
        .await;
    assert!(is_type(&w0, "spec.create_request"));
    // ...and so does a new one.
    assert_eq!(create_cluster(&hub, "edge-ok").await.status, 201);
    assert_eq!(
        put_work(&hub, &work_json("edge-ok", "w1", "a"))
            .await
            .status,
        201
    );
    agent
        .next("a new work of the healthy cluster", |e| {
            ext(e, "resourceid") == Some(work_resource_id(&source, "edge-ok", "w1").to_string())
        })
        .await;
    // The three rows are parked, counted once, and not pending.
    eventually("three rows parked", || async {
        metric(&hub, "workbus_hub_outbox_parked").await == Some(3)
    })
    .await;
    assert_eq!(
        metric(&hub, "workbus_hub_outbox_parked_total").await,
        Some(3)
    );
    eventually("nothing pending", || async {
        metric(&hub, "workbus_hub_outbox_depth").await == Some(0)
    })
    .await;
    let parked = http(
        "GET",
        format!("{}/api/v1/outbox/parked", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(parked.status, 200, "{:?}", parked.body);
    let items = parked.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let reasons: Vec<&str> = items
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("ce-metadata"), "{reasons:?}");
    assert!(reasons[1].contains("topic"), "{reasons:?}");
    assert!(reasons[2].contains("packet"), "{reasons:?}");
    hub.shutdown().await;

    // After a restart the parked rows stay parked (not parked again, not retried on
    // the wire) and the healthy cluster is served at once.
    let hub = start_hub_at(dir.path(), &source, host, port).await;
    assert_eq!(
        put_work(&hub, &work_json("edge-ok", "w2", "a"))
            .await
            .status,
        201
    );
    agent
        .next("a work after the restart", |e| {
            ext(e, "resourceid") == Some(work_resource_id(&source, "edge-ok", "w2").to_string())
        })
        .await;
    assert_eq!(metric(&hub, "workbus_hub_outbox_parked").await, Some(3));
    assert_eq!(
        metric(&hub, "workbus_hub_outbox_parked_total").await,
        Some(0)
    );

    // The operator clears a parked row by replacing the work with one that fits: its
    // newer event supersedes the parked one.
    let mut big_agent = FakeAgent::connect_at(host, port, &source, "poison-a").await;
    assert_eq!(create_cluster(&hub, "poison-a").await.status, 201);
    assert_eq!(
        put_work(&hub, &work_json("poison-a", "big", "a"))
            .await
            .status,
        201
    );
    big_agent
        .next("the replaced work", |e| {
            ext(e, "resourceid") == Some(work_resource_id(&source, "poison-a", "big").to_string())
        })
        .await;
    eventually("the superseded row is gone", || async {
        metric(&hub, "workbus_hub_outbox_parked").await == Some(2)
    })
    .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn parked_rows_do_not_block_other_clusters_embedded_broker() {
    let broker = Broker::new(BrokerConfig::with_listen("127.0.0.1:0".parse().unwrap()))
        .start()
        .await
        .unwrap();
    let addr = broker.local_addr();
    parked_rows_do_not_block_other_clusters(&addr.ip().to_string(), addr.port()).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn parked_rows_do_not_block_other_clusters_mosquitto() {
    parked_rows_do_not_block_other_clusters(broker().0, broker().1).await;
}

#[tokio::test]
async fn a_work_stored_by_an_older_version_is_replaced_before_it_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("legacy");
    {
        // An older version accepted a work whose metadata cannot travel.
        let store = SqliteStore::open(&dir.path().join(workbus_hub::hub::DB_FILE)).unwrap();
        let store: &dyn Store = &store;
        store
            .write(CreateCluster {
                name: "edge-1".into(),
                labels: BTreeMap::new(),
                now: Utc::now(),
            })
            .unwrap();
        let work = work_json("edge-1", "big", "a");
        let desired = DesiredWork {
            key: WorkKey {
                cluster: "edge-1".into(),
                name: "big".into(),
            },
            uid: work_resource_id(&source, "edge-1", "big").to_string(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::from([(
                "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                "x".repeat(70_000),
            )]),
            spec: serde_json::from_value(work["spec"].clone()).unwrap(),
        };
        let now = Utc::now();
        let source = source.clone();
        store
            .write(ApplyWork {
                desired,
                create_only: false,
                now,
                build: Arc::new(move |w, c| change_event(&source, w, c, now).map(Into::into)),
                actor: None,
            })
            .unwrap();
    }
    let hub = start_hub(dir.path(), &source).await;
    eventually("its create event parked", || async {
        metric(&hub, "workbus_hub_outbox_parked").await == Some(1)
    })
    .await;
    // Its delete event would not fit either: refused, with the way out.
    let url = format!("{}/api/v1/clusters/edge-1/works/big", hub.base_url());
    assert_error(
        &http("DELETE", url.clone(), None, None).await,
        409,
        "Conflict",
        &["ce-metadata", "replace it (PUT)"],
    );
    // Replacing it with a version that fits supersedes the parked event; then it can go.
    let r = put_work(&hub, &work_json("edge-1", "big", "a")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    eventually("the parked event superseded", || async {
        metric(&hub, "workbus_hub_outbox_parked").await == Some(0)
    })
    .await;
    assert_eq!(http("DELETE", url, None, None).await.status, 202);
    hub.shutdown().await;
}

#[tokio::test]
async fn the_parked_listing_pages_and_checks_its_query() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("listing");
    {
        let store = SqliteStore::open(&dir.path().join(workbus_hub::hub::DB_FILE)).unwrap();
        let rows: Vec<NewOutbox> = (0..3)
            .map(|i| old_spec_event(&source, "edge-1", &format!("w{i}"), json!({}), 1_200_000))
            .collect();
        (&store as &dyn Store)
            .write(Enqueue {
                events: rows,
                now: Utc::now(),
            })
            .unwrap();
    }
    let hub = start_hub(dir.path(), &source).await;
    eventually("three rows parked", || async {
        metric(&hub, "workbus_hub_outbox_parked").await == Some(3)
    })
    .await;
    let base = format!("{}/api/v1/outbox/parked", hub.base_url());
    let page = http("GET", format!("{base}?limit=2"), None, None)
        .await
        .body;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["metadata"]["continue"].as_str().unwrap().to_string();
    let rest = http("GET", format!("{base}?limit=2&after={next}"), None, None)
        .await
        .body;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["metadata"].get("continue").is_none());
    assert_eq!(
        rest["items"][0]["resourceId"],
        work_resource_id(&source, "edge-1", "w2").to_string()
    );
    for bad in ["limit=0", "limit=1001", "after=x"] {
        let r = http("GET", format!("{base}?{bad}"), None, None).await;
        assert_error(&r, 400, "BadRequest", &[]);
    }
    hub.shutdown().await;
}
