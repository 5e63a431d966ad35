//! The hub's clock, injectable: health decisions (lease expiry, clock sync) are pure
//! functions of "now", and tests drive them with a [`ManualClock`] instead of waiting
//! minutes of real time.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Where the hub reads the time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(Utc::now))
    }

    /// A clock the test moves by hand, starting at `start`.
    pub fn manual(start: DateTime<Utc>) -> (Clock, ManualClock) {
        let now = Arc::new(Mutex::new(start));
        let read = now.clone();
        let clock = Clock(Arc::new(move || {
            *read.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
        }));
        (clock, ManualClock(now))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// The hand of a [`Clock::manual`].
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}
