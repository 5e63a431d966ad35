//! Per-client resource bounds: a subscriber that never reads is cut off by its queue's
//! byte bound while others keep receiving; subscriptions per client and filter length;
//! connections per source address (loopback exempt by default).

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::io::AsyncReadExt;

use crate::common::*;

#[tokio::test]
async fn a_stalled_subscriber_is_cut_off_while_others_keep_receiving() {
    let mut config = local_config();
    config.max_packet_size = 64 * 1024;
    config.max_queued_bytes = 256 * 1024;
    // Longer than the test waits: the cut-off must come from the byte bound, not from
    // a write timing out.
    config.write_timeout = std::time::Duration::from_secs(120);
    let broker = start(config).await;
    let addr = broker.local_addr();

    // Subscribes, then never reads its socket again.
    let mut stalled = Raw::connect(addr).await;
    assert_eq!(
        stalled.handshake("stalled", 600).await.code,
        p5::ConnectReturnCode::Success
    );
    let mut sub = p5::Subscribe::new(p5::Filter::new("load", QoS::AtMostOnce), None);
    sub.pkid = 1;
    stalled.send(p5::Packet::Subscribe(sub)).await;
    assert!(matches!(stalled.recv().await, Some(p5::Packet::SubAck(_))));

    let (mut normal, _) = connect_v5(v5_options(addr, "normal")).await;
    normal.sub(&["load"]).await;
    let (publisher, _) = connect_v5(v5_options(addr, "publisher")).await;

    // Batches the normal subscriber takes in before the next one, so only the stalled
    // client falls behind: 16 KiB messages, far more in total than socket buffers hold.
    let payload = vec![7u8; 16 * 1024];
    let (mut sent, mut after_cut) = (0usize, 0usize);
    while sent < 4000 && after_cut < 64 {
        for _ in 0..8 {
            publisher
                .client
                .publish("load", QoS::AtMostOnce, false, payload.clone())
                .await
                .expect("queued");
        }
        for _ in 0..8 {
            assert_eq!(normal.next_publish().await.payload.len(), payload.len());
        }
        sent += 8;
        if broker.stats().slow_consumer_disconnects > 0 {
            after_cut += 8;
        }
    }
    let stats = broker.stats();
    assert_eq!(stats.slow_consumer_disconnects, 1, "after {sent} messages");
    assert!(
        after_cut > 0,
        "the normal subscriber kept receiving after the cut"
    );
    // The stalled client's socket is closed: reading drains what was in flight, then EOF.
    let mut sink = Vec::new();
    within(
        "the stalled socket to close",
        stalled.stream.read_to_end(&mut sink),
    )
    .await
    .ok();
    assert_eq!(broker.stats().connected_clients, 2);
}

#[tokio::test]
async fn subscriptions_per_client_and_filter_length_are_bounded() {
    let mut config = local_config();
    config.max_subscriptions = 3;
    config.max_filter_len = 32;
    let broker = start(config).await;
    let addr = broker.local_addr();
    let long = format!("a/{}", "x".repeat(40));

    let (mut five, _) = connect_v5(v5_options(addr, "five")).await;
    let codes = five.sub(&["a", "b", "c", "d", &long]).await;
    assert_eq!(
        codes,
        vec![
            p5::SubscribeReasonCode::Success(QoS::AtLeastOnce),
            p5::SubscribeReasonCode::Success(QoS::AtLeastOnce),
            p5::SubscribeReasonCode::Success(QoS::AtLeastOnce),
            p5::SubscribeReasonCode::QuotaExceeded,
            p5::SubscribeReasonCode::TopicFilterInvalid,
        ]
    );
    // Replacing a subscription it holds is not a new one.
    assert_eq!(
        five.sub(&["a"]).await,
        vec![p5::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );

    let mut old = connect_v4(v4_options(addr, "old")).await;
    assert_eq!(
        old.sub(&long).await,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );
    assert_eq!(broker.stats().refused_subscriptions, 3);
}

#[tokio::test]
async fn connections_per_source_address_are_bounded() {
    let mut config = local_config();
    config.max_connections_per_address = 2;
    config.limit_loopback = true;
    let broker = start(config).await;
    let addr = broker.local_addr();

    let mut first = Raw::connect(addr).await;
    let mut second = Raw::connect(addr).await;
    let mut third = Raw::connect(addr).await;
    assert_eq!(
        first.handshake("first", 30).await.code,
        p5::ConnectReturnCode::Success
    );
    assert_eq!(
        second.handshake("second", 30).await.code,
        p5::ConnectReturnCode::Success
    );
    // Closed at accept, before any MQTT.
    assert!(third.recv().await.is_none());
    assert_eq!(broker.stats().refused_per_address, 1);

    // A freed slot can be used again.
    drop(first);
    within("a freed slot", async {
        loop {
            let mut again = Raw::connect(addr).await;
            let connect = p5::Connect {
                keep_alive: 30,
                client_id: "again".into(),
                clean_start: true,
                properties: None,
            };
            again.send(p5::Packet::Connect(connect, None, None)).await;
            if let Some(p5::Packet::ConnAck(a)) = again.recv().await {
                assert_eq!(a.code, p5::ConnectReturnCode::Success);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn loopback_is_exempt_from_the_per_address_limit_by_default() {
    let mut config = local_config();
    config.max_connections_per_address = 2;
    let broker = start(config).await;
    let addr = broker.local_addr();
    let mut held = Vec::new();
    for i in 0..20 {
        let mut raw = Raw::connect(addr).await;
        assert_eq!(
            raw.handshake(&format!("lo-{i}"), 30).await.code,
            p5::ConnectReturnCode::Success
        );
        held.push(raw);
    }
    assert_eq!(broker.stats().refused_per_address, 0);
    assert_eq!(broker.stats().connected_clients, 20);
}
