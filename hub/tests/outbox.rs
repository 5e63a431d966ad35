//! The outbox publisher against a scripted transport: a row the broker refuses holds
//! back only its own cluster, keeps that cluster's order, and is parked after repeated
//! refusals while other events get through; a row that times out is retried until it
//! goes out, never parked; a dead connection (every acknowledgement fails) parks nothing
//! and everything goes out once it heals.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::eventually;
use workbus_hub::metrics::Metrics;
use workbus_hub::outbox::{AckFuture, OutboxPublisher, Sink, WireFormat};
use workbus_hub::store::sqlite::SqliteStore;
use workbus_hub::store::writes::Enqueue;
use workbus_hub::store::{NewOutbox, QueuedMessage, StoreHandle};
use workbus_schemas::envelope::SpecEventFields;
use workbus_schemas::event_type::Action;
use workbus_schemas::mqtt::{Encoding, MqttMessage, PublishLimits};
use workbus_schemas::topics::Topics;
use workbus_transport::PublishError;

const SOURCE: &str = "src";

/// Which attempts fail, and how: given a message's resource id, `Some(error)` fails it
/// at once with that error.
type Script = Arc<dyn Fn(&str) -> Option<PublishError> + Send + Sync>;

/// Acknowledges every message except those its script fails.
struct ScriptedSink {
    sent: Arc<Mutex<Vec<String>>>,
    fails: Script,
}

/// The `ce-resourceid` of a message.
fn resource_id(m: &MqttMessage) -> String {
    m.user_properties
        .iter()
        .find(|(k, _)| k == "ce-resourceid")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

impl Sink for ScriptedSink {
    async fn send(&self, message: &MqttMessage) -> Result<AckFuture, PublishError> {
        let id = resource_id(message);
        let fail = (self.fails)(&id);
        self.sent.lock().unwrap().push(id);
        Ok(Box::pin(async move {
            match fail {
                Some(error) => Err(error),
                None => Ok(()),
            }
        }))
    }
}

fn event(cluster: &str, resource: &str) -> NewOutbox {
    let event = SpecEventFields {
        source_id: SOURCE.into(),
        action: Action::CreateRequest,
        cluster_name: cluster.into(),
        resource_id: resource.into(),
        generation: 1,
        metadata: None,
        bundle: Some(serde_json::json!({"manifests": []})),
        deletion_timestamp: None,
        log_tracing: Some(BTreeMap::new()),
    }
    .build(Utc::now())
    .unwrap();
    NewOutbox {
        cluster: cluster.into(),
        resource_id: Some(resource.into()),
        event,
        message: None,
        actor: None,
    }
}

struct Rig {
    store: StoreHandle,
    metrics: Arc<Metrics>,
    sent: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The publisher's wire format.
fn wire() -> WireFormat {
    WireFormat::new(
        Topics::for_source(SOURCE).unwrap(),
        SOURCE,
        Encoding::Binary,
        PublishLimits::v5(1 << 20),
    )
}

/// Queues `rows`, then runs a publisher over `fails`.
async fn start(rows: Vec<NewOutbox>, fails: Script) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
    let metrics = Arc::new(Metrics::default());
    let store = StoreHandle::new(Arc::new(sqlite), metrics.clone()).unwrap();
    store
        .run(move |s| {
            s.write(Enqueue {
                events: rows,
                now: Utc::now(),
            })
        })
        .await
        .unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let publisher = OutboxPublisher {
        store: store.clone(),
        publisher: ScriptedSink {
            sent: sent.clone(),
            fails,
        },
        wire: Arc::new(wire()),
        notify: Arc::new(tokio::sync::Notify::new()),
        metrics: metrics.clone(),
        progress: Default::default(),
        ownership: Arc::new(workbus_hub::replicas::Ownership::everything()),
    };
    Rig {
        store,
        metrics,
        sent,
        task: tokio::spawn(publisher.run()),
        _dir: dir,
    }
}

impl Rig {
    /// Resource ids whose event was completed (audited as sent), in completion order.
    async fn completed(&self) -> Vec<String> {
        self.store
            .run(|s| s.audit(None, 1000))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|a| a.resource_id)
            .collect()
    }

    async fn parked(&self) -> Vec<(String, String)> {
        self.store
            .run(|s| s.parked_outbox(0, 100))
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.entry.resource_id.unwrap_or_default(), p.reason))
            .collect()
    }
}

