//! Routing: properties pass-through, large payloads, shared subscriptions, 3.1.1 <-> 5.

use std::collections::BTreeSet;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{self as p5, LastWill, LastWillProperties, PublishProperties};

use crate::common::*;

/// The properties a binary-mode CloudEvent carries (reference §2), plus the MQTT 5
/// properties a broker must also forward, with repeated keys and non-ASCII values.
fn ce_properties() -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        topic_alias: None,
        response_topic: Some("sources/hub/replies".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![
            ("ce-specversion".into(), "1.0".into()),
            (
                "ce-id".into(),
                "0f0c2a3e-6a8b-4f31-9a0e-1c5b1f2d7e11".into(),
            ),
            (
                "ce-type".into(),
                "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
                    .into(),
            ),
            ("ce-source".into(), "hub".into()),
            ("ce-clustername".into(), "cluster1".into()),
            ("ce-resourceversion".into(), "3".into()),
            ("dup".into(), "first".into()),
            ("dup".into(), "second".into()),
            ("ünïcode".into(), "✓ värde".into()),
            ("empty".into(), "".into()),
        ],
        subscription_identifiers: vec![],
        content_type: Some("application/json".into()),
    }
}

#[tokio::test]
async fn user_properties_and_content_type_arrive_unchanged_at_qos1() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut sub, _) = connect_v5(v5_options(addr, "sub")).await;
    assert_eq!(
        sub.sub(&["sources/hub/consumers/+/sourceevents"]).await,
        vec![p5::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let (mut publisher, _) = connect_v5(v5_options(addr, "pub")).await;

    let payload = Bytes::from_static(br#"{"manifests":[]}"#);
    publisher
        .client
        .publish_with_properties(
            "sources/hub/consumers/cluster1/sourceevents",
            QoS::AtLeastOnce,
            false,
            payload.clone(),
            ce_properties(),
        )
        .await
        .expect("queued");
    assert_eq!(
        publisher.next_puback().await.reason,
        p5::PubAckReason::Success
    );

    let got = sub.next_publish().await;
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert_eq!(
        &got.topic[..],
        b"sources/hub/consumers/cluster1/sourceevents"
    );
    assert_eq!(got.payload, payload);
    assert!(!got.retain);
    // Every property, in order, byte for byte.
    assert_eq!(got.properties, Some(ce_properties()));
}

#[tokio::test]
async fn payload_of_600_kib_passes_both_protocols() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut sub5, _) = connect_v5(v5_options(addr, "sub5")).await;
    sub5.sub(&["big"]).await;
    let mut sub4 = connect_v4(v4_options(addr, "sub4")).await;
    sub4.sub("big").await;
    let (mut publisher, _) = connect_v5(v5_options(addr, "pub")).await;

    let payload: Bytes = (0..600 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    publisher
        .client
        .publish_with_properties(
            "big",
            QoS::AtLeastOnce,
            false,
            payload.clone(),
            ce_properties(),
        )
        .await
        .expect("queued");
    assert_eq!(
        publisher.next_puback().await.reason,
        p5::PubAckReason::Success
    );
    let got5 = sub5.next_publish().await;
    assert_eq!(got5.payload, payload);
    assert_eq!(got5.properties, Some(ce_properties()));
    assert_eq!(sub4.next_publish().await.payload, payload);
}

#[tokio::test]
async fn shared_subscription_delivers_each_message_to_exactly_one_member() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let mut members = Vec::new();
    for id in ["m1", "m2"] {
        let (mut m, _) = connect_v5(v5_options(addr, id)).await;
        // The direct `fence` subscription marks the end of the burst for each member.
        let codes = m
            .sub(&[
                "$share/statussubscribers/sources/hub/consumers/+/agentevents",
                "fence",
            ])
            .await;
        assert!(
            codes
                .iter()
                .all(|c| matches!(c, p5::SubscribeReasonCode::Success(_)))
        );
        members.push(m);
    }
    let (publisher, _) = connect_v5(v5_options(addr, "pub")).await;
    const N: usize = 20;
    for i in 0..N {
        publisher
            .client
            .publish(
                format!("sources/hub/consumers/c{i}/agentevents"),
                QoS::AtLeastOnce,
                false,
                i.to_string(),
            )
            .await
            .expect("queued");
    }
    publisher
        .client
        .publish("fence", QoS::AtLeastOnce, false, "end")
        .await
        .expect("queued");

    // Per-publisher order is kept, so a member has all its share once it sees the fence.
    let mut received: Vec<BTreeSet<usize>> = Vec::new();
    for m in &mut members {
        let mut got = BTreeSet::new();
        loop {
            let p = m.next_publish().await;
            if &p.topic[..] == b"fence" {
                break;
            }
            let i: usize = std::str::from_utf8(&p.payload)
                .expect("utf8")
                .parse()
                .expect("number");
            assert!(got.insert(i), "duplicate delivery of {i} to one member");
        }
        received.push(got);
    }
    assert!(
        received[0].is_disjoint(&received[1]),
        "a message reached both members"
    );
    assert_eq!(
        received[0].len() + received[1].len(),
        N,
        "every message reaches one member"
    );
    assert!(
        !received[0].is_empty() && !received[1].is_empty(),
        "both members get a share"
    );
}

