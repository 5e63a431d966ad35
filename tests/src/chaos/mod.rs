//! # The chaos suite (issue 9): bounded, seeded fault injection across real processes
//!
//! One *leg* runs a broker (the embedded broker standalone, or a private Mosquitto), the
//! hub on that broker and N agents on simulated clusters, each its own process
//! (`workbus-chaos-node`, [`fleet`]). One worker per cluster sends a seeded random stream
//! of REST operations ([`driver`], [`model::OpStream`]: creates, re-creates of deleted names, data
//! changes, manifests added and removed, deletes) and records every answer in the
//! cluster's [`model::ClusterModel`]. Meanwhile a seeded schedule of [`faults`] — SIGKILL
//! of the hub, an agent or the broker, graceful broker restarts, agents paused past
//! their keep-alive — is injected at operation counts (operations may run at most up to
//! the next fault's trigger point while a fault is in progress, so faults never pile up
//! at the end). A [`monitor`] follows the hub's change stream for stale statuses and
//! deletions of live works. Then the leg quiesces and [`check::converge`] polls until the
//! hub, the clusters and the acknowledged answers agree, or the deadline passes;
//! [`report`] prints and writes the summary.
//!
//! The seed fixes the operation streams and the fault schedule (kinds, targets, down
//! times, trigger points); how requests interleave with faults still depends on timing,
//! so a seed reproduces the *conditions* of a failure, usually the failure itself.

pub mod check;
pub mod driver;
pub mod faults;
pub mod fleet;
pub mod model;
pub mod monitor;
pub mod processes;
pub mod report;
pub mod rest;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use self::fleet::Fleet;
use self::rest::Reply;

/// The simulated cluster's snapshot file in an agent's data dir (as `workbus-agent`
/// names it).
pub const SIM_SNAPSHOT: &str = "simulated-cluster.json";

/// The broker of a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// `workbus-broker` (our embedded broker) in its own process.
    Embedded,
    /// A private Mosquitto on its own port.
    Mosquitto,
    /// `workbus-broker` secured as the product runs by default: mutual TLS with
    /// certificates from the hub's CA, the fleet ACL, agents verifying signed spec
    /// events ([`crate::secure`]).
    EmbeddedSecured,
}

impl BrokerKind {
    /// Leg name (also the test name).
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Embedded => "embedded_broker",
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::EmbeddedSecured => "embedded_broker_secured",
        }
    }
}

/// The parameters of a run, from the environment (short form by default).
#[derive(Debug, Clone)]
pub struct Params {
    /// `WORKBUS_CHAOS_SEED` (decimal or `0x` hex); random when unset.
    pub seed: u64,
    /// `WORKBUS_CHAOS_OPS`: REST operations per leg.
    pub ops: usize,
    /// `WORKBUS_CHAOS_FAULTS`: faults per leg.
    pub faults: usize,
    /// `WORKBUS_CHAOS_AGENTS`: agents (clusters).
    pub agents: usize,
    /// `WORKBUS_CHAOS_NAMES`: work names per cluster (small, so names are re-used).
    pub names: usize,
    /// `WORKBUS_CHAOS_KEEPALIVE_SECS`: the agents' MQTT keep-alive (at least 5, the MQTT
    /// client's minimum).
    pub keep_alive_secs: u64,
    /// `WORKBUS_CHAOS_CONVERGE_SECS`: longest wait for convergence after quiescing.
    pub converge: Duration,
}

impl Params {
    /// Short-form defaults: 300 operations, 8 faults, 4 agents per leg.
    pub fn from_env() -> Params {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
                Err(_) => default,
            }
        }
        let seed = match std::env::var("WORKBUS_CHAOS_SEED") {
            Ok(v) => parse_seed(&v).unwrap_or_else(|| panic!("WORKBUS_CHAOS_SEED={v:?}")),
            Err(_) => random_seed(),
        };
        Params {
            seed,
            ops: var("WORKBUS_CHAOS_OPS", 300),
            faults: var("WORKBUS_CHAOS_FAULTS", 8),
            agents: var("WORKBUS_CHAOS_AGENTS", 4).max(1),
            names: var("WORKBUS_CHAOS_NAMES", 6).max(1),
            keep_alive_secs: var("WORKBUS_CHAOS_KEEPALIVE_SECS", 5).max(5),
            converge: Duration::from_secs(var("WORKBUS_CHAOS_CONVERGE_SECS", 120)),
        }
    }

    /// Mean pause between two operations of one worker, so the operations spread over
    /// the faults (about 3 s per fault) instead of finishing before the first.
    pub fn pace(&self) -> Duration {
        let span = self.faults.max(1) as f64 * 3.0;
        Duration::from_secs_f64((span * self.agents as f64 / self.ops.max(1) as f64).min(2.0))
    }

    /// Upper bound of the operation phase (operations and faults).
    pub fn op_deadline(&self) -> Duration {
        Duration::from_secs(120 + self.ops as u64 / 5 + self.faults as u64 * 15)
    }

    /// The command line that repeats this leg.
    pub fn reproduce(&self, leg: BrokerKind) -> String {
        format!(
            "WORKBUS_CHAOS_SEED={} WORKBUS_CHAOS_OPS={} WORKBUS_CHAOS_FAULTS={} \
             WORKBUS_CHAOS_AGENTS={} WORKBUS_CHAOS_NAMES={} WORKBUS_CHAOS_KEEPALIVE_SECS={} \
             cargo test -p workbus-tests{} --test chaos -- {} --nocapture",
            self.seed,
            self.ops,
            self.faults,
            self.agents,
            self.names,
            self.keep_alive_secs,
            if cfg!(debug_assertions) {
                ""
            } else {
                " --release"
            },
            leg.name()
        )
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(nanos ^ u64::from(std::process::id()));
    rng.random_range(1..1_000_000_000_000)
}

