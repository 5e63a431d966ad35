//! # HTTP: routing, content negotiation, responses
//!
//! One axum fallback handler parses the Kubernetes URL scheme itself:
//! `/api/v1[/namespaces/<ns>]/<resource>[/<name>[/<subresource>]]` and the same under
//! `/apis/<group>/<version>`, plus discovery, `/version`, `/openapi/v2` and the health
//! endpoints. Every request runs under the cluster lock; mutating requests then run the
//! controllers (`controllers.rs`) before the lock is released. Responses are JSON (YAML
//! and `as=Table` / `as=PartialObjectMetadata` on request; protobuf only is `406`).
//! Bodies above 3 MiB are `413`, as on the apiserver. A panic in a handler becomes a
//! `500` `Status` and leaves the store usable.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::rest::Req;
use crate::watch::Render;

/// The apiserver's request body limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// State shared by the handlers.
pub struct Shared {
    pub cluster: Mutex<Cluster>,
    pub shutdown: watch::Receiver<bool>,
    /// The resourceVersion after each request (for in-process waiters).
    pub changed: watch::Sender<u64>,
    /// `host:port` for `/api`'s `serverAddressByClientCIDRs`.
    pub server_address: String,
}

impl Shared {
    /// The cluster, even after a panic poisoned the lock (the store is only changed by
    /// complete writes).
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Query parameters.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query {
            pairs: url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// What the client accepts.
#[derive(Debug, Clone, PartialEq)]
enum Output {
    Json,
    Yaml,
    Table,
    Partial,
}

fn negotiate(accept: &str) -> ApiResult<Output> {
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let as_ = params.iter().find(|(k, _)| *k == "as").map(|(_, v)| *v);
        match (media, as_) {
            ("application/json", Some("Table")) => return Ok(Output::Table),
            (
                "application/json",
                Some("PartialObjectMetadata") | Some("PartialObjectMetadataList"),
            ) => return Ok(Output::Partial),
            ("application/json" | "*/*" | "application/*", None) => return Ok(Output::Json),
            ("application/yaml", None) => return Ok(Output::Yaml),
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(&[
        "application/json",
        "application/yaml",
    ]))
}

enum Reply {
    Json(u16, Value),
    Yaml(u16, Value),
    Table(Value),
    Raw(u16, &'static str, Vec<u8>),
    Stream(Body),
}

fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        e.to_status().to_string(),
    )
        .into_response()
}

fn respond(reply: Reply) -> Response {
    let code = |c: u16| StatusCode::from_u16(c).unwrap_or(StatusCode::OK);
    match reply {
        Reply::Json(c, v) => (
            code(c),
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Reply::Yaml(c, v) => {
            let text = serde_norway::to_string(&v).unwrap_or_default();
            (code(c), [(header::CONTENT_TYPE, "application/yaml")], text).into_response()
        }
        Reply::Table(v) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/json;as=Table;v=v1;g=meta.k8s.io",
            )],
            v.to_string(),
        )
            .into_response(),
        Reply::Raw(c, ct, bytes) => (code(c), [(header::CONTENT_TYPE, ct)], bytes).into_response(),
        Reply::Stream(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
    }
}

