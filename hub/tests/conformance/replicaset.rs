//! Conformance cases of ManifestWorkReplicaSets (issue 14): the replica set row, the
//! per-cluster rollout states and the generated works written in one transaction,
//! durable across a reopen; deletion (`Background`, `Foreground`); what a reconcile's
//! write leaves alone (foreign works, missing clusters, a replica set changed since).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use workbus_hub::rollout::cluster_status::{ClusterStatus, GroupKey};
use workbus_hub::rollout::reconcile::WorkToApply;
use workbus_hub::source::spec_events::change_event;
use workbus_hub::store::replicaset::{ClusterRollout, ReplicaSetKey};
use workbus_hub::store::replicaset_writes::{
    ApplyReplicaSet, ApproveRollout, DeleteReplicaSet, RecordRollout,
};
use workbus_hub::store::writes::{ApplyWork, CreateCluster};
use workbus_hub::store::{ApplyOutcome, SharedSpecEventBuilder, Store, StoreError, WorkKey};
use workbus_schemas::replicaset::names::{PLACEMENT_LABEL, REPLICA_SET_LABEL};
use workbus_schemas::replicaset::{
    GroupGate, ManifestWorkReplicaSetSpec, ManifestWorkReplicaSetStatus,
};

use super::Backend;
use crate::work_fixture::desired;

fn events(now: DateTime<Utc>) -> SharedSpecEventBuilder {
    Arc::new(move |w, c| change_event("src", w, c, now).map(Into::into))
}

fn rs_key() -> ReplicaSetKey {
    ReplicaSetKey {
        namespace: "apps".into(),
        name: "web".into(),
    }
}

fn rs_spec(cascade: &str) -> ManifestWorkReplicaSetSpec {
    serde_json::from_value(json!({
        "placementRefs": [{"name": "fleet"}],
        "cascadeDeletionPolicy": cascade,
        "manifestWorkTemplate": {"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}}
        ]}}
    }))
    .unwrap()
}

fn setup(s: &dyn Store, clusters: &[&str], cascade: &str) -> i64 {
    for c in clusters {
        s.write(CreateCluster {
            name: c.to_string(),
            labels: BTreeMap::new(),
            now: Utc::now(),
        })
        .unwrap();
    }
    let (outcome, generation) = apply_rs(s, cascade);
    assert_eq!(outcome, ApplyOutcome::Created);
    generation
}

/// Applies the replica set with `cascade`; answers the outcome and its generation.
fn apply_rs(s: &dyn Store, cascade: &str) -> (ApplyOutcome, i64) {
    let (outcome, rs) = s
        .write(ApplyReplicaSet {
            key: rs_key(),
            labels: BTreeMap::new(),
            spec: rs_spec(cascade),
            create_only: false,
            now: Utc::now(),
        })
        .unwrap();
    (outcome, rs.generation)
}

fn record(generation: i64, clusters: &[&str], revision: &str) -> RecordRollout {
    let now = Utc::now();
    RecordRollout {
        key: rs_key(),
        generation,
        apply: clusters
            .iter()
            .map(|c| WorkToApply {
                cluster: c.to_string(),
                placement: "fleet".into(),
                spec: rs_spec("Background").manifest_work_template,
            })
            .collect(),
        delete: Vec::new(),
        record: clusters
            .iter()
            .map(|c| ClusterRollout {
                cluster: c.to_string(),
                placement: "fleet".into(),
                group: GroupKey {
                    index: 0,
                    name: "canary".into(),
                },
                status: ClusterStatus::Progressing,
                last_transition: now,
                revision: revision.to_string(),
            })
            .collect(),
        forget: Vec::new(),
        halt: None,
        status: ManifestWorkReplicaSetStatus::default(),
        deletion_complete: false,
        source_id: "src".into(),
        now,
        build: events(now),
        audits: clusters
            .iter()
            .map(|c| {
                workbus_hub::audit::api_record::internal_entry(
                    "src",
                    "rollout",
                    Some(c),
                    json!({"cluster": c, "to": "Progressing"}),
                )
            })
            .collect(),
    }
}

/// The rollout transitions in the audit log.
fn rollout_audits(s: &dyn Store) -> usize {
    s.audit(None, 10_000)
        .unwrap()
        .iter()
        .filter(|e| e.event_type.ends_with("rollout"))
        .count()
}

