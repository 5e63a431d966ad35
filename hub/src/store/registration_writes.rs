//! The registration changes (issue 13) as typed [`Write`]s: the rules of
//! [`rules::registration`](super::rules::registration), [`rules::csr`](super::rules::csr)
//! and [`rules::availability`](super::rules::availability) over the backend's row
//! operations. Each change queues its echo — the authoritative object, as the hub
//! publishes it to the cluster's agent — in the same transaction ([`RegistrationEcho`]),
//! so a committed change is always eventually told to the agent.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use workbus_schemas::event_type::Action;
use workbus_schemas::registration::names::{message, reason};
use workbus_schemas::registration::{
    CertificateSigningRequest, Lease, ManagedCluster, RegistrationObject,
};

use super::registration::{ClusterSet, JoinToken, Registration};
use super::rules::availability::{Trigger, apply_health};
use super::rules::csr::{CsrRefusal, approve, check_csr, refusal_echo};
use super::rules::registration::{
    LeaseOutcome, RegistrationRefusal, accept, apply_agent_status, apply_lease, bump, deny,
    new_registration,
};
use super::tx::StoreTx;
use super::writes::Write;
use super::{Cluster, NewOutbox, StoreError};

/// Builds the outbox row of a hub → agent registration event (`spec` subresource).
pub type RegistrationEcho =
    Arc<dyn Fn(&RegistrationObject, Action) -> Result<NewOutbox, String> + Send + Sync>;

/// Signs a CSR of `cluster` with the hub CA; `Err` when the request does not parse or
/// names another subject.
pub type CsrSigner =
    Arc<dyn Fn(&str, &CertificateSigningRequest) -> Result<Vec<u8>, String> + Send + Sync>;

fn queue(
    tx: &mut dyn StoreTx,
    echo: &RegistrationEcho,
    object: RegistrationObject,
    action: Action,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = echo(&object, action).map_err(StoreError::Event)?;
    tx.insert_outbox(&row, now)
}

fn echo_cluster(
    tx: &mut dyn StoreTx,
    echo: &RegistrationEcho,
    cluster: &Cluster,
    action: Action,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    queue(
        tx,
        echo,
        RegistrationObject::ManagedCluster(cluster.managed_cluster()),
        action,
        now,
    )
}

fn echo_lease(
    tx: &mut dyn StoreTx,
    echo: &RegistrationEcho,
    lease: Option<&Lease>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match lease {
        Some(l) => queue(
            tx,
            echo,
            RegistrationObject::Lease(l.clone()),
            Action::UpdateRequest,
            now,
        ),
        None => Ok(()),
    }
}

fn joined(tx: &mut dyn StoreTx, name: &str) -> Result<(Cluster, Registration), StoreError> {
    let cluster = tx.cluster(name)?.ok_or_else(|| StoreError::NotFound {
        kind: "cluster",
        name: name.to_owned(),
    })?;
    let registration = cluster.registration.clone().ok_or_else(|| {
        StoreError::Conflict(format!(
            "cluster {name:?} was created over REST and does not register"
        ))
    })?;
    Ok((cluster, registration))
}

/// Applies an agent's change (`apply`, a pure rule) to the registration of cluster
/// `name`: refused when the hub does not know the cluster or it never joined.
fn agent_change<T>(
    tx: &mut dyn StoreTx,
    name: &str,
    apply: impl FnOnce(&mut Registration) -> Result<T, RegistrationRefusal>,
) -> Result<Result<(Cluster, T), RegistrationRefusal>, StoreError> {
    let Some(mut cluster) = tx.cluster(name)? else {
        return Ok(Err(RegistrationRefusal::UnknownCluster));
    };
    let Some(registration) = cluster.registration.as_mut() else {
        return Ok(Err(RegistrationRefusal::NotJoined));
    };
    Ok(apply(registration).map(|v| (cluster, v)))
}

