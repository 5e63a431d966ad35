//! The **Kubernetes target** (`--target kube`): the [`Target`] contract on a real API
//! server through kube-rs, with dynamic objects (any kind the server serves, CRDs
//! included, no generated types but the SubjectAccessReview).
//!
//! - [`discovery`]: kind → resource, cached per group/version, re-read on a miss;
//! - [`apply`]: the apply modes and the guarded metadata patches;
//! - [`watch`]: list + watch per resource type;
//! - [`errors`]: API answers → [`TargetError`], with the server's message;
//! - [`connect`]: finding the cluster (`--kubeconfig`, else as kubectl does).
//!
//! ## Running the agent on a cluster
//!
//! ```sh
//! kubectl apply -f deploy/agent/crd-appliedmanifestwork.yaml
//! workbus-agent --spoke-cluster-name=edge-1 --target kube --kubeconfig ~/edge-1.yaml
//! ```
//!
//! The configuration comes from `--kubeconfig PATH` (env `WORKBUS_AGENT_KUBECONFIG`,
//! its current context); without it, as kubectl finds it: the `KUBECONFIG` variable,
//! else `~/.kube/config`, else the in-cluster service account (a pod with
//! `KUBERNETES_SERVICE_HOST` and the mounted token). At start the agent asks the API
//! server for `/version`; when no configuration is found or the server does not
//! answer, it exits with code 2 and says what it tried. The start banner names the
//! target (`target: kubernetes at https://…`). The agent needs RBAC to read and write
//! the kinds its works carry, AppliedManifestWorks, and to create
//! SubjectAccessReviews (executors). A build without the agent's `kube` cargo feature
//! (`--no-default-features`, as the hub links it) has no Kubernetes client and refuses
//! `--target kube`.
//!
//! Reads are never cached (the reconciler needs the live state); only discovery is.
//! Writes send only what changed: `Update` compares before it replaces, owner and
//! finalizer changes are merge patches guarded by the resourceVersion they were
//! computed from.

pub mod apply;
mod cluster_info;
pub mod connect;
pub mod discovery;
pub mod errors;
pub mod watch;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions,
    PropagationPolicy,
};
use serde_json::Value;

pub use connect::{ConnectError, KubeConfigSource};

use crate::target::{
    Access, AccessReview, ApplyMode, Changes, ClusterInfo, DeleteResult, ObjectRef, OwnerChange,
    ResourceMapping, Target, TargetError,
};

/// Objects asked for per list page.
const LIST_PAGE: u32 = 500;

/// A Kubernetes cluster as a [`Target`].
pub struct KubeTarget {
    client: kube::Client,
    discovery: discovery::Discovery,
    url: String,
}

impl std::fmt::Debug for KubeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTarget")
            .field("url", &self.url)
            .finish()
    }
}

/// A JSON object as kube-rs's dynamic object (what `Api` sends).
fn to_dynamic(object: Value) -> Result<DynamicObject, TargetError> {
    serde_json::from_value(object).map_err(|e| TargetError::Invalid(format!("object: {e}")))
}

/// A dynamic object (what `Api` answers) as JSON.
fn from_dynamic(object: DynamicObject) -> Result<Value, TargetError> {
    serde_json::to_value(object)
        .map_err(|e| TargetError::Unavailable(format!("kubernetes API answer: {e}")))
}

impl KubeTarget {
    /// A target on `client`; `url` names the API server in messages.
    pub fn new(client: kube::Client, url: impl Into<String>) -> KubeTarget {
        KubeTarget {
            client,
            discovery: discovery::Discovery::default(),
            url: url.into(),
        }
    }

    /// The API server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The resource behind `group`/`version`/`resource` for kube-rs (the kind only
    /// matters for new objects, which carry their own).
    fn api_resource(&self, group: &str, version: &str, resource: &str) -> ApiResource {
        ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            },
            kind: self
                .discovery
                .kind_of(group, version, resource)
                .unwrap_or_default(),
            plural: resource.to_string(),
        }
    }

    /// The API of the object's resource, in its namespace (or cluster-wide).
    fn api(&self, at: &ObjectRef) -> Api<DynamicObject> {
        let ar = self.api_resource(&at.group, &at.version, &at.resource);
        if at.namespace.is_empty() {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), &at.namespace, &ar)
        }
    }
}

impl Target for KubeTarget {
    async fn cluster_info(&self) -> ClusterInfo {
        cluster_info::cluster_info(self).await
    }

    async fn resolve(&self, api_version: &str, kind: &str) -> Result<ResourceMapping, TargetError> {
        self.discovery
            .resolve(&self.client, api_version, kind)
            .await
    }

    async fn get(&self, at: &ObjectRef) -> Result<Option<Value>, TargetError> {
        if at.name.is_empty() {
            return Ok(None);
        }
        apply::read(&self.api(at), &at.name).await
    }

    async fn apply(
        &self,
        at: &ObjectRef,
        object: &Value,
        mode: &ApplyMode,
        owner: &OwnerChange,
    ) -> Result<Value, TargetError> {
        apply::apply(&self.api(at), at, object, mode, owner).await
    }

