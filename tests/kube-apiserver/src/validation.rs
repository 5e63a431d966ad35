//! # Validation: `422 Invalid` with apimachinery's field errors
//!
//! What the apiserver checks on every object (`ValidateObjectMeta`: name per type,
//! labels, annotations, owner references, finalizers) and the rules of the built-in
//! kinds an agent applies that it is most likely to trip over: workload selectors that
//! must match their template's labels and may not change, containers with names and
//! images, restart policies per workload, Service ports, ConfigMap/Secret keys and
//! `immutable`, RBAC role references. Texts are apimachinery's. This is not the full
//! validation of every field of every kind (see the README).

use serde_json::{Map, Value};
use workbus_schemas::work::names::{dns1123_label_errors, dns1123_subdomain_errors};

use crate::error::FieldError;
use crate::meta;
use crate::registry::ResourceType;

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const DNS1035_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";

fn qualified_name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName`.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let parts: Vec<&str> = value.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return vec![format!(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and \
                 must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  \
                 or '123-abc', regex used for validation is '{QUALIFIED_NAME_FMT}') with an \
                 optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain_errors(p)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    if !name.is_empty() && !qualified_name_part_ok(name) {
        errs.push(format!(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
             and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
             '123-abc', regex used for validation is '{QUALIFIED_NAME_FMT}')"
        ));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !value.is_empty() && !qualified_name_part_ok(value) {
        errs.push(format!(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  \
             or 'my_value',  or '12345', regex used for validation is '{LABEL_VALUE_FMT}')"
        ));
    }
    errs
}

fn dns1035_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if !ok {
        errs.push(format!(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
             with an alphabetic character, and end with an alphanumeric character (e.g. \
             'my-name',  or 'abc-123', regex used for validation is '{DNS1035_FMT}')"
        ));
    }
    errs
}

fn path_segment_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value == "." || value == ".." {
        errs.push(format!("may not be '{value}'"));
    }
    for bad in ["/", "%"] {
        if value.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// The name rule of a type.
pub fn name_errors(rt: &ResourceType, name: &str) -> Vec<String> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => dns1123_label_errors(name)
            .into_iter()
            .map(|e| e.to_string())
            .collect(),
        ("", "Service") => dns1035_errors(name),
        ("rbac.authorization.k8s.io", _) => path_segment_errors(name),
        _ => dns1123_subdomain_errors(name)
            .into_iter()
            .map(|e| e.to_string())
            .collect(),
    }
}

/// `ValidateObjectMeta` and the kind's own rules, for a create.
pub fn validate_create(rt: &ResourceType, obj: &Value) -> Vec<FieldError> {
    let mut errs = object_meta(rt, obj);
    errs.extend(kind_rules(rt, obj));
    errs
}

/// The same plus the update rules (immutable fields).
pub fn validate_update(rt: &ResourceType, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = object_meta(rt, new);
    errs.extend(kind_rules(rt, new));
    errs.extend(update_rules(rt, old, new));
    errs
}

fn object_meta(rt: &ResourceType, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = meta::name(obj);
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for e in name_errors(rt, name) {
            errs.push(FieldError::invalid("metadata.name", &Value::from(name), e));
        }
    }
    for (k, v) in meta::labels(obj) {
        for e in qualified_name_errors(k) {
            errs.push(FieldError::invalid("metadata.labels", &Value::from(k), e));
        }
        for e in label_value_errors(v) {
            errs.push(FieldError::invalid("metadata.labels", &Value::from(v), e));
        }
    }
    let mut total = 0;
    for (k, v) in meta::annotations(obj) {
        total += k.len() + v.len();
        for e in qualified_name_errors(&k.to_lowercase()) {
            errs.push(FieldError::invalid(
                "metadata.annotations",
                &Value::from(k),
                e,
            ));
        }
    }
    if total > 256 * 1024 {
        errs.push(FieldError {
            kind: crate::error::FieldErrorKind::TooLong,
            field: "metadata.annotations".into(),
            detail: "must have at most 262144 bytes".into(),
        });
    }
    for (i, f) in meta::finalizers(obj).iter().enumerate() {
        for e in qualified_name_errors(f) {
            errs.push(FieldError::invalid(
                format!("metadata.finalizers[{i}]"),
                &Value::from(f.as_str()),
                e,
            ));
        }
    }
    let refs = meta::owner_references(obj);
    let mut controllers = 0;
    if let Some(Value::Array(raw)) = meta::metadata(obj).and_then(|m| m.get("ownerReferences")) {
        controllers = raw
            .iter()
            .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .count();
    }
    for r in &refs {
        let f = "metadata.ownerReferences";
        if r.api_version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{f}.apiVersion"),
                &Value::from(""),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(
                format!("{f}.kind"),
                &Value::from(""),
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(
                format!("{f}.name"),
                &Value::from(""),
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(
                format!("{f}.uid"),
                &Value::from(""),
                "uid must not be empty",
            ));
        }
    }
    if controllers > 1 {
        errs.push(FieldError::invalid(
            "metadata.ownerReferences",
            &Value::from(format!("{controllers} controllers")),
            "Only one reference can have Controller set to true",
        ));
    }
    errs
}

/// Go's `%#v` of a `map[string]string`, as selector errors print labels.
fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
                .collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
    }
}

