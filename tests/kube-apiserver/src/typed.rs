//! # Typed operations on objects (structured-merge-diff's `typed` package)
//!
//! The four walks server-side apply is made of, over JSON objects and a
//! [`TypeSchema`]:
//!
//! - [`to_field_set`]: the fields a configuration sets (what an applier will own);
//! - [`compare`]: fields added, modified and removed between two objects (what an update
//!   takes from other managers, what conflicts);
//! - [`merge`]: a configuration merged onto the live object (associative lists by key,
//!   sets by value, atomic nodes replaced), with structured-merge-diff's item order;
//! - [`remove_items`]: fields removed from an object (what apply prunes).
//!
//! The rules follow `sigs.k8s.io/structured-merge-diff/v4/typed` (`tofieldset.go`,
//! `compare.go`, `merge.go`, `remove.go`): a map or list that is empty on both sides is a
//! leaf; a non-leaf node that appears or disappears is itself added or removed; items of
//! associative lists are always members; map entries are members when their value is
//! null or empty or their key is not a declared field.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use crate::fieldpath::{FieldSet, Path, PathElement};
use crate::schema::{ListType, MapKind, TypeSchema};

/// What changed between two objects.
#[derive(Debug, Default, Clone)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Shape {
    Object,
    Array,
    Scalar,
}

fn shape(v: &Value) -> Shape {
    match v {
        Value::Object(_) => Shape::Object,
        Value::Array(_) => Shape::Array,
        _ => Shape::Scalar,
    }
}

fn child(path: &Path, pe: PathElement) -> Path {
    let mut p = path.clone();
    p.push(pe);
    p
}

/// The path element of a list item.
pub fn item_element(lt: &ListType, item: &Value, index: usize) -> Result<PathElement, String> {
    match lt {
        ListType::Atomic => Ok(PathElement::Index(index)),
        ListType::Set => match item {
            Value::Object(_) | Value::Array(_) => Err(format!(
                "element {index}: expected a scalar in a set, got {}",
                if item.is_object() { "a map" } else { "a list" }
            )),
            v => Ok(PathElement::Value(v.to_string())),
        },
        ListType::Map { keys, defaults } => {
            let Value::Object(obj) = item else {
                return Err(format!(
                    "element {index}: associative list with keys has an element that is not a map"
                ));
            };
            let mut fields = Vec::new();
            for k in keys {
                let v = match obj.get(k) {
                    Some(v) => v.clone(),
                    None => match defaults.iter().find(|(d, _)| d == k) {
                        Some((_, d)) => d.clone(),
                        None => {
                            return Err(format!(
                                "element {index}: associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                            ));
                        }
                    },
                };
                fields.push((k.clone(), v.to_string()));
            }
            fields.sort();
            Ok(PathElement::Key(fields))
        }
    }
}

/// The fields `value` sets (`TypedValue.ToFieldSet`).
pub fn to_field_set(value: &Value, schema: &TypeSchema) -> Result<FieldSet, String> {
    fn walk(v: &Value, path: &Path, s: &TypeSchema, out: &mut FieldSet) -> Result<(), String> {
        match v {
            Value::Object(m) => {
                let mk = if path.is_empty() {
                    MapKind::Struct
                } else {
                    s.map_kind(path)
                };
                if mk == MapKind::Atomic {
                    out.insert(path.clone());
                    return Ok(());
                }
                for (k, c) in m {
                    let p = child(path, PathElement::Field(k.clone()));
                    walk(c, &p, s, out)?;
                    let empty = c.is_null() || c.as_object().is_some_and(|o| o.is_empty());
                    if empty || mk == MapKind::Free {
                        out.insert(p);
                    }
                }
                Ok(())
            }
            Value::Array(items) => {
                let lt = s.list_type(path);
                if lt == ListType::Atomic {
                    out.insert(path.clone());
                    return Ok(());
                }
                let mut seen = HashSet::new();
                let mut dups = HashSet::new();
                let mut pes = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let pe = item_element(&lt, item, i).map_err(|e| at(path, e))?;
                    if !seen.insert(pe.clone()) && dups.insert(pe.clone()) {
                        out.insert(child(path, pe.clone()));
                    }
                    pes.push(pe);
                }
                for (item, pe) in items.iter().zip(pes) {
                    if dups.contains(&pe) {
                        continue;
                    }
                    let p = child(path, pe);
                    walk(item, &p, s, out)?;
                    out.insert(p);
                }
                Ok(())
            }
            _ => {
                out.insert(path.clone());
                Ok(())
            }
        }
    }
    let mut out = FieldSet::new();
    walk(value, &Vec::new(), schema, &mut out)?;
    Ok(out)
}

fn at(path: &Path, e: String) -> String {
    format!("{}: {e}", crate::fieldpath::path_string(path))
}

/// Added, modified and removed fields from `lhs` to `rhs` (`TypedValue.Compare`).
pub fn compare(lhs: &Value, rhs: &Value, schema: &TypeSchema) -> Result<Comparison, String> {
    let mut c = Comparison::default();
    compare_node(Some(lhs), Some(rhs), &Vec::new(), schema, &mut c)?;
    Ok(c)
}

fn leaf(l: Option<&Value>, r: Option<&Value>, path: &Path, c: &mut Comparison) {
    match (l, r) {
        (None, _) => c.added.insert(path.clone()),
        (_, None) => c.removed.insert(path.clone()),
        (Some(l), Some(r)) if l != r => c.modified.insert(path.clone()),
        _ => {}
    }
}

static EMPTY_OBJECT: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::Object(Map::new()));
static EMPTY_ARRAY: Value = Value::Array(Vec::new());

