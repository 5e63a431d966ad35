//! The Placement changes (issue 14) as typed [`Write`]s over the backend's row
//! operations: applying and deleting Placements, replacing a Placement's decisions
//! together with its status (one transaction, so readers never see decisions and status
//! disagree), binding and unbinding cluster sets.

use chrono::{DateTime, Utc};
use workbus_schemas::placement::{Placement, PlacementDecision, PlacementStatus};

use super::StoreError;
use super::placement::{ClusterSetBinding, PlacementRecord};
use super::rules::placement::apply;
use super::tx::StoreTx;
use super::writes::Write;

/// Creates or updates a Placement (its status is the scheduler's: kept). Answers the
/// stored record and whether it was created.
pub struct ApplyPlacement {
    /// The Placement as the user wrote it (namespace and name set).
    pub placement: Placement,
    /// The hub's clock.
    pub now: DateTime<Utc>,
}

impl Write for ApplyPlacement {
    type Output = (PlacementRecord, bool);
    fn run(self, tx: &mut dyn StoreTx) -> Result<(PlacementRecord, bool), StoreError> {
        let meta = &self.placement.metadata;
        let existing = tx.placement(&meta.namespace, &meta.name)?;
        let record = apply(existing.as_ref(), self.placement, self.now);
        tx.upsert_placement(&record)?;
        Ok((record, existing.is_none()))
    }
}

/// Deletes a Placement and its PlacementDecisions ([`StoreError::NotFound`] if none).
pub struct DeletePlacement {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Write for DeletePlacement {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        if !tx.remove_placement(&self.namespace, &self.name)? {
            return Err(StoreError::NotFound {
                kind: "placement",
                name: format!("{}/{}", self.namespace, self.name),
            });
        }
        tx.replace_decisions(
            &self.namespace,
            &self.name,
            &[],
            chrono::DateTime::UNIX_EPOCH,
        )
    }
}

/// Replaces a Placement's PlacementDecisions and writes its status, in one
/// transaction. `false` (and no change) when the Placement no longer exists (deleted
/// while it was being scheduled).
pub struct WriteDecisions {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Every PlacementDecision it now has.
    pub decisions: Vec<PlacementDecision>,
    /// Its new status.
    pub status: PlacementStatus,
    /// The hub's clock (creation time of new PlacementDecisions).
    pub now: DateTime<Utc>,
}

impl Write for WriteDecisions {
    type Output = bool;
    fn run(self, tx: &mut dyn StoreTx) -> Result<bool, StoreError> {
        if !tx.update_placement_status(&self.namespace, &self.name, &self.status)? {
            return Ok(false);
        }
        tx.replace_decisions(&self.namespace, &self.name, &self.decisions, self.now)?;
        Ok(true)
    }
}

/// Binds a cluster set to a namespace; binding it again returns the existing binding.
/// The set need not exist (its binding then reads `Bound=False`, as OCM). Answers the
/// binding and whether it was created.
pub struct BindClusterSet {
    /// The namespace.
    pub namespace: String,
    /// The set.
    pub cluster_set: String,
    /// The hub's clock.
    pub now: DateTime<Utc>,
}

impl Write for BindClusterSet {
    type Output = (ClusterSetBinding, bool);
    fn run(self, tx: &mut dyn StoreTx) -> Result<(ClusterSetBinding, bool), StoreError> {
        let binding = ClusterSetBinding {
            namespace: self.namespace,
            cluster_set: self.cluster_set,
            created: self.now,
        };
        if tx.insert_binding(&binding)? {
            return Ok((binding, true));
        }
        tx.binding(&binding.namespace, &binding.cluster_set)?
            .map(|b| (b, false))
            .ok_or_else(|| StoreError::Backend("a binding vanished inside its transaction".into()))
    }
}

/// Removes a binding ([`StoreError::NotFound`] if none).
pub struct UnbindClusterSet {
    /// The namespace.
    pub namespace: String,
    /// The set.
    pub cluster_set: String,
}

impl Write for UnbindClusterSet {
    type Output = ();
    fn run(self, tx: &mut dyn StoreTx) -> Result<(), StoreError> {
        if tx.remove_binding(&self.namespace, &self.cluster_set)? {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                kind: "managedclustersetbinding",
                name: format!("{}/{}", self.namespace, self.cluster_set),
            })
        }
    }
}
