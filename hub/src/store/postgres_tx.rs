//! [`StoreTx`] on PostgreSQL: the row operations inside the write transaction that
//! [`PostgresStore::transaction`](super::postgres::PostgresStore) opened (with the
//! writers' advisory lock held). Same statements and column encodings as the SQLite
//! backend's, in PostgreSQL's dialect; savepoints isolate group-committed writes.

use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use workbus_schemas::placement::{PlacementDecision, PlacementStatus};
use workbus_schemas::registration::CertificateSigningRequest;

use super::column_codec::{Seal, StoredProperties, event_json, parse_event, to_json, ts};
use super::model::*;
use super::placement::{ClusterSetBinding, PlacementRecord};
use super::postgres::{work_by_key, work_by_uid, works_of_cluster};
use super::postgres_audit as audit_rows;
use super::postgres_conn::{PgConn, col};
use super::postgres_placement as pl;
use super::postgres_registration as reg;
use super::postgres_replicaset as rsq;
use super::registration::{ClusterSet, JoinToken};
use super::replicaset::{ClusterRollout, ReplicaSetKey, ReplicaSetRecord};
use super::{StoreError, StoreTx};
use crate::audit::chain::{AuditHead, AuditRecord};

/// Removes the parked rows that row `$1` supersedes: older, parked, same cluster, and
/// the same `resource_id` (for rows about no work: the same event type) — the rule of
/// the SQLite backend's `SUPERSEDE_PARKED`, which explains it.
const SUPERSEDE_PARKED: &str = "DELETE FROM outbox o USING outbox n \
     WHERE n.id = $1 AND o.parked IS NOT NULL AND o.id < $1 AND o.cluster = n.cluster \
     AND o.resource_id IS NOT DISTINCT FROM n.resource_id \
     AND (o.resource_id IS NOT NULL OR o.event_type = n.event_type)";

/// [`StoreTx`] over the writer connection inside its open transaction.
pub(super) struct PgTx<'c> {
    pub(super) conn: &'c mut PgConn,
    pub(super) seal: Seal<'c>,
}

