//! Subscription table and message routing.
//!
//! Subscriptions live in a trie keyed by topic level, so a PUBLISH costs a walk of its own
//! topic's levels whatever the number of subscribers: with one exact subscription per agent
//! (`.../consumers/<name>/sourceevents`) and one wildcard per hub, fan-out to 10,000 agents
//! is 10,000 short walks, not 10,000 × 10,000 filter comparisons.
//!
//! Routing happens on the publisher's task: matching subscribers get an `Arc` of the
//! message pushed into their bounded queue (`try_send`, never waiting), so one slow client
//! cannot stall a publisher, and per-publisher order is kept (each queue is FIFO).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::topic::ParsedFilter;

/// Broker-wide unique id of one client connection (client ids can be reused; this cannot).
pub(crate) type ConnId = u64;

/// One accepted PUBLISH, shared by every subscriber it is delivered to.
#[derive(Debug)]
pub(crate) struct Message {
    /// Topic name, valid UTF-8 (checked by the codec).
    pub topic: Bytes,
    pub payload: Bytes,
    /// QoS the publisher used.
    pub qos: u8,
    /// The MQTT 5 property block as the publisher sent it (user properties, content
    /// type, ...), forwarded byte for byte; subscription identifiers and forged publisher
    /// stamps removed, the broker's stamp appended (`crate::stamp`), topic aliases
    /// refused before routing. Empty when there are none or the publisher spoke
    /// 3.1.1. Shared, never copied per delivery (see `crate::publish`).
    pub properties: Bytes,
}

impl Message {
    /// What one queued copy is counted as against a client's `max_queued_bytes`: the
    /// message's bytes plus a fixed allowance for the queue entry itself. Copies share
    /// the bytes, but a stalled subscriber keeps every message it holds alive.
    pub fn queued_size(&self) -> usize {
        const ENTRY_OVERHEAD: usize = 64;
        self.topic.len() + self.payload.len() + self.properties.len() + ENTRY_OVERHEAD
    }
}

/// One message queued for one subscriber, at the QoS granted to that subscriber.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub msg: Arc<Message>,
    pub qos: u8,
}

/// Why the broker asks a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kick {
    None = 0,
    /// Another connection used the same client id (MQTT 5 reason 0x8E).
    SessionTakenOver = 1,
    /// The outgoing queue overflowed, in messages or bytes (MQTT 5 reason 0x97).
    QueueFull = 2,
    /// Dropped on request ([`crate::BrokerHandle::drop_clients`]): the socket is closed
    /// without a DISCONNECT, as a network failure would.
    Dropped = 3,
    /// Its client certificate was revoked after it connected (MQTT 5 reason 0x98,
    /// administrative action).
    Revoked = 4,
}

/// The router's handle on one connection: its queue and a way to ask it to close.
#[derive(Debug)]
pub(crate) struct ClientHandle {
    pub conn: ConnId,
    /// The identity the connection authenticated as, when the authorizer names one
    /// ([`crate::Authorizer::identity`]): only the same owner may take the client id over.
    pub owner: Option<Arc<str>>,
    /// The client certificate chain it connected with (leaf first; empty without one),
    /// re-checked when the revocation list changes.
    pub certificates: Vec<Bytes>,
    tx: mpsc::Sender<Delivery>,
    /// Bytes queued and not yet taken by the connection ([`Message::queued_size`]).
    queued_bytes: AtomicUsize,
    /// Most bytes queued; an offer beyond it is refused like a full queue.
    max_bytes: usize,
    kick: Notify,
    kick_reason: AtomicU8,
}

/// Result of offering a message to one queue.
enum Offer {
    Queued,
    Full,
    Closed,
}

impl ClientHandle {
    /// Creates the handle and the receiving end of its queue, which holds at most
    /// `capacity` messages and `max_bytes` bytes.
    pub fn new(
        conn: ConnId,
        owner: Option<Arc<str>>,
        certificates: Vec<Bytes>,
        capacity: usize,
        max_bytes: usize,
    ) -> (Arc<Self>, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(capacity);
        let handle = Arc::new(Self {
            conn,
            owner,
            certificates,
            tx,
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            kick: Notify::new(),
            kick_reason: AtomicU8::new(Kick::None as u8),
        });
        (handle, rx)
    }

