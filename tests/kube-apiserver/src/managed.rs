//! # `metadata.managedFields`: field ownership, updates, server-side apply, conflicts
//!
//! The apiserver's field manager (`k8s.io/apimachinery/pkg/util/managedfields` over
//! structured-merge-diff's `merge.Updater`), on [`FieldSet`]s:
//!
//! - every write records who changed what: an **update** (create, `PUT`, JSON/merge/
//!   strategic patch) by manager *M* gives *M* the fields it added or modified and takes
//!   them from every other manager (no conflicts, ever); removed fields leave every
//!   manager;
//! - an **apply** (`application/apply-patch+yaml`) merges the configuration onto the live
//!   object, makes the applier own exactly the fields of its configuration, removes the
//!   fields it owned last time and owns no more when nobody else owns them, and fails with
//!   `409 Conflict` when it would change a field another manager owns — unless `force`,
//!   which takes the field over;
//! - managers are entries keyed by (manager, operation, subresource, and for updates the
//!   apiVersion); `apiVersion`, `kind`, `metadata.name` and the other system fields are
//!   never owned; the status of a type with a status subresource is not owned through the
//!   main resource, and nothing but the status through the status subresource;
//! - an entry's `time` moves when its operation changed something; entries are sorted
//!   (operation, time, manager, apiVersion, subresource) as the apiserver encodes them.
//!
//! Not done: merging old update entries into `ancient-changes` (the apiserver caps them
//! at 10), the `kubectl.kubernetes.io/last-applied-configuration` upgrade path between
//! client- and server-side apply, and conversion of entries between API versions.

use serde_json::{Value, json};

use crate::fieldpath::{FieldSet, Path, PathElement, fields, path_string};
use crate::schema::TypeSchema;
use crate::typed::{Comparison, compare, merge, remove_items, to_field_set};

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub set: FieldSet,
}

impl Manager {
    fn same_identity(&self, other: &Manager) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    /// `printManager`: how conflicts name a manager.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn sort_key(&self) -> (String, String, String, String, String) {
        (
            self.operation.clone(),
            self.time.clone().unwrap_or_default(),
            self.manager.clone(),
            self.api_version.clone(),
            self.subresource.clone(),
        )
    }
}

/// Who is acting, and how.
#[derive(Debug, Clone)]
pub struct Actor {
    pub manager: String,
    pub api_version: String,
    pub subresource: String,
    pub now: String,
}

impl Actor {
    fn entry(&self, operation: &str) -> Manager {
        Manager {
            manager: self.manager.clone(),
            operation: operation.to_string(),
            api_version: self.api_version.clone(),
            time: Some(self.now.clone()),
            subresource: self.subresource.clone(),
            set: FieldSet::new(),
        }
    }
}

/// Fields an operation can neither change nor own (the strategy's reset fields).
#[derive(Debug, Clone)]
pub enum Ignore {
    Nothing,
    /// The status of the main resource of a type with a status subresource.
    Under(Vec<Path>),
    /// Everything but the status, through the status subresource.
    AllBut(Path),
}

impl Ignore {
    pub fn filter(&self, set: &FieldSet) -> FieldSet {
        match self {
            Ignore::Nothing => set.clone(),
            Ignore::Under(prefixes) => set.without_prefixes(prefixes),
            Ignore::AllBut(prefix) => set.only_under(prefix),
        }
    }

    fn filter_comparison(&self, c: Comparison) -> Comparison {
        Comparison {
            added: self.filter(&c.added),
            modified: self.filter(&c.modified),
            removed: self.filter(&c.removed),
        }
    }
}

/// Paths never owned (`stripMetaManager`).
fn strip(set: &FieldSet) -> FieldSet {
    let stripped = [
        fields(&["apiVersion"]),
        fields(&["kind"]),
        fields(&["metadata"]),
        fields(&["metadata", "name"]),
        fields(&["metadata", "namespace"]),
        fields(&["metadata", "creationTimestamp"]),
        fields(&["metadata", "selfLink"]),
        fields(&["metadata", "uid"]),
        fields(&["metadata", "clusterName"]),
        fields(&["metadata", "generation"]),
        fields(&["metadata", "managedFields"]),
        fields(&["metadata", "resourceVersion"]),
    ];
    set.difference(&stripped.into_iter().collect())
}

/// The object without the fields that are not content (`managedFields`,
/// `resourceVersion`).
fn content(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    o
}

