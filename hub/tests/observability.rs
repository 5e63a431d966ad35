//! The hub's metrics and probes over real HTTP (issue 17): `/metrics` in the Prometheus
//! text format with OCM's and Maestro's names, counters that move with real traffic,
//! the embedded broker's metrics, the table of `docs/metrics.md` kept exact, and
//! `/readyz` flipping when the broker goes away and comes back (`/livez` does not).
//!
//! The broker is our own (`workbus-broker`, in-process), so nothing needs installing.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use workbus_broker::{Broker, BrokerConfig, BrokerHandle};
use workbus_testkit::metrics_doc::{assert_documented, sample};

async fn broker_on(addr: SocketAddr) -> BrokerHandle {
    Broker::new(BrokerConfig::with_listen(addr))
        .start()
        .await
        .expect("broker starts")
}

async fn scrape(hub: &workbus_hub::HubHandle) -> String {
    let r = http_as(
        None,
        "GET",
        format!("{}/metrics", hub.base_url()),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    r.body.as_str().expect("text").to_string()
}

async fn probe(hub: &workbus_hub::HubHandle, path: &str) -> (u16, String) {
    let r = http_as(None, "GET", format!("{}{path}", hub.base_url()), None, None).await;
    // A 503 comes in the API's error shape, `{code, reason, message}`.
    let text = match r.body.as_str() {
        Some(t) => t.to_string(),
        None => r.body["message"].as_str().unwrap_or_default().to_string(),
    };
    (r.status, text)
}

/// Polls `probe` until `status`; the last answer if it never came.
async fn probe_until(hub: &workbus_hub::HubHandle, path: &str, status: u16) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = probe(hub, path).await;
        if got.0 == status || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_move_with_traffic_and_match_the_documented_table() {
    let broker = broker_on("127.0.0.1:0".parse().unwrap()).await;
    let addr = broker.local_addr();
    let dir = tempfile::tempdir().unwrap();
    let source = unique("obs");
    let hub = start_hub_with(dir.path(), &source, "127.0.0.1", addr.port()).await;
    assert!(hub.wait_subscribed(WAIT).await);
    // As `serve` does with its embedded broker.
    hub.metrics().attach_broker(broker.metrics());

    assert_eq!(create_cluster(&hub, "edge-1").await.status, 201);
    assert_eq!(
        put_work(&hub, &work_json("edge-1", "web", "a"))
            .await
            .status,
        201
    );
    assert_eq!(
        http(
            "GET",
            format!("{}/api/v1/clusters/edge-1/works/nope", hub.base_url()),
            None,
            None
        )
        .await
        .status,
        404
    );

    // The spec event goes out once the broker acknowledged it (no agent needed).
    let sent = format!(
        "cloudevents_sent_total{{source=\"{source}\",consumer=\"edge-1\",type=\"io.open-cluster-management.works.v1alpha1.manifestbundles\",subresource=\"spec\",action=\"create_request\"}}"
    );
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = scrape(&hub).await;
        if sample(&text, &sent) == Some(1.0) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&text, &sent), Some(1.0), "{text}");
    for (series, value) in [
        (
            "rest_api_inbound_request_count{code=\"201\",method=\"PUT\",path=\"/api/v1/clusters/-/works/-\"}",
            1.0,
        ),
        (
            "rest_api_inbound_request_count{code=\"404\",method=\"GET\",path=\"/api/v1/clusters/-/works/-\"}",
            1.0,
        ),
        (
            "rest_api_inbound_request_duration_count{code=\"201\",method=\"PUT\",path=\"/api/v1/clusters/-/works/-\"}",
            1.0,
        ),
        ("workbus_hub_api_rejected_total", 1.0),
        ("workbus_mqtt_connected", 1.0),
        ("workbus_mqtt_subscribed", 1.0),
        (
            "workbus_build_info{component=\"hub\",version=\"0.1.0\",os=\"linux\",arch=\"x86_64\",profile=\"debug\"}",
            1.0,
        ),
    ] {
        if series.starts_with("workbus_build_info")
            && !cfg!(all(
                target_os = "linux",
                target_arch = "x86_64",
                debug_assertions
            ))
        {
            continue;
        }
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    for counter in [
        "workbus_hub_events_sent_total{type=\"io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request\"}",
        "workbus_mqtt_messages_published_total",
        "workbus_mqtt_publish_ack_duration_seconds_count",
        "workbus_hub_store_commits_total",
        "workbus_hub_store_commit_duration_seconds_count",
        "workbus_broker_messages_received_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            sample(&text, counter).is_some_and(|v| v > 0.0),
            "{counter} should have moved:\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "workbus_broker_connections"),
        Some(1.0),
        "{text}"
    );
    // Every name the hub (with its embedded broker) serves is in the table, and only those.
    assert_documented(&text, &["hub", "broker"]);
    hub.shutdown().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn readiness_follows_the_broker_and_liveness_does_not() {
    let broker = broker_on("127.0.0.1:0".parse().unwrap()).await;
    let addr = broker.local_addr();
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub_with(dir.path(), &unique("ready"), "127.0.0.1", addr.port()).await;
    assert_eq!(probe_until(&hub, "/readyz", 200).await, (200, "ok".into()));
    assert_eq!(probe(&hub, "/livez").await.0, 200);

    broker.shutdown().await;
    let (status, body) = probe_until(&hub, "/readyz", 503).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not connected to the MQTT broker"), "{body}");
    // Alive all the same: a probe must not get it restarted for its broker's outage.
    assert_eq!(probe(&hub, "/livez").await.0, 200);
    assert_eq!(probe(&hub, "/healthz").await.0, 200);
    let text = scrape(&hub).await;
    assert_eq!(sample(&text, "workbus_mqtt_connected"), Some(0.0));

    let broker = broker_on(addr).await;
    assert_eq!(probe_until(&hub, "/readyz", 200).await, (200, "ok".into()));
    let text = scrape(&hub).await;
    assert!(
        sample(
            &text,
            &format!(
                "cloudevents_client_reconnected_total{{client_id=\"{}\"}}",
                client_id_of(&text)
            )
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    hub.shutdown().await;
    broker.shutdown().await;
}

/// The client id in the scrape's reconnect counter.
fn client_id_of(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("cloudevents_client_reconnected_total{client_id=\""))
        .expect("the reconnect counter has a series");
    line["cloudevents_client_reconnected_total{client_id=\"".len()..]
        .split('"')
        .next()
        .unwrap()
        .to_string()
}