/// `null` against a map or list is that container, empty (structured-merge-diff: "nil is
/// a wildcard and will accept whatever form the other operand takes") — present, so the
/// node itself is neither added nor removed.
fn null_as<'a>(v: Option<&'a Value>, other: Option<&Value>) -> Option<&'a Value> {
    match (v, other) {
        (Some(Value::Null), Some(Value::Object(_))) => Some(&EMPTY_OBJECT),
        (Some(Value::Null), Some(Value::Array(_))) => Some(&EMPTY_ARRAY),
        _ => v,
    }
}

fn compare_node(
    l: Option<&Value>,
    r: Option<&Value>,
    path: &Path,
    s: &TypeSchema,
    c: &mut Comparison,
) -> Result<(), String> {
    let (l, r) = (null_as(l, r), null_as(r, l));
    let (ls, rs) = (l.map(shape), r.map(shape));
    let kind = match (ls, rs) {
        (Some(a), Some(b)) if a != b => Shape::Scalar,
        (_, Some(b)) => b,
        (Some(a), None) => a,
        (None, None) => return Ok(()),
    };
    match kind {
        Shape::Scalar => {
            leaf(l, r, path, c);
            return Ok(());
        }
        Shape::Object => {
            let empty = Map::new();
            let lm = l.and_then(Value::as_object).unwrap_or(&empty);
            let rm = r.and_then(Value::as_object).unwrap_or(&empty);
            let mk = if path.is_empty() {
                MapKind::Struct
            } else {
                s.map_kind(path)
            };
            if mk == MapKind::Atomic || (lm.is_empty() && rm.is_empty()) {
                leaf(l, r, path, c);
                return Ok(());
            }
            let mut keys: Vec<&String> = lm.keys().chain(rm.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = child(path, PathElement::Field(k.clone()));
                compare_node(lm.get(k), rm.get(k), &p, s, c)?;
            }
        }
        Shape::Array => {
            let empty = Vec::new();
            let la = l.and_then(Value::as_array).unwrap_or(&empty);
            let ra = r.and_then(Value::as_array).unwrap_or(&empty);
            let lt = s.list_type(path);
            if lt == ListType::Atomic || (la.is_empty() && ra.is_empty()) {
                leaf(l, r, path, c);
                return Ok(());
            }
            compare_lists(la, ra, &lt, path, s, c)?;
        }
    }
    match (l, r) {
        (None, _) => c.added.insert(path.clone()),
        (_, None) => c.removed.insert(path.clone()),
        _ => {}
    }
    Ok(())
}

