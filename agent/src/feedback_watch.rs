//! Feedback watches: `feedbackScrapeType: Watch` (manifestwork-semantics §2.3, checklist
//! item 43). A manifest whose merged manifestConfigs say `Watch` (the last matching
//! config's scrape type wins; [`crate::reconcile`] resolves it and reports the objects
//! in [`crate::reconcile::ReconcileOutcome::watch`]) is watched rather than polled: a
//! change of the object refreshes the status of the works that watch it at once,
//! without waiting for the status sync interval.
//!
//! One watch per resource + namespace ([`WatchKey`], like OCM's informer per GVR and
//! namespace), shared by every work and object that needs it, opened through
//! [`Target::watch`] when a work first needs it and closed (its receiver dropped) when
//! no held work needs it any more. At most `max` are open per agent
//! (`--max-feedback-watch`, default 50); what does not fit is silently polled (a debug
//! line and the `feedback_watch_fallbacks` counter), as is everything on a target that
//! cannot watch.
//!
//! The runtime keeps one [`FeedbackWatches`] per agent and awaits
//! [`FeedbackWatches::changed`] in its loop's `select!` next to its other inputs: no
//! task of its own, works still processed one at a time. Memory is bounded: every
//! watch channel is bounded by the target (64), interests are per held work and
//! manifest, and the works returned per wake-up are deduplicated.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::task::Poll;

use crate::target::{Changes, ObjectRef, ResourceMapping, Target};

/// One object a work wants watched: its resource (as the target resolved it, needed to
/// open the watch) and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTarget {
    /// The object's resource.
    pub resource: ResourceMapping,
    /// The object.
    pub at: ObjectRef,
}

impl WatchTarget {
    /// The watch that covers this object.
    pub fn key(&self) -> WatchKey {
        WatchKey {
            group: self.resource.group.clone(),
            version: self.resource.version.clone(),
            resource: self.resource.resource.clone(),
            namespace: self.at.namespace.clone(),
        }
    }
}

/// What one watch covers: a resource in one namespace (`""`: cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchKey {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace (`""` for cluster-scoped resources).
    pub namespace: String,
}

/// Whether an address a watch reported is the watched object (the version is ignored:
/// a watch may report addresses without it).
fn same_object(a: &ObjectRef, b: &ObjectRef) -> bool {
    (&a.group, &a.resource, &a.namespace, &a.name) == (&b.group, &b.resource, &b.namespace, &b.name)
}

/// What [`FeedbackWatches::plan`] decides for the keys the held works need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchPlan {
    /// Keys to open now (within the cap).
    pub open: Vec<WatchKey>,
    /// Open keys no held work needs any more.
    pub close: Vec<WatchKey>,
    /// Needed keys that do not fit under the cap: polled.
    pub over_cap: Vec<WatchKey>,
}

/// The pure rule: keep the open watches that are still needed, close the others, and
/// open needed ones in key order while fewer than `max` are open; the rest is over the
/// cap. Open watches are never closed to make room (first come, first served).
pub fn plan(needed: &BTreeSet<WatchKey>, open: &BTreeSet<WatchKey>, max: usize) -> WatchPlan {
    let close: Vec<WatchKey> = open.difference(needed).cloned().collect();
    let mut count = open.len() - close.len();
    let mut plan = WatchPlan {
        close,
        ..WatchPlan::default()
    };
    for key in needed.difference(open) {
        if count < max {
            plan.open.push(key.clone());
            count += 1;
        } else {
            plan.over_cap.push(key.clone());
        }
    }
    plan
}

/// The feedback watches of one agent.
#[derive(Debug)]
pub struct FeedbackWatches {
    max: usize,
    /// Open watches.
    open: BTreeMap<WatchKey, Changes>,
    /// What each held work wants watched (works wanting nothing are absent).
    interest: HashMap<String, Vec<WatchTarget>>,
    /// Needed keys currently polled because of the cap (counted once each).
    over_cap: BTreeSet<WatchKey>,
    /// False once the target said it cannot watch: everything is polled.
    supported: bool,
    /// A watch ended or failed to open since the last sync: the next
    /// [`FeedbackWatches::set`] syncs even when the work's wishes did not change.
    retry: bool,
}

