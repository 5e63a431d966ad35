//! The reconciler over a target whose discovery fails: a wrapper around the simulated
//! cluster (which also shows the `Target` trait is implementable outside the crate).
//! An unresolvable manifest must never be mistaken for a removed one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use workbus_agent::reconcile::{Reconciler, WorkState};
use workbus_agent::target::sim::{SimClock, SimConfig, SimulatedCluster};
use workbus_agent::target::{
    Access, AccessReview, ApplyMode, DeleteResult, ObjectRef, OwnerChange, ResourceMapping, Target,
    TargetError,
};
use workbus_schemas::work::{ManifestWork, ManifestWorkSpec, ObjectMeta};

/// The simulated cluster, with discovery that can be switched off.
struct FlakyDiscovery {
    sim: SimulatedCluster,
    down: AtomicBool,
}

impl Target for FlakyDiscovery {
    async fn resolve(&self, api_version: &str, kind: &str) -> Result<ResourceMapping, TargetError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(TargetError::Unavailable("discovery failed".into()));
        }
        self.sim.resolve(api_version, kind).await
    }
    async fn get(&self, at: &ObjectRef) -> Result<Option<Value>, TargetError> {
        self.sim.get(at).await
    }
    async fn apply(
        &self,
        at: &ObjectRef,
        object: &Value,
        mode: &ApplyMode,
        owner: &OwnerChange,
    ) -> Result<Value, TargetError> {
        self.sim.apply(at, object, mode, owner).await
    }
    async fn delete(&self, at: &ObjectRef, uid: Option<&str>) -> Result<DeleteResult, TargetError> {
        self.sim.delete(at, uid).await
    }
    async fn remove_owner(&self, at: &ObjectRef, owner_uid: &str) -> Result<(), TargetError> {
        self.sim.remove_owner(at, owner_uid).await
    }
    async fn list(&self, resource: &ResourceMapping) -> Result<Vec<Value>, TargetError> {
        self.sim.list(resource).await
    }
    async fn update_status(&self, at: &ObjectRef, status: &Value) -> Result<Value, TargetError> {
        self.sim.update_status(at, status).await
    }
    async fn remove_finalizer(&self, at: &ObjectRef, finalizer: &str) -> Result<(), TargetError> {
        self.sim.remove_finalizer(at, finalizer).await
    }
    async fn review_access(&self, review: &AccessReview) -> Result<Access, TargetError> {
        self.sim.review_access(review).await
    }
}

#[tokio::test]
async fn failing_discovery_removes_nothing() {
    let clock = SimClock::manual(0);
    let target = Arc::new(FlakyDiscovery {
        sim: SimulatedCluster::new(SimConfig {
            ready_after: Duration::ZERO,
            snapshot: None,
        })
        .with_clock(clock.clone()),
        down: AtomicBool::new(false),
    });
    let r = Reconciler::new(target.clone());
    let spec: ManifestWorkSpec = serde_json::from_value(json!({"workload": {"manifests": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}]}}))
    .unwrap();
    let meta = ObjectMeta {
        uid: "w".into(),
        name: "w".into(),
        generation: 1,
        ..ObjectMeta::default()
    };
    let w = ManifestWork::new(meta, spec);
    let out = r.apply(&w, &WorkState::default(), clock.now()).await;
    let state = out.into_state();
    target.down.store(true, Ordering::SeqCst);
    let out = r.apply(&w, &state, clock.now()).await;
    assert!(
        target
            .sim
            .object("", "v1", "configmaps", "default", "c")
            .is_some()
    );
    assert_eq!(out.applied, state.applied, "still tracked");
    let applied = &out.status.resource_status.manifests[0].conditions[0];
    assert_eq!(applied.status, "False");
    assert_eq!(
        applied.message,
        "Failed to apply manifest: discovery failed"
    );
    assert!(out.requeue_after.is_some());
}
