//! The ManifestWorkReplicaSet endpoints (issue 14): list, create, get, create-or-update,
//! delete, approve, abort, and the SSE watch of rollout transitions. Bodies are the
//! OCM YAML/JSON users write (`work.open-cluster-management.io/v1alpha1`). A change is
//! one store write; the rollout controller is kicked and writes the per-cluster works
//! (one transaction per reconcile, not one request per cluster).
//!
//! A replica set reaches many clusters, so changing one needs an unscoped token;
//! reading needs a reader token like any GET (the status holds counts, no cluster
//! names); the watch shows a scoped token the transitions of its clusters only.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use workbus_schemas::replicaset::{GroupGate, ManifestWorkReplicaSet, names};
use workbus_schemas::work::ObjectMeta;
use workbus_schemas::work::names::{dns1123_label_errors, dns1123_subdomain_errors};

use super::ApiState;
use super::body::{BodyFormat, body_format};
use super::error::ApiError;
use super::works::OUTCOME_HEADER;
use crate::auth::Principal;
use crate::outbox::WorkEvents;
use crate::rollout::overrides::validate;
use crate::rollout::strategy::Strategy;
use crate::source::spec_events::change_builder;
use crate::store::replicaset::{ReplicaSetKey, ReplicaSetRecord};
use crate::store::replicaset_writes::{
    AbortRollout, ApplyReplicaSet, ApproveRollout, DeleteReplicaSet,
};
use crate::store::{ApplyOutcome, WorkKey, WorkRecord};

fn require_unscoped(caller: &Principal) -> Result<(), ApiError> {
    if caller.unscoped() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "token {:?} is scoped to some clusters; a ManifestWorkReplicaSet reaches any cluster its placements select",
            caller.name
        )))
    }
}

fn key(ns: String, name: String) -> ReplicaSetKey {
    ReplicaSetKey {
        namespace: ns,
        name,
    }
}

fn list_body(items: Vec<ManifestWorkReplicaSet>) -> Json<serde_json::Value> {
    Json(json!({
        "apiVersion": names::API_VERSION,
        "kind": names::LIST_KIND,
        "metadata": {},
        "items": items,
    }))
}

/// `GET /api/v1/manifestworkreplicasets`.
pub async fn list_all(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let list = state.store.run(|s| s.list_replica_sets(None)).await?;
    Ok(list_body(
        list.iter().map(ReplicaSetRecord::object).collect(),
    ))
}

/// `GET /api/v1/namespaces/{ns}/manifestworkreplicasets`.
pub async fn list(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = state
        .store
        .run(move |s| s.list_replica_sets(Some(&ns)))
        .await?;
    Ok(list_body(
        list.iter().map(ReplicaSetRecord::object).collect(),
    ))
}

/// `GET /api/v1/namespaces/{ns}/manifestworkreplicasets/{name}`.
pub async fn get(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<ManifestWorkReplicaSet>, ApiError> {
    let k = key(ns, name);
    let lookup = k.clone();
    state
        .store
        .run(move |s| s.get_replica_set(&lookup))
        .await?
        .map(|r| Json(r.object()))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "manifestworkreplicaset {}/{} not found",
                k.namespace, k.name
            ))
        })
}

