//! Jittered waits, as OCM's `wait.Jitter(d, factor)`: a wait of `d` stretched by a
//! random fraction of up to `factor` of it, so that thousands of works (and agents)
//! started together do not refresh or re-apply in lockstep (manifestwork-semantics §9:
//! status sync 10 s + up to 90 %, full re-apply 4 min + up to 50 %).
//!
//! [`jittered`] is the pure rule; [`Jitter`] is the small random source an agent keeps
//! (a splitmix64 state, no allocation, no shared lock), seeded per agent. A factor of 0
//! gives exact waits, which is how tests make timing deterministic.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// The largest factor accepted; larger ones (and NaN) are clamped (a typo must not make
/// a wait of years).
pub const MAX_FACTOR: f64 = 10.0;

/// `base` plus `unit × factor × base`, with `unit` in `[0, 1)` (clamped) and `factor`
/// clamped to `0..=MAX_FACTOR` (NaN counts as 0). Never panics, never overflows.
pub fn jittered(base: Duration, factor: f64, unit: f64) -> Duration {
    let factor = if factor.is_nan() {
        0.0
    } else {
        factor.clamp(0.0, MAX_FACTOR)
    };
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    let extra = base.as_secs_f64() * factor * unit;
    base.saturating_add(Duration::try_from_secs_f64(extra).unwrap_or_default())
}

/// A per-agent random source for [`jittered`] waits.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A source seeded from `seed` (e.g. the agent id) and the current time, so agents
    /// of one process and restarts of one agent draw different waits.
    pub fn new(seed: &str) -> Self {
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .hash(&mut h);
        Jitter { state: h.finish() }
    }

    /// The next number in `[0, 1)` (splitmix64).
    pub fn unit(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits as a fraction: exactly representable, always < 1.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `base` jittered by up to `factor` of it.
    pub fn wait(&mut self, base: Duration, factor: f64) -> Duration {
        if factor <= 0.0 || factor.is_nan() {
            return base; // no draw: exact waits stay exact
        }
        let unit = self.unit();
        jittered(base, factor, unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_rule() {
        let ten = Duration::from_secs(10);
        assert_eq!(jittered(ten, 0.9, 0.0), ten);
        assert_eq!(jittered(ten, 0.9, 0.5), Duration::from_secs_f64(14.5));
        assert_eq!(jittered(ten, 0.0, 0.99), ten);
        assert_eq!(jittered(ten, f64::NAN, 0.5), ten);
        assert_eq!(jittered(ten, 0.5, f64::NAN), ten);
        assert_eq!(jittered(ten, 1e9, 1.0), ten * 11, "factor clamped");
        assert_eq!(jittered(Duration::MAX, 0.9, 0.9), Duration::MAX);
    }

    #[test]
    fn draws_stay_in_range() {
        let mut j = Jitter::new("agent");
        let ten = Duration::from_secs(10);
        let mut seen_high = false;
        for _ in 0..1000 {
            let u = j.unit();
            assert!((0.0..1.0).contains(&u));
            let w = j.wait(ten, 0.9);
            assert!(w >= ten && w < Duration::from_secs(19), "{w:?}");
            seen_high |= w > Duration::from_secs(17);
        }
        assert!(seen_high, "the whole range is used");
        assert_eq!(j.wait(ten, 0.0), ten);
    }
}
