//! The source loop's dispatcher for the registration data types (issue 13, design §4–5):
//! ManagedCluster create and status updates, CSR creates, lease renewals (and Wills),
//! and their resync requests (reference §4.4). Everything else of these types is
//! counted and dropped.
//!
//! Admission: a registration event must name the cluster of the topic it came on
//! ([`admission::claimed_cluster`]), fit [`MAX_REGISTRATION_BYTES`], pass publisher
//! admission ([`publisher`]) when the broker stamped its publisher, and stay within the
//! cluster's rate. Then one store write applies it and queues the hub's echo (the
//! authoritative object) in the same transaction.

use std::sync::Arc;

use chrono::Utc;
use cloudevents::AttributesReader;
use workbus_schemas::Event;
use workbus_schemas::acl::Identity;
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::extensions::OcmExtensions;
use workbus_schemas::mqtt::MqttMessage;
use workbus_schemas::registration::{
    RegistrationBody, RegistrationKind, RegistrationObject, decode_registration_event,
    encode_registration_event, encode_synthetic_delete,
};
use workbus_schemas::resync::{
    SourceWork, SpecResyncAction, SpecResyncRequest, spec_resync_answer,
};

use super::SourceLoop;
use super::admission::{self, Refusal};
use super::publisher::{Sent, admit_publisher};
use crate::clock::Clock;
use crate::store::registration_writes::{
    AcceptCluster, CsrOutcome, CsrSigner, DenyCluster, JoinCluster, JoinOutcome, RegistrationEcho,
    RenewLease, SubmitCsr, UpdateClusterStatus,
};
use crate::store::rules::registration::RegistrationRefusal;
use crate::store::writes::Enqueue;
use crate::store::{Cluster, NewOutbox};
use crate::watch::ClusterWatchers;

/// The largest registration message the hub accepts (a cluster status with claims and
/// a CSR are a few KiB).
pub const MAX_REGISTRATION_BYTES: usize = 64 * 1024;

/// What the registration dispatcher needs besides the source loop.
#[derive(Clone)]
pub struct RegistrationContext {
    /// Builds echo rows (encode + wire format).
    pub echo: RegistrationEcho,
    /// Signs CSRs with the hub CA.
    pub signer: CsrSigner,
    /// The hub's clock.
    pub clock: Clock,
    /// Cluster change notifications (SSE).
    pub clusters: ClusterWatchers,
    /// The store (for the admin operations below).
    pub store: crate::store::StoreHandle,
    /// Wakes the outbox publisher.
    pub outbox: Arc<tokio::sync::Notify>,
    /// Closes a denied cluster's broker connections (the embedded broker's).
    pub disconnect: Option<crate::config::Disconnect>,
    /// Bootstrap tokens' grants (auto-accept), recorded by the embedded broker's
    /// authorizer when a joining cluster connects.
    pub grants: crate::cluster_authorizer::JoinGrants,
}

impl RegistrationContext {
    /// Accepts cluster `name` (`workbus-hub accept cluster`, `POST .../accept`): the
    /// condition, its lease, its pending CSRs signed; the echoes queued.
    pub async fn accept(&self, name: &str) -> Result<Cluster, crate::store::StoreError> {
        let cluster = self
            .store
            .write(AcceptCluster {
                name: name.to_owned(),
                lease_uid: uuid::Uuid::new_v4().to_string(),
                now: self.clock.now(),
                echo: self.echo.clone(),
                signer: self.signer.clone(),
            })
            .await?;
        tracing::info!(cluster = name, "cluster accepted");
        self.outbox.notify_one();
        self.clusters.notify(&cluster);
        Ok(cluster)
    }

