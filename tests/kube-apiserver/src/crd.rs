//! # CustomResourceDefinitions and custom resources
//!
//! A CRD (`apiextensions.k8s.io/v1`) is validated on write (name `<plural>.<group>`,
//! scope, exactly one storage version, a structural root schema), gets the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer, and is then *established* by
//! a controller (`NamesAccepted` and `Established` conditions, `acceptedNames`,
//! `storedVersions`) — only then are its served versions in discovery and its resources
//! reachable (as on a real cluster, a custom resource created in the same breath as its
//! CRD can meet `404`). Deleting a CRD deletes its custom resources first; while it is
//! terminating new ones are refused (`405`).
//!
//! Custom resources are validated, pruned and defaulted against the version's
//! `openAPIV3Schema`: unknown fields are dropped unless
//! `x-kubernetes-preserve-unknown-fields`, `default`s are filled, `type`, `required`,
//! `enum`, `minimum`/`maximum` and `nullable` are checked (apiextensions' texts). All
//! versions share one storage with conversion `None` (only `apiVersion` changes). Not
//! done: CEL validation rules, webhook conversion, the scale subresource, `format`s.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::error::FieldError;
use crate::meta;
use crate::registry::{CrdVersion, GenerationRule, ResourceType, compare_versions};

/// The finalizer the apiserver puts on every CRD.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    meta::get_path(v, path)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Validation of a CRD object.
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = s(crd, &["spec", "group"]);
    let plural = s(crd, &["spec", "names", "plural"]);
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            &Value::from(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if s(crd, &["spec", "names", "kind"]).is_empty() {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    let name = meta::name(crd);
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &Value::from(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = crd["spec"].get("scope").cloned().unwrap_or(Value::Null);
    if !matches!(scope.as_str(), Some("Namespaced" | "Cluster")) {
        errs.push(FieldError::not_supported(
            "spec.scope",
            &scope,
            &["Cluster", "Namespaced"],
        ));
    }
    let versions = crd["spec"]["versions"].as_array();
    match versions {
        None => errs.push(FieldError::required("spec.versions", "")),
        Some(vs) if vs.is_empty() => errs.push(FieldError::required("spec.versions", "")),
        Some(vs) => {
            let storage = vs
                .iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .count();
            if storage != 1 {
                errs.push(FieldError::invalid(
                    "spec.versions",
                    &Value::from(format!("{storage} storage versions")),
                    "must have exactly one version marked as storage version",
                ));
            }
            for (i, v) in vs.iter().enumerate() {
                if v["name"].as_str().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(format!("spec.versions[{i}].name"), ""));
                }
                match v["schema"].get("openAPIV3Schema") {
                    None => errs.push(FieldError::required(
                        format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        "schemas are required",
                    )),
                    Some(root) => {
                        if root["type"].as_str() != Some("object") {
                            errs.push(FieldError::required(
                                format!("spec.versions[{i}].schema.openAPIV3Schema.type"),
                                "must not be empty at the root",
                            ));
                        }
                    }
                }
            }
        }
    }
    errs
}

/// Defaults of a CRD (`names.singular`, `names.listKind`, `conversion`).
pub fn default(crd: &mut Value) {
    let kind = s(crd, &["spec", "names", "kind"]).to_string();
    if let Some(names) = crd["spec"]["names"].as_object_mut()
        && !kind.is_empty()
    {
        names
            .entry("singular")
            .or_insert_with(|| json!(kind.to_lowercase()));
        names
            .entry("listKind")
            .or_insert_with(|| json!(format!("{kind}List")));
    }
    if let Some(spec) = crd["spec"].as_object_mut() {
        spec.entry("conversion")
            .or_insert_with(|| json!({"strategy": "None"}));
    }
}

