//! The embedded broker's [`Authorizer`] (design §3): the fleet's [`FleetAcl`]
//! (certificate identities, topic ACLs) plus what only the hub knows about clusters.
//!
//! - **Bootstrap identities**: a client without a certificate whose user name is
//!   `bootstrap.<cluster>` and whose password is a valid (unexpired, unrevoked) bootstrap
//!   token connects as `Identity::Bootstrap(cluster)` — grants of its own cluster's
//!   events topics only — unless the cluster is already accepted (its topics belong to
//!   its own identity: re-joining needs a deny first) or denied
//!   ([`admit_bootstrap`]). The token's auto-accept policy is remembered for the join
//!   request that follows ([`JoinGrants`]).
//! - **Revocation**: an agent certificate of a denied cluster is refused at CONNECT
//!   ([`admit_agent`]); the hub closes its open connections when it denies it.
//!
//! Both read the hub's store at CONNECT (the authenticate hook may be slow; publishes
//! and subscribes never touch the store). The broker starts before the hub's store is
//! open, so the store is attached later ([`HubBinding`]); until then bootstrap
//! identities are refused and certificate identities admitted as by `FleetAcl` alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use workbus_broker::{
    Authorizer, ClientInfo, ConnectDenied, ConnectRequest, Decision, FleetAcl, FleetPrincipal,
    PublishRequest, SubscribeRequest,
};
use workbus_schemas::acl::{BOOTSTRAP_IDENTITY_PREFIX, Identity};

use crate::store::registration::JoinToken;
use crate::store::{Cluster, StoreHandle};

/// Why a bootstrap identity is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapRefusal {
    /// No bootstrap token has this secret.
    #[error("unknown bootstrap token")]
    UnknownToken,
    /// The token expired.
    #[error("the bootstrap token expired")]
    Expired,
    /// The token was revoked.
    #[error("the bootstrap token was revoked")]
    Revoked,
    /// The cluster is accepted: it connects with its own identity.
    #[error("the cluster is accepted already")]
    Accepted,
    /// The cluster was denied.
    #[error("the cluster is denied")]
    Denied,
}

/// Whether a bootstrap identity for `cluster` (`None`: unknown to the hub) with `token`
/// may connect at `now`.
pub fn admit_bootstrap(
    token: Option<&JoinToken>,
    cluster: Option<&Cluster>,
    now: DateTime<Utc>,
) -> Result<(), BootstrapRefusal> {
    let token = token.ok_or(BootstrapRefusal::UnknownToken)?;
    if token.revoked.is_some() {
        return Err(BootstrapRefusal::Revoked);
    }
    if now >= token.expires {
        return Err(BootstrapRefusal::Expired);
    }
    match cluster {
        Some(c) if c.registration.as_ref().is_some_and(|r| r.denied) => {
            Err(BootstrapRefusal::Denied)
        }
        Some(c) if c.is_accepted() => Err(BootstrapRefusal::Accepted),
        _ => Ok(()),
    }
}

/// Whether the agent certificate of `cluster` may connect: not while it is denied.
pub fn admit_agent(cluster: Option<&Cluster>) -> bool {
    !cluster
        .and_then(|c| c.registration.as_ref())
        .is_some_and(|r| r.denied)
}

/// What a bootstrap token granted the cluster that connected with it, for its join
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGrant {
    /// The token's name.
    pub token: String,
    /// Its auto-accept policy.
    pub auto_accept: bool,
}

/// Bootstrap grants by cluster, written at CONNECT and read by the join request.
/// Bounded: a cluster has at most one entry, replaced on each bootstrap connect, taken
/// by its join, and the map is cleared when it exceeds [`MAX_GRANTS`].
#[derive(Debug, Clone, Default)]
pub struct JoinGrants(Arc<Mutex<HashMap<String, JoinGrant>>>);

/// Most remembered grants.
pub const MAX_GRANTS: usize = 100_000;