/// What a join request did.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinOutcome {
    /// The cluster was recorded (accepted at once when `auto_accept`).
    Created(Cluster),
    /// It existed: nothing changed, its current state was echoed.
    Existing(Cluster),
}

/// An agent's `managedclusters.spec.create_request`: records the cluster, not accepted
/// (unless `auto_accept`), or echoes the existing one.
pub struct JoinCluster {
    /// What the agent sent.
    pub request: ManagedCluster,
    /// The UID a new cluster gets.
    pub uid: String,
    /// The UID its lease gets on acceptance.
    pub lease_uid: String,
    /// The bootstrap token's auto-accept policy.
    pub auto_accept: bool,
    /// The bootstrap token it came with, if known.
    pub join_token: Option<String>,
    /// The hub's clock.
    pub now: DateTime<Utc>,
    /// Echo builder.
    pub echo: RegistrationEcho,
}

impl Write for JoinCluster {
    type Output = JoinOutcome;
    fn run(self, tx: &mut dyn StoreTx) -> Result<JoinOutcome, StoreError> {
        let name = self.request.metadata.name.clone();
        if let Some(existing) = tx.cluster(&name)? {
            echo_cluster(tx, &self.echo, &existing, Action::UpdateRequest, self.now)?;
            return Ok(JoinOutcome::Existing(existing));
        }
        let (labels, mut registration) = new_registration(&self.request, &self.uid, self.now);
        registration.join_token = self.join_token;
        if self.auto_accept {
            accept(&mut registration, &self.lease_uid, self.now, true);
        }
        let cluster = Cluster {
            name,
            labels,
            created: self.now,
            last_heard: Some(self.now),
            registration: Some(registration),
        };
        if !tx.insert_cluster(&cluster)? {
            return Err(StoreError::AlreadyExists {
                kind: "cluster",
                name: cluster.name,
            });
        }
        // Joining again lifts the revocation of a deleted cluster of that name.
        tx.set_cluster_revoked(&cluster.name, None)?;
        echo_cluster(tx, &self.echo, &cluster, Action::CreateRequest, self.now)?;
        if let Some(r) = &cluster.registration {
            echo_lease(tx, &self.echo, r.lease.as_ref(), self.now)?;
        }
        Ok(JoinOutcome::Created(cluster))
    }
}

/// What a received CSR did.
#[derive(Debug, Clone, PartialEq)]
pub enum CsrOutcome {
    /// Stored, waiting for the cluster's acceptance.
    Pending,
    /// Signed at once (the cluster is accepted: a renewal).
    Approved,
    /// Already known by name: its current state was echoed.
    Existing,
    /// Not taken.
    Refused(CsrRefusal),
    /// The cluster is not registered (or was created over REST).
    NoCluster,
}

/// An agent's `certificatesigningrequests.spec.create_request`.
pub struct SubmitCsr {
    /// The cluster it came from (topic and `clustername`).
    pub cluster: String,
    /// The request.
    pub csr: CertificateSigningRequest,
    /// The UID a new request gets.
    pub uid: String,
    /// The hub's clock.
    pub now: DateTime<Utc>,
    /// Echo builder.
    pub echo: RegistrationEcho,
    /// The hub CA.
    pub signer: CsrSigner,
}

