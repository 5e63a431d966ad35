//! Test harness: a server on its own runtime, and a blocking HTTP client (ureq) that
//! returns status codes instead of errors.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use serde_json::{Value, json};
use workbus_kube_apiserver::{KubeApiServer, RunningServer, ServerConfig};

pub struct Server {
    pub rt: tokio::runtime::Runtime,
    pub server: Option<RunningServer>,
    pub url: String,
    agent: ureq::Agent,
}

pub const JSON: &str = "application/json";
pub const MERGE: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const STRATEGIC: &str = "application/strategic-merge-patch+json";
pub const APPLY: &str = "application/apply-patch+yaml";

impl Server {
    pub fn start() -> Server {
        Server::start_with(ServerConfig::default())
    }

    pub fn start_with(config: ServerConfig) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt
            .block_on(KubeApiServer::start(config))
            .expect("server starts");
        let url = server.url().to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Server {
            rt,
            server: Some(server),
            url,
            agent,
        }
    }

    pub fn api(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    /// Any request; returns the status, the Content-Type and the body text.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, String, String) {
        let url = format!("{}{}", self.url, path);
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("User-Agent", "workbus-test/1.0");
        let req = match content_type {
            Some(ct) => req.header("Content-Type", ct),
            None => req,
        };
        let req = match accept {
            Some(a) => req.header("Accept", a),
            None => req,
        };
        let resp = match body {
            Some(b) => self.agent.run(req.body(b.to_vec()).expect("request")),
            None => self.agent.run(req.body(()).expect("request")),
        }
        .expect("the server answers");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.into_body().read_to_string().expect("a body");
        (status, ct, text)
    }

    fn json_of(status: u16, text: &str) -> (u16, Value) {
        let v = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()));
        (status, v)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, t) = self.raw("GET", path, None, Some(JSON), None);
        Self::json_of(s, &t)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let b = body.to_string();
        let (s, _, t) = self.raw("POST", path, Some(JSON), Some(JSON), Some(b.as_bytes()));
        Self::json_of(s, &t)
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let b = body.to_string();
        let (s, _, t) = self.raw("PUT", path, Some(JSON), Some(JSON), Some(b.as_bytes()));
        Self::json_of(s, &t)
    }

    pub fn patch(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let (s, _, t) = self.raw(
            "PATCH",
            path,
            Some(content_type),
            Some(JSON),
            Some(body.as_bytes()),
        );
        Self::json_of(s, &t)
    }

    /// Server-side apply of `body` by `manager`.
    pub fn apply(&self, path: &str, manager: &str, force: bool, body: &Value) -> (u16, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let p = format!("{path}{sep}fieldManager={manager}&force={force}");
        self.patch(&p, APPLY, &body.to_string())
    }

    pub fn delete(&self, path: &str, options: Option<&Value>) -> (u16, Value) {
        let b = options.map(|o| o.to_string());
        let (s, _, t) = self.raw(
            "DELETE",
            path,
            b.as_ref().map(|_| JSON),
            Some(JSON),
            b.as_ref().map(|b| b.as_bytes()),
        );
        Self::json_of(s, &t)
    }

    /// Creates a namespace.
    pub fn namespace(&self, name: &str) {
        let (s, b) = self.post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        );
        assert_eq!(s, 201, "{b}");
    }

    /// Creates a ConfigMap; returns it.
    pub fn configmap(&self, ns: &str, obj: Value) -> Value {
        let (s, b) = self.post(&format!("/api/v1/namespaces/{ns}/configmaps"), &obj);
        assert_eq!(s, 201, "{b}");
        b
    }

    /// Opens a watch; events are read with [`Watch::next`].
    pub fn watch(&self, path: &str) -> Watch {
        let url = format!("{}{}", self.url, path);
        let resp = self
            .agent
            .get(&url)
            .header("Accept", JSON)
            .call()
            .expect("the watch opens");
        assert_eq!(resp.status().as_u16(), 200);
        Watch {
            lines: BufReader::new(Box::new(resp.into_body().into_reader())),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

pub struct Watch {
    lines: BufReader<Box<dyn Read + Send>>,
}

impl Watch {
    /// The next event, or `None` at the end of the stream.
    pub fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.lines.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("an event is one JSON line")),
        }
    }

    /// `(type, name)` of the next `n` events.
    pub fn take(&mut self, n: usize) -> Vec<(String, String)> {
        (0..n)
            .map_while(|_| self.next())
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").to_string(),
                    e["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    }
}

/// The strings at `pointer` in each entry of `v[list]` (names of items, resources,
/// columns, …).
pub fn pluck<'a>(v: &'a Value, list: &str, pointer: &str) -> Vec<&'a str> {
    v[list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.pointer(pointer).and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

pub fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
        }
    })
}

/// A namespaced CRD `widgets.example.com` (v1 storage with a status subresource and a
/// schema, v1beta1 served too).
pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                 "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "default": 1},
                        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                                  "x-kubernetes-list-map-keys": ["name"],
                                  "items": {"type": "object", "properties": {
                                      "name": {"type": "string"}, "port": {"type": "integer"}}}}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
            ]}
    })
}
