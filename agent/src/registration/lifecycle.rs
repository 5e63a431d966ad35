//! A joined cluster's side of its lifecycle, run inside the agent loop
//! ([`crate::runtime`]): the lease renewer, the ManagedCluster status reporter and
//! certificate rotation. It holds state and timers only and answers with messages to
//! publish; the loop does the I/O (publishing, asking the target for its facts,
//! reconnecting), so every decision here is testable without a broker.
//!
//! - After every (re)subscribe: resync requests for the ManagedCluster and the lease
//!   (the hub answers with its objects); once the hub's ManagedCluster says accepted, a
//!   renewal at once (so a reconnected cluster is Available again within one renewal)
//!   and a status report.
//! - Renewals every `leaseDurationSeconds` (from the hub's ManagedCluster) + up to 25 %,
//!   `acquireTime` = when the current connection was made ([`ConnectionClock`], also
//!   what the Will names).
//! - Status: when the hub's object changes and every [`STATUS_CHECK`]; sent only when
//!   it differs from the last one sent.
//! - Rotation: when 20–25 % of the certificate's lifetime is left, a new CSR over the
//!   cluster's own identity; the signed certificate is handed to the loop, which swaps
//!   the identity files and reconnects.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use workbus_schemas::event_type::{Action, SubResource};
use workbus_schemas::mqtt::MqttMessage;
use workbus_schemas::registration::names::{condition, message, reason};
use workbus_schemas::registration::{
    Lease, ManagedCluster, RegistrationBody, RegistrationEvent, RegistrationKind,
    RegistrationObject,
};

use super::claims::cluster_claims;
use super::csr::{CertificateRequest, certificate_request};
use super::identity_dir::StoredIdentity;
use super::lease_timing::renewal_wait;
use super::messages::{
    Outbound, cluster_status, csr_create_request, issued_certificate, lease_renewal, name_suffix,
    released_lease, reserved_claims, same_status,
};
use super::rotation::{fraction_left, until_rotation};
use crate::jitter::Jitter;
use crate::target::ClusterInfo;

/// How often the agent re-reads its cluster's facts for the status (OCM
/// `--cluster-healthcheck-period`: 1 min).
pub const STATUS_CHECK: Duration = Duration::from_secs(60);

/// How long API server checks must fail before Available=False is reported (OCM: 20 s).
pub const UNAVAILABLE_AFTER: Duration = Duration::from_secs(20);

/// How often a failing API server is checked again meanwhile (OCM: 5 s).
pub const UNAVAILABLE_RECHECK: Duration = Duration::from_secs(5);

/// The least time between two rotations.
pub const MIN_ROTATION_INTERVAL: Duration = Duration::from_secs(60);

/// How long a rotation CSR waits before it is sent again.
pub const ROTATION_RESEND: Duration = Duration::from_secs(30);

/// Outgoing-queue keys of the lifecycle's messages (one pending message per key: a newer
/// renewal replaces an older unsent one). Work keys are UIDs, so these never collide.
pub mod keys {
    /// The lease renewal.
    pub const LEASE: &str = "registration/lease";
    /// The ManagedCluster status update.
    pub const STATUS: &str = "registration/status";
    /// The rotation CSR.
    pub const CSR: &str = "registration/csr";
    /// A resync request of one kind.
    pub const RESYNC_CLUSTER: &str = "registration/resync/managedclusters";
    /// The lease resync request.
    pub const RESYNC_LEASE: &str = "registration/resync/leases";
    /// Whether `key` is one of the lifecycle's.
    pub fn is_lifecycle(key: &str) -> bool {
        key.starts_with("registration/")
    }
}

/// When the current MQTT connection was made: written before each connection attempt
/// (by the Will, see [`ConnectionClock::will`]), read by every renewal.
#[derive(Debug, Clone)]
pub struct ConnectionClock(Arc<Mutex<DateTime<Utc>>>);

impl Default for ConnectionClock {
    fn default() -> Self {
        ConnectionClock(Arc::new(Mutex::new(Utc::now())))
    }
}