impl Write for SubmitCsr {
    type Output = CsrOutcome;
    fn run(self, tx: &mut dyn StoreTx) -> Result<CsrOutcome, StoreError> {
        let Some(cluster) = tx.cluster(&self.cluster)? else {
            return Ok(CsrOutcome::NoCluster);
        };
        let Some(registration) = &cluster.registration else {
            return Ok(CsrOutcome::NoCluster);
        };
        let existing = tx.csrs_of(&self.cluster)?;
        if let Some(known) = existing
            .iter()
            .find(|c| c.metadata.name == self.csr.metadata.name)
        {
            queue(
                tx,
                &self.echo,
                RegistrationObject::CertificateSigningRequest(known.clone()),
                Action::UpdateRequest,
                self.now,
            )?;
            return Ok(CsrOutcome::Existing);
        }
        let pending = existing.iter().filter(|c| c.is_pending()).count();
        if let Err(refusal) = check_csr(&self.cluster, &self.csr, pending) {
            // Not stored (that is the bound); the agent is told why, so it reports
            // ClusterCertificateRotated=False instead of waiting in silence.
            if let Some(denied) = refusal_echo(&self.csr, &refusal, self.now) {
                let object = RegistrationObject::CertificateSigningRequest(denied);
                queue(tx, &self.echo, object, Action::UpdateRequest, self.now)?;
            }
            return Ok(CsrOutcome::Refused(refusal));
        }
        let mut csr = CertificateSigningRequest::default();
        csr.metadata.name = self.csr.metadata.name.clone();
        csr.metadata.uid = self.uid;
        csr.metadata.resource_version = "1".into();
        csr.metadata.labels = self.csr.metadata.labels.clone();
        csr.metadata.creation_timestamp = Some(workbus_schemas::work::Time::new(self.now));
        csr.spec = self.csr.spec.clone();
        csr.spec.extra.clear();
        // Who asked is the hub's to say, never the agent's.
        csr.spec.username = format!("cluster:{}", self.cluster);
        let outcome = if registration.is_accepted() {
            let cert = match (self.signer)(&self.cluster, &csr) {
                Ok(c) => c,
                Err(e) => return Ok(CsrOutcome::Refused(CsrRefusal::Unsignable(e))),
            };
            approve(
                &mut csr,
                cert,
                reason::AUTO_APPROVED_BY_HUB,
                message::AUTO_APPROVED_BY_HUB,
                self.now,
            );
            CsrOutcome::Approved
        } else {
            CsrOutcome::Pending
        };
        tx.upsert_csr(&self.cluster, &csr, self.now)?;
        queue(
            tx,
            &self.echo,
            RegistrationObject::CertificateSigningRequest(csr),
            if outcome == CsrOutcome::Approved {
                Action::UpdateRequest
            } else {
                Action::CreateRequest
            },
            self.now,
        )?;
        Ok(outcome)
    }
}

/// Accepts a cluster (`workbus-hub accept cluster X`, or an auto-accept policy): the
/// condition, the lease, and every pending CSR signed. A REST-created cluster is
/// accepted already (no change).
pub struct AcceptCluster {
    /// The cluster.
    pub name: String,
    /// The UID its lease gets if it has none.
    pub lease_uid: String,
    /// The hub's clock.
    pub now: DateTime<Utc>,
    /// Echo builder.
    pub echo: RegistrationEcho,
    /// The hub CA.
    pub signer: CsrSigner,
}

impl Write for AcceptCluster {
    type Output = Cluster;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Cluster, StoreError> {
        let mut cluster = tx
            .cluster(&self.name)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "cluster",
                name: self.name.clone(),
            })?;
        let Some(registration) = cluster.registration.as_mut() else {
            return Ok(cluster);
        };
        let changed = accept(registration, &self.lease_uid, self.now, false);
        let lease = registration.lease.clone();
        if changed {
            tx.update_cluster(&cluster)?;
            echo_cluster(tx, &self.echo, &cluster, Action::UpdateRequest, self.now)?;
            echo_lease(tx, &self.echo, lease.as_ref(), self.now)?;
        }
        for mut csr in tx.csrs_of(&self.name)? {
            if !csr.is_pending() {
                continue;
            }
            match (self.signer)(&self.name, &csr) {
                Ok(cert) => approve(
                    &mut csr,
                    cert,
                    reason::HUB_CLUSTER_ADMIN_ACCEPTED,
                    message::HUB_CLUSTER_ADMIN_ACCEPTED,
                    self.now,
                ),
                Err(e) => super::rules::csr::deny(
                    &mut csr,
                    "SigningFailed",
                    &e.chars().take(200).collect::<String>(),
                    self.now,
                ),
            }
            bump(&mut csr.metadata);
            tx.upsert_csr(&self.name, &csr, self.now)?;
            queue(
                tx,
                &self.echo,
                RegistrationObject::CertificateSigningRequest(csr),
                Action::UpdateRequest,
                self.now,
            )?;
        }
        Ok(cluster)
    }
}

