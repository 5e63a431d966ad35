//! `mqtt::limits`: the exact boundaries of the MQTT string and packet limits, the packet
//! size checked byte for byte against rumqttc's PUBLISH encoder (MQTT 5 binary mode and
//! MQTT 3.1.1 structured mode), and the three reproductions of issue 9 bug 5 as
//! messages.

use bytes::BytesMut;
use chrono::Utc;
use proptest::prelude::*;
use serde_json::json;
use workbus_schemas::envelope::SpecEventFields;
use workbus_schemas::event_type::Action;
use workbus_schemas::mqtt::limits::{
    MAX_PACKET_SIZE, MAX_STRING_BYTES, MessageField, is_allowed_char, publish_packet_size,
};
use workbus_schemas::mqtt::{
    self, Encoding, MessageLimitError, MqttMessage, MqttVersion, PublishLimits, check_publishable,
};

/// Limits that never refuse on size, to test one string limit at a time.
const ROOMY: PublishLimits = PublishLimits::v5(MAX_PACKET_SIZE);

fn message(
    topic: &str,
    content_type: Option<&str>,
    props: &[(&str, &str)],
    payload: usize,
) -> MqttMessage {
    MqttMessage {
        topic: topic.to_string(),
        content_type: content_type.map(str::to_string),
        user_properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload: vec![b'x'; payload],
        publisher: None,
    }
}

/// What rumqttc writes for `m` as an MQTT 5 PUBLISH.
fn rumqttc_v5_size(m: &MqttMessage, qos: u8) -> usize {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
    let props = PublishProperties {
        content_type: m.content_type.clone(),
        user_properties: m.user_properties.clone(),
        ..Default::default()
    };
    let qos = match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let mut p = Publish::new(m.topic.clone(), qos, m.payload.clone(), Some(props));
    p.pkid = if qos == QoS::AtMostOnce { 0 } else { 1 };
    let mut buf = BytesMut::new();
    let written = p.write(&mut buf).expect("rumqttc encodes it");
    assert_eq!(written, buf.len());
    written
}

/// What rumqttc writes for `m` as an MQTT 3.1.1 PUBLISH (no properties).
fn rumqttc_v311_size(m: &MqttMessage, qos: u8) -> usize {
    use rumqttc::QoS;
    use rumqttc::mqttbytes::v4::Publish;
    let qos = match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let mut p = Publish::new(m.topic.clone(), qos, m.payload.clone());
    p.pkid = if qos == QoS::AtMostOnce { 0 } else { 1 };
    let mut buf = BytesMut::new();
    p.write(&mut buf).expect("rumqttc encodes it");
    buf.len()
}

#[test]
fn every_string_fits_at_65535_bytes_and_not_at_65536() {
    let ok = "a".repeat(MAX_STRING_BYTES);
    let over = "a".repeat(MAX_STRING_BYTES + 1);
    assert_eq!(MAX_STRING_BYTES, 65_535);

    assert!(check_publishable(&message(&ok, None, &[], 0), &ROOMY).is_ok());
    assert_eq!(
        check_publishable(&message(&over, None, &[], 0), &ROOMY),
        Err(MessageLimitError::StringTooLong {
            field: MessageField::Topic,
            len: 65_536
        })
    );

    assert!(check_publishable(&message("t", Some(&ok), &[], 0), &ROOMY).is_ok());
    assert_eq!(
        check_publishable(&message("t", Some(&over), &[], 0), &ROOMY),
        Err(MessageLimitError::StringTooLong {
            field: MessageField::ContentType,
            len: 65_536
        })
    );

    let props = [("ce-id", "1"), (ok.as_str(), "v")];
    assert!(check_publishable(&message("t", None, &props, 0), &ROOMY).is_ok());
    let props = [("ce-id", "1"), (over.as_str(), "v")];
    assert_eq!(
        check_publishable(&message("t", None, &props, 0), &ROOMY),
        Err(MessageLimitError::StringTooLong {
            field: MessageField::UserPropertyName { index: 1 },
            len: 65_536
        })
    );

    let props = [("ce-metadata", ok.as_str())];
    assert!(check_publishable(&message("t", None, &props, 0), &ROOMY).is_ok());
    let props = [("ce-metadata", over.as_str())];
    let err = check_publishable(&message("t", None, &props, 0), &ROOMY).unwrap_err();
    assert_eq!(
        err,
        MessageLimitError::StringTooLong {
            field: MessageField::UserPropertyValue {
                name: "ce-metadata".into()
            },
            len: 65_536
        }
    );
    assert_eq!(
        err.to_string(),
        "the user property \"ce-metadata\" is 65536 bytes, over the MQTT limit of 65535 bytes \
         for a UTF-8 string"
    );
    // Bytes count, not characters: 32,768 two-byte characters are 65,536 bytes.
    let wide = "é".repeat(32_768);
    assert!(matches!(
        check_publishable(&message("t", None, &[("k", wide.as_str())], 0), &ROOMY),
        Err(MessageLimitError::StringTooLong { len: 65_536, .. })
    ));
}

