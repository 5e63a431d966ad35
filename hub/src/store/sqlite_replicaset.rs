//! The SQLite row operations of ManifestWorkReplicaSets (issue 14): replica set rows
//! (spec and the previous template sealed at rest, like work specs) and per-cluster
//! rollout states. Used by [`super::sqlite`]'s transaction and reader alike.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::replicaset::{ClusterRollout, Halt, ReplicaSetKey, ReplicaSetRecord, Revision};
use super::sqlite::{Seal, parse_json, parse_ts, to_json, ts};
use crate::rollout::cluster_status::{ClusterStatus, GroupKey};
use crate::rollout::revision::revision;

const T: &str = "replicasets";
pub(super) const SELECT: &str = "SELECT namespace, name, labels, spec, status, template_hash, previous, \
     approvals, halt, generation, created, updated, deletion FROM replicasets";

/// A replica set row as text, in `SELECT` order; decoded by [`from_raw`] (the
/// PostgreSQL backend reads the same columns and decodes them here too).
pub(super) type Raw = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    i64,
    String,
    String,
    Option<String>,
);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
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
        r.get(12)?,
    ))
}

fn opened(seal: Seal<'_>, column: &str, stored: String) -> Result<String, StoreError> {
    seal.open(column, stored)
        .map_err(|reason| StoreError::Corrupt { table: T, reason })
}

/// A replica set row as stored into its record.
pub(super) fn from_raw(raw: Raw, seal: Seal<'_>) -> Result<ReplicaSetRecord, StoreError> {
    let spec: workbus_schemas::replicaset::ManifestWorkReplicaSetSpec =
        parse_json(T, "spec", &opened(seal, "replicasets.spec", raw.3)?)?;
    let current = revision(&spec.manifest_work_template, &spec.overrides);
    if current.hash != raw.5 {
        // The hash is recomputed from the spec; a different build serializing
        // differently must not look like a new template (that would restart rollouts).
        tracing::debug!(stored = %raw.5, computed = %current.hash, "replica set revision hash recomputed");
    }
    let previous = raw
        .6
        .map(|p| opened(seal, "replicasets.previous", p))
        .transpose()?
        .map(|p| parse_json::<Revision>(T, "previous", &p))
        .transpose()?;
    Ok(ReplicaSetRecord {
        key: ReplicaSetKey {
            namespace: raw.0,
            name: raw.1,
        },
        labels: parse_json(T, "labels", &raw.2)?,
        spec,
        status: parse_json(T, "status", &raw.4)?,
        revision: Revision {
            hash: raw.5,
            ..current
        },
        previous,
        approvals: parse_json(T, "approvals", &raw.7)?,
        halt: raw
            .8
            .map(|h| parse_json::<Halt>(T, "halt", &h))
            .transpose()?,
        generation: raw.9,
        created: parse_ts(T, &raw.10)?,
        updated: parse_ts(T, &raw.11)?,
        deletion: raw.12.as_deref().map(|d| parse_ts(T, d)).transpose()?,
    })
}

/// One replica set.
pub(super) fn get(
    conn: &Connection,
    seal: Seal<'_>,
    key: &ReplicaSetKey,
) -> Result<Option<ReplicaSetRecord>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("{SELECT} WHERE namespace = ?1 AND name = ?2"))?
        .query_row(params![key.namespace, key.name], row)
        .optional()?;
    raw.map(|r| from_raw(r, seal)).transpose()
}

