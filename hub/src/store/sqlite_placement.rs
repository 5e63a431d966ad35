//! The SQLite row operations of Placements (issue 14): placement rows (object and
//! status JSON), their PlacementDecisions, and cluster set bindings. Used by
//! [`super::sqlite`]'s transaction and reader alike.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use workbus_schemas::placement::{ClusterDecision, Placement, PlacementDecision, PlacementStatus};
use workbus_schemas::work::Time;

use super::StoreError;
use super::placement::{ClusterSetBinding, PlacementRecord};
use super::rules::placement::normalise;
use super::sqlite::{parse_json, parse_ts, to_json, ts};

const PLACEMENT_SELECT: &str = "SELECT spec, status, created, generation FROM placements";

type RawPlacement = (String, String, String, i64);

fn row_to_placement(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawPlacement> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn placement_from_raw(raw: RawPlacement) -> Result<PlacementRecord, StoreError> {
    let t = "placements";
    let mut placement: Placement = parse_json(t, "spec", &raw.0)?;
    placement.status = parse_json::<PlacementStatus>(t, "status", &raw.1)?;
    let created = parse_ts(t, &raw.2)?;
    normalise(&mut placement, created, raw.3);
    Ok(PlacementRecord {
        placement,
        created,
        generation: raw.3,
    })
}

/// One Placement.
pub(super) fn placement(
    conn: &Connection,
    namespace: &str,
    name: &str,
) -> Result<Option<PlacementRecord>, StoreError> {
    let raw = conn
        .prepare_cached(&format!(
            "{PLACEMENT_SELECT} WHERE namespace = ?1 AND name = ?2"
        ))?
        .query_row([namespace, name], row_to_placement)
        .optional()?;
    raw.map(placement_from_raw).transpose()
}

/// The Placements of a namespace, or all.
pub(super) fn list_placements(
    conn: &Connection,
    namespace: Option<&str>,
) -> Result<Vec<PlacementRecord>, StoreError> {
    let raws = conn
        .prepare_cached(&format!(
            "{PLACEMENT_SELECT} WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name"
        ))?
        .query_map([namespace], row_to_placement)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(placement_from_raw).collect()
}

/// Inserts or replaces a Placement.
pub(super) fn upsert_placement(
    conn: &Connection,
    record: &PlacementRecord,
) -> Result<(), StoreError> {
    let mut object = record.placement.clone();
    let status = std::mem::take(&mut object.status);
    conn.prepare_cached(
        "INSERT INTO placements (namespace, name, spec, status, created, generation) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(namespace, name) DO UPDATE SET \
         spec = excluded.spec, status = excluded.status, generation = excluded.generation",
    )?
    .execute(params![
        record.namespace(),
        record.name(),
        to_json(&object)?,
        to_json(&status)?,
        ts(record.created),
        record.generation
    ])?;
    Ok(())
}

/// Removes a Placement row.
pub(super) fn remove_placement(
    conn: &Connection,
    namespace: &str,
    name: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM placements WHERE namespace = ?1 AND name = ?2")?
        .execute([namespace, name])?;
    Ok(n == 1)
}

/// Stores a Placement's status.
pub(super) fn update_placement_status(
    conn: &Connection,
    namespace: &str,
    name: &str,
    status: &PlacementStatus,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("UPDATE placements SET status = ?3 WHERE namespace = ?1 AND name = ?2")?
        .execute(params![namespace, name, to_json(status)?])?;
    Ok(n == 1)
}

/// Replaces a Placement's decisions: objects that stay keep their creation time.
pub(super) fn replace_decisions(
    conn: &Connection,
    namespace: &str,
    placement: &str,
    decisions: &[PlacementDecision],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let keep: Vec<&str> = decisions.iter().map(|d| d.metadata.name.as_str()).collect();
    conn.prepare_cached(
        "DELETE FROM placement_decisions WHERE namespace = ?1 AND placement = ?2 \
         AND name NOT IN (SELECT value FROM json_each(?3))",
    )?
    .execute(params![namespace, placement, to_json(&keep)?])?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO placement_decisions (namespace, name, placement, ordinal, labels, \
         decisions, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT(namespace, name) DO UPDATE SET placement = excluded.placement, \
         ordinal = excluded.ordinal, labels = excluded.labels, decisions = excluded.decisions",
    )?;
    for (i, d) in decisions.iter().enumerate() {
        upsert.execute(params![
            namespace,
            d.metadata.name,
            placement,
            i64::try_from(i).unwrap_or(i64::MAX),
            to_json(&d.metadata.labels)?,
            to_json(&d.status.decisions)?,
            ts(now)
        ])?;
    }
    Ok(())
}

type RawDecision = (String, String, String, String, String);

fn decision_from_raw(raw: RawDecision) -> Result<PlacementDecision, StoreError> {
    let t = "placement_decisions";
    let mut d = PlacementDecision::default();
    d.metadata.namespace = raw.0;
    d.metadata.name = raw.1;
    d.metadata.labels = parse_json(t, "labels", &raw.2)?;
    d.status.decisions = parse_json::<Vec<ClusterDecision>>(t, "decisions", &raw.3)?;
    d.metadata.creation_timestamp = Some(Time::new(parse_ts(t, &raw.4)?));
    Ok(d)
}

/// Decisions of one Placement (`placement` set) or of a namespace, or all.
pub(super) fn decisions(
    conn: &Connection,
    namespace: Option<&str>,
    placement: Option<&str>,
) -> Result<Vec<PlacementDecision>, StoreError> {
    let raws = conn
        .prepare_cached(
            "SELECT namespace, name, labels, decisions, created FROM placement_decisions \
             WHERE (?1 IS NULL OR namespace = ?1) AND (?2 IS NULL OR placement = ?2) \
             ORDER BY namespace, placement, ordinal",
        )?
        .query_map(params![namespace, placement], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<Vec<RawDecision>, _>>()?;
    raws.into_iter().map(decision_from_raw).collect()
}

type RawBinding = (String, String, String);

fn binding_from_raw(raw: RawBinding) -> Result<ClusterSetBinding, StoreError> {
    Ok(ClusterSetBinding {
        namespace: raw.0,
        cluster_set: raw.1,
        created: parse_ts("clusterset_bindings", &raw.2)?,
    })
}

/// Bindings of a namespace and set (each optional).
pub(super) fn bindings(
    conn: &Connection,
    namespace: Option<&str>,
    cluster_set: Option<&str>,
) -> Result<Vec<ClusterSetBinding>, StoreError> {
    let raws = conn
        .prepare_cached(
            "SELECT namespace, clusterset, created FROM clusterset_bindings \
             WHERE (?1 IS NULL OR namespace = ?1) AND (?2 IS NULL OR clusterset = ?2) \
             ORDER BY namespace, clusterset",
        )?
        .query_map(params![namespace, cluster_set], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<Vec<RawBinding>, _>>()?;
    raws.into_iter().map(binding_from_raw).collect()
}

/// Inserts a binding.
pub(super) fn insert_binding(
    conn: &Connection,
    binding: &ClusterSetBinding,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO clusterset_bindings (namespace, clusterset, created) \
             VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            binding.namespace,
            binding.cluster_set,
            ts(binding.created)
        ])?;
    Ok(n == 1)
}

/// Removes a binding.
pub(super) fn remove_binding(
    conn: &Connection,
    namespace: &str,
    cluster_set: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM clusterset_bindings WHERE namespace = ?1 AND clusterset = ?2")?
        .execute([namespace, cluster_set])?;
    Ok(n == 1)
}