/// Parses and checks a submitted replica set: kind, names, at least one placementRef,
/// rollout values, overrides, the template's manifests (the bundle rules), and that its
/// spec events fit MQTT for any cluster name.
pub fn parse_replica_set(
    state: &ApiState,
    format: BodyFormat,
    body: &[u8],
    path: Option<&ReplicaSetKey>,
) -> Result<ManifestWorkReplicaSet, ApiError> {
    let value: serde_json::Value = match format {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?,
        BodyFormat::Yaml => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid YAML: {e}")))?,
    };
    let mut rs: ManifestWorkReplicaSet = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("body is not a ManifestWorkReplicaSet: {e}")))?;
    if rs.api_version != names::API_VERSION || rs.kind != names::KIND {
        return Err(ApiError::bad_request(format!(
            "expected apiVersion {:?} and kind {:?}, got {:?} and {:?}",
            names::API_VERSION,
            names::KIND,
            rs.api_version,
            rs.kind
        )));
    }
    if let Some(k) = path {
        for (what, given, want) in [
            ("namespace", &mut rs.metadata.namespace, &k.namespace),
            ("name", &mut rs.metadata.name, &k.name),
        ] {
            if given.is_empty() {
                *given = want.clone();
            } else if given != want {
                return Err(ApiError::invalid(format!(
                    "metadata.{what} {given:?} does not match the path's {want:?}"
                )));
            }
        }
    }
    let meta = &rs.metadata;
    if meta.namespace.is_empty() {
        return Err(ApiError::invalid("metadata.namespace is required"));
    }
    if let Some(e) = dns1123_label_errors(&meta.namespace).first() {
        return Err(ApiError::invalid(format!(
            "metadata.namespace {:?}: {e}",
            meta.namespace
        )));
    }
    if let Some(e) = dns1123_subdomain_errors(&meta.name).first() {
        return Err(ApiError::invalid(format!(
            "metadata.name {:?}: {e}",
            meta.name
        )));
    }
    if rs.spec.placement_refs.is_empty() {
        return Err(ApiError::invalid(
            "spec.placementRefs must name at least one Placement",
        ));
    }
    for (i, r) in rs.spec.placement_refs.iter().enumerate() {
        if r.name.is_empty() {
            return Err(ApiError::invalid(format!(
                "spec.placementRefs[{i}].name is required"
            )));
        }
        Strategy::parse(&r.rollout_strategy).map_err(|e| {
            ApiError::invalid(format!("spec.placementRefs[{i}].rolloutStrategy: {e}"))
        })?;
    }
    validate(&rs.spec.overrides).map_err(|e| ApiError::invalid(format!("spec.{e}")))?;
    rs.spec
        .manifest_work_template
        .validate()
        .map_err(|e| ApiError::invalid(format!("spec.manifestWorkTemplate: {e}")))?;
    // Every work the replica set makes must be publishable: measured with the longest
    // cluster name there can be.
    let now = Utc::now();
    let longest = "c".repeat(63);
    let prospective = WorkRecord {
        uid: uuid::Uuid::nil().to_string(),
        key: WorkKey {
            cluster: longest,
            name: meta.name.clone(),
        },
        labels: [
            (
                names::REPLICA_SET_LABEL.to_string(),
                names::owner_label_value(&meta.namespace, &meta.name),
            ),
            (names::PLACEMENT_LABEL.to_string(), "p".repeat(253)),
        ]
        .into_iter()
        .chain(meta.labels.clone())
        .collect(),
        annotations: Default::default(),
        spec: rs.spec.manifest_work_template.clone(),
        generation: 1,
        created: now,
        updated: now,
        deletion: None,
        status: None,
    };
    state
        .wire
        .check_work(&prospective, WorkEvents::Lifetime, now)
        .map_err(|e| ApiError::unpublishable("the works of this manifestworkreplicaset", &e))?;
    Ok(rs)
}

async fn apply(
    state: &ApiState,
    caller: &Principal,
    rs: ManifestWorkReplicaSet,
    create_only: bool,
) -> Result<Response, ApiError> {
    require_unscoped(caller)?;
    let k = key(rs.metadata.namespace.clone(), rs.metadata.name.clone());
    let ObjectMeta { labels, .. } = rs.metadata;
    let (outcome, record) = state
        .store
        .write(ApplyReplicaSet {
            key: k.clone(),
            labels,
            spec: rs.spec,
            create_only,
            now: Utc::now(),
        })
        .await?;
    if outcome != ApplyOutcome::Unchanged {
        state.rollouts.kick(k.clone());
        tracing::info!(namespace = %k.namespace, name = %k.name, generation = record.generation, outcome = outcome.as_str(), actor = %caller.name, "manifestworkreplicaset applied");
    }
    let status = if outcome == ApplyOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = (status, Json(record.object())).into_response();
    resp.headers_mut()
        .insert(OUTCOME_HEADER, HeaderValue::from_static(outcome.as_str()));
    Ok(resp)
}

/// `POST /api/v1/namespaces/{ns}/manifestworkreplicasets`: create (409 when it exists).
pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut rs = parse_replica_set(&state, body_format(&headers)?, &body, None)?;
    if rs.metadata.namespace.is_empty() {
        rs.metadata.namespace = ns.clone();
    }
    if rs.metadata.namespace != ns {
        return Err(ApiError::invalid(format!(
            "metadata.namespace {:?} does not match the path's {ns:?}",
            rs.metadata.namespace
        )));
    }
    apply(&state, &caller, rs, true).await
}

/// `PUT /api/v1/namespaces/{ns}/manifestworkreplicasets/{name}`: create or update.
pub async fn put(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let k = key(ns, name);
    let rs = parse_replica_set(&state, body_format(&headers)?, &body, Some(&k))?;
    apply(&state, &caller, rs, false).await
}

