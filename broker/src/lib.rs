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
//!   [`FleetAcl`] is the one shipped: identities from client certificates or hashed
//!   credentials ([`credentials`]), per-identity topic ACLs derived from the topic
//!   templates in `workbus_schemas::acl`, client ids bound to identities;
//! - TLS listeners (TLS 1.3 preferred, 1.2 allowed; mutual TLS required or optional),
//!   whose certificate, key and client CA are reloaded without dropping clients
//!   ([`BrokerHandle::reload_tls`], [`TlsConfig::reload_interval`]); plaintext
//!   listeners default to loopback; [`certs`] makes the CA and certificates;
//! - [`external`]: the same ACL as Mosquitto and EMQX configuration;
//! - a whole-packet size limit (1 MiB by default), announced to MQTT 5 clients;
//! - bounded resources per client: queued messages and bytes, subscriptions, filter
//!   length, connections per source address, a file-descriptor budget (see
//!   [`BrokerConfig`]); MQTT 5 protocol violations the codec lets through are refused
//!   (checked on the raw
//!   bytes, ahead of the codec);
//! - start on any address including port 0 ([`BrokerHandle::local_addrs`]) and graceful
//!   [`BrokerHandle::shutdown`].
//!
//! Deliberately absent, because OCM does not use them (CleanStart, QoS ≤ 1, no retain,
//! reference §1.1, §1.7): persistent sessions, retained messages, outgoing QoS 2 (granted
//! QoS is at most 1; incoming QoS 2 is accepted), topic aliases, MQTT 5 enhanced auth.
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
pub mod certs;
mod codec;
mod config;
mod connection;
pub mod credentials;
mod error;
pub mod external;
mod fd_budget;
mod fleet_acl;
mod frame;
mod identity;
pub mod metrics;
mod per_address;
mod publish;
mod router;
mod server;
mod stamp;
mod stream;
mod strict;
mod tls;
mod topic;

pub use auth::{
    AllowAll, Authorizer, ClientInfo, ConnectDenied, ConnectRequest, Decision, ProtocolVersion,
    PublishRequest, SubscribeRequest,
};
pub use config::{
    BrokerConfig, ClientAuth, DEFAULT_FD_RESERVE, DEFAULT_LISTEN,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, DEFAULT_MAX_DENIALS, DEFAULT_MAX_FILTER_LEN,
    DEFAULT_MAX_PACKET_SIZE, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_SUBSCRIPTIONS,
    DEFAULT_TLS_LISTEN, MQTT_TLS_PORT, TlsConfig,
};
pub use error::BrokerError;
pub use fleet_acl::{AclError, FleetAcl, FleetPrincipal};
pub use identity::certificate_identity;
pub use server::{Broker, BrokerHandle, BrokerStats};
pub use tls::{Reloaded, TlsError, server_config};
