//! `/api/v1/audit/…`: read, verify and export the audit log (issue 15).
//!
//! | route | what | needs |
//! |---|---|---|
//! | `GET /api/v1/audit/log` | records by cluster, work, resource id, type, actor, direction, time; paged by `after` | `reader`; a scoped token must name one of its clusters |
//! | `GET /api/v1/audit/replay` | what ran on `cluster` at `at`: desired works and last reported statuses (`work`: one work's timeline) | as `log` |
//! | `GET /api/v1/audit/verify` | recomputes the chain and the checkpoint signatures (`from`, `to`) | `reader` without a scope |
//! | `GET /api/v1/audit/export` | seals the log, then every record as JSON lines | `reader` without a scope |
//! | `GET /api/v1/audit/public-key` | the key checkpoints verify with | `reader` without a scope |
//!
//! Reading the log is a reader's right (auditors are readers); a scoped token sees only
//! its clusters' records, so it must filter by one. Verification and export cover every
//! cluster's records, so they need an unscoped token (see `auth::policy`).

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use super::guard::require_scope;
use crate::audit::chain::AuditRecord;
use crate::audit::export::export_line;
use crate::audit::replay;
use crate::audit::verify::verify_store;
use crate::auth::Principal;
use crate::store::{AuditDirection, AuditQuery};

/// Page size when the client gives no `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;
/// Records per chunk of an export.
const EXPORT_PAGE: usize = 1000;

/// Query of `GET /api/v1/audit/log`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogQuery {
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this work (by name; needs `cluster`).
    pub work: Option<String>,
    /// Only this resource id.
    pub resource_id: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this direction (`sent`, `received`, `api`, `internal`).
    pub direction: Option<String>,
    /// Only records at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only records before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Only records after this sequence number (the previous page's `continue`).
    pub after: Option<u64>,
    /// Page size (1..=1000).
    pub limit: Option<usize>,
}

/// A record as the API shows it: the chain fields and the event as JSON.
pub fn record_json(r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq,
        "at": crate::audit::chain::format_time(r.at),
        "direction": r.direction.as_str(),
        "cluster": r.cluster,
        "source": r.source,
        "resourceId": r.resource_id,
        "resourceVersion": r.resource_version,
        "eventType": r.event_type,
        "actor": r.actor,
        "event": r.event_value().unwrap_or(Value::String(r.event.clone())),
        "prevHash": r.prev_hash,
        "hash": r.hash,
    })
}

/// The resource id of work `name` on `cluster` (works' ids derive from the source id).
fn work_uid(state: &ApiState, cluster: &str, name: &str) -> String {
    workbus_schemas::resource_id::work_resource_id(&state.source_id, cluster, name).to_string()
}

/// A scoped token must name one of its clusters.
fn scoped(caller: &Principal, cluster: Option<&str>) -> Result<(), ApiError> {
    match cluster {
        Some(cluster) => require_scope(caller, cluster),
        None if caller.unscoped() => Ok(()),
        None => Err(ApiError::forbidden(format!(
            "token {:?} is scoped: name one of its clusters (`cluster`)",
            caller.name
        ))),
    }
}

/// `GET /api/v1/audit/log`.
pub async fn log(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    scoped(&caller, q.cluster.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let direction = q
        .direction
        .as_deref()
        .map(|d| {
            AuditDirection::parse(d).ok_or_else(|| {
                ApiError::bad_request("direction must be sent, received, api or internal")
            })
        })
        .transpose()?;
    let resource_id = match (&q.work, &q.cluster) {
        (Some(work), Some(cluster)) => Some(work_uid(&state, cluster, work)),
        (Some(_), None) => return Err(ApiError::bad_request("work needs cluster")),
        (None, _) => q.resource_id,
    };
    let query = AuditQuery {
        after_seq: q.after,
        to_seq: None,
        cluster: q.cluster,
        resource_id,
        event_type: q.event_type,
        actor: q.actor,
        direction,
        since: q.since,
        until: q.until,
        limit,
    };
    let records = state.store.run(move |s| s.audit_records(&query)).await?;
    let mut metadata = serde_json::Map::new();
    if records.len() == limit
        && let Some(last) = records.last()
    {
        metadata.insert("continue".into(), last.seq.to_string().into());
    }
    let items: Vec<Value> = records.iter().map(record_json).collect();
    Ok(Json(json!({ "metadata": metadata, "items": items })))
}

/// Query of `GET /api/v1/audit/verify`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// The first record to check (default: the first).
    pub from: Option<u64>,
    /// The last record to check (default: the last; the anchor is checked only then).
    pub to: Option<u64>,
}

