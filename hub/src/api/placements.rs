//! Placements, PlacementDecisions and ManagedClusterSetBindings (issue 14), in OCM's
//! shapes (JSON or YAML bodies, as `kubectl` users write them):
//!
//! | path | methods |
//! |---|---|
//! | `/api/v1/namespaces/{ns}/placements/{name}` | GET, PUT create-or-update, DELETE |
//! | `/api/v1/placements` | GET every namespace (`?namespace=`) |
//! | `/api/v1/namespaces/{ns}/placementdecisions` | GET (`?placement=`) |
//! | `/api/v1/namespaces/{ns}/managedclustersetbindings/{set}` | GET, PUT, DELETE |
//! | `/api/v1/managedclustersetbindings` | GET every namespace (`?namespace=`) |
//! | `/api/v1/watch/placements` | GET server-sent events of decision changes |
//!
//! Placements select among all clusters, so every route here needs an unscoped token
//! (`auth::policy`); writes need a writer. Invalid objects get 422 with the
//! apimachinery field errors; each committed change pokes the placement controller.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use workbus_schemas::placement::names::{API_VERSION_V1BETA1, API_VERSION_V1BETA2, kind};
use workbus_schemas::placement::{
    ManagedClusterSetBinding, Placement, PlacementDecision, validate_binding, validate_placement,
};
use workbus_schemas::selector::FieldError;
use workbus_schemas::work::names::{dns1123_label_errors, dns1123_subdomain_errors};

use super::ApiState;
use super::body::{BodyFormat, body_format, check_labels};
use super::error::ApiError;
use crate::auth::Principal;
use crate::store::placement::ClusterSetBinding;
use crate::store::placement_writes::{
    ApplyPlacement, BindClusterSet, DeletePlacement, UnbindClusterSet,
};

/// `?namespace=` of the cross-namespace lists.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
}

/// `?placement=` of the decision list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    /// Only this Placement's decisions.
    pub placement: Option<String>,
}

/// Parses a JSON or YAML body into `T`, checking `apiVersion` and `kind`.
fn parse<T: DeserializeOwned>(
    format: BodyFormat,
    body: &[u8],
    api_version: &str,
    expected_kind: &str,
) -> Result<T, ApiError> {
    let value: Value = match format {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?,
        BodyFormat::Yaml => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid YAML: {e}")))?,
    };
    let Some(object) = value.as_object() else {
        return Err(ApiError::bad_request(format!(
            "body must be a {expected_kind} object"
        )));
    };
    let text = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default();
    if text("apiVersion") != api_version || text("kind") != expected_kind {
        return Err(ApiError::bad_request(format!(
            "expected apiVersion {api_version:?} and kind {expected_kind:?}, got {:?} and {:?}",
            text("apiVersion"),
            text("kind")
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("body is not a {expected_kind}: {e}")))
}

/// 422 with every field error.
fn field_errors(errors: &[FieldError]) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Err(ApiError::invalid(texts.join("; ")))
}

/// Checks the namespace (a DNS-1123 label) and object name (a DNS-1123 subdomain).
fn check_names(namespace: &str, name: &str) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    for e in dns1123_label_errors(namespace) {
        errors.push(FieldError::Invalid {
            path: "metadata.namespace".into(),
            value: namespace.into(),
            detail: e.to_string(),
        });
    }
    for e in dns1123_subdomain_errors(name) {
        errors.push(FieldError::Invalid {
            path: "metadata.name".into(),
            value: name.into(),
            detail: e.to_string(),
        });
    }
    field_errors(&errors)
}

/// Fills in (or checks) the body's namespace and name from the path.
fn place(
    meta: &mut workbus_schemas::work::ObjectMeta,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    for (field, given, path) in [
        ("metadata.namespace", &mut meta.namespace, ns),
        ("metadata.name", &mut meta.name, name),
    ] {
        if given.is_empty() {
            path.clone_into(given);
        } else if given != path {
            return Err(ApiError::bad_request(format!(
                "{field} {given:?} does not match the path's {path:?}"
            )));
        }
    }
    Ok(())
}

/// `PUT /api/v1/namespaces/{ns}/placements/{name}`: 201 when created, 200 when updated.
pub async fn put_placement(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Placement>), ApiError> {
    let mut placement: Placement = parse(
        body_format(&headers)?,
        &body,
        API_VERSION_V1BETA1,
        kind::PLACEMENT,
    )?;
    check_names(&ns, &name)?;
    place(&mut placement.metadata, &ns, &name)?;
    check_labels("metadata.labels", &placement.metadata.labels)?;
    field_errors(&validate_placement(&placement))?;
    let (record, created) = state
        .store
        .write(ApplyPlacement {
            placement,
            now: Utc::now(),
        })
        .await?;
    state.placements.trigger.placement(&ns, &name);
    tracing::info!(namespace = %ns, placement = %name, generation = record.generation, actor = %caller.name, "placement applied");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record.placement)))
}

