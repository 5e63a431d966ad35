//! The audit log's proof (issue 15): each kind of tampering made directly in the
//! database — as an attacker with the file would, triggers dropped first — is named by
//! `audit verify` at the first bad record; an untouched log verifies; an export reads
//! back and verifies offline, and a file cut short does not.

use std::path::Path;
use std::sync::Arc;

use chrono::{Duration, Utc};
use rusqlite::{Connection, params};
use serde_json::json;
use workbus_hub::StoreSettings;
use workbus_hub::audit::chain::{self, AuditRecord, NewRecord};
use workbus_hub::audit::checkpoint::{self, Sealed};
use workbus_hub::audit::export::{export_line, parse_line};
use workbus_hub::audit::sealer::{SealCheckpoint, read_checked_anchor};
use workbus_hub::audit::verify::{Problem, Start, Verifier, VerifyReport, verify_store};
use workbus_hub::store::writes::AppendAudit;
use workbus_hub::store::{self, AuditDirection, AuditEntry, AuditQuery};
use workbus_schemas::Event;
use workbus_schemas::signature::SigningKey;

/// Records 1..=20 with a checkpoint after every 5 (seqs 6, 12, 18, 24: the
/// checkpoints are records too), the anchor written after the last.
const BATCHES: usize = 4;
const PER_BATCH: usize = 5;

fn new_key() -> SigningKey {
    SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
}

fn entry(n: usize) -> AuditEntry {
    let mut event = Event::default();
    workbus_schemas::envelope::set_json_data(&mut event, json!({"n": n}));
    AuditEntry {
        at: Utc::now() + Duration::milliseconds(n as i64),
        direction: AuditDirection::Received,
        cluster: Some(format!("edge-{}", n % 3)),
        resource_id: Some(format!("uid-{n}")),
        event_type: "status".into(),
        event,
        actor: None,
    }
}

/// A sealed store in `dir` holding the records above; returns the audit key.
fn fill(dir: &Path) -> SigningKey {
    let s = store::open(&StoreSettings::sqlite(dir)).unwrap();
    let key = Arc::new(checkpoint::load_or_create_key(dir).unwrap().0);
    let mut n = 0;
    for _ in 0..BATCHES {
        for _ in 0..PER_BATCH {
            n += 1;
            s.write(AppendAudit(entry(n))).unwrap();
        }
        let cp = s
            .write(SealCheckpoint {
                key: key.clone(),
                source: "hub".into(),
                at: Utc::now(),
                unless_head: None,
            })
            .unwrap()
            .unwrap();
        checkpoint::write_anchor(dir, &cp.event).unwrap();
    }
    checkpoint::load_or_create_key(dir).unwrap().0
}

/// `audit verify` against the data directory, as the offline command does it.
fn verify(dir: &Path, key: &SigningKey) -> VerifyReport {
    let s = store::open(&StoreSettings::sqlite(dir)).unwrap();
    let anchor: Option<Sealed> = read_checked_anchor(dir, &key.verifying_key()).unwrap();
    verify_store(s.as_ref(), Some(key.verifying_key()), None, None, anchor).unwrap()
}

/// The attacker's connection: the append-only triggers dropped.
fn attacker(dir: &Path) -> Connection {
    let c = Connection::open(dir.join(store::SQLITE_FILE)).unwrap();
    c.execute_batch("DROP TRIGGER audit_chain_no_update; DROP TRIGGER audit_chain_no_delete;")
        .unwrap();
    c
}

fn records(dir: &Path) -> Vec<AuditRecord> {
    let s = store::open(&StoreSettings::sqlite(dir)).unwrap();
    s.audit_records(&AuditQuery {
        limit: 1000,
        ..Default::default()
    })
    .unwrap()
}

/// Writes `r`'s chain fields and (plain, as an attacker without the key would) event.
fn overwrite(c: &Connection, r: &AuditRecord) {
    c.execute(
        "UPDATE audit SET at = ?2, direction = ?3, cluster = ?4, source = ?5, resource_id = ?6, \
         resource_version = ?7, event_type = ?8, actor = ?9, event = ?10, prev_hash = ?11, \
         hash = ?12 WHERE seq = ?1",
        params![
            r.seq as i64,
            workbus_hub::audit::chain::format_time(r.at),
            r.direction.as_str(),
            r.cluster,
            r.source,
            r.resource_id,
            r.resource_version,
            r.event_type,
            r.actor,
            r.event,
            r.prev_hash,
            r.hash
        ],
    )
    .unwrap();
}

