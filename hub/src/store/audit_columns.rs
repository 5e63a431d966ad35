//! How an audit record is kept in table `audit`, shared by every backend: the column
//! list, a stored row back into an [`AuditRecord`] (the event column opened with the
//! store's [`Seal`]), an [`AuditQuery`] as one `WHERE … ORDER BY seq LIMIT` text with
//! its parameters, and a record read back as an [`AuditEntry`]. A backend only binds
//! the parameters and reads the columns, so both backends answer a query alike (the
//! conformance suite checks it).

use chrono::{DateTime, Utc};

use super::StoreError;
use super::column_codec::{Seal, parse_ts, ts};
use super::model::{AuditDirection, AuditEntry, AuditQuery};
use crate::audit::chain::AuditRecord;

/// The columns of a record, in the order [`StoredAuditRow`] takes them.
pub(super) const AUDIT_SELECT: &str = "SELECT seq, at, direction, cluster, source, \
     resource_id, resource_version, event_type, actor, event, prev_hash, hash FROM audit";

/// The columns of [`AUDIT_SELECT`] as a backend reads them.
pub(super) struct StoredAuditRow {
    pub(super) seq: i64,
    pub(super) at: String,
    pub(super) direction: String,
    pub(super) cluster: Option<String>,
    pub(super) source: Option<String>,
    pub(super) resource_id: Option<String>,
    pub(super) resource_version: Option<i64>,
    pub(super) event_type: String,
    pub(super) actor: Option<String>,
    /// Sealed at rest (`audit.event`).
    pub(super) event: String,
    pub(super) prev_hash: String,
    pub(super) hash: String,
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        table: "audit",
        reason,
    }
}

impl StoredAuditRow {
    /// The record the row holds; a row that does not decode is [`StoreError::Corrupt`].
    pub(super) fn into_record(self, seal: Seal<'_>) -> Result<AuditRecord, StoreError> {
        let seq = self.seq;
        Ok(AuditRecord {
            seq: u64::try_from(seq).map_err(|_| corrupt(format!("negative seq {seq}")))?,
            at: parse_ts("audit", &self.at)?,
            direction: AuditDirection::parse(&self.direction)
                .ok_or_else(|| corrupt(format!("unknown direction {:?}", self.direction)))?,
            cluster: self.cluster,
            source: self.source,
            resource_id: self.resource_id,
            resource_version: self.resource_version,
            event_type: self.event_type,
            actor: self.actor,
            event: seal.open("audit.event", self.event).map_err(corrupt)?,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// `seq` as stored (an `i64` column).
pub(super) fn stored_seq(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Backend("audit sequence number overflow".into()))
}

/// A parameter of an audit query.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AuditParam {
    /// A sequence number or the limit.
    Int(i64),
    /// A text column's value (times as stored, [`ts`]).
    Text(String),
}

/// [`AuditQuery`] as SQL: [`AUDIT_SELECT`] with its filters, in chain order, and the
/// parameters the placeholders name (`placeholder(n)` writes the n-th, 1-based: `?n`
/// for SQLite, `$n` for PostgreSQL).
pub(super) fn select(
    query: &AuditQuery,
    placeholder: fn(usize) -> String,
) -> (String, Vec<AuditParam>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<AuditParam> = Vec::new();
    let mut add = |column_op: &str, value: AuditParam| {
        params.push(value);
        clauses.push(format!("{column_op} {}", placeholder(params.len())));
    };
    // Past i64::MAX nothing is stored anyway.
    let clamp = |n: u64| AuditParam::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let time = |t: DateTime<Utc>| AuditParam::Text(ts(t));
    if let Some(after) = query.after_seq {
        add("seq >", clamp(after));
    }
    if let Some(to) = query.to_seq {
        add("seq <=", clamp(to));
    }
    if let Some(c) = &query.cluster {
        add("cluster =", AuditParam::Text(c.clone()));
    }
    if let Some(r) = &query.resource_id {
        add("resource_id =", AuditParam::Text(r.clone()));
    }
    if let Some(t) = &query.event_type {
        add("event_type =", AuditParam::Text(t.clone()));
    }
    if let Some(a) = &query.actor {
        add("actor =", AuditParam::Text(a.clone()));
    }
    if let Some(d) = query.direction {
        add("direction =", AuditParam::Text(d.as_str().to_string()));
    }
    if let Some(t) = query.since {
        add("at >=", time(t));
    }
    if let Some(t) = query.until {
        add("at <", time(t));
    }
    let mut sql = AUDIT_SELECT.to_string();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    params.push(clamp(query.limit as u64));
    sql.push_str(&format!(
        " ORDER BY seq LIMIT {}",
        placeholder(params.len())
    ));
    (sql, params)
}

/// The query behind [`Store::audit`](super::Store::audit): one work's records (or all),
/// oldest first, at most `limit`.
pub(super) fn entries_query(resource_id: Option<&str>, limit: usize) -> AuditQuery {
    AuditQuery {
        resource_id: resource_id.map(str::to_string),
        limit,
        ..AuditQuery::default()
    }
}

/// A record as an [`AuditEntry`] (its event decoded).
pub(super) fn entry(record: AuditRecord) -> Result<AuditEntry, StoreError> {
    let event = workbus_schemas::mqtt::structured::decode(record.event.as_bytes())
        .map_err(|e| corrupt(format!("audit record {}: {e}", record.seq)))?;
    Ok(AuditEntry {
        at: record.at,
        direction: record.direction,
        cluster: record.cluster,
        resource_id: record.resource_id,
        event_type: record.event_type,
        event,
        actor: record.actor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_becomes_one_statement_with_numbered_parameters() {
        let query = AuditQuery {
            after_seq: Some(7),
            cluster: Some("c1".into()),
            direction: Some(AuditDirection::Api),
            limit: 10,
            ..AuditQuery::default()
        };
        let (sql, params) = select(&query, |n| format!("${n}"));
        assert!(
            sql.ends_with(
                "FROM audit WHERE seq > $1 AND cluster = $2 AND direction = $3 \
                 ORDER BY seq LIMIT $4"
            ),
            "{sql}"
        );
        assert_eq!(
            params,
            vec![
                AuditParam::Int(7),
                AuditParam::Text("c1".into()),
                AuditParam::Text("api".into()),
                AuditParam::Int(10)
            ]
        );
        let (sql, params) = select(
            &AuditQuery {
                after_seq: Some(u64::MAX),
                limit: 1,
                ..AuditQuery::default()
            },
            |n| format!("?{n}"),
        );
        assert!(
            sql.ends_with("WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
            "{sql}"
        );
        assert_eq!(params[0], AuditParam::Int(i64::MAX), "clamped, not wrapped");
    }
}
