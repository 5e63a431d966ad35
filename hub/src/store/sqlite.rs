//! The embedded [`Store`]: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! call that returned `Ok` survives a power cut, and foreign keys on (a cluster with
//! works cannot vanish; a work's status goes with the work).
//!
//! One write connection (SQLite serialises writers anyway; the group committer batches
//! onto it), one read connection (WAL lets reads run beside a commit, so listing works
//! or reading the outbox never waits for one), and the background checkpointer's.
//! Stored JSON that no longer decodes is reported as [`StoreError::Corrupt`] and left
//! untouched.
//!
//! With a [`Keyring`] (as [`super::open`] always gives), the columns that carry
//! manifest payloads — `works.spec`, `outbox.event`, `outbox.payload`, `audit.event` —
//! are sealed at rest ([`super::keyring`]); rows written before (plain JSON) still
//! read. Audit copies have Secret values replaced with keyed digests
//! ([`super::redact`]).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::checkpoint::{self, Checkpointer};
use super::column_codec::{
    OutboxRow, StoredProperties, event_json, outbox_event, outbox_message, parse_event,
};
pub(super) use super::column_codec::{Seal, parse_json, parse_ts, to_json, ts};
use super::keyring::Keyring;
use super::model::*;
use super::placement::{ClusterSetBinding, PlacementRecord};
use super::sqlite_audit as audit_rows;
use super::sqlite_placement as pl;
use super::sqlite_registration as reg;
use super::sqlite_replicaset as rsq;
use super::{Store, StoreError, StoreTx, migrations};
use crate::audit::chain::{AuditHead, AuditRecord};
use workbus_schemas::placement::PlacementDecision;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Reads go here, so listing works or reading the outbox never waits for a commit.
    reader: Mutex<Connection>,
    /// Keeps WAL checkpoints off the commit path; stopped when the store is dropped.
    _checkpointer: Checkpointer,
    /// Seals payload columns at rest; `None` stores them in clear (tests only).
    keys: Option<Arc<Keyring>>,
}

pub(super) const WORK_SELECT: &str = "SELECT w.uid, w.cluster, w.name, w.labels, w.annotations, w.spec, \
     w.generation, w.created, w.updated, w.deletion, s.status, s.generation, s.sequence_id, \
     s.status_hash, s.received FROM works w LEFT JOIN work_status s ON s.uid = w.uid";

/// A work row as text ([`WORK_SELECT`]'s columns), decoded outside the driver's row
/// closure so bad JSON becomes [`StoreError::Corrupt`] instead of a driver error. The
/// PostgreSQL backend reads the same columns into it.
pub(super) struct RawWork {
    /// The text columns (`generation` and the status generation left `None`).
    pub(super) cols: [Option<String>; 15],
    pub(super) generation: i64,
    pub(super) status_generation: Option<i64>,
}

impl RawWork {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawWork> {
        let mut cols: [Option<String>; 15] = Default::default();
        for (i, col) in cols.iter_mut().enumerate() {
            if i == 6 || i == 11 {
                continue;
            }
            *col = r.get(i)?;
        }
        Ok(RawWork {
            cols,
            generation: r.get(6)?,
            status_generation: r.get(11)?,
        })
    }

    /// The row as a record.
    pub(super) fn into_record(self, seal: Seal<'_>) -> Result<WorkRecord, StoreError> {
        let t = "works";
        let c = |i: usize| self.cols[i].clone().unwrap_or_default();
        let status = match (&self.cols[10], self.status_generation) {
            (Some(status), Some(generation)) => Some(StoredStatus {
                status: parse_json("work_status", "status", status)?,
                generation,
                sequence_id: c(12),
                status_hash: self.cols[13].clone(),
                received: parse_ts("work_status", &c(14))?,
            }),
            _ => None,
        };
        Ok(WorkRecord {
            uid: c(0),
            key: WorkKey {
                cluster: c(1),
                name: c(2),
            },
            labels: parse_json(t, "labels", &c(3))?,
            annotations: parse_json(t, "annotations", &c(4))?,
            spec: parse_json(
                t,
                "spec",
                &seal
                    .open("works.spec", c(5))
                    .map_err(|reason| StoreError::Corrupt { table: t, reason })?,
            )?,
            generation: self.generation,
            created: parse_ts(t, &c(7))?,
            updated: parse_ts(t, &c(8))?,
            deletion: self.cols[9]
                .as_deref()
                .map(|s| parse_ts(t, s))
                .transpose()?,
            status,
        })
    }
}

