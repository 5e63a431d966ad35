//! The registration rules (design §4): what a join request, an accept, a deny, an agent's
//! status update and a lease renewal do to a cluster's [`Registration`], as pure
//! functions. Every change bumps the object's `resourceVersion` (a decimal counter, as
//! Kubernetes writes it), which is what the hub's echo carries.
//!
//! Agent writes are applied whatever `resourceVersion` they carry: MQTT has no reply
//! channel for a conflict, so the hub applies and echoes the authoritative object
//! (reference §5 "Errors") and the agent converges on the echo.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use workbus_schemas::registration::names::{
    API_RESOURCE_CLEANUP_FINALIZER, AUTOMATICALLY_ACCEPTED_ON_ANNOTATION, CLUSTERSET_LABEL,
    DEFAULT_CLUSTERSET, DEFAULT_LEASE_DURATION_SECONDS, LEASE_HOLDER, condition, message, reason,
};
use workbus_schemas::registration::{ClusterClaim, Lease, ManagedCluster};
use workbus_schemas::work::status::{Condition, condition_status, set_condition};
use workbus_schemas::work::{ObjectMeta, Time};

use super::availability::{Trigger, apply_health};
use crate::store::registration::Registration;

/// Most labels a joining cluster may ask for.
pub const MAX_JOIN_LABELS: usize = 64;
/// Most API server client configs kept.
pub const MAX_CLIENT_CONFIGS: usize = 8;
/// Most cluster claims kept (OCM: 4 reserved + 20 custom by default).
pub const MAX_CLAIMS: usize = 64;
/// Most capacity / allocatable entries kept.
pub const MAX_RESOURCES: usize = 32;
/// Most agent-written conditions kept.
pub const MAX_AGENT_CONDITIONS: usize = 16;

/// Why an agent's registration write is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefusal {
    /// The cluster is unknown to the hub (it has not sent its create request).
    #[error("the cluster is not registered")]
    UnknownCluster,
    /// The cluster was created over REST: it does not register over the bus.
    #[error("the cluster was created over REST and does not register")]
    NotJoined,
    /// The hub has not accepted the cluster (or denied it).
    #[error("the cluster is not accepted")]
    NotAccepted,
}

/// Bumps a `resourceVersion` counter (an unparsable one restarts at 1).
pub fn bump(meta: &mut ObjectMeta) {
    let next = meta.resource_version.parse::<u64>().map_or(1, |v| v + 1);
    meta.resource_version = next.to_string();
}

/// The labels and registration of a cluster that asks to join with `request`: not
/// accepted, lease duration as asked (else 60), in the `default` set unless it names
/// one, with the UID the hub chose.
pub fn new_registration(
    request: &ManagedCluster,
    uid: &str,
    now: DateTime<Utc>,
) -> (BTreeMap<String, String>, Registration) {
    let mut labels: BTreeMap<String, String> = request
        .metadata
        .labels
        .iter()
        .take(MAX_JOIN_LABELS)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if labels.get(CLUSTERSET_LABEL).is_none_or(String::is_empty) {
        labels.insert(CLUSTERSET_LABEL.to_owned(), DEFAULT_CLUSTERSET.to_owned());
    }
    let mut mc = ManagedCluster::named(&request.metadata.name);
    mc.metadata.uid = uid.to_owned();
    mc.metadata.resource_version = "1".to_owned();
    mc.metadata.creation_timestamp = Some(Time::new(now));
    mc.spec.lease_duration_seconds = if request.spec.lease_duration_seconds > 0 {
        request.spec.lease_duration_seconds
    } else {
        DEFAULT_LEASE_DURATION_SECONDS
    };
    mc.spec.managed_cluster_client_configs = request
        .spec
        .managed_cluster_client_configs
        .iter()
        .take(MAX_CLIENT_CONFIGS)
        .cloned()
        .collect();
    let registration = Registration {
        managed_cluster: mc,
        lease: None,
        denied: false,
        join_token: None,
    };
    (labels, registration)
}

