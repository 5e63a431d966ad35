//! A cluster's place in a rollout (reference `placement.md` §4.2): the six statuses of
//! sdk-go's `RolloutHandler`, the decision group a cluster belongs to, and the status
//! with its last transition as the planner reads it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// sdk-go's `RolloutStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClusterStatus {
    /// Must get the current template (new, or on an older one).
    ToApply,
    /// Has the current template, not yet succeeded.
    Progressing,
    /// Succeeded by the replica set's success rule.
    Succeeded,
    /// Failed (`Degraded`, or `Applied`=False under workbus's rule).
    Failed,
    /// Progressing or failed longer than `progressDeadline`.
    TimeOut,
    /// Left alone.
    Skip,
}

impl ClusterStatus {
    /// Every status, in sdk-go's order.
    pub const ALL: [ClusterStatus; 6] = [
        ClusterStatus::ToApply,
        ClusterStatus::Progressing,
        ClusterStatus::Succeeded,
        ClusterStatus::Failed,
        ClusterStatus::TimeOut,
        ClusterStatus::Skip,
    ];

    /// The stored and displayed spelling (sdk-go's).
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterStatus::ToApply => "ToApply",
            ClusterStatus::Progressing => "Progressing",
            ClusterStatus::Succeeded => "Succeeded",
            ClusterStatus::Failed => "Failed",
            ClusterStatus::TimeOut => "TimeOut",
            ClusterStatus::Skip => "Skip",
        }
    }

    /// The inverse of [`ClusterStatus::as_str`].
    pub fn parse(s: &str) -> Option<ClusterStatus> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether it counts toward `maxFailures`.
    pub fn is_failure(self) -> bool {
        matches!(self, ClusterStatus::Failed | ClusterStatus::TimeOut)
    }
}

/// A decision group of a placement: `groupIndex` and `groupName` (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    /// `groupIndex`.
    pub index: i32,
    /// `groupName`.
    pub name: String,
}

/// One cluster as the planner sees it (sdk-go's `ClusterRolloutStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRolloutStatus {
    /// The cluster.
    pub cluster: String,
    /// Its decision group.
    pub group: GroupKey,
    /// Its status.
    pub status: ClusterStatus,
    /// When the status last changed (`None` for new clusters).
    pub last_transition: Option<DateTime<Utc>>,
    /// When it must be looked at again (soak or deadline end), set by the planner.
    pub recheck: Option<DateTime<Utc>>,
}

impl ClusterRolloutStatus {
    /// A cluster the rollout has not touched.
    pub fn new_cluster(cluster: &str, group: &GroupKey) -> Self {
        ClusterRolloutStatus {
            cluster: cluster.to_string(),
            group: group.clone(),
            status: ClusterStatus::ToApply,
            last_transition: None,
            recheck: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_their_spelling() {
        for s in ClusterStatus::ALL {
            assert_eq!(ClusterStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ClusterStatus::parse("Done"), None);
        assert!(ClusterStatus::TimeOut.is_failure());
        assert!(!ClusterStatus::Succeeded.is_failure());
    }
}
