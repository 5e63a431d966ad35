//! The authentication and authorization hook.
//!
//! The broker calls an [`Authorizer`] once per connection (CONNECT) and then on **every**
//! PUBLISH (including a client's will message, checked at CONNECT) and on **every** topic
//! filter of every SUBSCRIBE. Per-agent topic ACLs ("agent X may publish only
//! `.../consumers/X/agentevents`") are written by implementing this trait; nothing else in
//! the broker needs to change. [`crate::FleetAcl`] is the implementation the broker ships:
//! identities from client certificates or hashed credentials, topic ACLs from the topic
//! templates.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

/// MQTT protocol level a client connected with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// What a client presented in its CONNECT packet, handed to [`Authorizer::authenticate`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectRequest {
    /// Client identifier as sent; empty when the client asked the broker to assign one
    /// (the assigned id then appears in [`ClientInfo::client_id`]).
    pub client_id: String,
    /// User name, if the CONNECT carried one.
    pub username: Option<String>,
    /// Password, if the CONNECT carried one.
    pub password: Option<Bytes>,
    /// Protocol level of the connection.
    pub protocol: ProtocolVersion,
    /// Remote socket address.
    pub peer_addr: SocketAddr,
    /// DER certificates the client presented during the TLS handshake, leaf first, already
    /// verified against the listener's client CA. Empty on plaintext listeners and when
    /// the client sent none (client certificates optional).
    pub peer_certificates: Vec<Bytes>,
    /// Whether the connection came in over a TLS listener.
    pub tls: bool,
}

/// Identity of an authenticated connection, given to every authorization call.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientInfo {
    /// Client identifier (the broker-assigned one if the client sent none).
    pub client_id: Arc<str>,
    /// User name from CONNECT.
    pub username: Option<Arc<str>>,
    /// Protocol level of the connection.
    pub protocol: ProtocolVersion,
    /// Remote socket address.
    pub peer_addr: SocketAddr,
}

/// A PUBLISH to be authorized.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PublishRequest<'a> {
    /// Topic name (never contains wildcards; validated before the call).
    pub topic: &'a str,
    /// Requested QoS, 0 to 2.
    pub qos: u8,
    /// Retain flag as sent by the client (the broker does not store retained messages).
    pub retain: bool,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// True when this is the client's will message, checked at CONNECT time.
    pub is_will: bool,
}

/// One topic filter of a SUBSCRIBE to be authorized.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SubscribeRequest<'a> {
    /// The filter exactly as sent, e.g. `$share/g/sources/+/agentevents`.
    pub raw: &'a str,
    /// The filter without any `$share/<group>/` prefix (validated before the call).
    pub filter: &'a str,
    /// Shared-subscription group, if the filter had a `$share/<group>/` prefix.
    pub share_group: Option<&'a str>,
    /// Requested QoS, 0 to 2.
    pub qos: u8,
}

/// Why a connection is refused; mapped to the CONNACK return/reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectDenied {
    /// Credentials missing or wrong (3.1.1 code 4, MQTT 5 reason 0x86).
    BadCredentials,
    /// The identity is known but may not connect (3.1.1 code 5, MQTT 5 reason 0x87).
    NotAuthorized,
    /// The client identifier is not acceptable (3.1.1 code 2, MQTT 5 reason 0x85).
    ClientIdRejected,
    /// The authentication backend is unavailable (3.1.1 code 3, MQTT 5 reason 0x88).
    ServerUnavailable,
}

/// Outcome of an authorization check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let the operation proceed.
    Allow,
    /// Refuse it. A refused PUBLISH gets MQTT 5 reason 0x87 on its PUBACK/PUBREC (QoS 0:
    /// dropped silently); an MQTT 3.1.1 client, which has no way to learn of a refusal,
    /// is disconnected as MQTT 3.1.1 §3.3.5 allows. A refused filter gets SUBACK 0x87
    /// (MQTT 5) or 0x80 (3.1.1); the other filters of the same SUBSCRIBE are unaffected.
    Deny,
}

/// Authentication on connect and authorization of each publish and subscribe.
///
/// Implementations are shared by all connections (`Send + Sync`). `authenticate` may do
/// slow work (look up a token, call a service); the two `authorize_*` calls run on every
/// PUBLISH and SUBSCRIBE on the connection's own task, so they should be cheap: resolve
/// what is needed at connect time and keep it in [`Authorizer::Principal`].
pub trait Authorizer: Send + Sync + 'static {
    /// Whatever `authenticate` learned about the client (roles, allowed topic prefixes,
    /// the cluster name parsed from a certificate, ...). Stored with the connection.
    type Principal: Send + Sync + 'static;

    /// Decides whether a client may connect.
    fn authenticate(
        &self,
        request: &ConnectRequest,
    ) -> impl Future<Output = Result<Self::Principal, ConnectDenied>> + Send;

    /// The identity `principal` stands for, when client ids belong to identities: a
    /// connection whose client id is held by a connection of a *different* identity is
    /// then refused (CONNACK 0x85 / 3.1.1 code 2) instead of taking the session over;
    /// the same identity may take over its own session, as MQTT requires. The identity is
    /// also the *publisher stamp*: every message the connection publishes (its will
    /// included) reaches MQTT 5 subscribers with a user property
    /// `workbus.io/publisher` = this text, which clients cannot forge (see
    /// `crate::stamp`). `None` (the default) keeps MQTT's plain takeover rule and stamps
    /// nothing.
    fn identity<'p>(&self, principal: &'p Self::Principal) -> Option<&'p str> {
        let _ = principal;
        None
    }

    /// Decides whether `client` may publish to `request.topic`.
    fn authorize_publish(
        &self,
        client: &ClientInfo,
        principal: &Self::Principal,
        request: &PublishRequest<'_>,
    ) -> impl Future<Output = Decision> + Send;

    /// Decides whether `client` may subscribe to one filter.
    fn authorize_subscribe(
        &self,
        client: &ClientInfo,
        principal: &Self::Principal,
        request: &SubscribeRequest<'_>,
    ) -> impl Future<Output = Decision> + Send;
}

/// The default [`Authorizer`]: every client may connect, publish and subscribe anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    type Principal = ();

    async fn authenticate(&self, _request: &ConnectRequest) -> Result<(), ConnectDenied> {
        Ok(())
    }

    async fn authorize_publish(
        &self,
        _client: &ClientInfo,
        _principal: &(),
        _request: &PublishRequest<'_>,
    ) -> Decision {
        Decision::Allow
    }

    async fn authorize_subscribe(
        &self,
        _client: &ClientInfo,
        _principal: &(),
        _request: &SubscribeRequest<'_>,
    ) -> Decision {
        Decision::Allow
    }
}
