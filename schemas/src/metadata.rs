//! The ManifestWork codecs: spec and status events to and from typed works, with the
//! `metadata` extension rules of reference §5.4 in both directions.
//!
//! - Agent side ([`decode_spec_event`]): the work's UID is the `resourceid`, its name comes
//!   from the metadata (falling back to the `resourceid`), its namespace is the
//!   `clustername`, its generation the `resourceversion`; the local resourceVersion is
//!   cleared; the datatype annotation, the originalsource label and the `logtracing`
//!   entries are added. A `deletiontimestamp` makes it a deleting work with the cleanup
//!   finalizer, and its data is ignored (§5.2, §10 item 16).
//! - Source side ([`decode_status_event`]): UID and name the same way, generation from
//!   `resourceversion`, the `sequenceid` annotation added; the flat wire status is turned
//!   back into the API shape.
//!
//! Upstream error texts are kept where sdk-go has them (TV-8, TV-9).

use std::collections::BTreeMap;

use cloudevents::{AttributesReader, Event};

use crate::envelope::json_data;
use crate::event_type::{EventType, EventTypeError, MANIFEST_BUNDLES, SubResource};
use crate::extensions::{ExtensionError, LOG_TRACING_ANNOTATION_PREFIX, OcmExtensions};
use crate::work::meta::{
    ANNOTATION_DATA_TYPE, ANNOTATION_SEQUENCE_ID, FINALIZER_MANIFEST_WORK_CLEANUP,
    LABEL_ORIGINAL_SOURCE,
};
use crate::work::status::{condition_status, condition_type};
use crate::work::{
    BundleError, Condition, ManifestBundle, ManifestBundleStatus, ManifestWork, ManifestWorkSpec,
    ManifestWorkStatus, ObjectMeta, Time,
};

/// Reason of the final `Deleted` condition (sdk-go `common.ResourceDeleted`).
pub const DELETED_REASON: &str = "ManifestsDeleted";

/// The final condition an agent adds after cleaning a work up (§6.5 step 4).
pub fn deleted_condition(cluster: &str, at: Time) -> Condition {
    Condition::new(
        condition_type::DELETED,
        condition_status::TRUE,
        DELETED_REASON,
        &format!("The manifests are deleted from the cluster {cluster}"),
        at,
    )
}

/// True when the status carries `Deleted=True`: the deletion handshake is complete.
pub fn is_deleted(status: &ManifestWorkStatus) -> bool {
    status
        .condition(condition_type::DELETED)
        .is_some_and(|c| c.status == condition_status::TRUE)
}

/// Why an event is not a usable ManifestWork spec or status event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// The `type` does not parse.
    #[error(transparent)]
    Type(#[from] EventTypeError),
    /// A spec decoder got a status event or the other way round.
    #[error("unsupported event subresource {0}")]
    SubResource(String),
    /// Not the `manifestbundles` data type.
    #[error("unsupported cloudevents data type {0}")]
    DataType(String),
    /// A missing or malformed extension.
    #[error(transparent)]
    Extension(#[from] ExtensionError),
    /// `clustername` is required on spec events.
    #[error("missing extension clustername")]
    MissingClusterName,
    /// `sequenceid` is required on status events.
    #[error("missing extension sequenceid")]
    MissingSequenceId,
    /// The `metadata` extension is not an ObjectMeta.
    #[error("invalid metadata extension: {0}")]
    Metadata(String),
    /// The data is not the expected payload.
    #[error("failed to unmarshal event data: {0}")]
    Data(String),
    /// The manifest bundle fails validation.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// Whether `event_type` names a ManifestWork (`manifestbundles`) event of `expected`:
/// what [`decode_spec_event`] and [`decode_status_event`] accept, read from the type alone.
pub fn is_work_event_type(event_type: &str, expected: SubResource) -> bool {
    event_type
        .parse::<EventType>()
        .is_ok_and(|ty| ty.data_type.is_manifest_bundles() && ty.sub_resource == expected)
}

fn parse_type(event: &Event, expected: SubResource) -> Result<EventType, CodecError> {
    let ty: EventType = event.ty().parse()?;
    if !ty.data_type.is_manifest_bundles() {
        return Err(CodecError::DataType(ty.data_type.to_string()));
    }
    if ty.sub_resource != expected {
        return Err(CodecError::SubResource(ty.sub_resource.to_string()));
    }
    Ok(ty)
}

fn meta_from_event(event: &Event) -> Result<ObjectMeta, CodecError> {
    match event.metadata_json()? {
        None => Ok(ObjectMeta::default()),
        Some(map) => serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| CodecError::Metadata(e.to_string())),
    }
}

/// A spec event as the agent sees it: the work it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSpec {
    /// The parsed type (the action is informational, §3.2).
    pub event_type: EventType,
    /// The work: metadata per §5.4, spec from the bundle (empty when deleting).
    pub work: ManifestWork,
}

