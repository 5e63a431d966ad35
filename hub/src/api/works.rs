//! The ManifestWork endpoints: list (filters + pagination), create, get,
//! create-or-update, delete. Every accepted change is committed together with its spec
//! event in the outbox (see `store`), then the outbox publisher is woken.
//!
//! A change is accepted only if every spec event the work can produce from then on fits
//! MQTT (`WireFormat::check_work`: string and packet limits, measured on the largest
//! generation, action and timestamps): an accepted event that can never be published
//! would only be parked by the outbox. Too large is 413, otherwise 422; a delete whose
//! event would not fit (a work stored by an older version) is 409 until the work is
//! replaced by one that fits.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use workbus_schemas::selector::LabelSelector;
use workbus_schemas::work::ManifestWork;

use super::ApiState;
use super::body::{body_format, desired_work, parse_work};
use super::error::ApiError;
use super::guard::require_scope;
use crate::audit::api_record::api_entry;
use crate::auth::Principal;
use crate::outbox::WorkEvents;
use crate::source::spec_events::change_builder;
use crate::store::writes::{ApplyWork, Audited, ForceDeleteWork, MarkDeleting};
use crate::store::{
    ApplyOutcome, DesiredWork, SharedSpecEventBuilder, WorkFilter, WorkKey, WorkRecord,
};
use crate::watch::{ChangeKind, WorkChange};
use crate::work_view::manifest_work;

/// Page size when the client gives no `limit`.
pub const DEFAULT_LIMIT: usize = 500;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;
/// Response header telling `created`, `updated` or `unchanged` (for `apply`).
pub const OUTCOME_HEADER: &str = "x-workbus-outcome";

/// Query of `GET /api/v1/works`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only this cluster.
    pub cluster: Option<String>,
    /// A label selector (`k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`,
    /// comma-separated): every term must hold.
    pub label_selector: Option<String>,
    /// Page size (1..=1000).
    pub limit: Option<usize>,
    /// Token from the previous page.
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
}

/// What a continue token carries: where the page ended and which query it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct ContinueToken {
    c: String,
    n: String,
    q: String,
}

fn query_fingerprint(q: &ListQuery) -> String {
    format!(
        "{}|{}",
        q.cluster.as_deref().unwrap_or(""),
        q.label_selector.as_deref().unwrap_or("")
    )
}

/// Parses a label selector (`a=b,c!=d,e in (x,y),!f,g`, `workbus_schemas::selector`)
/// into the store's equality terms (each `k=v`, which the store's index serves) and the
/// whole selector (applied to every work the store returns).
pub fn parse_label_selector(s: &str) -> Result<(Vec<(String, String)>, LabelSelector), ApiError> {
    let selector = workbus_schemas::selector::parse(s)
        .map_err(|e| ApiError::bad_request(format!("labelSelector {s:?}: {e}")))?;
    let equalities = selector
        .match_expressions
        .iter()
        .filter(|r| r.operator == workbus_schemas::selector::operator::IN && r.values.len() == 1)
        .map(|r| (r.key.clone(), r.values[0].clone()))
        .collect();
    Ok((equalities, selector))
}

