//! `GET /api/v1/watch/works[?cluster=NAME]`: server-sent events, one per work change.
//! The SSE event name is the change kind (`spec`, `status`, `deleted`) and the data is
//! `{"type": kind, "object": ManifestWork}`. A watcher that falls behind gets a
//! `lagged` event (with the number of missed changes) and should re-list.
//!
//! Every event has an `id:`; a watcher that reconnects with `Last-Event-ID` receives
//! the changes it missed first (`crate::watch_replay`), or `410 Gone` (reason
//! `Expired`) when the hub no longer holds them: it must re-list and watch anew.
//! `?allowWatchBookmarks=true` starts a new watch with a `bookmark` event (data `{}`)
//! whose id is the position, so a watcher that saw no change yet can resume too.
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
use crate::watch_replay::Resume;

/// Query of the watch endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct WatchQuery {
    /// Only changes of this cluster's works.
    pub cluster: Option<String>,
    /// A one-use ticket instead of the `Authorization` header (read by `api::guard`).
    pub ticket: Option<String>,
    /// Start with a `bookmark` event carrying the current position as its id.
    #[serde(rename = "allowWatchBookmarks", default)]
    pub allow_watch_bookmarks: bool,
}

/// The SSE header a reconnecting watcher sends.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// Tells the replay log when a REST watcher leaves (its changes are kept for a while).
struct Leaving(std::sync::Arc<crate::watch_replay::ReplayLog<crate::watch::WorkChange>>);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.0.left();
    }
}

/// `GET /api/v1/watch/works`.
pub async fn watch(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    headers: axum::http::HeaderMap,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let cluster = q.cluster.filter(|c| !c.is_empty());
    if let Some(c) = &cluster {
        require_scope(&caller, c)?;
    }
    let last_event_id = headers
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let log = state.watchers.rest().clone();
    let (replay, live, position) = match log.resume(last_event_id) {
        Resume::Live {
            replay,
            live,
            position,
        } => (replay, live, position),
        Resume::Expired => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "Expired",
                format!(
                    "the changes after event {:?} are no longer held: list again, then watch \
                     without Last-Event-ID",
                    last_event_id.unwrap_or_default()
                ),
            ));
        }
    };
    let bookmark = (q.allow_watch_bookmarks && last_event_id.is_none())
        .then(|| Ok(Event::default().event("bookmark").id(position).data("{}")));
    let leaving = Leaving(log);
    let changes = tokio_stream::iter(replay.into_iter().map(Ok))
        .chain(BroadcastStream::new(live))
        .filter_map(move |item| {
            let cluster = cluster.clone();
            let caller = caller.clone();
            let _leaving = &leaving;
            let event = match item {
                Ok(numbered) => {
                    let change = &numbered.item;
                    if cluster.as_deref().is_some_and(|c| c != change.cluster())
                        || !caller.may_touch(change.cluster())
                    {
                        None
                    } else {
                        let name = serde_json::to_value(change.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_else(|| "change".into());
                        serde_json::to_string(change).ok().map(|data| {
                            Ok(Event::default()
                                .event(name)
                                .id(numbered.id.clone())
                                .data(data))
                        })
                    }
                }
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Ok(Event::default().event("lagged").data(n.to_string())))
                }
            };
            async move { event }
        });
    let stream = tokio_stream::iter(bookmark).chain(changes);
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