impl ConnectionClock {
    /// The current connection's time.
    pub fn get(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// The transport's Will: before each connection attempt, note the time and make the
    /// released lease naming it.
    pub fn will(&self, out: Outbound) -> workbus_transport::Will {
        let clock = self.clone();
        workbus_transport::Will::new(move || {
            let at = Utc::now();
            clock.set(at);
            let lease = RegistrationObject::Lease(released_lease(&out.cluster, at));
            out.message(SubResource::Spec, Action::UpdateRequest, &lease, at)
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot build the Will; the broker will publish an empty one");
                    MqttMessage::default()
                })
        })
    }
}

/// A certificate the hub issued for a rotation request, with its key.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The private key (PEM).
    pub key_pem: String,
    /// The certificate (PEM).
    pub cert_pem: String,
}

/// What the lifecycle asks the loop to do.
#[derive(Debug)]
pub enum Step {
    /// Publish (key for the outgoing queue, message).
    Publish(&'static str, MqttMessage),
    /// Read the target's facts and call [`Lifecycle::report_status`].
    ReadClusterInfo,
    /// Store this identity and reconnect with it.
    Rotate(Rotated),
}

/// Rotation state: the certificate in use and a request in flight.
#[derive(Debug)]
struct Rotation {
    identity: StoredIdentity,
    fraction_left: f64,
    pending: Option<(String, CertificateRequest)>,
}

/// The lifecycle of one joined cluster.
#[derive(Debug)]
pub struct Lifecycle {
    out: Outbound,
    custom_claims: Vec<(String, String)>,
    clock: ConnectionClock,
    jitter: Jitter,
    lease_duration_seconds: u32,
    hub_cluster: Option<ManagedCluster>,
    hub_lease: Option<Lease>,
    last_status: Option<ManagedCluster>,
    renewed_on_connection: bool,
    connected: bool,
    next_renewal: Option<Instant>,
    next_status: Option<Instant>,
    next_rotation: Option<Instant>,
    rotation: Option<Rotation>,
    /// Since when the API server check has been failing.
    failing_since: Option<Instant>,
    /// The last rotation's outcome, reported as `ClusterCertificateRotated`.
    certificate: Option<CertificateRotated>,
}

/// The outcome of the last certificate rotation (OCM's `ClusterCertificateRotated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRotated {
    /// `True` (rotated) or `False` (the hub refused the request).
    pub status: &'static str,
    /// `ClientCertificateUpdated` or `ClientCertificateUpdateFailed`.
    pub reason: &'static str,
    /// The new validity, or why the request was refused.
    pub message: String,
}

impl Lifecycle {
    /// The lifecycle of `out.cluster`, reporting `custom_claims`, renewing with the
    /// times of `clock`, rotating `identity` when given.
    pub fn new(
        out: Outbound,
        custom_claims: Vec<(String, String)>,
        clock: ConnectionClock,
        lease_duration_seconds: u32,
        identity: Option<StoredIdentity>,
    ) -> Lifecycle {
        let mut jitter = Jitter::new(&out.cluster);
        let rotation = identity.map(|identity| Rotation {
            identity,
            fraction_left: fraction_left(jitter.unit()),
            pending: None,
        });
        Lifecycle {
            out,
            custom_claims,
            clock,
            jitter,
            lease_duration_seconds,
            hub_cluster: None,
            hub_lease: None,
            last_status: None,
            renewed_on_connection: false,
            connected: false,
            next_renewal: None,
            next_status: None,
            next_rotation: None,
            rotation,
            failing_since: None,
            certificate: None,
        }
        .with_rotation_timer(Instant::now(), SystemTime::now())
    }

    fn with_rotation_timer(mut self, now: Instant, wall: SystemTime) -> Lifecycle {
        self.schedule_rotation(now, wall);
        self
    }

    fn schedule_rotation(&mut self, now: Instant, wall: SystemTime) {
        self.next_rotation = self.rotation.as_ref().map(|r| {
            now + until_rotation(
                wall,
                r.identity.not_before,
                r.identity.not_after,
                r.fraction_left,
            )
        });
    }

    /// The cluster's ManagedCluster as the hub last sent it.
    pub fn hub_cluster(&self) -> Option<&ManagedCluster> {
        self.hub_cluster.as_ref()
    }

