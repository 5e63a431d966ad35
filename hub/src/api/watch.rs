//! `GET /api/v1/watch/works[?cluster=NAME]`: server-sent events, one per work change.
//! The SSE event name is the change kind (`spec`, `status`, `deleted`) and the data is
//! `{"type": kind, "object": ManifestWork}`. A watcher that falls behind gets a
//! `lagged` event (with the number of missed changes) and should re-list.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::ApiState;

/// Query of the watch endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct WatchQuery {
    /// Only changes of this cluster's works.
    pub cluster: Option<String>,
}

/// `GET /api/v1/watch/works`.
pub async fn watch(
    State(state): State<ApiState>,
    Query(q): Query<WatchQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let cluster = q.cluster.filter(|c| !c.is_empty());
    let stream = BroadcastStream::new(state.watchers.subscribe()).filter_map(move |item| {
        let cluster = cluster.clone();
        async move {
            match item {
                Ok(change) => {
                    if cluster.as_deref().is_some_and(|c| c != change.cluster()) {
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
    Sse::new(stream).keep_alive(KeepAlive::default())
}
