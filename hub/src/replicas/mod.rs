//! Several active hubs on one PostgreSQL database (issue 16; ARCHITECTURE.md "Several
//! hubs"): each replica publishes the outbox rows of the clusters whose partition it
//! holds a lease on, takes statuses through an MQTT 5 shared subscription, and serves
//! REST like any other.
//!
//! - [`partition`]: cluster → partition (pure);
//! - [`planner`]: which partitions a replica keeps, claims and releases (pure);
//! - [`lease`]: the task renewing the leases and the [`Ownership`] the outbox reads;
//! - [`watch_relay`]: other replicas' work changes to this replica's watchers.
//!
//! A hub on SQLite is the only replica: [`Ownership::everything`].

pub mod lease;
pub mod partition;
pub mod planner;
pub mod watch_relay;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use partition::{PartitionSet, bit, partition_of};

/// How long a lease lives past its last renewal (and a replica row past its last
/// heartbeat).
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often a replica renews its leases (and claims or releases partitions).
pub const LEASE_RENEW: Duration = Duration::from_secs(1);
/// How long before the database's expiry a replica stops believing in its lease: its
/// own deadline is the start of the renewing transaction + TTL − margin.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);
/// How long a partition taken over from an *expired* lease waits before its rows are
/// published, so rows the old owner handed to its MQTT client just before its deadline
/// reach the broker first.
pub const TAKEOVER_QUIET: Duration = Duration::from_secs(1);

/// Why a replica configuration cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// `--replica-id` with a SQLite store (one hub per SQLite database).
    #[error("--replica-id needs a PostgreSQL store: a SQLite store serves exactly one hub")]
    SqliteIsSingleHub,
    /// The id is empty or unusable.
    #[error("--replica-id {0:?}: use 1-50 characters of [A-Za-z0-9._-]")]
    InvalidId(String),
}

/// The longest replica id.
pub const MAX_ID: usize = 50;

/// Checks a replica id: 1–50 characters of `[A-Za-z0-9._-]` (shown in tables and
/// logs, stored as a key, and part of the connections' `application_name`, which
/// PostgreSQL cuts at 63 bytes).
pub fn check_id(id: &str) -> Result<(), ReplicaError> {
    if crate::store::keyring::is_plain_id(id, MAX_ID) {
        Ok(())
    } else {
        Err(ReplicaError::InvalidId(id.to_string()))
    }
}

/// The default replica id: `<hostname>-<pid>`, and `-<n>` for the second and later hub
/// of one process (tests run several).
pub fn default_id() -> String {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "hub".into());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    let host = if host.is_empty() { "hub".into() } else { host };
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    match n {
        0 => format!("{host}-{}", std::process::id()),
        n => format!("{host}-{}-{n}", std::process::id()),
    }
}

/// One partition this replica holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: i64,
    /// Publishing starts here (a takeover's quiet period).
    from: Instant,
    /// The replica's own deadline for the lease (before the database's expiry).
    until: Instant,
}

/// Which clusters' outbox rows this replica may publish now. Written by the lease task,
/// read by the outbox before every row it hands to the transport.
#[derive(Debug)]
pub struct Ownership {
    /// `None`: the only replica (SQLite, or a test): everything.
    held: Option<Mutex<HashMap<u32, Held>>>,
}

impl Ownership {
    /// Owns every partition for ever (a single hub).
    pub fn everything() -> Ownership {
        Ownership { held: None }
    }

    /// Owns nothing until the lease task says so.
    pub fn leased() -> Ownership {
        Ownership {
            held: Some(Mutex::new(HashMap::new())),
        }
    }

    /// Whether this replica may publish `cluster`'s rows now.
    pub fn owns(&self, cluster: &str) -> bool {
        self.publishable(Instant::now()) & bit(partition_of(cluster)) != 0
    }

