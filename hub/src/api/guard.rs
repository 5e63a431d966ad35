//! The gate every request passes before its handler (see `auth::policy` for the rule):
//!
//! 1. `Host` and `Origin` must be ours (DNS rebinding, cross-site requests: 403);
//! 2. a request with a body (POST, PUT, PATCH) must say it is JSON or YAML (415): a
//!    cross-site HTML form can only send form or text bodies;
//! 3. the caller is the bearer token of the `Authorization` header — never a cookie,
//!    which a browser would attach to a cross-site request — or, for the watch only, a
//!    one-use ticket (`auth::tickets`); missing or unknown: 401;
//! 4. its role must meet the route's need (403); the handler then checks the scope.
//!
//! Tokens are looked up in the store on every request, without a cache, so revoking
//! one takes effect at once. Every answer that leaves the API is an error in the JSON
//! shape or the handler's own ([`super::error::json_errors`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::body::body_format;
use super::error::{ApiError, json_errors};
use crate::auth::policy::{self, Need, WATCH_PATH};
use crate::auth::{Principal, secret};

/// The middleware (installed by [`super::router`] around every route).
pub async fn guard(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let resp = match admit(&state, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    json_errors(resp).await
}

async fn admit(state: &ApiState, req: &mut Request) -> Result<(), ApiError> {
    state
        .hosts
        .check(req.headers())
        .map_err(|e| ApiError::forbidden(e.to_string()))?;
    let method = req.method().clone();
    if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        require_body_type(req.headers())?;
    }
    let need = policy::need(&method, req.uri().path());
    match need {
        Need::Public => return Ok(()),
        Need::LoopbackOrReader if from_loopback(req) => return Ok(()),
        _ => {}
    }
    let digest = credential(state, req)?;
    let principal = state
        .store
        .run(move |s| s.token_by_hash(&digest))
        .await?
        .map(Principal::from)
        .ok_or_else(|| ApiError::unauthorized("the token is unknown or revoked"))?;
    if !need.allows(&principal) {
        return Err(ApiError::forbidden(format!(
            "token {:?} (role {}{}) may not {method} {}",
            principal.name,
            principal.role.as_str(),
            if principal.unscoped() { "" } else { ", scoped" },
            req.uri().path()
        )));
    }
    req.extensions_mut().insert(principal);
    Ok(())
}

/// A body must be declared JSON or YAML (the types `body::body_format` reads); unlike
/// a body read by a handler, a missing Content-Type is refused here.
fn require_body_type(headers: &HeaderMap) -> Result<(), ApiError> {
    if !headers.contains_key(header::CONTENT_TYPE) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "a request with a body needs Content-Type application/json (or a YAML type)",
        ));
    }
    body_format(headers).map(|_| ())
}

fn from_loopback(req: &Request) -> bool {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback())
}

/// The `ticket` query parameter (tickets are base64url: no percent-decoding needed).
fn ticket_of(req: &Request) -> Option<&str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("ticket="))
}

/// The digest of the token the request presents (header, or a redeemed watch ticket).
/// Synchronous: the request (whose body is not `Sync`) is not held across an await.
fn credential(state: &ApiState, req: &Request) -> Result<String, ApiError> {
    Ok(match req.headers().get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().unwrap_or("");
            let token = value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                })?;
            secret::digest(token)
        }
        None => match ticket_of(req) {
            Some(ticket) if req.uri().path() == WATCH_PATH => {
                state.tickets.redeem(ticket).ok_or_else(|| {
                    ApiError::unauthorized("the watch ticket is unknown, spent or expired")
                })?
            }
            _ => {
                return Err(ApiError::unauthorized(
                    "no token: send `Authorization: Bearer <token>`",
                ));
            }
        },
    })
}

/// 403 unless `principal` may touch `cluster` (its scope).
pub fn require_scope(principal: &Principal, cluster: &str) -> Result<(), ApiError> {
    if principal.may_touch(cluster) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "token {:?} is not scoped to cluster {:?}",
            principal.name,
            crate::outbox::cut(cluster, 64)
        )))
    }
}
