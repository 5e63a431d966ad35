//! Re-driving the deletions the hub waits for.
//!
//! A deletion completes only when the agent's `Deleted` status arrives (§6.5). The agent
//! sends it once, and forgets the work once the broker acknowledged it; with clean
//! sessions (§1.1) the broker drops it when no source is subscribed at that moment (the
//! hub down or reconnecting). Nothing repairs that: the hub's status resync lists the
//! work, but an agent skips ids it does not hold (§6.3), and the agent's own spec resync
//! lists nothing to delete. The work would stay deleting (and its name taken) until
//! the agent happened to reconnect.
//!
//! So the hub publishes the delete event of every work still deleting again, through
//! the outbox (durable, and in order with the work's other events for its cluster):
//!
//! - after each of its own (re)subscriptions, for every pending deletion;
//! - then for each deletion on a backoff anchored at its request:
//!   [`FIRST_REDRIVE`] after it, then intervals doubling up to [`MAX_REDRIVE_INTERVAL`]
//!   (5 s, 10 s, 20 s, … 160 s, then every 5 min), until confirmed
//!   ([`next_redrive`]).
//!
//! An agent still cleaning up ignores the repeat (the work is already deleting there);
//! one that no longer holds the work takes it as a delete for an unknown uid, runs the
//! (empty) cleanup and confirms `Deleted` with the event's generation (§6.5 step 2,
//! ARCHITECTURE §10 item 8, `agent::spec_handler`), which completes the deletion.
//!
//! Bounded work: one indexed query lists the pending deletions; the due ones are
//! queued [`REDRIVE_BATCH`] per group-committed write, each write re-reading its works
//! so that nothing goes out for a work completed meanwhile; deletions due within
//! [`REDRIVE_SLACK`] of each other share a run. Nothing runs while the broker
//! connection is down (the outbox could not publish; the next subscription re-drives
//! everything). Visible: `workbus_hub_deletions_redriven_total` and one info line per
//! run that queued something.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use super::SourceLoop;
use super::spec_events::change_builder;
use crate::store::PendingDeletion;
use crate::store::writes::RedriveDeletions;

/// The first re-drive of a deletion, after its request.
pub const FIRST_REDRIVE: Duration = Duration::from_secs(5);
/// The longest interval between two re-drives of one deletion.
pub const MAX_REDRIVE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Re-drives due this close together share one run.
pub const REDRIVE_SLACK: Duration = Duration::from_secs(1);
/// Works re-driven per store write.
pub const REDRIVE_BATCH: usize = 500;

/// The broker connection as the source loop reports it to the re-drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not connected (or not yet subscribed).
    Down,
    /// Subscribed; every report of it is a fresh (re)subscription.
    Subscribed,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn plus_millis(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    t.checked_add_signed(TimeDelta::milliseconds(ms))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The first scheduled re-drive strictly after `after` of a deletion requested at
/// `requested`: `requested` + 5 s, + 15 s, + 35 s, … (intervals doubling from
/// [`FIRST_REDRIVE`]), then every [`MAX_REDRIVE_INTERVAL`]. Never more than
/// [`MAX_REDRIVE_INTERVAL`] after `after`, even if the clock stepped back past the
/// request.
pub fn next_redrive(requested: DateTime<Utc>, after: DateTime<Utc>) -> DateTime<Utc> {
    let first = millis(FIRST_REDRIVE);
    let cap = millis(MAX_REDRIVE_INTERVAL);
    let elapsed = after.signed_duration_since(requested).num_milliseconds();
    let (mut offset, mut interval) = (first, first);
    // Doubling phase: a handful of steps until the interval reaches the cap.
    while offset <= elapsed && interval < cap {
        interval = interval.saturating_mul(2).min(cap);
        offset = offset.saturating_add(interval);
    }
    if offset <= elapsed {
        let steps = (elapsed - offset) / cap + 1;
        offset = offset.saturating_add(steps.saturating_mul(cap));
    }
    plus_millis(requested, offset).min(plus_millis(after, cap))
}

/// The deletions of `pending` due in a run that covers re-drives up to `horizon`, when
/// those up to `covered` were queued already (`None`: right after a subscription, all).
pub fn due_for_redrive<'a>(
    pending: &'a [PendingDeletion],
    covered: Option<DateTime<Utc>>,
    horizon: DateTime<Utc>,
) -> impl Iterator<Item = &'a PendingDeletion> + 'a {
    pending.iter().filter(move |p| {
        covered.is_none_or(|covered| next_redrive(p.requested, covered) <= horizon)
    })
}