fn compare_lists(
    la: &[Value],
    ra: &[Value],
    lt: &ListType,
    path: &Path,
    s: &TypeSchema,
    c: &mut Comparison,
) -> Result<(), String> {
    let mut order: Vec<PathElement> = Vec::new();
    let mut lvals: HashMap<PathElement, Vec<&Value>> = HashMap::new();
    let mut rvals: HashMap<PathElement, Vec<&Value>> = HashMap::new();
    for (i, item) in la.iter().enumerate() {
        let pe = item_element(lt, item, i).map_err(|e| at(path, e))?;
        let e = lvals.entry(pe.clone()).or_default();
        if e.is_empty() {
            order.push(pe);
        }
        e.push(item);
    }
    for (i, item) in ra.iter().enumerate() {
        let pe = item_element(lt, item, i).map_err(|e| at(path, e))?;
        let e = rvals.entry(pe.clone()).or_default();
        if e.is_empty() && !lvals.contains_key(&pe) {
            order.push(pe.clone());
        }
        e.push(item);
    }
    for pe in order {
        let l = lvals.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
        let r = rvals.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
        let p = child(path, pe);
        match (l.len(), r.len()) {
            (0..=1, 0..=1) => compare_node(l.first().copied(), r.first().copied(), &p, s, c)?,
            (2.., 2..) => {
                if l != r {
                    c.modified.insert(p);
                }
            }
            (2.., _) => {
                if let Some(first) = r.first() {
                    compare_node(None, Some(first), &p, s, c)?;
                }
                c.removed.insert(p);
            }
            (_, _) => {
                if let Some(first) = l.first() {
                    compare_node(Some(first), None, &p, s, c)?;
                }
                c.added.insert(p);
            }
        }
    }
    Ok(())
}

/// `lhs` with `rhs` merged onto it, `rhs` winning (`TypedValue.Merge`).
pub fn merge(lhs: &Value, rhs: &Value, schema: &TypeSchema) -> Result<Value, String> {
    Ok(merge_node(Some(lhs), Some(rhs), &Vec::new(), schema)?.unwrap_or(Value::Null))
}

fn merge_node(
    l: Option<&Value>,
    r: Option<&Value>,
    path: &Path,
    s: &TypeSchema,
) -> Result<Option<Value>, String> {
    let (l, r) = match (l, r) {
        (l, None) => return Ok(l.cloned()),
        (None, r) => return Ok(r.cloned()),
        (Some(l), Some(r)) => (l, r),
    };
    if shape(l) != shape(r) {
        return Ok(Some(r.clone()));
    }
    match (l, r) {
        (Value::Object(lm), Value::Object(rm)) => {
            let mk = if path.is_empty() {
                MapKind::Struct
            } else {
                s.map_kind(path)
            };
            if mk == MapKind::Atomic || (lm.is_empty() && rm.is_empty()) {
                return Ok(Some(r.clone()));
            }
            let mut out = Map::new();
            let mut keys: Vec<&String> = lm.keys().chain(rm.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = child(path, PathElement::Field(k.clone()));
                if let Some(v) = merge_node(lm.get(k), rm.get(k), &p, s)? {
                    out.insert(k.clone(), v);
                }
            }
            Ok(if out.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            })
        }
        (Value::Array(la), Value::Array(ra)) => {
            let lt = s.list_type(path);
            if lt == ListType::Atomic || (la.is_empty() && ra.is_empty()) {
                return Ok(Some(r.clone()));
            }
            merge_lists(la, ra, &lt, path, s)
        }
        _ => Ok(Some(r.clone())),
    }
}

