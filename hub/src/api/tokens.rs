//! `/api/v1/tokens` (admin only, see `auth::policy`): create a token (its secret is in
//! this one answer and never again), list tokens (never their secrets), revoke one
//! (at once: the next request with it is refused).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use crate::audit::api_record::api_entry;
use crate::auth::Principal;
use crate::auth::tokens::{TokenError, TokenRequest, issue};
use crate::store::writes::{Audited, RevokeToken};
use crate::store::{ApiToken, Role};

/// The body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Its name (default `<role>-<random>`).
    #[serde(default)]
    pub name: Option<String>,
    /// `admin`, `writer` or `reader`.
    pub role: Role,
    /// The clusters it may touch (default: every cluster).
    #[serde(default)]
    pub clusters: Option<Vec<String>>,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(m) => ApiError::invalid(m),
            TokenError::Store(s) => s.into(),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                other.to_string(),
            ),
        }
    }
}

fn shown(t: &ApiToken) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// `POST /api/v1/tokens`.
pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let request = TokenRequest {
        name: body.name,
        role: body.role,
        clusters: body.clusters,
    };
    let (write, secret) = issue(request, &caller.name, Utc::now())?;
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "token.create",
        None,
        shown(&write.0),
    );
    let token = state.store.write(Audited { write, entry }).await?;
    tracing::info!(token = %token.name, role = token.role.as_str(), actor = %caller.name, "API token created");
    let mut answer = shown(&token);
    if let Some(map) = answer.as_object_mut() {
        map.insert("token".into(), secret.into());
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `GET /api/v1/tokens`.
pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let tokens = state.store.run(|s| s.list_tokens()).await?;
    let items: Vec<Value> = tokens.iter().map(shown).collect();
    Ok(Json(json!({ "items": items })))
}

/// `DELETE /api/v1/tokens/{name}`.
pub async fn revoke(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let entry = api_entry(
        &state.source_id,
        &caller.name,
        "token.revoke",
        None,
        json!({"name": name}),
    );
    state
        .store
        .write(Audited {
            write: RevokeToken { name: name.clone() },
            entry,
        })
        .await?;
    tracing::info!(token = %name, actor = %caller.name, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