    fn offer(&self, delivery: Delivery) -> Offer {
        let size = delivery.msg.queued_size();
        let before = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if before.saturating_add(size) > self.max_bytes {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            return Offer::Full;
        }
        match self.tx.try_send(delivery) {
            Ok(()) => Offer::Queued,
            Err(e) => {
                self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full(_) => Offer::Full,
                    mpsc::error::TrySendError::Closed(_) => Offer::Closed,
                }
            }
        }
    }

    /// Records that the connection took `delivery` off its queue.
    pub fn taken(&self, delivery: &Delivery) {
        self.queued_bytes
            .fetch_sub(delivery.msg.queued_size(), Ordering::AcqRel);
    }

    /// Bytes queued now.
    fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Messages queued now (sent to the queue, not yet taken by the connection).
    fn queued_messages(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Asks the connection to close; the first reason given wins.
    pub fn kick(&self, reason: Kick) {
        let _ = self.kick_reason.compare_exchange(
            Kick::None as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        // notify_one stores a permit, so the kick is seen even if the task is busy now.
        self.kick.notify_one();
    }

    /// Resolves when [`ClientHandle::kick`] was called; returns the reason.
    pub async fn kicked(&self) -> Kick {
        self.kick.notified().await;
        match self.kick_reason.load(Ordering::Acquire) {
            1 => Kick::SessionTakenOver,
            2 => Kick::QueueFull,
            3 => Kick::Dropped,
            4 => Kick::Revoked,
            _ => Kick::None,
        }
    }
}

/// One subscription of one connection.
#[derive(Debug)]
struct Sub {
    handle: Arc<ClientHandle>,
    qos: u8,
    no_local: bool,
}

/// A shared subscription group on one filter: each message goes to one member.
#[derive(Debug)]
struct Group {
    name: Box<str>,
    members: Vec<Sub>,
    /// Round-robin cursor; atomic so that routing needs only the read lock.
    next: AtomicUsize,
}

#[derive(Debug, Default)]
struct Subs {
    direct: Vec<Sub>,
    shared: Vec<Group>,
}

impl Subs {
    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.shared.is_empty()
    }

    /// Adds or replaces (same connection, same group) a subscription.
    fn insert(&mut self, group: Option<&str>, sub: Sub) {
        let list = match group {
            None => &mut self.direct,
            Some(name) => {
                let idx = match self.shared.iter().position(|g| &*g.name == name) {
                    Some(idx) => idx,
                    None => {
                        self.shared.push(Group {
                            name: name.into(),
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        self.shared.len() - 1
                    }
                };
                &mut self.shared[idx].members
            }
        };
        match list.iter_mut().find(|s| s.handle.conn == sub.handle.conn) {
            Some(existing) => *existing = sub,
            None => list.push(sub),
        }
    }

    fn remove(&mut self, group: Option<&str>, conn: ConnId) -> bool {
        match group {
            None => remove_conn(&mut self.direct, conn),
            Some(name) => {
                let Some(idx) = self.shared.iter().position(|g| &*g.name == name) else {
                    return false;
                };
                let removed = remove_conn(&mut self.shared[idx].members, conn);
                if self.shared[idx].members.is_empty() {
                    self.shared.swap_remove(idx);
                }
                removed
            }
        }
    }
}

fn remove_conn(list: &mut Vec<Sub>, conn: ConnId) -> bool {
    let before = list.len();
    list.retain(|s| s.handle.conn != conn);
    list.len() != before
}

/// One topic level of the trie.
#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// Child for a `+` level.
    plus: Option<Box<Node>>,
    /// Subscriptions whose filter ends with `#` after this level.
    hash: Option<Box<Subs>>,
    /// Subscriptions whose filter ends exactly at this level.
    here: Option<Box<Subs>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.here.is_none()
    }

    fn insert(&mut self, levels: &[&str], group: Option<&str>, sub: Sub) {
        match levels {
            [] => self.here.get_or_insert_default().insert(group, sub),
            ["#"] => self.hash.get_or_insert_default().insert(group, sub),
            ["+", rest @ ..] => self.plus.get_or_insert_default().insert(rest, group, sub),
            [level, rest @ ..] => self
                .children
                .entry((*level).into())
                .or_default()
                .insert(rest, group, sub),
        }
    }

    /// Removes a subscription and prunes nodes left empty; true if one was removed.
    fn remove(&mut self, levels: &[&str], group: Option<&str>, conn: ConnId) -> bool {
        fn from_slot(slot: &mut Option<Box<Subs>>, group: Option<&str>, conn: ConnId) -> bool {
            let Some(subs) = slot else { return false };
            let removed = subs.remove(group, conn);
            if subs.is_empty() {
                *slot = None;
            }
            removed
        }
        match levels {
            [] => from_slot(&mut self.here, group, conn),
            ["#"] => from_slot(&mut self.hash, group, conn),
            ["+", rest @ ..] => {
                let Some(child) = self.plus.as_mut() else {
                    return false;
                };
                let removed = child.remove(rest, group, conn);
                if child.is_empty() {
                    self.plus = None;
                }
                removed
            }
            [level, rest @ ..] => {
                let Some(child) = self.children.get_mut(*level) else {
                    return false;
                };
                let removed = child.remove(rest, group, conn);
                if child.is_empty() {
                    self.children.remove(*level);
                }
                removed
            }
        }
    }

    /// Collects every subscription set matching the remaining `levels` of a topic.
    fn collect<'a>(&'a self, levels: &[&str], first: bool, out: &mut Vec<&'a Subs>) {
        // MQTT 5 §4.7.2: wildcards at the first level do not match topics starting with '$'.
        let dollar = first && levels.first().is_some_and(|l| l.starts_with('$'));
        if let Some(hash) = &self.hash
            && !dollar
        {
            // `a/#` also matches `a` itself, hence before the end-of-topic check.
            out.push(hash);
        }
        let Some((level, rest)) = levels.split_first() else {
            if let Some(here) = &self.here {
                out.push(here);
            }
            return;
        };
        if let Some(child) = self.children.get(*level) {
            child.collect(rest, false, out);
        }
        if let Some(plus) = &self.plus
            && !dollar
        {
            plus.collect(rest, false, out);
        }
    }
}

