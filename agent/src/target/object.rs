//! What every target does to an object's JSON the same way: split an apiVersion, take
//! the desired part (all but metadata and status), merge labels and annotations, and
//! apply an [`OwnerChange`] to metadata. Shared so the simulated cluster and the
//! Kubernetes target cannot drift apart on these rules.

use serde_json::{Map, Value, json};

use super::OwnerChange;

/// `apps/v1` → (`apps`, `v1`); `v1` → (`""`, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The desired part of an object: everything but metadata and status.
pub fn desired(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "metadata" && k.as_str() != "status")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Applies an owner change to object metadata; true when something changed.
pub fn change_owner(meta: &mut Map<String, Value>, owner: &OwnerChange) -> bool {
    match owner {
        OwnerChange::Keep => false,
        OwnerChange::Add(owner) => {
            let refs = meta
                .entry("ownerReferences")
                .or_insert_with(|| Value::Array(Vec::new()));
            if !refs.is_array() {
                *refs = Value::Array(Vec::new());
            }
            match refs.as_array_mut() {
                Some(list) if !list.iter().any(|r| r["uid"] == owner.uid.as_str()) => {
                    list.push(owner.reference());
                    true
                }
                _ => false,
            }
        }
        OwnerChange::Remove(uid) => {
            let Some(list) = meta
                .get_mut("ownerReferences")
                .and_then(Value::as_array_mut)
            else {
                return false;
            };
            let before = list.len();
            list.retain(|r| r["uid"] != uid.as_str());
            before != list.len()
        }
    }
}

/// Merges labels and annotations of `want` into `meta`; true when something changed.
pub fn merge_labels(meta: &mut Map<String, Value>, want: &Value) -> bool {
    let mut changed = false;
    for field in ["labels", "annotations"] {
        let Some(Value::Object(want)) = want.get(field) else {
            continue;
        };
        let have = meta.entry(field).or_insert_with(|| json!({}));
        if !have.is_object() {
            *have = json!({});
        }
        if let Some(have) = have.as_object_mut() {
            for (k, v) in want {
                if have.get(k) != Some(v) {
                    have.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
        }
    }
    changed
}
