//! The status hash against Go-produced golden data (reference §9 TV-11), the derived
//! constants, and properties of the Go-compatible canonical JSON.

mod work_support;

use proptest::prelude::*;
use serde_json::{Value, json};

use work_support::{arb_bundle_status, arb_json, arb_work_status, fixture, json_eq};
use workbus_schemas::status_hash::{
    EMPTY_STATUS_HASH, NO_STATUS_HASH, canonical_json, sha256_hex, status_canonical_json,
    status_hash, status_hash_of_bundle_status,
};
use workbus_schemas::work::{ManifestBundleStatus, ManifestWork, ManifestWorkStatus};

/// TV-11: the exact bytes Go hashes for the status in Maestro's agent event.
const TV11_BYTES: &str = r#"{"conditions":[{"lastTransitionTime":"2025-12-16T06:00:17Z","message":"Apply manifest work complete","observedGeneration":1,"reason":"AppliedManifestWorkComplete","status":"True","type":"Applied"}],"resourceStatus":{"manifests":[{"conditions":[{"lastTransitionTime":"2025-12-16T06:00:17Z","message":"Apply manifest complete","reason":"AppliedManifestComplete","status":"True","type":"Applied"}],"resourceMeta":{"group":"apps","kind":"Deployment","name":"maestro-e2e-upgrade-test","namespace":"default","ordinal":0,"resource":"deployments","version":"v1"},"statusFeedback":{}}]}}"#;
const TV11_HASH: &str = "6170884280acbd9d5e69ac59a00ef7cf84d50669621643782e7a3f1ab05836cf";
/// The `statushash` of Maestro's relayed status event (`cloudevents.status.maestro.json`).
const RELAYED_HASH: &str = "e3b23766bcdd155db51bf1d715bdf5224a06bdf597461b4f80bce8ba220121de";

fn agent_status() -> ManifestBundleStatus {
    serde_json::from_value(fixture("cloudevents.agent.json")["data"].clone()).unwrap()
}

#[test]
fn tv11_exact_bytes_and_hash() {
    let event = fixture("cloudevents.agent.json");
    assert_eq!(event["statushash"], TV11_HASH);
    let wire = agent_status();
    let api = ManifestWorkStatus::from(wire.clone());
    assert_eq!(status_canonical_json(&api), TV11_BYTES);
    assert_eq!(sha256_hex(TV11_BYTES.as_bytes()), TV11_HASH);
    assert_eq!(status_hash(&api), TV11_HASH);
    assert_eq!(status_hash_of_bundle_status(&wire), TV11_HASH);
}

#[test]
fn hash_ignores_spec_echo_and_unknown_members() {
    let mut wire = agent_status();
    wire.manifest_bundle = Some(Default::default());
    wire.extra.insert("future".into(), json!(1));
    wire.conditions[0].extra.insert("future".into(), json!(2));
    wire.resource_status[0]
        .resource_meta
        .extra
        .insert("future".into(), json!(3));
    assert_eq!(status_hash_of_bundle_status(&wire), TV11_HASH);
}

#[test]
fn hash_changes_with_content() {
    let mut wire = agent_status();
    wire.conditions[0].message.push('!');
    assert_ne!(status_hash_of_bundle_status(&wire), TV11_HASH);
}