/// Counters, readable while the broker runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub denied_publishes: AtomicU64,
    pub denied_subscriptions: AtomicU64,
    pub refused_connections: AtomicU64,
    pub revoked_disconnects: AtomicU64,
    pub abuse_disconnects: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub slow_consumer_disconnects: AtomicU64,
    pub refused_subscriptions: AtomicU64,
    pub protocol_violations: AtomicU64,
    pub refused_per_address: AtomicU64,
    pub refused_at_capacity: AtomicU64,
    pub accept_errors: AtomicU64,
}

/// A client id is held by a connection of another identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdTaken;

/// Subscriptions plus the client-id registry.
#[derive(Debug, Default)]
pub(crate) struct Router {
    trie: RwLock<Node>,
    clients: Mutex<HashMap<Arc<str>, Arc<ClientHandle>>>,
    pub counters: Counters,
}

/// The outgoing queues of all connections at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct QueueDepths {
    /// Messages queued over all connections.
    pub messages: u64,
    /// Their bytes ([`Message::queued_size`]).
    pub bytes: u64,
    /// Messages queued for the connection that has the most.
    pub deepest: u64,
}

impl Router {
    /// Sums the connections' queues (one pass over the clients, at scrape time).
    pub fn queue_depths(&self) -> QueueDepths {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.values().fold(QueueDepths::default(), |mut d, c| {
            let n = c.queued_messages() as u64;
            d.messages += n;
            d.bytes += c.queued_bytes() as u64;
            d.deepest = d.deepest.max(n);
            d
        })
    }

