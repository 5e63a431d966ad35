//! The PostgreSQL row operations of cluster registration (issue 13): cluster rows with
//! their registration JSON and health deadline, certificate signing requests, cluster
//! sets and bootstrap tokens. Used by [`super::postgres`]'s transaction and readers
//! alike; the SQLite twin is `sqlite_registration`.

use chrono::{DateTime, Utc};
use postgres::Row;
use workbus_schemas::registration::CertificateSigningRequest;

use super::StoreError;
use super::column_codec::{parse_json, parse_ts, to_json, ts};
use super::model::Cluster;
use super::postgres_conn::{PgConn, col};
use super::registration::{ClusterSet, JoinToken, Registration};

/// The columns every cluster read selects, in [`cluster_from_row`] order.
pub(super) const CLUSTER_SELECT: &str =
    "SELECT name, labels, created, last_heard, registration FROM clusters";

pub(super) fn cluster_from_row(row: &Row) -> Result<Cluster, StoreError> {
    let t = "clusters";
    let last_heard: Option<String> = col(row, 3)?;
    let registration: Option<String> = col(row, 4)?;
    Ok(Cluster {
        name: col(row, 0)?,
        labels: parse_json(t, "labels", col(row, 1)?)?,
        created: parse_ts(t, col(row, 2)?)?,
        last_heard: last_heard.as_deref().map(|s| parse_ts(t, s)).transpose()?,
        registration: registration
            .as_deref()
            .map(|s| parse_json::<Registration>(t, "registration", s))
            .transpose()?,
    })
}

fn clusters(rows: Vec<Row>) -> Result<Vec<Cluster>, StoreError> {
    rows.iter().map(cluster_from_row).collect()
}

/// Every cluster, by name.
pub(super) fn list_clusters(conn: &mut PgConn) -> Result<Vec<Cluster>, StoreError> {
    clusters(conn.query(&format!("{CLUSTER_SELECT} ORDER BY name"), &[])?)
}

fn registration_columns(cluster: &Cluster) -> Result<(Option<String>, Option<String>), StoreError> {
    Ok(match &cluster.registration {
        Some(r) => (Some(to_json(r)?), r.health_deadline().map(ts)),
        None => (None, None),
    })
}

/// Inserts a cluster row; `false` when the name is taken.
pub(super) fn insert_cluster(conn: &mut PgConn, cluster: &Cluster) -> Result<bool, StoreError> {
    let (registration, deadline) = registration_columns(cluster)?;
    let n = conn.execute(
        "INSERT INTO clusters (name, labels, created, last_heard, registration, \
         health_deadline) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        &[
            &cluster.name,
            &to_json(&cluster.labels)?,
            &ts(cluster.created),
            &cluster.last_heard.map(ts),
            &registration,
            &deadline,
        ],
    )?;
    Ok(n == 1)
}

/// Stores labels, last-heard time, registration and health deadline.
pub(super) fn update_cluster(conn: &mut PgConn, cluster: &Cluster) -> Result<bool, StoreError> {
    let (registration, deadline) = registration_columns(cluster)?;
    let n = conn.execute(
        "UPDATE clusters SET labels = $2, last_heard = $3, registration = $4, \
         health_deadline = $5 WHERE name = $1",
        &[
            &cluster.name,
            &to_json(&cluster.labels)?,
            &cluster.last_heard.map(ts),
            &registration,
            &deadline,
        ],
    )?;
    Ok(n == 1)
}

/// One cluster.
pub(super) fn cluster(conn: &mut PgConn, name: &str) -> Result<Option<Cluster>, StoreError> {
    conn.query_opt(&format!("{CLUSTER_SELECT} WHERE name = $1"), &[&name])?
        .as_ref()
        .map(cluster_from_row)
        .transpose()
}

/// Registered clusters whose health deadline is due.
pub(super) fn clusters_due(
    conn: &mut PgConn,
    now: DateTime<Utc>,
) -> Result<Vec<Cluster>, StoreError> {
    clusters(conn.query(
        &format!(
            "{CLUSTER_SELECT} WHERE health_deadline IS NOT NULL AND health_deadline <= $1 \
             ORDER BY health_deadline"
        ),
        &[&ts(now)],
    )?)
}

/// The CSRs of a cluster, oldest first.
pub(super) fn csrs_of(
    conn: &mut PgConn,
    cluster: &str,
) -> Result<Vec<CertificateSigningRequest>, StoreError> {
    conn.query(
        "SELECT csr FROM cluster_csrs WHERE cluster = $1 ORDER BY created, name",
        &[&cluster],
    )?
    .iter()
    .map(|r| parse_json("cluster_csrs", "csr", col(r, 0)?))
    .collect()
}

