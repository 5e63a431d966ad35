//! The conformance cases: each takes a [`Backend`] and uses nothing but `dyn Store`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use serde_json::json;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::writes::{
    ApplyWork, AuditReceived, BootstrapToken, CascadeOutcome, CompleteOutbox, CreateCluster,
    CreateToken, DeleteCluster, DeleteClusterCascade, Enqueue, ForceDeleteWork, IngestStatus,
    MarkDeleting, ParkOutbox, RedriveDeletions, RevokeToken, TouchCluster, UnparkOutbox,
};
use workbus_hub::store::{
    ApiToken, ApplyOutcome, AuditDirection, AuditEntry, Batch, DesiredWork, DropReason,
    IncomingStatus, NewOutbox, Role, ScopeEntry, SharedSpecEventBuilder, StatusOutcome, Store,
    StoreError, WorkFilter, WorkKey, WorkRecord,
};
use workbus_schemas::envelope::status_resync_request;
use workbus_schemas::extensions::OcmExtensions;
use workbus_schemas::sequence_id::{DEFAULT_NODE, SequenceId};
use workbus_schemas::work::ManifestWorkStatus;

use super::Backend;
pub use super::placement::*;
pub use super::registration::*;
pub use super::replicaset::*;
use crate::work_fixture::{desired, desired_secret};

/// No wire format: rows come with their events.
const NO_WIRE: &str = "";

fn build(now: DateTime<Utc>) -> SharedSpecEventBuilder {
    Arc::new(move |w, c| change_event("src", w, c, now).map(Into::into))
}

fn cluster(s: &dyn Store, name: &str) {
    s.write(CreateCluster {
        name: name.into(),
        labels: BTreeMap::new(),
        now: Utc::now(),
    })
    .unwrap();
}

fn apply(s: &dyn Store, d: &DesiredWork) -> Result<ApplyOutcome, StoreError> {
    apply_op(d, false).run_on(s).map(|(o, _)| o)
}

fn apply_op(d: &DesiredWork, create_only: bool) -> ApplyWork {
    let now = Utc::now();
    ApplyWork {
        desired: d.clone(),
        create_only,
        now,
        build: build(now),
        actor: None,
    }
}

fn mark_deleting(s: &dyn Store, key: &WorkKey) -> Result<WorkRecord, StoreError> {
    let now = Utc::now();
    s.write(MarkDeleting {
        key: key.clone(),
        now,
        build: build(now),
        actor: None,
    })
}

/// Runs a write on a store (reads better than `s.write(op)` in long chains).
trait RunOn: workbus_hub::store::Write + Sized {
    fn run_on(self, s: &dyn Store) -> Result<Self::Output, StoreError> {
        s.write(self)
    }
}
impl<W: workbus_hub::store::Write> RunOn for W {}

fn key(cluster: &str, name: &str) -> WorkKey {
    WorkKey {
        cluster: cluster.into(),
        name: name.into(),
    }
}

/// A sequence id stamped now (plus `n` ms: later ids are newer).
fn seq(n: i64) -> String {
    SequenceId::new(Utc::now().timestamp_millis() + n, DEFAULT_NODE, 0)
        .unwrap()
        .to_string()
}

fn status(uid: &str, generation: i64, sequence_id: &str, deleted: bool) -> IncomingStatus {
    IncomingStatus {
        uid: uid.to_string(),
        cluster: Some("c1".into()),
        generation,
        sequence_id: sequence_id.into(),
        status_hash: Some(format!("hash-{sequence_id}")),
        status: ManifestWorkStatus::default(),
        deleted,
        received: Utc::now(),
    }
}

fn received_audit(uid: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        direction: AuditDirection::Received,
        cluster: Some("c1".into()),
        resource_id: Some(uid.to_string()),
        event_type: "t".into(),
        event: status_resync_request("src", "c1", json!({"statusHashes": []}), Utc::now()),
        actor: None,
    }
}

fn ingest(s: &dyn Store, status: IncomingStatus) -> StatusOutcome {
    let audit = received_audit(&status.uid);
    s.write(IngestStatus { status, audit }).unwrap()
}

fn action_of(e: &workbus_hub::store::OutboxEntry) -> String {
    let ty = e.event().unwrap().as_ref().unwrap().ty().to_string();
    ty.rsplit('.').next().unwrap().to_string()
}

