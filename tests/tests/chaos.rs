//! The chaos suite of issue 9: hub, agents and broker as real processes under SIGKILL,
//! restarts and pauses while a seeded random stream of REST operations runs; then every
//! acknowledged answer is checked against the hub and the simulated clusters (see
//! `workbus_tests::chaos`). One test per broker leg: the embedded broker standalone,
//! the same secured (mutual TLS, fleet ACL, signed spec events) and a private
//! Mosquitto. The legs run one after the other (they share two cores).
//!
//! Short form (default, part of `cargo test --workspace`): 300 operations, 8 faults,
//! 4 agents per leg. Long form (BENCHMARKS.md, "Chaos suite"):
//! `WORKBUS_CHAOS_OPS=10000 WORKBUS_CHAOS_FAULTS=100 cargo test -p workbus-tests --test chaos -- --nocapture`.
//! A failure message starts with the seed and the command that repeats the leg.

use std::path::Path;
use std::sync::Mutex;

use workbus_tests::chaos::{self, BrokerKind, LegSetup, Params};

/// One leg at a time.
static LEGS: Mutex<()> = Mutex::new(());

fn leg(kind: BrokerKind) {
    let _one_at_a_time = LEGS.lock().unwrap_or_else(|e| e.into_inner());
    let params = Params::from_env();
    let (work_dir, report_dir) =
        chaos::dirs_from_env(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos"));
    let setup = LegSetup {
        node_exe: env!("CARGO_BIN_EXE_workbus-chaos-node").into(),
        work_dir,
        report_dir,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(chaos::run_leg(&params, kind, &setup));
    assert!(report.passed(), "{}", report.failure_message());
}

#[test]
fn embedded_broker() {
    leg(BrokerKind::Embedded);
}

/// The embedded broker leg as the product runs by default: mutual TLS, fleet ACL,
/// signed spec events.
#[test]
fn embedded_broker_secured() {
    leg(BrokerKind::EmbeddedSecured);
}

#[test]
fn mosquitto() {
    if workbus_testkit::skip_without_mosquitto("chaos::mosquitto") {
        return;
    }
    leg(BrokerKind::Mosquitto);
}