/// structured-merge-diff's `mergingWalker.visitListItems`: items only in the live list
/// keep their place; the configuration's items come in its order.
fn merge_lists(
    la: &[Value],
    ra: &[Value],
    lt: &ListType,
    path: &Path,
    s: &TypeSchema,
) -> Result<Option<Value>, String> {
    let mut rpes = Vec::with_capacity(ra.len());
    let mut robs: HashMap<PathElement, &Value> = HashMap::new();
    for (i, item) in ra.iter().enumerate() {
        let pe = item_element(lt, item, i).map_err(|e| at(path, e))?;
        if robs.insert(pe.clone(), item).is_some() {
            return Err(at(path, format!("duplicate entries for key {pe}")));
        }
        rpes.push(pe);
    }
    let mut lpes = Vec::with_capacity(la.len());
    // `None`: a key duplicated in the live list; such items are not merged.
    let mut lobs: HashMap<PathElement, Option<&Value>> = HashMap::new();
    for (i, item) in la.iter().enumerate() {
        let pe = item_element(lt, item, i).map_err(|e| at(path, e))?;
        lobs.entry(pe.clone())
            .and_modify(|v| *v = None)
            .or_insert(Some(item));
        lpes.push(pe);
    }
    let null = Value::Null;
    let lchild = |pe: &PathElement| -> Option<&Value> {
        match lobs.get(pe) {
            Some(Some(v)) => Some(*v),
            Some(None) => Some(&null),
            None => None,
        }
    };
    let mut shared: VecDeque<&PathElement> =
        rpes.iter().filter(|pe| lobs.contains_key(pe)).collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: HashSet<&PathElement> = HashSet::new();
    let mut out = Vec::with_capacity(la.len().max(ra.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.insert(pe);
                let p = child(path, pe.clone());
                if let Some(v) = merge_node(lchild(pe), robs.get(pe).copied(), &p, s)? {
                    out.push(v);
                }
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if robs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !robs.contains_key(pe) {
                out.push(la[li].clone());
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_rhs.insert(pe);
            let p = child(path, pe.clone());
            if let Some(v) = merge_node(lchild(pe), robs.get(pe).copied(), &p, s)? {
                out.push(v);
            }
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    Ok(if out.is_empty() {
        None
    } else {
        Some(Value::Array(out))
    })
}

/// `value` without the members of `set` (each removed with everything below it).
pub fn remove_items(value: &Value, set: &FieldSet, schema: &TypeSchema) -> Value {
    remove_node(value, &Vec::new(), set, schema).unwrap_or_else(|| Value::Object(Map::new()))
}

fn remove_node(v: &Value, path: &Path, set: &FieldSet, s: &TypeSchema) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if !path.is_empty() && s.map_kind(path) == MapKind::Atomic {
                return Some(v.clone());
            }
            let mut out = Map::new();
            for (k, c) in m {
                let p = child(path, PathElement::Field(k.clone()));
                if set.contains(&p) {
                    continue;
                }
                if set.has_under(&p) {
                    if let Some(nc) = remove_node(c, &p, set, s) {
                        out.insert(k.clone(), nc);
                    }
                } else {
                    out.insert(k.clone(), c.clone());
                }
            }
            if out.is_empty() && !m.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            }
        }
        Value::Array(items) => {
            let lt = s.list_type(path);
            if lt == ListType::Atomic {
                return Some(v.clone());
            }
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Ok(pe) = item_element(&lt, item, i) else {
                    out.push(item.clone());
                    continue;
                };
                let p = child(path, pe);
                if set.contains(&p) {
                    continue;
                }
                if set.has_under(&p) {
                    if let Some(ni) = remove_node(item, &p, set, s) {
                        out.push(ni);
                    }
                } else {
                    out.push(item.clone());
                }
            }
            if out.is_empty() && !items.is_empty() {
                None
            } else {
                Some(Value::Array(out))
            }
        }
        _ => Some(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldpath::{FieldSet, fields};
    use serde_json::json;

    #[test]
    fn field_set_of_a_configuration() {
        let cfg = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}
        });
        let set = to_field_set(&cfg, &TypeSchema::builtin("Deployment")).unwrap();
        let v1 = set.to_fields_v1();
        assert_eq!(v1["f:metadata"]["f:labels"], json!({"f:app": {}}));
        assert_eq!(v1["f:spec"]["f:selector"], json!({}));
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"],
            json!({".": {}, "f:image": {}, "f:name": {}})
        );
    }

    #[test]
    fn compare_marks_new_maps_added() {
        let l = json!({"metadata": {"name": "a"}});
        let r = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        let c = compare(&l, &r, &TypeSchema::builtin("ConfigMap")).unwrap();
        assert!(c.added.contains(&fields(&["metadata", "labels"])));
        assert!(c.added.contains(&fields(&["metadata", "labels", "x"])));
        assert!(c.added.contains(&fields(&["data"])));
        assert!(!c.added.contains(&fields(&["metadata"])));
        assert!(c.modified.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn merge_keeps_live_only_items_in_place() {
        let s = TypeSchema::builtin("Deployment");
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "1"}, {"name": "side", "image": "s"}, {"name": "b", "image": "1"}]}}}});
        let cfg = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "image": "2"}, {"name": "a", "image": "2"}, {"name": "c", "image": "2"}]}}}});
        let m = merge(&live, &cfg, &s).unwrap();
        let names: Vec<&str> = m["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["side", "b", "a", "c"]);
        assert_eq!(m["spec"]["template"]["spec"]["containers"][1]["image"], "2");
    }

    #[test]
    fn missing_key_is_an_error() {
        let cfg = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let e = to_field_set(&cfg, &TypeSchema::builtin("Deployment")).unwrap_err();
        assert!(e.contains("omits key field \"name\""), "{e}");
    }

    #[test]
    fn remove_drops_subtrees_and_empty_parents() {
        let v = json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v", "j": "w"}});
        let set: FieldSet = [fields(&["metadata", "labels", "a"]), fields(&["data", "k"])]
            .into_iter()
            .collect();
        let out = remove_items(&v, &set, &TypeSchema::builtin("ConfigMap"));
        assert_eq!(out, json!({"data": {"j": "w"}}));
    }
}
