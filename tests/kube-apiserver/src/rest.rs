//! # The REST verbs: get, list, create, update, patch, apply, delete, deletecollection
//!
//! Request-level rules of the apiserver's handlers (`endpoints/handlers/*.go`) on top of
//! the write pipeline (`cluster.rs`): body decoding (JSON or YAML), `apiVersion`/`kind`
//! and namespace/name consistency with the URL, `generateName`, options validation
//! (`dryRun`, `fieldManager`, `force`, `fieldValidation`), optimistic concurrency
//! (`409` on a stale `resourceVersion`, `uid` preconditions; custom resources need a
//! `resourceVersion` on `PUT`), the patch types, server-side apply (create or update, with
//! conflicts), list paging (`limit`/`continue`) and selectors, and the answers' shapes
//! and codes (`201` on create, the object or a `Status` on delete).

use serde_json::{Map, Value, json};

use crate::cluster::{Cluster, ManagedMode, WriteCtx};
use crate::delete::DeleteOptions;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::Query;
use crate::managed::{self, Actor, ApplyError};
use crate::meta;
use crate::patch::{self, PatchType};
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::strategy;

/// One request against a resource.
pub struct Req<'a> {
    pub rt: std::sync::Arc<ResourceType>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub query: &'a Query,
    pub user_agent: &'a str,
    pub content_type: &'a str,
}

impl Req<'_> {
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// `managerOrUserAgent`.
    fn manager(&self) -> String {
        match self.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => self
                .user_agent
                .split('/')
                .next()
                .unwrap_or("")
                .chars()
                .take(128)
                .collect(),
        }
    }

    fn ctx(&self, dry_run: bool) -> WriteCtx {
        WriteCtx {
            actor: Actor {
                manager: self.manager(),
                api_version: self.rt.api_version(),
                subresource: self.subresource.clone().unwrap_or_default(),
                now: meta::now(),
            },
            dry_run,
        }
    }

    /// Validates `dryRun`, `fieldManager` and `fieldValidation` (`<kind>Options`);
    /// returns whether this is a dry run.
    fn write_options(&self, options_kind: &str, extra: Vec<FieldError>) -> ApiResult<bool> {
        let mut errs = extra;
        let dry_run = self.query.all("dryRun");
        errs.extend(dry_run_errors(&dry_run));
        if let Some(m) = self.query.get("fieldManager") {
            if m.len() > 128 {
                errs.push(FieldError {
                    kind: crate::error::FieldErrorKind::TooLong,
                    field: "fieldManager".into(),
                    detail: "must have at most 128 bytes".into(),
                });
            } else if m.chars().any(|c| c.is_control()) {
                errs.push(FieldError::invalid(
                    "fieldManager",
                    &Value::from(m),
                    "must only contain printable characters",
                ));
            }
        }
        if let Some(v) = self.query.get("fieldValidation")
            && !matches!(v, "" | "Ignore" | "Warn" | "Strict")
        {
            errs.push(FieldError::not_supported(
                "fieldValidation",
                &Value::from(v),
                &["Ignore", "Warn", "Strict"],
            ));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(options_kind, "meta.k8s.io", "", errs));
        }
        Ok(!dry_run.is_empty())
    }
}

/// `ValidateDryRun`: `All` is the only dry-run directive.
pub fn dry_run_errors(values: &[String]) -> Vec<FieldError> {
    values
        .iter()
        .filter(|d| *d != "All")
        .map(|d| FieldError::not_supported("dryRun", &Value::from(d.as_str()), &["All"]))
        .collect()
}

/// The object as the requested version shows it.
pub fn to_version(obj: &Value, rt: &ResourceType) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(rt.api_version()));
        m.insert("kind".into(), Value::String(rt.kind.clone()));
    }
    o
}

