//! The PostgreSQL rows of the audit log (migration 2): each [`AuditRecord`] stored as
//! given — the chain is computed by `store::writes::append_audit`, never here — with
//! the event column sealed at rest; the columns, queries and decoding are the SQLite
//! backend's ([`super::audit_columns`]). The table is append-only (triggers); the
//! chain, not the triggers, is what proves it (`audit::verify`).
//!
//! Appends are linked to the head read in the same write transaction, and write
//! transactions of every hub on a database are serialised (`store::postgres`), so hubs
//! sharing a database extend one chain without forks.

use postgres::Row;
use postgres::types::ToSql;

use super::StoreError;
use super::audit_columns::{self, AuditParam, StoredAuditRow, stored_seq};
use super::column_codec::{Seal, ts};
use super::model::{AuditEntry, AuditQuery};
use super::postgres_conn::{PgConn, col};
use crate::audit::chain::{AuditHead, AuditRecord};

/// The newest record's sequence number and hash.
pub(super) fn head(conn: &mut PgConn) -> Result<Option<AuditHead>, StoreError> {
    conn.query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?
        .map(|r| {
            Ok(AuditHead {
                seq: col::<i64>(&r, 0)?.max(0) as u64,
                hash: col(&r, 1)?,
            })
        })
        .transpose()
}

/// Removes the records before `first_kept`: the cut is recorded first, which is what
/// lets the delete pass the append-only trigger.
pub(super) fn remove_before(
    conn: &mut PgConn,
    first_kept: u64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StoreError> {
    let first_kept = stored_seq(first_kept)?;
    conn.execute(
        "INSERT INTO audit_cuts (first_kept, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&first_kept, &ts(at)],
    )?;
    conn.execute("DELETE FROM audit WHERE seq < $1", &[&first_kept])
}

/// Stores one linked record.
pub(super) fn insert(
    conn: &mut PgConn,
    seal: Seal<'_>,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit (seq, at, direction, cluster, source, resource_id, \
         resource_version, event_type, actor, event, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &stored_seq(record.seq)?,
            &ts(record.at),
            &record.direction.as_str(),
            &record.cluster,
            &record.source,
            &record.resource_id,
            &record.resource_version,
            &record.event_type,
            &record.actor,
            &seal.seal("audit.event", record.event.clone())?,
            &record.prev_hash,
            &record.hash,
        ],
    )?;
    Ok(())
}

fn stored_row(r: &Row) -> Result<StoredAuditRow, StoreError> {
    Ok(StoredAuditRow {
        seq: col(r, 0)?,
        at: col(r, 1)?,
        direction: col(r, 2)?,
        cluster: col(r, 3)?,
        source: col(r, 4)?,
        resource_id: col(r, 5)?,
        resource_version: col(r, 6)?,
        event_type: col(r, 7)?,
        actor: col(r, 8)?,
        event: col(r, 9)?,
        prev_hash: col(r, 10)?,
        hash: col(r, 11)?,
    })
}

/// The records `query` selects, in chain order.
pub(super) fn records(
    conn: &mut PgConn,
    seal: Seal<'_>,
    query: &AuditQuery,
) -> Result<Vec<AuditRecord>, StoreError> {
    let (sql, params) = audit_columns::select(query, |n| format!("${n}"));
    let values: Vec<Box<dyn ToSql + Sync>> = params
        .into_iter()
        .map(|p| -> Box<dyn ToSql + Sync> {
            match p {
                AuditParam::Int(n) => Box::new(n),
                AuditParam::Text(s) => Box::new(s),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
    conn.query(&sql, &refs)?
        .iter()
        .map(|r| stored_row(r)?.into_record(seal))
        .collect()
}

/// The records of one work (or all), oldest first, as [`AuditEntry`]s (the event
/// decoded).
pub(super) fn entries(
    conn: &mut PgConn,
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
