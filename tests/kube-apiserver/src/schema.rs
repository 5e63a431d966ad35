//! # The shape of a kind: which maps are structs, free maps or atomic, which lists are
//! associative (and by which keys), sets or atomic
//!
//! Server-side apply and strategic merge patch both depend on it. For built-in kinds the
//! apiserver reads it from the Go types' tags (`+listType=map`, `+listMapKey`,
//! `patchStrategy`, `patchMergeKey`, `+structType=atomic`); here a table of the lists and
//! maps that matter for the kinds this server serves stands in for them (everything else
//! is a struct, and lists not named are atomic — the Go default for a list without
//! tags). For custom resources it is read from the CRD's structural schema
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`,
//! `properties` vs `additionalProperties`); without a schema every map is granular and
//! every list atomic (structured-merge-diff's "deduced" type).

use serde_json::Value;

use crate::fieldpath::PathElement;

/// How a map node is merged and owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// A struct: its fields are declared.
    Struct,
    /// A map with free keys (labels, data, …): each entry is a member.
    Free,
    /// Replaced and owned as a whole.
    Atomic,
}

/// How a list node is merged and owned (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    Atomic,
    /// Items are scalars, identified by value.
    Set,
    /// Items are objects, identified by these key fields (with their defaults).
    Map {
        keys: Vec<String>,
        defaults: Vec<(String, Value)>,
    },
}

/// The strategic merge patch rule of a list (`patchStrategy`, `patchMergeKey`).
#[derive(Debug, Clone, PartialEq)]
pub enum SmpList {
    /// Replaced by the patch.
    Replace,
    /// Scalars merged as a union.
    MergePrimitives,
    /// Objects merged by a key.
    MergeByKey(String),
}

/// The shape source of one type.
#[derive(Debug, Clone)]
pub enum TypeSchema {
    Builtin { kind: String },
    Custom { schema: Option<Value> },
}

struct ListRule {
    suffix: &'static [&'static str],
    kinds: &'static [&'static str],
    keys: &'static [&'static str],
    /// `protocol` defaults to TCP in ports keys.
    default_protocol: bool,
    set: bool,
    smp: Option<&'static str>,
}

const fn map_list(
    suffix: &'static [&'static str],
    keys: &'static [&'static str],
    smp: &'static str,
) -> ListRule {
    ListRule {
        suffix,
        kinds: &[],
        keys,
        default_protocol: false,
        set: false,
        smp: Some(smp),
    }
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Lists of ObjectMeta, valid for every kind (custom resources too).
const META_LISTS: &[ListRule] = &[
    ListRule {
        suffix: &["metadata", "finalizers"],
        kinds: &[],
        keys: &[],
        default_protocol: false,
        set: true,
        smp: Some(""),
    },
    map_list(&["metadata", "ownerReferences"], &["uid"], "uid"),
];

const BUILTIN_LISTS: &[ListRule] = &[
    map_list(&["containers"], &["name"], "name"),
    map_list(&["initContainers"], &["name"], "name"),
    map_list(&["ephemeralContainers"], &["name"], "name"),
    map_list(&["spec", "volumes"], &["name"], "name"),
    map_list(&["spec", "imagePullSecrets"], &["name"], "name"),
    map_list(&["spec", "hostAliases"], &["ip"], "ip"),
    map_list(
        &["spec", "topologySpreadConstraints"],
        &["topologyKey", "whenUnsatisfiable"],
        "topologyKey",
    ),
    map_list(&["spec", "schedulingGates"], &["name"], "name"),
    map_list(&["spec", "resourceClaims"], &["name"], "name"),
    map_list(&["status", "conditions"], &["type"], "type"),
    ListRule {
        suffix: &["spec", "ports"],
        kinds: &["Service"],
        keys: &["port", "protocol"],
        default_protocol: true,
        set: false,
        smp: Some("port"),
    },
    ListRule {
        suffix: &["status", "addresses"],
        kinds: &["Node"],
        keys: &["type"],
        default_protocol: false,
        set: false,
        smp: Some("type"),
    },
    ListRule {
        suffix: &["spec", "podCIDRs"],
        kinds: &["Node"],
        keys: &[],
        default_protocol: false,
        set: true,
        smp: Some(""),
    },
];

/// Lists inside a container (`containers[*].ports`, …).
const CONTAINER_FIELD_LISTS: &[ListRule] = &[
    ListRule {
        suffix: &["ports"],
        kinds: &[],
        keys: &["containerPort", "protocol"],
        default_protocol: true,
        set: false,
        smp: Some("containerPort"),
    },
    map_list(&["env"], &["name"], "name"),
    map_list(&["volumeMounts"], &["mountPath"], "mountPath"),
    map_list(&["volumeDevices"], &["devicePath"], "devicePath"),
];

struct MapRule {
    suffix: &'static [&'static str],
    kinds: &'static [&'static str],
    /// Only when the whole path is the suffix.
    anchored: bool,
    kind: MapKind,
}

const fn map_rule(suffix: &'static [&'static str], kind: MapKind) -> MapRule {
    MapRule {
        suffix,
        kinds: &[],
        anchored: false,
        kind,
    }
}

const META_MAPS: &[MapRule] = &[
    map_rule(&["metadata", "labels"], MapKind::Free),
    map_rule(&["metadata", "annotations"], MapKind::Free),
];

const LABEL_SELECTOR_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "PodDisruptionBudget",
];

const BUILTIN_MAPS: &[MapRule] = &[
    map_rule(&["matchLabels"], MapKind::Free),
    map_rule(&["nodeSelector"], MapKind::Free),
    map_rule(&["limits"], MapKind::Free),
    map_rule(&["requests"], MapKind::Free),
    map_rule(&["capacity"], MapKind::Free),
    map_rule(&["allocatable"], MapKind::Free),
    map_rule(&["hard"], MapKind::Free),
    map_rule(&["used"], MapKind::Free),
    MapRule {
        suffix: &["data"],
        kinds: &[],
        anchored: true,
        kind: MapKind::Free,
    },
    MapRule {
        suffix: &["binaryData"],
        kinds: &[],
        anchored: true,
        kind: MapKind::Free,
    },
    MapRule {
        suffix: &["stringData"],
        kinds: &[],
        anchored: true,
        kind: MapKind::Free,
    },
    MapRule {
        suffix: &["parameters"],
        kinds: &["StorageClass"],
        anchored: true,
        kind: MapKind::Free,
    },
    MapRule {
        suffix: &["spec", "selector"],
        kinds: &["Service", "ReplicationController"],
        anchored: true,
        kind: MapKind::Free,
    },
    MapRule {
        suffix: &["spec", "selector"],
        kinds: LABEL_SELECTOR_KINDS,
        anchored: true,
        kind: MapKind::Atomic,
    },
    map_rule(&["labelSelector"], MapKind::Atomic),
    map_rule(&["namespaceSelector"], MapKind::Atomic),
    map_rule(&["podSelector"], MapKind::Atomic),
    map_rule(&["fieldRef"], MapKind::Atomic),
    map_rule(&["configMapKeyRef"], MapKind::Atomic),
    map_rule(&["secretKeyRef"], MapKind::Atomic),
    map_rule(&["resourceFieldRef"], MapKind::Atomic),
];

fn field_names(path: &[PathElement]) -> Vec<&str> {
    path.iter()
        .filter_map(|e| match e {
            PathElement::Field(f) => Some(f.as_str()),
            _ => None,
        })
        .collect()
}

fn kind_ok(kinds: &[&str], kind: &str) -> bool {
    kinds.is_empty() || kinds.contains(&kind)
}

fn find_list_rule(kind: &str, names: &[&str], builtin: bool) -> Option<&'static ListRule> {
    if let Some(r) = META_LISTS
        .iter()
        .find(|r| names == r.suffix && kind_ok(r.kinds, kind))
    {
        return Some(r);
    }
    if !builtin {
        return None;
    }
    // Lists of a container: `…containers.<field>`.
    if names.len() >= 2 && CONTAINER_LISTS.contains(&names[names.len() - 2]) {
        let last = names[names.len() - 1];
        if let Some(r) = CONTAINER_FIELD_LISTS.iter().find(|r| r.suffix[0] == last) {
            return Some(r);
        }
    }
    BUILTIN_LISTS
        .iter()
        .find(|r| names.ends_with(r.suffix) && kind_ok(r.kinds, kind))
}

fn list_type_of(rule: &ListRule) -> ListType {
    if rule.set {
        return ListType::Set;
    }
    ListType::Map {
        keys: rule.keys.iter().map(|k| k.to_string()).collect(),
        defaults: if rule.default_protocol {
            vec![("protocol".into(), Value::String("TCP".into()))]
        } else {
            Vec::new()
        },
    }
}

fn find_map_rule(kind: &str, names: &[&str], builtin: bool) -> Option<MapKind> {
    if let Some(r) = META_MAPS.iter().find(|r| names == r.suffix) {
        return Some(r.kind);
    }
    if !builtin {
        return None;
    }
    BUILTIN_MAPS
        .iter()
        .find(|r| {
            kind_ok(r.kinds, kind)
                && if r.anchored {
                    names == r.suffix
                } else {
                    names.ends_with(r.suffix)
                }
        })
        .map(|r| r.kind)
}

impl TypeSchema {
    /// The shape of a built-in kind.
    pub fn builtin(kind: &str) -> TypeSchema {
        TypeSchema::Builtin {
            kind: kind.to_string(),
        }
    }

    /// The schema node of a custom resource at `path` (`None`: not described).
    fn crd_node<'a>(schema: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
        let mut node = schema;
        for pe in path {
            node = match pe {
                PathElement::Field(f) => match node.get("properties").and_then(|p| p.get(f)) {
                    Some(n) => n,
                    None => node.get("additionalProperties").filter(|a| a.is_object())?,
                },
                _ => node.get("items")?,
            };
        }
        Some(node)
    }

    fn is_meta(path: &[PathElement]) -> bool {
        matches!(path.first(), Some(PathElement::Field(f)) if f == "metadata")
    }

    /// How the map at `path` behaves.
    pub fn map_kind(&self, path: &[PathElement]) -> MapKind {
        let names = field_names(path);
        match self {
            TypeSchema::Builtin { kind } => {
                find_map_rule(kind, &names, true).unwrap_or(MapKind::Struct)
            }
            TypeSchema::Custom { schema } => {
                if Self::is_meta(path) {
                    return find_map_rule("", &names, false).unwrap_or(MapKind::Struct);
                }
                let Some(node) = schema.as_ref().and_then(|s| Self::crd_node(s, path)) else {
                    return MapKind::Free;
                };
                if node.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
                    MapKind::Atomic
                } else if node.get("properties").is_some() {
                    MapKind::Struct
                } else {
                    MapKind::Free
                }
            }
        }
    }

    /// How the list at `path` behaves.
    pub fn list_type(&self, path: &[PathElement]) -> ListType {
        let names = field_names(path);
        match self {
            TypeSchema::Builtin { kind } => find_list_rule(kind, &names, true)
                .map(list_type_of)
                .unwrap_or(ListType::Atomic),
            TypeSchema::Custom { schema } => {
                if Self::is_meta(path) {
                    return find_list_rule("", &names, false)
                        .map(list_type_of)
                        .unwrap_or(ListType::Atomic);
                }
                let Some(node) = schema.as_ref().and_then(|s| Self::crd_node(s, path)) else {
                    return ListType::Atomic;
                };
                match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListType::Set,
                    Some("map") => {
                        let keys: Vec<String> = node
                            .get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|k| k.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let defaults = keys
                            .iter()
                            .filter_map(|k| {
                                let d = node.get("items")?.get("properties")?.get(k)?;
                                Some((k.clone(), d.get("default")?.clone()))
                            })
                            .collect();
                        ListType::Map { keys, defaults }
                    }
                    _ => ListType::Atomic,
                }
            }
        }
    }

    /// The strategic merge patch rule of the list at a path of field names (built-in
    /// kinds only).
    pub fn smp_list(&self, names: &[&str]) -> SmpList {
        let (kind, builtin) = match self {
            TypeSchema::Builtin { kind } => (kind.as_str(), true),
            TypeSchema::Custom { .. } => ("", false),
        };
        match find_list_rule(kind, names, builtin).and_then(|r| r.smp) {
            Some("") => SmpList::MergePrimitives,
            Some(key) => SmpList::MergeByKey(key.to_string()),
            None => SmpList::Replace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldpath::fields;
    use serde_json::json;

    #[test]
    fn builtin_shapes() {
        let d = TypeSchema::builtin("Deployment");
        let containers = fields(&["spec", "template", "spec", "containers"]);
        assert!(matches!(d.list_type(&containers), ListType::Map { keys, .. } if keys == ["name"]));
        let mut ports = containers.clone();
        ports.push(PathElement::Key(vec![("name".into(), "\"a\"".into())]));
        ports.push(PathElement::field("ports"));
        assert!(
            matches!(d.list_type(&ports), ListType::Map { keys, defaults } if keys == ["containerPort", "protocol"] && defaults.len() == 1)
        );
        assert_eq!(d.map_kind(&fields(&["spec", "selector"])), MapKind::Atomic);
        assert_eq!(d.map_kind(&fields(&["metadata", "labels"])), MapKind::Free);
        assert_eq!(d.list_type(&fields(&["spec", "x"])), ListType::Atomic);
        assert_eq!(
            d.smp_list(&["spec", "template", "spec", "containers"]),
            SmpList::MergeByKey("name".into())
        );
        assert_eq!(
            d.smp_list(&["metadata", "finalizers"]),
            SmpList::MergePrimitives
        );
        let svc = TypeSchema::builtin("Service");
        assert_eq!(svc.map_kind(&fields(&["spec", "selector"])), MapKind::Free);
    }

    #[test]
    fn crd_shapes() {
        let s = TypeSchema::Custom {
            schema: Some(json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "items": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object", "additionalProperties": {"type": "string"}}
            }}}})),
        };
        assert!(matches!(
            s.list_type(&fields(&["spec", "items"])),
            ListType::Map { .. }
        ));
        assert_eq!(s.list_type(&fields(&["spec", "tags"])), ListType::Set);
        assert_eq!(s.list_type(&fields(&["spec", "args"])), ListType::Atomic);
        assert_eq!(s.map_kind(&fields(&["spec"])), MapKind::Struct);
        assert_eq!(s.map_kind(&fields(&["spec", "extra"])), MapKind::Free);
        assert_eq!(
            s.list_type(&fields(&["metadata", "finalizers"])),
            ListType::Set
        );
        let none = TypeSchema::Custom { schema: None };
        assert_eq!(none.map_kind(&fields(&["spec"])), MapKind::Free);
    }
}