#[test]
fn a_packet_at_the_limit_fits_and_one_byte_more_does_not() {
    let cases = [
        // MQTT 5 binary mode: properties and payload.
        (
            message(
                "sources/hub/consumers/edge-1/sourceevents",
                Some("application/json"),
                &[
                    ("ce-specversion", "1.0"),
                    ("ce-metadata", &"m".repeat(40_000)),
                ],
                900_000,
            ),
            MqttVersion::V5,
        ),
        // MQTT 3.1.1 structured mode: a JSON payload only.
        (
            message(
                "sources/hub/consumers/edge-1/sourceevents",
                None,
                &[],
                1_000_000,
            ),
            MqttVersion::V311,
        ),
    ];
    for (m, version) in cases {
        for qos in [0, 1] {
            let size = publish_packet_size(&m, version, qos);
            let at = PublishLimits {
                version,
                qos,
                max_packet_size: size,
            };
            assert_eq!(
                check_publishable(&m, &at),
                Ok(size),
                "{version:?} qos {qos}"
            );
            let under = PublishLimits {
                max_packet_size: size - 1,
                ..at
            };
            assert_eq!(
                check_publishable(&m, &under),
                Err(MessageLimitError::PacketTooLarge {
                    size,
                    limit: size - 1
                }),
                "{version:?} qos {qos}"
            );
            let written = match version {
                MqttVersion::V5 => rumqttc_v5_size(&m, qos),
                MqttVersion::V311 => rumqttc_v311_size(&m, qos),
            };
            assert_eq!(size, written, "{version:?} qos {qos}");
        }
    }
}

#[test]
fn the_packet_limit_is_checked_before_the_strings_and_capped_by_mqtt() {
    // Both limits broken: the packet one is reported (it is what a client enforces).
    let m = message("t", None, &[("ce-metadata", &"m".repeat(1_200_000))], 0);
    assert!(matches!(
        check_publishable(&m, &PublishLimits::v5(1024 * 1024)),
        Err(MessageLimitError::PacketTooLarge {
            limit: 1_048_576,
            ..
        })
    ));
    // A configured limit above what MQTT can encode means MQTT's.
    let limits = PublishLimits::v5(usize::MAX);
    assert_eq!(limits.effective_max_packet_size(), 268_435_460);
}

#[test]
fn mqtt_311_carries_no_properties() {
    let limits = PublishLimits {
        version: MqttVersion::V311,
        qos: 1,
        max_packet_size: 1 << 20,
    };
    assert_eq!(
        check_publishable(&message("t", Some("application/json"), &[], 1), &limits),
        Err(MessageLimitError::PropertiesUnsupported)
    );
    assert_eq!(
        check_publishable(&message("t", None, &[("ce-id", "1")], 1), &limits),
        Err(MessageLimitError::PropertiesUnsupported)
    );
    assert!(check_publishable(&message("t", None, &[], 1), &limits).is_ok());
}