/// Inserts or replaces a CSR by name (its creation time kept).
pub(super) fn upsert_csr(
    conn: &mut PgConn,
    cluster: &str,
    csr: &CertificateSigningRequest,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO cluster_csrs (name, cluster, csr, created) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET csr = excluded.csr \
         WHERE cluster_csrs.cluster = excluded.cluster",
        &[&csr.metadata.name, &cluster, &to_json(csr)?, &ts(now)],
    )?;
    Ok(())
}

/// Marks or unmarks a revoked cluster name.
pub(super) fn set_cluster_revoked(
    conn: &mut PgConn,
    name: &str,
    at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    match at {
        Some(at) => conn.execute(
            "INSERT INTO revoked_clusters (name, revoked) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET revoked = excluded.revoked",
            &[&name, &ts(at)],
        )?,
        None => conn.execute("DELETE FROM revoked_clusters WHERE name = $1", &[&name])?,
    };
    Ok(())
}

/// Whether a cluster name is revoked.
pub(super) fn is_cluster_revoked(conn: &mut PgConn, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_opt("SELECT 1 FROM revoked_clusters WHERE name = $1", &[&name])?
        .is_some())
}

/// Every cluster set.
pub(super) fn list_clustersets(conn: &mut PgConn) -> Result<Vec<ClusterSet>, StoreError> {
    conn.query(
        "SELECT name, selector, created FROM clustersets ORDER BY name",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(ClusterSet {
            name: col(r, 0)?,
            selector: parse_json("clustersets", "selector", col(r, 1)?)?,
            created: parse_ts("clustersets", col(r, 2)?)?,
        })
    })
    .collect()
}

/// Inserts a cluster set.
pub(super) fn insert_clusterset(conn: &mut PgConn, set: &ClusterSet) -> Result<bool, StoreError> {
    let n = conn.execute(
        "INSERT INTO clustersets (name, selector, created) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
        &[&set.name, &to_json(&set.selector)?, &ts(set.created)],
    )?;
    Ok(n == 1)
}

/// Removes a cluster set.
pub(super) fn remove_clusterset(conn: &mut PgConn, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM clustersets WHERE name = $1", &[&name])? == 1)
}

const JOIN_TOKEN_SELECT: &str =
    "SELECT name, hash, expires, auto_accept, revoked, created, created_by FROM bootstrap_tokens";

fn join_token_from_row(r: &Row) -> Result<JoinToken, StoreError> {
    let t = "bootstrap_tokens";
    let revoked: Option<String> = col(r, 4)?;
    Ok(JoinToken {
        name: col(r, 0)?,
        hash: col(r, 1)?,
        expires: parse_ts(t, col(r, 2)?)?,
        auto_accept: col(r, 3)?,
        revoked: revoked.as_deref().map(|s| parse_ts(t, s)).transpose()?,
        created: parse_ts(t, col(r, 5)?)?,
        created_by: col(r, 6)?,
    })
}

/// The bootstrap token with digest `hash`.
pub(super) fn join_token_by_hash(
    conn: &mut PgConn,
    hash: &str,
) -> Result<Option<JoinToken>, StoreError> {
    conn.query_opt(&format!("{JOIN_TOKEN_SELECT} WHERE hash = $1"), &[&hash])?
        .as_ref()
        .map(join_token_from_row)
        .transpose()
}

/// Every bootstrap token.
pub(super) fn list_join_tokens(conn: &mut PgConn) -> Result<Vec<JoinToken>, StoreError> {
    conn.query(&format!("{JOIN_TOKEN_SELECT} ORDER BY name"), &[])?
        .iter()
        .map(join_token_from_row)
        .collect()
}

/// Inserts a bootstrap token.
pub(super) fn insert_join_token(conn: &mut PgConn, token: &JoinToken) -> Result<bool, StoreError> {
    let n = conn.execute(
        "INSERT INTO bootstrap_tokens (name, hash, expires, auto_accept, revoked, created, \
         created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        &[
            &token.name,
            &token.hash,
            &ts(token.expires),
            &token.auto_accept,
            &token.revoked.map(ts),
            &ts(token.created),
            &token.created_by,
        ],
    )?;
    Ok(n == 1)
}

/// Marks a bootstrap token revoked (the first revocation time is kept).
pub(super) fn revoke_join_token(
    conn: &mut PgConn,
    name: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE bootstrap_tokens SET revoked = COALESCE(revoked, $2) WHERE name = $1",
        &[&name, &ts(at)],
    )?;
    Ok(n == 1)
}
