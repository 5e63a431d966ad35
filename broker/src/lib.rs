//! `workbus-broker`: an embeddable MQTT broker for the OCM event-based ManifestWork
//! transport.
//!
//! What it does, and why it is its own small core (see `BROKER-CHOICE.md`):
//! - one TCP listener serves MQTT 5 **and** MQTT 3.1.1 clients; messages cross between them
//!   (MQTT 5 properties are dropped towards 3.1.1 subscribers, which cannot carry them);
//! - MQTT 5 PUBLISH properties — user properties (the `ce-*` CloudEvents attributes),
//!   content type, correlation data, response topic, message expiry, payload format — are
//!   forwarded to MQTT 5 subscribers unchanged;
//! - shared subscriptions (`$share/<group>/<filter>`), round robin within a group;
//! - an [`Authorizer`] consulted on connect and on every PUBLISH and SUBSCRIBE filter;
//! - a whole-packet size limit (1 MiB by default), announced to MQTT 5 clients;
//! - start on any address including port 0 ([`BrokerHandle::local_addrs`]) and graceful
//!   [`BrokerHandle::shutdown`].
//!
//! Deliberately absent, because OCM does not use them (CleanStart, QoS ≤ 1, no retain,
//! reference §1.1, §1.7): persistent sessions, retained messages, outgoing QoS 2 (granted
//! QoS is at most 1; incoming QoS 2 is accepted), topic aliases, MQTT 5 enhanced auth, TLS
//! (planned; [`ConnectRequest::peer_certificates`] is its hook).
//!
//! ```no_run
//! # async fn demo() -> Result<(), workbus_broker::BrokerError> {
//! use workbus_broker::{Broker, BrokerConfig};
//! let handle = Broker::new(BrokerConfig::with_listen("127.0.0.1:0".parse().unwrap()))
//!     .start()
//!     .await?;
//! println!("listening on {}", handle.local_addr());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod codec;
mod config;
mod connection;
mod error;
mod frame;
mod publish;
mod router;
mod server;
mod topic;

pub use auth::{
    AllowAll, Authorizer, ClientInfo, ConnectDenied, ConnectRequest, Decision, ProtocolVersion,
    PublishRequest, SubscribeRequest,
};
pub use config::{BrokerConfig, DEFAULT_LISTEN, DEFAULT_MAX_PACKET_SIZE};
pub use error::BrokerError;
pub use server::{Broker, BrokerHandle, BrokerStats};
