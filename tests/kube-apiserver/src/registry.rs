//! # The resource types the server serves
//!
//! A [`ResourceType`] is one group/version/resource with what discovery says about it
//! (kind, scope, verbs, short names, categories, subresources) and the storage rules the
//! apiserver's strategy for it applies: how `metadata.generation` moves, whether a
//! `DELETE` answers with the object or a `Status`, whether strategic merge patch is
//! known for it. The built-in types are listed here; custom resources come from
//! `CustomResourceDefinition`s (`crd.rs`) and join the [`Registry`] while their CRD is
//! established.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// A group and a resource (plural), the storage key of a type (`deployments.apps`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// How `metadata.generation` moves on updates (the strategies' `PrepareForUpdate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationRule {
    /// No generation (ConfigMap, Namespace, Pod, …).
    None,
    /// +1 when `.spec` changes.
    Spec,
    /// +1 when `.spec` or `metadata.annotations` change (Deployment).
    SpecAndAnnotations,
    /// +1 when anything but `metadata` and `status` changes (custom resources with a
    /// status subresource).
    AllButMetadataAndStatus,
    /// +1 when anything but `metadata` changes (custom resources without one).
    AllButMetadata,
}

/// What a custom resource type carries from its CRD version.
#[derive(Debug, Clone)]
pub struct CrdVersion {
    /// The CRD's name (`<plural>.<group>`).
    pub crd_name: String,
    /// `schema.openAPIV3Schema`, when given.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns`.
    pub printer_columns: Vec<Value>,
    /// The version objects are stored in.
    pub storage_version: String,
}

/// One served group/version/resource.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Subresources served (`status`; namespaces also `finalize`).
    pub subresources: Vec<String>,
    pub generation: GenerationRule,
    /// `DELETE` answers with the deleted object (`ReturnDeletedObject`) rather than a
    /// `Status`.
    pub returns_deleted_object: bool,
    /// A built-in (typed) kind: strategic merge patch is known for it.
    pub builtin: bool,
    /// Objects are kept (false for review resources that only answer a `create`).
    pub stored: bool,
    /// Set for custom resources.
    pub crd: Option<Arc<CrdVersion>>,
}

impl ResourceType {
    pub fn gr(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    /// `apiVersion` of this version (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    /// `apiVersion` objects are stored with.
    pub fn storage_api_version(&self) -> String {
        match &self.crd {
            Some(crd) => api_version(&self.group, &crd.storage_version),
            None => self.api_version(),
        }
    }

    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// `group/version`, or `version` for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Splits an `apiVersion` into group and version.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const CREATE_ONLY: &[&str] = &["create"];

struct Builtin {
    gv: (&'static str, &'static str),
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    generation: GenerationRule,
    returns_deleted: bool,
    verbs: &'static [&'static str],
}

const fn b(
    gv: (&'static str, &'static str),
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Builtin {
    Builtin {
        gv,
        plural,
        kind,
        namespaced,
        short: &[],
        categories: &[],
        status: false,
        generation: GenerationRule::None,
        returns_deleted: false,
        verbs: ALL_VERBS,
    }
}

impl Builtin {
    const fn short(mut self, s: &'static [&'static str]) -> Self {
        self.short = s;
        self
    }
    const fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn generation(mut self, g: GenerationRule) -> Self {
        self.generation = g;
        self
    }
    const fn returns_deleted(mut self) -> Self {
        self.returns_deleted = true;
        self
    }
    const fn verbs(mut self, v: &'static [&'static str]) -> Self {
        self.verbs = v;
        self
    }
}

const CORE: (&str, &str) = ("", "v1");
const APPS: (&str, &str) = ("apps", "v1");
const BATCH: (&str, &str) = ("batch", "v1");
const RBAC: (&str, &str) = ("rbac.authorization.k8s.io", "v1");
const AUTHZ: (&str, &str) = ("authorization.k8s.io", "v1");
const APIEXT: (&str, &str) = ("apiextensions.k8s.io", "v1");
const NETWORKING: (&str, &str) = ("networking.k8s.io", "v1");
const POLICY: (&str, &str) = ("policy", "v1");
const SCHEDULING: (&str, &str) = ("scheduling.k8s.io", "v1");
const STORAGE: (&str, &str) = ("storage.k8s.io", "v1");
const COORDINATION: (&str, &str) = ("coordination.k8s.io", "v1");
const EVENTS: (&str, &str) = ("events.k8s.io", "v1");
const AUTOSCALING: (&str, &str) = ("autoscaling", "v2");

