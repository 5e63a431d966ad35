//! The PostgreSQL row operations of ManifestWorkReplicaSets (issue 14): replica set rows
//! (spec and the previous template sealed at rest, like work specs) and per-cluster
//! rollout states. The rows are the SQLite backend's columns, decoded by the same
//! functions (`sqlite_replicaset::from_raw`, `state_from_raw`).

use postgres::Row;

use super::StoreError;
use super::column_codec::{Seal, to_json, ts};
use super::postgres_conn::{PgConn, col};
use super::replicaset::{ClusterRollout, ReplicaSetKey, ReplicaSetRecord};
use super::sqlite_replicaset::{Raw, RawState, SELECT, from_raw, state_from_raw};

fn raw(r: &Row) -> Result<Raw, StoreError> {
    Ok((
        col(r, 0)?,
        col(r, 1)?,
        col(r, 2)?,
        col(r, 3)?,
        col(r, 4)?,
        col(r, 5)?,
        col(r, 6)?,
        col(r, 7)?,
        col(r, 8)?,
        col(r, 9)?,
        col(r, 10)?,
        col(r, 11)?,
        col(r, 12)?,
    ))
}

/// One replica set.
pub(super) fn get(
    conn: &mut PgConn,
    seal: Seal<'_>,
    key: &ReplicaSetKey,
) -> Result<Option<ReplicaSetRecord>, StoreError> {
    conn.query_opt(
        &format!("{SELECT} WHERE namespace = $1 AND name = $2"),
        &[&key.namespace, &key.name],
    )?
    .as_ref()
    .map(|r| from_raw(raw(r)?, seal))
    .transpose()
}

/// Replica sets of one namespace (or all), by namespace and name.
pub(super) fn list(
    conn: &mut PgConn,
    seal: Seal<'_>,
    namespace: Option<&str>,
) -> Result<Vec<ReplicaSetRecord>, StoreError> {
    conn.query(
        &format!("{SELECT} WHERE $1::TEXT IS NULL OR namespace = $1 ORDER BY namespace, name"),
        &[&namespace],
    )?
    .iter()
    .map(|r| from_raw(raw(r)?, seal))
    .collect()
}

/// Inserts or replaces a replica set row.
pub(super) fn put(
    conn: &mut PgConn,
    seal: Seal<'_>,
    rs: &ReplicaSetRecord,
) -> Result<(), StoreError> {
    let previous = rs
        .previous
        .as_ref()
        .map(|p| seal.seal("replicasets.previous", to_json(p)?))
        .transpose()?;
    conn.execute(
        "INSERT INTO replicasets (namespace, name, labels, spec, status, template_hash, \
         previous, approvals, halt, generation, created, updated, deletion) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
         ON CONFLICT (namespace, name) DO UPDATE SET labels = $3, spec = $4, status = $5, \
         template_hash = $6, previous = $7, approvals = $8, halt = $9, generation = $10, \
         updated = $12, deletion = $13",
        &[
            &rs.key.namespace,
            &rs.key.name,
            &to_json(&rs.labels)?,
            &seal.seal("replicasets.spec", to_json(&rs.spec)?)?,
            &to_json(&rs.status)?,
            &rs.revision.hash,
            &previous,
            &to_json(&rs.approvals)?,
            &rs.halt.as_ref().map(to_json).transpose()?,
            &rs.generation,
            &ts(rs.created),
            &ts(rs.updated),
            &rs.deletion.map(ts),
        ],
    )?;
    Ok(())
}

/// Removes a replica set row with its per-cluster states; `false` when there was none.
pub(super) fn remove(conn: &mut PgConn, key: &ReplicaSetKey) -> Result<bool, StoreError> {
    conn.execute(
        "DELETE FROM replicaset_clusters WHERE namespace = $1 AND replicaset = $2",
        &[&key.namespace, &key.name],
    )?;
    let n = conn.execute(
        "DELETE FROM replicasets WHERE namespace = $1 AND name = $2",
        &[&key.namespace, &key.name],
    )?;
    Ok(n == 1)
}

/// The per-cluster states of a replica set, by cluster.
pub(super) fn states(
    conn: &mut PgConn,
    key: &ReplicaSetKey,
) -> Result<Vec<ClusterRollout>, StoreError> {
    conn.query(
        "SELECT cluster, placement, group_index, group_name, status, last_transition, \
         revision FROM replicaset_clusters WHERE namespace = $1 AND replicaset = $2 \
         ORDER BY cluster",
        &[&key.namespace, &key.name],
    )?
    .iter()
    .map(|r| {
        let raw: RawState = (
            col(r, 0)?,
            col(r, 1)?,
            col(r, 2)?,
            col(r, 3)?,
            col(r, 4)?,
            col(r, 5)?,
            col(r, 6)?,
        );
        state_from_raw(raw)
    })
    .collect()
}

/// Inserts or replaces a cluster's rollout state.
pub(super) fn put_state(
    conn: &mut PgConn,
    key: &ReplicaSetKey,
    s: &ClusterRollout,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO replicaset_clusters (namespace, replicaset, cluster, placement, \
         group_index, group_name, status, last_transition, revision) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) \
         ON CONFLICT (namespace, replicaset, cluster) DO UPDATE SET placement = $4, \
         group_index = $5, group_name = $6, status = $7, last_transition = $8, revision = $9",
        &[
            &key.namespace,
            &key.name,
            &s.cluster,
            &s.placement,
            &s.group.index,
            &s.group.name,
            &s.status.as_str(),
            &ts(s.last_transition),
            &s.revision,
        ],
    )?;
    Ok(())
}

/// Removes a cluster's rollout state.
pub(super) fn remove_state(
    conn: &mut PgConn,
    key: &ReplicaSetKey,
    cluster: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM replicaset_clusters WHERE namespace = $1 AND replicaset = $2 AND cluster = $3",
        &[&key.namespace, &key.name, &cluster],
    )?;
    Ok(())
}
