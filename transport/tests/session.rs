//! The MQTT transport against a real broker (a private Mosquitto, and the
//! embedded broker where a test needs a broker that refuses): properties pass unchanged,
//! publishes complete on acknowledgement, every connect ends in `Subscribed`, and a
//! refused subscription is retried on a new connection.

use std::time::Duration;

use tokio::time::timeout;
use workbus_schemas::mqtt::MqttMessage;
use workbus_transport::{Protocol, Transport, TransportConfig, TransportEvent};

use workbus_testkit::{mosquitto, unique};

const WAIT: Duration = Duration::from_secs(10);

async fn next_subscribed(t: &mut Transport) {
    loop {
        match timeout(WAIT, t.events.recv()).await.expect("event in time") {
            Some(TransportEvent::Subscribed) => return,
            Some(TransportEvent::Disconnected(e)) => eprintln!("disconnected: {e}"),
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("transport ended"),
        }
    }
}

async fn next_message(t: &mut Transport) -> MqttMessage {
    loop {
        match timeout(WAIT, t.events.recv())
            .await
            .expect("message in time")
        {
            Some(TransportEvent::Message(m)) => return m,
            Some(_) => continue,
            None => panic!("transport ended"),
        }
    }
}

#[tokio::test]
async fn v5_properties_round_trip_through_mosquitto() {
    let topic = unique("workbus-test/v5");
    let mut sub_cfg = TransportConfig::new(mosquitto().host(), mosquitto().port(), unique("sub"));
    sub_cfg.subscriptions = vec![topic.clone()];
    let mut sub = Transport::start(sub_cfg).unwrap();
    next_subscribed(&mut sub).await;

    let mut pub_t = Transport::start(TransportConfig::new(
        mosquitto().host(),
        mosquitto().port(),
        unique("pub"),
    ))
    .unwrap();
    next_subscribed(&mut pub_t).await;
    let msg = MqttMessage {
        topic: topic.clone(),
        content_type: Some("application/json".into()),
        user_properties: vec![
            ("ce-specversion".into(), "1.0".into()),
            ("ce-originalsource".into(), String::new()),
        ],
        payload: vec![b'x'; 600 * 1024],
        publisher: None,
    };
    timeout(WAIT, pub_t.publisher.publish(&msg))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_message(&mut sub).await, msg);
    assert_eq!(
        pub_t
            .publisher
            .stats()
            .published
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn v311_carries_structured_payloads_only() {
    let topic = unique("workbus-test/v311");
    let mut cfg = TransportConfig::new(mosquitto().host(), mosquitto().port(), unique("v311"));
    cfg.protocol = Protocol::V311;
    cfg.subscriptions = vec![topic.clone()];
    let mut t = Transport::start(cfg).unwrap();
    next_subscribed(&mut t).await;
    let msg = MqttMessage {
        topic: topic.clone(),
        content_type: None,
        user_properties: vec![],
        payload: br#"{"specversion":"1.0"}"#.to_vec(),
        publisher: None,
    };
    timeout(WAIT, t.publisher.publish(&msg))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_message(&mut t).await, msg);
    let with_props = MqttMessage {
        user_properties: vec![("ce-id".into(), "1".into())],
        ..msg
    };
    assert!(t.publisher.publish(&with_props).await.is_err());
}

#[tokio::test]
async fn unreachable_broker_reports_and_keeps_trying() {
    let mut cfg = TransportConfig::new("127.0.0.1", 1, unique("nobody"));
    cfg.reconnect.min_delay = Duration::from_millis(10);
    cfg.reconnect.max_delay = Duration::from_millis(20);
    let mut t = Transport::start(cfg).unwrap();
    for _ in 0..3 {
        match timeout(WAIT, t.events.recv()).await.unwrap() {
            Some(TransportEvent::Disconnected(_)) => {}
            other => panic!("expected a disconnect report, got {other:?}"),
        }
    }
}

/// Refuses the first `refusals` SUBSCRIBE filters and every PUBLISH to `denied_topic`;
/// allows everything else.
struct Refusals {
    refusals: std::sync::atomic::AtomicUsize,
    denied_topic: Option<String>,
}

impl workbus_broker::Authorizer for Refusals {
    type Principal = ();

    async fn authenticate(
        &self,
        _request: &workbus_broker::ConnectRequest,
    ) -> Result<(), workbus_broker::ConnectDenied> {
        Ok(())
    }

    async fn authorize_publish(
        &self,
        _client: &workbus_broker::ClientInfo,
        _principal: &(),
        request: &workbus_broker::PublishRequest<'_>,
    ) -> workbus_broker::Decision {
        if self.denied_topic.as_deref() == Some(request.topic) {
            workbus_broker::Decision::Deny
        } else {
            workbus_broker::Decision::Allow
        }
    }

    async fn authorize_subscribe(
        &self,
        _client: &workbus_broker::ClientInfo,
        _principal: &(),
        _request: &workbus_broker::SubscribeRequest<'_>,
    ) -> workbus_broker::Decision {
        use std::sync::atomic::Ordering;
        let left = self.refusals.load(Ordering::Relaxed);
        if left > 0 {
            self.refusals.store(left - 1, Ordering::Relaxed);
            workbus_broker::Decision::Deny
        } else {
            workbus_broker::Decision::Allow
        }
    }
}

