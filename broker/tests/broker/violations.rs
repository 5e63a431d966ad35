//! MQTT 5 protocol violations the codec would accept, each sent as raw bytes: the
//! connection is closed (MQTT 5 with the reason the specification names, 3.1.1 without
//! a word), the violation is counted, and the broker goes on serving.

use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::io::AsyncReadExt;
use workbus_broker::BrokerHandle;

use crate::common::*;

/// A whole packet: `byte1`, the remaining length, `body`.
fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// An MQTT 5 CONNECT with connect `flags` and the property block `props`.
fn connect_v5(flags: u8, props: &[u8]) -> Vec<u8> {
    let mut body = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        5,
        flags,
        0,
        30,
        props.len() as u8,
    ];
    body.extend_from_slice(props);
    body.extend_from_slice(&[0, 1, b'v']);
    packet(0x10, &body)
}

/// An MQTT 3.1.1 CONNECT with connect `flags`.
fn connect_v4(flags: u8) -> Vec<u8> {
    packet(
        0x10,
        &[0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 30, 0, 1, b'o'],
    )
}

/// A QoS 0 MQTT 5 PUBLISH to `t` with the property block `props`.
fn publish_v5(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, b't', props.len() as u8];
    body.extend_from_slice(props);
    body.extend_from_slice(b"x");
    packet(0x30, &body)
}

/// A SUBSCRIBE of `a` with `options`; `props` is the MQTT 5 property block (`None`:
/// 3.1.1, no properties).
fn subscribe(props: Option<&[u8]>, options: u8) -> Vec<u8> {
    let mut body = vec![0, 1];
    if let Some(p) = props {
        body.push(p.len() as u8);
        body.extend_from_slice(p);
    }
    body.extend_from_slice(&[0, 1, b'a', options]);
    packet(0x82, &body)
}

/// Connects (MQTT 5), sends `bytes`, and expects DISCONNECT with `reason`, then the
/// socket closed; the violation is counted and the broker still serves.
async fn disconnects(broker: &BrokerHandle, bytes: &[u8], reason: p5::DisconnectReasonCode) {
    let before = broker.stats().protocol_violations;
    let mut raw = Raw::connect(broker.local_addr()).await;
    assert_eq!(
        raw.handshake("violator", 30).await.code,
        p5::ConnectReturnCode::Success
    );
    raw.send_bytes(bytes).await;
    match raw.recv().await {
        Some(p5::Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason),
        other => panic!("expected DISCONNECT {reason:?}, got {other:?}"),
    }
    assert!(raw.recv().await.is_none(), "connection closed");
    assert_eq!(broker.stats().protocol_violations, before + 1);
    still_serving(broker).await;
}

/// Sends a v5 CONNECT and expects a refusing CONNACK with `code`, then the close.
async fn connack_refuses(broker: &BrokerHandle, bytes: &[u8], code: p5::ConnectReturnCode) {
    let before = broker.stats().protocol_violations;
    let mut raw = Raw::connect(broker.local_addr()).await;
    raw.send_bytes(bytes).await;
    match raw.recv().await {
        Some(p5::Packet::ConnAck(a)) => assert_eq!(a.code, code),
        other => panic!("expected CONNACK {code:?}, got {other:?}"),
    }
    assert!(raw.recv().await.is_none(), "connection closed");
    assert_eq!(broker.stats().protocol_violations, before + 1);
    still_serving(broker).await;
}

/// Sends `bytes` on a fresh socket and expects it closed with nothing sent back but what
/// `prefix_reply` bytes say (a 3.1.1 CONNACK).
async fn closes_silently(broker: &BrokerHandle, bytes: &[u8], prefix_reply: &[u8]) {
    let before = broker.stats().protocol_violations;
    let mut raw = Raw::connect(broker.local_addr()).await;
    raw.send_bytes(bytes).await;
    let mut got = Vec::new();
    within("the broker to close", raw.stream.read_to_end(&mut got))
        .await
        .ok();
    assert_eq!(
        got, prefix_reply,
        "nothing but {prefix_reply:?} before the close"
    );
    assert_eq!(broker.stats().protocol_violations, before + 1);
    still_serving(broker).await;
}

async fn still_serving(broker: &BrokerHandle) {
    let mut raw = Raw::connect(broker.local_addr()).await;
    assert_eq!(
        raw.handshake("healthy", 30).await.code,
        p5::ConnectReturnCode::Success
    );
}

#[tokio::test]
async fn reserved_connect_flag() {
    let broker = start(local_config()).await;
    // Clean start plus the reserved bit 0.
    connack_refuses(
        &broker,
        &connect_v5(0x03, &[]),
        p5::ConnectReturnCode::MalformedPacket,
    )
    .await;
    closes_silently(&broker, &connect_v4(0x03), &[]).await;
}

#[tokio::test]
async fn receive_maximum_zero() {
    let broker = start(local_config()).await;
    connack_refuses(
        &broker,
        &connect_v5(0x02, &[0x21, 0, 0]),
        p5::ConnectReturnCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn duplicated_single_occurrence_property() {
    let broker = start(local_config()).await;
    // Content Type twice in PUBLISH.
    let dup = [0x03, 0, 1, b'a', 0x03, 0, 1, b'b'];
    disconnects(
        &broker,
        &publish_v5(&dup),
        p5::DisconnectReasonCode::ProtocolError,
    )
    .await;
    // Session Expiry Interval twice in CONNECT.
    connack_refuses(
        &broker,
        &connect_v5(0x02, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]),
        p5::ConnectReturnCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn subscription_identifier_zero() {
    let broker = start(local_config()).await;
    disconnects(
        &broker,
        &subscribe(Some(&[0x0B, 0]), 0x01),
        p5::DisconnectReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn reserved_subscription_option_bits() {
    let broker = start(local_config()).await;
    disconnects(
        &broker,
        &subscribe(Some(&[]), 0xC1),
        p5::DisconnectReasonCode::MalformedPacket,
    )
    .await;
}

#[tokio::test]
async fn pingreq_with_payload() {
    let broker = start(local_config()).await;
    disconnects(
        &broker,
        &[0xC0, 0x01, 0x00],
        p5::DisconnectReasonCode::MalformedPacket,
    )
    .await;
}

#[tokio::test]
async fn client_sent_subscription_identifier() {
    let broker = start(local_config()).await;
    disconnects(
        &broker,
        &publish_v5(&[0x0B, 5]),
        p5::DisconnectReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn wildcard_in_response_topic() {
    let broker = start(local_config()).await;
    disconnects(
        &broker,
        &publish_v5(&[0x08, 0, 3, b'r', b'/', b'#']),
        p5::DisconnectReasonCode::ProtocolError,
    )
    .await;
}

#[tokio::test]
async fn v5_subscription_options_in_a_311_subscribe() {
    let broker = start(local_config()).await;
    // No Local (bit 2) on a 3.1.1 SUBSCRIBE: CONNACK, then the close, no SUBACK.
    let mut bytes = connect_v4(0x02);
    bytes.extend_from_slice(&subscribe(None, 0x05));
    closes_silently(&broker, &bytes, &[0x20, 0x02, 0x00, 0x00]).await;
}
