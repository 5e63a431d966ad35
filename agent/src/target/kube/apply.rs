//! Writing objects: the three apply modes (§5 of the ManifestWork semantics), and the
//! metadata patches (owner references, finalizers) guarded by the resourceVersion the
//! change was computed from, retried on conflicts, so a concurrent writer's change is
//! never lost.

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use super::{errors, from_dynamic, to_dynamic};
use crate::target::object::{change_owner, desired, merge_labels};
use crate::target::{ApplyMode, ObjectRef, OwnerChange, TargetError};

/// Attempts of a read-modify-write before giving up on a conflicting writer.
pub const CONFLICT_RETRIES: usize = 5;

/// Metadata the API server owns: never sent on create or apply.
const SERVER_OWNED: [&str; 7] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
];

fn gave_up(at: &ObjectRef) -> TargetError {
    TargetError::Conflict(format!(
        "the object {} \"{}\" kept changing: gave up after {CONFLICT_RETRIES} conflicting writes",
        at.resource, at.name
    ))
}

/// The live object, or `None`.
pub async fn read(api: &Api<DynamicObject>, name: &str) -> Result<Option<Value>, TargetError> {
    match api.get_opt(name).await {
        Ok(o) => o.map(from_dynamic).transpose(),
        Err(e) => Err(errors::from_kube(e)),
    }
}

/// `object` as sent on create or server-side apply: at `at`, without server-owned
/// metadata, with `owner` applied.
fn outgoing(at: &ObjectRef, object: &Value, owner: &OwnerChange) -> Value {
    let mut body = desired(object);
    let mut meta = object["metadata"].as_object().cloned().unwrap_or_default();
    for field in SERVER_OWNED {
        meta.remove(field);
    }
    meta.insert("name".into(), json!(at.name));
    if at.namespace.is_empty() {
        meta.remove("namespace");
    } else {
        meta.insert("namespace".into(), json!(at.namespace));
    }
    change_owner(&mut meta, owner);
    body.insert("metadata".into(), Value::Object(meta));
    Value::Object(body)
}

/// Creates the object; `Ok(None)` when someone created it first.
async fn create(
    api: &Api<DynamicObject>,
    at: &ObjectRef,
    object: &Value,
    owner: &OwnerChange,
) -> Result<Option<Value>, TargetError> {
    let body = to_dynamic(outgoing(at, object, owner))?;
    match api.create(&PostParams::default(), &body).await {
        Ok(o) => from_dynamic(o).map(Some),
        Err(e) if errors::is_already_exists(&e) => Ok(None),
        Err(e) => Err(errors::from_kube(e)),
    }
}

/// Writes `object` with `mode`; see [`crate::target::Target::apply`].
pub async fn apply(
    api: &Api<DynamicObject>,
    at: &ObjectRef,
    object: &Value,
    mode: &ApplyMode,
    owner: &OwnerChange,
) -> Result<Value, TargetError> {
    if at.name.is_empty() {
        return Err(TargetError::Invalid(
            "resource name may not be empty".into(),
        ));
    }
    match mode {
        ApplyMode::Update => update(api, at, object, owner).await,
        ApplyMode::CreateOnly => {
            for _ in 0..CONFLICT_RETRIES {
                let live = match read(api, &at.name).await? {
                    Some(live) => live,
                    None => match create(api, at, object, owner).await? {
                        Some(created) => return Ok(created),
                        None => continue,
                    },
                };
                return reconcile_owner(api, at, live, owner).await;
            }
            Err(gave_up(at))
        }
        ApplyMode::ServerSideApply {
            field_manager,
            force,
        } => {
            let mut params = PatchParams::apply(field_manager);
            params.force = *force;
            let body = outgoing(at, object, &OwnerChange::Keep);
            let live = api
                .patch(&at.name, &params, &Patch::Apply(&body))
                .await
                .map_err(errors::from_kube)
                .and_then(from_dynamic)?;
            // Owner references are not part of what the work applies (another work may
            // own the object too): a separate, merging write keeps them out of the
            // field manager's set, so they are never pruned by a later apply.
            reconcile_owner(api, at, live, owner).await
        }
    }
}

