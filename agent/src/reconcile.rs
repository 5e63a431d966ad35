//! (placeholder until the reconciler lands: same API, applies nothing)
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use workbus_schemas::work::{ManifestWork, ManifestWorkStatus, Time};

/// An object applied for a work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedResource {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Live UID.
    pub uid: String,
}

/// Persisted per-work reconcile state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkState {
    /// Applied objects.
    pub applied: Vec<AppliedResource>,
    /// Current status.
    pub status: ManifestWorkStatus,
}

/// Result of apply/refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileOutcome {
    /// New status.
    pub status: ManifestWorkStatus,
    /// Applied objects.
    pub applied: Vec<AppliedResource>,
    /// When to look again.
    pub requeue_after: Option<Duration>,
}

/// Result of cleanup.
#[derive(Debug, Clone, PartialEq)]
pub enum CleanupOutcome {
    /// Everything is gone.
    Done,
    /// Still waiting.
    Pending {
        /// Remaining objects.
        remaining: Vec<AppliedResource>,
        /// When to look again.
        requeue_after: Duration,
    },
}

/// Applies works to a target.
pub struct Reconciler<T> {
    _target: Arc<T>,
}

impl<T: Send + Sync + 'static> Reconciler<T> {
    /// A reconciler for `target`.
    pub fn new(target: Arc<T>) -> Self {
        Reconciler { _target: target }
    }
    /// Apply and compute status.
    pub async fn apply(
        &self,
        _work: &ManifestWork,
        state: &WorkState,
        _now: Time,
    ) -> ReconcileOutcome {
        ReconcileOutcome {
            status: state.status.clone(),
            applied: state.applied.clone(),
            requeue_after: None,
        }
    }
    /// Status only.
    pub async fn refresh(
        &self,
        _work: &ManifestWork,
        state: &WorkState,
        _now: Time,
    ) -> ReconcileOutcome {
        ReconcileOutcome {
            status: state.status.clone(),
            applied: state.applied.clone(),
            requeue_after: None,
        }
    }
    /// Delete.
    pub async fn cleanup(&self, _work: &ManifestWork, _state: &WorkState) -> CleanupOutcome {
        CleanupOutcome::Done
    }
}
