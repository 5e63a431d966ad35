//! The CloudEvents protobuf event format (feature `protobuf`): what sdk-go's gRPC
//! driver and Maestro's gRPC source API carry, for tools that exchange events with
//! them.
//!
//! `proto/cloudevent.proto` (package `io.cloudevents.v1`) is compiled at build time
//! (see `build.rs`); its messages [`CloudEvent`] and [`CloudEventAttributeValue`]
//! are generated into this module. On top of them:
//!
//! * [`to_proto`] / [`from_proto`] convert between [`Event`] and [`CloudEvent`];
//! * [`encode_to_vec`] / [`decode`] go straight between [`Event`] and bytes.
//!
//! Nothing on the MQTT wire uses this format; OCM peers speak binary-mode
//! CloudEvents there, and the hub's audit log stores structured JSON. The conversion
//! is lossless, so an event read from a gRPC peer can be relayed or recorded as it
//! came.
//!
//! # Mapping
//!
//! * `id`, `source`, `specversion` and `type` are the message's own fields.
//! * `time` is a `ce_timestamp`, `datacontenttype` and `subject` are `ce_string`s,
//!   and `dataschema` (`schemaurl` for spec 0.3 events) is a `ce_uri`, each in the
//!   `attributes` map under its own name.
//! * Extensions go in the same map: String → `ce_string`, Boolean → `ce_boolean`,
//!   Integer → `ce_integer`. CloudEvents Integers are 32-bit, so an `i64`
//!   extension outside `i32` is refused ([`ProtoError::IntegerOutOfRange`]), as
//!   is an extension named like a context attribute of its spec version
//!   ([`ProtoError::ReservedExtensionName`]), which the map could not tell apart.
//! * Data: [`Data::Binary`] → `binary_data`; [`Data::String`] → `text_data`;
//!   [`Data::Json`] → `text_data` holding its JSON text.
//!
//! # `Data::String` versus `Data::Json`
//!
//! The format has one text slot, so which Rust variant text came from is not
//! recorded; decoding re-derives it from the content type, the same way the
//! content type decides it everywhere else in CloudEvents. `text_data` becomes
//! [`Data::Json`] when the content type is JSON (`application/json`,
//! `text/json`, `*+json`, parameters and case ignored) **or absent** (CloudEvents
//! treats absent as JSON) and the text parses as JSON; otherwise it stays
//! [`Data::String`]. So [`from_proto`]`(`[`to_proto`]`(e)) == e` for every event
//! whose data variant agrees with its content type, which is every event workbus
//! builds. The only events that come back different are the two that disagree:
//!
//! * a [`Data::String`] whose text is valid JSON, under a JSON or absent content
//!   type, comes back as the equal-meaning [`Data::Json`];
//! * a [`Data::Json`] under a non-JSON content type (e.g. `text/plain`) comes back
//!   as [`Data::String`] holding its JSON text.
//!
//! In both cases the content type and the meaning of the payload are preserved.
//! Alternatives were rejected: a private marker attribute or a wrapper message
//! would make records that other readers of the format misread.
//!
//! # Reading events written by others
//!
//! [`from_proto`] also accepts what other writers of the format may produce:
//! `time` as an RFC 3339 `ce_string`, `dataschema` as `ce_string`/`ce_uri_ref`,
//! and extensions of the types `Event` has no variant for, which become their
//! canonical CloudEvents string form (`ce_bytes` base64, `ce_uri`/`ce_uri_ref` as
//! is, `ce_timestamp` RFC 3339). `proto_data` (a protobuf message as data) is
//! refused: an `Event` could only hold its bytes, not its type.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use cloudevents::event::{EventBuilder as _, ExtensionValue, SpecVersion};
use cloudevents::{
    AttributesReader, AttributesWriter, Data, Event, EventBuilderV03, EventBuilderV10,
};
use prost::Message as _;
use url::Url;

include!(concat!(env!("OUT_DIR"), "/io.cloudevents.v1.rs"));

use cloud_event::Data as ProtoData;
use cloud_event_attribute_value::Attr;

