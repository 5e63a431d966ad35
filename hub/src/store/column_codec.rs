//! How the store's values are written into columns, shared by every backend: times as
//! fixed-width RFC 3339 text (nanoseconds kept, text order = time order), JSON columns,
//! the stored MQTT message of an outbox row, and the sealing of payload columns with
//! the store's [`Keyring`] (see "Secrets at rest" in ARCHITECTURE.md). A backend that
//! uses these writes bytes another backend reads the same way.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use workbus_schemas::Event;
use workbus_schemas::mqtt::{MqttMessage, structured};

use super::StoreError;
use super::keyring::Keyring;
use super::model::OutboxPayload;

/// The sealing of payload columns: with a keyring, values are sealed on write; on read
/// sealed values are opened and plain (older) ones pass through.
#[derive(Clone, Copy)]
pub(super) struct Seal<'k>(pub(super) Option<&'k Keyring>);

impl Seal<'_> {
    /// Seals `plain` for `column` (`table.column`), or keeps it when there is no key.
    pub(super) fn seal(self, column: &str, plain: String) -> Result<String, StoreError> {
        match self.0 {
            Some(keys) => keys
                .seal(column, plain.as_bytes())
                .map_err(|e| StoreError::Backend(format!("cannot seal {column}: {e}"))),
            None => Ok(plain),
        }
    }

    /// Seals bytes (the blob column `outbox.payload`).
    pub(super) fn seal_bytes<'a>(
        self,
        column: &str,
        plain: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, StoreError> {
        match self.0 {
            Some(keys) => keys
                .seal(column, plain)
                .map(|s| Cow::Owned(s.into_bytes()))
                .map_err(|e| StoreError::Backend(format!("cannot seal {column}: {e}"))),
            None => Ok(Cow::Borrowed(plain)),
        }
    }

    /// Opens a stored value of `column`; `Err` is a reason for [`StoreError::Corrupt`].
    pub(super) fn open_bytes(self, column: &str, stored: Vec<u8>) -> Result<Vec<u8>, String> {
        match self.0 {
            Some(keys) => match keys.open(column, &stored) {
                Ok(Cow::Borrowed(_)) => Ok(stored),
                Ok(Cow::Owned(plain)) => Ok(plain),
                Err(e) => Err(format!("{column}: {e}")),
            },
            None if stored.starts_with(super::keyring::SEALED_PREFIX.as_bytes()) => {
                Err(format!("{column}: sealed, but the store has no key file"))
            }
            None => Ok(stored),
        }
    }

    /// Opens a stored text value of `column`.
    pub(super) fn open(self, column: &str, stored: String) -> Result<String, String> {
        let bytes = self.open_bytes(column, stored.into_bytes())?;
        String::from_utf8(bytes).map_err(|_| format!("{column}: not UTF-8"))
    }

    /// Replaces the Secret values of an event bound for the audit log by the keyring's
    /// keyed digests ([`super::redact`]); without a keyring, nothing.
    pub(super) fn redact_for_audit(self, event: &mut serde_json::Value) {
        if let Some(keys) = self.0 {
            super::redact::redact_secrets(event, &|v| keys.digest(v));
        }
    }
}

/// Times are stored as fixed-width RFC 3339 UTC with nanoseconds, so text order is
/// time order.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(super) fn parse_ts(table: &'static str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            table,
            reason: format!("bad time {s:?}: {e}"),
        })
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    what: &str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        table,
        reason: format!("{what}: {e}"),
    })
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("cannot serialize: {e}")))
}

pub(super) fn event_json(event: &Event) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|e| StoreError::Event(e.to_string()))
}

pub(super) fn parse_event(s: &str) -> Result<Event, String> {
    structured::decode(s.as_bytes()).map_err(|e| e.to_string())
}

/// The MQTT 5 properties of a queued message, as stored (`outbox.properties`).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) user_properties: Vec<(String, String)>,
}

/// The stored message columns (topic, properties, payload) back into a message.
fn stored_message(
    topic: String,
    properties: Option<String>,
    payload: Vec<u8>,
) -> Result<MqttMessage, String> {
    let properties: StoredProperties = match properties {
        Some(json) => serde_json::from_str(&json).map_err(|e| format!("properties: {e}"))?,
        None => StoredProperties {
            content_type: None,
            user_properties: Vec::new(),
        },
    };
    Ok(MqttMessage {
        topic,
        content_type: properties.content_type,
        user_properties: properties.user_properties,
        payload,
        publisher: None,
    })
}

/// The payload of an outbox row whose stored message is the caller's wire format: the
/// message from its stored topic, properties and sealed payload (a row that does not
/// decode carries the reason, and is parked by the publisher).
pub(super) fn outbox_message(
    seal: Seal<'_>,
    topic: String,
    properties: Option<String>,
    payload: Vec<u8>,
) -> OutboxPayload {
    match seal
        .open_bytes("outbox.payload", payload)
        .and_then(|payload| stored_message(topic, properties, payload))
    {
        Ok(message) => OutboxPayload::Message(message),
        Err(e) => OutboxPayload::Event(Err(format!("stored message: {e}"))),
    }
}

/// The payload of any other outbox row: its sealed event.
pub(super) fn outbox_event(seal: Seal<'_>, event: String) -> OutboxPayload {
    OutboxPayload::Event(
        seal.open("outbox.event", event)
            .and_then(|event| parse_event(&event)),
    )
}

/// An outbox row as a backend reads it: the entry plus the columns only parked rows
/// need.
pub(super) struct OutboxRow {
    pub(super) entry: super::model::OutboxEntry,
    pub(super) parked: Option<String>,
    pub(super) created: String,
    pub(super) parked_at: Option<String>,
}

impl OutboxRow {
    /// The row as a parked event (its park time falls back to its creation time).
    pub(super) fn into_parked(self) -> Result<super::model::ParkedOutbox, StoreError> {
        let created = parse_ts("outbox", &self.created)?;
        Ok(super::model::ParkedOutbox {
            entry: self.entry,
            reason: self.parked.unwrap_or_default(),
            created,
            parked_at: match self.parked_at {
                Some(t) => parse_ts("outbox", &t)?,
                None => created,
            },
        })
    }
}
