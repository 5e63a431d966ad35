//! Server-side apply `ignoreFields` (manifestwork-semantics §2.3, §5 "SSA details"):
//! fields the spoke may own after the object exists.
//!
//! - `OnSpokePresent` (the default) fields are removed from the applied object, except
//!   when the object is created: then the full manifest is applied, so the fields are
//!   set once and afterwards left to other actors.
//! - A hash of the object without those fields goes into the annotation
//!   [`ANNOTATION_CONFIG_SPEC_HASH`]; when the live object carries the same hash, nothing
//!   is applied (only owner references are reconciled). `OnSpokeChange` fields stay in
//!   the object and the hash, so spoke edits to them survive until the manifest changes.
//! - Selectors: `jsonPaths` (the last segment is deleted from every matching object),
//!   `jsonPointers` (RFC 6901 remove; a missing path is ignored), `jqPathExpressions`
//!   (`del(<expr>)` for the path forms [`crate::jq_path`] accepts). An invalid selector
//!   fails the manifest (`AppliedManifestSSAIgnoreFieldError`).
//!
//! The hash is SHA-256 over the canonical JSON of the stripped object (OCM hashes Go's
//! `%v` rendering with MD5, which cannot be reproduced outside Go): an object last applied
//! by the Go agent is therefore applied once more by this one, then skipped.
//!
//! [`prepare`] and [`decide`] are pure; [`reconcile_owner`] is the only I/O.

use serde_json::{Value, json};
use workbus_schemas::status_hash::{canonical_json, sha256_hex};
use workbus_schemas::work::meta::ANNOTATION_CONFIG_SPEC_HASH;
use workbus_schemas::work::spec::{IgnoreField, IgnoreFieldsCondition};

use crate::target::{ApplyMode, ObjectRef, OwnerChange, Target, TargetError};
use crate::{jq_path, jsonpath};

/// An `ignoreFields` selector that cannot be evaluated. The `Display` text follows OCM's
/// (`JSON Pointer error in '<pointer>': …`, `JQ expression error in '<expr>': …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreFieldError {
    /// An invalid RFC 6901 pointer.
    #[error("JSON Pointer error in '{pointer}': {reason}")]
    JsonPointer {
        /// The pointer.
        pointer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An unparseable JSONPath.
    #[error("JSONPath error in '{path}': {reason}")]
    JsonPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A jq expression that is invalid or outside the supported path forms.
    #[error("JQ expression error in '{expr}': {reason}")]
    Jq {
        /// The expression.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The two objects a manifest with `ignoreFields` may be applied as.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The full manifest plus the hash annotation: what a create applies.
    pub full: Value,
    /// Without the `OnSpokePresent` fields, plus the hash annotation: what an update applies.
    pub stripped: Value,
    /// The hash of the stripped object (before the annotation was added).
    pub hash: String,
}

/// What to do with a manifest that has `ignoreFields`, given the live object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The object does not exist: apply [`Prepared::full`].
    Create,
    /// The live object carries the same hash: no apply, only owner references.
    Unchanged,
    /// Apply [`Prepared::stripped`].
    Update,
}

/// Removes the `OnSpokePresent` fields of `ignore` from `object` (a copy) and computes
/// the hash annotation; `Ok(None)` when there are no ignore fields (plain SSA).
pub fn prepare(
    object: &Value,
    ignore: &[IgnoreField],
) -> Result<Option<Prepared>, IgnoreFieldError> {
    if ignore.is_empty() {
        return Ok(None);
    }
    let mut stripped = object.clone();
    for field in ignore {
        // Validate every selector, even OnSpokeChange ones that remove nothing, so a
        // broken expression is reported whatever its condition.
        let remove = field.kind() != IgnoreFieldsCondition::OnSpokeChange;
        for path in &field.json_paths {
            let steps = jsonpath::parse(path).map_err(|reason| IgnoreFieldError::JsonPath {
                path: path.clone(),
                reason,
            })?;
            if remove {
                jsonpath::remove_member(&mut stripped, &steps);
            }
        }
        for pointer in &field.json_pointers {
            let tokens =
                pointer_tokens(pointer).map_err(|reason| IgnoreFieldError::JsonPointer {
                    pointer: pointer.clone(),
                    reason,
                })?;
            if remove {
                remove_pointer(&mut stripped, &tokens);
            }
        }
        for expr in &field.jq_path_expressions {
            let steps = jq_path::parse(expr).map_err(|reason| IgnoreFieldError::Jq {
                expr: expr.clone(),
                reason,
            })?;
            if remove {
                jsonpath::remove(&mut stripped, &steps);
            }
        }
    }
    let hash = sha256_hex(canonical_json(&stripped).as_bytes());
    let mut full = object.clone();
    annotate(&mut full, &hash);
    annotate(&mut stripped, &hash);
    Ok(Some(Prepared {
        full,
        stripped,
        hash,
    }))
}

