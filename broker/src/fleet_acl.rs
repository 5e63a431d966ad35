//! [`FleetAcl`]: the [`Authorizer`] the broker ships — identities and per-identity topic
//! ACLs for one fleet, on by default wherever the hub embeds the broker with TLS.
//!
//! - **Identity** ([`Identity`]): from the client certificate the TLS handshake verified
//!   (CN, else a DNS SAN: [`certificate_identity`]), else from user name and password
//!   checked against a [`Credentials`] file. Nothing else gets in. Bootstrap identities
//!   (`bootstrap.<cluster>`, a cluster joining with a hub-issued token) are never taken
//!   from a certificate or the credential file: only the hub, which issues and revokes
//!   bootstrap tokens, authenticates them (its own `Authorizer` wraps this one).
//! - **Client id**: must name the identity ([`Identity::may_use_client_id`]); the broker
//!   refuses a client id held by another identity ([`Authorizer::identity`]), so no one
//!   takes over another cluster's session.
//! - **Topics**: the identity's [`Grant`]s, derived once at CONNECT from the fleet's
//!   topic templates by [`TopicAcl`] (`workbus_schemas::acl`); every PUBLISH and every
//!   SUBSCRIBE filter is checked against them. This module knows no topic shape.

use workbus_schemas::acl::{Access, Grant, Identity, Subject, TopicAcl, allows};
use workbus_schemas::topics::{TopicError, Topics};

use crate::auth::{
    Authorizer, ClientInfo, ConnectDenied, ConnectRequest, Decision, PublishRequest,
    SubscribeRequest,
};
use crate::credentials::{Credentials, CredentialsError};
use crate::identity::certificate_identity;

/// Why a [`FleetAcl`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The topic templates cannot serve as a fleet ACL.
    #[error("topic ACL: {0}")]
    Topics(#[from] TopicError),
    /// The credential file cannot be used.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// Identities from certificates or credentials, topic ACLs from the topic templates.
#[derive(Debug, Clone)]
pub struct FleetAcl {
    acl: TopicAcl,
    credentials: Option<Credentials>,
}

/// What [`FleetAcl`] knows about an authenticated connection.
#[derive(Debug, Clone)]
pub struct FleetPrincipal {
    identity: Identity,
    name: String,
    grants: Vec<Grant>,
}

impl FleetPrincipal {
    /// Who the connection is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// What it may publish and subscribe to.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
}

impl FleetAcl {
    /// The ACL of a fleet using `topics` (the source side's templates; see
    /// [`TopicAcl::new`]), with certificate identities only.
    pub fn new(topics: &Topics) -> Result<FleetAcl, AclError> {
        Ok(FleetAcl {
            acl: TopicAcl::new(topics)?,
            credentials: None,
        })
    }

    /// The ACL of the default layout of source `source_id` ([`Topics::for_source`]).
    pub fn for_source(source_id: &str) -> Result<FleetAcl, AclError> {
        Self::new(&Topics::for_source(source_id)?)
    }

    /// Also lets the identities of `credentials` log in with user name and password.
    pub fn with_credentials(mut self, credentials: Credentials) -> FleetAcl {
        self.credentials = Some(credentials);
        self
    }

    /// The credential file's table, when password logins are allowed (shared: a
    /// [`Credentials::reload`] through it changes what this ACL accepts).
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The topic ACL in use.
    pub fn topic_acl(&self) -> &TopicAcl {
        &self.acl
    }

    /// The principal of an identity authenticated elsewhere (the hub's bootstrap tokens):
    /// its grants from this fleet's topic ACL.
    pub fn principal(&self, identity: Identity) -> FleetPrincipal {
        FleetPrincipal {
            name: identity.name(),
            grants: self.acl.grants(Subject::Identity(&identity)),
            identity,
        }
    }

    async fn identify(&self, request: &ConnectRequest) -> Result<Identity, ConnectDenied> {
        if let Some(leaf) = request.peer_certificates.first() {
            // A verified certificate decides; a user name sent along is ignored, as with
            // Mosquitto's use_identity_as_username.
            let name = certificate_identity(leaf).ok_or(ConnectDenied::NotAuthorized)?;
            return match Identity::parse(&name) {
                Ok(Identity::Bootstrap(_)) | Err(_) => Err(ConnectDenied::NotAuthorized),
                Ok(identity) => Ok(identity),
            };
        }
        match (&self.credentials, &request.username, &request.password) {
            (Some(creds), Some(user), Some(password)) => {
                if creds.verify(user, password).await {
                    match Identity::parse(user) {
                        Ok(Identity::Bootstrap(_)) | Err(_) => Err(ConnectDenied::BadCredentials),
                        Ok(identity) => Ok(identity),
                    }
                } else {
                    Err(ConnectDenied::BadCredentials)
                }
            }
            (_, Some(_), _) => Err(ConnectDenied::BadCredentials),
            _ => Err(ConnectDenied::NotAuthorized),
        }
    }
}

impl Authorizer for FleetAcl {
    type Principal = FleetPrincipal;

    async fn authenticate(
        &self,
        request: &ConnectRequest,
    ) -> Result<FleetPrincipal, ConnectDenied> {
        let identity = self.identify(request).await?;
        if !identity.may_use_client_id(&request.client_id) {
            return Err(ConnectDenied::ClientIdRejected);
        }
        Ok(self.principal(identity))
    }

    fn identity<'p>(&self, principal: &'p FleetPrincipal) -> Option<&'p str> {
        Some(&principal.name)
    }

    async fn authorize_publish(
        &self,
        _client: &ClientInfo,
        principal: &FleetPrincipal,
        request: &PublishRequest<'_>,
    ) -> Decision {
        decide(allows(&principal.grants, Access::Publish, request.topic))
    }

    async fn authorize_subscribe(
        &self,
        _client: &ClientInfo,
        principal: &FleetPrincipal,
        request: &SubscribeRequest<'_>,
    ) -> Decision {
        decide(allows(&principal.grants, Access::Subscribe, request.filter))
    }
}

fn decide(allowed: bool) -> Decision {
    if allowed {
        Decision::Allow
    } else {
        Decision::Deny
    }
}
