//! Where the agent applies manifests: the [`Target`] trait, a view of a cluster shaped
//! like the Kubernetes API (resolve a kind, get, apply, delete with a UID precondition,
//! drop an owner reference), so that the simulated cluster ([`sim`]) and a real
//! Kubernetes target implement the same contract and the reconciler cannot tell them
//! apart.

pub mod any;
pub mod cluster_info;
#[cfg(feature = "kube")]
pub mod kube;
pub mod object;
pub mod sim;

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

pub use cluster_info::ClusterInfo;

/// What the API server knows about a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMapping {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub resource: String,
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
}

/// An object's address: group/version/resource plus namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectRef {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// An address from its parts (`namespace` empty for cluster-scoped objects).
    pub fn new(group: &str, version: &str, resource: &str, namespace: &str, name: &str) -> Self {
        ObjectRef {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl From<&workbus_schemas::work::applied::AppliedResource> for ObjectRef {
    fn from(r: &workbus_schemas::work::applied::AppliedResource) -> Self {
        ObjectRef::new(&r.group, &r.version, &r.resource, &r.namespace, &r.name)
    }
}

/// The owner the agent records on what it applies (the work's AppliedManifestWork).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `AppliedManifestWork` name.
    pub name: String,
    /// Its UID.
    pub uid: String,
}

impl Owner {
    /// The ownerReference JSON: plain owner, not controller (several works may own one
    /// object, manifestwork-semantics §7).
    pub fn reference(&self) -> Value {
        serde_json::json!({
            "apiVersion": workbus_schemas::work::applied::API_VERSION,
            "kind": workbus_schemas::work::applied::KIND,
            "name": self.name,
            "uid": self.uid,
        })
    }
}

/// What an apply does to the object's owner references (manifestwork-semantics §2.2, §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerChange {
    /// Make the work's AppliedManifestWork an owner (Foreground deletion).
    Add(Owner),
    /// Remove the owner reference with this UID if present (Orphan, or a
    /// SelectivelyOrphan rule matched): the object must survive the work's deletion.
    Remove(String),
    /// Leave owner references as they are.
    Keep,
}

/// How to write an object (the work's update strategy, §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyMode {
    /// Create, or update what differs.
    Update,
    /// Create if missing; never modify afterwards (owner references are still merged).
    CreateOnly,
    /// Server-side apply with a field manager.
    ServerSideApply {
        /// Field manager (default `work-agent`).
        field_manager: String,
        /// Take over conflicting fields.
        force: bool,
    },
}

/// Result of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteResult {
    /// The object is gone (or was already).
    Gone,
    /// Deletion started; the object still exists (finalizers).
    Pending,
    /// Not deleted: its UID differs from the one given (someone re-created it).
    UidMismatch,
}

/// Errors from a target, one variant per kind of API server answer the agent treats
/// differently; the `Display` text is what ends up in condition messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Something the operation needs does not exist (e.g. the object's namespace).
    #[error("{0}")]
    NotFound(String),
    /// The kind is not served (`the server doesn't have a resource type "X"`).
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownKind(String),
    /// The object is invalid for the API server.
    #[error("{0}")]
    Invalid(String),
    /// A write conflicted (e.g. server-side apply field conflict).
    #[error("{0}")]
    Conflict(String),
    /// The agent may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The API server is unreachable or failed.
    #[error("{0}")]
    Unavailable(String),
}

/// A question for the cluster's authorizer (a `SubjectAccessReview`): may `user`, in
/// `groups`, do `verb` on the object? Used to check a work's executor (§2.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessReview {
    /// User name (`system:serviceaccount:<namespace>:<name>` for a service account).
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Verb (`create`, `update`, `patch`, `get`, `delete`, `bind`, `escalate`, …).
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Object name (`""`: any).
    pub name: String,
}

/// The authorizer's answer to an [`AccessReview`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Allowed.
    Allowed,
    /// Denied, with the authorizer's reason (may be empty).
    Denied(String),
}

/// Addresses of objects that changed, sent by a [`Target::watch`] while its receiver lives.
pub type Changes = tokio::sync::mpsc::Receiver<ObjectRef>;

/// A cluster the agent applies manifests to.
pub trait Target: Send + Sync + 'static {
    /// Maps apiVersion + kind to its resource, or fails for kinds the cluster lacks.
    fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> impl Future<Output = Result<ResourceMapping, TargetError>> + Send;

    /// Reads an object's live state.
    fn get(
        &self,
        at: &ObjectRef,
    ) -> impl Future<Output = Result<Option<Value>, TargetError>> + Send;

    /// Writes `object` at `at` with `mode` (creating it when missing), changing its
    /// ownerReferences as `owner` says; existing foreign owners, finalizers, labels and
    /// annotations are preserved. Returns the live object after the write.
    fn apply(
        &self,
        at: &ObjectRef,
        object: &Value,
        mode: &ApplyMode,
        owner: &OwnerChange,
    ) -> impl Future<Output = Result<Value, TargetError>> + Send;

    /// Deletes the object if its UID is `uid` (when given), with background propagation.
    /// An object held by finalizers only gets a `deletionTimestamp`:
    /// [`DeleteResult::Pending`] until the finalizers are gone.
    fn delete(
        &self,
        at: &ObjectRef,
        uid: Option<&str>,
    ) -> impl Future<Output = Result<DeleteResult, TargetError>> + Send;

    /// Removes the owner reference with `owner_uid` from the object (orphaning it).
    fn remove_owner(
        &self,
        at: &ObjectRef,
        owner_uid: &str,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;

    /// Every object of a resource type (all namespaces), as listed by the API.
    fn list(
        &self,
        resource: &ResourceMapping,
    ) -> impl Future<Output = Result<Vec<Value>, TargetError>> + Send;

    /// Replaces the object's `status` (the status subresource) and nothing else.
    /// Returns the live object after the write; `NotFound` when it does not exist.
    fn update_status(
        &self,
        at: &ObjectRef,
        status: &Value,
    ) -> impl Future<Output = Result<Value, TargetError>> + Send;

    /// Removes `finalizer` from the object's finalizers (a terminating object whose last
    /// finalizer goes is deleted). A missing object or finalizer is not an error.
    fn remove_finalizer(
        &self,
        at: &ObjectRef,
        finalizer: &str,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;

    /// Asks the cluster's authorizer whether a user may do something (§2.4 executor).
    fn review_access(
        &self,
        review: &AccessReview,
    ) -> impl Future<Output = Result<Access, TargetError>> + Send;

    /// Watches one resource type in one namespace (`""`: cluster-scoped, or every
    /// namespace) and sends the address of each object that changes, until the
    /// receiver is dropped. `Ok(None)`: this target cannot watch (the agent polls).
    fn watch(
        &self,
        _resource: &ResourceMapping,
        _namespace: &str,
    ) -> impl Future<Output = Result<Option<Changes>, TargetError>> + Send {
        async { Ok(None) }
    }

    /// The cluster's facts for its ManagedCluster status (claims, version, capacity,
    /// API server health). The default knows nothing but that the target answers.
    fn cluster_info(&self) -> impl Future<Output = ClusterInfo> + Send {
        async { ClusterInfo::default() }
    }

    /// When the object's observed state may change next on its own (e.g. a rollout
    /// finishing), so the agent can refresh status then instead of polling. `None`: no
    /// such knowledge (a real cluster), the agent's status sync interval applies.
    fn next_change(&self, _at: &ObjectRef) -> Option<Duration> {
        None
    }
}