    async fn delete(&self, at: &ObjectRef, uid: Option<&str>) -> Result<DeleteResult, TargetError> {
        if at.name.is_empty() {
            return Ok(DeleteResult::Gone);
        }
        let api = self.api(at);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: uid.map(|uid| Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&at.name, &params).await {
            // The API answers with the object while it still exists (finalizers,
            // graceful deletion), with a `Status` once it is gone; some kinds answer
            // with the object even then: a read tells.
            Ok(answer) if answer.is_left() => match apply::read(&api, &at.name).await? {
                Some(live) if uid.is_none_or(|u| live["metadata"]["uid"] == u) => {
                    Ok(DeleteResult::Pending)
                }
                _ => Ok(DeleteResult::Gone),
            },
            Ok(_) => Ok(DeleteResult::Gone),
            Err(e) if errors::is_not_found(&e) => Ok(DeleteResult::Gone),
            // A failed UID precondition is a 409 Conflict.
            Err(e) if uid.is_some() && errors::is_conflict(&e) => Ok(DeleteResult::UidMismatch),
            Err(e) => Err(errors::from_kube(e)),
        }
    }

    async fn remove_owner(&self, at: &ObjectRef, owner_uid: &str) -> Result<(), TargetError> {
        if at.name.is_empty() {
            return Ok(());
        }
        let remove = OwnerChange::Remove(owner_uid.to_string());
        apply::patch_metadata(&self.api(at), at, None, "ownerReferences", |meta| {
            crate::target::object::change_owner(meta, &remove)
        })
        .await
        .map(|_| ())
    }

    async fn list(&self, resource: &ResourceMapping) -> Result<Vec<Value>, TargetError> {
        let ar = self.api_resource(&resource.group, &resource.version, &resource.resource);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let mut params = ListParams::default().limit(LIST_PAGE);
        let mut objects = Vec::new();
        loop {
            let page = api.list(&params).await.map_err(errors::from_kube)?;
            for item in page.items {
                let mut object = from_dynamic(item)?;
                // List items come without apiVersion and kind; the reader needs them.
                object["apiVersion"] = Value::String(ar.api_version.clone());
                object["kind"] = Value::String(resource.kind.clone());
                objects.push(object);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(objects),
            }
        }
    }

    async fn update_status(&self, at: &ObjectRef, status: &Value) -> Result<Value, TargetError> {
        let api = self.api(at);
        let not_found = || {
            TargetError::NotFound(format!(
                "{}.{} \"{}\" not found",
                at.resource, at.group, at.name
            ))
        };
        if at.name.is_empty() {
            return Err(not_found());
        }
        for _ in 0..apply::CONFLICT_RETRIES {
            let Some(mut live) = apply::read(&api, &at.name).await? else {
                return Err(not_found());
            };
            if live.get("status") == Some(status) {
                return Ok(live);
            }
            // The whole object with its resourceVersion: a concurrent write is a 409.
            live["status"] = status.clone();
            match api
                .replace_status(&at.name, &PostParams::default(), &to_dynamic(live)?)
                .await
            {
                Ok(o) => return from_dynamic(o),
                Err(e) if errors::is_conflict(&e) => continue,
                Err(e) if errors::is_not_found(&e) => return Err(not_found()),
                Err(e) => return Err(errors::from_kube(e)),
            }
        }
        Err(TargetError::Conflict(format!(
            "the status of {} \"{}\" kept changing",
            at.resource, at.name
        )))
    }

    async fn remove_finalizer(&self, at: &ObjectRef, finalizer: &str) -> Result<(), TargetError> {
        if at.name.is_empty() {
            return Ok(());
        }
        apply::patch_metadata(&self.api(at), at, None, "finalizers", |meta| {
            let Some(list) = meta.get_mut("finalizers").and_then(Value::as_array_mut) else {
                return false;
            };
            let before = list.len();
            list.retain(|f| f != finalizer);
            before != list.len()
        })
        .await
        .map(|_| ())
    }

    async fn review_access(&self, review: &AccessReview) -> Result<Access, TargetError> {
        let optional = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let request = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(review.user.clone()),
                groups: (!review.groups.is_empty()).then(|| review.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(review.verb.clone()),
                    group: Some(review.group.clone()),
                    resource: Some(review.resource.clone()),
                    namespace: optional(&review.namespace),
                    name: optional(&review.name),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &request)
            .await
            .map_err(errors::from_kube)?;
        let status = answer.status.unwrap_or_default();
        Ok(if status.allowed {
            Access::Allowed
        } else {
            Access::Denied(status.reason.unwrap_or_default())
        })
    }

    async fn watch(
        &self,
        resource: &ResourceMapping,
        namespace: &str,
    ) -> Result<Option<Changes>, TargetError> {
        let ar = self.api_resource(&resource.group, &resource.version, &resource.resource);
        let api = if namespace.is_empty() || !resource.namespaced {
            Api::all_with(self.client.clone(), &ar)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &ar)
        };
        Ok(Some(watch::start(api, resource)))
    }
}
