//! The Authorizer hook: credentials on CONNECT, per-client topic ACLs on PUBLISH and
//! SUBSCRIBE, in the shape the per-agent ACL issue needs.

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as p5;
use workbus_broker::{
    Authorizer, ClientInfo, ConnectDenied, ConnectRequest, Decision, PublishRequest,
    SubscribeRequest,
};

use crate::common::*;

enum Role {
    Hub,
    Agent(String),
}

/// Agent `x` (user `agent-x`) may publish only `sources/hub/consumers/x/agentevents` and
/// subscribe only `sources/hub/consumers/x/sourceevents`; the hub the converse, via `+`.
struct AgentAcl;

impl Authorizer for AgentAcl {
    type Principal = Role;

    async fn authenticate(&self, request: &ConnectRequest) -> Result<Role, ConnectDenied> {
        match (request.username.as_deref(), request.password.as_deref()) {
            (Some("hub"), Some(b"hub-secret")) => Ok(Role::Hub),
            (Some(user), Some(b"agent-secret")) if user.starts_with("agent-") => {
                Ok(Role::Agent(user["agent-".len()..].to_string()))
            }
            (Some("banned"), _) => Err(ConnectDenied::NotAuthorized),
            _ => Err(ConnectDenied::BadCredentials),
        }
    }

    async fn authorize_publish(
        &self,
        _client: &ClientInfo,
        role: &Role,
        request: &PublishRequest<'_>,
    ) -> Decision {
        let ok = match role {
            Role::Hub => request
                .topic
                .strip_prefix("sources/hub/consumers/")
                .and_then(|rest| rest.strip_suffix("/sourceevents"))
                .is_some_and(|name| !name.contains('/')),
            Role::Agent(name) => {
                request.topic == format!("sources/hub/consumers/{name}/agentevents")
            }
        };
        if ok { Decision::Allow } else { Decision::Deny }
    }

    async fn authorize_subscribe(
        &self,
        _client: &ClientInfo,
        role: &Role,
        request: &SubscribeRequest<'_>,
    ) -> Decision {
        let ok = match role {
            Role::Hub => request.filter == "sources/hub/consumers/+/agentevents",
            Role::Agent(name) => {
                request.share_group.is_none()
                    && request.filter == format!("sources/hub/consumers/{name}/sourceevents")
            }
        };
        if ok { Decision::Allow } else { Decision::Deny }
    }
}

fn with_login(mut o: rumqttc::v5::MqttOptions, user: &str, pass: &str) -> rumqttc::v5::MqttOptions {
    o.set_credentials(user, pass);
    o
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_the_right_reason() {
    let broker = start_with(local_config(), AgentAcl).await;
    let addr = broker.local_addr();
    let mut bad = spawn_v5(with_login(v5_options(addr, "x"), "agent-x", "wrong"));
    let err = bad.expect_error("refused CONNACK").await;
    assert!(err.contains("BadUserNamePassword"), "{err}");
    let mut banned = spawn_v5(with_login(v5_options(addr, "b"), "banned", "whatever"));
    let err = banned.expect_error("refused CONNACK").await;
    assert!(err.contains("NotAuthorized"), "{err}");
    let mut o4 = v4_options(addr, "old");
    o4.set_credentials("agent-x", "wrong");
    let mut old = spawn_v4(o4);
    let err = old.expect_error("refused 3.1.1 CONNACK").await;
    assert!(err.contains("BadUserNamePassword"), "{err}");
    assert_eq!(broker.stats().connected_clients, 0);
}

#[tokio::test]
async fn denied_subscribe_and_publish_are_reported_and_allowed_clients_are_unaffected() {
    let broker = start_with(local_config(), AgentAcl).await;
    let addr = broker.local_addr();
    let (mut hub, _) = connect_v5(with_login(v5_options(addr, "hub"), "hub", "hub-secret")).await;
    assert_eq!(
        hub.sub(&["$share/g/sources/hub/consumers/+/agentevents"])
            .await,
        vec![p5::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let (mut x, _) = connect_v5(with_login(v5_options(addr, "x"), "agent-x", "agent-secret")).await;

    // One SUBSCRIBE, three filters: only the agent's own topic is granted.
    let codes = x
        .sub(&[
            "sources/hub/consumers/x/sourceevents",
            "sources/hub/consumers/y/sourceevents",
            "sources/hub/consumers/+/sourceevents",
        ])
        .await;
    assert_eq!(
        codes,
        vec![
            p5::SubscribeReasonCode::Success(QoS::AtLeastOnce),
            p5::SubscribeReasonCode::NotAuthorized,
            p5::SubscribeReasonCode::NotAuthorized,
        ]
    );

    // Publishing as another agent: PUBACK reason 0x87, nothing routed.
    x.client
        .publish(
            "sources/hub/consumers/y/agentevents",
            QoS::AtLeastOnce,
            false,
            "spoof",
        )
        .await
        .expect("queued");
    assert_eq!(
        x.next_puback().await.reason,
        p5::PubAckReason::NotAuthorized
    );
    // Its own topic is fine, and is the first thing the hub sees (so the spoof was dropped).
    x.client
        .publish(
            "sources/hub/consumers/x/agentevents",
            QoS::AtLeastOnce,
            false,
            "status",
        )
        .await
        .expect("queued");
    assert_eq!(x.next_puback().await.reason, p5::PubAckReason::Success);
    let got = hub.next_publish().await;
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (&b"sources/hub/consumers/x/agentevents"[..], &b"status"[..])
    );

    // The hub publishes spec events to x, which arrive; x stays connected throughout.
    hub.client
        .publish(
            "sources/hub/consumers/x/sourceevents",
            QoS::AtLeastOnce,
            false,
            "spec",
        )
        .await
        .expect("queued");
    assert_eq!(&x.next_publish().await.payload[..], b"spec");
    assert_eq!(broker.stats().connected_clients, 2);
}

#[tokio::test]
async fn mqtt311_client_is_disconnected_on_denied_publish() {
    let broker = start_with(local_config(), AgentAcl).await;
    let addr = broker.local_addr();
    let mut o = v4_options(addr, "old-x");
    o.set_credentials("agent-x", "agent-secret");
    let mut old = connect_v4(o).await;
    // 3.1.1 SUBACK failure code for a foreign topic.
    assert_eq!(
        old.sub("sources/hub/consumers/y/sourceevents").await,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );
    // 3.1.1 has no negative PUBACK: the broker closes the connection (MQTT 3.1.1 §3.3.5).
    old.client
        .publish(
            "sources/hub/consumers/y/agentevents",
            rumqttc::QoS::AtLeastOnce,
            false,
            "spoof",
        )
        .await
        .expect("queued");
    old.expect_error("disconnect after a denied publish").await;
}
