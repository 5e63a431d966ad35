//! Keeps the hand-written JSON Schemas (`schemas/json/*.schema.json`) honest against the
//! Rust types: every fixture payload and everything the Rust types write validates;
//! whatever the Rust decoder accepts validates; documents the Rust decoder rejects for
//! structural reasons are rejected by the schema too. Validation uses `boon` (draft
//! 2020-12, offline) with `format` assertions on, since the Rust decoder rejects
//! non-RFC-3339 times.

mod work_support;

use boon::{Compiler, SchemaIndex, Schemas};
use proptest::prelude::*;
use serde_json::{Value, json};

use work_support::{arb_bundle, arb_bundle_status, arb_shaped_json, fixture};
use workbus_schemas::work::{ManifestBundle, ManifestBundleStatus};

const BUNDLE_URL: &str = "file:///workbus/schemas/json/manifestbundle.schema.json";
const STATUS_URL: &str = "file:///workbus/schemas/json/manifestbundlestatus.schema.json";

struct Validators {
    schemas: Schemas,
    bundle: SchemaIndex,
    status: SchemaIndex,
}

impl Validators {
    fn new() -> Self {
        let bundle_doc: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/json/manifestbundle.schema.json"
        )))
        .expect("bundle schema is JSON");
        let status_doc: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/json/manifestbundlestatus.schema.json"
        )))
        .expect("status schema is JSON");
        let mut compiler = Compiler::new();
        compiler.enable_format_assertions();
        compiler.add_resource(BUNDLE_URL, bundle_doc).unwrap();
        compiler.add_resource(STATUS_URL, status_doc).unwrap();
        let mut schemas = Schemas::new();
        let bundle = compiler.compile(BUNDLE_URL, &mut schemas).unwrap();
        let status = compiler.compile(STATUS_URL, &mut schemas).unwrap();
        Validators {
            schemas,
            bundle,
            status,
        }
    }

    fn bundle_ok(&self, v: &Value) -> Result<(), String> {
        self.schemas
            .validate(v, self.bundle)
            .map_err(|e| format!("{e:#}"))
    }

    fn status_ok(&self, v: &Value) -> Result<(), String> {
        self.schemas
            .validate(v, self.status)
            .map_err(|e| format!("{e:#}"))
    }
}

#[test]
fn fixture_payloads_validate() {
    let v = Validators::new();
    v.bundle_ok(&fixture("cloudevents.spec.maestro.json")["data"])
        .unwrap();
    v.status_ok(&fixture("cloudevents.agent.json")["data"])
        .unwrap();
    v.status_ok(&fixture("cloudevents.status.maestro.json")["data"])
        .unwrap();
    // The API spec of manifestwork.json, converted to the wire shape.
    let work: workbus_schemas::work::ManifestWork =
        serde_json::from_value(fixture("manifestwork.watched.json")).unwrap();
    v.bundle_ok(&serde_json::to_value(ManifestBundle::from(work.spec)).unwrap())
        .unwrap();
    v.status_ok(&serde_json::to_value(ManifestBundleStatus::from(work.status.unwrap())).unwrap())
        .unwrap();
}

#[test]
fn empty_values_validate() {
    let v = Validators::new();
    v.bundle_ok(&serde_json::to_value(ManifestBundle::default()).unwrap())
        .unwrap();
    v.status_ok(&serde_json::to_value(ManifestBundleStatus::default()).unwrap())
        .unwrap();
    v.bundle_ok(&json!({})).unwrap();
    v.status_ok(&json!({})).unwrap();
}