/// Why an event could not be converted to or from the protobuf format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// An Integer extension outside `i32`, the range of a CloudEvents Integer.
    #[error("extension {name:?} = {value} does not fit a CloudEvents Integer (32-bit)")]
    IntegerOutOfRange {
        /// The extension name.
        name: String,
        /// Its value.
        value: i64,
    },
    /// An extension named like a context attribute of the event's spec version.
    #[error("extension {0:?} has the name of a context attribute")]
    ReservedExtensionName(String),
    /// A time a protobuf `Timestamp` cannot hold: a leap second, or a year outside
    /// 1..=9999.
    #[error("time {0} cannot be a protobuf Timestamp")]
    TimeNotRepresentable(String),
    /// `spec_version` is neither `1.0` nor `0.3`.
    #[error("unsupported CloudEvents spec version {0:?}")]
    UnknownSpecVersion(String),
    /// A required context attribute (`id`, `source`, `specversion`, `type`)
    /// appears in the `attributes` map.
    #[error("attribute {0:?} must not be in the attributes map")]
    RequiredAttributeInMap(String),
    /// An attribute whose value has no type set.
    #[error("attribute {0:?} has no value")]
    MissingAttributeValue(String),
    /// An optional attribute carried with a type it cannot have.
    #[error("attribute {name:?} has the wrong type, expected {expected}")]
    AttributeType {
        /// The attribute name.
        name: String,
        /// The types accepted for it.
        expected: &'static str,
    },
    /// A timestamp outside the protobuf `Timestamp` range, or an unparsable time
    /// string.
    #[error("attribute {0:?} holds an invalid timestamp")]
    InvalidTimestamp(String),
    /// A `dataschema` that is not an absolute URI.
    #[error("attribute {name:?} holds an invalid URI: {reason}")]
    InvalidUri {
        /// The attribute name.
        name: String,
        /// Why the URI was refused.
        reason: String,
    },
    /// The event's data is a protobuf message (`proto_data`).
    #[error("protobuf message data (proto_data) is not supported")]
    ProtoDataUnsupported,
    /// The bytes are not a protobuf `CloudEvent`.
    #[error("malformed protobuf CloudEvent: {0}")]
    Decode(#[from] prost::DecodeError),
    /// JSON data could not be written as text (not expected for a JSON value).
    #[error("JSON data could not be serialized: {0}")]
    Json(String),
    /// The CloudEvents SDK refused to build the event.
    #[error("could not build the event: {0}")]
    Build(String),
}

/// Attribute names, as they appear in the `attributes` map.
const DATACONTENTTYPE: &str = "datacontenttype";
const DATASCHEMA_V10: &str = "dataschema";
const SCHEMAURL_V03: &str = "schemaurl";
const SUBJECT: &str = "subject";
const TIME: &str = "time";
/// Required attributes: the message's own fields, never map keys.
const REQUIRED: [&str; 4] = ["id", "source", "specversion", "type"];

/// The `Timestamp` range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

fn dataschema_name(spec: &SpecVersion) -> &'static str {
    match spec {
        SpecVersion::V03 => SCHEMAURL_V03,
        SpecVersion::V10 => DATASCHEMA_V10,
    }
}

fn value(attr: Attr) -> CloudEventAttributeValue {
    CloudEventAttributeValue { attr: Some(attr) }
}

/// Whether a content type says the data is JSON. An absent content type counts
/// as JSON, as in the CloudEvents JSON format.
fn is_json_content_type(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media_type == "application/json" || media_type == "text/json" || media_type.ends_with("+json")
}

fn to_timestamp(time: &DateTime<Utc>) -> Result<prost_types::Timestamp, ProtoError> {
    let seconds = time.timestamp();
    let nanos = time.timestamp_subsec_nanos();
    // chrono marks a leap second with nanos >= 1e9, which a Timestamp cannot hold.
    if nanos >= 1_000_000_000 || !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&seconds)
    {
        return Err(ProtoError::TimeNotRepresentable(time.to_rfc3339()));
    }
    Ok(prost_types::Timestamp {
        seconds,
        // < 1e9, so it fits an i32.
        nanos: nanos as i32,
    })
}

