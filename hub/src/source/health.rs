//! The health timer: every `interval`, turns accepted clusters whose lease ran out
//! (`renewTime + 2 × leaseDurationSeconds`, see
//! [`crate::store::rules::availability`]) Unknown, with their taint, in one store write
//! that also queues each cluster's echo. The store keeps each cluster's deadline
//! indexed, so a pass reads only the clusters that are due. Time comes from the
//! injectable [`Clock`](crate::clock::Clock).

use std::time::Duration;

use super::SourceLoop;
use crate::store::registration_writes::EvaluateHealth;

impl SourceLoop {
    /// Runs the health timer until the task is dropped.
    pub async fn run_health(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.evaluate_health().await;
        }
    }

    /// One pass of the health timer (also for tests).
    pub async fn evaluate_health(&self) {
        let ctx = &self.registration;
        let write = EvaluateHealth {
            now: ctx.clock.now(),
            echo: ctx.echo.clone(),
        };
        match self.store.write(write).await {
            Ok(changed) if changed.is_empty() => {}
            Ok(changed) => {
                for c in &changed {
                    tracing::warn!(cluster = %c.name, "cluster lease expired: Available is Unknown");
                    ctx.clusters.notify(c);
                }
                self.outbox.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "cannot evaluate cluster health"),
        }
    }
}