fn encode_token(key: &WorkKey, q: &ListQuery) -> String {
    let token = ContinueToken {
        c: key.cluster.clone(),
        n: key.name.clone(),
        q: query_fingerprint(q),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_token(token: &str, q: &ListQuery) -> Result<WorkKey, ApiError> {
    let bad = || ApiError::bad_request("invalid continue token; restart the listing without it");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if t.q != query_fingerprint(q) {
        return Err(ApiError::bad_request(
            "continue token belongs to a listing with other filters",
        ));
    }
    Ok(WorkKey {
        cluster: t.c,
        name: t.n,
    })
}

/// `GET /api/v1/works`.
///
/// A scoped token lists one cluster at a time: it must name one of its own (`cluster`).
pub async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match q.cluster.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => require_scope(&caller, c)?,
        None if !caller.unscoped() => {
            return Err(ApiError::forbidden(format!(
                "token {:?} is scoped to some clusters: list one of them with ?cluster=",
                caller.name
            )));
        }
        None => {}
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let (equalities, selector) = parse_label_selector(q.label_selector.as_deref().unwrap_or(""))?;
    let filter = WorkFilter {
        cluster: q.cluster.clone().filter(|c| !c.is_empty()),
        labels: equalities,
        after: q
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| decode_token(t, &q))
            .transpose()?,
        limit: limit + 1,
    };
    let mut works = state.store.run(move |s| s.list_works(&filter)).await?;
    let more = works.len() > limit;
    works.truncate(limit);
    let next = if more {
        works.last().map(|w| encode_token(&w.key, &q))
    } else {
        None
    };
    // The set-based terms: a page may come out shorter than `limit` (even empty) while
    // a continue token still leads on, as with Kubernetes.
    let items: Vec<ManifestWork> = works
        .iter()
        .filter(|w| selector.matches(&w.labels))
        .map(manifest_work)
        .collect();
    let mut metadata = serde_json::Map::new();
    if let Some(token) = next {
        metadata.insert("continue".into(), token.into());
    }
    Ok(Json(json!({
        "apiVersion": ManifestWork::API_VERSION,
        "kind": "ManifestWorkList",
        "metadata": metadata,
        "items": items,
    })))
}

/// The spec event builder for a change made at `now` (runs inside the store
/// transaction, so the event carries exactly the committed generation).
pub(super) fn event_builder(
    state: &ApiState,
    now: chrono::DateTime<Utc>,
) -> SharedSpecEventBuilder {
    change_builder(state.wire.clone(), now)
}

/// The work as it would be stored if `desired` is accepted at `now` (generation and
/// times are replaced by their largest forms when it is measured).
fn prospective_record(desired: &DesiredWork, now: DateTime<Utc>) -> WorkRecord {
    WorkRecord {
        uid: desired.uid.clone(),
        key: desired.key.clone(),
        labels: desired.labels.clone(),
        annotations: desired.annotations.clone(),
        spec: desired.spec.clone(),
        generation: 1,
        created: now,
        updated: now,
        deletion: None,
        status: None,
    }
}

fn work_subject(key: &WorkKey) -> String {
    format!("work {}/{}", key.cluster, key.name)
}

async fn apply(
    state: &ApiState,
    caller: &Principal,
    desired: DesiredWork,
    create_only: bool,
) -> Result<(ApplyOutcome, WorkRecord), ApiError> {
    require_scope(caller, &desired.key.cluster)?;
    let now = Utc::now();
    state
        .wire
        .check_work(
            &prospective_record(&desired, now),
            WorkEvents::Lifetime,
            now,
        )
        .map_err(|e| {
            ApiError::unpublishable(
                &format!(
                    "{} (its largest spec event, at any later generation and when deleted)",
                    work_subject(&desired.key)
                ),
                &e,
            )
        })?;
    let (outcome, record) = state
        .store
        .write(ApplyWork {
            desired,
            create_only,
            now,
            build: event_builder(state, now),
            actor: Some(caller.name.clone()),
        })
        .await?;
    if outcome != ApplyOutcome::Unchanged {
        state.outbox.notify_one();
        state.watchers.notify(|| WorkChange {
            kind: ChangeKind::Spec,
            object: manifest_work(&record),
        });
        tracing::info!(cluster = %record.key.cluster, name = %record.key.name, generation = record.generation, outcome = outcome.as_str(), actor = %caller.name, "work applied");
    }
    Ok((outcome, record))
}

fn applied_response(outcome: ApplyOutcome, record: &WorkRecord) -> Response {
    let status = if outcome == ApplyOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = (status, Json(manifest_work(record))).into_response();
    resp.headers_mut()
        .insert(OUTCOME_HEADER, HeaderValue::from_static(outcome.as_str()));
    resp
}

/// `POST /api/v1/works`: create (409 when it exists).
pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let work = parse_work(body_format(&headers)?, &body)?;
    let desired = desired_work(work, None, &state.source_id)?;
    let (outcome, record) = apply(&state, &caller, desired, true).await?;
    Ok(applied_response(outcome, &record))
}