fn from_timestamp(name: &str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, ProtoError> {
    let invalid = || ProtoError::InvalidTimestamp(name.to_string());
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds) {
        return Err(invalid());
    }
    let nanos = u32::try_from(ts.nanos).map_err(|_| invalid())?;
    if nanos >= 1_000_000_000 {
        return Err(invalid());
    }
    DateTime::from_timestamp(ts.seconds, nanos).ok_or_else(invalid)
}

fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Converts an event to the protobuf format; see the module docs for the mapping.
pub fn to_proto(event: &Event) -> Result<CloudEvent, ProtoError> {
    let spec = event.specversion();
    let mut attributes = BTreeMap::new();

    if let Some(content_type) = event.datacontenttype() {
        attributes.insert(
            DATACONTENTTYPE.to_string(),
            value(Attr::CeString(content_type.to_string())),
        );
    }
    if let Some(schema) = event.dataschema() {
        attributes.insert(
            dataschema_name(&spec).to_string(),
            value(Attr::CeUri(schema.as_str().to_string())),
        );
    }
    if let Some(subject) = event.subject() {
        attributes.insert(
            SUBJECT.to_string(),
            value(Attr::CeString(subject.to_string())),
        );
    }
    if let Some(time) = event.time() {
        attributes.insert(
            TIME.to_string(),
            value(Attr::CeTimestamp(to_timestamp(time)?)),
        );
    }

    for (name, ext) in event.iter_extensions() {
        if spec.attribute_names().contains(&name) {
            return Err(ProtoError::ReservedExtensionName(name.to_string()));
        }
        let attr =
            match ext {
                ExtensionValue::String(s) => Attr::CeString(s.clone()),
                ExtensionValue::Boolean(b) => Attr::CeBoolean(*b),
                ExtensionValue::Integer(i) => Attr::CeInteger(i32::try_from(*i).map_err(|_| {
                    ProtoError::IntegerOutOfRange {
                        name: name.to_string(),
                        value: *i,
                    }
                })?),
            };
        attributes.insert(name.to_string(), value(attr));
    }

    let data = match event.data() {
        None => None,
        Some(Data::Binary(bytes)) => Some(ProtoData::BinaryData(bytes.clone())),
        Some(Data::String(text)) => Some(ProtoData::TextData(text.clone())),
        Some(Data::Json(json)) => Some(ProtoData::TextData(
            serde_json::to_string(json).map_err(|e| ProtoError::Json(e.to_string()))?,
        )),
    };

    Ok(CloudEvent {
        id: event.id().to_string(),
        source: event.source().to_string(),
        spec_version: spec.as_str().to_string(),
        r#type: event.ty().to_string(),
        attributes,
        data,
    })
}

/// The string of an attribute that must be a `ce_string`.
fn expect_string(name: &str, attr: Attr) -> Result<String, ProtoError> {
    match attr {
        Attr::CeString(s) => Ok(s),
        _ => Err(ProtoError::AttributeType {
            name: name.to_string(),
            expected: "ce_string",
        }),
    }
}

