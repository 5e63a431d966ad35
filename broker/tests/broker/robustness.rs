//! Oversized packets and hostile bytes: the offending connection ends, the broker does not.

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as p5;

use crate::common::*;

/// The broker still routes between two fresh clients.
async fn assert_serving(addr: std::net::SocketAddr, tag: &str) {
    let (mut sub, _) = connect_v5(v5_options(addr, &format!("{tag}-sub"))).await;
    sub.sub(&["alive"]).await;
    let (publisher, _) = connect_v5(v5_options(addr, &format!("{tag}-pub"))).await;
    publisher
        .client
        .publish("alive", QoS::AtLeastOnce, false, tag.to_string())
        .await
        .expect("queued");
    assert_eq!(sub.next_publish().await.payload, tag.as_bytes());
}

#[tokio::test]
async fn packet_over_the_limit_is_refused_without_harm() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut bystander, _) = connect_v5(v5_options(addr, "bystander")).await;
    bystander.sub(&["big"]).await;

    // MQTT 5 clients learn the limit from CONNACK, so rumqttc refuses locally; a raw
    // client ignores it. The header alone (2 MiB announced) is enough for the broker to
    // answer DISCONNECT 0x95 without buffering the body.
    let mut raw = Raw::connect(addr).await;
    assert_eq!(
        raw.handshake("raw", 30).await.code,
        p5::ConnectReturnCode::Success
    );
    raw.send_bytes(&[0x30, 0x80, 0x80, 0x80, 0x01, 0x00, 0x03, b'b', b'i', b'g'])
        .await;
    match raw.recv().await {
        Some(p5::Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code, p5::DisconnectReasonCode::PacketTooLarge)
        }
        other => panic!("expected DISCONNECT 0x95, got {other:?}"),
    }
    assert!(raw.recv().await.is_none(), "connection closed");

    // A 3.1.1 client sending 1.1 MiB for real is disconnected.
    let mut old = connect_v4(v4_options(addr, "old")).await;
    old.client
        .publish(
            "big",
            rumqttc::QoS::AtLeastOnce,
            false,
            vec![0u8; 1100 * 1024],
        )
        .await
        .expect("queued");
    old.expect_error("disconnect for an oversized packet").await;

    // The rumqttc v5 client honours the announced limit itself.
    let (mut five, _) = connect_v5(v5_options(addr, "five")).await;
    five.client
        .publish("big", QoS::AtLeastOnce, false, vec![0u8; 1100 * 1024])
        .await
        .expect("queued");
    let err = five.expect_error("client-side refusal").await;
    assert!(err.contains("OutgoingPacketTooLarge"), "{err}");

    // Nothing oversized reached the bystander, which is still connected and served.
    bystander
        .client
        .publish("big", QoS::AtLeastOnce, false, "small")
        .await
        .expect("queued");
    assert_eq!(&bystander.next_publish().await.payload[..], b"small");
    assert_serving(addr, "after-oversize").await;
}

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn valid_prefix() -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    let connect = p5::Connect {
        keep_alive: 30,
        client_id: "fuzz".into(),
        clean_start: true,
        properties: None,
    };
    p5::Packet::Connect(connect, None, Some(p5::Login::new("u", "p")))
        .write(&mut out, None)
        .expect("encodable");
    let mut sub = p5::Subscribe::new(p5::Filter::new("$share/g/a/+", QoS::AtLeastOnce), None);
    sub.pkid = 1;
    p5::Packet::Subscribe(sub)
        .write(&mut out, None)
        .expect("encodable");
    let props = p5::PublishProperties {
        user_properties: vec![("ce-type".into(), "x".into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    let mut publish = p5::Publish::new("a/b", QoS::AtLeastOnce, vec![1u8, 2, 3], Some(props));
    publish.pkid = 2;
    p5::Packet::Publish(publish)
        .write(&mut out, None)
        .expect("encodable");
    out.to_vec()
}

#[tokio::test]
async fn hostile_bytes_end_only_the_offending_connection() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let template = valid_prefix();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..200 {
        let mut bytes = if round % 3 == 0 {
            (0..rng.next() % 64)
                .map(|_| rng.next() as u8)
                .collect::<Vec<u8>>()
        } else {
            let mut b = template.clone();
            for _ in 0..=rng.next() % 4 {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.next() as u8;
            }
            b
        };
        if round % 5 == 0 {
            // Also a 3.1.1-flavoured connect.
            if let Some(level) = bytes.get_mut(8) {
                *level = 4;
            }
        }
        let mut raw = Raw::connect(addr).await;
        raw.send_bytes(&bytes).await;
        // Half-close: the broker must end the connection on its own (EOF, error or
        // DISCONNECT), never hang or fall over.
        use tokio::io::AsyncWriteExt;
        let _ = raw.stream.shutdown().await;
        let mut sink = Vec::new();
        use tokio::io::AsyncReadExt;
        within(
            "broker to close a hostile connection",
            raw.stream.read_to_end(&mut sink),
        )
        .await
        .ok();
    }
    // Each hostile connection was unregistered before its socket closed.
    assert_eq!(broker.stats().connected_clients, 0);
    assert_serving(addr, "after-fuzz").await;
}
