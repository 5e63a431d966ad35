//! `broker`: embedded broker versus Mosquitto (not yet implemented).

use std::time::Duration;

use serde_json::Value;

use crate::common::BenchError;

/// Runs the scenario.
pub async fn run(
    _n: usize,
    _rounds: usize,
    _limit: Duration,
) -> Result<(Value, Value, Vec<Value>, Vec<String>), BenchError> {
    Err(BenchError::Setup("broker is not implemented yet".into()))
}
