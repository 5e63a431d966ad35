//! Round-trip and robustness tests of the ManifestWork payload types against Maestro's
//! published events (golden data from the Go implementation): decoding then encoding every
//! fixture payload gives back the same JSON value, unknown members survive at every level,
//! the wire and API shapes convert into each other, and no input makes a decoder panic.

mod work_support;

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use work_support::{
    arb_bundle, arb_bundle_status, arb_json, arb_shaped_json, arb_work_status, fixture,
};
use workbus_schemas::work::meta::{
    ANNOTATION_DATA_TYPE, FINALIZER_MANIFEST_WORK_CLEANUP, LABEL_ORIGINAL_SOURCE,
};
use workbus_schemas::work::spec::{PropagationPolicy, UpdateStrategyType};
use workbus_schemas::work::status::FieldValue;
use workbus_schemas::work::{
    ManifestBundle, ManifestBundleStatus, ManifestWork, ManifestWorkSpec, ManifestWorkStatus,
    ObjectMeta, Time,
};

/// Decodes `v` as `T`, re-encodes it, and returns the result.
fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Value {
    let typed: T = serde_json::from_value(v.clone()).expect("decodes");
    serde_json::to_value(&typed).expect("encodes")
}

#[test]
fn spec_event_data_round_trips() {
    let data = &fixture("cloudevents.spec.maestro.json")["data"];
    assert_eq!(&round_trip::<ManifestBundle>(data), data);
    let bundle: ManifestBundle = serde_json::from_value(data.clone()).unwrap();
    assert_eq!(bundle.manifests.len(), 1);
    let cfg = &bundle.manifest_configs[0];
    let strategy = cfg.update_strategy.as_ref().unwrap();
    assert_eq!(strategy.kind(), UpdateStrategyType::ServerSideApply);
    let ssa = strategy.server_side_apply.as_ref().unwrap();
    assert!(ssa.force);
    assert_eq!(ssa.field_manager, "maestro-agent");
    assert_eq!(cfg.feedback_rules[0].json_paths[0].path, ".status");
    assert!(bundle.validate().is_ok());
}

#[test]
fn agent_status_data_round_trips() {
    let data = &fixture("cloudevents.agent.json")["data"];
    assert_eq!(&round_trip::<ManifestBundleStatus>(data), data);
    let status: ManifestBundleStatus = serde_json::from_value(data.clone()).unwrap();
    assert_eq!(status.conditions[0].observed_generation, 1);
    assert_eq!(
        status.conditions[0].last_transition_time,
        Some(Time::parse("2025-12-16T06:00:17Z").unwrap())
    );
    assert_eq!(status.resource_status[0].resource_meta.kind, "Deployment");
}

#[test]
fn maestro_status_data_round_trips() {
    let data = &fixture("cloudevents.status.maestro.json")["data"];
    assert_eq!(&round_trip::<ManifestBundleStatus>(data), data);
    let status: ManifestBundleStatus = serde_json::from_value(data.clone()).unwrap();
    assert!(status.manifest_bundle.is_some());
    let value = &status.resource_status[0].status_feedback.values[0];
    assert_eq!(value.name, "status");
    let FieldValue::JsonRaw(raw) = &value.field_value else {
        panic!("expected JsonRaw, got {:?}", value.field_value);
    };
    assert!(serde_json::from_str::<Value>(raw).is_ok());
    // An empty `message` is still written, as Go does.
    assert_eq!(status.resource_status[0].conditions[2].message, "");
}

#[test]
fn manifestwork_fixtures_round_trip() {
    for name in ["manifestwork.json", "manifestwork.watched.json"] {
        let v = fixture(name);
        assert_eq!(round_trip::<ManifestWork>(&v), v, "{name}");
    }
    let w: ManifestWork = serde_json::from_value(fixture("manifestwork.json")).unwrap();
    assert_eq!(w.api_version, ManifestWork::API_VERSION);
    assert_eq!(w.kind, ManifestWork::KIND);
    assert!(w.status.is_none());
    let watched: ManifestWork =
        serde_json::from_value(fixture("manifestwork.watched.json")).unwrap();
    assert_eq!(watched.metadata.generation, 1);
    assert_eq!(watched.status.unwrap().resource_status.manifests.len(), 1);
}

#[test]
fn metadata_extension_round_trips() {
    // The `metadata` extensions carry ObjectMeta as a JSON string.
    for name in [
        "cloudevents.agent.json",
        "cloudevents.spec.maestro.json",
        "cloudevents.status.maestro.json",
    ] {
        let text = fixture(name)["metadata"].as_str().unwrap().to_string();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(round_trip::<ObjectMeta>(&v), v, "{name}");
    }
    let text = fixture("cloudevents.agent.json")["metadata"]
        .as_str()
        .unwrap()
        .to_string();
    let meta: ObjectMeta = serde_json::from_str(&text).unwrap();
    assert_eq!(meta.original_source(), Some("maestro"));
    assert_eq!(
        meta.annotation(ANNOTATION_DATA_TYPE),
        Some("io.open-cluster-management.works.v1alpha1.manifestbundles")
    );
    assert!(meta.has_finalizer(FINALIZER_MANIFEST_WORK_CLEANUP));
    assert!(meta.labels.contains_key(LABEL_ORIGINAL_SOURCE));
}

