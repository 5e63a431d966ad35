//! The SQLite rows of the audit log (migration 10): each [`AuditRecord`] stored as
//! given — the chain is computed by `store::writes::append_audit`, never here — with
//! the event column sealed at rest. The table is append-only (triggers); the chain,
//! not the triggers, is what proves it (`audit::verify`).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::audit_columns::{self, AuditParam, StoredAuditRow, stored_seq};
use super::column_codec::{Seal, ts};
use super::model::{AuditEntry, AuditQuery};
use crate::audit::chain::{AuditHead, AuditRecord};

/// The newest record's sequence number and hash.
pub(super) fn head(conn: &Connection) -> Result<Option<AuditHead>, StoreError> {
    let head = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .optional()?;
    Ok(head.map(|(seq, hash)| AuditHead {
        seq: seq.max(0) as u64,
        hash,
    }))
}

/// Removes the records before `first_kept`: the cut is recorded first, which is what
/// lets the delete pass the append-only trigger.
pub(super) fn remove_before(
    conn: &Connection,
    first_kept: u64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StoreError> {
    let first_kept = stored_seq(first_kept)?;
    conn.prepare_cached(
        "INSERT INTO audit_cuts (first_kept, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![first_kept, ts(at)])?;
    let removed = conn
        .prepare_cached("DELETE FROM audit WHERE seq < ?1")?
        .execute([first_kept])?;
    Ok(removed as u64)
}

/// Stores one linked record.
pub(super) fn insert(
    conn: &Connection,
    seal: Seal<'_>,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    let seq = stored_seq(record.seq)?;
    conn.prepare_cached(
        "INSERT INTO audit (seq, at, direction, cluster, source, resource_id, \
         resource_version, event_type, actor, event, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        seq,
        ts(record.at),
        record.direction.as_str(),
        record.cluster,
        record.source,
        record.resource_id,
        record.resource_version,
        record.event_type,
        record.actor,
        seal.seal("audit.event", record.event.clone())?,
        record.prev_hash,
        record.hash
    ])?;
    Ok(())
}

fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAuditRow> {
    Ok(StoredAuditRow {
        seq: r.get(0)?,
        at: r.get(1)?,
        direction: r.get(2)?,
        cluster: r.get(3)?,
        source: r.get(4)?,
        resource_id: r.get(5)?,
        resource_version: r.get(6)?,
        event_type: r.get(7)?,
        actor: r.get(8)?,
        event: r.get(9)?,
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

/// The records `query` selects, in chain order.
pub(super) fn records(
    conn: &Connection,
    seal: Seal<'_>,
    query: &AuditQuery,
) -> Result<Vec<AuditRecord>, StoreError> {
    let (sql, params) = audit_columns::select(query, |n| format!("?{n}"));
    let values = params.into_iter().map(|p| match p {
        AuditParam::Int(n) => SqlValue::Integer(n),
        AuditParam::Text(s) => SqlValue::Text(s),
    });
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values), stored_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(|r| r.into_record(seal)).collect()
}

/// The records of one work (or all), oldest first, as [`AuditEntry`]s (the event
/// decoded).
pub(super) fn entries(
    conn: &Connection,
    seal: Seal<'_>,
    resource_id: Option<&str>,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    records(
        conn,
        seal,
        &audit_columns::entries_query(resource_id, limit),
    )?
    .into_iter()
    .map(audit_columns::entry)
    .collect()
}
