//! Property tests for `workbus_schemas::proto`: arbitrary valid events (random
//! ids, sources, types, extensions, JSON/text/binary data, times, both spec
//! versions) survive `to_proto`/`from_proto` and the byte encoding unchanged, and
//! arbitrary bytes fed to `decode` give an error or an event, never a panic.

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{Data, Event, EventBuilder as _, EventBuilderV03, EventBuilderV10};
use proptest::prelude::*;
use serde_json::{Number, Value};
use workbus_schemas::proto::{decode, encode_to_vec, from_proto, to_proto};

/// Context attribute names of either spec version: never extension names.
const ATTRIBUTE_NAMES: [&str; 9] = [
    "specversion",
    "id",
    "type",
    "source",
    "datacontenttype",
    "dataschema",
    "schemaurl",
    "subject",
    "time",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Data together with a content type that agrees with its variant (the module
/// documents what happens to the two combinations that disagree).
fn data() -> impl Strategy<Value = Option<(Option<String>, Data)>> {
    let json_ct = prop_oneof![
        Just(None),
        Just(Some("application/json".to_string())),
        Just(Some(
            "application/cloudevents+json; charset=utf-8".to_string()
        )),
    ];
    prop_oneof![
        Just(None),
        (json_ct, json_value()).prop_map(|(ct, v)| Some((ct, Data::Json(v)))),
        (
            prop_oneof![
                Just("text/plain"),
                Just("text/yaml"),
                Just("application/xml")
            ],
            ".{0,40}"
        )
            .prop_map(|(ct, s)| Some((Some(ct.to_string()), Data::String(s)))),
        // Text that is not JSON may use a JSON content type and stays a String.
        "[a-z ]{0,10}\\{"
            .prop_map(|s| Some((Some("application/json".to_string()), Data::String(s)))),
        (
            prop::option::of(prop_oneof![
                Just("application/octet-stream".to_string()),
                Just("application/json".to_string()),
                "[a-z]{1,8}/[a-z0-9.+-]{1,12}",
            ]),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(ct, b)| Some((ct, Data::Binary(b)))),
    ]
}

fn extension_value() -> impl Strategy<Value = ExtensionValue> {
    prop_oneof![
        ".{0,20}".prop_map(ExtensionValue::String),
        any::<bool>().prop_map(ExtensionValue::Boolean),
        any::<i32>().prop_map(|i| ExtensionValue::Integer(i64::from(i))),
    ]
}

fn extensions() -> impl Strategy<Value = Vec<(String, ExtensionValue)>> {
    prop::collection::vec(
        (
            "[a-z][a-z0-9]{0,19}".prop_filter("not an attribute name", |n| {
                !ATTRIBUTE_NAMES.contains(&n.as_str())
            }),
            extension_value(),
        ),
        0..8,
    )
}

fn time() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    // Years 1..=9999, the protobuf Timestamp range; any nanosecond.
    prop::option::of(
        (-62_135_596_800i64..=253_402_300_799, 0u32..1_000_000_000)
            .prop_filter_map("valid time", |(s, n)| DateTime::from_timestamp(s, n)),
    )
}

fn schema() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        ("(https?|urn)", "[a-z0-9]{1,10}", "[a-zA-Z0-9._~/-]{0,20}").prop_map(
            |(scheme, host, path)| {
                if scheme == "urn" {
                    format!("urn:{host}:{}", path.replace('/', "-"))
                } else {
                    format!("{scheme}://{host}.example/{path}")
                }
            },
        ),
    )
}

#[derive(Debug, Clone)]
struct Parts {
    v03: bool,
    id: String,
    source: String,
    ty: String,
    subject: Option<String>,
    time: Option<DateTime<Utc>>,
    schema: Option<String>,
    extensions: Vec<(String, ExtensionValue)>,
    data: Option<(Option<String>, Data)>,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        any::<bool>(),
        ".{0,30}",
        ".{0,30}",
        ".{0,60}",
        prop::option::of(".{0,20}"),
        time(),
        schema(),
        extensions(),
        data(),
    )
        .prop_map(
            |(v03, id, source, ty, subject, time, schema, extensions, data)| Parts {
                v03,
                id,
                source,
                ty,
                subject,
                time,
                schema,
                extensions,
                data,
            },
        )
}

