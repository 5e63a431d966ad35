//! The placement controller: a hub task that keeps every Placement's decisions current.
//!
//! At start it loads clusters, cluster sets, bindings and Placements (with their stored
//! decisions, so `Steady` and `NoSelectIfNew` survive a restart) into a
//! [`PlacementIndex`] and schedules everything. Then it follows:
//! - cluster changes ([`ClusterWatchers`]): incremental re-evaluation; when it lagged
//!   behind the broadcast, a full reload of the clusters;
//! - Placement, binding and cluster-set changes ([`PlacementTrigger`], poked by the REST
//!   API after each committed change);
//! - the earliest toleration expiry, read from the injectable [`Clock`].
//!
//! It writes only Placements whose decisions or status changed ([`WriteDecisions`]: the
//! decisions and status in one transaction) and then announces them on
//! [`PlacementWatchers`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use workbus_schemas::placement::{PlacementDecision, PlacementStatus};

use super::index::{Changed, PlacementIndex, PlacementKey};
use super::view::ClusterView;
use crate::clock::Clock;
use crate::store::placement::ClusterSetBinding;
use crate::store::placement_writes::WriteDecisions;
use crate::store::{StoreError, StoreHandle};
use crate::watch::{ClusterChange, ClusterWatchers, PlacementChange, PlacementWatchers};

/// How often the controller looks at the clock while a toleration expiry is pending (a
/// manual test clock moves without waking anyone).
const REQUEUE_POLL: Duration = Duration::from_secs(1);

/// What changed outside the clusters, waiting for the controller. Bounded by the number
/// of Placements (a set of keys).
#[derive(Debug, Default)]
struct Pending {
    placements: BTreeSet<PlacementKey>,
    topology: bool,
}

/// Pokes the controller after a committed Placement, binding or cluster-set change.
#[derive(Debug, Clone, Default)]
pub struct PlacementTrigger {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
}

