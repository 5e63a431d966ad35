//! When the outbox publisher last made progress — acknowledged rows completed, or
//! nothing left to send — so `/readyz` can tell a wedged outbox (events pending, none
//! going out) from a busy or quiet one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The publisher's last progress, shared with the readiness check.
#[derive(Debug)]
pub struct OutboxProgress {
    origin: Instant,
    /// Milliseconds after `origin` of the last progress.
    last_ms: AtomicU64,
}

impl Default for OutboxProgress {
    /// Progress "now": a hub that just started is not wedged.
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl OutboxProgress {
    /// Records progress now.
    pub fn mark(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since the last progress.
    pub fn since(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}