pub fn clusters_and_works_crud_with_the_generation_rules(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    cluster(s, "c1");
    assert!(matches!(
        CreateCluster {
            name: "c1".into(),
            labels: BTreeMap::new(),
            now: Utc::now()
        }
        .run_on(s),
        Err(StoreError::AlreadyExists {
            kind: "cluster",
            ..
        })
    ));
    assert!(matches!(
        apply(s, &desired("nope", "w", "a")),
        Err(StoreError::NotFound {
            kind: "cluster",
            ..
        })
    ));
    let d = desired("c1", "w1", "a");
    assert_eq!(apply(s, &d).unwrap(), ApplyOutcome::Created);
    assert_eq!(apply(s, &d).unwrap(), ApplyOutcome::Unchanged);
    assert!(matches!(
        apply_op(&d, true).run_on(s),
        Err(StoreError::AlreadyExists { kind: "work", .. })
    ));
    assert_eq!(
        apply(s, &desired("c1", "w1", "b")).unwrap(),
        ApplyOutcome::Updated
    );
    let mut labelled = desired("c1", "w1", "b");
    labelled.labels.insert("x".into(), "y".into());
    assert_eq!(apply(s, &labelled).unwrap(), ApplyOutcome::Updated);
    let w = s.get_work(&d.key).unwrap().unwrap();
    assert_eq!(w.generation, 3);
    assert_eq!(w.labels.get("x").map(String::as_str), Some("y"));
    assert_eq!(s.get_work_by_uid(&w.uid).unwrap().unwrap(), w);
    assert!(s.get_work(&key("c1", "none")).unwrap().is_none());
    assert!(matches!(
        DeleteCluster { name: "c1".into() }.run_on(s),
        Err(StoreError::Conflict(m)) if m.contains("still has 1 work")
    ));
    assert!(matches!(
        DeleteCluster { name: "c9".into() }.run_on(s),
        Err(StoreError::NotFound {
            kind: "cluster",
            ..
        })
    ));
    cluster(s, "c0");
    let names: Vec<String> = s
        .list_clusters()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["c0", "c1"]);
    assert!(s.get_cluster("c0").unwrap().unwrap().last_heard.is_none());
    let heard = Utc::now();
    TouchCluster {
        name: "c0".into(),
        at: heard,
    }
    .run_on(s)
    .unwrap();
    assert_eq!(
        s.get_cluster("c0").unwrap().unwrap().last_heard,
        Some(heard)
    );
    DeleteCluster { name: "c0".into() }.run_on(s).unwrap();
    assert!(s.get_cluster("c0").unwrap().is_none());
}

pub fn the_outbox_and_the_sent_audit_rows(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    cluster(s, "c1");
    apply(s, &desired("c1", "w1", "a")).unwrap();
    apply(s, &desired("c1", "w1", "a")).unwrap(); // unchanged: queues nothing
    apply(s, &desired("c1", "w1", "b")).unwrap();
    Enqueue {
        events: vec![NewOutbox {
            cluster: "c1".into(),
            resource_id: None,
            event: status_resync_request("src", "c1", json!({"statusHashes": []}), Utc::now()),
            message: None,
            actor: None,
        }],
        now: Utc::now(),
    }
    .run_on(s)
    .unwrap();
    // One row per accepted change, in order, then the enqueued one.
    let queued = s.outbox_batch(0, 10, NO_WIRE).unwrap();
    let actions: Vec<String> = queued.iter().map(action_of).collect();
    assert_eq!(
        actions,
        ["create_request", "update_request", "resync_request"]
    );
    assert!(queued.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(queued[2].resource_id, None);
    let uid = queued[0].resource_id.clone().unwrap();
    assert_eq!(queued[1].resource_id.as_deref(), Some(uid.as_str()));
    assert_eq!(s.outbox_batch(queued[0].id, 10, NO_WIRE).unwrap().len(), 2);
    assert_eq!(s.outbox_batch(0, 1, NO_WIRE).unwrap().len(), 1);
    assert_eq!(s.outbox_depth().unwrap(), 3);
    // Completing rows removes them and writes their `sent` audit rows (the full event).
    let sent_at = Utc::now();
    CompleteOutbox {
        ids: vec![queued[0].id, queued[1].id],
        sent_at,
    }
    .run_on(s)
    .unwrap();
    assert_eq!(s.outbox_depth().unwrap(), 1);
    let audit = s.audit(Some(&uid), 10).unwrap();
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .all(|a| a.direction == AuditDirection::Sent && a.at == sent_at)
    );
    assert_eq!(
        &audit[0].event,
        queued[0].event().unwrap().as_ref().unwrap()
    );
    assert_eq!(
        audit[1].event_type,
        queued[1].event().unwrap().as_ref().unwrap().ty()
    );
    // A received event is audited and makes its cluster heard.
    AuditReceived(received_audit(&uid)).run_on(s).unwrap();
    let all = s.audit(None, 10).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].direction, AuditDirection::Received);
    assert!(s.get_cluster("c1").unwrap().unwrap().last_heard.is_some());
    assert_eq!(s.audit(None, 2).unwrap().len(), 2);
}

pub fn everything_answered_survives_a_reopen(b: &dyn Backend) {
    let uid = {
        let s = b.open();
        let s = s.as_ref();
        cluster(s, "c1");
        apply(s, &desired("c1", "w1", "a")).unwrap();
        apply(s, &desired("c1", "w1", "b")).unwrap();
        let id = s.outbox_batch(0, 1, NO_WIRE).unwrap()[0].id;
        CompleteOutbox {
            ids: vec![id],
            sent_at: Utc::now(),
        }
        .run_on(s)
        .unwrap();
        let w = s.get_work(&key("c1", "w1")).unwrap().unwrap();
        let outcome = ingest(s, status(&w.uid, 2, &seq(0), false));
        assert!(matches!(outcome, StatusOutcome::Accepted(_)));
        w.uid
    };
    let s = b.open();
    let w = s.get_work(&key("c1", "w1")).unwrap().unwrap();
    assert_eq!((w.uid.as_str(), w.generation), (uid.as_str(), 2));
    assert_eq!(w.status.as_ref().map(|st| st.generation), Some(2));
    assert_eq!(s.outbox_depth().unwrap(), 1);
    assert_eq!(s.audit(Some(&uid), 10).unwrap().len(), 2); // sent + received
    assert_eq!(s.list_clusters().unwrap().len(), 1);
}