    /// The earliest timer.
    pub fn next_due(&self) -> Option<Instant> {
        [self.next_renewal, self.next_status, self.next_rotation]
            .into_iter()
            .flatten()
            .min()
    }

    fn accepted(&self) -> bool {
        self.hub_cluster
            .as_ref()
            .is_some_and(ManagedCluster::is_accepted)
    }

    fn publish(
        &self,
        key: &'static str,
        object: RegistrationObject,
        sub: SubResource,
        action: Action,
        now: DateTime<Utc>,
    ) -> Option<Step> {
        match self.out.message(sub, action, &object, now) {
            Ok(m) => Some(Step::Publish(key, m)),
            Err(e) => {
                tracing::error!(cluster = %self.out.cluster, error = %e, "cannot build a registration message");
                None
            }
        }
    }

    /// After every (re)subscribe: resync both kinds (the answers bring the hub's objects
    /// and so the renewal); rotation requests in flight are sent again.
    pub fn on_subscribed(&mut self, now: Instant, wall: DateTime<Utc>) -> Vec<Step> {
        self.connected = true;
        self.renewed_on_connection = false;
        let mut steps = Vec::new();
        let cluster: Vec<(&str, &str)> = self
            .hub_cluster
            .iter()
            .map(|c| {
                (
                    c.metadata.uid.as_str(),
                    c.metadata.resource_version.as_str(),
                )
            })
            .collect();
        let lease: Vec<(&str, &str)> = self
            .hub_lease
            .iter()
            .map(|l| {
                (
                    l.metadata.uid.as_str(),
                    l.metadata.resource_version.as_str(),
                )
            })
            .collect();
        let mut requests = Vec::new();
        for (key, kind, held) in [
            (
                keys::RESYNC_CLUSTER,
                RegistrationKind::ManagedCluster,
                cluster,
            ),
            (keys::RESYNC_LEASE, RegistrationKind::Lease, lease),
        ] {
            requests.push((key, self.out.resync_request(kind, held, wall)));
        }
        for (key, request) in requests {
            match request {
                Ok(m) => steps.push(Step::Publish(key, m)),
                Err(e) => {
                    tracing::error!(cluster = %self.out.cluster, error = %e, "cannot build a resync request")
                }
            }
        }
        // Known accepted from before the reconnect: renew now rather than after the
        // resync answer.
        if self.accepted() {
            steps.extend(self.renew(now, wall));
        }
        if let Some(step) = self.rotation_request(wall) {
            steps.push(step);
        }
        steps
    }

    /// The connection was lost: nothing is renewed until the next subscribe.
    pub fn on_disconnected(&mut self) {
        self.connected = false;
        self.next_renewal = None;
    }