#[test]
fn empty_and_missing_status_hashes() {
    assert_eq!(
        status_canonical_json(&ManifestWorkStatus::default()),
        r#"{"resourceStatus":{}}"#
    );
    assert_eq!(
        status_hash(&ManifestWorkStatus::default()),
        EMPTY_STATUS_HASH
    );
    assert_eq!(
        status_hash_of_bundle_status(&ManifestBundleStatus::default()),
        EMPTY_STATUS_HASH
    );
    assert_eq!(sha256_hex(b""), NO_STATUS_HASH);
    assert_eq!(
        NO_STATUS_HASH,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn go_shapes_inside_the_hash() {
    // A manifest with no conditions hashes `"conditions":null` (no omitempty in Go);
    // empty feedback is `{}`; a zero observedGeneration is dropped; an unset time is null.
    let wire: ManifestBundleStatus = serde_json::from_value(json!({
        "conditions": [{"type": "A", "status": "True", "observedGeneration": 0,
                        "lastTransitionTime": null, "reason": "", "message": "<&>"}],
        "resourceStatus": [{"resourceMeta": {"ordinal": 1},
                            "statusFeedback": {"values": [
                                {"name": "n", "fieldValue": {"type": "Integer", "integer": 0}}]}}]
    }))
    .unwrap();
    let api = ManifestWorkStatus::from(wire);
    assert_eq!(
        status_canonical_json(&api),
        concat!(
            r#"{"conditions":[{"lastTransitionTime":null,"message":"\u003c\u0026\u003e","#,
            r#""reason":"","status":"True","type":"A"}],"resourceStatus":{"manifests":[{"#,
            r#""conditions":null,"resourceMeta":{"group":"","kind":"","name":"","namespace":"","#,
            r#""ordinal":1,"resource":"","version":""},"statusFeedback":{"values":[{"#,
            r#""fieldValue":{"integer":0,"type":"Integer"},"name":"n"}]}}]}}"#
        )
    );
}

#[test]
fn relayed_status_hash_matches_go() {
    // Maestro's relayed status event (with a JsonRaw feedback value full of escaped quotes,
    // three manifest conditions and an empty message) carries the agent's statushash too:
    // a second Go-computed vector beyond TV-11.
    let event = fixture("cloudevents.status.maestro.json");
    let relayed: ManifestBundleStatus = serde_json::from_value(event["data"].clone()).unwrap();
    assert_eq!(event["statushash"], RELAYED_HASH);
    assert_eq!(status_hash_of_bundle_status(&relayed), RELAYED_HASH);
    // The same status read from the API shape hashes the same.
    let (api, echo) = relayed.into_parts();
    assert!(echo.is_some());
    assert_eq!(status_hash(&api), RELAYED_HASH);
    let watched: ManifestWork =
        serde_json::from_value(fixture("manifestwork.watched.json")).unwrap();
    let api = watched.status.unwrap();
    assert_eq!(
        status_hash(&api),
        status_hash_of_bundle_status(&ManifestBundleStatus::from(api.clone()))
    );
}

/// True when every object in the canonical text has its keys in sorted order. Parsed into
/// [`OrderedJson`], since a `serde_json::Value` would not keep the document order.
fn keys_sorted_in_text(text: &str) -> bool {
    fn walk(v: &OrderedJson) -> bool {
        match v {
            OrderedJson::Object(entries) => {
                entries
                    .windows(2)
                    .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes())
                    && entries.iter().all(|(_, v)| walk(v))
            }
            OrderedJson::Array(items) => items.iter().all(walk),
            OrderedJson::Scalar => true,
        }
    }
    match serde_json::from_str::<OrderedJson>(text) {
        Ok(v) => walk(&v),
        Err(_) => false,
    }
}

/// JSON with object members in document order.
enum OrderedJson {
    Object(Vec<(String, OrderedJson)>),
    Array(Vec<OrderedJson>),
    Scalar,
}

impl<'de> serde::Deserialize<'de> for OrderedJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedJson;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Scalar)
            }
            fn visit_unit<E>(self) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Scalar)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OrderedJson, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = a.next_element()? {
                    items.push(v);
                }
                Ok(OrderedJson::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OrderedJson, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, OrderedJson>()? {
                    entries.push((k, v));
                }
                Ok(OrderedJson::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[test]
fn key_order_checker_works() {
    assert!(keys_sorted_in_text(r#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#));
    assert!(!keys_sorted_in_text(r#"{"b":1,"a":2}"#));
    assert!(!keys_sorted_in_text(r#"[{"a":{"z":1,"y":2}}]"#));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn canonical_json_parses_back_and_is_sorted(v in arb_json()) {
        let text = canonical_json(&v);
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        prop_assert!(json_eq(&back, &v), "{} vs {}", back, v);
        prop_assert!(keys_sorted_in_text(&text), "{}", text);
        // No whitespace outside strings, and nothing Go escapes is left raw.
        let escaped_by_go = ['<', '>', '&', '\u{2028}', '\u{2029}', '\n'];
        prop_assert!(!text.contains(escaped_by_go), "raw escapable character in {}", text);
        // Idempotent on its own output.
        prop_assert_eq!(canonical_json(&back), text);
    }

    #[test]
    fn status_hash_is_shape_independent(s in arb_work_status()) {
        let wire = ManifestBundleStatus::from(s.clone());
        prop_assert_eq!(status_hash(&s), status_hash_of_bundle_status(&wire));
        // Decoding the wire JSON again does not change the hash.
        let again: ManifestBundleStatus =
            serde_json::from_value(serde_json::to_value(&wire).unwrap()).unwrap();
        prop_assert_eq!(status_hash_of_bundle_status(&again), status_hash(&s));
    }

    #[test]
    fn hashed_bytes_are_canonical(s in arb_bundle_status()) {
        let api = ManifestWorkStatus::from(s.clone());
        let text = status_canonical_json(&api);
        prop_assert!(keys_sorted_in_text(&text));
        prop_assert_eq!(sha256_hex(text.as_bytes()), status_hash_of_bundle_status(&s));
    }
}
