//! `GET /api/v1/replicas`: the hub replicas sharing this hub's PostgreSQL store, their
//! health (seconds since their last heartbeat) and the partitions each publishes, as
//! this replica saw them at its last lease renewal (at most a second old while the
//! database answers; `renewedSecondsAgo` says how old). A hub on SQLite is the only
//! replica and owns every partition. See ARCHITECTURE.md, "Several hubs".

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::ApiState;
use crate::replicas::partition::PARTITIONS;

/// `GET /api/v1/replicas`.
pub async fn list(State(state): State<ApiState>) -> Json<Value> {
    let Some(leases) = &state.leases else {
        return Json(json!({
            "mode": "single",
            "partitions": PARTITIONS,
            "items": [{
                "replicaId": Value::Null,
                "self": true,
                "partitionsOwned": PARTITIONS,
                "partitions": (0..PARTITIONS).collect::<Vec<u32>>(),
            }],
        }));
    };
    let view = leases.view();
    let mut owned: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for lease in &view.last.leases {
        if let Some(owner) = &lease.owner
            && lease.expires_in_secs.is_some_and(|s| s > 0.0)
        {
            owned.entry(owner.as_str()).or_default().push(json!({
                "partition": lease.partition,
                "epoch": lease.epoch,
            }));
        }
    }
    let items: Vec<Value> = view
        .last
        .replicas
        .iter()
        .map(|r| {
            let partitions = owned.remove(r.replica_id.as_str()).unwrap_or_default();
            json!({
                "replicaId": r.replica_id,
                "self": r.replica_id == view.replica_id,
                "restAddress": r.rest_addr,
                "startedAt": r.started_at,
                "heartbeatAgeSeconds": r.heartbeat_age_secs,
                "partitionsOwned": partitions.len(),
                "partitions": partitions,
            })
        })
        .collect();
    // Leases held by replicas no longer live (their leases not yet expired).
    let orphaned: Vec<Value> = owned
        .into_iter()
        .map(|(owner, partitions)| json!({"replicaId": owner, "partitions": partitions}))
        .collect();
    Json(json!({
        "mode": "replicated",
        "self": view.replica_id,
        "partitions": PARTITIONS,
        "renewedSecondsAgo": view
            .renewed
            .map(|at| Instant::now().saturating_duration_since(at).as_secs_f64()),
        "items": items,
        "departed": orphaned,
    }))
}