/// Reads `metadata.managedFields`; entries that do not decode are an error.
pub fn decode(obj: &Value) -> Result<Vec<Manager>, String> {
    let Some(entries) = obj.get("metadata").and_then(|m| m.get("managedFields")) else {
        return Ok(Vec::new());
    };
    let Value::Array(entries) = entries else {
        return Err("metadata.managedFields must be a list".into());
    };
    entries
        .iter()
        .map(|e| {
            let s = |f: &str| e.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let operation = s("operation");
            if operation != "Apply" && operation != "Update" {
                return Err(format!("invalid managedFields operation {operation:?}"));
            }
            let set = match e.get("fieldsV1") {
                Some(v) => FieldSet::from_fields_v1(v)?,
                None => FieldSet::new(),
            };
            Ok(Manager {
                manager: s("manager"),
                operation,
                api_version: s("apiVersion"),
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
                subresource: s("subresource"),
                set,
            })
        })
        .collect()
}

/// The `managedFields` list, sorted as the apiserver writes it.
pub fn encode(managers: &[Manager]) -> Value {
    let mut sorted: Vec<&Manager> = managers.iter().filter(|m| !m.set.is_empty()).collect();
    sorted.sort_by_key(|m| m.sort_key());
    Value::Array(
        sorted
            .into_iter()
            .map(|m| {
                let mut e = json!({
                    "manager": m.manager,
                    "operation": m.operation,
                    "apiVersion": m.api_version,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": m.set.to_fields_v1(),
                });
                if let Some(t) = &m.time {
                    e["time"] = json!(t);
                }
                if !m.subresource.is_empty() {
                    e["subresource"] = json!(m.subresource);
                }
                e
            })
            .collect(),
    )
}

/// Writes the entries into the object (removing the field when there are none).
pub fn store(obj: &mut Value, managers: &[Manager]) {
    let encoded = encode(managers);
    let m = crate::meta::metadata_mut(obj);
    if encoded.as_array().is_some_and(|a| a.is_empty()) {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), encoded);
    }
}

/// What an operation on managed fields needs beside the objects.
pub struct Context<'a> {
    pub actor: &'a Actor,
    pub schema: &'a TypeSchema,
    pub ignore: &'a Ignore,
    /// The type's zero value: the "live" object of a create.
    pub zero: &'a Value,
}

/// An update by the context's actor from `live` to `new` (`live` is `None` on create).
/// Returns the new entries.
pub fn update(
    mut managers: Vec<Manager>,
    live: Option<&Value>,
    new: &Value,
    cx: &Context,
) -> Result<Vec<Manager>, String> {
    let (actor, schema, ignore) = (cx.actor, cx.schema, cx.ignore);
    let live = content(live.unwrap_or(cx.zero));
    let cmp = ignore.filter_comparison(compare(&live, &content(new), schema)?);
    let changed = cmp.modified.union(&cmp.added);
    for m in &mut managers {
        m.set = m.set.difference(&changed).difference(&cmp.removed);
    }
    let own = strip(&changed);
    let me = actor.entry("Update");
    match managers.iter_mut().find(|m| m.same_identity(&me)) {
        Some(existing) => {
            if !own.is_empty() {
                existing.set = existing.set.union(&own);
                existing.time = Some(actor.now.clone());
            }
        }
        None => managers.push(Manager { set: own, ..me }),
    }
    managers.retain(|m| !m.set.is_empty());
    Ok(managers)
}

/// Why an apply failed.
#[derive(Debug, Clone)]
pub enum ApplyError {
    /// The configuration cannot be typed (an associative list item without its key, …).
    Invalid(String),
    /// Fields owned by other managers would change.
    Conflicts(Vec<(Manager, Path)>),
}

/// The result of an apply.
pub struct Applied {
    pub object: Value,
    pub managers: Vec<Manager>,
    /// The object changed (else only ownership may have).
    pub changed: bool,
}

