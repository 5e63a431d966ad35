//! What MQTT itself allows in one PUBLISH, checked before a message is handed to a
//! client library (reference §10 item 19: nothing negotiates message size).
//!
//! A message that breaks one of these limits is not merely refused by the broker: a
//! client writes a corrupt packet (a string longer than 65,535 bytes gets a truncated
//! 2-byte length prefix, so the broker reads garbage: `MalformedPacket`) or fails the
//! whole connection (rumqttc treats an oversized outgoing packet as a connection error
//! and then replays it after reconnecting). Either way every other message on that
//! connection stops too. [`check_publishable`] finds such a message before it is sent.
//!
//! The limits, from MQTT 5.0 and 3.1.1:
//! - every UTF-8 string (topic, Content Type, each user property name and value) is at
//!   most 65,535 bytes (a 2-byte length prefix; MQTT 5.0 §1.5.4, 3.1.1 §1.5.3);
//! - strings contain no U+0000 (a MUST), and none of U+0001–U+001F, U+007F–U+009F or the
//!   Unicode non-characters, which a receiver MAY treat as a malformed packet — Mosquitto
//!   2 does (it closes the connection without a PUBACK), so we refuse them too;
//! - the whole packet — fixed header, topic, packet identifier (QoS > 0), the MQTT 5
//!   property block, payload — is at most the peer's maximum packet size (MQTT 5.0
//!   §3.1.2.11 counts the whole packet) and at most 268,435,460 bytes (the largest
//!   Remaining Length, 268,435,455, plus the 5-byte fixed header);
//! - MQTT 3.1.1 has no properties at all, so only structured-mode messages fit it.
//!
//! [`publish_packet_size`] computes the encoded size exactly as a PUBLISH is written
//! (checked against rumqttc's encoder in `tests/mqtt_limits.rs`).

use std::fmt;

use super::MqttMessage;

/// The longest MQTT UTF-8 string, in bytes (a 2-byte length prefix).
pub const MAX_STRING_BYTES: usize = 65_535;
/// The largest Remaining Length a fixed header can encode (4 variable-length bytes).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;
/// The largest possible MQTT packet: a 5-byte fixed header and the largest Remaining
/// Length.
pub const MAX_PACKET_SIZE: usize = MAX_REMAINING_LENGTH + 5;

/// Property identifier of Content Type and of User Property: one byte each.
const PROPERTY_ID_BYTES: usize = 1;
/// Length prefix of an MQTT string.
const STRING_PREFIX_BYTES: usize = 2;
/// Packet identifier of a QoS 1 or 2 PUBLISH.
const PACKET_ID_BYTES: usize = 2;
/// How much of an over-long property name an error repeats.
const NAME_IN_ERROR_CHARS: usize = 64;

/// The MQTT protocol version a message is published with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MqttVersion {
    /// MQTT 5 (PUBLISH properties: Content Type, user properties).
    #[default]
    V5,
    /// MQTT 3.1.1 (no properties).
    V311,
}

/// The limits one publisher works under: its protocol version, publish QoS, and the
/// maximum packet size it and its broker accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishLimits {
    /// Protocol version of the connection.
    pub version: MqttVersion,
    /// Publish QoS (0, 1 or 2); QoS > 0 adds a 2-byte packet identifier.
    pub qos: u8,
    /// The maximum packet size in bytes (whole packet); values above
    /// [`MAX_PACKET_SIZE`] mean [`MAX_PACKET_SIZE`].
    pub max_packet_size: usize,
}

impl PublishLimits {
    /// MQTT 5 at QoS 1 (what sdk-go and our peers use) with the given packet limit.
    pub const fn v5(max_packet_size: usize) -> Self {
        PublishLimits {
            version: MqttVersion::V5,
            qos: 1,
            max_packet_size,
        }
    }

    /// The packet limit in force: the configured one, capped by what MQTT can encode.
    pub fn effective_max_packet_size(&self) -> usize {
        self.max_packet_size.min(MAX_PACKET_SIZE)
    }
}