#[tokio::test]
async fn mqtt311_and_mqtt5_clients_exchange_messages() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let mut v4 = connect_v4(v4_options(addr, "old")).await;
    assert_eq!(
        v4.sub("to/v4").await,
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );
    let (mut v5, _) = connect_v5(v5_options(addr, "new")).await;
    v5.sub(&["to/v5"]).await;

    // v5 -> 3.1.1: the payload crosses; properties cannot and are dropped.
    v5.client
        .publish_with_properties(
            "to/v4",
            QoS::AtLeastOnce,
            false,
            "hello old",
            ce_properties(),
        )
        .await
        .expect("queued");
    let got = v4.next_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("to/v4", &b"hello old"[..])
    );
    assert_eq!(got.qos, rumqttc::QoS::AtLeastOnce);

    // 3.1.1 -> v5.
    v4.client
        .publish("to/v5", rumqttc::QoS::AtLeastOnce, false, "hello new")
        .await
        .expect("queued");
    let got = v5.next_publish().await;
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (&b"to/v5"[..], &b"hello new"[..])
    );
    assert_eq!(got.properties, None);
}

#[tokio::test]
async fn qos1_burst_keeps_publisher_order_for_every_subscriber() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut a, _) = connect_v5(v5_options(addr, "a")).await;
    a.sub(&["seq/#"]).await;
    let mut b = connect_v4(v4_options(addr, "b")).await;
    b.sub("seq/+").await;
    let (publisher, _) = connect_v5(v5_options(addr, "pub")).await;
    // More than the per-client in-flight window, so acknowledgements must flow.
    const N: u32 = 500;
    for i in 0..N {
        publisher
            .client
            .publish("seq/x", QoS::AtLeastOnce, false, i.to_string())
            .await
            .expect("queued");
    }
    for i in 0..N {
        assert_eq!(a.next_publish().await.payload, i.to_string().as_bytes());
        assert_eq!(b.next_publish().await.payload, i.to_string().as_bytes());
    }
    assert_eq!(broker.stats().dropped, 0);
}

#[tokio::test]
async fn will_is_published_when_a_client_vanishes() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut watcher, _) = connect_v5(v5_options(addr, "watcher")).await;
    watcher.sub(&["wills/+"]).await;

    let mut options = v5_options(addr, "doomed");
    let will_props = LastWillProperties {
        delay_interval: None,
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: Some("text/plain".into()),
        response_topic: None,
        correlation_data: None,
        user_properties: vec![("ce-type".into(), "gone".into())],
    };
    options.set_last_will(LastWill::new(
        "wills/doomed",
        "bye",
        QoS::AtLeastOnce,
        false,
        Some(will_props),
    ));
    let (doomed, _) = connect_v5(options).await;
    // Dropping the client aborts its event loop: the socket closes without DISCONNECT.
    drop(doomed);

    let will = watcher.next_publish().await;
    assert_eq!(
        (&will.topic[..], &will.payload[..]),
        (&b"wills/doomed"[..], &b"bye"[..])
    );
    let props = will.properties.expect("will properties forwarded");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        props.user_properties,
        vec![("ce-type".to_string(), "gone".to_string())]
    );

    // A clean DISCONNECT discards the will.
    let mut options = v5_options(addr, "polite");
    options.set_last_will(LastWill::new(
        "wills/polite",
        "bye",
        QoS::AtLeastOnce,
        false,
        None,
    ));
    let (mut polite, _) = connect_v5(options).await;
    polite.client.disconnect().await.expect("queued");
    polite
        .expect_error("polite client's event loop to end")
        .await;
    watcher
        .client
        .publish("wills/fence", QoS::AtLeastOnce, false, "")
        .await
        .expect("queued");
    assert_eq!(&watcher.next_publish().await.topic[..], b"wills/fence");
}

