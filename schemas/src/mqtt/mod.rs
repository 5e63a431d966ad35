//! The mapping between a CloudEvent and an MQTT PUBLISH (reference §2), as pure
//! functions over a transport-neutral [`MqttMessage`].
//!
//! - [`binary`] mode (what sdk-go sends on MQTT 5): attributes and extensions as
//!   `ce-*` user properties, `datacontenttype` as the Content Type property, payload =
//!   data. Note the `ce-` prefix deviates from the CloudEvents MQTT binding (§2.4); it is
//!   what the Go peers speak, so it is what we speak.
//! - [`structured`] mode (`application/cloudevents+json` payload): the only mode an
//!   MQTT 3.1.1 peer can use, and accepted by the Go receiver.
//!
//! [`decode`] accepts both and dispatches exactly as the Go receiver does (§2.2). The
//! MQTT client code in hub and agent only moves [`MqttMessage`]s; it never touches
//! property names. [`limits`] says whether a message fits MQTT at all (string and packet
//! sizes, §10 item 19) before anyone tries to send it.

pub mod binary;
pub mod limits;
pub mod structured;

pub use limits::{MessageLimitError, MqttVersion, PublishLimits, check_publishable};

use cloudevents::Event;

/// Content type that marks a structured-mode message.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
/// Content type of ManifestWork payloads.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// An MQTT PUBLISH reduced to what the CloudEvents mapping reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MqttMessage {
    /// Topic the message is (or was) published on.
    pub topic: String,
    /// The MQTT 5 Content Type property (absent on MQTT 3.1.1).
    pub content_type: Option<String>,
    /// MQTT 5 user properties, in wire order (absent on MQTT 3.1.1).
    pub user_properties: Vec<(String, String)>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Who published it, as the broker stamped it (the user property
    /// [`crate::acl::PUBLISHER_PROPERTY`], which the receiving transport moves here out of
    /// `user_properties`); `None` when the broker stamps nothing (3.1.1, external
    /// brokers). Only a broker that removes client-sent stamps (the embedded one) makes
    /// it trustworthy. Never sent: a publisher cannot name itself.
    pub publisher: Option<String>,
}

/// How an event is laid out in an MQTT message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `ce-*` user properties plus raw data (MQTT 5 only; what sdk-go sends).
    #[default]
    Binary,
    /// One JSON document (works on MQTT 3.1.1 too).
    Structured,
}

/// Why an MQTT message is not a usable CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Neither a structured content type nor a `ce-specversion` property (§2.2 step 3).
    #[error(
        "unknown cloudevents encoding: no ce-specversion user property and content type {0:?} is not application/cloudevents"
    )]
    UnknownEncoding(Option<String>),
    /// A spec version other than 1.0.
    #[error("unsupported cloudevents specversion {0:?}")]
    SpecVersion(String),
    /// A required attribute (`id`, `source`, `type`) is missing or empty.
    #[error("missing required cloudevents attribute {0}")]
    MissingAttribute(&'static str),
    /// An attribute value that does not parse (time, dataschema).
    #[error("invalid cloudevents attribute {name}: {reason}")]
    InvalidAttribute {
        /// Attribute name.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An extension name that CloudEvents does not allow.
    #[error("invalid cloudevents extension name {0:?}")]
    InvalidExtensionName(String),
    /// The same `ce-*` property appears twice.
    #[error("duplicate user property {0:?}")]
    DuplicateProperty(String),
    /// The content type says JSON but the data is not JSON.
    #[error("data is not valid JSON: {0}")]
    InvalidJsonData(String),
    /// A structured-mode payload that is not a valid CloudEvents JSON document.
    #[error("invalid structured cloudevent: {0}")]
    Structured(String),
}

/// Why an event cannot be put into an MQTT message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Only CloudEvents 1.0 is sent.
    #[error("unsupported cloudevents specversion {0}")]
    SpecVersion(String),
    /// Serializing the structured JSON failed.
    #[error("cannot serialize structured cloudevent: {0}")]
    Structured(String),
}

/// Encodes `event` for `topic` in the given mode.
pub fn encode(event: &Event, topic: &str, encoding: Encoding) -> Result<MqttMessage, EncodeError> {
    match encoding {
        Encoding::Binary => binary::encode(event, topic),
        Encoding::Structured => structured::encode(event, topic),
    }
}

/// True when the content type names structured mode (`application/cloudevents…`, as the
/// Go receiver reads it, §2.2).
fn is_structured_content_type(content_type: &str) -> bool {
    content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/cloudevents")
}

/// True when an MQTT 3.1.1 PUBLISH can carry `message` without losing anything that
/// matters: 3.1.1 has no properties, so no user properties, and a content type only if
/// it is structured mode's, which the payload itself implies (receivers accept a
/// structured event that arrives with no content type, see [`decode`]).
pub fn fits_mqtt_v311(message: &MqttMessage) -> bool {
    message.user_properties.is_empty()
        && message
            .content_type
            .as_deref()
            .is_none_or(is_structured_content_type)
}

/// Decodes a received message, accepting both modes as the Go receiver does (§2.2): a
/// content type starting with `application/cloudevents` means structured mode; otherwise a
/// `ce-specversion` user property means binary mode; anything else is rejected.
pub fn decode(message: &MqttMessage) -> Result<Event, DecodeError> {
    Ok(decode_with_encoding(message)?.0)
}

/// Like [`decode`], also telling which mode the message used (peers answer in kind).
pub fn decode_with_encoding(message: &MqttMessage) -> Result<(Event, Encoding), DecodeError> {
    if message
        .content_type
        .as_deref()
        .is_some_and(is_structured_content_type)
    {
        return Ok((structured::decode(&message.payload)?, Encoding::Structured));
    }
    if message
        .user_properties
        .iter()
        .any(|(k, _)| k == binary::SPECVERSION_PROPERTY)
    {
        return Ok((binary::decode(message)?, Encoding::Binary));
    }
    // MQTT 3.1.1 carries no properties at all: a JSON payload that looks like a
    // structured event is accepted, so small brokers and devices can take part.
    if message.content_type.is_none()
        && message.user_properties.is_empty()
        && message.payload.first() == Some(&b'{')
        && let Ok(event) = structured::decode(&message.payload)
    {
        return Ok((event, Encoding::Structured));
    }
    Err(DecodeError::UnknownEncoding(message.content_type.clone()))
}

/// True for `application/json`, `text/json` and any `+json` media type, ignoring
/// parameters such as `; charset=utf-8`.
pub fn is_json_content_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}