pub fn deletion_is_idempotent_and_completed_by_the_agent(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    cluster(s, "c1");
    let k = key("c1", "w1");
    assert!(matches!(
        mark_deleting(s, &k),
        Err(StoreError::NotFound { kind: "work", .. })
    ));
    apply(s, &desired("c1", "w1", "a")).unwrap();
    let deleting = mark_deleting(s, &k).unwrap();
    assert_eq!(deleting.generation, 1, "a delete keeps the generation");
    let requested = deleting.deletion.expect("marked");
    let again = mark_deleting(s, &k).unwrap();
    assert_eq!(again.deletion, Some(requested), "idempotent");
    assert_eq!(s.outbox_depth().unwrap(), 2, "one create, one delete");
    let queued = s.outbox_batch(0, 10, NO_WIRE).unwrap();
    let delete = queued[1].event().unwrap().as_ref().unwrap();
    assert!(delete.ty().ends_with("spec.delete_request"));
    assert!(delete.deletion_timestamp().unwrap().is_some());
    assert!(matches!(
        apply(s, &desired("c1", "w1", "z")),
        Err(StoreError::Conflict(m)) if m.contains("being deleted")
    ));
    assert_eq!(s.pending_deletions().unwrap()[0].requested, requested);
    // Deleted=True removes the work; the cluster can go once it has none.
    assert!(matches!(
        ingest(s, status(&deleting.uid, 1, &seq(0), true)),
        StatusOutcome::Deleted(w) if w.key == k
    ));
    assert!(s.get_work(&k).unwrap().is_none());
    assert!(s.pending_deletions().unwrap().is_empty());
    assert_eq!(
        ingest(s, status(&deleting.uid, 1, &seq(1), false)),
        StatusOutcome::Dropped(DropReason::UnknownWork)
    );
    DeleteCluster { name: "c1".into() }.run_on(s).unwrap();
    assert!(s.list_clusters().unwrap().is_empty());
}

fn force_delete(s: &dyn Store, key: &WorkKey) -> Result<WorkRecord, StoreError> {
    let now = Utc::now();
    ForceDeleteWork {
        key: key.clone(),
        now,
        build: build(now),
        actor: Some("ops".into()),
        announce: true,
    }
    .run_on(s)
}

fn cascade(s: &dyn Store, name: &str, force: bool) -> Result<CascadeOutcome, StoreError> {
    let now = Utc::now();
    DeleteClusterCascade {
        name: name.into(),
        force,
        now,
        build: build(now),
        actor: Some("ops".into()),
    }
    .run_on(s)
}

fn delete_events(s: &dyn Store) -> usize {
    s.outbox_batch(0, 100, NO_WIRE)
        .unwrap()
        .iter()
        .filter(|e| action_of(e) == "delete_request")
        .count()
}

