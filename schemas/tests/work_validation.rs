//! Manifest validation: each rule of sdk-go's `ManifestValidator`, in its order, with its
//! exact error text, and the size arithmetic checked against sdk-go's own unit test.

use serde_json::{Map, Value, json};

use workbus_schemas::work::validation::{
    manifests_size, validate_manifests, validate_manifests_with_limit,
};
use workbus_schemas::work::{BundleError, MANIFEST_SIZE_LIMIT, ManifestBundle};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The manifest of sdk-go's `validator_test.go`: a Secret whose `data` is `size` `a`s.
fn secret(size: usize) -> Map<String, Value> {
    obj(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": "test", "name": "test"},
        "data": "a".repeat(size),
    }))
}

#[test]
fn empty_is_rejected_with_sdk_go_text() {
    let err = validate_manifests(&[]).unwrap_err();
    assert_eq!(err, BundleError::Empty);
    assert_eq!(err.to_string(), "Workload manifests should not be empty");
    // `{"manifests":null}` decodes to an empty list and fails the same way.
    let b: ManifestBundle = serde_json::from_value(json!({"manifests": null})).unwrap();
    assert_eq!(b.validate(), Err(BundleError::Empty));
}

#[test]
fn size_limit_matches_sdk_go_test() {
    assert_eq!(MANIFEST_SIZE_LIMIT, 512_000);
    // sdk-go "not exceed the limit": two 100 KiB secrets pass.
    assert!(validate_manifests(&[secret(100 * 1024), secret(100 * 1024)]).is_ok());
    // sdk-go "exceed the limit" expects 512192 bytes for 300 KiB + 200 KiB, measured on
    // json.Encoder output (one trailing newline per manifest). Off the wire there is no
    // newline, so the same manifests measure 2 bytes less.
    let err = validate_manifests(&[secret(300 * 1024), secret(200 * 1024)]).unwrap_err();
    assert_eq!(
        err,
        BundleError::TooLarge {
            size: 512_190,
            limit: 512_000
        }
    );
    assert_eq!(
        err.to_string(),
        "the size of manifests is 512190 bytes which exceeds the 512000 limit"
    );
}

#[test]
fn size_counts_protobuf_framing_and_go_escaping() {
    // 91 bytes of fixed JSON + data, plus 1 tag byte and a 1-byte varint length.
    assert_eq!(manifests_size(&[secret(0)]), 91 + 2);
    // 128 bytes of JSON need a 2-byte varint.
    assert_eq!(manifests_size(&[secret(37)]), 128 + 3);
    // Go escapes '<' as \u003c: 6 bytes on the wire, not 1.
    let mut m = secret(0);
    m.insert("data".into(), json!("<"));
    assert_eq!(manifests_size(&[m]), 91 + 6 + 2);
    // The limit is inclusive.
    let exact = manifests_size(&[secret(10)]);
    assert!(validate_manifests_with_limit(&[secret(10)], exact).is_ok());
    assert!(validate_manifests_with_limit(&[secret(10)], exact - 1).is_err());
}

#[test]
fn size_is_checked_before_per_manifest_rules() {
    let nameless = obj(json!({"kind": "ConfigMap", "metadata": {}}));
    let err = validate_manifests_with_limit(&[nameless], 1).unwrap_err();
    assert!(matches!(err, BundleError::TooLarge { .. }));
}

#[test]
fn kind_is_required() {
    let m = obj(json!({"apiVersion": "v1", "metadata": {"name": "a"}}));
    let err = validate_manifests(&[m]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Object 'Kind' is missing in '{"apiVersion":"v1","metadata":{"name":"a"}}'"#
    );
    assert!(matches!(err, BundleError::MissingKind { index: 0, .. }));
    // A non-string kind, or an apiVersion with two slashes, is the same error in Go.
    for m in [
        json!({"kind": 1, "metadata": {"name": "a"}}),
        json!({"apiVersion": "a/b/c", "kind": "K", "metadata": {"name": "a"}}),
    ] {
        assert!(matches!(
            validate_manifests(&[obj(m)]),
            Err(BundleError::MissingKind { .. })
        ));
    }
}

#[test]
fn name_is_required() {
    for m in [
        json!({"kind": "ConfigMap"}),
        json!({"kind": "ConfigMap", "metadata": {}}),
        json!({"kind": "ConfigMap", "metadata": {"name": ""}}),
        json!({"kind": "ConfigMap", "metadata": {"name": 7}}),
        json!({"kind": "ConfigMap", "metadata": "name"}),
        json!({"kind": "ConfigMap", "metadata": {"generateName": "x-"}}),
    ] {
        let err = validate_manifests(&[secret(1), obj(m.clone())]).unwrap_err();
        assert_eq!(err, BundleError::MissingName { index: 1 }, "{m}");
        assert_eq!(err.to_string(), "name must be set in manifest");
    }
}

#[test]
fn generate_name_is_rejected() {
    let m = obj(json!({"kind": "ConfigMap", "metadata": {"name": "a", "generateName": "a-"}}));
    let err = validate_manifests(&[m]).unwrap_err();
    assert_eq!(err, BundleError::GenerateName { index: 0 });
    assert_eq!(err.to_string(), "generateName must not be set in manifest");
    // A non-string generateName reads as empty in Go and is accepted.
    let m = obj(json!({"kind": "ConfigMap", "metadata": {"name": "a", "generateName": 1}}));
    assert!(validate_manifests(&[m]).is_ok());
}

#[test]
fn first_failing_manifest_wins() {
    let ms = [
        secret(1),
        obj(json!({"kind": "A", "metadata": {"name": "a", "generateName": "g"}})),
        obj(json!({"kind": "A"})),
    ];
    assert_eq!(
        validate_manifests(&ms),
        Err(BundleError::GenerateName { index: 1 })
    );
}
