//! # Field paths and field sets (structured-merge-diff's `fieldpath`)
//!
//! Server-side apply tracks ownership per *field path*: a list of elements, each a field
//! name (`f:spec`), the key of an associative list item (`k:{"name":"nginx"}`), the
//! value of a set item (`v:"x"`) or a list index (`i:0`). A [`FieldSet`] is a set of
//! paths; its wire form is `FieldsV1` in `metadata.managedFields`, a trie in which `"."`
//! marks a path that is itself a member and has members below it. Paths print as in
//! conflict messages: `.spec.containers[name="nginx"].image`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a path. The derived order (field < key < value < index) is
/// structured-merge-diff's `PathElement.Compare` order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    Field(String),
    /// The key fields of an associative list item: `(name, JSON value)`, sorted by name.
    Key(Vec<(String, String)>),
    /// A set item, as JSON.
    Value(String),
    Index(usize),
}

impl PathElement {
    pub fn field(name: &str) -> Self {
        PathElement::Field(name.to_string())
    }

    /// The `FieldsV1` form (`f:spec`, `k:{"name":"x"}`, `v:"x"`, `i:0`).
    pub fn serialize(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(fields) => {
                let inner = fields
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                    .collect::<Vec<_>>()
                    .join(",");
                format!("k:{{{inner}}}")
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses the `FieldsV1` form.
    pub fn deserialize(s: &str) -> Result<Self, String> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("missing colon: {s}"))?;
        match kind {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "v" => {
                let v: Value = serde_json::from_str(rest).map_err(|e| e.to_string())?;
                Ok(PathElement::Value(v.to_string()))
            }
            "k" => {
                let v: Value = serde_json::from_str(rest).map_err(|e| e.to_string())?;
                let Value::Object(map) = v else {
                    return Err(format!("key is not an object: {s}"));
                };
                // serde_json's map is sorted by key.
                Ok(PathElement::Key(
                    map.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
                ))
            }
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("{s}: {e}")),
            _ => Err("unknown path element type".to_string()),
        }
    }
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object's root.
pub type Path = Vec<PathElement>;

/// Prints a path as the apiserver does in conflicts.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(|e| e.to_string()).collect()
}

/// Builds a path of field names.
pub fn fields(names: &[&str]) -> Path {
    names.iter().map(|n| PathElement::field(n)).collect()
}

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    paths: BTreeSet<Path>,
}

impl FieldSet {
    pub fn new() -> Self {
        FieldSet::default()
    }

    pub fn insert(&mut self, path: Path) {
        if !path.is_empty() {
            self.paths.insert(path);
        }
    }

    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.paths.contains(path)
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter()
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.union(&other.paths).cloned().collect(),
        }
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.intersection(&other.paths).cloned().collect(),
        }
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.difference(&other.paths).cloned().collect(),
        }
    }

    /// Drops every path equal to or below one of `prefixes`.
    pub fn without_prefixes(&self, prefixes: &[Path]) -> FieldSet {
        FieldSet {
            paths: self
                .paths
                .iter()
                .filter(|p| !prefixes.iter().any(|pre| p.starts_with(pre)))
                .cloned()
                .collect(),
        }
    }

    /// Keeps only paths equal to or below `prefix`.
    pub fn only_under(&self, prefix: &[PathElement]) -> FieldSet {
        FieldSet {
            paths: self
                .paths
                .iter()
                .filter(|p| p.starts_with(prefix))
                .cloned()
                .collect(),
        }
    }

    /// Whether any member is equal to or below `prefix`.
    pub fn has_under(&self, prefix: &[PathElement]) -> bool {
        self.paths
            .range(prefix.to_vec()..)
            .next()
            .is_some_and(|p| p.starts_with(prefix))
    }

    /// The members plus every (non-empty) prefix of a member.
    pub fn with_ancestors(&self) -> FieldSet {
        let mut out = self.clone();
        for p in &self.paths {
            for n in 1..p.len() {
                out.paths.insert(p[..n].to_vec());
            }
        }
        out
    }

    /// The `FieldsV1` JSON.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<PathElement, Node>,
        }
        let mut root = Node::default();
        for path in &self.paths {
            let mut node = &mut root;
            for pe in path {
                node = node.children.entry(pe.clone()).or_default();
            }
            node.member = true;
        }
        fn emit(node: &Node) -> Value {
            let mut map = Map::new();
            if node.member && !node.children.is_empty() {
                map.insert(".".into(), Value::Object(Map::new()));
            }
            for (pe, child) in &node.children {
                map.insert(pe.serialize(), emit(child));
            }
            Value::Object(map)
        }
        emit(&root)
    }

    /// Parses `FieldsV1` JSON.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        fn walk(value: &Value, prefix: &mut Path, out: &mut FieldSet) -> Result<(), String> {
            let Value::Object(map) = value else {
                return Err("FieldsV1 must be an object".into());
            };
            for (key, child) in map {
                if key == "." {
                    out.insert(prefix.clone());
                    continue;
                }
                prefix.push(PathElement::deserialize(key)?);
                let is_leaf = child.as_object().is_some_and(|m| m.is_empty());
                if is_leaf {
                    out.insert(prefix.clone());
                } else {
                    walk(child, prefix, out)?;
                }
                prefix.pop();
            }
            Ok(())
        }
        let mut out = FieldSet::new();
        walk(value, &mut Vec::new(), &mut out)?;
        Ok(out)
    }
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<T: IntoIterator<Item = Path>>(iter: T) -> Self {
        let mut s = FieldSet::new();
        for p in iter {
            s.insert(p);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}
                }}}
            },
            "f:finalizers": {"v:\"a/b\"": {}}
        });
        let set = FieldSet::from_fields_v1(&v).unwrap();
        assert!(set.contains(&fields(&["metadata", "labels"])));
        assert!(!set.contains(&fields(&["metadata"])));
        assert_eq!(set.to_fields_v1(), v);
        let container = set
            .iter()
            .find(|p| p.len() == 5 && matches!(p[4], PathElement::Key(_)))
            .unwrap();
        assert_eq!(
            path_string(container),
            ".spec.template.spec.containers[name=\"nginx\"]"
        );
    }

    #[test]
    fn prefixes() {
        let set: FieldSet = [fields(&["spec", "a"]), fields(&["status", "b"])]
            .into_iter()
            .collect();
        assert!(set.has_under(&fields(&["spec"])));
        assert!(!set.has_under(&fields(&["metadata"])));
        assert_eq!(set.without_prefixes(&[fields(&["status"])]).len(), 1);
        assert!(set.with_ancestors().contains(&fields(&["spec"])));
    }
}
