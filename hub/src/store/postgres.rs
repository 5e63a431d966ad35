//! The PostgreSQL [`Store`]: the hub's state in a server database that several hubs
//! can share (issue 16). Same tables, column encodings and sealing as the SQLite
//! backend ([`super::column_codec`]); the conformance suite holds both to the same
//! behaviour.
//!
//! - **Driver**: the synchronous `postgres` crate (rust-postgres). The [`Store`] trait
//!   is synchronous and async code already calls it on the blocking pool
//!   ([`super::StoreHandle`]), exactly as for SQLite; an async driver would need a
//!   runtime inside every call. Connections: one writer (the group committer's single
//!   thread uses it) and a bounded pool of [`READERS`] for reads, our own
//!   ([`super::postgres_conn::ReaderPool`]), each with its prepared statements.
//! - **Serialised writers**: every write transaction first takes the transaction-scoped
//!   advisory lock [`WRITER_LOCK`] (`pg_advisory_xact_lock`), so write transactions of
//!   every hub on the database run one after another, as the trait promises. That is
//!   what keeps the outbox ids in commit order (the publisher reads `id > last`: a
//!   sequence value taken by a transaction that commits later would otherwise be
//!   skipped) and lets the rules read-then-write without retry loops. SERIALIZABLE +
//!   retry was the alternative: more concurrency, but a `Write` runs exactly once.
//! - **Durability**: a transaction returns `Ok` only after `COMMIT` returned, with
//!   `synchronous_commit = on` set on every connection.
//! - **Outages**: a server that cannot be reached, or a connection lost, is
//!   [`StoreError::Unavailable`] (the REST API answers 503); the next call connects
//!   anew, so the hub recovers by itself once the server is back.

use std::sync::{Arc, Mutex, MutexGuard};

use postgres::Row;
use workbus_schemas::placement::PlacementDecision;

use super::column_codec::{OutboxRow, Seal, outbox_event, outbox_message, parse_json, parse_ts};
use super::keyring::Keyring;
use super::model::*;
use super::placement::{ClusterSetBinding, PlacementRecord};
use super::postgres_audit as audit_rows;
use super::postgres_conn::{Connector, PgConn, ReaderPool, col};
use super::postgres_placement as pl;
use super::postgres_registration as reg;
use super::postgres_replicaset as rsq;
use super::postgres_tx::PgTx;
use super::sqlite::{RawWork, WORK_SELECT};
use super::{Store, StoreError, StoreTx, postgres_migrations};
use crate::audit::chain::{AuditHead, AuditRecord};

/// The advisory lock every write transaction holds: "workbus" + 0.
pub const WRITER_LOCK: i64 = 0x776f_726b_6275_7300;

/// How long a session may sit inside a transaction without sending anything before
/// the server ends it (`idle_in_transaction_session_timeout`, set on every connection).
/// A hub that stops mid-transaction — SIGSTOP, a frozen VM, a debugger — would
/// otherwise keep [`WRITER_LOCK`] and stall every other hub's writes for as long as it
/// is stopped (its socket stays open, so keepalives never fire). The hub's own
/// transactions send their statements back to back; the transaction cut off is never
/// answered as committed.
pub const STALLED_TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Read connections per hub. Reads are short; four keep the REST API, the outbox
/// publisher and the controllers from queueing behind one another.
pub const READERS: usize = 4;

/// The PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    connector: Connector,
    /// The write connection; `None` after it was lost (reconnected on the next write).
    writer: Mutex<Option<PgConn>>,
    readers: ReaderPool,
    /// Seals payload columns at rest; `None` stores them in clear (tests only).
    keys: Option<Arc<Keyring>>,
}

fn work_from_row(r: &Row, seal: Seal<'_>) -> Result<WorkRecord, StoreError> {
    let mut cols: [Option<String>; 15] = Default::default();
    for (i, c) in cols.iter_mut().enumerate() {
        if i == 6 || i == 11 {
            continue;
        }
        *c = col(r, i)?;
    }
    RawWork {
        cols,
        generation: col(r, 6)?,
        status_generation: col(r, 11)?,
    }
    .into_record(seal)
}

fn query_works(
    conn: &mut PgConn,
    seal: Seal<'_>,
    where_sql: &str,
    params: super::postgres_conn::Params<'_>,
) -> Result<Vec<WorkRecord>, StoreError> {
    conn.query(&format!("{WORK_SELECT} {where_sql}"), params)?
        .iter()
        .map(|r| work_from_row(r, seal))
        .collect()
}

