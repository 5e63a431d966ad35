//! The faults of issue 9 — SIGKILL of the hub, an agent or the broker, a graceful broker
//! restart, an agent paused (SIGSTOP) past its keep-alive — their seeded schedule, and
//! their injection into a running [`Fleet`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use serde_json::{Value, json};

use super::fleet::Fleet;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL the hub, start it again after `down`.
    HubKill,
    /// SIGKILL one agent, start it again after `down`.
    AgentKill,
    /// SIGKILL the broker, start it again (same port) after `down`.
    BrokerKill,
    /// SIGTERM the broker (clients see a clean close), start it again at once.
    BrokerRestart,
    /// SIGSTOP one agent for `down` (longer than 1.5 × keep-alive, so the broker drops
    /// it), then SIGCONT.
    AgentPause,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::HubKill,
        FaultKind::AgentKill,
        FaultKind::BrokerKill,
        FaultKind::BrokerRestart,
        FaultKind::AgentPause,
    ];

    /// Report name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::HubKill => "hub-kill",
            FaultKind::AgentKill => "agent-kill",
            FaultKind::BrokerKill => "broker-kill",
            FaultKind::BrokerRestart => "broker-restart",
            FaultKind::AgentPause => "agent-pause",
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// Injected once this many operations were started.
    pub at_op: usize,
    /// The agent (for agent faults).
    pub agent: usize,
    /// How long the part stays down or paused.
    pub down: Duration,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::AgentKill | FaultKind::AgentPause => write!(
                f,
                "{} agent-{} for {:?} at op {}",
                self.kind.name(),
                self.agent,
                self.down,
                self.at_op
            ),
            _ => write!(
                f,
                "{} for {:?} at op {}",
                self.kind.name(),
                self.down,
                self.at_op
            ),
        }
    }
}

/// `count` faults over `ops` operations: evenly spread trigger points with jitter; the
/// first five are one of each kind in random order (so even a short run covers them
/// all), the rest are drawn at random.
pub fn schedule(
    rng: &mut Xoshiro256PlusPlus,
    ops: usize,
    count: usize,
    agents: usize,
    keep_alive: Duration,
) -> Vec<Fault> {
    let mut kinds: Vec<FaultKind> = FaultKind::ALL.to_vec();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.random_range(0..=i));
    }
    let step = ops as f64 / (count + 1) as f64;
    let mut out: Vec<Fault> = (0..count)
        .map(|i| {
            let kind = kinds
                .get(i)
                .copied()
                .unwrap_or_else(|| FaultKind::ALL[rng.random_range(0..FaultKind::ALL.len())]);
            let jitter = rng.random_range(-0.3..0.3) * step;
            let at_op = (((i + 1) as f64 * step + jitter).max(0.0) as usize).min(ops);
            let mut ms = |lo: u64, hi: u64| Duration::from_millis(rng.random_range(lo..hi));
            let down = match kind {
                FaultKind::HubKill | FaultKind::AgentKill => ms(100, 1500),
                FaultKind::BrokerKill => ms(200, 2000),
                FaultKind::BrokerRestart => Duration::ZERO,
                // The broker drops a silent client after 1.5 × keep-alive.
                FaultKind::AgentPause => keep_alive.mul_f64(1.5) + ms(1000, 2500),
            };
            Fault {
                kind,
                at_op,
                agent: rng.random_range(0..agents.max(1)),
                down,
            }
        })
        .collect();
    out.sort_by_key(|f| f.at_op);
    out
}

/// Injects `fault` and brings the part back; returns a report line (with timing).
pub async fn inject(fleet: &mut Fleet, fault: &Fault, t0: Instant) -> Result<Value, String> {
    let start = t0.elapsed();
    match fault.kind {
        FaultKind::HubKill => {
            fleet.hub.kill9();
            tokio::time::sleep(fault.down).await;
            fleet.start_hub().await?;
        }
        FaultKind::AgentKill => {
            let agent = &mut fleet.agents[fault.agent];
            agent.kill9();
            tokio::time::sleep(fault.down).await;
            agent.start()?;
        }
        FaultKind::BrokerKill => {
            fleet.broker.kill9();
            tokio::time::sleep(fault.down).await;
            fleet.start_broker().await?;
        }
        FaultKind::BrokerRestart => {
            let clean = fleet.broker.terminate(Duration::from_secs(10)).await;
            fleet.start_broker().await?;
            // A broker that does not stop on SIGTERM is a finding of its own.
            clean.map_err(|e| format!("broker restart: {e}"))?;
        }
        FaultKind::AgentPause => {
            let agent = &mut fleet.agents[fault.agent];
            agent.pause();
            tokio::time::sleep(fault.down).await;
            agent.resume();
        }
    }
    Ok(json!({
        "fault": fault.to_string(),
        "kind": fault.kind.name(),
        "at_op": fault.at_op,
        "started_s": start.as_secs_f64(),
        "took_s": (t0.elapsed() - start).as_secs_f64(),
    }))
}

/// Counts by kind name.
pub fn count_by_kind(faults: &[Fault]) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for f in faults {
        *out.entry(f.kind.name()).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn schedule_covers_every_kind_and_is_ordered_and_seeded() {
        let s = |seed| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            schedule(&mut rng, 300, 8, 4, Duration::from_secs(2))
        };
        let a = s(1);
        assert_eq!(a.len(), 8);
        assert!(a.windows(2).all(|w| w[0].at_op <= w[1].at_op));
        assert!(a.iter().all(|f| f.at_op <= 300 && f.agent < 4));
        assert_eq!(count_by_kind(&a).len(), FaultKind::ALL.len());
        let pause = a.iter().find(|f| f.kind == FaultKind::AgentPause).unwrap();
        assert!(pause.down > Duration::from_secs(3));
        assert_eq!(format!("{a:?}"), format!("{:?}", s(1)));
    }
}