/// Which string of a message broke a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageField {
    /// The topic name.
    Topic,
    /// The Content Type property.
    ContentType,
    /// The name of the user property at this position.
    UserPropertyName {
        /// Position in [`MqttMessage::user_properties`].
        index: usize,
    },
    /// The value of a user property.
    UserPropertyValue {
        /// The property's name (cut to 64 characters).
        name: String,
    },
}

impl fmt::Display for MessageField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageField::Topic => f.write_str("topic"),
            MessageField::ContentType => f.write_str("content type"),
            MessageField::UserPropertyName { index } => {
                write!(f, "name of user property #{}", index + 1)
            }
            MessageField::UserPropertyValue { name } => write!(f, "user property {name:?}"),
        }
    }
}

/// Which MQTT limit a message breaks. Every variant is permanent: the same message
/// never becomes publishable under the same limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageLimitError {
    /// The encoded PUBLISH is larger than the maximum packet size.
    #[error(
        "the PUBLISH packet would be {size} bytes, over the maximum packet size of {limit} bytes"
    )]
    PacketTooLarge {
        /// Encoded size of the whole packet ([`publish_packet_size`]).
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// One string is longer than an MQTT string can be.
    #[error(
        "the {field} is {len} bytes, over the MQTT limit of {MAX_STRING_BYTES} bytes for a UTF-8 string"
    )]
    StringTooLong {
        /// The string.
        field: MessageField,
        /// Its length in bytes.
        len: usize,
    },
    /// One string holds a code point MQTT forbids or lets receivers reject.
    #[error(
        "the {field} contains U+{code_point:04X}, which MQTT does not allow in a UTF-8 string \
         (NUL, control characters and non-characters make brokers close the connection)"
    )]
    ForbiddenCharacter {
        /// The string.
        field: MessageField,
        /// The first offending code point.
        code_point: u32,
    },
    /// MQTT 3.1.1 cannot carry a Content Type or user properties (structured mode's
    /// content type excepted: the payload implies it, see [`super::fits_mqtt_v311`]).
    #[error(
        "MQTT 3.1.1 cannot carry a content type or user properties; use the structured encoding"
    )]
    PropertiesUnsupported,
}

/// The encoded size in bytes of `message` as one PUBLISH packet (fixed header, topic,
/// packet identifier when `qos > 0`, the MQTT 5 property block, payload). Saturates
/// instead of overflowing; sizes beyond [`MAX_PACKET_SIZE`] cannot be encoded at all.
pub fn publish_packet_size(message: &MqttMessage, version: MqttVersion, qos: u8) -> usize {
    let mut remaining = string_size(&message.topic);
    if qos > 0 {
        remaining = remaining.saturating_add(PACKET_ID_BYTES);
    }
    if version == MqttVersion::V5 {
        let props = properties_size(message);
        remaining = remaining
            .saturating_add(variable_int_size(props))
            .saturating_add(props);
    }
    remaining = remaining.saturating_add(message.payload.len());
    1usize
        .saturating_add(variable_int_size(remaining))
        .saturating_add(remaining)
}

/// Checks that `message` can be published under `limits`: every string fits an MQTT
/// string and holds only allowed code points, MQTT 3.1.1 carries no properties, and the
/// encoded packet fits the maximum packet size. The packet size is checked first (it is
/// what the client library enforces before writing), then each string in wire order.
/// Returns the encoded packet size.
pub fn check_publishable(
    message: &MqttMessage,
    limits: &PublishLimits,
) -> Result<usize, MessageLimitError> {
    if limits.version == MqttVersion::V311 && !super::fits_mqtt_v311(message) {
        return Err(MessageLimitError::PropertiesUnsupported);
    }
    let size = publish_packet_size(message, limits.version, limits.qos);
    let limit = limits.effective_max_packet_size();
    if size > limit {
        return Err(MessageLimitError::PacketTooLarge { size, limit });
    }
    check_string(&message.topic, || MessageField::Topic)?;
    if let Some(ct) = &message.content_type {
        check_string(ct, || MessageField::ContentType)?;
    }
    for (index, (name, value)) in message.user_properties.iter().enumerate() {
        check_string(name, || MessageField::UserPropertyName { index })?;
        check_string(value, || MessageField::UserPropertyValue {
            name: cut(name, NAME_IN_ERROR_CHARS),
        })?;
    }
    Ok(size)
}