/// `Update`: create when missing; otherwise compare everything but metadata and
/// status, merge labels, annotations and owner references into the live metadata
/// (keeping foreign ones and finalizers) and replace the object only when something
/// differs.
async fn update(
    api: &Api<DynamicObject>,
    at: &ObjectRef,
    object: &Value,
    owner: &OwnerChange,
) -> Result<Value, TargetError> {
    for _ in 0..CONFLICT_RETRIES {
        let Some(live) = read(api, &at.name).await? else {
            match create(api, at, object, owner).await? {
                Some(created) => return Ok(created),
                None => continue,
            }
        };
        let mut meta = live["metadata"].as_object().cloned().unwrap_or_default();
        let mut changed = desired(&live) != desired(object);
        changed |= merge_labels(&mut meta, &object["metadata"]);
        changed |= change_owner(&mut meta, owner);
        if !changed {
            return Ok(live);
        }
        let mut next = desired(object);
        // The live metadata carries the resourceVersion: a concurrent write is a 409.
        next.insert("metadata".into(), Value::Object(meta));
        match api
            .replace(
                &at.name,
                &PostParams::default(),
                &to_dynamic(Value::Object(next))?,
            )
            .await
        {
            Ok(o) => return from_dynamic(o),
            Err(e) if errors::is_conflict(&e) => continue,
            // Deleted between the read and the write: the next round creates it.
            Err(e) if errors::is_not_found(&e) => continue,
            Err(e) => return Err(errors::from_kube(e)),
        }
    }
    Err(gave_up(at))
}

/// Makes the live object's owner references what `owner` says, with a merge patch of
/// `ownerReferences`; returns the object after it.
pub async fn reconcile_owner(
    api: &Api<DynamicObject>,
    at: &ObjectRef,
    live: Value,
    owner: &OwnerChange,
) -> Result<Value, TargetError> {
    if *owner == OwnerChange::Keep {
        return Ok(live);
    }
    let patched = patch_metadata(api, at, Some(live.clone()), "ownerReferences", |meta| {
        change_owner(meta, owner)
    })
    .await?;
    Ok(patched.unwrap_or(live))
}

/// Read-modify-write of one metadata list field: `edit` changes a copy of the live
/// metadata (false: nothing to do); the field is written with a merge patch carrying
/// the resourceVersion it was computed from, so the API server refuses it (409) when
/// the object changed meanwhile, and the edit is redone on a fresh read. `first` is a
/// live object already read (saves a request). Returns the object after the write,
/// `None` when it does not exist.
pub async fn patch_metadata(
    api: &Api<DynamicObject>,
    at: &ObjectRef,
    mut first: Option<Value>,
    field: &str,
    edit: impl Fn(&mut Map<String, Value>) -> bool,
) -> Result<Option<Value>, TargetError> {
    for _ in 0..CONFLICT_RETRIES {
        let live = match first.take() {
            Some(live) => live,
            None => match read(api, &at.name).await? {
                Some(live) => live,
                None => return Ok(None),
            },
        };
        let mut meta = live["metadata"].as_object().cloned().unwrap_or_default();
        if !edit(&mut meta) {
            return Ok(Some(live));
        }
        let patch = json!({"metadata": {
            field: meta.get(field).cloned().unwrap_or(Value::Array(Vec::new())),
            "resourceVersion": live["metadata"]["resourceVersion"],
        }});
        match api
            .patch(&at.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(o) => return from_dynamic(o).map(Some),
            Err(e) if errors::is_conflict(&e) => continue,
            Err(e) if errors::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(errors::from_kube(e)),
        }
    }
    Err(gave_up(at))
}
