//! Reading a submitted ManifestWork exactly as kubectl users write it
//! (`apiVersion: work.open-cluster-management.io/v1`, `kind: ManifestWork`,
//! `metadata.namespace` = cluster) in JSON or YAML, chosen by Content-Type, and turning
//! it into the store's [`DesiredWork`] after validation (names as Kubernetes validates
//! them, namespace, the bundle validator of `workbus_schemas` with its upstream
//! messages).
//!
//! Server-owned metadata in the body (uid, generation, resourceVersion, timestamps) is
//! ignored: the hub assigns it.

use axum::http::{HeaderMap, StatusCode, header};
use workbus_schemas::resource_id::work_resource_id;
use workbus_schemas::topics::{self, SegmentKind};
use workbus_schemas::work::ManifestWork;
use workbus_schemas::work::names::{
    dns1123_label_errors, dns1123_subdomain_errors, label_key_errors, label_value_errors,
    manifest_name_errors,
};

use super::error::ApiError;
use crate::outbox::cut;
use crate::store::{DesiredWork, WorkKey};
use crate::work_view::HUB_ANNOTATION_PREFIX;

/// Body formats the API reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json` (also assumed without a Content-Type).
    Json,
    /// `application/yaml`, `application/x-yaml`, `text/yaml`, `text/x-yaml`.
    Yaml,
}

/// The format named by the request's Content-Type.
pub fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let media = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "text/json" | "" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            Ok(BodyFormat::Yaml)
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "content type {other:?} is not supported; use application/json or application/yaml"
            ),
        )),
    }
}

/// Parses the body into a ManifestWork.
pub fn parse_work(format: BodyFormat, body: &[u8]) -> Result<ManifestWork, ApiError> {
    let value: serde_json::Value = match format {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?,
        BodyFormat::Yaml => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid YAML: {e}")))?,
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("body must be a ManifestWork object"));
    }
    let work: ManifestWork = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("body is not a ManifestWork: {e}")))?;
    // Strict field validation, worded as Kubernetes' (kubectl's default).
    let unknown = workbus_schemas::work::strict::unknown_fields(&work);
    if !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        return Err(ApiError::bad_request(format!(
            "ManifestWork in version \"v1\" cannot be handled as a ManifestWork: strict \
             decoding error: {}",
            fields.join(", ")
        )));
    }
    if work.api_version != ManifestWork::API_VERSION || work.kind != ManifestWork::KIND {
        return Err(ApiError::bad_request(format!(
            "expected apiVersion {:?} and kind {:?}, got {:?} and {:?}",
            ManifestWork::API_VERSION,
            ManifestWork::KIND,
            work.api_version,
            work.kind
        )));
    }
    Ok(work)
}

/// How much of a refused name an error message repeats.
const NAME_IN_ERROR_CHARS: usize = 64;

/// `invalid <what> "<name>": <rule>; <rule>` with the name cut (it may be huge).
fn name_error<E: ToString>(what: &str, name: &str, errors: &[E]) -> ApiError {
    let rules: Vec<String> = errors.iter().map(ToString::to_string).collect();
    ApiError::invalid(format!(
        "invalid {what} {:?} ({} characters): {}",
        cut(name, NAME_IN_ERROR_CHARS),
        name.chars().count(),
        rules.join("; ")
    ))
}

/// Checks a work name: a Kubernetes DNS-1123 subdomain (at most 253 characters).
pub fn check_work_name(name: &str) -> Result<(), ApiError> {
    let errors = dns1123_subdomain_errors(name);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(name_error("metadata.name", name, &errors))
    }
}

/// Checks a cluster name: the namespace of its works, so a Kubernetes DNS-1123 label
/// (at most 63 characters), and an MQTT topic segment (`[a-z0-9-]+`, which every label
/// is; checked too because it is the protocol's rule).
pub fn check_cluster_name(name: &str) -> Result<(), ApiError> {
    let errors = dns1123_label_errors(name);
    if !errors.is_empty() {
        return Err(name_error("cluster name", name, &errors));
    }
    topics::validate_segment(SegmentKind::ClusterName, name)
        .map_err(|e| ApiError::invalid(format!("invalid cluster name {name:?}: {e}")))
}

/// `invalid <field>: <rule>; <rule>` (the field path names the refused value).
fn field_error<E: ToString>(field: &str, errors: &[E]) -> ApiError {
    let rules: Vec<String> = errors.iter().map(ToString::to_string).collect();
    ApiError::invalid(format!("invalid {field}: {}", rules.join("; ")))
}

