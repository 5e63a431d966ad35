//! # The controllers, run to a fixed point after every write
//!
//! A real cluster's controllers react to watch events some milliseconds after a write.
//! Here they run synchronously at the end of every mutating request (and of every
//! in-process hook), in rounds until a round changes nothing: the CRD establishing and
//! cleanup controllers, the namespace controller, the garbage collector and the status
//! simulator. The response a client gets is the state right after its own write (a
//! created Deployment has an empty status, a CRD is not yet established); everything
//! the controllers did after it is already visible to its next request and on its
//! watches, in order. Tests therefore never wait for a controller by time.

use std::sync::Arc;

use crate::cluster::{Cluster, crds_gr};
use crate::crd;
use crate::meta;
use crate::registry::{GroupResource, ResourceType};

/// Rounds after which a reconcile gives up (a controller that never settles would be a
/// bug; the store stays consistent either way).
const MAX_ROUNDS: usize = 64;

impl Cluster {
    /// Rebuilds the custom resource types from the established CRDs.
    pub fn refresh_custom_types(&mut self) {
        let mut types: Vec<Arc<ResourceType>> = Vec::new();
        for c in self.store.list(&crds_gr(), None) {
            if crd::condition_true(c, "Established") {
                types.extend(crd::resource_types(c));
            }
        }
        self.store.registry.set_custom(types);
    }

    fn establish_crds(&mut self) -> bool {
        let Some(rt) = self.store.registry.find_gr(&crds_gr()) else {
            return false;
        };
        let now = meta::now();
        let pending: Vec<_> = self
            .store
            .list(&crds_gr(), None)
            .filter(|c| !meta::is_deleting(c))
            .filter_map(|c| crd::established_status(c, &now).map(|s| (c.clone(), s)))
            .collect();
        let mut changed = false;
        for (old, status) in pending {
            changed |= self
                .write_status(&rt, &old, status, "kube-apiserver")
                .is_ok();
        }
        changed
    }

    fn cleanup_crds(&mut self) -> bool {
        let terminating: Vec<_> = self
            .store
            .list(&crds_gr(), None)
            .filter(|c| meta::is_deleting(c))
            .filter(|c| {
                meta::finalizers(c)
                    .iter()
                    .any(|f| f == crd::CLEANUP_FINALIZER)
            })
            .cloned()
            .collect();
        let mut changed = false;
        for c in terminating {
            let gr = GroupResource::new(
                c["spec"]["group"].as_str().unwrap_or(""),
                c["spec"]["names"]["plural"].as_str().unwrap_or(""),
            );
            let instances: Vec<_> = self.store.list(&gr, None).cloned().collect();
            if instances.is_empty() {
                changed |=
                    self.drop_finalizer(&crds_gr(), "", meta::name(&c), crd::CLEANUP_FINALIZER);
                continue;
            }
            let Some(rt) = self.store.registry.find_gr(&gr) else {
                continue;
            };
            for i in instances.iter().filter(|i| !meta::is_deleting(i)) {
                let ctx = crate::cluster::WriteCtx::controller(
                    "kube-apiserver",
                    &rt.storage_api_version(),
                    "",
                );
                changed |= self
                    .delete_object(
                        &rt,
                        meta::namespace(i),
                        meta::name(i),
                        &Default::default(),
                        &ctx,
                    )
                    .is_ok();
            }
        }
        changed
    }

    /// Runs every controller until nothing changes.
    pub fn reconcile(&mut self) {
        for _ in 0..MAX_ROUNDS {
            self.refresh_custom_types();
            if !self.store.dirty {
                return;
            }
            self.store.dirty = false;
            let mut changed = self.establish_crds();
            changed |= self.cleanup_crds();
            changed |= self.namespace_lifecycle();
            changed |= self.garbage_collect();
            changed |= self.simulate();
            if !changed && !self.store.dirty {
                self.refresh_custom_types();
                return;
            }
        }
        tracing::warn!("controllers did not settle within {MAX_ROUNDS} rounds");
        self.refresh_custom_types();
    }
}
