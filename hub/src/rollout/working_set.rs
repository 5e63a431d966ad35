//! The controller's in-memory copy of one replica set's reconcile inputs — its
//! per-cluster rollout states and the works it owns — kept current incrementally, so
//! that a reconcile after a burst of statuses reads the few works that changed instead
//! of listing and decoding the whole fleet again (issue 14's fan-out benchmark: every
//! status of 10,000 works re-triggered a full read).
//!
//! How it stays equal to the store (the invariant a full read would give):
//! - the controller's own writes ([`RecordRollout`](crate::store::replicaset_writes::RecordRollout))
//!   are mirrored by [`WorkingSet::recorded`], in the order the write applies them;
//! - every other work change is announced on the work watchers after it commits; the
//!   controller notes it ([`Pending::note`]) and, before the next reconcile, re-reads the
//!   works [`WorkingSet::needs_read`] asks for and stores them with
//!   [`WorkingSet::put_work`];
//! - anything it cannot follow (a lagged watcher, a stale write, another generation or
//!   incarnation of the replica set, an age past the controller's resync period)
//!   drops the set and the next reconcile reads everything again.
//!
//! Pure data; the property test in `rollout::tests` checks it against full reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::store::WorkRecord;
use crate::store::replicaset::{ClusterRollout, ReplicaSetKey, ReplicaSetRecord};
use crate::store::rules::replicaset::owns;
use crate::watch::{ChangeKind, WorkChange};

/// What a work change announced about one work, enough to tell whether the copy held
/// already reflects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkStamp {
    /// The work's uid.
    pub uid: String,
    /// Its generation after the change.
    pub generation: i64,
    /// Whether it is being deleted.
    pub deleting: bool,
}

/// The works of one replica set announced since its last reconcile: by cluster, the
/// stamp of a spec change (`None` when the work must be read whatever the copy holds:
/// a status, a completed deletion, or several different changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    clusters: BTreeMap<String, Option<WorkStamp>>,
}

impl Pending {
    /// Records a change. A spec change keeps its stamp (the controller's own writes
    /// announce works it already holds); anything else must be read.
    pub fn note(&mut self, change: &WorkChange) {
        let stamp = match change.kind {
            ChangeKind::Spec => Some(WorkStamp {
                uid: change.object.metadata.uid.clone(),
                generation: change.object.metadata.generation,
                deleting: change.object.metadata.deletion_timestamp.is_some(),
            }),
            ChangeKind::Status | ChangeKind::Deleted => None,
        };
        self.add(change.cluster().to_string(), stamp);
    }

    /// Merges changes noted elsewhere (a later batch).
    pub fn merge(&mut self, other: Pending) {
        for (cluster, stamp) in other.clusters {
            self.add(cluster, stamp);
        }
    }

    /// Two different announcements of one work: only a read tells which holds.
    fn add(&mut self, cluster: String, stamp: Option<WorkStamp>) {
        self.clusters
            .entry(cluster)
            .and_modify(|held| {
                if *held != stamp {
                    *held = None;
                }
            })
            .or_insert(stamp);
    }

    /// Whether nothing was noted.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// How many works were noted.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }
}

/// One replica set's reconcile inputs, as of its last reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkingSet {
    /// The replica set generation it was read at (a new spec reads everything again).
    generation: i64,
    /// The replica set's creation time (a replica set deleted and made again under the
    /// same name is another incarnation).
    created: DateTime<Utc>,
    /// When everything was read.
    loaded: Instant,
    states: BTreeMap<String, ClusterRollout>,
    works: BTreeMap<String, WorkRecord>,
    /// The last reconcile over exactly these inputs changed nothing.
    settled: bool,
}

impl WorkingSet {
    /// From a full read: the replica set, its states and candidate works (only those
    /// it owns, under its name, are kept — as the full read filters them).
    pub fn load(
        rs: &ReplicaSetRecord,
        states: Vec<ClusterRollout>,
        works: impl IntoIterator<Item = WorkRecord>,
        now: Instant,
    ) -> WorkingSet {
        let mut set = WorkingSet {
            generation: rs.generation,
            created: rs.created,
            loaded: now,
            states: states.into_iter().map(|s| (s.cluster.clone(), s)).collect(),
            works: BTreeMap::new(),
            settled: false,
        };
        for w in works {
            let cluster = w.key.cluster.clone();
            set.put_work(&rs.key, &cluster, Some(w));
        }
        set
    }

    /// Whether it is the copy of this replica set as read now (same incarnation and
    /// generation, read no longer than `max_age` ago).
    pub fn is_current(&self, rs: &ReplicaSetRecord, now: Instant, max_age: Duration) -> bool {
        self.generation == rs.generation
            && self.created == rs.created
            && now.saturating_duration_since(self.loaded) < max_age
    }

    /// The clusters of `pending` whose works must be read again.
    pub fn needs_read(&self, pending: &Pending) -> Vec<String> {
        pending
            .clusters
            .iter()
            .filter(
                |(cluster, stamp)| match (stamp, self.works.get(cluster.as_str())) {
                    (Some(s), Some(w)) => {
                        w.uid != s.uid
                            || w.generation != s.generation
                            || w.deletion.is_some() != s.deleting
                    }
                    _ => true,
                },
            )
            .map(|(cluster, _)| cluster.clone())
            .collect()
    }