/// A server-side apply of `config` by the context's actor onto `live` (or onto the
/// type's zero value when creating).
pub fn apply(
    managers: Vec<Manager>,
    live: Option<&Value>,
    config: &Value,
    cx: &Context,
    force: bool,
) -> Result<Applied, ApplyError> {
    let (actor, schema, ignore) = (cx.actor, cx.schema, cx.ignore);
    let live = content(live.unwrap_or(cx.zero));
    let merged = merge(&live, config, schema).map_err(ApplyError::Invalid)?;
    let config_set =
        strip(&ignore.filter(&to_field_set(config, schema).map_err(ApplyError::Invalid)?));
    let me = actor.entry("Apply");
    let mut managers = managers;
    let last = managers
        .iter()
        .position(|m| m.same_identity(&me))
        .map(|i| managers.remove(i));
    managers.push(Manager {
        set: config_set,
        ..me.clone()
    });

    // Prune what the applier owned last time, owns no more, and nobody else owns.
    let pruned = match &last {
        Some(last) if !last.set.is_empty() => {
            let mut owned = FieldSet::new();
            for m in &managers {
                owned = owned.union(&m.set);
            }
            let owned = owned.with_ancestors();
            let gone = last.set.with_ancestors().difference(&owned);
            // Never prune the system fields or whole top-level sections the applier
            // never named.
            let gone = strip(&gone);
            if gone.is_empty() {
                merged
            } else {
                remove_items(&merged, &gone, schema)
            }
        }
        _ => merged,
    };

    let cmp =
        ignore.filter_comparison(compare(&live, &pruned, schema).map_err(ApplyError::Invalid)?);
    let changed_fields = cmp.modified.union(&cmp.added);
    let mut conflicts = Vec::new();
    for m in &managers {
        if m.same_identity(&me) {
            continue;
        }
        for p in m.set.intersection(&changed_fields).iter() {
            conflicts.push((m.clone(), p.clone()));
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| {
            (&a.0.manager, &a.0.operation, &a.0.api_version, &a.1).cmp(&(
                &b.0.manager,
                &b.0.operation,
                &b.0.api_version,
                &b.1,
            ))
        });
        return Err(ApplyError::Conflicts(conflicts));
    }
    for m in &mut managers {
        if !m.same_identity(&me) {
            m.set = m.set.difference(&changed_fields).difference(&cmp.removed);
        }
    }
    let changed = content(&pruned) != live;
    for m in &mut managers {
        if m.same_identity(&me) {
            m.time = if changed {
                Some(actor.now.clone())
            } else {
                last.as_ref()
                    .and_then(|l| l.time.clone())
                    .or(Some(actor.now.clone()))
            };
        }
    }
    managers.retain(|m| !m.set.is_empty());
    Ok(Applied {
        object: pruned,
        managers,
        changed,
    })
}

/// The `409 Conflict` of an apply (`internal.NewConflictError`).
pub fn conflict_error(conflicts: &[(Manager, Path)]) -> crate::error::ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", m.describe()),
                "field": path_string(p),
            })
        })
        .collect();
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].0.describe(),
            path_string(&conflicts[0].1)
        )
    } else {
        let mut lines = Vec::new();
        let mut last: Option<&Manager> = None;
        for (m, p) in conflicts {
            if last.is_none_or(|l| !l.same_identity(m)) {
                lines.push(format!("conflicts with {}:", m.describe()));
                last = Some(m);
            }
            lines.push(format!("- {}", path_string(p)));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    crate::error::ApiError::apply_conflict(message, causes)
}

/// The path of the status, for [`Ignore`].
pub fn status_path() -> Path {
    vec![PathElement::field("status")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn actor(name: &str) -> Actor {
        Actor {
            manager: name.into(),
            api_version: "v1".into(),
            subresource: String::new(),
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    struct Fixture {
        zero: Value,
        schema: TypeSchema,
        ignore: Ignore,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                zero: json!({"metadata": {}}),
                schema: TypeSchema::builtin("ConfigMap"),
                ignore: Ignore::Nothing,
            }
        }

        fn cx<'a>(&'a self, actor: &'a Actor) -> Context<'a> {
            Context {
                actor,
                schema: &self.schema,
                ignore: &self.ignore,
                zero: &self.zero,
            }
        }
    }

    #[test]
    fn apply_conflicts_with_an_updater_and_force_takes_over() {
        let f = Fixture::new();
        let (creator, applier) = (actor("creator"), actor("applier"));
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "1"}});
        let managers = update(Vec::new(), None, &obj, &f.cx(&creator)).unwrap();
        assert_eq!(
            managers[0].set.to_fields_v1(),
            json!({"f:data": {".": {}, "f:k": {}}})
        );
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "2"}});
        let Err(ApplyError::Conflicts(c)) =
            apply(managers.clone(), Some(&obj), &cfg, &f.cx(&applier), false)
        else {
            panic!("expected a conflict");
        };
        let e = conflict_error(&c);
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"creator\" using v1: .data.k"
        );
        // Same value: shared ownership, no conflict.
        let same = apply(managers.clone(), Some(&obj), &obj, &f.cx(&applier), false)
            .ok()
            .unwrap();
        assert!(!same.changed);
        assert_eq!(same.managers.len(), 2);
        let forced = apply(managers, Some(&obj), &cfg, &f.cx(&applier), true)
            .ok()
            .unwrap();
        assert_eq!(forced.object["data"]["k"], "2");
        assert_eq!(forced.managers.len(), 2, "creator keeps .data");
        assert!(
            forced
                .managers
                .iter()
                .any(|m| m.manager == "applier" && m.set.contains(&fields(&["data", "k"])))
        );
    }

    #[test]
    fn apply_prunes_what_it_no_longer_applies() {
        let f = Fixture::new();
        let a = actor("a");
        let v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "1", "j": "2"}});
        let first = apply(Vec::new(), None, &v1, &f.cx(&a), false).ok().unwrap();
        let v2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "1"}});
        let second = apply(first.managers, Some(&first.object), &v2, &f.cx(&a), false)
            .ok()
            .unwrap();
        assert_eq!(second.object["data"], json!({"k": "1"}));
    }
}
