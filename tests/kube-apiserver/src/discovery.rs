//! # Discovery: `/version`, `/api`, `/apis`, group and group/version documents, OpenAPI
//!
//! The legacy (unaggregated) discovery documents clients walk before any other request:
//! `APIVersions` at `/api`, `APIGroupList` at `/apis` (preferred version first), an
//! `APIGroup` per group, and an `APIResourceList` per group/version with every resource
//! and subresource (`deployments/status`), kind, scope, verbs, short names, categories
//! and `storageVersionHash`. Clients that ask for aggregated discovery
//! (`as=APIGroupDiscoveryList`) get the legacy documents with `Content-Type:
//! application/json` and fall back, as they do against older servers.
//!
//! `/openapi/v2` is a valid but empty document (JSON, or protobuf — kubectl 1.20 asks
//! for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` to validate
//! manifests and skips kinds it has no schema for); `/openapi/v3` is absent, so newer
//! kubectls fall back to v2 and to client-side validation with no schema.

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::registry::{Registry, ResourceType, api_version};

/// `/version`.
pub fn version(git_version: &str) -> Value {
    let trimmed = git_version.trim_start_matches('v');
    let mut parts = trimmed.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": api_version(group, v), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let groups = registry.groups();
    let (g, vs) = groups.iter().find(|(g, _)| g == name)?;
    let mut doc = group_doc(g, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `discovery.StorageVersionHash`.
fn storage_version_hash(rt: &ResourceType) -> String {
    let digest = Sha256::digest(format!("{}/{}/{}", rt.group, rt.version, rt.kind).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// `/api/v1` and `/apis/<group>/<version>`.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for rt in &types {
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs,
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        if rt.stored {
            r["storageVersionHash"] = json!(storage_version_hash(rt));
        }
        resources.push(r);
        for sub in &rt.subresources {
            let verbs: &[&str] = if sub == "finalize" {
                &["update"]
            } else {
                &["get", "patch", "update"]
            };
            resources.push(json!({
                "name": format!("{}/{sub}", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": verbs,
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(group, version),
        "resources": resources,
    }))
}

/// An empty OpenAPI v2 document.
pub fn openapi_v2_json(git_version: &str) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": git_version},
        "paths": {},
        "definitions": {},
    })
}

/// The same document in gnostic's protobuf encoding (`openapi_v2.Document`: field 1
/// `swagger`, field 2 `info` {1 `title`, 2 `version`}, field 8 `paths`, field 9
/// `definitions`).
pub fn openapi_v2_protobuf(git_version: &str) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push((number << 3) | 2);
        let mut len = bytes.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, git_version.as_bytes());
    let mut doc = Vec::new();
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    field(&mut doc, 8, &[]);
    field(&mut doc, 9, &[]);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let r = Registry::default();
        let apis = groups(&r);
        let names: Vec<&str> = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[0], "apiextensions.k8s.io");
        assert!(names.contains(&"apps") && names.contains(&"rbac.authorization.k8s.io"));
        let apps = resource_list(&r, "apps", "v1").unwrap();
        let deploy_status = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "deployments/status")
            .unwrap();
        assert_eq!(deploy_status["verbs"], json!(["get", "patch", "update"]));
        assert!(resource_list(&r, "apps", "v2").is_none());
        assert_eq!(version("v1.30.2")["minor"], "30");
        let pb = openapi_v2_protobuf("v1.30.0");
        assert_eq!(&pb[..5], &[0x0a, 3, b'2', b'.', b'0']);
    }
}
