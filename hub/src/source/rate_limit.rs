//! Per-cluster token buckets for what agents send the hub (statuses, spec resync
//! requests), so that one cluster — a broken agent or a forger behind a misconfigured
//! broker — cannot make the hub do unbounded work for it while others wait.
//!
//! A bucket holds up to `burst` tokens and gains `per_second` tokens a second; each
//! event takes one, and an event finding the bucket empty is refused (the caller counts
//! and logs it). The time is an input ([`RateLimiter::admit`] takes `now`), so the
//! decision is a pure function of the calls made.
//!
//! Memory is bounded: at most `max_keys` buckets are kept. When a new key arrives at
//! the cap, buckets that are full again (their cluster has been quiet) are forgotten
//! first, which changes no decision; if every bucket is still in use the new key is
//! refused until some refill — so a flood of made-up cluster names cannot grow the map,
//! and at worst delays new clusters by the refill time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens a full bucket holds: events accepted at once after a quiet spell.
    pub burst: f64,
    /// Tokens added per second: the sustained rate.
    pub per_second: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
    }
}

/// Token buckets by key (a cluster name).
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    max_keys: usize,
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    /// Buckets of `rate`, at most `max_keys` of them.
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        RateLimiter {
            rate,
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token of `key`'s bucket at `now`: `true` when the event may proceed.
    pub fn admit(&mut self, key: &str, now: Instant) -> bool {
        let rate = self.rate;
        if let Some(bucket) = self.buckets.get_mut(key) {
            bucket.refill(rate, now);
            return take(bucket);
        }
        if self.buckets.len() >= self.max_keys {
            self.buckets.retain(|_, b| {
                let mut b = *b;
                b.refill(rate, now);
                b.tokens < rate.burst
            });
            if self.buckets.len() >= self.max_keys {
                return false;
            }
        }
        let mut bucket = Bucket {
            tokens: rate.burst,
            at: now,
        };
        let admitted = take(&mut bucket);
        self.buckets.insert(key.to_string(), bucket);
        admitted
    }

    /// How many buckets are kept now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no bucket is kept.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

fn take(bucket: &mut Bucket) -> bool {
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// Spec resync requests per cluster: an agent sends one per (re)connect; 20 at once,
/// then one every 3 s.
pub const RESYNC_RATE: Rate = Rate {
    burst: 20.0,
    per_second: 1.0 / 3.0,
};

/// Statuses per cluster: a fleet-wide resync brings one per work at once, so the burst
/// is large; sustained 2,000 a second.
pub const STATUS_RATE: Rate = Rate {
    burst: 20_000.0,
    per_second: 2_000.0,
};

/// At most this many clusters are tracked by each limiter.
pub const MAX_TRACKED_CLUSTERS: usize = 100_000;

/// The hub's per-cluster limiters (shared by the source loop's tasks).
#[derive(Debug)]
pub struct ClusterLimits {
    /// Statuses ([`STATUS_RATE`]).
    pub statuses: std::sync::Mutex<RateLimiter>,
    /// Spec resync requests ([`RESYNC_RATE`]).
    pub resyncs: std::sync::Mutex<RateLimiter>,
}

impl Default for ClusterLimits {
    fn default() -> Self {
        ClusterLimits {
            statuses: std::sync::Mutex::new(RateLimiter::new(STATUS_RATE, MAX_TRACKED_CLUSTERS)),
            resyncs: std::sync::Mutex::new(RateLimiter::new(RESYNC_RATE, MAX_TRACKED_CLUSTERS)),
        }
    }
}

impl ClusterLimits {
    /// Takes a status token of `cluster` now.
    pub fn admit_status(&self, cluster: &str) -> bool {
        admit(&self.statuses, cluster)
    }

    /// Takes a resync token of `cluster` now.
    pub fn admit_resync(&self, cluster: &str) -> bool {
        admit(&self.resyncs, cluster)
    }
}

fn admit(limiter: &std::sync::Mutex<RateLimiter>, key: &str) -> bool {
    match limiter.lock() {
        Ok(mut l) => l.admit(key, Instant::now()),
        // A panic elsewhere poisoned it: keep limiting with what is there.
        Err(poisoned) => poisoned.into_inner().admit(key, Instant::now()),
    }
}

/// How long until a bucket of `rate` gains one token (for log lines).
pub fn refill_interval(rate: Rate) -> Duration {
    if rate.per_second > 0.0 {
        Duration::from_secs_f64((1.0 / rate.per_second).min(86_400.0))
    } else {
        Duration::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3.0,
        per_second: 1.0,
    };

    #[test]
    fn burst_then_refill_per_key() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(RATE, 10);
        assert!((0..3).all(|_| l.admit("a", t0)));
        assert!(!l.admit("a", t0));
        // Another cluster is unaffected.
        assert!(l.admit("b", t0));
        assert!(!l.admit("a", t0 + Duration::from_millis(500)));
        assert!(l.admit("a", t0 + Duration::from_millis(1500)));
        assert!(!l.admit("a", t0 + Duration::from_millis(1500)));
    }

    #[test]
    fn bounded_keys_forget_quiet_buckets_first() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(RATE, 2);
        assert!(l.admit("a", t0));
        assert!(l.admit("b", t0));
        // Both in use: a new key waits.
        assert!(!l.admit("c", t0));
        assert_eq!(l.len(), 2);
        // Once they are full again they are forgotten.
        assert!(l.admit("c", t0 + Duration::from_secs(10)));
        assert!(l.len() <= 2);
    }
}