/// A list item: typed (built-in) lists carry no `apiVersion`/`kind` per item.
fn list_item(obj: &Value, rt: &ResourceType) -> Value {
    let mut o = to_version(obj, rt);
    if rt.builtin
        && let Some(m) = o.as_object_mut()
    {
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

fn base_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Decodes a request body (JSON or YAML).
pub fn decode_body(rt: &ResourceType, content_type: &str, body: &[u8]) -> ApiResult<Value> {
    let v: Value = match base_type(content_type) {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}",
                rt.kind
            ))
        })?,
        "application/yaml" => serde_norway::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("error decoding YAML: {e}"))
        })?,
        _ => {
            return Err(ApiError::unsupported_media_type(&[
                "application/json",
                "application/yaml",
            ]));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
            rt.kind,
            match v {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                _ => "null",
            }
        )));
    }
    Ok(v)
}

/// `apiVersion` and `kind`, when given, are the URL's (missing ones default to it, as
/// the decoder's default GroupVersionKind does).
fn check_type_meta(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let av = obj["apiVersion"].as_str().unwrap_or("").to_string();
    if !av.is_empty() && av != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): kind in the data ({kind}) does not match",
            rt.kind
        )));
    }
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    Ok(())
}

/// `EnsureObjectNamespaceMatchesRequestNamespace`.
fn settle_namespace(rt: &ResourceType, obj: &mut Value, url_ns: &str) -> ApiResult<()> {
    let m = meta::metadata_mut(obj);
    let body_ns = m
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !rt.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    if !body_ns.is_empty() && body_ns != url_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    m.insert("namespace".into(), Value::String(url_ns.to_string()));
    Ok(())
}

fn check_name(obj: &Value, url_name: &str) -> ApiResult<()> {
    let name = meta::name(obj);
    if name != url_name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({url_name})"
        )));
    }
    Ok(())
}

/// `rand.SafeEncodeString` of five random characters.
fn random_suffix() -> String {
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| SAFE[*b as usize % SAFE.len()] as char)
        .collect()
}