/// Whether a `LabelSelector` (`matchLabels`, `matchExpressions`) selects `labels`.
pub fn selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let ml_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|ml| ml.iter().all(|(k, v)| get(k) == v.as_str()));
    let me_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| {
            exprs.iter().all(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                let values: Vec<&str> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                    "In" => get(key).is_some_and(|v| values.contains(&v)),
                    "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                    "Exists" => get(key).is_some(),
                    "DoesNotExist" => get(key).is_none(),
                    _ => false,
                }
            })
        });
    ml_ok && me_ok
}

fn containers(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let list = spec.get("containers").and_then(Value::as_array);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
        return;
    };
    let mut seen = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(format!("{p}.name"), "")),
            Some(name) => {
                for e in dns1123_label_errors(name) {
                    errs.push(FieldError::invalid(
                        format!("{p}.name"),
                        &Value::from(name),
                        e.to_string(),
                    ));
                }
                if seen.contains(&name) {
                    errs.push(FieldError::duplicate(
                        format!("{p}.name"),
                        &Value::from(name),
                    ));
                }
                seen.push(name);
            }
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required(format!("{p}.image"), ""));
        }
    }
}

fn restart_policy(spec: &Value, path: &str, allowed: &[&str], errs: &mut Vec<FieldError>) {
    let rp = spec.get("restartPolicy").cloned().unwrap_or(Value::Null);
    if !rp.as_str().is_some_and(|r| allowed.contains(&r)) {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            &rp,
            allowed,
        ));
    }
}

fn non_negative(obj: &Value, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = obj["spec"].get(field).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(
            format!("spec.{field}"),
            &Value::from(n),
            "must be greater than or equal to 0",
        ));
    }
}