/// `delete --force` and `delete cluster --cascade [--force]`: for clusters whose agent is
/// gone for good (issue 17).
pub fn forced_deletion_and_cascading_cluster_removal(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    cluster(s, "c1");
    assert!(matches!(
        force_delete(s, &key("c1", "nope")),
        Err(StoreError::NotFound { kind: "work", .. })
    ));
    // A live work: its delete event is queued (a slow agent still gets it), the row goes.
    apply(s, &desired("c1", "live", "a")).unwrap();
    let removed = force_delete(s, &key("c1", "live")).unwrap();
    assert!(removed.deletion.is_some());
    assert!(s.get_work(&key("c1", "live")).unwrap().is_none());
    assert_eq!(delete_events(s), 1);
    // A deleting work: no second delete event; no pending deletion left behind.
    apply(s, &desired("c1", "stuck", "a")).unwrap();
    let marked = mark_deleting(s, &key("c1", "stuck")).unwrap();
    assert_eq!(delete_events(s), 2);
    let removed = force_delete(s, &key("c1", "stuck")).unwrap();
    assert_eq!(
        removed.deletion, marked.deletion,
        "the first request time stays"
    );
    assert_eq!(delete_events(s), 2);
    assert!(s.pending_deletions().unwrap().is_empty());
    // The agent's late confirmation is a status about nothing.
    assert_eq!(
        ingest(s, status(&removed.uid, 1, &seq(0), true)),
        StatusOutcome::Dropped(DropReason::UnknownWork)
    );
    // Re-created after a forced removal: the generation continues (tombstone).
    apply(s, &desired("c1", "stuck", "b")).unwrap();
    assert_eq!(
        s.get_work(&key("c1", "stuck")).unwrap().unwrap().generation,
        2
    );

    // Cascade without force: works marked deleting, the cluster stays until they go.
    apply(s, &desired("c1", "other", "a")).unwrap();
    mark_deleting(s, &key("c1", "other")).unwrap();
    let before = delete_events(s);
    let CascadeOutcome::Pending { marked, remaining } = cascade(s, "c1", false).unwrap() else {
        panic!("the cluster has works: it must wait");
    };
    assert_eq!(remaining, 2);
    assert_eq!(
        marked.len(),
        1,
        "only the live work is marked by this request"
    );
    assert_eq!(marked[0].key, key("c1", "stuck"));
    assert_eq!(delete_events(s), before + 1);
    assert!(s.get_cluster("c1").unwrap().is_some());
    // Asking again marks nothing more.
    assert!(matches!(
        cascade(s, "c1", false).unwrap(),
        CascadeOutcome::Pending { marked, remaining: 2 } if marked.is_empty()
    ));
    // The agent confirms both: the next request removes the cluster.
    for w in s.works_of_cluster("c1").unwrap() {
        assert!(matches!(
            ingest(s, status(&w.uid, w.generation, &seq(5), true)),
            StatusOutcome::Deleted(_)
        ));
    }
    assert!(matches!(
        cascade(s, "c1", false).unwrap(),
        CascadeOutcome::Removed { works } if works.is_empty()
    ));
    assert!(s.get_cluster("c1").unwrap().is_none());
    assert!(matches!(
        cascade(s, "c1", false),
        Err(StoreError::NotFound {
            kind: "cluster",
            ..
        })
    ));

    // Cascade with force: everything goes in one transaction, durably.
    cluster(s, "c2");
    apply(s, &desired("c2", "a", "1")).unwrap();
    apply(s, &desired("c2", "b", "1")).unwrap();
    mark_deleting(s, &key("c2", "b")).unwrap();
    let CascadeOutcome::Removed { works } = cascade(s, "c2", true).unwrap() else {
        panic!("forced: removed at once");
    };
    let names: Vec<_> = works.iter().map(|w| w.key.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let s = b.open();
    let s = s.as_ref();
    assert!(s.get_cluster("c2").unwrap().is_none());
    assert!(s.works_of_cluster("c2").unwrap().is_empty());
    assert!(s.pending_deletions().unwrap().is_empty());
}

pub fn generations_continue_across_incarnations(b: &dyn Backend) {
    let k = key("c1", "w1");
    let uid = {
        let s = b.open();
        let s = s.as_ref();
        cluster(s, "c1");
        apply(s, &desired("c1", "w1", "a")).unwrap();
        apply(s, &desired("c1", "w1", "b")).unwrap();
        let first = mark_deleting(s, &k).unwrap();
        assert_eq!(first.generation, 2);
        assert!(matches!(
            ingest(s, status(&first.uid, 2, &seq(0), true)),
            StatusOutcome::Deleted(_)
        ));
        // Re-created: same uid, generation 3.
        assert_eq!(
            apply(s, &desired("c1", "w1", "c")).unwrap(),
            ApplyOutcome::Created
        );
        let second = s.get_work(&k).unwrap().unwrap();
        assert_eq!(
            (second.uid.as_str(), second.generation),
            (first.uid.as_str(), 3)
        );
        // The first incarnation's confirmation, again: not this work's deletion.
        assert_eq!(
            ingest(s, status(&first.uid, 2, &seq(1), true)),
            StatusOutcome::Dropped(DropReason::NotDeleting)
        );
        mark_deleting(s, &k).unwrap();
        assert_eq!(
            ingest(s, status(&first.uid, 2, &seq(2), true)),
            StatusOutcome::Dropped(DropReason::StaleGeneration)
        );
        assert!(s.get_work(&k).unwrap().is_some());
        assert!(matches!(
            ingest(s, status(&first.uid, 3, &seq(3), true)),
            StatusOutcome::Deleted(_)
        ));
        first.uid
    };
    // The tombstone is durable: a third incarnation after a reopen starts at 4.
    let s = b.open();
    let s = s.as_ref();
    apply(s, &desired("c1", "w1", "d")).unwrap();
    let third = s.get_work(&k).unwrap().unwrap();
    assert_eq!((third.uid, third.generation), (uid, 4));
    // A name never deleted starts at 1.
    apply(s, &desired("c1", "w2", "a")).unwrap();
    assert_eq!(s.get_work(&key("c1", "w2")).unwrap().unwrap().generation, 1);
}

pub fn pending_deletions_are_redriven_only_while_deleting(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    let now = Utc::now();
    cluster(s, "c1");
    for name in ["w1", "w2"] {
        apply(s, &desired("c1", name, "a")).unwrap();
    }
    let w1 = mark_deleting(s, &key("c1", "w1")).unwrap();
    let w2 = s.get_work(&key("c1", "w2")).unwrap().unwrap();
    let pending = s.pending_deletions().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].uid, w1.uid);
    assert_eq!(pending[0].requested, w1.deletion.unwrap());

    let depth = s.outbox_depth().unwrap();
    let uids = vec![w1.uid.clone(), w2.uid.clone(), "unknown".to_string()];
    let redrive = || RedriveDeletions {
        uids: uids.clone(),
        now,
        build: build(now),
    };
    assert_eq!(redrive().run_on(s).unwrap(), 1);
    let queued = s.outbox_batch(0, 100, NO_WIRE).unwrap();
    assert_eq!(queued.len() as u64, depth + 1);
    let again = queued.last().unwrap().event().unwrap().as_ref().unwrap();
    assert!(again.ty().ends_with("spec.delete_request"));
    assert_eq!(again.resource_id().unwrap(), w1.uid);
    assert_eq!(again.resource_version().unwrap(), w1.generation);
    assert!(again.deletion_timestamp().unwrap().is_some());

    // Confirmed, then re-created: nothing to re-drive any more.
    ingest(s, status(&w1.uid, w1.generation, &seq(0), true));
    assert!(s.pending_deletions().unwrap().is_empty());
    apply(s, &desired("c1", "w1", "b")).unwrap();
    assert_eq!(redrive().run_on(s).unwrap(), 0);
    assert_eq!(s.outbox_depth().unwrap(), depth + 2); // + the re-creation
}