#[tokio::test]
async fn a_row_the_broker_refuses_holds_only_its_cluster_and_is_parked() {
    let rows = vec![
        event("a", "a1"),
        event("a", "a2"),
        event("b", "b1"),
        event("b", "b2"),
        event("b", "b3"),
    ];
    let refuse_a1 = |id: &str| (id == "a1").then(|| PublishError::Refused("NotAuthorized".into()));
    let rig = start(rows, Arc::new(refuse_a1)).await;

    // The other cluster is not held up by a1.
    eventually("cluster b published", || async {
        let done = rig.completed().await;
        ["b1", "b2", "b3"]
            .iter()
            .all(|id| done.iter().any(|d| d == id))
    })
    .await;
    // a1 fails while b's events are acknowledged, so it is parked, and only then does
    // a2 complete: a's order is kept.
    eventually("a2 published after a1 was parked", || async {
        rig.completed().await.iter().any(|d| d == "a2")
    })
    .await;
    let parked = rig.parked().await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].0, "a1");
    assert!(parked[0].1.contains("refused 3 times"), "{parked:?}");
    let done = rig.completed().await;
    assert!(!done.contains(&"a1".to_string()));
    assert_eq!(done.iter().filter(|d| *d == "a2").count(), 1);
    // a2 was sent again after a1's last attempt (an acknowledgement received while a
    // was held is not a completion).
    let sent = rig.sent.lock().unwrap().clone();
    let last_a1 = sent.iter().rposition(|s| s == "a1").unwrap();
    let last_a2 = sent.iter().rposition(|s| s == "a2").unwrap();
    assert!(last_a2 > last_a1, "{sent:?}");
    assert_eq!(sent.iter().filter(|s| *s == "a1").count(), 3, "{sent:?}");
    assert_eq!(rig.metrics.outbox_parked.get(), 1);
    assert_eq!(rig.store.run(|s| s.outbox_depth()).await.unwrap(), 0);
    rig.task.abort();
}

#[tokio::test]
async fn a_dead_connection_parks_nothing() {
    let down = Arc::new(AtomicBool::new(true));
    let flag = down.clone();
    let rows = vec![event("a", "a1"), event("b", "b1"), event("c", "c1")];
    let lost = move |_: &str| {
        flag.load(Ordering::SeqCst)
            .then_some(PublishError::ConnectionLost)
    };
    let rig = start(rows, Arc::new(lost)).await;

    // Every acknowledgement fails, many times over (no other event gets through in
    // between, so no row is blamed).
    eventually("repeated attempts", || async {
        rig.sent.lock().unwrap().len() >= 12
    })
    .await;
    assert!(rig.parked().await.is_empty());
    assert!(rig.completed().await.is_empty());

    down.store(false, Ordering::SeqCst);
    eventually("everything published once the connection works", || async {
        rig.completed().await.len() == 3
    })
    .await;
    assert!(rig.parked().await.is_empty());
    rig.task.abort();
}

/// Regression: a row whose acknowledgement timed out three times while other events
/// got through (a broker frozen or restarted each time it was in flight) was parked,
/// and the acknowledged work it carried was never delivered.
#[tokio::test]
async fn a_row_that_times_out_is_retried_and_never_parked() {
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = attempts.clone();
    let time_out_a1 = move |id: &str| {
        (id == "a1" && counter.fetch_add(1, Ordering::SeqCst) < 5)
            .then_some(PublishError::Timeout(Duration::from_millis(1)))
    };
    let rows = vec![
        event("a", "a1"),
        event("a", "a2"),
        event("b", "b1"),
        event("b", "b2"),
    ];
    let rig = start(rows, Arc::new(time_out_a1)).await;
    eventually("a1 and a2 published once a1 is acknowledged", || async {
        let done = rig.completed().await;
        ["a1", "a2", "b1", "b2"]
            .iter()
            .all(|id| done.iter().any(|d| d == id))
    })
    .await;
    assert!(rig.parked().await.is_empty());
    assert!(attempts.load(Ordering::SeqCst) >= 6, "a1 was retried");
    let done = rig.completed().await;
    let a1 = done.iter().position(|d| d == "a1").unwrap();
    let a2 = done.iter().position(|d| d == "a2").unwrap();
    assert!(a1 < a2, "per-cluster order kept: {done:?}");
    rig.task.abort();
}

/// A row queued with its message under the publisher's wire format is sent as stored;
/// one queued under another format, or without a message (an older version's row), is
/// made again from its event.
#[tokio::test]
async fn stored_messages_are_sent_as_queued_and_others_made_again() {
    let with_message = |resource: &str, marker: &str, wire: &str| {
        let mut row = event("c1", resource);
        let mut message = self::wire().message(&row.event).unwrap();
        for (k, v) in &mut message.user_properties {
            if k == "ce-resourceid" {
                *v = marker.to_string();
            }
        }
        row.message = Some(QueuedMessage {
            message,
            wire: wire.to_string(),
        });
        row
    };
    let current = wire().fingerprint().to_string();
    let rows = vec![
        with_message("r1", "sent-as-stored", &current),
        with_message("r2", "stale-format", "another-format"),
        event("c1", "r3"),
    ];
    let rig = start(rows, Arc::new(|_| None)).await;
    eventually("all three completed", || async {
        rig.completed().await.len() == 3
    })
    .await;
    assert_eq!(
        *rig.sent.lock().unwrap(),
        ["sent-as-stored", "r2", "r3"],
        "the stored bytes for the current format, the event made again otherwise"
    );
    rig.task.abort();
}