/// Accepts the cluster: `hubAcceptsClient`, `HubAcceptedManagedCluster=True`, the
/// cleanup finalizer, the lease (created held and renewed `now`, with `lease_uid`) if it
/// has none; `auto` marks an auto-accept policy's acceptance. Returns whether anything
/// changed (accepting an accepted cluster changes nothing).
pub fn accept(reg: &mut Registration, lease_uid: &str, now: DateTime<Utc>, auto: bool) -> bool {
    let at = Time::new(now);
    let mc = &mut reg.managed_cluster;
    let mut changed = !mc.spec.hub_accepts_client || reg.denied;
    mc.spec.hub_accepts_client = true;
    reg.denied = false;
    changed |= mc.metadata.add_finalizer(API_RESOURCE_CLEANUP_FINALIZER);
    if auto
        && mc
            .metadata
            .annotation(AUTOMATICALLY_ACCEPTED_ON_ANNOTATION)
            .is_none()
    {
        mc.metadata.annotations.insert(
            AUTOMATICALLY_ACCEPTED_ON_ANNOTATION.to_owned(),
            at.to_rfc3339(),
        );
        changed = true;
    }
    changed |= set_condition(
        &mut mc.status.conditions,
        Condition::new(
            condition::HUB_ACCEPTED,
            condition_status::TRUE,
            reason::HUB_CLUSTER_ADMIN_ACCEPTED,
            message::HUB_CLUSTER_ADMIN_ACCEPTED,
            at,
        ),
        at,
    );
    if reg.lease.is_none() {
        let mut lease = Lease::for_cluster(&mc.metadata.name, now);
        lease.metadata.uid = lease_uid.to_owned();
        lease.metadata.resource_version = "1".to_owned();
        reg.lease = Some(lease);
        changed = true;
    }
    if changed {
        apply_health(now, mc, reg.lease.as_ref(), Trigger::Tick);
        bump(&mut mc.metadata);
    }
    changed
}

/// Denies the cluster: `hubAcceptsClient=false` and, if it had been accepted,
/// `HubAcceptedManagedCluster=False/HubClusterAdminDenied` (OCM sets it only after
/// True). Its identities are refused from now on. Returns whether anything changed.
pub fn deny(reg: &mut Registration, now: DateTime<Utc>) -> bool {
    let at = Time::new(now);
    let mc = &mut reg.managed_cluster;
    let mut changed = mc.spec.hub_accepts_client || !reg.denied;
    mc.spec.hub_accepts_client = false;
    reg.denied = true;
    if mc.condition(condition::HUB_ACCEPTED).is_some() {
        changed |= set_condition(
            &mut mc.status.conditions,
            Condition::new(
                condition::HUB_ACCEPTED,
                condition_status::FALSE,
                reason::HUB_CLUSTER_ADMIN_DENIED,
                message::HUB_CLUSTER_ADMIN_DENIED,
                at,
            ),
            at,
        );
    }
    if changed {
        bump(&mut mc.metadata);
    }
    changed
}

/// Applies an agent's `status.update_request`: the agent-written conditions (not the
/// hub's `HubAcceptedManagedCluster`/`ClockSynced`; `ManagedClusterJoined` only once
/// accepted), claims, capacity, allocatable and version, each bounded. Only for an
/// accepted cluster. Returns whether anything changed.
pub fn apply_agent_status(
    reg: &mut Registration,
    incoming: &ManagedCluster,
    now: DateTime<Utc>,
) -> Result<bool, RegistrationRefusal> {
    if !reg.is_accepted() {
        return Err(RegistrationRefusal::NotAccepted);
    }
    let at = Time::new(now);
    let lease = reg.lease.clone();
    let mc = &mut reg.managed_cluster;
    let before = mc.status.clone();
    let taints_before = mc.spec.taints.clone();
    let hub_owned = [condition::HUB_ACCEPTED, condition::CLOCK_SYNCED];
    for c in incoming
        .status
        .conditions
        .iter()
        .filter(|c| !hub_owned.contains(&c.type_.as_str()))
        .take(MAX_AGENT_CONDITIONS)
    {
        let mut c = c.clone();
        c.extra.clear();
        set_condition(&mut mc.status.conditions, c, at);
    }
    let claims: Vec<ClusterClaim> = incoming
        .status
        .cluster_claims
        .iter()
        .filter(|c| (1..=253).contains(&c.name.len()) && (1..=1024).contains(&c.value.len()))
        .take(MAX_CLAIMS)
        .cloned()
        .collect();
    mc.status.cluster_claims = claims;
    mc.status.capacity = bounded(&incoming.status.capacity);
    mc.status.allocatable = bounded(&incoming.status.allocatable);
    mc.status.version = incoming.status.version.clone();
    mc.status.version.kubernetes.truncate(256);
    // Taints follow the agent's Available at once.
    apply_health(now, mc, lease.as_ref(), Trigger::Tick);
    let changed = mc.status != before || mc.spec.taints != taints_before;
    if changed {
        bump(&mut mc.metadata);
    }
    Ok(changed)
}

