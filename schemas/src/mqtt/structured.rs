//! Structured content mode: the whole event is one CloudEvents JSON document with
//! Content Type `application/cloudevents+json` (reference §2.3, §2.4). This is the form
//! Maestro stores and documents, and the only one an MQTT 3.1.1 peer can carry.

use cloudevents::{AttributesReader, Event};

use super::{DecodeError, EncodeError, MqttMessage, STRUCTURED_CONTENT_TYPE};
use crate::extensions::canonicalize;

/// Encodes `event` as a structured-mode message on `topic`.
pub fn encode(event: &Event, topic: &str) -> Result<MqttMessage, EncodeError> {
    let payload = serde_json::to_vec(event).map_err(|e| EncodeError::Structured(e.to_string()))?;
    Ok(MqttMessage {
        topic: topic.to_string(),
        content_type: Some(STRUCTURED_CONTENT_TYPE.to_string()),
        user_properties: Vec::new(),
        payload,
        publisher: None,
    })
}

/// Decodes a CloudEvents JSON document (a structured payload or a stored event).
pub fn decode(payload: &[u8]) -> Result<Event, DecodeError> {
    let mut event: Event = serde_json::from_slice(payload)
        .map_err(|e| DecodeError::Structured(truncate(e.to_string())))?;
    if event.id().is_empty() {
        return Err(DecodeError::MissingAttribute("id"));
    }
    if event.source().is_empty() {
        return Err(DecodeError::MissingAttribute("source"));
    }
    if event.ty().is_empty() {
        return Err(DecodeError::MissingAttribute("type"));
    }
    if event.specversion() != cloudevents::event::SpecVersion::V10 {
        return Err(DecodeError::SpecVersion(event.specversion().to_string()));
    }
    for (name, _) in event.iter_extensions() {
        if !super::binary::is_valid_extension_name(name) {
            return Err(DecodeError::InvalidExtensionName(name.to_string()));
        }
    }
    canonicalize(&mut event);
    Ok(event)
}

fn truncate(mut s: String) -> String {
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