/// The work under `key`.
pub(super) fn work_by_key(
    conn: &mut PgConn,
    seal: Seal<'_>,
    key: &WorkKey,
) -> Result<Option<WorkRecord>, StoreError> {
    Ok(query_works(
        conn,
        seal,
        "WHERE w.cluster = $1 AND w.name = $2",
        &[&key.cluster, &key.name],
    )?
    .pop())
}

/// The work with `uid`.
pub(super) fn work_by_uid(
    conn: &mut PgConn,
    seal: Seal<'_>,
    uid: &str,
) -> Result<Option<WorkRecord>, StoreError> {
    Ok(query_works(conn, seal, "WHERE w.uid = $1", &[&uid])?.pop())
}

/// Every work of `cluster` (deleting ones included), by name.
pub(super) fn works_of_cluster(
    conn: &mut PgConn,
    seal: Seal<'_>,
    cluster: &str,
) -> Result<Vec<WorkRecord>, StoreError> {
    query_works(
        conn,
        seal,
        "WHERE w.cluster = $1 ORDER BY w.name",
        &[&cluster],
    )
}

/// Outbox rows with id greater than `after`, oldest first, pending or parked; the
/// stored message for rows of wire format `wire`, the event for the others.
fn outbox_rows(
    conn: &mut PgConn,
    seal: Seal<'_>,
    parked: bool,
    after: i64,
    limit: usize,
    wire: Option<&str>,
) -> Result<Vec<OutboxRow>, StoreError> {
    const COLUMNS: &str = "SELECT id, cluster, resource_id, attempts, event_type, parked, \
         created, parked_at, CASE WHEN wire = $3 THEN topic END, \
         CASE WHEN wire = $3 THEN properties END, CASE WHEN wire = $3 THEN payload END, \
         CASE WHEN wire = $3 AND topic IS NOT NULL THEN NULL ELSE event END FROM outbox";
    let sql = if parked {
        format!("{COLUMNS} WHERE id > $1 AND parked IS NOT NULL ORDER BY id LIMIT $2")
    } else {
        format!("{COLUMNS} WHERE id > $1 AND parked IS NULL ORDER BY id LIMIT $2")
    };
    let limit = limit.min(i64::MAX as usize) as i64;
    conn.query(&sql, &[&after, &limit, &wire])?
        .iter()
        .map(|r| {
            let topic: Option<String> = col(r, 8)?;
            let payload = match topic {
                Some(topic) => outbox_message(seal, topic, col(r, 9)?, col(r, 10)?),
                None => outbox_event(seal, col(r, 11)?),
            };
            Ok(OutboxRow {
                entry: OutboxEntry {
                    id: col(r, 0)?,
                    cluster: col(r, 1)?,
                    resource_id: col(r, 2)?,
                    attempts: col(r, 3)?,
                    event_type: col(r, 4)?,
                    payload,
                },
                parked: col(r, 5)?,
                created: col(r, 6)?,
                parked_at: col(r, 7)?,
            })
        })
        .collect()
}

const TOKEN_SELECT: &str = "SELECT name, hash, role, scope, created, created_by FROM api_tokens";

fn token_from_row(r: &Row) -> Result<ApiToken, StoreError> {
    let t = "api_tokens";
    let role: String = col(r, 2)?;
    let scope: Option<String> = col(r, 3)?;
    Ok(ApiToken {
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
            table: t,
            reason: format!("unknown role {role:?}"),
        })?,
        scope: scope
            .as_deref()
            .map(|s| parse_json(t, "scope", s))
            .transpose()?,
        created: parse_ts(t, col(r, 4)?)?,
        name: col(r, 0)?,
        hash: col(r, 1)?,
        created_by: col(r, 5)?,
    })
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), migrates it,
    /// and seals payload columns with `keys` (in clear with `None`: tests only).
    /// [`StoreError::Unavailable`] names host and port when the server cannot be reached.
    pub fn open(url: &str, keys: Option<Arc<Keyring>>) -> Result<PostgresStore, StoreError> {
        let connector = Connector::new(url)?;
        let mut writer = connector.connect()?;
        postgres_migrations::migrate(&mut writer)?;
        Ok(PostgresStore {
            connector,
            writer: Mutex::new(Some(writer)),
            readers: ReaderPool::new(READERS),
            keys,
        })
    }

    /// `host:port` of the database server.
    pub fn server(&self) -> &str {
        self.connector.server()
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(postgres_migrations::current_version)
    }

    fn seal(&self) -> Seal<'_> {
        Seal(self.keys.as_deref())
    }

    fn read<T>(
        &self,
        f: impl FnMut(&mut PgConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.readers.with(&self.connector, f)
    }

    fn writer(&self) -> Result<MutexGuard<'_, Option<PgConn>>, StoreError> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Backend("store connection lock poisoned".into()))
    }
}

