//! The embedded MQTT broker the hub starts when no external one is configured: the
//! "no setup" default. It binds the requested address and, when that port is taken (for
//! example by a Mosquitto already running on 1883), falls back to a free port and says
//! so, so that a newcomer's first command never fails on a busy port. `serve` and
//! `quickstart` both start it through [`start_announced`].
//!
//! **Secure by default** ([`BrokerSecurity::MutualTls`]): one TLS listener that requires
//! a client certificate issued by the hub's CA (`<data-dir>/pki/`, see [`crate::pki`]),
//! and [`FleetAcl`]: every client is the identity its certificate names, an agent may
//! only use its own cluster's topics and client id, the hub its source's. The hub's own
//! transport connects with its source certificate ([`EmbeddedBroker::hub_settings`]),
//! in-process agents with their cluster's ([`EmbeddedBroker::agent_transport`]).
//!
//! Its authorizer is [`ClusterAuthorizer`]: the `FleetAcl` plus bootstrap identities
//! (clusters joining with a hub-issued token, on the same TLS listener without a client
//! certificate — client certificates are therefore optional at the TLS layer, and the
//! authorizer refuses anyone who has neither a certificate nor a valid token) and the
//! refusal of denied clusters. [`EmbeddedBroker::attach_hub`] connects it to the running
//! hub.
//!
//! **Opt-out** ([`BrokerSecurity::Insecure`], `--insecure-broker`): plaintext, no
//! identities, no ACLs — for tests and old devices — and then only on a loopback
//! address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use std::sync::Arc;

use workbus_broker::{
    AclError, Broker, BrokerConfig, BrokerError, BrokerHandle, ClientAuth, FleetAcl,
};
use workbus_schemas::acl::Identity;
use workbus_schemas::client_id;
use workbus_transport::TransportConfig;

use crate::cluster_authorizer::{ClusterAuthorizer, HubBinding};
use crate::config::{BrokerSettings, Disconnect};
use crate::pki::{Pki, PkiError};

/// How the embedded broker admits clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerSecurity {
    /// Mutual TLS with the certificates of `pki`, and the [`FleetAcl`] of source
    /// `source_id`: the default.
    MutualTls {
        /// The certificate directory.
        pki: Pki,
        /// The source id the ACL's templates and the hub's certificate are for.
        source_id: String,
    },
    /// Plaintext, anyone may connect and use any topic (`--insecure-broker`); loopback
    /// addresses only.
    Insecure,
}