/// Checks labels as Kubernetes does: keys are qualified names (an optional DNS-1123
/// subdomain prefix and `/`, a name part of at most 63 characters), values empty or at
/// most 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric. `field` is the path of
/// the map in the request (`metadata.labels`, `labels`).
pub fn check_labels(
    field: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<(), ApiError> {
    for (key, value) in labels {
        let shown = cut(key, NAME_IN_ERROR_CHARS);
        let errors = label_key_errors(key);
        if !errors.is_empty() {
            return Err(field_error(&format!("{field} key {shown:?}"), &errors));
        }
        let errors = label_value_errors(value);
        if !errors.is_empty() {
            return Err(field_error(&format!("{field}[{shown:?}]"), &errors));
        }
    }
    Ok(())
}

/// Checks the `metadata.name` and `metadata.namespace` of every manifest (when
/// present): names as Kubernetes validates them for their kind
/// ([`manifest_name_errors`]), namespaces as DNS-1123 labels.
pub fn check_manifest_names(
    manifests: &[serde_json::Map<String, serde_json::Value>],
) -> Result<(), ApiError> {
    for (i, manifest) in manifests.iter().enumerate() {
        fn text(v: Option<&serde_json::Value>) -> &str {
            v.and_then(serde_json::Value::as_str).unwrap_or("")
        }
        let meta = manifest.get("metadata");
        let field = |what: &str| format!("spec.workload.manifests[{i}].metadata.{what}");
        if let Some(name) = meta.and_then(|m| m.get("name")) {
            let Some(name) = name.as_str() else {
                return Err(ApiError::invalid(format!(
                    "invalid {}: must be a string",
                    field("name")
                )));
            };
            let errors = manifest_name_errors(
                text(manifest.get("apiVersion")),
                text(manifest.get("kind")),
                name,
            );
            if !errors.is_empty() {
                return Err(name_error(&field("name"), name, &errors));
            }
        }
        if let Some(namespace) = meta.and_then(|m| m.get("namespace")) {
            let Some(namespace) = namespace.as_str() else {
                return Err(ApiError::invalid(format!(
                    "invalid {}: must be a string",
                    field("namespace")
                )));
            };
            if !namespace.is_empty() {
                let errors = dns1123_label_errors(namespace);
                if !errors.is_empty() {
                    return Err(name_error(&field("namespace"), namespace, &errors));
                }
            }
        }
    }
    Ok(())
}

/// Validates a submitted work and addresses it. `path` is the `{cluster}/{name}` of the
/// URL, when the request has one; the body must agree with it.
pub fn desired_work(
    work: ManifestWork,
    path: Option<&WorkKey>,
    source_id: &str,
) -> Result<DesiredWork, ApiError> {
    let meta = &work.metadata;
    let cluster = match (path, meta.namespace.as_str()) {
        (Some(p), "") => p.cluster.clone(),
        (Some(p), ns) if ns != p.cluster => {
            return Err(ApiError::bad_request(format!(
                "metadata.namespace {ns:?} does not match the cluster {:?} in the URL",
                p.cluster
            )));
        }
        (_, "") => {
            return Err(ApiError::invalid(
                "metadata.namespace is required: it names the target cluster",
            ));
        }
        (_, ns) => ns.to_string(),
    };
    let name = match (path, meta.name.as_str()) {
        (Some(p), "") => p.name.clone(),
        (Some(p), n) if n != p.name => {
            return Err(ApiError::bad_request(format!(
                "metadata.name {n:?} does not match the name {:?} in the URL",
                p.name
            )));
        }
        (_, n) => n.to_string(),
    };
    check_work_name(&name)?;
    check_cluster_name(&cluster)?;
    if meta.extra.contains_key("generateName") {
        return Err(ApiError::invalid("metadata.generateName is not supported"));
    }
    check_labels("metadata.labels", &work.metadata.labels)?;
    work.spec
        .validate()
        .map_err(|e| ApiError::invalid(format!("invalid manifest bundle: {e}")))?;
    check_manifest_names(&work.spec.workload.manifests)?;
    let uid = work_resource_id(source_id, &cluster, &name).to_string();
    Ok(DesiredWork {
        key: WorkKey { cluster, name },
        uid,
        labels: work.metadata.labels.clone(),
        annotations: work
            .metadata
            .annotations
            .iter()
            .filter(|(k, _)| !k.starts_with(HUB_ANNOTATION_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        spec: work.spec,
    })
}