fn query_works(
    conn: &Connection,
    seal: Seal<'_>,
    where_sql: &str,
    values: Vec<SqlValue>,
) -> Result<Vec<WorkRecord>, StoreError> {
    let sql = format!("{WORK_SELECT} {where_sql}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let raws = stmt
        .query_map(rusqlite::params_from_iter(values), RawWork::from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(|raw| raw.into_record(seal)).collect()
}

fn work_by_key(
    conn: &Connection,
    seal: Seal<'_>,
    key: &WorkKey,
) -> Result<Option<WorkRecord>, StoreError> {
    Ok(query_works(
        conn,
        seal,
        "WHERE w.cluster = ?1 AND w.name = ?2",
        vec![key.cluster.clone().into(), key.name.clone().into()],
    )?
    .pop())
}

fn works_of_cluster(
    conn: &Connection,
    seal: Seal<'_>,
    cluster: &str,
) -> Result<Vec<WorkRecord>, StoreError> {
    query_works(
        conn,
        seal,
        "WHERE w.cluster = ?1 ORDER BY w.name",
        vec![cluster.to_string().into()],
    )
}

/// Runs one statement through the connection's statement cache: the hot paths run the
/// same few statements thousands of times per second, and parsing SQL each time was a
/// measurable share of a group commit.
fn exec<P: rusqlite::Params>(c: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

fn work_by_uid(
    conn: &Connection,
    seal: Seal<'_>,
    uid: &str,
) -> Result<Option<WorkRecord>, StoreError> {
    Ok(query_works(conn, seal, "WHERE w.uid = ?1", vec![uid.to_string().into()])?.pop())
}

/// Removes the parked rows that row `?1` supersedes: older, parked, same cluster, and
/// the same `resource_id` (for rows about no work: the same event type). A newer event
/// of the same work makes an older one moot — receivers keep only the latest generation
/// (reference §7.2) — so a parked row never outlives the first newer event of its work
/// that is published or parked. The scalar subqueries read row `?1` by primary key, so
/// the delete probes the partial index `outbox_parked` by cluster.
const SUPERSEDE_PARKED: &str = "DELETE FROM outbox WHERE parked IS NOT NULL AND id < ?1 \
     AND cluster = (SELECT cluster FROM outbox WHERE id = ?1) \
     AND resource_id IS (SELECT resource_id FROM outbox WHERE id = ?1) \
     AND (resource_id IS NOT NULL OR event_type = (SELECT event_type FROM outbox WHERE id = ?1))";

/// Reads outbox rows with id greater than `after`, oldest first; `parked` selects
/// parked rather than pending ones (each through its own index). A row whose message
/// was made by wire format `wire` comes with its message and without its event; any
/// other row (and every row when `wire` is `None`) with its event only.
fn outbox_rows(
    conn: &Connection,
    seal: Seal<'_>,
    parked: bool,
    after: i64,
    limit: usize,
    wire: Option<&str>,
) -> Result<Vec<OutboxRow>, StoreError> {
    const COLUMNS: &str = "SELECT id, cluster, resource_id, attempts, event_type, parked, \
         created, parked_at, CASE WHEN wire = ?3 THEN topic END, \
         CASE WHEN wire = ?3 THEN properties END, CASE WHEN wire = ?3 THEN payload END, \
         CASE WHEN wire = ?3 AND topic IS NOT NULL THEN NULL ELSE event END FROM outbox";
    let sql = if parked {
        format!("{COLUMNS} WHERE id > ?1 AND parked IS NOT NULL ORDER BY id LIMIT ?2")
    } else {
        format!("{COLUMNS} WHERE id > ?1 AND parked IS NULL ORDER BY id LIMIT ?2")
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(
            params![after, limit.min(i64::MAX as usize) as i64, wire],
            |r| {
                let topic: Option<String> = r.get(8)?;
                let payload = match topic {
                    Some(topic) => outbox_message(seal, topic, r.get(9)?, r.get(10)?),
                    None => outbox_event(seal, r.get(11)?),
                };
                Ok(OutboxRow {
                    entry: OutboxEntry {
                        id: r.get(0)?,
                        cluster: r.get(1)?,
                        resource_id: r.get(2)?,
                        attempts: r.get(3)?,
                        event_type: r.get(4)?,
                        payload,
                    },
                    parked: r.get(5)?,
                    created: r.get(6)?,
                    parked_at: r.get(7)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// [`StoreTx`] over the write connection inside its open transaction.
struct SqliteTx<'c> {
    conn: &'c Connection,
    seal: Seal<'c>,
}

impl StoreTx for SqliteTx<'_> {
    fn isolated(
        &mut self,
        body: &mut dyn FnMut(&mut dyn StoreTx) -> bool,
    ) -> Result<(), StoreError> {
        // Cached statements rather than rusqlite's `Savepoint`, which parses its SQL on
        // every use.
        exec(self.conn, "SAVEPOINT write_op", [])?;
        if !body(self) {
            exec(self.conn, "ROLLBACK TO write_op", [])?;
        }
        exec(self.conn, "RELEASE write_op", [])?;
        Ok(())
    }

    fn insert_cluster(&mut self, cluster: &Cluster) -> Result<bool, StoreError> {
        reg::insert_cluster(self.conn, cluster)
    }

    fn remove_cluster(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(exec(self.conn, "DELETE FROM clusters WHERE name = ?1", [name])? == 1)
    }

    fn cluster_exists(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM clusters WHERE name = ?1")?
            .query_row([name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn count_works(&mut self, cluster: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM works WHERE cluster = ?1")?
            .query_row([cluster], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    fn works_of(&mut self, cluster: &str) -> Result<Vec<WorkRecord>, StoreError> {
        works_of_cluster(self.conn, self.seal, cluster)
    }

    fn set_last_heard(&mut self, cluster: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        exec(
            self.conn,
            "UPDATE clusters SET last_heard = ?1 WHERE name = ?2",
            params![ts(at), cluster],
        )?;
        Ok(())
    }

    fn cluster(&mut self, name: &str) -> Result<Option<Cluster>, StoreError> {
        reg::cluster(self.conn, name)
    }

    fn update_cluster(&mut self, cluster: &Cluster) -> Result<bool, StoreError> {
        reg::update_cluster(self.conn, cluster)
    }

    fn clusters_due(&mut self, now: DateTime<Utc>) -> Result<Vec<Cluster>, StoreError> {
        reg::clusters_due(self.conn, now)
    }

    fn csrs_of(
        &mut self,
        cluster: &str,
    ) -> Result<Vec<workbus_schemas::registration::CertificateSigningRequest>, StoreError> {
        reg::csrs_of(self.conn, cluster)
    }

    fn upsert_csr(
        &mut self,
        cluster: &str,
        csr: &workbus_schemas::registration::CertificateSigningRequest,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        reg::upsert_csr(self.conn, cluster, csr, now)
    }

    fn insert_clusterset(
        &mut self,
        set: &super::registration::ClusterSet,
    ) -> Result<bool, StoreError> {
        reg::insert_clusterset(self.conn, set)
    }

    fn set_cluster_revoked(
        &mut self,
        name: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        reg::set_cluster_revoked(self.conn, name, at)
    }

    fn remove_clusterset(&mut self, name: &str) -> Result<bool, StoreError> {
        reg::remove_clusterset(self.conn, name)
    }

    fn insert_join_token(
        &mut self,
        token: &super::registration::JoinToken,
    ) -> Result<bool, StoreError> {
        reg::insert_join_token(self.conn, token)
    }

    fn revoke_join_token(&mut self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        reg::revoke_join_token(self.conn, name, at)
    }

    fn work_by_key(&mut self, key: &WorkKey) -> Result<Option<WorkRecord>, StoreError> {
        work_by_key(self.conn, self.seal, key)
    }

    fn work_by_uid(&mut self, uid: &str) -> Result<Option<WorkRecord>, StoreError> {
        work_by_uid(self.conn, self.seal, uid)
    }

    fn tombstone(&mut self, uid: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT generation FROM work_tombstones WHERE uid = ?1")?
            .query_row([uid], |r| r.get(0))
            .optional()?)
    }

    fn insert_work(&mut self, work: &WorkRecord) -> Result<(), StoreError> {
        exec(
            self.conn,
            "INSERT INTO works (uid, cluster, name, labels, annotations, spec, generation, \
             created, updated, deletion) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
            params![
                work.uid,
                work.key.cluster,
                work.key.name,
                to_json(&work.labels)?,
                to_json(&work.annotations)?,
                self.seal.seal("works.spec", to_json(&work.spec)?)?,
                work.generation,
                ts(work.created),
                ts(work.updated),
                work.deletion.map(ts)
            ],
        )?;
        exec(
            self.conn,
            "DELETE FROM work_tombstones WHERE uid = ?1",
            [&work.uid],
        )?;
        Ok(())
    }

    fn update_work(&mut self, work: &WorkRecord) -> Result<(), StoreError> {
        exec(
            self.conn,
            "UPDATE works SET labels = ?1, annotations = ?2, spec = ?3, generation = ?4, \
             updated = ?5 WHERE uid = ?6",
            params![
                to_json(&work.labels)?,
                to_json(&work.annotations)?,
                self.seal.seal("works.spec", to_json(&work.spec)?)?,
                work.generation,
                ts(work.updated),
                work.uid
            ],
        )?;
        Ok(())
    }

    fn update_deletion(&mut self, work: &WorkRecord) -> Result<(), StoreError> {
        exec(
            self.conn,
            "UPDATE works SET deletion = ?1, updated = ?2 WHERE uid = ?3",
            params![work.deletion.map(ts), ts(work.updated), work.uid],
        )?;
        Ok(())
    }

    fn remove_work(
        &mut self,
        work: &WorkRecord,
        confirmed: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        exec(self.conn, "DELETE FROM works WHERE uid = ?1", [&work.uid])?;
        exec(
            self.conn,
            "INSERT INTO work_tombstones (uid, cluster, name, generation, deleted) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(uid) DO UPDATE SET \
             cluster = excluded.cluster, name = excluded.name, \
             generation = excluded.generation, deleted = excluded.deleted",
            params![
                work.uid,
                work.key.cluster,
                work.key.name,
                work.generation,
                ts(confirmed)
            ],
        )?;
        Ok(())
    }

    fn store_status(&mut self, uid: &str, status: &StoredStatus) -> Result<(), StoreError> {
        exec(
            self.conn,
            "INSERT INTO work_status (uid, status, generation, sequence_id, status_hash, \
             received) VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT(uid) DO UPDATE SET \
             status = excluded.status, generation = excluded.generation, \
             sequence_id = excluded.sequence_id, status_hash = excluded.status_hash, \
             received = excluded.received",
            params![
                uid,
                to_json(&status.status)?,
                status.generation,
                status.sequence_id,
                status.status_hash,
                ts(status.received)
            ],
        )?;
        Ok(())
    }

    fn insert_outbox(&mut self, event: &NewOutbox, now: DateTime<Utc>) -> Result<(), StoreError> {
        let (topic, properties, payload, wire) = match &event.message {
            Some(queued) => {
                let m = &queued.message;
                let properties = StoredProperties {
                    content_type: m.content_type.clone(),
                    user_properties: m.user_properties.clone(),
                };
                (
                    Some(m.topic.as_str()),
                    Some(to_json(&properties)?),
                    Some(self.seal.seal_bytes("outbox.payload", &m.payload)?),
                    Some(queued.wire.as_str()),
                )
            }
            None => (None, None, None, None),
        };
        exec(
            self.conn,
            "INSERT INTO outbox (cluster, resource_id, event_type, event, created, topic, \
             properties, payload, wire, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                event.cluster,
                event.resource_id,
                event.event.ty(),
                self.seal.seal("outbox.event", event_json(&event.event)?)?,
                ts(now),
                topic,
                properties,
                payload,
                wire,
                event.actor
            ],
        )?;
        Ok(())
    }

    fn complete_outbox(
        &mut self,
        id: i64,
        sent_at: DateTime<Utc>,
    ) -> Result<Option<AuditEntry>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT cluster, resource_id, event_type, event, actor FROM outbox WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .optional()?;
        let Some((cluster, resource_id, event_type, event, actor)) = row else {
            return Ok(None);
        };
        let event = self
            .seal
            .open("outbox.event", event)
            .and_then(|event| parse_event(&event))
            .map_err(|reason| StoreError::Corrupt {
                table: "outbox",
                reason,
            })?;
        exec(self.conn, SUPERSEDE_PARKED, [id])?;
        exec(self.conn, "DELETE FROM outbox WHERE id = ?1", [id])?;
        Ok(Some(AuditEntry {
            at: sent_at,
            direction: AuditDirection::Sent,
            cluster: Some(cluster),
            resource_id,
            event_type,
            event,
            actor,
        }))
    }

    fn count_outbox_attempt(&mut self, id: i64) -> Result<(), StoreError> {
        exec(
            self.conn,
            "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    fn park_outbox(
        &mut self,
        id: i64,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let parked = exec(
            self.conn,
            "UPDATE outbox SET parked = ?2, parked_at = ?3 WHERE id = ?1 AND parked IS NULL",
            params![id, reason, ts(at)],
        )?;
        if parked == 0 {
            return Ok(None);
        }
        Ok(Some(exec(self.conn, SUPERSEDE_PARKED, [id])? as u64))
    }

    fn unpark_outbox(&mut self, id: i64) -> Result<(), StoreError> {
        exec(
            self.conn,
            "UPDATE outbox SET parked = NULL, parked_at = NULL WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    fn audit_head(&mut self) -> Result<Option<AuditHead>, StoreError> {
        audit_rows::head(self.conn)
    }

    fn append_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        audit_rows::insert(self.conn, self.seal, record)
    }

    fn remove_audit_before(
        &mut self,
        first_kept: u64,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        audit_rows::remove_before(self.conn, first_kept, at)
    }

    fn redact_for_audit(&mut self, event: &mut serde_json::Value) {
        self.seal.redact_for_audit(event);
    }

    fn insert_token(&mut self, token: &ApiToken) -> Result<bool, StoreError> {
        let scope = token.scope.as_ref().map(to_json).transpose()?;
        let inserted = exec(
            self.conn,
            "INSERT INTO api_tokens (name, hash, role, scope, created, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![
                token.name,
                token.hash,
                token.role.as_str(),
                scope,
                ts(token.created),
                token.created_by
            ],
        )?;
        Ok(inserted == 1)
    }

    fn remove_token(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(exec(self.conn, "DELETE FROM api_tokens WHERE name = ?1", [name])? == 1)
    }

    fn replica_set(
        &mut self,
        key: &super::replicaset::ReplicaSetKey,
    ) -> Result<Option<super::replicaset::ReplicaSetRecord>, StoreError> {
        rsq::get(self.conn, self.seal, key)
    }

    fn put_replica_set(
        &mut self,
        rs: &super::replicaset::ReplicaSetRecord,
    ) -> Result<(), StoreError> {
        rsq::put(self.conn, self.seal, rs)
    }

    fn remove_replica_set(
        &mut self,
        key: &super::replicaset::ReplicaSetKey,
    ) -> Result<bool, StoreError> {
        rsq::remove(self.conn, key)
    }

    fn cluster_rollouts(
        &mut self,
        key: &super::replicaset::ReplicaSetKey,
    ) -> Result<Vec<super::replicaset::ClusterRollout>, StoreError> {
        rsq::states(self.conn, key)
    }

    fn put_cluster_rollout(
        &mut self,
        key: &super::replicaset::ReplicaSetKey,
        state: &super::replicaset::ClusterRollout,
    ) -> Result<(), StoreError> {
        rsq::put_state(self.conn, key, state)
    }

    fn remove_cluster_rollout(
        &mut self,
        key: &super::replicaset::ReplicaSetKey,
        cluster: &str,
    ) -> Result<(), StoreError> {
        rsq::remove_state(self.conn, key, cluster)
    }

    fn count_tokens(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM api_tokens")?
            .query_row([], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    fn placement(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PlacementRecord>, StoreError> {
        pl::placement(self.conn, namespace, name)
    }

    fn upsert_placement(&mut self, record: &PlacementRecord) -> Result<(), StoreError> {
        pl::upsert_placement(self.conn, record)
    }

    fn remove_placement(&mut self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        pl::remove_placement(self.conn, namespace, name)
    }

    fn update_placement_status(
        &mut self,
        namespace: &str,
        name: &str,
        status: &workbus_schemas::placement::PlacementStatus,
    ) -> Result<bool, StoreError> {
        pl::update_placement_status(self.conn, namespace, name, status)
    }

    fn replace_decisions(
        &mut self,
        namespace: &str,
        placement: &str,
        decisions: &[PlacementDecision],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        pl::replace_decisions(self.conn, namespace, placement, decisions, now)
    }

    fn binding(
        &mut self,
        namespace: &str,
        cluster_set: &str,
    ) -> Result<Option<ClusterSetBinding>, StoreError> {
        Ok(pl::bindings(self.conn, Some(namespace), Some(cluster_set))?
            .into_iter()
            .next())
    }

    fn insert_binding(&mut self, binding: &ClusterSetBinding) -> Result<bool, StoreError> {
        pl::insert_binding(self.conn, binding)
    }

    fn remove_binding(&mut self, namespace: &str, cluster_set: &str) -> Result<bool, StoreError> {
        pl::remove_binding(self.conn, namespace, cluster_set)
    }
}

const TOKEN_SELECT: &str = "SELECT name, hash, role, scope, created, created_by FROM api_tokens";

type RawToken = (String, String, String, Option<String>, String, String);

fn row_to_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawToken> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn token_from_raw(raw: RawToken) -> Result<ApiToken, StoreError> {
    let t = "api_tokens";
    let (name, hash, role, scope, created, created_by) = raw;
    Ok(ApiToken {
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
            table: t,
            reason: format!("unknown role {role:?}"),
        })?,
        scope: scope
            .as_deref()
            .map(|s| parse_json(t, "scope", s))
            .transpose()?,
        created: parse_ts(t, &created)?,
        name,
        hash,
        created_by,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it; payload
    /// columns are stored in clear (see [`open_sealed`](Self::open_sealed)).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_sealed(path, None)
    }

    /// Opens (creating if needed) the database at `path` and migrates it; with `keys`
    /// the payload columns are sealed at rest.
    pub fn open_sealed(path: &Path, keys: Option<Arc<Keyring>>) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL: readers do not block the writer; FULL: fsync the WAL on every commit, so
        // nothing the API acknowledged is lost on power failure.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "cannot enable WAL (journal mode {mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        // Savepoints (one per group-committed op) journal the pages they touch; in memory
        // that costs nothing durable (the WAL is what survives a crash), on a temp file
        // it was ~6% of a commit. A 64 MiB page cache keeps the hot tables and indexes
        // out of the read path.
        conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;")?;
        // Room for every statement of the hot paths (rusqlite's default is 16).
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
        )?;
        migrations::migrate(&mut conn)?;
        let checkpointer = Checkpointer::start(path)?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -16384;")?;
        reader.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            _checkpointer: checkpointer,
            keys,
        })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Backend("store connection lock poisoned".into()))
    }

    /// The read connection: reads see the last committed state and never wait for the
    /// writer's batch (WAL lets one writer and readers run at once).
    fn reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.reader
            .lock()
            .map_err(|_| StoreError::Backend("store read connection lock poisoned".into()))
    }

    fn seal(&self) -> Seal<'_> {
        Seal(self.keys.as_deref())
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        migrations::current_version(&*self.conn()?)
    }
}

impl Store for SqliteStore {
    fn transaction(
        &self,
        body: &mut dyn FnMut(&mut dyn StoreTx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        // IMMEDIATE takes the write lock up front, so a read-then-write never fails half
        // way with SQLITE_BUSY.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        body(&mut SqliteTx {
            conn: &tx,
            seal: self.seal(),
        })?;
        tx.commit()?;
        Ok(())
    }

    fn get_cluster(&self, name: &str) -> Result<Option<Cluster>, StoreError> {
        reg::cluster(&*self.reader()?, name)
    }

    fn list_clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!("{} ORDER BY name", reg::CLUSTER_SELECT))?;
        let raws = stmt
            .query_map([], reg::row_to_cluster)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(reg::cluster_from_raw).collect()
    }

    fn get_work(&self, key: &WorkKey) -> Result<Option<WorkRecord>, StoreError> {
        work_by_key(&*self.reader()?, self.seal(), key)
    }

    fn get_work_by_uid(&self, uid: &str) -> Result<Option<WorkRecord>, StoreError> {
        work_by_uid(&*self.reader()?, self.seal(), uid)
    }

    fn list_works(&self, filter: &WorkFilter) -> Result<Vec<WorkRecord>, StoreError> {
        let mut clauses = Vec::new();
        let mut values: Vec<SqlValue> = Vec::new();
        if let Some(cluster) = &filter.cluster {
            values.push(cluster.clone().into());
            clauses.push(format!("w.cluster = ?{}", values.len()));
        }
        for (k, v) in &filter.labels {
            // The key goes into a JSON path as a quoted member name; callers reject keys
            // containing `"` (not valid label keys anyway).
            values.push(format!("$.\"{k}\"").into());
            values.push(v.clone().into());
            clauses.push(format!(
                "json_extract(w.labels, ?{}) = ?{}",
                values.len() - 1,
                values.len()
            ));
        }
        if let Some(after) = &filter.after {
            values.push(after.cluster.clone().into());
            values.push(after.name.clone().into());
            clauses.push(format!(
                "(w.cluster, w.name) > (?{}, ?{})",
                values.len() - 1,
                values.len()
            ));
        }
        let mut sql = String::new();
        if !clauses.is_empty() {
            sql.push_str("WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        values.push((filter.limit.min(i64::MAX as usize) as i64).into());
        sql.push_str(&format!(
            " ORDER BY w.cluster, w.name LIMIT ?{}",
            values.len()
        ));
        query_works(&*self.reader()?, self.seal(), &sql, values)
    }

    fn works_of_cluster(&self, cluster: &str) -> Result<Vec<WorkRecord>, StoreError> {
        works_of_cluster(&*self.reader()?, self.seal(), cluster)
    }

    fn pending_deletions(&self) -> Result<Vec<PendingDeletion>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT uid, deletion FROM works WHERE deletion IS NOT NULL ORDER BY deletion",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(uid, deletion)| {
                Ok(PendingDeletion {
                    uid,
                    requested: parse_ts("works", &deletion)?,
                })
            })
            .collect()
    }

    fn outbox_batch(
        &self,
        after: i64,
        limit: usize,
        wire: &str,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(outbox_rows(
            &*self.reader()?,
            self.seal(),
            false,
            after,
            limit,
            Some(wire),
        )?
        .into_iter()
        .map(|row| row.entry)
        .collect())
    }

    fn outbox_depth(&self) -> Result<u64, StoreError> {
        // Two index-only counts: filtering the table on `parked` would read every row,
        // overflow pages of large events included.
        let n: i64 = self.reader()?.query_row(
            "SELECT (SELECT COUNT(*) FROM outbox) \
             - (SELECT COUNT(*) FROM outbox WHERE parked IS NOT NULL)",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn parked_outbox(&self, after: i64, limit: usize) -> Result<Vec<ParkedOutbox>, StoreError> {
        outbox_rows(&*self.reader()?, self.seal(), true, after, limit, None)?
            .into_iter()
            .map(OutboxRow::into_parked)
            .collect()
    }

    fn outbox_parked_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.reader()?.query_row(
            "SELECT COUNT(*) FROM outbox WHERE parked IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn audit(
        &self,
        resource_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        audit_rows::entries(&*self.reader()?, self.seal(), resource_id, limit)
    }

    fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        audit_rows::records(&*self.reader()?, self.seal(), query)
    }

    fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        audit_rows::head(&*self.reader()?)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let conn = self.reader()?;
        let raw = conn
            .prepare_cached(&format!("{TOKEN_SELECT} WHERE hash = ?1"))?
            .query_row([hash], row_to_token)
            .optional()?;
        raw.map(token_from_raw).transpose()
    }

    fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!("{TOKEN_SELECT} ORDER BY name"))?;
        let raws = stmt
            .query_map([], row_to_token)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(token_from_raw).collect()
    }

    fn csrs_of_cluster(
        &self,
        cluster: &str,
    ) -> Result<Vec<workbus_schemas::registration::CertificateSigningRequest>, StoreError> {
        reg::csrs_of(&*self.reader()?, cluster)
    }

    fn is_cluster_revoked(&self, name: &str) -> Result<bool, StoreError> {
        reg::is_cluster_revoked(&*self.reader()?, name)
    }

    fn list_clustersets(&self) -> Result<Vec<super::registration::ClusterSet>, StoreError> {
        reg::list_clustersets(&*self.reader()?)
    }

    fn join_token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<super::registration::JoinToken>, StoreError> {
        reg::join_token_by_hash(&*self.reader()?, hash)
    }

    fn get_replica_set(
        &self,
        key: &super::replicaset::ReplicaSetKey,
    ) -> Result<Option<super::replicaset::ReplicaSetRecord>, StoreError> {
        rsq::get(&*self.reader()?, self.seal(), key)
    }

    fn list_replica_sets(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<super::replicaset::ReplicaSetRecord>, StoreError> {
        rsq::list(&*self.reader()?, self.seal(), namespace)
    }

    fn replica_set_clusters(
        &self,
        key: &super::replicaset::ReplicaSetKey,
    ) -> Result<Vec<super::replicaset::ClusterRollout>, StoreError> {
        rsq::states(&*self.reader()?, key)
    }

    fn list_join_tokens(&self) -> Result<Vec<super::registration::JoinToken>, StoreError> {
        reg::list_join_tokens(&*self.reader()?)
    }

    fn get_placement(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PlacementRecord>, StoreError> {
        pl::placement(&*self.reader()?, namespace, name)
    }

    fn list_placements(&self, namespace: Option<&str>) -> Result<Vec<PlacementRecord>, StoreError> {
        pl::list_placements(&*self.reader()?, namespace)
    }

    fn placement_decisions(
        &self,
        namespace: &str,
        placement: &str,
    ) -> Result<Vec<PlacementDecision>, StoreError> {
        pl::decisions(&*self.reader()?, Some(namespace), Some(placement))
    }

    fn list_decisions(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<PlacementDecision>, StoreError> {
        pl::decisions(&*self.reader()?, namespace, None)
    }

    fn list_bindings(&self, namespace: Option<&str>) -> Result<Vec<ClusterSetBinding>, StoreError> {
        pl::bindings(&*self.reader()?, namespace, None)
    }
}