impl JoinGrants {
    /// Remembers `grant` for `cluster`.
    pub fn put(&self, cluster: &str, grant: JoinGrant) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_GRANTS {
            map.clear();
        }
        map.insert(cluster.to_owned(), grant);
    }

    /// The grant of `cluster`, if its bootstrap identity connected.
    pub fn get(&self, cluster: &str) -> Option<JoinGrant> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cluster)
            .cloned()
    }
}

/// What the authorizer reads once the hub runs.
#[derive(Clone)]
pub struct HubBinding {
    /// The hub's store.
    pub store: StoreHandle,
    /// The hub's clock.
    pub clock: crate::clock::Clock,
    /// Grants for join requests (shared with the source loop).
    pub grants: JoinGrants,
}

/// The embedded broker's authorizer.
#[derive(Clone)]
pub struct ClusterAuthorizer {
    fleet: FleetAcl,
    hub: Arc<OnceLock<HubBinding>>,
}

impl std::fmt::Debug for ClusterAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAuthorizer")
            .field("fleet", &self.fleet)
            .field("attached", &self.hub.get().is_some())
            .finish()
    }
}

impl ClusterAuthorizer {
    /// Wraps `fleet`; the hub is attached later with [`ClusterAuthorizer::attach`].
    pub fn new(fleet: FleetAcl) -> ClusterAuthorizer {
        ClusterAuthorizer {
            fleet,
            hub: Arc::new(OnceLock::new()),
        }
    }

    /// Lets the authorizer read the hub's state (once; later calls are ignored).
    pub fn attach(&self, binding: HubBinding) {
        let _ = self.hub.set(binding);
    }

    async fn cluster(hub: &HubBinding, name: &str) -> Result<Option<Cluster>, ConnectDenied> {
        let name = name.to_owned();
        hub.store
            .run(move |s| s.get_cluster(&name))
            .await
            .map_err(|_| ConnectDenied::ServerUnavailable)
    }

    async fn bootstrap(
        &self,
        request: &ConnectRequest,
        cluster: &str,
    ) -> Result<FleetPrincipal, ConnectDenied> {
        let identity = Identity::Bootstrap(cluster.to_owned());
        if Identity::parse(&identity.name()).as_ref() != Ok(&identity) {
            return Err(ConnectDenied::BadCredentials);
        }
        if !identity.may_use_client_id(&request.client_id) {
            return Err(ConnectDenied::ClientIdRejected);
        }
        let hub = self.hub.get().ok_or(ConnectDenied::ServerUnavailable)?;
        let secret = request
            .password
            .as_ref()
            .and_then(|p| std::str::from_utf8(p).ok())
            .ok_or(ConnectDenied::BadCredentials)?;
        let hash = crate::auth::secret::digest(secret);
        let token = hub
            .store
            .run(move |s| s.join_token_by_hash(&hash))
            .await
            .map_err(|_| ConnectDenied::ServerUnavailable)?;
        let existing = Self::cluster(hub, cluster).await?;
        match admit_bootstrap(token.as_ref(), existing.as_ref(), hub.clock.now()) {
            Ok(()) => {
                if let Some(t) = token {
                    hub.grants.put(
                        cluster,
                        JoinGrant {
                            token: t.name,
                            auto_accept: t.auto_accept,
                        },
                    );
                }
                Ok(self.fleet.principal(identity))
            }
            Err(refusal) => {
                tracing::warn!(cluster, reason = %refusal, "refusing a bootstrap connection");
                Err(match refusal {
                    BootstrapRefusal::Accepted | BootstrapRefusal::Denied => {
                        ConnectDenied::NotAuthorized
                    }
                    _ => ConnectDenied::BadCredentials,
                })
            }
        }
    }
}

impl Authorizer for ClusterAuthorizer {
    type Principal = FleetPrincipal;

