//! # Strategic merge patch (`application/strategic-merge-patch+json`)
//!
//! Built-in kinds only (the apiserver answers `415` for custom resources). A JSON merge
//! patch, except that lists whose Go field carries `patchStrategy:"merge"` are merged:
//! objects by their `patchMergeKey` (containers by `name`, ports by `containerPort`,
//! owner references by `uid`, …), scalars as a union (finalizers). The directives of
//! `k8s.io/apimachinery/pkg/util/strategicpatch` are honoured: `$patch: replace | delete |
//! merge` (in maps and as list items), `$retainKeys`, `$deleteFromPrimitiveList/<field>`
//! and `$setElementOrder/<field>` (the patch's items take the listed order among
//! themselves; items only on the server keep their places).

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::schema::{SmpList, TypeSchema};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies `patch` to `original`.
pub fn strategic_merge(original: &Value, patch: &Value, schema: &TypeSchema) -> ApiResult<Value> {
    let Value::Object(p) = patch else {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal array into Go value of type map[string]interface {}",
        ));
    };
    let o = original.as_object().cloned().unwrap_or_default();
    let mut names = Vec::new();
    Ok(merge_map(o, p, &mut names, schema)?
        .map(Value::Object)
        .unwrap_or_else(|| Value::Object(Map::new())))
}

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE
        || k == RETAIN_KEYS
        || k.starts_with(DELETE_FROM_PRIMITIVE)
        || k.starts_with(SET_ELEMENT_ORDER)
}

/// Merges a patch map into an original map; `None`: the map is deleted.
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    names: &mut Vec<String>,
    schema: &TypeSchema,
) -> ApiResult<Option<Map<String, Value>>> {
    match patch.get(DIRECTIVE) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "delete" => return Ok(None),
        Some(Value::String(d)) if d == "replace" => {
            let mut out = Map::new();
            for (k, v) in patch {
                if !is_directive_key(k) {
                    out.insert(k.clone(), strip_directives(v));
                }
            }
            return Ok(Some(out));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Unknown patch type: {other} in map: {}",
                Value::Object(patch.clone())
            )));
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(keys) = retain else {
            return Err(ApiError::bad_request(
                "invalid patch: $retainKeys must be a list",
            ));
        };
        let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        original.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE) {
            let Value::Array(remove) = v else {
                return Err(ApiError::bad_request(
                    "invalid patch: $deleteFromPrimitiveList must be a list",
                ));
            };
            if let Some(Value::Array(items)) = original.get_mut(field) {
                items.retain(|i| !remove.contains(i));
            }
        }
    }
    for (k, pv) in patch {
        if is_directive_key(k) {
            continue;
        }
        if pv.is_null() {
            original.remove(k);
            continue;
        }
        names.push(k.clone());
        let merged = match (original.remove(k), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                merge_map(o, p, names, schema)?.map(Value::Object)
            }
            (None, Value::Object(p)) => merge_map(Map::new(), p, names, schema)?.map(Value::Object),
            (Some(Value::Array(o)), Value::Array(p)) => Some(merge_list(o, p, names, schema)?),
            (None, Value::Array(p)) => Some(merge_list(Vec::new(), p, names, schema)?),
            (_, p) => Some(strip_directives(p)),
        };
        names.pop();
        if let Some(v) = merged {
            original.insert(k.clone(), v);
        }
    }
    for (k, order) in patch {
        if let Some(field) = k.strip_prefix(SET_ELEMENT_ORDER) {
            let Value::Array(order) = order else {
                return Err(ApiError::bad_request(
                    "invalid patch: $setElementOrder must be a list",
                ));
            };
            names.push(field.to_string());
            let rule = schema.smp_list(&names.iter().map(String::as_str).collect::<Vec<_>>());
            names.pop();
            if let Some(Value::Array(items)) = original.get_mut(field) {
                reorder(items, order, &rule);
            }
        }
    }
    Ok(Some(original))
}

