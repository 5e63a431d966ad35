//! Status feedback (manifestwork-semantics §4): values read from an applied object's
//! live state by `WellKnownStatus` or `JSONPaths` rules and reported in
//! `statusFeedback.values`.
//!
//! Paths use the Kubernetes JSONPath subset the rules are written in, without braces:
//! `.a.b`, `.a[0]`, `.a[*]`, `.a[?(@.type=="X")].b` (see [`crate::jsonpath`]). A path to a missing field yields no value and
//! no error. Scalars become `Integer`/`String`/`Boolean`; anything else becomes `JsonRaw`
//! (Maestro forces `RawFeedbackJsonString` on; so do we), up to a length limit.

use serde_json::Value;

use crate::jsonpath;
use workbus_schemas::work::spec::{FeedbackRule, FeedbackType};
use workbus_schemas::work::{FeedbackValue, FieldValue};

/// Maestro's JsonRaw limit (1 MiB); OCM's default is 1024.
pub const DEFAULT_MAX_JSON_RAW: usize = 1024 * 1024;

/// The well-known status paths per exact group/version/kind (§4.3).
pub fn well_known_paths(
    group: &str,
    version: &str,
    kind: &str,
) -> Option<&'static [(&'static str, &'static str)]> {
    match (group, version, kind) {
        ("apps", "v1", "Deployment") => Some(&[
            ("ReadyReplicas", ".status.readyReplicas"),
            ("Replicas", ".status.replicas"),
            ("AvailableReplicas", ".status.availableReplicas"),
        ]),
        ("apps", "v1", "DaemonSet") => Some(&[
            ("NumberReady", ".status.numberReady"),
            ("DesiredNumberScheduled", ".status.desiredNumberScheduled"),
            ("NumberAvailable", ".status.numberAvailable"),
        ]),
        ("batch", "v1", "Job") => Some(&[
            (
                "JobComplete",
                ".status.conditions[?(@.type==\"Complete\")].status",
            ),
            ("JobSucceeded", ".status.succeeded"),
        ]),
        ("", "v1", "Pod") => Some(&[
            (
                "PodReady",
                ".status.conditions[?(@.type==\"Ready\")].status",
            ),
            ("PodPhase", ".status.phase"),
        ]),
        _ => None,
    }
}

/// The outcome of evaluating a manifest's feedback rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feedback {
    /// Values found, in rule order.
    pub values: Vec<FeedbackValue>,
    /// One message per failed path or rule (values from other paths are still kept).
    pub errors: Vec<String>,
}

/// Evaluates `rules` against `object` (of the given group/version/kind).
pub fn evaluate(
    rules: &[FeedbackRule],
    object: &Value,
    gvk: (&str, &str, &str),
    max_json_raw: usize,
) -> Feedback {
    let mut out = Feedback::default();
    for rule in rules {
        match rule.kind() {
            FeedbackType::WellKnownStatus => match well_known_paths(gvk.0, gvk.1, gvk.2) {
                Some(paths) => {
                    for (name, path) in paths {
                        add(&mut out, name, path, object, max_json_raw);
                    }
                }
                None => out.errors.push(format!(
                    "cannot find the wellknown statuses for resource with gvk {}/{}, Kind={}",
                    gvk.0, gvk.1, gvk.2
                )),
            },
            FeedbackType::JsonPaths => {
                for jp in &rule.json_paths {
                    if !jp.version.is_empty() && jp.version != gvk.1 {
                        out.errors.push(format!(
                            "version set in the path {} is not matched for the related resource",
                            jp.name
                        ));
                        continue;
                    }
                    add(&mut out, &jp.name, &jp.path, object, max_json_raw);
                }
            }
            other => out
                .errors
                .push(format!("unsupported feedback rule type {}", other.as_str())),
        }
    }
    out
}

fn add(out: &mut Feedback, name: &str, path: &str, object: &Value, max_json_raw: usize) {
    let found = match select(object, path) {
        Ok(v) => v,
        Err(e) => {
            out.errors.push(format!("failed to parse path {path}: {e}"));
            return;
        }
    };
    let field_value = match found.as_slice() {
        // A missing field is no value and no error (§4.2), and so is a null.
        [] | [Value::Null] => return,
        [Value::Bool(b)] => FieldValue::Boolean(*b),
        [Value::String(s)] => FieldValue::String(s.clone()),
        [Value::Number(n)] if n.is_i64() => FieldValue::Integer(n.as_i64().unwrap_or_default()),
        // Objects, lists, floats and multiple matches: JsonRaw (RawFeedbackJsonString on,
        // as Maestro runs it).
        [other] => match raw(other, name, max_json_raw) {
            Ok(v) => v,
            Err(e) => return out.errors.push(e),
        },
        many => match raw(
            &Value::Array(many.iter().map(|v| (*v).clone()).collect()),
            name,
            max_json_raw,
        ) {
            Ok(v) => v,
            Err(e) => return out.errors.push(e),
        },
    };
    out.values.push(FeedbackValue {
        name: name.to_string(),
        field_value,
        extra: Default::default(),
    });
}

/// A `JsonRaw` value, or the error when it is longer than the limit.
fn raw(value: &Value, name: &str, max_json_raw: usize) -> Result<FieldValue, String> {
    let raw = value.to_string();
    if raw.len() > max_json_raw {
        return Err(format!(
            "the length of the value for {name} exceeds the limit {max_json_raw}"
        ));
    }
    Ok(FieldValue::JsonRaw(raw))
}

