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

/// Prefix of the read-only annotations the REST view adds (never stored, never sent
/// to agents, stripped from submitted works so `get -o yaml | apply` is a no-op).
pub const HUB_ANNOTATION_PREFIX: &str = "hub.workbus.io/";
/// When the latest status was received (RFC 3339).
pub const ANNOTATION_STATUS_RECEIVED: &str = "hub.workbus.io/status-received-at";
/// The generation the latest status is for.
pub const ANNOTATION_STATUS_GENERATION: &str = "hub.workbus.io/status-generation";

/// The full `ManifestWork` for REST clients (apiVersion, kind, metadata, spec, latest
/// status), with the status' receive time and generation as read-only annotations.
pub fn manifest_work(work: &WorkRecord) -> ManifestWork {
    let mut meta = object_meta(work);
    if let Some(s) = &work.status {
        meta.annotations.insert(
            ANNOTATION_STATUS_RECEIVED.to_string(),
            Time::new(s.received).to_rfc3339(),
        );
        meta.annotations.insert(
            ANNOTATION_STATUS_GENERATION.to_string(),
            s.generation.to_string(),
        );
    }
    let mut mw = ManifestWork::new(meta, work.spec.clone());
    mw.status = work.status.as_ref().map(|s| s.status.clone());
    mw
}