/// `DELETE /api/v1/namespaces/{ns}/manifestworkreplicasets/{name}`: marks its works
/// deleting; 200 when the replica set is gone, 202 while a `Foreground` deletion waits.
pub async fn delete(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<ManifestWorkReplicaSet>), ApiError> {
    require_unscoped(&caller)?;
    let k = key(ns, name);
    let now = Utc::now();
    let deleted = state
        .store
        .write(DeleteReplicaSet {
            key: k.clone(),
            now,
            build: change_builder(state.wire.clone(), now),
            actor: Some(caller.name.clone()),
        })
        .await?;
    if !deleted.works.is_empty() {
        state.outbox.notify_one();
        state.store.deletion_requests().notify_one();
    }
    for w in &deleted.works {
        state.watchers.notify(|| crate::watch::WorkChange {
            kind: crate::watch::ChangeKind::Spec,
            object: crate::work_view::manifest_work(w),
        });
    }
    state.rollouts.kick(k.clone());
    tracing::info!(namespace = %k.namespace, name = %k.name, works = deleted.works.len(), gone = deleted.gone, actor = %caller.name, "manifestworkreplicaset deleted");
    let code = if deleted.gone {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((code, Json(deleted.record.object())))
}

/// Body of `approve`: optionally the gate (default: the one the rollout awaits).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveBody {
    /// The placement of the gate.
    pub placement: Option<String>,
    /// The group index of the gate.
    pub group_index: Option<i32>,
}

/// `POST …/{name}/approve`: approves the awaited gate (409 when none is awaited).
pub async fn approve(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_unscoped(&caller)?;
    let b: ApproveBody = if body.is_empty() {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?
    };
    let gate = match (b.placement, b.group_index) {
        (Some(placement), Some(group_index)) => Some(GroupGate {
            placement,
            group_index,
            group_name: String::new(),
        }),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "give both placement and groupIndex, or neither",
            ));
        }
    };
    let k = key(ns, name);
    let approved = state
        .store
        .write(ApproveRollout {
            key: k.clone(),
            gate,
        })
        .await?;
    state.rollouts.kick(k.clone());
    tracing::info!(namespace = %k.namespace, name = %k.name, placement = %approved.placement, group = approved.group_index, actor = %caller.name, "rollout approved");
    Ok(Json(json!({"approved": approved})))
}

/// `POST …/{name}/abort`: stops the rollout (no new cluster starts).
pub async fn abort(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<ManifestWorkReplicaSet>, ApiError> {
    require_unscoped(&caller)?;
    let k = key(ns, name);
    let rs = state
        .store
        .write(AbortRollout {
            key: k.clone(),
            actor: caller.name.clone(),
            now: Utc::now(),
        })
        .await?;
    state.rollouts.kick(k.clone());
    tracing::info!(namespace = %k.namespace, name = %k.name, actor = %caller.name, "rollout aborted");
    Ok(Json(rs.object()))
}

/// Query of the rollout watch.
#[derive(Debug, Default, Deserialize)]
pub struct WatchQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this replica set (with `namespace`).
    pub name: Option<String>,
    /// A one-use ticket instead of the `Authorization` header (read by `api::guard`).
    pub ticket: Option<String>,
}

/// `GET /api/v1/watch/replicasets`: one SSE event per rollout transition (event name
/// `cluster` or `phase`, data a `RolloutEvent`); `lagged` when the watcher fell behind.
pub async fn watch(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let stream = BroadcastStream::new(state.rollout_events.subscribe()).filter_map(move |item| {
        let ns = q.namespace.clone();
        let name = q.name.clone();
        let caller = caller.clone();
        async move {
            match item {
                Ok(e) => {
                    // A scoped token sees the transitions of its own clusters only.
                    if ns.as_deref().is_some_and(|n| n != e.namespace)
                        || name.as_deref().is_some_and(|n| n != e.name)
                        || e.cluster.as_deref().is_some_and(|c| !caller.may_touch(c))
                    {
                        return None;
                    }
                    let kind = match e.kind {
                        crate::rollout::events::RolloutEventKind::Cluster => "cluster",
                        crate::rollout::events::RolloutEventKind::Phase => "phase",
                    };
                    let data = serde_json::to_string(&e).ok()?;
                    Some(Ok(Event::default().event(kind).data(data)))
                }
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Ok(Event::default().event("lagged").data(n.to_string())))
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