impl DecodedSpec {
    /// True when the event carried `deletiontimestamp`.
    pub fn is_deleting(&self) -> bool {
        self.work.metadata.deletion_timestamp.is_some()
    }
}

/// Decodes a ManifestWork spec event for the agent (§5.4 source-to-agent rules, TV-9).
/// The bundle is validated unless the work is being deleted.
pub fn decode_spec_event(event: &Event) -> Result<DecodedSpec, CodecError> {
    let event_type = parse_type(event, SubResource::Spec)?;
    let resource_id = event.resource_id()?.to_string();
    let generation = event.resource_version()?;
    let cluster = event
        .cluster_name()?
        .ok_or(CodecError::MissingClusterName)?
        .to_string();
    let deletion = event.deletion_timestamp()?;
    let log_tracing = event.log_tracing()?;

    let mut meta = meta_from_event(event)?;
    meta.uid = resource_id.clone();
    if meta.name.is_empty() {
        meta.name = resource_id;
    }
    meta.namespace = cluster;
    meta.resource_version.clear();
    meta.generation = generation;
    meta.annotations.insert(
        ANNOTATION_DATA_TYPE.to_string(),
        MANIFEST_BUNDLES.to_string(),
    );
    meta.labels.insert(
        LABEL_ORIGINAL_SOURCE.to_string(),
        event.source().to_string(),
    );
    meta.annotations.extend(log_tracing);

    let spec = match deletion {
        Some(at) => {
            meta.deletion_timestamp = Some(Time::new(at));
            meta.add_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP);
            ManifestWorkSpec::default()
        }
        None => {
            let bundle: ManifestBundle = match json_data(event) {
                None => ManifestBundle::default(),
                Some(v) => {
                    serde_json::from_value(v).map_err(|e| CodecError::Data(e.to_string()))?
                }
            };
            crate::work::validation::validate_manifests(&bundle.manifests)?;
            bundle.into()
        }
    };
    Ok(DecodedSpec {
        event_type,
        work: ManifestWork::new(meta, spec),
    })
}

/// A status event as the source sees it (§5.4 agent-to-source rules, TV-8).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedStatus {
    /// The parsed type.
    pub event_type: EventType,
    /// Work UID (`resourceid`).
    pub resource_id: String,
    /// Generation the status is for (`resourceversion`).
    pub generation: i64,
    /// The agent's `sequenceid`.
    pub sequence_id: String,
    /// The agent's `statushash`, if sent.
    pub status_hash: Option<String>,
    /// `originalsource`, if sent.
    pub original_source: Option<String>,
    /// `clustername`, if sent.
    pub cluster_name: Option<String>,
    /// The agent's metadata of the work, with UID, name fallback, generation and the
    /// sequenceid annotation applied.
    pub metadata: ObjectMeta,
    /// The status in the API shape.
    pub status: ManifestWorkStatus,
    /// The optional `manifestBundle` echo (Maestro adds it for its gRPC clients).
    pub bundle: Option<ManifestBundle>,
}

