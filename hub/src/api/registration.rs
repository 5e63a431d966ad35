//! The REST side of cluster registration (issue 13):
//!
//! - `POST /api/v1/clusters/{name}/accept` and `/deny` (writer; a scoped token only for
//!   its clusters): accept signs the cluster's pending certificate requests and creates
//!   its lease; deny refuses its identities and closes its connections.
//! - `POST /api/v1/clusters/{name}/labels` `{"set": {..}, "remove": [..]}`.
//! - `/api/v1/clustersets` (list with members, create) and `/api/v1/clustersets/{name}`
//!   (delete; `default` and `global` always exist).
//! - `GET /api/v1/watch/clusters`: server-sent events, one `changed` (or `deleted`) event per cluster
//!   change (joined, accepted, denied, agent status, lease expiry, labels) with
//!   `{"type": "changed"|"deleted", "object": ManagedCluster}`; `lagged` when the watcher fell
//!   behind. A scoped token sees its own clusters only.
//! - `/api/v1/bootstraptokens` (admin, unscoped): create (the secret in this one answer),
//!   list, `DELETE /api/v1/bootstraptokens/{name}` revokes at once.

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
use crate::auth::secret;
use crate::store::Cluster;
use crate::store::registration::{ClusterSelector, ClusterSet, JoinToken};
use crate::store::registration_writes::{
    CreateClusterSet, CreateJoinToken, DeleteClusterSet, LabelCluster, RevokeJoinToken,
};
use crate::store::writes::{AppendAudit, Audited};

/// Default lifetime of a bootstrap token (24 h, like `clusteradm get token`'s).
pub const DEFAULT_BOOTSTRAP_TTL_SECONDS: i64 = 24 * 3600;
/// Longest lifetime of a bootstrap token (30 days).
pub const MAX_BOOTSTRAP_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// `POST /api/v1/clusters/{name}/accept`.
pub async fn accept(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Cluster>, ApiError> {
    require_scope(&caller, &name)?;
    let cluster = state.registration.accept(&name).await?;
    record_api(&state, &caller, "cluster.accept", &name).await?;
    tracing::info!(cluster = %name, actor = %caller.name, "cluster accepted");
    Ok(Json(cluster))
}

/// `POST /api/v1/clusters/{name}/deny`.
pub async fn deny(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Cluster>, ApiError> {
    require_scope(&caller, &name)?;
    let cluster = state.registration.deny(&name).await?;
    record_api(&state, &caller, "cluster.deny", &name).await?;
    tracing::info!(cluster = %name, actor = %caller.name, "cluster denied");
    Ok(Json(cluster))
}

/// Appends the audit record of an accept or deny, once it committed (both run inside
/// `RegistrationContext`, which also answers the agent).
async fn record_api(
    state: &ApiState,
    caller: &Principal,
    action: &str,
    cluster: &str,
) -> Result<(), ApiError> {
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        action,
        Some(cluster),
        json!({"name": cluster}),
    );
    state.store.write(AppendAudit(entry)).await?;
    Ok(())
}

/// The body of `POST /api/v1/clusters/{name}/labels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelChange {
    /// Labels to set.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Labels to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `POST /api/v1/clusters/{name}/labels`.
pub async fn label(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<LabelChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Cluster>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    require_scope(&caller, &name)?;
    check_labels("set", &body.set)?;
    if body.remove.len() > 64 {
        return Err(ApiError::invalid(
            "at most 64 labels may be removed at once",
        ));
    }
    let reg = &state.registration;
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "cluster.label",
        Some(&name),
        json!({"name": name, "set": body.set, "remove": body.remove}),
    );
    let cluster = state
        .store
        .write(Audited {
            write: LabelCluster {
                name,
                set: body.set,
                remove: body.remove,
                now: reg.clock.now(),
                echo: reg.echo.clone(),
            },
            entry,
        })
        .await?;
    state.outbox.notify_one();
    reg.clusters.notify(&cluster);
    Ok(Json(cluster))
}

