//! The SQLite rows of the audit log (migration 10): each [`AuditRecord`] stored as
//! given — the chain is computed by `store::writes::append_audit`, never here — with
//! the event column sealed at rest. The table is append-only (triggers); the chain,
//! not the triggers, is what proves it (`audit::verify`).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::model::{AuditDirection, AuditEntry, AuditQuery};
use super::sqlite::{Seal, parse_ts, ts};
use crate::audit::chain::{AuditHead, AuditRecord};

const COLUMNS: &str = "SELECT seq, at, direction, cluster, source, resource_id, \
     resource_version, event_type, actor, event, prev_hash, hash FROM audit";

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
    let first_kept = i64::try_from(first_kept)
        .map_err(|_| StoreError::Backend("audit sequence number overflow".into()))?;
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
    let seq = i64::try_from(record.seq)
        .map_err(|_| StoreError::Backend("audit sequence number overflow".into()))?;
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

type RawRecord = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    Option<String>,
    String,
    String,
    String,
);

fn raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
    ))
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        table: "audit",
        reason,
    }
}

fn record(seal: Seal<'_>, raw: RawRecord) -> Result<AuditRecord, StoreError> {
    let (
        seq,
        at,
        direction,
        cluster,
        source,
        resource_id,
        version,
        event_type,
        actor,
        event,
        prev,
        hash,
    ) = raw;
    Ok(AuditRecord {
        seq: u64::try_from(seq).map_err(|_| corrupt(format!("negative seq {seq}")))?,
        at: parse_ts("audit", &at)?,
        direction: AuditDirection::parse(&direction)
            .ok_or_else(|| corrupt(format!("unknown direction {direction:?}")))?,
        cluster,
        source,
        resource_id,
        resource_version: version,
        event_type,
        actor,
        event: seal.open("audit.event", event).map_err(corrupt)?,
        prev_hash: prev,
        hash,
    })
}

/// The records `query` selects, in chain order.
pub(super) fn records(
    conn: &Connection,
    seal: Seal<'_>,
    query: &AuditQuery,
) -> Result<Vec<AuditRecord>, StoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<SqlValue> = Vec::new();
    let mut add = |clause: &str, value: SqlValue| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    let clamp = |n: u64| SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    if let Some(after) = query.after_seq {
        add("seq > ?", clamp(after));
    }
    if let Some(to) = query.to_seq {
        add("seq <= ?", clamp(to));
    }
    if let Some(c) = &query.cluster {
        add("cluster = ?", c.clone().into());
    }
    if let Some(r) = &query.resource_id {
        add("resource_id = ?", r.clone().into());
    }
    if let Some(t) = &query.event_type {
        add("event_type = ?", t.clone().into());
    }
    if let Some(a) = &query.actor {
        add("actor = ?", a.clone().into());
    }
    if let Some(d) = query.direction {
        add("direction = ?", d.as_str().to_string().into());
    }
    if let Some(t) = query.since {
        add("at >= ?", ts(t).into());
    }
    if let Some(t) = query.until {
        add("at < ?", ts(t).into());
    }
    let mut sql = COLUMNS.to_string();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    values.push(clamp(query.limit as u64));
    sql.push_str(&format!(" ORDER BY seq LIMIT ?{}", values.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let raws = stmt
        .query_map(rusqlite::params_from_iter(values), raw)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(|r| record(seal, r)).collect()
}

/// The records of one work (or all), oldest first, as [`AuditEntry`]s (the event
/// decoded).
pub(super) fn entries(
    conn: &Connection,
    seal: Seal<'_>,
    resource_id: Option<&str>,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let query = AuditQuery {
        resource_id: resource_id.map(str::to_string),
        limit,
        ..AuditQuery::default()
    };
    records(conn, seal, &query)?
        .into_iter()
        .map(|r| {
            let event = workbus_schemas::mqtt::structured::decode(r.event.as_bytes())
                .map_err(|e| corrupt(format!("audit record {}: {e}", r.seq)))?;
            Ok(AuditEntry {
                at: r.at,
                direction: r.direction,
                cluster: r.cluster,
                resource_id: r.resource_id,
                event_type: r.event_type,
                event,
                actor: r.actor,
            })
        })
        .collect()
}