/// Create, skip or update (§5): see [`Decision`].
pub fn decide(prepared: &Prepared, live: Option<&Value>) -> Decision {
    match live {
        None => Decision::Create,
        Some(live)
            if live["metadata"]["annotations"][ANNOTATION_CONFIG_SPEC_HASH].as_str()
                == Some(prepared.hash.as_str()) =>
        {
            Decision::Unchanged
        }
        Some(_) => Decision::Update,
    }
}

/// For [`Decision::Unchanged`]: brings the live object's owner references in line with
/// `owner` (the deleteOption may have changed) without applying its content. Adding an
/// owner is a create-only apply (which only merges owner references into an existing
/// object); removing one is [`Target::remove_owner`]; nothing to change, no call.
/// Returns the live object afterwards.
pub async fn reconcile_owner<T: Target>(
    target: &T,
    at: &ObjectRef,
    prepared: &Prepared,
    live: Value,
    owner: &OwnerChange,
) -> Result<Value, TargetError> {
    let owned_by = |uid: &str| {
        live["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
    };
    match owner {
        OwnerChange::Add(o) if !owned_by(&o.uid) => {
            // The full object: should it have vanished meanwhile, a create is right.
            target
                .apply(at, &prepared.full, &ApplyMode::CreateOnly, owner)
                .await
        }
        OwnerChange::Remove(uid) if owned_by(uid) => {
            target.remove_owner(at, uid).await?;
            Ok(target.get(at).await?.unwrap_or(live))
        }
        _ => Ok(live),
    }
}

fn annotate(object: &mut Value, hash: &str) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let annotations = &mut meta["annotations"];
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[ANNOTATION_CONFIG_SPEC_HASH] = json!(hash);
}

/// The reference tokens of an RFC 6901 pointer (`~1` → `/`, `~0` → `~`).
fn pointer_tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.len() > jsonpath::MAX_PATH_LEN {
        return Err(format!(
            "pointer longer than {} characters",
            jsonpath::MAX_PATH_LEN
        ));
    }
    if pointer.is_empty() {
        // The whole document: removing it is never meant (and JSON Patch refuses it).
        return Err("the pointer selects the whole object".into());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON Pointer must start with '/'".into());
    };
    rest.split('/')
        .map(|t| {
            let mut out = String::with_capacity(t.len());
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(format!("invalid escape in token {t:?}")),
                }
            }
            Ok(out)
        })
        .collect()
}