pub fn statuses_follow_the_acceptance_rule(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    cluster(s, "c1");
    apply(s, &desired("c1", "w1", "a")).unwrap();
    let w = s.get_work(&key("c1", "w1")).unwrap().unwrap();
    let (older, newer) = (seq(-10), seq(0));
    let accepted = ingest(s, status(&w.uid, 1, &newer, false));
    let StatusOutcome::Accepted(stored) = accepted else {
        panic!("first status of the generation: {accepted:?}");
    };
    let kept = stored.status.as_ref().unwrap();
    assert_eq!(
        (kept.generation, kept.sequence_id.as_str()),
        (1, newer.as_str())
    );
    assert_eq!(
        kept.status_hash.as_deref(),
        Some(format!("hash-{newer}").as_str())
    );
    assert_eq!(s.get_work(&w.key).unwrap().unwrap().status, stored.status);
    assert_eq!(
        ingest(s, status(&w.uid, 1, &older, false)),
        StatusOutcome::Dropped(DropReason::NotNewer)
    );
    assert_eq!(
        ingest(s, status(&w.uid, 7, &seq(5), false)),
        StatusOutcome::Dropped(DropReason::StaleGeneration)
    );
    let mut elsewhere = status(&w.uid, 1, &seq(6), false);
    elsewhere.cluster = Some("c2".into());
    assert_eq!(
        ingest(s, elsewhere),
        StatusOutcome::Dropped(DropReason::ClusterMismatch)
    );
    assert_eq!(
        ingest(s, status(&w.uid, 1, &seq(7), true)),
        StatusOutcome::Dropped(DropReason::NotDeleting)
    );
    // Every received status was audited, whatever its outcome.
    let received = s.audit(Some(&w.uid), 100).unwrap();
    assert_eq!(received.len(), 5);
    // The stored status is still the accepted one.
    let now = s.get_work(&w.key).unwrap().unwrap();
    assert_eq!(now.status.unwrap().sequence_id, newer);
}

pub fn parked_rows_leave_the_queue_until_superseded(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    let park = |id: i64, reason: &str| {
        ParkOutbox {
            id,
            reason: reason.into(),
            at: Utc::now(),
        }
        .run_on(s)
    };
    let complete = |id: i64| {
        CompleteOutbox {
            ids: vec![id],
            sent_at: Utc::now(),
        }
        .run_on(s)
        .unwrap()
    };
    cluster(s, "c1");
    cluster(s, "c2");
    apply(s, &desired("c1", "w1", "a")).unwrap(); // u1 generation 1
    apply(s, &desired("c1", "w1", "b")).unwrap(); // u1 generation 2
    apply(s, &desired("c1", "w2", "a")).unwrap(); // u2 generation 1
    apply(s, &desired("c1", "w2", "b")).unwrap(); // u2 generation 2
    apply(s, &desired("c2", "w1", "a")).unwrap(); // another cluster
    // Two events about no work, of one type, for c1.
    let resync = |n: usize| NewOutbox {
        cluster: "c1".into(),
        resource_id: None,
        event: status_resync_request("src", "c1", json!({"statusHashes": [n]}), Utc::now()),
        message: None,
        actor: None,
    };
    Enqueue {
        events: vec![resync(1), resync(2)],
        now: Utc::now(),
    }
    .run_on(s)
    .unwrap();
    let ids: Vec<i64> = s
        .outbox_batch(0, 10, NO_WIRE)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let [u1g1, u1g2, u2g1, u2g2, c2w1, r1, r2] = ids[..] else {
        panic!("{ids:?}")
    };

    // Parking takes a row out of the queue and the depth, and keeps it with the reason.
    assert_eq!(park(u1g2, "too large").unwrap(), 0);
    assert_eq!(s.outbox_depth().unwrap(), 6);
    assert_eq!(s.outbox_parked_count().unwrap(), 1);
    assert!(
        s.outbox_batch(0, 10, NO_WIRE)
            .unwrap()
            .iter()
            .all(|e| e.id != u1g2)
    );
    let parked = s.parked_outbox(0, 10).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, "too large");
    assert!(parked[0].entry.event_type.ends_with("update_request"));
    assert!(parked[0].parked_at >= parked[0].created);
    assert!(parked[0].entry.event().is_some_and(Result::is_ok));
    assert!(matches!(
        park(u1g2, "again"),
        Err(StoreError::NotFound { .. })
    ));
    // Completing an older event of the work leaves the newer parked one alone.
    complete(u1g1);
    assert_eq!(s.outbox_parked_count().unwrap(), 1);

    // A newer event of the same work supersedes a parked one, parked or published.
    park(u2g1, "too large").unwrap();
    assert_eq!(park(u2g2, "still too large").unwrap(), 1);
    let parked: Vec<i64> = s
        .parked_outbox(0, 10)
        .unwrap()
        .iter()
        .map(|p| p.entry.id)
        .collect();
    assert_eq!(parked, [u1g2, u2g2]);
    assert_eq!(s.parked_outbox(u1g2, 10).unwrap().len(), 1);
    // For events about no work, the same type for the same cluster supersedes.
    park(r1, "bad").unwrap();
    complete(c2w1);
    assert_eq!(s.outbox_parked_count().unwrap(), 3);
    complete(r2);
    assert_eq!(s.outbox_parked_count().unwrap(), 2);

    // Unparked rows are pending again, in their place.
    UnparkOutbox(vec![u1g2]).run_on(s).unwrap();
    assert_eq!(s.outbox_parked_count().unwrap(), 1);
    assert_eq!(s.outbox_batch(0, 10, NO_WIRE).unwrap()[0].id, u1g2);
    assert_eq!(s.outbox_depth().unwrap(), 1);
}

