//! Joining a hub with a bootstrap token (issue 13, ARCHITECTURE "The agent's side of
//! joining"): the agent connects as `bootstrap.<cluster>` (password = the token, client
//! id `<cluster>-registration-bootstrap`), asks the hub to create its ManagedCluster and
//! to sign a CSR for a key it just made, and waits until the hub accepts the cluster and
//! returns the certificate. The requests are sent after every (re)subscribe and every
//! [`RegistrationConfig::join_resend`] while waiting (the hub treats repeats as one),
//! each followed by resync requests so a lost echo is read again. The request (key
//! included) is kept in the identity dir while it waits ([`pending_request`]), so a
//! restarted agent sends the same one again rather than a new CSR beside it. The
//! certificate and key are then written to the identity dir; the agent reconnects with
//! them as `Agent(<cluster>)`.

use std::time::SystemTime;

use chrono::Utc;
use tokio::time::Instant;
use workbus_schemas::acl::Identity;
use workbus_schemas::client_id;
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::mqtt::{self, MqttMessage};
use workbus_schemas::registration::{
    RegistrationBody, RegistrationKind, RegistrationObject, decode_registration_event,
    registration_kind,
};
use workbus_transport::{PemSource, Transport, TransportConfig, TransportEvent};

use super::RegistrationConfig;
use super::csr::{CertificateRequest, CsrError, certificate_request};
use super::identity_dir::{IdentityDir, IdentityError, PendingRequest, StoredIdentity};
use super::messages::{
    MessageError, Outbound, cluster_create_request, csr_create_request, issued_certificate,
    name_suffix,
};

/// How long the bootstrap session may take to say goodbye.
const BOOTSTRAP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a join ended without an identity.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// No key or CSR could be made.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// A request could not be built.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The bootstrap connection could not be set up (TLS material).
    #[error("bootstrap connection: {0}")]
    Transport(#[from] workbus_transport::TlsError),
    /// The hub denied the certificate request.
    #[error("the hub denied the certificate request of cluster {cluster}: {reason}")]
    Denied {
        /// The cluster.
        cluster: String,
        /// The hub's conditions.
        reason: String,
    },
    /// The certificate could not be stored, or is not usable for this cluster and key.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The hub returned a certificate that does not fit the request.
    #[error("the certificate the hub issued for {0} does not match its request")]
    Mismatch(String),
}

/// The bootstrap session's transport: `base` (broker address, TLS trust) as
/// `bootstrap.<cluster>` with the token, subscribed like the agent.
pub fn bootstrap_transport(base: &TransportConfig, cluster: &str, token: &str) -> TransportConfig {
    let mut t = base.clone();
    t.client_id = client_id::bootstrap_client_id(cluster);
    t.credentials = Some((
        Identity::Bootstrap(cluster.to_string()).to_string(),
        token.to_string(),
    ));
    // A bootstrap identity has no client certificate; the hub CA stays trusted.
    if let Some(tls) = &mut t.tls {
        tls.client_cert_pem = None;
        tls.client_key_pem = None;
    }
    t.will = None;
    t
}

