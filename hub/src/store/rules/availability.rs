//! Cluster health from its lease (design §5), as pure functions of the hub's clock.
//!
//! OCM turns Available to Unknown 5 × `leaseDurationSeconds` after the last renewal
//! (~5 min). workbus is faster without breaking OCM's agent:
//! - **lease grace 2 ×**: one renewal may be late or lost (the agent renews every
//!   duration + up to 25 % jitter) without a false Unknown, a second may not;
//! - **released lease (the agent's MQTT Will)**: the broker publishes it when the agent's
//!   connection dies without DISCONNECT, so Unknown follows within 1.5 × keepalive. A
//!   Will from a connection that was already replaced is *stale*: its `acquireTime`
//!   (the connection's start) is older than that of the latest renewal, and is ignored.
//!
//! The hub only ever writes Unknown from a timer; a renewal restores True when the
//! Unknown was the hub's (reason `ManagedClusterLeaseUpdateStopped`). Taints follow
//! Available (OCM's taint controller) and `ClockSynced` compares the renewal's
//! `renewTime` with the hub's clock (OCM's ±5 × duration).

use chrono::{DateTime, Duration, Utc};
use workbus_schemas::registration::names::{
    SKIP_CLOCK_SYNC_ANNOTATION, TAINT_UNAVAILABLE, TAINT_UNREACHABLE, condition, message, reason,
    taint_effect,
};
use workbus_schemas::registration::{Lease, ManagedCluster, Taint};
use workbus_schemas::work::Time;
use workbus_schemas::work::status::{Condition, condition_status, set_condition};

/// Lease grace in lease durations (OCM: 5).
pub const LEASE_GRACE_FACTOR: i64 = 2;
/// Clock-skew tolerance in lease durations (OCM's).
pub const CLOCK_SKEW_FACTOR: i64 = 5;

/// What made the hub look at a cluster's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The health timer (the lease may have run out).
    Tick,
    /// A renewal (held lease) just arrived.
    Renewal,
    /// A released lease (the agent's Will) just arrived and was not stale.
    Released,
}

/// The hub's decision about `ManagedClusterConditionAvailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Leave the condition as it is.
    Unchanged,
    /// `Unknown/ManagedClusterLeaseUpdateStopped`.
    Unknown,
    /// `True/ManagedClusterAvailable` (a renewal after the hub's own Unknown).
    Available,
}

/// Decides Available for an accepted `cluster` with `lease` at `now` (see the module
/// doc). Clusters that are not accepted are left alone, as OCM's lease controller
/// ignores clusters that never had HubAccepted.
pub fn decide_availability(
    now: DateTime<Utc>,
    cluster: &ManagedCluster,
    lease: Option<&Lease>,
    trigger: Trigger,
) -> Availability {
    if !cluster.spec.hub_accepts_client {
        return Availability::Unchanged;
    }
    let Some(lease) = lease else {
        return Availability::Unknown;
    };
    if trigger == Trigger::Released || lease.is_released() {
        return Availability::Unknown;
    }
    let grace = Duration::seconds(
        LEASE_GRACE_FACTOR * i64::from(cluster.spec.effective_lease_duration_seconds()),
    );
    let expired = lease
        .spec
        .renew_time
        .is_none_or(|t| now >= t.as_datetime() + grace);
    if expired {
        return Availability::Unknown;
    }
    let current = cluster.condition(condition::AVAILABLE);
    let hub_unknown = current.is_none_or(|c| {
        c.status == condition_status::UNKNOWN && c.reason == reason::LEASE_UPDATE_STOPPED
    });
    if trigger == Trigger::Renewal && hub_unknown {
        Availability::Available
    } else {
        Availability::Unchanged
    }
}

/// Whether the agent's clock agrees with the hub's: `|now − renewTime| < 5 × duration`,
/// or the cluster opted out with the skip annotation.
pub fn clock_synced(
    now: DateTime<Utc>,
    cluster: &ManagedCluster,
    renew_time: DateTime<Utc>,
) -> bool {
    if cluster.metadata.annotation(SKIP_CLOCK_SYNC_ANNOTATION) == Some("true") {
        return true;
    }
    let tolerance = Duration::seconds(
        CLOCK_SKEW_FACTOR * i64::from(cluster.spec.effective_lease_duration_seconds()),
    );
    (now - renew_time).abs() < tolerance
}