/// `GET /api/v1/audit/verify`: 200 with `ok: false` and the first bad record when the
/// log does not verify (the request itself succeeded).
pub async fn verify(
    State(state): State<ApiState>,
    query: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let key = state.sealer.public_key();
    let anchor = state.sealer.anchor().await?;
    let report = state
        .store
        .run(move |s| verify_store(s, Some(key), q.from, q.to, anchor))
        .await?;
    Ok(Json(report_json(&report)))
}

/// A verification report with `ok` and, when bad, the message naming the record.
pub fn report_json(report: &crate::audit::verify::VerifyReport) -> Value {
    let mut v = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("ok".into(), report.ok().into());
        if let Some(bad) = &report.bad {
            map.insert("message".into(), bad.to_string().into());
        }
    }
    v
}

/// `GET /api/v1/audit/public-key`.
pub async fn public_key(State(state): State<ApiState>) -> Json<Value> {
    let key = state.sealer.public_key();
    Json(json!({ "publicKey": key.to_text(), "keyId": key.key_id() }))
}

/// `GET /api/v1/audit/export`: seals the log with a checkpoint, then streams every
/// record up to it as JSON lines (records appended meanwhile are left for the next
/// export), page by page.
pub async fn export(State(state): State<ApiState>) -> Result<Response, ApiError> {
    state.sealer.seal().await?;
    let Some(end) = state.store.run(|s| s.audit_head()).await? else {
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], "").into_response());
    };
    let store = state.store.clone();
    let pages = futures_util::stream::try_unfold(Some(0u64), move |after| {
        let store = store.clone();
        async move {
            let Some(after) = after else {
                return Ok::<_, crate::store::StoreError>(None);
            };
            let query = AuditQuery {
                after_seq: Some(after),
                to_seq: Some(end.seq),
                limit: EXPORT_PAGE,
                ..Default::default()
            };
            let page = store.run(move |s| s.audit_records(&query)).await?;
            let Some(last) = page.last() else {
                return Ok(None);
            };
            let next = (page.len() == EXPORT_PAGE).then_some(last.seq);
            let mut text = String::new();
            for r in &page {
                let line = export_line(r).map_err(|e| crate::store::StoreError::Corrupt {
                    table: "audit",
                    reason: format!("record {}: {e}", r.seq),
                })?;
                text.push_str(&line);
                text.push('\n');
            }
            Ok(Some((text, next)))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}

/// Query of `GET /api/v1/audit/replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayQuery {
    /// The cluster.
    pub cluster: String,
    /// The time (RFC 3339; default: now).
    pub at: Option<DateTime<Utc>>,
    /// One work's timeline instead of the cluster's state.
    pub work: Option<String>,
}

/// `GET /api/v1/audit/replay`.
pub async fn replay(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    query: Result<Query<ReplayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    require_scope(&caller, &q.cluster)?;
    let at = q.at.unwrap_or_else(Utc::now);
    match q.work {
        Some(work) => {
            let uid = work_uid(&state, &q.cluster, &work);
            let timeline = state
                .store
                .run(move |s| replay::timeline(s, &uid, at))
                .await?;
            Ok(Json(
                json!({ "cluster": q.cluster, "work": work, "at": at, "items": timeline }),
            ))
        }
        None => {
            let cluster = q.cluster.clone();
            let state_at = state
                .store
                .run(move |s| replay::cluster_at(s, &cluster, at))
                .await?;
            Ok(Json(
                json!({ "cluster": q.cluster, "at": at, "items": state_at }),
            ))
        }
    }
}