/// What changed in the watches' bookkeeping, for the agent's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Watches open after the sync.
    pub open: usize,
    /// Keys that newly fell back to polling because of the cap.
    pub new_fallbacks: usize,
}

impl FeedbackWatches {
    /// No watches yet; at most `max` will be open.
    pub fn new(max: usize) -> Self {
        FeedbackWatches {
            max,
            open: BTreeMap::new(),
            interest: HashMap::new(),
            over_cap: BTreeSet::new(),
            supported: true,
            retry: false,
        }
    }

    /// Number of open watches.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Whether `key` is watched (open).
    pub fn is_open(&self, key: &WatchKey) -> bool {
        self.open.contains_key(key)
    }

    /// Records what the work `uid` wants watched now (empty: nothing, e.g. a work being
    /// deleted or forgotten), then opens and closes watches to match every held work's
    /// needs. A watch that cannot be opened is polled and tried again at the next sync.
    pub async fn set<T: Target>(
        &mut self,
        target: &T,
        uid: &str,
        wants: Vec<WatchTarget>,
    ) -> SyncReport {
        let unchanged = match self.interest.get(uid) {
            Some(old) => *old == wants,
            None => wants.is_empty(),
        };
        if unchanged && !self.retry {
            // The common case (a refresh with nothing new): no work at all.
            return SyncReport {
                open: self.open.len(),
                new_fallbacks: 0,
            };
        }
        if wants.is_empty() {
            self.interest.remove(uid);
        } else if !unchanged {
            self.interest.insert(uid.to_string(), wants);
        }
        // A watch that ended, or failed to open, is retried here.
        self.sync(target).await
    }

    async fn sync<T: Target>(&mut self, target: &T) -> SyncReport {
        let mut report = SyncReport::default();
        self.retry = false;
        let mut needed: BTreeMap<WatchKey, &ResourceMapping> = BTreeMap::new();
        if self.supported {
            for t in self.interest.values().flatten() {
                needed.entry(t.key()).or_insert(&t.resource);
            }
        }
        let keys: BTreeSet<WatchKey> = needed.keys().cloned().collect();
        let open: BTreeSet<WatchKey> = self.open.keys().cloned().collect();
        let decided = plan(&keys, &open, self.max);
        for key in &decided.close {
            self.open.remove(key); // dropping the receiver ends the watch
        }
        self.over_cap.retain(|k| keys.contains(k));
        for key in decided.over_cap {
            if self.over_cap.insert(key.clone()) {
                report.new_fallbacks += 1;
                tracing::debug!(
                    resource = %key.resource,
                    namespace = %key.namespace,
                    max = self.max,
                    "feedback watch limit reached; polling instead"
                );
            }
        }
        for key in decided.open {
            let Some(resource) = needed.get(&key) else {
                continue;
            };
            match target.watch(resource, &key.namespace).await {
                Ok(Some(changes)) => {
                    self.over_cap.remove(&key);
                    self.open.insert(key, changes);
                }
                Ok(None) => {
                    tracing::debug!("the target cannot watch; feedback is polled");
                    self.supported = false;
                    self.open.clear();
                    break;
                }
                Err(e) => {
                    tracing::debug!(resource = %key.resource, namespace = %key.namespace,
                        error = %e, "cannot open a feedback watch; polling");
                    self.retry = true;
                }
            }
        }
        report.open = self.open.len();
        report
    }

