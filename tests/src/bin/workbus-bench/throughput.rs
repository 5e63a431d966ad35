//! `throughput`: sustained REST updates across the fleet (not yet implemented).

use std::time::Duration;

use serde_json::Value;

use crate::common::BenchError;
use crate::fleet::BrokerKind;

/// Runs the scenario.
pub async fn run(
    _kind: BrokerKind,
    _n: usize,
    _limit: Duration,
    _step: Duration,
    _rates: &[u64],
) -> Result<(Value, Value, Vec<Value>, Vec<String>), BenchError> {
    Err(BenchError::Setup(
        "throughput is not implemented yet".into(),
    ))
}
