//! The SQLite row operations of cluster registration (issue 13): cluster rows with their
//! registration JSON and health deadline, certificate signing requests, cluster sets and
//! bootstrap tokens. Used by [`super::sqlite`]'s transaction and reader alike.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use workbus_schemas::registration::CertificateSigningRequest;

use super::StoreError;
use super::model::Cluster;
use super::registration::{ClusterSet, JoinToken, Registration};
use super::sqlite::{parse_json, parse_ts, to_json, ts};

/// The columns every cluster read selects, in [`RawCluster`] order.
pub(super) const CLUSTER_SELECT: &str =
    "SELECT name, labels, created, last_heard, registration FROM clusters";

/// One cluster row as read.
pub(super) type RawCluster = (String, String, String, Option<String>, Option<String>);

pub(super) fn row_to_cluster(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawCluster> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

pub(super) fn cluster_from_raw(raw: RawCluster) -> Result<Cluster, StoreError> {
    let t = "clusters";
    Ok(Cluster {
        name: raw.0,
        labels: parse_json(t, "labels", &raw.1)?,
        created: parse_ts(t, &raw.2)?,
        last_heard: raw.3.as_deref().map(|s| parse_ts(t, s)).transpose()?,
        registration: raw
            .4
            .as_deref()
            .map(|s| parse_json::<Registration>(t, "registration", s))
            .transpose()?,
    })
}

/// Inserts a cluster row; `false` when the name is taken.
pub(super) fn insert_cluster(conn: &Connection, cluster: &Cluster) -> Result<bool, StoreError> {
    let (registration, deadline) = registration_columns(cluster)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO clusters (name, labels, created, last_heard, registration, \
             health_deadline) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO NOTHING",
        )?
        .execute(params![
            cluster.name,
            to_json(&cluster.labels)?,
            ts(cluster.created),
            cluster.last_heard.map(ts),
            registration,
            deadline
        ])?;
    Ok(inserted == 1)
}

fn registration_columns(cluster: &Cluster) -> Result<(Option<String>, Option<String>), StoreError> {
    Ok(match &cluster.registration {
        Some(r) => (Some(to_json(r)?), r.health_deadline().map(ts)),
        None => (None, None),
    })
}

/// Stores labels, last-heard time, registration and health deadline.
pub(super) fn update_cluster(conn: &Connection, cluster: &Cluster) -> Result<bool, StoreError> {
    let (registration, deadline) = registration_columns(cluster)?;
    let n = conn
        .prepare_cached(
            "UPDATE clusters SET labels = ?2, last_heard = ?3, registration = ?4, \
             health_deadline = ?5 WHERE name = ?1",
        )?
        .execute(params![
            cluster.name,
            to_json(&cluster.labels)?,
            cluster.last_heard.map(ts),
            registration,
            deadline
        ])?;
    Ok(n == 1)
}

/// One cluster.
pub(super) fn cluster(conn: &Connection, name: &str) -> Result<Option<Cluster>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("{CLUSTER_SELECT} WHERE name = ?1"))?
        .query_row([name], row_to_cluster)
        .optional()?;
    raw.map(cluster_from_raw).transpose()
}

/// Registered clusters whose health deadline is due.
pub(super) fn clusters_due(
    conn: &Connection,
    now: DateTime<Utc>,
) -> Result<Vec<Cluster>, StoreError> {
    let raws = conn
        .prepare_cached(&format!(
            "{CLUSTER_SELECT} WHERE health_deadline IS NOT NULL AND health_deadline <= ?1 \
             ORDER BY health_deadline"
        ))?
        .query_map([ts(now)], row_to_cluster)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(cluster_from_raw).collect()
}

/// The CSRs of a cluster, oldest first.
pub(super) fn csrs_of(
    conn: &Connection,
    cluster: &str,
) -> Result<Vec<CertificateSigningRequest>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT csr FROM cluster_csrs WHERE cluster = ?1 ORDER BY created, name")?
        .query_map([cluster], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter()
        .map(|s| parse_json("cluster_csrs", "csr", s))
        .collect()
}