fn bounded(m: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, serde_json::Value> {
    m.iter()
        .filter(|(k, v)| k.len() <= 253 && v.as_str().is_some_and(|s| s.len() <= 64))
        .take(MAX_RESOURCES)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What a received lease did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// A renewal: `renewTime` and `acquireTime` taken.
    Renewed,
    /// A released lease (Will) of the current connection: the cluster is Unknown now.
    Released,
    /// A released lease from a connection older than the latest renewal's: ignored.
    StaleWill,
}

/// Applies a received lease (renewal or Will) to an accepted cluster: renewals are
/// idempotent and taken whatever their `resourceVersion`; a released lease counts only
/// when its `acquireTime` is not older than the stored one (design §5). Then health.
pub fn apply_lease(
    reg: &mut Registration,
    incoming: &Lease,
    now: DateTime<Utc>,
) -> Result<(LeaseOutcome, bool), RegistrationRefusal> {
    if !reg.is_accepted() {
        return Err(RegistrationRefusal::NotAccepted);
    }
    let cluster = reg.managed_cluster.metadata.name.clone();
    let lease = reg
        .lease
        .get_or_insert_with(|| Lease::for_cluster(&cluster, now));
    let stored_acquired = lease.spec.acquire_time;
    let outcome = if incoming.is_released() {
        match (incoming.spec.acquire_time, stored_acquired) {
            (Some(will), Some(current)) if will < current => LeaseOutcome::StaleWill,
            // A Will that names no connection cannot be ordered: it is taken.
            _ => LeaseOutcome::Released,
        }
    } else {
        LeaseOutcome::Renewed
    };
    let (trigger, mut changed) = match outcome {
        LeaseOutcome::StaleWill => return Ok((outcome, false)),
        LeaseOutcome::Released => {
            let changed = lease.spec.holder_identity.as_deref() != Some("");
            lease.spec.holder_identity = Some(String::new());
            (Trigger::Released, changed)
        }
        LeaseOutcome::Renewed => {
            lease.spec.holder_identity = Some(LEASE_HOLDER.to_owned());
            lease.spec.renew_time = incoming.spec.renew_time.or(lease.spec.renew_time);
            if incoming.spec.acquire_time.is_some() {
                lease.spec.acquire_time = incoming.spec.acquire_time;
            }
            (Trigger::Renewal, true)
        }
    };
    bump(&mut lease.metadata);
    let lease = reg.lease.clone();
    if apply_health(now, &mut reg.managed_cluster, lease.as_ref(), trigger) {
        bump(&mut reg.managed_cluster.metadata);
        changed = true;
    }
    Ok((outcome, changed))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use workbus_schemas::registration::MicroTime;
    use workbus_schemas::registration::names::{TAINT_UNREACHABLE, condition};

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn joined() -> Registration {
        let mut req = ManagedCluster::named("c1");
        req.metadata.labels.insert("env".into(), "edge".into());
        let (labels, reg) = new_registration(&req, "uid-1", t(0));
        assert_eq!(labels.get(CLUSTERSET_LABEL).unwrap(), "default");
        assert_eq!(labels.get("env").unwrap(), "edge");
        reg
    }

    fn renewal(at: i64, acquired: i64) -> Lease {
        let mut l = Lease::for_cluster("c1", t(at));
        l.spec.acquire_time = Some(MicroTime::new(t(acquired)));
        l
    }

    #[test]
    fn a_join_is_not_accepted_and_has_lease_60() {
        let reg = joined();
        assert!(!reg.is_accepted());
        assert_eq!(reg.managed_cluster.spec.lease_duration_seconds, 60);
        assert_eq!(reg.managed_cluster.metadata.resource_version, "1");
        assert!(reg.lease.is_none());
        let mut req = ManagedCluster::named("c1");
        req.spec.lease_duration_seconds = 5;
        req.metadata
            .labels
            .insert(CLUSTERSET_LABEL.into(), "blue".into());
        let (labels, reg) = new_registration(&req, "u", t(0));
        assert_eq!(labels.get(CLUSTERSET_LABEL).unwrap(), "blue");
        assert_eq!(reg.managed_cluster.spec.lease_duration_seconds, 5);
    }

    #[test]
    fn accept_creates_lease_and_condition_once() {
        let mut reg = joined();
        assert!(accept(&mut reg, "lease-uid", t(1), false));
        let mc = &reg.managed_cluster;
        assert!(reg.is_accepted() && mc.is_accepted());
        let c = mc.condition(condition::HUB_ACCEPTED).unwrap();
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            ("HubClusterAdminAccepted", "Accepted by hub cluster admin")
        );
        assert!(mc.metadata.has_finalizer(API_RESOURCE_CLEANUP_FINALIZER));
        let lease = reg.lease.as_ref().unwrap();
        assert_eq!(lease.metadata.name, "managed-cluster-lease");
        assert_eq!(
            lease.spec.holder_identity.as_deref(),
            Some("managed-cluster-lease")
        );
        assert_eq!(mc.metadata.resource_version, "2");
        // Not yet available: unreachable until the agent reports.
        assert!(mc.has_taint(TAINT_UNREACHABLE));
        assert!(!accept(&mut reg, "other", t(2), false));
        assert_eq!(reg.lease.as_ref().unwrap().metadata.uid, "lease-uid");
    }

    #[test]
    fn deny_only_sets_denied_after_accepted() {
        let mut never = joined();
        assert!(deny(&mut never, t(1)));
        assert!(never.denied);
        assert!(
            never
                .managed_cluster
                .condition(condition::HUB_ACCEPTED)
                .is_none()
        );
        let mut reg = joined();
        accept(&mut reg, "l", t(1), true);
        assert!(
            reg.managed_cluster
                .metadata
                .annotation(AUTOMATICALLY_ACCEPTED_ON_ANNOTATION)
                .is_some()
        );
        assert!(deny(&mut reg, t(2)));
        let c = reg
            .managed_cluster
            .condition(condition::HUB_ACCEPTED)
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "HubClusterAdminDenied")
        );
        assert!(!reg.is_accepted());
        assert!(!deny(&mut reg, t(3)));
        // Accepting again lifts the denial.
        assert!(accept(&mut reg, "l", t(4), false));
        assert!(reg.is_accepted());
    }

    #[test]
    fn agent_status_only_once_accepted_and_never_hub_conditions() {
        let mut reg = joined();
        let mut incoming = ManagedCluster::named("c1");
        incoming.status.conditions.push(Condition::new(
            condition::JOINED,
            "True",
            reason::MANAGED_CLUSTER_JOINED,
            message::MANAGED_CLUSTER_JOINED,
            Time::new(t(1)),
        ));
        assert_eq!(
            apply_agent_status(&mut reg, &incoming, t(1)),
            Err(RegistrationRefusal::NotAccepted)
        );
        accept(&mut reg, "l", t(1), false);
        incoming.status.conditions.push(Condition::new(
            condition::HUB_ACCEPTED,
            "False",
            "Forged",
            "",
            Time::new(t(1)),
        ));
        incoming.status.conditions.push(Condition::new(
            condition::AVAILABLE,
            "True",
            reason::MANAGED_CLUSTER_AVAILABLE,
            "",
            Time::new(t(1)),
        ));
        incoming.status.cluster_claims.push(ClusterClaim {
            name: "id.k8s.io".into(),
            value: "x".into(),
        });
        incoming.status.cluster_claims.push(ClusterClaim {
            name: "".into(),
            value: "x".into(),
        });
        assert_eq!(apply_agent_status(&mut reg, &incoming, t(2)), Ok(true));
        let mc = &reg.managed_cluster;
        assert!(mc.is_accepted() && mc.is_joined());
        assert_eq!(mc.status.cluster_claims.len(), 1);
        assert!(!mc.has_taint(TAINT_UNREACHABLE));
        assert_eq!(apply_agent_status(&mut reg, &incoming, t(3)), Ok(false));
    }

    #[test]
    fn leases_renew_release_and_ignore_stale_wills() {
        let mut reg = joined();
        assert_eq!(
            apply_lease(&mut reg, &renewal(1, 0), t(1)),
            Err(RegistrationRefusal::NotAccepted)
        );
        accept(&mut reg, "l", t(1), false);
        let (o, _) = apply_lease(&mut reg, &renewal(10, 5), t(10)).unwrap();
        assert_eq!(o, LeaseOutcome::Renewed);
        assert_eq!(
            reg.managed_cluster.condition_status(condition::AVAILABLE),
            Some("True")
        );
        // A Will from the connection before (acquired at 0 < 5) is stale.
        let mut stale = renewal(10, 0);
        stale.spec.holder_identity = Some(String::new());
        assert_eq!(
            apply_lease(&mut reg, &stale, t(11)).unwrap(),
            (LeaseOutcome::StaleWill, false)
        );
        assert_eq!(
            reg.managed_cluster.condition_status(condition::AVAILABLE),
            Some("True")
        );
        // The current connection's Will counts at once.
        let mut will = renewal(10, 5);
        will.spec.holder_identity = Some(String::new());
        assert_eq!(
            apply_lease(&mut reg, &will, t(12)).unwrap(),
            (LeaseOutcome::Released, true)
        );
        assert_eq!(
            reg.managed_cluster.condition_status(condition::AVAILABLE),
            Some("Unknown")
        );
        assert!(reg.health_deadline().is_none());
        // The next renewal brings it back.
        apply_lease(&mut reg, &renewal(20, 19), t(20)).unwrap();
        assert_eq!(
            reg.managed_cluster.condition_status(condition::AVAILABLE),
            Some("True")
        );
        assert_eq!(reg.health_deadline(), Some(t(140)));
        let rv = reg
            .lease
            .as_ref()
            .unwrap()
            .metadata
            .resource_version
            .clone();
        apply_lease(&mut reg, &renewal(20, 19), t(20)).unwrap();
        assert_ne!(reg.lease.as_ref().unwrap().metadata.resource_version, rv);
    }
}
