//! The records of cluster registration (issue 13) the [`Store`](super::Store) keeps:
//! plain data, no I/O.
//!
//! - [`Registration`]: what the hub knows of a cluster that joined over the bus — its
//!   ManagedCluster (spec, conditions, taints, claims) and its lease. A cluster created
//!   over REST has none and counts as accepted (OCM's own agent does not register).
//! - [`ClusterSet`]: a ManagedClusterSet (`default` and `global` always exist).
//! - [`JoinToken`]: a bootstrap token (hub-issued, expiring, revocable), by digest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use workbus_schemas::registration::names::{
    CLUSTERSET_LABEL, DEFAULT_CLUSTERSET, GLOBAL_CLUSTERSET, condition, message, reason,
};
use workbus_schemas::registration::{Lease, ManagedCluster};
use workbus_schemas::work::Time;
use workbus_schemas::work::status::{Condition, condition_status};

use super::Cluster;

/// The registration state of a cluster that joined over the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The ManagedCluster (its labels are the cluster's, see [`Cluster::managed_cluster`]).
    pub managed_cluster: ManagedCluster,
    /// The lease, created on acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Denied by the hub admin: its identities are refused until it is accepted again.
    #[serde(default)]
    pub denied: bool,
    /// The bootstrap token it joined with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_token: Option<String>,
}

impl Registration {
    /// Accepted by the hub (`hubAcceptsClient`) and not denied.
    pub fn is_accepted(&self) -> bool {
        self.managed_cluster.spec.hub_accepts_client && !self.denied
    }

    /// When the hub must next look at the cluster's health: the lease's expiry
    /// (`renewTime + 2 × leaseDurationSeconds`) while the cluster is accepted, its lease
    /// held and Available not already Unknown; `None` otherwise.
    pub fn health_deadline(&self) -> Option<DateTime<Utc>> {
        if !self.is_accepted() {
            return None;
        }
        let lease = self.lease.as_ref()?;
        if lease.is_released()
            || self.managed_cluster.condition_status(condition::AVAILABLE)
                == Some(condition_status::UNKNOWN)
        {
            return None;
        }
        let renewed = lease.spec.renew_time?.as_datetime();
        let grace = 2 * i64::from(self.managed_cluster.spec.effective_lease_duration_seconds());
        Some(renewed + chrono::Duration::seconds(grace))
    }
}

impl Cluster {
    /// Whether the hub accepts this cluster: REST-created ones always, joined ones once
    /// accepted and while not denied.
    pub fn is_accepted(&self) -> bool {
        self.registration
            .as_ref()
            .is_none_or(Registration::is_accepted)
    }

    /// The cluster as an OCM ManagedCluster: the joined one's record with the hub's
    /// labels, or, for a REST-created cluster, an accepted one built from its row.
    pub fn managed_cluster(&self) -> ManagedCluster {
        let mut mc = match &self.registration {
            Some(r) => r.managed_cluster.clone(),
            None => {
                let mut mc = ManagedCluster::named(&self.name);
                mc.spec.hub_accepts_client = true;
                mc.status.conditions.push(Condition::new(
                    condition::HUB_ACCEPTED,
                    condition_status::TRUE,
                    reason::HUB_CLUSTER_ADMIN_ACCEPTED,
                    message::HUB_CLUSTER_ADMIN_ACCEPTED,
                    Time::new(self.created),
                ));
                mc
            }
        };
        mc.metadata.name = self.name.clone();
        mc.metadata.labels = self.labels.clone();
        mc.metadata.creation_timestamp = Some(Time::new(self.created));
        mc
    }
}

/// How a cluster set selects its clusters (`spec.clusterSelector`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "selectorType")]
pub enum ClusterSelector {
    /// Clusters labelled `cluster.open-cluster-management.io/clusterset=<set name>`.
    ExclusiveClusterSetLabel,
    /// Clusters whose labels include all of `matchLabels` (empty: every cluster).
    LabelSelector {
        /// Labels a member must carry.
        #[serde(default, rename = "matchLabels")]
        match_labels: BTreeMap<String, String>,
    },
}

/// A ManagedClusterSet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSet {
    /// Its name.
    pub name: String,
    /// How it selects clusters.
    pub selector: ClusterSelector,
    /// When it was created.
    pub created: DateTime<Utc>,
}

impl ClusterSet {
    /// Whether `cluster` (by its labels) is a member.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.selector {
            ClusterSelector::ExclusiveClusterSetLabel => {
                labels.get(CLUSTERSET_LABEL).map(String::as_str) == Some(self.name.as_str())
            }
            ClusterSelector::LabelSelector { match_labels } => {
                match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            }
        }
    }

    /// Whether this is one of the two sets that always exist.
    pub fn is_builtin(name: &str) -> bool {
        name == DEFAULT_CLUSTERSET || name == GLOBAL_CLUSTERSET
    }
}

/// A bootstrap token as stored: never the secret, only its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinToken {
    /// Its unique name.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret.
    #[serde(skip)]
    pub hash: String,
    /// After this it no longer admits anyone.
    pub expires: DateTime<Utc>,
    /// Clusters joining with it are accepted at once.
    pub auto_accept: bool,
    /// When it was revoked, if it was.
    pub revoked: Option<DateTime<Utc>>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
}

impl JoinToken {
    /// Whether it admits a joining cluster at `now`: not expired, not revoked.
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.revoked.is_none() && now < self.expires
    }
}