/// Opens the write transaction with the writers' lock held: one round trip, the lock
/// the transaction's first act, released by COMMIT or ROLLBACK.
fn begin(conn: &mut PgConn) -> Result<(), StoreError> {
    conn.batch(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"
    ))
}

/// Runs `body` inside the transaction [`begin`] opened, then `COMMIT`.
fn run_transaction(
    conn: &mut PgConn,
    seal: Seal<'_>,
    body: &mut dyn FnMut(&mut dyn StoreTx) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    match body(&mut PgTx { conn, seal }) {
        Ok(()) => conn.batch("COMMIT"),
        Err(e) => {
            // A lost connection has nothing to roll back (the server did).
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

impl Store for PostgresStore {
    fn transaction(
        &self,
        body: &mut dyn FnMut(&mut dyn StoreTx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut guard = self.writer()?;
        let reused = guard.as_ref().is_some_and(|c| !c.is_closed());
        if !reused {
            *guard = None;
            *guard = Some(self.connector.connect()?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(StoreError::Backend("no write connection".into()));
        };
        match begin(conn) {
            Ok(()) => {}
            // An idle connection that the server or the network closed shows only when
            // used (after an outage, the first write would fail although the server is
            // back). Nothing ran yet, so the transaction may begin on a fresh one.
            Err(StoreError::Unavailable { .. }) if reused => {
                *guard = None;
                let fresh = guard.insert(self.connector.connect()?);
                if let Err(e) = begin(fresh) {
                    *guard = None;
                    return Err(e);
                }
            }
            Err(e) => {
                *guard = None;
                return Err(e);
            }
        }
        let Some(conn) = guard.as_mut() else {
            return Err(StoreError::Backend("no write connection".into()));
        };
        let result = run_transaction(conn, self.seal(), body);
        if conn.is_closed() || matches!(result, Err(StoreError::Unavailable { .. })) {
            // Connected anew by the next write; a COMMIT whose answer was lost may or
            // may not have happened, and the caller was told it failed.
            *guard = None;
        }
        result
    }

    fn get_cluster(&self, name: &str) -> Result<Option<Cluster>, StoreError> {
        self.read(|c| reg::cluster(c, name))
    }

    fn list_clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        self.read(reg::list_clusters)
    }

    fn get_work(&self, key: &WorkKey) -> Result<Option<WorkRecord>, StoreError> {
        self.read(|c| work_by_key(c, self.seal(), key))
    }

    fn get_work_by_uid(&self, uid: &str) -> Result<Option<WorkRecord>, StoreError> {
        self.read(|c| work_by_uid(c, self.seal(), uid))
    }

    fn list_works(&self, filter: &WorkFilter) -> Result<Vec<WorkRecord>, StoreError> {
        // Parameters as owned strings, referenced below: the filter decides how many.
        let mut values: Vec<String> = Vec::new();
        let mut clauses = Vec::new();
        if let Some(cluster) = &filter.cluster {
            values.push(cluster.clone());
            clauses.push(format!("w.cluster = ${}", values.len()));
        }
        for (k, v) in &filter.labels {
            values.push(k.clone());
            values.push(v.clone());
            clauses.push(format!(
                "(w.labels::jsonb ->> ${}) = ${}",
                values.len() - 1,
                values.len()
            ));
        }
        if let Some(after) = &filter.after {
            values.push(after.cluster.clone());
            values.push(after.name.clone());
            clauses.push(format!(
                "(w.cluster, w.name) > (${}, ${})",
                values.len() - 1,
                values.len()
            ));
        }
        let mut sql = String::new();
        if !clauses.is_empty() {
            sql.push_str("WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        let limit = filter.limit.min(i64::MAX as usize) as i64;
        sql.push_str(&format!(
            " ORDER BY w.cluster, w.name LIMIT ${}",
            values.len() + 1
        ));
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            values.iter().map(|v| v as _).collect();
        params.push(&limit);
        self.read(|c| query_works(c, self.seal(), &sql, &params))
    }

    fn works_of_cluster(&self, cluster: &str) -> Result<Vec<WorkRecord>, StoreError> {
        self.read(|c| works_of_cluster(c, self.seal(), cluster))
    }

    fn pending_deletions(&self) -> Result<Vec<PendingDeletion>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT uid, deletion FROM works WHERE deletion IS NOT NULL ORDER BY deletion",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(PendingDeletion {
                    uid: col(r, 0)?,
                    requested: parse_ts("works", col(r, 1)?)?,
                })
            })
            .collect()
        })
    }

    fn outbox_batch(
        &self,
        after: i64,
        limit: usize,
        wire: &str,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self
            .read(|c| outbox_rows(c, self.seal(), false, after, limit, Some(wire)))?
            .into_iter()
            .map(|row| row.entry)
            .collect())
    }

    fn outbox_depth(&self) -> Result<u64, StoreError> {
        let n: i64 = self.read(|c| {
            col(
                &c.query_one("SELECT COUNT(*) FROM outbox WHERE parked IS NULL", &[])?,
                0,
            )
        })?;
        Ok(n.max(0) as u64)
    }

    fn parked_outbox(&self, after: i64, limit: usize) -> Result<Vec<ParkedOutbox>, StoreError> {
        self.read(|c| outbox_rows(c, self.seal(), true, after, limit, None))?
            .into_iter()
            .map(OutboxRow::into_parked)
            .collect()
    }

    fn outbox_parked_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.read(|c| {
            col(
                &c.query_one("SELECT COUNT(*) FROM outbox WHERE parked IS NOT NULL", &[])?,
                0,
            )
        })?;
        Ok(n.max(0) as u64)
    }

    fn audit(
        &self,
        resource_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|c| audit_rows::entries(c, self.seal(), resource_id, limit))
    }

    fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|c| audit_rows::records(c, self.seal(), query))
    }

    fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        self.read(audit_rows::head)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        self.read(|c| {
            c.query_opt(&format!("{TOKEN_SELECT} WHERE hash = $1"), &[&hash])?
                .as_ref()
                .map(token_from_row)
                .transpose()
        })
    }

    fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.read(|c| {
            c.query(&format!("{TOKEN_SELECT} ORDER BY name"), &[])?
                .iter()
                .map(token_from_row)
                .collect()
        })
    }

    fn csrs_of_cluster(
        &self,
        cluster: &str,
    ) -> Result<Vec<workbus_schemas::registration::CertificateSigningRequest>, StoreError> {
        self.read(|c| reg::csrs_of(c, cluster))
    }

    fn is_cluster_revoked(&self, name: &str) -> Result<bool, StoreError> {
        self.read(|c| reg::is_cluster_revoked(c, name))
    }

    fn list_clustersets(&self) -> Result<Vec<super::registration::ClusterSet>, StoreError> {
        self.read(reg::list_clustersets)
    }

    fn join_token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<super::registration::JoinToken>, StoreError> {
        self.read(|c| reg::join_token_by_hash(c, hash))
    }

    fn list_join_tokens(&self) -> Result<Vec<super::registration::JoinToken>, StoreError> {
        self.read(reg::list_join_tokens)
    }

    fn get_placement(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PlacementRecord>, StoreError> {
        self.read(|c| pl::placement(c, namespace, name))
    }

    fn list_placements(&self, namespace: Option<&str>) -> Result<Vec<PlacementRecord>, StoreError> {
        self.read(|c| pl::list_placements(c, namespace))
    }

    fn placement_decisions(
        &self,
        namespace: &str,
        placement: &str,
    ) -> Result<Vec<PlacementDecision>, StoreError> {
        self.read(|c| pl::decisions(c, Some(namespace), Some(placement)))
    }

    fn list_decisions(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<PlacementDecision>, StoreError> {
        self.read(|c| pl::decisions(c, namespace, None))
    }

    fn list_bindings(&self, namespace: Option<&str>) -> Result<Vec<ClusterSetBinding>, StoreError> {
        self.read(|c| pl::bindings(c, namespace, None))
    }

    fn get_replica_set(
        &self,
        key: &super::replicaset::ReplicaSetKey,
    ) -> Result<Option<super::replicaset::ReplicaSetRecord>, StoreError> {
        self.read(|c| rsq::get(c, self.seal(), key))
    }

    fn list_replica_sets(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<super::replicaset::ReplicaSetRecord>, StoreError> {
        self.read(|c| rsq::list(c, self.seal(), namespace))
    }

    fn replica_set_clusters(
        &self,
        key: &super::replicaset::ReplicaSetKey,
    ) -> Result<Vec<super::replicaset::ClusterRollout>, StoreError> {
        self.read(|c| rsq::states(c, key))
    }
}