/// Whether MQTT lets `c` appear in a UTF-8 string (MQTT 5.0 §1.5.4): not NUL, not a
/// C0 or C1 control character, not a Unicode non-character. (Surrogates cannot occur
/// in a Rust string.)
pub fn is_allowed_char(c: char) -> bool {
    let cp = u32::from(c);
    let control = cp <= 0x1F || (0x7F..=0x9F).contains(&cp);
    let non_character = (0xFDD0..=0xFDEF).contains(&cp) || (cp & 0xFFFE) == 0xFFFE;
    !control && !non_character
}

fn check_string(s: &str, field: impl FnOnce() -> MessageField) -> Result<(), MessageLimitError> {
    if s.len() > MAX_STRING_BYTES {
        return Err(MessageLimitError::StringTooLong {
            field: field(),
            len: s.len(),
        });
    }
    // One linear scan, over at most MAX_STRING_BYTES (checked above).
    if let Some(c) = s.chars().find(|c| !is_allowed_char(*c)) {
        return Err(MessageLimitError::ForbiddenCharacter {
            field: field(),
            code_point: u32::from(c),
        });
    }
    Ok(())
}

/// An MQTT string on the wire: 2-byte length and the bytes.
fn string_size(s: &str) -> usize {
    STRING_PREFIX_BYTES.saturating_add(s.len())
}

/// The MQTT 5 PUBLISH properties we write (Content Type, user properties), without
/// their length prefix.
fn properties_size(message: &MqttMessage) -> usize {
    let content_type = message
        .content_type
        .as_deref()
        .map_or(0, |ct| PROPERTY_ID_BYTES.saturating_add(string_size(ct)));
    message
        .user_properties
        .iter()
        .map(|(k, v)| {
            PROPERTY_ID_BYTES
                .saturating_add(string_size(k))
                .saturating_add(string_size(v))
        })
        .fold(content_type, usize::saturating_add)
}

/// Bytes of an MQTT Variable Byte Integer (Remaining Length, Property Length). Values
/// beyond [`MAX_REMAINING_LENGTH`] are not encodable; they count 4 bytes, and the
/// packet limit refuses them.
fn variable_int_size(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn cut(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(topic: &str, props: Vec<(String, String)>, payload: usize) -> MqttMessage {
        MqttMessage {
            topic: topic.to_string(),
            content_type: Some("application/json".into()),
            user_properties: props,
            payload: vec![b'x'; payload],
            publisher: None,
        }
    }

    #[test]
    fn variable_int_boundaries() {
        assert_eq!(variable_int_size(127), 1);
        assert_eq!(variable_int_size(128), 2);
        assert_eq!(variable_int_size(16_383), 2);
        assert_eq!(variable_int_size(16_384), 3);
        assert_eq!(variable_int_size(2_097_151), 3);
        assert_eq!(variable_int_size(2_097_152), 4);
    }

    #[test]
    fn size_by_hand() {
        // Topic "a/b" (2+3), packet id 2, properties: content type 1+2+16, one user
        // property 1+2+5+2+1 = 30 bytes → 1-byte property length; payload 4.
        let m = binary("a/b", vec![("ce-id".into(), "1".into())], 4);
        let remaining = 5 + 2 + 1 + 30 + 4;
        assert_eq!(publish_packet_size(&m, MqttVersion::V5, 1), 2 + remaining);
        // QoS 0: no packet identifier.
        assert_eq!(publish_packet_size(&m, MqttVersion::V5, 0), remaining);
        // MQTT 3.1.1 has no property block.
        let plain = MqttMessage {
            topic: "a/b".into(),
            payload: vec![0; 4],
            ..MqttMessage::default()
        };
        assert_eq!(
            publish_packet_size(&plain, MqttVersion::V311, 1),
            2 + 5 + 2 + 4
        );
        assert_eq!(
            publish_packet_size(&plain, MqttVersion::V5, 1),
            2 + 5 + 2 + 1 + 4
        );
    }

    #[test]
    fn cut_keeps_short_names_and_char_boundaries() {
        assert_eq!(cut("ce-metadata", 64), "ce-metadata");
        assert_eq!(cut("ééé", 2), "éé…");
    }
}
