//! Conformance cases of the audit hash chain (issue 15): every backend stores each
//! linked record exactly as given and reads it back byte for byte, answers every
//! `AuditQuery` filter alike, keeps the chain across a reopen, and lets a retention cut
//! remove a prefix — after which the log still verifies.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;
use workbus_hub::audit::api_record::{api_entry, internal_entry};
use workbus_hub::audit::chain::{AuditRecord, GENESIS};
use workbus_hub::audit::retention::CutAudit;
use workbus_hub::audit::sealer::SealCheckpoint;
use workbus_hub::audit::verify::verify_store;
use workbus_hub::store::writes::{AppendAudit, AuditReceived, CompleteOutbox, CreateCluster};
use workbus_hub::store::{AuditDirection, AuditEntry, AuditQuery, NewOutbox, Store};
use workbus_schemas::envelope::status_resync_request;
use workbus_schemas::signature::SigningKey;

use super::Backend;

fn all(s: &dyn Store) -> Vec<AuditRecord> {
    s.audit_records(&AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    })
    .unwrap()
}

fn query(s: &dyn Store, q: AuditQuery) -> Vec<u64> {
    s.audit_records(&AuditQuery { limit: 1000, ..q })
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

fn seqs(records: &[AuditRecord], keep: impl Fn(&AuditRecord) -> bool) -> Vec<u64> {
    records.iter().filter(|r| keep(r)).map(|r| r.seq).collect()
}

/// Records of every direction: API changes with actors, the hub's own, a received
/// event of a work, a sent one.
fn fill(s: &dyn Store) -> Vec<AuditRecord> {
    s.write(CreateCluster {
        name: "c1".into(),
        labels: BTreeMap::new(),
        now: Utc::now(),
    })
    .unwrap();
    let mut made = vec![
        s.write(AppendAudit(api_entry(
            "src",
            "alice",
            "cluster.create",
            Some("c1"),
            json!({"name": "c1"}),
        )))
        .unwrap(),
        s.write(AppendAudit(internal_entry(
            "src",
            "placement",
            None,
            json!({"clusters": ["c1"]}),
        )))
        .unwrap(),
        s.write(AppendAudit(api_entry(
            "src",
            "bob",
            "cluster.label",
            Some("c2"),
            json!({"name": "c2", "labels": {"tier": "gold \u{1F947}"}}),
        )))
        .unwrap(),
    ];
    let received = AuditEntry {
        at: Utc::now(),
        direction: AuditDirection::Received,
        cluster: Some("c1".into()),
        resource_id: Some("uid-1".into()),
        event_type:
            "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request".into(),
        event: status_resync_request("src", "c1", json!({"statusHashes": []}), Utc::now()),
        actor: None,
    };
    s.write(AuditReceived(received)).unwrap();
    s.write(workbus_hub::store::writes::Enqueue {
        events: vec![NewOutbox {
            cluster: "c1".into(),
            resource_id: Some("uid-1".into()),
            event: status_resync_request("src", "c1", json!({"statusHashes": []}), Utc::now()),
            message: None,
            actor: Some("carol".into()),
        }],
        now: Utc::now(),
    })
    .unwrap();
    let id = s.outbox_batch(0, 1, "").unwrap()[0].id;
    s.write(CompleteOutbox {
        ids: vec![id],
        sent_at: Utc::now(),
    })
    .unwrap();
    let stored = all(s);
    assert_eq!(stored.len(), 5);
    // What the writes answered is what is stored, byte for byte (event text included).
    made.truncate(3);
    assert_eq!(&stored[..3], &made[..]);
    stored
}

pub fn the_audit_chain_is_stored_queried_and_cut(b: &dyn Backend) {
    let key = Arc::new(SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap());
    let before = Utc::now() - Duration::seconds(1);
    let stored = {
        let s = b.open();
        let s = s.as_ref();
        assert_eq!(s.audit_head().unwrap(), None);
        assert!(all(s).is_empty());
        fill(s)
    };

    // A chain: contiguous from 1, each linked to the one before, the head the last.
    let s = b.open();
    let s = s.as_ref();
    assert_eq!(all(s), stored, "the chain survives a reopen");
    assert_eq!(seqs(&stored, |_| true), vec![1, 2, 3, 4, 5]);
    assert_eq!(stored[0].prev_hash, GENESIS);
    assert!(stored.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    assert_eq!(s.audit_head().unwrap(), Some(stored[4].head()));
    let directions: Vec<AuditDirection> = stored.iter().map(|r| r.direction).collect();
    use AuditDirection::*;
    assert_eq!(directions, [Api, Internal, Api, Received, Sent]);
    assert_eq!(stored[4].actor.as_deref(), Some("carol"));

    // Every filter, alone and together, answers in chain order.
    let q = AuditQuery::default;
    assert_eq!(
        query(
            s,
            AuditQuery {
                cluster: Some("c1".into()),
                ..q()
            }
        ),
        seqs(&stored, |r| r.cluster.as_deref() == Some("c1"))
    );
    assert_eq!(
        query(
            s,
            AuditQuery {
                resource_id: Some("uid-1".into()),
                ..q()
            }
        ),
        vec![4, 5]
    );
    assert_eq!(
        query(
            s,
            AuditQuery {
                actor: Some("bob".into()),
                ..q()
            }
        ),
        vec![3]
    );
    assert_eq!(
        query(
            s,
            AuditQuery {
                direction: Some(Api),
                ..q()
            }
        ),
        vec![1, 3]
    );
    assert_eq!(
        query(
            s,
            AuditQuery {
                event_type: Some(stored[1].event_type.clone()),
                ..q()
            }
        ),
        vec![2]
    );
    assert_eq!(
        query(
            s,
            AuditQuery {
                after_seq: Some(2),
                to_seq: Some(4),
                ..q()
            }
        ),
        vec![3, 4]
    );
    assert_eq!(
        query(
            s,
            AuditQuery {
                since: Some(stored[2].at),
                until: Some(stored[4].at),
                ..q()
            }
        ),
        seqs(&stored, |r| r.at >= stored[2].at && r.at < stored[4].at)
    );
    assert_eq!(
        query(
            s,
            AuditQuery {
                since: Some(before),
                cluster: Some("c1".into()),
                direction: Some(Api),
                ..q()
            }
        ),
        vec![1]
    );
    assert_eq!(
        query(
            s,
            AuditQuery {
                after_seq: Some(u64::MAX),
                ..q()
            }
        ),
        Vec::<u64>::new()
    );
    assert_eq!(
        s.audit_records(&AuditQuery { limit: 2, ..q() })
            .unwrap()
            .len(),
        2
    );
    // The older reading: one work's records as entries.
    let entries = s.audit(Some("uid-1"), 10).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].actor.as_deref(), Some("carol"));

    // Sealed, the log verifies; a retention cut removes a prefix and records it, and
    // what is left still verifies.
    let checkpoint = s
        .write(SealCheckpoint {
            key: key.clone(),
            source: "src".into(),
            at: Utc::now(),
            unless_head: None,
        })
        .unwrap()
        .expect("a checkpoint");
    assert_eq!(checkpoint.seq, 6);
    let verifying = Some(key.verifying_key());
    let report = verify_store(s, verifying.clone(), None, None, None).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.records, report.checkpoints), (6, 1));
    let (removed, _) = s
        .write(CutAudit {
            first_kept: 3,
            prev_hash: stored[1].hash.clone(),
            key: key.clone(),
            source: "src".into(),
            at: Utc::now(),
        })
        .unwrap()
        .expect("a cut");
    assert_eq!(removed, 2);
    let left = all(s);
    assert_eq!(left.first().map(|r| r.seq), Some(3));
    assert_eq!(
        left.last().map(|r| r.seq),
        Some(8),
        "cut record + checkpoint"
    );
    assert_eq!(&left[..3], &stored[2..]);
    let report = verify_store(s, verifying, None, None, None).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.first_seq, Some(3));
}