use GenerationRule as G;

/// The built-in types, in discovery order (groups in the order the apiserver lists them).
const BUILTINS: &[Builtin] = &[
    b(CORE, "configmaps", "ConfigMap", true).short(&["cm"]),
    b(CORE, "endpoints", "Endpoints", true).short(&["ep"]),
    b(CORE, "events", "Event", true).short(&["ev"]),
    b(CORE, "limitranges", "LimitRange", true).short(&["limits"]),
    b(CORE, "namespaces", "Namespace", false)
        .short(&["ns"])
        .status()
        .verbs(NAMESPACE_VERBS),
    b(CORE, "nodes", "Node", false).short(&["no"]).status(),
    b(
        CORE,
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
    )
    .short(&["pvc"])
    .status(),
    b(CORE, "persistentvolumes", "PersistentVolume", false)
        .short(&["pv"])
        .status(),
    b(CORE, "pods", "Pod", true)
        .short(&["po"])
        .all()
        .status()
        .returns_deleted(),
    b(CORE, "resourcequotas", "ResourceQuota", true)
        .short(&["quota"])
        .status(),
    b(CORE, "secrets", "Secret", true),
    b(CORE, "serviceaccounts", "ServiceAccount", true)
        .short(&["sa"])
        .returns_deleted(),
    b(CORE, "services", "Service", true)
        .short(&["svc"])
        .all()
        .status()
        .returns_deleted(),
    b(
        APIEXT,
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    )
    .short(&["crd", "crds"])
    .status()
    .generation(G::Spec),
    b(APPS, "controllerrevisions", "ControllerRevision", true),
    b(APPS, "daemonsets", "DaemonSet", true)
        .short(&["ds"])
        .all()
        .status()
        .generation(G::Spec),
    b(APPS, "deployments", "Deployment", true)
        .short(&["deploy"])
        .all()
        .status()
        .generation(G::SpecAndAnnotations),
    b(APPS, "replicasets", "ReplicaSet", true)
        .short(&["rs"])
        .all()
        .status()
        .generation(G::Spec),
    b(APPS, "statefulsets", "StatefulSet", true)
        .short(&["sts"])
        .all()
        .status()
        .generation(G::Spec),
    b(
        AUTHZ,
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
    )
    .verbs(CREATE_ONLY),
    b(
        AUTHZ,
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
    )
    .verbs(CREATE_ONLY),
    b(AUTHZ, "subjectaccessreviews", "SubjectAccessReview", false).verbs(CREATE_ONLY),
    b(
        AUTOSCALING,
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
    )
    .short(&["hpa"])
    .all()
    .status(),
    b(BATCH, "cronjobs", "CronJob", true)
        .short(&["cj"])
        .all()
        .status()
        .generation(G::Spec),
    b(BATCH, "jobs", "Job", true)
        .all()
        .status()
        .generation(G::Spec),
    b(COORDINATION, "leases", "Lease", true),
    b(EVENTS, "events", "Event", true).short(&["ev"]),
    b(NETWORKING, "ingresses", "Ingress", true)
        .short(&["ing"])
        .status()
        .generation(G::Spec),
    b(NETWORKING, "networkpolicies", "NetworkPolicy", true)
        .short(&["netpol"])
        .generation(G::Spec),
    b(POLICY, "poddisruptionbudgets", "PodDisruptionBudget", true)
        .short(&["pdb"])
        .status()
        .generation(G::Spec),
    b(RBAC, "clusterrolebindings", "ClusterRoleBinding", false),
    b(RBAC, "clusterroles", "ClusterRole", false),
    b(RBAC, "rolebindings", "RoleBinding", true),
    b(RBAC, "roles", "Role", true),
    b(SCHEDULING, "priorityclasses", "PriorityClass", false).short(&["pc"]),
    b(STORAGE, "storageclasses", "StorageClass", false)
        .short(&["sc"])
        .returns_deleted(),
];

