//! # Storage: objects, the resourceVersion, the event history, watchers
//!
//! One `resourceVersion` counter for the whole store, as etcd's revision: every write
//! (create, update, delete) takes the next number, and it is the object's
//! `metadata.resourceVersion` (a deleted object carries the version of its deletion).
//! Lists report the counter at the time of the list. Each write is an event
//! (`ADDED`, `MODIFIED`, `DELETED`) kept in a bounded history, from which a watch at a
//! given resourceVersion is replayed; a version older than the history is `410 Gone`
//! (`Expired`), as after an etcd compaction. Watchers are called under the store lock,
//! so every watcher sees events in resourceVersion order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use crate::meta;
use crate::registry::{GroupResource, Registry};

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One stored change.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub gr: GroupResource,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The object before a `MODIFIED` (selectors need both sides).
    pub old: Option<Arc<Value>>,
}

/// A registered watcher: it gets every event of its group/resource and decides itself
/// what to send; it returns false once its client is gone.
pub struct Watcher {
    pub id: u64,
    pub gr: GroupResource,
    pub deliver: Box<dyn FnMut(&Event) -> bool + Send>,
}

/// Objects of one group/resource, by (namespace, name).
pub type Objects = BTreeMap<(String, String), Value>;

/// Everything the server holds.
pub struct Store {
    pub registry: Registry,
    objects: BTreeMap<GroupResource, Objects>,
    rv: u64,
    history: VecDeque<Event>,
    history_limit: usize,
    /// The newest resourceVersion dropped from the history.
    compacted: u64,
    watchers: Vec<Watcher>,
    next_watcher: u64,
    /// Writes since the controllers last ran.
    pub dirty: bool,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Store {
            registry: Registry::default(),
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            watchers: Vec::new(),
            next_watcher: 1,
            dirty: false,
        }
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(gr)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of a group/resource, in one namespace or all, by namespace and name.
    pub fn list<'a>(
        &'a self,
        gr: &GroupResource,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(gr)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, v)| v)
    }

    /// Every stored object with its group/resource.
    pub fn all(&self) -> impl Iterator<Item = (&GroupResource, &Value)> {
        self.objects
            .iter()
            .flat_map(|(gr, m)| m.values().map(move |v| (gr, v)))
    }

    /// Stores `obj` (created or replaced) under the next resourceVersion, emitting
    /// `ADDED` or `MODIFIED`; returns the stored object.
    pub fn put(&mut self, gr: &GroupResource, mut obj: Value) -> Value {
        self.rv += 1;
        let rv = self.rv;
        meta::metadata_mut(&mut obj)
            .insert("resourceVersion".into(), Value::String(rv.to_string()));
        let key = (
            meta::namespace(&obj).to_string(),
            meta::name(&obj).to_string(),
        );
        let old = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key, obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(Event {
            rv,
            gr: gr.clone(),
            kind,
            object: Arc::new(obj.clone()),
            old: old.map(Arc::new),
        });
        obj
    }

    /// Removes an object under the next resourceVersion, emitting `DELETED`; returns it
    /// (with that resourceVersion).
    pub fn remove(&mut self, gr: &GroupResource, namespace: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(gr)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        self.rv += 1;
        let rv = self.rv;
        meta::metadata_mut(&mut obj)
            .insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.emit(Event {
            rv,
            gr: gr.clone(),
            kind: EventType::Deleted,
            object: Arc::new(obj.clone()),
            old: None,
        });
        Some(obj)
    }

    fn emit(&mut self, event: Event) {
        self.dirty = true;
        self.watchers
            .retain_mut(|w| w.gr != event.gr || (w.deliver)(&event));
        self.history.push_back(event);
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
    }

    /// Events of `gr` after `rv`, or `Err(oldest)` when `rv` is older than the history.
    pub fn events_since(&self, gr: &GroupResource, rv: u64) -> Result<Vec<Event>, u64> {
        if rv < self.compacted {
            return Err(self.compacted + 1);
        }
        Ok(self
            .history
            .iter()
            .filter(|e| e.rv > rv && e.gr == *gr)
            .cloned()
            .collect())
    }

    /// Registers a watcher; returns its id.
    pub fn add_watcher(
        &mut self,
        gr: GroupResource,
        deliver: Box<dyn FnMut(&Event) -> bool + Send>,
    ) -> u64 {
        let id = self.next_watcher;
        self.next_watcher += 1;
        self.watchers.push(Watcher { id, gr, deliver });
        id
    }

    pub fn remove_watcher(&mut self, id: u64) {
        self.watchers.retain(|w| w.id != id);
    }

    /// Drops every watcher (server shutdown).
    pub fn clear_watchers(&mut self) {
        self.watchers.clear();
    }

    pub fn watcher_count(&self) -> usize {
        self.watchers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_are_global_and_history_is_bounded() {
        let mut s = Store::new(3);
        let cm = GroupResource::new("", "configmaps");
        let a = s.put(&cm, json!({"metadata": {"name": "a", "namespace": "n"}}));
        assert_eq!(meta::resource_version(&a), "1");
        s.put(&cm, json!({"metadata": {"name": "b", "namespace": "n"}}));
        let d = s.remove(&cm, "n", "a").unwrap();
        assert_eq!(meta::resource_version(&d), "3");
        assert_eq!(s.events_since(&cm, 1).unwrap().len(), 2);
        s.put(&cm, json!({"metadata": {"name": "c", "namespace": "n"}}));
        assert!(matches!(s.events_since(&cm, 0), Err(2)));
        assert_eq!(s.events_since(&cm, 1).map(|e| e.len()).ok(), Some(3));
        assert_eq!(s.list(&cm, Some("n")).count(), 2);
    }
}