/// Evaluates a Kubernetes JSONPath (braces optional, syntax in [`crate::jsonpath`]) and
/// returns every match, in document order; an empty list when the path leads nowhere.
/// An unsupported path is an error, never a panic.
pub fn select<'v>(root: &'v Value, path: &str) -> Result<Vec<&'v Value>, String> {
    Ok(jsonpath::select(root, &jsonpath::parse(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use workbus_schemas::work::spec::JsonPath;

    fn rule(kind: &str, paths: &[(&str, &str)]) -> FeedbackRule {
        FeedbackRule {
            type_: kind.into(),
            json_paths: paths
                .iter()
                .map(|(n, p)| JsonPath {
                    name: n.to_string(),
                    path: p.to_string(),
                    version: String::new(),
                    extra: Default::default(),
                })
                .collect(),
            extra: Default::default(),
        }
    }

    #[test]
    fn well_known_deployment_and_missing_fields() {
        let obj = json!({"status": {"readyReplicas": 2, "replicas": 3}});
        let f = evaluate(
            &[rule("WellKnownStatus", &[])],
            &obj,
            ("apps", "v1", "Deployment"),
            1024,
        );
        let names: Vec<_> = f.values.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["ReadyReplicas", "Replicas"]);
        assert_eq!(f.values[0].field_value, FieldValue::Integer(2));
        assert!(f.errors.is_empty());
        let f = evaluate(
            &[rule("WellKnownStatus", &[])],
            &obj,
            ("apps", "v1", "StatefulSet"),
            1024,
        );
        assert!(f.values.is_empty());
        assert_eq!(f.errors.len(), 1);
    }

    #[test]
    fn json_paths_filters_and_raw() {
        let obj = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Complete", "status": "False"}], "phase": "Running"}});
        let f = evaluate(
            &[rule(
                "JSONPaths",
                &[
                    ("c", ".status.conditions[?(@.type==\"Complete\")].status"),
                    ("s", ".status"),
                    ("none", ".status.nothing"),
                    ("first", ".status.conditions[0].type"),
                ],
            )],
            &obj,
            ("", "v1", "Pod"),
            1 << 20,
        );
        assert_eq!(f.values[0].field_value, FieldValue::String("False".into()));
        assert!(matches!(f.values[1].field_value, FieldValue::JsonRaw(_)));
        assert_eq!(f.values[2].field_value, FieldValue::String("Ready".into()));
        assert_eq!(f.values.len(), 3, "a missing field yields no value");
        assert!(f.errors.is_empty());
        let tiny = evaluate(
            &[rule("JSONPaths", &[("s", ".status")])],
            &obj,
            ("", "v1", "Pod"),
            4,
        );
        assert!(tiny.values.is_empty());
        assert_eq!(tiny.errors.len(), 1);
    }

    #[test]
    fn bad_paths_are_errors_not_panics() {
        let obj = json!({"a": [1]});
        for p in ["a", ".a[", ".a[x]", ".a[?(bad)]", "..", "", "{}", ".a[1:2]"] {
            assert!(select(&obj, p).is_err(), "{p}");
        }
        assert!(select(&obj, ".b[0].c").unwrap().is_empty());
    }

    #[test]
    fn multiple_matches_filters_and_indexes() {
        let obj = json!({"s": {"c": [
            {"type": "A", "n": 1, "ok": true, "v": "x"},
            {"type": "B", "n": 2, "ok": false, "v": "y]"},
            {"type": "A", "n": 3, "ok": true, "v": "z"}]}, "m": {"a.b": 7}});
        let one = |p: &str| select(&obj, p).unwrap();
        assert_eq!(one(".s.c[?(@.type==\"A\")].n"), [&json!(1), &json!(3)]);
        assert_eq!(one(".s.c[?(@.type!=\"A\")].n"), [&json!(2)]);
        assert_eq!(one(".s.c[?(@.n==2)].type"), [&json!("B")]);
        assert_eq!(one(".s.c[?(@.ok==false)].n"), [&json!(2)]);
        assert_eq!(one(".s.c[?(@.v==\"y]\")].n"), [&json!(2)]);
        assert_eq!(one(".s.c[-1].n"), [&json!(3)]);
        assert_eq!(one(".s.c[*].type").len(), 3);
        assert_eq!(one(".m['a.b']"), [&json!(7)]);
        assert_eq!(one("{.s.c[0].v}"), [&json!("x")]);
        let f = evaluate(
            &[rule(
                "JSONPaths",
                &[("as", ".s.c[?(@.type==\"A\")].n"), ("f", ".s.c[9]")],
            )],
            &obj,
            ("", "v1", "Pod"),
            1024,
        );
        assert_eq!(f.values.len(), 1);
        assert_eq!(f.values[0].field_value, FieldValue::JsonRaw("[1,3]".into()));
    }

    #[test]
    fn version_mismatch_is_an_error_for_that_path_only() {
        let obj = json!({"status": {"replicas": 1}});
        let mut r = rule(
            "JSONPaths",
            &[("a", ".status.replicas"), ("b", ".status.replicas")],
        );
        r.json_paths[1].version = "v2".into();
        let f = evaluate(&[r], &obj, ("apps", "v1", "Deployment"), 1024);
        assert_eq!(f.values.len(), 1);
        assert_eq!(f.errors.len(), 1);
        assert!(f.errors[0].contains("version set in the path b"));
    }
}