    /// Denies cluster `name`: not accepted, its identities refused, and — once that is
    /// durable — its connections to the embedded broker closed at once.
    pub async fn deny(&self, name: &str) -> Result<Cluster, crate::store::StoreError> {
        let cluster = self
            .store
            .write(DenyCluster {
                name: name.to_owned(),
                now: self.clock.now(),
                echo: self.echo.clone(),
            })
            .await?;
        let closed = self.disconnect.as_ref().map_or(0, |d| d(name));
        tracing::warn!(
            cluster = name,
            closed,
            "cluster denied; its connections closed"
        );
        self.outbox.notify_one();
        self.clusters.notify(&cluster);
        Ok(cluster)
    }
}

impl RegistrationContext {
    /// The echo builder of a hub publishing as `source_id` through `wire`.
    pub fn echo(source_id: String, wire: Arc<crate::outbox::WireFormat>) -> RegistrationEcho {
        Arc::new(move |object: &RegistrationObject, action: Action| {
            let event = encode_registration_event(
                &source_id,
                SubResource::Spec,
                action,
                object,
                Utc::now(),
            )
            .map_err(|e| e.to_string())?;
            let cluster = object.cluster_name().unwrap_or_default().to_owned();
            let uid = object.metadata().uid.clone();
            Ok(wire.ready(NewOutbox::new(
                cluster,
                (!uid.is_empty()).then_some(uid),
                event.into(),
            )))
        })
    }

    /// A signer over `pki` issuing certificates valid for `validity`; without a CA every
    /// request is unsignable.
    pub fn signer(pki: Option<crate::pki::Pki>, validity: std::time::Duration) -> CsrSigner {
        Arc::new(move |cluster, csr| match &pki {
            Some(pki) => pki
                .sign_cluster_csr(cluster, &csr.spec.request, validity)
                .map(String::into_bytes)
                .map_err(|e| e.to_string()),
            None => Err("the hub has no CA to sign with".to_owned()),
        })
    }
}

fn sent_of(kind: RegistrationKind, sub: SubResource, action: &Action) -> Sent {
    match (kind, sub, action) {
        (RegistrationKind::ManagedCluster, SubResource::Status, _) => Sent::ClusterStatus,
        (RegistrationKind::ManagedCluster, _, _) => Sent::ClusterJoin,
        (RegistrationKind::CertificateSigningRequest, _, _) => Sent::CsrJoin,
        (RegistrationKind::Lease, _, _) => Sent::Lease,
        (RegistrationKind::Event, _, _) => Sent::Other,
    }
}