/// Regression: the DISCONNECT sent after a refused subscription ended the session for
/// good instead of retrying on a new connection.
#[tokio::test]
async fn refused_subscription_is_retried_on_a_new_connection() {
    let broker = workbus_broker::Broker::new(workbus_broker::BrokerConfig::with_listen(
        "127.0.0.1:0".parse().unwrap(),
    ))
    .with_authorizer(Refusals {
        refusals: std::sync::atomic::AtomicUsize::new(2),
        denied_topic: None,
    })
    .start()
    .await
    .unwrap();
    let mut cfg = TransportConfig::new("127.0.0.1", broker.local_addr().port(), unique("refused"));
    cfg.subscriptions = vec![unique("workbus-test/refused")];
    cfg.reconnect.min_delay = Duration::from_millis(10);
    cfg.reconnect.max_delay = Duration::from_millis(50);
    let mut t = Transport::start(cfg).unwrap();
    let mut refusals = 0;
    loop {
        match timeout(WAIT, t.events.recv()).await.expect("event in time") {
            Some(TransportEvent::Subscribed) => break,
            Some(TransportEvent::Disconnected(reason)) => {
                if reason.contains("refused") {
                    refusals += 1;
                }
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("the session ended after a refused subscription"),
        }
    }
    assert_eq!(refusals, 2);
    assert!(
        t.publisher
            .stats()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
    t.shutdown(Duration::from_secs(1)).await;
    broker.shutdown().await;
}

/// A second client with the same client id takes the session over (a cloned device
/// image): the first transport counts it (`taken_over`, logged as a warning) and reports
/// the disconnection, instead of looking like any network failure.
#[tokio::test]
async fn a_session_taken_over_by_the_same_client_id_is_counted() {
    let broker = workbus_broker::Broker::new(workbus_broker::BrokerConfig::with_listen(
        "127.0.0.1:0".parse().unwrap(),
    ))
    .start()
    .await
    .unwrap();
    let id = unique("cloned");
    let config = || {
        let mut cfg = TransportConfig::new("127.0.0.1", broker.local_addr().port(), id.clone());
        cfg.subscriptions = vec![unique("workbus-test/cloned")];
        // Long delays: the two must not keep taking the session from each other here.
        cfg.reconnect.min_delay = Duration::from_secs(30);
        cfg.reconnect.max_delay = Duration::from_secs(30);
        cfg
    };
    let mut first = Transport::start(config()).unwrap();
    next_subscribed(&mut first).await;
    let mut second = Transport::start(config()).unwrap();
    next_subscribed(&mut second).await;
    let reason = loop {
        match timeout(WAIT, first.events.recv())
            .await
            .expect("event in time")
        {
            Some(TransportEvent::Disconnected(reason)) => break reason,
            Some(_) => continue,
            None => panic!("transport ended"),
        }
    };
    assert!(reason.contains("SessionTakenOver"), "{reason}");
    let stats = |t: &Transport| {
        t.publisher
            .stats()
            .taken_over
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!((stats(&first), stats(&second)), (1, 0));
    first.shutdown(Duration::from_secs(1)).await;
    second.shutdown(Duration::from_secs(1)).await;
    broker.shutdown().await;
}

/// Regression: a PUBACK with a refusal reason (0x87 NotAuthorized) resolved the publish
/// as delivered, so the hub's outbox forgot an event the broker had dropped.
#[tokio::test]
async fn a_refused_publish_fails_with_the_reason() {
    let denied = unique("workbus-test/denied");
    let broker = workbus_broker::Broker::new(workbus_broker::BrokerConfig::with_listen(
        "127.0.0.1:0".parse().unwrap(),
    ))
    .with_authorizer(Refusals {
        refusals: std::sync::atomic::AtomicUsize::new(0),
        denied_topic: Some(denied.clone()),
    })
    .start()
    .await
    .unwrap();
    let mut t = Transport::start(TransportConfig::new(
        "127.0.0.1",
        broker.local_addr().port(),
        unique("denied"),
    ))
    .unwrap();
    next_subscribed(&mut t).await;
    let message = |topic: &str| MqttMessage {
        topic: topic.to_string(),
        content_type: None,
        user_properties: vec![],
        payload: b"{}".to_vec(),
        publisher: None,
    };
    let refused = timeout(WAIT, t.publisher.publish(&message(&denied)))
        .await
        .unwrap();
    assert!(
        matches!(&refused, Err(workbus_transport::PublishError::Refused(r)) if r.contains("NotAuthorized")),
        "{refused:?}"
    );
    // The connection stays usable and an allowed publish still succeeds.
    timeout(
        WAIT,
        t.publisher
            .publish(&message(&unique("workbus-test/allowed"))),
    )
    .await
    .unwrap()
    .unwrap();
    t.shutdown(Duration::from_secs(1)).await;
    broker.shutdown().await;
}

/// Regression: a keep-alive below rumqttc's MQTT 5 minimum (an sdk-go config may say
/// `keepAlive: 2`) panicked inside the client instead of connecting.
#[tokio::test]
async fn a_short_keep_alive_is_raised_not_a_crash() {
    for (protocol, keep_alive) in [
        (Protocol::V5, Duration::from_secs(2)),
        (Protocol::V311, Duration::from_millis(1500)),
    ] {
        let mut cfg =
            TransportConfig::new(mosquitto().host(), mosquitto().port(), unique("keepalive"));
        cfg.protocol = protocol;
        cfg.keep_alive = keep_alive;
        cfg.subscriptions = vec![unique("workbus-test/keepalive")];
        let mut t = Transport::start(cfg).unwrap();
        next_subscribed(&mut t).await;
        t.shutdown(Duration::from_secs(1)).await;
    }
}
