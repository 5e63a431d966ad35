//! Watching one resource type: a task that lists once for a starting resourceVersion,
//! then follows the API server's watch stream and sends the address of every object
//! that changes, starting over on errors (an expired resourceVersion, a dropped
//! connection), until the receiver is dropped.

use std::time::Duration;

use futures_util::StreamExt;
use kube::Api;
use kube::api::{DynamicObject, ListParams, WatchEvent, WatchParams};
use tokio::sync::mpsc;

use crate::target::{Changes, ObjectRef, ResourceMapping};

/// Changes queued per watch; a watcher that falls behind still holds one to act on.
const QUEUE: usize = 64;

/// Wait before a watch starts over after an error (the API server may be restarting).
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Longest server-side watch (it then ends cleanly and is reopened from where it was).
const WATCH_TIMEOUT_SECS: u32 = 290;

/// Starts watching; changes arrive on the returned receiver.
pub fn start(api: Api<DynamicObject>, resource: &ResourceMapping) -> Changes {
    let (tx, rx) = mpsc::channel(QUEUE);
    let resource = resource.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = run(&api, &resource, &tx) => {}
            () = tx.closed() => {}
        }
    });
    rx
}

/// The address of a watched object.
fn object_ref(resource: &ResourceMapping, object: &DynamicObject) -> ObjectRef {
    ObjectRef::new(
        &resource.group,
        &resource.version,
        &resource.resource,
        object.metadata.namespace.as_deref().unwrap_or(""),
        object.metadata.name.as_deref().unwrap_or(""),
    )
}

/// Lists and watches forever; returns only when the receiver is gone.
async fn run(api: &Api<DynamicObject>, resource: &ResourceMapping, tx: &mpsc::Sender<ObjectRef>) {
    let mut from: Option<String> = None;
    loop {
        let version = match from.take() {
            Some(v) => v,
            None => match api.list_metadata(&ListParams::default().limit(1)).await {
                Ok(list) => list.metadata.resource_version.unwrap_or_default(),
                Err(e) => {
                    tracing::debug!(resource = %resource.resource, "watch: list failed: {e}");
                    tokio::time::sleep(RESTART_DELAY).await;
                    continue;
                }
            },
        };
        let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
        let mut stream = match api.watch(&params, &version).await {
            Ok(s) => s.boxed(),
            Err(e) => {
                tracing::debug!(resource = %resource.resource, "watch failed: {e}");
                tokio::time::sleep(RESTART_DELAY).await;
                continue;
            }
        };
        let mut last = version;
        let mut failed = false;
        let opened = tokio::time::Instant::now();
        while let Some(event) = stream.next().await {
            let changed = match event {
                Ok(WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)) => o,
                Ok(WatchEvent::Bookmark(b)) => {
                    last = b.metadata.resource_version;
                    continue;
                }
                // `410 Expired` and the like: start over from a fresh list.
                Ok(WatchEvent::Error(e)) => {
                    tracing::debug!(resource = %resource.resource, "watch error: {}", e.message);
                    failed = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!(resource = %resource.resource, "watch stream failed: {e}");
                    failed = true;
                    break;
                }
            };
            if let Some(v) = &changed.metadata.resource_version {
                last.clone_from(v);
            }
            if tx.send(object_ref(resource, &changed)).await.is_err() {
                return;
            }
        }
        // A server that ends watches at once must not make this a busy loop.
        if failed || opened.elapsed() < RESTART_DELAY {
            tokio::time::sleep(RESTART_DELAY).await;
        }
        if !failed {
            // A watch that timed out resumes where it ended.
            from = Some(last);
        }
    }
}
