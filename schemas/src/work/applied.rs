//! # AppliedManifestWork: the agent's record, on the managed cluster, of what it applied
//!
//! OCM's work agent keeps one cluster-scoped `AppliedManifestWork` per ManifestWork
//! (manifestwork-semantics §6). It is the owner (`ownerReferences`) of every object the
//! work applied, lists them in `status.appliedResources`, and carries a finalizer so
//! that its deletion waits until the agent has released them. Its name ties it to the
//! hub the work came from: `<hubHash>-<work name>`, where the hub hash is the lowercase
//! hex SHA-256 of the hub's address (for the MQTT driver, the sdk-go config's
//! `brokerHost`).
//!
//! Shapes and names follow `open-cluster-management.io/api` `work/v1/types.go`
//! (`AppliedManifestWork`, `AppliedManifestWorkSpec`, `AppliedManifestWorkStatus`,
//! `AppliedManifestResourceMeta`) and `workv1.AppliedManifestWorkFinalizer`. Unknown
//! members of spec and status survive a round trip, like every type in [`super`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::meta::{ObjectMeta, Time};
use super::serde_go::nullable;

/// API group of `AppliedManifestWork` (the ManifestWork's).
pub const GROUP: &str = "work.open-cluster-management.io";

/// API version of `AppliedManifestWork`.
pub const VERSION: &str = "v1";

/// `apiVersion` of `AppliedManifestWork`.
pub const API_VERSION: &str = "work.open-cluster-management.io/v1";

/// `kind` of an `AppliedManifestWork`.
pub const KIND: &str = "AppliedManifestWork";

/// Plural resource name; the resource is cluster-scoped.
pub const RESOURCE: &str = "appliedmanifestworks";

/// Finalizer the agent puts on an AppliedManifestWork so that its deletion waits until
/// every applied object is released (`workv1.AppliedManifestWorkFinalizer`).
pub const FINALIZER: &str = "cluster.open-cluster-management.io/applied-manifest-work-cleanup";

/// The hub hash of a hub address: lowercase hex SHA-256 of its text, as OCM's
/// `helper.HubHash` computes it (the MQTT driver passes the `brokerHost` string).
pub fn hub_hash(hub_host: &str) -> String {
    hex::encode(Sha256::digest(hub_host.as_bytes()))
}

/// The AppliedManifestWork name of a work: `<hubHash>-<work name>`.
pub fn name(hub_hash: &str, work_name: &str) -> String {
    format!("{hub_hash}-{work_name}")
}

/// The hub hash an AppliedManifestWork name starts with: the text before the first `-`
/// (a hub hash is hex, so it never contains one). `None` when there is no `-`.
pub fn hub_hash_of_name(name: &str) -> Option<&str> {
    name.split_once('-').map(|(hash, _)| hash)
}

/// An object applied for a work: an `appliedResources` entry
/// (`AppliedManifestResourceMeta`).
///
/// Ordered by group, version, resource, namespace, name, then uid: the order OCM sorts
/// `appliedResources` in (the derived `Ord` follows the field order). No `extra` map:
/// the agent writes these entries itself, and they serve as sort and lookup keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppliedResource {
    /// API group (`""` for core).
    #[serde(default, deserialize_with = "nullable")]
    pub group: String,
    /// API version the object was applied at.
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// Plural resource.
    #[serde(default, deserialize_with = "nullable")]
    pub resource: String,
    /// Namespace (`""` for cluster-scoped objects).
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    /// Name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// The object's UID when applied (`omitempty` in Go).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub uid: String,
}

impl AppliedResource {
    /// Same object, whatever version it was applied at (OCM ignores versions here).
    pub fn same_object(&self, other: &AppliedResource) -> bool {
        (&self.group, &self.resource, &self.namespace, &self.name)
            == (&other.group, &other.resource, &other.namespace, &other.name)
    }
}

