//! Resumable SSE watches: the recent changes of one kind, numbered, so that a watcher
//! whose connection dropped reconnects with `Last-Event-ID` and receives exactly the
//! changes it missed (the SSE `id:` of every event is `<epoch>.<n>`).
//!
//! Bounded: at most `capacity` changes are kept, and only while a watcher is connected
//! or left less than `window` ago (nobody watching: nothing is kept, nothing rendered).
//! A change not kept empties the log, so a resume can never skip it silently: when the
//! id asked for is no longer held (too old, or from an earlier process — the epoch
//! differs), [`ReplayLog::resume`] says [`Resume::Expired`] and the watcher must
//! re-list, as a Kubernetes watch answers 410 Gone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

/// One numbered change.
#[derive(Debug)]
pub struct Numbered<T> {
    /// The SSE `id:` (`<epoch>.<n>`).
    pub id: String,
    /// The change.
    pub item: T,
}

/// Where a new watcher starts.
pub enum Resume<T> {
    /// Live changes; `replay` are those after the asked-for id (empty for a new watch).
    Live {
        /// Missed changes, oldest first.
        replay: Vec<Arc<Numbered<T>>>,
        /// Every change from now on.
        live: broadcast::Receiver<Arc<Numbered<T>>>,
        /// The id of the newest change so far (a new watch's bookmark).
        position: String,
    },
    /// The id is no longer held: re-list, then watch anew.
    Expired,
}

/// The numbered log and its live channel.
#[derive(Debug)]
pub struct ReplayLog<T> {
    epoch: String,
    capacity: usize,
    window: Duration,
    tx: broadcast::Sender<Arc<Numbered<T>>>,
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    /// The number of the last change (kept or not).
    last: u64,
    /// Kept changes: contiguous, ending at `last` when not empty.
    entries: VecDeque<Arc<Numbered<T>>>,
    /// Keep changes until then even without a watcher.
    keep_until: Option<Instant>,
}

/// How many changes are kept by default (the live channel holds as many).
pub const DEFAULT_CAPACITY: usize = 1024;
/// How long changes are kept after the last watcher left, by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

impl<T> Default for ReplayLog<T> {
    fn default() -> Self {
        ReplayLog::new(DEFAULT_CAPACITY, DEFAULT_WINDOW)
    }
}

impl<T> ReplayLog<T> {
    /// A log keeping `capacity` changes, `window` after the last watcher left.
    pub fn new(capacity: usize, window: Duration) -> Self {
        let capacity = capacity.max(1);
        ReplayLog {
            epoch: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            capacity,
            window,
            tx: broadcast::channel(capacity).0,
            inner: Mutex::new(Inner {
                last: 0,
                entries: VecDeque::new(),
                keep_until: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn id(&self, n: u64) -> String {
        format!("{}.{n}", self.epoch)
    }

    /// Whether the next change is to be recorded (a watcher is connected or left less
    /// than the window ago; a connected watcher extends the window). When it is not,
    /// the change is counted as skipped in the same step, so that a watcher starting
    /// meanwhile cannot miss it: resumes from before it expire.
    pub fn wants(&self) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        if self.tx.receiver_count() > 0 {
            inner.keep_until = Some(now + self.window);
            return true;
        }
        if inner.keep_until.is_some_and(|t| now < t) {
            return true;
        }
        inner.last += 1;
        inner.entries.clear();
        false
    }

    /// Records a change and sends it to the connected watchers.
    pub fn record(&self, item: T) {
        let mut inner = self.lock();
        inner.last += 1;
        let numbered = Arc::new(Numbered {
            id: self.id(inner.last),
            item,
        });
        if inner.entries.len() == self.capacity {
            inner.entries.pop_front();
        }
        inner.entries.push_back(numbered.clone());
        let _ = self.tx.send(numbered);
    }

    /// A watcher left: keep changes for the window from now.
    pub fn left(&self) {
        self.lock().keep_until = Some(Instant::now() + self.window);
    }

    /// A watcher starts: fresh (`last_event_id` none) or after the given id.
    pub fn resume(&self, last_event_id: Option<&str>) -> Resume<T> {
        let mut inner = self.lock();
        inner.keep_until = Some(Instant::now() + self.window);
        let replay = match last_event_id {
            None => Vec::new(),
            Some(id) => {
                let Some(n) = id
                    .strip_prefix(&self.epoch)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    return Resume::Expired;
                };
                let first = (!inner.entries.is_empty())
                    .then(|| inner.last + 1 - inner.entries.len() as u64);
                match first {
                    _ if n > inner.last => return Resume::Expired,
                    _ if n == inner.last => Vec::new(),
                    Some(first) if first <= n + 1 => inner
                        .entries
                        .iter()
                        .skip((n + 1 - first) as usize)
                        .cloned()
                        .collect(),
                    _ => return Resume::Expired,
                }
            }
        };
        Resume::Live {
            replay,
            live: self.tx.subscribe(),
            position: self.id(inner.last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: Resume<u32>) -> Option<Vec<u32>> {
        match r {
            Resume::Live { replay, .. } => Some(replay.iter().map(|n| n.item).collect()),
            Resume::Expired => None,
        }
    }

    fn position(r: &ReplayLog<u32>) -> String {
        match r.resume(None) {
            Resume::Live { position, .. } => position,
            Resume::Expired => unreachable!(),
        }
    }

    #[test]
    fn resumes_after_the_last_seen_change() {
        let log = ReplayLog::new(4, Duration::from_secs(60));
        let start = position(&log);
        for i in 1..=3 {
            log.record(i);
        }
        assert_eq!(ids(log.resume(Some(&start))), Some(vec![1, 2, 3]));
        let after_two = format!("{}.2", log.epoch);
        assert_eq!(ids(log.resume(Some(&after_two))), Some(vec![3]));
        assert_eq!(ids(log.resume(Some(&position(&log)))), Some(vec![]));
    }

    #[test]
    fn expires_what_it_no_longer_holds() {
        let log = ReplayLog::new(2, Duration::from_secs(60));
        let start = position(&log);
        for i in 1..=3 {
            log.record(i);
        }
        // Capacity 2: change 1 is gone.
        assert!(ids(log.resume(Some(&start))).is_none());
        assert_eq!(
            ids(log.resume(Some(&format!("{}.1", log.epoch)))),
            Some(vec![2, 3])
        );
        // A change nobody recorded (no watcher, no window): nothing before it can be
        // resumed.
        let idle: ReplayLog<u32> = ReplayLog::new(2, Duration::ZERO);
        let before = position(&idle);
        assert!(!idle.wants());
        assert!(ids(idle.resume(Some(&before))).is_none());
        assert_eq!(ids(idle.resume(Some(&position(&idle)))), Some(vec![]));
        // Another process's ids, garbage, the future.
        assert!(ids(log.resume(Some("other.1"))).is_none());
        assert!(ids(log.resume(Some("x"))).is_none());
        assert!(ids(log.resume(Some(&format!("{}.99", log.epoch)))).is_none());
    }

    #[test]
    fn records_only_with_a_watcher_or_within_the_window() {
        let log: ReplayLog<u32> = ReplayLog::new(4, Duration::from_millis(0));
        assert!(!log.wants());
        let live = log.resume(None);
        assert!(log.wants());
        drop(live);
        log.left();
        assert!(!log.wants(), "zero window: not kept once the watcher left");
        let kept: ReplayLog<u32> = ReplayLog::new(4, Duration::from_secs(60));
        drop(kept.resume(None));
        kept.left();
        assert!(kept.wants(), "within the window");
    }
}