/// Inserts or replaces a CSR by name (its creation time kept).
pub(super) fn upsert_csr(
    conn: &Connection,
    cluster: &str,
    csr: &CertificateSigningRequest,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO cluster_csrs (name, cluster, csr, created) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(name) DO UPDATE SET csr = excluded.csr WHERE cluster = excluded.cluster",
    )?
    .execute(params![csr.metadata.name, cluster, to_json(csr)?, ts(now)])?;
    Ok(())
}

/// Marks or unmarks a revoked cluster name.
pub(super) fn set_cluster_revoked(
    conn: &Connection,
    name: &str,
    at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    match at {
        Some(at) => conn
            .prepare_cached(
                "INSERT INTO revoked_clusters (name, revoked) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET revoked = excluded.revoked",
            )?
            .execute(params![name, ts(at)])?,
        None => conn
            .prepare_cached("DELETE FROM revoked_clusters WHERE name = ?1")?
            .execute([name])?,
    };
    Ok(())
}

/// Whether a cluster name is revoked.
pub(super) fn is_cluster_revoked(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM revoked_clusters WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Every cluster set.
pub(super) fn list_clustersets(conn: &Connection) -> Result<Vec<ClusterSet>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT name, selector, created FROM clustersets ORDER BY name")?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(name, selector, created)| {
            Ok(ClusterSet {
                name,
                selector: parse_json("clustersets", "selector", &selector)?,
                created: parse_ts("clustersets", &created)?,
            })
        })
        .collect()
}

/// Inserts a cluster set.
pub(super) fn insert_clusterset(conn: &Connection, set: &ClusterSet) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO clustersets (name, selector, created) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![set.name, to_json(&set.selector)?, ts(set.created)])?;
    Ok(n == 1)
}

/// Removes a cluster set.
pub(super) fn remove_clusterset(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM clustersets WHERE name = ?1")?
        .execute([name])?
        == 1)
}

const JOIN_TOKEN_SELECT: &str =
    "SELECT name, hash, expires, auto_accept, revoked, created, created_by FROM bootstrap_tokens";

type RawJoinToken = (String, String, String, bool, Option<String>, String, String);

fn row_to_join_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawJoinToken> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn join_token_from_raw(raw: RawJoinToken) -> Result<JoinToken, StoreError> {
    let t = "bootstrap_tokens";
    let (name, hash, expires, auto_accept, revoked, created, created_by) = raw;
    Ok(JoinToken {
        name,
        hash,
        expires: parse_ts(t, &expires)?,
        auto_accept,
        revoked: revoked.as_deref().map(|s| parse_ts(t, s)).transpose()?,
        created: parse_ts(t, &created)?,
        created_by,
    })
}

/// The bootstrap token with digest `hash`.
pub(super) fn join_token_by_hash(
    conn: &Connection,
    hash: &str,
) -> Result<Option<JoinToken>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("{JOIN_TOKEN_SELECT} WHERE hash = ?1"))?
        .query_row([hash], row_to_join_token)
        .optional()?;
    raw.map(join_token_from_raw).transpose()
}

/// Every bootstrap token.
pub(super) fn list_join_tokens(conn: &Connection) -> Result<Vec<JoinToken>, StoreError> {
    let raws = conn
        .prepare_cached(&format!("{JOIN_TOKEN_SELECT} ORDER BY name"))?
        .query_map([], row_to_join_token)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(join_token_from_raw).collect()
}

/// Inserts a bootstrap token.
pub(super) fn insert_join_token(conn: &Connection, token: &JoinToken) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO bootstrap_tokens (name, hash, expires, auto_accept, revoked, created, \
             created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            token.name,
            token.hash,
            ts(token.expires),
            token.auto_accept,
            token.revoked.map(ts),
            ts(token.created),
            token.created_by
        ])?;
    Ok(n == 1)
}

/// Marks a bootstrap token revoked (the first revocation time is kept).
pub(super) fn revoke_join_token(
    conn: &Connection,
    name: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE bootstrap_tokens SET revoked = COALESCE(revoked, ?2) WHERE name = ?1",
        )?
        .execute(params![name, ts(at)])?;
    Ok(n == 1)
}