/// Re-links every record from `from` on, as an attacker who knows the algorithm would
/// after changing history.
fn rehash_from(c: &Connection, all: &mut [AuditRecord], from: usize) {
    for i in from..all.len() {
        if i > 0 {
            all[i].prev_hash = all[i - 1].hash.clone();
        }
        all[i].hash = all[i].computed_hash();
        overwrite(c, &all[i]);
    }
}

fn bad(report: &VerifyReport) -> (u64, Problem) {
    let finding = report.bad.clone().expect("a problem is found");
    (finding.seq, finding.problem)
}

#[test]
fn an_untouched_log_verifies_with_every_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    let report = verify(dir.path(), &key);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records, (BATCHES * (PER_BATCH + 1)) as u64);
    assert_eq!(report.checkpoints, BATCHES as u64);
    assert_eq!(report.unsigned_tail, 0);
    // Another key: the first checkpoint is named.
    let report = verify(dir.path(), &key_with_anchor_of(dir.path()));
    assert!(!report.ok());
}

/// A key whose anchor check passes (no anchor) but whose checkpoints fail.
fn key_with_anchor_of(dir: &Path) -> SigningKey {
    std::fs::remove_file(dir.join(checkpoint::ANCHOR_FILE)).unwrap();
    new_key()
}

#[test]
fn a_modified_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    attacker(dir.path())
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 8", [])
        .unwrap();
    assert_eq!(bad(&verify(dir.path(), &key)), (8, Problem::Modified));
}

#[test]
fn a_removed_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    attacker(dir.path())
        .execute("DELETE FROM audit WHERE seq = 8", [])
        .unwrap();
    assert_eq!(
        bad(&verify(dir.path(), &key)),
        (8, Problem::Removed { next: 9 })
    );
}

#[test]
fn an_inserted_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    let all = records(dir.path());
    let c = attacker(dir.path());
    // Make room at 8 (renumber 8.. to 9..), then a well-formed record linked to 7.
    c.execute_batch(
        "UPDATE audit SET seq = seq + 1000000 WHERE seq >= 8;
         UPDATE audit SET seq = seq - 1000000 + 1 WHERE seq >= 1000000;",
    )
    .unwrap();
    let mut forged = chain::link(
        Some(&all[6].head()),
        NewRecord {
            at: all[6].at,
            direction: AuditDirection::Api,
            cluster: Some("edge-1".into()),
            resource_id: None,
            event_type: "io.workbus.api.cluster.delete".into(),
            actor: Some("admin".into()),
            event: json!({"specversion": "1.0", "id": "x", "source": "hub", "type": "t"}),
        },
    );
    forged.seq = 8;
    forged.hash = forged.computed_hash();
    c.execute(
        "INSERT INTO audit (seq, at, direction, event_type, event, prev_hash, hash) \
         VALUES (8, 'x', 'api', 't', 'x', 'x', 'x')",
        [],
    )
    .unwrap();
    overwrite(&c, &forged);
    assert_eq!(
        bad(&verify(dir.path(), &key)),
        (8, Problem::Inserted { links_to: 7 })
    );
}

#[test]
fn reordered_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    let all = records(dir.path());
    let c = attacker(dir.path());
    // Records 8 and 9 change places (each keeps its hash; the seqs stay in order).
    let (mut a, mut b) = (all[8].clone(), all[7].clone());
    a.seq = 8;
    b.seq = 9;
    overwrite(&c, &a);
    overwrite(&c, &b);
    assert_eq!(bad(&verify(dir.path(), &key)), (8, Problem::Reordered));
}

#[test]
fn a_truncated_tail_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    // The last checkpoint (24) and the records before it, back to 20.
    attacker(dir.path())
        .execute("DELETE FROM audit WHERE seq >= 20", [])
        .unwrap();
    assert_eq!(
        bad(&verify(dir.path(), &key)),
        (20, Problem::Truncated { sealed_seq: 23 })
    );
}

