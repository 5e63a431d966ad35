//! The REST error shape: every 4xx/5xx answer is JSON `{code, reason, message}`
//! (`code` = HTTP status, `reason` = a Kubernetes-style reason such as `NotFound`,
//! `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `UnsupportedMediaType`,
//! `RequestEntityTooLarge`).

use axum::Json;
use axum::http::StatusCode;
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
        (self.status, Json(body)).into_response()
    }
}