/// `AppliedManifestWorkSpec`. Go writes every field, empty or not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedManifestWorkSpec {
    /// Hash of the hub the work came from.
    #[serde(default, deserialize_with = "nullable")]
    pub hub_hash: String,
    /// Id of the agent that owns this AppliedManifestWork (several agents may share a
    /// cluster; each only looks after its own).
    #[serde(rename = "agentID", default, deserialize_with = "nullable")]
    pub agent_id: String,
    /// Name of the ManifestWork it records.
    #[serde(default, deserialize_with = "nullable")]
    pub manifest_work_name: String,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `AppliedManifestWorkStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedManifestWorkStatus {
    /// Objects applied (and ones still being deleted), sorted (see [`AppliedResource`]).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub applied_resources: Vec<AppliedResource>,
    /// When the agent found its ManifestWork gone (or from another hub): after the
    /// eviction grace period the AppliedManifestWork and what it owns are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_start_time: Option<Time>,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `work.open-cluster-management.io/v1` `AppliedManifestWork`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedManifestWork {
    /// `apiVersion`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// `kind`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// `metadata`.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: AppliedManifestWorkSpec,
    /// `status`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: AppliedManifestWorkStatus,
    /// Unknown members, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AppliedManifestWork {
    /// A new AppliedManifestWork for `work_name` from the hub with `hub_hash`, owned by
    /// `agent_id`: named `<hubHash>-<work name>`, with the cleanup [`FINALIZER`] and the
    /// given labels (the agent copies the work's).
    pub fn new(
        hub_hash: &str,
        agent_id: &str,
        work_name: &str,
        labels: std::collections::BTreeMap<String, String>,
    ) -> AppliedManifestWork {
        AppliedManifestWork {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            metadata: ObjectMeta {
                name: name(hub_hash, work_name),
                labels,
                finalizers: vec![FINALIZER.to_string()],
                ..ObjectMeta::default()
            },
            spec: AppliedManifestWorkSpec {
                hub_hash: hub_hash.to_string(),
                agent_id: agent_id.to_string(),
                manifest_work_name: work_name.to_string(),
                extra: Map::new(),
            },
            status: AppliedManifestWorkStatus::default(),
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hub_hash_is_lowercase_hex_sha256_of_the_host() {
        // sha256("broker:1883"), as `echo -n broker:1883 | sha256sum` prints it.
        let h = hub_hash("broker:1883");
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(
            hub_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(hub_hash("broker:1883"), hub_hash("broker:1884"));
    }

    #[test]
    fn name_is_hub_hash_dash_work_name() {
        let h = hub_hash("broker:1883");
        let n = name(&h, "55c61e54-a3f6-563d-9fec-b1fe297bdfdb");
        assert_eq!(n, format!("{h}-55c61e54-a3f6-563d-9fec-b1fe297bdfdb"));
        assert_eq!(hub_hash_of_name(&n), Some(h.as_str()));
        assert_eq!(hub_hash_of_name("nodash"), None);
    }

    #[test]
    fn maestro_fixture_round_trips_with_ocm_field_names() {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../testkit/fixtures/maestro/appliedmanifestwork.json"
        ))
        .unwrap();
        let amw: AppliedManifestWork = serde_json::from_value(fixture.clone()).unwrap();
        assert_eq!(amw.kind, KIND);
        assert_eq!(amw.metadata.finalizers, [FINALIZER]);
        assert_eq!(
            amw.spec.manifest_work_name,
            "55c61e54-a3f6-563d-9fec-b1fe297bdfdb"
        );
        assert_eq!(
            amw.metadata.name,
            name(&amw.spec.hub_hash, &amw.spec.manifest_work_name)
        );
        assert_eq!(amw.status.applied_resources[0].resource, "deployments");
        assert_eq!(serde_json::to_value(&amw).unwrap(), fixture);
    }

    #[test]
    fn status_fields_and_unknown_members() {
        let v = json!({"appliedResources": [{"group": "", "version": "v1", "resource": "configmaps",
            "namespace": "default", "name": "c"}], "evictionStartTime": "2025-01-02T03:04:05Z",
            "futureField": 1});
        let s: AppliedManifestWorkStatus = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.applied_resources[0].uid, "", "uid is optional");
        assert_eq!(
            s.eviction_start_time.map(|t| t.to_rfc3339()).as_deref(),
            Some("2025-01-02T03:04:05Z")
        );
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        // Empty status: nothing written (Go omitempty); null reads as empty.
        assert_eq!(
            serde_json::to_value(AppliedManifestWorkStatus::default()).unwrap(),
            json!({})
        );
        let n: AppliedManifestWorkStatus =
            serde_json::from_value(json!({"appliedResources": null})).unwrap();
        assert!(n.applied_resources.is_empty());
    }

    #[test]
    fn new_has_name_spec_finalizer_and_labels() {
        let labels = [("a".to_string(), "b".to_string())].into();
        let amw = AppliedManifestWork::new("abc", "agent-1", "w1", labels);
        let v = serde_json::to_value(&amw).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": "abc-w1", "labels": {"a": "b"}, "finalizers": [FINALIZER]},
                "spec": {"hubHash": "abc", "agentID": "agent-1", "manifestWorkName": "w1"},
                "status": {}})
        );
    }

    #[test]
    fn applied_resources_sort_by_group_version_resource_namespace_name() {
        let r = |g: &str, v: &str, res: &str, ns: &str, n: &str| AppliedResource {
            group: g.into(),
            version: v.into(),
            resource: res.into(),
            namespace: ns.into(),
            name: n.into(),
            uid: String::new(),
        };
        let mut list = [
            r("apps", "v1", "deployments", "default", "a"),
            r("", "v1", "namespaces", "", "ns"),
            r("", "v1", "configmaps", "default", "b"),
            r("", "v1", "configmaps", "default", "a"),
        ];
        list.sort();
        let names: Vec<_> = list.iter().map(|x| (&*x.resource, &*x.name)).collect();
        assert_eq!(
            names,
            [
                ("configmaps", "a"),
                ("configmaps", "b"),
                ("namespaces", "ns"),
                ("deployments", "a")
            ]
        );
        assert!(list[0].same_object(&AppliedResource {
            version: "v2".into(),
            uid: "x".into(),
            ..list[0].clone()
        }));
    }
}
