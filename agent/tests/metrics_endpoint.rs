//! The agent process's `--metrics-listen` endpoint over real HTTP (issue 17):
//! `/metrics` with OCM's names and the agent's counters moving with its traffic,
//! exactly the metrics `docs/metrics.md` lists for the agent, and `/readyz` true once
//! connected and resynced, false when the broker goes away (`/healthz` stays 200).
//!
//! The broker is `workbus-broker` in-process, so nothing needs installing.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::{Instant, timeout};
use workbus_broker::{Broker, BrokerConfig};
use workbus_testkit::metrics_doc::{assert_documented, sample};

const WAIT: Duration = Duration::from_secs(20);

/// One GET over a fresh connection: status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("endpoint reachable");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let status = text[9..12].parse().expect("a status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Polls `path` until it answers `status`; the last answer if it never did.
async fn get_until(addr: SocketAddr, path: &str, status: u16) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = get(addr, path).await;
        if got.0 == status || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_and_readiness_over_http() {
    let broker = Broker::new(BrokerConfig::with_listen("127.0.0.1:0".parse().unwrap()))
        .start()
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let cluster = workbus_testkit::unique("edge-metrics");
    let mut child = Command::new(env!("CARGO_BIN_EXE_workbus-agent"))
        .arg(format!("--spoke-cluster-name={cluster}"))
        .arg(format!("--broker={}", broker.local_addr()))
        .arg(format!("--data-dir={}", data.path().display()))
        .arg("--metrics-listen=127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("metrics and health on http://").nth(1) {
                return rest.split('/').next().unwrap().parse().unwrap();
            }
        }
        panic!("the agent never said where its metrics are");
    })
    .await
    .expect("the agent announces its endpoint");
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    assert_eq!(get_until(addr, "/readyz", 200).await, (200, "ok\n".into()));
    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let resync = format!(
        "cloudevents_sent_total{{source=\"{cluster}-work-agent\",consumer=\"{cluster}\",type=\"io.open-cluster-management.works.v1alpha1.manifestbundles\",subresource=\"spec\",action=\"resync_request\"}}"
    );
    for (series, value) in [
        (resync.as_str(), 1.0),
        ("workbus_agent_spec_resync_requests_total", 1.0),
        ("workbus_agent_resynced", 1.0),
        ("workbus_mqtt_connected", 1.0),
        ("workbus_mqtt_subscribed", 1.0),
        ("workbus_mqtt_messages_published_total", 1.0),
        ("workbus_mqtt_publish_ack_duration_seconds_count", 1.0),
        (
            "manifestworks_processed_total{action=\"apply\",code=\"ok\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
    assert!(
        text.contains("workbus_build_info{component=\"agent\""),
        "{text}"
    );
    assert_documented(&text, &["agent"]);

    broker.shutdown().await;
    let (status, body) = get_until(addr, "/readyz", 503).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not connected"), "{body}");
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(
        sample(&get(addr, "/metrics").await.1, "workbus_agent_resynced"),
        Some(0.0)
    );

    let pid = child.id().expect("running").to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
    let exit = timeout(Duration::from_secs(10), child.wait()).await;
    assert!(exit.is_ok_and(|s| s.is_ok_and(|s| s.success())));
}
