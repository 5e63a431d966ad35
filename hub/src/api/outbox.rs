//! `GET /api/v1/outbox/parked`: the events the outbox parked because they can never be
//! published (see `outbox`), oldest first, with the reason — what an operator needs to
//! find the work to replace or delete. Paged by row id (`after`, `limit`).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use crate::outbox::cut;

/// Page size when the client gives no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;
/// How much of a (legacy, over-long) cluster name the listing repeats.
const CLUSTER_CHARS: usize = 253;

/// Query of `GET /api/v1/outbox/parked`.
#[derive(Debug, Default, Deserialize)]
pub struct ParkedQuery {
    /// Only rows with a larger id (the previous page's `metadata.continue`).
    pub after: Option<i64>,
    /// Page size (1..=1000).
    pub limit: Option<usize>,
}

/// `GET /api/v1/outbox/parked`.
pub async fn parked(
    State(state): State<ApiState>,
    query: Result<Query<ParkedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = q.after.unwrap_or(0);
    let rows = state
        .store
        .run(move |s| s.parked_outbox(after, limit))
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|p| {
            json!({
                "id": p.entry.id,
                "cluster": cut(&p.entry.cluster, CLUSTER_CHARS),
                "resourceId": p.entry.resource_id,
                "eventType": p.entry.event_type,
                "reason": p.reason,
                "attempts": p.entry.attempts,
                "created": p.created,
                "parkedAt": p.parked_at,
            })
        })
        .collect();
    let mut metadata = serde_json::Map::new();
    if rows.len() == limit
        && let Some(last) = rows.last()
    {
        metadata.insert("continue".into(), last.entry.id.to_string().into());
    }
    Ok(Json(json!({ "metadata": metadata, "items": items })))
}
