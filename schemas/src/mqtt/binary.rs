//! Binary content mode (reference §2.1, §2.2): every context attribute and extension is
//! an MQTT 5 user property named `ce-<name>`, `datacontenttype` is the Content Type
//! property and the payload is the data itself.
//!
//! Values are written in their CloudEvents canonical string form (integers in decimal,
//! times as Go's RFC3339Nano). On decode every extension arrives as a string; known
//! extensions are then brought to their canonical type by
//! [`crate::extensions::canonicalize`].

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use cloudevents::event::{AttributeValue, Data, ExtensionValue, SpecVersion};
use cloudevents::{AttributesReader, AttributesWriter, Event, EventBuilder, EventBuilderV10};

use super::{DecodeError, EncodeError, MqttMessage, is_json_content_type};
use crate::extensions::{canonicalize, format_rfc3339_nano};

/// Prefix of every CloudEvents user property (sdk-go's, not the binding spec's).
pub const PROPERTY_PREFIX: &str = "ce-";
/// The property whose presence marks binary mode.
pub const SPECVERSION_PROPERTY: &str = "ce-specversion";

/// Encodes `event` as a binary-mode message on `topic`.
pub fn encode(event: &Event, topic: &str) -> Result<MqttMessage, EncodeError> {
    if event.specversion() != SpecVersion::V10 {
        return Err(EncodeError::SpecVersion(event.specversion().to_string()));
    }
    let mut props: Vec<(String, String)> = Vec::with_capacity(16);
    let mut content_type = None;
    for (name, value) in event.iter_attributes() {
        match (name, value) {
            ("datacontenttype", AttributeValue::String(ct)) => content_type = Some(ct.to_string()),
            ("time", AttributeValue::Time(t)) => {
                props.push((format!("{PROPERTY_PREFIX}time"), format_rfc3339_nano(t)))
            }
            (name, value) => props.push((format!("{PROPERTY_PREFIX}{name}"), value.to_string())),
        }
    }
    // Sorted so that the same event always produces the same bytes (the Go sender uses
    // map order, so receivers cannot rely on any order anyway).
    let mut extensions: Vec<(&str, &ExtensionValue)> = event.iter_extensions().collect();
    extensions.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in extensions {
        props.push((format!("{PROPERTY_PREFIX}{name}"), value.to_string()));
    }
    let payload = match event.data() {
        None => Vec::new(),
        Some(Data::Json(v)) => {
            serde_json::to_vec(v).map_err(|e| EncodeError::Structured(e.to_string()))?
        }
        Some(Data::String(s)) => s.as_bytes().to_vec(),
        Some(Data::Binary(b)) => b.clone(),
    };
    Ok(MqttMessage {
        topic: topic.to_string(),
        content_type,
        user_properties: props,
        payload,
        publisher: None,
    })
}

/// Decodes a binary-mode message. The caller has checked that `ce-specversion` exists.
pub fn decode(message: &MqttMessage) -> Result<Event, DecodeError> {
    let mut seen = HashSet::new();
    let mut builder = EventBuilderV10::new();
    let mut have = [false; 3]; // id, source, type
    let mut content_type = message.content_type.clone();
    let mut extensions: Vec<(String, String)> = Vec::new();
    let mut dataschema = None;

    for (key, value) in &message.user_properties {
        let Some(name) = key.strip_prefix(PROPERTY_PREFIX) else {
            continue; // not ours: other applications may add properties
        };
        if !seen.insert(name) {
            return Err(DecodeError::DuplicateProperty(key.clone()));
        }
        match name {
            "specversion" => {
                if value != "1.0" {
                    return Err(DecodeError::SpecVersion(value.clone()));
                }
            }
            "id" => {
                have[0] = !value.is_empty();
                builder = builder.id(value.as_str());
            }
            "source" => {
                have[1] = !value.is_empty();
                builder = builder.source(value.as_str());
            }
            "type" => {
                have[2] = !value.is_empty();
                builder = builder.ty(value.as_str());
            }
            "subject" => builder = builder.subject(value.as_str()),
            "time" => {
                let t = DateTime::parse_from_rfc3339(value.trim()).map_err(|e| {
                    DecodeError::InvalidAttribute {
                        name: "time",
                        reason: e.to_string(),
                    }
                })?;
                builder = builder.time(t.with_timezone(&Utc));
            }
            "dataschema" => dataschema = Some(url_parse(value)?),
            // The Content Type property wins; a ce-datacontenttype is only a fallback.
            "datacontenttype" => {
                if content_type.is_none() {
                    content_type = Some(value.clone());
                }
            }
            ext => {
                if !is_valid_extension_name(ext) {
                    return Err(DecodeError::InvalidExtensionName(ext.to_string()));
                }
                extensions.push((ext.to_string(), value.clone()));
            }
        }
    }
    for (ok, name) in have.iter().zip(["id", "source", "type"]) {
        if !ok {
            return Err(DecodeError::MissingAttribute(name));
        }
    }
    for (k, v) in extensions {
        builder = builder.extension(&k, v);
    }
    let mut event = builder.build().map_err(|e| DecodeError::InvalidAttribute {
        name: "event",
        reason: e.to_string(),
    })?;
    if let Some(data) = payload_to_data(content_type.as_deref(), &message.payload)? {
        event.set_data_unchecked(data);
    }
    // Set after the data: a content type without data is kept as it came.
    event.set_datacontenttype(content_type);
    if let Some(url) = dataschema {
        event.set_dataschema(Some(url));
    }
    canonicalize(&mut event);
    Ok(event)
}

fn url_parse(value: &str) -> Result<url::Url, DecodeError> {
    url::Url::parse(value).map_err(|e| DecodeError::InvalidAttribute {
        name: "dataschema",
        reason: e.to_string(),
    })
}

/// Turns the payload into event data: JSON content types must carry JSON.
fn payload_to_data(
    content_type: Option<&str>,
    payload: &[u8],
) -> Result<Option<Data>, DecodeError> {
    if payload.is_empty() {
        return Ok(None);
    }
    match content_type {
        Some(ct) if is_json_content_type(ct) => serde_json::from_slice(payload)
            .map(|v| Some(Data::Json(v)))
            .map_err(|e| DecodeError::InvalidJsonData(e.to_string())),
        Some(ct) if ct.trim().to_ascii_lowercase().starts_with("text/") => {
            Ok(Some(match String::from_utf8(payload.to_vec()) {
                Ok(s) => Data::String(s),
                Err(e) => Data::Binary(e.into_bytes()),
            }))
        }
        _ => Ok(Some(Data::Binary(payload.to_vec()))),
    }
}

/// CloudEvents extension names: lower-case ASCII letters and digits (the spec asks for at
/// most 20 characters but allows longer ones to be accepted; we accept up to 64).
pub fn is_valid_extension_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}