fn parse_schema(name: &str, attr: Attr) -> Result<Url, ProtoError> {
    let text = match attr {
        Attr::CeUri(s) | Attr::CeUriRef(s) | Attr::CeString(s) => s,
        _ => {
            return Err(ProtoError::AttributeType {
                name: name.to_string(),
                expected: "ce_uri, ce_uri_ref or ce_string",
            });
        }
    };
    Url::parse(&text).map_err(|e| ProtoError::InvalidUri {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

fn parse_time(name: &str, attr: Attr) -> Result<DateTime<Utc>, ProtoError> {
    match attr {
        Attr::CeTimestamp(ts) => from_timestamp(name, &ts),
        Attr::CeString(s) => {
            let invalid = || ProtoError::InvalidTimestamp(name.to_string());
            let time = DateTime::parse_from_rfc3339(&s)
                .map_err(|_| invalid())?
                .with_timezone(&Utc);
            // Keep to what a Timestamp can hold (no year 0, no leap second), so a
            // decoded event can always be encoded again.
            to_timestamp(&time).map_err(|_| invalid())?;
            Ok(time)
        }
        _ => Err(ProtoError::AttributeType {
            name: name.to_string(),
            expected: "ce_timestamp or ce_string",
        }),
    }
}

fn extension_value(name: &str, attr: Attr) -> Result<ExtensionValue, ProtoError> {
    Ok(match attr {
        Attr::CeBoolean(b) => ExtensionValue::Boolean(b),
        Attr::CeInteger(i) => ExtensionValue::Integer(i64::from(i)),
        Attr::CeString(s) | Attr::CeUri(s) | Attr::CeUriRef(s) => ExtensionValue::String(s),
        Attr::CeBytes(b) => ExtensionValue::String(BASE64.encode(b)),
        Attr::CeTimestamp(ts) => ExtensionValue::String(rfc3339(&from_timestamp(name, &ts)?)),
    })
}

/// Converts a protobuf `CloudEvent` back to an event; see the module docs.
pub fn from_proto(message: CloudEvent) -> Result<Event, ProtoError> {
    let spec = SpecVersion::try_from(message.spec_version.as_str())
        .map_err(|_| ProtoError::UnknownSpecVersion(message.spec_version.clone()))?;

    // The builders insist on a non-empty source; an event may still hold an empty
    // one, so build with a placeholder and set the real source afterwards.
    let mut event = match spec {
        SpecVersion::V03 => EventBuilderV03::new()
            .id(message.id)
            .ty(message.r#type)
            .source("placeholder")
            .build(),
        SpecVersion::V10 => EventBuilderV10::new()
            .id(message.id)
            .ty(message.r#type)
            .source("placeholder")
            .build(),
    }
    .map_err(|e| ProtoError::Build(e.to_string()))?;
    event.set_source(message.source);

    let schema_name = dataschema_name(&spec);
    for (name, attr_value) in message.attributes {
        if REQUIRED.contains(&name.as_str()) {
            return Err(ProtoError::RequiredAttributeInMap(name));
        }
        let Some(attr) = attr_value.attr else {
            return Err(ProtoError::MissingAttributeValue(name));
        };
        match name.as_str() {
            DATACONTENTTYPE => {
                event.set_datacontenttype(Some(expect_string(&name, attr)?));
            }
            SUBJECT => {
                event.set_subject(Some(expect_string(&name, attr)?));
            }
            TIME => {
                event.set_time(Some(parse_time(&name, attr)?));
            }
            n if n == schema_name => {
                event.set_dataschema(Some(parse_schema(&name, attr)?));
            }
            _ => {
                let ext = extension_value(&name, attr)?;
                event.set_extension(&name, ext);
            }
        }
    }

    match message.data {
        None => {}
        Some(ProtoData::BinaryData(bytes)) => {
            event.set_data_unchecked(Data::Binary(bytes));
        }
        Some(ProtoData::TextData(text)) => {
            let data = if is_json_content_type(event.datacontenttype()) {
                match serde_json::from_str(&text) {
                    Ok(json) => Data::Json(json),
                    Err(_) => Data::String(text),
                }
            } else {
                Data::String(text)
            };
            event.set_data_unchecked(data);
        }
        Some(ProtoData::ProtoData(_)) => return Err(ProtoError::ProtoDataUnsupported),
    }
    Ok(event)
}

/// Encodes an event as protobuf bytes (an audit-log record).
///
/// Deterministic: the same event always gives the same bytes, because attributes
/// are written in name order.
pub fn encode_to_vec(event: &Event) -> Result<Vec<u8>, ProtoError> {
    Ok(to_proto(event)?.encode_to_vec())
}

/// Decodes protobuf bytes written by [`encode_to_vec`] (or any writer of the
/// format) back to an event. Garbage gives [`ProtoError::Decode`], never a panic.
pub fn decode(bytes: &[u8]) -> Result<Event, ProtoError> {
    from_proto(CloudEvent::decode(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> EventBuilderV10 {
        EventBuilderV10::new()
            .id("6a7b8c")
            .source("hub1")
            .ty("io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request")
    }

    fn round_trip(event: &Event) -> Event {
        let bytes = encode_to_vec(event).expect("encodes");
        decode(&bytes).expect("decodes")
    }

    #[test]
    fn full_event_maps_to_the_documented_fields() {
        let time = DateTime::parse_from_rfc3339("2025-12-16T06:00:17.921Z")
            .expect("time")
            .with_timezone(&Utc);
        let event = base()
            .time(time)
            .subject("work1")
            .extension("clustername", "cluster1")
            .extension("resourceversion", 3i64)
            .extension("flag", true)
            .data_with_schema(
                "application/json",
                "https://example.com/schema",
                json!({"manifests": []}),
            )
            .build()
            .expect("event");
        let message = to_proto(&event).expect("to_proto");
        assert_eq!(message.id, "6a7b8c");
        assert_eq!(message.source, "hub1");
        assert_eq!(message.spec_version, "1.0");
        assert_eq!(message.r#type, event.ty());
        let attr = |name: &str| message.attributes[name].attr.clone();
        assert_eq!(
            attr("datacontenttype"),
            Some(Attr::CeString("application/json".into()))
        );
        assert_eq!(
            attr("dataschema"),
            Some(Attr::CeUri("https://example.com/schema".into()))
        );
        assert_eq!(attr("subject"), Some(Attr::CeString("work1".into())));
        assert_eq!(
            attr("time"),
            Some(Attr::CeTimestamp(prost_types::Timestamp {
                seconds: 1_765_864_817,
                nanos: 921_000_000
            }))
        );
        assert_eq!(attr("clustername"), Some(Attr::CeString("cluster1".into())));
        assert_eq!(attr("resourceversion"), Some(Attr::CeInteger(3)));
        assert_eq!(attr("flag"), Some(Attr::CeBoolean(true)));
        assert_eq!(message.attributes.len(), 7);
        assert_eq!(
            message.data,
            Some(ProtoData::TextData(r#"{"manifests":[]}"#.into()))
        );
        assert_eq!(from_proto(message).expect("from_proto"), event);
        assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn string_and_binary_data_round_trip() {
        let text = base()
            .data("text/plain", "not json")
            .build()
            .expect("event");
        assert_eq!(round_trip(&text), text);
        // Valid JSON text stays a string under a non-JSON content type.
        let text = base()
            .data("text/plain", "{\"a\":1}")
            .build()
            .expect("event");
        assert_eq!(round_trip(&text), text);
        // Non-JSON text under a JSON content type stays a string too.
        let text = base()
            .data("application/json", "{not json")
            .build()
            .expect("event");
        assert_eq!(round_trip(&text), text);

        let binary = base()
            .data("application/octet-stream", vec![0u8, 159, 146, 150])
            .build()
            .expect("event");
        assert_eq!(
            to_proto(&binary).expect("to_proto").data,
            Some(ProtoData::BinaryData(vec![0, 159, 146, 150]))
        );
        assert_eq!(round_trip(&binary), binary);
        // Binary JSON bytes stay binary.
        let binary = base()
            .data("application/json", b"{}".to_vec())
            .build()
            .expect("event");
        assert_eq!(round_trip(&binary), binary);
        let empty = base()
            .data("application/octet-stream", Vec::new())
            .build()
            .expect("event");
        assert_eq!(round_trip(&empty), empty);
    }

    #[test]
    fn json_data_without_content_type_round_trips() {
        let mut event = base().build().expect("event");
        event.set_data_unchecked(json!([1, "two", null]));
        assert_eq!(event.datacontenttype(), None);
        assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn json_content_type_detection() {
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "text/json",
            "application/cloudevents+json",
        ] {
            assert!(is_json_content_type(Some(ct)), "{ct}");
        }
        for ct in [
            "text/plain",
            "application/jsonx",
            "application/octet-stream",
        ] {
            assert!(!is_json_content_type(Some(ct)), "{ct}");
        }
        assert!(is_json_content_type(None));
    }

    #[test]
    fn documented_variant_changes() {
        // A String holding JSON text under a JSON content type comes back as Json.
        let event = base()
            .data("application/json", "[1,2]")
            .build()
            .expect("event");
        let back = round_trip(&event);
        assert_eq!(back.data(), Some(&Data::Json(json!([1, 2]))));
        assert_eq!(back.datacontenttype(), Some("application/json"));
        // Json under a non-JSON content type comes back as its text.
        let event = base()
            .data("text/plain", json!({"a": 1}))
            .build()
            .expect("event");
        let back = round_trip(&event);
        assert_eq!(back.data(), Some(&Data::String(r#"{"a":1}"#.into())));
    }

    #[test]
    fn spec_0_3_events_round_trip_with_schemaurl() {
        let event = EventBuilderV03::new()
            .id("1")
            .source("/agent")
            .ty("t")
            .data_with_schema("application/json", "http://s.example/x", json!(1))
            .extension("dataschema", "an extension in 0.3")
            .build()
            .expect("event");
        let message = to_proto(&event).expect("to_proto");
        assert_eq!(message.spec_version, "0.3");
        assert_eq!(
            message.attributes["schemaurl"].attr,
            Some(Attr::CeUri("http://s.example/x".into()))
        );
        assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn empty_source_and_id_round_trip() {
        let mut event = base().build().expect("event");
        event.set_source("");
        event.set_id("");
        assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn integer_extensions_must_fit_int32() {
        for ok in [i64::from(i32::MIN), i64::from(i32::MAX), 0] {
            let event = base().extension("n", ok).build().expect("event");
            assert_eq!(round_trip(&event), event);
        }
        let too_big = i64::from(i32::MAX) + 1;
        let event = base().extension("n", too_big).build().expect("event");
        assert_eq!(
            to_proto(&event),
            Err(ProtoError::IntegerOutOfRange {
                name: "n".into(),
                value: too_big
            })
        );
        assert!(matches!(
            encode_to_vec(&event),
            Err(ProtoError::IntegerOutOfRange { .. })
        ));
    }

    #[test]
    fn extensions_named_like_attributes_are_refused() {
        for name in ["time", "subject", "id", "specversion", "dataschema"] {
            let event = base().extension(name, "x").build().expect("event");
            assert_eq!(
                to_proto(&event),
                Err(ProtoError::ReservedExtensionName(name.into())),
                "{name}"
            );
        }
        // `schemaurl` is only an attribute in 0.3.
        let event = base().extension("schemaurl", "x").build().expect("event");
        assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn times_a_timestamp_cannot_hold_are_refused() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("leap second")
            .and_utc();
        let event = base().time(leap).build().expect("event");
        assert!(matches!(
            to_proto(&event),
            Err(ProtoError::TimeNotRepresentable(_))
        ));
        let far = DateTime::from_timestamp(MAX_TIMESTAMP_SECONDS + 1, 0).expect("year 10000");
        let event = base().time(far).build().expect("event");
        assert!(matches!(
            to_proto(&event),
            Err(ProtoError::TimeNotRepresentable(_))
        ));
        let last = DateTime::from_timestamp(MAX_TIMESTAMP_SECONDS, 999_999_999).expect("last");
        let first = DateTime::from_timestamp(MIN_TIMESTAMP_SECONDS, 0).expect("first");
        for t in [last, first] {
            let event = base().time(t).build().expect("event");
            assert_eq!(round_trip(&event), event);
        }
    }

    fn message(attributes: Vec<(&str, Attr)>) -> CloudEvent {
        CloudEvent {
            id: "1".into(),
            source: "s".into(),
            spec_version: "1.0".into(),
            r#type: "t".into(),
            attributes: attributes
                .into_iter()
                .map(|(k, v)| (k.to_string(), value(v)))
                .collect(),
            data: None,
        }
    }

    #[test]
    fn foreign_attribute_types_are_read_leniently() {
        let event = from_proto(message(vec![
            (
                "time",
                Attr::CeString("2025-12-16T07:00:17.921+01:00".into()),
            ),
            ("dataschema", Attr::CeUriRef("https://example.com/s".into())),
            ("bin", Attr::CeBytes(vec![1, 2, 3])),
            ("uri", Attr::CeUri("https://example.com".into())),
            (
                "when",
                Attr::CeTimestamp(prost_types::Timestamp {
                    seconds: 1_765_864_817,
                    nanos: 921_000_000,
                }),
            ),
        ]))
        .expect("from_proto");
        assert_eq!(
            event.time().map(|t| t.timestamp_millis()),
            Some(1_765_864_817_921)
        );
        assert_eq!(
            event.dataschema().map(Url::as_str),
            Some("https://example.com/s")
        );
        assert_eq!(
            event.extension("bin"),
            Some(&ExtensionValue::String("AQID".into()))
        );
        assert_eq!(
            event.extension("uri"),
            Some(&ExtensionValue::String("https://example.com".into()))
        );
        assert_eq!(
            event.extension("when"),
            Some(&ExtensionValue::String("2025-12-16T06:00:17.921Z".into()))
        );
    }

    #[test]
    fn malformed_messages_give_typed_errors() {
        let mut bad_version = message(vec![]);
        bad_version.spec_version = "2.0".into();
        assert_eq!(
            from_proto(bad_version),
            Err(ProtoError::UnknownSpecVersion("2.0".into()))
        );
        assert_eq!(
            from_proto(message(vec![("id", Attr::CeString("x".into()))])),
            Err(ProtoError::RequiredAttributeInMap("id".into()))
        );
        let mut empty_value = message(vec![]);
        empty_value
            .attributes
            .insert("x".into(), CloudEventAttributeValue { attr: None });
        assert_eq!(
            from_proto(empty_value),
            Err(ProtoError::MissingAttributeValue("x".into()))
        );
        assert!(matches!(
            from_proto(message(vec![("subject", Attr::CeBoolean(true))])),
            Err(ProtoError::AttributeType { .. })
        ));
        assert!(matches!(
            from_proto(message(vec![("time", Attr::CeInteger(1))])),
            Err(ProtoError::AttributeType { .. })
        ));
        for text in ["yesterday", "0000-01-01T00:00:00Z", "2016-12-31T23:59:60Z"] {
            assert_eq!(
                from_proto(message(vec![("time", Attr::CeString(text.into()))])),
                Err(ProtoError::InvalidTimestamp("time".into())),
                "{text}"
            );
        }
        assert!(matches!(
            from_proto(message(vec![(
                "time",
                Attr::CeTimestamp(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1
                })
            )])),
            Err(ProtoError::InvalidTimestamp(_))
        ));
        assert!(matches!(
            from_proto(message(vec![(
                "x",
                Attr::CeTimestamp(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0
                })
            )])),
            Err(ProtoError::InvalidTimestamp(_))
        ));
        assert!(matches!(
            from_proto(message(vec![(
                "dataschema",
                Attr::CeUri("not a uri".into())
            )])),
            Err(ProtoError::InvalidUri { .. })
        ));
        let mut proto_data = message(vec![]);
        proto_data.data = Some(ProtoData::ProtoData(prost_types::Any::default()));
        assert_eq!(
            from_proto(proto_data),
            Err(ProtoError::ProtoDataUnsupported)
        );
    }

    #[test]
    fn garbage_bytes_are_a_decode_error() {
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff]),
            Err(ProtoError::Decode(_))
        ));
        // An empty buffer is a valid (empty) message with no spec version.
        assert_eq!(
            decode(&[]),
            Err(ProtoError::UnknownSpecVersion(String::new()))
        );
    }

    #[test]
    fn encoding_is_deterministic() {
        // Each event gets its own HashMap (own random iteration order), and the
        // extensions are inserted in different orders.
        let names = ["b", "a", "c", "e", "d", "f", "h", "g"];
        let build = |order: &mut dyn Iterator<Item = &&str>| {
            let mut event = base().build().expect("event");
            for name in order {
                event.set_extension(name, *name);
            }
            encode_to_vec(&event).expect("encodes")
        };
        let first = build(&mut names.iter());
        for _ in 0..10 {
            assert_eq!(build(&mut names.iter().rev()), first);
            assert_eq!(build(&mut names.iter()), first);
        }
    }
}