/// Builds the event with the SDK's own builder, then sets what the builder
/// refuses (an empty source) or cannot express (data without a content type).
fn event(p: Parts) -> Event {
    macro_rules! build {
        ($builder:expr) => {{
            let mut b = $builder
                .id(p.id.clone())
                .ty(p.ty.clone())
                .source("placeholder");
            if let Some(subject) = &p.subject {
                b = b.subject(subject.clone());
            }
            if let Some(time) = p.time {
                b = b.time(time);
            }
            for (name, value) in &p.extensions {
                b = b.extension(name, value.clone());
            }
            b.build().expect("valid event")
        }};
    }
    let mut event = if p.v03 {
        build!(EventBuilderV03::new())
    } else {
        build!(EventBuilderV10::new())
    };
    use cloudevents::AttributesWriter as _;
    event.set_source(p.source);
    if let Some(schema) = p.schema {
        event.set_dataschema(Some(url::Url::parse(&schema).expect("valid schema URL")));
    }
    if let Some((content_type, data)) = p.data {
        event.set_datacontenttype(content_type);
        event.set_data_unchecked(data);
    }
    event
}

proptest! {
    #[test]
    fn events_round_trip_through_the_message(p in parts()) {
        let event = event(p);
        let message = to_proto(&event).expect("a valid event converts");
        prop_assert_eq!(from_proto(message).expect("converts back"), event);
    }

    #[test]
    fn events_round_trip_through_bytes(p in parts()) {
        let event = event(p);
        let bytes = encode_to_vec(&event).expect("a valid event encodes");
        prop_assert_eq!(decode(&bytes).expect("decodes"), event.clone());
        // Same event, same bytes.
        prop_assert_eq!(encode_to_vec(&event).expect("encodes"), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decoded_events_re_encode_to_the_same_event(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // Whatever decodes (possibly after normalising foreign attribute types)
        // is an event that then round-trips exactly.
        if let Ok(event) = decode(&bytes) {
            let again = encode_to_vec(&event).expect("a decoded event encodes");
            prop_assert_eq!(decode(&again).expect("decodes"), event);
        }
    }
}

/// Mutations of a valid record hit the decoder's deeper paths (attribute map,
/// timestamps, data) far more often than uniformly random bytes do.
#[test]
fn mutated_records_never_panic() {
    let base = {
        let mut e = EventBuilderV10::new()
            .id("1")
            .source("hub1")
            .ty("t")
            .time(Utc::now())
            .subject("s")
            .extension("clustername", "c1")
            .extension("resourceversion", 7i64)
            .extension("flag", false)
            .data("application/json", serde_json::json!({"a": [1, 2.5, "x"]}))
            .build()
            .expect("event");
        use cloudevents::AttributesWriter as _;
        e.set_dataschema(Some(url::Url::parse("https://s.example/x").expect("url")));
        encode_to_vec(&e).expect("encodes")
    };
    let mut runner = proptest::test_runner::TestRunner::default();
    let strategy = prop::collection::vec((0..base.len(), any::<u8>(), 0u8..3), 1..8);
    runner
        .run(&strategy, |edits| {
            let mut bytes = base.clone();
            for (at, byte, kind) in edits {
                let at = at.min(bytes.len().saturating_sub(1));
                match kind {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => bytes.truncate(at),
                }
            }
            if let Ok(event) = decode(&bytes) {
                let again = encode_to_vec(&event).expect("a decoded event encodes");
                prop_assert_eq!(decode(&again).expect("decodes"), event);
            }
            Ok(())
        })
        .expect("no panic and stable re-encoding");
}
