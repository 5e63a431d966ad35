//! The target chosen at run time (`--target sim|kube`): one type the agent runtime is
//! built with, delegating every [`Target`] call to the chosen cluster.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

#[cfg(feature = "kube")]
use super::kube::KubeTarget;
use super::sim::SimulatedCluster;
use super::{
    Access, AccessReview, ApplyMode, Changes, ClusterInfo, DeleteResult, ObjectRef, OwnerChange,
    ResourceMapping, Target, TargetError,
};

/// One of the targets this build has.
#[derive(Debug, Clone)]
pub enum AnyTarget {
    /// The simulated cluster.
    Sim(Arc<SimulatedCluster>),
    /// A Kubernetes API server.
    #[cfg(feature = "kube")]
    Kube(Arc<KubeTarget>),
}

impl AnyTarget {
    /// How the start banner names it.
    pub fn describe(&self) -> String {
        match self {
            AnyTarget::Sim(_) => "simulated cluster".to_string(),
            #[cfg(feature = "kube")]
            AnyTarget::Kube(k) => format!("kubernetes at {}", k.url()),
        }
    }
}

/// Calls `$call` on whichever target this is.
macro_rules! delegate {
    ($self:ident, $t:ident => $call:expr) => {
        match $self {
            AnyTarget::Sim($t) => $call,
            #[cfg(feature = "kube")]
            AnyTarget::Kube($t) => $call,
        }
    };
}

impl Target for AnyTarget {
    async fn resolve(&self, api_version: &str, kind: &str) -> Result<ResourceMapping, TargetError> {
        delegate!(self, t => t.resolve(api_version, kind).await)
    }

    async fn get(&self, at: &ObjectRef) -> Result<Option<Value>, TargetError> {
        delegate!(self, t => t.get(at).await)
    }

    async fn apply(
        &self,
        at: &ObjectRef,
        object: &Value,
        mode: &ApplyMode,
        owner: &OwnerChange,
    ) -> Result<Value, TargetError> {
        delegate!(self, t => t.apply(at, object, mode, owner).await)
    }

    async fn delete(&self, at: &ObjectRef, uid: Option<&str>) -> Result<DeleteResult, TargetError> {
        delegate!(self, t => t.delete(at, uid).await)
    }

    async fn remove_owner(&self, at: &ObjectRef, owner_uid: &str) -> Result<(), TargetError> {
        delegate!(self, t => t.remove_owner(at, owner_uid).await)
    }

    async fn list(&self, resource: &ResourceMapping) -> Result<Vec<Value>, TargetError> {
        delegate!(self, t => t.list(resource).await)
    }

    async fn update_status(&self, at: &ObjectRef, status: &Value) -> Result<Value, TargetError> {
        delegate!(self, t => t.update_status(at, status).await)
    }

    async fn remove_finalizer(&self, at: &ObjectRef, finalizer: &str) -> Result<(), TargetError> {
        delegate!(self, t => t.remove_finalizer(at, finalizer).await)
    }

    async fn review_access(&self, review: &AccessReview) -> Result<Access, TargetError> {
        delegate!(self, t => t.review_access(review).await)
    }

    async fn watch(
        &self,
        resource: &ResourceMapping,
        namespace: &str,
    ) -> Result<Option<Changes>, TargetError> {
        delegate!(self, t => t.watch(resource, namespace).await)
    }

    async fn cluster_info(&self) -> ClusterInfo {
        delegate!(self, t => t.cluster_info().await)
    }

    fn next_change(&self, at: &ObjectRef) -> Option<Duration> {
        delegate!(self, t => t.next_change(at))
    }
}
