//! The agent's status outbox: every status event the agent produces, in the order it was
//! produced, until the broker acknowledges it — so statuses produced while the agent is
//! offline reach the hub in order after the reconnect (and after an agent restart: the
//! file store keeps the outbox, see [`crate::store`]), and the hub's log of a work's
//! transitions has no gap within the bound.
//!
//! **Bounded.** At most [`OutboxLimits::max_statuses`] entries and
//! [`OutboxLimits::max_bytes`] bytes (the message's topic, payload, content type and
//! user properties). Pushing past a bound compacts, oldest first, in three tiers
//! ([`compaction`], a pure function):
//! 1. *intermediate* transitions: entries that are neither the first nor the last of
//!    their work in the outbox;
//! 2. *first* transitions of works that have a later entry;
//! 3. *final* states (a work's only entry) — the last resort. Nothing is lost for good:
//!    the work store holds every work's current status, and the agent queues it again
//!    (with a new, higher sequence id) once the outbox has drained or on the next
//!    subscribe ([`crate::runtime`]).
//!
//! So every work keeps its first and last transition while the outbox holds no more
//! than two entries per work. The entry being published and the entry just pushed are
//! never dropped (one status larger than the byte bound still goes out). Dropped entries
//! are counted per tier (`AgentStats::outbox_compacted`, `outbox_compacted_finals`).
//!
//! **Order and duplicates.** Entries go out strictly one at a time in push order, so a
//! work's statuses reach the broker with ascending sequence ids (the generator is
//! monotonic per agent, also across restarts). A publish that failed is retried with the
//! very same message (same CloudEvent id and sequence id), so a status the broker
//! received twice is an exact duplicate the hub drops as not newer — never a different
//! event for the same transition.

use std::collections::{HashMap, VecDeque};

use workbus_schemas::mqtt::MqttMessage;

/// `--outbox-max-statuses`: at most this many statuses wait for the broker.
pub const DEFAULT_OUTBOX_MAX_STATUSES: usize = 10_000;

/// `--outbox-max-bytes`: at most this many bytes of statuses wait for the broker
/// (16 MiB: ~8,000 statuses of a typical 2 KiB work on a small device's disk).
pub const DEFAULT_OUTBOX_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The outbox's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Most entries held.
    pub max_statuses: usize,
    /// Most bytes held (sum of [`OutboxEntry::size`]).
    pub max_bytes: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            max_statuses: DEFAULT_OUTBOX_MAX_STATUSES,
            max_bytes: DEFAULT_OUTBOX_MAX_BYTES,
        }
    }
}

/// One status waiting for the broker's acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Position in production order (ascending, never reused within a data dir).
    pub id: u64,
    /// The work UID.
    pub key: String,
    /// The status hash the event carries.
    pub hash: String,
    /// The sequence id the event carries.
    pub sequence_id: String,
    /// The event, exactly as it is (re)published.
    pub message: MqttMessage,
}

impl OutboxEntry {
    /// The bytes this entry counts against [`OutboxLimits::max_bytes`].
    pub fn size(&self) -> u64 {
        let m = &self.message;
        let properties: usize = m
            .user_properties
            .iter()
            .map(|(k, v)| k.len().saturating_add(v.len()))
            .fold(0, usize::saturating_add);
        [
            m.topic.len(),
            m.payload.len(),
            m.content_type.as_ref().map_or(0, String::len),
            properties,
        ]
        .into_iter()
        .fold(0u64, |sum, n| sum.saturating_add(n as u64))
    }
}

/// Which tier of [`compaction`] dropped an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DroppedAs {
    /// Neither the first nor the last of its work.
    Intermediate,
    /// The first of a work with later entries.
    First,
    /// A work's only entry: its final state (queued again later from the work store).
    Final,
}

/// What [`compaction`] looks at of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot<'a> {
    /// The entry's id.
    pub id: u64,
    /// Its work.
    pub key: &'a str,
    /// Its size.
    pub size: u64,
}