#[test]
fn nul_controls_and_non_characters_are_refused() {
    for c in [
        '\0',
        '\t',
        '\n',
        '\u{1f}',
        '\u{7f}',
        '\u{85}',
        '\u{9f}',
        '\u{fdd0}',
        '\u{fdef}',
        '\u{fffe}',
        '\u{ffff}',
        '\u{1fffe}',
        '\u{10ffff}',
    ] {
        assert!(!is_allowed_char(c), "U+{:04X}", c as u32);
        let value = format!("a{c}b");
        assert_eq!(
            check_publishable(&message("t", None, &[("ce-metadata", &value)], 0), &ROOMY),
            Err(MessageLimitError::ForbiddenCharacter {
                field: MessageField::UserPropertyValue {
                    name: "ce-metadata".into()
                },
                code_point: c as u32
            })
        );
    }
    for c in [
        ' ', '~', '\u{a0}', 'é', '\u{fdcf}', '\u{fdf0}', '\u{fffd}', '😀',
    ] {
        assert!(is_allowed_char(c), "U+{:04X}", c as u32);
    }
    assert!(matches!(
        check_publishable(&message("a\0b", None, &[], 0), &ROOMY),
        Err(MessageLimitError::ForbiddenCharacter {
            field: MessageField::Topic,
            code_point: 0
        })
    ));
}

/// A spec event as the hub builds it, with `annotation_bytes` of annotation and
/// `data_bytes` of ConfigMap data, in binary mode.
fn spec_message(cluster: &str, annotation_bytes: usize, data_bytes: usize) -> MqttMessage {
    let meta = json!({"name": "w", "namespace": cluster, "uid": "u", "resourceVersion": "1",
        "generation": 1,
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(annotation_bytes)}});
    let event = SpecEventFields {
        source_id: "hub".into(),
        action: Action::CreateRequest,
        cluster_name: cluster.into(),
        resource_id: "u".into(),
        generation: 1,
        metadata: meta.as_object().cloned(),
        bundle: Some(
            json!({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm"}, "data": {"k": "z".repeat(data_bytes)}}]}),
        ),
        deletion_timestamp: None,
        log_tracing: None,
    }
    .build(Utc::now())
    .unwrap();
    let topic = format!("sources/hub/consumers/{cluster}/sourceevents");
    mqtt::encode(&event, &topic, Encoding::Binary).unwrap()
}

#[test]
fn the_three_reproductions_are_refused() {
    let limits = PublishLimits::v5(1024 * 1024);
    assert!(check_publishable(&spec_message("edge-1", 1_000, 1_000), &limits).is_ok());
    // A 70 KB annotation: ce-metadata is too long for one MQTT string.
    assert!(matches!(
        check_publishable(&spec_message("edge-1", 70_000, 10), &limits),
        Err(MessageLimitError::StringTooLong {
            field: MessageField::UserPropertyValue { ref name },
            len,
        }) if name == "ce-metadata" && len > 70_000
    ));
    // A 70,000-character cluster name: the topic is too long.
    assert!(matches!(
        check_publishable(&spec_message(&"c".repeat(70_000), 10, 10), &limits),
        Err(MessageLimitError::StringTooLong {
            field: MessageField::Topic,
            ..
        })
    ));
    // 1.2 MB: over the 1 MiB packet limit.
    assert!(matches!(
        check_publishable(&spec_message("edge-1", 10, 1_200_000), &limits),
        Err(MessageLimitError::PacketTooLarge { size, limit: 1_048_576 }) if size > 1_200_000
    ));
}

fn arb_string(max: usize) -> impl Strategy<Value = String> {
    // Lengths around the variable-byte-integer boundaries matter, not the content.
    (0..=max).prop_map(|n| "p".repeat(n))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Our size is rumqttc's, for any mix of topic, properties and payload (lengths
    /// spanning the 1-, 2- and 3-byte Remaining Length and Property Length forms).
    #[test]
    fn packet_size_matches_rumqttc(
        topic in arb_string(300),
        content_type in proptest::option::of(arb_string(40)),
        props in proptest::collection::vec((arb_string(20), arb_string(20_000)), 0..4),
        payload in prop_oneof![0usize..200, 16_000usize..17_000, 2_090_000usize..2_100_000],
        qos in 0u8..=2,
    ) {
        let m = MqttMessage {
            topic: format!("t{topic}"),
            content_type,
            user_properties: props,
            payload: vec![0; payload],
            publisher: None,
        };
        prop_assert_eq!(publish_packet_size(&m, MqttVersion::V5, qos), rumqttc_v5_size(&m, qos));
        let plain = MqttMessage { content_type: None, user_properties: Vec::new(), ..m };
        prop_assert_eq!(publish_packet_size(&plain, MqttVersion::V311, qos), rumqttc_v311_size(&plain, qos));
    }
}