#[test]
fn a_checkpoint_re_signed_with_another_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    let mut all = records(dir.path());
    let c = attacker(dir.path());
    // History rewritten before checkpoint 12 and everything re-linked; the attacker
    // signs checkpoint 12 anew with a key of their own.
    all[8].actor = Some("mallory".into());
    let mallory = new_key();
    let sealed_head = {
        rehash_from(&c, &mut all, 8);
        all[10].head()
    };
    let event = checkpoint::checkpoint_event(&mallory, "hub", &sealed_head, Utc::now()).unwrap();
    all[11].event = chain::canonical_event(&serde_json::to_value(&event).unwrap());
    rehash_from(&c, &mut all, 11);
    let (seq, problem) = bad(&verify(dir.path(), &key));
    assert_eq!(seq, 12);
    assert!(
        matches!(problem, Problem::CheckpointSignature { ref reason } if reason.contains("signed with key")),
        "{problem:?}"
    );
}

#[test]
fn history_rewritten_without_the_key_is_named_at_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    let mut all = records(dir.path());
    let c = attacker(dir.path());
    all[8].actor = Some("mallory".into());
    rehash_from(&c, &mut all, 8);
    assert_eq!(
        bad(&verify(dir.path(), &key)),
        (12, Problem::CheckpointMismatch { sealed_seq: 11 })
    );
}

#[test]
fn an_export_verifies_offline_and_a_cut_file_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    let lines: Vec<String> = records(dir.path())
        .iter()
        .map(|r| export_line(r).unwrap())
        .collect();
    let check = |lines: &[String]| {
        let mut v = Verifier::new(Some(key.verifying_key()), Start::Genesis, None);
        for line in lines {
            v.push(&parse_line(line).unwrap());
        }
        v.finish(true)
    };
    assert!(check(&lines).ok());
    let cut = check(&lines[..lines.len() - 1]);
    assert_eq!(bad(&cut), (19, Problem::UnsignedTail { records: 5 }));
    let mut edited = lines.clone();
    edited[3] = edited[3].replace("edge-", "edgy-");
    assert_eq!(bad(&check(&edited)), (4, Problem::Modified));
}

#[test]
fn a_retention_cut_keeps_verification_green_and_a_further_cut_is_named() {
    use workbus_hub::audit::retention::CutAudit;
    let dir = tempfile::tempdir().unwrap();
    let key = fill(dir.path());
    let all = records(dir.path());
    {
        let s = store::open(&StoreSettings::sqlite(dir.path())).unwrap();
        let (removed, checkpoint) = s
            .write(CutAudit {
                first_kept: 9,
                prev_hash: all[7].hash.clone(),
                key: Arc::new(checkpoint::load_or_create_key(dir.path()).unwrap().0),
                source: "hub".into(),
                at: Utc::now(),
            })
            .unwrap()
            .unwrap();
        assert_eq!(removed, 8);
        checkpoint::write_anchor(dir.path(), &checkpoint.event).unwrap();
        // The triggers still refuse anything else.
        let c = Connection::open(dir.path().join(store::SQLITE_FILE)).unwrap();
        assert!(c.execute("DELETE FROM audit WHERE seq = 20", []).is_err());
        assert!(
            c.execute("UPDATE audit SET actor = 'x' WHERE seq = 20", [])
                .is_err()
        );
    }
    let report = verify(dir.path(), &key);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.first_seq, Some(9));
    assert_eq!(report.records, 24 - 8 + 2);
    // An export after the cut verifies offline too.
    let lines: Vec<String> = records(dir.path())
        .iter()
        .map(|r| export_line(r).unwrap())
        .collect();
    let mut v = Verifier::new(Some(key.verifying_key()), Start::Genesis, None);
    lines.iter().for_each(|l| v.push(&parse_line(l).unwrap()));
    assert!(v.finish(true).ok());
    // Records removed beyond the recorded cut are named.
    attacker(dir.path())
        .execute("DELETE FROM audit WHERE seq < 12", [])
        .unwrap();
    assert_eq!(
        bad(&verify(dir.path(), &key)),
        (1, Problem::Removed { next: 12 })
    );
}
