//! Matching the broker's acknowledgements to publish calls, across connection losses.
//!
//! rumqttc gives a publish its packet id only when it writes it, and reports that as
//! `Outgoing::Publish(pkid)` in request order; so the n-th outgoing publish belongs to
//! the n-th waiter still *unassigned*, and from then on the waiter is keyed by packet id
//! until its PUBACK (PUBCOMP for QoS 2).
//!
//! The hard part is a lost connection. We connect with CleanStart (as sdk-go), and
//! rumqttc then **drops** everything of the old session without a word: the publishes
//! written but not acknowledged, the one held back by a packet-id collision, and the
//! requests it had already taken from its channel. Packet ids come round again (within
//! the broker's Receive Maximum, 20 on Mosquitto), so a waiter left behind would later
//! be credited with a newer message's PUBACK and every waiter after it would be off by
//! one — the agent's publish queue then stalled for good (issue 9, bug 1). So on every
//! connection loss the session loop tells [`AckTracker::connection_lost`] exactly what
//! rumqttc dropped, and those waiters fail at once with
//! [`PublishError::ConnectionLost`]; their callers publish again (receivers are
//! idempotent). Requests still in rumqttc's channel survive and go out on the next
//! connection in order, so their waiters stay queued.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

use super::PublishError;

/// Resolves one publish call.
pub(super) type Waiter = oneshot::Sender<Result<(), PublishError>>;

/// The waiters of publishes handed to rumqttc, in request order, then by packet id.
#[derive(Default)]
pub(super) struct AckTracker {
    /// Requests not yet written, in the order they were handed to rumqttc.
    unassigned: VecDeque<Waiter>,
    /// Written publishes awaiting their acknowledgement.
    inflight: HashMap<u16, Waiter>,
}

impl AckTracker {
    /// Registers the waiter of a request about to be handed to rumqttc (callers keep
    /// registration and hand-over in one order).
    pub(super) fn push(&mut self, waiter: Waiter) {
        self.unassigned.push_back(waiter);
    }

    /// Takes back the waiter pushed last, when handing its request over failed.
    pub(super) fn pop_last(&mut self) {
        self.unassigned.pop_back();
    }

    /// rumqttc wrote the next request as a publish with `pkid` (0 for QoS 0).
    pub(super) fn on_outgoing_publish(&mut self, pkid: u16) {
        let Some(waiter) = self.unassigned.pop_front() else {
            tracing::warn!(pkid, "outgoing publish without a waiter");
            return;
        };
        if pkid == 0 {
            let _ = waiter.send(Ok(())); // QoS 0: done once written
            return;
        }
        // rumqttc never writes a packet id that is still unacknowledged (it holds the
        // publish back as a collision), so an entry here is one we failed to clear.
        if let Some(stale) = self.inflight.insert(pkid, waiter) {
            tracing::warn!(pkid, "packet id reused while a waiter held it");
            let _ = stale.send(Err(PublishError::ConnectionLost));
        }
    }

    /// The broker answered `pkid`: accepted, or refused with a reason (an MQTT 5
    /// PUBACK/PUBREC reason code of 0x80 or above); false when no publish was waiting
    /// for it.
    pub(super) fn on_ack(&mut self, pkid: u16, outcome: Result<(), String>) -> bool {
        match self.inflight.remove(&pkid) {
            Some(waiter) => {
                let _ = waiter.send(outcome.map_err(PublishError::Refused));
                true
            }
            None => false,
        }
    }

    /// The connection is gone and rumqttc dropped the old session: every written
    /// publish, and the first `unsent_dropped` requests not yet written, will never be
    /// acknowledged. Returns how many waiters failed.
    pub(super) fn connection_lost(&mut self, unsent_dropped: usize) -> usize {
        let mut failed = 0;
        for (_, waiter) in self.inflight.drain() {
            let _ = waiter.send(Err(PublishError::ConnectionLost));
            failed += 1;
        }
        for _ in 0..unsent_dropped {
            let Some(waiter) = self.unassigned.pop_front() else {
                tracing::warn!("rumqttc dropped more requests than were waiting");
                break;
            };
            let _ = waiter.send(Err(PublishError::ConnectionLost));
            failed += 1;
        }
        failed
    }