#[test]
fn spec_shapes_convert_both_ways_on_fixtures() {
    let work: ManifestWork = serde_json::from_value(fixture("manifestwork.json")).unwrap();
    let wire = ManifestBundle::from(work.spec.clone());
    let maestro: ManifestBundle =
        serde_json::from_value(fixture("cloudevents.spec.maestro.json")["data"].clone()).unwrap();
    // Maestro's create event carries exactly the spec of manifestwork.json.
    assert_eq!(wire, maestro);
    assert_eq!(ManifestWorkSpec::from(wire), work.spec);
}

#[test]
fn status_shapes_convert_on_fixtures() {
    let watched: ManifestWork =
        serde_json::from_value(fixture("manifestwork.watched.json")).unwrap();
    let api = watched.status.unwrap();
    let wire = ManifestBundleStatus::from(api.clone());
    let v = serde_json::to_value(&wire).unwrap();
    assert_eq!(
        v["resourceStatus"],
        serde_json::to_value(&api).unwrap()["resourceStatus"]["manifests"]
    );
    assert_eq!(ManifestWorkStatus::from(wire), api);
}

#[test]
fn unknown_members_survive_everywhere() {
    let spec = json!({
        "manifests": [{"kind": "ConfigMap", "metadata": {"name": "a"}, "weird": [1, {"x": null}]}],
        "deleteOption": {
            "propagationPolicy": "SelectivelyOrphan",
            "selectivelyOrphans": {"orphaningRules": [
                {"group": "", "resource": "configmaps", "name": "a", "namespace": "d", "zr": 1}
            ], "zs": true},
            "ttlSecondsAfterFinished": 300,
            "zd": "x"
        },
        "manifestConfigs": [{
            "resourceIdentifier": {"group": "", "resource": "r", "name": "n", "namespace": "", "zi": 2},
            "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "a", "path": ".b", "zj": 3}], "zf": 4}],
            "updateStrategy": {"type": "Brand-new", "serverSideApply": {
                "force": false, "ignoreFields": [{"condition": "OnSpokeChange", "jsonPointers": ["/a"], "zz": 1}],
                "zss": {}
            }, "zu": 5},
            "conditionRules": [{"condition": "Complete", "type": "CEL", "celExpressions": ["true"],
                                "message": "", "messageExpression": "", "zc": 6}],
            "feedbackScrapeType": "Watch",
            "zm": 7
        }],
        "executer": {"subject": {"type": "ServiceAccount",
                     "serviceAccount": {"namespace": "n", "name": "s", "zsa": 8}, "zsu": 9}, "ze": 10},
        "future": {"nested": ["kept"]}
    });
    assert_eq!(round_trip::<ManifestBundle>(&spec), spec);
    let b: ManifestBundle = serde_json::from_value(spec).unwrap();
    assert_eq!(
        b.delete_option.as_ref().unwrap().policy(),
        PropagationPolicy::SelectivelyOrphan
    );
    assert_eq!(
        b.manifest_configs[0]
            .update_strategy
            .as_ref()
            .unwrap()
            .kind(),
        UpdateStrategyType::Other("Brand-new".into())
    );
    // Unknown top-level members also survive the API shape.
    let api = ManifestWorkSpec::from(b.clone());
    assert_eq!(api.extra["future"], json!({"nested": ["kept"]}));
    assert_eq!(ManifestBundle::from(api), b);

    let status = json!({
        "conditions": [{"type": "Applied", "status": "True", "lastTransitionTime": "2025-12-16T06:00:17Z",
                        "reason": "r", "message": "m", "zc": 1}],
        "resourceStatus": [{
            "resourceMeta": {"ordinal": 3, "group": "", "version": "v1", "kind": "ConfigMap",
                             "resource": "configmaps", "name": "a", "namespace": "d", "zm": 2},
            "statusFeedback": {"values": [{"name": "n", "fieldValue": {"type": "Float", "float": 1.5}, "zv": 3}],
                               "zf": 4},
            "conditions": null,
            "zr": 5
        }],
        "zs": 6
    });
    assert_eq!(round_trip::<ManifestBundleStatus>(&status), status);

    let work = json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": "w", "ownerReferences": [{"uid": "u"}], "managedFields": [{}],
                     "generateName": "g"},
        "spec": {"workload": {"manifests": [{"kind": "A", "metadata": {"name": "a"}}], "zw": 1}},
        "status": {"resourceStatus": {"zr": 2}, "zs": 3},
        "zt": 4
    });
    assert_eq!(round_trip::<ManifestWork>(&work), work);
}