/// `GET /api/v1/namespaces/{ns}/placements/{name}`.
pub async fn get_placement(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Placement>, ApiError> {
    let (n, p) = (ns.clone(), name.clone());
    state
        .store
        .run(move |s| s.get_placement(&n, &p))
        .await?
        .map(|r| Json(r.placement))
        .ok_or_else(|| ApiError::not_found(format!("placement {ns}/{name} not found")))
}

/// `DELETE /api/v1/namespaces/{ns}/placements/{name}` (its decisions go with it).
pub async fn delete_placement(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .write(DeletePlacement {
            namespace: ns.clone(),
            name: name.clone(),
        })
        .await?;
    state.placements.trigger.placement(&ns, &name);
    tracing::info!(namespace = %ns, placement = %name, actor = %caller.name, "placement deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/placements[?namespace=]`.
pub async fn list_placements(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let items: Vec<Placement> = state
        .store
        .run(move |s| s.list_placements(q.namespace.as_deref()))
        .await?
        .into_iter()
        .map(|r| r.placement)
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/namespaces/{ns}/placementdecisions[?placement=]`.
pub async fn list_decisions(
    State(state): State<ApiState>,
    Path(ns): Path<String>,
    query: Result<Query<DecisionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let items: Vec<PlacementDecision> = state
        .store
        .run(move |s| match &q.placement {
            Some(p) => s.placement_decisions(&ns, p),
            None => s.list_decisions(Some(&ns)),
        })
        .await?;
    Ok(Json(json!({ "items": items })))
}

/// The bindings as OCM objects, with `Bound` from the sets that exist.
async fn binding_objects(
    state: &ApiState,
    bindings: Vec<ClusterSetBinding>,
) -> Result<Vec<ManagedClusterSetBinding>, ApiError> {
    let sets = state.store.run(|s| s.list_clustersets()).await?;
    Ok(bindings
        .iter()
        .map(|b| b.to_object(sets.iter().any(|s| s.name == b.cluster_set)))
        .collect())
}

/// `PUT /api/v1/namespaces/{ns}/managedclustersetbindings/{set}`: the body is optional
/// (a binding has nothing but its set); when given it must be a valid binding named
/// after its set. 201 when created, 200 when it existed.
pub async fn put_binding(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((ns, set)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ManagedClusterSetBinding>), ApiError> {
    check_names(&ns, &set)?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let mut b: ManagedClusterSetBinding = parse(
            body_format(&headers)?,
            &body,
            API_VERSION_V1BETA2,
            kind::MANAGED_CLUSTER_SET_BINDING,
        )?;
        place(&mut b.metadata, &ns, &set)?;
        field_errors(&validate_binding(&b))?;
    }
    let (binding, created) = state
        .store
        .write(BindClusterSet {
            namespace: ns.clone(),
            cluster_set: set.clone(),
            now: Utc::now(),
        })
        .await?;
    state.placements.trigger.topology();
    tracing::info!(namespace = %ns, clusterset = %set, actor = %caller.name, "cluster set bound");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let object = binding_objects(&state, vec![binding]).await?.remove(0);
    Ok((status, Json(object)))
}

/// `GET /api/v1/namespaces/{ns}/managedclustersetbindings/{set}`.
pub async fn get_binding(
    State(state): State<ApiState>,
    Path((ns, set)): Path<(String, String)>,
) -> Result<Json<ManagedClusterSetBinding>, ApiError> {
    let n = ns.clone();
    let bindings: Vec<ClusterSetBinding> = state
        .store
        .run(move |s| s.list_bindings(Some(&n)))
        .await?
        .into_iter()
        .filter(|b| b.cluster_set == set)
        .collect();
    binding_objects(&state, bindings)
        .await?
        .pop()
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!("managedclustersetbinding {ns}/{set} not found"))
        })
}

/// `DELETE /api/v1/namespaces/{ns}/managedclustersetbindings/{set}`.
pub async fn delete_binding(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path((ns, set)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .write(UnbindClusterSet {
            namespace: ns.clone(),
            cluster_set: set.clone(),
        })
        .await?;
    state.placements.trigger.topology();
    tracing::info!(namespace = %ns, clusterset = %set, actor = %caller.name, "cluster set unbound");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/managedclustersetbindings[?namespace=]`.
pub async fn list_bindings(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let bindings = state
        .store
        .run(move |s| s.list_bindings(q.namespace.as_deref()))
        .await?;
    let items = binding_objects(&state, bindings).await?;
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/watch/placements[?namespace=]`: one `changed` or `deleted` event per
/// Placement whose decisions changed, with `{type, namespace, placement, clusters,
/// decisions}`; `lagged` when the watcher fell behind (re-list then).
pub async fn watch(
    State(state): State<ApiState>,
    query: Result<Query<NamespaceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let stream =
        BroadcastStream::new(state.placements.watchers.subscribe()).filter_map(move |item| {
            let namespace = q.namespace.clone();
            async move {
                match item {
                    Ok(change) => {
                        if namespace.as_deref().is_some_and(|n| n != change.namespace) {
                            return None;
                        }
                        let data = serde_json::to_string(&change).ok()?;
                        Some(Ok(Event::default().event(change.kind).data(data)))
                    }
                    Err(BroadcastStreamRecvError::Lagged(n)) => {
                        Some(Ok(Event::default().event("lagged").data(n.to_string())))
                    }
                }
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