/// `PUT /api/v1/clusters/{cluster}/works/{name}`: create or update.
pub async fn put(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((cluster, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_scope(&caller, &cluster)?;
    let work = parse_work(body_format(&headers)?, &body)?;
    let key = WorkKey { cluster, name };
    let desired = desired_work(work, Some(&key), &state.source_id)?;
    let (outcome, record) = apply(&state, &caller, desired, false).await?;
    Ok(applied_response(outcome, &record))
}

/// `GET /api/v1/clusters/{cluster}/works/{name}`.
pub async fn get(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((cluster, name)): Path<(String, String)>,
) -> Result<Json<ManifestWork>, ApiError> {
    require_scope(&caller, &cluster)?;
    let key = WorkKey {
        cluster: cluster.clone(),
        name: name.clone(),
    };
    state
        .store
        .run(move |s| s.get_work(&key))
        .await?
        .map(|w| Json(manifest_work(&w)))
        .ok_or_else(|| ApiError::not_found(format!("work {cluster}/{name} not found")))
}

/// Query of `DELETE /api/v1/clusters/{cluster}/works/{name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Remove the work at once, without the agent's confirmation (its agent is gone
    /// for good). A returning agent is cleaned up by its resync.
    #[serde(default)]
    pub force: bool,
}

/// `DELETE …/works/{name}`: marks the work deleting (202) — it goes once its agent
/// confirms — or, with `force=true`, removes it at once (200, the work as it was).
pub async fn delete(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((cluster, name)): Path<(String, String)>,
    query: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<ManifestWork>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if q.force {
        return force_delete(state, caller, WorkKey { cluster, name }).await;
    }
    require_scope(&caller, &cluster)?;
    let key = WorkKey { cluster, name };
    let now = Utc::now();
    // A work stored by an older version may have a delete event that cannot be
    // published: it would be parked and the work would stay deleting forever.
    let lookup = key.clone();
    if let Some(work) = state.store.run(move |s| s.get_work(&lookup)).await?
        && work.deletion.is_none()
        && let Err(e) = state.wire.check_work(&work, WorkEvents::Deletion, now)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "{} cannot be deleted: its delete event cannot be published over MQTT: {e}; \
                 replace it (PUT) with a version that fits, then delete it",
                work_subject(&key)
            ),
        ));
    }
    let record = state
        .store
        .mark_deleting(MarkDeleting {
            key,
            now,
            build: event_builder(&state, now),
            actor: Some(caller.name.clone()),
        })
        .await?;
    state.outbox.notify_one();
    state.watchers.notify(|| WorkChange {
        kind: ChangeKind::Spec,
        object: manifest_work(&record),
    });
    tracing::info!(cluster = %record.key.cluster, name = %record.key.name, actor = %caller.name, "work marked deleting");
    Ok((StatusCode::ACCEPTED, Json(manifest_work(&record))))
}

/// `delete --force`: the work leaves the hub now. Its delete event is still queued
/// when it was live and the event can be published (a slow agent still gets it).
async fn force_delete(
    state: ApiState,
    caller: Principal,
    key: WorkKey,
) -> Result<(StatusCode, Json<ManifestWork>), ApiError> {
    require_scope(&caller, &key.cluster)?;
    let now = Utc::now();
    let lookup = key.clone();
    let announce = match state.store.run(move |s| s.get_work(&lookup)).await? {
        Some(work) => state
            .wire
            .check_work(&work, WorkEvents::Deletion, now)
            .is_ok(),
        None => false,
    };
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "work.delete",
        Some(&key.cluster),
        json!({"cluster": key.cluster, "name": key.name, "force": true}),
    );
    let record = state
        .store
        .write(Audited {
            write: ForceDeleteWork {
                key,
                now,
                build: event_builder(&state, now),
                actor: Some(caller.name.clone()),
                announce,
            },
            entry,
        })
        .await?;
    state.outbox.notify_one();
    state.watchers.notify(|| WorkChange {
        kind: ChangeKind::Deleted,
        object: manifest_work(&record),
    });
    tracing::warn!(cluster = %record.key.cluster, name = %record.key.name, actor = %caller.name, "work removed without its agent's confirmation (forced)");
    Ok((StatusCode::OK, Json(manifest_work(&record))))
}