fn merge_list(
    mut original: Vec<Value>,
    patch: &[Value],
    names: &mut [String],
    schema: &TypeSchema,
) -> ApiResult<Value> {
    let rule = schema.smp_list(&names.iter().map(String::as_str).collect::<Vec<_>>());
    match rule {
        SmpList::Replace => Ok(Value::Array(patch.iter().map(strip_directives).collect())),
        SmpList::MergePrimitives => {
            for p in patch {
                if !original.contains(p) {
                    original.push(p.clone());
                }
            }
            Ok(Value::Array(original))
        }
        SmpList::MergeByKey(key) => {
            if patch
                .iter()
                .any(|p| p.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"))
            {
                return Ok(Value::Array(
                    patch
                        .iter()
                        .filter(|p| p.get(DIRECTIVE).is_none())
                        .map(strip_directives)
                        .collect(),
                ));
            }
            for p in patch {
                let Value::Object(pm) = p else {
                    return Err(ApiError::bad_request(format!(
                        "invalid patch: list item {p} is not a map"
                    )));
                };
                let Some(kv) = pm.get(&key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {p} does not contain declared merge key: {key}"
                    )));
                };
                let pos = original.iter().position(|o| o.get(&key) == Some(kv));
                let directive = pm.get(DIRECTIVE).and_then(Value::as_str);
                match (directive, pos) {
                    (Some("delete"), Some(i)) => {
                        original.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => {
                        let o = original[i].as_object().cloned().unwrap_or_default();
                        match merge_map(o, pm, &mut names.to_vec(), schema)? {
                            Some(m) => original[i] = Value::Object(m),
                            None => {
                                original.remove(i);
                            }
                        }
                    }
                    (_, None) => {
                        if let Some(m) = merge_map(Map::new(), pm, &mut names.to_vec(), schema)? {
                            original.push(Value::Object(m));
                        }
                    }
                }
            }
            Ok(Value::Array(original))
        }
    }
}

/// Puts the items named in `order` into that order among the slots they occupy.
fn reorder(items: &mut [Value], order: &[Value], rule: &SmpList) {
    let rank = |item: &Value| -> Option<usize> {
        order.iter().position(|o| match rule {
            SmpList::MergeByKey(key) => o.get(key).is_some() && o.get(key) == item.get(key),
            _ => o == item,
        })
    };
    let slots: Vec<usize> = (0..items.len())
        .filter(|&i| rank(&items[i]).is_some())
        .collect();
    let mut ordered: Vec<Value> = slots.iter().map(|&i| items[i].clone()).collect();
    ordered.sort_by_key(|v| rank(v).unwrap_or(usize::MAX));
    for (slot, v) in slots.into_iter().zip(ordered) {
        items[slot] = v;
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !is_directive_key(k))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name() {
        let o = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "1"}]}}}});
        let p = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "3"}]}}}});
        let r = strategic_merge(&o, &p, &TypeSchema::builtin("Deployment")).unwrap();
        assert_eq!(
            r["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                   {"name": "c", "image": "3"}])
        );
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let o = json!({"metadata": {"finalizers": ["a", "b"]}});
        let p = json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}});
        let r = strategic_merge(&o, &p, &TypeSchema::builtin("Deployment")).unwrap();
        assert_eq!(r["metadata"]["finalizers"], json!(["b", "c"]));
    }

    #[test]
    fn atomic_lists_are_replaced_and_directives_apply() {
        let o = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "a"}]}}}, "x": {"a": 1, "b": 2}});
        let p = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b"}]}}},
                       "x": {"$patch": "replace", "c": 3}});
        let r = strategic_merge(&o, &p, &TypeSchema::builtin("Deployment")).unwrap();
        assert_eq!(
            r["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "b"}])
        );
        assert_eq!(r["x"], json!({"c": 3}));
        let bad = json!({"x": {"$patch": "explode"}});
        assert_eq!(
            strategic_merge(&o, &bad, &TypeSchema::builtin("Deployment"))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn set_element_order() {
        let o = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a"}, {"name": "s"}, {"name": "b"}]}}}});
        let p = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "x"}]}}}});
        let r = strategic_merge(&o, &p, &TypeSchema::builtin("Deployment")).unwrap();
        let names: Vec<&str> = r["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "s", "a"]);
    }
}
