//! Which resource serves a kind: a cache of the API server's discovery documents, one
//! per group/version, read on first use and read again when a kind is missing from it
//! (a CRD installed since), so the reconciler's many `resolve` calls cost no request
//! once a kind is known.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;

use super::errors;
use crate::target::object::split_api_version;
use crate::target::{ResourceMapping, TargetError};

/// Group/versions cached at most; beyond that the cache starts over (a hub sending
/// works with endless made-up apiVersions must not grow the agent's memory).
const MAX_GROUP_VERSIONS: usize = 512;

/// The longest group or version accepted (a DNS subdomain is at most 253 characters).
const MAX_NAME: usize = 253;

/// The discovery cache of one API server.
#[derive(Debug, Default)]
pub struct Discovery {
    /// `group/version` → the resources it serves (`None`: the server does not serve it).
    served: Mutex<HashMap<String, Option<Vec<ResourceMapping>>>>,
}

/// Group and version are used in a request path: only DNS-name characters pass
/// (anything else cannot be served, and must not reach the URL).
fn valid_part(part: &str) -> bool {
    part.len() <= MAX_NAME
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The mappings in a discovery document (subresources such as `deployments/status`
/// left out).
fn mappings(group: &str, version: &str, list: APIResourceList) -> Vec<ResourceMapping> {
    list.resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ResourceMapping {
            group: group.to_string(),
            version: version.to_string(),
            kind: r.kind,
            resource: r.name,
            namespaced: r.namespaced,
        })
        .collect()
}

impl Discovery {
    fn cache(&self) -> MutexGuard<'_, HashMap<String, Option<Vec<ResourceMapping>>>> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, api_version: &str, kind: &str) -> Option<ResourceMapping> {
        self.cache()
            .get(api_version)?
            .as_ref()?
            .iter()
            .find(|m| m.kind == kind)
            .cloned()
    }

    /// The resource of `kind` in `api_version`: from the cache, else from a fresh
    /// discovery document of that group/version.
    pub async fn resolve(
        &self,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
    ) -> Result<ResourceMapping, TargetError> {
        if let Some(m) = self.cached(api_version, kind) {
            return Ok(m);
        }
        let unknown = || TargetError::UnknownKind(kind.to_string());
        let (group, version) = split_api_version(api_version);
        if version.is_empty() || kind.is_empty() || !valid_part(group) || !valid_part(version) {
            return Err(unknown());
        }
        let fetched = if group.is_empty() {
            client.list_core_api_resources(version).await
        } else {
            client.list_api_group_resources(api_version).await
        };
        let served = match fetched {
            Ok(list) => Some(mappings(group, version, list)),
            // The group/version is not served at all.
            Err(e) if errors::is_not_found(&e) => None,
            Err(e) => return Err(errors::from_kube(e)),
        };
        let found = served
            .as_ref()
            .and_then(|s| s.iter().find(|m| m.kind == kind).cloned());
        let mut cache = self.cache();
        if cache.len() >= MAX_GROUP_VERSIONS {
            cache.clear();
        }
        cache.insert(api_version.to_string(), served);
        found.ok_or_else(unknown)
    }

    /// A known mapping for a group/version/resource (the kind of an [`ObjectRef`]'s
    /// resource), if discovery has seen it.
    ///
    /// [`ObjectRef`]: crate::target::ObjectRef
    pub fn kind_of(&self, group: &str, version: &str, resource: &str) -> Option<String> {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        self.cache()
            .get(&api_version)?
            .as_ref()?
            .iter()
            .find(|m| m.resource == resource)
            .map(|m| m.kind.clone())
    }
}
