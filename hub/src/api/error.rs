//! The REST error shape: every 4xx/5xx answer is JSON `{code, reason, message}`
//! (`code` = HTTP status, `reason` = a Kubernetes-style reason such as `NotFound`,
//! `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `UnsupportedMediaType`,
//! `RequestEntityTooLarge`, `Unauthorized`, `Forbidden`). Answers made outside our
//! handlers (axum's own rejections, such as a body over the size limit) are rewritten
//! into this shape by [`json_errors`].

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::outbox::Unpublishable;
use crate::store::StoreError;

/// The JSON body of an error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

impl ApiError {
    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    /// 422 Invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }
    /// 401 Unauthorized (answered with `WWW-Authenticate: Bearer`).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }
    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }
    /// 404 NotFound.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
    /// The answer to a change whose events could never be published over MQTT:
    /// 413 RequestEntityTooLarge when a size limit is broken (the message names the
    /// limit and the measured size), 422 Invalid otherwise. `subject` names what was
    /// refused; `why` is the limit error.
    pub fn unpublishable(subject: &str, why: &Unpublishable) -> Self {
        let message = format!("{subject} cannot be published over MQTT: {why}");
        if why.is_too_large() {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                message,
            )
        } else {
            Self::invalid(message)
        }
    }
    /// Any status and reason.
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "AlreadyExists", e.to_string())
            }
            StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            StoreError::Event(_) => ApiError::invalid(e.to_string()),
            StoreError::Unavailable { .. } => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    e.to_string(),
                )
            }
            StoreError::Corrupt { .. } | StoreError::Backend(_) => {
                tracing::error!(error = %e, "store failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    e.to_string(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::info!(code = self.status.as_u16(), reason = self.reason, message = %self.message, "request rejected");
        }
        let body = ErrorBody {
            code: self.status.as_u16(),
            reason: self.reason.to_string(),
            message: self.message,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"workbus\""),
            );
        }
        resp
    }
}

/// How much of a non-JSON error body [`json_errors`] keeps as the message.
const FOREIGN_MESSAGE_BYTES: usize = 1024;

/// Rewrites an error answer that is not JSON (axum's rejections are plain text: a body
/// over the limit, a wrong method) into the JSON error shape, keeping its status and,
/// as the message, the start of its text.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, FOREIGN_MESSAGE_BYTES * 4)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        crate::outbox::cut(&text, FOREIGN_MESSAGE_BYTES)
    };
    let mut rewritten = ApiError::new(status, reason_of(status), message).into_response();
    // Keep what the original answer said beyond its body (e.g. `Allow` on a 405).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// The reason word of a status our handlers do not make themselves.
fn reason_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        s if s.is_server_error() => "InternalError",
        _ => "BadRequest",
    }
}
