//! `/api/v1/clusters` and `/api/v1/clusters/{name}`: register, list, show and remove
//! managed clusters. A cluster with works cannot be removed (409), so no work is ever
//! left without its cluster. A name must be a DNS-1123 label whose publish topic fits
//! MQTT (422 otherwise).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::body::{check_cluster_name, check_labels};
use super::error::ApiError;
use super::guard::require_scope;
use crate::audit::api_record::api_entry;
use crate::auth::Principal;
use crate::store::Cluster;
use crate::store::writes::{
    Audited, CascadeOutcome, CreateCluster, DeleteCluster, DeleteClusterCascade,
};
use crate::watch::{ChangeKind, WorkChange};
use crate::work_view::manifest_work;

/// The body of `POST /api/v1/clusters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCluster {
    /// The cluster name: a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63
    /// characters), as it names the works' namespace and a topic segment.
    pub name: String,
    /// Optional labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `POST /api/v1/clusters`.
pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    body: Result<Json<NewCluster>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Cluster>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    check_cluster_name(&body.name)?;
    check_labels("labels", &body.labels)?;
    require_scope(&caller, &body.name)?;
    state
        .wire
        .check_cluster(&body.name)
        .map_err(|e| ApiError::unpublishable(&format!("cluster {:?}", body.name), &e))?;
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "cluster.create",
        Some(&body.name),
        json!({"name": body.name, "labels": body.labels}),
    );
    let cluster = state
        .store
        .run(move |s| {
            s.write(Audited {
                write: CreateCluster {
                    name: body.name,
                    labels: body.labels,
                    now: Utc::now(),
                },
                entry,
            })
        })
        .await?;
    state.registration.clusters.notify(&cluster);
    tracing::info!(cluster = %cluster.name, actor = %caller.name, "cluster registered");
    Ok((StatusCode::CREATED, Json(cluster)))
}

/// `GET /api/v1/clusters` (a scoped token sees its own clusters only).
pub async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let mut clusters = state.store.run(|s| s.list_clusters()).await?;
    clusters.retain(|c| caller.may_touch(&c.name));
    Ok(Json(json!({ "items": clusters })))
}

/// `GET /api/v1/clusters/{name}`.
pub async fn get(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Cluster>, ApiError> {
    require_scope(&caller, &name)?;
    let lookup = name.clone();
    state
        .store
        .run(move |s| s.get_cluster(&lookup))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("cluster {name:?} not found")))
}

/// Query of `DELETE /api/v1/clusters/{name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteClusterQuery {
    /// Delete the cluster's works too: each is marked deleting (202 while any is left;
    /// repeat the request until 204), or removed at once with `force`.
    #[serde(default)]
    pub cascade: bool,
    /// With `cascade`: remove the works without their agent's confirmation (the agent
    /// is gone for good). A returning agent is cleaned up by its resync.
    #[serde(default)]
    pub force: bool,
}

/// `DELETE /api/v1/clusters/{name}`: 204 once removed; 409 while it has works, unless
/// `cascade=true` (202 with `remainingWorks` until its agent confirmed every deletion;
/// with `force=true` as well, 204 at once).
pub async fn delete(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<Query<DeleteClusterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    require_scope(&caller, &name)?;
    if q.force && !q.cascade {
        return Err(ApiError::bad_request(
            "force applies to the cluster's works: use cascade=true&force=true".to_string(),
        ));
    }
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "cluster.delete",
        Some(&name),
        json!({"name": name, "cascade": q.cascade, "force": q.force}),
    );
    if q.cascade {
        let now = Utc::now();
        let outcome = state
            .store
            .write(Audited {
                write: DeleteClusterCascade {
                    name: name.clone(),
                    force: q.force,
                    now,
                    build: super::works::event_builder(&state, now),
                    actor: Some(caller.name.clone()),
                },
                entry,
            })
            .await?;
        state.outbox.notify_one();
        match outcome {
            CascadeOutcome::Pending { marked, remaining } => {
                state.store.deletion_requests().notify_one();
                for work in &marked {
                    state.watchers.notify(|| WorkChange {
                        kind: ChangeKind::Spec,
                        object: manifest_work(work),
                    });
                }
                tracing::info!(cluster = %name, actor = %caller.name, marked = marked.len(), remaining, "cluster waits for its works' deletion");
                let body = json!({
                    "kind": "Status",
                    "status": "Pending",
                    "remainingWorks": remaining,
                    "message": format!(
                        "cluster {name:?} is removed once its agent confirms the deletion \
                         of its {remaining} work(s); repeat the request to check, or add \
                         force=true if the agent is gone for good"
                    ),
                });
                return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
            }
            CascadeOutcome::Removed { works } => {
                for work in &works {
                    state.watchers.notify(|| WorkChange {
                        kind: ChangeKind::Deleted,
                        object: manifest_work(work),
                    });
                }
                if !works.is_empty() {
                    tracing::warn!(cluster = %name, actor = %caller.name, works = works.len(), "works removed with their cluster without the agent's confirmation (forced)");
                }
            }
        }
    } else {
        let target = name.clone();
        state
            .store
            .run(move |s| {
                s.write(Audited {
                    write: DeleteCluster { name: target },
                    entry,
                })
            })
            .await?;
    }
    state.registration.clusters.notify_deleted(&name);
    // A joined cluster's identity is revoked with it: close its connections now.
    let closed = state
        .registration
        .disconnect
        .as_ref()
        .map_or(0, |d| d(&name));
    tracing::info!(cluster = %name, actor = %caller.name, closed, "cluster removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}