pub fn a_failing_write_in_a_batch_is_rolled_back_alone(b: &dyn Backend) {
    {
        let s = b.open();
        let s = s.as_ref();
        cluster(s, "c1");
        let mut batch = Batch::new();
        let w1 = batch.push(apply_op(&desired("c1", "w1", "a"), false));
        // Unknown cluster: fails, and must not undo w1 or w2.
        let unknown = batch.push(apply_op(&desired("nope", "w", "a"), false));
        let w2 = batch.push(apply_op(&desired("c1", "w2", "a"), false));
        // The same work again in the same batch sees the earlier write.
        let w1_again = batch.push(apply_op(&desired("c1", "w1", "b"), false));
        let now = Utc::now();
        let missing = batch.push(MarkDeleting {
            key: key("c1", "missing"),
            now,
            build: build(now),
            actor: None,
        });
        // A write that fails half way (its event does not build) leaves no trace.
        let half = batch.push(ApplyWork {
            desired: desired("c1", "w3", "a"),
            create_only: false,
            now,
            build: Arc::new(|_, _| Err("refused".to_string())),
            actor: None,
        });
        assert_eq!(batch.len(), 6);
        batch.commit(s).unwrap();
        assert_eq!(w1.answered().unwrap().0, ApplyOutcome::Created);
        assert!(matches!(
            unknown.answered(),
            Err(StoreError::NotFound {
                kind: "cluster",
                ..
            })
        ));
        assert_eq!(w2.answered().unwrap().0, ApplyOutcome::Created);
        let (outcome, work) = w1_again.answered().unwrap();
        assert_eq!((outcome, work.generation), (ApplyOutcome::Updated, 2));
        assert!(matches!(
            missing.answered(),
            Err(StoreError::NotFound { kind: "work", .. })
        ));
        assert!(matches!(half.answered(), Err(StoreError::Event(m)) if m == "refused"));
        assert!(s.get_work(&key("c1", "w3")).unwrap().is_none());
    }
    // Reopened: everything answered Ok is there, in order, and nothing else.
    let s = b.open();
    assert_eq!(s.get_work(&key("c1", "w1")).unwrap().unwrap().generation, 2);
    assert!(s.get_work(&key("c1", "w2")).unwrap().is_some());
    let queued = s.outbox_batch(0, 10, NO_WIRE).unwrap();
    let order: Vec<(String, String)> = queued
        .iter()
        .map(|e| {
            (
                e.event()
                    .unwrap()
                    .as_ref()
                    .unwrap()
                    .resource_id()
                    .unwrap()
                    .to_string(),
                action_of(e),
            )
        })
        .collect();
    let uid = |n: &str| desired("c1", n, "").uid;
    assert_eq!(
        order,
        [
            (uid("w1"), "create_request".to_string()),
            (uid("w2"), "create_request".to_string()),
            (uid("w1"), "update_request".to_string()),
        ]
    );
}

pub fn listing_works_filters_and_pages(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    cluster(s, "c1");
    cluster(s, "c2");
    for (c, n, team) in [
        ("c1", "x0", "a"),
        ("c1", "x1", "b"),
        ("c1", "x2", "a"),
        ("c2", "x0", "a"),
    ] {
        let mut d = desired(c, n, "v");
        d.labels.insert("team".into(), team.into());
        apply(s, &d).unwrap();
    }
    let names = |filter: WorkFilter| -> Vec<String> {
        s.list_works(&filter)
            .unwrap()
            .into_iter()
            .map(|w| format!("{}/{}", w.key.cluster, w.key.name))
            .collect()
    };
    let all = WorkFilter {
        limit: 10,
        ..WorkFilter::default()
    };
    assert_eq!(names(all.clone()), ["c1/x0", "c1/x1", "c1/x2", "c2/x0"]);
    assert_eq!(
        names(WorkFilter {
            cluster: Some("c1".into()),
            after: Some(key("c1", "x0")),
            ..all.clone()
        }),
        ["c1/x1", "c1/x2"]
    );
    assert_eq!(
        names(WorkFilter {
            labels: vec![("team".into(), "a".into())],
            ..all.clone()
        }),
        ["c1/x0", "c1/x2", "c2/x0"]
    );
    assert_eq!(
        names(WorkFilter {
            after: Some(key("c1", "x2")),
            limit: 1,
            ..all.clone()
        }),
        ["c2/x0"]
    );
    let of_c1: Vec<String> = s
        .works_of_cluster("c1")
        .unwrap()
        .into_iter()
        .map(|w| w.key.name)
        .collect();
    assert_eq!(of_c1, ["x0", "x1", "x2"]);
}