    async fn authenticate(
        &self,
        request: &ConnectRequest,
    ) -> Result<FleetPrincipal, ConnectDenied> {
        if request.peer_certificates.is_empty()
            && let Some(cluster) = request
                .username
                .as_deref()
                .and_then(|u| u.strip_prefix(BOOTSTRAP_IDENTITY_PREFIX))
        {
            return self.bootstrap(request, cluster).await;
        }
        let principal = self.fleet.authenticate(request).await?;
        if let (Identity::Agent(cluster), Some(hub)) = (principal.identity(), self.hub.get())
            && !admit_agent(Self::cluster(hub, cluster).await?.as_ref())
        {
            tracing::warn!(cluster, "refusing a denied cluster's identity");
            return Err(ConnectDenied::NotAuthorized);
        }
        Ok(principal)
    }

    fn identity<'p>(&self, principal: &'p FleetPrincipal) -> Option<&'p str> {
        self.fleet.identity(principal)
    }

    async fn authorize_publish(
        &self,
        client: &ClientInfo,
        principal: &FleetPrincipal,
        request: &PublishRequest<'_>,
    ) -> Decision {
        self.fleet
            .authorize_publish(client, principal, request)
            .await
    }

    async fn authorize_subscribe(
        &self,
        client: &ClientInfo,
        principal: &FleetPrincipal,
        request: &SubscribeRequest<'_>,
    ) -> Decision {
        self.fleet
            .authorize_subscribe(client, principal, request)
            .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use workbus_schemas::registration::ManagedCluster;

    use super::*;
    use crate::store::rules::registration::{accept, deny, new_registration};

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_900_000_000 + s, 0).unwrap()
    }

    fn token() -> JoinToken {
        JoinToken {
            name: "j".into(),
            hash: "h".into(),
            expires: t(100),
            auto_accept: false,
            revoked: None,
            created: t(0),
            created_by: "admin".into(),
        }
    }

    fn joined(state: &str) -> Cluster {
        let (labels, mut reg) = new_registration(&ManagedCluster::named("c1"), "u", t(0));
        match state {
            "accepted" => {
                accept(&mut reg, "l", t(1), false);
            }
            "denied" => {
                deny(&mut reg, t(1));
            }
            _ => {}
        }
        Cluster {
            name: "c1".into(),
            labels,
            created: t(0),
            last_heard: None,
            registration: Some(reg),
        }
    }

    #[test]
    fn bootstrap_tokens_valid_expired_revoked_unknown() {
        let tok = token();
        assert_eq!(admit_bootstrap(Some(&tok), None, t(1)), Ok(()));
        assert_eq!(
            admit_bootstrap(Some(&tok), Some(&joined("pending")), t(1)),
            Ok(())
        );
        assert_eq!(
            admit_bootstrap(Some(&tok), None, t(100)),
            Err(BootstrapRefusal::Expired)
        );
        let mut revoked = token();
        revoked.revoked = Some(t(2));
        assert_eq!(
            admit_bootstrap(Some(&revoked), None, t(3)),
            Err(BootstrapRefusal::Revoked)
        );
        assert_eq!(
            admit_bootstrap(None, None, t(1)),
            Err(BootstrapRefusal::UnknownToken)
        );
    }

    #[test]
    fn accepted_and_denied_clusters_cannot_bootstrap() {
        let tok = token();
        assert_eq!(
            admit_bootstrap(Some(&tok), Some(&joined("accepted")), t(2)),
            Err(BootstrapRefusal::Accepted)
        );
        assert_eq!(
            admit_bootstrap(Some(&tok), Some(&joined("denied")), t(2)),
            Err(BootstrapRefusal::Denied)
        );
        let mut rest = joined("pending");
        rest.registration = None;
        assert_eq!(
            admit_bootstrap(Some(&tok), Some(&rest), t(2)),
            Err(BootstrapRefusal::Accepted)
        );
    }

    #[test]
    fn denied_agents_are_refused() {
        assert!(admit_agent(None));
        assert!(admit_agent(Some(&joined("accepted"))));
        assert!(admit_agent(Some(&joined("pending"))));
        assert!(!admit_agent(Some(&joined("denied"))));
    }
}