/// An independent generator for stream `id` of a leg.
pub fn stream_rng(seed: u64, leg: BrokerKind, id: u64) -> Xoshiro256PlusPlus {
    let leg = leg as u64 + 1;
    Xoshiro256PlusPlus::seed_from_u64(
        seed ^ leg.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// Where a leg runs and reports.
pub struct LegSetup {
    /// The `workbus-chaos-node` executable.
    pub node_exe: PathBuf,
    /// Parent of the run directory (logs, data; kept when the leg fails).
    pub work_dir: PathBuf,
    /// Where the JSON report goes.
    pub report_dir: PathBuf,
}

/// Runs one leg; returns its report (which says whether it passed).
pub async fn run_leg(params: &Params, leg: BrokerKind, setup: &LegSetup) -> report::LegReport {
    let started = Instant::now();
    let run_dir = setup.work_dir.join(format!(
        "{}-seed-{}-{}",
        leg.name(),
        params.seed,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", run_dir.display()));
    eprintln!(
        "[chaos {}] seed {} — {} ops, {} faults, {} agents; logs in {}\n[chaos {}] reproduce: {}",
        leg.name(),
        params.seed,
        params.ops,
        params.faults,
        params.agents,
        run_dir.display(),
        leg.name(),
        params.reproduce(leg)
    );
    let mut rep = report::LegReport::new(params, leg, &run_dir);
    let mut fleet = match Fleet::start(
        &setup.node_exe,
        leg,
        &run_dir,
        "chaos",
        params.agents,
        params.keep_alive_secs,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            rep.fail("setup", e);
            return rep.finish(started, &setup.report_dir);
        }
    };
    for cluster in &fleet.clusters {
        let body = serde_json::json!({ "name": cluster });
        match fleet
            .rest
            .call_async("POST", "/api/v1/clusters", Some(body))
            .await
        {
            Reply::Answer { code: 201, .. } => {}
            other => {
                rep.fail("setup", format!("registering {cluster}: {other:?}"));
                return rep.finish(started, &setup.report_dir);
            }
        }
    }
    let monitor = monitor::Monitor::start(fleet.rest.base(), fleet.rest.token());
    let models = driver::operate(params, leg, &mut fleet, &mut rep).await;
    // Quiesced: every fault is over (killed parts restarted, paused ones continued).
    if let Err(e) = fleet.restart_crashed().await {
        rep.fail("restart", e);
    }
    eprintln!("[chaos {}] quiesced; waiting for convergence", leg.name());
    let conv = check::converge(&fleet, &models, params.converge, leg.name()).await;
    rep.convergence(&conv);
    for hang in fleet.shutdown(Duration::from_secs(10)).await {
        rep.fail("sigterm", hang);
    }
    rep.crashes(&fleet.crashes);
    rep.monitor(&monitor.finish());
    rep.models(&models);
    drop(fleet);
    rep.finish(started, &setup.report_dir)
}

/// The run directory's parent and the report directory used by `tests/tests/chaos.rs`:
/// `WORKBUS_CHAOS_DIR` / `WORKBUS_CHAOS_REPORT_DIR`, else `default`.
pub fn dirs_from_env(default: &Path) -> (PathBuf, PathBuf) {
    let work =
        std::env::var_os("WORKBUS_CHAOS_DIR").map_or_else(|| default.to_path_buf(), PathBuf::from);
    let report = std::env::var_os("WORKBUS_CHAOS_REPORT_DIR")
        .map_or_else(|| default.to_path_buf(), PathBuf::from);
    (work, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_in_decimal_and_hex_and_streams_differ_by_leg_and_id() {
        assert_eq!(parse_seed(" 42 "), Some(42));
        assert_eq!(parse_seed("0x2a"), Some(42));
        assert_eq!(parse_seed("forty-two"), None);
        let draw = |leg, id| stream_rng(7, leg, id).random_range(0..u64::MAX);
        assert_eq!(draw(BrokerKind::Embedded, 1), draw(BrokerKind::Embedded, 1));
        assert_ne!(
            draw(BrokerKind::Embedded, 1),
            draw(BrokerKind::Mosquitto, 1)
        );
        assert_ne!(draw(BrokerKind::Embedded, 1), draw(BrokerKind::Embedded, 2));
    }
}