    /// Records `handle` as the live connection for `client_id`; a previous connection with
    /// the same id is asked to close (MQTT 5 §3.1.4 "session takeover") — unless it
    /// belongs to another identity (the handles' `owner`s differ): then `handle` is not
    /// registered and [`IdTaken`] is returned, so one identity cannot take over
    /// another's session.
    pub fn register(&self, client_id: Arc<str>, handle: Arc<ClientHandle>) -> Result<(), IdTaken> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = clients.get(&client_id)
            && old.owner != handle.owner
        {
            return Err(IdTaken);
        }
        let old = clients.insert(client_id, handle);
        drop(clients);
        if let Some(old) = old {
            old.kick(Kick::SessionTakenOver);
        }
        Ok(())
    }

    /// Forgets `client_id` if `conn` is still the connection registered for it.
    pub fn unregister(&self, client_id: &str, conn: ConnId) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.get(client_id).is_some_and(|h| h.conn == conn) {
            clients.remove(client_id);
        }
    }

    /// Kicks every connected client whose id satisfies `pred` with `reason`; returns how
    /// many.
    pub fn kick_where(&self, pred: impl Fn(&str, &ClientHandle) -> bool, reason: Kick) -> usize {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        for (id, handle) in clients.iter() {
            if pred(id, handle) {
                handle.kick(reason);
                n += 1;
            }
        }
        n
    }

    /// Number of registered (connected) clients.
    pub fn client_count(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Adds (or replaces) a subscription of `handle`'s connection.
    pub fn subscribe(&self, pf: &ParsedFilter, handle: Arc<ClientHandle>, qos: u8, no_local: bool) {
        let levels: Vec<&str> = pf.filter.split('/').collect();
        let sub = Sub {
            handle,
            qos,
            no_local,
        };
        self.trie
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(&levels, pf.share_group.as_deref(), sub);
    }

    /// Removes a subscription; true if it existed.
    pub fn unsubscribe(&self, pf: &ParsedFilter, conn: ConnId) -> bool {
        let levels: Vec<&str> = pf.filter.split('/').collect();
        self.trie
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&levels, pf.share_group.as_deref(), conn)
    }

    /// Queues `msg` for every matching subscriber; returns how many queues took it.
    pub fn route(&self, topic: &str, from: ConnId, msg: &Arc<Message>) -> usize {
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        let levels: Vec<&str> = topic.split('/').collect();
        let trie = self.trie.read().unwrap_or_else(PoisonError::into_inner);
        let mut matched = Vec::new();
        trie.collect(&levels, true, &mut matched);

        // A client with overlapping subscriptions gets one copy at the highest QoS granted
        // (MQTT 5 §3.3.4 allows this; we do not offer subscription identifiers).
        let mut targets: Vec<(&Arc<ClientHandle>, u8)> = matched
            .iter()
            .flat_map(|subs| subs.direct.iter())
            .filter(|s| !(s.no_local && s.handle.conn == from))
            .map(|s| (&s.handle, s.qos))
            .collect();
        if targets.len() > 1 {
            targets.sort_unstable_by(|a, b| a.0.conn.cmp(&b.0.conn).then(b.1.cmp(&a.1)));
            targets.dedup_by_key(|t| t.0.conn);
        }

        let mut queued = 0;
        let mut dropped = 0;
        for (handle, qos) in targets {
            let delivery = Delivery {
                msg: Arc::clone(msg),
                qos: qos.min(msg.qos),
            };
            match handle.offer(delivery) {
                Offer::Queued => queued += 1,
                Offer::Full => {
                    dropped += 1;
                    handle.kick(Kick::QueueFull);
                }
                Offer::Closed => {}
            }
        }

        for group in matched.iter().flat_map(|subs| subs.shared.iter()) {
            match offer_to_group(group, msg) {
                Some(()) => queued += 1,
                None => dropped += 1,
            }
        }
        self.counters
            .delivered
            .fetch_add(queued as u64, Ordering::Relaxed);
        self.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        queued
    }
}