/// The taints OCM's hub keeps in step with Available: Unknown or missing →
/// `unreachable`, False → `unavailable`, True → neither (NoSelect, `timeAdded` = now
/// when added). Other taints are kept. Returns whether anything changed.
pub fn set_health_taints(cluster: &mut ManagedCluster, now: DateTime<Utc>) -> bool {
    let wanted = match cluster.condition_status(condition::AVAILABLE) {
        Some(condition_status::TRUE) => None,
        Some(condition_status::FALSE) => Some(TAINT_UNAVAILABLE),
        _ => Some(TAINT_UNREACHABLE),
    };
    let before = cluster.spec.taints.len();
    cluster.spec.taints.retain(|t| {
        (t.key != TAINT_UNREACHABLE && t.key != TAINT_UNAVAILABLE) || Some(t.key.as_str()) == wanted
    });
    let mut changed = before != cluster.spec.taints.len();
    if let Some(key) = wanted
        && !cluster.has_taint(key)
    {
        cluster.spec.taints.push(Taint {
            key: key.to_owned(),
            value: String::new(),
            effect: taint_effect::NO_SELECT.to_owned(),
            time_added: Some(Time::new(now)),
        });
        changed = true;
    }
    changed
}

/// Applies [`decide_availability`] (and, on a renewal, `ClockSynced`) to `cluster`, then
/// the taints. Returns whether anything changed.
pub fn apply_health(
    now: DateTime<Utc>,
    cluster: &mut ManagedCluster,
    lease: Option<&Lease>,
    trigger: Trigger,
) -> bool {
    let at = Time::new(now);
    let mut changed = match decide_availability(now, cluster, lease, trigger) {
        Availability::Unchanged => false,
        Availability::Unknown => set_condition(
            &mut cluster.status.conditions,
            Condition::new(
                condition::AVAILABLE,
                condition_status::UNKNOWN,
                reason::LEASE_UPDATE_STOPPED,
                message::LEASE_UPDATE_STOPPED,
                at,
            ),
            at,
        ),
        Availability::Available => set_condition(
            &mut cluster.status.conditions,
            Condition::new(
                condition::AVAILABLE,
                condition_status::TRUE,
                reason::MANAGED_CLUSTER_AVAILABLE,
                message::MANAGED_CLUSTER_AVAILABLE,
                at,
            ),
            at,
        ),
    };
    if trigger == Trigger::Renewal
        && let Some(renewed) = lease.and_then(|l| l.spec.renew_time)
    {
        let synced = clock_synced(now, cluster, renewed.as_datetime());
        let c = if synced {
            Condition::new(
                condition::CLOCK_SYNCED,
                condition_status::TRUE,
                reason::CLOCK_SYNCED,
                message::CLOCK_SYNCED,
                at,
            )
        } else {
            Condition::new(
                condition::CLOCK_SYNCED,
                condition_status::FALSE,
                reason::CLOCK_OUT_OF_SYNC,
                message::CLOCK_OUT_OF_SYNC,
                at,
            )
        };
        changed |= set_condition(&mut cluster.status.conditions, c, at);
    }
    changed |= set_health_taints(cluster, now);
    changed
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use workbus_schemas::registration::MicroTime;
    use workbus_schemas::registration::names::LEASE_HOLDER;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn accepted(lease_secs: i32) -> ManagedCluster {
        let mut c = ManagedCluster::named("c1");
        c.spec.hub_accepts_client = true;
        c.spec.lease_duration_seconds = lease_secs;
        c
    }

    fn lease(renewed: i64) -> Lease {
        let mut l = Lease::for_cluster("c1", t(renewed));
        l.spec.acquire_time = Some(MicroTime::new(t(0)));
        l
    }

    #[test]
    fn unknown_at_twice_the_lease_not_before() {
        let c = accepted(60);
        let l = lease(0);
        assert_eq!(
            decide_availability(t(119), &c, Some(&l), Trigger::Tick),
            Availability::Unchanged
        );
        assert_eq!(
            decide_availability(t(120), &c, Some(&l), Trigger::Tick),
            Availability::Unknown
        );
        // 0 counts as 60 s.
        let c0 = accepted(0);
        assert_eq!(
            decide_availability(t(119), &c0, Some(&l), Trigger::Tick),
            Availability::Unchanged
        );
        assert_eq!(
            decide_availability(t(120), &c0, Some(&l), Trigger::Tick),
            Availability::Unknown
        );
        let c10 = accepted(10);
        assert_eq!(
            decide_availability(t(20), &c10, Some(&l), Trigger::Tick),
            Availability::Unknown
        );
    }

    #[test]
    fn not_accepted_clusters_are_left_alone() {
        let c = ManagedCluster::named("c1");
        assert_eq!(
            decide_availability(t(1000), &c, None, Trigger::Tick),
            Availability::Unchanged
        );
    }

    #[test]
    fn a_released_lease_is_unknown_at_once() {
        let c = accepted(60);
        let mut l = lease(0);
        assert_eq!(
            decide_availability(t(1), &c, Some(&l), Trigger::Released),
            Availability::Unknown
        );
        l.spec.holder_identity = Some(String::new());
        assert_eq!(
            decide_availability(t(1), &c, Some(&l), Trigger::Tick),
            Availability::Unknown
        );
    }

    #[test]
    fn a_renewal_restores_only_the_hubs_own_unknown() {
        let mut c = accepted(60);
        let l = lease(100);
        assert!(apply_health(t(200), &mut c, Some(&lease(0)), Trigger::Tick));
        assert_eq!(c.condition_status(condition::AVAILABLE), Some("Unknown"));
        assert!(c.has_taint(TAINT_UNREACHABLE));
        assert!(apply_health(t(101), &mut c, Some(&l), Trigger::Renewal));
        assert_eq!(c.condition_status(condition::AVAILABLE), Some("True"));
        assert!(!c.has_taint(TAINT_UNREACHABLE));
        assert_eq!(c.condition_status(condition::CLOCK_SYNCED), Some("True"));
        // The agent's own False is not overwritten by a renewal.
        set_condition(
            &mut c.status.conditions,
            Condition::new(
                condition::AVAILABLE,
                "False",
                reason::KUBE_API_SERVER_UNAVAILABLE,
                "",
                Time::new(t(102)),
            ),
            Time::new(t(102)),
        );
        assert_eq!(
            decide_availability(t(103), &c, Some(&l), Trigger::Renewal),
            Availability::Unchanged
        );
        assert!(apply_health(t(103), &mut c, Some(&l), Trigger::Renewal));
        assert!(c.has_taint(TAINT_UNAVAILABLE) && !c.has_taint(TAINT_UNREACHABLE));
        // Idempotent.
        assert!(!apply_health(t(103), &mut c, Some(&l), Trigger::Renewal));
    }

    #[test]
    fn clock_skew_as_ocm() {
        let mut c = accepted(60);
        assert!(clock_synced(t(0), &c, t(299)));
        assert!(!clock_synced(t(0), &c, t(300)));
        assert!(!clock_synced(t(300), &c, t(0)));
        c.metadata
            .annotations
            .insert(SKIP_CLOCK_SYNC_ANNOTATION.into(), "true".into());
        assert!(clock_synced(t(0), &c, t(10_000)));
        let mut c = accepted(60);
        let l = lease(10_000);
        apply_health(t(0), &mut c, Some(&l), Trigger::Renewal);
        assert_eq!(c.condition_status(condition::CLOCK_SYNCED), Some("False"));
        assert_eq!(
            c.condition(condition::CLOCK_SYNCED).unwrap().reason,
            reason::CLOCK_OUT_OF_SYNC
        );
        assert_eq!(l.spec.holder_identity.as_deref(), Some(LEASE_HOLDER));
    }

    #[test]
    fn taints_follow_available() {
        let mut c = accepted(60);
        assert!(set_health_taints(&mut c, t(0)));
        assert!(c.has_taint(TAINT_UNREACHABLE));
        assert_eq!(c.spec.taints[0].effect, "NoSelect");
        assert!(!set_health_taints(&mut c, t(5)));
        c.spec.taints.push(Taint {
            key: "user".into(),
            effect: "NoSelect".into(),
            ..Default::default()
        });
        set_condition(
            &mut c.status.conditions,
            Condition::new(
                condition::AVAILABLE,
                "True",
                reason::MANAGED_CLUSTER_AVAILABLE,
                "",
                Time::new(t(6)),
            ),
            Time::new(t(6)),
        );
        assert!(set_health_taints(&mut c, t(6)));
        assert_eq!(c.spec.taints.len(), 1);
        assert_eq!(c.spec.taints[0].key, "user");
    }
}
