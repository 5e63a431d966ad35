//! `/api/v1/clusters` and `/api/v1/clusters/{name}`: register, list, show and remove
//! managed clusters. A cluster with works cannot be removed (409), so no work is ever
//! left without its cluster. A name must be a DNS-1123 label whose publish topic fits
//! MQTT (422 otherwise).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
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
use crate::store::writes::{Audited, CreateCluster, DeleteCluster};

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

/// `DELETE /api/v1/clusters/{name}`: 409 while the cluster has works.
pub async fn delete(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_scope(&caller, &name)?;
    let target = name.clone();
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "cluster.delete",
        Some(&name),
        json!({"name": name}),
    );
    state
        .store
        .run(move |s| {
            s.write(Audited {
                write: DeleteCluster { name: target },
                entry,
            })
        })
        .await?;
    state.registration.clusters.notify_deleted(&name);
    // A joined cluster's identity is revoked with it: close its connections now.
    let closed = state
        .registration
        .disconnect
        .as_ref()
        .map_or(0, |d| d(&name));
    tracing::info!(cluster = %name, actor = %caller.name, closed, "cluster removed");
    Ok(StatusCode::NO_CONTENT)
}
