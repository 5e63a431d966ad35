//! The ManifestWork view of a stored work: the `metadata` the hub publishes in the
//! `metadata` extension and returns over REST (uid, name, namespace, generation,
//! `resourceVersion` = generation, labels, annotations, creation and deletion times),
//! plus the latest status for REST.
//!
//! Keeping `resourceVersion` equal to the generation makes the two version
//! comparisons of the protocol agree (reference §10 item 9).

use workbus_schemas::work::{ManifestWork, ObjectMeta, Time};

use crate::store::WorkRecord;

/// The work's ObjectMeta as it travels and as clients see it.
pub fn object_meta(work: &WorkRecord) -> ObjectMeta {
    ObjectMeta {
        name: work.key.name.clone(),
        namespace: work.key.cluster.clone(),
        uid: work.uid.clone(),
        resource_version: work.generation.to_string(),
        generation: work.generation,
        creation_timestamp: Some(Time::new(work.created)),
        deletion_timestamp: work.deletion.map(Time::new),
        labels: work.labels.clone(),
        annotations: work.annotations.clone(),
        ..ObjectMeta::default()
    }
}

/// The full `ManifestWork` (apiVersion, kind, metadata, spec, latest status).
pub fn manifest_work(work: &WorkRecord) -> ManifestWork {
    let mut mw = ManifestWork::new(object_meta(work), work.spec.clone());
    mw.status = work.status.as_ref().map(|s| s.status.clone());
    mw
}