fn kind_rules(rt: &ResourceType, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if rt.crd.is_some() {
        return errs;
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", kind @ ("Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet")) => {
            let spec = &obj["spec"];
            match spec.get("selector") {
                None => errs.push(FieldError::required("spec.selector", "")),
                Some(sel) => {
                    let empty = sel
                        .get("matchLabels")
                        .and_then(Value::as_object)
                        .is_none_or(|m| m.is_empty())
                        && sel
                            .get("matchExpressions")
                            .and_then(Value::as_array)
                            .is_none_or(|a| a.is_empty());
                    if empty {
                        errs.push(FieldError::invalid(
                            "spec.selector",
                            sel,
                            format!("empty selector is invalid for {}", kind.to_lowercase()),
                        ));
                    } else {
                        let labels = spec["template"]["metadata"]["labels"].as_object();
                        if !selector_matches(sel, labels) {
                            errs.push(FieldError {
                                kind: crate::error::FieldErrorKind::Invalid(go_string_map(labels)),
                                field: "spec.template.metadata.labels".into(),
                                detail: "`selector` does not match template `labels`".into(),
                            });
                        }
                    }
                }
            }
            non_negative(obj, "replicas", &mut errs);
            containers(&spec["template"]["spec"], "spec.template.spec", &mut errs);
            restart_policy(
                &spec["template"]["spec"],
                "spec.template.spec",
                &["Always"],
                &mut errs,
            );
        }
        ("batch", "Job") => {
            containers(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                &mut errs,
            );
            restart_policy(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                &["OnFailure", "Never"],
                &mut errs,
            );
            for f in ["parallelism", "completions", "backoffLimit"] {
                non_negative(obj, f, &mut errs);
            }
        }
        ("batch", "CronJob") if obj["spec"]["schedule"].as_str().is_none_or(str::is_empty) => {
            errs.push(FieldError::required("spec.schedule", ""));
        }
        ("", "Pod") => containers(&obj["spec"], "spec", &mut errs),
        ("", "ConfigMap" | "Secret") => {
            for field in ["data", "binaryData", "stringData"] {
                if let Some(m) = obj.get(field).and_then(Value::as_object) {
                    for k in m.keys() {
                        let ok = !k.is_empty()
                            && k.len() <= 253
                            && k.chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                        if !ok {
                            errs.push(FieldError::invalid(
                                format!("{field}[{k}]"),
                                &Value::from(k.as_str()),
                                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
                                 (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                            ));
                        }
                    }
                }
            }
        }
        ("", "Service") => {
            let spec = &obj["spec"];
            let kind = spec["type"].as_str().unwrap_or("ClusterIP");
            let headless = spec["clusterIP"].as_str() == Some("None");
            let ports = spec["ports"].as_array();
            if kind != "ExternalName" && !headless && ports.is_none_or(|p| p.is_empty()) {
                errs.push(FieldError::required("spec.ports", ""));
            }
            for (i, p) in ports.into_iter().flatten().enumerate() {
                let port = p["port"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    errs.push(FieldError::invalid(
                        format!("spec.ports[{i}].port"),
                        &Value::from(port),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
        ("rbac.authorization.k8s.io", kind @ ("RoleBinding" | "ClusterRoleBinding")) => {
            let rr = &obj["roleRef"];
            let allowed: &[&str] = if kind == "RoleBinding" {
                &["Role", "ClusterRole"]
            } else {
                &["ClusterRole"]
            };
            let k = rr.get("kind").cloned().unwrap_or(Value::Null);
            if !k.as_str().is_some_and(|k| allowed.contains(&k)) {
                errs.push(FieldError::not_supported("roleRef.kind", &k, allowed));
            }
            if rr["name"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required("roleRef.name", ""));
            }
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            for (i, rule) in obj["rules"].as_array().into_iter().flatten().enumerate() {
                if rule["verbs"].as_array().is_none_or(|v| v.is_empty()) {
                    errs.push(FieldError::required(
                        format!("rules[{i}].verbs"),
                        "verbs must contain at least one value",
                    ));
                }
            }
        }
        _ => {}
    }
    errs
}

fn update_rules(rt: &ResourceType, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if rt.crd.is_some() {
        return errs;
    }
    let immutable = |field: &str, path: &[&str], errs: &mut Vec<FieldError>| {
        let (o, n) = (meta::get_path(old, path), meta::get_path(new, path));
        if o != n {
            errs.push(FieldError::invalid(
                field,
                n.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    };
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => {
            immutable("spec.selector", &["spec", "selector"], &mut errs);
            if rt.kind == "StatefulSet" {
                let strip = |v: &Value| {
                    let mut s = v["spec"].clone();
                    if let Some(m) = s.as_object_mut() {
                        for f in [
                            "replicas",
                            "ordinals",
                            "template",
                            "updateStrategy",
                            "persistentVolumeClaimRetentionPolicy",
                            "minReadySeconds",
                        ] {
                            m.remove(f);
                        }
                    }
                    s
                };
                if strip(old) != strip(new) {
                    errs.push(FieldError::forbidden(
                        "spec",
                        "updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                         'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and \
                         'minReadySeconds' are forbidden",
                    ));
                }
            }
        }
        ("batch", "Job") => {
            immutable("spec.selector", &["spec", "selector"], &mut errs);
            immutable("spec.template", &["spec", "template"], &mut errs);
        }
        ("", "ConfigMap" | "Secret") if old["immutable"].as_bool() == Some(true) => {
            for field in ["data", "binaryData"] {
                if old.get(field) != new.get(field) {
                    errs.push(FieldError::forbidden(
                        field,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
            if new["immutable"].as_bool() != Some(true) {
                errs.push(FieldError::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding")
            if old.get("roleRef") != new.get("roleRef") =>
        {
            errs.push(FieldError::invalid(
                "roleRef",
                new.get("roleRef").unwrap_or(&Value::Null),
                "cannot change roleRef",
            ));
        }
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn deployment_rules() {
        let r = Registry::default();
        let d = r.find("apps", "v1", "deployments").unwrap();
        let ok = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}}});
        assert!(
            validate_create(&d, &ok).is_empty(),
            "{:?}",
            validate_create(&d, &ok)
        );
        let mut bad = ok.clone();
        bad["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        let errs = validate_create(&d, &bad);
        assert_eq!(
            errs[0].to_string(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"
        );
        let mut moved = ok.clone();
        moved["spec"]["selector"]["matchLabels"]["x"] = json!("y");
        moved["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        assert_eq!(
            validate_update(&d, &ok, &moved)[0].detail,
            "field is immutable"
        );
    }

    #[test]
    fn names_and_labels() {
        let r = Registry::default();
        let cm = r.find("", "v1", "configmaps").unwrap();
        let o = json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "bad value"}}});
        let errs = validate_create(&cm, &o);
        assert_eq!(errs.len(), 2);
        assert!(errs[0].to_string().starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        assert!(
            errs[1].to_string().starts_with(
                "metadata.labels: Invalid value: \"bad value\": a valid label must be"
            )
        );
        let svc = r.find("", "v1", "services").unwrap();
        assert!(name_errors(&svc, "1abc")[0].starts_with("a DNS-1035 label"));
        assert!(qualified_name_errors("example.com/x").is_empty());
        assert!(!qualified_name_errors("a/b/c").is_empty());
    }
}