    /// The work under the replica set's name on `cluster` as just read (`None`: there
    /// is none). A work it does not own is no input, as in a full read.
    pub fn put_work(&mut self, key: &ReplicaSetKey, cluster: &str, work: Option<WorkRecord>) {
        self.settled = false;
        match work.filter(|w| w.key.name == key.name && w.key.cluster == cluster && owns(w, key)) {
            Some(w) => {
                self.works.insert(cluster.to_string(), w);
            }
            None => {
                self.works.remove(cluster);
            }
        }
    }

    /// Mirrors a committed `RecordRollout`: states forgotten, then recorded (except
    /// the skipped clusters'), and the works it wrote as the write returned them.
    pub fn recorded(
        &mut self,
        key: &ReplicaSetKey,
        forget: &[String],
        record: &[ClusterRollout],
        skipped: &BTreeSet<String>,
        works: &[WorkRecord],
    ) {
        self.settled = false;
        for cluster in forget {
            self.states.remove(cluster);
        }
        for state in record {
            if !skipped.contains(&state.cluster) {
                self.states.insert(state.cluster.clone(), state.clone());
            }
        }
        for w in works {
            let cluster = w.key.cluster.clone();
            self.put_work(key, &cluster, Some(w.clone()));
        }
    }

    /// A reconcile over these inputs changed nothing.
    pub fn settle(&mut self) {
        self.settled = true;
    }

    /// Whether a reconcile would be a repeat: the last one over these inputs changed
    /// nothing and none of `pending`'s works needs reading. (Only work changes can be
    /// judged so: a replica set or decision change, or time, always reconciles.)
    pub fn unchanged_by(&self, pending: &Pending) -> bool {
        self.settled && self.needs_read(pending).is_empty()
    }

    /// The states, by cluster (the reconcile's `states` input).
    pub fn states(&self) -> Vec<ClusterRollout> {
        self.states.values().cloned().collect()
    }

    /// The works, by cluster (the reconcile's `works` input).
    pub fn works(&self) -> &BTreeMap<String, WorkRecord> {
        &self.works
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WorkKey;
    use crate::work_view::manifest_work;

    fn work(cluster: &str, generation: i64, owner: &str) -> WorkRecord {
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        WorkRecord {
            uid: format!("uid-{cluster}"),
            key: WorkKey {
                cluster: cluster.into(),
                name: "web".into(),
            },
            labels: [(
                workbus_schemas::replicaset::names::REPLICA_SET_LABEL.to_string(),
                owner.to_string(),
            )]
            .into(),
            annotations: Default::default(),
            spec: Default::default(),
            generation,
            created: now,
            updated: now,
            deletion: None,
            status: None,
        }
    }

    fn change(kind: ChangeKind, w: &WorkRecord) -> WorkChange {
        WorkChange {
            kind,
            object: manifest_work(w),
        }
    }

    fn key() -> ReplicaSetKey {
        ReplicaSetKey {
            namespace: "apps".into(),
            name: "web".into(),
        }
    }

    #[test]
    fn own_spec_changes_need_no_read_statuses_and_others_do() {
        let k = key();
        let mut set = WorkingSet {
            generation: 1,
            created: DateTime::from_timestamp(0, 0).unwrap(),
            loaded: Instant::now(),
            states: BTreeMap::new(),
            works: BTreeMap::new(),
            settled: false,
        };
        let w = work("c1", 2, "apps.web");
        set.recorded(&k, &[], &[], &BTreeSet::new(), std::slice::from_ref(&w));
        let mut pending = Pending::default();
        pending.note(&change(ChangeKind::Spec, &w));
        assert!(set.needs_read(&pending).is_empty());
        // A newer generation (someone else's write) is read.
        let mut pending = Pending::default();
        pending.note(&change(ChangeKind::Spec, &work("c1", 3, "apps.web")));
        assert_eq!(set.needs_read(&pending), ["c1"]);
        // A status, even after a known spec change, is read.
        let mut pending = Pending::default();
        pending.note(&change(ChangeKind::Spec, &w));
        pending.note(&change(ChangeKind::Status, &w));
        pending.note(&change(ChangeKind::Spec, &w));
        assert_eq!(set.needs_read(&pending), ["c1"]);
        // An unknown work is read; a foreign one is no input.
        let mut pending = Pending::default();
        pending.note(&change(ChangeKind::Spec, &work("c2", 1, "apps.web")));
        assert_eq!(set.needs_read(&pending), ["c2"]);
        set.put_work(&k, "c2", Some(work("c2", 1, "apps.other")));
        assert!(!set.works().contains_key("c2"));
        set.put_work(&k, "c1", None);
        assert!(set.works().is_empty());
    }

    #[test]
    fn only_a_settled_set_with_nothing_to_read_skips_a_reconcile() {
        let k = key();
        let w = work("c1", 2, "apps.web");
        let rs_created = DateTime::from_timestamp(0, 0).unwrap();
        let mut set = WorkingSet {
            generation: 1,
            created: rs_created,
            loaded: Instant::now(),
            states: BTreeMap::new(),
            works: BTreeMap::new(),
            settled: false,
        };
        set.recorded(&k, &[], &[], &BTreeSet::new(), std::slice::from_ref(&w));
        let mut own = Pending::default();
        own.note(&change(ChangeKind::Spec, &w));
        assert!(!set.unchanged_by(&own), "after a write, one more reconcile");
        set.settle();
        assert!(set.unchanged_by(&own));
        let mut status = Pending::default();
        status.note(&change(ChangeKind::Status, &w));
        assert!(!set.unchanged_by(&status));
        set.put_work(&k, "c1", Some(w));
        assert!(!set.unchanged_by(&Pending::default()));
    }
}