pub fn queued_messages_come_back_for_their_wire_format_only(b: &dyn Backend) {
    use workbus_hub::store::{OutboxPayload, QueuedMessage};
    use workbus_schemas::mqtt::MqttMessage;

    let s = b.open();
    let s = s.as_ref();
    let event = status_resync_request("src", "c1", json!({"statusHashes": []}), Utc::now());
    let message = MqttMessage {
        topic: "sources/src/consumers/c1/sourceevents".into(),
        content_type: Some("application/json".into()),
        user_properties: vec![
            ("ce-type".into(), event.ty().to_string()),
            ("ce-empty".into(), String::new()),
        ],
        payload: vec![0, 159, 146, 150, b'{'],
        publisher: None,
    };
    let bare = MqttMessage {
        content_type: None,
        user_properties: Vec::new(),
        ..message.clone()
    };
    let queued = |m: &MqttMessage| NewOutbox {
        cluster: "c1".into(),
        resource_id: None,
        event: event.clone(),
        message: Some(QueuedMessage {
            message: m.clone(),
            wire: "format-a".into(),
        }),
        actor: None,
    };
    Enqueue {
        events: vec![queued(&message), queued(&bare)],
        now: Utc::now(),
    }
    .run_on(s)
    .unwrap();
    // Read for the format that made them: the stored bytes, exactly.
    let rows = s.outbox_batch(0, 10, "format-a").unwrap();
    assert_eq!(rows.len(), 2);
    for (row, expected) in rows.iter().zip([&message, &bare]) {
        match &row.payload {
            OutboxPayload::Message(m) => assert_eq!(m, expected),
            other => panic!("expected the stored message, got {other:?}"),
        }
        assert_eq!(row.event_type, event.ty());
    }
    // For any other format: the event, to be encoded again.
    for row in s.outbox_batch(0, 10, "format-b").unwrap() {
        assert!(matches!(&row.payload, OutboxPayload::Event(Ok(e)) if *e == event));
    }
    // Parked rows are listed with their events; the `sent` audit row has the event.
    ParkOutbox {
        id: rows[1].id,
        reason: "r".into(),
        at: Utc::now(),
    }
    .run_on(s)
    .unwrap();
    let parked = s.parked_outbox(0, 10).unwrap();
    assert!(matches!(parked[0].entry.event(), Some(Ok(e)) if *e == event));
    CompleteOutbox {
        ids: vec![rows[0].id],
        sent_at: Utc::now(),
    }
    .run_on(s)
    .unwrap();
    assert_eq!(s.audit(None, 10).unwrap()[0].event, event);
}

fn token(name: &str, hash: &str, role: Role, scope: Option<Vec<ScopeEntry>>) -> ApiToken {
    ApiToken {
        name: name.into(),
        hash: hash.into(),
        role,
        scope,
        created: Utc::now(),
        created_by: "offline".into(),
    }
}

/// API tokens: created once per name, found by digest, listed by name, bootstrapped
/// only into an empty table, revoked for good, durable.
pub fn api_tokens_are_stored_by_digest_and_revoked_at_once(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    assert!(s.list_tokens().unwrap().is_empty());
    let admin = token("admin", "d0", Role::Admin, None);
    assert!(BootstrapToken(admin.clone()).run_on(s).unwrap());
    // Tokens exist: no second bootstrap.
    assert!(
        !BootstrapToken(token("other", "d9", Role::Admin, None))
            .run_on(s)
            .unwrap()
    );
    let scoped = token(
        "team-a",
        "d1",
        Role::Writer,
        Some(vec![ScopeEntry::Cluster("a".into())]),
    );
    CreateToken(scoped.clone()).run_on(s).unwrap();
    assert!(matches!(
        CreateToken(token("team-a", "d2", Role::Reader, None)).run_on(s),
        Err(StoreError::AlreadyExists { .. })
    ));
    let found = s.token_by_hash("d1").unwrap().expect("found by digest");
    assert_eq!((found.name.as_str(), found.role), ("team-a", Role::Writer));
    assert_eq!(found.scope, scoped.scope);
    assert_eq!(s.token_by_hash("nope").unwrap(), None);
    let names: Vec<String> = s
        .list_tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["admin", "team-a"]);
    drop(found);
    let reopened = b.open();
    assert!(reopened.token_by_hash("d0").unwrap().is_some(), "durable");
    RevokeToken {
        name: "team-a".into(),
    }
    .run_on(reopened.as_ref())
    .unwrap();
    assert_eq!(reopened.token_by_hash("d1").unwrap(), None);
    assert!(matches!(
        RevokeToken {
            name: "team-a".into()
        }
        .run_on(reopened.as_ref()),
        Err(StoreError::NotFound { .. })
    ));
}