/// RFC 6901 remove; a path that does not exist is ignored.
fn remove_pointer(root: &mut Value, tokens: &[String]) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut cur = root;
    for t in parents {
        let next = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => array_index(t, a.len()).and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Object(m) => {
            m.remove(last);
        }
        Value::Array(a) => {
            if let Some(i) = array_index(last, a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// An RFC 6901 array index: digits without leading zeros, within bounds.
fn array_index(token: &str, len: usize) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok().filter(|i| *i < len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(condition: &str, paths: &[&str], pointers: &[&str], jq: &[&str]) -> IgnoreField {
        let s = |l: &[&str]| l.iter().map(|p| p.to_string()).collect();
        IgnoreField {
            condition: condition.into(),
            json_paths: s(paths),
            json_pointers: s(pointers),
            jq_path_expressions: s(jq),
            extra: Default::default(),
        }
    }

    fn deploy() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "d", "annotations": {"a/b": "x"}},
               "spec": {"replicas": 2, "paused": false,
                        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn on_spoke_present_fields_are_stripped_and_hashed() {
        let p = prepare(
            &deploy(),
            &[field(
                "",
                &[".spec.replicas"],
                &["/metadata/annotations/a~1b", "/spec/nothing/here"],
                &[".spec.template.spec.containers[] | select(.name == \"c\") | .image"],
            )],
        )
        .unwrap()
        .unwrap();
        assert!(p.stripped["spec"].get("replicas").is_none());
        assert!(p.stripped["metadata"]["annotations"].get("a/b").is_none());
        assert!(
            p.stripped["spec"]["template"]["spec"]["containers"][0]
                .get("image")
                .is_none()
        );
        assert_eq!(p.full["spec"]["replicas"], 2, "a create applies everything");
        for o in [&p.full, &p.stripped] {
            assert_eq!(
                o["metadata"]["annotations"][ANNOTATION_CONFIG_SPEC_HASH],
                p.hash
            );
        }
        assert_eq!(p.hash.len(), 64);
    }

    #[test]
    fn on_spoke_change_fields_stay_and_count_in_the_hash() {
        let keep = [field("OnSpokeChange", &[".spec.replicas"], &[], &[])];
        let a = prepare(&deploy(), &keep).unwrap().unwrap();
        assert_eq!(a.stripped["spec"]["replicas"], 2);
        let mut changed = deploy();
        changed["spec"]["replicas"] = json!(3);
        let b = prepare(&changed, &keep).unwrap().unwrap();
        assert_ne!(a.hash, b.hash, "the manifest changed");
        let drop = [field("OnSpokePresent", &[".spec.replicas"], &[], &[])];
        let c = prepare(&deploy(), &drop).unwrap().unwrap();
        let d = prepare(&changed, &drop).unwrap().unwrap();
        assert_eq!(c.hash, d.hash, "ignored fields do not count");
    }

    #[test]
    fn no_ignore_fields_no_preparation() {
        assert_eq!(prepare(&deploy(), &[]).unwrap(), None);
    }

    #[test]
    fn decisions() {
        let p = prepare(&deploy(), &[field("", &[".spec.replicas"], &[], &[])])
            .unwrap()
            .unwrap();
        assert_eq!(decide(&p, None), Decision::Create);
        assert_eq!(decide(&p, Some(&p.stripped)), Decision::Unchanged);
        assert_eq!(decide(&p, Some(&deploy())), Decision::Update);
    }

    #[test]
    fn invalid_selectors_are_typed_errors() {
        let err = |f: IgnoreField| prepare(&deploy(), &[f]).unwrap_err();
        assert!(matches!(
            err(field("", &[], &["spec/replicas"], &[])),
            IgnoreFieldError::JsonPointer { .. }
        ));
        assert!(matches!(
            err(field("", &[], &["/a/~2"], &[])),
            IgnoreFieldError::JsonPointer { .. }
        ));
        assert!(matches!(
            err(field("OnSpokeChange", &[], &[], &[".a | length"])),
            IgnoreFieldError::Jq { .. }
        ));
        assert!(matches!(
            err(field("", &["spec["], &[], &[])),
            IgnoreFieldError::JsonPath { .. }
        ));
        assert_eq!(
            err(field("", &[], &[], &["del(.a)"])).to_string(),
            "JQ expression error in 'del(.a)': unsupported jq expression \"del(.a)\""
        );
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        let mut v = json!({"a": [1, 2, 3], "m~n": {"x/y": 1, "z": 2}});
        remove_pointer(&mut v, &pointer_tokens("/a/1").unwrap());
        remove_pointer(&mut v, &pointer_tokens("/a/01").unwrap());
        remove_pointer(&mut v, &pointer_tokens("/a/9").unwrap());
        remove_pointer(&mut v, &pointer_tokens("/m~0n/x~1y").unwrap());
        assert_eq!(v, json!({"a": [1, 3], "m~n": {"z": 2}}));
        assert!(pointer_tokens("").is_err());
        assert!(pointer_tokens(&"/a".repeat(jsonpath::MAX_PATH_LEN)).is_err());
    }
}