impl PlacementTrigger {
    /// Placement `namespace/name` was applied or deleted.
    pub fn placement(&self, namespace: &str, name: &str) {
        self.with(|p| {
            p.placements.insert(PlacementKey {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        });
    }

    /// A binding or a cluster set changed.
    pub fn topology(&self) {
        self.with(|p| p.topology = true);
    }

    fn with(&self, f: impl FnOnce(&mut Pending)) {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.notify_one();
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What the rest of the hub holds of the controller: its trigger and its broadcast.
#[derive(Debug, Clone, Default)]
pub struct PlacementHooks {
    /// Pokes the controller.
    pub trigger: PlacementTrigger,
    /// Decision changes.
    pub watchers: PlacementWatchers,
}

/// The controller task.
pub struct PlacementController {
    /// The store.
    pub store: StoreHandle,
    /// Cluster changes to follow.
    pub clusters: ClusterWatchers,
    /// Where decision changes are announced.
    pub watchers: PlacementWatchers,
    /// Placement, binding and cluster-set changes.
    pub trigger: PlacementTrigger,
    /// The hub's clock.
    pub clock: Clock,
}

/// Namespace → bound set names.
fn binding_map(bindings: &[ClusterSetBinding]) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in bindings {
        map.entry(b.namespace.clone())
            .or_default()
            .insert(b.cluster_set.clone());
    }
    map
}

impl PlacementController {
    /// Runs until the cluster broadcast closes (the hub stops).
    pub async fn run(self) {
        // Subscribed before loading: no change between the load and the loop is lost.
        let mut clusters = self.clusters.subscribe();
        let mut index = loop {
            match self.load().await {
                Ok(index) => break index,
                Err(e) => {
                    tracing::error!(error = %e, "placement controller cannot load; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let changed = self.schedule_all(&mut index).await;
        self.write(changed).await;
        loop {
            let wait = index.next_requeue().map(|at| {
                (at - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(REQUEUE_POLL)
            });
            let changed = tokio::select! {
                msg = clusters.recv() => match msg {
                    Ok(change) => self.on_cluster(&mut index, &change),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "placement controller lagged behind cluster changes; reloading");
                        match self.store.run(|s| s.list_clusters()).await {
                            Ok(all) => index.set_clusters(
                                all.iter().map(ClusterView::from_cluster),
                                self.clock.now(),
                            ),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot reload clusters");
                                Vec::new()
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = self.trigger.wake.notified() => self.on_trigger(&mut index).await,
                _ = async {
                    match wait {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => index.on_tick(self.clock.now()),
            };
            self.write(changed).await;
        }
    }

    fn on_cluster(&self, index: &mut PlacementIndex, change: &ClusterChange) -> Changed {
        let now = self.clock.now();
        if change.is_deleted() {
            index.on_cluster_removed(&change.object.metadata.name, now)
        } else {
            index.on_cluster_changed(ClusterView::from_managed_cluster(&change.object), now)
        }
    }

    async fn load(&self) -> Result<PlacementIndex, StoreError> {
        self.store
            .run(|s| {
                let clusters = s.list_clusters()?;
                Ok(PlacementIndex::new(
                    clusters.iter().map(ClusterView::from_cluster),
                    s.list_clustersets()?,
                    binding_map(&s.list_bindings(None)?),
                ))
            })
            .await
    }

    /// Schedules every stored Placement; returns those whose stored state differs.
    async fn schedule_all(&self, index: &mut PlacementIndex) -> Changed {
        let loaded = self
            .store
            .run(|s| {
                let mut out = Vec::new();
                for r in s.list_placements(None)? {
                    let decisions = s.placement_decisions(r.namespace(), r.name())?;
                    out.push((r, decisions));
                }
                Ok(out)
            })
            .await;
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot list placements");
                return Vec::new();
            }
        };
        let now = self.clock.now();
        let mut changed = Vec::new();
        for (record, stored) in loaded {
            let current = current_of(&stored);
            let stored_status = record.placement.status.clone();
            for (key, outcome) in index.upsert_placement(record.placement, current, now) {
                if !same(&stored, &stored_status, &outcome.decisions, &outcome.status) {
                    changed.push((key, outcome));
                }
            }
        }
        changed
    }

    async fn on_trigger(&self, index: &mut PlacementIndex) -> Changed {
        let pending = self.trigger.take();
        let now = self.clock.now();
        let mut changed = Vec::new();
        if pending.topology {
            // The clusters too: a binding or set change is rare, and re-reading them
            // then repairs a cluster view that a write without a notification (a
            // direct store write, e.g. a fleet registered by a tool) left stale.
            let loaded = self
                .store
                .run(|s| {
                    Ok((
                        s.list_clusters()?,
                        s.list_clustersets()?,
                        s.list_bindings(None)?,
                    ))
                })
                .await;
            match loaded {
                Ok((clusters, sets, bindings)) => {
                    changed.extend(index.reload(
                        clusters.iter().map(ClusterView::from_cluster),
                        sets,
                        binding_map(&bindings),
                        now,
                    ));
                }
                Err(e) => tracing::error!(error = %e, "cannot reload clusters, sets and bindings"),
            }
        }
        for key in pending.placements {
            let lookup = key.clone();
            let loaded = self
                .store
                .run(move |s| {
                    let record = s.get_placement(&lookup.namespace, &lookup.name)?;
                    let decisions = s.placement_decisions(&lookup.namespace, &lookup.name)?;
                    Ok((record, decisions))
                })
                .await;
            match loaded {
                Ok((Some(record), stored)) => {
                    changed.extend(index.upsert_placement(
                        record.placement,
                        current_of(&stored),
                        now,
                    ));
                }
                Ok((None, _)) => {
                    index.remove_placement(&key);
                    self.watchers.notify(PlacementChange {
                        kind: "deleted",
                        namespace: key.namespace.clone(),
                        placement: key.name.clone(),
                        clusters: Vec::new(),
                        decisions: Vec::new(),
                    });
                }
                Err(e) => tracing::error!(placement = %key, error = %e, "cannot read placement"),
            }
        }
        // Several triggers may have re-scored one Placement: the last outcome wins.
        let mut last: BTreeMap<PlacementKey, _> = BTreeMap::new();
        for (k, o) in changed {
            last.insert(k, o);
        }
        last.into_iter().collect()
    }

    /// Writes changed outcomes (each in its own transaction) and announces them.
    async fn write(&self, changed: Changed) {
        for (key, outcome) in changed {
            let write = WriteDecisions {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                decisions: outcome.decisions.clone(),
                status: outcome.status.clone(),
                now: self.clock.now(),
            };
            match self.store.write(write).await {
                Ok(true) => {
                    tracing::debug!(placement = %key, selected = outcome.selected.len(), "placement decisions written");
                    let record = crate::audit::api_record::internal_entry(
                        PLACEMENT_AUDIT_SOURCE,
                        "placement",
                        None,
                        serde_json::json!({"namespace": key.namespace, "placement": key.name,
                            "clusters": outcome.selected}),
                    );
                    if let Err(e) = self
                        .store
                        .write(crate::store::writes::AppendAudit(record))
                        .await
                    {
                        tracing::error!(placement = %key, error = %e, "cannot audit placement decisions");
                    }
                    self.watchers.notify(PlacementChange {
                        kind: "changed",
                        namespace: key.namespace,
                        placement: key.name,
                        clusters: outcome.selected,
                        decisions: outcome.decisions,
                    });
                }
                // Deleted meanwhile: its trigger removes it from the index.
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(placement = %key, error = %e, "cannot write placement decisions")
                }
            }
        }
    }
}

/// The `source` of the audit records of placement decisions (the controller has no
/// source id of its own: decisions are not events on the bus).
const PLACEMENT_AUDIT_SOURCE: &str = "workbus-hub/placement";

/// The clusters of stored decisions.
fn current_of(decisions: &[PlacementDecision]) -> BTreeSet<String> {
    decisions
        .iter()
        .flat_map(|d| d.cluster_names().map(str::to_owned))
        .collect()
}

/// Whether stored decisions and status equal the computed ones (as stored: names,
/// labels and decisions).
fn same(
    stored: &[PlacementDecision],
    stored_status: &PlacementStatus,
    decisions: &[PlacementDecision],
    status: &PlacementStatus,
) -> bool {
    stored_status == status
        && stored.len() == decisions.len()
        && stored.iter().zip(decisions).all(|(a, b)| {
            a.metadata.name == b.metadata.name
                && a.metadata.labels == b.metadata.labels
                && a.status.decisions == b.status.decisions
        })
}