/// Gives `msg` to one member of a shared group, round robin, skipping members whose queue
/// is full or closed. If every member is full, the one whose turn it was is kicked, so the
/// loss is visible (it reconnects and resynchronises) instead of silent.
fn offer_to_group(group: &Group, msg: &Arc<Message>) -> Option<()> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    let start = group.next.fetch_add(1, Ordering::Relaxed) % n;
    for i in 0..n {
        let member = &group.members[(start + i) % n];
        let delivery = Delivery {
            msg: Arc::clone(msg),
            qos: member.qos.min(msg.qos),
        };
        if let Offer::Queued = member.handle.offer(delivery) {
            return Some(());
        }
    }
    group.members[start].handle.kick(Kick::QueueFull);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::parse_filter;

    fn msg(topic: &str) -> Arc<Message> {
        Arc::new(Message {
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            payload: Bytes::from_static(b"x"),
            qos: 1,
            properties: Bytes::new(),
        })
    }

    fn sub(router: &Router, filter: &str, conn: ConnId) -> mpsc::Receiver<Delivery> {
        let (handle, rx) = ClientHandle::new(conn, None, Vec::new(), 16, usize::MAX);
        router.subscribe(
            &parse_filter(filter).expect("valid filter"),
            handle,
            1,
            false,
        );
        rx
    }

    fn count(rx: &mut mpsc::Receiver<Delivery>) -> usize {
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn wildcard_matching() {
        let r = Router::default();
        let cases: [(&str, &[&str], &[&str]); 6] = [
            ("a/+/c", &["a/b/c", "a//c"], &["a/b", "a/b/c/d", "b/b/c"]),
            ("a/#", &["a", "a/b", "a/b/c"], &["b", "ab"]),
            ("#", &["a", "/", "a/b"], &["$SYS/x"]),
            ("+/x", &["a/x", "/x"], &["$SYS/x", "a/y"]),
            ("$SYS/#", &["$SYS/x", "$SYS"], &["SYS/x"]),
            ("a/b", &["a/b"], &["a/b/", "a"]),
        ];
        for (i, (filter, yes, no)) in cases.into_iter().enumerate() {
            let mut rx = sub(&r, filter, i as u64);
            for t in yes {
                r.route(t, 999, &msg(t));
                assert_eq!(count(&mut rx), 1, "{filter} should match {t}");
            }
            for t in no {
                r.route(t, 999, &msg(t));
                assert_eq!(count(&mut rx), 0, "{filter} should not match {t}");
            }
            assert!(r.unsubscribe(&parse_filter(filter).expect("valid"), i as u64));
        }
        // Every subscription removed: the trie pruned back to an empty root.
        assert!(r.trie.read().expect("lock").is_empty());
    }

    #[test]
    fn overlapping_subscriptions_deliver_once() {
        let r = Router::default();
        let (handle, mut rx) = ClientHandle::new(1, None, Vec::new(), 16, usize::MAX);
        for f in ["a/b", "a/+", "#"] {
            r.subscribe(
                &parse_filter(f).expect("valid"),
                Arc::clone(&handle),
                1,
                false,
            );
        }
        assert_eq!(r.route("a/b", 2, &msg("a/b")), 1);
        assert_eq!(count(&mut rx), 1);
    }

    #[test]
    fn shared_group_round_robin() {
        let r = Router::default();
        let mut a = sub(&r, "$share/g/t/+", 1);
        let mut b = sub(&r, "$share/g/t/+", 2);
        for _ in 0..10 {
            assert_eq!(r.route("t/x", 3, &msg("t/x")), 1);
        }
        assert_eq!((count(&mut a), count(&mut b)), (5, 5));
    }

    #[test]
    fn full_queue_kicks() {
        let r = Router::default();
        let (handle, _rx) = ClientHandle::new(1, None, Vec::new(), 1, usize::MAX);
        r.subscribe(
            &parse_filter("t").expect("valid"),
            Arc::clone(&handle),
            1,
            false,
        );
        assert_eq!(r.route("t", 2, &msg("t")), 1);
        assert_eq!(r.route("t", 2, &msg("t")), 0);
        assert_eq!(
            handle.kick_reason.load(Ordering::Acquire),
            Kick::QueueFull as u8
        );
    }

    #[test]
    fn byte_bound_kicks_and_taking_frees() {
        let r = Router::default();
        let size = msg("t").queued_size();
        let (handle, mut rx) = ClientHandle::new(1, None, Vec::new(), 100, size * 2);
        r.subscribe(
            &parse_filter("t").expect("valid"),
            Arc::clone(&handle),
            1,
            false,
        );
        assert_eq!(r.route("t", 2, &msg("t")), 1);
        assert_eq!(r.route("t", 2, &msg("t")), 1);
        assert_eq!(handle.queued_bytes(), size * 2);
        assert_eq!(
            r.route("t", 2, &msg("t")),
            0,
            "third copy exceeds the bytes"
        );
        assert_eq!(
            handle.kick_reason.load(Ordering::Acquire),
            Kick::QueueFull as u8
        );
        let d = rx.try_recv().expect("queued");
        handle.taken(&d);
        assert_eq!(handle.queued_bytes(), size);
        assert_eq!(r.route("t", 2, &msg("t")), 1, "room again");
    }
}