/// Joins: runs the bootstrap session until the hub issued this cluster's certificate,
/// stores it in the identity dir and returns it. Runs until it succeeds, the hub denies
/// the request, or the caller drops the future (shutdown).
pub async fn join(
    registration: &RegistrationConfig,
    out: &Outbound,
    transport: TransportConfig,
    token: &str,
) -> Result<StoredIdentity, JoinError> {
    let cluster = out.cluster.clone();
    let pending = pending_request(&registration.identity_dir, &cluster)?;
    let request = CertificateRequest {
        key_pem: pending.key_pem,
        csr_pem: pending.csr_pem,
    };
    let csr = csr_create_request(&cluster, &pending.suffix, &request.csr_pem);
    let csr_name = csr.metadata.name.clone();
    let requests = JoinRequests {
        cluster: RegistrationObject::ManagedCluster(cluster_create_request(
            &cluster,
            &registration.labels,
            registration.lease_duration_seconds,
        )),
        csr: RegistrationObject::CertificateSigningRequest(csr),
    };
    let mut session = Transport::start(bootstrap_transport(&transport, &cluster, token))?;
    tracing::info!(%cluster, csr = %csr_name, "joining the hub with a bootstrap token");
    let mut resend_at: Option<Instant> = None;
    let outcome = loop {
        let wait = async {
            match resend_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = session.events.recv() => match event {
                Some(TransportEvent::Subscribed) => {
                    send_all(&session, out, &requests).await;
                    tracing::info!(%cluster, "waiting for the hub to accept cluster {cluster} (workbus-hub accept cluster {cluster})");
                    resend_at = Some(Instant::now() + registration.join_resend);
                }
                Some(TransportEvent::Message(m)) => {
                    if let Some(done) = on_message(&m, &cluster, &csr_name) {
                        break done;
                    }
                }
                Some(TransportEvent::Disconnected(reason)) => {
                    tracing::warn!(%cluster, %reason, "bootstrap connection lost or refused (is the bootstrap token valid, unexpired and not revoked, and the cluster not yet accepted?)");
                    resend_at = None;
                }
                None => break Err(JoinError::Mismatch(csr_name.clone())),
            },
            _ = wait => {
                send_all(&session, out, &requests).await;
                resend_at = Some(Instant::now() + registration.join_resend);
            }
        }
    };
    session.shutdown(BOOTSTRAP_GRACE).await;
    // Answered (signed or denied): a later join makes a new request.
    if let Err(e) = registration.identity_dir.clear_pending() {
        tracing::warn!(%cluster, error = %e, "cannot remove the answered join request");
    }
    let cert = outcome?;
    store(registration, &cluster, &request, &cert, &transport)
}

/// The join request of `cluster`: the one a previous run left in flight in `dir`, else
/// a new key and CSR, kept in `dir` before anything is sent.
pub fn pending_request(dir: &IdentityDir, cluster: &str) -> Result<PendingRequest, JoinError> {
    if let Some(p) = dir.load_pending(cluster)? {
        tracing::info!(%cluster, csr = %format!("{cluster}-{}", p.suffix), "sending the join request of a previous run again");
        return Ok(p);
    }
    let request = certificate_request(cluster)?;
    let pending = PendingRequest {
        cluster: cluster.to_string(),
        suffix: name_suffix(random_u64(cluster)),
        key_pem: request.key_pem,
        csr_pem: request.csr_pem,
    };
    dir.store_pending(&pending)?;
    Ok(pending)
}

/// The two create requests of a join.
struct JoinRequests {
    cluster: RegistrationObject,
    csr: RegistrationObject,
}

/// Sends both create requests and the resync requests of both kinds. Failures are
/// logged: the next round sends everything again.
async fn send_all(session: &Transport, out: &Outbound, requests: &JoinRequests) {
    let now = Utc::now();
    let messages = [
        out.message(
            SubResource::Spec,
            Action::CreateRequest,
            &requests.cluster,
            now,
        ),
        out.message(SubResource::Spec, Action::CreateRequest, &requests.csr, now),
        out.resync_request(RegistrationKind::ManagedCluster, [], now),
        out.resync_request(RegistrationKind::CertificateSigningRequest, [], now),
    ];
    for m in messages {
        match m {
            Ok(m) => {
                if let Err(e) = session.publisher.publish(&m).await {
                    tracing::debug!(cluster = %out.cluster, error = %e, "join request not delivered; sent again later");
                }
            }
            Err(e) => {
                tracing::error!(cluster = %out.cluster, error = %e, "cannot build a join request")
            }
        }
    }
}