/// A continue token: the list's resourceVersion and the last key returned.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid: invalid continue token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((
        v["ns"].as_str().ok_or_else(bad)?.to_string(),
        v["name"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

impl Cluster {
    fn stored(&self, r: &Req) -> ApiResult<Value> {
        self.store
            .get(&r.rt.gr(), r.ns(), r.name())
            .cloned()
            .ok_or_else(|| ApiError::not_found(&r.rt.gr(), r.name()))
    }

    /// `GET` of one object (or its `/status`).
    pub fn get(&self, r: &Req) -> ApiResult<Value> {
        Ok(to_version(&self.stored(r)?, &r.rt))
    }

    /// The objects a list (or watch) selects, with the selectors parsed.
    pub fn selected(&self, r: &Req) -> ApiResult<Vec<Value>> {
        let labels = LabelSelector::parse(r.query.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(r.query.get("fieldSelector").unwrap_or(""), &r.rt.kind)?;
        Ok(self
            .store
            .list(&r.rt.gr(), r.namespace.as_deref())
            .filter(|o| labels.matches(o) && fields.matches(o))
            .cloned()
            .collect())
    }

    /// `GET` of a collection.
    pub fn list(&self, r: &Req) -> ApiResult<Value> {
        let rv = self.store.resource_version();
        let mut items = self.selected(r)?;
        if let Some(token) = r.query.get("continue").filter(|t| !t.is_empty()) {
            let (ns, name) = decode_continue(token)?;
            items.retain(|o| (meta::namespace(o), meta::name(o)) > (ns.as_str(), name.as_str()));
        }
        let limit = match r.query.get("limit") {
            Some(l) if !l.is_empty() => l
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            _ => 0,
        };
        let mut list_meta = Map::new();
        list_meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if limit > 0 && items.len() > limit as usize {
            let rest = items.len() - limit as usize;
            items.truncate(limit as usize);
            if let Some(last) = items.last() {
                list_meta.insert(
                    "continue".into(),
                    json!(encode_continue(rv, meta::namespace(last), meta::name(last))),
                );
            }
            list_meta.insert("remainingItemCount".into(), json!(rest));
        }
        Ok(json!({
            "kind": format!("{}List", r.rt.kind),
            "apiVersion": r.rt.api_version(),
            "metadata": list_meta,
            "items": items.iter().map(|o| list_item(o, &r.rt)).collect::<Vec<_>>(),
        }))
    }

    /// `POST`.
    pub fn create(&mut self, r: &Req, body: &[u8]) -> ApiResult<(u16, Value)> {
        let dry_run = r.write_options("CreateOptions", Vec::new())?;
        let mut obj = decode_body(&r.rt, r.content_type, body)?;
        if !r.rt.stored {
            check_type_meta(&r.rt, &mut obj)?;
            return Ok((201, self.review(&r.rt, r.namespace.as_deref(), obj)?));
        }
        check_type_meta(&r.rt, &mut obj)?;
        settle_namespace(&r.rt, &mut obj, r.ns())?;
        let m = meta::metadata_mut(&mut obj);
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty()
            && let Some(g) = m.get("generateName").and_then(Value::as_str)
            && !g.is_empty()
        {
            let generated = format!("{g}{}", random_suffix());
            m.insert("name".into(), Value::String(generated));
        }
        if m.get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let out = self.create_object(&r.rt, obj, &r.ctx(dry_run), None)?;
        Ok((201, to_version(&out, &r.rt)))
    }

    /// `PUT` (also of `/status` and `/finalize`).
    pub fn replace(&mut self, r: &Req, body: &[u8]) -> ApiResult<(u16, Value)> {
        let dry_run = r.write_options("UpdateOptions", Vec::new())?;
        let mut obj = decode_body(&r.rt, r.content_type, body)?;
        check_type_meta(&r.rt, &mut obj)?;
        settle_namespace(&r.rt, &mut obj, r.ns())?;
        check_name(&obj, r.name())?;
        let old = self.stored(r)?;
        let gr = r.rt.gr();
        let rv = meta::resource_version(&obj);
        if rv.is_empty() {
            if !r.rt.builtin {
                return Err(ApiError::invalid(
                    &r.rt.kind,
                    &r.rt.group,
                    r.name(),
                    vec![FieldError {
                        kind: crate::error::FieldErrorKind::Invalid("0x0".into()),
                        field: "metadata.resourceVersion".into(),
                        detail: "must be specified for an update".into(),
                    }],
                ));
            }
        } else if rv != meta::resource_version(&old) {
            return Err(ApiError::stale(&gr, r.name()));
        }
        let uid = meta::uid(&obj);
        if !uid.is_empty() && uid != meta::uid(&old) {
            return Err(ApiError::precondition(
                &gr,
                r.name(),
                "UID",
                uid,
                meta::uid(&old),
            ));
        }
        let out = self.update_object(
            &r.rt,
            &old,
            obj,
            r.subresource.as_deref(),
            &r.ctx(dry_run),
            ManagedMode::Update,
        )?;
        Ok((200, to_version(&out, &r.rt)))
    }

    /// `PATCH`: JSON, merge, strategic merge or apply.
    pub fn patch(&mut self, r: &Req, body: &[u8]) -> ApiResult<(u16, Value)> {
        let accepted = patch::accepted(r.rt.builtin);
        let ptype = PatchType::from_content_type(r.content_type)
            .filter(|p| *p != PatchType::Strategic || r.rt.builtin)
            .ok_or_else(|| ApiError::unsupported_media_type(&accepted))?;
        let mut extra = Vec::new();
        let force = r.query.get("force");
        if ptype == PatchType::Apply {
            if r.query.get("fieldManager").is_none_or(str::is_empty) {
                extra.push(FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                ));
            }
        } else if force.is_some() {
            extra.push(FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            ));
        }
        let dry_run = r.write_options("PatchOptions", extra)?;
        let force = match force {
            None | Some("false") | Some("0") | Some("") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "strconv.ParseBool: parsing {other:?}: invalid syntax"
                )));
            }
        };
        let ctx = r.ctx(dry_run);
        if ptype == PatchType::Apply {
            return self.apply(r, body, force, &ctx);
        }
        let old = self.stored(r)?;
        let patch_doc: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let current = to_version(&old, &r.rt);
        let patched = match ptype {
            PatchType::Json => patch::json::json_patch(&current, &patch_doc)?,
            PatchType::Merge => {
                if !patch_doc.is_object() {
                    return Err(ApiError::bad_request("Invalid JSON Patch"));
                }
                patch::json::merge_patch(&current, &patch_doc)
            }
            PatchType::Strategic => {
                patch::strategic::strategic_merge(&current, &patch_doc, &strategy::schema(&r.rt))?
            }
            PatchType::Apply => unreachable!("handled above"),
        };
        if !patched.is_object() {
            return Err(ApiError::unprocessable(
                "the patch did not result in an object",
            ));
        }
        let gr = r.rt.gr();
        check_name(&patched, r.name())?;
        if r.rt.namespaced && meta::namespace(&patched) != r.ns() {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let prv = meta::resource_version(&patched);
        if !prv.is_empty() && prv != meta::resource_version(&old) {
            return Err(ApiError::stale(&gr, r.name()));
        }
        if !meta::uid(&patched).is_empty() && meta::uid(&patched) != meta::uid(&old) {
            return Err(ApiError::precondition(
                &gr,
                r.name(),
                "UID",
                meta::uid(&patched),
                meta::uid(&old),
            ));
        }
        let out = self.update_object(
            &r.rt,
            &old,
            patched,
            r.subresource.as_deref(),
            &ctx,
            ManagedMode::Update,
        )?;
        Ok((200, to_version(&out, &r.rt)))
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    fn apply(
        &mut self,
        r: &Req,
        body: &[u8],
        force: bool,
        ctx: &WriteCtx,
    ) -> ApiResult<(u16, Value)> {
        let mut config: Value = serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the applied configuration is not an object",
            ));
        }
        let rt = r.rt.clone();
        let gr = rt.gr();
        let av = config["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = config["kind"].as_str().unwrap_or("").to_string();
        if av.is_empty() || kind.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {av}, Kind={kind}"
            )));
        }
        if av != rt.api_version() || kind != rt.kind {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
        let old = self.store.get(&gr, r.ns(), r.name()).cloned();
        if old.is_none() && r.subresource.is_some() {
            // Status writes never create.
            return Err(ApiError::not_found(&gr, r.name()));
        }
        let cfg_meta = meta::metadata(&config).cloned().unwrap_or_default();
        if cfg_meta.get("managedFields").is_some_and(|m| !m.is_null()) {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let cfg_name = cfg_meta.get("name").and_then(Value::as_str).unwrap_or("");
        if !cfg_name.is_empty() && cfg_name != r.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({cfg_name}) does not match the name on the URL ({})",
                r.name()
            )));
        }
        let cfg_ns = cfg_meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if rt.namespaced && !cfg_ns.is_empty() && cfg_ns != r.ns() {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let cfg_uid = cfg_meta.get("uid").and_then(Value::as_str).unwrap_or("");
        if !cfg_uid.is_empty() {
            match &old {
                None => {
                    return Err(ApiError::conflict(
                        &gr,
                        r.name(),
                        format!(
                            "uid mismatch: the provided object specified uid {cfg_uid}, and no existing object was found"
                        ),
                    ));
                }
                Some(o) if meta::uid(o) != cfg_uid => {
                    return Err(ApiError::precondition(
                        &gr,
                        r.name(),
                        "UID",
                        cfg_uid,
                        meta::uid(o),
                    ));
                }
                Some(_) => {}
            }
        }
        let cfg_rv = cfg_meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !cfg_rv.is_empty()
            && old
                .as_ref()
                .is_none_or(|o| meta::resource_version(o) != cfg_rv)
        {
            return Err(ApiError::stale(&gr, r.name()));
        }
        {
            let m = meta::metadata_mut(&mut config);
            for f in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "selfLink",
                "generation",
            ] {
                m.remove(f);
            }
            m.insert("name".into(), json!(r.name()));
            if rt.namespaced {
                m.insert("namespace".into(), json!(r.ns()));
            } else {
                m.remove("namespace");
            }
        }
        if let Some(o) = config.as_object_mut() {
            o.insert("apiVersion".into(), json!(rt.storage_api_version()));
        }
        let managers = old
            .as_ref()
            .map(|o| managed::decode(o).unwrap_or_default())
            .unwrap_or_default();
        let mut zero = strategy::zero(&rt);
        zero["apiVersion"] = json!(rt.storage_api_version());
        zero["kind"] = json!(rt.kind);
        let live = old.as_ref().map(|o| {
            let mut l = o.clone();
            l["apiVersion"] = json!(rt.storage_api_version());
            l
        });
        let (schema, ignore) = (
            strategy::schema(&rt),
            strategy::ignore(&rt, r.subresource.as_deref()),
        );
        let cx = managed::Context {
            actor: &ctx.actor,
            schema: &schema,
            ignore: &ignore,
            zero: &zero,
        };
        let applied =
            managed::apply(managers, live.as_ref(), &config, &cx, force).map_err(|e| match e {
                ApplyError::Conflicts(c) => managed::conflict_error(&c),
                ApplyError::Invalid(e) => ApiError::internal(format!(
                    "failed to create typed patch object ({}/{}; {}, Kind={}): {e}",
                    r.ns(),
                    r.name(),
                    rt.api_version(),
                    rt.kind
                )),
            })?;
        match old {
            None => {
                let mut obj = applied.object;
                {
                    let m = meta::metadata_mut(&mut obj);
                    m.insert("name".into(), json!(r.name()));
                    if rt.namespaced {
                        m.insert("namespace".into(), json!(r.ns()));
                    }
                }
                let out = self.create_object(&rt, obj, ctx, Some(applied.managers))?;
                Ok((201, to_version(&out, &rt)))
            }
            Some(old) => {
                let out = self.update_object(
                    &rt,
                    &old,
                    applied.object,
                    r.subresource.as_deref(),
                    ctx,
                    ManagedMode::Applied(applied.managers),
                )?;
                Ok((200, to_version(&out, &rt)))
            }
        }
    }

    /// `DELETE` of one object.
    pub fn delete(&mut self, r: &Req, body: &[u8]) -> ApiResult<(u16, Value)> {
        let opts = DeleteOptions::parse(body, r.query)?;
        let ctx = r.ctx(opts.dry_run);
        self.delete_object(&r.rt, r.ns(), r.name(), &opts, &ctx)
    }

    /// `DELETE` of a collection: every selected object; answers the list of them.
    pub fn delete_collection(&mut self, r: &Req, body: &[u8]) -> ApiResult<(u16, Value)> {
        let opts = DeleteOptions::parse(body, r.query)?;
        let ctx = r.ctx(opts.dry_run);
        let mut items = Vec::new();
        for o in self.selected(r)? {
            let (ns, name) = (meta::namespace(&o).to_string(), meta::name(&o).to_string());
            match self.delete_object(&r.rt, &ns, &name, &opts, &ctx) {
                Ok((_, out)) if out["kind"] != "Status" => items.push(list_item(&out, &r.rt)),
                Ok(_) => items.push(list_item(&o, &r.rt)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok((
            200,
            json!({
                "kind": format!("{}List", r.rt.kind),
                "apiVersion": r.rt.api_version(),
                "metadata": {"resourceVersion": self.store.resource_version().to_string()},
                "items": items,
            }),
        ))
    }
}