/// The entries to drop, oldest first within each tier, so that `slots` (in push order)
/// fit `limits`; `keep` are never dropped (the entry in flight, the one just pushed).
/// See the module documentation for the tiers.
pub fn compaction(slots: &[Slot<'_>], limits: OutboxLimits, keep: &[u64]) -> Vec<(u64, DroppedAs)> {
    let mut count = slots.len();
    let mut bytes = slots.iter().fold(0u64, |s, e| s.saturating_add(e.size));
    let over = |count: usize, bytes: u64| count > limits.max_statuses || bytes > limits.max_bytes;
    if !over(count, bytes) {
        return Vec::new();
    }
    // Per work: its first and last entry (ids ascend in push order).
    let mut ends: HashMap<&str, (u64, u64)> = HashMap::new();
    for s in slots {
        ends.entry(s.key)
            .and_modify(|(_, last)| *last = s.id)
            .or_insert((s.id, s.id));
    }
    let mut dropped: Vec<(u64, DroppedAs)> = Vec::new();
    let mut gone = std::collections::HashSet::new();
    for tier in [DroppedAs::Intermediate, DroppedAs::First, DroppedAs::Final] {
        for s in slots {
            if !over(count, bytes) {
                return dropped;
            }
            if keep.contains(&s.id) || gone.contains(&s.id) {
                continue;
            }
            let (first, last) = ends[s.key];
            let in_tier = match tier {
                DroppedAs::Intermediate => s.id != first && s.id != last,
                DroppedAs::First => s.id == first && s.id != last,
                DroppedAs::Final => true,
            };
            if !in_tier {
                continue;
            }
            if tier == DroppedAs::First
                && let Some(e) = ends.get_mut(s.key)
            {
                // The last entry is now the work's only one.
                e.0 = e.1;
            }
            gone.insert(s.id);
            dropped.push((s.id, tier));
            count -= 1;
            bytes = bytes.saturating_sub(s.size);
        }
    }
    dropped
}

/// Per work: how many entries the outbox holds and the newest one's hash.
#[derive(Debug, Clone)]
struct Held {
    count: usize,
    newest_hash: String,
}

/// The outbox in memory; the caller persists what [`Outbox::push`] adds and removes.
#[derive(Debug)]
pub struct Outbox {
    entries: VecDeque<OutboxEntry>,
    bytes: u64,
    next_id: u64,
    limits: OutboxLimits,
    in_flight: Option<u64>,
    held: HashMap<String, Held>,
}

impl Outbox {
    /// An outbox holding `loaded` (what a previous run left, any order).
    pub fn new(limits: OutboxLimits, mut loaded: Vec<OutboxEntry>) -> Outbox {
        loaded.sort_by_key(|e| e.id);
        let next_id = loaded.last().map_or(1, |e| e.id.saturating_add(1));
        let mut outbox = Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            next_id,
            limits,
            in_flight: None,
            held: HashMap::new(),
        };
        for e in loaded {
            outbox.insert(e);
        }
        outbox
    }

    fn insert(&mut self, entry: OutboxEntry) {
        self.bytes = self.bytes.saturating_add(entry.size());
        self.held
            .entry(entry.key.clone())
            .and_modify(|h| {
                h.count += 1;
                h.newest_hash.clone_from(&entry.hash);
            })
            .or_insert_with(|| Held {
                count: 1,
                newest_hash: entry.hash.clone(),
            });
        self.entries.push_back(entry);
    }

    fn forget(&mut self, entry: &OutboxEntry) {
        self.bytes = self.bytes.saturating_sub(entry.size());
        if let Some(h) = self.held.get_mut(&entry.key) {
            h.count -= 1;
            if h.count == 0 {
                self.held.remove(&entry.key);
            }
        }
    }

    /// Appends a status; returns the new entry (to persist) and the entries compaction
    /// dropped to stay within the bounds (to remove from storage, and count).
    pub fn push(
        &mut self,
        key: String,
        hash: String,
        sequence_id: String,
        message: MqttMessage,
    ) -> (OutboxEntry, Vec<(OutboxEntry, DroppedAs)>) {
        let entry = OutboxEntry {
            id: self.next_id,
            key,
            hash,
            sequence_id,
            message,
        };
        self.next_id = self.next_id.saturating_add(1);
        self.insert(entry.clone());
        let dropped = if self.entries.len() > self.limits.max_statuses
            || self.bytes > self.limits.max_bytes
        {
            let slots: Vec<Slot<'_>> = self
                .entries
                .iter()
                .map(|e| Slot {
                    id: e.id,
                    key: &e.key,
                    size: e.size(),
                })
                .collect();
            let keep: Vec<u64> = self.in_flight.into_iter().chain([entry.id]).collect();
            let drop = compaction(&slots, self.limits, &keep);
            self.remove_ids(drop)
        } else {
            Vec::new()
        };
        (entry, dropped)
    }

    fn remove_ids(&mut self, drop: Vec<(u64, DroppedAs)>) -> Vec<(OutboxEntry, DroppedAs)> {
        if drop.is_empty() {
            return Vec::new();
        }
        let tiers: HashMap<u64, DroppedAs> = drop.into_iter().collect();
        let mut removed = Vec::with_capacity(tiers.len());
        let mut kept = VecDeque::with_capacity(self.entries.len());
        for e in std::mem::take(&mut self.entries) {
            match tiers.get(&e.id) {
                Some(tier) => removed.push((e, *tier)),
                None => kept.push_back(e),
            }
        }
        self.entries = kept;
        for (e, _) in &removed {
            self.forget(e);
        }
        removed
    }

    /// The oldest entry, now in flight (`None`: empty, or one is in flight already).
    pub fn next_to_send(&mut self) -> Option<OutboxEntry> {
        if self.in_flight.is_some() {
            return None;
        }
        let e = self.entries.front()?.clone();
        self.in_flight = Some(e.id);
        Some(e)
    }

    /// The broker acknowledged entry `id`: removes it.
    pub fn delivered(&mut self, id: u64) {
        if self.in_flight == Some(id) {
            self.in_flight = None;
        }
        if let Some(at) = self.entries.iter().position(|e| e.id == id)
            && let Some(e) = self.entries.remove(at)
        {
            self.forget(&e);
        }
    }

    /// The entry in flight was not delivered; it goes out again next.
    pub fn failed(&mut self) {
        self.in_flight = None;
    }

    /// The hash of the newest status held for work `key`.
    pub fn newest_hash(&self, key: &str) -> Option<&str> {
        self.held.get(key).map(|h| h.newest_hash.as_str())
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The sequence ids held (a restarted agent's generator continues above them).
    pub fn sequence_ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.sequence_id.as_str())
    }

    /// Ids of the entries held, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.iter().map(|e| e.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(n: usize) -> MqttMessage {
        MqttMessage {
            topic: "t".into(),
            payload: vec![b'x'; n],
            ..MqttMessage::default()
        }
    }

    fn limits(max_statuses: usize, max_bytes: u64) -> OutboxLimits {
        OutboxLimits {
            max_statuses,
            max_bytes,
        }
    }

    fn push(o: &mut Outbox, key: &str, hash: &str) -> Vec<(u64, DroppedAs)> {
        let (_, dropped) = o.push(key.into(), hash.into(), hash.into(), message(9));
        dropped.into_iter().map(|(e, t)| (e.id, t)).collect()
    }

    fn held(o: &Outbox) -> Vec<(String, String)> {
        o.entries
            .iter()
            .map(|e| (e.key.clone(), e.hash.clone()))
            .collect()
    }

    #[test]
    fn under_the_bound_nothing_is_dropped_and_order_is_kept() {
        let mut o = Outbox::new(limits(10, 1_000), Vec::new());
        for (k, h) in [("a", "1"), ("b", "1"), ("a", "2"), ("a", "3")] {
            assert!(push(&mut o, k, h).is_empty());
        }
        assert_eq!(o.len(), 4);
        assert_eq!(o.bytes(), 4 * 10);
        assert_eq!(o.newest_hash("a"), Some("3"));
        assert_eq!(o.newest_hash("b"), Some("1"));
        let ids: Vec<u64> = o.ids().collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
    }

    #[test]
    fn intermediates_go_first_keeping_first_and_last_transitions() {
        let mut o = Outbox::new(limits(4, 1_000), Vec::new());
        for h in ["1", "2", "3", "4"] {
            push(&mut o, "a", h);
        }
        assert_eq!(push(&mut o, "a", "5"), vec![(2, DroppedAs::Intermediate)]);
        assert_eq!(push(&mut o, "b", "1"), vec![(3, DroppedAs::Intermediate)]);
        assert_eq!(
            held(&o),
            [("a", "1"), ("a", "4"), ("a", "5"), ("b", "1")]
                .map(|(k, h)| (k.to_string(), h.to_string()))
        );
    }

    #[test]
    fn then_first_transitions_then_final_states_oldest_first() {
        let mut o = Outbox::new(limits(2, 1_000), Vec::new());
        push(&mut o, "a", "1");
        push(&mut o, "a", "2");
        // a has no intermediate: its first transition goes.
        assert_eq!(push(&mut o, "b", "1"), vec![(1, DroppedAs::First)]);
        // Only final states are left: the oldest goes (the work store still has it).
        assert_eq!(push(&mut o, "c", "1"), vec![(2, DroppedAs::Final)]);
        assert_eq!(o.newest_hash("a"), None);
        assert_eq!(held(&o).len(), 2);
    }

    #[test]
    fn the_byte_bound_compacts_too_and_never_drops_the_newest_or_in_flight() {
        let mut o = Outbox::new(limits(100, 25), Vec::new());
        push(&mut o, "a", "1");
        push(&mut o, "a", "2");
        assert_eq!(o.next_to_send().map(|e| e.id), Some(1));
        // 30 bytes > 25: entry 1 is in flight, 3 is new: 2 (a's final) goes.
        assert_eq!(push(&mut o, "b", "1"), vec![(2, DroppedAs::Final)]);
        // One entry larger than the bound alone still goes out.
        let mut big = Outbox::new(limits(100, 5), Vec::new());
        assert!(push(&mut big, "a", "1").is_empty());
        assert_eq!(big.len(), 1);
    }

    #[test]
    fn sending_delivering_and_failing() {
        let mut o = Outbox::new(limits(10, 1_000), Vec::new());
        push(&mut o, "a", "1");
        push(&mut o, "a", "2");
        let first = o.next_to_send().unwrap();
        assert!(o.next_to_send().is_none(), "one at a time");
        o.failed();
        assert_eq!(o.next_to_send().unwrap(), first, "retried unchanged");
        o.delivered(first.id);
        assert_eq!(o.newest_hash("a"), Some("2"));
        let second = o.next_to_send().unwrap();
        o.delivered(second.id);
        assert!(o.is_empty());
        assert_eq!(o.newest_hash("a"), None);
        assert_eq!(o.bytes(), 0);
    }

    #[test]
    fn reloaded_entries_keep_their_order_and_ids_continue() {
        let mut o = Outbox::new(limits(10, 1_000), Vec::new());
        push(&mut o, "a", "1");
        push(&mut o, "b", "1");
        let mut saved: Vec<OutboxEntry> = o.entries.iter().cloned().collect();
        saved.reverse();
        let mut again = Outbox::new(limits(10, 1_000), saved);
        assert_eq!(again.ids().collect::<Vec<_>>(), vec![1, 2]);
        let (e, _) = again.push("a".into(), "2".into(), "2".into(), message(1));
        assert_eq!(e.id, 3);
    }

    proptest! {
        /// Whatever is pushed: within the bounds (but for the protected entries), the
        /// order is push order, every work pushed and not delivered keeps its newest
        /// status until only final states are left to drop, and while the outbox has
        /// room for two entries per work every work keeps its first and last.
        #[test]
        fn compaction_keeps_final_states_and_first_last_transitions(
            keys in proptest::collection::vec(0u8..6, 1..200),
            max in 1usize..30,
        ) {
            let mut o = Outbox::new(limits(max, u64::MAX), Vec::new());
            let mut pushed: Vec<(String, u64)> = Vec::new();
            let mut finals_dropped = 0;
            for (n, k) in keys.iter().enumerate() {
                let key = format!("w{k}");
                let (e, dropped) = o.push(key.clone(), n.to_string(), n.to_string(), message(1));
                pushed.push((key, e.id));
                finals_dropped += dropped.iter().filter(|(_, t)| *t == DroppedAs::Final).count();
                prop_assert!(o.len() <= max.max(1));
                let ids: Vec<u64> = o.ids().collect();
                prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "push order");
            }
            let works: std::collections::BTreeSet<&String> = pushed.iter().map(|(k, _)| k).collect();
            if finals_dropped == 0 {
                // Every work's newest push is still held.
                for w in &works {
                    let newest = pushed.iter().rev().find(|(k, _)| k == *w).map(|(_, id)| *id);
                    prop_assert!(o.ids().any(|id| Some(id) == newest));
                }
            }
            if works.len() * 2 <= max {
                prop_assert_eq!(finals_dropped, 0);
                for w in &works {
                    let first = pushed.iter().find(|(k, _)| k == *w).map(|(_, id)| *id);
                    let mine: Vec<u64> = pushed.iter().filter(|(k, _)| k == *w).map(|(_, id)| *id).collect();
                    prop_assert!(o.ids().any(|id| Some(id) == first), "first transition of {} kept", w);
                    prop_assert!(o.ids().any(|id| Some(&id) == mine.last()));
                }
            }
        }
    }
}