/// Denies a cluster: not accepted, its identities refused (the caller closes its
/// connections once this is durable). A REST-created cluster cannot be denied.
pub struct DenyCluster {
    /// The cluster.
    pub name: String,
    /// The hub's clock.
    pub now: DateTime<Utc>,
    /// Echo builder.
    pub echo: RegistrationEcho,
}

impl Write for DenyCluster {
    type Output = Cluster;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Cluster, StoreError> {
        let (mut cluster, mut registration) = joined(tx, &self.name)?;
        if deny(&mut registration, self.now) {
            cluster.registration = Some(registration);
            tx.update_cluster(&cluster)?;
            echo_cluster(tx, &self.echo, &cluster, Action::UpdateRequest, self.now)?;
        }
        Ok(cluster)
    }
}

/// An agent's `managedclusters.status.update_request`.
pub struct UpdateClusterStatus {
    /// The cluster (topic and `clustername`).
    pub cluster: String,
    /// What the agent sent.
    pub incoming: ManagedCluster,
    /// The hub's clock.
    pub now: DateTime<Utc>,
    /// Echo builder.
    pub echo: RegistrationEcho,
}

impl Write for UpdateClusterStatus {
    type Output = Result<bool, RegistrationRefusal>;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Self::Output, StoreError> {
        let (mut cluster, changed) = match agent_change(tx, &self.cluster, |r| {
            apply_agent_status(r, &self.incoming, self.now)
        })? {
            Ok(v) => v,
            Err(r) => return Ok(Err(r)),
        };
        cluster.last_heard = Some(self.now);
        tx.update_cluster(&cluster)?;
        // Always echoed: the agent learns the authoritative resourceVersion.
        echo_cluster(tx, &self.echo, &cluster, Action::UpdateRequest, self.now)?;
        Ok(Ok(changed))
    }
}

/// An agent's `leases.spec.update_request` (renewal or Will).
pub struct RenewLease {
    /// The cluster (topic and `clustername`).
    pub cluster: String,
    /// What the agent (or its broker, for a Will) sent.
    pub lease: Lease,
    /// The hub's clock.
    pub now: DateTime<Utc>,
    /// Echo builder.
    pub echo: RegistrationEcho,
}

impl Write for RenewLease {
    type Output = Result<LeaseOutcome, RegistrationRefusal>;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Self::Output, StoreError> {
        let (mut cluster, (outcome, cluster_changed)) =
            match agent_change(tx, &self.cluster, |r| apply_lease(r, &self.lease, self.now))? {
                Ok(v) => v,
                Err(r) => return Ok(Err(r)),
            };
        if outcome == LeaseOutcome::StaleWill {
            return Ok(Ok(outcome));
        }
        let lease = cluster.registration.as_ref().and_then(|r| r.lease.clone());
        if outcome == LeaseOutcome::Renewed {
            cluster.last_heard = Some(self.now);
        }
        tx.update_cluster(&cluster)?;
        if outcome == LeaseOutcome::Renewed {
            echo_lease(tx, &self.echo, lease.as_ref(), self.now)?;
        }
        if cluster_changed {
            echo_cluster(tx, &self.echo, &cluster, Action::UpdateRequest, self.now)?;
        }
        Ok(Ok(outcome))
    }
}

/// The health timer's pass: every accepted cluster whose lease ran out by `now` turns
/// Unknown (with its taint). Returns the clusters that changed.
pub struct EvaluateHealth {
    /// The hub's clock.
    pub now: DateTime<Utc>,
    /// Echo builder.
    pub echo: RegistrationEcho,
}