/// Re-drives pending deletions until the source loop ends (it drops the `link` sender).
pub(crate) async fn run(source: SourceLoop, mut link: watch::Receiver<Link>) {
    let requests = source.store.deletion_requests();
    // Re-drives due up to this time are queued; `None` after a subscription: all due.
    let mut covered: Option<DateTime<Utc>> = None;
    let mut wake: Option<Instant> = None;
    loop {
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = link.changed() => {
                if changed.is_err() {
                    return;
                }
                if *link.borrow_and_update() == Link::Subscribed {
                    covered = None;
                }
            }
            () = requests.notified() => {
                // A new deletion: its first re-drive is due FIRST_REDRIVE from now.
                let first = Instant::now() + FIRST_REDRIVE;
                wake = Some(wake.map_or(first, |w| w.min(first)));
                continue;
            }
            () = timer => {}
        }
        if *link.borrow() == Link::Subscribed {
            wake = source.redrive_due(&mut covered).await;
        } else {
            // The next subscription re-drives everything.
            wake = None;
        }
    }
}

impl SourceLoop {
    /// One run: queues the delete event of every pending deletion due by now (all of
    /// them right after a subscription) and returns when the next one is due.
    async fn redrive_due(&self, covered: &mut Option<DateTime<Utc>>) -> Option<Instant> {
        let retry = Some(Instant::now() + FIRST_REDRIVE);
        let pending = match self.store.run(|s| s.pending_deletions()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the deletions to re-drive");
                return retry;
            }
        };
        let now = Utc::now();
        let horizon = plus_millis(now, millis(REDRIVE_SLACK));
        let due: Vec<String> = due_for_redrive(&pending, *covered, horizon)
            .map(|p| p.uid.clone())
            .collect();
        let mut queued = 0;
        for batch in due.chunks(REDRIVE_BATCH) {
            let build = change_builder(self.wire.clone(), now);
            tracing::debug!(uids = ?batch, "re-driving deletions");
            match self
                .store
                .write(RedriveDeletions {
                    uids: batch.to_vec(),
                    now,
                    build,
                })
                .await
            {
                Ok(n) => queued += n,
                Err(e) => {
                    // `covered` stays: the next run queues this run's deletions again.
                    tracing::error!(error = %e, "cannot queue re-driven deletions");
                    self.redriven(queued, pending.len());
                    return retry;
                }
            }
        }
        self.redriven(queued, pending.len());
        *covered = Some(horizon);
        let next = pending
            .iter()
            .map(|p| next_redrive(p.requested, horizon))
            .min()?;
        let wait = next.signed_duration_since(now).to_std().unwrap_or_default();
        Some(Instant::now() + wait)
    }

    /// Counts, logs and publishes what a run queued.
    fn redriven(&self, queued: usize, pending: usize) {
        if queued == 0 {
            return;
        }
        self.metrics.deletions_redriven.inc_by(queued as u64);
        tracing::info!(
            queued,
            pending,
            "deletions awaiting the agent's confirmation published again"
        );
        self.outbox.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-12-16T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        t0() + TimeDelta::seconds(seconds)
    }

    /// Seconds after the request of the re-drives following `after_s`, `n` of them.
    fn schedule(after_s: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut after = at(after_s);
        for _ in 0..n {
            after = next_redrive(t0(), after);
            out.push(after.signed_duration_since(t0()).num_seconds());
        }
        out
    }

    #[test]
    fn backoff_doubles_from_five_seconds_to_five_minutes() {
        assert_eq!(
            schedule(0, 10),
            [5, 15, 35, 75, 155, 315, 615, 915, 1215, 1515]
        );
        // From any point, the next step of the same schedule.
        assert_eq!(schedule(4, 1), [5]);
        assert_eq!(schedule(5, 1), [15]);
        assert_eq!(schedule(100, 2), [155, 315]);
        assert_eq!(schedule(86_400, 1), [86_415]);
    }

    #[test]
    fn a_clock_stepped_back_waits_at_most_the_longest_interval() {
        let back = next_redrive(at(3600), t0());
        assert_eq!(back, at(300));
    }

    #[test]
    fn everything_is_due_after_a_subscription_then_only_what_the_schedule_says() {
        let pending = vec![
            PendingDeletion {
                uid: "old".into(),
                requested: at(-3605),
            },
            PendingDeletion {
                uid: "new".into(),
                requested: at(0),
            },
        ];
        let uids = |covered, horizon| {
            due_for_redrive(&pending, covered, horizon)
                .map(|p| p.uid.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(uids(None, at(1)), ["old", "new"]);
        // Covered up to 1 s: "new" is due at 5 s, "old" at its next 5-minute step.
        assert_eq!(uids(Some(at(1)), at(4)), Vec::<&str>::new());
        assert_eq!(uids(Some(at(1)), at(6)), ["new"]);
        // "old" re-drives every 5 min from 615 s after its request: next at 10 s.
        assert_eq!(next_redrive(at(-3605), at(6)), at(10));
        assert_eq!(
            uids(Some(at(6)), at(10)),
            ["old"],
            "new is next due at 15 s"
        );
    }
}