/// Replica sets of one namespace (or all), by namespace and name.
pub(super) fn list(
    conn: &Connection,
    seal: Seal<'_>,
    namespace: Option<&str>,
) -> Result<Vec<ReplicaSetRecord>, StoreError> {
    let raws = match namespace {
        Some(ns) => conn
            .prepare_cached(&format!(
                "{SELECT} WHERE namespace = ?1 ORDER BY namespace, name"
            ))?
            .query_map([ns], row)?
            .collect::<Result<Vec<_>, _>>()?,
        None => conn
            .prepare_cached(&format!("{SELECT} ORDER BY namespace, name"))?
            .query_map([], row)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    raws.into_iter().map(|r| from_raw(r, seal)).collect()
}

/// Inserts or replaces a replica set row.
pub(super) fn put(
    conn: &Connection,
    seal: Seal<'_>,
    rs: &ReplicaSetRecord,
) -> Result<(), StoreError> {
    let previous = rs
        .previous
        .as_ref()
        .map(|p| seal.seal("replicasets.previous", to_json(p)?))
        .transpose()?;
    conn.prepare_cached(
        "INSERT INTO replicasets (namespace, name, labels, spec, status, template_hash, \
         previous, approvals, halt, generation, created, updated, deletion) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13) \
         ON CONFLICT(namespace, name) DO UPDATE SET labels = ?3, spec = ?4, status = ?5, \
         template_hash = ?6, previous = ?7, approvals = ?8, halt = ?9, generation = ?10, \
         updated = ?12, deletion = ?13",
    )?
    .execute(params![
        rs.key.namespace,
        rs.key.name,
        to_json(&rs.labels)?,
        seal.seal("replicasets.spec", to_json(&rs.spec)?)?,
        to_json(&rs.status)?,
        rs.revision.hash,
        previous,
        to_json(&rs.approvals)?,
        rs.halt.as_ref().map(to_json).transpose()?,
        rs.generation,
        ts(rs.created),
        ts(rs.updated),
        rs.deletion.map(ts),
    ])?;
    Ok(())
}

/// Removes a replica set row with its per-cluster states; `false` when there was none.
pub(super) fn remove(conn: &Connection, key: &ReplicaSetKey) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "DELETE FROM replicaset_clusters WHERE namespace = ?1 AND replicaset = ?2",
    )?
    .execute(params![key.namespace, key.name])?;
    let n = conn
        .prepare_cached("DELETE FROM replicasets WHERE namespace = ?1 AND name = ?2")?
        .execute(params![key.namespace, key.name])?;
    Ok(n == 1)
}

/// The per-cluster states of a replica set, by cluster.
pub(super) fn states(
    conn: &Connection,
    key: &ReplicaSetKey,
) -> Result<Vec<ClusterRollout>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT cluster, placement, group_index, group_name, status, last_transition, \
             revision FROM replicaset_clusters WHERE namespace = ?1 AND replicaset = ?2 \
             ORDER BY cluster",
        )?
        .query_map(params![key.namespace, key.name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i32>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(state_from_raw).collect()
}

/// A per-cluster rollout row (`cluster, placement, group_index, group_name, status,
/// last_transition, revision`) as stored into its state; shared with PostgreSQL.
pub(super) type RawState = (String, String, i32, String, String, String, String);

/// A [`RawState`] into its [`ClusterRollout`].
pub(super) fn state_from_raw(raw: RawState) -> Result<ClusterRollout, StoreError> {
    let t = "replicaset_clusters";
    let (cluster, placement, index, name, status, at, revision) = raw;
    Ok(ClusterRollout {
        status: ClusterStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
            table: t,
            reason: format!("unknown rollout status {status:?}"),
        })?,
        cluster,
        placement,
        group: GroupKey { index, name },
        last_transition: parse_ts(t, &at)?,
        revision,
    })
}

/// Inserts or replaces a cluster's rollout state.
pub(super) fn put_state(
    conn: &Connection,
    key: &ReplicaSetKey,
    s: &ClusterRollout,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO replicaset_clusters (namespace, replicaset, cluster, placement, \
         group_index, group_name, status, last_transition, revision) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9) \
         ON CONFLICT(namespace, replicaset, cluster) DO UPDATE SET placement = ?4, \
         group_index = ?5, group_name = ?6, status = ?7, last_transition = ?8, revision = ?9",
    )?
    .execute(params![
        key.namespace,
        key.name,
        s.cluster,
        s.placement,
        s.group.index,
        s.group.name,
        s.status.as_str(),
        ts(s.last_transition),
        s.revision,
    ])?;
    Ok(())
}

/// Removes a cluster's rollout state.
pub(super) fn remove_state(
    conn: &Connection,
    key: &ReplicaSetKey,
    cluster: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM replicaset_clusters WHERE namespace = ?1 AND replicaset = ?2 AND cluster = ?3",
    )?
    .execute(params![key.namespace, key.name, cluster])?;
    Ok(())
}
