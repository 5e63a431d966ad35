//! Connections per source address: one host (a misbehaving client, a scanner) may hold
//! at most a configured number of connections, so it cannot take every connection slot
//! and file descriptor from the rest of the fleet. Loopback is exempt unless configured
//! otherwise (the embedded broker's hub, tests and benchmarks connect from 127.0.0.1).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Live connection counts per source address. Entries are removed when their count
/// drops to 0, so memory is bounded by the number of connected addresses.
#[derive(Debug)]
pub(crate) struct PerAddress {
    /// Most connections per address; 0 = unlimited.
    max: usize,
    limit_loopback: bool,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one connection's place in its address' count; released on drop.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    owner: Option<(Arc<PerAddress>, IpAddr)>,
}

impl PerAddress {
    pub fn new(max: usize, limit_loopback: bool) -> Arc<Self> {
        Arc::new(Self {
            max,
            limit_loopback,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for a connection from `ip`, or `None` when `ip` is at its limit.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = canonical(ip);
        if self.max == 0 || (ip.is_loopback() && !self.limit_loopback) {
            return Some(AddressSlot { owner: None });
        }
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            owner: Some((Arc::clone(self), ip)),
        })
    }

    /// Connections currently counted for `ip` (tests).
    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&canonical(ip)).copied().unwrap_or(0)
    }
}

/// IPv4-mapped IPv6 addresses count as their IPv4 address (a dual-stack listener
/// reports IPv4 clients that way).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((owner, ip)) = self.owner.take() {
            let mut counts = owner.counts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = counts.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_address_and_releases_on_drop() {
        let p = PerAddress::new(2, false);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let s1 = p.acquire(a).expect("first");
        let _s2 = p.acquire(a).expect("second");
        assert!(p.acquire(a).is_none(), "third from the same address");
        let _s3 = p.acquire(b).expect("another address");
        drop(s1);
        assert_eq!(p.count(a), 1);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let _s4 = p.acquire(mapped).expect("freed slot");
        assert!(p.acquire(a).is_none(), "mapped address counts as IPv4");
    }

    #[test]
    fn loopback_exempt_unless_configured() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let p = PerAddress::new(1, false);
        let held: Vec<_> = (0..5).map(|_| p.acquire(lo).expect("exempt")).collect();
        assert_eq!(held.len(), 5);
        let strict = PerAddress::new(1, true);
        let _one = strict.acquire(lo).expect("first");
        assert!(strict.acquire(lo).is_none());
        let unlimited = PerAddress::new(0, true);
        assert!(unlimited.acquire(lo).is_some());
    }
}