/// The group order of `/apis` (the apiserver's priority order for these groups).
pub const GROUP_ORDER: &[&str] = &[
    "apiextensions.k8s.io",
    "apps",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "coordination.k8s.io",
    "events.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
];

fn builtin_types() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|b| {
            let mut subresources = Vec::new();
            if b.status {
                subresources.push("status".to_string());
            }
            if b.plural == "namespaces" {
                subresources.push("finalize".to_string());
            }
            Arc::new(ResourceType {
                group: b.gv.0.to_string(),
                version: b.gv.1.to_string(),
                plural: b.plural.to_string(),
                singular: b.kind.to_lowercase(),
                kind: b.kind.to_string(),
                namespaced: b.namespaced,
                verbs: b.verbs.iter().map(|v| v.to_string()).collect(),
                short_names: b.short.iter().map(|v| v.to_string()).collect(),
                categories: b.categories.iter().map(|v| v.to_string()).collect(),
                subresources,
                generation: b.generation,
                returns_deleted_object: b.returns_deleted,
                builtin: true,
                stored: b.verbs != CREATE_ONLY,
                crd: None,
            })
        })
        .collect()
}

/// Every served type: the built-ins, then the established custom resources.
#[derive(Debug, Clone)]
pub struct Registry {
    builtins: Vec<Arc<ResourceType>>,
    custom: Vec<Arc<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            builtins: builtin_types(),
            custom: Vec::new(),
        }
    }
}

impl Registry {
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.builtins.iter().chain(self.custom.iter())
    }

    /// Replaces the custom resource types (after a CRD changed).
    pub fn set_custom(&mut self, custom: Vec<Arc<ResourceType>>) {
        self.custom = custom;
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The type of an `apiVersion` + `kind` (owner references, SubjectAccessReviews).
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.all()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// Any version of a group/resource (the storage of custom resources is shared by
    /// their versions).
    pub fn find_gr(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.all()
            .find(|t| t.group == gr.group && t.plural == gr.resource)
            .cloned()
    }

    /// Groups with their versions, preferred first, in discovery order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.all() {
            if t.group.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        let rank = |g: &str| {
            GROUP_ORDER
                .iter()
                .position(|x| *x == g)
                .unwrap_or(GROUP_ORDER.len())
        };
        groups.sort_by_key(|a| rank(&a.0));
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| compare_versions(b, a));
        }
        groups
    }

    /// The types of one group/version, in discovery order.
    pub fn group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.all()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }
}

/// Kubernetes version priority (`v1` > `v1beta2` > `v1beta1` > `v1alpha1` > other), as
/// CRD versions are ordered in discovery.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (u8, u64, u8, u64, String) {
        let parse = || -> Option<(u64, u8, u64)> {
            let rest = v.strip_prefix('v')?;
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let major = digits.parse().ok()?;
            let tail = &rest[digits.len()..];
            if tail.is_empty() {
                return Some((major, 3, 0));
            }
            for (name, rank) in [("beta", 2u8), ("alpha", 1)] {
                if let Some(n) = tail.strip_prefix(name) {
                    return Some((major, rank, n.parse().ok()?));
                }
            }
            None
        };
        match parse() {
            Some((major, rank, minor)) => (1, major, rank, minor, String::new()),
            None => (0, 0, 0, 0, v.to_string()),
        }
    }
    let (ka, kb) = (key(a), key(b));
    // Non-Kubernetes versions sort after, alphabetically.
    if ka.0 == 0 && kb.0 == 0 {
        return kb.4.cmp(&ka.4);
    }
    (ka.0, ka.2, ka.1, ka.3).cmp(&(kb.0, kb.2, kb.1, kb.3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_priority() {
        let mut v = vec!["v1alpha1", "v2", "v1", "v1beta2", "v1beta1", "foo"];
        v.sort_by(|a, b| compare_versions(b, a));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn lookups() {
        let r = Registry::default();
        let d = r.find("apps", "v1", "deployments").unwrap();
        assert_eq!(d.kind, "Deployment");
        assert!(d.has_status());
        assert_eq!(r.find_kind("v1", "ConfigMap").unwrap().plural, "configmaps");
        assert_eq!(d.gr().to_string(), "deployments.apps");
        assert!(
            !r.find("authorization.k8s.io", "v1", "subjectaccessreviews")
                .unwrap()
                .stored
        );
    }
}