/// The CRD's condition of `kind` is `True`.
pub fn condition_true(crd: &Value, kind: &str) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// The status the establishing controller writes, or `None` when it has nothing to do.
pub fn established_status(crd: &Value, now: &str) -> Option<Value> {
    let mut status = crd.get("status").cloned().unwrap_or_else(|| json!({}));
    let storage = storage_version(crd)?;
    let mut changed = false;
    let names = crd["spec"]["names"].clone();
    if status["acceptedNames"] != names {
        status["acceptedNames"] = names;
        changed = true;
    }
    let stored = status["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !stored.iter().any(|v| v.as_str() == Some(&storage)) {
        let mut stored = stored;
        stored.push(json!(storage));
        status["storedVersions"] = Value::Array(stored);
        changed = true;
    }
    if !condition_true(crd, "Established") {
        status["conditions"] = json!([
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ]);
        changed = true;
    }
    changed.then_some(status)
}

/// The storage version's name.
pub fn storage_version(crd: &Value) -> Option<String> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .map(str::to_string)
}

/// The resource types of an established CRD, one per served version.
pub fn resource_types(crd: &Value) -> Vec<Arc<ResourceType>> {
    let Some(storage) = storage_version(crd) else {
        return Vec::new();
    };
    let group = s(crd, &["spec", "group"]).to_string();
    let names = &crd["spec"]["names"];
    let strings = meta::string_list;
    let mut versions: Vec<&Value> = crd["spec"]["versions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| v["served"].as_bool() == Some(true))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by(|a, b| {
        compare_versions(
            b["name"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or(""),
        )
    });
    versions
        .into_iter()
        .map(|v| {
            let status = v["subresources"].get("status").is_some();
            Arc::new(ResourceType {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or("").to_string(),
                plural: names["plural"].as_str().unwrap_or("").to_string(),
                singular: names["singular"].as_str().unwrap_or("").to_string(),
                kind: names["kind"].as_str().unwrap_or("").to_string(),
                namespaced: crd["spec"]["scope"] == "Namespaced",
                verbs: [
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "create",
                    "update",
                    "watch",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                subresources: if status {
                    vec!["status".to_string()]
                } else {
                    Vec::new()
                },
                generation: if status {
                    GenerationRule::AllButMetadataAndStatus
                } else {
                    GenerationRule::AllButMetadata
                },
                returns_deleted_object: false,
                builtin: false,
                stored: true,
                crd: Some(Arc::new(CrdVersion {
                    crd_name: meta::name(crd).to_string(),
                    schema: v["schema"].get("openAPIV3Schema").cloned(),
                    printer_columns: v["additionalPrinterColumns"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    storage_version: storage.clone(),
                })),
            })
        })
        .collect()
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

/// Prunes unknown fields and fills defaults, in place (`structuralpruning`,
/// `structuraldefaulting`).
pub fn prune_and_default(schema: &Value, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let props = schema["properties"].as_object();
    let keep_unknown = preserves(schema);
    root.retain(|k, _| {
        matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
            || keep_unknown
            || props.is_some_and(|p| p.contains_key(k))
    });
    if let Some(props) = props {
        for (k, sub) in props {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(d) = sub.get("default") {
                root.entry(k.clone()).or_insert_with(|| d.clone());
            }
            if let Some(v) = root.get_mut(k) {
                walk(sub, v);
            }
        }
    }
}

fn walk(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if schema["x-kubernetes-embedded-resource"].as_bool() == Some(true) {
                // apiVersion, kind and metadata of an embedded object are kept.
            }
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if props.is_some() || additional.is_some() {
                if !preserves(schema) {
                    let embedded = schema["x-kubernetes-embedded-resource"].as_bool() == Some(true);
                    m.retain(|k, _| {
                        props.is_some_and(|p| p.contains_key(k))
                            || additional.is_some()
                            || (embedded
                                && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                    });
                }
                if let Some(props) = props {
                    for (k, sub) in props {
                        if let Some(d) = sub.get("default") {
                            m.entry(k.clone()).or_insert_with(|| d.clone());
                        }
                        if let Some(child) = m.get_mut(k) {
                            walk(sub, child);
                        }
                    }
                }
                if let Some(add) = additional {
                    let declared: Vec<String> = props
                        .map(|p| p.keys().cloned().collect())
                        .unwrap_or_default();
                    for (k, child) in m.iter_mut() {
                        if !declared.contains(k) {
                            walk(add, child);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    walk(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validation of a custom resource against its version's schema.
pub fn validate_object(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(props) = schema["properties"].as_object() {
        for (k, sub) in props {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(v) = obj.get(k) {
                check(sub, v, k, &mut errs);
            }
        }
    }
    required(schema, obj.as_object(), "", &mut errs);
    errs
}

fn required(
    schema: &Value,
    m: Option<&Map<String, Value>>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for r in schema["required"].as_array().into_iter().flatten() {
        let Some(r) = r.as_str() else { continue };
        if matches!(r, "apiVersion" | "kind" | "metadata") && path.is_empty() {
            continue;
        }
        if m.is_none_or(|m| !m.contains_key(r)) {
            let field = if path.is_empty() {
                r.to_string()
            } else {
                format!("{path}.{r}")
            };
            errs.push(FieldError::required(field, ""));
        }
    }
}

fn check(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if v.is_null() {
        if schema["nullable"].as_bool() != Some(true)
            && let Some(t) = schema["type"].as_str()
        {
            errs.push(FieldError::invalid(
                path,
                &Value::from("null"),
                format!("{path} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    if let Some(t) = schema["type"].as_str() {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            errs.push(FieldError::invalid(
                path,
                &Value::from(actual),
                format!("{path} in body must be of type {t}: \"{actual}\""),
            ));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        let list: Vec<&str> = list.iter().map(String::as_str).collect();
        let mut e = FieldError::not_supported(path, v, &[]);
        e.detail = format!("supported values: {}", list.join(", "));
        errs.push(e);
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema["minimum"].as_f64()
            && n < min
        {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("{path} in body should be greater than or equal to {min}"),
            ));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("{path} in body should be less than or equal to {max}"),
            ));
        }
    }
    match v {
        Value::Object(m) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, sub) in props {
                    if let Some(c) = m.get(k) {
                        check(sub, c, &format!("{path}.{k}"), errs);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, c) in m {
                    if schema["properties"].get(k).is_none() {
                        check(add, c, &format!("{path}[{k}]"), errs);
                    }
                }
            }
            required(schema, Some(m), path, errs);
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(is, item, &format!("{path}[{i}]"), errs);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["size"], "properties": {
                            "size": {"type": "integer", "minimum": 1},
                            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"}}},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}
                ]}
        })
    }

    #[test]
    fn crd_rules_and_types() {
        let mut c = crd();
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        default(&mut c);
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        let status = established_status(&c, "t").unwrap();
        c["status"] = status;
        assert!(condition_true(&c, "Established"));
        assert!(established_status(&c, "t").is_none());
        let types = resource_types(&c);
        assert_eq!(types[0].version, "v1");
        assert!(types[0].has_status());
        assert_eq!(types[1].generation, GenerationRule::AllButMetadata);
        let mut bad = crd();
        bad["metadata"]["name"] = json!("x.example.com");
        assert_eq!(validate(&bad)[0].field, "metadata.name");
    }

    #[test]
    fn pruning_defaults_and_validation() {
        let c = crd();
        let schema = &c["spec"]["versions"][1]["schema"]["openAPIV3Schema"];
        let mut o = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                           "spec": {"size": 2, "junk": 1}, "other": true});
        prune_and_default(schema, &mut o);
        assert_eq!(o["spec"], json!({"size": 2, "color": "red"}));
        assert!(o.get("other").is_none());
        assert!(validate_object(schema, &o).is_empty());
        let bad = json!({"spec": {"size": "x", "color": "green"}});
        let errs: Vec<String> = validate_object(schema, &bad)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errs,
            [
                "spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"",
                "spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
            ]
        );
        let missing = json!({"spec": {}});
        assert_eq!(
            validate_object(schema, &missing)[0].to_string(),
            "spec.size: Required value"
        );
    }
}