#[test]
fn go_leniencies_on_input() {
    // Go reads null as the zero value and a zero time as unset; the output is what Go
    // would write back.
    let v = json!({
        "conditions": [{"type": "A", "status": null, "observedGeneration": null,
                        "lastTransitionTime": null, "reason": null, "message": null}],
        "resourceStatus": null,
        "manifestBundle": null
    });
    assert_eq!(
        round_trip::<ManifestBundleStatus>(&v),
        json!({"conditions": [{"type": "A", "status": "", "lastTransitionTime": null,
                               "reason": "", "message": ""}]})
    );
    let v = json!({"conditions": [], "resourceStatus": []});
    assert_eq!(
        round_trip::<ManifestBundleStatus>(&v),
        json!({"conditions": null})
    );
    // Fractions and offsets are read; whole UTC seconds are written.
    let v = json!({"type": "A", "status": "True", "lastTransitionTime": "2025-12-16T08:00:17.5+02:00",
                   "reason": "", "message": ""});
    assert_eq!(
        round_trip::<workbus_schemas::work::Condition>(&v)["lastTransitionTime"],
        "2025-12-16T06:00:17Z"
    );
}

#[test]
fn structural_errors_are_errors() {
    for bad in [
        json!({"manifests": {}}),
        json!({"manifests": [1]}),
        json!({"manifests": [null]}),
        json!({"deleteOption": "Foreground"}),
        json!({"manifestConfigs": [{"resourceIdentifier": []}]}),
        json!({"executer": {"subject": {"type": 1}}}),
        json!([]),
        json!(null),
    ] {
        assert!(
            serde_json::from_value::<ManifestBundle>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    for bad in [
        json!({"resourceStatus": {"manifests": []}}),
        json!({"resourceStatus": [{"resourceMeta": {"ordinal": "0"}}]}),
        json!({"resourceStatus": [{"resourceMeta": {"ordinal": 2147483648u64}}]}),
        json!({"resourceStatus": [{"resourceMeta": {"ordinal": 1.5}}]}),
        json!({"conditions": [{"lastTransitionTime": "yesterday"}]}),
        json!({"conditions": [{"observedGeneration": "1"}]}),
        json!({"conditions": {}}),
        json!({"resourceStatus": [{"statusFeedback": {"values": [{"fieldValue": {"integer": "1"}}]}}]}),
    ] {
        assert!(
            serde_json::from_value::<ManifestBundleStatus>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

/// Decoding must never panic; whatever decodes must re-encode to a fixed point.
fn decode_is_total<T>(v: &Value) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(typed) = serde_json::from_value::<T>(v.clone()) {
        let once = serde_json::to_value(&typed).expect("encodes");
        let again: T = serde_json::from_value(once.clone()).expect("re-decodes");
        prop_assert_eq!(&again, &typed);
        prop_assert_eq!(serde_json::to_value(&again).unwrap(), once);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_arbitrary_json(v in arb_json()) {
        decode_is_total::<ManifestBundle>(&v)?;
        decode_is_total::<ManifestBundleStatus>(&v)?;
        decode_is_total::<ManifestWork>(&v)?;
        decode_is_total::<ObjectMeta>(&v)?;
    }

    #[test]
    fn decoders_never_panic_on_shaped_json(v in arb_shaped_json()) {
        decode_is_total::<ManifestBundle>(&v)?;
        decode_is_total::<ManifestBundleStatus>(&v)?;
        decode_is_total::<ManifestWork>(&v)?;
        decode_is_total::<ManifestWorkStatus>(&v)?;
        decode_is_total::<ObjectMeta>(&v)?;
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = serde_json::from_slice::<ManifestBundle>(&bytes);
        let _ = serde_json::from_slice::<ManifestBundleStatus>(&bytes);
        let _ = serde_json::from_slice::<ManifestWork>(&bytes);
    }

    #[test]
    fn generated_bundles_round_trip(b in arb_bundle()) {
        let v = serde_json::to_value(&b).unwrap();
        let back: ManifestBundle = serde_json::from_value(v.clone()).unwrap();
        prop_assert_eq!(&back, &b);
        prop_assert_eq!(ManifestBundle::from(ManifestWorkSpec::from(b.clone())), b);
        // The wire JSON always has `manifests`.
        prop_assert!(v["manifests"].is_array());
    }

    #[test]
    fn generated_statuses_round_trip(s in arb_bundle_status()) {
        let v = serde_json::to_value(&s).unwrap();
        let back: ManifestBundleStatus = serde_json::from_value(v).unwrap();
        prop_assert_eq!(&back, &s);
        let (api, echo) = s.clone().into_parts();
        prop_assert_eq!(ManifestBundleStatus::from_parts(api, echo), s);
    }

    #[test]
    fn api_status_survives_the_wire(s in arb_work_status()) {
        let wire = serde_json::to_value(ManifestBundleStatus::from(s.clone())).unwrap();
        let back: ManifestBundleStatus = serde_json::from_value(wire).unwrap();
        prop_assert_eq!(ManifestWorkStatus::from(back), s);
    }
}
