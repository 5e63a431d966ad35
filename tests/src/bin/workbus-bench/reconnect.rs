//! `reconnect-storm`: every agent loses its connection at once (not yet implemented).

use std::time::Duration;

use serde_json::Value;

use crate::common::BenchError;

/// Runs the scenario.
pub async fn run(
    _n: usize,
    _limit: Duration,
) -> Result<(Value, Value, Vec<Value>, Vec<String>), BenchError> {
    Err(BenchError::Setup(
        "reconnect-storm is not implemented yet".into(),
    ))
}
