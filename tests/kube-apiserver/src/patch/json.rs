//! # JSON patch (RFC 6902) and JSON merge patch (RFC 7386)
//!
//! `application/json-patch+json` and `application/merge-patch+json`, as the apiserver
//! applies them (evanphx/json-patch): a JSON patch is a list of operations applied in
//! order, the first failing one fails the request with `422`; a merge patch replaces
//! values, merges objects and removes members set to `null`, and replaces lists whole.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The apiserver's cap on operations in one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// RFC 7386.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match target {
                Value::Object(t) => t.clone(),
                _ => Map::new(),
            };
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer {pointer:?} must start with \"/\""))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let i: usize = if valid {
        token
            .parse()
            .map_err(|_| format!("invalid index {token:?}"))?
    } else {
        return Err(format!("invalid index {token:?}"));
    };
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!("index {i} out of bounds"));
    }
    Ok(i)
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Result<&'a Value, String> {
    let mut cur = doc;
    for t in path {
        cur = match cur {
            Value::Object(m) => m.get(t).ok_or_else(|| missing(path))?,
            Value::Array(a) => &a[array_index(t, a.len(), false)?],
            _ => return Err(missing(path)),
        };
    }
    Ok(cur)
}

fn missing(path: &[String]) -> String {
    format!("doc is missing path: \"/{}\"", path.join("/"))
}

fn parent_mut<'a>(doc: &'a mut Value, path: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in &path[..path.len() - 1] {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| missing(path))?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => return Err(missing(path)),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let last = &path[path.len() - 1];
    match parent_mut(doc, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    if path.is_empty() {
        return Err("cannot remove the whole document".into());
    }
    let last = &path[path.len() - 1];
    match parent_mut(doc, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(missing(path)),
    }
}

/// RFC 6902, applied to a copy of `doc`.
pub fn json_patch(doc: &Value, patch: &Value) -> ApiResult<Value> {
    let Value::Array(ops) = patch else {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
        ));
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::too_large(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut doc = doc.clone();
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path_of = |field: &str| -> ApiResult<Vec<String>> {
            let p = op.get(field).and_then(Value::as_str).ok_or_else(|| {
                ApiError::unprocessable(format!("operation missing {field:?} member"))
            })?;
            tokens(p).map_err(ApiError::unprocessable)
        };
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::unprocessable("operation missing \"value\" member"))
        };
        let result: Result<(), String> = match name {
            "add" => add(&mut doc, &path_of("path")?, value()?),
            "remove" => remove(&mut doc, &path_of("path")?).map(|_| ()),
            "replace" => {
                let path = path_of("path")?;
                let v = value()?;
                match get(&doc, &path) {
                    Ok(_) => remove(&mut doc, &path).and_then(|_| add(&mut doc, &path, v)),
                    Err(_) => Err(format!(
                        "replace operation does not apply: doc is missing key: /{}",
                        path.join("/")
                    )),
                }
            }
            "move" => {
                let from = path_of("from")?;
                let path = path_of("path")?;
                remove(&mut doc, &from).and_then(|v| add(&mut doc, &path, v))
            }
            "copy" => {
                let from = path_of("from")?;
                let path = path_of("path")?;
                get(&doc, &from)
                    .cloned()
                    .and_then(|v| add(&mut doc, &path, v))
            }
            "test" => {
                let path = path_of("path")?;
                let expected = value()?;
                match get(&doc, &path) {
                    Ok(v) if *v == expected => Ok(()),
                    _ => Err(format!(
                        "testing value /{} failed: test failed",
                        path.join("/")
                    )),
                }
            }
            other => {
                return Err(ApiError::bad_request(format!("Unexpected kind: {other}")));
            }
        };
        result.map_err(ApiError::unprocessable)?;
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        let p = json!({"a": "z", "c": {"f": null}, "l": [3]});
        assert_eq!(
            merge_patch(&t, &p),
            json!({"a": "z", "c": {"d": "e"}, "l": [3]})
        );
    }

    #[test]
    fn json_patch_ops() {
        let d = json!({"metadata": {"labels": {"a": "1"}}, "l": [1, 2]});
        let p = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "remove", "path": "/l/0"},
            {"op": "add", "path": "/l/-", "value": 9},
            {"op": "test", "path": "/l/1", "value": 9},
            {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
        ]);
        assert_eq!(
            json_patch(&d, &p).unwrap(),
            json!({"metadata": {"labels": {"a": "x", "b/c": "2"}}, "l": [2, 9]})
        );
        let bad = json!([{"op": "remove", "path": "/nope"}]);
        assert_eq!(json_patch(&d, &bad).unwrap_err().code, 422);
        let failed_test = json!([{"op": "test", "path": "/l/0", "value": 5}]);
        assert_eq!(json_patch(&d, &failed_test).unwrap_err().code, 422);
        assert_eq!(json_patch(&d, &json!({})).unwrap_err().code, 400);
    }
}
