//! The `workbus-broker` binary's `--metrics-listen` endpoint over real HTTP (issue 17):
//! `/metrics` with the broker's counters moving with real MQTT traffic, exactly the
//! metrics `docs/metrics.md` lists for the broker, and the probes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use workbus_testkit::metrics_doc::{assert_documented, sample};

use crate::common::*;

/// One blocking GET: status code and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("endpoint reachable");
    write!(s, "GET {path} HTTP/1.1\r\nHost: broker\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().expect("a status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The address after `prefix` in a banner line, up to the next space or `/`.
fn addr_after(line: &str, prefix: &str) -> Option<SocketAddr> {
    let rest = line.split(prefix).nth(1)?;
    rest.split([' ', '/']).next()?.parse().ok()
}

#[tokio::test]
async fn the_binary_serves_its_counters_and_probes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_workbus-broker"))
        .args(["--listen", "127.0.0.1:0", "--acl", "off"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the broker starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut mqtt, mut http) = (None, None);
    while mqtt.is_none() || http.is_none() {
        let line = lines.recv_timeout(WAIT).expect("the banner");
        mqtt = mqtt.or(addr_after(&line, "workbus-broker listening on "));
        http = http.or(addr_after(&line, "metrics and health on http://"));
    }
    let (mqtt, http) = (mqtt.unwrap(), http.unwrap());

    assert_eq!(get(http, "/readyz"), (200, "ok\n".into()));
    assert_eq!(get(http, "/healthz").0, 200);

    let (mut sub, _) = connect_v5(v5_options(mqtt, "metrics-sub")).await;
    sub.sub(&["m/+"]).await;
    let (mut publisher, _) = connect_v5(v5_options(mqtt, "metrics-pub")).await;
    publisher
        .client
        .publish("m/1", QoS::AtLeastOnce, false, Bytes::from_static(b"x"))
        .await
        .expect("queued");
    publisher.next_puback().await;
    sub.next_publish().await;

    let text = tokio::task::spawn_blocking(move || get(http, "/metrics").1)
        .await
        .unwrap();
    for (series, value) in [
        ("workbus_broker_connections", 2.0),
        ("workbus_broker_messages_received_total", 1.0),
        ("workbus_broker_messages_delivered_total", 1.0),
        ("workbus_broker_messages_dropped_total", 0.0),
        (
            "workbus_broker_acl_denied_total{operation=\"publish\"}",
            0.0,
        ),
        ("workbus_broker_disconnects_total{reason=\"revoked\"}", 0.0),
        ("workbus_broker_queued_messages", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert!(
        text.contains("workbus_build_info{component=\"broker\""),
        "{text}"
    );
    assert!(
        sample(&text, "process_open_fds").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert_documented(&text, &["broker"]);

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().expect("exits").success());
}