    /// A registration event from the hub for this cluster.
    pub fn on_event(
        &mut self,
        event: RegistrationEvent,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<Step> {
        if event.cluster_name != self.out.cluster || event.sub_resource != SubResource::Spec {
            return Vec::new();
        }
        let RegistrationBody::Object(object) = event.body else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        match object {
            RegistrationObject::ManagedCluster(c) => {
                let lease = u32::try_from(c.spec.effective_lease_duration_seconds()).unwrap_or(60);
                let changed_lease = lease != self.lease_duration_seconds;
                self.lease_duration_seconds = lease;
                let was_accepted = self.accepted();
                self.hub_cluster = Some(c);
                if self.accepted()
                    && self.connected
                    && (!self.renewed_on_connection || changed_lease || !was_accepted)
                {
                    steps.extend(self.renew(now, wall));
                }
                if self.accepted() {
                    // The hub's object changed (or arrived): compare our report with it.
                    self.next_status = Some(now);
                } else if was_accepted {
                    tracing::warn!(cluster = %self.out.cluster, "the hub no longer accepts this cluster");
                    self.next_renewal = None;
                }
            }
            RegistrationObject::Lease(l) if !l.is_released() => {
                self.hub_lease = Some(l);
            }
            RegistrationObject::CertificateSigningRequest(csr) => {
                let Some(rotation) = &mut self.rotation else {
                    return steps;
                };
                let Some((name, request)) = &rotation.pending else {
                    return steps;
                };
                match issued_certificate(&csr, name) {
                    Some(Ok(cert_pem)) => {
                        let rotated = Rotated {
                            key_pem: request.key_pem.clone(),
                            cert_pem,
                        };
                        rotation.pending = None;
                        self.next_rotation = None;
                        steps.push(Step::Rotate(rotated));
                    }
                    Some(Err(why)) => {
                        tracing::warn!(cluster = %self.out.cluster, reason = %why, "the hub refused the rotation request; trying again later");
                        rotation.pending = None;
                        self.next_rotation = Some(now + ROTATION_RESEND);
                        self.certificate = Some(CertificateRotated {
                            status: "False",
                            reason: reason::CLIENT_CERTIFICATE_UPDATE_FAILED,
                            message: why,
                        });
                        self.next_status = Some(now);
                    }
                    None => {}
                }
            }
            _ => {}
        }
        steps
    }

    fn renew(&mut self, now: Instant, wall: DateTime<Utc>) -> Option<Step> {
        if !self.connected || !self.accepted() {
            return None;
        }
        self.renewed_on_connection = true;
        self.next_renewal =
            Some(now + renewal_wait(self.lease_duration_seconds, self.jitter.unit()));
        let lease = lease_renewal(
            &self.out.cluster,
            self.hub_lease.as_ref(),
            self.clock.get(),
            self.lease_duration_seconds,
            wall,
        );
        self.publish(
            keys::LEASE,
            RegistrationObject::Lease(lease),
            SubResource::Spec,
            Action::UpdateRequest,
            wall,
        )
    }

    /// Timers that are due at `now`.
    pub fn on_timer(&mut self, now: Instant, wall: DateTime<Utc>) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.next_renewal.is_some_and(|at| at <= now) {
            self.next_renewal = None;
            steps.extend(self.renew(now, wall));
        }
        if self.next_status.is_some_and(|at| at <= now) {
            self.next_status = Some(now + STATUS_CHECK);
            if self.accepted() && self.connected {
                steps.push(Step::ReadClusterInfo);
            }
        }
        if self.next_rotation.is_some_and(|at| at <= now) {
            self.next_rotation = Some(now + ROTATION_RESEND);
            if let Some(r) = &mut self.rotation
                && r.pending.is_none()
            {
                match certificate_request(&self.out.cluster) {
                    Ok(req) => {
                        let name = format!(
                            "{}-{}",
                            self.out.cluster,
                            name_suffix(super::join::random_u64(&self.out.cluster))
                        );
                        tracing::info!(cluster = %self.out.cluster, csr = %name, serial = %r.identity.serial, "client certificate due for rotation; asking the hub for a new one");
                        r.pending = Some((name, req));
                    }
                    Err(e) => {
                        tracing::error!(cluster = %self.out.cluster, error = %e, "cannot make a rotation request")
                    }
                }
            }
            if self.connected {
                steps.extend(self.rotation_request(wall));
            }
        }
        steps
    }

    fn rotation_request(&self, wall: DateTime<Utc>) -> Option<Step> {
        let (name, req) = self.rotation.as_ref()?.pending.as_ref()?;
        let suffix = name
            .strip_prefix(&format!("{}-", self.out.cluster))
            .unwrap_or(name);
        let csr = csr_create_request(&self.out.cluster, suffix, &req.csr_pem);
        self.publish(
            keys::CSR,
            RegistrationObject::CertificateSigningRequest(csr),
            SubResource::Spec,
            Action::CreateRequest,
            wall,
        )
    }

    /// The status update for the target's `info`, if it says something new.
    pub fn report_status(&mut self, info: &ClusterInfo, wall: DateTime<Utc>) -> Option<Step> {
        self.report_status_at(info, Instant::now(), wall)
    }