/// `GET /api/v1/clustersets`: every set with the clusters it selects (those the caller
/// may see).
pub async fn list_sets(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let (sets, clusters) = state
        .store
        .run(|s| Ok((s.list_clustersets()?, s.list_clusters()?)))
        .await?;
    let items: Vec<Value> = sets
        .iter()
        .map(|set| {
            let members: Vec<&str> = clusters
                .iter()
                .filter(|c| caller.may_touch(&c.name) && set.selects(&c.labels))
                .map(|c| c.name.as_str())
                .collect();
            let mut v = serde_json::to_value(set).unwrap_or(Value::Null);
            if let Some(m) = v.as_object_mut() {
                m.insert("clusters".into(), json!(members));
            }
            v
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// The body of `POST /api/v1/clustersets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClusterSet {
    /// Its name (a DNS-1123 label).
    pub name: String,
    /// Select by these labels instead of the exclusive clusterset label.
    #[serde(default, rename = "matchLabels")]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// `POST /api/v1/clustersets`.
pub async fn create_set(
    State(state): State<ApiState>,
    body: Result<Json<NewClusterSet>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ClusterSet>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    check_cluster_name(&body.name)?;
    let selector = match body.match_labels {
        Some(labels) => {
            check_labels("matchLabels", &labels)?;
            ClusterSelector::LabelSelector {
                match_labels: labels,
            }
        }
        None => ClusterSelector::ExclusiveClusterSetLabel,
    };
    let set = state
        .store
        .write(CreateClusterSet(ClusterSet {
            name: body.name,
            selector,
            created: Utc::now(),
        }))
        .await?;
    state.placements.trigger.topology();
    Ok((StatusCode::CREATED, Json(set)))
}

/// `DELETE /api/v1/clustersets/{name}`.
pub async fn delete_set(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.write(DeleteClusterSet(name)).await?;
    state.placements.trigger.topology();
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /api/v1/bootstraptokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewBootstrapToken {
    /// Its name (default `bootstrap-<digest prefix>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Lifetime in seconds (default 24 h, at most 30 days).
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
    /// Accept clusters joining with it at once.
    #[serde(default)]
    pub auto_accept: bool,
}

/// Makes a bootstrap token: the write that stores it and the secret, shown once.
pub fn issue_bootstrap(
    body: NewBootstrapToken,
    created_by: &str,
    now: chrono::DateTime<Utc>,
) -> Result<(CreateJoinToken, String), ApiError> {
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_BOOTSTRAP_TTL_SECONDS);
    if !(1..=MAX_BOOTSTRAP_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::invalid(format!(
            "ttlSeconds must be between 1 and {MAX_BOOTSTRAP_TTL_SECONDS}"
        )));
    }
    let secret = secret::generate().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )
    })?;
    let hash = secret::digest(&secret);
    let name = body
        .name
        .unwrap_or_else(|| format!("bootstrap-{}", &hash[..8]));
    check_cluster_name(&name).map_err(|_| {
        ApiError::invalid(format!(
            "invalid token name {:?}",
            name.chars().take(64).collect::<String>()
        ))
    })?;
    let token = JoinToken {
        name,
        hash,
        expires: now + chrono::Duration::seconds(ttl),
        auto_accept: body.auto_accept,
        revoked: None,
        created: now,
        created_by: created_by.to_owned(),
    };
    Ok((CreateJoinToken(token), secret))
}

/// `POST /api/v1/bootstraptokens`.
pub async fn create_bootstrap_token(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    body: Result<Json<NewBootstrapToken>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (write, secret) = issue_bootstrap(body, &caller.name, state.registration.clock.now())?;
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "bootstraptoken.create",
        None,
        serde_json::to_value(&write.0).unwrap_or(Value::Null),
    );
    let token = state.store.write(Audited { write, entry }).await?;
    tracing::info!(token = %token.name, auto_accept = token.auto_accept, actor = %caller.name, "bootstrap token created");
    let mut answer = serde_json::to_value(&token).unwrap_or(Value::Null);
    if let Some(map) = answer.as_object_mut() {
        map.insert("token".into(), secret.into());
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `GET /api/v1/bootstraptokens`.
pub async fn list_bootstrap_tokens(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let tokens = state.store.run(|s| s.list_join_tokens()).await?;
    Ok(Json(json!({ "items": tokens })))
}

/// `DELETE /api/v1/bootstraptokens/{name}`.
pub async fn revoke_bootstrap_token(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "bootstraptoken.revoke",
        None,
        json!({"name": name}),
    );
    state
        .store
        .write(Audited {
            write: RevokeJoinToken {
                name: name.clone(),
                now: state.registration.clock.now(),
            },
            entry,
        })
        .await?;
    tracing::info!(token = %name, actor = %caller.name, "bootstrap token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/watch/clusters`.
pub async fn watch_clusters(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    use tokio_stream::wrappers::BroadcastStream;
    use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
    let stream =
        BroadcastStream::new(state.registration.clusters.subscribe()).filter_map(move |item| {
            let caller = caller.clone();
            async move {
                match item {
                    Ok(change) if caller.may_touch(&change.object.metadata.name) => {
                        let data = serde_json::to_string(&change).ok()?;
                        Some(Ok(Event::default().event(change.kind).data(data)))
                    }
                    Ok(_) => None,
                    Err(BroadcastStreamRecvError::Lagged(n)) => {
                        Some(Ok(Event::default().event("lagged").data(n.to_string())))
                    }
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