    /// The partitions publishable at `now`.
    pub fn publishable(&self, now: Instant) -> PartitionSet {
        let Some(held) = &self.held else {
            return PartitionSet::MAX;
        };
        let held = held.lock().unwrap_or_else(PoisonError::into_inner);
        held.iter()
            .filter(|(_, h)| h.from <= now && now < h.until)
            .fold(0, |set, (p, _)| set | bit(*p))
    }

    /// Partitions held (publishable or in their quiet period) with their epochs.
    pub fn held(&self) -> Vec<(u32, i64)> {
        let Some(held) = &self.held else {
            return Vec::new();
        };
        let held = held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<(u32, i64)> = held.iter().map(|(p, h)| (*p, h.epoch)).collect();
        out.sort_unstable();
        out
    }

    /// After a renewal that started at `started`: exactly `owned` (partition, epoch,
    /// taken over from an expired lease) are held until `started + TTL − margin`.
    fn renewed(&self, started: Instant, owned: &[(u32, i64, bool)]) {
        let Some(held) = &self.held else {
            return;
        };
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        let until = started + LEASE_TTL - LEASE_MARGIN;
        let mut next = HashMap::with_capacity(owned.len());
        for &(p, epoch, taken_over) in owned {
            let from = match held.get(&p) {
                // Same lease, renewed: keeps its start.
                Some(h) if h.epoch == epoch => h.from,
                _ if taken_over => started + TAKEOVER_QUIET,
                _ => started,
            };
            next.insert(p, Held { epoch, from, until });
        }
        *held = next;
    }

    /// Stops publishing everything at once (shutdown, or before releasing).
    fn drop_all(&self) {
        if let Some(held) = &self.held {
            held.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_believed_only_until_its_own_deadline() {
        let o = Ownership::leased();
        let start = Instant::now();
        let p = partition_of("edge-1");
        o.renewed(start, &[(p, 1, false)]);
        assert_ne!(o.publishable(start) & bit(p), 0);
        let deadline = start + LEASE_TTL - LEASE_MARGIN;
        assert_ne!(
            o.publishable(deadline - Duration::from_millis(1)) & bit(p),
            0
        );
        assert_eq!(
            o.publishable(deadline) & bit(p),
            0,
            "fenced at the deadline"
        );
        assert_eq!(o.publishable(start) & !bit(p), 0, "nothing else");
    }

    #[test]
    fn a_takeover_waits_its_quiet_period_a_renewal_does_not_restart_it() {
        let o = Ownership::leased();
        let start = Instant::now();
        o.renewed(start, &[(3, 7, true), (4, 2, false)]);
        assert_eq!(o.publishable(start), bit(4));
        assert_eq!(o.publishable(start + TAKEOVER_QUIET), bit(3) | bit(4));
        // Renewed a second later: same epochs, publishable at once.
        let later = start + LEASE_RENEW;
        o.renewed(later, &[(3, 7, true), (4, 2, false)]);
        assert_eq!(o.publishable(later + TAKEOVER_QUIET / 2), bit(3) | bit(4));
        // A partition not renewed is dropped at once.
        o.renewed(later, &[(4, 2, false)]);
        assert_eq!(o.publishable(later + TAKEOVER_QUIET), bit(4));
        assert_eq!(o.held(), vec![(4, 2)]);
    }

    #[test]
    fn a_single_hub_owns_everything() {
        let o = Ownership::everything();
        assert!(o.owns("any") && o.publishable(Instant::now()) == u64::MAX);
    }

    #[test]
    fn replica_ids_are_checked() {
        assert!(check_id("hub-a.1_x").is_ok());
        assert!(check_id("").is_err() && check_id("a b").is_err());
        assert!(check_id(&"x".repeat(51)).is_err() && check_id(&"x".repeat(50)).is_ok());
        let (a, b) = (default_id(), default_id());
        assert_ne!(a, b);
        assert!(check_id(&a).is_ok() && check_id(&b).is_ok());
    }
}
