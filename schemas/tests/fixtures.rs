//! Maestro's golden events through the full decode path: MQTT structured payload →
//! CloudEvent → typed work (§5.4), and the agent event's status hash recomputed from its
//! data (TV-11, TV-16).

use workbus_schemas::metadata::{decode_spec_event, decode_status_event};
use workbus_schemas::mqtt::{self, Encoding};
use workbus_schemas::status_hash::status_hash;
use workbus_schemas::work::meta::{ANNOTATION_DATA_TYPE, LABEL_ORIGINAL_SOURCE};
use workbus_testkit::fixtures::maestro;

fn fixture(name: &str) -> workbus_schemas::Event {
    let bytes = maestro::read(name);
    mqtt::structured::decode(&bytes).expect("fixture decodes")
}

#[test]
fn maestro_spec_event_decodes_to_the_work_the_agent_sees() {
    let event = fixture("cloudevents.spec.maestro.json");
    // Through binary mode first, as it would arrive from sdk-go.
    let wire = mqtt::encode(
        &event,
        "sources/maestro/consumers/c/sourceevents",
        Encoding::Binary,
    )
    .unwrap();
    let decoded = decode_spec_event(&mqtt::decode(&wire).unwrap()).unwrap();
    let m = &decoded.work.metadata;
    assert_eq!(m.uid, "55c61e54-a3f6-563d-9fec-b1fe297bdfdb");
    assert_eq!(m.name, "55c61e54-a3f6-563d-9fec-b1fe297bdfdb");
    assert_eq!(m.namespace, "7ff1a8f4-8811-49b4-8c19-9271bc51975e");
    assert_eq!(m.generation, 1);
    assert_eq!(m.resource_version, "");
    assert_eq!(m.labels[LABEL_ORIGINAL_SOURCE], "maestro");
    assert_eq!(
        m.labels["maestro.resource.type"],
        "2d18a7dc-c731-5753-8aa9-6b2f22e3b12b"
    );
    assert_eq!(
        m.annotations[ANNOTATION_DATA_TYPE],
        "io.open-cluster-management.works.v1alpha1.manifestbundles"
    );
    let spec = &decoded.work.spec;
    assert_eq!(spec.workload.manifests.len(), 1);
    assert_eq!(spec.workload.manifests[0]["kind"], "Deployment");
    assert_eq!(spec.manifest_configs.len(), 1);
    assert!(!decoded.is_deleting());
}

#[test]
fn maestro_agent_status_hash_recomputes() {
    let event = fixture("cloudevents.agent.json");
    let wire = mqtt::encode(
        &event,
        "sources/maestro/consumers/c/agentevents",
        Encoding::Binary,
    )
    .unwrap();
    let decoded = decode_status_event(&mqtt::decode(&wire).unwrap()).unwrap();
    assert_eq!(decoded.sequence_id, "2000808179721572352");
    assert_eq!(decoded.generation, 1);
    assert_eq!(decoded.original_source.as_deref(), Some("maestro"));
    assert_eq!(
        status_hash(&decoded.status),
        "6170884280acbd9d5e69ac59a00ef7cf84d50669621643782e7a3f1ab05836cf"
    );
    assert_eq!(
        decoded.status_hash.as_deref(),
        Some(status_hash(&decoded.status).as_str())
    );
}

#[test]
fn maestro_relayed_status_keeps_the_bundle_echo() {
    let decoded = decode_status_event(&fixture("cloudevents.status.maestro.json")).unwrap();
    let bundle = decoded.bundle.expect("manifestBundle echo");
    assert_eq!(bundle.manifests.len(), 1);
    assert_eq!(decoded.status.conditions.len(), 2);
    assert_eq!(decoded.status.resource_status.manifests.len(), 1);
}

#[test]
fn maestro_relayed_status_hash_recomputes() {
    // The relayed event carries the agent's hash of a status with feedback values and
    // three per-manifest conditions: a second, independent check of the hash rules.
    let decoded = decode_status_event(&fixture("cloudevents.status.maestro.json")).unwrap();
    assert_eq!(
        decoded.status_hash.as_deref(),
        Some(status_hash(&decoded.status).as_str())
    );
}
