//! Issue 12, defence in depth on the hub's receive side (`source::admission`), against
//! Mosquitto with fake agents on the wire (no ACLs: anyone may publish anywhere, as on a
//! misconfigured broker). Negatives are the point: a status whose topic and
//! `clustername` disagree, with an empty `clustername` or a wrong `statushash` is
//! refused and not stored; a flood of spec resync requests from one cluster is
//! rate-limited while another cluster is served; a resync for an unregistered cluster
//! is ignored; refused and dropped statuses do not grow the audit log by their payloads.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use serde_json::{Value, json};
use workbus_schemas::Event;
use workbus_schemas::envelope::StatusEventFields;
use workbus_schemas::event_type::Action;
use workbus_schemas::extensions::OcmExtensionsMut;
use workbus_schemas::metadata::decode_status_event;
use workbus_schemas::sequence_id::SequenceIdGenerator;
use workbus_schemas::status_hash::status_hash;

fn applied_status(reason: &str) -> Value {
    json!({"conditions": [{"type": "Applied", "status": "True", "observedGeneration": 1,
        "lastTransitionTime": "2025-12-16T06:00:17Z", "reason": reason, "message": reason}]})
}

/// A status event for `uid` claiming `cluster`, with its correct hash.
fn status_event(source: &str, cluster: &str, uid: &str, status: Value) -> Event {
    let mut event = StatusEventFields {
        agent_id: format!("{cluster}-work-agent"),
        action: Action::UpdateRequest,
        cluster_name: cluster.to_string(),
        original_source: source.to_string(),
        resource_id: uid.to_string(),
        generation: 1,
        sequence_id: SequenceIdGenerator::default().next().unwrap().to_string(),
        status_hash: "0".repeat(64),
        metadata: serde_json::Map::new(),
        status,
        log_tracing: Default::default(),
    }
    .build(Utc::now())
    .unwrap();
    let decoded = decode_status_event(&event).unwrap();
    event.set_status_hash(&status_hash(&decoded.status));
    event
}

/// The stored status's first condition reason.
async fn stored_reason(hub: &workbus_hub::HubHandle, cluster: &str) -> Option<String> {
    get_work(hub, cluster, "w1").await.body["status"]["conditions"][0]["reason"]
        .as_str()
        .map(str::to_string)
}

/// Total bytes of the audit log's events.
async fn audit_bytes(hub: &workbus_hub::HubHandle) -> usize {
    hub.store()
        .run(|s| s.audit(None, 1_000_000))
        .await
        .unwrap()
        .iter()
        .map(|a| serde_json::to_vec(&a.event).map_or(0, |v| v.len()))
        .sum()
}

#[tokio::test]
async fn forged_statuses_are_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("adm");
    let CreatedWork {
        hub,
        cluster,
        agent,
        uid,
    } = CreatedWork::start(dir.path(), &source).await;

    // Another client, on its own (unregistered) cluster's topic, speaks for the victim.
    let forger = FakeAgent::connect(&source, &unique("evil")).await;
    forger
        .publish(&status_event(
            &source,
            &cluster,
            &uid,
            applied_status("Forged"),
        ))
        .await;
    // On the victim's topic, but with an empty clustername.
    agent
        .publish(&status_event(&source, "", &uid, applied_status("Empty")))
        .await;
    // On the victim's topic, a hash that is not the status's.
    let mut wrong_hash = status_event(&source, &cluster, &uid, applied_status("WrongHash"));
    wrong_hash.set_status_hash(&"0".repeat(64));
    agent.publish(&wrong_hash).await;

    eventually("three refusals counted", || async {
        let m = hub.metrics();
        m.refused_count("topic_mismatch") == 1
            && m.refused_count("no_clustername") == 1
            && m.refused_count("statushash_mismatch") == 1
    })
    .await;
    assert_eq!(stored_reason(&hub, &cluster).await, None, "nothing stored");

    // The real agent's status is still accepted.
    agent
        .publish(&status_event(
            &source,
            &cluster,
            &uid,
            applied_status("Real"),
        ))
        .await;
    eventually("the real status stored", || async {
        stored_reason(&hub, &cluster).await.as_deref() == Some("Real")
    })
    .await;
    let text = hub.metrics().render(None);
    assert!(
        text.contains("workbus_hub_events_refused_total{reason=\"topic_mismatch\"} 1"),
        "{text}"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn resync_flood_is_rate_limited_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("flood");
    let hub = start_hub(dir.path(), &source).await;
    let (a, b) = (unique("a"), unique("b"));
    assert_eq!(create_cluster(&hub, &a).await.status, 201);
    assert_eq!(create_cluster(&hub, &b).await.status, 201);
    let flooder = FakeAgent::connect(&source, &a).await;
    let mut other = FakeAgent::connect(&source, &b).await;
    let stranger = FakeAgent::connect(&source, &unique("nobody")).await;

    stranger.send_spec_resync(&[]).await;
    for _ in 0..60 {
        flooder.send_spec_resync(&[("made-up", 1)]).await;
    }
    eventually("the flood refused beyond the burst", || async {
        hub.metrics().refused_count("resync_rate_limited") >= 35
            && hub.metrics().refused_count("unregistered_cluster") == 1
    })
    .await;
    let answered = hub.metrics().spec_resyncs_answered.get();
    assert!(answered <= 25, "{answered} answered");

    // Another cluster is served at once: its made-up id gets a synthetic delete.
    other.send_spec_resync(&[("other-made-up", 3)]).await;
    other
        .next("B's resync answer", |e| {
            is_type(e, "spec.resync_response")
                && ext(e, "resourceid").as_deref() == Some("other-made-up")
        })
        .await;
    hub.shutdown().await;
}

#[tokio::test]
async fn refused_and_dropped_statuses_do_not_grow_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let source = unique("audit");
    let CreatedWork {
        hub,
        cluster,
        agent,
        uid,
    } = CreatedWork::start(dir.path(), &source).await;
    // Let the create's audit rows settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = audit_bytes(&hub).await;

    // 100 statuses above the size bound (the text is in reason and message: ~600 KiB): refused before decoding, never audited.
    let big = "x".repeat(300 * 1024);
    let large = status_event(&source, &cluster, &uid, applied_status(&big));
    for _ in 0..100 {
        agent.publish(&large).await;
    }
    // 20 statuses under the bound for a work that does not exist: dropped by the rule,
    // audited without their data.
    let medium = "y".repeat(100 * 1024);
    let unknown = status_event(&source, &cluster, "no-such-work", applied_status(&medium));
    for _ in 0..20 {
        agent.publish(&unknown).await;
    }
    eventually("all refused or dropped", || async {
        hub.metrics().refused_count("too_large") == 100
            && hub.metrics().dropped_count("unknown_work") == 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = audit_bytes(&hub).await.saturating_sub(before);
    assert!(grown < 64 * 1024, "the audit log grew by {grown} bytes");
    assert_eq!(stored_reason(&hub, &cluster).await, None);
    hub.shutdown().await;
}