/// A reconcile's writes (works, states, status) are one transaction and survive a
/// reopen: a restarted hub resumes the rollout from them.
pub fn replica_set_rollouts_are_written_at_once_and_survive_a_reopen(b: &dyn Backend) {
    {
        let s = b.open();
        let s = s.as_ref();
        let generation = setup(s, &["c1", "c2", "c3"], "Background");
        let revision = s.get_replica_set(&rs_key()).unwrap().unwrap().revision.hash;
        let mut op = record(generation, &["c1", "c2", "c3"], &revision);
        op.status.summary.total = 3;
        let done = s.write(op).unwrap();
        assert!(!done.stale);
        assert_eq!(done.applied.len(), 3);
        assert_eq!(
            s.outbox_depth().unwrap(),
            3,
            "one spec event per work, same transaction"
        );
        assert_eq!(
            rollout_audits(s),
            3,
            "the transitions' audit, same transaction"
        );
        let gate = GroupGate {
            placement: "fleet".into(),
            group_index: 0,
            group_name: "canary".into(),
        };
        s.write(ApproveRollout {
            key: rs_key(),
            gate: Some(gate),
        })
        .unwrap();
    }
    let s = b.open();
    let rs = s.get_replica_set(&rs_key()).unwrap().unwrap();
    assert_eq!(rs.status.summary.total, 3);
    assert_eq!(rs.approvals.len(), 1);
    assert_eq!(s.list_replica_sets(Some("apps")).unwrap().len(), 1);
    assert!(s.list_replica_sets(Some("other")).unwrap().is_empty());
    let states = s.replica_set_clusters(&rs_key()).unwrap();
    assert_eq!(states.len(), 3);
    assert_eq!(states[0].group.name, "canary");
    assert_eq!(states[0].status, ClusterStatus::Progressing);
    assert_eq!(states[0].revision, rs.revision.hash);
    for c in ["c1", "c2", "c3"] {
        let w = s
            .get_work(&WorkKey {
                cluster: c.into(),
                name: "web".into(),
            })
            .unwrap()
            .expect("the generated work is an ordinary work");
        assert_eq!(w.labels[REPLICA_SET_LABEL], "apps.web");
        assert_eq!(w.labels[PLACEMENT_LABEL], "fleet");
    }
}

/// `Background` removes the replica set at once; `Foreground` keeps it (deleting)
/// until a reconcile reports its works gone. Both mark every owned work deleting.
pub fn replica_set_deletion_background_and_foreground(b: &dyn Backend) {
    for (cascade, gone) in [("Background", true), ("Foreground", false)] {
        let s = b.open();
        let s = s.as_ref();
        let generation = match s.get_replica_set(&rs_key()).unwrap() {
            None if cascade == "Background" => setup(s, &["c1"], cascade),
            _ => apply_rs(s, cascade).1,
        };
        // The Background pass left deleting works; Foreground writes to another cluster.
        let cluster = if gone { "c1" } else { "c2" };
        if !gone {
            s.write(CreateCluster {
                name: cluster.into(),
                labels: BTreeMap::new(),
                now: Utc::now(),
            })
            .unwrap();
        }
        let revision = s.get_replica_set(&rs_key()).unwrap().unwrap().revision.hash;
        s.write(record(generation, &[cluster], &revision)).unwrap();
        let now = Utc::now();
        let deleted = s
            .write(DeleteReplicaSet {
                key: rs_key(),
                now,
                build: events(now),
                actor: None,
            })
            .unwrap();
        assert_eq!(deleted.gone, gone, "{cascade}");
        assert_eq!(deleted.works.len(), 1, "{cascade}");
        assert!(deleted.works[0].deletion.is_some());
        let left = s.get_replica_set(&rs_key()).unwrap();
        assert_eq!(left.is_some(), !gone, "{cascade}");
        if let Some(rs) = left {
            assert!(rs.deletion.is_some());
            let mut op = record(rs.generation, &[], &revision);
            op.deletion_complete = true;
            s.write(op).unwrap();
            assert!(s.get_replica_set(&rs_key()).unwrap().is_none());
            assert!(s.replica_set_clusters(&rs_key()).unwrap().is_empty());
        }
    }
    let s = b.open();
    let missing = s.write(DeleteReplicaSet {
        key: rs_key(),
        now: Utc::now(),
        build: events(Utc::now()),
        actor: None,
    });
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

/// A create-only apply of an existing replica set is refused. A reconcile's write
/// never touches a work it does not own, skips a cluster that
/// cannot take the work (the rest of the fleet is written), and writes nothing when the
/// replica set changed since it was read.
pub fn record_rollout_leaves_foreign_works_and_stale_reads_alone(b: &dyn Backend) {
    let s = b.open();
    let s = s.as_ref();
    let generation = setup(s, &["c1", "c2"], "Background");
    let again = s.write(ApplyReplicaSet {
        key: rs_key(),
        labels: BTreeMap::new(),
        spec: rs_spec("Background"),
        create_only: true,
        now: Utc::now(),
    });
    assert!(matches!(again, Err(StoreError::AlreadyExists { .. })));
    // A user's own work named like the replica set on c2.
    let mut foreign = desired("c2", "web", "mine");
    foreign.uid = workbus_schemas::resource_id::work_resource_id("src", "c2", "web").to_string();
    let now = Utc::now();
    s.write(ApplyWork {
        desired: foreign.clone(),
        create_only: true,
        now,
        build: events(now),
        actor: None,
    })
    .unwrap();
    let revision = s.get_replica_set(&rs_key()).unwrap().unwrap().revision.hash;
    let done = s
        .write(record(generation, &["c1", "c2", "gone"], &revision))
        .unwrap();
    assert_eq!(done.applied.len(), 1);
    let skipped: Vec<&str> = done.skipped.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(skipped, ["c2", "gone"]);
    let states = s.replica_set_clusters(&rs_key()).unwrap();
    assert_eq!(
        states
            .iter()
            .map(|s| s.cluster.as_str())
            .collect::<Vec<_>>(),
        ["c1"]
    );
    let mine = s.get_work(&foreign.key).unwrap().unwrap();
    assert_eq!(mine.spec, foreign.spec, "the user's work is untouched");
    let audited = rollout_audits(s);
    let stale = s.write(record(generation + 1, &["c2"], &revision)).unwrap();
    assert!(stale.stale);
    assert_eq!(s.replica_set_clusters(&rs_key()).unwrap().len(), 1);
    assert_eq!(rollout_audits(s), audited, "a stale write audits nothing");
}