/// The embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedBrokerError {
    /// Binding or starting failed (the TLS files included).
    #[error("cannot start the embedded broker on {listen}: {source}")]
    Start {
        /// The address asked for.
        listen: SocketAddr,
        /// Why it failed.
        source: BrokerError,
    },
    /// A plaintext broker without ACLs was asked for on a non-loopback address.
    #[error(
        "--insecure-broker serves plaintext MQTT without identities or topic ACLs, so only on a loopback address, not {0}"
    )]
    InsecureBeyondLoopback(SocketAddr),
    /// The topic ACL cannot be built from the source's topics.
    #[error("the embedded broker's topic ACL: {0}")]
    Acl(#[from] AclError),
    /// The certificates could not be made or read.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// A running embedded broker and how clients reach it.
#[derive(Debug)]
pub struct EmbeddedBroker {
    handle: Arc<BrokerHandle>,
    security: BrokerSecurity,
    authorizer: Option<ClusterAuthorizer>,
}

/// Starts the embedded broker on `preferred`, or on a free port of the same interface
/// if that one is in use. Returns the broker and whether the fallback was used.
pub async fn start(
    preferred: SocketAddr,
    security: &BrokerSecurity,
) -> Result<(EmbeddedBroker, bool), EmbeddedBrokerError> {
    let acl = match security {
        BrokerSecurity::Insecure if !preferred.ip().is_loopback() => {
            return Err(EmbeddedBrokerError::InsecureBeyondLoopback(preferred));
        }
        BrokerSecurity::Insecure => None,
        BrokerSecurity::MutualTls { source_id, .. } => {
            Some(ClusterAuthorizer::new(FleetAcl::for_source(source_id)?))
        }
    };
    let started = match bind(preferred, security, acl.clone()).await {
        Err(BrokerError::Bind { .. }) if preferred.port() != 0 => {
            let mut any = preferred;
            any.set_port(0);
            bind(any, security, acl.clone()).await.map(|h| (h, true))
        }
        other => other.map(|h| (h, false)),
    };
    let (handle, moved) = started.map_err(|source| EmbeddedBrokerError::Start {
        listen: preferred,
        source,
    })?;
    let broker = EmbeddedBroker {
        handle: Arc::new(handle),
        security: security.clone(),
        authorizer: acl,
    };
    Ok((broker, moved))
}

async fn bind(
    addr: SocketAddr,
    security: &BrokerSecurity,
    acl: Option<ClusterAuthorizer>,
) -> Result<BrokerHandle, BrokerError> {
    match (security, acl) {
        (BrokerSecurity::MutualTls { pki, .. }, Some(acl)) => {
            let mut tls = pki.broker_tls();
            // Joining clusters have no certificate yet; the authorizer admits them only
            // with a bootstrap token, and everyone else only with a certificate.
            tls.client_auth = ClientAuth::Optional;
            Broker::new(BrokerConfig::with_tls(addr, tls))
                .with_authorizer(acl)
                .start()
                .await
        }
        _ => Broker::new(BrokerConfig::with_listen(addr)).start().await,
    }
}

/// [`start`], then says on standard output where the broker listens and how it is
/// secured, each line after `indent`: a note if `preferred` was taken, where new
/// certificates were made, then the address.
pub async fn start_announced(
    preferred: SocketAddr,
    security: &BrokerSecurity,
    indent: &str,
) -> Result<EmbeddedBroker, EmbeddedBrokerError> {
    let (broker, moved) = start(preferred, security).await?;
    let addr = broker.addr();
    if moved {
        println!("{indent}note: {preferred} is in use; the embedded broker took {addr}");
    }
    match &broker.security {
        BrokerSecurity::MutualTls { pki, .. } => {
            if pki.created() {
                println!(
                    "{indent}first start: made a CA and certificates in {} (0700): CA {}, trusted CAs for clients (caFile) {}, broker {}",
                    pki.dir().display(),
                    workbus_broker::certs::CA_CERT,
                    workbus_broker::certs::CA_BUNDLE,
                    workbus_broker::certs::SERVER_CERT,
                );
            }
            println!(
                "{indent}embedded MQTT broker (MQTT 5 and 3.1.1) listening on {addr}: mutual TLS (CA {}), per-cluster topic ACLs on",
                pki.ca_bundle().display()
            );
        }
        BrokerSecurity::Insecure => println!(
            "{indent}embedded MQTT broker (MQTT 5 and 3.1.1) listening on {addr}: PLAINTEXT, no identities or ACLs (--insecure-broker)"
        ),
    }
    Ok(broker)
}

impl EmbeddedBroker {
    /// Connects the broker's authorizer to the running hub (its store, clock and join
    /// grants): from now on bootstrap tokens are checked and denied clusters refused.
    /// A plaintext broker has no authorizer. Either way the hub's `/metrics` shows the
    /// broker's metrics from now on.
    pub fn attach_hub(&self, hub: &crate::HubHandle) {
        // The hub's /metrics shows this broker's counters too.
        hub.metrics().attach_broker(self.handle.metrics());
        if let Some(a) = &self.authorizer {
            a.attach(HubBinding {
                store: hub.store().clone(),
                clock: hub.registration().clock.clone(),
                grants: hub.registration().grants.clone(),
            });
        }
    }

    /// What the hub calls to close a denied cluster's connections: every client whose id
    /// is the cluster's agent's or its bootstrap identity's. Holds the broker weakly, so
    /// it never keeps a stopped broker alive.
    pub fn disconnect(&self) -> Disconnect {
        let broker = Arc::downgrade(&self.handle);
        Arc::new(move |cluster: &str| {
            let bootstrap = client_id::bootstrap_client_id(cluster);
            broker.upgrade().map_or(0, |b| {
                b.drop_clients(|id| {
                    id == bootstrap || client_id::agent_client_id_matches(cluster, id)
                })
            })
        })
    }

    /// The broker itself (its stats, TLS reload, shutdown).
    pub fn handle(&self) -> &BrokerHandle {
        &self.handle
    }

    /// How it admits clients.
    pub fn security(&self) -> &BrokerSecurity {
        &self.security
    }

    /// Whether clients connect over (mutual) TLS.
    pub fn tls(&self) -> bool {
        matches!(self.security, BrokerSecurity::MutualTls { .. })
    }

    /// Whether identities and topic ACLs are enforced.
    pub fn acl(&self) -> bool {
        self.tls()
    }

    /// The certificate directory, when TLS is on.
    pub fn pki(&self) -> Option<&Pki> {
        match &self.security {
            BrokerSecurity::MutualTls { pki, .. } => Some(pki),
            BrokerSecurity::Insecure => None,
        }
    }

    /// The address it listens on (the TLS listener's, or the plaintext one's).
    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The address a client on this machine connects to ([`connect_addr`]).
    pub fn reach(&self) -> SocketAddr {
        connect_addr(self.addr())
    }

    /// How the hub in this process reaches the broker: over TLS with its source
    /// certificate (made if missing), or plaintext.
    pub fn hub_settings(&self) -> Result<BrokerSettings, PkiError> {
        let addr = self.reach();
        let BrokerSecurity::MutualTls { pki, source_id } = &self.security else {
            return Ok(BrokerSettings::Address {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        };
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let mut tc = TransportConfig::new(
            addr.ip().to_string(),
            addr.port(),
            client_id::source_client_id(source_id, &suffix[..8]),
        );
        tc.tls = Some(pki.transport_tls(&Identity::Source(source_id.clone()))?);
        // A local broker: reconnect quickly rather than after up to 30 s.
        tc.reconnect.max_delay = Duration::from_secs(5);
        Ok(BrokerSettings::Transport(Box::new(tc)))
    }

    /// The transport of an in-process agent of `cluster` (no client id: the agent
    /// derives it from the cluster): TLS with the cluster's certificate (made if
    /// missing), or plaintext.
    pub fn agent_transport(&self, cluster: &str) -> Result<TransportConfig, PkiError> {
        let addr = self.reach();
        let mut tc = TransportConfig::new(addr.ip().to_string(), addr.port(), "");
        if let BrokerSecurity::MutualTls { pki, .. } = &self.security {
            tc.tls = Some(pki.transport_tls(&Identity::Agent(cluster.to_string()))?);
        }
        Ok(tc)
    }

    /// Stops the broker and waits for its connections to close.
    pub async fn shutdown(self) {
        match Arc::try_unwrap(self.handle) {
            Ok(handle) => handle.shutdown().await,
            // Someone still holds it strongly (it never should): dropping stops it.
            Err(shared) => drop(shared),
        }
    }
}

/// The address a client on this machine connects to for a broker listening on `addr`:
/// `addr` itself, or the loopback address when it listens on every interface.
pub fn connect_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_connect_to_loopback_for_a_broker_on_every_interface() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(connect_addr(addr("0.0.0.0:1883")), addr("127.0.0.1:1883"));
        assert_eq!(connect_addr(addr("[::]:1884")), addr("[::1]:1884"));
        assert_eq!(connect_addr(addr("10.1.2.3:1883")), addr("10.1.2.3:1883"));
    }

    #[tokio::test]
    async fn a_taken_port_falls_back_to_a_free_one() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let preferred = taken.local_addr().unwrap();
        let broker = start_announced(preferred, &BrokerSecurity::Insecure, "")
            .await
            .expect("falls back");
        assert_ne!(broker.addr().port(), preferred.port());
        match broker.hub_settings().unwrap() {
            BrokerSettings::Address { host, port } => {
                assert_eq!((host.as_str(), port), ("127.0.0.1", broker.addr().port()))
            }
            other => panic!("{other:?}"),
        }
        broker.shutdown().await;
    }

    #[tokio::test]
    async fn the_tls_listener_falls_back_too_and_the_hub_gets_its_certificate() {
        let data = tempfile::tempdir().unwrap();
        let security = BrokerSecurity::MutualTls {
            pki: Pki::ensure(data.path(), &[]).unwrap(),
            source_id: "workbus".into(),
        };
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let preferred = taken.local_addr().unwrap();
        let broker = start_announced(preferred, &security, "")
            .await
            .expect("falls back");
        assert!(broker.tls() && broker.acl());
        assert_eq!(broker.handle().tls_addrs(), &[broker.addr()]);
        assert!(broker.handle().local_addrs().is_empty(), "no plaintext");
        assert_ne!(broker.addr().port(), preferred.port());
        match broker.hub_settings().unwrap() {
            BrokerSettings::Transport(tc) => {
                assert!(tc.tls.as_ref().is_some_and(|t| t.client_cert_pem.is_some()));
                assert!(Identity::Source("workbus".into()).may_use_client_id(&tc.client_id));
            }
            other => panic!("{other:?}"),
        }
        assert!(broker.agent_transport("edge-1").unwrap().tls.is_some());
        broker.shutdown().await;
    }

    #[tokio::test]
    async fn insecure_is_loopback_only() {
        let e = start("0.0.0.0:0".parse().unwrap(), &BrokerSecurity::Insecure)
            .await
            .unwrap_err();
        assert!(
            matches!(e, EmbeddedBrokerError::InsecureBeyondLoopback(_)),
            "{e}"
        );
    }
}
