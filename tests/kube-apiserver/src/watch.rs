//! # Watches: `?watch=true`, newline-delimited JSON events
//!
//! A watch answers `200` and then streams one JSON object per line: `{"type":
//! "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": …}`.
//!
//! - `resourceVersion` unset or `"0"`: first a synthetic `ADDED` for every object that
//!   matches now, then changes; with `sendInitialEvents=true` the initial events end
//!   with a `BOOKMARK` annotated `k8s.io/initial-events-end: "true"`;
//! - `resourceVersion=N`: every change after N from the history, then changes; N older
//!   than the history gives one `ERROR` event (`410 Expired`, `too old resource version:
//!   N (M)`) and the end of the stream, and the client relists;
//! - selectors apply to both sides of a change: an object that stops matching is sent
//!   as `DELETED`, one that starts matching as `ADDED` (the watch cache's behaviour);
//! - `timeoutSeconds` ends the stream; so does the server's shutdown. A watch on a path
//!   with a name watches that object (`metadata.name=` field selector).
//!
//! Events are handed to the stream under the store lock, so they arrive in
//! resourceVersion order and none is missed between the initial state and the changes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::error::{ApiError, ApiResult};
use crate::http::Shared;
use crate::meta;
use crate::registry::ResourceType;
use crate::rest::{Req, to_version};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType};

/// How event objects are rendered.
#[derive(Debug, Clone)]
pub enum Render {
    Object,
    /// `as=Table`, with `includeObject`.
    Table(String),
    /// `as=PartialObjectMetadata`.
    Partial,
}

struct Filter {
    namespace: Option<String>,
    name: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, o: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|n| meta::namespace(o) == n)
            && self.name.as_deref().is_none_or(|n| meta::name(o) == n)
            && self.labels.matches(o)
            && self.fields.matches(o)
    }
}

struct Sink {
    rt: Arc<ResourceType>,
    filter: Filter,
    render: Render,
    tx: mpsc::UnboundedSender<Bytes>,
}

pub fn render_object(rt: &ResourceType, o: &Value, render: &Render) -> Value {
    match render {
        Render::Object => to_version(o, rt),
        Render::Table(include) => crate::table::table(rt, std::slice::from_ref(o), None, include),
        Render::Partial => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

impl Sink {
    fn send(&self, kind: &str, o: &Value) -> bool {
        self.tx
            .send(line(kind, render_object(&self.rt, o, &self.render)))
            .is_ok()
    }

    fn deliver(&self, e: &Event) -> bool {
        let now = self.filter.matches(&e.object);
        match e.kind {
            EventType::Added if now => self.send("ADDED", &e.object),
            EventType::Deleted if now => self.send("DELETED", &e.object),
            EventType::Modified => {
                let before = e.old.as_deref().is_some_and(|o| self.filter.matches(o));
                match (before, now) {
                    (true, true) => self.send("MODIFIED", &e.object),
                    (false, true) => self.send("ADDED", &e.object),
                    (true, false) => self.send("DELETED", &e.object),
                    (false, false) => !self.tx.is_closed(),
                }
            }
            _ => !self.tx.is_closed(),
        }
    }
}

/// Starts a watch; returns the streaming body.
pub fn start(
    shared: &Arc<Shared>,
    cluster: &mut Cluster,
    r: &Req,
    render: Render,
) -> ApiResult<Body> {
    let labels = LabelSelector::parse(r.query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(r.query.get("fieldSelector").unwrap_or(""), &r.rt.kind)?;
    let timeout = match r.query.get("timeoutSeconds") {
        Some(t) if !t.is_empty() => {
            Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid timeoutSeconds {t:?}"))
            })?))
        }
        _ => None,
    };
    let rv_param = r.query.get("resourceVersion").unwrap_or("");
    let send_initial = r.query.get("sendInitialEvents") == Some("true");
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Sink {
        rt: r.rt.clone(),
        filter: Filter {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            labels,
            fields,
        },
        render,
        tx,
    };
    let gr = r.rt.gr();
    if rv_param.is_empty() || rv_param == "0" || send_initial {
        for o in cluster.store.list(&gr, r.namespace.as_deref()) {
            if sink.filter.matches(o) {
                sink.send("ADDED", o);
            }
        }
        if send_initial {
            let bookmark = json!({
                "kind": r.rt.kind,
                "apiVersion": r.rt.api_version(),
                "metadata": {
                    "resourceVersion": cluster.store.resource_version().to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            });
            let _ = sink.tx.send(line("BOOKMARK", bookmark));
        }
    } else {
        let rv: u64 = rv_param.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resource version: {rv_param:?}"))
        })?;
        match cluster.store.events_since(&gr, rv) {
            Err(oldest) => {
                let status =
                    ApiError::expired(format!("too old resource version: {rv} ({oldest})"))
                        .to_status();
                let _ = sink.tx.send(line("ERROR", status));
                return Ok(stream(shared, rx, Some(Duration::ZERO)));
            }
            Ok(events) => {
                for e in &events {
                    sink.deliver(e);
                }
            }
        }
    }
    cluster
        .store
        .add_watcher(gr, Box::new(move |e| sink.deliver(e)));
    Ok(stream(shared, rx, timeout))
}

fn stream(
    shared: &Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    timeout: Option<Duration>,
) -> Body {
    let shutdown = shared.shutdown.clone();
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let s = futures_util::stream::unfold(
        (rx, shutdown, deadline, false),
        |(mut rx, mut shutdown, deadline, draining)| async move {
            if *shutdown.borrow() {
                return None;
            }
            if draining {
                // Deadline passed: send what is queued, then end.
                return rx
                    .try_recv()
                    .ok()
                    .map(|b| (Ok::<_, Infallible>(b), (rx, shutdown, deadline, true)));
            }
            let until = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                msg = rx.recv() => msg.map(|b| (Ok(b), (rx, shutdown, deadline, false))),
                _ = shutdown.changed() => None,
                _ = until => rx.try_recv().ok().map(|b| (Ok(b), (rx, shutdown, deadline, true))),
            }
        },
    );
    Body::from_stream(s)
}