    /// [`Lifecycle::report_status`] at `now`: an API server check that fails is reported
    /// (Available=False) only once failures have lasted [`UNAVAILABLE_AFTER`] (OCM's
    /// debounce), rechecked every [`UNAVAILABLE_RECHECK`] meanwhile.
    pub fn report_status_at(
        &mut self,
        info: &ClusterInfo,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<Step> {
        let mut info = std::borrow::Cow::Borrowed(info);
        match (&info.api_server, self.failing_since) {
            (Ok(()), _) => self.failing_since = None,
            (Err(_), None) => {
                self.failing_since = Some(now);
                self.next_status = Some(now + UNAVAILABLE_RECHECK);
            }
            (Err(_), Some(since)) if now.duration_since(since) < UNAVAILABLE_AFTER => {
                self.next_status = Some(now + UNAVAILABLE_RECHECK);
            }
            (Err(_), Some(_)) => {}
        }
        if info.api_server.is_err()
            && self
                .failing_since
                .is_some_and(|since| now.duration_since(since) < UNAVAILABLE_AFTER)
        {
            // Not yet: report as before (the last Available, else healthy).
            let last_ok = self
                .last_status
                .as_ref()
                .is_none_or(|l| l.condition_status(condition::AVAILABLE) != Some("False"));
            if last_ok {
                info.to_mut().api_server = Ok(());
            }
        }
        let info = info.as_ref();
        let hub = self.hub_cluster.as_ref()?;
        let (claims, truncated) = cluster_claims(&reserved_claims(info), &self.custom_claims);
        if truncated {
            tracing::warn!(cluster = %self.out.cluster, "more than 20 custom cluster claims; the rest are not reported (CustomClusterClaimsTruncated)");
        }
        let status = cluster_status(hub, info, &claims, self.certificate.as_ref(), wall)?;
        // Only what changed since the last report (a hub that rewrites something must
        // not make the agent answer every echo).
        if self
            .last_status
            .as_ref()
            .is_some_and(|last| same_status(last, &status))
        {
            return None;
        }
        self.last_status = Some(status.clone());
        self.publish(
            keys::STATUS,
            RegistrationObject::ManagedCluster(status),
            SubResource::Status,
            Action::UpdateRequest,
            wall,
        )
    }

    /// Re-reads the target's facts at the next timer (now).
    pub fn status_now(&mut self, now: Instant) {
        self.next_status = Some(now);
    }

    /// The rotated certificate is in use now: rotation restarts from it, and not sooner
    /// than [`MIN_ROTATION_INTERVAL`] (a certificate whose backdated `notBefore` makes
    /// it look old at once must not make the agent rotate in a loop).
    pub fn rotated(&mut self, identity: StoredIdentity, now: Instant, wall: SystemTime) {
        let fraction = fraction_left(self.jitter.unit());
        self.certificate = Some(CertificateRotated {
            status: "True",
            reason: reason::CLIENT_CERTIFICATE_UPDATED,
            message: message::certificate_rotated(
                DateTime::<Utc>::from(identity.not_before),
                DateTime::<Utc>::from(identity.not_after),
            ),
        });
        self.next_status = Some(now);
        self.rotation = Some(Rotation {
            identity,
            fraction_left: fraction,
            pending: None,
        });
        self.schedule_rotation(now, wall);
        self.next_rotation = self
            .next_rotation
            .map(|at| at.max(now + MIN_ROTATION_INTERVAL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workbus_schemas::mqtt::{self, Encoding};
    use workbus_schemas::registration::names::{condition, csr_condition, message, reason};
    use workbus_schemas::registration::{CsrCondition, MicroTime, decode_registration_event};
    use workbus_schemas::topics::Topics;
    use workbus_schemas::work::Time;
    use workbus_schemas::work::status::{Condition, set_condition};

    fn out() -> Outbound {
        Outbound {
            cluster: "c1".into(),
            topics: Topics::for_agent("hub", "c1").unwrap(),
            encoding: Encoding::Binary,
        }
    }

    fn hub_event(object: RegistrationObject) -> RegistrationEvent {
        RegistrationEvent {
            kind: object.kind(),
            sub_resource: SubResource::Spec,
            action: Action::UpdateRequest,
            source: "hub".into(),
            cluster_name: "c1".into(),
            resource_id: None,
            resource_version: None,
            body: RegistrationBody::Object(object),
        }
    }

    fn accepted(lease_seconds: i32) -> RegistrationObject {
        let mut c = ManagedCluster::named("c1");
        c.metadata.uid = "u1".into();
        c.metadata.resource_version = "2".into();
        c.spec.hub_accepts_client = true;
        c.spec.lease_duration_seconds = lease_seconds;
        set_condition(
            &mut c.status.conditions,
            Condition::new(
                condition::HUB_ACCEPTED,
                "True",
                reason::HUB_CLUSTER_ADMIN_ACCEPTED,
                message::HUB_CLUSTER_ADMIN_ACCEPTED,
                Time::now(),
            ),
            Time::now(),
        );
        RegistrationObject::ManagedCluster(c)
    }

    fn published(steps: &[Step]) -> Vec<(&'static str, RegistrationEvent)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Publish(k, m) => Some((
                    *k,
                    decode_registration_event(&mqtt::decode(m).unwrap()).unwrap(),
                )),
                _ => None,
            })
            .collect()
    }