impl DecodedStatus {
    /// True when the status reports `Deleted=True`.
    pub fn is_deleted(&self) -> bool {
        is_deleted(&self.status)
    }
}

/// Decodes a ManifestWork status event for a source.
pub fn decode_status_event(event: &Event) -> Result<DecodedStatus, CodecError> {
    let event_type = parse_type(event, SubResource::Status)?;
    let resource_id = event.resource_id()?.to_string();
    let generation = event.resource_version()?;
    let sequence_id = event
        .sequence_id()?
        .ok_or(CodecError::MissingSequenceId)?
        .to_string();
    let mut meta = meta_from_event(event)?;
    meta.uid = resource_id.clone();
    if meta.name.is_empty() {
        meta.name = resource_id.clone();
    }
    meta.generation = generation;
    meta.annotations
        .insert(ANNOTATION_SEQUENCE_ID.to_string(), sequence_id.clone());
    let wire: ManifestBundleStatus = match json_data(event) {
        None => ManifestBundleStatus::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| CodecError::Data(e.to_string()))?,
    };
    let (status, bundle) = wire.into_parts();
    Ok(DecodedStatus {
        event_type,
        resource_id,
        generation,
        sequence_id,
        status_hash: event.status_hash()?.map(str::to_string),
        original_source: event.original_source()?.map(str::to_string),
        cluster_name: event.cluster_name()?.map(str::to_string),
        metadata: meta,
        status,
        bundle,
    })
}

