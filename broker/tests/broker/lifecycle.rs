//! Start, addresses, readiness, client-id takeover, keep-alive and graceful shutdown.

use std::net::SocketAddr;

use rumqttc::v5::mqttbytes::v5 as p5;
use workbus_broker::{Broker, BrokerConfig, BrokerError};

use crate::common::*;

#[tokio::test]
async fn port_zero_reports_the_real_ports_and_accepts_at_once() {
    let mut config = local_config();
    config.listen.push(SocketAddr::from(([127, 0, 0, 1], 0)));
    let broker = start(config).await;
    let addrs = broker.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    assert!(addrs.iter().all(|a| a.port() != 0 && a.ip().is_loopback()));
    assert_ne!(addrs[0].port(), addrs[1].port());
    // `start` returning is the readiness signal: both ports take clients immediately.
    let (_c1, _) = connect_v5(v5_options(addrs[0], "one")).await;
    let _c2 = connect_v4(v4_options(addrs[1], "two")).await;
    assert_eq!(broker.stats().connected_clients, 2);
}

#[tokio::test]
async fn bind_conflict_and_bad_config_are_typed_errors() {
    let broker = start(local_config()).await;
    let taken = broker.local_addr();
    match Broker::new(BrokerConfig::with_listen(taken)).start().await {
        Err(BrokerError::Bind { addr, .. }) => assert_eq!(addr, taken),
        other => panic!("expected a bind error, got {other:?}"),
    }
    let mut config = local_config();
    config.max_packet_size = 10;
    assert!(matches!(
        Broker::new(config).start().await,
        Err(BrokerError::Config(_))
    ));
    let mut config = local_config();
    config.listen.clear();
    assert!(matches!(
        Broker::new(config).start().await,
        Err(BrokerError::Config(_))
    ));
}

#[tokio::test]
async fn graceful_shutdown_disconnects_clients_and_closes_listeners() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut c5, _) = connect_v5(v5_options(addr, "five")).await;
    c5.sub(&["t"]).await;
    let mut c4 = connect_v4(v4_options(addr, "four")).await;
    within("shutdown", broker.shutdown()).await;

    let err = c5.expect_error("v5 disconnect").await;
    assert!(err.contains("ServerShuttingDown"), "{err}");
    c4.expect_error("3.1.1 connection close").await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn second_connection_with_same_client_id_takes_over() {
    let broker = start(local_config()).await;
    let addr = broker.local_addr();
    let (mut first, _) = connect_v5(v5_options(addr, "agent-1")).await;
    first.sub(&["a"]).await;
    let (mut second, _) = connect_v5(v5_options(addr, "agent-1")).await;
    let err = first.expect_error("takeover disconnect").await;
    assert!(err.contains("SessionTakenOver"), "{err}");
    // The new connection works, and the old one's subscription is gone with it.
    second.sub(&["b"]).await;
    second
        .client
        .publish("a", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, "x")
        .await
        .expect("queued");
    second
        .client
        .publish("b", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, "y")
        .await
        .expect("queued");
    assert_eq!(&second.next_publish().await.topic[..], b"b");
    assert_eq!(broker.stats().connected_clients, 1);
}

/// A client that keeps talking is never timed out, even though the broker moves its
/// keep-alive timer only when it fires (regression for the lazily re-armed timer).
#[tokio::test]
async fn keepalive_is_extended_by_traffic() {
    let mut config = local_config();
    config.max_keepalive = 1;
    let broker = start(config).await;
    let mut raw = Raw::connect(broker.local_addr()).await;
    raw.handshake("chatty", 1).await;
    // 3 s of a PINGREQ every 0.5 s: twice the 1.5 s allowance, never 1.5 s of silence.
    // The pauses are the behaviour under test, not a synchronisation.
    for _ in 0..6 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        raw.send(p5::Packet::PingReq(p5::PingReq)).await;
        match raw.recv().await {
            Some(p5::Packet::PingResp(_)) => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }
    assert_eq!(broker.stats().connected_clients, 1);
    // Then silence: the broker ends the connection.
    match raw.recv().await {
        Some(p5::Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code, p5::DisconnectReasonCode::KeepAliveTimeout)
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[tokio::test]
async fn connack_announces_limits_and_keepalive_is_enforced() {
    let mut config = local_config();
    config.max_keepalive = 1;
    let broker = start(config).await;
    let mut raw = Raw::connect(broker.local_addr()).await;
    // Ask for 60 s; the broker caps it at 1 s and says so.
    let ack = raw.handshake("", 60).await;
    assert_eq!(ack.code, p5::ConnectReturnCode::Success);
    let props = ack.properties.expect("CONNACK properties");
    assert_eq!(props.server_keep_alive, Some(1));
    assert_eq!(
        props.max_packet_size,
        Some(workbus_broker::DEFAULT_MAX_PACKET_SIZE)
    );
    assert_eq!(props.retain_available, Some(0));
    assert_eq!(props.shared_subscription_available, Some(1));
    assert!(
        props
            .assigned_client_identifier
            .is_some_and(|id| !id.is_empty())
    );
    // Silence for 1.5 × 1 s ends the connection with reason 0x8D.
    match raw.recv().await {
        Some(p5::Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code, p5::DisconnectReasonCode::KeepAliveTimeout)
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(raw.recv().await.is_none());
}
