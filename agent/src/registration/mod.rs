//! The agent's side of cluster registration and health (issue 13; ARCHITECTURE
//! "Cluster lifecycle" → "The agent's side of joining").
//!
//! An agent configured with a [`RegistrationConfig`] (a bootstrap token, or an identity
//! dir holding the cluster's certificate) runs [`prepare`] before its loop: with a usable
//! identity it connects with it (mutual TLS); without one it [`join::join`]s the hub
//! with the bootstrap token first. The loop then runs the [`lifecycle::Lifecycle`]
//! (lease renewals, status reports, certificate rotation) next to the ManifestWork
//! handling, and its connection carries a Will that releases the cluster's lease.
//! Agents without a `RegistrationConfig` work exactly as before: clusters created on the
//! hub, credentials given.
//!
//! One concept per file: [`identity_dir`] (files, atomic swaps), [`csr`] (key + PKCS#10),
//! [`messages`] (the objects and messages, pure), [`claims`], [`lease_timing`],
//! [`rotation`] (decisions, pure), [`join`] (the bootstrap session), [`lifecycle`].

pub mod claims;
pub mod csr;
pub mod identity_dir;
pub mod join;
pub mod lease_timing;
pub mod lifecycle;
pub mod messages;
pub mod rotation;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use workbus_transport::{PemSource, TlsSettings};

use crate::config::AgentConfig;
use identity_dir::{IdentityDir, IdentityError, StoredIdentity};
use join::JoinError;
use messages::Outbound;

/// How often join requests are sent again while the hub has not answered.
pub const DEFAULT_JOIN_RESEND: Duration = Duration::from_secs(30);

/// Name of the identity dir inside the agent's data dir.
pub const IDENTITY_DIR: &str = "identity";

/// How an agent registers its cluster.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// Where the cluster's own certificate lives.
    pub identity_dir: IdentityDir,
    /// The hub-issued bootstrap token, for joining when there is no usable identity.
    pub bootstrap_token: Option<String>,
    /// Labels of the ManagedCluster it asks the hub to create (`--cluster-label`).
    pub labels: BTreeMap<String, String>,
    /// User-defined cluster claims (`--cluster-claim`).
    pub claims: Vec<(String, String)>,
    /// The lease duration it asks for (the hub's ManagedCluster has the final say).
    pub lease_duration_seconds: u32,
    /// How often join requests are sent again while waiting.
    pub join_resend: Duration,
}

impl RegistrationConfig {
    /// Registration with identities in `identity_dir` and the defaults.
    pub fn new(identity_dir: IdentityDir) -> RegistrationConfig {
        RegistrationConfig {
            identity_dir,
            bootstrap_token: None,
            labels: BTreeMap::new(),
            claims: Vec::new(),
            lease_duration_seconds: lease_timing::DEFAULT_LEASE_DURATION_SECONDS,
            join_resend: DEFAULT_JOIN_RESEND,
        }
    }
}

/// Why an agent configured to register cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// No usable identity and nothing to join with.
    #[error(
        "no usable identity for cluster {cluster} in {dir} and no bootstrap token to join with"
    )]
    NoIdentity {
        /// The cluster.
        cluster: String,
        /// The identity dir.
        dir: String,
    },
    /// The identity dir cannot be read.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Joining failed.
    #[error(transparent)]
    Join(#[from] JoinError),
}

/// Where the agent's registration messages go.
pub fn outbound(config: &AgentConfig) -> Outbound {
    Outbound {
        cluster: config.cluster_name.clone(),
        topics: config.topics.clone(),
        encoding: config.encoding,
    }
}

/// Makes `config` ready to run: with registration configured, finds (or, with a
/// bootstrap token, obtains by joining) the cluster's identity and makes the transport
/// use it. Returns the identity in use (`None`: registration not configured).
pub async fn prepare(config: &mut AgentConfig) -> Result<Option<StoredIdentity>, PrepareError> {
    let Some(registration) = config.registration.clone() else {
        return Ok(None);
    };
    let cluster = config.cluster_name.clone();
    let identity = match registration
        .identity_dir
        .load(&cluster, SystemTime::now())?
    {
        Some(identity) => identity,
        None => {
            let Some(token) = &registration.bootstrap_token else {
                return Err(PrepareError::NoIdentity {
                    cluster,
                    dir: registration.identity_dir.path().display().to_string(),
                });
            };
            join::join(
                &registration,
                &outbound(config),
                config.transport.clone(),
                token,
            )
            .await?
        }
    };
    use_identity(config, &registration.identity_dir)?;
    Ok(Some(identity))
}

/// Points the transport at the identity dir's certificate and key files (mutual TLS;
/// read again on every connection attempt, so a rotation needs only a reconnect); the CA
/// stays the configured one, else the identity dir's `ca.crt`.
pub fn use_identity(config: &mut AgentConfig, dir: &IdentityDir) -> Result<(), IdentityError> {
    let configured_ca = config.transport.tls.as_ref().and_then(|t| t.ca_pem.clone());
    let ca = match configured_ca {
        Some(ca) => Some(ca),
        None if dir.ca_path().exists() => Some(PemSource::File(dir.ca_path())),
        None => None,
    };
    config.transport.tls = Some(TlsSettings {
        ca_pem: ca,
        client_cert_pem: Some(PemSource::File(dir.cert_path())),
        client_key_pem: Some(PemSource::File(dir.key_path())),
    });
    // A registered agent is its certificate's identity, not a user name.
    config.transport.credentials = None;
    Ok(())
}
