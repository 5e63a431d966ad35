//! The rollout's [`Decisions`] read from the placement store: a Placement's decision
//! groups as the placement controller last wrote them (`status.decisionGroups`, each
//! naming its PlacementDecisions), and a change notification after every durable
//! decision write. This is how a hub wires its ManifestWorkReplicaSets to its
//! Placements; tests may inject [`super::decisions::MemoryDecisions`] instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::broadcast;
use workbus_schemas::placement::PlacementDecision;

use super::decisions::{DecisionChange, DecisionGroup, Decisions};
use crate::store::{Store, StoreError};
use crate::watch::PlacementWatchers;

/// Decisions read from a [`Store`], announced by a [`PlacementWatchers`].
pub struct StoreDecisions {
    store: Arc<dyn Store>,
    changes: broadcast::Sender<DecisionChange>,
}

impl StoreDecisions {
    /// Reads `store`; forwards every change `placements` announces (a lagging
    /// forwarder announces every Placement, so no change is lost). Must be called
    /// within a Tokio runtime: the forwarder is a task that ends with the broadcast.
    pub fn new(store: Arc<dyn Store>, placements: &PlacementWatchers) -> StoreDecisions {
        let changes = broadcast::channel(1024).0;
        tokio::spawn(forward(
            Arc::clone(&store),
            placements.subscribe(),
            changes.clone(),
        ));
        StoreDecisions { store, changes }
    }
}

impl Decisions for StoreDecisions {
    fn groups(&self, namespace: &str, placement: &str) -> Option<Vec<DecisionGroup>> {
        match read_groups(&*self.store, namespace, placement) {
            Ok(groups) => groups,
            Err(e) => {
                // As if the Placement were missing: the replica set says so in its
                // status (PlacementDecisionNotFound) and is reconciled again on the
                // next change.
                tracing::error!(%namespace, %placement, error = %e, "cannot read placement decisions");
                None
            }
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<DecisionChange> {
        self.changes.subscribe()
    }
}

/// The decision groups of one Placement, by index: each group's clusters are those of
/// the PlacementDecisions its status names. `None` when the Placement does not exist.
pub fn read_groups(
    store: &dyn Store,
    namespace: &str,
    placement: &str,
) -> Result<Option<Vec<DecisionGroup>>, StoreError> {
    let Some(record) = store.get_placement(namespace, placement)? else {
        return Ok(None);
    };
    let decisions: BTreeMap<String, PlacementDecision> = store
        .placement_decisions(namespace, placement)?
        .into_iter()
        .map(|d| (d.metadata.name.clone(), d))
        .collect();
    let mut groups: Vec<DecisionGroup> = record
        .placement
        .status
        .decision_groups
        .iter()
        .map(|g| DecisionGroup {
            index: g.decision_group_index,
            name: g.decision_group_name.clone(),
            clusters: g
                .decisions
                .iter()
                .filter_map(|name| decisions.get(name))
                .flat_map(|d| d.status.decisions.iter().map(|c| c.cluster_name.clone()))
                .collect(),
        })
        .collect();
    groups.sort_by_key(|g| g.index);
    Ok(Some(groups))
}

/// Forwards placement changes as decision changes until either side closes.
async fn forward(
    store: Arc<dyn Store>,
    mut placements: broadcast::Receiver<crate::watch::PlacementChange>,
    changes: broadcast::Sender<DecisionChange>,
) {
    loop {
        match placements.recv().await {
            Ok(change) => {
                let _ = changes.send(DecisionChange {
                    namespace: change.namespace,
                    placement: change.placement,
                });
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "placement changes missed; re-announcing every placement"
                );
                let store = Arc::clone(&store);
                let all = tokio::task::spawn_blocking(move || store.list_placements(None)).await;
                match all {
                    Ok(Ok(all)) => {
                        for record in all {
                            let _ = changes.send(DecisionChange {
                                namespace: record.namespace().to_owned(),
                                placement: record.placement.metadata.name.clone(),
                            });
                        }
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot list placements"),
                    Err(e) => tracing::error!(error = %e, "placement listing task failed"),
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
