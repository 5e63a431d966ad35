//! When the agent renews its cluster's lease (`managed-cluster-lease`): every
//! `leaseDurationSeconds` (0 counts as 60, as in OCM) plus up to 25 % jitter
//! (`wait.JitterUntil(update, leaseDuration, 0.25, …)`), and once right after each
//! (re)connect. Pure: the random draw and the clock come from the caller.

use std::time::Duration;

use crate::jitter::jittered;

/// OCM's default and the value a lease duration of 0 stands for.
pub const DEFAULT_LEASE_DURATION_SECONDS: u32 = 60;

/// The jitter factor of the renewal period (OCM: 0.25).
pub const RENEWAL_JITTER: f64 = 0.25;

/// The lease duration in effect for a configured `leaseDurationSeconds`.
pub fn lease_duration(lease_duration_seconds: u32) -> Duration {
    match lease_duration_seconds {
        0 => Duration::from_secs(u64::from(DEFAULT_LEASE_DURATION_SECONDS)),
        s => Duration::from_secs(u64::from(s)),
    }
}

/// The wait until the next renewal: the lease duration plus `unit` (in `[0, 1)`) × 25 %.
pub fn renewal_wait(lease_duration_seconds: u32, unit: f64) -> Duration {
    jittered(lease_duration(lease_duration_seconds), RENEWAL_JITTER, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// registration.md §8 item 11: renewed every 60–75 s with the default lease.
    #[test]
    fn renewals_every_60_to_75_seconds() {
        assert_eq!(renewal_wait(60, 0.0), Duration::from_secs(60));
        assert_eq!(renewal_wait(60, 0.5), Duration::from_millis(67_500));
        assert!(renewal_wait(60, 0.999_999) < Duration::from_secs(75));
        assert_eq!(renewal_wait(0, 0.0), Duration::from_secs(60));
        assert_eq!(renewal_wait(10, 1.0), Duration::from_millis(12_500));
    }
}