/// The actor of a change travels with its queued event to the `sent` audit row.
pub fn the_actor_of_a_change_reaches_its_sent_audit_row(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    cluster(s, "c1");
    let d = desired("c1", "w1", "v1");
    let mut op = apply_op(&d, false);
    op.actor = Some("deployer".into());
    op.run_on(s).unwrap();
    let now = Utc::now();
    s.write(MarkDeleting {
        key: key("c1", "w1"),
        now,
        build: build(now),
        actor: Some("cleaner".into()),
    })
    .unwrap();
    let ids: Vec<i64> = s
        .outbox_batch(0, 10, NO_WIRE)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 2);
    CompleteOutbox {
        ids,
        sent_at: Utc::now(),
    }
    .run_on(s)
    .unwrap();
    let actors: Vec<Option<String>> = s
        .audit(Some(&d.uid), 10)
        .unwrap()
        .into_iter()
        .map(|a| a.actor)
        .collect();
    assert_eq!(
        actors,
        [Some("deployer".to_string()), Some("cleaner".to_string())]
    );
    AuditReceived(received_audit(&d.uid)).run_on(s).unwrap();
    assert_eq!(s.audit(Some(&d.uid), 10).unwrap()[2].actor, None);
}

/// Secrets at rest: the bytes the backend stores hold no Secret value in clear — not
/// in the work, not in the outbox (event and ready message), not in the audit log —
/// and reads give the values back; the audit copy holds keyed digests instead.
pub fn secret_values_are_not_stored_in_clear(b: &dyn Backend) {
    use workbus_hub::store::QueuedMessage;
    use workbus_schemas::mqtt::MqttMessage;

    const VALUE: &str = "c3VwZXItc2VjcmV0LXBhc3N3b3Jk"; // "super-secret-password"
    const TOKEN: &str = "plain-token-4f1e";
    let s = b.open();
    let s = s.as_ref();
    cluster(s, "c1");
    let work = desired_secret("c1", "w1", VALUE, TOKEN);
    apply(s, &work).unwrap();
    // a ready message whose payload holds the value too
    let event = s.outbox_batch(0, 1, NO_WIRE).unwrap()[0]
        .event()
        .unwrap()
        .as_ref()
        .unwrap()
        .clone();
    Enqueue {
        events: vec![NewOutbox {
            cluster: "c1".into(),
            resource_id: Some(work.uid.clone()),
            event,
            message: Some(QueuedMessage {
                message: MqttMessage {
                    topic: "sources/src/consumers/c1/sourceevents".into(),
                    content_type: Some("application/json".into()),
                    user_properties: Vec::new(),
                    payload: format!("{{\"password\":\"{VALUE}\"}}").into_bytes(),
                    publisher: None,
                },
                wire: "format-a".into(),
            }),
            actor: None,
        }],
        now: Utc::now(),
    }
    .run_on(s)
    .unwrap();
    let in_clear =
        |bytes: &[u8], what: &str| bytes.windows(what.len()).any(|w| w == what.as_bytes());

    // Reads give the values back.
    let stored = s.get_work(&work.key).unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&stored.spec).unwrap(),
        serde_json::to_value(&work.spec).unwrap()
    );
    let queued = s.outbox_batch(0, 10, "format-a").unwrap();
    assert_eq!(queued.len(), 2);
    let event_text = serde_json::to_string(queued[0].event().unwrap().as_ref().unwrap()).unwrap();
    assert!(event_text.contains(VALUE) && event_text.contains(TOKEN));
    match &queued[1].payload {
        workbus_hub::store::OutboxPayload::Message(m) => {
            assert!(in_clear(&m.payload, VALUE))
        }
        other => panic!("expected the ready message, got {other:?}"),
    }

    // The audit copy keeps the keys and digests the values.
    CompleteOutbox {
        ids: vec![queued[0].id],
        sent_at: Utc::now(),
    }
    .run_on(s)
    .unwrap();
    let audit = s.audit(Some(&work.uid), 10).unwrap();
    assert_eq!(audit.len(), 1);
    let audited = serde_json::to_string(&audit[0].event).unwrap();
    assert!(
        !audited.contains(VALUE) && !audited.contains(TOKEN),
        "{audited}"
    );
    assert!(audited.contains("\"password\":\"hmac-sha256:"), "{audited}");
    assert!(audited.contains("\"token\":\"hmac-sha256:"), "{audited}");

    // Nothing at rest holds them in clear (database, WAL, everything).
    let bytes = b.bytes_at_rest();
    for value in [VALUE, TOKEN] {
        assert!(!in_clear(&bytes, value), "{value} stored in clear");
    }
    // and they survive a reopen
    let again = b.open();
    let spec = again.get_work(&work.key).unwrap().unwrap().spec;
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        serde_json::to_value(&work.spec).unwrap()
    );
}
