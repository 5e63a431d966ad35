//! `GET /api/v1/watch/works[?cluster=NAME]`: server-sent events, one per work change.
//! The SSE event name is the change kind (`spec`, `status`, `deleted`) and the data is
//! `{"type": kind, "object": ManifestWork}`. A watcher that falls behind gets a
//! `lagged` event (with the number of missed changes) and should re-list.
//!
//! A watch needs a reader token like any GET; a scoped token sees its clusters' changes
//! only. Browsers, whose `EventSource` cannot send a header, first `POST
//! /api/v1/watch/tickets` with the token and open the watch with `?ticket=…` (one use,
//! 30 s; see `auth::tickets`).

use std::convert::Infallible;

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::ApiState;
use super::error::ApiError;
use super::guard::require_scope;
use crate::auth::Principal;
use crate::auth::tickets::{TICKET_TTL, TicketError};

/// Query of the watch endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct WatchQuery {
    /// Only changes of this cluster's works.
    pub cluster: Option<String>,
    /// A one-use ticket instead of the `Authorization` header (read by `api::guard`).
    pub ticket: Option<String>,
}

/// `GET /api/v1/watch/works`.
pub async fn watch(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let cluster = q.cluster.filter(|c| !c.is_empty());
    if let Some(c) = &cluster {
        require_scope(&caller, c)?;
    }
    let stream = BroadcastStream::new(state.watchers.subscribe()).filter_map(move |item| {
        let cluster = cluster.clone();
        let caller = caller.clone();
        async move {
            match item {
                Ok(change) => {
                    if cluster.as_deref().is_some_and(|c| c != change.cluster())
                        || !caller.may_touch(change.cluster())
                    {
                        return None;
                    }
                    let name = serde_json::to_value(change.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "change".into());
                    let data = serde_json::to_string(&change).ok()?;
                    Some(Ok(Event::default().event(name).data(data)))
                }
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Ok(Event::default().event("lagged").data(n.to_string())))
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `POST /api/v1/watch/tickets`: `{"ticket": "...", "expiresInSeconds": 30}`.
pub async fn ticket(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let ticket = state.tickets.issue(&caller.digest).map_err(|e| match e {
        TicketError::Busy => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            e.to_string(),
        ),
        TicketError::Random(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        ),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"ticket": ticket, "expiresInSeconds": TICKET_TTL.as_secs()})),
    ))
}
