//! The PostgreSQL row operations of Placements (issue 14): placement rows (object and
//! status JSON), their PlacementDecisions, and cluster set bindings. Used by
//! [`super::postgres`]'s transaction and readers alike; the SQLite twin is
//! `sqlite_placement`.

use chrono::{DateTime, Utc};
use postgres::Row;
use workbus_schemas::placement::{ClusterDecision, Placement, PlacementDecision, PlacementStatus};
use workbus_schemas::work::Time;

use super::StoreError;
use super::column_codec::{parse_json, parse_ts, to_json, ts};
use super::placement::{ClusterSetBinding, PlacementRecord};
use super::postgres_conn::{PgConn, col};
use super::rules::placement::normalise;

const PLACEMENT_SELECT: &str = "SELECT spec, status, created, generation FROM placements";

fn placement_from_row(r: &Row) -> Result<PlacementRecord, StoreError> {
    let t = "placements";
    let mut placement: Placement = parse_json(t, "spec", col(r, 0)?)?;
    placement.status = parse_json::<PlacementStatus>(t, "status", col(r, 1)?)?;
    let created = parse_ts(t, col(r, 2)?)?;
    let generation: i64 = col(r, 3)?;
    normalise(&mut placement, created, generation);
    Ok(PlacementRecord {
        placement,
        created,
        generation,
    })
}

/// One Placement.
pub(super) fn placement(
    conn: &mut PgConn,
    namespace: &str,
    name: &str,
) -> Result<Option<PlacementRecord>, StoreError> {
    conn.query_opt(
        &format!("{PLACEMENT_SELECT} WHERE namespace = $1 AND name = $2"),
        &[&namespace, &name],
    )?
    .as_ref()
    .map(placement_from_row)
    .transpose()
}

/// The Placements of a namespace, or all.
pub(super) fn list_placements(
    conn: &mut PgConn,
    namespace: Option<&str>,
) -> Result<Vec<PlacementRecord>, StoreError> {
    conn.query(
        &format!(
            "{PLACEMENT_SELECT} WHERE $1::TEXT IS NULL OR namespace = $1 ORDER BY namespace, name"
        ),
        &[&namespace],
    )?
    .iter()
    .map(placement_from_row)
    .collect()
}

/// Inserts or replaces a Placement.
pub(super) fn upsert_placement(
    conn: &mut PgConn,
    record: &PlacementRecord,
) -> Result<(), StoreError> {
    let mut object = record.placement.clone();
    let status = std::mem::take(&mut object.status);
    conn.execute(
        "INSERT INTO placements (namespace, name, spec, status, created, generation) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (namespace, name) DO UPDATE SET \
         spec = excluded.spec, status = excluded.status, generation = excluded.generation",
        &[
            &record.namespace(),
            &record.name(),
            &to_json(&object)?,
            &to_json(&status)?,
            &ts(record.created),
            &record.generation,
        ],
    )?;
    Ok(())
}

/// Removes a Placement row.
pub(super) fn remove_placement(
    conn: &mut PgConn,
    namespace: &str,
    name: &str,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "DELETE FROM placements WHERE namespace = $1 AND name = $2",
        &[&namespace, &name],
    )?;
    Ok(n == 1)
}

/// Stores a Placement's status.
pub(super) fn update_placement_status(
    conn: &mut PgConn,
    namespace: &str,
    name: &str,
    status: &PlacementStatus,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE placements SET status = $3 WHERE namespace = $1 AND name = $2",
        &[&namespace, &name, &to_json(status)?],
    )?;
    Ok(n == 1)
}

/// Replaces a Placement's decisions: objects that stay keep their creation time.
pub(super) fn replace_decisions(
    conn: &mut PgConn,
    namespace: &str,
    placement: &str,
    decisions: &[PlacementDecision],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let keep: Vec<&str> = decisions.iter().map(|d| d.metadata.name.as_str()).collect();
    conn.execute(
        "DELETE FROM placement_decisions WHERE namespace = $1 AND placement = $2 \
         AND name <> ALL($3::TEXT[])",
        &[&namespace, &placement, &keep],
    )?;
    for (i, d) in decisions.iter().enumerate() {
        conn.execute(
            "INSERT INTO placement_decisions (namespace, name, placement, ordinal, labels, \
             decisions, created) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (namespace, name) DO UPDATE SET placement = excluded.placement, \
             ordinal = excluded.ordinal, labels = excluded.labels, decisions = excluded.decisions",
            &[
                &namespace,
                &d.metadata.name,
                &placement,
                &i64::try_from(i).unwrap_or(i64::MAX),
                &to_json(&d.metadata.labels)?,
                &to_json(&d.status.decisions)?,
                &ts(now),
            ],
        )?;
    }
    Ok(())
}

fn decision_from_row(r: &Row) -> Result<PlacementDecision, StoreError> {
    let t = "placement_decisions";
    let mut d = PlacementDecision::default();
    d.metadata.namespace = col(r, 0)?;
    d.metadata.name = col(r, 1)?;
    d.metadata.labels = parse_json(t, "labels", col(r, 2)?)?;
    d.status.decisions = parse_json::<Vec<ClusterDecision>>(t, "decisions", col(r, 3)?)?;
    d.metadata.creation_timestamp = Some(Time::new(parse_ts(t, col(r, 4)?)?));
    Ok(d)
}

/// Decisions of one Placement (`placement` set) or of a namespace, or all.
pub(super) fn decisions(
    conn: &mut PgConn,
    namespace: Option<&str>,
    placement: Option<&str>,
) -> Result<Vec<PlacementDecision>, StoreError> {
    conn.query(
        "SELECT namespace, name, labels, decisions, created FROM placement_decisions \
         WHERE ($1::TEXT IS NULL OR namespace = $1) AND ($2::TEXT IS NULL OR placement = $2) \
         ORDER BY namespace, placement, ordinal",
        &[&namespace, &placement],
    )?
    .iter()
    .map(decision_from_row)
    .collect()
}

/// Bindings of a namespace and set (each optional).
pub(super) fn bindings(
    conn: &mut PgConn,
    namespace: Option<&str>,
    cluster_set: Option<&str>,
) -> Result<Vec<ClusterSetBinding>, StoreError> {
    conn.query(
        "SELECT namespace, clusterset, created FROM clusterset_bindings \
         WHERE ($1::TEXT IS NULL OR namespace = $1) AND ($2::TEXT IS NULL OR clusterset = $2) \
         ORDER BY namespace, clusterset",
        &[&namespace, &cluster_set],
    )?
    .iter()
    .map(|r| {
        Ok(ClusterSetBinding {
            namespace: col(r, 0)?,
            cluster_set: col(r, 1)?,
            created: parse_ts("clusterset_bindings", col(r, 2)?)?,
        })
    })
    .collect()
}

/// Inserts a binding.
pub(super) fn insert_binding(
    conn: &mut PgConn,
    binding: &ClusterSetBinding,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "INSERT INTO clusterset_bindings (namespace, clusterset, created) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[
            &binding.namespace,
            &binding.cluster_set,
            &ts(binding.created),
        ],
    )?;
    Ok(n == 1)
}

/// Removes a binding.
pub(super) fn remove_binding(
    conn: &mut PgConn,
    namespace: &str,
    cluster_set: &str,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "DELETE FROM clusterset_bindings WHERE namespace = $1 AND clusterset = $2",
        &[&namespace, &cluster_set],
    )?;
    Ok(n == 1)
}
