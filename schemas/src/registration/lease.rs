//! `Lease` (`coordination.k8s.io/v1`): the cluster's heartbeat (reference §3). The agent
//! renews `managed-cluster-lease` by sending the whole lease with a new `renewTime`; a
//! lease whose `holderIdentity` is empty is *released* — what the agent's MQTT Will
//! carries, so the broker tells the hub at once when a connection dies (design §5).
//! Times are `metav1.MicroTime`: RFC 3339 with exactly six fractional digits.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::names::{CLUSTER_NAME_LABEL, LEASE_HOLDER, LEASE_NAME};
use crate::work::ObjectMeta;

/// A `metav1.MicroTime`: microsecond precision, written `2026-01-02T03:04:05.123456Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroTime(DateTime<Utc>);

impl MicroTime {
    /// Wraps a time, truncated to microseconds.
    pub fn new(t: DateTime<Utc>) -> MicroTime {
        let micros = t.timestamp_micros();
        MicroTime(DateTime::from_timestamp_micros(micros).unwrap_or(t))
    }

    /// The wrapped time.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Parses any RFC 3339 text.
    pub fn parse(s: &str) -> Result<MicroTime, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s).map(|t| MicroTime::new(t.with_timezone(&Utc)))
    }
}

impl From<DateTime<Utc>> for MicroTime {
    fn from(t: DateTime<Utc>) -> Self {
        MicroTime::new(t)
    }
}

impl fmt::Display for MicroTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for MicroTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MicroTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A Lease.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// `metadata`; `namespace` is the cluster name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "crate::work::serde_go::nullable")]
    pub spec: LeaseSpec,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Lease.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    /// `holderIdentity`; empty (or absent) means released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// `leaseDurationSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
    /// `acquireTime`: workbus agents write the time their MQTT connection was established,
    /// which orders a Will against later renewals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<MicroTime>,
    /// `renewTime`: the last renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<MicroTime>,
    /// Other members (`leaseTransitions`, `strategy`, `preferredHolder`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Lease {
    /// The lease the hub creates for `cluster` on acceptance: held, renewed `now`.
    pub fn for_cluster(cluster: &str, now: DateTime<Utc>) -> Lease {
        let mut lease = Lease::default();
        lease.metadata.name = LEASE_NAME.to_owned();
        lease.metadata.namespace = cluster.to_owned();
        lease
            .metadata
            .labels
            .insert(CLUSTER_NAME_LABEL.to_owned(), cluster.to_owned());
        lease.spec.holder_identity = Some(LEASE_HOLDER.to_owned());
        lease.spec.renew_time = Some(MicroTime::new(now));
        lease
    }

    /// Whether this is a released lease (empty or absent `holderIdentity`).
    pub fn is_released(&self) -> bool {
        self.spec
            .holder_identity
            .as_deref()
            .is_none_or(str::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_has_six_digits() {
        let t = MicroTime::parse("2026-01-02T03:04:05.123456789+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T02:04:05.123456Z");
        let whole = MicroTime::parse("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(whole.to_string(), "2026-01-02T03:04:05.000000Z");
        assert!(MicroTime::parse("soon").is_err());
    }

    #[test]
    fn released_means_no_holder() {
        let now = Utc::now();
        let mut l = Lease::for_cluster("c1", now);
        assert!(!l.is_released());
        l.spec.holder_identity = Some(String::new());
        assert!(l.is_released());
        l.spec.holder_identity = None;
        assert!(l.is_released());
    }
}