    fn lease_of(e: &RegistrationEvent) -> &Lease {
        match &e.body {
            RegistrationBody::Object(RegistrationObject::Lease(l)) => l,
            other => panic!("not a lease: {other:?}"),
        }
    }

    /// §8 items 11 and 12: nothing is renewed or reported before the hub accepted; then
    /// a renewal at once (acquireTime = the connection's time), status, and renewals
    /// every lease duration + up to 25 %.
    #[test]
    fn renews_and_reports_only_once_accepted() {
        let clock = ConnectionClock::default();
        let mut l = Lifecycle::new(
            out(),
            vec![("region".into(), "eu".into())],
            clock.clone(),
            60,
            None,
        );
        let t0 = Instant::now();
        let steps = l.on_subscribed(t0, Utc::now());
        let kinds: Vec<_> = published(&steps)
            .into_iter()
            .map(|(k, e)| (k, e.kind, e.action))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    keys::RESYNC_CLUSTER,
                    RegistrationKind::ManagedCluster,
                    Action::ResyncRequest
                ),
                (
                    keys::RESYNC_LEASE,
                    RegistrationKind::Lease,
                    Action::ResyncRequest
                ),
            ]
        );
        // Not accepted yet: the hub's object alone renews nothing.
        let pending = RegistrationObject::ManagedCluster(ManagedCluster::named("c1"));
        assert!(l.on_event(hub_event(pending), t0, Utc::now()).is_empty());
        assert_eq!(l.next_due(), None);

        let steps = l.on_event(hub_event(accepted(10)), t0, Utc::now());
        let sent = published(&steps);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, keys::LEASE);
        let lease = lease_of(&sent[0].1);
        assert_eq!(lease.spec.acquire_time, Some(MicroTime::new(clock.get())));
        assert_eq!(lease.spec.lease_duration_seconds, Some(10));
        assert!(!lease.is_released());

        // Status is due now; the loop reads the target and gets one update, then none
        // while nothing changes.
        assert!(matches!(
            l.on_timer(t0, Utc::now()).as_slice(),
            [Step::ReadClusterInfo]
        ));
        let info = ClusterInfo::simulated("id-1");
        let status = l.report_status(&info, Utc::now()).expect("first report");
        let (key, e) = published(std::slice::from_ref(&status)).remove(0);
        assert_eq!(
            (key, e.sub_resource, e.action),
            (keys::STATUS, SubResource::Status, Action::UpdateRequest)
        );
        let RegistrationBody::Object(RegistrationObject::ManagedCluster(c)) = e.body else {
            panic!()
        };
        assert!(c.is_joined());
        assert_eq!(
            c.status.cluster_claims.last().map(|c| c.name.as_str()),
            Some("region")
        );
        assert!(l.report_status(&info, Utc::now()).is_none(), "unchanged");

        // The next renewal: 10–12.5 s later.
        let due = l.next_due().unwrap();
        assert!(due >= t0 + Duration::from_secs(10) && due <= t0 + Duration::from_millis(12_500));
        let renewal = l.next_renewal.unwrap();
        let sent = published(&l.on_timer(renewal, Utc::now()));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, keys::LEASE);

        // Disconnected: no renewals until the next subscribe, which renews at once.
        l.on_disconnected();
        assert_eq!(l.next_renewal, None);
        let steps = l.on_subscribed(renewal, Utc::now());
        assert!(published(&steps).iter().any(|(k, _)| *k == keys::LEASE));
    }

    /// §8 item 13: Available=False only after the API server checks failed for 20 s.
    #[test]
    fn unavailable_only_after_twenty_seconds_of_failures() {
        let mut l = Lifecycle::new(out(), Vec::new(), ConnectionClock::default(), 60, None);
        let t0 = Instant::now();
        l.on_subscribed(t0, Utc::now());
        l.on_event(hub_event(accepted(60)), t0, Utc::now());
        let good = ClusterInfo::simulated("id");
        let mut bad = good.clone();
        bad.api_server = Err("status code: 500".into());
        let available_of = |step: Option<Step>| -> Option<String> {
            let e = published(&[step?]).remove(0).1;
            let RegistrationBody::Object(RegistrationObject::ManagedCluster(c)) = e.body else {
                panic!()
            };
            c.condition_status(condition::AVAILABLE).map(str::to_string)
        };
        assert_eq!(
            available_of(l.report_status_at(&good, t0, Utc::now())).as_deref(),
            Some("True")
        );
        // Failing for less than 20 s: nothing new to report, rechecked in 5 s.
        assert_eq!(
            l.report_status_at(&bad, t0 + Duration::from_secs(1), Utc::now())
                .map(|_| ()),
            None
        );
        assert_eq!(l.next_status, Some(t0 + Duration::from_secs(6)));
        assert!(
            l.report_status_at(&bad, t0 + Duration::from_secs(20), Utc::now())
                .is_none()
        );
        // 20 s of failures: False.
        let s = l.report_status_at(&bad, t0 + Duration::from_secs(21), Utc::now());
        assert_eq!(available_of(s).as_deref(), Some("False"));
        // Healthy again: True at once.
        let s = l.report_status_at(&good, t0 + Duration::from_secs(22), Utc::now());
        assert_eq!(available_of(s).as_deref(), Some("True"));
    }

    #[test]
    fn the_will_releases_the_lease_of_its_connection() {
        let clock = ConnectionClock::default();
        let will = clock.will(out());
        let first = will.message();
        let e = decode_registration_event(&mqtt::decode(&first).unwrap()).unwrap();
        assert_eq!(
            (e.kind, e.action.clone()),
            (RegistrationKind::Lease, Action::UpdateRequest)
        );
        let lease = lease_of(&e).clone();
        assert!(lease.is_released());
        assert_eq!(lease.spec.acquire_time, Some(MicroTime::new(clock.get())));
        assert_eq!(first.topic, "sources/hub/consumers/c1/agentevents");
    }

    /// §8 items 17 and 18 (agent side): a certificate past its rotation point gets a
    /// CSR over the cluster's identity; the hub's signed answer becomes a Rotate step.
    #[test]
    fn rotation_asks_for_a_new_certificate_and_hands_it_over() {
        let now = SystemTime::now();
        let identity = StoredIdentity {
            not_before: now - Duration::from_secs(81 * 86_400),
            not_after: now + Duration::from_secs(19 * 86_400),
            serial: "01".into(),
        };
        let mut l = Lifecycle::new(
            out(),
            Vec::new(),
            ConnectionClock::default(),
            60,
            Some(identity.clone()),
        );
        let t0 = Instant::now();
        l.on_subscribed(t0, Utc::now());
        let steps = l.on_timer(t0 + Duration::from_millis(1), Utc::now());
        let sent = published(&steps);
        assert_eq!(sent.len(), 1, "{steps:?}");
        assert_eq!(sent[0].0, keys::CSR);
        let RegistrationBody::Object(RegistrationObject::CertificateSigningRequest(mut csr)) =
            sent[0].1.body.clone()
        else {
            panic!()
        };
        assert!(csr.metadata.name.starts_with("c1-"));
        // Sent again after a reconnect while pending.
        assert!(
            published(&l.on_subscribed(t0, Utc::now()))
                .iter()
                .any(|(k, _)| *k == keys::CSR)
        );
        csr.status.conditions.push(CsrCondition {
            type_: csr_condition::APPROVED.into(),
            status: "True".into(),
            ..Default::default()
        });
        csr.status.certificate = b"-----BEGIN CERTIFICATE-----".to_vec();
        let steps = l.on_event(
            hub_event(RegistrationObject::CertificateSigningRequest(csr)),
            t0,
            Utc::now(),
        );
        let [Step::Rotate(rotated)] = steps.as_slice() else {
            panic!("{steps:?}")
        };
        assert!(rotated.key_pem.contains("PRIVATE KEY"));
        // A fresh certificate is not due.
        let fresh = StoredIdentity {
            not_before: now,
            not_after: now + Duration::from_secs(30 * 86_400),
            serial: "02".into(),
        };
        l.rotated(fresh, t0, now);
        assert!(l.next_rotation.unwrap() > t0 + Duration::from_secs(20 * 86_400));
    }

    /// §8 item 16: a request the hub does not take (it holds 10 pending ones already)
    /// is reported as `ClusterCertificateRotated=False/ClientCertificateUpdateFailed`;
    /// a rotation that succeeds as `True/ClientCertificateUpdated` with OCM's text.
    #[test]
    fn rotation_outcomes_are_reported_as_cluster_certificate_rotated() {
        let now = SystemTime::now();
        let old = StoredIdentity {
            not_before: now - Duration::from_secs(81 * 86_400),
            not_after: now + Duration::from_secs(19 * 86_400),
            serial: "01".into(),
        };
        let mut l = Lifecycle::new(out(), Vec::new(), ConnectionClock::default(), 60, Some(old));
        let t0 = Instant::now();
        l.on_subscribed(t0, Utc::now());
        l.on_event(hub_event(accepted(60)), t0, Utc::now());
        let info = ClusterInfo::simulated("id");
        let rotated_of = |step: Option<Step>| -> Option<(String, String, String)> {
            let e = published(&[step?]).remove(0).1;
            let RegistrationBody::Object(RegistrationObject::ManagedCluster(c)) = e.body else {
                panic!()
            };
            let cond = c
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::CERTIFICATE_ROTATED)?;
            Some((
                cond.status.clone(),
                cond.reason.clone(),
                cond.message.clone(),
            ))
        };
        assert_eq!(
            rotated_of(l.report_status_at(&info, t0, Utc::now())),
            None,
            "no rotation yet: no condition"
        );
        let steps = l.on_timer(t0 + Duration::from_millis(1), Utc::now());
        let RegistrationBody::Object(RegistrationObject::CertificateSigningRequest(mut csr)) =
            published(&steps)
                .into_iter()
                .find(|(k, _)| *k == keys::CSR)
                .unwrap()
                .1
                .body
        else {
            panic!()
        };
        // The hub's refusal comes back as a denied request.
        csr.status.conditions.push(CsrCondition {
            type_: csr_condition::DENIED.into(),
            status: "True".into(),
            reason: reason::CSR_REFUSED_BY_HUB.into(),
            message: "too many".into(),
            ..Default::default()
        });
        let t1 = t0 + Duration::from_secs(1);
        assert!(
            l.on_event(
                hub_event(RegistrationObject::CertificateSigningRequest(csr)),
                t1,
                Utc::now()
            )
            .is_empty()
        );
        assert_eq!(l.next_status, Some(t1), "reported at once");
        assert_eq!(
            rotated_of(l.report_status_at(&info, t1, Utc::now())),
            Some((
                "False".into(),
                reason::CLIENT_CERTIFICATE_UPDATE_FAILED.into(),
                format!("{}: too many", reason::CSR_REFUSED_BY_HUB)
            ))
        );
        // A later rotation succeeds.
        let from = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let fresh = StoredIdentity {
            not_before: from.into(),
            not_after: (from + chrono::Duration::days(30)).into(),
            serial: "02".into(),
        };
        l.rotated(fresh, t1, now);
        assert_eq!(
            rotated_of(l.report_status_at(&info, t1, Utc::now())),
            Some((
                "True".into(),
                reason::CLIENT_CERTIFICATE_UPDATED.into(),
                "client certificate rotated starting from 2027-01-15 08:00:00 +0000 UTC to \
                 2027-02-14 08:00:00 +0000 UTC"
                    .into()
            ))
        );
    }
}
