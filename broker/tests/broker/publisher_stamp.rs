//! The publisher stamp (issue 13): MQTT 5 subscribers learn who published each message
//! from the `workbus.io/publisher` user property, which only the broker writes. The
//! identity comes from `Authorizer::identity`; here a small authorizer takes it from the
//! user name (FleetAcl's certificate identities: `security.rs`).

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{self as p5, LastWill, LastWillProperties, PublishProperties};
use workbus_broker::{
    Authorizer, ClientInfo, ConnectDenied, ConnectRequest, Decision, PublishRequest,
    SubscribeRequest,
};

use crate::common::*;

const PUBLISHER: &str = "workbus.io/publisher";

/// Everyone may do everything; a connection's identity is its user name, if any.
struct UsernameIdentity;

impl Authorizer for UsernameIdentity {
    type Principal = Option<String>;

    async fn authenticate(
        &self,
        request: &ConnectRequest,
    ) -> Result<Self::Principal, ConnectDenied> {
        Ok(request.username.clone())
    }

    fn identity<'p>(&self, principal: &'p Option<String>) -> Option<&'p str> {
        principal.as_deref()
    }

    async fn authorize_publish(
        &self,
        _: &ClientInfo,
        _: &Option<String>,
        _: &PublishRequest<'_>,
    ) -> Decision {
        Decision::Allow
    }

    async fn authorize_subscribe(
        &self,
        _: &ClientInfo,
        _: &Option<String>,
        _: &SubscribeRequest<'_>,
    ) -> Decision {
        Decision::Allow
    }
}

fn forging() -> PublishProperties {
    PublishProperties {
        content_type: Some("application/json".into()),
        user_properties: vec![
            (PUBLISHER.into(), "source.workbus".into()),
            ("ce-id".into(), "1".into()),
            (PUBLISHER.into(), "cluster2".into()),
        ],
        ..Default::default()
    }
}

fn user_properties(p: &p5::Publish) -> Vec<(String, String)> {
    p.properties
        .as_ref()
        .map(|p| p.user_properties.clone())
        .unwrap_or_default()
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[tokio::test]
async fn a_publisher_cannot_forge_the_stamp_and_the_stamp_names_it() {
    let broker = start_with(local_config(), UsernameIdentity).await;
    let addr = broker.local_addr();
    let (mut watcher, _) = connect_v5(v5_options(addr, "watcher")).await;
    watcher.sub(&["t/#"]).await;
    let mut old = connect_v4(v4_options(addr, "old-watcher")).await;
    old.sub("t/#").await;

    // An authenticated MQTT 5 publisher claiming two other identities.
    let mut o = v5_options(addr, "c1");
    o.set_credentials("cluster1", "");
    let (mut c1, _) = connect_v5(o).await;
    c1.client
        .publish_with_properties("t/1", QoS::AtLeastOnce, false, "x", forging())
        .await
        .unwrap();
    assert_eq!(c1.next_puback().await.reason, p5::PubAckReason::Success);
    let got = watcher.next_publish().await;
    assert_eq!(
        user_properties(&got),
        vec![pair("ce-id", "1"), pair(PUBLISHER, "cluster1")]
    );
    assert_eq!(
        got.properties.and_then(|p| p.content_type).as_deref(),
        Some("application/json"),
        "the rest of the block is untouched"
    );
    // A 3.1.1 subscriber gets the same message, without properties.
    let plain = old.next_publish().await;
    assert_eq!((&plain.topic[..], &plain.payload[..]), ("t/1", &b"x"[..]));

    // A 3.1.1 publisher's message reaches MQTT 5 subscribers stamped.
    let mut o = rumqttc::MqttOptions::new("dev", addr.ip().to_string(), addr.port());
    o.set_credentials("device7", "");
    let dev = connect_v4(o).await;
    dev.client
        .publish("t/2", rumqttc::QoS::AtLeastOnce, false, "y")
        .await
        .unwrap();
    let got = watcher.next_publish().await;
    assert_eq!(&got.topic[..], b"t/2");
    assert_eq!(user_properties(&got), vec![pair(PUBLISHER, "device7")]);
    assert_eq!(&old.next_publish().await.payload[..], b"y");

    // Without an identity there is no stamp, and a forged one is still removed.
    let (mut anon, _) = connect_v5(v5_options(addr, "anon")).await;
    anon.client
        .publish_with_properties("t/3", QoS::AtLeastOnce, false, "z", forging())
        .await
        .unwrap();
    assert_eq!(anon.next_puback().await.reason, p5::PubAckReason::Success);
    let got = watcher.next_publish().await;
    assert_eq!(user_properties(&got), vec![pair("ce-id", "1")]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_will_is_stamped_with_its_connections_identity() {
    let broker = start_with(local_config(), UsernameIdentity).await;
    let addr = broker.local_addr();
    let (mut watcher, _) = connect_v5(v5_options(addr, "watcher")).await;
    watcher.sub(&["wills/+"]).await;

    let mut o = v5_options(addr, "doomed");
    o.set_credentials("cluster1", "");
    o.set_last_will(LastWill::new(
        "wills/doomed",
        "released",
        QoS::AtLeastOnce,
        false,
        Some(LastWillProperties {
            delay_interval: None,
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: vec![pair(PUBLISHER, "source.workbus"), pair("ce-id", "w")],
        }),
    ));
    let (doomed, _) = connect_v5(o).await;
    // The socket closes without DISCONNECT.
    drop(doomed);
    let will = watcher.next_publish().await;
    assert_eq!(&will.payload[..], b"released");
    assert_eq!(
        user_properties(&will),
        vec![pair("ce-id", "w"), pair(PUBLISHER, "cluster1")]
    );
    broker.shutdown().await;
}
