//! `/readyz`: whether this hub can do its work now, decided as a pure function over
//! what the handler observed (`api::readyz` does the reading).
//!
//! Ready means: the store answers, the MQTT session is connected *and* holds its
//! subscriptions (statuses can arrive), and the outbox is not wedged — events pending
//! while nothing went out for [`OUTBOX_WEDGED_AFTER`]. `/livez` (and `/healthz`) only
//! say the process answers: a hub waiting for its broker is alive, not ready, and must
//! not be restarted for it.

use std::time::Duration;

/// How long pending outbox events may go without any being published before the hub
/// reports itself not ready. Longer than the outbox's longest retry backoff (10 s) and
/// acknowledgement timeout, so a slow broker is not called wedged.
pub const OUTBOX_WEDGED_AFTER: Duration = Duration::from_secs(60);

/// What the readiness check read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Outbox events pending, or `None` when the store did not answer (in time).
    pub outbox_pending: Option<u64>,
    /// The MQTT session is connected.
    pub connected: bool,
    /// The MQTT session holds all its subscriptions.
    pub subscribed: bool,
    /// Time since the outbox publisher last made progress.
    pub outbox_idle: Duration,
}

/// Why the hub is not ready (the text is the `/readyz` body: no fleet data in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The store did not answer.
    #[error("the store does not answer")]
    Store,
    /// No connection to the MQTT broker.
    #[error("not connected to the MQTT broker")]
    Disconnected,
    /// Connected, but the subscriptions are not (yet) granted.
    #[error("connected to the MQTT broker, not subscribed yet")]
    NotSubscribed,
    /// Events are pending and none went out for [`OUTBOX_WEDGED_AFTER`].
    #[error("the outbox is wedged: events pending, none published for {0} s")]
    OutboxWedged(u64),
}

/// The decision.
pub fn decide(o: &Observed) -> Result<(), NotReady> {
    let pending = o.outbox_pending.ok_or(NotReady::Store)?;
    if !o.connected {
        return Err(NotReady::Disconnected);
    }
    if !o.subscribed {
        return Err(NotReady::NotSubscribed);
    }
    if pending > 0 && o.outbox_idle >= OUTBOX_WEDGED_AFTER {
        return Err(NotReady::OutboxWedged(o.outbox_idle.as_secs()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: Observed = Observed {
        outbox_pending: Some(0),
        connected: true,
        subscribed: true,
        outbox_idle: Duration::from_secs(3600),
    };

    #[test]
    fn each_condition_decides_in_order() {
        assert_eq!(decide(&READY), Ok(()));
        let store_down = Observed {
            outbox_pending: None,
            connected: false,
            ..READY
        };
        assert_eq!(decide(&store_down), Err(NotReady::Store));
        let down = Observed {
            connected: false,
            subscribed: false,
            ..READY
        };
        assert_eq!(decide(&down), Err(NotReady::Disconnected));
        let unsubscribed = Observed {
            subscribed: false,
            ..READY
        };
        assert_eq!(decide(&unsubscribed), Err(NotReady::NotSubscribed));
    }

    #[test]
    fn pending_events_are_wedged_only_after_a_quiet_minute() {
        let busy = Observed {
            outbox_pending: Some(5),
            outbox_idle: Duration::from_secs(2),
            ..READY
        };
        assert_eq!(decide(&busy), Ok(()));
        let stuck = Observed {
            outbox_idle: OUTBOX_WEDGED_AFTER,
            ..busy
        };
        assert_eq!(decide(&stuck), Err(NotReady::OutboxWedged(60)));
        // A quiet hub with nothing pending is ready however long it was quiet.
        assert_eq!(decide(&READY), Ok(()));
    }
}