#[tokio::test]
async fn qos2_publish_completes_and_unsubscribe_stops_delivery() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut sub, _) = connect_v5(v5_options(addr, "sub")).await;
    // QoS 2 is requested; QoS 1 is the most the broker grants.
    sub.client
        .subscribe("q/+", QoS::ExactlyOnce)
        .await
        .expect("queued");
    let codes = sub
        .expect("SUBACK", |ev| match ev {
            Ok(rumqttc::v5::Event::Incoming(p5::Packet::SubAck(a))) => Some(a.return_codes.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        codes,
        vec![p5::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );

    let (mut publisher, _) = connect_v5(v5_options(addr, "pub")).await;
    publisher
        .client
        .publish("q/1", QoS::ExactlyOnce, false, "two")
        .await
        .expect("queued");
    publisher
        .expect("PUBCOMP", |ev| match ev {
            Ok(rumqttc::v5::Event::Incoming(p5::Packet::PubComp(c))) => Some(c.reason),
            _ => None,
        })
        .await;
    let got = sub.next_publish().await;
    assert_eq!((got.qos, &got.payload[..]), (QoS::AtLeastOnce, &b"two"[..]));

    sub.client.unsubscribe("q/+").await.expect("queued");
    let reasons = sub
        .expect("UNSUBACK", |ev| match ev {
            Ok(rumqttc::v5::Event::Incoming(p5::Packet::UnsubAck(a))) => Some(a.reasons.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reasons, vec![p5::UnsubAckReason::Success]);
    sub.sub(&["fence"]).await;
    publisher
        .client
        .publish("q/2", QoS::AtLeastOnce, false, "gone")
        .await
        .expect("queued");
    publisher
        .client
        .publish("fence", QoS::AtLeastOnce, false, "")
        .await
        .expect("queued");
    assert_eq!(
        &sub.next_publish().await.topic[..],
        b"fence",
        "nothing after UNSUBSCRIBE"
    );
}

/// Many packets of mixed sizes written in one go: the broker's reads grow from 1 KiB to
/// 64 KiB while packets straddle read boundaries (regression for the adaptive read size
/// and the broker's own PUBLISH decoder): every message arrives, whole, in order, with
/// its properties, and every one is acknowledged.
#[tokio::test]
async fn burst_of_mixed_sizes_in_one_write_is_framed_and_forwarded_whole() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut sub, _) = connect_v5(v5_options(addr, "sub")).await;
    sub.sub(&["burst/+"]).await;
    let mut raw = Raw::connect(addr).await;
    raw.handshake("burst-pub", 30).await;
    const N: u16 = 300;
    let size = |i: u16| usize::from(i) * 37 % 6000 + 1;
    let mut out = bytes::BytesMut::new();
    for i in 1..=N {
        let mut p = p5::Publish::new(
            format!("burst/{i}"),
            QoS::AtLeastOnce,
            vec![(i % 251) as u8; size(i)],
            Some(ce_properties()),
        );
        p.pkid = i;
        p.write(&mut out).expect("encodable");
    }
    raw.send_bytes(&out).await;
    for i in 1..=N {
        let p = sub.next_publish().await;
        assert_eq!(&p.topic[..], format!("burst/{i}").as_bytes());
        assert_eq!(p.payload.len(), size(i));
        assert!(p.payload.iter().all(|&b| b == (i % 251) as u8));
        assert_eq!(p.properties, Some(ce_properties()));
    }
    for i in 1..=N {
        match raw.recv().await {
            Some(p5::Packet::PubAck(a)) => assert_eq!(a.pkid, i),
            other => panic!("expected PUBACK {i}, got {other:?}"),
        }
    }
    assert_eq!(broker.stats().dropped, 0);
}