impl StoreTx for PgTx<'_> {
    fn isolated(
        &mut self,
        body: &mut dyn FnMut(&mut dyn StoreTx) -> bool,
    ) -> Result<(), StoreError> {
        self.conn.batch("SAVEPOINT write_op")?;
        if body(self) {
            self.conn.batch("RELEASE write_op")?;
        } else {
            // A failed statement leaves the transaction aborted until this rollback.
            self.conn.batch("ROLLBACK TO write_op; RELEASE write_op")?;
        }
        Ok(())
    }

    fn insert_cluster(&mut self, cluster: &Cluster) -> Result<bool, StoreError> {
        reg::insert_cluster(self.conn, cluster)
    }

    fn remove_cluster(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM clusters WHERE name = $1", &[&name])?
            == 1)
    }

    fn cluster_exists(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_opt("SELECT 1 FROM clusters WHERE name = $1", &[&name])?
            .is_some())
    }

    fn count_works(&mut self, cluster: &str) -> Result<u64, StoreError> {
        let row = self
            .conn
            .query_one("SELECT COUNT(*) FROM works WHERE cluster = $1", &[&cluster])?;
        Ok(col::<i64>(&row, 0)?.max(0) as u64)
    }

    fn works_of(&mut self, cluster: &str) -> Result<Vec<WorkRecord>, StoreError> {
        works_of_cluster(self.conn, self.seal, cluster)
    }

    fn set_last_heard(&mut self, cluster: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE clusters SET last_heard = $1 WHERE name = $2",
            &[&ts(at), &cluster],
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

    fn csrs_of(&mut self, cluster: &str) -> Result<Vec<CertificateSigningRequest>, StoreError> {
        reg::csrs_of(self.conn, cluster)
    }

    fn upsert_csr(
        &mut self,
        cluster: &str,
        csr: &CertificateSigningRequest,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        reg::upsert_csr(self.conn, cluster, csr, now)
    }

    fn set_cluster_revoked(
        &mut self,
        name: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        reg::set_cluster_revoked(self.conn, name, at)
    }

    fn insert_clusterset(&mut self, set: &ClusterSet) -> Result<bool, StoreError> {
        reg::insert_clusterset(self.conn, set)
    }

    fn remove_clusterset(&mut self, name: &str) -> Result<bool, StoreError> {
        reg::remove_clusterset(self.conn, name)
    }

    fn insert_join_token(&mut self, token: &JoinToken) -> Result<bool, StoreError> {
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
        self.conn
            .query_opt(
                "SELECT generation FROM work_tombstones WHERE uid = $1",
                &[&uid],
            )?
            .map(|r| col(&r, 0))
            .transpose()
    }

    fn insert_work(&mut self, work: &WorkRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO works (uid, cluster, name, labels, annotations, spec, generation, \
             created, updated, deletion) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            &[
                &work.uid,
                &work.key.cluster,
                &work.key.name,
                &to_json(&work.labels)?,
                &to_json(&work.annotations)?,
                &self.seal.seal("works.spec", to_json(&work.spec)?)?,
                &work.generation,
                &ts(work.created),
                &ts(work.updated),
                &work.deletion.map(ts),
            ],
        )?;
        self.conn
            .execute("DELETE FROM work_tombstones WHERE uid = $1", &[&work.uid])?;
        Ok(())
    }

    fn update_work(&mut self, work: &WorkRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE works SET labels = $1, annotations = $2, spec = $3, generation = $4, \
             updated = $5 WHERE uid = $6",
            &[
                &to_json(&work.labels)?,
                &to_json(&work.annotations)?,
                &self.seal.seal("works.spec", to_json(&work.spec)?)?,
                &work.generation,
                &ts(work.updated),
                &work.uid,
            ],
        )?;
        Ok(())
    }

    fn update_deletion(&mut self, work: &WorkRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE works SET deletion = $1, updated = $2 WHERE uid = $3",
            &[&work.deletion.map(ts), &ts(work.updated), &work.uid],
        )?;
        Ok(())
    }

    fn remove_work(
        &mut self,
        work: &WorkRecord,
        confirmed: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM works WHERE uid = $1", &[&work.uid])?;
        self.conn.execute(
            "INSERT INTO work_tombstones (uid, cluster, name, generation, deleted) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uid) DO UPDATE SET \
             cluster = excluded.cluster, name = excluded.name, \
             generation = excluded.generation, deleted = excluded.deleted",
            &[
                &work.uid,
                &work.key.cluster,
                &work.key.name,
                &work.generation,
                &ts(confirmed),
            ],
        )?;
        Ok(())
    }

    fn store_status(&mut self, uid: &str, status: &StoredStatus) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO work_status (uid, status, generation, sequence_id, status_hash, \
             received) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (uid) DO UPDATE SET \
             status = excluded.status, generation = excluded.generation, \
             sequence_id = excluded.sequence_id, status_hash = excluded.status_hash, \
             received = excluded.received",
            &[
                &uid,
                &to_json(&status.status)?,
                &status.generation,
                &status.sequence_id,
                &status.status_hash,
                &ts(status.received),
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
                    Some(
                        self.seal
                            .seal_bytes("outbox.payload", &m.payload)?
                            .into_owned(),
                    ),
                    Some(queued.wire.as_str()),
                )
            }
            None => (None, None, None, None),
        };
        self.conn.execute(
            "INSERT INTO outbox (cluster, resource_id, event_type, event, created, topic, \
             properties, payload, wire, actor) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            &[
                &event.cluster,
                &event.resource_id,
                &event.event.ty(),
                &self.seal.seal("outbox.event", event_json(&event.event)?)?,
                &ts(now),
                &topic,
                &properties,
                &payload,
                &wire,
                &event.actor,
            ],
        )?;
        Ok(())
    }

    fn complete_outbox(
        &mut self,
        id: i64,
        sent_at: DateTime<Utc>,
    ) -> Result<Option<AuditEntry>, StoreError> {
        let row = self.conn.query_opt(
            "SELECT cluster, resource_id, event_type, event, actor FROM outbox WHERE id = $1",
            &[&id],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let event = self
            .seal
            .open("outbox.event", col(&row, 3)?)
            .and_then(|event| parse_event(&event))
            .map_err(|reason| StoreError::Corrupt {
                table: "outbox",
                reason,
            })?;
        let sent = AuditEntry {
            at: sent_at,
            direction: AuditDirection::Sent,
            cluster: col(&row, 0)?,
            resource_id: col(&row, 1)?,
            event_type: col(&row, 2)?,
            event,
            actor: col(&row, 4)?,
        };
        self.conn.execute(SUPERSEDE_PARKED, &[&id])?;
        self.conn
            .execute("DELETE FROM outbox WHERE id = $1", &[&id])?;
        Ok(Some(sent))
    }

    fn count_outbox_attempt(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1 WHERE id = $1",
            &[&id],
        )?;
        Ok(())
    }

    fn park_outbox(
        &mut self,
        id: i64,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let parked = self.conn.execute(
            "UPDATE outbox SET parked = $2, parked_at = $3 WHERE id = $1 AND parked IS NULL",
            &[&id, &reason, &ts(at)],
        )?;
        if parked == 0 {
            return Ok(None);
        }
        Ok(Some(self.conn.execute(SUPERSEDE_PARKED, &[&id])?))
    }

    fn unpark_outbox(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE outbox SET parked = NULL, parked_at = NULL WHERE id = $1",
            &[&id],
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
        let n = self.conn.execute(
            "INSERT INTO api_tokens (name, hash, role, scope, created, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &token.name,
                &token.hash,
                &token.role.as_str(),
                &scope,
                &ts(token.created),
                &token.created_by,
            ],
        )?;
        Ok(n == 1)
    }

    fn remove_token(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM api_tokens WHERE name = $1", &[&name])?
            == 1)
    }

    fn count_tokens(&mut self) -> Result<u64, StoreError> {
        let row = self
            .conn
            .query_one("SELECT COUNT(*) FROM api_tokens", &[])?;
        Ok(col::<i64>(&row, 0)?.max(0) as u64)
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
        status: &PlacementStatus,
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

    fn replica_set(&mut self, key: &ReplicaSetKey) -> Result<Option<ReplicaSetRecord>, StoreError> {
        rsq::get(self.conn, self.seal, key)
    }

    fn put_replica_set(&mut self, rs: &ReplicaSetRecord) -> Result<(), StoreError> {
        rsq::put(self.conn, self.seal, rs)
    }

    fn remove_replica_set(&mut self, key: &ReplicaSetKey) -> Result<bool, StoreError> {
        rsq::remove(self.conn, key)
    }

    fn cluster_rollouts(&mut self, key: &ReplicaSetKey) -> Result<Vec<ClusterRollout>, StoreError> {
        rsq::states(self.conn, key)
    }

    fn put_cluster_rollout(
        &mut self,
        key: &ReplicaSetKey,
        state: &ClusterRollout,
    ) -> Result<(), StoreError> {
        rsq::put_state(self.conn, key, state)
    }

    fn remove_cluster_rollout(
        &mut self,
        key: &ReplicaSetKey,
        cluster: &str,
    ) -> Result<(), StoreError> {
        rsq::remove_state(self.conn, key, cluster)
    }
}