    /// Waits for changes on any open watch and returns the works that watch a changed
    /// object (deduplicated; several changes of one burst give each work once). Never
    /// resolves while no watch is open. A watch that ended is dropped here and reopened
    /// at the next [`FeedbackWatches::set`]. Cancel-safe: nothing is lost when the
    /// future is dropped before it resolves.
    pub async fn changed(&mut self) -> BTreeSet<String> {
        let changed = std::future::poll_fn(|cx| {
            let mut changed: Vec<ObjectRef> = Vec::new();
            let mut ended: Vec<WatchKey> = Vec::new();
            for (key, rx) in self.open.iter_mut() {
                // Drain what is queued (bounded by the channel, and by tokio's
                // cooperative budget should a producer keep up).
                loop {
                    match rx.poll_recv(cx) {
                        Poll::Ready(Some(at)) => {
                            if !changed.iter().any(|c| same_object(c, &at)) {
                                changed.push(at);
                            }
                        }
                        Poll::Ready(None) => {
                            ended.push(key.clone());
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
            }
            self.retry |= !ended.is_empty();
            for key in &ended {
                tracing::debug!(resource = %key.resource, namespace = %key.namespace, "feedback watch ended");
                self.open.remove(key);
            }
            if changed.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(changed)
            }
        })
        .await;
        self.works_watching(&changed)
    }

    /// The works that watch any of `changed`.
    fn works_watching(&self, changed: &[ObjectRef]) -> BTreeSet<String> {
        self.interest
            .iter()
            .filter(|(_, wants)| {
                wants
                    .iter()
                    .any(|t| changed.iter().any(|c| same_object(&t.at, c)))
            })
            .map(|(uid, _)| uid.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str) -> WatchKey {
        WatchKey {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            namespace: ns.into(),
        }
    }

    fn keys(names: &[&str]) -> BTreeSet<WatchKey> {
        names.iter().map(|n| key(n)).collect()
    }

    #[test]
    fn plan_keeps_opens_closes_and_caps() {
        let p = plan(&keys(&["a", "b", "c"]), &keys(&["b", "x"]), 2);
        assert_eq!(p.close, vec![key("x")]);
        assert_eq!(p.open, vec![key("a")]);
        assert_eq!(p.over_cap, vec![key("c")]);
        let p = plan(&keys(&["a"]), &keys(&["a"]), 1);
        assert_eq!(p, WatchPlan::default());
        let p = plan(&keys(&["a", "b"]), &BTreeSet::new(), 0);
        assert_eq!(p.over_cap.len(), 2, "a cap of 0 polls everything");
    }

    fn target(ns: &str, name: &str) -> WatchTarget {
        WatchTarget {
            resource: ResourceMapping {
                group: String::new(),
                version: "v1".into(),
                kind: "ConfigMap".into(),
                resource: "configmaps".into(),
                namespaced: true,
            },
            at: ObjectRef::new("", "v1", "configmaps", ns, name),
        }
    }

    #[tokio::test]
    async fn watches_follow_the_works_that_need_them() {
        use crate::target::sim::SimulatedCluster;
        use crate::target::{ApplyMode, OwnerChange};
        let sim = SimulatedCluster::new(Default::default());
        let mut w = FeedbackWatches::new(2);
        let r = w.set(&sim, "w1", vec![target("a", "x")]).await;
        assert_eq!(
            r,
            SyncReport {
                open: 1,
                new_fallbacks: 0
            }
        );
        // Shared by a second work; a third namespace is over the cap, counted once.
        w.set(&sim, "w2", vec![target("a", "x"), target("b", "y")])
            .await;
        let r = w.set(&sim, "w3", vec![target("c", "z")]).await;
        assert_eq!(
            r,
            SyncReport {
                open: 2,
                new_fallbacks: 1
            }
        );
        let r = w.set(&sim, "w3", vec![target("c", "z")]).await;
        assert_eq!(r.new_fallbacks, 0);
        // A change of x wakes both works watching it, once each.
        let x = ObjectRef::new("", "v1", "configmaps", "a", "x");
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "a"}});
        sim.apply(&x, &cm, &ApplyMode::Update, &OwnerChange::Keep)
            .await
            .unwrap();
        sim.delete_out_of_band("", "v1", "configmaps", "a", "x");
        let woken = w.changed().await;
        assert_eq!(woken, ["w1".to_string(), "w2".to_string()].into());
        // w2 goes: b is closed, which makes room for c.
        w.set(&sim, "w2", Vec::new()).await;
        assert!(!w.is_open(&key("b")));
        assert!(w.is_open(&key("c")));
        w.set(&sim, "w1", Vec::new()).await;
        let r = w.set(&sim, "w3", Vec::new()).await;
        assert_eq!(r.open, 0, "closed when no work needs them");
        assert!(w.interest.is_empty());
    }

    #[test]
    fn versions_do_not_matter_for_matching() {
        let a = ObjectRef::new("apps", "v1", "deployments", "ns", "d");
        let b = ObjectRef::new("apps", "", "deployments", "ns", "d");
        assert!(same_object(&a, &b));
        assert!(!same_object(
            &a,
            &ObjectRef::new("apps", "v1", "deployments", "ns", "e")
        ));
    }
}