/// The axum handler for every path.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // Read (and drop) a body somewhat over the limit, so the client gets its 413
    // rather than a reset connection.
    let too_large = || {
        error_response(&ApiError::too_large(format!(
            "Request entity too large: limit is {MAX_BODY}"
        )))
    };
    let bytes = match to_bytes(body, 8 * MAX_BODY).await {
        Ok(b) if b.len() <= MAX_BODY => b,
        _ => return too_large(),
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        dispatch(&shared, &parts.method, &parts.uri, &parts.headers, &bytes)
    }));
    match outcome {
        Ok(Ok(reply)) => respond(reply),
        Ok(Err(e)) => error_response(&e),
        Err(_) => error_response(&ApiError::internal("the request handler panicked")),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query = Query::parse(uri.query());
    let accept = header_str(headers, header::ACCEPT);
    let discovery_get = |v: Option<Value>| -> ApiResult<Reply> {
        if *method != Method::GET {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
        v.map(|v| Reply::Json(200, v))
            .ok_or_else(ApiError::path_not_found)
    };
    match segs.as_slice() {
        [] => {
            let c = shared.lock();
            let mut paths = vec!["/api".to_string(), "/api/v1".into(), "/apis".into()];
            for (g, vs) in c.store.registry.groups() {
                paths.push(format!("/apis/{g}"));
                for v in vs {
                    paths.push(format!("/apis/{g}/{v}"));
                }
            }
            paths.extend([
                "/healthz".into(),
                "/livez".into(),
                "/openapi/v2".into(),
                "/readyz".into(),
                "/version".into(),
            ]);
            discovery_get(Some(json!({"paths": paths})))
        }
        ["version"] => {
            let git = shared.lock().config.git_version.clone();
            discovery_get(Some(discovery::version(&git)))
        }
        ["healthz" | "livez" | "readyz", ..] => {
            Ok(Reply::Raw(200, "text/plain; charset=utf-8", b"ok".to_vec()))
        }
        ["openapi", "v2"] => {
            let git = shared.lock().config.git_version.clone();
            if accept.contains("protobuf") {
                Ok(Reply::Raw(
                    200,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    discovery::openapi_v2_protobuf(&git),
                ))
            } else {
                discovery_get(Some(discovery::openapi_v2_json(&git)))
            }
        }
        ["api"] => discovery_get(Some(discovery::core_versions(&shared.server_address))),
        ["apis"] => discovery_get(Some(discovery::groups(&shared.lock().store.registry))),
        ["api", "v1"] => discovery_get(discovery::resource_list(
            &shared.lock().store.registry,
            "",
            "v1",
        )),
        ["apis", g] => discovery_get(discovery::group(&shared.lock().store.registry, g)),
        ["apis", g, v] => discovery_get(discovery::resource_list(
            &shared.lock().store.registry,
            g,
            v,
        )),
        ["api", "v1", rest @ ..] => resource(shared, method, "", "v1", rest, &query, headers, body),
        ["apis", g, v, rest @ ..] => resource(shared, method, g, v, rest, &query, headers, body),
        _ => Err(ApiError::path_not_found()),
    }
}

#[allow(clippy::too_many_arguments)]
fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    group: &str,
    version: &str,
    segs: &[&str],
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Reply> {
    let mut cluster = shared.lock();
    let registry = &cluster.store.registry;
    let namespaced_path = segs.len() >= 3
        && segs[0] == "namespaces"
        && registry
            .find(group, version, segs[2])
            .is_some_and(|t| t.namespaced);
    let (namespace, rest) = if namespaced_path {
        (Some(segs[1].to_string()), &segs[2..])
    } else {
        (None, segs)
    };
    if rest.len() > 3 || rest.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let rt = registry
        .find(group, version, rest[0])
        .ok_or_else(ApiError::path_not_found)?;
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if let Some(sub) = &subresource
        && !rt.subresources.contains(sub)
    {
        return Err(ApiError::path_not_found());
    }
    if (rt.namespaced && namespace.is_none() && name.is_some())
        || (!rt.namespaced && namespace.is_some())
    {
        return Err(ApiError::path_not_found());
    }
    let gr = rt.gr();
    let verb = match (method.clone(), name.is_some()) {
        (Method::GET, _) if query.flag("watch") => "watch",
        (Method::GET, true) => "get",
        (Method::GET, false) => "list",
        (Method::POST, false) => "create",
        (Method::PUT, true) => "update",
        (Method::PATCH, true) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        (m, _) => {
            return Err(ApiError::method_not_allowed(
                &gr,
                &m.to_string().to_lowercase(),
            ));
        }
    };
    let sub_ok = match subresource.as_deref() {
        None => rt.allows(verb),
        Some("finalize") => verb == "update",
        Some(_) => matches!(verb, "get" | "update" | "patch"),
    };
    if !sub_ok {
        return Err(ApiError::method_not_allowed(&gr, verb));
    }
    if verb == "create" && rt.namespaced && namespace.is_none() {
        return Err(ApiError::method_not_allowed(&gr, verb));
    }
    let content_type = header_str(headers, header::CONTENT_TYPE);
    let req = Req {
        rt: rt.clone(),
        namespace,
        name,
        subresource,
        query,
        user_agent: header_str(headers, header::USER_AGENT),
        content_type,
    };
    let output = negotiate(header_str(headers, header::ACCEPT))?;
    let render_one = |code: u16, v: Value| -> Reply {
        match output {
            Output::Yaml => Reply::Yaml(code, v),
            _ => Reply::Json(code, v),
        }
    };
    let reply = match verb {
        "watch" => {
            let render = match output {
                Output::Table => {
                    Render::Table(query.get("includeObject").unwrap_or("Metadata").to_string())
                }
                Output::Partial => Render::Partial,
                _ => Render::Object,
            };
            return crate::watch::start(shared, &mut cluster, &req, render).map(Reply::Stream);
        }
        "get" => {
            let obj = cluster.get(&req)?;
            match output {
                Output::Table => Reply::Table(crate::table::table(
                    &rt,
                    std::slice::from_ref(&obj),
                    Some(meta::resource_version(&obj).to_string()),
                    query.get("includeObject").unwrap_or("Metadata"),
                )),
                Output::Partial => Reply::Json(
                    200,
                    crate::watch::render_object(&rt, &obj, &Render::Partial),
                ),
                _ => render_one(200, obj),
            }
        }
        "list" => {
            let list = cluster.list(&req)?;
            match output {
                Output::Table => {
                    let items: Vec<Value> = cluster.selected(&req)?;
                    let mut t = crate::table::table(
                        &rt,
                        &items,
                        list["metadata"]["resourceVersion"]
                            .as_str()
                            .map(str::to_string),
                        query.get("includeObject").unwrap_or("Metadata"),
                    );
                    if let Some(c) = list["metadata"].get("continue") {
                        t["metadata"]["continue"] = c.clone();
                    }
                    Reply::Table(t)
                }
                Output::Partial => {
                    let items: Vec<Value> = list["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|o| crate::watch::render_object(&rt, o, &Render::Partial))
                        .collect();
                    Reply::Json(
                        200,
                        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                            "metadata": list["metadata"], "items": items}),
                    )
                }
                _ => render_one(200, list),
            }
        }
        _ => {
            let result = match verb {
                "create" => cluster.create(&req, body),
                "update" => cluster.replace(&req, body),
                "patch" => cluster.patch(&req, body),
                "delete" => cluster.delete(&req, body),
                _ => cluster.delete_collection(&req, body),
            };
            cluster.reconcile();
            let rv = cluster.store.resource_version();
            shared.changed.send_replace(rv);
            let (code, v) = result?;
            render_one(code, v)
        }
    };
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert_eq!(negotiate("").unwrap(), Output::Json);
        assert_eq!(
            negotiate("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json").unwrap(),
            Output::Table
        );
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf, application/json").unwrap(),
            Output::Json
        );
        assert_eq!(
            negotiate("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json").unwrap(),
            Output::Json
        );
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf")
                .unwrap_err()
                .code,
            406
        );
    }

    #[test]
    fn queries_and_paths() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&dryRun=All&dryRun=All&watch=1",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert_eq!(q.all("dryRun").len(), 2);
        assert!(q.flag("watch"));
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
    }
}