#[test]
fn structural_rejections_agree() {
    let v = Validators::new();
    let bad_bundles = [
        json!(null),
        json!([]),
        json!({"manifests": {}}),
        json!({"manifests": "x"}),
        json!({"manifests": [1]}),
        json!({"manifests": [null]}),
        json!({"deleteOption": "Foreground"}),
        json!({"deleteOption": {"propagationPolicy": 1}}),
        json!({"deleteOption": {"ttlSecondsAfterFinished": "300"}}),
        json!({"deleteOption": {"selectivelyOrphans": {"orphaningRules": [null]}}}),
        json!({"manifestConfigs": {}}),
        json!({"manifestConfigs": [{"resourceIdentifier": []}]}),
        json!({"manifestConfigs": [{"feedbackRules": [{"jsonPaths": [{"path": 1}]}]}]}),
        json!({"manifestConfigs": [{"updateStrategy": {"serverSideApply": {"force": "yes"}}}]}),
        json!({"manifestConfigs": [{"conditionRules": [{"celExpressions": [1]}]}]}),
        json!({"executer": {"subject": {"type": 1}}}),
        json!({"executer": {"subject": {"serviceAccount": []}}}),
    ];
    for doc in bad_bundles {
        assert!(
            serde_json::from_value::<ManifestBundle>(doc.clone()).is_err(),
            "Rust accepts {doc}"
        );
        assert!(v.bundle_ok(&doc).is_err(), "schema accepts {doc}");
    }
    let bad_statuses = [
        json!(null),
        json!({"conditions": {}}),
        json!({"conditions": [null]}),
        json!({"conditions": [{"lastTransitionTime": "yesterday"}]}),
        json!({"conditions": [{"lastTransitionTime": 5}]}),
        json!({"conditions": [{"observedGeneration": "1"}]}),
        json!({"conditions": [{"observedGeneration": 1.5}]}),
        json!({"resourceStatus": {"manifests": []}}),
        json!({"resourceStatus": [{"resourceMeta": {"ordinal": "0"}}]}),
        json!({"resourceStatus": [{"resourceMeta": {"ordinal": 2147483648u64}}]}),
        json!({"resourceStatus": [{"resourceMeta": {"ordinal": -2147483649i64}}]}),
        json!({"resourceStatus": [{"statusFeedback": []}]}),
        json!({"resourceStatus": [{"statusFeedback": {"values": [{"fieldValue": {"integer": "1"}}]}}]}),
        json!({"resourceStatus": [{"statusFeedback": {"values": [{"fieldValue": {"boolean": 1}}]}}]}),
        json!({"manifestBundle": {"manifests": "x"}}),
    ];
    for doc in bad_statuses {
        assert!(
            serde_json::from_value::<ManifestBundleStatus>(doc.clone()).is_err(),
            "Rust accepts {doc}"
        );
        assert!(v.status_ok(&doc).is_err(), "schema accepts {doc}");
    }
}

#[test]
fn go_leniencies_are_in_the_schema() {
    let v = Validators::new();
    let lenient_bundle = json!({
        "manifests": null, "deleteOption": null, "manifestConfigs": [
            {"resourceIdentifier": null, "updateStrategy": {"type": null, "serverSideApply": null},
             "feedbackScrapeType": null}
        ], "executer": null, "future": [1]
    });
    assert!(serde_json::from_value::<ManifestBundle>(lenient_bundle.clone()).is_ok());
    v.bundle_ok(&lenient_bundle).unwrap();
    let lenient_status = json!({
        "conditions": null,
        "resourceStatus": [{"resourceMeta": null, "statusFeedback": null, "conditions": null,
                            "future": {}}],
        "manifestBundle": null
    });
    assert!(serde_json::from_value::<ManifestBundleStatus>(lenient_status.clone()).is_ok());
    v.status_ok(&lenient_status).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn everything_rust_writes_validates(b in arb_bundle(), s in arb_bundle_status()) {
        let v = Validators::new();
        let bv = serde_json::to_value(&b).unwrap();
        prop_assert!(v.bundle_ok(&bv).is_ok(), "{}: {:?}", bv, v.bundle_ok(&bv));
        let sv = serde_json::to_value(&s).unwrap();
        prop_assert!(v.status_ok(&sv).is_ok(), "{}: {:?}", sv, v.status_ok(&sv));
    }

    #[test]
    fn everything_rust_accepts_validates(doc in arb_shaped_json()) {
        let v = Validators::new();
        if serde_json::from_value::<ManifestBundle>(doc.clone()).is_ok() {
            prop_assert!(v.bundle_ok(&doc).is_ok(), "{}: {:?}", doc, v.bundle_ok(&doc));
        }
        if serde_json::from_value::<ManifestBundleStatus>(doc.clone()).is_ok() {
            prop_assert!(v.status_ok(&doc).is_ok(), "{}: {:?}", doc, v.status_ok(&doc));
        }
    }
}