/// The `metadata` extension value for a work's ObjectMeta.
pub fn metadata_json(meta: &ObjectMeta) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(meta) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The `logtracing` entries of a work: its `logging.open-cluster-management.io/*`
/// annotations.
pub fn log_tracing_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.annotations
        .iter()
        .filter(|(k, _)| k.starts_with(LOG_TRACING_ANNOTATION_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{AttributesWriter, EventBuilder, EventBuilderV10};
    use serde_json::json;

    fn spec_event(exts: &[(&str, &str)], data: Option<serde_json::Value>) -> Event {
        let mut b = EventBuilderV10::new()
            .id("1")
            .source("source1")
            .ty("io.open-cluster-management.works.v1alpha1.manifestbundles.spec.test");
        for (k, v) in exts {
            b = b.extension(k, *v);
        }
        if let Some(d) = data {
            b = b.data("application/json", d);
        }
        b.build().unwrap()
    }

    const BASE: &[(&str, &str)] = &[
        ("resourceid", "test"),
        ("resourceversion", "13"),
        ("clustername", "cluster1"),
    ];

    fn configmap() -> serde_json::Value {
        json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test", "namespace": "test"}}]})
    }

    #[test]
    fn tv9_spec_decode() {
        let d = decode_spec_event(&spec_event(BASE, Some(configmap()))).unwrap();
        let m = &d.work.metadata;
        assert_eq!(m.uid, "test");
        assert_eq!(m.name, "test");
        assert_eq!(m.namespace, "cluster1");
        assert_eq!(m.generation, 13);
        assert_eq!(
            m.annotations[ANNOTATION_DATA_TYPE],
            "io.open-cluster-management.works.v1alpha1.manifestbundles"
        );
        assert_eq!(m.labels[LABEL_ORIGINAL_SOURCE], "source1");
        assert_eq!(d.work.spec.workload.manifests.len(), 1);
        assert!(!d.is_deleting());
    }

    #[test]
    fn tv9_deletion_ignores_data() {
        let mut exts = BASE.to_vec();
        exts.push(("deletiontimestamp", "1985-04-12T23:20:50.52Z"));
        let d =
            decode_spec_event(&spec_event(&exts, Some(json!({"manifests": "garbage"})))).unwrap();
        assert!(d.is_deleting());
        assert_eq!(
            d.work.metadata.finalizers,
            vec![FINALIZER_MANIFEST_WORK_CLEANUP.to_string()]
        );
        assert!(d.work.spec.workload.manifests.is_empty());
    }

    #[test]
    fn tv9_with_metadata() {
        let meta = json!({"uid": "original-uid", "resourceVersion": "5", "name": "original-name",
            "namespace": "original-namespace", "labels": {"l": "v"}, "annotations": {"a": "v"},
            "finalizers": ["original-finalizer"]});
        let mut exts = BASE.to_vec();
        let meta_s = meta.to_string();
        exts.push(("metadata", &meta_s));
        let mut data = configmap();
        data["executer"] = json!({"subject": {"type": "ServiceAccount", "serviceAccount": {"namespace": "ns", "name": "sa"}}});
        let d = decode_spec_event(&spec_event(&exts, Some(data))).unwrap();
        let m = &d.work.metadata;
        assert_eq!(m.uid, "test");
        assert_eq!(m.name, "original-name");
        assert_eq!(m.namespace, "cluster1");
        assert_eq!(m.resource_version, "");
        assert_eq!(m.labels["l"], "v");
        assert_eq!(m.annotations["a"], "v");
        assert_eq!(m.finalizers, vec!["original-finalizer".to_string()]);
        assert!(d.work.spec.executor.is_some());
    }

    #[test]
    fn tv9_errors() {
        let mut e = spec_event(BASE, Some(configmap()));
        e.set_type("test");
        assert!(matches!(decode_spec_event(&e), Err(CodecError::Type(_))));
        e.set_type("test-group.v1.test.spec.test");
        assert!(matches!(
            decode_spec_event(&e),
            Err(CodecError::DataType(_))
        ));
        for missing in ["resourceid", "resourceversion"] {
            let mut e = spec_event(BASE, Some(configmap()));
            e.remove_extension(missing);
            assert!(matches!(
                decode_spec_event(&e),
                Err(CodecError::Extension(ExtensionError::Missing(_)))
            ));
        }
        let mut e = spec_event(BASE, Some(configmap()));
        e.remove_extension("clustername");
        assert_eq!(decode_spec_event(&e), Err(CodecError::MissingClusterName));
        for data in [None, Some(json!({"manifests": null}))] {
            let err = decode_spec_event(&spec_event(BASE, data)).unwrap_err();
            assert_eq!(err.to_string(), "Workload manifests should not be empty");
        }
    }

    fn status_event(exts: &[(&str, &str)], data: serde_json::Value) -> Event {
        let mut e = spec_event(exts, Some(data));
        e.set_type("io.open-cluster-management.works.v1alpha1.manifestbundles.status.test");
        e
    }

    #[test]
    fn tv8_status_decode() {
        let exts = [
            ("resourceid", "test"),
            ("resourceversion", "13"),
            ("sequenceid", "1834773391719010304"),
        ];
        let data = json!({"conditions": [{"type": "Test", "status": "True", "reason": "", "message": "", "lastTransitionTime": null}]});
        let d = decode_status_event(&status_event(&exts, data)).unwrap();
        assert_eq!(d.metadata.uid, "test");
        assert_eq!(d.metadata.name, "test");
        assert_eq!(d.generation, 13);
        assert_eq!(
            d.metadata.annotations[ANNOTATION_SEQUENCE_ID],
            "1834773391719010304"
        );
        assert_eq!(d.status.conditions[0].type_, "Test");
        assert!(!d.is_deleted());

        let mut no_seq = status_event(&exts, json!({}));
        no_seq.remove_extension("sequenceid");
        assert_eq!(
            decode_status_event(&no_seq),
            Err(CodecError::MissingSequenceId)
        );
        let mut bad = status_event(&exts, json!({}));
        bad.set_type("test-group.v1.test.status.test");
        assert!(matches!(
            decode_status_event(&bad),
            Err(CodecError::DataType(_))
        ));
    }

    #[test]
    fn deleted_condition_round_trip() {
        let mut status = ManifestWorkStatus::default();
        status.conditions.push(deleted_condition("c1", Time::now()));
        assert!(is_deleted(&status));
        assert_eq!(
            status.conditions[0].message,
            "The manifests are deleted from the cluster c1"
        );
    }
}