impl Write for EvaluateHealth {
    type Output = Vec<Cluster>;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Vec<Cluster>, StoreError> {
        let mut changed = Vec::new();
        for mut cluster in tx.clusters_due(self.now)? {
            let Some(registration) = cluster.registration.as_mut() else {
                continue;
            };
            let lease = registration.lease.clone();
            if apply_health(
                self.now,
                &mut registration.managed_cluster,
                lease.as_ref(),
                Trigger::Tick,
            ) {
                bump(&mut registration.managed_cluster.metadata);
                echo_cluster(tx, &self.echo, &cluster, Action::UpdateRequest, self.now)?;
                changed.push(cluster.clone());
            }
            // Also clears the deadline of a cluster that needs no change.
            tx.update_cluster(&cluster)?;
        }
        Ok(changed)
    }
}

/// Sets and removes labels of a cluster (`label cluster X k=v k-`).
pub struct LabelCluster {
    /// The cluster.
    pub name: String,
    /// Labels to set.
    pub set: BTreeMap<String, String>,
    /// Labels to remove.
    pub remove: Vec<String>,
    /// The hub's clock.
    pub now: DateTime<Utc>,
    /// Echo builder (joined clusters are told).
    pub echo: RegistrationEcho,
}

impl Write for LabelCluster {
    type Output = Cluster;
    fn run(self, tx: &mut dyn StoreTx) -> Result<Cluster, StoreError> {
        let mut cluster = tx
            .cluster(&self.name)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "cluster",
                name: self.name.clone(),
            })?;
        let before = cluster.labels.clone();
        for k in &self.remove {
            cluster.labels.remove(k);
        }
        cluster.labels.extend(self.set);
        if cluster.labels != before {
            if let Some(r) = cluster.registration.as_mut() {
                bump(&mut r.managed_cluster.metadata);
            }
            tx.update_cluster(&cluster)?;
            if cluster.registration.is_some() {
                echo_cluster(tx, &self.echo, &cluster, Action::UpdateRequest, self.now)?;
            }
        }
        Ok(cluster)
    }
}

/// Creates a cluster set ([`StoreError::AlreadyExists`] if it is).
pub struct CreateClusterSet(pub ClusterSet);

impl Write for CreateClusterSet {
    type Output = ClusterSet;
    fn run(self, tx: &mut dyn StoreTx) -> Result<ClusterSet, StoreError> {
        if !tx.insert_clusterset(&self.0)? {
            return Err(StoreError::AlreadyExists {
                kind: "clusterset",
                name: self.0.name,
            });
        }
        Ok(self.0)
    }
}

/// Deletes a cluster set; `default` and `global` always exist.
pub struct DeleteClusterSet(pub String);

impl Write for DeleteClusterSet {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        if ClusterSet::is_builtin(&self.0) {
            return Err(StoreError::Conflict(format!(
                "cluster set {:?} always exists",
                self.0
            )));
        }
        if !tx.remove_clusterset(&self.0)? {
            return Err(StoreError::NotFound {
                kind: "clusterset",
                name: self.0,
            });
        }
        Ok(())
    }
}

/// Stores a new bootstrap token ([`StoreError::AlreadyExists`] if the name is taken).
pub struct CreateJoinToken(pub JoinToken);

impl Write for CreateJoinToken {
    type Output = JoinToken;
    fn run(self, tx: &mut dyn StoreTx) -> Result<JoinToken, StoreError> {
        if !tx.insert_join_token(&self.0)? {
            return Err(StoreError::AlreadyExists {
                kind: "bootstrap token",
                name: self.0.name,
            });
        }
        Ok(self.0)
    }
}

/// Revokes a bootstrap token (kept, marked revoked, so `token list` shows it).
pub struct RevokeJoinToken {
    /// Its name.
    pub name: String,
    /// The revocation time.
    pub now: DateTime<Utc>,
}

impl Write for RevokeJoinToken {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        if !tx.revoke_join_token(&self.name, self.now)? {
            return Err(StoreError::NotFound {
                kind: "bootstrap token",
                name: self.name,
            });
        }
        Ok(())
    }
}