    /// Whether every publish handed over has been settled.
    pub(super) fn is_idle(&self) -> bool {
        self.unassigned.is_empty() && self.inflight.is_empty()
    }

    /// Fails every waiter: the session has ended.
    pub(super) fn close(&mut self) {
        for waiter in self.unassigned.drain(..) {
            let _ = waiter.send(Err(PublishError::Closed));
        }
        for (_, waiter) in self.inflight.drain() {
            let _ = waiter.send(Err(PublishError::Closed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(t: &mut AckTracker) -> oneshot::Receiver<Result<(), PublishError>> {
        let (tx, rx) = oneshot::channel();
        t.push(tx);
        rx
    }

    #[test]
    fn matches_in_request_order_then_by_packet_id() {
        let mut t = AckTracker::default();
        let mut a = waiter(&mut t);
        let mut b = waiter(&mut t);
        t.on_outgoing_publish(7);
        t.on_outgoing_publish(8);
        assert!(t.on_ack(8, Ok(())));
        assert_eq!(b.try_recv(), Ok(Ok(())));
        assert!(a.try_recv().is_err(), "a is still waiting");
        assert!(t.on_ack(7, Ok(())));
        assert_eq!(a.try_recv(), Ok(Ok(())));
        assert!(!t.on_ack(9, Ok(())));
    }

    #[test]
    fn qos0_completes_when_written() {
        let mut t = AckTracker::default();
        let mut rx = waiter(&mut t);
        t.on_outgoing_publish(0);
        assert_eq!(rx.try_recv(), Ok(Ok(())));
    }

    /// Issue 9, bug 1: after a lost connection packet ids come round again; a newer
    /// publish's PUBACK must resolve that publish, not one rumqttc dropped.
    #[test]
    fn connection_loss_fails_dropped_publishes_and_keeps_later_ones_aligned() {
        let mut t = AckTracker::default();
        let mut written = waiter(&mut t); // written on the old connection
        let mut dropped = waiter(&mut t); // taken from the channel, dropped
        let mut queued = waiter(&mut t); // still in the channel: survives
        t.on_outgoing_publish(1);
        assert_eq!(t.connection_lost(1), 2);
        assert_eq!(written.try_recv(), Ok(Err(PublishError::ConnectionLost)));
        assert_eq!(dropped.try_recv(), Ok(Err(PublishError::ConnectionLost)));
        // The new connection reuses packet id 1 for the surviving request.
        t.on_outgoing_publish(1);
        assert!(t.on_ack(1, Ok(())));
        assert_eq!(queued.try_recv(), Ok(Ok(())));
        let mut next = waiter(&mut t);
        t.on_outgoing_publish(2);
        assert!(t.on_ack(2, Ok(())));
        assert_eq!(next.try_recv(), Ok(Ok(())));
    }

    #[test]
    fn a_refusal_fails_its_publish_with_the_reason() {
        let mut t = AckTracker::default();
        let mut rx = waiter(&mut t);
        t.on_outgoing_publish(4);
        assert!(t.on_ack(4, Err("NotAuthorized".into())));
        assert_eq!(
            rx.try_recv(),
            Ok(Err(PublishError::Refused("NotAuthorized".into())))
        );
    }

    #[test]
    fn close_fails_everything() {
        let mut t = AckTracker::default();
        let mut a = waiter(&mut t);
        let mut b = waiter(&mut t);
        t.on_outgoing_publish(3);
        t.close();
        assert_eq!(a.try_recv(), Ok(Err(PublishError::Closed)));
        assert_eq!(b.try_recv(), Ok(Err(PublishError::Closed)));
    }
}
