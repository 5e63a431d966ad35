//! # Secret values out of audit copies
//!
//! The audit log keeps every event the hub sent or received, and spec events carry
//! manifests — Secrets among them. Before an event is stored in the audit log, every
//! Kubernetes Secret in it (any JSON object with `"kind": "Secret"` and a core
//! `apiVersion` of `v1`, wherever it is nested) has each value of its `data` and
//! `stringData` maps replaced with a keyed digest (HMAC-SHA256 under the key file's
//! digest key, [`Keyring::digest`](super::keyring::Keyring::digest)). The keys stay, so
//! the log still shows *which* entries changed and a holder of the key can prove
//! *what* a value was; nobody reading the log learns it.
//!
//! Pure functions: the digest comes in as a closure.

use serde_json::Value;

/// Whether `object` is a core `v1` Secret.
fn is_secret(object: &serde_json::Map<String, Value>) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Replaces the values of every Secret's `data` and `stringData` in `value` with
/// `digest(value)`; returns how many values were replaced.
pub fn redact_secrets(value: &mut Value, digest: &dyn Fn(&[u8]) -> String) -> usize {
    // An explicit stack: hostile nesting depth cannot overflow the thread's stack.
    let mut replaced = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(object) => {
                if is_secret(object) {
                    for field in ["data", "stringData"] {
                        if let Some(Value::Object(entries)) = object.get_mut(field) {
                            for entry in entries.values_mut() {
                                *entry = Value::String(digest(&value_bytes(entry)));
                                replaced += 1;
                            }
                        }
                    }
                }
                stack.extend(object.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    replaced
}

/// The bytes a value is digested over: a string's text, anything else its JSON.
fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

/// [`redact_secrets`] over a JSON text; text that is not JSON is returned unchanged
/// (it carries no object to redact), and so is JSON without Secrets.
pub fn redact_json_text(text: &str, digest: &dyn Fn(&[u8]) -> String) -> String {
    // Cheap pre-check: no Secret kind in the text, nothing to do.
    if !text.contains("\"Secret\"") {
        return text.to_string();
    }
    match serde_json::from_str::<Value>(text) {
        Ok(mut value) => {
            if redact_secrets(&mut value, digest) == 0 {
                return text.to_string();
            }
            serde_json::to_string(&value).unwrap_or_else(|_| text.to_string())
        }
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(v: &[u8]) -> String {
        format!("D({})", String::from_utf8_lossy(v))
    }

    #[test]
    fn secrets_lose_their_values_and_keep_their_keys() {
        let mut event = json!({"data": {"spec": {"workload": {"manifests": [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
             "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t0k"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "visible"}},
            {"apiVersion": "example.com/v1", "kind": "Secret", "data": {"k": "not core"}}
        ]}}}});
        assert_eq!(redact_secrets(&mut event, &d), 2);
        let m = &event["data"]["spec"]["workload"]["manifests"];
        assert_eq!(m[0]["data"]["password"], "D(aHVudGVyMg==)");
        assert_eq!(m[0]["stringData"]["token"], "D(t0k)");
        assert_eq!(m[0]["metadata"]["name"], "s");
        assert_eq!(m[1]["data"]["k"], "visible");
        assert_eq!(m[2]["data"]["k"], "not core");
    }

    #[test]
    fn text_without_secrets_or_json_is_unchanged() {
        assert_eq!(redact_json_text("{\"a\":1}", &d), "{\"a\":1}");
        assert_eq!(redact_json_text("\"Secret\" {", &d), "\"Secret\" {");
        let deep = format!("{}\"Secret\"{}", "[".repeat(100_000), "]".repeat(100_000));
        // too deep for serde_json: returned unchanged, no crash
        assert_eq!(redact_json_text(&deep, &d), deep);
    }
}
