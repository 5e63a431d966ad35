//! # Errors as the apiserver writes them: `Status` objects
//!
//! Every failure leaves the server as a `meta/v1` `Status` (`kind: Status`, `status:
//! Failure`, `reason`, `code`, `details`) with apimachinery's message texts
//! (`k8s.io/apimachinery/pkg/api/errors`, `pkg/util/validation/field`), because clients
//! branch on `reason` and `code` (client-go's `IsNotFound`, `IsConflict`, …) and show
//! the message to users.

use serde_json::{Map, Value, json};

use crate::registry::GroupResource;

/// A failed request, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// `Status.reason` (`NotFound`, `Conflict`, …).
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when the apiserver sets it.
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// One field error (`field.Error`), as validation reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
    pub detail: String,
}

/// The field error types this server reports (`field.ErrorType`).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldErrorKind {
    /// `Invalid value: <value>`; the value already rendered as Go prints it.
    Invalid(String),
    Required,
    Forbidden,
    /// `Unsupported value: <value>`.
    NotSupported(String),
    /// `Duplicate value: <value>`.
    Duplicate(String),
    TooLong,
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorKind::Invalid(go_value(value)),
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorKind::Required,
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError {
            kind: FieldErrorKind::NotSupported(go_value(value)),
            field: field.into(),
            detail: format!("supported values: {list}"),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError {
            kind: FieldErrorKind::Duplicate(go_value(value)),
            field: field.into(),
            detail: String::new(),
        }
    }

    fn type_text(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Invalid(_) => "Invalid value",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::NotSupported(_) => "Unsupported value",
            FieldErrorKind::Duplicate(_) => "Duplicate value",
            FieldErrorKind::TooLong => "Too long",
        }
    }

    fn cause_type(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Invalid(_) => "FieldValueInvalid",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::NotSupported(_) => "FieldValueNotSupported",
            FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorKind::TooLong => "FieldValueTooLong",
        }
    }

    /// `field.Error.ErrorBody()`.
    pub fn body(&self) -> String {
        let mut s = match &self.kind {
            FieldErrorKind::Invalid(v)
            | FieldErrorKind::NotSupported(v)
            | FieldErrorKind::Duplicate(v) => format!("{}: {v}", self.type_text()),
            _ => self.type_text().to_string(),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A JSON value the way `field.Error` prints a Go value: strings quoted, numbers and
/// booleans bare, `null` for nil, anything else as JSON.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

fn details(gr: &GroupResource, name: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !gr.group.is_empty() {
        d.insert("group".into(), json!(gr.group));
    }
    // Yes, the apiserver puts the resource into `kind` here.
    d.insert("kind".into(), json!(gr.resource));
    Value::Object(d)
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `NewNotFound`: `configmaps "x" not found`.
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        ApiError::new(404, "NotFound", format!("{gr} {name:?} not found"))
            .with_details(details(gr, name))
    }

    /// An unknown path: `the server could not find the requested resource`.
    pub fn path_not_found() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// `NewAlreadyExists`.
    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{gr} {name:?} already exists"),
        )
        .with_details(details(gr, name))
    }

    /// `NewConflict`: `Operation cannot be fulfilled on configmaps "x": <why>`.
    pub fn conflict(gr: &GroupResource, name: &str, why: impl std::fmt::Display) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {gr} {name:?}: {why}"),
        )
        .with_details(details(gr, name))
    }

    /// A failed precondition (`what` is `UID` or `ResourceVersion`).
    pub fn precondition(
        gr: &GroupResource,
        name: &str,
        what: &str,
        wanted: &str,
        actual: &str,
    ) -> Self {
        ApiError::conflict(
            gr,
            name,
            format!(
                "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
            ),
        )
    }

    /// The optimistic-concurrency conflict of an update with a stale resourceVersion.
    pub fn stale(gr: &GroupResource, name: &str) -> Self {
        ApiError::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `NewApplyConflict`: a server-side apply conflict with its causes.
    pub fn apply_conflict(message: String, causes: Vec<Value>) -> Self {
        ApiError::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
    }

    /// `NewBadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// `NewInvalid`: `Kind.group "name" is invalid: <errors>`.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: Vec<FieldError>) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let message = match errors.len() {
            0 => format!("{qualified} {name:?} is invalid"),
            1 => format!("{qualified} {name:?} is invalid: {}", errors[0]),
            _ => format!(
                "{qualified} {name:?} is invalid: [{}]",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.cause_type(), "message": e.body(), "field": e.field}))
            .collect();
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        d.insert("causes".into(), Value::Array(causes));
        ApiError::new(422, "Invalid", message).with_details(Value::Object(d))
    }

    /// A 422 without the `Invalid` shape (a JSON patch that does not apply, …).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(422, "Invalid", message)
    }

    /// `NewForbidden`: `configmaps "x" is forbidden: <why>`.
    pub fn forbidden(gr: &GroupResource, name: &str, why: impl std::fmt::Display) -> Self {
        ApiError::new(
            403,
            "Forbidden",
            format!("{gr} {name:?} is forbidden: {why}"),
        )
        .with_details(details(gr, name))
    }

    /// `NewMethodNotSupported`.
    pub fn method_not_allowed(gr: &GroupResource, action: &str) -> Self {
        let mut d = details(gr, "");
        if let Some(m) = d.as_object_mut() {
            m.remove("name");
        }
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{action} is not supported on resources of kind {:?}",
                gr.to_string()
            ),
        )
        .with_details(d)
    }

    /// `NewUnsupportedMediaTypeError`.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// `NewNotAcceptableError`.
    pub fn not_acceptable(accepted: &[&str]) -> Self {
        ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
        )
    }

    /// `NewInternalError`.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_details(json!({"causes": [{"message": message.to_string()}]}))
    }

    /// `NewRequestEntityTooLargeError`.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    /// A watch from a resourceVersion older than the kept history (`410 Expired`).
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A `Status` of success (`DELETE` of an object that is gone at once).
pub fn success_status(gr: &GroupResource, name: &str, uid: &str) -> Value {
    let mut d = details(gr, name);
    if let Some(m) = d.as_object_mut() {
        m.insert("uid".into(), json!(uid));
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_apimachinerys() {
        let cm = GroupResource::new("", "configmaps");
        let deploy = GroupResource::new("apps", "deployments");
        assert_eq!(
            ApiError::not_found(&cm, "x").message,
            r#"configmaps "x" not found"#
        );
        assert_eq!(
            ApiError::not_found(&deploy, "x").to_status()["details"],
            json!({"name": "x", "group": "apps", "kind": "deployments"})
        );
        assert_eq!(
            ApiError::stale(&cm, "x").message,
            "Operation cannot be fulfilled on configmaps \"x\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        let e = ApiError::invalid(
            "ConfigMap",
            "",
            "X",
            vec![FieldError::invalid(
                "metadata.name",
                &json!("X"),
                "must be lowercase",
            )],
        );
        assert_eq!(
            e.message,
            r#"ConfigMap "X" is invalid: metadata.name: Invalid value: "X": must be lowercase"#
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["reason"],
            "FieldValueInvalid"
        );
        let two = ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![
                FieldError::required("fieldManager", "is required for apply patch"),
                FieldError::not_supported("dryRun", &json!("x"), &["All"]),
            ],
        );
        assert_eq!(
            two.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: [fieldManager: Required value: is required \
             for apply patch, dryRun: Unsupported value: \"x\": supported values: \"All\"]"
        );
    }
}