/// What a message means for the join: `Some(Ok(certificate))` when our request was
/// signed, `Some(Err)` when it was denied, `None` otherwise.
fn on_message(m: &MqttMessage, cluster: &str, csr_name: &str) -> Option<Result<String, JoinError>> {
    let event = mqtt::decode(m).ok()?;
    registration_kind(&event)?;
    let decoded = match decode_registration_event(&event) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(%cluster, error = %e, "dropping a registration event");
            return None;
        }
    };
    if decoded.cluster_name != cluster || decoded.sub_resource != SubResource::Spec {
        return None;
    }
    match decoded.body {
        RegistrationBody::Object(RegistrationObject::ManagedCluster(c)) => {
            tracing::info!(%cluster, accepted = c.spec.hub_accepts_client, "the hub knows cluster {cluster}");
            None
        }
        RegistrationBody::Object(RegistrationObject::CertificateSigningRequest(csr)) => {
            issued_certificate(&csr, csr_name).map(|r| {
                r.map_err(|reason| JoinError::Denied {
                    cluster: cluster.to_string(),
                    reason,
                })
            })
        }
        _ => None,
    }
}

/// Writes the identity and reads it back (the same checks as at a start).
fn store(
    registration: &RegistrationConfig,
    cluster: &str,
    request: &CertificateRequest,
    cert: &str,
    transport: &TransportConfig,
) -> Result<StoredIdentity, JoinError> {
    // The CA the broker was trusted with goes along, so the identity dir is complete.
    let ca = match transport.tls.as_ref().and_then(|t| t.ca_pem.as_ref()) {
        Some(PemSource::Inline(pem)) => Some(pem.clone()),
        Some(PemSource::File(path)) => std::fs::read(path).ok(),
        None => None,
    };
    let ca = ca.as_deref().and_then(|c| std::str::from_utf8(c).ok());
    registration
        .identity_dir
        .store(&request.key_pem, cert, ca)?;
    let identity = registration
        .identity_dir
        .load(cluster, SystemTime::now())?
        .ok_or_else(|| JoinError::Mismatch(cluster.to_string()))?;
    tracing::info!(%cluster, serial = %identity.serial, dir = %registration.identity_dir.path().display(), "joined: the hub issued this cluster's certificate");
    Ok(identity)
}

/// A random number for the CSR name (no randomness crate: time and cluster hashed).
pub(crate) fn random_u64(seed: &str) -> u64 {
    let mut j = crate::jitter::Jitter::new(seed);
    (j.unit() * u64::MAX as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restarted agent sends the join request (key, CSR, name) of its previous run
    /// again; once answered, the next join makes a new one; another cluster's pending
    /// request is not used.
    #[test]
    fn the_pending_request_survives_a_restart_until_answered() {
        let temp = tempfile::tempdir().unwrap();
        let dir = IdentityDir::new(temp.path().join("identity"));
        let first = pending_request(&dir, "edge-1").unwrap();
        // A new process: only the directory is shared.
        let again =
            pending_request(&IdentityDir::new(temp.path().join("identity")), "edge-1").unwrap();
        assert_eq!(again, first);
        assert!(!format!("{again:?}").contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(
                dir.path()
                    .join(crate::registration::identity_dir::PENDING_FILE),
            )
            .unwrap()
            .permissions()
            .mode();
            assert_eq!(mode & 0o077, 0, "the pending key is private: {mode:o}");
        }
        // Another cluster in the same dir gets its own request.
        let other = pending_request(&dir, "edge-2").unwrap();
        assert_ne!(other.key_pem, first.key_pem);
        assert_eq!(other.cluster, "edge-2");
        // Answered: cleared, and the next join is a new request.
        dir.clear_pending().unwrap();
        dir.clear_pending().unwrap();
        let next = pending_request(&dir, "edge-2").unwrap();
        assert_ne!(next.key_pem, other.key_pem);
        // An unreadable file is replaced by a new request.
        std::fs::write(
            dir.path()
                .join(crate::registration::identity_dir::PENDING_FILE),
            b"{",
        )
        .unwrap();
        assert_ne!(
            pending_request(&dir, "edge-2").unwrap().key_pem,
            next.key_pem
        );
    }
}