impl SourceLoop {
    /// Handles one registration event (already decoded from `message`), published by
    /// `publisher` when the broker stamped one.
    pub(crate) async fn handle_registration(
        &self,
        event: Event,
        message: &MqttMessage,
        publisher: Option<&Identity>,
    ) {
        let decoded = match decode_registration_event(&event) {
            Ok(d) => d,
            Err(e) => {
                return self
                    .drop_and_audit(&event, "malformed_payload", &e.to_string())
                    .await;
            }
        };
        let cluster = match admission::claimed_cluster(
            &message.topic,
            Some(decoded.cluster_name.as_str()),
            true,
        ) {
            Ok(c) => c.to_owned(),
            Err(r) => return self.refuse(&event, r, &message.topic),
        };
        if admission::message_size(message) > MAX_REGISTRATION_BYTES {
            return self.refuse(&event, Refusal::TooLarge, &message.topic);
        }
        let sent = sent_of(decoded.kind, decoded.sub_resource, &decoded.action);
        if let Err(r) = admit_publisher(sent, &cluster, publisher) {
            return self.refuse(&event, r, &message.topic);
        }
        let admitted = if decoded.action == Action::ResyncRequest {
            self.limits.admit_resync(&cluster)
        } else {
            self.limits.admit_status(&cluster)
        };
        if !admitted {
            let r = if decoded.action == Action::ResyncRequest {
                Refusal::ResyncRateLimited
            } else {
                Refusal::StatusRateLimited
            };
            return self.refuse(&event, r, &message.topic);
        }
        self.metrics
            .received(event.ty(), event.cluster_name().ok().flatten());
        let ctx = &self.registration;
        let now = ctx.clock.now();
        let echo = ctx.echo.clone();
        let result: Result<Option<Cluster>, String> = match (
            decoded.kind,
            decoded.sub_resource,
            &decoded.action,
            decoded.body,
        ) {
            (
                RegistrationKind::ManagedCluster,
                SubResource::Spec,
                Action::CreateRequest,
                RegistrationBody::Object(RegistrationObject::ManagedCluster(request)),
            ) => {
                self.audit(&event).await;
                let grant = ctx.grants.get(&cluster);
                let write = JoinCluster {
                    uid: cluster_uid(&cluster),
                    lease_uid: uuid::Uuid::new_v4().to_string(),
                    request,
                    auto_accept: grant.as_ref().is_some_and(|g| g.auto_accept),
                    join_token: grant.map(|g| g.token),
                    now,
                    echo,
                };
                match self.store.write(write).await {
                    Ok(JoinOutcome::Created(c)) => {
                        tracing::info!(
                            %cluster,
                            accepted = c.is_accepted(),
                            "cluster joining; accept it with `workbus-hub accept cluster {cluster}`"
                        );
                        Ok(Some(c))
                    }
                    Ok(JoinOutcome::Existing(_)) => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            }
            (
                RegistrationKind::ManagedCluster,
                SubResource::Status,
                Action::UpdateRequest,
                RegistrationBody::Object(RegistrationObject::ManagedCluster(incoming)),
            ) => {
                self.audit(&event).await;
                let write = UpdateClusterStatus {
                    cluster: cluster.clone(),
                    incoming,
                    now,
                    echo,
                };
                match self.store.write(write).await {
                    Ok(Ok(_)) => self.reread(&cluster).await,
                    Ok(Err(r)) => return self.refuse_registration(&event, r, &message.topic),
                    Err(e) => Err(e.to_string()),
                }
            }
            (
                RegistrationKind::CertificateSigningRequest,
                SubResource::Spec,
                Action::CreateRequest,
                RegistrationBody::Object(RegistrationObject::CertificateSigningRequest(csr)),
            ) => {
                self.audit(&event).await;
                let write = SubmitCsr {
                    cluster: cluster.clone(),
                    csr,
                    uid: uuid::Uuid::new_v4().to_string(),
                    now,
                    echo,
                    signer: ctx.signer.clone(),
                };
                match self.store.write(write).await {
                    Ok(CsrOutcome::Refused(r)) => {
                        self.metrics.refused("csr");
                        tracing::warn!(%cluster, reason = %r, "refusing a certificate signing request");
                        Ok(None)
                    }
                    Ok(CsrOutcome::NoCluster) => {
                        return self.refuse(&event, Refusal::UnregisteredCluster, &message.topic);
                    }
                    Ok(outcome) => {
                        tracing::info!(%cluster, ?outcome, "certificate signing request");
                        Ok(None)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            (
                RegistrationKind::Lease,
                SubResource::Spec,
                Action::UpdateRequest,
                RegistrationBody::Object(RegistrationObject::Lease(lease)),
            ) => {
                // Renewals are frequent and carry nothing worth keeping: not audited.
                let write = RenewLease {
                    cluster: cluster.clone(),
                    lease,
                    now,
                    echo,
                };
                match self.store.write(write).await {
                    Ok(Ok(outcome)) => {
                        tracing::debug!(%cluster, ?outcome, "lease");
                        self.reread(&cluster).await
                    }
                    Ok(Err(r)) => return self.refuse_registration(&event, r, &message.topic),
                    Err(e) => Err(e.to_string()),
                }
            }
            (
                kind,
                SubResource::Spec,
                Action::ResyncRequest,
                RegistrationBody::ResyncRequest(req),
            ) if kind != RegistrationKind::Event => {
                self.answer_registration_resync(kind, &cluster, &req).await
            }
            _ => {
                return self
                    .drop_and_audit(&event, "unexpected_type", "registration event")
                    .await;
            }
        };
        match result {
            Ok(changed) => {
                self.outbox.notify_one();
                if let Some(c) = changed {
                    ctx.clusters.notify(&c);
                }
            }
            Err(e) => tracing::error!(%cluster, error = %e, "cannot apply a registration event"),
        }
    }

    async fn reread(&self, cluster: &str) -> Result<Option<Cluster>, String> {
        let name = cluster.to_owned();
        self.store
            .run(move |s| s.get_cluster(&name))
            .await
            .map_err(|e| e.to_string())
    }

    fn refuse_registration(&self, event: &Event, r: RegistrationRefusal, topic: &str) {
        let reason = match r {
            RegistrationRefusal::UnknownCluster | RegistrationRefusal::NotJoined => {
                Refusal::UnregisteredCluster
            }
            RegistrationRefusal::NotAccepted => Refusal::NotAccepted,
        };
        self.refuse(event, reason, topic);
    }

    /// Answers `<type>.spec.resync_request` (reference §4.4): the hub's objects of that
    /// type for the cluster that are newer than the agent's, and synthetic deletes for
    /// the ids only the agent has.
    async fn answer_registration_resync(
        &self,
        kind: RegistrationKind,
        cluster: &str,
        request: &SpecResyncRequest,
    ) -> Result<Option<Cluster>, String> {
        let name = cluster.to_owned();
        let (found, csrs) = self
            .store
            .run(move |s| Ok((s.get_cluster(&name)?, s.csrs_of_cluster(&name)?)))
            .await
            .map_err(|e| e.to_string())?;
        let objects: Vec<RegistrationObject> = match (kind, &found) {
            (_, None) => Vec::new(),
            (RegistrationKind::ManagedCluster, Some(c)) => {
                let mut mc = c.managed_cluster();
                if mc.metadata.uid.is_empty() {
                    mc.metadata.uid = cluster_uid(cluster);
                }
                vec![RegistrationObject::ManagedCluster(mc)]
            }
            (RegistrationKind::CertificateSigningRequest, Some(_)) => csrs
                .into_iter()
                .map(RegistrationObject::CertificateSigningRequest)
                .collect(),
            (RegistrationKind::Lease, Some(c)) => c
                .registration
                .as_ref()
                .and_then(|r| r.lease.clone())
                .map(RegistrationObject::Lease)
                .into_iter()
                .collect(),
            (RegistrationKind::Event, _) => Vec::new(),
        };
        let held: Vec<SourceWork> = objects
            .iter()
            .map(|o| SourceWork {
                resource_id: o.metadata().uid.clone(),
                resource_version: o.metadata().resource_version.parse().unwrap_or(0),
                deleting: false,
            })
            .collect();
        let now = self.registration.clock.now();
        let mut rows = Vec::new();
        for action in spec_resync_answer(request, &held) {
            let event = match action {
                SpecResyncAction::SendSpec { resource_id }
                | SpecResyncAction::SendDeleting { resource_id } => {
                    let Some(o) = objects.iter().find(|o| o.metadata().uid == resource_id) else {
                        continue;
                    };
                    encode_registration_event(
                        &self.source_id,
                        SubResource::Spec,
                        Action::ResyncResponse,
                        o,
                        now,
                    )
                    .map_err(|e| e.to_string())?
                }
                SpecResyncAction::SyntheticDelete { resource_id, .. } => {
                    encode_synthetic_delete(&self.source_id, kind, cluster, &resource_id, now)
                }
            };
            rows.push(self.wire.ready(NewOutbox::new(cluster, None, event.into())));
        }
        let n = rows.len();
        self.store
            .write(Enqueue { events: rows, now })
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(%cluster, ?kind, answers = n, "registration resync answered");
        Ok(None)
    }
}

/// The UID of a cluster's ManagedCluster: stable per name (UUIDv5), so a REST-created
/// cluster and a re-created one answer resyncs consistently.
pub fn cluster_uid(cluster: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("workbus.io/managedcluster/{cluster}").as_bytes(),
    )
    .to_string()
}
