//! The CloudEvent <-> MQTT mapping against Maestro's golden events and generated ones:
//! binary and structured modes, the Go receiver's dispatch rules (§2.2), and malformed
//! messages of every kind.

use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use proptest::prelude::*;
use workbus_schemas::extensions::OcmExtensions;
use workbus_schemas::mqtt::{self, DecodeError, Encoding, MqttMessage, binary};
use workbus_testkit::fixtures::maestro;

fn fixture(name: &str) -> Vec<u8> {
    maestro::read(name)
}

fn structured(name: &str) -> Event {
    mqtt::structured::decode(&fixture(name)).expect("fixture decodes")
}

fn prop<'m>(m: &'m MqttMessage, key: &str) -> Option<&'m str> {
    m.user_properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn maestro_spec_event_typed_values() {
    let e = structured("cloudevents.spec.maestro.json");
    assert_eq!(e.source(), "maestro");
    assert_eq!(
        e.ty(),
        "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
    );
    assert_eq!(
        e.resource_id().unwrap(),
        "55c61e54-a3f6-563d-9fec-b1fe297bdfdb"
    );
    assert_eq!(e.resource_version().unwrap(), 1);
    assert_eq!(
        e.cluster_name().unwrap(),
        Some("7ff1a8f4-8811-49b4-8c19-9271bc51975e")
    );
    assert_eq!(e.original_source().unwrap(), Some(""));
    assert!(e.log_tracing().unwrap().is_empty());
    assert_eq!(e.deletion_timestamp().unwrap(), None);
    let meta = e.metadata_json().unwrap().unwrap();
    assert_eq!(meta["name"], "55c61e54-a3f6-563d-9fec-b1fe297bdfdb");
    assert_eq!(meta["resourceVersion"], "0");
    let Some(Data::Json(data)) = e.data() else {
        panic!("json data expected")
    };
    assert_eq!(data["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(data["manifestConfigs"].as_array().unwrap().len(), 1);
}

#[test]
fn maestro_agent_event_typed_values() {
    let e = structured("cloudevents.agent.json");
    assert_eq!(
        e.source(),
        "7ff1a8f4-8811-49b4-8c19-9271bc51975e-work-agent"
    );
    assert_eq!(e.original_source().unwrap(), Some("maestro"));
    assert_eq!(e.resource_version().unwrap(), 1);
    assert_eq!(e.sequence_id().unwrap(), Some("2000808179721572352"));
    assert_eq!(
        e.status_hash().unwrap(),
        Some("6170884280acbd9d5e69ac59a00ef7cf84d50669621643782e7a3f1ab05836cf")
    );
    let meta = e.metadata_json().unwrap().unwrap();
    assert_eq!(
        meta["labels"]["cloudevents.open-cluster-management.io/originalsource"],
        "maestro"
    );
    assert_eq!(
        meta["finalizers"][0],
        "cluster.open-cluster-management.io/manifest-work-cleanup"
    );
}

#[test]
fn fixtures_survive_binary_mode() {
    for name in [
        "cloudevents.spec.maestro.json",
        "cloudevents.agent.json",
        "cloudevents.status.maestro.json",
    ] {
        let e = structured(name);
        let m = mqtt::encode(
            &e,
            "sources/maestro/consumers/c/sourceevents",
            Encoding::Binary,
        )
        .unwrap();
        // The wire shape sdk-go expects (§2.1).
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(prop(&m, "ce-specversion"), Some("1.0"));
        assert_eq!(prop(&m, "ce-resourceversion"), Some("1"));
        assert_eq!(prop(&m, "ce-type"), Some(e.ty()));
        assert!(prop(&m, "ce-time").unwrap().ends_with('Z'));
        assert!(m.user_properties.iter().all(|(k, _)| k.starts_with("ce-")));
        let back = mqtt::decode(&m).unwrap();
        assert_eq!(back, e, "{name}: binary round trip is lossless");
        let again = mqtt::encode(&back, &m.topic, Encoding::Binary).unwrap();
        assert_eq!(again, m, "{name}: binary encoding is stable");
        let s = mqtt::encode(&e, &m.topic, Encoding::Structured).unwrap();
        assert_eq!(
            mqtt::decode(&s).unwrap(),
            e,
            "{name}: structured round trip"
        );
    }
}

#[test]
fn exact_time_string_survives() {
    let e = structured("cloudevents.agent.json");
    let m = binary::encode(&e, "t").unwrap();
    assert_eq!(prop(&m, "ce-time"), Some("2025-12-16T06:00:17.921082037Z"));
}

fn msg(props: &[(&str, &str)], ct: Option<&str>, payload: &[u8]) -> MqttMessage {
    MqttMessage {
        topic: "t".into(),
        content_type: ct.map(str::to_string),
        user_properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload: payload.to_vec(),
        publisher: None,
    }
}

const OK: &[(&str, &str)] = &[
    ("ce-specversion", "1.0"),
    ("ce-id", "1"),
    ("ce-source", "s"),
    ("ce-type", "a.b.c.spec.create_request"),
];

#[test]
fn malformed_messages_are_typed_errors() {
    use DecodeError::*;
    type Check = fn(&DecodeError) -> bool;
    let cases: Vec<(MqttMessage, Check)> =
        vec![
        (msg(&[], None, b"hello"), |e| matches!(e, UnknownEncoding(_))),
        (msg(&[], Some("application/json"), b"{}"), |e| matches!(e, UnknownEncoding(_))),
        (msg(&[("ce-specversion", "0.2")], None, b""), |e| matches!(e, SpecVersion(_))),
        (msg(&OK[..3], None, b""), |e| matches!(e, MissingAttribute("type"))),
        (msg(&[OK[0], OK[1], OK[2], ("ce-type", "")], None, b""), |e| {
            matches!(e, MissingAttribute("type"))
        }),
        (msg(&[OK[0], OK[1], OK[2], OK[3], ("ce-time", "noon")], None, b""), |e| {
            matches!(e, InvalidAttribute { name: "time", .. })
        }),
        (msg(&[OK[0], OK[1], OK[2], OK[3], ("ce-Bad_Name", "x")], None, b""), |e| {
            matches!(e, InvalidExtensionName(_))
        }),
        (msg(&[OK[0], OK[1], OK[2], OK[3], ("ce-id", "2")], None, b""), |e| {
            matches!(e, DuplicateProperty(_))
        }),
        (msg(OK, Some("application/json"), b"{not json"), |e| matches!(e, InvalidJsonData(_))),
        (msg(&[], Some("application/cloudevents+json"), b"[]"), |e| matches!(e, Structured(_))),
        (msg(&[], Some("application/cloudevents+json"), b"{\"specversion\":\"1.0\"}"), |e| {
            matches!(e, Structured(_))
        }),
        (
            msg(
                &[],
                Some("application/cloudevents+json"),
                br#"{"specversion":"1.0","id":"","source":"s","type":"t"}"#,
            ),
            |e| matches!(e, MissingAttribute("id")),
        ),
        (
            msg(
                &[],
                Some("application/cloudevents+json"),
                br#"{"specversion":"1.0","id":"1","source":"s","type":"t","resourceversion":1.5}"#,
            ),
            |e| matches!(e, Structured(_)),
        ),
    ];
    for (i, (m, check)) in cases.into_iter().enumerate() {
        let err = mqtt::decode(&m).expect_err(&format!("case {i} must fail"));
        assert!(check(&err), "case {i}: unexpected error {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn binary_mode_strings_and_other_properties() {
    let mut props = OK.to_vec();
    props.push(("ce-resourceversion", "13"));
    props.push(("ce-clustername", "cluster1"));
    props.push(("traceparent", "not-a-ce-property"));
    let e = mqtt::decode(&msg(&props, None, b"")).unwrap();
    assert_eq!(e.resource_version().unwrap(), 13);
    assert_eq!(
        e.extension("resourceversion"),
        Some(&ExtensionValue::Integer(13))
    );
    assert_eq!(e.cluster_name().unwrap(), Some("cluster1"));
    assert!(e.extension("traceparent").is_none());
    assert!(e.data().is_none());
    assert!(e.datacontenttype().is_none());
}

#[test]
fn mqtt311_structured_payload_without_properties() {
    let e = structured("cloudevents.spec.maestro.json");
    let mut m = mqtt::encode(&e, "t", Encoding::Structured).unwrap();
    m.content_type = None; // what an MQTT 3.1.1 hop delivers
    let (back, enc) = mqtt::decode_with_encoding(&m).unwrap();
    assert_eq!(enc, Encoding::Structured);
    assert_eq!(back, e);
}

fn arb_event() -> impl Strategy<Value = Event> {
    let ext_value = prop_oneof![
        "[ -~]{0,20}".prop_map(ExtensionValue::String),
        any::<bool>().prop_map(ExtensionValue::Boolean),
        any::<i32>().prop_map(|i| ExtensionValue::Integer(i64::from(i))),
    ];
    let data = prop_oneof![
        Just(None),
        proptest::collection::btree_map("[a-z]{1,5}", "[ -~]{0,8}", 0..4).prop_map(|m| Some((
            "application/json".to_string(),
            Data::Json(serde_json::json!(m))
        ))),
        "[ -~]{1,30}".prop_map(|s| Some(("text/plain".to_string(), Data::String(s)))),
        proptest::collection::vec(any::<u8>(), 1..30)
            .prop_map(|b| Some(("application/octet-stream".to_string(), Data::Binary(b)))),
    ];
    (
        "[a-zA-Z0-9-]{1,36}",
        "[a-z0-9-]{1,20}",
        "[a-z.]{1,10}\\.v1\\.[a-z]{1,8}\\.(spec|status)\\.[a-z_]{1,15}",
        proptest::option::of(0i64..4_000_000_000_000_000_000),
        proptest::collection::btree_map("[a-z][a-z0-9]{0,15}", ext_value, 0..6),
        data,
        proptest::option::of(i32::MIN..i32::MAX),
    )
        .prop_map(|(id, source, ty, nanos, exts, data, rv)| {
            let mut b = EventBuilderV10::new().id(id).source(source).ty(ty);
            if let Some(n) = nanos {
                b = b.time(chrono::DateTime::from_timestamp_nanos(n));
            }
            for (k, v) in exts {
                if ![
                    "specversion",
                    "id",
                    "source",
                    "type",
                    "time",
                    "subject",
                    "dataschema",
                    "datacontenttype",
                    "data",
                ]
                .contains(&k.as_str())
                {
                    b = b.extension(&k, v);
                }
            }
            if let Some(rv) = rv {
                b = b.extension("resourceversion", i64::from(rv));
            }
            if let Some((ct, d)) = data {
                b = b.data(ct, d);
            }
            b.build().unwrap()
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(e in arb_event()) {
        for mode in [Encoding::Binary, Encoding::Structured] {
            let m = mqtt::encode(&e, "t", mode).unwrap();
            let back = mqtt::decode(&m).unwrap();
            if mode == Encoding::Binary {
                // Binary mode carries extension values as strings; compare typed views.
                for (k, v) in e.iter_extensions() {
                    prop_assert_eq!(back.extension(k).map(|x| x.to_string()), Some(v.to_string()));
                }
                prop_assert_eq!(back.data(), e.data());
                prop_assert_eq!(back.time(), e.time());
                prop_assert_eq!(back.id(), e.id());
                prop_assert_eq!(back.ty(), e.ty());
                // And the binary form is a fixpoint.
                prop_assert_eq!(mqtt::encode(&back, "t", mode).unwrap(), m);
            } else {
                prop_assert_eq!(back, e.clone());
            }
        }
    }

    #[test]
    fn decode_never_panics(
        props in proptest::collection::vec(("(ce-)?[a-z]{0,12}", "[ -~]{0,20}"), 0..8),
        ct in proptest::option::of("[ -~]{0,30}"),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let m = MqttMessage { topic: "t".into(), content_type: ct, user_properties: props, payload, publisher: None };
        let _ = mqtt::decode(&m);
    }
}
