//! When the agent's client certificate is due for rotation: once 20–25 % (drawn at
//! random per certificate, as OCM's `csr.go`: `0.2 + 0.2·rand·0.25`) of its lifetime is
//! left. The agent then asks for a new certificate over its own identity, so a cluster
//! never runs into an expired one while connected. Pure: times in, decision out.

use std::time::{Duration, SystemTime};

/// The least fraction of the lifetime left at which rotation starts.
pub const MIN_FRACTION_LEFT: f64 = 0.20;
/// The most: `MIN_FRACTION_LEFT` plus a random quarter of it.
pub const MAX_FRACTION_LEFT: f64 = 0.25;

/// The fraction of lifetime left at which one certificate is rotated, from a random
/// `unit` in `[0, 1)` (clamped): uniform in [`MIN_FRACTION_LEFT`, `MAX_FRACTION_LEFT`].
pub fn fraction_left(unit: f64) -> f64 {
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    MIN_FRACTION_LEFT + (MAX_FRACTION_LEFT - MIN_FRACTION_LEFT) * unit
}

/// The time at which a certificate valid `not_before..not_after` is rotated when
/// `fraction_left` of its lifetime is left. A certificate whose validity is reversed is
/// due at once.
pub fn rotation_time(
    not_before: SystemTime,
    not_after: SystemTime,
    fraction_left: f64,
) -> SystemTime {
    let Ok(lifetime) = not_after.duration_since(not_before) else {
        return SystemTime::UNIX_EPOCH;
    };
    let keep = lifetime.mul_f64(1.0 - fraction_left.clamp(0.0, 1.0));
    not_before + keep
}

/// Whether a certificate valid `not_before..not_after` must be rotated at `now`.
pub fn rotation_due(
    now: SystemTime,
    not_before: SystemTime,
    not_after: SystemTime,
    fraction_left: f64,
) -> bool {
    now >= rotation_time(not_before, not_after, fraction_left)
}

/// How long from `now` until the rotation time (zero when due).
pub fn until_rotation(
    now: SystemTime,
    not_before: SystemTime,
    not_after: SystemTime,
    fraction_left: f64,
) -> Duration {
    rotation_time(not_before, not_after, fraction_left)
        .duration_since(now)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(days: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY.mul_f64(days)
    }

    #[test]
    fn fraction_is_between_20_and_25_percent() {
        assert_eq!(fraction_left(0.0), 0.20);
        assert!((fraction_left(0.999_999) - 0.25).abs() < 1e-6);
        assert_eq!(fraction_left(f64::NAN), 0.20);
        assert_eq!(fraction_left(7.0), 0.25);
    }

    /// registration.md §8 item 17: 30 % left is kept, 19 % left rotates — for every
    /// fraction the agent may draw.
    #[test]
    fn thirty_percent_left_is_kept_nineteen_rotates() {
        let (nb, na) = (at(0.0), at(100.0));
        for unit in [0.0, 0.5, 0.999] {
            let f = fraction_left(unit);
            assert!(!rotation_due(at(70.0), nb, na, f), "30 % left, {f}");
            assert!(rotation_due(at(81.0), nb, na, f), "19 % left, {f}");
        }
        assert_eq!(rotation_time(nb, na, 0.20), at(80.0));
        assert_eq!(until_rotation(at(79.0), nb, na, 0.20), DAY);
        assert_eq!(until_rotation(at(90.0), nb, na, 0.20), Duration::ZERO);
    }

    #[test]
    fn reversed_validity_is_due_at_once() {
        assert!(rotation_due(at(1.0), at(2.0), at(1.5), 0.2));
    }
}
